"""`kfac-upgrade`: rewrites programs that use `tf.contrib.kfac` to use `kfac`.

Command line::

    kfac-upgrade [--check] [--also-tf2] PATH...

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
needs a human. With `--check` no file is written and the exit status is 1 when
any file would change (0 otherwise), so the command can gate CI. Malformed
input is reported with the file name and line, leaves the file untouched and
makes the exit status 2. `--also-tf2` afterwards runs TensorFlow's own
`tf_upgrade_v2` on the result, for the non-kfac TF 1.x parts of a program,
and then reports (with lines of the result) what `tf_upgrade_v2` leaves that
still stops the program on TensorFlow 2.16+: `tf.layers` /
`tf.compat.v1.layers` (unavailable with Keras 3) and, in a program that uses
`kfac`, the absence of graph mode (neither `disable_eager_execution()` /
`disable_v2_behavior()` nor a `Graph().as_default()` block).

The rewriting is built on `libcst` (a concrete syntax tree that reproduces
untouched source exactly, with scope-aware qualified-name resolution for
import aliases).
"""

import argparse
import ast
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

with warnings.catch_warnings():
  # libcst 1.0 imports mypy_extensions.TypedDict, which warns on import.
  warnings.simplefilter("ignore", DeprecationWarning)
  try:
    import libcst as cst  # pylint: disable=g-import-not-at-top
    from libcst import metadata as cst_metadata  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        "kfac-upgrade needs libcst 1.0 or newer ({}). Install it with "
        "`pip install 'kfac-contrib[upgrade]'` or `pip install libcst`."
        .format(e)) from e

from kfac import _contrib_alias  # pylint: disable=g-import-not-at-top

__all__ = ["UpgradeError", "UpgradeResult", "upgrade_source", "main"]

# The nine public modules of `tf.contrib.kfac` (TF 1.4), in `kfac` too.
MODULES = _contrib_alias.MODULES

# Paths under which the legacy package is reachable.
LEGACY_PREFIXES = (
    "tensorflow.contrib.kfac",
    "tensorflow.compat.v1.contrib.kfac",
)

# Public names of each module in the 1.4 API (`api_surface.md`).
SURFACE_14 = {
    "curvature_matrix_vector_products": {"CurvatureMatrixVectorProductComputer"},
    "estimator": {"FisherEstimator"},
    "fisher_blocks": {
        "FisherBlock", "FullFB", "NaiveDiagonalFB", "FullyConnectedDiagonalFB",
        "KroneckerProductFB", "FullyConnectedKFACBasicFB", "ConvKFCBasicFB",
        "ConvDiagonalFB", "set_global_constants"},
    "fisher_factors": {
        "inverse_initializer", "covariance_initializer",
        "diagonal_covariance_initializer", "scope_string_from_params",
        "scope_string_from_name", "scalar_or_tensor_to_string", "FisherFactor",
        "InverseProvidingFactor", "FullFactor", "DiagonalFactor",
        "NaiveDiagonalFactor", "FullyConnectedDiagonalFactor",
        "FullyConnectedKroneckerFactor", "ConvInputKroneckerFactor",
        "ConvOutputKroneckerFactor", "ConvDiagonalFactor",
        "set_global_constants"},
    "layer_collection": {
        "LayerParametersDict", "LayerCollection", "APPROX_KRONECKER_NAME",
        "APPROX_DIAGONAL_NAME", "APPROX_FULL_NAME"},
    "loss_functions": {
        "LossFunction", "NegativeLogProbLoss",
        "NaturalParamsNegativeLogProbLoss", "DistributionNegativeLogProbLoss",
        "NormalMeanNegativeLogProbLoss",
        "NormalMeanVarianceNegativeLogProbLoss",
        "CategoricalLogitsNegativeLogProbLoss",
        "MultiBernoulliNegativeLogProbLoss", "insert_slice_in_zeros"},
    "op_queue": {"OpQueue"},
    "optimizer": {"KfacOptimizer"},
    "utils": {
        "SequenceDict", "setdefault", "tensors_to_column", "column_to_tensors",
        "kronecker_product", "layer_params_to_mat2d", "mat2d_to_layer_params",
        "compute_pi", "posdef_inv", "posdef_inv_matrix_inverse",
        "posdef_inv_cholesky", "posdef_inv_funcs", "SubGraph",
        "generate_random_signs", "fwd_gradients"},
}

# kfac 0.2.x top-level conveniences and where they live in the 1.4 layout.
TOP_LEVEL_02 = {
    "LayerCollection": "kfac.layer_collection.LayerCollection",
    "KfacOptimizer": "kfac.optimizer.KfacOptimizer",
    "CurvatureMatrixVectorProductComputer": (
        "kfac.curvature_matrix_vector_products."
        "CurvatureMatrixVectorProductComputer"),
}

# kfac 0.2.x top-level names with no counterpart in the 1.4 API.
UNSUPPORTED_TOP_LEVEL_02 = {
    "PeriodicInvCovUpdateKfacOpt": "the 1.4 API has no periodic optimizer; "
                                   "use optimizer.KfacOptimizer and run "
                                   "cov_update_op / inv_update_op yourself",
    "AsyncInvCovUpdateKfacOpt": "the 1.4 API has no asynchronous optimizer; "
                                "use optimizer.KfacOptimizer (and "
                                "op_queue.OpQueue for the inverse updates)",
    "keras": "the 1.4 API has no Keras integration",
    "async_inv_cov_update_kfac_opt": "not part of the 1.4 API",
    "periodic_inv_cov_update_kfac_opt": "not part of the 1.4 API",
    "data_reader": "not part of the 1.4 API",
    "data_reader_alt": "not part of the 1.4 API",
    "graph_matcher": "automatic layer registration is not part of the 1.4 API",
    "graph_search": "automatic layer registration is not part of the 1.4 API",
}

# KfacOptimizer signatures: the 1.4 positional parameters, and the r1.5
# keyword-only extras that `kfac.optimizer.KfacOptimizer` also accepts.
OPTIMIZER_PARAMS_14 = (
    "learning_rate", "cov_ema_decay", "damping", "layer_collection",
    "momentum", "momentum_type", "norm_constraint", "name")
OPTIMIZER_KEYWORD_ONLY = (
    "var_list", "estimation_mode", "colocate_gradients_with_ops",
    "cov_devices", "inv_devices")
OPTIMIZER_PARAMS_02 = (
    "learning_rate", "damping", "layer_collection", "cov_ema_decay",
    "var_list", "momentum", "momentum_type", "use_weight_decay",
    "weight_decay_coeff", "qmodel_update_rescale", "norm_constraint", "name",
    "estimation_mode", "colocate_gradients_with_ops", "batch_size",
    "placement_strategy", "compute_params_stats", "adapt_damping",
    "update_damping_immediately", "is_chief", "prev_train_batch", "loss",
    "loss_fn", "min_damping", "l2_reg", "damping_adaptation_decay",
    "damping_adaptation_interval", "damping_decrease_rho_threshold",
    "damping_increase_rho_threshold", "precon_damping_mult",
    "use_passed_loss", "train_batch", "print_logs", "tf_replicator", "dtype")

# Method renames that are plain aliases in kfac 0.2.x.
METHOD_RENAMES_02 = {
    "register_softmax_cross_entropy_loss":
        "register_categorical_predictive_distribution",
    "register_sigmoid_cross_entropy_loss":
        "register_multi_bernoulli_predictive_distribution",
    "register_squared_error_loss": "register_normal_predictive_distribution",
    # CurvatureMatrixVectorProductComputer only.
    "ggn_factor_inner_shapes": "generalized_gauss_newton_factor_inner_shapes",
    # Loss functions only.
    "multiply_ggn_factor_replicated_one_hot":
        "multiply_hessian_factor_replicated_one_hot",
    "ggn_factor_inner_shape": "hessian_factor_inner_shape",
    "ggn_factor_inner_static_shape": "hessian_factor_inner_static_shape",
}

