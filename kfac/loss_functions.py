"""The predictive-distribution losses that K-FAC estimates curvature from.

Each loss is the negative log-likelihood of targets under a predictive
distribution whose parameters are the network's outputs, summed (not
averaged) over the batch. Besides evaluating the loss, a loss object knows the
curvature of the loss with respect to its inputs: the Fisher information
matrix F of the predictive distribution and the Hessian H of the loss, both
block-diagonal over the batch, and factors B with B Bᵀ = F (or H). The
estimator uses these to form sampled, exact or curvature-propagation
estimates of the Fisher of the whole network.

Shapes: "inputs" (the distribution's parameters) have a leading batch
dimension; the factor B of one batch row maps a vector of the "inner" shape
(`fisher_factor_inner_shape` without the batch dimension) to a vector shaped
like that row of the inputs.

The distributions are small private helpers built on TensorFlow's own ops
(`tf.nn.*`, `tf.random.*`).
"""

import abc
import contextlib
import math
import numbers

import numpy as np

import tensorflow as tf

from kfac import _checks
from kfac import _releases
from kfac import _surface

# The 1.4 public names, from the one surface table.
__all__ = list(sorted(_surface.public_names("1.4", "loss_functions")))


class _LegacyAssertionError(ValueError, AssertionError):
  """Bad argument where TF 1.4 failed an `assert`.

  It is a `ValueError`, like every other bad argument in `kfac`, and an
  `AssertionError`, the type the legacy code raised, so that code catching
  either keeps working (and the check survives `python -O`).
  """


# The release faces (`kfac._face_members`) re-host loss methods that convert
# their arguments by these names.
_as_tensor = _checks.as_tensor
_float_param = _checks.float_param


def _cast_targets(targets, dtype):
  """Casts real (float, integer or bool) targets to the floating `dtype`."""
  targets = _checks.as_tensor(targets, "targets")
  targets_dtype = tf.as_dtype(targets.dtype).base_dtype
  if not (
    targets_dtype.is_floating
    or targets_dtype.is_integer
    or targets_dtype.is_bool
  ):
    raise TypeError(
      "targets must be real-valued, got dtype {}.".format(targets_dtype.name)
    )
  if targets_dtype != dtype:
    targets = tf.cast(targets, dtype)
  return targets


def _check_class_ids(targets):
  """Raises TypeError unless `targets` (a Tensor) has an integer dtype."""
  dtype = tf.as_dtype(targets.dtype).base_dtype
  if not dtype.is_integer:
    raise TypeError(
      "targets must be integer class ids, got dtype {}.".format(dtype.name)
    )


def _check_one_hot_index(index, size):
  """Returns the single coordinate of `index`, checking it lies in [0, size).

  Raises:
    AssertionError: (also a ValueError) If `len(index) != 1`.
    ValueError: If the coordinate is out of range.
  """
  if len(index) != 1:
    raise _LegacyAssertionError(
      "Length of index was {}; index must have exactly one coordinate.".format(
        len(index)
      )
    )
  position = int(index[0])
  if not 0 <= position < size:
    raise ValueError(
      "index[0] must lie in [0, {}), got {}.".format(size, position)
    )
  return position


def _static_dim(tensor, axis, arg_name):
  """Returns the static size of a `[batch_size, dim]` Tensor along `axis`.

  Raises:
    ValueError: If `tensor` is not 2-D or the size is unknown.
  """
  _checks.check_matrix(tensor, arg_name)
  size = _checks.static_dim(tensor, axis)
  if size is None:
    raise ValueError(
      "{} must have a known static size along axis {}, got shape {}.".format(
        arg_name, axis, _checks.format_shape(tensor)
      )
    )
  return int(size)


class _Distribution(object):
  """Base of the private predictive distributions (the `tf.distributions` layout).

  TF 1.4's losses were built on `tf.distributions.Normal`, `Categorical`
  and `Bernoulli`. Each of those opens a name scope named after its class
  when it is created (`Normal`, then `Normal_1`, ...) and builds its ops
  under `<scope>/sample/` and `<scope>/log_prob/`. The estimator
  differentiates the sampled loss, and the gradient tensors it gets are named
  after these ops (e.g. `gradients/Categorical/log_prob/mul_grad/Reshape`);
  those names become part of the output factors' variable names, which
  legacy checkpoints store. So the subclasses create the same ops, in the
  same order and under the same scopes, with public TensorFlow ops only. The
  sampled values are those of the legacy classes too (same random ops, same
  shapes, same seeds).

  Subclasses set `_scope` (the scope string, ending in "/"),
  `_graph_parents`, the static `batch_shape`, and implement
  `_dynamic_batch_shape`, `_sample_n` and `_log_prob`.
  """

  _scope = None
  _graph_parents = ()

  @contextlib.contextmanager
  def _method_scope(self, name, values):
    """Enters `<distribution scope>/<name>/`, as `tf.distributions` did."""
    with tf.compat.v1.name_scope(self._scope):
      with tf.compat.v1.name_scope(
        name, values=list(values) + list(self._graph_parents)
      ) as scope:
        yield scope

  def _batch_shape_tensor(self):
    """The batch shape as a 1-D int32 Tensor (a constant when known)."""
    with self._method_scope("batch_shape_tensor", []):
      if self.batch_shape.is_fully_defined():
        return tf.convert_to_tensor(
          self.batch_shape.as_list(), dtype=tf.int32, name="batch_shape"
        )
      return self._dynamic_batch_shape()

  def sample(self, seed=None):
    """Draws one sample, shaped like the batch (op-level `seed`).

    Args:
      seed: Optional int, the op-level random seed.

    Returns:
      A Tensor of shape `batch_shape`.
    """
    with self._method_scope("sample", []):
      sample_shape = tf.convert_to_tensor(
        (), dtype=tf.int32, name="sample_shape"
      )
      samples = self._sample_n(np.int32(1), seed)
      batch_event_shape = tf.shape(samples)[1:]
      final_shape = tf.concat([sample_shape, batch_event_shape], 0)
      samples = tf.reshape(samples, final_shape)
      samples.set_shape(self.batch_shape)
      return samples

  def log_prob(self, value):
    """Elementwise log-likelihood of `value` (built under `log_prob/`).

    Args:
      value: The observed values (Tensor or convertible).

    Returns:
      A Tensor of log-likelihoods, shaped like the broadcast batch.
    """
    with self._method_scope("log_prob", [value]):
      return self._log_prob(value)


