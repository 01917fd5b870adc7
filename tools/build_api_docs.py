#!/usr/bin/env python3
# Copyright 2026 The kfac Authors. All Rights Reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Generates the API reference of `kfac` in TensorFlow's late-2017 page format.

Usage (from the repository root):

    python tools/build_api_docs.py --all-releases
    python tools/build_api_docs.py --output-dir docs/api_docs/python
    python tools/build_api_docs.py --package kfac.r1_6 \
        --output-dir docs/api_docs/r1.6/python
    python tools/build_api_docs.py --output-dir /tmp/legacy --root-name tf.contrib.kfac

The first command regenerates every committed tree (the one to run after a
change to a public docstring or signature): `docs/api_docs/python/` for
`kfac`, and `docs/api_docs/r1.N/python/` for each release face package
`kfac.r1_N` that exists (a tree whose package is gone is removed). The
second and third write one tree; the last renders a package under the legacy
public name, so that a page can be held line by line against the original
TensorFlow 1.4 pages.

A release face (`kfac.r1_N`, built by `kfac/_faces.py`) is documented under
the public name `kfac` (or `--root-name`), as its release's pages were: the
package page lists its nine modules, each module page shows the engine
module's docstring and the release's allow-list (`__all__`), signatures are
the release's (`inspect.signature`, which reads the `__signature__` the
faces set), and "Defined in" names the file where the code lives: the engine
module, or the private module (`kfac/_face_members.py`, ...) of a class or
function a release adds, never the face module or the signature wrapper.

Two passes:

* collect: import the package, walk the public names of every module (a
  module's `__all__`, else the public names bound at the top level of its
  source and defined there), and give every module, class and free function
  its canonical name (fewest dots, then the lexicographically smallest);
* render: one function per page type (module, class, function), plus
  `index.md` and `_toc.yaml`. Every byte follows the legacy recipes (see the
  module-level `_render_*` functions).

Before writing, a coverage check runs: every public class, method, property
and function defined in the package needs a docstring, and the names in its
`Args:` section must be the signature's parameters, in order. Any problem is
printed (one line per symbol) and the tool exits with status 1 without
writing, unless `--skip-coverage-check` is given.

"Defined in" lines name the file relative to the repository root (e.g.
`kfac/fisher_factors.py`) and link to it with a relative link computed as if
the tree lives at `docs/api_docs/python/` (`docs/api_docs/r1.N/python/` for
`kfac.r1_N`) of this repository (change with `--docs-path` or use
`--code-url-prefix URL` for absolute links), so the output does not depend
on where it is written.

