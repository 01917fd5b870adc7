"""What an upgrade returns, and the error for unparsable input."""

import collections
import dataclasses
from typing import Any


class UpgradeError(Exception):
  """Raised when a program cannot be parsed.

  Attributes:
    filename: the file name used in the message.
    lineno: 1-based line of the error (or None).
    message: the parser's description of the problem.
  """

  def __init__(self, filename, lineno, message):
    """Creates the error.

    Args:
      filename: str, name of the file being upgraded.
      lineno: int or None, 1-based line of the error.
      message: str, description of the problem.
    """
    self.filename = filename
    self.lineno = lineno
    self.message = message
    where = filename if lineno is None else "%s:%d" % (filename, lineno)
    super(UpgradeError, self).__init__("%s: %s" % (where, message))


Finding = collections.namedtuple("Finding", ["line", "message"])
Finding.__doc__ = """One report item: `line` (1-based, in the input; 0 for the
module as a whole) and `message`."""


@dataclasses.dataclass(eq=False)
class UpgradeResult(object):
  """What `upgrade_source` did to one program.

  Attributes:
    source: the upgraded program (`bytes` if the input was `bytes`, else
      `str`).
    changes: list of `Finding`s, one per rewritten place.
    attention: list of `Finding`s, one per place that needs a human.
    changed: bool, whether `source` differs from the input.
    release: the `_release.Decision` (which release the program was taken
      for, and why), or None for a kfac 0.2.x program or one without kfac.
  """

  source: Any
  changes: list
  attention: list
  changed: bool
  release: Any = None

  @property
  def release_problem(self):
    """Whether the release could not be chosen (the program is untouched)."""
    return self.release is not None and self.release.problem is not None
