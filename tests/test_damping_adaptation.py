"""Tests for kfac._damping_adaptation (Levenberg–Marquardt, release 1.7).

A toy optimizer (gradient descent on a least-squares loss whose quadratic
model uses the adapted damping) runs several steps; a NumPy simulation of
the rule of releases.md §8.5 gives the expected `rho`, `prev_loss`,
`q_model_change` and damping after every step.
"""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from kfac import _damping_adaptation as da


class _ToyOptimizer(
  da.DampingAdaptationMixin, tf.compat.v1.train.GradientDescentOptimizer
):
  """Gradient descent whose model change is `gᵀδ + ½ δᵀ(H + λI)δ`."""

  def __init__(self, learning_rate, damping, hessian, name="KFAC"):
    super(_ToyOptimizer, self).__init__(learning_rate, name=name)
    self._damping_constant = damping
    self._learning_rate_value = learning_rate
    self._hessian = hessian

  def apply_gradients(self, grads_and_vars, global_step=None, name=None):
    ((grad, _),) = grads_and_vars
    delta = -self._learning_rate_value * grad
    damping = tf.cast(self.damping, grad.dtype)
    curvature = tf.linalg.matvec(self._hessian, delta) + damping * delta
    q = tf.reduce_sum(grad * delta) + 0.5 * tf.reduce_sum(delta * curvature)
    with tf.control_dependencies([self._assign_q_model_change(q)]):
      return super(_ToyOptimizer, self).apply_gradients(
        grads_and_vars, global_step=global_step, name=name
      )

  def minimize(self, *args, **kwargs):
    return self._minimize_with_damping_adaptation(
      super(_ToyOptimizer, self).minimize, *args, **kwargs
    )


def _loss(w, x, y):
  r = x.dot(w) - y
  return 0.5 * np.sum(r * r) / x.shape[0]


def _simulate(batches, w0, lr, damping, interval, decay, min_damping, hessian):
  """NumPy run of the rule; returns per-step (rho, prev_loss, q, damping)."""
  w = w0.copy()
  omega = decay**interval
  prev_loss = q_change = rho = None
  records = []
  for step, (x, y) in enumerate(batches):
    if (step + 1) % interval == 0:
      prev_x, prev_y = batches[step - 1]
      new_loss = _loss(w, prev_x, prev_y)
      rho = (new_loss - prev_loss) / q_change
      if rho < 0.25:
        damping = damping / omega
      elif rho > 0.75:
        damping = damping * omega
      damping = max(damping, min_damping)
    prev_loss = _loss(w, x, y)
    grad = x.T.dot(x.dot(w) - y) / x.shape[0]
    delta = -lr * grad
    q_change = grad.dot(delta) + 0.5 * delta.dot(
      hessian.dot(delta) + damping * delta
    )
    w = w + delta
    records.append((rho, prev_loss, q_change, damping))
  return records


