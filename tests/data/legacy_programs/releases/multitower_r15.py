"""A 1.5 program, recognised by its multi-tower registration.

`reuse=` and `layer_collection.VARIABLE_SCOPE` first appeared in 1.5; the
program sets `momentum` itself, so no default decides between 1.5 and later.
"""
import numpy as np
import tensorflow as tf

kfac = tf.contrib.kfac


def main():
  rng = np.random.RandomState(0)
  with tf.Graph().as_default():
    layer_collection = kfac.layer_collection.LayerCollection()
    w = tf.compat.v1.get_variable("w", [4, 3])
    losses = []
    for tower in range(2):
      x = tf.constant(rng.rand(8, 4).astype(np.float32))
      y = tf.constant(rng.randint(0, 3, size=8).astype(np.int64))
      logits = tf.matmul(x, w)
      layer_collection.register_fully_connected(
          w, x, logits,
          reuse=True if tower else kfac.layer_collection.VARIABLE_SCOPE)
      layer_collection.register_categorical_predictive_distribution(
          logits, name="tower_loss", reuse=tower > 0)
      losses.append(tf.reduce_mean(
          tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                         logits=logits)))
    loss = tf.add_n(losses) / 2.
    optimizer = kfac.optimizer.KfacOptimizer(
        0.05, 0.95, 0.01, layer_collection, momentum=0.5)
    train_op = optimizer.minimize(loss)
    init = tf.compat.v1.global_variables_initializer()
    with tf.compat.v1.Session() as sess:
      sess.run(init)
      _, _, value = sess.run([train_op, optimizer.cov_update_op, loss])
      sess.run(optimizer.inv_update_op)
  assert np.isfinite(value), value
  print("multitower_r15: loss %.4f" % value)


if __name__ == "__main__":
  main()
