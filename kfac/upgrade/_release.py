"""Which `tf.contrib.kfac` release a program was written for.

`choose_release` decides, in this order: the `--tf-version` flag; the
TensorFlow version pins next to the program (`requirements*.txt`,
`setup.py`, `setup.cfg`, `pyproject.toml`, `environment.yml`, searched from
the file's folder up to the root given on the command line, the nearest
folder with a pin winning); the API the program uses, all from the tables
of `kfac/_surface.py`:

* names, methods and keywords that only some releases have (the thunk API
  of 1.8, `placement_strategy`, the 1.8 registrations, `as_default` on a
  `LayerCollection`, ...), and the never-exported modules `placement` (1.8)
  and `linear_operator` (1.9) under `tensorflow.contrib.kfac.python.ops`;
* calls of the entry points whose signature changed (releases.md §14),
  checked against each release's signature: too many positional arguments,
  an unknown keyword, or a literal that cannot be meant for the parameter it
  lands on (`register_conv2d(p, s, pad, x, y, "diagonal")` is `approx` up to
  1.7 and a bad `data_format` from 1.8) rule releases out;
* a direct call of a class that later became abstract (`FisherEstimator`).

Each piece of evidence keeps the releases that accept it; the reason lists
the ones that narrowed the choice. With no pin and no later-release API the
program is taken as a 1.4 program for the seed API, `kfac`, as before
releases existed (also when what it uses was dropped later, like
`cov_update_op` in 1.9: 1.4 still fits). Otherwise the lowest remaining
release is chosen, unless
the remaining releases differ for one of the program's calls: an argument
whose value is not evident lands on differently named parameters
(`KfacOptimizer(lr, decay, damping, lc, x)`: `momentum` in 1.4, `var_list`
later), or the call relies on a default that changed (`momentum`,
`register_generic`'s and `register_fully_connected_multi`'s `approx`,
releases.md §13). Then nothing is guessed: the decision is "ambiguous" and
the flag is asked for.

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


def _module_of(dotted):
  """The kfac module a dotted reference ends with (`_lib` dropped), or None."""
  last = dotted.split(".")[-1]
  if last.endswith("_lib"):
    last = last[:-4]
  return last if last in _surface.MODULES else None


def _is_internal_path(dotted):
  """Whether `dotted` goes through the legacy `kfac.python.ops` layout."""
  return "kfac.python.ops" in dotted


def _range(first, last):
  return [
    v
    for v in VERSIONS
    if _key(v) >= _key(first) and (last is None or _key(v) <= _key(last))
  ]


def _entry_points():
  """Call name -> qualname, for every signature recorded in `_surface`.

  A class is called by its name (`KfacOptimizer`), a method by its own
  (`register_conv2d`), a module function with its module
  (`fisher_factors.set_global_constants`).
  """
  found = {}
  for release in _surface.RELEASES.values():
    for qualname in release.signatures:
      parts = qualname.split(".")
      if len(parts) == 2:
        found[qualname] = qualname
      elif parts[2] == "__init__":
        found[parts[1]] = qualname
      else:
        found[parts[2]] = qualname
  return found


_ENTRY_POINTS = _entry_points()


def _entry_point(func):
  """The recorded qualname a call of the dotted `func` reaches, or None."""
  parts = func.split(".")
  if parts[-1] in _ENTRY_POINTS:
    return _ENTRY_POINTS[parts[-1]]
  if len(parts) >= 2:
    module = _module_of(".".join(parts[:-1]))
    if module is not None:
      return _ENTRY_POINTS.get(module + "." + parts[-1])
  return None


# Calls whose result is a list of variables (a `var_list` argument).
_LIST_CALLS = frozenset(
  ("trainable_variables", "global_variables", "get_collection", "list")
)


def _kind(node):
  """The literal kind of an argument (see `_surface.PARAMETER_KINDS`).

  Returns None for expressions whose value is not evident.
  """
  if isinstance(node, ast.Constant):
    value = node.value
    if value is None:
      return "none"
    if isinstance(value, bool):
      return "bool"
    if isinstance(value, (int, float)):
      return "number"
    if isinstance(value, str):
      return "str:" + value
    return None
  if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
    return "number" if _kind(node.operand) == "number" else None
  if isinstance(node, (ast.List, ast.Tuple, ast.ListComp)):
    return "list"
  if isinstance(node, ast.Lambda):
    return "callable"
  if isinstance(node, ast.Call):
    if (_dotted(node.func) or "").split(".")[-1] in _LIST_CALLS:
      return "list"
  return None


def _fits(kind, parameter):
  """Whether an argument of `kind` can be meant for `parameter`."""
  accepted = _surface.PARAMETER_KINDS.get(parameter)
  if kind is None or accepted is None:
    return True
  return kind in accepted or (kind.startswith("str:") and "str" in accepted)


def _bound(signature, index):
  """The parameter positional argument `index` lands on, or None."""
  if index < len(signature.positional):
    return signature.positional[index]
  return "*args" if signature.var_positional else None


def _misfits(signature, node):
  """Why a call cannot mean what it says under `signature`.

  Returns:
    A set of problem keys: ("count",) for too many positional arguments,
    ("keyword", name) for an unknown keyword, ("arg", i) for a literal that
    does not fit the parameter it lands on.
  """
  problems = set()
  if len(node.args) > len(signature.positional) and (
    not signature.var_positional
  ):
    problems.add(("count",))
  names = signature.positional + signature.keyword_only
  for keyword in node.keywords:
    if keyword.arg not in names and not signature.var_keyword:
      problems.add(("keyword", keyword.arg))
  for index, arg in enumerate(node.args):
    parameter = _bound(signature, index)
    if parameter is not None and not _fits(_kind(arg), parameter):
      problems.add(("arg", index))
  return problems


def _bindings(signatures, index):
  """Which parameter positional argument `index` is, per run of releases.

  Releases where the argument lands on no parameter (too many arguments)
  are left out: that problem is reported on its own.
  """
  runs = []
  for version, signature in signatures.items():
    name = _bound(signature, index)
    if name is None:
      continue
    if runs and runs[-1][0] == name:
      runs[-1][1].append(version)
    else:
      runs.append((name, [version]))
  return ", ".join("`%s` in %s" % (name, _span(vs)) for name, vs in runs)


def _describe(problem, name, node, signatures):
  """The evidence text for one problem key of a call."""
  if problem[0] == "keyword":
    return "`%s(%s=...)`" % (name, problem[1])
  if problem[0] == "count":
    return "`%s(...)` with %d positional arguments (%s)" % (
      name,
      len(node.args),
      ", ".join(
        "%d in %s" % (len(s.positional), v)
        for v, s in signatures.items()
        if not s.var_positional
      ),
    )
  index = problem[1]
  return "`%s(...)` with `%s` as positional argument %d (%s)" % (
    name,
    ast.unparse(node.args[index]),
    index + 1,
    _bindings(signatures, index),
  )


def _signatures(qualname):
  return collections.OrderedDict(
    (v, _surface.signature(v, qualname))
    for v in VERSIONS
    if qualname in _surface.RELEASES[v].signatures
  )


Call = collections.namedtuple("Call", ["line", "name", "qualname", "node"])


def api_evidence(tree):
  """What the program's API use says about its release.

  Args:
    tree: the program's `ast.Module`.

  Returns:
    (evidence, calls): evidence is a list of (line, what, releases), one per
    use that only some releases accept; calls lists the `Call`s of entry
    points with a recorded signature (for defaults and positional meanings
    that differ between the releases left).
  """
  evidence = []
  calls = []
  every = set(VERSIONS)

  def note(line, what, releases):
    if set(releases) != every and releases:
      evidence.append((line, what, list(releases)))

  def name_releases(name, path):
    found = {
      v
      for v in VERSIONS
      if any(name in _surface.RELEASES[v].names[m] for m in _surface.MODULES)
    }
    if _is_internal_path(path) and name in _surface.MEMBER_RELEASES:
      found |= set(_range(*_surface.MEMBER_RELEASES[name]))
    return [v for v in VERSIONS if v in found]

  def internal_module(path):
    last = path.split(".")[-1]
    if _is_internal_path(path) and last in _surface.INTERNAL_MODULES:
      return _range(*_surface.INTERNAL_MODULES[last])
    return None

  known = set()
  for v in VERSIONS:
    for m in _surface.MODULES:
      known |= _surface.RELEASES[v].names[m]

  receivers = collections.defaultdict(set)  # class -> names bound to one
  for node in ast.walk(tree):
    if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
      cls = (_dotted(node.value.func) or "").split(".")[-1]
      for target in node.targets:
        if isinstance(target, ast.Name):
          receivers[cls].add(target.id)

  for node in ast.walk(tree):
    if isinstance(node, ast.Attribute):
      base = _dotted(node.value)
      path = "%s.%s" % (base, node.attr)
      if base is not None and internal_module(path) is not None:
        note(node.lineno, "`%s`" % path, internal_module(path))
      elif node.attr in known and base is not None and _module_of(base):
        note(node.lineno, "`%s`" % path, name_releases(node.attr, path))
      elif node.attr in _surface.MEMBER_RELEASES:
        note(
          node.lineno,
          "`.%s`" % node.attr,
          _range(*_surface.MEMBER_RELEASES[node.attr]),
        )
      elif node.attr in _surface.RECEIVER_MEMBERS:
        cls, first, last = _surface.RECEIVER_MEMBERS[node.attr]
        value = node.value
        if (isinstance(value, ast.Name) and value.id in receivers[cls]) or (
          isinstance(value, ast.Call)
          and (_dotted(value.func) or "").split(".")[-1] == cls
        ):
          note(node.lineno, "`%s.%s`" % (cls, node.attr), _range(first, last))
    elif isinstance(node, ast.Import):
      for alias in node.names:
        if internal_module(alias.name) is not None:
          note(
            node.lineno,
            "`import %s`" % alias.name,
            internal_module(alias.name),
          )
    elif isinstance(node, ast.ImportFrom) and node.module:
      for alias in node.names:
        path = "%s.%s" % (node.module, alias.name)
        what = "`from %s import %s`" % (node.module, alias.name)
        module = internal_module(path) or internal_module(node.module)
        if module is not None:
          note(node.lineno, what, module)
        elif _module_of(node.module) and (
          alias.name in known or alias.name in _surface.MEMBER_RELEASES
        ):
          note(node.lineno, what, name_releases(alias.name, path))
    elif isinstance(node, ast.Call):
      _call_evidence(node, note, calls)
  return evidence, calls


def _call_evidence(node, note, calls):
  """Notes what one call says about the release; records entry points."""
  func = _dotted(node.func) or ""
  name = func.split(".")[-1]
  module = _module_of(".".join(func.split(".")[:-1]))
  for qualname, span in _surface.INSTANTIABLE.items():
    if qualname.split(".")[1] == name and module in (
      None,
      qualname.split(".")[0],
    ):
      note(
        node.lineno,
        "a direct `%s(...)` call (the class is abstract after %s)"
        % (name, span[1]),
        _range(*span),
      )
  if any(isinstance(a, ast.Starred) for a in node.args) or any(
    k.arg is None for k in node.keywords
  ):
    return
  qualname = _entry_point(func)
  if qualname is None:
    if name.startswith("register_"):
      for keyword in node.keywords:
        if keyword.arg in _surface.KEYWORD_RELEASES:
          note(
            node.lineno,
            "`%s(%s=...)`" % (name, keyword.arg),
            _range(*_surface.KEYWORD_RELEASES[keyword.arg]),
          )
    return
  signatures = _signatures(qualname)
  problems = {v: _misfits(s, node) for v, s in signatures.items()}
  if all(problems.values()):
    return  # Parses in no release: not a call of this entry point.
  for problem in sorted(set().union(*problems.values()), key=str):
    note(
      node.lineno,
      _describe(problem, name, node, signatures),
      [
        v
        for v, s in signatures.items()
        if problem not in problems[v]
        and (problem[0] != "arg" or _bound(s, problem[1]) is not None)
      ],
    )
  calls.append(Call(node.lineno, name, qualname, node))


def _methods_called(tree):
  return {
    node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
  }


def _call_problem(call, candidates, methods_called):
  """Why `call` needs the flag among `candidates`, or None.

  Two reasons: an argument whose value is not evident lands on parameters
  of different names in the candidate releases (releases.md §14), or the
  call relies on a default that differs between them (§13).
  """
  signatures = _signatures(call.qualname)
  signatures = collections.OrderedDict(
    (v, s) for v, s in signatures.items() if v in candidates
  )
  for index, arg in enumerate(call.node.args):
    names = {_bound(s, index) for s in signatures.values()}
    if _kind(arg) is None and len(names) > 1:
      return (
        "line %d passes `%s` as positional argument %d of `%s`, which is %s"
        % (
          call.line,
          ast.unparse(arg),
          index + 1,
          call.name,
          _bindings(signatures, index),
        )
      )
  if call.qualname not in _surface.BEHAVIOUR_DEFAULTS:
    return None
  parameter, defaults, setter = _surface.BEHAVIOUR_DEFAULTS[call.qualname]
  keywords = {k.arg for k in call.node.keywords}
  if parameter in keywords or (setter is not None and setter in methods_called):
    return None
  relying = {
    v: defaults[v]
    for v, s in signatures.items()
    if parameter in s.positional
    and len(call.node.args) <= s.positional.index(parameter)
  }
  values = sorted(set(relying.values()))
  if len(values) < 2:
    return None
  split = ", ".join(
    "%s in %s" % (value, _span([v for v in relying if relying[v] == value]))
    for value in values
  )
  return (
    "line %d relies on the `%s` default, which differs between the possible "
    "releases %s (%s)" % (call.line, parameter, _span(candidates), split)
  )


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
  evidence, calls = api_evidence(tree)
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
  for line, what, releases in sorted(evidence, key=lambda e: e[0]):
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
  if pins is None and candidates[0] == "1.4" and len(candidates) > 1:
    # Nothing the program uses is from after 1.4 (uses that later releases
    # dropped, like `cov_update_op`, still fit 1.4).
    return Decision(
      None,
      "kfac",
      "no TensorFlow pin next to the program and "
      "no API from after 1.4: the 1.4 API (`kfac`)",
      None,
    )
  methods_called = _methods_called(tree)
  for call in sorted(calls, key=lambda c: c.line):
    problem = _call_problem(call, candidates, methods_called)
    if problem is not None:
      return Decision(
        None,
        None,
        "",
        "%s%s; run with --tf-version 1.N"
        % (problem, " -- from " + "; ".join(why) if why else ""),
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
