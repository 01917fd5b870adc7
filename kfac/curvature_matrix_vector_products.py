"""Exact curvature-matrix/vector products for a set of losses.

For a network whose loss is `L(θ) = Σ_l L_l(z_l(θ))` — the sum of the
registered losses `L_l`, each a function of its inputs `z_l` (e.g. logits),
which depend on the parameters/tensors `θ` — this module multiplies vectors
by the following matrices, all defined for the **summed** loss (no batch
normalisation, no damping):

* Fisher: `F = Jᵀ F_L J`, where `J = ∂z/∂θ` and `F_L` is the block-diagonal
  Fisher of the predictive distributions w.r.t. their parameters `z`;
* generalized Gauss-Newton: `G = Jᵀ H_L J`, with `H_L = ∂²L/∂z²`;
* Hessian: `H = ∂²L/∂θ²`;
* and the factors `Jᵀ B` of `F = (Jᵀ B)(Jᵀ B)ᵀ` (`B Bᵀ = F_L`), likewise for
  the Gauss-Newton matrix.

Jacobian products `J v` use forward-mode differentiation
(`utils.fwd_gradients`) and `Jᵀ u` use `tf.gradients`. Both compute total
derivatives, so the tensors in `wrt_tensors` should not depend on each other.
"""

import tensorflow as tf

from kfac import _ops
from kfac import _surface
from kfac import utils

# The 1.4 public names, from the one surface table.
__all__ = list(
  sorted(_surface.public_names("1.4", "curvature_matrix_vector_products"))
)


def _as_list(tensors):
  return list(tensors) if isinstance(tensors, (tuple, list)) else [tensors]


