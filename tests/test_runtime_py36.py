"""The runtime on Python 3.6, the Jetson Nano's last Python (JetPack 4.6): vermin finds nothing newer than 3.6 in
the runtime and the device demos, and the runtime's commands give the host's answers when run by a real
CPython 3.6.15 with numpy 1.19.5 and onnxruntime 1.10.0, the last releases of both for 3.6.

The 3.6 venv (.venv36) is made by `make py36`, which `make test` runs first: creating it needs the package
index once (about a minute), after that it is cached and remade (seconds) only when the runtime changes.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

VERMIN = os.path.join(os.path.dirname(sys.executable), "vermin")
RUNTIME = os.path.join(ROOT, "runtime", "edgekd_runtime")
DEMOS = os.path.join(ROOT, "demos")
VENV36 = os.path.join(ROOT, ".venv36")
PY36 = os.path.join(VENV36, "bin", "python")
HOST_CLI = os.path.join(os.path.dirname(sys.executable), "edgekd-runtime")
CLI36 = os.path.join(VENV36, "bin", "edgekd-runtime")
# onnxruntime 1.10 reads ONNX opsets up to 15; edgekd convert --opset 13 is what the README tells JetPack 4.6 users.
OPSET_36 = 13


def _vermin(*paths):
    return subprocess.run([VERMIN, "-t=3.6-", "--no-tips", "--violations"] + list(paths), capture_output=True, text=True, timeout=120)


def test_runtime_and_device_demos_are_valid_python_36():
    proc = _vermin(RUNTIME, DEMOS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_vermin_flags_what_python_36_lacks(tmp_path):
    # What this runtime had before issue 16: each line alone needs 3.7 or newer.
    for code in ("from __future__ import annotations\n", "import dataclasses\n", "import time\nt = time.monotonic_ns()\n",
                 "import subprocess\nsubprocess.run(['x'], capture_output=True)\n", "import importlib.resources\n"):
        bad = tmp_path / "bad.py"
        bad.write_text(code)
        assert _vermin(str(bad)).returncode != 0, code


# -- a real Python 3.6 -------------------------------------------------------------------------------------------


def onnx_bundle(root, opset=OPSET_36, name="tiny36"):
    """A digits bundle holding one ONNX model (logistic regression, opset ``opset``), its eval set and drift
    reference; no TensorFlow needed. Returns a dict with its path and the numpy reference (w, b, x, y)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.linear_model import LogisticRegression

    from edgekd_runtime import Artifact, Manifest, Preprocessing, TensorSpec, write_bundle
    from edgekd_runtime.drift import DRIFT_NAME, reference_json
    from test_runtime_bundles import N_TRAIN, digits_raw

    x, y = digits_raw()
    pre = Preprocessing(scale=1.0 / 16.0, offset=0.0)
    xt, yt, xe, ye = x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]
    clf = LogisticRegression(max_iter=300).fit(pre.apply(xt).reshape(len(xt), -1), yt)
    w, b = clf.coef_.T.astype(np.float32), clf.intercept_.astype(np.float32)
    host_logits = (pre.apply(xe).reshape(len(xe), -1) @ w + b).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "shape"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["mm"]),
         helper.make_node("Add", ["mm", "b"], ["logits"])],
        name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 8, 8, 1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 10])],
        [numpy_helper.from_array(np.array([-1, 64], np.int64), "shape"), numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7  # onnxruntime 1.10 reads IR versions up to 8
    onnx.checker.check_model(model)
    blob = model.SerializeToString()
    acc = float(np.mean(host_logits.argmax(1) == ye))
    art = Artifact("model.onnx", "onnx", "onnxruntime", TensorSpec([-1, 8, 8, 1], "float32"), TensorSpec([-1, 10], "float32"), len(blob),
                   host_metrics={"accuracy": acc}, verification="passed")
    manifest = Manifest(name=name, labels=[str(i) for i in range(10)], input=TensorSpec([1, 8, 8, 1], "float32"), preprocessing=pre,
                        artifacts=[art], files={}, profile={"name": "jetson-nano", "engine": "onnxruntime"},
                        created="2026-12-01T00:00:00+00:00", producer="tests")
    os.makedirs(root, exist_ok=True)
    eval_path = os.path.join(root, "eval-staging.npz")
    np.savez_compressed(eval_path, x=xe, y=ye, host_outputs=host_logits)
    path = write_bundle(os.path.join(root, name), manifest, {"model.onnx": blob, "eval.npz": eval_path, DRIFT_NAME: reference_json(xe, host_logits)})
    os.remove(eval_path)
    return {"path": path, "w": w, "b": b, "x": xe, "y": ye, "host_accuracy": acc}


def python36():
    """The .venv36 interpreter, or a failure naming why it is not there (never a skip: CI must make it)."""
    failed = os.path.join(VENV36, "FAILED")
    if os.path.exists(failed):
        pytest.fail("the Python 3.6 venv could not be made by `make py36`:\n" + open(failed).read())
    if not os.path.exists(os.path.join(VENV36, ".installed")):
        pytest.fail("no Python 3.6 venv at %s: run `make py36` (make test does), which needs pyenv's 3.6.15 and the package index once" % VENV36)
    # The installed copy must be this checkout's runtime, or the test would pass on an old one.
    code = "import edgekd_runtime, os, sys; print(os.path.dirname(edgekd_runtime.__file__)); print(sys.version.split()[0])"
    proc = subprocess.run([PY36, "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    assert proc.returncode == 0, proc.stderr
    installed, version = proc.stdout.split()
    assert version.startswith("3.6."), version
    stale = []
    for folder, _, files in os.walk(RUNTIME):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), RUNTIME)
                other = os.path.join(installed, rel)
                if not os.path.exists(other) or open(other, "rb").read() != open(os.path.join(folder, name), "rb").read():
                    stale.append(rel)
    if stale:
        pytest.fail("the runtime in .venv36 differs from the checkout (%s): run `make py36`" % ", ".join(sorted(stale)[:5]))
    return PY36


@pytest.fixture(scope="module")
def py36():
    return python36()


@pytest.fixture(scope="module")
def bundle36(tmp_path_factory):
    return onnx_bundle(str(tmp_path_factory.mktemp("py36")))


def _run(cli, *args, cwd=None):
    proc = subprocess.run([cli] + [str(a) for a in args], capture_output=True, text=True, timeout=300, cwd=cwd)
    return proc


def _both(*args, cwd=None):
    host, old = _run(HOST_CLI, *args, cwd=cwd), _run(CLI36, *args, cwd=cwd)
    assert host.returncode == 0, host.stderr
    assert old.returncode == 0, old.stderr
    return host.stdout, old.stdout


def test_python36_reports_its_engine_versions(py36):
    proc = subprocess.run([py36, "-c", "import numpy, onnxruntime, sys; print(sys.version.split()[0], numpy.__version__, onnxruntime.__version__)"],
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["3.6.15", "1.19.5", "1.10.0"], proc.stdout + proc.stderr


def test_info_and_run_match_the_host(py36, bundle36, tmp_path):
    host, old = _both("info", bundle36["path"])
    assert old == host and "model.onnx" in old
    np.save(str(tmp_path / "x.npy"), bundle36["x"][:20])
    host, old = _both("run", bundle36["path"], "--input", tmp_path / "x.npy", "--top", "3")
    rows_host, rows_old = [r.split(": ", 1)[1].split(", ") for r in host.splitlines()], [r.split(": ", 1)[1].split(", ") for r in old.splitlines()]
    assert len(rows_old) == 20
    for a, b in zip(rows_host, rows_old):
        assert [v.split()[0] for v in a] == [v.split()[0] for v in b]  # the same top-3 labels, in order
        assert np.allclose([float(v.split()[1]) for v in a], [float(v.split()[1]) for v in b], atol=1.5e-3)


def test_python36_scores_equal_numpy(py36, bundle36, tmp_path):
    x = bundle36["x"][:64]
    np.save(str(tmp_path / "x.npy"), x)
    code = ("import sys, numpy as np\nfrom edgekd_runtime import Bundle, Model\n"
            "b = Bundle.open(sys.argv[1])\nm = Model.from_bundle(b)\n"
            "np.save(sys.argv[3], m.predict(np.load(sys.argv[2])))\nprint(m.describe()['provider'])\n")
    proc = subprocess.run([py36, "-c", code, bundle36["path"], str(tmp_path / "x.npy"), str(tmp_path / "s.npy")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "CPUExecutionProvider"
    expected = (x.reshape(len(x), -1) / 16.0) @ bundle36["w"] + bundle36["b"]
    np.testing.assert_allclose(np.load(str(tmp_path / "s.npy")), expected, atol=1e-4)


def test_profile_and_monitor_reports_match_the_host(py36, bundle36, tmp_path):
    field = tmp_path / "field.npy"
    np.save(str(field), bundle36["x"])
    reports = {}
    for who, cli in (("host", HOST_CLI), ("py36", CLI36)):
        out = tmp_path / (who + ".json")
        proc = _run(cli, "profile", bundle36["path"], "--runs", "20", "--warmup", "2", "--inputs", field, "--json", out)
        assert proc.returncode == 0, proc.stderr
        reports[who] = json.loads(out.read_text())
    host, old = reports["host"], reports["py36"]
    assert old["device"]["python"] == "3.6.15" and host["device"]["python"] != "3.6.15"
    assert old["runtime"]["provider"] == "CPUExecutionProvider" and old["format"] == "onnx"
    for key in ("accuracy", "agreement_with_host", "per_class_accuracy", "eval_samples", "host_expected", "bundle", "manifest_sha256"):
        assert old[key] == host[key], key
    assert old["accuracy"] == pytest.approx(bundle36["host_accuracy"])
    for key in ("drift_eval", "drift"):
        summary_old = old[key] if key == "drift_eval" else old[key]["summary"]
        summary_host = host[key] if key == "drift_eval" else host[key]["summary"]
        assert summary_old["status"] == summary_host["status"]
        for name, value in summary_host.items():
            if isinstance(value, float):
                assert summary_old[name] == pytest.approx(value, abs=1e-6), (key, name)
    lat = old["latency"]
    assert lat["runs"] == 20 and 0 < lat["p50_ms"] <= lat["p99_ms"]


def test_python36_spools_a_report_the_host_reads(py36, bundle36, tmp_path):
    """No collector reachable: the 3.6 device keeps the report in its spool, and what it wrote is a report the
    host's reader (Python 3.11) accepts, so a later `send` from either delivers it."""
    from edgekd_runtime.report import read_report, spooled

    spool = tmp_path / "spool"
    proc = _run(CLI36, "profile", bundle36["path"], "--runs", "5", "--report-to", "http://127.0.0.1:9", "--token", "t", "--spool", spool, "--timeout", "2")
    assert proc.returncode == 0, proc.stderr
    assert "kept in %s" % spool in proc.stderr
    (path,) = spooled(str(spool))
    report = read_report(path)
    assert report["kind"] == "profile" and report["device"]["python"] == "3.6.15" and report["accuracy"] == pytest.approx(bundle36["host_accuracy"])


def test_python36_names_an_opset_its_onnxruntime_cannot_read(py36, tmp_path):
    # edgekd's default opset (17) is newer than onnxruntime 1.10 reads: the device says so and what to do, exit 5.
    b = onnx_bundle(str(tmp_path), opset=17, name="opset17")
    proc = _run(CLI36, "profile", b["path"], "--runs", "2")
    assert proc.returncode == 5
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "uses ONNX opset 17; onnxruntime 1.10.0 reads opsets up to 15" in line and "--opset 13" in line
