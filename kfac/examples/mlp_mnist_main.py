r"""The 2017 `mlp_mnist_main.py`: trains `mlp.train_mnist` for some epochs.

  python -m kfac.examples.mlp_mnist_main                      # 8x8 digits
  python -m kfac.examples.mlp_mnist_main --data_dir /path/to/mnist

2017's `--data_dir` defaulted to `/tmp/mnist` and the data was downloaded
there; here an empty `--data_dir` (the default) selects scikit-learn's
bundled digits and a directory must already hold the MNIST IDX files.
`--num_epochs` defaults to 2017's 200.
"""

from absl import app
from absl import flags
import tensorflow as tf

from kfac.examples import common
from kfac.examples import mlp


def define_flags(flag_values=flags.FLAGS):
  """Defines `--data_dir`, `--use_fake_data` and `--num_epochs`.

  Args:
    flag_values: `flags.FlagValues` to define the flags in.
  """
  common.define_data_flags(flag_values)
  flags.DEFINE_integer(
    "num_epochs",
    200,
    "Passes over the training data.",
    lower_bound=1,
    flag_values=flag_values,
  )


def run_legacy_main(train_fn, flag_values=flags.FLAGS):
  """Calls a 2017 training function with `--data_dir` and `--num_epochs`.

  Args:
    train_fn: callable `(data_dir, num_epochs, use_fake_data=...)`, e.g.
      `mlp.train_mnist`.
    flag_values: the parsed `flags.FlagValues`.

  Returns:
    What `train_fn` returns.
  """
  common.quiet_logs()
  with tf.Graph().as_default():
    return train_fn(
      flag_values.data_dir,
      flag_values.num_epochs,
      use_fake_data=flag_values.use_fake_data,
    )


def main(argv, flag_values=flags.FLAGS):
  """Runs `mlp.train_mnist` with `--data_dir` and `--num_epochs`.

  Args:
    argv: list of str. Positional command-line arguments (unused).
    flag_values: the parsed `flags.FlagValues`.
  """
  del argv
  run_legacy_main(mlp.train_mnist, flag_values)


if __name__ == "__main__":
  define_flags()
  flags.adopt_module_key_flags(common)
  app.run(main)
