"""Guards that keep K-FAC's state when a batch brings non-finite values.

With the guards on (the default of `KfacOptimizer` and `FisherEstimator`), a
covariance update whose new statistic is not finite leaves the covariance
as it was, an inverse update whose result is not finite leaves the previous
inverse, and a training step whose gradient or update is not finite leaves
the weights and the velocity slots unchanged. Each optimizer counts the
skipped updates in local variables (not saved by a default `Saver`) and
logs a warning at the first skip and then once every `LOG_EVERY_N_SKIPS`
skips.

All guard ops live under the name scope `GUARD_SCOPE`, so they never shift
the op counters of the current name scope, which end up in K-FAC's variable
names (`inv_dampmul_2`, ...). With finite data every value is bit-identical
to the unguarded update: `tf.where(True, new, old)` is `new`.
"""

import tensorflow as tf

GUARD_SCOPE = "kfac_nonfinite_guard"

# A warning is logged at the first skip of a counter and then each time the
# count passes a multiple of this number.
LOG_EVERY_N_SKIPS = 100


def all_finite(tensors):
  """A scalar bool Tensor: every element of every float Tensor is finite.

  Args:
    tensors: An iterable of Tensors; non-float ones are ignored.

  Returns:
    A scalar bool Tensor (True for no float Tensor).
  """
  checks = [
    tf.reduce_all(tf.math.is_finite(t))
    for t in tensors
    if t.dtype.base_dtype.is_floating
  ]
  if not checks:
    return tf.constant(True)
  if len(checks) == 1:
    return checks[0]
  return tf.reduce_all(tf.stack(checks))


# `keep_unless` selects between tensors of at least this many (static)
# elements with a `tf.cond`, which passes one of them on without reading
# either, and between smaller ones with an elementwise `tf.where`.
_COND_MIN_ELEMENTS = 2**16


def keep_unless(ok, new_value, old_value):
  """`new_value` where `ok` holds, else `old_value` (same shape and dtype).

  Args:
    ok: A scalar bool Tensor.
    new_value: A Tensor.
    old_value: A Tensor or Variable of the same shape and dtype.

  Returns:
    A Tensor equal to one of the two, bit for bit.
  """
  new_value = tf.convert_to_tensor(new_value)
  size = new_value.shape.num_elements()
  if size is not None and size >= _COND_MIN_ELEMENTS:
    return tf.cond(
      ok, lambda: tf.identity(new_value), lambda: tf.identity(old_value)
    )
  return tf.where(ok, new_value, tf.convert_to_tensor(old_value))


def guarded_updates(
  pairs, counter, update, whole=False, check=all_finite, one_scope=False
):
  """`update(variable, value)` for every pair, unless a value is not finite.

  One check covers all the pairs: if any new value has a NaN or an Inf,
  every variable keeps its value and `counter` counts one skip. The guard
  ops live under `GUARD_SCOPE`; with finite values each update computes
  what `update(variable, value)` alone computes, bit for bit.

  This is the only implementation of the guard: the factors of every
  release (the engine's `fisher_factors` and `_multi_use`, and the 1.8-1.10
  `_deferred_factors`) build their guarded covariance and inverse updates
  with it.

  Args:
    pairs: A list of `(variable, new value)` pairs.
    counter: The `SkipCounter` that counts a skip; every update depends on
      its count op. None builds the plain updates, `update(variable,
      value)` for every pair, with no guard op.
    update: A function `(variable, value) -> op or Tensor` building one
      update (an assignment, a moving average, ...).
    whole: If False, `update` is given `old_value` in place of a non-finite
      new value, so it must leave the variable unchanged when given its own
      value (an assignment, a moving average without zero-debiasing). If
      True, a `tf.cond` skips the whole `update` (zero-debiased moving
      averages, whose helper variables move on every update).
    check: A function from the list of the new values to a scalar bool
      Tensor, True exactly when they are all finite; it is called under
      `GUARD_SCOPE`. The default, `all_finite`, looks at every element; a
      factor may pass a cheaper test with the same result.
    one_scope: If True, every guard op is built in one `GUARD_SCOPE` (the
      first, re-entered); if False, the check opens one and each value's
      guard another. Only the number of guard scopes differs: it numbers
      the guard scopes opened later in the same name scope (the name of a
      skip counter made after the update, such as
      `kfac_nonfinite_guard_16/parameter_update_skips`), so each caller
      keeps the count its graphs have always had.

  Returns:
    The list of the updates, one per pair, in order (with `whole`, each the
    variable's value after the update).
  """
  if counter is None:
    return [update(variable, value) for variable, value in pairs]
  with tf.name_scope(GUARD_SCOPE) as first_scope:
    ok = check([value for _, value in pairs])
    count = counter.count_unless(ok)

  def guard_scope():
    # The absolute name re-enters the first scope; `GUARD_SCOPE` opens a
    # new one (`kfac_nonfinite_guard_<n>`).
    return tf.name_scope(first_scope if one_scope else GUARD_SCOPE)

  updates = []
  with tf.control_dependencies([count]):
    for variable, value in pairs:
      if whole:
        with guard_scope():
          # `tf.cond` calls both branch functions at once: the default
          # arguments bind the current pair exactly.
          updates.append(
            tf.cond(
              ok,
              lambda v=variable, x=value: tf.identity(update(v, x)),
              lambda v=variable: tf.identity(v),
            )
          )
        continue
      with guard_scope():
        value = keep_unless(ok, value, variable)
      updates.append(update(variable, value))
  return updates


