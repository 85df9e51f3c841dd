"""Every teacher format gives the same logits; fingerprints, softmax detection, the cache, and refusals."""
import hashlib

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from edgekd.errors import TeacherError
from edgekd.teachers import check_teachers, load_teacher, soft_labels


@pytest.fixture(scope="module")
def tiny():
    """A small untrained tf_keras CNN (random weights are enough to compare formats) and inputs for it."""
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Flatten(), keras.layers.Dense(5)])
    x = np.random.default_rng(0).random((7, 8, 8, 1)).astype(np.float32)
    return model, x, model(x).numpy()


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tf_keras_files_and_fingerprint(tiny, tmp_path):
    model, x, ref = tiny
    for name in ("t.keras", "t.h5"):
        model.save(tmp_path / name)
        t = load_teacher(tmp_path / name)
        assert t.kind == "tf_keras" and t.input_shape == (8, 8, 1)
        assert t.fingerprint == _sha256(tmp_path / name)  # what sha256sum prints
        np.testing.assert_allclose(t.logits(x), ref, rtol=1e-5, atol=1e-5)


def test_keras3_file(tiny, tmp_path):
    import keras as keras3

    _, x, _ = tiny
    m3 = keras3.Sequential([keras3.Input((8, 8, 1)), keras3.layers.Flatten(), keras3.layers.Dense(5)])
    m3.save(tmp_path / "k3.keras")
    t = load_teacher(tmp_path / "k3.keras")
    assert t.kind == "keras3"
    np.testing.assert_allclose(t.logits(x), np.asarray(m3(x)), rtol=1e-5, atol=1e-5)


def test_savedmodel_folders(tiny, tmp_path):
    model, x, ref = tiny
    model.save(tmp_path / "keras_sm", save_format="tf")
    t = load_teacher(tmp_path / "keras_sm")
    assert t.kind == "savedmodel" and t.keras_model is not None  # layers reachable for feature methods
    np.testing.assert_allclose(t.logits(x), ref, rtol=1e-5, atol=1e-5)

    # A plain SavedModel (no Keras metadata) works through its serving signature.
    module = tf.Module()
    module.model = model
    module.f = tf.function(lambda images: {"scores": model(images)}, input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "raw_sm"), signatures={"serving_default": module.f})
    t = load_teacher(tmp_path / "raw_sm")
    assert t.kind == "savedmodel" and t.input_shape == (8, 8, 1)
    np.testing.assert_allclose(t.logits(x), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(t.tf_logits(tf.constant(x)).numpy(), ref, rtol=1e-5, atol=1e-5)


def test_onnx_file(tiny, tmp_path):
    import tf2onnx

    model, x, ref = tiny
    path = tmp_path / "t.onnx"
    tf2onnx.convert.from_keras(model, input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32, name="input")], opset=17, output_path=str(path))
    t = load_teacher(path)
    assert t.kind == "onnx" and t.fingerprint == _sha256(path)
    np.testing.assert_allclose(t.logits(x), ref, rtol=1e-4, atol=1e-4)


def test_tflite_file_float_and_int8(tiny, tmp_path):
    model, x, ref = tiny
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    (tmp_path / "t.tflite").write_bytes(conv.convert())
    t = load_teacher(tmp_path / "t.tflite")
    assert t.kind == "tflite" and t.input_shape == (8, 8, 1)
    np.testing.assert_allclose(t.logits(x), ref, rtol=1e-4, atol=1e-4)

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[i : i + 1]] for i in range(len(x)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    (tmp_path / "q.tflite").write_bytes(conv.convert())
    q = load_teacher(tmp_path / "q.tflite").logits(x)  # quantised in, dequantised out
    assert np.mean(q.argmax(1) == ref.argmax(1)) >= 0.8
    assert np.max(np.abs(q - ref)) < 0.1 * (np.max(np.abs(ref)) + 1e-6) + 0.05


def _int8_tflite(model, x, path):
    """A full-integer (int8 in, int8 out) TFLite file of ``model``, calibrated on ``x``."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[i : i + 1]] for i in range(len(x)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    path.write_bytes(conv.convert())


def test_int8_tflite_teacher_ending_in_softmax_is_detected(tiny, tmp_path):
    """Fully int8 TFLite teachers quantize their softmax to steps of 1/256: a row of 5 such probabilities misses 1 by
    more than a float softmax would, and must still read as probabilities, not as logits."""
    import tf_keras as keras

    model, x, ref = tiny
    x = np.random.default_rng(1).random((64, 8, 8, 1)).astype(np.float32)
    ref = model(x).numpy()
    probs_model = keras.Model(model.inputs, keras.layers.Softmax()(model.outputs[0]))
    _int8_tflite(probs_model, x, tmp_path / "q_softmax.tflite")

    t = load_teacher(tmp_path / "q_softmax.tflite")
    assert t.output_step == pytest.approx(1 / 256)
    raw = t.scores(x)
    assert np.max(np.abs(raw.sum(1) - 1)) > 1e-3  # what the float tolerance alone took for logits
    z = t.logits(x)
    assert t.outputs_probabilities is True
    # Its log-probabilities soften like the float teacher's logits, up to the int8 rounding.
    for T in (1.0, 4.0):
        np.testing.assert_allclose(tf.nn.softmax(z / T).numpy(), tf.nn.softmax(ref / T).numpy(), atol=0.03)

    # The int8 logits model (no softmax) stays logits, whatever its output step.
    _int8_tflite(model, x, tmp_path / "q.tflite")
    q = load_teacher(tmp_path / "q.tflite")
    q.logits(x)
    assert q.output_step > 0 and q.outputs_probabilities is False


def test_int8_onnx_teacher_ending_in_softmax_is_detected(tiny, tmp_path):
    """A QDQ ONNX teacher whose softmax is quantized to steps of 1/256 (the output DequantizeLinear's scale)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    _, _, ref = tiny
    scale = np.array(1 / 256, np.float32)
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["z"], ["p"], axis=1), helper.make_node("QuantizeLinear", ["p", "s", "zp"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["probs"])],
        "qdq_softmax", [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 5])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, 5])],
        [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(np.array(0, np.uint8), "zp")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), tmp_path / "q.onnx")
    t = load_teacher(tmp_path / "q.onnx")
    assert t.output_step == pytest.approx(1 / 256)
    assert np.max(np.abs(t.scores(ref).sum(1) - 1)) > 1e-3
    z = t.logits(ref)
    assert t.outputs_probabilities is True
    np.testing.assert_allclose(tf.nn.softmax(z).numpy(), tf.nn.softmax(ref).numpy(), atol=0.02)


