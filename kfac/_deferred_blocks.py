"""`fisher_blocks` of the deferred releases (1.8, 1.9, 1.10).

The face `kfac.r1_8.fisher_blocks` is built from this module (see
`Release.engine_modules`). Blocks receive one registration per tower
(`register_additional_tower`), create or find their factors in
`instantiate_factors` (no variables), key their matrix powers by damping
functions with stable ids (`PackagedFunc`) and multiply with
`multiply_matpower(vector, exp)`; 1.9 adds the Cholesky products. The
products are those of the engine's blocks: `KroneckerProductFB` computes
`c^e · A_d^e · mat2d(v) · G_d^e`, the diagonal blocks `(cov + d)^e ⊙ v`.
"""

import abc
import enum
import math

import numpy as np
import tensorflow as tf

from kfac import _checks
from kfac import _face_members
from kfac import _multi_use
from kfac import _deferred_factors as fisher_factors
from kfac import _releases
from kfac import _towers
from kfac import utils

NORMALIZE_DAMPING_POWER = 1.0
PI_OFF_NAME = "off"
PI_TRACENORM_NAME = "tracenorm"
PI_TYPE = PI_TRACENORM_NAME


def set_global_constants(normalize_damping_power=None, pi_type=None):
  """Sets the module constants whose argument is not None.

  Args:
    normalize_damping_power: New `NORMALIZE_DAMPING_POWER`.
    pi_type: New `PI_TYPE` ("tracenorm" or "off").
  """
  global NORMALIZE_DAMPING_POWER, PI_TYPE
  if normalize_damping_power is not None:
    NORMALIZE_DAMPING_POWER = normalize_damping_power
  if pi_type is not None:
    PI_TYPE = pi_type


# The damping helpers are 1.6's adapters; each face's declaration puts them
# (re-hosted, reading that face's constants) in place of these names.
normalize_damping = _face_members.blocks_1_6__normalize_damping
compute_pi_adjusted_damping = (
  _face_members.blocks_1_6__compute_pi_adjusted_damping
)


def _trace_and_dim(cov):
  """`(trace, dimension)` of a matrix, a diagonal (rank 1) or an operator."""
  if hasattr(cov, "domain_dimension"):
    return cov.trace(), int(cov.domain_dimension)
  rank = _checks.static_rank(cov)
  if rank == 1:
    return tf.reduce_sum(cov), _checks.static_dim(cov, 0)
  if rank == 2:
    return tf.linalg.trace(cov), _checks.static_dim(cov, 0)
  raise ValueError("cov must be rank 1 or 2; got shape {}.".format(cov.shape))


def compute_pi_tracenorm(left_cov, right_cov):
  """π = sqrt((tr(L)·dim(R)) / (tr(R)·dim(L))) (Martens & Grosse §6.3).

  Args:
    left_cov: A matrix, a rank-1 diagonal, or (1.9) a linear operator.
    right_cov: Same for the right factor.

  Returns:
    The scalar π.

  Raises:
    ValueError: For a covariance of rank other than 1 or 2.
  """
  left_trace, left_dim = _trace_and_dim(left_cov)
  right_trace, right_dim = _trace_and_dim(right_cov)
  right_trace = tf.cast(right_trace, left_trace.dtype)
  return tf.sqrt(
    (left_trace * right_dim)
    / (right_trace * tf.cast(left_dim, left_trace.dtype))
  )


def num_conv_locations(input_shape, strides):
  """`prod(input_shape[1:-1]) // prod(strides)` (input locations; 1.8).

  Args:
    input_shape: The inputs' static shape (a list or TensorShape).
    strides: The strides (spatial-only or 4 entries), or None.

  Returns:
    A Python int.
  """
  shape = _checks.static_shape_list(input_shape)
  spatial = int(np.prod(shape[1:-1]))
  divisor = 1 if strides is None else int(np.prod(list(strides)))
  return spatial // divisor


def maybe_tuple(obj):
  """A list as a tuple (hashable factor-key parts); anything else as is."""
  if not isinstance(obj, list):
    return obj
  return tuple(obj)


class PackagedFunc(object):
  """A zero-argument damping function with a stable, hashable id.

  `func_id` is the tuple of the id elements, each callable element replaced
  by its value (its result when called); the id names the variables the
  function's matrix powers are stored in.
  """

  def __init__(self, func, func_id):
    """Packages `func`.

    Args:
      func: A zero-argument callable returning the damping.
      func_id: An id element or a tuple of them.
    """
    self._func = func
    if not isinstance(func_id, tuple):
      func_id = (func_id,)
    self._func_id = func_id

  def __call__(self):
    return self._func()

  @property
  def func_id(self):
    """The id tuple (callable elements evaluated)."""
    return tuple(elt() if callable(elt) else elt for elt in self._func_id)


def _package_func(func, func_id):
  return PackagedFunc(func, func_id)


class FisherBlock(object, metaclass=abc.ABCMeta):
  """Abstract Fisher block of the deferred releases (1.8+)."""

  def __init__(self, layer_collection):
    """Creates the block (no data yet).

    Args:
      layer_collection: The `LayerCollection` it belongs to.
    """
    self._layer_collection = layer_collection

  @abc.abstractmethod
  def instantiate_factors(self, grads_list, damping):
    """Creates (or finds) the block's factors; no variables.

    Args:
      grads_list: A list over sources of the gradients of the tensors of
        `tensors_to_compute_grads()`.
      damping: The damping, a float or scalar Tensor.
    """
    pass

  @abc.abstractmethod
  def register_matpower(self, exp):
    """Registers the matrix power `exp` of the damped block on its factors.

    Args:
      exp: The exponent.
    """
    pass

  def register_inverse(self):
    """`register_matpower(-1)`."""
    self.register_matpower(-1)

  @abc.abstractmethod
  def multiply_matpower(self, vector, exp):
    """Multiplies `vector` by the damped block raised to `exp`.

    Args:
      vector: Shaped like the block's parameters.
      exp: The exponent.
    """
    pass

  def multiply_inverse(self, vector):
    """`multiply_matpower(vector, -1)`.

    Args:
      vector: Shaped like the block's parameters.

    Returns:
      The product.
    """
    return self.multiply_matpower(vector, -1)

  def multiply(self, vector):
    """`multiply_matpower(vector, 1)`.

    Args:
      vector: Shaped like the block's parameters.

    Returns:
      The product.
    """
    return self.multiply_matpower(vector, 1)

  @abc.abstractmethod
  def tensors_to_compute_grads(self):
    """The tensors whose gradients the block's factors need."""
    pass

  @property
  @abc.abstractmethod
  def num_registered_towers(self):
    """The number of towers registered."""
    pass

  def _packaged(self, func, func_id):
    return PackagedFunc(func, func_id)

  # 1.9: the Cholesky interface (see the subclasses).
  def register_cholesky(self):
    """Registers the Cholesky factor of the damped block (1.9)."""
    raise NotImplementedError(type(self).__name__)

  def register_cholesky_inverse(self):
    """Registers the inverse Cholesky factor of the damped block (1.9)."""
    raise NotImplementedError(type(self).__name__)

  def multiply_cholesky(self, vector, transpose=False):
    """Product with the Cholesky factor `L` (`Lᵀ`) of the damped block (1.9).

    Args:
      vector: Shaped like the block's parameters.
      transpose: Whether to use `Lᵀ`.
    """
    raise NotImplementedError(type(self).__name__)

  def multiply_cholesky_inverse(self, vector, transpose=False):
    """Product with `L⁻¹` (`L⁻ᵀ`) (1.9).

    Args:
      vector: Shaped like the block's parameters.
      transpose: Whether to use `L⁻ᵀ`.
    """
    raise NotImplementedError(type(self).__name__)


