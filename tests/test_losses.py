import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from edgekd.distill.losses import UNLABELED, kd_loss, soft_target_loss


def _softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def test_kd_loss_matches_hand_computation():
    teacher = [2.0, 1.0, 0.0]
    student = [0.5, 1.5, -1.0]
    label, T, alpha = 0, 2.0, 0.7
    pt = _softmax([v / T for v in teacher])
    ps = _softmax([v / T for v in student])
    kl = sum(p * math.log(p / q) for p, q in zip(pt, ps))
    ce = -math.log(_softmax(student)[label])
    expected = alpha * T * T * kl + (1 - alpha) * ce
    got = kd_loss(tf.constant([label]), tf.constant([teacher]), tf.constant([student]), temperature=T, alpha=alpha)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_soft_term_is_zero_when_student_equals_teacher():
    z = tf.constant([[3.0, -1.0, 0.5]])
    assert float(soft_target_loss(z, z, 4.0)[0]) == pytest.approx(0.0, abs=1e-6)


def test_alpha_zero_is_plain_cross_entropy():
    logits = tf.constant([[1.0, 2.0, 0.0]])
    ce = float(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=[1], logits=logits)[0])
    got = float(kd_loss(tf.constant([1]), tf.constant([[9.0, -9.0, 0.0]]), logits, temperature=4.0, alpha=0.0))
    assert got == pytest.approx(ce, rel=1e-6)


def test_unlabeled_samples_only_feel_the_teacher():
    teacher = tf.constant([[2.0, 0.0], [0.0, 2.0]])
    student = tf.constant([[0.0, 0.0], [0.0, 0.0]])
    both = kd_loss(tf.constant([0, UNLABELED]), teacher, student, temperature=1.0, alpha=0.5)
    soft = np.mean(soft_target_loss(teacher, student, 1.0).numpy())
    ce_first = float(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=[0], logits=student[:1])[0])
    assert float(both) == pytest.approx(0.5 * soft + 0.5 * ce_first, rel=1e-6)
