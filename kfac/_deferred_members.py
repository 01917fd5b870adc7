"""Members of the deferred faces (1.8, 1.9, 1.10): collection and optimizer.

Like `kfac._face_members`, these are re-hosted into the face module they are
declared for (`kfac._releases`: `R1_8`), so global names (`tf`, `fb`, `lf`,
`est`, `KfacOptimizer`, ...) resolve there. `LayerCollection` keeps the 1.5
registration code (reuse, linked parameters, defaults) and gains towers of
losses, use counts accumulated at registration, the new registrations and
the default collection; `KfacOptimizer` records its arguments and builds its
estimator's variables and ops only on request.
"""

# pylint: disable=undefined-variable,protected-access,invalid-name

import collections
import warnings

import tensorflow as tf

from kfac import _face_members

VARIABLE_SCOPE = _face_members.VARIABLE_SCOPE
APPROX_KRONECKER_INDEP_NAME = _face_members.APPROX_KRONECKER_INDEP_NAME

# ---------------------------------------------------------------------------
# layer_collection (1.8)

_default_layer_collection = None


def get_default_layer_collection():
  """Returns the default `LayerCollection`.

  Raises:
    ValueError: If none is set.
  """
  if _default_layer_collection is None:
    raise ValueError(
      "Attempted to retrieve default LayerCollection when none is set. Use "
      "LayerCollection.as_default()."
    )
  return _default_layer_collection


def set_default_layer_collection(layer_collection):
  """Sets (or, with None, clears) the default `LayerCollection`.

  Args:
    layer_collection: A `LayerCollection`, or None.

  Raises:
    ValueError: If a default is set already and `layer_collection` is not
      None.
  """
  global _default_layer_collection
  if _default_layer_collection is not None and layer_collection is not None:
    raise ValueError("Default LayerCollection is already set.")
  _default_layer_collection = layer_collection


class _AsDefault(object):
  """Context manager of `LayerCollection.as_default()`.

  The default is cleared on a normal exit only (1.8's quirk: an exception
  inside the block leaves it set).
  """

  def __init__(self, layer_collection):
    self._layer_collection = layer_collection

  def __enter__(self):
    self._set(self._layer_collection)
    return self._layer_collection

  def __exit__(self, exc_type, exc_value, traceback):
    if exc_type is None:
      self._set(None)
    return False


def lc_1_8__as_default(self):
  """A context manager making this collection the default inside it.

  Returns:
    The context manager.

  Raises:
    ValueError: On entry, if another default is set.
  """
  manager = _AsDefault(self)
  manager._set = set_default_layer_collection
  return manager


def lc_1_8__init__(self, graph=None, name="LayerCollection"):
  """Creates an empty LayerCollection.

  Args:
    graph: The graph the model lives in; defaults to the default graph.
    name: Default name of the collection's variable scope (made unique).
  """
  self._lc_1_5__init(graph=graph, name=name)
  self.loss_colocation_ops = {}
  self._vars_to_uses = collections.defaultdict(int)
  self._default_conv2d_multi_approximation = APPROX_KRONECKER_INDEP_NAME
  self._default_embedding_multi_approximation = APPROX_KRONECKER_INDEP_NAME


def lc_1_8__losses(self):
  """Every registered loss object, towers flattened."""
  return tf.nest.flatten(self.towers_by_loss)


lc_1_8__losses = property(lc_1_8__losses)


def lc_1_8__towers_by_loss(self):
  """A tuple over loss names of tuples over towers."""
  return tuple(tuple(towers) for towers in self._loss_dict.values())


lc_1_8__towers_by_loss = property(lc_1_8__towers_by_loss)


def lc_1_8__default_conv2d_multi_approximation(self):
  """The default multi-use approximation, "kron_indep" (no setter)."""
  return self._default_conv2d_multi_approximation


lc_1_8__default_conv2d_multi_approximation = property(
  lc_1_8__default_conv2d_multi_approximation
)


def lc_1_8__default_embedding_multi_approximation(self):
  """The default multi-use approximation, "kron_indep" (no setter)."""
  return self._default_embedding_multi_approximation


lc_1_8__default_embedding_multi_approximation = property(
  lc_1_8__default_embedding_multi_approximation
)


