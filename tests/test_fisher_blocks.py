"""Tests for kfac.fisher_blocks against dense NumPy oracles.

Vectors of layer blocks are compared in the 2-D layout `[in(+1), out]`
flattened row by row, in which a Kronecker block is `np.kron(A, G)`.
"""

import contextlib

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from kfac import fisher_blocks as fb
from kfac import fisher_factors as ff
from kfac import layer_collection as lc


def _make_psd(dim):
  """The legacy test matrix: all ones with `2 + arange(dim)` on the diagonal."""
  mat = np.ones((dim, dim), dtype=np.float32)
  mat[np.arange(dim), np.arange(dim)] = 2.0 + np.arange(dim)
  return mat


def _random_psd(rng, dim):
  """A well-conditioned random symmetric positive definite matrix."""
  x = rng.randn(dim, dim)
  return (x @ x.T / dim + 0.5 * np.eye(dim)).astype(np.float32)


@contextlib.contextmanager
def _normalize_damping_power(power):
  """`fb.NORMALIZE_DAMPING_POWER` is `power` inside, restored after."""
  old_power = fb.NORMALIZE_DAMPING_POWER
  fb.set_global_constants(normalize_damping_power=power)
  try:
    yield
  finally:
    fb.set_global_constants(normalize_damping_power=old_power)


def _set(sess, variable, value):
  sess.run(tf.compat.v1.assign(variable, value))


def _init(sess):
  sess.run(tf.compat.v1.global_variables_initializer())


def _run_inverse_updates(sess, *factors):
  for factor in factors:
    sess.run(factor.make_inverse_update_ops())


def _inverse_variable_names():
  return sorted(
    v.op.name
    for v in tf.compat.v1.global_variables()
    if "/inv_damp" in v.op.name
  )


def _pi(a, g):
  """π of the factored damping: sqrt((tr A / dim A) / (tr G / dim G))."""
  return np.sqrt((np.trace(a) / a.shape[0]) / (np.trace(g) / g.shape[0]))


def _mat2d(weights, bias=None):
  """The 2-D layout of layer parameters: weights `[-1, out]`, bias last row."""
  mat = weights.reshape(-1, weights.shape[-1])
  if bias is not None:
    mat = np.vstack([mat, bias.reshape(1, -1)])
  return mat


# The blocks over arbitrary parameters, and the Fisher each builds from the
# gradient statistics G (rows g_i): FullFB keeps G^T G, NaiveDiagonalFB its
# diagonal.
_PARAMS_BLOCKS = (
  ("full", fb.FullFB, lambda cov: cov),
  ("naive_diagonal", fb.NaiveDiagonalFB, lambda cov: np.diag(np.diag(cov))),
)


def _split_vector(v, as_list=False):
  """A 3-vector as the parts of parameters `([2], [])`, tuple or list."""
  parts = (tf.constant(v[:2]), tf.constant(v[2]))
  return list(parts) if as_list else parts


class ParamsBlocksTest(parameterized.TestCase, tf.test.TestCase):
  """FullFB and NaiveDiagonalFB, on one table."""

  @parameterized.named_parameters(
    (name + suffix, cls, as_tuple)
    for name, cls, _ in _PARAMS_BLOCKS
    for suffix, as_tuple in (("_single_tensor", False), ("_tuple", True))
  )
  def test_tensors_to_compute_grads_are_params(self, cls, as_tuple):
    with tf.Graph().as_default():
      x = tf.constant([1.0, 2.0])
      params = (x, tf.constant(3.0)) if as_tuple else x
      block = cls(lc.LayerCollection(), params, 32)
      self.assertIs(block.tensors_to_compute_grads(), params)

  @parameterized.named_parameters(
    (name + suffix, cls, as_tuple)
    for name, cls, _ in _PARAMS_BLOCKS
    for suffix, as_tuple in (("_tuple", True), ("_not_tuple", False))
  )
  def test_multiply_inverse_legacy_value(self, cls, as_tuple):
    # Untouched covariance = I (diagonal: ones), damping 0.5: v / 1.5.
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      if as_tuple:
        params = (tf.constant([1.0, 2.0]), tf.constant(3.0))
        grads = (params[0] ** 2, tf.sqrt(params[1]))
        vector = (2 * tf.ones(2), 2 * tf.ones(()))
      else:
        params = tf.constant([[1.0], [2.0]])
        grads = params**2
        vector = 2 * tf.ones((2, 1))
      block = cls(lc.LayerCollection(), params, 32)
      block.instantiate_factors((grads,), 0.5)
      _init(sess)
      _run_inverse_updates(sess, block._factor)
      output = sess.run(block.multiply_inverse(vector))
      if as_tuple:
        self.assertIsInstance(output, tuple)
        self.assertAllClose(output[0], [4.0 / 3, 4.0 / 3])
        self.assertAllClose(output[1], 4.0 / 3)
      else:
        self.assertAllClose(output, [[4.0 / 3], [4.0 / 3]])

  @parameterized.named_parameters(
    (name, cls, fisher) for name, cls, fisher in _PARAMS_BLOCKS
  )
  def test_full_fisher_block_is_gradient_statistic(self, cls, fisher):
    # Two sources: the statistic is sum_i g_i g_i^T / batch_size.
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      params = (tf.constant([1.0, 2.0]), tf.constant(3.0))
      g1 = np.array([1.0, -2.0, 3.0], dtype=np.float32)
      g2 = np.array([0.5, 4.0, -1.0], dtype=np.float32)
      block = cls(lc.LayerCollection(), params, 4)
      block.instantiate_factors((_split_vector(g1), _split_vector(g2)), 0.1)
      _init(sess)
      sess.run(block._factor.make_covariance_update_op(0.0))
      cov = (np.outer(g1, g1) + np.outer(g2, g2)) / 4.0
      self.assertAllClose(sess.run(block.full_fisher_block()), fisher(cov))

  def _dense_products(self, sess, block, v, as_list):
    """Runs the block's products on the 3-vector `v`, flattened back."""
    vector = _split_vector(v, as_list)
    inv_out, out, roundtrip, full = sess.run(
      (
        block.multiply_inverse(vector),
        block.multiply(vector),
        block.multiply(block.multiply_inverse(vector)),
        block.full_fisher_block(),
      )
    )
    return np.hstack(inv_out), np.hstack(out), np.hstack(roundtrip), full

  def test_full_instantiate_factors_registers_one_inverse(self):
    with tf.Graph().as_default():
      params = (tf.constant([1.0, 2.0]), tf.constant(3.0))
      block = fb.FullFB(lc.LayerCollection(), params, 32)
      grads = (params[0] ** 2, tf.sqrt(params[1]))
      block.instantiate_factors((grads,), 0.5)
      names = _inverse_variable_names()
      self.assertLen(names, 1)
      self.assertTrue(names[0].startswith("ff_full/"), names[0])
      self.assertTrue(names[0].endswith("/inv_damp0.5"), names[0])
      self.assertLen(block._layer_collection.get_factors(), 1)

  def test_naive_diagonal_instantiate_factors_registers_no_inverse(self):
    with tf.Graph().as_default():
      params = (tf.constant([1.0, 2.0]), tf.constant(3.0))
      block = fb.NaiveDiagonalFB(lc.LayerCollection(), params, 32)
      block.instantiate_factors(((params[0] ** 2, tf.sqrt(params[1])),), 0.5)
      self.assertEqual(_inverse_variable_names(), [])
      self.assertIsInstance(block._factor, ff.NaiveDiagonalFactor)

  @parameterized.named_parameters(
    ("float_damping", 0.5, False), ("tensor_damping", 0.3, True)
  )
  def test_full_multiply_and_inverse_against_dense(
    self, damping, tensor_damping
  ):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      params = (tf.constant([1.0, 2.0]), tf.constant(3.0))
      grads = (params[0] ** 2, tf.sqrt(params[1]))
      block = fb.FullFB(lc.LayerCollection(), params, 32)
      damping_arg = tf.constant(damping) if tensor_damping else damping
      block.instantiate_factors((grads,), damping_arg)
      _init(sess)
      _set(sess, block._factor.get_cov(), _make_psd(3))
      _run_inverse_updates(sess, block._factor)
      v = np.array([4.0, 5.0, 6.0], dtype=np.float32)
      # The tensor-damping case also passes the vector as a list.
      inv_out, out, roundtrip, full = self._dense_products(
        sess, block, v, as_list=tensor_damping
      )
    dense = _make_psd(3) + damping * np.eye(3)
    self.assertAllClose(inv_out, np.linalg.inv(dense) @ v, rtol=1e-5, atol=1e-5)
    self.assertAllClose(out, dense @ v, rtol=1e-5)
    self.assertAllClose(roundtrip, v, rtol=1e-4)
    self.assertAllClose(full, _make_psd(3))

  @parameterized.named_parameters(
    ("float_damping", False), ("tensor_damping", True)
  )
  def test_naive_diagonal_multiply_and_inverse_against_dense(
    self, tensor_damping
  ):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      params = (tf.constant([1.0, 2.0]), tf.constant(3.0))
      block = fb.NaiveDiagonalFB(lc.LayerCollection(), params, 32)
      damping = 0.5
      if tensor_damping:
        damping = tf.compat.v1.placeholder_with_default(damping, [])
      block.instantiate_factors(
        ((params[0] ** 2, tf.sqrt(params[1])),), damping
      )
      _init(sess)
      diag = np.array([[2.0], [3.0], [4.0]], dtype=np.float32)
      _set(sess, block._factor.get_cov(), diag)
      v = np.array([4.0, 5.0, 6.0], dtype=np.float32)
      inv_out, out, roundtrip, full = self._dense_products(
        sess, block, v, as_list=tensor_damping
      )
    dense = np.diag(diag[:, 0]) + 0.5 * np.eye(3)
    self.assertAllClose(inv_out, np.linalg.inv(dense) @ v)
    self.assertAllClose(out, dense @ v)
    self.assertAllClose(roundtrip, v)
    self.assertAllClose(full, np.diag(diag[:, 0]))


