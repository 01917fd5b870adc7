"""Tests for kfac.optimizer.

The legacy optimizer tests (api.md §11.5), then the update rules against
NumPy on one fully connected layer `logits = x w + b` with a categorical
loss summed over the batch. NumPy computes, from the factor values read
back from the graph:

  g   = ∂L/∂[w; b] = ãᵀ (P − Y)                      (ã = [x, 1], [IN+1, OUT])
  π   = sqrt((tr A / dim A) / (tr G / dim G))
  F̂⁻¹ V = (A + π√λ I)⁻¹ V (G + √λ/π I)⁻¹             (the K-FAC block)

and the steps of each momentum type from them.
"""

from absl.testing import parameterized
import numpy as np
import pytest
import tensorflow as tf

from kfac import layer_collection as lc_lib
from kfac import optimizer

IN, OUT, BATCH = 3, 2, 5
LR = 0.25
DAMPING = 0.1


def dummy_layer_collection():
  lc = lc_lib.LayerCollection()
  lc.register_categorical_predictive_distribution(tf.constant([[1.0, 2.0]]))
  return lc


# --- NumPy oracle ----------------------------------------------------------


def _norm_test_gradients():
  """Two (gradient, var) pairs, the preconditioned ones, and the squared
  Fisher norm `sum_i <g_i, p_i>` that they make, computed in NumPy."""
  grads = [np.array([[1.0, 2.0], [3.0, 4.0]])]
  grads.append(grads[0] + 1)
  precon = [np.array([[3.0, 4.0], [5.0, 6.0]])]
  precon.append(precon[0] + 4)
  names = ("a", "b")
  sq_norm = sum(float(np.sum(g * p)) for g, p in zip(grads, precon))
  return (
    [(tf.constant(g), n) for g, n in zip(grads, names)],
    [(tf.constant(p), n) for p, n in zip(precon, names)],
    sq_norm,
  )


def _softmax_rows(z):
  e = np.exp(z - z.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


def _homog(x):
  return np.hstack([x, np.ones((x.shape[0], 1))])


def _gradient(vals, w, b):
  """∂/∂[w; b] of Σ_b CE(x_b w + b, t_b), as an [IN+1, OUT] matrix."""
  a = _homog(vals["x"])
  probs = _softmax_rows(vals["x"] @ w + b)
  residual = probs - np.eye(OUT)[vals["targets"]]
  grad = np.zeros((IN + 1, OUT))
  for n in range(a.shape[0]):
    grad += np.outer(a[n], residual[n])
  return grad


def _precondition(a_cov, g_cov, mat, damping=DAMPING):
  pi = np.sqrt(
    (np.trace(a_cov) / a_cov.shape[0]) / (np.trace(g_cov) / g_cov.shape[0])
  )
  a_damped = a_cov + pi * np.sqrt(damping) * np.eye(a_cov.shape[0])
  g_damped = g_cov + np.sqrt(damping) / pi * np.eye(g_cov.shape[0])
  return np.linalg.inv(a_damped) @ mat @ np.linalg.inv(g_damped)


def _split(mat):
  return mat[:-1], mat[-1]


# --- Graph helpers ---------------------------------------------------------


def _values(seed):
  rng = np.random.RandomState(seed)
  return dict(
    x=rng.randn(BATCH, IN),
    w=rng.randn(IN, OUT) * 0.5,
    b=rng.randn(OUT) * 0.5,
    targets=rng.randint(0, OUT, size=BATCH),
  )


def _build(vals, **opt_kwargs):
  """One FC layer + summed categorical loss + a KfacOptimizer."""
  x = tf.constant(vals["x"], dtype=tf.float32)
  w = tf.compat.v1.get_variable("w", initializer=vals["w"].astype(np.float32))
  b = tf.compat.v1.get_variable("b", initializer=vals["b"].astype(np.float32))
  logits = tf.matmul(x, w) + b
  targets = tf.constant(vals["targets"], dtype=tf.int32)
  lc = lc_lib.LayerCollection()
  lc.register_fully_connected((w, b), x, logits)
  lc.register_categorical_predictive_distribution(
    logits, targets=targets, seed=3
  )
  loss = tf.reduce_sum(
    tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=targets, logits=logits
    )
  )
  kwargs = dict(
    learning_rate=LR, cov_ema_decay=0.5, damping=DAMPING, layer_collection=lc
  )
  kwargs.update(opt_kwargs)
  opt = optimizer.KfacOptimizer(**kwargs)
  return opt, lc, loss, w, b


