"""Tests for tools/build_api_docs.py, the legacy-format API docs generator.

Expected pages below are written by hand from the legacy page recipes
(`../shared/spec/docs_format.md`); the reference page's structure lives in
`tests/data/reference/`. Fixture packages are in `tests/data/docs_fixtures/`.
"""

import ast
import contextlib
import functools
import importlib
import io
import os
import posixpath
import re
import sys
import tempfile

from absl.testing import absltest
from absl.testing import parameterized

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, 'tests', 'data')
FIXTURES = os.path.join(DATA, 'docs_fixtures')
COMMITTED = os.path.join(REPO, 'docs', 'api_docs', 'python')
for _path in (REPO, os.path.join(REPO, 'tools'), FIXTURES):
  if _path not in sys.path:
    sys.path.insert(0, _path)

import build_api_docs

LEGACY_MODULES = (
  'curvature_matrix_vector_products',
  'estimator',
  'fisher_blocks',
  'fisher_factors',
  'layer_collection',
  'loss_functions',
  'op_queue',
  'optimizer',
  'utils',
)


@functools.cache
def _build(package, root_name=None):
  files, problems, tree = build_api_docs.build(package, root_name)
  return files, tuple(problems), tree


def _kfac_exposes(module):
  kfac = importlib.import_module('kfac')
  return module in getattr(kfac, '__all__', ()) or (
    hasattr(kfac, module) and module in dir(kfac)
  )


# ---------------------------------------------------------------------------
# Normalisation used to hold a page against the reference page's structure.
# ---------------------------------------------------------------------------

_STRUCTURAL = re.compile(
  r'^(#{1,4} |<h3 |Inherits From: |``` python$|```$|<div |<meta |</div>$)'
)
_ITEM = re.compile(r'^(\* <b>`[^`]+`</b>:)( |$)')


def normalize_structure(text):
  """Keeps a page's structure and blanks out docstring prose.

  Kept exactly: the metadata block, headings, `<h3>` anchors, `Inherits
  From:`, signature blocks and blank lines between structural lines. An
  Args/Raises item keeps `* <b>`name`</b>:`; its text and continuation lines
  are dropped. The `Defined in` line becomes `Defined in <target>.`. A run of
  prose lines (with the blank lines inside it) becomes one empty line, so an
  empty docstring and a one-paragraph docstring normalise alike.

  Args:
    text: A page.

  Returns:
    The normalised page.
  """
  out = []
  in_fence = False
  prose = False
  in_item = False
  pending_blanks = 0
  for line in text.split('\n'):
    if in_fence:
      out.append(line)
      in_fence = line != '```'
      continue
    if not line:
      if prose or in_item:
        pending_blanks += 1
      else:
        out.append('')
      continue
    if line.startswith('Defined in '):
      kind, line = 'struct', 'Defined in <target>.'
    elif _STRUCTURAL.match(line):
      kind = 'struct'
    elif _ITEM.match(line):
      kind = 'item'
    else:
      kind = 'prose'
    if kind == 'prose':
      if in_item and not pending_blanks:
        continue  # continuation line of an item
      if prose:
        pending_blanks = 0  # blank lines inside a prose run belong to it
        continue
      if in_item:
        out.extend([''] * pending_blanks)
        in_item = False
      pending_blanks = 0
      prose = True
      out.append('')
      continue
    out.extend([''] * pending_blanks)
    pending_blanks = 0
    prose = in_item = False
    if kind == 'item':
      out.append(_ITEM.match(line).group(1))
      in_item = True
      continue
    out.append(line)
    in_fence = line == '``` python'
  out.extend([''] * pending_blanks)
  return '\n'.join(out)


def _read(path):
  with open(path, encoding='utf-8', newline='') as f:
    return f.read()


def _line_diff(expected, actual):
  exp, act = expected.split('\n'), actual.split('\n')
  for i in range(max(len(exp), len(act))):
    e = exp[i] if i < len(exp) else '<missing>'
    a = act[i] if i < len(act) else '<missing>'
    if e != a:
      return 'first difference at line %d:\n  expected: %r\n  actual:   %r' % (
        i + 1,
        e,
        a,
      )
  return 'identical'


# ---------------------------------------------------------------------------
# Hand-written expected pages for the edge-case fixture package.
# ---------------------------------------------------------------------------

_HEADER = (
  '<div itemscope itemtype="http://developers.google.com/ReferenceObject">\n'
)

EXPECTED_BARE = (
  _HEADER
  + '''\
<meta itemprop="name" content="edge_pkg.shapes.Bare" />
<meta itemprop="property" content="__init__"/>
<meta itemprop="property" content="empty"/>
<meta itemprop="property" content="returns_header_only"/>
<meta itemprop="property" content="sections_with_blank"/>
</div>

# edge_pkg.shapes.Bare

## Class `Bare`



### Aliases:

* Class `edge_pkg.shapes.Bare`
* Class `edge_pkg.zalias.Bare`



Defined in [`edge_pkg/shapes.py`](../../../../../edge_pkg/shapes.py).

A class with no documented base.

## Methods

<h3 id="__init__"><code>__init__</code></h3>

``` python
__init__(
    alpha,
    beta=None
)
```

Makes a Bare.

#### Args:

* <b>`alpha`</b>: First argument,
    continued.
* <b>`beta`</b>: Second argument.

<h3 id="empty"><code>empty</code></h3>

``` python
empty()
```



<h3 id="returns_header_only"><code>returns_header_only</code></h3>

``` python
returns_header_only()
```

Returns only.

#### Returns:

A header text only,
over two lines.

<h3 id="sections_with_blank"><code>sections_with_blank</code></h3>

``` python
sections_with_blank(x)
```

Has a blank line between sections.

#### Args:

* <b>`x`</b>: An input.


#### Returns:

Something.


#### Raises:

* <b>`ValueError`</b>: If bad.



'''
)

