"""The rewriter: one libcst transformer made of one mixin per concern."""

from kfac.upgrade._cst import cst
from kfac.upgrade._cst import cst_metadata
from kfac.upgrade._results import Finding
from kfac.upgrade._rewrite_calls import _CallRewrites
from kfac.upgrade._rewrite_chains import _ChainRewrites
from kfac.upgrade._rewrite_imports import _ImportRewrites


class _Upgrader(
  _ImportRewrites, _ChainRewrites, _CallRewrites, cst.CSTTransformer
):
  """Rewrites legacy kfac references; see the package docstring.

  The concerns live in one mixin each: import statements
  (`_rewrite_imports`), attribute chains (`_rewrite_chains`) and calls
  (`_rewrite_calls`); this class holds the state they share and the
  bookkeeping of changes and findings.
  """

  METADATA_DEPENDENCIES = (
    cst_metadata.QualifiedNameProvider,
    cst_metadata.PositionProvider,
    cst_metadata.ScopeProvider,
  )

  def __init__(self, module, is_02, name_kinds=None, package_alias_targets=()):
    super(_Upgrader, self).__init__()
    self._module = module
    self._is_02 = is_02
    self._name_kinds = name_kinds or {}
    self._package_alias_targets = set(package_alias_targets)
    self._changes = {}  # (line, column, kind) -> message
    self._line_node = None
    self._attention = []
    self._import_depth = 0
    self._kfac_chains = set()
    self._conflicts = {}  # chain position -> Finding (outermost wins)
    self.tensorflow_still_used = False

  # -- bookkeeping -------------------------------------------------------------

  def _pos(self, node):
    try:
      pos = self.get_metadata(cst_metadata.PositionProvider, node)
    except KeyError:
      return (0, 0)
    return (pos.start.line, pos.start.column)

  def _code(self, node):
    return " ".join(self._module.code_for_node(node).split())

  def _change(self, original, message, kind="chain"):
    self._changes[self._pos(original) + (kind,)] = message

  def _attend(self, original, message):
    line = self._pos(original)[0]
    finding = Finding(line, message)
    if finding not in self._attention:
      self._attention.append(finding)

  @property
  def kfac_chain_added(self):
    """Whether a rewritten chain now starts with the name `kfac`."""
    return bool(self._kfac_chains)

  def findings(self):
    changes = [
      Finding(key[0], msg) for key, msg in sorted(self._changes.items())
    ]
    attention = sorted(set(self._attention) | set(self._conflicts.values()))
    return changes, attention

  def _qname(self, node):
    """The single import-derived qualified name of `node`, or None."""
    try:
      names = self.get_metadata(cst_metadata.QualifiedNameProvider, node)
    except KeyError:
      return None
    names = {
      q.name
      for q in names
      if q.source == cst_metadata.QualifiedNameSource.IMPORT
    }
    if len(names) != 1:
      return None
    return names.pop()
