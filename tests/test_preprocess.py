"""--preprocess / preprocess=: one parser, the map recorded in distill.json and the manifest, applied identically by
the runtime, read back by convert, and a teacher that does not match it stopped before training."""
import copy
import json

import numpy as np
import pytest

from edgekd.errors import EdgekdError, TeacherError
from edgekd.preprocess import choose_for_student, option_text, parse
from edgekd_runtime import Bundle, Manifest, Model, Preprocessing, TensorSpec
from edgekd_runtime.errors import BundleFormatError
from edgekd_runtime.manifest import Artifact

# The teacher below is trained on (x - 0.5) / 0.0625: digits' 0..16 become -8..248, the range of raw 8-bit pixels.
# Under auto (x / 16) it sees inputs 256 times too faint and answers at chance.
STD = "mean=0.5,std=0.0625"
FORMS = {
    "auto": None,
    "none": Preprocessing(),
    "scale=1/255": Preprocessing(scale=1 / 255),
    "scale=0.5,offset=-1": Preprocessing(scale=0.5, offset=-1.0),
    STD: Preprocessing(mean=[0.5], std=[0.0625]),
    "mean=123.7,116.3,103.5,std=58.4,57.1,57.4": Preprocessing(mean=[123.7, 116.3, 103.5], std=[58.4, 57.1, 57.4]),
    "scale=1/255,mean=0.485,0.456,0.406,std=0.229,0.224,0.225": Preprocessing(scale=1 / 255, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
}


def _manifest(pre, channels=3):
    spec = TensorSpec([1, 8, 8, channels], "float32")
    art = Artifact(path="model.tflite", format="tflite-fp32", engine="litert", input=spec, output=TensorSpec([1, 10], "float32"))
    return Manifest(name="m", labels=[str(i) for i in range(10)], input=spec, preprocessing=pre, artifacts=[art], files={})


@pytest.mark.parametrize("text", sorted(FORMS))
def test_each_form_parses_and_round_trips_through_the_manifest(text):
    pre = parse(text)
    assert pre == FORMS[text]
    assert parse(option_text(pre)) == pre  # the text recorded in distill.json gives the same map back
    if pre is None:
        return
    read = Manifest.from_dict(json.loads(_manifest(pre).to_json())).preprocessing
    assert read == pre
    x = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3)).astype(np.float32)
    want = x * np.float32(pre.scale) + np.float32(pre.offset)
    if pre.mean is not None:
        want = (want - np.float32(pre.mean)) / np.float32(pre.std)
    np.testing.assert_allclose(read.apply(x), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("text,part", [
    ("minmax", "'minmax'"), ("scale=abc", "scale value 'abc'"), ("scale=1,2", "scale takes one value"), ("mean=1,2,std=1,2,3", "mean has 2 values and std 3"),
    ("std=0", "std values must be positive"), ("mean=1,mean=2", "mean is given twice"), ("gain=2", "unknown key 'gain'"), ("scale=0", "scale=0"),
    ("mean=1,,2", "mean value ''"), ("offset=nan", "not finite"),
])
def test_a_bad_form_is_one_error_naming_the_part_and_the_accepted_forms(text, part):
    with pytest.raises(EdgekdError) as info:
        parse(text)
    message = str(info.value)
    assert info.value.exit_code == 2 and "\n" not in message
    assert message.startswith(f"--preprocess {text!r}") and part in message and "mean=M" in message and "scale=S,offset=O" in message


def test_old_bundles_read_and_a_bundle_without_mean_std_is_written_as_before():
    doc = json.loads(_manifest(Preprocessing(scale=1 / 16)).to_json())
    assert doc["preprocessing"] == {"scale": 1 / 16, "offset": 0.0}  # no null mean/std an older runtime would refuse
    assert Manifest.from_dict(doc).preprocessing == Preprocessing(scale=1 / 16)
    del doc["preprocessing"]
    assert Manifest.from_dict(doc).preprocessing == Preprocessing()
    for bad, named in (({"mean": [1.0, 2.0]}, "preprocessing.mean has 2 value"), ({"mean": [0.0], "std": [0.0]}, "preprocessing.std"),
                       ({"mean": "0.5"}, "preprocessing.mean must be a list"), ({"std": [1.0, "x", 2.0]}, r"preprocessing.std\[1\]")):
        broken = copy.deepcopy(doc)
        broken["preprocessing"] = bad
        with pytest.raises(BundleFormatError, match=named):
            Manifest.from_dict(broken)


@pytest.fixture(scope="module")
def std_teacher(tmp_path_factory, digits_split):
    """A small CNN trained on digits standardized with mean 0.5, std 0.0625 (see STD)."""
    import tf_keras as keras
    from tf_keras import layers

    train, _ = digits_split
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(16, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
                              layers.Flatten(), layers.Dense(32, activation="relu"), layers.Dense(10)])
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit((train.x - 0.5) / 0.0625, train.y, epochs=15, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("std_teacher") / "teacher.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory, digits_split):
    folder = tmp_path_factory.mktemp("digits_npz")
    for name, ds in zip(("train", "test"), digits_split):
        np.savez(folder / f"{name}.npz", x=ds.x, y=ds.y)
    return folder / "train.npz", folder / "test.npz"


def _cli(capsys, *argv):
    from edgekd.cli import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip().splitlines()


def test_a_teacher_near_chance_under_auto_stops_distill_naming_preprocess(std_teacher, digits_files, tmp_path, capsys):
    train, _ = digits_files
    out = tmp_path / "run"
    code, err = _cli(capsys, "distill", "--teacher", std_teacher, "--data", train, "--student", "mlp:width=0.5,depth=1", "--epochs", "1", "--out", out)
    assert code == 2 and err[-1].startswith("edgekd: error: teacher ") and "near chance" in err[-1] and "--preprocess" in err[-1], err
    assert "inputs preprocessed as auto" in err[-1]
    assert not out.exists()


def test_a_teacher_near_chance_stops_build_before_any_training(std_teacher, digits_split, tmp_path):
    from edgekd.pipeline import build

    train, test = digits_split
    with pytest.raises(TeacherError, match="near chance.*--preprocess"):
        build(std_teacher, train, test, "linux-x86", tmp_path / "b", student="mlp:width=0.5,depth=1", formats=["tflite-fp32"], epochs=1, progress=False)
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.student").exists()


def test_the_right_preprocess_distills_records_and_convert_reads_it(std_teacher, digits_files, digits_split, tmp_path, capsys):
    train, test = digits_files
    out = tmp_path / "run"
    code, err = _cli(capsys, "distill", "--teacher", std_teacher, "--data", train, "--student", "mlp:width=0.5,depth=1", "--epochs", "2",
                     "--preprocess", "std=0.0625,mean=0.5", "--out", out)
    assert code == 0, err
    assert any(line.startswith("teacher ") and f"inputs preprocessed as {option_text(parse(STD))}" in line for line in err), err
    record = json.loads((out / "distill.json").read_text())
    assert record["config"]["preprocessing"] == {"option": "mean=0.5,std=0.0625", "scale": 1.0, "offset": 0.0, "mean": [0.5], "std": [0.0625]}
    assert record["teachers"][0]["val_accuracy"] > 0.8

    # convert takes the run's folder and its recorded map, not one re-derived from the calibration data.
    conv = tmp_path / "conv"
    code, err = _cli(capsys, "convert", out, "--to", "tflite-fp32", "--calibration", train, "--eval", test, "--out", conv)
    assert code == 0, err
    manifest = Bundle.open(str(conv)).manifest
    assert manifest.preprocessing == Preprocessing(mean=[0.5], std=[0.0625])
    assert json.loads((conv / "parity.json").read_text())["preprocessing"]["source"] == f"recorded in {out / 'distill.json'}"
    x_raw = digits_split[1].x[:100]
    runtime = Model.from_bundle(Bundle.open(str(conv))).predict(x_raw)
    import tf_keras as keras

    keras_out = keras.models.load_model(str(out / "student"), compile=False).predict((x_raw - 0.5) / 0.0625, verbose=0)
    np.testing.assert_allclose(runtime, keras_out, rtol=1e-4, atol=1e-4)

    # Another map than the recorded one is refused before anything is converted; the same map spelled otherwise is not.
    code, err = _cli(capsys, "convert", out / "student", "--to", "tflite-fp32", "--eval", test, "--out", tmp_path / "conv2", "--preprocess", "auto")
    assert code == 2 and "differs from the preprocessing the student was trained with" in err[-1] and "distill.json" in err[-1], err
    assert not (tmp_path / "conv2").exists()
    assert choose_for_student("mean=0.5,std=1/16", out / "distill.json")[0] == Preprocessing(mean=[0.5], std=[0.0625])


def test_a_build_with_mean_std_runs_on_the_device_as_the_keras_student(std_teacher, digits_split, tmp_path):
    import tf_keras as keras

    from edgekd.pipeline import build

    train, test = digits_split
    result = build(std_teacher, train, test, "linux-x86", tmp_path / "b", student="mlp:width=0.5,depth=1", formats=["tflite-fp32"],
                   epochs=2, alpha=0.5, temperature=4.0, progress=False, preprocess=STD)
    assert result.teacher_accuracy > 0.8
    manifest = Bundle.open(str(result.bundle)).manifest
    assert manifest.preprocessing == Preprocessing(mean=[0.5], std=[0.0625])
    record = json.loads((tmp_path / "b.student" / "distill.json").read_text())
    assert record["config"]["preprocessing"]["option"] == STD
    runtime = Model.from_bundle(Bundle.open(str(result.bundle))).predict(test.x)
    student = keras.models.load_model(str(tmp_path / "b.student" / "student"), compile=False)
    np.testing.assert_allclose(runtime, student.predict((test.x - 0.5) / 0.0625, verbose=0), rtol=1e-4, atol=1e-4)


def test_per_channel_mean_std_bundle_matches_the_keras_student_on_raw_inputs(digits_split, tmp_path):
    import tf_keras as keras
    from tf_keras import layers

    from edgekd.convert.batch import convert_student
    from edgekd.data import Dataset

    train, test = digits_split
    # Three channels on different raw scales, so a map applied to the wrong axis or with one value shows.
    rgb = lambda x: np.concatenate([x, 2 * x + 5, 255 - 8 * x], axis=-1).astype(np.float32)  # noqa: E731
    mean, std = [4.9, 14.8, 216.0], [6.0, 12.0, 48.0]
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(8, 3, activation="relu"), layers.Flatten(), layers.Dense(10)])
    with pytest.raises(EdgekdError, match="mean has 2 values but the samples"):
        convert_student(model, "tflite-fp32", tmp_path / "bad", calibration=Dataset(rgb(train.x), None), preprocess="mean=1,2,std=1")
    pre = Preprocessing(mean=mean, std=std)
    result = convert_student(model, "tflite-fp32", tmp_path / "conv", calibration=Dataset(rgb(train.x), None), eval_data=Dataset(rgb(test.x), test.y),
                             preprocess=pre)
    assert not result.failed
    manifest = Bundle.open(str(tmp_path / "conv")).manifest
    assert manifest.preprocessing == pre
    raw = rgb(test.x[:64])
    want = model.predict((raw - np.float32(mean)) / np.float32(std), verbose=0)
    np.testing.assert_allclose(Model.from_bundle(Bundle.open(str(tmp_path / "conv"))).predict(raw), want, rtol=1e-4, atol=1e-4)
