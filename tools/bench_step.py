r"""Benchmark: one training step of a legacy-style convnet, K-FAC vs momentum.

Builds the convnet the way a TensorFlow 1 program registered it with
`tf.contrib.kfac`, nothing tuned for speed:

* inputs `placeholder([None, 28, 28, 1])`, batch 128 fed every step;
* conv 5x5 -> 32, ReLU, max-pool 2x2, conv 5x5 -> 64, ReLU, max-pool 2x2,
  dense 3136 -> 10, all SAME, every layer with a bias;
* `register_conv2d` / `register_fully_connected` with their default
  approximation ("kron"), `register_categorical_predictive_distribution`;
* `KfacOptimizer(momentum=0.9)` (defaults otherwise, so with its non-finite
  update guards unless `--no-nonfinite-guards`),
  `session.run([train_op, cov_update_op])` every step, `inv_update_op`
  every `--inv-every` steps.

In one process, side by side, it times five variants of the same program:

* `momentum`: `tf.compat.v1.train.MomentumOptimizer(momentum=0.9)`;
* `floor`: the momentum step plus only what every exact K-FAC step must
  compute besides it: the gradients of the loss at targets sampled from the
  model (`LayerCollection.total_sampled_loss`) with respect to every
  registered layer output, each consumed by one cheap sum; no statistic, no
  preconditioning. It bounds what any formulation of the statistics can
  reach: "kfac_2017 / floor" is the largest possible "kfac_2017 / kfac";
* `kfac_2017`: K-FAC whose factors compute the 2017 formulations (the
  layer collection passed to the optimizer creates every factor through
  `fisher_factors._reference_factor_class`, explicitly);
* `kfac`: K-FAC as shipped;
* `kfac_free_convin`: K-FAC as shipped except that every
  `ConvInputKroneckerFactor` statistic is a constant identity matrix (it
  costs nothing; its moving average and inverse still run): the step that
  no formulation of that statistic can beat, so
  "kfac_2017 / kfac_free_convin" is the largest "kfac_2017 / kfac" reachable
  by speeding up that statistic alone.

Steps are timed interleaved (`--rounds` rounds; in each, every variant runs
`--steps` steps, then each K-FAC variant one inverse update) and reported as
medians. Printed per shape: milliseconds per step, the inverse update, the
amortised step (step + inverse / inv-every), the ratios to momentum SGD and
of the 2017 formulations to ours, to the floor and to `kfac_free_convin`,
checked against the targets (K-FAC step at most 3x momentum; amortised at
most 3.5x; at least 2.5x faster than the 2017 formulations), then the per-op breakdown of the top costs of a traced
step and a traced inverse update (`RunMetadata` step stats). A PNG bar chart
of the breakdown is written next to the text output (`--output-dir`).

  python tools/bench_step.py                         # MNIST-size convnet
  python tools/bench_step.py --shapes mnist,cifar    # and the CIFAR-size one

The CIFAR-size variant: 32x32x3 inputs, three 3x3 convolutions (32, 64, 128
channels) each followed by a 2x2 max-pool, dense 2048 -> 10.
"""

import argparse
import collections
import os
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

import numpy as np

# kfac's modules first: they import TensorFlow without its start-up notices.
from kfac import fisher_factors
import tensorflow as tf

from kfac import layer_collection as lc
from kfac import optimizer as opt
# pylint: enable=g-import-not-at-top,wrong-import-position

# name: (input height, width, channels, [(kernel, out_channels)], classes)
SHAPES = {
  "mnist": (28, 28, 1, [(5, 32), (5, 64)], 10),
  "cifar": (32, 32, 3, [(3, 32), (3, 64), (3, 128)], 10),
}
VARIANTS = ("momentum", "floor", "kfac_2017", "kfac", "kfac_free_convin")
TARGETS = {"step": 3.0, "amortised": 3.5, "speedup_2017": 2.5}


class _ReferenceLayerCollection(lc.LayerCollection):
  """A LayerCollection whose factors use the 2017 formulations."""

  def make_or_get_factor(self, cls, args):
    return super(_ReferenceLayerCollection, self).make_or_get_factor(
      fisher_factors._reference_factor_class(cls), args
    )


class _ConstantConvInputFactor(fisher_factors.ConvInputKroneckerFactor):
  """A `ConvInputKroneckerFactor` whose statistic is the identity (free)."""

  def _compute_new_cov(self, idx=0):
    return tf.eye(self._cov_shape[0])


