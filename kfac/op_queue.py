"""A shuffled, endlessly repeating queue of graph ops.

`OpQueue` is meant for distributed K-FAC training, where one worker runs the
inverse-update ops one at a time instead of all of them at once, e.g.
`OpQueue(optimizer.inv_updates_dict.values())`. The order is drawn by a
`tf.data` pipeline in the graph; its position is session state, so each local
session walks the cycle from its start, while sessions on one server share it.
"""

import tensorflow as tf

from kfac import _surface

# The 1.4 public names, from the one surface table.
__all__ = list(sorted(_surface.public_names("1.4", "op_queue")))


class OpQueue(object):
  """Hands out graph ops in a random order, one per call, forever.

  The op names are sorted, fed to
  `tf.data.Dataset.from_tensor_slices(names).shuffle(len(ops), seed).repeat()`
  and read through a one-shot iterator. Each block of `len(ops)` consecutive
  calls to `next_op` (an "epoch") returns every op exactly once, in an order
  that is reshuffled every epoch.
  """

  def __init__(self, ops, seed=None):
    """Builds the dataset and iterator that pick the ops.

    Args:
      ops: An iterable (list, tuple, `dict.values()`, ...) of
        `tf.Operation`s (or `tf.Tensor`s, as the 2017 assign results were) of
        the default graph. They are identified by their names, so the names
        must be distinct (they are, within one graph).
      seed: Optional Python int, the op-level seed of the shuffle. Together
        with the graph-level seed it makes the order reproducible.

    Raises:
      ValueError: If `ops` is empty.
      TypeError: If an element of `ops` is neither a `tf.Operation` nor a
        `tf.Tensor`.
    """
    ops = list(ops)
    if not ops:
      raise ValueError(
        "ops must contain at least one tf.Operation; got an empty collection."
      )
    for op in ops:
      if not isinstance(op, (tf.Operation, tf.Tensor)):
        raise TypeError(
          "ops must contain only tf.Operation or tf.Tensor "
          "objects; got {!r} of type {}.".format(op, type(op).__name__)
        )
    self._ops_by_name = {op.name: op for op in ops}

    op_names = tf.convert_to_tensor(sorted(self._ops_by_name.keys()))
    op_names_dataset = (
      tf.data.Dataset.from_tensor_slices(op_names)
      .shuffle(len(self._ops_by_name), seed=seed)
      .repeat()
    )
    iterator = tf.compat.v1.data.make_one_shot_iterator(op_names_dataset)
    self._next_op_name = iterator.get_next()

  @property
  def ops(self):
    """The ops held by the queue (a view of the name → op dict's values)."""
    return self._ops_by_name.values()

  def next_op(self, sess):
    """Draws the next op of the shuffled cycle.

    Only the name is drawn; the op itself is not run.

    Args:
      sess: A `tf.compat.v1.Session` on the graph holding the queue. One
        `sess.run` of the iterator is made.

    Returns:
      The drawn element of `ops` (a `tf.Operation` or `tf.Tensor`).
    """
    name = sess.run(self._next_op_name).decode("ascii")
    return self._ops_by_name[name]
