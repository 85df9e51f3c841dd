"""Shared by the CIFAR-10 benchmarks: the data (decoded once from the data folder) and the teacher (trained once).

    .venv/bin/python benchmarks/cifar_common.py [--data-dir DIR]   # trains the teacher (TEACHER_MINUTES, default 60)

The data folder is --data-dir, else $EDGEKD_DATA, else ../shared/data beside the repository; it must hold
cifar10_jpeg.npz and prepare_cifar10.py until benchmarks/out/cifar10 holds the decoded cifar10_{train,test}.npz.
The teacher's record, teacher.json, is copied to benchmarks/results/cifar_teacher.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE / "out" / "cifar10"
TEACHER = OUT / "teacher.keras"
TEACHER_INFO = OUT / "teacher.json"
RESULTS = HERE / "results" / "cifar_teacher.json"

from bench_data import CIFAR10_ARCHIVE, add_data_dir_argument, data_dir  # noqa: E402,F401  (scripts add --data-dir from here)


def decoded() -> bool:
    return (OUT / "cifar10_train.npz").exists() and (OUT / "cifar10_test.npz").exists()


def cifar10(data: str | Path | None = None):
    """(train, test) edgekd Datasets; decodes the JPEG archive of the data folder (``data``, else $EDGEKD_DATA, else
    ../shared/data) on first use (about 30 s)."""
    train, test = OUT / "cifar10_train.npz", OUT / "cifar10_test.npz"
    if not decoded():
        folder = data_dir(data, CIFAR10_ARCHIVE)
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(folder / "prepare_cifar10.py"), str(OUT), "--source", str(folder / "cifar10_jpeg.npz")], check=True)
    from edgekd.data import load_dataset

    return load_dataset(str(train)), load_dataset(str(test))


def augment(x, rng):
    """Random 4-pixel-padded crops and horizontal flips, on a batch of [0,1] float images."""
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
    dy, dx = rng.integers(0, 9, n), rng.integers(0, 9, n)
    out = np.stack([padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    return out


def resnet9(width=32, num_classes=10):
    """A ResNet-9 (the DAWNBench CIFAR-10 shape) at a chosen width: the strongest teacher 2 cores train in an hour."""
    import tf_keras as keras
    from tf_keras import layers

    def cbr(x, c):
        x = layers.Conv2D(c, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    inp = keras.Input((32, 32, 3), name="input")
    x = cbr(inp, width * 2)
    x = cbr(x, width * 4)
    x = layers.MaxPooling2D()(x)
    x = layers.Add()([x, cbr(cbr(x, width * 4), width * 4)])
    x = cbr(x, width * 8)
    x = layers.MaxPooling2D()(x)
    x = cbr(x, width * 16)
    x = layers.MaxPooling2D()(x)
    x = layers.Add()([x, cbr(cbr(x, width * 16), width * 16)])
    x = layers.GlobalMaxPooling2D()(x)
    out = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inp, out, name=f"resnet9_w{width}")


def train_with_time_budget(model, x, y, minutes, batch_size=128, peak_lr=0.1, seed=0, log=print, x_val=None, y_val=None):
    """SGD+Nesterov with a one-cycle learning rate driven by wall time, so the run ends at the budget
    on whatever machine it runs, its schedule complete. Returns the number of epochs done."""
    import tensorflow as tf
    import tf_keras as keras

    rng = np.random.default_rng(seed)
    opt = keras.optimizers.SGD(learning_rate=peak_lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            logits = model(xb, training=True)
            loss = loss_fn(tf.one_hot(yb, logits.shape[-1]), logits)
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    budget = minutes * 60.0
    start = time.perf_counter()
    epoch = 0
    while time.perf_counter() - start < budget:
        order = rng.permutation(len(x))
        losses = []
        for i in range(0, len(x) - batch_size + 1, batch_size):
            frac = min(1.0, (time.perf_counter() - start) / budget)
            if frac >= 1.0:
                break
            lr = peak_lr * (frac / 0.15 if frac < 0.15 else 0.5 * (1 + math.cos(math.pi * (frac - 0.15) / 0.85)))
            opt.learning_rate.assign(lr)
            idx = order[i : i + batch_size]
            losses.append(float(step(augment(x[idx], rng), y[idx])))
        epoch += 1
        msg = f"epoch {epoch}: loss {np.mean(losses):.3f}, {(time.perf_counter() - start) / 60:.1f} min"
        if x_val is not None:
            acc = float(np.mean(model.predict(x_val, batch_size=500, verbose=0).argmax(1) == y_val))
            msg += f", test acc {acc:.4f}"
        log(msg)
    return epoch


def teacher(minutes=60.0, width=16, data: str | Path | None = None):
    """The CIFAR-10 teacher: loaded when trained before, else trained now for about ``minutes`` on the data of ``data``
    (see cifar10)."""
    import tf_keras as keras

    if TEACHER.exists() and TEACHER_INFO.exists():
        return keras.models.load_model(TEACHER, compile=False), json.loads(TEACHER_INFO.read_text())
    from edgekd.data import preprocessing_for

    train, test = cifar10(data)
    pre = preprocessing_for(train)
    xtr, xte = pre.apply(train.x), pre.apply(test.x)
    keras.utils.set_random_seed(0)
    model = resnet9(width)
    t0 = time.perf_counter()
    epochs = train_with_time_budget(model, xtr, train.y, minutes, x_val=xte[:2000], y_val=test.y[:2000], log=lambda m: print(m, flush=True))
    acc = float(np.mean(model.predict(xte, batch_size=500, verbose=0).argmax(1) == test.y))
    info = {"arch": model.name, "params": int(model.count_params()), "epochs": epochs, "minutes": (time.perf_counter() - t0) / 60, "test_accuracy": acc}
    model.save(TEACHER)
    TEACHER_INFO.write_text(json.dumps(info, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    shutil.copyfile(TEACHER_INFO, RESULTS)
    return model, info


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train the CIFAR-10 benchmark teacher once (TEACHER_MINUTES, default 60), or show the one trained before.")
    add_data_dir_argument(parser)
    args = parser.parse_args(argv)
    if not decoded():
        data_dir(args.data_dir, CIFAR10_ARCHIVE)  # a missing data set is said before TensorFlow loads
    _, info = teacher(float(os.environ.get("TEACHER_MINUTES", "60")), data=args.data_dir)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
