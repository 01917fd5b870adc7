"""Non-finite data in releases 1.8, 1.9 and 1.10 (the deferred estimators).

The guards of `kfac._nonfinite` in the deferred life cycle: covariance
updates built by the estimator's thunks keep the covariances (and, in 1.9+,
their zero-debiasing state) when a statistic is not finite, inverse,
matrix-power and Cholesky updates keep their previous values when the
result is not finite, and the training step keeps the weights and slots.
Every path that builds the update ops is covered: the thunks of
`make_vars_and_create_op_thunks`, round-robin placement, two towers, 1.8's
`make_ops_and_vars` and its lazy convenience properties, the estimator used
alone, multi-use (series) and embedding layers. After the bad batch, good
batches give exactly what a run without the bad batch gives. With finite
data the guarded graph computes bit-identical numbers and has the same
global variables as the unguarded one (`skip_nonfinite_updates=False`).
"""

import warnings

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
from test_nonfinite import _counts
from test_nonfinite import _values
from test_releases import _ns

B, IN, HIDDEN, OUT = 6, 3, 4, 2
_PACKAGES = ("kfac.r1_8", "kfac.r1_9", "kfac.r1_10")
# The optimizer's settings (besides the switch and the estimation mode).
_SETTINGS = dict(
  learning_rate=0.1, cov_ema_decay=0.9, damping=0.05, momentum=0.9
)


def _named_packages(*cases):
  """Named cases `(<release>[_<label>], package, *params)` per release.

  Args:
    *cases: Tuples `(label, *params)`; none gives one case per release.
  """
  return [
    ("_".join((package.split(".")[1],) + case[:1]), package) + case[1:]
    for package in _PACKAGES
    for case in cases or ((),)
  ]


def _data(seed):
  rng = np.random.RandomState(seed)
  return (
    rng.randn(B, IN).astype(np.float32),
    rng.randn(B, OUT).astype(np.float32),
  )


def _initial(name, shape):
  seed = sum(map(ord, name))
  return np.random.RandomState(seed).randn(*shape).astype(np.float32)


def _two_layers(ns, lc, x, y):
  """A tanh Kronecker layer and a diagonal layer; returns the output."""
  w1 = tf.compat.v1.get_variable("w1", initializer=_initial("w1", (IN, HIDDEN)))
  b1 = tf.compat.v1.get_variable("b1", initializer=np.zeros(HIDDEN, np.float32))
  w2 = tf.compat.v1.get_variable(
    "w2", initializer=_initial("w2", (HIDDEN, OUT))
  )
  pre = tf.matmul(x, w1) + b1
  lc.register_fully_connected((w1, b1), x, pre)
  hidden = tf.tanh(pre)
  out = tf.matmul(hidden, w2)
  lc.register_fully_connected(w2, hidden, out, approx="diagonal")
  return out


def _build(package, skip=True, path="thunks", mode="exact"):
  """The model, its optimizer and its update ops, in the current graph.

  Args:
    package: The release namespace.
    skip: `skip_nonfinite_updates`.
    path: How the ops are made: "thunks" (`make_vars_and_create_op_thunks`),
      "round_robin" (placement on /cpu:0), "towers" (two towers, their
      statistics on their devices), "make_ops_and_vars" and "lazy" (1.8).
    mode: The estimation mode ("exact" has no random sampling).

  Returns:
    A dict of the placeholders, the ops and the optimizer.
  """
  ns = _ns(package)
  x = tf.compat.v1.placeholder(tf.float32, [B, IN], name="x")
  y = tf.compat.v1.placeholder(tf.float32, [B, OUT], name="y")
  scale = tf.compat.v1.placeholder_with_default(1.0, [], name="scale")
  lc = ns.layer_collection.LayerCollection()
  if path == "towers":
    half = B // 2
    outs = []
    for tower in range(2):
      with tf.name_scope("tower%d" % tower):
        rows = slice(tower * half, (tower + 1) * half)
        with tf.compat.v1.variable_scope(
          tf.compat.v1.get_variable_scope(), reuse=tower > 0
        ):
          outs.append(_two_layers(ns, lc, x[rows], y[rows]))
    out = tf.concat(outs, 0)
    for tower in range(2):
      lc.register_normal_predictive_distribution(
        outs[tower],
        var=0.5,
        seed=tower,
        targets=y[tower * half : (tower + 1) * half],
      )
  else:
    out = _two_layers(ns, lc, x, y)
    lc.register_normal_predictive_distribution(out, var=0.5, seed=3, targets=y)
  loss = tf.reduce_mean(tf.square(out - y)) * scale
  kwargs = {}
  if path == "round_robin":
    kwargs = dict(
      placement_strategy="round_robin",
      cov_devices=["/cpu:0"],
      inv_devices=["/cpu:0"],
    )
  kwargs.update(_SETTINGS, estimation_mode=mode, skip_nonfinite_updates=skip)
  opt = ns.optimizer.KfacOptimizer(layer_collection=lc, **kwargs)
  if path == "make_ops_and_vars":
    _, cov_op, _, inv_op, _, _ = opt.make_ops_and_vars()
    train = opt.minimize(loss)
  elif path == "lazy":
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", DeprecationWarning)
      train = opt.minimize(loss)
      cov_op, inv_op = opt.cov_update_op, opt.inv_update_op
  else:
    cov_thunks, inv_thunks = opt.make_vars_and_create_op_thunks()
    cov_op = tf.group(*[thunk() for thunk in cov_thunks])
    inv_op = tf.group(*[thunk() for thunk in inv_thunks])
    train = opt.minimize(loss)
  return dict(
    x=x, y=y, scale=scale, cov=cov_op, inv=inv_op, train=train, opt=opt
  )


