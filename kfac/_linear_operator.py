"""Linear operators with right and sparse products (release 1.9).

Release 1.9's factors return their covariance, inverse and matrix powers as
`tf.linalg.LinearOperator`s (`get_cov_as_linear_operator`, `get_matpower`)
built from the never-exported module
`tensorflow.contrib.kfac.python.ops.linear_operator`. That module adds two
things to TensorFlow's operators, which the Kronecker-factored blocks need
to compute `G · V · A` products from both sides and for `IndexedSlices`
(embedding) gradients:

* `matmul_right(x)`: the right product `x · A` (with `adjoint`: `x · Aᴴ`;
  with `adjoint_arg`: `xᴴ · A`), for a Tensor or an `IndexedSlices` `x`;
* `matmul(x)` accepting an `IndexedSlices` `x`, standing for a matrix of
  which only the rows `x.indices` are stored (in `x.values`).

Products, with `A` the operator (`[m, n]` for the left product, `[n, k]`
for the right one) and `X` the matrix `x` stands for:

| call | result | `IndexedSlices` `x` gives |
|---|---|---|
| `matmul(x)` | `A·X` | dense `A[:, idx] · x.values` (full matrix); rows of `x.values` scaled by `d[idx]` (diagonal, an `IndexedSlices`) |
| `matmul(x, adjoint=True)` | `Aᴴ·X` | as above with `Aᴴ` |
| `matmul_right(x)` | `X·A` | `IndexedSlices(x.values · A, idx)` (full matrix); columns of `x.values` scaled by `d` (diagonal) |
| `matmul_right(x, adjoint=True)` | `X·Aᴴ` | as above with `Aᴴ` |

With `adjoint_arg=True` an `IndexedSlices` `x` is first made dense (its
`dense_shape` must be set), since `Xᴴ` no longer stores whole rows.

Differences from 1.9, all where 1.9 raised: 1.9 left the full-matrix left
product and the diagonal right product of an `IndexedSlices` unimplemented
(`NotImplementedError`) and asserted that no adjoint flag was set for the
other sparse products; here every combination computes the product above.
The diagonal right product broadcasts the diagonal over the rows
(`x · diag(d)` also for batches of operators, where 1.9 multiplied
elementwise by the `[..., n]` diagonal).
"""

import tensorflow as tf

from kfac import _checks

__all__ = [
  "LinearOperatorExtras",
  "LinearOperatorFullMatrix",
  "LinearOperatorDiag",
]


def _check_sparse_operand(operator, x, contracted_axis, contracted_size):
  """Checks an `IndexedSlices` operand of a sparse product.

  Args:
    operator: The `LinearOperator`.
    x: The `IndexedSlices`.
    contracted_axis: 0 if `x`'s rows meet the operator, 1 if its columns do.
    contracted_size: The operator's static size on the contracted side, or
      None.

  Raises:
    ValueError: If `x` does not stand for a matrix, if the operator is a
      batch of matrices, or if the contracted sizes are statically different.
    TypeError: If the dtypes of `x` and the operator differ.
  """
  if x.indices.shape.rank != 1 or x.values.shape.rank != 2:
    raise ValueError(
      "x must stand for a matrix (IndexedSlices with indices of rank 1 and "
      "values of rank 2), got indices of shape {} and values of shape "
      "{}.".format(
        _checks.format_shape(x.indices), _checks.format_shape(x.values)
      )
    )
  if operator.shape.rank != 2:
    raise ValueError(
      "A product with an IndexedSlices needs a single matrix operator, got "
      "an operator of shape {}.".format(_checks.format_shape(operator.shape))
    )
  if x.dtype != operator.dtype:
    raise TypeError(
      "x must have the operator's dtype {}, got {}.".format(
        operator.dtype.name, x.dtype.name
      )
    )
  if contracted_axis == 1:
    size = _checks.static_dim(x.values, 1)
  else:
    dense_shape = (
      None if x.dense_shape is None else tf.get_static_value(x.dense_shape)
    )
    size = None if dense_shape is None else int(dense_shape[0])
  if None not in (size, contracted_size) and size != contracted_size:
    raise ValueError(
      "x does not fit the operator: it has {} {}, the operator {}.".format(
        size, "columns" if contracted_axis == 1 else "rows", contracted_size
      )
    )


