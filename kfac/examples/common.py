"""Pieces shared by the K-FAC examples: optimizers, the training loop, flags.

The examples (`mlp`, `convnet`, `autoencoder`, `convnet_distributed`) build a
model, register its layers and its predictive distribution with a
`LayerCollection`, and then hand the loss to `train`, which runs either K-FAC
or a first-order baseline (plain SGD, momentum SGD or Adam) for a fixed number
of steps, printing a progress line every `log_every` steps and a one-line
summary at the end (with the loss and accuracy on the whole training set and
on the held-out test set, when the entry points ask for them).

K-FAC's schedule follows the 2017 examples: every step runs the training op
together with `cov_update_op` (an exponential moving average of the Kronecker
factors); every `inv_update_interval` steps (first at step 0, right after the
first covariance update) it runs `inv_update_op`, which recomputes the damped
factor inverses used to precondition the gradient.
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import inspect
import sys
import time

from absl import flags
import numpy as np
import tensorflow as tf

__all__ = [
    "OPTIMIZERS",
    "ESTIMATION_MODES",
    "MOMENTUM_TYPES",
    "define_flags",
    "show_defaults",
    "quiet_logs",
    "flag_values",
    "merge_settings",
    "check_data_flags",
    "flag_error",
    "run_main",
    "split_feeds",
    "train_with_config",
    "make_optimizer",
    "kfac_optimizer",
    "Progress",
    "train",
]

OPTIMIZERS = ("kfac", "sgd", "momentum", "adam")
ESTIMATION_MODES = ("gradients", "empirical", "curvature_prop", "exact")
MOMENTUM_TYPES = ("regular", "adam", "qmodel")

# Flags shared by every example. `None` means "the example's own default".
_FLAG_NAMES = ("steps", "batch_size", "learning_rate", "damping", "momentum",
               "momentum_type", "estimation_mode", "inv_update_interval",
               "cov_ema_decay", "norm_constraint", "stats_batch_size",
               "optimizer", "data_dir", "use_fake_data", "log_every", "seed")


def define_flags():
  """Defines the examples' absl flags (idempotent: safe to call twice).

  Flags: `--steps`, `--batch_size`, `--learning_rate`, `--damping`,
  `--momentum`, `--momentum_type` (regular|adam|qmodel), `--estimation_mode`
  (gradients|empirical|curvature_prop|exact), `--inv_update_interval`,
  `--cov_ema_decay`, `--norm_constraint`, `--stats_batch_size`, `--optimizer`
  (kfac|sgd|momentum|adam), `--data_dir`
  (empty: scikit-learn's 8x8 digits; else a directory with MNIST IDX files),
  `--use_fake_data`, `--log_every` and `--seed`. Numeric flags default to
  `None`, meaning "use the example's default".
  """
  if "steps" in flags.FLAGS:
    return
  flags.DEFINE_integer("steps", None, "Training steps.")
  flags.DEFINE_integer("batch_size", None, "Examples per mini-batch.")
  flags.DEFINE_float("learning_rate", None,
                     "Learning rate (the default shown is K-FAC's; the "
                     "baselines sgd, momentum and adam have their own).")
  flags.DEFINE_float("damping", None, "K-FAC damping (Tikhonov, lambda).")
  flags.DEFINE_float("momentum", None,
                     "Momentum coefficient (K-FAC's default shown; "
                     "--optimizer momentum uses 0.9).")
  flags.DEFINE_enum("momentum_type", None, list(MOMENTUM_TYPES),
                    "K-FAC momentum type.")
  flags.DEFINE_enum("estimation_mode", None, list(ESTIMATION_MODES),
                    "How K-FAC estimates the Fisher factors.")
  flags.DEFINE_integer("inv_update_interval", None,
                       "Recompute K-FAC's inverses every this many steps.")
  flags.DEFINE_float("cov_ema_decay", None,
                     "Decay of the moving average of the Fisher factors.")
  flags.DEFINE_float("norm_constraint", None,
                     "K-FAC's KL clipping bound (regular momentum only; "
                     "0 or negative: none).")
  flags.DEFINE_integer("stats_batch_size", None,
                       "Examples of each batch used for K-FAC's statistics "
                       "(the K-FAC paper uses 1/8 of the batch); 0: all.")
  flags.DEFINE_enum("optimizer", None, list(OPTIMIZERS),
                    "kfac, or a first-order baseline (sgd, momentum, adam).")
  flags.DEFINE_string("data_dir", None,
                      "Directory with the MNIST IDX training files "
                      "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte"
                      "[.gz]). Empty: scikit-learn's bundled 8x8 digits. "
                      "Nothing is ever downloaded.")
  flags.DEFINE_boolean("use_fake_data", None, "Use random fake data.")
  flags.DEFINE_integer("log_every", None, "Print progress every N steps.")
  flags.DEFINE_integer("seed", None, "Graph-level and data-shuffling seed.")


def show_defaults(defaults):
  """Makes `--help` show an example's defaults (K-FAC's) for the flags.

  Only the displayed defaults change: `flag_values` still applies the
  optimizer-specific defaults to flags not given on the command line.

  Args:
    defaults: dict mapping flag names to the example's default values.
  """
  for name in _FLAG_NAMES:
    if defaults.get(name) is not None:
      flags.FLAGS.set_default(name, defaults[name])


def flag_values(defaults, optimizer_defaults=None):
  """Merges the command-line flags over an example's defaults.

  Args:
    defaults: dict mapping flag names to the example's default values (those
      of K-FAC).
    optimizer_defaults: dict or None, mapping an optimizer name ("sgd",
      "momentum", "adam") to the defaults that replace `defaults` for it
      (e.g. its own learning rate).

  Returns:
    A new dict: `defaults`, then the chosen optimizer's defaults, then every
    flag given on the command line.
  """
  values = dict(defaults)
  optimizer = (flags.FLAGS.optimizer if flags.FLAGS["optimizer"].present
               else values.get("optimizer"))
  values.update((optimizer_defaults or {}).get(optimizer, {}))
  for name in _FLAG_NAMES:
    if flags.FLAGS[name].present:
      values[name] = getattr(flags.FLAGS, name)
  if not values.get("stats_batch_size"):
    values["stats_batch_size"] = None
  return values


def merge_settings(defaults, overrides, caller):
  """Returns `defaults` updated with `overrides`, rejecting unknown keys.

  Args:
    defaults: dict. Every accepted setting with its default.
    overrides: dict. Settings passed by the caller.
    caller: str. Function name for the error message.

  Returns:
    A new dict.

  Raises:
    TypeError: if `overrides` has a key that `defaults` lacks (as Python
      does for an unexpected keyword argument).
  """
  unknown = set(overrides) - set(defaults)
  if unknown:
    raise TypeError("%s got unexpected keyword(s) %s"
                    % (caller, sorted(unknown)))
  return dict(defaults, **overrides)


def check_data_flags(cfg):
  """Ends the program with a short message if `--data_dir` is unusable.

  The message (on stderr, exit status 1) reads like absl's own flag errors,
  without a traceback or the whole `--help` text.

  Args:
    cfg: dict of settings with `data_dir` and `use_fake_data`.

  Raises:
    SystemExit: if `data_dir` lacks the MNIST files.
  """
  from kfac.examples import mnist  # pylint: disable=g-import-not-at-top
  if cfg.get("use_fake_data"):
    return
  try:
    mnist.check_data_dir(cfg.get("data_dir"))
  except ValueError as e:
    raise flag_error("data_dir", str(e))


def flag_error(name, message):
  """A `SystemExit` that reports a bad flag the way absl reports its own.

  Raising it prints `FATAL Flags error: --<name>: <message>` and a pointer to
  `--helpshort` on stderr and ends the program with exit status 1, without a
  traceback or the whole help text.

  Args:
    name: str. The flag's name.
    message: str. What is wrong with its value.

  Returns:
    The `SystemExit` to raise.
  """
  return SystemExit("FATAL Flags error: --%s: %s\nPass --helpshort or "
                    "--helpfull to see help on flags." % (name, message))


def run_main(defaults, baseline_defaults, train_fn):
  """The body of an example's `main`: flags -> settings -> `train_fn`.

  Quiets TensorFlow's Python log, merges the command-line flags over
  `defaults` (see `flag_values`), checks `--data_dir`, and calls
  `train_fn(data_dir, None, use_fake_data, **settings)` in a new graph.

  Args:
    defaults: dict. The example's defaults (its `DEFAULTS`).
    baseline_defaults: dict or None. The baselines' defaults.
    train_fn: callable `(data_dir, num_epochs, use_fake_data, **settings)`.

  Returns:
    What `train_fn` returns.
  """
  quiet_logs()
  cfg = flag_values(defaults, baseline_defaults)
  check_data_flags(cfg)
  data_dir = cfg.pop("data_dir")
  use_fake_data = cfg.pop("use_fake_data")
  with tf.Graph().as_default():
    return train_fn(data_dir, None, use_fake_data, **cfg)


def split_feeds(examples, labels, data_dir, use_fake_data, flatten_images,
                fake_examples, training_set=True, test_set=True):
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
  from kfac.examples import mnist  # pylint: disable=g-import-not-at-top

  def _feed(split):
    images, all_labels = mnist.load_arrays(
        data_dir, flatten_images=flatten_images, use_fake_data=use_fake_data,
        fake_examples=fake_examples, split=split)
    feed = {examples: images}
    if labels is not None:
      feed[labels] = all_labels
    return feed

  train_feed = _feed("train") if training_set else None
  test_feed = (_feed("test") if test_set and
               mnist.has_test_split(data_dir, use_fake_data) else None)
  return train_feed, test_feed


def quiet_logs():
  """Keeps TensorFlow's Python log (deprecation notices etc.) to errors."""
  tf.get_logger().setLevel("ERROR")