# kfac 0.2.x "ggn" methods that both CurvatureMatrixVectorProductComputer and
# the loss functions have, renamed differently: {name: (cmvp name, loss name)}.
AMBIGUOUS_RENAMES_02 = {
    "multiply_ggn": ("multiply_generalized_gauss_newton", "multiply_hessian"),
    "multiply_ggn_factor": ("multiply_generalized_gauss_newton_factor",
                            "multiply_hessian_factor"),
    "multiply_ggn_factor_transpose": (
        "multiply_generalized_gauss_newton_factor_transpose",
        "multiply_hessian_factor_transpose"),
}

_CMVP_PATH = ("kfac.curvature_matrix_vector_products."
              "CurvatureMatrixVectorProductComputer")

# 1.4 FisherEstimator parameters (kfac 0.2.x adds `exps` fifth, and more).
ESTIMATOR_PARAMS_14 = ("variables", "cov_ema_decay", "damping",
                       "layer_collection", "estimation_mode")

# kfac 0.2.x methods / properties with no counterpart in the 1.4 API.
UNSUPPORTED_METHODS_02 = {
    "make_vars_and_create_op_thunks": "in 1.4, KfacOptimizer builds its ops at "
                                      "construction: use cov_update_op and "
                                      "inv_update_op",
    "create_ops_and_vars_thunks": "in 1.4, KfacOptimizer builds its ops at "
                                  "construction: use cov_update_op and "
                                  "inv_update_op",
    "get_cov_vars": "not part of the 1.4 API",
    "get_inv_vars": "not part of the 1.4 API",
    "set_loss": "not part of the 1.4 API",
    "auto_register_layers": "1.4 has no automatic registration; call "
                            "register_fully_connected / register_conv2d",
    "define_linked_parameters": "not part of the 1.4 API",
    "register_conv1d": "not part of the 1.4 API",
    "register_convolution": "not part of the 1.4 API",
    "register_depthwise_conv2d": "not part of the 1.4 API",
    "register_separable_conv2d": "not part of the 1.4 API",
    "register_fully_connected_multi": "not part of the 1.4 API",
    "register_conv2d_multi": "not part of the 1.4 API",
    "register_scale_and_shift": "not part of the 1.4 API",
    "register_embedding": "not part of the 1.4 API",
    "register_embedding_multi": "not part of the 1.4 API",
    "register_loss_function": "not part of the 1.4 API",
    "set_default_generic_approximation": "1.4 has no default-approximation "
                                         "settings; pass approx= per call",
    "set_default_fully_connected_approximation": "1.4 has no default-"
                                                 "approximation settings; pass "
                                                 "approx= per call",
    "set_default_conv2d_approximation": "1.4 has no default-approximation "
                                        "settings; pass approx= per call",
    "fisher_factor_inner_static_shapes": "not part of the 1.4 API",
    "ggn_factor_inner_static_shapes": "not part of the 1.4 API",
}

# LayerCollection.register_* methods of 1.4, with their parameters.
REGISTER_PARAMS_14 = {
    "register_fully_connected": ("params", "inputs", "outputs", "approx"),
    "register_conv2d": ("params", "strides", "padding", "inputs", "outputs",
                        "approx"),
    "register_generic": ("params", "batch_size", "approx"),
    "register_categorical_predictive_distribution": ("logits", "seed",
                                                     "targets", "name"),
    "register_normal_predictive_distribution": ("mean", "var", "seed",
                                                "targets", "name"),
    "register_multi_bernoulli_predictive_distribution": ("logits", "seed",
                                                         "targets", "name"),
}

_APPROX_NAMES_14 = ("kron", "diagonal", "full")


class UpgradeError(Exception):
  """Raised when a program cannot be parsed.

  Attributes:
    filename: the file name used in the message.
    lineno: 1-based line of the error (or None).
    message: the parser's description of the problem.
  """

  def __init__(self, filename, lineno, message):
    """Creates the error.

    Args:
      filename: str, name of the file being upgraded.
      lineno: int or None, 1-based line of the error.
      message: str, description of the problem.
    """
    self.filename = filename
    self.lineno = lineno
    self.message = message
    where = filename if lineno is None else "%s:%d" % (filename, lineno)
    super(UpgradeError, self).__init__("%s: %s" % (where, message))


Finding = collections.namedtuple("Finding", ["line", "message"])
Finding.__doc__ = """One report item: `line` (1-based, in the input; 0 for the
module as a whole) and `message`."""


class UpgradeResult(object):
  """What `upgrade_source` did to one program.

  Attributes:
    source: the upgraded program (`bytes` if the input was `bytes`, else
      `str`).
    changes: list of `Finding`s, one per rewritten place.
    attention: list of `Finding`s, one per place that needs a human.
    changed: bool, whether `source` differs from the input.
  """

  def __init__(self, source, changes, attention, changed):
    """Stores the result.

    Args:
      source: the upgraded program text.
      changes: list of `Finding` for rewritten places.
      attention: list of `Finding` for places that need a human.
      changed: bool, whether the text changed.
    """
    self.source = source
    self.changes = changes
    self.attention = attention
    self.changed = changed


# ------------------------------------------------------------------------------
# Path mapping.


def _strip_lib(name):
  if name.endswith("_lib") and name[:-4] in MODULES:
    return name[:-4]
  return name


def _map_path(path):
  """Maps a dotted path to its `kfac` (1.4 layout) equivalent.

  Args:
    path: a fully qualified dotted name, e.g.
      "tensorflow.contrib.kfac.python.ops.fisher_factors.FullFactor".

  Returns:
    The new dotted path; `path` itself when nothing changes; None when the path
    is legacy / 0.2.x but has no counterpart (see `_path_problem`).
  """
  for prefix in LEGACY_PREFIXES:
    if path == prefix:
      return "kfac"
    if path.startswith(prefix + "."):
      rest = path[len(prefix) + 1:].split(".")
      if rest[0] == "python":
        if len(rest) == 1:
          return None
        if rest[1] != "ops":
          return None
        rest = rest[2:]
        if not rest:
          return "kfac"
      rest[0] = _strip_lib(rest[0])
      return ".".join(["kfac"] + rest)
  if path == "kfac" or path.startswith("kfac."):
    rest = path.split(".")[1:]
    if not rest:
      return path
    if rest[0] == "python":
      if len(rest) >= 2 and rest[1] == "ops":
        rest = rest[2:]
        if not rest:
          return "kfac"
        if rest[0] in MODULES:
          return ".".join(["kfac"] + rest)
      return None
    if rest[0] in TOP_LEVEL_02:
      return ".".join([TOP_LEVEL_02[rest[0]]] + rest[1:])
    if rest[0] in UNSUPPORTED_TOP_LEVEL_02:
      return None
    return path
  return path


def _path_problem(path):
  """Says why `path` (one that `_map_path` cannot map) has no counterpart.

  Args:
    path: dotted path.

  Returns:
    A message, or None when `path` is mappable.
  """
  if _map_path(path) is not None:
    return None
  parts = path.split(".")
  for prefix in LEGACY_PREFIXES:
    if path.startswith(prefix + "."):
      return ("`%s` has no counterpart in `kfac` (only `python.ops.<module>` is "
              "mapped)" % path)
  if parts[1] in UNSUPPORTED_TOP_LEVEL_02:
    return "kfac 0.2.x `kfac.%s`: %s" % (parts[1],
                                          UNSUPPORTED_TOP_LEVEL_02[parts[1]])
  if parts[1:3] == ["python", "ops"] and len(parts) > 3:
    return ("kfac 0.2.x module `kfac.python.ops.%s` does not exist in the 1.4 "
            "API" % parts[3])
  if parts[1:3] == ["python", "keras"]:
    return "kfac 0.2.x `kfac.python.keras`: the 1.4 API has no Keras integration"
  return "`%s` has no counterpart in the 1.4 API" % path


def _is_legacy(path):
  return any(path == p or path.startswith(p + ".") for p in LEGACY_PREFIXES)


def _is_kfac(path):
  return path == "kfac" or path.startswith("kfac.")


