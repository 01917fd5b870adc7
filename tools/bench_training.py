r"""Benchmark: K-FAC against momentum SGD and Adam on the examples.

For the ConvNet and the deep autoencoder examples (on scikit-learn's 8x8
digits), trains each optimizer from the same seeded start and measures

* milliseconds per step, measured with the optimizers interleaved (blocks of
  40 steps in turn, after a warm-up) so that a shared machine's load hits all
  alike. K-FAC updates its covariances every step (statistics on 1/8 of the
  batch, as in the K-FAC paper) and its inverses every 20 steps, so its
  figure is amortised over the inverse updates;
* the steps and the seconds (training steps only: evaluation and the first
  step's one-time set-up excluded) each needs to bring the loss on the whole
  training set to the problem's target.

Prints a table and the ratios to momentum SGD, checks them against the
targets (a K-FAC step at most 2x a momentum-SGD step; at least 5x fewer steps
than momentum SGD to the autoencoder's target loss), and writes a PNG of the
loss against steps and against seconds.

  python tools/bench_training.py                 # a few minutes on 2 cores
  python tools/bench_training.py --png /tmp/bench.png --problems autoencoder
"""

import argparse
import os
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

# Imported after the path set-up above.
import kfac.utils  # noqa: F401  (imports TensorFlow quietly)
import tensorflow as tf

from kfac import layer_collection as lc
from kfac.examples import autoencoder
from kfac.examples import common
from kfac.examples import convnet
from kfac.examples import mnist

# Per problem: the target training loss, and per optimizer its settings and
# step budget. Learning rates were picked by small sweeps (best training
# loss after the budget, seed 0). K-FAC uses the examples' defaults: on the
# ConvNet "regular" momentum 0.9 with KL clipping; on the autoencoder the
# K-FAC paper's choice of step size and momentum by the quadratic model
# ("qmodel", learning rate 1). As in the paper (section 8), K-FAC's
# statistics come from 1/8 of each batch (`stats_batch_size`); the gradient
# uses the whole batch.
PROBLEMS = {
  "convnet": {
    "target": 0.05,
    "batch_size": 128,
    "runs": {
      "momentum": {"learning_rate": 0.05, "momentum": 0.9, "steps": 500},
      "adam": {"learning_rate": 0.003, "steps": 500},
      "kfac": {
        "learning_rate": 0.1,
        "momentum": 0.9,
        "damping": 0.1,
        "norm_constraint": 0.001,
        "stats_batch_size": 16,
        "steps": 300,
      },
    },
  },
  "autoencoder": {
    "target": 20.0,
    "batch_size": 512,
    "runs": {
      "momentum": {"learning_rate": 0.2, "momentum": 0.9, "steps": 2000},
      "adam": {"learning_rate": 0.01, "steps": 1000},
      "kfac": {
        "learning_rate": 1.0,
        "momentum": 0.0,
        "damping": 0.01,
        "momentum_type": "qmodel",
        "stats_batch_size": 64,
        "steps": 400,
      },
    },
  },
}
OPTIMIZERS = ("momentum", "adam", "kfac")
INV_UPDATE_INTERVAL = 20
COLORS = {"momentum": "tab:blue", "adam": "tab:orange", "kfac": "tab:green"}


def _settings(cfg, optimizer):
  """The keyword arguments of an example's training function for one run."""
  run = dict(cfg["runs"][optimizer])
  run.update(
    batch_size=cfg["batch_size"],
    optimizer=optimizer,
    inv_update_interval=INV_UPDATE_INTERVAL,
  )
  return run


def run_one(problem, optimizer, cfg, record_every, seed):
  """Trains one optimizer on one problem; returns `common.train`'s dict."""
  kwargs = _settings(cfg, optimizer)
  kwargs.update(
    seed=seed, log_every=0, verbose=False, record_every=record_every
  )
  with tf.Graph().as_default():
    if problem == "convnet":
      return convnet.train_mnist_single_machine_result(
        "", None, evaluate_on_training_set=True, **kwargs
      )
    return autoencoder.train_autoencoder(
      "", None, evaluate_on_training_set=True, **kwargs
    )


