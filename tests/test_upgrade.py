"""Tests for `kfac.upgrade` (the `kfac-upgrade` command).

The corpus in `tests/data/legacy_programs/` holds small programs written
against TensorFlow 1.4's `tf.contrib.kfac` (and two against PyPI's kfac 0.2.x).
Each `<name>.py` is upgraded and compared with its expected upgrade (stored
as the diff `<name>.expected.diff`, see `legacy_corpus`); the upgraded TF 1.4 programs are then run for a few steps under TF 2.x in one
subprocess. The corpus programs use `tf.compat.v1` for the non-kfac TF 1.x
calls, except `tf1_style.py`, a plain TF 1.x program that is run after
`kfac-upgrade --also-tf2` (TensorFlow's `tf_upgrade_v2` output is not compared
with a file, because it depends on the TensorFlow release).
"""

import difflib
import io
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import tokenize
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import pytest

import legacy_corpus as corpus
import sandbox
from kfac import _surface
from kfac import upgrade
from kfac.upgrade import _cli
from kfac.upgrade import _tables

# Source rewriting does not depend on the TF mode of the test process: run
# once, in the suite's graph-mode pass.
pytestmark = pytest.mark.slow

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_HERE)

# TF 1.4 programs (run after upgrading) and kfac 0.2.x programs (rewritten
# and reported only: they always need the human step for their thunks).
_TF14_PROGRAMS = corpus.COMPAT_V1_PROGRAMS + ("tf1_style",)
_KFAC02_PROGRAMS = ("kfac02_program", "kfac02_unconvertible")
_ALL_PROGRAMS = _TF14_PROGRAMS + _KFAC02_PROGRAMS

# What the report must flag in the kfac 0.2.x programs: (line, phrase).
_EXPECTED_ATTENTION = {
  "kfac02_program": [
    (32, "make_vars_and_create_op_thunks"),
  ],
  "kfac02_unconvertible": [
    (6, "kfac.layer_collection.VARIABLE_SCOPE"),
    (11, "reuse"),
    (13, "register_squared_error_loss"),
    (14, "register_conv2d called with 6 positional"),
    (15, "kron_indep"),
    (18, "positionally in the kfac 0.2.x order"),
    (19, "PeriodicInvCovUpdateKfacOpt"),
    (22, "adapt_damping"),
    (22, "batch_size"),
    (29, "auto_register_layers"),
    (34, "the receiver's type is not clear"),
  ],
}


def _names(source):
  """The NAME tokens of `source` (bytes): code, not strings or comments."""
  return [
    tok.string
    for tok in tokenize.tokenize(io.BytesIO(source).readline)
    if tok.type == tokenize.NAME
  ]


def _upgrade(text):
  return upgrade.upgrade_source(textwrap.dedent(text))


def _run_main(argv, stdin=b""):
  """Runs `upgrade.main(argv)` in-process; returns (status, stdout, stderr)."""
  saved = sys.stdin, sys.stdout, sys.stderr
  sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
  out = io.TextIOWrapper(io.BytesIO(), write_through=True)
  err = io.StringIO()
  sys.stdout, sys.stderr = out, err
  try:
    status = upgrade.main(argv)
    out.flush()
  finally:
    sys.stdin, sys.stdout, sys.stderr = saved
  return status, out.buffer.getvalue(), err.getvalue()