def _densify(x):
  """The dense Tensor of an `IndexedSlices` (duplicate rows add up)."""
  if x.dense_shape is None:
    raise ValueError(
      "x must have a dense_shape when adjoint_arg=True: an IndexedSlices "
      "is made dense for that product."
    )
  return tf.convert_to_tensor(x)


class LinearOperatorExtras(object):
  """Mix-in adding right products and `IndexedSlices` operands.

  Put it before a `tf.linalg.LinearOperator` class among the bases. The
  subclass provides `_matmul_right(x, adjoint, adjoint_arg)` (dense `x`),
  `_matmul_sparse(x, adjoint)` and `_matmul_right_sparse(x, adjoint)`
  (`IndexedSlices` `x`, already checked).
  """

  def matmul(self, x, adjoint=False, adjoint_arg=False, name="matmul"):
    """Left product `op · x`, `opᴴ · x` (adjoint) or `op · xᴴ` (adjoint_arg).

    Args:
      x: A Tensor `[..., n, r]` (or `[..., r, n]` with `adjoint_arg`), a
        `LinearOperator`, or an `IndexedSlices` standing for an `[n, r]`
        matrix (only the rows `x.indices` stored).
      adjoint: Whether to multiply by the operator's adjoint.
      adjoint_arg: Whether to multiply by the adjoint of `x`.
      name: Name scope of the ops.

    Returns:
      A Tensor `[..., m, r]` (a `LinearOperator` for a `LinearOperator`
      `x`); for an `IndexedSlices` `x` see the module docstring.

    Raises:
      TypeError: If `x`'s dtype is not the operator's.
      ValueError: If the inner dimensions are statically incompatible, or
        an `IndexedSlices` `x` does not stand for a matrix.
    """
    if not isinstance(x, tf.IndexedSlices):
      return super(LinearOperatorExtras, self).matmul(
        x, adjoint=adjoint, adjoint_arg=adjoint_arg, name=name
      )
    with tf.compat.v1.name_scope(self.name):
      with tf.compat.v1.name_scope(name, values=[x.values, x.indices]):
        if adjoint_arg:
          return super(LinearOperatorExtras, self).matmul(
            _densify(x), adjoint=adjoint, adjoint_arg=True
          )
        inner = self.range_dimension if adjoint else self.domain_dimension
        _check_sparse_operand(self, x, 0, tf.compat.dimension_value(inner))
        return self._matmul_sparse(x, adjoint=adjoint)

  def matmul_right(self, x, adjoint=False, adjoint_arg=False, name="matmul"):
    """Right product `x · op`, `x · opᴴ` (adjoint) or `xᴴ · op` (adjoint_arg).

    Args:
      x: A Tensor `[..., r, m]` (or `[..., m, r]` with `adjoint_arg`), or an
        `IndexedSlices` standing for an `[r, m]` matrix (only the rows
        `x.indices` stored).
      adjoint: Whether to multiply by the operator's adjoint.
      adjoint_arg: Whether to multiply by the adjoint of `x`.
      name: Name scope of the ops.

    Returns:
      A Tensor `[..., r, n]`; for an `IndexedSlices` `x` an `IndexedSlices`
      with the rows of `x` (see the module docstring).

    Raises:
      TypeError: If `x`'s dtype is not the operator's.
      ValueError: If the inner dimensions are statically incompatible, or
        an `IndexedSlices` `x` does not stand for a matrix.
    """
    with tf.compat.v1.name_scope(self.name):
      values = [x.values, x.indices] if isinstance(x, tf.IndexedSlices) else [x]
      with tf.compat.v1.name_scope(name, values=values):
        inner = self.domain_dimension if adjoint else self.range_dimension
        inner = tf.compat.dimension_value(inner)
        if isinstance(x, tf.IndexedSlices):
          if not adjoint_arg:
            _check_sparse_operand(self, x, 1, inner)
            return self._matmul_right_sparse(x, adjoint=adjoint)
          x = _densify(x)
        x = tf.convert_to_tensor(x, name="x")
        if x.dtype != self.dtype:
          raise TypeError(
            "x must have the operator's dtype {}, got {}.".format(
              self.dtype.name, x.dtype.name
            )
          )
        size = _checks.static_dim(x, -2 if adjoint_arg else -1)
        if None not in (size, inner) and size != inner:
          raise ValueError(
            "x does not fit the operator: its inner dimension is {}, the "
            "operator's {}.".format(size, inner)
          )
        return self._matmul_right(x, adjoint=adjoint, adjoint_arg=adjoint_arg)


