"""`fisher_factors` of the deferred releases (1.8, 1.9, 1.10).

The face `kfac.r1_8.fisher_factors` (and 1.9's, 1.10's) is built from this
module instead of `kfac.fisher_factors` (see `Release.engine_modules`). What
differs from the eager releases is the life cycle, not the maths:

* a factor's constructor records its data (lists over towers) and creates
  nothing; `instantiate_cov_variables()` and `instantiate_inv_variables()`
  create the variables later (the estimator's variable thunks);
* matrix powers are registered by damping *function* (a
  `fisher_blocks.PackagedFunc` with a stable id), which also names the
  variables (`matpower_exp-1_damp<id string>`);
* scopes read `ff_<kind>_<string>` (no `/`), and no collection scope.

The statistics are computed by the engine's factor classes
(`kfac.fisher_factors`): for every (source, tower) pair the factor builds a
statistic-only engine factor over that tower's tensors and asks it for its
`_compute_new_cov`, so the covariance maths (including the fast convolution
formulations of `kfac._conv_stats`) exist once. The inverse and matrix
power updates reuse the engine's `InverseProvidingFactor._inverse_updates`
(re-hosted, so they read this release's thresholds).
"""

import abc
import contextlib
import functools
import sys

import numpy as np
import tensorflow as tf

from kfac import _checks
from kfac import _embedding
from kfac import _multi_use
from kfac import _nonfinite
from kfac import _ops  # noqa: F401 (read by the re-hosted engine code)
from kfac import _release_extras as extras  # noqa: F401 (read by the borrowed multi-use code)
from kfac import _releases
from kfac import _towers
from kfac import fisher_factors as _engine
from kfac import utils

# The engine module's globals, for the engine methods borrowed below: put
# into a face, they resolve their global names here (definitions below
# take precedence).
globals().update(
  {k: v for k, v in vars(_engine).items() if not k.startswith("__")}
)

# Module constants of 1.8 (1.9 changes three defaults through its
# declaration and adds the sub-sampling switches).
INIT_COVARIANCES_AT_ZERO = False
ZERO_DEBIAS = False
INIT_INVERSES_AT_ZERO = False
EIGENVALUE_DECOMPOSITION_THRESHOLD = 2
EIGENVALUE_CLIPPING_THRESHOLD = 0.0
TOWER_STRATEGY = "concat"
_MAX_NUM_OUTER_PRODUCTS_PER_COV_ROW = 1
_INPUTS_TO_EXTRACT_PATCHES_FACTOR = 0.5
_SUB_SAMPLE_OUTER_PRODUCTS = False
_SUB_SAMPLE_INPUTS = False

# The multi-use maths (`_option_quant_updates`) reads these names; in a face
# `fisher_factors` is the face module itself.
posdef_eig = _multi_use.posdef_eig
fisher_factors = sys.modules[__name__]

# The engine's maths, used as they are.
compute_cov = _engine._compute_cov
append_homog = _engine._append_homog
scope_string_from_name = _engine.scope_string_from_name
scalar_or_tensor_to_string = _engine.scalar_or_tensor_to_string


def set_global_constants(
  init_covariances_at_zero=None,
  zero_debias=None,
  eigenvalue_decomposition_threshold=None,
  eigenvalue_clipping_threshold=None,
  tower_strategy=None,
):
  """Sets the module constants whose argument is not None (1.8 form).

  No validation, as in the release: a bad `tower_strategy` fails when a
  block processes its towers.

  Args:
    init_covariances_at_zero: New `INIT_COVARIANCES_AT_ZERO`.
    zero_debias: New `ZERO_DEBIAS`.
    eigenvalue_decomposition_threshold: New
      `EIGENVALUE_DECOMPOSITION_THRESHOLD`.
    eigenvalue_clipping_threshold: New `EIGENVALUE_CLIPPING_THRESHOLD`.
    tower_strategy: New `TOWER_STRATEGY` ("concat" or "separate").
  """
  _set_constants(globals(), locals())


def set_global_constants_1_9(
  init_covariances_at_zero=None,
  zero_debias=None,
  init_inverses_at_zero=None,
  eigenvalue_decomposition_threshold=None,
  eigenvalue_clipping_threshold=None,
  max_num_outer_products_per_cov_row=None,
  sub_sample_outer_products=None,
  inputs_to_extract_patches_factor=None,
  sub_sample_inputs=None,
  tower_strategy=None,
):
  """Sets the module constants whose argument is not None (1.9 form).

  Args:
    init_covariances_at_zero: New `INIT_COVARIANCES_AT_ZERO`.
    zero_debias: New `ZERO_DEBIAS`.
    init_inverses_at_zero: New `INIT_INVERSES_AT_ZERO`.
    eigenvalue_decomposition_threshold: New
      `EIGENVALUE_DECOMPOSITION_THRESHOLD`.
    eigenvalue_clipping_threshold: New `EIGENVALUE_CLIPPING_THRESHOLD`.
    max_num_outer_products_per_cov_row: New
      `_MAX_NUM_OUTER_PRODUCTS_PER_COV_ROW`.
    sub_sample_outer_products: New `_SUB_SAMPLE_OUTER_PRODUCTS`.
    inputs_to_extract_patches_factor: New `_INPUTS_TO_EXTRACT_PATCHES_FACTOR`.
    sub_sample_inputs: New `_SUB_SAMPLE_INPUTS`.
    tower_strategy: New `TOWER_STRATEGY`.
  """
  _set_constants(globals(), locals())


# Argument name -> module constant, for the private switches of 1.9.
_PRIVATE_CONSTANTS = (
  "max_num_outer_products_per_cov_row",
  "sub_sample_outer_products",
  "inputs_to_extract_patches_factor",
  "sub_sample_inputs",
)


def _set_constants(module_globals, arguments):
  for name, value in arguments.items():
    if value is None:
      continue
    constant = name.upper()
    if name in _PRIVATE_CONSTANTS:
      constant = "_" + constant
    module_globals[constant] = value


def inverse_initializer(shape, dtype, partition_info=None):
  """Initializer of matrix-power, inverse and Cholesky variables.

  Args:
    shape: The variable shape `[n, n]`.
    dtype: The variable dtype.
    partition_info: Unused; part of the initializer protocol.

  Returns:
    The identity, or (1.9 default, `INIT_INVERSES_AT_ZERO`) zeros.
  """
  if INIT_INVERSES_AT_ZERO:
    return tf.zeros(shape, dtype=dtype)
  return tf.linalg.diag(tf.ones(_checks.static_dim(shape, 0), dtype))


def covariance_initializer(shape, dtype, partition_info=None):
  """Initializer of square covariance variables.

  Args:
    shape: The variable shape `[n, n]`.
    dtype: The variable dtype.
    partition_info: Unused; part of the initializer protocol.

  Returns:
    The identity, or zeros when `INIT_COVARIANCES_AT_ZERO` (1.9 default).
  """
  if INIT_COVARIANCES_AT_ZERO:
    return tf.zeros(shape, dtype=dtype)
  return tf.linalg.diag(tf.ones(_checks.static_dim(shape, 0), dtype))


def diagonal_covariance_initializer(shape, dtype, partition_info=None):
  """Initializer of diagonal covariance variables.

  Args:
    shape: The variable shape.
    dtype: The variable dtype.
    partition_info: Unused; part of the initializer protocol (1.9 gives it
      the default None).

  Returns:
    Ones, or zeros when `INIT_COVARIANCES_AT_ZERO`.
  """
  if INIT_COVARIANCES_AT_ZERO:
    return tf.zeros(shape, dtype=dtype)
  return tf.ones(shape, dtype=dtype)


