"""What cannot be upgraded mechanically, found in the original module."""

from kfac.upgrade._cst import cst
from kfac.upgrade._cst import cst_metadata
from kfac.upgrade._results import Finding
from kfac.upgrade._tables import MODULES
from kfac.upgrade._tables import SURFACE_14
from kfac.upgrade._tables import UNSUPPORTED_METHODS_02
from kfac.upgrade._paths import (
  _dotted,
  _is_kfac,
  _map_path,
  _path_problem,
  _root_name,
)


class _Auditor(cst.CSTVisitor):
  """Finds, in the original module, what cannot be upgraded mechanically."""

  METADATA_DEPENDENCIES = (
    cst_metadata.QualifiedNameProvider,
    cst_metadata.PositionProvider,
  )

  def __init__(self, is_02):
    super(_Auditor, self).__init__()
    self._is_02 = is_02
    self.findings = []

  def _qname(self, node):
    names = {
      q.name
      for q in self.get_metadata(
        cst_metadata.QualifiedNameProvider, node, set()
      )
      if q.source == cst_metadata.QualifiedNameSource.IMPORT
    }
    return names.pop() if len(names) == 1 else None

  def _line(self, node):
    return self.get_metadata(cst_metadata.PositionProvider, node).start.line

  def visit_Import(self, node):
    return False

  def visit_ImportFrom(self, node):
    return False

  def _problem(self, path):
    problem = _path_problem(path)
    if problem is not None:
      return problem
    path = _map_path(path)
    if self._is_02 and _is_kfac(path):
      parts = path.split(".")
      if (
        len(parts) >= 3
        and parts[1] in MODULES
        and (parts[2] not in SURFACE_14[parts[1]])
      ):
        return (
          "`%s` does not exist in the 1.4 API (kfac 0.2.x name?)"
          % ".".join(parts[:3])
        )
    return None

  def visit_Attribute(self, node):
    method = node.attr.value
    if self._is_02 and method in UNSUPPORTED_METHODS_02:
      self.findings.append(
        Finding(
          self._line(node),
          "kfac 0.2.x `.%s`: %s" % (method, UNSUPPORTED_METHODS_02[method]),
        )
      )
    # Judge whole chains (`a.b.c`), at their outermost node only.
    if _root_name(node) is None:
      return True
    path = self._qname(node)
    if path is None or self._problem(path) is None:
      return False
    # Report the first component after the longest prefix that is fine.
    parts = path.split(".")
    good = 0
    for i in range(1, len(parts) + 1):
      if self._problem(".".join(parts[:i])) is None:
        good = i
    problem = self._problem(".".join(parts[: good + 1]))
    self.findings.append(Finding(self._line(node), problem))
    return False


class _ImportAuditor(cst.CSTVisitor):
  """Finds `from X import name` of names missing in the 1.4 API (0.2.x)."""

  METADATA_DEPENDENCIES = (cst_metadata.PositionProvider,)

  def __init__(self):
    super(_ImportAuditor, self).__init__()
    self.findings = []

  def visit_ImportFrom(self, node):
    if (
      node.relative
      or node.module is None
      or isinstance(node.names, cst.ImportStar)
    ):
      return False
    module = _dotted(node.module) or ""
    for alias in node.names:
      path = _map_path(module + "." + alias.name.value)
      parts = (path or "").split(".")
      if (
        len(parts) == 3
        and parts[0] == "kfac"
        and parts[1] in MODULES
        and parts[2] not in SURFACE_14[parts[1]]
      ):
        self.findings.append(
          Finding(
            self.get_metadata(cst_metadata.PositionProvider, node).start.line,
            "`%s` does not exist in the 1.4 API (kfac 0.2.x name?)" % path,
          )
        )
    return False
