"""Estimates the Fisher information matrix block by block.

`FisherEstimator` connects a `LayerCollection` (the registered layers and
losses) to the factor statistics: it computes, for every registered Fisher
block, the gradients ("sources") from which the block's factors accumulate
their covariances, builds the covariance-update and inverse-update ops, and
multiplies vectors by the (damped) block-diagonal Fisher approximation or its
inverse.
"""

import contextlib
import itertools

import numpy as np
import tensorflow as tf

from kfac import _nonfinite
from kfac import _ops
from kfac import _releases
from kfac import _settings
from kfac import _surface
from kfac import layer_collection as lc_lib
from kfac import utils

# The 1.4 public names, from the one surface table.
__all__ = list(sorted(_surface.public_names("1.4", "estimator")))

# Estimation modes accepted by FisherEstimator (the legacy string keys).
_ESTIMATION_MODES = ("gradients", "empirical", "curvature_prop", "exact")


class _DeviceContextGenerator(object):
  """Hands out `tf.device` contexts cycling through a list of devices.

  With no devices, every context is a no-op, so ops are placed as they
  would be without this helper.
  """

  def __init__(self, devices):
    """Stores the device cycle.

    Args:
      devices: None, or a list/tuple of device strings (e.g. "/cpu:0").
    """
    self._cycle = None if not devices else itertools.cycle(list(devices))

  def __call__(self):
    """Returns the context for the next op group: `tf.device(next device)`."""
    if self._cycle is None:
      return contextlib.nullcontext()
    return tf.device(next(self._cycle))


