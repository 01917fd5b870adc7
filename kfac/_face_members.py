"""Members that release faces put in place of (or next to) the engine's.

`kfac._releases` names these in each release's `members`; `kfac._faces`
re-hosts them into the face module like engine code, so every global name
used here (`FisherBlock`, `fisher_factors`, `tf`, ...) is resolved in the
face module they are put in, never in this one. Write them as if they were
part of that engine module. They are adapters (signatures, argument order,
defaults); the maths they call lives in the engine.
"""

# pylint: disable=undefined-variable,protected-access,invalid-name


# ---------------------------------------------------------------------------
# utils (1.5)


def utils_1_5__posdef_inv_eig(tensor, identity, damping):
  """Computes `(tensor + damping * identity)^-1` by eigendecomposition.

  With `tensor + damping * identity = V diag(λ) Vᵀ` (`self_adjoint_eig`), the
  result is `V diag(1/λ) Vᵀ`; no eigenvalue is clipped.

  Args:
    tensor: A symmetric PSD `[n, n]` Tensor.
    identity: The `[n, n]` identity in the dtype of `tensor`.
    damping: The damping, a float or a scalar Tensor.

  Returns:
    The `[n, n]` inverse.
  """
  eigenvalues, eigenvectors = tf.linalg.eigh(
    tensor + _ops.in_dtype(damping, tensor.dtype) * identity
  )
  return tf.matmul(eigenvectors / eigenvalues, eigenvectors, transpose_b=True)


def _set_given_constants(namespace, arguments):
  """The body of the faces' `set_global_constants`.

  Every argument of a `set_global_constants` names its module constant in
  lower case (`zero_debias` sets `ZERO_DEBIAS`); None leaves the constant
  as it is.

  Args:
    namespace: The face module's globals (`globals()` of the caller).
    arguments: The caller's arguments (its `locals()`, taken first thing).
  """
  namespace.update(
    (name.upper(), value)
    for name, value in arguments.items()
    if value is not None
  )


def utils_1_5__set_global_constants(posdef_inv_method=None):
  """Overwrites the module's global constants (those not None).

  Args:
    posdef_inv_method: The new `POSDEF_INV_METHOD`, a key of
      `posdef_inv_functions` ("cholesky", "matrix_inverse" or "eig"). It is
      not validated: an unknown name fails at the next `posdef_inv` call.
  """
  _set_given_constants(globals(), locals())


def utils_1_5__finish():
  """Makes `posdef_inv_functions` (1.5's name, with "eig") the dispatch table.

  `posdef_inv` reads `posdef_inv_funcs`; both names share one dict.
  """
  global posdef_inv_functions, posdef_inv_funcs, posdef_eig_functions
  posdef_inv_functions = dict(posdef_inv_funcs)
  posdef_inv_functions["eig"] = posdef_inv_eig
  posdef_inv_funcs = posdef_inv_functions
  posdef_eig_functions = {
    "self_adjoint": posdef_eig_self_adjoint,
    "svd": posdef_eig_svd,
  }


# ---------------------------------------------------------------------------
# loss_functions (1.5): no targets/dist constructor arguments; properties
# `targets`, `dist`, `input_minibatches`, `num_registered_minibatches`; the
# categorical loss takes further minibatches.


def loss_1_5__targets(self):
  """The targets given at construction (a Tensor), or None."""
  return self._targets


loss_1_5__targets = property(loss_1_5__targets)


def loss_1_5__input_minibatches(self):
  """The inputs of every registered minibatch, a list (one here)."""
  return [self.inputs]


loss_1_5__input_minibatches = property(loss_1_5__input_minibatches)


def loss_1_5__num_registered_minibatches(self):
  """The number of registered minibatches, `len(input_minibatches)`."""
  return len(self.input_minibatches)


loss_1_5__num_registered_minibatches = property(
  loss_1_5__num_registered_minibatches
)


def loss_1_5__dist(self):
  """The predictive distribution of the targets."""
  return self._dist


loss_1_5__dist = property(loss_1_5__dist)


def _categorical_1_5__get_logits(self):
  if not hasattr(self, "_targets_components"):
    # Still in the constructor, which builds no concat in these releases.
    return self._logits_components[0]
  return tf.concat(self._logits_components, axis=0)


def _categorical_1_5__set_logits(self, value):
  self._logits_components = [value]


categorical_1_5___logits = property(
  _categorical_1_5__get_logits, _categorical_1_5__set_logits
)


def _categorical_1_5__get_targets(self):
  components = self._targets_components
  if all(t is None for t in components):
    return None
  return tf.concat(components, axis=0)


def _categorical_1_5__set_targets(self, value):
  self._targets_components = [value]


categorical_1_5___targets = property(
  _categorical_1_5__get_targets, _categorical_1_5__set_targets
)


def _categorical_1_5__get_dist(self):
  return _Categorical(self._logits)


def _categorical_1_5__set_dist(self, value):
  del value  # Built from the current minibatches on every access.


categorical_1_5___dist = property(
  _categorical_1_5__get_dist, _categorical_1_5__set_dist
)


def categorical_1_5__register_additional_minibatch(self, logits, targets=None):
  """Adds one more minibatch (e.g. a tower) to this loss.

  The loss's logits (`params`, `inputs`) and targets become the
  concatenation of all minibatches along the batch axis, built anew on every
  access.

  Args:
    logits: The minibatch's logits, `[batch_size, num_classes]`.
    targets: Optional class targets `[batch_size]`. If some minibatches have
      targets and others not, `targets` fails in `concat`.
  """
  self._logits_components.append(_float_param(logits, "logits"))
  if targets is not None:
    targets = _as_tensor(targets, "targets")
    _check_class_ids(targets)
  self._targets_components.append(targets)


def categorical_1_5__input_minibatches(self):
  """The logits of every registered minibatch, a list."""
  return list(self._logits_components)


categorical_1_5__input_minibatches = property(
  categorical_1_5__input_minibatches
)


