"""Handwritten-digit data for the K-FAC examples, read offline.

Two sources are supported, and neither is ever downloaded at run time:

* scikit-learn's bundled handwritten digits (`sklearn.datasets.load_digits`):
  1,797 grey-scale images of 8x8 pixels (values 0..16, scaled here to [0, 1])
  with labels 0..9. This is the default and needs no files. A fixed random
  297 of them (`DIGITS_TEST_EXAMPLES`) form the test split, held out from
  training; the other 1,500 are the training split.
* the standard MNIST files in IDX format, when the user has them: a
  directory holding `train-images-idx3-ubyte` and `train-labels-idx1-ubyte`
  (each optionally gzipped, with `.gz`; the `train-images.idx3-ubyte` spelling
  is accepted too). 60,000 images of 28x28 pixels, scaled to [0, 1]. The
  10,000 test images (`t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`) are
  the test split when they are there too.

`load_mnist` keeps the signature and return values of the 2017 example: it
returns `(examples, labels)` tensors drawn from a one-shot `tf.data` iterator
over `from_tensor_slices(...).repeat(num_epochs).shuffle(num_examples)
.batch(batch_size)`.
"""

import gzip
import os
import struct

import numpy as np
import tensorflow as tf

__all__ = [
  "DIGITS",
  "DIGITS_TEST_EXAMPLES",
  "SPLITS",
  "load_mnist",
  "load_arrays",
  "load_digits_arrays",
  "load_mnist_arrays",
  "has_test_split",
  "check_data_dir",
  "fake_arrays",
  "read_idx",
]

# Value of `data_dir` (as well as `None` or "") that selects scikit-learn's
# bundled 8x8 digits instead of MNIST files.
DIGITS = "digits"

# Number of the digits held out as their test split.
DIGITS_TEST_EXAMPLES = 297

# Values of `split`.
SPLITS = ("train", "test")

_IMAGE_FILES = ("train-images-idx3-ubyte", "train-images.idx3-ubyte")
_LABEL_FILES = ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte")
_TEST_IMAGE_FILES = ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte")
_TEST_LABEL_FILES = ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte")

# IDX type codes -> numpy dtypes (big-endian on disk).
_IDX_DTYPES = {
  0x08: np.uint8,
  0x09: np.int8,
  0x0B: np.dtype(">i2"),
  0x0C: np.dtype(">i4"),
  0x0D: np.dtype(">f4"),
  0x0E: np.dtype(">f8"),
}


def read_idx(path):
  """Reads one IDX file (the MNIST file format), gzipped or not.

  The format is a 4-byte magic number `0x0000TTNN` (T = element type code,
  N = number of dimensions), N big-endian int32 dimension sizes, then the
  elements in C order.

  Args:
    path: str. Path of the file; a name ending in `.gz` is read through gzip.

  Returns:
    A numpy array with the shape and element type stored in the file.

  Raises:
    ValueError: if the file is not a well-formed IDX file.
  """
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    data = f.read()
  if len(data) < 4:
    raise ValueError("%s: too short to be an IDX file" % path)
  zero, type_code, ndim = struct.unpack(">HBB", data[:4])
  if zero != 0 or type_code not in _IDX_DTYPES:
    raise ValueError("%s: bad IDX magic number %r" % (path, data[:4]))
  header = 4 + 4 * ndim
  shape = struct.unpack(">%dI" % ndim, data[4:header])
  dtype = np.dtype(_IDX_DTYPES[type_code])
  count = int(np.prod(shape)) if shape else 1
  if len(data) - header != count * dtype.itemsize:
    raise ValueError(
      "%s: expected %d elements of shape %s, found %d bytes"
      % (path, count, shape, len(data) - header)
    )
  return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find_file(data_dir, names):
  for name in names:
    for suffix in ("", ".gz"):
      path = os.path.join(data_dir, name + suffix)
      if os.path.exists(path):
        return path
  return None


