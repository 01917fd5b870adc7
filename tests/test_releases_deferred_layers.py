"""The layer types of releases 1.8-1.10 against dense NumPy oracles.

Every new registration of `kfac.r1_8` and `kfac.r1_9` (1.10 shares 1.9's
code) -- `register_convolution` (1-, 2- and 3-D), `register_conv2d` with
dilations and a data format, `register_depthwise_conv2d`,
`register_separable_conv2d`, `register_conv2d_multi`,
`register_embedding_multi` -- and the blocks behind them are checked the same
way: an empirical-Fisher estimator (`cov_ema_decay=0`, so one covariance
update stores the raw statistic) multiplies a random vector by the damped
block and by its inverse, and the results are compared with a dense matrix
built here from the layer's inputs and output gradients with explicit loops
(patches, per-example gradients, Kronecker products, the π split of the
damping). Further tests: the depthwise filter maps, the 1.9 patch
sub-sampling, use counts, variable names, the registration errors, and a few
training steps of small models in both TensorFlow modes.
"""

import contextlib
import importlib
import itertools

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

import conv_oracles

_RELEASES = (("r1_8", "kfac.r1_8"), ("r1_9", "kfac.r1_9"))
BATCH = 2
DAMPING = 0.3


def _ns(package):
  return importlib.import_module(package)


def _per_release(table):
  """Named cases: each `(name, item)` of `table` for every release."""
  return [
    (name + "_" + label, package, item)
    for label, package in _RELEASES
    for name, item in table
  ]


@contextlib.contextmanager
def _fresh_collection(package, seed=0):
  """A fresh graph with a session; yields (namespace, session, lc, rng)."""
  ns = _ns(package)
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    lc = ns.layer_collection.LayerCollection()
    yield ns, sess, lc, np.random.RandomState(seed)


# ---------------------------------------------------------------------------
# NumPy oracles (written independently of the library).


def _np_second_moment(rows):
  """`Σ_r r rᵀ / #rows` over the rows of a 2-D array."""
  total = np.zeros((rows.shape[1], rows.shape[1]))
  for row in rows:
    total += np.outer(row, row)
  return total / rows.shape[0]


def _with_ones(patches, has_bias):
  if not has_bias:
    return patches
  return np.concatenate([patches, np.ones(patches.shape[:-1] + (1,))], -1)


def _np_damped_kronecker(a, g, coeff, damping):
  """`c · (A + π√(d/c) I) ⊗ (G + √(d/c)/π I)` (π: trace norms)."""
  pi = np.sqrt((np.trace(a) / a.shape[0]) / (np.trace(g) / g.shape[0]))
  root = np.sqrt(damping / coeff)
  return coeff * np.kron(
    a + pi * root * np.eye(a.shape[0]), g + root / pi * np.eye(g.shape[0])
  )


def _np_conv_kron(patches, grads, num_locations, num_uses, has_bias):
  """The damped K-FAC block of a convolution used `num_uses` times.

  `patches` `[N, L, P]`, `grads` `[N, L, C_out]` with N = uses × examples.
  """
  rows = _with_ones(patches, has_bias)
  a = _np_second_moment(rows.reshape(-1, rows.shape[-1]))
  g = _np_second_moment(grads.reshape(-1, grads.shape[-1]))
  return _np_damped_kronecker(a, g, num_locations * num_uses, DAMPING)


def _np_conv_diagonal(patches, grads, has_bias):
  """`diag(Σ_b G_b ⊙ G_b / B + d)`, `G_b` the example's filter gradient."""
  rows = _with_ones(patches, has_bias)
  total = np.zeros((rows.shape[-1], grads.shape[-1]))
  for b in range(rows.shape[0]):
    per_example = np.zeros_like(total)
    for loc in range(rows.shape[1]):
      per_example += np.outer(rows[b, loc], grads[b, loc])
    total += per_example**2
  return np.diag(total.ravel() / rows.shape[0] + DAMPING)


def _np_depthwise_embedding(kh, kw, channels, multiplier):
  """`P`: depthwise filter entries → entries of the equivalent dense filter.

  Dense output channel `i·m + k` is driven by input channel `i` alone.
  """
  dense_shape = (kh, kw, channels, channels * multiplier)
  depth_shape = (kh, kw, channels, multiplier)
  embedding = np.zeros((int(np.prod(dense_shape)), int(np.prod(depth_shape))))
  for h, w, i, k in itertools.product(*[range(n) for n in depth_shape]):
    row = np.ravel_multi_index((h, w, i, i * multiplier + k), dense_shape)
    col = np.ravel_multi_index((h, w, i, k), depth_shape)
    embedding[row, col] = 1.0
  return embedding


