"""Edge cases for the docs generator.

No `__all__` here: the public names are the submodules imported below.
"""

import os

from edge_pkg import plain
from edge_pkg import shapes
from edge_pkg import zalias

del os
