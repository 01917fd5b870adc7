"""Shapes of pages: classes, properties and class members.

A second paragraph of module text.

Args:
  unused: Sections of a module docstring are not rendered.
"""

__all__ = ["Bare", "Derived", "WithProperties", "LIMIT", "NAMES", "helper"]

LIMIT = 10
NAMES = ("a", "b")
NOT_LISTED = 2


class Bare(object):
  """A class with no documented base."""

  def __init__(self, alpha, beta=None):
    """Makes a Bare.

    Args:
      alpha: First argument,
        continued.
      beta: Second argument.
    """
    self._alpha = alpha
    self._beta = beta

  def empty(self):
    pass

  def sections_with_blank(self, x):
    """Has a blank line between sections.

    Args:
      x: An input.

    Returns:
      Something.

    Raises:
      ValueError: If bad.
    """
    return x

  def returns_header_only(self):
    """Returns only.

    Returns:
      A header text only,
      over two lines.
    """
    return None


class Derived(Bare):
  """Derived from Bare.

  Attributes:
    gamma: An attribute.
  """

  def sections_without_blank(self, x, *args, **kwargs):
    """No blank lines.
    Args:
      x: An input.
      *args: More.
      **kwargs: Even more.
    Returns:
      Nothing.
    """
    del x, args, kwargs

  @classmethod
  def build(cls, size=(1, 1), mode='regular', axis=-1, limit=LIMIT):
    """Class method with defaults given as source text."""
    return cls(size, (mode, axis, limit))

  @staticmethod
  def static(value, *, scale=1.0, name=None):
    """Static method with keyword-only arguments."""
    return value, scale, name


class WithProperties(object):
  """Has properties and class members."""

  RED = 1
  BLUE = "b"

  @property
  def documented(self):
    """The documented property."""
    return 1

  @property
  def undocumented(self):
    return 2

  def method(self):
    """See @{edge_pkg.shapes.Bare} and @{edge_pkg.shapes.Bare.empty$its method}."""
    return 3


def helper(x, cls=Bare, missing=NOT_LISTED):
  """Helper with a documented symbol as a default.

  Args:
    x: A value.
    cls: A class.
    missing: A constant.

  Returns:
    `x`.
  """
  del cls, missing
  return x
