"""FisherFactor definitions: the covariance statistics K-FAC keeps.

A Fisher factor owns one non-trainable float32 `cov` variable (and, for the
factors that provide inverses, damped inverses and matrix powers of it). The
variable is an exponential moving average of a statistic computed from the
layer inputs and/or the gradients with respect to the layer outputs; the
statistic is summed over the gradient sources (one source per sampled target).

Variable scopes and names follow `tf.contrib.kfac` of TensorFlow 1.4, so that
checkpoints written by it restore into variables created here:
`ff_<kind>/<scope string>/cov`, `.../inv_damp<D>` and
`.../matpower_exp<E>_damp<D>`.
"""

import abc
import contextlib
import os
import platform

import numpy as np
import tensorflow as tf

from kfac import _checks
from kfac import _nonfinite
from kfac import _ops
from kfac import _conv_stats
from kfac import _releases
from kfac import _surface
from kfac import utils

# The 1.4 public names, from the one surface table.
__all__ = list(sorted(_surface.public_names("1.4", "fisher_factors")))

# Whether to initialise covariance variables at zero (instead of the identity
# matrix, or all-ones for diagonal factors).
INIT_COVARIANCES_AT_ZERO = False

# Whether the covariance moving averages are zero-debiased (Kingma & Ba 2015).
ZERO_DEBIAS = False

# With at least this many registered damped inverses a factor computes one
# eigendecomposition and derives every inverse from it.
EIGENVALUE_DECOMPOSITION_THRESHOLD = 2

# Eigenvalues are clipped from below to this value before they are used.
EIGENVALUE_CLIPPING_THRESHOLD = 0.0

# ConvDiagonalFactor: kernel offsets are grouped until a group holds at least
# this many input channels in total, but a group never has more than a third
# of the kernel offsets (see `ConvDiagonalFactor`).
_CONVDIAG_MIN_CHUNK_ROWS = 8
# ConvDiagonalFactor: whether window groups are computed one after another
# (bounds the memory to one group at a time).
_CONVDIAG_SERIALIZE_GROUPS = True

# ConvDiagonalFactor "grouped_conv": the batch is split into chunks of about
# this many bytes of inputs, gradients and per-example filter gradients (one
# source), each with its own grouped filter gradient (see
# `ConvDiagonalFactor`); None: one chunk.
_CONVDIAG_CHUNK_BYTES = 3 * 2**20

# ConvDiagonalFactor method: None chooses ("grouped_conv" where the grouped
# filter-gradient kernel is available, else "windows"); tests force one.
_CONVDIAG_METHOD = None

# Cached result of `_grouped_filter_gradient_supported()`.
_GROUPED_FILTER_GRADIENT_SUPPORTED = None


def set_global_constants(
  init_covariances_at_zero=None,
  zero_debias=None,
  eigenvalue_decomposition_threshold=None,
  eigenvalue_clipping_threshold=None,
):
  """Sets the module constants; arguments left at `None` are not changed.

  The constants are read when ops are built (initializers, moving averages,
  inverse updates), so a change affects ops built afterwards only.

  Args:
    init_covariances_at_zero: Python bool, new `INIT_COVARIANCES_AT_ZERO`.
    zero_debias: Python bool, new `ZERO_DEBIAS`.
    eigenvalue_decomposition_threshold: Python int, new
      `EIGENVALUE_DECOMPOSITION_THRESHOLD`.
    eigenvalue_clipping_threshold: Non-negative float, new
      `EIGENVALUE_CLIPPING_THRESHOLD`.

  Raises:
    ValueError: If `eigenvalue_clipping_threshold` is negative.
  """
  global INIT_COVARIANCES_AT_ZERO
  global ZERO_DEBIAS
  global EIGENVALUE_DECOMPOSITION_THRESHOLD
  global EIGENVALUE_CLIPPING_THRESHOLD

  if (
    eigenvalue_clipping_threshold is not None
    and eigenvalue_clipping_threshold < 0
  ):
    raise ValueError(
      "eigenvalue_clipping_threshold must be >= 0, got {!r}.".format(
        eigenvalue_clipping_threshold
      )
    )
  if init_covariances_at_zero is not None:
    INIT_COVARIANCES_AT_ZERO = init_covariances_at_zero
  if zero_debias is not None:
    ZERO_DEBIAS = zero_debias
  if eigenvalue_decomposition_threshold is not None:
    EIGENVALUE_DECOMPOSITION_THRESHOLD = eigenvalue_decomposition_threshold
  if eigenvalue_clipping_threshold is not None:
    EIGENVALUE_CLIPPING_THRESHOLD = eigenvalue_clipping_threshold


def inverse_initializer(shape, dtype, partition_info=None):
  """Initializer for inverse and matrix-power variables: the identity.

  Args:
    shape: The variable shape `[n, n]`; only `shape[0]` is used.
    dtype: The variable dtype.
    partition_info: Unused; part of the initializer protocol.

  Returns:
    The `[n, n]` identity matrix in `dtype`.
  """
  return tf.linalg.diag(tf.ones(_checks.static_dim(shape, 0), dtype))


def covariance_initializer(shape, dtype, partition_info=None):
  """Initializer for square covariance variables.

  Args:
    shape: The variable shape `[n, n]`; only `shape[0]` is used.
    dtype: The variable dtype.
    partition_info: Unused; part of the initializer protocol.

  Returns:
    The `[n, n]` identity matrix, or the `[n, n]` zero matrix when
    `INIT_COVARIANCES_AT_ZERO` is set.
  """
  if INIT_COVARIANCES_AT_ZERO:
    return tf.linalg.diag(tf.zeros(_checks.static_dim(shape, 0), dtype))
  return tf.linalg.diag(tf.ones(_checks.static_dim(shape, 0), dtype))


def diagonal_covariance_initializer(shape, dtype, partition_info):
  """Initializer for diagonal covariance variables (stored densely).

  Args:
    shape: The variable shape.
    dtype: The variable dtype.
    partition_info: Unused; part of the initializer protocol.

  Returns:
    `ones(shape)`, or `zeros(shape)` when `INIT_COVARIANCES_AT_ZERO` is set.
  """
  if INIT_COVARIANCES_AT_ZERO:
    return tf.zeros(shape, dtype)
  return tf.ones(shape, dtype)


def _compute_cov(tensor, normalizer=None):
  """Computes the symmetrised empirical second moment `XᵀX / normalizer`.

  Args:
    tensor: A 2-D Tensor `X` of shape `[N, d]`, one sample per row.
    normalizer: The divisor; defaults to the (dynamic) row count `N`.

  Returns:
    A `[d, d]` Tensor `(C + Cᵀ) / 2` with `C = XᵀX / normalizer`.
  """
  if normalizer is None:
    normalizer = tf.shape(tensor)[0]
  cov = tf.linalg.matmul(tensor, tensor, transpose_a=True) / tf.cast(
    normalizer, tensor.dtype
  )
  return (cov + tf.transpose(cov)) / tf.cast(2.0, cov.dtype)


def _append_homog(tensor):
  """Appends a homogeneous coordinate (a slice of ones) on the last axis.

  Args:
    tensor: A Tensor of known static rank, shape `[..., d]`.

  Returns:
    A Tensor of shape `[..., d + 1]` whose last entry along the last axis is 1.
  """
  rank = len(_checks.static_shape_list(tensor))
  shape = tf.concat([tf.shape(tensor)[:-1], [1]], axis=0)
  ones = tf.ones(shape, dtype=tensor.dtype)
  return tf.concat([tensor, ones], axis=rank - 1)


# FullyConnectedKroneckerFactor: from this many rows and columns on, the
# statistic scales the (smaller) `[batch, d]` rows instead of the `[d, d]`
# products (`_prescaled_symmetric_gram`).
_PRESCALED_GRAM_MIN_SIZE = 256


def _prescaled_symmetric_gram(tensor, has_bias):
  """`_compute_cov` of `tensor` (a ones column appended if `has_bias`).

  `(TᵀT + (TᵀT)ᵀ) / (2N)` computed as `SᵀS + (SᵀS)ᵀ` with `S = T / √(2N)`,
  N the (dynamic) row count: the scaling touches the `[N, d]` rows instead
  of two passes over the `[d, d]` result (for fully-connected layers N is
  usually far below d). Equal to `_compute_cov` up to float rounding, and
  exactly symmetric.

  Args:
    tensor: A `[N, d]` float Tensor.
    has_bias: Python bool; whether a column of ones is appended.

  Returns:
    The `[d + has_bias, d + has_bias]` symmetric Tensor.
  """
  rows = tf.shape(tensor)[0]
  scale = tf.cast(1.0, tensor.dtype) / tf.sqrt(tf.cast(2 * rows, tensor.dtype))
  scaled = tensor * scale
  if has_bias:
    column = tf.fill(tf.stack([rows, 1]), scale)
    scaled = tf.concat([scaled, column], axis=1)
  gram = tf.linalg.matmul(scaled, scaled, transpose_a=True)
  return gram + tf.transpose(gram)


