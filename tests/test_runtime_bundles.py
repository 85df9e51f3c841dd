"""A small real bundle for runtime tests, made in seconds (the `tiny_bundle` fixture in conftest.py),
and the tests that every engine that runs here answers through the same interface.

The model is a logistic regression on scikit-learn's digits (about 96% accurate): written as a TFLite
fp32 and full-int8 model by the TFLite converter, as an ONNX graph with onnx.helper, and the int8 model
again for TFLite Micro, all in one bundle with an eval set and a drift reference. Its float outputs are
known exactly (x @ W + b), so every engine can be checked against numpy.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, run_cli

N_TRAIN = 1400


def digits_raw():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32)[..., None], d.target.astype(np.int64)


def _tflite_models(w, b, calib):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 1], tf.float32)])
    def logits(x):
        return tf.matmul(tf.reshape(x, [1, 64]), tf.constant(w)) + tf.constant(b)

    cf = logits.get_concrete_function()
    fp32 = tf.lite.TFLiteConverter.from_concrete_functions([cf], logits).convert()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([cf], logits)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([calib[i : i + 1]] for i in range(200))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return fp32, conv.convert()


def _onnx_model(w, b):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["input", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 8, 8, 1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 10])],
        [numpy_helper.from_array(np.array([-1, 64], np.int64), "shape"), numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _io_spec(blob):
    from ai_edge_litert.interpreter import Interpreter

    from edgekd_runtime import TensorSpec

    it = Interpreter(model_content=blob)
    specs = []
    for d in (it.get_input_details()[0], it.get_output_details()[0]):
        scale, zero = d["quantization"]
        dtype = np.dtype(d["dtype"]).name
        specs.append(TensorSpec([int(v) for v in d["shape"]], dtype, float(scale) if dtype == "int8" else None, int(zero) if dtype == "int8" else None))
    return specs


def build_tiny_bundle(root):
    """Write the bundle under ``root``; returns a dict with its path and the numpy reference."""
    from sklearn.linear_model import LogisticRegression

    from edgekd_runtime import Artifact, Manifest, Preprocessing, TensorSpec, write_bundle
    from edgekd_runtime.drift import DRIFT_NAME, reference_json

    x, y = digits_raw()
    pre = Preprocessing(scale=1.0 / 16.0, offset=0.0)
    xt, yt, xe, ye = x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]
    clf = LogisticRegression(max_iter=300).fit(pre.apply(xt).reshape(len(xt), -1), yt)
    w, b = clf.coef_.T.astype(np.float32), clf.intercept_.astype(np.float32)
    host_logits = pre.apply(xe).reshape(len(xe), -1) @ w + b
    host_acc = float(np.mean(host_logits.argmax(1) == ye))
    fp32, int8 = _tflite_models(w, b, pre.apply(xt))
    onnx_blob = _onnx_model(w, b)
    q_in, q_out = _io_spec(int8)
    f_in, f_out = _io_spec(fp32)
    metrics = {"accuracy": host_acc, "agreement_with_keras": 1.0}
    # The fixture stands for a bundle whose artifacts the host checked: say so, as the host's parity check does.
    ok = "passed"
    arts = [
        Artifact("model_int8.tflite", "tflite-int8", "litert", q_in, q_out, len(int8), host_metrics=dict(metrics), verification=ok),
        Artifact("model_fp32.tflite", "tflite-fp32", "litert", f_in, f_out, len(fp32), host_metrics=dict(metrics), verification=ok),
        Artifact("model.onnx", "onnx", "onnxruntime", TensorSpec([-1, 8, 8, 1], "float32"), TensorSpec([-1, 10], "float32"), len(onnx_blob), host_metrics=dict(metrics), verification=ok),
        Artifact("model_tflm_int8.tflite", "tflm-int8", "tflm", q_in, q_out, len(int8), settings={"arena_size": 16384}, host_metrics=dict(metrics), verification=ok),
    ]
    manifest = Manifest(
        name="tiny", labels=[str(i) for i in range(10)], input=TensorSpec([1, 8, 8, 1], "float32"), preprocessing=pre,
        artifacts=arts, files={},
        profile={"name": "android-midrange", "device_class": "phone", "engine": "litert", "fit": {"usage": {"latency_ms": {"used": 0.05, "limit": 30.0}}}},
        created="2026-11-28T00:00:00+00:00", producer="tests",
    )
    staging = os.path.join(root, "staging")
    os.makedirs(staging)
    eval_path = os.path.join(staging, "eval.npz")
    np.savez_compressed(eval_path, x=xe, y=ye, host_outputs=host_logits.astype(np.float32))
    files = {"model_int8.tflite": int8, "model_fp32.tflite": fp32, "model.onnx": onnx_blob, "model_tflm_int8.tflite": int8, "eval.npz": eval_path, DRIFT_NAME: reference_json(xe, host_logits)}
    path = write_bundle(os.path.join(root, "tiny"), manifest, files)
    shutil.rmtree(staging)
    return {"path": path, "w": w, "b": b, "x": xe, "y": ye, "host_accuracy": host_acc}


def copy_bundle(tiny, tmp_path, name="copy"):
    dest = tmp_path / name
    shutil.copytree(tiny["path"], dest)
    return dest


def rewrite_manifest(bundle_dir, edit):
    """Apply ``edit`` to the manifest dict and write it back (to make a bundle that is consistent but wrong)."""
    path = bundle_dir / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


ENGINES = [("tflite-int8", "litert"), ("tflite-fp32", "litert"), ("onnx", "onnxruntime"), ("tflm-int8", "tflm")]


@pytest.mark.parametrize("fmt,engine", ENGINES)
def test_every_engine_answers_through_the_same_interface(tiny_bundle, fmt, engine):
    from edgekd_runtime import Bundle, Model, profile

    with Bundle.open(tiny_bundle["path"]) as bundle:
        model = Model.from_bundle(bundle, artifact=fmt)
        assert model.engine == engine
        x = tiny_bundle["x"][:64]
        scores = model.predict(x)
        expected = (x.reshape(len(x), -1) / 16.0) @ tiny_bundle["w"] + tiny_bundle["b"]
        assert scores.shape == (64, 10)
        agree = np.mean(scores.argmax(1) == expected.argmax(1))
        if fmt in ("tflite-fp32", "onnx"):
            np.testing.assert_allclose(scores, expected, atol=1e-4)
        else:
            assert agree >= 0.95
        report = profile(bundle, runs=20, warmup=2, artifact=fmt)
    assert report["runtime"]["engine"] == engine and report["format"] == fmt
    lat = report["latency"]
    assert 0 < lat["p50_ms"] <= lat["p99_ms"] and lat["throughput_per_s"] > 0 and lat["runs"] == 20
    assert report["load_seconds"]["first"] > 0 and report["load_seconds"]["warm"] > 0
    assert report["peak_memory_mb"] > 10
    assert report["accuracy"] >= tiny_bundle["host_accuracy"] - 0.02
    assert set(report["per_class_accuracy"]) == {str(i) for i in range(10)}
    assert report["agreement_with_host"] >= 0.95
    assert report["drift_eval"]["status"] == "stable" and report["drift_eval"]["input_psi_mean"] < 1e-6
    assert report["host_expected"] == {"profile": "android-midrange", "accuracy": tiny_bundle["host_accuracy"], "agreement_with_keras": 1.0, "latency_ms_estimate": 0.05}


def test_engines_report_what_ran(tiny_bundle):
    from edgekd_runtime import Bundle, Model

    with Bundle.open(tiny_bundle["path"]) as bundle:
        tflm = Model.from_bundle(bundle, engine="tflm").describe()
        # The arena this model really needs: more than nothing, less than the 16 KiB it was given.
        assert 0 < tflm["arena_used"] <= tflm["arena_size"] == 16384
        lite = Model.from_bundle(bundle, threads=2, delegate="none")
        assert lite.describe()["delegate"] == "none" and lite.describe()["threads"] == 2
        xnn = Model.from_bundle(bundle)
        assert xnn.describe()["delegate"] == "xnnpack"
        np.testing.assert_array_equal(lite.predict(tiny_bundle["x"][:32]).argmax(1), xnn.predict(tiny_bundle["x"][:32]).argmax(1))
        ort = Model.from_bundle(bundle, engine="onnxruntime", providers="CUDAExecutionProvider,CPUExecutionProvider").describe()
    # No GPU here: the silent fallback to CPU must be said out loud.
    assert ort["provider"] == "CPUExecutionProvider"
    assert ort["fallback"] == "requested CUDAExecutionProvider, running on CPUExecutionProvider"


def test_engine_comes_from_the_profile_unless_a_flag_says_otherwise(tiny_bundle):
    from edgekd_runtime import Artifact, Bundle
    from edgekd_runtime.model import select_artifact

    with Bundle.open(tiny_bundle["path"]) as bundle:
        m = bundle.manifest
    art, engine, note = select_artifact(m)
    assert (art.format, engine, note) == ("tflite-int8", "litert", None)
    assert select_artifact(m, engine="tflm")[:2] == (m.artifact("tflm-int8"), "tflm")
    assert select_artifact(m, engine="onnxruntime")[0].format == "onnx"
    assert select_artifact(m, artifact="tflite-fp32")[1] == "litert"
    # A Jetson bundle profiled on a machine without TensorRT: the ONNX artifact runs, and the report says why.
    m.profile["engine"] = "tensorrt"
    m.artifacts.insert(0, m.artifacts.pop(2))
    m.artifacts.append(Artifact("model.onnx", "tensorrt", "tensorrt", m.artifacts[0].input, m.artifacts[0].output, verification="not verified here"))
    art, engine, note = select_artifact(m)
    assert (art.format, engine) == ("onnx", "onnxruntime")
    assert "tensorrt is not installed here" in note


@pytest.mark.parametrize("engine", ["tensorrt", "coreml"])
def test_engine_not_installed_exits_4(tiny_bundle, engine):
    proc = run_cli("edgekd-runtime", "profile", tiny_bundle["path"], "--engine", engine, "--runs", "2")
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.startswith("edgekd-runtime: error: ") and len(proc.stderr.strip().splitlines()) == 1


def test_python_dash_m_from_a_copied_runtime_folder(tiny_bundle, tmp_path):
    """As on a device with a copied checkout: only the runtime folder on the path, exit codes kept."""
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "runtime")}
    ok = subprocess.run([sys.executable, "-m", "edgekd_runtime", "info", tiny_bundle["path"]], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run([sys.executable, "-m", "edgekd_runtime", "info", str(tmp_path / "nope")], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert missing.returncode != 0 and "bundle not found" in missing.stderr


def test_profile_cli_prints_engine_threads_and_writes_a_versioned_report(tiny_bundle, tmp_path):
    out = tmp_path / "r.json"
    proc = run_cli("edgekd-runtime", "profile", tiny_bundle["path"], "--runs", "20", "--threads", "2", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "on litert, delegate xnnpack, threads 2" in proc.stdout and "throughput" in proc.stdout
    report = json.loads(out.read_text())
    assert report["schema"] == "edgekd.report" and report["schema_version"] == 1 and report["kind"] == "profile"
    assert len(report["report_id"]) == 32 and report["runtime"]["threads"] == 2


# Issue 13: only what the host verified runs unless asked for, and a model folder is checked file by file.

def test_selection_runs_only_verified_artifacts_and_says_why(tiny_bundle):
    from edgekd_runtime import Bundle
    from edgekd_runtime.errors import IntegrityError
    from edgekd_runtime.model import select_artifact

    with Bundle.open(tiny_bundle["path"]) as bundle:
        m = bundle.manifest
    for art in m.artifacts:
        if art.engine == "litert":
            art.verification = "not verified here"
    art, engine, note = select_artifact(m)
    assert (art.format, engine) == ("onnx", "onnxruntime")
    assert "litert has only an unverified artifact" in note and "ran the onnx artifact on onnxruntime instead" in note
    assert select_artifact(m, allow_unverified=True)[0].format == "tflite-int8"
    for art in m.artifacts:
        art.verification = "unverified"
    with pytest.raises(IntegrityError, match="no artifact of this bundle passed"):
        select_artifact(m)


def test_model_folder_is_checked_file_by_file(tiny_bundle, tmp_path):
    """A CoreML .mlpackage is a folder: each of its files is listed and hashed, and a file slipped into it that
    the manifest does not list is refused."""
    from edgekd_runtime import Bundle
    from edgekd_runtime.errors import IntegrityError
    from edgekd_runtime.manifest import sha256_file

    b = copy_bundle(tiny_bundle, tmp_path)
    pkg = b / "model.mlpackage"
    (pkg / "Data").mkdir(parents=True)
    (pkg / "Manifest.json").write_text("{}")
    (pkg / "Data" / "weights.bin").write_bytes(b"\0" * 64)

    def add(m):
        for name in ("model.mlpackage/Manifest.json", "model.mlpackage/Data/weights.bin"):
            m["files"][name] = sha256_file(str(b / name))
        m["artifacts"].append(dict(m["artifacts"][2], path="model.mlpackage", format="coreml", engine="coreml", verification="not verified here"))

    rewrite_manifest(b, add)
    (pkg / "Data" / "extra.bin").write_bytes(b"unlisted")
    with pytest.raises(IntegrityError, match="model.mlpackage/Data/extra.bin is not listed"):
        Bundle.open(str(b))
    os.remove(pkg / "Data" / "extra.bin")
    with Bundle.open(str(b)) as bundle:
        assert bundle.artifact_files(bundle.manifest.artifact("coreml")) == ["model.mlpackage/Data/weights.bin", "model.mlpackage/Manifest.json"]


def test_an_artifact_written_without_a_verification_is_unverified():
    """Only the host's parity check writes "passed": a writer that forgets it ships an artifact the runtime refuses."""
    from edgekd_runtime import Artifact, TensorSpec
    from edgekd_runtime.manifest import UNVERIFIED

    art = Artifact("m.tflite", "tflite-fp32", "litert", TensorSpec([1, 4], "float32"), TensorSpec([1, 2], "float32"))
    assert art.verification == UNVERIFIED == "unverified"
