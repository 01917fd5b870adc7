"""Benchmark: factor statistics and inverses against their 2017 formulations.

Every comparison pairs an op of this package with the same statistic built
the way TensorFlow 1.4 built it, in the same graph, timed interleaved
(median of `--runs` rounds after warm-up, an op of less than 20 ms run
back to back enough times per round to take about that long; every fetch
really runs the work):

* `ConvDiagonalFactor` vs `fisher_factors._ReferenceConvDiagonalFactor`
  (image patches, `einsum("bijk,bijl->bkl")`, square, batch mean), with a
  static batch size and with inputs declared `[None, H, W, C]`;
* `ConvInputKroneckerFactor` (with a bias) vs
  `fisher_factors._ReferenceConvInputKroneckerFactor` (image patches and one
  GEMM), static and `None` batch;
* `ConvOutputKroneckerFactor` vs the 2017 reshape + GEMM + symmetrisation;
* `FullyConnectedKroneckerFactor` on a `[batch, kh·kw·Cin]` input with a
  bias vs the 2017 ones-column + GEMM + symmetrisation;
* `FullyConnectedDiagonalFactor` vs `(a⊙a)ᵀ(g⊙g) / B` written out;
* the inverse updates of the `ConvInputKroneckerFactor` covariance:
  Cholesky path (one damping) vs `cholesky_solve(cholesky(A + dI), I)`, and
  eigendecomposition path (two dampings) vs `self_adjoint_eig` and
  `V diag(1 / (λ + d)) Vᵀ` per damping;
* the Cholesky-path inverse update of `FullyConnectedKroneckerFactor`
  covariances of the sizes in `--inverse-sizes` (default 3137, the input
  factor of the MNIST convnet's dense layer, and 2049, the CIFAR one) vs
  `fisher_factors._ReferenceFullyConnectedKroneckerFactor`
  (`cholesky_solve` against the identity).

Each factor update includes its moving-average assignment, and so does its
2017 counterpart. Shapes:

  (a) batch 128, 28×28×1 inputs, 5×5 kernel, 32 out-channels
  (b) batch 128, 16×16×32 inputs, 3×3 kernel, 64 out-channels
  (c) batch 64, 32×32×64 inputs, 3×3 kernel, 64 out-channels
  (d) batch 128, 14×14×32 inputs, 5×5 kernel, 64 out-channels
  (e) batch 128, 32×32×64 inputs, 3×3 kernel, 64 out-channels

all SAME, stride 1. Printed per shape and pair: median milliseconds of ours
and of 2017, the speed-up (ratio of medians) and the paired speed-up (median
over rounds of the within-round ratio, steadier on a shared machine), and,
for the convolution statistics, the peak memory of each in a fresh
subprocess (growth of the resident set's high-water mark, reset through
/proc/self/clear_refs, over the resident size once the inputs exist, during
three runs of the update).

Usage: python tools/bench_fisher_factors.py [--runs N] [--shapes abcde]
           [--no-memory] [--inverse-sizes 3137,2049]
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# kfac first: it imports TensorFlow without its start-up notices.
from kfac import fisher_factors
import tensorflow as tf

SHAPES = {
  # name: (batch, height, width, in_channels, kh, kw, out_channels)
  "a": (128, 28, 28, 1, 5, 5, 32),
  "b": (128, 16, 16, 32, 3, 3, 64),
  "c": (64, 32, 32, 64, 3, 3, 64),
  "d": (128, 14, 14, 32, 5, 5, 64),
  "e": (128, 32, 32, 64, 3, 3, 64),
}
# Comparisons: (name, whether its peak memory is measured).
PAIRS = (
  ("ConvDiagonalFactor", True),
  ("ConvDiagonalFactor, None batch", False),
  ("ConvInputKroneckerFactor", True),
  ("ConvInputKroneckerFactor, None batch", False),
  ("ConvOutputKroneckerFactor", False),
  ("FullyConnectedKroneckerFactor", False),
  ("FullyConnectedDiagonalFactor", False),
  ("inverse, Cholesky", False),
  ("inverse, eigendecomposition", False),
)
_DECAY = 0.95
_DAMPINGS = (1e-3, 1e-2)


def _inputs(shape, unknown_batch):
  """Random inputs and output gradients (non-trainable variables)."""
  batch, height, width, in_channels, _, _, out_channels = shape
  x = tf.Variable(
    tf.random.normal([batch, height, width, in_channels], seed=1),
    trainable=False,
    name="inputs",
  )
  g = tf.Variable(
    tf.random.normal([batch, height, width, out_channels], seed=2),
    trainable=False,
    name="grads",
  )
  x, g = x.read_value(), g.read_value()
  if unknown_batch:
    x = tf.compat.v1.placeholder_with_default(
      x, [None, height, width, in_channels]
    )
    g = tf.compat.v1.placeholder_with_default(
      g, [None, height, width, out_channels]
    )
  return x, g


def _ema_2017(name, new_cov):
  cov = tf.compat.v1.get_variable(
    name,
    initializer=tf.eye(new_cov.shape[0])
    if new_cov.shape[0] == new_cov.shape[1]
    else tf.ones(new_cov.shape),
    trainable=False,
  )
  return cov.assign_sub((cov - new_cov) * (1.0 - _DECAY))


def _cov_2017(rows):
  cov = tf.linalg.matmul(rows, rows, transpose_a=True) / tf.cast(
    tf.shape(rows)[0], rows.dtype
  )
  return (cov + tf.transpose(cov)) / 2.0


def _homog_2017(rows):
  return tf.concat([rows, tf.ones([tf.shape(rows)[0], 1])], axis=1)


def _build(pair, side, shape):
  """Builds ours ("ours") or the 2017 formulation ("2017") of one pair."""
  _, _, _, in_channels, kh, kw, out_channels = shape
  filter_shape = (kh, kw, in_channels, out_channels)
  strides = [1, 1, 1, 1]
  ours = side == "ours"
  x, g = _inputs(shape, unknown_batch="None batch" in pair)
  if pair.startswith("ConvDiagonalFactor"):
    cls = (
      fisher_factors.ConvDiagonalFactor
      if ours
      else fisher_factors._ReferenceConvDiagonalFactor
    )
    return cls(x, [g], filter_shape, strides, "SAME").make_covariance_update_op(
      _DECAY
    )
  if pair.startswith("ConvInputKroneckerFactor") or pair.startswith("inverse"):
    cls = (
      fisher_factors.ConvInputKroneckerFactor
      if ours
      else fisher_factors._ReferenceConvInputKroneckerFactor
    )
    factor = cls(x, filter_shape, strides, "SAME", has_bias=True)
    if not pair.startswith("inverse"):
      return factor.make_covariance_update_op(_DECAY)
    dampings = _DAMPINGS[: 1 if "Cholesky" in pair else 2]
    if ours:
      for damping in dampings:
        factor.register_damped_inverse(damping)
      return tf.group(*factor.make_inverse_update_ops())
    cov = factor.get_cov()
    size = cov.shape[0]
    ops = []
    for i, damping in enumerate(dampings):
      inv = tf.compat.v1.get_variable(
        "inv_2017_{}".format(i), initializer=tf.eye(size), trainable=False
      )
      if len(dampings) == 1:
        identity = tf.eye(size)
        chol = tf.linalg.cholesky(cov + damping * identity)
        ops.append(inv.assign(tf.linalg.cholesky_solve(chol, identity)))
      else:
        if i == 0:
          eigenvalues, eigenvectors = tf.linalg.eigh(cov)
          eigenvalues = tf.maximum(eigenvalues, 0.0)
        ops.append(
          inv.assign(
            tf.linalg.matmul(
              eigenvectors / (eigenvalues + damping),
              eigenvectors,
              transpose_b=True,
            )
          )
        )
    return tf.group(*ops)
  if pair == "ConvOutputKroneckerFactor":
    if ours:
      return fisher_factors.ConvOutputKroneckerFactor(
        (g,)
      ).make_covariance_update_op(_DECAY)
    return _ema_2017("cov_2017", _cov_2017(tf.reshape(g, [-1, out_channels])))
  dense_in = tf.reshape(x, [shape[0], -1])[:, : kh * kw * in_channels]
  dense_out = tf.reshape(g, [shape[0], -1])[:, :out_channels]
  if pair == "FullyConnectedKroneckerFactor":
    if ours:
      return fisher_factors.FullyConnectedKroneckerFactor(
        (dense_in,), has_bias=True
      ).make_covariance_update_op(_DECAY)
    return _ema_2017("cov_2017", _cov_2017(_homog_2017(dense_in)))
  if pair == "FullyConnectedDiagonalFactor":
    if ours:
      return fisher_factors.FullyConnectedDiagonalFactor(
        dense_in, (dense_out,), has_bias=True
      ).make_covariance_update_op(_DECAY)
    squared = tf.square(_homog_2017(dense_in))
    return _ema_2017(
      "cov_2017",
      tf.linalg.matmul(squared, tf.square(dense_out), transpose_a=True)
      / shape[0],
    )
  raise ValueError("unknown pair {}".format(pair))


def _comparison_line(label, ours, old, memory=None):
  """One table row: medians (ms), speed-up, paired speed-up[, memory]."""
  ours, old = np.array(ours), np.array(old)
  line = "    {:<38} {:>6.1f} ms {:>6.1f} ms {:>8.2f}x {:>7.2f}x".format(
    label,
    1e3 * np.median(ours),
    1e3 * np.median(old),
    np.median(old) / np.median(ours),
    float(np.median(old / ours)),
  )
  return line if memory is None else "{} {:>15}".format(line, memory)


def _build_large_inverse(side, size):
  """The inverse update of a `[size, size]` fully-connected input factor."""
  cls = (
    fisher_factors.FullyConnectedKroneckerFactor
    if side == "ours"
    else fisher_factors._ReferenceFullyConnectedKroneckerFactor
  )
  rows = tf.random.normal([size // 2, size - 1], seed=3)
  factor = cls((rows,), has_bias=True)
  factor.register_damped_inverse(_DAMPINGS[0])
  # A covariance of rank size / 2 + 1: the damping matters.
  return factor.make_covariance_update_op(0.0), tf.group(
    *factor.make_inverse_update_ops()
  )


def _time_large_inverses(sizes, runs):
  """Prints ours vs 2017 for the Cholesky-path inverse of each size."""
  print("\nCholesky-path inverse update of a [n, n] FullyConnectedKronecker")
  print(
    "    {:<38} {:>9} {:>9} {:>9} {:>8}".format(
      "n", "ours", "2017", "speed-up", "paired"
    )
  )
  for size in sizes:
    with tf.Graph().as_default():
      fetches, covariance_updates = {}, []
      for side in ("ours", "2017"):
        with tf.compat.v1.variable_scope(side):
          update, inverse = _build_large_inverse(side, size)
        covariance_updates.append(update)
        fetches[side] = inverse
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(covariance_updates)
        times = _time_ops(sess, fetches, runs, warmup=1)
    print(_comparison_line(size, times["ours"], times["2017"]))


def _status_kib(field):
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1])
  raise RuntimeError("no {} in /proc/self/status".format(field))


def _measure_memory(shape_name, pair, side):
  """Subprocess entry: prints the peak memory growth (MiB) of one op."""
  with tf.Graph().as_default():
    update = _build(pair, side, SHAPES[shape_name])
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(tf.constant(0.0))
      with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size
      baseline = _status_kib("VmRSS")
      for _ in range(3):
        sess.run(update)
      peak = _status_kib("VmHWM")
  print(json.dumps({"peak_mib": (peak - baseline) / 1024.0}))


def _peak_memory_mib(shape_name, pair, side):
  out = subprocess.run(
    [
      sys.executable,
      os.path.abspath(__file__),
      "--measure-memory",
      shape_name,
      pair,
      side,
    ],
    capture_output=True,
    text=True,
    check=True,
  )
  return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def _time_ops(sess, fetches, runs, warmup=2, min_seconds=0.02):
  """Round-robin timing; returns {name: list of seconds per run}.

  An op faster than `min_seconds` (judged from its last warm-up run) is run
  that many more times back to back in each round, and the round's time is
  divided accordingly, so that sub-millisecond ops are not timed at the
  resolution of the scheduler.
  """
  repeats = {}
  for name, fetch in fetches.items():
    for _ in range(warmup):
      start = time.perf_counter()
      sess.run(fetch)
      elapsed = time.perf_counter() - start
    repeats[name] = max(1, min(100, int(min_seconds / max(elapsed, 1e-6))))
  times = {name: [] for name in fetches}
  for _ in range(runs):
    for name, fetch in fetches.items():
      start = time.perf_counter()
      for _ in range(repeats[name]):
        sess.run(fetch)
      times[name].append((time.perf_counter() - start) / repeats[name])
  return times


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", type=int, default=9)
  parser.add_argument("--shapes", default="abcde")
  parser.add_argument("--no-memory", action="store_true")
  parser.add_argument(
    "--inverse-sizes",
    default="3137,2049",
    help="comma-separated sizes of the large-inverse comparison ('' skips it)",
  )
  parser.add_argument(
    "--measure-memory", nargs=3, metavar=("SHAPE", "PAIR", "SIDE")
  )
  args = parser.parse_args()
  if args.measure_memory:
    _measure_memory(*args.measure_memory)
    return

  started = time.perf_counter()
  print(
    "TensorFlow {}, {} CPU(s) visible, {} rounds per median".format(
      tf.__version__, os.cpu_count(), args.runs
    )
  )
  for shape_name in args.shapes:
    shape = SHAPES[shape_name]
    with tf.Graph().as_default():
      fetches = {}
      for i, (pair, _) in enumerate(PAIRS):
        for side in ("ours", "2017"):
          with tf.compat.v1.variable_scope("p{}_{}".format(i, side)):
            fetches[(pair, side)] = _build(pair, side, shape)
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        times = _time_ops(sess, fetches, args.runs)
    print(
      "\n({}) batch {}, {}x{}x{} inputs, {}x{} kernel, {} out-channels, "
      "SAME, stride 1".format(shape_name, *shape)
    )
    print(
      "    {:<38} {:>9} {:>9} {:>9} {:>8} {:>15}".format(
        "statistic", "ours", "2017", "speed-up", "paired", "peak MiB ours/2017"
      )
    )
    for pair, with_memory in PAIRS:
      ours = np.array(times[(pair, "ours")])
      old = np.array(times[(pair, "2017")])
      memory = "-"
      if with_memory and not args.no_memory:
        memory = "{:.0f} / {:.0f}".format(
          _peak_memory_mib(shape_name, pair, "ours"),
          _peak_memory_mib(shape_name, pair, "2017"),
        )
      print(_comparison_line(pair, ours, old, memory))
  sizes = [int(n) for n in args.inverse_sizes.split(",") if n.strip()]
  if sizes:
    _time_large_inverses(sizes, args.runs)
  print("\ntotal benchmark time {:.0f} s".format(time.perf_counter() - started))


if __name__ == "__main__":
  main()
