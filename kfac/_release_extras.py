"""Engine pieces that the releases 1.5 to 1.7 added around the 1.4 maths.

Everything here is written once and bound by the release faces
(`kfac.r1_N`):

* `ensure_sequence` and `batch_execute` (`utils`, 1.6);
* `DataDtypeFactorMixin`: factor variables in the dtype of the data (1.5);
* `DenseFactorMultiplyMixin` and `DiagonalFactorMultiplyMixin`: the factor
  products `left_multiply`, `right_multiply` and their inverses, and
  `get_cov_var` (1.7), plus the same products as plain functions;
* `FactorProductsKroneckerMixin`: Kronecker blocks whose products are
  delegated to those factor products, so that sparse (`IndexedSlices`)
  gradients keep their sparsity (1.7);
* `OnehotCategoricalLogitsNegativeLogProbLoss` (`loss_functions`, 1.6);
* `PartialCurvatureMatrixVectorProductComputer`: curvature products built
  from partial derivatives (1.5).

The sparse helpers these products use live in `kfac._embedding`; it is
imported lazily because its classes are built on the mixins of this module.
"""

import contextlib

import tensorflow as tf

from kfac import _ops
from kfac import curvature_matrix_vector_products as cmvp
from kfac import fisher_blocks
from kfac import fisher_factors
from kfac import loss_functions
from kfac import utils

__all__ = [
  "ensure_sequence",
  "batch_execute",
  "decay_in_dtype",
  "pi_adjusted_damping",
  "current_pi_type",
  "maybe_colocate_with",
  "colocation_flag",
  "cast_damping",
  "DataDtypeFactorMixin",
  "FactorMultiplyMixin",
  "DenseFactorMultiplyMixin",
  "DiagonalFactorMultiplyMixin",
  "FactorProductsKroneckerMixin",
  "left_multiply",
  "right_multiply",
  "left_multiply_inverse",
  "right_multiply_inverse",
  "get_cov_var",
  "OnehotCategoricalLogitsNegativeLogProbLoss",
  "OnehotCategoricalMixin",
  "PartialCurvatureMatrixVectorProductComputer",
]


def decay_in_dtype(ema_decay, dtype):
  """A Python decay as a scalar Tensor of `dtype` (Tensors are kept).

  The multi-use factors' moving averages take their decay this way: the
  decay is rounded to `dtype` first and `1 − decay` is then computed in
  `dtype` by `fisher_factors._assign_moving_average` (for float64 the same
  value as a Python `1 − decay`).

  Args:
    ema_decay: A Python number or a scalar Tensor.
    dtype: The factor's dtype.

  Returns:
    `ema_decay` as a Tensor of `dtype`, or unchanged if it is a Tensor.
  """
  if isinstance(ema_decay, (tf.Tensor, tf.Variable)):
    return ema_decay
  return tf.constant(ema_decay, dtype=dtype)


PI_OFF_NAME = "off"
PI_TRACENORM_NAME = "tracenorm"


def current_pi_type(blocks_module=None):
  """The π type in force: the `PI_TYPE` global of a `fisher_blocks` module.

  Releases 1.5+ select it with `fisher_blocks.set_global_constants(
  pi_type=...)`; without that global the type is "tracenorm" (1.4).

  Args:
    blocks_module: The `fisher_blocks` module in force (the engine's, or a
      face's: callers pass the one their code sees); default the engine's.

  Returns:
    The π type string.
  """
  return getattr(blocks_module or fisher_blocks, "PI_TYPE", PI_TRACENORM_NAME)