def test_callable_and_softmax_detection(tiny):
    model, x, ref = tiny
    probs = tf.nn.softmax(ref).numpy()
    t = load_teacher(lambda b: tf.nn.softmax(model(b)).numpy())
    assert t.kind == "callable" and len(t.fingerprint) == 64
    z = t.logits(x)
    assert t.outputs_probabilities is True
    # Log-probabilities differ from the logits by a per-sample constant: softened targets are identical.
    for T in (1.0, 4.0):
        np.testing.assert_allclose(tf.nn.softmax(z / T).numpy(), tf.nn.softmax(ref / T).numpy(), rtol=1e-4, atol=1e-6)
    assert load_teacher(lambda b: model(b).numpy()).logits(x) is not None
    np.testing.assert_allclose(np.exp(z), probs, rtol=1e-4, atol=1e-6)


def test_looks_like_probabilities():
    """The one softmax detector, shared by teachers and ``edgekd compare``: non-negative rows summing to 1 (within 1e-3,
    widened by the classes' quantization steps for a quantized output)."""
    from edgekd.teachers import looks_like_probabilities

    assert looks_like_probabilities(np.array([[0.2, 0.8], [1.0, 0.0]]))
    assert looks_like_probabilities(np.array([[0.5, 0.5005]]))
    assert not looks_like_probabilities(np.array([[0.5, 0.502]]))  # off by more than the tolerance
    assert not looks_like_probabilities(np.array([[1.2, -0.2]]))  # sums to 1 but is not a distribution
    assert not looks_like_probabilities(np.array([[2.0, 1.0], [0.3, 0.7]]))  # every row must sum to 1
    # int8 probabilities: each of the C values rounded to a step of 1/256, so a row may miss 1 by up to C steps.
    q = np.array([[26, 51, 77, 103]]) / 256  # 257/256: one step over
    assert not looks_like_probabilities(q) and looks_like_probabilities(q, step=1 / 256)
    assert not looks_like_probabilities(np.array([[0.45, 0.45]]), step=1 / 256)  # 0.1 short: more than 2 steps
    assert not looks_like_probabilities(np.array([[1.0]]))  # one output: a softmax would make it constant, not logits


def test_soft_label_cache_runs_the_teacher_once(tiny, tmp_path, monkeypatch):
    import edgekd.teachers as teachers
    from edgekd.teachers import cache

    model, x, ref = tiny
    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path / "cache")
    calls = []
    t = load_teacher(lambda b: calls.append(len(b)) or model(b).numpy(), fingerprint="f" * 64)
    first = soft_labels(t, x, "d" * 64)
    n_calls = len(calls)
    second = soft_labels(t, x, "d" * 64)
    assert len(calls) == n_calls  # served from disk
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, ref, atol=2e-2)  # float16 storage
    assert list((tmp_path / "cache" / "soft_labels").iterdir()) == [cache.soft_label_path(t, "d" * 64)]
    assert not hasattr(teachers, "CACHE_DIR")  # so a test that moves the package's cache fails loudly


def test_refusals_before_training(tiny, tmp_path):
    import tf_keras as keras

    model, x, _ = tiny
    with pytest.raises(TeacherError, match="outputs 5 scores but the data's 10 classes"):
        check_teachers([load_teacher(model)], x, 10)
    other = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(5)])
    with pytest.raises(TeacherError, match="disagree on input shape"):
        check_teachers([load_teacher(model), load_teacher(other)], x, 5)
    with pytest.raises(TeacherError, match="empty"):
        check_teachers([load_teacher(model)], x[:0], 5)
    with pytest.raises(TeacherError, match="not found"):
        load_teacher(tmp_path / "missing.keras")
    (tmp_path / "bad.tflite").write_bytes(b"not a model")
    with pytest.raises(TeacherError, match="LiteRT cannot load"):
        load_teacher(tmp_path / "bad.tflite")
    with pytest.raises(TeacherError, match="unsupported teacher file"):
        (tmp_path / "t.pt").write_bytes(b"x")
        load_teacher(tmp_path / "t.pt")
