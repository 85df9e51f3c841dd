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


# Issue 13, nothing unchecked on the device: every file the runtime loads is one the manifest lists, inside the
# bundle, with a matching sha256, and only an artifact the host verified runs unless --allow-unverified.

def test_files_entry_outside_the_bundle_is_refused(tiny_bundle, tmp_path):
    """A manifest that lists ../x or /abs/x (with that file's true sha256) made the runtime hash, and trust, a
    file outside the bundle: refused now, before anything is read from it."""
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"not part of the bundle")
    digest = sha256_file(str(outside))
    for key in ("../secret.bin", str(outside)):
        b = copy_bundle(tiny_bundle, tmp_path, "escape%d" % len(key))
        rewrite_manifest(b, lambda m: m["files"].__setitem__(key, digest))
        _one_line_error(run_cli("edgekd-runtime", "info", str(b)), 2, repr(key), "outside the bundle")


def test_link_pointing_out_of_the_bundle_is_refused(tiny_bundle, tmp_path):
    b = copy_bundle(tiny_bundle, tmp_path)
    outside = tmp_path / "elsewhere.onnx"
    os.replace(b / "model.onnx", outside)
    os.symlink(str(outside), str(b / "model.onnx"))  # same bytes, same sha256: only where it lies is wrong
    _one_line_error(run_cli("edgekd-runtime", "run", str(b), "--artifact", "onnx", "--input", _digits_npy(tiny_bundle, tmp_path)), 2, "model.onnx", "outside the bundle")


def test_artifact_not_listed_in_files_is_refused(tiny_bundle, tmp_path):
    """An artifact entry whose model file the files table does not list ran unhashed."""
    b = copy_bundle(tiny_bundle, tmp_path)
    (b / "other.onnx").write_bytes((b / "model.onnx").read_bytes())

    def add(m):
        extra = dict(m["artifacts"][2], path="other.onnx", format="onnx-extra")
        m["artifacts"].append(extra)

    rewrite_manifest(b, add)
    _one_line_error(run_cli("edgekd-runtime", "info", str(b)), 3, "other.onnx", "not listed")
    x = _digits_npy(tiny_bundle, tmp_path)
    _one_line_error(run_cli("edgekd-runtime", "run", str(b), "--artifact", "onnx-extra", "--input", x), 3, "other.onnx", "not listed")

    from edgekd_runtime import Bundle, Model
    from edgekd_runtime.errors import IntegrityError

    # The same check when the bundle was opened without verifying everything first.
    with Bundle.open(str(b), verify=False) as bundle:
        with pytest.raises(IntegrityError, match="not listed"):
            Model.from_bundle(bundle, artifact="onnx-extra")


def _digits_npy(tiny_bundle, tmp_path, count=3):
    path = tmp_path / "digits.npy"
    np.save(path, tiny_bundle["x"][:count])
    return str(path)


def test_artifact_without_recorded_verification_reads_unverified_and_is_not_run(tiny_bundle, tmp_path):
    b = copy_bundle(tiny_bundle, tmp_path)
    rewrite_manifest(b, lambda m: [a.pop("verification") for a in m["artifacts"]])
    info = run_cli("edgekd-runtime", "info", str(b))
    assert info.returncode == 0, info.stderr
    assert "[unverified]" in info.stdout and "[passed]" not in info.stdout
    x = _digits_npy(tiny_bundle, tmp_path)
    _one_line_error(run_cli("edgekd-runtime", "run", str(b), "--input", x), 3, "passed the host's verification", "--allow-unverified")
    _one_line_error(run_cli("edgekd-runtime", "profile", str(b), "--artifact", "onnx", "--runs", "2"), 3, "not verified", "--allow-unverified")
    ran = run_cli("edgekd-runtime", "profile", str(b), "--artifact", "onnx", "--runs", "2", "--allow-unverified")
    assert ran.returncode == 0, ran.stderr
    assert "verified  unverified: the host did not check" in ran.stdout and "passed" not in ran.stdout
    run = run_cli("edgekd-runtime", "run", str(b), "--input", x, "--allow-unverified")
    assert run.returncode == 0 and "sample 2:" in run.stdout and "warning" in run.stderr


