"""Bad input: each a one-line error and the documented exit code (2 bad input, 3 integrity, 4 engine, 5 model)."""
import json
import os
import zipfile

import numpy as np
import pytest

from conftest import run_cli
from edgekd_runtime.manifest import sha256_file
from test_runtime_bundles import copy_bundle, rewrite_manifest


def _one_line_error(proc, code, *needles):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("edgekd-runtime: ")]
    assert len(lines) == 1 and lines[0].startswith("edgekd-runtime: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _replace_file(bundle_dir, name, data):
    """Put ``data`` in place of a model file and re-hash it, so integrity passes and the engine sees it."""
    (bundle_dir / name).write_bytes(data)
    rewrite_manifest(bundle_dir, lambda m: m["files"].__setitem__(name, sha256_file(str(bundle_dir / name))))


@pytest.mark.parametrize("fmt,name", [("tflite-fp32", "model_fp32.tflite"), ("onnx", "model.onnx"), ("tflm-int8", "model_tflm_int8.tflite")])
def test_truncated_model_is_a_model_error(tiny_bundle, tmp_path, fmt, name):
    b = copy_bundle(tiny_bundle, tmp_path)
    data = (b / name).read_bytes()
    _replace_file(b, name, data[: len(data) // 3])
    _one_line_error(run_cli("edgekd-runtime", "profile", str(b), "--artifact", fmt, "--runs", "2"), 5, name)


@pytest.mark.parametrize("fmt,name", [("tflite-int8", "model_int8.tflite"), ("onnx", "model.onnx")])
def test_corrupt_model_is_a_model_error(tiny_bundle, tmp_path, fmt, name):
    b = copy_bundle(tiny_bundle, tmp_path)
    size = len((b / name).read_bytes())
    _replace_file(b, name, np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())
    _one_line_error(run_cli("edgekd-runtime", "profile", str(b), "--artifact", fmt, "--runs", "2"), 5, "could not load")


def test_altered_or_missing_file_is_an_integrity_error(tiny_bundle, tmp_path):
    b = copy_bundle(tiny_bundle, tmp_path)
    (b / "model.onnx").write_bytes((b / "model.onnx").read_bytes()[:-1] + b"\0")
    _one_line_error(run_cli("edgekd-runtime", "info", str(b)), 3, "model.onnx", "sha256")
    os.remove(b / "model.onnx")
    _one_line_error(run_cli("edgekd-runtime", "info", str(b)), 3, "missing: model.onnx")


def test_missing_bundle_and_input_files_are_bad_input(tiny_bundle, tmp_path):
    _one_line_error(run_cli("edgekd-runtime", "info", str(tmp_path / "nope")), 2, "bundle not found")
    _one_line_error(run_cli("edgekd-runtime", "run", tiny_bundle["path"], "--input", str(tmp_path / "x.npy")), 2, "input file not found")
    (tmp_path / "x.npy").write_bytes(b"not numpy")
    _one_line_error(run_cli("edgekd-runtime", "run", tiny_bundle["path"], "--input", str(tmp_path / "x.npy")), 2, "not a .npy")


def test_unknown_manifest_schema_version(tiny_bundle, tmp_path):
    b = copy_bundle(tiny_bundle, tmp_path)
    rewrite_manifest(b, lambda m: m.__setitem__("schema_version", 99))
    _one_line_error(run_cli("edgekd-runtime", "info", str(b)), 2, "schema version 99", "reads version 1")


def test_malformed_manifest(tiny_bundle, tmp_path):
    b = copy_bundle(tiny_bundle, tmp_path)
    rewrite_manifest(b, lambda m: m.pop("artifacts"))
    _one_line_error(run_cli("edgekd-runtime", "info", str(b)), 2, "malformed", "artifacts")
    (b / "manifest.json").write_text("{not json")
    _one_line_error(run_cli("edgekd-runtime", "info", str(b)), 2, "not valid JSON")


@pytest.mark.parametrize(
    "array,needles",
    [
        (np.zeros((2, 9, 9, 1), np.float32), ["input shape (2, 9, 9, 1)", "expected (N, 8, 8, 1)"]),
        (np.zeros((2, 8, 8, 1), np.complex64), ["expected float32", "given complex64"]),
        (np.zeros((2, 8, 8, 1), np.bool_), ["given bool"]),
        (np.full((2, 8, 8, 1), np.nan, np.float32), ["NaN or Inf"]),
        (np.full((1, 8, 8, 1), np.inf, np.float64), ["NaN or Inf"]),
    ],
    ids=["shape", "complex", "bool", "nan", "inf"],
)
def test_wrong_inputs_say_expected_and_given(tiny_bundle, tmp_path, array, needles):
    x = tmp_path / "x.npy"
    np.save(x, array)
    _one_line_error(run_cli("edgekd-runtime", "run", tiny_bundle["path"], "--input", str(x)), 2, *needles)


def test_nan_in_field_data_for_monitor(tiny_bundle, tmp_path):
    x = tiny_bundle["x"][:50].copy()
    x[3, 2, 2, 0] = np.nan
    np.savez(tmp_path / "field.npz", x=x)
    _one_line_error(run_cli("edgekd-runtime", "monitor", tiny_bundle["path"], "--inputs", str(tmp_path / "field.npz")), 2, "NaN")


def test_missing_eval_set(tiny_bundle, tmp_path):
    b = copy_bundle(tiny_bundle, tmp_path)
    os.remove(b / "eval.npz")
    rewrite_manifest(b, lambda m: m["files"].pop("eval.npz"))
    _one_line_error(run_cli("edgekd-runtime", "profile", str(b), "--runs", "2"), 2, "no eval set")


def test_unknown_engine_and_artifact(tiny_bundle):
    _one_line_error(run_cli("edgekd-runtime", "profile", tiny_bundle["path"], "--engine", "tpu9000"), 2, "unknown engine")
    _one_line_error(run_cli("edgekd-runtime", "profile", tiny_bundle["path"], "--artifact", "coreml"), 2, "no artifact", "available:")


def _zip_with(tmp_path, tiny_bundle, extra):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name in sorted(os.listdir(tiny_bundle["path"])):
            zf.write(os.path.join(tiny_bundle["path"], name), name)
        extra(zf)
    return path


def test_archive_refuses_escaping_paths_and_links(tiny_bundle, tmp_path):
    evil = _zip_with(tmp_path, tiny_bundle, lambda zf: zf.writestr("../escaped.txt", "x"))
    _one_line_error(run_cli("edgekd-runtime", "info", str(evil)), 2, "outside the bundle")
    assert not (tmp_path.parent / "escaped.txt").exists()

    def link(zf):
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")

    evil = _zip_with(tmp_path, tiny_bundle, link)
    _one_line_error(run_cli("edgekd-runtime", "info", str(evil)), 2, "symbolic link")


def test_zip_bundle_runs_and_leaves_no_temporary_folder(tiny_bundle, tmp_path):
    import tempfile

    from edgekd_runtime import profile

    path = tmp_path / "tiny.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name in sorted(os.listdir(tiny_bundle["path"])):
            zf.write(os.path.join(tiny_bundle["path"], name), name)
    before = set(n for n in os.listdir(tempfile.gettempdir()) if n.startswith("edgekd-bundle-"))
    report = profile(str(path), runs=5, artifact="onnx")
    assert report["accuracy"] == pytest.approx(tiny_bundle["host_accuracy"], abs=1e-9)
    after = set(n for n in os.listdir(tempfile.gettempdir()) if n.startswith("edgekd-bundle-"))
    assert after <= before