def _np_embedding_kron(ids, grads, vocab_size, num_uses):
  """`T · (diag(a) + π√(d/T)) ⊗ (G + √(d/T)/π)` over all uses' rows."""
  counts = np.zeros(vocab_size)
  for i in ids.ravel():
    counts[i] += 1.0
  a = np.diag(counts / ids.size)
  g = _np_second_moment(grads.reshape(-1, grads.shape[-1]))
  return _np_damped_kronecker(a, g, num_uses, DAMPING)


def _spatial_count(x, strides):
  """`|T|` as 1.8 counts it: input locations over the stride product."""
  return int(np.prod(x.shape[1:-1])) // int(np.prod(strides))


# ---------------------------------------------------------------------------
# Layer cases: each builds its layer, registers it and returns
# (variables, outputs for the loss, [(params, oracle), ...]); an oracle gets
# `value(tensor)` and `grad(output)` (the loss gradient) and returns (M, P): the damped dense block and the map
# from the parameters' flattened vector to M's coordinates (None: identity).


def _var(name, rng, shape, dtype=tf.float64):
  return tf.compat.v1.get_variable(
    name,
    initializer=(rng.randn(*shape) * 0.5).astype(dtype.as_numpy_dtype),
    dtype=dtype,
  )


def _const(rng, shape):
  return tf.constant(rng.randn(*shape), dtype=tf.float64)


def _maybe_add_bias(rng, w, y, bias):
  """Adds a 3-channel bias variable `b` to `y` when `bias` is true.

  Returns:
    `(y, params)`: the output, with the bias added or not, and the layer's
    parameters, `(w, b)` or `w`.
  """
  if not bias:
    return y, w
  b = _var("b", rng, (3,))
  return y + b, (w, b)


def _convolution_case(spatial, ksize, strides, rates, padding, bias):
  """`register_convolution` of a 1-, 2- or 3-D `tf.nn.convolution`."""

  def build(ns, lc, rng):
    x = _const(rng, (BATCH,) + spatial + (2,))
    w = _var("w", rng, ksize + (2, 3))
    y = tf.compat.v1.nn.convolution(
      x, w, padding, strides=strides, dilation_rate=rates
    )
    y, params = _maybe_add_bias(rng, w, y, bias)
    lc.register_convolution(
      params, x, y, padding, strides=strides, dilation_rate=rates
    )

    def oracle(value, grad):
      patches = conv_oracles.patch_rows(
        value(x),
        ksize,
        strides or (1,) * len(ksize),
        rates or (1,) * len(ksize),
        padding,
      )
      grads = grad(y).reshape(BATCH, -1, 3)
      count = _spatial_count(value(x), strides or (1,))
      return _np_conv_kron(patches, grads, count, 1, bias), None

    return list(tf.nest.flatten(params)), [y], [(params, oracle, [x], [y])]

  return build


def _conv2d_case(approx, dilations, data_format, bias):
  """`register_conv2d` with dilations / an explicit data format."""

  def build(ns, lc, rng):
    x = _const(rng, (BATCH, 5, 5, 2))
    w = _var("w", rng, (2, 2, 2, 3))
    strides = [1, 1, 1, 1]
    y = tf.nn.conv2d(x, w, strides, "SAME", dilations=dilations)
    y, params = _maybe_add_bias(rng, w, y, bias)
    lc.register_conv2d(
      params,
      strides,
      "SAME",
      x,
      y,
      data_format=data_format,
      dilations=dilations,
      approx=approx,
    )

    def oracle(value, grad):
      rates = (dilations or [1, 1, 1, 1])[1:3]
      patches = conv_oracles.patch_rows(value(x), (2, 2), (1, 1), rates, "SAME")
      grads = grad(y).reshape(BATCH, -1, 3)
      if approx == "diagonal":
        return _np_conv_diagonal(patches, grads, bias), None
      count = _spatial_count(value(x), strides)
      return _np_conv_kron(patches, grads, count, 1, bias), None

    return list(tf.nest.flatten(params)), [y], [(params, oracle, [x], [y])]

  return build


def _depthwise_parts(xs, dw, hs, rate, kron):
  """The oracle of a depthwise layer `[3, 3, 2, 2]` (diagonal or K-FAC).

  `xs`, `hs`: its inputs and outputs, one per tower (pooled examples).
  """

  def oracle(value, grad):
    inputs = np.concatenate([value(x) for x in xs])
    patches = conv_oracles.patch_rows(
      inputs, (3, 3), (1, 1), rate or (1, 1), "SAME"
    )
    grads = np.concatenate([grad(h) for h in hs]).reshape(len(inputs), -1, 4)
    if kron:
      count = _spatial_count(inputs, (1,))
      dense = _np_conv_kron(patches, grads, count, 1, False)
    else:
      dense = _np_conv_diagonal(patches, grads, False)
    return dense, _np_depthwise_embedding(3, 3, 2, 2)

  return (dw, oracle, xs, hs)


