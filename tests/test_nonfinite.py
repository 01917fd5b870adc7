"""Non-finite data: one bad batch never poisons K-FAC training.

A small regression/classification model is trained with `KfacOptimizer`;
one batch brings NaN or Inf (in the inputs, the labels of a regression head,
or the loss), the next batches are good. With the guards (the default) the
bad batch leaves the weights, velocity slots, covariances and inverses as
they were, the skips are counted in local variables, and training then goes
on. With finite data the guarded graph computes bit-identical numbers and
names its global variables exactly like the unguarded (2017) one.
"""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from kfac import _nonfinite
from kfac import fisher_factors as ff
from kfac import layer_collection as lc_lib
from kfac import optimizer

IN, HIDDEN, OUT, BATCH = 4, 3, 2, 8


def _data(seed, width=IN):
  rng = np.random.RandomState(seed)
  return (
    rng.randn(BATCH, width).astype(np.float32),
    rng.randn(BATCH, OUT).astype(np.float32),
  )


def _build(
  head="normal",
  skip=True,
  momentum_type="regular",
  damping=0.05,
  seed=0,
  width=IN,
):
  """Two dense layers (Kronecker, diagonal) and a regression or softmax head.

  `width` input features: from 255 on, the first layer's input covariance
  (`(width + 1)²` elements) is guarded through `tf.cond`, and from 1024 on
  its inverse is computed by blocks (`utils.posdef_inv_cholesky`).

  Returns a dict of the placeholders, ops and the optimizer.
  """
  tf.compat.v1.set_random_seed(seed)
  x = tf.compat.v1.placeholder(tf.float32, [None, width], name="x")
  y = tf.compat.v1.placeholder(tf.float32, [None, OUT], name="y")
  loss_scale = tf.compat.v1.placeholder_with_default(1.0, [], name="scale")
  lc = lc_lib.LayerCollection()
  w1 = tf.compat.v1.get_variable(
    "w1",
    [width, HIDDEN],
    initializer=tf.compat.v1.random_normal_initializer(seed=1),
  )
  b1 = tf.compat.v1.get_variable(
    "b1", [HIDDEN], initializer=tf.compat.v1.zeros_initializer()
  )
  w2 = tf.compat.v1.get_variable(
    "w2",
    [HIDDEN, OUT],
    initializer=tf.compat.v1.random_normal_initializer(seed=2),
  )
  pre1 = tf.matmul(x, w1) + b1
  lc.register_fully_connected((w1, b1), x, pre1)
  h = tf.tanh(pre1)
  out = tf.matmul(h, w2)
  lc.register_fully_connected(w2, h, out, approx="diagonal")
  if head == "normal":
    lc.register_normal_predictive_distribution(out, var=0.5, targets=y, seed=3)
    loss = tf.reduce_mean(tf.square(out - y))
  else:
    lc.register_categorical_predictive_distribution(out, seed=3)
    labels = tf.argmax(y, axis=1)
    loss = tf.reduce_mean(
      tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=out)
    )
  loss = loss * loss_scale
  momentum = 0.0 if momentum_type == "qmodel" else 0.9
  opt = optimizer.KfacOptimizer(
    0.1,
    0.9,
    damping,
    lc,
    momentum=momentum,
    momentum_type=momentum_type,
    skip_nonfinite_updates=skip,
  )
  train_op = opt.minimize(loss)
  return dict(
    x=x, y=y, scale=loss_scale, loss=loss, train=train_op, opt=opt, lc=lc
  )


def _values(sess):
  variables = tf.compat.v1.global_variables()
  return dict(zip([v.op.name for v in variables], sess.run(variables)))


def _step(sess, m, feed):
  # One op per run: the diagonal block's step reads the covariance that the
  # covariance update writes, so running both in one `run` would race.
  sess.run(m["train"], feed)
  sess.run(m["opt"].cov_update_op, feed)
  sess.run(m["opt"].inv_update_op, feed)


