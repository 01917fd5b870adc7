"""The public surface of `kfac` matches the legacy `tf.contrib.kfac` pages.

`tests/data/api_surface.md` lists, for each of the 65 legacy API doc pages,
the documented names, base classes and signatures. Every entry is checked
here against the corresponding `kfac` object: names exist, base classes
match, parameters have the same names, order and defaults.
"""

import ast
import collections
import importlib
import inspect
import os
import re

from absl.testing import parameterized
import tensorflow as tf

import kfac

_SURFACE_FILE = os.path.join(os.path.dirname(__file__), "data",
                             "api_surface.md")
_LEGACY_PREFIX = "tf.contrib.kfac"
# Members of OrderedDict that only exist on Python 2 (see api_surface.md).
_PY2_ONLY = {"iteritems", "iterkeys", "itervalues", "viewitems", "viewkeys",
             "viewvalues"}

Page = collections.namedtuple("Page", "name kind lines")


def _parse_pages():
  """Splits the surface file into one Page per legacy doc page."""
  pages = []
  with open(_SURFACE_FILE, encoding="utf-8") as f:
    text = f.read()
  header = re.compile(r"^## `([\w.]+)` \((module|class|function)\)")
  for block in text.split("\n## ")[1:]:
    block = "## " + block
    match = header.match(block)
    if not match:
      continue
    lines = [line[2:].strip() for line in block.splitlines()[1:]
             if line.startswith("- ")]
    name = match.group(1)
    assert name.startswith(_LEGACY_PREFIX), name
    pages.append(Page("kfac" + name[len(_LEGACY_PREFIX):], match.group(2),
                      lines))
  return pages


_PAGES = _parse_pages()


def _resolve(full_name):
  """Returns (object, defining module) for a dotted `kfac...` name."""
  parts = full_name.split(".")
  obj = kfac
  module = kfac
  for part in parts[1:]:
    obj = getattr(obj, part)
    if inspect.ismodule(obj):
      module = obj
  return obj, module


def _backticked(line):
  return re.findall(r"`([^`]+)`", line)


def _parse_signature(text):
  """Parses 'name( a, b=1 )' into (name, [(param, default-or-None)])."""
  match = re.match(r"^(\w+)\((.*)\)$", text.strip())
  assert match, text
  name, args = match.group(1), match.group(2).strip()
  params = []
  if args:
    for arg in args.split(","):
      arg = arg.strip()
      if "=" in arg:
        key, default = arg.split("=", 1)
        params.append((key.strip(), default.strip()))
      else:
        params.append((arg, None))
  return name, params


def _default_matches(spec, actual, module, cls):
  """Compares a default as written on the legacy page with a real value."""
  if spec == repr(actual):
    return True
  try:
    return ast.literal_eval(spec) == actual
  except (ValueError, SyntaxError):
    pass
  if spec.startswith("tf."):
    return eval(spec, {"tf": tf}) == actual  # pylint: disable=eval-used
  for namespace in (cls, module):
    if namespace is not None and hasattr(namespace, spec):
      return getattr(namespace, spec) == actual
  return False


def _actual_params(func, is_method):
  params = list(inspect.signature(func).parameters.values())
  if is_method and params and params[0].name in ("self", "cls"):
    if not (params[0].name == "cls" and func.__name__ == "fromkeys"):
      params = params[1:]
  result = []
  for p in params:
    if p.kind is p.VAR_POSITIONAL:
      result.append(("*" + p.name, p.empty))
    elif p.kind is p.VAR_KEYWORD:
      result.append(("**" + p.name, p.empty))
    else:
      result.append((p.name, p.default))
  return result


def _is_own_code(cls, member_name):
  """True if the member is written in Python (not a C builtin of dict)."""
  for klass in cls.__mro__:
    if member_name in vars(klass):
      value = vars(klass)[member_name]
      return inspect.isfunction(value)
  return False