def pi_adjusted_damping(pi_fn, damping, pi_type=None):
  """Splits a damping between two Kronecker factors (1.5's π types).

  * "tracenorm": `(π√d, √d/π)` with `π = pi_fn()`;
  * "off": `(√d, √d)`;
  * any other type: `None` (the legacy code did not validate it; the
    caller fails when it unpacks the result, with a `TypeError`).

  A Python `d` is square-rooted in Python, so that the products are exact in
  the dtype of `π` (float64 factors included) and, with "off", the two
  dampings are Python floats (their `repr` names the inverse variables); a
  Tensor `d` is cast to the dtype of `π` first.

  Args:
    pi_fn: Callable returning the scalar Tensor `π` (ratio of the factors'
      average traces); only called for "tracenorm".
    damping: The damping `d`, a Python number or a scalar Tensor.
    pi_type: The π type; defaults to `current_pi_type()`.

  Returns:
    A pair of dampings `(input side, output side)`, or `None`.
  """
  if pi_type is None:
    pi_type = current_pi_type()
  if pi_type == PI_OFF_NAME:
    if isinstance(damping, (tf.Tensor, tf.Variable)):
      sqrt_damping = tf.sqrt(damping)
    else:
      sqrt_damping = float(damping) ** 0.5
    return sqrt_damping, sqrt_damping
  if pi_type != PI_TRACENORM_NAME:
    return None
  pi = pi_fn()
  if isinstance(damping, (tf.Tensor, tf.Variable)):
    sqrt_damping = tf.sqrt(tf.cast(damping, pi.dtype))
  else:
    sqrt_damping = float(damping) ** 0.5
  return sqrt_damping * pi, sqrt_damping / pi


def colocation_flag(factors_module, flag=False):
  """Whether covariance ops are colocated with their inputs.

  True when `flag` (1.5's per-collection argument) is true or the module's
  `COLOCATE_COV_OPS_WITH_INPUTS` global (1.6-1.7) is; a module without that
  global counts as off.

  Args:
    factors_module: The `fisher_factors` module in force (the engine's, or a
      face's: callers pass the one their code sees).
    flag: Python bool, 1.5's argument.

  Returns:
    A Python bool.
  """
  return bool(
    flag or getattr(factors_module, "COLOCATE_COV_OPS_WITH_INPUTS", False)
  )


def maybe_colocate_with(op, flag):
  """`colocate_with(op)` when `flag` is true, else a null context.

  A list or tuple is colocated with its first element.

  Args:
    op: A Tensor or Operation, or a list/tuple of them.
    flag: Python bool (see `colocation_flag`).

  Returns:
    A context manager.
  """
  if not flag:
    return contextlib.nullcontext()
  return _ops.colocate_with(op)


def _sparse():
  """The module with the `IndexedSlices` helpers (imported on first use)."""
  from kfac import _embedding

  return _embedding


# ---------------------------------------------------------------------------
# utils (1.6): ensure_sequence, batch_execute.
# ---------------------------------------------------------------------------


def ensure_sequence(obj):
  """Returns `obj` if it is a tuple or a list, else the 1-tuple `(obj,)`.

  Args:
    obj: Anything.

  Returns:
    `obj` itself for a tuple or list (not copied), otherwise `(obj,)`.
  """
  if isinstance(obj, (tuple, list)):
    return obj
  return (obj,)


def _as_dependency(result):
  """The op(s) a control dependency on a thunk's result must wait for."""
  if isinstance(result, (tuple, list)):
    return [dep for element in result for dep in _as_dependency(element)]
  if result is None:
    return []
  return [result]