EXPECTED_DERIVED_METHODS = '''\
<h3 id="sections_without_blank"><code>sections_without_blank</code></h3>

``` python
sections_without_blank(
    x,
    *args,
    **kwargs
)
```

No blank lines.
#### Args:

* <b>`x`</b>: An input.
* <b>`*args`</b>: More.
* <b>`**kwargs`</b>: Even more.

#### Returns:

Nothing.

<h3 id="static"><code>static</code></h3>

``` python
@staticmethod
static(
    value,
    *,
    scale=1.0,
    name=None
)
```

Static method with keyword-only arguments.



'''

EXPECTED_DERIVED_TOP = (
  _HEADER
  + '''\
<meta itemprop="name" content="edge_pkg.shapes.Derived" />
<meta itemprop="property" content="__init__"/>
<meta itemprop="property" content="build"/>
<meta itemprop="property" content="empty"/>
<meta itemprop="property" content="returns_header_only"/>
<meta itemprop="property" content="sections_with_blank"/>
<meta itemprop="property" content="sections_without_blank"/>
<meta itemprop="property" content="static"/>
</div>

# edge_pkg.shapes.Derived

## Class `Derived`

Inherits From: [`Bare`](../../edge_pkg/shapes/Bare.md)



Defined in [`edge_pkg/shapes.py`](../../../../../edge_pkg/shapes.py).

Derived from Bare.

#### Attributes:

* <b>`gamma`</b>: An attribute.

## Methods

<h3 id="__init__"><code>__init__</code></h3>
'''
)

EXPECTED_BUILD = '''\
<h3 id="build"><code>build</code></h3>

``` python
@classmethod
build(
    cls,
    size=(1, 1),
    mode='regular',
    axis=-1,
    limit=LIMIT
)
```

Class method with defaults given as source text.

<h3 id="empty">'''

EXPECTED_WITH_PROPERTIES = (
  _HEADER
  + '''\
<meta itemprop="name" content="edge_pkg.shapes.WithProperties" />
<meta itemprop="property" content="documented"/>
<meta itemprop="property" content="undocumented"/>
<meta itemprop="property" content="method"/>
<meta itemprop="property" content="BLUE"/>
<meta itemprop="property" content="RED"/>
</div>

# edge_pkg.shapes.WithProperties

## Class `WithProperties`





Defined in [`edge_pkg/shapes.py`](../../../../../edge_pkg/shapes.py).

Has properties and class members.

## Properties

<h3 id="documented"><code>documented</code></h3>

The documented property.

<h3 id="undocumented"><code>undocumented</code></h3>





## Methods

<h3 id="method"><code>method</code></h3>

``` python
method()
```

See [`edge_pkg.shapes.Bare`](../../edge_pkg/shapes/Bare.md) and \
[its method](../../edge_pkg/shapes/Bare.md#empty).



## Class Members

<h3 id="BLUE"><code>BLUE</code></h3>

<h3 id="RED"><code>RED</code></h3>

'''
)

EXPECTED_PLAIN = (
  _HEADER
  + '''\
<meta itemprop="name" content="edge_pkg.plain" />
<meta itemprop="property" content="RATE"/>
<meta itemprop="property" content="TABLE"/>
</div>

# Module: edge_pkg.plain



Defined in [`edge_pkg/plain.py`](../../../../edge_pkg/plain.py).

Module without __all__.

## Functions

[`no_doc(...)`](../edge_pkg/plain/no_doc.md)

[`one_line(...)`](../edge_pkg/plain/one_line.md): Just one line.

## Other Members

`RATE`

`TABLE`

'''
)

EXPECTED_NO_DOC = (
  _HEADER
  + '''\
<meta itemprop="name" content="edge_pkg.plain.no_doc" />
</div>

# edge_pkg.plain.no_doc

``` python
no_doc(a)
```



Defined in [`edge_pkg/plain.py`](../../../../../edge_pkg/plain.py).

'''
)

EXPECTED_ONE_LINE = (
  _HEADER
  + '''\
<meta itemprop="name" content="edge_pkg.plain.one_line" />
</div>

# edge_pkg.plain.one_line

``` python
one_line()
```



Defined in [`edge_pkg/plain.py`](../../../../../edge_pkg/plain.py).

Just one line.'''
)

EXPECTED_HELPER = (
  _HEADER
  + '''\
<meta itemprop="name" content="edge_pkg.shapes.helper" />
</div>

# edge_pkg.shapes.helper

``` python
helper(
    x,
    cls=edge_pkg.shapes.Bare,
    missing=NOT_LISTED
)
```



Defined in [`edge_pkg/shapes.py`](../../../../../edge_pkg/shapes.py).

Helper with a documented symbol as a default.

#### Args:

* <b>`x`</b>: A value.
* <b>`cls`</b>: A class.
* <b>`missing`</b>: A constant.


#### Returns:

`x`.'''
)