class FisherEstimator(object):
  """Fisher estimator built from the blocks of a LayerCollection.

  The Fisher matrix is approximated as block-diagonal, one block per
  registration in `layer_collection`; each block keeps its own factor
  statistics (exponential moving averages of covariances) and damped
  inverses. Everything is built by the constructor:

  * `cov_update_op` updates every factor's covariance EMA,
    `cov ← cov_ema_decay·cov + (1 − cov_ema_decay)·new_cov`, where `new_cov`
    is computed from fresh gradients (see `estimation_mode`);
  * `inv_update_op` recomputes every damped inverse / matrix power from the
    current covariances;
  * `inv_updates_dict` maps the name of every individual inverse update to
    it (for running them one at a time, e.g. through an `OpQueue`). Each
    update is a Tensor, as in TensorFlow 1.4: running it assigns the new
    inverse (or matrix power) and yields its value; it has the variable's
    `dtype` and static shape.

  Attributes:
    cov_update_op: `tf.Operation` grouping all covariance updates.
    inv_update_op: `tf.Operation` grouping all inverse updates.
    inv_updates_dict: dict `{tensor.name: tensor}` of the individual inverse
      updates (`tf.Tensor`s; with reference variables the `assign` results
      themselves, with resource variables the value read after the
      assignment).
  """

  def __init__(
    self,
    variables,
    cov_ema_decay,
    damping,
    layer_collection,
    estimation_mode="gradients",
    *,
    colocate_gradients_with_ops=False,
    cov_devices=None,
    inv_devices=None,
    skip_nonfinite_updates=True,
  ):
    """Checks the registrations and builds the update ops.

    Args:
      variables: A list of the variables whose Fisher is estimated. Every one
        must be registered in `layer_collection` (as many times as it is used
        in the graph feeding the losses), and every registered variable must
        be in the list.
      cov_ema_decay: The decay of the covariance moving averages (float in
        [0, 1], or a scalar Tensor).
      damping: The damping `λ` added to the blocks: a float or a scalar
        Tensor. Used as a dict key by the factors, so equal floats share
        inverses.
      layer_collection: The `layer_collection.LayerCollection` with the
        registered blocks and at least one loss.
      estimation_mode: How the gradients feeding the factors are computed:
        * "gradients" (default): gradients of the loss evaluated at targets
          sampled from the model's predictive distribution (one source; an
          unbiased Monte-Carlo estimate of the true Fisher);
        * "empirical": gradients of the loss at the data targets (one
          source; the empirical Fisher; the losses need targets);
        * "curvature_prop": the losses' Fisher factors applied to random ±1
          vectors, back-propagated to the blocks (one source; unbiased);
        * "exact": every column of every loss's Fisher factor, each
          back-propagated (one source per column; exact per-block
          statistics, up to the block's own approximation).
      colocate_gradients_with_ops: Keyword-only. Passed to
        `tf.compat.v1.gradients` for the gradients that feed the factors (an
        r1.5 keyword).
      cov_devices: Keyword-only. Optional list of device strings; the
        covariance-update ops of the factors are placed on them in turn (an
        r1.5 keyword).
      inv_devices: Keyword-only. Optional list of device strings; the
        inverse-update ops of the factors are placed on them in turn (an r1.5
        keyword).
      skip_nonfinite_updates: Keyword-only. If True (the default), a
        covariance update whose new statistic is not finite keeps the
        covariance, and an inverse update whose result is not finite (e.g. a
        failed Cholesky factorisation) keeps the previous inverse; the skips
        are counted in the local variables `cov_skip_counter.variable` and
        `inv_skip_counter.variable` (the group ops `cov_update_op` and
        `inv_update_op` update them) and logged. False gives the 2017
        behaviour (no guard ops, no counters).

    Raises:
      TypeError: If `layer_collection` is not a `LayerCollection`, or
        `damping` or `cov_ema_decay` is neither a number nor a Tensor.
      ValueError: If `damping` is not positive and finite, if
        `cov_ema_decay` lies outside [0, 1], if `estimation_mode` is
        unknown, if no loss is registered,
        or (one error listing every problem) if a variable is unregistered,
        registered with the wrong number of uses, or registered but missing
        from `variables`.
    """
    _settings.check_layer_collection(
      layer_collection, (lc_lib.LayerCollection,)
    )
    _settings.check_cov_ema_decay(cov_ema_decay)
    _settings.check_damping(damping)
    if estimation_mode not in _ESTIMATION_MODES:
      raise ValueError(
        "Unrecognized value {!r} for estimation_mode. Must be one of "
        "{}.".format(estimation_mode, list(_ESTIMATION_MODES))
      )
    self._variables = list(variables)
    self._damping = damping
    self._estimation_mode = estimation_mode
    self._layers = layer_collection
    self._skip_nonfinite_updates = bool(skip_nonfinite_updates)
    self.cov_skip_counter = None
    self.inv_skip_counter = None
    self._colocate_gradients_with_ops = colocate_gradients_with_ops
    self._cov_device_context_generator = _DeviceContextGenerator(cov_devices)
    if inv_devices == cov_devices:
      self._inv_device_context_generator = self._cov_device_context_generator
    else:
      self._inv_device_context_generator = _DeviceContextGenerator(inv_devices)

    self._layers.create_subgraph()
    self._check_registration(self._variables)
    self._setup(cov_ema_decay)

  @property
  def variables(self):
    """The list of variables whose Fisher is estimated."""
    return self._variables

  @property
  def damping(self):
    """The damping (float or scalar Tensor) given to the constructor."""
    return self._damping

  def _check_registration(self, variables):
    """Checks that `variables` and the registrations match.

    See `LayerCollection._check_registration` (public as
    `check_registration` from release 1.5).

    Args:
      variables: The list of variables given to the constructor.

    Raises:
      ValueError: One error whose message lists every problem found.
    """
    self._layers._check_registration(variables)

  def _apply_transformation(self, vecs_and_vars, transform):
    """Applies a per-block transformation to a list of (vector, variable).

    Args:
      vecs_and_vars: List of (vector, variable) pairs; every registered
        block's variables must appear.
      transform: Callable `(fisher_block, vector_or_list) -> same structure`.

    Returns:
      A list of (transformed vector, variable), in the input order.
    """
    vecs = utils.SequenceDict((var, vec) for vec, var in vecs_and_vars)
    trans_vecs = utils.SequenceDict()
    for params, fb in self._layers.fisher_blocks.items():
      vec = vecs[params]
      # The factor variables are float32 (as in 1.4): vectors of another
      # float dtype (float64, float16, bfloat16 models) are cast to float32
      # where they meet them, and the results back to the vector's dtype.
      # float32 vectors pass untouched (no op is added).
      flat = tf.nest.flatten(vec)
      dtypes = [v.dtype.base_dtype if tf.is_tensor(v) else None for v in flat]
      # From release 1.5 the factor variables take the data's dtype, so
      # vectors are used as they are.
      if _releases.of(self).factor_dtype_follows_data or all(
        d in (None, tf.float32) or not d.is_floating for d in dtypes
      ):
        trans_vecs[params] = transform(fb, vec)
        continue
      cast_in = tf.nest.pack_sequence_as(
        vec,
        [
          tf.cast(v, tf.float32) if d is not None and d.is_floating else v
          for v, d in zip(flat, dtypes)
        ],
      )
      result = transform(fb, cast_in)
      flat_result = tf.nest.flatten(result)
      trans_vecs[params] = tf.nest.pack_sequence_as(
        result,
        [
          tf.cast(r, d) if d is not None and d.is_floating else r
          for r, d in zip(flat_result, dtypes)
        ],
      )
    return [(trans_vecs[var], var) for _, var in vecs_and_vars]

  def multiply_inverse(self, vecs_and_vars):
    """Multiplies vectors by the inverse of the damped Fisher approximation.

    Each block applies its own damped inverse, e.g.
    `(A + π√λ I)⁻¹ V (G + √λ/π I)⁻¹` for a Kronecker-factored layer (where
    `V` is the `[in(+1), out]` matrix of the layer's vector), using the
    inverse variables last refreshed by `inv_update_op`.

    Args:
      vecs_and_vars: List of (vector, variable) pairs, each vector shaped
        like its variable, e.g. the output of `compute_gradients`. Every
        registered variable must appear.

    Returns:
      A list of (F̂⁻¹ vector, variable) pairs, in the input order.
    """
    return self._apply_transformation(
      vecs_and_vars, lambda fb, vec: fb.multiply_inverse(vec)
    )

  def multiply(self, vecs_and_vars):
    """Multiplies vectors by the damped Fisher approximation.

    Args:
      vecs_and_vars: List of (vector, variable) pairs, each vector shaped
        like its variable. Every registered variable must appear.

    Returns:
      A list of (F̂ vector, variable) pairs, in the input order.
    """
    return self._apply_transformation(
      vecs_and_vars, lambda fb, vec: fb.multiply(vec)
    )

  def _setup(self, cov_ema_decay):
    """Instantiates the factors and builds the update ops.

    Args:
      cov_ema_decay: The decay of the covariance moving averages.

    Sets `cov_update_op`, `inv_update_op` and `inv_updates_dict`.
    """
    self._instantiate_factors()
    factors = list(self._layers.get_factors())
    make_cov_update, make_inv_updates = self._update_makers(cov_ema_decay)

    cov_updates = []
    for factor in factors:
      with self._cov_device_context_generator():
        cov_updates.append(make_cov_update(factor))

    inv_updates = {}
    for factor in factors:
      with self._inv_device_context_generator():
        for update in make_inv_updates(factor):
          # Reference-variable assignments are Tensors already (TF 1.4
          # stored them); resource-variable ones come back as unread-variable
          # objects, read here after the assignment. Grouped updates (one
          # per factor on the eigen path, from release 1.5) are Operations.
          if not isinstance(update, (tf.Tensor, tf.Operation)):
            update = tf.convert_to_tensor(update)
          inv_updates[update.name] = update

    self.cov_update_op = tf.group(*cov_updates)
    self.inv_update_op = tf.group(*inv_updates.values())
    self.inv_updates_dict = inv_updates

  def _update_makers(self, cov_ema_decay):
    """The functions that build one factor's covariance / inverse updates.

    With `skip_nonfinite_updates` they are the guarded updates (a non-finite
    new value keeps the old one and counts the skip).

    Args:
      cov_ema_decay: The decay of the covariance moving averages.

    Returns:
      `(make_cov_update, make_inv_updates)`, each taking a factor.
    """
    if self._skip_nonfinite_updates:
      # The same update ops, built in the same order, each keeping the old
      # value when its new one is not finite and counting the skip; the guard
      # ops and the skip counters live in their own name scope.
      if getattr(self, "cov_skip_counter", None) is None:
        self.cov_skip_counter = _nonfinite.SkipCounter(
          "covariance_update_skips", "covariance updates"
        )
        self.inv_skip_counter = _nonfinite.SkipCounter(
          "inverse_update_skips", "inverse updates"
        )
      make_cov_update = lambda factor: (
        factor._make_guarded_covariance_update_op(
          cov_ema_decay, self.cov_skip_counter
        )
      )
      make_inv_updates = lambda factor: factor._make_guarded_inverse_update_ops(
        self.inv_skip_counter
      )
      # pylint: enable=protected-access
    else:
      make_cov_update = lambda factor: factor.make_covariance_update_op(
        cov_ema_decay
      )
      make_inv_updates = lambda factor: factor.make_inverse_update_ops()
    return make_cov_update, make_inv_updates

  def _instantiate_factors(self):
    """Computes the gradients of the estimation mode; instantiates factors.

    Every block gets its gradients (one entry per source) and the damping.
    """
    fisher_blocks_list = list(self._layers.get_blocks())
    tensors_to_compute_grads = [
      fb.tensors_to_compute_grads() for fb in fisher_blocks_list
    ]
    gradient_fns = {
      "gradients": self._get_grads_lists_gradients,
      "empirical": self._get_grads_lists_empirical,
      "curvature_prop": self._get_grads_lists_curvature_prop,
      "exact": self._get_grads_lists_exact,
    }
    # Without blocks there is nothing to differentiate (TF 1.4 still built
    # the sampled loss, whose value nothing used).
    grads_lists = (
      gradient_fns[self._estimation_mode](tensors_to_compute_grads)
      if fisher_blocks_list
      else ()
    )

    for grads_list, fb in zip(grads_lists, fisher_blocks_list):
      fb.instantiate_factors(grads_list, self.damping)

  def _gradients(self, ys, xs, grad_ys=None):
    """`tf.compat.v1.gradients` with `None` results replaced by zeros.

    A block tensor that a loss (or a Fisher-factor column) does not reach
    gets a zero contribution from it.

    Args:
      ys: List of Tensors to differentiate.
      xs: List of Tensors (or variables) to differentiate with respect to.
      grad_ys: Optional list of cotangents, one per element of `ys`.

    Returns:
      A list of Tensors shaped like `xs`.
    """
    grads = tf.compat.v1.gradients(
      ys,
      xs,
      grad_ys=grad_ys,
      colocate_gradients_with_ops=self._colocate_gradients_with_ops,
    )
    return _ops.dense_gradients(grads, like=xs)

  def _one_source_grads_lists(self, ys, tensors, grad_ys=None):
    """Back-propagates `ys` to every block's tensors, as one source.

    Args:
      ys: List of Tensors to differentiate.
      tensors: List (one entry per block) of the tensors whose gradients the
        block needs (a Tensor, variable, or tuple/list of them).
      grad_ys: Optional list of cotangents, one per element of `ys`.

    Returns:
      A tuple with one entry per block: the 1-tuple `(grads,)` with `grads`
      structured like the block's entry of `tensors`.
    """
    grads_flat = self._gradients(ys, tf.nest.flatten(tensors), grad_ys=grad_ys)
    grads_all = tf.nest.pack_sequence_as(tensors, grads_flat)
    return tuple((grad,) for grad in grads_all)

  def _get_grads_lists_gradients(self, tensors):
    """Gradients of the loss at targets sampled from the model (one source).

    Args:
      tensors: As in `_one_source_grads_lists`.

    Returns:
      As in `_one_source_grads_lists`.
    """
    return self._one_source_grads_lists(
      [self._layers.total_sampled_loss()], tensors
    )

  def _get_grads_lists_empirical(self, tensors):
    """Gradients of the loss at the data targets (one source).

    Args:
      tensors: As in `_one_source_grads_lists`.

    Returns:
      As in `_one_source_grads_lists`.
    """
    return self._one_source_grads_lists([self._layers.total_loss()], tensors)

  def _get_transformed_random_signs(self):
    """Per loss, `B s` for a fresh random ±1 vector `s` (B Bᵀ = F_loss)."""
    return [
      loss.multiply_fisher_factor(
        utils.generate_random_signs(loss.fisher_factor_inner_shape)
      )
      for loss in self._layers.losses
    ]

  def _get_grads_lists_curvature_prop(self, tensors):
    """Random Fisher-factor columns back-propagated to the blocks (one source).

    `E[(Jᵀ B s)(Jᵀ B s)ᵀ] = Jᵀ B Bᵀ J = Jᵀ F_loss J` for Rademacher `s`.

    Args:
      tensors: As in `_one_source_grads_lists`.

    Returns:
      As in `_one_source_grads_lists`.
    """
    loss_inputs = [loss.inputs for loss in self._layers.losses]
    return self._one_source_grads_lists(
      tf.nest.flatten(loss_inputs),
      tensors,
      grad_ys=tf.nest.flatten(self._get_transformed_random_signs()),
    )

  def _get_grads_lists_exact(self, tensors):
    """Every Fisher-factor column of every loss, back-propagated.

    For each loss and each index `i` of its factor's inner (per-example)
    shape, the replicated one-hot column `B e_i` (for every example of the
    batch) is back-propagated to the blocks. Summing the outer products over
    the sources gives `Σ_i Jᵀ B e_i e_iᵀ Bᵀ J = Jᵀ F_loss J` per example.

    Args:
      tensors: As in `_one_source_grads_lists`.

    Returns:
      A tuple with one entry per block: a tuple with one source per (loss,
      index) pair, each structured like the block's entry of `tensors`.

    Raises:
      ValueError: If a loss's `fisher_factor_inner_static_shape` is not fully
        known beyond the batch dimension.
    """
    grads_all = []
    for loss in self._layers.losses:
      inner_shape = tf.TensorShape(loss.fisher_factor_inner_static_shape)[1:]
      if not inner_shape.is_fully_defined():
        raise ValueError(
          "estimation_mode 'exact' needs the fisher_factor_inner_static_shape"
          " of every loss to be known beyond the batch dimension; got {}.".format(
            loss.fisher_factor_inner_static_shape
          )
        )
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
