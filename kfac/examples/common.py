"""Pieces shared by the K-FAC examples: settings, flags, optimizers, training.

The examples (`mlp`, `convnet`, `autoencoder`, `convnet_distributed`) build a
model, register its layers and its predictive distribution with a
`LayerCollection`, and train it with `run_training`: one loop, on one machine
or as a task of a cluster, in a `tf.compat.v1.train.MonitoredTrainingSession`
whose hooks do the rest -- `KfacUpdateHook` (K-FAC's covariance and inverse
updates), `ProgressHook` (progress lines, the one-line summary, the final
evaluation), and the session's own checkpoint and summary hooks (with a
`checkpoint_dir`) and `StopAtStepHook`.

K-FAC's schedule follows the 2017 examples: every step runs the training op
together with `cov_update_op` (an exponential moving average of the Kronecker
factors); every `inv_update_interval` steps (first at step 0, right after the
first covariance update) it runs `inv_update_op`, which recomputes the damped
factor inverses used to precondition the gradient.

Settings: `Settings` holds an example's training settings, with Python's own
keyword checking. Flags: `define_flags(defaults)` defines the absl flags with
an example's defaults and registers validators that reject nonsense values
(`--batch_size 0`, `--damping 0`, a NaN learning rate, ...) with absl's
one-line flag error; `settings_from_flags` reads them back.
"""

import dataclasses
import math
import time
from typing import Optional

from absl import flags
import numpy as np
import tensorflow as tf

__all__ = [
  "OPTIMIZERS",
  "ESTIMATION_MODES",
  "MOMENTUM_TYPES",
  "Settings",
  "define_flags",
  "define_data_flags",
  "settings_from_flags",
  "quiet_logs",
  "split_feeds",
  "make_optimizer",
  "kfac_optimizer",
  "KfacUpdateHook",
  "ProgressHook",
  "ReplayOnResumeHook",
  "random_draws",
  "run_training",
  "fetching",
  "train",
  "train_with_settings",
  "train_on_mnist",
  "run_example",
  "example_main",
]

OPTIMIZERS = ("kfac", "sgd", "momentum", "adam")
ESTIMATION_MODES = ("gradients", "empirical", "curvature_prop", "exact")
MOMENTUM_TYPES = ("regular", "adam", "qmodel")


@dataclasses.dataclass(frozen=True)
class Settings(object):
  """Training settings of an example (each example has its own defaults).

  Unknown keywords raise `TypeError` (`Settings(stepz=1)`, or
  `dataclasses.replace(settings, stepz=1)`), as Python does for a function.

  Attributes:
    steps: int or None. Training steps (None: until the data runs out); with
      a `checkpoint_dir`, the global step to stop at.
    batch_size: int. Examples per mini-batch.
    learning_rate: float. Learning rate.
    damping: float. K-FAC damping (Tikhonov, lambda).
    momentum: float. Momentum coefficient (K-FAC and "momentum").
    momentum_type: str. K-FAC momentum type ("regular", "adam", "qmodel").
    estimation_mode: str. K-FAC Fisher estimation mode.
    inv_update_interval: int. K-FAC inverse-update period in steps.
    cov_ema_decay: float. Decay of K-FAC's factor moving averages.
    norm_constraint: float or None. K-FAC KL clipping bound (None or <= 0:
      none).
    stats_batch_size: int or None. Examples of each batch used for K-FAC's
      statistics (None or 0: all).
    optimizer: str. "kfac", "sgd", "momentum" or "adam".
    log_every: int. Progress-line period in steps (0: none).
    seed: int or None. Graph-level and data-shuffling seed.
    replay_on_resume: bool. When training resumes from a checkpoint, first
      replay the random draws of the steps already taken (see
      `ReplayOnResumeHook`), so that the resumed run computes exactly what
      an uninterrupted one would.
  """

  steps: Optional[int] = None
  batch_size: int = 128
  learning_rate: float = 0.01
  damping: float = 1e-3
  momentum: float = 0.9
  momentum_type: str = "regular"
  estimation_mode: str = "gradients"
  inv_update_interval: int = 20
  cov_ema_decay: float = 0.95
  norm_constraint: Optional[float] = None
  stats_batch_size: Optional[int] = None
  optimizer: str = "kfac"
  log_every: int = 100
  seed: Optional[int] = 0
  replay_on_resume: bool = False

  def replace(self, **changes):
    """A copy with `changes` applied (`TypeError` for an unknown name)."""
    return dataclasses.replace(self, **changes)


def _finite_positive(value):
  return value is None or (math.isfinite(value) and value > 0)


def _finite_non_negative(value):
  return value is None or (math.isfinite(value) and value >= 0)


def _finite(value):
  return value is None or math.isfinite(value)


def _in_unit_interval(value):
  return value is None or (math.isfinite(value) and 0 <= value <= 1)


# Validators of the numeric flags: (flag, checker, message).
_VALIDATORS = (
  ("learning_rate", _finite_positive, "must be a finite number > 0"),
  ("damping", _finite_positive, "must be a finite number > 0"),
  ("momentum", _finite_non_negative, "must be a finite number >= 0"),
  ("cov_ema_decay", _in_unit_interval, "must be in [0, 1]"),
  (
    "norm_constraint",
    _finite,
    "must be a finite number (0 or negative: no clipping)",
  ),
)


