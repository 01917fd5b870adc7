"""Which `tf.contrib.kfac` release differs from which, in one place.

The package has one implementation (the engine: `kfac.utils`,
`kfac.fisher_factors`, ... which are also the `kfac` face, the 1.4 API of the
seed's documentation pages). Every other release namespace `kfac.r1_N` is a
*face* of that engine, built by `kfac._faces` from the `Release` declared
here. A release lists only what it changes relative to the release it is
derived from:

* `exports`: the public names (allow-list) of each of the nine modules;
* `members`: members that replace or extend engine classes and module
  functions in that face (new signatures, new methods); they are looked up by
  dotted name in `kfac._face_members` (adapters are small; the maths they call
  lives in the engine);
* the behaviour flags below (defaults and the few algorithmic differences of
  releases.md §13). Engine objects read them from `self._release`, which every
  class of a face carries as a class attribute. An object therefore follows
  the release of the namespace that created it, whatever other namespaces the
  same process uses.

To see what release 1.N changes, read its `derive(...)` call below.
"""

import dataclasses
import types
from typing import Optional
from collections.abc import Mapping

from kfac import _surface

# The nine legacy modules, in the order their faces are built (each only
# imports modules that come before it): the package's `__init__` order.
MODULES = _surface.MODULES


def _frozen(mapping):
  return types.MappingProxyType(dict(mapping))


def _empty_mapping():
  """A dataclass field whose default is a fresh, empty read-only mapping."""
  return dataclasses.field(default_factory=lambda: _frozen({}))


