"""`install_tf_contrib_alias()`: run unchanged `tf.contrib.kfac` programs.

TensorFlow 2.x has no `tf.contrib`. After `kfac.install_tf_contrib_alias()`,
in the running process,

* `tf.contrib.kfac` and `tf.compat.v1.contrib.kfac` are the `kfac` package, so
  `tf.contrib.kfac.optimizer.KfacOptimizer` is `kfac.optimizer.KfacOptimizer`;
* the legacy import forms work too, through `sys.modules` entries (no
  TensorFlow internals are touched): `import tensorflow.contrib.kfac as K`,
  `from tensorflow.contrib import kfac`,
  `from tensorflow.contrib.kfac.python.ops import fisher_factors`,
  `from tensorflow.contrib.kfac.python.ops.layer_collection import
  LayerCollection` and the `*_lib` module names.

To mirror the legacy layout, `kfac.python.ops` is added as a namespace whose
attributes are the nine modules (also under their `*_lib` names) and, for a
release namespace, the never-exported modules of that release (`placement`
from 1.8, `linear_operator` from 1.9).
"""

import importlib
import importlib.util
import sys
import types
import warnings

from kfac import _surface

__all__ = ["install_tf_contrib_alias"]

# The nine public modules of `tf.contrib.kfac`, in `kfac` too.
MODULES = _surface.MODULES

# Attribute set on every module object this file creates.
_MARKER = "__kfac_contrib_alias__"


def _is_ours(module):
  return getattr(module, _MARKER, False) is True


def _new_module(name, doc):
  module = types.ModuleType(name, doc)
  setattr(module, _MARKER, True)
  module.__path__ = []  # A package: other submodules fail with ImportError.
  return module


def _get(obj, name):
  try:
    return getattr(obj, name)
  except AttributeError:  # Also what a lazy-loading module raises.
    return None


def _set_module(name, module):
  """Registers `module` as `sys.modules[name]` unless `name` is taken."""
  if name not in sys.modules:
    sys.modules[name] = module


def _python_ops_namespace(kfac, modules, internal):
  """Returns `<package>.python`, creating `<package>.python.ops` if needed.

  Args:
    kfac: the package `tf.contrib.kfac` becomes.
    modules: dict name -> module, the nine public modules.
    internal: dict name -> module, the never-exported modules of the
      release (no `*_lib` names: the legacy package had none for them).
  """
  root = kfac.__name__
  python = _get(kfac, "python")
  if python is None:
    python = _new_module(
      root + ".python", "Legacy `tf.contrib.kfac.python` layout (alias)."
    )
    kfac.python = python
  elif not _is_ours(python):
    return None
  ops = _get(python, "ops")
  if ops is None:
    ops = _new_module(
      root + ".python.ops",
      "Legacy `tf.contrib.kfac.python.ops` layout "
      "(alias): the kfac modules, also under their `*_lib` names.",
    )
    python.ops = ops
  for name, module in modules.items():
    if _get(ops, name) is None:
      setattr(ops, name, module)
    if _get(ops, name + "_lib") is None:
      setattr(ops, name + "_lib", module)
  for name, module in internal.items():
    if _get(ops, name) is None:
      setattr(ops, name, module)
  _set_module(root + ".python", python)
  _set_module(root + ".python.ops", ops)
  return python


# Releases that shipped `tf.contrib.kfac`.
_VERSIONS = ("1.4", "1.5", "1.6", "1.7", "1.8", "1.9", "1.10")


def _release_package(tf_version):
  """The package name `tf.contrib.kfac` becomes for `tf_version`."""
  if tf_version is None:
    return "kfac"
  if not isinstance(tf_version, str) or tf_version not in _VERSIONS:
    raise ValueError(
      "install_tf_contrib_alias: tf_version must be None or one of %s (the "
      "releases that shipped tf.contrib.kfac), got %r"
      % (", ".join(repr(v) for v in _VERSIONS), tf_version)
    )
  name = _namespace(tf_version)
  if importlib.util.find_spec(name) is None:
    available = [
      v for v in _VERSIONS if importlib.util.find_spec(_namespace(v))
    ]
    raise ValueError(
      "install_tf_contrib_alias: tf_version=%r needs the release namespace "
      "`%s`, which this kfac does not provide yet (available: the seed API "
      "`kfac` and the release namespaces of %s)"
      % (tf_version, name, ", ".join(available))
    )
  return name


def _namespace(tf_version):
  return "kfac.r1_%s" % tf_version.split(".")[1]


def _internal_modules(package, tf_version):
  """The never-exported modules of the release (`placement`, ...).

  Args:
    package: the package `tf.contrib.kfac` becomes.
    tf_version: the release, or None for the seed (which has none).

  Returns:
    dict name -> module, for the modules of `_surface.INTERNAL_MODULES`
    that the release had and the namespace provides.
  """
  if tf_version is None:
    return {}
  found = {}
  minor = int(tf_version.split(".")[1])
  for name, (first, last) in _surface.INTERNAL_MODULES.items():
    if minor < int(first.split(".")[1]):
      continue
    if last is not None and minor > int(last.split(".")[1]):
      continue
    if importlib.util.find_spec(package + "." + name) is not None:
      found[name] = importlib.import_module(package + "." + name)
  return found


