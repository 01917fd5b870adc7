"""The 1.8-1.10 series approximation against the NumPy series formulas.

`register_fully_connected_multi(..., approx="kron_series_1"/"kron_series_2")`
in the deferred releases builds `FullyConnectedSeriesFB` through the
estimator's thunks. Its inverse is checked here against the plain NumPy
oracle of releases.md §3.7 that `test_multi_use` applies to releases
1.5-1.7: the moments C0 and C1 are summed with explicit loops over uses and
examples, and the series quantities come from `numpy.linalg`.
"""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
from test_multi_use import _c0_oracle
from test_multi_use import _c1_oracle
from test_multi_use import _pi
from test_multi_use import _series_inverse_oracle
from test_releases import _ns

BATCH, D_IN, D_OUT, USES, DAMPING = 5, 3, 2, 4, 0.1


def _cases():
  for package in ("kfac.r1_8", "kfac.r1_9", "kfac.r1_10"):
    for option in (1, 2):
      for has_bias in (False, True):
        yield (
          "{}_option{}{}".format(
            package.replace(".", "_"), option, "_bias" if has_bias else ""
          ),
          package,
          option,
          has_bias,
        )


class SeriesInverseTest(parameterized.TestCase):
  @parameterized.named_parameters(*_cases())
  def test_multiply_inverse_matches_series_formulas(
    self, package, option, has_bias
  ):
    ns = _ns(package)
    rng = np.random.RandomState(3)
    x_vals = [rng.randn(BATCH, D_IN) for _ in range(USES)]
    w_val = rng.randn(D_IN, D_OUT)
    b_val = rng.randn(D_OUT)
    v_w, v_b = rng.randn(D_IN, D_OUT), rng.randn(D_OUT)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      w = tf.compat.v1.get_variable("w", initializer=w_val)
      b = tf.compat.v1.get_variable("b", initializer=b_val)
      params = (w, b) if has_bias else w
      xs = [tf.constant(x, name="x%d" % u) for u, x in enumerate(x_vals)]
      ys = [tf.matmul(x, w) + b if has_bias else tf.matmul(x, w) for x in xs]
      lc = ns.layer_collection.LayerCollection()
      lc.register_fully_connected_multi(
        params, xs, ys, approx="kron_series_%d" % option
      )
      targets = tf.constant(rng.randn(USES * BATCH, D_OUT))
      lc.register_normal_predictive_distribution(
        tf.concat(ys, 0), targets=targets
      )
      variables = [w, b] if has_bias else [w]
      estimator = ns.estimator.make_fisher_estimator(
        variables=variables,
        cov_ema_decay=0.0,
        damping=DAMPING,
        layer_collection=lc,
        exps=(-1,),
        estimation_mode="empirical",
      )
      cov_thunks, inv_thunks = estimator.make_vars_and_create_op_thunks()
      cov_ops = [thunk() for thunk in cov_thunks]
      inv_ops = [thunk() for thunk in inv_thunks]
      vectors = [(tf.constant(v_w), w)] + (
        [(tf.constant(v_b), b)] if has_bias else []
      )
      inverses = [p for p, _ in estimator.multiply_inverse(vectors)]
      # The empirical Fisher's output gradients: the loss gradients w.r.t.
      # each use's outputs.
      grads = tf.gradients(lc.total_loss(), ys)
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(cov_ops)
      sess.run(inv_ops)
      g_vals, got = sess.run([grads, inverses])
    a0, a1 = _c0_oracle([x_vals], has_bias), _c1_oracle([x_vals], has_bias)
    g0, g1 = _c0_oracle([g_vals], False), _c1_oracle([g_vals], False)
    pi = _pi(a0, g0)
    sqrt_d = np.sqrt(DAMPING / USES)
    v = np.concatenate([v_w, v_b[None, :]], 0) if has_bias else v_w
    expected = _series_inverse_oracle(
      option, a0, a1, g0, g1, pi * sqrt_d, sqrt_d / pi, USES, v
    )
    got = np.concatenate([got[0], got[1][None, :]], 0) if has_bias else got[0]
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-10)


if __name__ == "__main__":
  tf.test.main()