def scope_string_from_params(params):
  """Builds a variable-scope-safe string from a list of parameters.

  Each element becomes a part: an all-int tuple/list is joined with `-`
  (`(5, 5, 1, 16)` gives `5-5-1-16`), any other tuple/list and every
  Tensor/Variable goes through `scope_string_from_name`, and a `str`, `int`
  or `bool` is written with `str`. The parts are joined with `_`.

  Args:
    params: A parameter, or a tuple/list of parameters.

  Returns:
    The scope string.

  Raises:
    ValueError: If an element has an unsupported type (e.g. a Python float).
  """
  if not isinstance(params, (tuple, list)):
    params = (params,)

  name_parts = []
  for param in params:
    if isinstance(param, (tuple, list)):
      if all(isinstance(p, int) for p in param):
        name_parts.append("-".join(str(p) for p in param))
      else:
        name_parts.append(scope_string_from_name(param))
    elif isinstance(param, (str, int, bool)):
      name_parts.append(str(param))
    elif isinstance(param, (tf.Tensor, tf.Variable)):
      name_parts.append(scope_string_from_name(param))
    else:
      raise ValueError(
        "Encountered an unsupported param type {}".format(type(param))
      )
  return "_".join(name_parts)


def scope_string_from_name(tensor):
  """Turns a tensor name (or a nest of them) into a scope-safe string.

  The `:<output index>` suffix is dropped and every `/` becomes `_`
  (`gradients/add_4_grad/Reshape:0` gives `gradients_add_4_grad_Reshape`);
  the strings of a tuple/list are joined with `__`.

  Args:
    tensor: A Tensor or Variable, or a tuple/list of them (nested).

  Returns:
    The scope string.
  """
  if isinstance(tensor, (tuple, list)):
    return "__".join(scope_string_from_name(t) for t in tensor)
  return tensor.name.split(":")[0].replace("/", "_")


def scalar_or_tensor_to_string(val):
  """Writes a scalar with `repr`, anything else with `scope_string_from_name`.

  Examples: `0.1` gives `0.1`, `1e-5` gives `1e-05`, a Tensor named
  `mul_3:0` gives `mul_3`.

  Args:
    val: A Python/NumPy scalar or a Tensor.

  Returns:
    The string.
  """
  return repr(val) if np.isscalar(val) else scope_string_from_name(val)


# ---------------------------------------------------------------------------
# Argument checking.
# ---------------------------------------------------------------------------


def _nameable(value):
  """`value` with NumPy scalars/arrays as Python ints/lists, bytes decoded.

  `scope_string_from_params` then names NumPy strides like the equal list
  and `b"SAME"` like `"SAME"`; other values are left for it to name (or
  reject) as TensorFlow 1.4 did.
  """
  if isinstance(value, bytes):
    return value.decode("ascii", "replace")
  if isinstance(value, np.ndarray):
    value = value.tolist()
  if isinstance(value, (tuple, list)) and all(_checks.is_int(v) for v in value):
    return [int(v) for v in value]
  if _checks.is_int(value):
    return int(value)
  return value


def _named_sources(arg_name, tensors):
  """`(("<arg_name>[i]", tensor), ...)`, for `FisherFactor._float_inputs`."""
  return tuple(("{}[{}]".format(arg_name, i), t) for i, t in enumerate(tensors))


def _params_grads_column_size(params_grads):
  """Checks `params_grads`; returns the length of one source's column.

  Builds no op: the sizes come from the static shapes.

  Args:
    params_grads: A non-empty tuple/list over sources; each entry is a
      Tensor or a tuple/list of Tensors with static shapes.

  Returns:
    The number of gradient elements of each source, an int.

  Raises:
    ValueError: If `params_grads` is empty or not a tuple/list, or a column
      size is not static or differs between sources.
    TypeError: If a gradient is not a Tensor.
  """
  if not isinstance(params_grads, (tuple, list)) or not params_grads:
    raise ValueError(
      "params_grads must be a non-empty tuple/list with one "
      "entry per source, got {!r}.".format(params_grads)
    )
  sizes = []
  for i, params_grad in enumerate(params_grads):
    grads = (
      params_grad if isinstance(params_grad, (tuple, list)) else (params_grad,)
    )
    size = 0
    for j, grad in enumerate(grads):
      _checks.check_tensor(grad, "params_grads[{}][{}]".format(i, j))
      shape = _checks.static_shape_list(grad)
      if size is not None and shape is not None and None not in shape:
        size += int(np.prod(shape, dtype=np.int64))
      else:
        size = None
    if size is None or not grads:
      raise ValueError(
        "params_grads[{}] must have fully defined static "
        "shapes; got {}.".format(i, params_grad)
      )
    if sizes and size != sizes[0]:
      raise ValueError(
        "params_grads[{}] has {} elements but params_grads[0] has {}: every"
        " source must hold gradients of the same parameters.".format(
          i, size, sizes[0]
        )
      )
    sizes.append(size)
  return sizes[0]


def _flat_params_grads_columns(params_grads):
  """Checks `params_grads` and flattens each source into one column.

  Args:
    params_grads: As for `_params_grads_column_size`.

  Returns:
    A list with, per source, `utils.tensors_to_column` of its gradients.

  Raises:
    ValueError: As `_params_grads_column_size`.
    TypeError: As `_params_grads_column_size`.
  """
  _params_grads_column_size(params_grads)
  return [utils.tensors_to_column(g) for g in params_grads]


def _check_static_dim(tensors, axis, arg_name, what):
  """Checks that `axis` is statically known and equal across `tensors`.

  Args:
    tensors: A tuple of Tensors (already rank-checked).
    axis: The axis to check.
    arg_name: The argument's name, for messages.
    what: What the axis holds (for messages), e.g. "features".

  Returns:
    The common static size along `axis`.

  Raises:
    ValueError: If a size is unknown or the sizes differ.
  """
  sizes = [_checks.static_dim(t, axis) for t in tensors]
  for i, size in enumerate(sizes):
    if size is None:
      raise ValueError(
        "{}[{}] must have a statically known number of {} (axis {}), got "
        "shape {}.".format(
          arg_name, i, what, axis, _checks.format_shape(tensors[i])
        )
      )
    if size != sizes[0]:
      raise ValueError(
        "{}[{}] has {} {} but {}[0] has {}: all sources must agree.".format(
          arg_name, i, size, what, arg_name, sizes[0]
        )
      )
  return sizes[0]


def _grouped_filter_gradient_supported():
  """Whether graphs built here may use grouped `conv2d_backprop_filter`.

  TensorFlow's oneDNN CPU kernels (float32) compute filter gradients of
  grouped convolutions; its Eigen kernels (float64, oneDNN disabled, other
  CPUs) and its GPU kernels reject them when the graph runs. The answer is
  decided when the graph is built, without running anything: yes on x86-64
  machines without a visible GPU whose TensorFlow has not been told to turn
  oneDNN off (`TF_ENABLE_ONEDNN_OPTS` = 0 or false). A graph built here
  and run on a machine that lacks the kernel fails there when run.

  Returns:
    Python bool.
  """
  global _GROUPED_FILTER_GRADIENT_SUPPORTED
  if _GROUPED_FILTER_GRADIENT_SUPPORTED is None:
    onednn_off = os.environ.get(
      "TF_ENABLE_ONEDNN_OPTS", ""
    ).strip().lower() in ("0", "false", "off", "no")
    _GROUPED_FILTER_GRADIENT_SUPPORTED = bool(
      platform.machine().lower() in ("x86_64", "amd64")
      and not onednn_off
      and not tf.config.list_physical_devices("GPU")
    )
  return _GROUPED_FILTER_GRADIENT_SUPPORTED


def _common_float_dtype(tensors):
  """float64 if any tensor is float64, else float32 (the compute dtype)."""
  if any(t.dtype.base_dtype == tf.float64 for t in tensors):
    return tf.float64
  return tf.float32


def _sum_of_squares(tensor, axis):
  """Σ x² along `axis`, as the square of a Euclidean norm.

  One fused reduction instead of a squared copy of `tensor` and a sum
  (about twice as fast on large tensors); equal up to rounding.

  Args:
    tensor: A float Tensor.
    axis: The axis to reduce.

  Returns:
    The reduced Tensor.
  """
  return tf.square(tf.math.reduce_euclidean_norm(tensor, axis=axis))


def _fold_batch_into_channels(tensor):
  """`[B, H, W, C]` → `[1, H, W, B·C]`, channel index b·C + c."""
  folded = tf.transpose(tensor, [1, 2, 0, 3])
  return tf.reshape(
    folded, tf.concat([[1], tf.shape(folded)[:2], [-1]], axis=0)
  )


# ---------------------------------------------------------------------------
# Exponential moving averages.
# ---------------------------------------------------------------------------