def lc_1_8___add_uses(self, params, uses):
  """Adds `uses` registered uses to every variable of `params`."""
  for var in ensure_sequence(params):
    self._vars_to_uses[var] += uses


def lc_1_8___get_use_count_map(self):
  """The use counts accumulated at registration."""
  return dict(self._vars_to_uses)


def lc_1_8__register_loss_function(
  self, loss, colocation_op, base_name, name=None, reuse=VARIABLE_SCOPE
):
  """Registers a loss object (a new loss, or a tower of an existing one).

  Args:
    loss: The `LossFunction`.
    colocation_op: The op its evaluation is colocated with.
    base_name: The default name's base (made unique in the graph).
    name: The loss's name; towers of one loss share it.
    reuse: True (any true value, `AUTO_REUSE` included) to append a tower
      to the loss `name`, False for a new loss, `VARIABLE_SCOPE` for the
      current variable scope's `reuse`.

  Raises:
    KeyError: If appending to an unknown name, or creating a known one.
  """
  name = name or self._graph.unique_name(base_name)
  if reuse is VARIABLE_SCOPE or reuse == VARIABLE_SCOPE:
    reuse = tf.compat.v1.get_variable_scope().reuse
  if reuse:
    if name not in self._loss_dict:
      raise KeyError(
        "Unable to find loss function named {}. Register a new loss function "
        "with reuse=False.".format(name)
      )
    self._loss_dict[name].append(loss)
  else:
    if name in self._loss_dict:
      raise KeyError(
        "Loss function named {} already exists. Set reuse=True to append "
        "another tower.".format(name)
      )
    self._loss_dict[name] = [loss]
  self.loss_colocation_ops[loss] = colocation_op


def lc_1_8__register_categorical_predictive_distribution(
  self, logits, seed=None, targets=None, name=None, reuse=VARIABLE_SCOPE
):
  """Registers a categorical predictive distribution (one tower).

  Args:
    logits: The logits `[batch, classes]`.
    seed: Sampling seed.
    targets: Optional integer targets `[batch]`.
    name: The loss's name (towers share it).
    reuse: See `register_loss_function`.
  """
  loss = lf.CategoricalLogitsNegativeLogProbLoss(
    logits, targets=targets, seed=seed
  )
  self.register_loss_function(
    loss,
    logits,
    "categorical_predictive_distribution",
    name=name,
    reuse=reuse,
  )


def lc_1_8__register_normal_predictive_distribution(
  self,
  mean,
  var=0.5,
  seed=None,
  targets=None,
  name=None,
  reuse=VARIABLE_SCOPE,
):
  """Registers a normal predictive distribution (one tower).

  Args:
    mean: The mean.
    var: The (fixed) variance.
    seed: Sampling seed.
    targets: Optional targets.
    name: The loss's name (towers share it).
    reuse: See `register_loss_function`.
  """
  loss = lf.NormalMeanNegativeLogProbLoss(mean, var, targets=targets, seed=seed)
  self.register_loss_function(
    loss, mean, "normal_predictive_distribution", name=name, reuse=reuse
  )


def lc_1_8__register_multi_bernoulli_predictive_distribution(
  self, logits, seed=None, targets=None, name=None, reuse=VARIABLE_SCOPE
):
  """Registers a multi-Bernoulli predictive distribution (one tower).

  Args:
    logits: The logits.
    seed: Sampling seed.
    targets: Optional targets.
    name: The loss's name (towers share it).
    reuse: See `register_loss_function`.
  """
  loss = lf.MultiBernoulliNegativeLogProbLoss(
    logits, targets=targets, seed=seed
  )
  self.register_loss_function(
    loss,
    logits,
    "multi_bernoulli_predictive_distribution",
    name=name,
    reuse=reuse,
  )


def _colocated_evaluations(self, evaluate):
  evaluations = []
  for loss in self.losses:
    # The graph's method: `tf.compat.v1.colocate_with` logs a deprecation.
    graph = tf.compat.v1.get_default_graph()
    with graph.colocate_with(self.loss_colocation_ops[loss]):
      evaluations.append(evaluate(loss))
  return evaluations


def lc_1_8__eval_losses(self):
  """Every tower loss evaluated at its targets (a list)."""
  return _colocated_evaluations(self, lambda loss: loss.evaluate())


