"""`tf.contrib.kfac.optimizer` of TensorFlow 1.10.0 (a face of `kfac.optimizer`)."""

from kfac import _faces

_faces.fill_module(globals(), "1.10", "optimizer")