EXPECTED_SHAPES = (
  _HEADER
  + '''\
<meta itemprop="name" content="edge_pkg.shapes" />
<meta itemprop="property" content="LIMIT"/>
<meta itemprop="property" content="NAMES"/>
</div>

# Module: edge_pkg.shapes



Defined in [`edge_pkg/shapes.py`](../../../../edge_pkg/shapes.py).

Shapes of pages: classes, properties and class members.

A second paragraph of module text.



## Classes

[`class Bare`](../edge_pkg/shapes/Bare.md): A class with no documented base.

[`class Derived`](../edge_pkg/shapes/Derived.md): Derived from Bare.

[`class WithProperties`](../edge_pkg/shapes/WithProperties.md): \
Has properties and class members.

## Functions

[`helper(...)`](../edge_pkg/shapes/helper.md): \
Helper with a documented symbol as a default.

## Other Members

`LIMIT`

`NAMES`

'''
)

EXPECTED_ROOT = (
  _HEADER
  + '''\
<meta itemprop="name" content="edge_pkg" />
</div>

# Module: edge_pkg



Defined in [`edge_pkg/__init__.py`](../../../edge_pkg/__init__.py).

Edge cases for the docs generator.

No `__all__` here: the public names are the submodules imported below.

## Modules

[`plain`](./edge_pkg/plain.md) module: Module without __all__.

[`shapes`](./edge_pkg/shapes.md) module: \
Shapes of pages: classes, properties and class members.

[`zalias`](./edge_pkg/zalias.md) module: \
Re-exports a class under a second name.

'''
)

EXPECTED_ZALIAS = (
  _HEADER
  + '''\
<meta itemprop="name" content="edge_pkg.zalias" />
</div>

# Module: edge_pkg.zalias



Defined in [`edge_pkg/zalias.py`](../../../../edge_pkg/zalias.py).

Re-exports a class under a second name.

## Classes

[`class Bare`](../edge_pkg/shapes/Bare.md): A class with no documented base.

'''
)

EXPECTED_INDEX = '''\
# All symbols in edge_pkg

*  [`edge_pkg`](./edge_pkg.md)
*  [`edge_pkg.plain`](./edge_pkg/plain.md)
*  [`edge_pkg.plain.no_doc`](./edge_pkg/plain/no_doc.md)
*  [`edge_pkg.plain.one_line`](./edge_pkg/plain/one_line.md)
*  [`edge_pkg.shapes`](./edge_pkg/shapes.md)
*  [`edge_pkg.shapes.Bare`](./edge_pkg/shapes/Bare.md)
*  [`edge_pkg.shapes.Derived`](./edge_pkg/shapes/Derived.md)
*  [`edge_pkg.shapes.WithProperties`](./edge_pkg/shapes/WithProperties.md)
*  [`edge_pkg.shapes.helper`](./edge_pkg/shapes/helper.md)
*  [`edge_pkg.zalias`](./edge_pkg/zalias.md)
*  [`edge_pkg.zalias.Bare`](./edge_pkg/shapes/Bare.md)'''

_P = '/TARGET_DOC_ROOT/VERSION/api_docs/python/edge_pkg'
EXPECTED_TOC = '''\
# Automatically generated file; please do not edit
toc:
  - title: edge_pkg
    section:
    - title: Overview
      path: {p}
  - title: edge_pkg.plain
    section:
    - title: Overview
      path: {p}/plain
    - title: no_doc
      path: {p}/plain/no_doc
    - title: one_line
      path: {p}/plain/one_line
  - title: edge_pkg.shapes
    section:
    - title: Overview
      path: {p}/shapes
    - title: Bare
      path: {p}/shapes/Bare
    - title: Derived
      path: {p}/shapes/Derived
    - title: helper
      path: {p}/shapes/helper
    - title: WithProperties
      path: {p}/shapes/WithProperties
  - title: edge_pkg.zalias
    section:
    - title: Overview
      path: {p}/zalias
'''.format(p=_P)