class _LazyDistribution(object):
  """A concrete loss's distribution, built when `build()` is called."""

  def __init__(self, build):
    self.build = build


class _Normal(_Distribution):
  """Elementwise normal distribution N(loc, scale²).

  Ops: `Normal/loc`, `Normal/scale` (identities) at creation; the log
  density `−½ z² − (½ log 2π + log scale)` with `z = (x − loc) / scale`
  built in `log_prob/standardize/`.
  """

  def __init__(self, loc, scale, name="Normal"):
    with tf.compat.v1.name_scope(name, values=[loc, scale]) as scope:
      if not tf.is_tensor(scale):
        # A Python number becomes a constant of the mean's dtype.
        scale = tf.convert_to_tensor(scale, dtype=loc.dtype)
      self.loc = tf.identity(loc, name="loc")
      self.scale = tf.identity(scale, name="scale")
    self._scope = scope
    self._graph_parents = [self.loc, self.scale]
    self.batch_shape = tf.broadcast_static_shape(
      self.loc.shape, self.scale.shape
    )

  def _dynamic_batch_shape(self):
    return tf.broadcast_dynamic_shape(tf.shape(self.loc), tf.shape(self.scale))

  def _sample_n(self, n, seed):
    """Draws loc + scale·ε with ε ~ N(0, 1), shape `[n] + batch_shape`."""
    shape = tf.concat([[n], self._batch_shape_tensor()], 0)
    sampled = tf.random.normal(
      shape=shape, mean=0.0, stddev=1.0, dtype=self.loc.dtype, seed=seed
    )
    return sampled * self.scale + self.loc

  def _log_prob(self, x):
    """log N(x; loc, scale²); real-valued x is cast to the loc's dtype."""
    x = _cast_targets(x, self.loc.dtype)
    with tf.compat.v1.name_scope("standardize", values=[x]):
      z = (x - self.loc) / self.scale
    log_unnormalized = -0.5 * tf.square(z)
    log_normalization = 0.5 * math.log(2.0 * math.pi) + tf.math.log(self.scale)
    return log_unnormalized - log_normalization


class _Categorical(_Distribution):
  """Categorical distributions over the last axis of `logits`.

  Ops: `Categorical/probs` (softmax) and the shape helpers at creation;
  `log_prob` broadcasts the logits against the class ids with a product
  (`log_prob/mul`) unless their static shapes are known to agree.
  """

  def __init__(self, logits, name="Categorical"):
    with tf.compat.v1.name_scope(name, values=[logits]) as scope:
      with tf.compat.v1.name_scope(scope, values=[None, logits]):
        self.logits = logits
        self.probs = tf.nn.softmax(logits, name="probs")
      static_shape = self.logits.shape.with_rank_at_least(1)
      logits_shape = tf.shape(self.logits, name="logits_shape")
      num_classes = tf.compat.dimension_value(static_shape[-1])
      if num_classes is not None:
        self._event_size = tf.convert_to_tensor(
          num_classes, dtype=tf.int32, name="event_size"
        )
      else:
        with tf.compat.v1.name_scope("event_size"):
          self._event_size = logits_shape[-1]
      if static_shape[:-1].is_fully_defined():
        self._batch_shape_val = tf.constant(
          static_shape[:-1].as_list(), dtype=tf.int32, name="batch_shape"
        )
      else:
        with tf.compat.v1.name_scope("batch_shape"):
          self._batch_shape_val = logits_shape[:-1]
    self._scope = scope
    self._graph_parents = [self.logits, self.probs]
    self.batch_shape = self.logits.shape[:-1]

  def _dynamic_batch_shape(self):
    return tf.identity(self._batch_shape_val)

  def _sample_n(self, n, seed):
    """Draws int32 class ids of shape `[n] + batch_shape`."""
    if self.logits.shape.ndims == 2:
      logits_2d = self.logits
    else:
      logits_2d = tf.reshape(self.logits, [-1, self._event_size])
    draws = tf.random.categorical(logits_2d, n, dtype=tf.int32, seed=seed)
    # Non-finite logits make the sampler return `num_classes`, an invalid
    # class id on which the sampled loss would raise; keep ids in range (a
    # no-op for finite logits) so the statistics just become non-finite.
    draws = tf.clip_by_value(draws, 0, self._event_size - 1)
    draws = tf.reshape(
      tf.transpose(draws), tf.concat([[n], self._batch_shape_tensor()], 0)
    )
    return tf.cast(draws, tf.int32)

  def _log_prob(self, k):
    """log softmax(logits)[k], broadcasting integer k against the batch."""
    k = tf.convert_to_tensor(k, dtype_hint=tf.int32, name="value")
    _check_class_ids(k)
    logits = self.logits
    known = (
      logits.shape.ndims is not None
      and logits.shape[:-1].is_fully_defined()
      and k.shape.is_fully_defined()
    )
    if not known or logits.shape[:-1] != k.shape:
      logits = logits * tf.ones_like(k[..., tf.newaxis], dtype=logits.dtype)
      k = k * tf.ones(tf.shape(logits)[:-1], dtype=k.dtype)
      if logits.shape.ndims is not None:
        k.set_shape(logits.shape[:-1])
    return -tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=k, logits=logits
    )


