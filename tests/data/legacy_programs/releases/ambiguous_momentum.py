"""Written for 1.5 or later (it uses `reuse=`), but which one?

`KfacOptimizer` is called without `momentum`: 0.0 in 1.5, 0.9 from 1.6. With
no pin next to it, `kfac-upgrade` must ask for `--tf-version`.
"""
import tensorflow as tf


def build(w, x, logits, loss):
  layer_collection = tf.contrib.kfac.layer_collection.LayerCollection()
  layer_collection.register_fully_connected(w, x, logits, reuse=False)
  layer_collection.register_categorical_predictive_distribution(logits)
  optimizer = tf.contrib.kfac.optimizer.KfacOptimizer(
      0.05, 0.95, 0.01, layer_collection)
  return optimizer.minimize(loss)
