"""Embedding layers and sparse gradients (release 1.7).

An embedding matrix `W` (`[vocab_size, dim]`) is read by integer ids; the
gradient of a loss with respect to `W` is normally an `IndexedSlices` (only
the rows that were looked up). K-FAC models the layer as a fully connected
layer fed with one-hot inputs: the input factor `A = E[x xᵀ]` of one-hot rows
`x` is diagonal, holding the frequency of every id, and the output factor `G`
is that of the lookup outputs' gradients. Products with the damped block
`(A + d_A I) ⊗ (G + d_G I)` keep the gradient sparse: the right factor is
applied to the rows present (`matmul_sparse_dense`), then each row is scaled
by its id's entry of `A + d_A` (`matmul_diag_sparse`).

This module provides the sparse helpers of `utils` (1.7), the 1.7 forms of
`layer_params_to_mat2d` / `mat2d_to_layer_params` (an `IndexedSlices` passes
through), `EmbeddingInputKroneckerFactor` and `EmbeddingKFACFB`.
"""

import numbers

import tensorflow as tf

from kfac import _release_extras as extras
from kfac import fisher_blocks
from kfac import fisher_factors
from kfac import utils

__all__ = [
  "matmul_sparse_dense",
  "matmul_diag_sparse",
  "layer_params_to_mat2d",
  "mat2d_to_layer_params",
  "EmbeddingInputKroneckerFactor",
  "EmbeddingKFACFB",
]


def _check_sparse_matrix(value, arg_name):
  """Raises ValueError unless `value` is an `IndexedSlices` matrix."""
  if not isinstance(value, tf.IndexedSlices):
    raise ValueError(
      "{} must be an IndexedSlices standing for a matrix, got {!r}.".format(
        arg_name, value
      )
    )
  if value.indices.shape.rank != 1 or value.values.shape.rank != 2:
    raise ValueError(
      "{} must represent a matrix: indices of rank 1 and values of rank 2, "
      "got indices of shape {} and values of shape {}.".format(
        arg_name, value.indices.shape, value.values.shape
      )
    )


def matmul_sparse_dense(
  A,
  B,
  name=None,
  transpose_a=False,
  transpose_b=False,
):
  """Multiplies a sparse matrix (rows) by a dense matrix.

  `A` stands for an `[m, n]` matrix of which only the rows `A.indices` are
  stored (in `A.values`, `[k, n]`). The product keeps those rows:
  `IndexedSlices(matmul(A.values, B, transpose_a, transpose_b), A.indices,
  dense_shape=[A.dense_shape[0], cols])`.

  Args:
    A: An `IndexedSlices` with indices of rank 1 and values of rank 2.
    B: A rank-2 Tensor `[n, p]`.
    name: Optional name scope (default `"matmul_sparse_dense"`).
    transpose_a: Whether `A.values` is transposed in the product (1.9).
    transpose_b: Whether `B` is transposed in the product (1.9).

  Returns:
    An `IndexedSlices` `[m, p]` with the indices of `A` (dense shape `None`
    if `A` has none).

  Raises:
    ValueError: If `A` is not a sparse matrix or `B` not of rank 2.
  """
  with tf.compat.v1.name_scope(name, "matmul_sparse_dense"):
    _check_sparse_matrix(A, "A")
    B = tf.convert_to_tensor(B)
    if B.shape.rank != 2:
      raise ValueError(
        "B must be a matrix (rank 2), got shape {}.".format(B.shape)
      )
    new_values = tf.linalg.matmul(
      A.values,
      tf.cast(B, A.values.dtype),
      transpose_a=transpose_a,
      transpose_b=transpose_b,
    )
    dense_shape = None
    if A.dense_shape is not None:
      cols = new_values.shape[1]
      if cols is None:
        cols = tf.shape(new_values, out_type=A.dense_shape.dtype)[1]
      dense_shape = tf.stack(
        [A.dense_shape[0], tf.cast(cols, A.dense_shape.dtype)]
      )
    return tf.IndexedSlices(new_values, A.indices, dense_shape=dense_shape)