def _left_multiply(factor, x, exp, damping_func):
  """`factor^exp · x` by 1.8's factor method or 1.9's linear operator."""
  if _releases.of(factor).linear_operator_factors:
    return factor.get_matpower(exp, damping_func).matmul(x)
  return factor.left_multiply_matpower(x, exp, damping_func)


def _right_multiply(factor, x, exp, damping_func):
  """`x · factor^exp` by 1.8's factor method or 1.9's linear operator."""
  if _releases.of(factor).linear_operator_factors:
    return factor.get_matpower(exp, damping_func).matmul_right(x)
  return factor.right_multiply_matpower(x, exp, damping_func)


class FullFB(_towers.GenericTowersMixin, FisherBlock):
  """The whole Fisher block of arbitrary parameters (1.8+)."""

  def __init__(self, layer_collection, params):
    """Creates the block (no data yet).

    Args:
      layer_collection: The `LayerCollection`.
      params: The parameters (a variable or tuple/list of them).
    """
    self._params = params
    self._batch_sizes = []
    super(FullFB, self).__init__(layer_collection)

  def _factor_class(self):
    return fisher_factors.FullFactor

  def multiply_matpower(self, vector, exp):
    """`(cov + d I)^exp · col(v)`, reshaped like `v`.

    Args:
      vector: Shaped like the parameters.
      exp: The exponent.

    Returns:
      The product.
    """
    column = utils.tensors_to_column(vector)
    out = _left_multiply(self._factor, column, exp, self._damping_func)
    return utils.column_to_tensors(vector, out)

  def multiply_cholesky(self, vector, transpose=False):
    """`L col(v)` (`Lᵀ col(v)`), `L = chol(cov + d I)` (1.9).

    Args:
      vector: Shaped like the parameters.
      transpose: Whether to use `Lᵀ`.

    Returns:
      The product.
    """
    column = utils.tensors_to_column(vector)
    out = self._factor.get_cholesky(self._damping_func).matmul(
      column, adjoint=transpose
    )
    return utils.column_to_tensors(vector, out)

  def multiply_cholesky_inverse(self, vector, transpose=False):
    """`L⁻¹ col(v)` (`L⁻ᵀ col(v)`) (1.9).

    Args:
      vector: Shaped like the parameters.
      transpose: Whether to use `L⁻ᵀ`.

    Returns:
      The product.
    """
    column = utils.tensors_to_column(vector)
    out = self._factor.get_cholesky_inverse(self._damping_func).matmul(
      column, adjoint=transpose
    )
    return utils.column_to_tensors(vector, out)


class DiagonalFB(FisherBlock):
  """Blocks with one diagonal factor: products `(cov + d)^e ⊙ v` (1.9 base).

  Cholesky factors are the powers ±½ (`transpose` is irrelevant).
  """

  def register_matpower(self, exp):
    """No-op (powers are computed on the fly).

    Args:
      exp: Unused.
    """
    pass

  def register_cholesky(self):
    """No-op."""
    pass

  def register_cholesky_inverse(self):
    """No-op."""
    pass

  def _diagonal_product(self, vector, exp):
    reshaped = self._vector_to_diagonal_layout(vector)
    if _releases.of(self).linear_operator_factors:
      column = tf.reshape(reshaped, [-1, 1])
      out = self._factor.get_matpower(exp, self._damping_func).matmul(column)
      out = tf.reshape(out, tf.shape(reshaped))
    else:
      out = self._factor.left_multiply_matpower(
        reshaped, exp, self._damping_func
      )
    return self._diagonal_layout_to_vector(vector, out)

  def multiply_matpower(self, vector, exp):
    """`(cov + d)^exp ⊙ v`.

    Args:
      vector: Shaped like the parameters.
      exp: The exponent.

    Returns:
      The product.
    """
    return self._diagonal_product(vector, exp)

  def multiply_cholesky(self, vector, transpose=False):
    """`(cov + d)^½ ⊙ v` (1.9).

    Args:
      vector: Shaped like the parameters.
      transpose: Ignored (diagonal).

    Returns:
      The product.
    """
    del transpose
    return self._diagonal_product(vector, 0.5)

  def multiply_cholesky_inverse(self, vector, transpose=False):
    """`(cov + d)^-½ ⊙ v` (1.9).

    Args:
      vector: Shaped like the parameters.
      transpose: Ignored (diagonal).

    Returns:
      The product.
    """
    del transpose
    return self._diagonal_product(vector, -0.5)

  def full_fisher_block(self):
    """The undamped diagonal block as a dense matrix."""
    return tf.linalg.diag(tf.reshape(self._factor._cov, [-1]))


