"""kfac 0.2.x code the upgrade tool cannot convert on its own."""
import tensorflow.compat.v1 as tf

import kfac
from kfac.python.ops import curvature_matrix_vector_products as cmvp
from kfac.python.ops.layer_collection import LayerCollection, VARIABLE_SCOPE


def build(x, logits, prediction, params, vecs, global_step):
  lc = LayerCollection()
  lc.register_fully_connected(params, x, logits, reuse=VARIABLE_SCOPE)
  lc.register_squared_error_loss(prediction)
  lc.register_squared_error_loss(prediction, None, None)  # positional seed
  lc.register_conv2d(params, (1, 1, 1, 1), "SAME", x, logits, "NHWC")
  lc.register_fully_connected(params, x, logits, approx="kron_indep")

  # Positional arguments in the 0.2.x order: (lr, damping, layer_collection).
  opt = kfac.KfacOptimizer(0.1, 0.01, lc)
  periodic = kfac.PeriodicInvCovUpdateKfacOpt(
      invert_every=10, cov_update_every=1, learning_rate=0.1, damping=0.01,
      layer_collection=lc)
  tuned = kfac.KfacOptimizer(learning_rate=0.1, damping=0.01,
                             layer_collection=lc, momentum_type="qmodel",
                             momentum=None, batch_size=32,
                             adapt_damping=True)
  products = cmvp.CurvatureMatrixVectorProductComputer(lc, params)
  ggn = products.multiply_ggn(vecs)
  loss_ggn = lc.losses[0].multiply_ggn(vecs[0])
  lc.auto_register_layers()
  return opt, periodic, tuned, ggn, loss_ggn, global_step


def unclear(thing, vecs):
  return thing.multiply_ggn(vecs)  # a product computer or a loss?