class FullyConnectedDiagonalFBTest(parameterized.TestCase, tf.test.TestCase):
  @staticmethod
  def _oracle(inputs, grads_list, has_bias):
    """D[i, j] = sum over sources of mean_n (a[n, i] g[n, j])^2 (loops)."""
    if has_bias:
      inputs = np.hstack([inputs, np.ones((inputs.shape[0], 1))])
    n, d_in = inputs.shape
    d_out = grads_list[0].shape[1]
    result = np.zeros((d_in, d_out))
    for grads in grads_list:
      for b in range(n):
        for i in range(d_in):
          for j in range(d_out):
            result[i, j] += (inputs[b, i] * grads[b, j]) ** 2 / n
    return result

  def test_tensors_to_compute_grads_lists_outputs(self):
    with tf.Graph().as_default():
      block = fb.FullyConnectedDiagonalFB(lc.LayerCollection())
      self.assertEqual(block.tensors_to_compute_grads(), [])
      out1, out2 = tf.ones((2, 3)), tf.ones((4, 3))
      block.register_additional_minibatch(tf.ones((2, 5)), out1)
      block.register_additional_minibatch(tf.ones((4, 5)), out2)
      outputs = block.tensors_to_compute_grads()
      self.assertLen(outputs, 2)
      self.assertIs(outputs[0], out1)
      self.assertIs(outputs[1], out2)

  @parameterized.named_parameters(
    ("positional", lambda l, x, s: fb.FullyConnectedDiagonalFB(l, x, s)),
    (
      "positional_bias",
      lambda l, x, s: fb.FullyConnectedDiagonalFB(l, x, s, True),
    ),
    (
      "keyword_bias",
      lambda l, x, s: fb.FullyConnectedDiagonalFB(l, x, s, has_bias=True),
    ),
    (
      "keywords",
      lambda l, x, s: fb.FullyConnectedDiagonalFB(
        l, inputs=x, outputs=s, has_bias=False
      ),
    ),
  )
  def test_tf_1_4_0_release_constructor(self, make):
    # TF 1.4.0's (layer_collection, inputs, outputs, has_bias=False): the
    # factor sees the tensors themselves and is named after them.
    rng = np.random.RandomState(3)
    inputs, grads = rng.randn(5, 3), rng.randn(5, 2)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.constant(inputs, dtype=tf.float32, name="x")
      s = tf.constant(np.zeros((5, 2)), dtype=tf.float32, name="s")
      g = tf.constant(grads, dtype=tf.float32, name="g")
      block = make(lc.LayerCollection(), x, s)
      self.assertIs(block.tensors_to_compute_grads(), s)
      self.assertEqual(block._num_registered_minibatches, 1)
      block.instantiate_factors((g,), 0.1)
      names = [v.op.name for v in tf.compat.v1.global_variables()]
      self.assertEqual(names, ["LayerCollection/ff_diagfc/x_g/cov"])
      _init(sess)
      sess.run(block._factor.make_covariance_update_op(0.0))
      self.assertAllClose(
        sess.run(block._factor.get_cov()),
        self._oracle(inputs, [grads], block._has_bias),
        rtol=1e-5,
        atol=1e-6,
      )

  @parameterized.named_parameters(
    ("no_argument", (), {}, False),
    ("positional", (True,), {}, True),
    ("keyword", (), {"has_bias": True}, True),
    ("int_flag", (0,), {}, 0),
  )
  def test_documented_constructor(self, args, kwargs, has_bias):
    with tf.Graph().as_default():
      block = fb.FullyConnectedDiagonalFB(lc.LayerCollection(), *args, **kwargs)
      self.assertEqual(block.tensors_to_compute_grads(), [])
      self.assertEqual(block._has_bias, has_bias)

  @parameterized.named_parameters(
    (
      "missing_outputs",
      lambda l, x: fb.FullyConnectedDiagonalFB(l, x),
      "missing outputs",
    ),
    (
      "missing_inputs",
      lambda l, x: fb.FullyConnectedDiagonalFB(l, outputs=x),
      "missing inputs",
    ),
    (
      "too_many",
      lambda l, x: fb.FullyConnectedDiagonalFB(l, x, x, False, 1),
      "got 4 arguments",
    ),
    (
      "unknown_keyword",
      lambda l, x: fb.FullyConnectedDiagonalFB(l, bias=True),
      "unexpected keyword argument 'bias'",
    ),
    (
      "twice",
      lambda l, x: fb.FullyConnectedDiagonalFB(l, x, x, True, has_bias=True),
      "multiple values for argument 'has_bias'",
    ),
  )
  def test_constructor_arguments_fitting_neither_form(self, make, message):
    with tf.Graph().as_default():
      with self.assertRaisesRegex(TypeError, message):
        make(lc.LayerCollection(), tf.ones((2, 3)))

  def test_release_constructor_then_additional_minibatch_concatenates(self):
    rng = np.random.RandomState(4)
    in1, in2 = rng.randn(2, 3), rng.randn(3, 3)
    g1, g2 = rng.randn(2, 2), rng.randn(3, 2)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      c = lambda v: tf.constant(v, dtype=tf.float32)
      block = fb.FullyConnectedDiagonalFB(
        lc.LayerCollection(), c(in1), c(g1 * 0), True
      )
      block.register_additional_minibatch(c(in2), c(g2 * 0))
      self.assertLen(block.tensors_to_compute_grads(), 2)
      self.assertEqual(block._num_registered_minibatches, 2)
      block.instantiate_factors(([c(g1), c(g2)],), 0.1)
      _init(sess)
      sess.run(block._factor.make_covariance_update_op(0.0))
      self.assertAllClose(
        sess.run(block._factor.get_cov()),
        self._oracle(np.vstack([in1, in2]), [np.vstack([g1, g2])], True),
        rtol=1e-5,
        atol=1e-6,
      )

  def test_instantiate_without_minibatch_raises(self):
    with tf.Graph().as_default():
      block = fb.FullyConnectedDiagonalFB(lc.LayerCollection())
      with self.assertRaisesRegex(ValueError, "no Tensors to concatenate"):
        block.instantiate_factors(([],), 0.1)

  @parameterized.named_parameters(("bias", True), ("no_bias", False))
  def test_two_minibatches_equal_concatenated_batch(self, has_bias):
    rng = np.random.RandomState(0)
    in1, in2 = rng.randn(3, 4), rng.randn(5, 4)
    # Two sources of gradients for each minibatch.
    g1 = [rng.randn(3, 2), rng.randn(3, 2)]
    g2 = [rng.randn(5, 2), rng.randn(5, 2)]
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      c = lambda x: tf.constant(x, dtype=tf.float32)
      block = fb.FullyConnectedDiagonalFB(lc.LayerCollection(), has_bias)
      block.register_additional_minibatch(c(in1), c(g1[0] * 0))
      block.register_additional_minibatch(c(in2), c(g2[0] * 0))
      grads_list = tuple([c(g1[s]), c(g2[s])] for s in range(2))
      block.instantiate_factors(grads_list, 0.1)

      single = fb.FullyConnectedDiagonalFB(lc.LayerCollection(), has_bias)
      single.register_additional_minibatch(
        c(np.vstack([in1, in2])), c(np.zeros((8, 2)))
      )
      single.instantiate_factors(
        tuple([c(np.vstack([g1[s], g2[s]]))] for s in range(2)), 0.1
      )

      self.assertEqual(_inverse_variable_names(), [])
      _init(sess)
      sess.run(
        [
          block._factor.make_covariance_update_op(0.0),
          single._factor.make_covariance_update_op(0.0),
        ]
      )
      cov, single_cov = sess.run(
        [block._factor.get_cov(), single._factor.get_cov()]
      )
      expected = self._oracle(
        np.vstack([in1, in2]),
        [np.vstack([g1[s], g2[s]]) for s in range(2)],
        has_bias,
      )
      self.assertAllClose(cov, expected, rtol=1e-5, atol=1e-6)
      self.assertAllClose(single_cov, expected, rtol=1e-5, atol=1e-6)

  @parameterized.named_parameters(
    ("tuple", True, False),
    ("not_tuple", False, False),
    ("tuple_tensor_damping", True, True),
  )
  def test_multiply_and_inverse_against_dense(self, has_bias, tensor_damping):
    rng = np.random.RandomState(1)
    d_in, d_out, damping = 3, 2, 0.2
    rows = d_in + has_bias
    diag = (rng.rand(rows, d_out) + 0.5).astype(np.float32)
    weights = rng.randn(d_in, d_out).astype(np.float32)
    bias = rng.randn(d_out).astype(np.float32)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      block = fb.FullyConnectedDiagonalFB(lc.LayerCollection(), has_bias)
      block.register_additional_minibatch(
        tf.ones((4, d_in)), tf.ones((4, d_out))
      )
      block.instantiate_factors(
        ([tf.ones((4, d_out))],),
        tf.constant(damping) if tensor_damping else damping,
      )
      _init(sess)
      _set(sess, block._factor.get_cov(), diag)
      if has_bias:
        vector = (tf.constant(weights), tf.constant(bias))
        v = _mat2d(weights, bias).ravel()
      else:
        vector = tf.constant(weights)
        v = weights.ravel()
      dense = np.diag(diag.ravel()) + damping * np.eye(rows * d_out)
      inv_out, out, roundtrip = sess.run(
        (
          block.multiply_inverse(vector),
          block.multiply(vector),
          block.multiply(block.multiply_inverse(vector)),
        )
      )
      if has_bias:
        self.assertEqual(inv_out[0].shape, (d_in, d_out))
        self.assertEqual(inv_out[1].shape, (d_out,))
        inv_out, out, roundtrip = (
          _mat2d(*inv_out),
          _mat2d(*out),
          _mat2d(*roundtrip),
        )
      self.assertAllClose(inv_out.ravel(), np.linalg.inv(dense) @ v, rtol=1e-5)
      self.assertAllClose(out.ravel(), dense @ v, rtol=1e-5)
      self.assertAllClose(roundtrip.ravel(), v, rtol=1e-5)

  def test_single_minibatch_concat_is_named_like_tf_1_4(self):
    # TF 1.4's concat of one tensor was an identity named `concat`, which
    # ends up in the ff_diagfc variable name; TF 2 names it `concat/concat`.
    with tf.Graph().as_default():
      block = fb.FullyConnectedDiagonalFB(lc.LayerCollection())
      block.register_additional_minibatch(
        tf.compat.v1.placeholder(tf.float32, [None, 3], name="x"),
        tf.ones((4, 2)),
      )
      block.instantiate_factors(
        (tf.compat.v1.placeholder(tf.float32, [None, 2], name="g"),), 0.1
      )
      names = [v.op.name for v in tf.compat.v1.global_variables()]
      self.assertEqual(names, ["LayerCollection/ff_diagfc/concat_concat_1/cov"])
      two = fb._concat_along_batch_dim([tf.ones((1, 2)), tf.ones((2, 2))])
      self.assertEqual(two.op.name, "concat_2")

  @parameterized.named_parameters(("bias", True), ("no_bias", False))
  def test_fully_connected_diagonal_two_minibatches_unknown_batch(
    self, has_bias
  ):
    rng = np.random.RandomState(5)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x1 = tf.compat.v1.placeholder(tf.float32, [None, 3])
      x2 = tf.compat.v1.placeholder(tf.float32, [None, 3])
      g1 = tf.compat.v1.placeholder(tf.float32, [None, 2])
      g2 = tf.compat.v1.placeholder(tf.float32, [None, 2])
      block = fb.FullyConnectedDiagonalFB(lc.LayerCollection(), has_bias)
      block.register_additional_minibatch(x1, g1)
      block.register_additional_minibatch(x2, g2)
      block.instantiate_factors(([g1, g2],), 0.1)
      update = block._factor.make_covariance_update_op(0.0)
      _init(sess)
      values = {
        x1: rng.randn(2, 3),
        x2: rng.randn(5, 3),
        g1: rng.randn(2, 2),
        g2: rng.randn(5, 2),
      }
      sess.run(update, values)
      a = np.vstack([values[x1], values[x2]])
      if has_bias:
        a = np.hstack([a, np.ones((7, 1))])
      g = np.vstack([values[g1], values[g2]])
      expected = np.zeros((a.shape[1], 2))
      for n in range(7):
        expected += np.outer(a[n], g[n]) ** 2 / 7.0
      self.assertAllClose(
        sess.run(block._factor.get_cov()), expected, rtol=1e-5
      )


