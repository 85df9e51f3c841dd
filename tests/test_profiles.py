"""Device profiles: the schema refuses bad files by field name; the latency fit matches measured latency."""
import json

import pytest
import yaml

from conftest import run_cli
from edgekd.errors import ProfileError
from edgekd.profiles import FORMATS, available_profiles, load_profile, save_profile
from edgekd.sizing import fit_latency


def _raw(name="cortex-m7"):
    from edgekd.profiles import PROFILE_DIR

    return yaml.safe_load((PROFILE_DIR / f"{name}.yaml").read_text())


def _write(tmp_path, data, name="p.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_every_builtin_profile_validates_with_the_issue_devices():
    names = available_profiles()
    for required in ("android-midrange", "iphone", "jetson-nano", "raspberry-pi-4", "cortex-m7", "cortex-m4f", "linux-x86"):
        assert required in names
    for name in names:
        p = load_profile(name)
        assert p.name == name and p.formats[0] in FORMATS and p.sources
        assert p.estimate_latency_ms(1e6) > p.compute.overhead_ms
    m4 = load_profile("cortex-m4f")
    assert m4.budgets.memory_bytes == 256 * 1024 and m4.budgets.model_bytes == 1024 * 1024 and "HARD_SWISH" in m4.op_limits


def test_user_profile_loads_from_any_path(tmp_path):
    data = _raw()
    data["name"] = "my-board"
    data["budgets"]["memory_bytes"] = 123456
    p = load_profile(str(_write(tmp_path, data, "board.yaml")))
    assert p.name == "my-board" and p.budgets.memory_bytes == 123456


@pytest.mark.parametrize(
    "mutate, field, words",
    [
        (lambda d: d["budgets"].pop("latency_ms"), "budgets.latency_ms", "missing"),
        (lambda d: d.pop("formats"), "formats", "missing"),
        (lambda d: d["budgets"].__setitem__("memory_bytes", -5), "budgets.memory_bytes", "greater than 0"),
        (lambda d: d["budgets"].__setitem__("model_bytes", 0), "budgets.model_bytes", "greater than 0"),
        (lambda d: d.__setitem__("formats", ["tflm-int8", "tflite-int4"]), "formats", "unknown format 'tflite-int4'"),
        (lambda d: d["compute"].__setitem__("efficiency", 1.5), "compute.efficiency", "less than or equal to 1"),
        (lambda d: d["compute"]["peak_macs_per_s"].__setitem__("int4", 1e9), "compute.peak_macs_per_s", "unknown precision"),
        (lambda d: d.__setitem__("budget", {}), "budget", "not a profile field"),
        (lambda d: d.pop("op_limits"), "profile", "op_limits"),
        (lambda d: d.__setitem__("formats", ["tflm-int8", "tflite-fp32"]), "profile", "not in precisions"),
    ],
)
def test_bad_profile_names_the_field(tmp_path, mutate, field, words):
    data = _raw()
    mutate(data)
    with pytest.raises(ProfileError) as err:
        load_profile(str(_write(tmp_path, data)))
    text = str(err.value)
    assert f"{field}:" in text and words in text and "fix the named field" in text


def test_not_a_mapping_and_unknown_name(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ProfileError, match="expected a mapping"):
        load_profile(str(path))
    with pytest.raises(ProfileError, match="built-in profiles: .*cortex-m7"):
        load_profile("no-such-device")


def _report(macs, p50, fmt="tflite-int8"):
    return {"macs": macs, "format": fmt, "latency": {"p50_ms": p50}}


def test_one_report_sets_efficiency_so_the_estimate_matches():
    before = load_profile("raspberry-pi-4")
    cal = fit_latency(before, [_report(20e6, 4.0)])
    assert cal.overhead_after_ms == before.compute.overhead_ms
    assert cal.profile.estimate_latency_ms(20e6) == pytest.approx(4.0, rel=1e-4)
    # latency = 0.3 + 1000 * 20e6 / (9.6e10 * eff) = 4.0  ->  eff = 20e9 / (9.6e10 * 3.7)
    assert cal.efficiency_after == pytest.approx(20e9 / (9.6e10 * 3.7), rel=1e-4)
    assert load_profile("raspberry-pi-4").compute.efficiency == before.compute.efficiency  # built-in untouched


def test_reports_of_different_sizes_also_fit_the_overhead():
    # Synthetic device: 0.4 ms fixed + MACs at 2% of the int8 peak.
    prof = load_profile("raspberry-pi-4")
    rate = prof.compute.peak_macs_per_s["int8"] * 0.02
    reports = [_report(m, 0.4 + 1000 * m / rate) for m in (1e6, 1e7, 1e8)]
    cal = fit_latency(prof, reports)
    assert cal.overhead_after_ms == pytest.approx(0.4, rel=1e-3)
    assert cal.efficiency_after == pytest.approx(0.02, rel=1e-3)


def test_macs_come_from_the_bundle_manifest(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps({
        "student": {"macs": 5e6, "spec": "mobilenetv3:width=0.5,depth=3"}, "input": {"shape": [1, 32, 32, 3]}, "labels": [str(i) for i in range(10)],
    }))
    report = {"format": "tflite-int8", "latency": {"p50_ms": 1.0}}
    cal = fit_latency("raspberry-pi-4", [report], bundles=[str(bundle)])
    assert cal.points[0]["macs"] == 5e6
    with pytest.raises(ProfileError, match="MACs"):
        fit_latency("raspberry-pi-4", [report])
    # linux-x86 also prices activation elements: re-derived from the student spec the manifest records.
    from edgekd.sizing import student_cost
    from edgekd.students import StudentSpec

    cal = fit_latency("linux-x86", [report], bundles=[str(bundle)])
    assert cal.points[0]["activation_elems"] == student_cost(StudentSpec(width=0.5, depth=3), (32, 32, 3), 10).activation_traffic_elems
    assert cal.profile.estimate_latency_ms(5e6, "int8", cal.points[0]["activation_elems"]) == pytest.approx(1.0, rel=1e-3)


def test_activation_term_scales_with_the_efficiency():
    prof = load_profile("linux-x86")
    assert prof.compute.activation_ns_per_elem > 0
    slower = [_report(m, 2 * prof.estimate_latency_ms(m, "int8", a) - prof.compute.overhead_ms) for m, a in [(1e7, 1e6)]]
    slower[0]["activation_elems"] = 1e6
    cal = fit_latency(prof, slower)
    # Twice as slow on everything variable: half the efficiency, twice the time per element.
    assert cal.efficiency_after == pytest.approx(prof.compute.efficiency / 2, rel=1e-3)
    assert cal.profile.compute.activation_ns_per_elem == pytest.approx(2 * prof.compute.activation_ns_per_elem, rel=1e-3)
    with pytest.raises(ProfileError, match="activation elements"):
        fit_latency(prof, [_report(1e7, 1.0)])


def test_impossible_reports_are_refused():
    with pytest.raises(ProfileError, match="peak MAC/s"):
        fit_latency("cortex-m4f", [_report(1e9, 5.0)])  # 1 GMAC in 4 ms on a 128 MMAC/s MCU
    with pytest.raises(ProfileError, match="overhead"):
        fit_latency("cortex-m4f", [_report(1e6, 0.5)])  # below the 1 ms fixed overhead
    with pytest.raises(ProfileError, match="latency.p50_ms"):
        fit_latency("cortex-m4f", [{"macs": 1e6}])


def test_save_profile_round_trips(tmp_path):
    cal = fit_latency("jetson-nano", [_report(50e6, 3.0, fmt="onnx")])
    path = save_profile(cal.profile, tmp_path / "out" / "nano.yaml", "calibrated\nfrom a test")
    assert path.read_text().startswith("# calibrated\n# from a test\n")
    assert load_profile(str(path)) == cal.profile


def test_cli_fit_latency_writes_a_loadable_profile(tmp_path):
    reports = []
    for i, (macs, p50) in enumerate([(2e6, 0.5), (4e7, 3.0)]):
        path = tmp_path / f"r{i}.json"
        path.write_text(json.dumps(_report(macs, p50)))
        reports.append(str(path))
    out = tmp_path / "x86.yaml"
    proc = run_cli("edgekd", "profiles", "fit-latency", "raspberry-pi-4", "--reports", *reports, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "efficiency" in proc.stdout and out.is_file()
    p = load_profile(str(out))
    assert p.name == "raspberry-pi-4" and p.estimate_latency_ms(2e6) == pytest.approx(0.5, rel=0.05) and p.estimate_latency_ms(4e7) == pytest.approx(3.0, rel=0.05)
    bad = run_cli("edgekd", "profiles", "fit-latency", "raspberry-pi-4", "--reports", str(tmp_path / "missing.json"))
    assert bad.returncode == 2 and "cannot read report" in bad.stderr


def test_profiles_do_not_import_sizing():
    # Imports go one way (sizing -> profiles): a profile loads without the cost model, and latency
    # fitting, which needs the cost model, lives on the sizing side.
    import subprocess
    import sys

    code = "import sys, edgekd.profiles; print(sorted(m for m in sys.modules if m.startswith(('edgekd.sizing', 'edgekd.students'))))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_old_command_name_still_runs(tmp_path):
    """`edgekd profiles calibrate` became `fit-latency` ("calibration" is int8 data): scripts using the old name work."""
    proc = run_cli("edgekd", "profiles", "calibrate", "raspberry-pi-4", "--reports", str(tmp_path / "missing.json"))
    assert proc.returncode == 2 and "missing.json" in proc.stderr and "No such command" not in proc.stderr
