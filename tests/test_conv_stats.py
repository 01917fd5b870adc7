"""Tests for kfac._conv_stats and the factors that use it.

The lag formulation of the patches' second moment and the ConvDiagonalFactor
formulations are compared with NumPy oracles written with explicit loops and
with the 2017 reference formulations, for static and unknown batch (and
spatial) sizes, strides 1 and 2, SAME and VALID, with and without bias, and
with several gradient sources.
"""

import math
import os
from unittest import mock

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from kfac import _conv_stats
from kfac import fisher_factors as ff
from kfac import utils


def _out_and_pad(size, kernel, stride, padding):
  """(output size, padding before) of a convolution along one axis."""
  if padding == "SAME":
    out = int(math.ceil(size / stride))
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2
  return int(math.ceil((size - kernel + 1) / stride)), 0


def _patches(x, kernel, strides, padding):
  """Patches `[B·out_h·out_w, kh·kw·C]` of `x`, built entry by entry."""
  batch, height, width, channels = x.shape
  out_h, top = _out_and_pad(height, kernel[0], strides[0], padding)
  out_w, left = _out_and_pad(width, kernel[1], strides[1], padding)
  rows = []
  for b in range(batch):
    for i in range(out_h):
      for j in range(out_w):
        patch = np.zeros((kernel[0], kernel[1], channels))
        for di in range(kernel[0]):
          for dj in range(kernel[1]):
            row, col = i * strides[0] + di - top, j * strides[1] + dj - left
            if 0 <= row < height and 0 <= col < width:
              patch[di, dj] = x[b, row, col]
        rows.append(patch.reshape(-1))
  return np.array(rows), (batch, out_h, out_w)


def _second_moment_oracle(x, kernel, strides, padding, has_bias):
  """Mean outer product of the patches (a trailing one if `has_bias`)."""
  rows, _ = _patches(x, kernel, strides, padding)
  if has_bias:
    rows = np.hstack([rows, np.ones((rows.shape[0], 1))])
  total = np.zeros((rows.shape[1], rows.shape[1]))
  for row in rows:
    total += np.outer(row, row)
  return total / rows.shape[0]


def _diagonal_oracle(x, grads_list, kernel, strides, padding, has_bias):
  """Batch mean of the squared per-example filter (and bias) gradients."""
  rows, (batch, out_h, out_w) = _patches(x, kernel, strides, padding)
  patches = rows.reshape(batch, out_h * out_w, -1)
  total = 0.0
  for g in grads_list:
    g = g.reshape(batch, out_h * out_w, -1)
    for b in range(batch):
      per_example = patches[b].T.dot(g[b])
      if has_bias:
        per_example = np.vstack([per_example, g[b].sum(axis=0)[None]])
      total = total + per_example**2
  return total / batch


def _op_types(graph):
  return {op.type for op in graph.get_operations()}


# (kernel, strides, padding, has_bias, height, width)
_GEOMETRIES = (
  ("same_s1_3x3", (3, 3), (1, 1), "SAME", False, 6, 5),
  ("same_s1_5x5_bias", (5, 5), (1, 1), "SAME", True, 7, 6),
  ("same_s1_even_kernel", (4, 2), (1, 1), "SAME", True, 5, 6),
  ("valid_s1_bias", (3, 2), (1, 1), "VALID", True, 6, 5),
  ("same_s2_bias", (3, 3), (2, 2), "SAME", True, 7, 8),
  ("same_s2_odd_pad", (4, 4), (2, 2), "SAME", False, 8, 7),
  ("valid_s2", (5, 3), (2, 2), "VALID", False, 9, 8),
  ("valid_s2_1_bias", (3, 3), (2, 1), "VALID", True, 7, 6),
  ("kernel_larger_than_image", (5, 5), (1, 1), "SAME", True, 3, 2),
  ("one_by_one_s2", (1, 1), (2, 2), "SAME", True, 5, 4),
)


