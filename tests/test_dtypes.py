"""Models of every float dtype train with K-FAC (issue 14 §3).

As in TF 1.4, the factor variables stay float32 whatever the model's dtype
(same names, same checkpoint dtypes); the model's gradients are cast to
float32 where they meet the factors and the steps back to the model's
dtype. Each block type trains a float64, float16 and bfloat16 model for a
few steps from the same initial values as a float32 model; the weights are
compared with the float32 run with a tolerance stated per dtype (float64 is
at least as accurate as float32, so the float32 rounding bounds the gap;
float16 and bfloat16 carry 11 and 8 significant bits).
"""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from kfac import layer_collection as lc_lib
from kfac import optimizer

# Tolerance per dtype against float32, relative to the largest weight (or 1).
# Observed gaps over the six blocks: float64 ≤ 8.4e-8, float16 ≤ 2.3e-3,
# bfloat16 ≤ 5.0e-3.
_TOLERANCE = {"float64": 1e-6, "float16": 1e-2, "bfloat16": 2e-2}
_BLOCKS = (
  "fc_kron",
  "fc_diagonal",
  "conv_kron",
  "conv_diagonal",
  "generic_full",
  "generic_diagonal",
)
_STEPS = 3


def _build(dtype, block):
  """A one-layer model of `block`'s type, in `dtype`, from fixed values."""
  rng = np.random.RandomState(0)
  lc = lc_lib.LayerCollection()
  labels = tf.constant(rng.randint(0, 3, 6))
  if block.startswith("conv"):
    x = tf.constant(rng.randn(6, 5, 5, 2), dtype)
    k = tf.compat.v1.get_variable(
      "k", initializer=tf.constant(rng.randn(3, 3, 2, 3) * 0.3, dtype)
    )
    b = tf.compat.v1.get_variable("b", initializer=tf.zeros([3], dtype))
    out = tf.nn.conv2d(x, k, [1, 1, 1, 1], "SAME") + b
    lc.register_conv2d(
      (k, b), (1, 1, 1, 1), "SAME", x, out, approx=block.split("_")[1]
    )
    logits = tf.reduce_mean(out, [1, 2])
  else:
    x = tf.constant(rng.randn(6, 4), dtype)
    w = tf.compat.v1.get_variable(
      "w", initializer=tf.constant(rng.randn(4, 3) * 0.3, dtype)
    )
    if block.startswith("fc"):
      b = tf.compat.v1.get_variable("b", initializer=tf.zeros([3], dtype))
      logits = tf.matmul(x, w) + b
      lc.register_fully_connected((w, b), x, logits, approx=block.split("_")[1])
    else:
      logits = tf.matmul(x, w)
      lc.register_generic(w, 6, approx=block.split("_")[1])
  lc.register_categorical_predictive_distribution(logits, targets=labels)
  loss = tf.reduce_mean(
    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
  )
  opt = optimizer.KfacOptimizer(
    0.1, 0.9, 0.1, lc, momentum=0.9, estimation_mode="empirical"
  )
  return loss, opt.minimize(loss), opt


def _train(dtype, block):
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    loss, train_op, opt = _build(dtype, block)
    sess.run(tf.compat.v1.global_variables_initializer())
    losses = [sess.run(loss)]
    for _ in range(_STEPS):
      sess.run(train_op)
      sess.run(opt.cov_update_op)
      sess.run(opt.inv_update_op)
      losses.append(sess.run(loss))
    variables = tf.compat.v1.global_variables()
    values = dict(zip([v.op.name for v in variables], sess.run(variables)))
    dtypes = {v.op.name: v.dtype.base_dtype for v in variables}
  return losses, values, dtypes


class DtypeTrainingTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("{}_{}".format(dtype, block), dtype, block)
    for dtype in ("float64", "float16", "bfloat16")
    for block in _BLOCKS
  )
  def test_trains_like_float32(self, dtype, block):
    ref_losses, ref_values, ref_dtypes = _train(tf.float32, block)
    losses, values, dtypes = _train(tf.as_dtype(dtype), block)
    # Factor names follow the gradient tensors' names, which TensorFlow's own
    # ops choose per dtype (float16 softmax cross-entropy computes in
    # float32, with extra casts); the model's variables and slots match.
    model_names = sorted(n for n in ref_values if "ff_" not in n)
    self.assertEqual(sorted(n for n in values if "ff_" not in n), model_names)
    for name, var_dtype in dtypes.items():
      if "ff_" in name:
        # Factor variables stay float32 (the 1.4 checkpoint dtypes).
        self.assertEqual(var_dtype, tf.float32, name)
      else:
        self.assertEqual(var_dtype, tf.as_dtype(dtype), name)
    self.assertEqual(
      sum("ff_" in n for n in values), sum("ff_" in n for n in ref_values)
    )
    losses = np.array(losses, np.float64)
    self.assertTrue(np.all(np.isfinite(losses)), losses)
    self.assertLess(losses[-1], losses[0])
    for name in model_names:
      ref = ref_values[name]
      value = np.asarray(values[name], np.float64)
      scale = max(np.max(np.abs(ref)), 1.0)
      np.testing.assert_allclose(
        value, ref, rtol=0, atol=_TOLERANCE[dtype] * scale, err_msg=name
      )
