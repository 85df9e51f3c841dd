"""The demo: digits -> a teacher CNN -> students for a phone, a Jetson Nano and a microcontroller,
each converted, bundled, run through edgekd_runtime on this machine, and tabulated."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List

import numpy as np

from .data import Dataset, load_digits, preprocessing_for, split

DEMO_PROFILES = ("android-midrange", "jetson-nano", "cortex-m7")
DEMO_BUDGET = "120s"  # per profile: enough on a loaded 2-core machine for the setup, a tournament and conversion
DEMO_CANDIDATES = 3


def train_teacher(train: Dataset, epochs: int = 40, seed: int = 0, progress: bool = True):
    """A deliberately heavy CNN for 8x8 digits (about 0.4 M parameters): the model we want to shrink."""
    import tf_keras as keras
    from tf_keras import layers

    from .progress import ProgressBar

    keras.utils.set_random_seed(seed)
    pre = preprocessing_for(train)
    model = keras.Sequential(
        [
            keras.Input(train.input_shape, name="input"),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.Conv2D(128, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(256, 3, padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dropout(0.3),
            layers.Dense(128, activation="relu"),
            layers.Dense(train.num_classes, name="logits"),
        ],
        name="teacher_cnn",
    )
    steps = int(np.ceil(len(train) / 64))
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, decay_steps=epochs * steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")])
    model.fit(pre.apply(train.x), train.y, epochs=epochs, batch_size=64, verbose=0, shuffle=True, callbacks=[ProgressBar(epochs, steps, desc="teacher", enabled=progress)])
    return model


def run_demo(out="out/demo", profiles=DEMO_PROFILES, epochs: int = 30, progress: bool = True, force: bool = True,
             time_budget: str = DEMO_BUDGET) -> List[dict]:
    """Run the whole path on scikit-learn's digits; return the summary rows (also written to OUT/summary.json).
    Each profile's build gets ``time_budget``."""
    from edgekd_runtime import Model, profile

    from .convert import convert
    from .pipeline import build
    from .tables import print_table

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train, test = split(load_digits(), 0.2, seed=0)
    teacher = train_teacher(train, progress=progress)
    teacher_path = out / "teacher.keras"
    teacher.save(teacher_path)

    # The teacher's row is measured the same way as the students': fp32 TFLite through the runtime.
    pre = preprocessing_for(train)
    teacher_dir = out / "teacher"
    teacher_dir.mkdir(exist_ok=True)
    t_conv = convert(teacher, "tflite-fp32", teacher_dir)
    t_model = Model(str(teacher_dir / t_conv.artifact.path), t_conv.artifact, pre)
    from edgekd_runtime import latency_stats, time_invocations

    t_acc = float(np.mean(t_model.predict(test.x).argmax(1) == test.y))
    rows = [
        {
            "name": "teacher",
            "profile": "-",
            "format": "tflite-fp32",
            "bytes": int(t_conv.artifact.bytes),
            "params": int(teacher.count_params()),
            "latency_ms_p50": latency_stats(time_invocations(t_model, test.x[:1], runs=200))["p50_ms"],
            "accuracy": t_acc,
            "accuracy_drop": 0.0,
        }
    ]
    for name in profiles:
        result = build(teacher_path, train, test, name, out / name, epochs=epochs, progress=progress, force=force, time_budget=time_budget,
                       candidates=DEMO_CANDIDATES)
        report = profile(str(result.bundle), runs=200)
        with open(out / name / "report.json", "w") as handle:
            json.dump(report, handle, indent=2)
        rows.append(
            {
                "name": f"student {result.spec.family} w{result.spec.width:g} d{result.spec.depth}",
                "profile": name,
                "format": result.primary.format,
                "bytes": int(result.primary.bytes),
                "params": int(result.fit.cost.params),
                "smaller_than_teacher": teacher.count_params() / max(1, result.fit.cost.params),
                "chosen_by": result.extra["selection"].how,
                "latency_ms_p50": report["latency"]["p50_ms"],
                "accuracy": report["accuracy"],
                "accuracy_drop": 100.0 * (t_acc - report["accuracy"]),
                "agreement_with_host": report.get("agreement_with_host"),
                "engine": report["runtime"]["engine"],
            }
        )
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(rows, indent=2))
    os.replace(tmp, out / "summary.json")
    print_table(rows, title="edgekd demo: scikit-learn digits, measured on this machine")
    return rows
