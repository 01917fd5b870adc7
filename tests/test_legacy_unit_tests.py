"""The original 2017 unit tests whose inputs later checks had rejected.

api.md §11 describes the kernel tests of `tf.contrib.kfac` (TensorFlow 1.4).
Several of them feed inputs that the 2017 library accepted only because it
did not look at them yet: int32 tensors as factor arguments, scalar constants
registered as layers, 1-D logits, rank-2/rank-3 dummy inputs and 3-element
strides given to constructors, tuple parameters. They are transcribed here
as the 2017 tests wrote them (same inputs, same expectations), so they run in
both TF modes of the suite. Where such an input cannot work, the error now
comes when the value is first used, as it did in 2017; those cases are
checked too. (The 2017 `InverseProvidingFactor` tests, which put a plain
Tensor in a factor's `_cov`, are in test_fisher_factors.py.)
"""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from kfac import estimator
from kfac import fisher_blocks as fb
from kfac import fisher_factors as ff
from kfac import layer_collection as lc
from kfac import optimizer


def _dummy_layer_collection():
  """2017's optimizer_test helper: a categorical loss on 1-D logits."""
  layers = lc.LayerCollection()
  dummy = tf.constant([1.0, 2.0])
  layers.register_categorical_predictive_distribution(logits=dummy)
  return layers


def _norm_test_gradients():
  """2017's `_squared_fisher_norm` inputs: (gradient, None) pairs and their
  preconditioned counterparts, whose inner products add up to 174."""
  grads_and_vars = [
    (tf.constant([[1.0, 2.0], [3.0, 4.0]]), None),
    (tf.constant([[2.0, 3.0], [4.0, 5.0]]), None),
  ]
  pgrads_and_vars = [
    (tf.constant([[3.0, 4.0], [5.0, 6.0]]), None),
    (tf.constant([[7.0, 8.0], [9.0, 10.0]]), None),
  ]
  return grads_and_vars, pgrads_and_vars


class LayerCollectionLegacyTest(parameterized.TestCase, tf.test.TestCase):
  """layer_collection_test.py (§11.3)."""

  def test_register_blocks_scalar_constants(self):
    with tf.Graph().as_default():
      tf.compat.v1.set_random_seed(200)
      layers = lc.LayerCollection()
      layers.register_fully_connected(
        tf.constant(1), tf.constant(2), tf.constant(3)
      )
      layers.register_conv2d(
        tf.constant(4),
        [1, 1, 1, 1],
        "SAME",
        tf.ones((1, 1, 1, 1)),
        tf.constant(3),
      )
      layers.register_generic(tf.constant(5), 16, approx=lc.APPROX_FULL_NAME)
      layers.register_generic(
        tf.constant(6), 16, approx=lc.APPROX_DIAGONAL_NAME
      )
      self.assertLen(layers.get_blocks(), 4)
      # Nothing was built yet: the registrations made no factor.
      self.assertEmpty(layers.get_factors())
      self.assertEmpty(tf.compat.v1.global_variables())

  def test_scalar_layer_fails_when_factors_are_made(self):
    # 2017 failed here too (building the factors of a scalar "layer"); the
    # error now names the argument.
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      block = fb.FullyConnectedKFACBasicFB(
        layers, tf.constant(2.0), tf.constant(3.0)
      )
      with self.assertRaisesRegex(ValueError, "must have rank 2"):
        block.instantiate_factors((tf.constant(1.0),), 0.1)

  @parameterized.named_parameters(
    ("default_scope", {}, "LayerCollection"),
    ("custom_scope", {"name": "Foo"}, "Foo"),
  )
  def test_make_or_get_factor(self, kwargs, scope):
    # testMakeOrGetFactor / testMakeOrGetFactorCustomScope: int32 keys.
    with tf.Graph().as_default():
      tf.compat.v1.set_random_seed(200)
      layers = lc.LayerCollection(**kwargs)
      key = tf.constant(1)
      layers.make_or_get_factor(ff.FullFactor, ((key,), 16))
      layers.make_or_get_factor(ff.FullFactor, ((key,), 16))
      layers.make_or_get_factor(ff.FullFactor, ((tf.constant(2),), 16))
      self.assertLen(layers.get_factors(), 2)
      variables = tf.compat.v1.global_variables()
      self.assertTrue(all(var.name.startswith(scope) for var in variables))
      self.assertEqual(
        [v.op.name for v in variables],
        [scope + "/ff_full/Const_16/cov", scope + "/ff_full/Const_1_16/cov"],
      )
      self.assertEqual(variables[0].shape.as_list(), [1, 1])

  def test_int32_factor_fails_when_its_update_is_built(self):
    # The covariance variable is float32; 2017 failed in the assignment.
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      factor = layers.make_or_get_factor(ff.FullFactor, ((tf.constant(1),), 16))
      with self.assertRaisesRegex(TypeError, "floating-point"):
        factor.make_covariance_update_op(0.9)