def _check_data_flags(values):
  from kfac.examples import mnist  # pylint: disable=import-outside-toplevel

  if values["use_fake_data"]:
    return True
  try:
    mnist.check_data_dir(values["data_dir"])
  except ValueError as e:
    raise flags.ValidationError("--data_dir: %s" % e) from e
  return True


def define_flags(defaults, flag_values=flags.FLAGS):
  """Defines the examples' absl flags with an example's defaults.

  One flag per field of `Settings` (`--steps`, `--batch_size`,
  `--learning_rate`, `--damping`, `--momentum`, `--momentum_type`,
  `--estimation_mode`, `--inv_update_interval`, `--cov_ema_decay`,
  `--norm_constraint`, `--stats_batch_size`, `--optimizer`, `--log_every`,
  `--seed`, `--replay_on_resume`), and `--data_dir` (empty: scikit-learn's 8x8 digits; else a
  directory with MNIST IDX files), `--use_fake_data` and `--checkpoint_dir`.
  Validators reject values the examples cannot train with, with absl's
  one-line flag error: a batch size or inverse-update interval below 1,
  negative steps, a damping or learning rate that is not a finite positive
  number, a negative or non-finite momentum, a moving-average decay outside
  [0, 1], and a `--data_dir` without the MNIST files.

  Args:
    defaults: `Settings`, the example's defaults (shown by `--help`).
    flag_values: `flags.FlagValues` to define the flags in (default: the
      global `flags.FLAGS`).
  """
  fv = flag_values
  flags.DEFINE_integer(
    "steps",
    defaults.steps,
    "Training steps (with --checkpoint_dir: the global step to stop at).",
    lower_bound=0,
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "batch_size",
    defaults.batch_size,
    "Examples per mini-batch.",
    lower_bound=1,
    flag_values=fv,
  )
  flags.DEFINE_float(
    "learning_rate",
    defaults.learning_rate,
    "Learning rate (the default shown is K-FAC's; the "
    "baselines sgd, momentum and adam have their own).",
    flag_values=fv,
  )
  flags.DEFINE_float(
    "damping",
    defaults.damping,
    "K-FAC damping (Tikhonov, lambda).",
    flag_values=fv,
  )
  flags.DEFINE_float(
    "momentum",
    defaults.momentum,
    "Momentum coefficient (K-FAC's default shown; "
    "--optimizer momentum uses 0.9).",
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "momentum_type",
    defaults.momentum_type,
    list(MOMENTUM_TYPES),
    "K-FAC momentum type.",
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "estimation_mode",
    defaults.estimation_mode,
    list(ESTIMATION_MODES),
    "How K-FAC estimates the Fisher factors.",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "inv_update_interval",
    defaults.inv_update_interval,
    "Recompute K-FAC's inverses every this many steps.",
    lower_bound=1,
    flag_values=fv,
  )
  flags.DEFINE_float(
    "cov_ema_decay",
    defaults.cov_ema_decay,
    "Decay of the moving average of the Fisher factors.",
    flag_values=fv,
  )
  flags.DEFINE_float(
    "norm_constraint",
    defaults.norm_constraint,
    "K-FAC's KL clipping bound (regular momentum only; 0 or negative: none).",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "stats_batch_size",
    defaults.stats_batch_size,
    "Examples of each batch used for K-FAC's statistics "
    "(the K-FAC paper uses 1/8 of the batch); 0: all.",
    lower_bound=0,
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "optimizer",
    defaults.optimizer,
    list(OPTIMIZERS),
    "kfac, or a first-order baseline (sgd, momentum, adam).",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "log_every",
    defaults.log_every,
    "Print progress every N steps (0: never).",
    lower_bound=0,
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "seed",
    defaults.seed,
    "Graph-level and data-shuffling seed.",
    flag_values=fv,
  )
  flags.DEFINE_boolean(
    "replay_on_resume",
    defaults.replay_on_resume,
    "When restoring from --checkpoint_dir, first replay "
    "the data batches and K-FAC's sampled targets of the "
    "steps already taken (one forward pass each), so that "
    "the resumed run repeats an uninterrupted one "
    "exactly.",
    flag_values=fv,
  )
  define_data_flags(fv)
  flags.DEFINE_string(
    "checkpoint_dir",
    "",
    "Directory for checkpoints and summaries (empty: "
    "none). A checkpoint there is restored first, and "
    "training continues to global step --steps.",
    flag_values=fv,
  )
  for name, checker, message in _VALIDATORS:
    flags.register_validator(name, checker, message, flag_values=fv)


