"""Tests for choosing the release in `kfac-upgrade` and the contrib alias.

The corpus in `tests/data/legacy_programs/releases/` holds a 1.6 program
known only from the pin next to it (`pinned_r16/`), a 1.5 program known from
its `reuse=` / `VARIABLE_SCOPE` registration, and a program whose release
cannot be inferred although it matters (it relies on the `momentum`
default). Each `<name>.expected.diff` is the unified diff from the program to
the upgrade's expected output (`legacy_corpus.expected` applies it).
"""

import contextlib
import io
import os
import re
import shutil
import tempfile
import textwrap

from absl.testing import absltest
from absl.testing import parameterized
import pytest

import legacy_corpus as corpus
import sandbox
from kfac import _surface
from kfac.upgrade import _cli
from kfac.upgrade import _release

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_HERE)
_CORPUS = os.path.join(_HERE, "data", "legacy_programs", "releases")
_PROGRAMS = (
  "pinned_r16/train.py",
  "multitower_r15.py",
  "ambiguous_momentum.py",
)


def _run_main(argv):
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    status = _cli.main(argv)
  return status, out.getvalue() + err.getvalue()


def _run_python(code, *args):
  """Runs `python -c code args...` with this repository's kfac.

  Returns:
    (exit status, stdout + stderr).
  """
  env = dict(
    os.environ,
    PYTHONPATH=_REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
    TF_CPP_MIN_LOG_LEVEL="2",
  )
  proc = sandbox.run_python(code, *args, env=env, cwd=_REPO, timeout=300)
  return proc.returncode, proc.stdout + proc.stderr


def _read(path):
  with open(path) as f:
    return f.read()


def _copy_corpus(tmp):
  """Copies the corpus programs and pin files (not the expected outputs)."""
  for dirpath, _, filenames in os.walk(_CORPUS):
    for filename in filenames:
      if filename.endswith(".expected.diff"):
        continue
      rel = os.path.relpath(os.path.join(dirpath, filename), _CORPUS)
      os.makedirs(os.path.join(tmp, os.path.dirname(rel)), exist_ok=True)
      shutil.copyfile(os.path.join(_CORPUS, rel), os.path.join(tmp, rel))