class _Bernoulli(_Distribution):
  """Independent Bernoulli distributions with P(1) = sigmoid(logits).

  Ops: `Bernoulli/probs` (sigmoid) at creation; `log_prob` broadcasts with
  products by ones (`log_prob/mul`, `log_prob/mul_1`) unless the static
  shapes are known to agree.
  """

  def __init__(self, logits, name="Bernoulli"):
    with tf.compat.v1.name_scope(name) as scope:
      with tf.compat.v1.name_scope(scope, values=[None, logits]):
        self.logits = logits
        self.probs = tf.sigmoid(logits, name="probs")
    self._scope = scope
    self._graph_parents = [self.logits, self.probs]
    self.batch_shape = self.logits.shape

  def _dynamic_batch_shape(self):
    return tf.shape(self.logits)

  def _sample_n(self, n, seed):
    """Draws int32 0/1 values of shape `[n] + batch_shape`."""
    new_shape = tf.concat([[n], self._batch_shape_tensor()], 0)
    uniform = tf.random.uniform(new_shape, seed=seed, dtype=self.probs.dtype)
    return tf.cast(tf.less(uniform, self.probs), tf.int32)

  def _log_prob(self, event):
    """log P(event) elementwise, event cast to the logits' dtype."""
    event = tf.convert_to_tensor(event, dtype_hint=tf.int32, name="value")
    event = tf.cast(event, self.logits.dtype)
    logits = self.logits
    if not (
      event.shape.is_fully_defined()
      and logits.shape.is_fully_defined()
      and event.shape == logits.shape
    ):
      logits, event = (
        tf.ones_like(event) * logits,
        tf.ones_like(logits) * event,
      )
    return -tf.nn.sigmoid_cross_entropy_with_logits(labels=event, logits=logits)


class LossFunction(object, metaclass=abc.ABCMeta):
  """Abstract base of the losses a LayerCollection registers.

  A loss maps its `inputs` (e.g. the network's output logits) and targets to
  a scalar, and provides products with its Hessian H with respect to the
  inputs and with a factor B of it (B Bᵀ = H).
  """

  def __init__(self, targets=None):
    """Stores the targets.

    Args:
      targets: Optional Tensor of targets; needed by `evaluate`.
    """
    self._targets = targets

  @property
  @abc.abstractmethod
  def inputs(self):
    """The inputs to the loss (a Tensor, or a tuple of Tensors)."""

  def evaluate(self):
    """Evaluates the loss on the targets given at construction.

    No gradient flows into the targets.

    Returns:
      A scalar Tensor: the loss summed over the batch.

    Raises:
      Exception: If no targets were given (a plain `Exception`, as in the
        legacy code).
    """
    if self._targets is not None:
      return self._evaluate(tf.stop_gradient(self._targets))
    raise Exception("Cannot evaluate losses with unspecified targets.")  # pylint: disable=broad-exception-raised

  @abc.abstractmethod
  def _evaluate(self, targets):
    """Evaluates the loss on `targets` (summed over the batch)."""

  @abc.abstractmethod
  def multiply_hessian(self, vector):
    """Multiplies a vector by the Hessian of the loss w.r.t. its inputs.

    Args:
      vector: A Tensor shaped like `inputs`.

    Returns:
      H·vector, shaped like `inputs`.
    """

  @abc.abstractmethod
  def multiply_hessian_factor(self, vector):
    """Multiplies a vector by a factor B of the Hessian (B Bᵀ = H).

    Args:
      vector: A Tensor of shape `hessian_factor_inner_shape`.

    Returns:
      B·vector, shaped like `inputs`.
    """

  @abc.abstractmethod
  def multiply_hessian_factor_transpose(self, vector):
    """Multiplies a vector by the transpose Bᵀ of the Hessian factor.

    Args:
      vector: A Tensor shaped like `inputs`.

    Returns:
      Bᵀ·vector, of shape `hessian_factor_inner_shape`.
    """

  @abc.abstractmethod
  def multiply_hessian_factor_replicated_one_hot(self, index):
    """Multiplies the Hessian factor by a replicated one-hot vector.

    The replicated one-hot vector has, in every batch row, 1.0 at the inner
    coordinates `index` and 0.0 elsewhere, so the result is the column
    `index` of every row's factor B.

    Args:
      index: A tuple of ints, one per inner (non-batch) dimension of
        `hessian_factor_inner_shape`.

    Returns:
      B·(replicated one-hot), shaped like `inputs`.
    """

  @property
  @abc.abstractmethod
  def hessian_factor_inner_shape(self):
    """The shape of the argument of `multiply_hessian_factor` (a 1-D Tensor)."""

  @property
  @abc.abstractmethod
  def hessian_factor_inner_static_shape(self):
    """The static version of `hessian_factor_inner_shape`."""


