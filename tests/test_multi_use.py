"""Tests for kfac._multi_use (shared-weight layers of releases 1.5-1.7).

Oracles are plain NumPy: moments summed with explicit loops over uses and
examples, dense Kronecker matrices built entry by entry, and the series
formulas of releases.md (§2.9, §3.7) written out with numpy.linalg.
"""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from kfac import _multi_use as mu
from kfac import fisher_factors as ff
from kfac import layer_collection as lc_lib
import kfac_training
import random_matrices


def _data(rng, num_uses, batch, dim, dtype, prefix):
  """A list over uses of `[batch, dim]` constants named `<prefix><u>`."""
  values = [rng.randn(batch, dim) for _ in range(num_uses)]
  tensors = [
    tf.constant(v, dtype=dtype, name="%s%d" % (prefix, u))
    for u, v in enumerate(values)
  ]
  return values, tensors


def _with_ones(x, has_bias):
  if has_bias:
    return np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
  return x


def _c0_oracle(sources, has_bias):
  """Σ_s Σ_u Σ_b x xᵀ / (T·B), explicit loops."""
  num_uses, batch = len(sources[0]), sources[0][0].shape[0]
  dim = sources[0][0].shape[1] + int(has_bias)
  total = np.zeros((dim, dim))
  for uses in sources:
    for u in range(num_uses):
      x = _with_ones(uses[u], has_bias)
      for b in range(batch):
        total += np.outer(x[b], x[b])
  return total / (num_uses * batch)


def _c1_oracle(sources, has_bias):
  """Σ_s Σ_{u≥1} Σ_b x_{u,b} x_{u−1,b}ᵀ / (T·B), explicit loops."""
  num_uses, batch = len(sources[0]), sources[0][0].shape[0]
  dim = sources[0][0].shape[1] + int(has_bias)
  total = np.zeros((dim, dim))
  for uses in sources:
    for u in range(1, num_uses):
      future = _with_ones(uses[u], has_bias)
      present = _with_ones(uses[u - 1], has_bias)
      for b in range(batch):
        total += np.outer(future[b], present[b])
  return total / (num_uses * batch)


def _dense_kron(left, right):
  """K[i·m + k, j·m + l] = left[i, j]·right[k, l], built entry by entry."""
  n, m = left.shape[0], right.shape[0]
  out = np.zeros((n * m, n * m))
  for i in range(n):
    for j in range(n):
      for k in range(m):
        for l in range(m):
          out[i * m + k, j * m + l] = left[i, j] * right[k, l]
  return out


def _pi(a_cov, g_cov):
  return np.sqrt(
    (np.trace(a_cov) / a_cov.shape[0]) / (np.trace(g_cov) / g_cov.shape[0])
  )


def _inv_sqrt(cov, damping):
  evals, evecs = np.linalg.eigh(cov)
  s = evecs.dot(np.diag((evals + damping) ** -0.5)).dot(evecs.T)
  return (s + s.T) / 2


def _series_inverse_oracle(option, a0, a1, g0, g1, d_a, d_g, num_uses, v):
  """The series inverse of releases.md §3.7 with NumPy decompositions."""
  z = v.T
  s_a, s_g = _inv_sqrt(a0, d_a), _inv_sqrt(g0, d_g)
  if option == 1:

    def quants(s, c1):
      c1s = (c1 + c1.T) / 2
      hat_psi = s.dot(c1s).dot(s)
      evals, evecs = np.linalg.eigh(hat_psi)
      return s.dot(evecs), np.abs(evals)

    l_a, psi_a = quants(s_a, a1)
    l_g, psi_g = quants(s_g, g1)
    z = l_g.T.dot(z).dot(l_a)
    gamma = np.zeros_like(z)
    for i in range(z.shape[0]):
      for j in range(z.shape[1]):
        x = psi_g[i] * psi_a[j]
        gamma[i, j] = (1 - x) ** 2 / (
          num_uses * (1 - x**2) - 2 * x * (1 - x**num_uses)
        )
    z = z * gamma
    z = l_g.dot(z).dot(l_a.T)
  else:

    def quants(s, c0, c1, damping):
      hat_psi = s.dot(c1).dot(s)
      _, sigma, e_t = np.linalg.svd(hat_psi)
      p = c1.T.dot(np.linalg.inv(c0 + damping * np.eye(c0.shape[0])))
      return p, s.dot(e_t.T), np.minimum(sigma**2, 1.0)

    p_a, k_a, mu_a = quants(s_a, a0, a1, d_a)
    p_g, k_g, mu_g = quants(s_g, g0, g1, d_g)
    z = z - p_g.dot(z).dot(p_a.T)
    z = k_g.T.dot(z).dot(k_a)
    divisor = 1.0 - np.outer(mu_g, mu_a)
    divisor[divisor == 0.0] = 1.0
    z = z / divisor
    z = k_g.dot(z).dot(k_a.T)
    z = z - p_g.T.dot(z).dot(p_a)
    z = z / num_uses
  return z.T


