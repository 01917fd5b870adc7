"""`tf.contrib.kfac.optimizer` of TensorFlow 1.7.0 (a face of `kfac.optimizer`)."""

from kfac import _faces

_faces.fill_module(globals(), "1.7", "optimizer")
