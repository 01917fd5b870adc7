"""Builds a release's face of the engine modules (see `kfac._releases`).

A face module `kfac.r1_N.<module>` is filled by `fill_module(globals(),
"1.N", "<module>")`. Its namespace starts as the engine module's namespace;
then

* every function and class *defined by the engine module* is re-hosted: the
  face gets a function object sharing the engine's code but resolving its
  global names in the face module (so `fisher_factors.FullFactor` inside a
  face's block means that face's factor class, `super(FullFB, self)` that
  face's `FullFB`, and module constants changed by a face's
  `set_global_constants` are that face's own), and a class with the same
  members whose bases are the face's classes of the same names (so
  `__bases__`, `isinstance` and `inspect.signature` read like the release);
* references to the other engine modules are replaced by the face's modules;
* the release's `members` (adapters from `kfac._face_members`) are added;
* every class gets the class attribute `_release` (the `Release`), which
  engine code reads for the release's defaults and behaviour flags;
* `__all__` becomes the release's allow-list.

No source is copied: code objects are shared with the engine.
"""

import ast
import collections
import enum
import functools
import importlib
import inspect
import os
import re
import sys
import types

from kfac import _face_members
from kfac import _releases

_ENGINE_PACKAGE = "kfac"


def _engine_module(module_name, release=None):
  """The module a face of `module_name` is built from.

  The engine module itself, or the private module the release names in its
  `engine_modules` (e.g. the deferred factors of 1.8+, `kfac._deferred_factors`,
  whose classes call the engine's maths).
  """
  override = release.engine_modules.get(module_name) if release else None
  return importlib.import_module(
    override or "{}.{}".format(_ENGINE_PACKAGE, module_name)
  )


def _defined_in(obj, module):
  """Whether a function/class was written in `module` (not imported)."""
  return getattr(obj, "__module__", None) == module.__name__


# A `members` source of None: the face removes the member.
_REMOVE = object()

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _rebind_function(func, namespace, qualname_prefix=None, name=None):
  """A copy of `func` (same code) whose globals are `namespace`.

  Functions whose code is not kfac's (e.g. the wrapper that
  `contextlib.contextmanager` puts around a kfac generator) are returned
  unchanged.
  """
  if not os.path.abspath(func.__code__.co_filename).startswith(_PACKAGE_DIR):
    return func
  name = name or func.__name__
  new = types.FunctionType(
    func.__code__, namespace, name, func.__defaults__, func.__closure__
  )
  new.__kwdefaults__ = func.__kwdefaults__
  new.__dict__.update(func.__dict__)  # e.g. __isabstractmethod__
  new.__doc__ = func.__doc__
  new.__module__ = namespace["__name__"]
  new.__qualname__ = (
    "{}.{}".format(qualname_prefix, name) if qualname_prefix else name
  )
  return new


def _rebind_member(value, namespace, qualname_prefix, name=None):
  """Re-hosts one class-dict entry (function, property, static/classmethod)."""
  if isinstance(value, types.FunctionType):
    return _rebind_function(value, namespace, qualname_prefix, name)
  if isinstance(value, property):
    parts = [
      _rebind_member(f, namespace, qualname_prefix) if f else None
      for f in (value.fget, value.fset, value.fdel)
    ]
    return property(*parts, doc=value.__doc__)
  if isinstance(value, staticmethod):
    return staticmethod(
      _rebind_member(value.__func__, namespace, qualname_prefix, name)
    )
  if isinstance(value, classmethod):
    return classmethod(
      _rebind_member(value.__func__, namespace, qualname_prefix, name)
    )
  return value


# Per release: engine/foreign class -> its face class, and per foreign
# module the globals its re-hosted code runs with.
_FACE_CLASSES = {}
_SHADOW_GLOBALS = {}

_PUBLIC_MODULES = frozenset(_releases.MODULES)


def _is_public_engine_module(name):
  parts = name.split(".")
  return (
    len(parts) == 2
    and parts[0] == _ENGINE_PACKAGE
    and parts[1] in _PUBLIC_MODULES
  )


def _is_private_engine_module(name):
  parts = name.split(".")
  return (
    len(parts) == 2 and parts[0] == _ENGINE_PACKAGE and parts[1].startswith("_")
  )


