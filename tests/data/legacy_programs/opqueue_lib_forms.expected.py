"""Inverse updates handed out one at a time by an OpQueue.

Style: the `*_lib` public-wrapper modules, both as `from ... import x_lib`
and `import ...x_lib as alias`; a semicolon-joined line; a parenthesised,
backslash-continued chain.
"""
import numpy as np
import tensorflow as tf
from kfac import op_queue as op_queue_lib
import kfac.optimizer as optimizer_lib
import numpy.testing as npt; from kfac import layer_collection as layer_collection_lib


def main():
  rng = np.random.RandomState(5)
  with tf.Graph().as_default():
    tf.compat.v1.set_random_seed(5)
    x = tf.constant(rng.rand(12, 4).astype(np.float32))
    y = tf.constant(rng.randint(0, 3, size=12).astype(np.int64))
    init = tf.compat.v1.random_normal_initializer(stddev=0.3)
    w0 = tf.compat.v1.get_variable("w0", [4, 5], initializer=init)
    b0 = tf.compat.v1.get_variable("b0", [5], initializer=init)
    pre0 = tf.matmul(x, w0) + b0
    h = tf.nn.tanh(pre0)
    w1 = tf.compat.v1.get_variable("w1", [5, 3], initializer=init)
    logits = tf.matmul(h, w1)

    lc = layer_collection_lib.LayerCollection()
    lc.register_fully_connected((w0, b0), x, pre0)
    lc.register_fully_connected(w1, h, logits)
    lc.register_categorical_predictive_distribution(logits)
    loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                       logits=logits))

    optimizer = optimizer_lib.KfacOptimizer(0.05, 0.95, 0.01, lc)
    train_op = optimizer.minimize(loss)
    inv_update_queue = (op_queue_lib
                        .OpQueue(optimizer.inv_updates_dict.values(), seed=5))
    num_ops = len(optimizer.inv_updates_dict)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      seen = set()
      for _ in range(num_ops):
        sess.run([train_op, optimizer.cov_update_op])
        op = inv_update_queue.next_op(sess)
        seen.add(op.name)
        sess.run(op)
      loss_value = sess.run(loss)
  npt.assert_equal(len(seen), num_ops)  # one epoch hands out every op once
  assert np.isfinite(loss_value), loss_value
  print("opqueue_lib_forms: loss %.4f" % loss_value)


if __name__ == "__main__":
  main()
