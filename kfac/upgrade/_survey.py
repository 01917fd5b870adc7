"""Pre-pass: facts about the original module before it is rewritten."""

import collections

from kfac.upgrade._cst import cst
from kfac.upgrade._cst import cst_metadata
from kfac.upgrade._tables import _CMVP_PATH
from kfac.upgrade._paths import (
  _dotted,
  _is_02_path,
  _is_kfac,
  _is_legacy,
  _map_path,
)


def _package_alias_target(visitor, node):
  """For `NAME = tf.contrib.kfac` (the 2017 idiom) returns NAME, else None.

  Args:
    visitor: a visitor or transformer with QualifiedNameProvider metadata.
    node: an original `cst.Assign` node.
  """
  if len(node.targets) != 1 or not isinstance(node.targets[0].target, cst.Name):
    return None
  if not isinstance(node.value, cst.Attribute):
    return None
  names = visitor.get_metadata(
    cst_metadata.QualifiedNameProvider, node.value, set()
  )
  names = {
    q.name for q in names if q.source == cst_metadata.QualifiedNameSource.IMPORT
  }
  if len(names) != 1:
    return None
  path = names.pop()
  if not _is_legacy(path) or _map_path(path) != "kfac":
    return None
  return node.targets[0].target.value


class _Survey(cst.CSTVisitor):
  """Collects facts about the original module before rewriting."""

  METADATA_DEPENDENCIES = (cst_metadata.QualifiedNameProvider,)

  def __init__(self):
    super(_Survey, self).__init__()
    self.imports_kfac = False
    self.markers_02 = False
    self.method_names = set()
    self.name_kinds = collections.defaultdict(set)  # name -> {"cmvp", "loss"}
    self.package_alias_targets = set()  # ids of `X` in `X = tf.contrib.kfac`

  def _note_path(self, path):
    if _is_kfac(path):
      self.imports_kfac = True
      if _is_02_path(path):
        self.markers_02 = True

  def visit_Import(self, node):
    for alias in node.names:
      self._note_path(_dotted(alias.name) or "")
    return False

  def visit_ImportFrom(self, node):
    if node.relative:
      return False
    module = _dotted(node.module) if node.module is not None else None
    if module is None:
      return False
    self._note_path(module)
    if not isinstance(node.names, cst.ImportStar):
      for alias in node.names:
        self._note_path(module + "." + alias.name.value)
    return False

  def visit_Attribute(self, node):
    self.method_names.add(node.attr.value)

  def _kind(self, value):
    """What the expression `value` evaluates to: "cmvp", "loss" or None."""
    if isinstance(value, cst.Call):
      try:
        names = self.get_metadata(
          cst_metadata.QualifiedNameProvider, value.func
        )
      except KeyError:
        names = set()
      paths = {_map_path(q.name) for q in names}
      if _CMVP_PATH in paths:
        return "cmvp"
      if any(p and p.startswith("kfac.loss_functions.") for p in paths):
        return "loss"
    if (
      isinstance(value, cst.Subscript)
      and isinstance(value.value, cst.Attribute)
      and value.value.attr.value == "losses"
    ):
      return "loss"
    return None

  def visit_Assign(self, node):
    if _package_alias_target(self, node) is not None:
      self.package_alias_targets.add(id(node.targets[0].target))
    kind = self._kind(node.value)
    for target in node.targets:
      if isinstance(target.target, cst.Name):
        self.name_kinds[target.target.value].add(kind)

  def visit_For(self, node):
    if (
      isinstance(node.target, cst.Name)
      and isinstance(node.iter, cst.Attribute)
      and node.iter.attr.value == "losses"
    ):
      self.name_kinds[node.target.value].add("loss")


class _TensorflowUse(cst.CSTVisitor):
  """Whether the bare name `tensorflow` is used outside legacy chains."""

  METADATA_DEPENDENCIES = (cst_metadata.QualifiedNameProvider,)

  def __init__(self):
    super(_TensorflowUse, self).__init__()
    self.used = False
    self.other_binding = False

  def visit_Import(self, node):
    for alias in node.names:
      name = _dotted(alias.name) or ""
      if (
        alias.asname is None
        and name.split(".")[0] == "tensorflow"
        and (not _is_legacy(name))
      ):
        self.other_binding = True
    return False

  def visit_ImportFrom(self, node):
    return False

  def visit_Attribute(self, node):
    names = self.get_metadata(cst_metadata.QualifiedNameProvider, node, set())
    names = {q.name for q in names}
    if len(names) == 1:
      path = names.pop()
      if _is_legacy(path):
        return False
    return True

  def visit_Name(self, node):
    if node.value == "tensorflow":
      names = self.get_metadata(cst_metadata.QualifiedNameProvider, node, set())
      if any(q.name == "tensorflow" for q in names):
        self.used = True