def scope_string_from_params(params):
  """The 1.4 scope string, extended for `None` and `PartitionedTensor`.

  Args:
    params: A parameter or a tuple/list of parameters.

  Returns:
    The parts joined with "_": `None` gives "None", a `PartitionedTensor`
    its parts' names joined with "__", everything else as in 1.4.
  """
  if not isinstance(params, (tuple, list)):
    params = (params,)
  parts = []
  for param in params:
    if param is None:
      parts.append("None")
    elif isinstance(param, _towers.PartitionedTensor):
      parts.append(scope_string_from_name(param.tensors))
    elif isinstance(param, (tuple, list)) and any(
      isinstance(p, _towers.PartitionedTensor) for p in param
    ):
      parts.append(scope_string_from_params(param))
    else:
      parts.append(_engine.scope_string_from_params([param]))
  return "_".join(parts)


def list_to_string(lst):
  """Elements joined by "_": strings as they are, others as scalars/names."""
  return "_".join(
    val if isinstance(val, str) else scalar_or_tensor_to_string(_plain(val))
    for val in lst
  )


def _plain(val):
  """NumPy scalars as Python scalars (so `repr` prints `64`, not np.int64)."""
  if isinstance(val, np.generic):
    return val.item()
  return val


def graph_func_to_id(func):
  """The hashable id of a damping function (`func.func_id`)."""
  return func.func_id


def graph_func_to_string(func):
  """The id of a damping function as a string (variable names)."""
  return list_to_string(func.func_id)


@contextlib.contextmanager
def place_on_device(device):
  """`tf.device(device)` for a non-empty device string, else nothing."""
  if device is not None and len(device):
    with tf.device(device):
      yield
  else:
    yield


def _statistic_class(engine_cls):
  """A subclass of an engine factor that computes statistics only.

  Its constructor records and checks the data as the engine's does but
  creates no variable; the deferred factors build one per (source, tower)
  and ask it for `_compute_new_cov()`.
  """
  cached = _STATISTIC_CLASSES.get(engine_cls)
  if cached is None:
    cached = type(
      "_Statistic" + engine_cls.__name__,
      (engine_cls,),
      {"instantiate_covariance": lambda self: None},
    )
    _STATISTIC_CLASSES[engine_cls] = cached
  return cached


_STATISTIC_CLASSES = {}


def _tower_device(tensor):
  device = getattr(tensor, "device", None)
  return device or None


class FisherFactor(object, metaclass=abc.ABCMeta):
  """A covariance statistic whose variables are created on request (1.8+).

  The constructor only records the data. `instantiate_cov_variables()`
  creates `cov`; `make_covariance_update_op(ema_decay)` builds
  `cov ← ema·cov + (1 − ema)·(Σ_sources Σ_towers C_{s,t}) / num_towers`
  (zero-debiased when `ZERO_DEBIAS`); with `TOWER_STRATEGY == "separate"`
  each tower's statistic is built on that tower's device.
  """

  # The engine code these factors re-host (the inverse updates) asks which
  # formulation to run; the deferred factors always run the current one.
  _reference_formulation = False

  def __init__(self):
    """Records nothing yet; the covariance variable comes later."""
    self._cov = None

  @property
  def name(self):
    """The factor's variable-scope name (`ff_<kind>_<string>`)."""
    return self._var_scope

  # The engine factor's abstract interface: scope, covariance shape and
  # number of sources (abstract here too).
  _var_scope = _engine.FisherFactor._var_scope
  _cov_shape = _engine.FisherFactor._cov_shape
  _num_sources = _engine.FisherFactor._num_sources

  @property
  @abc.abstractmethod
  def _num_towers(self):
    pass

  @property
  @abc.abstractmethod
  def _dtype(self):
    pass

  @property
  def _cov_initializer(self):
    return covariance_initializer

  def instantiate_cov_variables(self):
    """Creates the covariance variable `<scope>/<name>/cov`.

    Raises:
      AssertionError: On a second call.
    """
    assert self._cov is None
    with tf.compat.v1.variable_scope(self._var_scope):
      self._cov = tf.compat.v1.get_variable(
        "cov",
        initializer=self._cov_initializer,
        shape=self._cov_shape,
        trainable=False,
        dtype=self._dtype,
      )

  @abc.abstractmethod
  def _compute_new_cov(self, source, tower):
    pass

  @abc.abstractmethod
  def _get_data_device(self, tower):
    pass

  @abc.abstractmethod
  def instantiate_inv_variables(self):
    """Creates the variables of the registered powers (abstract)."""
    pass

  @abc.abstractmethod
  def make_inverse_update_ops(self):
    """Returns the ops refreshing the registered powers (abstract)."""
    pass

  def make_covariance_update_op(self, ema_decay):
    """Builds the moving-average update of `cov` (a new op on each call).

    Args:
      ema_decay: The decay, a float or scalar Tensor.

    Returns:
      The update.
    """
    return self._covariance_update(ema_decay, counter=None)

  def _make_guarded_covariance_update_op(self, ema_decay, counter):
    """`make_covariance_update_op` keeping `cov` when the statistic is not finite.

    The same ops in the same order and scopes, plus the guard ops of
    `_nonfinite.guarded_updates` (bit-identical results for finite data).

    Args:
      ema_decay: The decay, a float or scalar Tensor.
      counter: The `_nonfinite.SkipCounter` counting the skipped updates.

    Returns:
      The update.
    """
    return self._covariance_update(ema_decay, counter=counter)

  def _covariance_update(self, ema_decay, counter):
    """The moving averages of `_new_covariances()`, guarded if `counter`.

    Args:
      ema_decay: The decay, a float or scalar Tensor.
      counter: None (no guard), or the `_nonfinite.SkipCounter` counting
        the skips: if any new statistic is not finite, every moving average
        of the factor keeps its value.

    Returns:
      The update of the only moving average, or an op grouping them.
    """
    pairs = self._new_covariances()

    def update(variable, value):
      return _engine._assign_moving_average(
        variable, value, ema_decay, zero_debias=ZERO_DEBIAS
      )

    ops = _nonfinite.guarded_updates(pairs, counter, update, whole=ZERO_DEBIAS)
    return ops[0] if len(ops) == 1 else tf.group(*ops)

  def _new_covariances(self):
    """The `(moving-average variable, new statistic)` pairs of the factor.

    Returns:
      `[(cov, C)]`, `C` the statistic summed over the sources and averaged
      over the towers (each tower's built on its device when
      `TOWER_STRATEGY == "separate"`).
    """
    new_cov_contribs = []
    for source in range(self._num_sources):
      for tower in range(self._num_towers):
        device = (
          self._get_data_device(tower) if TOWER_STRATEGY == "separate" else None
        )
        with place_on_device(device):
          new_cov_contribs.append(
            tf.cast(self._compute_new_cov(source, tower), self._dtype)
          )
    new_cov = tf.add_n(new_cov_contribs) / tf.cast(
      self._num_towers, self._dtype
    )
    return [(self._cov, new_cov)]

  def _make_guarded_inverse_update_ops(self, counter):
    """`make_inverse_update_ops` keeping each variable whose value is not finite.

    A failed Cholesky factorisation gives NaNs, so it is caught too; each
    kept variable counts one skip.

    Args:
      counter: The `_nonfinite.SkipCounter` counting the skipped updates.

    Returns:
      The list of `make_inverse_update_ops`, guarded.
    """
    return self._inverse_update_ops(
      functools.partial(_nonfinite.guarded_assign, counter=counter)
    )

  def _inverse_update_ops(self, assign):
    """The ops of `make_inverse_update_ops`, assigning through `assign`.

    Args:
      assign: `(variable, value) -> op`, the assignment to use.

    Returns:
      A list of ops (none for a factor without stored powers).
    """
    del assign  # Nothing stored.
    return []

  def get_cov(self):
    """The covariance (1.8: dense matrix; 1.9: the variable)."""
    return self._cov

  @abc.abstractmethod
  def left_multiply_matpower(self, x, exp, damping_func):
    """`(cov + d I)^exp · x` (1.8).

    Args:
      x: The matrix to multiply.
      exp: The exponent.
      damping_func: The damping function.
    """
    pass

  @abc.abstractmethod
  def right_multiply_matpower(self, x, exp, damping_func):
    """`x · (cov + d I)^exp` (1.8).

    Args:
      x: The matrix to multiply.
      exp: The exponent.
      damping_func: The damping function.
    """
    pass

  @abc.abstractmethod
  def get_cov_as_linear_operator(self):
    """The covariance as a linear operator (1.9)."""
    pass

  @abc.abstractmethod
  def register_matpower(self, exp, damping_func):
    """Registers a damped matrix power (1.9 abstract).

    Args:
      exp: The exponent.
      damping_func: The damping function.
    """
    pass

  @abc.abstractmethod
  def register_cholesky(self, damping_func):
    """Registers a Cholesky factor (1.9).

    Args:
      damping_func: The damping function.
    """
    pass

  @abc.abstractmethod
  def register_cholesky_inverse(self, damping_func):
    """Registers an inverse Cholesky factor (1.9).

    Args:
      damping_func: The damping function.
    """
    pass

  @abc.abstractmethod
  def get_matpower(self, exp, damping_func):
    """The damped matrix power (1.9: a linear operator).

    Args:
      exp: The exponent.
      damping_func: The damping function.
    """
    pass

  @abc.abstractmethod
  def get_cholesky(self, damping_func):
    """The Cholesky factor (1.9).

    Args:
      damping_func: The damping function.
    """
    pass

  @abc.abstractmethod
  def get_cholesky_inverse(self, damping_func):
    """The inverse Cholesky factor (1.9).

    Args:
      damping_func: The damping function.
    """
    pass

  def get_cov_var(self):
    """The covariance variable (1.8)."""
    return self._cov

  def _statistic(self, engine_cls, *args):
    """`engine_cls(*args)`'s statistic, built without variables."""
    return _statistic_class(engine_cls)(*args)._compute_new_cov(0)


