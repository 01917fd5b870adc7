"""`tf.contrib.kfac.loss_functions` of TensorFlow 1.10.0 (a face of `kfac.loss_functions`)."""

from kfac import _faces

_faces.fill_module(globals(), "1.10", "loss_functions")