class NaiveDiagonalFB(_towers.GenericTowersMixin, DiagonalFB):
  """Diagonal Fisher of arbitrary parameters (1.8+)."""

  def __init__(self, layer_collection, params):
    """Creates the block (no data yet).

    Args:
      layer_collection: The `LayerCollection`.
      params: The parameters (a variable or tuple/list of them).
    """
    self._params = params
    self._batch_sizes = []
    super(NaiveDiagonalFB, self).__init__(layer_collection)

  def _factor_class(self):
    return fisher_factors.NaiveDiagonalFactor

  def _vector_to_diagonal_layout(self, vector):
    return utils.tensors_to_column(vector)

  def _diagonal_layout_to_vector(self, vector, out):
    return utils.column_to_tensors(vector, out)

  def full_fisher_block(self):
    """`diag(cov)`."""
    return tf.linalg.diag(tf.reshape(self._factor._cov, [-1]))


class InputOutputMultiTower(object):
  """Mix-in of the blocks fed with (inputs, outputs) per tower (1.8+)."""

  def __init__(self, *args, **kwargs):
    self.__inputs = []
    self.__outputs = []
    super(InputOutputMultiTower, self).__init__(*args, **kwargs)

  def _process_data(self, grads_list):
    """`(inputs, grads_list)` as the tower strategy hands them to factors.

    Args:
      grads_list: A list over sources of lists over towers.

    Returns:
      The processed `(inputs, grads_list)`.
    """
    return _towers.process_towers(
      self.__inputs, grads_list, fisher_factors.TOWER_STRATEGY
    )

  def tensors_to_compute_grads(self):
    """The registered outputs, one per tower (a tuple)."""
    return tuple(self.__outputs)

  def register_additional_tower(self, inputs, outputs):
    """Adds one tower's data.

    Args:
      inputs: The tower's layer inputs.
      outputs: The tower's layer (pre-activation) outputs.
    """
    self.__inputs.append(inputs)
    self.__outputs.append(outputs)

  @property
  def num_registered_towers(self):
    """The number of towers registered."""
    assert len(self.__inputs) == len(self.__outputs)
    return len(self.__inputs)

  @property
  def _inputs(self):
    return self.__inputs

  @property
  def _outputs(self):
    return self.__outputs


class FullyConnectedDiagonalFB(InputOutputMultiTower, DiagonalFB):
  """Diagonal Fisher of a fully connected layer (1.8+).

  `(cov + d)^exp ⊙ mat2d(v)` with the per-tower statistic of
  `FullyConnectedDiagonalFactor`.
  """

  def __init__(self, layer_collection, has_bias=False):
    """Creates the block (no data yet).

    Args:
      layer_collection: The `LayerCollection`.
      has_bias: Whether the parameters include a bias.
    """
    self._has_bias = has_bias
    super(FullyConnectedDiagonalFB, self).__init__(layer_collection)

  def instantiate_factors(self, grads_list, damping):
    """Creates or finds the factor.

    Args:
      grads_list: A list over sources of lists over towers of output
        gradients.
      damping: The damping.
    """
    inputs, grads_list = self._process_data(grads_list)
    self._factor = self._layer_collection.make_or_get_factor(
      fisher_factors.FullyConnectedDiagonalFactor,
      (inputs, grads_list, self._has_bias),
    )
    self._damping_func = _package_func(lambda: damping, (damping,))

  def _vector_to_diagonal_layout(self, vector):
    return utils.layer_params_to_mat2d(vector)

  def _diagonal_layout_to_vector(self, vector, out):
    return utils.mat2d_to_layer_params(vector, out)


class ConvDiagonalFB(InputOutputMultiTower, DiagonalFB):
  """Diagonal Fisher of a 2-D convolution (1.8+).

  Damping function `|T|·normalize_damping(d, |T|)` (= `d` with the default
  power; quirk of 1.6+).
  """

  def __init__(
    self,
    layer_collection,
    params,
    strides,
    padding,
    data_format=None,
    dilations=None,
  ):
    """Creates the block (no data yet).

    Args:
      layer_collection: The `LayerCollection`.
      params: The filter, or `(filter, bias)`.
      strides: 4 ints.
      padding: "SAME" or "VALID".
      data_format: None or a channel-last format.
      dilations: None or 4 ints.

    Raises:
      ValueError: For strides or dilations not of length 4, a channel-first
        format, or a filter that is not 4-D.
    """
    self._strides = maybe_tuple(strides)
    self._padding = padding
    self._data_format = data_format
    self._dilations = maybe_tuple(dilations)
    self._has_bias = isinstance(params, (tuple, list))
    fltr = params[0] if self._has_bias else params
    self._filter_shape = tuple(_checks.static_shape_list(fltr))
    if len(self._strides) != 4:
      raise ValueError(
        "strides must contain 4 numbers (got {}).".format(strides)
      )
    if self._dilations is not None and len(self._dilations) != 4:
      raise ValueError(
        "dilations must contain 4 numbers (got {}).".format(dilations)
      )
    if not _is_channel_last(data_format):
      raise ValueError("data_format must be channel-last.")
    if len(self._filter_shape) != 4:
      raise ValueError(
        "Filter must be of shape [height, width, in_channels, out_channels]."
      )
    super(ConvDiagonalFB, self).__init__(layer_collection)

  def instantiate_factors(self, grads_list, damping):
    """Creates or finds the factor.

    Args:
      grads_list: A list over sources of lists over towers of output
        gradients.
      damping: The damping.
    """
    inputs, grads_list = self._process_data(grads_list)
    self._num_locations = num_conv_locations(inputs[0].shape, self._strides)
    self._factor = self._layer_collection.make_or_get_factor(
      fisher_factors.ConvDiagonalFactor,
      (
        inputs,
        grads_list,
        self._filter_shape,
        self._strides,
        self._padding,
        self._data_format,
        self._dilations,
        self._has_bias,
      ),
    )
    num_locations = self._num_locations

    def damping_func():
      return num_locations * normalize_damping(damping, num_locations)

    self._damping_func = _package_func(
      damping_func,
      (num_locations, "mult", "normalize_damping", damping, num_locations),
    )

  def _vector_to_diagonal_layout(self, vector):
    return utils.layer_params_to_mat2d(vector)

  def _diagonal_layout_to_vector(self, vector, out):
    return utils.mat2d_to_layer_params(vector, out)


def _is_channel_last(data_format):
  return fisher_factors._is_channel_last(data_format)


