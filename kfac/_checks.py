"""Private helpers shared by the kfac modules: static shapes and checks.

Static shapes are read through `static_rank`, `static_dim` and
`static_shape_list`, which give Python ints (or None for an unknown size)
whatever TensorFlow's behaviour switches are: with
`tf.compat.v1.disable_v2_tensorshape()` (part of `disable_v2_behavior()`),
indexing a `TensorShape` returns `Dimension` objects, which are never `None`
and do not support every arithmetic operator. Reading shapes only through
these helpers keeps the numbers, names and errors identical in TF1 mode and
in TensorFlow 2's graph mode.
"""

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
