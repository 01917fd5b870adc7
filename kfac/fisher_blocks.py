"""Fisher blocks: approximations of one layer's block of the Fisher matrix.

A Fisher block stands for the block of the Fisher information matrix that
belongs to one group of parameters (one layer's weights and bias, or any set
of variables). It decides which `fisher_factors` model that block, asks the
`LayerCollection` for them (so that blocks with the same statistics share one
factor), and multiplies vectors by the damped block and by its inverse.

Vectors are laid out like the parameters they belong to: a single Tensor
shaped like the parameter, or a `(weights, bias)` tuple when the parameters
were registered as such a tuple. Layer blocks work internally on the 2-D
layout of `kfac.utils.layer_params_to_mat2d`: weights reshaped to
`[in_size, out_size]` with the bias appended as the last row.
"""

import abc
import inspect
import numbers

import numpy as np
import tensorflow as tf

from kfac import _checks
from kfac import _ops
from kfac import _releases
from kfac import _surface
from kfac import fisher_factors
from kfac import utils

# The 1.4 public names, from the one surface table.
__all__ = list(sorted(_surface.public_names("1.4", "fisher_blocks")))

# For blocks whose parameters are shared across `r` spatial locations (the
# convolution blocks), the damping is divided by `r ** NORMALIZE_DAMPING_POWER`
# when the block's factors are instantiated. A value of 0 turns this off.
NORMALIZE_DAMPING_POWER = 1.0


def set_global_constants(normalize_damping_power=None):
  """Overwrites the module's global constants.

  The constant is read when a block's `instantiate_factors` is called, so the
  change affects blocks instantiated afterwards.

  Args:
    normalize_damping_power: If not None, the new value of
      `NORMALIZE_DAMPING_POWER` (a float; 0 disables the normalisation of the
      damping by the number of spatial locations).
  """
  global NORMALIZE_DAMPING_POWER
  if normalize_damping_power is not None:
    NORMALIZE_DAMPING_POWER = normalize_damping_power


def _as_hashable(structure):
  """Returns `structure` with every list turned into a tuple (recursively).

  Factor arguments are used as dictionary keys by
  `LayerCollection.make_or_get_factor`; tuples hash where lists do not.

  Args:
    structure: A Tensor, or a possibly nested tuple/list of Tensors.

  Returns:
    The same structure with tuples in place of lists.
  """
  if isinstance(structure, (tuple, list)):
    return tuple(_as_hashable(element) for element in structure)
  return structure


def _concat_along_batch_dim(tensor_list):
  """Concatenates the minibatches of a list along the batch dimension.

  Args:
    tensor_list: A non-empty list whose entries are either all Tensors, or
      all tuples of Tensors of the same length (one tuple per minibatch).

  Returns:
    For Tensors, one Tensor: the entries concatenated along axis 0. For
    tuples, a tuple whose i-th entry concatenates the i-th entries of all the
    tuples along axis 0.

  Raises:
    ValueError: If `tensor_list` is empty.
  """
  return _concat_minibatches(tensor_list, _ops.concat_rows)


def _concat_minibatches(tensor_list, concat):
  """`_concat_along_batch_dim` with `concat` joining a list along axis 0.

  Args:
    tensor_list: As for `_concat_along_batch_dim`.
    concat: Callable mapping a list of Tensors to their concatenation along
      axis 0 (it chooses the op and its name).

  Returns:
    As for `_concat_along_batch_dim`.

  Raises:
    ValueError: If `tensor_list` is empty.
  """
  if not tensor_list:
    raise ValueError(
      "Cannot concatenate Tensors if there are no Tensors to concatenate."
    )
  if isinstance(tensor_list[0], (tuple, list)):
    return tuple(concat(tensors) for tensors in zip(*tensor_list))
  return concat(tensor_list)


def _init_conv_block(block, params, inputs, outputs, strides, padding):
  """Stores what both conv blocks need (their constructors' shared part).

  Sets `block._inputs`, `_outputs`, `_strides` (a tuple), `_padding`,
  `_has_bias` (whether `params` is a tuple/list), `_filter_shape` (the
  filter's static shape as a tuple) and
  `_num_locations = height * width // (strides[1] * strides[2])`, height and
  width being axes 1 and 2 of the inputs' static shape. As in TensorFlow
  1.4, nothing else is read here; the factors check the rest.

  Args:
    block: The `ConvDiagonalFB` or `ConvKFCBasicFB` being built.
    params: The filter Tensor `[kh, kw, in_channels, out_channels]`, or a
      tuple/list whose first entry is the filter (a bias is then assumed).
    inputs: The layer's inputs, `[batch, height, width, in_channels]`, with
      statically known height and width.
    outputs: The layer's pre-activation outputs.
    strides: A tuple or list of 4 ints.
    padding: The convolution padding, "SAME" or "VALID".

  Raises:
    ValueError: If `strides` has no ints at positions 1 and 2, the filter's
      rank is unknown, or the inputs' height and width are not statically
      known.
  """
  block._inputs = inputs
  block._outputs = outputs
  block._strides = strides = _checks.conv_block_strides(strides)
  block._padding = padding
  block._has_bias = isinstance(params, (tuple, list))
  fltr = params[0] if block._has_bias else params
  filter_shape = _checks.static_shape_list(fltr)
  if filter_shape is None:
    raise ValueError(
      "params must have a statically known rank (the filter "
      "[kernel_height, kernel_width, in_channels, "
      "out_channels])."
    )
  block._filter_shape = tuple(filter_shape)
  input_shape = _checks.static_shape_list(inputs)
  if (
    input_shape is None
    or len(input_shape) < 3
    or input_shape[1] is None
    or input_shape[2] is None
  ):
    raise ValueError(
      "inputs must have shape [batch, height, width, in_channels] with "
      "statically known height and width, got {}.".format(
        _checks.format_shape(inputs)
      )
    )
  block._num_locations = (
    input_shape[1] * input_shape[2] // (strides[1] * strides[2])
  )
  # pylint: enable=protected-access


