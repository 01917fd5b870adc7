"""Release namespaces: what all share, what each changes, typical programs.

`SharedTest` runs over every namespace (`kfac` and `kfac.r1_4` ... `r1_7`):
factor statistics and block products against dense NumPy oracles, and the
registration rules common to all. The other classes check the behaviour
that differs between releases (releases.md §13) and train the typical
programs of releases.md §19 (single machine, multi-tower, shared weights).
"""

import contextlib
import importlib
import inspect
from unittest import mock

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

import kfac
from kfac import _releases

_DEFERRED = ("kfac.r1_8", "kfac.r1_9", "kfac.r1_10")
_NAMESPACES = (
  "kfac",
  "kfac.r1_4",
  "kfac.r1_5",
  "kfac.r1_6",
  "kfac.r1_7",
) + _DEFERRED
_LATER = ("kfac.r1_5", "kfac.r1_6", "kfac.r1_7")
BATCH, IN, OUT = 8, 3, 4


def _ns(package):
  return importlib.import_module(package)


@contextlib.contextmanager
def _release_session(package, seed=None):
  """A fresh graph and session; yields (namespace, session, RandomState)."""
  rng = None if seed is None else np.random.RandomState(seed)
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    yield _ns(package), sess, rng


def _named(packages):
  return [(p.replace(".", "_"), p) for p in packages]


def _np_pi(a, g):
  return np.sqrt((np.trace(a) / a.shape[0]) / (np.trace(g) / g.shape[0]))


def _updated_factor_covs(sess, block, cov_op, inv_op):
  """Initialises, runs `cov_op` then `inv_op`; returns the block's (A, G)."""
  sess.run(tf.compat.v1.global_variables_initializer())
  sess.run(cov_op)
  sess.run(inv_op)
  return sess.run(
    [block._input_factor.get_cov(), block._output_factor.get_cov()]
  )


_OPTIMIZER_DEFAULTS = {
  "learning_rate": 0.1,
  "cov_ema_decay": 0.0,
  "damping": 0.01,
  "momentum": 0.0,
}


def _make_optimizer(ns, lc, **kwargs):
  """A `KfacOptimizer` of `lc`: `kwargs` over `_OPTIMIZER_DEFAULTS`."""
  return ns.optimizer.KfacOptimizer(
    layer_collection=lc, **dict(_OPTIMIZER_DEFAULTS, **kwargs)
  )


def _diagonal_dense_layer(ns, rng):
  """A `[BATCH, IN] @ [IN, OUT]` layer with a diagonal block and an optimizer.

  Args:
    ns: the release namespace (`kfac`, `kfac.r1_5`, ...).
    rng: the `np.random.RandomState` drawing the input and the weights.

  Returns:
    `(x, w, lc, opt)`: the input, the weight variable, the layer collection
    and its `KfacOptimizer`.
  """
  x = tf.constant(rng.randn(BATCH, IN).astype(np.float32))
  w = tf.compat.v1.get_variable(
    "w", initializer=rng.randn(IN, OUT).astype(np.float32)
  )
  logits = tf.matmul(x, w)
  lc = ns.layer_collection.LayerCollection()
  lc.register_fully_connected(w, x, logits, approx="diagonal")
  lc.register_categorical_predictive_distribution(logits, name="logits")
  return x, w, lc, _make_optimizer(ns, lc)


def _update_ops(ns, opt):
  """`(cov_update_op, inv_update_op)`: the optimizer's, or (1.8+) built
  from the thunks of `make_vars_and_create_op_thunks()`."""
  if _releases.of(opt).construction != "deferred":
    return opt.cov_update_op, opt.inv_update_op
  cov_thunks, inv_thunks = opt.make_vars_and_create_op_thunks()
  return (
    tf.group(*[thunk() for thunk in cov_thunks]),
    tf.group(*[thunk() for thunk in inv_thunks]),
  )


def _fc_model(ns, rng):
  """One FC layer with bias and a categorical head; returns its parts."""
  x = tf.constant(rng.randn(BATCH, IN).astype(np.float32))
  w = tf.compat.v1.get_variable(
    "w", initializer=rng.randn(IN, OUT).astype(np.float32)
  )
  b = tf.compat.v1.get_variable("b", initializer=np.zeros(OUT, np.float32))
  logits = tf.matmul(x, w) + b
  lc = ns.layer_collection.LayerCollection()
  lc.register_fully_connected((w, b), x, logits, approx="kron")
  lc.register_categorical_predictive_distribution(logits, name="logits")
  return x, w, b, logits, lc