class _FreeConvInputLayerCollection(lc.LayerCollection):
  """A LayerCollection whose conv input factors cost nothing to update."""

  def make_or_get_factor(self, cls, args):
    if cls is fisher_factors.ConvInputKroneckerFactor:
      cls = _ConstantConvInputFactor
    return super(_FreeConvInputLayerCollection, self).make_or_get_factor(
      cls, args
    )


_COLLECTIONS = {
  "kfac_2017": _ReferenceLayerCollection,
  "kfac_free_convin": _FreeConvInputLayerCollection,
}


def _build(variant, shape_name, batch_size, nonfinite_guards):
  """Builds one variant in a new graph; returns a dict of what to run."""
  height, width, channels, convs, classes = SHAPES[shape_name]
  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.set_random_seed(0)
    images = tf.compat.v1.placeholder(
      tf.float32, [None, height, width, channels], name="images"
    )
    labels = tf.compat.v1.placeholder(tf.int64, [None], name="labels")
    collection = _COLLECTIONS.get(variant, lc.LayerCollection)()
    init = tf.compat.v1.glorot_uniform_initializer()
    x = images
    in_channels = channels
    outputs = []  # every registered layer output
    for i, (kernel, out_channels) in enumerate(convs):
      with tf.compat.v1.variable_scope("conv{}".format(i + 1)):
        w = tf.compat.v1.get_variable(
          "kernel",
          [kernel, kernel, in_channels, out_channels],
          initializer=init,
        )
        b = tf.compat.v1.get_variable(
          "bias", [out_channels], initializer=tf.zeros_initializer()
        )
        pre = tf.nn.bias_add(tf.nn.conv2d(x, w, [1, 1, 1, 1], "SAME"), b)
        collection.register_conv2d((w, b), [1, 1, 1, 1], "SAME", x, pre)
        outputs.append(pre)
        x = tf.nn.max_pool2d(tf.nn.relu(pre), 2, 2, "SAME")
      in_channels = out_channels
    flat_size = int(np.prod(x.shape.as_list()[1:]))
    x = tf.reshape(x, [-1, flat_size])
    with tf.compat.v1.variable_scope("dense"):
      w = tf.compat.v1.get_variable(
        "kernel", [flat_size, classes], initializer=init
      )
      b = tf.compat.v1.get_variable(
        "bias", [classes], initializer=tf.zeros_initializer()
      )
      logits = tf.linalg.matmul(x, w) + b
      collection.register_fully_connected((w, b), x, logits)
      outputs.append(logits)
    collection.register_categorical_predictive_distribution(logits)
    loss = tf.reduce_mean(
      tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits
      )
    )
    if variant in ("momentum", "floor"):
      optimizer = tf.compat.v1.train.MomentumOptimizer(0.01, 0.9)
      train_op = optimizer.minimize(loss)
      step, inverse = [train_op], None
      if variant == "floor":
        # The sampled-loss back-propagation of a K-FAC covariance update,
        # each gradient reduced to a scalar so that it must be computed.
        sampled_grads = tf.compat.v1.gradients(
          collection.total_sampled_loss(), outputs
        )
        step.append(tf.add_n([tf.reduce_sum(g) for g in sampled_grads]))
    else:
      optimizer = opt.KfacOptimizer(
        learning_rate=0.001,
        cov_ema_decay=0.95,
        damping=0.01,
        layer_collection=collection,
        momentum=0.9,
        skip_nonfinite_updates=nonfinite_guards,
      )
      train_op = optimizer.minimize(loss)
      step, inverse = (
        [train_op, optimizer.cov_update_op],
        (optimizer.inv_update_op),
      )
    init_op = tf.compat.v1.global_variables_initializer()
  session = tf.compat.v1.Session(graph=graph)
  session.run(init_op)
  rng = np.random.RandomState(0)
  feed = {
    images: rng.rand(batch_size, height, width, channels).astype(np.float32),
    labels: rng.randint(0, classes, batch_size),
  }
  return {"session": session, "step": step, "inverse": inverse, "feed": feed}


def _time(run, fetch, feed):
  start = time.perf_counter()
  run["session"].run(fetch, feed)
  return time.perf_counter() - start


