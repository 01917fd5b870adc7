"""Releases 1.8, 1.9 and 1.10: deferred construction, towers, placement.

The typical programs of releases.md §19 for 1.8-1.10 (ops from thunks,
multi-tower with both tower strategies, round-robin placement on two CPU
devices, damping adaptation, the 1.9 estimator-only Cholesky usage), the
life-cycle rules and errors of §6.3/§7/§8.3/§17, and NumPy oracles of what
is new: zero-debiased moving averages, Cholesky products, damping-function
ids (variable names) and tower strategies.
"""

import warnings

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
from test_releases import _make_optimizer
from test_releases import _named
from test_releases import _np_pi
from test_releases import _ns
from test_releases import _updated_factor_covs

B, IN, OUT = 6, 3, 4
_DEFERRED = ("kfac.r1_8", "kfac.r1_9", "kfac.r1_10")


def _optimizer(ns, lc, **kwargs):
  """A `KfacOptimizer` with this file's defaults: decay 0.9, damping 0.1."""
  return _make_optimizer(
    ns, lc, **dict({"cov_ema_decay": 0.9, "damping": 0.1}, **kwargs)
  )


def _two_cpu_session(graph):
  config = tf.compat.v1.ConfigProto(
    device_count={"CPU": 2}, allow_soft_placement=False
  )
  return tf.compat.v1.Session(graph=graph, config=config)


def _mlp(ns, x, y, lc, reuse=False, name="logits"):
  """A 3 -> 4 tanh layer and a 4 -> 3 softmax layer; returns the loss."""
  with tf.compat.v1.variable_scope("model", reuse=reuse):
    w1 = tf.compat.v1.get_variable(
      "w1",
      initializer=tf.compat.v1.random_normal_initializer(seed=1),
      shape=[IN, OUT],
    )
    b1 = tf.compat.v1.get_variable(
      "b1", [OUT], initializer=tf.zeros_initializer()
    )
    w2 = tf.compat.v1.get_variable(
      "w2",
      initializer=tf.compat.v1.random_normal_initializer(seed=2),
      shape=[OUT, 3],
    )
  pre = tf.matmul(x, w1) + b1
  lc.register_fully_connected((w1, b1), x, pre)
  logits = tf.matmul(tf.tanh(pre), w2)
  lc.register_fully_connected(w2, tf.tanh(pre), logits)
  lc.register_categorical_predictive_distribution(logits, name=name)
  return tf.reduce_mean(
    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
  )


def _data(seed=0, batch=B):
  rng = np.random.RandomState(seed)
  return (
    rng.randn(batch, IN).astype(np.float32),
    rng.randint(0, 3, batch).astype(np.int32),
  )


def _round_robin_optimizer(
  ns, lc, cov_ema_decay, cov_devices, inv_devices, **kwargs
):
  """A momentum `KfacOptimizer` placing its ops round robin on the devices."""
  return ns.optimizer.KfacOptimizer(
    learning_rate=0.05,
    cov_ema_decay=cov_ema_decay,
    damping=1e-2,
    layer_collection=lc,
    momentum=0.9,
    placement_strategy="round_robin",
    cov_devices=cov_devices,
    inv_devices=inv_devices,
    **kwargs,
  )