class EdgeCasePagesTest(parameterized.TestCase):
  """Whole pages of the edge-case fixture against hand-written bytes."""

  @parameterized.named_parameters(
    (
      'class_without_base_with_aliases',
      'edge_pkg/shapes/Bare.md',
      EXPECTED_BARE,
    ),
    (
      'properties_and_class_members',
      'edge_pkg/shapes/WithProperties.md',
      EXPECTED_WITH_PROPERTIES,
    ),
    ('module_without_all_constants', 'edge_pkg/plain.md', EXPECTED_PLAIN),
    ('function_without_docstring', 'edge_pkg/plain/no_doc.md', EXPECTED_NO_DOC),
    (
      'function_one_line_docstring',
      'edge_pkg/plain/one_line.md',
      EXPECTED_ONE_LINE,
    ),
    (
      'function_sections_and_symbol_default',
      'edge_pkg/shapes/helper.md',
      EXPECTED_HELPER,
    ),
    ('module_sections_not_rendered', 'edge_pkg/shapes.md', EXPECTED_SHAPES),
    ('package_page', 'edge_pkg.md', EXPECTED_ROOT),
    ('module_with_alias_only', 'edge_pkg/zalias.md', EXPECTED_ZALIAS),
    ('index', 'index.md', EXPECTED_INDEX),
    ('toc', '_toc.yaml', EXPECTED_TOC),
  )
  def test_page(self, path, expected):
    files = _build('edge_pkg')[0]
    self.assertIn(path, files)
    self.assertEqual(files[path], expected, _line_diff(expected, files[path]))

  @parameterized.named_parameters(
    ('header_base_and_attributes', EXPECTED_DERIVED_TOP),
    ('classmethod_decorator_and_source_defaults', EXPECTED_BUILD),
    ('sections_without_blank_staticmethod_kwonly', EXPECTED_DERIVED_METHODS),
  )
  def test_derived_page_parts(self, expected):
    page = _build('edge_pkg')[0]['edge_pkg/shapes/Derived.md']
    self.assertIn(expected, page)

  def test_derived_page_ends_with_methods(self):
    page = _build('edge_pkg')[0]['edge_pkg/shapes/Derived.md']
    self.assertTrue(page.endswith(EXPECTED_DERIVED_METHODS))

  def test_exact_file_set(self):
    self.assertEqual(
      sorted(_build('edge_pkg')[0]),
      [
        '_toc.yaml',
        'edge_pkg.md',
        'edge_pkg/plain.md',
        'edge_pkg/plain/no_doc.md',
        'edge_pkg/plain/one_line.md',
        'edge_pkg/shapes.md',
        'edge_pkg/shapes/Bare.md',
        'edge_pkg/shapes/Derived.md',
        'edge_pkg/shapes/WithProperties.md',
        'edge_pkg/shapes/helper.md',
        'edge_pkg/zalias.md',
        'index.md',
      ],
    )

  def test_root_name_renames_paths_links_and_titles(self):
    files = _build('edge_pkg', 'tf.contrib.edge')[0]
    page = files['tf/contrib/edge/shapes/Derived.md']
    self.assertIn('# tf.contrib.edge.shapes.Derived\n', page)
    self.assertIn(
      'Inherits From: [`Bare`](../../../../tf/contrib/edge/shapes/Bare.md)',
      page,
    )
    self.assertIn(
      'Defined in [`edge_pkg/shapes.py`]'
      '(../../../../../../../edge_pkg/shapes.py).',
      page,
    )
    self.assertIn(
      '[`plain`](../../tf/contrib/edge/plain.md) module',
      files['tf/contrib/edge.md'],
    )

  def test_deterministic(self):
    first = build_api_docs.build('edge_pkg')[0]
    second = build_api_docs.build('edge_pkg')[0]
    self.assertEqual(first, second)


class CommandLineTest(absltest.TestCase):
  def test_root_name_writes_legacy_paths(self):
    with tempfile.TemporaryDirectory() as tmp:
      with contextlib.redirect_stdout(io.StringIO()):
        rc = build_api_docs.main(
          [
            '--output-dir',
            tmp,
            '--package',
            'legacy_kfac',
            '--root-name',
            'tf.contrib.kfac',
          ]
        )
      self.assertEqual(rc, 0)
      page = os.path.join(
        tmp, 'tf', 'contrib', 'kfac', 'fisher_factors', 'ConvDiagonalFactor.md'
      )
      self.assertTrue(os.path.isfile(page))
      self.assertTrue(
        os.path.isfile(os.path.join(tmp, 'tf', 'contrib', 'kfac.md'))
      )
      self.assertTrue(
        _read(os.path.join(tmp, 'index.md')).startswith(
          '# All symbols in tf.contrib.kfac\n\n*  [`tf.contrib.kfac`]'
          '(./tf/contrib/kfac.md)\n'
        )
      )

  def test_rewrite_removes_stale_pages_only(self):
    with tempfile.TemporaryDirectory() as tmp:
      stale = os.path.join(tmp, 'legacy_kfac', 'gone', 'Old.md')
      os.makedirs(os.path.dirname(stale))
      with open(stale, 'w') as f:
        f.write('old')
      keep = os.path.join(tmp, 'notes.txt')
      with open(keep, 'w') as f:
        f.write('not a page')
      files = _build('legacy_kfac')[0]
      build_api_docs.write_files(tmp, files)  # first run: no _toc.yaml yet
      self.assertTrue(os.path.exists(stale))
      build_api_docs.write_files(tmp, files)
      self.assertFalse(os.path.exists(stale))
      self.assertFalse(os.path.exists(os.path.dirname(stale)))
      self.assertTrue(os.path.exists(keep))
      for rel, text in files.items():
        self.assertEqual(_read(os.path.join(tmp, *rel.split('/'))), text)


