"""Tests for kfac.utils against NumPy and the legacy expected values."""

from absl.testing import parameterized
import numpy as np
import pytest
import tensorflow as tf

from kfac import utils
import random_matrices


def _session():
  return tf.compat.v1.Session()


class SequenceDictTest(parameterized.TestCase):
  def test_init_empty(self):
    self.assertEqual(utils.SequenceDict().items(), [])

  def test_init_from_iterable(self):
    seq = utils.SequenceDict([("a", 1), ("b", 2)])
    self.assertEqual(sorted(seq.items()), [("a", 1), ("b", 2)])

  def test_get_single_and_multiple(self):
    seq = utils.SequenceDict([("a", 1), ("b", 2), ("c", 3)])
    self.assertEqual(seq["b"], 2)
    self.assertEqual(seq[("c", "a")], [3, 1])
    self.assertEqual(seq[["a", "b"]], [1, 2])

  def test_set_single_and_multiple(self):
    seq = utils.SequenceDict()
    seq["a"] = 1
    seq[("b", "c")] = (2, 3)
    self.assertEqual(sorted(seq.items()), [("a", 1), ("b", 2), ("c", 3)])

  def test_set_multiple_length_mismatch(self):
    seq = utils.SequenceDict()
    with self.assertRaisesRegex(ValueError, "val_or_vals"):
      seq[("a", "b")] = (1,)


class SetDefaultTest(parameterized.TestCase):
  def test_thunk_only_called_for_missing_key(self):
    calls = []

    def thunk():
      calls.append(1)
      return "new"

    dct = {"x": "old"}
    self.assertEqual(utils.setdefault(dct, "x", thunk), "old")
    self.assertEqual(calls, [])
    self.assertEqual(utils.setdefault(dct, "y", thunk), "new")
    self.assertEqual(utils.setdefault(dct, "y", thunk), "new")
    self.assertEqual(calls, [1])
    self.assertEqual(dct, {"x": "old", "y": "new"})


class SubGraphTest(parameterized.TestCase):
  def _sum_and_product(self):
    """Constants a and b, c = a + b, d = a * b, and the subgraph of c."""
    a = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    b = tf.constant([[5.0, 6.0], [7.0, 8.0]])
    c = a + b
    return a, b, c, a * b, utils.SubGraph((c,))

  def test_basic_graph(self):
    with tf.Graph().as_default():
      a, b, c, d, sub = self._sum_and_product()
      for member in (a, b, c, c.op):
        self.assertTrue(sub.is_member(member), member)
      self.assertFalse(sub.is_member(d))
      self.assertFalse(sub.is_member(d.op))

  def test_repeated_adds(self):
    with tf.Graph().as_default():
      a = tf.constant([[1.0, 2.0], [3.0, 4.0]])
      b = tf.constant([[5.0, 6.0], [7.0, 8.0]])
      c = a + b + a  # note the repeated use of a
      sub = utils.SubGraph((c,))
      for member in (a, b, c):
        self.assertTrue(sub.is_member(member), member)

  def test_filter_list(self):
    with tf.Graph().as_default():
      _, b, _, d, sub = self._sum_and_product()
      self.assertEqual(sub.filter_list([b, d]), [b])

  @parameterized.named_parameters(
    (
      "consumers",
      [2, 2],
      lambda w: tf.matmul(tf.constant([[1.0, 2.0]]), w),
      lambda w: w * 3.0,
    ),
    (
      "gathers_of_the_handle",
      [5, 3],
      lambda emb: tf.reduce_sum(tf.gather(emb, [0, 2, 2])),
      lambda emb: tf.gather(emb, [0, 2, 2]),
    ),
  )
  def test_variable_uses_counts_inside_only(self, shape, use, outside_use):
    with tf.Graph().as_default():
      var = tf.compat.v1.get_variable("var", shape)
      y = use(var) + tf.reduce_sum(var)  # two uses inside
      outside_use(var)  # one use outside the sub-graph
      sub = utils.SubGraph((y,))
      self.assertEqual(sub.variable_uses(var), 2)

  def test_variable_uses_of_unused_variable(self):
    with tf.Graph().as_default():
      w = tf.compat.v1.get_variable("w", [2, 2])
      v = tf.compat.v1.get_variable("v", [2, 2])
      y = tf.reduce_sum(w * 2.0)
      sub = utils.SubGraph((y,))
      self.assertEqual(sub.variable_uses(w), 1)
      self.assertEqual(sub.variable_uses(v), 0)


