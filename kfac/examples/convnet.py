r"""Convolutional network trained with K-FAC, on one machine or a cluster.

The 2017 `convnet.py` example: conv 5x5x16 (ReLU, SAME) -> max-pool 3x3
stride 2 -> conv 5x5x16 -> max-pool -> flatten -> linear layer to 10 logits,
softmax cross-entropy. The convolutions are registered with
`register_conv2d`, the linear layer with `register_fully_connected` and the
logits with `register_categorical_predictive_distribution`.

`minimize_loss_single_machine` trains in one process;
`minimize_loss_distributed` trains on a TensorFlow cluster: variables
(including K-FAC's factors and inverses) live on the parameter servers
(`replica_device_setter`), gradients are aggregated by
`SyncReplicasOptimizer`, and the workers split the work:
the first ~60 % compute gradients and update the weights, the next ones
update the covariance factors, and the last one recomputes the inverses one
at a time, cycling through them with an `OpQueue`.
`kfac.examples.convnet_distributed` starts such a cluster on 127.0.0.1.

Run it (scikit-learn's bundled 8x8 digits by default; nothing is downloaded).
It trains on the digits' training split and ends with the loss and accuracy
on the whole training split and on the 297 held-out test digits:

  python -m kfac.examples.convnet
  python -m kfac.examples.convnet --steps 1000 --estimation_mode empirical
  python -m kfac.examples.convnet --optimizer momentum --learning_rate 0.1
  python -m kfac.examples.convnet --data_dir /path/to/mnist   # MNIST files
"""

import functools
import os
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from kfac import layer_collection as lc
from kfac import op_queue as oq
from kfac.examples import common
from kfac.examples import mlp
from kfac.examples import mnist

__all__ = [
  "conv_layer",
  "max_pool_layer",
  "linear_layer",
  "build_model",
  "minimize_loss_single_machine",
  "minimize_loss_distributed",
  "minimize_loss_distributed_result",
  "train_mnist_single_machine",
  "train_mnist_single_machine_result",
  "train_mnist_distributed",
  "train_mnist_distributed_result",
  "task_role",
  "DEFAULTS",
  "BASELINE_DEFAULTS",
  "LEGACY_SETTINGS",
]

# Defaults of `python -m kfac.examples.convnet` (overridable by flags).
DEFAULTS = common.Settings(
  steps=500,
  batch_size=128,
  learning_rate=0.1,
  damping=0.1,
  momentum=0.9,
  momentum_type="regular",
  estimation_mode="gradients",
  inv_update_interval=20,
  cov_ema_decay=0.95,
  norm_constraint=0.001,
  stats_batch_size=16,
  optimizer="kfac",
  log_every=50,
  seed=0,
)

# Defaults that replace `DEFAULTS` for the first-order baselines.
BASELINE_DEFAULTS = {
  "sgd": {"learning_rate": 0.3, "momentum": 0.0},
  "momentum": {"learning_rate": 0.05, "momentum": 0.9},
  "adam": {"learning_rate": 0.003},
}

# Settings of the 2017 `minimize_loss_*` and `train_mnist_*` functions.
LEGACY_SETTINGS = common.Settings(
  steps=None,
  batch_size=128,
  learning_rate=0.0001,
  cov_ema_decay=0.95,
  damping=0.001,
  momentum=0.9,
  momentum_type="regular",
  estimation_mode="gradients",
  norm_constraint=None,
  inv_update_interval=100,
  stats_batch_size=None,
  optimizer="kfac",
  log_every=10,
  seed=None,
)


