"""`tf.contrib.kfac.curvature_matrix_vector_products` of TensorFlow 1.10.0 (a face of `kfac.curvature_matrix_vector_products`)."""

from kfac import _faces

_faces.fill_module(globals(), "1.10", "curvature_matrix_vector_products")