class InverseProvidingFactor(FisherFactor):
  """A square PSD factor serving damped matrix powers (1.8+).

  Powers are registered by damping function; `make_inverse_update_ops`
  evaluates each function once and refreshes every variable, through one
  clipped eigendecomposition when a power other than -1 is registered or
  the inverses reach `EIGENVALUE_DECOMPOSITION_THRESHOLD`, else one
  `utils.posdef_inv` per inverse. From 1.9 Cholesky factors (and their
  inverses) can be registered too.
  """

  def __init__(self):
    """Creates the (empty) registries of powers and Cholesky factors."""
    self._matpower_registrations = set()
    self._matpower_by_exp_and_damping = {}
    self._damping_funcs_by_id = {}
    self._cholesky_registrations = set()
    self._cholesky_inverse_registrations = set()
    self._cholesky_by_damping = {}
    self._cholesky_inverse_by_damping = {}
    self._eigendecomp = None
    FisherFactor.__init__(self)  # (renamed DenseSquareMatrixFactor in 1.9)

  def _register_damping(self, damping_func):
    damping_id = graph_func_to_id(damping_func)
    if damping_id not in self._damping_funcs_by_id:
      self._damping_funcs_by_id[damping_id] = damping_func
    return damping_id

  def register_inverse(self, damping_func):
    """Registers `(cov + d I)⁻¹` (= `register_matpower(-1, damping_func)`).

    Args:
      damping_func: A zero-argument damping function with a `func_id`.
    """
    self.register_matpower(-1, damping_func)

  def register_matpower(self, exp, damping_func):
    """Registers `(cov + damping_func() I)^exp` (ignored for `exp == 1`).

    Args:
      exp: The exponent.
      damping_func: A zero-argument damping function with a `func_id`.
    """
    if exp == 1.0:
      return
    damping_id = self._register_damping(damping_func)
    self._matpower_registrations.add((exp, damping_id))

  def register_cholesky(self, damping_func):
    """Registers the Cholesky factor of the damped covariance (1.9).

    Args:
      damping_func: A zero-argument damping function with a `func_id`.
    """
    self._cholesky_registrations.add(self._register_damping(damping_func))

  def register_cholesky_inverse(self, damping_func):
    """Registers the inverse Cholesky factor (1.9).

    Args:
      damping_func: A zero-argument damping function with a `func_id`.
    """
    self._cholesky_inverse_registrations.add(
      self._register_damping(damping_func)
    )

  def _new_inverse_variable(self, name):
    return tf.compat.v1.get_variable(
      name,
      initializer=inverse_initializer,
      shape=self._cov_shape,
      trainable=False,
      dtype=self._dtype,
    )

  def _damping_string(self, damping_id):
    return graph_func_to_string(self._damping_funcs_by_id[damping_id])

  def instantiate_inv_variables(self):
    """Creates one variable per registration next to `cov`."""
    with tf.compat.v1.variable_scope(self._var_scope):
      for exp, damping_id in self._matpower_registrations:
        name = "matpower_exp{}_damp{}".format(
          scalar_or_tensor_to_string(exp), self._damping_string(damping_id)
        )
        self._matpower_by_exp_and_damping[(exp, damping_id)] = (
          self._new_inverse_variable(name)
        )
      for damping_id in self._cholesky_registrations:
        self._cholesky_by_damping[damping_id] = self._new_inverse_variable(
          "cholesky_damp{}".format(self._damping_string(damping_id))
        )
      for damping_id in self._cholesky_inverse_registrations:
        self._cholesky_inverse_by_damping[damping_id] = (
          self._new_inverse_variable(
            "cholesky_inverse_damp{}".format(self._damping_string(damping_id))
          )
        )

  def _damping_value(self, damping_id):
    value = self._damping_funcs_by_id[damping_id]()
    if _releases.of(self).linear_operator_factors:
      value = tf.cast(value, self._dtype)
    return value

  def make_inverse_update_ops(self):
    """Returns the ops refreshing every registered power and Cholesky factor.

    Returns:
      A list of ops.
    """
    return self._inverse_update_ops(_nonfinite.assign)

  def _inverse_update_ops(self, assign):
    """The ops of `make_inverse_update_ops`, assigning through `assign`.

    Args:
      assign: `(variable, value) -> op`, the assignment to use.

    Returns:
      A list of ops: the matrix powers (one grouped op on the eigen path),
      then the Cholesky factors.
    """
    dampings = {
      damping_id: self._damping_value(damping_id)
      for damping_id in self._damping_funcs_by_id
    }
    inverses = {}
    powers = {}
    for (exp, damping_id), var in self._matpower_by_exp_and_damping.items():
      if exp == -1:
        inverses[damping_id] = var
      else:
        powers[(exp, damping_id)] = var
    # The engine's update builder (re-hosted here: it reads this module's
    # thresholds) reads the registrations as (damping value, variable).
    ops = []
    engine_state = self._matpower_by_exp_and_damping
    try:
      self._inverses_by_damping = _ValueKeyed(
        (dampings[i], var) for i, var in inverses.items()
      )
      self._matpower_by_exp_and_damping = _ValueKeyed(
        ((exp, dampings[i]), var) for (exp, i), var in powers.items()
      )
      updates = self._engine_inverse_updates()
    finally:
      self._matpower_by_exp_and_damping = engine_state
    on_eigen_path = self._on_eigen_path
    assigns = [assign(variable, value) for variable, value in updates]
    if on_eigen_path and assigns:
      ops.append(tf.group(*assigns))
    else:
      ops.extend(assigns)
    ops.extend(self._cholesky_updates(dampings, assign))
    self._eigendecomp = None
    return ops

  # The engine's `(variable, value)` builder of the inverse updates.
  # The engine attribute that builder reads (never the 2017 formulation).
  _reference_formulation = False
  _engine_inverse_updates = _engine.InverseProvidingFactor._inverse_updates

  def register_eigendecomp(self):
    """Caches the eigendecomposition of `cov` (used by the update builder)."""
    if self._eigendecomp is None:
      self._eigendecomp = tf.linalg.eigh(self._cov)

  def get_eigendecomp(self):
    """`(eigenvalues clipped below, eigenvectors)` of `cov`, cached."""
    self.register_eigendecomp()
    eigenvalues, eigenvectors = self._eigendecomp
    clipped = tf.maximum(
      eigenvalues, tf.cast(EIGENVALUE_CLIPPING_THRESHOLD, eigenvalues.dtype)
    )
    return clipped, eigenvectors

  def _cholesky_updates(self, dampings, assign):
    ops = []
    for damping_id in self._cholesky_inverse_registrations:
      chol = _utils_cholesky(self._cov, dampings[damping_id])
      assigns = []
      if damping_id in self._cholesky_by_damping:
        assigns.append(assign(self._cholesky_by_damping[damping_id], chol))
      identity = tf.eye(_checks.static_dim(chol, 0), dtype=chol.dtype)
      assigns.append(
        assign(
          self._cholesky_inverse_by_damping[damping_id],
          tf.linalg.triangular_solve(chol, identity),
        )
      )
      ops.append(tf.group(*assigns))
    for damping_id in self._cholesky_registrations:
      if damping_id in self._cholesky_inverse_registrations:
        continue
      ops.append(
        assign(
          self._cholesky_by_damping[damping_id],
          _utils_cholesky(self._cov, dampings[damping_id]),
        )
      )
    return ops

  def get_inverse(self, damping_func):
    """`get_matpower(-1, damping_func)`.

    Args:
      damping_func: A registered damping function.

    Returns:
      As `get_matpower`.
    """
    return self.get_matpower(-1, damping_func)

  def get_matpower(self, exp, damping_func):
    """The stored power (1.8: the variable; 1.9: a linear operator).

    Args:
      exp: The exponent.
      damping_func: The damping function it was registered with.

    Returns:
      The variable (1.8) or a `LinearOperatorFullMatrix` (1.9; for
      `exp == 1` over `cov + d I` computed now).

    Raises:
      KeyError: If not registered.
    """
    damping_id = graph_func_to_id(damping_func)
    if not _releases.of(self).linear_operator_factors:
      return self._matpower_by_exp_and_damping[(exp, damping_id)]
    if exp == 1:
      matrix = self._cov + tf.cast(damping_func(), self._dtype) * tf.eye(
        self._cov_shape[0], dtype=self._dtype
      )
    else:
      matrix = self._matpower_by_exp_and_damping[(exp, damping_id)]
    return _operator("FullMatrix", matrix, *_POSITIVE_DEFINITE)

  def get_cholesky(self, damping_func):
    """The stored Cholesky factor, as a linear operator (1.9).

    Args:
      damping_func: The damping function it was registered with.

    Returns:
      A `LinearOperatorFullMatrix`.
    """
    return _stored_operator(self._cholesky_by_damping, damping_func)

  def get_cholesky_inverse(self, damping_func):
    """The stored inverse Cholesky factor, as a linear operator (1.9).

    Args:
      damping_func: The damping function it was registered with.

    Returns:
      A `LinearOperatorFullMatrix`.
    """
    return _stored_operator(self._cholesky_inverse_by_damping, damping_func)

  def get_cov_as_linear_operator(self):
    """`cov` as a self-adjoint linear operator (1.9)."""
    return _operator("FullMatrix", self._cov, "self_adjoint")

  def left_multiply_matpower(self, x, exp, damping_func):
    """`(cov + d I)^exp · x` (1.8).

    Args:
      x: A rank-2 Tensor.
      exp: The exponent (a stored power unless 1).
      damping_func: The damping function.

    Returns:
      The product.

    Raises:
      ValueError: For an `IndexedSlices` or a non-matrix `x`.
    """
    if isinstance(x, tf.IndexedSlices):
      raise ValueError("Left-multiply not yet supported for IndexedSlices.")
    _check_rank2(x)
    if exp == 1:
      return tf.linalg.matmul(self._cov, x) + damping_func() * x
    return tf.linalg.matmul(self.get_matpower(exp, damping_func), x)

  def right_multiply_matpower(self, x, exp, damping_func):
    """`x · (cov + d I)^exp` (1.8).

    Args:
      x: A rank-2 Tensor or an `IndexedSlices` matrix.
      exp: The exponent (a stored power unless 1).
      damping_func: The damping function.

    Returns:
      The product (an `IndexedSlices` for a sparse `x`).
    """
    if isinstance(x, tf.IndexedSlices):
      if exp == 1:
        n = self._cov_shape[0]
        matrix = self._cov + damping_func() * tf.eye(n, dtype=self._dtype)
      else:
        matrix = self.get_matpower(exp, damping_func)
      return utils.matmul_sparse_dense(x, matrix)
    _check_rank2(x)
    if exp == 1:
      return tf.linalg.matmul(x, self._cov) + damping_func() * x
    return tf.linalg.matmul(x, self.get_matpower(exp, damping_func))


