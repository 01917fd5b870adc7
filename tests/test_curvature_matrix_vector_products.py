"""Tests for kfac.curvature_matrix_vector_products against explicit matrices.

The network is tiny: hidden = tanh(x w1) (B×H), output = hidden w2 (B×C).
The NumPy oracle builds, example by example, the Jacobians of the loss inputs
with respect to θ = (vec w1, vec w2) (row-major), the per-example loss
Fisher/Hessian matrices and factors, and the second derivatives of the
network, and assembles the dense matrices with plain loops.
"""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from kfac import curvature_matrix_vector_products as cmvp
from kfac import loss_functions as lf

B, D, H, C = 3, 2, 3, 3
VAR = 0.7  # Variance of the normal losses.


def _network_values(seed):
  rng = np.random.RandomState(seed)
  x = rng.randn(B, D)
  w1 = rng.randn(D, H)
  w2 = rng.randn(H, C)
  class_targets = rng.randint(0, C, size=B)
  real_targets_out = rng.randn(B, C)
  real_targets_hidden = rng.randn(B, H)
  binary_targets = rng.randint(0, 2, size=(B, C)).astype(np.float64)
  return dict(
    x=x,
    w1=w1,
    w2=w2,
    class_targets=class_targets,
    real_targets_out=real_targets_out,
    real_targets_hidden=real_targets_hidden,
    binary_targets=binary_targets,
  )


# --- NumPy oracle ----------------------------------------------------------

NUM_PARAMS = D * H + H * C


def _w1_index(i, j):
  return i * H + j


def _w2_index(j, k):
  return D * H + j * C + k


def _softmax(z):
  e = np.exp(z - np.max(z))
  return e / np.sum(e)


def _sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def _example_terms(vals, b, loss_kind):
  """Per-example (Jacobian, F_L, factor B, residual, second derivatives).

  Returns:
    jac: [n_out, NUM_PARAMS] Jacobian of the loss input of example b.
    fisher: [n_out, n_out] Fisher (= Hessian) of the loss w.r.t. its input.
    factor: [n_out, n_out] with factor @ factor.T == fisher.
    residual: [n_out] gradient of the loss w.r.t. its input.
    second: [n_out, NUM_PARAMS, NUM_PARAMS] Hessians of each input entry.
  """
  x, w1, w2 = vals["x"][b], vals["w1"], vals["w2"]
  t = np.tanh(x @ w1)
  dt = 1.0 - t**2
  d2t = -2.0 * t * dt
  on_hidden = loss_kind == "normal_hidden"
  n_out = H if on_hidden else C
  jac = np.zeros((n_out, NUM_PARAMS))
  second = np.zeros((n_out, NUM_PARAMS, NUM_PARAMS))
  if on_hidden:
    for j in range(H):
      for i in range(D):
        jac[j, _w1_index(i, j)] = dt[j] * x[i]
        for i2 in range(D):
          second[j, _w1_index(i, j), _w1_index(i2, j)] = d2t[j] * x[i] * x[i2]
    z = t
  else:
    z = t @ w2
    for k in range(C):
      for j in range(H):
        jac[k, _w2_index(j, k)] = t[j]
        for i in range(D):
          jac[k, _w1_index(i, j)] = w2[j, k] * dt[j] * x[i]
          # d2 z_k / d w1[i,j] d w2[j,k] = dt_j x_i.
          second[k, _w1_index(i, j), _w2_index(j, k)] = dt[j] * x[i]
          second[k, _w2_index(j, k), _w1_index(i, j)] = dt[j] * x[i]
          for i2 in range(D):
            second[k, _w1_index(i, j), _w1_index(i2, j)] = (
              w2[j, k] * d2t[j] * x[i] * x[i2]
            )
  if loss_kind == "categorical":
    p = _softmax(z)
    q = np.sqrt(p)
    fisher = np.diag(p) - np.outer(p, p)
    factor = np.diag(q) - np.outer(p, q)
    residual = p - np.eye(C)[vals["class_targets"][b]]
  elif loss_kind == "bernoulli":
    p = _sigmoid(z)
    fisher = np.diag(p * (1 - p))
    factor = np.diag(np.sqrt(p * (1 - p)))
    residual = p - vals["binary_targets"][b]
  else:  # normal_out / normal_hidden
    targets = vals["real_targets_hidden" if on_hidden else "real_targets_out"][
      b
    ]
    fisher = np.eye(n_out) / VAR
    factor = np.eye(n_out) / np.sqrt(VAR)
    residual = (z - targets) / VAR
  np.testing.assert_allclose(factor @ factor.T, fisher, atol=1e-12)
  return jac, fisher, factor, residual, second


def _dense_matrices(vals, loss_kinds):
  """Dense Fisher (= GGN for these losses) and Hessian of the total loss."""
  fisher = np.zeros((NUM_PARAMS, NUM_PARAMS))
  hessian = np.zeros((NUM_PARAMS, NUM_PARAMS))
  for kind in loss_kinds:
    for b in range(B):
      jac, f_loss, _, residual, second = _example_terms(vals, b, kind)
      fisher += jac.T @ f_loss @ jac
      hessian += jac.T @ f_loss @ jac
      for k in range(len(residual)):
        hessian += residual[k] * second[k]
  return fisher, hessian


