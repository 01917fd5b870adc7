"""Registry of a model's layers, losses and Fisher factors.

A `LayerCollection` records, for one model, which Fisher block approximates
each group of parameters (`register_fully_connected`, `register_conv2d`,
`register_generic`, `register_block`) and which predictive distributions
define the loss (`register_*_predictive_distribution`). It owns the Fisher
factors of all blocks, creating them under its own variable scope and sharing
one factor between blocks that ask for it with the same arguments.
"""

import collections
import math

import tensorflow as tf

from kfac import _checks
from kfac import _surface
from kfac import fisher_blocks as fb
from kfac import loss_functions as lf
from kfac import utils

# The 1.4 public names, from the one surface table.
__all__ = list(sorted(_surface.public_names("1.4", "layer_collection")))

# Names of the approximations accepted by the `approx` arguments.
APPROX_KRONECKER_NAME = "kron"
APPROX_DIAGONAL_NAME = "diagonal"
APPROX_FULL_NAME = "full"

_LAYER_APPROXIMATIONS = (APPROX_KRONECKER_NAME, APPROX_DIAGONAL_NAME)
_GENERIC_APPROXIMATIONS = (APPROX_FULL_NAME, APPROX_DIAGONAL_NAME)


def _canonicalize_key(key):
  """Returns a list key as a tuple (so that it hashes); other keys as is."""
  if isinstance(key, list):
    return tuple(key)
  return key


def _key_elements(key):
  """Returns the tensors making up a key: its elements, or the key itself."""
  if isinstance(key, (tuple, list)):
    return tuple(key)
  return (key,)


class _Marker(object):
  """Sentinel type for "no default given" (shown as `__marker`)."""

  def __repr__(self):
    return "__marker"


_MARKER = _Marker()


class LayerParametersDict(collections.OrderedDict):
  """An ordered dict whose keys are tensors or tuples of tensors.

  No tensor may appear in two keys: inserting a key that shares a tensor with
  a key already present raises a `ValueError`. List keys are stored as
  tuples.
  """

  def __init__(self, *args, **kwargs):
    """Creates a LayerParametersDict.

    Args:
      *args: Passed on to `OrderedDict` (e.g. an iterable of pairs).
      **kwargs: Passed on to `OrderedDict`.
    """
    self._tensors = set()
    super(LayerParametersDict, self).__init__(*args, **kwargs)

  def __setitem__(self, key, value):
    """Inserts `value` under `key` unless one of its tensors is in use.

    Args:
      key: A tensor, or a tuple/list of tensors (a list is stored as a
        tuple).
      value: The value to store.

    Raises:
      ValueError: If a tensor of `key` is already part of a stored key.
    """
    key = _canonicalize_key(key)
    tensors = _key_elements(key)
    key_collisions = self._tensors.intersection(tensors)
    if key_collisions:
      raise ValueError("Key(s) already present: {}".format(key_collisions))
    self._tensors.update(tensors)
    super(LayerParametersDict, self).__setitem__(key, value)

  def __delitem__(self, key):
    """Removes `key` and frees all of its tensors for reuse.

    Args:
      key: A stored key (a list is looked up as a tuple).

    Raises:
      KeyError: If `key` is not stored.
    """
    key = _canonicalize_key(key)
    super(LayerParametersDict, self).__delitem__(key)
    self._tensors.difference_update(_key_elements(key))

  def pop(self, key, default=_MARKER):
    """Removes `key` (freeing its tensors) and returns its value.

    Args:
      key: The key to remove (a list is looked up as a tuple).
      default: Returned when `key` is not stored; without it a missing key
        raises.

    Returns:
      The value stored under `key`, or `default`.

    Raises:
      KeyError: If `key` is not stored and no default is given.
    """
    key = _canonicalize_key(key)
    if key in self:
      value = self[key]
      del self[key]
      return value
    if default is _MARKER:
      raise KeyError(key)
    return default

  def popitem(self, last=True):
    """Removes the last (or first) entry, freeing its tensors.

    Args:
      last: If True remove the most recently inserted entry, else the
        oldest.

    Returns:
      The removed `(key, value)` pair.

    Raises:
      KeyError: If the dict is empty.
    """
    if not self:
      raise KeyError("dictionary is empty")
    key = next(reversed(self)) if last else next(iter(self))
    value = self[key]
    del self[key]
    return key, value

  def clear(self):
    """Removes every entry and frees all tensors."""
    super(LayerParametersDict, self).clear()
    self._tensors.clear()

  def __getitem__(self, key):
    """Returns the value stored under `key` (a list is read as a tuple).

    Args:
      key: A stored key.

    Returns:
      The stored value.

    Raises:
      KeyError: If `key` is not stored.
    """
    return super(LayerParametersDict, self).__getitem__(_canonicalize_key(key))

  def __contains__(self, key):
    """Whether `key` (a list is read as a tuple) is stored.

    Args:
      key: A tensor or a tuple/list of tensors.

    Returns:
      True if the exact key is stored.
    """
    return super(LayerParametersDict, self).__contains__(_canonicalize_key(key))