def conv_layer(layer_id, inputs, kernel_size, out_channels):
  """Builds a 2-D convolution (stride 1, SAME padding) with a ReLU.

  Variables `conv_<layer_id>/kernel`
  (`[kernel_size, kernel_size, in_channels, out_channels]`, normal with
  stddev 0.01) and `conv_<layer_id>/bias` (`[out_channels]`, zeros). (The
  2017 version used `tf.layers.Conv2D`, unavailable under Keras 3; names and
  shapes are the same.)

  Args:
    layer_id: int. Layer index, used in the variable scope `conv_<layer_id>`.
    inputs: float Tensor `[batch_size, height, width, in_channels]`.
    kernel_size: int. Height and width of the filter.
    out_channels: int. Number of filters.

  Returns:
    preactivations: Tensor `[batch_size, height, width, out_channels]`.
    activations: ReLU of `preactivations`, same shape.
    params: tuple `(kernel, bias)` of the layer's variables.
  """
  with tf.compat.v1.variable_scope("conv_%d" % layer_id):
    in_channels = inputs.shape[-1]
    kernel = tf.compat.v1.get_variable(
      "kernel",
      [kernel_size, kernel_size, in_channels, out_channels],
      dtype=inputs.dtype,
      initializer=tf.compat.v1.random_normal_initializer(stddev=0.01),
    )
    bias = tf.compat.v1.get_variable(
      "bias",
      [out_channels],
      dtype=inputs.dtype,
      initializer=tf.compat.v1.zeros_initializer(),
    )
    conv = tf.nn.conv2d(inputs, kernel, strides=[1, 1, 1, 1], padding="SAME")
    preactivations = tf.nn.bias_add(conv, bias)
    activations = tf.nn.relu(preactivations)
  return preactivations, activations, (kernel, bias)


def max_pool_layer(layer_id, inputs, kernel_size, stride):
  """Builds a max-pooling layer (SAME padding).

  The op is named `pool_<layer_id>/pool`.

  Args:
    layer_id: int. Layer index, used in the scope name `pool_<layer_id>`.
    inputs: float Tensor `[batch_size, height, width, channels]`.
    kernel_size: int. Height and width of the pooling window.
    stride: int. Vertical and horizontal stride.

  Returns:
    Tensor `[batch_size, ceil(height/stride), ceil(width/stride), channels]`.
  """
  with tf.compat.v1.variable_scope("pool_%d" % layer_id):
    return tf.nn.max_pool2d(
      inputs,
      ksize=[1, kernel_size, kernel_size, 1],
      strides=[1, stride, stride, 1],
      padding="SAME",
      name="pool",
    )


def linear_layer(layer_id, inputs, output_size):
  """Builds a fully connected layer without a non-linearity.

  Uses `mlp.fc_layer`, so the variables are `fc_<layer_id>/kernel` and
  `fc_<layer_id>/bias`.

  Args:
    layer_id: int. Layer index.
    inputs: float Tensor `[batch_size, input_size]`.
    output_size: int. Number of outputs.

  Returns:
    preactivations: Tensor `[batch_size, output_size]`.
    params: tuple `(kernel, bias)`.
  """
  pre, _, params = mlp.fc_layer(layer_id, inputs, output_size)
  return pre, params


def _convnet(examples, num_labels, layer_collection=None):
  """Builds one tower of the ConvNet; returns its logits.

  Registers the three layers with `layer_collection` when one is given.
  """
  pre0, act0, params0 = conv_layer(
    layer_id=0, inputs=examples, kernel_size=5, out_channels=16
  )
  act1 = max_pool_layer(layer_id=1, inputs=act0, kernel_size=3, stride=2)
  pre2, act2, params2 = conv_layer(
    layer_id=2, inputs=act1, kernel_size=5, out_channels=16
  )
  act3 = max_pool_layer(layer_id=3, inputs=act2, kernel_size=3, stride=2)
  flat_act3 = tf.reshape(act3, shape=[-1, int(np.prod(act3.shape[1:4]))])
  logits, params4 = linear_layer(
    layer_id=4, inputs=flat_act3, output_size=num_labels
  )
  if layer_collection is not None:
    layer_collection.register_conv2d(
      params0, (1, 1, 1, 1), "SAME", examples, pre0
    )
    layer_collection.register_conv2d(params2, (1, 1, 1, 1), "SAME", act1, pre2)
    layer_collection.register_fully_connected(params4, flat_act3, logits)
  return logits