def test_failed_artifact_runs_only_with_allow_unverified(tiny_bundle, tmp_path):
    from edgekd_runtime import Bundle, Model
    from edgekd_runtime.errors import IntegrityError

    b = copy_bundle(tiny_bundle, tmp_path)
    rewrite_manifest(b, lambda m: m["artifacts"][0].__setitem__("verification", "failed"))
    with Bundle.open(str(b)) as bundle:
        assert Model.from_bundle(bundle).artifact.format == "tflite-fp32"  # the profile's engine, a verified artifact
        with pytest.raises(IntegrityError, match="failed the host's verification"):
            Model.from_bundle(bundle, artifact="tflite-int8")
        model = Model.from_bundle(bundle, artifact="tflite-int8", allow_unverified=True)
        assert model.describe()["verification"] == "failed"
    _one_line_error(run_cli("edgekd-runtime", "profile", str(b), "--artifact", "tflite-int8", "--runs", "2"), 3, "model_int8.tflite", "failed")
    ok = run_cli("edgekd-runtime", "profile", str(b), "--artifact", "tflite-int8", "--runs", "2", "--allow-unverified")
    assert ok.returncode == 0 and "FAILED the host's parity check" in ok.stdout, ok.stderr


def test_zip_member_with_a_bad_crc_is_a_bundle_format_error(tiny_bundle, tmp_path):
    path = tmp_path / "damaged.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(os.listdir(tiny_bundle["path"])):
            zf.write(os.path.join(tiny_bundle["path"], name), name)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("model.onnx")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little") \
        + int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    data[start + info.file_size // 2] ^= 0xFF  # inside the stored member's bytes: its CRC no longer matches
    path.write_bytes(bytes(data))
    _one_line_error(run_cli("edgekd-runtime", "info", str(path)), 2, "damaged or unreadable .zip")


# Issue 13, wrong results: the manifest's input spec applies to the dtype it names, and the layouts `build`
# accepted (one sample without its batch axis, N,H,W for an H,W,1 model) run with the right batch.

def _uint8_bundle(tiny_bundle, tmp_path):
    """The tiny bundle as if built from uint8 data: raw digits 0..16 fit, preprocessing x/16 unchanged."""
    b = copy_bundle(tiny_bundle, tmp_path, "u8")
    rewrite_manifest(b, lambda m: m["input"].__setitem__("dtype", "uint8"))
    return b


def test_float_input_for_a_uint8_bundle_exits_2(tiny_bundle, tmp_path):
    """Images already scaled to [0, 1] were scaled again by the bundle's x/16 and answered with confidence."""
    b = _uint8_bundle(tiny_bundle, tmp_path)
    x = tiny_bundle["x"][:20]
    np.save(tmp_path / "scaled.npy", (x / 16.0).astype(np.float32))
    line = _one_line_error(run_cli("edgekd-runtime", "run", str(b), "--input", str(tmp_path / "scaled.npy")), 2, "float32", "expected uint8 values 0..255")
    assert "astype(np.uint8)" in line
    np.save(tmp_path / "wide.npy", (x.astype(np.int64) * 100))
    _one_line_error(run_cli("edgekd-runtime", "run", str(b), "--input", str(tmp_path / "wide.npy")), 2, "outside the bundle's uint8 input range")
    np.save(tmp_path / "raw.npy", x.astype(np.uint8))
    ok = run_cli("edgekd-runtime", "run", str(b), "--input", str(tmp_path / "raw.npy"), "--top", "1")
    assert ok.returncode == 0, ok.stderr
    expected = ((x.reshape(len(x), -1) / 16.0) @ tiny_bundle["w"] + tiny_bundle["b"]).argmax(1)
    got = [int(line.split(": ")[1].split()[0]) for line in ok.stdout.splitlines()]
    assert np.mean(np.array(got) == expected) >= 0.95