class ConvInputSecondMomentTest(parameterized.TestCase):
  @parameterized.named_parameters(*_GEOMETRIES)
  def test_matches_oracle_and_reference(
    self, kernel, strides, padding, has_bias, height, width
  ):
    rng = np.random.RandomState(0)
    channels = 2
    x_value = rng.randn(3, height, width, channels).astype(np.float32)
    filter_shape = kernel + (channels, 4)
    strides = (1,) + strides + (1,)
    expected = _second_moment_oracle(
      x_value, kernel, strides[1:3], padding, has_bias
    )
    # Static sizes, unknown batch, unknown batch and spatial sizes.
    for static_shape in (
      [3, height, width, channels],
      [None, height, width, channels],
      [None, None, None, channels],
    ):
      with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        x = tf.compat.v1.placeholder(tf.float32, static_shape)
        fast = _conv_stats.conv_input_second_moment(
          x, filter_shape, strides, padding, has_bias
        )
        reference = _conv_stats.reference_conv_input_second_moment(
          x, filter_shape, strides, padding, has_bias
        )
        self.assertNotIn(
          "ExtractImagePatches", {op.type for op in _ancestors(fast)}
        )
        fast_value, reference_value = sess.run([fast, reference], {x: x_value})
      size = kernel[0] * kernel[1] * channels + has_bias
      self.assertEqual(fast_value.shape, (size, size))
      np.testing.assert_allclose(fast_value, expected, rtol=1e-5, atol=1e-5)
      np.testing.assert_allclose(
        fast_value, reference_value, rtol=1e-5, atol=1e-5
      )
      np.testing.assert_array_equal(fast_value, fast_value.T)

  def test_float64_is_exact(self):
    rng = np.random.RandomState(1)
    x_value = rng.randn(2, 6, 7, 3)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.compat.v1.placeholder(tf.float64, [None, 6, 7, 3])
      fast = _conv_stats.conv_input_second_moment(
        x, (3, 5, 3, 2), (1, 1, 2, 1), "SAME", True
      )
      self.assertEqual(fast.dtype, tf.float64)
      value = sess.run(fast, {x: x_value})
    np.testing.assert_allclose(
      value,
      _second_moment_oracle(x_value, (3, 5), (1, 2), "SAME", True),
      rtol=1e-12,
      atol=1e-12,
    )

  @parameterized.named_parameters(
    ("s1_3x3", (3, 3, 4, 1), (1, 1, 1, 1), [None, 8, 8, 4], True),
    (
      "s1_5x5_unknown_sizes",
      (5, 5, 4, 1),
      (1, 1, 1, 1),
      [None, None, None, 4],
      True,
    ),
    ("s1_1x1", (1, 1, 4, 1), (1, 1, 1, 1), [None, 8, 8, 4], False),
    ("s2_3x3", (3, 3, 4, 1), (1, 2, 2, 1), [None, 8, 8, 4], False),
    ("s2_5x5", (5, 5, 4, 1), (1, 2, 2, 1), [None, 16, 16, 4], True),
    (
      "s2_7x7_unknown_sizes",
      (7, 7, 3, 1),
      (1, 2, 2, 1),
      [None, None, None, 3],
      True,
    ),
    ("channels_differ", (3, 3, 1, 1), (1, 1, 1, 1), [None, 8, 8, 2], False),
    ("channels_unknown", (3, 3, 2, 1), (1, 1, 1, 1), [None, 8, 8, None], False),
  )
  def test_lag_formulation_applies(
    self, filter_shape, strides, shape, expected
  ):
    with tf.Graph().as_default() as graph:
      x = tf.compat.v1.placeholder(tf.float32, shape)
      count = len(graph.get_operations())
      self.assertEqual(
        _conv_stats.lag_formulation_applies(x, filter_shape, strides, "SAME"),
        expected,
      )
      # Deciding builds nothing.
      self.assertLen(graph.get_operations(), count)


def _ancestors(tensor):
  """The ops `tensor` depends on."""
  seen, stack = set(), [tensor.op]
  while stack:
    op = stack.pop()
    if op in seen:
      continue
    seen.add(op)
    stack.extend(t.op for t in op.inputs)
  return seen


