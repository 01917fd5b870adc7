"""Utility functions shared by the K-FAC modules.

Helpers for moving between the layouts K-FAC works with (lists of parameter
tensors, column vectors, the 2-D ``[in(+1), out]`` layer layout), damped
inverses of positive semi-definite matrices, Kronecker products, forward-mode
derivatives and the sub-graph bookkeeping used to check variable
registrations.
"""

import numpy as np
import tensorflow as tf

from kfac import _checks
from kfac import _ops
from kfac import _surface

# The 1.4 public names, from the one surface table.
__all__ = list(sorted(_surface.public_names("1.4", "utils")))

# Method used by `posdef_inv`: a key of `posdef_inv_funcs`.
POSDEF_INV_METHOD = "cholesky"


class SequenceDict(object):
  """A dictionary that reads and writes several keys at once.

  Indexing with a tuple or list of keys returns the list of their values, and
  assigning to a tuple or list of keys assigns the values element by element.
  Any other key behaves as in a plain dict. The estimator uses it to look up
  the vectors belonging to a (possibly multi-parameter) Fisher block.
  """

  def __init__(self, iterable=None):
    """Creates a SequenceDict.

    Args:
      iterable: Optional iterable of (key, value) pairs, or a mapping, with
        the initial contents.
    """
    self._dict = dict(iterable or [])

  def __getitem__(self, key_or_keys):
    """Returns the value of a key, or the list of values of several keys.

    Args:
      key_or_keys: A single hashable key, or a tuple/list of keys.

    Returns:
      The value stored under the key, or a list of the values stored under
      each key (in the order of the keys).
    """
    if isinstance(key_or_keys, (tuple, list)):
      return [self._dict[key] for key in key_or_keys]
    return self._dict[key_or_keys]

  def __setitem__(self, key_or_keys, val_or_vals):
    """Stores one value, or several values under several keys.

    Args:
      key_or_keys: A single hashable key, or a tuple/list of keys.
      val_or_vals: The value, or a sequence of values of the same length as
        `key_or_keys`.

    Raises:
      ValueError: If a sequence of keys and a sequence of values have
        different lengths.
    """
    if isinstance(key_or_keys, (tuple, list)):
      if len(key_or_keys) != len(val_or_vals):
        raise ValueError(
          "val_or_vals must have one value per key: got {} keys and {} "
          "values.".format(len(key_or_keys), len(val_or_vals))
        )
      for key, value in zip(key_or_keys, val_or_vals):
        self._dict[key] = value
    else:
      self._dict[key_or_keys] = val_or_vals

  def items(self):
    """Returns the (key, value) pairs as a list."""
    return list(self._dict.items())


def setdefault(dct, key, thunk):
  """Returns `dct[key]`, first storing `thunk()` there if the key is absent.

  Unlike `dict.setdefault`, the default is built lazily, so nothing is
  constructed (for example no graph variable is created) when the key exists.

  Args:
    dct: The dictionary to read and possibly update.
    key: The key to look up.
    thunk: A callable taking no arguments that builds the default value.

  Returns:
    The value stored under `key`.
  """
  if key not in dct:
    dct[key] = thunk()
  return dct[key]


def tensors_to_column(tensors):
  """Flattens a tensor, or a list of tensors, into one column vector.

  Args:
    tensors: A Tensor, or a tuple/list of Tensors.

  Returns:
    A Tensor of shape `[n, 1]` holding the elements of every tensor in order
    (row-major within each tensor), n being their total number of elements.
  """
  if isinstance(tensors, (tuple, list)):
    return _ops.concat_rows([tf.reshape(t, [-1, 1]) for t in tensors])
  return tf.reshape(tensors, [-1, 1])


def _static_num_elements(tensor, arg_name):
  """Returns the number of elements of a fully defined static shape."""
  shape = _checks.static_shape_list(tensor)
  if shape is None or None in shape:
    raise ValueError(
      "{} must have a fully defined static shape, got {}.".format(
        arg_name, _checks.format_shape(tensor)
      )
    )
  return int(np.prod(shape, dtype=np.int64))


