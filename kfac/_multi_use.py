"""Shared-weight (multi-use, RNN) fully connected layers (releases 1.5-1.7).

A fully connected layer applied `T` times with the same weights (the uses,
or time steps, of a recurrent network) has the gradient
`Σ_u a_u g_uᵀ`. K-FAC approximates its Fisher block from the per-use
statistics, pooled over uses and examples:

* `kron_indep` (`FullyConnectedMultiIndepFB`): uses treated as independent,
  `F ≈ T · (A0 ⊗ G0)`;
* `kron_series_1` / `kron_series_2` (`FullyConnectedSeriesFB`): uses
  correlated through the lag-1 moments `A1`, `G1` (Martens, Ba & Johnson,
  "Kronecker-factored curvature approximations for recurrent neural
  networks", ICLR 2018), with the two inverse formulas of that paper.

The data of a factor are `T` tensors `[B, n]` per source; they are stacked
use-major (`[T·B, n]`, rows `[u·B, (u+1)·B)` belong to use `u`).
"""

import enum

import tensorflow as tf

from kfac import _checks
from kfac import _ops
from kfac import _release_extras as extras
from kfac import fisher_blocks
from kfac import fisher_factors
from kfac import utils

__all__ = [
  "POSDEF_EIG_METHOD",
  "posdef_eig",
  "posdef_eig_self_adjoint",
  "posdef_eig_svd",
  "posdef_eig_functions",
  "FullyConnectedMultiKF",
  "SeriesFBApproximation",
  "FullyConnectedMultiIndepFB",
  "FullyConnectedSeriesFB",
]

# How `posdef_eig` decomposes a (nearly) symmetric PSD matrix (utils, 1.5).
POSDEF_EIG_METHOD = "self_adjoint"


def posdef_eig_self_adjoint(mat):
  """`(|λ|, V)` from the symmetric eigendecomposition of `mat`.

  Args:
    mat: A square Tensor `[n, n]`, read as symmetric (lower triangle).

  Returns:
    A pair: the absolute values of the eigenvalues `[n]` and the
    eigenvectors `[n, n]` (columns).
  """
  evals, evecs = tf.linalg.eigh(mat)
  return tf.abs(evals), evecs


def posdef_eig_svd(mat):
  """`(s, U)`: singular values and left singular vectors of `mat`.

  Args:
    mat: A square Tensor `[n, n]`.

  Returns:
    A pair `(s [n], U [n, n])`.
  """
  evals, evecs, _ = tf.linalg.svd(mat)
  return evals, evecs


posdef_eig_functions = {
  "self_adjoint": posdef_eig_self_adjoint,
  "svd": posdef_eig_svd,
}


def posdef_eig(mat):
  """Eigendecomposition of a PSD matrix by `POSDEF_EIG_METHOD`.

  Args:
    mat: A square Tensor `[n, n]`.

  Returns:
    A pair `(eigenvalues [n], eigenvectors [n, n])`.
  """
  return posdef_eig_functions[POSDEF_EIG_METHOD](mat)


def _first_tensor(tensor_lists):
  return tensor_lists[0][0]