def build_model(
  examples, labels, num_labels, layer_collection, stats_batch_size=None
):
  """Builds the ConvNet, its loss and accuracy, and registers it for K-FAC.

  Layers: `conv_0` (5x5, 16 channels, ReLU) -> `pool_1` (3x3, stride 2) ->
  `conv_2` (5x5, 16, ReLU) -> `pool_3` (3x3, stride 2) -> flatten ->
  `fc_4` (linear, `num_labels` logits). Registers three blocks (two
  `register_conv2d` with strides `(1, 1, 1, 1)` and "SAME", one
  `register_fully_connected`) and one categorical loss on the logits, with
  the labels as targets (so that the "empirical" estimation mode works).

  With `stats_batch_size` (an addition to the 2017 signature), K-FAC's
  statistics come from only the first `stats_batch_size` examples, as in
  the K-FAC paper (section 8): a second tower sharing the variables runs on
  that slice and is the one registered; the returned loss and accuracy are
  those of the whole batch.

  Args:
    examples: float Tensor `[batch_size, height, width, channels]`.
    labels: int Tensor `[batch_size]` with values in `[0, num_labels)`.
    num_labels: int. Number of classes.
    layer_collection: `LayerCollection` to register the layers and loss in.
    stats_batch_size: int or None. Examples used for K-FAC's statistics
      (None: the whole batch, a single tower as in 2017).

  Returns:
    loss: scalar Tensor, mean softmax cross-entropy over the batch.
    accuracy: scalar Tensor, fraction of correct argmax predictions.
  """
  if stats_batch_size is None:
    logits = _convnet(examples, num_labels, layer_collection)
    stats_logits, stats_labels = logits, labels
  else:
    logits = _convnet(examples, num_labels)
    stats_labels = labels[:stats_batch_size]
    with tf.compat.v1.variable_scope(
      tf.compat.v1.get_variable_scope(), reuse=True
    ):
      stats_logits = _convnet(
        examples[:stats_batch_size], num_labels, layer_collection
      )
  loss = tf.reduce_mean(
    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
  )
  accuracy = tf.reduce_mean(
    tf.cast(tf.equal(labels, tf.argmax(logits, axis=1)), dtype=tf.float32)
  )

  tf.compat.v1.summary.scalar("loss", loss)
  tf.compat.v1.summary.scalar("accuracy", accuracy)

  layer_collection.register_categorical_predictive_distribution(
    stats_logits, targets=stats_labels
  )
  return loss, accuracy


def minimize_loss_single_machine(
  loss,
  accuracy,
  layer_collection,
  session_config=None,
  num_steps=None,
  log_every=10,
  verbose=True,
  **hparams,
):
  """Minimises `loss` with K-FAC in one process.

  Every step runs the training op and `cov_update_op`; `inv_update_op` runs
  after the first step and then every `inv_update_interval` steps. Stops
  after `num_steps` steps or when the input pipeline is exhausted.

  Args:
    loss: scalar Tensor to minimise.
    accuracy: scalar Tensor reported alongside (may equal `loss`).
    layer_collection: `LayerCollection` describing the model.
    session_config: `tf.compat.v1.ConfigProto` or None.
    num_steps: int or None. Steps to run (None: until the data runs out).
    log_every: int. Progress-line period (0: silent progress).
    verbose: bool. If False, print nothing.
    **hparams: fields of `common.Settings` that replace the 2017
      hyper-parameters of `LEGACY_SETTINGS`: `learning_rate` (0.0001),
      `cov_ema_decay` (0.95), `damping` (0.001), `momentum` (0.9),
      `momentum_type` ("regular"), `estimation_mode` ("gradients"),
      `norm_constraint` (None), `inv_update_interval` (100) and `optimizer`
      ("kfac").

  Returns:
    The final value of `accuracy` (float).
  """
  cfg = LEGACY_SETTINGS.replace(steps=num_steps, log_every=log_every, **hparams)
  result = common.train_with_settings(
    loss,
    accuracy,
    layer_collection,
    cfg,
    "convnet",
    session_config=session_config,
    verbose=verbose,
  )
  return result["accuracy"]