# ---------------------------------------------------------------------------
# fisher_blocks (1.5): blocks are built without data; every minibatch (e.g.
# tower) is added with `register_additional_minibatch` and all are pooled by
# concatenation along the batch axis when the factors are instantiated.

PI_OFF_NAME = "off"
PI_TRACENORM_NAME = "tracenorm"


def blocks_1_5__concat_along_batch_dim(tensor_list):
  """Concatenates the minibatches of a list along the batch dimension.

  From release 1.5 a `concat` op is built even for one minibatch (factor
  variables are named after it: `concat`, `concat_1`, ...).

  Args:
    tensor_list: A non-empty list whose entries are either all Tensors, or
      all tuples of Tensors of the same length (one tuple per minibatch).

  Returns:
    For Tensors, one Tensor: the entries concatenated along axis 0. For
    tuples, a tuple whose i-th entry concatenates the i-th entries.

  Raises:
    ValueError: If `tensor_list` is empty.
  """
  return _concat_minibatches(
    tensor_list, lambda tensors: tf.concat(tensors, axis=0)
  )


def blocks_1_5__set_global_constants(
  normalize_damping_power=None, pi_type=None
):
  """Overwrites the module's global constants (those not None).

  Args:
    normalize_damping_power: The new `NORMALIZE_DAMPING_POWER` (a float; 0
      disables the normalisation of the damping by the number of
      replications of the parameters).
    pi_type: The new `PI_TYPE`: "tracenorm" (π-adjusted damping of the
      Kronecker factors) or "off" (`√d` on both factors). Not validated:
      another value makes Kronecker blocks fail with a TypeError when their
      factors are instantiated.
  """
  _set_given_constants(globals(), locals())


def block_1_5__num_registered_minibatches(self):
  """The number of minibatches registered with this block."""
  return self._num_registered_minibatches


block_1_5__num_registered_minibatches = property(
  block_1_5__num_registered_minibatches
)


def _minibatch_count(self):
  return len(self._minibatches)


block_1_5___num_registered_minibatches = property(_minibatch_count)


def generic_fb_1_5__init__(self, layer_collection, params):
  """Creates the block; batch sizes come with `register_additional_minibatch`.

  Args:
    layer_collection: The `LayerCollection` this block belongs to.
    params: The parameters: a Tensor/Variable or a tuple of them.
  """
  self._params = params
  self._minibatches = []
  FisherBlock.__init__(self, layer_collection)


def generic_fb_1_5__register_additional_minibatch(self, batch_size):
  """Registers the batch size of one more minibatch.

  The statistics are divided by the sum of all registered batch sizes.

  Args:
    batch_size: The minibatch's batch size, a positive int or a scalar
      Tensor.
  """
  self._minibatches.append(_check_batch_size(batch_size))


def generic_fb_1_5__instantiate_factors(self, grads_list, damping):
  """Creates the factor; its batch size is the sum of the minibatches'.

  Args:
    grads_list: A tuple over sources of the gradients with respect to the
      parameters (structured like `params`).
    damping: The damping λ, a float or a scalar Tensor.
  """
  self._batch_size = tf.reduce_sum(self._minibatches)
  self._engine_instantiate_factors(grads_list, damping)


def io_fb_1_5__register_additional_minibatch(self, inputs, outputs):
  """Registers the inputs and outputs of one more minibatch of the layer.

  Args:
    inputs: The layer's inputs for this minibatch.
    outputs: The layer's pre-activation outputs for this minibatch.
  """
  self._minibatches.append((inputs, outputs))


def io_fb_1_5__tensors_to_compute_grads(self):
  """Returns the list of the registered minibatches' outputs."""
  return [outputs for _, outputs in self._minibatches]


def _pooled_minibatches(self, grads_list):
  """The registered inputs and the per-source gradients, concatenated."""
  inputs = _concat_along_batch_dim([i for i, _ in self._minibatches])
  grads_list = tuple(
    _concat_along_batch_dim(
      list(grads) if isinstance(grads, (tuple, list)) else [grads]
    )
    for grads in grads_list
  )
  return inputs, grads_list


def fc_kfac_fb_1_5__init__(self, layer_collection, has_bias=False):
  """Creates the block with no minibatch registered yet.

  Args:
    layer_collection: The `LayerCollection` this block belongs to.
    has_bias: Whether the layer has a bias (vectors are then
      `(weights, bias)` tuples).
  """
  self._has_bias = has_bias
  self._minibatches = []
  FisherBlock.__init__(self, layer_collection)


def fc_kfac_fb_1_5__instantiate_factors(self, grads_list, damping):
  """Creates both Kronecker factors from the pooled minibatches.

  Args:
    grads_list: A tuple over sources; each entry is the list (one per
      registered minibatch) of the gradients with respect to the outputs.
    damping: The damping λ, a float or a scalar Tensor.
  """
  self._inputs, grads_list = _pooled_minibatches(self, grads_list)
  self._engine_instantiate_factors(grads_list, damping)


def conv_fb_1_5__init__(self, layer_collection, params, strides, padding):
  """Creates the block with no minibatch registered yet.

  Args:
    layer_collection: The `LayerCollection` this block belongs to.
    params: The filter `[kh, kw, in_c, out_c]`, or a tuple/list whose first
      entry is the filter; any tuple/list means the layer has a bias.
    strides: The convolution strides, 4 ints (a list becomes a tuple).
    padding: The convolution padding, "SAME" or "VALID".
  """
  self._params = params
  self._strides = tuple(strides) if isinstance(strides, list) else strides
  self._padding = padding
  self._has_bias = isinstance(params, (tuple, list))
  self._minibatches = []
  FisherBlock.__init__(self, layer_collection)


def conv_fb_1_5__instantiate_factors(self, grads_list, damping):
  """Creates the factors from the pooled minibatches.

  The number of spatial locations `|T|` is read from the static shape of
  the concatenated inputs.

  Args:
    grads_list: A tuple over sources; each entry is the list (one per
      registered minibatch) of the gradients with respect to the outputs.
    damping: The damping λ, a float or a scalar Tensor.
  """
  inputs, grads_list = _pooled_minibatches(self, grads_list)
  _init_conv_block(
    self, self._params, inputs, None, self._strides, self._padding
  )
  self._engine_instantiate_factors(grads_list, damping)