_DECAY = 0.5


class ConvInputKroneckerFactorTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("static_s1_same", [2, 6, 6, 2], (3, 3), (1, 1), "SAME", True, False),
    (
      "unknown_batch_s1_same",
      [None, 6, 6, 2],
      (3, 3),
      (1, 1),
      "SAME",
      True,
      False,
    ),
    (
      "unknown_batch_s1_valid",
      [None, 6, 5, 2],
      (3, 2),
      (1, 1),
      "VALID",
      False,
      False,
    ),
    (
      "unknown_sizes_s2_same",
      [None, None, None, 2],
      (5, 5),
      (2, 2),
      "SAME",
      True,
      False,
    ),
    (
      "unknown_batch_s2_reference_chosen",
      [None, 7, 7, 2],
      (3, 3),
      (2, 2),
      "VALID",
      True,
      True,
    ),
  )
  def test_update_uses_lag_formulation(
    self, shape, kernel, strides, padding, has_bias, uses_patches
  ):
    rng = np.random.RandomState(2)
    channels = shape[3]
    x_values = [
      rng.randn(
        2,
        6 if shape[1] is None else shape[1],
        6 if shape[2] is None else shape[2],
        channels,
      ).astype(np.float32)
      for _ in range(2)
    ]
    size = kernel[0] * kernel[1] * channels + has_bias
    results = []
    for cls in (
      ff.ConvInputKroneckerFactor,
      ff._ReferenceConvInputKroneckerFactor,
    ):
      with tf.Graph().as_default() as graph, tf.compat.v1.Session() as sess:
        x = tf.compat.v1.placeholder(tf.float32, shape, name="x")
        factor = cls(
          x,
          kernel + (channels, 3),
          (1,) + strides + (1,),
          padding,
          has_bias=has_bias,
        )
        self.assertEqual(
          factor.get_cov().op.name,
          "ff_convinkron/x_{}-{}-{}-3_1-{}-{}-1_{}_{}/cov".format(
            kernel[0],
            kernel[1],
            channels,
            strides[0],
            strides[1],
            padding,
            has_bias,
          ),
        )
        update = factor.make_covariance_update_op(_DECAY)
        self.assertEqual(
          "ExtractImagePatches" in {op.type for op in _ancestors(update)},
          uses_patches or cls is not ff.ConvInputKroneckerFactor,
        )
        sess.run(tf.compat.v1.global_variables_initializer())
        for value in x_values:
          sess.run(update, {x: value})
        results.append(sess.run(factor.get_cov()))
      del graph
    expected = np.eye(size)
    for value in x_values:
      new = _second_moment_oracle(value, kernel, strides, padding, has_bias)
      expected = _DECAY * expected + (1 - _DECAY) * new
    for result in results:
      np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)