def _flatten(w1, w2):
  return np.concatenate([np.reshape(w1, [-1]), np.reshape(w2, [-1])])


def _unflatten(theta):
  return (
    np.reshape(theta[: D * H], [D, H]),
    np.reshape(theta[D * H :], [H, C]),
  )


# --- Graph under test ------------------------------------------------------

LOSS_SETS = {
  "categorical": ("categorical",),
  "normal": ("normal_out",),
  "bernoulli": ("bernoulli",),
  "categorical_and_normal_on_hidden": ("categorical", "normal_hidden"),
}


def _build(vals, loss_kinds):
  x = tf.constant(vals["x"])
  w1 = tf.compat.v1.get_variable("w1", initializer=vals["w1"])
  w2 = tf.compat.v1.get_variable("w2", initializer=vals["w2"])
  hidden = tf.tanh(tf.matmul(x, w1))
  out = tf.matmul(hidden, w2)
  losses = []
  for kind in loss_kinds:
    if kind == "categorical":
      losses.append(
        lf.CategoricalLogitsNegativeLogProbLoss(
          out, targets=tf.constant(vals["class_targets"], dtype=tf.int32)
        )
      )
    elif kind == "bernoulli":
      losses.append(
        lf.MultiBernoulliNegativeLogProbLoss(
          out, targets=tf.constant(vals["binary_targets"])
        )
      )
    elif kind == "normal_out":
      losses.append(
        lf.NormalMeanNegativeLogProbLoss(
          out, var=VAR, targets=tf.constant(vals["real_targets_out"])
        )
      )
    else:
      losses.append(
        lf.NormalMeanNegativeLogProbLoss(
          hidden, var=VAR, targets=tf.constant(vals["real_targets_hidden"])
        )
      )
  return losses, [w1, w2]


_Computer = cmvp.CurvatureMatrixVectorProductComputer


def _products(vals, loss_kinds, vectors, *products):
  """Evaluates products of the computer of `_build(vals, loss_kinds)`.

  Args:
    vals: The network values (`_network_values`).
    loss_kinds: The losses on it.
    vectors: NumPy arrays, the vector (one per variable, or per loss for the
      factor products).
    *products: Callables `(computer, vector_tensors)` returning a sequence of
      Tensors, e.g. `_Computer.multiply_fisher`.

  Returns:
    One list of NumPy arrays per product.
  """
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    losses, wrt = _build(vals, loss_kinds)
    computer = _Computer(losses, wrt)
    tensors = [tf.constant(v) for v in vectors]
    results = [list(product(computer, tensors)) for product in products]
    sess.run(tf.compat.v1.global_variables_initializer())
    return sess.run(results)


def _inner_dim(kind):
  return H if kind == "normal_hidden" else C