def define_data_flags(flag_values=flags.FLAGS):
  """Defines `--data_dir` and `--use_fake_data`, and checks `--data_dir`.

  A `--data_dir` without the MNIST training files is rejected when the
  flags are parsed, with absl's one-line flag error.

  Args:
    flag_values: `flags.FlagValues` to define the flags in.
  """
  fv = flag_values
  flags.DEFINE_string(
    "data_dir",
    "",
    "Directory with the MNIST IDX training files "
    "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte"
    "[.gz]). Empty: scikit-learn's bundled 8x8 digits. "
    "Nothing is ever downloaded.",
    flag_values=fv,
  )
  flags.DEFINE_boolean(
    "use_fake_data", False, "Use random fake data.", flag_values=fv
  )
  flags.register_multi_flags_validator(
    ["data_dir", "use_fake_data"],
    _check_data_flags,
    "--data_dir must hold the MNIST files",
    flag_values=fv,
  )


def settings_from_flags(
  defaults, baseline_defaults=None, flag_values=flags.FLAGS
):
  """The `Settings` given by the (parsed) flags.

  Args:
    defaults: `Settings`, the example's defaults (those of K-FAC).
    baseline_defaults: dict or None, mapping an optimizer name ("sgd",
      "momentum", "adam") to the settings that replace the flags' defaults
      for it (e.g. its own learning rate); a flag given on the command line
      always wins.
    flag_values: the parsed `flags.FlagValues`.

  Returns:
    A `Settings`.
  """
  values = {
    field.name: flag_values[field.name].value
    for field in dataclasses.fields(Settings)
  }
  for name, value in (
    (baseline_defaults or {}).get(values["optimizer"], {}).items()
  ):
    if not flag_values[name].present:
      values[name] = value
  if not values["stats_batch_size"]:
    values["stats_batch_size"] = None
  return defaults.replace(**values)


def quiet_logs():
  """Keeps TensorFlow's Python log (deprecation notices etc.) to errors."""
  tf.get_logger().setLevel("ERROR")


def split_feeds(
  examples,
  labels,
  data_dir,
  use_fake_data,
  flatten_images,
  fake_examples,
  training_set=True,
  test_set=True,
):
  """Feeds that evaluate a model on a whole split of the data.

  Args:
    examples: the model's input Tensor (fed with the images).
    labels: the model's label Tensor, or None (an autoencoder).
    data_dir: str or None. As in `mnist.load_arrays`.
    use_fake_data: bool. As in `mnist.load_arrays`.
    flatten_images: bool. As in `mnist.load_arrays`.
    fake_examples: int. Size of the fake training set.
    training_set: bool. Whether to build `train_feed`.
    test_set: bool. Whether to build `test_feed`.

  Returns:
    (train_feed, test_feed): `feed_dict`s with the whole training split and
    the whole test split; None where not asked for, and `test_feed` None
    when the data has no test split (fake data, or MNIST files without the
    `t10k` ones).
  """
  from kfac.examples import mnist  # pylint: disable=import-outside-toplevel

  def _feed(split):
    images, all_labels = mnist.load_arrays(
      data_dir,
      flatten_images=flatten_images,
      use_fake_data=use_fake_data,
      fake_examples=fake_examples,
      split=split,
    )
    feed = {examples: images}
    if labels is not None:
      feed[labels] = all_labels
    return feed

  train_feed = _feed("train") if training_set else None
  test_feed = (
    _feed("test")
    if test_set and mnist.has_test_split(data_dir, use_fake_data)
    else None
  )
  return train_feed, test_feed


def kfac_optimizer(
  learning_rate, cov_ema_decay, damping, layer_collection, **kwargs
):
  """Builds a `kfac.optimizer.KfacOptimizer`, as the flags describe it.

  Args:
    learning_rate: float or scalar Tensor.
    cov_ema_decay: float. Decay of the factors' moving averages.
    damping: float. Damping (lambda) added to the Fisher approximation.
    layer_collection: `LayerCollection` with every trainable variable and
      the predictive distribution registered.
    **kwargs: The optimizer's other arguments: `momentum`, `momentum_type`
      ("regular", "adam" or "qmodel"), `name`, the r1.5 keyword
      `estimation_mode` ("gradients", the only mode of the 1.4 optimizer,
      "empirical", "curvature_prop" or "exact") and `norm_constraint`, the
      KL clipping bound: the update is scaled by
      `min(1, sqrt(norm_constraint / (lr^2 p^T F p)))` ("regular" momentum
      only); here, as for the flag, None or <= 0 means no clipping.

  Returns:
    A `KfacOptimizer` (with `cov_update_op`, `inv_update_op`,
    `inv_updates_dict`).
  """
  from kfac import optimizer as kfac_opt

  norm_constraint = kwargs.get("norm_constraint")
  if norm_constraint is not None and norm_constraint <= 0:
    kwargs["norm_constraint"] = None
  return kfac_opt.KfacOptimizer(
    learning_rate, cov_ema_decay, damping, layer_collection, **kwargs
  )


