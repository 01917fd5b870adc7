"""The `kfac-upgrade` command line."""

import argparse
import collections
import os
import shutil
import sys
import tempfile

from kfac.upgrade._results import UpgradeError
from kfac.upgrade._tf2 import _tf_upgrade_v2
from kfac.upgrade._tf2 import tf2_findings


def _iter_python_files(path):
  if os.path.isdir(path):
    for dirpath, dirnames, filenames in os.walk(path):
      dirnames[:] = sorted(
        d for d in dirnames if not d.startswith(".") and d != "__pycache__"
      )
      for filename in sorted(filenames):
        if filename.endswith(".py"):
          yield os.path.join(dirpath, filename)
  else:
    yield path


def _write_atomically(path, data):
  """Writes `data` to `path` via a temporary file and a rename."""
  path = os.path.realpath(path)  # Rewrite a symlink's target, keep the link.
  directory = os.path.dirname(path)
  fd, tmp = tempfile.mkstemp(
    prefix=".kfac-upgrade-", suffix=".tmp", dir=directory
  )
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    shutil.copymode(path, tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def _format_report(name, result, tf2_lines, check, tf2_attention=()):
  lines = []
  if result.changed:
    verb = "would change" if check else "changed"
  else:
    verb = "unchanged"
  lines.append("%s: %s" % (name, verb))
  decision = result.release
  if decision is not None and decision.problem is None:
    lines.append(
      "  release: %s, rewritten to `%s` (%s)"
      % (decision.version or "1.4 (seed API)", decision.target, decision.reason)
    )
  for finding in result.changes:
    where = "line %d" % finding.line if finding.line else "module"
    lines.append("  %s: %s" % (where, finding.message))
  for finding in result.attention:
    where = "line %d" % finding.line if finding.line else "module"
    lines.append("  NEEDS A HUMAN, %s: %s" % (where, finding.message))
  for line in tf2_lines:
    # tf_upgrade_v2 ran on the kfac-upgraded text: its line numbers are those.
    lines.append("  tf_upgrade_v2 (after the kfac rewrite), %s" % line)
  for finding in tf2_attention:
    where = "line %d of the result" % finding.line if finding.line else "module"
    lines.append(
      "  NEEDS A HUMAN for TensorFlow 2.x, %s: %s" % (where, finding.message)
    )
  return "\n".join(lines)


def main(argv=None):
  """Runs `kfac-upgrade` and returns the exit status.

  Args:
    argv: command-line arguments without the program name (default
      `sys.argv[1:]`).

  Returns:
    0 when nothing failed (and, with `--check`, nothing would change), 1 with
    `--check` when some file would change, 1 (with or without `--check`)
    when the release of some program must be chosen by hand
    (`--tf-version`), 2 when a file could not be read or parsed or
    `tf_upgrade_v2` failed.
  """
  parser = argparse.ArgumentParser(
    prog="kfac-upgrade",
    description="Rewrite programs that use tf.contrib.kfac (TensorFlow 1.4) "
    "or PyPI kfac 0.2.x to use the kfac package.",
  )
  parser.add_argument(
    "paths",
    nargs="+",
    metavar="PATH",
    help="Python file, directory (searched recursively) or "
    "'-' for stdin -> stdout",
  )
  parser.add_argument(
    "--check",
    action="store_true",
    help="write nothing; exit 1 if any file would change",
  )
  parser.add_argument(
    "--tf-version",
    metavar="1.N",
    help="the TensorFlow release the programs were written "
    "for (1.4 ... 1.10): tf.contrib.kfac becomes "
    "kfac.r1_N; without it the release is inferred "
    "from version pins next to the code, then from the "
    "API the program uses",
  )
  parser.add_argument(
    "--also-tf2",
    action="store_true",
    help="also run TensorFlow's tf_upgrade_v2 on the result",
  )
  args = parser.parse_args(argv)
  from kfac.upgrade import _release  # pylint: disable=import-outside-toplevel

  flag = None
  if args.tf_version is not None:
    try:
      flag = _release.parse_flag(args.tf_version)
    except ValueError as e:
      parser.error(str(e))
  # libcst is loaded only now, so that `--help` starts at once.
  from kfac.upgrade._engine import upgrade_source

  status = 0
  inputs = []  # (display name, path or None for stdin, original bytes)
  roots = {}  # file -> the folder the pin search stops at
  for path in args.paths:
    if path == "-":
      inputs.append(("<stdin>", None, sys.stdin.buffer.read()))
      continue
    if not os.path.exists(path):
      print("%s: no such file or directory" % path, file=sys.stderr)
      status = 2
      continue
    for filename in _iter_python_files(path):
      roots[filename] = (
        path
        if os.path.isdir(path)
        else (os.path.dirname(os.path.abspath(path)))
      )
      try:
        with open(filename, "rb") as f:
          inputs.append((filename, filename, f.read()))
      except OSError as e:
        print("%s: cannot read: %s" % (filename, e), file=sys.stderr)
        status = 2

  results = []  # (name, path, original, UpgradeResult)
  for name, path, original in inputs:
    try:
      pins = None
      if flag is None and path is not None:
        pins = _release.find_pins(path, roots[path])
      result = upgrade_source(
        original, filename=name, tf_version=flag, pins=pins
      )
    except UpgradeError as e:
      print("%s (left untouched)" % e, file=sys.stderr)
      status = 2
      if path is None:
        sys.stdout.buffer.write(original)
      continue
    results.append((name, path, original, result))

  tf2_reports = {}
  if args.also_tf2 and results:
    try:
      upgraded, tf2_reports = _tf_upgrade_v2(
        collections.OrderedDict((r[0], r[3].source) for r in results)
      )
    except (RuntimeError, OSError) as e:
      print("kfac-upgrade: %s" % e, file=sys.stderr)
      upgraded = None
      status = 2
    if upgraded is not None:
      for r in results:
        r[3].source = upgraded[r[0]]
        r[3].changed = r[3].source != r[2]
  # What still stops the result on TensorFlow 2.x (with or without
  # `--also-tf2`: kfac only runs there).
  tf2_attention = {r[0]: tf2_findings(r[3].source) for r in results}

  report_stream = (
    sys.stderr if any(i[1] is None for i in inputs) else (sys.stdout)
  )
  changed_count = 0  # Files written (or, with --check, that would change).
  unwritable = 0
  for name, path, _, result in results:
    if path is None:
      if not args.check:
        sys.stdout.buffer.write(result.source)
        sys.stdout.flush()
    elif result.changed and not args.check:
      try:
        _write_atomically(path, result.source)
      except OSError as e:
        print(
          "%s: cannot write: %s (left untouched)" % (name, e), file=sys.stderr
        )
        status = 2
        unwritable += 1
        continue
    if result.changed:
      changed_count += 1
    if (
      result.changed
      or result.attention
      or result.release
      or tf2_reports.get(name)
      or (tf2_attention.get(name))
      or len(inputs) == 1
    ):
      print(
        _format_report(
          name,
          result,
          tf2_reports.get(name, []),
          args.check,
          tf2_attention.get(name, ()),
        ),
        file=report_stream,
      )
  failed = len(inputs) - len(results)
  problems = ""
  if failed:
    problems += ", %d could not be read or parsed" % failed
  if unwritable:
    problems += ", %d could not be written" % unwritable
  print(
    "kfac-upgrade: %d file(s) scanned, %d %s, %d need a human%s"
    % (
      len(inputs),
      changed_count,
      "would change" if args.check else "changed",
      sum(1 for r in results if r[3].attention or tf2_attention.get(r[0])),
      problems,
    ),
    file=report_stream,
  )
  if args.check and changed_count and status == 0:
    status = 1
  if status == 0 and any(r[3].release_problem for r in results):
    status = 1  # A release to choose by hand: ask for --tf-version.
  return status
