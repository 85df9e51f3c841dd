"""The device demos (demos/raspberry_pi, demos/jetson) run as a user starts them, from an image folder, against a
small real bundle: top-1 per frame as the runtime computes it, frames of another size resized, unavailable
cameras skipped with the reason, reports in the spool or at a collector with the engine and provider that
ran, the pip extra named when the bundle's engine is missing, and a full spool never stopping the loop."""
import errno
import json
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from test_reports_server import TOKEN, collector  # noqa: F401  (a real collector process)
from test_runtime_bundles import copy_bundle, rewrite_manifest
from test_tensorrt_api import _write_fakes, jetson_bundle  # noqa: F401

DEMOS = os.path.join(ROOT, "demos")
PI = os.path.join(DEMOS, "raspberry_pi", "classify.py")
JETSON = os.path.join(DEMOS, "jetson", "classify.py")


def demo(script, *args, python=sys.executable, env=None):
    return subprocess.run([python, script] + [str(a) for a in args], capture_output=True, text=True, timeout=300, env=env, cwd=DEMOS)


def write_pgm(path, image):
    image = np.asarray(image, np.uint8)
    path.write_bytes(b"P5\n# digits\n%d %d\n%d\n" % (image.shape[1], image.shape[0], max(int(image.max()), 1)) + image.tobytes())


@pytest.fixture
def image_folder(tmp_path, tiny_bundle):
    """Eight digits as PNG at the model's 8x8, one grayscale PGM, and one 32x32 RGB PNG (to be resized)."""
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    x = tiny_bundle["x"][:10, ..., 0].astype(np.uint8)  # raw digits pixels, 0..16, as the bundle's input holds them
    for i in range(8):
        Image.fromarray(x[i]).save(str(folder / ("%02d.png" % i)))
    write_pgm(folder / "08.pgm", x[8])
    Image.fromarray(np.kron(x[9], np.ones((4, 4), np.uint8))).convert("RGB").save(str(folder / "09_big.png"))
    return folder, tiny_bundle["x"][:10]


def frame_lines(stdout):
    return [line.split() for line in stdout.splitlines() if line.startswith("frame ")]


def spooled_reports(spool):
    from edgekd_runtime.report import read_report, spooled

    return [read_report(p) for p in spooled(str(spool))]


def expected_labels(bundle_path, x, **options):
    from edgekd_runtime import Bundle, Model

    with Bundle.open(bundle_path) as bundle:
        return [str(v) for v in Model.from_bundle(bundle, **options).predict(x).argmax(axis=1)]


def test_pi_demo_classifies_an_image_folder_and_spools_its_reports(tiny_bundle, image_folder, tmp_path):
    folder, x = image_folder
    spool = tmp_path / "spool"
    proc = demo(PI, "--bundle", tiny_bundle["path"], "--source", "picamera2,v4l2:7,images:%s" % folder, "--spool", spool, "--profile-runs", "5")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # No camera here: each one skipped is named with its reason, then the folder is used.
    assert "picamera2 unavailable (picamera2 is not installed" in out and "v4l2:7 unavailable (" in out
    assert "frames    from images:%s" % folder in out
    rows = frame_lines(out)
    assert len(rows) == 10
    # Top-1 is what the runtime answers for the same raw pixels (the 32x32 frame shrinks back to its 8x8 digit).
    assert [r[2] for r in rows] == expected_labels(tiny_bundle["path"], x)
    assert all(0 < float(r[3]) <= 1 and r[5] == "ms" and float(r[4]) > 0 for r in rows)
    assert "frames of 32x32 are resized to 8x8" in out
    reports = spooled_reports(spool)
    assert sorted(r["kind"] for r in reports) == ["monitor", "profile"]
    prof = [r for r in reports if r["kind"] == "profile"][0]
    assert prof["runtime"]["engine"] == "litert" and prof["format"] == "tflite-int8" and prof["latency"]["runs"] == 5
    loop = prof["loop"]
    assert loop["frames"] == 10 and loop["source"] == "images:%s" % folder and loop["resize"] in ("numpy", "opencv-area")
    assert loop["latency"]["runs"] == 10 and loop["runtime"]["delegate"] == "xnnpack" and loop["spool_dropped"] == 0
    drift = [r for r in reports if r["kind"] == "monitor"][0]["drift"]
    assert drift["samples"] == 10 and drift["summary"]["status"] == "insufficient data"


