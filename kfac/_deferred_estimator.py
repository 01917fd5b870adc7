"""`estimator` of the deferred releases (1.8, 1.9, 1.10).

`FisherEstimator` is abstract: its constructor records the arguments and
builds nothing; `create_ops_and_vars_thunks` finalises the collection
(subgraph, registration check, gradients of the estimation mode, factors,
power registrations) and returns one thunk per factor for its covariance
variable, covariance update, inverse variables and inverse update.
`FisherEstimatorRoundRobin` adds device placement (`kfac._placement`).
The gradient computations are the engine estimator's (`kfac.estimator`),
with the losses evaluated tower by tower next to their colocation ops.
"""

import abc
import functools
import inspect

import numpy as np
import tensorflow as tf

from kfac import _ops
from kfac import _placement
from kfac import _releases
from kfac import estimator as _engine
from kfac import utils

# The engine module's globals, for the engine methods borrowed below: put
# into a face, they resolve their global names here (definitions below
# take precedence).
globals().update(
  {k: v for k, v in vars(_engine).items() if not k.startswith("__")}
)

_ESTIMATION_MODES = ("gradients", "empirical", "curvature_prop", "exact")


def make_fisher_estimator(placement_strategy=None, **kwargs):
  """Builds a deferred Fisher estimator with the given placement strategy.

  Args:
    placement_strategy: None or "round_robin".
    **kwargs: The `FisherEstimatorRoundRobin` arguments.

  Returns:
    A `FisherEstimatorRoundRobin`.

  Raises:
    ValueError: For another placement strategy.
  """
  if placement_strategy in [None, "round_robin"]:
    return FisherEstimatorRoundRobin(**kwargs)
  raise ValueError(
    "Unimplemented vars and ops placement strategy : {}".format(
      placement_strategy
    )
  )


def make_fisher_estimator_1_8(placement_strategy=None, **kwargs):
  """`make_fisher_estimator` as in 1.8 (the error message is a tuple).

  Args:
    placement_strategy: None or "round_robin".
    **kwargs: The `FisherEstimatorRoundRobin` arguments.

  Returns:
    A `FisherEstimatorRoundRobin`.

  Raises:
    ValueError: For another placement strategy (message built from a format
      string and a separate argument, as 1.8 did).
  """
  if placement_strategy in [None, "round_robin"]:
    return FisherEstimatorRoundRobin(**kwargs)
  raise ValueError(
    "Unimplemented vars and ops placement strategy : %s", placement_strategy
  )


def fisher_estimator_1_8__init__(
  self,
  variables,
  cov_ema_decay,
  damping,
  layer_collection,
  exps=(-1,),
  estimation_mode="gradients",
  colocate_gradients_with_ops=True,
  name="FisherEstimator",
  *,
  skip_nonfinite_updates=True,
):
  """Records the arguments; builds nothing (1.8: no Cholesky keywords).

  kfac also takes the keyword-only `skip_nonfinite_updates` (outside the
  release signature; default True): a non-finite statistic or inverse
  keeps the previous value and the skip is counted; False gives the 2017
  behaviour.

  Args:
    variables: The variables (a list, or a callable returning one).
    cov_ema_decay: The decay of the covariance moving averages.
    damping: The damping (float or scalar Tensor).
    layer_collection: The `LayerCollection`.
    exps: The matrix powers to register on every block.
    estimation_mode: "gradients", "empirical", "curvature_prop" or "exact".
    colocate_gradients_with_ops: Passed to the gradient computations.
    name: The estimator's name (default variable scope).
  """
  self._engine___init__(
    variables,
    cov_ema_decay,
    damping,
    layer_collection,
    exps=exps,
    estimation_mode=estimation_mode,
    colocate_gradients_with_ops=colocate_gradients_with_ops,
    name=name,
    skip_nonfinite_updates=skip_nonfinite_updates,
  )