class SharedTest(parameterized.TestCase):
  """What every release namespace shares."""

  @parameterized.named_parameters(*_named(_NAMESPACES))
  def test_kronecker_block_against_numpy(self, package):
    with _release_session(package, 0) as (ns, sess, rng):
      x, w, b, _, lc = _fc_model(ns, rng)
      opt = _make_optimizer(ns, lc)
      cov_op, inv_op = _update_ops(ns, opt)
      block = lc.fisher_blocks[(w, b)]
      v_w = rng.randn(IN, OUT).astype(np.float32)
      v_b = rng.randn(OUT).astype(np.float32)
      product = block.multiply_inverse((tf.constant(v_w), tf.constant(v_b)))
      a_cov, g_cov = _updated_factor_covs(sess, block, cov_op, inv_op)
      x_value, (p_w, p_b) = sess.run([x, product])
    # The input factor is the second moment of [x, 1] (cov_ema_decay 0).
    homog = np.concatenate([x_value, np.ones((BATCH, 1))], axis=1)
    expected_a = np.zeros((IN + 1, IN + 1))
    for n in range(BATCH):
      expected_a += np.outer(homog[n], homog[n]) / BATCH
    np.testing.assert_allclose(a_cov, expected_a, rtol=1e-5, atol=1e-6)
    # (A + π√d I)⁻¹ V (G + √d/π I)⁻¹, V = [v_w; v_b].
    pi = _np_pi(a_cov, g_cov)
    root = np.sqrt(0.01)
    v = np.concatenate([v_w, v_b[None]], axis=0)
    expected = (
      np.linalg.inv(a_cov + pi * root * np.eye(IN + 1))
      @ v
      @ np.linalg.inv(g_cov + root / pi * np.eye(OUT))
    )
    np.testing.assert_allclose(p_w, expected[:-1], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(p_b, expected[-1], rtol=1e-3, atol=1e-5)

  @parameterized.named_parameters(*_named(_NAMESPACES))
  def test_diagonal_block_against_numpy(self, package):
    with _release_session(package, 1) as (ns, sess, rng):
      x, w, lc, opt = _diagonal_dense_layer(ns, rng)
      cov_op, _ = _update_ops(ns, opt)
      v = rng.randn(IN, OUT).astype(np.float32)
      product = lc.fisher_blocks[w].multiply_inverse(tf.constant(v))
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(cov_op)
      diag = sess.run(lc.fisher_blocks[w]._factor._cov)
      x_value, result = sess.run([x, product])
    # D[i, j] = mean_n (x_n[i] g_n[j])², a positive diagonal; the product
    # divides elementwise by D + λ.
    self.assertTrue(np.all(diag >= 0))
    np.testing.assert_allclose(result, v / (diag + 0.01), rtol=1e-4)
    self.assertEqual(x_value.shape, (BATCH, IN))

  @parameterized.named_parameters(*_named(_NAMESPACES))
  def test_duplicate_registration_is_a_value_error(self, package):
    ns = _ns(package)
    with tf.Graph().as_default():
      _, w, b, logits, lc = _fc_model(ns, np.random.RandomState(2))
      with self.assertRaises(ValueError):
        lc.register_fully_connected(
          (w, b),
          tf.ones([BATCH, IN]),
          logits,
          approx="kron",
          **({"reuse": False} if package in _LATER + _DEFERRED else {}),
        )

  @parameterized.named_parameters(*_named(_NAMESPACES))
  def test_objects_carry_their_release(self, package):
    ns = _ns(package)
    with tf.Graph().as_default():
      lc = ns.layer_collection.LayerCollection()
    expected = (
      "seed" if package == "kfac" else package.split(".r")[1].replace("_", ".")
    )
    self.assertEqual(_releases.of(lc).version, expected)
    self.assertIs(type(lc), ns.layer_collection.LayerCollection)


class DefaultsTest(parameterized.TestCase):
  """Defaults and positional orders that changed (releases.md §13, §14)."""

  @parameterized.named_parameters(
    ("r1_4", "kfac.r1_4", 0.0, None),
    ("r1_5", "kfac.r1_5", 0.0, False),
    ("r1_6", "kfac.r1_6", 0.9, True),
    ("r1_7", "kfac.r1_7", 0.9, True),
    ("r1_8", "kfac.r1_8", 0.9, True),
    ("r1_10", "kfac.r1_10", 0.9, True),
  )
  def test_optimizer_defaults(self, package, momentum, colocate):
    params = inspect.signature(
      _ns(package).optimizer.KfacOptimizer.__init__
    ).parameters
    self.assertEqual(params["momentum"].default, momentum)
    if colocate is None:
      self.assertNotIn("colocate_gradients_with_ops", params)
    else:
      self.assertEqual(params["colocate_gradients_with_ops"].default, colocate)
      # `var_list` comes before `momentum` from 1.5.
      names = list(params)
      self.assertLess(names.index("var_list"), names.index("momentum"))

  @parameterized.named_parameters(
    ("kfac", "kfac", "NaiveDiagonalFB"),
    ("r1_5", "kfac.r1_5", "FullFB"),
    ("r1_7", "kfac.r1_7", "FullFB"),
    ("r1_8", "kfac.r1_8", "FullFB"),
    ("r1_9", "kfac.r1_9", "NaiveDiagonalFB"),
    ("r1_10", "kfac.r1_10", "NaiveDiagonalFB"),
  )
  def test_generic_default_approximation(self, package, block_name):
    ns = _ns(package)
    with tf.Graph().as_default():
      v = tf.compat.v1.get_variable("v", [3])
      lc = ns.layer_collection.LayerCollection()
      if package == "kfac":
        lc.register_generic(v, 4)
      else:
        lc.register_generic(v, 4, approx=None)
      self.assertEqual(
        type(lc.fisher_blocks[(v,) if package == "kfac" else v]).__name__,
        block_name,
      )

  @parameterized.named_parameters(
    *_named(("kfac.r1_6", "kfac.r1_7", "kfac.r1_8", "kfac.r1_9"))
  )
  def test_qmodel_needs_explicit_zero_momentum(self, package):
    ns = _ns(package)
    with tf.Graph().as_default():
      _, _, _, _, lc = _fc_model(ns, np.random.RandomState(3))
      with self.assertRaises(ValueError):
        ns.optimizer.KfacOptimizer(
          learning_rate=0.1,
          cov_ema_decay=0.9,
          damping=0.01,
          layer_collection=lc,
          momentum_type="qmodel",
        )
      _make_optimizer(ns, lc, cov_ema_decay=0.9, momentum_type="qmodel")

  @parameterized.named_parameters(
    ("r1_5", "kfac.r1_5", True), ("r1_6", "kfac.r1_6", False)
  )
  def test_conv_diagonal_damping(self, package, divided):
    ns = _ns(package)
    with tf.Graph().as_default():
      x = tf.ones([2, 4, 4, 1])
      f = tf.compat.v1.get_variable("f", [3, 3, 1, 2])
      y = tf.nn.conv2d(x, f, [1, 1, 1, 1], "SAME")
      lc = ns.layer_collection.LayerCollection()
      lc.register_conv2d(f, (1, 1, 1, 1), "SAME", x, y, approx="diagonal")
      lc.register_categorical_predictive_distribution(
        tf.reshape(y, [2, -1]), name="logits"
      )
      _make_optimizer(ns, lc)
      damping = lc.fisher_blocks[f]._damping
    # |T| = 16 locations: 1.5 divides the damping by it, 1.6 does not.
    self.assertAlmostEqual(damping, 0.01 / 16 if divided else 0.01)

  @parameterized.named_parameters(*_named(("kfac.r1_6", "kfac.r1_7")))
  def test_num_conv_locations_counts_input_locations(self, package):
    # Quirk §18.10: the input's spatial size over the strides, whatever the
    # filter and padding (a 3x3 VALID filter on 8x6 has fewer outputs).
    ns = _ns(package)
    self.assertEqual(
      ns.fisher_blocks.num_conv_locations([2, 8, 6, 1], [1, 2, 3, 1]), 8
    )
    self.assertEqual(
      ns.fisher_blocks.num_conv_locations([2, 8, 6, 1], [1, 1, 1, 1]), 48
    )

  @parameterized.named_parameters(
    ("matrices", (3, 3), (2, 2)),
    ("left_diagonal", (3,), (2, 2)),
    ("both_diagonal", (3,), (2,)),
  )
  def test_compute_pi_tracenorm_reads_diagonals_in_1_7(self, left, right):
    rng = np.random.RandomState(14)
    left_value = rng.rand(*left) + 0.5
    right_value = rng.rand(*right) + 0.5

    def trace(m):
      return np.sum(m) if m.ndim == 1 else np.trace(m)

    expected = np.sqrt(
      (trace(left_value) / left[0]) / (trace(right_value) / right[0])
    )
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      pi = kfac.r1_7.fisher_blocks.compute_pi_tracenorm(
        tf.constant(left_value), tf.constant(right_value)
      )
      split = kfac.r1_7.fisher_blocks.compute_pi_adjusted_damping(
        tf.constant(left_value), tf.constant(right_value), 0.1
      )
      value, (left_d, right_d) = sess.run([pi, split])
      with self.assertRaisesRegex(ValueError, "left_cov"):
        kfac.r1_7.fisher_blocks.compute_pi_tracenorm(
          tf.ones([2, 2, 2], tf.float64), tf.constant(right_value)
        )
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    np.testing.assert_allclose(
      [left_d, right_d], [0.1 * expected, 0.1 / expected]
    )

  def test_estimator_takes_a_damping_function_first_in_1_7(self):
    ns = kfac.r1_7
    calls = []
    with tf.Graph().as_default():
      _, w, b, _, lc = _fc_model(ns, np.random.RandomState(4))

      def damping_fn():
        calls.append(1)
        return 0.01

      est = ns.estimator.FisherEstimator(damping_fn, [w, b], 0.9, lc)
      made = len(calls)
      self.assertEqual(est.damping, 0.01)
    self.assertGreaterEqual(made, 1)
    self.assertEqual(len(calls), made + 1)

  def test_releases_coexist_in_one_process(self):
    with tf.Graph().as_default():
      seed_lc = kfac.layer_collection.LayerCollection()
      lc_16 = kfac.r1_6.layer_collection.LayerCollection()
    self.assertFalse(hasattr(seed_lc, "default_generic_approximation"))
    self.assertEqual(lc_16.default_generic_approximation, "full")
    self.assertTrue(kfac.r1_6.fisher_factors.COLOCATE_COV_OPS_WITH_INPUTS)
    self.assertFalse(
      hasattr(kfac.fisher_factors, "COLOCATE_COV_OPS_WITH_INPUTS")
    )


_NAIVEDIAG_COLUMN_NAMES = (
  "LayerCollection/ff_naivediag/LayerCollection_1_concat_Sum_1/cov",
  "LayerCollection/ff_naivediag/LayerCollection_2_Reshape_Sum_2/cov",
)
_NAIVEDIAG_GRADIENT_NAMES = (
  "LayerCollection/ff_naivediag/"
  "gradients_MatMul_grad_MatMul_1__gradients_add_grad_Reshape_Sum_1/cov",
  "LayerCollection/ff_naivediag/gradients_MatMul_1_grad_MatMul_1_Sum_2/cov",
)


class FactorReleaseTest(parameterized.TestCase):
  """Factor names and accessors that differ between 1.5, 1.6 and 1.7."""

  def _naive_diagonal_model(self, ns):
    x = tf.ones([4, 3])
    w = tf.compat.v1.get_variable("w", [3, 2])
    b = tf.compat.v1.get_variable("b", [2])
    v = tf.compat.v1.get_variable("v", [3, 2])
    logits = tf.matmul(x, w) + b + tf.matmul(x, v)
    lc = ns.layer_collection.LayerCollection()
    lc.register_generic((w, b), 4, approx="diagonal")
    lc.register_generic(v, 4, approx="diagonal")
    lc.register_categorical_predictive_distribution(logits)
    opt = _make_optimizer(ns, lc)
    return lc, opt, (w, b), v

  # releases.md §12.1: 1.5 names the naive-diagonal factor after the
  # flattened gradient columns (built in the constructor), 1.6 and 1.7 after
  # the gradient tensors themselves.
  @parameterized.named_parameters(
    ("r1_5", "kfac.r1_5", _NAIVEDIAG_COLUMN_NAMES),
    ("r1_6", "kfac.r1_6", _NAIVEDIAG_GRADIENT_NAMES),
    ("r1_7", "kfac.r1_7", _NAIVEDIAG_GRADIENT_NAMES),
  )
  def test_naive_diagonal_factor_names(self, package, expected):
    with _release_session(package) as (ns, sess, _):
      lc, opt, wb, v = self._naive_diagonal_model(ns)
      names = [lc.fisher_blocks[key]._factor._cov.op.name for key in (wb, v)]
      vector = (tf.ones([3, 2]), tf.ones([2]))
      product = lc.fisher_blocks[wb].multiply_inverse(vector)
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(opt.cov_update_op)
      cov, (p_w, p_b) = sess.run([lc.fisher_blocks[wb]._factor._cov, product])
    self.assertEqual(tuple(names), expected)
    # Whatever the name, the statistic is the same: a [8, 1] column.
    self.assertEqual(cov.shape, (8, 1))
    expected_product = 1.0 / (cov[:, 0] + 0.01)
    np.testing.assert_allclose(
      np.concatenate([p_w.ravel(), p_b]), expected_product, rtol=1e-6
    )

  # releases.md §2.6: from 1.7 `get_cov()` of a diagonal factor is the dense
  # matrix diag(reshape(cov, [-1])); before, it is the variable.
  @parameterized.named_parameters(
    ("r1_5", "kfac.r1_5", False),
    ("r1_6", "kfac.r1_6", False),
    ("r1_7", "kfac.r1_7", True),
  )
  def test_diagonal_factor_get_cov(self, package, dense):
    with _release_session(package, 11) as (ns, sess, rng):
      _, w, lc, opt = _diagonal_dense_layer(ns, rng)
      factor = lc.fisher_blocks[w]._factor
      cov = factor.get_cov()
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(opt.cov_update_op)
      value, variable = sess.run([cov, factor._cov])
    self.assertEqual(variable.shape, (IN, OUT))
    if not dense:
      self.assertIs(cov, factor._cov)
      return
    expected = np.zeros((IN * OUT, IN * OUT), np.float32)
    for i in range(IN):
      for j in range(OUT):
        expected[i * OUT + j, i * OUT + j] = variable[i, j]
    np.testing.assert_array_equal(value, expected)
    self.assertIs(factor.get_cov_var(), factor._cov)


class RegistrationTest(parameterized.TestCase):
  """The 1.5–1.7 registration rules (releases.md §5.6–§5.9)."""

  @parameterized.named_parameters(*_named(_LATER))
  def test_towers_are_pooled_by_concatenation(self, package):
    with _release_session(package, 5) as (ns, sess, rng):
      w = tf.compat.v1.get_variable(
        "w", initializer=rng.randn(IN, OUT).astype(np.float32)
      )
      lc = ns.layer_collection.LayerCollection()
      xs = [
        tf.constant(rng.randn(BATCH, IN).astype(np.float32)) for _ in range(2)
      ]
      for i, x in enumerate(xs):
        with tf.compat.v1.variable_scope(
          tf.compat.v1.get_variable_scope(), reuse=(i > 0)
        ):
          logits = tf.matmul(x, w)
          lc.register_fully_connected(w, x, logits)
          lc.register_categorical_predictive_distribution(logits, name="logits")
      self.assertLen(lc.fisher_blocks, 1)
      self.assertLen(lc.losses, 1)
      self.assertEqual(lc.fisher_blocks[w].num_registered_minibatches, 2)
      self.assertEqual(lc.losses[0].num_registered_minibatches, 2)
      opt = _make_optimizer(ns, lc, var_list=[w])  # check_registration: 2
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(opt.cov_update_op)
      a_cov = sess.run(lc.fisher_blocks[w]._input_factor.get_cov())
      pooled = np.concatenate(sess.run(xs), axis=0)
    np.testing.assert_allclose(
      a_cov, pooled.T @ pooled / (2 * BATCH), rtol=1e-5, atol=1e-6
    )

  @parameterized.named_parameters(*_named(_LATER))
  def test_register_block_rules(self, package):
    ns = _ns(package)
    with tf.Graph().as_default():
      w = tf.compat.v1.get_variable("w", [IN, OUT])
      b = tf.compat.v1.get_variable("b", [OUT])
      lc = ns.layer_collection.LayerCollection()
      with self.assertRaises(KeyError):
        lc.register_fully_connected(
          w, tf.ones([2, IN]), tf.ones([2, OUT]), reuse=True
        )
      lc.register_fully_connected(w, tf.ones([2, IN]), tf.ones([2, OUT]))
      with self.assertRaisesRegex(ValueError, "already registered"):
        lc.register_fully_connected((w, b), tf.ones([2, IN]), tf.ones([2, OUT]))
      with self.assertRaisesRegex(ValueError, "Attempted to register"):
        lc.register_fully_connected(
          w, tf.ones([2, IN]), tf.ones([2, OUT]), approx="diagonal", reuse=True
        )
      with self.assertRaises(ValueError):
        lc.define_linked_parameters((w, b))
      lc.define_linked_parameters(b, approximation="full")
      lc.register_generic(b, 2)
      self.assertEqual(type(lc.fisher_blocks[b]).__name__, "FullFB")
      with self.assertRaisesRegex(ValueError, "Bad value"):
        lc.register_conv2d(
          tf.compat.v1.get_variable("f", [1, 1, 1, 1]),
          (1, 1, 1, 1),
          "SAME",
          tf.ones([1, 2, 2, 1]),
          tf.ones([1, 2, 2, 1]),
          approx="bogus",
        )
      with self.assertRaises(ValueError):
        lc.set_default_generic_approximation("kron")
      lc.register_categorical_predictive_distribution(
        tf.ones([2, OUT]), name="l"
      )
      with self.assertRaises(KeyError):
        lc.register_categorical_predictive_distribution(
          tf.ones([2, OUT]), name="l"
        )
      lc.register_normal_predictive_distribution(tf.ones([2, OUT]), name="n")
      with self.assertRaises(NotImplementedError):
        lc.register_normal_predictive_distribution(tf.ones([2, OUT]), name="n")

  @parameterized.named_parameters(*_named(_LATER))
  def test_factor_variables_follow_float64_data(self, package):
    with _release_session(package, 6) as (ns, sess, rng):
      x = tf.constant(rng.randn(BATCH, IN))
      w = tf.compat.v1.get_variable("w", initializer=rng.randn(IN, OUT))
      logits = tf.matmul(x, w)
      lc = ns.layer_collection.LayerCollection()
      lc.register_fully_connected(w, x, logits)
      lc.register_categorical_predictive_distribution(logits, name="logits")
      opt = _make_optimizer(ns, lc)
      train = opt.minimize(tf.reduce_sum(logits**2))
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run([train, opt.cov_update_op])
      sess.run(opt.inv_update_op)
      factors = list(lc.get_factors())
    self.assertTrue(factors)
    for factor in factors:
      self.assertEqual(factor.get_cov().dtype.base_dtype, tf.float64)


class Float64Test(parameterized.TestCase):
  """Float64 runs are exact: no constant goes through float32 (1.5–1.7)."""

  @parameterized.named_parameters(
    *[
      ("{}_{}".format(package.replace(".", "_"), path), package, threshold)
      for package in _LATER
      for path, threshold in (("posdef_inv", 2), ("eigen", 1))
    ]
  )
  def test_float64_run_against_numpy(self, package, threshold):
    # A Kronecker FC layer (x W + b) and a "full" generic bias c feed a
    # unit-variance normal loss; "exact" estimation makes the statistics
    # deterministic: A = ρI + (1−ρ)[x 1]ᵀ[x 1]/n, G = I, C = ρI + (1−ρ)nI.
    # Damping 1e-3, decay 0.95 and momentum 0.9 are not float32 numbers:
    # rounding them through float32 would show as relative errors near 1e-8.
    ns = _ns(package)
    rng = np.random.RandomState(13)
    n, rho, damping, lr, momentum = 8, 0.95, 1e-3, 0.5, 0.9
    x_value, t_value = rng.randn(n, IN), rng.randn(n, OUT)
    w0 = rng.randn(IN, OUT)
    v_w, v_b, v_c = rng.randn(IN, OUT), rng.randn(OUT), rng.randn(OUT)
    ns.fisher_factors.set_global_constants(
      eigenvalue_decomposition_threshold=threshold
    )
    try:
      with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        x = tf.constant(x_value)
        w = tf.compat.v1.get_variable("w", initializer=w0)
        b = tf.compat.v1.get_variable("b", initializer=np.zeros(OUT))
        c = tf.compat.v1.get_variable("c", initializer=np.zeros(OUT))
        pre = tf.matmul(x, w) + b
        y = pre + c
        lc = ns.layer_collection.LayerCollection()
        lc.register_fully_connected((w, b), x, pre, approx="kron")
        lc.register_generic(c, n, approx="full")
        lc.register_normal_predictive_distribution(y, var=1.0, name="y")
        opt = _make_optimizer(
          ns,
          lc,
          learning_rate=lr,
          cov_ema_decay=rho,
          damping=damping,
          momentum=momentum,
          estimation_mode="exact",
        )
        products = lc.fisher_blocks[(w, b)].multiply_inverse(
          (tf.constant(v_w), tf.constant(v_b))
        ) + (lc.fisher_blocks[c].multiply_inverse(tf.constant(v_c)),)
        loss = 0.5 * tf.reduce_mean(tf.reduce_sum((y - t_value) ** 2, axis=1))
        train = opt.minimize(loss)
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(opt.cov_update_op)
        sess.run(opt.inv_update_op)
        p_w, p_b, p_c = sess.run(products)
        params = []
        for _ in range(2):
          sess.run(train)
          params.append(sess.run([w, b, c]))
        eigen = [f._on_eigen_path for f in lc.get_factors()]
    finally:
      ns.fisher_factors.set_global_constants(
        eigenvalue_decomposition_threshold=2
      )
    self.assertEqual(eigen, [threshold == 1] * 3)
    homog = np.concatenate([x_value, np.ones((n, 1))], axis=1)
    a = rho * np.eye(IN + 1) + (1 - rho) * homog.T @ homog / n
    g = np.eye(OUT)
    full = (rho + (1 - rho) * n) * np.eye(OUT)
    pi = np.sqrt((np.trace(a) / (IN + 1)) / (np.trace(g) / OUT))
    left = np.linalg.inv(a + pi * np.sqrt(damping) * np.eye(IN + 1))
    right = np.linalg.inv(g + np.sqrt(damping) / pi * np.eye(OUT))
    full_inv = np.linalg.inv(full + damping * np.eye(OUT))

    def kron(m_w, m_b):
      out = left @ np.concatenate([m_w, m_b[None]], axis=0) @ right
      return out[:-1], out[-1]

    expected_w, expected_b = kron(v_w, v_b)
    for actual, expected in (
      (p_w, expected_w),
      (p_b, expected_b),
      (p_c, full_inv @ v_c),
    ):
      np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=0)
    # Two steps v ← μv + F̂⁻¹∇, θ ← θ − lr·v from w0, b = c = 0 (the
    # statistics do not change: no covariance update runs in between).
    w_np, b_np, c_np = w0, np.zeros(OUT), np.zeros(OUT)
    v_w, v_b, v_c = np.zeros((IN, OUT)), np.zeros(OUT), np.zeros(OUT)
    for actual in params:
      residual = x_value @ w_np + b_np + c_np - t_value
      grad_w, grad_b = x_value.T @ residual / n, residual.mean(axis=0)
      step_w, step_b = kron(grad_w, grad_b)
      v_w = momentum * v_w + step_w
      v_b = momentum * v_b + step_b
      v_c = momentum * v_c + full_inv @ grad_b
      w_np, b_np, c_np = w_np - lr * v_w, b_np - lr * v_b, c_np - lr * v_c
      for value, expected in zip(actual, (w_np, b_np, c_np)):
        np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-15)


