"""Each distillation loss against a plain numpy computation of the paper's formula."""
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from edgekd.errors import EdgekdError


def _softmax(z, t=1.0):
    e = np.exp(z / t - np.max(z / t, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_attention_map_and_loss_match_numpy():
    from edgekd.distill.attention import DEFAULT_BETA, AttentionTerm, attention_loss, attention_map

    rng = np.random.default_rng(0)
    fs, ft = rng.normal(size=(3, 4, 4, 5)).astype(np.float32), rng.normal(size=(3, 4, 4, 7)).astype(np.float32)

    def at(f):
        a = (f ** 2).mean(-1).reshape(len(f), -1)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    np.testing.assert_allclose(attention_map(fs).numpy(), at(fs), rtol=1e-5)
    expected = np.mean((at(fs) - at(ft)) ** 2)
    assert float(attention_loss(attention_map(fs), attention_map(ft))) == pytest.approx(expected, rel=1e-5)
    term = AttentionTerm(0, "t0")
    got = term.loss({"t0": attention_map(ft)}, [tf.constant(fs)], None)
    assert float(got) == pytest.approx(DEFAULT_BETA / 2 * expected, rel=1e-5)


def test_hint_loss_is_mse_of_standardized_features_through_the_regressor():
    from edgekd.distill.fitnet import HintTerm, hint_loss

    rng = np.random.default_rng(1)
    s, t = rng.normal(size=(2, 3, 3, 4)).astype(np.float32), rng.normal(size=(2, 3, 3, 6)).astype(np.float32)
    assert float(hint_loss(t, t * 0.5)) == pytest.approx(np.mean((0.5 * t) ** 2), rel=1e-5)

    def standardized(a):
        return (a - a.mean(axis=(0, 1, 2))) / np.sqrt(a.var(axis=(0, 1, 2)) + 1e-3)

    term = HintTerm(0, "t0", teacher_channels=6, beta=2.0)
    loss = term.loss({"t0": tf.constant(t)}, [tf.constant(s)], None)
    kernel = term.adapter.get_weights()[0].reshape(4, 6)  # a 1x1 convolution is a matrix over channels
    assert float(loss) == pytest.approx(2.0 * np.mean((standardized(s @ kernel) - standardized(t)) ** 2), rel=1e-4)
    # The teacher's activation scale does not change the term (a raw MSE grew 10,000-fold here).
    assert float(term.loss({"t0": tf.constant(100 * t + 3)}, [tf.constant(s)], None)) == pytest.approx(float(loss), rel=1e-3)


def test_nce_loss_matches_the_crd_formula():
    from edgekd.distill.crd import nce_loss

    rng = np.random.default_rng(2)
    scores = rng.uniform(0.01, 2.0, size=(4, 1 + 8)).astype(np.float32)
    n = 100
    noise = 8 / n
    expected = -(np.log(scores[:, 0] / (scores[:, 0] + noise)).sum() + np.log(noise / (scores[:, 1:] + noise)).sum()) / 4
    assert float(nce_loss(scores, n)) == pytest.approx(expected, rel=1e-4)


def test_crd_scores_and_bank_update():
    from edgekd.distill.crd import CRDTerm, contrast_scores

    rng = np.random.default_rng(3)
    bank = rng.normal(size=(10, 4)).astype(np.float32)
    v = rng.normal(size=(2, 4)).astype(np.float32)
    idx = np.array([[1, 5, 7], [2, 0, 9]], np.int32)
    raw = np.exp(np.einsum("bkd,bd->bk", bank[idx], v) / 0.5)
    np.testing.assert_allclose(contrast_scores(tf.constant(v), tf.constant(bank), idx, 0.5, 10).numpy(), raw / (raw.mean() * 10), rtol=1e-4)

    term = CRDTerm(0, "embed", num_data=10, dim=4, negatives=3)
    before = term.student_bank.numpy().copy()
    loss = term.loss({"embed": tf.constant(rng.normal(size=(2, 5)).astype(np.float32)), "index": tf.constant([3, 6])},
                     [tf.constant(rng.normal(size=(2, 6)).astype(np.float32))], None)
    after = term.student_bank.numpy()
    assert np.isfinite(float(loss)) and float(loss) > 0
    changed = np.flatnonzero(np.any(before != after, axis=1))
    assert list(changed) == [3, 6]  # only the batch's own slots move
    np.testing.assert_allclose(np.linalg.norm(after[[3, 6]], axis=1), 1.0, rtol=1e-5)


def test_probability_targets_loss_matches_numpy():
    from edgekd.distill.losses import kd_loss, kd_loss_probs, soft_probs_loss

    q = np.array([[0.7, 0.2, 0.1]], np.float32)
    z = np.array([[0.3, -0.2, 1.0]], np.float32)
    T = 3.0
    p = _softmax(z, T)
    expected = T * T * np.sum(q * (np.log(q) - np.log(p)))
    assert float(soft_probs_loss(q, tf.constant(z), T)[0]) == pytest.approx(expected, rel=1e-5)
    # Probability targets made from one teacher's logits give exactly the logits form of the loss.
    zt = np.array([[2.0, 0.5, -1.0]], np.float32)
    a = kd_loss_probs(tf.constant([1]), _softmax(zt, T).astype(np.float32), tf.constant(z), T, 0.6)
    b = kd_loss(tf.constant([1]), tf.constant(zt), tf.constant(z), T, 0.6)
    assert float(a) == pytest.approx(float(b), rel=1e-5)


def test_multi_teacher_mixture_with_specialists():
    from edgekd.distill.multi_teacher import accuracy_weights, combine

    z1 = np.array([[2.0, 0.0, 1.0, -1.0]])
    z2 = np.array([[0.0, 1.0, 3.0, 0.5]])
    T = 2.0
    mixed = combine([z1, z2], [0.25, 0.75], 4, T)
    np.testing.assert_allclose(mixed, 0.25 * _softmax(z1, T) + 0.75 * _softmax(z2, T), rtol=1e-6)
    # A specialist on classes 2 and 3 next to a generalist: classes 0,1 come from the generalist alone,
    # classes 2,3 are the weighted mean of both, then everything is renormalised.
    spec = np.array([[0.0, 1.0]])
    got = combine([z1, spec], [0.5, 0.5], 4, 1.0, classes=[None, [2, 3]])
    g, s = _softmax(z1)[0], _softmax(spec)[0]
    raw = np.array([g[0], g[1], (g[2] + s[0]) / 2, (g[3] + s[1]) / 2])
    np.testing.assert_allclose(got[0], raw / raw.sum(), rtol=1e-6)
    with pytest.raises(EdgekdError, match="no teacher covers classes"):
        combine([spec], [1.0], 4, 1.0, classes=[[2, 3]])

    labels = np.array([0, 1, 2, 3])
    good = np.eye(4)[[0, 1, 2, 3]]
    half = np.eye(4)[[0, 1, 0, 0]]
    np.testing.assert_allclose(accuracy_weights([good, half], labels), [1 / 1.5, 0.5 / 1.5])


def test_assistant_sizes_are_geometric_and_only_when_the_gap_is_large():
    from edgekd.distill.progressive import assistant_params

    assert assistant_params(50_000, 10_000, max_gap=10) == []
    sizes = assistant_params(1_000_000, 1_000, max_gap=10)  # 1000x: three steps of 10x
    assert sizes == [100_000, 10_000]


def test_precision_refusals_name_the_missing_hardware():
    from edgekd.distill.precision import cpu_supports_bf16, resolve

    if not tf.config.list_physical_devices("GPU"):
        with pytest.raises(EdgekdError, match="mixed_float16 needs a GPU"):
            resolve("mixed_float16")
        if not cpu_supports_bf16():
            with pytest.raises(EdgekdError, match="bf16 instructions"):
                resolve("mixed_bfloat16")
        else:
            assert resolve("mixed_bfloat16") == "mixed_bfloat16"
    assert resolve("float32") is None
    with pytest.raises(EdgekdError, match="unknown precision"):
        resolve("int4")


def test_cli_argument_parsers():
    from edgekd.distill.options import parse_classes, parse_floats, parse_pairs

    assert parse_pairs("a:b,c:d") == [("a", "b"), ("c", "d")]
    assert parse_classes(["0-2", "all", "4,6"], 3) == [[0, 1, 2], None, [4, 6]]
    assert parse_floats("0.6,0.4", "--w") == [0.6, 0.4]
    for bad in (lambda: parse_pairs("a"), lambda: parse_classes(["x"], 1), lambda: parse_floats("a,b", "--w"), lambda: parse_classes(["all"], 2)):
        with pytest.raises(EdgekdError):
            bad()


def test_every_method_is_one_module_with_one_entry_point():
    from edgekd.distill.methods import METHODS, entry

    assert METHODS == ("kd", "fitnet", "at", "crd", "multi", "progressive", "self")
    for method in METHODS:
        run = entry(method)
        assert run.__name__ == "run" and run.__module__.startswith("edgekd.distill.methods.")


def test_one_sparsity_count_over_the_kernels_pruning_touches():
    """Conv2D and Dense kernels count; the depthwise kernel (never pruned) and biases do not; the one pruning
    wrapper wraps exactly the layers the count reads, weights carried over."""
    import tf_keras as keras

    from edgekd.distill.pruning import kernel_sparsity, prune_model, prunable, strip

    model = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(4, 3, name="conv"), keras.layers.DepthwiseConv2D(3, name="dw"),
                              keras.layers.Flatten(), keras.layers.Dense(3, name="fc")])
    conv, dw, fc = (model.get_layer(n) for n in ("conv", "dw", "fc"))
    kernel = np.ones((3, 3, 2, 4), np.float32)
    kernel[..., :2] = 0.0  # half of the conv kernel: 36 of 72 weights
    conv.set_weights([kernel, np.zeros(4, np.float32)])
    dw.set_weights([np.zeros_like(w) for w in dw.get_weights()])
    fc.set_weights([np.ones((16, 3), np.float32), np.zeros(3, np.float32)])
    assert [prunable(l) for l in model.layers] == [True, False, False, True]
    assert kernel_sparsity(model) == pytest.approx(36 / (72 + 48))

    wrapped = prune_model(model, 0.5, total_steps=10)
    assert {l.name for l in wrapped.layers if l.name.startswith("prune_low_magnitude_")} == {"prune_low_magnitude_conv", "prune_low_magnitude_fc"}
    for a, b in zip(strip(wrapped).get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(EdgekdError, match="target sparsity"):
        prune_model(model, 1.0, total_steps=10)


def test_feature_targets_come_back_from_the_teachers_cache(tmp_path, monkeypatch):
    """fitnet/at/crd targets are kept by the one teacher cache: the second call reads them, bit for bit, without
    running the teacher."""
    import tf_keras as keras

    import edgekd.teachers.cache as cache
    from edgekd.distill.features import teacher_targets
    from edgekd.teachers import data_fingerprint, load_teacher

    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(3, 3, padding="same", name="conv"), keras.layers.Flatten(), keras.layers.Dense(2)])
    teacher = load_teacher(model)
    x = np.random.default_rng(0).random((10, 4, 4, 1), dtype=np.float32)
    outputs = {"t0": (model.get_layer("conv").output, None)}
    first, online_fn, mode, seconds = teacher_targets(teacher, outputs, x, data_fingerprint(x), "at-conv", online=False, cache=True)
    assert online_fn is None and mode == "cached" and seconds > 0 and first["t0"].shape == (10, 4, 4, 3)
    again, _, _, seconds = teacher_targets(teacher, outputs, x, data_fingerprint(x), "at-conv", online=False, cache=True)
    assert seconds == 0.0
    np.testing.assert_array_equal(again["t0"], first["t0"])
    assert len(list((tmp_path / "features").glob("*-at-conv.npz"))) == 1
