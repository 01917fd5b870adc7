r"""Multi-layer perceptron trained with K-FAC on handwritten digits.

The 2017 `mlp.py` example: four fully connected layers (128, 64, 32 tanh
units, then 10 logits), a softmax cross-entropy loss, every layer registered
with `LayerCollection.register_fully_connected` and the logits with
`register_categorical_predictive_distribution`.

Run it (scikit-learn's bundled 8x8 digits by default; nothing is downloaded).
It trains on the digits' training split and ends with the loss and accuracy
on the whole training split and on the 297 held-out test digits:

  python -m kfac.examples.mlp
  python -m kfac.examples.mlp --steps 2000 --optimizer adam --learning_rate 0.01
  python -m kfac.examples.mlp --data_dir /path/to/mnist   # MNIST IDX files
"""

import functools

from absl import app
from absl import flags
import tensorflow as tf

from kfac.examples import common

__all__ = [
  "fc_layer",
  "build_model",
  "train_mnist",
  "train_mnist_result",
  "DEFAULTS",
  "BASELINE_DEFAULTS",
]

# Defaults of `python -m kfac.examples.mlp` (overridable by flags).
DEFAULTS = common.Settings(
  steps=1000,
  batch_size=64,
  learning_rate=0.01,
  damping=0.1,
  momentum=0.9,
  momentum_type="regular",
  estimation_mode="gradients",
  inv_update_interval=20,
  cov_ema_decay=0.95,
  norm_constraint=None,
  stats_batch_size=None,
  optimizer="kfac",
  log_every=100,
  seed=0,
)

# Defaults that replace `DEFAULTS` for the first-order baselines.
BASELINE_DEFAULTS = {
  "sgd": {"learning_rate": 0.3, "momentum": 0.0},
  "momentum": {"learning_rate": 0.03, "momentum": 0.9},
  "adam": {"learning_rate": 0.003},
}


def fc_layer(layer_id, inputs, output_size):
  """Builds a fully connected layer with a tanh non-linearity.

  Computes `pre = inputs @ kernel + bias` and `act = tanh(pre)`, with
  variables `fc_<layer_id>/kernel` (`[input_size, output_size]`, initialised
  from a standard normal, as in 2017) and `fc_<layer_id>/bias`
  (`[output_size]`, zeros). (The 2017 version used `tf.layers.Dense`, which
  Keras 3 no longer provides in graph mode; names and shapes are the same.)

  Args:
    layer_id: int. Layer index, used in the variable scope `fc_<layer_id>`.
    inputs: float Tensor `[batch_size, input_size]`.
    output_size: int. Number of units.

  Returns:
    preactivations: Tensor `[batch_size, output_size]`, before the tanh.
    activations: Tensor `[batch_size, output_size]`, after the tanh.
    params: tuple `(kernel, bias)` of the layer's variables.
  """
  with tf.compat.v1.variable_scope("fc_%d" % layer_id):
    input_size = inputs.shape[-1]
    kernel = tf.compat.v1.get_variable(
      "kernel",
      [input_size, output_size],
      dtype=inputs.dtype,
      initializer=tf.compat.v1.random_normal_initializer(),
    )
    bias = tf.compat.v1.get_variable(
      "bias",
      [output_size],
      dtype=inputs.dtype,
      initializer=tf.compat.v1.zeros_initializer(),
    )
    preactivations = tf.nn.bias_add(tf.matmul(inputs, kernel), bias)
    activations = tf.nn.tanh(preactivations)
  return preactivations, activations, (kernel, bias)


def _mlp(examples, num_labels, hidden_sizes, layer_collection=None):
  """Builds one tower of the MLP; returns its logits.

  Registers every layer with `layer_collection` when one is given.
  """
  inputs = examples
  for layer_id, size in enumerate(hidden_sizes):
    pre, act, params = fc_layer(layer_id, inputs, size)
    if layer_collection is not None:
      layer_collection.register_fully_connected(params, inputs, pre)
    inputs = act
  logits, _, params = fc_layer(len(hidden_sizes), inputs, num_labels)
  if layer_collection is not None:
    layer_collection.register_fully_connected(params, inputs, logits)
  return logits