class FullyConnectedMultiKF(
  extras.DenseFactorMultiplyMixin,
  extras.DataDtypeFactorMixin,
  fisher_factors.InverseProvidingFactor,
):
  """Kronecker factor of a fully connected layer used `T` times (1.5-1.7).

  `tensor_lists[s]` holds the `T` tensors `[B, n]` of source `s` (inputs
  for the input side, output gradients for the output side); they are
  concatenated use-major into `X_s` (`[T·B, n]`, a column of ones appended
  when `has_bias`). With `B` the dynamic row count of the first tensor:

  * `cov`: the moving average of `C0 = Σ_s X_sᵀ X_s / (T·B)` (symmetrised);
  * `cov_dt1` (only after `register_cov_dt1`, zeros-initialised): of
    `C1 = Σ_s X_s[B:]ᵀ X_s[:-B] / (T·B)`, the lag-1 moment `E[x_{u+1} x_uᵀ]`
    (the normaliser counts all rows, i.e. zero padding, which keeps the
    estimate consistent with `C0`); updated in the same op as `cov`.

  Per damping `d`, with `C0 = V diag(λ) Vᵀ` (eigenvalues clipped below at
  `EIGENVALUE_CLIPPING_THRESHOLD`) and `S = V diag((λ+d)^-½) Vᵀ`
  symmetrised:

  * option 1 (`register_option1quants`): `Ψ̂ = S C1s S` with
    `C1s = (C1 + C1ᵀ)/2`, `(ψ, U) = posdef_eig(Ψ̂)`, `L = S U`; variables
    `Lmat_damp<D>` (`L`) and `psi_damp<D>` (`ψ`);
  * option 2 (`register_option2quants`): `Ψ̂ = S C1 S = Q diag(σ) Eᵀ` (SVD),
    `μ = min(σ², 1)`, `P = (S C1)ᵀ S = C1ᵀ (C0 + dI)⁻¹`, `K = S E`;
    variables `Lmat_damp<D>` (holding `P`, the legacy name), `Kmat_damp<D>`
    and `mu_damp<D>`.

  All variables live in `ff_fc_multi/<tensor names>` and take the dtype of
  the data. `make_inverse_update_ops` returns one grouped op: the base
  class's inverses and powers, then the option quantities.
  """

  def __init__(
    self, tensor_lists, has_bias=False, colocate_cov_ops_with_inputs=False
  ):
    """Creates the factor and its covariance variable.

    Args:
      tensor_lists: A tuple/list over sources of tuples/lists over uses of
        `[B, n]` Tensors (all sources with the same number of uses).
      has_bias: Python bool; append a column of ones (input side of a layer
        with a bias).
      colocate_cov_ops_with_inputs: Python bool, whether the statistics are
        built next to the first tensor (1.5's argument); the
        `fisher_factors.COLOCATE_COV_OPS_WITH_INPUTS` global (1.6-1.7) also
        turns it on.

    Raises:
      TypeError: If the tensors are not floating point Tensors.
      ValueError: If the lists are empty or ragged, or a tensor is not of
        rank 2 with a known number of features.
    """
    if not isinstance(tensor_lists, (tuple, list)) or not tensor_lists:
      raise ValueError(
        "tensor_lists must be a non-empty tuple/list over "
        "sources of lists over uses, got {!r}.".format(tensor_lists)
      )
    num_uses = None
    for s, tensors in enumerate(tensor_lists):
      if not isinstance(tensors, (tuple, list)) or not tensors:
        raise ValueError(
          "tensor_lists[{}] must be a non-empty tuple/list "
          "over uses, got {!r}.".format(s, tensors)
        )
      if num_uses is not None and len(tensors) != num_uses:
        raise ValueError(
          "Every source must have the same number of uses; "
          "got {} and {}.".format(num_uses, len(tensors))
        )
      num_uses = len(tensors)
      _checks.check_tensor_list(
        list(tensors), "tensor_lists[{}]".format(s), rank=2
      )
      fisher_factors._check_static_dim(
        list(tensors), 1, "tensor_lists[{}]".format(s), "features"
      )
    self._tensor_lists = tensor_lists
    self._has_bias = has_bias
    self._colocate_cov_ops_with_inputs = colocate_cov_ops_with_inputs
    self._cov_dt1 = None
    self._option1quants_by_damping = {}
    self._option2quants_by_damping = {}
    super(FullyConnectedMultiKF, self).__init__()

  @property
  def _var_scope(self):
    return "ff_fc_multi/" + fisher_factors.scope_string_from_params(
      self._tensor_lists
    )

  @property
  def _dtype(self):
    return _first_tensor(self._tensor_lists).dtype.base_dtype

  @property
  def _num_uses(self):
    return len(self._tensor_lists[0])

  @property
  def _vec_shape(self):
    return [self._cov_shape[0]]

  @property
  def _cov_shape(self):
    size = int(_first_tensor(self._tensor_lists).shape[1]) + int(
      bool(self._has_bias)
    )
    return [size, size]

  @property
  def _num_sources(self):
    return len(self._tensor_lists)

  def _maybe_colocate(self):
    return extras.maybe_colocate_with(
      _first_tensor(self._tensor_lists),
      extras.colocation_flag(
        fisher_factors, self._colocate_cov_ops_with_inputs
      ),
    )

  def _stacked(self, idx):
    """`X_idx`: the uses of source `idx` stacked use-major, `[T·B, n(+1)]`."""
    tensor = _ops.concat_rows(self._tensor_lists[idx])
    if self._has_bias:
      tensor = fisher_factors._append_homog(tensor)
    return tensor

  def _compute_new_cov(self, idx=0):
    return fisher_factors._compute_cov(self._stacked(idx))

  def _compute_new_cov_dt1(self, idx=0):
    tensor = self._stacked(idx)
    batch_size = tf.shape(self._tensor_lists[idx][0])[0]
    tensor_present = tensor[:-batch_size, :]
    tensor_future = tensor[batch_size:, :]
    normalizer = tf.cast(self._num_uses * batch_size, tensor.dtype)
    return (
      tf.linalg.matmul(tensor_future, tensor_present, transpose_a=True)
      / normalizer
    )

  def register_cov_dt1(self):
    """Creates the zeros-initialised `cov_dt1` variable (once)."""
    if self._cov_dt1 is None:
      with tf.compat.v1.variable_scope(self._var_scope):
        self._cov_dt1 = tf.compat.v1.get_variable(
          "cov_dt1",
          initializer=tf.compat.v1.zeros_initializer(),
          shape=self._cov_shape,
          dtype=self._dtype,
          trainable=False,
        )

  def get_cov_dt1(self):
    """Returns the `cov_dt1` variable (None before `register_cov_dt1`)."""
    return self._cov_dt1

  def make_covariance_update_op(self, ema_decay):
    """The moving-average update of `cov` (and of `cov_dt1`), one op.

    Args:
      ema_decay: Decay of the moving averages, a float or a scalar Tensor.

    Returns:
      A grouped `tf.Operation` assigning both moving averages.
    """
    return self._covariance_update(ema_decay, counter=None)

  def _covariance_update(self, ema_decay, counter):
    """The moving averages of `cov` and `cov_dt1`, guarded if `counter`.

    Args:
      ema_decay: Decay of the moving averages, a float or a scalar Tensor.
      counter: None (no guard), or the engine's `_nonfinite.SkipCounter`:
        when either new statistic is not finite, both moving averages keep
        their values and it counts one skip (`_nonfinite.guarded_updates`).

    Returns:
      A grouped `tf.Operation`.
    """
    from kfac import _nonfinite

    ema_decay = extras.decay_in_dtype(ema_decay, self._dtype)

    def update(variable, value):
      return fisher_factors._assign_moving_average(
        variable, value, ema_decay, zero_debias=fisher_factors.ZERO_DEBIAS
      )

    with self._maybe_colocate():
      pairs = [(self._cov, self._sum_over_sources(self._compute_new_cov))]
      if self._cov_dt1 is not None:
        pairs.append(
          (self._cov_dt1, self._sum_over_sources(self._compute_new_cov_dt1))
        )
      ops = _nonfinite.guarded_updates(
        pairs,
        counter,
        update,
        whole=fisher_factors.ZERO_DEBIAS,
        one_scope=True,
      )
    return tf.group(*ops)

  def _sum_over_sources(self, compute):
    """`add_n` of `compute(idx)` over the sources."""
    return tf.add_n([compute(idx) for idx in range(self._num_sources)])

  def _make_quant_variable(self, name, initializer, shape):
    with tf.compat.v1.variable_scope(self._var_scope):
      return tf.compat.v1.get_variable(
        name,
        initializer=initializer,
        shape=shape,
        dtype=self._dtype,
        trainable=False,
      )

  def register_option1quants(self, damping):
    """Keeps option 1's `L` and `ψ` for `damping` up to date.

    Creates `Lmat_damp<D>` (identity) and `psi_damp<D>` (ones) and, if
    needed, `cov_dt1`. A damping seen before adds nothing.

    Args:
      damping: The damping (float or Tensor; Tensors are keys by identity).
    """
    self._register_option_quants(
      damping, self._option1quants_by_damping, ("Lmat", "psi")
    )

  def register_option2quants(self, damping):
    """Keeps option 2's `P`, `K` and `μ` for `damping` up to date.

    Creates `Lmat_damp<D>` (holding `P`), `Kmat_damp<D>` (identity) and
    `mu_damp<D>` (ones) and, if needed, `cov_dt1`. Registering both options
    for one damping fails on the duplicate `Lmat_damp<D>` (`ValueError`).

    Args:
      damping: The damping (float or Tensor).
    """
    self._register_option_quants(
      damping, self._option2quants_by_damping, ("Lmat", "Kmat", "mu")
    )

  def _register_option_quants(self, damping, by_damping, names):
    """Creates one option's `<name>_damp<D>` variables once per damping.

    Also creates `cov_dt1` if needed.

    Args:
      damping: The damping (float or Tensor; Tensors are keys by identity).
      by_damping: The option's dict from damping to its variables, which
        gets the tuple of new variables (in the order of `names`).
      names: The variables' name stems, created in order: a stem ending in
        "mat" is an `[n, n]` matrix starting at the identity, any other a
        length-`n` vector of ones.
    """
    self.register_cov_dt1()
    if damping in by_damping:
      return
    damping_string = fisher_factors.scalar_or_tensor_to_string(damping)
    quants = []
    for name in names:
      if name.endswith("mat"):
        initializer, shape = fisher_factors.inverse_initializer, self._cov_shape
      else:
        initializer, shape = tf.compat.v1.ones_initializer(), self._vec_shape
      quants.append(
        self._make_quant_variable(
          name + "_damp" + damping_string, initializer, shape
        )
      )
    by_damping[damping] = tuple(quants)

  def get_option1quants(self, damping):
    """Returns option 1's variables for a damping.

    Args:
      damping: A damping registered with `register_option1quants`.

    Returns:
      The pair of variables `(L, ψ)`.

    Raises:
      KeyError: If `damping` was not registered for option 1.
    """
    return self._option1quants_by_damping[damping]

  def get_option2quants(self, damping):
    """Returns option 2's variables for a damping.

    Args:
      damping: A damping registered with `register_option2quants`.

    Returns:
      The triple of variables `(P, K, μ)`.

    Raises:
      KeyError: If `damping` was not registered for option 2.
    """
    return self._option2quants_by_damping[damping]

  def _option_quant_updates(self):
    """The `(variable, new value)` pairs of the option quantities.

    Computed from the eigendecomposition of `cov` (registered now if needed)
    and the current `cov_dt1`; see the class docstring.
    """
    updates = []
    if not (self._option1quants_by_damping or self._option2quants_by_damping):
      return updates
    self.register_eigendecomp()
    evals, evecs = self.get_eigendecomp()
    evals = tf.maximum(
      evals, tf.cast(fisher_factors.EIGENVALUE_CLIPPING_THRESHOLD, evals.dtype)
    )
    cov_dt1 = self._cov_dt1.read_value()

    def inv_sqrt_cov(damping):
      damped = evals + extras.cast_damping(damping, evals.dtype)
      mat = tf.linalg.matmul(evecs * damped**-0.5, evecs, transpose_b=True)
      return (mat + tf.transpose(mat)) / 2.0

    for damping, (lmat, psi_var) in self._option1quants_by_damping.items():
      sqrt_inv = inv_sqrt_cov(damping)
      cov_dt1_sym = (cov_dt1 + tf.transpose(cov_dt1)) / 2.0
      hat_psi = tf.linalg.matmul(
        tf.linalg.matmul(sqrt_inv, cov_dt1_sym), sqrt_inv
      )
      psi, evecs_psi = posdef_eig(hat_psi)
      updates.append((lmat, tf.linalg.matmul(sqrt_inv, evecs_psi)))
      updates.append((psi_var, psi))

    for damping, (pmat, kmat, mu_var) in self._option2quants_by_damping.items():
      sqrt_inv = inv_sqrt_cov(damping)
      sqrt_inv_c1 = tf.linalg.matmul(sqrt_inv, cov_dt1)
      hat_psi = tf.linalg.matmul(sqrt_inv_c1, sqrt_inv)
      sigma, _, right = tf.linalg.svd(hat_psi, full_matrices=True)
      mu = tf.minimum(sigma**2, tf.cast(1.0, sigma.dtype))
      updates.append(
        (pmat, tf.linalg.matmul(sqrt_inv_c1, sqrt_inv, transpose_a=True))
      )
      updates.append((kmat, tf.linalg.matmul(sqrt_inv, right)))
      updates.append((mu_var, mu))
    return updates

  def _inverse_updates(self):
    """The base class's `(variable, value)` pairs, then the options'.

    Engines whose `InverseProvidingFactor` builds its updates from
    `_inverse_updates()` (plain and non-finite-guarded paths) thereby refresh
    the option quantities too.
    """
    base = getattr(super(FullyConnectedMultiKF, self), "_inverse_updates", None)
    updates = list(base()) if base is not None else []
    return updates + self._option_quant_updates()

  def make_inverse_update_ops(self):
    """Returns a one-element list: every refresh of this factor, grouped.

    First the base class's damped inverses and matrix powers, then, for
    each registered damping, the option quantities (see the class
    docstring).

    Returns:
      A list holding one grouped `tf.Operation`.
    """
    if hasattr(fisher_factors.InverseProvidingFactor, "_inverse_updates"):
      ops = [
        variable.assign(value) for variable, value in self._inverse_updates()
      ]
    else:
      ops = super(FullyConnectedMultiKF, self).make_inverse_update_ops()
      ops += [
        variable.assign(value)
        for variable, value in self._option_quant_updates()
      ]
    return [tf.group(*ops)]

  def _make_guarded_covariance_update_op(self, ema_decay, counter):
    """The covariance update keeping `cov` and `cov_dt1` on non-finite data.

    Used by engines with non-finite guards (`kfac._nonfinite`): when either
    new statistic is not finite, both moving averages keep their values and
    `counter` counts one skip; otherwise the update is that of
    `make_covariance_update_op`.

    Args:
      ema_decay: Decay of the moving averages, a float or a scalar Tensor.
      counter: The engine's skip counter (`count_unless(ok)`).

    Returns:
      A grouped `tf.Operation`.
    """
    return self._covariance_update(ema_decay, counter=counter)