def batch_execute(global_step, thunks, batch_size, name=None):
  """Runs `batch_size` of the thunks' ops per step, cycling through them.

  For thunk `j` of `n = len(thunks)` the op is
  `tf.cond(c_j, run_j, skip_j)` with
  `c_j = ((batch_size − 1 + global_step·batch_size − j) mod n) < batch_size`
  (floor modulo). Hence at step `s` the thunks `s·b, s·b + 1, …,
  s·b + b − 1 (mod n)` run (`b = batch_size`; every thunk when `b ≥ n`).
  `run_j` calls thunk `j` and returns a `no_op` that depends on its result;
  `skip_j` returns a `no_op`. Each thunk is called exactly once, inside the
  true branch of its `cond`, so a thunk may only build ops (it must not
  create variables).

  Args:
    global_step: An integer scalar Tensor or Variable, the training step.
    thunks: A list of callables taking no arguments, each building an op (or
      a Tensor, or a list of them) when called.
    batch_size: Python int or integer scalar Tensor, how many thunks run per
      step.
    name: Optional name scope (default `"batch_execute"`).

  Returns:
    The list of the `n` `cond` results (group them to get one op).

  Raises:
    ValueError: If `global_step` is not of an integer dtype, or a thunk is
      not callable.
  """
  thunks = list(thunks)
  for j, thunk in enumerate(thunks):
    if not callable(thunk):
      raise ValueError(
        "thunks[{}] must be a callable, got {!r}.".format(j, thunk)
      )
  with tf.compat.v1.name_scope(name, "batch_execute"):
    global_step = tf.convert_to_tensor(global_step)
    if not global_step.dtype.base_dtype.is_integer:
      raise ValueError(
        "global_step must be an integer Tensor, got dtype {}.".format(
          global_step.dtype.base_dtype.name
        )
      )
    batch_size = tf.cast(batch_size, global_step.dtype.base_dtype)
    num_thunks = len(thunks)

    def run(thunk):
      def run_fn():
        with tf.control_dependencies(_as_dependency(thunk())):
          return tf.no_op()

      return run_fn

    def skip():
      return tf.no_op()

    results = []
    for j, thunk in enumerate(thunks):
      condition = tf.less(
        tf.math.floormod(
          batch_size - 1 + global_step * batch_size - j, num_thunks
        ),
        batch_size,
      )
      results.append(tf.cond(condition, run(thunk), skip))
    return results


# ---------------------------------------------------------------------------
# Factors: dtype of the data (1.5).
# ---------------------------------------------------------------------------


class DataDtypeFactorMixin(object):
  """Makes a factor's variables take the dtype of its data (1.5).

  Put it before the engine factor class in the bases. The class must define
  the property `_dtype`. `cov` and every damped inverse and matrix power are
  created in that dtype; damping values are cast to it where they are used.
  The covariance update is the engine factor's (its new statistic is cast to
  the dtype of `cov`).
  """

  def instantiate_covariance(self):
    """Creates `<scope>/<_var_scope>/cov` in the factor's dtype.

    The variable is non-trainable, of shape `_cov_shape`, initialised by
    `_cov_initializer`.
    """
    with tf.compat.v1.variable_scope(self._var_scope):
      self._cov = tf.compat.v1.get_variable(
        "cov",
        initializer=self._cov_initializer,
        shape=self._cov_shape,
        dtype=self._dtype,
        trainable=False,
      )

  def _make_inverse_like_variable(self, name):
    """An identity-initialised `[n, n]` variable next to `cov`."""
    with tf.compat.v1.variable_scope(self._var_scope):
      return tf.compat.v1.get_variable(
        name,
        initializer=fisher_factors.inverse_initializer,
        shape=self._cov_shape,
        dtype=self._dtype,
        trainable=False,
      )

  def register_damped_inverse(self, damping):
    """Keeps `(cov + damping·I)⁻¹` up to date in `inv_damp<damping>`.

    A damping seen before (an equal float, or the same Tensor) adds nothing.

    Args:
      damping: The damping value (float or Tensor).
    """
    if damping not in self._inverses_by_damping:
      self._inverses_by_damping[damping] = self._make_inverse_like_variable(
        "inv_damp" + fisher_factors.scalar_or_tensor_to_string(damping)
      )

  def register_matpower(self, exp, damping):
    """Keeps `(cov + damping·I)^exp` in `matpower_exp<exp>_damp<damping>`.

    Args:
      exp: The exponent (float or Tensor).
      damping: The damping value (float or Tensor).
    """
    if (exp, damping) not in self._matpower_by_exp_and_damping:
      self._matpower_by_exp_and_damping[(exp, damping)] = (
        self._make_inverse_like_variable(
          "matpower_exp"
          + fisher_factors.scalar_or_tensor_to_string(exp)
          + "_damp"
          + fisher_factors.scalar_or_tensor_to_string(damping)
        )
      )


# ---------------------------------------------------------------------------
# Factors: products with the damped covariance (1.7).
# ---------------------------------------------------------------------------