def _trace(run, fetch, feed, repeats=3):
  """Mean milliseconds per node over traced runs: {(op type, name): ms}."""
  totals = collections.defaultdict(float)
  options = tf.compat.v1.RunOptions(
    trace_level=tf.compat.v1.RunOptions.FULL_TRACE
  )
  for _ in range(repeats):
    metadata = tf.compat.v1.RunMetadata()
    run["session"].run(fetch, feed, options=options, run_metadata=metadata)
    for device in metadata.step_stats.dev_stats:
      for node in device.node_stats:
        name = node.node_name.split(":")[0]
        if name in ("_SOURCE", "_SINK"):
          continue
        op_type = node.timeline_label.split("(")[0].split("=")[-1].strip()
        op_type = op_type.split()[0] if op_type else "?"
        totals[(op_type, name)] += node.all_end_rel_micros / 1e3
  return {key: value / repeats for key, value in totals.items()}


def _by_type(per_node):
  totals = collections.defaultdict(float)
  for (op_type, _), ms in per_node.items():
    totals[op_type] += ms
  return totals


def _measure(shape_name, args):
  """Times every variant on one shape; returns (text lines, breakdowns)."""
  runs = {
    v: _build(v, shape_name, args.batch_size, not args.no_nonfinite_guards)
    for v in VARIANTS
  }
  step_times = {v: [] for v in VARIANTS}
  inverse_times = {v: [] for v in VARIANTS if runs[v]["inverse"]}
  for v in VARIANTS:  # warm-up, and the first inverses
    run = runs[v]
    if run["inverse"] is not None:
      run["session"].run(run["inverse"])
    for _ in range(3):
      run["session"].run(run["step"], run["feed"])
  for _ in range(args.rounds):
    for v in VARIANTS:
      run = runs[v]
      for _ in range(args.steps):
        step_times[v].append(_time(run, run["step"], run["feed"]))
      if run["inverse"] is not None:
        inverse_times[v].append(_time(run, run["inverse"], None))
  step = {v: 1e3 * float(np.median(t)) for v, t in step_times.items()}
  inverse = {v: 1e3 * float(np.median(t)) for v, t in inverse_times.items()}
  amortised = {
    v: step[v] + inverse.get(v, 0.0) / args.inv_every for v in VARIANTS
  }

  height, width, channels, convs, _ = SHAPES[shape_name]
  lines = [
    "",
    "== {}: batch {}, {}x{}x{} inputs, convs {} ==".format(
      shape_name,
      args.batch_size,
      height,
      width,
      channels,
      ", ".join("{0}x{0}->{1}".format(k, c) for k, c in convs),
    ),
  ]
  lines.append(
    "{:<16} {:>10} {:>12} {:>14} {:>9} {:>11}".format(
      "variant",
      "step ms",
      "inverse ms",
      "amortised ms",
      "step/SGD",
      "amort./SGD",
    )
  )
  for v in VARIANTS:
    lines.append(
      "{:<16} {:>10.2f} {:>12} {:>14.2f} {:>8.2f}x {:>10.2f}x".format(
        v,
        step[v],
        "{:.1f}".format(inverse[v]) if v in inverse else "-",
        amortised[v],
        step[v] / step["momentum"],
        amortised[v] / amortised["momentum"],
      )
    )
  checks = [
    (
      "K-FAC step / momentum step",
      step["kfac"] / step["momentum"],
      "<=",
      TARGETS["step"],
    ),
    (
      "K-FAC amortised / momentum step (inverses every {})".format(
        args.inv_every
      ),
      amortised["kfac"] / step["momentum"],
      "<=",
      TARGETS["amortised"],
    ),
    (
      "2017 formulations / ours, step",
      step["kfac_2017"] / step["kfac"],
      ">=",
      TARGETS["speedup_2017"],
    ),
  ]
  # Untargeted ratios: the bounds (floor, kfac_free_convin) and the rest.
  for what, times, num, den in (
    ("step", step, "kfac_2017", "floor"),
    ("step", step, "kfac_2017", "kfac_free_convin"),
    ("step", step, "kfac", "floor"),
    ("amortised", amortised, "kfac_2017", "kfac"),
    ("inverse update", inverse, "kfac_2017", "kfac"),
  ):
    label = "{} / {}, {}".format(num, den, what)
    checks.append((label, times[num] / times[den], None, None))
  for label, value, op, target in checks:
    if target is None:
      verdict = ""
    else:
      ok = value <= target if op == "<=" else value >= target
      verdict = "  (target {} {:g}: {})".format(
        op, target, "met" if ok else "NOT MET"
      )
    lines.append("{:<52} {:6.2f}x{}".format(label, value, verdict))

  breakdowns = {}
  for v in VARIANTS:
    run = runs[v]
    per_node = _trace(run, run["step"], run["feed"])
    breakdowns[(v, "step")] = per_node
    if run["inverse"] is not None:
      breakdowns[(v, "inverse")] = _trace(run, run["inverse"], None, repeats=1)
  for (v, what), per_node in breakdowns.items():
    total = sum(per_node.values())
    lines.append("")
    lines.append(
      "{} {}: top ops of a traced run (sum of op times {:.1f} ms;"
      " ops overlap, so it can exceed the wall time)".format(v, what, total)
    )
    by_type = sorted(_by_type(per_node).items(), key=lambda kv: -kv[1])
    lines.append(
      "  by op type: "
      + ", ".join("{} {:.1f}".format(t, ms) for t, ms in by_type[: args.top])
    )
    for (op_type, name), ms in sorted(per_node.items(), key=lambda kv: -kv[1])[
      : args.top
    ]:
      lines.append(
        "  {:8.2f} ms {:>5.1f}%  {:<24} {}".format(
          ms, 100.0 * ms / max(total, 1e-9), op_type, name[-70:]
        )
      )
  for run in runs.values():
    run["session"].close()
  ratios = {"step": step, "inverse": inverse, "amortised": amortised}
  return lines, breakdowns, ratios