def _is_02_path(path):
  """Whether `path` only makes sense for PyPI kfac 0.2.x."""
  if not _is_kfac(path):
    return False
  parts = path.split(".")
  if len(parts) < 2:
    return False
  return (parts[1] == "python" or parts[1] in TOP_LEVEL_02 or
          parts[1] in UNSUPPORTED_TOP_LEVEL_02)


def _dotted(node):
  """Returns the dotted name of a Name/Attribute chain, or None."""
  if isinstance(node, cst.Name):
    return node.value
  if isinstance(node, cst.Attribute):
    base = _dotted(node.value)
    return None if base is None else base + "." + node.attr.value
  return None


def _make_dotted(path, template=None):
  """Builds a Name/Attribute chain for `path`, keeping `template`'s parens."""
  parts = path.split(".")
  node = cst.Name(parts[0])
  for part in parts[1:]:
    node = cst.Attribute(value=node, attr=cst.Name(part))
  if template is not None and (template.lpar or template.rpar):
    node = node.with_changes(lpar=template.lpar, rpar=template.rpar)
  return node


def _root_name(node):
  while isinstance(node, cst.Attribute):
    node = node.value
  return node if isinstance(node, cst.Name) else None


def _string_value(node):
  if isinstance(node, cst.SimpleString):
    try:
      value = ast.literal_eval(node.value)
    except (ValueError, SyntaxError):
      return None
    return value if isinstance(value, str) else None
  return None


def _is_none(node):
  return isinstance(node, cst.Name) and node.value == "None"


# ------------------------------------------------------------------------------
# Argument-list editing that keeps the call's layout.


def _default_comma():
  return cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))


def _kwarg(name, value_code):
  return cst.Arg(
      keyword=cst.Name(name),
      value=cst.parse_expression(value_code),
      equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                            whitespace_after=cst.SimpleWhitespace("")))


def _without_comment(comma):
  """`comma` with the comment / blank lines after it removed."""
  ws = comma.whitespace_after
  if isinstance(ws, cst.ParenthesizedWhitespace):
    ws = ws.with_changes(
        first_line=cst.TrailingWhitespace(newline=ws.first_line.newline),
        empty_lines=[])
    return comma.with_changes(whitespace_after=ws)
  return comma


def _append_kwargs(args, new):
  """Appends keyword arguments `new` [(name, code)] to the list `args`.

  The layout of the call is kept: on a multi-line call the new arguments go
  on lines of their own, with the indentation of the existing ones, and the
  comments stay on the lines they were on.
  """
  if not new:
    return args
  args = list(args)
  new_args = [_kwarg(name, code) for name, code in new]
  if not args:
    return new_args
  last = args[-1]
  if len(args) >= 2 and isinstance(args[-2].comma, cst.Comma):
    sep = _without_comment(args[-2].comma)
  else:
    sep = _default_comma()
  if isinstance(last.comma, cst.Comma):
    closing = last.comma
    last_comma = sep
    if isinstance(closing.whitespace_after, cst.ParenthesizedWhitespace) and (
        isinstance(sep.whitespace_after, cst.ParenthesizedWhitespace)):
      # Keep a comment after the old last argument on its line.
      last_comma = closing.with_changes(
          whitespace_after=closing.whitespace_after.with_changes(
              last_line=sep.whitespace_after.last_line))
    closing = _without_comment(closing)
  else:
    closing = cst.MaybeSentinel.DEFAULT
    last_comma = sep
  args[-1] = last.with_changes(comma=last_comma)
  for i, arg in enumerate(new_args):
    new_args[i] = arg.with_changes(
        comma=closing if i == len(new_args) - 1 else sep)
  return args + new_args


def _remove_kwargs(args, names):
  """Removes keyword arguments named in `names` from the list `args`."""
  args = list(args)
  out = []
  for i, arg in enumerate(args):
    if arg.keyword is not None and arg.keyword.value in names:
      if i == len(args) - 1 and out:
        out[-1] = out[-1].with_changes(comma=arg.comma)
      continue
    out.append(arg)
  return out


# ------------------------------------------------------------------------------
# Pre-pass: facts about the original module.


def _package_alias_target(visitor, node):
  """For `NAME = tf.contrib.kfac` (the 2017 idiom) returns NAME, else None.

  Args:
    visitor: a visitor or transformer with QualifiedNameProvider metadata.
    node: an original `cst.Assign` node.
  """
  if len(node.targets) != 1 or not isinstance(node.targets[0].target,
                                              cst.Name):
    return None
  if not isinstance(node.value, cst.Attribute):
    return None
  names = visitor.get_metadata(cst_metadata.QualifiedNameProvider, node.value,
                               set())
  names = {q.name for q in names
           if q.source == cst_metadata.QualifiedNameSource.IMPORT}
  if len(names) != 1:
    return None
  path = names.pop()
  if not _is_legacy(path) or _map_path(path) != "kfac":
    return None
  return node.targets[0].target.value


class _Survey(cst.CSTVisitor):
  """Collects facts about the original module before rewriting."""

  METADATA_DEPENDENCIES = (cst_metadata.QualifiedNameProvider,)

  def __init__(self):
    super(_Survey, self).__init__()
    self.imports_kfac = False
    self.markers_02 = False
    self.method_names = set()
    self.name_kinds = collections.defaultdict(set)  # name -> {"cmvp", "loss"}
    self.package_alias_targets = set()  # ids of `X` in `X = tf.contrib.kfac`

  def _note_path(self, path):
    if _is_kfac(path):
      self.imports_kfac = True
      if _is_02_path(path):
        self.markers_02 = True

  def visit_Import(self, node):
    for alias in node.names:
      self._note_path(_dotted(alias.name) or "")
    return False

  def visit_ImportFrom(self, node):
    if node.relative:
      return False
    module = _dotted(node.module) if node.module is not None else None
    if module is None:
      return False
    self._note_path(module)
    if not isinstance(node.names, cst.ImportStar):
      for alias in node.names:
        self._note_path(module + "." + alias.name.value)
    return False

  def visit_Attribute(self, node):
    self.method_names.add(node.attr.value)

  def _kind(self, value):
    """"cmvp", "loss" or None: what the expression `value` evaluates to."""
    if isinstance(value, cst.Call):
      try:
        names = self.get_metadata(cst_metadata.QualifiedNameProvider,
                                  value.func)
      except KeyError:
        names = set()
      paths = {_map_path(q.name) for q in names}
      if _CMVP_PATH in paths:
        return "cmvp"
      if any(p and p.startswith("kfac.loss_functions.") for p in paths):
        return "loss"
    if isinstance(value, cst.Subscript) and isinstance(
        value.value, cst.Attribute) and value.value.attr.value == "losses":
      return "loss"
    return None

  def visit_Assign(self, node):
    if _package_alias_target(self, node) is not None:
      self.package_alias_targets.add(id(node.targets[0].target))
    kind = self._kind(node.value)
    for target in node.targets:
      if isinstance(target.target, cst.Name):
        self.name_kinds[target.target.value].add(kind)

  def visit_For(self, node):
    if (isinstance(node.target, cst.Name) and
        isinstance(node.iter, cst.Attribute) and
        node.iter.attr.value == "losses"):
      self.name_kinds[node.target.value].add("loss")


# ------------------------------------------------------------------------------
# The rewriter.


