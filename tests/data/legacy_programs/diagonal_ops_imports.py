"""Diagonal approximations for a conv layer and a dense layer.

Style: `from tensorflow.contrib.kfac.python.ops import <module> as <alias>`
and a plain `import tensorflow.contrib.kfac.python.ops.<module> as <alias>`.
"""
import numpy as np
import tensorflow as tf
from tensorflow.contrib.kfac.python.ops import layer_collection as lc_lib
from tensorflow.contrib.kfac.python.ops import (optimizer as opt_lib,
                                                utils as kfac_utils)
import tensorflow.contrib.kfac.python.ops.fisher_blocks as fb


def main():
  with tf.Graph().as_default():
    tf.compat.v1.set_random_seed(3)
    x = tf.random.uniform([4, 5, 5, 2])
    labels = tf.constant([0, 1, 1, 0], dtype=tf.int64)
    init = tf.compat.v1.random_normal_initializer(stddev=0.2)
    kernel = tf.compat.v1.get_variable("kernel", [3, 3, 2, 3], initializer=init)
    conv = tf.nn.conv2d(x, kernel, strides=[1, 2, 2, 1], padding="VALID")
    flat = tf.reshape(tf.nn.relu(conv), [4, 2 * 2 * 3])
    w = tf.compat.v1.get_variable("w", [12, 2], initializer=init)
    b = tf.compat.v1.get_variable("b", [2], initializer=init)
    logits = tf.matmul(flat, w) + b

    layers = lc_lib.LayerCollection()
    layers.register_conv2d(kernel, [1, 2, 2, 1], "VALID", x, conv,
                           approx=lc_lib.APPROX_DIAGONAL_NAME)
    layers.register_fully_connected((w, b), flat, logits, approx="diagonal")
    layers.register_categorical_predictive_distribution(logits, seed=3)
    for block in layers.get_blocks():
      assert isinstance(block, (fb.ConvDiagonalFB,
                                fb.FullyConnectedDiagonalFB)), block
    loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits))

    opt = opt_lib.KfacOptimizer(learning_rate=0.05, cov_ema_decay=0.95,
                                damping=0.01, layer_collection=layers,
                                momentum=0.5)
    train_op = opt.minimize(loss)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      # Diagonal blocks invert elementwise: no inverse update op to run.
      for _ in range(3):
        sess.run([train_op, opt.cov_update_op])
      loss_value = sess.run(loss)
      # A utils helper, reached through the ops alias.
      column = sess.run(kfac_utils.tensors_to_column([w, b]))
  assert column.shape == (12 * 2 + 2, 1), column.shape
  assert np.isfinite(loss_value), loss_value
  print("diagonal_ops_imports: loss %.4f" % loss_value)


if __name__ == "__main__":
  main()