class UtilsTest(parameterized.TestCase):
  def _run(self, tensors):
    with _session() as sess:
      return sess.run(tensors)

  def test_fc_tuple_to_mat2d(self):
    with tf.Graph().as_default():
      w = tf.constant([[1.0, 2.0], [4.0, 3.0]])
      b = tf.constant([1.0, 2.0])
      mat = utils.layer_params_to_mat2d((w, b))
      self.assertEqual(mat.shape.as_list(), [3, 2])
      np.testing.assert_array_equal(self._run(mat), [[1, 2], [4, 3], [1, 2]])

  def test_fc_tensor_to_mat2d(self):
    with tf.Graph().as_default():
      w = tf.constant([[1.0, 2.0], [4.0, 3.0]])
      mat = utils.layer_params_to_mat2d(w)
      self.assertEqual(mat.shape.as_list(), [2, 2])
      np.testing.assert_array_equal(self._run(mat), [[1, 2], [4, 3]])

  def test_conv_tuple_to_mat2d(self):
    with tf.Graph().as_default():
      w = tf.ones([2, 2, 3, 4])
      b = tf.ones([4])
      mat = utils.layer_params_to_mat2d((w, b))
      self.assertEqual(mat.shape.as_list(), [13, 4])

  def test_mat2d_to_fc_tuple(self):
    with tf.Graph().as_default():
      template = (tf.ones([2, 2]), tf.ones([2]))
      mat = tf.constant([[5.0, 4.0], [3.0, 2.0], [1.0, 0.0]])
      w, b = utils.mat2d_to_layer_params(template, mat)
      w_val, b_val = self._run((w, b))
      np.testing.assert_array_equal(w_val, [[5, 4], [3, 2]])
      np.testing.assert_array_equal(b_val, [1, 0])

  def test_mat2d_to_fc_tensor(self):
    with tf.Graph().as_default():
      template = tf.ones([2, 2])
      mat = tf.constant([[5.0, 4.0], [3.0, 2.0]])
      w = utils.mat2d_to_layer_params(template, mat)
      np.testing.assert_array_equal(self._run(w), [[5, 4], [3, 2]])

  def test_mat2d_round_trip_conv(self):
    rng = np.random.RandomState(0)
    w_np = rng.randn(2, 3, 4, 5).astype(np.float32)
    b_np = rng.randn(5).astype(np.float32)
    with tf.Graph().as_default():
      mat = utils.layer_params_to_mat2d((tf.constant(w_np), tf.constant(b_np)))
      w, b = utils.mat2d_to_layer_params(
        (tf.constant(w_np), tf.constant(b_np)), mat
      )
      mat_val, w_val, b_val = self._run((mat, w, b))
    expected = np.vstack([w_np.reshape(-1, 5), b_np[None, :]])
    np.testing.assert_array_equal(mat_val, expected)
    np.testing.assert_array_equal(w_val, w_np)
    np.testing.assert_array_equal(b_val, b_np)

  def test_layer_params_to_mat2d_rejects_triples(self):
    with tf.Graph().as_default():
      with self.assertRaisesRegex(ValueError, "vector"):
        utils.layer_params_to_mat2d((tf.ones([2, 2]),) * 3)

  def test_kron(self):
    rng = np.random.RandomState(1)
    m1 = rng.randn(2, 3).astype(np.float32)
    m2 = rng.randn(4, 5).astype(np.float32)
    with tf.Graph().as_default():
      kron = utils.kronecker_product(tf.constant(m1), tf.constant(m2))
      self.assertEqual(kron.shape.as_list(), [8, 15])
      np.testing.assert_allclose(self._run(kron), np.kron(m1, m2), rtol=1e-6)

  @parameterized.named_parameters(
    ("mat1_vector", [3], [2, 2], "mat1"),
    ("mat2_rank3", [2, 2], [2, 2, 2], "mat2"),
  )
  def test_kron_rejects_non_matrices(self, shape1, shape2, name):
    with tf.Graph().as_default():
      with self.assertRaisesRegex(ValueError, name):
        utils.kronecker_product(tf.ones(shape1), tf.ones(shape2))

  def test_tensors_to_column(self):
    with tf.Graph().as_default():
      w = tf.constant([[1.0, 2.0], [4.0, 3.0]])
      b = tf.constant([1.0, 2.0])
      extra = tf.constant([[9.0], [8.0], [7.0], [6.0]])
      col_single = utils.tensors_to_column(w)
      col_fc = utils.tensors_to_column((w, b))
      col_three = utils.tensors_to_column([w, b, extra])
      self.assertEqual(col_single.shape.as_list(), [4, 1])
      self.assertEqual(col_fc.shape.as_list(), [6, 1])
      self.assertEqual(col_three.shape.as_list(), [10, 1])
      single, fc, three = self._run((col_single, col_fc, col_three))
    np.testing.assert_array_equal(single[:, 0], [1, 2, 4, 3])
    np.testing.assert_array_equal(fc[:, 0], [1, 2, 4, 3, 1, 2])
    np.testing.assert_array_equal(three[:, 0], [1, 2, 4, 3, 1, 2, 9, 8, 7, 6])

  def test_tensors_to_column_single_tensor_tuple_named_like_tf_1_4(self):
    # TF 1.4's concat of one tensor was an identity op named "concat"; the
    # name reaches factor variable scopes, e.g. ff_naivediag/concat_32/cov.
    with tf.Graph().as_default():
      w = tf.constant([[1.0, 2.0], [4.0, 3.0]])
      col = utils.tensors_to_column((w,))
      self.assertEqual(col.op.name, "concat")
      self.assertEqual(col.shape.as_list(), [4, 1])
      np.testing.assert_array_equal(self._run(col)[:, 0], [1, 2, 4, 3])

  def test_column_to_tensors(self):
    with tf.Graph().as_default():
      template_single = tf.ones([2, 2])
      template_tuple = [tf.ones([2, 2]), tf.ones([2])]
      col = tf.constant([[1.0], [2.0], [4.0], [3.0], [1.0], [2.0]])
      single = utils.column_to_tensors(template_single, col[:4])
      pair = utils.column_to_tensors(template_tuple, col)
      self.assertIsInstance(pair, tuple)
      single_val, (w_val, b_val) = self._run((single, pair))
    np.testing.assert_array_equal(single_val, [[1, 2], [4, 3]])
    np.testing.assert_array_equal(w_val, [[1, 2], [4, 3]])
    np.testing.assert_array_equal(b_val, [1, 2])

  def test_column_to_tensors_needs_static_shape(self):
    with tf.Graph().as_default():
      template = tf.compat.v1.placeholder(tf.float32, [None, 2])
      with self.assertRaisesRegex(ValueError, "tensors_template"):
        utils.column_to_tensors(template, tf.ones([4, 1]))

  def test_compute_pi(self):
    left = np.diag([1.0, 2.0, 3.0]).astype(np.float32)
    right = np.array([[4.0, 1.0], [1.0, 8.0]], np.float32)
    expected = np.sqrt((np.trace(left) / 3.0) / (np.trace(right) / 2.0))
    with tf.Graph().as_default():
      pi = utils.compute_pi(tf.constant(left), tf.constant(right))
      np.testing.assert_allclose(self._run(pi), expected, rtol=1e-6)

  @parameterized.named_parameters(
    ("cholesky", "cholesky"), ("matrix_inverse", "matrix_inverse")
  )
  def test_posdef_inv_funcs(self, method):
    x = random_matrices.random_psd(2, 4)
    damping = 0.1
    expected = np.linalg.inv(x + damping * np.eye(4))
    fn = {
      "cholesky": utils.posdef_inv_cholesky,
      "matrix_inverse": utils.posdef_inv_matrix_inverse,
    }[method]
    self.assertIs(utils.posdef_inv_funcs[method], fn)
    with tf.Graph().as_default():
      tensor = tf.constant(x, tf.float64)
      identity = tf.eye(4, dtype=tf.float64)
      result = fn(tensor, identity, tf.constant(damping, tf.float64))
      np.testing.assert_allclose(self._run(result), expected, rtol=1e-8)

  @parameterized.named_parameters(
    ("one_split_float64", 1025, np.float64),
    ("two_levels_float64", 2100, np.float64),
    ("one_split_float32", 1300, np.float32),
  )
  def test_posdef_inv_cholesky_blocked_for_large_matrices(self, size, dtype):
    # Above 1024 rows the inverse is L⁻ᵀL⁻¹ from 2x2 blocks of the Cholesky
    # factor; checked against numpy.linalg.inv and against the 2017
    # formulation cholesky_solve(cholesky(A + dI), I).
    rng = np.random.RandomState(size)
    a = rng.randn(size, size // 2)
    x = a.dot(a.T) / size  # rank size // 2: the damping matters
    damping = 0.05
    expected = np.linalg.inv(x + damping * np.eye(size))
    with tf.Graph().as_default():
      tensor = tf.constant(x, dtype)
      identity = tf.eye(size, dtype=dtype)
      damping_t = tf.constant(damping, dtype)
      result = utils.posdef_inv_cholesky(tensor, identity, damping_t)
      reference = tf.linalg.cholesky_solve(
        tf.linalg.cholesky(tensor + damping_t * identity), identity
      )
      value, reference_value = self._run([result, reference])
    self.assertEqual(value.dtype, dtype)
    scale = np.abs(expected).max()
    tolerance = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(value, expected, atol=tolerance * scale)
    np.testing.assert_allclose(value, reference_value, atol=tolerance * scale)
    # The off-diagonal blocks mirror each other exactly.
    half = size // 2
    np.testing.assert_array_equal(value[:half, half:], value[half:, :half].T)

  def test_posdef_inv_cholesky_blocked_failed_factorisation_is_nan(self):
    with tf.Graph().as_default():
      ones = tf.ones([1100, 1100], tf.float32)
      result = utils.posdef_inv_cholesky(
        ones, tf.eye(1100), tf.constant(-1.0, tf.float32)
      )
      value = self._run(result)
    self.assertTrue(np.all(np.isnan(value)))

  @parameterized.named_parameters(
    ("cholesky", "cholesky"), ("matrix_inverse", "matrix_inverse")
  )
  def test_posdef_inv_follows_method_constant(self, method):
    x = random_matrices.random_psd(3, 3)
    old = utils.POSDEF_INV_METHOD
    utils.POSDEF_INV_METHOD = method
    try:
      with tf.Graph().as_default():
        result = utils.posdef_inv(tf.constant(x, tf.float64), 0.5)
        value = self._run(result)
    finally:
      utils.POSDEF_INV_METHOD = old
    np.testing.assert_allclose(
      value, np.linalg.inv(x + 0.5 * np.eye(3)), rtol=1e-8
    )

  def test_generate_random_signs(self):
    with tf.Graph().as_default():
      tf.compat.v1.set_random_seed(0)
      signs = utils.generate_random_signs([200, 50])
      self.assertEqual(signs.dtype, tf.float32)
      value = self._run(signs)
    self.assertEqual(value.shape, (200, 50))
    self.assertTrue(np.all(np.abs(value) == 1.0))
    # 10,000 fair signs: the mean is within 4 standard errors (0.01) of 0.
    self.assertLess(abs(value.mean()), 0.04)

  def test_generate_random_signs_dtype(self):
    with tf.Graph().as_default():
      signs = utils.generate_random_signs([3], dtype=tf.float64)
      self.assertEqual(signs.dtype, tf.float64)

  def test_fwd_gradients_against_numpy_jacobian(self):
    rng = np.random.RandomState(4)
    a_np = rng.randn(3, 2).astype(np.float32)
    x_np = rng.randn(2).astype(np.float32)
    v_np = rng.randn(2).astype(np.float32)
    with tf.Graph().as_default():
      x = tf.constant(x_np)
      # y = tanh(A x): J = diag(1 - tanh(Ax)^2) A.
      y = tf.tanh(tf.linalg.matvec(tf.constant(a_np), x))
      (jv,) = utils.fwd_gradients([y], [x], grad_xs=[tf.constant(v_np)])
      value = self._run(jv)
    t = np.tanh(a_np.dot(x_np))
    expected = (1 - t**2) * a_np.dot(v_np)
    np.testing.assert_allclose(value, expected, rtol=1e-5)

  def test_fwd_gradients_unconnected_input_is_zero(self):
    with tf.Graph().as_default():
      x = tf.constant([1.0, 2.0])
      z = tf.constant([3.0])
      y = x * 2.0
      (jv,) = utils.fwd_gradients(
        [y], [x, z], grad_xs=[tf.ones([2]), tf.ones([1])]
      )
      np.testing.assert_allclose(self._run(jv), [2.0, 2.0])


if __name__ == "__main__":
  pytest.main([__file__])