class SeriesFBApproximation(enum.IntEnum):
  """The inverse formula of `FullyConnectedSeriesFB`."""

  option1 = 1
  option2 = 2


def register_series_quants(
  block,
  input_damping,
  output_damping,
  unknown_message="Unrecognized FullyConnectedSeriesFB approximation: {!r}.",
):
  """Asks a series block's two factors for its option's quantities.

  Option 1 needs each factor's `register_option1quants`, option 2 its
  `register_option2quants`, with that factor's share of the damping.

  Args:
    block: A series block: `_option` (1 or 2, e.g. a `SeriesFBApproximation`),
      `_input_factor` and `_output_factor` (`FullyConnectedMultiKF`s).
    input_damping: The input factor's damping.
    output_damping: The output factor's damping.
    unknown_message: The `ValueError` message for another option, formatted
      with the option.

  Raises:
    ValueError: If `block._option` is neither option.
  """
  if block._option == SeriesFBApproximation.option1:
    block._input_factor.register_option1quants(input_damping)
    block._output_factor.register_option1quants(output_damping)
  elif block._option == SeriesFBApproximation.option2:
    block._input_factor.register_option2quants(input_damping)
    block._output_factor.register_option2quants(output_damping)
  else:
    raise ValueError(unknown_message.format(block._option))