def _assign_moving_average(variable, value, decay, zero_debias):
  """Moves `variable` towards `value`: `v ← decay·v + (1 − decay)·value`.

  Reproduces `moving_averages.assign_moving_average` of TensorFlow 1.4 with
  public ops. Without zero-debiasing the update is the assignment
  `v ← v − (1 − decay)·(v − value)`. With it, the variable gets
  `biased / (1 − decay^t)`, where `biased` is the moving average started at
  zero and `t` the update count, both kept in the helper variables
  `<variable op name>/biased` and `<variable op name>/local_step` (the names
  TensorFlow 1.4 used).

  Args:
    variable: A float Variable.
    value: A Tensor of the variable's shape.
    decay: The decay, a float or a scalar Tensor.
    zero_debias: Python bool.

  Returns:
    The assignment: running it performs the update and yields the new value.
  """
  with tf.name_scope("AssignMovingAvg") as scope:
    # A Python decay is made a constant of the variable's dtype directly
    # (no float32 rounding for float64 variables).
    one_minus_decay = _ops.in_dtype(
      1.0 - decay, variable.dtype.base_dtype, name="decay"
    )
    value = tf.cast(value, variable.dtype.base_dtype)
    if zero_debias:
      return variable.assign(
        _zero_debiased_value(variable, value, one_minus_decay), name=scope
      )
    return variable.assign_sub((variable - value) * one_minus_decay, name=scope)


def _zero_debiased_value(unbiased_var, value, one_minus_decay):
  """Updates the zero-debias helper variables; returns the debiased value.

  Args:
    unbiased_var: The variable holding the debiased moving average.
    value: The new observation.
    one_minus_decay: `1 − decay`, a scalar Tensor.

  Returns:
    `biased / (1 − decay^t)` computed after the helpers' updates.
  """
  with tf.compat.v1.variable_scope(
    unbiased_var.op.name,
    values=[unbiased_var, value, one_minus_decay],
    reuse=tf.compat.v1.AUTO_REUSE,
  ):
    with tf.control_dependencies(None):
      biased_var = tf.compat.v1.get_variable(
        "biased",
        shape=unbiased_var.shape,
        dtype=unbiased_var.dtype,
        initializer=tf.compat.v1.zeros_initializer(),
        trainable=False,
      )
      local_step = tf.compat.v1.get_variable(
        "local_step",
        shape=[],
        dtype=unbiased_var.dtype,
        initializer=tf.compat.v1.zeros_initializer(),
        trainable=False,
      )
    update_biased = biased_var.assign_sub(
      (biased_var - value) * one_minus_decay
    )
    update_local_step = local_step.assign_add(1)
    with tf.control_dependencies([update_biased, update_local_step]):
      bias_factor = 1 - tf.pow(1.0 - one_minus_decay, local_step.read_value())
      return biased_var.read_value() / bias_factor


# ---------------------------------------------------------------------------
# Base classes.
# ---------------------------------------------------------------------------


class FisherFactor(object, metaclass=abc.ABCMeta):
  """Abstract base of the statistics that K-FAC's Fisher blocks are built from.

  A factor owns a covariance variable `cov`, created in `__init__` under
  `variable_scope(self._var_scope)`, and builds the op that updates it with
  an exponential moving average of a statistic. Subclasses define the
  properties `_var_scope`, `_cov_shape` and `_num_sources` and the method
  `_compute_new_cov(idx)` (the statistic of source `idx`); they must set
  whatever these need before calling `FisherFactor.__init__`.
  """

  # (argument name, Tensor) pairs that must be floating point by the time
  # the covariance update is built; set by subclasses.
  _float_inputs = ()

  # Whether the factor computes its statistic and inverses with the 2017
  # formulations (set by the private reference subclasses, see
  # `_reference_factor_class`; oracles in tests, baselines in benchmarks).
  _reference_formulation = False

  def __init__(self):
    """Creates the covariance variable (see `instantiate_covariance`)."""
    self.instantiate_covariance()

  @property
  @abc.abstractmethod
  def _var_scope(self):
    """The variable scope of the factor's variables (a string)."""
    pass

  @property
  @abc.abstractmethod
  def _cov_shape(self):
    """The shape of the covariance variable."""
    pass

  @property
  @abc.abstractmethod
  def _num_sources(self):
    """The number of gradient sources the statistic is summed over."""
    pass

  @property
  def _cov_initializer(self):
    """The initializer of the covariance variable."""
    return covariance_initializer

  def instantiate_covariance(self):
    """Creates the covariance variable and keeps it as `_cov`.

    The variable is `<current scope>/<_var_scope>/cov`, float32,
    non-trainable, of shape `_cov_shape`.
    """
    with tf.compat.v1.variable_scope(self._var_scope):
      self._cov = tf.compat.v1.get_variable(
        "cov",
        initializer=self._cov_initializer,
        shape=self._cov_shape,
        dtype=self._variable_dtype,
        trainable=False,
      )

  # Attributes in which the factors keep their data, searched in this order
  # for the dtype of the data (releases whose variables follow it).
  _DATA_ATTRIBUTES = (
    "_params_grads_flat",
    "_params_grads",
    "_outputs_grads",
    "_checked_inputs",
    "_inputs",
    "_tensors",
    "_tensor_lists",
  )

  def _first_data_tensor(self):
    """The first Tensor among the factor's data, or None."""
    for name in self._DATA_ATTRIBUTES:
      for tensor in tf.nest.flatten(getattr(self, name, None)):
        if isinstance(tensor, (tf.Tensor, tf.Variable)):
          return tensor
    return None

  def _cov_ops_colocation(self):
    """Where the statistics are computed: next to the data, or anywhere.

    The seed and 1.4 never colocate. Release 1.5 colocates the factors of a
    `LayerCollection(colocate_cov_ops_with_inputs=True)`; 1.6 and 1.7 follow
    the module switch `COLOCATE_COV_OPS_WITH_INPUTS` (default True there).

    Returns:
      A context manager.
    """
    mode = _releases.of(self).cov_ops_colocation
    if mode == "collection_flag":
      flag = getattr(self, "_colocate_cov_ops_with_inputs", False)
    elif mode == "global":
      flag = globals().get("COLOCATE_COV_OPS_WITH_INPUTS", False)
    else:
      flag = False
    tensor = self._first_data_tensor() if flag else None
    if tensor is None:
      return contextlib.nullcontext()
    return _ops.colocate_with(tensor)

  @property
  def _variable_dtype(self):
    """The dtype of the factor's variables.

    float32, or (from release 1.5) the dtype of its data (the first floating
    tensor it was given).
    """
    if not _releases.of(self).factor_dtype_follows_data:
      return tf.float32
    for name in self._DATA_ATTRIBUTES:
      for tensor in tf.nest.flatten(getattr(self, name, None)):
        dtype = getattr(tensor, "dtype", None)
        if dtype is not None and dtype.base_dtype.is_floating:
          return dtype.base_dtype
    return tf.float32

  @abc.abstractmethod
  def _compute_new_cov(self, idx=0):
    """Computes the statistic of one source.

    Args:
      idx: Index of the source.

    Returns:
      A Tensor of shape `_cov_shape`.
    """
    pass

  def _compute_total_new_cov(self):
    """The statistic summed over all sources (`add_n` of `_compute_new_cov`)."""
    return tf.add_n(
      [self._compute_new_cov(idx) for idx in range(self._num_sources)]
    )

  def make_covariance_update_op(self, ema_decay):
    """Builds the op that folds a new statistic into the covariance.

    The op sets `cov ← ema_decay·cov + (1 − ema_decay)·Σ_i new_cov_i`, the
    sum running over the sources; it is zero-debiased when `ZERO_DEBIAS` is
    set when the op is built. A new op is built on every call.

    Inputs of the statistic that are not floating point raise a
    `TypeError` naming the argument here (they are accepted when the factor
    is built, as in TensorFlow 1.4).

    Args:
      ema_decay: Decay of the moving average, a float or a scalar Tensor.
    Returns:
      The update: running it assigns the new value of `cov` and yields it.
    """
    return self._covariance_update(ema_decay, counter=None)

  def _new_cov_in_dtype(self):
    """The summed new statistic, in the covariance variable's dtype.

    Built next to the factor's data when the release colocates covariance
    ops (see `_cov_ops_colocation`).
    """
    with self._cov_ops_colocation():
      return tf.cast(self._compute_total_new_cov(), self._cov.dtype.base_dtype)

  def _make_guarded_covariance_update_op(self, ema_decay, counter):
    """`make_covariance_update_op` that keeps `cov` if the statistic is not finite.

    The ops are those of `make_covariance_update_op`, in the same order and
    scopes, plus the guard ops of `_nonfinite.guarded_updates` (under
    `_nonfinite.GUARD_SCOPE`, the finiteness test being
    `_statistic_is_finite`); with a finite statistic the new covariance is
    bit-identical. A zero-debiased update is skipped whole.

    Args:
      ema_decay: Decay of the moving average, a float or a scalar Tensor.
      counter: The `_nonfinite.SkipCounter` that counts a skip; the update
        depends on its count op.

    Returns:
      The update (as `make_covariance_update_op`).
    """
    return self._covariance_update(ema_decay, counter=counter)

  def _covariance_update(self, ema_decay, counter):
    """The moving average of `cov`, guarded if `counter` is not None.

    Inputs of the statistic that are not floating point raise a `TypeError`
    naming the argument, with or without the guard.

    Args:
      ema_decay: Decay of the moving average, a float or a scalar Tensor.
      counter: None (the plain update), or the `_nonfinite.SkipCounter`
        that counts a skip.

    Returns:
      The update of `cov`.
    """
    for arg_name, value in self._float_inputs:
      _checks.check_floating(value, arg_name)

    def update(variable, value):
      return _assign_moving_average(
        variable, value, ema_decay, zero_debias=ZERO_DEBIAS
      )

    return _nonfinite.guarded_updates(
      [(self._cov, self._new_cov_in_dtype())],
      counter,
      update,
      whole=ZERO_DEBIAS,
      check=lambda values: self._statistic_is_finite(values[0]),
    )[0]

  def _statistic_is_finite(self, new_cov):
    """A scalar bool Tensor: `new_cov` (the new statistic) has no NaN or Inf.

    Args:
      new_cov: The summed new statistic, in the covariance dtype.

    Returns:
      A scalar bool Tensor.
    """
    return _nonfinite.all_finite([new_cov])

  def make_inverse_update_ops(self):
    """Returns the ops that refresh the registered inverses and powers.

    The base factor registers nothing, so the list is empty.
    """
    return []

  def _make_guarded_inverse_update_ops(self, counter):
    """The guarded inverse updates (none for the base factor)."""
    del counter  # No inverses to guard.
    return []

  def get_cov(self):
    """Returns the covariance variable `cov`."""
    return self._cov