def column_to_tensors(tensors_template, colvec):
  """Splits a column vector into tensors shaped like a template.

  This inverts `tensors_to_column`.

  Args:
    tensors_template: A Tensor, or a tuple/list of Tensors, whose static
      shapes give the shapes of the result.
    colvec: A Tensor with as many elements as the template tensors together,
      typically of shape `[n, 1]`.

  Returns:
    A Tensor shaped like `tensors_template`, or a tuple of Tensors shaped like
    its elements when the template is a tuple/list.

  Raises:
    ValueError: If a template tensor has no fully defined static shape.
  """
  if isinstance(tensors_template, (tuple, list)):
    offset = 0
    tensors = []
    for i, template in enumerate(tensors_template):
      size = _static_num_elements(template, "tensors_template[%d]" % i)
      tensors.append(tf.reshape(colvec[offset : offset + size], template.shape))
      offset += size
    return tuple(tensors)
  _static_num_elements(tensors_template, "tensors_template")
  return tf.reshape(colvec, tensors_template.shape)


def _static_matrix_shape(mat, arg_name):
  """Returns (rows, cols) of a matrix with a known static shape."""
  shape = _checks.static_shape_list(mat)
  if shape is None or len(shape) != 2 or None in shape:
    raise ValueError(
      "{} must be a matrix with a fully defined static shape, got shape {}.".format(
        arg_name, _checks.format_shape(mat)
      )
    )
  return shape


def kronecker_product(mat1, mat2):
  """Computes the Kronecker product of two matrices.

  `result[i*m2 + k, j*n2 + l] = mat1[i, j] * mat2[k, l]`, which is what
  `numpy.kron` returns.

  Args:
    mat1: A Tensor of static shape `[m1, n1]`.
    mat2: A Tensor of static shape `[m2, n2]`.

  Returns:
    A Tensor of shape `[m1*m2, n1*n2]`.

  Raises:
    ValueError: If either argument is not a matrix of fully known shape.
  """
  m1, n1 = _static_matrix_shape(mat1, "mat1")
  m2, n2 = _static_matrix_shape(mat2, "mat2")
  product = tf.reshape(mat1, [m1, 1, n1, 1]) * tf.reshape(mat2, [1, m2, 1, n2])
  return tf.reshape(product, [m1 * m2, n1 * n2])


def layer_params_to_mat2d(vector):
  """Puts a layer's parameters (or a vector shaped like them) in 2-D form.

  A weight tensor of shape `[..., out]` becomes a matrix `[prod(...), out]`;
  with a bias, the bias is appended as the last row.

  Args:
    vector: A Tensor shaped like the layer's weights, or a `(weights, bias)`
      tuple/list where the bias has `out` elements.

  Returns:
    A Tensor of shape `[prod(...) (+1), out]`.

  Raises:
    ValueError: If a tuple/list does not hold exactly two tensors.
  """
  if isinstance(vector, (tuple, list)):
    if len(vector) != 2:
      raise ValueError(
        "vector must be a (weights, bias) pair, got {} tensors.".format(
          len(vector)
        )
      )
    w_part, b_part = vector
    w_mat = tf.reshape(w_part, [-1, _checks.static_dim(w_part, -1)])
    return tf.concat([w_mat, tf.reshape(b_part, [1, -1])], axis=0)
  return tf.reshape(vector, [-1, _checks.static_dim(vector, -1)])


def mat2d_to_layer_params(vector_template, mat2d):
  """Inverts `layer_params_to_mat2d`.

  Args:
    vector_template: A Tensor, or a `(weights, bias)` tuple/list, whose
      static shapes give the layout of the result.
    mat2d: A Tensor of shape `[prod(weights.shape[:-1]) (+1), out]`.

  Returns:
    A Tensor shaped like the template, or a `(weights, bias)` tuple where the
    bias is the last row of `mat2d` (shape `[out]`).
  """
  if isinstance(vector_template, (tuple, list)):
    w_part, b_part = mat2d[:-1], mat2d[-1]
    return tf.reshape(w_part, vector_template[0].shape), b_part
  return tf.reshape(mat2d, vector_template.shape)


def compute_pi(left_factor, right_factor):
  """Computes the π scaling of factored Tikhonov damping.

  `pi = sqrt((trace(L) / dim(L)) / (trace(R) / dim(R)))` (Martens & Grosse,
  2015, section 6.3): the ratio of the average eigenvalues of the two
  Kronecker factors, used to split a damping term between them.

  As in TF 1.4, the divisions by the dimensions are folded into products
  with the other factor's dimension, `sqrt(trace(L)·dim(R) /
  (trace(R)·dim(L)))`: this gives the same rounding as the 2017 library and
  creates the same ops (`mul`, `mul_1`, `truediv` in the current name
  scope), whose name counters the damped-inverse variable names that follow
  depend on.

  Args:
    left_factor: A square Tensor of static shape `[dim(L), dim(L)]`.
    right_factor: A square Tensor of static shape `[dim(R), dim(R)]`.

  Returns:
    A scalar Tensor.
  """
  left_dim = _checks.static_dim(left_factor, 0)
  right_dim = _checks.static_dim(right_factor, 0)
  left_norm = tf.linalg.trace(left_factor) * right_dim
  right_norm = tf.linalg.trace(right_factor) * left_dim
  return tf.sqrt(left_norm / right_norm)