class ConvDiagonalFBTest(parameterized.TestCase, tf.test.TestCase):
  def _build(self, params, strides=(1, 2, 2, 1), damping=0.8):
    inputs = tf.ones((2, 4, 6, 3))
    outputs = tf.ones((2, 2, 3, 5))
    block = fb.ConvDiagonalFB(
      lc.LayerCollection(), params, inputs, outputs, strides, "SAME"
    )
    block.instantiate_factors((outputs,), damping)
    return block

  def _block_4x4(self, strides):
    """A 3x3 SAME block on 4x4 inputs (factors not made yet), its outputs."""
    outputs = tf.ones((2, 4, 4, 5))
    block = fb.ConvDiagonalFB(
      lc.LayerCollection(),
      tf.ones((3, 3, 2, 5)),
      tf.ones((2, 4, 4, 2)),
      outputs,
      strides,
      "SAME",
    )
    return block, outputs

  def test_tensors_to_compute_grads_is_outputs(self):
    with tf.Graph().as_default():
      block, outputs = self._block_4x4((1, 1, 1, 1))
      self.assertIs(block.tensors_to_compute_grads(), outputs)

  @parameterized.named_parameters(
    ("bias_power_1", True, 1.0, False),
    ("no_bias_power_1", False, 1.0, False),
    ("bias_power_0", True, 0.0, False),
    ("no_bias_power_half", False, 0.5, False),
    ("bias_power_1_tensor_damping", True, 1.0, True),
    ("bias_power_0_tensor_damping", True, 0.0, True),
  )
  def test_multiply_and_inverse_against_dense(
    self, has_bias, power, tensor_damping
  ):
    # Inputs 4x6 with strides 2x2: 24 // 4 = 6 locations; the damping used
    # is 0.8 / 6 ** power.
    rng = np.random.RandomState(2)
    filter_shape = (2, 2, 3, 5)
    rows = 2 * 2 * 3 + has_bias
    diag = (rng.rand(rows, 5) + 0.5).astype(np.float32)
    weights = rng.randn(*filter_shape).astype(np.float32)
    bias = rng.randn(5).astype(np.float32)
    with _normalize_damping_power(power):
      with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        kernel = tf.ones(filter_shape)
        params = (kernel, tf.ones(5)) if has_bias else kernel
        damping_arg = (
          tf.compat.v1.placeholder_with_default(0.8, [])
          if tensor_damping
          else 0.8
        )
        block = self._build(params, damping=damping_arg)
        self.assertEqual(_inverse_variable_names(), [])
        _init(sess)
        _set(sess, block._factor.get_cov(), diag)
        if has_bias:
          # A list (weights, bias) works like a tuple.
          vector = [tf.constant(weights), tf.constant(bias)]
          v = _mat2d(weights, bias).ravel()
        else:
          vector = tf.constant(weights)
          v = weights.ravel()
        damping = 0.8 / 6.0**power
        dense = np.diag(diag.ravel()) + damping * np.eye(rows * 5)
        inv_out, out, roundtrip = sess.run(
          (
            block.multiply_inverse(vector),
            block.multiply(vector),
            block.multiply(block.multiply_inverse(vector)),
          )
        )
        if has_bias:
          self.assertEqual(inv_out[0].shape, filter_shape)
          inv_out, out, roundtrip = (
            _mat2d(*inv_out),
            _mat2d(*out),
            _mat2d(*roundtrip),
          )
        self.assertAllClose(
          inv_out.ravel(), np.linalg.inv(dense) @ v, rtol=1e-5
        )
        self.assertAllClose(out.ravel(), dense @ v, rtol=1e-5)
        self.assertAllClose(roundtrip.ravel(), v, rtol=1e-5)

  def test_list_strides_share_factor_with_tuple_strides(self):
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      inputs = tf.ones((2, 4, 4, 2))
      outputs = tf.ones((2, 4, 4, 5))
      blocks = [
        fb.ConvDiagonalFB(
          layers, tf.ones((3, 3, 2, 5)), inputs, outputs, strides, "SAME"
        )
        for strides in ([1, 1, 1, 1], (1, 1, 1, 1))
      ]
      for block in blocks:
        block.instantiate_factors((outputs,), 0.1)
      self.assertIs(blocks[0]._factor, blocks[1]._factor)
      self.assertLen(layers.get_factors(), 1)

  def test_three_strides_raise_when_the_factor_is_made(self):
    # The block reads strides[1:3] only, as in TF 1.4; the factor checks
    # all four when it is made.
    with tf.Graph().as_default():
      block, outputs = self._block_4x4((1, 1, 1))
      with self.assertRaisesRegex(ValueError, "strides must have length 4"):
        block.instantiate_factors((outputs,), 0.1)

  @parameterized.named_parameters(
    ("two_strides", (1, 1)),
    ("float_strides", (1, 1.5, 1, 1)),
    ("tensor_strides", "tensor"),
  )
  def test_bad_strides_raise(self, strides):
    with tf.Graph().as_default():
      if strides == "tensor":
        strides = tf.constant([1, 1, 1, 1])
      with self.assertRaisesRegex(ValueError, "strides"):
        fb.ConvDiagonalFB(
          lc.LayerCollection(),
          tf.ones((3, 3, 2, 5)),
          tf.ones((2, 4, 4, 2)),
          tf.ones((2, 4, 4, 5)),
          strides,
          "SAME",
        )

  def test_unknown_spatial_size_raises(self):
    with tf.Graph().as_default():
      inputs = tf.compat.v1.placeholder(tf.float32, [None, None, None, 2])
      for cls in (fb.ConvDiagonalFB, fb.ConvKFCBasicFB):
        with self.assertRaisesRegex(ValueError, "inputs"):
          cls(
            lc.LayerCollection(),
            tf.ones((3, 3, 2, 5)),
            inputs,
            tf.ones((2, 4, 4, 5)),
            (1, 1, 1, 1),
            "SAME",
          )


