"""Input drift: reference statistics from the host, PSI on the device, `edgekd-runtime monitor`."""
import json
import os

import numpy as np
import pytest

from conftest import run_cli
from edgekd_runtime.drift import bin_edges, drift_report, histogram, psi, reference_statistics


def test_psi_is_zero_for_the_same_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 5000)
    edges = bin_edges(ref)
    expected = histogram(ref, edges)
    assert psi(expected, expected) == 0.0
    same = psi(expected, histogram(rng.normal(0, 1, 5000), edges))
    small = psi(expected, histogram(rng.normal(0.2, 1, 5000), edges))
    large = psi(expected, histogram(rng.normal(1.0, 1, 5000), edges))
    assert same < 0.02 < small < 0.25 < large


def test_values_outside_the_reference_range_get_their_own_bins():
    edges = bin_edges(np.zeros(100))  # a pixel that was always 0 in the reference
    assert histogram(np.zeros(10), edges).tolist() == [0.0, 1.0, 0.0]
    assert histogram(np.full(10, 3.0), edges).tolist() == [0.0, 0.0, 1.0]
    assert histogram(np.full(10, -1.0), edges).tolist() == [1.0, 0.0, 0.0]


def test_large_inputs_are_compared_by_channel_means():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (300, 16, 16, 3)).astype(np.float32)
    scores = rng.normal(0, 1, (300, 4))
    ref = reference_statistics(x, scores)
    assert ref["feature_mode"] == "channels"
    assert [f["name"] for f in ref["features"]] == ["channel[0].mean", "channel[1].mean", "channel[2].mean", "sample.mean", "sample.std"]
    darker = drift_report(ref, x * 0.5, scores)
    assert darker["summary"]["status"] == "shift"
    assert darker["top_features"][0]["mean_shift_sd"] < -3


def test_eval_set_is_stable_and_a_brightness_change_is_flagged(tiny_bundle):
    from edgekd_runtime import Bundle, Model

    with Bundle.open(tiny_bundle["path"]) as bundle:
        ref = bundle.load_drift_reference()
        model = Model.from_bundle(bundle, artifact="tflite-fp32")
        x = tiny_bundle["x"]
        same = drift_report(ref, x, model.predict(x))
        rng = np.random.default_rng(0)
        sample = x[rng.choice(len(x), 200, replace=False)]
        resampled = drift_report(ref, sample, model.predict(sample))
        washed = np.clip(sample * 0.5 + 6.0, 0, 16).astype(np.float32)
        shifted = drift_report(ref, washed, model.predict(washed))
    assert same["summary"]["input_psi_mean"] < 1e-9 and same["summary"]["status"] == "stable"
    assert resampled["summary"]["status"] == "stable"
    s = shifted["summary"]
    assert s["status"] == "shift" and s["input_psi_mean"] > 0.25 and s["features_shifted"] > 10
    assert s["confidence_mean"] < s["reference_confidence_mean"]
    assert len(shifted["features"]["psi"]) == len(ref["features"]) == 66


def test_monitor_cli_on_npz_and_on_a_folder(tiny_bundle, tmp_path):
    x = tiny_bundle["x"]
    np.savez(tmp_path / "field.npz", x=np.clip(x * 0.5 + 6.0, 0, 16).astype(np.float32))
    out = tmp_path / "m.json"
    proc = run_cli("edgekd-runtime", "monitor", tiny_bundle["path"], "--inputs", str(tmp_path / "field.npz"), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("drift     shift:")
    report = json.loads(out.read_text())
    assert report["kind"] == "monitor" and report["drift"]["samples"] == len(x)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(120):
        np.save(folder / ("%04d.npy" % i), x[i])  # one sample per file, as a camera loop would write them
    proc = run_cli("edgekd-runtime", "monitor", tiny_bundle["path"], "--inputs", str(folder), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["drift"]["summary"]["status"] == "stable"


def test_profile_with_field_inputs_adds_drift(tiny_bundle, tmp_path):
    np.save(tmp_path / "few.npy", tiny_bundle["x"][:20])
    out = tmp_path / "p.json"
    proc = run_cli("edgekd-runtime", "profile", tiny_bundle["path"], "--runs", "5", "--inputs", str(tmp_path / "few.npy"), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["drift"]["samples"] == 20 and "sampling noise" in report["drift"]["note"]


def test_bundle_without_reference_cannot_be_monitored(tiny_bundle, tmp_path):
    from test_runtime_bundles import copy_bundle, rewrite_manifest

    b = copy_bundle(tiny_bundle, tmp_path)
    os.remove(b / "drift_reference.json")
    rewrite_manifest(b, lambda m: m["files"].pop("drift_reference.json"))
    np.save(tmp_path / "x.npy", tiny_bundle["x"][:10])
    proc = run_cli("edgekd-runtime", "monitor", str(b), "--inputs", str(tmp_path / "x.npy"))
    assert proc.returncode == 2 and "no drift reference" in proc.stderr


def test_pipeline_build_writes_the_drift_reference(phone_build):
    from edgekd_runtime import Bundle, Model

    with Bundle.open(str(phone_build.bundle)) as bundle:
        ref = bundle.load_drift_reference()
        assert "drift_reference.json" in bundle.manifest.files
        x, _, host = bundle.load_eval()
        assert ref["samples"] == len(x) and ref["feature_mode"] == "values"
        model = Model.from_bundle(bundle)
        report = drift_report(ref, x, model.predict(x))
    assert report["summary"]["input_psi_mean"] < 1e-9
    # The device's int8 outputs against the host's Keras outputs: close, not identical.
    assert report["summary"]["confidence_psi"] < 0.1