class _Upgrader(cst.CSTTransformer):
  """Rewrites legacy kfac references; see the module docstring."""

  METADATA_DEPENDENCIES = (
      cst_metadata.QualifiedNameProvider,
      cst_metadata.PositionProvider,
      cst_metadata.ScopeProvider,
  )

  def __init__(self, module, is_02, name_kinds=None,
               package_alias_targets=()):
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
    changes = [Finding(key[0], msg)
               for key, msg in sorted(self._changes.items())]
    attention = sorted(set(self._attention) | set(self._conflicts.values()))
    return changes, attention

  def _qname(self, node):
    """The single import-derived qualified name of `node`, or None."""
    try:
      names = self.get_metadata(cst_metadata.QualifiedNameProvider, node)
    except KeyError:
      return None
    names = {q.name for q in names
             if q.source == cst_metadata.QualifiedNameSource.IMPORT}
    if len(names) != 1:
      return None
    return names.pop()

  def _kfac_name_free(self, original):
    """Whether the name `kfac` at `original` is free or bound to kfac."""
    try:
      scope = self.get_metadata(cst_metadata.ScopeProvider, original)
    except KeyError:
      return True
    if scope is None:
      return True
    for assignment in scope["kfac"]:
      if id(assignment.node) in self._package_alias_targets:
        continue  # `kfac = tf.contrib.kfac`, which becomes `import kfac`.
      if not isinstance(assignment, cst_metadata.ImportAssignment):
        return False
      node = assignment.node
      ok = False
      if isinstance(node, cst.Import):
        for alias in node.names:
          name = _dotted(alias.name) or ""
          bound = (alias.asname.name.value if alias.asname is not None
                   else name.split(".")[0])
          if bound == "kfac" and (_map_path(name) or "").split(".")[0] == "kfac":
            ok = (alias.asname is None or _map_path(name) == "kfac")
      elif isinstance(node, cst.ImportFrom) and node.module is not None:
        module = _dotted(node.module) or ""
        if not isinstance(node.names, cst.ImportStar):
          for alias in node.names:
            bound = (alias.asname.name.value if alias.asname is not None
                     else alias.name.value)
            if bound == "kfac" and _map_path(
                module + "." + alias.name.value) == "kfac":
              ok = True
      if not ok:
        return False
    return True

  # -- imports -----------------------------------------------------------------

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

  def _rewrite_plain_import(self, node):
    new_aliases = []
    changed = False
    for alias in node.names:
      name = _dotted(alias.name)
      new = _map_path(name)
      if new is None:
        self._attend(self._line_node, _path_problem(name))
        new_aliases.append(alias)
        continue
      if new == name:
        new_aliases.append(alias)
        continue
      changed = True
      if alias.asname is None and name.split(".")[0] != new.split(".")[0]:
        # `import tensorflow.contrib.kfac` bound `tensorflow`: keep that
        # binding if the rest of the module still uses it.
        if self.tensorflow_still_used:
          new_aliases.append(alias.with_changes(
              name=cst.Name(name.split(".")[0]), comma=_default_comma()))
        new_aliases.append(alias.with_changes(name=_make_dotted(new)))
      elif alias.asname is not None and alias.asname.name.value == new:
        # `import tensorflow.contrib.kfac as kfac` -> `import kfac`.
        new_aliases.append(alias.with_changes(name=_make_dotted(new),
                                              asname=None))
      else:
        new_aliases.append(alias.with_changes(name=_make_dotted(new)))
    if not changed:
      return None
    new_aliases[-1] = new_aliases[-1].with_changes(
        comma=node.names[-1].comma)
    return [node.with_changes(names=new_aliases)]

  def _rewrite_from_import(self, node):
    if node.relative or node.module is None:
      return None
    module = _dotted(node.module)
    new_module = _map_path(module)
    if isinstance(node.names, cst.ImportStar):
      if new_module is None:
        self._attend(self._line_node, _path_problem(module))
        return None
      if new_module == module:
        return None
      return [node.with_changes(module=_make_dotted(new_module))]
    # Group the aliases by their new module.
    keep = []       # aliases that stay in this statement, unchanged
    groups = collections.OrderedDict()  # new module -> [aliases]
    plain = []      # `import kfac [as x]` statements
    for alias in node.names:
      name = alias.name.value
      path = module + "." + name
      new = _map_path(path)
      if new is None:
        self._attend(self._line_node, _path_problem(path))
        keep.append(alias)
        continue
      if new == path:
        keep.append(alias)
        continue
      bound = alias.asname.name.value if alias.asname is not None else name
      if "." not in new:
        plain.append(cst.Import(names=[cst.ImportAlias(
            name=cst.Name(new),
            asname=None if bound == new else cst.AsName(name=cst.Name(bound)))]))
        continue
      new_mod, new_name = new.rsplit(".", 1)
      if new_name == name:
        new_alias = alias
      elif alias.asname is not None:
        new_alias = alias.with_changes(name=cst.Name(new_name))
      else:
        new_alias = alias.with_changes(
            name=cst.Name(new_name), asname=cst.AsName(name=cst.Name(name)))
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
        statements.append(node.with_changes(
            module=_make_dotted(new_mod), names=fix_commas(aliases, node.names)))
      else:
        aliases = [a.with_changes(comma=cst.MaybeSentinel.DEFAULT)
                   for a in aliases]
        statements.append(cst.ImportFrom(
            module=_make_dotted(new_mod), names=aliases))
    statements.extend(plain)
    return statements

  def leave_SimpleStatementLine(self, original, updated):
    if (len(original.body) == 1 and isinstance(original.body[0], cst.Assign)
        and id(original.body[0].targets[0].target) in
        self._package_alias_targets):
      # The 2017 idiom `kfac = tf.contrib.kfac` becomes `import kfac`.
      name = original.body[0].targets[0].target.value
      new = cst.Import(names=[cst.ImportAlias(
          name=cst.Name("kfac"),
          asname=None if name == "kfac" else cst.AsName(name=cst.Name(name)))])
      self._changes.pop(self._pos(original.body[0].value) + ("chain",), None)
      self._kfac_chains.discard(self._pos(original.body[0].value))
      self._change(original, "`%s` -> `%s`" % (
          self._code(original.body[0].with_changes(
              semicolon=cst.MaybeSentinel.DEFAULT)),
          self._module.code_for_node(new)), kind="import0")
      return updated.with_changes(body=[new.with_changes(
          semicolon=updated.body[0].semicolon)])
    if not any(isinstance(s, (cst.Import, cst.ImportFrom))
               for s in updated.body):
      return updated
    new_body = []
    changed = False
    self._line_node = original  # Where import problems are reported.
    for index, small in enumerate(updated.body):
      if isinstance(small, (cst.Import, cst.ImportFrom)):
        replacement = self._rewrite_import(small)
        if replacement is not None:
          changed = True
          old = self._code(small.with_changes(
              semicolon=cst.MaybeSentinel.DEFAULT))
          new = "; ".join(self._module.code_for_node(
              s.with_changes(semicolon=cst.MaybeSentinel.DEFAULT))
                          for s in replacement)
          self._change(original, "`%s` -> `%s`" % (old, " ".join(new.split())),
                       kind="import%d" % index)
          if len(replacement) == 1:
            new_body.append(replacement[0].with_changes(semicolon=small.semicolon))
          else:
            for s in replacement[:-1]:
              new_body.append(s.with_changes(semicolon=cst.Semicolon(
                  whitespace_after=cst.SimpleWhitespace(" "))))
            new_body.append(replacement[-1].with_changes(
                semicolon=small.semicolon))
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
          lines.append(updated.with_changes(
              body=[small], trailing_whitespace=cst.TrailingWhitespace()))
        elif i == len(new_body) - 1:
          lines.append(cst.SimpleStatementLine(
              body=[small], trailing_whitespace=updated.trailing_whitespace))
        else:
          lines.append(cst.SimpleStatementLine(body=[small]))
      return cst.FlattenSentinel(lines)
    return updated.with_changes(body=new_body)

  # -- attribute chains --------------------------------------------------------

  def leave_Attribute(self, original, updated):
    if self._import_depth:
      return updated
    method = original.attr.value
    if self._is_02 and method in AMBIGUOUS_RENAMES_02:
      kind = self._receiver_kind(original.value)
      if kind is None:
        cmvp_name, loss_name = AMBIGUOUS_RENAMES_02[method]
        self._attend(original, "kfac 0.2.x `.%s`: `%s` if the receiver is a "
                     "CurvatureMatrixVectorProductComputer, `%s` if it is a "
                     "loss function; the receiver's type is not clear here"
                     % (method, cmvp_name, loss_name))
        return updated
      new_method = AMBIGUOUS_RENAMES_02[method][0 if kind == "cmvp" else 1]
      self._change(original.attr, "`.%s` -> `.%s` (kfac 0.2.x name)"
                   % (method, new_method), kind="method")
      return updated.with_changes(attr=updated.attr.with_changes(
          value=new_method))
    if (self._is_02 and method in METHOD_RENAMES_02 and
        not method.startswith("register_")):
      self._change(original.attr, "`.%s` -> `.%s` (kfac 0.2.x name)"
                   % (method, METHOD_RENAMES_02[method]), kind="method")
      return updated.with_changes(attr=updated.attr.with_changes(
          value=METHOD_RENAMES_02[method]))
    path = self._qname(original)
    if path is None:
      return updated
    root = _root_name(original)
    if root is None:
      return updated
    root_path = self._qname(root)
    if root_path is not None and _map_path(root_path) != root_path:
      # The import that binds the root is rewritten; uses stay as they are.
      return updated
    new = _map_path(path)
    if new is None:
      # No counterpart (reported by the audit): keep the whole chain legacy.
      self._changes.pop(self._pos(original) + ("chain",), None)
      self._kfac_chains.discard(self._pos(original))
      return original
    if new == path:
      return updated
    child_path = self._qname(original.value)
    child_repr = None
    if child_path is not None:
      child_repr = _map_path(child_path)
      if child_repr is None:
        child_repr = child_path
    if new.split(".")[0] == "kfac" and root.value != "kfac":
      if not self._kfac_name_free(original):
        self._conflicts[self._pos(original)] = Finding(
            self._pos(original)[0],
            "`%s` would become `%s`, but the name `kfac` means something "
            "else here; rewrite it by hand" % (self._code(original), new))
        return updated
      self._kfac_chains.add(self._pos(original))
    self._change(original, "`%s` -> `%s`" % (self._code(original), new))
    if child_repr is not None and new == child_repr + "." + original.attr.value:
      return updated
    if child_repr is not None and new.rsplit(".", 1)[0] == child_repr:
      return updated.with_changes(
          attr=updated.attr.with_changes(value=new.rsplit(".", 1)[1]))
    return _make_dotted(new, template=updated)

  def _receiver_kind(self, node):
    """"cmvp", "loss" or None for the receiver expression `node`."""
    if isinstance(node, cst.Name):
      kinds = self._name_kinds.get(node.value, set())
      return next(iter(kinds)) if len(kinds) == 1 else None
    if isinstance(node, cst.Subscript) and isinstance(
        node.value, cst.Attribute) and node.value.attr.value == "losses":
      return "loss"
    if isinstance(node, cst.Call):
      path = self._qname(node.func)
      if path is not None and _map_path(path) == _CMVP_PATH:
        return "cmvp"
    return None

  # -- calls -------------------------------------------------------------------

  def leave_Call(self, original, updated):
    if self._import_depth:
      return updated
    path = self._qname(original.func)
    if path is not None:
      new = _map_path(path) or path
      if new == "kfac.optimizer.KfacOptimizer":
        return self._upgrade_optimizer_call(original, updated,
                                            from_02=_is_02_path(path),
                                            path_is_kfac=_is_kfac(path))
      if new == _CMVP_PATH and (self._is_02 or _is_02_path(path)):
        return self._upgrade_cmvp_call(original, updated)
      if new == "kfac.estimator.FisherEstimator" and (
          self._is_02 or _is_02_path(path)):
        self._check_estimator_call(original)
        return updated
    if self._is_02 and isinstance(updated.func, cst.Attribute):
      method = original.func.attr.value
      if method in METHOD_RENAMES_02 and method.startswith("register_"):
        return self._upgrade_register_call(original, updated, method)
      if method in REGISTER_PARAMS_14:
        return self._upgrade_register_call(original, updated, method)
    return updated

  def _upgrade_optimizer_call(self, original, updated, from_02,
                              path_is_kfac=True):
    args = list(updated.args)
    if any(a.star for a in args):
      if self._is_02 or from_02:
        self._attend(original, "KfacOptimizer called with *args/**kwargs: "
                     "check the arguments against the 1.4 signature %s"
                     % (OPTIMIZER_PARAMS_14,))
      return updated
    positional = [a for a in args if a.keyword is None]
    keywords = collections.OrderedDict(
        (a.keyword.value, a) for a in args if a.keyword is not None)
    bound14 = set(OPTIMIZER_PARAMS_14[:len(positional)])
    valid14 = (len(positional) <= len(OPTIMIZER_PARAMS_14) and
               set(keywords) <= set(OPTIMIZER_PARAMS_14 +
                                    OPTIMIZER_KEYWORD_ONLY) and
               not bound14 & set(keywords) and
               set(OPTIMIZER_PARAMS_14[:4]) <= bound14 | set(keywords))
    bound02 = set(OPTIMIZER_PARAMS_02[:len(positional)])
    valid02 = (set(keywords) <= set(OPTIMIZER_PARAMS_02) and
               not bound02 & set(keywords) and
               set(OPTIMIZER_PARAMS_02[:3]) <= bound02 | set(keywords))
    as_02 = from_02 or self._is_02 or (
        not valid14 and valid02 and path_is_kfac)
    if not as_02:
      if not valid14:
        self._attend(original, "KfacOptimizer call does not match the 1.4 "
                     "signature %s" % (OPTIMIZER_PARAMS_14,))
      return updated
    if len(positional) >= 2:
      self._attend(original, "KfacOptimizer called positionally in the kfac "
                   "0.2.x order (learning_rate, damping, layer_collection, "
                   "cov_ema_decay, ...); the 1.4 order is (learning_rate, "
                   "cov_ema_decay, damping, layer_collection, ...): pass the "
                   "arguments by keyword and run kfac-upgrade again")
      return updated
    if not valid02:
      self._attend(original, "KfacOptimizer call matches neither the 1.4 nor "
                   "the kfac 0.2.x signature")
      return updated
    added = []
    removed = []
    momentum_type = "adam"
    if "momentum_type" in keywords:
      momentum_type = _string_value(keywords["momentum_type"].value)
      if momentum_type is not None:
        momentum_type = momentum_type.lower()
    for name in keywords:
      if name in OPTIMIZER_PARAMS_14 or name in OPTIMIZER_KEYWORD_ONLY:
        continue
      self._attend(original, "KfacOptimizer(%s=...) is a kfac 0.2.x argument "
                   "with no counterpart in kfac; left in place, remove or "
                   "replace it by hand" % name)
    if momentum_type is None:
      self._attend(original, "KfacOptimizer(momentum_type=...) is not a string "
                   "literal: the 1.4 optimizer accepts 'regular', 'adam' and "
                   "'qmodel' (with momentum=0) only")
    elif momentum_type not in ("regular", "adam", "qmodel"):
      self._attend(original, "KfacOptimizer(momentum_type=%r) does not exist "
                   "in the 1.4 API ('regular', 'adam', 'qmodel')"
                   % momentum_type)
    if momentum_type == "qmodel" and "momentum" in keywords:
      if _is_none(keywords["momentum"].value):
        removed.append("momentum")
    if "norm_constraint" in keywords and not _is_none(
        keywords["norm_constraint"].value) and momentum_type != "regular":
      self._attend(original, "KfacOptimizer: the 1.4 optimizer accepts "
                   "norm_constraint only with momentum_type='regular'")
    if "cov_ema_decay" not in keywords:
      added.append(("cov_ema_decay", "0.95"))
    if "momentum" not in keywords and momentum_type != "qmodel":
      added.append(("momentum", "0.9"))
    if "momentum_type" not in keywords:
      added.append(("momentum_type", '"adam"'))
    if "colocate_gradients_with_ops" not in keywords:
      added.append(("colocate_gradients_with_ops", "True"))
    if not added and not removed and not from_02:
      return updated
    new_args = _remove_kwargs(args, set(removed))
    new_args = _append_kwargs(new_args, added)
    result = updated.with_changes(args=new_args)
    if added or removed:
      what = []
      if added:
        what.append("added the kfac 0.2.x defaults %s" % ", ".join(
            "%s=%s" % kv for kv in added))
      if removed:
        what.append("removed %s (the kfac equivalent)" % ", ".join(
            "%s=%s" % (n, self._code(keywords[n].value)) for n in removed))
      self._change(original, "KfacOptimizer (kfac 0.2.x keywords): " +
                   "; ".join(what), kind="call")
    return result

  def _upgrade_cmvp_call(self, original, updated):
    """kfac 0.2.x CurvatureMatrixVectorProductComputer(layer_collection, ...).

    The 1.4 constructor takes `losses`: the first argument `lc` becomes
    `lc.losses` (and the keyword `layer_collection=` becomes `losses=`).
    """
    args = list(updated.args)
    if any(a.star for a in args):
      self._attend(original, "CurvatureMatrixVectorProductComputer called with "
                   "*args/**kwargs: the 1.4 signature is (losses, wrt_tensors)")
      return updated
    for i, arg in enumerate(args):
      keyword = arg.keyword.value if arg.keyword is not None else None
      if keyword not in (None, "layer_collection", "losses", "wrt_tensors"):
        self._attend(original, "CurvatureMatrixVectorProductComputer(%s=...) "
                     "has no 1.4 counterpart; left in place" % keyword)
    first = None
    for i, arg in enumerate(args):
      if (i == 0 and arg.keyword is None) or (
          arg.keyword is not None and arg.keyword.value == "layer_collection"):
        first = i
        break
    if first is None:
      return updated
    value = args[first].value
    if isinstance(value, cst.Attribute) and value.attr.value == "losses":
      return updated
    if not isinstance(value, (cst.Name, cst.Attribute, cst.Call,
                              cst.Subscript)):
      value = value.with_changes(lpar=[cst.LeftParen()],
                                 rpar=[cst.RightParen()])
    new_arg = args[first].with_changes(
        value=cst.Attribute(value=value, attr=cst.Name("losses")))
    if new_arg.keyword is not None:
      new_arg = new_arg.with_changes(keyword=cst.Name("losses"))
    args[first] = new_arg
    self._change(original, "CurvatureMatrixVectorProductComputer: kfac 0.2.x "
                 "`layer_collection` argument -> `%s` (the 1.4 `losses`)"
                 % " ".join(self._module.code_for_node(new_arg.value).split()),
                 kind="args")
    return updated.with_changes(args=args)

  def _check_estimator_call(self, original):
    """Reports kfac 0.2.x FisherEstimator arguments without 1.4 counterpart."""
    args = list(original.args)
    positional = [a for a in args if a.keyword is None and not a.star]
    if len(positional) > 4:
      self._attend(original, "FisherEstimator called with %d positional "
                   "arguments: the fifth is `exps` in kfac 0.2.x and "
                   "`estimation_mode` in 1.4; pass it by keyword"
                   % len(positional))
    for arg in args:
      if arg.keyword is not None and (
          arg.keyword.value not in ESTIMATOR_PARAMS_14):
        self._attend(original, "FisherEstimator(%s=...) is a kfac 0.2.x "
                     "argument with no 1.4 counterpart; left in place"
                     % arg.keyword.value)

  def _upgrade_register_call(self, original, updated, method):
    """kfac 0.2.x LayerCollection.register_* calls (0.2.x files only)."""
    new_method = METHOD_RENAMES_02.get(method, method)
    params = REGISTER_PARAMS_14[new_method]
    args = list(updated.args)
    if any(a.star for a in args):
      return updated
    positional = [a for a in args if a.keyword is None]
    if len(positional) > len(params) or (
        new_method == "register_conv2d" and len(positional) > 5):
      self._attend(original, "%s called with %d positional arguments; the "
                   "1.4 signature is %s(%s) and the kfac 0.2.x order differs "
                   "after that: pass the extra arguments by keyword"
                   % (new_method, len(positional), new_method,
                      ", ".join(params)))
      return updated
    result = updated
    if method != new_method:
      if method == "register_squared_error_loss" and len(positional) > 1:
        self._attend(original, "register_squared_error_loss(prediction, seed, "
                     "targets, ...) called positionally: the 1.4 "
                     "register_normal_predictive_distribution is (mean, "
                     "var=0.5, seed, targets, name); pass seed/targets by "
                     "keyword and run kfac-upgrade again")
        return updated
      new_args = []
      for a in args:
        if (a.keyword is not None and a.keyword.value == "prediction"):
          a = a.with_changes(keyword=cst.Name("mean"))
        new_args.append(a)
      result = result.with_changes(
          func=updated.func.with_changes(
              attr=updated.func.attr.with_changes(value=new_method)),
          args=new_args)
      self._change(original, "`.%s(` -> `.%s(` (kfac 0.2.x alias)"
                   % (method, new_method), kind="method")
    removed = []
    for a in args:
      if a.keyword is None:
        continue
      name = a.keyword.value
      if name == "approx":
        if _is_none(a.value):
          removed.append(name)
        else:
          value = _string_value(a.value)
          if value is not None and value not in _APPROX_NAMES_14:
            self._attend(original, "approx=%r does not exist in the 1.4 API "
                         "(%s)" % (value, ", ".join(_APPROX_NAMES_14)))
      elif name == "coeff" and self._code(a.value) in ("1.0", "1", "1.", "1.0e0"):
        removed.append(name)
      elif name not in params and name != "prediction":
        self._attend(original, "%s(%s=...) is a kfac 0.2.x argument with no "
                     "1.4 counterpart; left in place" % (new_method, name))
    if removed:
      result = result.with_changes(args=_remove_kwargs(result.args,
                                                       set(removed)))
      self._change(original, "%s: removed %s (the 1.4 default)"
                   % (new_method, ", ".join(removed)), kind="args")
    return result


