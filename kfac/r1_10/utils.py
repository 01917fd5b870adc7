"""`tf.contrib.kfac.utils` of TensorFlow 1.10.0 (a face of `kfac.utils`)."""

from kfac import _faces

_faces.fill_module(globals(), "1.10", "utils")