def kron_fb_1_5__register_damped_input_and_output_inverses(self, damping):
  """Registers the damped inverses of both factors, split by `PI_TYPE`.

  With "tracenorm" the damping is split with the π of Martens & Grosse
  (`(A + π√d I) ⊗ (G + √d/π I)`); with "off" both factors get `√d` (a float
  for a float `d`).

  Args:
    damping: The (normalised) damping d, a float or a scalar Tensor.

  Raises:
    TypeError: If `PI_TYPE` is neither (the split cannot be unpacked).
  """
  if PI_TYPE == PI_TRACENORM_NAME:
    self._engine__register_damped_input_and_output_inverses(damping)
    return
  split = None
  if PI_TYPE == PI_OFF_NAME:
    root = (
      damping**0.5
      if not isinstance(damping, (tf.Tensor, tf.Variable))
      else tf.sqrt(damping)
    )
    split = (root, root)
  self._input_damping, self._output_damping = split
  self._input_factor.register_damped_inverse(self._input_damping)
  self._output_factor.register_damped_inverse(self._output_damping)


# ---------------------------------------------------------------------------
# layer_collection (1.5): reuse-based multi-minibatch registration,
# per-collection default approximations, linked parameters.

VARIABLE_SCOPE = "VARIABLE_SCOPE"
_TRUE = True
APPROX_KRONECKER_INDEP_NAME = "kron_indep"
APPROX_KRONECKER_SERIES_1_NAME = "kron_series_1"
APPROX_KRONECKER_SERIES_2_NAME = "kron_series_2"


def lc_1_5__init__(
  self, graph=None, colocate_cov_ops_with_inputs=False, name="LayerCollection"
):
  """Creates an empty LayerCollection.

  Args:
    graph: The graph the model lives in; defaults to the default graph.
    colocate_cov_ops_with_inputs: Whether the factors built by this
      collection compute their statistics next to their input data (passed
      to every factor constructor).
    name: Default name of the variable scope of the factors. The scope is
      made unique in the graph: "LayerCollection", "LayerCollection_1", ...
  """
  self._engine___init__(graph=graph, name=name)
  self._colocate_cov_ops_with_inputs = colocate_cov_ops_with_inputs
  self._linked_parameters = {}
  release = self._release
  self._default_generic_approximation = release.default_generic_approximation
  self._default_fully_connected_approximation = APPROX_KRONECKER_NAME
  self._default_conv2d_approximation = APPROX_KRONECKER_NAME
  self._default_fully_connected_multi_approximation = (
    release.default_fully_connected_multi_approximation
  )
  self._default_embedding_approximation = APPROX_KRONECKER_NAME


def lc_1_5___new_factor(self, cls, args):
  """Builds `cls(*args)` with this collection's colocation flag (1.5)."""
  return cls(
    *args, colocate_cov_ops_with_inputs=self._colocate_cov_ops_with_inputs
  )


def _approx_property(attribute, doc):
  def getter(self):
    return getattr(self, attribute)

  getter.__doc__ = doc
  return property(getter)


lc_1_5__default_generic_approximation = _approx_property(
  "_default_generic_approximation",
  "The approximation `register_generic` uses when `approx` is None.",
)
lc_1_5__default_fully_connected_approximation = _approx_property(
  "_default_fully_connected_approximation",
  "The approximation `register_fully_connected` uses when `approx` is None.",
)
lc_1_5__default_conv2d_approximation = _approx_property(
  "_default_conv2d_approximation",
  "The approximation `register_conv2d` uses when `approx` is None.",
)
lc_1_5__default_fully_connected_multi_approximation = _approx_property(
  "_default_fully_connected_multi_approximation",
  "The approximation `register_fully_connected_multi` uses when `approx` "
  "is None.",
)
lc_1_7__default_embedding_approximation = _approx_property(
  "_default_embedding_approximation",
  "The approximation `register_embedding` uses when `approx` is None.",
)


def _legal_approximations(kind):
  """The approximation names of one layer kind.

  Those `register_<kind>` accepts, and `set_default_<kind>_approximation`.

  Args:
    kind: "generic", "fully_connected", "conv2d", "fully_connected_multi",
      "embedding", "conv2d_multi" or "embedding_multi".

  Returns:
    A tuple of approximation names.
  """
  kron_or_diagonal = (APPROX_KRONECKER_NAME, APPROX_DIAGONAL_NAME)
  return {
    "generic": (APPROX_FULL_NAME, APPROX_DIAGONAL_NAME),
    "fully_connected": kron_or_diagonal,
    "conv2d": kron_or_diagonal,
    "fully_connected_multi": (
      APPROX_KRONECKER_INDEP_NAME,
      APPROX_KRONECKER_SERIES_1_NAME,
      APPROX_KRONECKER_SERIES_2_NAME,
    ),
    "embedding": (APPROX_KRONECKER_NAME,),
    "conv2d_multi": (APPROX_KRONECKER_INDEP_NAME,),
    "embedding_multi": (APPROX_KRONECKER_INDEP_NAME,),
  }[kind]


def _set_default(self, kind, value):
  """Sets `_default_<kind>_approximation` to a legal `value`."""
  legal = _legal_approximations(kind)
  if value not in legal:
    raise ValueError(
      "{} is not a valid approximation; expected one of {}.".format(
        value, ", ".join(legal)
      )
    )
  setattr(self, "_default_{}_approximation".format(kind), value)


def _default_setter(kind, summary, legal_text):
  """A `set_default_<kind>_approximation` method (see `_set_default`).

  Args:
    kind: The layer kind (see `_legal_approximations`).
    summary: The first line of the method's docstring.
    legal_text: The legal values, as the docstring states them.

  Returns:
    The method, a function of `(self, value)`.
  """

  def setter(self, value):
    _set_default(self, kind, value)

  setter.__doc__ = (
    "{}\n\n  Args:\n    value: {}.\n\n  Raises:\n"
    "    ValueError: For any other value.\n  ".format(summary, legal_text)
  )
  return setter


