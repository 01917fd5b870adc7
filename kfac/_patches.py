"""Convolution patch extraction for any number of spatial dimensions (1.8).

Release 1.8 added three functions to `utils` for the convolution factors of
`register_convolution` (1-D, 2-D and 3-D layers), the pointwise (1×1)
convolutions of separable layers and the `data_format` argument of the conv
registrations:

* `is_data_format_channel_last(data_format)`: whether a TensorFlow data
  format string puts the channels last (`None` counts as channel-last).
* `extract_convolution_patches(...)`: for every output location of
  `tf.nn.convolution`, the input values the filter sees there.
* `extract_pointwise_conv2d_patches(...)`: the same for a 1×1 `conv2d`,
  where the patch at a location is that location's input vector.

Patch layout. With `inputs` of shape `[B, *in_spatial, C]` and a filter of
spatial shape `(k_1, …, k_n)`, the patch at output location `o` holds, for
every filter offset `f` and channel `c`,

  `patches[b, *o, *f, c] = padded_inputs[b, *(o·s + f·r - pad_before), c]`

where `s` are the strides, `r` the dilation rates, `pad_before` the leading
padding of TensorFlow's "SAME"/"VALID" rule, and positions outside the input
read 0. The patch axes come in row-major order over `(*f, c)`, as in
`tf.image.extract_patches`.

The values are computed the way 1.8 did, by convolving `inputs` with an
identity filter bank: output channel `p` of a `[*k, C, P]` filter with
`P = k_1 ⋯ k_n · C` picks filter position and channel `p` (row-major over
`(*k, C)`). This reuses TensorFlow's own padding, stride and dilation rules
for every rank.

Differences from 1.8, all for inputs 1.8 failed on: the identity filters
take the dtype of `inputs` (1.8's were float32, so float64 inputs failed in
the convolution), and unknown batch or spatial sizes are read at run time
(1.8 needed a static batch size for the pointwise patches and static
spatial sizes for both functions).
"""

import numpy as np
import tensorflow as tf

from kfac import _checks

__all__ = [
  "is_data_format_channel_last",
  "extract_convolution_patches",
  "extract_pointwise_conv2d_patches",
]


def is_data_format_channel_last(data_format):
  """Whether `data_format` puts the channels in the last axis.

  Args:
    data_format: A TensorFlow data format string (`"NHWC"`, `"NCHW"`,
      `"NWC"`, `"NDHWC"`, …) or `None`, TensorFlow's default (channels
      last).

  Returns:
    `True` if `data_format` is `None` or ends with `"C"`, else `False`.
  """
  if data_format is None:
    return True
  return data_format.endswith("C")


def _filter_shape_list(filter_shape, min_len):
  """`filter_shape` as a list of Python ints, checked.

  Args:
    filter_shape: A list/tuple of ints (or `Dimension`s), a `TensorShape`
      or a 1-D NumPy array.
    min_len: The smallest valid length.

  Returns:
    A list of positive Python ints.

  Raises:
    TypeError: If `filter_shape` is not a sequence of sizes.
    ValueError: If it is shorter than `min_len` or has unknown or
      non-positive sizes.
  """
  if isinstance(filter_shape, np.ndarray) and filter_shape.ndim == 1:
    filter_shape = filter_shape.tolist()
  if not isinstance(filter_shape, (tuple, list, tf.TensorShape)):
    raise TypeError(
      "filter_shape must be a list/tuple of ints [*spatial, in_channels, "
      "out_channels], got {!r}.".format(filter_shape)
    )
  dims = _checks.static_shape_list(filter_shape)
  if dims is None or len(dims) < min_len:
    raise ValueError(
      "filter_shape must have at least {} entries [*spatial, in_channels, "
      "out_channels], got {!r}.".format(min_len, filter_shape)
    )
  if not all(_checks.is_int(d) and d > 0 for d in dims):
    raise ValueError(
      "filter_shape must hold known positive sizes, got {!r}.".format(
        filter_shape
      )
    )
  return [int(d) for d in dims]


def _reshape_keeping_leading(tensor, leading_count, trailing_dims):
  """Reshapes `tensor` to its first `leading_count` dims + `trailing_dims`.

  Static sizes are written as ints; an unknown leading size is read from
  `tf.shape` at run time (an unknown batch size becomes -1).

  Args:
    tensor: The Tensor to reshape.
    leading_count: How many leading axes keep their size.
    trailing_dims: Python ints for the new trailing axes.

  Returns:
    The reshaped Tensor.
  """
  leading = _checks.static_shape_list(tensor)[:leading_count]
  if all(d is not None for d in leading[1:]):
    shape = [-1 if leading[0] is None else leading[0]] + leading[1:]
    return tf.reshape(tensor, shape + list(trailing_dims))
  dynamic = tf.shape(tensor)[:leading_count]
  return tf.reshape(
    tensor,
    tf.concat([dynamic, tf.constant(trailing_dims, dtype=dynamic.dtype)], 0),
  )


