"""Tests for kfac.fisher_factors against plain NumPy oracles.

Each covariance is checked after several moving-average updates against an
oracle written with explicit loops; the legacy expected values of the
TensorFlow 1.4 era kernel test are checked as they were.
"""

import math

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from kfac import _nonfinite
from kfac import fisher_factors as ff

_GLOBALS = (
  "INIT_COVARIANCES_AT_ZERO",
  "ZERO_DEBIAS",
  "EIGENVALUE_DECOMPOSITION_THRESHOLD",
  "EIGENVALUE_CLIPPING_THRESHOLD",
  "_CONVDIAG_METHOD",
  "_CONVDIAG_CHUNK_BYTES",
)

# The ConvDiagonalFactor formulations available on this machine.
_CONVDIAG_METHODS = ["windows"] + (
  ["grouped_conv"] if ff._grouped_filter_gradient_supported() else []
)


class _TestCase(parameterized.TestCase):
  """Restores the module constants after every test."""

  def setUp(self):
    super(_TestCase, self).setUp()
    saved = {name: getattr(ff, name) for name in _GLOBALS}

    def restore():
      for name, value in saved.items():
        setattr(ff, name, value)

    self.addCleanup(restore)


def _init(sess):
  sess.run(tf.compat.v1.global_variables_initializer())


# ---------------------------------------------------------------------------
# NumPy oracles.
# ---------------------------------------------------------------------------


def _ema(initial, values, decay, zero_debias=False):
  """Moving average of `values` starting at `initial` (optionally debiased)."""
  cov = np.array(initial, dtype=np.float64)
  biased = np.zeros_like(cov)
  for step, value in enumerate(values, start=1):
    if zero_debias:
      biased = decay * biased + (1 - decay) * value
      cov = biased / (1 - decay**step)
    else:
      cov = decay * cov + (1 - decay) * value
  return cov


def _same_or_valid(size, kernel, stride, padding):
  """(output size, padding before) of a conv along one axis, plain formulas."""
  if padding == "SAME":
    out = int(math.ceil(size / stride))
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2
  out = int(math.ceil((size - kernel + 1) / stride))
  return out, 0


def _conv_diag_oracle(x, grads_list, kernel, strides, padding, has_bias):
  """Batch mean of squared per-example filter (and bias) gradients.

  Per example b, G[di, dj, c, o] = sum over output positions (i, j) of
  x[b, i*sh + di - pad_top, j*sw + dj - pad_left, c] * g[b, i, j, o], the
  input being zero outside the image; sources are summed.
  """
  batch, height, width, in_channels = x.shape
  kh, kw = kernel
  sh, sw = strides
  out_h, pad_top = _same_or_valid(height, kh, sh, padding)
  out_w, pad_left = _same_or_valid(width, kw, sw, padding)
  total = 0.0
  for g in grads_list:
    assert g.shape[1:3] == (out_h, out_w)
    out_channels = g.shape[3]
    for b in range(batch):
      grad_w = np.zeros((kh, kw, in_channels, out_channels))
      grad_b = np.zeros(out_channels)
      for i in range(out_h):
        for j in range(out_w):
          grad_b += g[b, i, j]
          for di in range(kh):
            for dj in range(kw):
              row = i * sh + di - pad_top
              col = j * sw + dj - pad_left
              if 0 <= row < height and 0 <= col < width:
                grad_w[di, dj] += np.outer(x[b, row, col], g[b, i, j])
      per_example = grad_w.reshape(-1, out_channels)
      if has_bias:
        per_example = np.vstack([per_example, grad_b[None]])
      total = total + per_example**2
  return total / batch


def _patches_oracle(x, kernel, strides, padding):
  """Image patches `[B * out_h * out_w, kh * kw * C]`, rows (b, i, j)."""
  batch, height, width, in_channels = x.shape
  kh, kw = kernel
  out_h, pad_top = _same_or_valid(height, kh, strides[0], padding)
  out_w, pad_left = _same_or_valid(width, kw, strides[1], padding)
  rows = []
  for b in range(batch):
    for i in range(out_h):
      for j in range(out_w):
        patch = np.zeros((kh, kw, in_channels))
        for di in range(kh):
          for dj in range(kw):
            row = i * strides[0] + di - pad_top
            col = j * strides[1] + dj - pad_left
            if 0 <= row < height and 0 <= col < width:
              patch[di, dj] = x[b, row, col]
        rows.append(patch.reshape(-1))
  return np.array(rows)


def _second_moment(rows):
  """Sum of outer products of the rows divided by their count."""
  total = np.zeros((rows.shape[1], rows.shape[1]))
  for r in rows:
    total += np.outer(r, r)
  return total / rows.shape[0]


def _rand(rng, *shape):
  return rng.randn(*shape).astype(np.float32)


# ---------------------------------------------------------------------------
# Test dummies (as in the legacy kernel test).
# ---------------------------------------------------------------------------


class _FisherFactorTestingDummy(ff.FisherFactor):
  """Minimal FisherFactor: no covariance variable."""

  @property
  def _var_scope(self):
    return "dummy/a_b_c"

  @property
  def _cov_shape(self):
    raise NotImplementedError

  @property
  def _num_sources(self):
    return 1

  def _compute_new_cov(self, idx=0):
    raise NotImplementedError

  def instantiate_covariance(self):
    pass


class _InverseProvidingFactorTestingDummy(ff.InverseProvidingFactor):
  """InverseProvidingFactor whose `cov` is set by the test."""

  def __init__(self, shape):
    self._shape = shape
    super(_InverseProvidingFactorTestingDummy, self).__init__()

  @property
  def _var_scope(self):
    return "dummy/a_b_c"

  @property
  def _cov_shape(self):
    return self._shape

  @property
  def _num_sources(self):
    return 1

  def _compute_new_cov(self, idx=0):
    raise NotImplementedError


# ---------------------------------------------------------------------------
# Module functions and constants.
# ---------------------------------------------------------------------------


