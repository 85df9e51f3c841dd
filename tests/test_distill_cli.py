"""`edgekd distill` and `edgekd tune` as a user runs them: files written, loadable, version-locked to the teacher."""
import hashlib
import json

import numpy as np
import pytest

from conftest import run_cli


def _env(tmp_path):
    import os

    return {**os.environ, "EDGEKD_CACHE": str(tmp_path / "cache")}


def test_distill_writes_a_loadable_student_and_its_record(teacher_path, digits_split, tmp_path):
    import tf_keras as keras

    train, test = digits_split
    np.savez(tmp_path / "train.npz", x=train.x, y=train.y)
    np.savez(tmp_path / "val.npz", x=test.x, y=test.y)
    out = tmp_path / "run"
    proc = run_cli("edgekd", "distill", "--teacher", str(teacher_path), "--data", str(tmp_path / "train.npz"), "--val", str(tmp_path / "val.npz"),
                   "--student", "mobilenetv3:width=0.5,depth=2", "--method", "kd", "--temperature", "3", "--alpha", "0.8", "--epochs", "6",
                   "--out", str(out), "--quiet", env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "distill.json").read_text())
    assert record["teachers"][0]["fingerprint"] == hashlib.sha256(teacher_path.read_bytes()).hexdigest()
    assert record["config"]["temperature"] == 3.0 and record["config"]["alpha"] == 0.8
    assert [h["epoch"] for h in record["history"]] == list(range(1, 7))
    assert record["seconds_per_epoch"] > 0 and record["teacher_inference_seconds"] > 0
    student = keras.models.load_model(out / "student", compile=False)
    x = (test.x / 16.0).astype(np.float32)
    acc = float(np.mean(student.predict(x, verbose=0).argmax(1) == test.y))
    assert acc == pytest.approx(record["val_accuracy"], abs=1e-6) and acc > 0.7


def test_distill_refuses_a_missing_feature_layer_in_one_line(teacher_path, tmp_path):
    proc = run_cli("edgekd", "distill", "--teacher", str(teacher_path), "--data", "digits", "--student", "mobilenetv3:width=0.5,depth=2",
                   "--method", "at", "--feature-layers", "no_such_layer:conv2d", "--epochs", "1", "--out", str(tmp_path / "o"), env=_env(tmp_path))
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if l.startswith("edgekd")]
    assert len(lines) == 1 and "no layer named 'no_such_layer'" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_distill_with_cached_augmented_views(teacher_path, tmp_path):
    common = ["edgekd", "distill", "--teacher", str(teacher_path), "--data", "digits", "--student", "mobilenetv3:width=0.5,depth=2",
              "--augment", "crop-flip", "--teacher-mode", "cached", "--epochs", "2", "--quiet"]
    proc = run_cli(*common, "--views", "2", "--out", str(tmp_path / "views"), env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    config = json.loads((tmp_path / "views" / "distill.json").read_text())["config"]
    assert config["views"] == 2 and config["augment"] == "crop-flip" and config["teacher_online"] is False
    refused = run_cli(*common, "--method", "crd", "--out", str(tmp_path / "crd"), env=_env(tmp_path))
    assert refused.returncode == 2 and "crd with --augment needs the teacher online" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "crd").exists()


def test_tune_prints_the_grid_and_writes_the_best_setting(teacher_path, tmp_path):
    out = tmp_path / "best.json"
    proc = run_cli("edgekd", "tune", "--teacher", str(teacher_path), "--data", "digits", "--student", "mobilenetv3:width=0.5,depth=2",
                   "--temperatures", "2,6", "--alphas", "0.9", "--epochs", "3", "--out", str(out), "--quiet", env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert {(r["temperature"], r["alpha"]) for r in result["rows"]} == {(2.0, 0.9), (6.0, 0.9)}
    assert result["best"] == max(result["rows"], key=lambda r: r["val_accuracy"])
    assert "best: T=" in proc.stdout


def test_distill_for_a_profile_chooses_the_student_by_the_tournament(teacher_path, digits_split, tmp_path):
    """`edgekd distill --profile` picks as `edgekd build` does: the fitting students ranked on accuracy, the smallest
    that keeps 97% of the teacher, within a quarter of its parameters, all of it recorded."""
    import tf_keras as keras

    from edgekd.profiles import load_profile
    from edgekd.sizing.cost import student_cost
    from edgekd.sizing.search import fit_report
    from edgekd.students import StudentSpec

    train, test = digits_split
    np.savez(tmp_path / "train.npz", x=train.x, y=train.y)
    np.savez(tmp_path / "val.npz", x=test.x, y=test.y)  # 360 samples: enough to rank on
    out = tmp_path / "run"
    proc = run_cli("edgekd", "distill", "--teacher", str(teacher_path), "--data", str(tmp_path / "train.npz"), "--val", str(tmp_path / "val.npz"),
                   "--profile", "cortex-m7", "--epochs", "2", "--time-budget", "900s", "--out", str(out), env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "distill.json").read_text())
    chosen = record["config"]["student"]
    selection = chosen["selection"]
    assert chosen["profile"] == "cortex-m7" and selection["how"] == "tournament"
    specs = [c["spec"] for c in selection["candidates"]]
    assert len(specs) >= 2 and selection["chosen"] in specs and chosen["spec"] == selection["chosen"]
    assert "<- chosen" in proc.stdout  # the ranking table is shown to the user
    teacher_params = keras.models.load_model(teacher_path, compile=False).count_params()
    student = keras.models.load_model(out / "student", compile=False)
    assert student.count_params() <= teacher_params // 4
    spec = StudentSpec.parse(selection["chosen"])
    assert fit_report(load_profile("cortex-m7"), spec, student_cost(spec, train.input_shape, 10)).fits


def test_distill_for_a_profile_on_a_small_split_warns_and_takes_the_largest(teacher_path, tmp_path):
    proc = run_cli("edgekd", "distill", "--teacher", str(teacher_path), "--data", "digits", "--profile", "cortex-m7", "--epochs", "1",
                   "--out", str(tmp_path / "run"), "--quiet", env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "warning: a validation split of 180 samples is too small to rank students" in proc.stdout and "--val" in proc.stdout
    record = json.loads((tmp_path / "run" / "distill.json").read_text())
    assert record["config"]["student"]["selection"]["how"] == "largest fitting"
