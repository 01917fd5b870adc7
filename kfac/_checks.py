"""Private helpers shared by the kfac modules: static shapes and checks.

Static shapes are read through `static_rank`, `static_dim` and
`static_shape_list`, which give Python ints (or None for an unknown size)
whatever TensorFlow's behaviour switches are: with
`tf.compat.v1.disable_v2_tensorshape()` (part of `disable_v2_behavior()`),
indexing a `TensorShape` returns `Dimension` objects, which are never `None`
and do not support every arithmetic operator. Reading shapes only through
these helpers keeps the numbers, names and errors identical in TF1 mode and
in TensorFlow 2's graph mode; `format_shape` writes shapes in messages the
same way in both.

The argument checks (`check_tensor`, `check_floating`, ...) and the
convolution geometry (`check_filter_shape`, `check_strides`,
`check_padding`, `conv_output_size`, `conv_block_strides`) used by
`fisher_factors`, `fisher_blocks` and `layer_collection` live here too, so
that each check is written once and raises the same error everywhere; so do
the layer registration checks of `layer_collection` (`StaticShape`,
`check_rank`, `check_known`, `check_fully_connected`, `check_conv2d`) and
the loss parameter conversions of `loss_functions` (`as_tensor`,
`float_param`, `check_matrix`, `same_dtype_param`).
"""

import numpy as np
import tensorflow as tf

__all__ = []


def _as_shape(value):
  """The static `TensorShape` of a tensor-like, shape or sequence of dims.

  Args:
    value: A Tensor, Variable (anything with a `.shape`), a `TensorShape`,
      or a list/tuple of ints, `None`s or `Dimension`s.

  Returns:
    A `tf.TensorShape`.
  """
  if isinstance(value, tf.TensorShape):
    return value
  shape = getattr(value, "shape", None)
  if shape is not None and not isinstance(value, (tuple, list)):
    return tf.TensorShape(shape)
  return tf.TensorShape(value)


def static_rank(value):
  """The static rank of `value` (see `_as_shape`), or None if unknown."""
  return _as_shape(value).rank


def static_shape_list(value):
  """The static shape as a list of Python ints/None, or None if no rank.

  Args:
    value: A Tensor, Variable, `TensorShape` or list of dimensions.

  Returns:
    A list (one entry per axis, None for an unknown size), or None when the
    rank is unknown.
  """
  shape = _as_shape(value)
  if shape.rank is None:
    return None
  return shape.as_list()


def static_dim(value, axis):
  """The static size of one axis as a Python int, or None if unknown.

  Works for Tensors, Variables, `TensorShape`s (v1 `Dimension`s or v2 ints)
  and lists of dimensions. Negative axes count from the end.

  Args:
    value: A Tensor, Variable, `TensorShape` or list of dimensions.
    axis: The axis (Python int).

  Returns:
    A Python int, or None when the rank or that size is unknown.

  Raises:
    IndexError: If the rank is known and `axis` is out of range.
  """
  shape = _as_shape(value)
  if shape.rank is None:
    return None
  return tf.compat.dimension_value(shape[axis])


def format_shape(value):
  """Writes a static shape as TensorFlow 2 does, in every TF mode.

  `(None, 3)`, `(4,)`, `()` or `<unknown>`: TF1's `Dimension` shapes would
  print `(?, 3)`; messages must not depend on the mode.

  Args:
    value: A Tensor, Variable, `TensorShape` or list of dimensions.

  Returns:
    The string.
  """
  dims = static_shape_list(value)
  if dims is None:
    return "<unknown>"
  if len(dims) == 1:
    return "({},)".format(dims[0])
  return "({})".format(", ".join(str(d) for d in dims))


# ---------------------------------------------------------------------------
# Argument checks (each raises TypeError/ValueError naming the argument).
# ---------------------------------------------------------------------------


def is_tensor_like(value):
  """Whether `value` is a `tf.Tensor` or a `tf.Variable`."""
  return isinstance(value, (tf.Tensor, tf.Variable))


def is_int(value):
  """Whether `value` is a Python or NumPy integer (not a bool)."""
  return isinstance(value, (int, np.integer)) and not isinstance(
    value, (bool, np.bool_)
  )