@dataclasses.dataclass(frozen=True)
class Release(object):
  """One release of `tf.contrib.kfac`: its namespace and how it differs.

  Attributes:
    version: The release, e.g. "1.6" ("seed" for the `kfac` face, the API of
      the seed's documentation pages).
    package: The Python package of the face, e.g. "kfac.r1_6".
    exports: Module name -> tuple of the names the module exports (its
      `__all__`, the legacy allow-list).
    members: Dotted target ("module.Class" or "module") -> tuple of the
      names of `kfac._face_members` functions (or classes) that the face puts
      there in place of (or in addition to) the engine's. A function named
      `<Class>__<member>` becomes `<member>` of the class, e.g.
      `fc_diagonal_fb__init__` declared under
      "fisher_blocks.FullyConnectedDiagonalFB" as ("__init__",
      "fc_diagonal_fb__init__").
    signatures: Dotted member ("module.Class.method" or "module.function")
      -> its parameter list in this release, as Python source without
      `self` (e.g. "variables, damping, momentum=0.9"). The face wraps the
      engine's member: arguments are bound to this signature (so positional
      order, defaults and accepted names are the release's) and passed to
      the engine by keyword. Parameters the engine lacks must be handled by
      a `members` adapter instead.
    arg_docs: Dotted member -> {parameter: docstring text} for parameters
      whose description in the engine's docstring does not fit the release
      (e.g. another default).
    momentum_default: Default `momentum` of `KfacOptimizer` (0.9 from 1.6).
    colocate_gradients_default: Default `colocate_gradients_with_ops` of the
      optimizer and estimator; None where the argument does not exist.
    default_generic_approximation: What `register_generic(approx=None)`
      uses ("full" in 1.5–1.8).
    default_fully_connected_multi_approximation: Default approximation of
      `register_fully_connected_multi`, None before 1.5.
    registration: "direct" (1.4: blocks take their data in the constructor),
      "minibatch" (1.5–1.7: `register_additional_minibatch`, minibatches
      concatenated) or "tower" (1.8+).
    construction: "eager" (≤1.7) or "deferred" (1.8+).
    factor_dtype_follows_data: Factor variables take the data's dtype (1.5+)
      instead of float32.
    conv_diagonal_damping_normalised: Whether `ConvDiagonalFB` divides the
      damping by `|T| ** NORMALIZE_DAMPING_POWER` (≤1.5); from 1.6 it uses
      `|T| * normalize_damping(d, |T|)`, i.e. `d`.
    categorical_fisher_fixed: Whether the categorical loss's
      `multiply_fisher` keeps the summed axis (fixed in 1.6).
    eigen_inverses_grouped: Whether the eigen-path inverse updates of a
      factor form one grouped op (1.5+).
    partial_derivative_products: Whether curvature products differentiate
      with `stop_gradients=wrt_tensors` (1.5+).
    overlapping_keys_error: Whether any overlap of block keys is a
      ValueError (1.5+) instead of 1.4's subset/superset merging.
    naming: Variable-name scheme: "1.4", "1.5" (collection scope and concat
      names), "1.6" (as 1.5, naive-diagonal factors named after the
      gradients), "1.8" (§12.2).
    cov_ops_colocation: "none" (1.4), "collection_flag" (1.5: a
      `LayerCollection` argument), "global" (1.6–1.7: the fisher_factors
      global `COLOCATE_COV_OPS_WITH_INPUTS`, default True), "tower" (1.8+).
    update_thunks: Whether estimator/optimizer expose update-op thunks and
      per-factor op lists (1.6+) instead of `inv_updates_dict`.
    estimator_damping_fn_first: `FisherEstimator(damping_fn, ...)` (1.7).
    qmodel_previous_update_scaled: Whether qmodel's previous update is
      `-learning_rate * velocity` (1.7+) instead of `-velocity`.
    qmodel_change_negative: Whether the 2x2 qmodel change has the sign of
      the model decrease (1.7+).
    engine_modules: Module -> the private module its face is built from
      instead of the engine module (1.8+: `kfac._deferred_factors`,
      `kfac._deferred_blocks`, `kfac._deferred_estimator`).
    inlined_bases: Names of classes of the face's engine module that this
      release does not have: subclasses inline their members and take
      their bases (1.8: `DiagonalFB`, new in 1.9).
    renamed_classes: "module.Class" -> the name the face gives the class
      (1.9: `InverseProvidingFactor` is `DenseSquareMatrixFactor`).
    linear_operator_factors: Factors return linear operators and offer the
      Cholesky API; damping values are cast to the factor's dtype (1.9+).
    lazy_optimizer_ops: The optimizer's convenience properties and
      `apply_gradients` create the variables and ops on first use (1.8).
    extra_modules: Never-exported module of the release -> the private
      module holding it (`placement` 1.8+, `linear_operator` 1.9+).
  """

  version: str
  package: str
  exports: Mapping[str, tuple[str, ...]]
  members: Mapping[str, tuple[tuple[str, str], ...]] = _empty_mapping()
  signatures: Mapping[str, str] = _empty_mapping()
  arg_docs: Mapping[str, Mapping[str, str]] = _empty_mapping()
  momentum_default: float = 0.0
  colocate_gradients_default: Optional[bool] = None
  default_generic_approximation: str = "diagonal"
  default_fully_connected_multi_approximation: Optional[str] = None
  registration: str = "direct"
  construction: str = "eager"
  factor_dtype_follows_data: bool = False
  conv_diagonal_damping_normalised: bool = True
  categorical_fisher_fixed: bool = False
  eigen_inverses_grouped: bool = False
  partial_derivative_products: bool = False
  overlapping_keys_error: bool = False
  naming: str = "1.4"
  cov_ops_colocation: str = "none"
  update_thunks: bool = False
  estimator_damping_fn_first: bool = False
  qmodel_previous_update_scaled: bool = False
  qmodel_change_negative: bool = False
  engine_modules: Mapping[str, str] = _empty_mapping()
  inlined_bases: tuple[str, ...] = ()
  renamed_classes: Mapping[str, str] = _empty_mapping()
  linear_operator_factors: bool = False
  lazy_optimizer_ops: bool = False
  extra_modules: Mapping[str, str] = _empty_mapping()

  def derive(
    self,
    version,
    package,
    added=None,
    removed=None,
    members=None,
    dropped_members=None,
    signatures=None,
    arg_docs=None,
    **changes,
  ):
    """Returns the release that follows this one.

    Args:
      version: The new release, e.g. "1.6".
      package: Its Python package, e.g. "kfac.r1_6".
      added: Module -> names the allow-list gains.
      removed: Module -> names the allow-list loses.
      members: Target -> ((member, face-member function name), ...) that
        this release adds or replaces (merged over the parent's).
      dropped_members: Target -> member names of the parent's `members` that
        this release no longer overrides (the engine's come back).
      signatures: Dotted member -> parameter list (merged over the
        parent's; None removes the parent's entry).
      arg_docs: Dotted member -> {parameter: text} (merged over the
        parent's).
      **changes: New values of the behaviour flags.

    Returns:
      A new `Release`.
    """
    exports = {m: list(names) for m, names in self.exports.items()}
    for module, names in (removed or {}).items():
      exports[module] = [n for n in exports[module] if n not in names]
    for module, names in (added or {}).items():
      exports[module] = exports[module] + [
        n for n in names if n not in exports[module]
      ]
    merged = {t: dict(m) for t, m in self.members.items()}
    for target, names in (dropped_members or {}).items():
      for name in names:
        merged.get(target, {}).pop(name, None)
    for target, pairs in (members or {}).items():
      merged.setdefault(target, {}).update(dict(pairs))
    new_signatures = dict(self.signatures)
    for target, params in (signatures or {}).items():
      if params is None:
        new_signatures.pop(target, None)
      else:
        new_signatures[target] = params
    new_arg_docs = {t: dict(d) for t, d in self.arg_docs.items()}
    for target, docs in (arg_docs or {}).items():
      new_arg_docs.setdefault(target, {}).update(docs)
    return dataclasses.replace(
      self,
      version=version,
      package=package,
      signatures=_frozen(new_signatures),
      arg_docs=_frozen({t: _frozen(d) for t, d in new_arg_docs.items()}),
      exports=_frozen({m: tuple(sorted(n)) for m, n in exports.items()}),
      members=_frozen(
        {t: tuple(sorted(m.items())) for t, m in merged.items() if m}
      ),
      **changes,
    )


# The allow-lists of the 1.4 pages (`api_surface.md`); the seed's pages and
# TF 1.4.0 export the same names. `kfac._surface` (TensorFlow-free, shared
# with `kfac-upgrade`) holds them.
_EXPORTS_1_4 = {m: _surface.public_names("1.4", m) for m in _surface.MODULES}

# The `kfac` face: the engine modules themselves.
SEED = Release(
  version="seed",
  package="kfac",
  exports=_frozen({m: tuple(sorted(n)) for m, n in _EXPORTS_1_4.items()}),
)

# TF 1.4.0 as released: `FullyConnectedDiagonalFB` still took the layer's
# data in its constructor (the seed's pages document the later form).
R1_4 = SEED.derive(
  "1.4",
  "kfac.r1_4",
  signatures={
    "estimator.FisherEstimator.__init__": "variables, cov_ema_decay, damping, layer_collection, "
    "estimation_mode='gradients'",
    "optimizer.KfacOptimizer.__init__": "learning_rate, cov_ema_decay, damping, layer_collection, "
    "momentum=0.0, momentum_type='regular', norm_constraint=None, "
    "name='KFAC'",
    "fisher_blocks.FullyConnectedDiagonalFB.__init__": "layer_collection, inputs, outputs, has_bias=False",
  },
  arg_docs={
    "fisher_blocks.FullyConnectedDiagonalFB.__init__": {
      "inputs": "The layer's inputs, `[batch, in]` (the factor's variables "
      "are named after this Tensor).",
      "outputs": "The layer's pre-activation outputs, `[batch, out]`.",
    }
  },
  members={
    "fisher_blocks.FullyConnectedDiagonalFB": (
      ("register_additional_minibatch", None),
    )
  },
)


