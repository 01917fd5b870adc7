"""Where a legacy dotted path goes in `kfac`, and libcst name helpers."""

import ast

from kfac.upgrade._cst import cst
from kfac import _surface
from kfac.upgrade._tables import LEGACY_PREFIXES
from kfac.upgrade._tables import MODULES
from kfac.upgrade._tables import TOP_LEVEL_02
from kfac.upgrade._tables import UNSUPPORTED_TOP_LEVEL_02


# Where legacy paths go: "kfac" (the seed's 1.4 API) or a release namespace
# such as "kfac.r1_6". Set by `upgrade_source` for the length of one upgrade.
_TARGET = {"root": "kfac"}


def _target_root():
  """The package legacy `tf.contrib.kfac` paths are rewritten to."""
  return _TARGET["root"]


def _strip_lib(name):
  if name.endswith("_lib") and name[:-4] in MODULES:
    return name[:-4]
  return name


def _map_path(path):
  """Maps a dotted path to its `kfac` (1.4 layout) equivalent.

  Args:
    path: a fully qualified dotted name, e.g.
      "tensorflow.contrib.kfac.python.ops.fisher_factors.FullFactor".

  Returns:
    The new dotted path; `path` itself when nothing changes; None when the path
    is legacy / 0.2.x but has no counterpart (see `_path_problem`).
  """
  for prefix in LEGACY_PREFIXES:
    if path == prefix:
      return _target_root()
    if path.startswith(prefix + "."):
      rest = path[len(prefix) + 1 :].split(".")
      if rest[0] == "python":
        if len(rest) == 1:
          return None
        if rest[1] != "ops":
          return None
        rest = rest[2:]
        if not rest:
          return _target_root()
      rest[0] = _strip_lib(rest[0])
      if _missing_internal_module(rest[0]):
        return None
      return ".".join([_target_root()] + rest)
  if path == "kfac" or path.startswith("kfac."):
    rest = path.split(".")[1:]
    if not rest:
      return path
    if rest[0] == "python":
      if len(rest) >= 2 and rest[1] == "ops":
        rest = rest[2:]
        if not rest:
          return "kfac"
        if rest[0] in MODULES:
          return ".".join(["kfac"] + rest)
      return None
    if rest[0] in TOP_LEVEL_02:
      return ".".join([TOP_LEVEL_02[rest[0]]] + rest[1:])
    if rest[0] in UNSUPPORTED_TOP_LEVEL_02:
      return None
    return path
  return path


def _missing_internal_module(name):
  """Whether `name` is a never-exported module the target release lacks.

  `placement` exists from 1.8 and `linear_operator` from 1.9
  (`_surface.INTERNAL_MODULES`); the seed's `kfac` (the 1.4 API) has
  neither.
  """
  if name not in _surface.INTERNAL_MODULES:
    return False
  root = _target_root()
  if not root.startswith("kfac.r1_"):
    return True
  minor = int(root[len("kfac.r1_") :])
  first, last = _surface.INTERNAL_MODULES[name]
  return minor < int(first.split(".")[1]) or (
    last is not None and minor > int(last.split(".")[1])
  )


def _path_problem(path):
  """Says why `path` (one that `_map_path` cannot map) has no counterpart.

  Args:
    path: dotted path.

  Returns:
    A message, or None when `path` is mappable.
  """
  if _map_path(path) is not None:
    return None
  parts = path.split(".")
  for prefix in LEGACY_PREFIXES:
    if path.startswith(prefix + ".python.ops."):
      name = _strip_lib(path[len(prefix) + len(".python.ops.") :].split(".")[0])
      if _missing_internal_module(name):
        first = _surface.INTERNAL_MODULES[name][0]
        return (
          "`%s`: the module `%s` exists from release %s on, and this "
          "program is rewritten to `%s`" % (path, name, first, _target_root())
        )
    if path.startswith(prefix + "."):
      return (
        "`%s` has no counterpart in `kfac` (only `python.ops.<module>` is "
        "mapped)" % path
      )
  if parts[1] in UNSUPPORTED_TOP_LEVEL_02:
    return "kfac 0.2.x `kfac.%s`: %s" % (
      parts[1],
      UNSUPPORTED_TOP_LEVEL_02[parts[1]],
    )
  if parts[1:3] == ["python", "ops"] and len(parts) > 3:
    return (
      "kfac 0.2.x module `kfac.python.ops.%s` does not exist in the 1.4 "
      "API" % parts[3]
    )
  if parts[1:3] == ["python", "keras"]:
    return (
      "kfac 0.2.x `kfac.python.keras`: the 1.4 API has no Keras integration"
    )
  return "`%s` has no counterpart in the 1.4 API" % path


def _is_legacy(path):
  return any(path == p or path.startswith(p + ".") for p in LEGACY_PREFIXES)


def _is_kfac(path):
  return path == "kfac" or path.startswith("kfac.")


def _is_02_path(path):
  """Whether `path` only makes sense for PyPI kfac 0.2.x."""
  if not _is_kfac(path):
    return False
  parts = path.split(".")
  if len(parts) < 2:
    return False
  return (
    parts[1] == "python"
    or parts[1] in TOP_LEVEL_02
    or parts[1] in UNSUPPORTED_TOP_LEVEL_02
  )


def _dotted(node):
  """Returns the dotted name of a Name/Attribute chain, or None."""
  if isinstance(node, cst.Name):
    return node.value
  if isinstance(node, cst.Attribute):
    base = _dotted(node.value)
    return None if base is None else base + "." + node.attr.value
  return None


def _make_dotted(path, template=None):
  """Builds a Name/Attribute chain for `path`, keeping `template`'s parens."""
  parts = path.split(".")
  node = cst.Name(parts[0])
  for part in parts[1:]:
    node = cst.Attribute(value=node, attr=cst.Name(part))
  if template is not None and (template.lpar or template.rpar):
    node = node.with_changes(lpar=template.lpar, rpar=template.rpar)
  return node


def _root_name(node):
  while isinstance(node, cst.Attribute):
    node = node.value
  return node if isinstance(node, cst.Name) else None


def _string_value(node):
  if isinstance(node, cst.SimpleString):
    try:
      value = ast.literal_eval(node.value)
    except (ValueError, SyntaxError):
      return None
    return value if isinstance(value, str) else None
  return None


def _is_none(node):
  return isinstance(node, cst.Name) and node.value == "None"
