"""Tests of the examples in `kfac/examples/`.

Covers the 2017 example tests (mnist_test, mlp_test, convnet_test) that apply
to the 1.4 API, the digits/MNIST loading, every example's entry point for a
few steps, and a seeded training comparison: on the digits MLP, 200 K-FAC
steps reach a lower training loss than 200 steps of plain SGD, each given
the same learning-rate budget (the best of the same number of tries).
"""

import gzip
import importlib
import importlib.util
import os
import struct
import subprocess
import sys
import tempfile
import threading

from absl import flags
from absl.testing import parameterized
import numpy as np
import pytest
import tensorflow as tf

from kfac import layer_collection as lc
from kfac.examples import autoencoder
from kfac.examples import common
from kfac.examples import convnet
from kfac.examples import convnet_distributed
from kfac.examples import mlp
from kfac.examples import mlp_mnist_main
from kfac.examples import mnist

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_idx(path, array, type_code=0x08):
  """Writes `array` as an IDX file (gzipped if `path` ends with .gz)."""
  header = struct.pack(">HBB", 0, type_code, array.ndim)
  header += struct.pack(">%dI" % array.ndim, *array.shape)
  data = (
    header + array.astype(">u1" if type_code == 0x08 else array.dtype).tobytes()
  )
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(data)


def _join_queue_runners():
  """Waits for SyncReplicasOptimizer's queue-runner threads to end.

  When the chief's session closes, its queue runner ends with a
  `CancelledError` (the normal end of training); waiting here keeps that
  inside the test that caused it.
  """
  for thread in threading.enumerate():
    if thread.name.startswith("QueueRunnerThread"):
      thread.join(10.0)


# One worker task, no parameter servers, in this process (no server).
_IN_PROCESS_CLUSTER = dict(
  task_id=0, num_worker_tasks=1, num_ps_tasks=0, master=""
)