class CorpusTest(parameterized.TestCase):
  """The release corpus upgraded as one tree, without `--tf-version`."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tmp = tempfile.mkdtemp(prefix="kfac_upgrade_releases_")
    _copy_corpus(cls.tmp)
    cls.status, cls.report = _run_main([cls.tmp])

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.tmp, ignore_errors=True)
    super().tearDownClass()

  @parameterized.named_parameters(
    ("pinned_r16", "pinned_r16/train"),
    ("multitower_r15", "multitower_r15"),
  )
  def test_matches_expected(self, name):
    self.assertEqual(
      corpus.read(corpus.program(name, self.tmp)),
      corpus.expected(name, _CORPUS),
    )

  def test_ambiguous_left_untouched(self):
    self.assertEqual(
      _read(os.path.join(self.tmp, "ambiguous_momentum.py")),
      _read(os.path.join(_CORPUS, "ambiguous_momentum.py")),
    )

  def test_report_says_which_release_and_why(self):
    self.assertIn(
      "release: 1.6, rewritten to `kfac.r1_6` (pin "
      "`tensorflow-gpu>=1.6,<1.7` in ",
      self.report,
    )
    self.assertIn(
      "release: 1.5, rewritten to `kfac.r1_5` (line 22 uses "
      "`register_fully_connected(reuse=...)`",
      self.report,
    )
    self.assertIn(
      "line 13 relies on the `momentum` default, which differs "
      "between the possible releases 1.5-1.10 (0.0 in 1.5, 0.9 "
      "in 1.6-1.10)",
      self.report,
    )
    self.assertIn("run with --tf-version 1.N", self.report)

  def test_exit_status_asks_for_the_flag(self):
    self.assertEqual(self.status, 1, self.report)


class FlagTest(parameterized.TestCase):
  """`--tf-version 1.N`."""

  def setUp(self):
    super().setUp()
    self.tmp = sandbox.temp_dir(self, "kfac_upgrade_flag_")
    self.path = os.path.join(self.tmp, "p.py")
    shutil.copyfile(os.path.join(_CORPUS, "ambiguous_momentum.py"), self.path)

  @parameterized.named_parameters(
    ("r" + v.replace(".", "_"), v) for v in _release.VERSIONS
  )
  def test_rewrites_to_the_namespace(self, version):
    """Built releases are rewritten; the others are reported, untouched."""
    flag = version + ".0" if version == "1.6" else version
    target = _release.namespace(version)
    status, report = _run_main(["--tf-version", flag, self.path])
    text = _read(self.path)
    if _release.namespace_available(version):
      self.assertEqual(status, 0, report)
      self.assertIn(target + ".layer_collection.LayerCollection()", text)
      self.assertIn(target + ".optimizer.KfacOptimizer(", text)
      self.assertNotIn("contrib", text)
      self.assertIn("(--tf-version %s)" % version, report)
    else:
      self.assertEqual(status, 1)
      self.assertIn(
        "release %s (from --tf-version %s): `%s` is not available in this "
        "kfac yet" % (version, version, target),
        report,
      )
      self.assertEqual(
        text, _read(os.path.join(_CORPUS, "ambiguous_momentum.py"))
      )

  def test_check_with_flag(self):
    status, _ = _run_main(["--check", "--tf-version", "1.6", self.path])
    self.assertEqual(status, 1)
    self.assertEqual(
      _read(self.path), _read(os.path.join(_CORPUS, "ambiguous_momentum.py"))
    )

  @parameterized.named_parameters(
    ("r1_3", "1.3"), ("r1_11", "1.11"), ("two", "2.0"), ("word", "latest")
  )
  def test_bad_flag(self, flag):
    with contextlib.redirect_stderr(io.StringIO()) as err:
      with self.assertRaises(SystemExit) as raised:
        _cli.main(["--tf-version", flag, self.path])
    self.assertEqual(raised.exception.code, 2)
    self.assertIn("--tf-version must be one of 1.4, 1.5", err.getvalue())


class InternalModulesTest(parameterized.TestCase):
  """`python.ops.placement` / `linear_operator` under `--tf-version`."""

  @parameterized.named_parameters(
    (
      "placement_r1_8",
      "1.8",
      "from tensorflow.contrib.kfac.python.ops import placement\n",
      "from kfac.r1_8 import placement\n",
      None,
    ),
    (
      "linear_operator_r1_10",
      "1.10",
      "import tensorflow.contrib.kfac.python.ops.linear_operator as lo\n",
      "import kfac.r1_10.linear_operator as lo\n",
      None,
    ),
    (
      "linear_operator_class_r1_9",
      "1.9",
      "from tensorflow.contrib.kfac.python.ops.linear_operator import (\n"
      "    LinearOperatorDiag)\n",
      "from kfac.r1_9.linear_operator import (\n    LinearOperatorDiag)\n",
      None,
    ),
    (
      "linear_operator_r1_8",
      "1.8",
      "from tensorflow.contrib.kfac.python.ops import linear_operator\n",
      None,
      "the module `linear_operator` exists from release 1.9 on, and this "
      "program is rewritten to `kfac.r1_8`",
    ),
    (
      "placement_r1_4",
      "1.4",
      "import tensorflow.contrib.kfac.python.ops.placement as p\n",
      None,
      "the module `placement` exists from release 1.8 on",
    ),
  )
  def test_rewritten_or_reported(self, version, line, expected, problem):
    from kfac.upgrade import _engine  # pylint: disable=import-outside-toplevel

    source = "import tensorflow as tf\n" + line
    result = _engine.upgrade_source(source, tf_version=version)
    if expected is not None:
      self.assertEqual(result.source, "import tensorflow as tf\n" + expected)
      self.assertEqual(result.attention, [])
    else:
      self.assertEqual(result.source, source)
      self.assertIn(problem, " ".join(f.message for f in result.attention))


class NoTensorFlowTest(absltest.TestCase):
  """Choosing the release imports no TensorFlow (and no kfac module)."""

  def test_flag_and_inference_import_no_tensorflow(self):
    tmp = sandbox.temp_dir(self, "kfac_upgrade_notf_")
    _copy_corpus(tmp)
    code = textwrap.dedent("""\
        import contextlib, io, sys
        sys.modules["tensorflow"] = None  # As if TensorFlow were missing.
        from kfac.upgrade import main
        with contextlib.redirect_stdout(io.StringIO()):
          assert main(["--check", "--tf-version", "1.6", sys.argv[1]]) == 1
          assert main(["--check", sys.argv[1]]) == 1
        print(sys.modules.get("tensorflow") is not None,
              "kfac.utils" in sys.modules, "kfac.r1_6" in sys.modules)
        """)
    proc = sandbox.run_python(code, tmp, cwd=_REPO, timeout=120)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    self.assertEqual(proc.stdout.split(), ["False", "False", "False"])


class PinTest(parameterized.TestCase):
  """Version pins next to the code."""

  @parameterized.named_parameters(
    ("exact", "requirements.txt", "tensorflow==1.6.0\n", ["1.6"]),
    (
      "gpu_range",
      "requirements-dev.txt",
      "tensorflow-gpu>=1.7,<1.8\n",
      ["1.7"],
    ),
    ("compatible", "requirements.txt", "tensorflow~=1.5.0\n", ["1.5"]),
    (
      "lower_bound",
      "requirements.txt",
      "tensorflow>=1.8\n",
      ["1.8", "1.9", "1.10"],
    ),
    ("upper_bound", "requirements.txt", "tensorflow<1.6\n", ["1.4", "1.5"]),
    ("wildcard", "requirements.txt", "tensorflow==1.9.*\n", ["1.9"]),
    (
      "conda",
      "environment.yml",
      "dependencies:\n  - python=3.6\n  - tensorflow=1.6\n",
      ["1.6"],
    ),
    (
      "setup_py",
      "setup.py",
      "setup(install_requires=['numpy', 'tensorflow>=1.7,<1.8'])\n",
      ["1.7"],
    ),
    (
      "setup_cfg",
      "setup.cfg",
      "[options]\ninstall_requires =\n    tensorflow-cpu == 1.10.1\n",
      ["1.10"],
    ),
    (
      "poetry",
      "pyproject.toml",
      "[tool.poetry.dependencies]\ntensorflow = \"==1.5.1\"\n",
      ["1.5"],
    ),
    (
      "pep621",
      "pyproject.toml",
      "[project]\ndependencies = [\"tensorflow==1.4.1\"]\n",
      ["1.4"],
    ),
    ("tf2", "requirements.txt", "tensorflow==2.4.0\n", []),
  )
  def test_pin(self, filename, text, releases):
    tmp = sandbox.temp_dir(self, "kfac_pins_", {filename: text})
    found = _release.find_pins(os.path.join(tmp, "p.py"), tmp)
    self.assertIsNotNone(found)
    self.assertEqual([r for _, r in found[1]], [releases])

  def test_comments_and_other_packages_ignored(self):
    pins = (
      "# tensorflow==1.6.0\ntensorflow-probability==0.5\n"
      "tensorflow_datasets>=1.0\n"
    )
    tmp = sandbox.temp_dir(self, "kfac_pins_", {"requirements.txt": pins})
    self.assertIsNone(_release.find_pins(os.path.join(tmp, "p.py"), tmp))

  def test_nearest_folder_up_to_root(self):
    tmp = sandbox.temp_dir(
      self,
      "kfac_pins_",
      {
        "requirements.txt": "tensorflow==1.4.0\n",
        "project/requirements.txt": "tensorflow==1.7.0\n",
      },
    )
    project = os.path.join(tmp, "project")
    deep = os.path.join(project, "src", "models")
    os.makedirs(deep)
    program = os.path.join(deep, "p.py")
    self.assertEqual(_release.find_pins(program, project)[1][0][1], ["1.7"])
    self.assertIsNone(_release.find_pins(program, deep))
    sandbox.write_file(
      deep, "setup.cfg", "install_requires = tensorflow==1.5.0\n"
    )
    self.assertEqual(_release.find_pins(program, project)[1][0][1], ["1.5"])

  def test_pin_beats_the_default_question(self):
    """A 1.5 pin decides the momentum default the program relies on."""
    source = _read(os.path.join(_CORPUS, "ambiguous_momentum.py"))
    decision = _release.choose_release(
      source, pins=("requirements.txt", [("tensorflow==1.5", ["1.5"])])
    )
    self.assertIsNone(decision.problem)
    self.assertEqual((decision.version, decision.target), ("1.5", "kfac.r1_5"))


_HEAD = "import tensorflow as tf\nK = tf.contrib.kfac\n"


def _pin(text, releases):
  return ("requirements.txt", [(text, releases)])


_OPT = "o = K.optimizer.KfacOptimizer(0.1, 0.9, 0.01, lc"
_LC = "lc = K.layer_collection.LayerCollection()\n"

# name, program body (after _HEAD), pins, the release chosen (None: the
# flag is asked for), a phrase of the reason (or of the question).
_INFERENCE_CASES = (
  ("nothing_later", _LC + _OPT + ")\n", None, None, "the 1.4 API"),
  ("removed_in_1_5", "K.utils.compute_pi(a, b)\n", None, "1.4", "compute_pi"),
  (
    "dropped_later_fits_1_4",
    _LC + _OPT + ", momentum=0.)\nop = o.cov_update_op\n",
    None,
    None,
    "the 1.4 API",
  ),
  (
    "cov_update_op_and_thunks",
    "op = o.cov_update_op\nc, i = o.make_vars_and_create_op_thunks()\n",
    _pin("tensorflow>=1.8", ["1.8", "1.9", "1.10"]),
    "1.8",
    "`.cov_update_op` (releases 1.4-1.8)",
  ),
  (
    "cov_update_op_contradicts_1_9_pin",
    "op = o.cov_update_op\n",
    _pin("tensorflow==1.9.0", ["1.9"]),
    None,
    "line 3 uses `.cov_update_op` (releases 1.4-1.8), which contradicts pin",
  ),
  (
    "variable_scope",
    "from tensorflow.contrib.kfac.python.ops.layer_collection import "
    "VARIABLE_SCOPE\n",
    None,
    "1.5",
    "VARIABLE_SCOPE",
  ),
  (
    "onehot_loss",
    "K.loss_functions.OnehotCategoricalLogitsNegativeLogProbLoss(x)\n",
    None,
    "1.6",
    "Onehot",
  ),
  ("thunks", "t = opt.cov_update_thunks\n", None, "1.6", "cov_update_thunks"),
  ("embedding", "lc.register_embedding(p, i, o)\n", None, "1.7", "embedding"),
  (
    "damping_adaptation",
    "opt.set_damping_adaptation_params(1, 2)\n"
    "K.utils.matmul_sparse_dense(a, b)\n",
    None,
    "1.7",
    "set_damping_adaptation_params",
  ),
  # The thunk API and the other 1.8+ names.
  (
    "make_vars_and_create_op_thunks",
    "c, i = opt.make_vars_and_create_op_thunks()\n",
    None,
    "1.8",
    "`.make_vars_and_create_op_thunks` (releases 1.8-1.10)",
  ),
  (
    "create_ops_and_vars_thunks",
    "t = opt.create_ops_and_vars_thunks()\n",
    None,
    "1.8",
    "create_ops_and_vars_thunks",
  ),
  (
    "make_ops_and_vars_1_8_only",
    "ops = opt.make_ops_and_vars()\n",
    _pin("tensorflow>=1.8", ["1.8", "1.9", "1.10"]),
    "1.8",
    "`.make_ops_and_vars` (releases 1.8)",
  ),
  (
    "register_convolution",
    "lc.register_convolution(p, x, y, 'SAME')\n",
    None,
    "1.8",
    "register_convolution",
  ),
  (
    "register_depthwise_conv2d",
    "lc.register_depthwise_conv2d(p, x, y, s, 'SAME')\n",
    None,
    "1.8",
    "register_depthwise_conv2d",
  ),
  (
    "register_separable_conv2d",
    "lc.register_separable_conv2d(d, q, x, y, s, 'SAME')\n",
    None,
    "1.8",
    "register_separable_conv2d",
  ),
  (
    "register_conv2d_multi",
    "lc.register_conv2d_multi(p, s, 'SAME', xs, ys)\n",
    None,
    "1.8",
    "register_conv2d_multi",
  ),
  (
    "register_embedding_multi",
    "lc.register_embedding_multi(p, xs, ys)\n",
    None,
    "1.8",
    "register_embedding_multi",
  ),
  (
    "register_loss_function",
    "lc.register_loss_function(loss, x, 'logits')\n",
    None,
    "1.8",
    "register_loss_function",
  ),
  (
    "additional_tower",
    "block.register_additional_tower(x, y)\n",
    None,
    "1.8",
    "register_additional_tower",
  ),
  (
    "as_default_on_collection",
    _LC + "with lc.as_default():\n  pass\n",
    None,
    "1.8",
    "`LayerCollection.as_default`",
  ),
  (
    "as_default_on_graph_is_no_evidence",
    "g = tf.Graph()\nwith g.as_default():\n  pass\n",
    None,
    None,
    "the 1.4 API",
  ),
  (
    "default_layer_collection",
    "K.layer_collection.set_default_layer_collection(lc)\n",
    None,
    "1.8",
    "set_default_layer_collection",
  ),
  (
    "make_fisher_estimator_exported",
    "K.estimator.make_fisher_estimator(placement_strategy='round_robin')\n",
    None,
    "1.9",
    "make_fisher_estimator` (releases 1.9-1.10)",
  ),
  (
    "make_fisher_estimator_internal",
    "from tensorflow.contrib.kfac.python.ops.estimator import "
    "make_fisher_estimator\n",
    None,
    "1.8",
    "(releases 1.8-1.10)",
  ),
  (
    "placement_module",
    "from tensorflow.contrib.kfac.python.ops import placement\n",
    None,
    "1.8",
    "import placement`",
  ),
  (
    "placement_chain",
    "p = tf.contrib.kfac.python.ops.placement\n",
    None,
    "1.8",
    "python.ops.placement`",
  ),
  (
    "linear_operator_module",
    "import tensorflow.contrib.kfac.python.ops.linear_operator as lo\n",
    None,
    "1.9",
    "linear_operator` (releases 1.9-1.10)",
  ),
  (
    "linear_operator_name",
    "from tensorflow.contrib.kfac.python.ops.linear_operator import "
    "LinearOperatorDiag\n",
    None,
    "1.9",
    "linear_operator",
  ),
  # Keywords (releases.md §8.1).
  (
    "placement_strategy",
    _OPT + ", momentum=0.9, placement_strategy='round_robin', "
    "cov_devices=['/cpu:0'], inv_devices=['/cpu:0'])\n",
    None,
    "1.8",
    "`KfacOptimizer(placement_strategy=...)` (releases 1.8-1.10)",
  ),
  (
    "batch_size",
    _OPT + ", momentum=0.9, batch_size=32)\n",
    None,
    "1.8",
    "`KfacOptimizer(batch_size=...)`",
  ),
  (
    "cov_devices",
    _OPT + ", momentum=0., cov_devices=['/cpu:0'])\n",
    None,
    "1.5",
    "`KfacOptimizer(cov_devices=...)` (releases 1.5-1.10)",
  ),
  (
    "estimator_cov_devices",
    "e = K.estimator.FisherEstimator(v, 0.95, 1e-3, lc, "
    "cov_devices=['/cpu:0'])\n",
    None,
    "1.5",
    "`FisherEstimator(cov_devices=...)` (releases 1.5-1.7)",
  ),
  (
    "normal_loss_reuse",
    "lc.register_normal_predictive_distribution(m, reuse=True)\n",
    None,
    "1.8",
    "`register_normal_predictive_distribution(reuse=...)` (releases 1.8",
  ),
  # Positional calls that parse only one way (releases.md §14).
  (
    "optimizer_fifth_number",
    _OPT + ", 0.5)\n",
    None,
    "1.4",
    "`0.5` as positional argument 5 (`momentum` in 1.4, `var_list` in "
    "1.5-1.10)",
  ),
  (
    "optimizer_fifth_list",
    _OPT + ", [w], momentum=0.)\n",
    None,
    "1.5",
    "`[w]` as positional argument 5",
  ),
  (
    "optimizer_fifth_trainable_variables",
    _OPT + ", tf.trainable_variables(), 0.)\n",
    None,
    "1.5",
    "tf.trainable_variables()` as positional argument 5",
  ),
  (
    "optimizer_devices_positional",
    _OPT + ", None, 0.9, 'regular', None, 'KFAC', 'gradients', True, "
    "['/cpu:0'], ['/cpu:0'])\n",
    None,
    "1.5",
    "as positional argument 12 (`cov_devices` in 1.5-1.7, `batch_size` in "
    "1.8-1.10)",
  ),
  (
    "optimizer_placement_positional",
    _OPT + ", None, 0.9, 'regular', None, 'KFAC', 'gradients', True, "
    "128, 'round_robin')\n",
    None,
    "1.8",
    "`128` as positional argument 12 (`cov_devices` in 1.5-1.7, "
    "`batch_size` in 1.8-1.10) (releases 1.8-1.10)",
  ),
  (
    "collection_name_second",
    "lc = K.layer_collection.LayerCollection(None, 'lc')\n"
    "lc.register_fully_connected(w, x, y, reuse=True)\n",
    None,
    "1.6",
    "`'lc'` as positional argument 2 (`name` in 1.4, "
    "`colocate_cov_ops_with_inputs` in 1.5, `name` in 1.6-1.10)",
  ),
  (
    "collection_colocation_flag",
    "lc = K.layer_collection.LayerCollection(None, True)\n",
    None,
    "1.5",
    "`True` as positional argument 2",
  ),
  (
    "estimator_damping_fn_first",
    "e = K.estimator.FisherEstimator(lambda: 1e-3, [w], 0.95, lc)\n",
    None,
    "1.7",
    "`damping_fn` in 1.7",
  ),
  (
    "estimator_damping_third",
    "e = K.estimator.FisherEstimator([w], 0.95, 1e-3, lc, 'gradients', True)\n",
    None,
    "1.5",
    "a direct `FisherEstimator(...)` call (the class is abstract after 1.7)",
  ),
  (
    "round_robin_positional_rest",
    "from tensorflow.contrib.kfac.python.ops import estimator as est\n"
    "e = est.FisherEstimatorRoundRobin(None, None, [w], 0.95, 1e-3, lc, "
    "(-1, 1))\n",
    None,
    "1.8",
    "with 7 positional arguments (2 in 1.9, 2 in 1.10)",
  ),
  (
    "conv2d_approx_sixth",
    "lc.register_conv2d(p, s, 'SAME', x, y, 'diagonal', reuse=True)\n",
    None,
    "1.5",
    "`'diagonal'` as positional argument 6 (`approx` in 1.4-1.7, "
    "`data_format` in 1.8-1.10)",
  ),
  (
    "conv2d_data_format_sixth",
    "lc.register_conv2d(p, s, 'SAME', x, y, 'NHWC', [1, 1, 1, 1], 'kron')\n",
    None,
    "1.8",
    "`'NHWC'` as positional argument 6",
  ),
  (
    "fc_multi_num_uses_fourth",
    "lc.register_fully_connected_multi(p, xs, ys, 3, 'kron_indep')\n",
    None,
    "1.8",
    "`3` as positional argument 4 (`approx` in 1.5-1.7, `num_uses` in "
    "1.8-1.10)",
  ),
  (
    "fc_multi_approx_fourth",
    "lc.register_fully_connected_multi(p, xs, ys, 'kron_series_2')\n",
    None,
    "1.5",
    "`'kron_series_2'` as positional argument 4",
  ),
  (
    "tower_strategy_fifth",
    "K.fisher_factors.set_global_constants(None, None, None, None, "
    "'separate')\n",
    None,
    "1.8",
    "`'separate'` as positional argument 5",
  ),
  # Ambiguous: the flag is asked for.
  (
    "momentum_default",
    "lc.register_fully_connected(w, x, y, reuse=True)\n" + _OPT + ")\n",
    None,
    None,
    "relies on the `momentum` default, which differs between the possible "
    "releases 1.5-1.10 (0.0 in 1.5, 0.9 in 1.6-1.10)",
  ),
  (
    "generic_approx_default",
    "lc.register_generic(p, 32, reuse=True)\n",
    None,
    None,
    "relies on the `approx` default, which differs between the possible "
    "releases 1.5-1.10 ('diagonal' in 1.9-1.10, 'full' in 1.5-1.8)",
  ),
  (
    "generic_approx_default_set",
    "lc.set_default_generic_approximation('full')\n"
    "lc.register_generic(p, 32, reuse=True)\n",
    None,
    "1.5",
    "set_default_generic_approximation",
  ),
  (
    "fc_multi_approx_default",
    "lc.register_fully_connected_multi(p, xs, ys)\n",
    None,
    None,
    "('kron_indep' in 1.8-1.10, 'kron_series_2' in 1.5-1.7)",
  ),
  (
    "fifth_argument_meaning",
    _OPT + ", m)\n",
    _pin("tensorflow>=1.4,<1.6", ["1.4", "1.5"]),
    None,
    "passes `m` as positional argument 5 of `KfacOptimizer`, which is "
    "`momentum` in 1.4, `var_list` in 1.5",
  ),
  (
    "conv2d_sixth_argument_meaning",
    "lc.register_conv2d(p, s, 'SAME', x, y, fmt)\n",
    _pin("tensorflow>=1.7,<1.9", ["1.7", "1.8"]),
    None,
    "`approx` in 1.7, `data_format` in 1.8",
  ),
  (
    "conv2d_sixth_argument_one_meaning",
    "lc.register_conv2d(p, s, 'SAME', x, y, fmt)\n"
    "c, i = opt.make_vars_and_create_op_thunks()\n",
    None,
    "1.8",
    "make_vars_and_create_op_thunks",
  ),
)


class InferenceTest(parameterized.TestCase):
  """The release from the API a program uses."""

  @parameterized.named_parameters(*_INFERENCE_CASES)
  def test_inferred(self, body, pins, version, phrase):
    decision = _release.choose_release(_HEAD + body, pins=pins)
    self.assertEqual(decision.version, version, decision)
    if version is None and decision.target is None:
      # Asked for the flag: the question names the reason.
      self.assertIn(phrase, decision.problem)
      self.assertIn("run with --tf-version 1.N", decision.problem)
    elif version is None:
      self.assertEqual(decision.target, "kfac")
      self.assertIn(phrase, decision.reason)
    elif _release.namespace_available(version):
      self.assertIsNone(decision.problem, decision)
      self.assertEqual(decision.target, _release.namespace(version))
      self.assertIn(phrase, decision.reason)
    else:
      # A release whose namespace is not built yet is reported, not guessed.
      self.assertIsNone(decision.target)
      self.assertIn("is not available in this kfac yet", decision.problem)
      self.assertIn(phrase, decision.problem)

  def test_contradiction_asks_for_the_flag(self):
    decision = _release.choose_release(
      _HEAD + "lc.register_fully_connected(w, x, y, reuse=True)\n",
      pins=("setup.py", [("tensorflow==1.4.0", ["1.4"])]),
    )
    self.assertIsNone(decision.target)
    self.assertIn(
      "contradicts pin `tensorflow==1.4.0` in setup.py", decision.problem
    )

  def test_momentum_given_is_not_ambiguous(self):
    decision = _release.choose_release(
      _HEAD + "lc.register_fully_connected(w, x, y, reuse=True)\n"
      "o = K.optimizer.KfacOptimizer(0.1, 0.9, 0.01, lc, momentum=0.)\n"
    )
    self.assertEqual(decision.target, "kfac.r1_5")

  def test_dict_setdefault_is_not_evidence(self):
    """`setdefault` left `utils` in 1.5, but `d.setdefault` is a dict's."""
    decision = _release.choose_release(
      _HEAD + "d = {}\nd.setdefault('a', 1)\n"
      "lc.register_fully_connected(w, x, y, reuse=True)\n"
    )
    self.assertEqual(decision.target, "kfac.r1_5")


