"""`tf.contrib.kfac.fisher_blocks` of TensorFlow 1.7.0 (a face of `kfac.fisher_blocks`)."""

from kfac import _faces

_faces.fill_module(globals(), "1.7", "fisher_blocks")
