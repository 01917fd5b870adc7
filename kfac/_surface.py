"""The public surface of each `tf.contrib.kfac` release, as data.

One table, free of TensorFlow, that the package and its tools read:

* `MODULES`: the nine public modules (the same in every release);
* `RELEASES`: for each release, its public names per module and the
  signatures that `kfac-upgrade` reads argument lists from;
* `KFAC_KEYWORD_ONLY`: the keyword-only parameters that `kfac`'s classes
  accept beyond a release's signature.

`kfac/__init__.py` and `install_tf_contrib_alias` take the module list from
here, `kfac-upgrade` its name and parameter tables, and the tests hold the
table against `tests/data/api_surface.md` and the modules' `__all__`.

A release is written as the changes from the one before it (the "New public
names" and "Public names gone" lines of the release's surface file), so that
adding one is adding an entry to `_CHANGES`, not code. Signatures are written
as in the surface files: the parameter list between the parentheses, with
the defaults as source text.
"""

__all__ = [
  "MODULES",
  "RELEASES",
  "KFAC_KEYWORD_ONLY",
  "Release",
  "public_names",
  "parameters",
]

# The modules of `tf.contrib.kfac`, in the order of the package's `__init__`
# (each depends only on those before it).
MODULES = (
  "utils",
  "loss_functions",
  "curvature_matrix_vector_products",
  "op_queue",
  "fisher_factors",
  "fisher_blocks",
  "layer_collection",
  "estimator",
  "optimizer",
)

# Release 1.4: every public name of every module (`api_surface.md`).
_NAMES_14 = {
  "curvature_matrix_vector_products": ("CurvatureMatrixVectorProductComputer",),
  "estimator": ("FisherEstimator",),
  "fisher_blocks": (
    "FisherBlock",
    "FullFB",
    "NaiveDiagonalFB",
    "FullyConnectedDiagonalFB",
    "KroneckerProductFB",
    "FullyConnectedKFACBasicFB",
    "ConvKFCBasicFB",
    "ConvDiagonalFB",
    "set_global_constants",
  ),
  "fisher_factors": (
    "inverse_initializer",
    "covariance_initializer",
    "diagonal_covariance_initializer",
    "scope_string_from_params",
    "scope_string_from_name",
    "scalar_or_tensor_to_string",
    "FisherFactor",
    "InverseProvidingFactor",
    "FullFactor",
    "DiagonalFactor",
    "NaiveDiagonalFactor",
    "FullyConnectedDiagonalFactor",
    "FullyConnectedKroneckerFactor",
    "ConvInputKroneckerFactor",
    "ConvOutputKroneckerFactor",
    "ConvDiagonalFactor",
    "set_global_constants",
  ),
  "layer_collection": (
    "LayerParametersDict",
    "LayerCollection",
    "APPROX_KRONECKER_NAME",
    "APPROX_DIAGONAL_NAME",
    "APPROX_FULL_NAME",
  ),
  "loss_functions": (
    "LossFunction",
    "NegativeLogProbLoss",
    "NaturalParamsNegativeLogProbLoss",
    "DistributionNegativeLogProbLoss",
    "NormalMeanNegativeLogProbLoss",
    "NormalMeanVarianceNegativeLogProbLoss",
    "CategoricalLogitsNegativeLogProbLoss",
    "MultiBernoulliNegativeLogProbLoss",
    "insert_slice_in_zeros",
  ),
  "op_queue": ("OpQueue",),
  "optimizer": ("KfacOptimizer",),
  "utils": (
    "SequenceDict",
    "setdefault",
    "tensors_to_column",
    "column_to_tensors",
    "kronecker_product",
    "layer_params_to_mat2d",
    "mat2d_to_layer_params",
    "compute_pi",
    "posdef_inv",
    "posdef_inv_matrix_inverse",
    "posdef_inv_cholesky",
    "posdef_inv_funcs",
    "SubGraph",
    "generate_random_signs",
    "fwd_gradients",
  ),
}