class TypicalProgramsTest(parameterized.TestCase):
  """releases.md §19 for 1.8-1.10."""

  @parameterized.named_parameters(*_named(_DEFERRED))
  def test_ops_from_thunks_with_cond_gated_inverses(self, package):
    ns = _ns(package)
    xb, yb = _data()
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.constant(xb)
      y = tf.constant(yb)
      lc = ns.layer_collection.LayerCollection()
      loss = _mlp(ns, x, y, lc)
      step = tf.compat.v1.train.get_or_create_global_step()
      opt = _round_robin_optimizer(
        ns, lc, 0.95, ["/cpu:0"], ["/cpu:0"], batch_size=B
      )
      cov_thunks, inv_thunks = opt.make_vars_and_create_op_thunks()
      cov_op = tf.group(*[t() for t in cov_thunks])
      with tf.control_dependencies([cov_op]):
        inv_op = tf.cond(
          tf.equal(tf.math.floormod(step, 3), 0),
          lambda: tf.group(*[t() for t in inv_thunks]),
          tf.no_op,
        )
        with tf.control_dependencies([inv_op]):
          train = opt.minimize(loss, global_step=step)
      sess.run(tf.compat.v1.global_variables_initializer())
      losses = [sess.run([train, loss])[1] for _ in range(8)]
    self.assertTrue(np.all(np.isfinite(losses)), losses)
    self.assertLess(losses[-1], losses[0])

  @parameterized.named_parameters(
    *[
      ("%s_%s" % (release, strategy), "kfac." + release, strategy)
      for release in ("r1_8", "r1_9")
      for strategy in ("concat", "separate")
    ]
  )
  def test_multi_tower(self, package, strategy):
    ns = _ns(package)
    old = ns.fisher_factors.TOWER_STRATEGY
    ns.fisher_factors.set_global_constants(tower_strategy=strategy)
    try:
      self._check_multi_tower(ns, strategy)
    finally:
      ns.fisher_factors.set_global_constants(tower_strategy=old)

  def _check_multi_tower(self, ns, strategy):
    xb, yb = _data(1, 2 * B)
    graph = tf.Graph()
    with graph.as_default():
      lc = ns.layer_collection.LayerCollection()
      losses, inputs = [], []
      for tower in range(2):
        with tf.device("/cpu:%d" % tower), tf.name_scope("tower%d" % tower):
          x = tf.constant(xb[tower * B : (tower + 1) * B], name="x")
          y = tf.constant(yb[tower * B : (tower + 1) * B])
          with tf.compat.v1.variable_scope(
            tf.compat.v1.get_variable_scope(), reuse=tower > 0
          ):
            losses.append(_mlp(ns, x, y, lc, reuse=tower > 0))
          inputs.append(x)
      loss = tf.add_n(losses) / 2.0
      opt = _round_robin_optimizer(
        ns,
        lc,
        0.0,
        ["/cpu:0", "/cpu:1"],
        ["/cpu:0", "/cpu:1"],
        batch_size=2 * B,
      )
      cov_thunks, inv_thunks = opt.make_vars_and_create_op_thunks()
      cov_op = tf.group(*[t() for t in cov_thunks])
      inv_op = tf.group(*[t() for t in inv_thunks])
      with tf.control_dependencies([inv_op]):
        train = opt.minimize(loss)
      (w1, b1), block = next(
        (key, fb)
        for key, fb in lc.fisher_blocks.items()
        if isinstance(key, tuple)
      )
      self.assertEqual(block.num_registered_towers, 2)
      self.assertEqual(len(lc.towers_by_loss[0]), 2)
      input_factor = block._input_factor
      self.assertEqual(
        input_factor.name,
        "ff_fckron_tower0_x__tower1_x_True"
        if strategy == "concat"
        else "ff_fckron_tower0_x_tower1_x_True",
      )
      with _two_cpu_session(graph) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(cov_op)
        a_cov = sess.run(input_factor.get_cov())
        sess.run(train)
        loss_value = sess.run(loss)
    # Both strategies give the mean second moment of [x, 1] over all the
    # examples (equal tower sizes): concat pools the towers, separate
    # averages the towers' statistics.
    expected = np.zeros((IN + 1, IN + 1))
    for tower in range(2):
      part = np.zeros((IN + 1, IN + 1))
      for n in range(tower * B, (tower + 1) * B):
        row = np.append(xb[n], 1.0)
        part += np.outer(row, row) / B
      expected += part / 2
    np.testing.assert_allclose(a_cov, expected, rtol=1e-5, atol=1e-6)
    self.assertTrue(np.isfinite(loss_value))

  @parameterized.named_parameters(*_named(("kfac.r1_8", "kfac.r1_9")))
  def test_round_robin_placement_on_two_cpus(self, package):
    ns = _ns(package)
    xb, yb = _data(2)
    graph = tf.Graph()
    with graph.as_default():
      lc = ns.layer_collection.LayerCollection()
      loss = _mlp(ns, tf.constant(xb), tf.constant(yb), lc)
      opt = _round_robin_optimizer(
        ns, lc, 0.9, ["/cpu:0", "/cpu:1"], ["/cpu:1", "/cpu:0"]
      )
      cov_thunks, inv_thunks = opt.make_vars_and_create_op_thunks()
      factors = list(lc.get_factors())
      self.assertEqual(len(factors), 4)
      cov_ops = [t() for t in cov_thunks]
      inv_ops = [t() for t in inv_thunks]
      for i, factor in enumerate(factors):
        cov_device = tf.DeviceSpec.from_string(factor._cov.device)
        self.assertEqual(cov_device.device_index, i % 2, factor.name)
        self.assertEqual(
          tf.DeviceSpec.from_string(cov_ops[i].device).device_index, i % 2
        )
        self.assertEqual(
          tf.DeviceSpec.from_string(inv_ops[i].device).device_index,
          (i + 1) % 2,
        )
      with tf.control_dependencies(inv_ops):
        train = opt.minimize(loss)
      metadata = tf.compat.v1.RunMetadata()
      with _two_cpu_session(graph) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(
          [train] + cov_ops,
          options=tf.compat.v1.RunOptions(
            trace_level=tf.compat.v1.RunOptions.FULL_TRACE
          ),
          run_metadata=metadata,
        )
    devices = {d.device for d in metadata.step_stats.dev_stats}
    self.assertTrue(any(d.endswith("CPU:0") for d in devices), devices)
    self.assertTrue(any(d.endswith("CPU:1") for d in devices), devices)

  @parameterized.named_parameters(*_named(("kfac.r1_8", "kfac.r1_9")))
  def test_damping_adaptation(self, package):
    ns = _ns(package)
    xb, yb = _data(3)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.compat.v1.placeholder(tf.float32, [B, IN])
      y = tf.compat.v1.placeholder(tf.int32, [B])
      prev_x = tf.compat.v1.get_variable(
        "prev_x", initializer=xb, trainable=False
      )
      prev_y = tf.compat.v1.get_variable(
        "prev_y", initializer=yb, trainable=False
      )
      lc = ns.layer_collection.LayerCollection()
      loss = _mlp(ns, x, y, lc)

      w1, b1, w2 = tf.compat.v1.trainable_variables()

      def loss_fn(batch):
        bx, by = batch
        logits = tf.matmul(tf.tanh(tf.matmul(bx, w1) + b1), w2)
        return tf.reduce_mean(
          tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=by, logits=logits
          )
        )

      step = tf.compat.v1.train.get_or_create_global_step()
      opt = _optimizer(ns, lc, learning_rate=0.05, momentum=0.9, batch_size=B)
      opt.set_damping_adaptation_params(
        is_chief=True,
        prev_train_batch=(prev_x, prev_y),
        loss_fn=loss_fn,
        damping_adaptation_interval=2,
      )
      cov_thunks, inv_thunks = opt.make_vars_and_create_op_thunks()
      cov_op = tf.group(*[t() for t in cov_thunks])
      inv_op = tf.group(*[t() for t in inv_thunks])
      with tf.control_dependencies([cov_op, inv_op]):
        train = opt.minimize(loss, global_step=step)
      with tf.control_dependencies([train]):
        keep = tf.group(prev_x.assign(x), prev_y.assign(y))
      sess.run(tf.compat.v1.global_variables_initializer())
      dampings = []
      for _ in range(6):
        sess.run(keep, {x: xb, y: yb})
        dampings.append(sess.run(opt.damping))
    self.assertTrue(np.all(np.isfinite(dampings)), dampings)
    # The Levenberg-Marquardt rule moved the damping at adaptation steps.
    self.assertNotEqual(dampings[0], dampings[-1])
    self.assertTrue(np.all(np.array(dampings) >= 1e-5))