lc_1_5__set_default_generic_approximation = _default_setter(
  "generic",
  "Sets the approximation used by `register_generic` for `approx=None`.",
  '"full" or "diagonal"',
)
lc_1_5__set_default_fully_connected_approximation = _default_setter(
  "fully_connected",
  "Sets the approximation of `register_fully_connected` for `approx=None`.",
  '"kron" or "diagonal"',
)
lc_1_5__set_default_conv2d_approximation = _default_setter(
  "conv2d",
  "Sets the approximation used by `register_conv2d` for `approx=None`.",
  '"kron" or "diagonal"',
)
lc_1_5__set_default_fully_connected_multi_approximation = _default_setter(
  "fully_connected_multi",
  "Sets the approximation of `register_fully_connected_multi` (None).",
  '"kron_indep", "kron_series_1" or "kron_series_2"',
)
lc_1_7__set_default_embedding_approximation = _default_setter(
  "embedding",
  "Sets the approximation used by `register_embedding` for `approx=None`.",
  '"kron" (the only legal value)',
)


def lc_1_5__linked_parameters(self):
  """Dict: frozenset of linked parameters -> approximation name or None."""
  return self._linked_parameters


lc_1_5__linked_parameters = property(lc_1_5__linked_parameters)


def lc_1_5__registered_variables(self):
  """A flat tuple of every registered variable, in registration order."""
  return tuple(
    var for key in self.fisher_blocks for var in ensure_sequence(key)
  )


lc_1_5__registered_variables = property(lc_1_5__registered_variables)


def lc_1_5__check_registration(self, variables):
  """Checks that `variables` and the registrations match.

  Every variable must be registered with as many uses as it has in the graph
  feeding the losses (`create_subgraph` must have run), and every registered
  variable must be in `variables`.

  Args:
    variables: The list of variables whose Fisher is estimated.

  Raises:
    ValueError: One error whose message lists every problem found.
  """
  self._check_registration(variables)


def lc_1_5__get_use_count_map(self):
  """Counts the registered uses of each parameter.

  Every variable of a block's key counts `num_registered_minibatches` uses
  (times `num_inputs()` for the shared-weight blocks).

  Returns:
    A `collections.defaultdict(int)` mapping each parameter to its count.
  """
  vars_to_uses = collections.defaultdict(int)
  for key, block in self.fisher_blocks.items():
    uses = block.num_registered_minibatches
    if hasattr(block, "num_inputs"):
      uses *= block.num_inputs()
    for var in ensure_sequence(key):
      vars_to_uses[var] += uses
  return vars_to_uses


def lc_1_5__register_block(self, layer_key, fisher_block, reuse=VARIABLE_SCOPE):
  """Registers a block for a parameter or tuple of parameters, or reuses one.

  Args:
    layer_key: A variable or a tuple/list of variables (a list is stored as
      a tuple).
    fisher_block: The new `FisherBlock`.
    reuse: True to return the block already registered for `layer_key`
      (`fisher_block` is then discarded), False to require a new key,
      `tf.compat.v1.AUTO_REUSE` for either, or `VARIABLE_SCOPE` to use the
      current variable scope's `reuse`.

  Returns:
    The block registered for `layer_key`: `fisher_block`, or the existing
    block when reusing.

  Raises:
    KeyError: If reusing and `layer_key` is not registered.
    ValueError: If reusing a block of another type; if not reusing and the
      key is registered; or if any variable of `layer_key` belongs to
      another registered key.
  """
  if reuse is VARIABLE_SCOPE or reuse == VARIABLE_SCOPE:
    reuse = tf.compat.v1.get_variable_scope().reuse
  layer_key = _canonicalize_key(layer_key)
  if reuse is True or (
    reuse is tf.compat.v1.AUTO_REUSE and layer_key in self.fisher_blocks
  ):
    result = self.fisher_blocks[layer_key]
    if type(result) is not type(fisher_block):
      raise ValueError(
        "Attempted to register FisherBlock of type {} when existing "
        "FisherBlock has type {}.".format(type(fisher_block), type(result))
      )
    return result
  if reuse is False and layer_key in self.fisher_blocks:
    raise ValueError(
      "FisherBlock for {} is already in LayerCollection.".format(layer_key)
    )
  if layer_key in self.fisher_blocks:
    raise ValueError("Duplicate registration: {}".format(layer_key))
  for variable in ensure_sequence(layer_key):
    for key, block in self.fisher_blocks.items():
      if _identity_index(ensure_sequence(key), variable):
        raise ValueError(
          "Attempted to register layer_key {} with block {}, but variable "
          "{} was already registered in key {} with block {}.".format(
            layer_key, fisher_block, variable, key, block
          )
        )
  self.fisher_blocks[layer_key] = fisher_block
  return fisher_block


def lc_1_5__define_linked_parameters(self, params, approximation=None):
  """Identifies a group of parameters that form one block (e.g. a layer).

  A later registration of exactly these parameters with `approx=None` uses
  `approximation` (when it is not None).

  Args:
    params: A variable or a tuple/list of variables.
    approximation: Optional approximation name for registrations of the
      group.

  Raises:
    ValueError: If a variable of `params` is already registered under a
      different key, or already belongs to a linked group.
  """
  params = frozenset(ensure_sequence(params))
  for param in params:
    for key in self.fisher_blocks:
      key_set = frozenset(ensure_sequence(key))
      if param in key_set and key_set != params:
        raise ValueError(
          "Can't link parameters {}, variable {} was already registered "
          "in group {}.".format(params, param, key)
        )
    for group in self._linked_parameters:
      if param in group:
        raise ValueError(
          "Can't link parameters {}, variable {} was already linked in "
          "group {}.".format(params, param, group)
        )
  self._linked_parameters[params] = approximation


