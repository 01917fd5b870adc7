"""Package-level checks: quiet import, version guard, README and CI agree."""

import os
import re

from absl.testing import parameterized
import pytest

import sandbox

_ROOT = sandbox.REPO


def _readme_commands():
  with open(os.path.join(_ROOT, "README.md"), encoding="utf-8") as f:
    readme = f.read()
  return re.findall(r"```sh\n(.*?)\n```", readme, flags=re.S)


class PackageTest(parameterized.TestCase):
  @pytest.mark.slow
  def test_import_is_lazy_quiet_and_leaves_the_environment(self):
    # `import kfac` loads no TensorFlow; the first use of a module does,
    # quietly, and then every module is bound on the package, as an eager
    # import did. The environment is left as it was.
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.pop("KFAC_QUIET_TF_IMPORT", None)
    code = (
      "import os, sys, kfac; before = 'tensorflow' in sys.modules; "
      "lc = kfac.layer_collection; "
      "print(before, 'tensorflow' in sys.modules, "
      "all(m in vars(kfac) for m in kfac.__all__), "
      "os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
    )
    result = sandbox.run_python(code, env=env, check=True)
    self.assertEqual(result.stdout.split(), ["False", "True", "True", "None"])
    self.assertEqual(result.stderr, "")

  @parameterized.named_parameters(
    ("layer_collection", "from kfac import layer_collection"),
    ("estimator", "import kfac.estimator"),
    ("checkpoint", "from kfac.checkpoint import restore_by_structure"),
    ("release_face", "from kfac.r1_6 import layer_collection"),
  )
  @pytest.mark.slow
  def test_any_module_can_be_imported_first(self, statement):
    # A module imported before the others starts a circular import through
    # the lazy package (layer_collection -> fisher_blocks -> ... -> estimator
    # -> layer_collection); every module must still load and be bound.
    code = statement + "; import kfac; print(kfac.optimizer.KfacOptimizer)"
    result = sandbox.run_python(code)
    self.assertEqual(result.returncode, 0, result.stderr[-2000:])
    self.assertIn("KfacOptimizer", result.stdout)

  @pytest.mark.slow
  def test_user_log_level_is_respected(self):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="1")
    result = sandbox.run_python(
      "import os, kfac.utils; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])",
      env=env,
      check=True,
    )
    self.assertEqual(result.stdout.strip(), "1")

  @parameterized.named_parameters(
    ("attribute", "import kfac; kfac.optimizer"),
    ("submodule", "import kfac.optimizer"),
    ("from_module", "from kfac.optimizer import KfacOptimizer"),
    ("from_package", "from kfac import optimizer"),
  )
  @pytest.mark.slow
  def test_old_tensorflow_is_rejected(self, statement):
    # A stand-in `tensorflow` module reporting an old version.
    code = (
      "import sys, types; tf = types.ModuleType('tensorflow'); "
      "tf.__version__ = '1.15.5'; sys.modules['tensorflow'] = tf; " + statement
    )
    result = sandbox.run_python(code)
    self.assertNotEqual(result.returncode, 0)
    self.assertIn("found TensorFlow 1.15.5", result.stderr)

  @parameterized.named_parameters(
    ("old_minor", "2.9.3", False),
    ("old_major", "1.15.5", False),
    ("minimum", "2.16.0", True),
    ("release_candidate", "2.16.0rc1", True),
    ("two_digit_minor", "2.100.0", True),
    ("garbage", "unknown", False),
  )
  def test_version_parsing(self, version, accepted):
    code = (
      "import sys, types; tf = types.ModuleType('tensorflow'); "
      "tf.__version__ = %r; sys.modules['tensorflow'] = tf; "
      "from kfac import _tf_import; _tf_import.import_tensorflow(); "
      "print('accepted')" % version
    )
    result = sandbox.run_python(code, timeout=60)
    self.assertEqual(result.returncode == 0, accepted, result.stderr)

  @pytest.mark.slow
  def test_missing_tensorflow_is_explained(self):
    code = "import sys; sys.modules['tensorflow'] = None; import kfac.utils"
    result = sandbox.run_python(code)
    self.assertNotEqual(result.returncode, 0)
    self.assertIn("kfac-contrib[tf-cpu]", result.stderr)

  def _fake_tensorflow(self):
    """A directory with a stand-in `tensorflow` that is noisy on fd 2."""
    fake = (
      "import os\n"
      "__version__ = '2.21.0'\n"
      "LEVEL = os.environ.get('TF_CPP_MIN_LOG_LEVEL')\n"
      "os.write(2, b'I0000 oneDNN custom operations are on.\\n')\n"
      "os.write(2, b'a real warning\\n')\n"
    )
    return sandbox.temp_dir(self, "kfac_fake_tf_", {"tensorflow.py": fake})

  @parameterized.named_parameters(
    ("default", None, False, "2"),
    ("on", "1", False, "2"),
    ("off", "0", True, None),
  )
  def test_quiet_import_switch(self, switch, noisy, level):
    env = dict(
      os.environ, PYTHONPATH=os.pathsep.join([self._fake_tensorflow(), _ROOT])
    )
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.pop("KFAC_QUIET_TF_IMPORT", None)
    if switch is not None:
      env["KFAC_QUIET_TF_IMPORT"] = switch
    code = (
      "import os; from kfac import _tf_import; "
      "tf = _tf_import.import_tensorflow(); "
      "print(tf.LEVEL, os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
    )
    result = sandbox.run_python(code, env=env, timeout=60, check=True)
    self.assertEqual(result.stdout.split(), [str(level), "None"])
    self.assertEqual("oneDNN" in result.stderr, noisy)
    self.assertIn("a real warning", result.stderr)  # Never swallowed.

  def _fake_distributions(self, names):
    return sandbox.temp_dir(
      self,
      "kfac_fake_dist_",
      {
        "%s-%s.dist-info/METADATA" % (name.replace("-", "_"), version): (
          "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version)
        )
        for name, version in names
      },
    )

  def test_both_distributions_are_an_error(self):
    fake = self._fake_distributions(
      [("kfac", "0.2.4"), ("kfac-contrib", "1.4.0.dev0")]
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([_ROOT, fake]))
    result = sandbox.run_python("import kfac", env=env, cwd=fake, timeout=60)
    self.assertNotEqual(result.returncode, 0)
    last = result.stderr.strip().splitlines()[-1]
    self.assertIn("ImportError", last)
    self.assertIn("`kfac-contrib`", last)
    self.assertIn("`kfac` 0.2.4", last)
    self.assertIn("pip uninstall", last)

  def test_this_distribution_alone_is_fine(self):
    fake = self._fake_distributions([("kfac-contrib", "1.4.0.dev0")])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([_ROOT, fake]))
    sandbox.run_python("import kfac", env=env, cwd=fake, timeout=60, check=True)

  @pytest.mark.slow
  def test_readme_usage_example_trains(self):
    with open(os.path.join(_ROOT, "README.md"), encoding="utf-8") as f:
      (snippet,) = re.findall(r"```python\n(.*?)\n```", f.read(), flags=re.S)
    if os.environ.get("KFAC_TF_MODE") == "v1":
      # The suite's TF1 pass: the example as a TF1 program would run it.
      snippet = (
        "import tensorflow\n"
        "tensorflow.compat.v1.disable_v2_behavior()\n" + snippet
      )
    result = sandbox.run_python(snippet, timeout=300, check=True)
    final_loss = float(result.stdout.strip().split()[-1])
    # Random labels over 10 classes start near log(10) = 2.3; 100 K-FAC steps
    # on 128 examples with 650 parameters fit them far better.
    self.assertLess(final_loss, 1.5)

  def test_ci_runs_the_readme_test_command(self):
    commands = _readme_commands()
    self.assertLen(commands, 2)
    with open(os.path.join(_ROOT, ".ci", "run"), encoding="utf-8") as f:
      ci_lines = [
        line
        for line in f.read().splitlines()
        if line and not line.startswith("#")
      ]
    self.assertEqual(ci_lines[-1], commands[1])
    self.assertIn("pytest", commands[1])
    self.assertIn("kfac.examples", commands[0])
