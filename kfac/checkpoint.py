"""Restoring K-FAC state from checkpoints whose variable names differ.

A checkpoint written by a K-FAC program restores by name into the same
program (`tf.compat.v1.train.Saver`). K-FAC's factor variables, however, are
named after graph tensors: `LayerCollection/ff_fckron/<inputs>_True/cov`,
`ff_fckron/<inputs>_True/inv_dampmul_2`, ... A program whose model code
changed (a renamed placeholder, an extra op before a layer, a different
loss head) builds the same factors under other names, and a by-name restore
of them fails. `restore_by_structure` restores them by what they are
instead:

* the factor type (`ff_fckron`, `ff_convinkron`, `ff_convoutkron`,
  `ff_diagfc`, `ff_convdiag`, `ff_full`, `ff_naivediag`),
* the role of each variable in the factor (`covariance`, `inverse`,
  `matrix power`, `eigendecomposition`; other state, such as the
  zero-debiasing variables of later releases, keeps its own name as role),
* and the shapes,

pairing factors in registration order. It reports every pairing it made
and every variable it left at its current (initial) value, and by default
restores nothing unless every K-FAC variable of the graph found its match.
"""

import collections
import re

import numpy as np
import tensorflow as tf

__all__ = [
  "StructureRestoreReport",
  "factor_variables",
  "restore_by_structure",
]

# `<prefix>/ff_<kind>/<factor scope>/<rest>`: the factor scope string never
# contains "/" (tensor names in it have their "/" replaced by "_").
_FACTOR_VARIABLE = re.compile(r"(?:^|.*/)(ff_[a-z]+)/([^/]+)/(.+)$")

_ROLE_ORDER = ("covariance", "inverse", "matrix power", "eigendecomposition")


def _role(rest):
  """The role of a factor variable, from the part of its name after the scope."""
  if rest == "cov":
    return "covariance"
  if rest.startswith("inv_damp"):
    return "inverse"
  if rest.startswith("matpower"):
    return "matrix power"
  if "eigen" in rest:
    return "eigendecomposition"
  return rest


def _natural_key(text):
  """Sort key comparing the digit runs of `text` as numbers (`mul_5` < `mul_10`)."""
  return [
    int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)
  ]


def _parse(name):
  """`(factor type, factor scope, role)` of a factor variable name, or None."""
  match = _FACTOR_VARIABLE.match(name)
  if match is None:
    return None
  kind, scope, rest = match.groups()
  return kind, scope, _role(rest)


class _Factor(object):
  """The variables of one factor instance, grouped by role in order."""

  def __init__(self, kind, scope):
    self.kind = kind
    self.scope = scope
    self.entries = collections.OrderedDict()  # role -> [(name, shape)]

  def add(self, role, name, shape):
    self.entries.setdefault(role, []).append((name, tuple(shape)))

  def signature(self):
    """Type, and the shapes of every role: what must agree for a pairing."""
    return (
      self.kind,
      tuple(
        sorted(
          (role, tuple(shape for _, shape in entries))
          for role, entries in self.entries.items()
        )
      ),
    )

  def describe(self):
    return "{}/{}".format(self.kind, self.scope)


def _factors(named_shapes):
  """Groups `(name, shape)` pairs into factors, keeping first-seen order.

  Within a role, the variables are ordered by name with numbers compared
  numerically (the op counters in inverse names grow with registration).
  """
  factors = collections.OrderedDict()
  for name, shape in named_shapes:
    parsed = _parse(name)
    if parsed is None:
      continue
    kind, scope, role = parsed
    factor = factors.setdefault((kind, scope), _Factor(kind, scope))
    factor.add(role, name, shape)
  for factor in factors.values():
    for role in factor.entries:
      factor.entries[role].sort(key=lambda entry: _natural_key(entry[0]))
  return list(factors.values())


