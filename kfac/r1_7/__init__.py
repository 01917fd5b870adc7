"""`tf.contrib.kfac` of TensorFlow 1.7.0, a face built by `kfac._faces`.

It adds embedding layers, sparse gradients and Levenberg-Marquardt
damping adaptation to 1.6 (`kfac._releases` lists every change).
"""

from kfac import _faces

_faces.fill_package(globals(), "1.7")