class UpgradedProgramsRunTest(absltest.TestCase):
  """The expected outputs train a step in their release namespaces."""

  def test_runs(self):
    script = textwrap.dedent("""
        import runpy, sys
        for path in sys.argv[1:]:
          runpy.run_path(path, run_name="__main__")
        """)
    paths = []
    with tempfile.TemporaryDirectory() as tmp:
      for name in ("pinned_r16/train", "multitower_r15"):
        paths.append(os.path.join(tmp, name.replace("/", "_") + ".py"))
        with open(paths[-1], "wb") as f:
          f.write(corpus.expected(name, _CORPUS))
      status, output = _run_python(script, *paths)
    self.assertEqual(status, 0, output[-3000:])
    self.assertIn("pinned_r16: loss", output)
    self.assertIn("multitower_r15: loss", output)


_ALIAS_SCRIPT = textwrap.dedent("""
    import warnings
    import kfac
    assert kfac.install_tf_contrib_alias(tf_version=%(v)r)
    import tensorflow as tf
    import kfac.r1_%(m)s as release
    assert tf.contrib.kfac is release
    assert tf.compat.v1.contrib.kfac is release
    import tensorflow.contrib.kfac as K
    assert K is release
    from tensorflow.contrib import kfac as k2
    assert k2 is release
    from tensorflow.contrib.kfac.python.ops import optimizer_lib
    from tensorflow.contrib.kfac.python.ops import fisher_factors
    assert optimizer_lib is release.optimizer
    assert fisher_factors is release.fisher_factors
    from tensorflow.contrib.kfac.python.ops.layer_collection import (
        LayerCollection)
    assert LayerCollection is release.layer_collection.LayerCollection
    assert tf.contrib.kfac.python.ops.utils_lib is release.utils
    for name, provided in %(internal)r:
      path = "tensorflow.contrib.kfac.python.ops." + name
      try:
        module = __import__(path, fromlist=["_"])
      except ImportError:
        assert not provided, path
      else:
        assert provided, path
        assert module is getattr(release, name), path
        assert getattr(tf.contrib.kfac.python.ops, name) is module, path
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      assert not kfac.install_tf_contrib_alias()
    assert "not kfac; it is left in place" in str(caught[0].message)
    assert tf.contrib.kfac is release
    print("ALIAS OK")
    """)