def _globals_for(cls_or_func, namespace, release):
  """The globals re-hosted code of `cls_or_func` runs with in this face.

  Code of the engine module being faced and of `kfac._face_members` runs in
  the face module itself. Code of another private module (e.g. the release
  maths of `kfac._multi_use`) runs in a per-face copy of that module's
  globals in which the engine modules are the face's modules and the classes
  already re-hosted are their face classes.
  """
  if isinstance(cls_or_func, property):
    cls_or_func = cls_or_func.fget
  elif isinstance(cls_or_func, (staticmethod, classmethod)):
    cls_or_func = cls_or_func.__func__
  module_name = getattr(cls_or_func, "__module__", None)
  if module_name is None or not isinstance(
    cls_or_func, (type, types.FunctionType)
  ):
    return namespace
  face_short = namespace["__name__"].rsplit(".", 1)[-1]
  if (
    module_name in (_face_members.__name__, "kfac._deferred_members")
    or module_name.rsplit(".", 1)[-1] == face_short
    or module_name == release.engine_modules.get(face_short)
  ):
    return namespace
  key = (release.version, module_name)
  shadow = _SHADOW_GLOBALS.get(key)
  if shadow is None:
    shadow = dict(vars(importlib.import_module(module_name)))
    _SHADOW_GLOBALS[key] = shadow
  faces = namespace["_face_modules"]
  overrides = {m: short for short, m in release.engine_modules.items()}
  for k, v in list(shadow.items()):
    if isinstance(v, types.ModuleType) and _is_public_engine_module(v.__name__):
      short = v.__name__.rsplit(".", 1)[-1]
      if short in faces:
        shadow[k] = faces[short]
    elif isinstance(v, types.ModuleType) and v.__name__ in overrides:
      if overrides[v.__name__] in faces:
        shadow[k] = faces[overrides[v.__name__]]
  for engine_cls, face_cls in _FACE_CLASSES.get(release.version, {}).items():
    if shadow.get(engine_cls.__name__) is engine_cls:
      shadow[engine_cls.__name__] = face_cls
  return shadow


def _face_base(base, namespace, release):
  """The face's class standing for base class `base` (or None to inline).

  Engine classes of the public modules map to the face's class of the same
  name; classes of private modules (mixins) are inlined (None); anything
  else (TensorFlow, Python) stays.
  """
  known = _FACE_CLASSES.get(release.version, {})
  if base in known:
    return known[base]
  if vars(base).get("_face_keep_base"):
    # A private mixin that programs see as a base (e.g. 1.8's
    # `placement.RoundRobinPlacementMixin`).
    return base
  if _is_public_engine_module(base.__module__):
    candidate = namespace.get(base.__name__)
    if isinstance(candidate, type):
      return candidate
    short = base.__module__.rsplit(".", 1)[-1]
    face_module = namespace["_face_modules"].get(short)
    if face_module is not None and hasattr(face_module, base.__name__):
      return getattr(face_module, base.__name__)
    return base
  if _is_private_engine_module(base.__module__):
    return None
  return base