def _mat2d(w, b):
  return w if b is None else np.concatenate([w, b[None, :]], axis=0)


class FullyConnectedMultiKFTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("one_source_float32", 1, False, tf.float32),
    ("two_sources_bias_float64", 2, True, tf.float64),
    ("one_source_bias_float32", 1, True, tf.float32),
  )
  def testCovAndCovDt1(self, num_sources, has_bias, dtype):
    rng = np.random.RandomState(1)
    num_uses, batch, dim, decay = 3, 4, 3, 0.6
    with tf.Graph().as_default():
      values, tensors = zip(
        *[
          _data(rng, num_uses, batch, dim, dtype, "s%d_x" % s)
          for s in range(num_sources)
        ]
      )
      factor = mu.FullyConnectedMultiKF(tensors, has_bias=has_bias)
      factor.register_cov_dt1()
      self.assertEqual(factor.get_cov().dtype.base_dtype, dtype)
      self.assertEqual(factor.get_cov_dt1().dtype.base_dtype, dtype)
      scope = "__".join("s0_x%d" % u for u in range(num_uses))
      self.assertEqual(
        factor.get_cov().op.name,
        "ff_fc_multi/%s%s/cov"
        % (
          scope,
          "_" + "__".join("s1_x%d" % u for u in range(num_uses))
          if num_sources == 2
          else "",
        ),
      )
      self.assertEqual(
        factor.get_cov_dt1().op.name,
        factor.get_cov().op.name[: -len("cov")] + "cov_dt1",
      )
      update = factor.make_covariance_update_op(decay)
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(update)
        sess.run(update)
        cov, cov_dt1 = sess.run([factor.get_cov(), factor.get_cov_dt1()])
    dim_h = dim + int(has_bias)
    c0 = _c0_oracle(values, has_bias)
    c1 = _c1_oracle(values, has_bias)
    expected_cov = np.eye(dim_h)
    expected_dt1 = np.zeros((dim_h, dim_h))
    for _ in range(2):
      expected_cov = decay * expected_cov + (1 - decay) * c0
      expected_dt1 = decay * expected_dt1 + (1 - decay) * c1
    tol = 1e-5 if dtype == tf.float32 else 1e-12
    np.testing.assert_allclose(cov, expected_cov, rtol=tol, atol=tol)
    np.testing.assert_allclose(cov_dt1, expected_dt1, rtol=tol, atol=tol)

  @parameterized.named_parameters(("plain", False), ("bias", True))
  def testOptionQuantities(self, has_bias):
    rng = np.random.RandomState(2)
    num_uses, batch, dim = 4, 5, 3
    d1, d2 = 0.3, 0.05
    with tf.Graph().as_default():
      values, tensors = _data(rng, num_uses, batch, dim, tf.float64, "x")
      factor = mu.FullyConnectedMultiKF((tensors,), has_bias=has_bias)
      factor.register_option1quants(d1)
      factor.register_option2quants(d2)
      update = factor.make_covariance_update_op(0.0)
      inv_ops = factor.make_inverse_update_ops()
      self.assertLen(inv_ops, 1)
      names = sorted(
        v.op.name.split("/")[-1] for v in tf.compat.v1.global_variables()
      )
      self.assertEqual(
        names,
        [
          "Kmat_damp0.05",
          "Lmat_damp0.05",
          "Lmat_damp0.3",
          "cov",
          "cov_dt1",
          "mu_damp0.05",
          "psi_damp0.3",
        ],
      )
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(update)
        sess.run(inv_ops)
        lmat, psi = sess.run(factor.get_option1quants(d1))
        pmat, kmat, mu_vals = sess.run(factor.get_option2quants(d2))
    c0 = _c0_oracle([values], has_bias)
    c1 = _c1_oracle([values], has_bias)
    n = c0.shape[0]
    # Option 1: L ψ Lᵀ = S |Ψ̂| S and L Lᵀ = (C0 + d I)⁻¹ (sign/order free).
    s = _inv_sqrt(c0, d1)
    hat_psi = s.dot((c1 + c1.T) / 2).dot(s)
    evals, evecs = np.linalg.eigh(hat_psi)
    abs_psi = evecs.dot(np.diag(np.abs(evals))).dot(evecs.T)
    np.testing.assert_allclose(
      lmat.dot(np.diag(psi)).dot(lmat.T), s.dot(abs_psi).dot(s), atol=1e-10
    )
    np.testing.assert_allclose(
      lmat.dot(lmat.T), np.linalg.inv(c0 + d1 * np.eye(n)), atol=1e-10
    )
    np.testing.assert_allclose(np.sort(psi), np.sort(np.abs(evals)), atol=1e-10)
    # Option 2: P = C1ᵀ (C0 + dI)⁻¹, K Kᵀ = (C0 + dI)⁻¹,
    # K diag(σ²) Kᵀ = S Ψ̂ᵀ Ψ̂ S, μ = min(σ², 1).
    s = _inv_sqrt(c0, d2)
    hat_psi = s.dot(c1).dot(s)
    _, sigma, e_t = np.linalg.svd(hat_psi)
    np.testing.assert_allclose(
      pmat, c1.T.dot(np.linalg.inv(c0 + d2 * np.eye(n))), atol=1e-10
    )
    np.testing.assert_allclose(
      kmat.dot(kmat.T), np.linalg.inv(c0 + d2 * np.eye(n)), atol=1e-10
    )
    np.testing.assert_allclose(
      kmat.dot(np.diag(np.minimum(sigma**2, 1.0))).dot(kmat.T),
      s.dot(e_t.T).dot(np.diag(np.minimum(sigma**2, 1.0))).dot(e_t).dot(s),
      atol=1e-10,
    )
    np.testing.assert_allclose(
      np.sort(mu_vals), np.sort(np.minimum(sigma**2, 1.0)), atol=1e-10
    )

  @parameterized.named_parameters(
    ("argument_on", True, None, True),
    ("neither", False, None, False),
    ("global_on", False, True, True),
    ("global_off", False, False, False),
    ("both", True, True, True),
  )
  def testColocation(self, flag, global_value, colocated):
    missing = object()
    saved = getattr(ff, "COLOCATE_COV_OPS_WITH_INPUTS", missing)
    if global_value is not None:
      ff.COLOCATE_COV_OPS_WITH_INPUTS = global_value
    try:
      with tf.Graph().as_default():
        _, tensors = _data(np.random.RandomState(0), 2, 3, 2, tf.float32, "x")
        factor = mu.FullyConnectedMultiKF(
          (tensors,), colocate_cov_ops_with_inputs=flag
        )
        update = factor.make_covariance_update_op(0.5)
        ops = [
          op
          for op in tf.compat.v1.get_default_graph().get_operations()
          if op.type == "MatMul"
        ]
    finally:
      if saved is missing:
        if hasattr(ff, "COLOCATE_COV_OPS_WITH_INPUTS"):
          del ff.COLOCATE_COV_OPS_WITH_INPUTS
      else:
        ff.COLOCATE_COV_OPS_WITH_INPUTS = saved
    self.assertIsNotNone(update)
    self.assertNotEmpty(ops)
    for op in ops:
      self.assertEqual(op.colocation_groups() == [b"loc:@x0"], colocated)

  def testBothOptionsForOneDampingCollide(self):
    with tf.Graph().as_default():
      _, tensors = _data(np.random.RandomState(0), 2, 3, 2, tf.float32, "x")
      factor = mu.FullyConnectedMultiKF((tensors,))
      factor.register_option1quants(0.1)
      with self.assertRaisesRegex(ValueError, "Lmat_damp0.1"):
        factor.register_option2quants(0.1)

  @parameterized.named_parameters(
    ("not_a_list", lambda t: t[0][0], ValueError),
    ("ragged_sources", lambda t: (t[0], t[0][:1]), ValueError),
    ("rank_one", lambda t: ((tf.constant([1.0, 2.0]),),), ValueError),
  )
  def testBadTensorLists(self, make, error):
    with tf.Graph().as_default():
      _, tensors = _data(np.random.RandomState(0), 2, 3, 2, tf.float32, "x")
      with self.assertRaises(error):
        mu.FullyConnectedMultiKF(make((tensors,)))