def get_cov_var(factor):
  """Returns the factor's covariance variable itself (1.7 `get_cov_var`).

  Args:
    factor: A `fisher_factors.FisherFactor`.

  Returns:
    The `cov` variable.
  """
  return factor._cov


def _damped_inverse(factor, damping):
  """The stored `(cov + damping·I)⁻¹` (`get_damped_inverse`, or 1.4's name)."""
  getter = getattr(factor, "get_damped_inverse", None) or factor.get_inverse
  return getter(damping)


def _check_matrix(x, what):
  """Raises ValueError unless `x` (a dense Tensor) has static rank 2."""
  x = tf.convert_to_tensor(x)
  if x.shape.rank != 2:
    raise ValueError(
      "{} of a dense (inverse-providing) factor applies to matrices "
      "(rank 2); got {} of shape {}.".format(what, x.name, x.shape)
    )
  return x


def cast_damping(damping, dtype):
  """A damping as a Tensor of `dtype`, exact for Python numbers.

  `tf.cast` of a Python float goes through a float32 Tensor, which rounds it
  for float64 factors; a Python number is converted with `dtype` directly.

  Args:
    damping: A Python number or a scalar Tensor.
    dtype: The dtype wanted.

  Returns:
    A scalar Tensor of `dtype`.
  """
  return _ops.in_dtype(damping, dtype)


_damping_in = cast_damping


def _damped_cov(factor):
  """`D = cov + d·I` as a function of the damping (in the factor's dtype)."""
  cov = get_cov_var(factor)
  n = cov.shape.as_list()[0]

  def damped(damping):
    return cov + _damping_in(damping, cov.dtype) * tf.eye(n, dtype=cov.dtype)

  return damped


def _is_diagonal(factor):
  """Whether `factor` is a `DiagonalFactor` (of the engine or of a face).

  Release faces re-host the engine classes, so a face's diagonal factor is
  not an instance of `fisher_factors.DiagonalFactor`; the class name in the
  MRO identifies it in every face.
  """
  return any(
    klass.__name__ == "DiagonalFactor" for klass in type(factor).__mro__
  )


def _diagonal_vector(factor):
  """The diagonal factor's entries as a vector (`reshape(cov, [-1])`)."""
  return tf.reshape(get_cov_var(factor), [-1])


def _check_diagonal_operand(factor, x):
  """Raises ValueError unless dense `x` has exactly the variable's shape."""
  cov = get_cov_var(factor)
  x = tf.convert_to_tensor(x)
  if x.shape != cov.shape:
    raise ValueError(
      "A diagonal factor multiplies Tensors of its variable's shape {} "
      "(or IndexedSlices); got shape {}.".format(cov.shape, x.shape)
    )
  return x


def left_multiply(factor, x, damping):
  """`(cov + d·I) x` for a factor (1.7 `left_multiply`).

  Dense factors need a rank-2 `x` (`D x`, `D = cov + d·I`); an
  `IndexedSlices` raises `NotImplementedError`. Diagonal factors compute
  `(cov + d) ⊙ x` for `x` of the variable's shape, or scale the rows of an
  `IndexedSlices` `x` by `reshape(cov, [-1])[indices] + d`.

  Args:
    factor: A `fisher_factors.FisherFactor`.
    x: A Tensor, or an `IndexedSlices` standing for a matrix.
    damping: The damping `d` (float or scalar Tensor).

  Returns:
    The product (an `IndexedSlices` for a sparse `x`).

  Raises:
    NotImplementedError: For a sparse `x` and a dense factor.
    ValueError: For a dense `x` of the wrong rank or shape.
  """
  if _is_diagonal(factor):
    diag = _diagonal_vector(factor)
    if isinstance(x, tf.IndexedSlices):
      return _sparse().matmul_diag_sparse(
        diag + _damping_in(damping, diag.dtype), x
      )
    x = _check_diagonal_operand(factor, x)
    cov = get_cov_var(factor)
    return (cov + _damping_in(damping, cov.dtype)) * x
  if isinstance(x, tf.IndexedSlices):
    raise NotImplementedError(
      "left_multiply of a dense factor does not support IndexedSlices."
    )
  x = _check_matrix(x, "left_multiply")
  return tf.linalg.matmul(_damped_cov(factor)(damping), x)