def _check_rank2(x):
  if _checks.static_rank(x) != 2:
    raise ValueError(
      "Input tensor must be rank 2; got shape {}.".format(
        _checks.format_shape(x)
      )
    )


def _utils_cholesky(tensor, damping):
  """Lower Cholesky factor of `tensor + damping·I` (1.9's `utils.cholesky`)."""
  identity = tf.eye(_checks.static_dim(tensor, 0), dtype=tensor.dtype)
  return tf.linalg.cholesky(
    tf.convert_to_tensor(tensor) + tf.cast(damping, tensor.dtype) * identity
  )


def _linear_operator():
  # pylint: disable=import-outside-toplevel
  from kfac import _linear_operator as linear_operator

  return linear_operator


# The hints of a damped power: `(cov + d·I)^e` is symmetric positive
# definite.
_POSITIVE_DEFINITE = ("non_singular", "self_adjoint", "positive_definite")


def _operator(kind, matrix, *hints):
  """A square `LinearOperator<kind>` of `matrix` with the given hints (1.9).

  Args:
    kind: "FullMatrix" or "Diag".
    matrix: The matrix (or, for "Diag", the diagonal).
    *hints: Properties set to True, e.g. "self_adjoint" for `is_self_adjoint`.

  Returns:
    The linear operator.
  """
  operator_class = getattr(_linear_operator(), "LinearOperator" + kind)
  return operator_class(
    matrix, is_square=True, **{"is_" + hint: True for hint in hints}
  )


def _stored_operator(by_damping, damping_func):
  """The stored (inverse) Cholesky factor of `damping_func`, as an operator.

  Args:
    by_damping: Dict damping id -> variable.
    damping_func: The damping function it was registered with.

  Returns:
    A non-singular `LinearOperatorFullMatrix` (triangular, not marked so, as
    in 1.9).
  """
  return _operator(
    "FullMatrix", by_damping[graph_func_to_id(damping_func)], "non_singular"
  )