def matmul_diag_sparse(A_diag, B, name=None):
  """Multiplies a diagonal matrix by a sparse matrix (rows).

  Row `i` of `B.values` (the row `B.indices[i]` of the matrix) is scaled by
  `A_diag[B.indices[i]]`.

  Args:
    A_diag: A rank-1 Tensor `[m]`, the diagonal of an `[m, m]` matrix.
    B: An `IndexedSlices` standing for an `[m, n]` matrix.
    name: Optional name scope (default `"matmul_diag_sparse"`).

  Returns:
    An `IndexedSlices` with `B`'s indices and dense shape.

  Raises:
    ValueError: If `A_diag` is not of rank 1 or `B` not a sparse matrix.
  """
  with tf.compat.v1.name_scope(name, "matmul_diag_sparse"):
    A_diag = tf.convert_to_tensor(A_diag)
    if A_diag.shape.rank != 1:
      raise ValueError(
        "A_diag must be a rank-1 Tensor, got shape {}.".format(A_diag.shape)
      )
    _check_sparse_matrix(B, "B")
    scale = tf.cast(tf.gather(A_diag, B.indices), B.values.dtype)
    return tf.IndexedSlices(
      scale[:, tf.newaxis] * B.values, B.indices, dense_shape=B.dense_shape
    )


# The dense forms, bound here so that the 1.7 face's `utils`, which puts the
# functions below in their place, still reaches the engine's.
_dense_layer_params_to_mat2d = utils.layer_params_to_mat2d
_dense_mat2d_to_layer_params = utils.mat2d_to_layer_params


def layer_params_to_mat2d(vector):
  """Reshapes layer parameters to the 2-D `[in (+1), out]` layout.

  The weights are reshaped to `[-1, out]` and a bias is appended as the last
  row. An `IndexedSlices` (a sparse embedding gradient) is returned
  unchanged (1.7).

  Args:
    vector: A Tensor, a `(weights, bias)` tuple/list, or an `IndexedSlices`.

  Returns:
    The `[in (+1), out]` matrix, or `vector` itself for an `IndexedSlices`.
  """
  if isinstance(vector, tf.IndexedSlices):
    return vector
  return _dense_layer_params_to_mat2d(vector)


def mat2d_to_layer_params(vector_template, mat2d):
  """The inverse of `layer_params_to_mat2d`, shaped like `vector_template`.

  Args:
    vector_template: A Tensor, a `(weights, bias)` tuple/list, or an
      `IndexedSlices`.
    mat2d: The 2-D matrix; an `IndexedSlices` when the template is one.

  Returns:
    The result in the template's layout (`mat2d` itself when sparse).

  Raises:
    TypeError: If the template is an `IndexedSlices` and `mat2d` is not.
  """
  if isinstance(vector_template, tf.IndexedSlices):
    if not isinstance(mat2d, tf.IndexedSlices):
      raise TypeError(
        "If vector_template is an IndexedSlices, so should mat2d be; got "
        "{!r}.".format(mat2d)
      )
    return mat2d
  return _dense_mat2d_to_layer_params(vector_template, mat2d)


def _check_ids(ids, arg_name):
  """Checks a Tensor of integer ids of rank 1 or 2."""
  if not isinstance(ids, (tf.Tensor, tf.Variable)):
    raise TypeError(
      "{} must be Tensors of integer ids, got {!r}.".format(arg_name, ids)
    )
  if not ids.dtype.base_dtype.is_integer:
    raise TypeError(
      "{} must have an integer dtype, got {}.".format(
        arg_name, ids.dtype.base_dtype.name
      )
    )
  if ids.shape.rank is not None and ids.shape.rank > 2:
    raise ValueError(
      "{} must be of rank 1 ([batch]) or 2 ([batch, k]); got shape {}.".format(
        arg_name, ids.shape
      )
    )