def _mixin_members(mixin, names):
  """`members` entries taking `names` from a `kfac._release_extras` mixin."""
  return tuple(
    (name, "kfac._release_extras:{}.{}".format(mixin, name)) for name in names
  )


# Members shared by the 1.5 blocks (see `kfac._face_members`).
_GENERIC_FB_1_5 = (
  ("__init__", "generic_fb_1_5__init__"),
  (
    "register_additional_minibatch",
    "generic_fb_1_5__register_additional_minibatch",
  ),
  ("instantiate_factors", "generic_fb_1_5__instantiate_factors"),
  ("_num_registered_minibatches", "block_1_5___num_registered_minibatches"),
)
_IO_FB_1_5 = (
  ("register_additional_minibatch", "io_fb_1_5__register_additional_minibatch"),
  ("tensors_to_compute_grads", "io_fb_1_5__tensors_to_compute_grads"),
  ("_num_registered_minibatches", "block_1_5___num_registered_minibatches"),
)

# TF 1.5.0: multi-minibatch registration, per-collection default
# approximations, data dtypes, partial-derivative curvature products.
R1_5 = R1_4.derive(
  "1.5",
  "kfac.r1_5",
  added={
    "fisher_blocks": ("set_global_constants",),
    "fisher_factors": ("set_global_constants",),
    "layer_collection": ("VARIABLE_SCOPE",),
  },
  removed={"utils": ("setdefault", "compute_pi", "posdef_inv_funcs")},
  members={
    "utils": (
      ("POSDEF_EIG_METHOD", "kfac._multi_use:POSDEF_EIG_METHOD"),
      ("posdef_eig", "kfac._multi_use:posdef_eig"),
      ("posdef_eig_self_adjoint", "kfac._multi_use:posdef_eig_self_adjoint"),
      ("posdef_eig_svd", "kfac._multi_use:posdef_eig_svd"),
      ("posdef_inv_eig", "utils_1_5__posdef_inv_eig"),
      ("set_global_constants", "utils_1_5__set_global_constants"),
      ("__finish__", "utils_1_5__finish"),
    ),
    "fisher_blocks": (
      ("PI_OFF_NAME", "kfac._face_members:PI_OFF_NAME"),
      ("PI_TRACENORM_NAME", "kfac._face_members:PI_TRACENORM_NAME"),
      ("PI_TYPE", "kfac._face_members:PI_TRACENORM_NAME"),
      ("_concat_along_batch_dim", "blocks_1_5__concat_along_batch_dim"),
      ("set_global_constants", "blocks_1_5__set_global_constants"),
      ("SeriesFBApproximation", "kfac._multi_use:SeriesFBApproximation"),
      (
        "FullyConnectedMultiIndepFB",
        "kfac._multi_use:FullyConnectedMultiIndepFB",
      ),
      ("FullyConnectedSeriesFB", "kfac._multi_use:FullyConnectedSeriesFB"),
    ),
    "fisher_blocks.FisherBlock": (
      ("num_registered_minibatches", "block_1_5__num_registered_minibatches"),
    ),
    "fisher_blocks.FullFB": _GENERIC_FB_1_5,
    "fisher_blocks.NaiveDiagonalFB": _GENERIC_FB_1_5,
    "fisher_blocks.FullyConnectedKFACBasicFB": _IO_FB_1_5
    + (
      ("__init__", "fc_kfac_fb_1_5__init__"),
      ("instantiate_factors", "fc_kfac_fb_1_5__instantiate_factors"),
    ),
    "fisher_blocks.ConvKFCBasicFB": _IO_FB_1_5
    + (
      ("__init__", "conv_fb_1_5__init__"),
      ("instantiate_factors", "conv_fb_1_5__instantiate_factors"),
    ),
    "fisher_blocks.ConvDiagonalFB": _IO_FB_1_5
    + (
      ("__init__", "conv_fb_1_5__init__"),
      ("instantiate_factors", "conv_fb_1_5__instantiate_factors"),
    ),
    "fisher_blocks.KroneckerProductFB": (
      (
        "_register_damped_input_and_output_inverses",
        "kron_fb_1_5__register_damped_input_and_output_inverses",
      ),
    ),
    "layer_collection": (
      ("VARIABLE_SCOPE", "kfac._face_members:VARIABLE_SCOPE"),
      (
        "APPROX_KRONECKER_INDEP_NAME",
        "kfac._face_members:APPROX_KRONECKER_INDEP_NAME",
      ),
      (
        "APPROX_KRONECKER_SERIES_1_NAME",
        "kfac._face_members:APPROX_KRONECKER_SERIES_1_NAME",
      ),
      (
        "APPROX_KRONECKER_SERIES_2_NAME",
        "kfac._face_members:APPROX_KRONECKER_SERIES_2_NAME",
      ),
      ("ensure_sequence", "kfac._release_extras:ensure_sequence"),
    ),
    "layer_collection.LayerCollection": (("__init__", "lc_1_5__init__"),)
    + tuple(
      (member, "lc_1_5__" + member)
      for member in (
        "_new_factor",
        "default_generic_approximation",
        "default_fully_connected_approximation",
        "default_conv2d_approximation",
        "default_fully_connected_multi_approximation",
        "set_default_generic_approximation",
        "set_default_fully_connected_approximation",
        "set_default_conv2d_approximation",
        "set_default_fully_connected_multi_approximation",
        "linked_parameters",
        "registered_variables",
        "check_registration",
        "get_use_count_map",
        "register_block",
        "define_linked_parameters",
        "register_fully_connected",
        "register_conv2d",
        "register_generic",
        "register_fully_connected_multi",
        "register_categorical_predictive_distribution",
        "_register_loss",
      )
    )
    + (("reset_internals", None), ("generic_registrations", None)),
    "fisher_factors": (
      ("FullyConnectedMultiKF", "kfac._multi_use:FullyConnectedMultiKF"),
    ),
    "fisher_factors.InverseProvidingFactor": (
      (
        "get_damped_inverse",
        "kfac.fisher_factors:InverseProvidingFactor.get_inverse",
      ),
    ),
    "curvature_matrix_vector_products."
    "CurvatureMatrixVectorProductComputer": tuple(
      (
        member,
        "kfac._release_extras:"
        "PartialCurvatureMatrixVectorProductComputer." + member,
      )
      for member in ("_multiply_jacobian", "_multiply_jacobian_transpose")
    ),
    "loss_functions.LossFunction": (
      ("targets", "loss_1_5__targets"),
      ("input_minibatches", "loss_1_5__input_minibatches"),
      ("num_registered_minibatches", "loss_1_5__num_registered_minibatches"),
    ),
    "loss_functions.DistributionNegativeLogProbLoss": (
      ("dist", "loss_1_5__dist"),
    ),
    "loss_functions.CategoricalLogitsNegativeLogProbLoss": (
      ("_logits", "categorical_1_5___logits"),
      ("_targets", "categorical_1_5___targets"),
      ("_dist", "categorical_1_5___dist"),
      (
        "register_additional_minibatch",
        "categorical_1_5__register_additional_minibatch",
      ),
      ("input_minibatches", "categorical_1_5__input_minibatches"),
    ),
  },
  dropped_members={
    "fisher_blocks.FullyConnectedDiagonalFB": ("register_additional_minibatch",)
  },
  signatures={
    "fisher_blocks.FullyConnectedDiagonalFB.__init__": "layer_collection, has_bias=False",
    "loss_functions.LossFunction.__init__": "",
    "loss_functions.NegativeLogProbLoss.__init__": "seed=None",
    "loss_functions.DistributionNegativeLogProbLoss.__init__": "seed=None",
    "fisher_factors.FullFactor.__init__": "params_grads, batch_size, colocate_cov_ops_with_inputs=False",
    "fisher_factors.NaiveDiagonalFactor.__init__": "params_grads, batch_size, colocate_cov_ops_with_inputs=False",
    "fisher_factors.FullyConnectedDiagonalFactor.__init__": "inputs, outputs_grads, has_bias=False, "
    "colocate_cov_ops_with_inputs=False",
    "fisher_factors.ConvDiagonalFactor.__init__": "inputs, outputs_grads, filter_shape, strides, padding, "
    "has_bias=False, colocate_cov_ops_with_inputs=False",
    "fisher_factors.FullyConnectedKroneckerFactor.__init__": "tensors, has_bias=False, colocate_cov_ops_with_inputs=False",
    "fisher_factors.ConvInputKroneckerFactor.__init__": "inputs, filter_shape, strides, padding, has_bias=False, "
    "colocate_cov_ops_with_inputs=False",
    "fisher_factors.ConvOutputKroneckerFactor.__init__": "outputs_grads, colocate_cov_ops_with_inputs=False",
    "fisher_factors.FullyConnectedMultiKF.__init__": "tensor_lists, has_bias=False, colocate_cov_ops_with_inputs=False",
    "optimizer.KfacOptimizer.compute_gradients": "*args, **kwargs",
    "estimator.FisherEstimator.__init__": "variables, cov_ema_decay, damping, layer_collection, "
    "estimation_mode='gradients', colocate_gradients_with_ops=False, "
    "cov_devices=None, inv_devices=None",
    "optimizer.KfacOptimizer.__init__": "learning_rate, cov_ema_decay, damping, layer_collection, "
    "var_list=None, momentum=0.0, momentum_type='regular', "
    "norm_constraint=None, name='KFAC', estimation_mode='gradients', "
    "colocate_gradients_with_ops=False, cov_devices=None, "
    "inv_devices=None",
  },
  arg_docs={
    "optimizer.KfacOptimizer.compute_gradients": {
      "args": "Positional arguments of `Optimizer.compute_gradients` "
      "(`loss`, `var_list`, ...). A `var_list` given here "
      "(second position) must be the optimizer's variables.",
      "kwargs": "Keyword arguments of `Optimizer.compute_gradients`. "
      "A missing or None `var_list` becomes "
      "`self.variables`.",
    },
    "*": {
      "colocate_cov_ops_with_inputs": "Whether the covariance statistics are computed next to (colocated "
      "with) the factor's input data (TF 1.5's per-factor switch, given "
      "by `LayerCollection(colocate_cov_ops_with_inputs=...)`)."
    },
  },
  colocate_gradients_default=False,
  default_generic_approximation="full",
  default_fully_connected_multi_approximation="kron_series_2",
  registration="minibatch",
  factor_dtype_follows_data=True,
  eigen_inverses_grouped=True,
  partial_derivative_products=True,
  overlapping_keys_error=True,
  naming="1.5",
  cov_ops_colocation="collection_flag",
)