def _bias_free_layer(vals):
  """One FC layer without a bias, registered with a categorical loss."""
  x = tf.constant(vals["x"], dtype=tf.float32)
  w = tf.compat.v1.get_variable("w", initializer=vals["w"].astype(np.float32))
  logits = tf.matmul(x, w)
  lc = lc_lib.LayerCollection()
  lc.register_fully_connected(w, x, logits)
  lc.register_categorical_predictive_distribution(logits)
  return w, logits, lc


def _factor_covs(lc, sess):
  covs = sess.run([f.get_cov() for f in lc.get_factors()])
  a_cov = [c for c in covs if c.shape[0] == IN + 1][0].astype(np.float64)
  g_cov = [c for c in covs if c.shape[0] == OUT][0].astype(np.float64)
  return a_cov, g_cov


def _prepare(sess, opt, lc, w, b):
  """Initialises, updates the statistics once, returns A, G, w, b."""
  sess.run(tf.compat.v1.global_variables_initializer())
  sess.run(opt.cov_update_op)
  sess.run(opt.inv_update_op)
  a_cov, g_cov = _factor_covs(lc, sess)
  w_value, b_value = sess.run([w, b])
  return a_cov, g_cov, w_value.astype(np.float64), b_value.astype(np.float64)


class LegacyOptimizerTest(parameterized.TestCase):
  """The legacy optimizer_test.py cases (api.md §11.5)."""

  def test_optimizer_init_invalid_momentum_registration(self):
    with tf.Graph().as_default():
      with pytest.raises(ValueError, match="momentum type"):
        optimizer.KfacOptimizer(
          0.1, 0.2, 0.3, dummy_layer_collection(), momentum_type="foo"
        )

  def test_optimizer_init(self):
    with tf.Graph().as_default():
      layer_collection = lc_lib.LayerCollection()
      inputs = tf.ones((2, 1)) * 2
      weights_val = np.ones((1, 1), dtype=np.float32) * 3.0
      weights = tf.compat.v1.get_variable("w", initializer=weights_val)
      bias = tf.compat.v1.get_variable(
        "b", initializer=tf.compat.v1.zeros_initializer(), shape=(1, 1)
      )
      output = tf.matmul(inputs, weights) + bias
      layer_collection.register_fully_connected((weights, bias), inputs, output)
      logits = tf.tanh(output)
      targets = tf.constant([[0.0], [1.0]])
      output = tf.reduce_mean(
        tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=logits)
      )
      layer_collection.register_categorical_predictive_distribution(logits)
      opt = optimizer.KfacOptimizer(
        0.1, 0.2, 0.3, layer_collection, momentum=0.5, momentum_type="regular"
      )
      self.assertEqual(opt.variables, [weights, bias])
      self.assertEqual(opt.damping, 0.3)

  def test_squared_fisher_norm(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      grads_and_vars, precon_and_vars, sq_norm_np = _norm_test_gradients()
      opt = optimizer.KfacOptimizer(0.1, 0.2, 0.3, dummy_layer_collection())
      sq_norm = opt._squared_fisher_norm(grads_and_vars, precon_and_vars)
      self.assertAlmostEqual(sq_norm_np, sess.run(sq_norm), places=5)

  @parameterized.named_parameters(("unclipped", 10.0), ("clipped", 0.5))
  def test_update_clip_coeff(self, norm_constraint):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      grads_and_vars, precon_and_vars, sq_norm_np = _norm_test_gradients()
      lr = 0.1
      opt = optimizer.KfacOptimizer(
        lr, 0.2, 0.3, dummy_layer_collection(), norm_constraint=norm_constraint
      )
      coeff = sess.run(opt._update_clip_coeff(grads_and_vars, precon_and_vars))
      if norm_constraint == 10.0:
        self.assertAlmostEqual(1.0, coeff, places=5)
      else:
        self.assertAlmostEqual(lr**2 * coeff**2 * sq_norm_np, 0.5, places=5)

  def test_update_velocities(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      opt = optimizer.KfacOptimizer(
        0.1,
        0.2,
        0.3,
        dummy_layer_collection(),
        momentum=0.5,
        momentum_type="regular",
      )
      x = tf.compat.v1.get_variable("x", initializer=tf.ones((2, 2)))
      y = tf.compat.v1.get_variable("y", initializer=tf.ones((2, 2)) * 2)
      vec1 = tf.ones((2, 2)) * 3
      vec2 = tf.ones((2, 2)) * 4
      model_vars = tf.compat.v1.trainable_variables()
      update_op = opt._update_velocities([(vec1, x), (vec2, y)], 0.5)
      opt_vars = [
        v for v in tf.compat.v1.global_variables() if v not in model_vars
      ]
      self.assertLen(opt_vars, 2)
      sess.run(tf.compat.v1.global_variables_initializer())
      self.assertTrue(all(np.all(sess.run(v) == 0) for v in opt_vars))
      sess.run(update_op)
      first = sess.run(
        [opt.get_slot(x, "velocity"), opt.get_slot(y, "velocity")]
      )
      np.testing.assert_allclose(first[0], 3 * np.ones((2, 2)))
      np.testing.assert_allclose(first[1], 4 * np.ones((2, 2)))
      sess.run(update_op)
      second = sess.run(
        [opt.get_slot(x, "velocity"), opt.get_slot(y, "velocity")]
      )
      # 0.5 * 3 + 3, 0.5 * 4 + 4.
      np.testing.assert_allclose(second[0], 4.5 * np.ones((2, 2)))
      np.testing.assert_allclose(second[1], 6 * np.ones((2, 2)))

  def test_apply_gradients(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      opt, lc, loss, w, b = _build(_values(0), momentum=0.5)
      grads_and_vars = opt.compute_gradients(loss)
      all_vars = [var for _, var in grads_and_vars]
      train_op = opt.apply_gradients(grads_and_vars)
      sess.run(tf.compat.v1.global_variables_initializer())
      before = sess.run(all_vars)
      sess.run([train_op, opt.cov_update_op])
      sess.run(opt.inv_update_op)
      sess.run([train_op, opt.cov_update_op])
      after = sess.run(all_vars)
      for v_before, v_after in zip(before, after):
        self.assertFalse(np.allclose(v_before, v_after))


def _two_steps(vals, **opt_kwargs):
  """Two training steps of `_build(vals, **opt_kwargs)` after `_prepare`.

  Returns:
    The factors' `a_cov` and `g_cov`, the (w, b) before the steps, the
    (w, b, velocity slot of w or None) after the first and the (w, b) after
    the second.
  """
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    opt, lc, loss, w, b = _build(vals, **opt_kwargs)
    train_op = opt.minimize(loss)
    a_cov, g_cov, w0, b0 = _prepare(sess, opt, lc, w, b)
    sess.run(train_op)
    velocity = opt.get_slot(w, "velocity")
    first = sess.run([w, b, velocity] if velocity is not None else [w, b])
    sess.run(train_op)
    second = sess.run([w, b])
  return (
    a_cov,
    g_cov,
    (w0, b0),
    tuple(first) + (None,) * (3 - len(first)),
    second,
  )


class UpdateRulesTest(parameterized.TestCase):
  @parameterized.named_parameters(("no_momentum", 0.0), ("momentum", 0.9))
  def test_regular_steps(self, momentum):
    vals = _values(1)
    a_cov, g_cov, (w0, b0), (w1, b1, _), (w2, b2) = _two_steps(
      vals, momentum=momentum
    )
    # Step 1: v1 = F̂⁻¹ g(w0); step 2: v2 = momentum·v1 + F̂⁻¹ g(w1).
    v1 = _precondition(a_cov, g_cov, _gradient(vals, w0, b0))
    exp_w1, exp_b1 = _split(np.vstack([w0, b0]) - LR * v1)
    np.testing.assert_allclose(w1, exp_w1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b1, exp_b1, rtol=1e-4, atol=1e-5)
    v2 = momentum * v1 + _precondition(
      a_cov, g_cov, _gradient(vals, exp_w1, exp_b1)
    )
    exp_w2, exp_b2 = _split(np.vstack([exp_w1, exp_b1]) - LR * v2)
    np.testing.assert_allclose(w2, exp_w2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b2, exp_b2, rtol=1e-4, atol=1e-5)

  def test_adam_steps(self):
    momentum = 0.5
    vals = _values(2)
    a_cov, g_cov, (w0, b0), (w1, b1, vel_w1), (w2, b2) = _two_steps(
      vals, momentum=momentum, momentum_type="adam"
    )
    # velocity ← momentum·velocity + g; step = F̂⁻¹ velocity.
    g0 = _gradient(vals, w0, b0)
    np.testing.assert_allclose(vel_w1, g0[:-1], rtol=1e-4, atol=1e-5)
    exp_w1, exp_b1 = _split(
      np.vstack([w0, b0]) - LR * _precondition(a_cov, g_cov, g0)
    )
    np.testing.assert_allclose(w1, exp_w1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b1, exp_b1, rtol=1e-4, atol=1e-5)
    velocity = momentum * g0 + _gradient(vals, exp_w1, exp_b1)
    exp_w2, exp_b2 = _split(
      np.vstack([exp_w1, exp_b1]) - LR * _precondition(a_cov, g_cov, velocity)
    )
    np.testing.assert_allclose(w2, exp_w2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b2, exp_b2, rtol=1e-4, atol=1e-5)

  def test_qmodel_steps(self):
    vals = _values(3)
    a_cov, g_cov, (w0, b0), (w1, b1, _), (w2, b2) = _two_steps(
      vals, momentum_type="qmodel"
    )

    a = _homog(vals["x"])

    def exact_fisher_quadratic(d1, d2):
      """Σ_n (Bᵀ J d1)_n · (Bᵀ J d2)_n / BATCH, with J d = ã_nᵀ D."""
      total = 0.0
      for n in range(BATCH):
        p = _softmax_rows(vals["x"][n : n + 1] @ w_cur + b_cur)[0]
        q = np.sqrt(p)
        factor_t = (np.diag(q) - np.outer(p, q)).T
        total += (factor_t @ (a[n] @ d1)) @ (factor_t @ (a[n] @ d2))
      return total / BATCH

    def inner(m1, m2):
      return float(np.sum(m1 * m2))

    # Step 1: no previous update: α = −gᵀp / (pᵀF p/n + λ pᵀp), μ = 0.
    w_cur, b_cur = w0, b0
    g = _gradient(vals, w0, b0)
    p = _precondition(a_cov, g_cov, g)
    m11 = exact_fisher_quadratic(p, p) + DAMPING * inner(p, p)
    alpha = -inner(g, p) / m11
    velocity = -alpha * p
    exp_w1, exp_b1 = _split(np.vstack([w0, b0]) - LR * velocity)
    np.testing.assert_allclose(w1, exp_w1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b1, exp_b1, rtol=1e-4, atol=1e-5)

    # Step 2: 2×2 quadratic model in (p, d = −velocity).
    w_cur, b_cur = exp_w1, exp_b1
    g = _gradient(vals, exp_w1, exp_b1)
    p = _precondition(a_cov, g_cov, g)
    d = -velocity
    m = np.array(
      [
        [
          exact_fisher_quadratic(p, p) + DAMPING * inner(p, p),
          exact_fisher_quadratic(d, p) + DAMPING * inner(d, p),
        ],
        [
          exact_fisher_quadratic(d, p) + DAMPING * inner(d, p),
          exact_fisher_quadratic(d, d) + DAMPING * inner(d, d),
        ],
      ]
    )
    c = np.array([inner(g, p), inner(g, d)])
    sol = np.linalg.solve(m, c)
    alpha, mu = -sol[0], -sol[1]
    velocity = mu * velocity - alpha * p
    exp_w2, exp_b2 = _split(np.vstack([exp_w1, exp_b1]) - LR * velocity)
    np.testing.assert_allclose(w2, exp_w2, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(b2, exp_b2, rtol=1e-3, atol=1e-4)

  @parameterized.named_parameters(
    ("inactive", 1e3, "float"),
    ("active", 1e-3, "float"),
    ("active_lr_tensor", 1e-3, "tensor"),
    ("active_lr_decay_schedule", 1e-3, "schedule"),
    ("active_lr_callable", 1e-3, "callable"),
  )
  def test_norm_constraint(self, norm_constraint, lr_kind):
    # The clipping coefficient reads the learning rate, which the base
    # optimizer accepts as a float, a Tensor (e.g. a decay schedule of the
    # global step) or a callable returning one.
    vals = _values(4)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      learning_rate = {
        "float": lambda: LR,
        "tensor": lambda: tf.constant(LR),
        "schedule": lambda: tf.compat.v1.train.exponential_decay(
          LR, tf.compat.v1.train.get_or_create_global_step(), 10, 1.0
        ),
        "callable": lambda: lambda: tf.constant(LR),
      }[lr_kind]()
      opt, lc, loss, w, b = _build(
        vals, norm_constraint=norm_constraint, learning_rate=learning_rate
      )
      train_op = opt.minimize(loss)
      a_cov, g_cov, w0, b0 = _prepare(sess, opt, lc, w, b)
      sess.run(train_op)
      w1, b1 = sess.run([w, b])
    g = _gradient(vals, w0, b0)
    p = _precondition(a_cov, g_cov, g)
    sq_fisher_norm = np.sum(g * p)
    coeff = min(1.0, np.sqrt(norm_constraint / (LR**2 * sq_fisher_norm)))
    if norm_constraint == 1e3:
      self.assertEqual(coeff, 1.0)
    else:
      self.assertLess(coeff, 1.0)
      # The clipped update has squared Fisher norm = the constraint.
      update = LR * coeff * p
      self.assertAlmostEqual(
        np.sum(update * _precondition_inverse_apply(a_cov, g_cov, update)),
        norm_constraint,
        places=8,
      )
    exp_w1, exp_b1 = _split(np.vstack([w0, b0]) - LR * coeff * p)
    np.testing.assert_allclose(w1, exp_w1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b1, exp_b1, rtol=1e-4, atol=1e-5)

  @parameterized.named_parameters(
    ("regular", dict(momentum=0.5)),
    ("adam", dict(momentum=0.5, momentum_type="adam")),
    ("qmodel", dict(momentum_type="qmodel")),
  )
  def test_indexed_slices_gradients_act_as_dense(self, opt_kwargs):
    # Gradients of gathered variables (embeddings) come as IndexedSlices;
    # two steps with them give the same variables as with the dense ones.
    vals = _values(5)
    results = []
    for sparse in (False, True):
      with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        opt, lc, loss, w, b = _build(vals, **opt_kwargs)
        grads_and_vars = opt.compute_gradients(loss)
        if sparse:
          grads_and_vars = [
            (
              tf.IndexedSlices(
                grad, tf.range(tf.shape(grad)[0]), tf.shape(grad)
              ),
              var,
            )
            for grad, var in grads_and_vars
          ]
        train_op = opt.apply_gradients(grads_and_vars)
        _prepare(sess, opt, lc, w, b)
        sess.run(train_op)
        sess.run(train_op)
        results.append(sess.run([w, b]))
    for dense_value, sparse_value in zip(*results):
      np.testing.assert_allclose(
        sparse_value, dense_value, rtol=1e-5, atol=1e-6
      )

  def test_minimize_increments_global_step(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      opt, _, loss, _, _ = _build(_values(5))
      global_step = tf.compat.v1.train.get_or_create_global_step()
      train_op = opt.minimize(loss, global_step=global_step)
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(train_op)
      sess.run(train_op)
      self.assertEqual(sess.run(global_step), 2)


def _precondition_inverse_apply(a_cov, g_cov, mat):
  """F̂ V = (A + π√λ I) V (G + √λ/π I), the inverse of `_precondition`."""
  pi = np.sqrt(
    (np.trace(a_cov) / a_cov.shape[0]) / (np.trace(g_cov) / g_cov.shape[0])
  )
  a_damped = a_cov + pi * np.sqrt(DAMPING) * np.eye(a_cov.shape[0])
  g_damped = g_cov + np.sqrt(DAMPING) / pi * np.eye(g_cov.shape[0])
  return a_damped @ mat @ g_damped


class SlotsAndPropertiesTest(parameterized.TestCase):
  def test_velocity_slots(self):
    with tf.Graph().as_default():
      opt, _, loss, w, b = _build(_values(6))  # momentum 0: slots anyway.
      opt.minimize(loss)
      self.assertEqual(opt.get_slot_names(), ["velocity"])
      self.assertEqual(opt.get_slot(w, "velocity").op.name, "w/KFAC")
      self.assertEqual(opt.get_slot(b, "velocity").op.name, "b/KFAC")
      self.assertEqual(opt.get_name(), "KFAC")
      slot = opt.get_slot(w, "velocity")
      self.assertNotIn(slot, tf.compat.v1.trainable_variables())

  def test_custom_name(self):
    with tf.Graph().as_default():
      opt, _, loss, w, _ = _build(_values(6), name="MyKfac")
      opt.minimize(loss)
      self.assertEqual(opt.get_slot(w, "velocity").op.name, "w/MyKfac")

  def test_properties_and_public_ops(self):
    with tf.Graph().as_default():
      opt, _, _, w, b = _build(_values(7))
      self.assertIsInstance(opt, tf.compat.v1.train.GradientDescentOptimizer)
      self.assertCountEqual(opt.variables, [w, b])
      self.assertEqual(opt.damping, DAMPING)
      self.assertIsInstance(opt.cov_update_op, tf.Operation)
      self.assertIsInstance(opt.inv_update_op, tf.Operation)
      self.assertTrue(opt.inv_updates_dict)
      for name, update in opt.inv_updates_dict.items():
        self.assertIsInstance(update, tf.Tensor)
        self.assertEqual(update.name, name)
        self.assertEqual(update.dtype.base_dtype, tf.float32)
        self.assertTrue(update.get_shape().is_fully_defined())

  def test_positional_legacy_order(self):
    # (learning_rate, cov_ema_decay, damping, layer_collection, momentum,
    #  momentum_type, norm_constraint, name)
    with tf.Graph().as_default():
      w, logits, lc = _bias_free_layer(_values(8))
      opt = optimizer.KfacOptimizer(
        0.5, 0.9, 0.01, lc, 0.3, "Regular", 2.0, "Positional"
      )
      self.assertEqual(opt.damping, 0.01)
      self.assertEqual(opt._momentum_type, "regular")
      self.assertEqual(opt._norm_constraint, 2.0)
      self.assertEqual(opt.get_name(), "Positional")


class InvalidSettingsTest(parameterized.TestCase):
  @parameterized.named_parameters(
    (
      "unknown_momentum_type",
      dict(momentum_type="nesterov"),
      "Unsupported momentum type",
    ),
    (
      "norm_constraint_with_adam",
      dict(momentum_type="adam", norm_constraint=1.0),
      "only supported",
    ),
    (
      "norm_constraint_with_qmodel",
      dict(momentum_type="qmodel", norm_constraint=1.0),
      "only supported",
    ),
    (
      "momentum_with_qmodel",
      dict(momentum_type="qmodel", momentum=0.5),
      "momentum must be 0",
    ),
    (
      "unknown_estimation_mode",
      dict(estimation_mode="magic"),
      "Unrecognized value",
    ),
  )
  def test_constructor_errors(self, kwargs, message):
    with tf.Graph().as_default():
      with pytest.raises(ValueError, match=message):
        _build(_values(9), **kwargs)

  def test_unregistered_trainable_variable(self):
    with tf.Graph().as_default():
      tf.compat.v1.get_variable("other", shape=[2])
      with pytest.raises(ValueError, match="other:0 not registered"):
        _build(_values(10))

  def test_var_list_mismatch(self):
    with tf.Graph().as_default():
      opt, _, loss, w, _ = _build(_values(11))
      with pytest.raises(ValueError, match="var_list"):
        opt.minimize(loss, var_list=[w])
      with pytest.raises(ValueError, match="var_list"):
        opt.compute_gradients(loss, var_list=[w])

  def test_var_list_given_positionally(self):
    with tf.Graph().as_default():
      opt, _, loss, w, b = _build(_values(11))
      with pytest.raises(ValueError, match="var_list"):
        opt.minimize(loss, None, [w])
      self.assertIsInstance(opt.minimize(loss, None, [b, w]), tf.Operation)

  def test_missing_gradient_names_the_variable(self):
    with tf.Graph().as_default():
      opt, _, _, w, _ = _build(_values(11))
      loss_without_b = tf.reduce_sum(w)
      with pytest.raises(ValueError, match=r"no gradient \(None\) for b:0"):
        opt.minimize(loss_without_b)

  def test_squared_fisher_norm_variable_mismatch(self):
    with tf.Graph().as_default():
      opt = optimizer.KfacOptimizer(0.1, 0.2, 0.3, dummy_layer_collection())
      with pytest.raises(ValueError, match="must match"):
        opt._squared_fisher_norm([(tf.ones([2]), "a")], [(tf.ones([2]), "b")])

  @parameterized.named_parameters(
    ("float", 0.0),
    ("int", 0),
    ("none", None),
    ("numpy_float32", np.float32(0.0)),
    ("numpy_int64", np.int64(0)),
  )
  def test_qmodel_accepts_zero_momentum(self, momentum):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      opt, _, _, _, _ = _build(
        _values(12), momentum_type="qmodel", momentum=momentum
      )
      self.assertEqual(opt._momentum_type, "qmodel")
      self.assertEqual(sess.run(opt._momentum), 0)


class R15KeywordsTest(parameterized.TestCase):
  """The r1.5 keyword arguments accepted after the 1.4 ones."""

  def test_var_list_excludes_other_trainable_variables(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      other = tf.compat.v1.get_variable("other", initializer=[1.0, 2.0])
      w, logits, lc = _bias_free_layer(_values(13))
      loss = tf.reduce_sum(logits**2)
      opt = optimizer.KfacOptimizer(0.1, 0.5, 0.1, lc, var_list=[w])
      self.assertEqual(opt.variables, [w])
      train_op = opt.minimize(loss)
      sess.run(tf.compat.v1.global_variables_initializer())
      w_before = sess.run(w)
      sess.run(train_op)
      self.assertFalse(np.allclose(sess.run(w), w_before))
      np.testing.assert_allclose(sess.run(other), [1.0, 2.0])

  def test_estimation_mode_is_passed_on(self):
    # "exact" is deterministic: two covariance updates give equal factors.
    vals = _values(14)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      opt, lc, _, _, _ = _build(
        vals, estimation_mode="exact", cov_ema_decay=0.0
      )
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(opt.cov_update_op)
      first = _factor_covs(lc, sess)
      sess.run(opt.cov_update_op)
      second = _factor_covs(lc, sess)
    probs = _softmax_rows(vals["x"] @ vals["w"] + vals["b"])
    expected_g = sum(np.diag(p) - np.outer(p, p) for p in probs) / BATCH
    np.testing.assert_allclose(first[1], expected_g, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(second[1], first[1], rtol=1e-6, atol=1e-7)

  def test_devices_place_the_update_ops(self):
    with tf.Graph().as_default():
      opt, _, _, _, _ = _build(
        _values(15),
        cov_devices=["/device:CPU:0"],
        inv_devices=["/device:CPU:1"],
      )
      for update in opt.inv_updates_dict.values():
        op = update.op
        if op.type == "ReadVariableOp":  # Read after a resource assignment.
          (op,) = op.control_inputs
        # The assigned value is placed (a reference variable's assign op is
        # colocated with its variable).
        self.assertEqual(op.inputs[1].device, "/device:CPU:1")
      cov_ops = [
        op
        for op in tf.compat.v1.get_default_graph().get_operations()
        if op.device == "/device:CPU:0"
      ]
      self.assertNotEmpty(cov_ops)

  def test_colocate_gradients_with_ops_builds(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      opt, lc, loss, w, b = _build(
        _values(16), colocate_gradients_with_ops=True
      )
      train_op = opt.minimize(loss)
      a_cov, g_cov, w0, b0 = _prepare(sess, opt, lc, w, b)
      loss_before = sess.run(loss)
      sess.run(train_op)
      w1, b1 = sess.run([w, b])
      loss_after = sess.run(loss)
    # Default momentum 0.9 from zero velocity: the first step is −lr·F̂⁻¹g.
    step = -LR * _precondition(a_cov, g_cov, _gradient(_values(16), w0, b0))
    np.testing.assert_allclose(w1 - w0, _split(step)[0], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(b1 - b0, _split(step)[1], rtol=1e-3, atol=1e-5)
    self.assertLess(loss_after, loss_before)


class SettingChecksTest(parameterized.TestCase):
  """Invalid settings are rejected when the graph is built (issue 14 §2)."""

  @parameterized.named_parameters(
    ("damping_zero", dict(damping=0.0), ValueError, "damping"),
    ("damping_negative", dict(damping=-1), ValueError, "damping"),
    ("damping_nan", dict(damping=float("nan")), ValueError, "damping"),
    ("damping_string", dict(damping="0.1"), TypeError, "damping"),
    ("decay_negative", dict(cov_ema_decay=-0.1), ValueError, "cov_ema_decay"),
    ("decay_above_one", dict(cov_ema_decay=1.5), ValueError, "cov_ema_decay"),
    ("decay_nan", dict(cov_ema_decay=np.nan), ValueError, "cov_ema_decay"),
    ("lr_negative", dict(learning_rate=-0.1), ValueError, "learning_rate"),
    ("lr_inf", dict(learning_rate=np.inf), ValueError, "learning_rate"),
    (
      "lr_nan",
      dict(learning_rate=np.float32("nan")),
      ValueError,
      "learning_rate",
    ),
    ("lr_string", dict(learning_rate="fast"), TypeError, "learning_rate"),
    (
      "norm_constraint_zero",
      dict(norm_constraint=0.0),
      ValueError,
      "norm_constraint",
    ),
    (
      "norm_constraint_negative",
      dict(norm_constraint=-2),
      ValueError,
      "norm_constraint",
    ),
    (
      "norm_constraint_string",
      dict(norm_constraint="1"),
      TypeError,
      "norm_constraint",
    ),
    ("momentum_string", dict(momentum="0.9"), TypeError, "momentum"),
    ("momentum_list", dict(momentum=[0.9]), TypeError, "momentum"),
    ("momentum_nan", dict(momentum=float("nan")), ValueError, "momentum"),
    (
      "layer_collection_string",
      dict(layer_collection="lc"),
      TypeError,
      "layer_collection",
    ),
    (
      "layer_collection_none",
      dict(layer_collection=None),
      TypeError,
      "layer_collection",
    ),
  )
  def test_rejected_at_construction(self, kwargs, error, name):
    with tf.Graph().as_default():
      with pytest.raises(error, match=name):
        _build(_values(20), **kwargs)

  @parameterized.named_parameters(
    ("int_damping", dict(damping=1)),
    ("numpy_damping", dict(damping=np.float32(0.1))),
    ("tensor_damping", dict(damping="a scalar Tensor")),
    ("decay_zero", dict(cov_ema_decay=0)),
    ("decay_one", dict(cov_ema_decay=1.0)),
    ("zero_lr", dict(learning_rate=0.0)),
    ("callable_lr", dict(learning_rate=lambda: 0.1)),
    ("numpy_momentum", dict(momentum=np.float64(0.5))),
    ("norm_constraint", dict(norm_constraint=2.0)),
  )
  def test_accepted_as_in_1_4(self, kwargs):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      if kwargs.get("damping") == "a scalar Tensor":
        kwargs["damping"] = tf.constant(0.1)
      opt, _, loss, _, _ = _build(_values(21), **kwargs)
      train_op = opt.minimize(loss)
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run([train_op, opt.cov_update_op])
      sess.run(opt.inv_update_op)

  def test_estimator_rejects_a_non_layer_collection(self):
    from kfac import estimator

    with tf.Graph().as_default():
      w = tf.compat.v1.get_variable("w", [2])
      with pytest.raises(TypeError, match="layer_collection"):
        estimator.FisherEstimator([w], 0.9, 0.1, object())

  @parameterized.named_parameters(
    ("damping", "damping", 0.0),
    ("cov_ema_decay", "cov_ema_decay", 1.5),
    ("learning_rate", "learning_rate", -1.0),
    ("momentum", "momentum", np.nan),
  )
  def test_tensor_settings_checked_at_run_time_when_asked(self, name, bad):
    good = dict(
      damping=DAMPING, cov_ema_decay=0.5, learning_rate=LR, momentum=0.9
    )
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      value = tf.compat.v1.placeholder_with_default(good[name], [])
      opt, _, loss, _, _ = _build(
        _values(22), check_tensor_settings=True, **{name: value}
      )
      train_op = opt.minimize(loss)
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run([train_op, opt.cov_update_op])
      sess.run(opt.inv_update_op)
      op = (
        train_op
        if name in ("learning_rate", "momentum")
        else (
          opt.cov_update_op if name == "cov_ema_decay" else opt.inv_update_op
        )
      )
      with pytest.raises(tf.errors.InvalidArgumentError, match=name):
        sess.run(op, {value: bad})

  def test_run_time_checks_change_no_variable_name(self):
    names = {}
    for check in (False, True):
      with tf.Graph().as_default():
        damping = tf.constant(DAMPING)
        opt, _, loss, _, _ = _build(
          _values(23), damping=damping, check_tensor_settings=check
        )
        opt.minimize(loss)
        names[check] = [v.op.name for v in tf.compat.v1.global_variables()]
        checks = [
          op
          for op in tf.compat.v1.get_default_graph().get_operations()
          if "kfac_setting_checks" in op.name
        ]
        self.assertEqual(bool(checks), check)
    self.assertEqual(names[True], names[False])