# Release 1.4: the signatures `kfac-upgrade` reads (`api_surface.md`).
_SIGNATURES_14 = {
  "optimizer.KfacOptimizer.__init__": (
    "learning_rate, cov_ema_decay, damping, layer_collection, "
    "momentum=0.0, momentum_type='regular', norm_constraint=None, "
    "name='KFAC'"
  ),
  "estimator.FisherEstimator.__init__": (
    "variables, cov_ema_decay, damping, layer_collection, "
    "estimation_mode='gradients'"
  ),
  "layer_collection.LayerCollection.register_fully_connected": (
    "params, inputs, outputs, approx=APPROX_KRONECKER_NAME"
  ),
  "layer_collection.LayerCollection.register_conv2d": (
    "params, strides, padding, inputs, outputs, approx=APPROX_KRONECKER_NAME"
  ),
  "layer_collection.LayerCollection.register_generic": (
    "params, batch_size, approx=APPROX_DIAGONAL_NAME"
  ),
  "layer_collection.LayerCollection."
  "register_categorical_predictive_distribution": (
    "logits, seed=None, targets=None, name=None"
  ),
  "layer_collection.LayerCollection.register_normal_predictive_distribution": (
    "mean, var=0.5, seed=None, targets=None, name=None"
  ),
  "layer_collection.LayerCollection."
  "register_multi_bernoulli_predictive_distribution": (
    "logits, seed=None, targets=None, name=None"
  ),
}

# Each later release as changes from the one before: names added and removed
# per module (from `surface/r1.N.md`), and signatures that changed.
_CHANGES = (
  (
    "1.5",
    {
      "added": {
        "fisher_blocks": ("set_global_constants",),
        "fisher_factors": ("set_global_constants",),
        "layer_collection": ("VARIABLE_SCOPE",),
      },
      "removed": {"utils": ("compute_pi", "posdef_inv_funcs", "setdefault")},
    },
  ),
  (
    "1.6",
    {
      "added": {
        "fisher_blocks": (
          "compute_pi_adjusted_damping",
          "compute_pi_tracenorm",
          "normalize_damping",
          "num_conv_locations",
        ),
        "fisher_factors": (
          "append_homog",
          "compute_cov",
          "maybe_colocate_with",
        ),
        "layer_collection": (
          "APPROX_KRONECKER_INDEP_NAME",
          "APPROX_KRONECKER_SERIES_1_NAME",
          "APPROX_KRONECKER_SERIES_2_NAME",
        ),
        "loss_functions": ("OnehotCategoricalLogitsNegativeLogProbLoss",),
        "utils": ("batch_execute", "ensure_sequence", "set_global_constants"),
      },
    },
  ),
  (
    "1.7",
    {
      "added": {
        "fisher_blocks": ("EmbeddingKFACFB",),
        "fisher_factors": ("EmbeddingInputKroneckerFactor",),
        "utils": ("matmul_diag_sparse", "matmul_sparse_dense"),
      },
    },
  ),
  (
    "1.8",
    {
      "added": {
        "layer_collection": (
          "get_default_layer_collection",
          "set_default_layer_collection",
        ),
        "utils": (
          "extract_convolution_patches",
          "extract_pointwise_conv2d_patches",
          "is_data_format_channel_last",
        ),
      },
      "removed": {"fisher_factors": ("maybe_colocate_with",)},
    },
  ),
  (
    "1.9",
    {
      "added": {"estimator": ("make_fisher_estimator",)},
      "removed": {"fisher_factors": ("InverseProvidingFactor",)},
    },
  ),
  ("1.10", {}),
)

# Keyword-only parameters that `kfac`'s classes accept on top of the 1.4
# signature (the r1.5 additions, usable from a 1.4 program by keyword, and
# kfac's own robustness switches).
KFAC_KEYWORD_ONLY = {
  "optimizer.KfacOptimizer.__init__": (
    "var_list",
    "estimation_mode",
    "colocate_gradients_with_ops",
    "cov_devices",
    "inv_devices",
    "skip_nonfinite_updates",
    "check_tensor_settings",
  ),
}