def _step(sess, m, feed, ops=("cov", "inv", "train")):
  # The deferred releases' order: statistics, inverses, then the step; one
  # op per run (the step reads what the updates write).
  for op in ops:
    sess.run(m[op], feed)


def _feed(m, seed):
  xb, yb = _data(seed)
  return {m["x"]: xb, m["y"]: yb}


def _assert_same(got, expected, names=None):
  """Bit-identical values of `names` (default: all of `expected`)."""
  for name in sorted(expected) if names is None else names:
    np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


# Every release with the thunks, with and without placement; towers; 1.8's
# own ways of making the ops.
_FINITE_CASES = _named_packages(
  ("thunks", "thunks"), ("round_robin", "round_robin")
) + [
  ("{}_{}".format(package.split(".")[1], path), package, path)
  for package, path in (
    ("kfac.r1_8", "towers"),
    ("kfac.r1_9", "towers"),
    ("kfac.r1_8", "make_ops_and_vars"),
    ("kfac.r1_8", "lazy"),
  )
]


class FiniteDataTest(parameterized.TestCase):
  @parameterized.named_parameters(*_FINITE_CASES)
  def test_bit_identical_to_unguarded_with_same_names(self, package, path):
    results = {}
    for skip in (True, False):
      with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        tf.compat.v1.set_random_seed(0)
        m = _build(package, skip=skip, path=path, mode="gradients")
        sess.run(tf.compat.v1.global_variables_initializer())
        for seed in range(3):
          _step(sess, m, _feed(m, seed))
        results[skip] = _values(sess)
        counters = m["opt"].nonfinite_skip_counters
        # The counters are the only local variables, and a default Saver
        # saves exactly the global ones.
        self.assertCountEqual(
          tf.compat.v1.local_variables(), list(counters.values())
        )
        saved = tf.compat.v1.train.Saver()._var_list
        self.assertEqual({v.op.name for v in saved}, set(results[skip]))
        if skip:
          self.assertEqual(
            sess.run(counters),
            {"covariance": 0, "inverse": 0, "parameter": 0},
          )
        else:
          self.assertEqual(counters, {})
    self.assertEqual(sorted(results[True]), sorted(results[False]))
    _assert_same(results[True], results[False])