def _num_gradient_tasks(num_tasks):
  """Number of workers that compute gradients and update the weights.

  About 60 % of the workers (as in 2017), but always leaving one covariance
  worker and one inverse worker when there are at least three workers.

  Args:
    num_tasks: int. Number of worker tasks.

  Returns:
    int.
  """
  if num_tasks < 3:
    return num_tasks
  return max(1, min(int(np.ceil(0.6 * num_tasks)), num_tasks - 2))


def _is_gradient_task(task_id, num_tasks):
  """True if this task computes gradients and updates the weights."""
  return 0 <= task_id < _num_gradient_tasks(num_tasks)


def _is_cov_update_task(task_id, num_tasks):
  """True if this task updates K-FAC's covariance factors."""
  if num_tasks < 3:
    return False
  return _num_gradient_tasks(num_tasks) <= task_id < num_tasks - 1


def task_role(task_id, num_tasks):
  """Names a worker's role in `minimize_loss_distributed`.

  Args:
    task_id: int. Worker task index.
    num_tasks: int. Number of worker tasks.

  Returns:
    "train", "cov" or "inv". With fewer than three workers every worker is
    "train" (and then also updates the covariances; the chief also updates
    the inverses).
  """
  if _is_gradient_task(task_id, num_tasks):
    return "train"
  if _is_cov_update_task(task_id, num_tasks):
    return "cov"
  return "inv"


class _ReadinessBarrierHook(tf.compat.v1.train.SessionRunHook):
  """A start-up barrier between the workers of a cluster.

  Every worker enqueues its id into a queue shared through the first
  parameter server once it is ready: at once, or -- for the covariance and
  inverse workers -- after its first `ready_after` steps, so that their
  statistics have moved before training starts. Training workers wait (at
  most `wait_secs`) until all `num_workers` are ready, so that the helpers
  run alongside from the first step and the chief's final checkpoint never
  outruns them on a loaded machine.
  """

  def __init__(
    self, mark_ready, num_ready, num_workers, ready_after, wait, wait_secs
  ):
    self._mark_ready = mark_ready
    self._num_ready = num_ready
    self._num_workers = num_workers
    self._ready_after = ready_after
    self._wait = wait
    self._wait_secs = wait_secs
    self._step = 0

  def after_create_session(self, session, coord):
    if not self._ready_after:
      session.run(self._mark_ready)
    if self._wait:
      deadline = time.time() + self._wait_secs
      while (
        session.run(self._num_ready) < self._num_workers
        and time.time() < deadline
        and not coord.should_stop()
      ):
        time.sleep(0.1)

  def after_run(self, run_context, run_values):
    self._step += 1
    if self._step == self._ready_after:
      run_context.session.run(self._mark_ready)


