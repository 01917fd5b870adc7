"""Tests for kfac.layer_collection."""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from kfac import fisher_blocks as fb
from kfac import fisher_factors as ff
from kfac import layer_collection as lc
from kfac import loss_functions as lf
from kfac import utils


def _var(name, shape):
  return tf.compat.v1.get_variable(name, shape=shape)


def _layer_tensors(weights_shape, bias_shape, inputs_shape, outputs_shape):
  """A layer's `(params, inputs, outputs)` for a registration.

  `params` is the weights `w`, or `(w, b)` when `bias_shape` is given;
  `inputs` and `outputs` are float32 placeholders of the given shapes.
  """
  weights = _var("w", weights_shape)
  params = (weights, _var("b", bias_shape)) if bias_shape else weights
  return (
    params,
    tf.compat.v1.placeholder(tf.float32, inputs_shape),
    tf.compat.v1.placeholder(tf.float32, outputs_shape),
  )


def _fresh_collections():
  """Yields `(LayerCollection(), approx)` for "kron", then "diagonal"."""
  for approx in (lc.APPROX_KRONECKER_NAME, lc.APPROX_DIAGONAL_NAME):
    yield lc.LayerCollection(), approx


def _register_conv2d_with_outputs(layers, outputs_shape, approx):
  """Registers a 3x3, 2 -> 5 channel "SAME" conv2d of `[None, 4, 4, 2]`
  inputs whose outputs are a placeholder of `outputs_shape`."""
  layers.register_conv2d(
    _var("k", [3, 3, 2, 5]),
    (1, 1, 1, 1),
    "SAME",
    tf.compat.v1.placeholder(tf.float32, [None, 4, 4, 2]),
    tf.compat.v1.placeholder(tf.float32, outputs_shape),
    approx=approx,
  )


def _variant(valid):
  """A builder of named cases: the `valid` arguments with some changed.

  `case(name, message, **changes)` is the case `name` whose arguments are
  `valid` updated by `changes`, expecting an error matching `message`.
  """

  def case(name, message, **changes):
    return dict(valid, testcase_name=name, message=message, **changes)

  return case


# A valid fully connected and a valid conv2d registration; each rejected
# case states what it breaks.
_fc_case = _variant(
  dict(
    kernel_shape=[100, 10],
    inputs_shape=[None, 100],
    outputs_shape=[None, 10],
    bias_shape=None,
  )
)
_conv2d_case = _variant(
  dict(
    filter_shape=[3, 3, 3, 5],
    inputs_shape=[2, 4, 4, 3],
    outputs_shape=[2, 4, 4, 5],
    bias_shape=None,
    strides=(1, 1, 1, 1),
    padding="SAME",
  )
)


def _make_factors(layers):
  """Makes the registered blocks' factors (with the outputs as gradients).

  The registration checks that read the layers' tensors run here, where
  TF 1.4 first used those tensors.
  """
  for block in list(layers.get_blocks()):
    block.instantiate_factors((block.tensors_to_compute_grads(),), 0.1)


class LayerParametersDictTest(tf.test.TestCase):
  def test_shared_tensor_raises(self):
    d = lc.LayerParametersDict()
    d[("a", "b")] = 1
    with self.assertRaisesRegex(ValueError, "already present"):
      d["a"] = 2
    with self.assertRaisesRegex(ValueError, "already present"):
      d[("c", "b")] = 2
    self.assertEqual(list(d.items()), [(("a", "b"), 1)])

  def test_delete_tuple_key_frees_all_tensors(self):
    d = lc.LayerParametersDict()
    d[("a", "b")] = 1
    del d[("a", "b")]
    d["a"] = 2
    d["b"] = 3
    self.assertEqual(d.pop("a"), 2)
    d[("a", "c")] = 4
    self.assertEqual(list(d.keys()), ["b", ("a", "c")])

  def test_pop_popitem_clear_free_tensors(self):
    d = lc.LayerParametersDict()
    d[("a", "b")] = 1
    d["c"] = 2
    d["e"] = 3
    self.assertEqual(d.pop(["a", "b"]), 1)
    self.assertEqual(d.pop("x", 7), 7)
    with self.assertRaises(KeyError):
      d.pop("x")
    self.assertEqual(d.popitem(), ("e", 3))
    self.assertEqual(d.popitem(last=False), ("c", 2))
    with self.assertRaises(KeyError):
      d.popitem()
    d[("a", "b", "c", "e")] = 4
    d.clear()
    d.update({"a": 5, ("b", "c"): 6})
    self.assertEqual(d.setdefault("e", 8), 8)
    with self.assertRaisesRegex(ValueError, "already present"):
      d.setdefault(("e", "f"), 9)
    self.assertEqual(d._tensors, {"a", "b", "c", "e"})

  def test_list_keys_are_stored_as_tuples(self):
    d = lc.LayerParametersDict()
    d[["a", "b"]] = 1
    self.assertEqual(list(d.keys()), [("a", "b")])
    self.assertIn(["a", "b"], d)
    self.assertEqual(d[["a", "b"]], 1)
    del d[["a", "b"]]
    self.assertEmpty(d)