def _depthwise_case(kron, rate, towers=1):
  """`register_depthwise_conv2d` (diagonal), or a `DepthwiseConvKFCBasicFB`."""

  def build(ns, lc, rng):
    xs, hs = [], []
    strides = [1, 1, 1, 1]
    for _ in _towers(towers):
      x = _const(rng, (BATCH, 4, 4, 2))
      dw = _var("dw", rng, (3, 3, 2, 2))
      h = tf.nn.depthwise_conv2d(x, dw, strides, "SAME", dilations=rate)
      if kron:
        block = ns.fisher_blocks.DepthwiseConvKFCBasicFB(
          lc, dw, strides, "SAME", rate=rate
        )
        lc.register_block(dw, block).register_additional_tower(x, h)
        lc._add_uses(dw, 1)  # What a registration method adds (1.8 helper).
      else:
        lc.register_depthwise_conv2d(dw, x, h, strides, "SAME", rate=rate)
      xs.append(x)
      hs.append(h)
    return [dw], hs, [_depthwise_parts(xs, dw, hs, rate, kron)]

  return build


def _separable_build(ns, lc, rng):
  """`register_separable_conv2d`: diagonal depthwise + K-FAC pointwise."""
  x = _const(rng, (BATCH, 4, 4, 2))
  dw = _var("dw", rng, (3, 3, 2, 2))
  pw = _var("pw", rng, (1, 1, 4, 3))
  b = _var("b", rng, (3,))
  strides = [1, 1, 1, 1]
  h = tf.nn.depthwise_conv2d(x, dw, strides, "SAME")
  y = tf.nn.conv2d(h, pw, strides, "VALID") + b
  lc.register_separable_conv2d(dw, (pw, b), x, h, y, strides, "SAME")

  def pointwise(value, grad):
    patches = conv_oracles.patch_rows(value(h), (1, 1), (1, 1), (1, 1), "VALID")
    grads = grad(y).reshape(BATCH, -1, 3)
    return _np_conv_kron(patches, grads, 16, 1, True), None

  parts = [
    _depthwise_parts([x], dw, [h], None, False),
    ((pw, b), pointwise, [h], [y]),
  ]
  return [dw, pw, b], [y], parts


def _towers(count):
  """Variable scopes of `count` towers (the later ones reuse variables)."""
  for tower in range(count):
    with tf.compat.v1.variable_scope(
      tf.compat.v1.get_variable_scope(), reuse=tower > 0
    ):
      yield tower


def _conv2d_multi_case(folded, towers=1):
  """`register_conv2d_multi`: one filter used twice (per tower).

  As a list over uses (two applications), or folded: the two uses stacked
  in the batch (use-major) and convolved at once, with `num_uses=2`.
  """

  def build(ns, lc, rng):
    xs, ys = [], []
    strides = [1, 1, 1, 1]
    for _ in _towers(towers):
      tower_xs = [_const(rng, (BATCH, 4, 4, 2)) for _ in range(2)]
      w = _var("w", rng, (3, 3, 2, 2))
      b = _var("b", rng, (2,))
      if folded:
        tower_xs = [tf.concat(tower_xs, 0)]
      tower_ys = [tf.nn.conv2d(x, w, strides, "SAME") + b for x in tower_xs]
      if folded:
        lc.register_conv2d_multi(
          (w, b), strides, "SAME", tower_xs[0], tower_ys[0], num_uses=2
        )
      else:
        lc.register_conv2d_multi((w, b), strides, "SAME", tower_xs, tower_ys)
      xs += tower_xs
      ys += tower_ys

    def oracle(value, grad):
      patches = np.concatenate(
        [
          conv_oracles.patch_rows(value(x), (3, 3), (1, 1), (1, 1), "SAME")
          for x in xs
        ]
      )
      grads = np.concatenate([grad(y).reshape(-1, 16, 2) for y in ys])
      return _np_conv_kron(patches, grads, 16, 2, True), None

    return [w, b], ys, [((w, b), oracle, xs, ys)]

  return build


