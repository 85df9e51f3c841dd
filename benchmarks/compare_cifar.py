"""The compression comparison on CIFAR-10, measured: `.venv/bin/python benchmarks/compare_cifar.py`.

1. Loads the shared CIFAR-10 teacher (trained once by benchmarks/cifar_common.py; this script refuses
   to start a 55-minute training run itself).
2. Takes the KD student benchmarks/cifar_methods.py trained (students/kd.keras), or distils one
   (resnet:width=0.625,depth=3, KD T=4, alpha=0.7) when that run has not happened.
3. Runs `edgekd.compare`: original teacher | distilled student | pruned teacher (80%) | int8 teacher
   (+ the student in int8), all through edgekd_runtime on this machine, on the full test set.
4. Converts the student with `edgekd.convert.batch.convert_student` and checks parity on the full test set:
   the int8 artifact must agree with the Keras student on >= 99% of samples and lose <= 0.5 points.
5. Fine-tunes the student quantization-aware (edgekd.distill.qat, KD, one epoch) and checks its int8 parity too.
   Exit status 0 when either int8 route (post-training or quantization-aware) meets the parity bounds.

Everything lands in benchmarks/out/cifar10/compare/; summary.json holds the numbers the README quotes (copied to
benchmarks/results/compare_cifar.json). --data-dir DIR: the CIFAR-10 archive's folder when benchmarks/out/cifar10 has
no decoded copy yet (default $EDGEKD_DATA, else ../shared/data).
Environment knobs (for a quicker look, not for the README): STUDENT_EPOCHS, PRUNE_EPOCHS, PRUNE_SAMPLES, EVAL_LIMIT.
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
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

import cifar_common  # noqa: E402

OUT = cifar_common.OUT / "compare"
STUDENT = OUT / "student.keras"
STUDENT_SPEC = "resnet:width=0.625,depth=3"
METHODS_KD = cifar_common.OUT / "students" / "kd.keras"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def distil_student(teacher_path: Path, train, test, epochs: int):
    from edgekd.data import preprocessing_for
    from edgekd.distill import distill
    from edgekd.students import StudentSpec, build_student
    from edgekd.teachers import load_teacher, soft_labels

    pre = preprocessing_for(train)
    x, x_test = pre.apply(train.x), pre.apply(test.x)
    teacher = load_teacher(teacher_path)
    t0 = time.perf_counter()
    logits = soft_labels(teacher, x, train.fingerprint() + f"{pre.scale}{pre.offset}")
    log(f"teacher soft labels: {time.perf_counter() - t0:.0f} s")
    spec = StudentSpec.parse(STUDENT_SPEC)
    student = build_student(spec, train.input_shape, 10, seed=0)
    result = distill(student, x, train.y, logits, temperature=4.0, alpha=0.7, epochs=epochs, batch_size=128, val=(x_test[:2000], test.y[:2000]), progress=False)
    acc = float(np.mean(student.predict(x_test, batch_size=500, verbose=0).argmax(1) == test.y))
    OUT.mkdir(parents=True, exist_ok=True)
    student.save(STUDENT)
    info = {"spec": STUDENT_SPEC, "params": int(student.count_params()), "epochs": epochs, "seconds_per_epoch": result.seconds_per_epoch, "keras_test_accuracy": acc, "distillation": result.config}
    (OUT / "student.json").write_text(json.dumps(info, indent=2))
    log(f"student {STUDENT_SPEC}: {info['params']} params, test accuracy {100 * acc:.2f}% after {epochs} epochs")
    return info


def adopt_methods_student() -> dict:
    """The KD student of cifar_methods.py's run becomes this benchmark's student (no second distillation)."""
    import shutil

    record = json.loads((cifar_common.OUT / "methods.json").read_text())
    row = next(r for r in record["rows"] if r["method"] == "kd")
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copy(METHODS_KD, STUDENT)
    info = {"spec": record["student"], "params": row["params"], "epochs": record["config"]["epochs"], "seconds_per_epoch": row["seconds_per_epoch"],
            "keras_test_accuracy": row["test_accuracy"], "distillation": row["config"], "from": "benchmarks/cifar_methods.py (kd)"}
    (OUT / "student.json").write_text(json.dumps(info, indent=2))
    log(f"student from cifar_methods.py: {record['student']}, {info['params']} params, test accuracy {100 * row['test_accuracy']:.2f}%")
    return info


def qat_parity(epochs: int = 1) -> dict:
    """Quantization-aware distillation of the student (tfmot fake-quant, KD against the same soft labels), then
    int8 parity of its TFLite artifact against the QAT Keras model, on the full test set."""
    from edgekd.convert.batch import convert_student, load_student
    from edgekd.data import preprocessing_for
    from edgekd.distill import distill
    from edgekd.distill.qat import quantize_student
    from edgekd.teachers import load_teacher, soft_labels

    train, test = cifar_common.cifar10()
    pre = preprocessing_for(train)
    x = pre.apply(train.x)
    logits = soft_labels(load_teacher(cifar_common.TEACHER), x, train.fingerprint() + f"{pre.scale}{pre.offset}")
    qat = quantize_student(load_student(STUDENT))
    t0 = time.perf_counter()
    distill(qat, x, train.y, logits, temperature=4.0, alpha=0.7, epochs=epochs, batch_size=128, learning_rate=3e-4, progress=False)
    log(f"quantization-aware distillation: {epochs} epoch(s), {time.perf_counter() - t0:.0f} s")
    result = convert_student(qat, "tflite-int8", OUT / "qat_bundle", calibration=train, eval_data=test, force=True, eval_samples=len(test))
    m = result.converted[0].artifact.host_metrics
    float_acc = json.loads((OUT / "student.json").read_text())["keras_test_accuracy"]
    info = {"epochs": epochs, "verification": result.converted[0].artifact.verification, **m, "float_student_accuracy": float_acc, "drop_vs_float_student_points": 100 * (float_acc - m["accuracy"])}
    (OUT / "qat_parity.json").write_text(json.dumps(info, indent=2))
    log(f"QAT int8: {info['verification']}: agreement {100 * m['agreement_with_keras']:.2f}% with the QAT model, accuracy {100 * m['accuracy']:.2f}% (float student {100 * float_acc:.2f}%)")
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cifar_common.add_data_dir_argument(parser)
    args = parser.parse_args(argv)
    if not (cifar_common.TEACHER.exists() and cifar_common.TEACHER_INFO.exists()):
        print(f"no CIFAR-10 teacher at {cifar_common.TEACHER}: train it first with .venv/bin/python benchmarks/cifar_common.py", file=sys.stderr)
        return 2
    from edgekd.compare import compare, print_table
    from edgekd.convert.batch import convert_student

    started = time.perf_counter()
    train, test = cifar_common.cifar10(args.data_dir)
    teacher_info = json.loads(cifar_common.TEACHER_INFO.read_text())
    log(f"teacher {teacher_info['arch']}: {teacher_info['params']} params, test accuracy {100 * teacher_info['test_accuracy']:.2f}%")
    if STUDENT.exists() and (OUT / "student.json").exists():
        student_info = json.loads((OUT / "student.json").read_text())
        log(f"reusing the student distilled before ({STUDENT})")
    elif METHODS_KD.exists():
        student_info = adopt_methods_student()
    else:
        student_info = distil_student(cifar_common.TEACHER, train, test, int(os.environ.get("STUDENT_EPOCHS", "8")))

    eval_limit = int(os.environ["EVAL_LIMIT"]) if "EVAL_LIMIT" in os.environ else None
    log("comparison: teacher, student, pruned teacher, int8 teacher")
    result = compare(
        cifar_common.TEACHER, STUDENT, train, test, OUT / "table", force=True, progress=False,
        prune_epochs=int(os.environ.get("PRUNE_EPOCHS", "2")), prune_samples=int(os.environ.get("PRUNE_SAMPLES", "15000")),
        eval_limit=eval_limit, title="CIFAR-10: compression methods measured on this machine",
    )
    print_table(result)

    log("parity of the student's artifacts on the test set")
    n_eval = eval_limit or len(test)
    parity = convert_student(
        STUDENT, "tflite-int8,tflite-fp32,onnx,coreml", OUT / "student_bundle", calibration=train, eval_data=test,
        force=True, eval_samples=n_eval,
    )
    int8 = next(c.artifact for c in parity.converted if c.artifact.format == "tflite-int8").host_metrics
    int8_ok = int8["agreement_with_keras"] >= 0.99 and int8["accuracy_drop_points"] <= 0.5
    for c in parity.converted:
        m = c.artifact.host_metrics
        if "agreement_with_keras" in m:
            log(f"{c.artifact.format:12s} {c.artifact.verification}: agreement {100 * m['agreement_with_keras']:.2f}%, accuracy {100 * m['accuracy']:.2f}% (Keras {100 * m['keras_accuracy']:.2f}%), max abs diff {m['max_abs_diff']:.3g}")
        else:
            log(f"{c.artifact.format:12s} {c.artifact.verification}")

    qat = qat_parity(int(os.environ.get("QAT_EPOCHS", "1")))
    qat_ok = qat["verification"] == "passed" and qat["drop_vs_float_student_points"] <= 0.5
    summary = {
        "teacher": teacher_info,
        "student": student_info,
        "compare": result.to_dict(),
        "markdown": (OUT / "table" / "compare.md").read_text(),
        "parity": parity.parity,
        "int8_parity_ok": bool(int8_ok),
        "qat_parity": qat,
        "qat_int8_parity_ok": bool(qat_ok),
        "minutes": (time.perf_counter() - started) / 60,
    }
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2))
    (HERE / "results").mkdir(exist_ok=True)
    shutil.copyfile(OUT / "summary.json", HERE / "results" / "compare_cifar.json")
    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    log(f"done in {summary['minutes']:.1f} min: {OUT / 'summary.json'}; int8 parity: post-training {verdict(int8_ok)}, quantization-aware {verdict(qat_ok)}")
    # The bound is met when one int8 route meets it; which one is in summary.json.
    return 0 if (int8_ok or qat_ok) else 1


if __name__ == "__main__":
    sys.exit(main())