def lc_1_8__eval_losses_on_samples(self):
  """Every tower loss evaluated at sampled targets (a list)."""
  return _colocated_evaluations(self, lambda loss: loss.evaluate_on_sample())


def lc_1_8__total_loss(self):
  """`add_n` of `eval_losses()`."""
  return tf.add_n(self.eval_losses())


def lc_1_8__total_sampled_loss(self):
  """`add_n` of `eval_losses_on_samples()`."""
  return tf.add_n(self.eval_losses_on_samples())


def lc_1_8__register_conv2d(
  self,
  params,
  strides,
  padding,
  inputs,
  outputs,
  data_format=None,
  dilations=None,
  approx=None,
  reuse=VARIABLE_SCOPE,
):
  """Registers (one tower of) a 2-D convolution.

  Args:
    params: The filter, or `(filter, bias)`.
    strides: 4 ints.
    padding: "SAME" or "VALID".
    inputs: The layer's inputs `[batch, height, width, in_channels]`.
    outputs: The pre-activation outputs.
    data_format: None or a channel-last format.
    dilations: None or 4 ints.
    approx: "kron" or "diagonal"; None uses the linked or default one.
    reuse: See `register_block`.

  Raises:
    ValueError: For an illegal `approx`.
    AssertionError: For "diagonal" with `strides[0]` or `strides[-1]` not 1.
  """
  approx = _resolve_approx(
    self,
    params,
    approx,
    self.default_conv2d_approximation,
    (APPROX_KRONECKER_NAME, APPROX_DIAGONAL_NAME),
  )
  if approx == APPROX_KRONECKER_NAME:
    block = fb.ConvKFCBasicFB(
      layer_collection=self,
      params=params,
      padding=padding,
      strides=strides,
      data_format=data_format,
      dilation_rate=dilations,
      extract_patches_fn="extract_image_patches",
    )
  else:
    assert strides[0] == strides[-1] == 1
    block = fb.ConvDiagonalFB(
      layer_collection=self,
      params=params,
      strides=strides,
      padding=padding,
      dilations=dilations,
      data_format=data_format,
    )
  block = self.register_block(params, block, reuse=reuse)
  _add_data(self, params, block, 1, inputs, outputs)


def lc_1_8__register_fully_connected_multi(
  self,
  params,
  inputs,
  outputs,
  num_uses=None,
  approx=None,
  reuse=VARIABLE_SCOPE,
):
  """Registers (one tower of) a fully connected layer used several times.

  Args:
    params: The weights, or `(weights, bias)`.
    inputs: A list over uses of inputs, or one tensor with the uses folded
      into the batch (use-major).
    outputs: Likewise for the pre-activation outputs.
    num_uses: The number of uses (required for folded tensors).
    approx: "kron_indep" (or a series approximation); None uses the linked
      or default one.
    reuse: See `register_block`.

  Raises:
    ValueError: For an illegal `approx`.
    AssertionError: For list inputs and outputs of different lengths.
  """
  approx = _resolve_approx(
    self,
    params,
    approx,
    self.default_fully_connected_multi_approximation,
    (APPROX_KRONECKER_INDEP_NAME,) + self._series_approximations(),
  )
  has_bias = isinstance(params, (tuple, list))
  if isinstance(inputs, (tuple, list)):
    assert len(inputs) == len(outputs)
  if approx == APPROX_KRONECKER_INDEP_NAME:
    block = fb.FullyConnectedMultiIndepFB(
      self, has_bias=has_bias, num_uses=num_uses
    )
  else:
    block = self._series_block(approx, has_bias, num_uses)
  block = self.register_block(params, block, reuse=reuse)
  uses = len(inputs) if isinstance(inputs, (tuple, list)) else 1
  _add_data(self, params, block, uses, inputs, outputs)


def lc_1_8___series_approximations(self):
  """The series approximation names a face provides blocks for."""
  if hasattr(fb, "FullyConnectedSeriesFB"):
    return (APPROX_KRONECKER_SERIES_1_NAME, APPROX_KRONECKER_SERIES_2_NAME)
  return ()