class CorpusTest(parameterized.TestCase):
  """Each corpus program upgrades to its expected file, and only that."""

  @parameterized.named_parameters((name, name) for name in _ALL_PROGRAMS)
  def test_matches_expected(self, name):
    result = upgrade.upgrade_source(
      corpus.read(corpus.program(name)), corpus.program(name)
    )
    expected = corpus.expected(name)
    if result.source != expected:
      diff = "".join(
        difflib.unified_diff(
          expected.decode().splitlines(True),
          result.source.decode().splitlines(True),
          "expected",
          "got",
        )
      )
      self.fail(
        "upgraded %s differs from the expected file:\n%s" % (name, diff)
      )
    self.assertTrue(result.changed)
    self.assertNotEmpty(result.changes)

  @parameterized.named_parameters((name, name) for name in _ALL_PROGRAMS)
  def test_idempotent(self, name):
    once = upgrade.upgrade_source(corpus.read(corpus.program(name))).source
    twice = upgrade.upgrade_source(once)
    self.assertEqual(twice.source, once)
    self.assertFalse(twice.changed)
    self.assertEmpty(twice.changes)

  @parameterized.named_parameters((name, name) for name in _ALL_PROGRAMS)
  def test_only_kfac_lines_change(self, name):
    # Comments and formatting elsewhere are kept: every removed or added line
    # mentions kfac or is part of a changed call.
    before = corpus.read(corpus.program(name)).decode().splitlines()
    after = corpus.expected(name).decode().splitlines()
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
      if tag == "equal":
        continue
      chunk = "\n".join(before[i1:i2] + after[j1:j2])
      self.assertTrue(
        any(
          word in chunk
          for word in (
            "kfac",
            "KfacOptimizer",
            "register_",
            "multiply_",
            "cov_ema_decay",
            "momentum",
            "var_list",
            "estimation_mode",
          )
        ),
        "unexpected change in %s:\n%s" % (name, chunk),
      )

  @parameterized.named_parameters((name, name) for name in _TF14_PROGRAMS)
  def test_tf14_programs_need_no_human(self, name):
    result = upgrade.upgrade_source(corpus.read(corpus.program(name)))
    self.assertEmpty(result.attention)
    self.assertNotIn("contrib", _names(result.source))

  @parameterized.named_parameters((name, name) for name in _KFAC02_PROGRAMS)
  def test_kfac02_report(self, name):
    result = upgrade.upgrade_source(corpus.read(corpus.program(name)))
    got = [(f.line, f.message) for f in result.attention]
    for line, phrase in _EXPECTED_ATTENTION[name]:
      self.assertTrue(
        any(l == line and phrase in m for l, m in got),
        "no report of %r at line %d; got %s" % (phrase, line, got),
      )
    self.assertLen(got, len(_EXPECTED_ATTENTION[name]))


