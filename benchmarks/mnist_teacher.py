"""The MNIST teacher for the build benchmark: a small BatchNorm CNN trained once on 2 CPU cores.

    .venv/bin/python benchmarks/mnist_teacher.py                 # 5-12 min on 2 cores, 4 epochs at most
    .venv/bin/python benchmarks/mnist_teacher.py --budget-min 6  # fewer epochs when the cores are busy

Reads mnist_{train,test}.npz (x uint8 (N, 28, 28), y int64) from --data-dir (default $EDGEKD_DATA, else
../shared/data beside the repository) and feeds the model exactly what an edgekd student gets from that file:
samples of shape (28, 28, 1) (edgekd.data adds the channel axis), scaled x / 255 into [0, 1]
(edgekd.data.preprocessing_for on uint8). The model outputs logits (no softmax).

Conv 32 5x5, max-pool, conv 64 5x5, max-pool (each conv unpadded + BatchNorm + ReLU), dense 256, dropout 0.3,
dense 10 (317,354 params); Adam 2e-3 with cosine decay over the planned epochs, batch 128, no augmentation, seed 0.
(A 3x3 conv 32-32-64-64 stack with padding, 468k params, took 264 s per epoch on the shared cores and reached
98.81% in the 2 epochs 12 minutes allowed; this one costs about a third as much.) Epochs run one at a time: an
epoch that would end past --budget-min (judged by the mean epoch so far) is not started.

Writes benchmarks/out/mnist_build/teacher.keras (tf_keras, .keras format, checked to reload) and teacher.json
(params, epochs, training seconds, test accuracy, date, machine; copied to benchmarks/results/mnist_teacher.json), and
prints a one-line summary.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE / "out" / "mnist_build"

from bench_data import MNIST, add_data_dir_argument, data_dir  # noqa: E402


def load(data: Path, name: str):
    with np.load(data / f"mnist_{name}.npz") as d:  # the same layout and scaling as edgekd.data gives the student
        return (d["x"][..., None].astype(np.float32) / np.float32(255.0)), d["y"].astype(np.int64).reshape(-1)


def teacher_model():
    import tf_keras as keras
    from tf_keras import layers

    def cbr(x, c):
        x = layers.Conv2D(c, 5, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    inp = keras.Input((28, 28, 1), name="image")
    x = layers.MaxPooling2D()(cbr(inp, 32))  # 24x24 -> 12x12
    x = layers.MaxPooling2D()(cbr(x, 64))  # 8x8 -> 4x4
    x = layers.Dense(256, activation="relu")(layers.Flatten()(x))
    out = layers.Dense(10, name="logits")(layers.Dropout(0.3)(x))
    return keras.Model(inp, out, name="mnist_teacher")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-min", type=float, default=12.0, help="wall-time budget for training, minutes (default 12)")
    parser.add_argument("--epochs", type=int, default=4, help="most epochs to train (default 4)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT.relative_to(HERE.parent)})")
    parser.add_argument("--results", default="mnist_teacher.json", help="copy of teacher.json under benchmarks/results/ (default %(default)s)")
    add_data_dir_argument(parser)
    args = parser.parse_args(argv)
    data = data_dir(args.data_dir, MNIST)

    import tf_keras as keras

    x, y = load(data, "train")
    xt, yt = load(data, "test")
    keras.utils.set_random_seed(0)
    model = teacher_model()
    steps = -(-len(x) // args.batch)
    lr = keras.optimizers.schedules.CosineDecay(2e-3, decay_steps=steps * args.epochs)
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    print(f"teacher: {model.count_params():,} params; at most {args.epochs} epochs in {args.budget_min:g} min", flush=True)

    budget, epoch_s, t0 = args.budget_min * 60.0, [], time.perf_counter()
    for epoch in range(args.epochs):
        if epoch_s and (time.perf_counter() - t0) + float(np.mean(epoch_s)) > budget:
            print(f"stopping after {epoch} epochs: another would overrun the {args.budget_min:g}-min budget", flush=True)
            break
        start = time.perf_counter()
        model.fit(x, y, batch_size=args.batch, epochs=epoch + 1, initial_epoch=epoch, shuffle=True,
                  verbose=1 if sys.stdout.isatty() else 2)
        epoch_s.append(time.perf_counter() - start)
        print(f"epoch {epoch + 1}: {epoch_s[-1]:.0f} s, {time.perf_counter() - t0:.0f} s so far", flush=True)
    train_s = time.perf_counter() - t0

    logits = model.predict(xt, batch_size=500, verbose=0)
    accuracy = float(np.mean(logits.argmax(1) == yt))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "teacher.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, compile=False)
    same = np.allclose(reloaded.predict(xt[:500], verbose=0), logits[:500], atol=1e-4)
    if not same:
        raise SystemExit(f"{path} does not reload to the same logits")
    info = {
        "params": int(model.count_params()),
        "epochs": len(epoch_s),
        "batch": args.batch,
        "train_seconds": round(train_s, 1),
        "seconds_per_epoch": round(train_s / len(epoch_s), 1),
        "epoch_seconds": [round(s, 1) for s in epoch_s],
        "budget_min": args.budget_min,
        "test_accuracy": accuracy,
        "test_samples": int(len(yt)),
        "input": "x[..., None] / 255 (float32, (28, 28, 1)); outputs logits",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
    }
    (args.out / "teacher.json").write_text(json.dumps(info, indent=2) + "\n")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / args.results).write_text(json.dumps(info, indent=2) + "\n")
    print(f"teacher {path}: {info['params']:,} params, {info['epochs']} epochs in {train_s / 60:.1f} min, test accuracy {accuracy:.2%}", flush=True)


if __name__ == "__main__":
    main()