class InverseProvidingFactor(FisherFactor):
  """A factor with a square PSD covariance that also serves its inverses.

  The covariance `cov` must be a square, symmetric PSD matrix. Damped inverses
  `(cov + d·I)⁻¹` and damped matrix powers `(cov + d·I)^e` are registered by
  damping `d` (a float, or a Tensor compared by identity) and kept in
  identity-initialised variables `inv_damp<d>` and `matpower_exp<e>_damp<d>`
  next to `cov`, refreshed by the ops of `make_inverse_update_ops`.
  """

  def __init__(self):
    """Creates the bookkeeping for inverses, then the covariance variable."""
    self._inverses_by_damping = {}
    self._matpower_by_exp_and_damping = {}
    self._eigendecomp = None

    super(InverseProvidingFactor, self).__init__()

  def register_damped_inverse(self, damping):
    """Asks the factor to keep `(cov + damping·I)⁻¹` up to date.

    Creates the identity-initialised variable `inv_damp<damping>` next to
    `cov`; `make_inverse_update_ops` then includes its refresh and
    `get_inverse(damping)` returns it. A damping seen before (an equal float,
    or the same Tensor) adds nothing.

    Args:
      damping: The damping value (float or Tensor) for this factor.
    """
    if damping not in self._inverses_by_damping:
      damping_string = scalar_or_tensor_to_string(damping)
      with tf.compat.v1.variable_scope(self._var_scope):
        inv = tf.compat.v1.get_variable(
          "inv_damp" + damping_string,
          initializer=inverse_initializer,
          shape=self._cov_shape,
          dtype=self._variable_dtype,
          trainable=False,
        )
      self._inverses_by_damping[damping] = inv

  def register_matpower(self, exp, damping):
    """Asks the factor to keep `(cov + damping·I)^exp` up to date.

    Creates the identity-initialised variable
    `matpower_exp<exp>_damp<damping>` next to `cov`; `make_inverse_update_ops`
    then includes its refresh (always through an eigendecomposition) and
    `get_matpower(exp, damping)` returns it. A pair seen before adds
    nothing.

    Args:
      exp: The exponent (float or Tensor) to raise the matrix to.
      damping: The damping value (float or Tensor).
    """
    if (exp, damping) not in self._matpower_by_exp_and_damping:
      exp_string = scalar_or_tensor_to_string(exp)
      damping_string = scalar_or_tensor_to_string(damping)
      with tf.compat.v1.variable_scope(self._var_scope):
        matpower = tf.compat.v1.get_variable(
          "matpower_exp" + exp_string + "_damp" + damping_string,
          initializer=inverse_initializer,
          shape=self._cov_shape,
          dtype=self._variable_dtype,
          trainable=False,
        )
      self._matpower_by_exp_and_damping[(exp, damping)] = matpower

  def register_eigendecomp(self):
    """Registers an eigendecomposition of the covariance.

    Builds (once) `tf.linalg.eigh(cov)`, a pair `(eigenvalues, eigenvectors)`
    recomputed from the current `cov` whenever it is evaluated; only the
    lower triangle of `cov` is read.
    """
    if self._eigendecomp is None:
      self._eigendecomp = tf.linalg.eigh(self._cov)

  def make_inverse_update_ops(self):
    """Returns the ops that refresh the registered inverses and powers.

    With an eigendecomposition registered, any matrix power registered, or
    at least `EIGENVALUE_DECOMPOSITION_THRESHOLD` damped inverses, every
    variable is computed from one eigendecomposition `cov = V diag(λ) Vᵀ`
    with `λ' = max(λ, EIGENVALUE_CLIPPING_THRESHOLD)`: the inverse for
    damping d is `V diag(1 / (λ' + d)) Vᵀ` and the power e is
    `V diag((λ' + d)^e) Vᵀ`. Otherwise each inverse is `utils.posdef_inv(cov,
    d)` (Cholesky by default). The result is a flat list with one assign op
    per registered inverse, then one per registered matrix power.
    """
    return self._grouped_by_release(
      [variable.assign(value) for variable, value in self._inverse_updates()]
    )

  def _grouped_by_release(self, ops):
    """`ops`, or one op grouping them on the eigen path from release 1.5."""
    if (
      ops
      and self._on_eigen_path
      and (_releases.of(self).eigen_inverses_grouped)
    ):
      return [tf.group(*ops)]
    return ops

  def _make_guarded_inverse_update_ops(self, counter):
    """`make_inverse_update_ops` that keeps each variable if its new value is not finite.

    Args:
      counter: The `_nonfinite.SkipCounter` that counts each skip; every
        update depends on its count op.

    Returns:
      The list of `make_inverse_update_ops`, each assignment keeping the
      variable's value when the new one is not finite (a failed Cholesky
      factorisation gives NaNs, so it is caught too).
    """
    return self._grouped_by_release(
      [
        _nonfinite.guarded_assign(variable, value, counter, one_scope=True)
        for variable, value in self._inverse_updates()
      ]
    )

  def _inverse_updates(self):
    """The `(variable, new value)` pairs of `make_inverse_update_ops`."""
    updates = []
    num_inverses = len(self._inverses_by_damping)
    matrix_power_registered = bool(self._matpower_by_exp_and_damping)
    use_eig = (
      self._eigendecomp is not None
      or matrix_power_registered
      or num_inverses >= EIGENVALUE_DECOMPOSITION_THRESHOLD
    )

    self._on_eigen_path = use_eig
    if use_eig:
      self.register_eigendecomp()
      eigenvalues, eigenvectors = self._eigendecomp
      clipped_eigenvalues = tf.maximum(
        eigenvalues, tf.cast(EIGENVALUE_CLIPPING_THRESHOLD, eigenvalues.dtype)
      )
      for damping, inv in self._inverses_by_damping.items():
        damped = clipped_eigenvalues + _ops.in_dtype(damping, eigenvalues.dtype)
        updates.append(
          (
            inv,
            tf.linalg.matmul(
              eigenvectors / damped, eigenvectors, transpose_b=True
            ),
          )
        )
      for (exp, damping), matpower in self._matpower_by_exp_and_damping.items():
        damped = clipped_eigenvalues + _ops.in_dtype(damping, eigenvalues.dtype)
        updates.append(
          (
            matpower,
            tf.linalg.matmul(
              eigenvectors * damped ** tf.cast(exp, eigenvalues.dtype),
              eigenvectors,
              transpose_b=True,
            ),
          )
        )
    else:
      for damping, inv in self._inverses_by_damping.items():
        # `_cov` may be any tensor-like (the 2017 tests put a constant
        # there).
        posdef_inv = (
          utils._reference_posdef_inv
          if self._reference_formulation
          else utils.posdef_inv
        )
        updates.append(
          (inv, posdef_inv(tf.convert_to_tensor(self._cov), damping))
        )
    return updates

  def get_inverse(self, damping):
    """Returns the variable holding `(cov + damping·I)⁻¹`.

    Args:
      damping: A damping registered with `register_damped_inverse`.

    Returns:
      The inverse variable.

    Raises:
      KeyError: If `damping` was not registered.
    """
    return self._inverses_by_damping[damping]

  def get_matpower(self, exp, damping):
    """Returns the variable holding `(cov + damping·I)^exp`.

    Args:
      exp: An exponent registered with `register_matpower`.
      damping: The damping registered with it.

    Returns:
      The matrix-power variable.

    Raises:
      KeyError: If `(exp, damping)` was not registered.
    """
    return self._matpower_by_exp_and_damping[(exp, damping)]

  def get_eigendecomp(self):
    """Returns `None`, or the registered `(eigenvalues, eigenvectors)` pair.

    The eigenvalues are not clipped.
    """
    return self._eigendecomp


