"""Tests for docs/migration.md: its worked examples run, its facts hold.

The "after" programs of the guide are executed as written (each builds its own
`tf.Graph()`); the tables' claims about `kfac` (names, signature, defaults)
are checked against the package.
"""

import contextlib
import importlib
import inspect
import io
import os
import re

from absl.testing import absltest
from absl.testing import parameterized

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDE = os.path.join(REPO, 'docs', 'migration.md')

_EXAMPLE_RE = re.compile(
  r'<!-- migration-example: (\S+) -->\n```python\n(.*?)\n```\n', re.DOTALL
)


def _guide():
  with open(GUIDE, encoding='utf-8') as f:
    return f.read()


def _examples():
  return dict(_EXAMPLE_RE.findall(_guide()))


def _kfac_has(*modules):
  kfac = importlib.import_module('kfac')
  return all(hasattr(kfac, m) for m in modules)


def _resolve(dotted):
  parts = dotted.split('.')
  obj = importlib.import_module(parts[0])
  for part in parts[1:]:
    obj = getattr(obj, part)
  return obj


class GuideStructureTest(absltest.TestCase):
  def test_four_examples(self):
    self.assertEqual(
      sorted(_examples()),
      [
        'after-contrib',
        'after-pypi',
        'before-contrib',
        'before-pypi',
        'restore-by-structure',
      ],
    )

  def test_before_and_after_use_the_right_names(self):
    examples = _examples()
    self.assertIn(
      'tf.contrib.kfac.optimizer.KfacOptimizer(', examples['before-contrib']
    )
    self.assertIn('kfac.KfacOptimizer(', examples['before-pypi'])
    self.assertIn('make_vars_and_create_op_thunks', examples['before-pypi'])
    for name in ('after-contrib', 'after-pypi'):
      code = examples[name]
      self.assertNotRegex(code, r'tf\.contrib\.kfac\.\w')
      self.assertNotRegex(
        code,
        r'\btf\.(placeholder|get_variable|Session|'
        r'global_variables_initializer)\b',
      )
      self.assertIn('kfac.optimizer.KfacOptimizer(', code)
      self.assertIn('tf.Graph().as_default()', code)

  def test_examples_compile(self):
    for name, code in _examples().items():
      compile(code, name, 'exec')


class GuideFactsTest(parameterized.TestCase):
  """The guide's statements about `kfac` hold for the package."""

  def setUp(self):
    super().setUp()
    if not _kfac_has(
      'optimizer',
      'layer_collection',
      'fisher_factors',
      'fisher_blocks',
      'estimator',
      'loss_functions',
    ):
      self.fail('kfac does not expose all legacy modules')

  def test_kfac_names_in_guide_exist(self):
    names = set(
      re.findall(
        r'\bkfac\.(?:curvature_matrix_vector_products|estimator|'
        r'fisher_blocks|fisher_factors|layer_collection|loss_functions|'
        r'op_queue|optimizer|utils|checkpoint)(?:\.\w+)*',
        _guide(),
      )
    )
    self.assertNotEmpty(names)
    for name in sorted(names):
      _resolve(name)

  @parameterized.named_parameters(
    (
      'categorical',
      'kfac.layer_collection.LayerCollection',
      'register_categorical_predictive_distribution',
    ),
    (
      'fully_connected',
      'kfac.layer_collection.LayerCollection',
      'register_fully_connected',
    ),
    ('conv2d', 'kfac.layer_collection.LayerCollection', 'register_conv2d'),
    (
      'damped_inverse',
      'kfac.fisher_factors.InverseProvidingFactor',
      'register_damped_inverse',
    ),
    (
      'cov_update',
      'kfac.fisher_factors.FisherFactor',
      'make_covariance_update_op',
    ),
    ('hessian', 'kfac.loss_functions.LossFunction', 'multiply_hessian'),
    (
      'hessian_factor',
      'kfac.loss_functions.LossFunction',
      'multiply_hessian_factor',
    ),
    (
      'hessian_shape',
      'kfac.loss_functions.LossFunction',
      'hessian_factor_inner_shape',
    ),
  )
  def test_member_exists(self, owner, member):
    self.assertTrue(hasattr(_resolve(owner), member))

  @parameterized.named_parameters(
    (
      'register_conv2d',
      'kfac.layer_collection.LayerCollection.register_conv2d',
      ['params', 'strides', 'padding', 'inputs', 'outputs', 'approx'],
    ),
    (
      'register_fully_connected',
      'kfac.layer_collection.LayerCollection.register_fully_connected',
      ['params', 'inputs', 'outputs', 'approx'],
    ),
    (
      'make_covariance_update_op',
      'kfac.fisher_factors.FisherFactor.make_covariance_update_op',
      ['ema_decay'],
    ),
    (
      'fc_block',
      'kfac.fisher_blocks.FullyConnectedKFACBasicFB.__init__',
      ['layer_collection', 'inputs', 'outputs', 'has_bias'],
    ),
    (
      'conv_block',
      'kfac.fisher_blocks.ConvKFCBasicFB.__init__',
      ['layer_collection', 'params', 'inputs', 'outputs', 'strides', 'padding'],
    ),
    (
      'estimator',
      'kfac.estimator.FisherEstimator.__init__',
      [
        'variables',
        'cov_ema_decay',
        'damping',
        'layer_collection',
        'estimation_mode',
      ],
    ),
    (
      'cmvp',
      'kfac.curvature_matrix_vector_products.'
      'CurvatureMatrixVectorProductComputer.__init__',
      ['losses', 'wrt_tensors'],
    ),
  )
  def test_leading_parameters(self, name, expected):
    params = [
      p for p in inspect.signature(_resolve(name)).parameters if p != 'self'
    ]
    self.assertEqual(params[: len(expected)], expected)

  def test_optimizer_signature_as_printed(self):
    match = re.search(
      r'# kfac\n(KfacOptimizer\(.*?\))\n```', _guide(), re.DOTALL
    )
    self.assertIsNotNone(match)
    printed = re.sub(r'\s+', '', match.group(1)).replace('"', "'")
    from kfac import optimizer

    signature = inspect.signature(optimizer.KfacOptimizer.__init__)
    signature = signature.replace(
      parameters=list(signature.parameters.values())[1:]
    )
    actual = 'KfacOptimizer%s' % signature
    self.assertEqual(printed, re.sub(r'\s+', '', actual))

  def test_default_constants(self):
    from kfac import fisher_factors

    self.assertIs(fisher_factors.INIT_COVARIANCES_AT_ZERO, False)
    self.assertIs(fisher_factors.ZERO_DEBIAS, False)

  def test_no_top_level_classes(self):
    kfac = importlib.import_module('kfac')
    for name in (
      'LayerCollection',
      'KfacOptimizer',
      'CurvatureMatrixVectorProductComputer',
    ):
      self.assertFalse(hasattr(kfac, name), name)


