"""Bad input gets one clear line on stderr and a non-zero exit, never a traceback."""
import numpy as np

from conftest import run_cli


def _assert_clean_error(proc, *needles):
    assert proc.returncode != 0
    lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("edgekd")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_data_file(tmp_path):
    proc = run_cli("edgekd", "build", "--teacher", "t.keras", "--data", str(tmp_path / "nope.npz"), "--eval", "digits", "--profile", "cortex-m7", "--out", str(tmp_path / "o"))
    _assert_clean_error(proc, "data not found", "nope.npz")


def test_npz_without_labels(tmp_path):
    path = tmp_path / "x_only.npz"
    np.savez(path, x=np.zeros((4, 8, 8, 1), np.float32))
    proc = run_cli("edgekd", "build", "--teacher", "t.keras", "--data", str(path), "--eval", "digits", "--profile", "cortex-m7", "--out", str(tmp_path / "o"))
    _assert_clean_error(proc, "no array 'y'")


def test_unknown_profile(tmp_path):
    proc = run_cli("edgekd", "build", "--teacher", "t.keras", "--data", "digits", "--eval", "digits", "--profile", "toaster", "--out", str(tmp_path / "o"))
    _assert_clean_error(proc, "unknown profile 'toaster'", "cortex-m7")


def test_broken_profile_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndevice_class: mcu\nengine: tflm\nformats: [tflm-int8]\nprecisions: [int8]\n"
                   "budgets: {model_bytes: -5, memory_bytes: 10, latency_ms: 1}\ncompute: {peak_macs_per_s: {int8: 1.0e8}, efficiency: 0.3}\n")
    proc = run_cli("edgekd", "profiles", "show", str(bad))
    _assert_clean_error(proc, "budgets.model_bytes")


def test_nan_in_data(tmp_path):
    path = tmp_path / "nan.npz"
    x = np.zeros((4, 8, 8, 1), np.float32)
    x[1, 0, 0, 0] = np.nan
    np.savez(path, x=x, y=np.arange(4))
    proc = run_cli("edgekd", "build", "--teacher", "t.keras", "--data", str(path), "--eval", "digits", "--profile", "cortex-m7", "--out", str(tmp_path / "o"))
    _assert_clean_error(proc, "NaN or Inf")


def test_runtime_missing_bundle(tmp_path):
    proc = run_cli("edgekd-runtime", "info", str(tmp_path / "nothing"))
    assert proc.returncode == 2 and "bundle not found" in proc.stderr and "Traceback" not in proc.stderr
