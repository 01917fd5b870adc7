"""`tf.contrib.kfac` of TensorFlow 1.10.0, a face built by `kfac._faces`.

The 1.9 API; building a `KfacOptimizer` also warns that the package is
deprecated (`DeprecationWarning`).
"""

from kfac import _faces

_faces.fill_package(globals(), "1.10")