class KroneckerProductFB(FisherBlock):
  """Blocks `c · (A ⊗ G)` with damped factors (1.8+).

  Subclasses set `_input_factor`, `_output_factor` and call
  `_setup_damping`.
  """

  def _setup_damping(self, damping, normalization=None):
    """Builds the π-split damping functions of the two factors.

    Args:
      damping: The damping `d`.
      normalization: Optional replication count `n` (`d' =
        normalize_damping(d, n)`).
    """

    def compute_damping():
      if normalization is not None:
        maybe_normalized = normalize_damping(damping, normalization)
      else:
        maybe_normalized = damping
      return compute_pi_adjusted_damping(
        self._cov_for_pi(self._input_factor),
        self._cov_for_pi(self._output_factor),
        maybe_normalized**0.5,
      )

    if normalization is not None:
      damping_id = (
        "compute_pi_adjusted_damping",
        "cov",
        self._input_factor.name,
        "cov",
        self._output_factor.name,
        "normalize_damping",
        damping,
        normalization,
        "power",
        0.5,
      )
    else:
      damping_id = (
        "compute_pi_adjusted_damping",
        "cov",
        self._input_factor.name,
        "cov",
        self._output_factor.name,
        damping,
        "power",
        0.5,
      )
    self._input_damping_func = _package_func(
      lambda: compute_damping()[0], damping_id + ("ref", 0)
    )
    self._output_damping_func = _package_func(
      lambda: compute_damping()[1], damping_id + ("ref", 1)
    )

  def _cov_for_pi(self, factor):
    if _releases.of(self).linear_operator_factors:
      return factor.get_cov_as_linear_operator()
    return factor.get_cov()

  def register_matpower(self, exp):
    """Registers the power on both factors.

    Args:
      exp: The exponent.
    """
    self._input_factor.register_matpower(exp, self._input_damping_func)
    self._output_factor.register_matpower(exp, self._output_damping_func)

  def register_cholesky(self):
    """Registers the Cholesky factors of both damped factors (1.9)."""
    self._input_factor.register_cholesky(self._input_damping_func)
    self._output_factor.register_cholesky(self._output_damping_func)

  def register_cholesky_inverse(self):
    """Registers the inverse Cholesky factors of both (1.9)."""
    self._input_factor.register_cholesky_inverse(self._input_damping_func)
    self._output_factor.register_cholesky_inverse(self._output_damping_func)

  @property
  def _renorm_coeff(self):
    return 1.0

  def _scale(self, out, power):
    coeff = self._renorm_coeff
    if isinstance(coeff, (int, float)) and coeff == 1.0:
      return out
    return out * tf.cast(coeff, out.dtype) ** power

  def multiply_matpower(self, vector, exp):
    """`c^exp · A_d^exp · mat2d(v) · G_d^exp`.

    Args:
      vector: Shaped like the parameters.
      exp: The exponent.

    Returns:
      The product.
    """
    reshaped = utils.layer_params_to_mat2d(vector)
    out = _right_multiply(
      self._output_factor, reshaped, exp, self._output_damping_func
    )
    out = _left_multiply(self._input_factor, out, exp, self._input_damping_func)
    return utils.mat2d_to_layer_params(vector, self._scale(out, exp))

  def _cholesky_product(self, vector, inverse, transpose):
    reshaped = utils.layer_params_to_mat2d(vector)
    get = "get_cholesky_inverse" if inverse else "get_cholesky"
    left = getattr(self._input_factor, get)(self._input_damping_func)
    right = getattr(self._output_factor, get)(self._output_damping_func)
    # L_A V L_Gᵀ (transpose: L_Aᵀ V L_G), and the inverses alike.
    out = right.matmul_right(reshaped, adjoint=not transpose)
    out = left.matmul(out, adjoint=transpose)
    return utils.mat2d_to_layer_params(
      vector, self._scale(out, -0.5 if inverse else 0.5)
    )

  def multiply_cholesky(self, vector, transpose=False):
    """`√c · L_A V L_Gᵀ` (`√c · L_Aᵀ V L_G` when `transpose`) (1.9).

    Args:
      vector: Shaped like the parameters.
      transpose: Whether to multiply by the transposed factor.

    Returns:
      The product.
    """
    return self._cholesky_product(vector, False, transpose)

  def multiply_cholesky_inverse(self, vector, transpose=False):
    """`c^-½ · L_A⁻¹ V L_G⁻ᵀ` (transposed: `c^-½ · L_A⁻ᵀ V L_G⁻¹`) (1.9).

    Args:
      vector: Shaped like the parameters.
      transpose: Whether to multiply by the transposed factor.

    Returns:
      The product.
    """
    return self._cholesky_product(vector, True, transpose)

  def full_fisher_block(self):
    """`c · kron(A, G)` (undamped)."""
    left = _dense(self._input_factor.get_cov())
    right = _dense(self._output_factor.get_cov())
    return self._renorm_coeff * utils.kronecker_product(left, right)


def _dense(cov):
  if _checks.static_rank(cov) == 1:
    return tf.linalg.diag(cov)
  return cov


class FullyConnectedKFACBasicFB(InputOutputMultiTower, KroneckerProductFB):
  """K-FAC block of a fully connected layer (1.8+)."""

  def __init__(self, layer_collection, has_bias=False):
    """Creates the block (no data yet).

    Args:
      layer_collection: The `LayerCollection`.
      has_bias: Whether the parameters include a bias.
    """
    self._has_bias = has_bias
    super(FullyConnectedKFACBasicFB, self).__init__(layer_collection)

  def instantiate_factors(self, grads_list, damping):
    """Creates or finds the input and output factors.

    Args:
      grads_list: A list over sources of lists over towers of output
        gradients.
      damping: The damping.
    """
    inputs, grads_list = self._process_data(grads_list)
    self._input_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.FullyConnectedKroneckerFactor, ((inputs,), self._has_bias)
    )
    self._output_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.FullyConnectedKroneckerFactor, (grads_list,)
    )
    self._setup_damping(damping)


