"""Benchmark 2: every distillation method on CIFAR-10 against the same student trained from scratch.

    .venv/bin/python benchmarks/cifar_methods.py [--epochs 5] [--train-samples 50000] [--methods scratch,kd,at,...] [--data-dir DIR]

The teacher is the ResNet-9 that benchmarks/cifar_common.py trains once (and reuses). The student is
resnet:width=0.625,depth=3, the same ResNet-9 shape at 5/16 of its width (163,102 parameters, under 1/10
of the teacher's 1,648,362). Every method trains it for the same
number of epochs with the same optimizer, seed and data (by default no augmentation, so the teacher's outputs are
cached once and shared; ``--augment crop-flip`` runs it online instead, and adding ``--teacher-mode cached``
has it label ``--views`` fixed crops of every image once), and is scored on the 10,000 test images:

- scratch: alpha=0, labels only;            - kd: Hinton KD, T=4, alpha=0.7;
- at: attention transfer on every spatial size the two share, plus KD;
- fitnet: one hint at the smallest shared size (4x4) through the regressor (1x1 conv + batch norm), plus KD;
- crd: contrastive representation distillation, plus KD;
- multi: two teachers, the ResNet-9 and the same network looking at mirrored images (a different function of
  the input with its own accuracy), weighted by validation accuracy;
- progressive: through an automatically sized teacher assistant (the teacher/student gap exceeds 10x);
- qat-kd: KD with the student wrapped for quantization-aware training (an int8-ready model).

Results go to benchmarks/out/cifar10/methods.json after every method (a cut-short run keeps what finished), with a
copy in benchmarks/results/ (cifar_ + the --out file's name: cifar_methods.json by default; see --results),
each trained student to benchmarks/out/cifar10/students/METHOD.keras (compare_cifar.py reuses the kd one),
and a Markdown table is printed at the end.
"""
from __future__ import annotations

import argparse
import hashlib
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