# TF 1.6.0: silent defaults (momentum 0.9, colocated gradients), update
# thunks, global colocation switch, conv-diagonal damping and categorical
# Fisher changes.
R1_6 = R1_5.derive(
  "1.6",
  "kfac.r1_6",
  added={
    "utils": ("set_global_constants", "ensure_sequence", "batch_execute"),
    "fisher_factors": ("maybe_colocate_with", "compute_cov", "append_homog"),
    "fisher_blocks": (
      "compute_pi_tracenorm",
      "compute_pi_adjusted_damping",
      "num_conv_locations",
      "normalize_damping",
    ),
    "layer_collection": (
      "APPROX_KRONECKER_INDEP_NAME",
      "APPROX_KRONECKER_SERIES_1_NAME",
      "APPROX_KRONECKER_SERIES_2_NAME",
    ),
    "loss_functions": ("OnehotCategoricalLogitsNegativeLogProbLoss",),
  },
  signatures={
    "fisher_factors.FullFactor.__init__": None,
    "fisher_factors.NaiveDiagonalFactor.__init__": None,
    "fisher_factors.FullyConnectedDiagonalFactor.__init__": None,
    "fisher_factors.ConvDiagonalFactor.__init__": None,
    "fisher_factors.FullyConnectedKroneckerFactor.__init__": None,
    "fisher_factors.ConvInputKroneckerFactor.__init__": None,
    "fisher_factors.ConvOutputKroneckerFactor.__init__": None,
    "fisher_factors.FullyConnectedMultiKF.__init__": "tensor_lists, has_bias=False",
    "layer_collection.LayerCollection.__init__": "graph=None, name='LayerCollection'",
    "estimator.FisherEstimator.__init__": "variables, cov_ema_decay, damping, layer_collection, "
    "estimation_mode='gradients', colocate_gradients_with_ops=True, "
    "cov_devices=None, inv_devices=None",
    "optimizer.KfacOptimizer.__init__": "learning_rate, cov_ema_decay, damping, layer_collection, "
    "var_list=None, momentum=0.9, momentum_type='regular', "
    "norm_constraint=None, name='KFAC', estimation_mode='gradients', "
    "colocate_gradients_with_ops=True, cov_devices=None, "
    "inv_devices=None",
  },
  members={
    "utils": (
      ("ensure_sequence", "kfac._release_extras:ensure_sequence"),
      ("batch_execute", "kfac._release_extras:batch_execute"),
      ("on_tpu", "utils_1_6__on_tpu"),
      ("cross_replica_mean", "utils_1_6__cross_replica_mean"),
    ),
    "fisher_factors": (
      ("COLOCATE_COV_OPS_WITH_INPUTS", "kfac._face_members:_TRUE"),
      ("set_global_constants", "factors_1_6__set_global_constants"),
      ("maybe_colocate_with", "factors_1_6__maybe_colocate_with"),
      ("compute_cov", "factors_1_6__compute_cov"),
      ("append_homog", "factors_1_6__append_homog"),
      ("extract_image_patches", "factors_1_6__extract_image_patches"),
    ),
    "fisher_factors.InverseProvidingFactor": (
      ("reset_eigendecomp", "factors_1_6__reset_eigendecomp"),
    ),
    "fisher_blocks": (
      ("normalize_damping", "blocks_1_6__normalize_damping"),
      ("compute_pi_tracenorm", "blocks_1_6__compute_pi_tracenorm"),
      (
        "compute_pi_adjusted_damping",
        "blocks_1_6__compute_pi_adjusted_damping",
      ),
      ("num_conv_locations", "blocks_1_6__num_conv_locations"),
    ),
    "loss_functions": (
      (
        "OnehotCategoricalLogitsNegativeLogProbLoss",
        "kfac._release_extras:OnehotCategoricalLogitsNegativeLogProbLoss",
      ),
    ),
    "estimator.FisherEstimator": (("_setup", "estimator_1_6___setup"),),
    "optimizer.KfacOptimizer": tuple(
      (name, "optimizer_1_6__" + name)
      for name in (
        "cov_update_thunks",
        "cov_update_ops",
        "cov_update_op",
        "inv_update_thunks",
        "inv_update_ops",
        "inv_update_op",
      )
    ),
  },
  dropped_members={"layer_collection.LayerCollection": ("_new_factor",)},
  momentum_default=0.9,
  colocate_gradients_default=True,
  conv_diagonal_damping_normalised=False,
  categorical_fisher_fixed=True,
  naming="1.6",
  cov_ops_colocation="global",
  update_thunks=True,
)