def posdef_inv(tensor, damping):
  """Computes `(tensor + damping * I)^-1` for a PSD matrix.

  The method is chosen by the module constant `POSDEF_INV_METHOD`
  (`"cholesky"` or `"matrix_inverse"`).

  Args:
    tensor: A square, symmetric positive semi-definite Tensor of static shape
      `[n, n]`.
    damping: A scalar (float or Tensor) added to the diagonal.

  Returns:
    A Tensor of shape `[n, n]`.
  """
  identity = tf.eye(_checks.static_dim(tensor, 0), dtype=tensor.dtype)
  damping = _ops.in_dtype(damping, tensor.dtype)
  return posdef_inv_funcs[POSDEF_INV_METHOD](tensor, identity, damping)


def posdef_inv_matrix_inverse(tensor, identity, damping):
  """Computes `(tensor + damping * identity)^-1` with a general inverse.

  Args:
    tensor: A square Tensor `[n, n]`.
    identity: The `[n, n]` identity matrix in the dtype of `tensor`.
    damping: A scalar Tensor in the dtype of `tensor`.

  Returns:
    A Tensor of shape `[n, n]`.
  """
  return tf.linalg.inv(tensor + damping * identity)


def posdef_inv_cholesky(tensor, identity, damping):
  """Computes `(tensor + damping * identity)^-1` through a Cholesky factor.

  With `L` the lower Cholesky factor of the damped matrix, the inverse is
  `cholesky_solve(L, identity)` for `n` up to `_BLOCKED_INVERSE_MAX_BLOCK`
  (two triangular solves against the identity, as in TensorFlow 1.4). For
  larger `n` it is `L⁻ᵀ L⁻¹`, with `L⁻¹` and the product built from 2×2
  blocks (`_inverse_from_cholesky_factor`): mostly matrix products, fewer
  flops, the same result up to floating-point rounding.

  Args:
    tensor: A symmetric positive semi-definite Tensor `[n, n]`; the damped
      matrix must be positive definite.
    identity: The `[n, n]` identity matrix in the dtype of `tensor`.
    damping: A scalar Tensor in the dtype of `tensor`.

  Returns:
    A Tensor of shape `[n, n]`.
  """
  size = _checks.static_dim(tensor, 0)
  if size is not None and size > _BLOCKED_INVERSE_MAX_BLOCK:
    # Only the diagonal changes; `identity` is not used (nor computed).
    damped = tf.linalg.set_diag(tensor, tf.linalg.diag_part(tensor) + damping)
    return _inverse_from_cholesky_factor(tf.linalg.cholesky(damped))
  return _posdef_inv_cholesky_solve(tensor, identity, damping)


def _posdef_inv_cholesky_solve(tensor, identity, damping):
  """The 2017 formulation: `cholesky_solve(cholesky(tensor + d·I), I)`.

  Args:
    tensor: A symmetric positive semi-definite Tensor `[n, n]`.
    identity: The `[n, n]` identity matrix in the dtype of `tensor`.
    damping: A scalar Tensor in the dtype of `tensor`.

  Returns:
    A Tensor of shape `[n, n]`.
  """
  chol = tf.linalg.cholesky(tensor + damping * identity)
  return tf.linalg.cholesky_solve(chol, identity)


def _reference_posdef_inv(tensor, damping):
  """`posdef_inv` as in 2017: the Cholesky method never works by blocks.

  The private reference factor classes (`fisher_factors`) use it as the
  baseline of benchmarks and as an oracle in tests.

  Args:
    tensor: The `[n, n]` PSD matrix, as for `posdef_inv`.
    damping: The damping, as for `posdef_inv`.

  Returns:
    `(tensor + damping·I)⁻¹`, `[n, n]`.
  """
  method = posdef_inv_funcs[POSDEF_INV_METHOD]
  if method is posdef_inv_cholesky:
    method = _posdef_inv_cholesky_solve
  identity = tf.eye(_checks.static_dim(tensor, 0), dtype=tensor.dtype)
  return method(tensor, identity, _ops.in_dtype(damping, tensor.dtype))