class _BlockTestBase(parameterized.TestCase):
  def _run_block(
    self, block_cls, has_bias, num_uses, damping, vector_fns, **kwargs
  ):
    """Builds a block, refreshes its statistics and evaluates products.

    Returns the NumPy data (inputs, grads, vector) and the products.
    """
    rng = np.random.RandomState(3)
    batch, d_in, d_out = 5, 3, 2
    with tf.Graph().as_default():
      x_vals, xs = _data(rng, num_uses, batch, d_in, tf.float64, "x")
      g_vals, gs = _data(rng, num_uses, batch, d_out, tf.float64, "g")
      w_val = rng.randn(d_in, d_out)
      b_val = rng.randn(d_out) if has_bias else None
      vector = (
        (tf.constant(w_val), tf.constant(b_val))
        if has_bias
        else tf.constant(w_val)
      )
      lc = lc_lib.LayerCollection()
      block = block_cls(lc, xs, gs, has_bias=has_bias, **kwargs)
      self.assertEqual(block.num_inputs(), num_uses)
      self.assertEqual(block.num_registered_minibatches, 1)
      self.assertIs(block.tensors_to_compute_grads(), block._outputs)
      block.instantiate_factors((gs,), damping)
      cov_ops = [f.make_covariance_update_op(0.0) for f in lc.get_factors()]
      inv_ops = [
        op for f in lc.get_factors() for op in f.make_inverse_update_ops()
      ]
      products = [fn(block, vector) for fn in vector_fns]
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(cov_ops)
        sess.run(inv_ops)
        results = sess.run(products)
    results = [_mat2d(*r) if isinstance(r, tuple) else r for r in results]
    return x_vals, g_vals, _mat2d(w_val, b_val), results