class ConvKFCBasicFB(InputOutputMultiTower, KroneckerProductFB):
  """K-FAC block of a convolution (any spatial rank; 1.8+).

  `c = |T|` (input locations) and damping normalised by `|T|`.
  """

  def __init__(
    self,
    layer_collection,
    params,
    padding,
    strides=None,
    dilation_rate=None,
    data_format=None,
    extract_patches_fn=None,
  ):
    """Creates the block (no data yet).

    Args:
      layer_collection: The `LayerCollection`.
      params: The filter, or `(filter, bias)`.
      padding: "SAME" or "VALID".
      strides: Strides (spatial-only, or 4 entries with
        `extract_patches_fn="extract_image_patches"`), or None.
      dilation_rate: Dilations, like `strides`.
      data_format: None or a channel-last format.
      extract_patches_fn: None, "extract_convolution_patches",
        "extract_image_patches" or "extract_pointwise_conv2d_patches".

    Raises:
      ValueError: For a channel-first `data_format`.
    """
    _check_channel_last(data_format)
    self._padding = padding
    self._strides = maybe_tuple(strides)
    self._dilation_rate = maybe_tuple(dilation_rate)
    self._data_format = data_format
    self._extract_patches_fn = extract_patches_fn
    self._has_bias = isinstance(params, (tuple, list))
    fltr = params[0] if self._has_bias else params
    self._filter_shape = tuple(_checks.static_shape_list(fltr))
    super(ConvKFCBasicFB, self).__init__(layer_collection)

  def instantiate_factors(self, grads_list, damping):
    """Creates or finds the input and output factors.

    Args:
      grads_list: A list over sources of lists over towers of output
        gradients.
      damping: The damping.
    """
    inputs, grads_list = self._process_data(grads_list)
    self._num_locations = num_conv_locations(inputs[0].shape, self._strides)
    self._input_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.ConvInputKroneckerFactor,
      (
        inputs,
        self._filter_shape,
        self._padding,
        self._strides,
        self._dilation_rate,
        self._data_format,
        self._extract_patches_fn,
        self._has_bias,
      ),
    )
    self._output_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.ConvOutputKroneckerFactor, (grads_list,)
    )
    self._setup_damping(damping, normalization=self._num_locations)

  @property
  def _renorm_coeff(self):
    return self._num_locations


class EmbeddingKFACFB(InputOutputMultiTower, KroneckerProductFB):
  """K-FAC block of an embedding layer: `diag(a) ⊗ G` (1.8+).

  Gradients are `IndexedSlices` (kept sparse) or dense `[vocab, dim]`.
  """

  def __init__(self, layer_collection, vocab_size):
    """Creates the block (no data yet).

    Args:
      layer_collection: The `LayerCollection`.
      vocab_size: The number of rows of the embedding matrix.
    """
    self._vocab_size = vocab_size
    super(EmbeddingKFACFB, self).__init__(layer_collection)

  def instantiate_factors(self, grads_list, damping):
    """Creates or finds the input and output factors.

    Args:
      grads_list: A list over sources of lists over towers of gradients of
        the lookup outputs.
      damping: The damping.
    """
    inputs, grads_list = self._process_data(grads_list)
    self._input_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.EmbeddingInputKroneckerFactor, (inputs, self._vocab_size)
    )
    self._output_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.FullyConnectedKroneckerFactor, (grads_list,)
    )
    self._setup_damping(damping)

  def multiply_matpower(self, vector, exp):
    """`A_d^exp · V · G_d^exp` (`A` diagonal; `V` sparse or dense).

    Args:
      vector: An `IndexedSlices` or a dense `[vocab_size, dim]` Tensor.
      exp: The exponent.

    Returns:
      The product, of the kind of `vector`.
    """
    reshaped = utils.layer_params_to_mat2d(vector)
    out = _right_multiply(
      self._output_factor, reshaped, exp, self._output_damping_func
    )
    if isinstance(out, tf.IndexedSlices):
      out = _left_multiply(
        self._input_factor, out, exp, self._input_damping_func
      )
    else:
      diagonal = (
        tf.reshape(self._input_factor._cov, [-1])
        + tf.cast(self._input_damping_func(), out.dtype)
      ) ** exp
      out = diagonal[:, tf.newaxis] * out
    return utils.mat2d_to_layer_params(vector, out)


class InputOutputMultiTowerMultiUse(InputOutputMultiTower):
  """Tower mix-in of the shared-weight (multi-use) blocks (1.8+).

  Per tower the data are a list over uses, or one tensor with the uses
  folded into the batch (use-major; `num_uses` required).
  """

  def __init__(self, num_uses=None, *args, **kwargs):
    self._num_uses = num_uses
    super(InputOutputMultiTowerMultiUse, self).__init__(*args, **kwargs)

  def _process_data(self, grads_list):
    """Stacks the uses use-major; returns the tower data of the strategy.

    Args:
      grads_list: A list over sources of lists over towers (each a list over
        uses or a folded tensor).

    Returns:
      `(inputs, grads_list)`.

    Raises:
      ValueError: For inconsistent or missing `num_uses`, or an unknown
        tower strategy.
    """
    inputs = self._inputs
    strategy = fisher_factors.TOWER_STRATEGY
    if isinstance(inputs[0], (list, tuple)):
      num_uses = len(inputs[0])
      if self._num_uses is not None and self._num_uses != num_uses:
        raise ValueError("num_uses must match the number of uses given.")
      if any(len(tower) != num_uses for tower in inputs):
        raise ValueError("All towers must have the same number of uses.")
      for grads in grads_list:
        if any(len(tower) != num_uses for tower in grads):
          raise ValueError(
            "Gradients must have the same number of uses as the inputs."
          )
      self._num_uses = num_uses

      def stack(towers):
        if strategy == "concat":
          return (
            _towers.PartitionedTensor(
              [tower[u] for u in range(num_uses) for tower in towers]
            ),
          )
        if strategy == "separate":
          return tuple(_towers.PartitionedTensor(list(t)) for t in towers)
        raise ValueError(
          "Unrecognized value {!r} for TOWER_STRATEGY.".format(strategy)
        )

      return stack(inputs), tuple(stack(g) for g in grads_list)
    if self._num_uses is None:
      raise ValueError(
        "You must supply a value for the num_uses argument if the number of "
        "uses cannot be inferred from inputs or outputs arguments (e.g. if "
        "they are both given in the single Tensor format, instead of as "
        "lists of Tensors."
      )
    if strategy not in ("concat", "separate"):
      raise ValueError(
        "Unrecognized value {!r} for TOWER_STRATEGY.".format(strategy)
      )
    return _towers.process_towers(inputs, grads_list, strategy)