def _embedding_multi_case(folded):
  """`register_embedding_multi`: one table looked up twice (or folded)."""

  def build(ns, lc, rng):
    ids = [tf.constant([0, 3]), tf.constant([3, 4])]
    # float32: the ids' factor is float32 (its default), as in 1.8.
    table = _var("table", rng, (5, 3), tf.float32)
    if folded:
      ids = [tf.concat(ids, 0)]
    outs = [tf.gather(table, i) for i in ids]
    if folded:
      lc.register_embedding_multi(table, ids[0], outs[0], num_uses=2)
    else:
      lc.register_embedding_multi(table, ids, outs)

    def oracle(value, grad):
      all_ids = np.concatenate([value(i) for i in ids])
      grads = np.concatenate([grad(o) for o in outs])
      return _np_embedding_kron(all_ids, grads, 5, 2), None

    return [table], outs, [(table, oracle, ids, outs)]

  return build


_CASES = (
  (
    "convolution_1d_bias",
    _convolution_case((6,), (3,), [2], None, "SAME", True),
  ),
  (
    "convolution_2d_dilated",
    _convolution_case((5, 5), (2, 2), None, [2, 2], "VALID", False),
  ),
  (
    "convolution_3d",
    _convolution_case((3, 3, 3), (2, 2, 2), None, None, "SAME", False),
  ),
  (
    "conv2d_kron_dilated_nhwc",
    _conv2d_case("kron", [1, 2, 2, 1], "NHWC", False),
  ),
  (
    "conv2d_diagonal_dilated_bias",
    _conv2d_case("diagonal", [1, 2, 2, 1], None, True),
  ),
  ("depthwise_diagonal", _depthwise_case(False, None)),
  ("depthwise_diagonal_rate", _depthwise_case(False, [2, 2])),
  ("depthwise_kron_block", _depthwise_case(True, None)),
  ("separable", _separable_build),
  ("conv2d_multi_list", _conv2d_multi_case(False)),
  ("conv2d_multi_folded", _conv2d_multi_case(True)),
  ("embedding_multi_list", _embedding_multi_case(False)),
  ("embedding_multi_folded", _embedding_multi_case(True)),
)


def _unique(tensors):
  """The tensors without repetitions, in order."""
  return list({t.ref(): t for t in tensors}.values())


class LayerBlockTest(parameterized.TestCase):
  """Each layer type's damped block and its inverse against NumPy."""

  @parameterized.named_parameters(*_per_release(_CASES))
  def test_products_match_dense_oracle(self, package, build):
    _check_products(package, build)


def _check_products(package, build):
  """The estimator's products for the layers of `build` vs. their oracles."""
  with _fresh_collection(package) as (ns, sess, lc, rng):
    variables, outputs, parts = build(ns, lc, rng)
    logits = tf.concat([tf.reshape(o, [BATCH, -1]) for o in outputs], 1)
    targets = tf.constant(
      rng.randn(*logits.shape.as_list()), dtype=logits.dtype
    )
    lc.register_normal_predictive_distribution(logits, targets=targets)
    estimator = ns.estimator.make_fisher_estimator(
      variables=variables,
      cov_ema_decay=0.0,
      damping=DAMPING,
      layer_collection=lc,
      exps=(-1, 1),
      estimation_mode="empirical",
    )
    cov_thunks, inv_thunks = estimator.make_vars_and_create_op_thunks()
    cov_ops = [thunk() for thunk in cov_thunks]
    inv_ops = [thunk() for thunk in inv_thunks]
    vectors = [
      (
        tf.constant(rng.randn(*v.shape.as_list()), dtype=v.dtype.base_dtype),
        v,
      )
      for v in variables
    ]
    products = [p for p, _ in estimator.multiply(vectors)]
    inverses = [p for p, _ in estimator.multiply_inverse(vectors)]
    # The oracle's data: the layer tensors and the gradients of the loss
    # the empirical Fisher differentiates, w.r.t. the layer outputs.
    data = _unique(t for part in parts for t in part[2])
    wrt = _unique(t for part in parts for t in part[3])
    loss_grads = tf.gradients(lc.total_loss(), wrt)
    sess.run(tf.compat.v1.global_variables_initializer())
    sess.run(cov_ops)
    sess.run(inv_ops)
    data_values, grad_values, got_products, got_inverses, vector_values = (
      sess.run([data, loss_grads, products, inverses, [v for v, _ in vectors]])
    )
  values = {t.ref(): v for t, v in zip(data, data_values)}
  grads = {t.ref(): g for t, g in zip(wrt, grad_values)}

  def value(tensor):
    return values[tensor.ref()]

  def grad(output):
    return grads[output.ref()]

  index = {v.ref(): i for i, v in enumerate(variables)}
  for params, oracle, _, _ in parts:
    positions = [index[p.ref()] for p in tf.nest.flatten(params)]
    dense, embedding = oracle(value, grad)
    vec = np.concatenate([vector_values[i].ravel() for i in positions])
    if embedding is None:
      embedding = np.eye(vec.size)
    expected = embedding.T @ dense @ embedding @ vec
    expected_inverse = embedding.T @ np.linalg.solve(dense, embedding @ vec)
    got = np.concatenate([got_products[i].ravel() for i in positions])
    got_inv = np.concatenate([got_inverses[i].ravel() for i in positions])
    tolerance = 1e-6 if got.dtype == np.float64 else 1e-4
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(
      got_inv, expected_inverse, rtol=tolerance, atol=tolerance
    )


