"""Members that release faces put in place of (or next to) the engine's.

`kfac._releases` names these in each release's `members`; `kfac._faces`
re-hosts them into the face module like engine code, so every global name
used here (`FisherBlock`, `fisher_factors`, `tf`, ...) is resolved in the
face module they are put in, never in this one. Write them as if they were
part of that engine module. They are adapters (signatures, argument order,
defaults); the maths they call lives in the engine.
"""

# pylint: disable=undefined-variable,protected-access,invalid-name


# ---------------------------------------------------------------------------
# fisher_blocks (release 1.4.0)


def fc_diagonal_fb_1_4__init__(self, layer_collection, inputs, outputs,
                               has_bias=False):
  """Creates a FullyConnectedDiagonalFB for one minibatch of a layer.

  This is the TF 1.4.0 form: the layer's data is given to the constructor.
  For a layer `s = a W (+ b)` the block is the exact diagonal of the Fisher
  in the `[in(+1), out]` layout, `D[i, j] = sum over sources of
  mean_n (a_n[i] g_n[j])^2`.

  Args:
    layer_collection: The `LayerCollection` this block belongs to.
    inputs: The layer's inputs, `[batch, in]`.
    outputs: The layer's pre-activation outputs, `[batch, out]`.
    has_bias: Whether the layer has a bias (vectors are then
      `(weights, bias)` tuples).
  """
  FisherBlock.__init__(self, layer_collection)
  self._has_bias = has_bias
  self._inputs = [inputs]
  self._outputs = [outputs]


def fc_diagonal_fb_1_4__tensors_to_compute_grads(self):
  """Returns the layer's outputs, with respect to which grads are taken."""
  return self._outputs[0]


def fc_diagonal_fb_1_4__instantiate_factors(self, grads_list, damping):
  """Creates the diagonal factor from the layer's inputs and gradients.

  As in TF 1.4.0 the factor is keyed (and its variables named) by the
  layer's own input tensor and output gradients, with no concatenation.

  Args:
    grads_list: A tuple over sources of the gradients with respect to the
      outputs, each `[batch, out]`.
    damping: The damping λ, a float or a scalar Tensor.
  """
  self._damping = damping
  self._factor = self._layer_collection.make_or_get_factor(
      fisher_factors.FullyConnectedDiagonalFactor,
      (self._inputs[0], _as_hashable(grads_list), self._has_bias))


def fc_diagonal_fb_1_4__for_minibatch(cls, layer_collection, inputs, outputs,
                                      has_bias):
  """Creates the block for one layer (TF 1.4.0 constructor form).

  Args:
    layer_collection: The `LayerCollection` the block belongs to.
    inputs: The layer's inputs, `[batch, in]`.
    outputs: The layer's pre-activation outputs, `[batch, out]`.
    has_bias: Whether the layer has a bias.

  Returns:
    The new block.
  """
  return cls(layer_collection, inputs, outputs, has_bias)


fc_diagonal_fb_1_4__for_minibatch = classmethod(
    fc_diagonal_fb_1_4__for_minibatch)
