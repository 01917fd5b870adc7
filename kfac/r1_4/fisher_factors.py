"""`tf.contrib.kfac.fisher_factors` of TensorFlow 1.4.0 (a face of `kfac.fisher_factors`)."""

from kfac import _faces

_faces.fill_module(globals(), "1.4", "fisher_factors")
