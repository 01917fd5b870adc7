"""The 2017 mlp example as a TF 1.x program that `tf_upgrade_v2` can't finish.

It uses `tf.layers.Dense` and never enters graph mode; `kfac-upgrade
--also-tf2` must say so (tests/test_upgrade.py, Tf2FindingsTest).
"""
from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import numpy as np
import tensorflow as tf

lc = tf.contrib.kfac.layer_collection
opt_lib = tf.contrib.kfac.optimizer


def fc_layer(layer_id, inputs, output_size):
  layer = tf.layers.Dense(
      output_size,
      kernel_initializer=tf.random_normal_initializer(),
      name="fc_%d" % layer_id)
  preactivations = layer(inputs)
  activations = tf.nn.tanh(preactivations)
  return preactivations, activations, tuple(layer.weights)


def train(num_steps=200):
  rng = np.random.RandomState(42)
  images = rng.rand(256, 784).astype(np.float32)
  labels = rng.randint(0, 10, size=256).astype(np.int64)
  dataset = (tf.data.Dataset.from_tensor_slices((images, labels))
             .repeat().shuffle(256).batch(64))
  examples, targets = dataset.make_one_shot_iterator().get_next()

  pre0, act0, params0 = fc_layer(0, examples, 128)
  pre1, act1, params1 = fc_layer(1, act0, 64)
  pre2, act2, params2 = fc_layer(2, act1, 32)
  logits, _, params3 = fc_layer(3, act2, 10)
  loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=targets, logits=logits))
  accuracy = tf.reduce_mean(tf.cast(
      tf.equal(targets, tf.argmax(logits, axis=1)), dtype=tf.float32))

  layer_collection = lc.LayerCollection()
  layer_collection.register_fully_connected(params0, examples, pre0)
  layer_collection.register_fully_connected(params1, act0, pre1)
  layer_collection.register_fully_connected(params2, act1, pre2)
  layer_collection.register_fully_connected(params3, act2, logits)
  layer_collection.register_categorical_predictive_distribution(logits)

  global_step = tf.train.get_or_create_global_step()
  optimizer = opt_lib.KfacOptimizer(
      learning_rate=tf.train.exponential_decay(
          0.00002, global_step, 10000, 0.5, staircase=True),
      cov_ema_decay=0.95, damping=0.0001,
      layer_collection=layer_collection, momentum=0.99)
  train_op = optimizer.minimize(loss, global_step=global_step)

  tf.logging.info("Starting training.")
  with tf.train.MonitoredTrainingSession(
      hooks=[tf.train.StopAtStepHook(last_step=num_steps)]) as sess:
    while not sess.should_stop():
      step, loss_, acc_, _, _ = sess.run(
          [global_step, loss, accuracy, train_op, optimizer.cov_update_op])
      if step % 100 == 0:
        sess.run(optimizer.inv_update_op)
        tf.logging.info("step %d loss %f accuracy %f", step, loss_, acc_)
  return acc_


if __name__ == "__main__":
  tf.logging.set_verbosity(tf.logging.INFO)
  print("final accuracy", train())
