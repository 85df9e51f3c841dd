"""The Distiller: a tf_keras Model whose train_step mixes the teacher's soft labels with hard labels.

Unlike the Keras example, the teacher's logits arrive with the batch (computed once and cached),
so an epoch costs about what training the student alone costs. With ``teacher`` given instead,
the teacher runs on every batch: needed when inputs are augmented on the fly.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from .losses import UNLABELED, kd_loss


class Distiller(keras.Model):
    def __init__(self, student, teacher=None, temperature: float = 4.0, alpha: float = 0.7):
        super().__init__()
        self.student = student
        self.teacher = teacher
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.acc_tracker = keras.metrics.SparseCategoricalAccuracy(name="acc")

    @property
    def metrics(self):
        return [self.loss_tracker, self.acc_tracker]

    def call(self, x, training=False):
        return self.student(x, training=training)

    def _unpack(self, data):
        if self.teacher is not None:
            x, y = data
            return x, y, self.teacher(x, training=False)
        x, (y, teacher_logits) = data
        return x, y, teacher_logits

    def train_step(self, data):
        x, y, teacher_logits = self._unpack(data)
        with tf.GradientTape() as tape:
            student_logits = self.student(x, training=True)
            loss = kd_loss(y, teacher_logits, student_logits, self.temperature, self.alpha)
            loss += tf.add_n(self.student.losses) if self.student.losses else 0.0
        grads = tape.gradient(loss, self.student.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.student.trainable_variables))
        self.loss_tracker.update_state(loss)
        labeled = tf.reshape(y, [-1]) != UNLABELED
        self.acc_tracker.update_state(tf.boolean_mask(tf.reshape(y, [-1]), labeled), tf.boolean_mask(student_logits, labeled))
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data[0], data[1]
        if isinstance(y, tuple):
            y = y[0]
        logits = self.student(x, training=False)
        self.acc_tracker.update_state(y, logits)
        return {"acc": self.acc_tracker.result()}
