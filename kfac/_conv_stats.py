"""Second-moment statistics of convolution inputs without patch matrices.

Private module behind `fisher_factors.ConvInputKroneckerFactor` (and the
2017 reference formulations of the convolution factors, kept as oracles).

The statistic of `ConvInputKroneckerFactor` is the second moment of the
image patches: with `p_{b,i}` the patch of example b at output position
i = (i_h, i_w), a vector indexed by kernel offset d = (d_h, d_w) and input
channel c,

    M[(d, c), (d', c')] = Σ_b Σ_i xpad[b, s·i + d, c] · xpad[b, s·i + d', c'],

s the strides and xpad the zero-padded inputs. The 2017 formulation builds
the `[B·P, kh·kw·C]` patch matrix (`extract_image_patches`) and one GEMM.
`conv_input_second_moment` computes the same sums from the inputs:

1. Polyphase split (strides > 1): `Y[b, v, (ρ, c)] = x[b, s·v + ρ, c]`,
   ρ ∈ [0, s) per axis, so that every offset d becomes a stride-1 offset q
   of Y plus a phase ρ (d − pad_before = s·q + ρ) and
   `M[(d, c), (d', c')] = Σ_b Σ_{i ∈ Out} Y[i + q, (ρ, c)] Y[i + q', (ρ', c')]`
   with Y zero outside its extent. For strides 1, Y = x and ρ = 0.
2. Lag correlations: the sum over i ∈ Out of a pair (q, q') only depends on
   the lag δ = q' − q and on the window `Out + q`. Over all positions,
   `F[δ] = Σ_b Σ_v Y[v]ᵀ Y[v + δ]` is one `conv2d_backprop_filter` of Y
   with itself (lags with δ_h ≥ 0 only; F[−δ] = F[δ]ᵀ).
3. Border corrections: the positions v outside the window `Out + q` but
   inside Y lie in thin strips along the borders of Y (fewer than
   kh / s rows or kw / s columns). `F[δ]` minus the strips' rows and
   columns plus their corners (inclusion–exclusion) is the pair's block.
   The per-row and per-column strip terms come from one small filter
   gradient per strip, the per-position corner terms from one small
   matmul per corner.
4. Assembly: every `C × C` block of M is a signed sum of a few of these
   terms, scattered by one sparse–dense matmul whose index pattern is
   computed once, in NumPy, when the graph is built.

The bias column (the patches' sum) is the filter gradient of the
convolution of the batch sum of the inputs for an all-ones output gradient,
so it follows the convolution's own padding and strides.

With static spatial sizes the padding stays implicit (zeros are never
multiplied). With unknown spatial sizes the inputs are padded explicitly,
which keeps every index pattern static; the batch size is never needed when
the graph is built.
"""

import numpy as np
import tensorflow as tf

from kfac import _checks


# ---------------------------------------------------------------------------
# 2017 reference formulations (oracles; selectable through the factories).
# ---------------------------------------------------------------------------


def _symmetrized_second_moment(rows, normalizer):
  """`(RᵀR + (RᵀR)ᵀ) / (2·normalizer)` for a `[N, d]` Tensor R."""
  cov = tf.linalg.matmul(rows, rows, transpose_a=True) / tf.cast(
    normalizer, rows.dtype
  )
  return (cov + tf.transpose(cov)) / tf.cast(2.0, cov.dtype)


def _append_ones_column(rows):
  """`[N, d]` → `[N, d + 1]` with a trailing column of ones."""
  ones = tf.ones(tf.stack([tf.shape(rows)[0], 1]), dtype=rows.dtype)
  return tf.concat([rows, ones], axis=1)


def _image_patches(inputs, kernel_h, kernel_w, strides, padding):
  """`[B, out_h, out_w, kh·kw·C]` patches of `inputs` (unit rates)."""
  return tf.image.extract_patches(
    inputs,
    sizes=[1, kernel_h, kernel_w, 1],
    strides=list(strides),
    rates=[1, 1, 1, 1],
    padding=padding,
  )