class CurvatureMatrixVectorProductComputerTest(parameterized.TestCase):
  def _check_fisher_and_ggn(self, vals, loss_kinds, vectors, kind, expected):
    """The Fisher and the GGN products `kind` ("", "_factor" or
    "_factor_transpose") of `vectors` both equal `expected` (for these
    losses the Fisher is the GGN)."""
    fisher, ggn = _products(
      vals,
      loss_kinds,
      vectors,
      getattr(_Computer, "multiply_fisher" + kind),
      getattr(_Computer, "multiply_generalized_gauss_newton" + kind),
    )
    self.assertLen(fisher, len(expected))
    for got_f, got_g, want in zip(fisher, ggn, expected):
      np.testing.assert_allclose(got_f, want, rtol=1e-8, atol=1e-10)
      np.testing.assert_allclose(got_g, want, rtol=1e-8, atol=1e-10)

  @parameterized.named_parameters(
    *[(name, kinds) for name, kinds in LOSS_SETS.items()]
  )
  def test_fisher_and_ggn_products(self, loss_kinds):
    vals = _network_values(0)
    rng = np.random.RandomState(1)
    v_theta = rng.randn(NUM_PARAMS)
    fisher, _ = _dense_matrices(vals, loss_kinds)
    expected = _unflatten(fisher @ v_theta)
    self._check_fisher_and_ggn(
      vals, loss_kinds, _unflatten(v_theta), "", expected
    )

  @parameterized.named_parameters(
    *[(name, kinds) for name, kinds in LOSS_SETS.items()]
  )
  def test_factor_transpose_products(self, loss_kinds):
    vals = _network_values(2)
    v_theta = np.random.RandomState(3).randn(NUM_PARAMS)
    expected = []
    for kind in loss_kinds:
      rows = []
      for b in range(B):
        jac, _, factor, _, _ = _example_terms(vals, b, kind)
        rows.append(factor.T @ (jac @ v_theta))
      expected.append(np.array(rows))
    self._check_fisher_and_ggn(
      vals, loss_kinds, _unflatten(v_theta), "_factor_transpose", expected
    )

  @parameterized.named_parameters(
    *[(name, kinds) for name, kinds in LOSS_SETS.items()]
  )
  def test_factor_products(self, loss_kinds):
    # J^T B u with the loss factor B itself (the legacy code applied B^T).
    vals = _network_values(4)
    rng = np.random.RandomState(5)
    inner_vecs = [rng.randn(B, _inner_dim(kind)) for kind in loss_kinds]
    expected = np.zeros(NUM_PARAMS)
    for kind, u in zip(loss_kinds, inner_vecs):
      for b in range(B):
        jac, _, factor, _, _ = _example_terms(vals, b, kind)
        expected += jac.T @ (factor @ u[b])
    expected = _unflatten(expected)
    self._check_fisher_and_ggn(
      vals, loss_kinds, inner_vecs, "_factor", expected
    )

  def test_factor_times_its_transpose_is_the_fisher(self):
    # (J^T B)(J^T B)^T v == F v, assembled from the two factor products.
    vals = _network_values(6)
    v_theta = np.random.RandomState(7).randn(NUM_PARAMS)
    fisher, _ = _dense_matrices(vals, ("categorical",))

    def factor_of_transpose(computer, vecs):
      bt_j_v = computer.multiply_fisher_factor_transpose(vecs)
      return computer.multiply_fisher_factor(list(bt_j_v))

    (result,) = _products(
      vals, ("categorical",), _unflatten(v_theta), factor_of_transpose
    )
    np.testing.assert_allclose(
      _flatten(*result), fisher @ v_theta, rtol=1e-8, atol=1e-10
    )

  @parameterized.named_parameters(
    *[(name, kinds) for name, kinds in LOSS_SETS.items()]
  )
  def test_hessian_products(self, loss_kinds):
    vals = _network_values(8)
    v_theta = np.random.RandomState(9).randn(NUM_PARAMS)
    fisher, hessian = _dense_matrices(vals, loss_kinds)
    # The network is not linear, so the Hessian differs from the GGN.
    self.assertGreater(np.abs(hessian - fisher).max(), 1e-3)
    expected = _unflatten(hessian @ v_theta)
    (hessian_v,) = _products(
      vals, loss_kinds, _unflatten(v_theta), _Computer.multiply_hessian
    )
    for got, want in zip(hessian_v, expected):
      np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)

  def test_hessian_matches_tf_hessians_on_flat_parameters(self):
    # A second oracle: tf.hessians of the same loss written in terms of one
    # flat parameter vector.
    vals = _network_values(10)
    v_theta = np.random.RandomState(11).randn(NUM_PARAMS)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      theta = tf.constant(_flatten(vals["w1"], vals["w2"]))
      w1 = tf.reshape(theta[: D * H], [D, H])
      w2 = tf.reshape(theta[D * H :], [H, C])
      out = tf.matmul(tf.tanh(tf.matmul(tf.constant(vals["x"]), w1)), w2)
      loss = tf.reduce_sum(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=tf.constant(vals["class_targets"]), logits=out
        )
      )
      dense_hessian = sess.run(tf.hessians(loss, theta)[0])
    (hessian_v,) = _products(
      vals, ("categorical",), _unflatten(v_theta), _Computer.multiply_hessian
    )
    np.testing.assert_allclose(
      _flatten(*hessian_v), dense_hessian @ v_theta, rtol=1e-8, atol=1e-10
    )

  def test_products_with_respect_to_a_tensor(self):
    # With θ = the logits themselves, J = I and F v is the loss Fisher per row.
    rng = np.random.RandomState(12)
    logits_value = rng.randn(B, C)
    v = rng.randn(B, C)
    expected = np.zeros((B, C))
    for b in range(B):
      p = _softmax(logits_value[b])
      expected[b] = (np.diag(p) - np.outer(p, p)) @ v[b]
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      logits = tf.constant(logits_value)
      loss = lf.CategoricalLogitsNegativeLogProbLoss(logits)
      computer = cmvp.CurvatureMatrixVectorProductComputer([loss], [logits])
      result = sess.run(computer.multiply_fisher([tf.constant(v)]))
    np.testing.assert_allclose(result[0], expected, rtol=1e-10, atol=1e-12)

  def test_inner_shapes(self):
    vals = _network_values(13)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      losses, wrt = _build(vals, ("categorical", "normal_hidden"))
      computer = cmvp.CurvatureMatrixVectorProductComputer(losses, wrt)
      fisher_shapes = computer.fisher_factor_inner_shapes
      ggn_shapes = computer.generalized_gauss_newton_factor_inner_shapes
      self.assertIsInstance(fisher_shapes, tuple)
      self.assertIsInstance(ggn_shapes, tuple)
      fisher_shapes, ggn_shapes = sess.run(
        [list(fisher_shapes), list(ggn_shapes)]
      )
    for shapes in (fisher_shapes, ggn_shapes):
      self.assertEqual([list(s) for s in shapes], [[B, C], [B, H]])