class _ValueKeyed(object):
  """`(damping value, variable)` pairs read like the engine builder's dicts.

  The engine's builder only iterates, counts and tests them, so the damping
  values (Tensors, not hashable) need not be keys, and registrations whose
  values are equal stay apart.
  """

  def __init__(self, pairs):
    self._pairs = list(pairs)

  def items(self):
    return list(self._pairs)

  def __len__(self):
    return len(self._pairs)

  def __bool__(self):
    return bool(self._pairs)


class DiagonalFactor(FisherFactor):
  """A factor stored as one entry per parameter; no stored powers (1.8+)."""

  def __init__(self):
    """Creates the factor (no variables)."""
    super(DiagonalFactor, self).__init__()

  @property
  def _cov_initializer(self):
    return diagonal_covariance_initializer

  def make_inverse_update_ops(self):
    """No ops (powers are computed on the fly)."""
    return []

  def instantiate_inv_variables(self):
    """Nothing to create."""
    pass

  def register_matpower(self, exp, damping_func):
    """No-op (powers are computed on the fly).

    Args:
      exp: Unused.
      damping_func: Unused.
    """
    pass

  def register_cholesky(self, damping_func):
    """No-op (1.9).

    Args:
      damping_func: Unused.
    """
    pass

  def register_cholesky_inverse(self, damping_func):
    """No-op (1.9).

    Args:
      damping_func: Unused.
    """
    pass

  def get_cov(self):
    """1.8: `diag(reshape(cov, [-1]))`; 1.9: the variable."""
    if _releases.of(self).linear_operator_factors:
      return self._cov
    return tf.linalg.diag(tf.reshape(self._cov, [-1]))

  def _diag_power(self, exp, damping_func):
    return (
      tf.reshape(self._cov, [-1]) + tf.cast(damping_func(), self._dtype)
    ) ** exp

  def get_cov_as_linear_operator(self):
    """`LinearOperatorDiag(reshape(cov, [-1]))` (1.9)."""
    return _operator("Diag", tf.reshape(self._cov, [-1]), "self_adjoint")

  def get_matpower(self, exp, damping_func):
    """`LinearOperatorDiag((cov + d)^exp)`, computed now (1.9).

    Args:
      exp: The exponent.
      damping_func: The damping function.

    Returns:
      A `LinearOperatorDiag`.
    """
    return _operator(
      "Diag", self._diag_power(exp, damping_func), *_POSITIVE_DEFINITE
    )

  def get_cholesky(self, damping_func):
    """Power 0.5 (1.9).

    Args:
      damping_func: The damping function.

    Returns:
      A `LinearOperatorDiag`.
    """
    return self.get_matpower(0.5, damping_func)

  def get_cholesky_inverse(self, damping_func):
    """Power -0.5 (1.9).

    Args:
      damping_func: The damping function.

    Returns:
      A `LinearOperatorDiag`.
    """
    return self.get_matpower(-0.5, damping_func)

  def left_multiply_matpower(self, x, exp, damping_func):
    """`(cov + d)^exp ⊙ x` (1.8).

    Args:
      x: A Tensor of the variable's shape, or an `IndexedSlices` matrix.
      exp: The exponent.
      damping_func: The damping function.

    Returns:
      The product.

    Raises:
      ValueError: If a dense `x` differs in shape from the variable.
    """
    matpower = (self._cov + damping_func()) ** exp
    if isinstance(x, tf.IndexedSlices):
      return utils.matmul_diag_sparse(tf.reshape(matpower, [-1]), x)
    if _checks.static_shape_list(x) != list(self._cov_shape):
      raise ValueError(
        "x (shape {}) must have the covariance's shape {}.".format(
          _checks.format_shape(x), list(self._cov_shape)
        )
      )
    return matpower * x

  def right_multiply_matpower(self, x, exp, damping_func):
    """Not implemented for diagonal factors (as in 1.8).

    Args:
      x: Unused.
      exp: Unused.
      damping_func: Unused.

    Raises:
      NotImplementedError: Always.
    """
    raise NotImplementedError("Only left-multiply is currently supported.")


class FullFactor(_towers.ParamsGradsFactorMixin, InverseProvidingFactor):
  """The whole Fisher block of arbitrary parameters (1.8+).

  `C_s = g gᵀ / batch_size` with `g` the flattened gradients of source `s`
  (the engine's `FullFactor` statistic).
  """

  _kind = "ff_full_"
  _engine_class = _engine.FullFactor

  def __init__(self, params_grads, batch_size):
    """Records the data.

    Args:
      params_grads: A list over sources of the parameters' gradients.
      batch_size: The batch size (the blocks' sum over towers).
    """
    self._set_params_grads(params_grads, batch_size)
    super(FullFactor, self).__init__()

  @property
  def _cov_shape(self):
    return [self._size, self._size]


class NaiveDiagonalFactor(_towers.ParamsGradsFactorMixin, DiagonalFactor):
  """Diagonal of the whole Fisher block: `g ⊙ g / batch_size` (1.8+)."""

  _kind = "ff_naivediag_"
  _engine_class = _engine.NaiveDiagonalFactor

  def __init__(self, params_grads, batch_size):
    """Records the data.

    Args:
      params_grads: A list over sources of the parameters' gradients.
      batch_size: The batch size (the blocks' sum over towers).
    """
    self._set_params_grads(params_grads, batch_size)
    super(NaiveDiagonalFactor, self).__init__()

  @property
  def _cov_shape(self):
    return [self._size, 1]


class FullyConnectedDiagonalFactor(DiagonalFactor):
  """Diagonal Fisher of a fully connected layer, per tower (1.8+).

  `C_{s,t} = (a_t ⊙ a_t)ᵀ (g_{s,t} ⊙ g_{s,t}) / B_t`.
  """

  def __init__(self, inputs, outputs_grads, has_bias=False):
    """Records the data.

    Args:
      inputs: A list over towers of the layer inputs `[B, in]`.
      outputs_grads: A list over sources of lists over towers of the
        gradients with respect to the outputs `[B, out]`.
      has_bias: Whether a column of ones is appended to the inputs.
    """
    self._inputs = tuple(inputs)
    self._outputs_grads = tuple(tuple(g) for g in outputs_grads)
    self._has_bias = has_bias
    super(FullyConnectedDiagonalFactor, self).__init__()

  @property
  def _var_scope(self):
    return "ff_diagfc_" + scope_string_from_params(
      tuple(self._inputs) + tuple(tf.nest.flatten(self._outputs_grads))
    )

  @property
  def _cov_shape(self):
    input_size = _checks.static_dim(self._inputs[0], 1) + self._has_bias
    output_size = _checks.static_dim(self._outputs_grads[0][0], 1)
    return [input_size, output_size]

  @property
  def _num_sources(self):
    return len(self._outputs_grads)

  @property
  def _num_towers(self):
    return len(self._inputs)

  @property
  def _dtype(self):
    return self._outputs_grads[0][0].dtype.base_dtype

  def _compute_new_cov(self, source, tower):
    inputs = tf.convert_to_tensor(self._inputs[tower])
    grads = tf.convert_to_tensor(self._outputs_grads[source][tower])
    # The engine's FC-diagonal factor, in its 1.5+ form: data arguments
    # after the layer collection.
    return self._statistic(
      _engine.FullyConnectedDiagonalFactor, inputs, (grads,), self._has_bias
    )

  def _get_data_device(self, tower):
    return _tower_device(self._inputs[tower])