def _add_data(self, params, block, uses, *data):
  """Adds one registration's data to `block`.

  A minibatch (1.5-1.7), or from 1.8 a tower, whose `uses` are added to the
  collection's use counts.
  """
  if self._release.registration == "tower":
    block.register_additional_tower(*data)
    self._add_uses(params, uses)
  else:
    block.register_additional_minibatch(*data)


def _resolve_approx(self, params, approx, kind, legal=None):
  """Explicit `approx`, else the linked group's, else the default of `kind`.

  Args:
    self: The `LayerCollection`.
    params: The registration's parameters.
    approx: The `approx` argument given (None: not given).
    kind: The layer kind (see `_legal_approximations`); its default is
      `self.default_<kind>_approximation`.
    legal: The names allowed, if not those of `_legal_approximations(kind)`.

  Returns:
    The approximation name.

  Raises:
    ValueError: If the name is not allowed.
  """
  if approx is None:
    approx = self._linked_parameters.get(frozenset(ensure_sequence(params)))
  if approx is None:
    approx = getattr(self, "default_{}_approximation".format(kind))
  if legal is None:
    legal = _legal_approximations(kind)
  if approx not in legal:
    raise ValueError("Bad value {} for approx.".format(approx))
  return approx


def lc_1_5__register_fully_connected(
  self, params, inputs, outputs, approx=None, reuse=VARIABLE_SCOPE
):
  """Registers (one minibatch of) a fully connected layer.

  `outputs = inputs @ weights (+ bias)`. A later registration of the same
  parameters with reuse adds another minibatch (e.g. a tower) to the block.

  Args:
    params: The weights `[input_size, output_size]`, or a `(weights, bias)`
      tuple/list.
    inputs: The layer's inputs, `[batch_size, input_size]`.
    outputs: The layer's pre-activation outputs,
      `[batch_size, output_size]`.
    approx: "kron" or "diagonal"; None uses the linked approximation or
      `default_fully_connected_approximation`.
    reuse: See `register_block`.

  Raises:
    ValueError: If `approx` is illegal, the shapes do not fit, or
      `register_block` refuses the registration.
    KeyError: If reusing a key that is not registered.
  """
  approx = _resolve_approx(self, params, approx, "fully_connected")
  _check_fully_connected(params, inputs, outputs)
  has_bias = isinstance(params, (tuple, list))
  block_type = (
    fb.FullyConnectedKFACBasicFB
    if approx == APPROX_KRONECKER_NAME
    else fb.FullyConnectedDiagonalFB
  )
  block = self.register_block(params, block_type(self, has_bias), reuse=reuse)
  _add_data(self, params, block, 1, inputs, outputs)


def lc_1_5__register_conv2d(
  self,
  params,
  strides,
  padding,
  inputs,
  outputs,
  approx=None,
  reuse=VARIABLE_SCOPE,
):
  """Registers (one minibatch of) a 2-D convolution layer.

  Args:
    params: The filter `[kernel_height, kernel_width, in_channels,
      out_channels]`, or a `(filter, bias)` tuple/list.
    strides: The strides, 4 ints.
    padding: "SAME" or "VALID".
    inputs: The layer's inputs, `[batch_size, height, width, in_channels]`.
    outputs: The layer's pre-activation outputs.
    approx: "kron" or "diagonal"; None uses the linked approximation or
      `default_conv2d_approximation`.
    reuse: See `register_block`.

  Raises:
    ValueError: If `approx` is illegal (from 1.5 also for conv layers), the
      arguments do not fit, or `register_block` refuses the registration.
    KeyError: If reusing a key that is not registered.
  """
  approx = _resolve_approx(self, params, approx, "conv2d")
  _check_conv2d(params, strides, padding, inputs, outputs)
  block_type = (
    fb.ConvKFCBasicFB if approx == APPROX_KRONECKER_NAME else fb.ConvDiagonalFB
  )
  block = self.register_block(
    params, block_type(self, params, strides, padding), reuse=reuse
  )
  _add_data(self, params, block, 1, inputs, outputs)


def lc_1_5__register_generic(
  self, params, batch_size, approx=None, reuse=VARIABLE_SCOPE
):
  """Registers parameters without a known layer structure.

  Args:
    params: A variable or a tuple/list of variables.
    batch_size: The batch size (int or scalar Tensor) of this minibatch.
    approx: "full" or "diagonal"; None uses the linked approximation or
      `default_generic_approximation`.
    reuse: See `register_block`.

  Raises:
    ValueError: If `approx` is illegal or `register_block` refuses the
      registration.
    KeyError: If reusing a key that is not registered.
  """
  approx = _resolve_approx(self, params, approx, "generic")
  block_type = fb.FullFB if approx == APPROX_FULL_NAME else fb.NaiveDiagonalFB
  block = self.register_block(params, block_type(self, params), reuse=reuse)
  _add_data(self, params, block, float("inf"), batch_size)


def lc_1_5__register_fully_connected_multi(
  self, params, inputs, outputs, approx=None
):
  """Registers a fully connected layer used several times (shared weights).

  Args:
    params: The weights, or a `(weights, bias)` tuple/list.
    inputs: A list over uses of the layer's inputs, each `[batch, in]`.
    outputs: A list over uses of the pre-activation outputs.
    approx: "kron_indep", "kron_series_1" or "kron_series_2"; None uses the
      linked approximation or `default_fully_connected_multi_approximation`.

  Raises:
    ValueError: If `approx` is illegal, or the parameters are registered
      already (no reuse: shared layers have one minibatch).
  """
  approx = _resolve_approx(self, params, approx, "fully_connected_multi")
  has_bias = isinstance(params, (tuple, list))
  if approx == APPROX_KRONECKER_INDEP_NAME:
    block = fb.FullyConnectedMultiIndepFB(
      self, inputs, outputs, has_bias=has_bias
    )
  else:
    option = (
      fb.SeriesFBApproximation.option1
      if approx == APPROX_KRONECKER_SERIES_1_NAME
      else fb.SeriesFBApproximation.option2
    )
    block = fb.FullyConnectedSeriesFB(
      self, inputs, outputs, has_bias=has_bias, option=option
    )
  self.register_block(params, block, reuse=False)