_TOWER_CASES = (
  ("conv2d_multi", _conv2d_multi_case(False, towers=2)),
  ("depthwise_diagonal", _depthwise_case(False, None, towers=2)),
)


class TowerTest(parameterized.TestCase):
  """Two towers (equal batches) under both tower strategies.

  "concat" pools the towers' rows, "separate" averages the per-tower
  statistics; with equal batches both give the pooled oracle.
  """

  @parameterized.named_parameters(
    (name + "_" + strategy, package, build, strategy)
    for name, package, build in _per_release(_TOWER_CASES)
    for strategy in ("concat", "separate")
  )
  def test_products_match_pooled_oracle(self, package, build, strategy):
    factors = _ns(package).fisher_factors
    previous = factors.TOWER_STRATEGY
    factors.set_global_constants(tower_strategy=strategy)
    try:
      _check_products(package, build)
    finally:
      factors.set_global_constants(tower_strategy=previous)


class DepthwiseFilterMapTest(parameterized.TestCase):
  """`depthwise_conv2d_filter_to_conv2d_filter` and its inverse."""

  @parameterized.named_parameters(*_RELEASES)
  def test_maps_against_loops_and_convolutions(self, package):
    ns = _ns(package)
    rng = np.random.RandomState(1)
    depthwise = rng.randn(2, 3, 3, 2)
    expected = np.zeros((2, 3, 3, 6))
    for h, w, i, k in itertools.product(range(2), range(3), range(3), range(2)):
      expected[h, w, i, i * 2 + k] = depthwise[h, w, i, k]
    x = rng.randn(2, 5, 5, 3)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      dense = ns.fisher_blocks.depthwise_conv2d_filter_to_conv2d_filter(
        depthwise
      )
      back = ns.fisher_blocks.conv2d_filter_to_depthwise_conv2d_filter(dense)
      # The dense filter computes the depthwise convolution.
      conv = tf.nn.conv2d(x, dense, [1, 1, 1, 1], "SAME")
      depthwise_conv = tf.nn.depthwise_conv2d(
        x, depthwise, [1, 1, 1, 1], "SAME"
      )
      got_dense, got_back, got_conv, want_conv = sess.run(
        [dense, back, conv, depthwise_conv]
      )
    np.testing.assert_array_equal(got_dense, expected)
    np.testing.assert_array_equal(got_back, depthwise)
    np.testing.assert_allclose(got_conv, want_conv, rtol=1e-10)

  @parameterized.named_parameters(*_RELEASES)
  def test_out_channels_must_be_a_multiple(self, package):
    ns = _ns(package)
    with tf.Graph().as_default():
      with self.assertRaisesRegex(ValueError, "multiple of in_channels"):
        ns.fisher_blocks.conv2d_filter_to_depthwise_conv2d_filter(
          tf.zeros([1, 1, 2, 3])
        )


def _conv_layer(rng, shape=(BATCH, 4, 4, 2), filter_shape=(3, 3, 2, 2)):
  x = _const(rng, shape)
  w = _var("w", rng, filter_shape)
  return x, w, tf.nn.conv2d(x, w, [1, 1, 1, 1], "SAME")


def _bad_convolution_approx(ns, lc, rng):
  x = _const(rng, (BATCH, 6, 2))
  w = _var("w", rng, (3, 2, 2))
  y = tf.compat.v1.nn.convolution(x, w, "SAME")
  lc.register_convolution(w, x, y, "SAME", approx="diagonal")


def _channel_first_convolution(ns, lc, rng):
  x, w, y = _conv_layer(rng)
  lc.register_convolution(w, x, y, "SAME", data_format="NCHW")


def _channel_first_conv2d_kron(ns, lc, rng):
  x, w, y = _conv_layer(rng)
  lc.register_conv2d(w, [1, 1, 1, 1], "SAME", x, y, data_format="NCHW")