def lc_1_8___series_block(self, approx, has_bias, num_uses):
  """A `FullyConnectedSeriesFB` for a series approximation name."""
  option = (
    fb.SeriesFBApproximation.option1
    if approx == APPROX_KRONECKER_SERIES_1_NAME
    else fb.SeriesFBApproximation.option2
  )
  return fb.FullyConnectedSeriesFB(
    self, has_bias=has_bias, num_uses=num_uses, option=option
  )


# ---------------------------------------------------------------------------
# optimizer (1.8)


def optimizer_1_8__init__(
  self,
  learning_rate,
  cov_ema_decay,
  damping,
  layer_collection,
  var_list=None,
  momentum=0.9,
  momentum_type="regular",
  norm_constraint=None,
  name="KFAC",
  estimation_mode="gradients",
  colocate_gradients_with_ops=True,
  batch_size=None,
  placement_strategy=None,
  **kwargs,
):
  """Records the settings and an estimator; builds nothing.

  Args:
    learning_rate: The learning rate.
    cov_ema_decay: The decay of the covariance moving averages.
    damping: The damping.
    layer_collection: The `LayerCollection` (registration may continue
      until the ops are made).
    var_list: Optional variables; default (also for an empty list): the
      trainable variables at each use.
    momentum: The momentum (0 for "qmodel").
    momentum_type: "regular", "adam" or "qmodel".
    norm_constraint: Optional KL-clipping bound ("regular" only).
    name: The optimizer's name (also the variables' scope).
    estimation_mode: The estimator's mode.
    colocate_gradients_with_ops: Passed to the estimator.
    batch_size: The batch size (needed for "qmodel" and damping adaptation).
    placement_strategy: None or "round_robin".
    **kwargs: Further estimator arguments: `cov_devices`, `inv_devices`
      and, from 1.9, `compute_cholesky`, `compute_cholesky_inverse`; and
      kfac's `skip_nonfinite_updates` (default True: a non-finite statistic,
      inverse or step leaves the state unchanged; False: the 2017
      behaviour), which also guards the training step.

  Raises:
    TypeError: For an unknown keyword (from the estimator).
    ValueError: For illegal settings or placement strategy.
  """
  momentum, momentum_type = _check_settings(
    layer_collection,
    learning_rate,
    cov_ema_decay,
    damping,
    momentum,
    momentum_type,
    norm_constraint,
  )
  self._layer_collection = layer_collection
  self._variables = var_list or tf.compat.v1.trainable_variables
  skip_nonfinite_updates = kwargs.pop("skip_nonfinite_updates", True)
  self._set_step_settings(
    momentum, momentum_type, norm_constraint, skip_nonfinite_updates
  )
  self._batch_size = batch_size
  self._setting_checks = []
  self._damping_constant = damping
  with tf.compat.v1.variable_scope(name):
    self._fisher_est = est.make_fisher_estimator(
      placement_strategy=placement_strategy,
      variables=self._variables,
      cov_ema_decay=cov_ema_decay,
      damping=self.damping,
      layer_collection=layer_collection,
      exps=(-1,),
      estimation_mode=estimation_mode,
      colocate_gradients_with_ops=colocate_gradients_with_ops,
      skip_nonfinite_updates=skip_nonfinite_updates,
      **kwargs,
    )
  super(KfacOptimizer, self).__init__(learning_rate, name=name)


def optimizer_1_8___losses(self):
  """The collection's losses, read when the quadratic model is built."""
  return self._layer_collection.losses


optimizer_1_8___losses = property(optimizer_1_8___losses)


def optimizer_1_8__make_vars_and_create_op_thunks(self):
  """Creates every variable; returns `(cov_update_thunks, inv_update_thunks)`.

  The variables live in `<name>/<estimator name>` (`KFAC/FisherEstimator`).

  Returns:
    The two thunk lists.
  """
  scope = self.get_name() + "/" + self._fisher_est.name
  return self._fisher_est.make_vars_and_create_op_thunks(scope=scope)


def optimizer_1_8__create_ops_and_vars_thunks(self):
  """Returns the four thunk lists; creates nothing.

  Returns:
    `(cov_variable_thunks, cov_update_thunks, inv_variable_thunks,
    inv_update_thunks)`.
  """
  scope = self.get_name() + "/" + self._fisher_est.name
  return self._fisher_est.create_ops_and_vars_thunks(scope=scope)