def lc_1_5__register_categorical_predictive_distribution(
  self, logits, seed=None, targets=None, name=None, reuse=VARIABLE_SCOPE
):
  """Registers (one minibatch of) a categorical predictive distribution.

  Args:
    logits: The logits, `[batch_size, num_classes]`.
    seed: Seed of the sampling done by `total_sampled_loss`; only for a new
      loss.
    targets: Optional integer class targets `[batch_size]`.
    name: The loss's name; defaults to a name unique in the graph. Towers
      of one loss register it under the same name.
    reuse: True to add this minibatch to the loss `name`, False for a new
      loss, `VARIABLE_SCOPE` to use the current variable scope's `reuse`.

  Raises:
    ValueError: If reusing with a `seed`, or `logits` is not of rank 2.
    KeyError: If reusing an unknown name, or not reusing a known one.
  """
  if name is None:
    name = self._graph.unique_name(
      "register_categorical_predictive_distribution"
    )
  if reuse is VARIABLE_SCOPE or reuse == VARIABLE_SCOPE:
    reuse = tf.compat.v1.get_variable_scope().reuse
  if reuse:
    if seed is not None:
      raise ValueError(
        "Seed can only be specified at LossFunction instantiation."
      )
    if name not in self._loss_dict:
      raise KeyError(
        "Unable to find loss function named {}. Create a new "
        "LossFunction with reuse=False.".format(name)
      )
    self._loss_dict[name].register_additional_minibatch(logits, targets=targets)
  else:
    if name in self._loss_dict:
      raise KeyError(
        "Loss function named {} already exists. Set reuse=True "
        "to append another minibatch.".format(name)
      )
    self._loss_dict[name] = lf.CategoricalLogitsNegativeLogProbLoss(
      logits, targets=targets, seed=seed
    )


def lc_1_5___register_loss(self, loss, name, default_name):
  """Stores a loss under `name` (a unique default when None).

  Raises:
    NotImplementedError: If `name` is taken (these losses cannot take more
      minibatches).
  """
  if name is None:
    name = self._graph.unique_name(default_name)
  if name in self._loss_dict:
    raise NotImplementedError(
      "Adding logits to an existing LossFunction not yet supported."
    )
  self._loss_dict[name] = loss


# ---------------------------------------------------------------------------
# Release 1.6: update thunks, exported helpers, global colocation switch.


def utils_1_6__on_tpu():
  """Whether a TPU sharding context is active.

  TensorFlow 2 has no `tf.contrib.tpu` sharding context, so this is always
  False here (TPU cross-replica paths are never taken).
  """
  return False


def utils_1_6__cross_replica_mean(tensor, name=None):
  """The mean of `tensor` over TPU replicas.

  Only defined inside a TPU sharding context, which TensorFlow 2 does not
  have; covariance updates call it only when `on_tpu()` is true.

  Args:
    tensor: The Tensor to average.
    name: Optional name scope (default "cross_replica_mean").

  Raises:
    ValueError: Always here: no TPU context is active.
  """
  del tensor, name
  raise ValueError(
    "Not inside a TPU sharding context (cross_replica_mean needs one)."
  )


def factors_1_6__set_global_constants(
  init_covariances_at_zero=None,
  zero_debias=None,
  eigenvalue_decomposition_threshold=None,
  eigenvalue_clipping_threshold=None,
  colocate_cov_ops_with_inputs=None,
):
  """Overwrites the module's global constants (those not None).

  Args:
    init_covariances_at_zero: New `INIT_COVARIANCES_AT_ZERO`.
    zero_debias: New `ZERO_DEBIAS`.
    eigenvalue_decomposition_threshold: New
      `EIGENVALUE_DECOMPOSITION_THRESHOLD`.
    eigenvalue_clipping_threshold: New `EIGENVALUE_CLIPPING_THRESHOLD`.
    colocate_cov_ops_with_inputs: New `COLOCATE_COV_OPS_WITH_INPUTS`
      (covariance statistics computed next to the factors' inputs).
  """
  _set_given_constants(globals(), locals())


def factors_1_6__maybe_colocate_with(op):
  """`colocate_with(op)` when `COLOCATE_COV_OPS_WITH_INPUTS`, else nothing.

  Args:
    op: A Tensor or Operation, or a list/tuple (its first element is used).

  Returns:
    A context manager.
  """
  if not COLOCATE_COV_OPS_WITH_INPUTS:
    return contextlib.nullcontext()
  return _ops.colocate_with(op)


def factors_1_6__compute_cov(tensor, tensor_right=None, normalizer=None):
  """The empirical second moment of the rows of `tensor`.

  Args:
    tensor: A 2-D Tensor `X` `[N, d]`, one sample per row.
    tensor_right: Optional 2-D Tensor `Y` `[N, e]`.
    normalizer: The divisor; defaults to the dynamic row count `N`.

  Returns:
    Without `tensor_right`: `(C + Cᵀ)/2` with `C = XᵀX / normalizer`
    (`[d, d]`); with it: `XᵀY / normalizer` (`[d, e]`, not symmetrised).
  """
  if tensor_right is None:
    return _compute_cov(tensor, normalizer=normalizer)
  if normalizer is None:
    normalizer = tf.shape(tensor)[0]
  return tf.linalg.matmul(tensor, tensor_right, transpose_a=True) / tf.cast(
    normalizer, tensor.dtype
  )


def factors_1_6__append_homog(tensor):
  """Appends a column of ones to a 2-D Tensor (`[N, d]` -> `[N, d+1]`).

  Args:
    tensor: A 2-D Tensor.

  Returns:
    The Tensor with a trailing column of ones.
  """
  return _append_homog(tensor)