def check_floating(value, arg_name):
  """Raises a TypeError unless the Tensor `value` is floating point.

  Args:
    value: A Tensor or Variable.
    arg_name: Its name, for the message.

  Returns:
    Its base dtype.

  Raises:
    TypeError: If the dtype is not floating point.
  """
  dtype = tf.as_dtype(value.dtype).base_dtype
  if not dtype.is_floating:
    raise TypeError(
      "{} must have a floating-point dtype, got {}.".format(
        arg_name, dtype.name
      )
    )
  return dtype


def check_tensor(value, arg_name, rank=None):
  """Checks a Tensor/Variable argument; returns it as a Tensor.

  The dtype is checked later, by `check_floating` when the covariance
  update is built (TensorFlow 1.4 accepted integer tensors until then).

  Args:
    value: The argument.
    arg_name: Its name, for messages.
    rank: The required static rank, or None.

  Returns:
    `value` as a Tensor.

  Raises:
    TypeError: If `value` is not a Tensor/Variable.
    ValueError: If its static rank is unknown or differs from `rank`.
  """
  if not is_tensor_like(value):
    raise TypeError(
      "{} must be a tf.Tensor or tf.Variable, got {}.".format(
        arg_name, type(value).__name__
      )
    )
  if rank is not None:
    if value.shape.rank is None:
      raise ValueError(
        "{} must have a known static rank {}.".format(arg_name, rank)
      )
    if value.shape.rank != rank:
      raise ValueError(
        "{} must have rank {}, got shape {}.".format(
          arg_name, rank, format_shape(value)
        )
      )
  return tf.convert_to_tensor(value)


def check_tensor_list(values, arg_name, rank=None):
  """Checks a non-empty tuple/list of Tensors; returns a tuple of Tensors.

  Args:
    values: A Tensor/Variable (one source) or a tuple/list of them.
    arg_name: The argument's name, for messages.
    rank: The required static rank of each, or None.

  Returns:
    A tuple of Tensors.

  Raises:
    TypeError: If `values` or an element has the wrong type.
    ValueError: If `values` is empty or a rank is wrong.
  """
  if is_tensor_like(values):
    values = (values,)
  if not isinstance(values, (tuple, list)):
    raise TypeError(
      "{} must be a list or tuple of Tensors, got {}.".format(
        arg_name, type(values).__name__
      )
    )
  if not values:
    raise ValueError("{} must not be empty.".format(arg_name))
  return tuple(
    check_tensor(v, "{}[{}]".format(arg_name, i), rank)
    for i, v in enumerate(values)
  )


# ---------------------------------------------------------------------------
# Convolution geometry.
# ---------------------------------------------------------------------------


def check_filter_shape(filter_shape):
  """Checks `filter_shape`; returns it as a tuple of 4 Python ints."""
  if isinstance(filter_shape, tf.TensorShape):
    filter_shape = filter_shape.as_list()
  elif isinstance(filter_shape, np.ndarray) and filter_shape.ndim == 1:
    filter_shape = list(filter_shape)
  if not isinstance(filter_shape, (tuple, list)):
    raise TypeError(
      "filter_shape must be a tuple/list of 4 positive ints "
      "(kernel_height, kernel_width, in_channels, out_channels),"
      " got {!r}.".format(filter_shape)
    )
  if len(filter_shape) != 4 or not all(
    is_int(d) and d > 0 for d in filter_shape
  ):
    raise ValueError(
      "filter_shape must be 4 positive ints (kernel_height, "
      "kernel_width, in_channels, out_channels), got {!r}.".format(filter_shape)
    )
  return tuple(int(d) for d in filter_shape)


