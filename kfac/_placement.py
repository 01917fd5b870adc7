"""`placement` of releases 1.8+ (`tensorflow.contrib.kfac.python.ops.placement`).

`RoundRobinPlacementMixin` gives a deferred `FisherEstimator` its
`make_vars_and_create_op_thunks`: factor `i`'s covariance variable and
update ops go to `cov_devices[i mod n]`, its inverse update ops to
`inv_devices[i mod m]`; inverse variables get no device (they live where the
caller's device context puts them).
"""

import tensorflow as tf

__all__ = ["RoundRobinPlacementMixin"]


def _make_thunk_on_device(func, device):
  """A thunk calling `func()` under `tf.device(device)` on every call."""

  def thunk():
    with tf.device(device):
      return func()

  return thunk


class RoundRobinPlacementMixin(object):
  """Places the estimator's ops on devices in a round-robin fashion (1.9).

  Mixed in before `FisherEstimator`; the constructor takes the two device
  lists and passes every other (keyword) argument on.
  """

  # Programs see this mix-in as a base of `FisherEstimatorRoundRobin`.
  _face_keep_base = True

  def __init__(self, cov_devices=None, inv_devices=None, **kwargs):
    """Stores the device lists.

    Args:
      cov_devices: Iterable of device strings for the covariance variables
        and ops, or None.
      inv_devices: Iterable of device strings for the inverse ops, or None.
      **kwargs: The estimator's arguments.
    """
    super(RoundRobinPlacementMixin, self).__init__(**kwargs)
    self._cov_devices = cov_devices
    self._inv_devices = inv_devices

  def make_vars_and_create_op_thunks(self, scope=None):
    """Creates every variable now; returns the update thunks.

    Args:
      scope: Variable scope of the factors' variables (default: the
        estimator's name).

    Returns:
      `(cov_update_thunks, inv_update_thunks)`, one per factor.
    """
    (
      cov_variable_thunks,
      cov_update_thunks,
      inv_variable_thunks,
      inv_update_thunks,
    ) = self.create_ops_and_vars_thunks(scope=scope)
    if self._cov_devices:
      cov_update_thunks = list(cov_update_thunks)
      for i, (variable_thunk, update_thunk) in enumerate(
        zip(cov_variable_thunks, cov_update_thunks)
      ):
        device = self._cov_devices[i % len(self._cov_devices)]
        with tf.device(device):
          variable_thunk()
        cov_update_thunks[i] = _make_thunk_on_device(update_thunk, device)
    else:
      for variable_thunk in cov_variable_thunks:
        variable_thunk()
    for variable_thunk in inv_variable_thunks:
      variable_thunk()
    if self._inv_devices:
      inv_update_thunks = [
        _make_thunk_on_device(
          thunk, self._inv_devices[i % len(self._inv_devices)]
        )
        for i, thunk in enumerate(inv_update_thunks)
      ]
    return cov_update_thunks, inv_update_thunks


class RoundRobinPlacementMixin18(RoundRobinPlacementMixin):
  """1.8's form: extra positional arguments are passed on too (quirk)."""

  _face_keep_base = True

  def __init__(self, cov_devices=None, inv_devices=None, *args, **kwargs):
    """Stores the device lists.

    Args:
      cov_devices: Iterable of device strings, or None.
      inv_devices: Iterable of device strings, or None.
      *args: Positional arguments passed on to the estimator.
      **kwargs: The estimator's keyword arguments.
    """
    super(RoundRobinPlacementMixin, self).__init__(*args, **kwargs)  # pylint: disable=bad-super-call
    self._cov_devices = cov_devices
    self._inv_devices = inv_devices

  def make_ops_and_vars(self, scope=None):
    """Creates variables and update ops (1.8 only).

    Args:
      scope: Variable scope (default: the estimator's name).

    Returns:
      `(cov_update_ops, cov_update_op, inv_update_ops, inv_update_op,
      cov_update_thunks, inv_update_thunks)`.
    """
    cov_update_thunks, inv_update_thunks = self.make_vars_and_create_op_thunks(
      scope=scope
    )
    cov_update_ops = [thunk() for thunk in cov_update_thunks]
    inv_update_ops = [thunk() for thunk in inv_update_thunks]
    scope = self.name if scope is None else scope
    with tf.compat.v1.variable_scope(scope):
      cov_update_op = tf.group(*cov_update_ops, name="cov_update_op")
      inv_update_op = tf.group(*inv_update_ops, name="inv_update_op")
    return (
      cov_update_ops,
      cov_update_op,
      inv_update_ops,
      inv_update_op,
      cov_update_thunks,
      inv_update_thunks,
    )


RoundRobinPlacementMixin18.__name__ = "RoundRobinPlacementMixin"
RoundRobinPlacementMixin18.__qualname__ = "RoundRobinPlacementMixin"