class FullyConnectedMultiIndepFBTest(_BlockTestBase):
  @parameterized.named_parameters(("plain", False), ("bias", True))
  def testProductsMatchDenseKronecker(self, has_bias):
    num_uses, damping = 3, 0.2
    x_vals, g_vals, v, (prod, inv) = self._run_block(
      mu.FullyConnectedMultiIndepFB,
      has_bias,
      num_uses,
      damping,
      [lambda b, v: b.multiply(v), lambda b, v: b.multiply_inverse(v)],
    )
    a0 = _c0_oracle([x_vals], has_bias)
    g0 = _c0_oracle([g_vals], False)
    pi = _pi(a0, g0)
    normalized = damping / num_uses
    a_d = a0 + pi * np.sqrt(normalized) * np.eye(a0.shape[0])
    g_d = g0 + np.sqrt(normalized) / pi * np.eye(g0.shape[0])
    fisher = num_uses * _dense_kron(a_d, g_d)
    vec = v.reshape(-1)
    np.testing.assert_allclose(prod.reshape(-1), fisher.dot(vec), rtol=1e-9)
    np.testing.assert_allclose(
      inv.reshape(-1), np.linalg.solve(fisher, vec), rtol=1e-8
    )

  def testUseCountMismatch(self):
    with tf.Graph().as_default():
      _, xs = _data(np.random.RandomState(0), 2, 3, 2, tf.float32, "x")
      with self.assertRaises(AssertionError):
        mu.FullyConnectedMultiIndepFB(lc_lib.LayerCollection(), xs, xs[:1])