def _fc_only(ns, xb, seed=0):
  """One FC layer with bias, a normal head; returns (w, b, logits, lc)."""
  rng = np.random.RandomState(seed)
  x = tf.constant(xb)
  w = tf.compat.v1.get_variable(
    "w", initializer=rng.randn(IN, OUT).astype(np.float32)
  )
  b = tf.compat.v1.get_variable("b", initializer=np.zeros(OUT, np.float32))
  out = tf.matmul(x, w) + b
  lc = ns.layer_collection.LayerCollection()
  lc.register_fully_connected((w, b), x, out)
  lc.register_normal_predictive_distribution(out, var=0.5, seed=0)
  return w, b, out, lc


def _fc_only_optimizer(package, **kwargs):
  """In the current graph: `_fc_only` of `_data()` and an `_optimizer` of it.

  Returns:
    `(out, opt)`: the layer's outputs and the optimizer.
  """
  ns = _ns(package)
  xb, _ = _data()
  _, _, out, lc = _fc_only(ns, xb)
  return out, _optimizer(ns, lc, **kwargs)


class EstimatorOnlyCholeskyTest(tf.test.TestCase):
  """releases.md §19: the 1.9 estimator used without the optimizer."""

  def test_multiply_and_cholesky_products_against_numpy(self):
    ns = _ns("kfac.r1_9")
    xb, _ = _data(4)
    rng = np.random.RandomState(5)
    v_w = rng.randn(IN, OUT).astype(np.float32)
    v_b = rng.randn(OUT).astype(np.float32)
    damping = 0.1
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      w, b, _, lc = _fc_only(ns, xb)
      est = ns.estimator.make_fisher_estimator(
        placement_strategy="round_robin",
        variables=[w, b],
        cov_ema_decay=0.0,
        damping=damping,
        layer_collection=lc,
        exps=(-1, 1),
        compute_cholesky=True,
        compute_cholesky_inverse=True,
      )
      cov_thunks, inv_thunks = est.make_vars_and_create_op_thunks()
      cov_op = tf.group(*[t() for t in cov_thunks])
      inv_op = tf.group(*[t() for t in inv_thunks])
      vecs = [(tf.constant(v_w), w), (tf.constant(v_b), b)]
      products = {
        "inverse": est.multiply_inverse(vecs),
        "multiply": est.multiply(vecs),
        "chol": est.multiply_cholesky(vecs),
        "chol_t": est.multiply_cholesky(vecs, transpose=True),
        "chol_inv": est.multiply_cholesky_inverse(vecs),
        "chol_inv_t": est.multiply_cholesky_inverse(vecs, transpose=True),
      }
      block = lc.fisher_blocks[(w, b)]
      a_cov, g_cov = _updated_factor_covs(sess, block, cov_op, inv_op)
      values = sess.run(
        {k: [p for p, _ in pairs] for k, pairs in products.items()}
      )
    pi = _np_pi(a_cov, g_cov)
    a_d = a_cov + pi * np.sqrt(damping) * np.eye(IN + 1)
    g_d = g_cov + np.sqrt(damping) / pi * np.eye(OUT)
    l_a = np.linalg.cholesky(a_d)
    l_g = np.linalg.cholesky(g_d)
    v = np.concatenate([v_w, v_b[None]], axis=0)
    expected = {
      "inverse": np.linalg.inv(a_d) @ v @ np.linalg.inv(g_d),
      "multiply": a_d @ v @ g_d,
      "chol": l_a @ v @ l_g.T,
      "chol_t": l_a.T @ v @ l_g,
      "chol_inv": np.linalg.inv(l_a) @ v @ np.linalg.inv(l_g).T,
      "chol_inv_t": np.linalg.inv(l_a).T @ v @ np.linalg.inv(l_g),
    }
    for key, value in expected.items():
      got = np.concatenate([values[key][0], values[key][1][None]], axis=0)
      np.testing.assert_allclose(got, value, rtol=2e-3, atol=1e-4, err_msg=key)
    # F̂ = L Lᵀ: the Cholesky product of the transpose after the product
    # gives the damped block's product.
    np.testing.assert_allclose(
      l_a @ (l_a.T @ v @ l_g) @ l_g.T, expected["multiply"], rtol=1e-5
    )

  def test_multiply_needs_power_one_in_exps(self):
    ns = _ns("kfac.r1_9")
    xb, _ = _data(4)
    with tf.Graph().as_default():
      w, b, _, lc = _fc_only(ns, xb)
      est = ns.estimator.make_fisher_estimator(
        variables=[w, b], cov_ema_decay=0.0, damping=0.1, layer_collection=lc
      )
      est.make_vars_and_create_op_thunks()
      with self.assertRaises(AssertionError):
        est.multiply([(tf.ones_like(w), w), (tf.ones_like(b), b)])
      with self.assertRaises(AssertionError):
        est.multiply_cholesky([(tf.ones_like(w), w), (tf.ones_like(b), b)])


