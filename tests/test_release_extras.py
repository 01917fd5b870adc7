"""Tests for kfac._release_extras (pieces added by releases 1.5-1.7)."""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from kfac import _release_extras as ex
from kfac import fisher_blocks as fb
from kfac import fisher_factors as ff
from kfac import layer_collection as lc_lib
from kfac import loss_functions as lf


def _softmax(z):
  e = np.exp(z - z.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


class EnsureSequenceTest(parameterized.TestCase):

  def testSequencesPassAndOthersAreWrapped(self):
    lst, tpl = [1, 2], (3,)
    self.assertIs(ex.ensure_sequence(lst), lst)
    self.assertIs(ex.ensure_sequence(tpl), tpl)
    self.assertEqual(ex.ensure_sequence(5), (5,))
    self.assertEqual(ex.ensure_sequence("ab"), ("ab",))
    self.assertEqual(ex.ensure_sequence(None), (None,))


class BatchExecuteTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("three_by_two", 3, 2), ("four_by_one", 4, 1), ("all", 2, 3),
      ("five_by_three", 5, 3))
  def testRunsTheScheduledThunks(self, num_thunks, batch_size):
    with tf.Graph().as_default():
      step = tf.compat.v1.placeholder(tf.int64, [])
      counters = [tf.compat.v1.get_variable(
          "c%d" % j, initializer=tf.constant(0, tf.int64))
                  for j in range(num_thunks)]
      calls = []

      def make_thunk(j):
        def thunk():
          calls.append(j)
          return counters[j].assign_add(1)
        return thunk

      results = ex.batch_execute(step, [make_thunk(j)
                                        for j in range(num_thunks)],
                                 batch_size)
      self.assertLen(results, num_thunks)
      self.assertEqual(calls, list(range(num_thunks)))  # Once each.
      run_all = tf.group(*results)
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        previous = np.zeros(num_thunks, dtype=np.int64)
        for s in range(7):
          sess.run(run_all, feed_dict={step: s})
          now = np.array(sess.run(counters))
          ran = set(np.nonzero(now - previous)[0].tolist())
          previous = now
          # Oracle: thunks s·b, …, s·b + b − 1 (mod n); all if b ≥ n.
          if batch_size >= num_thunks:
            expected = set(range(num_thunks))
          else:
            expected = {(s * batch_size + i) % num_thunks
                        for i in range(batch_size)}
          self.assertEqual(ran, expected, msg="step %d" % s)

  def testExampleOfTheSpec(self):
    # n = 3, b = 2: step 0 runs {0, 1}, step 1 {0, 2}, step 2 {1, 2}.
    with tf.Graph().as_default():
      step = tf.compat.v1.placeholder(tf.int32, [])
      flags = [tf.compat.v1.get_variable("f%d" % j, initializer=0)
               for j in range(3)]
      ops = ex.batch_execute(step, [lambda f=f: f.assign(1) for f in flags],
                             2, name="my_batch")
      self.assertTrue(all(op.name.startswith("my_batch/") for op in ops))
      with tf.compat.v1.Session() as sess:
        for s, expected in [(0, [1, 1, 0]), (1, [1, 0, 1]), (2, [0, 1, 1])]:
          sess.run(tf.compat.v1.variables_initializer(flags))
          sess.run(ops, feed_dict={step: s})
          self.assertEqual(sess.run(flags), expected)

  def testErrors(self):
    with tf.Graph().as_default():
      with self.assertRaisesRegex(ValueError, "integer"):
        ex.batch_execute(tf.constant(1.), [tf.no_op], 1)
      with self.assertRaisesRegex(ValueError, "callable"):
        ex.batch_execute(tf.constant(1), [tf.no_op()], 1)


class _DenseFactor(ex.DenseFactorMultiplyMixin, ex.DataDtypeFactorMixin,
                   ff.FullyConnectedKroneckerFactor):

  @property
  def _dtype(self):
    return self._tensors[0].dtype.base_dtype


