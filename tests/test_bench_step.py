"""Tests for the bound variants of tools/bench_step.py (not its timings).

The `floor` variant must really run the sampled-loss back-propagation of a
K-FAC covariance update (and nothing of the statistics), and the
`kfac_free_convin` variant must replace exactly the conv input statistic by
a constant: otherwise the ratios the benchmark prints would be bounds of
something else.
"""

import os
import sys

from absl.testing import absltest
import numpy as np
import tensorflow as tf

from kfac import fisher_factors as ff

_TOOLS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "tools")
if _TOOLS not in sys.path:
  sys.path.insert(0, _TOOLS)

import bench_step  # noqa: E402


def _ancestor_types(tensors):
  """The op types of every op the given tensors or ops depend on."""
  seen, stack = set(), [getattr(t, "op", t) for t in tensors]
  types = set()
  while stack:
    op = stack.pop()
    if op.name in seen:
      continue
    seen.add(op.name)
    types.add(op.type)
    stack.extend(t.op for t in op.inputs)
    stack.extend(op.control_inputs)
  return types


class FloorVariantTest(absltest.TestCase):
  def test_floor_back_propagates_the_sampled_loss_only(self):
    run = bench_step._build("floor", "cifar", 2, True)
    try:
      _, sampled = run["step"]
      self.assertIsNone(run["inverse"])
      # The sampled targets and the gradients down to conv1's outputs
      # (through the input gradients of conv3 and conv2); no filter
      # gradient, no patches.
      types = _ancestor_types([sampled])
      self.assertIn("Multinomial", types)
      self.assertIn("Conv2DBackpropInput", types)
      self.assertNotIn("Conv2DBackpropFilter", types)
      self.assertNotIn("ExtractImagePatches", types)
      # No Fisher factor at all.
      with run["session"].graph.as_default():
        names = [v.op.name for v in tf.compat.v1.global_variables()]
      self.assertEqual([n for n in names if n.startswith("ff_")], [])
      value = run["session"].run(run["step"], run["feed"])[1]
      self.assertTrue(np.isfinite(value))
    finally:
      run["session"].close()


class FreeConvInputVariantTest(absltest.TestCase):
  def test_only_the_conv_input_factor_is_replaced(self):
    collection = bench_step._FreeConvInputLayerCollection()
    with tf.Graph().as_default():
      x = tf.compat.v1.placeholder(tf.float32, [None, 6, 6, 2], name="x")
      g = tf.compat.v1.placeholder(tf.float32, [None, 6, 6, 3], name="g")
      conv_in = collection.make_or_get_factor(
        ff.ConvInputKroneckerFactor,
        (x, (3, 3, 2, 3), (1, 1, 1, 1), "SAME", True),
      )
      conv_out = collection.make_or_get_factor(
        ff.ConvOutputKroneckerFactor, ((g,),)
      )
      self.assertIsInstance(conv_in, bench_step._ConstantConvInputFactor)
      self.assertIs(type(conv_out), ff.ConvOutputKroneckerFactor)
      # Same variable as the real factor; the statistic ignores the inputs.
      self.assertEqual(conv_in.get_cov().shape.as_list(), [19, 19])
      new_cov = conv_in._compute_new_cov()
      self.assertNotIn("Placeholder", _ancestor_types([new_cov]))
      with tf.compat.v1.Session() as sess:
        np.testing.assert_array_equal(sess.run(new_cov), np.eye(19))


if __name__ == "__main__":
  absltest.main()
