"""TensorFlow's `tf_upgrade_v2`, and what it leaves for a human."""

import ast
import os
import shutil
import subprocess
import sys
import tempfile

from kfac.upgrade._results import Finding


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
    command = [
      sys.executable,
      "-m",
      "tensorflow.tools.compatibility.tf_upgrade_v2_main",
      "--intree",
      intree,
      "--outtree",
      outtree,
      "--reportfile",
      report,
    ]
    proc = subprocess.run(
      command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False
    )
    if proc.returncode != 0 or not os.path.isdir(outtree):
      raise RuntimeError(
        "tf_upgrade_v2 failed:\n%s"
        % proc.stdout.decode("utf-8", "replace")[-2000:]
      )
    results = {}
    reports = {name: [] for name in names}
    for i, name in enumerate(names):
      with open(os.path.join(outtree, "f%d.py" % i), "rb") as f:
        results[name] = f.read()
    if os.path.exists(report):
      with open(report, encoding="utf-8", errors="replace") as f:
        text = f.read()
      # Only the summary part (before the detailed log) names the issues.
      summary = text.split("Detailed log follows:")[0]
      for line in summary.splitlines():
        for i, name in enumerate(names):
          prefix = os.path.join(intree, "f%d.py:" % i)
          if line.startswith(prefix):
            reports[name].append(line[len(prefix) :])
    return results, reports
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


# Attribute paths that tf_upgrade_v2 keeps but TensorFlow 2.16+ (Keras 3)
# cannot run.
_KERAS2_ONLY = ("tensorflow.layers", "tensorflow.compat.v1.layers")

# Calls (by their last name) that put a program into graph mode.
_GRAPH_MODE_CALLS = (
  "disable_eager_execution",
  "disable_v2_behavior",
  "as_default",
)


def _is_dimension(node):
  """Whether the expression `node` evaluates to a TF1 `Dimension`.

  Recognised: an index into a `.shape`, `.get_shape()` or `.dims`
  (`x.shape[1]`, `x.get_shape()[-1]`, `s.dims[0]`) and a `Dimension(...)`
  call.

  Args:
    node: an `ast` expression.

  Returns:
    bool.
  """
  if isinstance(node, ast.Subscript):
    base = node.value
    if isinstance(base, ast.Attribute) and base.attr in ("shape", "dims"):
      return True
    return (
      isinstance(base, ast.Call)
      and isinstance(base.func, ast.Attribute)
      and base.func.attr == "get_shape"
    )
  if isinstance(node, ast.Call):
    func = node.func
    name = (
      func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    )
    return name == "Dimension"
  return False


def tf2_findings(source):
  """What still stops an upgraded kfac program on TensorFlow 2.16+.

  These are what TensorFlow's own `tf_upgrade_v2` leaves as they are.

  Args:
    source: the program (`str` or `bytes`), after `kfac-upgrade` (and
      `tf_upgrade_v2`, if it ran).

  Returns:
    A list of `Finding`s (lines of `source`): one per line that uses
    `tf.layers` / `tf.compat.v1.layers` (Keras 2 only) or reads `.value` of a
    dimension (`x.shape[1].value`), and one for the module if it imports
    `kfac` but never enters graph mode.
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
        aliases[alias.asname or alias.name] = "%s.%s" % (
          node.module,
          alias.name,
        )
  findings = []
  value_findings = []
  graph_mode = False
  for node in ast.walk(tree):
    if (
      isinstance(node, ast.Attribute)
      and node.attr == "value"
      and _is_dimension(node.value)
    ):
      value_findings.append(
        Finding(
          node.lineno,
          (
            "`%s`: in TensorFlow 2 behaviour a shape holds ints (or None), "
            "which have no `.value` (tf_upgrade_v2 leaves it); write "
            "`tf.compat.v1.dimension_value(%s)`, which works with and without "
            "`disable_v2_behavior()`"
            % (ast.unparse(node), ast.unparse(node.value))
          ),
        )
      )
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
        findings.append(
          Finding(
            node.lineno,
            (
              "`%s` needs Keras 2, and TensorFlow 2.16+ ships Keras 3 "
              "(tf_upgrade_v2 only renames `tf.layers` to "
              "`tf.compat.v1.layers`): create the variables with "
              "`tf.compat.v1.get_variable` and apply them with `tf.matmul` / "
              "`tf.nn.conv2d` (docs/migration.md), or `pip install tf_keras` "
              "and set the environment variable TF_USE_LEGACY_KERAS=1 before "
              "TensorFlow is imported" % ".".join([inner.id] + parts[::-1])
            ),
          )
        )
    if isinstance(node, ast.Name) and node.id in _GRAPH_MODE_CALLS:
      graph_mode = True
  # Report a chain once, at its outermost attribute.
  unique = sorted(
    list({f.line: f for f in findings[::-1]}.values()) + value_findings
  )
  if imports_kfac and not graph_mode:
    unique.insert(
      0,
      Finding(
        0,
        (
          "kfac builds graph ops and runs them in a Session: call "
          "`tf.compat.v1.disable_eager_execution()` at the start of the "
          "program, or build the model inside `with tf.Graph().as_default():`"
        ),
      ),
    )
  return unique