def _normalize_damping(damping, num_locations):
  """Divides the damping by `num_locations ** NORMALIZE_DAMPING_POWER`.

  Args:
    damping: The damping λ, a float or a scalar Tensor.
    num_locations: The number of spatial locations sharing the parameters.

  Returns:
    `λ / num_locations ** NORMALIZE_DAMPING_POWER`, or `λ` unchanged when the
    power is 0.
  """
  if NORMALIZE_DAMPING_POWER:
    damping /= num_locations**NORMALIZE_DAMPING_POWER
  return damping


def _check_batch_size(batch_size):
  """Checks the `batch_size` of the generic blocks; returns it.

  Args:
    batch_size: A positive int, or a scalar Tensor/Variable.

  Returns:
    `batch_size`, a NumPy integer turned into a Python int (it becomes part
    of the factor's variable name).

  Raises:
    ValueError: If `batch_size` is neither.
  """
  if isinstance(batch_size, (tf.Tensor, tf.Variable)):
    if batch_size.shape.rank not in (None, 0):
      raise ValueError(
        "batch_size must be a scalar, got a Tensor of shape {}.".format(
          _checks.format_shape(batch_size)
        )
      )
    return batch_size
  if _checks.is_int(batch_size) and batch_size > 0:
    return int(batch_size)
  raise ValueError(
    "batch_size must be a positive int or a scalar Tensor, got {!r}.".format(
      batch_size
    )
  )


def _damping_for(damping, tensor):
  """The damping in `tensor`'s dtype (a Python number is left as is).

  A float64 Tensor damping thus works with the float32 factor variables.

  Args:
    damping: The damping λ, a number or a scalar Tensor.
    tensor: The Tensor it is added to or multiplied with.

  Returns:
    `damping`, cast to `tensor.dtype` if it is a Tensor.
  """
  if isinstance(damping, (tf.Tensor, tf.Variable)):
    return tf.cast(damping, tensor.dtype)
  return damping


def _cov_variable(factor):
  """The factor's covariance variable, in its storage shape.

  Blocks read the variable itself rather than `get_cov()`: release 1.7's
  diagonal factors return a dense `diag(...)` matrix from `get_cov()`.

  Args:
    factor: A `fisher_factors.FisherFactor`.

  Returns:
    The `cov` variable.
  """
  return factor._cov


def _check_vector(reshaped_vector, expected_shape, layout):
  """Raises a ValueError if a vector does not fit the block.

  Args:
    reshaped_vector: The vector in the block's internal layout.
    expected_shape: The shape it must have there.
    layout: How the vector must be shaped, for the message.

  Raises:
    ValueError: If the static shapes are incompatible (unknown dimensions
      are not checked).
  """
  if not reshaped_vector.shape.is_compatible_with(expected_shape):
    raise ValueError(
      "vector does not fit the block: expected {} ({} in the block's "
      "layout), got {}.".format(
        layout,
        _checks.format_shape(expected_shape),
        _checks.format_shape(reshaped_vector),
      )
    )


def _params_vector_to_column(vector, factor):
  """`utils.tensors_to_column(vector)`, checked against a generic block.

  Args:
    vector: A Tensor or tuple/list of Tensors shaped like the parameters.
    factor: The block's factor; its covariance has one row per parameter.

  Returns:
    The `[n, 1]` column.

  Raises:
    ValueError: If the column does not have the factor's `n` rows.
  """
  vector_flat = utils.tensors_to_column(vector)
  _check_vector(
    vector_flat,
    [_checks.static_dim(_cov_variable(factor), 0), 1],
    "a vector shaped like params",
  )
  return vector_flat


