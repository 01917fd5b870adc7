"""Checkpoint round trip of every K-FAC variable with `tf.compat.v1` Saver.

A two-layer network is trained with `KfacOptimizer` (momentum, so the
velocity slots matter); after two steps everything is saved. An
uninterrupted run then takes a third step. A fresh graph, built the same
way, restores the checkpoint and takes the third step too: every variable
(weights, covariances, inverses, velocities) must match.
"""

import importlib.util
import os
import re
import subprocess
import sys
import tempfile

from absl.testing import parameterized
import numpy as np
import pytest
import tensorflow as tf

from kfac import checkpoint as kfac_checkpoint
from kfac import layer_collection as lc_lib
from kfac import optimizer

BATCH, IN, HIDDEN, OUT = 6, 3, 4, 3


def _data():
  rng = np.random.RandomState(0)
  return (
    rng.randn(BATCH, IN).astype(np.float32),
    rng.randint(0, OUT, size=BATCH).astype(np.int32),
  )


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
        "w",
        shape=[n_in, n_out],
        initializer=tf.compat.v1.random_normal_initializer(seed=i),
      )
      b = tf.compat.v1.get_variable(
        "b", shape=[n_out], initializer=tf.compat.v1.zeros_initializer()
      )
    pre = tf.matmul(inputs, w) + b
    lc.register_fully_connected((w, b), inputs, pre)
    inputs = tf.tanh(pre) if i + 1 < len(layer_sizes) else pre
  logits = inputs
  lc.register_categorical_predictive_distribution(
    logits, targets=targets, seed=5
  )
  loss = tf.reduce_mean(
    tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=targets, logits=logits
    )
  )
  global_step = tf.compat.v1.train.get_or_create_global_step()
  opt = optimizer.KfacOptimizer(
    0.1, 0.9, 0.01, lc, momentum=0.9, estimation_mode=estimation_mode
  )
  train_op = opt.minimize(loss, global_step=global_step)
  return opt, train_op


def _step(sess, opt, train_op, with_cov_update):
  # One op per run: with TF1 reference variables, a covariance update run
  # together with the training step may read the weights before or after
  # the step changes them, which would make the values irreproducible.
  if with_cov_update:
    sess.run(opt.cov_update_op)
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
      np.testing.assert_allclose(
        resumed[name], uninterrupted[name], rtol=1e-6, atol=1e-7, err_msg=name
      )
    # The step really changed the K-FAC state.
    changed = [
      name
      for name in saved
      if not np.array_equal(saved[name], uninterrupted[name])
    ]
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
    saved_names = sorted(
      name for name, _ in tf.train.list_variables(ckpt_prefix)
    )
    self.assertEqual(saved_names, graph_names)

    def matching(pattern):
      return [n for n in saved_names if re.fullmatch(pattern, n)]

    # Covariances live in the LayerCollection scope; two Kronecker factors
    # per layer.
    self.assertLen(matching(r"LayerCollection/ff_fckron/.+/cov"), 4)
    # Inverses are created outside it, keyed by the damping tensors' names.
    self.assertLen(matching(r"ff_fckron/.+/inv_damp\w+"), 4)
    # One velocity slot per variable: <var op name>/<optimizer name>.
    self.assertEqual(
      matching(r".+/KFAC"),
      ["fc0/b/KFAC", "fc0/w/KFAC", "fc1/b/KFAC", "fc1/w/KFAC"],
    )
    # The exact legacy names of the first layer's input factor: the scope
    # string is the input tensor's name and has_bias; the inverse is keyed by
    # the π-damping tensor `sqrt(damping)*pi`, the `mul_2` that follows π's
    # `mul` and `mul_1` (tr(A)·dim(G), tr(G)·dim(A)).
    self.assertIn("LayerCollection/ff_fckron/Const_True/cov", saved_names)
    self.assertIn("ff_fckron/Const_True/inv_dampmul_2", saved_names)
    self.assertIn("global_step", saved_names)
    # Nothing else.
    self.assertLen(saved_names, 4 + 4 + 4 + 4 + 1)


# --- Checkpoints written by the 2017 library --------------------------------

