"""`tf.contrib.kfac.fisher_blocks` of TensorFlow 1.6.0 (a face of `kfac.fisher_blocks`)."""

from kfac import _faces

_faces.fill_module(globals(), "1.6", "fisher_blocks")