class FullFactor(InverseProvidingFactor):
  """The whole Fisher block of arbitrary parameters, as one dense matrix.

  The estimate squares the gradient summed over the batch, so it works for
  any kind of parameter but is very noisy: for source i with the gradients
  of all parameters flattened into the column `g_i`, the statistic is
  `g_i g_iᵀ / batch_size`.
  """

  def __init__(self, params_grads, batch_size):
    """Creates a FullFactor.

    Args:
      params_grads: A tuple/list over sources; each entry is the gradient of
        the loss with respect to the parameters (a Tensor, or a tuple/list of
        Tensors, which are flattened and concatenated).
      batch_size: The batch size (int or scalar Tensor).
    """
    params_grads_flat = _flat_params_grads_columns(params_grads)
    self._float_inputs = _named_sources("params_grads", params_grads_flat)
    self._batch_size = batch_size
    self._orig_params_grads_name = scope_string_from_params(
      [params_grads, self._batch_size]
    )
    self._params_grads_flat = params_grads_flat
    super(FullFactor, self).__init__()

  @property
  def _var_scope(self):
    return "ff_full/" + self._orig_params_grads_name

  @property
  def _cov_shape(self):
    size = _checks.static_dim(self._params_grads_flat[0], 0)
    return [size, size]

  @property
  def _num_sources(self):
    return len(self._params_grads_flat)

  def _compute_new_cov(self, idx=0):
    # This will be a very basic rank 1 estimate
    params_grads_flat = self._params_grads_flat[idx]
    return tf.linalg.matmul(
      params_grads_flat, params_grads_flat, transpose_b=True
    ) / tf.cast(self._batch_size, params_grads_flat.dtype)


class DiagonalFactor(FisherFactor):
  """Abstract base of the factors that keep only a diagonal of the Fisher.

  The covariance variable holds the diagonal only (in the layer's parameter
  layout) and starts at all-ones (`diagonal_covariance_initializer`). A
  diagonal needs no inverse variables: blocks divide by `cov + damping`.
  """

  def __init__(self):
    """Creates the covariance variable."""
    super(DiagonalFactor, self).__init__()

  @property
  def _cov_initializer(self):
    return diagonal_covariance_initializer


class NaiveDiagonalFactor(DiagonalFactor):
  """The diagonal of the Fisher block of arbitrary parameters.

  Like `FullFactor`, it squares the gradient summed over the batch (any kind
  of parameter, very noisy estimate), keeping only the diagonal: the
  statistic of source i is `g_i ⊙ g_i / batch_size`, `g_i` the
  column of all parameter gradients.
  """

  def __init__(self, params_grads, batch_size):
    """Creates a NaiveDiagonalFactor.

    Args:
      params_grads: A tuple/list over sources; each entry is the gradient of
        the loss with respect to the parameters (a Tensor, or a tuple/list of
        Tensors, which are flattened and concatenated).
      batch_size: The batch size (int or scalar Tensor).
    """
    self._batch_size = batch_size
    self._size = _params_grads_column_size(params_grads)
    if _releases.of(self).naming in ("1.4", "1.5"):
      # Named after (and built from) the flattened columns, made now.
      self._params_grads = _flat_params_grads_columns(params_grads)
    else:
      # From 1.6: named after the gradients; columns made in the update op.
      self._params_grads = params_grads
    self._float_inputs = tuple(
      ("params_grads[{}]".format(i), grad)
      for i, grads in enumerate(self._params_grads)
      for grad in tf.nest.flatten(grads)
    )
    super(NaiveDiagonalFactor, self).__init__()

  @property
  def _var_scope(self):
    return "ff_naivediag/" + scope_string_from_params(
      [self._params_grads, self._batch_size]
    )

  @property
  def _cov_shape(self):
    return [self._size, 1]

  @property
  def _num_sources(self):
    return len(self._params_grads)

  def _compute_new_cov(self, idx=0):
    column = self._params_grads[idx]
    if _releases.of(self).naming not in ("1.4", "1.5"):
      column = utils.tensors_to_column(column)
    return tf.square(column) / tf.cast(self._batch_size, column.dtype)


class FullyConnectedDiagonalFactor(DiagonalFactor):
  """The diagonal of a fully-connected layer's Fisher block.

  With inputs `a` (`[batch_size, input_size]`, a column of ones appended when
  the layer has a bias) and output gradients `g` (`[batch_size,
  output_size]`), the per-example weight gradient is the outer product
  `a_n g_nᵀ`. The statistic is the batch mean of its elementwise square,
  `mean_n (a_n g_nᵀ) ⊙ (a_n g_nᵀ)`, computed as `(a ⊙ a)ᵀ (g ⊙ g) /
  batch_size`; shape `[input_size (+1), output_size]`.
  """

  def __init__(self, inputs, outputs_grads, has_bias=False):
    """Creates a FullyConnectedDiagonalFactor.

    Args:
      inputs: The layer's inputs, `[batch_size, input_size]`.
      outputs_grads: One Tensor per source, each `[batch_size, output_size]`:
        the gradients of the loss with respect to the layer's outputs
        (pre-activations).
      has_bias: Python bool; whether the layer also has a bias, in which case
        the inputs get a trailing column of ones.
    """
    checked_inputs = _checks.check_tensor(inputs, "inputs", rank=2)
    checked_grads = _checks.check_tensor_list(
      outputs_grads, "outputs_grads", rank=2
    )
    if _checks.static_dim(checked_inputs, 1) is None:
      raise ValueError(
        "inputs must have a statically known number of "
        "features (axis 1), got shape {}.".format(
          _checks.format_shape(checked_inputs)
        )
      )
    _check_static_dim(checked_grads, 1, "outputs_grads", "outputs")
    if _checks.is_tensor_like(outputs_grads):
      outputs_grads = (outputs_grads,)
    self._outputs_grads = checked_grads
    self._float_inputs = (("inputs", checked_inputs),) + _named_sources(
      "outputs_grads", checked_grads
    )
    self._batch_size = tf.shape(checked_inputs)[0]
    self._orig_tensors_name = scope_string_from_params(
      (inputs,) + tuple(outputs_grads)
    )

    if has_bias:
      checked_inputs = _append_homog(checked_inputs)
    self._squared_inputs = tf.square(checked_inputs)

    super(FullyConnectedDiagonalFactor, self).__init__()

  @property
  def _var_scope(self):
    return "ff_diagfc/" + self._orig_tensors_name

  @property
  def _cov_shape(self):
    return [
      _checks.static_dim(self._squared_inputs, 1),
      _checks.static_dim(self._outputs_grads[0], 1),
    ]

  @property
  def _num_sources(self):
    return len(self._outputs_grads)

  def _compute_new_cov(self, idx=0):
    dtype = _common_float_dtype(
      [self._squared_inputs, self._outputs_grads[idx]]
    )
    squared_outputs_grads = tf.square(tf.cast(self._outputs_grads[idx], dtype))
    return tf.linalg.matmul(
      tf.cast(self._squared_inputs, dtype),
      squared_outputs_grads,
      transpose_a=True,
    ) / tf.cast(self._batch_size, dtype)


class FullyConnectedKroneckerFactor(InverseProvidingFactor):
  """Kronecker factor for the input or output side of a fully-connected layer.

  For source i with `t_i` the `[batch_size, d]` Tensor (a column of ones
  appended if `has_bias`), the statistic is `t_iᵀ t_i / batch_size`,
  symmetrised. From 256 columns on (with the ones) the rows are scaled by
  `1 / √(2·batch_size)` before the product, which is then added to its
  transpose (the same value up to float rounding, with two fewer passes
  over the `[d, d]` result); smaller factors compute it as in 2017.
  """

  def __init__(self, tensors, has_bias=False):
    """Creates a FullyConnectedKroneckerFactor.

    Args:
      tensors: One `[batch_size, n]` Tensor per source: either the layer's
        inputs (input side) or the gradients with respect to its outputs
        (output side).
      has_bias: Python bool; for the input side of a layer with a bias, a
        column of ones is appended (the factor becomes `[n+1, n+1]`).
    """
    self._tensors = _checks.check_tensor_list(tensors, "tensors", rank=2)
    _check_static_dim(self._tensors, 1, "tensors", "features")
    self._float_inputs = _named_sources("tensors", self._tensors)
    if _checks.is_tensor_like(tensors):
      tensors = (tensors,)
    self._orig_tensors = tensors
    self._has_bias = has_bias
    super(FullyConnectedKroneckerFactor, self).__init__()

  @property
  def _var_scope(self):
    return "ff_fckron/" + scope_string_from_params(
      [self._orig_tensors, self._has_bias]
    )

  @property
  def _cov_shape(self):
    size = _checks.static_dim(self._tensors[0], 1) + self._has_bias
    return [size, size]

  @property
  def _num_sources(self):
    return len(self._tensors)

  @property
  def _prescaled(self):
    """Whether the statistic is computed by `_prescaled_symmetric_gram`."""
    size = _checks.static_dim(self._tensors[0], 1) + self._has_bias
    return not self._reference_formulation and size >= _PRESCALED_GRAM_MIN_SIZE

  def _compute_new_cov(self, idx=0):
    tensor = self._tensors[idx]
    if self._prescaled:
      return _prescaled_symmetric_gram(tensor, self._has_bias)
    if self._has_bias:
      tensor = _append_homog(tensor)
    return _compute_cov(tensor)

  def _statistic_is_finite(self, new_cov):
    """Whether the new statistic is finite, from the (smaller) rows first.

    For the prescaled statistic, every entry is at most
    `Σ_sources max|t_i|²` in magnitude up to rounding (Cauchy–Schwarz),
    and NaN or Inf rows make a diagonal entry NaN or Inf. So when every
    row entry is at most `√(M / (4·sources))`, M the largest finite value of
    the rows' and the covariance's dtypes, the statistic is finite; only
    otherwise are its `[d, d]` entries checked (in a `tf.cond`).

    Args:
      new_cov: The summed new statistic, in the covariance dtype.

    Returns:
      A scalar bool Tensor, True exactly when `new_cov` is finite.
    """
    if not self._prescaled:
      return super(FullyConnectedKroneckerFactor, self)._statistic_is_finite(
        new_cov
      )
    largest = min(
      [t.dtype.base_dtype.max for t in self._tensors]
      + [new_cov.dtype.base_dtype.max]
    )
    bound = float(np.sqrt(largest / (4.0 * len(self._tensors))))
    rows_bounded = tf.reduce_all(
      tf.stack(
        [
          tf.reduce_all(tf.abs(t) <= tf.cast(bound, t.dtype))
          for t in self._tensors
        ]
      )
    )
    return tf.cond(
      rows_bounded,
      lambda: tf.constant(True),
      lambda: _nonfinite.all_finite([new_cov]),
    )


