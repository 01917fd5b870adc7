"""`tf.contrib.kfac.layer_collection` of TensorFlow 1.9.0 (a face of `kfac.layer_collection`)."""

from kfac import _faces

_faces.fill_module(globals(), "1.9", "layer_collection")