class FisherFactorsLegacyTest(tf.test.TestCase):
  """fisher_factors_test.py (§11.1)."""

  def test_conv_input_kronecker_factor_init(self):
    # A rank-2 dummy input, an int stride and an int "padding": only the
    # filter shape is read by the constructor.
    for has_bias, size in ((False, 6), (True, 7)):
      with tf.Graph().as_default():
        tensor = tf.ones((2, 3), name="a/b/c")
        factor = ff.ConvInputKroneckerFactor(
          tensor, (1, 2, 3, 4), 3, 2, has_bias=has_bias
        )
        self.assertEqual([size, size], factor.get_cov().get_shape().as_list())
        self.assertEqual(
          factor.get_cov().op.name,
          "ff_convinkron/a_b_c_1-2-3-4_3_2_{}/cov".format(has_bias),
        )

  def test_conv_input_kronecker_factor_bad_args_fail_at_update(self):
    with tf.Graph().as_default():
      factor = ff.ConvInputKroneckerFactor(tf.ones((2, 3)), (1, 2, 3, 4), 3, 2)
      with self.assertRaisesRegex(ValueError, "inputs must have rank 4"):
        factor.make_covariance_update_op(0.5)


class FisherBlocksLegacyTest(parameterized.TestCase, tf.test.TestCase):
  """fisher_blocks_test.py (§11.2)."""

  @parameterized.named_parameters(
    ("tuple_of_params", [np.array([1.0, 2.0]), np.array(3.0)]),
    ("single_param_list", [np.array([1.0, 2.0])]),
    ("single_param", np.array([1.0, 2.0])),
  )
  def test_conv_kfc_basic_fb_init_params(self, params):
    with tf.Graph().as_default():
      tf.compat.v1.set_random_seed(200)
      if isinstance(params, (list, tuple)):
        params = [tf.constant(param) for param in params]
      else:
        params = tf.constant(params)
      inputs = tf.random.normal((2, 2, 2))
      outputs = tf.random.normal((2, 2, 2))
      block = fb.ConvKFCBasicFB(
        lc.LayerCollection(), params, inputs, outputs, [1, 1, 1], "SAME"
      )
      self.assertIs(outputs, block.tensors_to_compute_grads())
      self.assertEqual(block._num_locations, 4)
      self.assertEqual(block._has_bias, isinstance(params, list))

  def test_three_strides_fail_when_the_statistics_are_built(self):
    # 2017 failed when it extracted the image patches with them.
    with tf.Graph().as_default():
      filt = tf.ones((1, 1, 2, 2))
      inputs = tf.ones((2, 4, 4, 2))
      outputs = tf.ones((2, 4, 4, 2))
      layers = lc.LayerCollection()
      block = fb.ConvKFCBasicFB(
        layers, filt, inputs, outputs, [1, 1, 1], "SAME"
      )
      block.instantiate_factors((outputs,), 0.1)
      input_factor = list(layers.get_factors())[0]
      self.assertIsInstance(input_factor, ff.ConvInputKroneckerFactor)
      with self.assertRaisesRegex(ValueError, "strides must have length 4"):
        input_factor.make_covariance_update_op(0.9)