class ColocationTest(parameterized.TestCase):
  """Covariance ops next to their inputs (1.5 opt-in, 1.6–1.7 default)."""

  def _colocated_ops(self, ns, colocate):
    """Builds a two-tower model; returns {factor data op: colocated ops}."""
    with tf.Graph().as_default() as graph:
      w = tf.compat.v1.get_variable("w", [IN, OUT])
      if ns is kfac.r1_5:
        lc = ns.layer_collection.LayerCollection(
          colocate_cov_ops_with_inputs=colocate
        )
      else:
        lc = ns.layer_collection.LayerCollection()
      for i in range(2):
        x = tf.compat.v1.placeholder(tf.float32, [BATCH, IN], "x%d" % i)
        with tf.compat.v1.variable_scope(
          tf.compat.v1.get_variable_scope(), reuse=(i > 0)
        ):
          logits = tf.matmul(x, w)
          lc.register_fully_connected(w, x, logits)
          lc.register_categorical_predictive_distribution(logits, name="l")
      opt = _make_optimizer(ns, lc)
      self.assertIsNotNone(opt.cov_update_op)
      result = {}
      for factor in lc.get_factors():
        data_op = factor._first_data_tensor().op
        group = ("loc:@" + data_op.name).encode()
        result[data_op.name] = [
          op.name
          for op in graph.get_operations()
          if op is not data_op and group in op.colocation_groups()
        ]
    return result

  @contextlib.contextmanager
  def _no_deprecated_colocation(self):
    """Fails if `tf.compat.v1.colocate_with` is used or TF logs a warning.

    The function logs its deprecation only once per process, so the calls
    are recorded as well.
    """
    calls = []
    real = tf.compat.v1.colocate_with

    def recording_colocate_with(*args, **kwargs):
      calls.append(args)
      return real(*args, **kwargs)

    with mock.patch.object(
      tf.compat.v1, "colocate_with", recording_colocate_with
    ):
      with self.assertNoLogs("tensorflow", level="WARNING"):
        yield
    self.assertEqual(calls, [])

  @parameterized.named_parameters(*_named(_LATER))
  def test_covariance_ops_colocated_without_deprecation_log(self, package):
    ns = _ns(package)
    if package == "kfac.r1_5":
      on = lambda: self._colocated_ops(ns, True)  # noqa: E731
      off = lambda: self._colocated_ops(ns, False)  # noqa: E731
    else:

      def on():
        return self._colocated_ops(ns, None)

      def off():
        ns.fisher_factors.set_global_constants(
          colocate_cov_ops_with_inputs=False
        )
        try:
          return self._colocated_ops(ns, None)
        finally:
          ns.fisher_factors.set_global_constants(
            colocate_cov_ops_with_inputs=True
          )

    with self._no_deprecated_colocation():
      colocated = on()
    not_colocated = off()
    # The (concatenated) data of every factor has covariance ops with it.
    self.assertLen(colocated, 2)
    for name, ops in colocated.items():
      self.assertTrue(ops, "nothing colocated with " + name)
    self.assertEqual(
      not_colocated, {name: [] for name in not_colocated}, not_colocated
    )

  @parameterized.named_parameters(*_named(("kfac.r1_6", "kfac.r1_7")))
  def test_maybe_colocate_with(self, package):
    ns = _ns(package)
    with tf.Graph().as_default():
      x = tf.compat.v1.placeholder(tf.float32, [2], "data")
      with self._no_deprecated_colocation():
        with ns.fisher_factors.maybe_colocate_with([x]):
          y = tf.identity(x)
      ns.fisher_factors.set_global_constants(colocate_cov_ops_with_inputs=False)
      try:
        with ns.fisher_factors.maybe_colocate_with(x):
          z = tf.identity(x)
      finally:
        ns.fisher_factors.set_global_constants(
          colocate_cov_ops_with_inputs=True
        )
    self.assertEqual(y.op.colocation_groups(), [b"loc:@data"])
    self.assertEqual(z.op.colocation_groups(), [("loc:@" + z.op.name).encode()])