class DampingAdaptationTest(parameterized.TestCase):
  @parameterized.named_parameters(
    # A small step: the model is accurate, rho near 1, damping shrinks.
    ("accurate_model", 0.05, 1e-2, 2, 0.9, 1e-5, False),
    # A model with the wrong curvature: rho off, damping grows.
    ("bad_model", 0.6, 1e-1, 3, 0.8, 1e-5, True),
    # The lower bound is reached.
    ("min_damping", 0.05, 2e-3, 2, 0.5, 1e-3, False),
  )
  def testRuleOverSteps(
    self, lr, damping, interval, decay, min_damping, wrong_hessian
  ):
    rng = np.random.RandomState(0)
    dim, batch, steps = 3, 8, 7
    batches = [(rng.randn(batch, dim), rng.randn(batch)) for _ in range(steps)]
    w0 = rng.randn(dim)
    all_x = np.concatenate([x for x, _ in batches])
    hessian = all_x.T.dot(all_x) / all_x.shape[0]
    if wrong_hessian:
      hessian = 20.0 * hessian
    expected = _simulate(
      batches, w0, lr, damping, interval, decay, min_damping, hessian
    )
    with tf.Graph().as_default():
      x = tf.compat.v1.placeholder(tf.float64, [None, dim])
      y = tf.compat.v1.placeholder(tf.float64, [None])
      prev_x = tf.compat.v1.placeholder(tf.float64, [None, dim])
      prev_y = tf.compat.v1.placeholder(tf.float64, [None])
      w = tf.compat.v1.get_variable("w", initializer=w0)
      step = tf.compat.v1.train.get_or_create_global_step()

      def loss_fn(batch):
        bx, by = batch
        r = tf.linalg.matvec(bx, w) - by
        return 0.5 * tf.reduce_mean(r * r)

      opt = _ToyOptimizer(lr, damping, tf.constant(hessian))
      self.assertEqual(opt.damping, damping)
      opt.set_damping_adaptation_params(
        is_chief=True,
        prev_train_batch=(prev_x, prev_y),
        loss_fn=loss_fn,
        min_damping=min_damping,
        damping_adaptation_decay=decay,
        damping_adaptation_interval=interval,
      )
      self.assertEqual(opt.damping_adaptation_interval, interval)
      self.assertEqual(
        sorted(
          v.op.name
          for v in tf.compat.v1.global_variables()
          if v.op.name.startswith("KFAC/")
        ),
        ["KFAC/damping", "KFAC/prev_loss", "KFAC/q_model_change", "KFAC/rho"],
      )
      self.assertFalse(opt.damping.trainable)
      train = opt.minimize(loss_fn((x, y)), global_step=step)
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        for s, (bx, by) in enumerate(batches):
          feed = {x: bx, y: by}
          if s > 0:
            feed.update({prev_x: batches[s - 1][0], prev_y: batches[s - 1][1]})
          else:  # Never read at step 0 (no adaptation there).
            feed.update({prev_x: bx, prev_y: by})
          sess.run(train, feed_dict=feed)
          rho, prev_loss, q, damp = sess.run(
            [opt._rho, opt._prev_loss, opt._q_model_change, opt.damping]
          )
          e_rho, e_prev_loss, e_q, e_damp = expected[s]
          if e_rho is not None:
            np.testing.assert_allclose(rho, e_rho, rtol=1e-4)
          np.testing.assert_allclose(prev_loss, e_prev_loss, rtol=1e-5)
          np.testing.assert_allclose(q, e_q, rtol=1e-4)
          np.testing.assert_allclose(damp, e_damp, rtol=1e-5)
        self.assertEqual(sess.run(step), steps)
    # The scenario did change the damping.
    self.assertNotAlmostEqual(expected[-1][3], damping)

  def testNonChiefDoesNotAdapt(self):
    with tf.Graph().as_default():
      w = tf.compat.v1.get_variable("w", initializer=np.ones(2))
      loss = tf.reduce_sum(w * w)
      opt = _ToyOptimizer(0.1, 0.5, tf.eye(2, dtype=tf.float64))
      opt.set_damping_adaptation_params(False, None, None)
      train = opt.minimize(loss)  # No global_step needed off the chief.
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(train)
        self.assertAlmostEqual(sess.run(opt.damping), 0.5, places=6)

  def testErrors(self):
    with tf.Graph().as_default():
      w = tf.compat.v1.get_variable("w", initializer=np.ones(2))
      loss = tf.reduce_sum(w * w)
      opt = _ToyOptimizer(0.1, 0.5, tf.eye(2, dtype=tf.float64))
      opt.set_damping_adaptation_params(True, None, lambda b: loss)
      with self.assertRaisesRegex(ValueError, "already set"):
        opt.set_damping_adaptation_params(True, None, lambda b: loss)
      with self.assertRaisesRegex(KeyError, "global_step"):
        opt.minimize(loss)

  def testPlaceholdersBeforeEnabling(self):
    opt = _ToyOptimizer(0.1, 0.5, None)
    self.assertEqual(opt.damping_adaptation_interval, 5)
    self.assertEqual(opt.damping, 0.5)


class RuleFunctionsTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("shrink", 0.9, 1.0, 0.8),
    ("grow", 0.1, 1.0, 1.0 / 0.8),
    ("keep", 0.5, 1.0, 1.0),
    ("negative_rho_grows", -2.0, 1.0, 1.0 / 0.8),
    ("floor", 0.9, 1e-3, 1e-3),
  )
  def testDampingRule(self, rho, damping, expected):
    with tf.Graph().as_default():
      new = da.levenberg_marquardt_damping(tf.constant(damping), rho, 0.8, 1e-3)
      with tf.compat.v1.Session() as sess:
        value = sess.run(new)
    # NumPy/Python rule, written out.
    omega, lam = 0.8, damping
    lam = lam / omega if rho < 0.25 else (lam * omega if rho > 0.75 else lam)
    self.assertAlmostEqual(max(lam, 1e-3), expected, places=6)
    self.assertAlmostEqual(float(value), expected, places=6)

  def testRho(self):
    with tf.Graph().as_default():
      rho = da.levenberg_marquardt_rho(tf.constant(1.5), 2.0, -0.25)
      with tf.compat.v1.Session() as sess:
        self.assertAlmostEqual(sess.run(rho), (1.5 - 2.0) / -0.25)

  @parameterized.named_parameters(("two_directions", 0.7), ("one", 0.0))
  def testQmodelHyperparams(self, m_22):
    m_11, m_21, c_1, c_2 = 2.0, 0.3, -1.2, 0.4
    with tf.Graph().as_default():
      result = da.qmodel_hyperparams_1_7(
        *[tf.constant(v, tf.float64) for v in (m_11, m_21, m_22, c_1, c_2)]
      )
      with tf.compat.v1.Session() as sess:
        alpha, mu, change = sess.run(result)
    if m_22 == 0.0:
      e_alpha, e_mu = -c_1 / m_11, 0.0
      e_change = 0.5 * e_alpha * c_1
    else:
      sol = -np.linalg.solve(
        np.array([[m_11, m_21], [m_21, m_22]]), np.array([c_1, c_2])
      )
      e_alpha, e_mu = sol
      e_change = 0.5 * sol.dot([c_1, c_2])
      # The change is the model's minimum: ½ xᵀMx + cᵀx at x = sol.
      m = np.array([[m_11, m_21], [m_21, m_22]])
      self.assertAlmostEqual(
        e_change, 0.5 * sol.dot(m).dot(sol) + sol.dot([c_1, c_2])
      )
    self.assertLess(change, 0.0)
    np.testing.assert_allclose(
      [alpha, mu, change], [e_alpha, e_mu, e_change], rtol=1e-12
    )