class FullyConnectedMultiIndepFB(
  InputOutputMultiTowerMultiUse, KroneckerProductFB
):
  """Fully connected layer used `T` times: `T · (Ā ⊗ Ḡ)` (1.8+)."""

  def __init__(self, layer_collection, has_bias=False, num_uses=None):
    """Creates the block (no data yet).

    Args:
      layer_collection: The `LayerCollection`.
      has_bias: Whether the parameters include a bias.
      num_uses: The number of uses (needed for folded tensors).
    """
    self._has_bias = has_bias
    super(FullyConnectedMultiIndepFB, self).__init__(
      layer_collection=layer_collection, num_uses=num_uses
    )

  def instantiate_factors(self, grads_list, damping):
    """Creates or finds the factors.

    Args:
      grads_list: A list over sources of lists over towers.
      damping: The damping.
    """
    inputs, grads_list = self._process_data(grads_list)
    self._input_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.FullyConnectedMultiKF,
      ((inputs,), self._num_uses, self._has_bias),
    )
    self._output_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.FullyConnectedMultiKF, (grads_list, self._num_uses)
    )
    self._setup_damping(damping, normalization=self._num_uses)

  @property
  def _renorm_coeff(self):
    return float(self._num_uses)


class SeriesFBApproximation(enum.IntEnum):
  """Options of the series approximation."""

  option1 = 1
  option2 = 2


class FullyConnectedSeriesFB(InputOutputMultiTowerMultiUse, KroneckerProductFB):
  """Shared-weight FC block with lag-1 correlated uses (1.8+).

  Both factors are `FullyConnectedMultiKF` keeping `cov_dt1`; damping
  normalised by `T` and π-split. Only the inverse exists: option 1 or 2 of
  releases.md §3.7, computed by the engine's series formulas
  (`kfac._multi_use`).
  """

  def __init__(
    self,
    layer_collection,
    has_bias=False,
    num_uses=None,
    option=SeriesFBApproximation.option2,
  ):
    """Creates the block (no data yet).

    Args:
      layer_collection: The `LayerCollection`.
      has_bias: Whether the parameters include a bias.
      num_uses: The number of uses (needed for folded tensors).
      option: A `SeriesFBApproximation`.
    """
    self._has_bias = has_bias
    self._option = option
    super(FullyConnectedSeriesFB, self).__init__(
      layer_collection=layer_collection, num_uses=num_uses
    )

  def instantiate_factors(self, grads_list, damping):
    """Creates or finds the factors and asks them for `cov_dt1`.

    Args:
      grads_list: A list over sources of lists over towers.
      damping: The damping.
    """
    inputs, grads_list = self._process_data(grads_list)
    self._input_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.FullyConnectedMultiKF,
      ((inputs,), self._num_uses, self._has_bias),
    )
    self._output_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.FullyConnectedMultiKF, (grads_list, self._num_uses)
    )
    self._input_factor.register_cov_dt1()
    self._output_factor.register_cov_dt1()
    self._setup_damping(damping, normalization=self._num_uses)
    # The names the engine's series formulas read.
    self._input_damping = self._input_damping_func
    self._output_damping = self._output_damping_func

  def register_matpower(self, exp):
    """Registers the option quantities (only the inverse exists).

    Args:
      exp: Must be -1.

    Raises:
      NotImplementedError: For another exponent.
      ValueError: For an unknown option.
    """
    if exp != -1:
      raise NotImplementedError(
        "FullyConnectedSeriesFB only supports inverse multiplications."
      )
    _multi_use.register_series_quants(
      self,
      self._input_damping_func,
      self._output_damping_func,
      "Unrecognized FullyConnectedSeriesFB approximation: {}",
    )

  def multiply_matpower(self, vector, exp):
    """The series approximation's inverse (only `exp == -1`).

    Args:
      vector: Shaped like the parameters.
      exp: Must be -1.

    Returns:
      The product.

    Raises:
      NotImplementedError: For another exponent.
    """
    if exp != -1:
      raise NotImplementedError(
        "FullyConnectedSeriesFB only supports inverse multiplications."
      )
    return self._series_multiply_inverse(vector)

  # The engine's series inverse (re-hosted; reads the factors' option
  # quantities through `get_option1quants(self._input_damping)` ...).
  _series_multiply_inverse = _multi_use.FullyConnectedSeriesFB.multiply_inverse

  def multiply_cholesky(self, vector):
    """Not available (1.9; no `transpose` parameter, as released).

    Args:
      vector: Ignored.

    Raises:
      NotImplementedError: Always.
    """
    raise NotImplementedError(
      "FullyConnectedSeriesFB does not support Cholesky"
    )

  def multiply_cholesky_inverse(self, vector):
    """Not available (1.9; no `transpose` parameter, as released).

    Args:
      vector: Ignored.

    Raises:
      NotImplementedError: Always.
    """
    raise NotImplementedError(
      "FullyConnectedSeriesFB does not support Cholesky"
    )

  def register_cholesky(self):
    """Not available (1.9).

    Raises:
      NotImplementedError: Always.
    """
    raise NotImplementedError(
      "FullyConnectedSeriesFB does not support Cholesky"
    )

  def register_cholesky_inverse(self):
    """Not available (1.9).

    Raises:
      NotImplementedError: Always.
    """
    raise NotImplementedError(
      "FullyConnectedSeriesFB does not support Cholesky"
    )


def _is_finite_number(value):
  return isinstance(value, (int, float)) and math.isfinite(value)


# ---------------------------------------------------------------------------
# New layer types of 1.8-1.10 (helper layers18): depthwise convolutions and
# the multi-use convolution and embedding blocks.


def depthwise_conv2d_filter_to_conv2d_filter(filter, name=None):  # pylint: disable=redefined-builtin
  """The dense `conv2d` filter equivalent to a depthwise filter.

  `tf.nn.depthwise_conv2d` with a `[kh, kw, C, m]` filter `D` equals
  `tf.nn.conv2d` with the `[kh, kw, C, C·m]` filter

    `F[h, w, i, j·m + k] = δ_ij · D[h, w, i, k]`

  (output channel `j·m + k` is driven by input channel `j` alone).
  Index conventions: h, w filter offsets; i, j input channels; k channel
  multiplier.

  Args:
    filter: Tensor `[kh, kw, C, m]` with a static shape.
    name: Optional name scope (default
      "depthwise_conv2d_filter_to_conv2d_filter").

  Returns:
    Tensor `[kh, kw, C, C·m]`.
  """
  with tf.compat.v1.name_scope(
    name, "depthwise_conv2d_filter_to_conv2d_filter", [filter]
  ):
    filter = tf.convert_to_tensor(filter)
    kh, kw, in_channels, multiplier = _checks.static_shape_list(filter)
    eye = tf.eye(in_channels, dtype=filter.dtype)
    dense = tf.einsum("hwik,ij->hwijk", filter, eye)
    return tf.reshape(dense, [kh, kw, in_channels, in_channels * multiplier])