def check_strides(strides):
  """Checks `strides`; returns them as a tuple of 4 Python ints.

  A Tensor is accepted when its value is known at graph-construction time.
  """
  value = strides
  if is_tensor_like(strides):
    if strides.shape.rank is not None and strides.shape.rank != 1:
      raise ValueError(
        "strides must be a 1-D Tensor of length 4, got shape {}.".format(
          format_shape(strides)
        )
      )
    value = tf.get_static_value(strides)
    if value is None:
      raise ValueError(
        "strides must have a value known at graph-construction"
        " time (a constant); got the tensor {}.".format(strides.name)
      )
    value = list(np.asarray(value).reshape(-1))
  if isinstance(value, np.ndarray):
    value = list(value.reshape(-1))
  if not isinstance(value, (tuple, list)):
    raise TypeError(
      "strides must be a list/tuple of 4 ints or a 1-D Tensor, "
      "got {!r}.".format(strides)
    )
  if len(value) != 4:
    raise ValueError("strides must have length 4, got {!r}.".format(value))
  if not all(is_int(s) and s > 0 for s in value):
    raise ValueError("strides must be positive ints, got {!r}.".format(value))
  if value[0] != 1 or value[3] != 1:
    raise ValueError(
      "strides must be 1 in the batch and channel dimensions "
      "([1, stride_h, stride_w, 1]), got {!r}.".format(value)
    )
  return tuple(int(s) for s in value)


def check_padding(padding):
  """Checks `padding`; returns it as the string `"SAME"` or `"VALID"`."""
  if isinstance(padding, bytes):
    padding = padding.decode("ascii", "replace")
  if padding not in ("SAME", "VALID"):
    raise ValueError(
      "padding must be 'SAME' or 'VALID', got {!r}.".format(padding)
    )
  return padding


def conv_output_size(in_size, kernel, stride, padding):
  """Output size and leading padding of a conv along one spatial axis.

  Follows TensorFlow's rule: SAME gives `ceil(in / stride)` outputs and pads
  `max((out - 1) * stride + kernel - in, 0)` in total, the smaller half
  before; VALID gives `ceil((in - kernel + 1) / stride)` and no padding.

  Args:
    in_size: Input size, a Python int or a scalar int32 Tensor.
    kernel: Kernel size (int).
    stride: Stride (int).
    padding: `"SAME"` or `"VALID"`.

  Returns:
    `(out_size, pad_before, pad_after)`, Python ints when `in_size` is one.
  """
  if padding == "SAME":
    out_size = (in_size + stride - 1) // stride
    total = (out_size - 1) * stride + kernel - in_size
    total = max(total, 0) if isinstance(total, int) else tf.maximum(total, 0)
    return out_size, total // 2, total - total // 2
  out_size = (in_size - kernel + stride) // stride
  return out_size, 0, 0


def conv_block_strides(strides):
  """Reads a conv block's strides: a tuple with ints at positions 1 and 2.

  The blocks use only `strides[1]` and `strides[2]` (for the number of
  locations) and pass the strides on to their factors, which check all four
  when they use them, as TensorFlow 1.4 did. Lists and NumPy arrays become
  tuples (factor arguments are dictionary keys), NumPy integers Python ints.

  Args:
    strides: A tuple, list or 1-D NumPy array, `[1, stride_h, stride_w, 1]`.

  Returns:
    A tuple.

  Raises:
    ValueError: If `strides` is not a sequence with positive integers at
      positions 1 and 2.
  """
  if isinstance(strides, np.ndarray) and strides.ndim == 1:
    strides = strides.tolist()
  if (
    not isinstance(strides, (tuple, list))
    or len(strides) < 3
    or not all(is_int(s) and s > 0 for s in strides[1:3])
  ):
    raise ValueError(
      "strides must be a tuple or list of 4 ints, got {!r}.".format(strides)
    )
  return tuple(int(s) if is_int(s) else s for s in strides)


def static_conv_output_size(in_size, kernel, stride, padding):
  """A convolution's output size along one axis, or None if not static.

  Args:
    in_size: The input size (Python int) or None.
    kernel: The kernel size (Python int) or None (enough for "SAME").
    stride: The stride (Python int).
    padding: `"SAME"` or `"VALID"`.

  Returns:
    `conv_output_size`'s output size, or None when `in_size` (or, for
    "VALID", `kernel`) is unknown.
  """
  if in_size is None or (padding == "VALID" and kernel is None):
    return None
  return conv_output_size(
    in_size, 1 if kernel is None else kernel, stride, padding
  )[0]