class MnistTest(parameterized.TestCase):
  def _tempdir(self):
    tmp = tempfile.TemporaryDirectory()
    self.addCleanup(tmp.cleanup)
    return tmp.name

  @parameterized.named_parameters(
    ("flat", True, (64, 784)), ("unflat", False, (64, 28, 28, 1))
  )
  def testFakeShapesAndValues(self, flatten, shape):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      examples, labels = mnist.load_mnist(
        None,
        num_epochs=1,
        batch_size=64,
        flatten_images=flatten,
        use_fake_data=True,
      )
      examples_, labels_ = sess.run([examples, labels])
    self.assertEqual(examples_.shape, shape)
    self.assertEqual(labels_.shape, (64,))
    self.assertTrue(np.all((0 <= examples_) & (examples_ < 1)))
    self.assertTrue(np.all((0 <= labels_) & (labels_ < 10)))

  @parameterized.named_parameters(
    ("flat", True, (32, 64)), ("unflat", False, (32, 8, 8, 1))
  )
  def testDigits(self, flatten, shape):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      examples, labels = mnist.load_mnist(
        "", num_epochs=1, batch_size=32, flatten_images=flatten, seed=1
      )
      examples_, labels_ = sess.run([examples, labels])
    self.assertEqual(examples_.shape, shape)
    self.assertEqual(examples_.dtype, np.float32)
    self.assertEqual(labels_.dtype, np.int64)
    self.assertTrue(np.all((0 <= examples_) & (examples_ <= 1)))
    images, all_labels = mnist.load_arrays("digits")
    self.assertEqual(images.shape, (1500, 64))
    self.assertEqual(sorted(set(all_labels.tolist())), list(range(10)))

  def testDigitsTestSplitIsHeldOut(self):
    train_images, train_labels = mnist.load_arrays("", split="train")
    test_images, test_labels = mnist.load_arrays("", split="test")
    all_images, all_labels = mnist.load_digits_arrays()
    self.assertEqual(test_images.shape, (mnist.DIGITS_TEST_EXAMPLES, 64))
    self.assertEqual(len(train_images) + len(test_images), len(all_images))
    # Every image is in exactly one split, with its own label.
    key = lambda images, labels: sorted(
      (tuple(i.ravel().tolist()), int(l)) for i, l in zip(images, labels)
    )
    self.assertEqual(
      key(
        np.concatenate([train_images, test_images]),
        np.concatenate([train_labels, test_labels]),
      ),
      key(all_images, all_labels),
    )
    train_keys = {tuple(i.tolist()) for i in train_images}
    self.assertLess(
      sum(tuple(i.tolist()) in train_keys for i in test_images),
      # The digits hold a few duplicate images; almost none may repeat.
      5,
    )
    self.assertEqual(sorted(set(test_labels.tolist())), list(range(10)))
    self.assertTrue(mnist.has_test_split("digits"))
    self.assertFalse(mnist.has_test_split(None, use_fake_data=True))
    with self.assertRaisesRegex(ValueError, "fake data has no test split"):
      mnist.load_arrays(None, use_fake_data=True, split="test")
    with self.assertRaisesRegex(ValueError, "split must be one of"):
      mnist.load_arrays("", split="validation")

  @parameterized.named_parameters(("plain", ""), ("gzip", ".gz"))
  def testReadsIdxFiles(self, suffix):
    tmp = self._tempdir()
    rng = np.random.RandomState(0)
    raw = rng.randint(0, 256, size=(5, 28, 28)).astype(np.uint8)
    raw_labels = np.array([3, 1, 4, 1, 5], np.uint8)
    _write_idx(os.path.join(tmp, "train-images-idx3-ubyte" + suffix), raw)
    _write_idx(
      os.path.join(tmp, "train-labels-idx1-ubyte" + suffix), raw_labels
    )
    images, labels = mnist.load_arrays(tmp, flatten_images=False)
    self.assertEqual(images.shape, (5, 28, 28, 1))
    np.testing.assert_allclose(images[..., 0], raw / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(labels, [3, 1, 4, 1, 5])
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      examples, batch_labels = mnist.load_mnist(tmp, 1, 5, seed=0)
      examples_, labels_ = sess.run([examples, batch_labels])
    self.assertEqual(examples_.shape, (5, 784))
    self.assertEqual(sorted(labels_.tolist()), [1, 1, 3, 4, 5])
    # No t10k files: no test split.
    self.assertFalse(mnist.has_test_split(tmp))
    with self.assertRaisesRegex(ValueError, "no MNIST test files"):
      mnist.load_arrays(tmp, split="test")
    _write_idx(os.path.join(tmp, "t10k-images-idx3-ubyte" + suffix), raw[:2])
    _write_idx(
      os.path.join(tmp, "t10k-labels-idx1-ubyte" + suffix), raw_labels[:2]
    )
    self.assertTrue(mnist.has_test_split(tmp))
    test_images, test_labels = mnist.load_arrays(tmp, split="test")
    self.assertEqual(test_images.shape, (2, 784))
    np.testing.assert_array_equal(test_labels, [3, 1])

  def testDigitsWithoutScikitLearnSaysWhatToInstall(self):
    saved = {
      k: v
      for k, v in sys.modules.items()
      if k == "sklearn" or k.startswith("sklearn.")
    }
    for k in saved:
      del sys.modules[k]
    sys.modules["sklearn"] = None  # Makes `import sklearn...` fail.
    try:
      with self.assertRaisesRegex(ImportError, r"kfac-contrib\[examples\]"):
        mnist.load_digits_arrays()
    finally:
      del sys.modules["sklearn"]
      sys.modules.update(saved)

  def testMissingFilesRaise(self):
    tmp = self._tempdir()
    with self.assertRaisesRegex(ValueError, "nothing is downloaded"):
      mnist.load_arrays(tmp)

  def testBadIdxRaises(self):
    path = os.path.join(self._tempdir(), "bad")
    with open(path, "wb") as f:
      f.write(b"\x01\x02\x03\x04garbage")
    with self.assertRaisesRegex(ValueError, "magic"):
      mnist.read_idx(path)


class MlpTest(parameterized.TestCase):
  def testFcLayer(self):
    with tf.Graph().as_default():
      inputs = tf.random.uniform(shape=[5, 3])
      pre, act, (kernel, bias) = mlp.fc_layer(1, inputs, 10)
      self.assertEqual(pre.shape.as_list(), [5, 10])
      self.assertEqual(act.shape.as_list(), [5, 10])
      self.assertEqual(kernel.shape.as_list(), [3, 10])
      self.assertEqual(bias.shape.as_list(), [10])
      self.assertIsInstance(kernel, tf.Variable)
      self.assertIsInstance(bias, tf.Variable)
      self.assertIn("fc_1/", kernel.name)
      self.assertIn("fc_1/", bias.name)
      self.assertEqual(kernel.op.name, "fc_1/kernel")
      self.assertEqual(bias.op.name, "fc_1/bias")
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        pre_, act_ = sess.run([pre, act])
      np.testing.assert_allclose(np.tanh(pre_), act_, rtol=1e-5, atol=1e-6)

  def testBuildModelRegistersEveryLayer(self):
    with tf.Graph().as_default():
      examples = tf.random.uniform([6, 64])
      labels = tf.constant([0, 1, 2, 3, 4, 5], tf.int64)
      layer_collection = lc.LayerCollection()
      mlp.build_model(examples, labels, 10, layer_collection)
      self.assertLen(layer_collection.get_blocks(), 4)
      self.assertLen(layer_collection.losses, 1)

  def testTrainMnist(self):
    with tf.Graph().as_default():
      # 1 epoch of 4 * 64 fake examples: 4 steps.
      accuracy = mlp.train_mnist(
        None, num_epochs=1, use_fake_data=True, verbose=False
      )
    self.assertBetween(accuracy, 0.0, 1.0)
    # A mini-batch accuracy: a whole number of the 64 examples.
    self.assertAlmostEqual(accuracy * 64, round(accuracy * 64), places=3)


class ConvNetTest(parameterized.TestCase):
  def testConvLayer(self):
    with tf.Graph().as_default():
      pre, act, (kernel, bias) = convnet.conv_layer(
        layer_id=1, inputs=tf.zeros([5, 3, 3, 2]), kernel_size=3, out_channels=5
      )
      self.assertEqual(pre.shape.as_list(), [5, 3, 3, 5])
      self.assertEqual(act.shape.as_list(), [5, 3, 3, 5])
      self.assertEqual(kernel.shape.as_list(), [3, 3, 2, 5])
      self.assertEqual(bias.shape.as_list(), [5])
      self.assertEqual(kernel.op.name, "conv_1/kernel")
      self.assertIsInstance(kernel, tf.Variable)

  def testMaxPoolLayer(self):
    with tf.Graph().as_default():
      act = convnet.max_pool_layer(
        layer_id=1, inputs=tf.zeros([5, 6, 6, 2]), kernel_size=5, stride=3
      )
      self.assertEqual(act.shape.as_list(), [5, 2, 2, 2])
      self.assertEqual(act.op.name, "pool_1/pool")

  def testLinearLayer(self):
    with tf.Graph().as_default():
      act, (kernel, bias) = convnet.linear_layer(
        layer_id=1, inputs=tf.zeros([5, 20]), output_size=5
      )
      self.assertEqual(act.shape.as_list(), [5, 5])
      self.assertEqual(kernel.shape.as_list(), [20, 5])
      self.assertEqual(bias.shape.as_list(), [5])

  def testBuildModel(self):
    with tf.Graph().as_default():
      x = tf.compat.v1.placeholder(tf.float32, [None, 6, 6, 3])
      y = tf.compat.v1.placeholder(tf.int64, [None])
      layer_collection = lc.LayerCollection()
      loss, accuracy = convnet.build_model(
        x, y, num_labels=5, layer_collection=layer_collection
      )
      # Two conv layers and one linear layer, one loss.
      self.assertLen(layer_collection.get_blocks(), 3)
      self.assertLen(layer_collection.losses, 1)
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        loss_, accuracy_ = sess.run(
          [loss, accuracy],
          feed_dict={
            x: np.random.randn(10, 6, 6, 3).astype(np.float32),
            y: np.random.randint(5, size=10),
          },
        )
      self.assertTrue(np.isfinite(loss_))
      self.assertBetween(accuracy_, 0.0, 1.0)

  def _build_toy_problem(self):
    """A 1-weight linear regression: y = w x with x in {1, 2}, w* = 1.

    Returns:
      loss, accuracy (= loss), layer_collection.
    """
    x = np.asarray([[1.0], [2.0]]).astype(np.float32)
    y = np.asarray([[1.0], [2.0]]).astype(np.float32)
    x, y = tf.compat.v1.data.make_one_shot_iterator(
      tf.data.Dataset.from_tensor_slices((x, y)).repeat(100).batch(2)
    ).get_next()
    w = tf.compat.v1.get_variable(
      "w", shape=[1, 1], initializer=tf.compat.v1.zeros_initializer()
    )
    y_hat = tf.matmul(x, w)
    loss = tf.reduce_mean(0.5 * tf.square(y_hat - y))
    accuracy = loss
    layer_collection = lc.LayerCollection()
    layer_collection.register_fully_connected(params=w, inputs=x, outputs=y_hat)
    layer_collection.register_normal_predictive_distribution(y_hat)
    return loss, accuracy, layer_collection

  def testMinimizeLossSingleMachine(self):
    with tf.Graph().as_default():
      loss, accuracy, layer_collection = self._build_toy_problem()
      # Initial loss 1.25; 100 steps (the data runs out), legacy settings
      # except a learning rate suited to this tiny problem.
      accuracy_ = convnet.minimize_loss_single_machine(
        loss,
        accuracy,
        layer_collection,
        learning_rate=0.1,
        inv_update_interval=10,
        verbose=False,
      )
    self.assertLess(accuracy_, 1.0)
    # From 1.25 the loss goes to about 1e-5; a step that barely moves w
    # would stop far above 1e-2.
    self.assertLess(accuracy_, 1e-2)

  @pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnhandledThreadExceptionWarning"
  )
  def testMinimizeLossDistributedInProcess(self):
    with tf.Graph().as_default():
      loss, accuracy, layer_collection = self._build_toy_problem()
      accuracy_ = convnet.minimize_loss_distributed(
        **_IN_PROCESS_CLUSTER,
        checkpoint_dir=None,
        loss=loss,
        accuracy=accuracy,
        layer_collection=layer_collection,
        learning_rate=0.1,
        inv_update_interval=10,
        verbose=False,
      )
      _join_queue_runners()
    self.assertLess(accuracy_, 1.0)
    # From 1.25 the loss goes to about 1e-5; a step that barely moves w
    # would stop far above 1e-2.
    self.assertLess(accuracy_, 1e-2)

  def testTaskRoles(self):
    self.assertEqual([convnet.task_role(i, 1) for i in range(1)], ["train"])
    self.assertEqual(
      [convnet.task_role(i, 2) for i in range(2)], ["train", "train"]
    )
    self.assertEqual(
      [convnet.task_role(i, 3) for i in range(3)], ["train", "cov", "inv"]
    )
    self.assertEqual(
      [convnet.task_role(i, 5) for i in range(5)],
      ["train"] * 3 + ["cov", "inv"],
    )
    self.assertEqual(
      [convnet.task_role(i, 10) for i in range(10)],
      ["train"] * 6 + ["cov"] * 3 + ["inv"],
    )

  @pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnhandledThreadExceptionWarning"
  )
  def testTrainMnistDistributedInProcess(self):
    with tf.Graph().as_default():
      accuracy = convnet.train_mnist_distributed(
        **_IN_PROCESS_CLUSTER,
        data_dir=None,
        num_epochs=1,
        use_fake_data=True,
        batch_size=16,
        verbose=False,
      )
      _join_queue_runners()
    self.assertBetween(accuracy, 0.0, 1.0)
    # A mini-batch accuracy: a whole number of the 16 examples.
    self.assertAlmostEqual(accuracy * 16, round(accuracy * 16), places=3)

  def testTrainMnistSingleMachine(self):
    with tf.Graph().as_default():
      accuracy = convnet.train_mnist_single_machine(
        None, num_epochs=1, use_fake_data=True, batch_size=16, verbose=False
      )
    self.assertBetween(accuracy, 0.0, 1.0)
    # A mini-batch accuracy: a whole number of the 16 examples.
    self.assertAlmostEqual(accuracy * 16, round(accuracy * 16), places=3)


