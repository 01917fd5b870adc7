"""Factor classes laid out like the legacy fisher_factors module."""

__all__ = ["FisherFactor", "DiagonalFactor", "ConvDiagonalFactor"]


class FisherFactor(object):
  """Base class of the fixture factors."""

  def __init__(self):
    """Sets up the factor and creates its covariance."""
    self.instantiate_covariance()

  def instantiate_covariance(self):
    """Creates the covariance and keeps it on the instance.

    A second paragraph, so that multi-paragraph prose is exercised.
    """
    self._cov = None

  def make_covariance_update_op(self, ema_decay):
    """Builds the moving-average update of the covariance.

    Args:
      ema_decay: Decay of the moving average, a float in [0, 1) or a
        scalar tensor, spread over
        three lines here.
    Returns:
      The update operation, written over
      two lines.
    """
    return ema_decay

  def make_inverse_update_ops(self):
    """Lists the update operations of the registered inverses (none here)."""
    return []

  def get_cov(self):
    """Returns the covariance."""
    return self._cov


class DiagonalFactor(FisherFactor):
  """Base class of the diagonal fixture factors."""

  def __init__(self):
    """Sets up a diagonal factor."""
    super(DiagonalFactor, self).__init__()


class ConvDiagonalFactor(DiagonalFactor):
  """Diagonal factor of a convolution layer.

  Extra prose with `code` and a second paragraph.

  Index conventions: b batch, i/j output location, k patch entry, l channel.
  """

  def __init__(self,
               inputs,
               outputs_grads,
               filter_shape,
               strides,
               padding,
               has_bias=False):
    """Stores the layer's tensors and creates the factor.

    Args:
      inputs: Input activations, [batch, height, width, in_channels].
      outputs_grads: Gradients of the loss with respect to the outputs,
        one tensor per source.
      filter_shape: The kernel shape.
      strides: Convolution strides.
      padding: "SAME" or "VALID".
      has_bias: Whether the layer has a bias, which adds
        a homogeneous coordinate
        to the patches.
    """
    self._inputs = inputs
    self._outputs_grads = outputs_grads
    self._filter_shape = filter_shape
    self._strides = strides
    self._padding = padding
    self._has_bias = has_bias
    super(ConvDiagonalFactor, self).__init__()
