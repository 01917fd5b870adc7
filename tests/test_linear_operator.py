"""Tests for kfac._linear_operator (1.9's `linear_operator` module).

The oracle multiplies dense NumPy matrices: the `IndexedSlices` operands
and results are made dense entry by entry (duplicate rows add up), and
adjoints are conjugate transposes. Complex operators check that the
adjoint conjugates.
"""

import itertools

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from kfac import _linear_operator as lo

_INDICES = [2, 0, 2]  # a duplicate row: stored rows add up


def _dense_of_rows(values, indices, num_rows):
  """The dense matrix whose row `indices[i]` accumulates `values[i]`."""
  out = np.zeros((num_rows, values.shape[1]), dtype=values.dtype)
  for i, row in enumerate(indices):
    for j in range(values.shape[1]):
      out[row, j] += values[i, j]
  return out


def _adj(mat):
  return np.conj(np.transpose(mat))


def _random(rng, shape, dtype):
  real = rng.randn(*shape)
  if dtype == np.complex128:
    return real + 1j * rng.randn(*shape)
  return real.astype(dtype)


def _operator(kind, rng, dtype):
  """(operator, its dense NumPy matrix)."""
  if kind == "full":
    matrix = _random(rng, (3, 4), dtype)
    return lo.LinearOperatorFullMatrix(tf.constant(matrix)), matrix
  diag = _random(rng, (4,), dtype)
  dense = np.zeros((4, 4), dtype=dtype)
  for i in range(4):
    dense[i, i] = diag[i]
  return lo.LinearOperatorDiag(tf.constant(diag)), dense


def _product_cases():
  for kind, method, sparse, adjoint, adjoint_arg in itertools.product(
    ("full", "diag"),
    ("matmul", "matmul_right"),
    (False, True),
    (False, True),
    (False, True),
  ):
    name = "_".join(
      [kind, method, "sparse" if sparse else "dense"]
      + (["adjoint"] if adjoint else [])
      + (["adjoint_arg"] if adjoint_arg else [])
    )
    yield (name, kind, method, sparse, adjoint, adjoint_arg)