class KfacOptimizerIntegrationTest(parameterized.TestCase):
  def testMixinOnTheEngineOptimizer(self):
    # The mixin composed with the engine's KfacOptimizer ("qmodel"
    # momentum, whose model change feeds q_model_change). Every adaptation
    # step must apply the rule to the values the variables held before it.
    from kfac import layer_collection as lc_lib
    from kfac import optimizer

    class AdaptiveKfac(da.DampingAdaptationMixin, optimizer.KfacOptimizer):
      def minimize(self, *args, **kwargs):
        return self._minimize_with_damping_adaptation(
          super(AdaptiveKfac, self).minimize, *args, **kwargs
        )

      def _compute_qmodel_hyperparams(self, *args):
        alpha, mu, change = super(
          AdaptiveKfac, self
        )._compute_qmodel_hyperparams(*args)
        with tf.control_dependencies([self._assign_q_model_change(change)]):
          return tf.identity(alpha), tf.identity(mu), tf.identity(change)

    rng = np.random.RandomState(7)
    batches = [
      (rng.randn(16, 3).astype(np.float32), rng.randint(0, 2, size=16))
      for _ in range(6)
    ]
    interval, decay, min_damping = 2, 0.9, 1e-4
    with tf.Graph().as_default():
      x = tf.compat.v1.placeholder(tf.float32, [16, 3])
      y = tf.compat.v1.placeholder(tf.int64, [16])
      prev_x = tf.compat.v1.placeholder(tf.float32, [16, 3])
      prev_y = tf.compat.v1.placeholder(tf.int64, [16])
      w = tf.compat.v1.get_variable("w", initializer=tf.zeros([3, 2]))
      step = tf.compat.v1.train.get_or_create_global_step()

      def loss_fn(batch):
        bx, by = batch
        return tf.reduce_mean(
          tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=by, logits=tf.matmul(bx, w)
          )
        )

      logits = tf.matmul(x, w)
      lc = lc_lib.LayerCollection()
      lc.register_fully_connected(w, x, logits)
      lc.register_categorical_predictive_distribution(logits)
      opt = AdaptiveKfac(
        learning_rate=0.5,
        cov_ema_decay=0.5,
        damping=0.1,
        layer_collection=lc,
        momentum=0.0,
        momentum_type="qmodel",
      )
      opt.set_damping_adaptation_params(
        True,
        (prev_x, prev_y),
        loss_fn,
        min_damping=min_damping,
        damping_adaptation_decay=decay,
        damping_adaptation_interval=interval,
      )
      train = opt.minimize(loss_fn((x, y)), global_step=step)
      prev_batch_loss = loss_fn((prev_x, prev_y))
      state = [opt._prev_loss, opt._q_model_change, opt.damping]
      omega = decay**interval
      adapted = 0
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        for s, (bx, by) in enumerate(batches):
          pbx, pby = batches[max(s - 1, 0)]
          feed = {x: bx, y: by, prev_x: pbx, prev_y: pby}
          sess.run([opt.cov_update_op, opt.inv_update_op], feed_dict=feed)
          prev_loss, q, damping = sess.run(state)
          new_loss = sess.run(prev_batch_loss, feed_dict=feed)
          sess.run(train, feed_dict=feed)
          rho, damping_after = sess.run([opt._rho, opt.damping])
          if (s + 1) % interval == 0:
            adapted += 1
            expected_rho = (new_loss - prev_loss) / q
            np.testing.assert_allclose(rho, expected_rho, rtol=1e-4)
            lam = damping
            lam = (
              lam / omega
              if expected_rho < 0.25
              else lam * omega
              if expected_rho > 0.75
              else lam
            )
            np.testing.assert_allclose(
              damping_after, max(lam, min_damping), rtol=1e-5
            )
          else:
            self.assertEqual(damping_after, damping)
    self.assertEqual(adapted, 3)


def _np_kronecker_precondition(a, g, grad, damping):
  """`(A + π√d I)⁻¹ grad (G + √d/π I)⁻¹` with the trace-norm π."""
  pi = np.sqrt((np.trace(a) / a.shape[0]) / (np.trace(g) / g.shape[0]))
  root = np.sqrt(damping)
  left = np.linalg.inv(a + pi * root * np.eye(a.shape[0]))
  right = np.linalg.inv(g + root / pi * np.eye(g.shape[0]))
  return left @ grad @ right