class _Auditor(cst.CSTVisitor):
  """Finds, in the original module, what cannot be upgraded mechanically."""

  METADATA_DEPENDENCIES = (cst_metadata.QualifiedNameProvider,
                           cst_metadata.PositionProvider)

  def __init__(self, is_02):
    super(_Auditor, self).__init__()
    self._is_02 = is_02
    self.findings = []

  def _qname(self, node):
    names = {q.name for q in self.get_metadata(
        cst_metadata.QualifiedNameProvider, node, set())
             if q.source == cst_metadata.QualifiedNameSource.IMPORT}
    return names.pop() if len(names) == 1 else None

  def _line(self, node):
    return self.get_metadata(cst_metadata.PositionProvider, node).start.line

  def visit_Import(self, node):
    return False

  def visit_ImportFrom(self, node):
    return False

  def _problem(self, path):
    problem = _path_problem(path)
    if problem is not None:
      return problem
    path = _map_path(path)
    if self._is_02 and _is_kfac(path):
      parts = path.split(".")
      if len(parts) >= 3 and parts[1] in MODULES and (
          parts[2] not in SURFACE_14[parts[1]]):
        return ("`%s` does not exist in the 1.4 API (kfac 0.2.x name?)"
                % ".".join(parts[:3]))
    return None

  def visit_Attribute(self, node):
    method = node.attr.value
    if self._is_02 and method in UNSUPPORTED_METHODS_02:
      self.findings.append(Finding(
          self._line(node), "kfac 0.2.x `.%s`: %s"
          % (method, UNSUPPORTED_METHODS_02[method])))
    # Judge whole chains (`a.b.c`), at their outermost node only.
    if _root_name(node) is None:
      return True
    path = self._qname(node)
    if path is None or self._problem(path) is None:
      return False
    # Report the first component after the longest prefix that is fine.
    parts = path.split(".")
    good = 0
    for i in range(1, len(parts) + 1):
      if self._problem(".".join(parts[:i])) is None:
        good = i
    problem = self._problem(".".join(parts[:good + 1]))
    self.findings.append(Finding(self._line(node), problem))
    return False


