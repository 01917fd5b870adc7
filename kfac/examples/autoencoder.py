r"""Deep autoencoder trained with K-FAC: the K-FAC paper's benchmark, scaled.

Martens & Grosse (2015) compare K-FAC with SGD on the deep autoencoder
problems of Hinton & Salakhutdinov (2006); for MNIST the network is
784-1000-500-250-30-250-500-1000-784 with logistic (sigmoid) hidden units, a
linear 30-unit code layer and a Bernoulli (binary cross-entropy) output. Here
the same shape is scaled to the 8x8 digits (64 inputs): encoder 128-64-32,
code 8 (linear), decoder 32-64-128, 64 sigmoid outputs -- eight fully
connected layers (with MNIST files in `--data_dir`, the paper's sizes). Each
layer is registered with `register_fully_connected` and the output logits with
`register_multi_bernoulli_predictive_distribution` (pixel intensities in [0,
1] are the Bernoulli targets).

The loss is the binary cross-entropy summed over pixels and averaged over the
batch (the per-example negative log-likelihood, whose Fisher K-FAC
approximates); the reported "error" is the squared reconstruction error
summed over pixels, averaged over the batch.

By default K-FAC chooses its step size and momentum with the quadratic model
(`momentum_type="qmodel"`, the paper's method; learning rate 1) and computes
its statistics on 64 examples of each 512-example batch (`stats_batch_size`,
the paper's 1/8; the gradient uses the whole batch).

Run it (scikit-learn's bundled 8x8 digits by default; nothing is downloaded).
It trains on the digits' training split and ends with the loss and error on
the whole training split and on the 297 held-out test digits:

  python -m kfac.examples.autoencoder
  python -m kfac.examples.autoencoder --optimizer momentum --steps 3000
  python -m kfac.examples.autoencoder --data_dir /path/to/mnist  # 784 inputs
"""

import functools

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from kfac.examples import common

__all__ = [
  "fc_layer",
  "build_model",
  "train_autoencoder",
  "DEFAULTS",
  "BASELINE_DEFAULTS",
  "ENCODER_SIZES",
  "CODE_SIZE",
  "default_sizes",
]

# Encoder widths and code size for 64-pixel inputs (the paper's
# 1000-500-250-30 for 784 pixels, scaled to the digits).
ENCODER_SIZES = (128, 64, 32)
CODE_SIZE = 8