def build_model(
  examples,
  labels,
  num_labels,
  layer_collection,
  hidden_sizes=(128, 64, 32),
  stats_batch_size=None,
):
  """Builds the MLP, its loss and accuracy, and registers it for K-FAC.

  Layers `fc_0 ... fc_<n-1>` have `hidden_sizes` tanh units; the last layer
  `fc_<n>` gives `num_labels` logits (its tanh output is unused). Every layer
  is registered with `register_fully_connected((kernel, bias), inputs,
  preactivations)` and the logits with
  `register_categorical_predictive_distribution(logits, targets=labels)`
  (the targets make the "empirical" estimation mode available).

  With `stats_batch_size`, K-FAC's statistics come from only the first
  `stats_batch_size` examples, as in the K-FAC paper (section 8): a second
  tower sharing the variables runs on that slice and is the one registered.

  Args:
    examples: float Tensor `[batch_size, input_size]`.
    labels: int Tensor `[batch_size]` with values in `[0, num_labels)`.
    num_labels: int. Number of classes.
    layer_collection: `LayerCollection` to register the layers and loss in.
    hidden_sizes: sequence of int. Hidden layer widths (2017: 128, 64, 32).
    stats_batch_size: int or None. Examples used for K-FAC's statistics
      (None: the whole batch, a single tower).

  Returns:
    loss: scalar Tensor, mean softmax cross-entropy over the batch.
    accuracy: scalar Tensor, fraction of correct argmax predictions.
  """
  if stats_batch_size is None:
    logits = _mlp(examples, num_labels, hidden_sizes, layer_collection)
    stats_logits, stats_labels = logits, labels
  else:
    logits = _mlp(examples, num_labels, hidden_sizes)
    stats_labels = labels[:stats_batch_size]
    with tf.compat.v1.variable_scope(
      tf.compat.v1.get_variable_scope(), reuse=True
    ):
      stats_logits = _mlp(
        examples[:stats_batch_size], num_labels, hidden_sizes, layer_collection
      )
  loss = tf.reduce_mean(
    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
  )
  accuracy = tf.reduce_mean(
    tf.cast(tf.equal(labels, tf.argmax(logits, axis=1)), tf.float32)
  )
  layer_collection.register_categorical_predictive_distribution(
    stats_logits, targets=stats_labels
  )
  return loss, accuracy


def train_mnist(data_dir, num_epochs, use_fake_data=False, **kwargs):
  """Trains the MLP on digit images with K-FAC (or a baseline).

  With the 2017 arguments only, this runs K-FAC over `num_epochs` epochs of
  flattened images in batches of 64. Keyword arguments (all optional) refine
  the run; the defaults are those of `DEFAULTS`.

  Args:
    data_dir: str or None. Directory with the MNIST IDX training files, or
      `None`/""/"digits" for scikit-learn's bundled 8x8 digits.
    num_epochs: int or None. Passes over the data (None: until `steps`).
    use_fake_data: bool. Use random 28x28 images instead.
    **kwargs: as in `train_mnist_result`.

  Returns:
    The final mini-batch accuracy (float), as in 2017. The full result dict
    of `common.train` is available via `train_mnist_result`.
  """
  return train_mnist_result(data_dir, num_epochs, use_fake_data, **kwargs)[
    "accuracy"
  ]


def train_mnist_result(
  data_dir,
  num_epochs,
  use_fake_data=False,
  evaluate_on_training_set=False,
  evaluate_on_test_set=False,
  settings=None,
  hidden_sizes=(128, 64, 32),
  verbose=True,
  record_every=0,
  checkpoint_dir=None,
  session_config=None,
  **overrides,
):
  """Like `train_mnist`, but returns the whole result dict.

  Args:
    data_dir: str or None. As in `train_mnist`.
    num_epochs: int or None. As in `train_mnist`.
    use_fake_data: bool. As in `train_mnist`.
    evaluate_on_training_set: bool. If True, the final loss and accuracy are
      computed on the whole training set (by feeding it to the model).
    evaluate_on_test_set: bool. If True and the data has a test split, the
      loss and accuracy on it are computed after training too.
    settings: `common.Settings` or None (`DEFAULTS` without a step limit).
    hidden_sizes: sequence of int. Hidden layer widths.
    verbose: bool. If False, print nothing.
    record_every: int. See `common.train`.
    checkpoint_dir: str or None. See `common.train`.
    session_config: `tf.compat.v1.ConfigProto` or None.
    **overrides: fields of `common.Settings` that replace those of
      `settings` (`steps`, `batch_size`, `learning_rate`, ...); an unknown
      name raises `TypeError`.

  Returns:
    The dict returned by `common.train` (keys `steps`, `global_step`,
    `seconds`, `loss`, `accuracy`, `test_loss`, `test_accuracy`, `history`,
    `step_times`, `summary`).
  """
  cfg = (settings or DEFAULTS.replace(steps=None)).replace(**overrides)
  tf.compat.v1.set_random_seed(cfg.seed)
  return common.train_on_mnist(
    lambda examples, labels, layer_collection: build_model(
      examples,
      labels,
      10,
      layer_collection,
      hidden_sizes=hidden_sizes,
      stats_batch_size=cfg.stats_batch_size,
    ),
    cfg,
    "mlp",
    data_dir,
    num_epochs,
    use_fake_data,
    evaluate_on_training_set,
    evaluate_on_test_set,
    verbose=verbose,
    record_every=record_every,
    checkpoint_dir=checkpoint_dir,
    session_config=session_config,
  )


# Trains the MLP with the command-line flags (see `common.define_flags`):
# `main(argv, flag_values)`.
main = common.example_main(
  functools.partial(
    train_mnist_result, evaluate_on_training_set=True, evaluate_on_test_set=True
  ),
  DEFAULTS,
  BASELINE_DEFAULTS,
)


if __name__ == "__main__":
  common.define_flags(DEFAULTS)
  flags.adopt_module_key_flags(common)
  app.run(main)
