"""FitNets hints (Romero et al., 2015): a student layer regresses a teacher layer's activations.

When the two layers' channel counts differ, a learned 1x1 convolution (the paper's regressor) maps the student's
channels onto the teacher's; it trains with the student and is dropped afterwards. The loss is the mean squared
error over all elements (the paper's 1/2 ||.||^2, averaged so its scale does not grow with the layer's size).
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

DEFAULT_BETA = 100.0  # weight of the hint term, as in the CRD authors' benchmark code (RepDistiller) for FitNets


def hint_loss(student_features, teacher_features):
    """Mean squared error between (adapted) student features and teacher features of the same shape."""
    s = tf.cast(student_features, tf.float32)
    return tf.reduce_mean(tf.square(s - tf.cast(teacher_features, tf.float32)))


class HintTerm(keras.layers.Layer):
    """One hint pair: student feature ``index`` against target ``key``, through an adapter if widths differ."""

    def __init__(self, index: int, key: str, student_channels: int, teacher_channels: int, beta: float = DEFAULT_BETA, **kwargs):
        super().__init__(**kwargs)
        self.index, self.key, self.beta = index, key, float(beta)
        self.adapter = None
        if student_channels != teacher_channels:
            self.adapter = keras.layers.Conv2D(teacher_channels, 1, use_bias=False, name=f"{self.name}_adapter", dtype="float32")

    def loss(self, targets, features, labels):
        s = tf.cast(features[self.index], tf.float32)
        if self.adapter is not None:
            s = self.adapter(s)
        return self.beta * hint_loss(s, targets[self.key])
