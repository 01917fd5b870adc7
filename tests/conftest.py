"""Shared pytest set-up: the TensorFlow mode, the `slow` marker, fixtures.

The suite runs in one of two TensorFlow modes, chosen per process before any
graph is built:

* `graph` (default): `tf.compat.v1.disable_eager_execution()`, TensorFlow 2's
  graph mode (resource variables, v2 shapes and control flow);
* `v1`: `tf.compat.v1.disable_v2_behavior()`, the TF1 mode legacy programs
  use (`Dimension` shapes, reference variables, v1 control flow).

Select it with `--tf-mode=v1` or the environment variable `KFAC_TF_MODE`
(the option wins). The chosen mode is exported in `KFAC_TF_MODE`, so
pytest-xdist workers and the subprocesses tests start inherit it.

Tests marked `slow` (subprocesses, local clusters, source rewriting: nothing
that depends on the mode of the test process) run in `graph` mode only.
"""

import os

import pytest

TF_MODES = ("graph", "v1")
_MODE_ENV = "KFAC_TF_MODE"


def pytest_addoption(parser):
  parser.addoption(
    "--tf-mode",
    choices=TF_MODES,
    default=None,
    help="TensorFlow mode of the test process: graph "
    "(disable_eager_execution, the default) or v1 "
    "(disable_v2_behavior). Default: $KFAC_TF_MODE, else graph.",
  )


def pytest_configure(config):
  config.addinivalue_line(
    "markers",
    "slow: mode-independent and slow (subprocesses, clusters); "
    "runs in graph mode only",
  )
  mode = config.getoption("--tf-mode") or os.environ.get(_MODE_ENV) or "graph"
  if mode not in TF_MODES:
    raise pytest.UsageError(
      "{}={!r}: expected one of {}.".format(
        _MODE_ENV, mode, ", ".join(TF_MODES)
      )
    )
  os.environ[_MODE_ENV] = mode
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  if mode == "v1":
    tf.compat.v1.disable_v2_behavior()
  else:
    tf.compat.v1.disable_eager_execution()


def pytest_report_header(config):
  del config  # Unused.
  return "kfac TF mode: {}".format(os.environ[_MODE_ENV])


def pytest_collection_modifyitems(config, items):
  del config  # Unused.
  if os.environ[_MODE_ENV] == "graph":
    return
  skip = pytest.mark.skip(reason="slow and mode-independent: graph mode only")
  for item in items:
    if "slow" in item.keywords:
      item.add_marker(skip)


def tf_mode():
  """The TensorFlow mode of this test process, "graph" or "v1"."""
  return os.environ.get(_MODE_ENV, "graph")


def mode_prelude():
  """Python source that puts a fresh process in this process's TF mode.

  Prepend it to the code of a subprocess whose library behaviour depends on
  the mode (e.g. the README usage example).
  """
  if tf_mode() == "v1":
    return "import tensorflow as tf\ntf.compat.v1.disable_v2_behavior()\n"
  return ""


@pytest.fixture(name="tf_mode")
def tf_mode_fixture():
  """The TensorFlow mode of this test process, "graph" or "v1"."""
  return tf_mode()


@pytest.fixture
def graph_and_session():
  """A fresh default `tf.Graph` and a `Session` on it: `(graph, sess)`."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  graph = tf.Graph()
  with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
    yield graph, sess


@pytest.fixture
def restore_module_globals():
  """Restores the module constants that `set_global_constants` changes."""
  # pylint: disable=import-outside-toplevel
  from kfac import fisher_blocks
  from kfac import fisher_factors
  from kfac import utils

  modules = (fisher_factors, fisher_blocks, utils)
  saved = [
    {
      name: value
      for name, value in vars(module).items()
      if name.isupper() and not name.startswith("_")
    }
    for module in modules
  ]
  yield
  for module, values in zip(modules, saved):
    for name, value in values.items():
      setattr(module, name, value)
