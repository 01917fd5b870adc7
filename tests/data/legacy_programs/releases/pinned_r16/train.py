"""A 1.6 program: its release is only known from the pin next to it.

It relies on the 1.6 `KfacOptimizer` defaults (momentum 0.9), so the pin
decides what it computes.
"""
import numpy as np
import tensorflow as tf
from tensorflow.contrib.kfac.python.ops import layer_collection as lc_lib


def main():
  rng = np.random.RandomState(0)
  with tf.Graph().as_default():
    x = tf.constant(rng.rand(16, 4).astype(np.float32))
    y = tf.constant(rng.randint(0, 3, size=16).astype(np.int64))
    w = tf.compat.v1.get_variable("w", [4, 3])
    logits = tf.matmul(x, w)
    layer_collection = lc_lib.LayerCollection()
    layer_collection.register_fully_connected(w, x, logits)
    layer_collection.register_categorical_predictive_distribution(logits)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=y, logits=logits))
    optimizer = tf.contrib.kfac.optimizer.KfacOptimizer(
        0.05, 0.95, 0.01, layer_collection)
    train_op = optimizer.minimize(loss)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      for _ in range(2):
        sess.run([train_op, optimizer.cov_update_op])
        sess.run(optimizer.inv_update_op)
      value = sess.run(loss)
  assert np.isfinite(value), value
  print("pinned_r16: loss %.4f" % value)


if __name__ == "__main__":
  main()
