"""What `convert` and `build` leave in --out: an artifact that fails parity never leads a bundle and a bundle of
failed artifacts alone is not written (an earlier bundle survives), and --force replaces only what edgekd wrote
there (a bundle, a student folder) or an empty folder: a user's file stops the command before anything is deleted."""
import json
import os

import numpy as np
import pytest

from conftest import run_cli
from edgekd.cli import main


@pytest.fixture(scope="module")
def student(digits_split, tmp_path_factory):
    """(student.keras, train.npz, test.npz): a small digits MLP whose float artifacts agree with it."""
    import tf_keras as keras

    from edgekd.data import preprocessing_for
    from edgekd.students import StudentSpec, build_student

    train, test = digits_split
    pre = preprocessing_for(train)
    keras.utils.set_random_seed(0)
    model = build_student(StudentSpec.parse("mlp:width=0.25,depth=1"), train.input_shape, 10)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(pre.apply(train.x), train.y, epochs=5, batch_size=64, verbose=0)
    folder = tmp_path_factory.mktemp("safety")
    model.save(folder / "student.keras")
    np.savez(folder / "train.npz", x=train.x, y=train.y)
    np.savez(folder / "test.npz", x=test.x, y=test.y)
    return folder / "student.keras", folder / "train.npz", folder / "test.npz"


def _convert(student, out, to, *extra):
    path, train, test = student
    return main(["convert", str(path), "--to", to, "--calibration", str(train), "--eval", str(test), "--out", str(out), *extra])


def _tree(folder):
    """Every file under ``folder`` with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failed_artifact_ships_marked_failed_behind_a_passing_primary(student, tmp_path, monkeypatch, capsys):
    from edgekd.convert import parity
    from edgekd_runtime import Bundle, IntegrityError, Model

    # No int8 artifact agrees with its float model on more than 100% of samples: the int8 check always fails.
    monkeypatch.setitem(parity.THRESHOLDS, "int8", 1.01)
    out = tmp_path / "out"
    assert _convert(student, out, "tflite-int8,tflite-fp32") == 5
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(a["format"], a["verification"]) for a in manifest["artifacts"]] == [("tflite-fp32", "passed"), ("tflite-int8", "failed")]
    err = capsys.readouterr().err
    assert "tflite-int8: agrees with the Keras student" in err and "marked failed" in err and "Traceback" not in err
    assert json.loads((out / "parity.json").read_text())["artifacts"]["tflite-int8"]["verification"] == "failed"
    bundle = Bundle.open(str(out))
    try:
        assert Model.from_bundle(bundle).artifact.format == "tflite-fp32"
        with pytest.raises(IntegrityError):
            Model.from_bundle(bundle, artifact="tflite-int8")
    finally:
        bundle.close()


def test_a_conversion_with_no_passing_artifact_writes_nothing(student, tmp_path, monkeypatch, capsys):
    from edgekd.convert import parity

    out = tmp_path / "out"
    assert _convert(student, out, "tflite-fp32") == 0
    before = _tree(out)
    monkeypatch.setitem(parity.THRESHOLDS, "int8", 1.01)
    capsys.readouterr()
    assert _convert(student, out, "tflite-int8", "--force") == 5
    assert _tree(out) == before  # the earlier bundle, byte for byte
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no staging folder left beside it
    err = capsys.readouterr().err
    assert f"nothing written to {out}" in err and "tflite-int8: agrees with the Keras student" in err

    fresh = tmp_path / "fresh"
    assert _convert(student, fresh, "tflite-int8") == 5
    assert not fresh.exists()


def test_convert_force_replaces_only_a_bundle_or_an_empty_folder(student, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("not a bundle")
    assert _convert(student, mine, "tflite-fp32", "--force") == 2
    err = capsys.readouterr().err
    assert str(mine) in err and "notes.txt" in err and "nothing was deleted" in err and "Traceback" not in err
    assert (mine / "notes.txt").read_text() == "not a bundle"

    a_file = tmp_path / "data.npz"
    a_file.write_bytes(b"user data")
    assert _convert(student, a_file, "tflite-fp32", "--force") == 2
    assert a_file.read_bytes() == b"user data"

    out = tmp_path / "out"
    assert _convert(student, out, "tflite-fp32") == 0
    (out / "README.txt").write_text("my notes")  # a file dropped into a bundle is the user's too
    capsys.readouterr()
    assert _convert(student, out, "tflite-fp16", "--force") == 2
    assert "README.txt" in capsys.readouterr().err and (out / "README.txt").exists()
    (out / "README.txt").unlink()
    assert _convert(student, out, "tflite-fp16", "--force") == 0
    assert [a["format"] for a in json.loads((out / "manifest.json").read_text())["artifacts"]] == ["tflite-fp16"]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert _convert(student, empty, "tflite-fp32", "--force") == 0
    assert (empty / "manifest.json").is_file()


def test_build_force_replaces_only_its_bundle_and_student_folder(student, teacher_path, tmp_path, capsys):
    _, train, test = student

    def build(out):
        return main(["build", "--teacher", str(teacher_path), "--data", str(train), "--eval", str(test), "--profile", "linux-x86",
                     "--student", "mlp:width=0.25,depth=1", "--formats", "tflite-fp32", "--epochs", "2", "--time-budget", "60s",
                     "--out", str(out), "--force", "--quiet"])

    out = tmp_path / "b"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert build(out) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "keep.txt" in err and "Traceback" not in err
    assert (out / "keep.txt").read_text() == "mine" and not (tmp_path / "b.student").exists()

    other = tmp_path / "c"
    (tmp_path / "c.student").mkdir()
    (tmp_path / "c.student" / "keep.txt").write_text("mine")
    assert build(other) == 2
    err = capsys.readouterr().err
    assert "c.student" in err and "keep.txt" in err
    assert (tmp_path / "c.student" / "keep.txt").exists() and not other.exists()

    # What an earlier build left: a bundle and a student folder (distill.json + student/) are replaced.
    assert _convert(student, out.with_name("old"), "tflite-fp16") == 0
    (out / "keep.txt").unlink()
    out.rmdir()
    os.rename(out.with_name("old"), out)
    (tmp_path / "b.student" / "student").mkdir(parents=True)
    (tmp_path / "b.student" / "distill.json").write_text("{}")
    capsys.readouterr()
    assert build(out) == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert [a["format"] for a in manifest["artifacts"]] == ["tflite-fp32"] and manifest["name"] == "b"
    assert "selection" in json.loads((tmp_path / "b.student" / "distill.json").read_text())


def test_distill_force_refuses_a_folder_of_user_files_before_training(tmp_path, teacher_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    proc = run_cli("edgekd", "distill", "--teacher", str(teacher_path), "--data", "digits", "--student", "mlp:width=0.25,depth=1",
                   "--epochs", "1", "--out", str(out), "--force", "--quiet")
    assert proc.returncode == 2, proc.stderr
    assert "nothing was deleted" in proc.stderr and "Traceback" not in proc.stderr and "val accuracy" not in proc.stdout
    assert (out / "thesis.tex").read_text() == "years of work"