class LifeCycleTest(parameterized.TestCase):
  """Deferred construction: what exists when, and the errors (§6.3, §17)."""

  @parameterized.named_parameters(*_named(_DEFERRED))
  def test_estimator_is_abstract(self, package):
    ns = _ns(package)
    with tf.Graph().as_default():
      lc = ns.layer_collection.LayerCollection()
      with self.assertRaises(TypeError):
        ns.estimator.FisherEstimator([], 0.9, 0.1, lc)

  @parameterized.named_parameters(*_named(_DEFERRED))
  def test_construction_builds_nothing_and_errors_come_at_creation(
    self, package
  ):
    ns = _ns(package)
    with tf.Graph().as_default():
      w = tf.compat.v1.get_variable("w", [IN, OUT])
      lc = ns.layer_collection.LayerCollection()
      opt = _optimizer(ns, lc, momentum=0.9)
      self.assertEqual(tf.compat.v1.global_variables(), [w])
      # No loss was registered: the error comes when the ops are made.
      with self.assertRaisesRegex(ValueError, "at least one registered loss"):
        opt.make_vars_and_create_op_thunks()
      with self.assertRaisesRegex(Exception, "Already made variables"):
        opt.create_ops_and_vars_thunks()

  @parameterized.named_parameters(*_named(_DEFERRED))
  def test_create_ops_and_vars_thunks_creates_nothing_until_called(
    self, package
  ):
    ns = _ns(package)
    xb, _ = _data()
    with tf.Graph().as_default():
      w, b, _, lc = _fc_only(ns, xb)
      opt = _optimizer(ns, lc)
      thunks = opt.create_ops_and_vars_thunks()
      self.assertLen(thunks, 4)
      self.assertEqual(set(tf.compat.v1.global_variables()), {w, b})
      cov_vars, _, inv_vars, _ = thunks
      for thunk in cov_vars + inv_vars:
        thunk()
      names = sorted(v.op.name for v in tf.compat.v1.global_variables())
    self.assertIn("KFAC/FisherEstimator/ff_fckron_Const_True/cov", names)

  def test_unknown_keyword_and_placement_strategy(self):
    for package in _DEFERRED:
      ns = _ns(package)
      with tf.Graph().as_default():
        lc = ns.layer_collection.LayerCollection()
        with self.assertRaises(TypeError):
          _optimizer(ns, lc, bogus_device_list=["/cpu:0"])
        with self.assertRaises(ValueError) as raised:
          ns.estimator.make_fisher_estimator(placement_strategy="bogus")
      # 1.8 builds its message from a format string and the argument.
      self.assertEqual(
        isinstance(raised.exception.args[0], str)
        and len(raised.exception.args) == 1,
        package != "kfac.r1_8",
      )

  def test_cholesky_keywords_are_1_9(self):
    with tf.Graph().as_default():
      lc = _ns("kfac.r1_8").layer_collection.LayerCollection()
      with self.assertRaises(TypeError):
        _ns("kfac.r1_8").optimizer.KfacOptimizer(
          learning_rate=0.1,
          cov_ema_decay=0.9,
          damping=0.1,
          layer_collection=lc,
          compute_cholesky=True,
        )

  def test_1_8_convenience_properties_are_lazy_and_warn(self):
    with tf.Graph().as_default():
      out, opt = _fc_only_optimizer("kfac.r1_8")
      with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cov_op = opt.cov_update_op
        inv_ops = opt.inv_update_ops
      self.assertEqual(
        [w.category for w in caught], [DeprecationWarning], caught
      )
      self.assertIsInstance(cov_op, tf.Operation)
      self.assertLen(inv_ops, 2)
      names = sorted(v.op.name for v in tf.compat.v1.global_variables())
      # make_ops_and_vars uses the optimizer's name as the scope.
      self.assertIn("KFAC/ff_fckron_Const_True/cov", names)
      with self.assertRaisesRegex(Exception, "Already made variables"):
        opt.make_vars_and_create_op_thunks()
      train = opt.minimize(tf.reduce_sum(out))
      self.assertIsInstance(train, tf.Operation)

  def test_1_8_properties_after_explicit_creation(self):
    with tf.Graph().as_default():
      _, opt = _fc_only_optimizer("kfac.r1_8", momentum=0.9)
      opt.make_vars_and_create_op_thunks()
      self.assertFalse(hasattr(opt, "cov_update_op"))

  def test_1_8_minimize_alone_creates_everything_under_kfac_kfac(self):
    with tf.Graph().as_default():
      out, opt = _fc_only_optimizer("kfac.r1_8")
      with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt.minimize(tf.reduce_sum(out))
      names = [v.op.name for v in tf.compat.v1.global_variables()]
    self.assertIn("KFAC/KFAC/ff_fckron_Const_True/cov", names)

  @parameterized.named_parameters(*_named(("kfac.r1_9", "kfac.r1_10")))
  def test_1_9_ops_must_be_made_before_minimize(self, package):
    with tf.Graph().as_default():
      out, opt = _fc_only_optimizer(package)
      self.assertFalse(hasattr(opt, "make_ops_and_vars"))
      self.assertFalse(hasattr(type(opt), "cov_update_op"))
      with self.assertRaises((AttributeError, KeyError)):
        opt.minimize(tf.reduce_sum(out))

  @parameterized.named_parameters(*_named(_DEFERRED))
  def test_loss_registration_and_default_collection(self, package):
    ns = _ns(package)
    lcm = ns.layer_collection
    with tf.Graph().as_default():
      logits = tf.ones([B, 3])
      lc = lcm.LayerCollection()
      lc.register_categorical_predictive_distribution(logits, name="l")
      lc.register_categorical_predictive_distribution(
        logits, name="l", reuse=True
      )
      self.assertLen(lc.towers_by_loss, 1)
      self.assertLen(lc.losses, 2)
      self.assertIs(lc.loss_colocation_ops[lc.losses[1]], logits)
      with self.assertRaises(KeyError):
        lc.register_categorical_predictive_distribution(logits, name="l")
      # AUTO_REUSE means "append": a first tower fails (faithful quirk).
      with self.assertRaises(KeyError):
        lc.register_loss_function(
          lc.losses[0], logits, "x", name="new", reuse=tf.compat.v1.AUTO_REUSE
        )
      with self.assertRaises(ValueError):
        lcm.get_default_layer_collection()
      with lc.as_default():
        self.assertIs(lcm.get_default_layer_collection(), lc)
        with self.assertRaises(ValueError):
          lcm.set_default_layer_collection(lcm.LayerCollection())
      with self.assertRaises(ValueError):
        lcm.get_default_layer_collection()
      # The default is not cleared when the body raises (faithful quirk).
      with self.assertRaises(RuntimeError):
        with lc.as_default():
          raise RuntimeError("body")
      self.assertIs(lcm.get_default_layer_collection(), lc)
      lcm.set_default_layer_collection(None)


