"""Tests for kfac.op_queue (legacy op_queue_test.py plus epoch behaviour)."""

from absl.testing import parameterized
import pytest
import tensorflow as tf

from kfac import op_queue


def _make_ops(n):
  return [tf.constant(float(i), name="op_%d" % i).op for i in range(n)]


class OpQueueTest(parameterized.TestCase):
  def test_next_op(self):
    # Legacy testNextOp: three ops, seed 0.
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      ops = _make_ops(3)
      queue = op_queue.OpQueue(ops, seed=0)
      self.assertCountEqual(queue.ops, ops)
      drawn = [queue.next_op(sess) for _ in ops]
      self.assertCountEqual(drawn, ops)
      # The queue repeats: a fourth draw is one of the ops again.
      self.assertIn(queue.next_op(sess), ops)

  @parameterized.named_parameters(
    ("one_op", 1, 4),
    ("five_ops", 5, 6),
  )
  def test_every_epoch_is_a_permutation(self, num_ops, num_epochs):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      ops = _make_ops(num_ops)
      queue = op_queue.OpQueue(ops, seed=3)
      orders = []
      for _ in range(num_epochs):
        epoch = [queue.next_op(sess) for _ in range(num_ops)]
        self.assertCountEqual(epoch, ops)
        orders.append(tuple(op.name for op in epoch))
      if num_ops > 1:
        # Reshuffled each epoch: 6 epochs of 5 ops are not all the same order.
        self.assertGreater(len(set(orders)), 1)

  def test_seed_makes_order_reproducible(self):
    def draw():
      with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        tf.compat.v1.set_random_seed(7)
        queue = op_queue.OpQueue(_make_ops(6), seed=11)
        return [queue.next_op(sess).name for _ in range(12)]

    self.assertEqual(draw(), draw())

  def test_each_local_session_walks_the_cycle_from_its_start(self):
    with tf.Graph().as_default():
      queue = op_queue.OpQueue(_make_ops(4), seed=5)
      with tf.compat.v1.Session() as sess1, tf.compat.v1.Session() as sess2:
        first = [queue.next_op(sess1).name for _ in range(8)]
        second = [queue.next_op(sess2).name for _ in range(8)]
    self.assertEqual(first, second)

  def test_accepts_dict_values(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      ops = _make_ops(2)
      queue = op_queue.OpQueue({op.name: op for op in ops}.values())
      self.assertIn(queue.next_op(sess), ops)

  def test_returned_op_is_not_run(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      v = tf.compat.v1.get_variable("v", initializer=0.0)
      inc = tf.compat.v1.assign_add(v, 1.0).op
      sess.run(tf.compat.v1.global_variables_initializer())
      queue = op_queue.OpQueue([inc])
      self.assertIs(queue.next_op(sess), inc)
      self.assertEqual(sess.run(v), 0.0)

  def test_empty_ops_raise(self):
    with tf.Graph().as_default():
      with pytest.raises(ValueError, match="ops"):
        op_queue.OpQueue([])

  def test_non_op_raises(self):
    with tf.Graph().as_default():
      with pytest.raises(TypeError, match="tf.Operation"):
        op_queue.OpQueue(["not an op"])

  def test_accepts_tensors(self):
    # The 2017 inverse updates were assign result tensors.
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      tensors = [tf.constant(1.0, name="t0"), tf.constant(2.0, name="t1")]
      queue = op_queue.OpQueue(tensors, seed=1)
      drawn = [queue.next_op(sess) for _ in tensors]
      self.assertCountEqual(drawn, tensors)