_LEGACY_DIR = os.path.join(
  os.path.dirname(os.path.abspath(__file__)), "data", "legacy_checkpoints"
)
# (test name, model, namespace, release, fixture folder): the seed's `kfac`
# and each release namespace against the checkpoints its release wrote.
_LEGACY_RELEASES = (
  ("kfac", "kfac", (1, 4), ""),
  ("r1_4", "kfac.r1_4", (1, 4), ""),
  ("r1_5", "kfac.r1_5", (1, 5), "r1.5"),
  ("r1_6", "kfac.r1_6", (1, 6), "r1.6"),
  ("r1_7", "kfac.r1_7", (1, 7), "r1.7"),
  ("r1_8", "kfac.r1_8", (1, 8), "r1.8"),
  ("r1_9", "kfac.r1_9", (1, 9), "r1.9"),
  ("r1_10", "kfac.r1_10", (1, 10), "r1.10"),
)
_LEGACY_MODELS = tuple(
  ("{}_{}".format(label, model), model, package, release, folder)
  for label, package, release, folder in _LEGACY_RELEASES
  for model in ("convnet_classifier", "mlp_regressor")
)


def _legacy_program():
  """The module of programs that wrote the legacy checkpoints."""
  spec = importlib.util.spec_from_file_location(
    "legacy_make_checkpoints", os.path.join(_LEGACY_DIR, "make_checkpoints.py")
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _build_legacy(name, package="kfac", release=(1, 4)):
  """Builds a legacy program with a kfac namespace; returns its module, ops."""
  program = _legacy_program()
  program.RELEASE = release
  tf.compat.v1.set_random_seed(0)
  ops = program.MODELS[name](
    importlib.import_module(package + ".layer_collection"),
    importlib.import_module(package + ".optimizer"),
  )
  return program, ops


def _legacy_prefix(name, folder=""):
  return os.path.join(_LEGACY_DIR, folder, name, "model")


def _legacy_values(name, folder=""):
  with np.load(os.path.join(_LEGACY_DIR, folder, name, "values.npz")) as values:
    return {key: values[key] for key in values.files}


def _mlp_regressor_legacy():
  """The 1.4 mlp_regressor checkpoint's values and prefix, and the program
  module that wrote it (to build changed versions of the model)."""
  name = "mlp_regressor"
  return _legacy_values(name), _legacy_prefix(name), _legacy_program()


def _np_conv_same(x, w, b):
  """3x3 SAME convolution with stride 1, written as explicit loops."""
  batch, height, width, _ = x.shape
  kh, kw, _, c_out = w.shape
  padded = np.pad(x, [(0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)])
  out = np.zeros((batch, height, width, c_out))
  for i in range(height):
    for j in range(width):
      patch = padded[:, i : i + kh, j : j + kw, :]
      for c in range(c_out):
        out[:, i, j, c] = np.sum(patch * w[:, :, :, c], axis=(1, 2, 3))
  return out + b


def _np_sigmoid_xent(labels, logits):
  return (
    np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
  )


def _np_legacy_loss(name, v, x, y):
  """The legacy programs' losses, from variable values, in float64 NumPy."""
  v = {k: value.astype(np.float64) for k, value in v.items()}
  x = x.astype(np.float64)
  if name == "convnet_classifier":
    h = np.maximum(_np_conv_same(x, v["conv1/w"], v["conv1/b"]), 0)
    h = np.maximum(_np_conv_same(h, v["conv2/w"], v["conv2/b"]), 0)
    h = np.tanh(h.reshape(-1, 8 * 8 * 4) @ v["fc1/w"] + v["fc1/b"])
    logits = h @ v["fc2/w"] + v["fc2/b"]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -np.mean([log_probs[n, y[n]] for n in range(len(y))])
  h = np.tanh(x @ v["hidden/w"])
  mean = h @ v["mean_head/w"] + v["mean_head/b"]
  bern = h @ v["bern_head/w"] + v["bern_head/b"]
  mean_target = np.eye(3)[y % 3]
  bern_target = np.eye(2)[y % 2]
  return np.mean((mean - mean_target) ** 2) + np.mean(
    _np_sigmoid_xent(bern_target, bern)
  )


class LegacyCheckpointTest(parameterized.TestCase):
  """The 2017 library's checkpoints restore by name into kfac's graphs."""

  @parameterized.named_parameters(*_LEGACY_MODELS)
  def test_variable_names_match(self, name, package, release, folder):
    with open(os.path.join(_LEGACY_DIR, folder, name, "names.txt")) as f:
      expected = f.read().split()
    with tf.Graph().as_default():
      _build_legacy(name, package, release)
      names = sorted(v.op.name for v in tf.compat.v1.global_variables())
    self.assertEqual(names, expected)
    in_checkpoint = sorted(
      n for n, _ in tf.train.list_variables(_legacy_prefix(name, folder))
    )
    self.assertEqual(in_checkpoint, expected)

  @parameterized.named_parameters(*_LEGACY_MODELS)
  def test_restore_by_name_reproduces_every_value(
    self, name, package, release, folder
  ):
    expected = _legacy_values(name, folder)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      program, (x, y, loss, _, _, _) = _build_legacy(name, package, release)
      variables = tf.compat.v1.global_variables()
      tf.compat.v1.train.Saver(variables).restore(
        sess, _legacy_prefix(name, folder)
      )
      restored = dict(zip([v.op.name for v in variables], sess.run(variables)))
      xb, yb = program.data(name)
      loss_value = sess.run(loss, {x: xb, y: yb})
    self.assertEqual(sorted(restored), sorted(expected))
    for key, value in expected.items():
      self.assertEqual(restored[key].dtype, value.dtype, key)
      np.testing.assert_array_equal(restored[key], value, err_msg=key)
    # The restored weights are the ones the model computes with.
    np.testing.assert_allclose(
      loss_value, _np_legacy_loss(name, expected, xb, yb), rtol=1e-5
    )

  @parameterized.named_parameters(*_LEGACY_MODELS)
  def test_training_continues_from_restored_state(
    self, name, package, release, folder
  ):
    expected = _legacy_values(name, folder)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      program, (x, y, loss, train_op, cov_op, inv_op) = _build_legacy(
        name, package, release
      )
      variables = tf.compat.v1.global_variables()
      tf.compat.v1.train.Saver(variables).restore(
        sess, _legacy_prefix(name, folder)
      )
      xb, yb = program.data(name)
      feed = {x: xb, y: yb}
      losses = []
      for _ in range(2):
        _, _, loss_value = sess.run([train_op, cov_op, loss], feed)
        sess.run(inv_op, feed)
        losses.append(loss_value)
      after = dict(zip([v.op.name for v in variables], sess.run(variables)))
    # The first step starts from the checkpoint's state.
    np.testing.assert_allclose(
      losses[0], _np_legacy_loss(name, expected, xb, yb), rtol=1e-5
    )
    self.assertTrue(np.all(np.isfinite(losses)), losses)
    for key, value in after.items():
      self.assertTrue(np.all(np.isfinite(value)), key)
      # Every weight, momentum slot, covariance and inverse moved on.
      self.assertFalse(np.array_equal(value, expected[key]), key)


# --- Restoring K-FAC state by structure -------------------------------------


def _changed_mlp(program, extra_layer=False):
  """mlp_regressor after a model-code change: other tensor names.

  The input placeholder is renamed and the hidden activations pass through
  a named identity, so two factors (and their inverses) get other names.
  With `extra_layer`, the Bernoulli head gets a hidden layer of its own,
  whose factors the legacy checkpoint does not have.
  """
  x = tf.compat.v1.placeholder(tf.float32, [None, 64], name="features")
  y = tf.compat.v1.placeholder(tf.int64, [None], name="targets")
  lc = lc_lib.LayerCollection()
  h = tf.tanh(program.dense(x, "hidden", 64, 12, lc, "kron", bias=False))
  h = tf.identity(h, name="shared")
  mean = program.dense(h, "mean_head", 12, 3, lc, "kron")
  bern_in = h
  if extra_layer:
    bern_in = tf.tanh(program.dense(h, "bern_hidden", 12, 5, lc, "kron"))
  bern = program.dense(bern_in, "bern_head", bern_in.shape[1], 2, lc, "kron")
  lc.register_normal_predictive_distribution(mean, var=0.5, seed=5)
  lc.register_multi_bernoulli_predictive_distribution(bern, seed=6)
  loss = tf.reduce_mean(tf.square(mean - tf.one_hot(y % 3, 3))) + (
    tf.reduce_mean(
      tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.one_hot(y % 2, 2), logits=bern
      )
    )
  )
  opt = optimizer.KfacOptimizer(
    learning_rate=1.0,
    cov_ema_decay=0.95,
    damping=0.05,
    layer_collection=lc,
    momentum=0.0,
    momentum_type="qmodel",
  )
  train_op = opt.minimize(loss)
  return x, y, loss, train_op, opt.cov_update_op, opt.inv_update_op