class _ImportAuditor(cst.CSTVisitor):
  """Finds `from X import name` of names missing in the 1.4 API (0.2.x)."""

  METADATA_DEPENDENCIES = (cst_metadata.PositionProvider,)

  def __init__(self):
    super(_ImportAuditor, self).__init__()
    self.findings = []

  def visit_ImportFrom(self, node):
    if node.relative or node.module is None or isinstance(
        node.names, cst.ImportStar):
      return False
    module = _dotted(node.module) or ""
    for alias in node.names:
      path = _map_path(module + "." + alias.name.value)
      parts = (path or "").split(".")
      if (len(parts) == 3 and parts[0] == "kfac" and parts[1] in MODULES and
          parts[2] not in SURFACE_14[parts[1]]):
        self.findings.append(Finding(
            self.get_metadata(cst_metadata.PositionProvider, node).start.line,
            "`%s` does not exist in the 1.4 API (kfac 0.2.x name?)" % path))
    return False


def _binds_kfac_at_top(module):
  for stmt in module.body:
    if not isinstance(stmt, cst.SimpleStatementLine):
      continue
    for small in stmt.body:
      if isinstance(small, cst.Import):
        for alias in small.names:
          name = _dotted(alias.name) or ""
          if alias.asname is None and name.split(".")[0] == "kfac":
            return True
          if (alias.asname is not None and
              alias.asname.name.value == "kfac" and name == "kfac"):
            return True
  return False


