"""What augmentation costs a distillation epoch: teacher online in every step vs fixed labelled views vs scratch.

    .venv/bin/python benchmarks/augment_cost.py [--train-samples 10000] [--epochs 3] [--views 8] [--data-dir DIR]

Three runs in one process, on the same CIFAR-10 images, student, seed and crop-flip augmentation: scratch
(alpha=0, no teacher), kd with the teacher online in every step, and kd with the teacher labelling ``--views``
fixed views of every image once (the soft-label cache is bypassed, so that labelling is paid and timed here).
Seconds per epoch are the median of the epochs after the first (which carries graph tracing). Writes
benchmarks/out/cifar10/augment_cost.json (copied to benchmarks/results/augment_cost.json, see --results) and prints a
Markdown table with the ratios to scratch.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from cifar_methods import STUDENT  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-samples", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--out", default=str(HERE / "out" / "cifar10" / "augment_cost.json"))
    parser.add_argument("--results", default="augment_cost.json", help="copy of --out under benchmarks/results/ (default %(default)s)")
    from bench_data import add_data_dir_argument

    add_data_dir_argument(parser)
    args = parser.parse_args(argv)

    import cifar_common

    from edgekd.data import Dataset
    from edgekd.distill.run import run_distillation

    if not cifar_common.TEACHER.exists():
        sys.exit(f"no trained teacher at {cifar_common.TEACHER}: run `.venv/bin/python benchmarks/cifar_common.py` first (about an hour)")
    train, test = cifar_common.cifar10(args.data_dir)
    order = np.random.default_rng(0).permutation(len(train))[: args.train_samples]
    train = Dataset(train.x[order], train.y[order], train.class_names, train.source)
    test = Dataset(test.x[:2000], test.y[:2000], test.class_names, test.source)
    common = dict(data=train, val=test, student=STUDENT, method="kd", epochs=args.epochs, batch_size=128, augment="crop-flip",
                  views=args.views, cache=False, progress=True, seed=0)
    plans = [("scratch (alpha=0)", dict(alpha=0.0)), ("kd, teacher online", dict(teacher_mode="online")),
             (f"kd, {args.views} cached views", dict(teacher_mode="cached"))]
    rows = []
    for name, plan in plans:
        t0 = time.perf_counter()
        run = run_distillation(str(cifar_common.TEACHER), **common, **plan)
        rows.append({"setting": name, "seconds_per_epoch": run.result.seconds_per_epoch, "teacher_seconds": run.result.teacher_seconds,
                     "minutes": (time.perf_counter() - t0) / 60, "val_accuracy": run.val_accuracy,
                     "epoch_seconds": [h["seconds"] for h in run.result.history]})
        print(f"{name}: {run.result.seconds_per_epoch:.1f} s/epoch", flush=True)
    record = {"train_samples": len(train), "epochs": args.epochs, "views": args.views, "student": STUDENT,
              "machine": f"{os.cpu_count()} cores", "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    (HERE / "results").mkdir(exist_ok=True)
    shutil.copyfile(args.out, HERE / "results" / args.results)
    base = rows[0]["seconds_per_epoch"]
    print("| setting | seconds / epoch | vs scratch | teacher labelling before training (s) | minutes in all |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | {r['seconds_per_epoch']:.1f} | {r['seconds_per_epoch'] / base:.2f}x | {r['teacher_seconds']:.0f} | {r['minutes']:.1f} |")


if __name__ == "__main__":
    main()