def _rehost_class(cls, namespace, release, extra_members=None, name=None):
  """A class with `cls`'s members, re-hosted in the face `namespace`.

  Bases that are engine classes become the face's classes; bases from the
  private modules (mixins) are inlined: their members are copied into the
  class (earlier bases win, as in the MRO), so `__bases__` shows only the
  release's classes.
  """
  bases = []
  inlined = []
  pending = list(cls.__bases__)
  while pending:
    base = pending.pop(0)
    if base.__name__ in release.inlined_bases:
      # A class the release does not have: its members are inlined and its
      # own bases take its place.
      inlined.append(base)
      pending[:0] = list(base.__bases__)
      continue
    face = _face_base(base, namespace, release)
    if face is None:
      inlined.append(base)
    elif face not in bases:
      bases.append(face)
  body = {}
  sources = []
  known = _FACE_CLASSES.get(release.version, {})
  for mixin in inlined:
    sources.extend(
      k
      for k in mixin.__mro__
      if _is_private_engine_module(k.__module__)
      and (k is mixin or k not in known)
      and k not in sources
    )
  for klass in reversed(sources):
    _copy_members(klass, body, namespace, release)
  _copy_members(cls, body, namespace, release)
  for key, value in (extra_members or {}).items():
    if key in body and "_engine_" + key not in body and value is not _REMOVE:
      # The replaced member stays reachable for the adapter that wraps it.
      body["_engine_" + key] = body[key]
    if value is _REMOVE:
      body.pop(key, None)
    else:
      body[key] = _rebind_member(
        value, _globals_for(value, namespace, release), cls.__name__, key
      )
  _apply_signatures(
    release,
    "{}.{}".format(
      namespace["__name__"].rsplit(".", 1)[-1], name or cls.__name__
    ),
    body,
    namespace,
  )
  body["__module__"] = namespace["__name__"]
  body["__qualname__"] = name or cls.__name__
  body["_release"] = release
  if not bases:
    bases = [object]
  face_cls = type(cls)(name or cls.__name__, tuple(bases), body)
  _FACE_CLASSES.setdefault(release.version, {})[cls] = face_cls
  for (version, _), shadow in _SHADOW_GLOBALS.items():
    if version == release.version and shadow.get(cls.__name__) is cls:
      shadow[cls.__name__] = face_cls
  return face_cls


def _copy_members(klass, body, namespace, release):
  """Copies `klass`'s own members into `body`, re-hosted."""
  func_globals = _globals_for(klass, namespace, release)
  for key, value in vars(klass).items():
    if key in (
      "__dict__",
      "__weakref__",
      "__abstractmethods__",
      "_abc_impl",
      "__module__",
      "__qualname__",
    ):
      continue
    body[key] = _rebind_member(value, func_globals, klass.__name__)


def _eval_default(node, namespace):
  """The value of a default written in a release signature."""
  try:
    return ast.literal_eval(node)
  except ValueError:
    pass
  parts = []
  while isinstance(node, ast.Attribute):
    parts.insert(0, node.attr)
    node = node.value
  if not isinstance(node, ast.Name):
    raise ValueError(
      "Unsupported default in a release signature: {}".format(ast.dump(node))
    )
  value = namespace[node.id]
  for part in parts:
    value = getattr(value, part)
  return value


def _parse_signature(params, namespace, with_self):
  """An `inspect.Signature` from a parameter list written as source."""
  tree = ast.parse(
    "def f({}{}): pass".format("self, " if with_self else "", params)
  )
  args = tree.body[0].args
  kind = inspect.Parameter

  def parameters(arguments, defaults, parameter_kind):
    """The `inspect.Parameter`s of `arguments` (a None default: no default)."""
    return [
      kind(
        arg.arg,
        parameter_kind,
        default=kind.empty
        if default is None
        else _eval_default(default, namespace),
      )
      for arg, default in zip(arguments, defaults)
    ]

  positional = args.posonlyargs + args.args
  defaults = [None] * (len(positional) - len(args.defaults)) + list(
    args.defaults
  )
  result = parameters(positional, defaults, kind.POSITIONAL_OR_KEYWORD)
  if args.vararg:
    result.append(kind(args.vararg.arg, kind.VAR_POSITIONAL))
  result.extend(
    parameters(args.kwonlyargs, args.kw_defaults, kind.KEYWORD_ONLY)
  )
  if args.kwarg:
    result.append(kind(args.kwarg.arg, kind.VAR_KEYWORD))
  return inspect.Signature(result)