class NegativeLogProbLoss(LossFunction):
  """Abstract base class for negative log-likelihood losses.

  The loss is −Σ log p(targets | params) over the batch, p being a predictive
  distribution with parameters `params`. Its Fisher F (w.r.t. `params`) is
  E_{y~p}[∇ log p(y) ∇ log p(y)ᵀ], with factors B Bᵀ = F.
  """

  def __init__(self, targets=None, seed=None):
    """Stores the targets and the default sampling seed.

    Args:
      targets: Optional Tensor of targets; needed by `evaluate`.
      seed: Optional int, the default op-level seed of `evaluate_on_sample`.
    """
    self._default_seed = seed
    super(NegativeLogProbLoss, self).__init__(targets=targets)

  @property
  def inputs(self):
    """The inputs to the loss: the distribution's `params`."""
    return self.params

  @property
  @abc.abstractmethod
  def params(self):
    """The parameters of the predictive distribution."""

  @abc.abstractmethod
  def multiply_fisher(self, vector):
    """Multiplies a vector by the Fisher F w.r.t. `params`.

    Args:
      vector: A Tensor shaped like `params`.

    Returns:
      F·vector, shaped like `params`.
    """

  @abc.abstractmethod
  def multiply_fisher_factor(self, vector):
    """Multiplies a vector by a factor B of the Fisher (B Bᵀ = F).

    Args:
      vector: A Tensor of shape `fisher_factor_inner_shape`.

    Returns:
      B·vector, shaped like `params`.
    """

  @abc.abstractmethod
  def multiply_fisher_factor_transpose(self, vector):
    """Multiplies a vector by the transpose Bᵀ of the Fisher factor.

    Args:
      vector: A Tensor shaped like `params`.

    Returns:
      Bᵀ·vector, of shape `fisher_factor_inner_shape`.
    """

  @abc.abstractmethod
  def multiply_fisher_factor_replicated_one_hot(self, index):
    """Multiplies the Fisher factor by a replicated one-hot vector.

    The replicated one-hot vector has, in every batch row, 1.0 at the inner
    coordinates `index` and 0.0 elsewhere, so the result is the column
    `index` of every row's factor B.

    Args:
      index: A tuple of ints, one per inner (non-batch) dimension of
        `fisher_factor_inner_shape`.

    Returns:
      B·(replicated one-hot), shaped like `params`.
    """

  @property
  @abc.abstractmethod
  def fisher_factor_inner_shape(self):
    """The shape of the argument of `multiply_fisher_factor` (a 1-D Tensor)."""

  @property
  @abc.abstractmethod
  def fisher_factor_inner_static_shape(self):
    """The static version of `fisher_factor_inner_shape` (a TensorShape)."""

  @abc.abstractmethod
  def sample(self, seed):
    """Draws one sample of targets from the predictive distribution.

    Args:
      seed: Optional int, the op-level random seed.

    Returns:
      A Tensor of sampled targets.
    """

  def evaluate_on_sample(self, seed=None):
    """Evaluates the loss on targets sampled from the predictive distribution.

    No gradient flows into the sample.

    Args:
      seed: Optional int op-level seed; defaults to the `seed` given at
        construction.

    Returns:
      A scalar Tensor: the loss on the sample, summed over the batch.
    """
    if seed is None:
      seed = self._default_seed
    return self._evaluate(tf.stop_gradient(self.sample(seed)))


class NaturalParamsNegativeLogProbLoss(NegativeLogProbLoss):
  """Abstract negative log-likelihood in the distribution's natural parameters.

  For an exponential family parameterized by its natural parameters the
  Hessian of the negative log-likelihood equals the Fisher, whatever the
  targets, so every Hessian method here is its Fisher counterpart.
  """

  def multiply_hessian(self, vector):
    """Multiplies a vector by the Hessian, which equals the Fisher.

    Args:
      vector: A Tensor shaped like `params`.

    Returns:
      H·vector = F·vector, shaped like `params`.
    """
    return self.multiply_fisher(vector)

  def multiply_hessian_factor(self, vector):
    """Multiplies a vector by the Hessian factor (= the Fisher factor).

    Args:
      vector: A Tensor of shape `hessian_factor_inner_shape`.

    Returns:
      B·vector, shaped like `params`.
    """
    return self.multiply_fisher_factor(vector)

  def multiply_hessian_factor_transpose(self, vector):
    """Multiplies a vector by the transposed Hessian (= Fisher) factor.

    Args:
      vector: A Tensor shaped like `params`.

    Returns:
      Bᵀ·vector, of shape `hessian_factor_inner_shape`.
    """
    return self.multiply_fisher_factor_transpose(vector)

  def multiply_hessian_factor_replicated_one_hot(self, index):
    """Columns `index` of the Hessian (= Fisher) factor, for every row.

    Args:
      index: A tuple of ints, one per inner (non-batch) dimension.

    Returns:
      A Tensor shaped like `params`.
    """
    return self.multiply_fisher_factor_replicated_one_hot(index)

  @property
  def hessian_factor_inner_shape(self):
    """The Hessian factor's inner shape: `fisher_factor_inner_shape`."""
    return self.fisher_factor_inner_shape

  @property
  def hessian_factor_inner_static_shape(self):
    """The static Hessian factor inner shape (a TensorShape).

    This is `fisher_factor_inner_static_shape` (the legacy code returned the
    dynamic shape here; see docs/compatibility.md).
    """
    return self.fisher_factor_inner_static_shape


class DistributionNegativeLogProbLoss(NegativeLogProbLoss):
  """Abstract negative log-likelihood of a given distribution object.

  The loss is −Σ dist.log_prob(targets), summed over all elements, and
  samples are drawn with dist.sample.
  """

  def __init__(self, dist, targets=None, seed=None):
    """Stores the distribution, the targets and the default seed.

    Args:
      dist: The predictive distribution: an object with methods
        `log_prob(targets)` (elementwise log-likelihoods) and
        `sample(seed=...)`.
      targets: Optional Tensor of targets; needed by `evaluate`.
      seed: Optional int, the default op-level seed of `evaluate_on_sample`.
    """
    if isinstance(dist, _LazyDistribution):
      # The concrete losses' own distribution: built here, except in the
      # releases (1.8+) that build a new one on every access of `dist`.
      deferred = _releases.of(self).construction == "deferred"
      dist = None if deferred else dist.build()
    self._dist = dist
    super(DistributionNegativeLogProbLoss, self).__init__(
      targets=targets, seed=seed
    )

  def _evaluate(self, targets):
    """Returns −Σ log p(targets) over all elements."""
    return -tf.reduce_sum(self._dist.log_prob(targets))

  def sample(self, seed):
    """Draws one sample of targets from the predictive distribution.

    Args:
      seed: Optional int, the op-level random seed. Two sample ops built with
        the same seed in one graph draw the same values.

    Returns:
      A Tensor of sampled targets.
    """
    return self._dist.sample(seed=seed)


