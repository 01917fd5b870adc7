"""Random test matrices shared by the test modules (NumPy only)."""

import numpy as np


def random_psd(seed, size):
  """A random symmetric positive semi-definite `[size, size]` matrix.

  `A A^T` for a standard normal `A` drawn from `RandomState(seed)`; it is
  positive definite with probability one.
  """
  a = np.random.RandomState(seed).randn(size, size)
  return a.dot(a.T)