def _multiply_layer_diagonal(vector, diagonal, damping, inverse):
  """Multiplies a layer vector by `diag(D) + λ I` or by its inverse.

  Args:
    vector: A weights-shaped Tensor, or a `(weights, bias)` tuple/list.
    diagonal: The `[rows, out]` diagonal `D` in the 2-D layout.
    damping: The damping λ, a float or a scalar Tensor.
    inverse: Whether to divide (inverse) instead of multiplying.

  Returns:
    `M / (D + λ)` or `M ⊙ (D + λ)` (M the 2-D layout of `vector`), in the
    layout of `vector`.

  Raises:
    ValueError: If `vector` does not have the 2-D shape of `diagonal`.
  """
  reshaped_vector = utils.layer_params_to_mat2d(vector)
  _check_vector(
    reshaped_vector,
    diagonal.shape,
    "the layer's weights, or (weights, bias) with a bias",
  )
  damped = diagonal + _damping_for(damping, diagonal)
  if inverse:
    reshaped_out = reshaped_vector / damped
  else:
    reshaped_out = reshaped_vector * damped
  return utils.mat2d_to_layer_params(vector, reshaped_out)


class FisherBlock(object, metaclass=abc.ABCMeta):
  """Abstract base class of the blocks of a block-diagonal Fisher matrix.

  Each block approximates the Fisher matrix `F = E[g g^T]` restricted to one
  group of parameters (g being the gradient of the log-likelihood of a sampled
  target with respect to those parameters), and multiplies vectors by
  `F + damping * I` and by its inverse.
  """

  def __init__(self, layer_collection):
    """Creates a FisherBlock.

    Args:
      layer_collection: The `LayerCollection` this block belongs to; factors
        are created through its `make_or_get_factor`.
    """
    self._layer_collection = layer_collection

  @abc.abstractmethod
  def instantiate_factors(self, grads_list, damping):
    """Creates and registers the factors this block needs.

    Args:
      grads_list: A tuple with one entry per source (per sample used to
        estimate the Fisher); each entry holds the gradients of the loss with
        respect to `tensors_to_compute_grads()`, in the same structure.
      damping: The damping λ, a float or a scalar Tensor.
    """
    pass

  @abc.abstractmethod
  def multiply_inverse(self, vector):
    """Multiplies a vector by the inverse of the damped block.

    Args:
      vector: A Tensor, or a tuple of Tensors, shaped like the block's
        parameters.

    Returns:
      `(F + damping * I)^-1 vector` (as approximated by the block), in the
      layout of `vector`.
    """
    pass

  @abc.abstractmethod
  def multiply(self, vector):
    """Multiplies a vector by the damped block.

    Args:
      vector: A Tensor, or a tuple of Tensors, shaped like the block's
        parameters.

    Returns:
      `(F + damping * I) vector` (as approximated by the block), in the
      layout of `vector`.
    """
    pass

  @abc.abstractmethod
  def tensors_to_compute_grads(self):
    """Returns the Tensor(s) whose gradients `instantiate_factors` expects.

    Returns:
      A Tensor or a structure of Tensors (the parameters, or the layer's
      pre-activation outputs for layer blocks).
    """
    pass


class FullFB(FisherBlock):
  """A full (dense) Fisher block for any set of parameters.

  With `g` the column of all parameter gradients concatenated (n entries),
  the block is the `[n, n]` matrix `F = sum over sources of g g^T /
  batch_size`, kept as an exponential moving average by a
  `fisher_factors.FullFactor`. Only practical for few parameters.
  """

  def __init__(self, layer_collection, params, batch_size):
    """Creates a FullFB.

    Args:
      layer_collection: The `LayerCollection` this block belongs to.
      params: The parameters: a Tensor/Variable or a tuple of them.
      batch_size: The batch size (positive int or scalar Tensor) the summed
        gradients are divided by.

    Raises:
      ValueError: If `batch_size` is not a positive int or a scalar Tensor.
    """
    self._batch_size = _check_batch_size(batch_size)
    self._params = params
    super(FullFB, self).__init__(layer_collection)

  def instantiate_factors(self, grads_list, damping):
    """Creates the full factor and registers its damped inverse.

    Args:
      grads_list: A tuple over sources of the gradients with respect to the
        parameters (structured like `params`).
      damping: The damping λ, a float or a scalar Tensor; the inverse of
        `F + λ I` is registered on the factor.
    """
    self._damping = damping
    self._factor = self._layer_collection.make_or_get_factor(
      fisher_factors.FullFactor, (_as_hashable(grads_list), self._batch_size)
    )
    self._factor.register_damped_inverse(damping)

  def multiply_inverse(self, vector):
    """Returns `(F + λ I)^-1 vector` using the factor's inverse variable.

    Args:
      vector: A Tensor or tuple of Tensors shaped like `params`.

    Returns:
      The product, shaped like `vector` (a tuple for a tuple/list input).

    Raises:
      ValueError: If the static shape of `vector` does not fit the block.
    """
    inverse = self._factor.get_inverse(self._damping)
    vector_flat = _params_vector_to_column(vector, self._factor)
    out_flat = tf.matmul(inverse, vector_flat)
    return utils.column_to_tensors(vector, out_flat)

  def multiply(self, vector):
    """Returns `(F + λ I) vector`.

    Args:
      vector: A Tensor or tuple of Tensors shaped like `params`.

    Returns:
      The product, shaped like `vector` (a tuple for a tuple/list input).

    Raises:
      ValueError: If the static shape of `vector` does not fit the block.
    """
    vector_flat = _params_vector_to_column(vector, self._factor)
    out_flat = (
      tf.matmul(self._factor.get_cov(), vector_flat)
      + _damping_for(self._damping, vector_flat) * vector_flat
    )
    return utils.column_to_tensors(vector, out_flat)

  def full_fisher_block(self):
    """Returns the undamped block `F`, an `[n, n]` Tensor (for testing)."""
    return self._factor.get_cov()

  def tensors_to_compute_grads(self):
    """Returns the parameters, with respect to which gradients are taken."""
    return self._params


