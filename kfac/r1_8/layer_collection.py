"""`tf.contrib.kfac.layer_collection` of TensorFlow 1.8.0 (a face of `kfac.layer_collection`)."""

from kfac import _faces

_faces.fill_module(globals(), "1.8", "layer_collection")
