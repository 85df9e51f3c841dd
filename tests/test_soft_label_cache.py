"""The teacher-output cache never serves one teacher's outputs for another, nor a damaged or half-written entry."""
import threading
import warnings

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from edgekd.teachers import CacheWarning, cache_key, data_fingerprint, load_teacher, soft_label_path, soft_labels
from edgekd.teachers import cache


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path / "cache")


def _models(n):
    """n small tf_keras models of one architecture with different weights, and their logits on x."""
    import tf_keras as keras

    x = np.random.default_rng(0).random((9, 6)).astype(np.float32)
    models = []
    for seed in range(n):
        keras.utils.set_random_seed(seed)
        models.append(keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)]))
    return models, x, [m(x).numpy() for m in models]


def _log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def _entries():
    return sorted(p.name for p in cache.CACHE_DIR.rglob("*") if p.is_file())


def test_closures_with_one_code_are_different_teachers():
    # What a multi-teacher script writes: one factory, one bytecode, a different model closed over each time.
    (m1, m2), x, (z1, z2) = _models(2)

    def make(model):
        return lambda b: model(b).numpy()

    t1, t2 = load_teacher(make(m1)), load_teacher(make(m2))
    fp = data_fingerprint(x)
    got = [soft_labels(t, x, fp) for t in (t1, t2)]
    np.testing.assert_allclose(got[0], z1, atol=1e-2)
    np.testing.assert_allclose(got[1], z2, atol=1e-2)  # not the first teacher's logits
    assert not t1.cacheable and _entries() == []  # a callable is cached only under a fingerprint its caller vouches for

    pinned = load_teacher(make(m2), fingerprint="teacher-2@v1")
    assert pinned.cacheable
    np.testing.assert_allclose(soft_labels(pinned, x, fp), z2, atol=1e-2)
    assert len(_entries()) == 1


def test_in_memory_models_are_keyed_by_architecture_and_weights():
    import tf_keras as keras

    (m,), x, (z,) = _models(1)
    # Same weights, one more layer: the probabilities model must not be served the logits model's entry.
    probs = keras.Sequential([keras.Input((6,)), m.layers[0], keras.layers.Softmax()])
    for a, b in zip(probs.get_weights(), m.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    t_logits, t_probs = load_teacher(m), load_teacher(probs)
    assert t_logits.cacheable and t_probs.cacheable and t_logits.fingerprint != t_probs.fingerprint
    fp = data_fingerprint(x)
    np.testing.assert_allclose(soft_labels(t_logits, x, fp), z, atol=1e-2)
    from_probs = soft_labels(t_probs, x, fp)
    assert t_probs.outputs_probabilities
    np.testing.assert_allclose(from_probs, _log_softmax(z), atol=2e-2)
    assert len(_entries()) == 2

    # A subclassed model's computation is code its config does not hold: recorded, never cached.
    class Scaled(keras.Model):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def call(self, b):
            return 2.0 * self.inner(b)

    sub = load_teacher(Scaled(m))
    np.testing.assert_allclose(soft_labels(sub, x, fp), 2 * z, atol=2e-2)
    assert not sub.cacheable and len(_entries()) == 2


def test_the_key_covers_teacher_data_output_and_format(monkeypatch):
    (m1, m2), x, _ = _models(2)
    t1, t2 = load_teacher(m1), load_teacher(m2)
    key = cache_key(t1, x)
    assert key == cache_key(t1, data_fingerprint(x))  # the array, or the fingerprint a caller already has
    assert key != cache_key(t2, x)
    assert key != cache_key(t1, x * 2.0)  # the preprocessed bytes, not the raw data set
    assert key != cache_key(t1, x, "features", "at-conv")
    assert cache_key(t1, x, "features", "a", "bc") != cache_key(t1, x, "features", "ab", "c")
    monkeypatch.setattr(cache, "CACHE_FORMAT", cache.CACHE_FORMAT + 1)
    assert key != cache_key(t1, x)
    assert cache_key(load_teacher(lambda b: b), x) is None


def _pinned(model, calls=None):
    def fn(b):
        if calls is not None:
            calls.append(len(b))
        return model(b).numpy()

    return load_teacher(fn, fingerprint="pinned-teacher")


def test_a_truncated_entry_is_recomputed_with_a_warning():
    (m,), x, (z,) = _models(1)
    calls = []
    t = _pinned(m, calls)
    fp = data_fingerprint(x)
    first = soft_labels(t, x, fp)
    path = soft_label_path(t, fp)
    assert path.is_file()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    n = len(calls)
    with pytest.warns(CacheWarning, match="recomputing"):
        again = soft_labels(t, x, fp)
    assert len(calls) > n
    np.testing.assert_array_equal(again, first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(soft_labels(t, x, fp), first)  # rewritten whole


def test_a_hit_is_checked_by_checksum_and_shape():
    (m,), x, (z,) = _models(1)
    calls = []
    t = _pinned(m, calls)
    t.probe(x)  # as check_teachers does before training: the teacher's class count is known
    fp = data_fingerprint(x)
    good = soft_labels(t, x, fp)
    key = cache_key(t, fp)

    # Altered values under the original record: the stored checksum no longer matches.
    path = soft_label_path(t, fp)
    with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    arrays["logits"] = arrays["logits"] + np.float16(1.0)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    n = len(calls)
    with pytest.warns(CacheWarning, match="checksum"):
        np.testing.assert_array_equal(soft_labels(t, x, fp), good)
    assert len(calls) > n

    # An intact entry of the right row count but the wrong number of classes is refused too.
    cache.write_entry(key, "soft_labels", {"logits": np.zeros((len(x), 3), np.float16)})
    with pytest.warns(CacheWarning, match="shape"):
        np.testing.assert_array_equal(soft_labels(t, x, fp), good)


def test_parallel_runs_sharing_a_cache_never_read_a_half_written_entry():
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(64)])
    x = np.random.default_rng(1).random((20000, 6)).astype(np.float32)  # 2.5 MB entries: writes take a while
    ref = m(x).numpy()
    n_threads, entries = 4, []
    for attempt in range(3):
        barrier = threading.Barrier(n_threads)

        def fn(b):
            out = m(b).numpy()
            barrier.wait(timeout=60)  # every run finishes labelling at once, then all write the same entry
            return out

        t = load_teacher(fn, fingerprint=f"shared-{attempt}")
        t.batch_size = len(x)
        fp = data_fingerprint(x)
        results, errors = [None] * n_threads, []

        def work(i):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    results[i] = soft_labels(t, x, fp)
                    for _ in range(3):
                        np.testing.assert_array_equal(soft_labels(t, x, fp), results[i])
            except BaseException as exc:  # collected: an exception in a thread would not fail the test
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        for r in results:
            np.testing.assert_allclose(r, ref, atol=2e-2)
        entries.append(soft_label_path(t, fp))
    assert sorted(entries[0].parent.iterdir()) == sorted(entries)  # one entry per teacher, no temporary file left