class ConvDiagonalFactorTest(parameterized.TestCase):
  @parameterized.named_parameters(
    (
      "static_s1_same_one_source",
      [3, 6, 6, 2],
      (3, 3),
      (1, 1),
      "SAME",
      False,
      1,
    ),
    (
      "unknown_batch_s1_same_bias_two_sources",
      [None, 6, 6, 2],
      (3, 3),
      (1, 1),
      "SAME",
      True,
      2,
    ),
    (
      "unknown_batch_s2_valid_bias",
      [None, 7, 6, 3],
      (3, 2),
      (2, 2),
      "VALID",
      True,
      1,
    ),
    (
      "static_s2_same_two_sources",
      [3, 7, 7, 1],
      (5, 5),
      (2, 2),
      "SAME",
      False,
      2,
    ),
    (
      "unknown_sizes_s1_valid",
      [None, None, None, 2],
      (2, 3),
      (1, 1),
      "VALID",
      True,
      2,
    ),
  )
  def test_fast_and_reference_match_oracle(
    self, shape, kernel, strides, padding, has_bias, num_sources
  ):
    rng = np.random.RandomState(3)
    batch, height, width = (
      3,
      7 if shape[1] is None else shape[1],
      (6 if shape[2] is None else shape[2]),
    )
    channels, out_channels = shape[3], 4
    out_h, _ = _out_and_pad(height, kernel[0], strides[0], padding)
    out_w, _ = _out_and_pad(width, kernel[1], strides[1], padding)
    x_value = rng.randn(batch, height, width, channels).astype(np.float32)
    g_values = [
      rng.randn(batch, out_h, out_w, out_channels).astype(np.float32)
      for _ in range(num_sources)
    ]
    expected = _diagonal_oracle(
      x_value, g_values, kernel, strides, padding, has_bias
    )
    grad_shape = (
      [shape[0]]
      + ([out_h, out_w] if shape[1] is not None else [None, None])
      + [out_channels]
    )
    for cls in (ff.ConvDiagonalFactor, ff._ReferenceConvDiagonalFactor):
      with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        x = tf.compat.v1.placeholder(tf.float32, shape)
        gs = [
          tf.compat.v1.placeholder(tf.float32, grad_shape)
          for _ in range(num_sources)
        ]
        factor = cls(
          x,
          gs,
          kernel + (channels, out_channels),
          (1,) + strides + (1,),
          padding,
          has_bias=has_bias,
        )
        new_cov = factor._compute_total_new_cov()
        feed = dict(zip(gs, g_values))
        feed[x] = x_value
        value = sess.run(new_cov, feed)
      self.assertEqual(
        "ExtractImagePatches" in {op.type for op in _ancestors(new_cov)},
        cls is ff._ReferenceConvDiagonalFactor,
      )
      np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-4)


class ConvDiagonalLoopTest(parameterized.TestCase):
  """Unknown batch sizes loop over chunks of a static number of examples."""

  def setUp(self):
    super(ConvDiagonalLoopTest, self).setUp()
    saved = ff._CONVDIAG_CHUNK_BYTES, ff._CONVDIAG_METHOD
    self.addCleanup(self._restore, saved)
    # Chunks of 2 examples: 4 bytes·(5·4·2 + 5·4·3 + 3·3·2·3) = 616 bytes
    # each (inputs, gradients, per-example filter gradients).
    ff._CONVDIAG_CHUNK_BYTES = 1232
    ff._CONVDIAG_METHOD = "grouped_conv"

  def _restore(self, saved):
    ff._CONVDIAG_CHUNK_BYTES, ff._CONVDIAG_METHOD = saved

  @parameterized.named_parameters(
    ("one_source_bias", 1, True), ("two_sources", 2, False)
  )
  def test_loop_matches_oracle(self, num_sources, has_bias):
    if not ff._grouped_filter_gradient_supported():
      self.skipTest("no grouped filter gradient kernel on this machine")
    rng = np.random.RandomState(4)
    x_value = rng.randn(5, 5, 4, 2).astype(np.float32)  # 3 chunks: 2, 2, 1
    g_values = [
      rng.randn(5, 5, 4, 3).astype(np.float32) for _ in range(num_sources)
    ]
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      x = tf.compat.v1.placeholder(tf.float32, [None, 5, 4, 2])
      gs = [
        tf.compat.v1.placeholder(tf.float32, [None, 5, 4, 3])
        for _ in range(num_sources)
      ]
      factor = ff.ConvDiagonalFactor(
        x, gs, (3, 3, 2, 3), (1, 1, 1, 1), "SAME", has_bias=has_bias
      )
      self.assertEqual(factor._loop_chunk_size, 2)
      new_cov = factor._compute_total_new_cov()
      feed = dict(zip(gs, g_values))
      feed[x] = x_value
      value = sess.run(new_cov, feed)
      # A gradient with another batch size fails when run.
      feed[gs[0]] = g_values[0][:4]
      with self.assertRaises(tf.errors.InvalidArgumentError):
        sess.run(new_cov, feed)
    np.testing.assert_allclose(
      value,
      _diagonal_oracle(x_value, g_values, (3, 3), (1, 1), "SAME", has_bias),
      rtol=1e-4,
      atol=1e-4,
    )