class FactorProductsTest(parameterized.TestCase):

  @parameterized.named_parameters(("float32", tf.float32, 1e-5),
                                  ("float64", tf.float64, 1e-12))
  def testDenseFactorProducts(self, dtype, tol):
    rng = np.random.RandomState(0)
    data = rng.randn(6, 3)
    x_val = rng.randn(3, 2)
    sparse_vals = rng.randn(2, 3)
    # 0.25 is exact in float32: the engine's `posdef_inv` casts a Python
    # damping through float32 (reported; not this module's code).
    damping = 0.25
    with tf.Graph().as_default():
      factor = _DenseFactor((tf.constant(data, dtype=dtype, name="a"),))
      self.assertEqual(factor.get_cov_var().dtype.base_dtype, dtype)
      self.assertIs(factor.get_cov_var(), factor.get_cov())
      factor.register_damped_inverse(damping)
      self.assertEqual(factor.get_damped_inverse(damping).dtype.base_dtype,
                       dtype)
      update = factor.make_covariance_update_op(0.)
      inv_ops = factor.make_inverse_update_ops()
      x = tf.constant(x_val, dtype=dtype)
      sparse = tf.IndexedSlices(tf.constant(sparse_vals, dtype=dtype),
                                tf.constant([4, 1]),
                                dense_shape=tf.constant([5, 3]))
      products = [factor.left_multiply(x, damping),
                  factor.right_multiply(tf.transpose(x), damping),
                  factor.left_multiply_inverse(x, damping),
                  factor.right_multiply_inverse(tf.transpose(x), damping),
                  factor.right_multiply(sparse, damping),
                  factor.right_multiply_inverse(sparse, damping)]
      with self.assertRaises(NotImplementedError):
        factor.left_multiply(sparse, damping)
      with self.assertRaises(ValueError):
        factor.left_multiply_inverse(sparse, damping)
      with self.assertRaises(ValueError):
        factor.left_multiply(tf.zeros([3], dtype), damping)
      with self.assertRaises(KeyError):
        factor.left_multiply_inverse(x, 0.7)
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(update)
        sess.run(inv_ops)
        left, right, left_inv, right_inv, sp_right, sp_right_inv = sess.run(
            products)
    cov = np.zeros((3, 3))
    for row in data:
      cov += np.outer(row, row) / data.shape[0]
    damped = cov + damping * np.eye(3)
    inverse = np.linalg.inv(damped)
    np.testing.assert_allclose(left, damped.dot(x_val), rtol=tol, atol=tol)
    np.testing.assert_allclose(right, x_val.T.dot(damped), rtol=tol,
                               atol=tol)
    np.testing.assert_allclose(left_inv, inverse.dot(x_val), rtol=10 * tol,
                               atol=10 * tol)
    np.testing.assert_allclose(right_inv, x_val.T.dot(inverse),
                               rtol=10 * tol, atol=10 * tol)
    self.assertEqual(list(sp_right.indices), [4, 1])
    np.testing.assert_allclose(sp_right.values, sparse_vals.dot(damped),
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(sp_right_inv.values, sparse_vals.dot(inverse),
                               rtol=10 * tol, atol=10 * tol)

  def testFunctionsOnEngineFactors(self):
    # The module functions serve the unmodified engine classes too.
    rng = np.random.RandomState(1)
    inputs = rng.randn(4, 2).astype(np.float32)
    grads = rng.randn(4, 3).astype(np.float32)
    with tf.Graph().as_default():
      diag = ff.FullyConnectedDiagonalFactor(tf.constant(inputs),
                                             (tf.constant(grads),))
      x = tf.constant(rng.randn(2, 3).astype(np.float32))
      update = diag.make_covariance_update_op(0.)
      products = [ex.left_multiply(diag, x, 0.5),
                  ex.left_multiply_inverse(diag, x, 0.5), x]
      self.assertIs(ex.get_cov_var(diag), diag.get_cov())
      with self.assertRaises(NotImplementedError):
        ex.right_multiply(diag, x, 0.5)
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(update)
        left, left_inv, x_val = sess.run(products)
    cov = np.zeros((2, 3))
    for b in range(4):
      cov += np.outer(inputs[b], grads[b])**2 / 4
    np.testing.assert_allclose(left, (cov + 0.5) * x_val, rtol=1e-5)
    np.testing.assert_allclose(left_inv, x_val / (cov + 0.5), rtol=1e-5)


class _FactorProductsFCBlock(ex.FactorProductsKroneckerMixin,
                             fb.FullyConnectedKFACBasicFB):
  pass


class FactorProductsKroneckerMixinTest(parameterized.TestCase):

  @parameterized.named_parameters(("plain", False), ("bias", True))
  def testSameNumbersAsDenseKronecker(self, has_bias):
    rng = np.random.RandomState(2)
    inputs = rng.randn(5, 3).astype(np.float32)
    grads = rng.randn(5, 2).astype(np.float32)
    w_val = rng.randn(3, 2).astype(np.float32)
    b_val = rng.randn(2).astype(np.float32)
    damping = 0.2
    with tf.Graph().as_default():
      lc = lc_lib.LayerCollection()
      block = _FactorProductsFCBlock(lc, tf.constant(inputs),
                                     tf.zeros([5, 2]), has_bias=has_bias)
      block.instantiate_factors((tf.constant(grads),), damping)
      vector = ((tf.constant(w_val), tf.constant(b_val)) if has_bias
                else tf.constant(w_val))
      products = [block.multiply(vector), block.multiply_inverse(vector)]
      # Statistics with decay 0 (the covariances become this batch's).
      updates = [f.make_covariance_update_op(0.) for f in lc.get_factors()]
      refresh = [op for f in lc.get_factors()
                 for op in f.make_inverse_update_ops()]
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        for ops in (updates, refresh):
          sess.run(ops)
        prod, inv = sess.run(products)
    a = np.concatenate([inputs, np.ones((5, 1))], 1) if has_bias else inputs
    a_cov = a.T.dot(a) / 5
    g_cov = grads.T.dot(grads) / 5
    pi = np.sqrt((np.trace(a_cov) / a_cov.shape[0]) /
                 (np.trace(g_cov) / g_cov.shape[0]))
    a_d = a_cov + pi * np.sqrt(damping) * np.eye(a_cov.shape[0])
    g_d = g_cov + np.sqrt(damping) / pi * np.eye(2)
    fisher = np.kron(a_d, g_d)
    v = np.concatenate([w_val, b_val[None]], 0) if has_bias else w_val
    if has_bias:
      prod = np.concatenate([prod[0], prod[1][None]], 0)
      inv = np.concatenate([inv[0], inv[1][None]], 0)
    np.testing.assert_allclose(prod.reshape(-1), fisher.dot(v.reshape(-1)),
                               rtol=1e-4)
    np.testing.assert_allclose(inv.reshape(-1),
                               np.linalg.solve(fisher, v.reshape(-1)),
                               rtol=1e-3, atol=1e-5)


class OnehotCategoricalLossTest(parameterized.TestCase):

  @parameterized.named_parameters(("float_targets", np.float32),
                                  ("int_targets", np.int32))
  def testEvaluateAndFisher(self, target_dtype):
    rng = np.random.RandomState(3)
    logits = rng.randn(4, 3).astype(np.float32)
    labels = np.array([2, 0, 1, 1])
    onehot = np.eye(3)[labels].astype(target_dtype)
    vec = rng.randn(4, 3).astype(np.float32)
    with tf.Graph().as_default():
      loss = ex.OnehotCategoricalLogitsNegativeLogProbLoss(
          tf.constant(logits), targets=tf.constant(onehot), seed=7)
      self.assertIsInstance(loss, lf.CategoricalLogitsNegativeLogProbLoss)
      values = [loss.evaluate(), loss.multiply_fisher(tf.constant(vec)),
                loss.multiply_fisher_factor(tf.constant(vec)),
                loss.evaluate_on_sample()]
      sample = loss.sample(3)
      with tf.compat.v1.Session() as sess:
        value, fisher_vec, factor_vec, _ = sess.run(values)
        sample_val = sess.run(sample)
    probs = _softmax(logits.astype(np.float64))
    expected = 0.
    for b in range(4):
      for k in range(3):
        expected -= float(onehot[b, k]) * np.log(probs[b, k])
    self.assertAlmostEqual(value, expected, places=4)
    for b in range(4):
      fisher = np.diag(probs[b]) - np.outer(probs[b], probs[b])
      np.testing.assert_allclose(fisher_vec[b], fisher.dot(vec[b]),
                                 rtol=1e-4, atol=1e-6)
      factor = np.diag(np.sqrt(probs[b])) - np.outer(probs[b],
                                                     np.sqrt(probs[b]))
      np.testing.assert_allclose(factor_vec[b], factor.dot(vec[b]),
                                 rtol=1e-4, atol=1e-6)
    self.assertEqual(sample_val.dtype, np.int32)
    self.assertEqual(sample_val.shape, (4, 3))
    np.testing.assert_array_equal(sample_val.sum(axis=1), np.ones(4))

  def testBadTargets(self):
    with tf.Graph().as_default():
      with self.assertRaises(ValueError):
        ex.OnehotCategoricalLogitsNegativeLogProbLoss(
            tf.zeros([2, 3]), targets=tf.constant([0, 1]))
      with self.assertRaises(TypeError):
        ex.OnehotCategoricalLogitsNegativeLogProbLoss(
            tf.zeros([2, 3]), targets=tf.constant([["a"] * 3] * 2))


class PartialCurvatureProductsTest(parameterized.TestCase):

  def testFisherUsesPartialDerivatives(self):
    # z = a ⊙ x + b ⊙ y with y = x² (so y depends on x). With partial
    # derivatives J = [diag(a), diag(b)] (y held fixed in ∂z/∂x); the total
    # derivative would give diag(a + 2 b x) for x.
    rng = np.random.RandomState(4)
    a_val, b_val, x_val = rng.randn(3), rng.randn(3), rng.randn(3)
    vx, vy = rng.randn(3), rng.randn(3)
    var = 0.5
    with tf.Graph().as_default():
      x = tf.constant(x_val)
      y = tf.square(x)
      z = tf.reshape(a_val * x + b_val * y, [1, 3])
      loss = lf.NormalMeanNegativeLogProbLoss(z, var=var)
      partial = ex.PartialCurvatureMatrixVectorProductComputer([loss],
                                                               [x, y])
      fisher = partial.multiply_fisher([tf.constant(vx), tf.constant(vy)])
      ggn = partial.multiply_generalized_gauss_newton(
          [tf.constant(vx), tf.constant(vy)])
      with tf.compat.v1.Session() as sess:
        fisher_val, ggn_val = sess.run([fisher, ggn])
    jac = np.zeros((3, 6))
    for i in range(3):
      jac[i, i] = a_val[i]
      jac[i, 3 + i] = b_val[i]
    expected = jac.T.dot(np.eye(3) / var).dot(jac).dot(np.concatenate([vx,
                                                                       vy]))
    np.testing.assert_allclose(np.concatenate(fisher_val), expected,
                               rtol=1e-10)
    np.testing.assert_allclose(np.concatenate(ggn_val), expected, rtol=1e-10)


class PiAdjustedDampingTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("tracenorm_float", "tracenorm", 0.09),
      ("tracenorm_tensor", "tracenorm", "tensor"),
      ("off_float", "off", 0.001),
      ("off_tensor", "off", "tensor"))
  def testSplit(self, pi_type, damping):
    with tf.Graph().as_default():
      pi = tf.constant(2.5, tf.float64)
      damping_arg = (tf.constant(0.04, tf.float64) if damping == "tensor"
                     else damping)
      value = 0.04 if damping == "tensor" else damping
      left, right = ex.pi_adjusted_damping(lambda: pi, damping_arg, pi_type)
      if pi_type == "off" and damping != "tensor":
        # Python floats: repr(√d) names the inverse variables (§12.1).
        self.assertEqual(repr(left), "0.03162277660168379")
        self.assertEqual(left, right)
      with tf.compat.v1.Session() as sess:
        left, right = sess.run([tf.convert_to_tensor(left, tf.float64),
                                tf.convert_to_tensor(right, tf.float64)])
    factor = 2.5 if pi_type == "tracenorm" else 1.0
    np.testing.assert_allclose(left, np.sqrt(value) * factor, rtol=1e-12)
    np.testing.assert_allclose(right, np.sqrt(value) / factor, rtol=1e-12)

  def testUnknownTypeGivesNone(self):
    self.assertIsNone(ex.pi_adjusted_damping(lambda: 1., 0.1, "bogus"))

  def testDefaultFollowsTheEngineGlobal(self):
    self.assertEqual(ex.current_pi_type(),
                     getattr(fb, "PI_TYPE", "tracenorm"))