class NaiveDiagonalFB(FisherBlock):
  """A diagonal Fisher block for any set of parameters.

  The block is `diag(d)` with `d = sum over sources of g ⊙ g / batch_size`
  (g the column of all parameter gradients), kept by a
  `fisher_factors.NaiveDiagonalFactor`. Being diagonal, it is inverted
  elementwise and needs no inverse variables.
  """

  def __init__(self, layer_collection, params, batch_size):
    """Creates a NaiveDiagonalFB.

    Args:
      layer_collection: The `LayerCollection` this block belongs to.
      params: The parameters: a Tensor/Variable or a tuple of them.
      batch_size: The batch size (positive int or scalar Tensor) the summed
        squared gradients are divided by.

    Raises:
      ValueError: If `batch_size` is not a positive int or a scalar Tensor.
    """
    self._params = params
    self._batch_size = _check_batch_size(batch_size)
    super(NaiveDiagonalFB, self).__init__(layer_collection)

  def instantiate_factors(self, grads_list, damping):
    """Creates the diagonal factor.

    Args:
      grads_list: A tuple over sources of the gradients with respect to the
        parameters (structured like `params`).
      damping: The damping λ, a float or a scalar Tensor.
    """
    self._damping = damping
    self._factor = self._layer_collection.make_or_get_factor(
      fisher_factors.NaiveDiagonalFactor,
      (_as_hashable(grads_list), self._batch_size),
    )

  def multiply_inverse(self, vector):
    """Returns `vector / (d + λ)` elementwise.

    Args:
      vector: A Tensor or tuple of Tensors shaped like `params`.

    Returns:
      The product, shaped like `vector` (a tuple for a tuple/list input).

    Raises:
      ValueError: If the static shape of `vector` does not fit the block.
    """
    vector_flat = _params_vector_to_column(vector, self._factor)
    cov = _cov_variable(self._factor)
    out_flat = vector_flat / (cov + _damping_for(self._damping, cov))
    return utils.column_to_tensors(vector, out_flat)

  def multiply(self, vector):
    """Returns `vector ⊙ (d + λ)` elementwise.

    Args:
      vector: A Tensor or tuple of Tensors shaped like `params`.

    Returns:
      The product, shaped like `vector` (a tuple for a tuple/list input).

    Raises:
      ValueError: If the static shape of `vector` does not fit the block.
    """
    vector_flat = _params_vector_to_column(vector, self._factor)
    cov = _cov_variable(self._factor)
    out_flat = vector_flat * (cov + _damping_for(self._damping, cov))
    return utils.column_to_tensors(vector, out_flat)

  def full_fisher_block(self):
    """Returns the undamped block `diag(d)`, an `[n, n]` Tensor (testing)."""
    return tf.linalg.diag(tf.reshape(_cov_variable(self._factor), [-1]))

  def tensors_to_compute_grads(self):
    """Returns the parameters, with respect to which gradients are taken."""
    return self._params


