"""Which `tf.contrib.kfac` release a program was written for.

`choose_release` decides, in this order: the `--tf-version` flag; the
TensorFlow version pins next to the program (`requirements*.txt`,
`setup.py`, `setup.cfg`, `pyproject.toml`, `environment.yml`, searched from
the file's folder up to the root given on the command line, the nearest
folder with a pin winning); the API the program uses (names, methods and
keywords that only some releases have, from `kfac/_surface.py`, and a
positional fifth `KfacOptimizer` argument, which is `momentum` in 1.4 and
`var_list` from 1.5). With no pin and no later-release API the program is
taken as a 1.4 program for the seed API, `kfac`, as before releases existed.
Where the candidates differ in a default the program relies on (the
`KfacOptimizer` `momentum`, 0.0 up to 1.5 and 0.9 from 1.6), nothing is
guessed: the decision is "ambiguous" and the flag is asked for.

Pure Python: no TensorFlow, no libcst.
"""

import ast
import collections
import os
import re

from kfac import _surface

# Every release that shipped `tf.contrib.kfac`, in order.
VERSIONS = ("1.4", "1.5", "1.6", "1.7", "1.8", "1.9", "1.10")

PIN_FILES = (
  "setup.py",
  "setup.cfg",
  "pyproject.toml",
  "environment.yml",
  "environment.yaml",
)

Decision = collections.namedtuple(
  "Decision", ["version", "target", "reason", "problem"]
)
Decision.__doc__ = """The release chosen for one program.

`version`: "1.N" or None (no evidence: the seed 1.4 API); `target`: the
package paths are rewritten to ("kfac", "kfac.r1_N"), None when nothing may
be rewritten; `reason`: one sentence for the report; `problem`: None, or why
a human must choose (the program is then left untouched)."""


def _key(version):
  return tuple(int(p) for p in version.split("."))


def namespace(version):
  """The `kfac` namespace of release `version` ("1.6" -> "kfac.r1_6")."""
  return "kfac.r1_%d" % _key(version)[1]


def namespace_available(version):
  """Whether the package ships `namespace(version)` (checked on disk)."""
  import kfac  # pylint: disable=import-outside-toplevel

  folder = os.path.join(
    os.path.dirname(kfac.__file__), namespace(version).split(".")[1]
  )
  return os.path.isfile(os.path.join(folder, "__init__.py"))


def parse_flag(value):
  """Normalizes a `--tf-version` value ("1.6", "1.6.0") or raises ValueError."""
  parts = value.strip().split(".")
  if len(parts) >= 2 and all(p.isdigit() for p in parts):
    version = "%d.%d" % (int(parts[0]), int(parts[1]))
    if version in VERSIONS:
      return version
  raise ValueError(
    "--tf-version must be one of %s (the releases that shipped "
    "tf.contrib.kfac), not %r" % (", ".join(VERSIONS), value)
  )


# -- version pins ---------------------------------------------------------------

_PIN_RE = re.compile(
  r"""(?<![\w.-])tensorflow(?:[-_](?:gpu|cpu))?\b\s*(?:=\s*["']|:\s*["'])?"""
  r"""\s*((?:(?:===|==|>=|<=|~=|!=|>|<|=|\^)?\s*\d+(?:\.(?:\d+|\*))*"""
  r"""\s*,?\s*)+)"""
)
_CLAUSE_RE = re.compile(
  r"(===|==|>=|<=|~=|!=|>|<|=|\^)?\s*(\d+(?:\.(?:\d+|\*))*)"
)


def _clause_ok(op, spec, version):
  """Whether `version` (a tuple) satisfies one clause."""
  parts = spec.split(".")
  if op in (None, "=", "==", "===") and parts[-1] == "*" or op in (None, "="):
    prefix = tuple(int(p) for p in parts if p != "*")
    return version[: len(prefix)] == prefix
  bound = tuple(int(p) for p in parts if p != "*")
  padded = bound + (0,) * (len(version) - len(bound))
  if op in ("==", "==="):
    return version == padded
  if op == "!=":
    return version != padded
  if op == ">=":
    return version >= padded
  if op == ">":
    return version > padded
  if op == "<=":
    return version <= padded
  if op == "<":
    return version < padded
  if op == "~=":
    head = bound[:-1] if len(bound) > 1 else bound
    return version >= padded and version[: len(head)] == head
  if op == "^":
    return version >= padded and version[0] == bound[0]
  return False


