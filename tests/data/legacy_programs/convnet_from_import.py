"""Small ConvNet trained with K-FAC.

Style: `from tensorflow.contrib import kfac`, then `kfac.<module>.<name>`;
the optimizer is built with positional arguments in the 1.4 order.
"""
import numpy as np
import tensorflow as tf
from tensorflow.contrib import kfac  # the legacy package


def conv_layer(name, inputs, kernel_size, out_channels):
    """Conv + bias + ReLU; returns (pre, act, (kernel, bias))."""
    in_channels = int(inputs.shape[-1])
    with tf.compat.v1.variable_scope(name):
        kernel = tf.compat.v1.get_variable(
            "kernel", [kernel_size, kernel_size, in_channels, out_channels],
            initializer=tf.compat.v1.random_normal_initializer(stddev=0.1))
        bias = tf.compat.v1.get_variable(
            "bias", [out_channels], initializer=tf.compat.v1.zeros_initializer())
    pre = tf.nn.bias_add(
        tf.nn.conv2d(inputs, kernel, strides=[1, 1, 1, 1], padding="SAME"),
        bias)
    return pre, tf.nn.relu(pre), (kernel, bias)


def main():
    rng = np.random.RandomState(1)
    images = rng.rand(8, 6, 6, 1).astype(np.float32)
    labels = rng.randint(0, 3, size=8).astype(np.int64)
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(1)
        x = tf.constant(images)
        y = tf.constant(labels)
        lc = kfac.layer_collection.LayerCollection()

        pre, act, params = conv_layer("conv_0", x, 3, 4)
        lc.register_conv2d(params, (1, 1, 1, 1), "SAME", x, pre)
        pool = tf.nn.max_pool2d(act, ksize=2, strides=2, padding="SAME")
        flat = tf.reshape(pool, [8, 3 * 3 * 4])
        with tf.compat.v1.variable_scope("fc"):
            w = tf.compat.v1.get_variable(
                "w", [36, 3],
                initializer=tf.compat.v1.random_normal_initializer(stddev=0.1))
        logits = tf.matmul(flat, w)
        lc.register_fully_connected(w, flat, logits)  # no bias
        lc.register_categorical_predictive_distribution(logits)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=logits))

        opt = kfac.optimizer.KfacOptimizer(0.01, 0.95, 0.001, lc,
                                           momentum=0.9)
        train_op = opt.minimize(loss)
        sess = tf.compat.v1.Session()
        sess.run(tf.compat.v1.global_variables_initializer())
        for _ in range(2):  # Covariance statistics before the first inverse.
            sess.run(opt.cov_update_op)
        sess.run(opt.inv_update_op)
        sess.run(train_op)
        loss_value = sess.run(loss)
        sess.close()
    assert np.isfinite(loss_value), loss_value
    print("convnet_from_import: loss %.4f" % loss_value)


if __name__ == "__main__":
    main()