def _imports_tensorflow(stmt):
  if not isinstance(stmt, cst.SimpleStatementLine):
    return False
  for small in stmt.body:
    if isinstance(small, cst.Import):
      for alias in small.names:
        if (_dotted(alias.name) or "").split(".")[0] == "tensorflow":
          return True
    if isinstance(small, cst.ImportFrom) and not small.relative and (
        small.module is not None):
      if (_dotted(small.module) or "").split(".")[0] == "tensorflow":
        return True
  return False


def _is_import_line(stmt):
  return isinstance(stmt, cst.SimpleStatementLine) and all(
      isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body)


def _is_docstring(stmt):
  return (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and
          isinstance(stmt.body[0], cst.Expr) and
          isinstance(stmt.body[0].value, (cst.SimpleString,
                                          cst.ConcatenatedString)))


def _add_kfac_import(module):
  """Inserts `import kfac` after the first top-level TensorFlow import."""
  body = list(module.body)
  index = None
  for i, stmt in enumerate(body):
    if _imports_tensorflow(stmt):
      index = i + 1
      break
  if index is None:
    index = 0
    if body and _is_docstring(body[0]):
      index = 1
    while index < len(body) and _is_import_line(body[index]):
      index += 1
  line = cst.SimpleStatementLine(
      body=[cst.Import(names=[cst.ImportAlias(name=cst.Name("kfac"))])])
  body.insert(index, line)
  return module.with_changes(body=body), index


class _TensorflowUse(cst.CSTVisitor):
  """Whether the bare name `tensorflow` is used outside legacy chains."""

  METADATA_DEPENDENCIES = (cst_metadata.QualifiedNameProvider,)

  def __init__(self):
    super(_TensorflowUse, self).__init__()
    self.used = False
    self.other_binding = False

  def visit_Import(self, node):
    for alias in node.names:
      name = _dotted(alias.name) or ""
      if alias.asname is None and name.split(".")[0] == "tensorflow" and (
          not _is_legacy(name)):
        self.other_binding = True
    return False

  def visit_ImportFrom(self, node):
    return False

  def visit_Attribute(self, node):
    names = self.get_metadata(cst_metadata.QualifiedNameProvider, node, set())
    names = {q.name for q in names}
    if len(names) == 1:
      path = names.pop()
      if _is_legacy(path):
        return False
    return True

  def visit_Name(self, node):
    if node.value == "tensorflow":
      names = self.get_metadata(cst_metadata.QualifiedNameProvider, node, set())
      if any(q.name == "tensorflow" for q in names):
        self.used = True


# ------------------------------------------------------------------------------
# Public entry points.


def _check_syntax(source, filename):
  """Raises UpgradeError naming the line if `source` is not valid Python."""
  try:
    compile(source, filename, "exec", flags=ast.PyCF_ONLY_AST,
            dont_inherit=True)
  except SyntaxError as e:
    raise UpgradeError(filename, e.lineno, "syntax error: %s" % e.msg)
  except (ValueError, UnicodeDecodeError) as e:
    raise UpgradeError(filename, None, "cannot read the program: %s" % e)