class NormalMeanNegativeLogProbLoss(
  DistributionNegativeLogProbLoss, NaturalParamsNegativeLogProbLoss
):
  """Negative log-likelihood of a normal with fixed variance, in its mean.

  loss = Σ_{b,j} [(t_bj − μ_bj)²/(2·var) + ½ log(2π·var)].
  The Fisher (and Hessian) w.r.t. the mean μ is F = I/var, with factor
  B = var^{-1/2} I. This is the squared-error loss up to scale and constant.
  """

  def __init__(self, mean, var=0.5, targets=None, seed=None):
    """Creates the loss.

    Args:
      mean: Float Tensor of the predicted means, usually `[batch_size, dim]`;
        a 1-D `[batch_size]` (e.g. a value head) or any other shape works
        for evaluation, sampling and the Fisher products, and
        `multiply_fisher_factor_replicated_one_hot` (estimation mode
        "exact") needs `[batch_size, dim]`.
      var: Positive float (or float Tensor broadcastable to `mean`'s shape,
        of `mean`'s dtype), the variance.
      targets: Optional Tensor of real targets shaped like `mean` (cast to
        `mean`'s dtype).
      seed: Optional int, the default op-level seed of `evaluate_on_sample`.

    Raises:
      ValueError: If `var` is a non-positive number.
      TypeError: If `mean` or `var` is not floating point, or `var` has
        another dtype than `mean`.
    """
    self._mean = _checks.float_param(mean, "mean", matrix=False)
    if isinstance(var, numbers.Real) and not isinstance(var, bool):
      if var <= 0:
        raise ValueError("var must be positive, got {}.".format(var))
    if isinstance(var, numbers.Real) and not isinstance(var, bool):
      # A number stays a Python number, as in TF 1.4: the scale var**0.5 and
      # the products with 1/var and var**-0.5 then create no extra ops
      # (their name counters end up in variable names).
      self._var = float(var)
      scale = self._var**0.5
    else:
      self._var = _checks.same_dtype_param(var, self._mean.dtype, "var")
      scale = self._var**0.5
    dist = _LazyDistribution(lambda: _Normal(loc=self._mean, scale=scale))
    super(NormalMeanNegativeLogProbLoss, self).__init__(
      dist=dist, targets=targets, seed=seed
    )

  @property
  def params(self):
    """The mean, of shape `[batch_size, dim]`."""
    return self._mean

  def multiply_fisher(self, vector):
    """Returns F·vector = vector / var.

    Args:
      vector: A Tensor shaped like the mean.

    Returns:
      A Tensor shaped like the mean.
    """
    return (1.0 / self._var) * vector

  def multiply_fisher_factor(self, vector):
    """Returns B·vector = var^{-1/2}·vector.

    Args:
      vector: A Tensor shaped like the mean.

    Returns:
      A Tensor shaped like the mean.
    """
    return self._var**-0.5 * vector

  def multiply_fisher_factor_transpose(self, vector):
    """Returns Bᵀ·vector = var^{-1/2}·vector (B is symmetric).

    Args:
      vector: A Tensor shaped like the mean.

    Returns:
      A Tensor shaped like the mean.
    """
    return self.multiply_fisher_factor(vector)

  def multiply_fisher_factor_replicated_one_hot(self, index):
    """Column `index[0]` of B for every row: var^{-1/2} at that coordinate.

    Args:
      index: A 1-tuple `(j,)` with 0 <= j < dim.

    Returns:
      A Tensor of shape `[batch_size, dim]`, zero except column j, which
      holds var^{-1/2}.

    Raises:
      AssertionError: (also a ValueError) If `len(index) != 1`.
      ValueError: If j is out of range or dim is not statically known.
    """
    dim = _static_dim(self._mean, 1, "mean")
    position = _check_one_hot_index(index, dim)
    scale = self._var**-0.5 * tf.ones_like(self._mean)
    return insert_slice_in_zeros(
      scale[:, position : position + 1], 1, dim, position
    )

  @property
  def fisher_factor_inner_shape(self):
    """`tf.shape(mean)`: the factor's inner space is the mean's space."""
    return tf.shape(self._mean)

  @property
  def fisher_factor_inner_static_shape(self):
    """The static shape of the mean."""
    return self._mean.shape