class AutoencoderTest(parameterized.TestCase):
  def testDefaultSizes(self):
    self.assertEqual(autoencoder.default_sizes(784), ((1000, 500, 250), 30))
    self.assertEqual(autoencoder.default_sizes(64), ((128, 64, 32), 8))
    self.assertEqual(autoencoder.default_sizes(16), ((32, 16, 8), 2))

  def testBuildModel(self):
    with tf.Graph().as_default():
      examples = tf.random.uniform([7, 64])
      layer_collection = lc.LayerCollection()
      loss, error = autoencoder.build_model(examples, layer_collection)
      # Encoder 3 + code 1 + decoder 3 + output 1 layers.
      self.assertLen(layer_collection.get_blocks(), 8)
      self.assertLen(layer_collection.losses, 1)
      names = sorted(v.op.name for v in tf.compat.v1.trainable_variables())
      self.assertIn("fc_4/kernel", names)
      kernels = {
        v.op.name: v.shape.as_list() for v in tf.compat.v1.trainable_variables()
      }
      self.assertEqual(kernels["fc_3/kernel"], [32, 8])
      self.assertEqual(kernels["fc_7/kernel"], [128, 64])
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        loss_, error_ = sess.run([loss, error])
      self.assertGreater(loss_, 0.0)
      self.assertGreater(error_, 0.0)


