"""The legacy programs of `tests/data/legacy_programs/`, as tests read them.

`test_upgrade` upgrades the programs and compares each result with its
expected upgrade, stored as `<name>.expected.diff`: the unified diff from the
program to its upgrade (`tools/update_upgrade_corpus.py` writes them), which
`expected` applies. `test_upgrade` runs the upgraded programs and
`test_contrib_alias` the unmodified ones (under `tf.contrib.kfac`), each in
one fresh process (`run_programs`).
"""

import json
import os
import re
import subprocess
import sys
import textwrap

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_HERE)
CORPUS = os.path.join(_HERE, "data", "legacy_programs")

# TF 1.4 programs that use only `tf.compat.v1` besides `tf.contrib.kfac`.
COMPAT_V1_PROGRAMS = (
  "mlp_chain",
  "convnet_from_import",
  "generic_module_alias",
  "diagonal_ops_imports",
  "bernoulli_class_import",
  "opqueue_lib_forms",
)

# Runs the programs named on its command line, in order, printing one
# `RESULT <json>` line for each: {"path", "ok"[, "error"]}.
_RUN_PROGRAMS = textwrap.dedent("""\
    import json, runpy, sys, traceback, warnings
    warnings.simplefilter("ignore")
    for path in sys.argv[1:]:
      try:
        runpy.run_path(path, run_name="__main__")
        result = {"path": path, "ok": True}
      except BaseException:  # pylint: disable=broad-except
        result = {"path": path, "ok": False, "error": traceback.format_exc()}
      print("RESULT " + json.dumps(result), flush=True)
    """)


def read(path):
  """The bytes of the file at `path`."""
  with open(path, "rb") as f:
    return f.read()


def program(name, corpus=CORPUS):
  """The path of corpus program `name`."""
  return os.path.join(corpus, name + ".py")


def patch(source, diff):
  """Applies the unified diff `diff` (str) to `source` (bytes); returns bytes.

  Every context and removed line must stand in `source` where its hunk says
  (an `AssertionError` otherwise).
  """
  lines = source.decode().splitlines(True)
  out = []
  pos = 0
  for line in diff.splitlines(True)[2:]:  # After the ---/+++ header.
    hunk = re.match(r"@@ -(\d+)(?:,(\d+))? ", line)
    if hunk:
      start = int(hunk.group(1))
      # An empty old range names the line it follows, others their first.
      start -= 0 if hunk.group(2) == "0" else 1
      out.extend(lines[pos:start])
      pos = start
      continue
    tag, text = line[:1], line[1:]
    assert tag in (" ", "-", "+"), line
    if tag in (" ", "-"):
      assert lines[pos] == text, (pos + 1, lines[pos], text)
      pos += 1
    if tag in (" ", "+"):
      out.append(text)
  out.extend(lines[pos:])
  return "".join(out).encode()


def expected(name, corpus=CORPUS):
  """The expected upgrade of corpus program `name` (bytes)."""
  with open(os.path.join(corpus, name + ".expected.diff")) as f:
    return patch(read(program(name, corpus)), f.read())


def run_programs(paths, prelude="", cwd=_REPO, timeout=300):
  """Runs `prelude`, then each program, in one fresh Python process.

  Args:
    paths: The programs to run (as `__main__`), in order.
    prelude: Python source run first (it may print lines of its own).
    cwd: The process's working directory.
    timeout: Seconds the process may take.

  Returns:
    A pair: the programs' results by name (file stem; a dict with "ok" and,
    on failure, "error", the traceback), and all the process printed (stdout
    then stderr), for messages and the prelude's own lines.
  """
  env = dict(
    os.environ,
    TF_CPP_MIN_LOG_LEVEL="2",
    PYTHONPATH=_REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
  )
  proc = subprocess.run(
    [sys.executable, "-c", prelude + _RUN_PROGRAMS] + list(paths),
    cwd=cwd,
    env=env,
    capture_output=True,
    timeout=timeout,
    check=False,
  )
  stdout = proc.stdout.decode()
  results = {}
  for line in stdout.splitlines():
    if line.startswith("RESULT "):
      result = json.loads(line[len("RESULT ") :])
      results[os.path.basename(result["path"])[:-3]] = result
  return results, stdout + proc.stderr.decode()