def _checkpoint_order(save_path, names):
  """Creation order of the checkpoint's variables, and where it came from.

  The order of the global-variables collection of `<save_path>.meta` when
  the checkpoint has a meta graph (variables are created as factors are
  registered); otherwise an order rebuilt from the names: a factor's
  position is the smallest op counter in its inverse names (those counters
  grow as blocks are instantiated), then its name.
  """
  meta_path = save_path + ".meta"
  if tf.io.gfile.exists(meta_path):
    try:
      # The variables collection keeps creation order; importing the meta
      # graph into a scratch graph reads it with public API only.
      with tf.Graph().as_default() as scratch:
        tf.compat.v1.train.import_meta_graph(meta_path, clear_devices=True)
        order = [
          v.op.name
          for v in scratch.get_collection(
            tf.compat.v1.GraphKeys.GLOBAL_VARIABLES
          )
        ]
    except (tf.errors.OpError, ValueError, KeyError, TypeError):
      order = []
    position = {name: i for i, name in enumerate(order)}
    if all(name in position for name in names):
      return sorted(names, key=position.get), "meta graph"

  # A factor's position: the smallest op counter at the end of its inverse
  # (or matrix power) names; factors without one go last.
  first_counter = {}
  for name in names:
    parsed = _parse(name)
    digits = re.findall(r"_(\d+)$", name)
    if parsed is None or parsed[2] == "covariance":
      continue
    value = int(digits[0]) if digits else 0
    key = parsed[:2]
    first_counter[key] = min(first_counter.get(key, value), value)

  def key(name):
    factor_key = _parse(name)[:2]
    return (
      first_counter.get(factor_key, float("inf")),
      _natural_key(factor_key[1]),
      _natural_key(name),
    )

  return sorted(names, key=key), "names"


class StructureRestoreReport(object):
  """What `restore_by_structure` restored, and what it did not.

  Attributes:
    matched: List of `(variable_name, checkpoint_name, factor_type, role,
      shape)` tuples, one per K-FAC variable of the graph given the
      checkpoint's value, in the graph's registration order.
    left_at_initial_values: Names of the graph's K-FAC variables that found
      no match; they keep their current values.
    unused_checkpoint_entries: Names of K-FAC variables in the checkpoint
      that were not used.
    ambiguous: One line per group of interchangeable factors (same type,
      roles and shapes) with more than one member: those were paired by
      order alone, which the user should check.
    order_source: Where the checkpoint's registration order came from:
      "meta graph" or "names".
    restored: Whether values were written into the session.
  """

  def __init__(
    self,
    matched,
    left_at_initial_values,
    unused_checkpoint_entries,
    ambiguous,
    order_source,
    restored,
  ):
    """Stores the outcome (see the class attributes).

    Args:
      matched: The `(variable_name, checkpoint_name, factor_type, role,
        shape)` pairings.
      left_at_initial_values: Graph K-FAC variables without a match.
      unused_checkpoint_entries: Checkpoint K-FAC variables not used.
      ambiguous: Descriptions of the groups paired by order alone.
      order_source: "meta graph" or "names".
      restored: Whether the values were written.
    """
    self.matched = matched
    self.left_at_initial_values = left_at_initial_values
    self.unused_checkpoint_entries = unused_checkpoint_entries
    self.ambiguous = ambiguous
    self.order_source = order_source
    self.restored = restored

  @property
  def complete(self):
    """True when every K-FAC variable of the graph found its match."""
    return not self.left_at_initial_values

  def __str__(self):
    lines = [
      "K-FAC state restored by structure: {} matched, {} left at "
      "initial values, {} checkpoint entries unused (checkpoint order "
      "from {}).".format(
        len(self.matched),
        len(self.left_at_initial_values),
        len(self.unused_checkpoint_entries),
        self.order_source,
      )
    ]
    for var_name, ckpt_name, kind, role, shape in self.matched:
      lines.append(
        "  {} <- {} ({} {}, shape {})".format(
          var_name, ckpt_name, kind, role, list(shape)
        )
      )
    for name in self.left_at_initial_values:
      lines.append("  left at initial value: {}".format(name))
    for name in self.unused_checkpoint_entries:
      lines.append("  unused in checkpoint: {}".format(name))
    for line in self.ambiguous:
      lines.append("  paired by order only: {}".format(line))
    return "\n".join(lines)


def _variable_name(variable):
  return variable.op.name


def factor_variables(var_list=None):
  """Returns the K-FAC factor variables among `var_list`.

  Those named `.../ff_<type>/<factor scope>/<role>`: covariances, inverses,
  matrix powers and any other per-factor state. The rest (model weights,
  the optimizer's `<variable>/KFAC` slots, the global step) is what a
  by-name restore handles.

  Args:
    var_list: Variables to filter (default: the default graph's global
      variables).

  Returns:
    A list of variables, in the order of `var_list`.
  """
  if var_list is None:
    var_list = tf.compat.v1.global_variables()
  return [v for v in var_list if _parse(_variable_name(v)) is not None]