class RewriteTest(parameterized.TestCase):
  """Single rewriting rules on small snippets."""

  @parameterized.named_parameters(
    (
      "tf_alias",
      """\
          import tensorflow as tf1
          lc = tf1.contrib.kfac.layer_collection.LayerCollection()
          """,
      """\
          import tensorflow as tf1
          import kfac
          lc = kfac.layer_collection.LayerCollection()
          """,
    ),
    (
      "compat_v1",
      """\
          import tensorflow.compat.v1 as tf
          f = tf.contrib.kfac.fisher_factors.FullFactor
          """,
      """\
          import tensorflow.compat.v1 as tf
          import kfac
          f = tf.contrib.kfac.fisher_factors.FullFactor
          """.replace("tf.contrib.kfac", "kfac"),
    ),
    (
      "python_ops_chain",
      """\
          import tensorflow as tf
          q = tf.contrib.kfac.python.ops.op_queue_lib.OpQueue
          """,
      """\
          import tensorflow as tf
          import kfac
          q = kfac.op_queue.OpQueue
          """,
    ),
    (
      "from_tensorflow_import_contrib",
      """\
          from tensorflow import contrib
          u = contrib.kfac.utils.posdef_inv
          """,
      """\
          from tensorflow import contrib
          import kfac
          u = kfac.utils.posdef_inv
          """,
    ),
    (
      "plain_import_with_other_uses",
      """\
          import tensorflow.contrib.kfac
          x = tensorflow.zeros([2])
          o = tensorflow.contrib.kfac.optimizer.KfacOptimizer
          """,
      """\
          import tensorflow, kfac
          x = tensorflow.zeros([2])
          o = kfac.optimizer.KfacOptimizer
          """,
    ),
    (
      "plain_import_only_kfac",
      """\
          import tensorflow.contrib.kfac
          o = tensorflow.contrib.kfac.optimizer.KfacOptimizer
          """,
      """\
          import kfac
          o = kfac.optimizer.KfacOptimizer
          """,
    ),
    (
      "from_contrib_split",
      """\
          # header
          from tensorflow.contrib import kfac, slim  # both
          """,
      """\
          # header
          from tensorflow.contrib import slim
          import kfac  # both
          """,
    ),
    (
      "star",
      """\
          from tensorflow.contrib.kfac.python.ops.fisher_factors import *
          """,
      """\
          from kfac.fisher_factors import *
          """,
    ),
    (
      "lib_class_import",
      """\
          from tensorflow.contrib.kfac.python.ops.layer_collection_lib import (
              LayerCollection,  # the registry
              APPROX_DIAGONAL_NAME)
          """,
      """\
          from kfac.layer_collection import (
              LayerCollection,  # the registry
              APPROX_DIAGONAL_NAME)
          """,
    ),
    (
      "kfac_assignment_idiom",
      """\
          import tensorflow as tf
          kfac = tf.contrib.kfac  # 2017 idiom
          lc = kfac.layer_collection.LayerCollection()
          """,
      """\
          import tensorflow as tf
          import kfac  # 2017 idiom
          lc = kfac.layer_collection.LayerCollection()
          """,
    ),
    (
      "import_as_kfac",
      """\
          import tensorflow.contrib.kfac as kfac
          """,
      """\
          import kfac
          """,
    ),
    (
      "function_local_import",
      """\
          def f():
            import tensorflow.contrib.kfac as kf
            return kf.utils
          """,
      """\
          def f():
            import kfac as kf
            return kf.utils
          """,
    ),
    (
      "comments_and_layout_kept",
      """\
          import tensorflow as tf  # tf
          opt = tf.contrib.kfac.optimizer.KfacOptimizer(  # the optimizer
              0.1,   0.9,  # lr, decay
              0.01,
              lc)  # done
          """,
      """\
          import tensorflow as tf  # tf
          import kfac
          opt = kfac.optimizer.KfacOptimizer(  # the optimizer
              0.1,   0.9,  # lr, decay
              0.01,
              lc)  # done
          """,
    ),
    (
      "kfac02_keywords_one_line",
      """\
          import kfac
          opt = kfac.KfacOptimizer(learning_rate=0.1, damping=0.01, layer_collection=lc)
          """,
      """\
          import kfac
          opt = kfac.optimizer.KfacOptimizer(learning_rate=0.1, damping=0.01, layer_collection=lc, cov_ema_decay=0.95, momentum=0.9, momentum_type="adam", colocate_gradients_with_ops=True)
          """,
    ),
    (
      "kfac02_from_import",
      """\
          from kfac import LayerCollection, KfacOptimizer
          lc = LayerCollection()
          """,
      """\
          from kfac.layer_collection import LayerCollection
          from kfac.optimizer import KfacOptimizer
          lc = LayerCollection()
          """,
    ),
    (
      "kfac02_regular_momentum_kept",
      """\
          import kfac
          opt = kfac.KfacOptimizer(learning_rate=0.1, cov_ema_decay=0.9, damping=0.01, layer_collection=lc, momentum=0.5, momentum_type="regular")
          """,
      """\
          import kfac
          opt = kfac.optimizer.KfacOptimizer(learning_rate=0.1, cov_ema_decay=0.9, damping=0.01, layer_collection=lc, momentum=0.5, momentum_type="regular", colocate_gradients_with_ops=True)
          """,
    ),
    (
      "kfac02_multiline_comments_kept",
      """\
          import kfac
          opt = kfac.KfacOptimizer(
              learning_rate=0.05,  # lr
              damping=0.01,
              layer_collection=lc,
              colocate_gradients_with_ops=False,
              var_list=None,  # all trainable variables
              estimation_mode="empirical",  # last
          )
          """,
      """\
          import kfac
          opt = kfac.optimizer.KfacOptimizer(
              learning_rate=0.05,  # lr
              damping=0.01,
              layer_collection=lc,
              colocate_gradients_with_ops=False,
              var_list=None,  # all trainable variables
              estimation_mode="empirical",  # last
              cov_ema_decay=0.95,
              momentum=0.9,
              momentum_type="adam",
          )
          """,
    ),
    (
      "kfac02_cmvp_and_ggn",
      """\
          from kfac import CurvatureMatrixVectorProductComputer as CMVP
          products = CMVP(layer_collection=lc, wrt_tensors=params)
          a = products.multiply_ggn(v)
          for loss in lc.losses:
            b = loss.multiply_ggn_factor(v)
            c = loss.ggn_factor_inner_shape
          """,
      """\
          from kfac.curvature_matrix_vector_products import CurvatureMatrixVectorProductComputer as CMVP
          products = CMVP(losses=lc.losses, wrt_tensors=params)
          a = products.multiply_generalized_gauss_newton(v)
          for loss in lc.losses:
            b = loss.multiply_hessian_factor(v)
            c = loss.hessian_factor_inner_shape
          """,
    ),
  )
  def test_rewrite(self, source, expected):
    result = _upgrade(source)
    self.assertEqual(result.source, textwrap.dedent(expected))
    self.assertEmpty(result.attention)
    again = upgrade.upgrade_source(result.source)
    self.assertFalse(again.changed)

  @parameterized.named_parameters(
    (
      "no_kfac",
      """\
          import tensorflow as tf   # odd   spacing
          x = tf.contrib.layers.flatten( y )  ;  z = 1
          """,
    ),
    (
      "upgraded_14_program",
      """\
          import kfac
          opt = kfac.optimizer.KfacOptimizer(0.1, 0.95, 0.01, lc)
          """,
    ),
    (
      "kfac_in_strings_and_comments",
      """\
          # tf.contrib.kfac.utils is mentioned here
          doc = "tf.contrib.kfac.utils"
          """,
    ),
  )
  def test_unchanged(self, source):
    result = _upgrade(source)
    self.assertEqual(result.source, textwrap.dedent(source))
    self.assertFalse(result.changed)
    self.assertEmpty(result.changes)
    self.assertEmpty(result.attention)

  def test_bytes_keep_crlf_and_encoding(self):
    source = (
      "# -*- coding: latin-1 -*-\r\n"
      "import tensorflow as tf\r\n"
      "s = 'caf\xe9'\r\n"
      "u = tf.contrib.kfac.utils\r\n"
    ).encode("latin-1")
    result = upgrade.upgrade_source(source)
    self.assertEqual(
      result.source,
      (
        "# -*- coding: latin-1 -*-\r\n"
        "import tensorflow as tf\r\n"
        "import kfac\r\n"
        "s = 'caf\xe9'\r\n"
        "u = kfac.utils\r\n"
      ).encode("latin-1"),
    )

  def test_kfac_name_taken(self):
    source = """\
        import tensorflow as tf
        kfac = 3
        u = tf.contrib.kfac.utils
        """
    result = _upgrade(source)
    self.assertEqual(result.source, textwrap.dedent(source))
    self.assertLen(result.attention, 1)
    self.assertEqual(result.attention[0].line, 3)
    self.assertIn("`kfac` means something else", result.attention[0].message)

  def test_unmappable_legacy_reference_reported(self):
    source = """\
        import tensorflow as tf
        p = tf.contrib.kfac.python
        """
    result = _upgrade(source)
    self.assertEqual(result.source, textwrap.dedent(source))
    self.assertEqual([f.line for f in result.attention], [2])

  def test_kfac02_positional_optimizer_not_guessed(self):
    result = _upgrade("""\
        import kfac
        opt = kfac.KfacOptimizer(0.1, 0.01, lc)
        """)
    self.assertIn("kfac.optimizer.KfacOptimizer(0.1, 0.01, lc)", result.source)
    self.assertLen(result.attention, 1)
    self.assertIn("0.2.x order", result.attention[0].message)

  def test_kfac02_imports_without_counterpart(self):
    result = _upgrade("""\
        import os

        from kfac import PeriodicInvCovUpdateKfacOpt, LayerCollection
        import kfac.python.keras as kk
        """)
    self.assertEqual(
      result.source,
      textwrap.dedent("""\
        import os

        from kfac import PeriodicInvCovUpdateKfacOpt
        from kfac.layer_collection import LayerCollection
        import kfac.python.keras as kk
        """),
    )
    self.assertEqual(
      [
        (
          f.line,
          "PeriodicInvCovUpdateKfacOpt" in f.message,
          "keras" in f.message,
        )
        for f in result.attention
      ],
      [(3, True, False), (4, False, True)],
    )

  def test_syntax_error(self):
    with self.assertRaises(upgrade.UpgradeError) as cm:
      upgrade.upgrade_source("import tensorflow as tf\nx = (\n", "prog.py")
    self.assertEqual(cm.exception.filename, "prog.py")
    self.assertEqual(cm.exception.lineno, 2)
    self.assertIn("prog.py:2", str(cm.exception))


