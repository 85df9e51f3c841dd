"""Benchmark 1: MNIST in the setup of the Keras knowledge-distillation example, through edgekd's engine.

    .venv/bin/python benchmarks/mnist_kd.py            # about 30-60 min on 2 busy cores (the teacher dominates)
    .venv/bin/python benchmarks/mnist_kd.py --data-dir DIR   # MNIST from DIR (default $EDGEKD_DATA, else ../shared/data)

The teacher and student are the example's shapes; the teacher trains 5 epochs, every student 3, all with
Adam (lr 1e-3) and batch 32 as `fit` defaults to there, T=10 and 0.9 on the teacher term (the example's
alpha=0.1 weighs the *student* term). Three students from the same initial weights:

- scratch: alpha=0, labels only (the baseline);
- distilled: edgekd's cached soft labels (the teacher runs once over the training set before training);
- online: the same Distiller running the teacher on every batch, as the example does.

Then the epoch-cost check: plain tf_keras training of the student and cached KD, one epoch each in
alternation for 5 rounds (the first dropped), wall time and CPU time, so that load from other processes hits both alike.

Writes benchmarks/out/mnist/results.json (copied to benchmarks/results/mnist_kd.json) and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
OUT = HERE / "out" / "mnist"
RESULTS = HERE / "results" / "mnist_kd.json"
TEACHER_EPOCHS, STUDENT_EPOCHS, BATCH, LR, T, ALPHA = 5, 3, 32, 1e-3, 10.0, 0.9


def teacher_model():
    import tf_keras as keras
    from tf_keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(256, (3, 3), strides=(2, 2), padding="same"),
            layers.LeakyReLU(alpha=0.2),
            layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
            layers.Conv2D(512, (3, 3), strides=(2, 2), padding="same"),
            layers.Flatten(),
            layers.Dense(10),
        ],
        name="teacher",
    )


def student_model():
    import tf_keras as keras
    from tf_keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(16, (3, 3), strides=(2, 2), padding="same"),
            layers.LeakyReLU(alpha=0.2),
            layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
            layers.Conv2D(32, (3, 3), strides=(2, 2), padding="same"),
            layers.Flatten(),
            layers.Dense(10),
        ],
        name="student",
    )


def distillation_table(data: Path):
    import tf_keras as keras

    from edgekd.data import load_dataset, preprocessing_for
    from edgekd.distill import distill
    from edgekd.teachers import Teacher, soft_labels

    OUT.mkdir(parents=True, exist_ok=True)
    train, test = load_dataset(str(data / "mnist_train.npz")), load_dataset(str(data / "mnist_test.npz"))
    pre = preprocessing_for(train)
    x, xt = pre.apply(train.x).astype(np.float32), pre.apply(test.x).astype(np.float32)

    def accuracy(model):
        return float(np.mean(model.predict(xt, batch_size=500, verbose=0).argmax(1) == test.y))

    teacher_file = OUT / "teacher.keras"
    if teacher_file.exists():
        teacher = keras.models.load_model(teacher_file, compile=False)
        teacher_epoch_s = json.loads((OUT / "teacher.json").read_text())["seconds_per_epoch"]
    else:
        keras.utils.set_random_seed(0)
        teacher = teacher_model()
        teacher.compile(keras.optimizers.Adam(LR), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        t0 = time.perf_counter()
        teacher.fit(x, train.y, epochs=TEACHER_EPOCHS, batch_size=BATCH, verbose=2)
        teacher_epoch_s = (time.perf_counter() - t0) / TEACHER_EPOCHS
        teacher.save(teacher_file)
        (OUT / "teacher.json").write_text(json.dumps({"seconds_per_epoch": teacher_epoch_s}))
    rows = [{"model": "teacher", "params": int(teacher.count_params()), "accuracy": accuracy(teacher), "seconds_per_epoch": teacher_epoch_s, "epochs": TEACHER_EPOCHS}]

    # The cache's one-off cost: the teacher over the training set once (measured, not read from disk).
    wrapped = Teacher(lambda b: teacher(b, training=False), "mnist-teacher", batch_size=512)
    t0 = time.perf_counter()
    logits = soft_labels(wrapped, x, train.fingerprint(), cache=False)
    cache_s = time.perf_counter() - t0

    keras.utils.set_random_seed(1)
    init = student_model().get_weights()
    common = dict(temperature=T, epochs=STUDENT_EPOCHS, batch_size=BATCH, learning_rate=LR, val=(xt, test.y), progress=False, seed=0)
    runs = [
        ("student from scratch (alpha=0)", dict(alpha=0.0, teacher_logits=logits)),
        ("student distilled, cached soft labels", dict(alpha=ALPHA, teacher_logits=logits)),
        ("student distilled, teacher online each step", dict(alpha=ALPHA, teacher_logits=None, online_teacher=teacher)),
    ]
    for name, kw in runs:
        student = student_model()
        student.set_weights(init)
        t0 = time.perf_counter()
        result = distill(student, x, train.y, **{**common, **kw})
        wall = time.perf_counter() - t0
        row = {"model": name, "params": int(student.count_params()), "accuracy": accuracy(student), "seconds_per_epoch": result.seconds_per_epoch,
               "epoch_seconds": [h["seconds"] for h in result.history], "wall_seconds": wall, "epochs": STUDENT_EPOCHS}
        rows.append(row)
        print(json.dumps(row), flush=True)

    scratch, cached = rows[1]["seconds_per_epoch"], rows[2]["seconds_per_epoch"]
    info = {
        "rows": rows,
        "teacher_cache_seconds": cache_s,
        "kd_epoch_over_scratch_epoch": cached / scratch,
        "config": {"teacher_epochs": TEACHER_EPOCHS, "student_epochs": STUDENT_EPOCHS, "batch_size": BATCH, "learning_rate": LR, "temperature": T, "alpha": ALPHA},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip(),
    }
    (OUT / "results.json").write_text(json.dumps(info, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    shutil.copyfile(OUT / "results.json", RESULTS)
    print("| model | params | test accuracy | seconds / epoch (median of epochs 2-3) |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['params']:,} | {100 * r['accuracy']:.2f}% | {r['seconds_per_epoch']:.1f} |")
    print(f"teacher over the training set once (the cache): {cache_s:.1f} s; cached KD epoch / scratch epoch = {cached / scratch:.2f}")


def interleaved_timing(data: Path, rounds: int = 5):
    """Epoch cost of cached KD against plain tf_keras training of the same student, measured epoch by epoch in
    alternation so that load from other processes on a shared machine hits both alike. The first round (graph
    tracing) is dropped; the medians of the rest are compared. Adds "interleaved_timing" to results.json."""
    import tensorflow as tf
    import tf_keras as keras

    from edgekd.data import load_dataset, preprocessing_for
    from edgekd.distill.distiller import Distiller
    from edgekd.teachers import Teacher, soft_labels

    train = load_dataset(str(data / "mnist_train.npz"))
    x = preprocessing_for(train).apply(train.x).astype(np.float32)
    y = train.y.astype(np.int32)
    teacher = keras.models.load_model(OUT / "teacher.keras", compile=False)
    logits = soft_labels(Teacher(lambda b: teacher(b, training=False), "mnist-teacher", batch_size=512), x, train.fingerprint())
    keras.utils.set_random_seed(1)
    plain = student_model()
    plain.compile(keras.optimizers.Adam(LR), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    kd = Distiller(student_model(), temperature=T, alpha=ALPHA)
    kd.compile(optimizer=keras.optimizers.Adam(LR))
    plain_ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(BATCH).prefetch(tf.data.AUTOTUNE)
    kd_ds = tf.data.Dataset.from_tensor_slices((x, (y, logits))).shuffle(len(x), seed=0).batch(BATCH).prefetch(tf.data.AUTOTUNE)
    # Wall time and this process's CPU time: on a shared machine the CPU seconds an epoch consumes are the
    # steadier measure of its cost; wall time moves with whatever else runs.
    times = {"plain": [], "kd_cached": []}
    cpu = {"plain": [], "kd_cached": []}
    for _ in range(rounds):
        for name, model, ds in (("plain", plain, plain_ds), ("kd_cached", kd, kd_ds)):
            t0, c0 = time.perf_counter(), time.process_time()
            model.fit(ds, epochs=1, verbose=0)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    med = {k: float(np.median(v[1:])) for k, v in times.items()}
    med_cpu = {k: float(np.median(v[1:])) for k, v in cpu.items()}
    info = {"epoch_seconds": times, "epoch_cpu_seconds": cpu, "median_after_first": med, "cpu_median_after_first": med_cpu,
            "kd_over_plain": med["kd_cached"] / med["plain"], "kd_over_plain_cpu": med_cpu["kd_cached"] / med_cpu["plain"]}
    path = OUT / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results["interleaved_timing"] = info
    path.write_text(json.dumps(results, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    shutil.copyfile(path, RESULTS)
    print(f"interleaved epochs (median of rounds 2-{rounds}): plain tf_keras fit {med['plain']:.1f} s wall / {med_cpu['plain']:.1f} s CPU, "
          f"cached KD {med['kd_cached']:.1f} s / {med_cpu['kd_cached']:.1f} s CPU; ratio {info['kd_over_plain']:.2f} wall, {info['kd_over_plain_cpu']:.2f} CPU")


def main(argv=None):
    from bench_data import MNIST, add_data_dir_argument, data_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_dir_argument(parser)
    args = parser.parse_args(argv)
    data = data_dir(args.data_dir, MNIST)
    distillation_table(data)
    interleaved_timing(data)


if __name__ == "__main__":
    main()