def _docstring_for(doc, signature, arg_docs):
  """`doc` with its Args section restricted to (and ordered by) `signature`.

  Parameters described in `arg_docs` get that text instead of the engine's.
  """
  if not doc:
    return doc
  lines = doc.split("\n")
  try:
    start = next(i for i, l in enumerate(lines) if l.strip() == "Args:")
  except StopIteration:
    return doc
  indent = len(lines[start]) - len(lines[start].lstrip())
  entry_indent = indent + 2
  end = start + 1
  entries = collections.OrderedDict()
  current = None
  while end < len(lines):
    line = lines[end]
    stripped = line.strip()
    if stripped and len(line) - len(line.lstrip()) <= indent:
      break
    match = re.match(r"^(\**\w+)( \(.*?\))?:", stripped)
    if stripped and len(line) - len(line.lstrip()) == entry_indent and match:
      current = match.group(1).lstrip("*")
      entries[current] = [line]
    elif current is not None:
      entries[current].append(line)
    end += 1
  while (
    entries
    and entries[next(reversed(entries))]
    and not (entries[next(reversed(entries))][-1].strip())
  ):
    entries[next(reversed(entries))].pop()
  new_entries = []
  for name, param in signature.parameters.items():
    if name in ("self", "cls"):
      continue
    if name in arg_docs:
      stars = {param.VAR_POSITIONAL: "*", param.VAR_KEYWORD: "**"}.get(
        param.kind, ""
      )
      text = "{}{}{}: {}".format(
        " " * entry_indent, stars, name, arg_docs[name]
      )
      new_entries.extend(_wrap(text, entry_indent + 2))
    elif name in entries:
      new_entries.extend(entries[name])
    else:
      raise ValueError(
        "No description of parameter {!r} for the release docstring.".format(
          name
        )
      )
  tail = lines[end:]
  if tail:
    new_entries.append("")
  return "\n".join(lines[: start + 1] + new_entries + tail)


def _wrap(text, indent):
  """Wraps a docstring line at 80 columns with a hanging indent."""
  words = text.split(" ")
  lines, line = [], ""
  lead = len(text) - len(text.lstrip())
  line = " " * lead
  for word in text.lstrip().split(" "):
    if len(line) + len(word) + 1 > 80 and line.strip():
      lines.append(line.rstrip())
      line = " " * indent
    line += word + " "
  lines.append(line.rstrip())
  del words
  return lines


def _with_signature(func, params, namespace, arg_docs, is_method):
  """Wraps `func` so that it takes the release's parameters `params`.

  The arguments are bound to the release signature (positional order,
  defaults and names of the release; anything else is a TypeError as for a
  plain function) and passed to `func` by keyword. Keyword arguments that
  only the engine's `func` knows are passed through unchanged.
  """
  signature = _parse_signature(params, namespace, with_self=is_method)
  # Keywords of the engine function outside the release's signature: the
  # engine's own calls between modules may pass them (e.g. the optimizer
  # building its estimator), so they are passed through, by keyword only.
  # The parameters the engine's code really takes (not a `__signature__`
  # the engine may document instead).
  plain = types.FunctionType(
    func.__code__,
    func.__globals__,
    func.__name__,
    func.__defaults__,
    func.__closure__,
  )
  plain.__kwdefaults__ = func.__kwdefaults__
  engine_params = inspect.signature(plain).parameters
  engine_only = set(engine_params) - set(signature.parameters)
  # Parameters of the release that the engine function lacks are stored on
  # the instance as `_<name>` (e.g. 1.5's `colocate_cov_ops_with_inputs`),
  # where engine code reads them.
  absorbed = {
    n
    for n, p in signature.parameters.items()
    if n not in engine_params
    and n not in ("self", "cls")
    and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
  }
  if absorbed and not is_method:
    raise ValueError("{} lacks parameters {}".format(func.__name__, absorbed))
  engine_takes_kwargs = any(
    p.kind is p.VAR_KEYWORD for p in engine_params.values()
  )

  @functools.wraps(func)
  def wrapper(*args, **kwargs):
    extra = {k: kwargs.pop(k) for k in list(kwargs) if k in engine_only}
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    positional, keywords = [], {}
    for name, value in bound.arguments.items():
      kind = signature.parameters[name].kind
      if name in ("self", "cls") and not positional and not keywords:
        positional.append(value)
      elif kind is inspect.Parameter.VAR_POSITIONAL:
        positional.extend(value)
      elif kind is inspect.Parameter.VAR_KEYWORD:
        keywords.update(value)
      elif name in absorbed and not engine_takes_kwargs:
        setattr(positional[0], "_" + name, value)
      else:
        keywords[name] = value
    keywords.update(extra)
    return func(*positional, **keywords)

  del wrapper.__wrapped__
  wrapper.__signature__ = signature
  wrapper.__doc__ = _docstring_for(func.__doc__, signature, arg_docs)
  return wrapper