def _releases_matching(spec):
  """The releases some 1.N.p of which satisfies every clause of `spec`."""
  clauses = _CLAUSE_RE.findall(spec)
  found = []
  for version in VERSIONS:
    minor = _key(version)
    if any(
      all(
        _clause_ok(op or None, number, minor + (patch,))
        for op, number in clauses
      )
      for patch in range(10)
    ):
      found.append(version)
  return found


def _pins_in(path):
  """(pin text, releases) for each TensorFlow pin in file `path`."""
  try:
    with open(path, encoding="utf-8", errors="replace") as f:
      text = f.read()
  except OSError:
    return []
  pins = []
  for line in text.splitlines():
    line = line.split("#", 1)[0]
    for match in _PIN_RE.finditer(line):
      spec = match.group(1).strip().rstrip(",")
      pins.append(
        (match.group(0).strip().rstrip(","), _releases_matching(spec))
      )
  return pins


def find_pins(filename, root):
  """The TensorFlow pins nearest to `filename`, searching up to `root`.

  Args:
    filename: path of the program.
    root: the folder the search stops at (included); a file's own folder
      when the program was named directly.

  Returns:
    (pin file, [(pin text, releases)]) for the nearest folder with a pin, or
    None.
  """
  folder = os.path.dirname(os.path.abspath(filename))
  root = os.path.abspath(root)
  while True:
    try:
      names = sorted(os.listdir(folder))
    except OSError:
      names = []
    for name in names:
      if name in PIN_FILES or (
        name.startswith("requirements") and name.endswith(".txt")
      ):
        pins = _pins_in(os.path.join(folder, name))
        if pins:
          return os.path.join(folder, name), pins
    if folder == root or not folder.startswith(root):
      return None
    parent = os.path.dirname(folder)
    if parent == folder:
      return None
    folder = parent


# -- the API a program uses -----------------------------------------------------


def _dotted(node):
  if isinstance(node, ast.Name):
    return node.id
  if isinstance(node, ast.Attribute):
    base = _dotted(node.value)
    return None if base is None else base + "." + node.attr
  return None


def _is_module_ref(dotted):
  last = dotted.split(".")[-1]
  if last.endswith("_lib"):
    last = last[:-4]
  return last in _surface.MODULES


def _range(first, last):
  return [
    v
    for v in VERSIONS
    if _key(v) >= _key(first) and (last is None or _key(v) <= _key(last))
  ]


def api_evidence(tree):
  """What the program's API use says about its release.

  Args:
    tree: the program's `ast.Module`.

  Returns:
    (evidence, default_uses): evidence is a list of (line, what, releases),
    one per use that only some releases accept; default_uses is a list of
    (line, parameter, {release: default}) for calls relying on a default
    that changed between releases.
  """
  evidence = []
  defaults = []
  every = set(VERSIONS)

  def note(line, what, releases):
    if set(releases) != every:
      evidence.append((line, what, list(releases)))

  def name_releases(name):
    return [
      v
      for v in VERSIONS
      if any(name in _surface.RELEASES[v].names[m] for m in _surface.MODULES)
    ]

  known = set()
  for v in VERSIONS:
    for m in _surface.MODULES:
      known |= _surface.RELEASES[v].names[m]

  optimizer = _surface.BEHAVIOUR_DEFAULTS["optimizer.KfacOptimizer.__init__"]
  for node in ast.walk(tree):
    if isinstance(node, ast.Attribute):
      base = _dotted(node.value)
      if node.attr in known and base is not None and _is_module_ref(base):
        note(
          node.lineno, "`%s.%s`" % (base, node.attr), name_releases(node.attr)
        )
      elif node.attr in _surface.MEMBER_RELEASES:
        note(
          node.lineno,
          "`.%s`" % node.attr,
          _range(*_surface.MEMBER_RELEASES[node.attr]),
        )
    elif (
      isinstance(node, ast.ImportFrom)
      and node.module
      and (_is_module_ref(node.module))
    ):
      for alias in node.names:
        if alias.name in known:
          note(
            node.lineno,
            "`from %s import %s`" % (node.module, alias.name),
            name_releases(alias.name),
          )
    elif isinstance(node, ast.Call):
      func = _dotted(node.func) or ""
      last = func.split(".")[-1]
      keywords = {k.arg for k in node.keywords}
      if last.startswith("register_") and "reuse" in keywords:
        note(
          node.lineno,
          "`%s(reuse=...)`" % last,
          _range(*_surface.KEYWORD_RELEASES["reuse"]),
        )
      if last != "KfacOptimizer":
        continue
      if "placement_strategy" in keywords:
        note(
          node.lineno,
          "`KfacOptimizer(placement_strategy=...)`",
          _range(*_surface.KEYWORD_RELEASES["placement_strategy"]),
        )
      if any(isinstance(a, ast.Starred) for a in node.args) or None in keywords:
        continue
      parameter, positions, values = optimizer
      if len(node.args) >= 5:
        fifth = node.args[4]
        if (
          isinstance(fifth, ast.Constant)
          and isinstance(fifth.value, (int, float))
          and not isinstance(fifth.value, bool)
        ):
          note(
            node.lineno,
            "a number as fifth positional `KfacOptimizer` "
            "argument (`momentum` in 1.4, `var_list` later)",
            ["1.4"],
          )
        elif isinstance(fifth, (ast.List, ast.Tuple, ast.Call)):
          note(
            node.lineno,
            "a variable list as fifth positional "
            "`KfacOptimizer` argument (`var_list` from 1.5)",
            _range("1.5", None),
          )
      if parameter not in keywords:
        relying = {
          v: values[v] for v in VERSIONS if len(node.args) <= positions[v]
        }
        if relying:
          defaults.append((node.lineno, parameter, relying))
  return evidence, defaults


