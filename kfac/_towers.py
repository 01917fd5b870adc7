"""Towers of the 1.8+ releases: `utils.PartitionedTensor` and tower data.

From release 1.8 every block keeps the data of each tower (each
registration of the same parameters under variable reuse) in a list, and
hands it to its factors according to `fisher_factors.TOWER_STRATEGY`:
`"concat"` pools the towers into one `PartitionedTensor` (a lazily
concatenated tensor, so a factor sees one tower holding the whole batch),
`"separate"` keeps one entry per tower (each factor then computes one
statistic per tower, on that tower's device, and averages them).
"""

import numpy as np
import tensorflow as tf

from kfac import _checks

__all__ = ["PartitionedTensor", "process_towers", "GenericTowersMixin"]


class PartitionedTensor(object):
  """Several per-tower Tensors standing for their concatenation on axis 0.

  The concatenation is built only when the value is needed (`as_tensor`,
  or any TensorFlow op given the object: a conversion function is
  registered), once per device. Objects built from the same list of parts
  compare and hash equal, so factor keys containing them match.
  """

  # One class for every release face (not re-hosted): the conversion
  # function and `isinstance` checks see the same class.
  _face_shared = True

  def __init__(self, tensors):
    """Creates the partitioned tensor.

    Args:
      tensors: A non-empty list of Tensors of one dtype, equal in every
        dimension but the first.

    Raises:
      ValueError: If the list is empty, or the dtypes or the shapes beyond
        axis 0 differ.
    """
    tensors = list(tensors)
    if not tensors:
      raise ValueError("tensors must be a non-empty list of Tensors.")
    dtypes = {t.dtype.base_dtype for t in tensors}
    if len(dtypes) != 1:
      raise ValueError(
        "All tensors must have the same dtype; got {}.".format(
          sorted(d.name for d in dtypes)
        )
      )
    tails = {
      tuple(_checks.static_shape_list(t)[1:]) if _known_rank(t) else None
      for t in tensors
    }
    if len(tails) != 1:
      raise ValueError(
        "All tensors must have the same shape beyond axis 0; got {}.".format(
          [_checks.format_shape(t) for t in tensors]
        )
      )
    self.tensors = tensors
    self._concats = {}

  def __str__(self):
    return "PartitionedTensor([%s, ...], dtype=%s, shape=%s)" % (
      self.tensors[0].name,
      self.dtype.name,
      tuple(self.shape.as_list()) if self.shape.rank is not None else None,
    )

  def __hash__(self):
    return hash(tuple(self.tensors))

  def __eq__(self, other):
    if not isinstance(other, PartitionedTensor):
      return False
    return len(self.tensors) == len(other.tensors) and all(
      a is b for a, b in zip(self.tensors, other.tensors)
    )

  def __ne__(self, other):
    return not self == other

  def __getitem__(self, key):
    return self.as_tensor()[key]

  @property
  def shape(self):
    """`[Σ batch sizes] + tensors[0].shape[1:]` (batch unknown if any is)."""
    first = tf.TensorShape(self.tensors[0].shape)
    if first.rank is None:
      return first
    sizes = [_checks.static_dim(t, 0) for t in self.tensors]
    batch = None if None in sizes else sum(sizes)
    return tf.TensorShape([batch] + first.as_list()[1:])

  def get_shape(self):
    """Same as `shape`."""
    return self.shape

  @property
  def dtype(self):
    """The parts' dtype."""
    return self.tensors[0].dtype

  @property
  def device(self):
    """The parts' common device, or None when they differ."""
    devices = {t.device for t in self.tensors}
    return devices.pop() if len(devices) == 1 else None

  def as_tensor(self, dtype=None, name=None, as_ref=False):
    """The concatenation of the parts along axis 0.

    The first concatenation built on a device is returned again for later
    calls from that device.

    Args:
      dtype: Optional dtype the result must have (checked).
      name: Unused (the op is named by its name scope).
      as_ref: Unused; part of the conversion-function protocol.

    Returns:
      A Tensor.

    Raises:
      ValueError: If `dtype` differs from the parts' dtype.
    """
    del name, as_ref
    if dtype is not None and tf.as_dtype(dtype) != self.dtype:
      raise ValueError(
        "Cannot convert a PartitionedTensor of dtype {} to {}.".format(
          self.dtype.name, tf.as_dtype(dtype).name
        )
      )
    with tf.name_scope("PartitionedTensor.as_tensor"):
      concat = (
        tf.concat(self.tensors, axis=0)
        if len(self.tensors) > 1
        else tf.identity(self.tensors[0])
      )
    key = (concat.graph, concat.device)
    return self._concats.setdefault(key, concat)