def _depthwise(
  approx=None, data_format=None, bias=False, strides=None, rate=None
):
  def register(ns, lc, rng):
    x = _const(rng, (BATCH, 4, 4, 2))
    dw = _var("dw", rng, (3, 3, 2, 1))
    h = tf.nn.depthwise_conv2d(x, dw, [1, 1, 1, 1], "SAME")
    params = (dw, _var("b", rng, (2,))) if bias else dw
    lc.register_depthwise_conv2d(
      params,
      x,
      h,
      strides or [1, 1, 1, 1],
      "SAME",
      rate=rate,
      data_format=data_format,
      approx=approx,
    )

  return register


def _conv2d_multi(approx=None, lengths=(2, 2)):
  def register(ns, lc, rng):
    w = _var("w", rng, (3, 3, 2, 2))
    xs = [_const(rng, (BATCH, 4, 4, 2)) for _ in range(lengths[0])]
    ys = [tf.nn.conv2d(x, w, [1, 1, 1, 1], "SAME") for x in xs]
    lc.register_conv2d_multi(
      w, [1, 1, 1, 1], "SAME", xs, ys[: lengths[1]], approx=approx
    )

  return register


def _embedding_multi(approx=None, bias=False):
  def register(ns, lc, rng):
    table = _var("table", rng, (5, 3))
    ids = [tf.constant([0, 1]), tf.constant([2, 3])]
    outs = [tf.gather(table, i) for i in ids]
    params = (table, _var("b", rng, (3,))) if bias else table
    lc.register_embedding_multi(params, ids, outs, approx=approx)

  return register


_REGISTRATION_ERRORS = (
  ("convolution_approx", (_bad_convolution_approx, AssertionError, "")),
  (
    "convolution_channel_first",
    (_channel_first_convolution, ValueError, "channel-last"),
  ),
  (
    "conv2d_kron_channel_first",
    (_channel_first_conv2d_kron, ValueError, "channel-last"),
  ),
  ("depthwise_approx", (_depthwise(approx="kron"), AssertionError, "")),
  (
    "depthwise_data_format",
    (_depthwise(data_format="NCHW"), AssertionError, ""),
  ),
  ("depthwise_bias", (_depthwise(bias=True), NotImplementedError, "Bias")),
  ("depthwise_strides", (_depthwise(strides=[1, 1, 1]), ValueError, "strides")),
  ("depthwise_rate", (_depthwise(rate=[1, 1, 1, 1]), ValueError, "rate")),
  (
    "conv2d_multi_approx",
    (_conv2d_multi(approx="kron"), ValueError, "Bad value"),
  ),
  ("conv2d_multi_lengths", (_conv2d_multi(lengths=(2, 1)), AssertionError, "")),
  (
    "embedding_multi_approx",
    (_embedding_multi(approx="kron"), ValueError, "Bad value"),
  ),
  ("embedding_multi_bias", (_embedding_multi(bias=True), ValueError, "Bias")),
)