class FullyConnectedSeriesFBTest(_BlockTestBase):
  @parameterized.named_parameters(
    ("option1", mu.SeriesFBApproximation.option1, False),
    ("option1_bias", mu.SeriesFBApproximation.option1, True),
    ("option2", mu.SeriesFBApproximation.option2, False),
    ("option2_bias", mu.SeriesFBApproximation.option2, True),
  )
  def testMultiplyInverseMatchesSeriesFormulas(self, option, has_bias):
    num_uses, damping = 4, 0.1
    x_vals, g_vals, v, (inv,) = self._run_block(
      mu.FullyConnectedSeriesFB,
      has_bias,
      num_uses,
      damping,
      [lambda b, v: b.multiply_inverse(v)],
      option=option,
    )
    a0, a1 = _c0_oracle([x_vals], has_bias), _c1_oracle([x_vals], has_bias)
    g0, g1 = _c0_oracle([g_vals], False), _c1_oracle([g_vals], False)
    pi = _pi(a0, g0)
    sqrt_d = np.sqrt(damping / num_uses)
    expected = _series_inverse_oracle(
      int(option), a0, a1, g0, g1, pi * sqrt_d, sqrt_d / pi, num_uses, v
    )
    np.testing.assert_allclose(inv, expected, rtol=1e-7, atol=1e-10)

  @parameterized.named_parameters(
    ("option1", mu.SeriesFBApproximation.option1),
    ("option2", mu.SeriesFBApproximation.option2),
  )
  def testSingleUseIsTheKroneckerInverse(self, option):
    # With T = 1 there is no lag-1 moment (C1 = 0), and both series
    # formulas reduce to (A + d_A I)⁻¹ V (G + d_G I)⁻¹.
    damping = 0.05
    x_vals, g_vals, v, (inv,) = self._run_block(
      mu.FullyConnectedSeriesFB,
      True,
      1,
      damping,
      [lambda b, v: b.multiply_inverse(v)],
      option=option,
    )
    a0 = _c0_oracle([x_vals], True)
    g0 = _c0_oracle([g_vals], False)
    pi = _pi(a0, g0)
    fisher = _dense_kron(
      a0 + pi * np.sqrt(damping) * np.eye(a0.shape[0]),
      g0 + np.sqrt(damping) / pi * np.eye(g0.shape[0]),
    )
    np.testing.assert_allclose(
      inv.reshape(-1), np.linalg.solve(fisher, v.reshape(-1)), rtol=1e-8
    )

  def testPiOffNamesVariablesAfterTheFloatDamping(self):
    # With PI_TYPE "off" both factors get √d' as a float (d' = d / T), and
    # the variables are named after its repr (releases.md §12.1).
    from kfac import fisher_blocks

    missing = object()
    saved = getattr(fisher_blocks, "PI_TYPE", missing)
    fisher_blocks.PI_TYPE = "off"
    try:
      with tf.Graph().as_default():
        _, xs = _data(np.random.RandomState(0), 2, 3, 2, tf.float32, "x")
        _, gs = _data(np.random.RandomState(1), 2, 3, 2, tf.float32, "g")
        block = mu.FullyConnectedSeriesFB(lc_lib.LayerCollection(), xs, gs)
        block.instantiate_factors((gs,), 0.002)
        names = {v.op.name for v in tf.compat.v1.global_variables()}
    finally:
      if saved is missing:
        del fisher_blocks.PI_TYPE
      else:
        fisher_blocks.PI_TYPE = saved
    for side in ("x0__x1", "g0__g1"):
      for quant in ("Lmat", "Kmat", "mu"):
        self.assertIn(
          "ff_fc_multi/%s/%s_damp0.03162277660168379" % (side, quant), names
        )

  def testMultiplyIsNotImplemented(self):
    with tf.Graph().as_default():
      _, xs = _data(np.random.RandomState(0), 2, 3, 2, tf.float32, "x")
      block = mu.FullyConnectedSeriesFB(lc_lib.LayerCollection(), xs, xs)
      with self.assertRaises(NotImplementedError):
        block.multiply(tf.zeros([2, 2]))

  def testUnknownOption(self):
    with tf.Graph().as_default():
      _, xs = _data(np.random.RandomState(0), 2, 3, 2, tf.float32, "x")
      _, gs = _data(np.random.RandomState(1), 2, 3, 2, tf.float32, "g")
      block = mu.FullyConnectedSeriesFB(
        lc_lib.LayerCollection(), xs, gs, option=3
      )
      with self.assertRaisesRegex(ValueError, "approximation"):
        block.instantiate_factors((gs,), 0.1)


class PosdefEigTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("self_adjoint", "self_adjoint"), ("svd", "svd")
  )
  def testReconstructsPsdMatrix(self, method):
    psd = random_matrices.random_psd(4, 4)
    with tf.Graph().as_default():
      evals, evecs = mu.posdef_eig_functions[method](tf.constant(psd))
      with tf.compat.v1.Session() as sess:
        evals, evecs = sess.run([evals, evecs])
    np.testing.assert_allclose(
      evecs.dot(np.diag(evals)).dot(evecs.T), psd, atol=1e-10
    )
    self.assertTrue(np.all(evals >= 0))

  def testSelfAdjointTakesAbsoluteValues(self):
    mat = np.diag([2.0, -3.0])
    with tf.Graph().as_default():
      evals, _ = mu.posdef_eig(tf.constant(mat))
      with tf.compat.v1.Session() as sess:
        self.assertCountEqual(sess.run(evals).tolist(), [2.0, 3.0])


class TrainingTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("kron_indep", mu.FullyConnectedMultiIndepFB, {}),
    (
      "kron_series_1",
      mu.FullyConnectedSeriesFB,
      {"option": mu.SeriesFBApproximation.option1},
    ),
    (
      "kron_series_2",
      mu.FullyConnectedSeriesFB,
      {"option": mu.SeriesFBApproximation.option2},
    ),
  )
  def testSharedLayerTrainsWithKfacOptimizer(self, block_cls, kwargs):
    # logits = Σ_u (x_u W + b): one weight matrix used at T = 3 steps; the
    # block is registered directly with the engine's LayerCollection.
    rng = np.random.RandomState(5)
    num_uses, batch, d_in, classes = 3, 32, 4, 3
    x_vals = [
      rng.randn(batch, d_in).astype(np.float32) for _ in range(num_uses)
    ]
    teacher = rng.randn(d_in, classes)
    labels = np.argmax(sum(x.dot(teacher) for x in x_vals), axis=1)
    with tf.Graph().as_default():
      tf.compat.v1.set_random_seed(0)
      w = tf.compat.v1.get_variable("w", initializer=tf.zeros([d_in, classes]))
      b = tf.compat.v1.get_variable("b", initializer=tf.zeros([classes]))
      xs = [tf.constant(x) for x in x_vals]
      outputs = [tf.matmul(x, w) + b for x in xs]
      logits = tf.add_n(outputs)
      loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=tf.constant(labels), logits=logits
        )
      )
      lc = lc_lib.LayerCollection()
      block = block_cls(lc, xs, outputs, has_bias=True, **kwargs)
      lc.register_block((w, b), block)
      lc.register_categorical_predictive_distribution(logits)
      initial, *_, final = kfac_training.train_with_kfac(
        loss, lc, learning_rate=0.1, rounds=5
      )
    self.assertTrue(np.isfinite(final))
    self.assertLess(final, 0.5 * initial)


if __name__ == "__main__":
  absltest.main()
