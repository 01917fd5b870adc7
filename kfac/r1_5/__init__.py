"""`tf.contrib.kfac` of TensorFlow 1.5.0, a face built by `kfac._faces`.

Its news: multi-tower registration with `reuse=`, named losses, default
approximations per collection and float64 factors (`kfac._releases`).
"""

from kfac import _faces

_faces.fill_package(globals(), "1.5")