def make_optimizer(
  optimizer,
  learning_rate,
  layer_collection=None,
  momentum=0.9,
  damping=1e-3,
  cov_ema_decay=0.95,
  momentum_type="regular",
  estimation_mode="gradients",
  norm_constraint=None,
):
  """Builds K-FAC or one of the first-order baselines.

  Args:
    optimizer: str. "kfac", "sgd" (plain gradient descent), "momentum"
      (heavy-ball momentum SGD with coefficient `momentum`) or "adam"
      (Adam with default betas).
    learning_rate: float or scalar Tensor.
    layer_collection: `LayerCollection`; required for "kfac".
    momentum: float. Momentum (K-FAC and "momentum").
    damping: float. K-FAC damping.
    cov_ema_decay: float. K-FAC factor moving-average decay.
    momentum_type: str. K-FAC momentum type.
    estimation_mode: str. K-FAC Fisher estimation mode.
    norm_constraint: float or None. K-FAC KL clipping bound.

  Returns:
    A `tf.compat.v1.train.Optimizer`.

  Raises:
    ValueError: for an unknown `optimizer`, or "kfac" without a
      `layer_collection`.
  """
  if optimizer == "kfac":
    if layer_collection is None:
      raise ValueError("optimizer='kfac' needs a layer_collection")
    return kfac_optimizer(
      learning_rate,
      cov_ema_decay,
      damping,
      layer_collection,
      momentum=momentum,
      momentum_type=momentum_type,
      estimation_mode=estimation_mode,
      norm_constraint=norm_constraint,
    )
  if optimizer == "sgd":
    return tf.compat.v1.train.GradientDescentOptimizer(learning_rate)
  if optimizer == "momentum":
    return tf.compat.v1.train.MomentumOptimizer(learning_rate, momentum)
  if optimizer == "adam":
    return tf.compat.v1.train.AdamOptimizer(learning_rate)
  raise ValueError(
    "optimizer must be one of %s, got %r" % (", ".join(OPTIMIZERS), optimizer)
  )


class KfacUpdateHook(tf.compat.v1.train.SessionRunHook):
  """Runs K-FAC's covariance and inverse updates alongside training steps.

  `cov_update_op` (if any) is fetched in the same `session.run` as every
  training step; `inv_update_op` (if any) runs right after the steps
  0, `inv_update_interval`, 2 * `inv_update_interval`, ... The steps are
  counted from the global step at the start (0, or the step of a restored
  checkpoint), so a resumed run keeps the schedule of an uninterrupted one.
  """

  def __init__(
    self,
    cov_update_op=None,
    inv_update_op=None,
    inv_update_interval=20,
    global_step=None,
  ):
    """Stores the ops.

    Args:
      cov_update_op: op or None, run with every step.
      inv_update_op: op or None, run every `inv_update_interval` steps.
      inv_update_interval: int >= 1.
      global_step: the global step Tensor or None (count from 0).
    """
    self._cov_update_op = cov_update_op
    self._inv_update_op = inv_update_op
    self._interval = inv_update_interval
    self._global_step = global_step
    self._step = 0

  def after_create_session(self, session, coord):
    if self._global_step is not None:
      self._step = int(session.run(self._global_step))

  def before_run(self, run_context):
    if self._cov_update_op is None:
      return None
    return tf.compat.v1.train.SessionRunArgs(self._cov_update_op)

  def after_run(self, run_context, run_values):
    if self._inv_update_op is not None and self._step % self._interval == 0:
      run_context.session.run(self._inv_update_op)
    self._step += 1


# Op types of TensorFlow's stateful random ops: each keeps its own stream,
# which starts afresh in every new process.
_STATEFUL_RANDOM_OPS = frozenset(
  (
    "Multinomial",
    "RandomStandardNormal",
    "RandomUniform",
    "RandomUniformInt",
    "TruncatedNormal",
    "RandomGamma",
    "RandomPoisson",
    "RandomPoissonV2",
    "RandomShuffle",
    "ParameterizedTruncatedNormal",
  )
)

# Op types that draw the next element of an input pipeline.
_INPUT_OPS = frozenset(
  (
    "IteratorGetNext",
    "IteratorGetNextSync",
    "QueueDequeueV2",
    "QueueDequeueManyV2",
    "QueueDequeueUpToV2",
  )
)


def random_draws(fetches):
  """The ops among what `fetches` runs whose results depend on a stream.

  Walks the ops that running `fetches` runs (inputs and control inputs) and
  returns the stateful random ops (e.g. K-FAC's sampled targets) and the
  input-pipeline reads among them: what a new process starts afresh.

  Args:
    fetches: a nest of Tensors and Operations (e.g. a training step's).

  Returns:
    A list of `tf.Operation`s, sorted by name.
  """
  todo = [
    f.op if isinstance(f, tf.Tensor) else f
    for f in tf.nest.flatten(fetches)
    if f is not None
  ]
  seen, found = set(), []
  while todo:
    op = todo.pop()
    if op.name in seen:
      continue
    seen.add(op.name)
    if op.type in _STATEFUL_RANDOM_OPS or op.type in _INPUT_OPS:
      found.append(op)
    todo.extend(t.op for t in op.inputs)
    todo.extend(op.control_inputs)
  return sorted(found, key=lambda op: op.name)


