"""Kronecker-factored Approximate Curvature Optimizer.

`kfac` is TensorFlow 1.4's `tf.contrib.kfac` for TensorFlow 2.x: the same
modules, classes, signatures, numbers and variable names, built on the public
`tf.compat.v1` graph-mode API. Replace `tf.contrib.kfac` by `kfac` and a
legacy program runs as before.
"""

# The package loads lazily: `import kfac` itself imports no TensorFlow, and
# the first use of a module (`kfac.optimizer`, `from kfac import utils`,
# `import kfac.layer_collection`, ...) imports TensorFlow, checks its version
# and loads the nine modules (see `kfac/_tf_import.py`, which also keeps
# TensorFlow's start-up notices off stderr unless `KFAC_QUIET_TF_IMPORT=0`).
# That keeps `kfac-upgrade` (`kfac.upgrade`) free of TensorFlow.

import importlib
import importlib.abc
import sys

from kfac import _surface
from kfac import _tf_import

# Modules of `kfac` beyond the nine legacy ones.
_EXTRA_MODULES = ("checkpoint",)

__all__ = sorted(  # noqa: PLE0605
  _surface.MODULES + _EXTRA_MODULES + ("install_tf_contrib_alias",)
)

# Release namespaces (`kfac.r1_6`, ...), imported on first access.
_RELEASE_PACKAGES = ("r1_4", "r1_5", "r1_6", "r1_7", "r1_8", "r1_9", "r1_10")

# Distribution names: this package, and PyPI's unrelated `kfac` (K-FAC 0.2.x),
# which also installs a top-level package named `kfac`.
_THIS_DISTRIBUTION = "kfac-contrib"
_OTHER_DISTRIBUTION = "kfac"

# Submodules that import no TensorFlow (everything else needs it first).
_TENSORFLOW_FREE = ("kfac._surface", "kfac._tf_import", "kfac.upgrade")


def _check_single_distribution():
  """Raises ImportError if PyPI's `kfac` is installed next to this package.

  Both distributions install the top-level package `kfac`, so with both
  installed one silently replaces the other's files.

  Raises:
    ImportError: naming both distributions, when both are installed.
  """
  from importlib import metadata  # pylint: disable=import-outside-toplevel

  versions = {}
  for name in (_THIS_DISTRIBUTION, _OTHER_DISTRIBUTION):
    try:
      versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      pass
  if len(versions) == 2:
    raise ImportError(
      "Both `%s` %s (TensorFlow 1.4's tf.contrib.kfac, this package) and "
      "the unrelated `%s` %s from PyPI are installed; both provide the "
      "top-level package `kfac`, so one overwrites the other. Uninstall "
      "one of them (`pip uninstall %s` or `pip uninstall %s`) and "
      "reinstall the other."
      % (
        _THIS_DISTRIBUTION,
        versions[_THIS_DISTRIBUTION],
        _OTHER_DISTRIBUTION,
        versions[_OTHER_DISTRIBUTION],
        _OTHER_DISTRIBUTION,
        _THIS_DISTRIBUTION,
      )
    )


def _needs_tensorflow(fullname):
  return fullname.startswith("kfac.") and not any(
    fullname == free or fullname.startswith(free + ".")
    for free in _TENSORFLOW_FREE
  )


class _TensorFlowFirst(importlib.abc.MetaPathFinder):
  """Imports TensorFlow (checked, quietly) before a `kfac` module using it.

  Covers the import forms that bypass the package's `__getattr__`
  (`import kfac.utils`, `from kfac.utils import ...`); finds nothing itself.
  """

  def find_spec(self, fullname, path, target=None):
    if _needs_tensorflow(fullname):
      _tf_import.import_tensorflow()
    return None


def _install_finder():
  if not any(type(f).__name__ == "_TensorFlowFirst" for f in sys.meta_path):
    sys.meta_path.insert(0, _TensorFlowFirst())


# True while `_load_all` runs: a module it imports may ask the package for a
# sibling that is itself still being imported (a circular import).
_loading = False


def _load_all():
  """Imports TensorFlow and the modules; binds them in this package."""
  global _loading
  if _loading:
    return
  _loading = True
  try:
    _tf_import.import_tensorflow()
    for name in _surface.MODULES + _EXTRA_MODULES:
      importlib.import_module("kfac." + name)
    from kfac._contrib_alias import install_tf_contrib_alias  # pylint: disable=import-outside-toplevel

    globals()["install_tf_contrib_alias"] = install_tf_contrib_alias
  finally:
    _loading = False


def __getattr__(name):
  """Loads the modules on first use (PEP 562).

  Args:
    name: str, the attribute asked for.

  Returns:
    The module (or `install_tf_contrib_alias`).

  Raises:
    AttributeError: for a name the package does not have.
    ImportError: if TensorFlow is missing or too old.
  """
  if name in __all__:
    _load_all()
    if name in globals():
      return globals()[name]
    # A module still being imported (`from kfac import layer_collection` run
    # by a sibling that `import kfac.layer_collection` started) is not bound
    # on the package until its import ends; `sys.modules` already has it.
    return importlib.import_module("kfac." + name)
  if name in _RELEASE_PACKAGES:
    try:
      return importlib.import_module("kfac." + name)
    except ModuleNotFoundError as e:
      if e.name != "kfac." + name:
        raise
  raise AttributeError("module 'kfac' has no attribute %r" % (name,))


def __dir__():
  return sorted(set(globals()) | set(__all__))


_check_single_distribution()
_install_finder()
