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


def test_ctrl_c_during_a_build_exits_130_with_a_message(tmp_path, teacher_path):
    """typer turns Ctrl-C into an exit code the CLI used to drop: the build looked successful (exit 0, no message)."""
    import os
    import signal
    import subprocess
    import sys

    cmd = [os.path.join(os.path.dirname(sys.executable), "edgekd"), "build", "--teacher", str(teacher_path), "--data", "digits",
           "--eval", "digits", "--profile", "cortex-m7", "--out", str(tmp_path / "o"), "--time-budget", "5m"]
    # Ctrl-C reaches the process with SIGINT at its default handler (a background job would ignore it).
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = ""
    while "teacher" not in seen:  # the build has started working (imports done, teacher loaded)
        line = proc.stderr.readline()
        assert line, f"build ended before it started: {seen}"
        seen += line
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, seen + err
    assert "edgekd: aborted" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_an_unknown_option_is_a_usage_error_not_a_traceback():
    proc = run_cli("edgekd", "reports", "serve", "--db", "x.db", "--no-such-option")
    assert proc.returncode == 2
    assert "No such option: --no-such-option" in proc.stderr and "Traceback" not in proc.stderr
