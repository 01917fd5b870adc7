"""Re-exports a class under a second name."""

from edge_pkg.shapes import Bare

__all__ = ["Bare"]