class GroupedKernelChoiceTest(parameterized.TestCase):
  def setUp(self):
    super(GroupedKernelChoiceTest, self).setUp()
    saved = ff._GROUPED_FILTER_GRADIENT_SUPPORTED

    def restore():
      ff._GROUPED_FILTER_GRADIENT_SUPPORTED = saved

    self.addCleanup(restore)

  @parameterized.named_parameters(("zero", "0"), ("false", "False"))
  def test_onednn_turned_off(self, value):
    ff._GROUPED_FILTER_GRADIENT_SUPPORTED = None
    with mock.patch.dict(os.environ, {"TF_ENABLE_ONEDNN_OPTS": value}):
      self.assertFalse(ff._grouped_filter_gradient_supported())

  def test_decided_without_running_a_session(self):
    ff._GROUPED_FILTER_GRADIENT_SUPPORTED = None
    with mock.patch.object(tf.compat.v1, "Session") as session:
      ff._grouped_filter_gradient_supported()
    session.assert_not_called()


class ReferenceFactorClassTest(parameterized.TestCase):
  def test_mapping(self):
    self.assertIs(
      ff._reference_factor_class(ff.ConvInputKroneckerFactor),
      ff._ReferenceConvInputKroneckerFactor,
    )
    self.assertIs(
      ff._reference_factor_class(ff.ConvDiagonalFactor),
      ff._ReferenceConvDiagonalFactor,
    )
    self.assertIs(
      ff._reference_factor_class(ff.ConvOutputKroneckerFactor),
      ff._ReferenceConvOutputKroneckerFactor,
    )
    self.assertIs(
      ff._reference_factor_class(ff.FullyConnectedKroneckerFactor),
      ff._ReferenceFullyConnectedKroneckerFactor,
    )
    self.assertIs(
      ff._reference_factor_class(ff.FullFactor), ff._ReferenceFullFactor
    )
    # Factors computed as in 2017 map to themselves.
    self.assertIs(
      ff._reference_factor_class(ff.FullyConnectedDiagonalFactor),
      ff.FullyConnectedDiagonalFactor,
    )
    for cls, reference in ff._REFERENCE_FACTOR_CLASSES.items():
      self.assertTrue(issubclass(reference, cls))

  def test_reference_inverse_is_the_2017_cholesky_solve(self):
    # A 1101x1101 input factor: ours inverts it by blocks of its Cholesky
    # factor, the reference class by cholesky_solve against the identity,
    # both equal to NumPy's inverse up to rounding, in variables of the same
    # names.
    rng = np.random.RandomState(0)
    inputs = rng.randn(64, 1100).astype(np.float32)
    damping = 0.1
    values, names, solve_sizes = {}, {}, {}
    for cls in (
      ff.FullyConnectedKroneckerFactor,
      ff._ReferenceFullyConnectedKroneckerFactor,
    ):
      with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        factor = cls((tf.constant(inputs),), has_bias=True)
        factor.register_damped_inverse(damping)
        update = factor.make_covariance_update_op(0.0)
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(update)
        sess.run(factor.make_inverse_update_ops())
        values[cls] = sess.run(factor.get_inverse(damping))
        names[cls] = sorted(v.op.name for v in tf.compat.v1.global_variables())
        solve_sizes[cls] = max(
          op.inputs[0].shape.as_list()[0]
          for op in sess.graph.get_operations()
          if op.type == "MatrixTriangularSolve"
        )
    # Ours solves triangular blocks of at most 1024 rows; 2017 the whole.
    ours, reference = solve_sizes.values()
    self.assertLessEqual(ours, utils._BLOCKED_INVERSE_MAX_BLOCK)
    self.assertEqual(reference, 1101)
    homog = np.concatenate([inputs, np.ones([64, 1], np.float32)], axis=1)
    cov = homog.astype(np.float64).T.dot(homog) / 64
    expected = np.linalg.inv(cov + damping * np.eye(1101))
    scale = np.abs(expected).max()
    for value in values.values():
      np.testing.assert_allclose(value, expected, atol=1e-4 * scale)
    self.assertEqual(*names.values())


if __name__ == "__main__":
  tf.test.main()