# TF 1.7.0: embeddings, sparse gradients, factor products, damping
# adaptation, `FisherEstimator(damping_fn, ...)`.
R1_7 = R1_6.derive(
  "1.7",
  "kfac.r1_7",
  added={
    "utils": ("matmul_sparse_dense", "matmul_diag_sparse"),
    "fisher_factors": ("EmbeddingInputKroneckerFactor",),
    "fisher_blocks": ("EmbeddingKFACFB",),
  },
  members={
    "utils": (
      ("matmul_sparse_dense", "kfac._embedding:matmul_sparse_dense"),
      ("matmul_diag_sparse", "kfac._embedding:matmul_diag_sparse"),
      ("layer_params_to_mat2d", "kfac._embedding:layer_params_to_mat2d"),
      ("mat2d_to_layer_params", "kfac._embedding:mat2d_to_layer_params"),
    ),
    "fisher_factors": (
      (
        "EmbeddingInputKroneckerFactor",
        "kfac._embedding:EmbeddingInputKroneckerFactor",
      ),
    ),
    "fisher_factors.FisherFactor": _mixin_members(
      "FactorMultiplyMixin",
      (
        "get_cov_var",
        "left_multiply",
        "right_multiply",
        "left_multiply_inverse",
        "right_multiply_inverse",
      ),
    ),
    "fisher_factors.InverseProvidingFactor": _mixin_members(
      "DenseFactorMultiplyMixin", ("get_damped_inverse",)
    ),
    "fisher_factors.DiagonalFactor": _mixin_members(
      "DiagonalFactorMultiplyMixin", ("get_cov", "register_damped_inverse")
    ),
    "fisher_blocks": (
      ("EmbeddingKFACFB", "kfac._embedding:EmbeddingKFACFB"),
      ("compute_pi_tracenorm", "blocks_1_7__compute_pi_tracenorm"),
    ),
    "layer_collection.LayerCollection": (
      (
        "default_embedding_approximation",
        "lc_1_7__default_embedding_approximation",
      ),
      (
        "set_default_embedding_approximation",
        "lc_1_7__set_default_embedding_approximation",
      ),
      ("register_embedding", "lc_1_7__register_embedding"),
    ),
    "estimator.FisherEstimator": (
      ("__init__", "estimator_1_7__init__"),
      ("damping", "estimator_1_7__damping"),
    ),
    "optimizer.KfacOptimizer": (
      ("_make_fisher_estimator", "optimizer_1_7___make_fisher_estimator"),
      ("minimize", "optimizer_1_7__minimize"),
    )
    + tuple(
      (name, "kfac._damping_adaptation:DampingAdaptationMixin." + name)
      for name in (
        "_adapt_damping",
        "_is_chief",
        "_prev_train_batch",
        "_loss_fn",
        "_min_damping",
        "_damping_adaptation_decay",
        "_damping_adaptation_interval",
        "_omega",
        "_damping_variable",
        "_damping_constant",
        "damping",
        "damping_adaptation_interval",
        "set_damping_adaptation_params",
        "_adapts_here",
        "_assign_q_model_change",
        "_update_damping",
        "_minimize_with_damping_adaptation",
      )
    ),
  },
  signatures={
    "estimator.FisherEstimator.__init__": "damping_fn, variables, cov_ema_decay, layer_collection, "
    "estimation_mode='gradients', colocate_gradients_with_ops=True, "
    "cov_devices=None, inv_devices=None",
    "utils.matmul_sparse_dense": "A, B, name=None",
  },
  estimator_damping_fn_first=True,
  qmodel_previous_update_scaled=True,
  qmodel_change_negative=True,
)