def _flag_values(module, argv):
  """Fresh flags of an example's program, parsed from `argv`."""
  fv = flags.FlagValues()
  if module is convnet_distributed:
    module.define_flags(fv)
  elif hasattr(module, "DEFAULTS"):
    common.define_flags(module.DEFAULTS, fv)
  else:
    module.define_flags(fv)
  fv(["prog"] + argv)
  return fv


def _run_main(module, argv):
  """Runs `module.main` with the given flags (fresh flags, this process)."""
  module.main([], _flag_values(module, argv))


@pytest.mark.parametrize(
  "module", [mlp, convnet, autoencoder], ids=["mlp", "convnet", "autoencoder"]
)
def test_entry_point_main(module, capsys):
  with tf.Graph().as_default():
    _run_main(
      module,
      [
        "--steps=3",
        "--batch_size=16",
        "--log_every=1",
        "--inv_update_interval=2",
      ],
    )
  out = capsys.readouterr().out
  assert "step 3/3" in out
  assert ": done, 3 steps" in out
  # The summary reports the whole training split and the held-out digits.
  summary = out.strip().splitlines()[-1]
  assert "(whole training set); held-out test set: loss " in summary


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_entry_point_baselines(optimizer, capsys):
  with tf.Graph().as_default():
    _run_main(
      mlp, ["--steps=2", "--optimizer=%s" % optimizer, "--learning_rate=0.01"]
    )
  assert "mlp/%s: done, 2 steps" % optimizer in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["empirical", "curvature_prop", "exact"])