def _arg_docs(release, key):
  """Parameter descriptions for `key`.

  The release-wide ("*") ones come first, then those declared for `key`.
  """
  docs = dict(release.arg_docs.get("*", {}))
  docs.update(release.arg_docs.get(key, {}))
  return docs


def _apply_signatures(release, target, body, namespace):
  """Wraps the members of `body` that `release` gives other signatures."""
  prefix = target + "."
  for key, params in release.signatures.items():
    if not key.startswith(prefix) or "." in key[len(prefix) :]:
      continue
    member = key[len(prefix) :]
    func = body[member]
    body[member] = _with_signature(
      func, params, namespace, _arg_docs(release, key), is_method=True
    )


def _source(source):
  """The object a `members` source names.

  "name" is a member of `kfac._face_members`; "kfac._module:name" an
  attribute of another private module (e.g. the release maths).
  """
  if source is None:
    return _REMOVE
  if ":" in source:
    module_name, path = source.split(":")
    value = importlib.import_module(module_name)
    for attr in path.split("."):
      value = (
        vars(value)[attr] if isinstance(value, type) else getattr(value, attr)
      )
    return value
  return getattr(_face_members, source)


def _members_for(release, target):
  """Name -> object of the face members declared for `target`.

  A member declared with source None maps to `_REMOVE`: the face removes it.
  """
  return {
    member: _source(source)
    for member, source in release.members.get(target, ())
  }


def _class_order(classes):
  """Classes sorted so that bases come before their subclasses."""
  ordered = []
  pending = list(classes)
  while pending:
    for cls in pending:
      if not any(b in pending for b in cls.__mro__[1:]):
        ordered.append(cls)
        pending.remove(cls)
        break
  return ordered


def _global_names(code):
  """The names a code object (and the functions nested in it) may read."""
  names = set(code.co_names)
  for const in code.co_consts:
    if isinstance(const, types.CodeType):
      names |= _global_names(const)
  return names