RELEASES = _frozen({r.version: r for r in (SEED, R1_4, R1_5, R1_6, R1_7)})

# Releases whose faces are built (a `kfac/r1_N` package exists).
BUILT = ("1.4", "1.5", "1.6", "1.7")


def of(obj):
  """The `Release` an engine object follows (the seed's for `kfac`'s own).

  Every class of a release face carries its release as the class attribute
  `_release`; engine classes do not, and follow the seed.

  Args:
    obj: An engine or face object (or class).

  Returns:
    The `Release`.
  """
  return getattr(obj, "_release", SEED)


def get(version):
  """Returns the `Release` named `version` ("seed", "1.4", ...).

  Args:
    version: A key of `RELEASES`.

  Returns:
    The `Release`.

  Raises:
    KeyError: If no such release is declared.
  """
  return RELEASES[version]


# ---------------------------------------------------------------------------
# Releases 1.8-1.10: deferred construction. The faces of `fisher_factors`,
# `fisher_blocks` and `estimator` are built from private modules written for
# the deferred life cycle (they call the engine's maths); the other modules
# keep the engine plus adapters (`kfac._deferred_members`).

_DEFERRED_ENGINES = {
  "fisher_factors": "kfac._deferred_factors",
  "fisher_blocks": "kfac._deferred_blocks",
  "estimator": "kfac._deferred_estimator",
}


def _members_outside(release, modules):
  """`release.members` without the targets of `modules`."""
  return _frozen(
    {
      target: pairs
      for target, pairs in release.members.items()
      if target.split(".")[0] not in modules
    }
  )


def _signatures_outside(release, modules):
  return _frozen(
    {
      target: params
      for target, params in release.signatures.items()
      if target.split(".")[0] not in modules
    }
  )


def _deferred(name):
  return "kfac._deferred_members:" + name


def _removed(names):
  return tuple((name, None) for name in names)


# Members of 1.9 that 1.8 does not have.
_CHOLESKY_BLOCK_MEMBERS = (
  "register_cholesky",
  "register_cholesky_inverse",
  "multiply_cholesky",
  "multiply_cholesky_inverse",
)
_LINEAR_OPERATOR_FACTOR_MEMBERS = (
  "register_cholesky",
  "register_cholesky_inverse",
  "get_cholesky",
  "get_cholesky_inverse",
  "get_cov_as_linear_operator",
)
_BLOCKS_1_8 = (
  "FisherBlock",
  "FullFB",
  "NaiveDiagonalFB",
  "FullyConnectedDiagonalFB",
  "ConvDiagonalFB",
  "KroneckerProductFB",
  "FullyConnectedKFACBasicFB",
  "ConvKFCBasicFB",
  "EmbeddingKFACFB",
  "FullyConnectedMultiIndepFB",
  # New layer types (layers18).
  "DepthwiseConvDiagonalFB",
  "DepthwiseConvKFCBasicFB",
  "ConvKFCBasicMultiIndepFB",
  "EmbeddingKFACMultiIndepFB",
  "FullyConnectedSeriesFB",
)
_FACTORS_1_8 = (
  "FisherFactor",
  "InverseProvidingFactor",
  "DiagonalFactor",
  "FullFactor",
  "NaiveDiagonalFactor",
  "FullyConnectedDiagonalFactor",
  "ConvDiagonalFactor",
  "FullyConnectedKroneckerFactor",
  "ConvInputKroneckerFactor",
  "ConvOutputKroneckerFactor",
  "EmbeddingInputKroneckerFactor",
  "FullyConnectedMultiKF",
)
_OPTIMIZER_PROPERTIES = (
  "cov_update_thunks",
  "cov_update_ops",
  "cov_update_op",
  "inv_update_thunks",
  "inv_update_ops",
  "inv_update_op",
)
_LC_1_8 = (
  "losses",
  "towers_by_loss",
  "default_conv2d_multi_approximation",
  "default_embedding_multi_approximation",
  "_add_uses",
  "_get_use_count_map",
  "register_loss_function",
  "register_categorical_predictive_distribution",
  "register_normal_predictive_distribution",
  "register_multi_bernoulli_predictive_distribution",
  "eval_losses",
  "eval_losses_on_samples",
  "total_loss",
  "total_sampled_loss",
  "as_default",
  "register_conv2d",
  "register_fully_connected_multi",
  "_series_approximations",
  "_series_block",
  # New layer types (layers18).
  "register_convolution",
  "register_depthwise_conv2d",
  "register_separable_conv2d",
  "register_conv2d_multi",
  "register_embedding_multi",
)