class CommandLineTest(parameterized.TestCase):
  """`main()`: files, trees, stdin, --check, reports, errors."""

  def setUp(self):
    super().setUp()
    self.dir = sandbox.temp_dir(self, "kfac_upgrade_test_")

  def _write(self, relpath, text):
    return sandbox.write_file(self.dir, relpath, text)

  def test_file_in_place_with_report(self):
    path = self._write("prog.py", corpus.read(corpus.program("mlp_chain")))
    os.chmod(path, 0o750)
    status, out, err = _run_main([path])
    self.assertEqual(status, 0, err)
    self.assertEqual(corpus.read(path), corpus.expected("mlp_chain"))
    self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o750)
    self.assertEqual(sorted(os.listdir(self.dir)), ["prog.py"])  # no temp
    report = out.decode()
    self.assertIn("%s: changed" % path, report)
    self.assertIn(
      "line 32: `tf.contrib.kfac.layer_collection.LayerCollection`"
      " -> `kfac.layer_collection.LayerCollection`",
      report,
    )
    self.assertIn("added `import kfac`", report)

  def test_check_exit_codes(self):
    legacy = self._write(
      "legacy.py", corpus.read(corpus.program("generic_module_alias"))
    )
    done = self._write("done.py", corpus.expected("generic_module_alias"))
    other = self._write("other.py", "import os\n")
    status, out, _ = _run_main(["--check", legacy, done, other])
    self.assertEqual(status, 1)
    self.assertIn("%s: would change" % legacy, out.decode())
    self.assertEqual(
      corpus.read(legacy), corpus.read(corpus.program("generic_module_alias"))
    )
    status, _, _ = _run_main(["--check", done, other])
    self.assertEqual(status, 0)
    status, _, _ = _run_main([legacy])
    self.assertEqual(status, 0)
    status, _, _ = _run_main(["--check", legacy])
    self.assertEqual(status, 0)

  def test_tree(self):
    a = self._write(
      "pkg/a.py", corpus.read(corpus.program("convnet_from_import"))
    )
    b = self._write(
      "pkg/sub/b.py", corpus.read(corpus.program("bernoulli_class_import"))
    )
    hidden = self._write(
      "pkg/.hidden/c.py", corpus.read(corpus.program("mlp_chain"))
    )
    cache = self._write(
      "pkg/__pycache__/d.py", corpus.read(corpus.program("mlp_chain"))
    )
    text = self._write("pkg/notes.txt", "tf.contrib.kfac\n")
    status, out, _ = _run_main([os.path.join(self.dir, "pkg")])
    self.assertEqual(status, 0)
    self.assertEqual(corpus.read(a), corpus.expected("convnet_from_import"))
    self.assertEqual(corpus.read(b), corpus.expected("bernoulli_class_import"))
    for untouched in (hidden, cache):
      self.assertEqual(
        corpus.read(untouched), corpus.read(corpus.program("mlp_chain"))
      )
    self.assertEqual(corpus.read(text), b"tf.contrib.kfac\n")
    self.assertIn("2 file(s) scanned, 2 changed", out.decode())

  def test_symlink_kept(self):
    target = self._write(
      "real/prog.py", corpus.read(corpus.program("mlp_chain"))
    )
    link = os.path.join(self.dir, "link.py")
    os.symlink(target, link)
    status, _, err = _run_main([link])
    self.assertEqual(status, 0, err)
    self.assertTrue(os.path.islink(link))
    self.assertEqual(corpus.read(target), corpus.expected("mlp_chain"))

  def test_stdin_to_stdout(self):
    status, out, err = _run_main(
      ["-"], stdin=corpus.read(corpus.program("mlp_chain"))
    )
    self.assertEqual(status, 0)
    self.assertEqual(out, corpus.expected("mlp_chain"))
    self.assertIn("<stdin>: changed", err)

  def test_stdin_check(self):
    status, out, _ = _run_main(
      ["--check", "-"], stdin=corpus.read(corpus.program("mlp_chain"))
    )
    self.assertEqual(status, 1)
    self.assertEqual(out, b"")

  def test_syntax_error_leaves_file_untouched(self):
    source = b"import tensorflow as tf\nu = tf.contrib.kfac.utils\ndef f(:\n"
    bad = self._write("bad.py", source)
    good = self._write("good.py", corpus.read(corpus.program("mlp_chain")))
    status, _, err = _run_main([bad, good])
    self.assertEqual(status, 2)
    self.assertIn("%s:3: syntax error" % bad, err)
    self.assertIn("left untouched", err)
    self.assertEqual(corpus.read(bad), source)
    self.assertEqual(corpus.read(good), corpus.expected("mlp_chain"))
    self.assertEqual(sorted(os.listdir(self.dir)), ["bad.py", "good.py"])

  def test_syntax_error_on_stdin_echoes_input(self):
    status, out, err = _run_main(["-"], stdin=b"x = (\n")
    self.assertEqual(status, 2)
    self.assertEqual(out, b"x = (\n")
    self.assertIn("<stdin>:1", err)

  def test_missing_path(self):
    status, _, err = _run_main([os.path.join(self.dir, "nope.py")])
    self.assertEqual(status, 2)
    self.assertIn("no such file", err)

  def test_needs_a_human_in_report(self):
    path = self._write(
      "old.py", corpus.read(corpus.program("kfac02_unconvertible"))
    )
    status, out, _ = _run_main([path])
    self.assertEqual(status, 0)
    report = out.decode()
    self.assertIn(
      "NEEDS A HUMAN, line 18: KfacOptimizer called positionally", report
    )
    self.assertIn("1 need a human", report)

  def test_unwritable_file_is_an_error(self):
    bad = self._write("a_bad.py", corpus.read(corpus.program("mlp_chain")))
    good = self._write("b_good.py", corpus.read(corpus.program("mlp_chain")))
    real_write = _cli._write_atomically

    def write(path, data):
      if path == bad:
        raise PermissionError(13, "Permission denied", path)
      real_write(path, data)

    with mock.patch.object(_cli, "_write_atomically", side_effect=write):
      status, out, err = _run_main([bad, good])
    self.assertEqual(status, 2)
    self.assertIn("%s: cannot write: " % bad, err)
    self.assertNotIn("%s: changed" % bad, out.decode())
    self.assertIn(
      "2 file(s) scanned, 1 changed, 0 need a human, 1 could not be written",
      out.decode(),
    )
    self.assertEqual(corpus.read(bad), corpus.read(corpus.program("mlp_chain")))
    self.assertEqual(corpus.read(good), corpus.expected("mlp_chain"))

  @pytest.mark.slow
  def test_help_and_check_import_no_tensorflow(self):
    path = self._write(
      "prog.py", corpus.read(corpus.program("opqueue_lib_forms"))
    )
    code = textwrap.dedent("""\
        import contextlib, io, sys
        blocked = sys.argv[2] == "blocked"
        if blocked:  # As if TensorFlow were not installed.
          sys.modules["tensorflow"] = None
        from kfac.upgrade import main
        with contextlib.redirect_stdout(io.StringIO()):
          try:
            main(["--help"])
          except SystemExit as e:
            assert e.code == 0, e.code
          status = main(["--check", sys.argv[1]])
        assert status == 1, status
        loaded = sys.modules.get("tensorflow") is not None
        print(loaded, "kfac.utils" in sys.modules)
        """)
    for mode in ("plain", "blocked"):
      proc = sandbox.run_python(code, path, mode, cwd=_REPO, timeout=60)
      self.assertEqual(proc.returncode, 0, proc.stderr)
      self.assertEqual(proc.stdout.split(), ["False", "False"], mode)

  @pytest.mark.slow
  def test_module_entry_point(self):
    # What the `kfac-upgrade` console script runs (`kfac.upgrade:main`).
    path = self._write(
      "prog.py", corpus.read(corpus.program("opqueue_lib_forms"))
    )
    proc = subprocess.run(
      [sys.executable, "-m", "kfac.upgrade", "--check", path],
      cwd=_REPO,
      capture_output=True,
      timeout=120,
      check=False,
    )
    self.assertEqual(proc.returncode, 1, proc.stderr.decode())
    self.assertIn(b"would change", proc.stdout)