class NumericalUtilsTest(_TestCase):
  def test_compute_cov_against_numpy(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = np.random.RandomState(0).randn(100, 3).astype(np.float32)
      cov = sess.run(ff._compute_cov(tf.constant(x)))
      np.testing.assert_allclose(cov, x.T @ x / 100, rtol=1e-5, atol=1e-5)

  def test_compute_cov_alternative_normalizer(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = np.random.RandomState(0).randn(100, 3).astype(np.float32)
      cov = sess.run(ff._compute_cov(tf.constant(x), normalizer=10))
      np.testing.assert_allclose(cov, x.T @ x / 10, rtol=1e-5, atol=1e-5)

  def test_append_homog(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      a = np.arange(12, dtype=np.float32).reshape(3, 4)
      out = sess.run(ff._append_homog(tf.constant(a)))
      np.testing.assert_array_equal(out, np.hstack([a, np.ones((3, 1))]))

  def test_set_global_constants(self):
    ff.set_global_constants(
      init_covariances_at_zero=True,
      zero_debias=True,
      eigenvalue_decomposition_threshold=5,
      eigenvalue_clipping_threshold=0.25,
    )
    self.assertTrue(ff.INIT_COVARIANCES_AT_ZERO)
    self.assertTrue(ff.ZERO_DEBIAS)
    self.assertEqual(ff.EIGENVALUE_DECOMPOSITION_THRESHOLD, 5)
    self.assertEqual(ff.EIGENVALUE_CLIPPING_THRESHOLD, 0.25)
    ff.set_global_constants()  # None everywhere: nothing changes.
    self.assertEqual(ff.EIGENVALUE_DECOMPOSITION_THRESHOLD, 5)
    ff.set_global_constants(zero_debias=False)
    self.assertFalse(ff.ZERO_DEBIAS)
    self.assertTrue(ff.INIT_COVARIANCES_AT_ZERO)

  def test_set_global_constants_rejects_negative_clipping(self):
    with self.assertRaisesRegex(ValueError, "eigenvalue_clipping_threshold"):
      ff.set_global_constants(eigenvalue_clipping_threshold=-1.0)

  def test_defaults(self):
    self.assertFalse(ff.INIT_COVARIANCES_AT_ZERO)
    self.assertFalse(ff.ZERO_DEBIAS)
    self.assertEqual(ff.EIGENVALUE_DECOMPOSITION_THRESHOLD, 2)
    self.assertEqual(ff.EIGENVALUE_CLIPPING_THRESHOLD, 0.0)

  @parameterized.named_parameters(("default", False), ("at_zero", True))
  def test_initializers(self, at_zero):
    ff.set_global_constants(init_covariances_at_zero=at_zero)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      inv, cov, diag = sess.run(
        [
          ff.inverse_initializer([3, 3], tf.float32),
          ff.covariance_initializer([3, 3], tf.float32),
          ff.diagonal_covariance_initializer([3, 2], tf.float32, None),
        ]
      )
    np.testing.assert_array_equal(inv, np.eye(3))
    np.testing.assert_array_equal(
      cov, np.zeros((3, 3)) if at_zero else np.eye(3)
    )
    np.testing.assert_array_equal(
      diag, np.zeros((3, 2)) if at_zero else np.ones((3, 2))
    )


class NameStringUtilFunctionTest(_TestCase):
  def _gradient(self):
    x = tf.constant([[1.0, 2.0]])
    w = tf.constant([[3.0], [4.0]])
    y = tf.linalg.matmul(x, w)
    return tf.compat.v1.gradients(y, w)[0]

  def test_scope_string_from_params_single_tensor(self):
    with tf.Graph().as_default():
      self.assertEqual(
        ff.scope_string_from_params(self._gradient()),
        "gradients_MatMul_grad_MatMul_1",
      )

  def test_scope_string_from_params_multiple_tensors(self):
    with tf.Graph().as_default():
      x = tf.constant(1.0)
      y = tf.constant(2.0)
      self.assertEqual(ff.scope_string_from_params((x, y)), "Const_Const_1")

  def test_scope_string_from_params_multiple_types(self):
    with tf.Graph().as_default():
      x = tf.constant(1.0)
      y = tf.constant(2.0)
      self.assertEqual(
        ff.scope_string_from_params([[1, 2, 3], "foo", True, 4, (x, y)]),
        "1-2-3_foo_True_4_Const__Const_1",
      )

  @parameterized.named_parameters(("float", 1.5), ("none", None), ("dict", {}))
  def test_scope_string_from_params_unsupported_type(self, value):
    with tf.Graph().as_default():
      x = tf.constant(1.0)
      with self.assertRaisesRegex(ValueError, "unsupported param type"):
        ff.scope_string_from_params([[1, 2, 3], "foo", True, 4, (x,), value])

  def test_scope_string_from_name(self):
    with tf.Graph().as_default():
      self.assertEqual(
        ff.scope_string_from_name(self._gradient()),
        "gradients_MatMul_grad_MatMul_1",
      )
      x = tf.constant(1.0, name="a")
      y = tf.constant(2.0, name="b")
      self.assertEqual(ff.scope_string_from_name([x, (y, x)]), "a__b__a")

  def test_scalar_or_tensor_to_string(self):
    with tf.Graph().as_default():
      self.assertEqual(ff.scalar_or_tensor_to_string(5.0), repr(5.0))
      self.assertEqual(ff.scalar_or_tensor_to_string(0.1), "0.1")
      self.assertEqual(ff.scalar_or_tensor_to_string(1e-5), "1e-05")
      self.assertEqual(ff.scalar_or_tensor_to_string(2), "2")
      g = self._gradient()
      self.assertEqual(
        ff.scalar_or_tensor_to_string(g), "gradients_MatMul_grad_MatMul_1"
      )


# ---------------------------------------------------------------------------
# FisherFactor / InverseProvidingFactor.
# ---------------------------------------------------------------------------


class FisherFactorTest(_TestCase):
  def test_make_inverse_update_ops(self):
    with tf.Graph().as_default():
      factor = _FisherFactorTestingDummy()
      self.assertEmpty(factor.make_inverse_update_ops())

  def test_abstract(self):
    with self.assertRaises(TypeError):
      ff.FisherFactor()  # pylint: disable=abstract-class-instantiated

  def test_hierarchy(self):
    for cls in (
      ff.FullFactor,
      ff.FullyConnectedKroneckerFactor,
      ff.ConvInputKroneckerFactor,
      ff.ConvOutputKroneckerFactor,
    ):
      self.assertEqual(cls.__bases__, (ff.InverseProvidingFactor,))
    for cls in (
      ff.NaiveDiagonalFactor,
      ff.FullyConnectedDiagonalFactor,
      ff.ConvDiagonalFactor,
    ):
      self.assertEqual(cls.__bases__, (ff.DiagonalFactor,))
    self.assertEqual(ff.InverseProvidingFactor.__bases__, (ff.FisherFactor,))
    self.assertEqual(ff.DiagonalFactor.__bases__, (ff.FisherFactor,))


class InverseProvidingFactorTest(_TestCase):
  def test_register_damped_inverse(self):
    with tf.Graph().as_default():
      factor = _InverseProvidingFactorTestingDummy([2, 2])
      dampings = 0.1, 1e-1, 0.00001, 1e-5
      for d in dampings:
        factor.register_damped_inverse(d)
      self.assertEqual({0.1, 1e-5}, set(factor._inverses_by_damping))
      variables = tf.compat.v1.get_collection(
        tf.compat.v1.GraphKeys.GLOBAL_VARIABLES, scope="dummy/a_b_c"
      )
      # One cov variable plus the two inverses.
      inverses = [v for v in variables if "inv_damp" in v.name]
      self.assertLen(inverses, 2)
      self.assertEqual(factor.get_inverse(0.1), factor.get_inverse(1e-1))
      self.assertIsNot(factor.get_inverse(0.1), factor.get_inverse(1e-5))
      for v in inverses:
        self.assertEqual(v.shape.as_list(), [2, 2])
      self.assertEqual(
        sorted(v.op.name for v in inverses),
        ["dummy/a_b_c/inv_damp0.1", "dummy/a_b_c/inv_damp1e-05"],
      )
      self.assertEmpty(tf.compat.v1.trainable_variables())

  def test_register_matpower(self):
    with tf.Graph().as_default():
      factor = _InverseProvidingFactorTestingDummy([3, 3])
      factor.register_matpower(1, 0.5)
      factor.register_matpower(2, 0.5)
      factor.register_matpower(1, 0.5)
      variables = [
        v for v in tf.compat.v1.global_variables() if "matpower" in v.name
      ]
      self.assertEqual(
        [v.op.name for v in variables],
        [
          "dummy/a_b_c/matpower_exp1_damp0.5",
          "dummy/a_b_c/matpower_exp2_damp0.5",
        ],
      )
      self.assertEqual(factor.get_matpower(1, 0.5), variables[0])
      self.assertEqual(factor.get_matpower(2, 0.5), variables[1])
      for v in variables:
        self.assertEqual(v.shape.as_list(), [3, 3])

  def test_tensor_damping_names(self):
    with tf.Graph().as_default():
      factor = _InverseProvidingFactorTestingDummy([2, 2])
      damping = tf.constant(2.0) * tf.constant(3.0)
      factor.register_damped_inverse(damping)
      factor.register_damped_inverse(damping)
      factor.register_matpower(tf.constant(-1.0, name="e"), damping)
      names = sorted(v.op.name for v in tf.compat.v1.global_variables())
      self.assertEqual(
        names,
        [
          "dummy/a_b_c/cov",
          "dummy/a_b_c/inv_dampmul",
          "dummy/a_b_c/matpower_expe_dampmul",
        ],
      )

  def test_get_unregistered_raises_key_error(self):
    with tf.Graph().as_default():
      factor = _InverseProvidingFactorTestingDummy([2, 2])
      with self.assertRaises(KeyError):
        factor.get_inverse(0.1)
      with self.assertRaises(KeyError):
        factor.get_matpower(2, 0.1)
      self.assertIsNone(factor.get_eigendecomp())

  def test_make_inverse_update_ops_many_inverses_eigen_decomp(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      cov = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
      factor = _InverseProvidingFactorTestingDummy(cov.shape)
      factor._cov = tf.constant(cov, dtype=tf.float32)
      for i in range(1, ff.EIGENVALUE_DECOMPOSITION_THRESHOLD + 1):
        factor.register_damped_inverse(1.0 / i)
      ops = factor.make_inverse_update_ops()
      self.assertLen(ops, ff.EIGENVALUE_DECOMPOSITION_THRESHOLD)
      self.assertIsNotNone(factor.get_eigendecomp())
      _init(sess)
      sess.run(ops)
      new_invs = sess.run(
        [
          factor.get_inverse(1.0 / i)
          for i in range(1, ff.EIGENVALUE_DECOMPOSITION_THRESHOLD + 1)
        ]
      )
      for i in range(len(new_invs)):
        for j in range(i + 1, len(new_invs)):
          self.assertFalse(np.allclose(new_invs[i], new_invs[j]))
      # eigh reads the lower triangle, i.e. the matrix [[1, 3], [3, 4]];
      # its negative eigenvalue is clipped to 0.
      w, v = np.linalg.eigh(np.array([[1.0, 3.0], [3.0, 4.0]]))
      w = np.maximum(w, 0.0)
      for i, inv in enumerate(new_invs, start=1):
        np.testing.assert_allclose(
          inv, (v / (w + 1.0 / i)) @ v.T, rtol=1e-4, atol=1e-5
        )

  def test_make_inverse_update_ops_mat_power_eigen_decomp(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      cov = np.array([[6.0, 2.0], [2.0, 4.0]], dtype=np.float32)
      factor = _InverseProvidingFactorTestingDummy(cov.shape)
      factor._cov = tf.constant(cov, dtype=tf.float32)
      factor.register_matpower(2, 0.5)
      ops = factor.make_inverse_update_ops()
      self.assertLen(ops, 1)
      _init(sess)
      sess.run(ops)
      matpower = sess.run(factor.get_matpower(2, 0.5))
      expected = np.linalg.matrix_power(cov + 0.5 * np.eye(2), 2)
      np.testing.assert_allclose(matpower, expected, rtol=1e-5)

  def test_make_inverse_update_ops_no_eigen_decomp(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      cov = np.array([[5.0, 2.0], [2.0, 4.0]], dtype=np.float32)
      factor = _InverseProvidingFactorTestingDummy(cov.shape)
      # A plain Tensor, as the 2017 test had (read with a conversion that
      # works for any tensor-like).
      factor._cov = tf.constant(cov, dtype=tf.float32)
      factor.register_damped_inverse(0)
      ops = factor.make_inverse_update_ops()
      self.assertLen(ops, 1)
      self.assertIsNone(factor.get_eigendecomp())
      _init(sess)
      np.testing.assert_array_equal(sess.run(factor.get_inverse(0)), np.eye(2))
      sess.run(ops)
      np.testing.assert_allclose(
        sess.run(factor.get_inverse(0)), np.linalg.inv(cov), rtol=1e-5
      )


def _random_spd(rng, dim, low_eigenvalue=None):
  """A symmetric positive definite matrix; optionally a tiny eigenvalue."""
  q, _ = np.linalg.qr(rng.randn(dim, dim))
  eigenvalues = rng.uniform(0.5, 3.0, size=dim)
  if low_eigenvalue is not None:
    eigenvalues[0] = low_eigenvalue
  return (q * eigenvalues) @ q.T


class InverseAndPowerTest(_TestCase):
  """Inverses and powers of a real factor against numpy.linalg."""

  def _factor_with_cov(self, sess, cov):
    """A FullyConnectedKroneckerFactor whose cov variable holds `cov`."""
    t = tf.compat.v1.placeholder(tf.float32, [None, cov.shape[0]])
    factor = ff.FullyConnectedKroneckerFactor((t,))
    return factor

  @parameterized.named_parameters(
    ("cholesky_one", 1, 2, False),
    ("eigen_threshold_reached", 2, 2, True),
    ("eigen_threshold_one", 1, 1, True),
    ("cholesky_below_threshold_3", 2, 3, False),
    ("eigen_many", 4, 3, True),
  )
  def test_damped_inverses_both_paths(self, num_inverses, threshold, eig):
    ff.set_global_constants(eigenvalue_decomposition_threshold=threshold)
    rng = np.random.RandomState(1)
    cov = _random_spd(rng, 4)
    dampings = [0.1, 0.5, 1e-3, 2.0][:num_inverses]
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      factor = self._factor_with_cov(sess, cov)
      for d in dampings:
        factor.register_damped_inverse(d)
      ops = factor.make_inverse_update_ops()
      self.assertLen(ops, num_inverses)
      self.assertEqual(factor.get_eigendecomp() is not None, eig)
      _init(sess)
      sess.run(tf.compat.v1.assign(factor.get_cov(), cov))
      sess.run(ops)
      for d in dampings:
        np.testing.assert_allclose(
          sess.run(factor.get_inverse(d)),
          np.linalg.inv(cov + d * np.eye(4)),
          rtol=2e-4,
          atol=2e-4,
        )

  @parameterized.named_parameters(
    ("square", 2, 0.5),
    ("inverse", -1, 0.1),
    ("inverse_sqrt", -0.5, 0.2),
    ("cube", 3, 0.0),
  )
  def test_matpower(self, exp, damping):
    rng = np.random.RandomState(2)
    cov = _random_spd(rng, 3)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      factor = self._factor_with_cov(sess, cov)
      factor.register_damped_inverse(0.3)
      factor.register_matpower(exp, damping)
      ops = factor.make_inverse_update_ops()
      self.assertLen(ops, 2)  # one inverse (eigen path), one power
      _init(sess)
      sess.run(tf.compat.v1.assign(factor.get_cov(), cov))
      sess.run(ops)
      w, v = np.linalg.eigh(cov + damping * np.eye(3))
      np.testing.assert_allclose(
        sess.run(factor.get_matpower(exp, damping)),
        (v * w**exp) @ v.T,
        rtol=2e-4,
        atol=2e-4,
      )
      np.testing.assert_allclose(
        sess.run(factor.get_inverse(0.3)),
        np.linalg.inv(cov + 0.3 * np.eye(3)),
        rtol=2e-4,
        atol=2e-4,
      )

  def test_registered_eigendecomp_forces_eigen_path(self):
    with tf.Graph().as_default():
      factor = self._factor_with_cov(None, np.eye(2))
      factor.register_eigendecomp()
      eig = factor.get_eigendecomp()
      factor.register_eigendecomp()
      self.assertIs(factor.get_eigendecomp(), eig)
      factor.register_damped_inverse(0.1)
      factor.make_inverse_update_ops()
      self.assertIs(factor.get_eigendecomp(), eig)

  @parameterized.named_parameters(("no_clipping", 0.0), ("clipping", 0.4))
  def test_eigenvalue_clipping(self, clip):
    ff.set_global_constants(eigenvalue_clipping_threshold=clip)
    rng = np.random.RandomState(3)
    cov = _random_spd(rng, 3, low_eigenvalue=0.05)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      factor = self._factor_with_cov(sess, cov)
      factor.register_damped_inverse(0.1)
      factor.register_matpower(2, 0.1)
      ops = factor.make_inverse_update_ops()
      _init(sess)
      sess.run(tf.compat.v1.assign(factor.get_cov(), cov))
      sess.run(ops)
      w, v = np.linalg.eigh(cov)
      w = np.maximum(w, clip)
      np.testing.assert_allclose(
        sess.run(factor.get_inverse(0.1)),
        (v / (w + 0.1)) @ v.T,
        rtol=2e-4,
        atol=2e-4,
      )
      np.testing.assert_allclose(
        sess.run(factor.get_matpower(2, 0.1)),
        (v * (w + 0.1) ** 2) @ v.T,
        rtol=2e-4,
        atol=2e-4,
      )
      # get_eigendecomp returns the unclipped eigenvalues.
      eigenvalues, _ = sess.run(factor.get_eigendecomp())
      np.testing.assert_allclose(
        np.sort(eigenvalues),
        np.sort(np.linalg.eigvalsh(cov)),
        rtol=1e-4,
        atol=1e-5,
      )

  def test_tensor_damping(self):
    rng = np.random.RandomState(4)
    cov = _random_spd(rng, 3)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      factor = self._factor_with_cov(sess, cov)
      damping = tf.constant(0.25) * tf.constant(2.0)
      factor.register_damped_inverse(damping)
      ops = factor.make_inverse_update_ops()
      _init(sess)
      sess.run(tf.compat.v1.assign(factor.get_cov(), cov))
      sess.run(ops)
      np.testing.assert_allclose(
        sess.run(factor.get_inverse(damping)),
        np.linalg.inv(cov + 0.5 * np.eye(3)),
        rtol=2e-4,
        atol=2e-4,
      )


# ---------------------------------------------------------------------------
# Legacy expected values (api.md §11.1).
# ---------------------------------------------------------------------------


class LegacyValuesTest(_TestCase):
  def test_full_factor_init(self):
    with tf.Graph().as_default():
      tensor = tf.ones((2, 3), name="a/b/c")
      factor = ff.FullFactor((tensor,), 32)
      self.assertEqual([6, 6], factor.get_cov().get_shape().as_list())
      self.assertEqual(factor.get_cov().op.name, "ff_full/a_b_c_32/cov")

  def test_full_factor_update(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      factor = ff.FullFactor((tf.constant([1.0, 2.0], name="a/b/c"),), 2)
      op = factor.make_covariance_update_op(0.5)
      _init(sess)
      np.testing.assert_allclose(sess.run(op), [[0.75, 0.5], [0.5, 1.5]])
      np.testing.assert_allclose(
        sess.run(factor.get_cov()), [[0.75, 0.5], [0.5, 1.5]]
      )

  def test_naive_diagonal_factor_init(self):
    with tf.Graph().as_default():
      factor = ff.NaiveDiagonalFactor((tf.ones((2, 3), name="a/b/c"),), 32)
      self.assertEqual([6, 1], factor.get_cov().get_shape().as_list())

  def test_naive_diagonal_factor_update(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      factor = ff.NaiveDiagonalFactor(
        (tf.constant([1.0, 2.0], name="a/b/c"),), 2
      )
      op = factor.make_covariance_update_op(0.5)
      _init(sess)
      sess.run(op)
      np.testing.assert_allclose(sess.run(factor.get_cov()), [[0.75], [1.5]])

  @parameterized.named_parameters(
    ("no_bias", False, [3, 3]), ("bias", True, [4, 4])
  )
  def test_fc_kronecker_init(self, has_bias, shape):
    with tf.Graph().as_default():
      factor = ff.FullyConnectedKroneckerFactor(
        (tf.ones((2, 3), name="a/b/c"),), has_bias=has_bias
      )
      self.assertEqual(shape, factor.get_cov().get_shape().as_list())

  @parameterized.named_parameters(
    ("bias", True, [[3, 3.5, 1], [3.5, 5.5, 1.5], [1, 1.5, 1]]),
    ("no_bias", False, [[3, 3.5], [3.5, 5.5]]),
  )
  def test_fc_kronecker_update(self, has_bias, expected):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      tensor = tf.constant([[1.0, 2.0], [3.0, 4.0]], name="a/b/c")
      factor = ff.FullyConnectedKroneckerFactor((tensor,), has_bias=has_bias)
      op = factor.make_covariance_update_op(0.5)
      _init(sess)
      sess.run(op)
      np.testing.assert_allclose(sess.run(factor.get_cov()), expected)

  @parameterized.named_parameters(
    ("no_bias", False, [6, 6]), ("bias", True, [7, 7])
  )
  def test_conv_input_kronecker_init(self, has_bias, shape):
    with tf.Graph().as_default():
      tensor = tf.ones((64, 1, 2, 3), name="a/b/c")
      factor = ff.ConvInputKroneckerFactor(
        tensor, (1, 2, 3, 4), [1, 1, 1, 1], "SAME", has_bias=has_bias
      )
      self.assertEqual(shape, factor.get_cov().get_shape().as_list())

  @parameterized.named_parameters(
    ("bias", True, [[34.375, 37, 3.125], [37, 41, 3.5], [3.125, 3.5, 1]]),
    ("no_bias", False, [[34.375, 37], [37, 41]]),
  )
  def test_conv_input_kronecker_update(self, has_bias, expected):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      tensor = tf.constant(
        np.arange(1.0, 17.0).reshape(2, 2, 2, 2), dtype=tf.float32, name="a/b/c"
      )
      factor = ff.ConvInputKroneckerFactor(
        tensor, (1, 2, 1, 1), [1, 1, 1, 1], "SAME", has_bias=has_bias
      )
      op = factor.make_covariance_update_op(0.5)
      _init(sess)
      sess.run(op)
      np.testing.assert_allclose(sess.run(factor.get_cov()), expected)

  def test_conv_input_kronecker_bad_idx(self):
    with tf.Graph().as_default():
      factor = ff.ConvInputKroneckerFactor(
        tf.ones((2, 3, 3, 1)), (2, 2, 1, 1), [1, 1, 1, 1], "SAME"
      )
      with self.assertRaisesRegex(ValueError, "idx = 0"):
        factor._compute_new_cov(1)

  def test_conv_output_kronecker_init(self):
    with tf.Graph().as_default():
      factor = ff.ConvOutputKroneckerFactor((tf.ones((2, 3, 4, 5)),))
      self.assertEqual([5, 5], factor.get_cov().get_shape().as_list())

  def test_conv_output_kronecker_rank_error(self):
    with tf.Graph().as_default():
      with self.assertRaises(IndexError):
        ff.ConvOutputKroneckerFactor((tf.ones((2, 3)),))

  def test_conv_output_kronecker_update(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      tensor = tf.constant(
        np.arange(1, 17).reshape(2, 2, 2, 2), dtype=tf.float32, name="a/b/c"
      )
      factor = ff.ConvOutputKroneckerFactor((tensor,))
      op = factor.make_covariance_update_op(0.5)
      _init(sess)
      sess.run(op)
      np.testing.assert_allclose(
        sess.run(factor.get_cov()), [[43, 46.5], [46.5, 51.5]]
      )


# ---------------------------------------------------------------------------
# Covariances after several updates against NumPy oracles.
# ---------------------------------------------------------------------------

_DECAY = 0.8
_STEPS = 3


def _run_updates(sess, factor, feeds, decay=_DECAY):
  """Runs one update op per feed dict; returns the final cov."""
  op = factor.make_covariance_update_op(decay)
  _init(sess)
  for feed in feeds:
    sess.run(op, feed_dict=feed)
  return sess.run(factor.get_cov())


class CovarianceOracleTest(_TestCase):
  @parameterized.named_parameters(("one_source", 1), ("two_sources", 2))
  def test_full_factor(self, num_sources):
    rng = np.random.RandomState(5)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      phs = [
        (
          tf.compat.v1.placeholder(tf.float32, [2, 3]),
          tf.compat.v1.placeholder(tf.float32, [4]),
        )
        for _ in range(num_sources)
      ]
      factor = ff.FullFactor(phs, 8)
      feeds, values = [], []
      for _ in range(_STEPS):
        data = [(_rand(rng, 2, 3), _rand(rng, 4)) for _ in phs]
        feed = {}
        new = np.zeros((10, 10))
        for (pw, pb), (w, b) in zip(phs, data):
          feed[pw], feed[pb] = w, b
          col = np.concatenate([w.reshape(-1), b])
          new += np.outer(col, col) / 8
        feeds.append(feed)
        values.append(new)
      cov = _run_updates(sess, factor, feeds)
      np.testing.assert_allclose(
        cov, _ema(np.eye(10), values, _DECAY), rtol=1e-5, atol=1e-5
      )

  @parameterized.named_parameters(("one_source", 1), ("three_sources", 3))
  def test_naive_diagonal_factor(self, num_sources):
    rng = np.random.RandomState(6)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      phs = [
        (tf.compat.v1.placeholder(tf.float32, [2, 2]),)
        for _ in range(num_sources)
      ]
      factor = ff.NaiveDiagonalFactor(phs, 4)
      self.assertEqual(factor.get_cov().shape.as_list(), [4, 1])
      feeds, values = [], []
      for _ in range(_STEPS):
        feed, new = {}, np.zeros((4, 1))
        for (ph,) in phs:
          g = _rand(rng, 2, 2)
          feed[ph] = g
          for k, v in enumerate(g.reshape(-1)):
            new[k, 0] += v * v / 4
        feeds.append(feed)
        values.append(new)
      cov = _run_updates(sess, factor, feeds)
      np.testing.assert_allclose(
        cov, _ema(np.ones((4, 1)), values, _DECAY), rtol=1e-5, atol=1e-6
      )

  @parameterized.named_parameters(
    ("no_bias_one", False, 1), ("bias_two", True, 2)
  )
  def test_fully_connected_diagonal_factor(self, has_bias, num_sources):
    rng = np.random.RandomState(7)
    batch, d_in, d_out = 5, 3, 2
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.compat.v1.placeholder(tf.float32, [None, d_in])
      gs = [
        tf.compat.v1.placeholder(tf.float32, [None, d_out])
        for _ in range(num_sources)
      ]
      factor = ff.FullyConnectedDiagonalFactor(x, gs, has_bias=has_bias)
      rows = d_in + has_bias
      self.assertEqual(factor.get_cov().shape.as_list(), [rows, d_out])
      feeds, values = [], []
      for _ in range(_STEPS):
        xv = _rand(rng, batch, d_in)
        gvs = [_rand(rng, batch, d_out) for _ in gs]
        new = np.zeros((rows, d_out))
        for gv in gvs:
          for b in range(batch):
            a = np.append(xv[b], 1.0) if has_bias else xv[b]
            new += np.outer(a, gv[b]) ** 2 / batch
        feeds.append(dict([(x, xv)] + list(zip(gs, gvs))))
        values.append(new)
      cov = _run_updates(sess, factor, feeds)
      np.testing.assert_allclose(
        cov, _ema(np.ones((rows, d_out)), values, _DECAY), rtol=1e-5, atol=1e-5
      )

  @parameterized.named_parameters(
    ("no_bias_one", False, 1, 3, None),
    ("bias_one", True, 1, 3, None),
    ("no_bias_two", False, 2, 3, None),
    # From 256 columns on, the rows are scaled before the product.
    ("wide_bias_one", True, 1, 300, None),
    ("wide_bias_one_static_batch", True, 1, 300, 6),
    ("wide_no_bias_two", False, 2, 256, None),
  )
  def test_fully_connected_kronecker_factor(
    self, has_bias, num_sources, dim, static_batch
  ):
    rng = np.random.RandomState(8)
    batch = 6
    size = dim + has_bias
    covs = {}
    for cls in (
      ff.FullyConnectedKroneckerFactor,
      ff._ReferenceFullyConnectedKroneckerFactor,
    ):
      rng = np.random.RandomState(8)
      with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        ts = [
          tf.compat.v1.placeholder(tf.float32, [static_batch, dim])
          for _ in range(num_sources)
        ]
        factor = cls(ts, has_bias=has_bias)
        feeds, values = [], []
        for _ in range(_STEPS):
          tvs = [_rand(rng, batch, dim) for _ in ts]
          new = np.zeros((size, size))
          for tv in tvs:
            rows = np.hstack([tv, np.ones((batch, 1))]) if has_bias else tv
            new += _second_moment(rows)
          feeds.append(dict(zip(ts, tvs)))
          values.append(new)
        covs[cls] = _run_updates(sess, factor, feeds)
      np.testing.assert_allclose(
        covs[cls], _ema(np.eye(size), values, _DECAY), rtol=1e-5, atol=1e-5
      )
      np.testing.assert_array_equal(covs[cls], covs[cls].T)
    ours, reference = covs.values()
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-7)

  @parameterized.named_parameters(
    ("same_s1", (3, 3), (1, 1), "SAME", False),
    ("valid_s2_bias", (2, 3), (2, 2), "VALID", True),
    ("same_s2_rect", (3, 2), (2, 1), "SAME", True),
  )
  def test_conv_input_kronecker_factor(
    self, kernel, strides, padding, has_bias
  ):
    rng = np.random.RandomState(9)
    batch, height, width, channels = 2, 5, 4, 2
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.compat.v1.placeholder(tf.float32, [None, height, width, channels])
      factor = ff.ConvInputKroneckerFactor(
        x,
        kernel + (channels, 3),
        [1, strides[0], strides[1], 1],
        padding,
        has_bias=has_bias,
      )
      size = kernel[0] * kernel[1] * channels + has_bias
      self.assertEqual(factor.get_cov().shape.as_list(), [size, size])
      feeds, values = [], []
      for _ in range(_STEPS):
        xv = _rand(rng, batch, height, width, channels)
        rows = _patches_oracle(xv, kernel, strides, padding)
        if has_bias:
          rows = np.hstack([rows, np.ones((rows.shape[0], 1))])
        feeds.append({x: xv})
        values.append(_second_moment(rows))
      cov = _run_updates(sess, factor, feeds)
      np.testing.assert_allclose(
        cov, _ema(np.eye(size), values, _DECAY), rtol=1e-5, atol=1e-5
      )

  @parameterized.named_parameters(("one_source", 1), ("two_sources", 2))
  def test_conv_output_kronecker_factor(self, num_sources):
    rng = np.random.RandomState(10)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      gs = [
        tf.compat.v1.placeholder(tf.float32, [None, 3, 2, 4])
        for _ in range(num_sources)
      ]
      factor = ff.ConvOutputKroneckerFactor(gs)
      feeds, values = [], []
      for _ in range(_STEPS):
        gvs = [_rand(rng, 2, 3, 2, 4) for _ in gs]
        new = sum(_second_moment(gv.reshape(-1, 4)) for gv in gvs)
        feeds.append(dict(zip(gs, gvs)))
        values.append(new)
      cov = _run_updates(sess, factor, feeds)
      np.testing.assert_allclose(
        cov, _ema(np.eye(4), values, _DECAY), rtol=1e-5, atol=1e-5
      )


class ConvDiagonalFactorTest(_TestCase):
  def _use_method(self, method):
    """Selects the ConvDiagonalFactor `method`, or skips where unsupported."""
    if method not in _CONVDIAG_METHODS:
      self.skipTest("grouped filter gradients unsupported here")
    ff._CONVDIAG_METHOD = method

  @parameterized.named_parameters(
    ("same_s1", 7, 6, 2, (3, 3), (1, 1), "SAME", False, 1, 3),
    ("valid_s1", 6, 6, 2, (3, 3), (1, 1), "VALID", False, 1, 3),
    ("same_s2", 7, 6, 2, (3, 3), (2, 2), "SAME", False, 1, 3),
    ("valid_s2", 7, 8, 3, (3, 3), (2, 2), "VALID", True, 1, 2),
    ("same_s1_bias", 5, 5, 2, (3, 3), (1, 1), "SAME", True, 1, 3),
    ("two_sources", 6, 5, 2, (3, 2), (1, 1), "SAME", True, 2, 3),
    ("three_sources_valid", 6, 5, 1, (2, 3), (1, 2), "VALID", False, 3, 2),
    ("rect_kernel_s21", 7, 5, 2, (3, 1), (2, 1), "SAME", True, 1, 4),
    ("even_kernel_same", 6, 7, 2, (2, 4), (1, 1), "SAME", False, 1, 2),
    ("one_channel_5x5", 8, 7, 1, (5, 5), (1, 1), "SAME", True, 1, 3),
    ("one_channel_5x5_s2", 8, 7, 1, (5, 5), (2, 2), "SAME", False, 2, 2),
    ("many_channels", 4, 4, 40, (2, 2), (1, 1), "SAME", True, 1, 3),
    ("kernel_equals_image", 3, 3, 2, (3, 3), (2, 2), "VALID", True, 1, 2),
  )
  def test_against_loops(
    self,
    height,
    width,
    channels,
    kernel,
    strides,
    padding,
    has_bias,
    num_sources,
    out_channels,
  ):
    # "grouped_conv" also with one chunk per example (chunk bytes 1).
    cases = [(method, None) for method in _CONVDIAG_METHODS]
    if "grouped_conv" in _CONVDIAG_METHODS:
      cases.append(("grouped_conv", 1))
    for method, chunk_bytes in cases:
      with self.subTest(method=method, chunk_bytes=chunk_bytes):
        ff._CONVDIAG_METHOD = method
        ff._CONVDIAG_CHUNK_BYTES = chunk_bytes
        self._check_against_loops(
          height,
          width,
          channels,
          kernel,
          strides,
          padding,
          has_bias,
          num_sources,
          out_channels,
        )

  def _check_against_loops(
    self,
    height,
    width,
    channels,
    kernel,
    strides,
    padding,
    has_bias,
    num_sources,
    out_channels,
  ):
    rng = np.random.RandomState(11)
    batch = 3
    out_h, _ = _same_or_valid(height, kernel[0], strides[0], padding)
    out_w, _ = _same_or_valid(width, kernel[1], strides[1], padding)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.compat.v1.placeholder(tf.float32, [batch, height, width, channels])
      gs = [
        tf.compat.v1.placeholder(
          tf.float32, [batch, out_h, out_w, out_channels]
        )
        for _ in range(num_sources)
      ]
      factor = ff.ConvDiagonalFactor(
        x,
        gs,
        kernel + (channels, out_channels),
        [1, strides[0], strides[1], 1],
        padding,
        has_bias=has_bias,
      )
      rows = kernel[0] * kernel[1] * channels + has_bias
      self.assertEqual(factor.get_cov().shape.as_list(), [rows, out_channels])
      feeds, values = [], []
      for _ in range(_STEPS):
        xv = _rand(rng, batch, height, width, channels)
        gvs = [_rand(rng, batch, out_h, out_w, out_channels) for _ in gs]
        feeds.append(dict([(x, xv)] + list(zip(gs, gvs))))
        values.append(
          _conv_diag_oracle(xv, gvs, kernel, strides, padding, has_bias)
        )
      cov = _run_updates(sess, factor, feeds)
      np.testing.assert_allclose(
        cov,
        _ema(np.ones((rows, out_channels)), values, _DECAY),
        rtol=2e-5,
        atol=1e-5,
      )

  @parameterized.named_parameters(
    ("same_windows", "SAME", (1, 1), True, "windows"),
    ("valid_s2_windows", "VALID", (2, 2), False, "windows"),
    ("same_grouped", "SAME", (1, 1), True, "grouped_conv"),
    ("valid_s2_grouped", "VALID", (2, 2), False, "grouped_conv"),
  )
  def test_unknown_batch_two_batch_sizes(
    self, padding, strides, has_bias, method
  ):
    self._use_method(method)
    rng = np.random.RandomState(12)
    height, width, channels, kernel, out_channels = 6, 5, 2, (3, 2), 3
    out_h, _ = _same_or_valid(height, kernel[0], strides[0], padding)
    out_w, _ = _same_or_valid(width, kernel[1], strides[1], padding)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.compat.v1.placeholder(tf.float32, [None, height, width, channels])
      g = tf.compat.v1.placeholder(
        tf.float32, [None, out_h, out_w, out_channels]
      )
      factor = ff.ConvDiagonalFactor(
        x,
        (g,),
        kernel + (channels, out_channels),
        [1, strides[0], strides[1], 1],
        padding,
        has_bias=has_bias,
      )
      feeds, values = [], []
      for batch in (2, 5, 2):
        xv = _rand(rng, batch, height, width, channels)
        gv = _rand(rng, batch, out_h, out_w, out_channels)
        feeds.append({x: xv, g: gv})
        values.append(
          _conv_diag_oracle(xv, [gv], kernel, strides, padding, has_bias)
        )
      cov = _run_updates(sess, factor, feeds)
      rows = kernel[0] * kernel[1] * channels + has_bias
      np.testing.assert_allclose(
        cov,
        _ema(np.ones((rows, out_channels)), values, _DECAY),
        rtol=2e-5,
        atol=1e-5,
      )

  @parameterized.named_parameters(
    ("windows", "windows"), ("grouped", "grouped_conv")
  )
  def test_unknown_spatial_dims(self, method):
    self._use_method(method)
    rng = np.random.RandomState(13)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.compat.v1.placeholder(tf.float32, [None, None, None, 2])
      g = tf.compat.v1.placeholder(tf.float32, [None, None, None, None])
      factor = ff.ConvDiagonalFactor(
        x, [g], (3, 2, 2, 3), [1, 2, 1, 1], "SAME", has_bias=True
      )
      feeds, values = [], []
      for height, width in ((5, 4), (6, 3)):
        xv = _rand(rng, 2, height, width, 2)
        gv = _rand(rng, 2, (height + 1) // 2, width, 3)
        feeds.append({x: xv, g: gv})
        values.append(_conv_diag_oracle(xv, [gv], (3, 2), (2, 1), "SAME", True))
      cov = _run_updates(sess, factor, feeds)
      np.testing.assert_allclose(
        cov, _ema(np.ones((13, 3)), values, _DECAY), rtol=2e-5, atol=1e-5
      )

  def test_single_tensor_grads_and_tensor_strides(self):
    rng = np.random.RandomState(14)
    xv = _rand(rng, 2, 5, 5, 2)
    gv = _rand(rng, 2, 3, 3, 3)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.constant(xv, name="x")
      g = tf.constant(gv, name="g")
      factor = ff.ConvDiagonalFactor(
        x, g, (2, 2, 2, 3), tf.constant([1, 2, 2, 1]), "SAME"
      )
      self.assertEqual(factor.get_cov().op.name, "ff_convdiag/x__g/cov")
      cov = _run_updates(sess, factor, [{}], decay=0.0)
      np.testing.assert_allclose(
        cov,
        _conv_diag_oracle(xv, [gv], (2, 2), (2, 2), "SAME", False),
        rtol=2e-5,
        atol=1e-5,
      )

  @parameterized.named_parameters(
    ("two_examples", 2.0, [(0, 2), (2, 2), (4, 1)]),
    ("between", 2.5, [(0, 2), (2, 2), (4, 1)]),
    ("below_one_example", 0.5, [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1)]),
    ("whole_batch", 5.0, None),
    ("larger", 9.0, None),
  )
  def test_grouped_conv_batch_chunks(self, examples_per_chunk, expected_chunks):
    # Chunks of floor(chunk bytes / bytes per example) examples, at least
    # one (bytes per example: inputs plus one source's gradients and
    # per-example filter gradients), the last one shorter; None (one grouped
    # convolution) when a chunk would hold the whole batch.
    self._use_method("grouped_conv")
    rng = np.random.RandomState(19)
    batch, height, width, channels, out_channels = 5, 6, 5, 2, 3
    example_bytes = 4 * (
      height * width * channels
      + height * width * out_channels
      + 3 * 2 * channels * out_channels
    )
    ff._CONVDIAG_CHUNK_BYTES = int(examples_per_chunk * example_bytes)
    xv = _rand(rng, batch, height, width, channels)
    gvs = [_rand(rng, batch, height, width, out_channels) for _ in range(2)]
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      factor = ff.ConvDiagonalFactor(
        tf.constant(xv),
        [tf.constant(gv) for gv in gvs],
        (3, 2, channels, out_channels),
        [1, 1, 1, 1],
        "SAME",
        has_bias=True,
      )
      self.assertEqual(factor._batch_chunks, expected_chunks)
      cov = _run_updates(sess, factor, [{}], decay=0.0)
    np.testing.assert_allclose(
      cov,
      _conv_diag_oracle(xv, gvs, (3, 2), (1, 1), "SAME", True),
      rtol=2e-5,
      atol=1e-5,
    )

  @parameterized.named_parameters(
    ("windows", "windows"), ("grouped", "grouped_conv")
  )
  def test_matches_patches_formulation(self, method):
    # The TensorFlow 1.4 formulation, for reference (not an oracle).
    self._use_method(method)
    rng = np.random.RandomState(15)
    xv = _rand(rng, 4, 9, 9, 3)
    gv = _rand(rng, 4, 9, 9, 5)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x, g = tf.constant(xv), tf.constant(gv)
      factor = ff.ConvDiagonalFactor(
        x, [g], (3, 3, 3, 5), (1, 1, 1, 1), "SAME", has_bias=True
      )
      patches = tf.image.extract_patches(
        x, [1, 3, 3, 1], [1, 1, 1, 1], [1, 1, 1, 1], "SAME"
      )
      patches = tf.concat([patches, tf.ones_like(patches[..., :1])], -1)
      per_example = tf.einsum("bijk,bijl->bkl", patches, g)
      legacy = tf.reduce_mean(tf.square(per_example), axis=0)
      ours, theirs = sess.run([factor._compute_new_cov(0), legacy])
      np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)

  @parameterized.named_parameters(
    ("one_channel_5x5", 1, 32, (5, 5), 1, tf.float32, "windows"),
    ("conv_3x3_32_64", 32, 64, (3, 3), 1, tf.float32, "grouped_conv"),
    ("conv_3x3_64_64", 64, 64, (3, 3), 1, tf.float32, "grouped_conv"),
    ("many_sources", 32, 64, (3, 3), 3, tf.float32, "windows"),
    ("float64", 64, 64, (3, 3), 1, tf.float64, "windows"),
  )
  def test_method_choice(
    self, channels, out_channels, kernel, num_sources, dtype, expected
  ):
    if expected not in _CONVDIAG_METHODS:
      expected = "windows"
    with tf.Graph().as_default():
      x = tf.compat.v1.placeholder(dtype, [None, 8, 8, channels])
      gs = [
        tf.compat.v1.placeholder(dtype, [None, 8, 8, out_channels])
        for _ in range(num_sources)
      ]
      factor = ff.ConvDiagonalFactor(
        x, gs, kernel + (channels, out_channels), [1, 1, 1, 1], "SAME"
      )
      self.assertEqual(factor._method, expected)

  def test_float64_inputs(self):
    rng = np.random.RandomState(16)
    xv = rng.randn(2, 4, 4, 1)
    gv = rng.randn(2, 4, 4, 2)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      factor = ff.ConvDiagonalFactor(
        tf.constant(xv), [tf.constant(gv)], (3, 3, 1, 2), [1, 1, 1, 1], "SAME"
      )
      self.assertEqual(factor.get_cov().dtype.base_dtype, tf.float32)
      cov = _run_updates(sess, factor, [{}], decay=0.0)
      np.testing.assert_allclose(
        cov,
        _conv_diag_oracle(xv, [gv], (3, 3), (1, 1), "SAME", False),
        rtol=1e-5,
      )

  def test_per_source_statistic(self):
    rng = np.random.RandomState(17)
    xv = _rand(rng, 2, 4, 4, 2)
    gvs = [_rand(rng, 2, 4, 4, 3) for _ in range(2)]
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      factor = ff.ConvDiagonalFactor(
        tf.constant(xv),
        [tf.constant(g) for g in gvs],
        (3, 3, 2, 3),
        [1, 1, 1, 1],
        "SAME",
      )
      for idx in range(2):
        np.testing.assert_allclose(
          sess.run(factor._compute_new_cov(idx)),
          _conv_diag_oracle(xv, [gvs[idx]], (3, 3), (1, 1), "SAME", False),
          rtol=2e-5,
          atol=1e-6,
        )


# ---------------------------------------------------------------------------
# Moving-average options.
# ---------------------------------------------------------------------------


class MovingAverageTest(_TestCase):
  def _conv_diag(self, rng):
    x = tf.compat.v1.placeholder(tf.float32, [None, 4, 4, 1], name="x")
    g = tf.compat.v1.placeholder(tf.float32, [None, 4, 4, 2], name="g")
    factor = ff.ConvDiagonalFactor(x, [g], (2, 2, 1, 2), [1, 1, 1, 1], "SAME")
    feeds, values = [], []
    for _ in range(4):
      xv, gv = _rand(rng, 3, 4, 4, 1), _rand(rng, 3, 4, 4, 2)
      feeds.append({x: xv, g: gv})
      values.append(_conv_diag_oracle(xv, [gv], (2, 2), (1, 1), "SAME", False))
    return factor, feeds, values

  @parameterized.named_parameters(("plain", False), ("zero_debias", True))
  def test_zero_debias(self, zero_debias):
    ff.set_global_constants(zero_debias=zero_debias)
    rng = np.random.RandomState(18)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      factor, feeds, values = self._conv_diag(rng)
      cov = _run_updates(sess, factor, feeds, decay=0.7)
      expected = _ema(np.ones((4, 2)), values, 0.7, zero_debias=zero_debias)
      np.testing.assert_allclose(cov, expected, rtol=2e-5, atol=1e-5)
      names = sorted(v.op.name for v in tf.compat.v1.global_variables())
      if zero_debias:
        self.assertEqual(
          names,
          [
            "ff_convdiag/x__g/cov",
            "ff_convdiag/x__g/cov/biased",
            "ff_convdiag/x__g/cov/local_step",
          ],
        )
      else:
        self.assertEqual(names, ["ff_convdiag/x__g/cov"])
      self.assertEmpty(tf.compat.v1.trainable_variables())

  def test_zero_debias_first_update_is_the_statistic(self):
    ff.set_global_constants(zero_debias=True)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      t = tf.constant([[1.0, 2.0], [3.0, 4.0]])
      factor = ff.FullyConnectedKroneckerFactor((t,))
      op = factor.make_covariance_update_op(0.9)
      _init(sess)
      np.testing.assert_allclose(
        sess.run(op), [[5.0, 7.0], [7.0, 10.0]], rtol=1e-5
      )

  def test_zero_debias_two_update_ops_share_helpers(self):
    ff.set_global_constants(zero_debias=True)
    rng = np.random.RandomState(19)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      t = tf.compat.v1.placeholder(tf.float32, [None, 2], name="t")
      factor = ff.FullyConnectedKroneckerFactor((t,))
      op1 = factor.make_covariance_update_op(0.5)
      op2 = factor.make_covariance_update_op(0.5)
      self.assertLen(tf.compat.v1.global_variables(), 3)
      _init(sess)
      values = []
      for op in (op1, op2, op1):
        tv = _rand(rng, 4, 2)
        sess.run(op, {t: tv})
        values.append(_second_moment(tv))
      np.testing.assert_allclose(
        sess.run(factor.get_cov()),
        _ema(np.eye(2), values, 0.5, zero_debias=True),
        rtol=1e-5,
      )

  @parameterized.named_parameters(("default", False), ("at_zero", True))
  def test_init_covariances_at_zero(self, at_zero):
    ff.set_global_constants(init_covariances_at_zero=at_zero)
    rng = np.random.RandomState(20)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      t = tf.compat.v1.placeholder(tf.float32, [None, 3])
      kron = ff.FullyConnectedKroneckerFactor((t,), has_bias=True)
      factor, feeds, values = self._conv_diag(rng)
      _init(sess)
      kron_init, diag_init = sess.run([kron.get_cov(), factor.get_cov()])
      np.testing.assert_array_equal(
        kron_init, np.zeros((4, 4)) if at_zero else np.eye(4)
      )
      np.testing.assert_array_equal(
        diag_init, np.zeros((4, 2)) if at_zero else np.ones((4, 2))
      )
      cov = _run_updates(sess, factor, feeds, decay=0.6)
      start = np.zeros((4, 2)) if at_zero else np.ones((4, 2))
      np.testing.assert_allclose(
        cov, _ema(start, values, 0.6), rtol=2e-5, atol=1e-5
      )

  def test_tensor_decay(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      decay = tf.compat.v1.placeholder(tf.float32, [])
      factor = ff.NaiveDiagonalFactor((tf.constant([1.0, 2.0]),), 2)
      op = factor.make_covariance_update_op(decay)
      _init(sess)
      sess.run(op, {decay: 0.25})
      np.testing.assert_allclose(sess.run(factor.get_cov()), [[0.625], [1.75]])


# ---------------------------------------------------------------------------
# Variable names and shapes.
# ---------------------------------------------------------------------------


class VariableNamesTest(_TestCase):
  def _names(self):
    return sorted(v.op.name for v in tf.compat.v1.global_variables())

  @parameterized.named_parameters(("root", None), ("outer", "outer"))
  def test_all_factor_names(self, outer):
    with tf.Graph().as_default():
      x2 = tf.compat.v1.placeholder(tf.float32, [None, 3], name="in/fc")
      g2 = tf.compat.v1.placeholder(tf.float32, [None, 2], name="g/fc")
      x4 = tf.compat.v1.placeholder(tf.float32, [None, 5, 5, 1], name="img")
      g4 = tf.compat.v1.placeholder(tf.float32, [None, 5, 5, 4], name="gimg")
      g4b = tf.compat.v1.placeholder(tf.float32, [None, 5, 5, 4], name="gb")
      w = tf.compat.v1.placeholder(tf.float32, [3, 2], name="w")
      b = tf.compat.v1.placeholder(tf.float32, [2], name="b")

      def build():
        return [
          ff.FullFactor(((w, b),), 32),
          ff.NaiveDiagonalFactor(((w, b),), 8),
          ff.FullyConnectedDiagonalFactor(x2, (g2,), has_bias=True),
          ff.FullyConnectedKroneckerFactor((x2,), has_bias=True),
          ff.FullyConnectedKroneckerFactor((g2,)),
          ff.ConvInputKroneckerFactor(
            x4, (5, 5, 1, 16), [1, 1, 1, 1], "SAME", has_bias=True
          ),
          ff.ConvOutputKroneckerFactor((g4, g4b)),
          ff.ConvDiagonalFactor(
            x4, (g4, g4b), (3, 3, 1, 4), [1, 1, 1, 1], "SAME", has_bias=True
          ),
        ]

      if outer:
        with tf.compat.v1.variable_scope(outer):
          factors = build()
      else:
        factors = build()
      prefix = outer + "/" if outer else ""
      expected = {
        "ff_full/w__b_32/cov": [8, 8],
        "ff_diagfc/in_fc_g_fc/cov": [4, 2],
        "ff_fckron/in_fc_True/cov": [4, 4],
        "ff_fckron/g_fc_False/cov": [2, 2],
        "ff_convinkron/img_5-5-1-16_1-1-1-1_SAME_True/cov": [26, 26],
        "ff_convoutkron/gimg_gb/cov": [4, 4],
        "ff_convdiag/img__gimg__gb/cov": [10, 4],
      }
      got = {f.get_cov().op.name: f.get_cov().shape.as_list() for f in factors}
      # The naive diagonal scope names the concat built by
      # tensors_to_column (see the test below).
      naive = [n for n in got if n.startswith(prefix + "ff_naivediag/")]
      self.assertLen(naive, 1)
      self.assertEqual(got.pop(naive[0]), [8, 1])
      self.assertEqual(got, {prefix + k: v for k, v in expected.items()})
      for f in factors:
        self.assertEqual(f.get_cov().dtype.base_dtype, tf.float32)
      self.assertEmpty(tf.compat.v1.trainable_variables())

  def test_naive_diagonal_scope_uses_flattened_names(self):
    with tf.Graph().as_default():
      g = tf.constant([1.0, 2.0], name="g")
      factor = ff.NaiveDiagonalFactor((g,), 2)
      flat = factor._params_grads[0]
      self.assertEqual(
        factor.get_cov().op.name,
        "ff_naivediag/" + flat.op.name.replace("/", "_") + "_2/cov",
      )

  def test_inverse_names_outside_and_inside_scope(self):
    with tf.Graph().as_default():
      x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="Placeholder")
      with tf.compat.v1.variable_scope("LayerCollection"):
        factor = ff.FullyConnectedKroneckerFactor((x,), has_bias=True)
      factor.register_damped_inverse(0.1)
      factor.register_matpower(2, 0.5)
      with tf.compat.v1.variable_scope("opt"):
        factor.register_damped_inverse(1e-5)
      self.assertEqual(
        self._names(),
        [
          "LayerCollection/ff_fckron/Placeholder_True/cov",
          "ff_fckron/Placeholder_True/inv_damp0.1",
          "ff_fckron/Placeholder_True/matpower_exp2_damp0.5",
          "opt/ff_fckron/Placeholder_True/inv_damp1e-05",
        ],
      )
      for v in tf.compat.v1.global_variables():
        self.assertEqual(v.shape.as_list(), [4, 4])

  def test_inverse_update_ops_are_flat_list(self):
    with tf.Graph().as_default():
      x = tf.compat.v1.placeholder(tf.float32, [None, 3])
      factor = ff.FullyConnectedKroneckerFactor((x,))
      for d in (0.1, 0.2, 0.3):
        factor.register_damped_inverse(d)
      factor.register_matpower(-1, 0.1)
      ops = factor.make_inverse_update_ops()
      self.assertIsInstance(ops, list)
      self.assertLen(ops, 4)


# ---------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------


def _conv_args(**overrides):
  """Valid ConvDiagonalFactor arguments, with overrides (built in-graph)."""
  args = dict(
    inputs=lambda: tf.compat.v1.placeholder(tf.float32, [4, 6, 6, 2]),
    outputs_grads=lambda: [tf.compat.v1.placeholder(tf.float32, [4, 6, 6, 3])],
    filter_shape=lambda: (3, 3, 2, 3),
    strides=lambda: [1, 1, 1, 1],
    padding=lambda: "SAME",
  )
  args.update(overrides)
  return args


def _ph(dtype, shape):
  return lambda: tf.compat.v1.placeholder(dtype, shape)


class ConvDiagonalFactorBadInputTest(_TestCase):
  def test_valid_arguments_build(self):
    with tf.Graph().as_default():
      args = {k: v() for k, v in _conv_args().items()}
      factor = ff.ConvDiagonalFactor(**args)
      # One row per filter entry (3·3·2, no bias), one column per output
      # channel.
      self.assertEqual(factor.get_cov().shape.as_list(), [18, 3])

  @parameterized.named_parameters(
    (
      "filter_shape_three_ints",
      ValueError,
      "filter_shape",
      dict(filter_shape=lambda: (3, 3, 2)),
    ),
    (
      "filter_shape_zero",
      ValueError,
      "filter_shape",
      dict(filter_shape=lambda: (3, 0, 2, 3)),
    ),
    (
      "filter_shape_negative",
      ValueError,
      "filter_shape",
      dict(filter_shape=lambda: (3, 3, -2, 3)),
    ),
    (
      "filter_shape_float",
      ValueError,
      "filter_shape",
      dict(filter_shape=lambda: (3.0, 3, 2, 3)),
    ),
    (
      "filter_shape_not_sequence",
      TypeError,
      "filter_shape",
      dict(filter_shape=lambda: 3),
    ),
    (
      "filter_shape_in_channels",
      ValueError,
      "filter_shape",
      dict(filter_shape=lambda: (3, 3, 5, 3)),
    ),
    (
      "grads_channels",
      ValueError,
      "outputs_grads",
      dict(outputs_grads=_ph(tf.float32, [4, 6, 6, 7])),
    ),
    (
      "inputs_rank",
      ValueError,
      "inputs",
      dict(inputs=_ph(tf.float32, [4, 36, 2])),
    ),
    (
      "inputs_unknown_rank",
      ValueError,
      "inputs",
      dict(inputs=_ph(tf.float32, None)),
    ),
    (
      "grads_rank",
      ValueError,
      "outputs_grads",
      dict(
        outputs_grads=lambda: [tf.compat.v1.placeholder(tf.float32, [4, 36, 3])]
      ),
    ),
    (
      "batch_mismatch",
      ValueError,
      "outputs_grads",
      dict(outputs_grads=_ph(tf.float32, [5, 6, 6, 3])),
    ),
    (
      "grads_spatial_mismatch",
      ValueError,
      "outputs_grads",
      dict(outputs_grads=_ph(tf.float32, [4, 3, 3, 3])),
    ),
    ("padding_lower_case", ValueError, "padding", dict(padding=lambda: "same")),
    ("padding_other", ValueError, "padding", dict(padding=lambda: "FULL")),
    ("strides_length", ValueError, "strides", dict(strides=lambda: [1, 1, 1])),
    (
      "strides_tensor_length",
      ValueError,
      "strides",
      dict(strides=lambda: tf.constant([1, 1])),
    ),
    (
      "strides_not_static",
      ValueError,
      "strides",
      dict(strides=_ph(tf.int32, [4])),
    ),
    (
      "strides_batch",
      ValueError,
      "strides",
      dict(strides=lambda: [2, 1, 1, 1]),
    ),
    ("strides_zero", ValueError, "strides", dict(strides=lambda: [1, 0, 1, 1])),
    ("strides_type", TypeError, "strides", dict(strides=lambda: 2)),
    (
      "inputs_numpy",
      TypeError,
      "inputs",
      dict(inputs=lambda: np.zeros((4, 6, 6, 2), np.float32)),
    ),
    (
      "grads_empty",
      ValueError,
      "outputs_grads",
      dict(outputs_grads=lambda: []),
    ),
    (
      "grads_not_list",
      TypeError,
      "outputs_grads",
      dict(outputs_grads=lambda: "grads"),
    ),
    (
      "valid_kernel_too_big",
      ValueError,
      "filter_shape",
      dict(filter_shape=lambda: (7, 3, 2, 3), padding=lambda: "VALID"),
    ),
  )
  def test_bad_input(self, error, arg_name, overrides):
    with tf.Graph().as_default():
      args = {k: v() for k, v in _conv_args(**overrides).items()}
      with self.assertRaisesRegex(error, arg_name):
        ff.ConvDiagonalFactor(**args)
      self.assertEmpty(tf.compat.v1.global_variables())

  @parameterized.named_parameters(
    ("inputs_int", "inputs", dict(inputs=_ph(tf.int32, [4, 6, 6, 2]))),
    (
      "grads_int",
      "outputs_grads",
      dict(
        outputs_grads=lambda: [tf.compat.v1.placeholder(tf.int32, [4, 6, 6, 3])]
      ),
    ),
  )
  def test_integer_input_raises_when_the_update_is_built(
    self, arg_name, overrides
  ):
    # TF 1.4 built the factor too and failed in the assignment.
    with tf.Graph().as_default():
      args = {k: v() for k, v in _conv_args(**overrides).items()}
      factor = ff.ConvDiagonalFactor(**args)
      with self.assertRaisesRegex(TypeError, arg_name):
        factor.make_covariance_update_op(0.9)


class OtherFactorsBadInputTest(_TestCase):
  # ConvInputKroneckerFactor reads only filter_shape when it is built (as in
  # TF 1.4); the rest is checked when its statistic is built.

  @parameterized.named_parameters(
    (
      "conv_input_kronecker_padding",
      lambda: ff.ConvInputKroneckerFactor(
        tf.ones((2, 3, 3, 1)), (2, 2, 1, 1), [1, 1, 1, 1], "valid"
      ),
      ValueError,
      "padding",
    ),
    (
      "conv_input_kronecker_strides",
      lambda: ff.ConvInputKroneckerFactor(
        tf.ones((2, 3, 3, 1)), (2, 2, 1, 1), [1, 1], "SAME"
      ),
      ValueError,
      "strides",
    ),
    (
      "conv_input_kronecker_inputs_rank",
      lambda: ff.ConvInputKroneckerFactor(
        tf.ones((2, 3)), (2, 2, 1, 1), [1, 1, 1, 1], "SAME"
      ),
      ValueError,
      "inputs must have rank 4",
    ),
    (
      "conv_input_kronecker_dtype",
      lambda: ff.ConvInputKroneckerFactor(
        tf.ones((2, 3, 3, 1), tf.int32), (2, 2, 1, 1), [1, 1, 1, 1], "SAME"
      ),
      TypeError,
      "inputs",
    ),
    (
      "fc_kronecker_dtype",
      lambda: ff.FullyConnectedKroneckerFactor((tf.ones((2, 3), tf.int32),)),
      TypeError,
      "tensors",
    ),
    (
      "naive_diagonal_dtype",
      lambda: ff.NaiveDiagonalFactor((tf.ones((2,), tf.int32),), 2),
      TypeError,
      "params_grads",
    ),
    (
      "conv_output_kronecker_dtype",
      lambda: ff.ConvOutputKroneckerFactor((tf.ones((2, 3, 3, 2), tf.int32),)),
      TypeError,
      "outputs_grads",
    ),
  )
  def test_checked_when_statistic_built(self, build, error, message):
    # The factor is built; its covariance update raises, guarded (the
    # estimator's default) or not.
    makers = {
      "plain": lambda factor: factor.make_covariance_update_op(0.9),
      "guarded": lambda factor: factor._make_guarded_covariance_update_op(
        0.9, _nonfinite.SkipCounter("skips", "covariance updates")
      ),
    }
    for name, make in makers.items():
      with self.subTest(name), tf.Graph().as_default():
        factor = build()
        with self.assertRaisesRegex(error, message):
          make(factor)

  def test_fc_kronecker_empty(self):
    with tf.Graph().as_default():
      with self.assertRaisesRegex(ValueError, "tensors"):
        ff.FullyConnectedKroneckerFactor(())

  def test_fc_diagonal_rank(self):
    with tf.Graph().as_default():
      with self.assertRaisesRegex(ValueError, "outputs_grads"):
        ff.FullyConnectedDiagonalFactor(tf.ones((2, 3)), (tf.ones((2,)),))

  def test_full_factor_unknown_size(self):
    with tf.Graph().as_default():
      with self.assertRaisesRegex(ValueError, "params_grads"):
        ff.FullFactor((tf.compat.v1.placeholder(tf.float32, [None, 2]),), 2)

  def test_full_factor_empty(self):
    with tf.Graph().as_default():
      with self.assertRaisesRegex(ValueError, "params_grads"):
        ff.FullFactor((), 2)

  @parameterized.named_parameters(
    (
      "fc_kronecker_features",
      lambda: ff.FullyConnectedKroneckerFactor(
        (tf.compat.v1.placeholder(tf.float32, [None, None]),)
      ),
      "tensors",
    ),
    (
      "fc_kronecker_sources_disagree",
      lambda: ff.FullyConnectedKroneckerFactor(
        (tf.ones((2, 3)), tf.ones((2, 4)))
      ),
      "tensors",
    ),
    (
      "fc_diagonal_input_features",
      lambda: ff.FullyConnectedDiagonalFactor(
        tf.compat.v1.placeholder(tf.float32, [None, None]), (tf.ones((2, 3)),)
      ),
      "inputs",
    ),
    (
      "fc_diagonal_output_features",
      lambda: ff.FullyConnectedDiagonalFactor(
        tf.ones((2, 3)), (tf.compat.v1.placeholder(tf.float32, [None, None]),)
      ),
      "outputs_grads",
    ),
    (
      "conv_output_kronecker_channels",
      lambda: ff.ConvOutputKroneckerFactor(
        (tf.compat.v1.placeholder(tf.float32, [None, 3, 3, None]),)
      ),
      "outputs_grads",
    ),
    (
      "conv_output_kronecker_sources_disagree",
      lambda: ff.ConvOutputKroneckerFactor(
        (tf.ones((2, 3, 3, 2)), tf.ones((2, 3, 3, 5)))
      ),
      "outputs_grads",
    ),
    (
      "full_factor_sources_disagree",
      lambda: ff.FullFactor((tf.ones((2,)), tf.ones((3,))), 2),
      "params_grads",
    ),
  )
  def test_unknown_or_mismatched_sizes(self, build, arg_name):
    with tf.Graph().as_default():
      with self.assertRaisesRegex(ValueError, arg_name):
        build()

  @parameterized.named_parameters(
    ("lists", [2, 2, 1, 4], [1, 1, 1, 1]),
    ("tuples", (2, 2, 1, 4), (1, 1, 1, 1)),
    ("numpy", np.array([2, 2, 1, 4]), np.array([1, 1, 1, 1])),
  )
  def test_conv_input_kronecker_scope_name(self, filter_shape, strides):
    with tf.Graph().as_default():
      factor = ff.ConvInputKroneckerFactor(
        tf.ones((2, 3, 3, 1), name="x"),
        filter_shape,
        strides,
        "SAME",
        has_bias=True,
      )
      self.assertEqual(
        factor.get_cov().op.name,
        "ff_convinkron/x_2-2-1-4_1-1-1-1_SAME_True/cov",
      )


if __name__ == "__main__":
  tf.test.main()