class ConvInputKroneckerFactor(InverseProvidingFactor):
  """Kronecker factor for the input side of a convolutional layer.

  With `P` the image patches of the inputs (`extract_image_patches`,
  reshaped to rows of `kernel_height·kernel_width·in_channels` values, a one
  appended if `has_bias`), the statistic is `PᵀP / rows`, symmetrised, rows
  being batch_size × number of output locations. As in TensorFlow 1.4, the
  row width comes from `filter_shape`, not from the inputs' channels.

  Method: the patch matrix is not built. For kernel offsets d, d′ the block
  `Σ_patches x[s·i + d]ᵀ x[s·i + d′]` depends on the lag d′ − d and on
  which positions the offset's window leaves out. One filter gradient of
  the inputs with themselves gives every lag correlation over the whole
  image; thin strips along the borders (fewer than kernel_height / stride
  rows, kernel_width / stride columns) give the corrections for the
  left-out positions, and a sparse matmul scatters the signed sums into the
  `[kh·kw·in_channels, kh·kw·in_channels]` matrix. Strides above 1 first
  split the inputs into stride_h·stride_w phase images (`x[s·v + ρ]`,
  channels stacked) so that the offsets become stride-1 offsets of the
  phases. The bias row is the filter gradient for an all-ones output
  gradient, the patches' sum. The result equals the patch formulation up to
  floating-point rounding. It is used when the inputs' channel count is
  statically `filter_shape[2]` and the lags need at most half the
  products of the patch matrix (every kernel of at least 2×2 at stride 1;
  at larger strides, kernels large enough for their phases); otherwise the
  patch formulation runs. Batch and spatial sizes may be unknown when the
  graph is built (unknown spatial sizes pad the inputs explicitly).
  """

  def __init__(self, inputs, filter_shape, strides, padding, has_bias=False):
    """Creates a ConvInputKroneckerFactor.

    Args:
      inputs: The layer's inputs, `[batch_size, height, width, in_channels]`.
      filter_shape: 4 ints, `(kernel_height, kernel_width, in_channels,
        out_channels)`; the patch width comes from its first three.
      strides: 4 ints, `[1, stride_height, stride_width, 1]` (a list, tuple
        or 1-D Tensor with a value known when the graph is built).
      padding: The convolution's padding, "SAME" or "VALID".
      has_bias: Python bool; whether the layer has a bias, in which case
        every patch gets a trailing one.
    """
    # As in TensorFlow 1.4, the constructor reads only `filter_shape` (it
    # sizes the covariance); the other arguments are checked when the
    # statistic is built (`make_covariance_update_op`), where 1.4 first used
    # them.
    self._checked_filter_shape = _checks.check_filter_shape(filter_shape)
    self._strides = strides
    self._padding = padding
    self._has_bias = has_bias
    self._inputs = inputs
    super(ConvInputKroneckerFactor, self).__init__()

  @property
  def _var_scope(self):
    # The checked filter shape names the scope as the 2017 lists and tuples
    # did ("5-5-1-16"); NumPy strides are named like the equal list; a
    # strides Tensor keeps its tensor name, as in 2017.
    return "ff_convinkron/" + scope_string_from_params(
      [
        self._inputs,
        self._checked_filter_shape,
        _nameable(self._strides),
        _nameable(self._padding),
        self._has_bias,
      ]
    )

  @property
  def _cov_shape(self):
    filter_height, filter_width, in_channels, _ = self._checked_filter_shape
    size = filter_height * filter_width * in_channels + self._has_bias
    return [size, size]

  @property
  def _num_sources(self):
    return 1

  def _compute_new_cov(self, idx=0):
    if idx != 0:
      raise ValueError("ConvInputKroneckerFactor only supports idx = 0")

    inputs = _checks.check_tensor(self._inputs, "inputs", rank=4)
    _checks.check_floating(inputs, "inputs")
    strides = _checks.check_strides(self._strides)
    padding = _checks.check_padding(self._padding)
    if inputs.dtype.base_dtype not in (tf.float32, tf.float64):
      inputs = tf.cast(inputs, tf.float32)
    args = (inputs, self._checked_filter_shape, strides, padding)
    if not self._reference_formulation and _conv_stats.lag_formulation_applies(
      *args
    ):
      return _conv_stats.conv_input_second_moment(
        *args, has_bias=self._has_bias
      )
    return _conv_stats.reference_conv_input_second_moment(
      *args, has_bias=self._has_bias
    )


class ConvOutputKroneckerFactor(InverseProvidingFactor):
  """Kronecker factor for the output side of a convolutional layer.

  For source i, the gradients `[batch_size, height, width, out_channels]`
  reshaped to rows of `out_channels` values give the statistic
  `GᵀG / rows`, symmetrised (rows = batch_size·height·width).
  """

  def __init__(self, outputs_grads):
    """Creates a ConvOutputKroneckerFactor.

    Args:
      outputs_grads: One Tensor per source, each `[batch_size, out_height,
        out_width, out_channels]`: the gradients of the loss with respect to
        the layer's outputs.
    """
    if _checks.is_tensor_like(outputs_grads):
      outputs_grads = (outputs_grads,)
    if isinstance(outputs_grads, (tuple, list)) and outputs_grads:
      # As in TensorFlow 1.4: an IndexError for grads of rank < 4.
      self._out_channels = outputs_grads[0].shape.as_list()[3]
    self._checked_grads = _checks.check_tensor_list(
      outputs_grads, "outputs_grads", rank=4
    )
    _check_static_dim(self._checked_grads, 3, "outputs_grads", "channels")
    self._float_inputs = _named_sources("outputs_grads", self._checked_grads)
    self._outputs_grads = outputs_grads
    super(ConvOutputKroneckerFactor, self).__init__()

  @property
  def _var_scope(self):
    return "ff_convoutkron/" + scope_string_from_params(self._outputs_grads)

  @property
  def _cov_shape(self):
    return [self._out_channels, self._out_channels]

  @property
  def _num_sources(self):
    return len(self._checked_grads)

  def _compute_new_cov(self, idx=0):
    reshaped_tensor = tf.reshape(
      self._checked_grads[idx], [-1, self._out_channels]
    )
    return _compute_cov(reshaped_tensor)


