"""`tensorflow.contrib.kfac.python.ops.linear_operator` of TensorFlow 1.10.0 (never exported).

Importable where programs imported it: `from kfac.r1_10 import linear_operator`.
"""

from kfac import _faces

_faces.fill_extra_module(globals(), "1.10", "linear_operator")