class ConvDiagonalFactor(DiagonalFactor):
  """Diagonal Fisher of a 2-D convolution, per tower (1.8+).

  The per-example filter (and bias) gradients squared and averaged over
  the tower's batch; the statistic comes from the engine's
  `ConvDiagonalFactor` (its fast formulations), or, with dilations other
  than 1, from image patches.
  """

  def __init__(
    self,
    inputs,
    outputs_grads,
    filter_shape,
    strides,
    padding,
    data_format=None,
    dilations=None,
    has_bias=False,
  ):
    """Records and checks the data.

    Args:
      inputs: A list over towers of the inputs `[B, H, W, C]`.
      outputs_grads: A list over sources of lists over towers of the
        output gradients `[B, H', W', O]`.
      filter_shape: `(kh, kw, C, O)`.
      strides: 4 ints.
      padding: "SAME" or "VALID".
      data_format: None or a channel-last format.
      dilations: None or 4 ints.
      has_bias: Whether the layer has a bias.

    Raises:
      ValueError: For a channel-first format, inputs or gradients that are
        not 4-D or disagree with `filter_shape`, or strides or dilations not
        of length 4.
    """
    if not _is_channel_last(data_format):
      raise ValueError("Channel must be last.")
    inputs = tuple(inputs)
    outputs_grads = tuple(tuple(g) for g in outputs_grads)
    for i in inputs:
      if _checks.static_rank(i) != 4:
        raise ValueError("inputs must be 4-D Tensors.")
      if _checks.static_dim(i, -1) != filter_shape[-2]:
        raise ValueError("inputs and filter_shape must agree on in_channels.")
    for grads in outputs_grads:
      for g in grads:
        if _checks.static_rank(g) != 4:
          raise ValueError("outputs_grads must be 4-D Tensors.")
        if _checks.static_dim(g, -1) != filter_shape[-1]:
          raise ValueError(
            "outputs_grads and filter_shape must agree on out_channels."
          )
    if len(strides) != 4:
      raise ValueError("strides must be length-4 (got {}).".format(strides))
    if dilations is not None and len(dilations) != 4:
      raise ValueError("dilations must be length-4 (got {}).".format(dilations))
    self._inputs = inputs
    self._outputs_grads = outputs_grads
    self._filter_shape = tuple(filter_shape)
    self._strides = strides
    self._padding = padding
    self._data_format = data_format
    self._dilations = dilations
    self._has_bias = has_bias
    super(ConvDiagonalFactor, self).__init__()

  @property
  def _var_scope(self):
    return "ff_convdiag_" + scope_string_from_params(
      tuple(self._inputs) + tuple(tf.nest.flatten(self._outputs_grads))
    )

  @property
  def _cov_shape(self):
    kh, kw, cin, cout = self._filter_shape
    return [kh * kw * cin + self._has_bias, cout]

  @property
  def _num_sources(self):
    return len(self._outputs_grads)

  @property
  def _num_towers(self):
    return len(self._inputs)

  @property
  def _dtype(self):
    return self._inputs[0].dtype.base_dtype

  def _compute_new_cov(self, source, tower):
    inputs = tf.convert_to_tensor(self._inputs[tower])
    grads = tf.convert_to_tensor(self._outputs_grads[source][tower])
    if self._dilations is None or tuple(self._dilations) == (1, 1, 1, 1):
      return self._statistic(
        _engine.ConvDiagonalFactor,
        inputs,
        (grads,),
        list(self._filter_shape),
        list(self._strides),
        self._padding,
        self._has_bias,
      )
    return _dilated_conv_diagonal(
      inputs,
      grads,
      self._filter_shape,
      self._strides,
      self._dilations,
      self._padding,
      self._has_bias,
    )

  def _get_data_device(self, tower):
    return _tower_device(self._inputs[tower])


def _image_patches(inputs, filter_shape, strides, dilations, padding):
  """`[B, out_h, out_w, kh·kw·C]` patches (`tf.image.extract_patches`)."""
  kh, kw = filter_shape[0], filter_shape[1]
  return tf.image.extract_patches(
    inputs,
    sizes=[1, kh, kw, 1],
    strides=list(strides),
    rates=list(dilations or (1, 1, 1, 1)),
    padding=padding,
  )


def _dilated_conv_diagonal(
  inputs, grads, filter_shape, strides, dilations, padding, has_bias
):
  """ConvDiagonal statistic from patches (dilated convolutions)."""
  patches = _image_patches(inputs, filter_shape, strides, dilations, padding)
  if has_bias:
    patches = append_homog(patches)
  batch = tf.shape(inputs)[0]
  # Index conventions: b example, h/w output location, i patch entry, o out
  # channel; per-example gradients G_b[i, o] = Σ_{h,w} P[b,h,w,i] g[b,h,w,o].
  per_example = tf.einsum(
    "bhwi,bhwo->bio", patches, tf.cast(grads, patches.dtype)
  )
  return tf.reduce_sum(tf.square(per_example), axis=0) / tf.cast(
    batch, patches.dtype
  )


def _is_channel_last(data_format):
  """`utils.is_data_format_channel_last` (None counts as channel-last)."""
  if data_format is None:
    return True
  return data_format.endswith("C")


class FullyConnectedKroneckerFactor(InverseProvidingFactor):
  """Kronecker factor of a fully connected layer's side, per tower (1.8+).

  `C_{s,t} = compute_cov(t_{s,t})` (a column of ones appended if
  `has_bias`).
  """

  def __init__(self, tensors, has_bias=False):
    """Records the data.

    Args:
      tensors: A list over sources of lists over towers of `[B, n]`
        Tensors (layer inputs, or gradients of the outputs).
      has_bias: Whether a column of ones is appended.
    """
    self._tensors = tuple(tuple(t) for t in tensors)
    self._has_bias = has_bias
    super(FullyConnectedKroneckerFactor, self).__init__()

  @property
  def _var_scope(self):
    return "ff_fckron_" + scope_string_from_params(
      tuple(tf.nest.flatten(self._tensors)) + (self._has_bias,)
    )

  @property
  def _cov_shape(self):
    size = _checks.static_dim(self._tensors[0][0], 1) + self._has_bias
    return [size, size]

  @property
  def _num_sources(self):
    return len(self._tensors)

  @property
  def _num_towers(self):
    return len(self._tensors[0])

  @property
  def _dtype(self):
    return self._tensors[0][0].dtype.base_dtype

  def _compute_new_cov(self, source, tower):
    tensor = tf.convert_to_tensor(self._tensors[source][tower])
    return self._statistic(
      _engine.FullyConnectedKroneckerFactor, (tensor,), self._has_bias
    )

  def _get_data_device(self, tower):
    return _tower_device(self._tensors[0][tower])