class ReplayOnResumeHook(tf.compat.v1.train.SessionRunHook):
  """Makes a run resumed from a checkpoint repeat an uninterrupted one.

  A checkpoint holds the variables, but not the position of the random
  streams: in a new process every stateful random op (K-FAC's sampled
  targets) and the input pipeline start again from their beginning, so a
  resumed run draws other samples and batches than the uninterrupted run
  did. When the session starts at global step `g > 0` (a checkpoint was
  restored), this hook runs the random draws of one training step (see
  `random_draws`) `g` times, which advances every stream to where the
  uninterrupted run had it; the resumed steps then compute the same numbers.
  It costs one forward pass per step already taken, and assumes that every
  step ran the same fetches (as `train` does).
  """

  def __init__(self, global_step, step_fetches):
    """Finds what to replay.

    Args:
      global_step: the global step Tensor.
      step_fetches: what a training step runs (e.g. the training op and
        `cov_update_op`).
    """
    self._global_step = global_step
    self._draws = random_draws(step_fetches)
    self.replayed = 0

  def after_create_session(self, session, coord):
    steps = int(session.run(self._global_step))
    if not self._draws:
      return
    for _ in range(steps):
      session.run(self._draws)
    self.replayed = steps


class ProgressHook(tf.compat.v1.train.SessionRunHook):
  """Progress lines, non-finite-loss stop, final evaluation and summary.

  A progress line reads
  `<name> step 100/1000 | loss 0.4321 | accuracy 0.912 | 85.2 steps/s`
  (steps/s over the last interval; with `show_global_step`, the global step
  follows the local one). At the end (`end`, with the session still open)
  the hook evaluates the loss and metric on `eval_feed` and `test_feed` and
  prints the one-line summary. The numbers are kept in `result` (see
  `train`). Put it after `KfacUpdateHook` so that a step's time includes
  its inverse update.
  """

  def __init__(
    self,
    name,
    loss,
    metric=None,
    metric_name="accuracy",
    total_steps=None,
    log_every=100,
    verbose=True,
    global_step=None,
    show_global_step=False,
    eval_feed=None,
    test_feed=None,
    record_every=0,
  ):
    """Stores what to fetch and report.

    Args:
      name: str. Prefix of every line.
      loss: scalar Tensor, fetched with every step (None: not fetched).
      metric: scalar Tensor or None, fetched with every step.
      metric_name: str. How `metric` is called in the lines.
      total_steps: int or None. Shown as the denominator when known.
      log_every: int. Print every this many steps (0: never).
      verbose: bool. If False, print nothing.
      global_step: the global step Tensor or None; read at the end (and for
        the progress lines with `show_global_step`).
      show_global_step: bool. Show the global step in progress lines.
      eval_feed: dict or None. Evaluate the loss and metric once more with
        this `feed_dict` at the end (e.g. the whole training set).
      test_feed: dict or None. Evaluate them on held-out data at the end.
      record_every: int. If > 0, record `(step, seconds, loss)` every this
        many steps, the loss on `eval_feed` if given (the first record
        before training), timing only the training steps.
    """
    self.name = name
    self._loss = loss
    self._metric = metric
    self.metric_name = metric_name
    self._total = total_steps
    self._log_every = log_every
    self._verbose = verbose
    self._global_step = global_step
    self._show_global_step = show_global_step
    self._eval_feed = eval_feed
    self._test_feed = test_feed
    self._record_every = record_every
    self.result = {
      "steps": 0,
      "seconds": 0.0,
      "loss": float("nan"),
      "accuracy": None,
      "test_loss": None,
      "test_accuracy": None,
      "global_step": None,
      "history": [],
      "step_times": [],
      "summary": None,
    }
    self._start = self._t0 = None
    self._last_time = self._last_step = 0

  def _print(self, line):
    if self._verbose:
      print(line, flush=True)

  def _eval_fetches(self):
    return [self._loss] + ([self._metric] if self._metric is not None else [])

  def _evaluate(self, session, feed):
    values = session.run(self._eval_fetches(), feed_dict=feed)
    return float(values[0]), (float(values[1]) if len(values) > 1 else None)

  def after_create_session(self, session, coord):
    self._start = self._last_time = time.time()
    if self._record_every and self._eval_feed is not None:
      loss = session.run(self._loss, feed_dict=self._eval_feed)
      self.result["history"].append((0, 0.0, float(loss)))

  def before_run(self, run_context):
    self._t0 = time.time()
    fetches = {}
    if self._loss is not None:
      fetches["loss"] = self._loss
    if self._metric is not None:
      fetches["metric"] = self._metric
    return tf.compat.v1.train.SessionRunArgs(fetches)

  def after_run(self, run_context, run_values):
    r = self.result
    r["step_times"].append(time.time() - self._t0)
    r["seconds"] += r["step_times"][-1]
    r["steps"] += 1
    step = r["steps"]
    values = run_values.results or {}
    if "loss" in values:
      r["loss"] = float(values["loss"])
    if "metric" in values:
      r["accuracy"] = float(values["metric"])
    if not np.isfinite(r["loss"]) and self._loss is not None:
      self._print(
        "%s: loss is %s at step %d, stopping" % (self.name, r["loss"], step)
      )
      if self._record_every:
        r["history"].append((step, r["seconds"], r["loss"]))
      run_context.request_stop()
      return
    if self._log_every and step % self._log_every == 0:
      now = time.time()
      rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
      self._last_time, self._last_step = now, step
      total = "/%d" % self._total if self._total else ""
      where = ""
      if self._show_global_step and self._global_step is not None:
        where = " | global step %d" % run_context.session.run(self._global_step)
      metrics = ""
      if self._loss is not None:
        metrics += " | loss %.4f" % r["loss"]
      if r["accuracy"] is not None:
        metrics += " | %s %.3f" % (self.metric_name, r["accuracy"])
      self._print(
        "%s step %d%s%s%s | %.1f steps/s"
        % (self.name, step, total, where, metrics, rate)
      )
    if self._record_every and step % self._record_every == 0:
      loss = r["loss"]
      if self._eval_feed is not None:
        loss = float(
          run_context.session.run(self._loss, feed_dict=self._eval_feed)
        )
      r["history"].append((step, r["seconds"], loss))

  def end(self, session):
    r = self.result
    if self._global_step is not None:
      r["global_step"] = int(session.run(self._global_step))
    finite = np.isfinite(r["loss"]) or self._loss is None
    if self._eval_feed is not None and finite:
      r["loss"], r["accuracy"] = self._evaluate(session, self._eval_feed)
    if self._test_feed is not None and finite:
      r["test_loss"], r["test_accuracy"] = self._evaluate(
        session, self._test_feed
      )
    r["summary"] = self._summary_line()
    self._print(r["summary"])

  def _summary_line(self):
    r = self.result
    seconds, steps = r["seconds"], r["steps"]
    line = "%s: done, %d steps in %.1f s (%.1f steps/s)" % (
      self.name,
      steps,
      seconds,
      steps / max(seconds, 1e-9),
    )
    if self._show_global_step and r["global_step"] is not None:
      line += ", global step %d" % r["global_step"]
    if self._loss is not None:
      line += ", final loss %.4f" % r["loss"]
    if r["accuracy"] is not None:
      line += ", %s %.3f" % (self.metric_name, r["accuracy"])
    if self._eval_feed is not None:
      line += " (whole training set)"
    if r["test_loss"] is not None:
      line += "; held-out test set: loss %.4f" % r["test_loss"]
      if r["test_accuracy"] is not None:
        line += ", %s %.3f" % (self.metric_name, r["test_accuracy"])
    return line