# Graph name -> legacy checkpoint name, for the changed program's K-FAC
# variables (written out by hand from the two programs).
_GRADS = (
  "gradients_Tanh_grad_TanhGrad_False",
  "gradients_Normal_log_prob_standardize_sub_grad_Reshape_1_False",
  "gradients_Bernoulli_log_prob_mul_grad_Reshape_1_False",
)
_CHANGED_MLP_MAP = {
  "LayerCollection/ff_fckron/features_False/cov": "LayerCollection/ff_fckron/inputs_False/cov",
  "LayerCollection/ff_fckron/shared_True/cov": "LayerCollection/ff_fckron/Tanh_True/cov",
  "ff_fckron/features_False/inv_dampmul_2": "ff_fckron/inputs_False/inv_dampmul_2",
  "ff_fckron/shared_True/inv_dampmul_5": "ff_fckron/Tanh_True/inv_dampmul_5",
  "ff_fckron/shared_True/inv_dampmul_8": "ff_fckron/Tanh_True/inv_dampmul_8",
  "ff_fckron/{}/inv_damptruediv_1".format(
    _GRADS[0]
  ): "ff_fckron/{}/inv_damptruediv_1".format(_GRADS[0]),
  "ff_fckron/{}/inv_damptruediv_3".format(
    _GRADS[1]
  ): "ff_fckron/{}/inv_damptruediv_3".format(_GRADS[1]),
  "ff_fckron/{}/inv_damptruediv_5".format(
    _GRADS[2]
  ): "ff_fckron/{}/inv_damptruediv_5".format(_GRADS[2]),
}
for _grad in _GRADS:
  _CHANGED_MLP_MAP["LayerCollection/ff_fckron/{}/cov".format(_grad)] = (
    "LayerCollection/ff_fckron/{}/cov".format(_grad)
  )