def _check_uses(inputs, outputs):
  """Lists over uses of equal lengths (AssertionError otherwise, as 1.5)."""
  if not isinstance(inputs, (tuple, list)) or not isinstance(
    outputs, (tuple, list)
  ):
    raise ValueError(
      "inputs and outputs must be lists over uses, got {!r} and {!r}.".format(
        inputs, outputs
      )
    )
  if len(inputs) != len(outputs):
    raise AssertionError(
      "inputs and outputs must have the same number of uses, got {} and "
      "{}.".format(len(inputs), len(outputs))
    )
  if not inputs:
    raise ValueError("inputs and outputs must hold at least one use.")
  return list(inputs), list(outputs)


class _MultiUseData(object):
  """Data handling shared by the multi-use blocks (1.5-1.7 forms).

  Written without `super()`, so that a release face can inline it (copy its
  members into the block classes).

  The factor class is the module's `FullyConnectedMultiKF`, looked up when
  the factors are made (so a face that re-hosts this code with its own
  factor class gets it), unless `_multi_factor_class` is set. A face may also
  override `_normalize_damping` (the damping normalisation by `T`).
  """

  _multi_factor_class = None

  def __init__(self, layer_collection, inputs, outputs, has_bias=False):
    """Creates the block.

    Args:
      layer_collection: The `LayerCollection` this block belongs to.
      inputs: List over uses of the layer's inputs, each `[B, in]`.
      outputs: List over uses of the pre-activation outputs, each
        `[B, out]`.
      has_bias: Whether the layer has a bias.

    Raises:
      AssertionError: If `inputs` and `outputs` differ in length.
    """
    self._init_uses(layer_collection, inputs, outputs, has_bias)

  def _init_uses(self, layer_collection, inputs, outputs, has_bias):
    # No super(): a face inlines this mix-in into its classes.
    self._inputs, self._outputs = _check_uses(inputs, outputs)
    self._has_bias = has_bias
    fisher_blocks.FisherBlock.__init__(self, layer_collection)

  @staticmethod
  def _normalize_damping(damping, num_replications):
    return fisher_blocks._normalize_damping(damping, num_replications)

  @property
  def _num_uses(self):
    return len(self._inputs)

  def num_inputs(self):
    """The number of uses `T` of the layer."""
    return self._num_uses

  @property
  def num_registered_minibatches(self):
    """Always 1: the uses are registered once, all together."""
    return 1

  @property
  def _num_registered_minibatches(self):
    """The uses the parameters have in the graph: `T` (one registration).

    The engine's `LayerCollection.get_use_count_map` reads this count; it is
    1.5's `num_inputs() · num_registered_minibatches` for these blocks.
    """
    return self.num_inputs() * self.num_registered_minibatches

  def tensors_to_compute_grads(self):
    """Returns the list over uses of the layer's outputs."""
    return self._outputs

  def _split_damping(self, damping):
    """`(π√d, √d/π)`, π from the current `A0` and `G0` (or the π type's)."""
    return extras.pi_adjusted_damping(
      lambda: utils.compute_pi(
        self._input_factor.get_cov(), self._output_factor.get_cov()
      ),
      damping,
      extras.current_pi_type(fisher_blocks),
    )

  def _make_multi_factors(self, grads_list):
    """Creates (or finds) the input and output `FullyConnectedMultiKF`s."""
    factor_cls = (
      getattr(self, "_multi_factor_class", None) or FullyConnectedMultiKF
    )
    self._input_factor = self._layer_collection.make_or_get_factor(
      factor_cls, ((tuple(self._inputs),), self._has_bias)
    )
    self._output_factor = self._layer_collection.make_or_get_factor(
      factor_cls, (fisher_blocks._as_hashable(grads_list),)
    )
    # pylint: enable=protected-access