class StaticShape(list):
  """A static shape as a list of Python ints/None (None: unknown rank).

  `rank` is None for an unknown rank, when the list is empty; `str` writes
  the shape as TensorFlow 2 does, whatever the TF mode.
  """

  def __init__(self, tensor):
    dims = static_shape_list(tensor)
    super(StaticShape, self).__init__(dims or [])
    self.rank = None if dims is None else len(dims)
    self._text = format_shape(tensor)

  def __str__(self):
    return self._text

  def __getitem__(self, index):
    if self.rank is None:
      return None
    return super(StaticShape, self).__getitem__(index)

  def num_elements(self):
    if self.rank is None or None in self:
      return None
    count = 1
    for dim in self:
      count *= dim
    return count


def shape_of(tensor, arg_name):
  """Returns the static shape of a Tensor or Variable argument."""
  if not isinstance(tensor, (tf.Tensor, tf.Variable)):
    raise TypeError(
      "{} must be a Tensor or Variable, got {!r}.".format(arg_name, tensor)
    )
  return StaticShape(tensor)


def check_rank(shape, rank, arg_name, layout):
  """Raises a ValueError if a known rank differs from `rank`."""
  if shape.rank is not None and shape.rank != rank:
    raise ValueError(
      "{} must have rank {} ({}), got shape {}.".format(
        arg_name, rank, layout, shape
      )
    )


def check_known(tensor, rank, axes, arg_name, layout):
  """Raises a ValueError unless the rank and the `axes` sizes are static.

  The factors size their variables from these static sizes.

  Args:
    tensor: A Tensor or Variable.
    rank: The rank it must have.
    axes: The axes whose sizes must be statically known.
    arg_name: The argument's name, for the message.
    layout: The expected layout, for the message.

  Raises:
    ValueError: If the rank or one of the sizes is unknown.
  """
  shape = StaticShape(tensor)
  if shape.rank is None or any(shape[axis] is None for axis in axes):
    names = layout.strip("[]").split(", ")
    raise ValueError(
      "{} must have statically known rank {}{} ({}), got shape {}.".format(
        arg_name,
        rank,
        "".join(" and {}".format(names[axis]) for axis in axes),
        layout,
        shape,
      )
    )


def dims_differ(dim1, dim2):
  """True if both dimensions are known and different."""
  return dim1 is not None and dim2 is not None and dim1 != dim2


def split_layer_params(params):
  """Splits layer parameters into (weights, bias-or-None).

  As in TensorFlow 1.4, any tuple/list means "with a bias" to the block; its
  first element is the weights and a second one the bias. Tuples of another
  length are accepted here (1.4 built their factors too) and fail when a
  vector is multiplied (`utils.layer_params_to_mat2d`).

  Args:
    params: A Tensor/Variable (weights only) or a `(weights, bias)`
      tuple/list.

  Returns:
    A pair `(weights, bias)`; `bias` is None without a bias.

  Raises:
    ValueError: If a tuple/list is empty.
  """
  if isinstance(params, (tuple, list)):
    if not params:
      raise ValueError(
        "params must be the weights or a (weights, bias) "
        "pair, got an empty sequence."
      )
    return params[0], params[1] if len(params) == 2 else None
  return params, None


def check_bias(bias, out_size):
  """Checks that a bias has `out_size` elements (when both are known)."""
  if bias is None:
    return
  shape = shape_of(bias, "params[1] (bias)")
  num_elements = shape.num_elements()
  if (shape.rank is not None and shape.rank > 2) or dims_differ(
    num_elements, out_size
  ):
    raise ValueError(
      "params[1] (bias) must have {} elements (one per output), got shape "
      "{}.".format(out_size, shape)
    )


