"""Distillation losses, written as in the papers.

Hinton et al. (2015): L = alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) * CE(y, softmax(z_s)).
The T^2 keeps the soft term's gradients on the same scale as the hard term's when T changes.
"""
from __future__ import annotations

import tensorflow as tf

UNLABELED = -1  # label value for transfer data the teacher labels alone


def soft_target_loss(teacher_logits, student_logits, temperature: float):
    """Per-sample T^2 * KL(p_teacher^T || p_student^T)."""
    t = tf.cast(temperature, student_logits.dtype)
    p_teacher = tf.nn.softmax(tf.cast(teacher_logits, student_logits.dtype) / t, axis=-1)
    log_p_teacher = tf.nn.log_softmax(tf.cast(teacher_logits, student_logits.dtype) / t, axis=-1)
    log_p_student = tf.nn.log_softmax(student_logits / t, axis=-1)
    kl = tf.reduce_sum(p_teacher * (log_p_teacher - log_p_student), axis=-1)
    return kl * t * t


def hard_label_loss(labels, student_logits):
    """Per-sample cross-entropy on labels; zero (and excluded) where the label is UNLABELED."""
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    mask = tf.cast(labels != UNLABELED, student_logits.dtype)
    safe = tf.maximum(labels, 0)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=student_logits)
    return ce * mask, mask


def kd_loss(labels, teacher_logits, student_logits, temperature: float = 4.0, alpha: float = 0.7):
    """Mean Hinton KD loss over a batch. ``alpha`` weighs the teacher term; alpha=0 is training on labels.

    The hard term is averaged over labeled samples only, so unlabeled transfer data
    contributes only through the teacher.
    """
    soft = tf.reduce_mean(soft_target_loss(teacher_logits, student_logits, temperature))
    ce, mask = hard_label_loss(labels, student_logits)
    hard = tf.math.divide_no_nan(tf.reduce_sum(ce), tf.reduce_sum(mask))
    return alpha * soft + (1.0 - alpha) * hard


def soft_probs_loss(teacher_probs, student_logits, temperature: float):
    """Per-sample T^2 * KL(q || softmax(z_s / T)) for targets ``q`` that are already probabilities at temperature T
    (multi-teacher targets are a mixture of the teachers' softened outputs, not one teacher's logits)."""
    t = tf.cast(temperature, student_logits.dtype)
    q = tf.cast(teacher_probs, student_logits.dtype)
    log_q = tf.math.log(tf.clip_by_value(q, 1e-12, 1.0))
    log_p_student = tf.nn.log_softmax(student_logits / t, axis=-1)
    return tf.reduce_sum(q * (log_q - log_p_student), axis=-1) * t * t


def kd_loss_probs(labels, teacher_probs, student_logits, temperature: float = 4.0, alpha: float = 0.7):
    """:func:`kd_loss` with probability targets (see :func:`soft_probs_loss`)."""
    soft = tf.reduce_mean(soft_probs_loss(teacher_probs, student_logits, temperature))
    ce, mask = hard_label_loss(labels, student_logits)
    hard = tf.math.divide_no_nan(tf.reduce_sum(ce), tf.reduce_sum(mask))
    return alpha * soft + (1.0 - alpha) * hard