def _optimizer_accepts(keyword):
  from kfac import optimizer as kfac_opt  # pylint: disable=g-import-not-at-top
  try:
    params = inspect.signature(kfac_opt.KfacOptimizer.__init__).parameters
  except (TypeError, ValueError):
    return False
  return keyword in params or any(
      p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())


def kfac_optimizer(learning_rate, cov_ema_decay, damping, layer_collection,
                   momentum=0.0, momentum_type="regular",
                   estimation_mode="gradients", norm_constraint=None,
                   name="KFAC"):
  """Builds a `kfac.optimizer.KfacOptimizer`.

  Args:
    learning_rate: float or scalar Tensor.
    cov_ema_decay: float. Decay of the factors' moving averages.
    damping: float. Damping (lambda) added to the Fisher approximation.
    layer_collection: `LayerCollection` with every trainable variable and
      the predictive distribution registered.
    momentum: float. Momentum coefficient.
    momentum_type: str. "regular", "adam" or "qmodel".
    estimation_mode: str. "gradients" (the only mode of the 1.4 optimizer),
      "empirical", "curvature_prop" or "exact" (passed as the r1.5 keyword
      `estimation_mode=`).
    norm_constraint: float or None. KL clipping bound: the update is scaled
      by `min(1, sqrt(norm_constraint / (lr^2 p^T F p)))` ("regular"
      momentum only). None or <= 0: no clipping.
    name: str. Optimizer name (velocity slots are `<var>/<name>`).

  Returns:
    A `KfacOptimizer` (with `cov_update_op`, `inv_update_op`,
    `inv_updates_dict`).

  Raises:
    ValueError: if a non-default `estimation_mode` is asked for and the
      optimizer does not accept the keyword.
  """
  from kfac import optimizer as kfac_opt  # pylint: disable=g-import-not-at-top
  kwargs = {}
  if estimation_mode != "gradients" or _optimizer_accepts("estimation_mode"):
    if not _optimizer_accepts("estimation_mode"):
      raise ValueError(
          "estimation_mode=%r needs KfacOptimizer(..., estimation_mode=...), "
          "which this kfac.optimizer does not accept" % (estimation_mode,))
    kwargs["estimation_mode"] = estimation_mode
  return kfac_opt.KfacOptimizer(
      learning_rate=learning_rate,
      cov_ema_decay=cov_ema_decay,
      damping=damping,
      layer_collection=layer_collection,
      momentum=momentum,
      momentum_type=momentum_type,
      norm_constraint=(norm_constraint if norm_constraint and
                       norm_constraint > 0 else None),
      name=name,
      **kwargs)


