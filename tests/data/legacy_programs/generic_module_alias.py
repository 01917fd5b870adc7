"""Regression with generic (full and diagonal) registrations.

Style: `import tensorflow.contrib.kfac as K` (a module alias); a normal
predictive distribution for a squared-error loss.
"""
import numpy as np
import tensorflow as tf
import tensorflow.contrib.kfac as K

BATCH = 16


def main():
  rng = np.random.RandomState(2)
  inputs = rng.randn(BATCH, 5).astype(np.float32)
  targets = rng.randn(BATCH, 2).astype(np.float32)
  with tf.Graph().as_default():
    tf.compat.v1.set_random_seed(2)
    x = tf.constant(inputs)
    t = tf.constant(targets)
    init = tf.compat.v1.random_normal_initializer(stddev=0.3)
    w1 = tf.compat.v1.get_variable("w1", [5, 4], initializer=init)
    b1 = tf.compat.v1.get_variable("b1", [4], initializer=init)
    w2 = tf.compat.v1.get_variable("w2", [4, 2], initializer=init)
    hidden = tf.nn.tanh(tf.matmul(x, w1) + b1)
    prediction = tf.matmul(hidden, w2)

    lc = K.layer_collection.LayerCollection(name="regression")
    lc.register_generic(w1, BATCH, approx=K.layer_collection.APPROX_FULL_NAME)
    lc.register_generic(b1, BATCH)  # diagonal, the default
    lc.register_fully_connected(w2, hidden, prediction)
    lc.register_normal_predictive_distribution(prediction, var=0.5)
    loss = tf.reduce_sum(tf.square(t - prediction)) / BATCH

    optimizer = K.optimizer.KfacOptimizer(
        learning_rate=0.02, cov_ema_decay=0.9, damping=0.1,
        layer_collection=lc)
    global_step = tf.compat.v1.train.get_or_create_global_step()
    train_op = optimizer.minimize(loss, global_step=global_step)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      while sess.run(global_step) < 3:
        sess.run(
            [train_op, optimizer.cov_update_op, optimizer.inv_update_op])
      loss_value = sess.run(loss)
  assert np.isfinite(loss_value), loss_value
  print("generic_module_alias: loss %.4f" % loss_value)


if __name__ == "__main__":
  main()
