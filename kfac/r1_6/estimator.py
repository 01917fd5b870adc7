"""`tf.contrib.kfac.estimator` of TensorFlow 1.6.0 (a face of `kfac.estimator`)."""

from kfac import _faces

_faces.fill_module(globals(), "1.6", "estimator")
