"""A short K-FAC training run shared by the test modules."""

import tensorflow as tf


def train_with_kfac(loss, layer_collection, learning_rate, rounds):
  """Trains `loss` in the current graph with `KfacOptimizer`; returns losses.

  The optimizer uses damping 0.01, statistics decay 0.9 and momentum 0.5.
  Each round is five steps; a step runs, one op at a time, the statistics
  update, on a round's first step the inverse update, then the training op.

  Args:
    loss: The scalar loss Tensor; `layer_collection` registers its model.
    layer_collection: The `LayerCollection` of the model.
    learning_rate: The optimizer's learning rate.
    rounds: How many rounds of five steps to run.

  Returns:
    The loss before training and after each round (`rounds + 1` floats).
  """
  from kfac import optimizer

  opt = optimizer.KfacOptimizer(
    learning_rate=learning_rate,
    cov_ema_decay=0.9,
    damping=0.01,
    layer_collection=layer_collection,
    momentum=0.5,
  )
  train = opt.minimize(loss)
  with tf.compat.v1.Session() as sess:
    sess.run(tf.compat.v1.global_variables_initializer())
    losses = [sess.run(loss)]
    for _ in range(rounds):
      for step in range(5):
        sess.run(opt.cov_update_op)
        if step == 0:
          sess.run(opt.inv_update_op)
        sess.run(train)
      losses.append(sess.run(loss))
  return losses