# -- the decision ---------------------------------------------------------------


def choose_release(source, flag=None, pins=None):
  """Chooses the release a program is rewritten for.

  Args:
    source: the program (`str` or `bytes`, valid Python).
    flag: the `--tf-version` value normalized by `parse_flag`, or None.
    pins: what `find_pins` returned for the program, or None.

  Returns:
    A `Decision`.
  """
  if flag is not None:
    return _decision(flag, "--tf-version %s" % flag)
  tree = ast.parse(source)
  evidence, defaults = api_evidence(tree)
  candidates = list(VERSIONS)
  why = []
  if pins is not None:
    pin_file, found = pins
    for _, releases in found:
      candidates = [v for v in candidates if v in releases]
    texts = ", ".join("`%s`" % t for t, _ in found)
    if not candidates:
      return Decision(
        None,
        None,
        "",
        "the TensorFlow pin %s in %s names no "
        "release that shipped tf.contrib.kfac (1.4 ... 1.10); "
        "run with --tf-version 1.N" % (texts, pin_file),
      )
    why.append("pin %s in %s" % (texts, pin_file))
  pinned = list(candidates)
  for line, what, releases in evidence:
    narrowed = [v for v in candidates if v in releases]
    if not narrowed:
      return Decision(
        None,
        None,
        "",
        "line %d uses %s (releases %s), which "
        "contradicts %s; run with --tf-version 1.N"
        % (
          line,
          what,
          _span(releases),
          "; ".join(why) or "the rest of the program",
        ),
      )
    if narrowed != candidates:
      why.append(
        "line %d uses %s (releases %s)" % (line, what, _span(releases))
      )
    candidates = narrowed
  if pins is None and candidates == list(VERSIONS):
    return Decision(
      None,
      "kfac",
      "no TensorFlow pin next to the program and "
      "no API from after 1.4: the 1.4 API (`kfac`)",
      None,
    )
  for line, parameter, relying in defaults:
    values = {relying[v] for v in candidates if v in relying}
    if len(values) > 1:
      split = ", ".join(
        "%s in %s"
        % (value, _span([v for v in candidates if relying.get(v) == value]))
        for value in sorted(values)
      )
      return Decision(
        None,
        None,
        "",
        "line %d relies on the `%s` default, "
        "which differs between the possible releases %s (%s)%s; "
        "run with --tf-version 1.N"
        % (
          line,
          parameter,
          _span(candidates),
          split,
          " -- from " + "; ".join(why) if why else "",
        ),
      )
  version = candidates[0]
  if len(candidates) == 1:
    reason = "; ".join(why)
  elif candidates == pinned:
    reason = "%s (lowest of %s)" % ("; ".join(why), _span(candidates))
  else:
    reason = "%s: the lowest of the releases that have it, %s" % (
      "; ".join(why),
      _span(candidates),
    )
  return _decision(version, reason)


def _span(releases):
  releases = sorted(releases, key=_key)
  if len(releases) == 1:
    return releases[0]
  consecutive = [VERSIONS.index(v) for v in releases] == list(
    range(VERSIONS.index(releases[0]), VERSIONS.index(releases[-1]) + 1)
  )
  if consecutive:
    return "%s-%s" % (releases[0], releases[-1])
  return ", ".join(releases)


def _decision(version, reason):
  target = namespace(version)
  if not namespace_available(version):
    return Decision(
      version,
      None,
      reason,
      "release %s (from %s): `%s` is not available in this "
      "kfac yet, so nothing was rewritten" % (version, reason, target),
    )
  return Decision(version, target, reason, None)