class FisherEstimator(object, metaclass=abc.ABCMeta):
  """Fisher estimator with deferred construction (abstract, 1.8+)."""

  def __init__(
    self,
    variables,
    cov_ema_decay,
    damping,
    layer_collection,
    exps=(-1,),
    estimation_mode="gradients",
    colocate_gradients_with_ops=True,
    name="FisherEstimator",
    compute_cholesky=False,
    compute_cholesky_inverse=False,
    *,
    skip_nonfinite_updates=True,
  ):
    """Records the arguments; builds nothing.

    kfac adds the keyword-only `skip_nonfinite_updates` (outside the release
    signature, which `inspect.signature` shows). If True (the default), a
    covariance update whose new statistic is not finite keeps the
    covariance (and its zero-debiasing state), and an inverse, matrix power
    or Cholesky update whose result is not finite (e.g. a failed Cholesky
    factorisation) keeps the previous value; the skips are counted in the
    local variables `cov_skip_counter.variable` and
    `inv_skip_counter.variable` (created with the update thunks, not saved
    by a default `Saver`) and logged. With finite data every value is
    bit-identical to False, which gives the 2017 behaviour (no guard ops,
    no counters).

    Args:
      variables: The variables (a list, or a callable returning one, called
        on every access of `variables`).
      cov_ema_decay: The decay of the covariance moving averages.
      damping: The damping (float or scalar Tensor).
      layer_collection: The `LayerCollection`.
      exps: The matrix powers to register on every block.
      estimation_mode: "gradients", "empirical", "curvature_prop" or
        "exact".
      colocate_gradients_with_ops: Passed to the gradient computations.
      name: The estimator's name (default variable scope).
      compute_cholesky: Whether to register Cholesky factors (1.9).
      compute_cholesky_inverse: Whether to register inverse Cholesky
        factors (1.9).
    """
    self._variables = variables
    self._cov_ema_decay = cov_ema_decay
    self._damping = damping
    self._estimation_mode = estimation_mode
    self._layers = layer_collection
    self._gradient_fns = {
      "gradients": self._get_grads_lists_gradients,
      "empirical": self._get_grads_lists_empirical,
      "curvature_prop": self._get_grads_lists_curvature_prop,
      "exact": self._get_grads_lists_exact,
    }
    self._colocate_gradients_with_ops = colocate_gradients_with_ops
    self._made_vars = False
    self._exps = exps
    self._compute_cholesky = compute_cholesky
    self._compute_cholesky_inverse = compute_cholesky_inverse
    self._name = name
    self._skip_nonfinite_updates = bool(skip_nonfinite_updates)
    # The skip counters (`_nonfinite.SkipCounter`), made with the update
    # thunks; the optimizer's `nonfinite_skip_counters` reads them.
    self.cov_skip_counter = None
    self.inv_skip_counter = None

  @property
  def variables(self):
    """The variables (a callable given to the constructor is called now)."""
    if callable(self._variables):
      return self._variables()
    return self._variables

  @property
  def damping(self):
    """The damping given to the constructor."""
    return self._damping

  @property
  def blocks(self):
    """The collection's blocks."""
    return self._layers.get_blocks()

  @property
  def factors(self):
    """The collection's factors."""
    return self._layers.get_factors()

  @property
  def name(self):
    """The estimator's name."""
    return self._name

  @abc.abstractmethod
  def make_ops_and_vars(self, scope=None):
    """Creates variables and update ops (1.8 only; see the mix-in).

    Args:
      scope: Variable scope (default: the estimator's name).
    """
    pass

  @abc.abstractmethod
  def make_vars_and_create_op_thunks(self, scope=None):
    """Creates variables; returns the update thunks (see the mix-in).

    Args:
      scope: Variable scope (default: the estimator's name).
    """
    pass

  def _apply_transformation(self, vecs_and_vars, transform):
    """Applies `transform(block, vector)` block-wise (the engine's mapping)."""
    vecs = utils.SequenceDict((var, vec) for vec, var in vecs_and_vars)
    trans_vecs = utils.SequenceDict()
    for params, fb in self._layers.fisher_blocks.items():
      trans_vecs[params] = transform(fb, vecs[params])
    return [(trans_vecs[var], var) for _, var in vecs_and_vars]

  def multiply_inverse(self, vecs_and_vars):
    """`multiply_matpower(-1, vecs_and_vars)`.

    Args:
      vecs_and_vars: List of (vector, variable) pairs.

    Returns:
      List of (product, variable) pairs.
    """
    return self.multiply_matpower(-1, vecs_and_vars)

  def multiply(self, vecs_and_vars):
    """`multiply_matpower(1, vecs_and_vars)`.

    Args:
      vecs_and_vars: List of (vector, variable) pairs.

    Returns:
      List of (product, variable) pairs.
    """
    return self.multiply_matpower(1, vecs_and_vars)

  def multiply_matpower(self, exp, vecs_and_vars):
    """Multiplies by the damped block-diagonal Fisher raised to `exp`.

    Args:
      exp: The exponent (1.9: must be one of `exps`).
      vecs_and_vars: List of (vector, variable) pairs.

    Returns:
      List of (product, variable) pairs.
    """
    if _releases.of(self).linear_operator_factors:
      assert exp in self._exps
    return self._apply_transformation(
      vecs_and_vars, lambda fb, vec: fb.multiply_matpower(vec, exp)
    )

  def multiply_cholesky(self, vecs_and_vars, transpose=False):
    """Block-wise products with the Cholesky factor `L` (`Lᵀ`) (1.9).

    Args:
      vecs_and_vars: List of (vector, variable) pairs.
      transpose: Whether to use `Lᵀ`.

    Returns:
      List of (product, variable) pairs.
    """
    assert self._compute_cholesky
    return self._apply_transformation(
      vecs_and_vars, lambda fb, vec: fb.multiply_cholesky(vec, transpose)
    )

  def multiply_cholesky_inverse(self, vecs_and_vars, transpose=False):
    """Block-wise products with `L⁻¹` (`L⁻ᵀ`) (1.9).

    Args:
      vecs_and_vars: List of (vector, variable) pairs.
      transpose: Whether to use `L⁻ᵀ`.

    Returns:
      List of (product, variable) pairs.
    """
    assert self._compute_cholesky_inverse
    return self._apply_transformation(
      vecs_and_vars,
      lambda fb, vec: fb.multiply_cholesky_inverse(vec, transpose),
    )

  def made_vars(self):
    """Whether the variables have been made."""
    return self._made_vars

  def _register_matrix_functions(self):
    for block in self.blocks:
      for exp in self._exps:
        block.register_matpower(exp)
      if self._compute_cholesky:
        block.register_cholesky()
      if self._compute_cholesky_inverse:
        block.register_cholesky_inverse()

  def _finalize_layer_collection(self):
    self._layers.create_subgraph()
    self._layers.check_registration(self.variables)
    self._instantiate_factors()
    self._register_matrix_functions()

  def create_ops_and_vars_thunks(self, scope=None):
    """Finalises the collection; returns the four thunk lists.

    No global variable is created before the variable thunks run; with
    `skip_nonfinite_updates` the two local skip counters are created here
    (in the current name scope, under `kfac_nonfinite_guard`), and the
    update thunks build guarded updates.

    Args:
      scope: Variable scope of the variables (default: the estimator's
        name).

    Returns:
      `(cov_variable_thunks, cov_update_thunks, inv_variable_thunks,
      inv_update_thunks)`, one thunk per factor each.

    Raises:
      Exception: On a second call.
      ValueError: For registration problems or an unknown estimation mode.
    """
    self._check_vars_unmade_and_set_made_flag()
    self._finalize_layer_collection()
    scope = self.name if scope is None else scope
    # The engine's choice of the (guarded) update builders; it creates the
    # skip counters.
    make_cov_update, make_inv_updates = self._update_makers(self._cov_ema_decay)
    cov_variable_thunks = [
      self._create_thunk(scope, factor.instantiate_cov_variables)
      for factor in self.factors
    ]
    cov_update_thunks = [
      self._create_thunk(scope, functools.partial(make_cov_update, factor))
      for factor in self.factors
    ]
    inv_variable_thunks = [
      self._create_thunk(scope, factor.instantiate_inv_variables)
      for factor in self.factors
    ]
    inv_update_thunks = [
      self._create_thunk(
        scope, lambda factor=factor: tf.group(make_inv_updates(factor))
      )
      for factor in self.factors
    ]
    return (
      cov_variable_thunks,
      cov_update_thunks,
      inv_variable_thunks,
      inv_update_thunks,
    )

  def _check_vars_unmade_and_set_made_flag(self):
    if self._made_vars:
      raise Exception("Already made variables.")  # pylint: disable=broad-exception-raised
    self._made_vars = True

  def _create_thunk(self, scope, build):
    """A thunk calling `build()` inside `variable_scope(scope)`."""

    def thunk():
      with tf.compat.v1.variable_scope(scope):
        return build()

    return thunk

  # The engine's update builders: guarded (counters made on first use) or
  # plain, after `skip_nonfinite_updates`.
  _update_makers = _engine.FisherEstimator._update_makers

  def _instantiate_factors(self):
    fisher_blocks_list = list(self._layers.get_blocks())
    tensors_to_compute_grads = [
      fb.tensors_to_compute_grads() for fb in fisher_blocks_list
    ]
    try:
      grads_lists = self._gradient_fns[self._estimation_mode](
        tensors_to_compute_grads
      )
    except KeyError:
      raise ValueError(
        "Unrecognized value {} for estimation_mode.".format(
          self._estimation_mode
        )
      ) from None
    for grads_list, fb in zip(grads_lists, fisher_blocks_list):
      fb.instantiate_factors(grads_list, self.damping)

  # The engine's gradient helpers (re-hosted: they read `self._layers` and
  # `self._colocate_gradients_with_ops`).
  _gradients = _engine.FisherEstimator._gradients
  _one_source_grads_lists = _engine.FisherEstimator._one_source_grads_lists

  def _get_grads_lists_gradients(self, tensors):
    return self._one_source_grads_lists(
      self._layers.eval_losses_on_samples(), tensors
    )

  def _get_grads_lists_empirical(self, tensors):
    return self._one_source_grads_lists(self._layers.eval_losses(), tensors)

  def _get_transformed_random_signs(self):
    transformed = []
    for loss in self._layers.losses:
      with _ops.colocate_with(self._layers.loss_colocation_ops[loss]):
        transformed.append(
          loss.multiply_fisher_factor(
            utils.generate_random_signs(loss.fisher_factor_inner_shape)
          )
        )
    return transformed

  def _get_grads_lists_curvature_prop(self, tensors):
    loss_inputs = [loss.inputs for loss in self._layers.losses]
    return self._one_source_grads_lists(
      tf.nest.flatten(loss_inputs),
      tensors,
      grad_ys=tf.nest.flatten(self._get_transformed_random_signs()),
    )

  def _get_grads_lists_exact(self, tensors):
    grads_all = []
    for loss in self._layers.losses:
      inner_shape = tf.TensorShape(loss.fisher_factor_inner_static_shape)[1:]
      with _ops.colocate_with(self._layers.loss_colocation_ops[loss]):
        for index in np.ndindex(*inner_shape.as_list()):
          transformed_one_hot = loss.multiply_fisher_factor_replicated_one_hot(
            index
          )
          grads_flat = self._gradients(
            tf.nest.flatten(loss.inputs),
            tf.nest.flatten(tensors),
            grad_ys=tf.nest.flatten(transformed_one_hot),
          )
          grads_all.append(tf.nest.pack_sequence_as(tensors, grads_flat))
    return tuple(zip(*grads_all))


class FisherEstimatorRoundRobin(
  _placement.RoundRobinPlacementMixin, FisherEstimator
):
  """The deferred estimator with round-robin device placement."""


class FisherEstimatorRoundRobin18(
  _placement.RoundRobinPlacementMixin18, FisherEstimator
):
  """1.8's round-robin estimator (positional device lists, quirk 13)."""


def _show_release_signature(func):
  """Shows `func` with its release parameters only (`inspect.signature`).

  kfac's keyword-only extras (`skip_nonfinite_updates`) stay accepted; the
  release faces must show the release's signature, as the engine faces do
  through their signature wrappers.

  Args:
    func: A function whose keyword-only parameters are kfac's.
  """
  signature = inspect.signature(func)
  func.__signature__ = signature.replace(
    parameters=[
      p for p in signature.parameters.values() if p.kind is not p.KEYWORD_ONLY
    ]
  )


_show_release_signature(fisher_estimator_1_8__init__)
_show_release_signature(FisherEstimator.__init__)
