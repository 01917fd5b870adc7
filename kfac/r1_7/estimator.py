"""`tf.contrib.kfac.estimator` of TensorFlow 1.7.0 (a face of `kfac.estimator`)."""

from kfac import _faces

_faces.fill_module(globals(), "1.7", "estimator")
