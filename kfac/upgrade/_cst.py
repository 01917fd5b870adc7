"""libcst, imported once with a message that says how to install it."""

import warnings

with warnings.catch_warnings():
  # libcst 1.0 imports mypy_extensions.TypedDict, which warns on import.
  warnings.simplefilter("ignore", DeprecationWarning)
  try:
    import libcst as cst
    from libcst import metadata as cst_metadata
  except ImportError as e:
    raise ImportError(
      "kfac-upgrade needs libcst 1.1 or newer ({}). Install it with "
      "`pip install 'kfac-contrib[upgrade]'` or `pip install libcst`.".format(e)
    ) from e

__all__ = ["cst", "cst_metadata"]
