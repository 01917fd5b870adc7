"""Tests for `kfac.install_tf_contrib_alias()`.

The alias changes process-wide state (`tf.contrib`, `sys.modules`), so every
check runs in a fresh subprocess: one installs the alias, checks the import
forms and then runs the unmodified TF 1.4 corpus programs of
`tests/data/legacy_programs/`; one checks that a foreign `tf.contrib` is never
replaced.
"""

import json
import textwrap

from absl.testing import absltest
from absl.testing import parameterized
import pytest

import legacy_corpus as corpus
import kfac
from kfac import _contrib_alias

_PROGRAMS = corpus.COMPAT_V1_PROGRAMS

_ALIAS_SCRIPT = textwrap.dedent("""\
    import json, os, warnings
    import tensorflow as tf
    if os.environ.get("KFAC_TF_MODE") == "v1":
      # The suite's TF1 pass: run the corpus as TF1 programs would.
      tf.compat.v1.disable_v2_behavior()
    import kfac

    checks = {}
    checks["absent_before"] = getattr(tf, "contrib", None) is None
    checks["first_call"] = kfac.install_tf_contrib_alias()
    checks["second_call"] = kfac.install_tf_contrib_alias()
    checks["tf_contrib_kfac"] = tf.contrib.kfac is kfac
    checks["compat_v1"] = tf.compat.v1.contrib.kfac is kfac
    checks["same_contrib"] = tf.contrib is tf.compat.v1.contrib
    import tensorflow.contrib.kfac as K
    checks["import_as"] = K is kfac
    from tensorflow.contrib import kfac as K2
    checks["from_contrib"] = K2 is kfac
    from tensorflow.contrib.kfac import layer_collection
    checks["from_package"] = layer_collection is kfac.layer_collection
    from tensorflow.contrib.kfac.python.ops import fisher_factors as ff
    from tensorflow.contrib.kfac.python.ops import optimizer_lib
    checks["from_ops"] = (ff is kfac.fisher_factors and
                          optimizer_lib is kfac.optimizer)
    from tensorflow.contrib.kfac.python.ops.layer_collection import (
        LayerCollection)
    from tensorflow.contrib.kfac.python.ops.loss_functions_lib import (
        CategoricalLogitsNegativeLogProbLoss)
    checks["from_module"] = (
        LayerCollection is kfac.layer_collection.LayerCollection and
        CategoricalLogitsNegativeLogProbLoss is
        kfac.loss_functions.CategoricalLogitsNegativeLogProbLoss)
    import tensorflow.contrib.kfac.python.ops.op_queue_lib as oq
    checks["import_lib_as"] = oq is kfac.op_queue
    import tensorflow.contrib.kfac.python.ops.utils
    checks["plain_import_chain"] = (
        tensorflow.contrib.kfac.python.ops.utils is kfac.utils)
    try:
      import tensorflow.contrib.slim  # Only kfac is provided.
      checks["other_contrib_missing"] = False
    except ImportError:
      checks["other_contrib_missing"] = True
    print("CHECKS " + json.dumps(checks), flush=True)
    """)

_FOREIGN_SCRIPT = textwrap.dedent("""\
    import json, types, warnings
    import tensorflow as tf
    import kfac

    checks = {}
    foreign = types.ModuleType("tensorflow.contrib")
    foreign.slim = "slim"
    tf.contrib = foreign
    checks["with_foreign"] = kfac.install_tf_contrib_alias()
    checks["not_replaced"] = tf.contrib is foreign
    checks["kfac_added"] = tf.contrib.kfac is kfac
    checks["slim_kept"] = tf.contrib.slim == "slim"

    taken = types.ModuleType("tensorflow.contrib")
    taken.kfac = "someone else's kfac"
    tf.contrib = taken
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      checks["with_foreign_kfac"] = kfac.install_tf_contrib_alias()
    checks["foreign_kfac_kept"] = tf.contrib.kfac == "someone else's kfac"
    checks["warned"] = any("left in place" in str(w.message) for w in caught)
    print("CHECKS " + json.dumps(checks), flush=True)
    """)


def _run(script, paths=()):
  """Runs `script`, then the programs at `paths`; returns its CHECKS too."""
  results, output = corpus.run_programs(paths, prelude=script)
  checks = None
  for line in output.splitlines():
    if line.startswith("CHECKS "):
      checks = json.loads(line[len("CHECKS ") :])
  return checks, results, output


class PackageTest(absltest.TestCase):
  def test_exported_and_documented(self):
    self.assertIs(
      kfac.install_tf_contrib_alias, _contrib_alias.install_tf_contrib_alias
    )
    doc = kfac.install_tf_contrib_alias.__doc__
    self.assertIn("Returns:", doc)
    self.assertIn("tf.contrib.kfac", doc)


@pytest.mark.slow
class AliasTest(parameterized.TestCase):
  """The alias in a fresh process; the unmodified corpus runs with it."""

  checks = None
  results = None

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    paths = [corpus.program(name) for name in _PROGRAMS]
    cls.checks, cls.results, cls.output = _run(_ALIAS_SCRIPT, paths)

  @parameterized.named_parameters(
    ("absent_before", "absent_before"),
    ("first_call", "first_call"),
    ("second_call", "second_call"),
    ("tf_contrib_kfac", "tf_contrib_kfac"),
    ("compat_v1", "compat_v1"),
    ("same_contrib", "same_contrib"),
    ("import_as", "import_as"),
    ("from_contrib", "from_contrib"),
    ("from_package", "from_package"),
    ("from_ops", "from_ops"),
    ("from_module", "from_module"),
    ("import_lib_as", "import_lib_as"),
    ("plain_import_chain", "plain_import_chain"),
    ("other_contrib_missing", "other_contrib_missing"),
  )
  def test_check(self, key):
    self.assertIsNotNone(self.checks, self.output[-3000:])
    self.assertTrue(self.checks[key], key)

  @parameterized.named_parameters((name, name) for name in _PROGRAMS)
  def test_legacy_program_runs_unmodified(self, name):
    self.assertIn(name, self.results, self.output[-3000:])
    result = self.results[name]
    self.assertTrue(result["ok"], result.get("error"))


class ForeignContribTest(absltest.TestCase):
  @pytest.mark.slow
  def test_foreign_contrib_never_replaced(self):
    checks, _, output = _run(_FOREIGN_SCRIPT)
    self.assertIsNotNone(checks, output[-3000:])
    self.assertEqual(
      checks,
      {
        "with_foreign": True,
        "not_replaced": True,
        "kfac_added": True,
        "slim_kept": True,
        "with_foreign_kfac": False,
        "foreign_kfac_kept": True,
        "warned": True,
      },
    )


if __name__ == "__main__":
  absltest.main()
