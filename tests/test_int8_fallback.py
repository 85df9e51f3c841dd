"""A build ends with a verified bundle: an int8 artifact that misses the parity bounds gets one quantization-aware
fine-tune, and when it still misses it ships marked failed behind a float primary that the runtime runs."""
import numpy as np
import pytest


@pytest.fixture(scope="module")
def trained(digits_split):
    import tf_keras as keras

    from edgekd.data import preprocessing_for
    from edgekd.students import StudentSpec, build_student

    train, test = digits_split
    pre = preprocessing_for(train)
    model = build_student(StudentSpec.parse("mlp:width=0.5,depth=1"), train.input_shape, 10)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(pre.apply(train.x), train.y, epochs=8, batch_size=64, verbose=0)
    return model, pre, train, test


def test_failed_int8_falls_back_to_a_float_primary(trained, tmp_path, monkeypatch):
    from edgekd.convert import parity
    from edgekd.convert.verified import convert_verified

    model, pre, train, test = trained
    # No int8 artifact can agree with its float model on more than 100% of samples: every int8 check fails.
    monkeypatch.setitem(parity.THRESHOLDS, "int8", 1.01)
    calls = []

    def fine_tune():
        calls.append(1)
        return None  # as when the budget has no room left

    result = convert_verified(model, ["tflite-int8"], tmp_path, pre, test.x[:200], test.y[:200], pre.apply(train.x), fine_tune=fine_tune)
    assert len(calls) == 1
    formats = [c.artifact.format for c in result.converted]
    assert formats == ["tflite-fp32", "tflite-int8"]
    assert result.converted[0].artifact.verification == "passed"
    assert result.converted[1].artifact.verification == "failed"
    assert any("ships marked failed" in n for n in result.notes) and any("no time left" in n for n in result.notes)


def test_qat_fine_tune_is_tried_and_its_int8_checked_against_itself(trained, tmp_path, monkeypatch):
    from edgekd.convert import parity
    from edgekd.convert.verified import convert_verified
    from edgekd.distill.qat import quantize_student

    model, pre, train, test = trained
    monkeypatch.setitem(parity.THRESHOLDS, "int8", 1.01)
    result = convert_verified(model, ["tflite-int8", "tflite-fp32"], tmp_path, pre, test.x[:200], test.y[:200], pre.apply(train.x),
                              fine_tune=lambda: quantize_student(model))
    assert [c.artifact.format for c in result.converted] == ["tflite-fp32", "tflite-int8"]
    assert any("still failing after a quantization-aware fine-tune" in n for n in result.notes)


def test_runtime_runs_the_passing_artifact_not_the_failed_one(trained, tmp_path, monkeypatch):
    from edgekd.convert import parity
    from edgekd.convert.verified import convert_verified
    from edgekd_runtime import Manifest, TensorSpec, write_bundle
    from edgekd_runtime.model import select_artifact

    model, pre, train, test = trained
    monkeypatch.setitem(parity.THRESHOLDS, "int8", 1.01)
    result = convert_verified(model, ["tflite-int8"], tmp_path / "s", pre, test.x[:50], test.y[:50], pre.apply(train.x))
    # The profile's engine (litert) has both artifacts; the failed int8 one is listed second and is skipped.
    arts = [c.artifact for c in result.converted]
    m = Manifest(name="x", labels=[str(i) for i in range(10)], input=TensorSpec([1, 8, 8, 1], "float64"), preprocessing=pre,
                 artifacts=list(reversed(arts)), files={}, profile={"engine": "litert"})
    art, engine, _ = select_artifact(m)
    assert art.format == "tflite-fp32" and art.verification == "passed"
    assert select_artifact(m, artifact="tflite-int8")[0].verification == "failed"  # still runnable by name


def test_after_a_fine_tune_every_artifact_computes_the_fine_tuned_student(trained, tmp_path, monkeypatch):
    """The int8 artifact passes only after the QAT fine-tune: the float artifact converted before it is made again
    from the fine-tuned student, so every artifact of the bundle agrees with the one set of host outputs it stores."""
    from edgekd.convert import parity
    from edgekd.convert.verified import convert_verified
    from edgekd.distill.qat import quantize_student
    from edgekd_runtime import Model

    model, pre, train, test = trained
    normal = parity.THRESHOLDS["int8"]
    monkeypatch.setitem(parity.THRESHOLDS, "int8", 1.01)  # the first int8 conversion fails...

    def fine_tune():
        parity.THRESHOLDS["int8"] = normal  # ...and the fine-tuned student's passes
        return quantize_student(model)

    x = test.x[:200]
    result = convert_verified(model, ["tflite-fp32", "tflite-int8"], tmp_path, pre, x, test.y[:200], pre.apply(train.x), fine_tune=fine_tune)
    assert any("after a quantization-aware fine-tune it passes" in n for n in result.notes)
    arts = {c.artifact.format: c for c in result.converted}
    assert all(c.artifact.verification == "passed" for c in arts.values())
    fp32 = arts["tflite-fp32"]
    assert fp32.artifact.settings.get("quantization_aware_fine_tune") is True
    scores = Model(str(fp32.files[fp32.artifact.path]), fp32.artifact, pre).predict(x)
    assert np.mean(scores.argmax(1) == result.reference_logits.argmax(1)) >= 0.995
    assert np.abs(scores - result.reference_logits).max() < 1e-3
