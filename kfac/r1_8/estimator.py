"""`tf.contrib.kfac.estimator` of TensorFlow 1.8.0 (a face of `kfac._deferred_estimator`)."""

from kfac import _faces

_faces.fill_module(globals(), "1.8", "estimator")
