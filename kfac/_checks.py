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
that each check is written once and raises the same error everywhere.
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