@pytest.mark.slow
class UpgradedProgramsRunTest(parameterized.TestCase):
  """The upgraded TF 1.4 corpus runs a few steps under TF 2.x."""

  results = None
  tf2_report = None

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tmp = tempfile.mkdtemp(prefix="kfac_upgrade_run_")
    paths = []
    for name in _TF14_PROGRAMS:
      path = os.path.join(cls.tmp, name + ".py")
      shutil.copyfile(corpus.program(name), path)
      paths.append(path)
    tf1 = os.path.join(cls.tmp, "tf1_style.py")
    status, out, err = _run_main([p for p in paths if p != tf1])
    assert status == 0, err
    status, out, err = _run_main(["--also-tf2", tf1])
    cls.tf2_status = status
    cls.tf2_report = out.decode() + err
    cls.results, cls.output = corpus.run_programs(paths, cwd=cls.tmp)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.tmp, ignore_errors=True)
    super().tearDownClass()

  def test_also_tf2(self):
    self.assertEqual(self.tf2_status, 0, self.tf2_report)
    with open(os.path.join(self.tmp, "tf1_style.py")) as f:
      text = f.read()
    self.assertIn("kfac.optimizer.KfacOptimizer(", text)
    self.assertIn("tf.compat.v1.placeholder(", text)
    self.assertIn("tf.compat.v1.Session()", text)
    self.assertNotIn("contrib", _names(text.encode()))
    self.assertIn("tf_upgrade_v2", self.tf2_report)

  @parameterized.named_parameters((name, name) for name in _TF14_PROGRAMS)
  def test_runs(self, name):
    self.assertIn(name, self.results, self.output[-3000:])
    result = self.results[name]
    self.assertTrue(result["ok"], result.get("error"))


