"""A module whose public symbols break the docstring rules on purpose."""

import collections

__all__ = ["Good", "NoDoc", "Mixed", "Registry", "good_function",
           "undocumented_function", "extra_arg", "missing_arg", "wrong_order",
           "no_args_section", "star_args"]


class Good(object):
  """Fully documented.

  Args:
    size: Documented in the class docstring instead of `__init__`.
  """

  def __init__(self, size):
    """Makes a Good."""
    self._size = size

  @property
  def size(self):
    """The size."""
    return self._size

  @classmethod
  def create(cls, size):
    """Makes one.

    Args:
      size: The size.

    Returns:
      A Good.
    """
    return cls(size)


class NoDoc(object):

  def method(self):
    return None


class Mixed(Good):
  """Inherits the documented members of Good."""

  @property
  def bare_property(self):
    return 1

  def bad_args(self, a, b):
    """Args do not match.

    Args:
      a: Fine.
      c: Not a parameter.
    """
    del a, b


class Registry(collections.OrderedDict):
  """Built-in members inherited from OrderedDict are not checked."""


def good_function(x, *args, **kwargs):
  """Documented.

  Args:
    x: A value.
    *args: More values.
    **kwargs: Options.
  """
  del x, args, kwargs


def undocumented_function(x):
  return x


def extra_arg(x):
  """Extra name.

  Args:
    x: A value.
    y: Not a parameter.
  """
  return x


def missing_arg(x, y):
  """Missing name.

  Args:
    x: A value.
  """
  return x, y


def wrong_order(x, y):
  """Wrong order.

  Args:
    y: A value.
    x: A value.
  """
  return x, y


def no_args_section(x):
  """Has parameters but no Args section."""
  return x


def star_args(*args):
  """Documents the wrong name.

  Args:
    args: Written without the star; accepted.
  """
  return args
