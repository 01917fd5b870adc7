"""The public surface of every release namespace matches its surface file.

`tests/data/api_surface.md` lists, for each of the 65 legacy API doc pages of
the seed, the documented names, base classes and signatures; `kfac` must
match it. `tests/data/surface/r1.N.md` does the same for TensorFlow release
1.N (`kfac.r1_N`), including the internal names that programs of that release
imported from `tensorflow.contrib.kfac.python.ops.<module>` (reachable as
attributes of the face module). Every entry is checked against the
corresponding object: names exist, base classes match, parameters have the
same names, order and defaults, constants have their values, and each
release module's `__all__` is exactly its allow-list.
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
from kfac import _releases

_DATA = os.path.join(os.path.dirname(__file__), "data")
_SURFACE_FILE = os.path.join(_DATA, "api_surface.md")
_LEGACY_PREFIX = "tf.contrib.kfac"
_INTERNAL_PREFIX = "tensorflow.contrib.kfac.python.ops"
# Members of OrderedDict that only exist on Python 2 (see api_surface.md).
_PY2_ONLY = {
  "iteritems",
  "iterkeys",
  "itervalues",
  "viewitems",
  "viewkeys",
  "viewvalues",
}
_MODULES = (
  "curvature_matrix_vector_products",
  "estimator",
  "fisher_blocks",
  "fisher_factors",
  "layer_collection",
  "loss_functions",
  "op_queue",
  "optimizer",
  "utils",
)

Page = collections.namedtuple("Page", "name kind lines internal")


def _surface_file(version):
  if version == "seed":
    return _SURFACE_FILE
  return os.path.join(_DATA, "surface", "r{}.md".format(version))


def _parse_pages(path=_SURFACE_FILE, package="kfac"):
  """Splits a surface file into one Page per doc page (or internal name).

  Args:
    path: The surface file.
    package: The namespace the pages describe ("kfac", "kfac.r1_6", ...).

  Returns:
    A list of Pages named by their dotted name under `package`.
  """
  pages = []
  with open(path, encoding="utf-8") as f:
    text = f.read()
  header = re.compile(r"^#{2,3} `([\w.]+)` \((module|class|function)\)")
  internal_header = re.compile(
    r"^## `" + re.escape(_INTERNAL_PREFIX) + r"\.(\w+)` — names outside"
  )
  for block in re.split(r"\n(?=#{2,3} )", text):
    lines = [
      line[2:].strip()
      for line in block.splitlines()[1:]
      if line.startswith("- ")
    ]
    match = internal_header.match(block)
    if match:
      pages.append(
        Page("{}.{}".format(package, match.group(1)), "internal", lines, True)
      )
      continue
    match = header.match(block)
    if not match:
      continue
    name = match.group(1)
    if name.startswith(_LEGACY_PREFIX):
      rest, internal = name[len(_LEGACY_PREFIX) :], False
    else:
      assert name.startswith(_INTERNAL_PREFIX), name
      rest, internal = name[len(_INTERNAL_PREFIX) :], True
    pages.append(Page(package + rest, match.group(2), lines, internal))
  return pages


_PAGES = _parse_pages()
# (namespace, pages) of every release face that is built.
_RELEASE_PAGES = [
  (
    _releases.get(v).package,
    _parse_pages(_surface_file(v), _releases.get(v).package),
  )
  for v in _releases.BUILT
]


def _resolve(full_name):
  """Returns (object, defining module) for a dotted `kfac...` name."""
  parts = full_name.split(".")
  obj = kfac
  module = kfac
  for i, part in enumerate(parts[1:], 1):
    if not hasattr(obj, part) and inspect.ismodule(obj):
      importlib.import_module(".".join(parts[: i + 1]))
    obj = getattr(obj, part)
    if inspect.ismodule(obj):
      module = obj
  return obj, module


def _backticked(line):
  return re.findall(r"`([^`]+)`", line)


def _split_top_level(args):
  """Splits a parameter list at the commas outside brackets."""
  parts, depth, current = [], 0, ""
  for char in args:
    if char in "([{":
      depth += 1
    elif char in ")]}":
      depth -= 1
    if char == "," and depth == 0:
      parts.append(current)
      current = ""
    else:
      current += char
  parts.append(current)
  return [part for part in parts if part.strip()]


def _parse_signature(text):
  """Parses 'name( a, b=1 )' into (name, [(param, default-or-None)])."""
  match = re.match(r"^(\w+)\((.*)\)$", text.strip())
  assert match, text
  name, args = match.group(1), match.group(2).strip()
  params = []
  if args:
    for arg in _split_top_level(args):
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
  if spec.startswith("dtypes."):
    return getattr(tf.dtypes, spec.split(".", 1)[1]) == actual
  for namespace in (cls, module):
    value = namespace
    for part in spec.split("."):
      value = getattr(value, part, None) if value is not None else None
    if value is not None:
      return value == actual
  return False


def _parse_constant(text):
  """Splits '`NAME = value`' into (name, value source or None)."""
  if "=" not in text:
    return text.strip(), None
  name, value = text.split("=", 1)
  return name.strip(), value.strip()


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
      # Members inherited from TensorFlow classes (e.g. the linear
      # operators' constructors) are TensorFlow's, not described here.
      return inspect.isfunction(value) and (
        getattr(value, "__module__", "") or ""
      ).startswith("kfac")
  return False


class _SurfaceChecks(parameterized.TestCase):
  """Checks of one page against the object it describes."""

  # Whether parameters after the documented ones are allowed (with
  # defaults). The seed's pages allow later-release keywords; a release
  # face must have exactly its release's signatures.
  allow_extra_params = True

  def _check_signature(
    self, owner_name, func, spec_params, module, cls, is_method
  ):
    actual = _actual_params(func, is_method)
    extra = actual[len(spec_params) :]
    actual = actual[: len(spec_params)]
    self.assertEqual(
      [p for p, _ in actual],
      [p for p, _ in spec_params],
      "{}: parameter names/order differ".format(owner_name),
    )
    if not self.allow_extra_params:
      self.assertEqual(
        extra, [], "{}: unexpected parameters".format(owner_name)
      )
    for name, default in extra:
      self.assertIsNot(
        default,
        inspect.Parameter.empty,
        "{}: extra parameter {} needs a default".format(owner_name, name),
      )
    for (name, spec_default), (_, actual_default) in zip(spec_params, actual):
      if spec_default is None:
        self.assertIs(
          actual_default,
          inspect.Parameter.empty,
          "{}: {} must have no default".format(owner_name, name),
        )
      else:
        self.assertIsNot(
          actual_default,
          inspect.Parameter.empty,
          "{}: {} needs default {}".format(owner_name, name, spec_default),
        )
        self.assertTrue(
          _default_matches(spec_default, actual_default, module, cls),
          "{}: default of {} is {!r}, expected {}".format(
            owner_name, name, actual_default, spec_default
          ),
        )

  def _check_constants(self, page_name, owner, texts):
    for text in texts:
      name, value = _parse_constant(text)
      self.assertTrue(
        hasattr(owner, name), "{} lacks {}".format(page_name, name)
      )
      if value is None:
        continue
      try:
        expected = ast.literal_eval(value)
      except (ValueError, SyntaxError):
        continue  # e.g. a dict of functions, written as source.
      self.assertEqual(
        getattr(owner, name), expected, "{}.{}".format(page_name, name)
      )

  def _check_module(self, page, module, exact_all=False):
    public = getattr(module, "__all__", None)
    listed = set()
    for line in page.lines:
      label = line.split(":", 1)[0]
      if label.startswith("Listed in the allow-list but defined nowhere"):
        for name in _backticked(line):
          self.assertNotIn(
            name,
            public or (),
            "{}.__all__ lists undefined {}".format(page.name, name),
          )
        continue
      if label not in ("Modules", "Classes", "Functions", "Other Members"):
        continue
      if label == "Other Members":
        self._check_constants(page.name, module, _backticked(line))
        listed.update(_parse_constant(t)[0] for t in _backticked(line))
        continue
      for name in _backticked(line):
        self.assertTrue(
          hasattr(module, name), "{} lacks {}".format(page.name, name)
        )
        value = getattr(module, name)
        if label == "Modules":
          self.assertTrue(inspect.ismodule(value), name)
          continue
        listed.add(name)
        if label == "Classes":
          self.assertTrue(inspect.isclass(value), name)
        elif label == "Functions":
          self.assertTrue(inspect.isfunction(value), name)
        if public is not None:
          self.assertIn(
            name, public, "{}.__all__ must list {}".format(page.name, name)
          )
    if exact_all and public is not None and listed:
      self.assertEqual(
        sorted(public),
        sorted(listed),
        "{}.__all__ is not the allow-list".format(page.name),
      )

  def _check_class(self, page, cls, module):
    for line in page.lines:
      if line.startswith("bases:"):
        expected = _backticked(line)
        self.assertEqual(
          [b.__name__ for b in cls.__bases__],
          expected,
          "{} bases".format(page.name),
        )
      elif line.startswith("properties / class members:"):
        for name in _backticked(line):
          self.assertTrue(
            hasattr(cls, name), "{} lacks {}".format(page.name, name)
          )
      elif line.startswith("class attribute values:"):
        for text in _backticked(line):
          name, value = _parse_constant(text)
          self.assertEqual(
            getattr(cls, name),
            ast.literal_eval(value),
            "{}.{}".format(page.name, name),
          )
      elif line.startswith(
        (
          "public instance attributes",
          "inherited from",
          "(no `__init__`",
          "an `enum",
        )
      ):
        continue
      else:
        name, spec_params = _parse_signature(
          _backticked(line)[0] if "`" in line else line
        )
        if name in _PY2_ONLY:
          continue
        self.assertTrue(
          hasattr(cls, name), "{} lacks method {}".format(page.name, name)
        )
        if _is_own_code(cls, name):
          self._check_signature(
            "{}.{}".format(page.name, name),
            getattr(cls, name),
            spec_params,
            module,
            cls,
            is_method=True,
          )

  def _check_page(self, page, exact_all=False):
    if page.kind == "internal":
      module, _ = _resolve(page.name)
      for line in page.lines:
        if line.startswith("constants:"):
          self._check_constants(page.name, module, _backticked(line))
      return
    obj, module = _resolve(page.name)
    if page.kind == "module":
      self.assertTrue(inspect.ismodule(obj))
      self._check_module(page, obj, exact_all=exact_all)
    elif page.kind == "class":
      self.assertTrue(inspect.isclass(obj))
      self._check_class(page, obj, module)
    else:
      self.assertTrue(inspect.isfunction(obj))
      _, spec_params = _parse_signature(_backticked(page.lines[0])[0])
      self._check_signature(
        page.name, obj, spec_params, module, None, is_method=False
      )


class ReleaseSurfaceTest(_SurfaceChecks):
  """Each built release face against `tests/data/surface/r1.N.md`."""

  allow_extra_params = False

  @parameterized.named_parameters(
    (page.name.replace(".", "_") + ("_internal" if page.internal else ""), page)
    for _, pages in _RELEASE_PAGES
    for page in pages
  )
  def test_page(self, page):
    self._check_page(page, exact_all=not page.internal)

  @parameterized.named_parameters(
    (package.replace(".", "_"), package, pages)
    for package, pages in _RELEASE_PAGES
  )
  def test_every_page_parsed(self, package, pages):
    kinds = collections.Counter(page.kind for page in pages)
    # The nine modules and the package itself, each with a page.
    self.assertEqual(kinds["module"], 10, package)
    self.assertGreater(kinds["class"], 30, package)

  @parameterized.named_parameters(
    (package.replace(".", "_"), package) for package, _ in _RELEASE_PAGES
  )
  def test_modules_are_attributes_and_submodules(self, package):
    namespace = importlib.import_module(package)
    for name in _MODULES:
      module = importlib.import_module("{}.{}".format(package, name))
      self.assertIs(getattr(namespace, name), module)
      self.assertIs(getattr(kfac, package.split(".")[1]), namespace)


class ApiSurfaceTest(_SurfaceChecks):
  """`kfac` (the engine and seed face) against `api_surface.md`."""

  @parameterized.named_parameters(
    (page.name.replace(".", "_"), page) for page in _PAGES
  )
  def test_page(self, page):
    self._check_page(page)

  def test_all_pages_parsed(self):
    kinds = collections.Counter(page.kind for page in _PAGES)
    self.assertEqual(kinds, {"module": 10, "class": 34, "function": 21})

  def test_legacy_modules_exported(self):
    for name in _MODULES:
      module = importlib.import_module("kfac." + name)
      self.assertIs(getattr(kfac, name), module)
