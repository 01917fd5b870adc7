"""A TF 1.x program: placeholders, tf.Session, tf.train, tf.contrib.kfac.

Upgraded with `kfac-upgrade --also-tf2` (TensorFlow's tf_upgrade_v2 handles
the non-kfac TF 1.x calls).
"""
import numpy as np
import tensorflow as tf


def main():
  rng = np.random.RandomState(6)
  inputs = rng.rand(10, 3).astype(np.float32)
  labels = rng.randint(0, 2, size=10)
  with tf.Graph().as_default():
    tf.set_random_seed(6)
    x = tf.placeholder(tf.float32, [10, 3], name="x")
    y = tf.placeholder(tf.int64, [10], name="y")
    w = tf.get_variable("w", [3, 2],
                        initializer=tf.random_normal_initializer(stddev=0.3))
    b = tf.get_variable("b", [2], initializer=tf.zeros_initializer())
    logits = tf.matmul(x, w) + b
    loss = tf.losses.sparse_softmax_cross_entropy(labels=y, logits=logits)

    layer_collection = tf.contrib.kfac.layer_collection.LayerCollection()
    layer_collection.register_fully_connected((w, b), x, logits)
    layer_collection.register_categorical_predictive_distribution(logits)
    global_step = tf.train.get_or_create_global_step()
    optimizer = tf.contrib.kfac.optimizer.KfacOptimizer(
        learning_rate=0.1, cov_ema_decay=0.95, damping=0.01,
        layer_collection=layer_collection, momentum=0.9)
    train_op = optimizer.minimize(loss, global_step=global_step)

    feed = {x: inputs, y: labels}
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      for _ in range(3):
        sess.run([train_op, optimizer.cov_update_op], feed_dict=feed)
        sess.run(optimizer.inv_update_op)
      loss_value, step = sess.run([loss, global_step], feed_dict=feed)
  assert step == 3, step
  assert np.isfinite(loss_value), loss_value
  print("tf1_style: loss %.4f" % loss_value)


if __name__ == "__main__":
  main()