def optimizer_1_8__make_ops_and_vars(self):
  """Creates every variable and update op (1.8 only; scope `<name>`).

  Returns:
    `(cov_update_ops, cov_update_op, inv_update_ops, inv_update_op,
    cov_update_thunks, inv_update_thunks)`.
  """
  return self._fisher_est.make_ops_and_vars(scope=self.get_name())


def _maybe_make_and_save_everything(self):
  """1.8's lazy creation behind the convenience properties."""
  if not self._fisher_est.made_vars():
    warnings.warn(
      "These convenience properties will be depcrecated soon. Please use "
      "explicit op/thunk creation methods instead (e.g. make_ops_and_vars, "
      "etc).",
      DeprecationWarning,
      stacklevel=3,
    )
    (
      self._cov_update_ops,
      self._cov_update_op,
      self._inv_update_ops,
      self._inv_update_op,
      self._cov_update_thunks,
      self._inv_update_thunks,
    ) = self.make_ops_and_vars()


def _lazy_property(attribute, doc):
  def getter(self):
    _maybe_make_and_save_everything(self)
    return getattr(self, attribute)

  getter.__doc__ = doc
  return property(getter)


optimizer_1_8__cov_update_thunks = _lazy_property(
  "_cov_update_thunks", "Covariance update thunks (deprecated, lazy)."
)
optimizer_1_8__cov_update_ops = _lazy_property(
  "_cov_update_ops", "Covariance update ops (deprecated, lazy)."
)
optimizer_1_8__cov_update_op = _lazy_property(
  "_cov_update_op", "Grouped covariance update op (deprecated, lazy)."
)
optimizer_1_8__inv_update_thunks = _lazy_property(
  "_inv_update_thunks", "Inverse update thunks (deprecated, lazy)."
)
optimizer_1_8__inv_update_ops = _lazy_property(
  "_inv_update_ops", "Inverse update ops (deprecated, lazy)."
)
optimizer_1_8__inv_update_op = _lazy_property(
  "_inv_update_op", "Grouped inverse update op (deprecated, lazy)."
)


def optimizer_1_8__apply_gradients(self, grads_and_vars, *args, **kwargs):
  """Applies K-FAC steps (1.8: creates the ops first if nothing was made).

  Args:
    grads_and_vars: List of (gradient, variable) pairs.
    *args: Further arguments of `Optimizer.apply_gradients`.
    **kwargs: Further keyword arguments of `Optimizer.apply_gradients`.

  Returns:
    The op applying the steps.
  """
  if self._release.lazy_optimizer_ops:
    _maybe_make_and_save_everything(self)
  return self._engine_apply_gradients(grads_and_vars, *args, **kwargs)


def optimizer_1_8__minimize(self, *args, **kwargs):
  """Adds ops to minimise a loss, inside `variable_scope(<name>)`.

  Args:
    *args: Positional arguments of `Optimizer.minimize` (`loss`, ...).
    **kwargs: Keyword arguments of `Optimizer.minimize`.

  Returns:
    The training op.
  """
  with tf.compat.v1.variable_scope(self.get_name()):
    return self._minimize_with_damping_adaptation(
      self._engine_minimize, *args, **kwargs
    )


# ---------------------------------------------------------------------------
# loss_functions (1.8): every access of `dist` builds a new distribution.


def _loss_1_8__get_dist(self):
  return self._new_dist()


def _loss_1_8__set_dist(self, value):
  del value  # Rebuilt from the parameters on every access.


loss_1_8___dist = property(_loss_1_8__get_dist, _loss_1_8__set_dist)


def normal_1_8___new_dist(self):
  """A new `Normal(mean, sqrt(var))`."""
  return _Normal(loc=self._mean, scale=self._var**0.5)


def normal_variance_1_8___new_dist(self):
  """A new `Normal(mean, sqrt(variance))` (the square root recomputed)."""
  return _Normal(loc=self._mean, scale=tf.sqrt(self._variance))


def categorical_1_8___new_dist(self):
  """A new categorical distribution over the logits."""
  return _Categorical(self._logits)


def bernoulli_1_8___new_dist(self):
  """A new multi-Bernoulli distribution over the logits."""
  return _Bernoulli(self._logits)


# ---------------------------------------------------------------------------
# layer_collection (1.8): the new layer types (helper layers18).