class RegularMomentumQModelChangeTest(parameterized.TestCase):
  """1.7 `q_model_change` with "regular" momentum (releases.md §8.4–8.5)."""

  def testAgainstNumpy(self):
    # A linear layer y = x W with a unit-variance normal loss, so the exact
    # Fisher product is F v = Xᵀ X v / n. Each step: the regular momentum
    # step p = K⁻¹ g (the Kronecker preconditioner, constructor damping d0),
    # and q_model_change from the two-direction model (p, d = −lr·velocity)
    # with the adapted damping λ; every second step λ is adapted from ρ.
    from kfac import r1_7

    rng = np.random.RandomState(12)
    n, n_in, n_out = 16, 3, 2
    x_value = rng.randn(n, n_in).astype(np.float32)
    t_value = rng.randn(n, n_out).astype(np.float32)
    w0 = 0.5 * rng.randn(n_in, n_out).astype(np.float32)
    lr, momentum, d0 = 0.3, 0.5, 0.05
    interval, decay, min_damping = 2, 0.8, 1e-4
    omega = decay**interval
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.constant(x_value)
      w = tf.compat.v1.get_variable("w", initializer=w0)
      step = tf.compat.v1.train.get_or_create_global_step()

      def loss_fn(batch):
        return 0.5 * tf.reduce_mean(
          tf.reduce_sum((tf.matmul(batch, w) - t_value) ** 2, axis=1)
        )

      outputs = tf.matmul(x, w)
      lc = r1_7.layer_collection.LayerCollection()
      lc.register_fully_connected(w, x, outputs)
      lc.register_normal_predictive_distribution(outputs, var=1.0, name="y")
      opt = r1_7.optimizer.KfacOptimizer(
        learning_rate=lr,
        cov_ema_decay=0.0,
        damping=d0,
        layer_collection=lc,
        momentum=momentum,
      )
      opt.set_damping_adaptation_params(
        is_chief=True,
        prev_train_batch=x,
        loss_fn=loss_fn,
        min_damping=min_damping,
        damping_adaptation_decay=decay,
        damping_adaptation_interval=interval,
      )
      train = opt.minimize(loss_fn(x), global_step=step)
      block = lc.fisher_blocks[w]
      factors = [block._input_factor._cov, block._output_factor._cov]
      velocity = opt.get_slot(w, "velocity")
      sess.run(tf.compat.v1.global_variables_initializer())
      w_np, v_np, lam = w0.astype(np.float64), np.zeros((n_in, n_out)), d0
      prev_loss, prev_change = None, None
      x64, t64 = x_value.astype(np.float64), t_value.astype(np.float64)
      changes = []
      for i in range(5):
        sess.run(opt.cov_update_op)
        sess.run(opt.inv_update_op)
        a, g = sess.run(factors)
        sess.run(train)
        change, rho, damping, w_tf, v_tf = sess.run(
          [opt._q_model_change, opt._rho, opt.damping, w, velocity]
        )
        # The oracle of step i.
        loss = 0.5 * np.mean(np.sum((x64 @ w_np - t64) ** 2, axis=1))
        if (i + 1) % interval == 0:
          expected_rho = (loss - prev_loss) / prev_change
          np.testing.assert_allclose(rho, expected_rho, rtol=1e-3)
          if expected_rho < 0.25:
            lam = lam / omega
          elif expected_rho > 0.75:
            lam = lam * omega
          lam = max(lam, min_damping)
        np.testing.assert_allclose(damping, lam, rtol=1e-5)
        grad = x64.T @ (x64 @ w_np - t64) / n
        p = _np_kronecker_precondition(a, g, grad, d0)
        d = -lr * v_np
        m11 = np.sum((x64 @ p) ** 2) / n + lam * np.sum(p * p)
        m21 = np.sum((x64 @ d) * (x64 @ p)) / n + lam * np.sum(d * p)
        m22 = np.sum((x64 @ d) ** 2) / n + lam * np.sum(d * d)
        c = np.array([np.sum(grad * p), np.sum(grad * d)])
        if m22 == 0.0:
          expected_change = -0.5 * c[0] ** 2 / m11
        else:
          m = np.array([[m11, m21], [m21, m22]])
          expected_change = -0.5 * c @ np.linalg.solve(m, c)
        np.testing.assert_allclose(change, expected_change, rtol=1e-3)
        v_np = momentum * v_np + p
        w_np = w_np - lr * v_np
        np.testing.assert_allclose(v_tf, v_np, rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(w_tf, w_np, rtol=1e-3, atol=1e-5)
        prev_loss, prev_change = loss, change
        changes.append(change)
    # The model predicts a decrease at every step.
    self.assertTrue(all(c < 0 for c in changes), changes)


if __name__ == "__main__":
  absltest.main()