def minimize_loss_distributed(
  task_id,
  num_worker_tasks,
  num_ps_tasks,
  master,
  checkpoint_dir,
  loss,
  accuracy,
  layer_collection,
  num_steps=None,
  session_config=None,
  log_every=10,
  verbose=True,
  wait_for_workers_secs=120.0,
  **hparams,
):
  """Minimises `loss` with K-FAC as one worker of a TensorFlow cluster.

  Must be called in every worker task with the same graph (the model built
  under `tf.device(replica_device_setter(...))` so that its variables live on
  the parameter servers). Roles, by task index (see `task_role`):

  * "train" (the first ~60 %): run the `SyncReplicasOptimizer` training op;
    task 0 is the chief (initialises variables, aggregates gradients, saves
    checkpoints);
  * "cov" (the next ones, all but the last): run `cov_update_op`;
  * "inv" (the last one): run one inverse-update op per step, taken in turn
    from an `OpQueue` over `inv_updates_dict` (fetching only that op: no
    forward pass).

  With fewer than three workers all train; they then also run
  `cov_update_op`, and the chief runs `inv_update_op` every
  `inv_update_interval` steps. On a cluster (`master` not empty) training
  workers wait (at most `wait_for_workers_secs`) until every worker is
  ready: the covariance worker has run one covariance update and the
  inverse worker one round of all inverse updates, so that they run
  alongside from the first step. Every worker stops when the global step
  reaches `num_steps`.

  Args:
    task_id: int. Index of this worker task.
    num_worker_tasks: int. Number of worker tasks.
    num_ps_tasks: int. Number of parameter-server tasks (0: variables stay
      on the worker, e.g. for an in-process test with `master=""`).
    master: str. Target of this worker's `tf.compat.v1.train.Server`.
    checkpoint_dir: str or None. Where the chief saves checkpoints (a
      checkpoint there is restored first).
    loss: scalar Tensor to minimise.
    accuracy: scalar Tensor reported alongside.
    layer_collection: `LayerCollection` describing the model.
    num_steps: int or None. Stop when the global step reaches this (None:
      when the input pipeline is exhausted).
    session_config: `tf.compat.v1.ConfigProto` or None.
    log_every: int. Progress-line period in local steps (0: none).
    verbose: bool. If False, print nothing.
    wait_for_workers_secs: float. How long training workers wait for the
      others to start.
    **hparams: fields of `common.Settings` replacing the 2017
      hyper-parameters (see `minimize_loss_single_machine`).

  Returns:
    The last value of `accuracy` (float) seen by this worker (NaN for the
    inverse worker, which does not evaluate the model).
  """
  result = minimize_loss_distributed_result(
    task_id,
    num_worker_tasks,
    num_ps_tasks,
    master,
    checkpoint_dir,
    loss,
    accuracy,
    layer_collection,
    num_steps=num_steps,
    session_config=session_config,
    log_every=log_every,
    verbose=verbose,
    wait_for_workers_secs=wait_for_workers_secs,
    **hparams,
  )
  return float("nan") if result["accuracy"] is None else result["accuracy"]