class NormalMeanVarianceNegativeLogProbLoss(DistributionNegativeLogProbLoss):
  """Negative log-likelihood of a normal in both its mean and variance.

  loss = Σ_{b,j} [(t_bj − μ_bj)²/(2 v_bj) + ½ log(2π v_bj)]. Per coordinate
  the Fisher w.r.t. (μ, v) is diag(1/v, 1/(2v²)), with factor
  diag(1/√v, 1/(√2·v)). The parameters are not natural, so the Hessian is
  not the Fisher; the Hessian methods are not provided.

  The inner space of the factor concatenates the mean and variance parts
  along the last axis: shape `[batch_size, 2·dim]`.
  """

  def __init__(self, mean, variance, targets=None, seed=None):
    """Creates the loss.

    Args:
      mean: Float Tensor of shape `[batch_size, dim]`, the predicted means.
      variance: Positive float Tensor of shape `[batch_size, dim]` and
        `mean`'s dtype, the predicted variances.
      targets: Optional Tensor of shape `[batch_size, dim]` of real targets
        (cast to `mean`'s dtype).
      seed: Optional int, the default op-level seed of `evaluate_on_sample`.

    Raises:
      AssertionError: (also a ValueError) If `mean` or `variance` is not 2-D.
      TypeError: If `mean` or `variance` is not floating point, or their
        dtypes differ.
    """
    self._mean = _checks.float_param(mean, "mean", error=_LegacyAssertionError)
    self._variance = _checks.float_param(
      variance, "variance", error=_LegacyAssertionError
    )
    _checks.same_dtype_param(self._variance, self._mean.dtype, "variance")
    self._scale = tf.sqrt(self._variance)
    dist = _LazyDistribution(lambda: _Normal(loc=self._mean, scale=self._scale))
    super(NormalMeanVarianceNegativeLogProbLoss, self).__init__(
      dist=dist, targets=targets, seed=seed
    )

  @property
  def params(self):
    """The tuple `(mean, variance)`."""
    return self._mean, self._variance

  def _fisher_mean(self):
    return 1.0 / self._variance

  def _fisher_mean_factor(self):
    return 1.0 / self._scale

  def _fisher_var(self):
    return 1.0 / (2.0 * tf.square(self._variance))

  def _fisher_var_factor(self):
    return 1.0 / (math.sqrt(2.0) * self._variance)

  def multiply_fisher(self, vecs):
    """Returns F·(v_mean, v_var) = (v_mean/v, v_var/(2v²)).

    Args:
      vecs: A pair `(mean_vec, var_vec)` of Tensors shaped like the mean.

    Returns:
      A pair of Tensors shaped like the mean.
    """
    mean_vec, var_vec = vecs
    return (self._fisher_mean() * mean_vec, self._fisher_var() * var_vec)

  def multiply_fisher_factor(self, vecs):
    """Returns B·u for u of the inner shape `[batch_size, 2·dim]`.

    The first half of u's last axis multiplies 1/√v (mean part), the second
    half 1/(√2·v) (variance part).

    Args:
      vecs: A Tensor of shape `[batch_size, 2·dim]`.

    Returns:
      A pair of Tensors shaped like the mean: (mean part, variance part).
    """
    mean_vec, var_vec = tf.split(vecs, 2, axis=-1)
    return (
      self._fisher_mean_factor() * mean_vec,
      self._fisher_var_factor() * var_vec,
    )

  def multiply_fisher_factor_transpose(self, vecs):
    """Returns Bᵀ·(v_mean, v_var), concatenated to the inner shape.

    Args:
      vecs: A pair `(mean_vec, var_vec)` of Tensors shaped like the mean.

    Returns:
      A Tensor of shape `[batch_size, 2·dim]`:
      `concat([v_mean/√v, v_var/(√2·v)], axis=-1)`.
    """
    mean_vec, var_vec = vecs
    return tf.concat(
      [
        self._fisher_mean_factor() * mean_vec,
        self._fisher_var_factor() * var_vec,
      ],
      axis=-1,
    )

  def multiply_fisher_factor_replicated_one_hot(self, index):
    """Column `index[0]` of B for every row.

    For j < dim this is 1/√v in column j of the mean part (variance part
    zero); for j >= dim it is 1/(√2·v) in column j − dim of the variance
    part (mean part zero).

    Args:
      index: A 1-tuple `(j,)` with 0 <= j < 2·dim.

    Returns:
      A pair of Tensors of shape `[batch_size, dim]`.

    Raises:
      AssertionError: (also a ValueError) If `len(index) != 1`.
      ValueError: If j is out of range or dim is not statically known.
    """
    dim = _static_dim(self._mean, 1, "mean")
    position = _check_one_hot_index(index, 2 * dim)
    if position < dim:
      column = self._fisher_mean_factor()[:, position : position + 1]
      mean_output = insert_slice_in_zeros(column, 1, dim, position)
      var_output = tf.zeros_like(mean_output)
    else:
      position -= dim
      column = self._fisher_var_factor()[:, position : position + 1]
      var_output = insert_slice_in_zeros(column, 1, dim, position)
      mean_output = tf.zeros_like(var_output)
    return mean_output, var_output

  @property
  def fisher_factor_inner_shape(self):
    """`[batch_size, 2·dim]` as a 1-D int32 Tensor."""
    shape = tf.shape(self._mean)
    return tf.concat([shape[:-1], 2 * shape[-1:]], axis=0)

  @property
  def fisher_factor_inner_static_shape(self):
    """The static inner shape `[batch_size, 2·dim]` (a TensorShape).

    The legacy code returned `[dim, 2·dim]` here; see docs/compatibility.md.
    """
    shape = _checks.static_shape_list(self._mean)
    if shape is None:
      return tf.TensorShape(None)
    dim = shape[-1]
    return tf.TensorShape(shape[:-1] + [None if dim is None else 2 * dim])

  def multiply_hessian(self, vector):
    """Not provided: the Hessian is not the Fisher in these parameters.

    Args:
      vector: Unused.

    Raises:
      NotImplementedError: Always, as in the legacy code.
    """
    raise NotImplementedError()

  def multiply_hessian_factor(self, vector):
    """Not provided: the Hessian is not the Fisher in these parameters.

    Args:
      vector: Unused.

    Raises:
      NotImplementedError: Always, as in the legacy code.
    """
    raise NotImplementedError()

  def multiply_hessian_factor_transpose(self, vector):
    """Not provided: the Hessian is not the Fisher in these parameters.

    Args:
      vector: Unused.

    Raises:
      NotImplementedError: Always, as in the legacy code.
    """
    raise NotImplementedError()

  def multiply_hessian_factor_replicated_one_hot(self, index):
    """Not provided: the Hessian is not the Fisher in these parameters.

    Args:
      index: Unused.

    Raises:
      NotImplementedError: Always, as in the legacy code.
    """
    raise NotImplementedError()

  @property
  def hessian_factor_inner_shape(self):
    """Not provided; raises NotImplementedError, as in the legacy code."""
    raise NotImplementedError()

  @property
  def hessian_factor_inner_static_shape(self):
    """Not provided; raises NotImplementedError, as in the legacy code."""
    raise NotImplementedError()


