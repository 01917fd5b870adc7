"""Module without __all__."""

import collections

from edge_pkg.shapes import Bare

RATE = 0.5
_HIDDEN = 1
TABLE = collections.OrderedDict()


def no_doc(a):
  return a


def one_line():
  """Just one line."""


def _private():
  """Not public."""