class FullyConnectedDiagonalFB(FisherBlock):
  """A diagonal Fisher block for a fully connected layer.

  For a layer `s = a W (+ b)` with inputs `a` of shape `[batch, in]` and
  pre-activations `s` of shape `[batch, out]`, the per-example gradient of
  the weights is `a_n g_n^T` (g_n = gradient with respect to `s_n`). The block
  is the diagonal of the Fisher in the `[in(+1), out]` layout:
  `D[i, j] = sum over sources of mean_n (a_n[i] g_n[j])^2`, computed exactly
  (not as a Kronecker approximation) by a
  `fisher_factors.FullyConnectedDiagonalFactor`; with a bias, `a` gets a
  trailing column of ones.

  Several minibatches (e.g. towers) may be registered; their inputs and
  output gradients are concatenated along the batch dimension before the
  statistic is computed, which gives the statistic of the combined batch.

  Two constructor forms are accepted, told apart by the type of the second
  argument (a bool-like `has_bias`, or a Tensor-like `inputs`) and by the
  keywords given:

  * `FullyConnectedDiagonalFB(layer_collection, has_bias=False)`, the
    documented form: no minibatch yet; each one is added with
    `register_additional_minibatch`. The factor is built from the
    concatenated minibatches, and its variables are named after those
    `concat` ops (`ff_diagfc/concat_concat_1/...`).
  * `FullyConnectedDiagonalFB(layer_collection, inputs, outputs,
    has_bias=False)`, the TF 1.4.0 release's form: one minibatch, given at
    construction. The factor is built from `inputs` and the output
    gradients themselves, so its variables get the 1.4.0 names,
    `ff_diagfc/<inputs>_<output gradient>/...`, which checkpoints written by
    the pip-installed TF 1.4.0 carry. `LayerCollection.register_fully_connected(
    ..., approx="diagonal")` builds this form. A further
    `register_additional_minibatch` switches the block to the concatenating
    behaviour of the documented form.
  """

  def __init__(self, layer_collection, *args, **kwargs):
    """Creates a FullyConnectedDiagonalFB.

    The documented call is `FullyConnectedDiagonalFB(layer_collection,
    has_bias=False)`; the TF 1.4.0 release's call
    `FullyConnectedDiagonalFB(layer_collection, inputs, outputs,
    has_bias=False)` (positional or keyword `inputs`/`outputs`) is accepted
    too and registers that one minibatch (see the class docstring).

    Args:
      layer_collection: The `LayerCollection` this block belongs to.
      has_bias: Whether the layer has a bias (vectors are then
        `(weights, bias)` tuples).

    Raises:
      TypeError: If the arguments fit neither call form.
    """
    release_form, inputs, outputs, has_bias = _diagonal_fb_arguments(
      args, kwargs
    )
    self._inputs = []
    self._outputs = []
    self._has_bias = has_bias
    # True while the block holds exactly the one minibatch given to the
    # TF 1.4.0 release's constructor (factor named after the raw tensors).
    self._release_form = release_form
    super(FullyConnectedDiagonalFB, self).__init__(layer_collection)
    if release_form:
      self._inputs.append(inputs)
      self._outputs.append(outputs)

  def register_additional_minibatch(self, inputs, outputs):
    """Registers the inputs and outputs of one more minibatch of the layer.

    Args:
      inputs: The layer's inputs for this minibatch, `[batch, in]`.
      outputs: The layer's pre-activation outputs, `[batch, out]`.
    """
    self._release_form = False
    self._inputs.append(inputs)
    self._outputs.append(outputs)

  def instantiate_factors(self, grads_list, damping):
    """Creates the diagonal factor from all registered minibatches.

    Args:
      grads_list: A tuple over sources; each entry is the list (one per
        registered minibatch, as returned by `tensors_to_compute_grads`) of
        the gradients with respect to that minibatch's outputs, or a single
        gradient Tensor when one minibatch is registered.
      damping: The damping λ, a float or a scalar Tensor.

    Raises:
      ValueError: If no minibatch has been registered.
    """
    if self._release_form:
      # TF 1.4.0: the factor sees the inputs and gradients as they are.
      inputs = self._inputs[0]
      grads_list = tuple(
        grads[0] if isinstance(grads, (tuple, list)) else grads
        for grads in grads_list
      )
    else:
      inputs = _concat_along_batch_dim(self._inputs)
      grads_list = tuple(
        _concat_along_batch_dim(
          list(grads) if isinstance(grads, (tuple, list)) else [grads]
        )
        for grads in grads_list
      )
    self._damping = damping
    self._factor = self._layer_collection.make_or_get_factor(
      fisher_factors.FullyConnectedDiagonalFactor,
      (inputs, grads_list, self._has_bias),
    )

  def multiply_inverse(self, vector):
    """Returns `M / (D + λ)` elementwise, M being `vector` in 2-D layout.

    Args:
      vector: A `[in, out]` Tensor, or a `(weights, bias)` tuple.

    Returns:
      The product, in the layout of `vector`.

    Raises:
      ValueError: If the static shape of `vector` does not fit the block.
    """
    return _multiply_layer_diagonal(
      vector, _cov_variable(self._factor), self._damping, inverse=True
    )

  def multiply(self, vector):
    """Returns `M ⊙ (D + λ)` elementwise, M being `vector` in 2-D layout.

    Args:
      vector: A `[in, out]` Tensor, or a `(weights, bias)` tuple.

    Returns:
      The product, in the layout of `vector`.

    Raises:
      ValueError: If the static shape of `vector` does not fit the block.
    """
    return _multiply_layer_diagonal(
      vector, _cov_variable(self._factor), self._damping, inverse=False
    )

  def tensors_to_compute_grads(self):
    """Returns the registered minibatches' outputs.

    A list (one entry per minibatch); for a block made with the TF 1.4.0
    release's constructor, that release's single outputs Tensor.
    """
    if self._release_form:
      return self._outputs[0]
    return self._outputs

  @property
  def _num_registered_minibatches(self):
    """The number of minibatches registered so far.

    `LayerCollection.get_use_count_map` counts the parameters once per
    minibatch (one use per tower).
    """
    return len(self._inputs)


# The documented signature (api_surface.md); `__init__` also takes the TF 1.4.0
# release's `(layer_collection, inputs, outputs, has_bias=False)`.
FullyConnectedDiagonalFB.__init__.__signature__ = inspect.Signature(
  [
    inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    inspect.Parameter(
      "layer_collection", inspect.Parameter.POSITIONAL_OR_KEYWORD
    ),
    inspect.Parameter(
      "has_bias", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=False
    ),
  ]
)


