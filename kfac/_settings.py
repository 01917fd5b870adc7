"""Checks of the optimizer's and estimator's settings.

Python values are checked when the graph is built (`check_*` raise
`ValueError`/`TypeError` naming the argument). Tensor-valued settings cannot
be checked then; `runtime_checks` builds assertions for them, only when
asked for, under the name scope `CHECK_SCOPE` (so no op counter of the
current scope moves and no variable name changes).

Everything TF 1.4 accepted and used correctly stays accepted: Python and
NumPy numbers, Tensors and Variables, callables for the learning rate, an
integer damping.
"""

import math
import numbers

import numpy as np
import tensorflow as tf

CHECK_SCOPE = "kfac_setting_checks"


def _is_tensor_like(value):
  return tf.is_tensor(value) or isinstance(value, tf.Variable)


def _as_number(value, arg_name, expected):
  """`value` as a float if it is a (Python or NumPy) real number, else None.

  Raises:
    TypeError: If `value` is neither a number nor Tensor-like.
  """
  if isinstance(value, np.ndarray) and value.ndim == 0:
    value = value.item()
  if isinstance(value, (numbers.Real, np.number)) and not isinstance(
    value, (complex, np.complexfloating)
  ):
    return float(value)
  if _is_tensor_like(value):
    return None
  raise TypeError("{} must be {}, got {!r}.".format(arg_name, expected, value))


def check_damping(damping):
  """Rejects a damping that is not positive and finite (or not a number)."""
  value = _as_number(
    damping, "damping", "a positive number or a scalar float Tensor"
  )
  if value is not None and not (math.isfinite(value) and value > 0):
    raise ValueError(
      "damping must be positive and finite, got {!r}.".format(damping)
    )


def check_cov_ema_decay(cov_ema_decay):
  """Rejects a moving-average decay outside [0, 1]."""
  value = _as_number(
    cov_ema_decay,
    "cov_ema_decay",
    "a number in [0, 1] or a scalar float Tensor",
  )
  if value is not None and not 0.0 <= value <= 1.0:
    raise ValueError(
      "cov_ema_decay must lie in [0, 1], got {!r}.".format(cov_ema_decay)
    )


def check_learning_rate(learning_rate):
  """Rejects a negative or non-finite learning rate (callables pass)."""
  if callable(learning_rate) and not _is_tensor_like(learning_rate):
    return
  value = _as_number(
    learning_rate,
    "learning_rate",
    "a non-negative number, a scalar float Tensor or a callable returning one",
  )
  if value is not None and not (math.isfinite(value) and value >= 0):
    raise ValueError(
      "learning_rate must be non-negative and finite, got {!r}.".format(
        learning_rate
      )
    )


def check_norm_constraint(norm_constraint):
  """Rejects a KL-clipping bound that is not positive (None passes)."""
  if norm_constraint is None:
    return
  value = _as_number(
    norm_constraint,
    "norm_constraint",
    "None, a positive number or a scalar float Tensor",
  )
  if value is not None and not value > 0:
    raise ValueError(
      "norm_constraint must be positive (or None), got {!r}.".format(
        norm_constraint
      )
    )


def check_momentum(momentum):
  """Rejects a momentum that is not a number (None passes: checked later)."""
  if momentum is None:
    return
  value = _as_number(momentum, "momentum", "a number or a scalar float Tensor")
  if value is not None and not math.isfinite(value):
    raise ValueError("momentum must be finite, got {!r}.".format(momentum))


def check_layer_collection(layer_collection, expected_types):
  """Rejects a `layer_collection` that is not a LayerCollection."""
  if not isinstance(layer_collection, expected_types):
    raise TypeError(
      "layer_collection must be a kfac.layer_collection.LayerCollection, "
      "got {!r}.".format(layer_collection)
    )


def runtime_checks(
  damping=None,
  cov_ema_decay=None,
  learning_rate=None,
  momentum=None,
  norm_constraint=None,
):
  """Assertion ops for the Tensor-valued settings among the arguments.

  Python values (already checked) and None are skipped. The ops are built
  under `CHECK_SCOPE`; each fails the `session.run` that runs it with an
  `InvalidArgumentError` naming the setting.

  Args:
    damping: The damping (must be finite and > 0).
    cov_ema_decay: The covariance decay (must lie in [0, 1]).
    learning_rate: The learning rate (finite, >= 0).
    momentum: The momentum (finite).
    norm_constraint: The KL-clipping bound (> 0).

  Returns:
    A list of ops (empty if no setting is a Tensor).
  """
  checks = []
  with tf.name_scope(CHECK_SCOPE):

    def add(value, name, condition, requirement):
      if not _is_tensor_like(value):
        return
      value = tf.cast(value, tf.float32)
      checks.append(
        tf.debugging.Assert(
          tf.logical_and(
            tf.reduce_all(condition(value)),
            tf.reduce_all(tf.math.is_finite(value))
            if name != "norm_constraint"
            else True,
          ),
          ["{} must be {}; got".format(name, requirement), value],
        )
      )

    add(damping, "damping", lambda v: v > 0, "positive and finite")
    add(
      cov_ema_decay,
      "cov_ema_decay",
      lambda v: tf.logical_and(v >= 0, v <= 1),
      "in [0, 1]",
    )
    add(
      learning_rate,
      "learning_rate",
      lambda v: v >= 0,
      "non-negative and finite",
    )
    add(momentum, "momentum", lambda v: tf.equal(v, v), "finite")
    add(norm_constraint, "norm_constraint", lambda v: v > 0, "positive")
  return checks