def right_multiply(factor, x, damping):
  """`x (cov + d·I)` for a dense factor (1.7 `right_multiply`).

  An `IndexedSlices` `x` is multiplied with
  `kfac._embedding.matmul_sparse_dense` and stays sparse.

  Args:
    factor: A dense `fisher_factors.FisherFactor`.
    x: A rank-2 Tensor, or an `IndexedSlices` standing for a matrix.
    damping: The damping `d` (float or scalar Tensor).

  Returns:
    The product.

  Raises:
    NotImplementedError: For a diagonal factor (only left products exist).
    ValueError: For a dense `x` that is not of rank 2.
  """
  if _is_diagonal(factor):
    raise NotImplementedError(
      "Diagonal factors only support left multiplication."
    )
  damped = _damped_cov(factor)(damping)
  if isinstance(x, tf.IndexedSlices):
    return _sparse().matmul_sparse_dense(x, damped)
  x = _check_matrix(x, "right_multiply")
  return tf.linalg.matmul(x, damped)


def left_multiply_inverse(factor, x, damping):
  """`(cov + d·I)⁻¹ x` for a factor (1.7 `left_multiply_inverse`).

  Dense factors use the stored damped inverse (registered for `damping`);
  diagonal factors compute `x / (cov + d)` (rows of an `IndexedSlices`
  scaled by `1 / (reshape(cov, [-1])[indices] + d)`).

  Args:
    factor: A `fisher_factors.FisherFactor`.
    x: A Tensor, or (diagonal factors) an `IndexedSlices`.
    damping: The damping `d`; for a dense factor the registered key.

  Returns:
    The product.

  Raises:
    ValueError: For a sparse `x` and a dense factor, or a dense `x` of the
      wrong rank or shape.
    KeyError: If a dense factor has no inverse registered for `damping`.
  """
  if _is_diagonal(factor):
    diag = _diagonal_vector(factor)
    if isinstance(x, tf.IndexedSlices):
      return _sparse().matmul_diag_sparse(
        1.0 / (diag + _damping_in(damping, diag.dtype)), x
      )
    x = _check_diagonal_operand(factor, x)
    cov = get_cov_var(factor)
    return x / (cov + _damping_in(damping, cov.dtype))
  if isinstance(x, tf.IndexedSlices):
    raise ValueError(
      "left_multiply_inverse of a dense factor does not support IndexedSlices."
    )
  x = _check_matrix(x, "left_multiply_inverse")
  return tf.linalg.matmul(_damped_inverse(factor, damping), x)


def right_multiply_inverse(factor, x, damping):
  """`x (cov + d·I)⁻¹` for a dense factor (1.7 `right_multiply_inverse`).

  Args:
    factor: A dense `fisher_factors.FisherFactor`.
    x: A rank-2 Tensor, or an `IndexedSlices` (kept sparse).
    damping: The registered damping key.

  Returns:
    The product.

  Raises:
    NotImplementedError: For a diagonal factor.
    ValueError: For a dense `x` that is not of rank 2.
    KeyError: If no inverse is registered for `damping`.
  """
  if _is_diagonal(factor):
    raise NotImplementedError(
      "Diagonal factors only support left multiplication."
    )
  inverse = _damped_inverse(factor, damping)
  if isinstance(x, tf.IndexedSlices):
    return _sparse().matmul_sparse_dense(x, inverse)
  x = _check_matrix(x, "right_multiply_inverse")
  return tf.linalg.matmul(x, inverse)


