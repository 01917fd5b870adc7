"""Scratch directories and fresh Python processes for the test modules."""

import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_file(directory, relpath, content):
  """Writes `content` (str or bytes) to `directory/relpath`; returns the path.

  Missing parent directories are made.
  """
  path = os.path.join(directory, relpath)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(content if isinstance(content, bytes) else content.encode())
  return path


def temp_dir(test, prefix, files=()):
  """A fresh directory, removed when `test` ends; returns its path.

  Args:
    test: The running `unittest.TestCase` (its `addCleanup` removes it).
    prefix: The directory name's prefix.
    files: `(relpath, content)` pairs, or a dict, written into it.
  """
  directory = tempfile.mkdtemp(prefix=prefix)
  test.addCleanup(shutil.rmtree, directory, True)
  for relpath, content in dict(files).items():
    write_file(directory, relpath, content)
  return directory


def run_python(code, *args, env=None, cwd=None, timeout=120, check=False):
  """Runs `python -c code *args` in a fresh process.

  Returns:
    Its `subprocess.CompletedProcess`, stdout and stderr as text.
  """
  return subprocess.run(
    [sys.executable, "-c", code] + list(args),
    capture_output=True,
    text=True,
    env=env,
    cwd=cwd,
    timeout=timeout,
    check=check,
  )
