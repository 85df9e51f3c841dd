"""The Distiller: a tf_keras Model whose train_step mixes the teacher's soft labels with hard labels,
plus any feature terms (hints, attention transfer, CRD).

Unlike the Keras example, the teacher's targets arrive with the batch (computed once and cached),
so an epoch costs about what training the student alone costs. With ``teacher`` given instead,
the teacher runs on every batch: needed when inputs are augmented on the fly.

A batch is ``(x, y)`` with an online teacher, else ``(x, (y, targets))``; targets is the teacher's logits
tensor or a dict with ``"logits"`` or ``"probs"`` (mixed multi-teacher targets) and whatever the feature
terms read (``"t0"``, ``"embed"``, ``"index"``...). An online ``teacher`` returns the same dict (or logits).
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras

from .losses import UNLABELED, kd_loss, kd_loss_probs


class Distiller(keras.Model):
    def __init__(self, student, teacher=None, temperature: float = 4.0, alpha: float = 0.7, terms: Sequence = (), feature_outputs: Sequence = ()):
        super().__init__()
        self.student = student
        self.teacher = teacher
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        # A variable, not a constant traced into the step: training may release the student from its teacher mid-run
        # (stopping.teacher_release) without retracing.
        self.alpha_weight = tf.Variable(self.alpha, trainable=False, dtype=tf.float32, name="alpha")
        self.terms = list(terms)
        # Student features the terms read, as a model sharing the student's weights: one forward pass gives all.
        self.extractor = keras.Model(student.inputs, [student.outputs[0], *feature_outputs]) if feature_outputs else None
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.acc_tracker = keras.metrics.SparseCategoricalAccuracy(name="acc")

    @property
    def metrics(self):
        return [self.loss_tracker, self.acc_tracker]

    def call(self, x, training=False):
        return self.student(x, training=training)

    def _unpack(self, data):
        x, rest = data
        y, targets = rest if isinstance(rest, (tuple, list)) else (rest, {})
        if not isinstance(targets, dict):
            targets = {"logits": targets}
        if self.teacher is not None:
            online = self.teacher(x)
            targets = {**targets, **(online if isinstance(online, dict) else {"logits": online})}
        return x, y, targets

    def _forward(self, x):
        if self.extractor is None:
            return self.student(x, training=True), []
        outs = self.extractor(x, training=True)
        return outs[0], list(outs[1:])

    def train_step(self, data):
        x, y, targets = self._unpack(data)
        with tf.GradientTape() as tape:
            student_logits, features = self._forward(x)
            # Losses in float32 even when the student computes in float16/bfloat16.
            student_logits = tf.cast(student_logits, tf.float32)
            if "probs" in targets:
                loss = kd_loss_probs(y, targets["probs"], student_logits, self.temperature, self.alpha_weight)
            else:
                loss = kd_loss(y, tf.cast(targets["logits"], tf.float32), student_logits, self.temperature, self.alpha_weight)
            for term in self.terms:
                loss += term.loss(targets, features, y)
            if self.student.losses:
                loss += tf.cast(tf.add_n(self.student.losses), tf.float32)
            # Gradients are summed over replicas under tf.distribute: scale each replica's mean loss accordingly.
            scaled = loss / tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
        variables = self.student.trainable_variables + [v for t in self.terms for v in t.trainable_variables]
        self.optimizer.minimize(scaled, variables, tape=tape)
        self.loss_tracker.update_state(loss)
        labeled = tf.reshape(y, [-1]) != UNLABELED
        self.acc_tracker.update_state(tf.boolean_mask(tf.reshape(y, [-1]), labeled), tf.boolean_mask(student_logits, labeled))
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data[0], data[1]
        if isinstance(y, tuple):
            y = y[0]
        logits = self.student(x, training=False)
        self.acc_tracker.update_state(y, tf.cast(logits, tf.float32))
        return {"acc": self.acc_tracker.result()}