# What `check_fully_connected` and `check_conv2d` expect of a layer: how the
# messages name its parameters; the layouts of its parameters, inputs and
# outputs (each one's rank is its number of entries); and how a message ends
# when the parameters do not fit the inputs' or the outputs' channels.
_LAYERS = {
  "fully_connected": (
    "params (weights)",
    (
      "[input_size, output_size]",
      "[batch_size, input_size]",
      "[batch_size, output_size]",
    ),
    (
      "expected weights of shape [{}, output_size]",
      "expected weights of shape [input_size, {}]",
    ),
  ),
  "conv2d": (
    "params (filter)",
    (
      "[kernel_height, kernel_width, in_channels, out_channels]",
      "[batch_size, height, width, in_channels]",
      "[batch_size, out_height, out_width, out_channels]",
    ),
    (
      "the filter's in_channels must be {}",
      "the filter's out_channels must be {}",
    ),
  ),
}


def _layer_shapes(layer, weights, inputs, outputs):
  """Reads a layer's static shapes and checks their ranks and batch sizes.

  Args:
    layer: A key of `_LAYERS`.
    weights: The layer's weights or filter (Tensor or Variable).
    inputs: The layer inputs (Tensor or Variable).
    outputs: The layer pre-activations (Tensor or Variable).

  Returns:
    The `StaticShape`s of `weights`, `inputs` and `outputs`.

  Raises:
    TypeError: If an argument is not a Tensor/Variable.
    ValueError: If a known rank differs from its layout's, or the known batch
      sizes of `inputs` and `outputs` differ.
  """
  params_name, layouts, _ = _LAYERS[layer]
  shapes = (
    shape_of(weights, "params"),
    shape_of(inputs, "inputs"),
    shape_of(outputs, "outputs"),
  )
  names = (params_name, "inputs", "outputs")
  for k in (1, 2, 0):  # The data first, then the parameters.
    check_rank(shapes[k], layouts[k].count(",") + 1, names[k], layouts[k])
  _, in_shape, out_shape = shapes
  if in_shape.rank is not None and dims_differ(in_shape[0], out_shape[0]):
    raise ValueError(
      "inputs and outputs must have the same batch size, got shapes {} "
      "and {}.".format(in_shape, out_shape)
    )
  return shapes


def _check_layer_fits(layer, shapes, bias):
  """Checks a layer's parameters against its data's channels, and its bias.

  The parameters' last two axes are (in, out): they must agree with the last
  axis of the inputs and of the outputs where both sizes are known, and a
  bias must have one element per output channel. Nothing is checked when the
  parameters' rank is unknown.

  Args:
    layer: A key of `_LAYERS`.
    shapes: The `StaticShape`s of the parameters, inputs and outputs.
    bias: The bias, or None.

  Raises:
    ValueError: If a known size does not fit.
    TypeError: If the bias is not a Tensor/Variable.
  """
  params_name, _, needs = _LAYERS[layer]
  p_shape, in_shape, out_shape = shapes
  if p_shape.rank is None:
    return
  for axis, name, shape, need in (
    (-2, "inputs", in_shape, needs[0]),
    (-1, "outputs", out_shape, needs[1]),
  ):
    if shape.rank is not None and dims_differ(p_shape[axis], shape[-1]):
      raise ValueError(
        "{} of shape {} do not fit {} of shape {}: {}.".format(
          params_name, p_shape, name, shape, need.format(shape[-1])
        )
      )
  out_size = p_shape[-1]
  if out_size is None and out_shape.rank is not None:
    out_size = out_shape[-1]
  check_bias(bias, out_size)


def check_fully_connected(params, inputs, outputs):
  """Checks that FC parameters fit the registered inputs and outputs.

  Args:
    params: The weights `[in, out]` or a `(weights, bias)` pair with a bias of
      `out` elements.
    inputs: The layer inputs, `[batch, in]`.
    outputs: The layer pre-activations, `[batch, out]`.

  Raises:
    ValueError: If a rank or a known dimension does not fit.
    TypeError: If an argument is not a Tensor/Variable.
  """
  weights, bias = split_layer_params(params)
  shapes = _layer_shapes("fully_connected", weights, inputs, outputs)
  _check_layer_fits("fully_connected", shapes, bias)