def default_sizes(input_size):
  """Encoder widths and code size for inputs of `input_size` pixels.

  Args:
    input_size: int. Number of input pixels.

  Returns:
    (encoder_sizes, code_size): the paper's `(1000, 500, 250), 30` for MNIST
    (784 pixels); `ENCODER_SIZES, CODE_SIZE` for the 8x8 digits (64); for
    other sizes the digits' proportions (2, 1 and 1/2 times the input, code
    1/8 of it).
  """
  if input_size == 784:
    return (1000, 500, 250), 30
  if input_size == 64:
    return ENCODER_SIZES, CODE_SIZE
  return (
    (2 * input_size, input_size, max(1, input_size // 2)),
    max(1, input_size // 8),
  )


# Defaults of `python -m kfac.examples.autoencoder` (overridable by flags).
DEFAULTS = common.Settings(
  steps=500,
  batch_size=512,
  learning_rate=1.0,
  damping=0.01,
  momentum=0.0,
  momentum_type="qmodel",
  estimation_mode="gradients",
  inv_update_interval=20,
  cov_ema_decay=0.95,
  norm_constraint=None,
  stats_batch_size=64,
  optimizer="kfac",
  log_every=50,
  seed=0,
)

# Defaults that replace `DEFAULTS` for the first-order baselines.
BASELINE_DEFAULTS = {
  "sgd": {"learning_rate": 1.0, "momentum": 0.0},
  "momentum": {"learning_rate": 0.2, "momentum": 0.9},
  "adam": {"learning_rate": 0.01},
}


def fc_layer(layer_id, inputs, output_size, activation=tf.nn.sigmoid):
  """Builds a fully connected layer `act = activation(inputs @ W + b)`.

  Variables `fc_<layer_id>/kernel` (`[input_size, output_size]`, normal with
  stddev `1/sqrt(input_size)`) and `fc_<layer_id>/bias` (zeros).

  Args:
    layer_id: int. Layer index, used in the variable scope `fc_<layer_id>`.
    inputs: float Tensor `[batch_size, input_size]`.
    output_size: int. Number of units.
    activation: callable or None. Non-linearity (None: linear).

  Returns:
    preactivations: Tensor `[batch_size, output_size]`.
    activations: Tensor `[batch_size, output_size]`.
    params: tuple `(kernel, bias)`.
  """
  with tf.compat.v1.variable_scope("fc_%d" % layer_id):
    input_size = int(inputs.shape[-1])
    kernel = tf.compat.v1.get_variable(
      "kernel",
      [input_size, output_size],
      dtype=inputs.dtype,
      initializer=tf.compat.v1.random_normal_initializer(
        stddev=1.0 / np.sqrt(input_size)
      ),
    )
    bias = tf.compat.v1.get_variable(
      "bias",
      [output_size],
      dtype=inputs.dtype,
      initializer=tf.compat.v1.zeros_initializer(),
    )
    preactivations = tf.nn.bias_add(tf.matmul(inputs, kernel), bias)
    activations = (
      preactivations if activation is None else activation(preactivations)
    )
  return preactivations, activations, (kernel, bias)


def _network(examples, encoder_sizes, code_size, layer_collection=None):
  """Builds one tower of the autoencoder; returns the output logits.

  Registers every layer with `layer_collection` when one is given.
  """
  input_size = int(examples.shape[-1])
  sizes = list(encoder_sizes) + [code_size] + list(reversed(encoder_sizes))
  activations = [tf.nn.sigmoid] * len(encoder_sizes) + [None]
  activations += [tf.nn.sigmoid] * len(encoder_sizes)
  inputs = examples
  for layer_id, (size, activation) in enumerate(zip(sizes, activations)):
    pre, act, params = fc_layer(layer_id, inputs, size, activation)
    if layer_collection is not None:
      layer_collection.register_fully_connected(params, inputs, pre)
    inputs = act
  logits, _, params = fc_layer(len(sizes), inputs, input_size, None)
  if layer_collection is not None:
    layer_collection.register_fully_connected(params, inputs, logits)
  return logits


def build_model(
  examples,
  layer_collection,
  encoder_sizes=None,
  code_size=None,
  stats_batch_size=None,
):
  """Builds the autoencoder and its losses, and registers it for K-FAC.

  Layers `fc_0 .. fc_<2n+1>`: the encoder (`encoder_sizes`, sigmoid), the
  linear code layer (`code_size`), the mirrored decoder (sigmoid) and the
  output layer (`input_size` logits).

  With `stats_batch_size`, K-FAC's statistics come from only the first
  `stats_batch_size` examples of the batch, as in the K-FAC paper (section
  8, which uses 1/8 of the mini-batch for them): a second tower sharing the
  variables runs on that slice, and it -- not the full-batch tower that the
  returned loss comes from -- is what gets registered. The covariance
  updates (and the "qmodel" momentum's curvature products) then cost a
  fraction of a full-batch pass.

  Args:
    examples: float Tensor `[batch_size, input_size]` with values in [0, 1].
    layer_collection: `LayerCollection` to register the layers and loss in.
    encoder_sizes: sequence of int, or None for `default_sizes`. Encoder
      widths.
    code_size: int, or None for `default_sizes`. Width of the linear code
      layer.
    stats_batch_size: int or None. Examples used for K-FAC's statistics
      (None: the whole batch, a single tower).

  Returns:
    loss: scalar Tensor, binary cross-entropy summed over pixels and
      averaged over the batch.
    error: scalar Tensor, squared reconstruction error summed over pixels
      and averaged over the batch.
  """
  default_encoder, default_code = default_sizes(int(examples.shape[-1]))
  encoder_sizes = default_encoder if encoder_sizes is None else encoder_sizes
  code_size = default_code if code_size is None else code_size
  if stats_batch_size is None:
    logits = _network(examples, encoder_sizes, code_size, layer_collection)
    stats_examples, stats_logits = examples, logits
  else:
    logits = _network(examples, encoder_sizes, code_size)
    stats_examples = examples[:stats_batch_size]
    with tf.compat.v1.variable_scope(
      tf.compat.v1.get_variable_scope(), reuse=True
    ):
      stats_logits = _network(
        stats_examples, encoder_sizes, code_size, layer_collection
      )
  layer_collection.register_multi_bernoulli_predictive_distribution(
    stats_logits, targets=stats_examples
  )
  loss = tf.reduce_mean(
    tf.reduce_sum(
      tf.nn.sigmoid_cross_entropy_with_logits(labels=examples, logits=logits),
      axis=1,
    )
  )
  error = tf.reduce_mean(
    tf.reduce_sum(tf.square(tf.nn.sigmoid(logits) - examples), axis=1)
  )
  return loss, error


def train_autoencoder(
  data_dir=None,
  num_epochs=None,
  use_fake_data=False,
  evaluate_on_training_set=True,
  evaluate_on_test_set=False,
  settings=None,
  encoder_sizes=None,
  code_size=None,
  verbose=True,
  record_every=0,
  checkpoint_dir=None,
  session_config=None,
  **overrides,
):
  """Trains the autoencoder with K-FAC (or a baseline).

  Args:
    data_dir: str or None. Directory with the MNIST IDX training files, or
      `None`/""/"digits" for scikit-learn's bundled 8x8 digits.
    num_epochs: int or None. Passes over the data (None: until `steps`).
    use_fake_data: bool. Use random 28x28 images instead.
    evaluate_on_training_set: bool. If True, the final loss and error are
      computed on the whole training set.
    evaluate_on_test_set: bool. If True and the data has a test split, the
      loss and error on it are computed after training too.
    settings: `common.Settings` or None (`DEFAULTS`).
    encoder_sizes: sequence of int or None. See `build_model`.
    code_size: int or None. See `build_model`.
    verbose: bool. If False, print nothing.
    record_every: int. See `common.train`.
    checkpoint_dir: str or None. See `common.train`.
    session_config: `tf.compat.v1.ConfigProto` or None.
    **overrides: fields of `common.Settings` that replace those of
      `settings`; an unknown name raises `TypeError`.

  Returns:
    The dict of `common.train` (keys `steps`, `global_step`, `seconds`,
    `loss`, `accuracy` -- here the reconstruction error --, `test_loss`,
    `test_accuracy`, `history`, `step_times`, `summary`).
  """
  cfg = (settings or DEFAULTS).replace(**overrides)
  tf.compat.v1.set_random_seed(cfg.seed)
  return common.train_on_mnist(
    lambda examples, _, layer_collection: build_model(
      examples,
      layer_collection,
      encoder_sizes=encoder_sizes,
      code_size=code_size,
      stats_batch_size=cfg.stats_batch_size,
    ),
    cfg,
    "autoencoder",
    data_dir,
    num_epochs,
    use_fake_data,
    evaluate_on_training_set,
    evaluate_on_test_set,
    use_labels=False,
    verbose=verbose,
    record_every=record_every,
    metric_name="error",
    checkpoint_dir=checkpoint_dir,
    session_config=session_config,
  )


# Trains the autoencoder with the command-line flags: `main(argv,
# flag_values)`.
main = common.example_main(
  functools.partial(train_autoencoder, evaluate_on_test_set=True),
  DEFAULTS,
  BASELINE_DEFAULTS,
)


if __name__ == "__main__":
  common.define_flags(DEFAULTS)
  flags.adopt_module_key_flags(common)
  app.run(main)
