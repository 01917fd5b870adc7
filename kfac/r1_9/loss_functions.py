"""`tf.contrib.kfac.loss_functions` of TensorFlow 1.9.0 (a face of `kfac.loss_functions`)."""

from kfac import _faces

_faces.fill_module(globals(), "1.9", "loss_functions")