STUDENT = "resnet:width=0.625,depth=3"
METHODS = ["scratch", "kd", "at", "fitnet", "crd", "qat-kd", "multi", "progressive"]  # progressive, the longest, last


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-samples", type=int, default=50000, help="first N training images (a stratified shuffle is applied first)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--augment", default="none", choices=["none", "crop", "crop-flip"],
                        help="random crops/flips each step; the teacher then runs online (scratch, kd, at, fitnet, crd, qat-kd only)")
    parser.add_argument("--teacher-mode", default="auto", choices=["auto", "online", "cached"],
                        help="with --augment: cached labels --views fixed crops per image once instead of running the teacher every step (scratch, kd, qat-kd, progressive)")
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--out", default=str(HERE / "out" / "cifar10" / "methods.json"))
    parser.add_argument("--append", action="store_true", help="add to the rows already in --out (same teacher, student and config), e.g. to finish a cut-short run")
    parser.add_argument("--results", default=None, help="copy of --out under benchmarks/results/ (default: cifar_ + the --out file's name)")
    import cifar_common

    cifar_common.add_data_dir_argument(parser)
    args = parser.parse_args(argv)
    results = HERE / "results" / (args.results or f"cifar_{Path(args.out).name}")

    from edgekd.data import Dataset
    from edgekd.distill import attention, crd, distiller, features, fitnet, multi_teacher, progressive, qat  # noqa: F401  (loaded
    from edgekd.distill.run import run_distillation  # up front: an hour-long run must not pick up files edited meanwhile)
    from edgekd.teachers import load_teacher

    if not (cifar_common.TEACHER.exists() and cifar_common.TEACHER_INFO.exists()):
        sys.exit(f"no trained teacher at {cifar_common.TEACHER}: run `.venv/bin/python benchmarks/cifar_common.py` first (about an hour)")
    started = time.perf_counter()
    teacher_model, teacher_info = cifar_common.teacher()
    train, test = cifar_common.cifar10(args.data_dir)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(train))[: args.train_samples]
    train = Dataset(train.x[order], train.y[order], train.class_names, train.source)
    teacher = load_teacher(cifar_common.TEACHER)
    flipped = load_teacher(lambda x: teacher_model(x[:, :, ::-1], training=False).numpy(),
                           fingerprint=hashlib.sha256((teacher.fingerprint + ":hflip").encode()).hexdigest(), name="teacher on mirrored images")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "teacher": {**teacher_info, "fingerprint": teacher.fingerprint},
        "student": STUDENT,
        "config": {"epochs": args.epochs, "train_samples": len(train), "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                   "temperature": 4.0, "alpha": 0.7, "augmentation": args.augment,
                   **({"teacher_mode": "cached", "views": args.views} if args.teacher_mode == "cached" else {}), "val": "the 10,000 test images"},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip(),
        "rows": [],
    }
    if args.append and out.exists():
        before = json.loads(out.read_text())
        same = ("teacher", "student", "config")
        if any(before[k] != json.loads(json.dumps(record[k], default=str)) for k in same):
            sys.exit(f"--append: {out} holds a run with another teacher, student or config; pick another --out")
        record["rows"] = [r for r in before["rows"] if r["method"] not in args.methods.split(",")]
        record["appended_to"] = before.get("commit")
    common = dict(data=train, val=test, student=STUDENT, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate, augment=args.augment,
                  teacher_mode=args.teacher_mode, views=args.views, progress=True, seed=0)
    plans = {
        "scratch": dict(teachers=teacher, method="kd", alpha=0.0),
        "kd": dict(teachers=teacher, method="kd"),
        "at": dict(teachers=teacher, method="at"),
        "fitnet": dict(teachers=teacher, method="fitnet", feature_layers="smallest"),
        "crd": dict(teachers=teacher, method="crd"),
        "multi": dict(teachers=[teacher, flipped], method="multi"),
        "progressive": dict(teachers=teacher, method="progressive"),
        "qat-kd": dict(teachers=teacher, method="kd", qat=True),
    }
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        plan = dict(plans[name])
        if plan.get("feature_layers") == "smallest":
            from edgekd.distill.features import match_by_spatial_size
            from edgekd.students import StudentSpec, build_student

            probe = build_student(StudentSpec.parse(STUDENT), train.input_shape, 10)
            plan["feature_layers"] = [match_by_spatial_size(probe, teacher_model)[-1]]
        t0 = time.perf_counter()
        run = run_distillation(plan.pop("teachers"), **common, **plan)
        minutes = (time.perf_counter() - t0) / 60
        row = {"method": name, "test_accuracy": run.val_accuracy, "params": int(run.student.count_params()), "minutes": minutes,
               "seconds_per_epoch": run.result.seconds_per_epoch, "teacher_inference_seconds": run.result.teacher_seconds,
               "history": run.result.history, "config": run.config, "extra": run.extra}
        record["rows"].append(row)
        (out.parent / "students").mkdir(exist_ok=True)
        run.student.save(out.parent / "students" / f"{name}.keras")
        save(record, out, results)
        print(f"{name}: test accuracy {100 * run.val_accuracy:.2f}%, {minutes:.1f} min", flush=True)

    record["total_minutes"] = (time.perf_counter() - started) / 60
    save(record, out, results)
    print_table(record)


def save(record, out: Path, results: Path):
    """The record to --out and its committed copy under benchmarks/results/."""
    out.write_text(json.dumps(record, indent=2, default=str))
    results.parent.mkdir(exist_ok=True)
    shutil.copyfile(out, results)


def print_table(record):
    t = record["teacher"]
    rows = record["rows"]
    scratch = next((r["test_accuracy"] for r in rows if r["method"] == "scratch"), None)
    print(f"teacher {t['arch']}: {t['params']:,} params, test accuracy {100 * t['test_accuracy']:.2f}%")
    print("| method | test accuracy | vs scratch | % of teacher | params | minutes |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        delta = f"{100 * (r['test_accuracy'] - scratch):+.2f} pts" if scratch is not None else "-"
        print(f"| {r['method']} | {100 * r['test_accuracy']:.2f}% | {delta} | {100 * r['test_accuracy'] / t['test_accuracy']:.1f}% | {r['params']:,} | {r['minutes']:.1f} |")


if __name__ == "__main__":
    main()