def fetching(fetches):
  """A `step_fn` for `run_training` that runs `fetches` with the hooks.

  Args:
    fetches: what each step runs (e.g. the training op).

  Returns:
    A callable `(step_context) -> values of fetches`.
  """

  def step_fn(step_context):
    return step_context.run_with_hooks(fetches)

  return step_fn


def run_training(
  step_fn,
  hooks,
  master="",
  is_chief=True,
  checkpoint_dir=None,
  session_config=None,
  save_checkpoint_steps=None,
  save_summaries_steps=100,
):
  """The training loop of every example, on one machine or in a cluster.

  Runs `step_fn` in a `tf.compat.v1.train.MonitoredTrainingSession` until a
  hook asks to stop (e.g. `StopAtStepHook`) or the input pipeline runs out
  (`OutOfRangeError`, which ends training normally). The session
  initialises the variables (or restores the latest checkpoint in
  `checkpoint_dir`), starts queue runners, and with a `checkpoint_dir` saves
  checkpoints and summaries there (the chief only).

  Args:
    step_fn: callable `(step_context) -> value`, one training step; it calls
      `step_context.run_with_hooks(fetches)` once (see
      `MonitoredSession.run_step_fn`).
    hooks: list of `SessionRunHook`s.
    master: str. Target of the session ("" for in-process).
    is_chief: bool. Whether this task initialises, restores and saves.
    checkpoint_dir: str or None. Where checkpoints and summaries go.
    session_config: `tf.compat.v1.ConfigProto` or None.
    save_checkpoint_steps: int or None. Checkpoint period in global steps
      (None: only the session's default, every 10 minutes, and at the end).
    save_summaries_steps: int or None. Summary period in global steps.
  """
  kwargs = {}
  if save_checkpoint_steps:
    kwargs = {
      "save_checkpoint_steps": save_checkpoint_steps,
      "save_checkpoint_secs": None,
    }
  with tf.compat.v1.train.MonitoredTrainingSession(
    master=master,
    is_chief=is_chief,
    checkpoint_dir=checkpoint_dir or None,
    hooks=hooks,
    config=session_config,
    save_summaries_steps=save_summaries_steps if checkpoint_dir else None,
    save_summaries_secs=None,
    log_step_count_steps=None,
    stop_grace_period_secs=0,
    **kwargs,
  ) as sess:
    while not sess.should_stop():
      sess.run_step_fn(step_fn)