def make_optimizer(optimizer, learning_rate, layer_collection=None,
                   momentum=0.9, damping=1e-3, cov_ema_decay=0.95,
                   momentum_type="regular", estimation_mode="gradients",
                   norm_constraint=None):
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
    return kfac_optimizer(learning_rate, cov_ema_decay, damping,
                          layer_collection, momentum=momentum,
                          momentum_type=momentum_type,
                          estimation_mode=estimation_mode,
                          norm_constraint=norm_constraint)
  if optimizer == "sgd":
    return tf.compat.v1.train.GradientDescentOptimizer(learning_rate)
  if optimizer == "momentum":
    return tf.compat.v1.train.MomentumOptimizer(learning_rate, momentum)
  if optimizer == "adam":
    return tf.compat.v1.train.AdamOptimizer(learning_rate)
  raise ValueError("optimizer must be one of %s, got %r"
                   % (", ".join(OPTIMIZERS), optimizer))


class Progress(object):
  """Prints periodic progress lines and a one-line summary.

  A progress line reads
  `<name> step 100/1000 | loss 0.4321 | accuracy 0.912 | 85.2 steps/s`
  (steps/s over the last interval); the attribute `metric_name` (default
  "accuracy") names the second metric.
  """

  def __init__(self, name, total_steps=None, log_every=100, stream=None,
               verbose=True):
    """Starts the clock.

    Args:
      name: str. Prefix of every line.
      total_steps: int or None. Shown as the denominator when known.
      log_every: int. Print every this many steps (0: never).
      stream: file-like or None (stdout).
      verbose: bool. If False, print nothing.
    """
    self.name = name
    self.total_steps = total_steps
    self.log_every = log_every
    self.stream = stream or sys.stdout
    self.verbose = verbose
    self.start = time.time()
    self._last_time = self.start
    self._last_step = 0

  def _print(self, line):
    if self.verbose:
      print(line, file=self.stream)
      self.stream.flush()

  metric_name = "accuracy"

  def update(self, step, loss, accuracy=None):
    """Records that `step` steps are done; prints every `log_every` steps.

    Args:
      step: int. Number of completed steps.
      loss: float. Latest mini-batch loss.
      accuracy: float or None. Latest mini-batch accuracy.
    """
    if not self.log_every or step % self.log_every:
      return
    now = time.time()
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_time, self._last_step = now, step
    total = "/%d" % self.total_steps if self.total_steps else ""
    acc = (" | %s %.3f" % (self.metric_name, accuracy)
           if accuracy is not None else "")
    self._print("%s step %d%s | loss %.4f%s | %.1f steps/s"
                % (self.name, step, total, loss, acc, rate))

  def summary(self, steps, loss, accuracy=None, extra="", seconds=None):
    """Prints the one-line summary and returns it.

    Args:
      steps: int. Steps run.
      loss: float. Final loss.
      accuracy: float or None. Final accuracy.
      extra: str. Appended to the line.
      seconds: float or None. Training time to report (None: the time since
        the `Progress` was created).

    Returns:
      The summary line.
    """
    if seconds is None:
      seconds = time.time() - self.start
    acc = (", %s %.3f" % (self.metric_name, accuracy)
           if accuracy is not None else "")
    line = ("%s: done, %d steps in %.1f s (%.1f steps/s), final loss %.4f%s%s"
            % (self.name, steps, seconds, steps / max(seconds, 1e-9), loss,
               acc, extra))
    self._print(line)
    return line