def restore_by_structure(sess, save_path, var_list=None, allow_partial=False):
  """Restores K-FAC factor variables from a checkpoint by structure.

  For checkpoints whose K-FAC variable names cannot match the graph's (the
  program that wrote it built its model differently). The graph's factor
  variables (names `.../ff_<type>/<scope>/<role>`) are grouped into
  factors in creation order, which is registration order; so are the
  checkpoint's (in the order of its `.meta` graph when there is one, else
  in the order that the op counters in its inverse names give, else by
  name). Each graph factor is paired with the first unpaired checkpoint
  factor of the same type whose roles and shapes agree: covariance with
  covariance, the k-th inverse with the k-th inverse, the k-th matrix
  power with the k-th matrix power, and so on. Every other variable (model
  weights, the optimizer's slots) is left alone: restore those by name,
  e.g. with a `tf.compat.v1.train.Saver` given a name map.

  Nothing is written unless every K-FAC variable of `var_list` found its
  match, or `allow_partial` is set; a partial restore then logs a warning
  naming what was left at its initial value. Values are written by running
  each variable's initializer with the checkpoint value fed in, so no op is
  added to the graph.

  Args:
    sess: The `tf.compat.v1.Session` holding the graph's variables.
    save_path: The checkpoint prefix, as given to `Saver.restore` (e.g.
      `"ckpt/model"` or `tf.train.latest_checkpoint(dir)`).
    var_list: Variables to consider (default: the graph's global
      variables); those that are not K-FAC factor variables are ignored.
    allow_partial: If True, restore the pairs found even when some K-FAC
      variables found none (they keep their values; a warning lists them).

  Returns:
    A `StructureRestoreReport`.

  Raises:
    ValueError: If `save_path` is not a readable checkpoint, or if some
      K-FAC variable found no match and `allow_partial` is False (nothing
      is restored then; the message carries the full report).
  """
  try:
    reader = tf.train.load_checkpoint(save_path)
  except (tf.errors.OpError, ValueError) as e:
    raise ValueError(
      "save_path {!r} is not a readable checkpoint ({}).".format(save_path, e)
    ) from e
  if var_list is None:
    var_list = sess.graph.get_collection(
      tf.compat.v1.GraphKeys.GLOBAL_VARIABLES
    )
  by_name = {}
  for variable in var_list:
    by_name.setdefault(_variable_name(variable), variable)
  graph_factors = _factors(
    (name, variable.shape.as_list())
    for name, variable in by_name.items()
    if _parse(name) is not None
  )

  ckpt_shapes = reader.get_variable_to_shape_map()
  ckpt_names, order_source = _checkpoint_order(
    save_path, [n for n in ckpt_shapes if _parse(n) is not None]
  )
  ckpt_factors = _factors((n, ckpt_shapes[n]) for n in ckpt_names)

  available = list(ckpt_factors)
  matched, left = [], []
  pairs = []
  for factor in graph_factors:
    partner = next(
      (c for c in available if c.signature() == factor.signature()), None
    )
    if partner is None:
      left.extend(
        name for entries in factor.entries.values() for name, _ in entries
      )
      continue
    available.remove(partner)
    pairs.append((factor, partner))
    for role, entries in factor.entries.items():
      for (name, shape), (ckpt_name, _) in zip(entries, partner.entries[role]):
        matched.append((name, ckpt_name, factor.kind, role, shape))

  ambiguous = []
  groups = collections.OrderedDict()
  for factor, partner in pairs:
    groups.setdefault(factor.signature(), []).append((factor, partner))
  for signature, members in groups.items():
    interchangeable = [c for c in ckpt_factors if c.signature() == signature]
    if len(members) > 1 or len(interchangeable) > 1:
      ambiguous.append(
        "{} factors of type {} with the same shapes: ".format(
          len(interchangeable), signature[0]
        )
        + ", ".join(
          "{} <- {}".format(f.describe(), p.describe()) for f, p in members
        )
      )
  unused = [
    name
    for factor in available
    for entries in factor.entries.values()
    for name, _ in entries
  ]

  if left and not allow_partial:
    report = StructureRestoreReport(
      matched, left, unused, ambiguous, order_source, restored=False
    )
    raise ValueError(
      "restore_by_structure: {} K-FAC variables of the graph have no "
      "match in {} (nothing was restored; pass allow_partial=True to "
      "restore the matches anyway).\n{}".format(len(left), save_path, report)
    )

  for name, ckpt_name, _, _, _ in matched:
    variable = by_name[name]
    value = reader.get_tensor(ckpt_name)
    dtype = variable.dtype.base_dtype.as_numpy_dtype
    initializer = variable.initializer
    sess.run(
      initializer, {initializer.inputs[1]: np.asarray(value).astype(dtype)}
    )
  report = StructureRestoreReport(
    matched, left, unused, ambiguous, order_source, restored=True
  )
  if left:
    tf.compat.v1.logging.warning(
      "restore_by_structure: partial restore; %d K-FAC variables left at "
      "their initial values:\n%s",
      len(left),
      report,
    )
  elif ambiguous:
    tf.compat.v1.logging.warning(
      "restore_by_structure: some factors were paired by order only:\n%s",
      "\n".join(ambiguous),
    )
  return report