def check_data_dir(data_dir):
  """Checks that `data_dir` selects the digits or holds the MNIST files.

  Args:
    data_dir: str or None. As in `load_arrays`.

  Raises:
    ValueError: if `data_dir` names a directory without the MNIST IDX
      training files.
  """
  if not data_dir or data_dir == DIGITS:
    return
  if (
    _find_file(data_dir, _IMAGE_FILES) is None
    or _find_file(data_dir, _LABEL_FILES) is None
  ):
    raise ValueError(
      "data_dir=%r must hold the MNIST training files %s and %s (optionally "
      "gzipped); nothing is downloaded. Pass data_dir=%r (or leave it empty) "
      "to use scikit-learn's bundled 8x8 digits instead."
      % (data_dir, _IMAGE_FILES[0], _LABEL_FILES[0], DIGITS)
    )


def load_mnist_arrays(data_dir, split="train"):
  """Reads an MNIST split from IDX files in `data_dir`.

  Args:
    data_dir: str. Directory holding `train-images-idx3-ubyte[.gz]` and
      `train-labels-idx1-ubyte[.gz]` (and, for the test split,
      `t10k-images-idx3-ubyte[.gz]` and `t10k-labels-idx1-ubyte[.gz]`).
    split: str. "train" (60,000 images) or "test" (10,000).

  Returns:
    (images, labels): float32 `[N, 28, 28, 1]` in [0, 1] and int64 `[N]`.

  Raises:
    ValueError: if the files are missing (nothing is downloaded) or their
      sizes disagree.
  """
  check_data_dir(data_dir)
  image_names, label_names = (
    (_IMAGE_FILES, _LABEL_FILES)
    if split == "train"
    else (_TEST_IMAGE_FILES, _TEST_LABEL_FILES)
  )
  image_path = _find_file(data_dir, image_names)
  label_path = _find_file(data_dir, label_names)
  if image_path is None or label_path is None:
    raise ValueError(
      "data_dir=%r has no MNIST %s files %s and %s"
      % (data_dir, split, image_names[0], label_names[0])
    )
  images = read_idx(image_path)
  labels = read_idx(label_path)
  if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
    raise ValueError(
      "MNIST files in %r have inconsistent shapes %s and %s"
      % (data_dir, images.shape, labels.shape)
    )
  images = (images.astype(np.float32) / 255.0)[..., np.newaxis]
  return images, labels.astype(np.int64)


def load_digits_arrays(split=None):
  """Returns scikit-learn's bundled handwritten digits (no download).

  The test split is a fixed random `DIGITS_TEST_EXAMPLES` of the images
  (chosen by `numpy.random.RandomState(0)`); the training split is the rest,
  in their original order.

  Args:
    split: str or None. "train" (1,500 images), "test" (297) or None (all
      1,797).

  Returns:
    (images, labels): float32 `[N, 8, 8, 1]` with pixel values scaled from
    0..16 to [0, 1], and int64 `[N]` labels in 0..9.

  Raises:
    ImportError: if scikit-learn is not installed (naming the extra that
      installs it).
  """
  try:
    from sklearn.datasets import load_digits
  except ImportError as e:
    raise ImportError(
      "the examples' default data, the 8x8 digits, comes with scikit-learn "
      "(%s): pip install \"kfac-contrib[examples]\" (or scikit-learn), or "
      "pass --data_dir with the MNIST IDX files" % e
    ) from e
  digits = load_digits()
  images = (digits.images.astype(np.float32) / 16.0)[..., np.newaxis]
  labels = digits.target.astype(np.int64)
  if split is None:
    return images, labels
  is_test = np.zeros(len(labels), bool)
  is_test[
    np.random.RandomState(0).permutation(len(labels))[:DIGITS_TEST_EXAMPLES]
  ] = True
  keep = is_test if split == "test" else ~is_test
  return images[keep], labels[keep]


def fake_arrays(num_examples, image_size=28, seed=42):
  """Random stand-in data, as the 2017 example's `use_fake_data=True`.

  Args:
    num_examples: int. Number of examples.
    image_size: int. Height and width of the square images.
    seed: int. Seed of the `numpy.random.RandomState` used.

  Returns:
    (images, labels): float32 `[num_examples, image_size, image_size, 1]`
    uniform in [0, 1), and int64 `[num_examples]` uniform in 0..9.
  """
  rng = np.random.RandomState(seed)
  images = rng.rand(num_examples, image_size, image_size, 1).astype(np.float32)
  labels = rng.randint(0, 10, size=num_examples).astype(np.int64)
  return images, labels