class CurvatureMatrixVectorProductComputer(object):
  """Multiplies vectors by the Fisher, Gauss-Newton and Hessian matrices.

  Vectors "in parameter space" (`vecs`) are lists with one Tensor per element
  of `wrt_tensors`, shaped like it. Vectors "in loss-factor space"
  (`loss_inner_vecs`) are lists with one Tensor per loss, shaped like that
  loss's `fisher_factor_inner_shape` (resp. `hessian_factor_inner_shape`).
  Vectors in "loss-input space" are shaped like `loss.inputs` (a Tensor, or
  a tuple of Tensors for losses with several parameter tensors).
  """

  def __init__(self, losses, wrt_tensors):
    """Records the losses and the tensors to differentiate with respect to.

    No ops are created here.

    Args:
      losses: A list of `loss_functions.LossFunction` objects; the matrices
        are those of their sum. Each loss's `inputs` must depend on (some of)
        `wrt_tensors`.
      wrt_tensors: A list of Tensors or variables (the "parameters" `θ`).
    """
    self._losses = list(losses)
    self._inputs_to_losses = list(loss.inputs for loss in self._losses)
    self._inputs_to_losses_flat = tf.nest.flatten(self._inputs_to_losses)
    self._wrt_tensors = _as_list(wrt_tensors)

  @property
  def _total_loss(self):
    """The sum of all losses evaluated at their targets (needs targets)."""
    return tf.add_n(tuple(loss.evaluate() for loss in self._losses))

  # Jacobian products.

  def _multiply_jacobian(self, vecs):
    """Computes `J v` for the map `θ ↦ (inputs of every loss)`.

    Args:
      vecs: A list of Tensors shaped like `wrt_tensors`.

    Returns:
      A list with one entry per loss, structured like that loss's `inputs`.
    """
    jacobian_vecs_flat = utils.fwd_gradients(
      self._inputs_to_losses_flat, self._wrt_tensors, grad_xs=_as_list(vecs)
    )
    jacobian_vecs_flat = _ops.dense_gradients(
      jacobian_vecs_flat, like=self._inputs_to_losses_flat
    )
    return tf.nest.pack_sequence_as(self._inputs_to_losses, jacobian_vecs_flat)

  def _multiply_jacobian_transpose(self, loss_vecs):
    """Computes `Jᵀ u` for the map `θ ↦ (inputs of every loss)`.

    Args:
      loss_vecs: A list with one entry per loss, structured like its
        `inputs`.

    Returns:
      A list of Tensors shaped like `wrt_tensors` (`None` where a tensor does
      not influence any loss, as `tf.gradients` reports it).
    """
    loss_vecs_flat = tf.nest.flatten(loss_vecs)
    return tf.compat.v1.gradients(
      self._inputs_to_losses_flat, self._wrt_tensors, grad_ys=loss_vecs_flat
    )

  # Per-loss products, applied loss by loss.

  def _multiply_loss_fisher(self, loss_vecs):
    return tuple(
      loss.multiply_fisher(loss_vec)
      for loss, loss_vec in zip(self._losses, loss_vecs)
    )

  def _multiply_loss_fisher_factor(self, loss_inner_vecs):
    return tuple(
      loss.multiply_fisher_factor(loss_vec)
      for loss, loss_vec in zip(self._losses, loss_inner_vecs)
    )

  def _multiply_loss_fisher_factor_transpose(self, loss_vecs):
    return tuple(
      loss.multiply_fisher_factor_transpose(loss_vec)
      for loss, loss_vec in zip(self._losses, loss_vecs)
    )

  def _multiply_loss_hessian(self, loss_vecs):
    return tuple(
      loss.multiply_hessian(loss_vec)
      for loss, loss_vec in zip(self._losses, loss_vecs)
    )

  def _multiply_loss_hessian_factor(self, loss_inner_vecs):
    return tuple(
      loss.multiply_hessian_factor(loss_vec)
      for loss, loss_vec in zip(self._losses, loss_inner_vecs)
    )

  def _multiply_loss_hessian_factor_transpose(self, loss_vecs):
    return tuple(
      loss.multiply_hessian_factor_transpose(loss_vec)
      for loss, loss_vec in zip(self._losses, loss_vecs)
    )

  # Public matrix-vector products.

  def multiply_fisher(self, vecs):
    """Multiplies vectors by the Fisher matrix `F = Jᵀ F_L J`.

    Args:
      vecs: A list of Tensors, one per element of `wrt_tensors`, shaped like
        it.

    Returns:
      A list of Tensors shaped like `wrt_tensors`: `F v`.
    """
    jacobian_vecs = self._multiply_jacobian(vecs)
    loss_fisher_jacobian_vecs = self._multiply_loss_fisher(jacobian_vecs)
    return self._multiply_jacobian_transpose(loss_fisher_jacobian_vecs)

  def multiply_fisher_factor_transpose(self, vecs):
    """Multiplies vectors by the transposed Fisher factor `(Jᵀ B)ᵀ = Bᵀ J`.

    Args:
      vecs: A list of Tensors, one per element of `wrt_tensors`, shaped like
        it.

    Returns:
      A tuple with one Tensor per loss, of that loss's
      `fisher_factor_inner_shape`: `B_lᵀ J_l v`.
    """
    jacobian_vecs = self._multiply_jacobian(vecs)
    return self._multiply_loss_fisher_factor_transpose(jacobian_vecs)

  def multiply_fisher_factor(self, loss_inner_vecs):
    """Multiplies vectors by the Fisher factor `Jᵀ B` (so `F = (JᵀB)(JᵀB)ᵀ`).

    The legacy code applied the loss's `multiply_fisher_factor_transpose`
    here, i.e. computed `Jᵀ Bᵀ u`; this version applies `B` (see
    docs/compatibility.md).

    Args:
      loss_inner_vecs: A list with one Tensor per loss, of that loss's
        `fisher_factor_inner_shape`.

    Returns:
      A list of Tensors shaped like `wrt_tensors`: `Σ_l J_lᵀ B_l u_l`.
    """
    fisher_factor_vecs = self._multiply_loss_fisher_factor(loss_inner_vecs)
    return self._multiply_jacobian_transpose(fisher_factor_vecs)

  def multiply_hessian(self, vecs):
    """Multiplies vectors by the Hessian of the total loss.

    Computed as the gradient of `gᵀv` (`g` = gradient of the total loss, `v`
    held constant), by two `tf.gradients` passes. Needs the losses' targets.

    Args:
      vecs: A list of Tensors, one per element of `wrt_tensors`, shaped like
        it.

    Returns:
      A list of Tensors shaped like `wrt_tensors`: `H v`.
    """
    grads = tf.compat.v1.gradients(self._total_loss, self._wrt_tensors)
    return tf.compat.v1.gradients(
      grads, self._wrt_tensors, grad_ys=_as_list(vecs)
    )

  def multiply_generalized_gauss_newton(self, vecs):
    """Multiplies vectors by the generalized Gauss-Newton matrix `Jᵀ H_L J`.

    Args:
      vecs: A list of Tensors, one per element of `wrt_tensors`, shaped like
        it.

    Returns:
      A list of Tensors shaped like `wrt_tensors`: `G v`.
    """
    jacobian_vecs = self._multiply_jacobian(vecs)
    loss_hessian_jacobian_vecs = self._multiply_loss_hessian(jacobian_vecs)
    return self._multiply_jacobian_transpose(loss_hessian_jacobian_vecs)

  def multiply_generalized_gauss_newton_factor_transpose(self, vecs):
    """Multiplies vectors by the transposed Gauss-Newton factor `Bᵀ J`.

    Here `B Bᵀ = H_L` is the loss's Hessian factor.

    Args:
      vecs: A list of Tensors, one per element of `wrt_tensors`, shaped like
        it.

    Returns:
      A tuple with one Tensor per loss, of that loss's
      `hessian_factor_inner_shape`.
    """
    jacobian_vecs = self._multiply_jacobian(vecs)
    return self._multiply_loss_hessian_factor_transpose(jacobian_vecs)

  def multiply_generalized_gauss_newton_factor(self, loss_inner_vecs):
    """Multiplies vectors by the Gauss-Newton factor `Jᵀ B` (`B Bᵀ = H_L`).

    As for `multiply_fisher_factor`, the loss's factor itself (not its
    transpose, as in the legacy code) is applied.

    Args:
      loss_inner_vecs: A list with one Tensor per loss, of that loss's
        `hessian_factor_inner_shape`.

    Returns:
      A list of Tensors shaped like `wrt_tensors`: `Σ_l J_lᵀ B_l u_l`.
    """
    hessian_factor_vecs = self._multiply_loss_hessian_factor(loss_inner_vecs)
    return self._multiply_jacobian_transpose(hessian_factor_vecs)

  @property
  def fisher_factor_inner_shapes(self):
    """Tuple of the losses' dynamic `fisher_factor_inner_shape`s."""
    return tuple(loss.fisher_factor_inner_shape for loss in self._losses)

  @property
  def generalized_gauss_newton_factor_inner_shapes(self):
    """Tuple of the losses' dynamic `hessian_factor_inner_shape`s."""
    return tuple(loss.hessian_factor_inner_shape for loss in self._losses)
