"""Tests for kfac._embedding (embeddings and sparse gradients, release 1.7).

The oracle of the embedding block is the dense fully connected K-FAC block
of the same layer fed with one-hot inputs, built in NumPy entry by entry.
"""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from kfac import _embedding as emb
from kfac import fisher_blocks as fb
from kfac import layer_collection as lc_lib
import kfac_training


def _densify(value, num_rows):
  """Dense matrix of an IndexedSlicesValue (duplicate rows add up)."""
  out = np.zeros((num_rows, value.values.shape[1]))
  for i, row in enumerate(value.indices):
    out[row] += value.values[i]
  return out


def _run_refreshed(lc, fetches):
  """Sets every factor of `lc` to its statistics (decay 0), then fetches."""
  cov_ops = [f.make_covariance_update_op(0.0) for f in lc.get_factors()]
  inv_ops = [op for f in lc.get_factors() for op in f.make_inverse_update_ops()]
  with tf.compat.v1.Session() as sess:
    sess.run(tf.compat.v1.global_variables_initializer())
    sess.run(cov_ops)
    sess.run(inv_ops)
    return sess.run(fetches)


def _sparse(values, indices, num_rows):
  values = tf.constant(values)
  return tf.IndexedSlices(
    values,
    tf.constant(indices, dtype=tf.int64),
    dense_shape=tf.constant([num_rows, values.shape[1]], dtype=tf.int64),
  )


class SparseHelpersTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("plain", False, [0, 3, 1]), ("transpose_b", True, [2, 2, 4])
  )
  def testMatmulSparseDense(self, transpose_b, indices):
    rng = np.random.RandomState(0)
    values, b = rng.randn(3, 4), rng.randn(4, 2)
    b_arg = b.T if transpose_b else b
    with tf.Graph().as_default():
      result = emb.matmul_sparse_dense(
        _sparse(values, indices, 5), tf.constant(b_arg), transpose_b=transpose_b
      )
      self.assertIsInstance(result, tf.IndexedSlices)
      with tf.compat.v1.Session() as sess:
        out = sess.run(result)
    self.assertEqual(list(out.dense_shape), [5, 2])
    self.assertEqual(list(out.indices), indices)
    dense = np.zeros((5, 4))
    for i, row in enumerate(indices):
      dense[row] += values[i]
    np.testing.assert_allclose(_densify(out, 5), dense.dot(b), rtol=1e-12)

  def testMatmulDiagSparse(self):
    rng = np.random.RandomState(1)
    diag, values = rng.randn(5), rng.randn(3, 2)
    indices = [4, 0, 4]
    with tf.Graph().as_default():
      result = emb.matmul_diag_sparse(
        tf.constant(diag), _sparse(values, indices, 5)
      )
      with tf.compat.v1.Session() as sess:
        out = sess.run(result)
    dense = np.zeros((5, 2))
    for i, row in enumerate(indices):
      dense[row] += values[i]
    np.testing.assert_allclose(
      _densify(out, 5), np.diag(diag).dot(dense), rtol=1e-12
    )
    self.assertEqual(list(out.dense_shape), [5, 2])

  @parameterized.named_parameters(
    ("dense_a", lambda s: (tf.zeros([2, 2]), tf.zeros([2, 2]))),
    (
      "vector_values",
      lambda s: (
        tf.IndexedSlices(tf.zeros([2]), tf.constant([0, 1])),
        tf.zeros([2, 2]),
      ),
    ),
    ("vector_b", lambda s: (s, tf.zeros([2]))),
  )
  def testMatmulSparseDenseErrors(self, make):
    with tf.Graph().as_default():
      a, b = make(_sparse(np.ones((2, 2)), [0, 1], 3))
      with self.assertRaises(ValueError):
        emb.matmul_sparse_dense(a, b)

  @parameterized.named_parameters(
    ("matrix_diag", lambda s: (tf.zeros([3, 3]), s)),
    ("dense_b", lambda s: (tf.zeros([3]), tf.zeros([3, 2]))),
  )
  def testMatmulDiagSparseErrors(self, make):
    with tf.Graph().as_default():
      a, b = make(_sparse(np.ones((2, 2)), [0, 1], 3))
      with self.assertRaises(ValueError):
        emb.matmul_diag_sparse(a, b)

  def testMat2dPassesIndexedSlices(self):
    with tf.Graph().as_default():
      sparse = _sparse(np.ones((2, 2)), [0, 1], 3)
      self.assertIs(emb.layer_params_to_mat2d(sparse), sparse)
      self.assertIs(emb.mat2d_to_layer_params(sparse, sparse), sparse)
      with self.assertRaises(TypeError):
        emb.mat2d_to_layer_params(sparse, tf.zeros([3, 2]))
      w = tf.ones([2, 3])
      self.assertEqual(
        emb.layer_params_to_mat2d((w, tf.ones([3]))).shape, [3, 3]
      )


class EmbeddingInputKroneckerFactorTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("ids_rank1_float32", [[3, 0, 3, 1]], None, tf.float32),
    ("ids_rank2_float64", [[[1, 2], [2, 2], [0, 4]]], tf.float64, tf.float64),
    ("two_sources", [[0, 1, 1], [4, 4, 0]], None, tf.float32),
  )
  def testCovariance(self, id_sources, dtype, expected_dtype):
    vocab, decay = 5, 0.3
    with tf.Graph().as_default():
      ids = tuple(
        tf.constant(i, name="ids%d" % s) for s, i in enumerate(id_sources)
      )
      factor = emb.EmbeddingInputKroneckerFactor(ids, vocab, dtype=dtype)
      var = factor.get_cov_var()
      self.assertEqual(var.dtype.base_dtype, expected_dtype)
      self.assertEqual(var.shape, [vocab])
      self.assertEqual(
        var.op.name,
        "ff_diag_embedding/"
        + "_".join("ids%d" % s for s in range(len(id_sources)))
        + "/cov",
      )
      update = factor.make_covariance_update_op(decay)
      dense_cov = factor.get_cov()
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(update)
        cov, dense = sess.run([var, dense_cov])
    new = np.zeros(vocab)
    for source in id_sources:
      source = np.array(source)
      for row in source:
        for v in np.atleast_1d(row):
          new[v] += 1.0 / source.shape[0]
    expected = decay * np.ones(vocab) + (1 - decay) * new
    np.testing.assert_allclose(cov, expected, rtol=1e-6)
    np.testing.assert_allclose(dense, np.diag(expected), rtol=1e-6)

  @parameterized.named_parameters(
    ("rank3", lambda: tf.zeros([2, 2, 2], tf.int32), 4, ValueError),
    ("float_ids", lambda: tf.zeros([2]), 4, TypeError),
    ("bad_vocab", lambda: tf.zeros([2], tf.int32), 0, ValueError),
  )
  def testBadArguments(self, make_ids, vocab, error):
    with tf.Graph().as_default():
      with self.assertRaises(error):
        emb.EmbeddingInputKroneckerFactor((make_ids(),), vocab)

  def testDiagonalProducts(self):
    vocab, dim, damping = 4, 2, 0.5
    rng = np.random.RandomState(2)
    values = rng.randn(3, dim).astype(np.float32)
    with tf.Graph().as_default():
      factor = emb.EmbeddingInputKroneckerFactor(
        (tf.constant([0, 2, 2]),), vocab
      )
      update = factor.make_covariance_update_op(0.0)
      sparse = _sparse(values, [2, 0, 2], vocab)
      dense_x = tf.constant(rng.randn(vocab).astype(np.float32))
      products = [
        factor.left_multiply(sparse, damping),
        factor.left_multiply_inverse(sparse, damping),
        factor.left_multiply(dense_x, damping),
        factor.left_multiply_inverse(dense_x, damping),
      ]
      rejected = (
        (NotImplementedError, factor.right_multiply, dense_x),
        (NotImplementedError, factor.right_multiply_inverse, dense_x),
        (ValueError, factor.left_multiply, tf.zeros([vocab, dim])),
      )
      for error, method, arg in rejected:
        with self.assertRaises(error):
          method(arg, damping)
      factor.register_damped_inverse(damping)  # A no-op.
      self.assertEqual(factor.make_inverse_update_ops(), [])
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(update)
        left, left_inv, dense_left, dense_left_inv, x = sess.run(
          products + [dense_x]
        )
    diag = np.array([1.0, 0.0, 2.0, 0.0]) / 3 + damping
    dense = np.zeros((vocab, dim))
    for i, row in enumerate([2, 0, 2]):
      dense[row] += values[i]
    np.testing.assert_allclose(
      _densify(left, vocab), np.diag(diag).dot(dense), rtol=1e-6
    )
    np.testing.assert_allclose(
      _densify(left_inv, vocab),
      np.linalg.inv(np.diag(diag)).dot(dense),
      rtol=1e-6,
    )
    np.testing.assert_allclose(dense_left, diag * x, rtol=1e-6)
    np.testing.assert_allclose(dense_left_inv, x / diag, rtol=1e-6)


class EmbeddingKFACFBTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("float_damping", 0.01), ("tensor_damping", "tensor")
  )
  def testMatchesOneHotFullyConnectedBlock(self, damping):
    vocab, dim = 6, 3
    rng = np.random.RandomState(3)
    ids_mb = [np.array([0, 2, 2, 5]), np.array([5, 1, 2])]
    grads_mb = [rng.randn(len(i), dim).astype(np.float32) for i in ids_mb]
    coefs_mb = [rng.randn(len(i), dim).astype(np.float32) for i in ids_mb]
    w_val = rng.randn(vocab, dim).astype(np.float32)
    with tf.Graph().as_default():
      if damping == "tensor":
        damping_arg = tf.constant(0.02)
        damping = 0.02
      else:
        damping_arg = damping
      w = tf.compat.v1.get_variable("w", initializer=w_val)
      lc = lc_lib.LayerCollection()
      block = emb.EmbeddingKFACFB(lc, vocab)
      loss = 0.0
      for ids, coefs in zip(ids_mb, coefs_mb):
        ids_t = tf.constant(ids)
        outputs = tf.gather(w, ids_t)
        block.register_additional_minibatch(ids_t, outputs)
        loss += tf.reduce_sum(outputs * coefs)
      self.assertEqual(block.num_registered_minibatches, 2)
      self.assertLen(block.tensors_to_compute_grads(), 2)
      block.instantiate_factors(
        ([tf.constant(g) for g in grads_mb],), damping_arg
      )
      sparse_grad = tf.compat.v1.gradients(loss, [w])[0]
      self.assertIsInstance(sparse_grad, tf.IndexedSlices)
      inv = block.multiply_inverse(sparse_grad)
      prod = block.multiply(sparse_grad)
      self.assertIsInstance(inv, tf.IndexedSlices)
      self.assertIsInstance(prod, tf.IndexedSlices)
      # The dense gradient (as KfacOptimizer.apply_gradients passes it).
      dense_grad_t = tf.convert_to_tensor(sparse_grad)
      dense_inv = block.multiply_inverse(dense_grad_t)
      dense_prod = block.multiply(dense_grad_t)
      inv_val, prod_val, dense_inv_val, dense_prod_val = _run_refreshed(
        lc, [inv, prod, dense_inv, dense_prod]
      )
    # NumPy: the FC block of one-hot inputs X (B × vocab) and gradients g.
    ids = np.concatenate(ids_mb)
    grads = np.concatenate(grads_mb)
    batch = len(ids)
    x = np.zeros((batch, vocab))
    for b in range(batch):
      x[b, ids[b]] = 1.0
    a_cov = x.T.dot(x) / batch
    g_cov = grads.T.dot(grads) / batch
    pi = np.sqrt((np.trace(a_cov) / vocab) / (np.trace(g_cov) / dim))
    fisher = np.kron(
      a_cov + pi * np.sqrt(damping) * np.eye(vocab),
      g_cov + np.sqrt(damping) / pi * np.eye(dim),
    )
    dense_grad = np.zeros((vocab, dim))
    for ids_one, coefs in zip(ids_mb, coefs_mb):
      for b, row in enumerate(ids_one):
        dense_grad[row] += coefs[b]
    np.testing.assert_allclose(
      _densify(inv_val, vocab).reshape(-1),
      np.linalg.solve(fisher, dense_grad.reshape(-1)),
      rtol=2e-4,
      atol=1e-5,
    )
    np.testing.assert_allclose(
      _densify(prod_val, vocab).reshape(-1),
      fisher.dot(dense_grad.reshape(-1)),
      rtol=2e-4,
      atol=1e-5,
    )
    np.testing.assert_allclose(
      dense_inv_val.reshape(-1),
      np.linalg.solve(fisher, dense_grad.reshape(-1)),
      rtol=2e-4,
      atol=1e-5,
    )
    np.testing.assert_allclose(
      dense_prod_val.reshape(-1),
      fisher.dot(dense_grad.reshape(-1)),
      rtol=2e-4,
      atol=1e-5,
    )

  def testSharesFactorsWithDenseEngineBlockNumbers(self):
    # The same layer registered as an FC block on one-hot inputs gives the
    # same numbers (dense vector) as the embedding block (sparse vector).
    vocab, dim, damping = 4, 2, 0.1
    rng = np.random.RandomState(4)
    ids = np.array([3, 0, 3, 1, 1])
    grads = rng.randn(5, dim).astype(np.float32)
    vec = rng.randn(vocab, dim).astype(np.float32)
    with tf.Graph().as_default():
      lc = lc_lib.LayerCollection()
      ids_t = tf.constant(ids)
      emb_block = emb.EmbeddingKFACFB(lc, vocab)
      emb_block.register_additional_minibatch(ids_t, tf.zeros([5, dim]))
      emb_block.instantiate_factors(([tf.constant(grads)],), damping)
      one_hot = tf.one_hot(ids_t, vocab)
      fc_block = fb.FullyConnectedKFACBasicFB(lc, one_hot, tf.zeros([5, dim]))
      fc_block.instantiate_factors((tf.constant(grads, name="g2"),), damping)
      sparse_vec = tf.IndexedSlices(
        tf.constant(vec), tf.range(vocab), dense_shape=tf.constant([vocab, dim])
      )
      products = [
        emb_block.multiply_inverse(sparse_vec),
        fc_block.multiply_inverse(tf.constant(vec)),
      ]
      emb_out, fc_out = _run_refreshed(lc, products)
    np.testing.assert_allclose(
      _densify(emb_out, vocab), fc_out, rtol=1e-4, atol=1e-6
    )