class Release(object):
  """The public surface of one release.

  Attributes:
    version: str, e.g. "1.4".
    names: dict mapping each module of `MODULES` to a frozenset of its
      public names.
    signatures: dict mapping "module.Class.method" to the parameter list as
      written in the surface files (only the entries recorded here).
  """

  def __init__(self, version, names, signatures):
    """Stores the release's tables.

    Args:
      version: str, the release.
      names: dict, module -> iterable of public names.
      signatures: dict, "module.Class.method" -> parameter list text.
    """
    self.version = version
    self.names = {
      module: frozenset(names.get(module, ())) for module in MODULES
    }
    self.signatures = dict(signatures)


def _build_releases():
  releases = {"1.4": Release("1.4", _NAMES_14, _SIGNATURES_14)}
  previous = releases["1.4"]
  for version, change in _CHANGES:
    names = {module: set(previous.names[module]) for module in MODULES}
    for module, added in change.get("added", {}).items():
      names[module].update(added)
    for module, removed in change.get("removed", {}).items():
      names[module].difference_update(removed)
    signatures = dict(previous.signatures, **change.get("signatures", {}))
    previous = releases[version] = Release(version, names, signatures)
  return releases


# Every release, by version string ("1.4" ... "1.10").
RELEASES = _build_releases()


def public_names(release, module):
  """The public names of `module` in `release`.

  Args:
    release: str, a key of `RELEASES` (e.g. "1.4").
    module: str, one of `MODULES`.

  Returns:
    A frozenset of names.

  Raises:
    KeyError: for an unknown release or module.
  """
  return RELEASES[release].names[module]


def parameters(release, qualname):
  """The parameter names of a recorded signature, in order.

  Args:
    release: str, a key of `RELEASES`.
    qualname: str, "module.Class.method", a key of the release's
      `signatures`.

  Returns:
    A tuple of parameter names (defaults and `*`/`**` markers dropped).

  Raises:
    KeyError: if the signature is not recorded.
  """
  text = RELEASES[release].signatures[qualname]
  names = []
  for part in text.split(","):
    name = part.split("=", 1)[0].strip().lstrip("*")
    if name:
      names.append(name)
  return tuple(names)


# Members (methods, and keywords of `register_*` / `KfacOptimizer` calls)
# that only some releases have: name -> (first release, last release or
# None). `kfac-upgrade` infers a program's release from them (releases.md,
# surface/r1.N.md).
MEMBER_RELEASES = {
  "register_additional_minibatch": ("1.5", "1.7"),
  "register_fully_connected_multi": ("1.5", None),
  "define_linked_parameters": ("1.5", None),
  "check_registration": ("1.5", None),
  "set_default_fully_connected_approximation": ("1.5", None),
  "set_default_conv2d_approximation": ("1.5", None),
  "set_default_generic_approximation": ("1.5", None),
  "cov_update_thunks": ("1.6", "1.8"),
  "inv_update_thunks": ("1.6", "1.8"),
  "register_embedding": ("1.7", None),
  "set_damping_adaptation_params": ("1.7", None),
  "make_vars_and_create_op_thunks": ("1.8", None),
  "create_ops_and_vars_thunks": ("1.8", None),
  "register_loss_function": ("1.8", None),
}
KEYWORD_RELEASES = {
  # keyword of `LayerCollection.register_*` calls.
  "reuse": ("1.5", None),
  # keyword of `KfacOptimizer(...)`.
  "placement_strategy": ("1.8", None),
}

# Defaults that changed between releases and change what a program computes:
# qualname -> (parameter, position in each release's signature,
# {release: default}).
BEHAVIOUR_DEFAULTS = {
  "optimizer.KfacOptimizer.__init__": (
    "momentum",
    {"1.4": 4, "1.5": 5, "1.6": 5, "1.7": 5, "1.8": 5, "1.9": 5, "1.10": 5},
    {
      "1.4": "0.0",
      "1.5": "0.0",
      "1.6": "0.9",
      "1.7": "0.9",
      "1.8": "0.9",
      "1.9": "0.9",
      "1.10": "0.9",
    },
  ),
}