class _Stepper(object):
  """One optimizer's training graph and session, stepped on demand."""

  def __init__(self, problem, optimizer, cfg, seed):
    settings = _settings(cfg, optimizer)
    self.graph = tf.Graph()
    with self.graph.as_default():
      tf.compat.v1.set_random_seed(seed)
      layer_collection = lc.LayerCollection()
      if problem == "convnet":
        examples, labels = mnist.load_mnist(
          "", None, cfg["batch_size"], flatten_images=False, seed=seed
        )
        loss, _ = convnet.build_model(
          examples,
          labels,
          10,
          layer_collection,
          stats_batch_size=settings.get("stats_batch_size"),
        )
      else:
        examples, _ = mnist.load_mnist("", None, cfg["batch_size"], seed=seed)
        loss, _ = autoencoder.build_model(
          examples,
          layer_collection,
          stats_batch_size=settings.get("stats_batch_size"),
        )
      opt = common.make_optimizer(
        optimizer,
        settings["learning_rate"],
        layer_collection,
        momentum=settings.get("momentum", 0.9),
        damping=settings.get("damping", 1e-3),
        momentum_type=settings.get("momentum_type", "regular"),
        norm_constraint=settings.get("norm_constraint"),
      )
      self.fetches = [opt.minimize(loss)]
      self.inv_op = None
      if optimizer == "kfac":
        self.fetches.append(opt.cov_update_op)
        self.inv_op = opt.inv_update_op
      init = tf.compat.v1.global_variables_initializer()
    self.sess = tf.compat.v1.Session(graph=self.graph)
    self.sess.run(init)
    self.step = 0

  def run(self, num_steps):
    """Runs `num_steps` training steps; returns their wall-clock seconds."""
    start = time.time()
    for _ in range(num_steps):
      self.sess.run(self.fetches)
      if self.inv_op is not None and self.step % INV_UPDATE_INTERVAL == 0:
        self.sess.run(self.inv_op)
      self.step += 1
    return time.time() - start


def time_steps(problem, cfg, rounds, seed):
  """Amortised ms per step of every optimizer, measured interleaved.

  Every optimizer gets its own graph and session; after a warm-up of one
  inverse period, `rounds` rounds each run every optimizer for
  `2 * INV_UPDATE_INTERVAL` steps in turn (so that K-FAC's inverse updates
  are included in proportion and load changes of a shared machine hit all
  optimizers alike).

  Returns:
    dict optimizer -> ms per step.
  """
  steppers = {o: _Stepper(problem, o, cfg, seed) for o in OPTIMIZERS}
  try:
    for stepper in steppers.values():
      stepper.run(INV_UPDATE_INTERVAL)
    seconds = dict.fromkeys(OPTIMIZERS, 0.0)
    block = 2 * INV_UPDATE_INTERVAL
    for _ in range(rounds):
      for optimizer, stepper in steppers.items():
        seconds[optimizer] += stepper.run(block)
    return {o: 1000.0 * seconds[o] / (rounds * block) for o in OPTIMIZERS}
  finally:
    for stepper in steppers.values():
      stepper.sess.close()


def to_target(history, target, offset=0.0):
  """(steps, seconds - offset) of the first record with loss <= target."""
  for step, seconds, loss in history:
    if loss <= target:
      return step, max(0.0, seconds - offset)
  return None