def train(
  loss,
  accuracy,
  layer_collection,
  optimizer="kfac",
  num_steps=None,
  learning_rate=0.01,
  momentum=0.9,
  damping=1e-3,
  cov_ema_decay=0.95,
  momentum_type="regular",
  estimation_mode="gradients",
  norm_constraint=None,
  inv_update_interval=20,
  log_every=100,
  name="train",
  session_config=None,
  eval_feed=None,
  verbose=True,
  record_every=0,
  metric_name="accuracy",
  test_feed=None,
  checkpoint_dir=None,
  save_checkpoint_steps=None,
  replay_on_resume=False,
):
  """Minimises `loss` on one machine with K-FAC or a baseline.

  Builds the optimizer and its training op and calls `run_training` with a
  `StopAtStepHook`, a `KfacUpdateHook` (K-FAC only) and a `ProgressHook`.
  Training stops at global step `num_steps` or when the input pipeline runs
  out. With a `checkpoint_dir`, a checkpoint there is restored first (and
  training continues to global step `num_steps`), and checkpoints and
  summaries are written there.

  Args:
    loss: scalar Tensor to minimise.
    accuracy: scalar Tensor or None, reported alongside the loss.
    layer_collection: `LayerCollection` (used by K-FAC only).
    optimizer: str. "kfac", "sgd", "momentum" or "adam".
    num_steps: int or None. Global step to stop at (None: until the data
      runs out).
    learning_rate: float. Learning rate.
    momentum: float. Momentum coefficient (K-FAC and "momentum").
    damping: float. K-FAC damping.
    cov_ema_decay: float. Decay of K-FAC's factor moving averages.
    momentum_type: str. K-FAC momentum type ("regular", "adam", "qmodel").
    estimation_mode: str. K-FAC Fisher estimation mode.
    norm_constraint: float or None. K-FAC KL clipping bound.
    inv_update_interval: int. K-FAC inverse-update period in steps.
    log_every: int. Progress-line period in steps (0: no progress lines).
    name: str. Prefix of the printed lines.
    session_config: `tf.compat.v1.ConfigProto` or None.
    eval_feed: dict or None. If given, the final loss and accuracy are
      evaluated once more with this `feed_dict` (e.g. the input tensors fed
      with the whole training set) and reported in the summary.
    verbose: bool. If False, print nothing.
    record_every: int. If > 0, record `(step, seconds, loss)` with the loss
      evaluated on `eval_feed` (or the mini-batch loss) every this many steps,
      timing only the training steps.
    metric_name: str. How `accuracy` is called in the printed lines.
    test_feed: dict or None. If given, the loss and accuracy are also
      evaluated with this `feed_dict` (held-out data) after training and
      reported in the summary.
    checkpoint_dir: str or None. Checkpoint and summary directory.
    save_checkpoint_steps: int or None. Checkpoint period (see
      `run_training`).
    replay_on_resume: bool. With a restored checkpoint, replay the random
      draws of the steps already taken first (`ReplayOnResumeHook`).

  Returns:
    A dict with keys `steps` (run in this process), `global_step` (at the
    end), `seconds` (training-step time only, which the summary reports
    too), `loss`, `accuracy` (final values, on `eval_feed` if given, else the
    last mini-batch), `test_loss`, `test_accuracy` (on `test_feed`; None
    without it), `history` (list of `(step, seconds, loss)`), `step_times`
    (seconds of each step, K-FAC inverse updates included) and `summary`
    (the printed line).
  """
  global_step = tf.compat.v1.train.get_or_create_global_step()
  opt = make_optimizer(
    optimizer,
    learning_rate,
    layer_collection,
    momentum=momentum,
    damping=damping,
    cov_ema_decay=cov_ema_decay,
    momentum_type=momentum_type,
    estimation_mode=estimation_mode,
    norm_constraint=norm_constraint,
  )
  train_op = opt.minimize(loss, global_step=global_step)
  hooks = []
  if replay_on_resume:
    hooks.append(
      ReplayOnResumeHook(
        global_step,
        [train_op, opt.cov_update_op if optimizer == "kfac" else None],
      )
    )
  if num_steps is not None:
    hooks.append(tf.compat.v1.train.StopAtStepHook(last_step=num_steps))
  if optimizer == "kfac":
    hooks.append(
      KfacUpdateHook(
        opt.cov_update_op, opt.inv_update_op, inv_update_interval, global_step
      )
    )
  progress = ProgressHook(
    name,
    loss,
    accuracy,
    metric_name=metric_name,
    total_steps=num_steps,
    log_every=log_every,
    verbose=verbose,
    global_step=global_step,
    eval_feed=eval_feed,
    test_feed=test_feed,
    record_every=record_every,
  )
  hooks.append(progress)
  run_training(
    fetching(train_op),
    hooks,
    checkpoint_dir=checkpoint_dir,
    session_config=session_config,
    save_checkpoint_steps=save_checkpoint_steps,
  )
  return progress.result