class LayerCollectionTest(parameterized.TestCase, tf.test.TestCase):
  def test_layer_collection_init(self):
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      self.assertEmpty(layers.get_blocks())
      self.assertEmpty(layers.get_factors())
      self.assertEqual(layers.losses, [])
      self.assertIsNone(layers.subgraph)
      self.assertEqual(layers.generic_registrations, set())
      self.assertIs(layers.graph, tf.compat.v1.get_default_graph())
      self.assertEqual(
        (
          lc.APPROX_KRONECKER_NAME,
          lc.APPROX_DIAGONAL_NAME,
          lc.APPROX_FULL_NAME,
        ),
        ("kron", "diagonal", "full"),
      )

  def test_explicit_graph(self):
    graph = tf.Graph()
    with tf.Graph().as_default():
      layers = lc.LayerCollection(graph=graph)
      self.assertIs(layers.graph, graph)

  def test_register_blocks(self):
    with tf.Graph().as_default():
      tf.compat.v1.set_random_seed(200)
      layers = lc.LayerCollection()
      layers.register_fully_connected(
        _var("w1", [3, 2]), tf.ones((4, 3)), tf.ones((4, 2))
      )
      layers.register_fully_connected(
        (_var("w2", [3, 2]), _var("b2", [2])),
        tf.ones((4, 3)),
        tf.ones((4, 2)),
        approx=lc.APPROX_DIAGONAL_NAME,
      )
      layers.register_conv2d(
        _var("k1", [3, 3, 1, 2]),
        (1, 1, 1, 1),
        "SAME",
        tf.ones((1, 4, 4, 1)),
        tf.ones((1, 4, 4, 2)),
      )
      layers.register_conv2d(
        (_var("k2", [3, 3, 1, 2]), _var("c2", [2])),
        (1, 1, 1, 1),
        "SAME",
        tf.ones((1, 4, 4, 1)),
        tf.ones((1, 4, 4, 2)),
        approx=lc.APPROX_DIAGONAL_NAME,
      )
      layers.register_generic(_var("g1", [5]), 16, approx=lc.APPROX_FULL_NAME)
      layers.register_generic(
        _var("g2", [5]), 16, approx=lc.APPROX_DIAGONAL_NAME
      )
      blocks = list(layers.get_blocks())
      self.assertEqual(
        [type(b) for b in blocks],
        [
          fb.FullyConnectedKFACBasicFB,
          fb.FullyConnectedDiagonalFB,
          fb.ConvKFCBasicFB,
          fb.ConvDiagonalFB,
          fb.FullFB,
          fb.NaiveDiagonalFB,
        ],
      )
      # The TF 1.4.0 release's block: the outputs Tensor itself.
      self.assertIs(blocks[1].tensors_to_compute_grads(), blocks[1]._outputs[0])
      self.assertEqual(
        {v.op.name for v in layers.generic_registrations}, {"g1", "g2"}
      )

  def test_register_blocks_multiple_registrations(self):
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      key = _var("w", [3, 2])
      layers.register_fully_connected(key, tf.ones((4, 3)), tf.ones((4, 2)))
      with self.assertRaises(ValueError):
        layers.register_generic(key, 16)
      self.assertEqual(layers.generic_registrations, set())
      self.assertLen(layers.get_blocks(), 1)

  # Keys are spelled by variable letters: "xy" is the tuple key (x, y).
  @parameterized.named_parameters(
    ("single_param_not_registered", {"y": "1"}, "x", {"1", "foo"}),
    ("single_param_registered", {"x": "1"}, "x", "Duplicate registration"),
    ("single_param_registered_in_tuple", {"xy": "1"}, "x", {"1"}),
    ("tuple_param_not_registered", {"z": "1"}, "xy", {"1", "foo"}),
    ("tuple_param_registered", {"xy": "1"}, "xy", "Duplicate registration"),
    ("tuple_param_registered_in_superset", {"xyz": "1"}, "xy", {"1"}),
    ("tuple_param_some_registered", {"x": "1", "z": "2"}, "xy", {"2", "foo"}),
    (
      "tuple_var_some_registered_in_other_tuples",
      {"xz": "1", "zw": "2"},
      "xy",
      "Inconsistent registration",
    ),
  )
  def test_register_block(self, existing, key, expected):
    """`register_block(key, "foo")` next to the `existing` blocks.

    `expected` is the set of blocks afterwards, or the message of the
    ValueError raised.
    """
    with tf.Graph().as_default():
      variables = {name: _var(name, [1]) for name in "xyzw"}

      def key_of(names):
        if len(names) == 1:
          return variables[names]
        return tuple(variables[name] for name in names)

      layers = lc.LayerCollection()
      layers.fisher_blocks = {key_of(k): v for k, v in existing.items()}
      if isinstance(expected, str):
        with self.assertRaisesRegex(ValueError, expected):
          layers.register_block(key_of(key), "foo")
      else:
        layers.register_block(key_of(key), "foo")
        self.assertEqual(set(layers.fisher_blocks.values()), expected)

  def test_failed_registration_leaves_blocks_unchanged(self):
    # (x, y) would replace x but overlaps (y, z): nothing may be removed.
    with tf.Graph().as_default():
      x, y, z = _var("x", [1]), _var("y", [1]), _var("z", [1])
      layers = lc.LayerCollection()
      layers.register_block(x, "1")
      layers.register_block((y, z), "2")
      with self.assertRaisesRegex(ValueError, "Inconsistent registration"):
        layers.register_block((x, y), "foo")
      self.assertEqual(
        list(layers.fisher_blocks.items()), [(x, "1"), ((y, z), "2")]
      )

  def test_registration_rules_with_layer_parameters_dict(self):
    # The example of the legacy docstring: {'a': foo, ('b', 'c'): bar}.
    layers = lc.LayerCollection(graph=tf.Graph())
    layers.register_block("a", "foo")
    layers.register_block(("b", "c"), "bar")
    with self.assertRaisesRegex(ValueError, "Duplicate registration"):
      layers.register_block("a", "baz")
    layers.register_block(("b", "c", "d"), "baz")
    self.assertEqual(
      dict(layers.fisher_blocks), {"a": "foo", ("b", "c", "d"): "baz"}
    )
    layers.register_block("b", "skipped")
    layers.register_block(("a", "e"), "qux")
    self.assertEqual(
      dict(layers.fisher_blocks), {("b", "c", "d"): "baz", ("a", "e"): "qux"}
    )
    with self.assertRaisesRegex(ValueError, "Inconsistent registration"):
      layers.register_block(("b", "f"), "bad")
    # Every parameter is free again once its key is replaced.
    self.assertEqual(layers.fisher_blocks._tensors, {"a", "b", "c", "d", "e"})

  def test_list_params_are_registered_as_tuple(self):
    with tf.Graph().as_default():
      w, b = _var("w", [3, 2]), _var("b", [2])
      layers = lc.LayerCollection()
      layers.register_fully_connected([w, b], tf.ones((4, 3)), tf.ones((4, 2)))
      self.assertEqual(list(layers.fisher_blocks.keys()), [(w, b)])
      layers.register_generic([_var("g", [2]), _var("h", [3])], 8)
      self.assertLen(layers.get_blocks(), 2)
      self.assertIsInstance(list(layers.fisher_blocks.keys())[1], tuple)

  def test_register_categorical_predictive_distribution(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      tf.compat.v1.set_random_seed(200)
      logits = tf.eye(2)

      layers = lc.LayerCollection()
      layers.register_categorical_predictive_distribution(logits, seed=200)
      single_loss = sess.run(layers.total_sampled_loss())

      layers2 = lc.LayerCollection()
      layers2.register_categorical_predictive_distribution(logits, seed=200)
      layers2.register_categorical_predictive_distribution(logits, seed=200)
      double_loss = sess.run(layers2.total_sampled_loss())
      self.assertAlmostEqual(2 * single_loss, double_loss, places=5)
      self.assertLen(layers2.losses, 2)
      self.assertIsInstance(
        layers2.losses[0], lf.CategoricalLogitsNegativeLogProbLoss
      )

  def test_register_categorical_predictive_distribution_batch_size_1(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      tf.compat.v1.set_random_seed(200)
      logits = tf.random.normal((1, 2))
      layers = lc.LayerCollection()
      layers.register_categorical_predictive_distribution(logits, seed=200)
      self.assertEqual(sess.run(layers.total_sampled_loss()).shape, ())

  def test_register_categorical_predictive_distribution_specified_targets(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      logits = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
      targets = np.array([0, 1])
      layers = lc.LayerCollection()
      layers.register_categorical_predictive_distribution(
        tf.constant(logits), targets=tf.constant(targets)
      )
      expected = 0.0
      for row, target in zip(logits, targets):
        expected -= row[target] - np.log(np.sum(np.exp(row)))
      self.assertAllClose(sess.run(layers.total_loss()), expected)
      self.assertAllClose(expected, 1.6265233)

  def test_register_normal_predictive_distribution(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      tf.compat.v1.set_random_seed(200)
      predictions = tf.constant([[1.0, 2.0], [3.0, 4.0]], dtype=tf.float32)

      layers = lc.LayerCollection()
      layers.register_normal_predictive_distribution(predictions, 1.0, seed=200)
      single_loss = sess.run(layers.total_sampled_loss())

      layers2 = lc.LayerCollection()
      layers2.register_normal_predictive_distribution(
        predictions, 1.0, seed=200
      )
      layers2.register_normal_predictive_distribution(
        predictions, 1.0, seed=200
      )
      double_loss = sess.run(layers2.total_sampled_loss())
      self.assertAlmostEqual(2 * single_loss, double_loss, places=5)
      self.assertIsInstance(layers2.losses[0], lf.NormalMeanNegativeLogProbLoss)

  def test_register_normal_predictive_distribution_specified_targets(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      mean = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
      targets = np.array([[3.0, 1.0], [4.0, 2.0]], dtype=np.float32)
      var = 4.0
      layers = lc.LayerCollection()
      layers.register_normal_predictive_distribution(
        tf.constant(mean), var=var, targets=tf.constant(targets)
      )
      expected = 0.0
      for m, t in zip(mean.ravel(), targets.ravel()):
        expected += 0.5 * np.log(2 * np.pi * var) + (t - m) ** 2 / (2 * var)
      self.assertAllClose(sess.run(layers.total_loss()), expected)
      self.assertAllClose(expected, 7.6983433)

  def test_register_multi_bernoulli_predictive_distribution(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      logits = np.array([[1.0, -2.0], [0.5, 3.0]], dtype=np.float32)
      targets = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
      layers = lc.LayerCollection()
      layers.register_multi_bernoulli_predictive_distribution(
        tf.constant(logits), targets=tf.constant(targets)
      )
      self.assertIsInstance(
        layers.losses[0], lf.MultiBernoulliNegativeLogProbLoss
      )
      expected = 0.0
      for z, t in zip(logits.ravel(), targets.ravel()):
        p = 1.0 / (1.0 + np.exp(-z))
        expected -= t * np.log(p) + (1 - t) * np.log(1 - p)
      self.assertAllClose(sess.run(layers.total_loss()), expected)

  def test_named_losses(self):
    with tf.Graph().as_default():
      logits = tf.ones((2, 3))
      layers = lc.LayerCollection()
      layers.register_categorical_predictive_distribution(logits, name="a")
      layers.register_normal_predictive_distribution(logits, name="b")
      layers.register_multi_bernoulli_predictive_distribution(logits)
      layers.register_multi_bernoulli_predictive_distribution(logits)
      self.assertEqual(
        [type(loss) for loss in layers.losses],
        [
          lf.CategoricalLogitsNegativeLogProbLoss,
          lf.NormalMeanNegativeLogProbLoss,
          lf.MultiBernoulliNegativeLogProbLoss,
          lf.MultiBernoulliNegativeLogProbLoss,
        ],
      )
      for register in (
        layers.register_categorical_predictive_distribution,
        layers.register_normal_predictive_distribution,
        layers.register_multi_bernoulli_predictive_distribution,
      ):
        with self.assertRaisesRegex(ValueError, "already registered"):
          register(logits, name="a")
      with self.assertRaisesRegex(TypeError, "name"):
        layers.register_categorical_predictive_distribution(logits, name=3)
      self.assertLen(layers.losses, 4)
      # `losses` is a fresh list: changing it does not change the collection.
      layers.losses.append("x")
      self.assertLen(layers.losses, 4)

  def test_total_loss_without_targets_raises(self):
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      layers.register_categorical_predictive_distribution(tf.ones((2, 3)))
      with self.assertRaises(Exception):  # noqa: B017
        layers.total_loss()

  def test_create_subgraph(self):
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      with self.assertRaisesRegex(ValueError, "at least one registered loss"):
        layers.create_subgraph()
      x = tf.ones((2, 3))
      w = _var("w", [3, 4])
      logits = tf.matmul(x, w)
      unrelated = tf.ones((2, 2)) * 2.0
      layers.register_categorical_predictive_distribution(logits)
      layers.create_subgraph()
      self.assertIsInstance(layers.subgraph, utils.SubGraph)
      self.assertTrue(layers.subgraph.is_member(logits))
      self.assertTrue(layers.subgraph.is_member(x))
      self.assertFalse(layers.subgraph.is_member(unrelated))

  def test_make_or_get_factor(self):
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      key = tf.constant(1.0)
      factor = layers.make_or_get_factor(ff.FullFactor, ((key,), 16))
      factor2 = layers.make_or_get_factor(ff.FullFactor, ((key,), 16))
      self.assertIs(factor, factor2)
      layers.make_or_get_factor(ff.FullFactor, ((tf.constant(2.0),), 16))
      self.assertLen(layers.get_factors(), 2)
      variables = tf.compat.v1.global_variables()
      self.assertNotEmpty(variables)
      self.assertTrue(
        all(v.name.startswith("LayerCollection/") for v in variables),
        [v.name for v in variables],
      )

  def test_make_or_get_factor_custom_scope(self):
    with tf.Graph().as_default():
      layers = lc.LayerCollection(name="Foo")
      layers.make_or_get_factor(ff.FullFactor, ((tf.constant(1.0),), 16))
      variables = tf.compat.v1.global_variables()
      self.assertNotEmpty(variables)
      self.assertTrue(all(v.name.startswith("Foo/") for v in variables))

  def test_collections_get_unique_scopes(self):
    with tf.Graph().as_default():
      first, second = lc.LayerCollection(), lc.LayerCollection()
      for layers in (first, second):
        layers.make_or_get_factor(ff.FullFactor, ((tf.constant(1.0),), 16))
      names = sorted(v.op.name for v in tf.compat.v1.global_variables())
      self.assertEqual(
        names,
        [
          "LayerCollection/ff_full/Const_16/cov",
          "LayerCollection_1/ff_full/Const_1_16/cov",
        ],
      )

  def test_make_or_get_factor_unhashable_args_raise_type_error(self):
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      with self.assertRaisesRegex(TypeError, "hashable"):
        layers.make_or_get_factor(ff.FullFactor, ([tf.constant(1.0)], 16))
      self.assertEmpty(layers.get_factors())

  def test_factor_variable_names(self):
    # Covariances live under the collection's scope; the inverses are made
    # when the blocks are instantiated, outside it.
    with tf.Graph().as_default():
      inputs = tf.compat.v1.placeholder(
        tf.float32, [None, 3], name="Placeholder"
      )
      w, b = _var("w", [3, 2]), _var("b", [2])
      outputs = tf.matmul(inputs, w) + b
      layers = lc.LayerCollection()
      layers.register_fully_connected((w, b), inputs, outputs)
      grads = tf.identity(outputs, name="grads")
      (block,) = layers.get_blocks()
      block.instantiate_factors((grads,), 0.1)
      names = sorted(
        v.op.name
        for v in tf.compat.v1.global_variables()
        if v.op.name not in ("w", "b")
      )
      in_damping = block._input_damping.op.name.replace("/", "_")
      out_damping = block._output_damping.op.name.replace("/", "_")
      self.assertTrue(in_damping.startswith("mul"), in_damping)
      self.assertTrue(out_damping.startswith("truediv"), out_damping)
      self.assertEqual(
        names,
        [
          "LayerCollection/ff_fckron/Placeholder_True/cov",
          "LayerCollection/ff_fckron/grads_False/cov",
          "ff_fckron/Placeholder_True/inv_damp" + in_damping,
          "ff_fckron/grads_False/inv_damp" + out_damping,
        ],
      )

  def test_get_use_count_map(self):
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      layers.fisher_blocks = {"a": 1, ("a", "c"): 2, ("b", "c"): 2}
      use_count_map = layers.get_use_count_map()
      self.assertDictEqual({"a": 2, "b": 1, "c": 2}, dict(use_count_map))

  def test_reset_internals(self):
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      layers.register_generic(_var("g", [2]), 8)
      layers.register_categorical_predictive_distribution(tf.ones((2, 3)))
      layers.reset_internals()
      self.assertEmpty(layers.get_blocks())
      self.assertEqual(layers.losses, [])
      self.assertEqual(layers.generic_registrations, set())


class ListStridesTest(parameterized.TestCase, tf.test.TestCase):
  @parameterized.named_parameters(
    ("kron", lc.APPROX_KRONECKER_NAME), ("diagonal", lc.APPROX_DIAGONAL_NAME)
  )
  def test_list_strides_work(self, approx):
    x = np.random.RandomState(3).randn(2, 4, 4, 2).astype(np.float32)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      inputs = tf.constant(x)
      kernel, bias = _var("k", [3, 3, 2, 5]), _var("c", [5])
      outputs = tf.nn.conv2d(inputs, kernel, [1, 2, 2, 1], "SAME") + bias
      layers = lc.LayerCollection()
      layers.register_conv2d(
        (kernel, bias), [1, 2, 2, 1], "SAME", inputs, outputs, approx=approx
      )
      (block,) = layers.get_blocks()
      block.instantiate_factors((outputs,), 0.1)
      sess.run(tf.compat.v1.global_variables_initializer())
      g = sess.run(outputs).astype(np.float64)
      factors = list(layers.get_factors())
      before = sess.run([f.get_cov() for f in factors])
      for factor in factors:
        sess.run(factor.make_covariance_update_op(0.9))
      after = sess.run([f.get_cov() for f in factors])
    # NumPy oracle: stride 2, SAME, 3x3 kernel on a 4x4 image gives 2x2
    # outputs, the windows starting at rows/cols 0 and 2 (one zero row/col of
    # padding after the image).
    self.assertEqual(g.shape, (2, 2, 2, 5))
    per_example, patches = [], []
    for b in range(2):
      grad_w, grad_b = np.zeros((3, 3, 2, 5)), np.zeros(5)
      for i in range(2):
        for j in range(2):
          patch = np.zeros((3, 3, 2))
          for di in range(3):
            for dj in range(3):
              row, col = 2 * i + di, 2 * j + dj
              if row < 4 and col < 4:
                patch[di, dj] = x[b, row, col]
          patches.append(np.append(patch.ravel(), 1.0))
          grad_w += np.einsum("ijc,o->ijco", patch, g[b, i, j])
          grad_b += g[b, i, j]
      per_example.append(np.vstack([grad_w.reshape(-1, 5), grad_b[None]]))
    if approx == lc.APPROX_KRONECKER_NAME:
      patches = np.array(patches)
      rows = g.reshape(-1, 5)
      new = {
        19: sum(np.outer(r, r) for r in patches) / len(patches),
        5: sum(np.outer(r, r) for r in rows) / len(rows),
      }
      self.assertEqual(sorted(c.shape[0] for c in after), [5, 19])
      for old, cov in zip(before, after):
        self.assertAllClose(
          cov, 0.9 * old + 0.1 * new[cov.shape[0]], rtol=1e-4, atol=1e-5
        )
    else:
      new = sum(p**2 for p in per_example) / 2
      (old,), (cov,) = before, after
      self.assertEqual(cov.shape, (19, 5))
      self.assertAllClose(cov, 0.9 * old + 0.1 * new, rtol=1e-4, atol=1e-5)


class RejectedInputTest(parameterized.TestCase, tf.test.TestCase):
  @parameterized.named_parameters(
    ("fully_connected", "register_fully_connected"),
    ("conv2d", "register_conv2d"),
    ("generic_kron", "register_generic"),
  )
  def test_unknown_approx_raises(self, method):
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      args = {
        "register_fully_connected": (
          _var("w", [3, 2]),
          tf.ones((4, 3)),
          tf.ones((4, 2)),
        ),
        "register_conv2d": (
          _var("k", [3, 3, 1, 2]),
          (1, 1, 1, 1),
          "SAME",
          tf.ones((1, 4, 4, 1)),
          tf.ones((1, 4, 4, 2)),
        ),
        "register_generic": (_var("g", [2]), 16),
      }[method]
      bad = "kron" if method == "register_generic" else "foo"
      with self.assertRaisesRegex(
        ValueError, "Bad value {} for approx".format(bad)
      ):
        getattr(layers, method)(*args, approx=bad)
      self.assertEmpty(layers.get_blocks())
      self.assertEqual(layers.generic_registrations, set())

  @parameterized.named_parameters(
    _fc_case("kernel_vs_inputs", "inputs", kernel_shape=[784, 10]),
    _fc_case("kernel_vs_outputs", "outputs", outputs_shape=[None, 12]),
    _fc_case("bias_size", "bias", bias_shape=[11]),
    _fc_case("kernel_rank", "rank 2", kernel_shape=[100, 10, 1]),
    _fc_case(
      "inputs_rank", "inputs must have rank 2", inputs_shape=[None, 5, 100]
    ),
    _fc_case("outputs_rank", "outputs must have rank 2", outputs_shape=[10]),
    _fc_case(
      "batch_sizes", "batch size", inputs_shape=[8, 100], outputs_shape=[4, 10]
    ),
  )
  def test_fully_connected_shape_mismatch_raises(
    self, kernel_shape, inputs_shape, outputs_shape, bias_shape, message
  ):
    with tf.Graph().as_default():
      params, inputs, outputs = _layer_tensors(
        kernel_shape, bias_shape, inputs_shape, outputs_shape
      )
      for layers, approx in _fresh_collections():
        # Registered as in TF 1.4; the error comes when factors are made.
        layers.register_fully_connected(params, inputs, outputs, approx=approx)
        with self.assertRaisesRegex(ValueError, message):
          _make_factors(layers)

  @parameterized.named_parameters(("one", 1), ("three", 3))
  def test_fully_connected_params_tuple_length_raises_at_multiply(self, length):
    # TF 1.4 registered such tuples and built their factors (the 2017
    # estimator test registers `(w,)`); multiplying a vector failed.
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      params = (_var("w", [3, 2]), _var("b", [2]), _var("c", [2]))[:length]
      layers.register_fully_connected(params, tf.ones((4, 3)), tf.ones((4, 2)))
      _make_factors(layers)
      (block,) = layers.get_blocks()
      with self.assertRaisesRegex(ValueError, "vector"):
        block.multiply_inverse(tuple(tf.zeros_like(p) for p in params))

  def test_fully_connected_unknown_batch_size_accepted(self):
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      inputs = tf.compat.v1.placeholder(tf.float32, [None, 3])
      outputs = tf.compat.v1.placeholder(tf.float32, [None, 2])
      layers.register_fully_connected(
        (_var("w", [3, 2]), _var("b", [2])), inputs, outputs
      )
      self.assertLen(layers.get_blocks(), 1)

  @parameterized.named_parameters(
    ("kron_inputs_size", "kron", [None, None], [None, 2], "inputs"),
    ("kron_outputs_size", "kron", [None, 3], [None, None], "outputs"),
    ("kron_outputs_rank", "kron", [None, 3], None, "outputs"),
    ("diagonal_inputs_size", "diagonal", [None, None], [None, 2], "inputs"),
    ("diagonal_outputs_size", "diagonal", [None, 3], [None, None], "outputs"),
  )
  def test_fully_connected_unknown_sizes_raise(
    self, approx, inputs_shape, outputs_shape, message
  ):
    # The factors are sized from these shapes: such registrations used to be
    # accepted and the estimator then failed with an unnamed TypeError.
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      inputs = tf.compat.v1.placeholder(tf.float32, inputs_shape)
      outputs = tf.compat.v1.placeholder(tf.float32, outputs_shape)
      layers.register_fully_connected(
        _var("w", [3, 2]), inputs, outputs, approx=approx
      )
      with self.assertRaisesRegex(ValueError, message + ".*statically known"):
        _make_factors(layers)

  @parameterized.named_parameters(
    ("kron_channels", "kron", [None, 4, 4, None]),
    ("kron_rank", "kron", None),
    ("diagonal_rank", "diagonal", None),
  )
  def test_conv2d_unknown_output_sizes_raise(self, approx, outputs_shape):
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      _register_conv2d_with_outputs(layers, outputs_shape, approx)
      with self.assertRaisesRegex(ValueError, "outputs.*statically known"):
        _make_factors(layers)

  def test_conv2d_diagonal_unknown_output_channels_accepted(self):
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      _register_conv2d_with_outputs(layers, [None, 4, 4, None], "diagonal")
      self.assertLen(layers.get_blocks(), 1)

  @parameterized.named_parameters(
    _conv2d_case("in_channels", "in_channels", filter_shape=[3, 3, 2, 5]),
    _conv2d_case("out_channels", "out_channels", outputs_shape=[2, 4, 4, 6]),
    _conv2d_case("bias_size", "bias", bias_shape=[4]),
    _conv2d_case("filter_rank", "rank 4", filter_shape=[3, 3, 5]),
    _conv2d_case(
      "inputs_rank", "inputs must have rank 4", inputs_shape=[2, 16, 3]
    ),
    _conv2d_case(
      "same_output_size",
      "output height of 4",
      inputs_shape=[2, 8, 8, 3],
      outputs_shape=[2, 8, 8, 5],
      strides=(1, 2, 2, 1),
    ),
    _conv2d_case(
      "valid_output_size",
      "output height of 6",
      inputs_shape=[2, 8, 8, 3],
      outputs_shape=[2, 8, 8, 5],
      padding="VALID",
    ),
    _conv2d_case("padding", "padding", padding="same"),
    _conv2d_case("strides_length", "strides", strides=(1, 1)),
    _conv2d_case(
      "unknown_spatial_size",
      "height and width",
      inputs_shape=[2, None, None, 3],
    ),
  )
  def test_conv2d_shape_mismatch_raises(
    self,
    filter_shape,
    inputs_shape,
    outputs_shape,
    bias_shape,
    strides,
    padding,
    message,
  ):
    with tf.Graph().as_default():
      params, inputs, outputs = _layer_tensors(
        filter_shape, bias_shape, inputs_shape, outputs_shape
      )
      for layers, approx in _fresh_collections():
        # At registration for what the block reads (height, width,
        # strides[1:3]), else when the factors are made (TF 1.4's points).
        with self.assertRaisesRegex(ValueError, message):
          layers.register_conv2d(
            params, strides, padding, inputs, outputs, approx=approx
          )
          _make_factors(layers)

  def test_conv2d_valid_padding_accepted(self):
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      inputs = tf.ones((2, 8, 7, 3))
      kernel = _var("k", [3, 2, 3, 5])
      outputs = tf.nn.conv2d(inputs, kernel, (1, 2, 2, 1), "VALID")
      layers.register_conv2d(kernel, (1, 2, 2, 1), "VALID", inputs, outputs)
      self.assertLen(layers.get_blocks(), 1)

  @parameterized.named_parameters(
    ("categorical_rank_1", "register_categorical_predictive_distribution", [4]),
    (
      "categorical_rank_3",
      "register_categorical_predictive_distribution",
      [4, 2, 3],
    ),
    (
      "bernoulli_rank_1",
      "register_multi_bernoulli_predictive_distribution",
      [4],
    ),
    (
      "bernoulli_rank_3",
      "register_multi_bernoulli_predictive_distribution",
      [4, 2, 3],
    ),
  )
  def test_logits_of_wrong_rank_raise_where_the_layout_matters(
    self, method, shape
  ):
    # Registered as in TF 1.4 (the 2017 optimizer tests register 1-D
    # logits); the Fisher-factor columns need [batch_size, num_outputs].
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      getattr(layers, method)(tf.ones(shape))
      (loss,) = layers.losses
      with self.assertRaisesRegex(ValueError, "logits must be a 2-D"):
        loss.multiply_fisher_factor_replicated_one_hot((0,))


class EstimatorVariableNamesTest(tf.test.TestCase):
  """Variable names of every block type built through a FisherEstimator.

  Checkpoints of TF 1.4 programs restore by name: covariances live under the
  collection's scope, inverses (made when the estimator instantiates the
  blocks) outside it; Kronecker inverses are named after the π-damping
  tensors (`mul`, `truediv`, ...).
  """

  def _build(self):
    from kfac import estimator

    x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
    img = tf.compat.v1.placeholder(tf.float32, [None, 4, 4, 2], name="img")
    w1, b1 = _var("w1", [3, 2]), _var("b1", [2])
    w2 = _var("w2", [3, 2])
    w3, b3 = _var("w3", [3, 4]), _var("b3", [4])
    k1, c1 = _var("k1", [2, 2, 2, 3]), _var("c1", [3])
    k2 = _var("k2", [2, 2, 2, 3])
    gf1, gf2 = _var("gf1", [2]), _var("gf2", [])
    gd1, gd2 = _var("gd1", [2]), _var("gd2", [2, 1])
    s1 = tf.matmul(x, w1) + b1
    s2 = tf.matmul(x, w2)
    s3 = tf.matmul(x, w3) + b3
    o1 = tf.nn.conv2d(img, k1, [1, 1, 1, 1], "SAME") + c1
    o2 = tf.nn.conv2d(img, k2, [1, 2, 2, 1], "SAME")
    layers = lc.LayerCollection()
    layers.register_fully_connected((w1, b1), x, s1)
    layers.register_fully_connected(w2, x, s2, approx="diagonal")
    # Same inputs and has_bias as (w1, b1): shares the input factor.
    layers.register_fully_connected((w3, b3), x, s3)
    layers.register_conv2d((k1, c1), (1, 1, 1, 1), "SAME", img, o1)
    layers.register_conv2d(k2, [1, 2, 2, 1], "SAME", img, o2, approx="diagonal")
    layers.register_generic((gf1, gf2), 32, approx="full")
    layers.register_generic([gd1, gd2], 32, approx="diagonal")
    logit = (
      tf.reduce_sum(s1 + s2, 1)
      + tf.reduce_sum(s3, 1)
      + tf.reduce_sum(o1, [1, 2, 3])
      + tf.reduce_sum(o2, [1, 2, 3])
      + tf.reduce_sum(gf1) * gf2
      + tf.reduce_sum(gd1 * gd2)
    )
    layers.register_categorical_predictive_distribution(
      tf.stack([logit, -logit], axis=1)
    )
    variables = [w1, b1, w2, w3, b3, k1, c1, k2, gf1, gf2, gd1, gd2]
    fisher = estimator.FisherEstimator(variables, 0.95, 0.01, layers)
    return layers, fisher, x, img, [v.op.name for v in variables]

  def test_every_block_type(self):
    with tf.Graph().as_default(), tf.compat.v1.Session():
      layers, fisher, x, img, model_vars = self._build()
      names = sorted(
        v.op.name
        for v in tf.compat.v1.global_variables()
        if v.op.name not in model_vars
      )
      self.assertEqual(
        names,
        [
          "LayerCollection/ff_convdiag/"
          "img__gradients_Sum_3_grad_BroadcastTo/cov",
          "LayerCollection/ff_convinkron/img_2-2-2-3_1-1-1-1_SAME_True/cov",
          "LayerCollection/ff_convoutkron/gradients_Sum_2_grad_BroadcastTo/cov",
          # TF 1.4.0's diagonal FC factor is named after the inputs and the
          # output gradient themselves (no concat ops).
          "LayerCollection/ff_diagfc/x_gradients_add_3_grad_Reshape_1/cov",
          "LayerCollection/ff_fckron/"
          "gradients_Sum_1_grad_BroadcastTo_False/cov",
          "LayerCollection/ff_fckron/gradients_add_3_grad_Reshape_False/cov",
          "LayerCollection/ff_fckron/x_True/cov",
          "LayerCollection/ff_full/"
          "gradients_Sum_4_grad_Tile__gradients_mul_grad_Mul_1_32/cov",
          # The flattening ops are built inside the collection's scope,
          # re-entered (and so renamed) by each of the 10 factor creations.
          "LayerCollection/ff_naivediag/LayerCollection_10_concat_32/cov",
          # The model's own `mul` and `mul_1` come first; then each
          # Kronecker block makes `mul`, `mul_1`, `truediv` (π), `mul_2`
          # (input damping) and `truediv_1` (output damping), counting on:
          # fc (w1, b1) mul_2..mul_4, truediv, truediv_1; fc (w3, b3)
          # mul_5..mul_7, truediv_2, truediv_3; conv mul_8..mul_10,
          # truediv_4, truediv_5.
          "ff_convinkron/img_2-2-2-3_1-1-1-1_SAME_True/inv_dampmul_10",
          "ff_convoutkron/gradients_Sum_2_grad_BroadcastTo/inv_damptruediv_5",
          "ff_fckron/gradients_Sum_1_grad_BroadcastTo_False/inv_damptruediv_3",
          "ff_fckron/gradients_add_3_grad_Reshape_False/inv_damptruediv_1",
          # The shared input factor holds one inverse per block.
          "ff_fckron/x_True/inv_dampmul_4",
          "ff_fckron/x_True/inv_dampmul_7",
          "ff_full/gradients_Sum_4_grad_Tile__gradients_mul_grad_Mul_1_32/"
          "inv_damp0.01",
        ],
      )
      self.assertTrue(
        all(
          not v.trainable
          for v in tf.compat.v1.global_variables()
          if v.op.name not in model_vars
        )
      )

  def test_unknown_batch_size_and_shared_input_factor(self):
    # Every block updates and multiplies with an unknown batch dimension;
    # the two Kronecker FC blocks on `x` share A, each with its own π
    # computed from the current covariances.
    rng = np.random.RandomState(0)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      layers, fisher, x, img, _ = self._build()
      blocks = list(layers.get_blocks())
      fc1, fc3 = blocks[0], blocks[2]
      self.assertIs(fc1._input_factor, fc3._input_factor)
      sess.run(tf.compat.v1.global_variables_initializer())
      feed = {x: rng.randn(5, 3), img: rng.randn(5, 4, 4, 2)}
      for _ in range(2):
        sess.run(fisher.cov_update_op, feed)
      sess.run(fisher.inv_update_op, feed)
      vecs_and_vars = [
        (tf.constant(rng.randn(*v.shape.as_list()), dtype=tf.float32), v)
        for v in fisher.variables
      ]
      results = sess.run(fisher.multiply_inverse(vecs_and_vars), feed)
      covs = sess.run(
        [
          fc1._input_factor.get_cov(),
          fc1._output_factor.get_cov(),
          fc3._output_factor.get_cov(),
        ]
      )
      vecs = sess.run([vec for vec, _ in vecs_and_vars])
      for (result, _), vec in zip(results, vecs):
        self.assertEqual(result.shape, vec.shape)
        self.assertTrue(np.all(np.isfinite(result)))
      a = covs[0]
      for g, (w_idx, b_idx) in ((covs[1], (0, 1)), (covs[2], (3, 4))):
        pi = np.sqrt((np.trace(a) / a.shape[0]) / (np.trace(g) / g.shape[0]))
        damped = np.kron(
          a + pi * 0.1 * np.eye(a.shape[0]), g + 0.1 / pi * np.eye(g.shape[0])
        )
        v = np.vstack([vecs[w_idx], vecs[b_idx][None]]).ravel()
        expected = np.linalg.solve(damped, v)
        got = np.vstack([results[w_idx][0], results[b_idx][0][None]]).ravel()
        self.assertAllClose(got, expected, rtol=1e-3, atol=1e-4)


class NonTensorArgumentsTest(parameterized.TestCase, tf.test.TestCase):
  @parameterized.named_parameters(
    ("inputs", "inputs"), ("outputs", "outputs"), ("params", "params")
  )
  def test_numpy_array_raises_when_factors_are_made(self, arg):
    # NumPy arrays have a `shape` and used to pass the checks, failing only
    # when the estimator built the factors; the error now names the
    # argument. A NumPy `params` (a dictionary key) fails at registration.
    with tf.Graph().as_default():
      args = {
        "params": _var("w", [3, 2]),
        "inputs": tf.ones((4, 3)),
        "outputs": tf.ones((4, 2)),
      }
      args[arg] = np.ones(args[arg].shape.as_list(), np.float32)
      layers = lc.LayerCollection()
      with self.assertRaisesRegex(TypeError, arg):
        layers.register_fully_connected(
          args["params"], args["inputs"], args["outputs"]
        )
        _make_factors(layers)
      layers = lc.LayerCollection()
      with self.assertRaisesRegex(TypeError, arg):
        shape4 = {
          "params": [2, 2, 3, 2],
          "inputs": [4, 5, 5, 3],
          "outputs": [4, 5, 5, 2],
        }[arg]
        conv_args = {
          "params": _var("k", [2, 2, 3, 2]),
          "inputs": tf.ones((4, 5, 5, 3)),
          "outputs": tf.ones((4, 5, 5, 2)),
        }
        conv_args[arg] = np.ones(shape4, np.float32)
        layers.register_conv2d(
          conv_args["params"],
          (1, 1, 1, 1),
          "SAME",
          conv_args["inputs"],
          conv_args["outputs"],
        )
        _make_factors(layers)


class MultiTowerDiagonalTest(tf.test.TestCase):
  def test_two_towers_sharing_weights_through_estimator(self):
    # Each tower's minibatch is one use of the shared weights; counting the
    # key once made the FisherEstimator reject the registration
    # ("1 registrations vs. 2 uses").
    from kfac import estimator

    rng = np.random.RandomState(1)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x1 = tf.compat.v1.placeholder(tf.float32, [None, 3])
      x2 = tf.compat.v1.placeholder(tf.float32, [None, 3])
      w, b = _var("w", [3, 2]), _var("b", [2])
      s1, s2 = tf.matmul(x1, w) + b, tf.matmul(x2, w) + b
      layers = lc.LayerCollection()
      layers.register_fully_connected((w, b), x1, s1, approx="diagonal")
      (block,) = layers.get_blocks()
      block.register_additional_minibatch(x2, s2)
      self.assertEqual(dict(layers.get_use_count_map()), {w: 2, b: 2})
      layers.register_normal_predictive_distribution(
        tf.concat([s1, s2], 0), var=1.0
      )
      fisher = estimator.FisherEstimator(
        [w, b], 0.0, 0.1, layers, estimation_mode="exact"
      )
      sess.run(tf.compat.v1.global_variables_initializer())
      feed = {x1: rng.randn(2, 3), x2: rng.randn(4, 3)}
      sess.run(fisher.cov_update_op, feed)
      # Normal loss with unit variance: the exact output-gradient sources
      # are the unit vectors, so D[i, j] = mean_n a[n, i]^2 (one source
      # per output j hits column j).
      a = np.hstack([np.vstack([feed[x1], feed[x2]]), np.ones((6, 1))])
      expected = np.tile((a**2).mean(axis=0)[:, None], (1, 2))
      self.assertAllClose(
        sess.run(block._factor.get_cov()), expected, rtol=1e-5
      )