class FullyConnectedKFACBasicFBTest(parameterized.TestCase, tf.test.TestCase):
  def test_tensors_to_compute_grads_is_outputs(self):
    with tf.Graph().as_default():
      outputs = tf.ones((3, 2))
      block = fb.FullyConnectedKFACBasicFB(
        lc.LayerCollection(), tf.ones((3, 4)), outputs
      )
      self.assertIs(block.tensors_to_compute_grads(), outputs)

  @parameterized.named_parameters(("bias", True), ("no_bias", False))
  def test_instantiate_factors_registers_one_inverse_per_factor(self, has_bias):
    with tf.Graph().as_default():
      inputs = tf.constant([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0], [5.0, 6.0, 7.0]])
      outputs = tf.constant([[3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
      block = fb.FullyConnectedKFACBasicFB(
        lc.LayerCollection(), inputs, outputs, has_bias=has_bias
      )
      block.instantiate_factors((outputs**2,), 0.5)
      names = _inverse_variable_names()
      self.assertLen(names, 2)
      self.assertTrue(
        any(
          n.startswith("ff_fckron/Const_{}/inv_damp".format(has_bias))
          for n in names
        ),
        names,
      )
      self.assertEqual(
        block._input_factor.get_cov().shape, (3 + has_bias, 3 + has_bias)
      )
      self.assertEqual(block._output_factor.get_cov().shape, (2, 2))

  @parameterized.named_parameters(("tuple", True), ("not_tuple", False))
  def test_multiply_inverse_legacy_value(self, as_tuple):
    # Identity factors (π = 1), damping 0.5: v / (1 + sqrt(0.5))**2.
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      tf.compat.v1.set_random_seed(200)
      inputs = tf.constant([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0], [5.0, 6.0, 7.0]])
      outputs = tf.constant([[3.0, 4.0], [5.0, 6.0]])
      block = fb.FullyConnectedKFACBasicFB(
        lc.LayerCollection(), inputs, outputs, has_bias=False
      )
      block.instantiate_factors((outputs**2,), 0.5)
      _init(sess)
      _run_inverse_updates(sess, block._input_factor, block._output_factor)
      if as_tuple:
        vector = (
          np.arange(2, 6).reshape(2, 2).astype(np.float32),
          np.arange(1, 3).reshape(1, 2).astype(np.float32),
        )
        output = sess.run(
          block.multiply_inverse(
            (tf.constant(vector[0]), tf.constant(vector[1]))
          )
        )
        self.assertAllClose(
          [[0.686291, 1.029437], [1.372583, 1.715729]], output[0]
        )
        self.assertAllClose([0.343146, 0.686291], output[1])
      else:
        vector = np.arange(2, 8).reshape(3, 2).astype(np.float32)
        output = sess.run(block.multiply_inverse(tf.constant(vector)))
        self.assertAllClose(
          [[0.686291, 1.029437], [1.372583, 1.715729]], output[:2]
        )

  def test_multiply_inverse_against_explicit_undamped(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      inputs = tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
      outputs = tf.constant([[3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
      block = fb.FullyConnectedKFACBasicFB(
        lc.LayerCollection(), inputs, outputs, has_bias=True
      )
      block.instantiate_factors((outputs**2,), 0.0)
      _init(sess)
      _set(sess, block._input_factor.get_cov(), _make_psd(3))
      _set(sess, block._output_factor.get_cov(), _make_psd(2))
      _run_inverse_updates(sess, block._input_factor, block._output_factor)
      weights = np.arange(1, 5).reshape(2, 2).astype(np.float32)
      bias = np.arange(5, 7).astype(np.float32)
      output = sess.run(
        block.multiply_inverse((tf.constant(weights), tf.constant(bias)))
      )
      explicit = (
        np.linalg.inv(np.kron(_make_psd(3), _make_psd(2)))
        @ _mat2d(weights, bias).ravel()
      )
      self.assertAllClose(
        _mat2d(*output).ravel(), explicit, rtol=1e-4, atol=1e-5
      )

  @parameterized.named_parameters(
    ("bias_float_damping", True, False),
    ("no_bias_float_damping", False, False),
    ("bias_tensor_damping", True, True),
  )
  def test_pi_damped_multiply_and_inverse_against_dense(
    self, has_bias, tensor_damping
  ):
    rng = np.random.RandomState(3)
    d_in, d_out, damping = 3, 2, 0.1
    rows = d_in + has_bias
    a, g = _random_psd(rng, rows), 4.0 * _random_psd(rng, d_out)
    weights = rng.randn(d_in, d_out).astype(np.float32)
    bias = rng.randn(d_out).astype(np.float32)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      inputs = tf.ones((5, d_in))
      outputs = tf.ones((5, d_out))
      block = fb.FullyConnectedKFACBasicFB(
        lc.LayerCollection(), inputs, outputs, has_bias=has_bias
      )
      block.instantiate_factors(
        (outputs,), tf.constant(damping) if tensor_damping else damping
      )
      _init(sess)
      _set(sess, block._input_factor.get_cov(), a)
      _set(sess, block._output_factor.get_cov(), g)
      _run_inverse_updates(sess, block._input_factor, block._output_factor)
      if has_bias:
        parts = (tf.constant(weights), tf.constant(bias))
        # The tensor-damping case also passes the vector as a list.
        vector = list(parts) if tensor_damping else parts
        v = _mat2d(weights, bias).ravel()
      else:
        vector = tf.constant(weights)
        v = weights.ravel()
      pi = _pi(a, g)
      damped = np.kron(
        a + pi * np.sqrt(damping) * np.eye(rows),
        g + np.sqrt(damping) / pi * np.eye(d_out),
      )
      inv_out, out, roundtrip, full = sess.run(
        (
          block.multiply_inverse(vector),
          block.multiply(vector),
          block.multiply(block.multiply_inverse(vector)),
          block.full_fisher_block(),
        )
      )
      if has_bias:
        inv_out, out, roundtrip = (
          _mat2d(*inv_out),
          _mat2d(*out),
          _mat2d(*roundtrip),
        )
      self.assertAllClose(
        inv_out.ravel(), np.linalg.inv(damped) @ v, rtol=1e-4, atol=1e-5
      )
      self.assertAllClose(out.ravel(), damped @ v, rtol=1e-4, atol=1e-5)
      self.assertAllClose(roundtrip.ravel(), v, rtol=1e-4, atol=1e-5)
      self.assertAllClose(full, np.kron(a, g), rtol=1e-5)

  def test_blocks_with_same_inputs_share_input_factor(self):
    with tf.Graph().as_default():
      layers = lc.LayerCollection()
      inputs = tf.ones((4, 3))
      out1, out2 = tf.ones((4, 2)), tf.ones((4, 5))
      b1 = fb.FullyConnectedKFACBasicFB(layers, inputs, out1, has_bias=True)
      b2 = fb.FullyConnectedKFACBasicFB(layers, inputs, out2, has_bias=True)
      b3 = fb.FullyConnectedKFACBasicFB(layers, inputs, out2, has_bias=False)
      for block, out in ((b1, out1), (b2, out2), (b3, out2)):
        block.instantiate_factors((out,), 0.1)
      self.assertIs(b1._input_factor, b2._input_factor)
      self.assertIsNot(b1._input_factor, b3._input_factor)
      self.assertIsNot(b1._output_factor, b2._output_factor)
      # Input factors: (inputs, bias), (inputs, no bias); output: 2 grads.
      self.assertLen(layers.get_factors(), 4)


class ConvKFCBasicFBTest(parameterized.TestCase, tf.test.TestCase):
  @parameterized.named_parameters(("tuple", True), ("single_list", False))
  def test_tensors_to_compute_grads_is_outputs(self, as_tuple):
    with tf.Graph().as_default():
      tf.compat.v1.set_random_seed(200)
      kernel = tf.random.normal((2, 2, 2, 2))
      params = (kernel, tf.ones(2)) if as_tuple else [kernel]
      outputs = tf.random.normal((2, 2, 2, 2))
      block = fb.ConvKFCBasicFB(
        lc.LayerCollection(),
        params,
        tf.random.normal((2, 2, 2, 2)),
        outputs,
        (1, 1, 1, 1),
        "SAME",
      )
      self.assertIs(block.tensors_to_compute_grads(), outputs)
      self.assertTrue(block._has_bias)

  @parameterized.named_parameters(
    ("tuple", "tuple"),
    ("not_tuple", "tensor"),
    ("not_tuple_with_bias", "one_element_list"),
  )
  def test_multiply_inverse_legacy_value(self, kind):
    # Identity factors (π = 1), damping 0.5 / 4 locations, divided by 4:
    # v / (4 * (1 + sqrt(0.125))**2).
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      tf.compat.v1.set_random_seed(200)
      kernel = tf.random.normal((2, 2, 2, 2))
      params = {
        "tuple": (kernel, tf.ones(2)),
        "tensor": kernel,
        "one_element_list": [kernel],
      }[kind]
      inputs = tf.random.normal((2, 2, 2, 2))
      outputs = tf.random.normal((2, 2, 2, 2))
      block = fb.ConvKFCBasicFB(
        lc.LayerCollection(), params, inputs, outputs, (1, 1, 1, 1), "SAME"
      )
      self.assertEqual(block._has_bias, kind != "tensor")
      block.instantiate_factors((outputs**2,), 0.5)
      _init(sess)
      _run_inverse_updates(sess, block._input_factor, block._output_factor)
      if kind == "tuple":
        vector = (
          np.arange(1, 17).reshape(2, 2, 2, 2).astype(np.float32),
          np.arange(2, 4).astype(np.float32),
        )
        output = sess.run(
          block.multiply_inverse(
            (tf.constant(vector[0]), tf.constant(vector[1]))
          )
        )
        self.assertAllClose([0.136455, 0.27291], output[0][0][0][0])
        self.assertAllClose([0.27291, 0.409365], output[1])
      elif kind == "tensor":
        vector = np.arange(1, 17).reshape(8, 2).astype(np.float32)
        output = sess.run(block.multiply_inverse(tf.constant(vector)))
        self.assertAllClose([0.136455, 0.27291], output[0])
      else:
        vector = np.arange(1, 19).reshape(9, 2).astype(np.float32)
        output = sess.run(block.multiply_inverse(tf.constant(vector)))
        self.assertEqual(output.shape, (9, 2))
        self.assertAllClose([0.136455, 0.27291], output[0])

  def test_multiply_inverse_against_explicit_undamped(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      tf.compat.v1.set_random_seed(200)
      params = tf.random.normal((2, 2, 2, 2))
      inputs = tf.random.normal((2, 2, 2, 2))
      outputs = tf.random.normal((2, 2, 2, 2))
      block = fb.ConvKFCBasicFB(
        lc.LayerCollection(), params, inputs, outputs, (1, 1, 1, 1), "SAME"
      )
      block.instantiate_factors((outputs**2,), 0.0)
      _init(sess)
      _set(sess, block._input_factor.get_cov(), _make_psd(8))
      _set(sess, block._output_factor.get_cov(), _make_psd(2))
      _run_inverse_updates(sess, block._input_factor, block._output_factor)
      vector = np.arange(2, 18).reshape(2, 2, 2, 2).astype(np.float32)
      output, full = sess.run(
        (block.multiply_inverse(tf.constant(vector)), block.full_fisher_block())
      )
      self.assertAllClose(full, 4.0 * np.kron(_make_psd(8), _make_psd(2)))
      explicit = np.linalg.inv(full) @ vector.ravel()
      self.assertAllClose(output.ravel(), explicit, rtol=1e-4, atol=1e-5)

  @parameterized.named_parameters(
    ("power_1_list_strides", 1.0, [1, 2, 2, 1], False),
    ("power_1_tuple_strides", 1.0, (1, 2, 2, 1), False),
    ("power_0", 0.0, (1, 2, 2, 1), False),
    ("power_1_tensor_damping", 1.0, (1, 2, 2, 1), True),
    ("power_0_tensor_damping", 0.0, (1, 2, 2, 1), True),
  )
  def test_pi_damped_multiply_and_inverse_against_dense(
    self, power, strides, tensor_damping
  ):
    # Inputs 4x6, strides 2x2: L = 24 // 4 = 6 locations. The block is
    # L (A + π sqrt(λ') I) ⊗ (G + sqrt(λ')/π I) with λ' = λ / L**power.
    rng = np.random.RandomState(4)
    filter_shape, damping, num_locations = (2, 2, 3, 5), 0.3, 6
    rows = 2 * 2 * 3 + 1
    a, g = _random_psd(rng, rows), 3.0 * _random_psd(rng, 5)
    weights = rng.randn(*filter_shape).astype(np.float32)
    bias = rng.randn(5).astype(np.float32)
    with _normalize_damping_power(power):
      with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        inputs = tf.ones((2, 4, 6, 3))
        outputs = tf.ones((2, 2, 3, 5))
        block = fb.ConvKFCBasicFB(
          lc.LayerCollection(),
          (tf.ones(filter_shape), tf.ones(5)),
          inputs,
          outputs,
          strides,
          "SAME",
        )
        block.instantiate_factors(
          (outputs,),
          tf.compat.v1.placeholder_with_default(damping, [])
          if tensor_damping
          else damping,
        )
        self.assertLen(_inverse_variable_names(), 2)
        _init(sess)
        _set(sess, block._input_factor.get_cov(), a)
        _set(sess, block._output_factor.get_cov(), g)
        _run_inverse_updates(sess, block._input_factor, block._output_factor)
        vector = (tf.constant(weights), tf.constant(bias))
        v = _mat2d(weights, bias).ravel()
        pi = _pi(a, g)
        normalized = damping / num_locations**power
        damped = num_locations * np.kron(
          a + pi * np.sqrt(normalized) * np.eye(rows),
          g + np.sqrt(normalized) / pi * np.eye(5),
        )
        inv_out, out, roundtrip, full = sess.run(
          (
            block.multiply_inverse(vector),
            block.multiply(vector),
            block.multiply(block.multiply_inverse(vector)),
            block.full_fisher_block(),
          )
        )
        self.assertEqual(inv_out[0].shape, filter_shape)
        self.assertAllClose(
          _mat2d(*inv_out).ravel(),
          np.linalg.inv(damped) @ v,
          rtol=1e-4,
          atol=1e-5,
        )
        self.assertAllClose(
          _mat2d(*out).ravel(), damped @ v, rtol=1e-4, atol=1e-4
        )
        self.assertAllClose(_mat2d(*roundtrip).ravel(), v, rtol=1e-4, atol=1e-4)
        self.assertAllClose(full, num_locations * np.kron(a, g), rtol=1e-5)


class ModuleTest(tf.test.TestCase):
  def test_set_global_constants(self):
    old_power = fb.NORMALIZE_DAMPING_POWER
    self.assertEqual(old_power, 1.0)
    try:
      fb.set_global_constants(normalize_damping_power=0.5)
      self.assertEqual(fb.NORMALIZE_DAMPING_POWER, 0.5)
      fb.set_global_constants()
      self.assertEqual(fb.NORMALIZE_DAMPING_POWER, 0.5)
    finally:
      fb.set_global_constants(normalize_damping_power=old_power)

  def test_abstract_blocks_cannot_be_instantiated(self):
    with self.assertRaises(TypeError):
      fb.FisherBlock(None)
    with self.assertRaises(TypeError):
      fb.KroneckerProductFB(None)

  def test_concat_along_batch_dim(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = [np.ones((2, 3)), 2 * np.ones((1, 3))]
      y = [np.ones((2, 1)), 3 * np.ones((1, 1))]
      tensors = sess.run(
        fb._concat_along_batch_dim([tf.constant(t) for t in x])
      )
      self.assertAllClose(tensors, np.vstack(x))
      tuples = sess.run(
        fb._concat_along_batch_dim(
          [(tf.constant(a), tf.constant(b)) for a, b in zip(x, y)]
        )
      )
      self.assertIsInstance(tuples, tuple)
      self.assertAllClose(tuples[0], np.vstack(x))
      self.assertAllClose(tuples[1], np.vstack(y))
      with self.assertRaises(ValueError):
        fb._concat_along_batch_dim([])


class AllBlockTypesTest(parameterized.TestCase, tf.test.TestCase):
  """Damping types, vector shapes and batch sizes, across block types."""

  @parameterized.named_parameters(("int", 1), ("float64_tensor", "float64"))
  def test_kronecker_damping_int_or_float64(self, damping):
    # tf.sqrt has no integer kernel: an int damping used to fail.
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      if damping == "float64":
        damping = tf.constant(1.0, dtype=tf.float64)
      block = fb.FullyConnectedKFACBasicFB(
        lc.LayerCollection(), tf.ones((4, 3)), tf.ones((4, 2))
      )
      block.instantiate_factors((tf.ones((4, 2)),), damping)
      _init(sess)
      _run_inverse_updates(sess, block._input_factor, block._output_factor)
      # Identity factors, π = 1: (1 + 1) * (1 + 1) = 4.
      out = sess.run(block.multiply_inverse(tf.ones((3, 2))))
      self.assertAllClose(out, np.full((3, 2), 0.25))

  def _blocks(self, damping=0.1):
    """One instantiated block of each type, with the vector shape it takes."""
    layers = lc.LayerCollection()
    full = fb.FullFB(layers, (tf.ones(3), tf.ones(())), 8)
    full.instantiate_factors(((tf.ones(3), tf.ones(())),), damping)
    naive = fb.NaiveDiagonalFB(layers, (tf.ones(3), tf.ones(())), 8)
    naive.instantiate_factors(((tf.ones(3), tf.ones(())),), damping)
    fc_diag = fb.FullyConnectedDiagonalFB(layers, has_bias=False)
    fc_diag.register_additional_minibatch(tf.ones((4, 3)), tf.ones((4, 2)))
    fc_diag.instantiate_factors(([tf.ones((4, 2))],), damping)
    fc_kron = fb.FullyConnectedKFACBasicFB(
      layers, tf.ones((4, 3)), tf.ones((4, 2))
    )
    fc_kron.instantiate_factors((tf.ones((4, 2)),), damping)
    conv_args = (
      tf.ones((2, 2, 2, 3)),
      tf.ones((2, 4, 4, 2)),
      tf.ones((2, 4, 4, 3)),
      (1, 1, 1, 1),
      "SAME",
    )
    conv_diag = fb.ConvDiagonalFB(layers, *conv_args)
    conv_diag.instantiate_factors((tf.ones((2, 4, 4, 3)),), damping)
    conv_kron = fb.ConvKFCBasicFB(layers, *conv_args)
    conv_kron.instantiate_factors((tf.ones((2, 4, 4, 3)),), damping)
    return {
      "full": full,
      "naive": naive,
      "fc_diag": fc_diag,
      "fc_kron": fc_kron,
      "conv_diag": conv_diag,
      "conv_kron": conv_kron,
    }

  @parameterized.named_parameters(
    ("full_short", "full", lambda: (tf.ones(2), tf.ones(()))),
    ("naive_short", "naive", lambda: (tf.ones(1),)),
    ("naive_long", "naive", lambda: tf.ones(5)),
    ("fc_diag_one_column", "fc_diag", lambda: tf.ones((3, 1))),
    ("fc_diag_one_row", "fc_diag", lambda: tf.ones((1, 2))),
    (
      "fc_diag_bias_on_no_bias",
      "fc_diag",
      lambda: (tf.ones((3, 2)), tf.ones(2)),
    ),
    ("fc_kron_one_column", "fc_kron", lambda: tf.ones((3, 1))),
    (
      "conv_diag_bias_on_no_bias",
      "conv_diag",
      lambda: [tf.ones((2, 2, 2, 3)), tf.ones(3)],
    ),
    ("conv_diag_one_channel", "conv_diag", lambda: tf.ones((2, 2, 2, 1))),
    ("conv_kron_one_channel", "conv_kron", lambda: tf.ones((2, 2, 2, 1))),
  )
  def test_vector_of_wrong_shape_raises(self, kind, make_vector):
    # The diagonal blocks used to broadcast (or, for NaiveDiagonalFB,
    # truncate) a vector of the wrong size without an error.
    with tf.Graph().as_default():
      block = self._blocks()[kind]
      for method in (block.multiply, block.multiply_inverse):
        with self.assertRaisesRegex(ValueError, "vector"):
          method(make_vector())

  @parameterized.named_parameters(
    ("float", 8.0),
    ("zero", 0),
    ("bool", True),
    ("string", "8"),
    ("vector_tensor", "tensor"),
  )
  def test_bad_batch_size_raises_at_construction(self, batch_size):
    with tf.Graph().as_default():
      if batch_size == "tensor":
        batch_size = tf.constant([8, 8])
      for cls in (fb.FullFB, fb.NaiveDiagonalFB):
        with self.assertRaisesRegex(ValueError, "batch_size"):
          cls(lc.LayerCollection(), (tf.ones(3),), batch_size)

  def test_numpy_int_batch_size_accepted(self):
    with tf.Graph().as_default():
      block = fb.FullFB(lc.LayerCollection(), (tf.ones(3),), np.int64(8))
      block.instantiate_factors(((tf.ones(3),),), 0.1)
      self.assertTrue(block._factor.get_cov().op.name.endswith("_8/cov"))

  @parameterized.named_parameters(
    ("full", "full", lambda: (tf.ones(3) * [1.0, 2.0, 3.0], tf.ones(()))),
    ("naive", "naive", lambda: (tf.ones(3) * [1.0, 2.0, 3.0], tf.ones(()))),
    ("fc_diag", "fc_diag", lambda: tf.reshape(tf.range(6.0), (3, 2))),
    ("fc_kron", "fc_kron", lambda: tf.reshape(tf.range(6.0), (3, 2))),
    (
      "conv_diag",
      "conv_diag",
      lambda: tf.reshape(tf.range(24.0), (2, 2, 2, 3)),
    ),
    (
      "conv_kron",
      "conv_kron",
      lambda: tf.reshape(tf.range(24.0), (2, 2, 2, 3)),
    ),
  )
  def test_float64_tensor_damping_matches_float(self, kind, make_vector):
    # The factor variables are float32; a float64 damping Tensor used to
    # fail (diagonal blocks, FullFB.multiply, Kronecker sqrt) at graph
    # construction.
    results = []
    for damping in (0.25, "float64"):
      with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        if damping == "float64":
          damping = tf.constant(0.25, dtype=tf.float64)
        block = self._blocks(damping)[kind]
        factors = [
          getattr(block, name)
          for name in ("_factor", "_input_factor", "_output_factor")
          if hasattr(block, name)
        ]
        _init(sess)
        _run_inverse_updates(sess, *factors)
        covs = sess.run([f.get_cov() for f in factors])
        vector = make_vector()
        results.append(
          sess.run((block.multiply(vector), block.multiply_inverse(vector)))
        )
        vector_value = sess.run(vector)
    self.assertAllClose(results[0], results[1])
    # NumPy oracle: the covariances are still at their initial value (the
    # identity, or ones for the diagonal factors), so every block is a
    # multiple of the identity: (1 + 0.25) for the full and diagonal blocks,
    # (1 + √0.25)(1 + √0.25) for the fully connected Kronecker one (π = 1);
    # the conv blocks see the damping divided by L^power, L = 4·4 output
    # locations, and the Kronecker one is L · (1 + √(0.25/L))².
    for cov in covs:
      self.assertAllClose(
        cov,
        np.eye(len(cov))
        if kind in ("full", "fc_kron", "conv_kron")
        else np.ones_like(cov),
      )
    locations = 16.0
    conv_damping = 0.25 / locations**fb.NORMALIZE_DAMPING_POWER
    scale = {
      "full": 1.25,
      "naive": 1.25,
      "fc_diag": 1.25,
      "fc_kron": 2.25,
      "conv_diag": 1.0 + conv_damping,
      "conv_kron": locations * (1.0 + np.sqrt(conv_damping)) ** 2,
    }[kind]
    flat = lambda parts: np.concatenate(
      [
        np.ravel(p)
        for p in (parts if isinstance(parts, (tuple, list)) else [parts])
      ]
    )
    for multiplied, inverted in results:
      self.assertAllClose(
        flat(multiplied), scale * flat(vector_value), rtol=1e-5
      )
      self.assertAllClose(flat(inverted), flat(vector_value) / scale, rtol=1e-5)