def _is_factor_variable(name):
  return "ff_" in name


# (test name, namespace, release, fixture folder, TF mode): the script run
# as a program writes the names of the fixtures. Every release runs once and
# both modes are covered; the in-process tests above check every release's
# names in the mode of the test run.
_SCRIPT_RUNS = (
  ("r1_5_v1", "kfac.r1_5", "1.5", "r1.5", "v1"),
  ("r1_6_graph", "kfac.r1_6", "1.6", "r1.6", "graph"),
  ("r1_7_v1", "kfac.r1_7", "1.7", "r1.7", "v1"),
  ("r1_8_v1", "kfac.r1_8", "1.8", "r1.8", "v1"),
  ("r1_10_graph", "kfac.r1_10", "1.10", "r1.10", "graph"),
)


@pytest.mark.slow
@pytest.mark.parametrize(
  "package, release, folder, mode",
  [run[1:] for run in _SCRIPT_RUNS],
  ids=[run[0] for run in _SCRIPT_RUNS],
)
def test_make_checkpoints_writes_the_fixture_names(
  package, release, folder, mode
):
  """`make_checkpoints.py OUT --root kfac.r1_N --release 1.N --mode M`."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with tempfile.TemporaryDirectory() as out:
    proc = subprocess.run(
      [
        sys.executable,
        os.path.join(_LEGACY_DIR, "make_checkpoints.py"),
        out,
        "--root",
        package,
        "--release",
        release,
        "--mode",
        mode,
      ],
      cwd=repo,
      env=dict(os.environ, PYTHONPATH=repo),
      capture_output=True,
      text=True,
      timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for model in ("convnet_classifier", "mlp_regressor"):
      with open(os.path.join(out, model, "names.txt")) as f:
        written = f.read()
      with open(os.path.join(_LEGACY_DIR, folder, model, "names.txt")) as f:
        assert written == f.read(), (model, written)


class RestoreByStructureTest(parameterized.TestCase):
  def _restore_model_by_name(self, sess, prefix):
    """Restores the non-K-FAC variables (weights, slots) by name."""
    model_vars = [
      v
      for v in tf.compat.v1.global_variables()
      if not _is_factor_variable(v.op.name)
    ]
    tf.compat.v1.train.Saver(model_vars).restore(sess, prefix)

  def test_changed_program_restores_every_factor(self):
    legacy, prefix, program = _mlp_regressor_legacy()
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      tf.compat.v1.set_random_seed(0)
      x, y, loss, train_op, cov_op, inv_op = _changed_mlp(program)
      variables = tf.compat.v1.global_variables()
      names = [v.op.name for v in variables]
      self.assertEqual(
        sorted(n for n in names if _is_factor_variable(n)),
        sorted(_CHANGED_MLP_MAP),
      )
      # A by-name restore of the whole graph fails on the renamed factors.
      with self.assertRaises(tf.errors.NotFoundError):
        tf.compat.v1.train.Saver(variables).restore(sess, prefix)
      sess.run(tf.compat.v1.global_variables_initializer())
      self._restore_model_by_name(sess, prefix)
      report = kfac_checkpoint.restore_by_structure(sess, prefix)
      values = dict(zip(names, sess.run(variables)))
      xb, yb = program.data("mlp_regressor")
      loss_value = sess.run(loss, {x: xb, y: yb})
      sess.run([train_op, cov_op], {x: xb, y: yb})
      sess.run(inv_op, {x: xb, y: yb})
      stepped = sess.run(variables)
    self.assertTrue(report.complete)
    self.assertTrue(report.restored)
    self.assertEqual(report.left_at_initial_values, [])
    self.assertEqual(report.unused_checkpoint_entries, [])
    self.assertEqual(report.ambiguous, [])
    self.assertEqual(report.order_source, "names")
    self.assertEqual({m[0]: m[1] for m in report.matched}, _CHANGED_MLP_MAP)
    roles = sorted(m[3] for m in report.matched)
    self.assertEqual(roles, ["covariance"] * 5 + ["inverse"] * 6)
    for name, value in values.items():
      legacy_name = _CHANGED_MLP_MAP.get(name, name)
      np.testing.assert_array_equal(value, legacy[legacy_name], err_msg=name)
    np.testing.assert_allclose(
      loss_value, _np_legacy_loss("mlp_regressor", legacy, xb, yb), rtol=1e-5
    )
    for value in stepped:
      self.assertTrue(np.all(np.isfinite(value)))
    self.assertIn(
      "features_False/cov <- LayerCollection/ff_fckron/inputs_False/cov",
      str(report),
    )

  def test_missing_factors_restore_nothing_unless_partial_is_allowed(self):
    legacy, prefix, program = _mlp_regressor_legacy()
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      tf.compat.v1.set_random_seed(0)
      _changed_mlp(program, extra_layer=True)
      variables = [
        v
        for v in tf.compat.v1.global_variables()
        if _is_factor_variable(v.op.name)
      ]
      sess.run(tf.compat.v1.global_variables_initializer())
      initial = sess.run(variables)
      with self.assertRaisesRegex(ValueError, "have no match") as raised:
        kfac_checkpoint.restore_by_structure(sess, prefix)
      # Nothing was written.
      for before, after in zip(initial, sess.run(variables)):
        np.testing.assert_array_equal(before, after)
      with self.assertLogs("tensorflow", "WARNING") as logs:
        report = kfac_checkpoint.restore_by_structure(
          sess, prefix, allow_partial=True
        )
      after = dict(zip([v.op.name for v in variables], sess.run(variables)))
    self.assertIn("left at initial value", str(raised.exception))
    self.assertIn("partial restore", "\n".join(logs.output))
    self.assertFalse(report.complete)
    # bern_hidden's input factor (Tanh_True would be 13x13: it is the
    # shared input's), its output factor and bern_head's input factor (6x6)
    # have no counterpart; the Bernoulli output factor's [2, 2] does.
    left = sorted(report.left_at_initial_values)
    self.assertEqual(
      left,
      [
        "LayerCollection/ff_fckron/Tanh_1_True/cov",
        "LayerCollection/ff_fckron/gradients_Tanh_1_grad_TanhGrad_False/cov",
        "ff_fckron/Tanh_1_True/inv_dampmul_11",
        "ff_fckron/gradients_Tanh_1_grad_TanhGrad_False/inv_damptruediv_5",
      ],
    )
    self.assertEqual(report.unused_checkpoint_entries, [])
    for name, var_name_value in after.items():
      if name in left:
        continue
      ckpt_name = dict((m[0], m[1]) for m in report.matched)[name]
      np.testing.assert_array_equal(
        var_name_value, legacy[ckpt_name], err_msg=name
      )

  @parameterized.named_parameters(
    ("without_meta_graph", False, "names"),
    ("with_meta_graph", True, "meta graph"),
  )
  def test_same_shaped_factors_pair_in_registration_order(self, meta, source):
    # Two 4 -> 4 layers: two input factors [5, 5] and two output factors
    # [4, 4] of one type; sorted by name, the checkpoint's input factors
    # (Tanh_True, x_True) are in the opposite order of registration.
    rng = np.random.RandomState(0)
    xb = rng.randn(8, 4).astype(np.float32)
    tmpdir = tempfile.TemporaryDirectory()
    self.addCleanup(tmpdir.cleanup)
    prefix = os.path.join(tmpdir.name, "model")

    def build(input_name, hidden_name):
      x = tf.compat.v1.placeholder(tf.float32, [None, 4], name=input_name)
      lc = lc_lib.LayerCollection()
      h = x
      for i in range(2):
        w = tf.compat.v1.get_variable(
          "w%d" % i,
          [4, 4],
          initializer=tf.compat.v1.random_normal_initializer(seed=i),
        )
        b = tf.compat.v1.get_variable("b%d" % i, [4])
        out = tf.matmul(h, w) + b
        lc.register_fully_connected((w, b), h, out)
        h = tf.tanh(out) if i == 0 else out
        if i == 0 and hidden_name:
          h = tf.identity(h, name=hidden_name)
      lc.register_categorical_predictive_distribution(h, seed=1)
      loss = tf.reduce_mean(tf.reduce_logsumexp(h, axis=1) - h[:, 0])
      opt = optimizer.KfacOptimizer(0.1, 0.9, 0.01, lc)
      return x, opt.minimize(loss), opt

    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x, train_op, opt = build("x", None)
      sess.run(tf.compat.v1.global_variables_initializer())
      for _ in range(2):
        sess.run([train_op, opt.cov_update_op], {x: xb})
        sess.run(opt.inv_update_op, {x: xb})
      tf.compat.v1.train.Saver().save(sess, prefix, write_meta_graph=meta)
      saved = {v.op.name: sess.run(v) for v in tf.compat.v1.global_variables()}

    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      build("features", "hidden")
      sess.run(tf.compat.v1.global_variables_initializer())
      report = kfac_checkpoint.restore_by_structure(sess, prefix)
      restored = {
        v.op.name: sess.run(v)
        for v in tf.compat.v1.global_variables()
        if _is_factor_variable(v.op.name)
      }
    self.assertEqual(report.order_source, source)
    self.assertLen(report.ambiguous, 2)
    expected_pairs = {
      "LayerCollection/ff_fckron/features_True/cov": "LayerCollection/ff_fckron/x_True/cov",
      "LayerCollection/ff_fckron/hidden_True/cov": "LayerCollection/ff_fckron/Tanh_True/cov",
      "ff_fckron/features_True/inv_dampmul_2": "ff_fckron/x_True/inv_dampmul_2",
      "ff_fckron/hidden_True/inv_dampmul_5": "ff_fckron/Tanh_True/inv_dampmul_5",
    }
    pairs = {m[0]: m[1] for m in report.matched}
    for name, ckpt_name in expected_pairs.items():
      self.assertEqual(pairs[name], ckpt_name)
    self.assertLen(pairs, 8)
    for name, ckpt_name in pairs.items():
      np.testing.assert_array_equal(
        restored[name], saved[ckpt_name], err_msg=name
      )

  def test_unreadable_checkpoint_raises(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      with self.assertRaisesRegex(ValueError, "save_path"):
        kfac_checkpoint.restore_by_structure(
          sess, os.path.join(_LEGACY_DIR, "no_such_checkpoint")
        )
