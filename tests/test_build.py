"""The foundation's promises, on a real (small) distillation of digits."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_cli


def test_distilled_student_is_far_above_chance_and_close_to_teacher(phone_build):
    assert phone_build.student_accuracy > 0.85  # chance is 0.10
    assert phone_build.student_accuracy >= phone_build.teacher_accuracy - 0.05


def test_int8_tflite_agrees_with_keras_student(phone_build):
    int8 = phone_build.converted[0].artifact
    assert int8.format == "tflite-int8" and int8.input.dtype == "int8"
    assert int8.host_metrics["agreement_with_keras"] >= 0.95
    fp32 = phone_build.converted[1].artifact
    assert fp32.host_metrics["agreement_with_keras"] >= 0.999


def test_bundle_manifest_lists_every_file_with_sha256(phone_build):
    from edgekd_runtime import Bundle
    from edgekd_runtime.manifest import sha256_file

    bundle = Bundle.open(str(phone_build.bundle))
    names = set(os.listdir(phone_build.bundle)) - {"manifest.json"}
    assert set(bundle.manifest.files) == names
    for name, digest in bundle.manifest.files.items():
        assert sha256_file(bundle.path(name)) == digest
    m = bundle.manifest
    assert m.teacher["fingerprint"] and len(m.teacher["fingerprint"]) == 64
    assert m.input.shape == [1, 8, 8, 1] and m.artifacts[0].input.scale > 0
    assert len(m.reference["outputs"]) == 8


def test_runtime_profile_reports_latency_accuracy_and_agreement(phone_build, tmp_path):
    out = tmp_path / "report.json"
    proc = run_cli("edgekd-runtime", "profile", str(phone_build.bundle), "--runs", "30", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    lat = report["latency"]
    assert 0 < lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"]
    assert report["accuracy"] == pytest.approx(phone_build.primary.host_metrics["accuracy"], abs=1e-9)
    assert report["agreement_with_host"] >= 0.95


def test_flipped_byte_is_refused_naming_the_file(phone_build, tmp_path):
    copy = tmp_path / "tampered"
    shutil.copytree(phone_build.bundle, copy)
    target = copy / phone_build.primary.path
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    proc = run_cli("edgekd-runtime", "profile", str(copy), "--runs", "5")
    assert proc.returncode == 3
    assert phone_build.primary.path in proc.stderr and "sha256" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_runtime_run_prints_top_classes(phone_build, digits_split, tmp_path):
    _, test = digits_split
    x = tmp_path / "x.npy"
    np.save(x, test.x[:2])
    proc = run_cli("edgekd-runtime", "run", str(phone_build.bundle), "--input", str(x))
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("sample 0: " + str(test.y[0]) + " ")


def test_wrong_input_shape_is_a_clear_error(phone_build, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 9, 9, 1), np.float32))
    proc = run_cli("edgekd-runtime", "run", str(phone_build.bundle), "--input", str(x))
    assert proc.returncode == 2
    assert "expected" in proc.stderr and "(2, 9, 9, 1)" in proc.stderr


def test_runtime_never_imports_tensorflow(phone_build):
    code = (
        "import sys, edgekd_runtime\n"
        f"r = edgekd_runtime.profile({str(phone_build.bundle)!r}, runs=5)\n"
        "bad = [m for m in ('tensorflow', 'tf_keras', 'keras', 'edgekd') if m in sys.modules]\n"
        "print('IMPORTED', bad, r['accuracy'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "IMPORTED [] " in proc.stdout


def test_zip_bundle_round_trips(phone_build, tmp_path):
    from edgekd_runtime import Bundle, profile, write_bundle

    src = Bundle.open(str(phone_build.bundle))
    files = {name: src.path(name) for name in src.manifest.files}
    archive = write_bundle(str(tmp_path / "b"), src.manifest, files, make_zip=True)
    assert archive.endswith(".zip")
    assert profile(archive, runs=3)["accuracy"] == pytest.approx(phone_build.primary.host_metrics["accuracy"])


def test_a_bundle_at_chance_fails_the_build_and_a_shortfall_warns_even_when_quiet(capsys):
    """A 150 s phone build on a loaded machine once wrote a 9.9% bundle for a 99.9% teacher and exited 0: a bundle
    no better than chance is an error; one short of --retain is a warning that --quiet does not silence."""
    from edgekd.errors import FitError
    from edgekd.build_summary import check_bundle_accuracy
    from edgekd.pipeline import _say

    quiet = _say(False)
    with pytest.raises(FitError, match="no better than chance"):
        check_bundle_accuracy(0.099, 0.999, retain=0.97, num_classes=10, n_eval=1000, strict=False, bundle="out/b", say=quiet)
    check_bundle_accuracy(0.90, 0.999, retain=0.97, num_classes=10, n_eval=1000, strict=False, bundle="out/b", say=quiet)
    assert "warning: the bundle reaches 90.00%" in capsys.readouterr().err
    with pytest.raises(FitError, match="90.00%"):
        check_bundle_accuracy(0.90, 0.999, retain=0.97, num_classes=10, n_eval=1000, strict=True, bundle="out/b", say=quiet)
    check_bundle_accuracy(0.98, 0.999, retain=0.97, num_classes=10, n_eval=1000, strict=True, bundle="out/b", say=quiet)
