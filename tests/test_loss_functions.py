"""Tests for kfac.loss_functions against NumPy oracles and legacy values."""

import collections
import contextlib
import math

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

import kfac.loss_functions as lf


# ---------------------------------------------------------------------------
# NumPy oracles, written independently of the code under test.
# ---------------------------------------------------------------------------


def np_softmax(logits):
  out = np.zeros_like(logits)
  for b in range(logits.shape[0]):
    e = np.exp(logits[b] - np.max(logits[b]))
    out[b] = e / np.sum(e)
  return out


def np_sigmoid(logits):
  return 1.0 / (1.0 + np.exp(-logits))


def np_categorical_nll(logits, targets):
  total = 0.0
  for b in range(logits.shape[0]):
    log_norm = np.log(np.sum(np.exp(logits[b])))
    total -= logits[b, targets[b]] - log_norm
  return total


def np_bernoulli_nll(logits, targets):
  p = np_sigmoid(logits)
  total = 0.0
  for idx in np.ndindex(*logits.shape):
    t = targets[idx]
    total -= t * np.log(p[idx]) + (1 - t) * np.log(1 - p[idx])
  return total


def np_normal_nll(mean, var, targets):
  var = np.broadcast_to(var, mean.shape)
  total = 0.0
  for idx in np.ndindex(*mean.shape):
    total += 0.5 * np.log(2 * np.pi * var[idx])
    total += (targets[idx] - mean[idx]) ** 2 / (2 * var[idx])
  return total


def np_categorical_fisher_row(p_row):
  """F = diag(p) - p p^T, also checked as E_y[(e_y - p)(e_y - p)^T]."""
  fisher = np.diag(p_row) - np.outer(p_row, p_row)
  expected_score_outer = np.zeros_like(fisher)
  for y in range(len(p_row)):
    score = -p_row.copy()
    score[y] += 1.0
    expected_score_outer += p_row[y] * np.outer(score, score)
  np.testing.assert_allclose(fisher, expected_score_outer, atol=1e-12)
  return fisher


def np_categorical_factor_row(p_row):
  q = np.sqrt(p_row)
  return np.diag(q) - np.outer(p_row, q)


def np_bernoulli_fisher_row(p_row):
  return np.diag(p_row * (1 - p_row))


def np_normal_mean_fisher_row(var_row):
  return np.diag(1.0 / var_row)


def np_normal_mean_variance_fisher_row(var_row):
  """Fisher of N(mu, v) w.r.t. (mu_1..mu_n, v_1..v_n), by quadrature.

  E[s s^T] with the scores s_mu = (x - mu)/v, s_v = -1/(2v) + (x - mu)^2/(2v^2)
  under x = mu + sqrt(v) t, t ~ N(0, 1) (Gauss-Hermite, exact here).
  """
  nodes, weights = np.polynomial.hermite_e.hermegauss(20)
  weights = weights / np.sqrt(2 * np.pi)
  n = len(var_row)
  fisher = np.zeros((2 * n, 2 * n))
  for j in range(n):
    v = var_row[j]
    for t, w in zip(nodes, weights):
      dx = np.sqrt(v) * t
      s_mu = dx / v
      s_v = -1.0 / (2 * v) + dx**2 / (2 * v**2)
      fisher[j, j] += w * s_mu * s_mu
      fisher[j, n + j] += w * s_mu * s_v
      fisher[n + j, j] += w * s_v * s_mu
      fisher[n + j, n + j] += w * s_v * s_v
  return fisher


def np_normal_mean_variance_factor_row(var_row):
  return np.diag(
    np.concatenate([1.0 / np.sqrt(var_row), 1.0 / (np.sqrt(2.0) * var_row)])
  )


def np_rowwise(matrices, vectors):
  """Applies one matrix per batch row: out[b] = matrices[b] @ vectors[b]."""
  return np.stack([matrices[b].dot(vectors[b]) for b in range(len(vectors))])


def _session():
  return tf.compat.v1.Session()


# ---------------------------------------------------------------------------
# Case builders for the natural-parameter losses (one explicit Fisher and
# factor per batch row).
# ---------------------------------------------------------------------------


def _assert_close(actual, expected):
  """Float64 agreement to rounding: rtol 1e-10, atol 1e-12."""
  np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)


_NATURAL_KINDS = ("categorical", "bernoulli", "normal", "normal_tensor_var")


def _make_natural_case(kind, batch, dim, rng):
  """Returns (loss, params_np, fisher_rows, factor_rows, targets_np)."""
  if kind == "categorical":
    logits = rng.randn(batch, dim)
    targets = rng.randint(0, dim, size=batch)
    loss = lf.CategoricalLogitsNegativeLogProbLoss(
      tf.constant(logits), targets=tf.constant(targets)
    )
    p = np_softmax(logits)
    fishers = [np_categorical_fisher_row(p[b]) for b in range(batch)]
    factors = [np_categorical_factor_row(p[b]) for b in range(batch)]
    return loss, logits, fishers, factors, targets
  if kind == "bernoulli":
    logits = rng.randn(batch, dim)
    targets = rng.randint(0, 2, size=(batch, dim)).astype(np.float64)
    loss = lf.MultiBernoulliNegativeLogProbLoss(
      tf.constant(logits), targets=tf.constant(targets)
    )
    p = np_sigmoid(logits)
    fishers = [np_bernoulli_fisher_row(p[b]) for b in range(batch)]
    factors = [np.diag(np.sqrt(p[b] * (1 - p[b]))) for b in range(batch)]
    return loss, logits, fishers, factors, targets
  mean = rng.randn(batch, dim)
  targets = rng.randn(batch, dim)
  if kind == "normal":
    var = np.full((batch, dim), 0.7)
    loss = lf.NormalMeanNegativeLogProbLoss(
      tf.constant(mean), var=0.7, targets=tf.constant(targets)
    )
  else:
    var = np.broadcast_to(rng.uniform(0.5, 2.0, size=(1, dim)), (batch, dim))
    loss = lf.NormalMeanNegativeLogProbLoss(
      tf.constant(mean), var=tf.constant(var[:1]), targets=tf.constant(targets)
    )
  fishers = [np_normal_mean_fisher_row(var[b]) for b in range(batch)]
  factors = [np.diag(1.0 / np.sqrt(var[b])) for b in range(batch)]
  return loss, mean, fishers, factors, targets