class ContribAliasReleaseTest(parameterized.TestCase):
  """`install_tf_contrib_alias(tf_version=...)`."""

  @parameterized.named_parameters(
    ("r1_5", "1.5"),
    ("r1_7", "1.7"),
    ("r1_8", "1.8"),
    ("r1_9", "1.9"),
    ("r1_10", "1.10"),
  )
  def test_alias_resolves_to_the_namespace(self, version):
    """A built release is aliased, with its internal modules; others raise."""
    if not _release.namespace_available(version):
      from kfac import _contrib_alias  # pylint: disable=import-outside-toplevel

      with self.assertRaisesRegex(ValueError, "does not provide yet"):
        _contrib_alias.install_tf_contrib_alias(tf_version=version)
      return
    minor = int(version.split(".")[1])
    internal = [
      (name, minor >= int(first.split(".")[1]))
      for name, (first, _) in sorted(_surface.INTERNAL_MODULES.items())
    ]
    script = _ALIAS_SCRIPT % {"v": version, "m": minor, "internal": internal}
    _, output = _run_python(script)
    self.assertIn("ALIAS OK", output, output[-3000:])

  @parameterized.named_parameters(
    ("r1_3", "1.3", "tf_version must be None or one of"),
    ("number", 1.6, "tf_version must be None or one of"),
  )
  def test_bad_version(self, version, message):
    from kfac import _contrib_alias  # pylint: disable=import-outside-toplevel

    with self.assertRaisesRegex(ValueError, message):
      _contrib_alias.install_tf_contrib_alias(tf_version=version)


