"""Private graph-building helpers shared by the kfac modules.

* `concat_rows`: `tf.concat(axis=0)` with TensorFlow 1.4's op names (they end
  up in factor variable names).
* `dense_gradients`: the clean-up every caller of `tf.gradients` needs
  (`IndexedSlices` made dense, optionally `None` replaced by zeros).
* `in_dtype`: a number or Tensor as a Tensor of a given dtype, without
  rounding Python numbers through float32.
* `colocate_with`: colocation with a tensor or op, without the deprecation
  notice of `tf.compat.v1.colocate_with`.
"""

import tensorflow as tf

__all__ = []


def concat_rows(tensors):
  """`tf.concat(tensors, axis=0)`, with the op names of TensorFlow 1.4.

  For a single tensor TensorFlow 1.4's `concat` returned an `identity` op
  named after the `concat` name scope (`concat`, `concat_1`, ...), where
  TensorFlow 2 names it `concat/concat`. Such names end up in factor
  variable scopes (`ff_naivediag/concat_32/cov`), so the 1.4 name is kept.

  Args:
    tensors: A non-empty sequence of Tensors.

  Returns:
    The Tensors concatenated along axis 0.
  """
  tensors = list(tensors)
  if len(tensors) == 1:
    with tf.name_scope("concat") as scope:
      return tf.identity(tensors[0], name=scope)
  return tf.concat(tensors, axis=0)


def dense_gradients(grads, like=None):
  """Cleans up a list of gradients as returned by `tf.gradients`.

  `IndexedSlices` (gradients of gathers, e.g. embeddings) become dense
  Tensors; with `like`, a `None` gradient (no dependence) becomes zeros
  shaped like the matching entry of `like`, otherwise it stays `None`.

  Args:
    grads: A list of Tensors, `IndexedSlices` or `None`s.
    like: Optional list of the same length: the tensors the gradients were
      taken with respect to (or any Tensors of the gradients' shapes).

  Returns:
    A list of the same length.
  """
  cleaned = []
  for i, grad in enumerate(grads):
    if isinstance(grad, tf.IndexedSlices):
      grad = tf.convert_to_tensor(grad)
    elif grad is None and like is not None:
      grad = tf.zeros_like(like[i])
    cleaned.append(grad)
  return cleaned


def in_dtype(value, dtype, name=None):
  """`value` as a Tensor of `dtype`; Python numbers are not rounded.

  `tf.cast(0.001, tf.float64)` first converts the number to a float32
  Tensor, so the float64 result is float32's nearest value (a relative error
  near 1e-8). A Python or NumPy number is converted with `dtype` directly
  (for float32 the same value as before); a Tensor or Variable is cast (and
  returned unchanged when it already has `dtype`).

  Args:
    value: A Python/NumPy number, a Tensor or a Variable.
    dtype: The wanted `tf.DType`.
    name: Optional name of the constant made for a number.

  Returns:
    A Tensor of `dtype`.
  """
  dtype = tf.as_dtype(dtype).base_dtype
  if isinstance(value, (tf.Tensor, tf.Variable, tf.IndexedSlices)):
    return tf.cast(value, dtype)
  return tf.constant(value, dtype=dtype, name=name or "Const")


def colocate_with(op):
  """A context that colocates the ops built inside it with `op`.

  The default graph's own `colocate_with` method: it does what
  `tf.compat.v1.colocate_with` does, but without that function's deprecation
  notice ("Colocations handled automatically by placer").

  Args:
    op: A Tensor or Operation, or a (nested) list/tuple whose first element
      is used.

  Returns:
    A context manager.
  """
  while isinstance(op, (tuple, list)):
    op = op[0]
  return tf.compat.v1.get_default_graph().colocate_with(op)