_NaturalCase = collections.namedtuple(
  "_NaturalCase", ["loss", "params", "fishers", "factors", "targets"]
)


@contextlib.contextmanager
def _natural_case(kind, batch, dim, seed):
  """A fresh graph and session holding one natural-parameter case.

  Yields:
    `(session, rng, case)`: `rng` is the `RandomState(seed)` the case was
    drawn from (for further draws); `case` is a `_NaturalCase` of what
    `_make_natural_case` returns.
  """
  rng = np.random.RandomState(seed)
  with tf.Graph().as_default(), _session() as sess:
    yield sess, rng, _NaturalCase(*_make_natural_case(kind, batch, dim, rng))


def _natural_cases():
  cases = []
  for kind in _NATURAL_KINDS:
    # Batch 1, batch == dim (where a missing keepdims silently reduces along
    # the wrong axis) and batch != dim.
    for batch, dim in ((1, 3), (3, 3), (4, 3)):
      cases.append(
        dict(
          testcase_name="{}_b{}_d{}".format(kind, batch, dim),
          kind=kind,
          batch=batch,
          dim=dim,
        )
      )
  return cases


class InsertSliceInZerosTest(parameterized.TestCase):
  def test_bad_shape(self):
    with tf.Graph().as_default():
      bad = tf.constant([[1, 2], [3, 4]])
      with self.assertRaisesRegex(ValueError, "slice_to_insert"):
        lf.insert_slice_in_zeros(bad, 1, 3, 0)

  def test_3d(self):
    with tf.Graph().as_default(), _session() as sess:
      out = lf.insert_slice_in_zeros(tf.constant([[[1, 2]], [[3, 4]]]), 1, 2, 0)
      self.assertEqual(out.shape.as_list(), [2, 2, 2])
      np.testing.assert_array_equal(
        sess.run(out), [[[1, 2], [0, 0]], [[3, 4], [0, 0]]]
      )

  @parameterized.named_parameters(
    ("dim0_first", 0, 3, 0),
    ("dim0_middle", 0, 3, 1),
    ("dim1_last", 1, 4, 3),
    ("dim2_middle", 2, 5, 2),
    ("dim_negative", -1, 4, 1),
  )
  def test_matches_numpy(self, dim, dim_size, position):
    rng = np.random.RandomState(0)
    shape = [2, 3, 4]
    shape[dim] = 1
    slice_np = rng.randn(*shape)
    expected_shape = list(shape)
    expected_shape[dim] = dim_size
    expected = np.zeros(expected_shape)
    for idx in np.ndindex(*shape):
      target = list(idx)
      target[dim] = position
      expected[tuple(target)] = slice_np[idx]
    with tf.Graph().as_default(), _session() as sess:
      out = lf.insert_slice_in_zeros(
        tf.constant(slice_np), dim, dim_size, position
      )
      self.assertEqual(out.shape.as_list(), expected_shape)
      np.testing.assert_array_equal(sess.run(out), expected)

  def test_unknown_size_along_dim_is_accepted(self):
    with tf.Graph().as_default(), _session() as sess:
      ph = tf.compat.v1.placeholder(tf.float32, [2, None])
      out = lf.insert_slice_in_zeros(ph, 1, 3, 2)
      np.testing.assert_array_equal(
        sess.run(out, {ph: [[1.0], [2.0]]}), [[0, 0, 1], [0, 0, 2]]
      )

  @parameterized.named_parameters(
    ("position_negative", 1, 3, -1, "position"),
    ("position_too_large", 1, 3, 3, "position"),
    ("dim_out_of_range", 2, 3, 0, "dim"),
  )
  def test_bad_arguments(self, dim, dim_size, position, message):
    with tf.Graph().as_default():
      with self.assertRaisesRegex(ValueError, message):
        lf.insert_slice_in_zeros(tf.zeros([2, 1]), dim, dim_size, position)

  def test_unknown_rank(self):
    with tf.Graph().as_default():
      ph = tf.compat.v1.placeholder(tf.float32)
      with self.assertRaisesRegex(ValueError, "rank"):
        lf.insert_slice_in_zeros(ph, 1, 3, 0)


class ClassStructureTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("normal_mean", lf.NormalMeanNegativeLogProbLoss),
    ("categorical", lf.CategoricalLogitsNegativeLogProbLoss),
    ("bernoulli", lf.MultiBernoulliNegativeLogProbLoss),
  )
  def test_natural_params_mro(self, cls):
    self.assertEqual(
      cls.__bases__,
      (lf.DistributionNegativeLogProbLoss, lf.NaturalParamsNegativeLogProbLoss),
    )
    self.assertEqual(
      cls.__mro__[1:],
      (
        lf.DistributionNegativeLogProbLoss,
        lf.NaturalParamsNegativeLogProbLoss,
        lf.NegativeLogProbLoss,
        lf.LossFunction,
        object,
      ),
    )

  def test_mean_variance_bases(self):
    self.assertEqual(
      lf.NormalMeanVarianceNegativeLogProbLoss.__bases__,
      (lf.DistributionNegativeLogProbLoss,),
    )

  @parameterized.named_parameters(
    ("loss_function", lf.LossFunction, ()),
    ("negative_log_prob", lf.NegativeLogProbLoss, ()),
    ("natural_params", lf.NaturalParamsNegativeLogProbLoss, ()),
    ("distribution", lf.DistributionNegativeLogProbLoss, (None,)),
  )
  def test_abstract(self, cls, args):
    with self.assertRaises(TypeError):
      cls(*args)

  def test_inputs_are_the_given_tensors(self):
    with tf.Graph().as_default():
      logits = tf.compat.v1.get_variable("logits", [2, 3])
      loss = lf.CategoricalLogitsNegativeLogProbLoss(logits)
      self.assertIs(loss.inputs, logits)
      self.assertIs(loss.params, logits)
      mean = tf.zeros([2, 3])
      variance = tf.ones([2, 3])
      mv_loss = lf.NormalMeanVarianceNegativeLogProbLoss(mean, variance)
      self.assertIs(mv_loss.inputs[0], mean)
      self.assertIs(mv_loss.inputs[1], variance)


class EvaluateTest(parameterized.TestCase):
  def test_legacy_categorical_specified_targets(self):
    with tf.Graph().as_default(), _session() as sess:
      loss = lf.CategoricalLogitsNegativeLogProbLoss(
        tf.constant([[1.0, 2.0], [3.0, 4.0]]), targets=tf.constant([0, 1])
      )
      self.assertAlmostEqual(sess.run(loss.evaluate()), 1.6265233, places=6)

  def test_legacy_normal_specified_targets(self):
    with tf.Graph().as_default(), _session() as sess:
      loss = lf.NormalMeanNegativeLogProbLoss(
        tf.constant([[1.0, 2.0], [3.0, 4.0]]),
        var=4.0,
        targets=tf.constant([[3.0, 1.0], [4.0, 2.0]]),
      )
      self.assertAlmostEqual(sess.run(loss.evaluate()), 7.6983433, places=5)

  def test_legacy_categorical_evaluate_on_targets(self):
    # loss_functions_test.testEvaluateOnTargets: −Σ log softmax at [2, 1].
    logits = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
    with tf.Graph().as_default(), _session() as sess:
      loss = lf.CategoricalLogitsNegativeLogProbLoss(
        tf.constant(logits), targets=tf.constant([2, 1])
      )
      self.assertAlmostEqual(
        sess.run(loss.evaluate()),
        np_categorical_nll(logits.astype(np.float64), [2, 1]),
        places=5,
      )

  @parameterized.named_parameters(
    ("float32", np.float32), ("float64", np.float64)
  )
  def test_categorical(self, dtype):
    rng = np.random.RandomState(1)
    logits = rng.randn(5, 4).astype(dtype)
    targets = rng.randint(0, 4, size=5)
    with tf.Graph().as_default(), _session() as sess:
      loss = lf.CategoricalLogitsNegativeLogProbLoss(
        tf.constant(logits), targets=tf.constant(targets, dtype=tf.int64)
      )
      value = sess.run(loss.evaluate())
      self.assertEqual(value.dtype, dtype)
      np.testing.assert_allclose(
        value, np_categorical_nll(logits.astype(np.float64), targets), rtol=1e-5
      )

  def test_bernoulli(self):
    rng = np.random.RandomState(2)
    logits = rng.randn(4, 3)
    targets = rng.randint(0, 2, size=(4, 3))
    with tf.Graph().as_default(), _session() as sess:
      # Integer targets are cast to the logits' dtype.
      loss = lf.MultiBernoulliNegativeLogProbLoss(
        tf.constant(logits), targets=tf.constant(targets, dtype=tf.int32)
      )
      np.testing.assert_allclose(
        sess.run(loss.evaluate()), np_bernoulli_nll(logits, targets), rtol=1e-10
      )

  @parameterized.named_parameters(
    ("default_var", None),
    ("python_var", 2.5),
    ("tensor_var", np.array([[0.5, 1.5, 3.0]])),
  )
  def test_normal_mean(self, var):
    rng = np.random.RandomState(3)
    mean = rng.randn(4, 3)
    targets = rng.randn(4, 3)
    with tf.Graph().as_default(), _session() as sess:
      if var is None:
        loss = lf.NormalMeanNegativeLogProbLoss(
          tf.constant(mean), targets=tf.constant(targets)
        )
        var = 0.5
      else:
        var_arg = tf.constant(var) if isinstance(var, np.ndarray) else var
        loss = lf.NormalMeanNegativeLogProbLoss(
          tf.constant(mean), var=var_arg, targets=tf.constant(targets)
        )
      np.testing.assert_allclose(
        sess.run(loss.evaluate()), np_normal_nll(mean, var, targets), rtol=1e-10
      )

  def test_normal_mean_variance(self):
    rng = np.random.RandomState(4)
    mean = rng.randn(4, 3)
    variance = rng.uniform(0.2, 3.0, size=(4, 3))
    targets = rng.randn(4, 3)
    with tf.Graph().as_default(), _session() as sess:
      loss = lf.NormalMeanVarianceNegativeLogProbLoss(
        tf.constant(mean), tf.constant(variance), targets=tf.constant(targets)
      )
      np.testing.assert_allclose(
        sess.run(loss.evaluate()),
        np_normal_nll(mean, variance, targets),
        rtol=1e-10,
      )

  def test_unknown_static_shapes(self):
    rng = np.random.RandomState(5)
    logits = rng.randn(4, 3)
    class_ids = rng.randint(0, 3, size=4)
    bits = rng.randint(0, 2, size=(4, 3)).astype(np.float64)
    with tf.Graph().as_default(), _session() as sess:
      logits_ph = tf.compat.v1.placeholder(tf.float64, [None, 3])
      class_ph = tf.compat.v1.placeholder(tf.int32, [None])
      bits_ph = tf.compat.v1.placeholder(tf.float64, [None, None])
      categorical = lf.CategoricalLogitsNegativeLogProbLoss(
        logits_ph, targets=class_ph
      )
      bernoulli = lf.MultiBernoulliNegativeLogProbLoss(
        logits_ph, targets=bits_ph
      )
      values = sess.run(
        [categorical.evaluate(), bernoulli.evaluate()],
        {logits_ph: logits, class_ph: class_ids, bits_ph: bits},
      )
    np.testing.assert_allclose(
      values[0], np_categorical_nll(logits, class_ids), rtol=1e-10
    )
    np.testing.assert_allclose(
      values[1], np_bernoulli_nll(logits, bits), rtol=1e-10
    )

  def test_no_gradient_into_targets(self):
    with tf.Graph().as_default():
      logits = tf.constant([[0.3, -0.2]])
      targets = tf.constant([[1.0, 0.5]])
      loss = lf.NormalMeanNegativeLogProbLoss(logits, targets=targets)
      grad_targets, grad_mean = tf.compat.v1.gradients(
        loss.evaluate(), [targets, logits]
      )
      self.assertIsNone(grad_targets)
      self.assertIsNotNone(grad_mean)

  def test_unspecified_targets(self):
    with tf.Graph().as_default():
      loss = lf.CategoricalLogitsNegativeLogProbLoss(tf.zeros([2, 3]))
      with self.assertRaisesRegex(
        Exception, "Cannot evaluate losses with unspecified targets."
      ):
        loss.evaluate()


