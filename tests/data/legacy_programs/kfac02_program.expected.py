"""An MLP written for PyPI's kfac 0.2.x (the mechanical parts convert)."""
import numpy as np
import tensorflow.compat.v1 as tf

import kfac


def main():
  rng = np.random.RandomState(7)
  with tf.Graph().as_default():
    x = tf.constant(rng.rand(16, 4).astype(np.float32))
    y = tf.constant(rng.randint(0, 3, size=16).astype(np.int64))
    w = tf.get_variable("w", [4, 3])
    b = tf.get_variable("b", [3], initializer=tf.zeros_initializer())
    logits = tf.matmul(x, w) + b
    loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                       logits=logits))

    layer_collection = kfac.layer_collection.LayerCollection()
    layer_collection.register_fully_connected((w, b), x, logits)
    layer_collection.register_categorical_predictive_distribution(logits)

    optimizer = kfac.optimizer.KfacOptimizer(
        learning_rate=0.05,
        damping=0.01,
        layer_collection=layer_collection,
        var_list=None,  # all trainable variables
        estimation_mode="gradients",
        cov_ema_decay=0.95,
        momentum=0.9,
        momentum_type="adam",
        colocate_gradients_with_ops=True,
    )
    # kfac 0.2.x builds the update ops lazily, through thunks.
    cov_thunks, inv_thunks = optimizer.make_vars_and_create_op_thunks()
    cov_update_op = tf.group(*[thunk() for thunk in cov_thunks])
    inv_update_op = tf.group(*[thunk() for thunk in inv_thunks])
    train_op = optimizer.minimize(loss)
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      for _ in range(3):
        sess.run([train_op, cov_update_op])
        sess.run(inv_update_op)


if __name__ == "__main__":
  main()