def factors_1_6__extract_image_patches(
  image, ksizes, strides, padding, name=None
):
  """`tf.image.extract_patches` with spatial-only sizes and strides.

  Outside a TPU context (always, here) this is the plain patch extraction
  with kernel `[1, *ksizes, 1]`, strides `[1, *strides, 1]` and unit rates.

  Args:
    image: A `[batch, height, width, channels]` Tensor.
    ksizes: The 2 spatial kernel sizes.
    strides: The 2 spatial strides.
    padding: "SAME" or "VALID".
    name: Optional op name.

  Returns:
    The patches, `[batch, out_h, out_w, kh*kw*channels]`.
  """
  return tf.image.extract_patches(
    image,
    sizes=[1] + list(ksizes) + [1],
    strides=[1] + list(strides) + [1],
    rates=[1, 1, 1, 1],
    padding=padding,
    name=name,
  )


def factors_1_6__reset_eigendecomp(self):
  """Forgets the cached eigendecomposition of the covariance.

  The next inverse update builds a new one.
  """
  self._eigendecomp = None


def blocks_1_6__normalize_damping(damping, num_replications):
  """`damping / num_replications ** NORMALIZE_DAMPING_POWER` (unless 0).

  Args:
    damping: The damping, a float or a scalar Tensor.
    num_replications: How often the parameters are replicated (e.g. the
      number of spatial locations of a convolution).

  Returns:
    The normalised damping.
  """
  if NORMALIZE_DAMPING_POWER:
    return damping / (num_replications**NORMALIZE_DAMPING_POWER)
  return damping


def blocks_1_6__compute_pi_tracenorm(left_cov, right_cov):
  """The π of the factored Tikhonov damping (Martens & Grosse, §6.3).

  `π = sqrt((tr(L) · dim(R)) / (tr(R) · dim(L)))`.

  Args:
    left_cov: The left (input) covariance, a square matrix.
    right_cov: The right (output) covariance, a square matrix.

  Returns:
    A scalar Tensor.
  """
  return utils.compute_pi(left_cov, right_cov)


def blocks_1_7__compute_pi_tracenorm(left_cov, right_cov):
  """The π of the factored Tikhonov damping; diagonals accepted (1.7).

  `π = sqrt((tr(L) · dim(R)) / (tr(R) · dim(L)))`, where a rank-1 argument
  stands for the diagonal matrix it holds (trace = sum, dimension =
  length) and a rank-2 one is the matrix itself.

  Args:
    left_cov: The left (input) covariance: a square matrix or a diagonal.
    right_cov: The right (output) covariance: a square matrix or a diagonal.

  Returns:
    A scalar Tensor.

  Raises:
    ValueError: If an argument's static rank is not 1 or 2.
  """
  covs = (left_cov, right_cov)
  ranks = [_checks.static_rank(cov) for cov in covs]
  for arg_name, cov, rank in zip(("left_cov", "right_cov"), covs, ranks):
    if rank not in (1, 2):
      raise ValueError(
        "{} must be a matrix (rank 2) or the diagonal of one (rank 1); "
        "got shape {}.".format(arg_name, _checks.format_shape(cov))
      )
  if ranks == [2, 2]:
    return utils.compute_pi(left_cov, right_cov)
  traces = [
    tf.reduce_sum(cov) if rank == 1 else tf.linalg.trace(cov)
    for cov, rank in zip(covs, ranks)
  ]
  left_norm = traces[0] * _checks.static_dim(right_cov, 0)
  right_norm = traces[1] * _checks.static_dim(left_cov, 0)
  return tf.sqrt(left_norm / right_norm)


def blocks_1_6__compute_pi_adjusted_damping(left_cov, right_cov, damping):
  """Splits a damping between two Kronecker factors according to `PI_TYPE`.

  Args:
    left_cov: The left (input) covariance.
    right_cov: The right (output) covariance.
    damping: The damping to split (Kronecker blocks pass `d ** 0.5`).

  Returns:
    `(damping·π, damping/π)` for "tracenorm", `(damping, damping)` for
    "off", None for any other `PI_TYPE`.
  """
  if PI_TYPE == PI_TRACENORM_NAME:
    pi = compute_pi_tracenorm(left_cov, right_cov)
    return (damping * pi, damping / pi)
  if PI_TYPE == PI_OFF_NAME:
    return (damping, damping)
  return None


def blocks_1_6__num_conv_locations(input_shape, strides):
  """The number of spatial locations of a 2-D convolution's *input*.

  `input_shape[1]·input_shape[2] // (strides[1]·strides[2])` (the input
  size, not the output size, as in the release).

  Args:
    input_shape: The inputs' shape `[batch, height, width, channels]`.
    strides: The 4 strides.

  Returns:
    An int.
  """
  return (
    int(input_shape[1])
    * int(input_shape[2])
    // (int(strides[1]) * int(strides[2]))
  )


def estimator_1_6___setup(self, cov_ema_decay):
  """Instantiates the factors and builds the update thunks and ops.

  Sets `cov_update_thunks` / `inv_update_thunks` (one per factor, in
  `get_factors()` order; each call builds a new op, the inverse ones under
  the next inverse device), `cov_update_ops` / `inv_update_ops` (each thunk
  called once) and the grouped `cov_update_op` / `inv_update_op`.

  Args:
    cov_ema_decay: The decay of the covariance moving averages.
  """
  self._instantiate_factors()
  factors = list(self._layers.get_factors())
  make_cov_update, make_inv_updates = self._update_makers(cov_ema_decay)

  def cov_thunk(factor):
    def thunk():
      with tf.name_scope("create_cov_update_thunk"):
        return make_cov_update(factor)

    return thunk

  def inv_thunk(factor):
    def thunk():
      with self._inv_device_context_generator():
        with tf.name_scope("create_inv_update_thunk"):
          return tf.group(*make_inv_updates(factor))

    return thunk

  self.cov_update_thunks = [cov_thunk(factor) for factor in factors]
  self.cov_update_ops = [thunk() for thunk in self.cov_update_thunks]
  self.cov_update_op = tf.group(*self.cov_update_ops, name="cov_update_op")
  self.inv_update_thunks = [inv_thunk(factor) for factor in factors]
  self.inv_update_ops = [thunk() for thunk in self.inv_update_thunks]
  self.inv_update_op = tf.group(*self.inv_update_ops, name="inv_update_op")