class FullyConnectedMultiIndepFB(
  _MultiUseData, fisher_blocks.KroneckerProductFB
):
  """Shared-weight FC block with uses taken as independent (`kron_indep`).

  `F ≈ T · (A0 ⊗ G0)` with `A0`, `G0` the statistics of
  `FullyConnectedMultiKF` averaged over uses and examples; the damping is
  normalised to `d / T^NORMALIZE_DAMPING_POWER` before the π split, and
  `c = T`: `multiply_inverse(v) = A_d⁻¹ V G_d⁻¹ / T`,
  `multiply(v) = T · A_d V G_d`.
  """

  def instantiate_factors(self, grads_list, damping):
    """Creates both factors and registers their damped inverses.

    Args:
      grads_list: A tuple over sources of lists over uses of the gradients
        with respect to the outputs.
      damping: The damping `d`, a float or a scalar Tensor.
    """
    self._make_multi_factors(grads_list)
    self._damping = self._normalize_damping(damping, self._num_uses)
    self._register_damped_input_and_output_inverses(self._damping)

  def _register_damped_input_and_output_inverses(self, damping):
    """Registers the damped inverses `(A0 + π√d I)⁻¹`, `(G0 + √d/π I)⁻¹`.

    Args:
      damping: The (normalised) damping `d`, a float or a scalar Tensor.
    """
    self._input_damping, self._output_damping = self._split_damping(damping)
    self._input_factor.register_damped_inverse(self._input_damping)
    self._output_factor.register_damped_inverse(self._output_damping)

  @property
  def _renorm_coeff(self):
    """`T`, the number of uses."""
    return self._num_uses


