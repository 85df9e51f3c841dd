"""A short real run of every method on digits, checking what a user would: the student learns (chance is 10%),
and each method's own promise (features paired, assistant sized between, int8 model, sparsity reached...)."""
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from edgekd.distill.run import run_distillation
from edgekd.errors import EdgekdError

STUDENT = "mobilenetv3:width=0.5,depth=2"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    # One folder holds both caches: the soft labels and the feature targets (fitnet, at, crd) beside them.
    import edgekd.teachers.cache as teachers

    monkeypatch.setattr(teachers, "CACHE_DIR", tmp_path_factory.getbasetemp() / "edgekd-cache")


def _run(teacher_path, digits_split, **kw):
    train, test = digits_split
    kw.setdefault("student", STUDENT)
    kw.setdefault("epochs", 8)
    return run_distillation(kw.pop("teachers", teacher_path), train, val=test, progress=False, **kw)


def test_kd_learns_and_alpha_zero_is_the_label_baseline(teacher_path, digits_split):
    kd = _run(teacher_path, digits_split, method="kd")
    assert kd.val_accuracy > 0.8
    assert kd.config["teacher_online"] is False and kd.result.teacher_seconds > 0
    assert len(kd.result.history) == 8 and all("val_acc" in h for h in kd.result.history)
    # alpha=0 trains on labels alone: the teacher never runs, even with augmentation (which otherwise needs it online).
    scratch = _run(teacher_path, digits_split, method="kd", alpha=0.0, augment="crop", epochs=4)
    assert scratch.result.teacher_seconds == 0.0 and scratch.config["teacher_online"] is False
    assert scratch.config["augment"] == "crop" and scratch.val_accuracy > 0.5


def test_attention_transfer_pairs_layers_by_spatial_size(teacher_path, digits_split):
    run = _run(teacher_path, digits_split, method="at")
    pairs = run.config["feature_layers"]
    assert pairs and run.config["teacher_targets"] == "cached"
    import tf_keras as keras

    teacher = keras.models.load_model(teacher_path, compile=False)
    for s_name, t_name in pairs:
        assert run.student.get_layer(s_name).output.shape[1:3] == teacher.get_layer(t_name).output.shape[1:3]
    assert run.val_accuracy > 0.5
    from edgekd.teachers import cache

    # The feature targets are kept beside the soft labels, in the one cache folder a user (or this test) redirects.
    assert list((cache.CACHE_DIR / "features").glob("*-at-*.npz"))


def test_fitnet_with_named_layers_and_an_adapter(teacher_path, digits_split):
    import tf_keras as keras

    # block1_project_bn is 4x4 with 16 channels here; the teacher's last convolution is 4x4 with 256:
    # a learned 1x1 adapter bridges the widths.
    teacher = keras.models.load_model(teacher_path, compile=False)
    t_name = [l.name for l in teacher.layers if isinstance(l, keras.layers.Conv2D) and l.filters == 256][0]
    run = _run(teacher_path, digits_split, method="fitnet", feature_layers=[("block1_project_bn", t_name)], beta=10.0)
    assert run.config["feature_layers"] == [["block1_project_bn", t_name]]
    assert run.val_accuracy > 0.5
    with pytest.raises(EdgekdError, match="no layer named 'nope'"):
        _run(teacher_path, digits_split, method="fitnet", feature_layers=[("nope", t_name)])


def test_crd_trains_with_its_memory_bank(teacher_path, digits_split):
    run = _run(teacher_path, digits_split, method="crd")
    assert run.config["crd"]["negatives"] == 1024
    assert run.val_accuracy > 0.5


def test_multi_teacher_with_specialist_callables(teacher_path, digits_split):
    """A generalist and two specialists (Python callables that see only their classes), weights from accuracy."""
    import tf_keras as keras

    model = keras.models.load_model(teacher_path, compile=False)
    low = lambda x: model(x, training=False).numpy()[:, :5]  # noqa: E731
    high = lambda x: model(x, training=False).numpy()[:, 5:]  # noqa: E731
    run = _run(teacher_path, digits_split, method="multi", teachers=[teacher_path, low, high], teacher_classes=[None, list(range(5)), list(range(5, 10))])
    weights = run.config["teacher_weights"]
    assert run.config["teacher_weights_from"] == "validation accuracy"
    assert sum(weights) == pytest.approx(1.0) and all(w > 0.25 for w in weights)
    assert [t["kind"] for t in run.teachers] == ["tf_keras", "callable", "callable"]
    assert run.val_accuracy > 0.7


def test_progressive_inserts_an_assistant_sized_between(teacher_path, digits_split):
    run = _run(teacher_path, digits_split, method="progressive", max_gap=50.0, epochs=5)
    (assistant,) = run.extra["assistants"]
    teacher_params = run.teachers[0]["params"]
    assert run.student.count_params() < assistant["params"] < teacher_params
    assert assistant["val_accuracy"] > 0.7 and run.val_accuracy > 0.5


def test_born_again_copies_the_teacher_architecture(teacher_path, digits_split):
    run = _run(teacher_path, digits_split, method="self", student=None, generations=2, epochs=5)
    assert run.student.count_params() == run.teachers[0]["params"]
    assert [g["generation"] for g in run.extra["generations"]] == [1, 2]
    assert run.val_accuracy > 0.5