def train(loss, accuracy, layer_collection, optimizer="kfac", num_steps=None,
          learning_rate=0.01, momentum=0.9, damping=1e-3, cov_ema_decay=0.95,
          momentum_type="regular", estimation_mode="gradients",
          norm_constraint=None, inv_update_interval=20, log_every=100,
          name="train", session_config=None, eval_feed=None, verbose=True,
          record_every=0, metric_name="accuracy", test_feed=None):
  """Minimises `loss` on one machine with K-FAC or a baseline.

  Every step runs the training op (and, for K-FAC, `cov_update_op`);
  K-FAC's `inv_update_op` runs after the first step and then every
  `inv_update_interval` steps. Training stops after `num_steps` steps, or
  when the input pipeline runs out (`OutOfRangeError`). Runs in a plain
  `tf.compat.v1.Session` that initialises all global and local variables.

  Args:
    loss: scalar Tensor to minimise.
    accuracy: scalar Tensor or None, reported alongside the loss.
    layer_collection: `LayerCollection` (used by K-FAC only).
    optimizer: str. "kfac", "sgd", "momentum" or "adam".
    num_steps: int or None. Steps to run (None: until the data runs out).
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

  Returns:
    A dict with keys `steps`, `seconds` (training-step time only, which the
    summary reports too), `loss`, `accuracy` (final values, on `eval_feed` if
    given, else the last mini-batch), `test_loss`, `test_accuracy` (on
    `test_feed`; None without it), `history` (list of `(step, seconds,
    loss)`), `step_times` (seconds of each step, K-FAC inverse updates
    included) and `summary` (the printed line).
  """
  global_step = tf.compat.v1.train.get_or_create_global_step()
  opt = make_optimizer(optimizer, learning_rate, layer_collection,
                       momentum=momentum, damping=damping,
                       cov_ema_decay=cov_ema_decay,
                       momentum_type=momentum_type,
                       estimation_mode=estimation_mode,
                       norm_constraint=norm_constraint)
  train_op = opt.minimize(loss, global_step=global_step)
  is_kfac = optimizer == "kfac"
  step_fetches = [train_op, loss] + ([accuracy] if accuracy is not None else [])
  if is_kfac:
    step_fetches.append(opt.cov_update_op)
  eval_fetches = [loss] + ([accuracy] if accuracy is not None else [])

  history = []
  step_times = []
  step = 0
  train_seconds = 0.0
  loss_, acc_ = float("nan"), None
  test_loss, test_acc = None, None
  init_op = tf.group(tf.compat.v1.global_variables_initializer(),
                     tf.compat.v1.local_variables_initializer())

  def _record(sess):
    if eval_feed is not None:
      value = sess.run(loss, feed_dict=eval_feed)
    else:
      value = loss_
    history.append((step, train_seconds, float(value)))

  with tf.compat.v1.Session(config=session_config) as sess:
    sess.run(init_op)
    progress = Progress(name, num_steps, log_every, verbose=verbose)
    progress.metric_name = metric_name
    if record_every and eval_feed is not None:
      _record(sess)
    while num_steps is None or step < num_steps:
      t0 = time.time()
      try:
        results = sess.run(step_fetches)
      except tf.errors.OutOfRangeError:
        break
      if is_kfac and step % inv_update_interval == 0:
        sess.run(opt.inv_update_op)
      step_times.append(time.time() - t0)
      train_seconds += step_times[-1]
      step += 1
      loss_ = float(results[1])
      acc_ = float(results[2]) if accuracy is not None else None
      if not np.isfinite(loss_):
        if verbose:
          print("%s: loss is %s at step %d, stopping" % (name, loss_, step))
        if record_every:
          history.append((step, train_seconds, loss_))
        break
      progress.update(step, loss_, acc_)
      if record_every and step % record_every == 0:
        _record(sess)
    if eval_feed is not None and np.isfinite(loss_):
      loss_, acc_ = _evaluate(sess, eval_fetches, eval_feed)
    if test_feed is not None and np.isfinite(loss_):
      test_loss, test_acc = _evaluate(sess, eval_fetches, test_feed)
  extra = " (whole training set)" if eval_feed is not None else ""
  if test_loss is not None:
    extra += "; held-out test set: loss %.4f%s" % (
        test_loss,
        ", %s %.3f" % (metric_name, test_acc) if test_acc is not None else "")
  line = progress.summary(step, loss_, acc_, extra=extra,
                          seconds=train_seconds)
  return {"steps": step, "seconds": train_seconds, "loss": loss_,
          "accuracy": acc_, "test_loss": test_loss,
          "test_accuracy": test_acc, "history": history,
          "step_times": step_times, "summary": line}