class LinearOperatorFullMatrix(
  LinearOperatorExtras, tf.linalg.LinearOperatorFullMatrix
):
  """`tf.linalg.LinearOperatorFullMatrix` with right and sparse products.

  The constructor is TensorFlow's (`matrix`, the self-adjoint / definiteness
  hints, `name`).
  """

  def _matmul_right(self, x, adjoint=False, adjoint_arg=False):
    """`x · A` by a broadcasting matmul, with the adjoint flags."""
    return tf.linalg.matmul(
      x, self.to_dense(), adjoint_a=adjoint_arg, adjoint_b=adjoint
    )

  def _matmul_sparse(self, x, adjoint=False):
    """Dense `A · X`: the columns `x.indices` of `A` times `x.values`."""
    matrix = self.to_dense()
    if adjoint:
      return tf.linalg.matmul(
        tf.gather(matrix, x.indices, axis=0), x.values, adjoint_a=True
      )
    return tf.linalg.matmul(tf.gather(matrix, x.indices, axis=1), x.values)

  def _matmul_right_sparse(self, x, adjoint=False):
    """`X · A` keeping the rows of `x`: an `IndexedSlices`."""
    new_values = tf.linalg.matmul(x.values, self.to_dense(), adjoint_b=adjoint)
    dense_shape = None
    if x.dense_shape is not None:
      if adjoint:
        cols = self.range_dimension_tensor()
      else:
        cols = self.domain_dimension_tensor()
      dense_shape = tf.stack(
        [x.dense_shape[0], tf.cast(cols, x.dense_shape.dtype)]
      )
    return tf.IndexedSlices(new_values, x.indices, dense_shape=dense_shape)


class LinearOperatorDiag(LinearOperatorExtras, tf.linalg.LinearOperatorDiag):
  """`tf.linalg.LinearOperatorDiag` with right and sparse products.

  The constructor is TensorFlow's (`diag`, the hints, `name`).
  """

  def _diag_for(self, adjoint):
    """The diagonal, conjugated for the adjoint."""
    return tf.math.conj(self.diag) if adjoint else self.diag

  def _matmul_right(self, x, adjoint=False, adjoint_arg=False):
    """`x · diag(d)`: column `j` of `x` (or `xᴴ`) scaled by `d[j]`."""
    if adjoint_arg:
      x = tf.linalg.adjoint(x)
    return x * self._diag_for(adjoint)[..., tf.newaxis, :]

  def _matmul_sparse(self, x, adjoint=False):
    """`diag(d) · X`: row `x.indices[i]` scaled by `d[x.indices[i]]`."""
    scale = tf.gather(self._diag_for(adjoint), x.indices)
    return tf.IndexedSlices(
      scale[:, tf.newaxis] * x.values, x.indices, dense_shape=x.dense_shape
    )

  def _matmul_right_sparse(self, x, adjoint=False):
    """`X · diag(d)`: the stored rows with column `j` scaled by `d[j]`."""
    return tf.IndexedSlices(
      x.values * self._diag_for(adjoint)[tf.newaxis, :],
      x.indices,
      dense_shape=x.dense_shape,
    )