class Tf2FindingsTest(parameterized.TestCase):
  """`--also-tf2` reports what tf_upgrade_v2 leaves that TF 2.16+ rejects."""

  @parameterized.named_parameters(
    (
      "tf_layers",
      "import tensorflow as tf\nimport kfac\n"
      "tf.compat.v1.disable_eager_execution()\n"
      "d = tf.compat.v1.layers.Dense(3)\n",
      [4],
    ),
    (
      "v1_alias",
      "import tensorflow.compat.v1 as tf\nimport kfac\n"
      "tf.disable_v2_behavior()\nc = tf.layers.conv2d\n",
      [4],
    ),
    (
      "from_import",
      "from tensorflow.compat.v1 import layers as L\nx = L.Dense\n",
      [2],
    ),
    (
      "no_layers",
      "import tensorflow as tf\nimport kfac\n"
      "with tf.Graph().as_default():\n  pass\n",
      [],
    ),
    (
      "keras_is_fine",
      "import tensorflow as tf\nimport kfac\n"
      "tf.compat.v1.disable_eager_execution()\n"
      "d = tf.keras.layers.Dense(3)\n",
      [],
    ),
  )
  def test_layers(self, source, lines):
    self.assertEqual([f.line for f in upgrade.tf2_findings(source)], lines)

  def test_graph_mode(self):
    eager = "import tensorflow as tf\nimport kfac\nx = tf.constant(1)\n"
    findings = upgrade.tf2_findings(eager)
    self.assertEqual([f.line for f in findings], [0])
    self.assertIn("disable_eager_execution", findings[0].message)
    # A program without kfac is none of kfac-upgrade's business.
    self.assertEqual(upgrade.tf2_findings("import tensorflow as tf\n"), [])

  def _upgrade_layers_program(self, flags):
    """Upgrades a copy of the `tf1_layers_eager` program; (path, report).

    Checks that it succeeds, flagging the module and one change.
    """
    tmp = sandbox.temp_dir(self, "kfac_upgrade_tf2_")
    path = os.path.join(tmp, "prog.py")
    shutil.copyfile(corpus.program("tf1_layers_eager"), path)
    status, out, err = _run_main(flags + [path])
    report = out.decode() + err
    self.assertEqual(status, 0, report)
    self.assertIn(
      "NEEDS A HUMAN for TensorFlow 2.x, module: kfac builds graph ops", report
    )
    self.assertIn("1 changed, 1 need a human", report)
    return path, report

  def test_cli_reports_them(self):
    path, report = self._upgrade_layers_program(["--also-tf2"])
    with open(path) as f:
      line = [
        i
        for i, text in enumerate(f.read().splitlines(), 1)
        if "tf.layers.Dense(" in text
      ][0]
    self.assertIn(
      "NEEDS A HUMAN for TensorFlow 2.x, line %d of the result: "
      "`tf.layers.Dense` needs Keras 2" % line,
      report,
    )

  def test_reported_without_also_tf2(self):
    _, report = self._upgrade_layers_program([])
    self.assertIn("`tf.layers.Dense` needs Keras 2", report)
    self.assertIn("TF_USE_LEGACY_KERAS=1", report)

  @parameterized.named_parameters(
    ("shape_index", "n = x.shape[1].value\n", ["x.shape[1]"]),
    ("get_shape", "n = x.get_shape()[-1].value\n", ["x.get_shape()[-1]"]),
    ("dims", "n = x.shape.dims[0].value\n", ["x.shape.dims[0]"]),
    (
      "dimension_call",
      "n = tf.compat.v1.Dimension(3).value\n",
      ["tf.compat.v1.Dimension(3)"],
    ),
    (
      "two",
      "a = x.shape[0].value\nb = y.shape[1].value\n",
      ["x.shape[0]", "y.shape[1]"],
    ),
    ("other_value", "n = counter.value\nm = d['k'].value\n", []),
    ("no_value", "n = x.shape[1]\n", []),
  )
  def test_dimension_value(self, body, dims):
    source = (
      "import tensorflow as tf\nimport kfac\n"
      "tf.compat.v1.disable_eager_execution()\n" + body
    )
    findings = upgrade.tf2_findings(source)
    self.assertLen(findings, len(dims))
    for finding, dim in zip(findings, dims):
      self.assertIn("`tf.compat.v1.dimension_value(%s)`" % dim, finding.message)
    self.assertEqual([f.line for f in findings], list(range(4, 4 + len(dims))))