def _is_bias_flag(value):
  """Whether `value` reads as a `has_bias` flag (not as layer inputs)."""
  return value is None or isinstance(value, (bool, np.bool_, numbers.Integral))


def _diagonal_fb_arguments(args, kwargs):
  """Binds `FullyConnectedDiagonalFB`'s arguments to one of its two forms.

  Args:
    args: The positional arguments after `layer_collection`.
    kwargs: The keyword arguments.

  Returns:
    `(release_form, inputs, outputs, has_bias)`; `inputs` and `outputs` are
    None for the documented form.

  Raises:
    TypeError: If the arguments fit neither form.
  """
  release_form = (
    "inputs" in kwargs
    or "outputs" in kwargs
    or len(args) > 1
    or (len(args) == 1 and not _is_bias_flag(args[0]))
  )
  names = ("inputs", "outputs", "has_bias") if release_form else ("has_bias",)
  if len(args) > len(names):
    raise TypeError(
      "FullyConnectedDiagonalFB takes (layer_collection, has_bias=False) or "
      "(layer_collection, inputs, outputs, has_bias=False); got {} "
      "arguments after layer_collection.".format(len(args))
    )
  bound = dict(zip(names, args))
  for key, value in kwargs.items():
    if key not in names:
      raise TypeError(
        "FullyConnectedDiagonalFB got an unexpected keyword "
        "argument {!r}.".format(key)
      )
    if key in bound:
      raise TypeError(
        "FullyConnectedDiagonalFB got multiple values for "
        "argument {!r}.".format(key)
      )
    bound[key] = value
  if release_form:
    missing = [n for n in ("inputs", "outputs") if n not in bound]
    if missing:
      raise TypeError(
        "FullyConnectedDiagonalFB(layer_collection, inputs, "
        "outputs, has_bias=False) is missing {}.".format(" and ".join(missing))
      )
  return (
    release_form,
    bound.get("inputs"),
    bound.get("outputs"),
    bound.get("has_bias", False),
  )


class ConvDiagonalFB(FisherBlock):
  """A diagonal Fisher block for a 2-D convolution layer.

  The per-example gradient of the filter (in the `[kh*kw*in_c(+1), out_c]`
  layout) is `G_n = sum over locations of patch ⊗ grad`; the block is the
  diagonal `D = sum over sources of mean_n G_n ⊙ G_n`, kept by a
  `fisher_factors.ConvDiagonalFactor`. The damping is divided by
  `num_locations ** NORMALIZE_DAMPING_POWER`, with
  `num_locations = height * width // (stride_h * stride_w)` read from the
  inputs' static shape.
  """

  def __init__(
    self, layer_collection, params, inputs, outputs, strides, padding
  ):
    """Creates a ConvDiagonalFB.

    Args:
      layer_collection: The `LayerCollection` this block belongs to.
      params: The filter `[kh, kw, in_c, out_c]`, or a tuple/list whose first
        entry is the filter; any tuple/list means the layer has a bias.
      inputs: The layer's inputs `[batch, height, width, in_c]` (height and
        width statically known).
      outputs: The layer's pre-activation outputs
        `[batch, out_height, out_width, out_c]`.
      strides: The convolution strides, a tuple or list of 4 ints.
      padding: The convolution padding, "SAME" or "VALID".

    Raises:
      ValueError: If `strides` is not 4 ints or the inputs' height/width are
        not statically known.
    """
    _init_conv_block(self, params, inputs, outputs, strides, padding)
    super(ConvDiagonalFB, self).__init__(layer_collection)

  def instantiate_factors(self, grads_list, damping):
    """Creates the diagonal factor; stores the location-normalised damping.

    Args:
      grads_list: A tuple over sources of the gradients with respect to the
        outputs.
      damping: The damping λ, a float or a scalar Tensor. The block uses
        `λ / num_locations ** NORMALIZE_DAMPING_POWER`.
    """
    self._damping = _normalize_damping(damping, self._num_locations)
    if not _releases.of(self).conv_diagonal_damping_normalised:
      # From release 1.6: `|T| · normalize_damping(d, |T|)`, i.e. `d` with
      # the default power.
      self._damping = self._num_locations * self._damping
    self._factor = self._layer_collection.make_or_get_factor(
      fisher_factors.ConvDiagonalFactor,
      (
        self._inputs,
        _as_hashable(grads_list),
        self._filter_shape,
        self._strides,
        self._padding,
        self._has_bias,
      ),
    )

  def multiply_inverse(self, vector):
    """Returns `M / (D + λ')` elementwise (λ' the normalised damping).

    Args:
      vector: A filter-shaped Tensor, or a `(filter, bias)` tuple.

    Returns:
      The product, in the layout of `vector`.

    Raises:
      ValueError: If the static shape of `vector` does not fit the block.
    """
    return _multiply_layer_diagonal(
      vector, _cov_variable(self._factor), self._damping, inverse=True
    )

  def multiply(self, vector):
    """Returns `M ⊙ (D + λ')` elementwise (λ' the normalised damping).

    Args:
      vector: A filter-shaped Tensor, or a `(filter, bias)` tuple.

    Returns:
      The product, in the layout of `vector`.

    Raises:
      ValueError: If the static shape of `vector` does not fit the block.
    """
    return _multiply_layer_diagonal(
      vector, _cov_variable(self._factor), self._damping, inverse=False
    )

  def tensors_to_compute_grads(self):
    """Returns the layer's outputs, with respect to which grads are taken."""
    return self._outputs