def _counts(sess, m):
  return {
    k: int(sess.run(v)) for k, v in m["opt"].nonfinite_skip_counters.items()
  }


class FiniteDataTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("regular", "regular", IN),
    ("adam", "adam", IN),
    ("qmodel", "qmodel", IN),
    ("regular_wide_cond_guards", "regular", 300),
    ("regular_blocked_inverse", "regular", 1100),
  )
  def test_bit_identical_to_unguarded_with_same_names(
    self, momentum_type, width
  ):
    results = {}
    for skip in (True, False):
      with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        m = _build(skip=skip, momentum_type=momentum_type, width=width)
        sess.run(tf.compat.v1.global_variables_initializer())
        for seed in range(3):
          xb, yb = _data(seed, width)
          _step(sess, m, {m["x"]: xb, m["y"]: yb})
        results[skip] = _values(sess)
        if skip:
          self.assertEqual(
            _counts(sess, m), {"covariance": 0, "inverse": 0, "parameter": 0}
          )
          local = {v.op.name for v in tf.compat.v1.local_variables()}
          self.assertLen(local, 3)
          self.assertFalse(local & set(results[skip]))
    self.assertEqual(sorted(results[True]), sorted(results[False]))
    for name, value in results[False].items():
      np.testing.assert_array_equal(results[True][name], value, err_msg=name)


class BadBatchTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("nan_input", "x", np.nan, 3, IN),
    ("inf_input", "x", np.inf, 1, IN),
    ("nan_label", "y", np.nan, 0, IN),
    ("inf_label", "y", -np.inf, 0, IN),
    ("nan_loss", "scale", np.nan, 0, IN),
    ("nan_input_wide_cond_guards", "x", np.nan, 3, 300),
    ("inf_input_wide_cond_guards", "x", np.inf, 1, 300),
  )
  def test_bad_batch_changes_nothing_then_training_resumes(
    self, where, bad, bad_statistics, width
  ):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      m = _build(width=width)
      sess.run(tf.compat.v1.global_variables_initializer())
      for seed in range(2):
        xb, yb = _data(seed, width)
        _step(sess, m, {m["x"]: xb, m["y"]: yb})
      before = _values(sess)
      xb, yb = _data(5, width)
      feed = {m["x"]: xb, m["y"]: yb}
      if where == "scale":
        feed[m["scale"]] = bad
      else:
        feed[m[where]][0, 1] = bad
      _step(sess, m, feed)
      after_bad = _values(sess)
      counts = _counts(sess, m)
      for seed in range(6, 9):
        xb, yb = _data(seed, width)
        _step(sess, m, {m["x"]: xb, m["y"]: yb})
      after_good = _values(sess)

    self.assertEqual(counts["parameter"], 1)
    for name in ("w1", "b1", "w2", "w1/KFAC", "b1/KFAC", "w2/KFAC"):
      np.testing.assert_array_equal(after_bad[name], before[name], err_msg=name)
    cov_names = [n for n in before if n.endswith("/cov")]
    inv_names = [n for n in before if "/inv_damp" in n]
    self.assertLen(cov_names, 3)
    self.assertLen(inv_names, 2)
    self.assertEqual(counts["covariance"], bad_statistics)
    if bad_statistics == 3:
      # NaN inputs make every statistic non-finite: the first layer's input
      # factor, and through the sampled gradients every other factor.
      for name in cov_names:
        np.testing.assert_array_equal(
          after_bad[name], before[name], err_msg=name
        )
    elif bad_statistics == 1:
      # An Inf input: only the first layer's input statistic (tanh bounds
      # the rest).
      name = "LayerCollection/ff_fckron/x_True/cov"
      np.testing.assert_array_equal(after_bad[name], before[name])
    # Labels and the loss scale do not enter the sampled statistics.
    self.assertEqual(counts["inverse"], 0)
    # Training goes on: everything finite and moving.
    for name, value in after_good.items():
      self.assertTrue(np.all(np.isfinite(value)), name)
      self.assertFalse(np.array_equal(value, after_bad[name]), name)

  def test_nan_logits_sampling_does_not_raise(self):
    # The categorical head samples its own targets from the logits; with
    # NaN logits the draws used to be out of range and the sampled loss
    # raised "Received a label value of 2 which is outside the valid range".
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      m = _build(head="categorical")
      sess.run(tf.compat.v1.global_variables_initializer())
      xb, yb = _data(0)
      _step(sess, m, {m["x"]: xb, m["y"]: yb})
      before = _values(sess)
      xb[:, :] = np.nan
      _step(sess, m, {m["x"]: xb, m["y"]: yb})
      after = _values(sess)
      counts = _counts(sess, m)
    self.assertEqual(counts["covariance"], 3)
    self.assertEqual(counts["parameter"], 1)
    for name, value in before.items():
      np.testing.assert_array_equal(after[name], value, err_msg=name)

  @parameterized.named_parameters(
    ("small", IN), ("wide_cond_guards", 300), ("blocked_inverse", 1100)
  )
  def test_failed_cholesky_keeps_previous_inverse(self, width):
    # A covariance that is singular to float32 precision with a damping far
    # below its rounding: the Cholesky factorisation of cov + d·I fails and
    # yields NaNs; the inverse keeps its previous value.
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      m = _build(damping=1e-30, width=width)
      sess.run(tf.compat.v1.global_variables_initializer())
      xb, yb = _data(0, width)
      _step(sess, m, {m["x"]: xb, m["y"]: yb})
      before = _values(sess)
      a_cov = [
        v
        for v in tf.compat.v1.global_variables()
        if v.op.name.endswith("x_True/cov")
      ][0]
      singular = np.ones([width + 1, width + 1], np.float32)
      sess.run(a_cov.assign(singular))
      sess.run(m["opt"].inv_update_op)
      after = _values(sess)
      counts = _counts(sess, m)
    inverse = [n for n in before if n.startswith("ff_fckron/x_True/inv_damp")]
    self.assertLen(inverse, 1)
    self.assertEqual(counts["inverse"], 1)
    np.testing.assert_array_equal(after[inverse[0]], before[inverse[0]])
    self.assertTrue(np.all(np.isfinite(after[inverse[0]])))

  def test_counters_are_local_and_not_saved(self):
    with tf.Graph().as_default():
      m = _build()
      counters = m["opt"].nonfinite_skip_counters
      self.assertEqual(sorted(counters), ["covariance", "inverse", "parameter"])
      global_names = {v.op.name for v in tf.compat.v1.global_variables()}
      for variable in counters.values():
        self.assertNotIn(variable.op.name, global_names)
        self.assertIn(variable, tf.compat.v1.local_variables())
      saver = tf.compat.v1.train.Saver()
      saved = {v.op.name for v in saver._var_list}
      self.assertEqual(saved, global_names)

  def test_switch_off_gives_the_2017_behaviour(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      m = _build(skip=False)
      self.assertEqual(m["opt"].nonfinite_skip_counters, {})
      self.assertEqual(tf.compat.v1.local_variables(), [])
      sess.run(tf.compat.v1.global_variables_initializer())
      xb, yb = _data(0)
      xb[0, 0] = np.nan
      _step(sess, m, {m["x"]: xb, m["y"]: yb})
      after = _values(sess)
    self.assertTrue(np.all(np.isnan(after["w1"])))


class FactorStatisticGuardTest(parameterized.TestCase):
  """The covariance guard of one factor, against a NumPy oracle.

  A `FullyConnectedKroneckerFactor` of 256 columns or more first bounds its
  rows (`_statistic_is_finite`); the update must still be skipped exactly
  when the new statistic is not finite, as with the full check of narrow
  factors.
  """

  @parameterized.named_parameters(
    (
      "{}_{}".format(name, width),
      width,
      value,
    )
    for width in (4, 300)
    for name, value in (
      ("ordinary", 1.0),
      ("large_finite", 1e18),
      ("overflowing", 1e25),
      ("nan", np.nan),
      ("inf", np.inf),
    )
  )
  def test_skip_exactly_when_statistic_not_finite(self, width, value):
    rng = np.random.RandomState(0)
    rows = rng.uniform(0.5, 1.0, [BATCH, width]).astype(np.float32)
    rows[1, 2] = value
    # Oracle: the statistic with a ones column, in float64, then float32.
    homog = np.hstack([rows.astype(np.float64), np.ones([BATCH, 1])])
    with np.errstate(all="ignore"):
      statistic = (homog.T.dot(homog) / BATCH).astype(np.float32)
    expect_skip = not np.all(np.isfinite(statistic))
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.compat.v1.placeholder(tf.float32, [None, width])
      factor = ff.FullyConnectedKroneckerFactor((x,), has_bias=True)
      counter = _nonfinite.SkipCounter("skips", "updates")
      update = factor._make_guarded_covariance_update_op(0.5, counter)
      sess.run(tf.compat.v1.global_variables_initializer())
      before = sess.run(factor.get_cov())
      sess.run(update, {x: rows})
      after = sess.run(factor.get_cov())
      skips = sess.run(counter.variable)
    self.assertEqual(skips, int(expect_skip))
    if expect_skip:
      np.testing.assert_array_equal(after, before)
    else:
      expected = 0.5 * before + 0.5 * statistic.astype(np.float64)
      np.testing.assert_allclose(after, expected, rtol=1e-5)


class GuardedUpdatesTest(parameterized.TestCase):
  """`_nonfinite.guarded_updates`: its `check` and its guard scopes."""

  @parameterized.named_parameters(
    ("{}_{}_{}".format(scope, kind, verdict), one_scope, whole, passes)
    for scope, one_scope in (("scope_per_value", False), ("one_scope", True))
    for kind, whole in (("kept_value", False), ("whole", True))
    for verdict, passes in (("passes", True), ("fails", False))
  )
  def test_check_decides_every_update(self, one_scope, whole, passes):
    # Finite new values; the given check alone decides: both variables take
    # their new values, or both keep theirs and one skip is counted.
    old = [np.array([1.0, 2.0], np.float32), np.array([3.0], np.float32)]
    new = [np.array([5.0, 6.0], np.float32), np.array([7.0], np.float32)]
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      counter = _nonfinite.SkipCounter("skips", "updates")
      variables = [tf.compat.v1.Variable(value) for value in old]
      updates = _nonfinite.guarded_updates(
        [(v, tf.constant(x)) for v, x in zip(variables, new)],
        counter,
        _nonfinite.assign,
        whole=whole,
        check=lambda values: tf.constant(passes),
        one_scope=one_scope,
      )
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(updates)
      values = sess.run(variables)
      skips = sess.run(counter.variable)
    expected = new if passes else old
    for value, want in zip(values, expected):
      np.testing.assert_array_equal(value, want)
    self.assertEqual(skips, 0 if passes else 1)

  @parameterized.named_parameters(
    ("scope_per_value", False, False, 3),
    ("one_scope", True, False, 1),
    ("whole_scope_per_value", False, True, 3),
    ("whole_one_scope", True, True, 1),
  )
  def test_number_of_guard_scopes(self, one_scope, whole, opened):
    # The counter opens `kfac_nonfinite_guard`; the two updates open
    # `opened` more, so the next one is `kfac_nonfinite_guard_<opened + 1>`.
    with tf.Graph().as_default():
      counter = _nonfinite.SkipCounter("skips", "updates")
      variables = [tf.compat.v1.Variable(np.zeros(2, np.float32))] * 2
      _nonfinite.guarded_updates(
        [(v, tf.ones(2)) for v in variables],
        counter,
        _nonfinite.assign,
        whole=whole,
        one_scope=one_scope,
      )
      with tf.name_scope(_nonfinite.GUARD_SCOPE) as next_scope:
        pass
    self.assertEqual(next_scope, "kfac_nonfinite_guard_{}/".format(opened + 1))
