"""The tables `kfac-upgrade` works from.

The 1.4 names and parameter lists come from `kfac/_surface.py`, the one table
of every release's public surface; what is written here is about PyPI's
`kfac` 0.2.x, which `kfac-upgrade` also upgrades from.
"""

from kfac import _surface

# Paths under which the legacy package is reachable.
LEGACY_PREFIXES = (
  "tensorflow.contrib.kfac",
  "tensorflow.compat.v1.contrib.kfac",
)

# The release whose API programs are upgraded to.
TARGET_RELEASE = "1.4"

# The nine public modules of `tf.contrib.kfac`, in `kfac` too.
MODULES = _surface.MODULES

# Public names of each module in the target API.
SURFACE_14 = dict(_surface.RELEASES[TARGET_RELEASE].names)

# kfac 0.2.x top-level conveniences and where they live in the 1.4 layout.
TOP_LEVEL_02 = {
  "LayerCollection": "kfac.layer_collection.LayerCollection",
  "KfacOptimizer": "kfac.optimizer.KfacOptimizer",
  "CurvatureMatrixVectorProductComputer": (
    "kfac.curvature_matrix_vector_products.CurvatureMatrixVectorProductComputer"
  ),
}

# kfac 0.2.x top-level names with no counterpart in the 1.4 API.
UNSUPPORTED_TOP_LEVEL_02 = {
  "PeriodicInvCovUpdateKfacOpt": "the 1.4 API has no periodic optimizer; "
  "use optimizer.KfacOptimizer and run "
  "cov_update_op / inv_update_op yourself",
  "AsyncInvCovUpdateKfacOpt": "the 1.4 API has no asynchronous optimizer; "
  "use optimizer.KfacOptimizer (and "
  "op_queue.OpQueue for the inverse updates)",
  "keras": "the 1.4 API has no Keras integration",
  "async_inv_cov_update_kfac_opt": "not part of the 1.4 API",
  "periodic_inv_cov_update_kfac_opt": "not part of the 1.4 API",
  "data_reader": "not part of the 1.4 API",
  "data_reader_alt": "not part of the 1.4 API",
  "graph_matcher": "automatic layer registration is not part of the 1.4 API",
  "graph_search": "automatic layer registration is not part of the 1.4 API",
}

# KfacOptimizer signatures: the 1.4 parameters, and the r1.5 keyword-only
# extras that `kfac.optimizer.KfacOptimizer` also accepts.
OPTIMIZER_PARAMS_14 = _surface.parameters(
  TARGET_RELEASE, "optimizer.KfacOptimizer.__init__"
)
OPTIMIZER_KEYWORD_ONLY = _surface.KFAC_KEYWORD_ONLY[
  "optimizer.KfacOptimizer.__init__"
]
OPTIMIZER_PARAMS_02 = (
  "learning_rate",
  "damping",
  "layer_collection",
  "cov_ema_decay",
  "var_list",
  "momentum",
  "momentum_type",
  "use_weight_decay",
  "weight_decay_coeff",
  "qmodel_update_rescale",
  "norm_constraint",
  "name",
  "estimation_mode",
  "colocate_gradients_with_ops",
  "batch_size",
  "placement_strategy",
  "compute_params_stats",
  "adapt_damping",
  "update_damping_immediately",
  "is_chief",
  "prev_train_batch",
  "loss",
  "loss_fn",
  "min_damping",
  "l2_reg",
  "damping_adaptation_decay",
  "damping_adaptation_interval",
  "damping_decrease_rho_threshold",
  "damping_increase_rho_threshold",
  "precon_damping_mult",
  "use_passed_loss",
  "train_batch",
  "print_logs",
  "tf_replicator",
  "dtype",
)