class KroneckerProductFB(FisherBlock):
  """Base class of blocks approximated by a Kronecker product `c·(A ⊗ G)`.

  `A` (input factor, `[d_in, d_in]`) and `G` (output factor,
  `[d_out, d_out]`) are covariance factors and `c = _renorm_coeff`. Vectors
  are handled in the `[d_in, d_out]` 2-D layout M, where `(A ⊗ G) vec(M)`
  corresponds to `A M G`.

  Damping uses the factored Tikhonov approximation of Martens & Grosse
  (2015, §6.3): `A ⊗ G + λ I ≈ (A + π√λ I) ⊗ (G + √λ/π I)` with
  `π = sqrt((tr A / d_in) / (tr G / d_out))`. Subclasses create
  `_input_factor` and `_output_factor` and call
  `_register_damped_input_and_output_inverses`.
  """

  def __init__(self, layer_collection):
    """Creates a KroneckerProductFB.

    Args:
      layer_collection: The `LayerCollection` this block belongs to.
    """
    super(KroneckerProductFB, self).__init__(layer_collection)

  def _register_damped_input_and_output_inverses(self, damping):
    """Registers the π-adjusted damped inverses on both factors.

    Sets `_input_damping = sqrt(λ)·π` and `_output_damping = sqrt(λ)/π`
    (Tensors reading the current covariances) and registers the damped
    inverse of each factor under them.

    Args:
      damping: The damping λ, a float or a scalar Tensor.
    """
    pi = utils.compute_pi(
      self._input_factor.get_cov(), self._output_factor.get_cov()
    )
    # An int damping (e.g. 1) or a float64 Tensor is cast to the factors'
    # float32; tf.sqrt has no integer kernel.
    sqrt_damping = tf.sqrt(_ops.in_dtype(damping, pi.dtype))
    self._input_damping = sqrt_damping * pi
    self._output_damping = sqrt_damping / pi
    self._input_factor.register_damped_inverse(self._input_damping)
    self._output_factor.register_damped_inverse(self._output_damping)

  @property
  def _renorm_coeff(self):
    """The scalar `c` multiplying `A ⊗ G` (1 unless overridden)."""
    return 1.0

  def _vector_to_mat2d(self, vector):
    """`utils.layer_params_to_mat2d(vector)`, checked against the factors."""
    reshaped_vector = utils.layer_params_to_mat2d(vector)
    _check_vector(
      reshaped_vector,
      [
        _checks.static_dim(self._input_factor.get_cov(), 0),
        _checks.static_dim(self._output_factor.get_cov(), 0),
      ],
      "the layer's weights, or (weights, bias) with a bias",
    )
    return reshaped_vector

  def multiply_inverse(self, vector):
    """Returns `(A + π√λ I)^-1 M (G + √λ/π I)^-1 / c`.

    Uses the factors' inverse variables (refreshed by their inverse update
    ops).

    Args:
      vector: A weights-shaped Tensor, or a `(weights, bias)` tuple.

    Returns:
      The product, in the layout of `vector`.

    Raises:
      ValueError: If the static shape of `vector` does not fit the block.
    """
    left_factor_inv = self._input_factor.get_inverse(self._input_damping)
    right_factor_inv = self._output_factor.get_inverse(self._output_damping)
    reshaped_vector = self._vector_to_mat2d(vector)
    reshaped_out = tf.matmul(
      left_factor_inv, tf.matmul(reshaped_vector, right_factor_inv)
    )
    if self._renorm_coeff != 1.0:
      reshaped_out /= tf.cast(self._renorm_coeff, dtype=reshaped_out.dtype)
    return utils.mat2d_to_layer_params(vector, reshaped_out)

  def multiply(self, vector):
    """Returns `c·(A + π√λ I) M (G + √λ/π I)`.

    Args:
      vector: A weights-shaped Tensor, or a `(weights, bias)` tuple.

    Returns:
      The product, in the layout of `vector`.

    Raises:
      ValueError: If the static shape of `vector` does not fit the block.
    """
    left_factor = self._input_factor.get_cov()
    right_factor = self._output_factor.get_cov()
    reshaped_vector = self._vector_to_mat2d(vector)
    reshaped_out = (
      tf.matmul(reshaped_vector, right_factor)
      + self._output_damping * reshaped_vector
    )
    reshaped_out = (
      tf.matmul(left_factor, reshaped_out) + self._input_damping * reshaped_out
    )
    if self._renorm_coeff != 1.0:
      reshaped_out *= tf.cast(self._renorm_coeff, dtype=reshaped_out.dtype)
    return utils.mat2d_to_layer_params(vector, reshaped_out)

  def full_fisher_block(self):
    """Returns the undamped block `c·kron(A, G)` (for testing).

    Returns:
      A `[d_in*d_out, d_in*d_out]` Tensor, indexed like the row-major
      flattening of the 2-D layout `[d_in, d_out]`.
    """
    left_factor = self._input_factor.get_cov()
    right_factor = self._output_factor.get_cov()
    return self._renorm_coeff * utils.kronecker_product(
      left_factor, right_factor
    )