def has_test_split(data_dir=None, use_fake_data=False):
  """Whether `load_arrays(..., split="test")` has data to return.

  Args:
    data_dir: str or None. As in `load_arrays`.
    use_fake_data: bool. As in `load_arrays` (fake data has no test split).

  Returns:
    bool: True for the digits, and for a `data_dir` with the MNIST `t10k`
    files.
  """
  if use_fake_data:
    return False
  if not data_dir or data_dir == DIGITS:
    return True
  return (
    _find_file(data_dir, _TEST_IMAGE_FILES) is not None
    and _find_file(data_dir, _TEST_LABEL_FILES) is not None
  )


def load_arrays(
  data_dir=None,
  flatten_images=True,
  use_fake_data=False,
  fake_examples=256,
  split="train",
):
  """Loads a whole split of the data as numpy arrays.

  Args:
    data_dir: str or None. `None`, "" or `DIGITS` selects scikit-learn's 8x8
      digits; anything else is a directory with the MNIST IDX files.
    flatten_images: bool. If True images are `[N, H*W]`, else `[N, H, W, 1]`.
    use_fake_data: bool. If True, return `fake_arrays(fake_examples)` (28x28
      random images) and ignore `data_dir`.
    fake_examples: int. Number of fake examples.
    split: str. "train" or "test" (see `has_test_split`).

  Returns:
    (images, labels): float32 images in [0, 1] and int64 labels in 0..9.

  Raises:
    ValueError: for an unknown `split`, the test split of fake data, or
      missing MNIST files.
  """
  if split not in SPLITS:
    raise ValueError("split must be one of %s, got %r" % (SPLITS, split))
  if use_fake_data:
    if split != "train":
      raise ValueError("fake data has no %s split" % split)
    images, labels = fake_arrays(fake_examples)
  elif not data_dir or data_dir == DIGITS:
    images, labels = load_digits_arrays(split)
  else:
    images, labels = load_mnist_arrays(data_dir, split)
  if flatten_images:
    images = images.reshape(images.shape[0], -1)
  return images, labels


def load_mnist(
  data_dir,
  num_epochs,
  batch_size,
  flatten_images=True,
  use_fake_data=False,
  seed=None,
):
  """Loads the training split as a stream of shuffled mini-batches.

  Builds `Dataset.from_tensor_slices((images, labels)).repeat(num_epochs)
  .shuffle(num_examples, seed).batch(batch_size)` and returns the next
  element of a one-shot iterator; it raises `OutOfRangeError` after
  `num_epochs` epochs (which `MonitoredTrainingSession` treats as the end of
  training).

  Args:
    data_dir: str or None. Directory with the MNIST IDX training files, or
      `None` / "" / "digits" for scikit-learn's bundled 8x8 digits.
    num_epochs: int or None. Passes over the data (`None`: repeat forever).
    batch_size: int. Examples per mini-batch.
    flatten_images: bool. If True, examples are `[B, H*W]`; else
      `[B, H, W, 1]`.
    use_fake_data: bool. If True, use `4 * batch_size` random 28x28 images
      (`numpy.random.RandomState(42)`) instead of real data.
    seed: int or None. Shuffle seed (keyword added here for reproducible
      runs; `None` is the 2017 behaviour).

  Returns:
    examples: float32 Tensor `[B, 784]` / `[B, 28, 28, 1]` for MNIST or fake
      data, `[B, 64]` / `[B, 8, 8, 1]` for the digits; values in [0, 1].
    labels: int64 Tensor `[B]` with values in 0..9.
  """
  images, labels = load_arrays(
    data_dir,
    flatten_images=flatten_images,
    use_fake_data=use_fake_data,
    fake_examples=4 * batch_size,
  )
  num_examples = images.shape[0]
  dataset = (
    tf.data.Dataset.from_tensor_slices((images, labels))
    .repeat(num_epochs)
    .shuffle(num_examples, seed=seed)
    .batch(batch_size)
  )
  return tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