class EmbeddingTrainingTest(parameterized.TestCase):
  def testEmbeddingTrainsWithKfacOptimizer(self):
    # ids → W[ids] → (dense layer) → logits; the embedding block is
    # registered directly with the engine's LayerCollection, whose optimizer
    # hands it dense gradients.
    rng = np.random.RandomState(6)
    vocab, dim, classes, batch = 10, 4, 3, 40
    ids_val = rng.randint(0, vocab, size=batch)
    labels = ids_val % classes
    with tf.Graph().as_default():
      w = tf.compat.v1.get_variable(
        "w", initializer=rng.randn(vocab, dim).astype(np.float32) * 0.1
      )
      v = tf.compat.v1.get_variable(
        "v", initializer=rng.randn(dim, classes).astype(np.float32) * 0.1
      )
      ids = tf.constant(ids_val)
      embedded = tf.gather(w, ids)
      logits = tf.matmul(embedded, v)
      loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=tf.constant(labels), logits=logits
        )
      )
      lc = lc_lib.LayerCollection()
      block = emb.EmbeddingKFACFB(lc, vocab)
      block.register_additional_minibatch(ids, embedded)
      lc.register_block(w, block)
      lc.register_fully_connected(v, embedded, logits)
      lc.register_categorical_predictive_distribution(logits)
      losses = kfac_training.train_with_kfac(
        loss, lc, learning_rate=0.2, rounds=6
      )
    self.assertTrue(np.all(np.isfinite(losses)))
    self.assertLess(losses[-1], 0.5 * losses[0])


if __name__ == "__main__":
  absltest.main()