class EstimatorLegacyTest(tf.test.TestCase):
  """estimator_test.py (§11.4): only the weights, as a 1-tuple, registered."""

  def _build(self):
    self.inputs = tf.random.normal((2, 2), dtype=tf.float32)
    self.weights = tf.compat.v1.get_variable(
      "w", shape=(2, 2), dtype=tf.float32
    )
    self.bias = tf.compat.v1.get_variable(
      "b", initializer=tf.compat.v1.zeros_initializer(), shape=(2, 1)
    )
    self.output = tf.matmul(self.inputs, self.weights) + self.bias
    self.layer_collection = lc.LayerCollection()
    self.layer_collection.register_fully_connected(
      params=(self.weights,), inputs=self.inputs, outputs=self.output
    )
    self.outputs = tf.tanh(self.output)
    self.targets = tf.zeros([2], dtype=tf.int32)
    self.layer_collection.register_categorical_predictive_distribution(
      logits=self.outputs, targets=self.targets
    )

  def test_estimator_init_manual_registration(self):
    with tf.Graph().as_default():
      self._build()
      estimator.FisherEstimator([self.weights], 0.1, 0.2, self.layer_collection)
      with self.assertRaises(ValueError):
        estimator.FisherEstimator(
          [self.weights, self.bias], 0.1, 0.2, self.layer_collection
        )
      with self.assertRaises(ValueError):
        estimator.FisherEstimator([], 0.1, 0.2, self.layer_collection)

  def test_variables_as_a_tuple(self):
    with tf.Graph().as_default():
      self._build()
      est = estimator.FisherEstimator(
        (self.weights,), 0.1, 0.2, self.layer_collection
      )
      self.assertTrue(est.inv_updates_dict)

  def test_all_modes_build(self):
    for mode in ("gradients", "empirical", "curvature_prop", "exact"):
      with tf.Graph().as_default():
        self._build()
        estimator.FisherEstimator(
          [self.weights], 0.1, 0.2, self.layer_collection, mode
        )


