"""Imports TensorFlow for `kfac`: version check and quiet start-up.

`kfac`'s TensorFlow-using modules are loaded through `import_tensorflow()`
(see `kfac/__init__.py`), which

* raises an `ImportError` that says what to install when TensorFlow is
  missing or older than `MIN_TF_VERSION` (versions are compared with
  `packaging.version`);
* when TensorFlow is not imported yet, filters the start-up notices that its
  C++ runtime prints on stderr while it loads ("oneDNN custom operations are
  on", CPU feature and CUDA notices). For the duration of the import only,
  file descriptor 2 is redirected to a temporary file, and
  `TF_CPP_MIN_LOG_LEVEL` is set to 2 unless the user set it; afterwards fd 2
  and the environment are restored, and every stderr line that is not a
  known notice is written out.

The off switch: with the environment variable `KFAC_QUIET_TF_IMPORT=0`
TensorFlow is imported plainly (no redirection, no environment change), e.g.
to see everything TensorFlow prints while it starts.
"""

import os
import sys
import tempfile

__all__ = ["MIN_TF_VERSION", "QUIET_ENV_VAR", "import_tensorflow"]

# Oldest supported TensorFlow.
MIN_TF_VERSION = "2.16"

# Environment variable that turns the quiet import off when set to "0".
QUIET_ENV_VAR = "KFAC_QUIET_TF_IMPORT"

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


def _quiet_wanted():
  return os.environ.get(QUIET_ENV_VAR, "1").strip() != "0"


def _import_with_filtered_stderr():
  """Imports TensorFlow with its start-up notices filtered out of stderr."""
  try:
    sys.stderr.flush()
    saved_fd = os.dup(2)
  except (OSError, ValueError, AttributeError):  # No usable fd 2.
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    return tf
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow as tf  # pylint: disable=import-outside-toplevel
    finally:
      os.dup2(saved_fd, 2)
      os.close(saved_fd)
      captured.seek(0)
      text = captured.read().decode("utf-8", "replace")
      kept = [
        line
        for line in text.splitlines(True)
        if not any(noise in line for noise in _STARTUP_NOISE)
      ]
      if kept:
        sys.stderr.write("".join(kept))
  return tf


def _import_quietly():
  """Imports TensorFlow quietly, leaving the environment as it was."""
  if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
    return _import_with_filtered_stderr()
  # Quiet while importing only: the variable is removed again so that child
  # processes (which may import kfac themselves) are unaffected.
  os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
  try:
    return _import_with_filtered_stderr()
  finally:
    del os.environ["TF_CPP_MIN_LOG_LEVEL"]


def _check_version(tf):
  from packaging import version  # pylint: disable=import-outside-toplevel

  found = getattr(tf, "__version__", "0")
  try:
    too_old = (
      version.parse(found).release < version.parse(MIN_TF_VERSION).release
    )
  except version.InvalidVersion:
    too_old = True
  if too_old:
    raise ImportError(
      "kfac needs TensorFlow %s or newer; found TensorFlow %s."
      % (MIN_TF_VERSION, found)
    )


def import_tensorflow():
  """Imports TensorFlow (quietly the first time) and checks its version.

  Returns:
    The `tensorflow` module.

  Raises:
    ImportError: if TensorFlow cannot be imported (the message says how to
      install it) or is older than `MIN_TF_VERSION`.
  """
  try:
    if "tensorflow" in sys.modules or not _quiet_wanted():
      import tensorflow as tf  # pylint: disable=import-outside-toplevel
    else:
      tf = _import_quietly()
  except ImportError as e:
    raise ImportError(
      "kfac needs TensorFlow %s or newer, which could not be imported "
      "(%s). Install it with `pip install kfac-contrib[tf-cpu]` (CPU only) "
      "or `pip install kfac-contrib[tf]`." % (MIN_TF_VERSION, e)
    ) from e
  _check_version(tf)
  return tf