def minimize_loss_distributed_result(
  task_id,
  num_worker_tasks,
  num_ps_tasks,
  master,
  checkpoint_dir,
  loss,
  accuracy,
  layer_collection,
  num_steps=None,
  session_config=None,
  log_every=10,
  verbose=True,
  wait_for_workers_secs=120.0,
  **hparams,
):
  """Like `minimize_loss_distributed`, but returns the result dict.

  Args:
    task_id: int. As in `minimize_loss_distributed`.
    num_worker_tasks: int. As in `minimize_loss_distributed`.
    num_ps_tasks: int. As in `minimize_loss_distributed`.
    master: str. As in `minimize_loss_distributed`.
    checkpoint_dir: str or None. As in `minimize_loss_distributed`.
    loss: scalar Tensor. As in `minimize_loss_distributed`.
    accuracy: scalar Tensor. As in `minimize_loss_distributed`.
    layer_collection: As in `minimize_loss_distributed`.
    num_steps: int or None. As in `minimize_loss_distributed`.
    session_config: As in `minimize_loss_distributed`.
    log_every: int. As in `minimize_loss_distributed`.
    verbose: bool. As in `minimize_loss_distributed`.
    wait_for_workers_secs: float. As in `minimize_loss_distributed`.
    **hparams: As in `minimize_loss_distributed`.

  Returns:
    The dict of `common.ProgressHook.result` (`steps` are this worker's
    local steps; `global_step` is read when it stops; `loss` and `accuracy`
    are None for the inverse worker), with `role` added.
  """
  cfg = LEGACY_SETTINGS.replace(**hparams)
  worker_device = "/job:worker/task:%d" % task_id if master else None
  with tf.compat.v1.device(
    tf.compat.v1.train.replica_device_setter(
      num_ps_tasks, worker_device=worker_device
    )
  ):
    global_step = tf.compat.v1.train.get_or_create_global_step()
    optimizer = common.kfac_optimizer(
      learning_rate=cfg.learning_rate,
      cov_ema_decay=cfg.cov_ema_decay,
      damping=cfg.damping,
      layer_collection=layer_collection,
      momentum=cfg.momentum,
      momentum_type=cfg.momentum_type,
      estimation_mode=cfg.estimation_mode,
      norm_constraint=cfg.norm_constraint,
    )
    inv_update_queue = oq.OpQueue(list(optimizer.inv_updates_dict.values()))
    sync_optimizer = tf.compat.v1.train.SyncReplicasOptimizer(
      opt=optimizer, replicas_to_aggregate=_num_gradient_tasks(num_worker_tasks)
    )
    train_op = sync_optimizer.minimize(loss, global_step=global_step)

  # The start-up barrier: a queue shared through the first parameter server.
  barrier_device = "/job:ps/task:0" if num_ps_tasks else None
  with tf.compat.v1.device(barrier_device):
    started = tf.queue.FIFOQueue(
      max(num_worker_tasks, 1),
      tf.int32,
      shapes=[],
      shared_name="kfac_workers_started",
      name="kfac_workers_started",
    )
    mark_started = started.enqueue(tf.constant(task_id, tf.int32))
    num_started = started.size()
  uninitialized = tf.compat.v1.report_uninitialized_variables(
    tf.compat.v1.global_variables()
  )

  is_chief = task_id == 0
  role = task_role(task_id, num_worker_tasks)
  few_workers = num_worker_tasks < 3
  hooks = [sync_optimizer.make_session_run_hook(is_chief)]
  if num_steps is not None:
    hooks.append(tf.compat.v1.train.StopAtStepHook(last_step=num_steps))
  ready_after = 0
  if role == "train":
    step_fn = common.fetching(train_op)
    if few_workers:
      hooks.append(
        common.KfacUpdateHook(
          optimizer.cov_update_op,
          optimizer.inv_update_op if is_chief else None,
          cfg.inv_update_interval,
        )
      )
  elif role == "cov":
    step_fn = common.fetching(optimizer.cov_update_op)
    ready_after = 1
  else:
    # Inverse updates need no forward pass: fetch only the op drawn.
    def step_fn(step_context):
      return step_context.run_with_hooks(
        inv_update_queue.next_op(step_context.session)
      )

    ready_after = len(optimizer.inv_updates_dict)
  hooks.append(
    _ReadinessBarrierHook(
      mark_started,
      num_started,
      num_worker_tasks,
      0 if few_workers else ready_after,
      wait=role == "train" and not few_workers and bool(master),
      wait_secs=wait_for_workers_secs,
    )
  )
  progress = common.ProgressHook(
    "worker %d (%s)" % (task_id, role),
    None if role == "inv" else loss,
    None if role == "inv" else accuracy,
    log_every=log_every,
    verbose=verbose,
    global_step=global_step,
    show_global_step=True,
  )
  hooks.append(progress)

  if not is_chief and master:
    # Wait for the chief to initialise the variables, polling quickly (the
    # session manager of a non-chief worker would otherwise sleep 30 s).
    deadline = time.time() + wait_for_workers_secs
    with tf.compat.v1.Session(master, config=session_config) as probe:
      while len(probe.run(uninitialized)) and time.time() < deadline:
        time.sleep(0.2)

  common.run_training(
    step_fn,
    hooks,
    master=master,
    is_chief=is_chief,
    checkpoint_dir=checkpoint_dir,
    session_config=session_config,
  )
  return dict(progress.result, role=role)