def lc_1_8__register_convolution(
  self,
  params,
  inputs,
  outputs,
  padding,
  strides=None,
  dilation_rate=None,
  data_format=None,
  approx=None,
  reuse=VARIABLE_SCOPE,
):
  """Registers (one tower of) a `tf.nn.convolution` layer (1, 2 or 3-D).

  The block is a `ConvKFCBasicFB` with convolution patches
  (`utils.extract_convolution_patches`), so strides and rates are
  spatial-only. Linked parameters are not consulted.

  Args:
    params: The filter `[*spatial, in_channels, out_channels]`, or
      `(filter, bias)`.
    inputs: The layer's inputs `[batch, *spatial, in_channels]`.
    outputs: The pre-activation outputs `[batch, *out_spatial,
      out_channels]`.
    padding: "SAME" or "VALID".
    strides: None or the spatial strides.
    dilation_rate: None or the spatial dilation rates.
    data_format: None or a channel-last format ("NWC", "NHWC", "NDHWC").
    approx: None or "kron".
    reuse: See `register_block`.

  Raises:
    AssertionError: For another `approx`.
    ValueError: For a channel-first `data_format`.
  """
  assert approx is None or approx == APPROX_KRONECKER_NAME
  block = fb.ConvKFCBasicFB(
    layer_collection=self,
    params=params,
    padding=padding,
    strides=strides,
    dilation_rate=dilation_rate,
    data_format=data_format,
  )
  block = self.register_block(params, block, reuse=reuse)
  _add_data(self, params, block, 1, inputs, outputs)


def lc_1_8__register_depthwise_conv2d(
  self,
  params,
  inputs,
  outputs,
  strides,
  padding,
  rate=None,
  data_format=None,
  approx=None,
  reuse=VARIABLE_SCOPE,
):
  """Registers (one tower of) a `tf.nn.depthwise_conv2d` layer.

  The block is a `DepthwiseConvDiagonalFB`: the diagonal Fisher of the
  equivalent dense filter, restricted to the depthwise entries. Linked
  parameters are not consulted.

  Args:
    params: The depthwise filter `[kh, kw, in_channels, multiplier]` (no
      bias).
    inputs: The layer's inputs `[batch, height, width, in_channels]`.
    outputs: The outputs `[batch, out_h, out_w, in_channels·multiplier]`.
    strides: 4 ints.
    padding: "SAME" or "VALID".
    rate: None or 2 ints, the spatial dilation rates.
    data_format: None or "NHWC".
    approx: None or "diagonal".
    reuse: See `register_block`.

  Raises:
    AssertionError: For another `approx` or `data_format`.
    NotImplementedError: For `(filter, bias)` parameters.
    ValueError: For a filter that is not 4-D, strides not of length 4 or a
      rate not of length 2.
  """
  assert approx is None or approx == APPROX_DIAGONAL_NAME
  assert data_format in [None, "NHWC"]
  block = fb.DepthwiseConvDiagonalFB(
    layer_collection=self,
    params=params,
    strides=strides,
    padding=padding,
    rate=rate,
    data_format=data_format,
  )
  block = self.register_block(params, block, reuse=reuse)
  _add_data(self, params, block, 1, inputs, outputs)