Standard library only; deterministic (same input, same bytes).
"""

from __future__ import annotations

import argparse
import ast
import collections
import importlib
import inspect
import os
import posixpath
import re
import sys
import textwrap
import types

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DOCS_PATH = 'docs/api_docs/python'

# Primitive values are never treated as the same symbol (§1 of the format).
_PRIMITIVE_TYPES = (int, str, float, bool, complex, bytes, type(None))

# Module attributes that are never documented. `__loader__`, `__spec__` and
# `__cached__` exist only on Python 3.
_MODULE_SKIP = frozenset(
  [
    '__builtins__',
    '__doc__',
    '__file__',
    '__name__',
    '__path__',
    '__package__',
    '__loader__',
    '__spec__',
    '__cached__',
    '__all__',
    '__annotations__',
  ]
)

# Class attributes that are never documented. The second line holds the
# attributes that only Python 3 classes have.
_CLASS_SKIP = frozenset(
  [
    '__class__',
    '__base__',
    '__weakref__',
    '__doc__',
    '__module__',
    '__dict__',
    '__abstractmethods__',
    '__slots__',
    '__getnewargs__',
    '__annotations__',
    '__orig_bases__',
    '__parameters__',
    '__firstlineno__',
    '__static_attributes__',
    '__qualname__',
    '__class_getitem__',
    '__init_subclass__',
    '__subclasshook__',
  ]
)

# Members of built-in base classes (dict, ...) that Python 3 exposes but the
# legacy pages never showed: object-protocol plumbing.
_BUILTIN_PLUMBING = frozenset(
  [
    '__getattribute__',
    '__sizeof__',
    '__getstate__',
    '__reduce_ex__',
    '__format__',
    '__dir__',
    '__new__',
  ]
)

_SKIP_DEFINING_CLASSES = (object, type, tuple, BaseException, Exception)

_SKIP_IF_UNDOCUMENTED = frozenset(
  ['__str__', '__repr__', '__hash__', '__del__', '__copy__']
)

_SECTION_KEYWORDS = (
  'Args',
  'Arguments',
  'Fields',
  'Returns',
  'Yields',
  'Raises',
  'Attributes',
)
_SECTION_RE = re.compile(r'(?<=\n)(%s):\n' % '|'.join(_SECTION_KEYWORDS))
_ITEM_RE = re.compile(r'^ {2,4}(\*{0,2}\w[\w.]*)[ ]*:\s', re.MULTILINE)
_ATAT_RE = re.compile(r'^ *@@[a-zA-Z_.0-9]+ *$')
_COMPAT_RE = re.compile(
  r'@compatibility\((\w+)\)\s*\n(.*?)@end_compatibility', re.DOTALL
)
_REFERENCE_RE = re.compile(r'@\{([^}]*)\}')


class DocsError(Exception):
  """Raised for a problem that stops the generator (bad arguments)."""


def _is_primitive(value):
  if type(value) is tuple:  # pylint: disable=unidiomatic-typecheck
    return not value
  return isinstance(value, _PRIMITIVE_TYPES)


def _is_dunder(name):
  return len(name) > 4 and name.startswith('__') and name.endswith('__')


def _is_private(name):
  return name.startswith('_') and not _is_dunder(name)


# ---------------------------------------------------------------------------
# Docstrings.
# ---------------------------------------------------------------------------


def raw_docstring(obj):
  """The object's own docstring, cleaned like `inspect.cleandoc` (no inheritance).

  Args:
    obj: Any Python object.

  Returns:
    The cleaned docstring for classes, functions, methods, modules and
    properties; '' for anything else or when there is no docstring.
  """
  if not (
    inspect.isclass(obj)
    or inspect.isroutine(obj)
    or inspect.ismodule(obj)
    or isinstance(obj, property)
  ):
    return ''
  doc = getattr(obj, '__doc__', None)
  if not isinstance(doc, str):
    return ''
  return inspect.cleandoc(doc)


class FunctionDetail(object):
  """One `Args:`/`Returns:`/... section of a docstring."""

  def __init__(self, keyword, header, items):
    self.keyword = keyword
    self.header = header
    self.items = items  # list of (name, value)

  def render(self):
    parts = ['#### %s:\n\n' % self.keyword, textwrap.dedent(self.header)]
    parts.extend(
      '* <b>`%s`</b>: %s' % (name, value) for name, value in self.items
    )
    return ''.join(parts)


def split_details(docstring):
  """Splits a docstring into its main text and its details sections.

  Args:
    docstring: A cleaned docstring.

  Returns:
    A pair `(main, details)`: `main` is the text before the first section
    line, verbatim; `details` is a list of `FunctionDetail`.
  """
  parts = _SECTION_RE.split(docstring)
  main = parts[0]
  details = []
  for keyword, content in zip(parts[1::2], parts[2::2]):
    pieces = _ITEM_RE.split(content)
    header = pieces[0]
    items = list(zip(pieces[1::2], pieces[2::2]))
    details.append(FunctionDetail(keyword, header, items))
  return main, details


class ParsedDoc(object):
  """A processed docstring: brief, main text, details and compatibility."""

  def __init__(self, brief, main, details, compatibility):
    self.brief = brief
    self.main = main
    self.details = details
    self.compatibility = compatibility

  def render_details(self):
    return '\n'.join(d.render() for d in self.details)

  def render_compatibility(self):
    return ''.join(
      '\n\n#### %s Compatibility\n%s\n'
      % (key.title(), textwrap.dedent(self.compatibility[key]))
      for key in sorted(self.compatibility)
    )


# ---------------------------------------------------------------------------
# Collect pass.
# ---------------------------------------------------------------------------


def _source_bindings(module):
  """Names bound at the top level of a module's source, by kind.

  Args:
    module: A module object.

  Returns:
    A pair of sets `(assigned, imported)`: names bound by assignments,
    `def` and `class` statements, and names bound by import statements. Both
    empty if the source cannot be read.
  """
  assigned, imported = set(), set()
  try:
    tree = ast.parse(inspect.getsource(module))
  except (OSError, TypeError, SyntaxError):
    return assigned, imported

  def targets(node):
    if isinstance(node, ast.Name):
      yield node.id
    elif isinstance(node, (ast.Tuple, ast.List)):
      for elt in node.elts:
        yield from targets(elt)

  for node in tree.body:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
      assigned.add(node.name)
    elif isinstance(node, ast.Assign):
      for target in node.targets:
        assigned.update(targets(target))
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
      assigned.update(targets(node.target))
    elif isinstance(node, ast.Import):
      for alias in node.names:
        imported.add((alias.asname or alias.name).split('.')[0])
    elif isinstance(node, ast.ImportFrom):
      for alias in node.names:
        imported.add(alias.asname or alias.name)
  return assigned, imported


def public_names(module, package):
  """The public names of a module, sorted.

  Args:
    module: A module object.
    package: The import name of the documented package (e.g. 'kfac').

  Returns:
    A pair `(names, missing)`: the sorted public names that exist on the
    module, and the names listed in `__all__` that do not exist. With
    `__all__`, the public names are exactly its entries. Without it, they are
    the names not starting with `_` that the module's source binds at its top
    level and that are defined there: classes and functions whose
    `__module__` is this module (or a private module of the package, such as
    `kfac._contrib_alias`, whose names are re-exported), submodules of the
    package, and other values bound by assignment (not by import).
  """
  if hasattr(module, '__all__'):
    listed = sorted(set(module.__all__))
    present = [n for n in listed if hasattr(module, n)]
    missing = [n for n in listed if not hasattr(module, n)]
    return present, missing
  if is_release_face(module) and hasattr(module, '__path__'):
    # A release face package (`kfac.r1_N`) binds its modules at import
    # time, not in its source: its public names are the nine legacy modules
    # among them. The never-exported `placement` / `linear_operator` become
    # attributes only once something imports them, and the legacy pages
    # never listed them, so they are left out whatever was imported before.
    from kfac import _surface

    return sorted(
      name
      for name, value in vars(module).items()
      if name in _surface.MODULES
      and inspect.ismodule(value)
      and value.__name__ == '%s.%s' % (module.__name__, name)
    ), []
  assigned, imported = _source_bindings(module)
  names = []
  for name in sorted(assigned | imported):
    if name.startswith('_') or not hasattr(module, name):
      continue
    obj = getattr(module, name)
    if inspect.ismodule(obj):
      if obj.__name__.startswith(package + '.'):
        names.append(name)
    elif inspect.isclass(obj) or inspect.isfunction(obj):
      defined_in = getattr(obj, '__module__', None) or ''
      if defined_in == module.__name__ or (
        _in_package(obj, package)
        and any(part.startswith('_') for part in defined_in.split('.'))
      ):
        names.append(name)
    elif name in assigned:
      names.append(name)
  return names, []


def _defining_class(cls, name):
  for base in inspect.getmro(cls):
    if name in base.__dict__:
      return base
  return None


def _in_package(obj, package):
  module = getattr(obj, '__module__', None)
  if inspect.ismodule(obj):
    module = obj.__name__
  return isinstance(module, str) and (
    module == package or module.startswith(package + '.')
  )


# ---------------------------------------------------------------------------
# Release faces (`kfac.r1_N`, built by `kfac/_faces.py`).
# ---------------------------------------------------------------------------

_RELEASE_DIR_RE = re.compile(r'^r(\d+)_(\d+)$')


def is_release_face(module):
  """Whether a module is (part of) a release face built by `kfac._faces`.

  Args:
    module: A module object.

  Returns:
    True for `kfac.r1_N` and its modules: they carry the `_release` that
    `kfac._faces` sets.
  """
  return (
    inspect.ismodule(module)
    and hasattr(module, '_release')
    and (
      _RELEASE_DIR_RE.match(
        module.__name__.split('.')[1] if module.__name__.count('.') else ''
      )
      is not None
    )
  )


def release_packages(package='kfac', base_dir=REPO_ROOT):
  """The release face packages that exist under a package, oldest first.

  Args:
    package: The engine package (its directory is searched).
    base_dir: Directory holding the package.

  Returns:
    A list of `(version, import name)`, e.g. `[('1.4', 'kfac.r1_4'), ...]`,
    one per `r<major>_<minor>/__init__.py`, sorted by version.
  """
  root = os.path.join(base_dir, *package.split('.'))
  found = []
  for entry in os.listdir(root):
    match = _RELEASE_DIR_RE.match(entry)
    if match and os.path.isfile(os.path.join(root, entry, '__init__.py')):
      found.append(((int(match.group(1)), int(match.group(2))), entry))
  return [
    ('%d.%d' % key, '%s.%s' % (package, entry)) for key, entry in sorted(found)
  ]


def default_root_name(package):
  """The public name a package is documented under by default.

  Args:
    package: An import name, e.g. 'kfac' or 'kfac.r1_6'.

  Returns:
    The engine package's name ('kfac') for a release face package
    `<engine>.r<major>_<minor>`, which stands for its release's
    `tf.contrib.kfac`; otherwise `package` itself.
  """
  head, _, tail = package.rpartition('.')
  if head and _RELEASE_DIR_RE.match(tail):
    return head
  return package


def release_docs_path(version):
  """Where the tree of a release lives in the repository."""
  return 'docs/api_docs/r%s/python' % version


def _engine_module_of(module):
  """The engine module a face module re-hosts (`kfac.fisher_factors` for
  `kfac.r1_6.fisher_factors`), or None for anything else."""
  if not is_release_face(module) or hasattr(module, '__path__'):
    return None
  parts = module.__name__.split('.')
  engine_name = '.'.join(parts[:1] + parts[2:])
  engine = sys.modules.get(engine_name)
  if engine is None:
    try:
      engine = importlib.import_module(engine_name)
    except ImportError:
      return None
  return engine


def _face_origins():
  """Maps every face class to the class whose code it re-hosts."""
  faces = sys.modules.get('kfac._faces')
  result = {}
  for mapping in getattr(faces, '_FACE_CLASSES', {}).values():
    for origin, face in mapping.items():
      result[face] = origin
  return result


def _signature_wrapper_target(func):
  """The function a signature-adapting wrapper calls, or None.

  `kfac._faces` wraps a member whose parameters differ in a release in a
  function with an explicit `__signature__` (and no `__wrapped__`) that
  calls the engine function, held in its closure under the same name.
  """
  if (
    not isinstance(func, types.FunctionType)
    or ('__signature__' not in func.__dict__)
    or not func.__closure__
  ):
    return None
  for cell in func.__closure__:
    try:
      value = cell.cell_contents
    except ValueError:
      continue
    if (
      isinstance(value, types.FunctionType)
      and value.__name__ == func.__name__
      and value is not func
    ):
      return value
  return None


def source_origin(obj, face_origins=None):
  """The object whose source file "Defined in" names.

  For everything outside a release face, `obj` itself. A face module names
  its engine module; a face class the class it re-hosts (an engine class, or
  a class of a private module); a signature wrapper the function it calls.

  Args:
    obj: A documented module, class or function.
    face_origins: Optional result of `_face_origins()`.

  Returns:
    The object to pass to `inspect.getfile`.
  """
  if inspect.ismodule(obj):
    return _engine_module_of(obj) or obj
  if inspect.isclass(obj):
    origins = face_origins if face_origins is not None else _face_origins()
    seen = set()
    while obj in origins and id(obj) not in seen:
      seen.add(id(obj))
      obj = origins[obj]
    return obj
  seen = set()
  target = _signature_wrapper_target(obj)
  while target is not None and id(target) not in seen:
    seen.add(id(target))
    obj = target
    target = _signature_wrapper_target(obj)
  return obj


class ClassMembers(object):
  """The documented members of a class, grouped as on the class page."""

  def __init__(self):
    self.child_classes = []  # (short name, class)
    self.properties = []  # (short name, property)
    self.methods = []  # (short name, routine, defining class)
    self.class_members = []  # (short name, value)


def class_members(cls):
  """Classifies the members of a class (inherited ones included).

  Args:
    cls: A class.

  Returns:
    A `ClassMembers`, every group in member (code-point) order.
  """
  members = ClassMembers()
  try:
    all_members = inspect.getmembers(cls)
  except Exception:  # pylint: disable=broad-except
    all_members = []
  for name, value in sorted(all_members, key=lambda item: item[0]):
    if _is_private(name) or name in _CLASS_SKIP:
      continue
    defining = _defining_class(cls, name)
    if defining in _SKIP_DEFINING_CLASSES:
      continue
    if defining is not None and defining.__name__ in (
      'CMessage',
      'Message',
      'MessageMeta',
    ):
      continue
    if (
      name in _BUILTIN_PLUMBING
      and inspect.isroutine(value)
      and not (
        isinstance(inspect.unwrap(_signature_target(value)), types.FunctionType)
      )
    ):
      continue
    raw = defining.__dict__[name] if defining is not None else value
    if isinstance(raw, property):
      members.properties.append((name, raw))
    elif inspect.isclass(value):
      members.child_classes.append((name, value))
    elif inspect.isroutine(value):
      if name in _SKIP_IF_UNDOCUMENTED and not raw_docstring(value):
        continue
      if _is_namedtuple_generated(cls, name, value):
        continue
      members.methods.append((name, value, defining))
    else:
      members.class_members.append((name, value))
  return members


def _is_namedtuple_generated(cls, name, value):
  del name  # unused
  module = getattr(value, '__module__', None)
  return (
    hasattr(cls, '_fields')
    and issubclass(cls, tuple)
    and isinstance(module, str)
    and module.startswith('namedtuple_')
  )


class DocTree(object):
  """Everything the render pass needs: names, canonical names, members.

  Attributes:
    package: The import name of the documented package.
    root_name: The public name the package is documented under.
    index: Maps every documented full name (aliases included) of a module,
      class or free function to its object.
    module_members: Maps a module's full name to its sorted list of
      `(short name, object)` public members.
    missing: Names listed in an `__all__` that the module does not define.
  """

  def __init__(self, package, root_name):
    self.package = package
    self.root_name = root_name
    self.index = {}
    self.module_members = {}
    self.missing = []
    self._names_by_id = collections.defaultdict(list)
    self._objects_by_id = {}
    self._master = {}
    root = importlib.import_module(package)
    self._walk_module(root, root_name, set())
    for key, names in self._names_by_id.items():
      self._master[key] = min(names, key=lambda n: (n.count('.'), n))

  # -- walking ---------------------------------------------------------------

  def _add(self, full_name, obj):
    self.index[full_name] = obj
    self._names_by_id[id(obj)].append(full_name)
    self._objects_by_id[id(obj)] = obj

  def _walk_module(self, module, full_name, seen):
    self._add(full_name, module)
    if id(module) in seen:
      return
    seen.add(id(module))
    names, missing = public_names(module, self.package)
    self.missing.extend('%s.%s' % (full_name, n) for n in missing)
    members = []
    for name in names:
      if name in _MODULE_SKIP:
        continue
      obj = getattr(module, name)
      child_name = '%s.%s' % (full_name, name)
      members.append((name, obj))
      if inspect.ismodule(obj):
        if _in_package(obj, self.package):
          self._walk_module(obj, child_name, seen)
      elif inspect.isclass(obj):
        self._walk_class(obj, child_name, seen)
      elif inspect.isfunction(obj):
        self._add(child_name, obj)
    self.module_members[full_name] = members

  def _walk_class(self, cls, full_name, seen):
    self._add(full_name, cls)
    if id(cls) in seen:
      return
    seen.add(id(cls))
    for name, child in class_members(cls).child_classes:
      self._walk_class(child, '%s.%s' % (full_name, name), seen)

  # -- queries ---------------------------------------------------------------

  def master_name(self, obj):
    """The canonical full name of a documented object, or None."""
    if _is_primitive(obj):
      return None
    return self._master.get(id(obj))

  def aliases(self, obj):
    return sorted(set(self._names_by_id.get(id(obj), [])))

  def is_documented(self, obj):
    return not _is_primitive(obj) and id(obj) in self._master

  def pages(self):
    """Sorted (full name, object) of every page to write (canonical names)."""
    result = []
    for full_name, obj in self.index.items():
      if self.master_name(obj) == full_name:
        result.append((full_name, obj))
    return sorted(result)

  def kind(self, full_name):
    obj = self.index[full_name]
    if inspect.ismodule(obj):
      return 'module'
    if inspect.isclass(obj):
      return 'class'
    return 'function'

  def parent_module_name(self, full_name):
    """The full name of the module that holds a page (class or function)."""
    parts = full_name.split('.')
    for i in range(len(parts) - 1, 0, -1):
      candidate = '.'.join(parts[:i])
      if candidate in self.index and inspect.ismodule(self.index[candidate]):
        return candidate
    return None

  def resolve(self, name):
    """Maps a dotted reference to (page full name, anchor) or None."""
    for prefix in (self.package, self.root_name):
      if name == prefix or name.startswith(prefix + '.'):
        name = self.root_name + name[len(prefix) :]
        break
    if name in self.index:
      return self.master_name(self.index[name]), None
    owner, _, member = name.rpartition('.')
    if owner in self.index and inspect.isclass(self.index[owner]):
      if hasattr(self.index[owner], member):
        return self.master_name(self.index[owner]), member
    return None


# ---------------------------------------------------------------------------
# Render pass.
# ---------------------------------------------------------------------------


def page_path(full_name):
  return full_name.replace('.', '/') + '.md'


def relative_root(full_name):
  return posixpath.relpath(
    '.', start=posixpath.dirname(page_path(full_name)) or '.'
  )


class Renderer(object):
  """Renders pages for a `DocTree`.

  Attributes:
    tree: The `DocTree`.
    base_dir: Directory that "Defined in" paths are relative to.
    code_url_prefix: If set, "Defined in" links are this prefix plus the
      path; otherwise relative links assuming the pages live at `docs_path`
      under `base_dir`.
    docs_path: Location of the output tree relative to `base_dir`.
    errors: Problems met while rendering (unresolved references).
  """

  def __init__(
    self, tree, base_dir, code_url_prefix=None, docs_path=DEFAULT_DOCS_PATH
  ):
    self.tree = tree
    self.base_dir = os.path.abspath(base_dir)
    self.code_url_prefix = code_url_prefix
    self.docs_path = docs_path
    self.errors = []
    self._external = _external_bases()
    self._face_origins = _face_origins()

  # -- links -----------------------------------------------------------------

  def link(self, from_name, target_full_name, anchor=None):
    url = posixpath.join(relative_root(from_name), page_path(target_full_name))
    if anchor:
      url += '#' + anchor
    return url

  def _replace_references(self, text, from_name):

    def replace(match):
      ref = match.group(1)
      name, _, custom = ref.partition('$')
      if not name:  # @{$guide} or @{$guide#anchor}
        doc, _, anchor = custom.partition('#')
        url = '%s/../../%s.md' % (relative_root(from_name), doc)
        if anchor:
          url += '#' + anchor
        return '[%s](%s)' % (doc, url)
      resolved = self.tree.resolve(name)
      if resolved is None or resolved[0] is None:
        self.errors.append('%s: unresolved reference @{%s}' % (from_name, ref))
        return 'BROKEN_LINK'
      url = self.link(from_name, resolved[0], resolved[1])
      if custom:
        return '[%s](%s)' % (custom, url)
      return '[`%s`](%s)' % (name, url)

    return _REFERENCE_RE.sub(replace, text)

  def parse_doc(self, obj, from_name):
    """Processes an object's docstring (§2.4 of the format).

    A release face's module shows its engine module's docstring (the face
    module's own docstring only says which release it faces).

    Args:
      obj: The documented object.
      from_name: Full name of the page the text goes on (for links).

    Returns:
      A `ParsedDoc`.
    """
    if inspect.ismodule(obj):
      obj = _engine_module_of(obj) or obj
    text = raw_docstring(obj)
    text = self._replace_references(text, from_name)
    text = '\n'.join(
      line for line in text.split('\n') if not _ATAT_RE.match(line)
    )
    compatibility = {}

    def cut(match):
      compatibility[match.group(1)] = match.group(2)
      return ''

    text = _COMPAT_RE.sub(cut, text)
    main, details = split_details(text)
    brief = main.split('\n')[0]
    return ParsedDoc(brief, main, details, compatibility)

  # -- shared blocks ---------------------------------------------------------

  @staticmethod
  def metadata(full_name, members):
    lines = [
      '<div itemscope itemtype="http://developers.google.com/ReferenceObject">',
      '<meta itemprop="name" content="%s" />' % full_name,
    ]
    lines.extend(
      '<meta itemprop="property" content="%s"/>' % m for m in members
    )
    lines.append('</div>\n\n')
    return '\n'.join(lines)

  def defined_in(self, obj, from_name):
    """The "Defined in" block (with its trailing blank line), or ''."""
    try:
      path = inspect.getfile(source_origin(obj, self._face_origins))
    except TypeError:
      return 'This is an alias for a Python built-in.\n\n'
    if path.endswith('.pyc'):
      path = path[:-1]
    path = os.path.abspath(path)
    rel = os.path.relpath(path, self.base_dir)
    if rel.startswith(os.pardir) or os.path.isabs(rel):
      return ''
    rel = rel.replace(os.sep, '/')
    if self.code_url_prefix is not None:
      url = self.code_url_prefix + rel
    else:
      up = posixpath.relpath('.', start=self.docs_path)
      url = posixpath.normpath(
        posixpath.join(relative_root(from_name), up, rel)
      )
    return 'Defined in [`%s`](%s).\n\n' % (rel, url)

  def signature(self, name, func, decorators=()):
    args = format_arguments(func, self.tree)
    if not args:
      sig = ''
    elif len(args) == 1:
      sig = args[0]
    else:
      sig = '\n' + ',\n'.join('    ' + a for a in args) + '\n'
    lines = ['``` python']
    lines.extend('@' + d for d in decorators)
    lines.append('%s(%s)' % (name, sig))
    lines.append('```\n\n')
    return '\n'.join(lines)

  def aliases_block(self, obj, label):
    names = self.tree.aliases(obj)
    if len(names) <= 1:
      return ''
    return (
      '### Aliases:\n\n'
      + ''.join('* %s`%s`\n' % (label, n) for n in names)
      + '\n'
    )

  # -- pages -----------------------------------------------------------------

  def render_function(self, full_name, func):
    doc = self.parse_doc(func, full_name)
    parts = [
      self.metadata(full_name, []),
      '# %s\n\n' % full_name,
      self.aliases_block(func, ''),
      self.signature(full_name.split('.')[-1], func),
    ]
    defined = self.defined_in(func, full_name)
    if defined:
      parts.append('\n\n' + defined)
    parts.extend([doc.main, doc.render_details(), doc.render_compatibility()])
    return ''.join(parts)

  def render_class(self, full_name, cls):
    members = class_members(cls)
    methods = sorted(
      members.methods, key=lambda m: (m[0] not in ('__init__', '__new__'), m[0])
    )
    meta_members = (
      [n for n, _ in members.child_classes]
      + [n for n, _ in members.properties]
      + [m[0] for m in members.methods]
      + [n for n, _ in members.class_members]
    )
    parts = [
      self.metadata(full_name, meta_members),
      '# %s\n\n' % full_name,
      '## Class `%s`\n\n' % full_name.split('.')[-1],
    ]
    bases = []
    for base in cls.__bases__:
      master = self.tree.master_name(base)
      if master is not None:
        bases.append(
          '[`%s`](%s)' % (master.split('.')[-1], self.link(full_name, master))
        )
      elif base in self._external:
        bases.append('[`%s`](%s)' % self._external[base])
    if bases:
      parts.append('Inherits From: ' + ', '.join(bases))
    parts.append('\n\n')
    parts.append(self.aliases_block(cls, 'Class '))
    defined = self.defined_in(cls, full_name)
    if defined:
      parts.append('\n\n' + defined)
    doc = self.parse_doc(cls, full_name)
    parts.extend(
      [doc.main, doc.render_details(), doc.render_compatibility(), '\n\n']
    )
    if members.child_classes:
      parts.append('## Child Classes\n')
      entries = []
      for name, child in members.child_classes:
        master = self.tree.master_name(child) or '%s.%s' % (full_name, name)
        entries.append(
          '[`class %s`](%s)\n\n' % (name, self.link(full_name, master))
        )
      parts.extend(sorted(entries))
    if members.properties:
      parts.append('## Properties\n\n')
      for name, prop in members.properties:
        pdoc = self.parse_doc(prop, full_name)
        parts.append('<h3 id="%s"><code>%s</code></h3>\n\n' % (name, name))
        parts.extend(
          [
            pdoc.main,
            pdoc.render_details(),
            pdoc.render_compatibility(),
            '\n\n',
          ]
        )
      parts.append('\n\n')
    if methods:
      parts.append('## Methods\n\n')
      for name, method, _ in methods:
        decorators = []
        own = cls.__dict__.get(name)
        if isinstance(own, classmethod):
          decorators.append('classmethod')
        elif isinstance(own, staticmethod):
          decorators.append('staticmethod')
        mdoc = self.parse_doc(method, full_name)
        parts.append('<h3 id="%s"><code>%s</code></h3>\n\n' % (name, name))
        parts.append(self.signature(name, method, decorators))
        parts.extend(
          [
            mdoc.main,
            mdoc.render_details(),
            mdoc.render_compatibility(),
            '\n\n',
          ]
        )
      parts.append('\n\n')
    if members.class_members:
      parts.append('## Class Members\n\n')
      for name, _ in members.class_members:
        parts.append('<h3 id="%s"><code>%s</code></h3>\n\n' % (name, name))
    return ''.join(parts)

  def render_module(self, full_name, module):
    modules, classes, functions, others = [], [], [], []
    for name, obj in self.tree.module_members.get(full_name, []):
      master = self.tree.master_name(obj)
      if inspect.ismodule(obj) and master is not None:
        modules.append((name, obj, master))
      elif inspect.isclass(obj) and master is not None:
        classes.append((name, obj, master))
      elif inspect.isfunction(obj) and master is not None:
        functions.append((name, obj, master))
      else:
        others.append(name)
    parts = [
      self.metadata(full_name, others),
      '# Module: %s\n\n' % full_name,
      self.aliases_block(module, 'Module '),
    ]
    defined = self.defined_in(module, full_name)
    if defined:
      parts.append('\n\n' + defined)
    doc = self.parse_doc(module, full_name)
    parts.extend([doc.main, doc.render_compatibility(), '\n\n'])

    def entry(text, obj, master):
      brief = self.parse_doc(obj, full_name).brief
      line = '[%s](%s)' % (text, self.link(full_name, master))
      return line + (': ' + brief if brief else '')

    if modules:
      parts.append('## Modules\n\n')
      for name, obj, master in modules:
        brief = self.parse_doc(obj, full_name).brief
        parts.append(
          '[`%s`](%s) module%s\n\n'
          % (name, self.link(full_name, master), ': ' + brief if brief else '')
        )
    if classes:
      parts.append('## Classes\n\n')
      for name, obj, master in classes:
        parts.append(entry('`class %s`' % name, obj, master) + '\n\n')
    if functions:
      parts.append('## Functions\n\n')
      for name, obj, master in functions:
        parts.append(entry('`%s(...)`' % name, obj, master) + '\n\n')
    if others:
      parts.append('## Other Members\n\n')
      for name in others:
        parts.append('`%s`\n\n' % name)
    return ''.join(parts)

  def render_page(self, full_name):
    obj = self.tree.index[full_name]
    kind = self.tree.kind(full_name)
    if kind == 'module':
      return self.render_module(full_name, obj)
    if kind == 'class':
      return self.render_class(full_name, obj)
    return self.render_function(full_name, obj)

  def render_index(self, root_title):
    entries = []
    for full_name in sorted(self.tree.index):
      obj = self.tree.index[full_name]
      master = self.tree.master_name(obj)
      entries.append('*  [`%s`](./%s)' % (full_name, page_path(master)))
    return '\n'.join(['# All symbols in %s' % root_title, ''] + entries)

  def render_toc(self):
    pages = self.tree.pages()
    modules = sorted(
      (n for n, _ in pages if self.tree.kind(n) == 'module'), key=str.upper
    )
    children = collections.defaultdict(list)
    for name, _ in pages:
      if self.tree.kind(name) != 'module':
        parent = self.tree.parent_module_name(name)
        children[parent].append(name[len(parent) + 1 :])
    prefix = '/TARGET_DOC_ROOT/VERSION/api_docs/python/'
    lines = ['# Automatically generated file; please do not edit', 'toc:']
    for module in modules:
      lines.append('  - title: %s' % module)
      lines.append('    section:')
      lines.append('    - title: Overview')
      lines.append('      path: %s%s' % (prefix, module.replace('.', '/')))
      for title in sorted(children[module], key=lambda t: (t.upper(), t)):
        lines.append('    - title: %s' % title)
        lines.append(
          '      path: %s%s'
          % (prefix, ('%s.%s' % (module, title)).replace('.', '/'))
        )
    return '\n'.join(lines) + '\n'

  def render_all(self, root_title):
    """Returns a dict mapping relative output paths to file contents."""
    files = {}
    for full_name, _ in self.tree.pages():
      files[page_path(full_name)] = self.render_page(full_name)
    files['index.md'] = self.render_index(root_title)
    files['_toc.yaml'] = self.render_toc()
    return files


def _external_bases():
  """Links for TensorFlow base classes that are outside the doc set."""
  result = {}
  tf = sys.modules.get('tensorflow')
  if tf is None:
    return result
  url = 'https://www.tensorflow.org/api_docs/python/tf/compat/v1/train/'
  for name in ('GradientDescentOptimizer', 'Optimizer'):
    cls = getattr(tf.compat.v1.train, name, None)
    if cls is not None:
      result[cls] = (name, url + name)
  return result


# ---------------------------------------------------------------------------
# Signatures.
# ---------------------------------------------------------------------------


def _signature_target(func):
  if inspect.ismethod(func) and isinstance(func.__func__, types.FunctionType):
    return func.__func__  # keep `cls` for class methods
  return func


def _default_sources(func):
  """Maps parameter names to the source text of their default values."""
  target = inspect.unwrap(_signature_target(func))
  if not isinstance(target, types.FunctionType):
    return {}
  try:
    source = textwrap.dedent(inspect.getsource(target))
    tree = ast.parse(source)
  except (OSError, TypeError, SyntaxError, IndentationError):
    return {}
  node = None
  for candidate in ast.walk(tree):
    if isinstance(
      candidate, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
    ):
      node = candidate
      break
  if node is None:
    return {}
  result = {}
  positional = node.args.posonlyargs + node.args.args
  for arg, default in zip(
    positional[len(positional) - len(node.args.defaults) :], node.args.defaults
  ):
    result[arg.arg] = ast.unparse(default)
  for arg, default in zip(node.args.kwonlyargs, node.args.kw_defaults):
    if default is not None:
      result[arg.arg] = ast.unparse(default)
  return result


def signature_parameters(func):
  """The parameters of a routine as the docs show them.

  Args:
    func: A function, method or built-in routine.

  Returns:
    A list of `inspect.Parameter`, without a first parameter named `self`
    (`cls` is kept), or None if the signature cannot be read.
  """
  target = _signature_target(func)
  try:
    params = list(inspect.signature(target).parameters.values())
  except (TypeError, ValueError):
    return None
  if params and params[0].name == 'self':
    params = params[1:]
  return params


def format_arguments(func, tree=None):
  """The argument strings of the signature block (§2.3 of the format).

  Args:
    func: A function, method or built-in routine.
    tree: Optional `DocTree`; defaults that are documented symbols are shown
      by their canonical name.

  Returns:
    A list of strings such as `['inputs', 'has_bias=False', '*args']`.
    Keyword-only parameters follow a bare `*` entry (unless there is a
    `*args`); annotations are not shown. A built-in whose signature Python
    cannot read gives `['*args', '**kwargs']`.
  """
  params = signature_parameters(func)
  if params is None:
    return _text_signature_arguments(func)
  sources = _default_sources(func)
  args = []
  star_seen = False
  for param in params:
    if param.kind == param.VAR_POSITIONAL:
      args.append('*' + param.name)
      star_seen = True
      continue
    if param.kind == param.VAR_KEYWORD:
      args.append('**' + param.name)
      continue
    if param.kind == param.KEYWORD_ONLY and not star_seen:
      args.append('*')
      star_seen = True
    if param.default is param.empty:
      args.append(param.name)
      continue
    default = param.default
    if tree is not None and tree.is_documented(default):
      text = tree.master_name(default)
    elif param.name in sources:
      text = sources[param.name]
    else:
      text = repr(default)
    args.append('%s=%s' % (param.name, text))
  return args


def _text_signature_arguments(func):
  """Arguments of a built-in that `inspect` cannot read.

  Args:
    func: A built-in routine.

  Returns:
    The entries of its `__text_signature__` without `$self`/`$type` and the
    `/` marker (e.g. `['key', 'default=<unrepresentable>']` for
    `OrderedDict.pop`), or `['*args', '**kwargs']` when it has none.
  """
  text = getattr(func, '__text_signature__', None)
  if not text or not (text.startswith('(') and text.endswith(')')):
    return ['*args', '**kwargs']
  args = []
  for part in text[1:-1].split(','):
    part = part.strip()
    if not part or part == '/' or part.startswith('$'):
      continue
    args.append(part)
  return args


# ---------------------------------------------------------------------------
# Coverage check.
# ---------------------------------------------------------------------------


def _args_section(docstring):
  """Names in the docstring's `Args:` section, or None without one."""
  _, details = split_details(docstring)
  for detail in details:
    if detail.keyword in ('Args', 'Arguments'):
      return [name.lstrip('*') for name, _ in detail.items]
  return None


def _check_args(label, func, docstring, class_doc=None):
  params = signature_parameters(func)
  if params is None:
    return []
  if params and params[0].name == 'cls' and inspect.ismethod(func):
    params = params[1:]
  expected = [p.name for p in params]
  documented = _args_section(docstring)
  if documented is None and class_doc is not None:
    documented = _args_section(class_doc)
  if documented is None:
    if expected:
      return [
        '%s: no Args: section; signature has (%s)'
        % (label, ', '.join(expected))
      ]
    return []
  if documented == expected:
    return []
  missing = [n for n in expected if n not in documented]
  extra = [n for n in documented if n not in expected]
  detail = []
  if missing:
    detail.append('undocumented: %s' % ', '.join(missing))
  if extra:
    detail.append('not in signature: %s' % ', '.join(extra))
  if not detail:
    detail.append('order differs')
  return [
    '%s: Args: (%s) do not match signature (%s); %s'
    % (label, ', '.join(documented), ', '.join(expected), '; '.join(detail))
  ]


def coverage_problems(tree):
  """Lists the public symbols of the package that break the docstring rules.

  Args:
    tree: A `DocTree`.

  Returns:
    A sorted list of one-line problem descriptions naming the symbol: a
    missing docstring on a module, class, method, property or function
    defined in the package, an `Args:` section that does not match the
    signature, or a name listed in `__all__` that does not exist.
  """
  problems = ['%s: listed in __all__ but not defined' % n for n in tree.missing]
  checked = set()
  for full_name, obj in tree.pages():
    if not _in_package(obj, tree.package):
      continue
    kind = tree.kind(full_name)
    doc = raw_docstring(obj)
    if kind == 'module':
      if not doc:
        problems.append('%s: module has no docstring' % full_name)
      continue
    if kind == 'function':
      if not doc:
        problems.append('%s: function has no docstring' % full_name)
      else:
        problems.extend(_check_args(full_name, obj, doc))
      continue
    if not doc:
      problems.append('%s: class has no docstring' % full_name)
    members = class_members(obj)
    for name, prop in members.properties:
      owner = _defining_class(obj, name)
      key = id(prop)
      if key in checked or not _in_package(owner, tree.package):
        continue
      checked.add(key)
      label = _member_label(tree, owner, name, full_name)
      if not raw_docstring(prop):
        problems.append('%s: property has no docstring' % label)
    for name, method, owner in members.methods:
      target = _signature_target(method)
      key = (id(target), name)
      if (
        key in checked or owner is None or not _in_package(owner, tree.package)
      ):
        continue
      if not isinstance(inspect.unwrap(target), types.FunctionType):
        continue
      checked.add(key)
      label = _member_label(tree, owner, name, full_name)
      mdoc = raw_docstring(method)
      if not mdoc:
        problems.append('%s: method has no docstring' % label)
        continue
      class_doc = raw_docstring(owner) if name == '__init__' else None
      problems.extend(_check_args(label, method, mdoc, class_doc))
  return sorted(set(problems))


def _member_label(tree, owner, name, fallback_class_name):
  owner_name = tree.master_name(owner)
  if owner_name is None:
    owner_name = '%s.%s' % (owner.__module__, owner.__qualname__)
    if fallback_class_name.endswith('.' + owner.__qualname__):
      owner_name = fallback_class_name
  return '%s.%s' % (owner_name, name)


# ---------------------------------------------------------------------------
# Writing and command line.
# ---------------------------------------------------------------------------


def build(
  package='kfac',
  root_name=None,
  base_dir=None,
  code_url_prefix=None,
  docs_path=DEFAULT_DOCS_PATH,
  root_title=None,
):
  """Collects and renders the docs of a package.

  Args:
    package: Import name of the package to document.
    root_name: Public name to document it under (default:
      `default_root_name(package)`).
    base_dir: Directory that "Defined in" paths are relative to (default:
      the directory that holds the package).
    code_url_prefix: Optional URL prefix for "Defined in" links.
    docs_path: Where the tree lives relative to `base_dir` (for relative
      "Defined in" links).
    root_title: Title of `index.md` (default: `root_name`).

  Returns:
    A triple `(files, problems, tree)`: a dict mapping relative paths to
    contents, the coverage problems (plus unresolved references), and the
    `DocTree`.
  """
  root_name = root_name or default_root_name(package)
  tree = DocTree(package, root_name)
  if base_dir is None:
    module = sys.modules[package.split('.')[0]]
    base_dir = os.path.dirname(
      os.path.dirname(os.path.abspath(module.__file__))
    )
  renderer = Renderer(tree, base_dir, code_url_prefix, docs_path)
  files = renderer.render_all(root_title or root_name)
  problems = coverage_problems(tree) + sorted(set(renderer.errors))
  return files, problems, tree


def write_files(output_dir, files):
  """Writes the files; removes pages of an earlier run that are now stale."""
  output_dir = os.path.abspath(output_dir)
  if os.path.exists(os.path.join(output_dir, '_toc.yaml')):
    for dirpath, _, filenames in os.walk(output_dir):
      for filename in filenames:
        path = os.path.join(dirpath, filename)
        rel = os.path.relpath(path, output_dir).replace(os.sep, '/')
        if (filename.endswith('.md') or filename == '_toc.yaml') and (
          rel not in files
        ):
          os.remove(path)
    for dirpath, _, _ in sorted(os.walk(output_dir), reverse=True):
      if dirpath != output_dir and not os.listdir(dirpath):
        os.rmdir(dirpath)
  for rel in sorted(files):
    path = os.path.join(output_dir, *rel.split('/'))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8', newline='\n') as f:
      f.write(files[rel])


def release_trees(package='kfac', base_dir=REPO_ROOT):
  """The trees `--all-releases` writes, in order.

  Args:
    package: The engine package.
    base_dir: Directory holding the package (the repository root).

  Returns:
    A list of `(package, docs_path)`: `('kfac', 'docs/api_docs/python')`,
    then `('kfac.r1_N', 'docs/api_docs/r1.N/python')` for each release face
    package that exists, oldest first.
  """
  trees = [(package, DEFAULT_DOCS_PATH)]
  trees.extend(
    (name, release_docs_path(version))
    for version, name in release_packages(package, base_dir)
  )
  return trees


_RELEASE_TREE_RE = re.compile(r'^r\d+\.\d+$')


def _stale_release_trees(api_docs_dir, kept):
  """Release trees under `api_docs_dir` (`r1.N/python`) not in `kept`."""
  if not os.path.isdir(api_docs_dir):
    return []
  stale = []
  for entry in sorted(os.listdir(api_docs_dir)):
    tree = os.path.join(api_docs_dir, entry, 'python')
    if (
      _RELEASE_TREE_RE.match(entry)
      and entry not in kept
      and os.path.isfile(os.path.join(tree, '_toc.yaml'))
    ):
      stale.append(tree)
  return stale


def _remove_tree(tree):
  """Removes a generated tree (its pages and `_toc.yaml`; then empty dirs)."""
  write_files(tree, {})
  for dirpath, _, _ in sorted(os.walk(tree), reverse=True):
    if not os.listdir(dirpath):
      os.rmdir(dirpath)
  parent = os.path.dirname(tree)
  if os.path.isdir(parent) and not os.listdir(parent):
    os.rmdir(parent)


def _report(problems, label):
  for problem in problems:
    print('coverage: %s%s' % (label, problem), file=sys.stderr)


def main(argv=None):
  parser = argparse.ArgumentParser(
    description='Generate the API docs of kfac in the legacy format.'
  )
  parser.add_argument(
    '--output-dir',
    default=None,
    help='Directory to write the tree to, e.g. '
    'docs/api_docs/python (required unless --check-only '
    'or --all-releases). With --all-releases: the '
    'directory that stands for docs/api_docs (default: '
    'docs/api_docs of this repository).',
  )
  parser.add_argument(
    '--root-name',
    default=None,
    help='Public name of the package (default: kfac, also '
    'for a release face such as kfac.r1_6). E.g. '
    'tf.contrib.kfac.',
  )
  parser.add_argument(
    '--package',
    default='kfac',
    help='Import name of the package to document, e.g. '
    'kfac or the release face kfac.r1_6.',
  )
  parser.add_argument(
    '--all-releases',
    action='store_true',
    help='Write every tree: kfac to <api_docs>/python and '
    'each release face kfac.r1_N that exists to '
    '<api_docs>/r1.N/python (release trees whose package '
    'is gone are removed).',
  )
  parser.add_argument(
    '--code-url-prefix',
    default=None,
    help='Absolute URL prefix for "Defined in" links '
    '(default: relative links into this repository).',
  )
  parser.add_argument(
    '--docs-path',
    default=None,
    help='Location of the tree in the repository, used '
    'for relative "Defined in" links (default: '
    'docs/api_docs/python, or docs/api_docs/r1.N/python '
    'for kfac.r1_N).',
  )
  parser.add_argument(
    '--skip-coverage-check',
    action='store_true',
    help='Write the pages even if the coverage check '
    'reports problems (they are still printed).',
  )
  parser.add_argument(
    '--check-only',
    action='store_true',
    help='Only run the coverage check; write nothing.',
  )
  args = parser.parse_args(argv)
  if args.all_releases and (args.package != 'kfac' or args.docs_path):
    parser.error(
      '--all-releases documents kfac and every kfac.r1_N; it '
      'takes neither --package nor --docs-path'
    )
  if args.output_dir is None and not args.check_only and not args.all_releases:
    parser.error(
      '--output-dir is required (unless --check-only or --all-releases)'
    )

  if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
  if args.all_releases:
    trees = release_trees()
  else:
    docs_path = args.docs_path
    if docs_path is None:
      match = _RELEASE_DIR_RE.match(args.package.rpartition('.')[2])
      docs_path = (
        release_docs_path('%s.%s' % match.groups())
        if match and '.' in args.package
        else DEFAULT_DOCS_PATH
      )
    trees = [(args.package, docs_path)]
  built = []
  count = 0
  for package, docs_path in trees:
    files, problems, tree = build(
      package,
      args.root_name,
      code_url_prefix=args.code_url_prefix,
      docs_path=docs_path,
    )
    _report(problems, '%s: ' % package if args.all_releases else '')
    count += len(problems)
    built.append((package, docs_path, files, tree))
  if count:
    print('coverage check: %d problem(s)' % count, file=sys.stderr)
    if not args.skip_coverage_check:
      return 1
  if args.check_only:
    return 0
  if args.all_releases:
    api_docs = args.output_dir or os.path.join(REPO_ROOT, 'docs', 'api_docs')
    prefix = 'docs/api_docs/'
    for package, docs_path, files, tree in built:
      out = os.path.join(api_docs, *docs_path[len(prefix) :].split('/'))
      write_files(out, files)
      print(
        'wrote %d files (%d pages) of %s to %s'
        % (len(files), len(tree.pages()), package, out)
      )
    kept = {docs_path[len(prefix) :].split('/')[0] for _, docs_path in trees}
    for stale in _stale_release_trees(api_docs, kept):
      _remove_tree(stale)
      print('removed %s (no such release package)' % stale)
    return 0
  _, _, files, tree = built[0]
  write_files(args.output_dir, files)
  print(
    'wrote %d files (%d pages) to %s'
    % (len(files), len(tree.pages()), args.output_dir)
  )
  return 0


if __name__ == '__main__':
  sys.exit(main())