class RegistrationTest(parameterized.TestCase):
  """Errors, use counts and variable names of the new registrations."""

  @parameterized.named_parameters(*_per_release(_REGISTRATION_ERRORS))
  def test_errors(self, package, expected):
    register, error, message = expected
    with _fresh_collection(package) as (ns, _, lc, rng):
      with self.assertRaisesRegex(error, message):
        register(ns, lc, rng)

  @parameterized.named_parameters(*_RELEASES)
  def test_folded_uses_need_num_uses(self, package):
    with _fresh_collection(package) as (ns, _, lc, rng):
      x, w, y = _conv_layer(rng)
      lc.register_conv2d_multi(w, [1, 1, 1, 1], "SAME", x, y)
      lc.register_normal_predictive_distribution(tf.reshape(y, [BATCH, -1]))
      estimator = ns.estimator.make_fisher_estimator(
        variables=[w], cov_ema_decay=0.0, damping=DAMPING, layer_collection=lc
      )
      with self.assertRaisesRegex(ValueError, "num_uses"):
        estimator.make_vars_and_create_op_thunks()

  @parameterized.named_parameters(*_RELEASES)
  def test_use_counts(self, package):
    with _fresh_collection(package) as (ns, _, lc, rng):
      _separable_build(ns, lc, rng)
      with tf.compat.v1.variable_scope("multi"):
        _conv2d_multi_case(False)(ns, lc, rng)
      with tf.compat.v1.variable_scope("folded"):
        _embedding_multi_case(True)(ns, lc, rng)
      with tf.compat.v1.variable_scope("conv1d"):
        _convolution_case((6,), (3,), None, None, "SAME", False)(ns, lc, rng)
      counts = {v.op.name: n for v, n in lc._get_use_count_map().items()}
    self.assertEqual(
      counts,
      {
        "dw": 1,
        "pw": 1,
        "b": 1,
        "multi/w": 2,
        "multi/b": 2,
        "folded/table": 1,
        "conv1d/w": 1,
      },
    )

  @parameterized.named_parameters(*_RELEASES)
  def test_variable_names(self, package):
    with _fresh_collection(package) as (ns, _, lc, rng):
      x1 = tf.constant(rng.randn(BATCH, 4, 4, 2), name="x1")
      x2 = tf.constant(rng.randn(BATCH, 4, 4, 2), name="x2")
      w = _var("w", rng, (3, 3, 2, 2))
      ys = [tf.nn.conv2d(x, w, [1, 1, 1, 1], "SAME") for x in (x1, x2)]
      ids = tf.constant([0, 1, 2, 3], name="ids")
      table = _var("table", rng, (5, 3))
      looked_up = tf.gather(table, ids)
      x3 = tf.constant(rng.randn(BATCH, 6, 2), name="x3")
      w3 = _var("w3", rng, (3, 2, 2))
      y3 = tf.compat.v1.nn.convolution(x3, w3, "SAME")
      lc.register_conv2d_multi(w, [1, 1, 1, 1], "SAME", [x1, x2], ys)
      lc.register_embedding_multi(table, ids, looked_up, num_uses=2)
      lc.register_convolution(w3, x3, y3, "SAME")
      outputs = [tf.reshape(t, [BATCH, -1]) for t in ys + [looked_up, y3]]
      lc.register_normal_predictive_distribution(tf.concat(outputs, 1))
      estimator = ns.estimator.make_fisher_estimator(
        variables=[w, table, w3],
        cov_ema_decay=0.0,
        damping=DAMPING,
        layer_collection=lc,
      )
      estimator.make_vars_and_create_op_thunks()
      names = {
        v.op.name.split("/")[1]
        for v in tf.compat.v1.global_variables()
        if v.op.name.startswith("FisherEstimator/")
      }
    self.assertContainsSubset(
      {
        "ff_convinkron_x1__x2_3-3-2-2_1-1-1-1_SAME_None_None_False",
        "ff_diag_embedding_ids",
        "ff_convinkron_x3_3-2-2_None_SAME_None_None_False",
      },
      names,
    )
    # The gradient scopes: conv outputs of both uses, the folded lookups
    # with their use count and no bias.
    self.assertTrue(
      any(
        n.startswith("ff_convoutkron_gradients") and "__gradients" in n
        for n in names
      ),
      names,
    )
    self.assertTrue(
      any(
        n.startswith("ff_fc_multi_gradients") and n.endswith("_2_False")
        for n in names
      ),
      names,
    )


class PatchSubSamplingTest(parameterized.TestCase):
  """1.9's optional sub-sampling of convolution patches and inputs."""

  def _covariance(self, x, filter_shape, **kwargs):
    ns = _ns("kfac.r1_9")
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      factor = ns.fisher_factors.ConvInputKroneckerFactor(
        (tf.constant(x),), filter_shape, "VALID", **kwargs
      )
      factor.instantiate_cov_variables()
      update = factor.make_covariance_update_op(0.0)
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(update)
      return sess.run(factor.get_cov())

  def _assert_some_subset(self, got, pieces, size, rows_of):
    """`got` is the second moment of the rows of some `size`-subset."""
    candidates = [
      _np_second_moment(rows_of([pieces[i] for i in subset]))
      for subset in itertools.combinations(range(len(pieces)), size)
    ]
    self.assertTrue(
      any(np.allclose(got, c, rtol=1e-10) for c in candidates), got
    )

  def test_sub_sampled_patches(self):
    # 6 patch rows of 3 entries: 1.9 keeps _MAX_NUM_OUTER_PRODUCTS_PER_COV_ROW
    # (1) · 3 random rows.
    x = np.random.RandomState(2).randn(1, 1, 6, 3)
    got = self._covariance(x, (1, 1, 3, 2), sub_sample_patches=True)
    rows = list(x.reshape(6, 3))
    self._assert_some_subset(got, rows, 3, np.array)
    self.assertFalse(np.allclose(got, _np_second_moment(np.array(rows))))

  def test_sub_sampled_inputs(self):
    # 4 examples: 1.9 keeps _INPUTS_TO_EXTRACT_PATCHES_FACTOR (0.5) · 4.
    x = np.random.RandomState(3).randn(4, 3, 3, 2)

    def rows_of(examples):
      patches = conv_oracles.patch_rows(
        np.array(examples), (2, 2), (1, 1), (1, 1), "VALID"
      )
      return patches.reshape(-1, patches.shape[-1])

    got = self._covariance(x, (2, 2, 2, 1), sub_sample_inputs=True)
    self._assert_some_subset(got, list(x), 2, rows_of)
    full = self._covariance(x, (2, 2, 2, 1))
    np.testing.assert_allclose(full, _np_second_moment(rows_of(list(x))))