# `posdef_inv_cholesky` inverts larger matrices through 2x2 blocks of their
# Cholesky factor, halving them until a block has at most this many rows.
_BLOCKED_INVERSE_MAX_BLOCK = 1024


def _halves(size):
  """Split point of a block of `size` rows (a static int), or None.

  None when the block is small enough to be treated whole.
  """
  return size // 2 if size > _BLOCKED_INVERSE_MAX_BLOCK else None


def _lower_triangular_inverse(chol):
  """`L⁻¹` of a lower-triangular `[n, n]` Tensor L by 2×2 blocks.

  With `L = [[A, 0], [B, C]]` (A the first `n // 2` rows and columns),
  `L⁻¹ = [[A⁻¹, 0], [−C⁻¹ B A⁻¹, C⁻¹]]`; `A⁻¹` and `C⁻¹` recursively,
  blocks of at most `_BLOCKED_INVERSE_MAX_BLOCK` rows by triangular
  solves against the identity.

  Args:
    chol: A lower-triangular Tensor of static shape `[n, n]`.

  Returns:
    The lower-triangular `[n, n]` inverse.
  """
  size = _checks.static_dim(chol, 0)
  half = _halves(size)
  if half is None:
    return tf.linalg.triangular_solve(
      chol, tf.eye(size, dtype=chol.dtype), lower=True
    )
  a_inv = _lower_triangular_inverse(chol[:half, :half])
  c_inv = _lower_triangular_inverse(chol[half:, half:])
  below = -tf.linalg.matmul(c_inv, tf.linalg.matmul(chol[half:, :half], a_inv))
  zeros = tf.zeros([half, size - half], dtype=chol.dtype)
  return tf.concat(
    [tf.concat([a_inv, zeros], axis=1), tf.concat([below, c_inv], axis=1)],
    axis=0,
  )


def _gram_of_lower_triangular(lower):
  """`TᵀT` of a lower-triangular `[n, n]` Tensor T by 2×2 blocks.

  With `T = [[P, 0], [X, Q]]`, `TᵀT = [[PᵀP + XᵀX, XᵀQ], [QᵀX, QᵀQ]]`;
  `PᵀP` and `QᵀQ` recursively, one matmul for blocks of at most
  `_BLOCKED_INVERSE_MAX_BLOCK` rows. The upper off-diagonal block is the
  transpose of the lower one, so the result is exactly symmetric off the
  diagonal blocks.

  Args:
    lower: A lower-triangular Tensor of static shape `[n, n]`.

  Returns:
    The `[n, n]` Tensor `TᵀT`.
  """
  size = _checks.static_dim(lower, 0)
  half = _halves(size)
  if half is None:
    return tf.linalg.matmul(lower, lower, transpose_a=True)
  bottom_left = lower[half:, :half]
  bottom_right = lower[half:, half:]
  top_left = _gram_of_lower_triangular(lower[:half, :half]) + tf.linalg.matmul(
    bottom_left, bottom_left, transpose_a=True
  )
  off_diagonal = tf.linalg.matmul(bottom_right, bottom_left, transpose_a=True)
  return tf.concat(
    [
      tf.concat([top_left, tf.transpose(off_diagonal)], axis=1),
      tf.concat(
        [off_diagonal, _gram_of_lower_triangular(bottom_right)], axis=1
      ),
    ],
    axis=0,
  )


def _inverse_from_cholesky_factor(chol):
  """`(L Lᵀ)⁻¹ = L⁻ᵀ L⁻¹` from the lower Cholesky factor L.

  About `(4/3)·n³` flops, mostly in matrix products, against `2·n³` in
  triangular solves for `cholesky_solve(L, I)`; the result agrees with it
  up to floating-point rounding. A failed factorisation (NaNs in L) gives
  NaNs, as `cholesky_solve` does.

  Args:
    chol: The lower Cholesky factor, static shape `[n, n]`.

  Returns:
    The `[n, n]` inverse.
  """
  return _gram_of_lower_triangular(_lower_triangular_inverse(chol))


posdef_inv_funcs = {
  "matrix_inverse": posdef_inv_matrix_inverse,
  "cholesky": posdef_inv_cholesky,
}