def test_qat_gives_an_int8_model_that_still_classifies(teacher_path, digits_split):
    from ai_edge_litert.interpreter import Interpreter

    from edgekd.convert.tflite import tflite_bytes

    run = _run(teacher_path, digits_split, method="kd", qat=True, epochs=6)
    assert any(type(l).__name__.startswith("Quantize") for l in run.student.layers)
    # The same int8 conversion `edgekd convert` does, float inputs and outputs to feed the test images as they are.
    interp = Interpreter(model_content=tflite_bytes(run.student, "tflite-int8", io="float"))
    interp.allocate_tensors()
    assert any(d["dtype"] == np.int8 for d in interp.get_tensor_details())  # int8 weights and activations
    _, test = digits_split
    x = (test.x / 16.0).astype(np.float32)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    preds = []
    for i in range(len(x)):
        interp.set_tensor(inp["index"], x[i : i + 1])
        interp.invoke()
        preds.append(int(interp.get_tensor(out["index"]).argmax()))
    assert np.mean(np.array(preds) == test.y) > 0.5


def test_pruning_reaches_the_target_sparsity_and_is_stripped(teacher_path, digits_split):
    run = _run(teacher_path, digits_split, method="kd", prune=0.5)
    assert run.extra["kernel_sparsity"] == pytest.approx(0.5, abs=0.02)
    assert not any("prune" in type(l).__name__.lower() for l in run.student.layers)
    assert run.val_accuracy > 0.5


def test_augmentation_runs_the_teacher_online_by_default(teacher_path, digits_split):
    run = _run(teacher_path, digits_split, method="kd", augment="crop", epochs=6)
    assert run.config["teacher_online"] is True and run.config["views"] is None and run.val_accuracy > 0.5


def test_cached_augmentation_labels_fixed_views_once(teacher_path, digits_split):
    first = _run(teacher_path, digits_split, method="kd", augment="crop-flip", teacher_mode="cached", views=3, epochs=6)
    assert first.config["teacher_online"] is False and first.config["views"] == 3 and first.val_accuracy > 0.5
    assert first.result.config["augment"] is True and first.result.config["views"] == 3
    again = _run(teacher_path, digits_split, method="kd", augment="crop-flip", teacher_mode="cached", views=3, epochs=1)
    # The second run finds all three views' labels in the soft-label cache instead of running the teacher on them.
    assert again.result.teacher_seconds < first.result.teacher_seconds / 2
    with pytest.raises(EdgekdError, match="fitnet with --augment needs the teacher online"):
        _run(teacher_path, digits_split, method="fitnet", augment="crop", teacher_mode="cached")
    with pytest.raises(EdgekdError, match="--views must be at least 1"):
        _run(teacher_path, digits_split, method="kd", augment="crop", teacher_mode="cached", views=0)


def test_unlabeled_transfer_data_is_labelled_by_the_teacher(teacher_path, digits_split):
    from edgekd.data import Dataset

    train, test = digits_split
    few, rest = train.subset(np.arange(100)), Dataset(train.x[100:], None, source="transfer")
    run = run_distillation(teacher_path, few, val=test, unlabeled=rest, student=STUDENT, epochs=8, alpha=0.9, progress=False)
    assert run.config["train_samples"] == 100 and run.config["unlabeled_samples"] == len(train) - 100
    assert run.val_accuracy > 0.7


def test_mixed_bfloat16_and_a_mirrored_strategy(teacher_path, digits_split):
    from edgekd.distill.precision import cpu_supports_bf16

    if cpu_supports_bf16() or tf.config.list_physical_devices("GPU"):
        run = _run(teacher_path, digits_split, precision="mixed_bfloat16", epochs=5)
        assert run.config["precision"] == "mixed_bfloat16"
        assert all(w.dtype == np.float32 for w in run.student.get_weights())  # shipped as float32
        assert run.val_accuracy > 0.5
    else:
        with pytest.raises(EdgekdError, match="bf16 instructions"):
            _run(teacher_path, digits_split, precision="mixed_bfloat16")
    run = _run(teacher_path, digits_split, strategy="mirrored", epochs=5)
    assert run.config["strategy"] == "MirroredStrategy" and run.val_accuracy > 0.5


def test_bad_inputs_fail_before_training(teacher_path, digits_split):
    from edgekd.data import Dataset

    train, test = digits_split
    bad = Dataset(train.x.astype(np.float32).copy(), train.y, source="nan")
    bad.x[3, 0, 0, 0] = np.nan
    with pytest.raises(EdgekdError, match="NaN or Inf"):
        run_distillation(teacher_path, bad, val=test, student=STUDENT, epochs=1, progress=False)
    with pytest.raises(EdgekdError, match="empty"):
        run_distillation(teacher_path, train.subset(np.arange(0)), val=test, student=STUDENT, epochs=1, progress=False)
    five = Dataset(train.x, train.y % 5, source="five classes")
    with pytest.raises(EdgekdError, match="outputs 10 scores but the data's 5 classes"):
        run_distillation(teacher_path, five, val=Dataset(test.x, test.y % 5), student=STUDENT, epochs=1, progress=False)
    with pytest.raises(EdgekdError, match="at least two teachers"):
        run_distillation(teacher_path, train, val=test, method="multi", student=STUDENT, epochs=1, progress=False)


def test_student_from_a_model_file_is_trained_afresh(teacher_path, digits_split, tmp_path):
    import tf_keras as keras

    template = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)])
    template.save(tmp_path / "arch.keras")
    run = _run(teacher_path, digits_split, student=str(tmp_path / "arch.keras"), epochs=6)
    assert run.student.count_params() == template.count_params()
    assert not np.allclose(run.student.get_weights()[0], template.get_weights()[0])
    assert run.val_accuracy > 0.7
    wrong = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    wrong.save(tmp_path / "wrong.keras")
    with pytest.raises(EdgekdError, match="3 classes"):
        _run(teacher_path, digits_split, student=str(tmp_path / "wrong.keras"), epochs=1)