def conv2d_filter_to_depthwise_conv2d_filter(filter, name=None):  # pylint: disable=redefined-builtin
  """The depthwise part of a `[kh, kw, C, C·m]` `conv2d` filter.

  The inverse of `depthwise_conv2d_filter_to_conv2d_filter` on its image:
  `D[h, w, i, k] = F[h, w, i, i·m + k]`; the other entries are dropped.
  Index conventions: h, w filter offsets; i, j input channels; k channel
  multiplier.

  Args:
    filter: Tensor `[kh, kw, C, C_out]` with a static shape.
    name: Optional name scope (default
      "conv2d_filter_to_depthwise_conv2d_filter").

  Returns:
    Tensor `[kh, kw, C, C_out / C]`.

  Raises:
    ValueError: If `C_out` is not a multiple of `C`.
  """
  with tf.compat.v1.name_scope(
    name, "conv2d_filter_to_depthwise_conv2d_filter", [filter]
  ):
    filter = tf.convert_to_tensor(filter)
    kh, kw, in_channels, out_channels = _checks.static_shape_list(filter)
    if out_channels % in_channels != 0:
      raise ValueError(
        "out_channels must be a multiple of in_channels (got filter shape "
        "{}).".format(_checks.format_shape(filter))
      )
    multiplier = out_channels // in_channels
    blocks = tf.reshape(filter, [kh, kw, in_channels, in_channels, multiplier])
    eye = tf.eye(in_channels, dtype=filter.dtype)
    return tf.einsum("hwijk,ij->hwik", blocks, eye)


def _depthwise_arguments(params, strides, rate, data_format):
  """Checks a depthwise block's arguments; returns the 4-entry rates.

  Raises:
    NotImplementedError: For `(filter, bias)` parameters.
    ValueError: For a filter that is not 4-D, strides not of length 4, a
      rate not of length 2, or a channel-first format.
  """
  if isinstance(params, (tuple, list)):
    raise NotImplementedError("Bias not yet supported.")
  if _checks.static_rank(params) != 4:
    raise ValueError(
      "Filter must be 4-D [height, width, in_channels, channel_multiplier] "
      "(got shape {}).".format(_checks.format_shape(params))
    )
  if len(strides) != 4:
    raise ValueError(
      "strides must account for 4 dimensions (got {}).".format(strides)
    )
  if rate is not None:
    if len(rate) != 2:
      raise ValueError(
        "rate must only account for spatial dimensions (got {}).".format(rate)
      )
    rate = [1, rate[0], rate[1], 1]
  if not _is_channel_last(data_format):
    raise ValueError(
      "data_format must be channels-last (got {!r}).".format(data_format)
    )
  return rate


def _dense_filter_shape(params):
  """`(kh, kw, C, C·m)` for a depthwise filter `[kh, kw, C, m]`."""
  kh, kw, in_channels, multiplier = _checks.static_shape_list(params)
  return (kh, kw, in_channels, in_channels * multiplier)


class DepthwiseConvDiagonalFB(ConvDiagonalFB):
  """Diagonal Fisher of a `depthwise_conv2d` layer (1.8+, internal).

  The `ConvDiagonalFB` of the equivalent dense filter `[kh, kw, C, C·m]`
  (see `depthwise_conv2d_filter_to_conv2d_filter`); products go through the
  dense layout and keep the depthwise entries.
  """

  def __init__(
    self,
    layer_collection,
    params,
    strides,
    padding,
    rate=None,
    data_format=None,
  ):
    """Creates the block (no data yet).

    Args:
      layer_collection: The `LayerCollection`.
      params: The depthwise filter `[kh, kw, C, m]` (no bias).
      strides: 4 ints.
      padding: "SAME" or "VALID".
      rate: None or 2 ints, the spatial dilation rates.
      data_format: None or a channel-last format.

    Raises:
      NotImplementedError: For `(filter, bias)` parameters.
      ValueError: For a filter that is not 4-D, strides not of length 4, a
        rate not of length 2, or a channel-first format.
    """
    rate = _depthwise_arguments(params, strides, rate, data_format)
    super(DepthwiseConvDiagonalFB, self).__init__(
      layer_collection=layer_collection,
      params=params,
      strides=strides,
      padding=padding,
      dilations=rate,
      data_format=data_format,
    )
    self._filter_shape = _dense_filter_shape(params)

  def _vector_to_diagonal_layout(self, vector):
    # The dense filter's mat2d layout: the products act on `P v`.
    dense = depthwise_conv2d_filter_to_conv2d_filter(vector)
    return utils.layer_params_to_mat2d(dense)

  def _diagonal_layout_to_vector(self, vector, out):
    dense = tf.reshape(out, list(self._filter_shape))
    return conv2d_filter_to_depthwise_conv2d_filter(dense)


class DepthwiseConvKFCBasicFB(ConvKFCBasicFB):
  """K-FAC block of a `depthwise_conv2d` layer (1.8+, internal).

  The `ConvKFCBasicFB` (image patches) of the equivalent dense filter
  `[kh, kw, C, C·m]`; products go through the dense layout and keep the
  depthwise entries.
  """

  def __init__(
    self,
    layer_collection,
    params,
    strides,
    padding,
    rate=None,
    data_format=None,
  ):
    """Creates the block (no data yet).

    Args:
      layer_collection: The `LayerCollection`.
      params: The depthwise filter `[kh, kw, C, m]` (no bias).
      strides: 4 ints.
      padding: "SAME" or "VALID".
      rate: None or 2 ints, the spatial dilation rates.
      data_format: None or a channel-last format.

    Raises:
      NotImplementedError: For `(filter, bias)` parameters.
      ValueError: For a filter that is not 4-D, strides not of length 4, a
        rate not of length 2, or a channel-first format.
    """
    rate = _depthwise_arguments(params, strides, rate, data_format)
    super(DepthwiseConvKFCBasicFB, self).__init__(
      layer_collection=layer_collection,
      params=params,
      padding=padding,
      strides=strides,
      dilation_rate=rate,
      data_format=data_format,
      extract_patches_fn="extract_image_patches",
    )
    self._filter_shape = _dense_filter_shape(params)

  def multiply_matpower(self, vector, exp):
    """`Pᵀ M^exp P v`, `M` the dense convolution block, `P` the embedding.

    Args:
      vector: A depthwise filter `[kh, kw, C, m]`.
      exp: The exponent.

    Returns:
      The product, shaped like `vector`.
    """
    dense = depthwise_conv2d_filter_to_conv2d_filter(vector)
    out = super(DepthwiseConvKFCBasicFB, self).multiply_matpower(dense, exp)
    return conv2d_filter_to_depthwise_conv2d_filter(out)

  def _cholesky_product(self, vector, inverse, transpose):
    # 1.9's Cholesky products, through the dense layout like the powers.
    dense = depthwise_conv2d_filter_to_conv2d_filter(vector)
    out = super(DepthwiseConvKFCBasicFB, self)._cholesky_product(
      dense, inverse, transpose
    )
    return conv2d_filter_to_depthwise_conv2d_filter(out)


