"""Contrastive representation distillation (Tian et al., 2020).

Student and teacher penultimate features each pass through a learned linear projection head and are
L2-normalised. Two memory banks keep one embedding per training sample (student's and teacher's), updated with
momentum. For every sample, its own index in the other model's bank is the positive and K random indices are
negatives; scores exp(<v, m> / tau) / Z go into the NCE loss of the paper:

    L = -sum_b [ log(P_pos / (P_pos + K/N)) + sum_k log((K/N) / (P_k + K/N)) ] / B

in both directions (student against the teacher bank, teacher against the student bank). Z, the partition
estimate, is re-estimated from every batch (mean score x N, no gradient) rather than frozen after the first batch
as in the authors' code, so it follows the embeddings as they move.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

DEFAULT_BETA = 0.8  # weight of the CRD term next to KD, as in the authors' benchmark code
EPS = 1e-7


def nce_loss(scores, num_data: int):
    """NCE loss over ``scores`` (batch, 1+K): column 0 the positive, the rest negatives, already divided by Z."""
    scores = tf.cast(scores, tf.float32)
    k = tf.cast(tf.shape(scores)[1] - 1, tf.float32)
    noise = k / float(num_data)  # K * P_noise, P_noise = 1/N uniform over the data
    log_pos = tf.math.log(scores[:, 0] / (scores[:, 0] + noise + EPS))
    log_neg = tf.math.log(noise / (scores[:, 1:] + noise + EPS))
    return -(tf.reduce_sum(log_pos) + tf.reduce_sum(log_neg)) / tf.cast(tf.shape(scores)[0], tf.float32)


def contrast_scores(embedding, bank, indices, tau: float, num_data: int):
    """exp(<embedding_b, bank[indices_b,k]> / tau) / Z for each sample b and candidate k."""
    candidates = tf.gather(bank, indices)  # (batch, 1+K, dim)
    scores = tf.exp(tf.einsum("bkd,bd->bk", candidates, embedding) / tau)
    z = tf.stop_gradient(tf.reduce_mean(scores)) * float(num_data)
    return scores / z


class CRDTerm(keras.layers.Layer):
    """The CRD loss with its two projection heads and two memory banks.

    ``index`` is the student feature (its penultimate layer), ``key`` the target holding the teacher's
    penultimate features; the batch's sample indices arrive as target ``"index"``.
    """

    def __init__(self, index: int, key: str, num_data: int, dim: int = 128, negatives: int = 1024, tau: float = 0.07,
                 momentum: float = 0.5, beta: float = DEFAULT_BETA, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.index, self.key, self.beta = index, key, float(beta)
        self.num_data, self.tau, self.momentum = int(num_data), float(tau), float(momentum)
        self.negatives = int(min(negatives, max(1, num_data - 1)))
        self.student_head = keras.layers.Dense(dim, name="crd_student_head", dtype="float32")
        self.teacher_head = keras.layers.Dense(dim, name="crd_teacher_head", dtype="float32")
        rng = np.random.default_rng(seed)
        stdv = 1.0 / np.sqrt(dim / 3.0)  # the authors' initialisation of the banks
        init = lambda: rng.uniform(-stdv, stdv, (self.num_data, dim)).astype(np.float32)  # noqa: E731
        self.student_bank = tf.Variable(init(), trainable=False, name="crd_student_bank")
        self.teacher_bank = tf.Variable(init(), trainable=False, name="crd_teacher_bank")

    def loss(self, targets, features, labels):
        v_s = tf.math.l2_normalize(self.student_head(tf.cast(features[self.index], tf.float32)), axis=1)
        v_t = tf.math.l2_normalize(self.teacher_head(tf.cast(targets[self.key], tf.float32)), axis=1)
        idx = tf.cast(tf.reshape(targets["index"], [-1]), tf.int32)
        batch = tf.shape(idx)[0]
        negatives = tf.random.uniform([batch, self.negatives], 0, self.num_data, dtype=tf.int32)
        candidates = tf.concat([idx[:, None], negatives], axis=1)
        loss = nce_loss(contrast_scores(v_s, self.teacher_bank, candidates, self.tau, self.num_data), self.num_data)
        loss += nce_loss(contrast_scores(v_t, self.student_bank, candidates, self.tau, self.num_data), self.num_data)
        self._update_bank(self.student_bank, idx, v_s)
        self._update_bank(self.teacher_bank, idx, v_t)
        return self.beta * loss

    def _update_bank(self, bank, idx, v):
        mixed = tf.gather(bank, idx) * self.momentum + tf.stop_gradient(v) * (1.0 - self.momentum)
        bank.scatter_nd_update(idx[:, None], tf.math.l2_normalize(mixed, axis=1))
