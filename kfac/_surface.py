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

import collections

__all__ = [
  "MODULES",
  "RELEASES",
  "KFAC_KEYWORD_ONLY",
  "Release",
  "public_names",
  "parameters",
  "signature",
  "Signature",
  "MEMBER_RELEASES",
  "RECEIVER_MEMBERS",
  "KEYWORD_RELEASES",
  "INTERNAL_MODULES",
  "INSTANTIABLE",
  "PARAMETER_KINDS",
  "BEHAVIOUR_DEFAULTS",
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
  "layer_collection.LayerCollection.__init__": "graph=None, name='LayerCollection'",
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
      "signatures": {
        "optimizer.KfacOptimizer.__init__": (
          "learning_rate, cov_ema_decay, damping, layer_collection, "
          "var_list=None, momentum=0.0, momentum_type='regular', "
          "norm_constraint=None, name='KFAC', estimation_mode='gradients', "
          "colocate_gradients_with_ops=False, cov_devices=None, "
          "inv_devices=None"
        ),
        "estimator.FisherEstimator.__init__": (
          "variables, cov_ema_decay, damping, layer_collection, "
          "estimation_mode='gradients', colocate_gradients_with_ops=False, "
          "cov_devices=None, inv_devices=None"
        ),
        "layer_collection.LayerCollection.__init__": (
          "graph=None, colocate_cov_ops_with_inputs=False, "
          "name='LayerCollection'"
        ),
        "layer_collection.LayerCollection.register_fully_connected": (
          "params, inputs, outputs, approx=None, reuse=VARIABLE_SCOPE"
        ),
        "layer_collection.LayerCollection.register_conv2d": (
          "params, strides, padding, inputs, outputs, approx=None, "
          "reuse=VARIABLE_SCOPE"
        ),
        "layer_collection.LayerCollection.register_generic": (
          "params, batch_size, approx=None, reuse=VARIABLE_SCOPE"
        ),
        "layer_collection.LayerCollection.register_fully_connected_multi": (
          "params, inputs, outputs, approx=None"
        ),
        "layer_collection.LayerCollection."
        "register_categorical_predictive_distribution": (
          "logits, seed=None, targets=None, name=None, reuse=VARIABLE_SCOPE"
        ),
      },
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
      "signatures": {
        "optimizer.KfacOptimizer.__init__": (
          "learning_rate, cov_ema_decay, damping, layer_collection, "
          "var_list=None, momentum=0.9, momentum_type='regular', "
          "norm_constraint=None, name='KFAC', estimation_mode='gradients', "
          "colocate_gradients_with_ops=True, cov_devices=None, "
          "inv_devices=None"
        ),
        "estimator.FisherEstimator.__init__": (
          "variables, cov_ema_decay, damping, layer_collection, "
          "estimation_mode='gradients', colocate_gradients_with_ops=True, "
          "cov_devices=None, inv_devices=None"
        ),
        "layer_collection.LayerCollection.__init__": (
          "graph=None, name='LayerCollection'"
        ),
        "fisher_factors.set_global_constants": (
          "init_covariances_at_zero=None, zero_debias=None, "
          "eigenvalue_decomposition_threshold=None, "
          "eigenvalue_clipping_threshold=None, "
          "colocate_cov_ops_with_inputs=None"
        ),
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
      "signatures": {
        "estimator.FisherEstimator.__init__": (
          "damping_fn, variables, cov_ema_decay, layer_collection, "
          "estimation_mode='gradients', colocate_gradients_with_ops=True, "
          "cov_devices=None, inv_devices=None"
        ),
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
      "signatures": {
        "optimizer.KfacOptimizer.__init__": (
          "learning_rate, cov_ema_decay, damping, layer_collection, "
          "var_list=None, momentum=0.9, momentum_type='regular', "
          "norm_constraint=None, name='KFAC', estimation_mode='gradients', "
          "colocate_gradients_with_ops=True, batch_size=None, "
          "placement_strategy=None, **kwargs"
        ),
        "estimator.FisherEstimator.__init__": (
          "variables, cov_ema_decay, damping, layer_collection, exps=(-1,), "
          "estimation_mode='gradients', colocate_gradients_with_ops=True, "
          "name='FisherEstimator'"
        ),
        # Internal (`tensorflow.contrib.kfac.python.ops.estimator`).
        "estimator.FisherEstimatorRoundRobin.__init__": (
          "cov_devices=None, inv_devices=None, *args, **kwargs"
        ),
        "layer_collection.LayerCollection.register_conv2d": (
          "params, strides, padding, inputs, outputs, data_format=None, "
          "dilations=None, approx=None, reuse=VARIABLE_SCOPE"
        ),
        "layer_collection.LayerCollection.register_fully_connected_multi": (
          "params, inputs, outputs, num_uses=None, approx=None, "
          "reuse=VARIABLE_SCOPE"
        ),
        "layer_collection.LayerCollection."
        "register_normal_predictive_distribution": (
          "mean, var=0.5, seed=None, targets=None, name=None, "
          "reuse=VARIABLE_SCOPE"
        ),
        "layer_collection.LayerCollection."
        "register_multi_bernoulli_predictive_distribution": (
          "logits, seed=None, targets=None, name=None, reuse=VARIABLE_SCOPE"
        ),
        "fisher_factors.set_global_constants": (
          "init_covariances_at_zero=None, zero_debias=None, "
          "eigenvalue_decomposition_threshold=None, "
          "eigenvalue_clipping_threshold=None, tower_strategy=None"
        ),
      },
    },
  ),
  (
    "1.9",
    {
      "added": {"estimator": ("make_fisher_estimator",)},
      "removed": {"fisher_factors": ("InverseProvidingFactor",)},
      "signatures": {
        "estimator.FisherEstimator.__init__": (
          "variables, cov_ema_decay, damping, layer_collection, exps=(-1,), "
          "estimation_mode='gradients', colocate_gradients_with_ops=True, "
          "name='FisherEstimator', compute_cholesky=False, "
          "compute_cholesky_inverse=False"
        ),
        "estimator.FisherEstimatorRoundRobin.__init__": (
          "cov_devices=None, inv_devices=None, **kwargs"
        ),
        "fisher_factors.set_global_constants": (
          "init_covariances_at_zero=None, zero_debias=None, "
          "init_inverses_at_zero=None, "
          "eigenvalue_decomposition_threshold=None, "
          "eigenvalue_clipping_threshold=None, "
          "max_num_outer_products_per_cov_row=None, "
          "sub_sample_outer_products=None, "
          "inputs_to_extract_patches_factor=None, sub_sample_inputs=None, "
          "tower_strategy=None"
        ),
      },
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
  found = signature(release, qualname)
  return found.positional + found.keyword_only


# Members (methods, properties, and names reached through an alias of a
# module) that only some releases have: name -> (first release, last release
# or None). `kfac-upgrade` infers a program's release from them (releases.md,
# surface/r1.N.md). A name also public in a module (`make_fisher_estimator`
# from 1.9) counts with its public releases when reached through
# `tf.contrib.kfac.<module>`, with these when reached otherwise (the internal
# `python.ops` path had it from 1.8).
MEMBER_RELEASES = {
  # The optimizer's op attributes (1.4-1.5 instance attributes, then
  # properties; 1.9 removed them with `make_ops_and_vars`).
  "cov_update_op": ("1.4", "1.8"),
  "inv_update_op": ("1.4", "1.8"),
  "inv_updates_dict": ("1.4", "1.5"),
  "cov_update_ops": ("1.6", "1.8"),
  "inv_update_ops": ("1.6", "1.8"),
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
  "make_ops_and_vars": ("1.8", "1.8"),
  "register_loss_function": ("1.8", None),
  "register_convolution": ("1.8", None),
  "register_depthwise_conv2d": ("1.8", None),
  "register_separable_conv2d": ("1.8", None),
  "register_conv2d_multi": ("1.8", None),
  "register_embedding_multi": ("1.8", None),
  "register_additional_tower": ("1.8", None),
  "num_registered_towers": ("1.8", None),
  "get_default_layer_collection": ("1.8", None),
  "set_default_layer_collection": ("1.8", None),
  "make_fisher_estimator": ("1.8", None),
  "FisherEstimatorRoundRobin": ("1.8", None),
  "RoundRobinPlacementMixin": ("1.8", None),
  "PartitionedTensor": ("1.8", None),
}

# Members whose name is common elsewhere (`tf.Graph().as_default()`): they
# count only on a receiver the program built with the class named here
# (`lc = LayerCollection(); lc.as_default()`): name -> (class, first release,
# last release or None).
RECEIVER_MEMBERS = {
  "as_default": ("LayerCollection", "1.8", None),
}

# Keywords of `LayerCollection.register_*` calls whose signature is not
# recorded in `RELEASES` (recorded ones are checked against their signature):
# keyword -> (first release, last release or None).
KEYWORD_RELEASES = {
  "reuse": ("1.5", None),
}

# The never-exported modules, reachable only as
# `tensorflow.contrib.kfac.python.ops.<module>`: module -> (first release,
# last release or None).
INTERNAL_MODULES = {
  "placement": ("1.8", None),
  "linear_operator": ("1.9", None),
}

# Classes that a program may call directly only in some releases (1.8 made
# `FisherEstimator` abstract): "module.Class" -> (first, last or None).
INSTANTIABLE = {
  "estimator.FisherEstimator": ("1.4", "1.7"),
}

# What a literal passed positionally may be for the parameter it lands on,
# so that a positional call that parses in only some releases
# (releases.md §14) tells them apart. Kinds: "number", "bool", "none",
# "str" (any string) or "str:<value>", "list" (list or tuple), "callable"
# (a lambda). Expressions that are not literals fit every parameter, and
# parameters not listed take anything.
_APPROXIMATIONS = (
  "kron",
  "diagonal",
  "full",
  "kron_indep",
  "kron_series_1",
  "kron_series_2",
)
_DATA_FORMATS = ("NWC", "NCW", "NHWC", "NCHW", "NDHWC", "NCDHW")
PARAMETER_KINDS = {
  "learning_rate": ("number",),
  "cov_ema_decay": ("number",),
  "damping": ("number",),
  "damping_fn": ("callable",),
  "layer_collection": (),
  "variables": ("list",),
  "var_list": ("list", "none"),
  "momentum": ("number",),
  "cov_devices": ("list", "none"),
  "inv_devices": ("list", "none"),
  "batch_size": ("number", "none"),
  "placement_strategy": ("str", "none"),
  "estimation_mode": ("str",),
  "exps": ("list",),
  "graph": ("none",),
  "colocate_cov_ops_with_inputs": ("bool", "none"),
  "name": ("str", "none"),
  "approx": ("none",) + tuple("str:" + a for a in _APPROXIMATIONS),
  "data_format": ("none",) + tuple("str:" + f for f in _DATA_FORMATS),
  "dilations": ("list", "none"),
  "num_uses": ("number", "none"),
  "init_inverses_at_zero": ("bool", "none"),
  "eigenvalue_decomposition_threshold": ("number", "none"),
  "eigenvalue_clipping_threshold": ("number", "none"),
  "tower_strategy": ("none", "str:concat", "str:separate"),
}

# Defaults that changed between releases and change what a program computes
# (releases.md §13): "module.Class.method" -> (parameter, {release: the
# effective default}, the `LayerCollection` method that sets the default
# for a whole collection, or None). The parameter's position comes from the
# release's signature in `RELEASES`; "-" marks releases without the method.
BEHAVIOUR_DEFAULTS = {
  "optimizer.KfacOptimizer.__init__": (
    "momentum",
    {
      "1.4": "0.0",
      "1.5": "0.0",
      "1.6": "0.9",
      "1.7": "0.9",
      "1.8": "0.9",
      "1.9": "0.9",
      "1.10": "0.9",
    },
    None,
  ),
  "layer_collection.LayerCollection.register_generic": (
    "approx",
    {
      "1.4": "'diagonal'",
      "1.5": "'full'",
      "1.6": "'full'",
      "1.7": "'full'",
      "1.8": "'full'",
      "1.9": "'diagonal'",
      "1.10": "'diagonal'",
    },
    "set_default_generic_approximation",
  ),
  "layer_collection.LayerCollection.register_fully_connected_multi": (
    "approx",
    {
      "1.4": "-",
      "1.5": "'kron_series_2'",
      "1.6": "'kron_series_2'",
      "1.7": "'kron_series_2'",
      "1.8": "'kron_indep'",
      "1.9": "'kron_indep'",
      "1.10": "'kron_indep'",
    },
    "set_default_fully_connected_multi_approximation",
  ),
}


Signature = collections.namedtuple(
  "Signature", ["positional", "keyword_only", "var_positional", "var_keyword"]
)
Signature.__doc__ = """A recorded parameter list, split by kind.

`positional`: the names that take positional arguments, in order;
`keyword_only`: names after `*` or `*args`; `var_positional` /
`var_keyword`: whether `*args` / `**kwargs` is present."""


def signature(release, qualname):
  """The recorded signature of `qualname` in `release`, split by kind.

  Args:
    release: str, a key of `RELEASES`.
    qualname: str, "module.Class.method" or "module.function", a key of the
      release's `signatures`.

  Returns:
    A `Signature`.

  Raises:
    KeyError: if the signature is not recorded for that release.
  """
  positional, keyword_only = [], []
  var_positional = var_keyword = False
  for part in RELEASES[release].signatures[qualname].split(","):
    name = part.split("=", 1)[0].strip()
    if not name.lstrip("*").isidentifier():
      continue  # A comma inside a default, as in `exps=(-1,)`.
    if name.startswith("**"):
      var_keyword = True
    elif name.startswith("*"):
      var_positional = True
    elif var_positional:
      keyword_only.append(name)
    else:
      positional.append(name)
  return Signature(
    tuple(positional), tuple(keyword_only), var_positional, var_keyword
  )
