"""Levenberg–Marquardt adaptation of the damping (release 1.7).

`KfacOptimizer.set_damping_adaptation_params` of release 1.7 enables a
Levenberg–Marquardt rule (Martens & Grosse 2015, §6.5): every
`damping_adaptation_interval` steps the optimizer compares the actual change
of the loss over the last step with the change predicted by its quadratic
model,

  `ρ = (L(θ_new; batch_prev) − L(θ_old; batch_prev)) / q_model_change`,

and multiplies the damping `λ` by `1/ω` if `ρ < 0.25`, by `ω` if `ρ > 0.75`
(`ω = decay ** interval`), keeping it at least `min_damping`.

`DampingAdaptationMixin` holds that state and builds its ops for an
optimizer class (the 1.7 `KfacOptimizer` face); `levenberg_marquardt_rho`
and `levenberg_marquardt_damping` are the rule itself.
"""

import tensorflow as tf

__all__ = [
    "DampingAdaptationMixin",
    "levenberg_marquardt_rho",
    "levenberg_marquardt_damping",
    "qmodel_hyperparams_1_7",
]


def levenberg_marquardt_rho(new_loss, prev_loss, q_model_change):
  """The reduction ratio `ρ = (new_loss − prev_loss) / q_model_change`.

  Args:
    new_loss: The loss of the previous batch at the current parameters.
    prev_loss: The loss of the same batch before the last update.
    q_model_change: The change of the loss the quadratic model predicted for
      the last update (negative for a predicted decrease).

  Returns:
    The scalar Tensor `ρ`.
  """
  return (new_loss - prev_loss) / q_model_change


def levenberg_marquardt_damping(damping, rho, omega, min_damping):
  """The Levenberg–Marquardt damping update.

  `λ' = λ/ω` if `ρ < 0.25`, `λ·ω` if `ρ > 0.75`, else `λ`; the result is
  `max(λ', min_damping)`.

  Args:
    damping: The current damping `λ` (scalar Tensor).
    rho: The reduction ratio `ρ` (scalar Tensor).
    omega: `ω = decay ** interval`, in (0, 1].
    min_damping: The lower bound.

  Returns:
    The new damping, a scalar Tensor of `damping`'s dtype.
  """
  damping = tf.convert_to_tensor(damping)
  dtype = damping.dtype.base_dtype
  omega = tf.cast(omega, dtype)
  rho = tf.cast(rho, dtype)
  new_damping = tf.where(
      rho < 0.25, damping / omega,
      tf.where(rho > 0.75, damping * omega, damping))
  return tf.maximum(new_damping, tf.cast(min_damping, dtype))


def qmodel_hyperparams_1_7(m_11, m_21, m_22, c_1, c_2):
  """`(α, μ, qmodel_change)` of the two-direction quadratic model (1.7).

  The model of the step `δ = α p + μ d` is `½ xᵀ M x + cᵀ x` with
  `M = [[m_11, m_21], [m_21, m_22]]`, `c = [c_1, c_2]`, `x = (α, μ)`. Its
  minimiser is `sol = −M⁻¹ c`, so `α = sol₀`, `μ = sol₁` and the predicted
  change is `½ Σ sol ⊙ c` (the model decrease, negative). If `m_22 == 0`
  (no previous update): `α = −c_1 / m_11`, `μ = 0`, change `½ α c_1`.

  Args:
    m_11: `pᵀ(F + λI)p` (scalar Tensor).
    m_21: `dᵀ(F + λI)p`.
    m_22: `dᵀ(F + λI)d`.
    c_1: `gᵀp`.
    c_2: `gᵀd`.

  Returns:
    A tuple of scalar Tensors `(alpha, mu, qmodel_change)`.
  """
  def non_zero_prevupd_case():
    m = tf.convert_to_tensor([[m_11, m_21], [m_21, m_22]])
    c = tf.convert_to_tensor([[c_1], [c_2]])
    sol = -tf.linalg.matmul(tf.linalg.inv(m), c)
    return sol[0, 0], sol[1, 0], 0.5 * tf.reduce_sum(sol * c)

  def zero_prevupd_case():
    alpha = -c_1 / m_11
    return alpha, tf.zeros_like(alpha), 0.5 * alpha * c_1

  return tf.cond(tf.equal(m_22, 0.0), zero_prevupd_case,
                 non_zero_prevupd_case)