class FullyConnectedKFACBasicFB(KroneckerProductFB):
  """K-FAC block for a fully connected layer: `E[a a^T] ⊗ E[g g^T]`.

  For `s = a W (+ b)` with inputs `a` `[batch, in]` (a column of ones
  appended when the layer has a bias) and gradients `g` with respect to the
  pre-activations `s` `[batch, out]`, `A = a^T a / batch` (`[in(+1), in(+1)]`)
  and `G = sum over sources of g^T g / batch` (`[out, out]`). Weights use the
  `[in(+1), out]` layout.
  """

  def __init__(self, layer_collection, inputs, outputs, has_bias=False):
    """Creates a FullyConnectedKFACBasicFB.

    Args:
      layer_collection: The `LayerCollection` this block belongs to.
      inputs: The layer's inputs, `[batch, in]`.
      outputs: The layer's pre-activation outputs, `[batch, out]`.
      has_bias: Whether the layer has a bias (vectors are then
        `(weights, bias)` tuples).
    """
    self._inputs = inputs
    self._outputs = outputs
    self._has_bias = has_bias
    super(FullyConnectedKFACBasicFB, self).__init__(layer_collection)

  def instantiate_factors(self, grads_list, damping):
    """Creates both Kronecker factors and registers their damped inverses.

    Args:
      grads_list: A tuple over sources of the gradients with respect to the
        outputs (each `[batch, out]`).
      damping: The damping λ, a float or a scalar Tensor.
    """
    self._input_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.FullyConnectedKroneckerFactor,
      ((self._inputs,), self._has_bias),
    )
    self._output_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.FullyConnectedKroneckerFactor, (_as_hashable(grads_list),)
    )
    self._register_damped_input_and_output_inverses(damping)

  def tensors_to_compute_grads(self):
    """Returns the layer's outputs, with respect to which grads are taken."""
    return self._outputs


class ConvKFCBasicFB(KroneckerProductFB):
  """KFC block for a 2-D convolution layer: `L·(Ω ⊗ Γ)` (Grosse & Martens).

  `Ω` is the covariance of the image patches `[kh*kw*in_c(+1)]` over examples
  and locations, `Γ` that of the output gradients `[out_c]` over examples and
  locations, and `L = num_locations = height * width // (stride_h *
  stride_w)` from the inputs' static shape. Before the π-adjusted damping is
  split between the factors, the damping is divided by
  `L ** NORMALIZE_DAMPING_POWER`; `multiply_inverse` divides by `L` and
  `multiply` multiplies by `L`.
  """

  def __init__(
    self, layer_collection, params, inputs, outputs, strides, padding
  ):
    """Creates a ConvKFCBasicFB.

    Args:
      layer_collection: The `LayerCollection` this block belongs to.
      params: The filter `[kh, kw, in_c, out_c]`, or a tuple/list whose first
        entry is the filter; any tuple/list means the layer has a bias.
      inputs: The layer's inputs `[batch, height, width, in_c]` (height and
        width statically known).
      outputs: The layer's pre-activation outputs
        `[batch, out_height, out_width, out_c]`.
      strides: The convolution strides, a tuple or list of 4 ints.
      padding: The convolution padding, "SAME" or "VALID".

    Raises:
      ValueError: If `strides` is not 4 ints or the inputs' height/width are
        not statically known.
    """
    _init_conv_block(self, params, inputs, outputs, strides, padding)
    super(ConvKFCBasicFB, self).__init__(layer_collection)

  def instantiate_factors(self, grads_list, damping):
    """Creates both factors and registers the normalised damped inverses.

    Args:
      grads_list: A tuple over sources of the gradients with respect to the
        outputs (each `[batch, out_height, out_width, out_c]`).
      damping: The damping λ, a float or a scalar Tensor; the factors are
        damped with `λ / L ** NORMALIZE_DAMPING_POWER`.
    """
    self._input_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.ConvInputKroneckerFactor,
      (
        self._inputs,
        self._filter_shape,
        self._strides,
        self._padding,
        self._has_bias,
      ),
    )
    self._output_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.ConvOutputKroneckerFactor, (_as_hashable(grads_list),)
    )
    self._damping = _normalize_damping(damping, self._num_locations)
    self._register_damped_input_and_output_inverses(self._damping)

  @property
  def _renorm_coeff(self):
    """The number of spatial locations `L` scaling `Ω ⊗ Γ`."""
    return self._num_locations

  def tensors_to_compute_grads(self):
    """Returns the layer's outputs, with respect to which grads are taken."""
    return self._outputs
