"""Rewriting of import statements (a mixin of `_Upgrader`)."""

import collections

from kfac.upgrade._cst import cst
from kfac.upgrade._paths import (
  _target_root,
  _dotted,
  _make_dotted,
  _map_path,
  _path_problem,
)
from kfac.upgrade._arguments import _default_comma


class _ImportRewrites(object):
  """Import statements and the `kfac = tf.contrib.kfac` idiom."""

  def visit_Import(self, node):
    self._import_depth += 1

  def visit_ImportFrom(self, node):
    self._import_depth += 1

  def leave_Import(self, original, updated):
    self._import_depth -= 1
    return updated

  def leave_ImportFrom(self, original, updated):
    self._import_depth -= 1
    return updated

  def _rewrite_import(self, node):
    """Returns a list of small statements replacing import `node`, or None."""
    if isinstance(node, cst.Import):
      return self._rewrite_plain_import(node)
    return self._rewrite_from_import(node)

  def _new_path(self, path):
    """The path that replaces imported `path`, or None where `path` stays.

    A path that has no counterpart stays; it is reported for attention.
    """
    new = _map_path(path)
    if new is None:
      self._attend(self._line_node, _path_problem(path))
    return None if new == path else new

  def _rewrite_plain_import(self, node):
    new_aliases = []
    changed = False
    for alias in node.names:
      name = _dotted(alias.name)
      new = self._new_path(name)
      if new is None:
        new_aliases.append(alias)
        continue
      changed = True
      if alias.asname is None and name.split(".")[0] != new.split(".")[0]:
        # `import tensorflow.contrib.kfac` bound `tensorflow`: keep that
        # binding if the rest of the module still uses it.
        if self.tensorflow_still_used:
          new_aliases.append(
            alias.with_changes(
              name=cst.Name(name.split(".")[0]), comma=_default_comma()
            )
          )
        new_aliases.append(alias.with_changes(name=_make_dotted(new)))
      elif alias.asname is not None and alias.asname.name.value == new:
        # `import tensorflow.contrib.kfac as kfac` -> `import kfac`.
        new_aliases.append(
          alias.with_changes(name=_make_dotted(new), asname=None)
        )
      else:
        new_aliases.append(alias.with_changes(name=_make_dotted(new)))
    if not changed:
      return None
    new_aliases[-1] = new_aliases[-1].with_changes(comma=node.names[-1].comma)
    return [node.with_changes(names=new_aliases)]

  def _rewrite_from_import(self, node):
    if node.relative or node.module is None:
      return None
    module = _dotted(node.module)
    if isinstance(node.names, cst.ImportStar):
      new_module = self._new_path(module)
      if new_module is None:
        return None
      return [node.with_changes(module=_make_dotted(new_module))]
    # Group the aliases by their new module.
    keep = []  # aliases that stay in this statement, unchanged
    groups = collections.OrderedDict()  # new module -> [aliases]
    plain = []  # `import kfac [as x]` statements
    for alias in node.names:
      name = alias.name.value
      new = self._new_path(module + "." + name)
      if new is None:
        keep.append(alias)
        continue
      bound = alias.asname.name.value if alias.asname is not None else name
      if "." not in new:
        plain.append(
          cst.Import(
            names=[
              cst.ImportAlias(
                name=cst.Name(new),
                asname=None
                if bound == new
                else cst.AsName(name=cst.Name(bound)),
              )
            ]
          )
        )
        continue
      new_mod, new_name = new.rsplit(".", 1)
      if new_name == name:
        new_alias = alias
      elif alias.asname is not None:
        new_alias = alias.with_changes(name=cst.Name(new_name))
      else:
        new_alias = alias.with_changes(
          name=cst.Name(new_name), asname=cst.AsName(name=cst.Name(name))
        )
      groups.setdefault(new_mod, []).append(new_alias)
    if not groups and not plain:
      return None

    def fix_commas(aliases, template):
      aliases = list(aliases)
      for i in range(len(aliases) - 1):
        if not isinstance(aliases[i].comma, cst.Comma):
          aliases[i] = aliases[i].with_changes(comma=_default_comma())
      aliases[-1] = aliases[-1].with_changes(comma=template[-1].comma)
      return aliases

    statements = []
    if keep:
      statements.append(node.with_changes(names=fix_commas(keep, node.names)))
    for i, (new_mod, aliases) in enumerate(groups.items()):
      if not keep and i == 0:
        statements.append(
          node.with_changes(
            module=_make_dotted(new_mod), names=fix_commas(aliases, node.names)
          )
        )
      else:
        aliases = [
          a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in aliases
        ]
        statements.append(
          cst.ImportFrom(module=_make_dotted(new_mod), names=aliases)
        )
    statements.extend(plain)
    return statements

  def leave_SimpleStatementLine(self, original, updated):
    if (
      len(original.body) == 1
      and isinstance(original.body[0], cst.Assign)
      and id(original.body[0].targets[0].target) in self._package_alias_targets
    ):
      # The 2017 idiom `kfac = tf.contrib.kfac` becomes `import kfac`.
      name = original.body[0].targets[0].target.value
      root = _target_root()
      new = cst.Import(
        names=[
          cst.ImportAlias(
            name=_make_dotted(root),
            asname=None if name == root else cst.AsName(name=cst.Name(name)),
          )
        ]
      )
      self._changes.pop(self._pos(original.body[0].value) + ("chain",), None)
      self._kfac_chains.discard(self._pos(original.body[0].value))
      self._conflicts.pop(self._pos(original.body[0].value), None)
      self._change(
        original,
        "`%s` -> `%s`"
        % (
          self._code(
            original.body[0].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
          ),
          self._module.code_for_node(new),
        ),
        kind="import0",
      )
      return updated.with_changes(
        body=[new.with_changes(semicolon=updated.body[0].semicolon)]
      )
    if not any(
      isinstance(s, (cst.Import, cst.ImportFrom)) for s in updated.body
    ):
      return updated
    new_body = []
    changed = False
    self._line_node = original  # Where import problems are reported.
    for index, small in enumerate(updated.body):
      if isinstance(small, (cst.Import, cst.ImportFrom)):
        replacement = self._rewrite_import(small)
        if replacement is not None:
          changed = True
          old = self._code(
            small.with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
          )
          new = "; ".join(
            self._module.code_for_node(
              s.with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
            )
            for s in replacement
          )
          self._change(
            original,
            "`%s` -> `%s`" % (old, " ".join(new.split())),
            kind="import%d" % index,
          )
          if len(replacement) == 1:
            new_body.append(
              replacement[0].with_changes(semicolon=small.semicolon)
            )
          else:
            for s in replacement[:-1]:
              new_body.append(
                s.with_changes(
                  semicolon=cst.Semicolon(
                    whitespace_after=cst.SimpleWhitespace(" ")
                  )
                )
              )
            new_body.append(
              replacement[-1].with_changes(semicolon=small.semicolon)
            )
          continue
      new_body.append(small)
    if not changed:
      return updated
    if len(updated.body) == 1 and len(new_body) > 1:
      # One import became several: one statement per line.
      lines = []
      for i, small in enumerate(new_body):
        small = small.with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
        if i == 0:
          lines.append(
            updated.with_changes(
              body=[small], trailing_whitespace=cst.TrailingWhitespace()
            )
          )
        elif i == len(new_body) - 1:
          lines.append(
            cst.SimpleStatementLine(
              body=[small], trailing_whitespace=updated.trailing_whitespace
            )
          )
        else:
          lines.append(cst.SimpleStatementLine(body=[small]))
      return cst.FlattenSentinel(lines)
    return updated.with_changes(body=new_body)

  # -- attribute chains --------------------------------------------------------