class ApiSurfaceTest(parameterized.TestCase):

  def _check_signature(self, owner_name, func, spec_params, module, cls,
                       is_method):
    actual = _actual_params(func, is_method)
    # Later-release keyword arguments may follow the legacy ones (r1.5's
    # extras are allowed by the spec), but only with defaults.
    extra = actual[len(spec_params):]
    actual = actual[:len(spec_params)]
    self.assertEqual(
        [p for p, _ in actual], [p for p, _ in spec_params],
        "{}: parameter names/order differ".format(owner_name))
    for name, default in extra:
      self.assertIsNot(default, inspect.Parameter.empty,
                       "{}: extra parameter {} needs a default".format(
                           owner_name, name))
    for (name, spec_default), (_, actual_default) in zip(spec_params, actual):
      if spec_default is None:
        self.assertIs(actual_default, inspect.Parameter.empty,
                      "{}: {} must have no default".format(owner_name, name))
      else:
        self.assertIsNot(actual_default, inspect.Parameter.empty,
                         "{}: {} needs default {}".format(
                             owner_name, name, spec_default))
        self.assertTrue(
            _default_matches(spec_default, actual_default, module, cls),
            "{}: default of {} is {!r}, expected {}".format(
                owner_name, name, actual_default, spec_default))

  def _check_module(self, page, module):
    public = getattr(module, "__all__", None)
    for line in page.lines:
      label = line.split(":", 1)[0]
      for name in _backticked(line):
        self.assertTrue(hasattr(module, name),
                        "{} lacks {}".format(page.name, name))
        value = getattr(module, name)
        if label == "Modules":
          self.assertTrue(inspect.ismodule(value), name)
        elif label == "Classes":
          self.assertTrue(inspect.isclass(value), name)
        elif label == "Functions":
          self.assertTrue(inspect.isfunction(value), name)
        if public is not None and label != "Modules":
          self.assertIn(name, public,
                        "{}.__all__ must list {}".format(page.name, name))

  def _check_class(self, page, cls, module):
    for line in page.lines:
      if line.startswith("bases:"):
        expected = _backticked(line)
        self.assertEqual([b.__name__ for b in cls.__bases__], expected,
                         "{} bases".format(page.name))
      elif line.startswith("properties / class members:"):
        for name in _backticked(line):
          self.assertTrue(hasattr(cls, name),
                          "{} lacks {}".format(page.name, name))
      else:
        name, spec_params = _parse_signature(_backticked(line)[0]
                                             if "`" in line else line)
        if name in _PY2_ONLY:
          continue
        self.assertTrue(hasattr(cls, name),
                        "{} lacks method {}".format(page.name, name))
        if _is_own_code(cls, name):
          self._check_signature("{}.{}".format(page.name, name),
                                getattr(cls, name), spec_params, module, cls,
                                is_method=True)

  @parameterized.named_parameters(
      (page.name.replace(".", "_"), page) for page in _PAGES)
  def test_page(self, page):
    obj, module = _resolve(page.name)
    if page.kind == "module":
      self.assertTrue(inspect.ismodule(obj))
      self._check_module(page, obj)
    elif page.kind == "class":
      self.assertTrue(inspect.isclass(obj))
      self._check_class(page, obj, module)
    else:
      self.assertTrue(inspect.isfunction(obj))
      _, spec_params = _parse_signature(_backticked(page.lines[0])[0])
      self._check_signature(page.name, obj, spec_params, module, None,
                            is_method=False)

  def test_all_pages_parsed(self):
    kinds = collections.Counter(page.kind for page in _PAGES)
    self.assertEqual(kinds, {"module": 10, "class": 34, "function": 21})

  def test_legacy_modules_exported(self):
    for name in ("curvature_matrix_vector_products", "estimator",
                 "fisher_blocks", "fisher_factors", "layer_collection",
                 "loss_functions", "op_queue", "optimizer", "utils"):
      module = importlib.import_module("kfac." + name)
      self.assertIs(getattr(kfac, name), module)