def test_samples_without_batch_or_channel_axis_run_as_build_accepted_them(tiny_bundle, tmp_path):
    x = tiny_bundle["x"][:5]
    np.save(tmp_path / "one.npy", x[0, :, :, 0])        # (8, 8): one grayscale image
    np.save(tmp_path / "five.npy", x[:, :, :, 0])       # (5, 8, 8): N,H,W as MNIST ships
    np.save(tmp_path / "five4d.npy", x)                 # (5, 8, 8, 1)
    one = run_cli("edgekd-runtime", "run", tiny_bundle["path"], "--input", str(tmp_path / "one.npy"))
    five = run_cli("edgekd-runtime", "run", tiny_bundle["path"], "--input", str(tmp_path / "five.npy"))
    five4d = run_cli("edgekd-runtime", "run", tiny_bundle["path"], "--input", str(tmp_path / "five4d.npy"))
    assert one.returncode == five.returncode == five4d.returncode == 0, (one.stderr, five.stderr)
    assert len(one.stdout.splitlines()) == 1 and five.stdout == five4d.stdout and len(five.stdout.splitlines()) == 5
    assert one.stdout.splitlines()[0] == five.stdout.splitlines()[0]
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(5):
        np.save(folder / ("%d.npy" % i), x[i, :, :, 0])
    frames = run_cli("edgekd-runtime", "run", tiny_bundle["path"], "--input", str(folder))
    assert frames.returncode == 0 and frames.stdout == five4d.stdout, frames.stderr
    np.save(tmp_path / "bad.npy", np.zeros((5, 8, 9), np.float32))
    _one_line_error(run_cli("edgekd-runtime", "run", tiny_bundle["path"], "--input", str(tmp_path / "bad.npy")), 2,
                    "input shape (5, 8, 9)", "(N, 8, 8) / (8, 8) without the channel axis")


def test_zip_whose_directory_points_before_its_start_is_a_bundle_format_error(tiny_bundle, tmp_path):
    """zipfile then seeks to a negative offset and raised OSError EINVAL as a traceback."""
    import struct

    path = tmp_path / "offset.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name in sorted(os.listdir(tiny_bundle["path"])):
            zf.write(os.path.join(tiny_bundle["path"], name), name)
    raw = bytearray(path.read_bytes())
    end = raw.rfind(b"PK\x05\x06")
    (offset,) = struct.unpack("<I", raw[end + 16:end + 20])
    raw[end + 16:end + 20] = struct.pack("<I", offset + (1 << 20))
    path.write_bytes(bytes(raw))
    _one_line_error(run_cli("edgekd-runtime", "info", str(path)), 2, "damaged or unreadable .zip")


@pytest.mark.parametrize(
    "edit,needles",
    [
        (lambda r: r["features"][0].pop("edges"), ["drift_reference.json is malformed", "features[0].edges"]),
        (lambda r: r["confidence"]["fractions"].pop(), ["confidence.fractions must be a list of"]),
        (lambda r: r.__setitem__("classes", [0.5, 0.5]), ["describes 2 classes", "shape (10, 10)"]),
        (lambda r: r.__setitem__("features", r["features"][:3]), ["describes 3 input features", "give 66"]),
        (lambda r: r.__setitem__("schema_version", 7), ["schema version 7 is not 1"]),
        (lambda r: r["features"][1].__setitem__("std", "wide"), ["features[1].std must be a finite number"]),
    ],
    ids=["no-edges", "short-fractions", "classes", "feature-count", "schema", "std-type"],
)
def test_bad_drift_reference_is_a_one_line_error(tiny_bundle, tmp_path, edit, needles):
    """drift_report indexed the reference unchecked: a missing or retyped field was a KeyError/TypeError traceback."""
    b = copy_bundle(tiny_bundle, tmp_path)
    reference = json.loads((b / "drift_reference.json").read_text())
    edit(reference)
    _replace_file(b, "drift_reference.json", json.dumps(reference).encode("utf-8"))
    np.save(tmp_path / "x.npy", tiny_bundle["x"][:10])
    _one_line_error(run_cli("edgekd-runtime", "monitor", str(b), "--inputs", str(tmp_path / "x.npy")), 2, *needles)