class DocstringPartsTest(parameterized.TestCase):
  """The docstring splitting rules (§2.4, §2.5 of the format)."""

  @parameterized.named_parameters(
    ('no_sections', 'Line one.\n\nMore.', 'Line one.\n\nMore.', []),
    (
      'blank_before_args',
      'Brief.\n\nArgs:\n  a: x.\n',
      'Brief.\n\n',
      [('Args', '', [('a', 'x.\n')])],
    ),
    (
      'no_blank_between_sections',
      'B.\nArgs:\n  a: x.\nReturns:\n  y.',
      'B.\n',
      [('Args', '', [('a', 'x.\n')]), ('Returns', '  y.', [])],
    ),
    (
      'trailing_space_not_a_section',
      'B.\nArgs: \n  a: x.',
      'B.\nArgs: \n  a: x.',
      [],
    ),
    (
      'indented_keyword_not_a_section',
      'B.\n  Args:\n  a: x.',
      'B.\n  Args:\n  a: x.',
      [],
    ),
    (
      'continuations_verbatim',
      'B.\nArgs:\n  a: x\n    more\n  b: y',
      'B.\n',
      [('Args', '', [('a', 'x\n    more\n'), ('b', 'y')])],
    ),
    (
      'stars_and_header',
      'B.\nRaises:\n  Head.\n  *args: s\n',
      'B.\n',
      [('Raises', '  Head.\n', [('*args', 's\n')])],
    ),
    (
      'arguments_keyword_kept',
      'B.\nArguments:\n  a: x',
      'B.\n',
      [('Arguments', '', [('a', 'x')])],
    ),
  )
  def test_split_details(self, docstring, main, details):
    got_main, got = build_api_docs.split_details(docstring)
    self.assertEqual(got_main, main)
    self.assertEqual([(d.keyword, d.header, d.items) for d in got], details)

  def test_render_detail(self):
    detail = build_api_docs.FunctionDetail('Returns', '  Text\n  more.\n', [])
    self.assertEqual(detail.render(), '#### Returns:\n\nText\nmore.\n')

  def test_docstrings_are_not_inherited(self):

    class Base(object):
      def __init__(self):
        """Base init."""

    class Child(Base):
      def __init__(self):  # pylint: disable=super-init-not-called
        pass

    self.assertEqual(build_api_docs.raw_docstring(Child.__init__), '')
    self.assertEqual(build_api_docs.raw_docstring(Child), '')
    self.assertEqual(build_api_docs.raw_docstring(3), '')


class SignatureTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ('none', lambda: None, []),
    (
      'defaults_as_source',
      lambda a, b=(1, 1), c='x', d=-1, e=None: None,
      ['a', 'b=(1, 1)', "c='x'", 'd=-1', 'e=None'],
    ),
    ('varargs', lambda a, *args, **kwargs: None, ['a', '*args', '**kwargs']),
    ('keyword_only', lambda a, *, b=2: None, ['a', '*', 'b=2']),
    ('builtin_text_signature', dict.get, ['key', 'default=None']),
  )
  def test_format_arguments(self, func, expected):
    self.assertEqual(build_api_docs.format_arguments(func), expected)

  def test_self_dropped_cls_kept(self):

    class Thing(object):
      def method(self, x):
        return x

      @classmethod
      def make(cls, y=1):
        return cls, y

    self.assertEqual(build_api_docs.format_arguments(Thing.method), ['x'])
    self.assertEqual(
      build_api_docs.format_arguments(Thing.make), ['cls', 'y=1']
    )


class CoverageCheckTest(parameterized.TestCase):
  def test_fixture_problems_named(self):
    problems = list(_build('coverage_pkg')[1])
    self.assertEqual(
      problems,
      [
        'coverage_pkg.not_there: listed in __all__ but not defined',
        'coverage_pkg.problems.Mixed.bad_args: Args: (a, c) do not match '
        'signature (a, b); undocumented: b; not in signature: c',
        'coverage_pkg.problems.Mixed.bare_property: property has no docstring',
        'coverage_pkg.problems.NoDoc.method: method has no docstring',
        'coverage_pkg.problems.NoDoc: class has no docstring',
        'coverage_pkg.problems.extra_arg: Args: (x, y) do not match '
        'signature (x); not in signature: y',
        'coverage_pkg.problems.missing_arg: Args: (x) do not match '
        'signature (x, y); undocumented: y',
        'coverage_pkg.problems.no_args_section: no Args: section; signature '
        'has (x)',
        'coverage_pkg.problems.undocumented_function: function has no '
        'docstring',
        'coverage_pkg.problems.wrong_order: Args: (y, x) do not match '
        'signature (x, y); order differs',
      ],
    )

  @parameterized.named_parameters(
    ('fails_and_writes_nothing', [], 1, False),
    ('skip_flag_writes', ['--skip-coverage-check'], 0, True),
    ('check_only', ['--check-only'], 1, False),
  )
  def test_command_line(self, flags, expected_rc, wrote):
    with tempfile.TemporaryDirectory() as tmp:
      out = os.path.join(tmp, 'out')
      stderr = io.StringIO()
      with (
        contextlib.redirect_stderr(stderr),
        contextlib.redirect_stdout(io.StringIO()),
      ):
        rc = build_api_docs.main(
          ['--output-dir', out, '--package', 'coverage_pkg'] + flags
        )
      self.assertEqual(rc, expected_rc)
      self.assertIn(
        'coverage_pkg.problems.NoDoc.method: method has no docstring',
        stderr.getvalue(),
      )
      self.assertEqual(os.path.exists(os.path.join(out, 'index.md')), wrote)

  def test_kfac_has_no_problems(self):
    problems = _build('kfac')[1]
    self.assertEqual(list(problems), [], '\n'.join(problems))