def train_mnist_single_machine(
  data_dir, num_epochs, use_fake_data=False, **kwargs
):
  """Trains the ConvNet on digit images in one process.

  With the 2017 arguments only: K-FAC with the 2017 hyper-parameters
  (`LEGACY_SETTINGS`, see `minimize_loss_single_machine`), batches of 128
  unflattened images, for `num_epochs` epochs.

  Args:
    data_dir: str or None. Directory with the MNIST IDX training files, or
      `None`/""/"digits" for scikit-learn's bundled 8x8 digits.
    num_epochs: int or None. Passes over the data (None: until `steps`).
    use_fake_data: bool. Use random 28x28 images instead.
    **kwargs: as in `train_mnist_single_machine_result`.

  Returns:
    The final mini-batch accuracy (float).
  """
  return train_mnist_single_machine_result(
    data_dir, num_epochs, use_fake_data, **kwargs
  )["accuracy"]


def train_mnist_single_machine_result(
  data_dir,
  num_epochs,
  use_fake_data=False,
  evaluate_on_training_set=False,
  evaluate_on_test_set=False,
  settings=None,
  verbose=True,
  record_every=0,
  checkpoint_dir=None,
  session_config=None,
  **overrides,
):
  """Like `train_mnist_single_machine`, but returns the result dict.

  Args:
    data_dir: str or None. As in `train_mnist_single_machine`.
    num_epochs: int or None. As in `train_mnist_single_machine`.
    use_fake_data: bool. As in `train_mnist_single_machine`.
    evaluate_on_training_set: bool. If True, the final loss and accuracy are
      computed on the whole training set.
    evaluate_on_test_set: bool. If True and the data has a test split, the
      loss and accuracy on it are computed after training too.
    settings: `common.Settings` or None (`LEGACY_SETTINGS`).
    verbose: bool. If False, print nothing.
    record_every: int. See `common.train`.
    checkpoint_dir: str or None. See `common.train`.
    session_config: `tf.compat.v1.ConfigProto` or None.
    **overrides: fields of `common.Settings` that replace those of
      `settings` (`steps`, `batch_size`, `stats_batch_size` (see
      `build_model`), ...); an unknown name raises `TypeError`.

  Returns:
    The dict returned by `common.train`.
  """
  cfg = (settings or LEGACY_SETTINGS).replace(**overrides)
  if cfg.seed is not None:
    tf.compat.v1.set_random_seed(cfg.seed)
  return common.train_on_mnist(
    lambda examples, labels, layer_collection: build_model(
      examples,
      labels,
      10,
      layer_collection,
      stats_batch_size=cfg.stats_batch_size,
    ),
    cfg,
    "convnet",
    data_dir,
    num_epochs,
    use_fake_data,
    evaluate_on_training_set,
    evaluate_on_test_set,
    flatten_images=False,
    verbose=verbose,
    record_every=record_every,
    checkpoint_dir=checkpoint_dir,
    session_config=session_config,
  )


def train_mnist_distributed(
  task_id,
  num_worker_tasks,
  num_ps_tasks,
  master,
  data_dir,
  num_epochs,
  use_fake_data=False,
  **kwargs,
):
  """Trains the ConvNet as one worker of a TensorFlow cluster.

  Args:
    task_id: int. Index of this worker task.
    num_worker_tasks: int. Number of worker tasks.
    num_ps_tasks: int. Number of parameter-server tasks.
    master: str. Target of this worker's server ("" for in-process).
    data_dir: str or None. MNIST IDX directory, or None/""/"digits" for the
      bundled 8x8 digits.
    num_epochs: int or None. Passes over the data per worker.
    use_fake_data: bool. Use random 28x28 images instead.
    **kwargs: as in `train_mnist_distributed_result`.

  Returns:
    The last accuracy (float) seen by this worker.
  """
  result = train_mnist_distributed_result(
    task_id,
    num_worker_tasks,
    num_ps_tasks,
    master,
    data_dir,
    num_epochs,
    use_fake_data,
    **kwargs,
  )
  return float("nan") if result["accuracy"] is None else result["accuracy"]