def _is_resource_variable(var):
  """True for variables read through a resource handle (TF 2 default)."""
  handle = getattr(var, "handle", None)
  return handle is not None and handle.dtype == tf.resource


class SubGraph(object):
  """The part of a graph that a set of output tensors depends on.

  Membership is computed by walking backwards from the outputs: a tensor
  brings in the op producing it, and an op brings in its input tensors.
  Control dependencies are not followed.
  """

  def __init__(self, outputs):
    """Collects every tensor and op the outputs depend on.

    Args:
      outputs: A list of Tensors.
    """
    self._members = set()
    stack = list(outputs)
    while stack:
      tensor = stack.pop()
      if tensor in self._members:
        continue
      self._members.add(tensor)
      op = tensor.op
      if op not in self._members:
        self._members.add(op)
        stack.extend(op.inputs)

  def is_member(self, node):
    """Tells whether a Tensor or Operation belongs to the sub-graph.

    Args:
      node: A Tensor or an Operation.

    Returns:
      A Python bool.
    """
    return node in self._members

  def variable_uses(self, var):
    """Counts the ops of the sub-graph that consume a variable's value.

    For a variable read through a resource handle (the TensorFlow 2 default)
    every use reads the variable with its own read op, so the uses of all of
    the variable's read ops are added up, plus the ops that take the handle
    itself (such as the `ResourceGather` of an embedding lookup); for a
    reference variable the consumers of `var.value()` are counted, as in
    TensorFlow 1.

    Args:
      var: A `tf.Variable`.

    Returns:
      The number of ops in the sub-graph that take the variable's value as
      an input (an op using it twice counts twice).
    """
    if not _is_resource_variable(var):
      return self._count_member_consumers(var.value())
    uses = 0
    for op in var.handle.consumers():
      if op.type == "ReadVariableOp":
        uses += self._count_member_consumers(op.outputs[0])
      elif self.is_member(op):  # Reads the handle itself, e.g. a gather.
        uses += 1
    return uses

  def _count_member_consumers(self, tensor):
    """Counts the ops of the sub-graph that take `tensor` as an input."""
    return sum(1 for consumer in tensor.consumers() if self.is_member(consumer))

  def filter_list(self, node_list):
    """Keeps the members of the sub-graph, in order.

    Args:
      node_list: A list of Tensors or Operations.

    Returns:
      The list of elements of `node_list` that belong to the sub-graph.
    """
    return [node for node in node_list if self.is_member(node)]


def generate_random_signs(shape, dtype=tf.float32):
  """Draws a tensor of independent, equally likely +1/-1 entries.

  Args:
    shape: The shape of the result (list of ints or 1-D int Tensor).
    dtype: The dtype of the result.

  Returns:
    A Tensor of the given shape and dtype with entries in {-1, +1}.
  """
  ints = tf.random.uniform(shape, minval=0, maxval=2, dtype=tf.int32)
  return 2 * tf.cast(ints, dtype) - 1


def fwd_gradients(ys, xs, grad_xs=None, stop_gradients=None):
  """Computes forward-mode directional derivatives with reverse-mode passes.

  Returns `J v`, the Jacobian of `ys` with respect to `xs` applied to the
  tangents `grad_xs`. It applies `tf.gradients` twice: first with dummy
  cotangents `us` to get the linear map `u -> J^T u`, then differentiates that
  map with respect to `us` in the direction `grad_xs`. The dummy values are
  NaN so that any accidental dependence on them shows up.

  Args:
    ys: A Tensor or list of Tensors to differentiate.
    xs: A Tensor or list of Tensors to differentiate with respect to.
    grad_xs: Tangents, one per element of `xs` and shaped like it (None means
      all ones, as for `tf.gradients`' `grad_ys`).
    stop_gradients: Optional Tensors through which no derivative flows,
      passed to `tf.gradients`.

  Returns:
    A list of Tensors shaped like `ys`: the directional derivatives.
  """
  ys = list(ys) if isinstance(ys, (tuple, list)) else [ys]
  xs = list(xs) if isinstance(xs, (tuple, list)) else [xs]
  us = [tf.zeros_like(y) + float("nan") for y in ys]
  dydxs = tf.compat.v1.gradients(
    ys, xs, grad_ys=us, stop_gradients=stop_gradients
  )
  dydxs = _ops.dense_gradients(dydxs, like=xs)
  return tf.compat.v1.gradients(dydxs, us, grad_ys=grad_xs)
