"""Tests for kfac.estimator.

The legacy estimator tests (api.md §11.4), then the estimation modes on a
tiny network — one fully connected layer `logits = x w (+ b)` with a
categorical loss — checked against the true Fisher computed in NumPy from the
softmax probabilities and the inputs:

  per example b, with ã_b = (x_b, 1) (or x_b without bias), p_b =
  softmax(logits_b), F_b = diag(p_b) - p_b p_bᵀ, the Fisher of the layer's
  parameters (laid out as the `[in(+1), out]` matrix, row-major) is
  kron(ã_b ã_bᵀ, F_b); the block statistics are averages over the batch.
"""

from unittest import mock

from absl.testing import parameterized
import numpy as np
import pytest
import tensorflow as tf

from kfac import estimator
from kfac import fisher_factors
from kfac import layer_collection as lc_lib
from kfac import op_queue
from kfac import utils

IN, OUT = 4, 3


# --- NumPy oracle ----------------------------------------------------------


def _softmax_rows(z):
  e = np.exp(z - z.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


def _homog(x, has_bias):
  return np.hstack([x, np.ones((x.shape[0], 1))]) if has_bias else x


def _per_example_loss_fishers(logits):
  fishers = []
  for p in _softmax_rows(logits):
    fishers.append(np.diag(p) - np.outer(p, p))
  return fishers


def _true_fisher(x, logits, has_bias):
  """(1/B) Σ_b kron(ã_b ã_bᵀ, F_b): the Fisher of the mean per-example loss."""
  a = _homog(x, has_bias)
  fishers = _per_example_loss_fishers(logits)
  total = 0.0
  for b in range(x.shape[0]):
    total = total + np.kron(np.outer(a[b], a[b]), fishers[b])
  return total / x.shape[0]


def _loss_factor(p):
  """B = diag(√p) − p √pᵀ, with B Bᵀ = diag(p) − p pᵀ."""
  q = np.sqrt(p)
  return np.diag(q) - np.outer(p, q)


# --- Graph helpers ---------------------------------------------------------


def _values(seed, batch):
  rng = np.random.RandomState(seed)
  return dict(
    x=rng.randn(batch, IN).astype(np.float32),
    w=rng.randn(IN, OUT).astype(np.float32),
    b=rng.randn(OUT).astype(np.float32),
    targets=rng.randint(0, OUT, size=batch).astype(np.int32),
  )


def _build_layer(vals, approx, has_bias=True, seed=None, with_targets=True):
  """Builds x → logits, registers the layer and a categorical loss."""
  x = tf.constant(vals["x"])
  w = tf.compat.v1.get_variable("w", initializer=vals["w"])
  logits = tf.matmul(x, w)
  params = w
  if has_bias:
    b = tf.compat.v1.get_variable("b", initializer=vals["b"])
    logits += b
    params = (w, b)
  lc = lc_lib.LayerCollection()
  if approx in ("kron", "diagonal"):
    lc.register_fully_connected(params, x, logits, approx=approx)
  else:  # generic "full" / "naive"
    lc.register_generic(
      params,
      batch_size=vals["x"].shape[0],
      approx="full" if approx == "full" else "diagonal",
    )
  targets = tf.constant(vals["targets"]) if with_targets else None
  lc.register_categorical_predictive_distribution(
    logits, seed=seed, targets=targets
  )
  variables = [w, b] if has_bias else [w]
  return lc, variables, logits


def _build_estimator(
  vals, approx, cov_ema_decay=0.0, estimation_mode="exact", **kwargs
):
  """Builds `_build_layer` and a `FisherEstimator` (damping 0.1) of it.

  Returns:
    `(lc, est, logits)`: the layer collection, the estimator and the logits.
  """
  lc, variables, logits = _build_layer(vals, approx, **kwargs)
  est = estimator.FisherEstimator(
    variables, cov_ema_decay, 0.1, lc, estimation_mode=estimation_mode
  )
  return lc, est, logits


def _run_cov_update(sess, vals, approx, estimation_mode="exact", **kwargs):
  """Builds `_build_estimator` (decay 0) and runs one cov update.

  Returns:
    `(lc, logits)` of the built layer.
  """
  lc, est, logits = _build_estimator(
    vals, approx, estimation_mode=estimation_mode, **kwargs
  )
  sess.run(tf.compat.v1.global_variables_initializer())
  sess.run(est.cov_update_op)
  return lc, logits


def _kron_covs(lc, sess):
  """(A, G) of the single fully connected Kronecker block."""
  covs = sess.run([f.get_cov() for f in lc.get_factors()])
  inputs = [c for c in covs if c.shape[0] != OUT]
  outputs = [c for c in covs if c.shape[0] == OUT]
  assert len(inputs) == 1 and len(outputs) == 1
  return inputs[0], outputs[0]


def _single_cov(lc, sess):
  factors = list(lc.get_factors())
  assert len(factors) == 1
  return sess.run(factors[0].get_cov())


class LegacyEstimatorTest(parameterized.TestCase):
  """The legacy estimator_test.py cases (api.md §11.4)."""

  def _setup(self):
    inputs = tf.random.normal((2, 2), dtype=tf.float32, seed=1)
    weights = tf.compat.v1.get_variable("w", shape=(2, 2), dtype=tf.float32)
    bias = tf.compat.v1.get_variable(
      "b", initializer=tf.compat.v1.zeros_initializer(), shape=(2,)
    )
    output = tf.matmul(inputs, weights) + bias
    layer_collection = lc_lib.LayerCollection()
    # Only the weights are registered.
    layer_collection.register_fully_connected(
      params=weights, inputs=inputs, outputs=output
    )
    outputs = tf.tanh(output)
    targets = tf.zeros([2], dtype=tf.int32)
    layer_collection.register_categorical_predictive_distribution(
      logits=outputs, targets=targets
    )
    return layer_collection, weights, bias

  def test_estimator_init_manual_registration(self):
    with tf.Graph().as_default():
      lc, w, b = self._setup()
      # Only the registered variable: fine.
      estimator.FisherEstimator([w], 0.1, 0.2, lc)
    with tf.Graph().as_default():
      lc, w, b = self._setup()
      # The bias is used but not registered.
      with pytest.raises(ValueError, match="not registered"):
        estimator.FisherEstimator([w, b], 0.1, 0.2, lc)
    with tf.Graph().as_default():
      lc, w, b = self._setup()
      # A registered variable is missing from the list.
      with pytest.raises(ValueError, match="not included in list"):
        estimator.FisherEstimator([], 0.1, 0.2, lc)

  def test_variable_wrong_number_of_uses(self):
    with tf.Graph().as_default():
      lc, w, _ = self._setup()
      with mock.patch.object(utils.SubGraph, "variable_uses", return_value=42):
        with pytest.raises(ValueError, match="wrong number of uses"):
          estimator.FisherEstimator([w], 0.1, 0.2, lc)

  def test_invalid_estimation_mode(self):
    with tf.Graph().as_default():
      lc, w, _ = self._setup()
      with pytest.raises(ValueError, match="Unrecognized value.*not_a_real"):
        estimator.FisherEstimator(
          [w], 0.1, 0.2, lc, estimation_mode="not_a_real_mode"
        )

  @parameterized.named_parameters(
    ("gradients", "gradients"),
    ("empirical", "empirical"),
    ("curvature_prop", "curvature_prop"),
    ("exact", "exact"),
  )
  def test_all_modes_build(self, mode):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      lc, w, _ = self._setup()
      est = estimator.FisherEstimator([w], 0.1, 0.2, lc, estimation_mode=mode)
      (block,) = lc.get_blocks()
      factors = (block._input_factor, block._output_factor)
      vector = tf.constant([[1.0, -2.0], [0.5, 3.0]])
      (precond,) = est.multiply_inverse([(vector, w)])
      sess.run(tf.compat.v1.global_variables_initializer())
      initial = sess.run([f.get_cov() for f in factors])
      sess.run(est.cov_update_op)
      sess.run(est.inv_update_op)
      a_cov, g_cov = sess.run([f.get_cov() for f in factors])
      precond_value = sess.run(precond[0])
    # The statistics were updated: A is the second moment of the inputs, G
    # of the sampled/empirical/exact output gradients, both PSD.
    for before, after in zip(initial, (a_cov, g_cov)):
      self.assertFalse(np.allclose(before, after))
      np.testing.assert_allclose(after, after.T, rtol=1e-6, atol=1e-7)
      self.assertGreaterEqual(np.linalg.eigvalsh(after).min(), -1e-6)
    # NumPy oracle of the damped Kronecker inverse (damping 0.2).
    a_cov, g_cov = a_cov.astype(np.float64), g_cov.astype(np.float64)
    pi = np.sqrt((np.trace(a_cov) / 2) / (np.trace(g_cov) / 2))
    a_damped = a_cov + pi * np.sqrt(0.2) * np.eye(2)
    g_damped = g_cov + np.sqrt(0.2) / pi * np.eye(2)
    expected = (
      np.linalg.inv(a_damped)
      @ np.array([[1.0, -2.0], [0.5, 3.0]])
      @ np.linalg.inv(g_damped)
    )
    np.testing.assert_allclose(precond_value, expected, rtol=1e-4, atol=1e-5)


class RegistrationErrorsTest(parameterized.TestCase):
  def test_one_error_lists_every_problem(self):
    with tf.Graph().as_default():
      x = tf.ones([3, 2])
      w = tf.compat.v1.get_variable("w", shape=[2, 2])
      v = tf.compat.v1.get_variable("v", shape=[2])
      u = tf.compat.v1.get_variable("u", shape=[2])
      logits = tf.matmul(x, w) + v + u
      lc = lc_lib.LayerCollection()
      lc.register_fully_connected(w, x, tf.matmul(x, w))
      lc.register_generic(v, batch_size=3)
      lc.register_categorical_predictive_distribution(logits)
      with pytest.raises(ValueError) as info:
        estimator.FisherEstimator([w, u], 0.95, 0.1, lc)
    message = str(info.value)
    self.assertIn(
      "Found the following errors with variable registration", message
    )
    self.assertIn("Variable u:0 not registered.", message)
    self.assertIn("1 registered variables were not included in list", message)
    self.assertIn("v:0", message)

  def test_variable_used_twice_but_registered_once(self):
    # Resource variables: each use reads the variable through its own op;
    # the two matmuls are two uses.
    with tf.Graph().as_default():
      x = tf.ones([3, 2])
      w = tf.compat.v1.get_variable("w", shape=[2, 2])
      h = tf.matmul(x, w)
      logits = tf.matmul(tf.tanh(h), w)
      lc = lc_lib.LayerCollection()
      lc.register_fully_connected(w, x, h)
      lc.register_categorical_predictive_distribution(logits)
      with pytest.raises(
        ValueError,
        match=r"wrong number of uses \(1 registrations vs. "
        r"2 uses\)",
      ):
        estimator.FisherEstimator([w], 0.95, 0.1, lc)

  def test_no_loss_raises(self):
    with tf.Graph().as_default():
      x = tf.ones([3, 2])
      w = tf.compat.v1.get_variable("w", shape=[2, 2])
      lc = lc_lib.LayerCollection()
      lc.register_fully_connected(w, x, tf.matmul(x, w))
      with pytest.raises(ValueError, match="at least one registered loss"):
        estimator.FisherEstimator([w], 0.95, 0.1, lc)

  def test_properties(self):
    with tf.Graph().as_default():
      lc, variables, _ = _build_layer(_values(0, 2), "kron")
      est = estimator.FisherEstimator(variables, 0.95, 0.25, lc)
      self.assertEqual(est.variables, variables)
      self.assertEqual(est.damping, 0.25)


class ExactModeTest(parameterized.TestCase):
  """`exact` gives the true Fisher (up to the block's own approximation)."""

  @parameterized.named_parameters(
    ("bias", True),
    ("no_bias", False),
  )
  def test_kronecker_factors(self, has_bias):
    vals = _values(1, batch=5)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      lc, logits = _run_cov_update(sess, vals, "kron", has_bias=has_bias)
      logits_value = sess.run(logits)
      a_cov, g_cov = _kron_covs(lc, sess)
    a = _homog(vals["x"].astype(np.float64), has_bias)
    expected_a = sum(np.outer(row, row) for row in a) / a.shape[0]
    expected_g = sum(_per_example_loss_fishers(logits_value)) / a.shape[0]
    np.testing.assert_allclose(a_cov, expected_a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g_cov, expected_g, rtol=1e-5, atol=1e-6)

  def test_kronecker_block_is_the_true_fisher_for_one_example(self):
    vals = _values(2, batch=1)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      lc, logits = _run_cov_update(sess, vals, "kron")
      block = list(lc.get_blocks())[0]
      full_block, logits_value = sess.run([block.full_fisher_block(), logits])
    np.testing.assert_allclose(
      full_block,
      _true_fisher(vals["x"], logits_value, True),
      rtol=1e-5,
      atol=1e-6,
    )

  def test_diagonal_block_is_the_diagonal_of_the_true_fisher(self):
    vals = _values(3, batch=6)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      lc, logits = _run_cov_update(sess, vals, "diagonal")
      cov = _single_cov(lc, sess)
      logits_value = sess.run(logits)
    expected = np.diag(_true_fisher(vals["x"], logits_value, True))
    self.assertEqual(cov.shape, (IN + 1, OUT))
    np.testing.assert_allclose(cov.reshape(-1), expected, rtol=1e-5, atol=1e-6)

  @parameterized.named_parameters(
    ("full", "full"),
    ("naive_diagonal", "naive"),
  )
  def test_generic_block_is_the_true_fisher_for_one_example(self, approx):
    # Generic blocks square the gradient of the summed loss, so they are the
    # per-example Fisher only for a batch of one.
    vals = _values(4, batch=1)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      lc, logits = _run_cov_update(sess, vals, approx)
      cov = _single_cov(lc, sess)
      logits_value = sess.run(logits)
    expected = _true_fisher(vals["x"], logits_value, True)
    if approx == "naive":
      expected = np.diag(expected)[:, None]
    np.testing.assert_allclose(cov, expected, rtol=1e-5, atol=1e-6)


class ExactModeTwoLayersTwoLossesTest(parameterized.TestCase):
  """Exact statistics back-propagated through a layer, from two losses.

  s1 = x w1, h = tanh(s1), logits = h w2; a categorical loss on the logits
  and a normal loss (variance VAR) on h. Per example, with D_b = diag(1 −
  h_b²), the exact output-side statistic of layer 1 is
  D_b (w2 F_b w2ᵀ + I/VAR) D_b, and that of layer 2 is F_b (the normal loss
  does not reach the logits: zero contribution).
  """

  VAR = 0.5

  def test_output_factors(self):
    rng = np.random.RandomState(16)
    batch, hidden = 4, 3
    x_value = rng.randn(batch, IN).astype(np.float32)
    w1_value = rng.randn(IN, hidden).astype(np.float32)
    w2_value = rng.randn(hidden, OUT).astype(np.float32)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.constant(x_value)
      w1 = tf.compat.v1.get_variable("w1", initializer=w1_value)
      w2 = tf.compat.v1.get_variable("w2", initializer=w2_value)
      s1 = tf.matmul(x, w1)
      h = tf.tanh(s1)
      logits = tf.matmul(h, w2)
      lc = lc_lib.LayerCollection()
      lc.register_fully_connected(w1, x, s1)
      lc.register_fully_connected(w2, h, logits)
      lc.register_categorical_predictive_distribution(logits)
      lc.register_normal_predictive_distribution(h, var=self.VAR)
      est = estimator.FisherEstimator(
        [w1, w2], 0.0, 0.1, lc, estimation_mode="exact"
      )
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(est.cov_update_op)
      covs = sess.run([f.get_cov() for f in lc.get_factors()])
      h_value, logits_value = sess.run([h, logits])
    # Output-side factors: layer 1's is [hidden, hidden], layer 2's
    # [OUT, OUT]; the input-side ones are [IN, IN] and [hidden, hidden], so
    # pick the output factors by creation order (input, output per layer).
    g1_cov, g2_cov = covs[1], covs[3]
    fishers = _per_example_loss_fishers(logits_value.astype(np.float64))
    expected_g1 = np.zeros((hidden, hidden))
    expected_g2 = np.zeros((OUT, OUT))
    w2_64 = w2_value.astype(np.float64)
    for b in range(batch):
      d = np.diag(1.0 - h_value[b].astype(np.float64) ** 2)
      expected_g1 += (
        d @ (w2_64 @ fishers[b] @ w2_64.T + np.eye(hidden) / self.VAR) @ d
      )
      expected_g2 += fishers[b]
    expected_g1 /= batch
    expected_g2 /= batch
    np.testing.assert_allclose(g1_cov, expected_g1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g2_cov, expected_g2, rtol=1e-4, atol=1e-5)


class EmpiricalModeTest(parameterized.TestCase):
  def test_output_factor_is_the_empirical_fisher(self):
    vals = _values(6, batch=5)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      lc, logits = _run_cov_update(sess, vals, "kron", "empirical")
      _, g_cov = _kron_covs(lc, sess)
      logits_value = sess.run(logits)
    probs = _softmax_rows(logits_value.astype(np.float64))
    expected = np.zeros((OUT, OUT))
    for b in range(probs.shape[0]):
      residual = probs[b] - np.eye(OUT)[vals["targets"][b]]
      expected += np.outer(residual, residual)
    expected /= probs.shape[0]
    np.testing.assert_allclose(g_cov, expected, rtol=1e-5, atol=1e-6)

  def test_empirical_needs_targets(self):
    with tf.Graph().as_default():
      lc, variables, _ = _build_layer(_values(7, 2), "kron", with_targets=False)
      with pytest.raises(Exception, match="unspecified targets"):
        estimator.FisherEstimator(
          variables, 0.0, 0.1, lc, estimation_mode="empirical"
        )


def _outcomes(mode, p):
  """All outcomes (probability, s) of one example's sampled output gradient.

  "gradients": s = e_y − p with y ~ Categorical(p);
  "curvature_prop": s = B ε with ε uniform on {−1, +1}^OUT.
  """
  if mode == "gradients":
    return [(p[y], np.eye(OUT)[y] - p) for y in range(OUT)]
  factor = _loss_factor(p)
  outcomes = []
  for signs in np.ndindex(*([2] * OUT)):
    eps = 2.0 * np.array(signs) - 1.0
    outcomes.append((0.5**OUT, factor @ eps))
  return outcomes


class StochasticModesTest(parameterized.TestCase):
  """`gradients` and `curvature_prop` are unbiased estimates of `exact`.

  The batch repeats 4 distinct examples `REPEATS` times, so one covariance
  update averages N = 4·REPEATS independent single-example estimates. For
  every entry the exact mean and variance of the single-example estimate
  are computed by enumerating its outcomes, and the estimate must lie within
  5 standard errors, sqrt(Σ_rows var_row) / N, of the exact value.
  """

  REPEATS = 1500

  @parameterized.named_parameters(
    *[
      ("%s_%s" % (mode, approx), mode, approx)
      for approx in ("kron", "diagonal")
      for mode in ("gradients", "curvature_prop")
    ]
  )
  def test_agrees_with_exact_in_expectation(self, mode, approx):
    distinct = _values(8, batch=4)
    vals = dict(distinct)
    vals["x"] = np.tile(distinct["x"], [self.REPEATS, 1])
    vals["targets"] = np.tile(distinct["targets"], [self.REPEATS])
    n_rows = vals["x"].shape[0]
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      tf.compat.v1.set_random_seed(1234)
      lc, logits = _run_cov_update(sess, vals, approx, mode, seed=99)
      if approx == "kron":
        _, got = _kron_covs(lc, sess)
      else:
        got = _single_cov(lc, sess)
      logits_value = sess.run(logits[:4]).astype(np.float64)

    probs = _softmax_rows(logits_value)
    a = _homog(distinct["x"].astype(np.float64), True)
    mean = 0.0
    variance = 0.0
    for b in range(4):
      outcomes = _outcomes(mode, probs[b])
      if approx == "kron":
        values = [np.outer(s, s) for _, s in outcomes]
      else:
        values = [np.outer(a[b] ** 2, s**2) for _, s in outcomes]
      m = sum(prob * v for (prob, _), v in zip(outcomes, values))
      second = sum(prob * v**2 for (prob, _), v in zip(outcomes, values))
      mean = mean + m * self.REPEATS
      variance = variance + (second - m**2) * self.REPEATS
    mean /= n_rows
    standard_error = np.sqrt(variance) / n_rows

    # The exact expectation is the true Fisher statistic of the exact mode.
    expected_exact = sum(_per_example_loss_fishers(logits_value)) / 4
    if approx == "kron":
      np.testing.assert_allclose(mean, expected_exact, atol=1e-12)
    else:
      np.testing.assert_allclose(
        mean.reshape(-1),
        np.diag(_true_fisher(distinct["x"], logits_value, True)),
        atol=1e-12,
      )
    tolerance = 5.0 * standard_error + 1e-5
    self.assertTrue(
      np.all(np.abs(got - mean) <= tolerance),
      msg="estimate {}\nexact {}\ntolerance {}".format(got, mean, tolerance),
    )
    # And the estimate is genuinely random (not the exact value itself).
    self.assertGreater(np.abs(got - mean).max(), 1e-7)


class UpdateOpsTest(parameterized.TestCase):
  def test_ema_and_inverse_updates(self):
    vals = _values(9, batch=3)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      lc, est, logits = _build_estimator(vals, "full", cov_ema_decay=0.75)
      factor = list(lc.get_factors())[0]
      sess.run(tf.compat.v1.global_variables_initializer())
      before = sess.run(factor.get_cov())
      sess.run(est.cov_update_op)
      after = sess.run(factor.get_cov())
      # The new statistic, from the exact gradients, computed in NumPy:
      # g_k = Σ_b ã_b ⊗ (B_b e_k), new_cov = Σ_k g_k g_kᵀ / batch_size.
      logits_value = sess.run(logits).astype(np.float64)
      a = _homog(vals["x"].astype(np.float64), True)
      probs = _softmax_rows(logits_value)
      new_cov = 0.0
      for k in range(OUT):
        g = sum(np.kron(a[b], _loss_factor(probs[b])[:, k]) for b in range(3))
        new_cov = new_cov + np.outer(g, g)
      new_cov /= 3
      np.testing.assert_allclose(
        after, 0.75 * before + 0.25 * new_cov, rtol=1e-5, atol=1e-6
      )

      self.assertTrue(est.inv_updates_dict)
      for name, update in est.inv_updates_dict.items():
        # Tensors, as TF 1.4's assign results (programs build queues from
        # their dtype and shape).
        self.assertIsInstance(update, tf.Tensor)
        self.assertEqual(name, update.name)
        self.assertEqual(update.dtype.base_dtype, tf.float32)
        self.assertEqual(
          update.get_shape().as_list(), factor.get_cov().get_shape().as_list()
        )
      self.assertCountEqual(
        [op.name for op in est.inv_update_op.control_inputs],
        [t.op.name for t in est.inv_updates_dict.values()],
      )
      sess.run(est.inv_update_op)
      inverse = sess.run(factor.get_inverse(0.1))
      np.testing.assert_allclose(
        inverse,
        np.linalg.inv(after + 0.1 * np.eye(after.shape[0])),
        rtol=1e-3,
        atol=1e-4,
      )


class OpQueueIntegrationTest(parameterized.TestCase):
  def test_inverse_updates_run_one_at_a_time(self):
    vals = _values(15, batch=3)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      lc, est, _ = _build_estimator(vals, "kron")
      queue = op_queue.OpQueue(est.inv_updates_dict.values(), seed=0)
      inverses = [
        v for v in tf.compat.v1.global_variables() if "/inv_damp" in v.op.name
      ]
      self.assertLen(inverses, 2)
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(est.cov_update_op)
      before = sess.run(inverses)
      sess.run(queue.next_op(sess))
      middle = sess.run(inverses)
      # Exactly one of the two inverses was recomputed.
      changed = [not np.allclose(b, m) for b, m in zip(before, middle)]
      self.assertEqual(sorted(changed), [False, True])
      sess.run(queue.next_op(sess))
      after = sess.run(inverses)
      self.assertTrue(all(not np.allclose(b, a) for b, a in zip(before, after)))


class MultiplyTest(parameterized.TestCase):
  def test_kronecker_multiply_and_multiply_inverse(self):
    vals = _values(10, batch=4)
    damping = 0.3
    rng = np.random.RandomState(11)
    vec_w = rng.randn(IN, OUT).astype(np.float32)
    vec_b = rng.randn(OUT).astype(np.float32)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      lc, (w, b), _ = _build_layer(vals, "kron")
      est = estimator.FisherEstimator(
        [w, b], 0.0, damping, lc, estimation_mode="exact"
      )
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(est.cov_update_op)
      sess.run(est.inv_update_op)
      a_cov, g_cov = _kron_covs(lc, sess)
      # Input order is kept, including a variable order unlike the key.
      vecs_and_vars = [(tf.constant(vec_b), b), (tf.constant(vec_w), w)]
      inv_result = est.multiply_inverse(vecs_and_vars)
      mul_result = est.multiply(vecs_and_vars)
      self.assertIs(inv_result[0][1], b)
      self.assertIs(inv_result[1][1], w)
      self.assertIs(mul_result[0][1], b)
      inv_b, inv_w, mul_b, mul_w = sess.run(
        [inv_result[0][0], inv_result[1][0], mul_result[0][0], mul_result[1][0]]
      )

    a_cov = a_cov.astype(np.float64)
    g_cov = g_cov.astype(np.float64)
    pi = np.sqrt(
      (np.trace(a_cov) / a_cov.shape[0]) / (np.trace(g_cov) / g_cov.shape[0])
    )
    a_damped = a_cov + pi * np.sqrt(damping) * np.eye(a_cov.shape[0])
    g_damped = g_cov + np.sqrt(damping) / pi * np.eye(g_cov.shape[0])
    mat = np.vstack([vec_w, vec_b[None, :]]).astype(np.float64)
    expected_inv = np.linalg.inv(a_damped) @ mat @ np.linalg.inv(g_damped)
    expected_mul = a_damped @ mat @ g_damped
    np.testing.assert_allclose(inv_w, expected_inv[:-1], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(inv_b, expected_inv[-1], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(mul_w, expected_mul[:-1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mul_b, expected_mul[-1], rtol=1e-4, atol=1e-5)

  def test_missing_variable_raises_key_error(self):
    vals = _values(12, batch=2)
    with tf.Graph().as_default():
      lc, (w, b), _ = _build_layer(vals, "kron")
      est = estimator.FisherEstimator([w, b], 0.0, 0.1, lc)
      with pytest.raises(KeyError):
        est.multiply_inverse([(tf.zeros([IN, OUT]), w)])


def _assigned_value(op):
  """The op computing the value assigned by `op` (an assign or a read)."""
  if op.type == "ReadVariableOp":  # Read after a resource assignment.
    (op,) = op.control_inputs
  return op.inputs[1].op


class DevicesTest(parameterized.TestCase):
  """The r1.5 keywords `cov_devices` / `inv_devices` place the update ops."""

  def _build(self, cov_devices, inv_devices):
    vals = _values(13, batch=2)
    lc, variables, _ = _build_layer(vals, "kron")
    est = estimator.FisherEstimator(
      variables, 0.5, 0.1, lc, cov_devices=cov_devices, inv_devices=inv_devices
    )
    return lc, est

  def test_devices_are_used_in_turn(self):
    with tf.Graph().as_default():
      _, est = self._build(
        ["/device:CPU:0", "/device:CPU:1"], ["/device:CPU:2"]
      )
      # The computed values are placed; a reference variable's assign op
      # itself is colocated with its variable (TF1 mode).
      cov_devices = sorted(
        _assigned_value(op).device for op in est.cov_update_op.control_inputs
      )
      self.assertEqual(cov_devices, ["/device:CPU:0", "/device:CPU:1"])
      self.assertTrue(est.inv_updates_dict)
      for update in est.inv_updates_dict.values():
        self.assertEqual(_assigned_value(update.op).device, "/device:CPU:2")

  def test_no_devices_leaves_ops_unplaced(self):
    with tf.Graph().as_default():
      _, est = self._build(None, None)
      for op in list(est.cov_update_op.control_inputs) + list(
        est.inv_updates_dict.values()
      ):
        self.assertEqual(op.device, "")

  def test_placed_ops_run(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      lc, est = self._build(["/cpu:0"], ["/cpu:0"])
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run([est.cov_update_op])
      sess.run(est.inv_update_op)
      a_cov, _ = _kron_covs(lc, sess)
    # The placed covariance op ran: A is now 0.5 * I + 0.5 * (ã ãᵀ averaged).
    a = _homog(_values(13, batch=2)["x"].astype(np.float64), True)
    new_a = sum(np.outer(r, r) for r in a) / 2
    np.testing.assert_allclose(
      a_cov, 0.5 * np.eye(IN + 1) + 0.5 * new_a, rtol=1e-5, atol=1e-6
    )


class LossKindsAndBlocksTest(parameterized.TestCase):
  """Every mode on conv, fully connected and generic blocks, every loss."""

  @parameterized.named_parameters(
    (loss + "_" + mode, loss, mode)
    for loss in ("categorical", "normal", "bernoulli")
    for mode in ("gradients", "empirical", "curvature_prop", "exact")
  )
  def test_unknown_batch_size(self, loss, mode):
    # conv2d → tanh → fully connected → elementwise scale (generic) → loss,
    # fed through a placeholder whose batch dimension is unknown.
    batch, classes = 3, 4
    rng = np.random.RandomState(17)
    x_value = rng.randn(batch, 5, 5, 2).astype(np.float32)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.compat.v1.placeholder(tf.float32, [None, 5, 5, 2])
      kernel = tf.compat.v1.get_variable("kernel", [3, 3, 2, 3])
      conv_bias = tf.compat.v1.get_variable("conv_bias", [3])
      pre = tf.nn.conv2d(x, kernel, [1, 1, 1, 1], "SAME") + conv_bias
      hidden = tf.reshape(tf.tanh(pre), [-1, 5 * 5 * 3])
      w = tf.compat.v1.get_variable("w", [5 * 5 * 3, classes])
      z = tf.matmul(hidden, w)
      scale = tf.compat.v1.get_variable("scale", [classes])
      outputs = z * scale
      lc = lc_lib.LayerCollection()
      lc.register_conv2d((kernel, conv_bias), [1, 1, 1, 1], "SAME", x, pre)
      lc.register_fully_connected(w, hidden, z)
      lc.register_generic(scale, batch)
      if loss == "categorical":
        lc.register_categorical_predictive_distribution(
          outputs, targets=tf.constant(rng.randint(0, classes, batch))
        )
      elif loss == "normal":
        lc.register_normal_predictive_distribution(
          outputs, targets=tf.constant(rng.randn(batch, classes))
        )
      else:
        lc.register_multi_bernoulli_predictive_distribution(
          outputs, targets=tf.constant(rng.randint(0, 2, (batch, classes)))
        )
      variables = [kernel, conv_bias, w, scale]
      est = estimator.FisherEstimator(
        variables, 0.5, 0.1, lc, estimation_mode=mode
      )
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(est.cov_update_op, {x: x_value})
      sess.run(est.inv_update_op)
      ones = [tf.ones_like(v) for v in variables]
      products = sess.run(
        [vec for vec, _ in est.multiply_inverse(list(zip(ones, variables)))]
        + [vec for vec, _ in est.multiply(list(zip(ones, variables)))]
      )
    for product, var in zip(products, variables + variables):
      self.assertEqual(product.shape, tuple(var.shape.as_list()))
      self.assertTrue(np.all(np.isfinite(product)))

  def test_exact_bernoulli_output_factor(self):
    # G = (1/B) Σ_b diag(p_b (1 − p_b)), p = sigmoid(logits).
    vals = _values(18, batch=5)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.constant(vals["x"])
      w = tf.compat.v1.get_variable("w", initializer=vals["w"])
      logits = tf.matmul(x, w)
      lc = lc_lib.LayerCollection()
      lc.register_fully_connected(w, x, logits)
      lc.register_multi_bernoulli_predictive_distribution(logits)
      est = estimator.FisherEstimator(
        [w], 0.0, 0.1, lc, estimation_mode="exact"
      )
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(est.cov_update_op)
      _, g_cov = _kron_covs(lc, sess)
    logits_value = vals["x"].astype(np.float64) @ vals["w"]
    expected = np.zeros((OUT, OUT))
    for row in logits_value:
      p = 1.0 / (1.0 + np.exp(-row))
      expected += np.diag(p * (1.0 - p))
    expected /= logits_value.shape[0]
    np.testing.assert_allclose(g_cov, expected, rtol=1e-4, atol=1e-6)


def test_fisher_factors_module_is_used():
  # Guards the helper `_kron_covs`: the Kronecker block has two factors.
  with tf.Graph().as_default():
    lc, variables, _ = _build_layer(_values(14, 2), "kron")
    estimator.FisherEstimator(variables, 0.5, 0.1, lc)
    kinds = sorted(type(f).__name__ for f in lc.get_factors())
    assert kinds == ["FullyConnectedKroneckerFactor"] * 2
    assert all(
      isinstance(f, fisher_factors.FisherFactor) for f in lc.get_factors()
    )