def _surface_listing(version):
  """The per-module listing of tests/data/surface/r1.N.md (no change log)."""
  with open(
    os.path.join(_HERE, "data", "surface", "r1.%s.md" % version.split(".")[1])
  ) as f:
    text = f.read()
  sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
  return "\n".join(s for s in sections if not s.startswith("Changes"))


def _version_key(version):
  return tuple(int(p) for p in version.split("."))


# The 1.4 surface file lists no instance attributes; api.md §8 names these
# as public attributes of the 1.4 optimizer.
_INSTANCE_ATTRIBUTES_14 = ("cov_update_op", "inv_update_op", "inv_updates_dict")

_RECORDED = {q for r in _surface.RELEASES.values() for q in r.signatures}
_APPROX_CONSTANTS = {
  "APPROX_KRONECKER_NAME": "'kron'",
  "APPROX_DIAGONAL_NAME": "'diagonal'",
}


def _listed_signature(version, qualname):
  """The parameter text of `qualname` in tests/data/surface/r1.N.md, or None.

  Looks in the section of the class or function (public `tf.contrib.kfac`
  or internal `tensorflow.contrib.kfac.python.ops` name), never in the
  change log at the top.
  """
  parts = qualname.split(".")
  owner = ".".join(parts[:2])
  member = parts[-1]
  with open(
    os.path.join(_HERE, "data", "surface", "r1.%s.md" % version.split(".")[1])
  ) as f:
    text = f.read()
  for section in re.split(r"^#+ ", text, flags=re.M):
    if re.match(
      r"`(tf\.contrib\.kfac|tensorflow\.contrib\.kfac\.python\.ops)\.%s` "
      r"\((class|function)\)" % re.escape(owner),
      section,
    ):
      found = re.search(r"^- `%s\((.*?)\)`" % re.escape(member), section, re.M)
      return " ".join(found.group(1).split()) if found else None
  return None


