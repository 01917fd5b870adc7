"""Rewrites the expected upgrades of the `kfac-upgrade` test corpus.

Each program `tests/data/legacy_programs/<name>.py` is stored with
`<name>.expected.diff`: the unified diff from the program to what
`kfac.upgrade.upgrade_source` makes of it (`tests/test_upgrade.py` applies the
diff and compares). Run this after a deliberate change to the upgrader, then
review the changed diffs before committing them:

    python tools/update_upgrade_corpus.py [name ...]

With no names it rewrites every program that has an `.expected.diff`; a name
without one gets a new file. It prints the names whose diff changed.
"""

import difflib
import os
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO)

from kfac import upgrade  # noqa: E402  (TensorFlow-free)

CORPUS = os.path.join(_REPO, "tests", "data", "legacy_programs")
SUFFIX = ".expected.diff"


def expected_diff(name, source, upgraded):
  """The unified diff (str) from `source` to `upgraded` (bytes, UTF-8)."""
  filename = name + ".py"
  return "".join(
    difflib.unified_diff(
      source.decode().splitlines(True),
      upgraded.decode().splitlines(True),
      filename,
      filename + " (upgraded)",
    )
  )


def main(names):
  if not names:
    names = sorted(
      f[: -len(SUFFIX)] for f in os.listdir(CORPUS) if f.endswith(SUFFIX)
    )
  for name in names:
    program = os.path.join(CORPUS, name + ".py")
    with open(program, "rb") as f:
      source = f.read()
    result = upgrade.upgrade_source(source, program)
    text = expected_diff(name, source, result.source)
    path = os.path.join(CORPUS, name + SUFFIX)
    old = None
    if os.path.exists(path):
      with open(path, encoding="utf-8", newline="") as f:
        old = f.read()
    if text != old:
      with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
      print(name)


if __name__ == "__main__":
  main(sys.argv[1:])
