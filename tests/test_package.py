"""Package-level checks: quiet import, version guard, README and CI agree."""

import os
import re
import subprocess
import sys

from absl.testing import parameterized
import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme_commands():
  with open(os.path.join(_ROOT, "README.md"), encoding="utf-8") as f:
    readme = f.read()
  return re.findall(r"```sh\n(.*?)\n```", readme, flags=re.S)


class PackageTest(parameterized.TestCase):

  @pytest.mark.slow
  def test_import_prints_nothing(self):
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    result = subprocess.run(
        [sys.executable, "-c", "import kfac"], capture_output=True, text=True,
        env=env, check=True, timeout=120)
    self.assertEqual(result.stdout, "")
    self.assertEqual(result.stderr, "")

  @pytest.mark.slow
  def test_environment_is_left_unchanged(self):
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    result = subprocess.run(
        [sys.executable, "-c",
         "import os, kfac; print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"],
        capture_output=True, text=True, env=env, check=True, timeout=120)
    self.assertEqual(result.stdout.strip(), "None")

  @pytest.mark.slow
  def test_user_log_level_is_respected(self):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="1")
    result = subprocess.run(
        [sys.executable, "-c",
         "import os, kfac; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"],
        capture_output=True, text=True, env=env, check=True, timeout=120)
    self.assertEqual(result.stdout.strip(), "1")

  @pytest.mark.slow
  def test_old_tensorflow_is_rejected(self):
    # A stand-in `tensorflow` module reporting an old version.
    code = ("import sys, types; tf = types.ModuleType('tensorflow'); "
            "tf.__version__ = '1.15.5'; sys.modules['tensorflow'] = tf; "
            "import kfac")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                            text=True, timeout=120)
    self.assertNotEqual(result.returncode, 0)
    self.assertIn("found TensorFlow 1.15.5", result.stderr)

  @pytest.mark.slow
  def test_missing_tensorflow_is_explained(self):
    code = ("import sys; sys.modules['tensorflow'] = None; import kfac")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                            text=True, timeout=120)
    self.assertNotEqual(result.returncode, 0)
    self.assertIn("kfac-contrib[tf-cpu]", result.stderr)

  def test_readme_usage_example_trains(self):
    with open(os.path.join(_ROOT, "README.md"), encoding="utf-8") as f:
      (snippet,) = re.findall(r"```python\n(.*?)\n```", f.read(), flags=re.S)
    if os.environ.get("KFAC_TF_MODE") == "v1":
      # The suite's TF1 pass: the example as a TF1 program would run it.
      snippet = ("import tensorflow\n"
                 "tensorflow.compat.v1.disable_v2_behavior()\n" + snippet)
    result = subprocess.run([sys.executable, "-c", snippet],
                            capture_output=True, text=True, timeout=300,
                            check=True)
    final_loss = float(result.stdout.strip().split()[-1])
    # Random labels over 10 classes start near log(10) = 2.3; 100 K-FAC steps
    # on 128 examples with 650 parameters fit them far better.
    self.assertLess(final_loss, 1.5)

  def test_ci_runs_the_readme_test_command(self):
    commands = _readme_commands()
    self.assertLen(commands, 2)
    with open(os.path.join(_ROOT, ".ci", "run"), encoding="utf-8") as f:
      ci_lines = [line for line in f.read().splitlines()
                  if line and not line.startswith("#")]
    self.assertEqual(ci_lines[-1], commands[1])
    self.assertIn("pytest", commands[1])
    self.assertIn("kfac.examples", commands[0])
