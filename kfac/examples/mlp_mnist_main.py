r"""The 2017 `mlp_mnist_main.py`: trains `mlp.train_mnist` for some epochs.

  python -m kfac.examples.mlp_mnist_main                      # 8x8 digits
  python -m kfac.examples.mlp_mnist_main --data_dir /path/to/mnist

2017's `--data_dir` defaulted to `/tmp/mnist` and the data was downloaded
there; here an empty `--data_dir` (the default) selects scikit-learn's
bundled digits and a directory must already hold the MNIST IDX files.
`--num_epochs` defaults to 2017's 200.
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

from absl import app
from absl import flags
import tensorflow as tf

from kfac.examples import common
from kfac.examples import mlp


def define_flags():
  """Defines the common example flags and `--num_epochs` (idempotent)."""
  common.define_flags()
  if "num_epochs" not in flags.FLAGS:
    flags.DEFINE_integer("num_epochs", 200, "Passes over the training data.")


def run_legacy_main(train_fn):
  """Calls a 2017 training function with `--data_dir` and `--num_epochs`.

  Args:
    train_fn: callable `(data_dir, num_epochs, use_fake_data=...)`, e.g.
      `mlp.train_mnist`.

  Returns:
    What `train_fn` returns.
  """
  common.quiet_logs()
  common.check_data_flags({"data_dir": flags.FLAGS.data_dir,
                           "use_fake_data": flags.FLAGS.use_fake_data})
  with tf.Graph().as_default():
    return train_fn(flags.FLAGS.data_dir or "", flags.FLAGS.num_epochs,
                    use_fake_data=bool(flags.FLAGS.use_fake_data))


def main(argv):
  """Runs `mlp.train_mnist` with `--data_dir` and `--num_epochs`.

  Args:
    argv: list of str. Positional command-line arguments (unused).
  """
  del argv
  run_legacy_main(mlp.train_mnist)


if __name__ == "__main__":
  define_flags()
  flags.adopt_module_key_flags(common)
  app.run(main)
