"""`kfac-upgrade`: rewrites programs that use `tf.contrib.kfac` to use `kfac`.

Command line::

    kfac-upgrade [--check] [--also-tf2] [--tf-version 1.N] PATH...

`--tf-version 1.N` names the TensorFlow release the programs were written
for: `tf.contrib.kfac` then becomes the release namespace `kfac.r1_N`.
Without it the release of each file is inferred (`_release`): from the
TensorFlow pins next to it (`requirements*.txt`, `setup.py`, `setup.cfg`,
`pyproject.toml`, `environment.yml`, from the file's folder up to the PATH
given), then from the API it uses; with no evidence of a release after 1.4
it becomes `kfac`, the 1.4 API, as before. Where the release cannot be
inferred but matters (a default the program relies on changed between the
possible releases, or an argument lands on different parameters), where
the pin and the API disagree, or where the release's namespace does not
exist in this `kfac`, the file is left untouched and reported, and the exit
status is 1.

Every PATH is a Python file, a directory (searched recursively for `*.py`
files, skipping hidden directories and `__pycache__`), or `-` (read a program
from stdin and write the upgraded program to stdout; the report then goes to
stderr). Files are rewritten in place, atomically: the new text is written to
a temporary file next to the original, which then replaces it.

What is rewritten (everything else is left byte-identical, comments and
formatting included):

* attribute chains that reach the legacy package through TensorFlow, whatever
  `tensorflow` is imported as: `tf.contrib.kfac.X` -> `kfac.X`,
  `tf.contrib.kfac.python.ops.X[_lib]` -> `kfac.X` (also through
  `tensorflow.compat.v1`); `import kfac` is added when such a chain is
  rewritten and the module does not import `kfac` yet;
* import statements: `import tensorflow.contrib.kfac as K`,
  `from tensorflow.contrib import kfac`,
  `from tensorflow.contrib.kfac.python.ops import fisher_factors as ff`,
  `from tensorflow.contrib.kfac.python.ops.layer_collection import
  LayerCollection`, and the `*_lib` module forms; the names they bind are kept
  (`from tensorflow.contrib.kfac.python.ops import utils_lib` becomes
  `from kfac import utils as utils_lib`);
* the 2017 idiom `kfac = tf.contrib.kfac`, which becomes `import kfac`;
* programs written for PyPI's `kfac` 0.2.x, where the mapping is mechanical:
  `kfac.python.ops.X` -> `kfac.X`, `kfac.LayerCollection` ->
  `kfac.layer_collection.LayerCollection` (same for `KfacOptimizer` and
  `CurvatureMatrixVectorProductComputer`), keyword-argument calls of
  `KfacOptimizer` (the 0.2.x defaults the 1.4 signature lacks or has
  differently, `cov_ema_decay=0.95`, `momentum=0.9`, `momentum_type="adam"`
  and `colocate_gradients_with_ops=True`, are written out),
  `CurvatureMatrixVectorProductComputer(layer_collection, ...)` (->
  `(layer_collection.losses, ...)`), the loss-registration aliases
  (`register_softmax_cross_entropy_loss` ->
  `register_categorical_predictive_distribution`, ...) and the `*ggn*` method
  renames (`multiply_generalized_gauss_newton*` on a
  `CurvatureMatrixVectorProductComputer`, `multiply_hessian*` on a loss; when
  the receiver's type is not evident the call is reported instead).

What is only reported (nothing is guessed): positional `KfacOptimizer` calls in
the 0.2.x argument order, keyword arguments without a 1.4 counterpart, and
0.2.x APIs that do not exist in the 1.4 API (`PeriodicInvCovUpdateKfacOpt`,
`make_vars_and_create_op_thunks`, `kfac.keras`, ...).

A file is treated as a kfac 0.2.x program when it uses a name that only 0.2.x
has (`kfac.python.ops...`, `kfac.LayerCollection`, `kfac.KfacOptimizer`,
`PeriodicInvCovUpdateKfacOpt`, 0.2.x-only methods such as
`make_vars_and_create_op_thunks`, ...). A `KfacOptimizer` call that is valid
under the 1.4 signature in a file without such a name is left alone: it may
already be a `kfac` program (e.g. one this tool upgraded).

A report is printed per file: each change with its line, then each place that
needs a human, then a summary that counts the files scanned, the files
written (with `--check`: that would change), those that need a human, and
those that could not be read, parsed or written. With `--check` no file is
written and the exit status is 1 when any file would change (0 otherwise),
so the command can gate CI. Malformed input is reported with the file name
and line and leaves the file untouched; it, and a file that cannot be
written, make the exit status 2. `--also-tf2` afterwards runs TensorFlow's
own `tf_upgrade_v2` on the result, for the non-kfac TF 1.x parts of a
program. With or without it, the report lists (with lines of the result)
what `tf_upgrade_v2` leaves that still stops the program on TensorFlow
2.16+: `tf.layers` / `tf.compat.v1.layers` (Keras 2 only: `tf_keras` with
`TF_USE_LEGACY_KERAS=1`), `.value` read from a dimension (`x.shape[1].value`)
and, in a program that uses `kfac`, the absence of graph mode (neither
`disable_eager_execution()` / `disable_v2_behavior()` nor a
`Graph().as_default()` block).

The command imports no TensorFlow (the `kfac` package loads it lazily), and
`--help` not even libcst.

The rewriting is built on `libcst` (a concrete syntax tree that reproduces
untouched source exactly, with scope-aware qualified-name resolution for
import aliases). The package is split by concern: `_tables` (what maps to
what; the 1.4 names and signatures come from `kfac/_surface.py`), `_paths`
and `_arguments` (helpers), `_survey` (facts about the input), the rewriter
`_rewriter` with one mixin per concern (`_rewrite_imports`,
`_rewrite_chains`, `_rewrite_calls`), `_audit` (what needs a human),
`_module_edit`, `_engine` (`upgrade_source`), `_tf2` and `_cli`.
"""

from kfac.upgrade._cli import main
from kfac.upgrade._results import Finding
from kfac.upgrade._results import UpgradeError
from kfac.upgrade._results import UpgradeResult
from kfac.upgrade._tf2 import tf2_findings

__all__ = [
  "UpgradeError",
  "UpgradeResult",
  "Finding",
  "upgrade_source",
  "tf2_findings",
  "main",
]


def upgrade_source(source, filename="<string>", tf_version=None, pins=None):
  """Upgrades one program from `tf.contrib.kfac` (or kfac 0.2.x) to `kfac`.

  Args:
    source: the program, `str` or `bytes` (`bytes` keep their encoding and
      line endings exactly).
    filename: name used in error messages.
    tf_version: the release the program was written for, "1.4" ... "1.10"
      (`tf.contrib.kfac` then becomes `kfac.r1_N`), or None to infer it from
      `pins` and the API the program uses; `result.release` says which
      release was chosen and why.
    pins: the TensorFlow version pins next to the program, as
      `(file, [(pin text, [release, ...]), ...])`, or None.

  Returns:
    An `UpgradeResult`; `result.source` has the type of `source`.

  Raises:
    UpgradeError: if `source` is not valid Python.
    ImportError: if libcst is not installed.
  """
  from kfac.upgrade import _engine  # pylint: disable=import-outside-toplevel

  return _engine.upgrade_source(source, filename, tf_version, pins)
