"""The compression comparison on digits with tiny models: every row measured, files written, CLI works."""
import json

import numpy as np
import pytest

from conftest import run_cli


@pytest.fixture(scope="module")
def models(digits_split, tmp_path_factory):
    """A teacher (two wide conv layers) and a much smaller student, both trained briefly on digits."""
    import tf_keras as keras
    from tf_keras import layers

    from edgekd.data import preprocessing_for

    train, _ = digits_split
    pre = preprocessing_for(train)
    x = pre.apply(train.x)

    def fit(model, epochs):
        model.compile(keras.optimizers.Adam(2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, train.y, epochs=epochs, batch_size=64, verbose=0)
        return model

    keras.utils.set_random_seed(0)
    teacher = fit(keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(64, 3, padding="same", activation="relu"), layers.Conv2D(128, 3, padding="same", activation="relu"), layers.MaxPooling2D(), layers.Flatten(), layers.Dense(10)], name="teacher"), 15)
    student = fit(keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(16, 3, padding="same", activation="relu"), layers.MaxPooling2D(), layers.Flatten(), layers.Dense(10)], name="student"), 25)
    folder = tmp_path_factory.mktemp("cmp_models")
    teacher.save(folder / "teacher.keras")
    student.save(folder / "student.keras")
    return teacher, student, folder


@pytest.fixture(scope="module")
def result(models, digits_split, tmp_path_factory):
    from edgekd.compare import compare

    teacher, student, _ = models
    train, test = digits_split
    return compare(teacher, student, train, test, tmp_path_factory.mktemp("cmp") / "out", prune_epochs=10, runs=30, progress=False)


def test_rows_are_measured(result):
    rows = {r.name: r for r in result.rows}
    assert list(rows) == ["original teacher", "distilled student", "pruned teacher", "quantized teacher", "distilled student, int8"]
    t, s, p, q = rows["original teacher"], rows["distilled student"], rows["pruned teacher"], rows["quantized teacher"]
    assert t.accuracy_drop == 0.0 and t.accuracy > 0.9
    for r in result.rows:
        assert 0 < r.latency_ms_p50 <= r.latency_ms_p90
        assert 0.0 <= r.accuracy <= 1.0 and r.accuracy_drop == pytest.approx(100 * (t.accuracy - r.accuracy))
        assert r.best_use
    assert s.bytes < t.bytes / 10 and s.params < t.params / 10
    # Pruning zeroes ~80% of the weights: the file keeps its size, its gzip shrinks.
    assert p.sparsity == pytest.approx(0.8, abs=0.02)
    assert p.bytes == pytest.approx(t.bytes, rel=0.01) and p.gzip_bytes < 0.5 * t.gzip_bytes
    assert p.size_bytes == p.gzip_bytes and t.size_bytes == t.bytes
    # int8: a quarter of the weights' bytes, and close to the float accuracy.
    assert q.format == "tflite-int8" and q.bytes < 0.35 * t.bytes
    assert q.accuracy_drop < 2.0


def test_outputs_written(result):
    files = result.files
    data = json.loads(open(files["json"]).read())
    assert [r["name"] for r in data["rows"]][0] == "original teacher"
    assert data["config"]["eval_samples"] == 360 and data["config"]["sparsity_target"] == 0.8
    md = open(files["markdown"]).read().splitlines()
    assert md[0].startswith("| model | format | size | gzip size | latency p50 | accuracy | drop vs teacher")
    assert len(md) == 2 + len(result.rows)
    with open(files["chart"], "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_best_use_follows_the_numbers():
    from edgekd.compare import Row, best_use

    def row(name, fmt, size, lat, drop, method="x"):
        return Row(name, method, fmt, size, size, 1, 0.0, lat, lat, 0.9, drop)

    teacher = row("t", "tflite-fp32", 1_000_000, 10.0, 0.0, "none")
    assert best_use(row("s", "tflite-int8", 50_000, 1.0, 0.4), teacher).startswith("MCUs")
    assert best_use(row("s", "tflite-fp32", 100_000, 2.0, 0.4), teacher).startswith("phones, edge")
    assert best_use(row("p", "tflite-fp32", 300_000, 10.0, 1.0, "pruning"), teacher).startswith("storage/download only")
    assert best_use(row("s", "tflite-fp32", 100_000, 2.0, 6.0), teacher) == "not as is: loses 6.0 pts"


def test_cli_compare_and_existing_out(models, digits_split, tmp_path):
    _, _, folder = models
    train, test = digits_split
    np.savez(tmp_path / "train.npz", x=train.x, y=train.y)
    np.savez(tmp_path / "test.npz", x=test.x, y=test.y)
    out = tmp_path / "cmp"
    args = ["edgekd", "compare", "--teacher", str(folder / "teacher.keras"), "--student", str(folder / "student.keras"),
            "--data", str(tmp_path / "train.npz"), "--eval", str(tmp_path / "test.npz"), "--out", str(out),
            "--prune-epochs", "1", "--runs", "10", "--eval-limit", "100", "--quiet"]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "pruned teacher" in proc.stdout and "quantized teacher" in proc.stdout
    assert (out / "compare.md").is_file() and (out / "compare.png").is_file()
    assert json.loads((out / "compare.json").read_text())["config"]["eval_samples"] == 100
    again = run_cli(*args)
    assert again.returncode == 2 and "already exists" in again.stderr