class FactorMultiplyMixin(object):
  """The 1.7 product methods of every factor (a mix-in).

  The methods call the module functions of the same names, which tell dense
  and diagonal factors apart: with `D = cov + d·I` (dense) or the diagonal
  `cov + d`, `left_multiply(x, d) = D x`, `right_multiply(x, d) = x D`,
  `left_multiply_inverse(x, d) = D⁻¹ x`, `right_multiply_inverse(x, d) =
  x D⁻¹` (diagonal factors: left products only).
  """

  def get_cov_var(self):
    """Returns the covariance variable (in its storage shape)."""
    return get_cov_var(self)

  def left_multiply(self, x, damping):
    """Returns `D x` (see the module function `left_multiply`).

    Args:
      x: A rank-2 Tensor (dense factors), a Tensor of the variable's shape
        (diagonal factors) or, for diagonal factors, an `IndexedSlices`.
      damping: The damping `d` (float or scalar Tensor).

    Returns:
      The product.

    Raises:
      NotImplementedError: For an `IndexedSlices` and a dense factor.
      ValueError: For a dense `x` of the wrong rank or shape.
    """
    return left_multiply(self, x, damping)

  def right_multiply(self, x, damping):
    """Returns `x D` (see the module function `right_multiply`).

    Args:
      x: A rank-2 Tensor or an `IndexedSlices` (the result stays sparse).
      damping: The damping `d` (float or scalar Tensor).

    Returns:
      The product.

    Raises:
      NotImplementedError: For a diagonal factor.
      ValueError: For a dense `x` that is not of rank 2.
    """
    return right_multiply(self, x, damping)

  def left_multiply_inverse(self, x, damping):
    """Returns `D⁻¹ x`; errors as the module function of this name.

    Args:
      x: As for `left_multiply`.
      damping: The damping `d`; for a dense factor the key its inverse was
        registered under (`KeyError` otherwise).

    Returns:
      The product.
    """
    return left_multiply_inverse(self, x, damping)

  def right_multiply_inverse(self, x, damping):
    """Returns `x D⁻¹`; errors as the module function of this name.

    Args:
      x: As for `right_multiply`.
      damping: The key the inverse was registered under.

    Returns:
      The product.
    """
    return right_multiply_inverse(self, x, damping)


class DenseFactorMultiplyMixin(FactorMultiplyMixin):
  """`FactorMultiplyMixin` for inverse-providing factors, plus 1.5's name.

  Put it before `fisher_factors.InverseProvidingFactor` (or a subclass) in
  the bases. The inverses used are the stored variables registered for `d`.
  """

  def get_damped_inverse(self, damping):
    """Returns the variable holding `(cov + damping·I)⁻¹` (1.5's name).

    Args:
      damping: A damping registered with `register_damped_inverse`.

    Returns:
      The inverse variable (`get_inverse(damping)`).

    Raises:
      KeyError: If `damping` was not registered.
    """
    return self.get_inverse(damping)


class DiagonalFactorMultiplyMixin(FactorMultiplyMixin):
  """`FactorMultiplyMixin` for diagonal factors, with their 1.7 `get_cov`.

  Put it before `fisher_factors.DiagonalFactor` (or a subclass) in the bases.
  `get_cov()` returns the dense matrix `diag(reshape(cov, [-1]))`; the left
  products accept `x` of the variable's shape or an `IndexedSlices` (rows
  scaled); the right products raise `NotImplementedError`;
  `register_damped_inverse` does nothing (no variable is needed).
  """

  def get_cov(self):
    """Returns the covariance as a dense diagonal matrix."""
    return tf.linalg.diag(_diagonal_vector(self))

  def register_damped_inverse(self, damping):
    """Does nothing: a diagonal is inverted on the fly.

    Args:
      damping: Ignored.
    """
    del damping


# ---------------------------------------------------------------------------
# Kronecker blocks whose products go through the factors (1.7).
# ---------------------------------------------------------------------------