# The release faces (`kfac._face_members`) re-host registration methods that
# call the layer checks by these names.
_check_fully_connected = _checks.check_fully_connected
_check_conv2d = _checks.check_conv2d


def _graph_of(structure):
  """The graph of the first Tensor/Variable in a nest, or None."""
  for element in tf.nest.flatten(structure):
    if isinstance(element, (tf.Tensor, tf.Variable)):
      return element.graph
  return None


def _identity_index(seq, obj):
  """True if `obj` is (by identity) an element of `seq`."""
  return any(obj is elt for elt in seq)


class LayerCollection(object):
  """Registry of layers, losses and Fisher factors for one model.

  Attributes:
    fisher_blocks: A `LayerParametersDict` mapping each registered parameter
      (or tuple of parameters) to its `FisherBlock`, in registration order.
    fisher_factors: An `OrderedDict` mapping `(factor class, args)` to the
      factor built from them by `make_or_get_factor`.
  """

  def __init__(self, graph=None, name="LayerCollection"):
    """Creates an empty LayerCollection.

    Args:
      graph: The graph the model lives in; defaults to the default graph.
      name: Default name of the variable scope of the factors. The scope is
        made unique in the graph: "LayerCollection", "LayerCollection_1", ...
    """
    self.fisher_blocks = LayerParametersDict()
    self.fisher_factors = collections.OrderedDict()
    self._generic_registrations = set()
    self._explicit_graph = graph
    self._graph = graph or tf.compat.v1.get_default_graph()
    self._loss_dict = collections.OrderedDict()
    self._subgraph = None
    # Registration checks that read the layers' tensors: run when the first
    # factor is made, where TensorFlow 1.4 first used those tensors.
    self._pending_checks = []
    with self._graph.as_default():
      with tf.compat.v1.variable_scope(None, default_name=name) as scope:
        self._var_scope = scope.name

  def reset_internals(self, graph=None, name="LayerCollection"):
    """Empties the collection, as if it had just been created.

    Blocks, factors and losses are forgotten and a new variable scope is
    taken (so factors made afterwards get fresh variables).

    Args:
      graph: The graph the model lives in; defaults to the default graph.
      name: Default name of the new variable scope of the factors.
    """
    self.__init__(graph=graph, name=name)

  @property
  def losses(self):
    """The registered `LossFunction`s, as a list in registration order."""
    return list(self._loss_dict.values())

  @property
  def generic_registrations(self):
    """The set of parameters registered through `register_generic`."""
    return self._generic_registrations

  @property
  def graph(self):
    """The graph this collection's model lives in."""
    return self._graph

  @property
  def subgraph(self):
    """The `utils.SubGraph` built by `create_subgraph`, or None before."""
    return self._subgraph

  def _check_params_type(self, params):
    """Raises a TypeError unless `params` is Tensors/Variables (a key)."""
    for i, param in enumerate(_key_elements(params)):
      if not isinstance(param, (tf.Tensor, tf.Variable)):
        raise TypeError(
          "params{} must be a Tensor or Variable, got {!r}.".format(
            "[{}]".format(i) if isinstance(params, (tuple, list)) else "", param
          )
        )

  def register_block(self, layer_key, fisher_block):
    """Registers a Fisher block for a parameter or a tuple of parameters.

    A key that is already covered by a registered tuple is skipped (with a
    warning); a tuple key that contains registered keys replaces them.

    Args:
      layer_key: A parameter, or a tuple/list of parameters (a list is stored
        as a tuple).
      fisher_block: The `FisherBlock` for these parameters.

    Raises:
      ValueError: If the exact key is already registered, or a tuple key
        overlaps a registered key without either containing the other.
    """
    layer_key = _canonicalize_key(layer_key)
    if layer_key in self.fisher_blocks:
      raise ValueError("Duplicate registration: {}".format(layer_key))
    if isinstance(layer_key, tuple):
      self._register_block_with_tuple_key(layer_key, fisher_block)
    else:
      self._register_block_with_nontuple_key(layer_key, fisher_block)

  def _register_block_with_tuple_key(self, layer_key, fisher_block):
    """Registers a block under a tuple key (see `register_block`)."""
    inclusions = [
      key
      for key in self.fisher_blocks
      if any(self._equal_or_subset(layer_elt, key) for layer_elt in layer_key)
    ]
    to_replace = []
    for key in inclusions:
      fisher_block_key = _key_elements(key)
      if set(layer_key).issubset(fisher_block_key):
        tf.compat.v1.logging.warning(
          "Graph Registration Warning: tried to register a subset (%s) of "
          "an already registered tuple (%s), skipping",
          layer_key,
          fisher_block_key,
        )
        return
      if not set(fisher_block_key).issubset(layer_key):
        raise ValueError(
          "Inconsistent registration, expected new key to be a subset or "
          "superset of the existing key: existing is {}, new is {}".format(
            key, layer_key
          )
        )
      to_replace.append(key)
    for key in to_replace:
      self.fisher_blocks.pop(key)
    self.fisher_blocks[layer_key] = fisher_block

  def _register_block_with_nontuple_key(self, layer_key, fisher_block):
    """Registers a block under a single-parameter key."""
    if any(self._equal_or_subset(layer_key, key) for key in self.fisher_blocks):
      tf.compat.v1.logging.warning(
        "Graph Registration Warning: tried to register variable (%s) but a "
        "containing tuple was already registered, skipping",
        layer_key,
      )
      return
    self.fisher_blocks[layer_key] = fisher_block

  def _equal_or_subset(self, elt1, elt2):
    """Whether two keys are equal or one tuple key contains the other key."""
    return (
      elt1 == elt2
      or (isinstance(elt1, (tuple, list)) and elt2 in elt1)
      or (isinstance(elt2, (tuple, list)) and elt1 in elt2)
    )

  def get_use_count_map(self):
    """Counts, for each parameter, the registered keys that contain it.

    A key counts once per minibatch registered with its block: a
    `FullyConnectedDiagonalFB` with minibatches from several towers stands
    for as many uses of its (shared) parameters. Other blocks count once.

    Returns:
      A `collections.defaultdict(int)` mapping each parameter to its number
      of registrations.
    """
    vars_to_uses = collections.defaultdict(int)
    for key, block in self.fisher_blocks.items():
      uses = getattr(block, "_num_registered_minibatches", 1)
      for k in _key_elements(key):
        vars_to_uses[k] += uses
    return vars_to_uses

  def _check_registration(self, variables):
    """Checks that `variables` and the registrations match.

    Every variable must be registered, with as many registrations as it has
    uses (consumers of its value) inside the graph that feeds the losses, and
    every registered variable must be in `variables`.

    `create_subgraph` must have been called.

    Args:
      variables: The list of variables whose Fisher is estimated.

    Raises:
      ValueError: One error whose message lists every problem found.
    """
    # From release 1.8 the counts are accumulated at registration
    # (`_get_use_count_map`); before, they are derived from the blocks.
    count_uses = getattr(self, "_get_use_count_map", None)
    reg_use_map = (count_uses or self.get_use_count_map)()
    subgraph = self.subgraph
    error_messages = []
    for var in variables:
      reg_uses = reg_use_map.get(var, 0)
      total_uses = subgraph.variable_uses(var)
      if reg_uses == 0:
        error_messages.append("Variable {} not registered.".format(var.name))
      elif not math.isinf(reg_uses) and reg_uses != total_uses:
        error_messages.append(
          "Variable {} registered with wrong number of uses ({} "
          "registrations vs. {} uses).".format(var.name, reg_uses, total_uses)
        )
    not_listed = [
      reg_var
      for reg_var, count in reg_use_map.items()
      if count and not _identity_index(variables, reg_var)
    ]
    if not_listed:
      error_messages.append(
        "{} registered variables were not included in list: {}.".format(
          len(not_listed),
          ", ".join(getattr(v, "name", str(v)) for v in not_listed),
        )
      )
    if error_messages:
      error_messages = [
        "Found the following errors with variable registration:"
      ] + error_messages
      raise ValueError("\n\t".join(error_messages))

  def get_blocks(self):
    """Returns the registered Fisher blocks (a view, in registration order)."""
    return self.fisher_blocks.values()

  def get_factors(self):
    """Returns the Fisher factors created so far (a view, in creation order)."""
    return self.fisher_factors.values()

  def create_subgraph(self):
    """Builds `subgraph`: everything the registered losses' inputs depend on.

    Raises:
      ValueError: If no loss has been registered.
    """
    if not self.losses:
      raise ValueError("Must have at least one registered loss.")
    inputs_to_losses = tf.nest.flatten(
      tuple(loss.inputs for loss in self.losses)
    )
    self._subgraph = utils.SubGraph(inputs_to_losses)

  def total_loss(self):
    """Returns the sum of the registered losses evaluated at their targets.

    Returns:
      A scalar Tensor.

    Raises:
      Exception: If a loss was registered without targets.
    """
    return tf.add_n(tuple(loss.evaluate() for loss in self.losses))

  def total_sampled_loss(self):
    """Returns the sum of the losses evaluated at targets sampled from them.

    Returns:
      A scalar Tensor.
    """
    return tf.add_n(tuple(loss.evaluate_on_sample() for loss in self.losses))

  def register_fully_connected(
    self, params, inputs, outputs, approx=APPROX_KRONECKER_NAME
  ):
    """Registers a fully connected layer `outputs = inputs @ weights (+ b)`.

    Args:
      params: The weights `[input_size, output_size]`, or a `(weights, bias)`
        tuple/list with a bias of `output_size` elements.
      inputs: The layer's inputs, `[batch_size, input_size]`.
      outputs: The layer's pre-activation outputs,
        `[batch_size, output_size]`.
      approx: "kron" (`FullyConnectedKFACBasicFB`) or "diagonal"
        (`FullyConnectedDiagonalFB`).

    The shapes are checked when the collection makes its first factor
    (where TensorFlow 1.4 first used them), not here: until then any
    Tensors are accepted, as in 1.4.

    Raises:
      ValueError: If `approx` is unknown or the parameters are already
        registered. When the first factor is made: if the shapes do not fit,
        or the sizes `input_size` and `output_size` of `inputs` and
        `outputs` are not statically known.
      TypeError: When the first factor is made, if an argument is not a
        Tensor or Variable.
    """
    if approx not in _LAYER_APPROXIMATIONS:
      raise ValueError("Bad value {} for approx.".format(approx))

    def check():
      _checks.check_fully_connected(params, inputs, outputs)
      _checks.check_known(inputs, 2, (1,), "inputs", "[batch_size, input_size]")
      _checks.check_known(
        outputs, 2, (1,), "outputs", "[batch_size, output_size]"
      )

    self._check_params_type(params)
    has_bias = isinstance(params, (tuple, list))
    if approx == APPROX_KRONECKER_NAME:
      block = fb.FullyConnectedKFACBasicFB(self, inputs, outputs, has_bias)
    else:
      # The TF 1.4.0 release's form: factor variables named after `inputs`
      # and the output gradient (`ff_diagfc/<inputs>_<gradient>/cov`).
      block = fb.FullyConnectedDiagonalFB(self, inputs, outputs, has_bias)
    self.register_block(params, block)
    self._pending_checks.append(check)

  def register_conv2d(
    self,
    params,
    strides,
    padding,
    inputs,
    outputs,
    approx=APPROX_KRONECKER_NAME,
  ):
    """Registers a 2-D convolution layer.

    Args:
      params: The filter `[kernel_height, kernel_width, in_channels,
        out_channels]`, or a `(filter, bias)` tuple/list with a bias of
        `out_channels` elements.
      strides: The strides, a tuple or list of 4 ints (lists are accepted and
        converted to tuples).
      padding: "SAME" or "VALID".
      inputs: The layer's inputs, `[batch_size, height, width, in_channels]`
        (height and width statically known).
      outputs: The layer's pre-activation outputs,
        `[batch_size, out_height, out_width, out_channels]`.
      approx: "kron" (`ConvKFCBasicFB`) or "diagonal" (`ConvDiagonalFB`).

    The block reads the inputs' height and width and `strides[1:3]` here,
    as TensorFlow 1.4's did; everything else is checked when the collection
    makes its first factor (where 1.4 first used it).

    Raises:
      ValueError: If `approx` is unknown, the inputs' height and width are
        not statically known, `strides` has no ints at positions 1 and 2, or
        the parameters are already registered. When the first factor is
        made: if `strides` or `padding` is invalid, the shapes do not fit,
        or the rank of `outputs` (and, for "kron", its `out_channels`) is
        not statically known.
      TypeError: When the first factor is made, if an argument is not a
        Tensor or Variable.
    """
    if approx not in _LAYER_APPROXIMATIONS:
      raise ValueError("Bad value {} for approx.".format(approx))

    def check():
      _checks.check_conv2d(params, strides, padding, inputs, outputs)
      # The Kronecker output factor is sized by the gradients' channels.
      _checks.check_known(
        outputs,
        4,
        (3,) if approx == APPROX_KRONECKER_NAME else (),
        "outputs",
        "[batch_size, out_height, out_width, out_channels]",
      )

    self._check_params_type(params)
    if approx == APPROX_KRONECKER_NAME:
      block = fb.ConvKFCBasicFB(self, params, inputs, outputs, strides, padding)
    else:
      block = fb.ConvDiagonalFB(self, params, inputs, outputs, strides, padding)
    self.register_block(params, block)
    self._pending_checks.append(check)

  def register_generic(self, params, batch_size, approx=APPROX_DIAGONAL_NAME):
    """Registers parameters without a known layer structure.

    The block is stored directly (the subset/superset rules of
    `register_block` do not apply), but no parameter may already be part of
    another registration.

    Args:
      params: A parameter or a tuple/list of parameters.
      batch_size: The batch size (int or scalar Tensor) the gradient
        statistics are divided by.
      approx: "full" (`FullFB`) or "diagonal" (`NaiveDiagonalFB`).

    Raises:
      ValueError: If `approx` is unknown or a parameter is already
        registered.
    """
    if approx not in _GENERIC_APPROXIMATIONS:
      raise ValueError("Bad value {} for approx.".format(approx))
    params = tuple(params) if isinstance(params, (tuple, list)) else (params,)
    if approx == APPROX_FULL_NAME:
      block = fb.FullFB(self, params, batch_size)
    else:
      block = fb.NaiveDiagonalFB(self, params, batch_size)
    self.fisher_blocks[params] = block
    self._generic_registrations |= set(params)

  def _register_loss(self, loss, name, default_name):
    """Stores a loss under `name` (or a fresh unique name if None)."""
    if name is None:
      name = self._graph.unique_name(default_name)
    elif not isinstance(name, str):
      raise TypeError("name must be a string or None, got {!r}.".format(name))
    if name in self._loss_dict:
      raise ValueError(
        "A loss named {!r} is already registered; use another name (or "
        "None for a unique one).".format(name)
      )
    self._loss_dict[name] = loss

  def register_categorical_predictive_distribution(
    self, logits, seed=None, targets=None, name=None
  ):
    """Registers a categorical predictive distribution over classes.

    Adds a `CategoricalLogitsNegativeLogProbLoss(logits, targets, seed)`.

    Args:
      logits: The unnormalised log-probabilities, `[batch_size, num_classes]`
        (the Fisher-factor products need this layout).
      seed: Seed of the sampling done by `total_sampled_loss` (for
        debugging).
      targets: Optional integer class targets `[batch_size]`; needed by
        `total_loss`.
      name: Optional unique name of the loss; a fresh one is made if None.

    Raises:
      ValueError: If `name` is already used.
    """
    loss = lf.CategoricalLogitsNegativeLogProbLoss(
      logits, targets=targets, seed=seed
    )
    self._register_loss(
      loss, name, "register_categorical_predictive_distribution"
    )

  def register_normal_predictive_distribution(
    self, mean, var=0.5, seed=None, targets=None, name=None
  ):
    """Registers a normal predictive distribution with a fixed variance.

    Adds a `NormalMeanNegativeLogProbLoss(mean, var, targets, seed)`. With
    the default `var=0.5` the loss equals `sum((targets - mean)**2)` up to a
    constant; use `var=1.0` for `0.5 * sum((targets - mean)**2)`.

    Args:
      mean: The mean of the distribution, `[batch_size, output_size]`.
      var: The (fixed, scalar) variance.
      seed: Seed of the sampling done by `total_sampled_loss`.
      targets: Optional targets shaped like `mean`; needed by `total_loss`.
      name: Optional unique name of the loss; a fresh one is made if None.

    Raises:
      ValueError: If `name` is already used.
    """
    loss = lf.NormalMeanNegativeLogProbLoss(
      mean, var, targets=targets, seed=seed
    )
    self._register_loss(loss, name, "register_normal_predictive_distribution")

  def register_multi_bernoulli_predictive_distribution(
    self, logits, seed=None, targets=None, name=None
  ):
    """Registers independent Bernoulli predictive distributions.

    Adds a `MultiBernoulliNegativeLogProbLoss(logits, targets, seed)`.

    Args:
      logits: The log-odds of each output, `[batch_size, num_outputs]`.
      seed: Seed of the sampling done by `total_sampled_loss`.
      targets: Optional 0/1 targets shaped like `logits`; needed by
        `total_loss`.
      name: Optional unique name of the loss; a fresh one is made if None.

    Raises:
      ValueError: If `name` is already used.
    """
    loss = lf.MultiBernoulliNegativeLogProbLoss(
      logits, targets=targets, seed=seed
    )
    self._register_loss(
      loss, name, "register_multi_bernoulli_predictive_distribution"
    )

  def make_or_get_factor(self, cls, args):
    """Returns the factor `cls(*args)`, creating it only the first time.

    Factors are keyed by `(cls, args)`, so blocks asking for the same factor
    class with the same arguments share one factor (and its variables). New
    factors are built inside this collection's variable scope.

    Args:
      cls: A `FisherFactor` subclass.
      args: A tuple of hashable constructor arguments.

    Returns:
      The factor.

    Before the first factor is made, the registration checks of the layers
    registered so far run (see `register_fully_connected`,
    `register_conv2d`). The factor is built in the graph of its arguments'
    tensors, so a collection made before or outside the model's graph works.

    Raises:
      TypeError: If `args` is not hashable (e.g. it contains a list), or a
        pending registration check fails with one.
      ValueError: If a pending registration check fails.
    """
    while self._pending_checks:
      self._pending_checks.pop(0)()
    key = (cls, args)
    try:
      hash(key)
    except TypeError as e:
      raise TypeError(
        "args of make_or_get_factor must be hashable (use tuples, not "
        "lists): {}".format(e)
      ) from None
    # The graph of the factor's tensors: a collection made before (or
    # outside) the model's graph works, as in TensorFlow 1.4.
    graph = (
      _graph_of(args)
      or self._explicit_graph
      or tf.compat.v1.get_default_graph()
    )
    with graph.as_default():
      with tf.compat.v1.variable_scope(self._var_scope):
        return utils.setdefault(
          self.fisher_factors, key, lambda: self._new_factor(cls, args)
        )

  def _new_factor(self, cls, args):
    """Builds the factor `cls(*args)` (release faces add arguments)."""
    return cls(*args)