# ---------------------------------------------------------------------------
# Training: a few K-FAC steps of small models with the new layer types.

TRAIN_BATCH, CLASSES = 8, 3
_OPTIMIZER_ARGS = {
  "learning_rate": 0.05,
  "cov_ema_decay": 0.9,
  "damping": 0.1,
  "momentum": 0.0,
}


def _dense_head(lc, rng, features):
  """A registered FC layer to class logits."""
  flat = tf.reshape(features, [TRAIN_BATCH, -1])
  w = _var("head_w", rng, (flat.shape.as_list()[1], CLASSES), tf.float32)
  b = _var("head_b", rng, (CLASSES,), tf.float32)
  logits = tf.matmul(flat, w) + b
  lc.register_fully_connected((w, b), flat, logits)
  return logits


def _separable_model(lc, rng):
  x = tf.constant(rng.randn(TRAIN_BATCH, 5, 5, 2).astype(np.float32))
  dw = _var("dw", rng, (3, 3, 2, 2), tf.float32)
  pw = _var("pw", rng, (1, 1, 4, 3), tf.float32)
  b = _var("b", rng, (3,), tf.float32)
  h = tf.nn.depthwise_conv2d(x, dw, [1, 1, 1, 1], "SAME")
  y = tf.nn.conv2d(h, pw, [1, 1, 1, 1], "VALID") + b
  lc.register_separable_conv2d(dw, (pw, b), x, h, y, [1, 1, 1, 1], "SAME")
  return _dense_head(lc, rng, tf.nn.relu(y))


def _shared_conv_model(lc, rng):
  x = tf.constant(rng.randn(TRAIN_BATCH, 4, 4, 2).astype(np.float32))
  w = _var("w", rng, (3, 3, 2, 2), tf.float32)
  b = _var("b", rng, (2,), tf.float32)
  inputs, outputs = [x], []
  for _ in range(2):
    outputs.append(tf.nn.conv2d(inputs[-1], w, [1, 1, 1, 1], "SAME") + b)
    inputs.append(tf.nn.relu(outputs[-1]))
  lc.register_conv2d_multi((w, b), [1, 1, 1, 1], "SAME", inputs[:2], outputs)
  return _dense_head(lc, rng, inputs[-1])


def _sequence_model(lc, rng):
  """Embedding used at two positions, then a 1-D convolution over them."""
  ids = tf.constant(rng.randint(0, 6, size=(TRAIN_BATCH, 2)))
  table = _var("table", rng, (6, 3), tf.float32)
  looked_up = [tf.gather(table, ids[:, t]) for t in range(2)]
  lc.register_embedding_multi(table, [ids[:, t] for t in range(2)], looked_up)
  sequence = tf.stack(looked_up, 1)
  w = _var("w", rng, (2, 3, 4), tf.float32)
  y = tf.compat.v1.nn.convolution(sequence, w, "VALID")
  lc.register_convolution(w, sequence, y, "VALID")
  return _dense_head(lc, rng, tf.nn.relu(y))


_MODELS = (
  ("separable", _separable_model),
  ("shared_conv", _shared_conv_model),
  ("embedding_and_conv1d", _sequence_model),
)


class TrainingTest(parameterized.TestCase):
  """The loss of each model decreases over a few K-FAC steps."""

  @parameterized.named_parameters(*_per_release(_MODELS))
  def test_loss_decreases(self, package, build):
    with _fresh_collection(package, seed=4) as (ns, sess, lc, rng):
      logits = build(lc, rng)
      labels = tf.constant(rng.randint(0, CLASSES, size=TRAIN_BATCH))
      lc.register_categorical_predictive_distribution(logits, name="logits")
      cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits
      loss = tf.reduce_mean(cross_entropy(labels=labels, logits=logits))
      optimizer = ns.optimizer.KfacOptimizer(
        layer_collection=lc, batch_size=TRAIN_BATCH, **_OPTIMIZER_ARGS
      )
      cov_thunks, inv_thunks = optimizer.make_vars_and_create_op_thunks()
      cov_op = tf.group(*[thunk() for thunk in cov_thunks])
      inv_op = tf.group(*[thunk() for thunk in inv_thunks])
      train = optimizer.minimize(loss)
      sess.run(tf.compat.v1.global_variables_initializer())
      before = sess.run(loss)
      for _ in range(8):
        sess.run(cov_op)
        sess.run(inv_op)
        sess.run(train)
      after = sess.run(loss)
    self.assertTrue(np.isfinite(after))
    self.assertLess(after, before)