class NumpyOraclesTest(parameterized.TestCase):
  """New maths of 1.8/1.9 against NumPy."""

  def test_zero_debiased_moving_average_1_9(self):
    ns = _ns("kfac.r1_9")
    rng = np.random.RandomState(6)
    batches = [rng.randn(B, IN).astype(np.float32) for _ in range(3)]
    decay = 0.8
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.compat.v1.placeholder(tf.float32, [B, IN])
      w = tf.compat.v1.get_variable("w", [IN, OUT])
      out = tf.matmul(x, w)
      lc = ns.layer_collection.LayerCollection()
      lc.register_fully_connected(w, x, out)
      lc.register_normal_predictive_distribution(out, seed=1)
      est = ns.estimator.make_fisher_estimator(
        variables=[w], cov_ema_decay=decay, damping=0.1, layer_collection=lc
      )
      cov_thunks, _ = est.make_vars_and_create_op_thunks()
      factor = lc.fisher_blocks[w]._input_factor
      update = cov_thunks[list(lc.get_factors()).index(factor)]()
      sess.run(tf.compat.v1.global_variables_initializer())
      self.assertTrue(np.all(sess.run(factor.get_cov()) == 0))
      results = [sess.run(update, {x: batch}) for batch in batches]
    stats = []
    for batch in batches:
      c = np.zeros((IN, IN))
      for n in range(B):
        c += np.outer(batch[n], batch[n]) / B
      stats.append(c)
    for k in range(1, 4):
      expected = sum(
        (1 - decay) * decay ** (k - i) * stats[i - 1] for i in range(1, k + 1)
      ) / (1 - decay**k)
      np.testing.assert_allclose(results[k - 1], expected, rtol=1e-5, atol=1e-6)

  @parameterized.named_parameters(*_named(("kfac.r1_8", "kfac.r1_9")))
  def test_damping_function_ids_name_the_variables(self, package):
    ns = _ns(package)
    with tf.Graph().as_default():
      x = tf.compat.v1.placeholder(tf.float32, [B, IN], name="Placeholder")
      w = tf.compat.v1.get_variable("w", [IN, OUT])
      b = tf.compat.v1.get_variable("b", [OUT])
      images = tf.compat.v1.placeholder(tf.float32, [B, 4, 4, 1], name="images")
      f = tf.compat.v1.get_variable("f", [2, 2, 1, 2])
      g = tf.compat.v1.get_variable("g", [5])
      out = tf.matmul(x, w) + b
      conv = tf.nn.conv2d(images, f, [1, 1, 1, 1], "SAME")
      lc = ns.layer_collection.LayerCollection()
      lc.register_fully_connected((w, b), x, out)
      lc.register_conv2d(f, (1, 1, 1, 1), "SAME", images, conv)
      lc.register_generic(g, B, approx="full")
      lc.register_normal_predictive_distribution(
        out + tf.reduce_sum(conv) + tf.reduce_sum(g), seed=0
      )
      opt = ns.optimizer.KfacOptimizer(
        learning_rate=0.1, cov_ema_decay=0.9, damping=0.001, layer_collection=lc
      )
      opt.make_vars_and_create_op_thunks()
      names = sorted(v.op.name for v in tf.compat.v1.global_variables())
      fc_block = lc.fisher_blocks[(w, b)]
    output_name = fc_block._output_factor.name
    self.assertIn(
      "KFAC/FisherEstimator/ff_fckron_Placeholder_True/matpower_exp-1_damp"
      "compute_pi_adjusted_damping_cov_ff_fckron_Placeholder_True_cov_"
      + output_name
      + "_0.001_power_0.5_ref_0",
      names,
    )
    self.assertIn(
      "KFAC/FisherEstimator/{0}/matpower_exp-1_dampcompute_pi_adjusted_"
      "damping_cov_ff_fckron_Placeholder_True_cov_{0}_0.001_power_0.5_ref_1".format(
        output_name
      ),
      names,
    )
    # Conv: normalize_damping_<d>_<|T|> (16 input locations), plain ints.
    conv_names = [
      n
      for n in names
      if n.startswith("KFAC/FisherEstimator/ff_convinkron_images")
    ]
    self.assertLen(conv_names, 2)
    self.assertTrue(
      conv_names[1].endswith("_normalize_damping_0.001_16_power_0.5_ref_0"),
      conv_names,
    )
    self.assertTrue(
      conv_names[0].startswith(
        "KFAC/FisherEstimator/ff_convinkron_images_2-2-1-2_1-1-1-1_SAME_"
        "None_None_False/"
      ),
      conv_names,
    )
    full = [n for n in names if "ff_full_" in n]
    self.assertTrue(full[1].endswith("/matpower_exp-1_damp0.001"), full)

  def test_packaged_function_id_evaluates_callables(self):
    fb = _ns("kfac.r1_8").fisher_blocks
    func = fb.PackagedFunc(lambda: 3.0, ("a", lambda: 2, 0.5))
    self.assertEqual(func(), 3.0)
    self.assertEqual(func.func_id, ("a", 2, 0.5))
    self.assertEqual(fb.PackagedFunc(lambda: 1.0, 7).func_id, (7,))
    ff = _ns("kfac.r1_8").fisher_factors
    self.assertEqual(ff.graph_func_to_string(func), "a_2_0.5")
    self.assertEqual(ff.list_to_string(["x", np.int64(64), 0.01]), "x_64_0.01")

  def test_inverses_start_at_zero_in_1_9(self):
    for package, expect_zero in (("kfac.r1_8", False), ("kfac.r1_9", True)):
      ns = _ns(package)
      xb, _ = _data()
      with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        w, b, _, lc = _fc_only(ns, xb)
        opt = _optimizer(ns, lc)
        opt.make_vars_and_create_op_thunks()
        product = opt._fisher_est.multiply_inverse(
          [(tf.ones_like(w), w), (tf.ones_like(b), b)]
        )
        sess.run(tf.compat.v1.global_variables_initializer())
        value = sess.run(product[0][0])
      self.assertEqual(bool(np.all(value == 0)), expect_zero, package)

  def test_partitioned_tensor(self):
    utils = _ns("kfac.r1_8").utils
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      a = tf.constant(np.arange(6.0).reshape(2, 3), name="a")
      b = tf.constant(np.arange(6.0, 15.0).reshape(3, 3), name="b")
      pt = utils.PartitionedTensor([a, b])
      self.assertEqual(pt.shape.as_list(), [5, 3])
      self.assertEqual(pt, utils.PartitionedTensor([a, b]))
      self.assertEqual(hash(pt), hash(utils.PartitionedTensor([a, b])))
      self.assertNotEqual(pt, utils.PartitionedTensor([b, a]))
      value = sess.run(tf.reduce_sum(pt, axis=1))
      self.assertEqual(
        str(pt), "PartitionedTensor([a:0, ...], dtype=float64, shape=(5, 3))"
      )
      with self.assertRaises(ValueError):
        utils.PartitionedTensor([])
      with self.assertRaises(ValueError):
        utils.PartitionedTensor([a, tf.ones([2, 4], tf.float64)])
      with self.assertRaises(ValueError):
        utils.PartitionedTensor([a, tf.ones([2, 3], tf.float32)])
    np.testing.assert_allclose(value, np.arange(15.0).reshape(5, 3).sum(1))


