r"""The 2017 `convnet_mnist_main.py`: `convnet.train_mnist_single_machine`.

  python -m kfac.examples.convnet_mnist_main                  # 8x8 digits
  python -m kfac.examples.convnet_mnist_main --data_dir /path/to/mnist

Trains with the 2017 hyper-parameters of `minimize_loss_single_machine`
(learning rate 1e-4, damping 1e-3, momentum 0.9) for `--num_epochs` epochs
(2017: 200). 2017's `--data_dir` defaulted to `/tmp/mnist` and the data was
downloaded there; here an empty `--data_dir` (the default) selects
scikit-learn's bundled digits and a directory must already hold the MNIST
IDX files. The multi-tower mode (`--num_towers`) of a later version needs a
later `LayerCollection` and is not provided. For tuned settings, progress
lines and flags, run `python -m kfac.examples.convnet`.
"""

from absl import app
from absl import flags

from kfac.examples import convnet
from kfac.examples import common
from kfac.examples import mlp_mnist_main


def main(argv, flag_values=flags.FLAGS):
  """Runs `convnet.train_mnist_single_machine` with the flags.

  Args:
    argv: list of str. Positional command-line arguments (unused).
    flag_values: the parsed `flags.FlagValues`.
  """
  del argv
  mlp_mnist_main.run_legacy_main(
    convnet.train_mnist_single_machine, flag_values
  )


if __name__ == "__main__":
  mlp_mnist_main.define_flags()
  flags.adopt_module_key_flags(common)
  flags.adopt_module_key_flags(mlp_mnist_main)
  app.run(main)
