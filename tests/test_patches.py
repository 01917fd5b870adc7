"""Tests for kfac._patches (1.8's convolution patch extraction).

The oracle (`tests/conv_oracles.py`) builds every patch entry by entry: for
each output location and filter offset it computes the input position
`o·s + f·r - pad_before` from TensorFlow's padding rule, written out there,
and reads the input there (0 outside the input).
"""

import itertools

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

import conv_oracles
from kfac import _patches


# name, input spatial shape, filter spatial shape, padding, strides, rates
_CASES = (
  ("1d_same", [7], [3], "SAME", None, None),
  ("1d_valid_stride2", [8], [3], "VALID", [2], None),
  ("1d_same_dilation2", [9], [2], "SAME", None, [2]),
  ("2d_same", [5, 6], [3, 2], "SAME", None, None),
  ("2d_valid", [5, 6], [3, 3], "VALID", None, None),
  ("2d_same_stride_2_3", [7, 8], [3, 3], "SAME", [2, 3], None),
  ("2d_valid_dilation_2_1", [7, 6], [2, 3], "VALID", None, [2, 1]),
  ("2d_same_dilation2", [6, 6], [3, 3], "SAME", None, [2, 2]),
  ("3d_same", [4, 3, 5], [2, 2, 3], "SAME", None, None),
  ("3d_valid_stride2", [5, 4, 5], [2, 2, 2], "VALID", [2, 1, 2], None),
  ("3d_same_dilation2", [5, 4, 4], [2, 2, 2], "SAME", None, [2, 2, 1]),
)


class ExtractConvolutionPatchesTest(parameterized.TestCase):
  @parameterized.named_parameters(*_CASES)
  def testMatchesOracle(self, in_spatial, spatial_filter, padding, st, rates):
    rng = np.random.RandomState(len(in_spatial))
    x = rng.randn(2, *in_spatial, 3)
    filter_shape = spatial_filter + [3, 4]
    n = len(in_spatial)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      patches = _patches.extract_convolution_patches(
        tf.constant(x, tf.float64),
        filter_shape,
        padding,
        strides=st,
        dilation_rate=rates,
      )
      self.assertEqual(patches.dtype, tf.float64)
      self.assertTrue(patches.name.startswith("extract_convolution_patches/"))
      out = sess.run(patches)
    expected = conv_oracles.patches(
      x, spatial_filter, padding, st or [1] * n, rates or [1] * n
    )
    self.assertEqual(out.shape, expected.shape)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)

  @parameterized.named_parameters(
    ("batch", [None, 6, 5, 2]), ("batch_and_spatial", [None, None, None, 2])
  )
  def testUnknownSizesReadAtRunTime(self, placeholder_shape):
    x = np.random.RandomState(1).randn(3, 6, 5, 2).astype(np.float32)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      inputs = tf.compat.v1.placeholder(tf.float32, placeholder_shape)
      patches = _patches.extract_convolution_patches(
        inputs, [2, 3, 2, 7], "SAME", strides=[2, 2], name="my_patches"
      )
      self.assertEqual(patches.shape.rank, 6)
      self.assertTrue(patches.name.startswith("my_patches/"))
      out = sess.run(patches, {inputs: x})
    expected = conv_oracles.patches(x, [2, 3], "SAME", [2, 2], [1, 1])
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)

  def testStaticShape(self):
    with tf.Graph().as_default():
      patches = _patches.extract_convolution_patches(
        tf.zeros([4, 9, 3]), tf.TensorShape([3, 3, 5]), "VALID"
      )
      self.assertEqual(patches.shape.as_list(), [4, 7, 3, 3])

  @parameterized.named_parameters(
    ("channel_first", [2, 3, 5, 5], [3, 3, 3, 4], {"data_format": "NCHW"}),
    ("channels_disagree", [2, 5, 5, 3], [3, 3, 2, 4], {}),
    ("rank_disagrees", [2, 5, 3], [3, 3, 3, 4], {}),
    ("short_filter_shape", [2, 3], [3, 4], {}),
    ("unknown_filter_size", [2, 5, 5, 3], [None, 3, 3, 4], {}),
    ("stride_length", [2, 5, 5, 3], [3, 3, 3, 4], {"strides": [1, 1, 1]}),
  )
  def testValueErrors(self, input_shape, filter_shape, kwargs):
    with tf.Graph().as_default():
      with self.assertRaises(ValueError):
        _patches.extract_convolution_patches(
          tf.zeros(input_shape), filter_shape, "SAME", **kwargs
        )

  def testFilterShapeMustBeASequence(self):
    with tf.Graph().as_default():
      with self.assertRaisesRegex(TypeError, "filter_shape"):
        _patches.extract_convolution_patches(tf.zeros([2, 5, 3]), 3, "SAME")


class ExtractPointwiseConv2dPatchesTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("static", [2, 3, 4, 5]), ("unknown_batch", [None, 3, 4, 5])
  )
  def testPatchIsTheInputVector(self, placeholder_shape):
    x = np.random.RandomState(2).randn(2, 3, 4, 5)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      inputs = tf.compat.v1.placeholder(tf.float64, placeholder_shape)
      patches = _patches.extract_pointwise_conv2d_patches(inputs, [1, 1, 5, 6])
      self.assertEqual(
        patches.shape.as_list(), placeholder_shape[:3] + [1, 1, 5]
      )
      self.assertTrue(
        patches.name.startswith("extract_pointwise_conv2d_patches/")
      )
      out = sess.run(patches, {inputs: x})
    expected = np.zeros((2, 3, 4, 1, 1, 5))
    for b, i, j, c in itertools.product(*[range(n) for n in x.shape]):
      expected[b, i, j, 0, 0, c] = x[b, i, j, c]
    np.testing.assert_array_equal(out, expected)

  @parameterized.named_parameters(
    ("inputs_not_4d", [2, 3, 5], [1, 1, 5, 6], None),
    ("filter_shape_not_4", [2, 3, 3, 5], [1, 5, 6], None),
    ("filter_not_1x1", [2, 3, 3, 5], [1, 2, 5, 6], None),
    ("channels_disagree", [2, 3, 3, 5], [1, 1, 4, 6], None),
    ("channel_first", [2, 5, 3, 3], [1, 1, 5, 6], "NCHW"),
  )
  def testValueErrors(self, input_shape, filter_shape, data_format):
    with tf.Graph().as_default():
      with self.assertRaises(ValueError):
        _patches.extract_pointwise_conv2d_patches(
          tf.zeros(input_shape), filter_shape, data_format=data_format
        )


class IsDataFormatChannelLastTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("none", None, True),
    ("nhwc", "NHWC", True),
    ("nwc", "NWC", True),
    ("ndhwc", "NDHWC", True),
    ("nchw", "NCHW", False),
    ("ncw", "NCW", False),
    ("ncdhw", "NCDHW", False),
  )
  def testFormats(self, data_format, expected):
    self.assertIs(_patches.is_data_format_channel_last(data_format), expected)


if __name__ == "__main__":
  absltest.main()