def test_entry_point_estimation_modes(mode, capsys):
  with tf.Graph().as_default():
    _run_main(
      mlp, ["--steps=2", "--estimation_mode=%s" % mode, "--momentum_type=adam"]
    )
  assert "mlp/kfac: done, 2 steps" in capsys.readouterr().out


@pytest.mark.slow
def test_command_line():
  """`python -m kfac.examples.mlp` runs as a program, quietly."""
  env = dict(os.environ, PYTHONPATH=_REPO)
  proc = subprocess.run(
    [sys.executable, "-m", "kfac.examples.mlp", "--steps=2", "--log_every=1"],
    cwd=_REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.strip().splitlines()
  assert lines[-1].startswith("mlp/kfac: done, 2 steps")
  assert "step 1/2" in lines[0]


def _best_final_loss(optimizer, learning_rates):
  """Best whole-training-set loss after 200 steps over `learning_rates`."""
  losses = []
  for learning_rate in learning_rates:
    with tf.Graph().as_default():
      result = mlp.train_mnist_result(
        "",
        None,
        evaluate_on_training_set=True,
        steps=200,
        optimizer=optimizer,
        learning_rate=learning_rate,
        momentum=0.0,
        seed=1,
        verbose=False,
      )
    losses.append(result["loss"] if np.isfinite(result["loss"]) else np.inf)
  return min(losses)


def test_kfac_beats_sgd_on_digits_mlp():
  """200 K-FAC steps reach a lower training loss than 200 SGD steps.

  Both run without momentum, from the same seeded initialisation and batch
  order, and each gets the same learning-rate budget: the best of three
  learning rates spanning a factor of 9.
  """
  sgd = _best_final_loss("sgd", [0.1, 0.3, 0.9])
  kfac = _best_final_loss("kfac", [0.03, 0.1, 0.3])
  assert kfac < sgd, (kfac, sgd)


@pytest.mark.parametrize(
  "module", [mlp, convnet, autoencoder], ids=["mlp", "convnet", "autoencoder"]
)
def test_stats_tower_registers_once(module):
  """With stats_batch_size, only the statistics tower is registered."""
  with tf.Graph().as_default():
    layer_collection = lc.LayerCollection()
    if module is autoencoder:
      examples = tf.random.uniform([16, 64])
      module.build_model(examples, layer_collection, stats_batch_size=4)
      num_blocks = 8
    else:
      shape = [16, 64] if module is mlp else [16, 8, 8, 1]
      examples = tf.random.uniform(shape)
      labels = tf.zeros([16], tf.int64)
      module.build_model(
        examples, labels, 10, layer_collection, stats_batch_size=4
      )
      num_blocks = 4 if module is mlp else 3
    assert len(layer_collection.get_blocks()) == num_blocks
    assert len(layer_collection.losses) == 1
    # The registered loss sees only the 4-example slice.
    assert layer_collection.losses[0].inputs.shape.as_list()[0] == 4
    # Both towers share one set of variables, and K-FAC accepts the
    # registration (every variable used once in the registered tower).
    num_vars = len(tf.compat.v1.trainable_variables())
    assert num_vars == 2 * num_blocks
    optimizer = common.kfac_optimizer(0.1, 0.95, 0.1, layer_collection)
    assert optimizer.cov_update_op is not None


@pytest.mark.parametrize("name", ["mlp_mnist_main", "convnet_mnist_main"])
def test_legacy_main_modules(name, capsys):
  """The 2017-style mains train for the given epochs (here 1 of fake data)."""
  module = importlib.import_module("kfac.examples." + name)
  fv = flags.FlagValues()
  mlp_mnist_main.define_flags(fv)
  fv(["prog", "--num_epochs=1", "--use_fake_data"])
  with tf.Graph().as_default():
    module.main([], fv)
  assert ": done," in capsys.readouterr().out


def test_bad_data_dir_is_a_flag_error(tmp_path):
  """A bad --data_dir is rejected when the flags are parsed."""
  with pytest.raises(
    flags.IllegalFlagValueError, match="--data_dir: .*nothing is downloaded"
  ):
    _flag_values(mlp, ["--data_dir=%s" % tmp_path, "--steps=1"])


@pytest.mark.parametrize(
  "module",
  [mlp, convnet, autoencoder, convnet_distributed, mlp_mnist_main],
  ids=[
    "mlp",
    "convnet",
    "autoencoder",
    "convnet_distributed",
    "mlp_mnist_main",
  ],
)
def test_good_flags_parse(module):
  _flag_values(module, [])


@pytest.mark.parametrize(
  "flag, message",
  [
    ("--inv_update_interval=0", "--inv_update_interval=0: 0 is not"),
    ("--batch_size=0", "--batch_size=0: 0 is not"),
    ("--steps=-1", "--steps=-1: -1 is not"),
    ("--damping=0", "--damping=0.0: must be a finite number > 0"),
    ("--damping=-1e-3", "--damping=-0.001: must be a finite number > 0"),
    ("--damping=nan", "--damping=nan: must be a finite number > 0"),
    ("--learning_rate=nan", "--learning_rate=nan: must be a finite number"),
    ("--learning_rate=-0.1", "--learning_rate=-0.1: must be a finite number"),
    ("--learning_rate=inf", "--learning_rate=inf: must be a finite number"),
    ("--momentum=nan", "--momentum=nan: must be a finite number >= 0"),
    ("--cov_ema_decay=1.5", "--cov_ema_decay=1.5: must be in [0, 1]"),
    ("--log_every=-1", "--log_every=-1: -1 is not"),
  ],
)
def test_nonsense_flags_are_rejected(flag, message):
  with pytest.raises(flags.IllegalFlagValueError) as raised:
    _flag_values(convnet, [flag])
  assert message in str(raised.value)
  assert "\n" not in str(raised.value)


@pytest.mark.slow
def test_flag_error_is_one_line_from_the_command_line():
  """The program ends with absl's one-line error, not a traceback."""
  proc = subprocess.run(
    [sys.executable, "-m", "kfac.examples.convnet", "--damping=0"],
    cwd=_REPO,
    env=dict(os.environ, PYTHONPATH=_REPO),
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 1, proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert lines[-2] == (
    "FATAL Flags parsing error: flag --damping=0.0: must be a finite number > 0"
  ), proc.stderr
  assert "--helpshort" in lines[-1]
  assert "Traceback" not in proc.stderr


def test_unknown_setting_is_a_type_error():
  with pytest.raises(TypeError, match="stepz"):
    mlp.train_mnist_result("", None, stepz=3)
  with pytest.raises(TypeError, match="stepz"):
    common.Settings(stepz=3)


def test_baseline_defaults_apply_unless_given():
  fv = _flag_values(mlp, ["--optimizer=sgd"])
  settings = common.settings_from_flags(mlp.DEFAULTS, mlp.BASELINE_DEFAULTS, fv)
  assert settings.learning_rate == mlp.BASELINE_DEFAULTS["sgd"]["learning_rate"]
  fv = _flag_values(mlp, ["--optimizer=sgd", "--learning_rate=0.05"])
  settings = common.settings_from_flags(mlp.DEFAULTS, mlp.BASELINE_DEFAULTS, fv)
  assert settings.learning_rate == 0.05
  assert settings.steps == mlp.DEFAULTS.steps


def test_held_out_evaluation():
  """`test_feed` is evaluated after training, once, on held-out data."""
  with tf.Graph().as_default():
    result = mlp.train_mnist_result(
      "", None, evaluate_on_test_set=True, steps=2, verbose=False
    )
  assert 0.0 <= result["test_accuracy"] <= 1.0
  assert np.isfinite(result["test_loss"])
  assert "held-out test set" in result["summary"]
  # Fake data has no test split: nothing to report.
  with tf.Graph().as_default():
    result = mlp.train_mnist_result(
      None,
      None,
      use_fake_data=True,
      evaluate_on_test_set=True,
      steps=2,
      verbose=False,
    )
  assert result["test_accuracy"] is None
  assert "held-out" not in result["summary"]


def _bench_training():
  spec = importlib.util.spec_from_file_location(
    "bench_training", os.path.join(_REPO, "tools", "bench_training.py")
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_bench_training_without_matplotlib(monkeypatch, capsys, tmp_path):
  """Without matplotlib the benchmark prints its results, then a note.

  The training runs are replaced by canned results: what is tested is the
  reporting.
  """
  bench = _bench_training()

  def run_one(problem, optimizer, cfg, record_every, seed):
    del problem, cfg, record_every, seed
    loss = {"momentum": 0.2, "adam": 0.1, "kfac": 0.01}[optimizer]
    return {
      "steps": 3,
      "seconds": 0.3,
      "loss": loss,
      "step_times": [0.1, 0.1, 0.1],
      "history": [(0, 0.0, 2.0), (3, 0.3, loss)],
    }

  monkeypatch.setattr(bench, "run_one", run_one)
  monkeypatch.setattr(
    bench, "time_steps", lambda *args: dict.fromkeys(bench.OPTIMIZERS, 1.0)
  )
  monkeypatch.setitem(sys.modules, "matplotlib", None)
  png = str(tmp_path / "bench.png")
  bench.main(
    ["--problems", "convnet", "--scale", "0.01", "--rounds", "1", "--png", png]
  )
  lines = capsys.readouterr().out.strip().splitlines()
  assert any(line.startswith("convnet     kfac") for line in lines), lines
  assert lines[-2] == (
    "plot: skipped, matplotlib is not installed (pip "
    "install 'kfac-contrib[bench]' installs it)"
  ), lines
  assert lines[-1].startswith("bench_training: done in"), lines
  assert not os.path.exists(png)


def test_bench_training_plot(tmp_path):
  pytest.importorskip("matplotlib")
  bench = _bench_training()
  history = [(0, 0.0, 2.0), (10, 0.5, 1.0)]
  results = {
    ("convnet", o): {"history": history, "setup": 0.1} for o in bench.OPTIMIZERS
  }
  png = str(tmp_path / "bench.png")
  assert bench.plot_or_note(results, ["convnet"], png) == "plot: " + png
  assert os.path.getsize(png) > 0


def _train_mlp(checkpoint_dir, steps, replay_on_resume=False):
  # Every op in the caller's thread (a negative inter-op count): the training
  # op and the covariance update run in one `session.run` and both read the
  # weights; with TF1 reference variables their order decides the numbers, so
  # it must not vary between runs. One pool thread is not enough: the executor
  # still runs cheap ops inline in the caller's thread beside it.
  config = tf.compat.v1.ConfigProto(
    inter_op_parallelism_threads=-1, intra_op_parallelism_threads=1
  )
  with tf.Graph().as_default():
    return mlp.train_mnist_result(
      "",
      None,
      steps=steps,
      batch_size=16,
      inv_update_interval=2,
      log_every=0,
      verbose=False,
      hidden_sizes=(8,),
      checkpoint_dir=checkpoint_dir,
      replay_on_resume=replay_on_resume,
      session_config=config,
    )


def _checkpoint_values(checkpoint_dir):
  reader = tf.train.load_checkpoint(checkpoint_dir)
  return {
    name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
  }


def test_resume_from_checkpoint(tmp_path):
  """A run resumed with replay_on_resume repeats an uninterrupted one.

  6 steps in one go, and 3 steps then 3 more in a new session restored from
  the checkpoint: with the replay, every saved variable (weights, momentum,
  K-FAC's covariances and inverses, global step) is bit-identical; without
  it, the resumed steps draw other batches and samples.
  """
  whole = str(tmp_path / "whole")
  result = _train_mlp(whole, 6)
  assert result["global_step"] == 6 and result["steps"] == 6
  expected = _checkpoint_values(whole)
  assert expected["global_step"] == 6
  for replay, name in ((True, "replayed"), (False, "plain")):
    directory = str(tmp_path / name)
    _train_mlp(directory, 3, replay)
    result = _train_mlp(directory, 6, replay)
    assert result["global_step"] == 6 and result["steps"] == 3, result
    values = _checkpoint_values(directory)
    assert sorted(values) == sorted(expected)
    same = all(np.array_equal(values[k], expected[k]) for k in expected)
    assert same == replay, name


def test_random_draws_of_a_kfac_step():
  with tf.Graph().as_default():
    examples, labels = mnist.load_mnist("", None, 8, seed=0)
    layer_collection = lc.LayerCollection()
    loss, _ = mlp.build_model(
      examples, labels, 10, layer_collection, hidden_sizes=(4,)
    )
    opt = common.kfac_optimizer(0.1, 0.95, 0.1, layer_collection)
    draws = common.random_draws([opt.minimize(loss), opt.cov_update_op])
    types = sorted(op.type for op in draws)
  # The batch, and the sampled targets of the categorical loss.
  assert types == ["IteratorGetNext", "Multinomial"], types
