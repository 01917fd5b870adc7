"""`tf.contrib.kfac` of TensorFlow 1.9.0, a face built by `kfac._faces`.

Its factors hand out linear operators and Cholesky products, and its
silent defaults change: zero-initialised, zero-debiased covariances.
"""

from kfac import _faces

_faces.fill_package(globals(), "1.9")
