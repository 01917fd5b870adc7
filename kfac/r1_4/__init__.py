"""`tf.contrib.kfac` as released in TensorFlow 1.4.0.

The nine legacy modules, as attributes and importable submodules
(`from kfac.r1_4 import layer_collection`). It differs from `kfac` (the API
of the seed's documentation pages) only in `fisher_blocks.
FullyConnectedDiagonalFB`, which takes the layer's `inputs` and `outputs` in
its constructor. See `kfac._releases` for how release faces are declared.
"""

from kfac import _faces

_faces.fill_package(globals(), "1.4")