def _make_sampling_loss(kind, batch, seed=None):
  """Builds a loss of each kind with fixed parameters for sampling tests."""
  if kind == "categorical":
    return lf.CategoricalLogitsNegativeLogProbLoss(
      tf.tile(tf.constant([[0.5, -1.0, 1.5]]), [batch, 1]), seed=seed
    )
  if kind == "bernoulli":
    return lf.MultiBernoulliNegativeLogProbLoss(
      tf.tile(tf.constant([[0.3, -1.2]]), [batch, 1]), seed=seed
    )
  if kind == "normal":
    return lf.NormalMeanNegativeLogProbLoss(
      tf.tile(tf.constant([[1.0, -2.0]]), [batch, 1]), var=0.25, seed=seed
    )
  return lf.NormalMeanVarianceNegativeLogProbLoss(
    tf.tile(tf.constant([[1.0, -2.0]]), [batch, 1]),
    tf.tile(tf.constant([[4.0, 0.09]]), [batch, 1]),
    seed=seed,
  )


_SAMPLING_KINDS = ("categorical", "bernoulli", "normal", "mean_variance")


class SampleTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("categorical", "categorical", (2,), np.int32),
    ("bernoulli", "bernoulli", (2, 2), np.int32),
    ("normal", "normal", (2, 2), np.float32),
    ("mean_variance", "mean_variance", (2, 2), np.float32),
  )
  def test_shape_and_dtype(self, kind, shape, dtype):
    with tf.Graph().as_default(), _session() as sess:
      sample = _make_sampling_loss(kind, 2).sample(seed=1)
      self.assertEqual(tuple(sample.shape.as_list()), shape)
      value = sess.run(sample)
      self.assertEqual(value.shape, shape)
      self.assertEqual(value.dtype, dtype)

  def test_categorical_statistics(self):
    n = 20000
    p = np_softmax(np.array([[0.5, -1.0, 1.5]]))[0]
    with tf.Graph().as_default(), _session() as sess:
      draws = sess.run(_make_sampling_loss("categorical", n).sample(seed=3))
    counts = np.zeros(3)
    for d in draws:
      counts[d] += 1
    tolerance = 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_array_less(np.abs(counts / n - p), tolerance)

  def test_bernoulli_statistics(self):
    n = 20000
    p = np_sigmoid(np.array([0.3, -1.2]))
    with tf.Graph().as_default(), _session() as sess:
      draws = sess.run(_make_sampling_loss("bernoulli", n).sample(seed=4))
    self.assertTrue(np.all((draws == 0) | (draws == 1)))
    np.testing.assert_array_less(
      np.abs(draws.mean(axis=0) - p), 5 * np.sqrt(p * (1 - p) / n)
    )
    np.testing.assert_allclose(draws.var(axis=0), p * (1 - p), rtol=0.05)

  @parameterized.named_parameters(
    ("normal", "normal", [1.0, -2.0], [0.25, 0.25]),
    ("mean_variance", "mean_variance", [1.0, -2.0], [4.0, 0.09]),
  )
  def test_normal_statistics(self, kind, mean, var):
    n = 20000
    mean = np.array(mean)
    var = np.array(var)
    with tf.Graph().as_default(), _session() as sess:
      draws = sess.run(_make_sampling_loss(kind, n).sample(seed=5))
    np.testing.assert_array_less(
      np.abs(draws.mean(axis=0) - mean), 5 * np.sqrt(var / n)
    )
    # Var of the sample variance of a normal is about 2 var^2 / n.
    np.testing.assert_array_less(
      np.abs(draws.var(axis=0) - var), 5 * var * np.sqrt(2.0 / n)
    )

  @parameterized.named_parameters(*[(k, k) for k in _SAMPLING_KINDS])
  def test_same_op_seed_same_draws_in_one_graph(self, kind):
    with tf.Graph().as_default(), _session() as sess:
      first = _make_sampling_loss(kind, 50).sample(seed=200)
      second = _make_sampling_loss(kind, 50).sample(seed=200)
      other = _make_sampling_loss(kind, 50).sample(seed=201)
      first_v, second_v, other_v = sess.run([first, second, other])
    np.testing.assert_array_equal(first_v, second_v)
    self.assertFalse(np.array_equal(first_v, other_v))

  @parameterized.named_parameters(*[(k, k) for k in _SAMPLING_KINDS])
  def test_seeded_sampling_reproducible_across_graphs(self, kind):
    values = []
    for _ in range(2):
      with tf.Graph().as_default(), _session() as sess:
        tf.compat.v1.set_random_seed(11)
        values.append(sess.run(_make_sampling_loss(kind, 20).sample(seed=7)))
    np.testing.assert_array_equal(values[0], values[1])

  @parameterized.named_parameters(
    *[
      ("{}_{}".format(k, "graph_seed" if g else "no_graph_seed"), k, g)
      for k in _SAMPLING_KINDS
      for g in (True, False)
    ]
  )
  def test_two_identical_losses_give_twice_one_sampled_loss(
    self, kind, graph_seed
  ):
    # layer_collection_test: registering the same predictive distribution
    # twice with seed 200 doubles the total sampled loss.
    with tf.Graph().as_default(), _session() as sess:
      if graph_seed:
        tf.compat.v1.set_random_seed(200)
      single = _make_sampling_loss(kind, 2, seed=200).evaluate_on_sample()
      double = (
        _make_sampling_loss(kind, 2, seed=200).evaluate_on_sample()
        + _make_sampling_loss(kind, 2, seed=200).evaluate_on_sample()
      )
      single_v = sess.run(single)
      double_v = sess.run(double)
    self.assertEqual(2 * single_v, double_v)

  @parameterized.named_parameters(*[(k, k) for k in _SAMPLING_KINDS])
  def test_evaluate_on_sample_is_loss_of_the_sample(self, kind):
    with tf.Graph().as_default(), _session() as sess:
      loss = _make_sampling_loss(kind, 6, seed=9)
      sample = loss.sample(seed=9)  # Same op seed: same draws.
      value, drawn = sess.run([loss.evaluate_on_sample(), sample])
      params = sess.run(loss.params)
    if kind == "categorical":
      expected = np_categorical_nll(params.astype(np.float64), drawn)
    elif kind == "bernoulli":
      expected = np_bernoulli_nll(params.astype(np.float64), drawn)
    elif kind == "normal":
      expected = np_normal_nll(params.astype(np.float64), 0.25, drawn)
    else:
      expected = np_normal_nll(
        params[0].astype(np.float64), params[1].astype(np.float64), drawn
      )
    np.testing.assert_allclose(value, expected, rtol=1e-5)

  def test_evaluate_on_sample_explicit_seed_overrides_default(self):
    with tf.Graph().as_default(), _session() as sess:
      loss = _make_sampling_loss("normal", 8, seed=1)
      same = _make_sampling_loss("normal", 8, seed=2)
      a, b = sess.run(
        [loss.evaluate_on_sample(seed=2), same.evaluate_on_sample()]
      )
    self.assertEqual(a, b)