def train_mnist_distributed_result(
  task_id,
  num_worker_tasks,
  num_ps_tasks,
  master,
  data_dir,
  num_epochs,
  use_fake_data=False,
  settings=None,
  checkpoint_dir=None,
  session_config=None,
  verbose=True,
  wait_for_workers_secs=120.0,
  **overrides,
):
  """Like `train_mnist_distributed`, but returns the result dict.

  Builds the input pipeline on this worker and the model under
  `replica_device_setter(num_ps_tasks)`, then calls
  `minimize_loss_distributed_result`.

  Args:
    task_id: int. As in `train_mnist_distributed`.
    num_worker_tasks: int. As in `train_mnist_distributed`.
    num_ps_tasks: int. As in `train_mnist_distributed`.
    master: str. As in `train_mnist_distributed`.
    data_dir: str or None. As in `train_mnist_distributed`.
    num_epochs: int or None. As in `train_mnist_distributed`.
    use_fake_data: bool. As in `train_mnist_distributed`.
    settings: `common.Settings` or None (`LEGACY_SETTINGS`); `steps` is the
      global step to stop at, and `seed + task_id` seeds this worker.
    checkpoint_dir: str or None. The chief's checkpoint directory (default
      `<data_dir>/kfac` for a real `data_dir`, else None).
    session_config: `tf.compat.v1.ConfigProto` or None.
    verbose: bool. If False, print nothing.
    wait_for_workers_secs: float. See `minimize_loss_distributed`.
    **overrides: fields of `common.Settings` that replace those of
      `settings`; an unknown name raises `TypeError`.

  Returns:
    The dict of `minimize_loss_distributed_result`.
  """
  cfg = (settings or LEGACY_SETTINGS).replace(**overrides)
  if checkpoint_dir is None and data_dir and data_dir != mnist.DIGITS:
    checkpoint_dir = os.path.join(data_dir, "kfac")
  if cfg.seed is not None:
    tf.compat.v1.set_random_seed(cfg.seed + task_id)
  worker_device = "/job:worker/task:%d" % task_id if master else None
  with tf.compat.v1.device(worker_device):
    examples, labels = mnist.load_mnist(
      data_dir,
      num_epochs=num_epochs,
      batch_size=cfg.batch_size,
      flatten_images=False,
      use_fake_data=use_fake_data,
      seed=None if cfg.seed is None else cfg.seed + task_id,
    )
  layer_collection = lc.LayerCollection()
  with tf.compat.v1.device(
    tf.compat.v1.train.replica_device_setter(
      num_ps_tasks, worker_device=worker_device
    )
  ):
    loss, accuracy = build_model(
      examples,
      labels,
      10,
      layer_collection,
      stats_batch_size=cfg.stats_batch_size,
    )
  hparams = {
    name: getattr(cfg, name)
    for name in (
      "learning_rate",
      "cov_ema_decay",
      "damping",
      "momentum",
      "momentum_type",
      "estimation_mode",
      "norm_constraint",
      "inv_update_interval",
    )
  }
  return minimize_loss_distributed_result(
    task_id,
    num_worker_tasks,
    num_ps_tasks,
    master,
    checkpoint_dir,
    loss,
    accuracy,
    layer_collection,
    num_steps=cfg.steps,
    session_config=session_config,
    log_every=cfg.log_every,
    verbose=verbose,
    wait_for_workers_secs=wait_for_workers_secs,
    **hparams,
  )


# Trains the ConvNet with the command-line flags: `main(argv, flag_values)`.
main = common.example_main(
  functools.partial(
    train_mnist_single_machine_result,
    evaluate_on_training_set=True,
    evaluate_on_test_set=True,
  ),
  DEFAULTS,
  BASELINE_DEFAULTS,
)


if __name__ == "__main__":
  common.define_flags(DEFAULTS)
  flags.adopt_module_key_flags(common)
  app.run(main)