def fill_module(namespace, version, module_name):
  """Turns the module whose globals are `namespace` into a face module.

  Args:
    namespace: The `globals()` of `kfac/r1_N/<module_name>.py`.
    version: The release, a key of `kfac._releases.RELEASES`.
    module_name: One of `kfac._releases.MODULES`.
  """
  release = _releases.get(version)
  engine = _engine_module(module_name, release)
  face_modules = {
    name: importlib.import_module("{}.{}".format(release.package, name))
    for name in _releases.MODULES[: _releases.MODULES.index(module_name)]
  }
  keep = {
    k: namespace[k]
    for k in (
      "__name__",
      "__file__",
      "__package__",
      "__loader__",
      "__spec__",
      "__builtins__",
    )
    if k in namespace
  }
  doc = namespace.get("__doc__")
  namespace.clear()
  namespace.update(vars(engine))
  namespace.update(keep)
  namespace["__doc__"] = doc or engine.__doc__
  namespace["_face_modules"] = face_modules
  # Engine modules imported by this one -> the face's modules.
  overrides = {m: short for short, m in release.engine_modules.items()}
  for key, value in list(namespace.items()):
    if isinstance(value, types.ModuleType) and value is engine:
      # The module's reference to itself (borrowed engine code names it).
      namespace[key] = sys.modules.get(namespace["__name__"], value)
      continue
    if isinstance(value, types.ModuleType):
      short = overrides.get(value.__name__, value.__name__.rsplit(".", 1)[-1])
      if (
        value.__name__.startswith(_ENGINE_PACKAGE + ".")
        and short in face_modules
        and (short in _PUBLIC_MODULES)
        and (
          _is_public_engine_module(value.__name__)
          or value.__name__ in overrides
        )
      ):
        namespace[key] = face_modules[short]
  # Functions, then classes (bases first), then dicts holding functions.
  rebound = {}
  for key, value in list(namespace.items()):
    if isinstance(value, types.FunctionType) and _defined_in(value, engine):
      rebound[value] = namespace[key] = _rebind_function(value, namespace)
  classes = [
    v
    for v in vars(engine).values()
    if isinstance(v, type)
    and _defined_in(v, engine)
    and not issubclass(v, enum.Enum)
  ]
  for cls in _class_order(classes):
    name = release.renamed_classes.get(
      "{}.{}".format(module_name, cls.__name__), cls.__name__
    )
    extra = _members_for(release, "{}.{}".format(module_name, name))
    rebound[cls] = namespace[name] = _rehost_class(
      cls, namespace, release, extra, name
    )
    if name != cls.__name__:
      del namespace[cls.__name__]
  for key, value in list(namespace.items()):
    if (
      isinstance(value, dict)
      and not key.startswith("__")
      and any(
        v in rebound
        for v in value.values()
        if isinstance(v, (types.FunctionType, type))
      )
    ):
      namespace[key] = type(value)(
        (k, rebound.get(v, v)) for k, v in value.items()
      )
  # Module-level members of the release (new functions and classes).
  # Private helpers of the adapters, for the adapters re-hosted here.
  helper_modules = [_face_members]
  if release.construction == "deferred":
    helper_modules.append(importlib.import_module("kfac._deferred_members"))
  for helpers in helper_modules:
    for key, value in vars(helpers).items():
      if (
        key.startswith("_")
        and not key.startswith("__")
        and isinstance(value, types.FunctionType)
        and key not in namespace
      ):
        namespace[key] = _rebind_function(value, namespace)
  module_members = _members_for(release, module_name)
  finish = module_members.pop("__finish__", None)
  for name, value in module_members.items():
    if name in namespace and "_engine_" + name not in namespace:
      # The replaced function stays reachable for the adapter that wraps it.
      namespace["_engine_" + name] = namespace[name]
    if value is _REMOVE:
      namespace.pop(name, None)
    elif (
      isinstance(value, type)
      and not issubclass(value, enum.Enum)
      and not vars(value).get("_face_shared")
      and (
        _is_private_engine_module(value.__module__)
        or value.__module__ == _face_members.__name__
      )
    ):
      namespace[name] = _rehost_class(
        value,
        namespace,
        release,
        _members_for(release, "{}.{}".format(module_name, name)),
        name,
      )
    elif isinstance(value, types.FunctionType):
      # Module functions run in the face module when every global they use
      # is there (so they see the face's constants), else with the globals
      # of the module they were written in (see `_globals_for`).
      home = vars(importlib.import_module(value.__module__))
      used = [n for n in _global_names(value.__code__) if n in home]
      func_globals = (
        namespace
        if all(n in namespace for n in used)
        else _globals_for(value, namespace, release)
      )
      namespace[name] = _rebind_function(value, func_globals, name=name)
      namespace[name].__module__ = namespace["__name__"]
    else:
      namespace[name] = value
  for key, params in release.signatures.items():
    owner, _, name = key.rpartition(".")
    if owner == module_name:
      namespace[name] = _with_signature(
        namespace[name],
        params,
        namespace,
        _arg_docs(release, key),
        is_method=False,
      )
  namespace["_release"] = release
  namespace["__all__"] = list(release.exports[module_name])
  if finish is not None:
    _rebind_function(finish, namespace)()


def fill_package(namespace, version):
  """Fills `kfac/r1_N/__init__.py`: imports the nine face modules.

  Args:
    namespace: The package's `globals()`.
    version: The release.
  """
  release = _releases.get(version)
  for name in _releases.MODULES:
    namespace[name] = importlib.import_module(
      "{}.{}".format(release.package, name)
    )
  namespace["_release"] = release


def fill_extra_module(namespace, version, module_name):
  """Fills a never-exported module of a release (`placement`, 1.8+).

  The module's names are those of the private module the release names in
  `extra_modules` (the same objects: the placement mix-in is a base of the
  face's estimator class), with the release's `members` for `module_name`
  put over them.

  Args:
    namespace: The `globals()` of `kfac/r1_N/<module_name>.py`.
    version: The release.
    module_name: A key of the release's `extra_modules`.
  """
  release = _releases.get(version)
  source = importlib.import_module(release.extra_modules[module_name])
  for key, value in vars(source).items():
    if not key.startswith("__"):
      namespace[key] = value
  for name, value in _members_for(release, module_name).items():
    if value is _REMOVE:
      namespace.pop(name, None)
    else:
      namespace[name] = value
  namespace["_release"] = release
  namespace["__all__"] = [
    n for n in getattr(source, "__all__", ()) if n in namespace
  ]
