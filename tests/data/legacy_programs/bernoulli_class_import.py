"""Tiny autoencoder with a multi-Bernoulli (sigmoid) loss.

Style: classes imported from the implementation modules,
`from tensorflow.contrib.kfac.python.ops.<module> import <Class>`.
"""
import numpy as np
import tensorflow as tf
from tensorflow.contrib.kfac.python.ops.layer_collection import LayerCollection
from tensorflow.contrib.kfac.python.ops.optimizer import KfacOptimizer


def dense(name, inputs, size):
  with tf.compat.v1.variable_scope(name):
    w = tf.compat.v1.get_variable(
        "w", [int(inputs.shape[-1]), size],
        initializer=tf.compat.v1.random_normal_initializer(stddev=0.3))
    b = tf.compat.v1.get_variable("b", [size],
                                  initializer=tf.compat.v1.zeros_initializer())
  return tf.matmul(inputs, w) + b, (w, b)


def main():
  rng = np.random.RandomState(4)
  data = (rng.rand(16, 6) > 0.5).astype(np.float32)
  with tf.Graph().as_default():
    tf.compat.v1.set_random_seed(4)
    x = tf.constant(data)
    layer_collection = LayerCollection()
    code_pre, params = dense("encoder", x, 3)
    layer_collection.register_fully_connected(params, x, code_pre)
    code = tf.nn.sigmoid(code_pre)
    logits, params = dense("decoder", code, 6)
    layer_collection.register_fully_connected(params, code, logits)
    layer_collection.register_multi_bernoulli_predictive_distribution(logits)
    loss = tf.reduce_mean(tf.reduce_sum(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits),
        axis=1))

    optimizer = KfacOptimizer(learning_rate=0.05, cov_ema_decay=0.95,
                              damping=0.01,
                              layer_collection=layer_collection,
                              momentum=0.5, momentum_type="adam")
    step = tf.group(optimizer.minimize(loss), optimizer.cov_update_op)
    with tf.compat.v1.train.MonitoredSession() as sess:
      for _ in range(3):
        sess.run(step)
        sess.run(optimizer.inv_update_op)
      print("bernoulli_class_import: loss %.4f" % sess.run(loss))


if __name__ == "__main__":
  main()