class EmbeddingInputKroneckerFactor(
  extras.DiagonalFactorMultiplyMixin,
  extras.DataDtypeFactorMixin,
  fisher_factors.DiagonalFactor,
):
  """Diagonal input factor of an embedding layer (1.7).

  For ids of shape `[B]` or `[B, k]`, the statistic of a source is
  `C[v] = (number of ids equal to v) / B`: the diagonal of
  `E[Σ_positions e_v e_vᵀ]` for one-hot rows `e_v`, which is the input
  factor of a fully connected layer fed with one-hot (or k-hot) inputs
  whose off-diagonal entries are dropped. It is computed by summing
  `one_hot(reshape(ids, [-1]), vocab_size)` over rows. The variable is
  `ff_diag_embedding/<ids>/cov`, `[vocab_size]`, ones-initialised, of dtype
  `dtype` (default float32).
  """

  def __init__(self, input_ids, vocab_size, dtype=None):
    """Creates the factor and its covariance variable.

    Args:
      input_ids: A tuple/list over sources of integer id Tensors, each of
        shape `[batch]` or `[batch, k]` (a single Tensor is one source).
      vocab_size: Python int, the number of rows of the embedding matrix.
      dtype: The dtype of the covariance variable (default float32).

    Raises:
      TypeError: If the ids are not integer Tensors.
      ValueError: If some ids have rank > 2 or `vocab_size` is not a
        positive int.
    """
    if isinstance(input_ids, (tf.Tensor, tf.Variable)):
      input_ids = (input_ids,)
    for i, ids in enumerate(input_ids):
      _check_ids(ids, "input_ids[{}]".format(i))
    if (
      not isinstance(vocab_size, numbers.Integral)
      or isinstance(vocab_size, bool)
      or vocab_size <= 0
    ):
      raise ValueError(
        "vocab_size must be a positive int, got {!r}.".format(vocab_size)
      )
    self._input_ids = tuple(input_ids)
    self._vocab_size = int(vocab_size)
    self._cov_dtype = tf.as_dtype(dtype or tf.float32)
    super(EmbeddingInputKroneckerFactor, self).__init__()

  @property
  def _var_scope(self):
    return "ff_diag_embedding/" + fisher_factors.scope_string_from_params(
      self._input_ids
    )

  @property
  def _cov_shape(self):
    return [self._vocab_size]

  @property
  def _num_sources(self):
    return len(self._input_ids)

  @property
  def _dtype(self):
    return self._cov_dtype

  def _compute_new_cov(self, idx=0):
    with extras.maybe_colocate_with(
      self._input_ids, extras.colocation_flag(fisher_factors)
    ):
      ids = self._input_ids[idx]
      batch_size = tf.shape(ids)[0]
      one_hot = tf.one_hot(
        tf.reshape(ids, [-1]), depth=self._vocab_size, dtype=self._dtype
      )
      return tf.reduce_sum(one_hot, axis=0) / tf.cast(batch_size, self._dtype)