def _releases_between(first, last):
  """The releases from `first` to `last` (None: the newest), in order."""
  return [
    v
    for v in _release.VERSIONS
    if _version_key(v) >= _version_key(first)
    and (last is None or _version_key(v) <= _version_key(last))
  ]


class ReleaseTablesTest(parameterized.TestCase):
  """The inference tables in kfac/_surface.py agree with the surface files."""

  @parameterized.named_parameters(
    *(
      ("member_" + name, name, _surface.MEMBER_RELEASES, r"[ `.]%s[`,(]")
      for name in sorted(_surface.MEMBER_RELEASES)
    ),
    *(
      ("keyword_" + name, name, _surface.KEYWORD_RELEASES, r"[ (]%s=")
      for name in sorted(_surface.KEYWORD_RELEASES)
    ),
  )
  def test_releases(self, name, table, pattern):
    """`table[name]` spans the releases whose surface lists `name`.

    Members are found as `` `.name` `` / `` name( ``, keywords as `name=`;
    the 1.4 surface lists no instance attributes (`_INSTANCE_ATTRIBUTES_14`).
    """
    first, last = table[name]
    listed = [
      v
      for v in _release.VERSIONS
      if re.search(pattern % name, _surface_listing(v))
      or (
        v == "1.4"
        and table is _surface.MEMBER_RELEASES
        and name in _INSTANCE_ATTRIBUTES_14
      )
    ]
    self.assertEqual(listed, _releases_between(first, last))

  @parameterized.named_parameters(
    ("%s_r%s" % (q.replace(".", "_"), v.replace(".", "_")), v, q)
    for q in sorted(_RECORDED)
    for v in _release.VERSIONS
  )
  def test_recorded_signature(self, version, qualname):
    """Each recorded signature is the surface file's, where it exists."""
    listed = _listed_signature(version, qualname)
    recorded = _surface.RELEASES[version].signatures.get(qualname)
    if recorded is None and listed is not None:
      # Recorded from a later release on: the earlier parameters must be
      # the first ones of that signature (same positional meaning).
      first = next(
        v
        for v in _release.VERSIONS
        if qualname in _surface.RELEASES[v].signatures
      )
      names = [p.split("=")[0] for p in listed.split(", ")]
      self.assertEqual(
        tuple(names), _surface.parameters(first, qualname)[: len(names)]
      )
    elif recorded is None:
      self.assertIsNone(listed)
    else:
      self.assertEqual(" ".join(recorded.split()), listed)

  @parameterized.named_parameters(
    ("%s_r%s" % (q.replace(".", "_"), v.replace(".", "_")), v, q)
    for q in sorted(_surface.BEHAVIOUR_DEFAULTS)
    for v in _release.VERSIONS
  )
  def test_behaviour_default(self, version, qualname):
    """The default is the listed one, or the listing's None resolves to it."""
    parameter, defaults, setter = _surface.BEHAVIOUR_DEFAULTS[qualname]
    listed = _listed_signature(version, qualname)
    if defaults[version] == "-":
      self.assertIsNone(listed)
      return
    params = dict(
      p.strip().split("=", 1) for p in listed.split(", ") if "=" in p
    )
    value = _APPROX_CONSTANTS.get(params[parameter], params[parameter])
    if value != "None":
      self.assertEqual(value, defaults[version])
    else:
      # None: the collection's default, which the setter changes.
      self.assertIsNotNone(setter)
      self.assertTrue(
        re.search(r"- `%s\(value\)`" % setter, _surface_listing(version))
      )


