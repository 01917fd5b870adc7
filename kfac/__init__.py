"""Kronecker-factored Approximate Curvature Optimizer.

`kfac` is TensorFlow 1.4's `tf.contrib.kfac` for TensorFlow 2.x: the same
modules, classes, signatures, numbers and variable names, built on the public
`tf.compat.v1` graph-mode API. Replace `tf.contrib.kfac` by `kfac` and a
legacy program runs as before.
"""

import os as _os
import sys as _sys

_MIN_TF_VERSION = (2, 16)


# Start-up notices that TensorFlow's C++ runtime writes to stderr while it is
# imported, whatever TF_CPP_MIN_LOG_LEVEL says.
_STARTUP_NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "cpu_feature_guard",
    "This TensorFlow binary is optimized",
    "To enable the following instructions",
    "rebuild TensorFlow with the appropriate compiler flags",
    "Unable to register cu",
    "computation placer already registered",
    "Could not find cuda drivers",
    "TF-TRT Warning",
)


def _import_quietly():
  """Imports TensorFlow with its start-up notices filtered out of stderr.

  Anything else TensorFlow writes to stderr while importing is passed on.
  """
  import tempfile  # pylint: disable=g-import-not-at-top
  try:
    _sys.stderr.flush()
    saved_fd = _os.dup(2)
  except (OSError, ValueError):  # No usable file descriptor 2.
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf
  with tempfile.TemporaryFile() as captured:
    _os.dup2(captured.fileno(), 2)
    try:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
    finally:
      _os.dup2(saved_fd, 2)
      _os.close(saved_fd)
      captured.seek(0)
      text = captured.read().decode("utf-8", "replace")
      kept = [line for line in text.splitlines(True)
              if not any(noise in line for noise in _STARTUP_NOISE)]
      if kept:
        _sys.stderr.write("".join(kept))
  return tf


def _import_tensorflow():
  """Imports TensorFlow and checks that its version is supported.

  When TensorFlow is not yet imported and the user has not chosen a log
  level (`TF_CPP_MIN_LOG_LEVEL`), its start-up messages are silenced and
  the environment is left as it was.
  """
  try:
    if ("tensorflow" not in _sys.modules
        and "TF_CPP_MIN_LOG_LEVEL" not in _os.environ):
      # Quiet while importing only: the variable is removed again so that
      # child processes (which may import kfac themselves) are unaffected.
      _os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
      try:
        tf = _import_quietly()
      finally:
        del _os.environ["TF_CPP_MIN_LOG_LEVEL"]
    else:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        "kfac needs TensorFlow {}.{} or newer, which could not be imported "
        "({}). Install it with `pip install kfac-contrib[tf-cpu]` (CPU only) "
        "or `pip install kfac-contrib[tf]`.".format(*_MIN_TF_VERSION, e)
    ) from e
  version = tuple(int(p) for p in tf.__version__.split(".")[:2]
                  if p.isdigit())
  if version < _MIN_TF_VERSION:
    raise ImportError(
        "kfac needs TensorFlow {}.{} or newer; found TensorFlow {}.".format(
            *_MIN_TF_VERSION, tf.__version__))
  return tf


_import_tensorflow()

# pylint: disable=g-import-not-at-top,wrong-import-position
from kfac import utils
from kfac import loss_functions
from kfac import curvature_matrix_vector_products
from kfac import op_queue
from kfac import fisher_factors
from kfac import fisher_blocks
from kfac import layer_collection
from kfac import estimator
from kfac import optimizer
from kfac import checkpoint
from kfac._contrib_alias import install_tf_contrib_alias

_RELEASE_PACKAGES = ("r1_4", "r1_5", "r1_6", "r1_7", "r1_8", "r1_9", "r1_10")


def __getattr__(name):
  """Imports the release namespaces (`kfac.r1_6`, ...) on first access."""
  if name in _RELEASE_PACKAGES:
    import importlib  # pylint: disable=g-import-not-at-top
    try:
      return importlib.import_module("kfac." + name)
    except ModuleNotFoundError as e:
      if e.name != "kfac." + name:
        raise
  raise AttributeError("module 'kfac' has no attribute {!r}".format(name))