def train_with_settings(
  loss, accuracy, layer_collection, settings, name, **kwargs
):
  """Calls `train` with an example's `Settings`.

  Args:
    loss: scalar Tensor to minimise.
    accuracy: scalar Tensor or None, reported alongside the loss.
    layer_collection: `LayerCollection` (used by K-FAC only).
    settings: `Settings`.
    name: str. The example's name; lines are prefixed `<name>/<optimizer>`.
    **kwargs: further arguments of `train` (`eval_feed`, `test_feed`,
      `verbose`, `checkpoint_dir`, ...).

  Returns:
    The dict returned by `train`.
  """
  return train(
    loss,
    accuracy,
    layer_collection,
    optimizer=settings.optimizer,
    num_steps=settings.steps,
    name="%s/%s" % (name, settings.optimizer),
    learning_rate=settings.learning_rate,
    momentum=settings.momentum,
    damping=settings.damping,
    cov_ema_decay=settings.cov_ema_decay,
    momentum_type=settings.momentum_type,
    estimation_mode=settings.estimation_mode,
    norm_constraint=settings.norm_constraint,
    inv_update_interval=settings.inv_update_interval,
    log_every=settings.log_every,
    replay_on_resume=settings.replay_on_resume,
    **kwargs,
  )


def train_on_mnist(
  build_model,
  settings,
  name,
  data_dir,
  num_epochs,
  use_fake_data,
  evaluate_on_training_set,
  evaluate_on_test_set,
  flatten_images=True,
  use_labels=True,
  **kwargs,
):
  """Loads MNIST batches, builds a model on them and trains it.

  The shared body of the examples' `train_mnist_result`: batches from
  `mnist.load_mnist`, a fresh `LayerCollection`, the model, the whole-split
  evaluation feeds of `split_feeds` and `train_with_settings`.

  Args:
    build_model: callable `(examples, labels, layer_collection)` returning
      `(loss, accuracy)`; `accuracy` may be another metric or None.
    settings: `Settings`. Its `batch_size` and `seed` drive the input.
    name: str. The example's name, as in `train_with_settings`.
    data_dir: str or None. As in `mnist.load_mnist`.
    num_epochs: int or None. As in `mnist.load_mnist`.
    use_fake_data: bool. As in `mnist.load_mnist`.
    evaluate_on_training_set: bool. Whether to evaluate on the whole
      training split after training.
    evaluate_on_test_set: bool. Whether to evaluate on the test split (when
      the data has one) after training.
    flatten_images: bool. As in `mnist.load_mnist`.
    use_labels: bool. If False (an autoencoder), the evaluation feeds hold
      only the images.
    **kwargs: further arguments of `train` (`verbose`, `checkpoint_dir`,
      ...).

  Returns:
    The dict returned by `train`.
  """
  from kfac import layer_collection as lc  # pylint: disable=import-outside-toplevel
  from kfac.examples import mnist  # pylint: disable=import-outside-toplevel

  examples, labels = mnist.load_mnist(
    data_dir,
    num_epochs=num_epochs,
    batch_size=settings.batch_size,
    flatten_images=flatten_images,
    use_fake_data=use_fake_data,
    seed=settings.seed,
  )
  layer_collection = lc.LayerCollection()
  loss, accuracy = build_model(examples, labels, layer_collection)
  train_feed, test_feed = split_feeds(
    examples,
    labels if use_labels else None,
    data_dir,
    use_fake_data,
    flatten_images=flatten_images,
    fake_examples=4 * settings.batch_size,
    training_set=evaluate_on_training_set,
    test_set=evaluate_on_test_set,
  )
  return train_with_settings(
    loss,
    accuracy,
    layer_collection,
    settings,
    name,
    eval_feed=train_feed,
    test_feed=test_feed,
    **kwargs,
  )


def run_example(
  train_fn, defaults, baseline_defaults=None, flag_values=flags.FLAGS
):
  """The body of an example's `main`: flags -> `Settings` -> `train_fn`.

  Quiets TensorFlow's Python log and calls
  `train_fn(data_dir, None, use_fake_data, settings=..., checkpoint_dir=...)`
  in a new graph.

  Args:
    train_fn: callable, the example's training function.
    defaults: `Settings`, the example's defaults.
    baseline_defaults: dict or None, see `settings_from_flags`.
    flag_values: the parsed `flags.FlagValues`.

  Returns:
    What `train_fn` returns.
  """
  quiet_logs()
  settings = settings_from_flags(defaults, baseline_defaults, flag_values)
  with tf.Graph().as_default():
    return train_fn(
      flag_values.data_dir,
      None,
      flag_values.use_fake_data,
      settings=settings,
      checkpoint_dir=flag_values.checkpoint_dir or None,
    )


def example_main(train_fn, defaults, baseline_defaults=None):
  """Makes an example's absl entry point `main(argv, flag_values=FLAGS)`.

  The returned function ignores its positional arguments, calls
  `run_example(train_fn, defaults, baseline_defaults, flag_values)` and
  returns None (`absl.app.run` passes a return value to `sys.exit`).

  Args:
    train_fn: callable, the example's training function.
    defaults: `Settings`, the example's defaults.
    baseline_defaults: dict or None, see `settings_from_flags`.

  Returns:
    The `main` function to hand to `absl.app.run`.
  """

  def main(argv, flag_values=flags.FLAGS):
    del argv  # No positional arguments.
    run_example(train_fn, defaults, baseline_defaults, flag_values)

  return main