class ConvDiagonalFactor(DiagonalFactor):
  """The diagonal of a 2-D convolution layer's Fisher block.

  The covariance is the batch mean of the squared per-example gradients of
  the filter (and bias): with x the inputs and g the gradients of one source,
  G_b[(di, dj, c), o] = sum over output positions (i, j) of
  x_pad[b, s_h·i + di, s_w·j + dj, c] · g[b, i, j, o], and the statistic is
  sum over b of G_b ⊙ G_b, divided by the batch size. Rows are ordered
  (di, dj, c) like a `[kernel_height·kernel_width·in_channels, out_channels]`
  reshape of the filter; with a bias, a last row holds the squared
  per-example bias gradients (sum over positions of g). The shape is
  `[kernel_height·kernel_width·in_channels + has_bias, out_channels]`.
  Sources are summed.

  Method: TensorFlow 1.4 extracted image patches (a tensor kernel_height ·
  kernel_width times the size of the inputs, slow to build) and contracted
  them with the gradients. Two formulations replace it; both do the minimum
  2·B·P·kernel_height·kernel_width·C·O flops per source (P output
  positions), contract all sources of an update op in one pass (their
  gradients concatenated along the channels) and agree with the patch
  formulation up to float32 rounding.

  "grouped_conv": with the batch folded into the channels (inputs
  `[1, H, W, B·C]`, gradients `[1, out_h, out_w, B·sources·O]`), the
  per-example filter gradients are the filter gradient of a convolution with B
  groups, one `conv2d_backprop_filter` call giving
  `[kernel_height, kernel_width, C, B·sources·O]`. When the spatial sizes are
  static, the batch is split into chunks of about 3 MiB of inputs, one
  source's gradients and their per-example filter gradients each, every chunk
  with its own folding and grouped filter gradient, and the chunks' sums of
  squares are added (small chunks keep the kernel's operands in cache). With a
  static batch size (of the inputs and of every gradient) the chunks are
  balanced and built when the graph is built, and may run concurrently; with
  an unknown batch size a `tf.while_loop` runs over chunks of that many
  examples (the last one shorter), its iterations allowed to overlap, after
  checking that inputs and gradients have the same batch size. Memory: one
  transposed copy of the inputs and of the gradients, plus the kernel's
  reordered copy of the gradients. It needs TensorFlow's oneDNN CPU kernels
  (float32), assumed when the graph is built on an x86-64 machine without a
  visible GPU and with oneDNN not turned off (`TF_ENABLE_ONEDNN_OPTS`);
  nothing is run to decide. It is used when that memory, 2·sources·O +
  stride_h·stride_w·C elements per output position, is at most the patches'
  kernel_height·kernel_width·C.

  "windows" (otherwise, e.g. one-channel images, float64, GPUs): the padded
  inputs are transposed once to channels-first and, for each kernel offset
  (di, dj), the strided window of the inputs seen by that offset is
  contracted with the gradients by one batched matmul
  `[B, C, P] × [B, P, sources·O]`. When C is below 8, consecutive offsets are
  stacked into groups of ceil(8 / C) windows (at most a third of the
  offsets) so that the matmuls do not degenerate into matrix-vector
  products. The groups run one after another (control dependencies), so
  besides the transposed padded inputs only one window group (twice, while
  it is stacked) and its `[B, group·C, sources·O]` product are alive at a
  time: at most two thirds of the patches, usually one or two copies of the
  inputs.

  The inputs-side tensors (the folded static chunks, or the transposed and
  padded inputs) are built in `__init__`; the rest when the update op is
  built.
  Arguments are checked at construction: wrong types or dtypes raise
  `TypeError`, wrong ranks, shapes, strides or padding raise `ValueError`,
  each naming the argument.
  """

  def __init__(
    self, inputs, outputs_grads, filter_shape, strides, padding, has_bias=False
  ):
    """Creates a ConvDiagonalFactor.

    Args:
      inputs: The layer's inputs, `[batch_size, height, width,
        in_channels]`; the batch size may be unknown.
      outputs_grads: One Tensor per source (a list or tuple; a single Tensor
        counts as one source), each `[batch_size, out_height, out_width,
        out_channels]`: the gradients of the loss with respect to the layer's
        outputs (pre-activations).
      filter_shape: 4 ints, `(kernel_height, kernel_width, in_channels,
        out_channels)`: the shape of the layer's filter.
      strides: 4 ints, `[1, stride_height, stride_width, 1]` (a list, tuple
        or 1-D Tensor with a value known when the graph is built).
      padding: The convolution's padding, "SAME" or "VALID".
      has_bias: Python bool; whether the layer has a bias besides its
        filter.
    """
    checked_inputs = _checks.check_tensor(inputs, "inputs", rank=4)
    checked_grads = _checks.check_tensor_list(
      outputs_grads, "outputs_grads", rank=4
    )
    self._float_inputs = (("inputs", checked_inputs),) + _named_sources(
      "outputs_grads", checked_grads
    )
    if _checks.is_tensor_like(outputs_grads):
      outputs_grads = (outputs_grads,)
    self._filter_shape = _checks.check_filter_shape(filter_shape)
    self._strides = _checks.check_strides(strides)
    self._padding = _checks.check_padding(padding)
    self._has_bias = has_bias
    kernel_h, kernel_w, in_channels, out_channels = self._filter_shape

    in_shape = checked_inputs.shape.as_list()
    if in_shape[3] is not None and in_shape[3] != in_channels:
      raise ValueError(
        "filter_shape[2] (in_channels = {}) must equal the channel count "
        "of inputs (shape {}).".format(
          in_channels, _checks.format_shape(checked_inputs)
        )
      )
    batch = in_shape[0]
    # Output geometry per spatial axis: (size, pad_before, pad_after).
    dynamic_shape = tf.shape(checked_inputs)
    geometry = []
    for axis, kernel, stride in (
      (1, kernel_h, self._strides[1]),
      (2, kernel_w, self._strides[2]),
    ):
      size = in_shape[axis]
      if size is not None and self._padding == "VALID" and size < kernel:
        raise ValueError(
          "filter_shape {} does not fit inputs of shape {} with VALID "
          "padding.".format(
            self._filter_shape, _checks.format_shape(checked_inputs)
          )
        )
      geometry.append(
        _checks.conv_output_size(
          size if size is not None else dynamic_shape[axis],
          kernel,
          stride,
          self._padding,
        )
      )
    out_h, out_w = geometry[0][0], geometry[1][0]

    for i, grad in enumerate(checked_grads):
      grad_shape = grad.shape.as_list()
      if grad_shape[3] is not None and grad_shape[3] != out_channels:
        raise ValueError(
          "outputs_grads[{}] has {} channels; filter_shape[3] "
          "(out_channels) is {}.".format(i, grad_shape[3], out_channels)
        )
      if (
        grad_shape[0] is not None
        and batch is not None
        and grad_shape[0] != batch
      ):
        raise ValueError(
          "outputs_grads[{}] has batch size {}, inputs have {}.".format(
            i, grad_shape[0], batch
          )
        )
      for axis, expected in ((1, out_h), (2, out_w)):
        if (
          isinstance(expected, int)
          and grad_shape[axis] is not None
          and grad_shape[axis] != expected
        ):
          raise ValueError(
            "outputs_grads[{}] has shape {}; a {} convolution with "
            "filter_shape {} and strides {} of inputs of shape {} has "
            "outputs of spatial size {}x{}.".format(
              i,
              _checks.format_shape(grad),
              self._padding,
              self._filter_shape,
              self._strides,
              _checks.format_shape(checked_inputs),
              out_h,
              out_w,
            )
          )

    self._outputs_grads = checked_grads
    self._orig_tensors_name = scope_string_from_name(
      (inputs,) + tuple(outputs_grads)
    )
    self._compute_dtype = _common_float_dtype((checked_inputs,) + checked_grads)
    self._out_size = (out_h, out_w)

    # Inputs-side tensors, shared by every source and every update op.
    self._batch_size = dynamic_shape[0]
    self._method = _CONVDIAG_METHOD
    if self._reference_formulation:
      self._method = "reference"
    if self._method is None:
      # The grouped filter gradient copies the gradients twice (transposed,
      # then reordered by oneDNN) and the inputs once; use it when that is
      # less than the patches of the 2017 formulation (per output position:
      # 2·sources·O + stride_h·stride_w·C against kh·kw·C elements).
      grouped_extra = (
        2 * len(checked_grads) * out_channels
        + self._strides[1] * self._strides[2] * in_channels
      )
      if (
        self._compute_dtype == tf.float32
        and grouped_extra <= kernel_h * kernel_w * in_channels
        and _grouped_filter_gradient_supported()
      ):
        self._method = "grouped_conv"
      else:
        self._method = "windows"
    x = tf.cast(checked_inputs, self._compute_dtype)
    if self._method == "grouped_conv":
      # Static (start, size) batch chunks; None: one chunk of the whole batch.
      # Only when every gradient has the inputs' static batch size, so that a
      # batch mismatch still fails in the grouped convolution.
      self._batch_chunks = None
      # With an unknown batch size: the static number of examples per chunk
      # of a loop over the batch (None: one chunk).
      self._loop_chunk_size = None
      out_size = [d if isinstance(d, int) else None for d in (out_h, out_w)]
      if (
        _CONVDIAG_CHUNK_BYTES
        and None not in in_shape[1:3]
        and None not in out_size
      ):
        example_bytes = self._compute_dtype.size * (
          in_shape[1] * in_shape[2] * in_channels
          + out_size[0] * out_size[1] * out_channels
          + kernel_h * kernel_w * in_channels * out_channels
        )
        size = max(1, _CONVDIAG_CHUNK_BYTES // example_bytes)
        if batch is None:
          self._loop_chunk_size = size
        elif all(_checks.static_dim(g, 0) == batch for g in checked_grads):
          count = -(-batch // size)
          if count > 1:
            # Balanced: sizes differ by at most one, larger ones first.
            sizes = [batch // count + (i < batch % count) for i in range(count)]
            starts = np.cumsum([0] + sizes[:-1]).tolist()
            self._batch_chunks = list(zip(starts, sizes))
      # Per chunk: [1, height, width, chunk·in_channels], channel index
      # b·C + c.
      if self._loop_chunk_size is not None:
        self._folded_inputs = None
        self._chunked_inputs = x
      elif self._batch_chunks is None:
        self._folded_inputs = [_fold_batch_into_channels(x)]
      else:
        self._folded_inputs = [
          _fold_batch_into_channels(x[start : start + size])
          for start, size in self._batch_chunks
        ]
    elif self._method == "reference":
      self._reference_inputs = x
    else:
      # Channels-first inputs with the convolution's zero padding,
      # [B, C, pad_top + height + pad_bottom, pad_left + width + pad_right].
      self._padded_inputs = tf.pad(
        tf.transpose(x, [0, 3, 1, 2]),
        [
          [0, 0],
          [0, 0],
          [geometry[0][1], geometry[0][2]],
          [geometry[1][1], geometry[1][2]],
        ],
      )

    super(ConvDiagonalFactor, self).__init__()

  @property
  def _var_scope(self):
    return "ff_convdiag/" + self._orig_tensors_name

  @property
  def _cov_shape(self):
    filter_height, filter_width, in_channels, out_channels = self._filter_shape
    return [
      filter_height * filter_width * in_channels + self._has_bias,
      out_channels,
    ]

  @property
  def _num_sources(self):
    return len(self._outputs_grads)

  def _compute_new_cov(self, idx=0):
    return self._convdiag_sum_of_squares([self._outputs_grads[idx]]) / tf.cast(
      self._batch_size, self._compute_dtype
    )

  def _compute_total_new_cov(self):
    # All sources in one pass: their gradients are concatenated along the
    # channel axis, so each window is contracted once.
    return self._convdiag_sum_of_squares(self._outputs_grads) / tf.cast(
      self._batch_size, self._compute_dtype
    )

  def _convdiag_sum_of_squares(self, outputs_grads):
    """Σ_sources Σ_b G_b ⊙ G_b for the given sources (not yet / batch_size).

    Args:
      outputs_grads: A list of `[B, out_h, out_w, O]` Tensors.

    Returns:
      A `[kh·kw·C + has_bias, O]` Tensor in the compute dtype.
    """
    num_sources = len(outputs_grads)
    out_channels = self._filter_shape[3]
    grads = [tf.cast(g, self._compute_dtype) for g in outputs_grads]
    if self._method == "reference":
      return tf.add_n(
        [
          _conv_stats.reference_conv_diagonal_sum_of_squares(
            self._reference_inputs,
            g,
            self._filter_shape,
            self._strides,
            self._padding,
            self._has_bias,
          )
          for g in grads
        ]
      )
    # [B, out_h, out_w, s·O]
    grads = grads[0] if num_sources == 1 else tf.concat(grads, axis=3)
    if self._method == "grouped_conv":
      rows = [self._grouped_conv_sum_of_squares(grads, num_sources)]
    else:
      rows = self._windows_sum_of_squares(grads, num_sources)
    if self._has_bias:
      bias_grads = tf.reduce_sum(grads, axis=[1, 2])  # [B, s·O]
      rows.append(tf.reduce_sum(tf.square(bias_grads), axis=0, keepdims=True))
    result = tf.concat(rows, axis=0) if len(rows) > 1 else rows[0]
    if num_sources > 1:
      result = tf.reduce_sum(
        tf.reshape(result, [-1, num_sources, out_channels]), axis=1
      )
    return result

  def _grouped_conv_sum_of_squares(self, grads, num_sources):
    """Filter rows of the statistic through grouped filter gradients.

    With the batch folded into the channels, the per-example filter
    gradients are the filter gradient of a convolution with B groups; one
    such call per batch chunk (`self._batch_chunks`), the sums of squares of
    the chunks added.

    Args:
      grads: The `[B, out_h, out_w, s·O]` gradients of the s sources.
      num_sources: s.

    Returns:
      The `[kh·kw·C, s·O]` sum over the batch of the squared per-example
      filter gradients.
    """
    kernel_h, kernel_w, in_channels, out_channels = self._filter_shape
    width = num_sources * out_channels

    def chunk_sum_of_squares(folded_inputs, chunk_grads, size):
      per_example = tf.compat.v1.nn.conv2d_backprop_filter(
        folded_inputs,
        tf.stack([kernel_h, kernel_w, in_channels, size * width]),
        _fold_batch_into_channels(chunk_grads),
        strides=list(self._strides),
        padding=self._padding,
      )  # [kh, kw, C, chunk·s·O]
      per_example = tf.reshape(
        per_example, [kernel_h * kernel_w * in_channels, -1, width]
      )
      return _sum_of_squares(per_example, axis=1)

    if self._loop_chunk_size is not None:
      # Unknown batch size: a loop over chunks of a static number of
      # examples (the last one shorter); iterations may run concurrently.
      x = self._chunked_inputs
      chunk = self._loop_chunk_size
      batch = self._batch_size
      with tf.control_dependencies(
        [
          tf.debugging.assert_equal(
            tf.shape(grads)[0],
            batch,
            message="outputs_grads and inputs must have the same batch size",
          )
        ]
      ):
        count = (batch + chunk - 1) // chunk

      def body(i, total):
        start = i * chunk
        chunk_inputs = x[start : start + chunk]
        return i + 1, total + chunk_sum_of_squares(
          _fold_batch_into_channels(chunk_inputs),
          grads[start : start + chunk],
          tf.shape(chunk_inputs)[0],
        )

      zeros = tf.zeros(
        [kernel_h * kernel_w * in_channels, width], self._compute_dtype
      )
      _, total = tf.while_loop(
        lambda i, _: i < count, body, [tf.constant(0), zeros]
      )
      return total
    if self._batch_chunks is None:
      chunks = [(grads, self._batch_size)]
    else:
      chunks = [
        (grads[start : start + size], size)
        for start, size in self._batch_chunks
      ]
    partial_sums = []
    for folded_inputs, (chunk_grads, size) in zip(self._folded_inputs, chunks):
      partial_sums.append(
        chunk_sum_of_squares(folded_inputs, chunk_grads, size)
      )
    if len(partial_sums) == 1:
      return partial_sums[0]
    return tf.add_n(partial_sums)

  def _windows_sum_of_squares(self, grads, num_sources):
    """Filter rows of the statistic through per-offset batched matmuls.

    Index conventions: b batch, c input channel, o output channel, p output
    position (i, j) flattened row-major, k kernel offset (di, dj) row-major,
    s source.

    Args:
      grads: The `[B, out_h, out_w, s·O]` gradients of the s sources.
      num_sources: s.

    Returns:
      A list of Tensors `[group·C, s·O]`, one per offset group, in offset
      order: the sum over the batch of the squared per-example filter
      gradients.
    """
    kernel_h, kernel_w, in_channels, out_channels = self._filter_shape
    _, stride_h, stride_w, _ = self._strides
    out_h, out_w = self._out_size
    batch = self._batch_size
    # [B, P, s·O]
    grads_flat = tf.reshape(grads, [batch, -1, num_sources * out_channels])

    offsets = [(di, dj) for di in range(kernel_h) for dj in range(kernel_w)]
    group = max(
      1, min(len(offsets) // 3, -(-_CONVDIAG_MIN_CHUNK_ROWS // in_channels))
    )
    rows = []
    previous = None
    for start in range(0, len(offsets), group):
      # Each group waits for the previous one, so that only one window group
      # is alive at a time.
      with tf.control_dependencies(
        [previous]
        if previous is not None and _CONVDIAG_SERIALIZE_GROUPS
        else []
      ):
        windows = []
        for di, dj in offsets[start : start + group]:
          windows.append(
            self._padded_inputs[
              :,
              :,
              di : di + stride_h * (out_h - 1) + 1 : stride_h,
              dj : dj + stride_w * (out_w - 1) + 1 : stride_w,
            ]
          )
        if len(windows) == 1:
          stacked = windows[0]
        else:
          stacked = tf.stack(windows, axis=1)  # [B, k, C, out_h, out_w]
        stacked = tf.reshape(stacked, [batch, len(windows) * in_channels, -1])
        # Per-example gradients of this group: [B, k·C, s·O].
        per_example = tf.linalg.matmul(stacked, grads_flat)
        previous = _sum_of_squares(per_example, axis=0)
      rows.append(previous)
    return rows


# ---------------------------------------------------------------------------
# 2017 reference formulations, selected explicitly by class.
# ---------------------------------------------------------------------------


class _ReferenceConvInputKroneckerFactor(ConvInputKroneckerFactor):
  """`ConvInputKroneckerFactor` with the 2017 patches and inverses."""

  _reference_formulation = True


class _ReferenceConvDiagonalFactor(ConvDiagonalFactor):
  """`ConvDiagonalFactor` computing the 2017 patch formulation."""

  _reference_formulation = True


class _ReferenceFullFactor(FullFactor):
  """`FullFactor` with the 2017 inverses (`cholesky_solve` at every size)."""

  _reference_formulation = True


class _ReferenceFullyConnectedKroneckerFactor(FullyConnectedKroneckerFactor):
  """`FullyConnectedKroneckerFactor` with the 2017 inverses."""

  _reference_formulation = True


class _ReferenceConvOutputKroneckerFactor(ConvOutputKroneckerFactor):
  """`ConvOutputKroneckerFactor` with the 2017 inverses."""

  _reference_formulation = True


# The factors with a faster statistic or inverse than in 2017, mapped to the
# private subclass computing the 2017 ones (same variables and names). The
# other factors compute their 2017 formulation already.
_REFERENCE_FACTOR_CLASSES = {
  ConvInputKroneckerFactor: _ReferenceConvInputKroneckerFactor,
  ConvDiagonalFactor: _ReferenceConvDiagonalFactor,
  FullFactor: _ReferenceFullFactor,
  FullyConnectedKroneckerFactor: _ReferenceFullyConnectedKroneckerFactor,
  ConvOutputKroneckerFactor: _ReferenceConvOutputKroneckerFactor,
}


def _reference_factor_class(cls):
  """The class computing `cls`'s statistic with the 2017 formulation.

  Args:
    cls: A `FisherFactor` subclass.

  Returns:
    Its private reference subclass, or `cls` itself when `cls` already uses
    the 2017 formulation.
  """
  return _REFERENCE_FACTOR_CLASSES.get(cls, cls)