def fmt_ratio(value):
  return "-" if value is None else "%.2fx" % value


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument(
    "--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS)
  )
  parser.add_argument(
    "--png", default="bench_training.png", help="where to write the plot"
  )
  parser.add_argument(
    "--record_every",
    type=int,
    default=10,
    help="evaluate the training-set loss every N steps",
  )
  parser.add_argument(
    "--rounds",
    type=int,
    default=20,
    help="interleaved timing rounds of 40 steps each",
  )
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument(
    "--scale",
    type=float,
    default=1.0,
    help="multiply every step budget (e.g. 0.1 to smoke-test)",
  )
  args = parser.parse_args(argv)
  common.quiet_logs()

  start = time.time()
  results = {}
  for problem in args.problems:
    cfg = PROBLEMS[problem]
    for optimizer in OPTIMIZERS:
      run_cfg = {k: dict(v) for k, v in cfg["runs"].items()}
      run_cfg[optimizer]["steps"] = max(
        2, int(run_cfg[optimizer]["steps"] * args.scale)
      )
      result = run_one(
        problem,
        optimizer,
        dict(cfg, runs=run_cfg),
        args.record_every,
        args.seed,
      )
      # The first step also builds the executors (one-time set-up).
      result["setup"] = result["step_times"][0]
      result["to_target"] = to_target(
        result["history"], cfg["target"], offset=result["setup"]
      )
      results[(problem, optimizer)] = result
      print(
        "  %-11s %-8s %5d steps in %5.2f s (set-up %.2f s), final loss "
        "%.4f"
        % (
          problem,
          optimizer,
          result["steps"],
          result["seconds"],
          result["setup"],
          result["loss"],
        ),
        flush=True,
      )
    ms = time_steps(
      problem, cfg, max(1, int(args.rounds * min(1, args.scale * 5))), args.seed
    )
    for optimizer in OPTIMIZERS:
      results[(problem, optimizer)]["ms_per_step"] = ms[optimizer]
    print(
      "  %-11s ms/step (interleaved): %s"
      % (problem, ", ".join("%s %.2f" % (o, ms[o]) for o in OPTIMIZERS)),
      flush=True,
    )

  header = "%-11s %-8s %6s %8s %8s %10s %7s %9s %10s" % (
    "problem",
    "optimizer",
    "lr",
    "ms/step",
    "vs mom.",
    "steps->tgt",
    "s->tgt",
    "fewer st.",
    "final loss",
  )
  print()
  print(header)
  print("-" * len(header))
  verdicts = []
  for problem in args.problems:
    cfg = PROBLEMS[problem]
    base = results[(problem, "momentum")]
    for optimizer in OPTIMIZERS:
      r = results[(problem, optimizer)]
      step_ratio = r["ms_per_step"] / base["ms_per_step"]
      if r["to_target"] is None:
        steps_s, secs_s, gain_s = ">%d" % r["steps"], "-", "-"
      else:
        steps_s = "%d" % r["to_target"][0]
        secs_s = "%.2f" % r["to_target"][1]
        if base["to_target"] is not None:
          gain_s = fmt_ratio(base["to_target"][0] / max(r["to_target"][0], 1))
        else:
          gain_s = ">%.2fx" % (base["steps"] / max(r["to_target"][0], 1))
      print(
        "%-11s %-8s %6g %8.2f %8s %10s %7s %9s %10.4f"
        % (
          problem,
          optimizer,
          cfg["runs"][optimizer]["learning_rate"],
          r["ms_per_step"],
          fmt_ratio(step_ratio),
          steps_s,
          secs_s,
          gain_s,
          r["loss"],
        )
      )
    kfac_r = results[(problem, "kfac")]
    step_ratio = kfac_r["ms_per_step"] / base["ms_per_step"]
    verdicts.append(
      "%s: a K-FAC step (amortised) = %.2fx a momentum-SGD "
      "step (target <= 2x): %s"
      % (problem, step_ratio, "met" if step_ratio <= 2.0 else "NOT met")
    )
    if problem == "autoencoder":
      if kfac_r["to_target"] is None:
        verdicts.append(
          "autoencoder: K-FAC did not reach the target loss "
          "%g: NOT met" % cfg["target"]
        )
      else:
        kfac_steps = max(kfac_r["to_target"][0], 1)
        if base["to_target"] is None:
          gain, bound = base["steps"] / kfac_steps, ">"
        else:
          gain, bound = base["to_target"][0] / kfac_steps, ""
        verdicts.append(
          "autoencoder: momentum SGD needs %s%.1fx the steps of K-FAC to "
          "reach loss %g (target >= 5x): %s"
          % (bound, gain, cfg["target"], "met" if gain >= 5 else "NOT met")
        )
  print()
  print(
    "loss: on the whole training set; targets: "
    + ", ".join("%s %g" % (p, PROBLEMS[p]["target"]) for p in args.problems)
    + "; s->tgt: seconds of training steps, first-step set-up excluded"
  )
  for line in verdicts:
    print(line)

  print(plot_or_note(results, args.problems, args.png))
  print("bench_training: done in %.0f s" % (time.time() - start))


def plot_or_note(results, problems, path):
  """Writes the plot if matplotlib is installed; returns a one-line note.

  Args:
    results: dict (problem, optimizer) -> result dict with `history` and
      `setup`.
    problems: list of problem names.
    path: str. Where the PNG goes.

  Returns:
    "plot: <path>", or a note naming the extra to install.
  """
  try:
    import matplotlib  # noqa: F401
  except ImportError:
    return (
      "plot: skipped, matplotlib is not installed (pip install "
      "'kfac-contrib[bench]' installs it)"
    )
  _plot(results, problems, path)
  return "plot: %s" % os.path.abspath(path)


def _plot(results, problems, path):
  """Writes loss-vs-steps and loss-vs-seconds curves to a PNG."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(
    len(problems), 2, figsize=(11, 3.8 * len(problems)), squeeze=False
  )
  for row, problem in enumerate(problems):
    target = PROBLEMS[problem]["target"]
    for col, (xlabel, index) in enumerate((("steps", 0), ("seconds", 1))):
      ax = axes[row][col]
      for optimizer in OPTIMIZERS:
        result = results[(problem, optimizer)]
        history = result["history"]
        if index == 1:  # Seconds, without the first step's set-up.
          xs = [max(0.0, h[1] - result["setup"]) for h in history]
        else:
          xs = [h[0] for h in history]
        ys = [h[2] for h in history]
        ax.plot(xs, ys, label=optimizer, color=COLORS[optimizer])
      ax.axhline(
        target,
        color="grey",
        linestyle="--",
        linewidth=1,
        label="target %g" % target,
      )
      ax.set_xlabel(xlabel)
      ax.set_ylabel("training loss")
      ax.set_yscale("log")
      ax.set_title("%s: loss vs %s" % (problem, xlabel))
      ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


if __name__ == "__main__":
  main()
