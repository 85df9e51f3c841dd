"""The bundles of the ARM64 check (benchmarks/arm64_check.py): the demo's, and a CIFAR-10 int8 student for
raspberry-pi-4, built here in bounded time when cifar_build.py has not made one. Host side: needs edgekd.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from arm64_userland import REPO  # noqa: E402

BIN = Path(sys.executable).parent
DEMO = REPO / "out" / "demo"
CIFAR_BENCH = HERE / "out" / "cifar10" / "builds" / "raspberry-pi-4"
CIFAR_SMALL = HERE / "out" / "arm64" / "cifar-raspberry-pi-4"


def demo_bundles() -> list:
    if not (DEMO / "summary.json").exists():
        print("arm64: no out/demo; running `edgekd demo --out out/demo --quiet` (about 5 min)", flush=True)
        subprocess.run([str(BIN / "edgekd"), "demo", "--out", str(DEMO), "--quiet"], check=True)
    return [DEMO / name for name in ("android-midrange", "jetson-nano", "cortex-m7") if (DEMO / name / "manifest.json").exists()]


def cifar_small(teacher_epochs: int = 3, budget: str = "8m", student: str = "resnet:width=0.75,depth=1") -> Path:
    """A CIFAR-10 int8 student for raspberry-pi-4 in bounded time (about 15 min on 2 busy cores): a small CNN teacher
    trained for ``teacher_epochs`` on 10,000 training images, then `edgekd build` of ``student`` on those and 1,000
    eval images (named, because a tournament inside 8 minutes on busy cores ends at the smallest, 1,750-parameter
    candidate, whose int8 file missed the parity bound). Its accuracy is modest; what the check needs is a real
    CIFAR-10 int8 network for the two machines' kernels to disagree on."""
    if (CIFAR_SMALL / "manifest.json").exists():
        return CIFAR_SMALL
    from cifar_common import cifar10

    from edgekd.data import preprocessing_for

    work = CIFAR_SMALL.parent
    work.mkdir(parents=True, exist_ok=True)
    train, test = cifar10()
    rng = np.random.default_rng(0)
    pick_train = np.sort(rng.permutation(len(train.x))[:10000])
    pick_eval = np.sort(rng.permutation(len(test.x))[:1000])
    xtr, ytr, xev, yev = train.x[pick_train], train.y[pick_train], test.x[pick_eval], test.y[pick_eval]
    np.savez(work / "cifar-train10k.npz", x=xtr, y=ytr)
    np.savez(work / "cifar-eval1k.npz", x=xev, y=yev)
    teacher = work / "cifar-teacher.keras"
    if not teacher.exists():
        import tf_keras as keras
        from tf_keras import layers

        keras.utils.set_random_seed(0)
        pre = preprocessing_for(train)
        inp = keras.Input((32, 32, 3), name="input")
        x = inp
        for width in (32, 64, 128):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            # A short run: moving statistics that follow quickly, or the eval-time network lags the trained one.
            x = layers.BatchNormalization(momentum=0.9)(x)
            x = layers.ReLU()(x)
            x = layers.MaxPooling2D()(x)
        x = layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inp, layers.Dense(10, name="logits")(x), name="cifar_cnn_teacher")
        model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        print("arm64: training a small CIFAR-10 teacher (%d epochs on 10,000 images)" % teacher_epochs, flush=True)
        model.fit(pre.apply(xtr), ytr, epochs=teacher_epochs, batch_size=64, verbose=2)
        acc = float(np.mean(model.predict(pre.apply(xev), verbose=0).argmax(1) == yev))
        print("arm64: teacher accuracy %.2f%% on the 1,000 eval images" % (100 * acc), flush=True)
        model.save(teacher)
    cmd = [str(BIN / "edgekd"), "build", "--teacher", str(teacher), "--data", str(work / "cifar-train10k.npz"),
           "--eval", str(work / "cifar-eval1k.npz"), "--profile", "raspberry-pi-4", "--out", str(CIFAR_SMALL),
           "--time-budget", budget, "--student", student, "--formats", "tflite-int8,tflite-fp32", "--force", "--quiet"]
    print("arm64: " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return CIFAR_SMALL


def cifar_bundle(build: bool) -> Path | None:
    if (CIFAR_BENCH / "manifest.json").exists():
        return CIFAR_BENCH
    return cifar_small() if build or (CIFAR_SMALL / "manifest.json").exists() else None
