"""Installs `kfac`: TensorFlow 1.4's `tf.contrib.kfac` on TensorFlow 2.x."""

import setuptools

with open("README.md", encoding="utf-8") as f:
  _LONG_DESCRIPTION = f.read()

setuptools.setup(
  name="kfac-contrib",
  version="1.4.0.dev0",
  description=(
    "Drop-in replacement for TensorFlow 1.4's tf.contrib.kfac "
    "(K-FAC optimizer) on TensorFlow 2.x"
  ),
  long_description=_LONG_DESCRIPTION,
  long_description_content_type="text/markdown",
  license="Apache-2.0",
  python_requires=">=3.9",
  packages=setuptools.find_packages(include=["kfac", "kfac.*"]),
  # TensorFlow itself comes through an extra (the TF ecosystem convention):
  # `[tf-cpu]` keeps CPU-only machines off the CUDA build.
  install_requires=["numpy>=1.23", "absl-py>=1.0", "packaging>=20"],
  extras_require={
    "tf": ["tensorflow>=2.16"],
    "tf-cpu": ["tensorflow-cpu>=2.16"],
    "examples": ["scikit-learn>=1.0"],
    "bench": ["scikit-learn>=1.0", "matplotlib>=3.5"],
    "upgrade": ["libcst>=1.1"],
    "test": [
      "pytest>=7",
      "pytest-xdist>=3",
      "scikit-learn>=1.0",
      "libcst>=1.1",
      "ruff==0.17.6",
    ],
  },
  entry_points={
    "console_scripts": ["kfac-upgrade=kfac.upgrade:main"],
  },
  classifiers=[
    "Programming Language :: Python :: 3",
    "Topic :: Scientific/Engineering :: Artificial Intelligence",
  ],
)
