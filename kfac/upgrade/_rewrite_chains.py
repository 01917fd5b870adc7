"""Rewriting of attribute chains (a mixin of `_Upgrader`)."""

from kfac.upgrade._cst import cst
from kfac.upgrade._cst import cst_metadata
from kfac.upgrade._results import Finding
from kfac.upgrade._tables import AMBIGUOUS_RENAMES_02
from kfac.upgrade._tables import METHOD_RENAMES_02
from kfac.upgrade._tables import _CMVP_PATH
from kfac.upgrade._paths import (
  _target_root,
  _dotted,
  _make_dotted,
  _map_path,
  _root_name,
)


class _ChainRewrites(object):
  """`tf.contrib.kfac.X` chains and kfac 0.2.x method renames."""

  def _kfac_name_free(self, original):
    """Whether the name `kfac` at `original` is free or bound to kfac."""
    try:
      scope = self.get_metadata(cst_metadata.ScopeProvider, original)
    except KeyError:
      return True
    if scope is None:
      return True
    for assignment in scope["kfac"]:
      if (
        id(assignment.node) in self._package_alias_targets
        and _target_root() == "kfac"
      ):
        continue  # `kfac = tf.contrib.kfac`, which becomes `import kfac`.
      if not isinstance(assignment, cst_metadata.ImportAssignment):
        return False
      node = assignment.node
      ok = False
      if isinstance(node, cst.Import):
        for alias in node.names:
          name = _dotted(alias.name) or ""
          bound = (
            alias.asname.name.value
            if alias.asname is not None
            else name.split(".")[0]
          )
          if (
            bound == "kfac" and (_map_path(name) or "").split(".")[0] == "kfac"
          ):
            ok = alias.asname is None or _map_path(name) == "kfac"
      elif isinstance(node, cst.ImportFrom) and node.module is not None:
        module = _dotted(node.module) or ""
        if not isinstance(node.names, cst.ImportStar):
          for alias in node.names:
            bound = (
              alias.asname.name.value
              if alias.asname is not None
              else alias.name.value
            )
            if (
              bound == "kfac"
              and _map_path(module + "." + alias.name.value) == "kfac"
            ):
              ok = True
      if not ok:
        return False
    return True

  # -- imports -----------------------------------------------------------------

  # -- attribute chains --------------------------------------------------------

  def leave_Attribute(self, original, updated):
    if self._import_depth:
      return updated
    method = original.attr.value
    if self._is_02 and method in AMBIGUOUS_RENAMES_02:
      kind = self._receiver_kind(original.value)
      if kind is None:
        cmvp_name, loss_name = AMBIGUOUS_RENAMES_02[method]
        self._attend(
          original,
          "kfac 0.2.x `.%s`: `%s` if the receiver is a "
          "CurvatureMatrixVectorProductComputer, `%s` if it is a "
          "loss function; the receiver's type is not clear here"
          % (method, cmvp_name, loss_name),
        )
        return updated
      new_method = AMBIGUOUS_RENAMES_02[method][0 if kind == "cmvp" else 1]
      self._change(
        original.attr,
        "`.%s` -> `.%s` (kfac 0.2.x name)" % (method, new_method),
        kind="method",
      )
      return updated.with_changes(
        attr=updated.attr.with_changes(value=new_method)
      )
    if (
      self._is_02
      and method in METHOD_RENAMES_02
      and not method.startswith("register_")
    ):
      self._change(
        original.attr,
        "`.%s` -> `.%s` (kfac 0.2.x name)"
        % (method, METHOD_RENAMES_02[method]),
        kind="method",
      )
      return updated.with_changes(
        attr=updated.attr.with_changes(value=METHOD_RENAMES_02[method])
      )
    path = self._qname(original)
    if path is None:
      return updated
    root = _root_name(original)
    if root is None:
      return updated
    root_path = self._qname(root)
    if root_path is not None and _map_path(root_path) != root_path:
      # The import that binds the root is rewritten; uses stay as they are.
      return updated
    new = _map_path(path)
    if new is None:
      # No counterpart (reported by the audit): keep the whole chain legacy.
      self._changes.pop(self._pos(original) + ("chain",), None)
      self._kfac_chains.discard(self._pos(original))
      return original
    if new == path:
      return updated
    child_path = self._qname(original.value)
    child_repr = None
    if child_path is not None:
      child_repr = _map_path(child_path)
      if child_repr is None:
        child_repr = child_path
    if new.split(".")[0] == "kfac" and root.value != "kfac":
      if not self._kfac_name_free(original):
        self._conflicts[self._pos(original)] = Finding(
          self._pos(original)[0],
          "`%s` would become `%s`, but the name `kfac` means something "
          "else here; rewrite it by hand" % (self._code(original), new),
        )
        return updated
      self._kfac_chains.add(self._pos(original))
    self._change(original, "`%s` -> `%s`" % (self._code(original), new))
    if child_repr is not None and new == child_repr + "." + original.attr.value:
      return updated
    if child_repr is not None and new.rsplit(".", 1)[0] == child_repr:
      return updated.with_changes(
        attr=updated.attr.with_changes(value=new.rsplit(".", 1)[1])
      )
    return _make_dotted(new, template=updated)

  def _receiver_kind(self, node):
    """The kind of the receiver expression `node`: "cmvp", "loss" or None."""
    if isinstance(node, cst.Name):
      kinds = self._name_kinds.get(node.value, set())
      return next(iter(kinds)) if len(kinds) == 1 else None
    if (
      isinstance(node, cst.Subscript)
      and isinstance(node.value, cst.Attribute)
      and node.value.attr.value == "losses"
    ):
      return "loss"
    if isinstance(node, cst.Call):
      path = self._qname(node.func)
      if path is not None and _map_path(path) == _CMVP_PATH:
        return "cmvp"
    return None

  # -- calls -------------------------------------------------------------------
