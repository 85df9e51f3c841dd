"""FitNets hints (Romero et al., 2015): a student layer regresses a teacher layer's activations.

A learned regressor (1x1 convolution, then batch normalization) maps the student's channels onto the teacher's;
it trains with the student and is dropped afterwards. Both sides are compared standardized per channel: the
teacher's activations over the batch, the regressor's through its batch norm. Raw activations differ in scale by
orders of magnitude between networks (this repo's CIFAR-10 teacher has a mean square of 0.004 at one layer and
0.29 at another), and a raw mean squared error then pulls the student's own features towards the teacher's scale,
which cost the benchmark's FitNet student 11 points with the raw loss. The loss is the mean squared error over
all elements (the paper's 1/2 ||.||^2, averaged so its scale does not grow with the layer's size).
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

DEFAULT_BETA = 1.0  # weight of the standardized hint next to the KD loss (benchmarks/README.md, "FitNet weight")


def standardize(features, epsilon: float = 1e-3):
    """Zero mean and unit variance per channel, over the batch and spatial positions."""
    f = tf.cast(features, tf.float32)
    mean, variance = tf.nn.moments(f, axes=list(range(len(f.shape) - 1)), keepdims=True)
    return (f - mean) * tf.math.rsqrt(variance + epsilon)


def hint_loss(student_features, teacher_features):
    """Mean squared error between (regressed) student features and teacher features of the same shape."""
    s = tf.cast(student_features, tf.float32)
    return tf.reduce_mean(tf.square(s - tf.cast(teacher_features, tf.float32)))


class HintTerm(keras.layers.Layer):
    """One hint pair: student feature ``index`` against target ``key``, through the regressor."""

    def __init__(self, index: int, key: str, teacher_channels: int, beta: float = DEFAULT_BETA, **kwargs):
        super().__init__(**kwargs)
        self.index, self.key, self.beta = index, key, float(beta)
        self.adapter = keras.layers.Conv2D(teacher_channels, 1, use_bias=False, name=f"{self.name}_adapter", dtype="float32")
        # center/scale off: the target is standardized, so an affine output would only learn the identity.
        self.norm = keras.layers.BatchNormalization(center=False, scale=False, name=f"{self.name}_bn", dtype="float32")

    def loss(self, targets, features, labels):
        regressed = self.norm(self.adapter(tf.cast(features[self.index], tf.float32)), training=True)
        return self.beta * hint_loss(regressed, standardize(targets[self.key]))
