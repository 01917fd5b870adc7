"""The K-FAC optimizer.

`KfacOptimizer` is a `tf.compat.v1.train.GradientDescentOptimizer` whose
update direction is the gradient preconditioned by the inverse of K-FAC's
block-diagonal, damped Fisher approximation `F̂` (Martens & Grosse, 2015),
with optional momentum, Adam-style momentum, quadratic-model momentum and
KL-based update clipping.
"""

import numbers

import tensorflow as tf

from kfac import _nonfinite
from kfac import _ops
from kfac import _releases
from kfac import _settings
from kfac import _surface
from kfac import curvature_matrix_vector_products as cmvp
from kfac import estimator as est
from kfac import layer_collection as lc_lib

# The 1.4 public names, from the one surface table.
__all__ = list(sorted(_surface.public_names("1.4", "optimizer")))

_LEGAL_MOMENTUM_TYPES = ("regular", "adam", "qmodel")


def _same_variable_set(vars1, vars2):
  """True if the two collections hold the same variables (by identity)."""
  return {id(v) for v in vars1} == {id(v) for v in vars2}


class KfacOptimizer(tf.compat.v1.train.GradientDescentOptimizer):
  """The K-FAC optimizer (Martens & Grosse, 2015).

  Every step computes the gradients `g`, preconditions them with the damped
  Fisher approximation, `p = F̂⁻¹ g`, and applies `var ← var − lr·step`
  through `GradientDescentOptimizer.apply_gradients`, where `step` depends on
  `momentum_type`:

  * "regular": `velocity ← momentum·velocity + p` (with `p` first scaled by
    the KL clipping coefficient if `norm_constraint` is set);
    `step = velocity`;
  * "adam": `velocity ← momentum·velocity + g`; `step = F̂⁻¹ velocity`;
  * "qmodel": `α, μ` minimise the quadratic model
    `½ δᵀ(F + λI)δ + gᵀδ` over `δ = α p + μ (−velocity)` (exact Fisher `F`
    averaged over the batch, from `CurvatureMatrixVectorProductComputer`);
    `velocity ← μ·velocity − α p`; `step = velocity`.

  The statistics are not updated by the training op: run `cov_update_op`
  (covariance moving averages) every step and `inv_update_op` (damped
  inverses) every few steps, e.g.
  `sess.run([train_op, optimizer.cov_update_op])`.

  Attributes:
    cov_update_op: `tf.Operation` updating all factor covariances.
    inv_update_op: `tf.Operation` updating all damped inverses.
    inv_updates_dict: dict `{tensor.name: tensor}` of the individual inverse
      updates (`tf.Tensor`s: running one assigns the new inverse and yields
      it).
  """

  def __init__(
    self,
    learning_rate,
    cov_ema_decay,
    damping,
    layer_collection,
    momentum=0.0,
    momentum_type="regular",
    norm_constraint=None,
    name="KFAC",
    *,
    var_list=None,
    estimation_mode="gradients",
    colocate_gradients_with_ops=False,
    cov_devices=None,
    inv_devices=None,
    skip_nonfinite_updates=True,
    check_tensor_settings=False,
  ):
    """Builds the Fisher estimator and its update ops.

    Args:
      learning_rate: The learning rate `lr`: a float, a scalar Tensor (e.g. a
        `tf.compat.v1.train.exponential_decay` schedule) or a callable
        returning one.
      cov_ema_decay: The decay of the covariance moving averages.
      damping: The damping `λ` (float or scalar Tensor) added to the Fisher
        blocks (Tikhonov damping, factored with the π correction for
        Kronecker blocks).
      layer_collection: The `layer_collection.LayerCollection` in which every
        variable of `var_list` is registered and at least one loss.
      momentum: The momentum decay (float or scalar Tensor). Must be 0 (or
        None) for "qmodel".
      momentum_type: "regular", "adam" or "qmodel" (case-insensitive).
      norm_constraint: None, or the bound `c` of the KL clipping: the
        preconditioned gradient is scaled by
        `min(1, sqrt(c / (lr² · pᵀ g)))`. Only with "regular".
      name: The optimizer name, also the suffix of the velocity slot
        variables (`<var op name>/<name>`).
      var_list: Keyword-only. Optional list of the variables to optimise (an
        r1.5 keyword); defaults to all trainable variables of the default
        graph.
      estimation_mode: Keyword-only. The `FisherEstimator` estimation mode
        (an r1.5 keyword): "gradients", "empirical", "curvature_prop" or
        "exact".
      colocate_gradients_with_ops: Keyword-only. Passed to the estimator's
        gradient computations (an r1.5 keyword).
      cov_devices: Keyword-only. Optional list of devices for the
        covariance-update ops, used in turn (an r1.5 keyword).
      inv_devices: Keyword-only. Optional list of devices for the
        inverse-update ops, used in turn (an r1.5 keyword).
      skip_nonfinite_updates: Keyword-only. If True (the default), one batch
        with NaN or Inf values does not poison training: a training step
        whose gradient or update is not finite leaves the weights and the
        velocity slots unchanged, and the estimator's covariance and
        inverse updates keep their old values likewise. Skips are counted
        in local variables (`nonfinite_skip_counters`, not saved by a
        default `Saver`) and logged. With finite data every number is
        bit-identical to False, which gives the 2017 behaviour (no guard
        ops).
      check_tensor_settings: Keyword-only. Python settings are always
        checked here; Tensor-valued ones (`learning_rate`, `damping`,
        `cov_ema_decay`, `momentum`, `norm_constraint`) cannot be. If True,
        the training step and the update ops check them when they run
        (assertions naming the setting). False (the default) builds no such
        op. Either way no variable name changes.

    Raises:
      TypeError: If `layer_collection` is not a `LayerCollection`, or a
        setting is neither a number nor a Tensor (e.g. a string).
      ValueError: If `damping` is not positive and finite, `cov_ema_decay`
        outside [0, 1], `learning_rate` negative or not finite,
        `norm_constraint` not positive, `momentum` not finite, if
        `momentum_type` is unknown, if `norm_constraint` is set
        with a non-"regular" momentum type, if a non-zero `momentum` is given
        with "qmodel", or for the `FisherEstimator` errors (no loss,
        variables and registrations that do not match, unknown mode).
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

    variables = (
      tf.compat.v1.trainable_variables() if var_list is None else list(var_list)
    )
    self._fisher_est = self._make_fisher_estimator(
      variables,
      cov_ema_decay,
      damping,
      layer_collection,
      estimation_mode=estimation_mode,
      colocate_gradients_with_ops=colocate_gradients_with_ops,
      cov_devices=cov_devices,
      inv_devices=inv_devices,
      skip_nonfinite_updates=skip_nonfinite_updates,
    )
    self._set_step_settings(
      momentum, momentum_type, norm_constraint, skip_nonfinite_updates
    )
    # The batch size of the first loss: the quadratic model averages the
    # exact Fisher over it.
    self._batch_size = tf.shape(
      tf.nest.flatten(layer_collection.losses[0].inputs)[0]
    )[0]
    self._losses = layer_collection.losses

    self.cov_update_op = self._fisher_est.cov_update_op
    self.inv_update_op = self._fisher_est.inv_update_op
    if hasattr(self._fisher_est, "inv_updates_dict"):  # Gone in 1.6.
      self.inv_updates_dict = self._fisher_est.inv_updates_dict

    super(KfacOptimizer, self).__init__(learning_rate, name=name)

    # Run-time checks of Tensor-valued settings, only when asked for.
    self._setting_checks = []
    if check_tensor_settings:
      self._setting_checks = _settings.runtime_checks(
        damping=damping,
        cov_ema_decay=cov_ema_decay,
        learning_rate=learning_rate,
        momentum=momentum,
        norm_constraint=norm_constraint,
      )
      if self._setting_checks:
        self.cov_update_op = tf.group(self.cov_update_op, *self._setting_checks)
        self.inv_update_op = tf.group(self.inv_update_op, *self._setting_checks)

  def _set_step_settings(
    self, momentum, momentum_type, norm_constraint, skip_nonfinite_updates
  ):
    """Stores the settings of the update steps (checked already).

    Args:
      momentum: The momentum (a number or scalar Tensor).
      momentum_type: "regular", "adam" or "qmodel".
      norm_constraint: None or the KL-clipping bound.
      skip_nonfinite_updates: Whether non-finite steps are skipped.
    """
    self._skip_nonfinite_updates = bool(skip_nonfinite_updates)
    self._param_skip_counter = None
    self._momentum = tf.convert_to_tensor(momentum, name="momentum")
    # The velocity update multiplies by the number itself (made a constant
    # of the velocity's dtype), so float64 models see no float32 rounding.
    self._velocity_decay = (
      momentum if isinstance(momentum, numbers.Real) else self._momentum
    )
    self._momentum_type = momentum_type
    self._norm_constraint = norm_constraint

  def _make_fisher_estimator(
    self, variables, cov_ema_decay, damping, layer_collection, **kwargs
  ):
    """Builds the `FisherEstimator` (release faces change its arguments)."""
    return est.FisherEstimator(
      variables, cov_ema_decay, damping, layer_collection, **kwargs
    )

  @property
  def variables(self):
    """The list of variables whose Fisher is estimated (and optimised)."""
    return self._fisher_est.variables

  @property
  def damping(self):
    """The damping given to the constructor."""
    return self._fisher_est.damping

  @property
  def nonfinite_skip_counters(self):
    """The local int64 variables counting skipped updates, by kind.

    A dict with keys "covariance", "inverse" and "parameter" (the last one
    exists once `apply_gradients` has been called); empty when the
    optimizer was built with `skip_nonfinite_updates=False`.
    """
    counters = {}
    if self._fisher_est.cov_skip_counter is not None:
      counters["covariance"] = self._fisher_est.cov_skip_counter.variable
      counters["inverse"] = self._fisher_est.inv_skip_counter.variable
    if self._param_skip_counter is not None:
      counters["parameter"] = self._param_skip_counter.variable
    return counters

  def minimize(self, *args, **kwargs):
    """Adds ops to minimise a loss with K-FAC steps (base `minimize`).

    Args:
      *args: Positional arguments of `Optimizer.minimize`: `loss`,
        `global_step`, `var_list`, ...
      **kwargs: Keyword arguments of `Optimizer.minimize`. A missing or None
        `var_list` is replaced by `self.variables`.

    Returns:
      The training op (also incrementing `global_step` if given).

    Raises:
      ValueError: If `var_list` is not the set of Fisher-estimating
        variables.
    """
    # The base `minimize` passes `var_list` (positional or keyword) to
    # `compute_gradients`, which defaults and checks it.
    return super(KfacOptimizer, self).minimize(*args, **kwargs)

  def compute_gradients(
    self,
    loss,
    var_list=None,
    gate_gradients=tf.compat.v1.train.Optimizer.GATE_OP,
    aggregation_method=None,
    colocate_gradients_with_ops=False,
    grad_loss=None,
  ):
    """Computes the plain gradients of `loss` (base `compute_gradients`).

    Args:
      loss: The scalar loss Tensor to differentiate.
      var_list: Optional list of variables; defaults to `self.variables` and
        must hold exactly the Fisher-estimating variables.
      gate_gradients: `GATE_NONE`, `GATE_OP` or `GATE_GRAPH`.
      aggregation_method: See `tf.compat.v1.gradients`.
      colocate_gradients_with_ops: Colocate gradients with the forward ops.
      grad_loss: Optional Tensor holding the gradient of `loss`.

    Returns:
      A list of (gradient, variable) pairs.

    Raises:
      ValueError: If `var_list` is not the set of Fisher-estimating
        variables.
    """
    if var_list is None:
      var_list = self.variables
    if not _same_variable_set(var_list, self.variables):
      raise ValueError(
        "var_list doesn't match with set of Fisher-estimating variables."
      )
    return super(KfacOptimizer, self).compute_gradients(
      loss,
      var_list=var_list,
      gate_gradients=gate_gradients,
      aggregation_method=aggregation_method,
      colocate_gradients_with_ops=colocate_gradients_with_ops,
      grad_loss=grad_loss,
    )

  def apply_gradients(self, grads_and_vars, *args, **kwargs):
    """Applies K-FAC steps computed from plain gradients.

    The steps (see the class docstring) update the velocity slots and are
    then applied as `var ← var − lr·step`.

    Args:
      grads_and_vars: List of (gradient, variable) pairs, as returned by
        `compute_gradients`, covering every Fisher-estimating variable.
        `IndexedSlices` gradients are made dense.
      *args: Further positional arguments of
        `Optimizer.apply_gradients` (`global_step`, `name`).
      **kwargs: Further keyword arguments of `Optimizer.apply_gradients`.

    Returns:
      The op applying the steps (incrementing `global_step` if given).

    Raises:
      ValueError: If a gradient is None (the loss does not depend on that
        variable).
    """
    # Gradients of gathered variables (embeddings) come as IndexedSlices;
    # the Fisher blocks and the velocities work on dense tensors.
    grads_and_vars = list(grads_and_vars)
    grads_and_vars = list(
      zip(
        _ops.dense_gradients([grad for grad, _ in grads_and_vars]),
        [var for _, var in grads_and_vars],
      )
    )
    missing = [var.name for grad, var in grads_and_vars if grad is None]
    if missing:
      raise ValueError(
        "grads_and_vars has no gradient (None) for {}: K-FAC preconditions "
        "the gradients of every Fisher-estimating variable, so the loss "
        "must depend on all of them.".format(", ".join(missing))
      )
    if not self._skip_nonfinite_updates:
      steps_and_vars = self._compute_update_steps(grads_and_vars)
    else:
      steps_and_vars = self._compute_guarded_update_steps(grads_and_vars)
    if self._setting_checks:
      checks = list(self._setting_checks)
      if callable(self._learning_rate):
        checks += _settings.runtime_checks(learning_rate=self._learning_rate())
      with (
        tf.name_scope(_settings.CHECK_SCOPE),
        tf.control_dependencies(checks),
      ):
        steps_and_vars = [
          (tf.identity(step), var) for step, var in steps_and_vars
        ]
    return super(KfacOptimizer, self).apply_gradients(
      steps_and_vars, *args, **kwargs
    )

  def _compute_guarded_update_steps(self, grads_and_vars):
    """`_compute_update_steps` that changes nothing unless all is finite.

    The velocities' new values and the steps are built as in
    `_compute_update_steps`; if any gradient, new velocity or step is not
    finite, the velocities keep their values and every step is zero (so
    `var − lr·0` leaves the weights as they were), and the skip is counted.
    With finite values the steps are bit-identical.

    Args:
      grads_and_vars: List of (gradient, variable) pairs.

    Returns:
      List of (step, variable) pairs; reading a step runs the velocity
      assignments and the skip count.
    """
    pending = []
    steps_and_vars = self._compute_update_steps(
      grads_and_vars, pending_velocities=pending
    )
    if self._param_skip_counter is None:
      self._param_skip_counter = _nonfinite.SkipCounter(
        "parameter_update_skips", "parameter updates"
      )
    with tf.name_scope(_nonfinite.GUARD_SCOPE):
      ok = _nonfinite.all_finite(
        [grad for grad, _ in grads_and_vars]
        + [new for _, new in pending]
        + [step for step, _ in steps_and_vars]
      )
      updates = [self._param_skip_counter.count_unless(ok)]
      for velocity, new in pending:
        with tf.device(velocity.device):
          updates.append(
            velocity.assign(_nonfinite.keep_unless(ok, new, velocity))
          )
      guarded = []
      with tf.control_dependencies(updates):
        for step, var in steps_and_vars:
          guarded.append((tf.where(ok, step, tf.zeros_like(step)), var))
    return guarded

  def _squared_fisher_norm(self, grads_and_vars, precon_grads_and_vars):
    """Computes `Σ_vars Σ g ⊙ p`, i.e. `pᵀ F̂ p` for `p = F̂⁻¹ g`.

    Args:
      grads_and_vars: List of (gradient, variable) pairs.
      precon_grads_and_vars: List of (preconditioned gradient, variable)
        pairs for the same variables, in the same order.

    Returns:
      A scalar Tensor.

    Raises:
      ValueError: If the two lists do not reference the same variables.
    """
    for (_, gvar), (_, pgvar) in zip(grads_and_vars, precon_grads_and_vars):
      if gvar is not pgvar:
        raise ValueError(
          "The variables referenced by the two arguments must match."
        )
    terms = [
      tf.reduce_sum(grad * pgrad)
      for (grad, _), (pgrad, _) in zip(grads_and_vars, precon_grads_and_vars)
    ]
    return tf.reduce_sum(terms)

  def _update_clip_coeff(self, grads_and_vars, precon_grads_and_vars):
    """Computes the KL clipping coefficient (Ba et al., 2017).

    `coeff = min(1, sqrt(norm_constraint / (lr² · pᵀ F̂ p)))`, so that the
    clipped update `lr·coeff·p` has squared Fisher norm at most
    `norm_constraint`.

    Args:
      grads_and_vars: List of (gradient, variable) pairs.
      precon_grads_and_vars: List of (preconditioned gradient, variable).

    Returns:
      A scalar Tensor.
    """
    sq_norm_grad = self._squared_fisher_norm(
      grads_and_vars, precon_grads_and_vars
    )
    dtype = sq_norm_grad.dtype
    learning_rate = self._learning_rate
    if callable(learning_rate):  # Accepted by the base optimizer too.
      learning_rate = learning_rate()
    learning_rate = _ops.in_dtype(learning_rate, dtype)
    sq_norm_up = sq_norm_grad * learning_rate**2
    return tf.minimum(
      tf.ones([], dtype),
      tf.sqrt(_ops.in_dtype(self._norm_constraint, dtype) / sq_norm_up),
    )

  def _clip_updates(self, grads_and_vars, precon_grads_and_vars):
    """Scales the preconditioned gradients by `_update_clip_coeff`.

    Args:
      grads_and_vars: List of (gradient, variable) pairs.
      precon_grads_and_vars: List of (preconditioned gradient, variable).

    Returns:
      List of (clipped preconditioned gradient, variable) pairs.
    """
    coeff = self._update_clip_coeff(grads_and_vars, precon_grads_and_vars)
    return [(pgrad * coeff, var) for pgrad, var in precon_grads_and_vars]

  def _compute_prev_updates(self, variables):
    """The previous updates, `−velocity` per variable (up to the lr).

    From release 1.7 the learning rate is included: `−lr · velocity`.
    """
    updates = list(
      -self._zeros_slot(var, "velocity", self._name) for var in variables
    )
    if _releases.of(self).qmodel_previous_update_scaled:
      learning_rate = self._call_if_callable(self._learning_rate)
      updates = [
        _ops.in_dtype(learning_rate, u.dtype.base_dtype) * u for u in updates
      ]
    return updates

  def _compute_qmodel_hyperparams(
    self, precon_grads, prev_updates, grads, variables
  ):
    """Chooses (α, μ) minimising the quadratic model along two directions.

    With `p` = preconditioned gradients, `d` = previous updates,
    `u = Bᵀ J p`, `w = Bᵀ J d` (exact Fisher factor products), `n` = batch
    size and `λ` = damping:
    `M = [[uᵀu/n + λ pᵀp, wᵀu/n + λ dᵀp], [wᵀu/n + λ dᵀp, wᵀw/n + λ dᵀd]]`,
    `c = [gᵀp, gᵀd]`. The model `½ xᵀ M x + cᵀ x` of `δ = x₀ p + x₁ d` is
    minimised by `x = −M⁻¹ c`, so with `sol = M⁻¹ c`: `α = −sol₀`,
    `μ = −sol₁`, and the returned `qmodel_change = ½ solᵀ c` (the legacy
    formula; it is not used by the optimizer). If
    `M₁₁ = wᵀw/n + λ dᵀd` is 0 (no previous update): `α = −gᵀp / M₀₀`,
    `μ = 0` and `qmodel_change = ½ α gᵀp`.

    Args:
      precon_grads: List of preconditioned gradients `p`.
      prev_updates: List of previous updates `d`.
      grads: List of gradients `g`.
      variables: List of the variables.

    Returns:
      A tuple of scalar Tensors `(alpha, mu, qmodel_change)`.
    """
    cmvpc = cmvp.CurvatureMatrixVectorProductComputer(self._losses, variables)

    # Products with the transposed Fisher factor (loss-factor space).
    fft_precon_grads = cmvpc.multiply_fisher_factor_transpose(precon_grads)
    fft_prev_updates = cmvpc.multiply_fisher_factor_transpose(prev_updates)

    batch_size = tf.cast(self._batch_size, dtype=fft_precon_grads[0].dtype)
    damping = _ops.in_dtype(self.damping, fft_precon_grads[0].dtype)

    m_11 = _inner_product_list(
      fft_precon_grads, fft_precon_grads
    ) / batch_size + damping * _inner_product_list(precon_grads, precon_grads)
    m_21 = _inner_product_list(
      fft_prev_updates, fft_precon_grads
    ) / batch_size + damping * _inner_product_list(prev_updates, precon_grads)
    m_22 = _inner_product_list(
      fft_prev_updates, fft_prev_updates
    ) / batch_size + damping * _inner_product_list(prev_updates, prev_updates)

    def non_zero_prevupd_case():
      m = tf.convert_to_tensor([[m_11, m_21], [m_21, m_22]])
      c = tf.convert_to_tensor(
        [
          [_inner_product_list(grads, precon_grads)],
          [_inner_product_list(grads, prev_updates)],
        ]
      )
      sol = _two_by_two_solve(m, c)
      alpha = -sol[0, 0]
      mu = -sol[1, 0]
      qmodel_change = 0.5 * tf.reduce_sum(sol * c)
      if _releases.of(self).qmodel_change_negative:
        # From 1.7 the change has the sign of the model's decrease.
        qmodel_change = -qmodel_change
      return alpha, mu, qmodel_change

    def zero_prevupd_case():
      c = _inner_product_list(grads, precon_grads)
      alpha = -c / m_11
      mu = tf.zeros_like(alpha)
      qmodel_change = 0.5 * alpha * c
      return alpha, mu, qmodel_change

    return tf.cond(
      tf.equal(m_22, 0.0), zero_prevupd_case, non_zero_prevupd_case
    )

  def _compute_update_steps(self, grads_and_vars, pending_velocities=None):
    """Computes the steps (to be multiplied by −lr) for every variable.

    Args:
      grads_and_vars: List of (gradient, variable) pairs.
      pending_velocities: None, or a list: then the velocities are not
        assigned; `(velocity slot, new value)` pairs are appended to it and
        the new values stand for the assigned velocities.

    Returns:
      List of (step, variable) pairs, in the input order.
    """
    if self._momentum_type == "regular":
      precon_grads_and_vars = self._fisher_est.multiply_inverse(grads_and_vars)
      if self._norm_constraint is not None:
        precon_grads_and_vars = self._clip_updates(
          grads_and_vars, precon_grads_and_vars
        )
      if not getattr(self, "_adapts_here", False):
        return self._update_velocities(
          precon_grads_and_vars,
          self._velocity_decay,
          pending=pending_velocities,
        )
      # Release 1.7 with damping adaptation on the chief: the quadratic model
      # of the two directions (preconditioned gradient, previous update) is
      # built only for its predicted change, stored before the velocities
      # move; the step itself stays the regular momentum step.
      variables = [var for (_, var) in grads_and_vars]
      _, _, qmodel_change = self._compute_qmodel_hyperparams(
        [pgrad for (pgrad, _) in precon_grads_and_vars],
        self._compute_prev_updates(variables),
        [grad for (grad, _) in grads_and_vars],
        variables,
      )
      with tf.control_dependencies(
        [self._assign_q_model_change(qmodel_change)]
      ):
        return self._update_velocities(
          precon_grads_and_vars,
          self._velocity_decay,
          pending=pending_velocities,
        )
    elif self._momentum_type == "adam":
      velocities_and_vars = self._update_velocities(
        grads_and_vars, self._velocity_decay, pending=pending_velocities
      )
      return self._fisher_est.multiply_inverse(velocities_and_vars)
    else:  # "qmodel"
      precon_grads_and_vars = self._fisher_est.multiply_inverse(grads_and_vars)
      precon_grads = list(pgrad for (pgrad, _) in precon_grads_and_vars)
      grads = list(grad for (grad, _) in grads_and_vars)
      variables = list(var for (_, var) in grads_and_vars)
      prev_updates = self._compute_prev_updates(variables)
      alpha, mu, qmodel_change = self._compute_qmodel_hyperparams(
        precon_grads, prev_updates, grads, variables
      )
      # Release 1.7 stores the predicted change for its damping adaptation
      # (a no-op without adaptation) before the velocities move.
      assign_change = getattr(self, "_assign_q_model_change", None)
      with tf.control_dependencies(
        [assign_change(qmodel_change)] if assign_change else []
      ):
        return self._update_velocities(
          zip(precon_grads, variables),
          mu,
          vec_coeff=-alpha,
          pending=pending_velocities,
        )

  def _update_velocities(
    self, vecs_and_vars, decay, vec_coeff=1.0, pending=None
  ):
    """Updates the velocity slots: `velocity ← decay·velocity + coeff·vec`.

    The slots (`<var op name>/<optimizer name>`, zero-initialised) are
    created on first use, also when the momentum is 0. The update ops are
    placed on the slot's device.

    Args:
      vecs_and_vars: Iterable of (vector, variable) pairs.
      decay: The decay (float or scalar Tensor).
      vec_coeff: The coefficient of the vector (float or scalar Tensor).
      pending: None, or a list: then nothing is assigned; the pairs
        `(velocity slot, new value)` are appended to it and the new values
        are returned in place of the assigned velocities.

    Returns:
      List of (new velocity, variable) pairs; reading the new velocity runs
      the assignment.
    """

    def _update_velocity(vec, var):
      velocity = self._zeros_slot(var, "velocity", self._name)
      with tf.device(velocity.device):
        # Read/modify/write: not safe for asynchronous updates. A float64
        # (e.g. NumPy) momentum meets the velocity in its dtype, as 1.4's
        # Python-number momentum did; from release 1.5 float64 variables
        # meet a float32 decay or coefficient Tensor the same way.
        dtype = velocity.dtype.base_dtype
        new_velocity = (
          _in_dtype(decay, dtype) * velocity + _in_dtype(vec_coeff, dtype) * vec
        )
        if pending is not None:
          pending.append((velocity, new_velocity))
          return (new_velocity, var)
        return (tf.identity(velocity.assign(new_velocity)), var)

    return [_update_velocity(vec, var) for vec, var in vecs_and_vars]


def _check_settings(
  layer_collection,
  learning_rate,
  cov_ema_decay,
  damping,
  momentum,
  momentum_type,
  norm_constraint,
):
  """Checks the optimizer's settings; returns the momentum and its type.

  Args:
    layer_collection: Must be a `LayerCollection`.
    learning_rate: The learning rate.
    cov_ema_decay: The covariance moving-average decay.
    damping: The damping.
    momentum: The momentum (0 or None with "qmodel").
    momentum_type: "regular", "adam" or "qmodel" (case-insensitive).
    norm_constraint: None, or the KL-clipping bound ("regular" only).

  Returns:
    `(momentum, momentum_type)`: the momentum (0.0 for "qmodel") and the
    lower-cased type.

  Raises:
    TypeError: If `layer_collection` is not a `LayerCollection`, or a
      setting is neither a number nor a Tensor.
    ValueError: For an illegal setting or combination.
  """
  _settings.check_layer_collection(layer_collection, (lc_lib.LayerCollection,))
  _settings.check_learning_rate(learning_rate)
  _settings.check_cov_ema_decay(cov_ema_decay)
  _settings.check_damping(damping)
  _settings.check_momentum(momentum)
  _settings.check_norm_constraint(norm_constraint)
  if not isinstance(momentum_type, str):
    raise ValueError(
      "momentum_type must be one of {}; got {!r}.".format(
        list(_LEGAL_MOMENTUM_TYPES), momentum_type
      )
    )
  momentum_type = momentum_type.lower()
  if momentum_type not in _LEGAL_MOMENTUM_TYPES:
    raise ValueError(
      "Unsupported momentum type {}. Must be one of {}.".format(
        momentum_type, list(_LEGAL_MOMENTUM_TYPES)
      )
    )
  if momentum_type != "regular" and norm_constraint is not None:
    raise ValueError(
      "Update clipping (norm_constraint={}) is only "
      "supported with momentum_type 'regular'; got {!r}.".format(
        norm_constraint, momentum_type
      )
    )
  if momentum_type == "qmodel":
    if not (
      momentum is None or (isinstance(momentum, numbers.Real) and momentum == 0)
    ):
      raise ValueError(
        "momentum must be 0 (or None) with momentum_type "
        "'qmodel': the quadratic model chooses the momentum "
        "decay; got {!r}.".format(momentum)
      )
    momentum = 0.0
  elif momentum is None:
    raise ValueError(
      "momentum must be a float or a scalar Tensor with "
      "momentum_type {!r}; got None.".format(momentum_type)
    )
  return momentum, momentum_type


def _in_dtype(value, dtype):
  """`value` in `dtype`: a Tensor is cast, a number made a constant of it.

  A Python or NumPy number becomes a constant of `dtype` directly (no
  rounding through float32 for float64 velocities).
  """
  if isinstance(value, (tf.Tensor, tf.Variable)):
    if value.dtype.base_dtype != dtype:
      return tf.cast(value, dtype)
    return value
  if isinstance(value, numbers.Real):
    return _ops.in_dtype(value, dtype)
  return value


def _inner_product_list(list1, list2):
  """`Σ_i Σ list1[i] ⊙ list2[i]`: the inner product of two vector lists."""
  return tf.add_n(
    [tf.reduce_sum(elt1 * elt2) for elt1, elt2 in zip(list1, list2)]
  )


def _two_by_two_solve(m, c):
  """Solves `m x = c` for a 2×2 matrix `m` (as `m⁻¹ c`)."""
  return tf.matmul(tf.linalg.inv(m), c)
