"""`tf.contrib.kfac.op_queue` of TensorFlow 1.10.0 (a face of `kfac.op_queue`)."""

from kfac import _faces

_faces.fill_module(globals(), "1.10", "op_queue")