def _known_rank(tensor):
  return tf.TensorShape(tensor.shape).rank is not None


def _convert_partitioned_tensor(value, dtype=None, name=None, as_ref=False):
  return value.as_tensor(dtype=dtype, name=name, as_ref=as_ref)


tf.register_tensor_conversion_function(
  PartitionedTensor, _convert_partitioned_tensor
)


def process_towers(inputs, grads_list, strategy):
  """Tower data as the factors see it under `strategy`.

  Args:
    inputs: A list over towers of input Tensors.
    grads_list: A list over sources of lists over towers of gradients.
    strategy: "concat" or "separate" (`fisher_factors.TOWER_STRATEGY`).

  Returns:
    `(inputs, grads_list)`: with "concat" a 1-tuple holding one
    `PartitionedTensor` over the towers and a tuple of such 1-tuples; with
    "separate" the same lists as tuples.

  Raises:
    ValueError: For another strategy.
  """
  if strategy == "concat":
    return (
      (PartitionedTensor(inputs),) if inputs is not None else None,
      tuple((PartitionedTensor(g),) for g in grads_list),
    )
  if strategy == "separate":
    return (
      tuple(inputs) if inputs is not None else None,
      tuple(tuple(g) for g in grads_list),
    )
  raise ValueError(
    "Unrecognized value {!r} for TOWER_STRATEGY (legal: 'concat', "
    "'separate').".format(strategy)
  )


class GenericTowersMixin(object):
  """Tower data of `FullFB` and `NaiveDiagonalFB`: one batch size per tower.

  The block's factor (`_factor_class()`) gets every source's gradients and
  the total batch size `reduce_sum(batch_sizes)`; its damping function is
  the constant `d` (id `(d,)`).
  """

  def register_additional_tower(self, batch_size):
    """Adds one tower's batch size.

    Args:
      batch_size: An int or scalar Tensor.
    """
    self._batch_sizes.append(batch_size)

  @property
  def num_registered_towers(self):
    """The number of towers registered."""
    return len(self._batch_sizes)

  @property
  def _batch_size(self):
    return tf.reduce_sum(self._batch_sizes)

  def tensors_to_compute_grads(self):
    """The parameters."""
    return self._params

  def instantiate_factors(self, grads_list, damping):
    """Creates or finds the factor over all sources.

    Args:
      grads_list: A list over sources of gradients shaped like the params.
      damping: The damping, a float or scalar Tensor.
    """
    self._damping_func = self._packaged(lambda: damping, (damping,))
    self._factor = self._layer_collection.make_or_get_factor(
      self._factor_class(), (tuple(grads_list), self._batch_size)
    )

  def register_matpower(self, exp):
    """Registers the power on the factor.

    Args:
      exp: The exponent.
    """
    self._factor.register_matpower(exp, self._damping_func)

  def register_cholesky(self):
    """Registers the Cholesky factor (1.9)."""
    self._factor.register_cholesky(self._damping_func)

  def register_cholesky_inverse(self):
    """Registers the inverse Cholesky factor (1.9)."""
    self._factor.register_cholesky_inverse(self._damping_func)

  def full_fisher_block(self):
    """The undamped block (the factor's covariance)."""
    return self._factor.get_cov()


class ParamsGradsFactorMixin(object):
  """Data of `FullFactor` and `NaiveDiagonalFactor` (1.8+).

  One tower (the blocks sum the towers' batch sizes); a source is the
  gradient of the parameters (a tuple of Tensors). Subclasses set `_kind`
  (the scope prefix) and `_engine_class` (the engine factor computing the
  statistic).
  """

  def _set_params_grads(self, params_grads, batch_size):
    self._params_grads = tuple(
      tuple(g) if isinstance(g, (tuple, list)) else (g,) for g in params_grads
    )
    self._batch_size = batch_size

  @property
  def _var_scope(self):
    from kfac import _deferred_factors  # pylint: disable=import-outside-toplevel

    return self._kind + _deferred_factors.scope_string_from_params(
      [self._params_grads, self._batch_size]
    )

  @property
  def _size(self):
    return sum(
      int(np.prod(_checks.static_shape_list(g))) for g in self._params_grads[0]
    )

  @property
  def _num_sources(self):
    return len(self._params_grads)

  @property
  def _num_towers(self):
    return 1

  @property
  def _dtype(self):
    return self._params_grads[0][0].dtype.base_dtype

  def _compute_new_cov(self, source, tower):
    assert tower == 0
    return self._statistic(
      self._engine_class, (self._params_grads[source],), self._batch_size
    )

  def _get_data_device(self, tower):
    return None
