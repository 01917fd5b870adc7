"""`tf.contrib.kfac` of TensorFlow 1.8.0, a face built by `kfac._faces`.

Construction is deferred: variables and update ops come from the thunks
of `make_vars_and_create_op_thunks()`; towers, new conv registrations.
"""

from kfac import _faces

_faces.fill_package(globals(), "1.8")
