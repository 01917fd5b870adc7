"""Adding `import kfac` to a module that needs it."""

from kfac.upgrade._cst import cst
from kfac.upgrade._paths import _dotted


def _binds_kfac_at_top(module):
  for stmt in module.body:
    if not isinstance(stmt, cst.SimpleStatementLine):
      continue
    for small in stmt.body:
      if isinstance(small, cst.Import):
        for alias in small.names:
          name = _dotted(alias.name) or ""
          if alias.asname is None and name.split(".")[0] == "kfac":
            return True
          if (
            alias.asname is not None
            and alias.asname.name.value == "kfac"
            and name == "kfac"
          ):
            return True
  return False


def _imports_tensorflow(stmt):
  if not isinstance(stmt, cst.SimpleStatementLine):
    return False
  for small in stmt.body:
    if isinstance(small, cst.Import):
      for alias in small.names:
        if (_dotted(alias.name) or "").split(".")[0] == "tensorflow":
          return True
    if (
      isinstance(small, cst.ImportFrom)
      and not small.relative
      and (small.module is not None)
    ):
      if (_dotted(small.module) or "").split(".")[0] == "tensorflow":
        return True
  return False


def _is_import_line(stmt):
  return isinstance(stmt, cst.SimpleStatementLine) and all(
    isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body
  )


def _is_docstring(stmt):
  return (
    isinstance(stmt, cst.SimpleStatementLine)
    and len(stmt.body) == 1
    and isinstance(stmt.body[0], cst.Expr)
    and isinstance(
      stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString)
    )
  )


def _add_kfac_import(module):
  """Inserts `import kfac` after the first top-level TensorFlow import."""
  body = list(module.body)
  index = None
  for i, stmt in enumerate(body):
    if _imports_tensorflow(stmt):
      index = i + 1
      break
  if index is None:
    index = 0
    if body and _is_docstring(body[0]):
      index = 1
    while index < len(body) and _is_import_line(body[index]):
      index += 1
  line = cst.SimpleStatementLine(
    body=[cst.Import(names=[cst.ImportAlias(name=cst.Name("kfac"))])]
  )
  body.insert(index, line)
  return module.with_changes(body=body), index