class ReferencePageTest(absltest.TestCase):
  """`ConvDiagonalFactor` under `tf.contrib.kfac` against the reference."""

  def setUp(self):
    super().setUp()
    self.structure = _read(
      os.path.join(DATA, 'reference', 'ConvDiagonalFactor.structure.md')
    )

  def _check(self, package):
    files = _build(package, 'tf.contrib.kfac')[0]
    path = 'tf/contrib/kfac/fisher_factors/ConvDiagonalFactor.md'
    self.assertIn(path, files)
    actual = normalize_structure(files[path])
    self.assertEqual(actual, self.structure, _line_diff(self.structure, actual))

  def test_fixture_matches_reference_structure(self):
    self._check('legacy_kfac')

  def test_kfac_matches_reference_structure(self):
    if not _kfac_exposes('fisher_factors'):
      self.fail('kfac does not expose fisher_factors')
    self._check('kfac')

  def test_r1_4_matches_reference_structure(self):
    # `kfac.r1_4` is TF 1.4.0's `tf.contrib.kfac`, the release the
    # reference page comes from.
    if 'kfac.r1_4' not in dict(RELEASE_TREES):
      self.skipTest('no kfac.r1_4 package')
    self._check('kfac.r1_4')

  def test_normalize_keeps_structure_changes_visible(self):
    page = _build('legacy_kfac', 'tf.contrib.kfac')[0][
      'tf/contrib/kfac/fisher_factors/ConvDiagonalFactor.md'
    ]
    for old, new in [
      ('has_bias=False', 'has_bias=True'),
      ('#### Returns:', '#### Yields:'),
      ('<b>`padding`</b>', '<b>`pad`</b>'),
      ('\n\n\n\nDefined in', '\n\n\nDefined in'),
    ]:
      changed = normalize_structure(page.replace(old, new, 1))
      self.assertNotEqual(changed, self.structure, old)


# Every tree `--all-releases` writes: (package, docs path), from the release
# face packages that exist (a filesystem scan; nothing is imported).
ALL_TREES = build_api_docs.release_trees()
RELEASE_TREES = ALL_TREES[1:]
API_DOCS = os.path.join(REPO, 'docs', 'api_docs')
REGENERATE = 'python tools/build_api_docs.py --all-releases'


def _read_tree(root):
  """{relative path: contents} of every file under `root`."""
  files = {}
  for dirpath, _, filenames in os.walk(root):
    for name in filenames:
      path = os.path.join(dirpath, name)
      files[os.path.relpath(path, root).replace(os.sep, '/')] = _read(path)
  return files


def _stale_marker(root):
  return os.path.join(root, 'r1.99', 'python', 'kfac', 'gone.md')


@functools.cache
def _all_releases_run():
  """Runs `--all-releases` once (in-process) into a temporary api_docs dir.

  Before the run the directory holds a stale release tree (`r1.99`, whose
  package does not exist) and a folder that is not a tree; both are recorded
  in the result.

  Returns:
    A dict with `rc`, `stderr`, `trees` ({docs path: {relative path:
    contents}}), `stale_left` (whether the stale tree survived) and
    `other_left` (whether the non-tree folder survived).
  """
  with tempfile.TemporaryDirectory() as tmp:
    stale = _stale_marker(tmp)
    os.makedirs(os.path.dirname(stale))
    for path in (
      stale,
      os.path.join(tmp, 'r1.99', 'python', '_toc.yaml'),
      os.path.join(tmp, 'notes', 'keep.md'),
    ):
      os.makedirs(os.path.dirname(path), exist_ok=True)
      with open(path, 'w') as f:
        f.write('old')
    stderr = io.StringIO()
    with (
      contextlib.redirect_stdout(io.StringIO()),
      contextlib.redirect_stderr(stderr),
    ):
      rc = build_api_docs.main(['--all-releases', '--output-dir', tmp])
    prefix = 'docs/api_docs/'
    trees = {
      docs_path: _read_tree(
        os.path.join(tmp, *docs_path[len(prefix) :].split('/'))
      )
      for _, docs_path in ALL_TREES
    }
    return {
      'rc': rc,
      'stderr': stderr.getvalue(),
      'trees': trees,
      'stale_left': os.path.exists(os.path.join(tmp, 'r1.99')),
      'other_left': os.path.exists(os.path.join(tmp, 'notes', 'keep.md')),
    }


def _compare_tree(test, docs_path):
  run = _all_releases_run()
  test.assertEqual(
    run['rc'],
    0,
    'coverage check failed; run `%s`:\n%s' % (REGENERATE, run['stderr']),
  )
  generated = run['trees'][docs_path]
  committed = _read_tree(os.path.join(REPO, *docs_path.split('/')))
  hint = 'docs are stale; regenerate with `%s`' % REGENERATE
  test.assertEqual(sorted(committed), sorted(generated), hint)
  stale = [
    '%s: %s' % (path, _line_diff(committed[path], generated[path]))
    for path in sorted(generated)
    if committed[path] != generated[path]
  ]
  test.assertFalse(stale, '%s\n%s' % (hint, '\n'.join(stale)))


class CommittedDocsTest(absltest.TestCase):
  """docs/api_docs/python is exactly what the tool generates now."""

  def test_committed_docs_are_current(self):
    # The `kfac` tree of the single `--all-releases` run, which writes it as
    # `--output-dir docs/api_docs/python` does.
    _compare_tree(self, 'docs/api_docs/python')


