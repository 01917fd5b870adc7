"""`tensorflow.contrib.kfac.python.ops.placement` of TensorFlow 1.9.0 (never exported).

Importable where programs imported it: `from kfac.r1_9 import placement`.
"""

from kfac import _faces

_faces.fill_extra_module(globals(), "1.9", "placement")