class SurfaceTableTest(parameterized.TestCase):
  """The one surface table, against the spec copy and the modules."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    with open(
      os.path.join(_HERE, "data", "api_surface.md"), encoding="utf-8"
    ) as f:
      cls.spec = f.read()

  def _spec_section(self, name):
    header = "## `tf.contrib.kfac.%s` (" % name
    start = self.spec.index(header)
    end = self.spec.find("\n## ", start + 1)
    return self.spec[start : end if end >= 0 else None]

  @parameterized.named_parameters((m, m) for m in _surface.MODULES)
  def test_module_names_match_spec(self, module):
    section = self._spec_section(module)
    names = set()
    for line in section.splitlines():
      if line.startswith("- ") and ":" in line:
        names.update(n.strip("` ") for n in line.split(":", 1)[1].split(","))
    self.assertEqual(set(_surface.public_names("1.4", module)), names)
    self.assertEqual(_tables.SURFACE_14[module], names)

  @parameterized.named_parameters((m, m) for m in _surface.MODULES)
  def test_module_defines_what_the_table_lists(self, module):
    # Each module's `__all__` is read from the table; hold the table against
    # what the module defines: every 1.4 name exists, and every public class
    # or function the module itself writes is a public name of some release.
    import importlib  # pylint: disable=import-outside-toplevel
    import inspect  # pylint: disable=import-outside-toplevel

    mod = importlib.import_module("kfac." + module)
    table = _surface.public_names("1.4", module)
    self.assertEqual(set(mod.__all__), set(table))
    self.assertEmpty([n for n in sorted(table) if not hasattr(mod, n)])
    written = {
      name
      for name, value in vars(mod).items()
      if not name.startswith("_")
      and (inspect.isclass(value) or inspect.isfunction(value))
      and value.__module__ == mod.__name__
    }
    released = set().union(
      *(_surface.public_names(r, module) for r in _surface.RELEASES)
    )
    self.assertEmpty(sorted(written - released))

  @parameterized.named_parameters(
    (q.replace(".", "_"), q) for q in _surface.RELEASES["1.4"].signatures
  )
  def test_signatures_match_spec(self, qualname):
    module, cls, method = qualname.split(".")
    section = self._spec_section("%s.%s" % (module, cls))
    text = _surface.RELEASES["1.4"].signatures[qualname]
    self.assertIn("- `%s( %s )`" % (method, text), section)

  def test_upgrader_parameter_tables(self):
    self.assertEqual(
      _tables.OPTIMIZER_PARAMS_14,
      (
        "learning_rate",
        "cov_ema_decay",
        "damping",
        "layer_collection",
        "momentum",
        "momentum_type",
        "norm_constraint",
        "name",
      ),
    )
    self.assertEqual(
      _tables.ESTIMATOR_PARAMS_14,
      (
        "variables",
        "cov_ema_decay",
        "damping",
        "layer_collection",
        "estimation_mode",
      ),
    )
    self.assertEqual(
      _tables.REGISTER_PARAMS_14["register_conv2d"],
      ("params", "strides", "padding", "inputs", "outputs", "approx"),
    )
    self.assertLen(_tables.REGISTER_PARAMS_14, 6)

  def test_keyword_only_extras_match_the_optimizer(self):
    import inspect  # pylint: disable=import-outside-toplevel
    from kfac import optimizer  # pylint: disable=import-outside-toplevel

    params = inspect.signature(optimizer.KfacOptimizer.__init__).parameters
    keyword_only = tuple(
      n for n, p in params.items() if p.kind == inspect.Parameter.KEYWORD_ONLY
    )
    self.assertEqual(
      _surface.KFAC_KEYWORD_ONLY["optimizer.KfacOptimizer.__init__"],
      keyword_only,
    )

  def test_later_releases_are_changes(self):
    self.assertEqual(
      sorted(_surface.RELEASES, key=lambda v: int(v[2:])),
      ["1.4", "1.5", "1.6", "1.7", "1.8", "1.9", "1.10"],
    )
    self.assertNotIn("setdefault", _surface.public_names("1.5", "utils"))
    self.assertIn(
      "VARIABLE_SCOPE", _surface.public_names("1.5", "layer_collection")
    )
    self.assertIn(
      "maybe_colocate_with", _surface.public_names("1.7", "fisher_factors")
    )
    self.assertNotIn(
      "maybe_colocate_with", _surface.public_names("1.8", "fisher_factors")
    )
    self.assertEqual(
      _surface.RELEASES["1.10"].names, _surface.RELEASES["1.9"].names
    )


if __name__ == "__main__":
  absltest.main()