class CategoricalLogitsNegativeLogProbLoss(
  DistributionNegativeLogProbLoss, NaturalParamsNegativeLogProbLoss
):
  """Softmax cross-entropy: negative log-likelihood of a categorical.

  loss = −Σ_b log softmax(z_b)[t_b]. With p = softmax(z) and q = √p, the
  Fisher (and Hessian) of a row w.r.t. the logits z is F = diag(p) − p pᵀ,
  and B = diag(q) − p qᵀ is a factor: B Bᵀ = F (since qᵀq = 1).
  """

  def __init__(self, logits, targets=None, seed=None):
    """Creates the loss.

    Args:
      logits: Float Tensor of shape `[batch_size, n_classes]`. As in
        TensorFlow 1.4 another rank is accepted here; the Fisher products
        raise `ValueError` for it.
      targets: Optional integer Tensor of shape `[batch_size]` of class ids.
      seed: Optional int, the default op-level seed of `evaluate_on_sample`.

    Raises:
      TypeError: If `logits` is not floating point or `targets` not integer.
    """
    self._logits = _checks.float_param(logits, "logits", matrix=False)
    if targets is not None:
      targets = _checks.as_tensor(targets, "targets")
      _check_class_ids(targets)
    super(CategoricalLogitsNegativeLogProbLoss, self).__init__(
      dist=_LazyDistribution(lambda: _Categorical(self._logits)),
      targets=targets,
      seed=seed,
    )

  @property
  def params(self):
    """The logits, of shape `[batch_size, n_classes]`."""
    return self._logits

  @property
  def _probs(self):
    return self._dist.probs

  @property
  def _sqrt_probs(self):
    return tf.sqrt(self._probs)

  def multiply_fisher(self, vector):
    """Returns F·v = v⊙p − (Σ_k v_k p_k)·p for every row.

    Args:
      vector: A Tensor of shape `[batch_size, n_classes]`.

    Returns:
      A Tensor of shape `[batch_size, n_classes]`.

    Raises:
      ValueError: If `logits` is not 2-D (TensorFlow 1.4 computed a wrong
        product).
    """
    _checks.check_matrix(self._logits, "logits")
    probs = self._probs
    return vector * probs - probs * tf.reduce_sum(
      vector * probs, axis=1, keepdims=True
    )

  def multiply_fisher_factor(self, vector):
    """Returns B·v = q⊙v − (Σ_k q_k v_k)·p for every row.

    Args:
      vector: A Tensor of shape `[batch_size, n_classes]`.

    Returns:
      A Tensor of shape `[batch_size, n_classes]`.

    Raises:
      ValueError: If `logits` is not 2-D (TensorFlow 1.4 computed a wrong
        product).
    """
    _checks.check_matrix(self._logits, "logits")
    probs = self._probs
    sqrt_probs = self._sqrt_probs
    return sqrt_probs * vector - probs * tf.reduce_sum(
      sqrt_probs * vector, axis=1, keepdims=True
    )

  def multiply_fisher_factor_transpose(self, vector):
    """Returns Bᵀ·v = q⊙v − (Σ_k p_k v_k)·q for every row.

    Args:
      vector: A Tensor of shape `[batch_size, n_classes]`.

    Returns:
      A Tensor of shape `[batch_size, n_classes]`.

    Raises:
      ValueError: If `logits` is not 2-D (TensorFlow 1.4 computed a wrong
        product).
    """
    _checks.check_matrix(self._logits, "logits")
    probs = self._probs
    sqrt_probs = self._sqrt_probs
    return sqrt_probs * vector - sqrt_probs * tf.reduce_sum(
      probs * vector, axis=1, keepdims=True
    )

  def multiply_fisher_factor_replicated_one_hot(self, index):
    """Column i = `index[0]` of B for every row: q_i·e_i − q_i·p.

    Args:
      index: A 1-tuple `(i,)` with 0 <= i < n_classes.

    Returns:
      A Tensor of shape `[batch_size, n_classes]`.

    Raises:
      AssertionError: (also a ValueError) If `len(index) != 1`.
      ValueError: If i is out of range or n_classes is not statically known.
    """
    n_classes = _static_dim(self._logits, 1, "logits")
    position = _check_one_hot_index(index, n_classes)
    sqrt_probs_slice = self._sqrt_probs[:, position : position + 1]
    padded_slice = insert_slice_in_zeros(
      sqrt_probs_slice, 1, n_classes, position
    )
    return padded_slice - self._probs * sqrt_probs_slice

  @property
  def fisher_factor_inner_shape(self):
    """`tf.shape(logits)`: the factor's inner space is the logits' space."""
    return tf.shape(self._logits)

  @property
  def fisher_factor_inner_static_shape(self):
    """The static shape of the logits."""
    return self._logits.shape