class SharedWeightsTest(parameterized.TestCase):
  """`register_fully_connected_multi` (1.8+): uses as lists or folded."""

  @parameterized.named_parameters(
    (
      "{}_{}_{}".format(package.replace(".", "_"), approx, form),
      package,
      approx,
      form,
    )
    for package in ("kfac.r1_8", "kfac.r1_9")
    for approx in ("kron_indep", "kron_series_1", "kron_series_2")
    for form in ("list", "folded")
  )
  def test_rnn_like_layer_trains(self, package, approx, form):
    ns = _ns(package)
    uses = 3
    rng = np.random.RandomState(7)
    xb = [rng.randn(B, IN).astype(np.float32) for _ in range(uses)]
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      w = tf.compat.v1.get_variable(
        "w", initializer=0.5 * rng.randn(IN, IN).astype(np.float32)
      )
      b = tf.compat.v1.get_variable("b", initializer=np.zeros(IN, np.float32))
      lc = ns.layer_collection.LayerCollection()
      if form == "list":
        # An unrolled recurrence: the layer is applied once per use.
        state, inputs, outputs = tf.zeros([B, IN]), [], []
        for u in range(uses):
          inputs.append(state + tf.constant(xb[u]))
          outputs.append(tf.matmul(inputs[-1], w) + b)
          state = tf.tanh(outputs[-1])
        lc.register_fully_connected_multi(
          (w, b), inputs, outputs, approx=approx
        )
      else:
        # The uses folded into the batch (use-major): one application.
        folded_in = tf.constant(np.concatenate(xb, axis=0))
        folded_out = tf.matmul(folded_in, w) + b
        state = tf.tanh(folded_out)
        lc.register_fully_connected_multi(
          (w, b), folded_in, folded_out, num_uses=uses, approx=approx
        )
      lc.register_normal_predictive_distribution(state, seed=3)
      loss = tf.reduce_mean(tf.square(state - 0.5))
      opt = _optimizer(ns, lc, learning_rate=0.05, cov_ema_decay=0.0)
      cov_thunks, inv_thunks = opt.make_vars_and_create_op_thunks()
      cov_op = tf.group(*[t() for t in cov_thunks])
      inv_op = tf.group(*[t() for t in inv_thunks])
      with tf.control_dependencies([inv_op]):
        train = opt.minimize(loss)
      names = [v.op.name for v in tf.compat.v1.global_variables()]
      sess.run(tf.compat.v1.global_variables_initializer())
      losses = []
      for _ in range(4):
        sess.run(cov_op)
        losses.append(sess.run([train, loss])[1])
    self.assertTrue(np.all(np.isfinite(losses)), losses)
    self.assertLess(losses[-1], losses[0])
    series = approx != "kron_indep"
    self.assertEqual(any(n.endswith("/cov_dt1") for n in names), series)
    self.assertEqual(
      any("/Kmat_damp" in n for n in names), approx == "kron_series_2"
    )
    self.assertEqual(
      any("/psi_damp" in n for n in names), approx == "kron_series_1"
    )

  def test_series_block_has_only_the_inverse(self):
    ns = _ns("kfac.r1_9")
    with tf.Graph().as_default():
      lc = ns.layer_collection.LayerCollection()
      block = ns.fisher_blocks.FullyConnectedSeriesFB(lc, num_uses=2)
      with self.assertRaises(NotImplementedError):
        block.multiply_cholesky(tf.ones([2, 2]))
      with self.assertRaises(TypeError):
        block.multiply_cholesky(tf.ones([2, 2]), transpose=True)


if __name__ == "__main__":
  tf.test.main()
