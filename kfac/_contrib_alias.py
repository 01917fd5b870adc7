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
attributes are the nine modules (also under their `*_lib` names).
"""

import importlib
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


def _python_ops_namespace(kfac, modules):
  """Returns `kfac.python`, creating `kfac.python.ops` if needed."""
  python = _get(kfac, "python")
  if python is None:
    python = _new_module(
      "kfac.python", "Legacy `tf.contrib.kfac.python` layout (alias)."
    )
    kfac.python = python
  elif not _is_ours(python):
    return None
  ops = _get(python, "ops")
  if ops is None:
    ops = _new_module(
      "kfac.python.ops",
      "Legacy `tf.contrib.kfac.python.ops` layout "
      "(alias): the kfac modules, also under their `*_lib` names.",
    )
    python.ops = ops
  for name, module in modules.items():
    if _get(ops, name) is None:
      setattr(ops, name, module)
    if _get(ops, name + "_lib") is None:
      setattr(ops, name + "_lib", module)
  _set_module("kfac.python", python)
  _set_module("kfac.python.ops", ops)
  return python


def install_tf_contrib_alias():
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

  Returns:
    True when `tf.contrib.kfac` is `kfac` afterwards; False when an existing
    foreign `tf.contrib.kfac` was left in place (a warning says so).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  kfac = importlib.import_module("kfac")
  modules = {name: importlib.import_module("kfac." + name) for name in MODULES}
  _python_ops_namespace(kfac, modules)

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
        "not kfac; it is left in place." % host.__name__,
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
    python = _get(kfac, "python")
    if python is not None and _is_ours(python):
      _set_module("tensorflow.contrib.kfac.python", python)
      _set_module("tensorflow.contrib.kfac.python.ops", python.ops)
  return ok