def extract_convolution_patches(
  inputs,
  filter_shape,
  padding,
  strides=None,
  dilation_rate=None,
  name=None,
  data_format=None,
):
  """The input patch of every output location of `tf.nn.convolution`.

  For `inputs` of shape `[B, *in_spatial, C]` (`n` = 1, 2 or 3 spatial
  axes) and a filter of shape `[k_1, …, k_n, C, C_out]`, the result holds

    `patches[b, *o, *f, c] = x[b, *(o·s + f·r - pad_before), c]`

  for every output location `o`, filter offset `f` and channel `c`, with
  `s = strides`, `r = dilation_rate`, TensorFlow's leading padding for
  `padding`, and 0 outside the input. Computed as `tf.nn.convolution` of
  `inputs` with an identity filter bank `[*k, C, P]`, `P = k_1 ⋯ k_n · C`,
  whose output channel `p` selects filter position/channel `p` in row-major
  order over `(*k, C)`, then reshaped.

  Args:
    inputs: Tensor `[B, *in_spatial, C]` (channels last).
    filter_shape: List of ints `[*spatial_filter_shape, C, C_out]`; only
      the spatial sizes and `C` are used.
    padding: `"SAME"` or `"VALID"`, as for `tf.nn.convolution`.
    strides: List of `n` ints, the spatial strides, or None (all 1).
    dilation_rate: List of `n` ints, the spatial dilation rates, or None
      (all 1). `tf.nn.convolution` does not allow strides and rates both
      above 1.
    name: Optional name scope (default `"extract_convolution_patches"`).
    data_format: None or a channel-last format string (`"NWC"`, `"NHWC"`,
      `"NDHWC"`).

  Returns:
    Tensor `[B, *out_spatial, *spatial_filter_shape, C]` with the dtype of
    `inputs`; `B` is static when it is static in `inputs`.

  Raises:
    ValueError: If `data_format` is not channel-last, if the rank of
      `inputs` is unknown or differs from `len(filter_shape)`, or if
      `inputs.shape[-1] != filter_shape[-2]`. `tf.nn.convolution` raises
      `ValueError` for strides or rates of the wrong length.
    TypeError: If `filter_shape` is not a list of sizes.
  """
  if not is_data_format_channel_last(data_format):
    raise ValueError(
      "data_format must put the channels last (None, 'NWC', 'NHWC' or "
      "'NDHWC'), got {!r}.".format(data_format)
    )
  filter_dims = _filter_shape_list(filter_shape, 3)
  with tf.compat.v1.name_scope(name, "extract_convolution_patches", [inputs]):
    inputs = tf.convert_to_tensor(inputs, name="inputs")
    rank = _checks.static_rank(inputs)
    if rank is None or rank != len(filter_dims):
      raise ValueError(
        "inputs must have rank len(filter_shape) = {} ([batch, *spatial, "
        "in_channels]), got shape {}.".format(
          len(filter_dims), _checks.format_shape(inputs)
        )
      )
    spatial_filter_shape = filter_dims[:-2]
    in_channels = filter_dims[-2]
    if _checks.static_dim(inputs, -1) != in_channels:
      raise ValueError(
        "inputs and filter_shape must agree on in_channels: inputs.shape[-1]"
        " = {}, filter_shape[-2] = {}.".format(
          _checks.static_dim(inputs, -1), in_channels
        )
      )
    patch_size = int(np.prod(spatial_filter_shape)) * in_channels
    filters = tf.reshape(
      tf.eye(patch_size, dtype=inputs.dtype),
      spatial_filter_shape + [in_channels, patch_size],
    )
    result = tf.compat.v1.nn.convolution(
      inputs,
      filters,
      padding=padding,
      strides=strides,
      dilation_rate=dilation_rate,
    )
    return _reshape_keeping_leading(
      result, rank - 1, spatial_filter_shape + [in_channels]
    )


def extract_pointwise_conv2d_patches(
  inputs, filter_shape, name=None, data_format=None
):
  """The patches of a 1×1 `conv2d`: each location's input vector.

  `patches[b, i, j, 0, 0, c] = inputs[b, i, j, c]`, built (as in 1.8) with
  `tf.image.extract_patches` with unit sizes, strides and rates and "VALID"
  padding, then reshaped.

  Args:
    inputs: Tensor `[B, H, W, C]`.
    filter_shape: List of 4 ints `[1, 1, C, C_out]`.
    name: Optional name scope (default
      `"extract_pointwise_conv2d_patches"`).
    data_format: None or `"NHWC"` (any channel-last format).

  Returns:
    Tensor `[B, H, W, 1, 1, C]` with the dtype of `inputs`.

  Raises:
    ValueError: If `inputs` is not 4-D, `filter_shape` does not have 4
      entries, its spatial sizes are not 1×1, its `C` differs from the
      channels of `inputs`, or `data_format` is not channel-last.
    TypeError: If `filter_shape` is not a list of sizes.
  """
  if _checks.static_rank(inputs) != 4:
    raise ValueError(
      "inputs must have 4 dims [batch, height, width, in_channels], got "
      "shape {}.".format(_checks.format_shape(inputs))
    )
  filter_dims = _filter_shape_list(filter_shape, 0)
  if len(filter_dims) != 4:
    raise ValueError(
      "filter_shape must have 4 dims [1, 1, in_channels, out_channels], got "
      "{!r}.".format(filter_shape)
    )
  if filter_dims[0] != 1 or filter_dims[1] != 1:
    raise ValueError(
      "filter_shape must have shape 1 along the spatial dimensions, got "
      "{!r}.".format(filter_shape)
    )
  if _checks.static_dim(inputs, -1) not in (None, filter_dims[2]):
    raise ValueError(
      "inputs and filter_shape must agree on in_channels: inputs.shape[-1]"
      " = {}, filter_shape[2] = {}.".format(
        _checks.static_dim(inputs, -1), filter_dims[2]
      )
    )
  if not is_data_format_channel_last(data_format):
    raise ValueError(
      "data_format must put the channels last (None or 'NHWC'), got "
      "{!r}.".format(data_format)
    )
  with tf.compat.v1.name_scope(
    name, "extract_pointwise_conv2d_patches", [inputs]
  ):
    inputs = tf.convert_to_tensor(inputs, name="inputs")
    unit = [1, 1, 1, 1]
    result = tf.image.extract_patches(
      inputs, sizes=unit, strides=unit, rates=unit, padding="VALID"
    )
    return _reshape_keeping_leading(result, 3, filter_dims[:3])
