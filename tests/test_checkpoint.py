"""Checkpoint round trip of every K-FAC variable with `tf.compat.v1` Saver.

A two-layer network is trained with `KfacOptimizer` (momentum, so the
velocity slots matter); after two steps everything is saved. An
uninterrupted run then takes a third step. A fresh graph, built the same
way, restores the checkpoint and takes the third step too: every variable
(weights, covariances, inverses, velocities) must match.
"""

import os
import re
import tempfile

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from kfac import layer_collection as lc_lib
from kfac import optimizer

BATCH, IN, HIDDEN, OUT = 6, 3, 4, 3


def _data():
  rng = np.random.RandomState(0)
  return (rng.randn(BATCH, IN).astype(np.float32),
          rng.randint(0, OUT, size=BATCH).astype(np.int32))


def _build(estimation_mode):
  """Builds the model and the optimizer; returns the ops of one step."""
  x_value, t_value = _data()
  x = tf.constant(x_value)
  targets = tf.constant(t_value)
  lc = lc_lib.LayerCollection()
  inputs = x
  layer_sizes = [(IN, HIDDEN), (HIDDEN, OUT)]
  for i, (n_in, n_out) in enumerate(layer_sizes):
    with tf.compat.v1.variable_scope("fc%d" % i):
      w = tf.compat.v1.get_variable(
          "w", shape=[n_in, n_out],
          initializer=tf.compat.v1.random_normal_initializer(seed=i))
      b = tf.compat.v1.get_variable(
          "b", shape=[n_out], initializer=tf.compat.v1.zeros_initializer())
    pre = tf.matmul(inputs, w) + b
    lc.register_fully_connected((w, b), inputs, pre)
    inputs = tf.tanh(pre) if i + 1 < len(layer_sizes) else pre
  logits = inputs
  lc.register_categorical_predictive_distribution(logits, targets=targets,
                                                  seed=5)
  loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=targets, logits=logits))
  global_step = tf.compat.v1.train.get_or_create_global_step()
  opt = optimizer.KfacOptimizer(0.1, 0.9, 0.01, lc, momentum=0.9,
                                estimation_mode=estimation_mode)
  train_op = opt.minimize(loss, global_step=global_step)
  return opt, train_op


def _step(sess, opt, train_op, with_cov_update):
  if with_cov_update:
    sess.run([train_op, opt.cov_update_op])
  else:
    sess.run(train_op)
  sess.run(opt.inv_update_op)


def _all_values(sess):
  variables = tf.compat.v1.global_variables()
  return dict(zip([v.op.name for v in variables], sess.run(variables)))


class CheckpointTest(parameterized.TestCase):

  # "exact" statistics are deterministic, so the third step may include a
  # covariance update; with sampled ("gradients") statistics the random
  # draws restart in a new session, so the third step is the training step
  # and the inverse update only.
  @parameterized.named_parameters(
      ("exact_with_cov_update", "exact", True),
      ("gradients_train_step", "gradients", False),
  )
  def test_restore_then_step_equals_uninterrupted(self, mode, cov_in_step3):
    tmpdir = tempfile.TemporaryDirectory()
    self.addCleanup(tmpdir.cleanup)
    ckpt_prefix = os.path.join(tmpdir.name, "model")
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      tf.compat.v1.set_random_seed(1)
      opt, train_op = _build(mode)
      saver = tf.compat.v1.train.Saver()
      sess.run(tf.compat.v1.global_variables_initializer())
      _step(sess, opt, train_op, True)
      _step(sess, opt, train_op, True)
      saved = _all_values(sess)
      saver.save(sess, ckpt_prefix)
      _step(sess, opt, train_op, cov_in_step3)
      uninterrupted = _all_values(sess)

    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      tf.compat.v1.set_random_seed(1)
      opt, train_op = _build(mode)
      saver = tf.compat.v1.train.Saver()
      saver.restore(sess, ckpt_prefix)
      restored = _all_values(sess)
      _step(sess, opt, train_op, cov_in_step3)
      resumed = _all_values(sess)

    self.assertEqual(sorted(restored), sorted(saved))
    for name in saved:
      np.testing.assert_array_equal(restored[name], saved[name], err_msg=name)
    for name in uninterrupted:
      np.testing.assert_allclose(resumed[name], uninterrupted[name],
                                 rtol=1e-6, atol=1e-7, err_msg=name)
    # The step really changed the K-FAC state.
    changed = [name for name in saved
               if not np.array_equal(saved[name], uninterrupted[name])]
    self.assertTrue(any(name.endswith("/KFAC") for name in changed))
    if cov_in_step3:
      self.assertTrue(any(name.endswith("/cov") for name in changed))
      self.assertTrue(any("/inv_damp" in name for name in changed))

  def test_every_kfac_variable_is_saved_under_its_legacy_name(self):
    tmpdir = tempfile.TemporaryDirectory()
    self.addCleanup(tmpdir.cleanup)
    ckpt_prefix = os.path.join(tmpdir.name, "model")
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      _build("gradients")
      graph_names = sorted(v.op.name for v in tf.compat.v1.global_variables())
      sess.run(tf.compat.v1.global_variables_initializer())
      tf.compat.v1.train.Saver().save(sess, ckpt_prefix)
    saved_names = sorted(name for name, _ in
                         tf.train.list_variables(ckpt_prefix))
    self.assertEqual(saved_names, graph_names)

    def matching(pattern):
      return [n for n in saved_names if re.fullmatch(pattern, n)]

    # Covariances live in the LayerCollection scope; two Kronecker factors
    # per layer.
    self.assertLen(matching(r"LayerCollection/ff_fckron/.+/cov"), 4)
    # Inverses are created outside it, keyed by the damping tensors' names.
    self.assertLen(matching(r"ff_fckron/.+/inv_damp\w+"), 4)
    # One velocity slot per variable: <var op name>/<optimizer name>.
    self.assertEqual(matching(r".+/KFAC"),
                     ["fc0/b/KFAC", "fc0/w/KFAC", "fc1/b/KFAC", "fc1/w/KFAC"])
    # The exact legacy names of the first layer's input factor: the scope
    # string is the input tensor's name and has_bias; the inverse is keyed by
    # the π-damping tensor `sqrt(damping)*pi`, the `mul_2` that follows π's
    # `mul` and `mul_1` (tr(A)·dim(G), tr(G)·dim(A)).
    self.assertIn("LayerCollection/ff_fckron/Const_True/cov", saved_names)
    self.assertIn("ff_fckron/Const_True/inv_dampmul_2", saved_names)
    self.assertIn("global_step", saved_names)
    # Nothing else.
    self.assertLen(saved_names, 4 + 4 + 4 + 4 + 1)