class FisherTest(parameterized.TestCase):
  @parameterized.named_parameters(*_natural_cases())
  def test_multiply_fisher(self, kind, batch, dim):
    with _natural_case(kind, batch, dim, 10) as (sess, rng, case):
      vector = rng.randn(batch, dim)
      result = sess.run(case.loss.multiply_fisher(tf.constant(vector)))
    _assert_close(result, np_rowwise(case.fishers, vector))

  @parameterized.named_parameters(*_natural_cases())
  def test_fisher_factor_and_transpose(self, kind, batch, dim):
    with _natural_case(kind, batch, dim, 11) as (sess, rng, case):
      # The oracle factor is a factor of the oracle Fisher.
      for b in range(batch):
        np.testing.assert_allclose(
          case.factors[b].dot(case.factors[b].T), case.fishers[b], atol=1e-12
        )
      inner = rng.randn(batch, dim)
      vector = rng.randn(batch, dim)
      factor_times, transpose_times, composed, fisher_times = sess.run(
        [
          case.loss.multiply_fisher_factor(tf.constant(inner)),
          case.loss.multiply_fisher_factor_transpose(tf.constant(vector)),
          case.loss.multiply_fisher_factor(
            case.loss.multiply_fisher_factor_transpose(tf.constant(vector))
          ),
          case.loss.multiply_fisher(tf.constant(vector)),
        ]
      )
    _assert_close(factor_times, np_rowwise(case.factors, inner))
    _assert_close(
      transpose_times, np_rowwise([f.T for f in case.factors], vector)
    )
    _assert_close(composed, fisher_times)
    _assert_close(composed, np_rowwise(case.fishers, vector))

  @parameterized.named_parameters(*_natural_cases())
  def test_replicated_one_hot(self, kind, batch, dim):
    with _natural_case(kind, batch, dim, 12) as (sess, rng, case):
      fisher_cols = [
        case.loss.multiply_fisher_factor_replicated_one_hot((i,))
        for i in range(dim)
      ]
      hessian_cols = [
        case.loss.multiply_hessian_factor_replicated_one_hot([i])
        for i in range(dim)
      ]
      fisher_v, hessian_v = sess.run([fisher_cols, hessian_cols])
    for i in range(dim):
      expected = np.stack([case.factors[b][:, i] for b in range(batch)])
      _assert_close(fisher_v[i], expected)
      _assert_close(hessian_v[i], expected)

  @parameterized.named_parameters(*[(k, k) for k in _NATURAL_KINDS])
  def test_inner_shapes(self, kind):
    with _natural_case(kind, 4, 3, 13) as (sess, rng, case):
      self.assertEqual(
        case.loss.fisher_factor_inner_static_shape.as_list(), [4, 3]
      )
      self.assertIsInstance(
        case.loss.hessian_factor_inner_static_shape, tf.TensorShape
      )
      self.assertEqual(
        case.loss.hessian_factor_inner_static_shape.as_list(), [4, 3]
      )
      dynamic = sess.run(
        [
          case.loss.fisher_factor_inner_shape,
          case.loss.hessian_factor_inner_shape,
        ]
      )
    np.testing.assert_array_equal(dynamic[0], case.params.shape)
    np.testing.assert_array_equal(dynamic[1], case.params.shape)

  def test_unknown_batch_size(self):
    with tf.Graph().as_default(), _session() as sess:
      logits = tf.compat.v1.placeholder(tf.float32, [None, 3])
      loss = lf.CategoricalLogitsNegativeLogProbLoss(logits)
      self.assertEqual(
        loss.fisher_factor_inner_static_shape.as_list(), [None, 3]
      )
      column = loss.multiply_fisher_factor_replicated_one_hot((1,))
      value, shape = sess.run(
        [column, loss.fisher_factor_inner_shape], {logits: np.zeros((5, 3))}
      )
    self.assertEqual(value.shape, (5, 3))
    np.testing.assert_array_equal(shape, [5, 3])
    q = np.sqrt(1.0 / 3)
    np.testing.assert_allclose(value[0], [-q / 3, q - q / 3, -q / 3], rtol=1e-6)