def upgrade_source(source, filename="<string>"):
  """Upgrades one program from `tf.contrib.kfac` (or kfac 0.2.x) to `kfac`.

  Args:
    source: the program, `str` or `bytes` (`bytes` keep their encoding and
      line endings exactly).
    filename: name used in error messages.

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
    raise UpgradeError(filename, e.raw_line, "syntax error: %s" % e.message)

  wrapper = cst_metadata.MetadataWrapper(module)
  survey = _Survey()
  wrapper.visit(survey)
  is_02 = survey.markers_02 or (
      survey.imports_kfac and
      bool(survey.method_names & (set(UNSUPPORTED_METHODS_02) |
                                  set(METHOD_RENAMES_02) |
                                  set(AMBIGUOUS_RENAMES_02))))
  tf_use = _TensorflowUse()
  wrapper.visit(tf_use)

  upgrader = _Upgrader(wrapper.module, is_02, survey.name_kinds,
                       survey.package_alias_targets)
  upgrader.tensorflow_still_used = tf_use.used and not tf_use.other_binding
  new_module = wrapper.visit(upgrader)
  changes, attention = upgrader.findings()

  if upgrader.kfac_chain_added and not _binds_kfac_at_top(new_module):
    new_module, index = _add_kfac_import(new_module)
    changes.append(Finding(0, "added `import kfac` (statement %d of the "
                           "module)" % (index + 1)))

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
  return UpgradeResult(new_source, changes, attention, new_source != source)


# ------------------------------------------------------------------------------
# Command line.


def _iter_python_files(path):
  if os.path.isdir(path):
    for dirpath, dirnames, filenames in os.walk(path):
      dirnames[:] = sorted(d for d in dirnames
                           if not d.startswith(".") and d != "__pycache__")
      for filename in sorted(filenames):
        if filename.endswith(".py"):
          yield os.path.join(dirpath, filename)
  else:
    yield path


def _write_atomically(path, data):
  """Writes `data` to `path` via a temporary file and a rename."""
  path = os.path.realpath(path)  # Rewrite a symlink's target, keep the link.
  directory = os.path.dirname(path)
  fd, tmp = tempfile.mkstemp(prefix=".kfac-upgrade-", suffix=".tmp",
                             dir=directory)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    shutil.copymode(path, tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def _tf_upgrade_v2(sources):
  """Runs TensorFlow's `tf_upgrade_v2` over {name: bytes}.

  Args:
    sources: dict mapping a display name to program bytes.

  Returns:
    (dict name -> upgraded bytes, dict name -> list of report lines).

  Raises:
    RuntimeError: if `tf_upgrade_v2` cannot be run.
  """
  names = list(sources)
  tmp = tempfile.mkdtemp(prefix="kfac-upgrade-tf2-")
  try:
    intree = os.path.join(tmp, "in")
    outtree = os.path.join(tmp, "out")
    os.makedirs(intree)
    for i, name in enumerate(names):
      with open(os.path.join(intree, "f%d.py" % i), "wb") as f:
        f.write(sources[name])
    report = os.path.join(tmp, "report.txt")
    command = [sys.executable, "-m",
               "tensorflow.tools.compatibility.tf_upgrade_v2_main",
               "--intree", intree, "--outtree", outtree,
               "--reportfile", report]
    proc = subprocess.run(command, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0 or not os.path.isdir(outtree):
      raise RuntimeError("tf_upgrade_v2 failed:\n%s"
                         % proc.stdout.decode("utf-8", "replace")[-2000:])
    results = {}
    reports = {name: [] for name in names}
    for i, name in enumerate(names):
      with open(os.path.join(outtree, "f%d.py" % i), "rb") as f:
        results[name] = f.read()
    if os.path.exists(report):
      with open(report, "r", encoding="utf-8", errors="replace") as f:
        text = f.read()
      # Only the summary part (before the detailed log) names the issues.
      summary = text.split("Detailed log follows:")[0]
      for line in summary.splitlines():
        for i, name in enumerate(names):
          prefix = os.path.join(intree, "f%d.py:" % i)
          if line.startswith(prefix):
            reports[name].append(line[len(prefix):])
    return results, reports
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


# Attribute paths that tf_upgrade_v2 keeps but TensorFlow 2.16+ (Keras 3)
# cannot run.
_KERAS2_ONLY = ("tensorflow.layers", "tensorflow.compat.v1.layers")

# Calls (by their last name) that put a program into graph mode.
_GRAPH_MODE_CALLS = ("disable_eager_execution", "disable_v2_behavior",
                     "as_default")


def tf2_findings(source):
  """What still stops a `tf_upgrade_v2`-upgraded kfac program on TF 2.16+.

  Args:
    source: the program (`str` or `bytes`), after `tf_upgrade_v2`.

  Returns:
    A list of `Finding`s (lines of `source`): one per line that uses
    `tf.layers` / `tf.compat.v1.layers` (Keras 2 only), and one for the module
    if it imports `kfac` but never enters graph mode.
  """
  tree = ast.parse(source)
  aliases = {}  # local name -> dotted module path
  imports_kfac = False
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        imports_kfac |= alias.name.split(".")[0] == "kfac"
        if alias.asname:
          aliases[alias.asname] = alias.name
        else:
          root = alias.name.split(".")[0]
          aliases[root] = root
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      imports_kfac |= node.module.split(".")[0] == "kfac"
      for alias in node.names:
        aliases[alias.asname or alias.name] = "%s.%s" % (node.module,
                                                         alias.name)
  findings = []
  graph_mode = False
  for node in ast.walk(tree):
    if isinstance(node, ast.Attribute):
      graph_mode |= node.attr in _GRAPH_MODE_CALLS
      parts = []
      inner = node
      while isinstance(inner, ast.Attribute):
        parts.append(inner.attr)
        inner = inner.value
      if not isinstance(inner, ast.Name) or inner.id not in aliases:
        continue
      path = ".".join([aliases[inner.id]] + parts[::-1])
      if any(path.startswith(p + ".") for p in _KERAS2_ONLY):
        findings.append(Finding(node.lineno, (
            "`%s` needs Keras 2, and TensorFlow 2.16+ ships Keras 3: create "
            "the variables with `tf.compat.v1.get_variable` and apply them "
            "with `tf.matmul` / `tf.nn.conv2d` (docs/migration.md), or "
            "install `tf_keras` and set TF_USE_LEGACY_KERAS=1"
            % ".".join([inner.id] + parts[::-1]))))
    elif isinstance(node, ast.Name) and node.id in _GRAPH_MODE_CALLS:
      graph_mode = True
  # Report a chain once, at its outermost attribute.
  unique = sorted({f.line: f for f in findings[::-1]}.values())
  if imports_kfac and not graph_mode:
    unique.insert(0, Finding(0, (
        "kfac builds graph ops and runs them in a Session: call "
        "`tf.compat.v1.disable_eager_execution()` at the start of the "
        "program, or build the model inside `with tf.Graph().as_default():`")))
  return unique


def _format_report(name, result, tf2_lines, check, tf2_attention=()):
  lines = []
  if result.changed:
    verb = "would change" if check else "changed"
  else:
    verb = "unchanged"
  lines.append("%s: %s" % (name, verb))
  for finding in result.changes:
    where = "line %d" % finding.line if finding.line else "module"
    lines.append("  %s: %s" % (where, finding.message))
  for finding in result.attention:
    where = "line %d" % finding.line if finding.line else "module"
    lines.append("  NEEDS A HUMAN, %s: %s" % (where, finding.message))
  for line in tf2_lines:
    # tf_upgrade_v2 ran on the kfac-upgraded text: its line numbers are those.
    lines.append("  tf_upgrade_v2 (after the kfac rewrite), %s" % line)
  for finding in tf2_attention:
    where = ("line %d of the result" % finding.line if finding.line
             else "module")
    lines.append("  NEEDS A HUMAN for TensorFlow 2.x, %s: %s"
                 % (where, finding.message))
  return "\n".join(lines)


def main(argv=None):
  """Runs `kfac-upgrade` and returns the exit status.

  Args:
    argv: command-line arguments without the program name (default
      `sys.argv[1:]`).

  Returns:
    0 when nothing failed (and, with `--check`, nothing would change), 1 with
    `--check` when some file would change, 2 when a file could not be read or
    parsed or `tf_upgrade_v2` failed.
  """
  parser = argparse.ArgumentParser(
      prog="kfac-upgrade",
      description="Rewrite programs that use tf.contrib.kfac (TensorFlow 1.4) "
                  "or PyPI kfac 0.2.x to use the kfac package.")
  parser.add_argument("paths", nargs="+", metavar="PATH",
                      help="Python file, directory (searched recursively) or "
                           "'-' for stdin -> stdout")
  parser.add_argument("--check", action="store_true",
                      help="write nothing; exit 1 if any file would change")
  parser.add_argument("--also-tf2", action="store_true",
                      help="also run TensorFlow's tf_upgrade_v2 on the result")
  args = parser.parse_args(argv)

  status = 0
  inputs = []  # (display name, path or None for stdin, original bytes)
  for path in args.paths:
    if path == "-":
      inputs.append(("<stdin>", None, sys.stdin.buffer.read()))
      continue
    if not os.path.exists(path):
      print("%s: no such file or directory" % path, file=sys.stderr)
      status = 2
      continue
    for filename in _iter_python_files(path):
      try:
        with open(filename, "rb") as f:
          inputs.append((filename, filename, f.read()))
      except OSError as e:
        print("%s: cannot read: %s" % (filename, e), file=sys.stderr)
        status = 2

  results = []  # (name, path, original, UpgradeResult)
  for name, path, original in inputs:
    try:
      result = upgrade_source(original, filename=name)
    except UpgradeError as e:
      print("%s (left untouched)" % e, file=sys.stderr)
      status = 2
      if path is None:
        sys.stdout.buffer.write(original)
      continue
    results.append((name, path, original, result))

  tf2_reports = {}
  tf2_attention = {}
  if args.also_tf2 and results:
    try:
      upgraded, tf2_reports = _tf_upgrade_v2(
          collections.OrderedDict((r[0], r[3].source) for r in results))
    except (RuntimeError, OSError) as e:
      print("kfac-upgrade: %s" % e, file=sys.stderr)
      upgraded = None
      status = 2
    if upgraded is not None:
      for r in results:
        r[3].source = upgraded[r[0]]
        r[3].changed = r[3].source != r[2]
        tf2_attention[r[0]] = tf2_findings(r[3].source)

  report_stream = sys.stderr if any(i[1] is None for i in inputs) else (
      sys.stdout)
  changed_count = 0
  for name, path, original, result in results:
    if result.changed:
      changed_count += 1
    if path is None:
      if not args.check:
        sys.stdout.buffer.write(result.source)
        sys.stdout.flush()
    elif result.changed and not args.check:
      try:
        _write_atomically(path, result.source)
      except OSError as e:
        print("%s: cannot write: %s (left untouched)" % (name, e),
              file=sys.stderr)
        status = 2
        continue
    if result.changed or result.attention or tf2_reports.get(name) or (
        tf2_attention.get(name)) or len(inputs) == 1:
      print(_format_report(name, result, tf2_reports.get(name, []),
                           args.check, tf2_attention.get(name, ())),
            file=report_stream)
  failed = len(inputs) - len(results)
  print("kfac-upgrade: %d file(s) scanned, %d %s, %d need a human%s"
        % (len(inputs), changed_count,
           "would change" if args.check else "changed",
           sum(1 for r in results
               if r[3].attention or tf2_attention.get(r[0])),
           ", %d could not be read or parsed" % failed if failed else ""),
        file=report_stream)
  if args.check and changed_count and status == 0:
    status = 1
  return status


if __name__ == "__main__":
  sys.exit(main())
