"""`tf.contrib.kfac.fisher_factors` of TensorFlow 1.8.0 (a face of `kfac._deferred_factors`)."""

from kfac import _faces

_faces.fill_module(globals(), "1.8", "fisher_factors")