class FactorProductsKroneckerMixin(object):
  """Kronecker-block products delegated to the factors (1.7; a mix-in).

  Put it before `fisher_blocks.KroneckerProductFB` (or a subclass) in the
  bases. With `M = mat2d(v)` (an `IndexedSlices` stays as it is),
  `multiply_inverse(v) = A_d⁻¹ (M G_d⁻¹) / c` and
  `multiply(v) = c · A_d (M G_d)`, the right factor being applied first,
  `A_d = A + d_A I`, `G_d = G + d_G I`, `c = _renorm_coeff`. The numbers are
  those of the 1.4 block; sparse gradients keep their sparsity.
  """

  def _factor_product(self, vector, inverse):
    sparse = _sparse()
    matrix = sparse.layer_params_to_mat2d(vector)
    if inverse:
      out = right_multiply_inverse(
        self._output_factor, matrix, self._output_damping
      )
      out = left_multiply_inverse(self._input_factor, out, self._input_damping)
    else:
      out = right_multiply(self._output_factor, matrix, self._output_damping)
      out = left_multiply(self._input_factor, out, self._input_damping)
    coeff = self._renorm_coeff
    if coeff != 1.0:
      dtype = (out.values if isinstance(out, tf.IndexedSlices) else out).dtype
      coeff = tf.cast(coeff, dtype)
      scale = (1.0 / coeff) if inverse else coeff
      if isinstance(out, tf.IndexedSlices):
        out = tf.IndexedSlices(out.values * scale, out.indices, out.dense_shape)
      else:
        out = out * scale
    return sparse.mat2d_to_layer_params(vector, out)

  def multiply_inverse(self, vector):
    """Returns `A_d⁻¹ M G_d⁻¹ / c` in the layout of `vector`.

    Args:
      vector: A weights-shaped Tensor, a `(weights, bias)` tuple, or an
        `IndexedSlices` (rows of the weights).

    Returns:
      The product, in the layout of `vector`.
    """
    return self._factor_product(vector, inverse=True)

  def multiply(self, vector):
    """Returns `c · A_d M G_d` in the layout of `vector`.

    Args:
      vector: As for `multiply_inverse`.

    Returns:
      The product, in the layout of `vector`.
    """
    return self._factor_product(vector, inverse=False)


# ---------------------------------------------------------------------------
# loss_functions (1.6): one-hot categorical.
# ---------------------------------------------------------------------------


class _OneHotCategorical(object):
  """Categorical distribution over one-hot rows of the last axis.

  `log_prob(t) = Σ_k t_k log softmax(logits)_k`; samples are one-hot rows
  (int32) of a categorical draw.
  """

  def __init__(self, logits):
    self.logits = logits

  def log_prob(self, onehot):
    """`Σ_k t_k log softmax(logits)_k` for every row (no batch sum)."""
    onehot = tf.cast(onehot, self.logits.dtype)
    return tf.reduce_sum(onehot * tf.nn.log_softmax(self.logits), axis=-1)

  def sample(self, seed):
    """One int32 one-hot row per batch row (op-level `seed`)."""
    num_classes = tf.shape(self.logits)[-1]
    flat_logits = tf.reshape(self.logits, [-1, num_classes])
    draws = tf.random.categorical(flat_logits, 1, dtype=tf.int32, seed=seed)[
      :, 0
    ]
    onehot = tf.one_hot(draws, num_classes, dtype=tf.int32)
    return tf.reshape(onehot, tf.shape(self.logits))


def _check_onehot_targets(targets):
  """Checks one-hot targets (a real or integer Tensor); returns a Tensor."""
  targets = loss_functions._as_tensor(targets, "targets")
  dtype = tf.as_dtype(targets.dtype).base_dtype
  if not (dtype.is_floating or dtype.is_integer or dtype.is_bool):
    raise TypeError(
      "targets must be one-hot rows of a real or integer dtype,"
      " got dtype {}.".format(dtype.name)
    )
  if targets.shape.rank is not None and targets.shape.rank != 2:
    raise ValueError(
      "targets must be one-hot rows [batch_size, n_classes], "
      "got shape {}.".format(targets.shape)
    )
  return targets