class HessianTest(parameterized.TestCase):
  """Natural-parameter losses: H (by tf.hessians on the loss) equals F."""

  @parameterized.named_parameters(*_natural_cases())
  def test_hessian_methods_match_tf_hessians(self, kind, batch, dim):
    with _natural_case(kind, batch, dim, 20) as (sess, rng, case):
      hessian = tf.compat.v1.hessians(case.loss.evaluate(), case.loss.inputs)[0]
      vector = tf.constant(rng.randn(batch, dim))
      (hessian_v, vector_v, h_times, factor_composed, cols) = sess.run(
        [
          hessian,
          vector,
          case.loss.multiply_hessian(vector),
          case.loss.multiply_hessian_factor(
            case.loss.multiply_hessian_factor_transpose(vector)
          ),
          [
            case.loss.multiply_hessian_factor_replicated_one_hot((i,))
            for i in range(dim)
          ],
        ]
      )
    full = hessian_v.reshape(batch * dim, batch * dim)
    expected = full.dot(vector_v.reshape(-1)).reshape(batch, dim)
    np.testing.assert_allclose(h_times, expected, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(factor_composed, expected, rtol=1e-8, atol=1e-10)
    # The Hessian is block-diagonal over the batch and equals the Fisher.
    for b in range(batch):
      for c in range(batch):
        block = hessian_v[b, :, c, :]
        if b == c:
          np.testing.assert_allclose(
            block, case.fishers[b], rtol=1e-8, atol=1e-10
          )
        else:
          np.testing.assert_allclose(block, 0.0, atol=1e-12)
      # Columns of the Hessian factor: their Gram matrix is the Hessian.
      factor = np.stack([cols[i][b] for i in range(dim)], axis=1)
      np.testing.assert_allclose(
        factor.dot(factor.T), hessian_v[b, :, b, :], rtol=1e-8, atol=1e-10
      )


class NormalMeanVarianceTest(parameterized.TestCase):
  def _build(self, rng, batch=3, dim=2):
    mean = rng.randn(batch, dim)
    variance = rng.uniform(0.3, 2.5, size=(batch, dim))
    loss = lf.NormalMeanVarianceNegativeLogProbLoss(
      tf.constant(mean), tf.constant(variance)
    )
    return loss, mean, variance

  def test_multiply_fisher(self):
    rng = np.random.RandomState(30)
    with tf.Graph().as_default(), _session() as sess:
      loss, _, variance = self._build(rng)
      vm, vv = rng.randn(3, 2), rng.randn(3, 2)
      out = loss.multiply_fisher((tf.constant(vm), tf.constant(vv)))
      self.assertIsInstance(out, tuple)
      mean_part, var_part = sess.run(out)
    fishers = [
      np_normal_mean_variance_fisher_row(variance[b]) for b in range(3)
    ]
    expected = np_rowwise(fishers, np.concatenate([vm, vv], axis=1))
    np.testing.assert_allclose(mean_part, expected[:, :2], rtol=1e-10)
    np.testing.assert_allclose(var_part, expected[:, 2:], rtol=1e-10)

  def test_factor_and_transpose(self):
    rng = np.random.RandomState(31)
    with tf.Graph().as_default(), _session() as sess:
      loss, _, variance = self._build(rng)
      inner = rng.randn(3, 4)
      vm, vv = rng.randn(3, 2), rng.randn(3, 2)
      vecs = (tf.constant(vm), tf.constant(vv))
      factor_out = loss.multiply_fisher_factor(tf.constant(inner))
      self.assertIsInstance(factor_out, tuple)
      factor_v, transpose_v, composed_v, fisher_v = sess.run(
        [
          factor_out,
          loss.multiply_fisher_factor_transpose(vecs),
          loss.multiply_fisher_factor(
            loss.multiply_fisher_factor_transpose(vecs)
          ),
          loss.multiply_fisher(vecs),
        ]
      )
    factors = [
      np_normal_mean_variance_factor_row(variance[b]) for b in range(3)
    ]
    fishers = [
      np_normal_mean_variance_fisher_row(variance[b]) for b in range(3)
    ]
    for b in range(3):
      _assert_close(factors[b].dot(factors[b].T), fishers[b])
    expected_factor = np_rowwise(factors, inner)
    np.testing.assert_allclose(
      np.concatenate(factor_v, axis=1), expected_factor, rtol=1e-10
    )
    stacked = np.concatenate([vm, vv], axis=1)
    np.testing.assert_allclose(
      transpose_v, np_rowwise([f.T for f in factors], stacked), rtol=1e-10
    )
    np.testing.assert_allclose(
      np.concatenate(composed_v, axis=1),
      np_rowwise(fishers, stacked),
      rtol=1e-10,
    )
    np.testing.assert_allclose(
      np.concatenate(composed_v, axis=1),
      np.concatenate(fisher_v, axis=1),
      rtol=1e-10,
    )

  def test_replicated_one_hot(self):
    rng = np.random.RandomState(32)
    with tf.Graph().as_default(), _session() as sess:
      loss, _, variance = self._build(rng)
      cols = sess.run(
        [loss.multiply_fisher_factor_replicated_one_hot((i,)) for i in range(4)]
      )
    factors = [
      np_normal_mean_variance_factor_row(variance[b]) for b in range(3)
    ]
    for i in range(4):
      mean_part, var_part = cols[i]
      expected = np.stack([factors[b][:, i] for b in range(3)])
      np.testing.assert_allclose(mean_part, expected[:, :2], rtol=1e-10)
      np.testing.assert_allclose(var_part, expected[:, 2:], rtol=1e-10)

  def test_inner_shapes(self):
    with tf.Graph().as_default(), _session() as sess:
      mean = tf.compat.v1.placeholder(tf.float64, [None, 3])
      loss = lf.NormalMeanVarianceNegativeLogProbLoss(mean, tf.exp(mean))
      self.assertEqual(
        loss.fisher_factor_inner_static_shape.as_list(), [None, 6]
      )
      shape = sess.run(loss.fisher_factor_inner_shape, {mean: np.zeros((5, 3))})
    np.testing.assert_array_equal(shape, [5, 6])
    with tf.Graph().as_default():
      loss, _, _ = self._build(np.random.RandomState(33), batch=5, dim=3)
      self.assertEqual(loss.fisher_factor_inner_static_shape.as_list(), [5, 6])

  @parameterized.named_parameters(
    *[
      (name, name, is_method)
      for name, is_method in (
        ("multiply_hessian", True),
        ("multiply_hessian_factor", True),
        ("multiply_hessian_factor_transpose", True),
        ("multiply_hessian_factor_replicated_one_hot", True),
        ("hessian_factor_inner_shape", False),
        ("hessian_factor_inner_static_shape", False),
      )
    ]
  )
  def test_hessian_not_implemented(self, name, is_method):
    with tf.Graph().as_default():
      loss, _, _ = self._build(np.random.RandomState(34))
      with self.assertRaises(NotImplementedError):
        member = getattr(loss, name)
        if is_method:
          member((0,))


class ErrorTest(parameterized.TestCase):
  @parameterized.named_parameters(
    (
      "categorical_rank1",
      lf.CategoricalLogitsNegativeLogProbLoss,
      [3],
      "logits",
    ),
    (
      "categorical_rank3",
      lf.CategoricalLogitsNegativeLogProbLoss,
      [2, 3, 4],
      "logits",
    ),
    ("bernoulli_rank1", lf.MultiBernoulliNegativeLogProbLoss, [3], "logits"),
    ("normal_rank1", lf.NormalMeanNegativeLogProbLoss, [3], "mean"),
    ("normal_rank3", lf.NormalMeanNegativeLogProbLoss, [1, 2, 3], "mean"),
  )
  def test_wrong_rank_raises_where_the_layout_matters(self, cls, shape, name):
    # Accepted when built, as in TF 1.4; the replicated one-hot columns
    # (estimation mode "exact") need [batch_size, dim].
    with tf.Graph().as_default():
      loss = cls(tf.zeros(shape))
      with self.assertRaisesRegex(ValueError, name + " must be a 2-D"):
        loss.multiply_fisher_factor_replicated_one_hot((0,))

  @parameterized.named_parameters(("rank1", [3]), ("rank3", [2, 3, 4]))
  def test_categorical_products_need_a_matrix(self, shape):
    # TF 1.4 reduced over axis 1 whatever the rank: wrong products.
    with tf.Graph().as_default():
      loss = lf.CategoricalLogitsNegativeLogProbLoss(tf.zeros(shape))
      for method in (
        loss.multiply_fisher,
        loss.multiply_fisher_factor,
        loss.multiply_fisher_factor_transpose,
        loss.multiply_hessian,
      ):
        with self.assertRaisesRegex(ValueError, "logits must be a 2-D"):
          method(tf.zeros(shape))

  def test_normal_mean_of_rank_1_evaluates(self):
    # A value head: mean [batch], targets [batch].
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      mean = np.array([0.5, -1.0, 2.0])
      targets = np.array([1.0, 0.0, 1.5])
      loss = lf.NormalMeanNegativeLogProbLoss(
        tf.constant(mean), var=0.5, targets=tf.constant(targets)
      )
      value, sample = sess.run([loss.evaluate(), loss.sample(3)])
      expected = 0.0
      for m, t in zip(mean, targets):
        expected += (t - m) ** 2 / (2 * 0.5) + 0.5 * np.log(2 * np.pi * 0.5)
      self.assertAlmostEqual(value, expected, places=6)
      self.assertEqual(sample.shape, (3,))

  @parameterized.named_parameters(
    ("mean", [3], [2, 3], "mean"),
    ("variance", [2, 3], [2, 3, 1], "variance"),
  )
  def test_mean_variance_wrong_rank(self, mean_shape, var_shape, name):
    with tf.Graph().as_default():
      # Both the legacy AssertionError and a ValueError.
      with self.assertRaisesRegex(AssertionError, name):
        lf.NormalMeanVarianceNegativeLogProbLoss(
          tf.zeros(mean_shape), tf.ones(var_shape)
        )
      with self.assertRaisesRegex(ValueError, name):
        lf.NormalMeanVarianceNegativeLogProbLoss(
          tf.zeros(mean_shape), tf.ones(var_shape)
        )

  @parameterized.named_parameters(
    (
      "categorical",
      lambda: lf.CategoricalLogitsNegativeLogProbLoss(
        tf.zeros([2, 3], tf.int32)
      ),
      "logits",
    ),
    (
      "bernoulli",
      lambda: lf.MultiBernoulliNegativeLogProbLoss(tf.zeros([2, 3], tf.int64)),
      "logits",
    ),
    (
      "normal",
      lambda: lf.NormalMeanNegativeLogProbLoss(tf.zeros([2, 3], tf.int32)),
      "mean",
    ),
    (
      "normal_var_dtype",
      lambda: lf.NormalMeanNegativeLogProbLoss(
        tf.zeros([2, 3]), var=tf.constant(1.0, tf.float64)
      ),
      "var",
    ),
    (
      "mean_variance_mean",
      lambda: lf.NormalMeanVarianceNegativeLogProbLoss(
        tf.zeros([2, 3], tf.int32), tf.ones([2, 3])
      ),
      "mean",
    ),
    (
      "mean_variance_variance",
      lambda: lf.NormalMeanVarianceNegativeLogProbLoss(
        tf.zeros([2, 3]), tf.ones([2, 3], tf.int32)
      ),
      "variance",
    ),
    (
      "mean_variance_mixed",
      lambda: lf.NormalMeanVarianceNegativeLogProbLoss(
        tf.zeros([2, 3]), tf.ones([2, 3], tf.float64)
      ),
      "variance",
    ),
    (
      "categorical_float_targets",
      lambda: lf.CategoricalLogitsNegativeLogProbLoss(
        tf.zeros([2, 3]), targets=tf.constant([0.0, 1.0])
      ),
      "targets",
    ),
  )
  def test_bad_dtype(self, build, name):
    with tf.Graph().as_default():
      with self.assertRaisesRegex(TypeError, name):
        build()

  def test_non_positive_var(self):
    with tf.Graph().as_default():
      with self.assertRaisesRegex(ValueError, "var"):
        lf.NormalMeanNegativeLogProbLoss(tf.zeros([2, 3]), var=0.0)

  @parameterized.named_parameters(
    (
      "categorical",
      lambda: lf.CategoricalLogitsNegativeLogProbLoss(tf.zeros([2, 3])),
    ),
    (
      "bernoulli",
      lambda: lf.MultiBernoulliNegativeLogProbLoss(tf.zeros([2, 3])),
    ),
    ("normal", lambda: lf.NormalMeanNegativeLogProbLoss(tf.zeros([2, 3]))),
    (
      "mean_variance",
      lambda: lf.NormalMeanVarianceNegativeLogProbLoss(
        tf.zeros([2, 3]), tf.ones([2, 3])
      ),
    ),
  )
  def test_replicated_one_hot_bad_index(self, build):
    with tf.Graph().as_default():
      loss = build()
      with self.assertRaises(AssertionError):
        loss.multiply_fisher_factor_replicated_one_hot((0, 1))
      with self.assertRaisesRegex(ValueError, "index"):
        loss.multiply_fisher_factor_replicated_one_hot(())
      with self.assertRaisesRegex(ValueError, "index"):
        loss.multiply_fisher_factor_replicated_one_hot((7,))

  def test_legacy_categorical_sample_and_evaluate_on_sample(self):
    # loss_functions_test.testSample / testEvaluateOnSample.
    with tf.Graph().as_default(), _session() as sess:
      loss = lf.CategoricalLogitsNegativeLogProbLoss(
        tf.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
      )
      sample = loss.sample(42)
      self.assertEqual(sample.shape.as_list(), [2])
      value = sess.run(loss.evaluate_on_sample(42))
    self.assertTrue(math.isfinite(value))