# Method renames that are plain aliases in kfac 0.2.x.
METHOD_RENAMES_02 = {
  "register_softmax_cross_entropy_loss": "register_categorical_predictive_distribution",
  "register_sigmoid_cross_entropy_loss": "register_multi_bernoulli_predictive_distribution",
  "register_squared_error_loss": "register_normal_predictive_distribution",
  # CurvatureMatrixVectorProductComputer only.
  "ggn_factor_inner_shapes": "generalized_gauss_newton_factor_inner_shapes",
  # Loss functions only.
  "multiply_ggn_factor_replicated_one_hot": "multiply_hessian_factor_replicated_one_hot",
  "ggn_factor_inner_shape": "hessian_factor_inner_shape",
  "ggn_factor_inner_static_shape": "hessian_factor_inner_static_shape",
}

# kfac 0.2.x "ggn" methods that both CurvatureMatrixVectorProductComputer and
# the loss functions have, renamed differently: {name: (cmvp name, loss name)}.
AMBIGUOUS_RENAMES_02 = {
  "multiply_ggn": ("multiply_generalized_gauss_newton", "multiply_hessian"),
  "multiply_ggn_factor": (
    "multiply_generalized_gauss_newton_factor",
    "multiply_hessian_factor",
  ),
  "multiply_ggn_factor_transpose": (
    "multiply_generalized_gauss_newton_factor_transpose",
    "multiply_hessian_factor_transpose",
  ),
}

_CMVP_PATH = (
  "kfac.curvature_matrix_vector_products.CurvatureMatrixVectorProductComputer"
)

# 1.4 FisherEstimator parameters (kfac 0.2.x adds `exps` fifth, and more).
ESTIMATOR_PARAMS_14 = _surface.parameters(
  TARGET_RELEASE, "estimator.FisherEstimator.__init__"
)

# kfac 0.2.x methods / properties with no counterpart in the 1.4 API.
UNSUPPORTED_METHODS_02 = {
  "make_vars_and_create_op_thunks": "in 1.4, KfacOptimizer builds its ops at "
  "construction: use cov_update_op and "
  "inv_update_op",
  "create_ops_and_vars_thunks": "in 1.4, KfacOptimizer builds its ops at "
  "construction: use cov_update_op and "
  "inv_update_op",
  "get_cov_vars": "not part of the 1.4 API",
  "get_inv_vars": "not part of the 1.4 API",
  "set_loss": "not part of the 1.4 API",
  "auto_register_layers": "1.4 has no automatic registration; call "
  "register_fully_connected / register_conv2d",
  "define_linked_parameters": "not part of the 1.4 API",
  "register_conv1d": "not part of the 1.4 API",
  "register_convolution": "not part of the 1.4 API",
  "register_depthwise_conv2d": "not part of the 1.4 API",
  "register_separable_conv2d": "not part of the 1.4 API",
  "register_fully_connected_multi": "not part of the 1.4 API",
  "register_conv2d_multi": "not part of the 1.4 API",
  "register_scale_and_shift": "not part of the 1.4 API",
  "register_embedding": "not part of the 1.4 API",
  "register_embedding_multi": "not part of the 1.4 API",
  "register_loss_function": "not part of the 1.4 API",
  "set_default_generic_approximation": "1.4 has no default-approximation "
  "settings; pass approx= per call",
  "set_default_fully_connected_approximation": "1.4 has no default-"
  "approximation settings; pass "
  "approx= per call",
  "set_default_conv2d_approximation": "1.4 has no default-approximation "
  "settings; pass approx= per call",
  "fisher_factor_inner_static_shapes": "not part of the 1.4 API",
  "ggn_factor_inner_static_shapes": "not part of the 1.4 API",
}

# LayerCollection.register_* methods of 1.4, with their parameters.
REGISTER_PARAMS_14 = {
  qualname.rsplit(".", 1)[1]: _surface.parameters(TARGET_RELEASE, qualname)
  for qualname in _surface.RELEASES[TARGET_RELEASE].signatures
  if qualname.startswith("layer_collection.LayerCollection.register_")
}

# Values of the 1.4 `layer_collection.APPROX_*_NAME` constants.
_APPROX_NAMES_14 = ("kron", "diagonal", "full")