def test_jetson_demo_without_tensorrt_runs_onnx_runtime_and_reports_the_provider(tiny_bundle, image_folder, tmp_path):
    folder, x = image_folder
    spool = tmp_path / "spool"
    proc = demo(JETSON, "--bundle", tiny_bundle["path"], "--source", "csi,images:%s" % folder, "--spool", spool, "--profile-runs", "5", "--frames", "6")
    assert proc.returncode == 0, proc.stderr
    assert "TensorRT is not installed here; ONNX Runtime on CPUExecutionProvider" in proc.stdout
    assert "csi unavailable (" in proc.stdout
    rows = frame_lines(proc.stdout)
    assert [r[2] for r in rows] == expected_labels(tiny_bundle["path"], x[:6], engine="onnxruntime")
    for report in spooled_reports(spool):
        assert report["runtime"]["engine"] == "onnxruntime" and report["runtime"]["provider"] == "CPUExecutionProvider"
        assert report["loop"]["runtime"]["provider"] == "CPUExecutionProvider" and report["loop"]["frames"] == 6


def test_jetson_demo_on_tensorrt_82_checks_it_and_reports_it(jetson_bundle, tmp_path):  # noqa: F811
    """With TensorRT 8.2 and a GPU (stand-ins, tests/test_tensorrt_api.py): the engine is built, checked against the
    host's outputs on the eval set, and named with its version and GPU in the loop and in the reports."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        np.save(str(folder / ("%d.npy" % i)), jetson_bundle["x"][i])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(_write_fakes(tmp_path / "fakes")), os.path.join(ROOT, "runtime")]),
               FAKE_TRT_VERSION="8.2.1.8", FAKE_CUDA="gpu", FAKE_GPU="NVIDIA Tegra X1", EDGEKD_ENGINE_CACHE=str(tmp_path / "engines"))
    proc = demo(JETSON, "--bundle", jetson_bundle["path"], "--source", "images:%s" % folder, "--spool", tmp_path / "spool", "--profile-runs", "3", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "on tensorrt, provider TensorRT 8.2.1.8 (NVIDIA Tegra X1)" in proc.stdout
    assert "TensorRT: top-1 agrees with the host on 100.0% of the eval set" in proc.stdout
    expected = (jetson_bundle["x"][:4].reshape(4, -1) / 16.0) @ jetson_bundle["w"] + jetson_bundle["b"]
    assert [r[2] for r in frame_lines(proc.stdout)] == [str(v) for v in expected.argmax(1)]
    reports = spooled_reports(tmp_path / "spool")
    assert len(reports) == 2
    for report in reports:
        assert report["runtime"]["provider"] == "TensorRT 8.2.1.8 (NVIDIA Tegra X1)" and report["runtime"]["io_api"] == "bindings"
    assert len(os.listdir(str(tmp_path / "engines"))) == 1  # built once, then every load in the run used the cache


def test_reports_reach_a_collector(tiny_bundle, image_folder, tmp_path, collector):  # noqa: F811
    from edgekd.reports.databases import open_store

    folder, _ = image_folder
    _, url, _ = collector(db=tmp_path / "db.sqlite")
    proc = demo(PI, "--bundle", tiny_bundle["path"], "--source", "images:%s" % folder, "--frames", "4", "--report-every", "2", "--profile-runs", "3",
                "--report-to", url, "--token", TOKEN, "--spool", tmp_path / "spool", "--device-id", "pi-kitchen", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(": delivered") == 6 and not frame_lines(proc.stdout)  # after frames 2 and 4, and at the end
    store = open_store(str(tmp_path / "db.sqlite"))
    rows = store.query()
    store.close()
    assert sorted(r["kind"] for r in rows) == ["monitor"] * 3 + ["profile"] * 3 and {r["device_id"] for r in rows} == {"pi-kitchen"}


def test_on_python_36_the_demo_runs_and_a_missing_engine_names_its_pip_extra(tiny_bundle, tmp_path):
    """The Jetson Nano's Python: numpy-only frames (PGM) and resize through onnxruntime 1.10; a TFLite-only bundle
    there (no LiteRT for Python 3.6) stops with the pip extra to install."""
    from test_runtime_py36 import onnx_bundle, python36

    py36 = python36()
    b = onnx_bundle(str(tmp_path / "b"))
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        write_pgm(folder / ("%d.pgm" % i), np.kron(b["x"][i, ..., 0], np.ones((2, 2))))
    proc = demo(PI, "--bundle", b["path"], "--source", "images:%s" % folder, "--spool", tmp_path / "spool", "--profile-runs", "3", python=py36)
    assert proc.returncode == 0, proc.stderr
    assert "frames of 16x16 are resized to 8x8 (numpy)" in proc.stdout
    expected = (b["x"][:3].reshape(3, -1) / 16.0) @ b["w"] + b["b"]
    assert [r[2] for r in frame_lines(proc.stdout)] == [str(v) for v in expected.argmax(1)]
    assert {r["device"]["python"] for r in spooled_reports(tmp_path / "spool")} == {"3.6.15"}

    lite = copy_bundle(tiny_bundle, tmp_path, "tflite-only")
    rewrite_manifest(lite, lambda m: m.update(artifacts=[a for a in m["artifacts"] if a["engine"] == "litert"]))
    proc = demo(PI, "--bundle", lite, "--source", "images:%s" % folder, python=py36)
    assert proc.returncode == 4
    assert proc.stderr.strip().count("\n") == 0 and "no TFLite engine is installed" in proc.stderr
    assert "pip install 'edgekd-runtime[litert]'" in proc.stderr


@pytest.mark.parametrize("source,words", [
    ("webcam", "unknown frame source 'webcam'"),
    ("images:/nonexistent/frames", "no frame source works here (images:/nonexistent/frames: no such folder)"),
])
def test_bad_sources_are_one_line_exit_2(tiny_bundle, source, words):
    proc = demo(PI, "--bundle", tiny_bundle["path"], "--source", source)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr


def _loop_module():
    sys.path.insert(0, DEMOS)
    try:
        import classifier_loop
    finally:
        sys.path.remove(DEMOS)
    return classifier_loop


def test_a_full_spool_drops_the_oldest_reports_with_a_counted_warning(tmp_path, monkeypatch, capsys):
    """The disk fills (fsync fails with ENOSPC, as a write into a full file system does): the oldest spooled report
    goes to make room, each drop is counted and said, nothing half-written stays, and nothing raises."""
    classifier_loop = _loop_module()
    spool = tmp_path / "spool"
    sender = classifier_loop.ReportSender(None, None, str(spool), "dev")
    body = {"bundle": "b", "latency": {"p50_ms": 1.0}}
    for _ in range(3):
        assert sender.send(body, "profile").startswith("spooled")
    oldest = sorted(os.listdir(str(spool)))
    real_fsync = os.fsync

    def full_disk(fd):
        # File data no longer fits once three reports are there (a folder's fsync writes no data: it passes).
        if stat.S_ISREG(os.fstat(fd).st_mode) and len([n for n in os.listdir(str(spool)) if n.endswith(".json")]) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    assert sender.send(body, "profile").startswith("spooled")
    assert sender.send(body, "monitor").startswith("spooled")
    names = sorted(os.listdir(str(spool)))
    assert len(names) == 3 and oldest[0] not in names and oldest[1] not in names and oldest[2] in names
    assert not [n for n in names if n.endswith(".tmp")]
    err = capsys.readouterr().err
    assert "is full (No space left on device): dropped the oldest report %s (1 report(s) dropped so far)" % oldest[0] in err
    assert "(2 report(s) dropped so far)" in err and sender.dropped == 2
    # A spool that cannot take even one report: the report is dropped, counted, and the loop goes on.
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    shutil.rmtree(str(spool))
    assert sender.send(body, "profile") == "dropped" and sender.dropped == 3
    assert "not kept (3 report(s) dropped so far)" in capsys.readouterr().err


def test_frames_fit_any_size_and_channel_count_to_the_input():
    sys.path.insert(0, DEMOS)
    try:
        import frames
    finally:
        sys.path.remove(DEMOS)
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    rgb_big = np.repeat(np.kron(gray, np.ones((3, 3), np.uint8))[..., None], 3, axis=-1)  # 24x24 RGB of the same image
    sample, method = frames.fit_frame(rgb_big, (8, 8, 1), "uint8")
    assert sample.shape == (8, 8, 1) and sample.dtype == np.uint8 and method in ("numpy", "opencv-area")
    np.testing.assert_array_equal(sample[..., 0], gray)  # a whole-number shrink of a block image gives it back
    sample, method = frames.fit_frame(gray, (5, 7, 3), "float32")
    assert sample.shape == (5, 7, 3) and sample.dtype == np.float32 and np.all(sample[..., 0] == sample[..., 2])
    assert 0 <= sample.min() and sample.max() <= 63
    rgba = np.zeros((4, 4, 4), np.uint8)
    assert frames.fit_frame(rgba, (4, 4, 3), "uint8")[1] == "none"
    with pytest.raises(frames.FrameError, match="not an image"):
        frames.fit_frame(np.zeros((4, 4, 2)), (4, 4, 3), "uint8")
    ascii_pgm = frames._netpbm(b"P2\n3 2\n9\n0 1 2\n3 4 9\n")
    np.testing.assert_array_equal(ascii_pgm, [[0, 1, 2], [3, 4, 9]])