def guarded_assign(variable, value, counter, one_scope=False):
  """`variable.assign(value)`, or no change (one skip counted) if not finite.

  Args:
    variable: A Variable.
    value: Its new value, a Tensor of the same shape and dtype.
    counter: The `SkipCounter` that counts a skip.
    one_scope: As for `guarded_updates`.

  Returns:
    The assignment (as `variable.assign`).
  """
  return guarded_updates(
    [(variable, value)], counter, assign, one_scope=one_scope
  )[0]


def assign(variable, value):
  """`variable.assign(value)`: the unguarded counterpart of `guarded_assign`."""
  return variable.assign(value)


def num_false(flags):
  """The number of False entries of a list of scalar bool Tensors (int64)."""
  if not flags:
    return tf.constant(0, tf.int64)
  return tf.add_n([tf.cast(tf.logical_not(f), tf.int64) for f in flags])


class SkipCounter(object):
  """Counts skipped updates in a local int64 variable and logs them.

  The variable is in `LOCAL_VARIABLES` only (a default `Saver` does not save
  it, and checkpoints are unchanged); it initialises itself on first use, so
  programs that run only `global_variables_initializer()` work too.
  """

  def __init__(self, name, description):
    """Creates the counter variable `<GUARD_SCOPE>/<name>`.

    Args:
      name: The variable's name inside the guard scope.
      description: What is skipped, for the log message.
    """
    with tf.name_scope(GUARD_SCOPE):
      self.variable = tf.compat.v1.Variable(
        tf.zeros([], tf.int64),
        trainable=False,
        collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES],
        name=name,
      )
    self._description = description

  def count_unless(self, ok):
    """`count(1)` if the scalar bool `ok` is False, else `count(0)`."""
    with tf.name_scope(GUARD_SCOPE):
      return self.count(tf.cast(tf.logical_not(ok), tf.int64))

  def count(self, num_skipped):
    """Returns a Tensor that adds `num_skipped` to the count when evaluated.

    Its value is the new count. A warning is logged when the count goes
    from 0 to positive and whenever it passes a multiple of
    `LOG_EVERY_N_SKIPS`.

    Args:
      num_skipped: Scalar integer Tensor, the skips of this run.
    """
    with tf.name_scope(GUARD_SCOPE):
      num_skipped = tf.cast(num_skipped, tf.int64)
      variable = self.variable

      def add():
        return tf.identity(variable.assign_add(num_skipped, use_locking=True))

      def first():
        return tf.identity(variable.assign(num_skipped))

      new = tf.cond(tf.compat.v1.is_variable_initialized(variable), add, first)
      old = new - num_skipped
      should_log = tf.logical_and(
        num_skipped > 0,
        tf.logical_or(
          tf.equal(old, 0),
          tf.not_equal(old // LOG_EVERY_N_SKIPS, new // LOG_EVERY_N_SKIPS),
        ),
      )

      def log():
        printed = tf.print(
          "K-FAC skipped",
          num_skipped,
          self._description,
          "with non-finite values (",
          new,
          "so far).",
          output_stream=tf.compat.v1.logging.warning,
        )
        with tf.control_dependencies([printed]):
          return tf.identity(new)

      return tf.cond(should_log, log, lambda: tf.identity(new))
