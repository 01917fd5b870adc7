"""Deliberate docstring problems for the coverage check."""

from coverage_pkg import problems

__all__ = ["problems", "not_there"]