def _plot(path, shape_results, top):
  """Bar charts of the op-type breakdown per shape and variant."""
  try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    print("matplotlib is not installed: no PNG written.")
    return
  panels = [
    (shape, key, per_node)
    for shape, (_, breakdowns, _) in shape_results.items()
    for key, per_node in breakdowns.items()
  ]
  columns = 3
  rows = -(-len(panels) // columns)
  fig, axes = plt.subplots(
    rows, columns, figsize=(6 * columns, 3.2 * rows), squeeze=False
  )
  for ax in axes.flat[len(panels) :]:
    ax.axis("off")
  for ax, (shape, (variant, what), per_node) in zip(axes.flat, panels):
    items = sorted(_by_type(per_node).items(), key=lambda kv: -kv[1])[:top]
    names = [t for t, _ in items][::-1]
    values = [ms for _, ms in items][::-1]
    ax.barh(names, values, color="tab:blue" if what == "step" else "tab:orange")
    ax.set_title(
      "{}: {} {} ({:.1f} ms of ops)".format(
        shape, variant, what, sum(per_node.values())
      ),
      fontsize=9,
    )
    ax.set_xlabel("ms per run")
    ax.tick_params(axis="y", labelsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--shapes",
    default="mnist",
    help="comma-separated subset of {}".format(",".join(SHAPES)),
  )
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument(
    "--steps", type=int, default=6, help="steps per variant per round"
  )
  parser.add_argument("--inv-every", type=int, default=20)
  parser.add_argument("--top", type=int, default=8)
  parser.add_argument(
    "--no-nonfinite-guards",
    action="store_true",
    help="build K-FAC with skip_nonfinite_updates=False "
    "(the default program keeps the guards)",
  )
  parser.add_argument(
    "--output-dir",
    default=".",
    help="where bench_step.txt and bench_step.png go",
  )
  args = parser.parse_args()
  shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
  for shape in shapes:
    if shape not in SHAPES:
      parser.error(
        "unknown shape {!r}; choose from {}".format(shape, ", ".join(SHAPES))
      )

  started = time.perf_counter()
  header = [
    "TensorFlow {}, {} CPU(s) visible; medians of {} rounds x {} "
    "steps, variants interleaved; K-FAC non-finite guards {}".format(
      tf.__version__,
      os.cpu_count(),
      args.rounds,
      args.steps,
      "off" if args.no_nonfinite_guards else "on (default)",
    )
  ]
  print(header[0])
  results = {}
  for shape in shapes:
    lines, breakdowns, ratios = _measure(shape, args)
    results[shape] = (lines, breakdowns, ratios)
    print("\n".join(lines))
  footer = "\ntotal benchmark time {:.0f} s".format(
    time.perf_counter() - started
  )
  print(footer)
  os.makedirs(args.output_dir, exist_ok=True)
  with open(os.path.join(args.output_dir, "bench_step.txt"), "w") as f:
    f.write(
      "\n".join(
        header + [line for shape in shapes for line in results[shape][0]]
      )
      + footer
      + "\n"
    )
  _plot(os.path.join(args.output_dir, "bench_step.png"), results, args.top)


if __name__ == "__main__":
  main()