_R1_8_BASE = dataclasses.replace(
  R1_7,
  members=_members_outside(R1_7, tuple(_DEFERRED_ENGINES)),
  signatures=_frozen(
    {
      target: params
      for target, params in _signatures_outside(
        R1_7, tuple(_DEFERRED_ENGINES)
      ).items()
      if target != "optimizer.KfacOptimizer.__init__"
    }
  ),
)

# TF 1.8.0: deferred construction, towers, damping functions with ids,
# placement, the 1.8 variable names (releases.md §12.2).
R1_8 = _R1_8_BASE.derive(
  "1.8",
  "kfac.r1_8",
  members={
    "utils": (
      ("PartitionedTensor", "kfac._towers:PartitionedTensor"),
      (
        "extract_convolution_patches",
        "kfac._patches:extract_convolution_patches",
      ),
      (
        "extract_pointwise_conv2d_patches",
        "kfac._patches:extract_pointwise_conv2d_patches",
      ),
      (
        "is_data_format_channel_last",
        "kfac._patches:is_data_format_channel_last",
      ),
    ),
    "loss_functions.LossFunction": _removed(
      ("input_minibatches", "num_registered_minibatches")
    ),
    "loss_functions.DistributionNegativeLogProbLoss": (
      ("_dist", _deferred("loss_1_8___dist")),
    ),
    "loss_functions.NormalMeanNegativeLogProbLoss": (
      ("_new_dist", _deferred("normal_1_8___new_dist")),
    ),
    "loss_functions.NormalMeanVarianceNegativeLogProbLoss": (
      ("_new_dist", _deferred("normal_variance_1_8___new_dist")),
    ),
    "loss_functions.CategoricalLogitsNegativeLogProbLoss": (
      ("_new_dist", _deferred("categorical_1_8___new_dist")),
    )
    + _removed(
      (
        "_logits",
        "_targets",
        "_dist",
        "register_additional_minibatch",
        "input_minibatches",
      )
    ),
    "loss_functions.MultiBernoulliNegativeLogProbLoss": (
      ("_new_dist", _deferred("bernoulli_1_8___new_dist")),
    ),
    "fisher_factors": _removed(("set_global_constants_1_9",))
    + (("compute_cov", "factors_1_6__compute_cov"),),
    "fisher_blocks": _removed(("DiagonalFB",))
    + (
      ("normalize_damping", "blocks_1_6__normalize_damping"),
      (
        "compute_pi_adjusted_damping",
        "blocks_1_6__compute_pi_adjusted_damping",
      ),
    ),
    "placement": (
      (
        "RoundRobinPlacementMixin",
        "kfac._placement:RoundRobinPlacementMixin18",
      ),
      ("RoundRobinPlacementMixin18", None),
    ),
    "estimator": (
      (
        "make_fisher_estimator",
        "kfac._deferred_estimator:make_fisher_estimator_1_8",
      ),
      (
        "FisherEstimatorRoundRobin",
        "kfac._deferred_estimator:FisherEstimatorRoundRobin18",
      ),
    )
    + _removed(
      (
        "make_fisher_estimator_1_8",
        "FisherEstimatorRoundRobin18",
        "fisher_estimator_1_8__init__",
      )
    ),
    "estimator.FisherEstimator": (
      ("__init__", "kfac._deferred_estimator:fisher_estimator_1_8__init__"),
    )
    + _removed(("multiply_cholesky", "multiply_cholesky_inverse")),
    "layer_collection": (
      (
        "get_default_layer_collection",
        _deferred("get_default_layer_collection"),
      ),
      (
        "set_default_layer_collection",
        _deferred("set_default_layer_collection"),
      ),
      ("_default_layer_collection", _deferred("_default_layer_collection")),
      ("_AsDefault", _deferred("_AsDefault")),
    ),
    "layer_collection.LayerCollection": (
      ("__init__", _deferred("lc_1_8__init__")),
      ("_lc_1_5__init", "lc_1_5__init__"),
      ("get_use_count_map", None),
      ("_register_loss", None),
    )
    + tuple((name, _deferred("lc_1_8__" + name)) for name in _LC_1_8),
    "optimizer": (("warnings", _deferred("warnings")),),
    "optimizer.KfacOptimizer": (
      ("__init__", _deferred("optimizer_1_8__init__")),
      ("_losses", _deferred("optimizer_1_8___losses")),
      ("_make_fisher_estimator", None),
    )
    + tuple(
      (name, _deferred("optimizer_1_8__" + name))
      for name in _OPTIMIZER_PROPERTIES
      + (
        "make_vars_and_create_op_thunks",
        "create_ops_and_vars_thunks",
        "make_ops_and_vars",
        "apply_gradients",
        "minimize",
      )
    ),
  },
  signatures={
    "fisher_factors.ConvInputKroneckerFactor.__init__": "inputs, filter_shape, padding, strides=None, "
    "dilation_rate=None, data_format=None, extract_patches_fn=None, "
    "has_bias=False",
    "fisher_factors.diagonal_covariance_initializer": "shape, dtype, partition_info",
  },
  default_fully_connected_multi_approximation="kron_indep",
  registration="tower",
  construction="deferred",
  naming="1.8",
  cov_ops_colocation="tower",
  engine_modules=_frozen(_DEFERRED_ENGINES),
  inlined_bases=("DiagonalFB",),
  lazy_optimizer_ops=True,
  extra_modules=_frozen({"placement": "kfac._placement"}),
)
R1_8 = dataclasses.replace(
  R1_8,
  exports=_frozen(
    {m: tuple(sorted(_surface.public_names("1.8", m))) for m in MODULES}
  ),
  members=_frozen(
    dict(
      R1_8.members,
      **{
        "fisher_factors.{}".format(cls): _removed(
          _LINEAR_OPERATOR_FACTOR_MEMBERS
          + (
            ("register_matpower", "get_matpower")
            if cls == "FisherFactor"
            else ()
          )
        )
        for cls in _FACTORS_1_8
      },
      **{
        "fisher_blocks.{}".format(cls): _removed(_CHOLESKY_BLOCK_MEMBERS)
        for cls in _BLOCKS_1_8
      },
    )
  ),
)