class ToolsTest(absltest.TestCase):
  """The upgrade tool and the alias do what the guide says."""

  def test_upgrade_rewrites_before_contrib(self):
    upgrade = importlib.import_module('kfac.upgrade')
    result = upgrade.upgrade_source(_examples()['before-contrib'])
    self.assertTrue(result.changed)
    self.assertNotRegex(result.source, r'tf\.contrib\.kfac')
    self.assertIn('import kfac', result.source)
    self.assertIn('kfac.layer_collection.LayerCollection()', result.source)
    self.assertIn('kfac.optimizer.KfacOptimizer(', result.source)

  def test_alias_exists(self):
    kfac = importlib.import_module('kfac')
    self.assertTrue(hasattr(kfac, 'install_tf_contrib_alias'))
    self.assertTrue(callable(kfac.install_tf_contrib_alias))


class WorkedExamplesTest(parameterized.TestCase):
  """The "after" programs run as written and train."""

  @parameterized.named_parameters(
    ('from_contrib', 'after-contrib'), ('from_pypi', 'after-pypi')
  )
  def test_example_runs(self, name):
    if not _kfac_has('optimizer', 'layer_collection'):
      self.fail('kfac.optimizer / kfac.layer_collection not exposed')
    namespace = {'__name__': 'migration_example'}
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
      exec(compile(_examples()[name], name, 'exec'), namespace)  # pylint: disable=exec-used
    self.assertRegex(stdout.getvalue(), r'^loss: \d+\.\d{4} -> \d+\.\d{4}\n$')
    self.assertLess(namespace['last_loss'], namespace['first_loss'])

  def test_restore_by_structure_example_prints_its_report(self):
    namespace = {'__name__': 'migration_example'}
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
      exec(
        compile(
          _examples()['restore-by-structure'],  # pylint: disable=exec-used
          'restore-by-structure',
          'exec',
        ),
        namespace,
      )
    self.assertTrue(namespace['report'].complete)
    printed = re.search(r'It prints\n\n```\n(.*?)\n```', _guide(), re.DOTALL)
    self.assertIsNotNone(printed)
    self.assertEqual(stdout.getvalue().strip(), printed.group(1).strip())

  def test_variable_names_as_stated(self):
    if not _kfac_has('optimizer', 'layer_collection'):
      self.fail('kfac.optimizer / kfac.layer_collection not exposed')
    namespace = {'__name__': 'migration_example'}
    with contextlib.redirect_stdout(io.StringIO()):
      exec(
        compile(_examples()['after-contrib'], 'after-contrib', 'exec'),  # pylint: disable=exec-used
        namespace,
      )
    names = namespace['variable_names']
    self.assertIn('LayerCollection/ff_fckron/x_True/cov', names)
    self.assertIn('w/KFAC', names)
    self.assertIn('b/KFAC', names)
    inverses = [n for n in names if '/inv_damp' in n]
    self.assertNotEmpty(inverses)
    for n in inverses:
      self.assertTrue(n.startswith('ff_fckron/'), n)


if __name__ == '__main__':
  absltest.main()