class MigrationGuideTest(parameterized.TestCase):
  """The "Choosing a release" example of docs/migration.md runs as printed."""

  def test_example_prints_what_the_guide_says(self):
    with open(
      os.path.join(_REPO, "docs", "migration.md"), encoding="utf-8"
    ) as f:
      guide = f.read()
    code = re.search(
      r"<!-- release-example: infer -->\n```python\n(.*?)\n```"
      r"\n",
      guide,
      re.DOTALL,
    ).group(1)
    printed = re.search(
      r"<!-- release-example-output: infer -->\n```\n"
      r"(.*?)```\n",
      guide,
      re.DOTALL,
    ).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      exec(compile(code, "release-example", "exec"), {})  # pylint: disable=exec-used
    self.assertEqual(out.getvalue(), printed)
    self.assertIn("kfac.r1_6.optimizer.KfacOptimizer(", printed)

  @parameterized.named_parameters(
    ("as_written", None), ("graph_mode", "tf.disable_eager_execution()")
  )
  @pytest.mark.slow
  def test_round_robin_example_trains(self, mode_line):
    """The 1.9 program runs as printed: it trains, on both devices.

    `as_written` runs it in TF1 mode (its `disable_v2_behavior()`);
    `graph_mode` swaps that line for `disable_eager_execution()`.
    """
    with open(
      os.path.join(_REPO, "docs", "migration.md"), encoding="utf-8"
    ) as f:
      guide = f.read()
    code = re.search(
      r"<!-- release-example: round-robin-1.9 -->\n```python\n(.*?)```\n",
      guide,
      re.DOTALL,
    ).group(1)
    if mode_line is not None:
      self.assertIn("tf.disable_v2_behavior()", code)
      code = code.replace("tf.disable_v2_behavior()", mode_line)
    # Afterwards: the devices the graph's ops were given.
    code += textwrap.dedent("""
        print("DEVICES", sorted({
            op.device for op in tf.get_default_graph().get_operations()}))
        """)
    status, output = _run_python(code)
    self.assertEqual(status, 0, output[-3000:])
    losses = [
      float(v) for v in re.findall(r"^step \d+: loss (\S+)$", output, re.M)
    ]
    self.assertLen(losses, 4, output[-3000:])
    self.assertLess(losses[-1], losses[0] / 4)
    self.assertIn("'/device:CPU:0'", output)
    self.assertIn("'/device:CPU:1'", output)


if __name__ == "__main__":
  absltest.main()