class ConvKFCBasicMultiIndepFB(
  InputOutputMultiTowerMultiUse, KroneckerProductFB
):
  """Convolution used `T` times: `|T_loc|·T · (Ā ⊗ Ḡ)` (1.8+, internal).

  The factors are those of `ConvKFCBasicFB` over the use-major stacked data
  (patch and gradient statistics averaged over uses, examples and
  locations); damping normalised by, and `c` equal to, `|T_loc|·T`
  (`|T_loc|` from `num_conv_locations`).
  """

  def __init__(
    self,
    layer_collection,
    params,
    padding,
    strides=None,
    dilation_rate=None,
    data_format=None,
    extract_patches_fn=None,
    num_uses=None,
  ):
    """Creates the block (no data yet).

    Args:
      layer_collection: The `LayerCollection`.
      params: The filter, or `(filter, bias)`.
      padding: "SAME" or "VALID".
      strides: As for `ConvKFCBasicFB`.
      dilation_rate: As for `ConvKFCBasicFB`.
      data_format: None or a channel-last format.
      extract_patches_fn: As for `ConvKFCBasicFB`.
      num_uses: The number of uses (needed for folded tensors).

    Raises:
      ValueError: For a channel-first format.
    """
    _check_channel_last(data_format)
    self._padding = padding
    self._strides = maybe_tuple(strides)
    self._dilation_rate = maybe_tuple(dilation_rate)
    self._data_format = data_format
    self._extract_patches_fn = extract_patches_fn
    self._has_bias = isinstance(params, (tuple, list))
    fltr = params[0] if self._has_bias else params
    self._filter_shape = tuple(_checks.static_shape_list(fltr))
    super(ConvKFCBasicMultiIndepFB, self).__init__(
      layer_collection=layer_collection, num_uses=num_uses
    )

  def instantiate_factors(self, grads_list, damping):
    """Creates or finds the input and output factors.

    Args:
      grads_list: A list over sources of lists over towers (each a list over
        uses or a folded tensor).
      damping: The damping.
    """
    inputs, grads_list = self._process_data(grads_list)
    self._num_locations = num_conv_locations(inputs[0].shape, self._strides)
    self._input_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.ConvInputKroneckerFactor,
      (
        inputs,
        self._filter_shape,
        self._padding,
        self._strides,
        self._dilation_rate,
        self._data_format,
        self._extract_patches_fn,
        self._has_bias,
      ),
    )
    self._output_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.ConvOutputKroneckerFactor, (grads_list,)
    )
    self._setup_damping(
      damping, normalization=self._num_locations * self._num_uses
    )

  @property
  def _renorm_coeff(self):
    return self._num_locations * self._num_uses


class EmbeddingKFACMultiIndepFB(
  InputOutputMultiTowerMultiUse, KroneckerProductFB
):
  """Embedding used `T` times: `T · (diag(ā) ⊗ Ḡ)` (1.8+, internal).

  `ā` counts the ids of all uses (`EmbeddingInputKroneckerFactor` over the
  use-major stacked ids), `Ḡ` is the `FullyConnectedMultiKF` statistic of
  the lookup gradients; damping normalised by, and `c` equal to, `T`.
  Products keep the kind of the vector (`IndexedSlices` or dense
  `[vocab_size, dim]`), as `EmbeddingKFACFB`'s.
  """

  def __init__(self, layer_collection, vocab_size, num_uses=None):
    """Creates the block (no data yet).

    Args:
      layer_collection: The `LayerCollection`.
      vocab_size: The number of rows of the embedding matrix.
      num_uses: The number of uses (needed for folded tensors).
    """
    self._vocab_size = vocab_size
    super(EmbeddingKFACMultiIndepFB, self).__init__(
      layer_collection=layer_collection, num_uses=num_uses
    )

  def instantiate_factors(self, grads_list, damping):
    """Creates or finds the input and output factors.

    Args:
      grads_list: A list over sources of lists over towers (each a list over
        uses or a folded tensor).
      damping: The damping.
    """
    inputs, grads_list = self._process_data(grads_list)
    self._input_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.EmbeddingInputKroneckerFactor, (inputs, self._vocab_size)
    )
    self._output_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.FullyConnectedMultiKF, (grads_list, self._num_uses)
    )
    self._setup_damping(damping, normalization=self._num_uses)

  @property
  def _renorm_coeff(self):
    return float(self._num_uses)

  def multiply_matpower(self, vector, exp):
    """`T^exp · A_d^exp · V · G_d^exp` (`A` diagonal; `V` sparse or dense).

    Args:
      vector: An `IndexedSlices` or a dense `[vocab_size, dim]` Tensor.
      exp: The exponent.

    Returns:
      The product, of the kind of `vector`.
    """
    out = EmbeddingKFACFB.multiply_matpower(self, vector, exp)
    scale = float(self._num_uses) ** exp
    if isinstance(out, tf.IndexedSlices):
      return tf.IndexedSlices(
        out.values * tf.cast(scale, out.values.dtype),
        out.indices,
        out.dense_shape,
      )
    return out * tf.cast(scale, out.dtype)


def _check_channel_last(data_format):
  """`ValueError` unless `data_format` is None or channel-last."""
  if not _is_channel_last(data_format):
    raise ValueError(
      "data_format must be channel-last (None, 'NWC', 'NHWC' or 'NDHWC'); "
      "got {!r}.".format(data_format)
    )
