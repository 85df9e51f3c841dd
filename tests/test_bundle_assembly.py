"""One bundle assembler for build and convert: a bundle written by `edgekd convert` carries what the device
tools need, so `edgekd-runtime monitor` checks drift on it and `edgekd profiles fit-latency` fits a profile to a
latency measured on it, as they do for a bundle from `edgekd build`."""
import json

import numpy as np
import pytest

from conftest import run_cli


@pytest.fixture(scope="module")
def student_files(digits_split, tmp_path_factory):
    """A small digits CNN trained for a few seconds, saved as a user would hand it to `edgekd convert`, and the data."""
    import tf_keras as keras
    from tf_keras import layers

    from edgekd.data import preprocessing_for

    train, test = digits_split
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1), name="input"), layers.Conv2D(8, 3, padding="same", activation="relu"),
                              layers.Flatten(), layers.Dense(10, name="logits")])
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(preprocessing_for(train).apply(train.x), train.y, epochs=5, batch_size=64, verbose=0)
    root = tmp_path_factory.mktemp("assembly")
    model.save(root / "student.keras")
    np.savez(root / "train.npz", x=train.x, y=train.y)
    np.savez(root / "test.npz", x=test.x, y=test.y)
    return root, model


@pytest.fixture(scope="module")
def convert_bundle(student_files):
    root, _ = student_files
    out = root / "bundle"
    proc = run_cli("edgekd", "convert", str(root / "student.keras"), "--to", "tflite-fp32", "--out", str(out),
                   "--calibration", str(root / "train.npz"), "--eval", str(root / "test.npz"), "--profile", "linux-x86")
    assert proc.returncode == 0, proc.stderr
    return out


def test_convert_bundle_carries_drift_reference_macs_and_reference_outputs(convert_bundle, student_files, digits_split):
    from edgekd.sizing import model_cost
    from edgekd_runtime import Bundle

    _, model = student_files
    _, test = digits_split
    with Bundle.open(str(convert_bundle)) as bundle:
        manifest = bundle.manifest
        assert bundle.load_drift_reference()["samples"] == len(test)
        eval_set = np.load(bundle.path("eval.npz"))
        assert eval_set["x"].shape == test.x.shape and (eval_set["y"] == test.y).all()
    cost = model_cost(model)
    assert manifest.student["macs"] == cost.macs > 0
    assert manifest.student["activation_elems"] == cost.activation_traffic_elems > 0
    assert manifest.student["params"] == model.count_params()
    assert manifest.reference["indices"] == list(range(8))
    np.testing.assert_allclose(manifest.reference["outputs"], eval_set["host_outputs"][:8], atol=1e-5)
    assert manifest.profile["name"] == "linux-x86"  # from `edgekd convert --profile`


def test_convert_bundle_can_be_monitored(convert_bundle, digits_split, tmp_path):
    _, test = digits_split
    np.savez(tmp_path / "field.npz", x=np.clip(test.x * 0.5 + 6.0, 0, 16).astype(np.float32))
    out = tmp_path / "monitor.json"
    proc = run_cli("edgekd-runtime", "monitor", str(convert_bundle), "--inputs", str(tmp_path / "field.npz"), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["kind"] == "monitor" and report["drift"]["samples"] == len(test)
    assert report["drift"]["summary"]["status"] == "shift"


def test_convert_bundle_fits_a_profiles_latency(convert_bundle, tmp_path):
    from edgekd.profiles import load_profile

    report_path = tmp_path / "profile.json"
    proc = run_cli("edgekd-runtime", "profile", str(convert_bundle), "--runs", "5", "--json", str(report_path))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(report_path.read_text())
    manifest = json.loads((convert_bundle / "manifest.json").read_text())
    macs, acts = manifest["student"]["macs"], manifest["student"]["activation_elems"]
    # This host is not the device the profile describes: stand in a device twice as slow as the profile predicts,
    # so that the fit is the same on any host. linux-x86 also prices activation elements, which only the bundle gives.
    prof = load_profile("linux-x86")
    report["latency"]["p50_ms"] = prof.compute.overhead_ms + 2 * prof.variable_latency_ms(macs, "fp32", acts)
    report_path.write_text(json.dumps(report))
    out = tmp_path / "x86.yaml"
    proc = run_cli("edgekd", "profiles", "fit-latency", "linux-x86", "--reports", str(report_path), "--bundle", str(convert_bundle), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    fitted = load_profile(str(out))
    assert fitted.compute.efficiency == pytest.approx(prof.compute.efficiency / 2, rel=1e-3)
    assert fitted.estimate_latency_ms(macs, "fp32", acts) == pytest.approx(report["latency"]["p50_ms"], rel=1e-3)


def test_convert_for_a_profile_records_it(student_files, digits_split, tmp_path):
    from edgekd.convert.batch import convert_student
    from edgekd_runtime import Bundle

    _, model = student_files
    train, test = digits_split
    result = convert_student(model, "tflite-fp32", tmp_path / "phone", calibration=train, eval_data=test, profile="android-midrange")
    with Bundle.open(str(result.out)) as bundle:
        assert bundle.manifest.profile == {"name": "android-midrange", "device_class": "phone", "engine": "litert"}
