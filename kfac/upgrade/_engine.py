"""upgrade_source: the survey, rewrite and audit passes over one program."""

import ast

from kfac.upgrade._cst import cst
from kfac.upgrade._cst import cst_metadata
from kfac.upgrade import _paths
from kfac.upgrade import _release
from kfac.upgrade._results import Finding
from kfac.upgrade._tables import AMBIGUOUS_RENAMES_02
from kfac.upgrade._tables import METHOD_RENAMES_02
from kfac.upgrade._tables import UNSUPPORTED_METHODS_02
from kfac.upgrade._audit import _Auditor, _ImportAuditor
from kfac.upgrade._module_edit import _add_kfac_import, _binds_kfac_at_top
from kfac.upgrade._results import UpgradeError, UpgradeResult
from kfac.upgrade._rewriter import _Upgrader
from kfac.upgrade._survey import _Survey, _TensorflowUse


def _check_syntax(source, filename):
  """Raises UpgradeError naming the line if `source` is not valid Python."""
  try:
    compile(
      source, filename, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True
    )
  except SyntaxError as e:
    raise UpgradeError(filename, e.lineno, "syntax error: %s" % e.msg) from e
  except (ValueError, UnicodeDecodeError) as e:
    raise UpgradeError(filename, None, "cannot read the program: %s" % e) from e


def upgrade_source(source, filename="<string>", tf_version=None, pins=None):
  """Upgrades one program from `tf.contrib.kfac` (or kfac 0.2.x) to `kfac`.

  Args:
    source: the program, `str` or `bytes` (`bytes` keep their encoding and
      line endings exactly).
    filename: name used in error messages.
    tf_version: the release the program was written for ("1.4" ... "1.10"),
      or None to infer it (see `kfac.upgrade._release`).
    pins: the TensorFlow pins found next to the program
      (`_release.find_pins`), or None.

  Returns:
    An `UpgradeResult`; `result.source` has the type of `source`.

  Raises:
    UpgradeError: if `source` is not valid Python.
  """
  _check_syntax(source, filename)
  if (b"kfac" if isinstance(source, bytes) else "kfac") not in source:
    return UpgradeResult(source, [], [], False)  # Nothing to do: fast path.
  try:
    module = cst.parse_module(source)
  except cst.ParserSyntaxError as e:
    raise UpgradeError(
      filename, e.raw_line, "syntax error: %s" % e.message
    ) from e

  wrapper = cst_metadata.MetadataWrapper(module)
  survey = _Survey()
  wrapper.visit(survey)
  is_02 = survey.markers_02 or (
    survey.imports_kfac
    and bool(
      survey.method_names
      & (
        set(UNSUPPORTED_METHODS_02)
        | set(METHOD_RENAMES_02)
        | set(AMBIGUOUS_RENAMES_02)
      )
    )
  )

  decision = None
  legacy = b"contrib" if isinstance(source, bytes) else "contrib"
  if not is_02 and legacy in source:
    decision = _release.choose_release(source, tf_version, pins)
    if decision.problem is not None:
      return UpgradeResult(
        source, [], [Finding(0, decision.problem)], False, release=decision
      )
  previous_root = _paths._TARGET["root"]
  _paths._TARGET["root"] = decision.target if decision is not None else "kfac"
  try:
    return _upgrade(source, wrapper, survey, is_02, decision)
  finally:
    _paths._TARGET["root"] = previous_root


def _upgrade(source, wrapper, survey, is_02, decision):
  """The rewrite and audit passes, with the target root set."""
  upgrader = _Upgrader(
    wrapper.module, is_02, survey.name_kinds, survey.package_alias_targets
  )
  tf_use = _TensorflowUse()
  wrapper.visit(tf_use)
  upgrader.tensorflow_still_used = tf_use.used and not tf_use.other_binding
  new_module = wrapper.visit(upgrader)
  changes, attention = upgrader.findings()

  if upgrader.kfac_chain_added and not _binds_kfac_at_top(new_module):
    new_module, index = _add_kfac_import(new_module)
    changes.append(
      Finding(
        0, "added `import kfac` (statement %d of the module)" % (index + 1)
      )
    )

  auditor = _Auditor(is_02)
  wrapper.visit(auditor)
  if is_02:
    import_auditor = _ImportAuditor()
    wrapper.visit(import_auditor)
    auditor.findings.extend(import_auditor.findings)
  for finding in auditor.findings:
    if finding not in attention:
      attention.append(finding)
  attention.sort()

  if isinstance(source, bytes):
    new_source = new_module.bytes
  else:
    new_source = new_module.code
  return UpgradeResult(
    new_source, changes, attention, new_source != source, release=decision
  )