class OptimizerLegacyTest(tf.test.TestCase):
  """optimizer_test.py (§11.5): the private helpers, with 1-D logits."""

  def test_optimizer_init_invalid_momentum_registration(self):
    with self.assertRaises(ValueError):
      optimizer.KfacOptimizer(
        0.1, 0.2, 0.3, lc.LayerCollection(), momentum_type="foo"
      )

  def test_squared_fisher_norm(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      grads_and_vars, pgrads_and_vars = _norm_test_gradients()
      opt = optimizer.KfacOptimizer(0.1, 0.2, 0.3, _dummy_layer_collection())
      sq_norm = opt._squared_fisher_norm(grads_and_vars, pgrads_and_vars)
      self.assertAlmostEqual(174.0, sess.run(sq_norm), places=5)

  def test_update_clip_coeff(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      grads_and_vars, pgrads_and_vars = _norm_test_gradients()
      lrate = 0.1
      # Loose norm constraint: the coefficient is 1.
      opt = optimizer.KfacOptimizer(
        lrate, 0.2, 0.3, _dummy_layer_collection(), norm_constraint=10
      )
      coeff = opt._update_clip_coeff(grads_and_vars, pgrads_and_vars)
      self.assertAlmostEqual(1.0, sess.run(coeff), places=5)
      # Tight norm constraint: lr² · coeff² · 174 equals it.
      opt = optimizer.KfacOptimizer(
        lrate, 0.2, 0.3, _dummy_layer_collection(), norm_constraint=0.5
      )
      coeff = opt._update_clip_coeff(grads_and_vars, pgrads_and_vars)
      sq_norm_pgrad = 174.0
      self.assertAlmostEqual(
        0.5, lrate**2 * sess.run(coeff) ** 2 * sq_norm_pgrad, places=5
      )

  def test_update_velocities(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      layers = lc.LayerCollection()
      layers.register_categorical_predictive_distribution(tf.constant([1.0]))
      opt = optimizer.KfacOptimizer(
        0.1, 0.2, 0.3, layers, momentum=0.5, momentum_type="regular"
      )
      x = tf.compat.v1.get_variable("x", initializer=tf.ones((2, 2)))
      y = tf.compat.v1.get_variable("y", initializer=tf.ones((2, 2)) * 2)
      vec1 = tf.ones((2, 2)) * 3
      vec2 = tf.ones((2, 2)) * 4
      update_op = opt._update_velocities([(vec1, x), (vec2, y)], 0.5)
      velocities = [opt.get_slot(var, "velocity") for var in (x, y)]
      sess.run(tf.compat.v1.global_variables_initializer())
      self.assertAllEqual([np.zeros((2, 2))] * 2, sess.run(velocities))
      sess.run(update_op)
      self.assertAllEqual(
        [np.full((2, 2), 3.0), np.full((2, 2), 4.0)], sess.run(velocities)
      )
      sess.run(update_op)
      # decay · v + vec: 0.5·3 + 3 and 0.5·4 + 4.
      self.assertAllEqual(
        [np.full((2, 2), 4.5), np.full((2, 2), 6.0)], sess.run(velocities)
      )


class ValueHeadTest(parameterized.TestCase, tf.test.TestCase):
  """A 1-D mean `[batch]` (actor-critic value heads), 1-D targets."""

  def _build(self, mode):
    rng = np.random.RandomState(3)
    x_value = rng.randn(5, 3).astype(np.float32)
    w_value = rng.randn(3, 1).astype(np.float32)
    t_value = rng.randn(5).astype(np.float32)
    x = tf.constant(x_value)
    w = tf.compat.v1.get_variable("w", initializer=w_value)
    outputs = tf.matmul(x, w)
    value = tf.squeeze(outputs, axis=1)  # [batch]
    layers = lc.LayerCollection()
    layers.register_fully_connected(w, x, outputs)
    layers.register_normal_predictive_distribution(
      value, var=0.5, targets=tf.constant(t_value)
    )
    est = estimator.FisherEstimator([w], 0.5, 0.1, layers, estimation_mode=mode)
    return est, layers, x_value, w_value, t_value

  def test_empirical_statistics(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      est, layers, x_value, w_value, t_value = self._build("empirical")
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(est.cov_update_op)
      input_cov, output_cov = sess.run(
        [f.get_cov() for f in layers.get_factors()]
      )
      # loss = Σ_b (t_b − μ_b)² / (2·0.5): d loss / d μ_b = 2 (μ_b − t_b).
      batch = x_value.shape[0]
      new_g = 0.0
      new_a = np.zeros((3, 3))
      for b in range(batch):
        mu = float(np.dot(x_value[b], w_value[:, 0]))
        new_g += (2.0 * (mu - t_value[b])) ** 2
        new_a += np.outer(x_value[b], x_value[b])
      self.assertAllClose([[0.5 + 0.5 * new_g / batch]], output_cov, rtol=1e-5)
      self.assertAllClose(
        0.5 * np.eye(3) + 0.5 * new_a / batch, input_cov, rtol=1e-5, atol=1e-6
      )

  @parameterized.parameters("gradients", "curvature_prop")
  def test_sampled_modes_build_and_run(self, mode):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      est, layers, _, _, _ = self._build(mode)
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(est.cov_update_op)
      output_cov = sess.run(list(layers.get_factors())[1].get_cov())
      self.assertEqual(output_cov.shape, (1, 1))
      self.assertTrue(np.isfinite(output_cov).all())
      self.assertNotAllClose([[1.0]], output_cov)

  def test_exact_mode_needs_a_matrix_mean(self):
    # 2017 failed here with an AssertionError (an index of length 0).
    with tf.Graph().as_default():
      with self.assertRaisesRegex(ValueError, "mean must be a 2-D Tensor"):
        self._build("exact")


class LayerCollectionOutsideGraphTest(tf.test.TestCase):
  """A LayerCollection made before the model's graph (TF 1.4 allowed it)."""

  def test_collection_made_outside_the_model_graph(self):
    layers = lc.LayerCollection()  # In the global default graph.
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as sess:
      x = tf.ones((4, 3))
      w = tf.compat.v1.get_variable(
        "w",
        initializer=tf.constant(
          np.arange(6.0).reshape(3, 2) / 10.0, dtype=tf.float32
        ),
      )
      logits = tf.matmul(x, w)
      layers.register_fully_connected(w, x, logits)
      layers.register_categorical_predictive_distribution(logits)
      opt = optimizer.KfacOptimizer(0.1, 0.5, 0.1, layers)
      factors = list(layers.get_factors())
      self.assertLen(factors, 2)
      for factor in factors:
        self.assertIs(factor.get_cov().graph, graph)
        self.assertTrue(
          factor.get_cov().op.name.startswith("LayerCollection/ff_fckron/")
        )
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(opt.cov_update_op)
      # The input factor of constant ones inputs: 0.5·I + 0.5·ones(3, 3).
      self.assertAllClose(
        0.5 * np.eye(3) + 0.5 * np.ones((3, 3)), sess.run(factors[0].get_cov())
      )


if __name__ == "__main__":
  tf.test.main()