# TF 1.9.0: linear-operator factors, Cholesky API, zero initialisation and
# zero-debiasing, `make_fisher_estimator` exported, ops made before
# `minimize`.
R1_9 = R1_8.derive(
  "1.9",
  "kfac.r1_9",
  members={
    "fisher_factors": (
      ("INIT_COVARIANCES_AT_ZERO", "kfac._face_members:_TRUE"),
      ("ZERO_DEBIAS", "kfac._face_members:_TRUE"),
      ("INIT_INVERSES_AT_ZERO", "kfac._face_members:_TRUE"),
      (
        "set_global_constants",
        "kfac._deferred_factors:set_global_constants_1_9",
      ),
    ),
    "fisher_blocks": (),
    "estimator": _removed(
      (
        "make_fisher_estimator_1_8",
        "FisherEstimatorRoundRobin18",
        "fisher_estimator_1_8__init__",
      )
    ),
    "optimizer.KfacOptimizer": _removed(
      _OPTIMIZER_PROPERTIES + ("make_ops_and_vars",)
    ),
    "utils": (("cholesky", "kfac._deferred_factors:_utils_cholesky"),),
  },
  dropped_members={
    "fisher_blocks": ("DiagonalFB",),
    "placement": ("RoundRobinPlacementMixin",),
    "estimator": ("make_fisher_estimator", "FisherEstimatorRoundRobin"),
    "estimator.FisherEstimator": (
      "multiply_cholesky",
      "multiply_cholesky_inverse",
    ),
  },
  signatures={
    "utils.matmul_sparse_dense": None,
    # 1.9's optional patch sub-sampling arguments (layers18).
    "fisher_factors.ConvInputKroneckerFactor.__init__": None,
    "fisher_factors.diagonal_covariance_initializer": None,
  },
  default_generic_approximation="diagonal",
  inlined_bases=(),
  renamed_classes=_frozen(
    {"fisher_factors.InverseProvidingFactor": "DenseSquareMatrixFactor"}
  ),
  linear_operator_factors=True,
  lazy_optimizer_ops=False,
  extra_modules=_frozen(
    {"placement": "kfac._placement", "linear_operator": "kfac._linear_operator"}
  ),
)


def _members_1_9(release):
  """1.9's members: the 1.8-only removals of 1.9 API undone, 1.9's added."""
  members = {}
  for target, pairs in release.members.items():
    module, _, cls = target.partition(".")
    kept = pairs
    if module == "fisher_factors" and cls in _FACTORS_1_8:
      kept = _removed(("left_multiply_matpower", "right_multiply_matpower"))
      if cls == "FisherFactor":
        kept += _removed(("get_cov_var",))
    elif module == "fisher_blocks" and cls in _BLOCKS_1_8:
      kept = ()
    if kept:
      members[target] = kept
  members["fisher_factors.FisherFactor"] = _removed(
    ("left_multiply_matpower", "right_multiply_matpower", "get_cov_var")
  )
  members["fisher_factors.DenseSquareMatrixFactor"] = _removed(
    ("left_multiply_matpower", "right_multiply_matpower")
  )
  members["estimator.FisherEstimator"] = _removed(("make_ops_and_vars",))
  return _frozen(members)


R1_9 = dataclasses.replace(
  R1_9,
  exports=_frozen(
    {m: tuple(sorted(_surface.public_names("1.9", m))) for m in MODULES}
  ),
  members=_members_1_9(R1_9),
)

# TF 1.10.0: the 1.9 API. (Its one difference, a DeprecationWarning from
# `KfacOptimizer()` pointing users elsewhere, is not reproduced; see
# docs/compatibility.md.)
R1_10 = R1_9.derive("1.10", "kfac.r1_10")

RELEASES = _frozen(
  {r.version: r for r in (SEED, R1_4, R1_5, R1_6, R1_7, R1_8, R1_9, R1_10)}
)
BUILT = BUILT + ("1.8", "1.9", "1.10")