def install_tf_contrib_alias(tf_version=None):
  """Makes `tf.contrib.kfac` resolve to `kfac` in the running process.

  For legacy programs that should run unmodified on TensorFlow 2.x: add

      import kfac; kfac.install_tf_contrib_alias()

  before the program's first use of `tf.contrib.kfac`. Afterwards
  `tf.contrib.kfac` (and `tf.compat.v1.contrib.kfac`) is the `kfac` package,
  and `import tensorflow.contrib.kfac as K`,
  `from tensorflow.contrib import kfac`,
  `from tensorflow.contrib.kfac.python.ops import fisher_factors as ff`,
  `from tensorflow.contrib.kfac.python.ops.layer_collection import
  LayerCollection` and the `*_lib` forms import `kfac` modules (for the
  `python.ops` forms, a `kfac.python.ops` namespace holding the nine modules,
  also under their `*_lib` names, is added to `kfac`). Only the kfac part of
  `tf.contrib` is provided; other `tf.contrib` modules stay missing.

  The function only adds what is missing: a `tf.contrib` module object is
  created (and marked as the alias's own) only when TensorFlow has none, and
  an existing `tf.contrib` that is not the alias's own is never replaced --
  `kfac` is then only added to it when it has no `kfac` attribute. Entries
  are added to `sys.modules` only under names not already present. Calling
  the function again is harmless. It touches no `tensorflow.python` module.

  With `tf_version="1.N"` everything above resolves to the release
  namespace `kfac.r1_N` instead of `kfac` (`tf.contrib.kfac.optimizer` is
  `kfac.r1_6.optimizer`, `tensorflow.contrib.kfac.python.ops.fisher_factors`
  and `..._lib` are `kfac.r1_6.fisher_factors`), for a program written for
  that release. The modules the release never exported are provided under
  their internal paths too: `tensorflow.contrib.kfac.python.ops.placement`
  (1.8 on) and `...python.ops.linear_operator` (1.9 on) are
  `kfac.r1_N.placement` and `kfac.r1_N.linear_operator`. One process has one `tf.contrib.kfac`: a second call with a
  different `tf_version` leaves the first in place and returns False.

  Args:
    tf_version: None (the seed's 1.4 API, `kfac`) or the release the program
      was written for, "1.4" ... "1.10"; "1.4" means `kfac.r1_4`, the TF 1.4.0
      release exactly.

  Returns:
    True when `tf.contrib.kfac` is the requested package afterwards; False
    when an existing different `tf.contrib.kfac` was left in place (a warning
    says so).

  Raises:
    ValueError: if `tf_version` is not a release that shipped
      `tf.contrib.kfac`, or its namespace is not provided by this `kfac`.
  """
  package = _release_package(tf_version)
  import tensorflow as tf

  kfac = importlib.import_module(package)
  modules = {
    name: importlib.import_module(package + "." + name) for name in MODULES
  }
  internal = _internal_modules(package, tf_version)
  _python_ops_namespace(kfac, modules, internal)

  ok = True
  ours = None
  hosts = [tf]
  compat_v1 = _get(_get(tf, "compat"), "v1")
  if compat_v1 is not None:
    hosts.append(compat_v1)
  for host in hosts:
    contrib = _get(host, "contrib")
    if contrib is None:
      if ours is None:
        ours = sys.modules.get("tensorflow.contrib")
        if ours is None or not _is_ours(ours):
          ours = _new_module(
            "tensorflow.contrib",
            "`tf.contrib` stand-in created by "
            "`kfac.install_tf_contrib_alias()`; only `kfac` is provided.",
          )
      contrib = ours
      host.contrib = contrib
    existing = _get(contrib, "kfac")
    if existing is None:
      contrib.kfac = kfac
    elif existing is not kfac:
      warnings.warn(
        "install_tf_contrib_alias: %s.contrib.kfac already exists and is "
        "not %s; it is left in place." % (host.__name__, package),
        stacklevel=2,
      )
      ok = False
    if _is_ours(contrib):
      _set_module("tensorflow.contrib", contrib)

  if ok:
    _set_module("tensorflow.contrib.kfac", kfac)
    for name, module in modules.items():
      _set_module("tensorflow.contrib.kfac." + name, module)
      _set_module("tensorflow.contrib.kfac.python.ops." + name, module)
      _set_module("tensorflow.contrib.kfac.python.ops." + name + "_lib", module)
    for name, module in internal.items():
      _set_module("tensorflow.contrib.kfac.python.ops." + name, module)
    python = _get(kfac, "python")
    if python is not None and _is_ours(python):
      _set_module("tensorflow.contrib.kfac.python", python)
      _set_module("tensorflow.contrib.kfac.python.ops", python.ops)
  return ok