class ConvInputKroneckerFactor(InverseProvidingFactor):
  """Input-side Kronecker factor of a convolution, per tower (1.8+).

  `compute_cov` of the patches (rows = example × location), a one appended
  when `has_bias`. `register_conv2d` uses `"extract_image_patches"`; the
  statistic of an undilated 2-D convolution comes from the engine's
  `ConvInputKroneckerFactor` (the lag formulation of `kfac._conv_stats`).
  """

  def __init__(
    self,
    inputs,
    filter_shape,
    padding,
    strides=None,
    dilation_rate=None,
    data_format=None,
    extract_patches_fn=None,
    has_bias=False,
    sub_sample_inputs=None,
    sub_sample_patches=None,
  ):
    """Records the data (1.9 adds the sub-sampling switches).

    Args:
      inputs: A list over towers of the inputs `[B, *spatial, C]`.
      filter_shape: The filter shape `(*f_spatial, C, O)`.
      padding: "SAME" or "VALID".
      strides: Strides (spatial-only, or 4 entries for image patches).
      dilation_rate: Dilations, like `strides`.
      data_format: None or a channel-last format.
      extract_patches_fn: How patches are extracted (see `_patches`).
      has_bias: Whether a one is appended to every patch.
      sub_sample_inputs: Whether to keep a random part of the examples
        (default `_SUB_SAMPLE_INPUTS`).
      sub_sample_patches: Whether to keep a random part of the patches
        (default `_SUB_SAMPLE_OUTER_PRODUCTS`).
    """
    self._inputs = tuple(inputs)
    self._filter_shape = filter_shape
    self._strides = strides
    self._padding = padding
    self._dilation_rate = dilation_rate
    self._data_format = data_format
    self._extract_patches_fn = extract_patches_fn
    self._has_bias = has_bias
    self._sub_sample_inputs = (
      _SUB_SAMPLE_INPUTS if sub_sample_inputs is None else sub_sample_inputs
    )
    self._sub_sample_patches = (
      _SUB_SAMPLE_OUTER_PRODUCTS
      if sub_sample_patches is None
      else sub_sample_patches
    )
    super(ConvInputKroneckerFactor, self).__init__()

  @property
  def _var_scope(self):
    return "ff_convinkron_" + scope_string_from_params(
      tuple(self._inputs)
      + (
        self._filter_shape,
        self._strides,
        self._padding,
        self._dilation_rate,
        self._data_format,
        self._has_bias,
      )
    )

  @property
  def _cov_shape(self):
    size = int(np.prod(self._filter_shape[:-1])) + self._has_bias
    return [size, size]

  @property
  def _num_sources(self):
    return 1

  @property
  def _num_towers(self):
    return len(self._inputs)

  @property
  def _dtype(self):
    return self._inputs[0].dtype.base_dtype

  def _compute_new_cov(self, source, tower):
    assert source == 0
    inputs = tf.convert_to_tensor(self._inputs[tower])
    if self._sub_sample_inputs:
      batch_size = _checks.static_dim(inputs, 0)
      max_size = int(batch_size * _INPUTS_TO_EXTRACT_PATCHES_FACTOR)
      inputs = _random_tensor_gather(inputs, max_size)
    fn = self._extract_patches_fn
    plain_conv2d = (
      fn == "extract_image_patches"
      and not self._sub_sample_patches
      and tuple(self._dilation_rate or (1, 1, 1, 1)) == (1, 1, 1, 1)
    )
    if plain_conv2d:
      return self._statistic(
        _engine.ConvInputKroneckerFactor,
        inputs,
        list(self._filter_shape),
        list(self._strides),
        self._padding,
        self._has_bias,
      )
    patches = self._patches(inputs)
    flat = tf.reshape(patches, [-1, int(np.prod(self._filter_shape[:-1]))])
    if self._sub_sample_patches:
      flat = _subsample_for_cov_computation(flat)
    if self._has_bias:
      flat = append_homog(flat)
    return compute_cov(flat)

  def _patches(self, inputs):
    fn = self._extract_patches_fn
    if fn in (None, "extract_convolution_patches"):
      return utils.extract_convolution_patches(
        inputs,
        self._filter_shape,
        padding=self._padding,
        strides=self._strides,
        dilation_rate=self._dilation_rate,
        data_format=self._data_format,
      )
    if fn == "extract_image_patches":
      assert _checks.static_rank(inputs) == 4
      assert len(self._filter_shape) == 4
      assert len(self._strides) == 4, self._strides
      if self._dilation_rate is not None:
        assert self._dilation_rate[0] == self._dilation_rate[-1] == 1
      return _image_patches(
        inputs,
        self._filter_shape,
        self._strides,
        self._dilation_rate,
        self._padding,
      )
    if fn == "extract_pointwise_conv2d_patches":
      assert self._strides in [None, [1, 1, 1, 1], (1, 1, 1, 1)]
      assert self._filter_shape[0] == self._filter_shape[1] == 1
      return utils.extract_pointwise_conv2d_patches(
        inputs, self._filter_shape, data_format=None
      )
    raise NotImplementedError(fn)

  def _get_data_device(self, tower):
    return _tower_device(self._inputs[tower])


def _random_tensor_gather(array, max_size):
  """`max_size` rows of `array` picked by a random shuffle (1.9)."""
  batch_size = _checks.static_dim(array, 0)
  indices = tf.random.shuffle(tf.range(0, batch_size))[:max_size]
  return tf.gather(array, indices)


def _subsample_for_cov_computation(array, name=None):
  """At most `_MAX_NUM_OUTER_PRODUCTS_PER_COV_ROW · cols` random rows (1.9).

  Args:
    array: A 2-D Tensor with static shape.
    name: Optional name scope (default "subsample").

  Returns:
    `array`, or a random subset of its rows.

  Raises:
    ValueError: If `array` is not 2-D with a static row count.
  """
  with tf.name_scope(name or "subsample"):
    if _checks.static_rank(array) != 2:
      raise ValueError("Input param array must be a matrix.")
    num_rows = _checks.static_dim(array, 0)
    num_cols = _checks.static_dim(array, 1)
    if num_rows is None:
      raise ValueError("Input param array must have a static row count.")
    max_size = int(_MAX_NUM_OUTER_PRODUCTS_PER_COV_ROW * num_cols)
    if num_rows <= max_size:
      return array
    return _random_tensor_gather(array, max_size)


class ConvOutputKroneckerFactor(InverseProvidingFactor):
  """Output-side Kronecker factor of a convolution, per tower (1.8+).

  `C_{s,t} = compute_cov(reshape(g_{s,t}, [-1, out_channels]))`.
  """

  def __init__(self, outputs_grads, data_format=None):
    """Records the data.

    Args:
      outputs_grads: A list over sources of lists over towers of the output
        gradients `[B, *spatial, O]`.
      data_format: None or a channel-last format.

    Raises:
      ValueError: For a channel-first format.
    """
    if not _is_channel_last(data_format):
      raise ValueError("Channel must be last.")
    self._outputs_grads = tuple(tuple(g) for g in outputs_grads)
    self._out_channels = _checks.static_dim(self._outputs_grads[0][0], -1)
    super(ConvOutputKroneckerFactor, self).__init__()

  @property
  def _var_scope(self):
    return "ff_convoutkron_" + scope_string_from_params(
      tf.nest.flatten(self._outputs_grads)
    )

  @property
  def _cov_shape(self):
    return [self._out_channels, self._out_channels]

  @property
  def _num_sources(self):
    return len(self._outputs_grads)

  @property
  def _num_towers(self):
    return len(self._outputs_grads[0])

  @property
  def _dtype(self):
    return self._outputs_grads[0][0].dtype.base_dtype

  def _compute_new_cov(self, source, tower):
    grads = tf.convert_to_tensor(self._outputs_grads[source][tower])
    reshaped = tf.reshape(grads, [-1, self._out_channels])
    return compute_cov(reshaped)

  def _get_data_device(self, tower):
    return _tower_device(self._outputs_grads[0][tower])


class EmbeddingInputKroneckerFactor(DiagonalFactor):
  """Diagonal input factor of an embedding layer, per tower (1.8+).

  `C[v] = (number of ids equal to v) / B` (the engine's 1.7 statistic).
  """

  def __init__(self, input_ids, vocab_size, dtype=None):
    """Records the data.

    Args:
      input_ids: A list over towers of integer ids `[B]` or `[B, k]`.
      vocab_size: The number of rows of the embedding matrix.
      dtype: The covariance dtype (default float32).
    """
    self._input_ids = tuple(input_ids)
    self._vocab_size = vocab_size
    self._cov_dtype = tf.as_dtype(dtype or tf.float32)
    super(EmbeddingInputKroneckerFactor, self).__init__()

  @property
  def _var_scope(self):
    return "ff_diag_embedding_" + scope_string_from_params(self._input_ids)

  @property
  def _cov_shape(self):
    return [self._vocab_size]

  @property
  def _num_sources(self):
    return 1

  @property
  def _num_towers(self):
    return len(self._input_ids)

  @property
  def _dtype(self):
    return self._cov_dtype

  def _compute_new_cov(self, source, tower):
    assert source == 0
    ids = tf.convert_to_tensor(self._input_ids[tower])
    return self._statistic(
      _embedding.EmbeddingInputKroneckerFactor,
      (ids,),
      self._vocab_size,
      self._cov_dtype,
    )

  def _get_data_device(self, tower):
    return _tower_device(self._input_ids[tower])