class MultiBernoulliNegativeLogProbLoss(
  DistributionNegativeLogProbLoss, NaturalParamsNegativeLogProbLoss
):
  """Sigmoid cross-entropy: negative log-likelihood of independent Bernoullis.

  loss = −Σ_{b,j} [t_bj log p_bj + (1 − t_bj) log(1 − p_bj)] with
  p = sigmoid(logits). The Fisher (and Hessian) w.r.t. the logits is
  F = diag(p(1 − p)), with factor B = diag(√(p(1 − p))).
  """

  def __init__(self, logits, targets=None, seed=None):
    """Creates the loss.

    Args:
      logits: Float Tensor of shape `[batch_size, dim]`; any other shape
        works too (elementwise), except for
        `multiply_fisher_factor_replicated_one_hot`.
      targets: Optional Tensor of 0/1 targets shaped like `logits` (any real
        dtype; cast to the logits' dtype).
      seed: Optional int, the default op-level seed of `evaluate_on_sample`.

    Raises:
      TypeError: If `logits` is not floating point.
    """
    self._logits = _checks.float_param(logits, "logits", matrix=False)
    super(MultiBernoulliNegativeLogProbLoss, self).__init__(
      dist=_LazyDistribution(lambda: _Bernoulli(self._logits)),
      targets=targets,
      seed=seed,
    )

  @property
  def _probs(self):
    return self._dist.probs

  @property
  def params(self):
    """The logits, of shape `[batch_size, dim]`."""
    return self._logits

  def multiply_fisher(self, vector):
    """Returns F·v = p(1 − p)⊙v.

    Args:
      vector: A Tensor of shape `[batch_size, dim]`.

    Returns:
      A Tensor of shape `[batch_size, dim]`.
    """
    return self._probs * (1 - self._probs) * vector

  def multiply_fisher_factor(self, vector):
    """Returns B·v = √(p(1 − p))⊙v.

    Args:
      vector: A Tensor of shape `[batch_size, dim]`.

    Returns:
      A Tensor of shape `[batch_size, dim]`.
    """
    return tf.sqrt(self._probs * (1 - self._probs)) * vector

  def multiply_fisher_factor_transpose(self, vector):
    """Returns Bᵀ·v = √(p(1 − p))⊙v (B is diagonal).

    Args:
      vector: A Tensor of shape `[batch_size, dim]`.

    Returns:
      A Tensor of shape `[batch_size, dim]`.
    """
    return self.multiply_fisher_factor(vector)

  def multiply_fisher_factor_replicated_one_hot(self, index):
    """Column j = `index[0]` of B for every row: √(p_j(1 − p_j)) at j.

    Args:
      index: A 1-tuple `(j,)` with 0 <= j < dim.

    Returns:
      A Tensor of shape `[batch_size, dim]`, zero except column j.

    Raises:
      AssertionError: (also a ValueError) If `len(index) != 1`.
      ValueError: If j is out of range or dim is not statically known.
    """
    dim = _static_dim(self._logits, 1, "logits")
    position = _check_one_hot_index(index, dim)
    probs_slice = self._probs[:, position : position + 1]
    output_slice = tf.sqrt(probs_slice * (1 - probs_slice))
    return insert_slice_in_zeros(output_slice, 1, dim, position)

  @property
  def fisher_factor_inner_shape(self):
    """`tf.shape(logits)`: the factor's inner space is the logits' space."""
    return tf.shape(self._logits)

  @property
  def fisher_factor_inner_static_shape(self):
    """The static shape of the logits."""
    return self._logits.shape


def insert_slice_in_zeros(slice_to_insert, dim, dim_size, position):
  """Pads a size-1 slice with zeros so that it sits at `position` along `dim`.

  For example `slice_to_insert` of shape `[2, 1, 3]`, `dim=1`, `dim_size=4`,
  `position=2` gives a `[2, 4, 3]` tensor `out` with `out[:, 2:3, :]` equal to
  the slice and zeros elsewhere.

  Args:
    slice_to_insert: A Tensor of known rank whose size along `dim` is 1.
    dim: int, the axis along which to pad (-rank <= dim < rank).
    dim_size: int, the size of the result along `dim`.
    position: int, the index along `dim` where the slice ends up
      (0 <= position < dim_size).

  Returns:
    A Tensor shaped like `slice_to_insert` except size `dim_size` along
    `dim`.

  Raises:
    ValueError: If the static size of `slice_to_insert` along `dim` is known
      and not 1, its rank is unknown, `dim` is out of range, or `position` is
      out of range.
  """
  slice_to_insert = _checks.as_tensor(slice_to_insert, "slice_to_insert")
  slice_shape = _checks.static_shape_list(slice_to_insert)
  rank = None if slice_shape is None else len(slice_shape)
  if rank is None:
    raise ValueError("slice_to_insert must have a known rank.")
  if not -rank <= dim < rank:
    raise ValueError(
      "dim must lie in [-{0}, {0}) for slice_to_insert of "
      "shape {1}, got {2}.".format(
        rank, _checks.format_shape(slice_to_insert), dim
      )
    )
  if slice_shape[dim] is not None and slice_shape[dim] != 1:
    raise ValueError(
      "Expected slice_to_insert.shape to have {} dim of 1, but was {}.".format(
        dim, slice_shape[dim]
      )
    )
  if (
    isinstance(position, numbers.Integral)
    and isinstance(dim_size, numbers.Integral)
    and not 0 <= position < dim_size
  ):
    raise ValueError(
      "position must lie in [0, dim_size={}), got {}.".format(
        dim_size, position
      )
    )

  before = [0] * rank
  after = before[:]
  before[dim] = position
  after[dim] = dim_size - position - 1
  return tf.pad(slice_to_insert, list(zip(before, after)))
