"""`tf.contrib.kfac` of TensorFlow 1.6.0, a face built by `kfac._faces`.

Beware its silent defaults (`momentum=0.9`, colocated gradients) and the
update thunks that replace `inv_updates_dict` (`kfac._releases`).
"""

from kfac import _faces

_faces.fill_package(globals(), "1.6")