class DampingAdaptationMixin(object):
  """Levenberg–Marquardt damping adaptation for an optimizer (1.7).

  Put it before the optimizer class in the bases (it uses no `super()`, so a
  face may also inline it). The class must have `get_name()` (a
  `tf.compat.v1.train.Optimizer`) and either set `_damping_constant` (the
  constructor's damping, as 1.7 does) or have an estimator `_fisher_est`. The
  optimizer calls `_minimize_with_damping_adaptation` from `minimize` and
  `_assign_q_model_change(qmodel_change)` when it computes the quadratic
  model's predicted change.

  Before `set_damping_adaptation_params` the class placeholders apply
  (decay 0.95, interval 5, minimum 1e-5); they have no effect.
  """

  _adapt_damping = False
  _is_chief = False
  _prev_train_batch = None
  _loss_fn = None
  _min_damping = 1e-5
  _damping_adaptation_decay = 0.95
  _damping_adaptation_interval = 5
  _omega = 0.95 ** 5
  _damping_variable = None
  _damping_constant = None

  @property
  def damping(self):
    """The damping variable once adaptation is enabled, else the constant.

    The constant is `_damping_constant` (what 1.7's constructor stores) or,
    when that is not set, the estimator's damping (`_fisher_est.damping`).
    """
    # getattr: a face that inlines this mix-in may drop the `None` class
    # defaults.
    variable = getattr(self, "_damping_variable", None)
    if variable is not None:
      return variable
    constant = getattr(self, "_damping_constant", None)
    if constant is not None:
      return constant
    return self._fisher_est.damping

  @property
  def damping_adaptation_interval(self):
    """The number of steps between two damping adaptations."""
    return self._damping_adaptation_interval

  def set_damping_adaptation_params(self,
                                    is_chief,
                                    prev_train_batch,
                                    loss_fn,
                                    min_damping=1e-5,
                                    damping_adaptation_decay=0.99,
                                    damping_adaptation_interval=5):
    """Enables the Levenberg–Marquardt adaptation of the damping.

    Inside `variable_scope(self.get_name())` creates four non-trainable
    float32 scalars: `rho`, `prev_loss`, `q_model_change` (written before
    they are read) and `damping` (initialised to the current damping).
    `minimize` then adapts the damping every `damping_adaptation_interval`
    steps on the chief.

    Args:
      is_chief: Python bool; only the chief adapts the damping.
      prev_train_batch: The previous step's batch (whatever `loss_fn`
        takes), kept up to date by the program.
      loss_fn: Callable `loss_fn(batch)` building the loss on a batch.
      min_damping: Lower bound of the damping.
      damping_adaptation_decay: `decay`; the factor is
        `ω = decay ** damping_adaptation_interval`.
      damping_adaptation_interval: Steps between adaptations (int).

    Raises:
      ValueError: If adaptation was already enabled.
    """
    if getattr(self, "_adapt_damping", False):
      raise ValueError("Damping adaptation parameters already set.")
    initial_damping = self.damping
    with tf.compat.v1.variable_scope(self.get_name()):
      self._adapt_damping = True
      self._is_chief = is_chief
      self._prev_train_batch = prev_train_batch
      self._loss_fn = loss_fn
      self._damping_adaptation_decay = damping_adaptation_decay
      self._damping_adaptation_interval = damping_adaptation_interval
      self._omega = damping_adaptation_decay**damping_adaptation_interval
      self._min_damping = min_damping
      self._rho = tf.compat.v1.get_variable(
          "rho", shape=(), dtype=tf.float32, trainable=False)
      self._prev_loss = tf.compat.v1.get_variable(
          "prev_loss", shape=(), dtype=tf.float32, trainable=False)
      self._q_model_change = tf.compat.v1.get_variable(
          "q_model_change", shape=(), dtype=tf.float32, trainable=False)
      if isinstance(initial_damping, (tf.Tensor, tf.Variable)):
        initializer = tf.cast(initial_damping, tf.float32)
      else:
        initializer = tf.constant(float(initial_damping), tf.float32)
      self._damping_variable = tf.compat.v1.get_variable(
          "damping", initializer=initializer, trainable=False)

  @property
  def _adapts_here(self):
    return bool(getattr(self, "_adapt_damping", False) and
                getattr(self, "_is_chief", False))

  def _assign_q_model_change(self, qmodel_change):
    """Stores the model's predicted change (a `no_op` without adaptation).

    Args:
      qmodel_change: Scalar Tensor, the predicted change of the loss.

    Returns:
      The assignment op, or a `no_op` when this optimizer does not adapt.
    """
    if not self._adapts_here:
      return tf.no_op()
    return self._q_model_change.assign(
        tf.cast(qmodel_change, tf.float32)).op

  def _update_damping(self, prev_batch, global_step):
    """The conditional adaptation op (see the module docstring).

    Runs when `(global_step + 1) mod interval == 0`: evaluates
    `loss_fn(prev_batch)`, assigns `rho`, then assigns the new damping.

    Args:
      prev_batch: The previous step's batch.
      global_step: The integer global step (Tensor or Variable).

    Returns:
      The `tf.cond` op.
    """
    def adapt():
      prev_batch_loss = tf.cast(self._loss_fn(prev_batch), tf.float32)
      with tf.control_dependencies([prev_batch_loss]):
        rho_assign = self._rho.assign(levenberg_marquardt_rho(
            prev_batch_loss, self._prev_loss.read_value(),
            self._q_model_change.read_value()))
        with tf.control_dependencies([rho_assign]):
          new_damping = levenberg_marquardt_damping(
              self._damping_variable.read_value(), self._rho.read_value(),
              self._omega, self._min_damping)
          return tf.group(self._damping_variable.assign(new_damping))

    step = tf.convert_to_tensor(global_step)
    interval = tf.cast(self._damping_adaptation_interval, step.dtype)
    return tf.cond(tf.equal(tf.math.floormod(step + 1, interval), 0), adapt,
                   tf.no_op)

  def _minimize_with_damping_adaptation(self, minimize_fn, *args, **kwargs):
    """`minimize` with the adaptation of release 1.7 on the chief.

    With adaptation enabled on the chief, builds `update =
    _update_damping(prev_train_batch, global_step)` and, under a control
    dependency on it, `prev_loss ← loss` and `minimize_fn(*args,
    **kwargs)`, grouped. Otherwise returns `minimize_fn(*args, **kwargs)`.

    Args:
      minimize_fn: The base `minimize` (bound method).
      *args: `minimize`'s positional arguments; `args[0]` is the loss.
      **kwargs: `minimize`'s keyword arguments; `global_step` is required
        when adapting (the loss may also be the keyword `loss`).

    Returns:
      The training op.

    Raises:
      KeyError: If adapting and no `global_step` keyword was given.
    """
    if not self._adapts_here:
      return minimize_fn(*args, **kwargs)
    global_step = kwargs.get("global_step")
    if global_step is None:
      raise KeyError("global_step needs to be passed to optimizer.minimize "
                     "if damping parameter is adapted.")
    update_damping_op = self._update_damping(self._prev_train_batch,
                                             global_step)
    with tf.control_dependencies([update_damping_op]):
      loss = args[0] if args else kwargs["loss"]
      loss_assign_op = self._prev_loss.assign(tf.cast(loss, tf.float32))
      train_op = minimize_fn(*args, **kwargs)
      return tf.group(loss_assign_op, train_op)
