"""Two-layer MLP trained with K-FAC.

Style: `import tensorflow as tf` and `tf.contrib.kfac.<module>.<name>`
attribute chains (the README style of TensorFlow 1.4).
"""
from __future__ import print_function

import numpy as np
import tensorflow as tf
import kfac


def fc_layer(name, inputs, size):
  """Returns (preactivations, (weights, bias)) of a dense layer."""
  with tf.compat.v1.variable_scope(name):
    weights = tf.compat.v1.get_variable(
        "weights", [int(inputs.shape[-1]), size],
        initializer=tf.compat.v1.random_normal_initializer(stddev=0.5))
    bias = tf.compat.v1.get_variable(
        "bias", [size], initializer=tf.compat.v1.zeros_initializer())
  return tf.matmul(inputs, weights) + bias, (weights, bias)


def main():
  rng = np.random.RandomState(0)
  images = rng.rand(32, 8).astype(np.float32)
  labels = rng.randint(0, 3, size=32).astype(np.int64)
  with tf.Graph().as_default():
    tf.compat.v1.set_random_seed(0)
    x = tf.constant(images)
    y = tf.constant(labels)

    layer_collection = kfac.layer_collection.LayerCollection()
    pre0, params0 = fc_layer("fc_0", x, 16)
    act0 = tf.nn.tanh(pre0)
    layer_collection.register_fully_connected(params0, x, pre0)
    logits, params1 = fc_layer("fc_1", act0, 3)
    layer_collection.register_fully_connected(params1, act0, logits)
    layer_collection.register_categorical_predictive_distribution(logits)
    loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                       logits=logits))

    global_step = tf.compat.v1.train.get_or_create_global_step()
    optimizer = kfac.optimizer.KfacOptimizer(
        learning_rate=0.05,
        cov_ema_decay=0.95,
        damping=0.01,
        layer_collection=layer_collection,
        momentum=0.9)  # the README's settings, scaled down
    train_op = optimizer.minimize(loss, global_step=global_step)

    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      for step in range(4):
        _, loss_value, _ = sess.run(
            [train_op, loss, optimizer.cov_update_op])
        if step % 2 == 0:
          sess.run(optimizer.inv_update_op)
  assert np.isfinite(loss_value), loss_value
  print("mlp_chain: loss %.4f" % loss_value)


if __name__ == "__main__":
  main()