class ReleaseTreesTest(parameterized.TestCase):
  """docs/api_docs/r1.N/python: one fresh tree per release face package."""

  @parameterized.named_parameters(
    *[
      (package.replace('.', '_'), docs_path)
      for package, docs_path in RELEASE_TREES
    ]
  )
  def test_committed_tree_is_current(self, docs_path):
    _compare_tree(self, docs_path)

  def test_one_committed_tree_per_release_package(self):
    committed = sorted(
      entry for entry in os.listdir(API_DOCS) if re.match(r'^r\d+\.\d+$', entry)
    )
    expected = sorted(docs_path.split('/')[2] for _, docs_path in RELEASE_TREES)
    self.assertEqual(
      committed,
      expected,
      'run `%s` (it also removes trees of packages that are gone)' % REGENERATE,
    )

  def test_all_releases_removes_stale_release_trees_only(self):
    run = _all_releases_run()
    self.assertFalse(run['stale_left'])
    self.assertTrue(run['other_left'])

  def test_release_package_discovery(self):
    with tempfile.TemporaryDirectory() as tmp:
      for entry in ('r1_10', 'r1_9', 'r2_0', 'r1_x', 'rel'):
        os.makedirs(os.path.join(tmp, 'pkg', entry))
      for entry in ('r1_10', 'r1_9', 'r1_x', 'rel'):
        with open(os.path.join(tmp, 'pkg', entry, '__init__.py'), 'w'):
          pass
      self.assertEqual(
        build_api_docs.release_packages('pkg', tmp),
        [('1.9', 'pkg.r1_9'), ('1.10', 'pkg.r1_10')],
      )
      self.assertEqual(
        build_api_docs.release_trees('pkg', tmp),
        [
          ('pkg', 'docs/api_docs/python'),
          ('pkg.r1_9', 'docs/api_docs/r1.9/python'),
          ('pkg.r1_10', 'docs/api_docs/r1.10/python'),
        ],
      )

  @parameterized.named_parameters(
    ('face', 'kfac.r1_6', 'kfac'),
    ('engine', 'kfac', 'kfac'),
    ('other', 'edge_pkg', 'edge_pkg'),
    ('not_a_release', 'kfac.rel', 'kfac.rel'),
  )
  def test_default_root_name(self, package, expected):
    self.assertEqual(build_api_docs.default_root_name(package), expected)


def _release_pages(docs_path):
  return _all_releases_run()['trees'][docs_path]


def _expected_arguments(params):
  """The signature-block entries for a parameter list written as source."""
  args = ast.parse('def f(%s): pass' % params).body[0].args
  positional = args.posonlyargs + args.args
  defaults = [None] * (len(positional) - len(args.defaults)) + list(
    args.defaults
  )
  result = []
  for arg, default in zip(positional, defaults):
    result.append(
      arg.arg if default is None else '%s=%s' % (arg.arg, ast.unparse(default))
    )
  if args.vararg:
    result.append('*' + args.vararg.arg)
  elif args.kwonlyargs:
    result.append('*')
  for arg, default in zip(args.kwonlyargs, args.kw_defaults):
    result.append(
      arg.arg if default is None else '%s=%s' % (arg.arg, ast.unparse(default))
    )
  if args.kwarg:
    result.append('**' + args.kwarg.arg)
  return result


def _rendered_arguments(page, name):
  """The entries of the signature block of `name` on a page."""
  match = re.search(
    r'^``` python\n(?:@\w+\n)?%s\((.*?)\)\n```$' % re.escape(name),
    page,
    re.MULTILINE | re.DOTALL,
  )
  if match is None:
    return None
  body = match.group(1)
  if not body.startswith('\n'):
    return [body] if body else []
  return [line.strip().rstrip(',') for line in body.strip('\n').split('\n')]