def check_conv2d(params, strides, padding, inputs, outputs):
  """Checks that conv parameters fit the registered inputs and outputs.

  Args:
    params: The filter `[kh, kw, in_c, out_c]` or a `(filter, bias)` pair
      with a bias of `out_c` elements.
    strides: 4 ints `[1, stride_h, stride_w, 1]`.
    padding: "SAME" or "VALID".
    inputs: The layer inputs, `[batch, height, width, in_c]`.
    outputs: The layer pre-activations, `[batch, out_h, out_w, out_c]`.

  Raises:
    ValueError: If padding is unknown, or a rank or known dimension does not
      fit (including the output height and width implied by the strides and
      padding).
    TypeError: If an argument is not a Tensor/Variable.
  """
  weights, bias = split_layer_params(params)
  padding = check_padding(padding)
  strides = conv_block_strides(strides)
  shapes = _layer_shapes("conv2d", weights, inputs, outputs)
  f_shape, in_shape, out_shape = shapes
  if in_shape.rank is not None and out_shape.rank is not None:
    kernel = f_shape[:2] if f_shape.rank is not None else [None] * 2
    for axis, side in ((1, "height"), (2, "width")):
      expected = static_conv_output_size(
        in_shape[axis], kernel[axis - 1], strides[axis], padding
      )
      if dims_differ(expected, out_shape[axis]):
        raise ValueError(
          "outputs of shape {} do not fit inputs of shape {} with strides "
          "{} and padding {}: expected an output {} of {}.".format(
            out_shape, in_shape, strides, padding, side, expected
          )
        )
  _check_layer_fits("conv2d", shapes, bias)


def as_tensor(value, arg_name):
  """Returns `value` as a Tensor, keeping Tensors and Variables as they are.

  Keeping the caller's object matters: the estimator differentiates with
  respect to `loss.inputs`, which must be the very tensor the network built.
  """
  if tf.is_tensor(value):
    return value
  try:
    return tf.convert_to_tensor(value)
  except (TypeError, ValueError) as e:
    raise TypeError(
      "{} must be a Tensor or convertible to one, got {!r} ({}).".format(
        arg_name, value, e
      )
    ) from e


def float_param(value, arg_name, error=ValueError, matrix=True):
  """Converts a distribution parameter and checks its dtype (and rank).

  Args:
    value: The parameter (Tensor, Variable or convertible value).
    arg_name: The argument's name, for error messages.
    error: Exception class raised for a known rank other than 2.
    matrix: Whether the parameter must be 2-D here. The losses whose
      evaluation and sampling work for any shape (as in TensorFlow 1.4)
      check the `[batch_size, dim]` layout only in the methods that need it
      (`check_matrix`).

  Returns:
    The parameter as a Tensor (the same object if it already was one).

  Raises:
    TypeError: If the dtype is not floating point.
    error: If `matrix` and the static rank is known and is not 2.
  """
  tensor = as_tensor(value, arg_name)
  check_floating(tensor, arg_name)
  if matrix:
    check_matrix(tensor, arg_name, error)
  return tensor


def check_matrix(tensor, arg_name, error=ValueError):
  """Raises `error` if the static rank of `tensor` is known and not 2."""
  rank = static_rank(tensor)
  if rank is not None and rank != 2:
    raise error(
      "{} must be a 2-D Tensor of shape [batch_size, dim], got "
      "shape {}.".format(arg_name, format_shape(tensor))
    )


def same_dtype_param(value, dtype, arg_name):
  """Converts `value` to a Tensor of floating `dtype`.

  Python numbers and NumPy values are converted to `dtype`; a Tensor must
  already have it.

  Raises:
    TypeError: If `value` is a Tensor of another dtype.
  """
  if tf.is_tensor(value):
    check_floating(value, arg_name)
    if tf.as_dtype(value.dtype).base_dtype != dtype:
      raise TypeError(
        "{} must have dtype {} (that of the mean), got {}.".format(
          arg_name, dtype.name, tf.as_dtype(value.dtype).base_dtype.name
        )
      )
    return value
  try:
    return tf.convert_to_tensor(value, dtype=dtype)
  except (TypeError, ValueError) as e:
    raise TypeError(
      "{} must be convertible to a {} Tensor, got {!r}.".format(
        arg_name, dtype.name, value
      )
    ) from e
