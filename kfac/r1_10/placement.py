"""`tensorflow.contrib.kfac.python.ops.placement` of TensorFlow 1.10.0 (never exported).

Importable where programs imported it: `from kfac.r1_10 import placement`.
"""

from kfac import _faces

_faces.fill_extra_module(globals(), "1.10", "placement")