class BadBatchTest(parameterized.TestCase):
  """One bad batch between good ones, against a run without it.

  In "exact" mode the statistics do not sample, so the run that leaves out
  what the guards skip is the oracle, bit for bit: a non-finite input skips
  everything (every statistic reads it), a non-finite label or loss only
  the step (the exact statistics read neither).
  """

  @parameterized.named_parameters(
    *_named_packages(
      ("nan_input", "x", np.nan, 3, ()),
      ("inf_input", "x", np.inf, 1, None),
      ("nan_label", "y", np.nan, 0, ("cov", "inv")),
      ("inf_label", "y", -np.inf, 0, ("cov", "inv")),
      ("nan_loss", "scale", np.nan, 0, ("cov", "inv")),
    )
  )
  def test_bad_batch_changes_nothing_then_training_resumes(
    self, package, where, bad, bad_statistics, oracle_ops
  ):
    """`oracle_ops`: what a run without the bad batch does with it.

    None for an Inf input: only the first layer's input statistic is
    skipped (tanh bounds the rest), which no clean run reproduces; the
    skipped factor is checked alone.
    """
    xb, yb = _data(5)
    values = {"x": xb, "y": yb, "scale": np.float32(1.0)}
    if where == "scale":
      values["scale"] = bad
    else:
      values[where][0, 1] = bad
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      m = _build(package)
      sess.run(tf.compat.v1.global_variables_initializer())
      for seed in range(2):
        _step(sess, m, _feed(m, seed))
      before = _values(sess)
      _step(sess, m, {m[k]: v for k, v in values.items()})
      after_bad = _values(sess)
      counts = _counts(sess, m)
      for seed in range(6, 8):
        _step(sess, m, _feed(m, seed))
      after_good = _values(sess)
    if oracle_ops is not None:
      with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        m = _build(package, skip=False)
        sess.run(tf.compat.v1.global_variables_initializer())
        for seed in range(2):
          _step(sess, m, _feed(m, seed))
        _step(sess, m, {m[k]: v for k, v in values.items()}, oracle_ops)
        for seed in range(6, 8):
          _step(sess, m, _feed(m, seed))
        oracle = _values(sess)

    self.assertEqual(
      counts, {"covariance": bad_statistics, "inverse": 0, "parameter": 1}
    )
    # Weights and velocities as they were.
    _assert_same(
      after_bad, before, [n for n in before if "FisherEstimator" not in n]
    )
    covariances = [n for n in before if n.endswith("/cov")]
    self.assertLen(covariances, 3)
    if oracle_ops == ():
      _assert_same(after_bad, before)
    if oracle_ops is None:
      skipped = [n for n in covariances if "ff_fckron_x_True" in n]
      self.assertLen(skipped, 1)
      _assert_same(after_bad, before, skipped)
    else:
      _assert_same(after_good, oracle)
    for name, value in after_good.items():
      self.assertTrue(np.all(np.isfinite(value)), name)
      if not name.endswith("local_step"):
        self.assertFalse(np.array_equal(value, after_bad[name]), name)

  @parameterized.named_parameters(*_named_packages())
  def test_empirical_nan_label_skips_the_gradient_statistics(self, package):
    # Empirical statistics read the labels: a NaN label reaches the output
    # gradients of both layers (the Kronecker output factor and the
    # diagonal factor); the first layer's input statistic is still folded
    # in.
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      m = _build(package, mode="empirical")
      sess.run(tf.compat.v1.global_variables_initializer())
      _step(sess, m, _feed(m, 0))
      before = _values(sess)
      feed = _feed(m, 1)
      feed[m["y"]][2, 0] = np.nan
      _step(sess, m, feed)
      after = _values(sess)
      counts = _counts(sess, m)
    self.assertEqual(counts, {"covariance": 2, "inverse": 0, "parameter": 1})
    covariances = sorted(n for n in before if n.endswith("/cov"))
    changed = [
      n for n in covariances if not np.array_equal(after[n], before[n])
    ]
    self.assertEqual([n for n in changed if "ff_fckron_x_True" in n], changed)
    self.assertLen(changed, 1)
    for value in after.values():
      self.assertTrue(np.all(np.isfinite(value)))


def _np_statistic(xb):
  """The input statistic of a layer with bias: `[x, 1]ᵀ[x, 1] / B`."""
  rows = np.hstack([xb.astype(np.float64), np.ones([len(xb), 1])])
  total = np.zeros([rows.shape[1]] * 2)
  for row in rows:
    total += np.outer(row, row)
  return total / len(rows)


