"""Benchmark of the convolutional covariance updates of `kfac.fisher_factors`.

Times the covariance update op (median of `--runs` runs after warm-up; the
update is fetched, so the work really runs) of

* `ConvDiagonalFactor` (this package),
* the straightforward 2017 formulation of the same statistic, as in
  TensorFlow 1.4: `extract_image_patches`, `einsum("bijk,bijl->bkl")`,
  square, batch mean, followed by the same moving-average assignment,
* `ConvInputKroneckerFactor`,
* `FullyConnectedKroneckerFactor` on a `[batch, kh·kw·Cin]` input with a
  bias (a dense layer as wide as the convolution's filter rows),

on the reference shapes

  (a) batch 128, 28×28×1 inputs, 5×5 kernel, 32 out-channels, SAME, stride 1
  (b) batch 128, 16×16×32 inputs, 3×3 kernel, 64 out-channels, SAME, stride 1
  (c) batch 64, 32×32×64 inputs, 3×3 kernel, 64 out-channels, SAME, stride 1

In the same run it times a 2048×2048 float32 matmul to get the machine's
FLOP rate and prints, per shape and variant: median milliseconds, speed-up
over the straightforward formulation (ratio of the medians, and "paired":
the median over rounds of the ratio within a round, steadier on a shared
machine), percent of the FLOP lower bound
(2·B·Hout·Wout·kh·kw·Cin·Cout flops at the measured matmul rate) and peak
memory. Peak memory is measured in a fresh subprocess per variant: the
growth of the resident set's high-water mark (VmHWM, reset through
/proc/self/clear_refs) over the resident size after the inputs exist, during
the first three runs of the update.

Usage: python tools/bench_fisher_factors.py [--runs N] [--shapes abc]
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
# kfac first: it imports TensorFlow without its start-up notices.
from kfac import fisher_factors  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top,g-bad-import-order

SHAPES = {
    # name: (batch, height, width, in_channels, kh, kw, out_channels)
    "a": (128, 28, 28, 1, 5, 5, 32),
    "b": (128, 16, 16, 32, 3, 3, 64),
    "c": (64, 32, 32, 64, 3, 3, 64),
}
VARIANTS = ("ConvDiagonalFactor", "straightforward_2017",
            "ConvInputKroneckerFactor", "FullyConnectedKroneckerFactor")
_DECAY = 0.95
_MATMUL_N = 2048


def _flops(shape):
  batch, height, width, in_channels, kh, kw, out_channels = shape
  return 2. * batch * height * width * kh * kw * in_channels * out_channels


def _inputs(shape):
  """Non-trainable variables holding random inputs and output gradients."""
  batch, height, width, in_channels, _, _, out_channels = shape
  x = tf.Variable(tf.random.normal([batch, height, width, in_channels],
                                   seed=1), trainable=False, name="inputs")
  g = tf.Variable(tf.random.normal([batch, height, width, out_channels],
                                   seed=2), trainable=False, name="grads")
  return x.read_value(), g.read_value()


def _straightforward_2017(x, g, shape):
  """The TensorFlow 1.4 formulation, with the same moving average."""
  _, _, _, in_channels, kh, kw, out_channels = shape
  patches = tf.image.extract_patches(
      x, sizes=[1, kh, kw, 1], strides=[1, 1, 1, 1], rates=[1, 1, 1, 1],
      padding="SAME")
  per_example = tf.einsum("bijk,bijl->bkl", patches, g)
  new_cov = (tf.reduce_sum(tf.square(per_example), axis=0) /
             tf.cast(tf.shape(patches)[0], tf.float32))
  cov = tf.compat.v1.get_variable(
      "straightforward_cov", shape=[kh * kw * in_channels, out_channels],
      initializer=tf.compat.v1.ones_initializer(), trainable=False)
  return cov.assign_sub((cov - new_cov) * (1. - _DECAY))


def _build(variant, shape):
  """Builds the update op of one variant; returns the tensor to fetch."""
  _, _, _, in_channels, kh, kw, out_channels = shape
  x, g = _inputs(shape)
  if variant == "ConvDiagonalFactor":
    factor = fisher_factors.ConvDiagonalFactor(
        x, [g], (kh, kw, in_channels, out_channels), [1, 1, 1, 1], "SAME")
    return factor.make_covariance_update_op(_DECAY)
  if variant == "straightforward_2017":
    return _straightforward_2017(x, g, shape)
  if variant == "ConvInputKroneckerFactor":
    factor = fisher_factors.ConvInputKroneckerFactor(
        x, (kh, kw, in_channels, out_channels), [1, 1, 1, 1], "SAME",
        has_bias=True)
    return factor.make_covariance_update_op(_DECAY)
  if variant == "FullyConnectedKroneckerFactor":
    dense_in = tf.reshape(x, [shape[0], -1])[:, :kh * kw * in_channels]
    factor = fisher_factors.FullyConnectedKroneckerFactor((dense_in,),
                                                          has_bias=True)
    return factor.make_covariance_update_op(_DECAY)
  raise ValueError("unknown variant {}".format(variant))


def _status_kib(field):
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1])
  raise RuntimeError("no {} in /proc/self/status".format(field))


def _measure_memory(shape_name, variant):
  """Subprocess entry: prints the peak memory growth (MiB) of one variant."""
  shape = SHAPES[shape_name]
  with tf.Graph().as_default():
    update = _build(variant, shape)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(tf.constant(0.))
      with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size
      baseline = _status_kib("VmRSS")
      for _ in range(3):
        sess.run(update)
      peak = _status_kib("VmHWM")
  print(json.dumps({"peak_mib": (peak - baseline) / 1024.}))


def _peak_memory_mib(shape_name, variant):
  out = subprocess.run(
      [sys.executable, os.path.abspath(__file__), "--measure-memory",
       shape_name, variant], capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def _time_ops(sess, fetches, runs, warmup=2):
  """Round-robin timing of several fetches.

  Returns:
    (median seconds per fetch, list of per-round seconds per fetch).
  """
  for fetch in fetches.values():
    for _ in range(warmup):
      sess.run(fetch)
  times = {name: [] for name in fetches}
  for _ in range(runs):
    for name, fetch in fetches.items():
      start = time.perf_counter()
      sess.run(fetch)
      times[name].append(time.perf_counter() - start)
  return {name: float(np.median(t)) for name, t in times.items()}, times


def _check_results(shape):
  """ConvDiagonalFactor's method and max rel. difference to the 2017 one."""
  _, _, _, in_channels, kh, kw, out_channels = shape
  with tf.Graph().as_default():
    x, g = _inputs(shape)
    factor = fisher_factors.ConvDiagonalFactor(
        x, [g], (kh, kw, in_channels, out_channels), [1, 1, 1, 1], "SAME")
    ours = factor._compute_new_cov(0)  # pylint: disable=protected-access
    patches = tf.image.extract_patches(
        x, [1, kh, kw, 1], [1, 1, 1, 1], [1, 1, 1, 1], "SAME")
    theirs = tf.reduce_mean(tf.square(tf.einsum("bijk,bijl->bkl", patches,
                                                g)), axis=0)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      a, b = sess.run([ours, theirs])
  # pylint: disable=protected-access
  return factor._method, float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", type=int, default=11)
  parser.add_argument("--shapes", default="abc")
  parser.add_argument("--no-memory", action="store_true")
  parser.add_argument("--measure-memory", nargs=2, metavar=("SHAPE",
                                                            "VARIANT"))
  args = parser.parse_args()
  if args.measure_memory:
    _measure_memory(*args.measure_memory)
    return

  started = time.perf_counter()
  print("TensorFlow {}, {} CPU(s) visible, {} runs per median".format(
      tf.__version__, os.cpu_count(), args.runs))
  for shape_name in args.shapes:
    shape = SHAPES[shape_name]
    with tf.Graph().as_default():
      fetches = {}
      for variant in VARIANTS:
        with tf.compat.v1.variable_scope(variant):
          fetches[variant] = _build(variant, shape)
      a = tf.Variable(tf.random.normal([_MATMUL_N, _MATMUL_N], seed=3))
      b = tf.Variable(tf.random.normal([_MATMUL_N, _MATMUL_N], seed=4))
      fetches["matmul"] = tf.reduce_sum(tf.linalg.matmul(a, b)[:1, :1])
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        medians, times = _time_ops(sess, fetches, args.runs)
    rate = 2. * _MATMUL_N**3 / medians["matmul"]
    bound = _flops(shape) / rate
    baseline = medians["straightforward_2017"]
    print("\n({}) batch {}, {}x{}x{} inputs, {}x{} kernel, {} out-channels, "
          "SAME, stride 1".format(shape_name, shape[0], shape[1], shape[2],
                                  shape[3], shape[4], shape[5], shape[6]))
    method, max_rel_diff = _check_results(shape)
    print("    matmul {:.1f} GFLOP/s; FLOP lower bound {:.2f} ms; "
          "ConvDiagonalFactor method {!r}, max rel. diff to 2017 {:.1e}"
          .format(rate / 1e9, bound * 1e3, method, max_rel_diff))
    print("    {:<30} {:>9} {:>9} {:>9} {:>10} {:>10}".format(
        "variant", "median", "speed-up", "paired", "% bound", "peak MiB"))
    for variant in VARIANTS:
      peak = ("-" if args.no_memory else
              "{:.1f}".format(_peak_memory_mib(shape_name, variant)))
      comparable = variant in ("ConvDiagonalFactor", "straightforward_2017")
      # Median over rounds of the same round's baseline / variant time:
      # less sensitive to load that drifts during the run.
      paired = float(np.median(np.array(times["straightforward_2017"]) /
                               np.array(times[variant])))
      print("    {:<30} {:>6.2f} ms {:>8.2f}x {:>8.2f}x {:>10} {:>10}".format(
          variant, medians[variant] * 1e3, baseline / medians[variant],
          paired,
          "{:.0f}%".format(100 * bound / medians[variant]) if comparable
          else "-", peak))
  print("\ntotal benchmark time {:.0f} s".format(time.perf_counter() -
                                                 started))


if __name__ == "__main__":
  main()
