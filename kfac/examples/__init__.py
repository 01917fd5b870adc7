"""Examples of training with K-FAC (`python -m kfac.examples.<name>`).

* `mlp` -- a tanh multi-layer perceptron classifying digits.
* `convnet` -- a small ConvNet classifying digits, on one machine
  (`minimize_loss_single_machine`) or a TensorFlow cluster
  (`minimize_loss_distributed`).
* `convnet_distributed` -- starts a parameter-server cluster on 127.0.0.1 in
  separate processes and trains the ConvNet on it.
* `autoencoder` -- the deep autoencoder of the K-FAC paper, scaled to 8x8
  digits.
* `mnist` -- data: scikit-learn's bundled 8x8 digits by default, or the MNIST
  IDX files in `--data_dir`. Nothing is downloaded.
* `mlp_mnist_main`, `convnet_mnist_main` -- the 2017 entry points
  (`--data_dir`, `--num_epochs`).
* `common` -- settings, flags, optimizers and the training loop (a
  `MonitoredTrainingSession` with K-FAC and progress hooks) shared by the
  examples.

Every program takes absl flags (`--steps`, `--batch_size`,
`--learning_rate`, `--damping`, `--momentum`, `--momentum_type`,
`--estimation_mode`, `--inv_update_interval`, `--optimizer`,
`--checkpoint_dir`, `--replay_on_resume`, ...; see `--helpfull`), prints a progress line every `--log_every` steps and ends with
a one-line summary: the loss and accuracy on the whole training split and on
the held-out test split (297 of the digits, never trained on; with MNIST
files, the `t10k` files if present).
"""