class EstimatorGuardTest(parameterized.TestCase):
  """The estimator used alone: Cholesky failures, multi-use, embeddings."""

  @parameterized.named_parameters(*_named_packages())
  def test_failed_cholesky_keeps_previous_values(self, package):
    ns = _ns(package)
    cholesky = package != "kfac.r1_8"
    xb, _ = _data(0)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.constant(xb, name="x")
      w = tf.compat.v1.get_variable("w", initializer=_initial("w", (IN, OUT)))
      b = tf.compat.v1.get_variable("b", initializer=np.zeros(OUT, np.float32))
      out = tf.matmul(x, w) + b
      lc = ns.layer_collection.LayerCollection()
      lc.register_fully_connected((w, b), x, out)
      lc.register_normal_predictive_distribution(out, var=0.5)
      estimator = ns.estimator.make_fisher_estimator(
        variables=[w, b],
        cov_ema_decay=0.0,
        damping=1e-30,
        layer_collection=lc,
        exps=(-1,),
        estimation_mode="exact",
        **(
          dict(compute_cholesky=True, compute_cholesky_inverse=True)
          if cholesky
          else {}
        ),
      )
      cov_thunks, inv_thunks = estimator.make_vars_and_create_op_thunks()
      cov_op = tf.group(*[thunk() for thunk in cov_thunks])
      inv_op = tf.group(*[thunk() for thunk in inv_thunks])
      input_factor = next(
        f for f in lc.get_factors() if f.name == "ff_fckron_x_True"
      )
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(cov_op)
      # Zero-debiased (1.9+) with decay 0: the raw statistic.
      np.testing.assert_allclose(
        sess.run(input_factor.get_cov()), _np_statistic(xb), rtol=1e-5
      )
      sess.run(inv_op)
      before = _values(sess)
      # Singular to float32 precision, with a damping far below its
      # rounding: the Cholesky factorisation of cov + d·I fails (NaNs).
      sess.run(input_factor._cov.assign(np.ones([IN + 1, IN + 1])))
      sess.run(inv_op)
      after = _values(sess)
      skips = sess.run(estimator.inv_skip_counter.variable)
      self.assertIn(
        estimator.inv_skip_counter.variable, tf.compat.v1.local_variables()
      )
    kept = [
      n
      for n in before
      if n.split("/")[-2:-1] == ["ff_fckron_x_True"] and not n.endswith("/cov")
    ]
    self.assertLen(kept, 3 if cholesky else 1)
    self.assertEqual(skips, len(kept))
    _assert_same(after, before, kept)
    for name in kept:
      self.assertTrue(np.all(np.isfinite(after[name])), name)
      # The previous values came from the finite statistic.
      self.assertFalse(np.array_equal(after[name], np.eye(IN + 1)), name)

  @parameterized.named_parameters(*_named_packages())
  def test_multi_use_and_embedding_statistics(self, package):
    # Two uses of one dense layer (series approximation: `cov` and the lag-1
    # moment `cov_dt1`) and an embedding, added and squashed: a NaN in the
    # first use's inputs makes every statistic but the embedding ids'
    # non-finite. Each factor counts one skip and keeps all its moving
    # averages.
    ns = _ns(package)
    rng = np.random.RandomState(7)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      xs = [
        tf.compat.v1.placeholder(tf.float32, [B, IN], name="x%d" % u)
        for u in range(2)
      ]
      ids = tf.constant(rng.randint(0, 5, B), name="ids")
      w = tf.compat.v1.get_variable("w", initializer=_initial("w", (IN, OUT)))
      b = tf.compat.v1.get_variable("b", initializer=np.zeros(OUT, np.float32))
      table = tf.compat.v1.get_variable(
        "table", initializer=_initial("table", (5, OUT))
      )
      ys = [tf.matmul(x, w) + b for x in xs]
      embedded = tf.gather(table, ids)
      lc = ns.layer_collection.LayerCollection()
      lc.register_fully_connected_multi((w, b), xs, ys, approx="kron_series_2")
      lc.register_embedding_multi(table, ids, embedded, num_uses=1)
      lc.register_normal_predictive_distribution(
        tf.tanh(ys[0] + ys[1] + embedded), var=0.5
      )
      estimator = ns.estimator.make_fisher_estimator(
        variables=[w, b, table],
        cov_ema_decay=0.5,
        damping=0.1,
        layer_collection=lc,
        exps=(-1,),
        estimation_mode="exact",
      )
      cov_thunks, inv_thunks = estimator.make_vars_and_create_op_thunks()
      cov_op = tf.group(*[thunk() for thunk in cov_thunks])
      inv_op = tf.group(*[thunk() for thunk in inv_thunks])
      good = {x: rng.randn(B, IN).astype(np.float32) for x in xs}
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(cov_op, good)
      sess.run(inv_op)
      before = _values(sess)
      bad = {x: value.copy() for x, value in good.items()}
      bad[xs[0]][1, 2] = np.nan
      sess.run(cov_op, bad)
      sess.run(inv_op)
      after = _values(sess)
      counts = (
        sess.run(estimator.cov_skip_counter.variable),
        sess.run(estimator.inv_skip_counter.variable),
      )
      sess.run(cov_op, good)
      sess.run(inv_op)
      after_good = _values(sess)
    moments = [n for n in before if n.endswith(("/cov", "/cov_dt1"))]
    dt1 = [n for n in moments if n.endswith("/cov_dt1")]
    self.assertLen(dt1, 2)
    ids_factor = [n for n in moments if "embedding" in n and "ids" in n]
    self.assertLen(ids_factor, 1)
    kept = [n for n in moments if n not in ids_factor]
    self.assertLen(kept, 5)
    # Both series factors and the embedding's output factor.
    self.assertEqual(counts, (3, 0))
    _assert_same(after, before, kept)
    for name, value in after_good.items():
      self.assertTrue(np.all(np.isfinite(value)), name)
    for name in kept:
      self.assertFalse(np.array_equal(after_good[name], after[name]), name)