class ProductsTest(parameterized.TestCase):
  @parameterized.named_parameters(*_product_cases())
  def testAgainstDenseProduct(self, kind, method, sparse, adjoint, adjoint_arg):
    rng = np.random.RandomState(0)
    dtype = np.complex128
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      operator, a = _operator(kind, rng, dtype)
      op_a = _adj(a) if adjoint else a
      # The side of arg(X) that meets op(A), and the matrix X itself.
      inner = op_a.shape[1] if method == "matmul" else op_a.shape[0]
      x_shape = (inner, 3) if method == "matmul" else (3, inner)
      if adjoint_arg:
        x_shape = x_shape[::-1]
      if sparse:
        values = _random(rng, (len(_INDICES), x_shape[1]), dtype)
        x_dense = _dense_of_rows(values, _INDICES, x_shape[0])
        x = tf.IndexedSlices(
          tf.constant(values),
          tf.constant(_INDICES, tf.int64),
          dense_shape=tf.constant(x_shape, tf.int64),
        )
      else:
        x_dense = _random(rng, x_shape, dtype)
        x = tf.constant(x_dense)
      arg_x = _adj(x_dense) if adjoint_arg else x_dense
      expected = op_a @ arg_x if method == "matmul" else arg_x @ op_a
      result = getattr(operator, method)(
        x, adjoint=adjoint, adjoint_arg=adjoint_arg
      )
      out = sess.run(result)
    if isinstance(result, tf.IndexedSlices):
      # Sparse results keep the rows of x (left diagonal, right products).
      self.assertTrue(sparse and not adjoint_arg)
      self.assertEqual(list(out.dense_shape), list(expected.shape))
      out = _dense_of_rows(out.values, out.indices, expected.shape[0])
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)

  @parameterized.named_parameters(("full", "full"), ("diag", "diag"))
  def testBatchRightProduct(self, kind):
    rng = np.random.RandomState(1)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      if kind == "full":
        mats = rng.randn(2, 3, 4)
        operator = lo.LinearOperatorFullMatrix(tf.constant(mats))
      else:
        diags = rng.randn(2, 3)
        operator = lo.LinearOperatorDiag(tf.constant(diags))
        mats = np.zeros((2, 3, 3))
        for b, i in itertools.product(range(2), range(3)):
          mats[b, i, i] = diags[b, i]
      x = rng.randn(2, 5, 3)
      out = sess.run(operator.matmul_right(tf.constant(x)))
    for b in range(2):
      np.testing.assert_allclose(out[b], x[b] @ mats[b], rtol=1e-12)

  def testLinearOperatorArgumentComposes(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      a = np.arange(6.0).reshape(2, 3)
      b = np.arange(12.0).reshape(3, 4)
      composed = lo.LinearOperatorFullMatrix(tf.constant(a)).matmul(
        tf.linalg.LinearOperatorFullMatrix(tf.constant(b))
      )
      self.assertIsInstance(composed, tf.linalg.LinearOperator)
      np.testing.assert_allclose(sess.run(composed.to_dense()), a @ b)

  def testFloat32SparseRightProductIsIndexedSlices(self):
    rng = np.random.RandomState(2)
    a = rng.randn(3, 4).astype(np.float32)
    values = rng.randn(2, 3).astype(np.float32)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      result = lo.LinearOperatorFullMatrix(tf.constant(a)).matmul_right(
        tf.IndexedSlices(tf.constant(values), tf.constant([4, 1]))
      )
      self.assertIsInstance(result, tf.IndexedSlices)
      self.assertIsNone(result.dense_shape)
      out = sess.run(result)
    np.testing.assert_array_equal(out.indices, [4, 1])
    np.testing.assert_allclose(out.values, values @ a, rtol=1e-6)


class ClassesTest(absltest.TestCase):
  def testBases(self):
    self.assertEqual(
      lo.LinearOperatorFullMatrix.__bases__,
      (lo.LinearOperatorExtras, tf.linalg.LinearOperatorFullMatrix),
    )
    self.assertEqual(
      lo.LinearOperatorDiag.__bases__,
      (lo.LinearOperatorExtras, tf.linalg.LinearOperatorDiag),
    )


def _sparse(values, indices, dense_shape=None):
  return tf.IndexedSlices(
    tf.constant(values),
    tf.constant(indices, tf.int64),
    dense_shape=None
    if dense_shape is None
    else tf.constant(dense_shape, tf.int64),
  )


class ErrorsTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("dense_left", "matmul", lambda: tf.zeros([5, 2], tf.float64)),
    ("dense_right", "matmul_right", lambda: tf.zeros([2, 5], tf.float64)),
    (
      "sparse_left",
      "matmul",
      lambda: _sparse(np.zeros((1, 2)), [0], [5, 2]),
    ),
    ("sparse_right", "matmul_right", lambda: _sparse(np.zeros((1, 5)), [0])),
  )
  def testInnerDimensionMismatch(self, method, make_x):
    with tf.Graph().as_default():
      operator = lo.LinearOperatorFullMatrix(tf.zeros([3, 4], tf.float64))
      with self.assertRaises(ValueError):
        getattr(operator, method)(make_x())

  @parameterized.named_parameters(
    ("dense_left", "matmul", lambda: tf.zeros([4, 2])),
    ("dense_right", "matmul_right", lambda: tf.zeros([2, 3])),
    (
      "sparse_left",
      "matmul",
      lambda: _sparse(np.zeros((1, 2), np.float32), [0]),
    ),
    (
      "sparse_right",
      "matmul_right",
      lambda: _sparse(np.zeros((1, 3), np.float32), [0]),
    ),
  )
  def testDtypeMismatch(self, method, make_x):
    with tf.Graph().as_default():
      operator = lo.LinearOperatorFullMatrix(tf.zeros([3, 4], tf.float64))
      with self.assertRaises(TypeError):
        getattr(operator, method)(make_x())

  def testSparseAdjointArgNeedsDenseShape(self):
    with tf.Graph().as_default():
      operator = lo.LinearOperatorDiag(tf.ones([3], tf.float64))
      with self.assertRaisesRegex(ValueError, "dense_shape"):
        operator.matmul(_sparse(np.zeros((1, 3)), [0]), adjoint_arg=True)

  def testSparseNeedsSingleMatrixOperator(self):
    with tf.Graph().as_default():
      operator = lo.LinearOperatorDiag(tf.ones([2, 3], tf.float64))
      with self.assertRaisesRegex(ValueError, "single matrix"):
        operator.matmul_right(_sparse(np.zeros((1, 3)), [0]))

  def testSparseMustStandForAMatrix(self):
    with tf.Graph().as_default():
      operator = lo.LinearOperatorDiag(tf.ones([3], tf.float64))
      with self.assertRaisesRegex(ValueError, "matrix"):
        operator.matmul(_sparse(np.zeros((1, 3, 1)), [0]))


if __name__ == "__main__":
  absltest.main()