class EmbeddingKFACFB(
  extras.FactorProductsKroneckerMixin, fisher_blocks.KroneckerProductFB
):
  """K-FAC block of an embedding layer: `diag(a) ⊗ G` (1.7).

  `a` comes from `EmbeddingInputKroneckerFactor` over the looked-up ids and
  `G` from `FullyConnectedKroneckerFactor` over the gradients of the lookup
  outputs (`[batch, dim]`); `c = 1`; the damping `d` is split with
  `π = sqrt((Σ_v a_v / vocab_size) / (tr G / dim))`: `d_A = π√d`,
  `d_G = √d/π`. Minibatches registered with `register_additional_minibatch`
  are concatenated along the batch axis. Vectors are `[vocab_size, dim]`
  gradients, normally `IndexedSlices`, and products keep their sparsity.
  A dense `[vocab_size, dim]` vector (what `KfacOptimizer.apply_gradients`
  passes after densifying) is multiplied densely with the same numbers; in
  1.7 it failed the diagonal factor's shape check (1.9 accepts it too).
  """

  def __init__(self, layer_collection, vocab_size):
    """Creates the block (no data yet).

    Args:
      layer_collection: The `LayerCollection` this block belongs to.
      vocab_size: Python int, the number of rows of the embedding matrix.
    """
    self._vocab_size = vocab_size
    self._inputs = []
    self._outputs = []
    super(EmbeddingKFACFB, self).__init__(layer_collection)

  def register_additional_minibatch(self, inputs, outputs):
    """Adds one minibatch of ids and lookup outputs.

    Args:
      inputs: Integer ids, `[batch]`.
      outputs: The lookup outputs, `[batch, dim]`.
    """
    self._inputs.append(inputs)
    self._outputs.append(outputs)

  @property
  def num_registered_minibatches(self):
    """The number of minibatches registered."""
    return len(self._inputs)

  # The count the engine's `LayerCollection.get_use_count_map` reads: one
  # lookup of the embedding matrix per minibatch.
  _num_registered_minibatches = num_registered_minibatches

  def tensors_to_compute_grads(self):
    """Returns the list of registered lookup outputs."""
    return self._outputs

  def multiply_inverse(self, vector):
    """Returns `A_d⁻¹ M G_d⁻¹` (`M` the sparse or dense gradient).

    Args:
      vector: An `IndexedSlices` (rows of the embedding matrix; the result
        keeps them) or a dense `[vocab_size, dim]` Tensor.

    Returns:
      The product, of the kind of `vector`.
    """
    if isinstance(vector, tf.IndexedSlices):
      return self._factor_product(vector, inverse=True)
    return self._dense_product(vector, inverse=True)

  def multiply(self, vector):
    """Returns `A_d M G_d` (`M` the sparse or dense gradient).

    Args:
      vector: As for `multiply_inverse`.

    Returns:
      The product, of the kind of `vector`.
    """
    if isinstance(vector, tf.IndexedSlices):
      return self._factor_product(vector, inverse=False)
    return self._dense_product(vector, inverse=False)

  def _dense_product(self, vector, inverse):
    """The damped block's product (or inverse) with a dense vector."""
    matrix = utils.layer_params_to_mat2d(vector)
    if inverse:
      out = extras.right_multiply_inverse(
        self._output_factor, matrix, self._output_damping
      )
    else:
      out = extras.right_multiply(
        self._output_factor, matrix, self._output_damping
      )
    diag = tf.reshape(self._input_factor.get_cov_var(), [-1])
    diag = tf.cast(diag, out.dtype) + extras.cast_damping(
      self._input_damping, out.dtype
    )
    out = out / diag[:, tf.newaxis] if inverse else out * diag[:, tf.newaxis]
    return utils.mat2d_to_layer_params(vector, out)

  def _pi(self):
    """`π` from the input diagonal's and `G`'s average traces."""
    diag = tf.reshape(self._input_factor.get_cov_var(), [-1])
    out_cov = self._output_factor.get_cov()
    out_dim = out_cov.shape.as_list()[0]
    dtype = out_cov.dtype
    in_avg = tf.cast(tf.reduce_sum(diag), dtype) / self._vocab_size
    out_avg = tf.linalg.trace(out_cov) / out_dim
    return tf.sqrt(in_avg / out_avg)

  def _split_damping(self, damping):
    """`(π√d, √d/π)` (tracenorm), or as the π type in force says."""
    return extras.pi_adjusted_damping(
      self._pi, damping, extras.current_pi_type(fisher_blocks)
    )

  def instantiate_factors(self, grads_list, damping):
    """Creates the factors (over the concatenated minibatches).

    Args:
      grads_list: A tuple over sources of lists over minibatches of the
        gradients with respect to the lookup outputs.
      damping: The damping `d`, a float or a scalar Tensor.
    """
    inputs = fisher_blocks._concat_along_batch_dim(self._inputs)
    grads = tuple(
      fisher_blocks._concat_along_batch_dim(list(g)) for g in grads_list
    )
    # pylint: enable=protected-access
    self._input_factor = self._layer_collection.make_or_get_factor(
      EmbeddingInputKroneckerFactor, ((inputs,), self._vocab_size)
    )
    self._output_factor = self._layer_collection.make_or_get_factor(
      fisher_factors.FullyConnectedKroneckerFactor, (grads,)
    )
    self._input_damping, self._output_damping = self._split_damping(damping)
    self._input_factor.register_damped_inverse(self._input_damping)
    self._output_factor.register_damped_inverse(self._output_damping)