def reference_conv_input_second_moment(
  inputs, filter_shape, strides, padding, has_bias
):
  """The 2017 formulation: image patches, then one GEMM.

  Args:
    inputs: `[B, H, W, C]` float32 or float64 Tensor.
    filter_shape: `(kh, kw, C_f, O)` Python ints; the patch width is
      `kh·kw·C_f` (the inputs are reshaped to it, as in TensorFlow 1.4).
    strides: `(1, s_h, s_w, 1)` Python ints.
    padding: "SAME" or "VALID".
    has_bias: Python bool; appends a one to every patch.

  Returns:
    The symmetrised `[K, K]` second moment of the patches (K = kh·kw·C_f
    + has_bias), divided by the number of patches.
  """
  kernel_h, kernel_w, in_channels = filter_shape[:3]
  patches = _image_patches(inputs, kernel_h, kernel_w, strides, padding)
  rows = tf.reshape(patches, [-1, kernel_h * kernel_w * in_channels])
  if has_bias:
    rows = _append_ones_column(rows)
  return _symmetrized_second_moment(rows, tf.shape(rows)[0])


def reference_conv_diagonal_sum_of_squares(
  inputs, outputs_grads, filter_shape, strides, padding, has_bias
):
  """The 2017 formulation of `ConvDiagonalFactor`'s statistic (not / B).

  Index conventions: b batch, i, j output position, k patch entry
  (kernel offset and input channel, then the bias one), l output channel.

  Args:
    inputs: `[B, H, W, C]` Tensor in the compute dtype.
    outputs_grads: `[B, out_h, out_w, O]` Tensor in the compute dtype.
    filter_shape: `(kh, kw, C, O)` Python ints.
    strides: `(1, s_h, s_w, 1)` Python ints.
    padding: "SAME" or "VALID".
    has_bias: Python bool; appends a one to every patch.

  Returns:
    The `[kh·kw·C + has_bias, O]` sum over the batch of the squared
    per-example gradients `einsum("bijk,bijl->bkl", patches, outputs_grads)`.
  """
  kernel_h, kernel_w = filter_shape[:2]
  patches = _image_patches(inputs, kernel_h, kernel_w, strides, padding)
  if has_bias:
    ones = tf.ones(
      tf.concat([tf.shape(patches)[:3], [1]], axis=0), patches.dtype
    )
    patches = tf.concat([patches, ones], axis=3)
  per_example = tf.einsum("bijk,bijl->bkl", patches, outputs_grads)
  return tf.reduce_sum(tf.square(per_example), axis=0)


# ---------------------------------------------------------------------------
# Geometry.
# ---------------------------------------------------------------------------