def _estimator_attribute(name, doc):
  def getter(self):
    return getattr(self._fisher_est, name)

  def setter(self, value):
    del value  # The estimator's, read on every access.

  getter.__doc__ = doc
  return property(getter, setter)


optimizer_1_6__cov_update_thunks = _estimator_attribute(
  "cov_update_thunks",
  "One thunk per factor building its covariance "
  "update op (a new op on every call).",
)
optimizer_1_6__cov_update_ops = _estimator_attribute(
  "cov_update_ops", "The covariance update op of every factor."
)
optimizer_1_6__cov_update_op = _estimator_attribute(
  "cov_update_op", "All covariance updates, grouped."
)
optimizer_1_6__inv_update_thunks = _estimator_attribute(
  "inv_update_thunks",
  "One thunk per factor building its inverse update "
  "op (a new op on every call), e.g. for `utils.batch_execute`.",
)
optimizer_1_6__inv_update_ops = _estimator_attribute(
  "inv_update_ops", "The inverse update op of every factor."
)
optimizer_1_6__inv_update_op = _estimator_attribute(
  "inv_update_op", "All inverse updates, grouped."
)


# ---------------------------------------------------------------------------
# Release 1.7: `FisherEstimator(damping_fn, ...)`, embeddings, damping
# adaptation.


def estimator_1_7__init__(
  self,
  damping_fn,
  variables,
  cov_ema_decay,
  layer_collection,
  estimation_mode="gradients",
  colocate_gradients_with_ops=True,
  cov_devices=None,
  inv_devices=None,
  skip_nonfinite_updates=True,
):
  """Checks the registrations and builds the update ops.

  Args:
    damping_fn: A function of no arguments returning the damping (a float or
      a scalar Tensor). The blocks receive the value it returns while the
      estimator is being constructed; `damping` calls it again on every
      access.
    variables: A list of the variables whose Fisher is estimated; each must
      be registered in `layer_collection` as many times as it is used.
    cov_ema_decay: The decay of the covariance moving averages.
    layer_collection: The `LayerCollection` with the registered layers and
      at least one loss.
    estimation_mode: "gradients", "empirical", "curvature_prop" or "exact".
    colocate_gradients_with_ops: Whether gradients are computed next to the
      ops they differentiate.
    cov_devices: Optional devices to place the covariance computations on
      (round-robin over blocks).
    inv_devices: Optional devices for the inverse computations.
    skip_nonfinite_updates: Whether a non-finite statistic or inverse keeps
      the previous value (the engine's guard; not part of the 1.7
      signature, passed by keyword only).

  Raises:
    ValueError: For an unknown mode, no loss, or variables and
      registrations that do not match.
  """
  self._damping_fn = damping_fn
  self._engine___init__(
    variables,
    cov_ema_decay,
    damping_fn(),
    layer_collection,
    estimation_mode=estimation_mode,
    colocate_gradients_with_ops=colocate_gradients_with_ops,
    cov_devices=cov_devices,
    inv_devices=inv_devices,
    skip_nonfinite_updates=skip_nonfinite_updates,
  )


def estimator_1_7__damping(self):
  """The damping: `damping_fn()`, evaluated on every access."""
  return self._damping_fn()


estimator_1_7__damping = property(estimator_1_7__damping)


def optimizer_1_7___make_fisher_estimator(
  self, variables, cov_ema_decay, damping, layer_collection, **kwargs
):
  """Builds the 1.7 estimator, whose damping function reads `self.damping`.

  Args:
    variables: The variables whose Fisher is estimated.
    cov_ema_decay: The decay of the covariance moving averages.
    damping: The constructor's damping (kept as the constant damping).
    layer_collection: The `LayerCollection`.
    **kwargs: The other estimator arguments.

  Returns:
    The `FisherEstimator`.
  """
  self._damping_constant = damping
  return est.FisherEstimator(
    lambda: self.damping, variables, cov_ema_decay, layer_collection, **kwargs
  )


def optimizer_1_7__minimize(self, *args, **kwargs):
  """Adds ops to minimise a loss, adapting the damping when enabled.

  With `set_damping_adaptation_params(is_chief=True, ...)` called, the
  damping is adapted every `damping_adaptation_interval` steps before the
  step, and `global_step` must be given as a keyword.

  Args:
    *args: Positional arguments of `Optimizer.minimize` (`loss`, ...).
    **kwargs: Keyword arguments of `Optimizer.minimize`.

  Returns:
    The training op.

  Raises:
    KeyError: If adapting and no `global_step` keyword is given.
    ValueError: If `var_list` is not the set of Fisher-estimating
      variables.
  """
  return self._minimize_with_damping_adaptation(
    self._engine_minimize, *args, **kwargs
  )


def lc_1_7__register_embedding(
  self, params, inputs, outputs, approx=None, reuse=VARIABLE_SCOPE
):
  """Registers (one minibatch of) an embedding lookup `outputs = params[inputs]`.

  Args:
    params: The embedding matrix `[vocab_size, dim]` (no bias).
    inputs: The integer ids looked up, `[batch]` or `[batch, k]`.
    outputs: The looked-up embeddings.
    approx: "kron" (the only legal value); None uses the linked
      approximation or `default_embedding_approximation`.
    reuse: See `register_block`.

  Raises:
    ValueError: If `approx` is illegal, `params` is a tuple/list, or
      `register_block` refuses the registration.
    KeyError: If reusing a key that is not registered.
  """
  approx = _resolve_approx(self, params, approx, "embedding")
  if isinstance(params, (tuple, list)):
    raise ValueError("Bias not supported.")
  vocab_size = int(params.shape[0])
  block = self.register_block(
    params, fb.EmbeddingKFACFB(self, vocab_size), reuse=reuse
  )
  _add_data(self, params, block, 1, inputs, outputs)