class FaceCompatibilityTest(parameterized.TestCase):
  """Release faces re-host engine classes and module globals."""

  def testDiagonalFactorsAreRecognisedByClassName(self):
    # A re-hosted DiagonalFactor is not the engine class; the products must
    # still take the diagonal path.
    class DiagonalFactor(object):  # pylint: disable=redefined-outer-name
      pass

    class FaceDiagonal(DiagonalFactor):

      def __init__(self, cov):
        self._cov = cov

    with tf.Graph().as_default():
      factor = FaceDiagonal(tf.constant([[1., 2.], [3., 4.]]))
      x = tf.constant([[2., 2.], [2., 2.]])
      products = [ex.left_multiply(factor, x, 1.),
                  ex.left_multiply_inverse(factor, x, 1.)]
      with self.assertRaises(NotImplementedError):
        ex.right_multiply(factor, x, 1.)
      with tf.compat.v1.Session() as sess:
        left, left_inv = sess.run(products)
    np.testing.assert_allclose(left, [[4., 6.], [8., 10.]])
    np.testing.assert_allclose(left_inv, [[1., 2. / 3], [.5, .4]])

  @parameterized.named_parameters(
      ("no_global", None, False, False), ("argument", None, True, True),
      ("global_on", True, False, True), ("global_off", False, False, False))
  def testColocationFlagReadsTheGivenModule(self, global_value, flag,
                                            expected):
    module = type("FaceFactors", (), {})()
    if global_value is not None:
      module.COLOCATE_COV_OPS_WITH_INPUTS = global_value
    self.assertEqual(ex.colocation_flag(module, flag), expected)

  def testPiTypeReadsTheGivenModule(self):
    module = type("FaceBlocks", (), {"PI_TYPE": "off"})()
    self.assertEqual(ex.current_pi_type(module), "off")
    self.assertEqual(ex.current_pi_type(type("Bare", (), {})()),
                     "tracenorm")


if __name__ == "__main__":
  absltest.main()
