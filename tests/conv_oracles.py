"""NumPy convolution-patch oracles shared by the test modules (NumPy only).

Every patch entry is built one by one: for each output location and filter
offset the input position is `o·s + f·r - pad_before`, with TensorFlow's
padding rule written out in `out_size_and_pad`, and positions outside the
input read 0.
"""

import itertools

import numpy as np


def out_size_and_pad(in_size, kernel, stride, rate, padding):
  """Output size and leading padding along one axis (TensorFlow's rule)."""
  span = (kernel - 1) * rate + 1
  if padding == "SAME":
    out = -(-in_size // stride)
    total = max((out - 1) * stride + span - in_size, 0)
    return out, total // 2
  return -(-(in_size - span + 1) // stride), 0


def patches(x, spatial_filter, padding, strides, rates):
  """`[B, *out, *k, C]` patches of `x` (`[B, *in, C]`), by explicit loops."""
  batch, in_spatial, channels = x.shape[0], x.shape[1:-1], x.shape[-1]
  geometry = [
    out_size_and_pad(n, k, s, r, padding)
    for n, k, s, r in zip(in_spatial, spatial_filter, strides, rates)
  ]
  out_spatial = [g[0] for g in geometry]
  result = np.zeros([batch] + out_spatial + list(spatial_filter) + [channels])
  for b in range(batch):
    for out_pos in itertools.product(*[range(n) for n in out_spatial]):
      for offset in itertools.product(*[range(k) for k in spatial_filter]):
        in_pos = [
          o * s + f * r - g[1]
          for o, f, s, r, g in zip(out_pos, offset, strides, rates, geometry)
        ]
        if all(0 <= p < n for p, n in zip(in_pos, in_spatial)):
          for c in range(channels):
            result[(b, *out_pos, *offset, c)] = x[(b, *in_pos, c)]
  return result


def patch_rows(x, spatial_filter, strides, rates, padding):
  """`[B, L, prod(k)·C]`: the input patch of every output location.

  Locations and patch entries in row-major order (entries over
  `(*filter offset, channel)`), i.e. `patches` with the output locations and
  the patch entries each flattened.
  """
  full = patches(x, spatial_filter, padding, strides, rates)
  return full.reshape(
    x.shape[0], -1, int(np.prod(spatial_filter)) * x.shape[-1]
  )