class ReleaseFacePagesTest(parameterized.TestCase):
  """Release trees read like that release's legacy pages."""

  @parameterized.named_parameters(
    *[
      (package.replace('.', '_'), docs_path)
      for package, docs_path in RELEASE_TREES
    ]
  )
  def test_root_page_lists_the_nine_modules(self, docs_path):
    page = _release_pages(docs_path)['kfac.md']
    self.assertIn('# Module: kfac\n', page)
    listed = re.findall(
      r'^\[`(\w+)`\]\(\./kfac/(\w+)\.md\) module', page, re.MULTILINE
    )
    self.assertEqual(listed, [(m, m) for m in LEGACY_MODULES])
    self.assertNotIn('## Functions', page)
    self.assertNotIn('## Classes', page)

  @parameterized.named_parameters(
    *[
      (package.replace('.', '_'), package, docs_path)
      for package, docs_path in RELEASE_TREES
    ]
  )
  def test_defined_in_names_the_source_that_holds_the_code(
    self, package, docs_path
  ):
    face_dir = package.replace('.', '/') + '/'
    for path, page in sorted(_release_pages(docs_path).items()):
      for shown, link in re.findall(
        r'^Defined in \[`([^`]+)`\]\(([^)]+)\)\.$', page, re.MULTILINE
      ):
        self.assertTrue(
          os.path.isfile(os.path.join(REPO, shown)), '%s: %s' % (path, shown)
        )
        target = posixpath.normpath(
          posixpath.join(docs_path, posixpath.dirname(path), link)
        )
        self.assertEqual(target, shown, path)
        self.assertNotEqual(shown, 'kfac/_faces.py', path)
        if path == 'kfac.md':
          self.assertEqual(shown, face_dir + '__init__.py')
        else:
          self.assertFalse(shown.startswith(face_dir), '%s: %s' % (path, shown))

  @parameterized.named_parameters(
    *[
      (package.replace('.', '_'), docs_path)
      for package, docs_path in RELEASE_TREES
    ]
  )
  def test_module_pages_show_engine_docstrings(self, docs_path):
    pages = _release_pages(docs_path)
    for module in LEGACY_MODULES:
      engine = importlib.import_module('kfac.' + module)
      brief = engine.__doc__.strip().split('\n')[0]
      self.assertIn('\n\n%s\n' % brief, pages['kfac/%s.md' % module], module)
      self.assertIn(
        '[`%s`](./kfac/%s.md) module: %s\n' % (module, module, brief),
        pages['kfac.md'],
      )

  @parameterized.named_parameters(
    *[
      (package.replace('.', '_'), package, docs_path)
      for package, docs_path in RELEASE_TREES
    ]
  )
  def test_release_signatures_rendered(self, package, docs_path):
    release = importlib.import_module(package)._release
    pages = _release_pages(docs_path)
    checked = 0
    for key, params in sorted(release.signatures.items()):
      parts = key.split('.')
      page = pages.get(
        'kfac/%s.md' % '/'.join(parts if len(parts) == 2 else parts[:-1])
      )
      if page is None and len(parts) == 3:
        # A class the release does not export; none of its members show.
        self.assertNotIn(parts[1], release.exports[parts[0]], key)
        continue
      self.assertIsNotNone(page, key)
      self.assertEqual(
        _rendered_arguments(page, parts[-1]), _expected_arguments(params), key
      )
      checked += 1
    self.assertEqual(checked > 0, bool(release.signatures))

  @parameterized.named_parameters(
    *[
      (package.replace('.', '_'), package, docs_path)
      for package, docs_path in RELEASE_TREES
    ]
  )
  def test_module_members_are_the_allow_list(self, package, docs_path):
    release = importlib.import_module(package)._release
    pages = _release_pages(docs_path)
    for module in LEGACY_MODULES:
      page = pages['kfac/%s.md' % module]
      listed = set(
        re.findall(
          r'^\[`(?:class )?(\w+)(?:\(\.\.\.\))?`\]', page, re.MULTILINE
        )
      )
      listed |= set(re.findall(r'^`(\w+)`$', page, re.MULTILINE))
      self.assertEqual(sorted(listed), sorted(release.exports[module]), module)


def _surface_pages():
  """Parses tests/data/api_surface.md: {full name: (kind, members)}."""
  pages = {}
  current = None
  for line in _read(os.path.join(DATA, 'api_surface.md')).split('\n'):
    match = re.match(r'^## `tf\.contrib\.(kfac[\w.]*)` \((\w+)\)', line)
    if match:
      current = match.group(1)
      pages[current] = (match.group(2), [])
      continue
    if current is None or not line.startswith('- '):
      continue
    members = pages[current][1]
    body = line[2:]
    if body.startswith('bases:'):
      continue
    if ':' in body.split('`')[0]:  # "Modules: ...", "properties / ...: ..."
      members.extend(re.findall(r'`([^`]+)`', body.split(':', 1)[1]))
    else:
      members.append(re.match(r'`([\w]+)\(', body).group(1))
  return pages


_PY2_ONLY = {
  'iteritems',
  'iterkeys',
  'itervalues',
  'viewitems',
  'viewkeys',
  'viewvalues',
}


class ApiSurfaceTest(parameterized.TestCase):
  """Every legacy page exists under `kfac.` with at least its members."""

  @parameterized.named_parameters(*[(m, m) for m in LEGACY_MODULES])
  def test_module_pages(self, module):
    if not _kfac_exposes(module):
      self.fail('kfac does not expose %s' % module)
    files = _build('kfac')[0]
    pages = {
      n: v
      for n, v in _surface_pages().items()
      if n == 'kfac.' + module or n.startswith('kfac.%s.' % module)
    }
    self.assertNotEmpty(pages)
    for name, (kind, members) in sorted(pages.items()):
      path = name.replace('.', '/') + '.md'
      self.assertIn(path, files, '%s: no page' % name)
      page = files[path]
      if kind == 'function':
        self.assertIn('``` python\n%s(' % name.split('.')[-1], page)
        continue
      if kind == 'module':
        listed = set(
          re.findall(
            r'^\[`(?:class )?(\w+)(?:\(\.\.\.\))?`\]', page, re.MULTILINE
          )
        )
        listed |= set(re.findall(r'^`(\w+)`$', page, re.MULTILINE))
      else:
        listed = set(
          re.findall(r'<meta itemprop="property" content="(\w+)"/>', page)
        )
      missing = sorted(set(members) - listed - _PY2_ONLY)
      self.assertEqual(missing, [], '%s: members missing from the page' % name)

  def test_root_page(self):
    files = _build('kfac')[0]
    exposed = [m for m in LEGACY_MODULES if _kfac_exposes(m)]
    for module in exposed:
      self.assertIn(
        '[`%s`](./kfac/%s.md) module' % (module, module), files['kfac.md']
      )

  def test_surface_parser(self):
    pages = _surface_pages()
    self.assertLen(pages, 65)
    self.assertIn(
      'fromkeys', pages['kfac.layer_collection.LayerParametersDict'][1]
    )
    self.assertIn('APPROX_FULL_NAME', pages['kfac.layer_collection'][1])
    self.assertIn('GATE_OP', pages['kfac.optimizer.KfacOptimizer'][1])


if __name__ == '__main__':
  absltest.main()