class FullyConnectedSeriesFB(_MultiUseData, fisher_blocks.FisherBlock):
  """Shared-weight FC block with lag-1 correlated uses (`kron_series_*`).

  Both factors are `FullyConnectedMultiKF` with `cov_dt1`; the damping
  `d' = d / T^NORMALIZE_DAMPING_POWER` is split as `(π√d', √d'/π)`
  (π from `A0`, `G0`) and the option quantities are registered for these
  values. Only `multiply_inverse` exists. With `Z = mat2d(v)ᵀ`:

  * option 1: `Z ← L_Gᵀ Z L_A`; `Z ← Z ⊙ γ(ψ_G ψ_Aᵀ)` with
    `γ(x) = (1−x)² / (T(1−x²) − 2x(1−x^T))`; `Z ← L_G Z L_Aᵀ`;
  * option 2: `Z ← Z − P_G Z P_Aᵀ`; `Z ← K_Gᵀ Z K_A`;
    `Z ← Z ⊘ (1 − μ_G μ_Aᵀ)` (zero divisors replaced by 1);
    `Z ← K_G Z K_Aᵀ`; `Z ← Z − P_Gᵀ Z P_A`; `Z ← Z / T`;

  and the result is `Zᵀ` in the layout of `v`.
  """

  def __init__(
    self,
    layer_collection,
    inputs,
    outputs,
    has_bias=False,
    option=SeriesFBApproximation.option2,
  ):
    """Creates the block; the data arguments are those of the Indep block.

    Args:
      layer_collection: The owning `LayerCollection`.
      inputs: The `T` input tensors `[B, in]` (one per use).
      outputs: The `T` pre-activation tensors `[B, out]`.
      has_bias: Python bool, whether a bias row is appended.
      option: A `SeriesFBApproximation` (checked in `instantiate_factors`).

    Raises:
      AssertionError: If the two lists differ in length.
    """
    self._option = option
    self._init_uses(layer_collection, inputs, outputs, has_bias)

  def instantiate_factors(self, grads_list, damping):
    """Creates the factors, `cov_dt1` and the option quantities.

    Args:
      grads_list: A tuple over sources of lists over uses of the gradients
        with respect to the outputs.
      damping: The damping `d`, a float or a scalar Tensor.

    Raises:
      ValueError: If the option is not a `SeriesFBApproximation`.
    """
    self._make_multi_factors(grads_list)
    self._input_factor.register_cov_dt1()
    self._output_factor.register_cov_dt1()
    damping = self._normalize_damping(damping, self._num_uses)
    self._input_damping, self._output_damping = self._split_damping(damping)
    register_series_quants(self, self._input_damping, self._output_damping)

  def multiply_inverse(self, vector):
    """Applies the series approximation's inverse (see the class docstring).

    Args:
      vector: A weights-shaped Tensor, or a `(weights, bias)` tuple.

    Returns:
      The product, in the layout of `vector`.
    """
    num_uses = self._num_uses
    z = tf.transpose(utils.layer_params_to_mat2d(vector))
    if self._option == SeriesFBApproximation.option1:
      l_a, psi_a = self._input_factor.get_option1quants(self._input_damping)
      l_g, psi_g = self._output_factor.get_option1quants(self._output_damping)
      x = psi_g[:, tf.newaxis] * psi_a[tf.newaxis, :]
      gamma = (1.0 - x) ** 2 / (
        num_uses * (1.0 - x**2) - 2.0 * x * (1.0 - x**num_uses)
      )
      z = tf.linalg.matmul(l_g, tf.linalg.matmul(z, l_a), transpose_a=True)
      z *= gamma
      z = tf.linalg.matmul(l_g, tf.linalg.matmul(z, l_a, transpose_b=True))
    else:
      p_a, k_a, mu_a = self._input_factor.get_option2quants(self._input_damping)
      p_g, k_g, mu_g = self._output_factor.get_option2quants(
        self._output_damping
      )
      z -= tf.linalg.matmul(p_g, tf.linalg.matmul(z, p_a, transpose_b=True))
      z = tf.linalg.matmul(k_g, tf.linalg.matmul(z, k_a), transpose_a=True)
      divisor = 1.0 - mu_g[:, tf.newaxis] * mu_a[tf.newaxis, :]
      divisor += tf.cast(tf.equal(divisor, 0.0), divisor.dtype)
      z /= divisor
      z = tf.linalg.matmul(k_g, tf.linalg.matmul(z, k_a, transpose_b=True))
      z -= tf.linalg.matmul(p_g, tf.linalg.matmul(z, p_a), transpose_a=True)
      z /= tf.cast(num_uses, z.dtype)
    return utils.mat2d_to_layer_params(vector, tf.transpose(z))

  def multiply(self, vector):
    """Not available for the series approximation.

    Args:
      vector: Ignored.

    Raises:
      NotImplementedError: Always (as in every release that has the block).
    """
    raise NotImplementedError(
      "FullyConnectedSeriesFB does not support multiply; only multiply_inverse."
    )