def _evaluate(sess, fetches, feed_dict):
  """Runs `[loss]` or `[loss, accuracy]`; returns `(loss, accuracy or None)`."""
  values = sess.run(fetches, feed_dict=feed_dict)
  return float(values[0]), (float(values[1]) if len(values) > 1 else None)


# Settings of an example that `train_with_config` passes on to `train`.
_TRAIN_SETTINGS = ("learning_rate", "momentum", "damping", "cov_ema_decay",
                   "momentum_type", "estimation_mode", "norm_constraint",
                   "inv_update_interval", "log_every")


def train_with_config(loss, accuracy, layer_collection, cfg, name, **kwargs):
  """Calls `train` with an example's settings dict.

  Args:
    loss: scalar Tensor to minimise.
    accuracy: scalar Tensor or None, reported alongside the loss.
    layer_collection: `LayerCollection` (used by K-FAC only).
    cfg: dict with the keys of an example's `DEFAULTS`: `optimizer`, `steps`
      and the hyper-parameters of `train`.
    name: str. The example's name; lines are prefixed `<name>/<optimizer>`.
    **kwargs: further arguments of `train` (`eval_feed`, `test_feed`,
      `verbose`, ...).

  Returns:
    The dict returned by `train`.
  """
  settings = {key: cfg[key] for key in _TRAIN_SETTINGS}
  return train(loss, accuracy, layer_collection, optimizer=cfg["optimizer"],
               num_steps=cfg["steps"], name="%s/%s" % (name, cfg["optimizer"]),
               **dict(settings, **kwargs))