def lc_1_8__register_separable_conv2d(
  self,
  depthwise_params,
  pointwise_params,
  inputs,
  depthwise_outputs,
  pointwise_outputs,
  strides,
  padding,
  rate=None,
  data_format=None,
  approx=None,
  reuse=VARIABLE_SCOPE,
):
  """Registers (one tower of) a `tf.nn.separable_conv2d` layer.

  Exactly `register_depthwise_conv2d` for the depthwise part (diagonal)
  followed by `register_conv2d` for the 1×1 pointwise part (strides 1,
  "VALID"), whose inputs are the depthwise outputs: the program must expose
  that intermediate tensor.

  Args:
    depthwise_params: The depthwise filter `[kh, kw, in_channels,
      multiplier]`.
    pointwise_params: The pointwise filter `[1, 1, in_channels·multiplier,
      out_channels]`, or `(filter, bias)`.
    inputs: The layer's inputs.
    depthwise_outputs: The depthwise convolution's outputs.
    pointwise_outputs: The pointwise (pre-activation) outputs.
    strides: 4 ints (of the depthwise part).
    padding: "SAME" or "VALID" (of the depthwise part).
    rate: None or 2 ints, the depthwise dilation rates.
    data_format: None or "NHWC".
    approx: The pointwise approximation ("kron" or "diagonal"); None uses
      the linked or default conv2d approximation.
    reuse: See `register_block`.

  Raises:
    AssertionError: For a `data_format` other than None/"NHWC".
    ValueError: For an illegal `approx`, or as the two registrations.
    NotImplementedError: For a depthwise bias.
  """
  self.register_depthwise_conv2d(
    params=depthwise_params,
    inputs=inputs,
    outputs=depthwise_outputs,
    strides=strides,
    padding=padding,
    rate=rate,
    data_format=data_format,
    approx=APPROX_DIAGONAL_NAME,
    reuse=reuse,
  )
  self.register_conv2d(
    params=pointwise_params,
    inputs=depthwise_outputs,
    outputs=pointwise_outputs,
    strides=[1, 1, 1, 1],
    padding="VALID",
    data_format=data_format,
    approx=approx,
    reuse=reuse,
  )


def lc_1_8__register_conv2d_multi(
  self,
  params,
  strides,
  padding,
  inputs,
  outputs,
  num_uses=None,
  data_format=None,
  dilations=None,
  approx=None,
  reuse=VARIABLE_SCOPE,
):
  """Registers (one tower of) a 2-D convolution used several times.

  Args:
    params: The filter, or `(filter, bias)`.
    strides: 4 ints.
    padding: "SAME" or "VALID".
    inputs: A list over uses of inputs, or one tensor with the uses folded
      into the batch (use-major).
    outputs: Likewise for the pre-activation outputs.
    num_uses: The number of uses (required for folded tensors).
    data_format: None or a channel-last format.
    dilations: None or 4 ints.
    approx: "kron_indep"; None uses the linked or default one.
    reuse: See `register_block`.

  Raises:
    ValueError: For an illegal `approx` or a channel-first `data_format`.
    AssertionError: For list inputs and outputs of different lengths.
  """
  approx = _resolve_approx(
    self,
    params,
    approx,
    self.default_conv2d_multi_approximation,
    (APPROX_KRONECKER_INDEP_NAME,),
  )
  if isinstance(inputs, (tuple, list)):
    assert len(inputs) == len(outputs)
  block = fb.ConvKFCBasicMultiIndepFB(
    layer_collection=self,
    params=params,
    padding=padding,
    strides=strides,
    data_format=data_format,
    dilation_rate=dilations,
    extract_patches_fn="extract_image_patches",
    num_uses=num_uses,
  )
  block = self.register_block(params, block, reuse=reuse)
  _add_data(self, params, block, _num_uses_given(inputs), inputs, outputs)


def lc_1_8__register_embedding_multi(
  self,
  params,
  inputs,
  outputs,
  num_uses=None,
  approx=None,
  reuse=VARIABLE_SCOPE,
):
  """Registers (one tower of) an embedding layer used several times.

  Args:
    params: The embedding matrix `[vocab_size, dim]` (no bias).
    inputs: A list over uses of integer id Tensors, or one tensor with the
      uses folded into the batch (use-major).
    outputs: Likewise for the lookup outputs.
    num_uses: The number of uses (required for folded tensors).
    approx: "kron_indep"; None uses the linked or default one.
    reuse: See `register_block`.

  Raises:
    ValueError: For an illegal `approx`, or tuple/list `params` (bias).
  """
  approx = _resolve_approx(
    self,
    params,
    approx,
    self.default_embedding_multi_approximation,
    (APPROX_KRONECKER_INDEP_NAME,),
  )
  if isinstance(params, (tuple, list)):
    raise ValueError("Bias not supported.")
  vocab_size = _checks.static_dim(params, 0)
  block = fb.EmbeddingKFACMultiIndepFB(
    self, vocab_size=vocab_size, num_uses=num_uses
  )
  block = self.register_block(params, block, reuse=reuse)
  _add_data(self, params, block, _num_uses_given(inputs), inputs, outputs)


def _num_uses_given(inputs):
  """The uses a multi-use registration adds: `len(inputs)` for a list."""
  return len(inputs) if isinstance(inputs, (tuple, list)) else 1
