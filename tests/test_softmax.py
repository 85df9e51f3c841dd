"""edgekd's one softmax (``edgekd_runtime.drift.softmax``): stable, and the host's multi-teacher mix builds on it."""
import numpy as np

from edgekd_runtime.drift import softmax


def test_softmax_is_a_stable_row_distribution():
    z = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -1000.0]], np.float32)
    p = softmax(z)
    assert p.dtype == np.float64 and np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[1], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(p[0], np.exp(z[0]) / np.exp(z[0]).sum(), rtol=1e-6)
    np.testing.assert_allclose(softmax(z[:1] + 7.0), p[:1])  # a per-row constant changes nothing


def test_multi_teacher_mix_of_one_generalist_is_its_softened_distribution():
    from edgekd.distill.multi_teacher import combine

    z = np.random.default_rng(0).normal(size=(6, 4)) * 3
    for t in (1.0, 4.0):
        np.testing.assert_allclose(combine([z], [1.0], 4, t), softmax(z / t), rtol=1e-6, atol=1e-7)
