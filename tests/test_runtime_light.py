"""The runtime stays light and portable: valid Python 3.8, no TensorFlow, no host package, cryptography
only when verifying a signature; and what the host uses of it is its declared, documented public API."""
import ast
import os
import subprocess
import sys

import pytest

from conftest import ROOT

RUNTIME = os.path.join(ROOT, "runtime", "edgekd_runtime")
VERMIN = os.path.join(os.path.dirname(sys.executable), "vermin")
HEAVY = ("tensorflow", "tf_keras", "keras", "edgekd")


def _vermin(path):
    return subprocess.run([VERMIN, "-t=3.8-", "--no-tips", "--violations", path], capture_output=True, text=True, timeout=120)


def test_runtime_is_valid_python_38():
    proc = _vermin(RUNTIME)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_vermin_would_catch_newer_syntax(tmp_path):
    # The check above is only worth something if the tool really flags 3.9+ code.
    bad = tmp_path / "bad.py"
    bad.write_text("def f(a: dict, b: dict):\n    return (a | b, 'x'.removeprefix('y'))\n")
    assert _vermin(str(bad)).returncode != 0


def _module_level_imports(path):
    tree = ast.parse(open(path).read(), path)
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_no_module_level_import_of_heavy_packages():
    for folder, _, files in os.walk(RUNTIME):
        for name in files:
            if name.endswith(".py"):
                for mod in _module_level_imports(os.path.join(folder, name)):
                    assert mod.split(".")[0] not in HEAVY + ("cryptography",), (name, mod)


def test_profile_and_report_import_neither_tensorflow_nor_cryptography(tiny_bundle):
    code = (
        "import sys, edgekd_runtime.cli\n"
        "from edgekd_runtime import profile\n"
        "from edgekd_runtime.report import make_report\n"
        "for fmt in ('tflite-int8', 'onnx', 'tflm-int8'):\n"
        "    make_report(profile(sys.argv[1], runs=3, warmup=1, artifact=fmt))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'tf_keras', 'keras', 'edgekd', 'cryptography'}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, tiny_bundle["path"]], capture_output=True, text=True, timeout=120, cwd=str(os.path.dirname(ROOT)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


# The runtime's public API: what the host (and any device program) may rely on.


def _runtime_imports_of(path):
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "edgekd_runtime":
            yield node.module, [alias.name for alias in node.names]


def test_host_imports_only_public_runtime_names():
    # A runtime module that declares __all__ has declared its public API; the host must keep to it.
    import importlib

    host = os.path.join(ROOT, "edgekd")
    checked = 0
    for folder, _, files in os.walk(host):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            for module, names in _runtime_imports_of(path):
                public = getattr(importlib.import_module(module), "__all__", None)
                if public is None:
                    continue
                for n in names:
                    checked += 1
                    assert n in public, "%s imports %s.%s, which is not in its __all__" % (os.path.relpath(path, ROOT), module, n)
    assert checked >= 5  # the scan really sees the host's imports (Artifact, time_invocations, arena_used...)


def test_public_helpers_are_declared_and_documented():
    import edgekd_runtime
    from edgekd_runtime.backends import tensorrt, tflm

    for module, names in [
        (edgekd_runtime, ["time_invocations", "latency_stats", "profile", "Model"]),
        (tflm, ["arena_used"]),
        (tensorrt, ["build_engine", "calibration_sample", "calibration_batches", "CALIBRATION_SAMPLES"]),
    ]:
        for n in names:
            assert n in module.__all__, (module.__name__, n)
            obj = getattr(module, n)
            assert not callable(obj) or (obj.__doc__ or "").strip(), ("undocumented", module.__name__, n)


class _Allocations(object):
    """Stands in for a tflite-micro interpreter: print_allocations writes to the C-level stderr (fd 2)."""

    def __init__(self, text):
        self.text = text

    def print_allocations(self):
        os.write(2, self.text)


def test_arena_used_reads_and_hides_the_allocation_report(capfd):
    from edgekd_runtime.backends.tflm import arena_used

    assert arena_used(_Allocations(b"[tflm] Arena allocation total 9876 bytes\nArena allocation head 1 bytes\n")) == 9876
    assert arena_used(_Allocations(b"nothing about the arena\n")) is None
    os.write(2, b"still stderr\n")
    assert capfd.readouterr().err == "still stderr\n"  # the report was captured; fd 2 is back


def test_arena_used_on_a_real_interpreter(tiny_bundle):
    from tflite_micro.python.tflite_micro import runtime

    from edgekd_runtime.backends.tflm import arena_used

    with open(os.path.join(tiny_bundle["path"], "model_tflm_int8.tflite"), "rb") as handle:
        it = runtime.Interpreter.from_bytes(handle.read(), arena_size=16384)
    assert 0 < arena_used(it) <= 16384


class _CountingModel(object):
    def __init__(self):
        self.calls = 0
        self.prepared = []

    def prepare(self, x):
        self.prepared.append(x)
        return x

    def prepared_call(self, q):
        def call():
            self.calls += 1

        return call


def test_time_invocations_times_runs_after_warmup():
    from edgekd_runtime import latency_stats, time_invocations

    model = _CountingModel()
    times = time_invocations(model, [1.0], runs=7, warmup=3)
    assert model.calls == 10 and len(model.prepared) == 1  # prepared once, outside the timed loop
    assert len(times) == 7 and all(t >= 0 for t in times)
    stats = latency_stats([0.001, 0.002, 0.003])
    assert stats["runs"] == 3 and abs(stats["p50_ms"] - 2.0) < 1e-9 and abs(stats["mean_ms"] - 2.0) < 1e-9


def test_time_invocations_on_a_bundle(tiny_bundle):
    from edgekd_runtime import Bundle, Model, latency_stats, time_invocations

    with Bundle.open(tiny_bundle["path"]) as bundle:
        model = Model.from_bundle(bundle, artifact="tflite-int8")
        times = time_invocations(model, tiny_bundle["x"][0], runs=5, warmup=1)  # one raw sample, no batch axis
    stats = latency_stats(times)
    assert stats["runs"] == 5 and 0 < stats["p50_ms"] <= stats["p99_ms"]


def test_calibration_sample_is_fixed_and_bounded():
    import numpy as np

    from edgekd_runtime.backends.tensorrt import CALIBRATION_SAMPLES, calibration_batches, calibration_sample

    x = np.arange(3 * (CALIBRATION_SAMPLES + 50), dtype=np.float64).reshape(-1, 3)
    sample = calibration_sample(x)
    assert sample.shape == (CALIBRATION_SAMPLES, 3) and sample.dtype == np.float32 and sample.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(sample, calibration_sample(x))  # the same inputs give the same sample
    assert len({tuple(r) for r in sample.tolist()}) == CALIBRATION_SAMPLES and set(sample[:, 0].tolist()) <= set(x[:, 0].tolist())
    assert sorted(calibration_sample(x[:10])[:, 0].tolist()) == x[:10, 0].tolist()  # fewer: all of them
    batches = calibration_batches(sample, batch_size=1)
    np.testing.assert_array_equal(np.concatenate(batches), sample)  # batching keeps the sample's order


def test_build_engine_without_tensorrt_says_so(tmp_path):
    from importlib.util import find_spec

    from edgekd_runtime.backends.tensorrt import build_engine
    from edgekd_runtime.errors import EngineUnavailableError

    if find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"not parsed: TensorRT is checked first")
    with pytest.raises(EngineUnavailableError, match="TensorRT is not importable"):
        build_engine(str(onnx), "int8", calibration=[[0.0]])
