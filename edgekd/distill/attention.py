"""Attention transfer (Zagoruyko & Komodakis, 2017): the student matches the teacher's spatial attention maps.

An attention map is the channel-mean of squared activations, flattened and L2-normalised; the loss per layer
pair is the mean squared difference of the two maps, weighted beta/2 with beta=1000 as in the paper's code.
Maps have no channel axis, so layers of any width pair up as long as their spatial sizes agree.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

DEFAULT_BETA = 1000.0


def attention_map(features):
    """(batch, H, W, C) -> (batch, H*W): normalize(mean_c(f^2))."""
    f = tf.cast(features, tf.float32)
    a = tf.reduce_mean(tf.square(f), axis=-1)
    a = tf.reshape(a, [tf.shape(a)[0], -1])
    return tf.math.l2_normalize(a, axis=1)


def attention_loss(student_map, teacher_map):
    """Mean squared difference of two normalised attention maps."""
    return tf.reduce_mean(tf.square(student_map - tf.cast(teacher_map, tf.float32)))


class AttentionTerm(keras.layers.Layer):
    """One attention pair: student feature ``index`` against the teacher's attention map at target ``key``."""

    def __init__(self, index: int, key: str, beta: float = DEFAULT_BETA, **kwargs):
        super().__init__(**kwargs)
        self.index, self.key, self.beta = index, key, float(beta)

    def loss(self, targets, features, labels):
        return self.beta / 2.0 * attention_loss(attention_map(features[self.index]), targets[self.key])