class _AxisPlan(object):
  """How one spatial axis is mapped onto the stride-1 problem on Y.

  Attributes:
    out: Output size (Python int, or a scalar Tensor when unknown).
    stride: The stride s.
    shift: Offset d maps to `d − shift = s·q + ρ` (the implicit padding).
    pad_before: Zero rows prepended to x (int or Tensor).
    length: Rows of x (after `pad_before`) that Y covers: x is cropped or
      zero-padded to it; a multiple of s (int or Tensor).
    size: Rows of Y, `length / s` (int, or None when unknown).
    q0: Smallest stride-1 offset q.
    kq: Number of stride-1 offsets q.
    first_band: Rows [0, first_band) of Y hold the leading strip terms.
    last_band: Rows [size − last_band, size) hold the trailing ones.
  """

  def __init__(self, in_size, kernel, stride, padding):
    self.stride = stride
    if isinstance(in_size, int):
      if padding == "SAME":
        out = -(-in_size // stride)
        total = max((out - 1) * stride + kernel - in_size, 0)
        pad_top = total // 2
      else:
        out = (in_size - kernel) // stride + 1
        pad_top = 0
      self.out = out
      self.shift = pad_top
      self.pad_before = 0
      used = min(in_size, (out - 1) * stride + kernel - pad_top)
      self.size = -(-used // stride)
      self.length = self.size * stride
      self.q0 = (-pad_top) // stride
      self.kq = (kernel - 1 - pad_top) // stride - self.q0 + 1
      self.first_band = min(max(self.q0 + self.kq - 1, 0), self.size)
      last_start = min(max(self.q0 + out, 0), self.size)
      self.last_band = self.size - last_start
    else:
      # Unknown size: explicit padding to exactly the rows the convolution
      # reads, so that Y has out + kq − 1 rows and both bands kq − 1.
      if padding == "SAME":
        out = (in_size + stride - 1) // stride
        total = tf.maximum((out - 1) * stride + kernel - in_size, 0)
        pad_top = total // 2
      else:
        out = (in_size - kernel + stride) // stride
        pad_top = 0
      self.out = out
      self.shift = 0
      self.pad_before = pad_top
      self.q0 = 0
      self.kq = (kernel - 1) // stride + 1
      self.size = None
      self.length = (out + self.kq - 1) * stride
      self.first_band = self.kq - 1
      self.last_band = self.kq - 1

  def split(self, offset):
    """Kernel offset → (stride-1 offset q, phase ρ)."""
    return (
      (offset - self.shift) // self.stride,
      (offset - self.shift) % self.stride,
    )

  def leading(self, q):
    """Rows of Y before the window of offset q: `range(0, n)`, as n."""
    n = max(q, 0)
    return n if self.size is None else min(n, self.size)

  def trailing_start(self, q):
    """First row, in the trailing band, of those after the window of q."""
    if self.size is None:
      return q - self.q0
    band_start = self.size - self.last_band
    return min(max(q + self.out, 0), self.size) - band_start


def _fit_axis(tensor, axis, plan):
  """Pads/crops `tensor` along `axis` as `plan` says (see `_AxisPlan`)."""
  in_size = tf.shape(tensor)[axis]
  static = _checks.static_dim(tensor, axis)
  if isinstance(plan.length, int) and static is not None:
    after = plan.length - static - plan.pad_before
    if plan.pad_before or after > 0:
      paddings = [[0, 0]] * 4
      paddings[axis] = [plan.pad_before, max(after, 0)]
      tensor = tf.pad(tensor, paddings)
    if after < 0:
      tensor = tensor[(slice(None),) * axis + (slice(0, plan.length),)]
    return tensor
  after = tf.maximum(plan.length - in_size - plan.pad_before, 0)
  paddings = [[0, 0]] * 4
  paddings[axis] = [plan.pad_before, after]
  tensor = tf.pad(tensor, tf.convert_to_tensor(paddings))
  return tensor[(slice(None),) * axis + (slice(0, plan.length),)]


def _polyphase(tensor, plan_h, plan_w):
  """Polyphase split of `x` into `Y[b, v_h, v_w, (ρ_h, ρ_w, c)]`.

  `Y[b, v_h, v_w, (ρ_h, ρ_w, c)] = x[b, s_h·v_h + ρ_h, s_w·v_w + ρ_w, c]`;
  the spatial sizes of `x` must be multiples of the strides.
  """
  s_h, s_w = plan_h.stride, plan_w.stride
  if s_h == 1 and s_w == 1:
    return tensor
  channels = _checks.static_dim(tensor, 3)
  shape = tf.shape(tensor)
  size_h, size_w = shape[1] // s_h, shape[2] // s_w
  split = tf.reshape(
    tensor, tf.stack([shape[0], size_h, s_h, size_w, s_w, channels])
  )
  split = tf.transpose(split, [0, 1, 3, 2, 4, 5])
  return tf.reshape(
    split, tf.stack([shape[0], size_h, size_w, s_h * s_w * channels])
  )


# ---------------------------------------------------------------------------
# Strip terms.
# ---------------------------------------------------------------------------


def _filter_gradient(inputs, filter_sizes, outputs_grads):
  return tf.compat.v1.nn.conv2d_backprop_filter(
    inputs, filter_sizes, outputs_grads, strides=[1, 1, 1, 1], padding="VALID"
  )


def _lag_table(y, kq_h, kq_w, channels):
  """F[δ] for δ_h ∈ [0, kq_h), δ_w ∈ (−kq_w, kq_w), as stored by the kernel.

  Args:
    y: `[B, H, W, C]` Tensor (zero outside its extent).
    kq_h: Number of row lags (0 .. kq_h − 1).
    kq_w: Column lags run over −(kq_w − 1) .. kq_w − 1.
    channels: C.

  Returns:
    `[kq_h·(2kq_w − 1), C, C]`: entry (δ_h, δ_w + kq_w − 1) holds F[δ]ᵀ,
    `[c, c'] = Σ_b Σ_v Y[v + δ, c] Y[v, c']`.
  """
  padded = tf.pad(y, [[0, 0], [0, kq_h - 1], [kq_w - 1, kq_w - 1], [0, 0]])
  grads = _filter_gradient(padded, [kq_h, 2 * kq_w - 1, channels, channels], y)
  return tf.reshape(grads, [-1, channels, channels])


def _row_table(rows, count, kq_w, channels):
  """Per-row lag terms of a band of n rows `[B, n, W, C]` (n = count).

  Returns:
    `[n·(2kq_w − 1)·n, C, C]`, entry (p, δ_w + kq_w − 1, r) holding
    `Σ_b Σ_v rows[r, v]ᵀ rows[p, v + δ_w]` (rows outside the band are not
    seen).
  """
  padded = tf.pad(rows, [[0, 0], [0, 0], [kq_w - 1, kq_w - 1], [0, 0]])
  shape = tf.shape(rows)
  folded = tf.reshape(
    tf.transpose(rows, [0, 2, 1, 3]),
    tf.stack([shape[0], 1, shape[2], count * channels]),
  )
  grads = _filter_gradient(
    padded, [count, 2 * kq_w - 1, channels, count * channels], folded
  )
  grads = tf.reshape(grads, [count, 2 * kq_w - 1, channels, count, channels])
  return tf.reshape(
    tf.transpose(grads, [0, 1, 3, 4, 2]), [-1, channels, channels]
  )


def _column_table(columns, count, kq_h, channels):
  """Per-column lag terms of a band of n columns `[B, H, n, C]` (n = count).

  The band is transposed to rows (`[B, n, H, C]`, a layout the filter
  gradient kernels handle much faster than one- or two-column images) and
  goes through `_row_table`.

  Returns:
    `[(2kq_h − 1)·n·n, C, C]`, entry (δ_h + kq_h − 1, p, col) holding
    `Σ_b Σ_v columns[v, col]ᵀ columns[v + δ_h, p]`.
  """
  rows = _row_table(
    tf.transpose(columns, [0, 2, 1, 3]), count, kq_h, channels
  )  # entries (p, δ_h + kq_h − 1, col)
  rows = tf.reshape(rows, [count, 2 * kq_h - 1, count, channels, channels])
  return tf.reshape(
    tf.transpose(rows, [1, 0, 2, 3, 4]), [-1, channels, channels]
  )


def _corner_table(corner, n_h, n_w, channels):
  """Per-position terms of a corner `[B, n_h, n_w, C]`.

  Returns:
    `[(n_h·n_w)², C, C]`, entry ((r, col), (p, q)) holding
    `Σ_b corner[r, col]ᵀ corner[p, q]`.
  """
  flat = tf.reshape(corner, [-1, n_h * n_w * channels])
  gram = tf.linalg.matmul(flat, flat, transpose_a=True)
  gram = tf.reshape(gram, [n_h, n_w, channels, n_h, n_w, channels])
  return tf.reshape(
    tf.transpose(gram, [0, 1, 3, 4, 2, 5]), [-1, channels, channels]
  )


# ---------------------------------------------------------------------------
# Assembly pattern (NumPy, graph-construction time).
# ---------------------------------------------------------------------------


class _Pattern(object):
  """Sparse coefficients: each block of M as a signed sum of table blocks."""

  def __init__(self):
    self.rows = []
    self.cols = []
    self.values = []

  def add(self, row, col, value):
    self.rows.append(row)
    self.cols.append(col)
    self.values.append(value)


def _border_bands(first, last):
  """The border bands of one axis that have any positions.

  Args:
    first: `(name, count)` of the leading band: the first `count` positions.
    last: `(name, count)` of the trailing band: the last `count` positions.

  Returns:
    A list of `(name, slice, count)` for the bands with `count > 0`.
  """
  (first_name, first_count), (last_name, last_count) = first, last
  return [
    (name, band, count)
    for name, band, count in (
      (first_name, slice(0, first_count), first_count),
      (last_name, slice(-last_count, None), last_count),
    )
    if count
  ]


def _assembly_pattern(plan_h, plan_w, kernel_h, kernel_w, offsets):
  """Builds the sparse map from table blocks to the blocks of M.

  Args:
    plan_h: `_AxisPlan` of the height axis.
    plan_w: `_AxisPlan` of the width axis.
    kernel_h: Kernel height.
    kernel_w: Kernel width.
    offsets: Dict from table name to its first block index in the table
      built by `conv_input_second_moment` ("lags", "top", "bottom", "left",
      "right", "<row band>_<column band>"; bands without rows are absent),
      and "transposed": the number of blocks before the transposed copy.

  Returns:
    `(indices, values)` of the `[(kh·kw)², 2·blocks·(s_h·s_w)²]`
    coefficient matrix: rows (d, d') with d = (d_h, d_w) row-major, columns
    the `C × C` phase blocks of the table, `(block·s_h s_w + ρ)·s_h s_w + ρ'`.
  """
  kq_h, kq_w = plan_h.kq, plan_w.kq
  wide = 2 * kq_w - 1
  phases = plan_h.stride * plan_w.stride
  pattern = _Pattern()

  def index(block, rho, rho_p, transposed=False):
    flat = (block * phases + rho) * phases + rho_p
    if transposed:
      flat += offsets["transposed"] * phases * phases
    return flat

  def border_sets(entry, axis, names, position):
    """Adds the −1 terms of one axis' border tables; returns usable pairs.

    For each border band `(name, band, count)` of the axis (leading, then
    trailing) and each `i` of `band` with `0 <= i + shift < count`, adds the
    block at `offsets[name] + position(i + shift, count) * count + i`.

    Args:
      entry: `(row, rho, rho')`: the row of M and the phases of the block.
      axis: `(plan, qa, shift)`: the `_AxisPlan`, the stride-1 offset whose
        window is left out, and the offset from a band index to its
        partner index.
      names: The names of the leading and trailing border tables.
      position: `(j, count) -> int`, the block of partner index `j`.

    Returns:
      A list of `(name, [(i, i + shift), ...], count)`, one per band.
    """
    row, rho_a, rho_b = entry
    plan, qa, shift = axis
    bands = (
      (names[0], range(0, plan.leading(qa)), plan.first_band),
      (
        names[1],
        range(plan.trailing_start(qa), plan.last_band),
        plan.last_band,
      ),
    )
    sets = []
    for name, band, count in bands:
      usable = []
      for i in band:
        j = i + shift
        if 0 <= j < count:
          usable.append((i, j))
          pattern.add(
            row,
            index(offsets[name] + position(j, count) * count + i, rho_a, rho_b),
            -1.0,
          )
      sets.append((name, usable, count))
    return sets

  splits = []
  for d_h in range(kernel_h):
    for d_w in range(kernel_w):
      q_h, r_h = plan_h.split(d_h)
      q_w, r_w = plan_w.split(d_w)
      splits.append((q_h, q_w, r_h * plan_w.stride + r_w))

  for row_a, (qa_h, qa_w, rho_a) in enumerate(splits):
    for row_b, (qb_h, qb_w, rho_b) in enumerate(splits):
      row = row_a * len(splits) + row_b
      dh, dw = qb_h - qa_h, qb_w - qa_w
      # Lag correlation over all of Y.
      if dh >= 0:
        # The kernel stores F[δ]ᵀ: take the transposed phase block.
        pattern.add(
          row,
          index(
            offsets["lags"] + dh * wide + dw + kq_w - 1,
            rho_b,
            rho_a,
            transposed=True,
          ),
          1.0,
        )
      else:
        pattern.add(
          row,
          index(offsets["lags"] + (-dh) * wide - dw + kq_w - 1, rho_a, rho_b),
          1.0,
        )
      # Rows of Y outside the window, with every column.
      row_sets = border_sets(
        (row, rho_a, rho_b),
        (plan_h, qa_h, dh),
        ("top", "bottom"),
        lambda p, count, dw=dw: p * wide + dw + kq_w - 1,
      )
      # Columns of Y outside the window, with every row ...
      col_sets = border_sets(
        (row, rho_a, rho_b),
        (plan_w, qa_w, dw),
        ("left", "right"),
        lambda q, count, dh=dh: (dh + kq_h - 1) * count + q,
      )
      # ... of which the rows outside the window were removed twice.
      for row_name, row_usable, n_h in row_sets:
        for col_name, col_usable, n_w in col_sets:
          name = row_name + "_" + col_name
          for r, p in row_usable:
            for c, q in col_usable:
              pattern.add(
                row,
                index(
                  offsets[name] + (r * n_w + c) * n_h * n_w + p * n_w + q,
                  rho_a,
                  rho_b,
                ),
                1.0,
              )
  indices = np.stack(
    [np.array(pattern.rows, np.int64), np.array(pattern.cols, np.int64)], axis=1
  )
  return indices, np.array(pattern.values)


# ---------------------------------------------------------------------------
# The statistic.
# ---------------------------------------------------------------------------


def lag_formulation_applies(inputs, filter_shape, strides, padding):
  """Whether `conv_input_second_moment` is used for these arguments.

  It needs the inputs' channel count statically equal to `filter_shape[2]`
  (otherwise TensorFlow 1.4's reshape of the patches to `filter_shape`'s
  width is reproduced by the reference) and, for static sizes, at least one
  output position. It is chosen when its products per position of Y,
  `(s_h·s_w)²·kq_h·(2·kq_w − 1)` channel blocks (kq the number of stride-1
  offsets per axis), are at most half the `(kh·kw)²` blocks per output
  position of the patch GEMM; at stride 1 every kernel of at least 2×2
  qualifies. Deciding builds no op.

  Args:
    inputs: `[B, H, W, C]` Tensor.
    filter_shape: `(kh, kw, C, O)` Python ints.
    strides: `(1, s_h, s_w, 1)` Python ints.
    padding: "SAME" or "VALID".

  Returns:
    Python bool.
  """
  kernel_h, kernel_w, channels = filter_shape[:3]
  static_shape = _checks.static_shape_list(inputs)
  if static_shape[3] != channels:
    return False
  offsets = []
  for axis, kernel in ((1, kernel_h), (2, kernel_w)):
    size = static_shape[axis]
    if size is None:  # explicit padding: offsets 0 .. ceil(kernel / s) − 1
      offsets.append((kernel - 1) // strides[axis] + 1)
    else:
      plan = _AxisPlan(size, kernel, strides[axis], padding)
      if plan.out < 1:  # no patches at all: left to the reference
        return False
      offsets.append(plan.kq)
  phases = strides[1] * strides[2]
  lag_blocks = phases * phases * offsets[0] * (2 * offsets[1] - 1)
  return 2 * lag_blocks <= (kernel_h * kernel_w) ** 2


def conv_input_second_moment(inputs, filter_shape, strides, padding, has_bias):
  """`ConvInputKroneckerFactor`'s statistic without the patch matrix.

  Equal, up to floating-point rounding, to
  `reference_conv_input_second_moment` (see the module docstring for the
  method). The inputs' channel count must be statically known and equal to
  `filter_shape[2]`; batch and spatial sizes may be unknown.

  Args:
    inputs: `[B, H, W, C]` float32 or float64 Tensor.
    filter_shape: `(kh, kw, C, O)` Python ints.
    strides: `(1, s_h, s_w, 1)` Python ints.
    padding: "SAME" or "VALID".
    has_bias: Python bool; adds the row and column of the constant one.

  Returns:
    The symmetrised `[K, K]` second moment of the patches (K = kh·kw·C
    + has_bias), divided by the number of patches B·out_h·out_w.
  """
  kernel_h, kernel_w, channels = filter_shape[:3]
  dtype = inputs.dtype
  dynamic_shape = tf.shape(inputs)
  static_shape = _checks.static_shape_list(inputs)
  plan_h, plan_w = [
    _AxisPlan(
      static_shape[axis]
      if static_shape[axis] is not None
      else dynamic_shape[axis],
      kernel,
      strides[axis],
      padding,
    )
    for axis, kernel in ((1, kernel_h), (2, kernel_w))
  ]
  phases = plan_h.stride * plan_w.stride
  wide_channels = phases * channels

  y = _fit_axis(_fit_axis(inputs, 1, plan_h), 2, plan_w)
  y = _polyphase(y, plan_h, plan_w)  # [B, size_h, size_w, s_h·s_w·C]
  t_h, b_h = plan_h.first_band, plan_h.last_band
  t_w, b_w = plan_w.first_band, plan_w.last_band

  tables = []
  offsets = {}

  def add(name, table, blocks):
    offsets[name] = sum(t[1] for t in tables)
    tables.append((table, blocks))

  add(
    "lags",
    _lag_table(y, plan_h.kq, plan_w.kq, wide_channels),
    plan_h.kq * (2 * plan_w.kq - 1),
  )
  row_bands = _border_bands(("top", t_h), ("bottom", b_h))
  col_bands = _border_bands(("left", t_w), ("right", b_w))
  for name, band, count in row_bands:
    add(
      name,
      _row_table(y[:, band], count, plan_w.kq, wide_channels),
      count * (2 * plan_w.kq - 1) * count,
    )
  for name, band, count in col_bands:
    add(
      name,
      _column_table(y[:, :, band], count, plan_h.kq, wide_channels),
      (2 * plan_h.kq - 1) * count * count,
    )
  for row_name, row_band, n_h in row_bands:
    for col_name, col_band, n_w in col_bands:
      add(
        row_name + "_" + col_name,
        _corner_table(y[:, row_band, col_band], n_h, n_w, wide_channels),
        (n_h * n_w) ** 2,
      )
  total = sum(t[1] for t in tables)
  offsets["transposed"] = total
  table = (
    tf.concat([t[0] for t in tables], axis=0)
    if len(tables) > 1
    else (tables[0][0])
  )
  if phases > 1:
    # [blocks, (ρ, c), (ρ', c')] → [(blocks, ρ, ρ'), c, c']
    table = tf.reshape(table, [total, phases, channels, phases, channels])
    table = tf.reshape(
      tf.transpose(table, [0, 1, 3, 2, 4]),
      [total * phases * phases, channels, channels],
    )
  table = tf.concat([table, tf.transpose(table, [0, 2, 1])], axis=0)
  table = tf.reshape(table, [2 * total * phases * phases, channels * channels])

  indices, values = _assembly_pattern(
    plan_h, plan_w, kernel_h, kernel_w, offsets
  )
  order = np.lexsort((indices[:, 1], indices[:, 0]))
  offsets_count = kernel_h * kernel_w
  coefficients = tf.SparseTensor(
    indices=indices[order],
    values=tf.constant(values[order], dtype),
    dense_shape=[offsets_count * offsets_count, 2 * total * phases * phases],
  )
  blocks = tf.sparse.sparse_dense_matmul(coefficients, table)
  # [(d, d'), (c, c')] → [(d, c), (d', c')]
  blocks = tf.reshape(
    blocks, [offsets_count, offsets_count, channels, channels]
  )
  size = offsets_count * channels
  moment = tf.reshape(tf.transpose(blocks, [0, 2, 1, 3]), [size, size])

  count = tf.cast(dynamic_shape[0] * plan_h.out * plan_w.out, dtype)
  moment = moment / count
  if has_bias:
    # Patches are linear in the inputs: the patches' sum over the batch is
    # the sum of the patches of the batch sum.
    ones = tf.ones(tf.stack([1, plan_h.out, plan_w.out, 1]), dtype)
    sums = tf.compat.v1.nn.conv2d_backprop_filter(
      tf.reduce_sum(inputs, axis=0, keepdims=True),
      [kernel_h, kernel_w, channels, 1],
      ones,
      strides=list(strides),
      padding=padding,
    )
    mean = tf.reshape(sums, [size, 1]) / count
    moment = tf.concat(
      [
        tf.concat([moment, mean], axis=1),
        tf.concat([tf.transpose(mean), tf.ones([1, 1], dtype)], axis=1),
      ],
      axis=0,
    )
  return (moment + tf.transpose(moment)) / tf.cast(2.0, dtype)