class TypicalProgramsTest(parameterized.TestCase):
  """The programs of releases.md §19 train (1.5–1.7)."""

  def _train(self, ns, towers=1, thunks=False, steps=12):
    rng = np.random.RandomState(7)
    x_all = rng.randn(16 * towers, IN).astype(np.float32)
    labels_all = (x_all[:, 0] > 0).astype(np.int32)
    w = tf.compat.v1.get_variable(
      "w", initializer=0.1 * rng.randn(IN, OUT).astype(np.float32)
    )
    b = tf.compat.v1.get_variable("b", initializer=np.zeros(OUT, np.float32))
    lc = ns.layer_collection.LayerCollection()
    losses = []
    for i in range(towers):
      x = tf.constant(x_all[16 * i : 16 * (i + 1)])
      labels = tf.constant(labels_all[16 * i : 16 * (i + 1)])
      with tf.compat.v1.variable_scope(
        tf.compat.v1.get_variable_scope(), reuse=(i > 0)
      ):
        logits = tf.matmul(x, w) + b
        lc.register_fully_connected((w, b), x, logits)
        lc.register_categorical_predictive_distribution(logits, name="logits")
      losses.append(
        tf.reduce_mean(
          tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits
          )
        )
      )
    loss = tf.add_n(losses) / towers
    step = tf.compat.v1.train.get_or_create_global_step()
    opt = _make_optimizer(ns, lc, cov_ema_decay=0.95, momentum=0.9)
    train = opt.minimize(loss, global_step=step)
    if thunks:
      inv = tf.group(*ns.utils.batch_execute(step, opt.inv_update_thunks, 1))
    else:
      inv = opt.inv_update_op
    values = []
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      for i in range(steps):
        _, _, value = sess.run([train, opt.cov_update_op, loss])
        if thunks or i % 3 == 0:
          sess.run(inv)
        values.append(value)
    return values

  @parameterized.named_parameters(*_named(_LATER))
  def test_single_machine(self, package):
    with tf.Graph().as_default():
      values = self._train(_ns(package))
    self.assertTrue(np.all(np.isfinite(values)))
    self.assertLess(values[-1], 0.8 * values[0])

  @parameterized.named_parameters(*_named(_LATER))
  def test_multi_tower(self, package):
    with tf.Graph().as_default():
      values = self._train(_ns(package), towers=2)
    self.assertTrue(np.all(np.isfinite(values)))
    self.assertLess(values[-1], 0.8 * values[0])

  @parameterized.named_parameters(*_named(("kfac.r1_6", "kfac.r1_7")))
  def test_batch_executed_inverse_thunks(self, package):
    with tf.Graph().as_default():
      values = self._train(_ns(package), thunks=True)
    self.assertTrue(np.all(np.isfinite(values)))
    self.assertLess(values[-1], 0.8 * values[0])

  @parameterized.named_parameters(
    *[
      ("{}_{}".format(package.replace(".", "_"), approx or "default"), package)
      + (approx,)
      for package in _LATER
      for approx in (None, "kron_indep", "kron_series_1")
    ]
  )
  def test_shared_weights(self, package, approx):
    # None: the release default, "kron_series_2" in 1.5–1.7.
    with _release_session(package, 8) as (ns, sess, rng):
      w = tf.compat.v1.get_variable(
        "w", initializer=0.3 * rng.randn(IN, IN).astype(np.float32)
      )
      x0 = tf.constant(rng.randn(16, IN).astype(np.float32))
      target = tf.constant(rng.randn(16, IN).astype(np.float32))
      inputs, outputs = [x0], []
      for _ in range(3):  # Three uses (time steps) of one layer.
        out = tf.matmul(inputs[-1], w)
        outputs.append(out)
        inputs.append(tf.tanh(out))
      lc = ns.layer_collection.LayerCollection()
      if approx is None:
        lc.register_fully_connected_multi(w, inputs[:3], outputs)
      else:
        lc.register_fully_connected_multi(w, inputs[:3], outputs, approx=approx)
      block = lc.fisher_blocks[w]
      if approx == "kron_indep":
        self.assertEqual(type(block).__name__, "FullyConnectedMultiIndepFB")
      else:
        self.assertEqual(type(block).__name__, "FullyConnectedSeriesFB")
        self.assertEqual(
          block._option,
          ns.fisher_blocks.SeriesFBApproximation.option1
          if approx == "kron_series_1"
          else ns.fisher_blocks.SeriesFBApproximation.option2,
        )
      lc.register_normal_predictive_distribution(
        outputs[-1], var=1.0, name="mean"
      )
      loss = 0.5 * tf.reduce_mean(
        tf.reduce_sum((outputs[-1] - target) ** 2, axis=1)
      )
      opt = _make_optimizer(
        ns, lc, learning_rate=0.05, cov_ema_decay=0.95, momentum=0.5
      )
      train = opt.minimize(loss)
      sess.run(tf.compat.v1.global_variables_initializer())
      values = []
      for i in range(15):
        _, _, value = sess.run([train, opt.cov_update_op, loss])
        if i % 3 == 0:
          sess.run(opt.inv_update_op)
        values.append(value)
    self.assertTrue(np.all(np.isfinite(values)))
    self.assertLess(values[-1], values[0])

  def test_damping_adaptation_1_7(self):
    ns = kfac.r1_7
    with tf.Graph().as_default():
      _, w, b, logits, lc = _fc_model(ns, np.random.RandomState(9))
      loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=tf.zeros([BATCH], tf.int32), logits=logits
        )
      )
      opt = ns.optimizer.KfacOptimizer(
        learning_rate=0.1, cov_ema_decay=0.9, damping=0.01, layer_collection=lc
      )
      opt.set_damping_adaptation_params(
        is_chief=True, prev_train_batch=None, loss_fn=lambda _: loss
      )
      with self.assertRaises(ValueError):
        opt.set_damping_adaptation_params(
          is_chief=True, prev_train_batch=None, loss_fn=lambda _: loss
        )
      with self.assertRaises(KeyError):
        opt.minimize(loss)
      self.assertEqual(opt.damping_adaptation_interval, 5)
      names = {v.op.name for v in tf.compat.v1.global_variables()}
      del w, b
    self.assertTrue(
      {"KFAC/rho", "KFAC/prev_loss", "KFAC/q_model_change", "KFAC/damping"}
      <= names
    )

  def test_qmodel_with_damping_adaptation_1_7(self):
    ns = kfac.r1_7
    rng = np.random.RandomState(10)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.constant(rng.randn(BATCH, IN).astype(np.float32))
      labels = tf.constant((rng.rand(BATCH) * OUT).astype(np.int32))
      w = tf.compat.v1.get_variable(
        "w", initializer=0.1 * rng.randn(IN, OUT).astype(np.float32)
      )

      def loss_fn(batch):
        logits = tf.matmul(batch, w)
        return tf.reduce_mean(
          tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits
          )
        ), logits

      loss, logits = loss_fn(x)
      lc = ns.layer_collection.LayerCollection()
      lc.register_fully_connected(w, x, logits)
      lc.register_categorical_predictive_distribution(logits, name="logits")
      step = tf.compat.v1.train.get_or_create_global_step()
      opt = _make_optimizer(
        ns,
        lc,
        learning_rate=0.5,
        cov_ema_decay=0.9,
        damping=0.1,
        momentum_type="qmodel",
      )
      opt.set_damping_adaptation_params(
        is_chief=True,
        prev_train_batch=x,
        loss_fn=lambda batch: loss_fn(batch)[0],
        damping_adaptation_interval=2,
      )
      train = opt.minimize(loss, global_step=step)
      q_change = [
        v
        for v in tf.compat.v1.global_variables()
        if v.op.name == "KFAC/q_model_change"
      ][0]
      sess.run(tf.compat.v1.global_variables_initializer())
      values, changes, dampings = [], [], []
      for _ in range(6):
        sess.run(opt.cov_update_op)
        sess.run(opt.inv_update_op)
        values.append(sess.run([train, loss])[1])
        changes.append(sess.run(q_change))
        dampings.append(sess.run(opt.damping))
    self.assertTrue(np.all(np.isfinite(values + changes + dampings)))
    # The predicted change is the model's decrease (negative) from 1.7.
    self.assertTrue(all(c <= 0 for c in changes), changes)
    self.assertLess(values[-1], values[0])
    # The damping was adapted (by ω^±1 = 0.99^±2) at least once.
    self.assertNotAlmostEqual(dampings[-1], 0.1, places=6)


if __name__ == "__main__":
  tf.test.main()