class OnehotCategoricalMixin(object):
  """Turns a categorical-logits loss into its one-hot variant (a mix-in).

  Put it before `CategoricalLogitsNegativeLogProbLoss` in the bases (its
  constructor is that class's, called explicitly).
  Only the distribution changes: targets and samples are one-hot rows
  `[batch_size, n_classes]` and the loss is
  `−Σ_b Σ_k t_bk log softmax(z_b)_k`. The Fisher and Hessian products, the
  shapes and `params` are those of the categorical loss. The targets are
  stored by `_set_onehot_targets`, which a release face may override.
  """

  def __init__(self, logits, targets=None, seed=None):
    """Creates the loss.

    Args:
      logits: Float Tensor of shape `[batch_size, n_classes]`.
      targets: Optional one-hot Tensor `[batch_size, n_classes]` (floating,
        integer or bool).
      seed: Optional int, the default op-level seed of `evaluate_on_sample`.

    Raises:
      ValueError: If `logits` or `targets` is not 2-D.
      TypeError: If `logits` is not floating point or `targets` not real.
    """
    # No super(): a face inlines this mix-in into its loss class.
    loss_functions.CategoricalLogitsNegativeLogProbLoss.__init__(
      self, logits, targets=None, seed=seed
    )
    if targets is not None:
      self._set_onehot_targets(_check_onehot_targets(targets))

  def _set_onehot_targets(self, targets):
    self._targets = targets

  @property
  def dist(self):
    """A one-hot categorical distribution over the current logits."""
    return _OneHotCategorical(self.params)

  def _evaluate(self, targets):
    """Returns `−Σ log p(targets)` over the batch."""
    return -tf.reduce_sum(self.dist.log_prob(targets))

  def sample(self, seed):
    """Draws one-hot targets `[batch_size, n_classes]` (int32).

    Args:
      seed: Optional int, the op-level random seed.

    Returns:
      An int32 Tensor of one-hot rows.
    """
    return self.dist.sample(seed)


class OnehotCategoricalLogitsNegativeLogProbLoss(
  OnehotCategoricalMixin, loss_functions.CategoricalLogitsNegativeLogProbLoss
):
  """Softmax cross-entropy with one-hot targets (1.6).

  loss = −Σ_b Σ_k t_bk log softmax(z_b)_k for one-hot rows `t_b`. Every
  Fisher and Hessian product is that of
  `CategoricalLogitsNegativeLogProbLoss` (`F = diag(p) − p pᵀ` per row).
  """


# ---------------------------------------------------------------------------
# curvature_matrix_vector_products (1.5): partial derivatives.
# ---------------------------------------------------------------------------


class PartialCurvatureMatrixVectorProductComputer(
  cmvp.CurvatureMatrixVectorProductComputer
):
  """Curvature products whose Jacobian is made of partial derivatives (1.5).

  Both Jacobian products pass `stop_gradients=wrt_tensors` to the gradient
  computations: `J v` (through `utils.fwd_gradients`, where it reaches the
  first of the two passes) and `Jᵀ u`. So `J` holds the partial derivatives
  of the losses' inputs with respect to each of `wrt_tensors`, the others
  held fixed: a contribution flowing from one `wrt` tensor through another
  is cut. All other behaviour is that of the base class.
  """

  def _multiply_jacobian(self, vecs):
    """`J v` with partial derivatives; see the class docstring."""
    vecs = list(vecs) if isinstance(vecs, (tuple, list)) else [vecs]
    jacobian_vecs_flat = utils.fwd_gradients(
      self._inputs_to_losses_flat,
      self._wrt_tensors,
      grad_xs=vecs,
      stop_gradients=self._wrt_tensors,
    )
    jacobian_vecs_flat = [
      tf.zeros_like(inp) if vec is None else vec
      for inp, vec in zip(self._inputs_to_losses_flat, jacobian_vecs_flat)
    ]
    return tf.nest.pack_sequence_as(self._inputs_to_losses, jacobian_vecs_flat)

  def _multiply_jacobian_transpose(self, loss_vecs):
    """`Jᵀ u` with partial derivatives; see the class docstring."""
    loss_vecs_flat = tf.nest.flatten(loss_vecs)
    return tf.compat.v1.gradients(
      self._inputs_to_losses_flat,
      self._wrt_tensors,
      grad_ys=loss_vecs_flat,
      stop_gradients=self._wrt_tensors,
    )
