"""`tf.contrib.kfac.fisher_blocks` of TensorFlow 1.8.0 (a face of `kfac._deferred_blocks`)."""

from kfac import _faces

_faces.fill_module(globals(), "1.8", "fisher_blocks")