class FullyConnectedMultiKF(FullyConnectedKroneckerFactor):
  """Kronecker factor of a fully connected layer used `num_uses` times.

  The data are use-major stacked (`[T·B, n]` per tower, `B = rows // T`);
  `cov` is the fully connected statistic over all rows. With
  `register_cov_dt1()` (series blocks) the lag-1 moment
  `C1 = X_futureᵀ X_present / (T·B)` is kept in `cov_dt1`, and the option
  quantities of the series approximation (releases.md §2.9) are refreshed
  by `make_inverse_update_ops` before the matrix powers, from the engine's
  formulas (`kfac._multi_use`). (1.8+, internal.)
  """

  def __init__(self, tensors, num_uses=None, has_bias=False):
    self._num_uses = num_uses
    self._cov_dt1 = None
    self._make_cov_dt1 = False
    self._option1quants_registrations = set()
    self._option2quants_registrations = set()
    self._option1quants_by_damping = {}
    self._option2quants_by_damping = {}
    super(FullyConnectedMultiKF, self).__init__(tensors, has_bias=has_bias)

  @property
  def _var_scope(self):
    return "ff_fc_multi_" + scope_string_from_params(
      tuple(tf.nest.flatten(self._tensors)) + (self._num_uses, self._has_bias)
    )

  @property
  def _vec_shape(self):
    return [self._cov_shape[0]]

  def get_option1quants(self, damping_func):
    """`(L, ψ)` of option 1 for a registered damping function.

    Args:
      damping_func: The damping function.

    Returns:
      The variables.
    """
    return self._option1quants_by_damping[graph_func_to_id(damping_func)]

  def get_option2quants(self, damping_func):
    """`(P, K, μ)` of option 2 for a registered damping function.

    Args:
      damping_func: The damping function.

    Returns:
      The variables.
    """
    return self._option2quants_by_damping[graph_func_to_id(damping_func)]

  def get_cov_dt1(self):
    """The `cov_dt1` variable (None unless registered and created)."""
    return self._cov_dt1

  def register_cov_dt1(self):
    """Asks for the lag-1 moment `cov_dt1`."""
    self._make_cov_dt1 = True

  def register_option1quants(self, damping_func):
    """Registers option 1's quantities for a damping function.

    Args:
      damping_func: The damping function.
    """
    self._option1quants_registrations.add(self._register_damping(damping_func))

  def register_option2quants(self, damping_func):
    """Registers option 2's quantities for a damping function.

    Args:
      damping_func: The damping function.
    """
    self._option2quants_registrations.add(self._register_damping(damping_func))

  def instantiate_cov_variables(self):
    """Creates `cov` (and `cov_dt1`, zeros, when registered)."""
    super(FullyConnectedMultiKF, self).instantiate_cov_variables()
    if self._make_cov_dt1:
      with tf.compat.v1.variable_scope(self._var_scope):
        self._cov_dt1 = tf.compat.v1.get_variable(
          "cov_dt1",
          initializer=tf.compat.v1.zeros_initializer(),
          shape=self._cov_shape,
          trainable=False,
          dtype=self._dtype,
        )

  def instantiate_inv_variables(self):
    """Creates the power variables and the option quantities' variables.

    Option 2's `P` is stored as `Lmat_damp<D>` like option 1's `L` (quirk
    of every release: both options for one damping collide).
    """
    super(FullyConnectedMultiKF, self).instantiate_inv_variables()
    with tf.compat.v1.variable_scope(self._var_scope):
      for damping_id in self._option1quants_registrations:
        damping = self._damping_string(damping_id)
        self._option1quants_by_damping[damping_id] = (
          self._new_inverse_variable("Lmat_damp" + damping),
          self._new_vector_variable("psi_damp" + damping),
        )
      for damping_id in self._option2quants_registrations:
        damping = self._damping_string(damping_id)
        self._option2quants_by_damping[damping_id] = (
          self._new_inverse_variable("Lmat_damp" + damping),
          self._new_inverse_variable("Kmat_damp" + damping),
          self._new_vector_variable("mu_damp" + damping),
        )

  def _new_vector_variable(self, name):
    return tf.compat.v1.get_variable(
      name,
      initializer=tf.compat.v1.ones_initializer(),
      shape=self._vec_shape,
      trainable=False,
      dtype=self._dtype,
    )

  def _compute_new_cov_dt1(self, source, tower):
    tensor = tf.convert_to_tensor(self._tensors[source][tower])
    if self._has_bias:
      tensor = append_homog(tensor)
    rows = tf.shape(tensor)[0]
    batch_size = rows // self._num_uses
    normalizer = tf.cast(self._num_uses * batch_size, tensor.dtype)
    return (
      tf.linalg.matmul(
        tensor[batch_size:, :], tensor[: rows - batch_size, :], transpose_a=True
      )
      / normalizer
    )

  def _new_covariances(self):
    """`cov`'s pair, then `cov_dt1`'s when kept (its lag-1 moment).

    The covariance update then groups both moving averages into one op (a
    non-finite statistic keeps both).

    Returns:
      A list of `(variable, new statistic)` pairs.
    """
    pairs = super(FullyConnectedMultiKF, self)._new_covariances()
    if self._cov_dt1 is None:
      return pairs
    contributions = [
      self._compute_new_cov_dt1(source, tower)
      for source in range(self._num_sources)
      for tower in range(self._num_towers)
    ]
    new_cov_dt1 = tf.add_n(contributions) / tf.cast(
      self._num_towers, self._dtype
    )
    return pairs + [(self._cov_dt1, new_cov_dt1)]

  def make_inverse_update_ops(self):
    """The option quantities, then the matrix powers, as one grouped op.

    The option quantities come first, so the eigendecomposition they cache
    also serves the powers (1.8+ order).

    Returns:
      A one-element list.
    """
    return self._inverse_update_ops(_nonfinite.assign)

  def _inverse_update_ops(self, assign):
    """`make_inverse_update_ops`, assigning through `assign`.

    Args:
      assign: `(variable, value) -> op`, the assignment to use.

    Returns:
      A one-element list.
    """
    dampings = {
      damping_id: self._damping_value(damping_id)
      for damping_id in self._damping_funcs_by_id
    }
    by_id = (self._option1quants_by_damping, self._option2quants_by_damping)
    try:
      self._option1quants_by_damping = _ValueKeyed(
        (dampings[i], variables) for i, variables in by_id[0].items()
      )
      self._option2quants_by_damping = _ValueKeyed(
        (dampings[i], variables) for i, variables in by_id[1].items()
      )
      option_ops = [
        assign(variable, value)
        for variable, value in self._option_quant_updates()
      ]
    finally:
      self._option1quants_by_damping, self._option2quants_by_damping = by_id
    base_ops = super(FullyConnectedMultiKF, self)._inverse_update_ops(assign)
    return [tf.group(*(option_ops + base_ops))]

  # The option quantities of the engine's multi-use factor (re-hosted).
  _option_quant_updates = _multi_use.FullyConnectedMultiKF._option_quant_updates
