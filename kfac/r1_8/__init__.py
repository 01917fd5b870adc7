"""`tf.contrib.kfac` as released in TensorFlow 1.8.0.

The nine legacy modules, as attributes and importable submodules
(`from kfac.r1_8 import layer_collection`), with the public surface,
defaults and behaviour of that release. See `kfac._releases` for what
differs from the previous release and `kfac._faces` for how the face is
built from the engine.
"""

from kfac import _faces

_faces.fill_package(globals(), "1.8")
