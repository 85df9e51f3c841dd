"""``build()``: teacher + data + device profile -> a verified bundle, within a time budget. The CLI and the demo call it.

The phases, each planned in seconds before training and shown on one progress bar for the whole build:
teacher labels (cached soft labels), student choice (a tournament over students that fit the profile, then the
teacher weight), training (early stopping on a validation split held out of the training data, best weights kept,
stopped before the budget's end), conversion and verification (int8 failures get a short quantization-aware
fine-tune, then fall back to a float primary). The trained Keras student and distill.json are saved beside the
bundle before conversion starts, so a failure after training never costs the training.
"""
from __future__ import annotations

import datetime
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np

from edgekd_runtime import Manifest, TensorSpec, write_bundle
from edgekd_runtime.drift import DRIFT_NAME, reference_json

from . import __version__
from .budget import DEFAULT_BUDGET, Budget, JobProgress, format_seconds, keras_callback, parse_duration
from .convert import Converted
from .convert.verified import convert_verified
from .data import Dataset, load_dataset, preprocessing_for, split
from .distill import DistillResult, distill
from .distill.run import _jsonable
from .distill.stopping import PATIENCE
from .errors import BudgetError, DataError, EdgekdError, FitError, TeacherError
from .profiles import DeviceProfile, load_profile
from .selection import (MAX_STUDENT_RATIO, MIN_ROUND_SAMPLES, MIN_VAL_SAMPLES, POOL_SIZE, RETAIN, TEACHER_SETTINGS, Entry, Selection,
                        TrainingSet, best_setting, candidate_pool, fit_schedule, probe_speed, teacher_weight, tournament)
from .sizing import FitReport, default_family, fit_report, measure_student, model_cost, student_cost
from .students import StudentSpec, build_student
from .teachers import Teacher, data_fingerprint, load_teacher, soft_labels

EVAL_SAMPLES = 1000  # eval samples carried in a bundle: enough for a stable accuracy, small enough for an MCU's host
REFERENCE_SAMPLES = 8  # host outputs written into the manifest itself
VAL_FRACTION = 0.1
MAX_VAL_FRACTION = 0.25  # a validation split never takes more than this of the training data
CONVERT_SECONDS = 12.0  # planned seconds per format before one conversion has been timed on this host
QAT_EPOCHS = 2  # the int8 fallback's quantization-aware fine-tune: at most this many epochs, as time allows
QAT_SHARE = 0.1
MIN_QAT_SAMPLES = 2048
MIN_CHECKS = 4  # validation checks the final training gets at least (an "epoch" shrinks to fit them in the budget)
# Shares of the time left after labels and conversion: the tournament, the teacher-weight duel, the final training.
SHARES = {"tournament": 0.20, "teacher weight": 0.15}


@dataclass
class BuildResult:
    bundle: Path
    profile: DeviceProfile
    spec: StudentSpec
    fit: FitReport
    converted: List[Converted]
    teacher_accuracy: float
    student_accuracy: float
    distillation: DistillResult
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def primary(self):
        return self.converted[0].artifact


def _say(progress: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if progress:
            from tqdm.auto import tqdm

            tqdm.write(message, file=sys.stderr)

    return say


def build(
    teacher: Union[str, Path, Teacher],
    data: Union[str, Path, Dataset],
    eval: Union[str, Path, Dataset],
    profile: Union[str, DeviceProfile],
    out: Union[str, Path],
    *,
    student: Optional[Union[str, StudentSpec]] = None,
    formats: Optional[List[str]] = None,
    temperature: Optional[float] = None,
    alpha: Optional[float] = None,
    epochs: int = 30,
    batch_size: int = 64,
    time_budget: Union[str, float] = DEFAULT_BUDGET,
    retain: float = RETAIN,
    max_student_ratio: float = MAX_STUDENT_RATIO,
    family: Optional[str] = None,
    upscale: bool = False,
    candidates: int = POOL_SIZE,
    patience: int = PATIENCE,
    qat: bool = True,
    strict: bool = False,
    make_zip: bool = False,
    force: bool = False,
    progress: bool = True,
    seed: int = 0,
    name: Optional[str] = None,
    sign_key: Optional[Union[str, Path]] = None,
) -> BuildResult:
    """Distil the smallest student that fits ``profile`` and keeps ``retain`` of the teacher's accuracy, convert it to
    the profile's formats (or ``formats``), verify every artifact with the runtime and write the bundle to ``out``
    (signed with the ed25519 ``sign_key`` when given), all within ``time_budget`` ("20m", "1h", seconds).

    ``candidates``: how many fitting students the tournament starts with. ``alpha``/``temperature`` None: chosen on the validation split (labels alone included). ``epochs`` is a cap:
    training stops early after ``patience`` epochs without a better validation accuracy. ``qat``: when int8 misses
    the parity bounds, fine-tune quantization-aware within the budget. ``strict``: raise when the bundle keeps less
    than ``retain`` of the teacher's accuracy on the same eval samples.

    >>> from edgekd import build                                   # doctest: +SKIP
    >>> result = build("teacher.keras", "train.npz", "test.npz", "cortex-m7", "out/mcu", time_budget="10m")
    >>> result.primary.host_metrics["accuracy"]
    """
    clock = Budget(parse_duration(time_budget))
    say = _say(progress)
    if not 0.0 < retain <= 1.0:
        raise EdgekdError(f"retain must be within (0, 1] (got {retain})", "e.g. --retain 0.97 keeps 97% of the teacher's accuracy")
    if not 0.0 < max_student_ratio <= 1.0:
        raise EdgekdError(f"max_student_ratio must be within (0, 1] (got {max_student_ratio})", "e.g. --max-student-ratio 0.25")
    if candidates < 1:
        raise EdgekdError(f"candidates must be at least 1 (got {candidates})", "e.g. --candidates 6")
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise EdgekdError(f"alpha must be within [0, 1] (got {alpha})", "alpha weighs the teacher term; 0 trains on labels only")
    prof = load_profile(profile)
    if sign_key is not None:
        # A bad key must fail before the minutes of training, not after.
        from edgekd_runtime.signing import load_private_key

        load_private_key(str(sign_key))
    train_all = data if isinstance(data, Dataset) else load_dataset(str(data))
    test = eval if isinstance(eval, Dataset) else load_dataset(str(eval))
    if train_all.input_shape != test.input_shape:
        raise DataError(f"train samples are {train_all.input_shape} but eval samples are {test.input_shape}", "both sets must have the same sample shape")
    out = Path(out)
    student_dir = Path(str(out) + ".student")
    for path in (out, student_dir):
        if path.exists() and not force:
            raise DataError(f"{path} already exists", "choose another --out or pass --force to replace it")
    num_classes = max(train_all.num_classes, test.num_classes)
    fmts = list(formats or prof.formats)
    say(f"edgekd build: profile {prof.name}, time budget {format_seconds(clock.total)} (--time-budget to change), "
        f"target >= {100 * retain:g}% of the teacher's accuracy")

    # Validation split for choosing the student and stopping its training; the eval set only measures.
    train, val, val_note = _validation_split(train_all, num_classes, seed)
    if val_note:
        say(f"warning: {val_note}")
    pre = preprocessing_for(train_all)
    x_train, x_val, x_test = (pre.apply(d.x).astype(np.float32) for d in (train, val, test))
    teacher = load_teacher(teacher)
    job = JobProgress(progress, desc=f"build {prof.name}")

    # Teacher labels: timed on a few samples first so the plan can say how long they take.
    label_seconds = _label_seconds(teacher, x_train, len(x_val))
    job.plan("teacher labels", label_seconds)
    n_eval = min(len(test), EVAL_SAMPLES)

    # Student candidates (priced, near-budget ones converted and measured) and their speed on this host.
    teacher_params = teacher.keras_model.count_params() if teacher.keras_model is not None else None
    cap = int(teacher_params * max_student_ratio) if teacher_params else None
    stub = TrainingSet(x_train, train.y, np.zeros((len(x_train), num_classes), np.float32), x_val, val.y,
                       np.zeros((len(x_val), num_classes), np.float32), tuple(train.input_shape), num_classes)
    say("pricing the students that fit the profile, converting the near-budget ones, timing a few training steps...")
    if student is not None:
        spec = StudentSpec.parse(student) if isinstance(student, str) else student
        report = fit_report(prof, spec, student_cost(spec, train.input_shape, num_classes))
        _check_ops(prof, report)
        pool = [report]
    else:
        families = [family] if family else _families(prof, train.input_shape)
        pool = candidate_pool(prof, train.input_shape, num_classes, families, max_params=cap, upscale=upscale, count=candidates, calibration=x_train[:64])
    speeds, trace = probe_speed(pool, stub, batch_size, seed)
    entries = [Entry(r, s) for r, s in zip(pool, speeds)]

    # The plan: labels, then (when there is time and a validation split) the tournament and the teacher-weight duel,
    # the final training, and conversion with room for an int8 fine-tune.
    def epoch_seconds(e: Entry) -> float:
        return e.seconds_per_sample * (len(x_train) + len(x_val) / 3)

    smallest = min(entries, key=epoch_seconds)
    timed = [e.report.measured["seconds"] for e in entries if "seconds" in e.report.measured]
    convert_seconds = (_convert_seconds(prof, smallest.report, train.input_shape, num_classes, x_train[:64], fmts) if not timed
                       else max(timed) * (len(fmts) + 1) + 2.0 * len(fmts))
    # Room for the int8 fallback's fine-tune: at most a tenth of the budget (it uses what is left when it runs).
    qat_seconds = min(epoch_seconds(smallest) * 1.5, QAT_SHARE * clock.total) if qat and any(f.endswith("int8") for f in fmts) else 0.0
    free = clock.remaining() - label_seconds - convert_seconds
    minimum = clock.elapsed() + label_seconds + convert_seconds + epoch_seconds(smallest) + trace
    if free < epoch_seconds(smallest) + trace:
        raise BudgetError(f"a time budget of {format_seconds(clock.total)} cannot hold one epoch of the smallest student ({smallest.report.spec}): "
                          f"teacher labels ~{format_seconds(label_seconds)}, one epoch ~{format_seconds(epoch_seconds(smallest) + trace)}, "
                          f"conversion ~{format_seconds(convert_seconds)}", f"pass --time-budget {math.ceil(minimum * 1.2)}s or more")
    if student is None:
        # Only students that can train MIN_PASSES passes over the data in the training share are worth ranking: a
        # larger one would win the tournament and then train too little to keep its lead.
        train_share = free * (1 - SHARES["tournament"] - SHARES["teacher weight"]) - qat_seconds
        affordable = [e for e in entries if epoch_seconds(e) * MIN_PASSES <= train_share] or [smallest]
        if len(affordable) < len(entries):
            say(f"{len(entries) - len(affordable)} of {len(entries)} candidates cannot train {MIN_PASSES} passes over the data "
                f"within this budget; left out (a longer --time-budget keeps them)")
        entries = affordable
    ranked_pool = list(entries)
    choose = student is None and len(entries) > 1
    tournament_seconds = duel_seconds = 0.0
    if choose and val_note:
        choose = False
    elif choose:
        tournament_seconds = SHARES["tournament"] * free
        entries, tournament_seconds = fit_schedule(entries, tournament_seconds, trace, len(x_val), len(x_train))
        if len(entries) < 2:
            say(f"warning: a budget of {format_seconds(clock.total)} is too small to rank candidates on accuracy "
                f"(each needs {MIN_ROUND_SAMPLES} samples a round); choosing by cost")
            choose, tournament_seconds, entries = False, 0.0, ranked_pool
    tune = alpha is None and (student is not None or choose) and not val_note
    if tune:
        # Per setting, one pass over the training data at most, but never less than the duel's minimum (below):
        # enough to see which teacher weight helps.
        slowest = max(e.seconds_per_sample for e in entries)
        duel_samples = max(len(x_train), _duel_minimum(len(x_train)))
        duel_seconds = min(SHARES["teacher weight"] * free,
                           len(TEACHER_SETTINGS) * (trace + slowest * (duel_samples + len(x_val) / 3)))
    train_seconds = max(0.0, free - tournament_seconds - duel_seconds - qat_seconds)
    job.plan("student choice", tournament_seconds + duel_seconds)
    job.plan("training", train_seconds)
    job.plan("convert + verify", convert_seconds + qat_seconds)
    say("plan: " + ", ".join(f"{n} ~{format_seconds(s)}" for n, s in job.planned()) + f" (measured here: {format_seconds(trace)} to trace a student, "
        f"{1e3 * smallest.seconds_per_sample:.3g} ms per sample for the smallest)")

    job.begin("teacher labels")
    t_train = soft_labels(teacher, x_train, data_fingerprint(x_train), on_progress=job.update)
    t_val = soft_labels(teacher, x_val, data_fingerprint(x_val))
    job.end()
    if t_train.shape[1] != num_classes:
        raise TeacherError(f"teacher {teacher.name} outputs {t_train.shape[1]} classes but the data has {num_classes}", "pass the teacher trained for these labels")
    t_test = teacher.logits(x_test)
    teacher_acc = float(np.mean(t_test.argmax(1) == test.y))
    teacher_eval_acc = float(np.mean(t_test[:n_eval].argmax(1) == test.y[:n_eval]))
    tset = TrainingSet(x_train, train.y, t_train, x_val, val.y, t_val, tuple(train.input_shape), num_classes)
    say(f"teacher {teacher.name}: {100 * tset.teacher_val_accuracy:.2f}% on the validation split, {100 * teacher_acc:.2f}% on the eval data")

    job.begin("student choice")
    start = time.monotonic()
    chosen_alpha, chosen_t = (alpha if alpha is not None else 0.7), (temperature if temperature is not None else 4.0)
    if choose:
        winner = tournament(entries, tset, tournament_seconds, retain, chosen_alpha, chosen_t, batch_size, trace=trace, seed=seed,
                            advance=lambda f, note: job.update(f * tournament_seconds / max(1e-6, tournament_seconds + duel_seconds), note))
        how = "tournament"
        last = winner.rounds[-1]  # the winner's measured speed, graph already traced, replaces the probe's estimate
        winner.seconds_per_sample = last["seconds"] / (last["samples"] + len(x_val) / 3)
        reason = _reason(winner, entries, retain, tset.teacher_val_accuracy)
    else:
        winner = _by_cost(entries, epoch_seconds, train_seconds)
        how = "given" if student is not None else "cost ranking"
        reason = ("the student given" if student is not None else
                  f"largest candidate that trains at least {MIN_PASSES} epochs in the budget (no accuracy ranking: {val_note or 'budget too small'})")
    settings: List[Dict[str, Any]] = []
    if tune:
        per = max(0.0, duel_seconds - len(TEACHER_SETTINGS) * (trace + len(x_val) * winner.seconds_per_sample / 3))
        samples = min(max(len(x_train), _duel_minimum(len(x_train))), int(per / max(1e-9, winner.seconds_per_sample * len(TEACHER_SETTINGS))))
        if samples >= _duel_minimum(len(x_train)):
            base = tournament_seconds / max(1e-6, tournament_seconds + duel_seconds)
            settings = teacher_weight(winner.report, tset, samples, batch_size, seed,
                                      advance=lambda f, note: job.update(base + (1 - base) * f, note))
            best = best_setting(settings)
            chosen_alpha, chosen_t = best["alpha"], best["temperature"]
        else:
            say("warning: no time in the budget to choose alpha and T on the validation split; using alpha=0.7, T=4")
    job.end()
    selection = Selection(winner.report, how, reason, chosen_alpha, chosen_t, entries if how == "tournament" else [winner],
                          settings, tset.teacher_val_accuracy, retain * tset.teacher_val_accuracy, time.monotonic() - start)

    # The chosen student, measured after conversion for the fit report.
    spec = winner.report.spec
    fit = winner.report if winner.report.measured else fit_report(prof, spec, winner.report.cost, measure_student(prof, spec, train.input_shape, num_classes, x_train[:64]))
    if not fit.fits:
        raise FitError(f"student {spec} misses {prof.name}'s budgets once converted: " + "; ".join(fit.misses()), "relax the profile's budgets or pick a smaller family")
    fit.searched = len(pool)
    per_epoch = winner.seconds_per_sample * (len(x_train) + len(x_val) / 3)
    if qat_seconds:
        qat_seconds = min(per_epoch * 1.5, QAT_SHARE * clock.total)
    train_seconds = max(0.0, clock.remaining() - convert_seconds - qat_seconds)
    max_epochs = max(1, min(epochs, int(train_seconds / max(per_epoch, 1e-6))))
    steps = int(np.ceil(len(x_train) / batch_size))
    steps_per_epoch = None
    if max_epochs < MIN_CHECKS:
        # Less than MIN_CHECKS passes fit: validate (and stop early, and keep the best) after shorter stretches instead.
        steps_per_epoch = max(1, int(train_seconds / MIN_CHECKS / max(winner.seconds_per_sample * batch_size, 1e-9)))
        if steps_per_epoch < steps:
            max_epochs, steps = MIN_CHECKS, steps_per_epoch
            per_epoch = steps * batch_size * winner.seconds_per_sample + len(x_val) * winner.seconds_per_sample / 3
        else:
            steps_per_epoch = None
    job.plan("training", min(train_seconds, max_epochs * per_epoch + trace))
    say(f"student {spec}: {fit.cost.params:,} params, {fit.cost.macs:,} MACs, {how} ({reason}); alpha={chosen_alpha:g}, T={chosen_t:g}; "
        f"training up to {max_epochs} epochs, ~{format_seconds(min(train_seconds, max_epochs * per_epoch))} predicted")

    job.begin("training")
    model = build_student(spec, train.input_shape, num_classes, seed=seed)
    result = distill(model, x_train, train.y, t_train, temperature=chosen_t, alpha=chosen_alpha, epochs=max_epochs, batch_size=batch_size,
                     val=(x_val, val.y), progress=False, teacher_seconds=teacher.inference_seconds, seed=seed, patience=patience,
                     deadline=clock.deadline - convert_seconds - qat_seconds,
                     steps_per_epoch=steps_per_epoch, callbacks=[keras_callback(job, max_epochs, steps, job.phases["training"])])
    job.end()
    student_acc = float(np.mean(model.predict(x_test, verbose=0, batch_size=256).argmax(1) == test.y))
    record = {"config": result.config, "history": result.history, "selection": selection.to_dict(), "fit": fit.to_dict(),
              "val_accuracy": result.val_accuracy, "teacher": {**teacher.describe(), "val_accuracy": tset.teacher_val_accuracy, "eval_accuracy": teacher_acc},
              "student": {"spec": str(spec), "params": fit.cost.params, "macs": fit.cost.macs, "eval_accuracy": student_acc},
              "time_budget_seconds": clock.total, "seconds": {**job.actual}}
    _save_student(model, record, student_dir)

    job.begin("convert + verify")
    labels = test.class_names or train_all.class_names or [str(i) for i in range(num_classes)]
    staging = Path(tempfile.mkdtemp(prefix="edgekd-build-"))
    try:
        fine_tune = _qat_fine_tune(model, tset, chosen_alpha, chosen_t, batch_size, seed, clock, convert_seconds, per_epoch, say) if qat else None
        verified = convert_verified(model, fmts, staging, pre, test.x[:n_eval], test.y[:n_eval], x_train, fine_tune=fine_tune,
                                    on_format=lambda i, f: job.update(i / len(fmts), f"converting {f}"),
                                    op_limits=prof.op_limits, labels=labels, teacher_fingerprint=teacher.fingerprint)
        for note in verified.notes:
            say(f"warning: {note}")
        converted = verified.converted
        host_outputs = verified.reference_logits.astype(np.float32)
        files: Dict[str, Any] = {}
        for conv in converted:
            files.update({k: str(v) for k, v in conv.files.items()})
        eval_path = staging / "eval.npz"
        np.savez_compressed(eval_path, x=test.x[:n_eval], y=test.y[:n_eval], host_outputs=host_outputs)
        files["eval.npz"] = str(eval_path)
        # Drift reference for the device (edgekd-runtime monitor): raw eval inputs and the student's outputs.
        files[DRIFT_NAME] = reference_json(test.x[:n_eval], host_outputs)
        bundle_acc = converted[0].artifact.host_metrics.get("accuracy")
        summary = {"eval_samples": n_eval, "teacher_accuracy": teacher_eval_acc, "bundle_accuracy": bundle_acc,
                   "percent_of_teacher": 100.0 * bundle_acc / teacher_eval_acc if bundle_acc is not None and teacher_eval_acc else None,
                   "notes": verified.notes}
        manifest = Manifest(
            name=name or f"{out.name}",
            labels=labels,
            input=TensorSpec([1, *train.input_shape], str(train.x.dtype)),
            preprocessing=pre,
            artifacts=[c.artifact for c in converted],
            files={},
            profile={"name": prof.name, "device_class": prof.device_class, "engine": prof.engine, "fit": fit.to_dict()},
            teacher={**teacher.describe(), "accuracy": teacher_acc, "eval_accuracy": teacher_eval_acc},
            student={"spec": str(spec), "params": fit.cost.params, "macs": fit.cost.macs, "activation_elems": fit.cost.activation_traffic_elems,
                     "keras_accuracy": student_acc, "distillation": result.config, "selection": selection.to_dict(), "summary": summary},
            reference={"indices": list(range(min(REFERENCE_SAMPLES, n_eval))), "outputs": host_outputs[:REFERENCE_SAMPLES].round(5).tolist()},
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            producer=f"edgekd {__version__}",
        )
        bundle_path = write_bundle(str(out), manifest, files, make_zip=make_zip, force=force)
        if sign_key is not None:
            from edgekd_runtime.signing import sign_bundle

            sign_bundle(bundle_path, str(sign_key))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        job.end()
        job.close()
    record["seconds"] = {**job.actual, "total": clock.elapsed()}
    record["summary"] = summary
    _save_student(model, record, student_dir)
    say(f"done in {format_seconds(clock.elapsed())} of {format_seconds(clock.total)}: " + ", ".join(f"{k} {format_seconds(v)}" for k, v in job.actual.items()))
    built = BuildResult(Path(bundle_path), prof, spec, fit, converted, teacher_acc, student_acc, result,
                        extra={"selection": selection, "summary": summary, "student_dir": student_dir, "seconds": record["seconds"],
                               "teacher_eval_accuracy": teacher_eval_acc})
    if bundle_acc is not None and bundle_acc < retain * teacher_eval_acc:
        message = (f"the bundle reaches {100 * bundle_acc:.2f}% on {n_eval} eval samples, {100 * bundle_acc / teacher_eval_acc:.1f}% of the "
                   f"teacher's {100 * teacher_eval_acc:.2f}% on the same samples (target {100 * retain:g}%)")
        if strict:
            raise FitError(message, "give it more --time-budget, a larger --max-student-ratio, or check the data")
        say(f"warning: {message}")
    return built


MIN_PASSES = 1  # passes over the training data a candidate must afford in the training share (fewer, and it barely learns)


def _duel_minimum(n_train: int) -> int:
    """Samples each teacher-weight setting needs: as many as a tournament round (~100 steps), or four passes over
    a small training set."""
    return min(MIN_ROUND_SAMPLES, 4 * n_train)


def _families(profile: DeviceProfile, input_shape) -> List[str]:
    """Image students on int8 phones, Pis and Jetsons come from both image families: plain ReLU convolutions (resnet)
    quantize more reliably than hard-swish and squeeze-excite; MCUs keep the MCU-safe mobilenetv3."""
    family = default_family(input_shape)
    if family == "mobilenetv3" and profile.device_class != "mcu" and profile.primary_precision == "int8":
        return ["mobilenetv3", "resnet"]
    return [family]


def _validation_split(train: Dataset, num_classes: int, seed: int):
    """(train, val, warning): a stratified hold-out of 10% of the data, at least MIN_VAL_SAMPLES when the data allows."""
    n = len(train)
    want = max(int(round(VAL_FRACTION * n)), MIN_VAL_SAMPLES)
    note = None
    if want > MAX_VAL_FRACTION * n:
        want = int(MAX_VAL_FRACTION * n)
        note = (f"{n} training samples leave a validation split of {want}, fewer than the {MIN_VAL_SAMPLES} needed to rank students "
                f"on accuracy (needs {math.ceil(MIN_VAL_SAMPLES / MAX_VAL_FRACTION)} training samples); choosing by cost with alpha=0.7, T=4")
    if want < max(num_classes, 2):
        raise DataError(f"{n} training samples are too few to hold out a validation split", f"pass at least {4 * num_classes} labelled samples")
    a, b = split(train, want / n, seed=seed)
    return a, b, note


def _label_seconds(teacher: Teacher, x: np.ndarray, n_val: int) -> float:
    from .teachers.cache import CACHE_DIR

    path = CACHE_DIR / "soft_labels" / f"{teacher.fingerprint[:16]}-{data_fingerprint(x)[:16]}.npy"
    if path.is_file():
        return 1.0
    n = min(len(x), 256)
    teacher.logits(x[:8])  # the first call builds the graph
    start = time.monotonic()
    teacher.logits(x[:n])
    return (time.monotonic() - start) / n * (len(x) + n_val) * 1.1


def _convert_seconds(profile: DeviceProfile, report: FitReport, input_shape, num_classes: int, calibration, formats: List[str]) -> float:
    """Planned seconds for converting and verifying every format: one conversion of ``report`` to the profile's
    primary format timed here (what sizing measures anyway), times the formats, plus the parity runs."""
    start = time.monotonic()
    try:
        measure_student(profile, report.spec, input_shape, num_classes, calibration)
    except EdgekdError:
        pass
    once = time.monotonic() - start
    return once * (len(formats) + 1) + 2.0 * len(formats)


def _check_ops(profile: DeviceProfile, report: FitReport) -> None:
    if profile.op_limits:
        missing = sorted(set(report.cost.op_kinds) - set(profile.op_limits))
        if missing:
            raise FitError(f"student {report.spec} uses op(s) {', '.join(missing)} that {profile.name}'s engine lacks",
                           "use an MCU-safe spec (mcu_safe=1) or another family, or leave --student out to size one")


def _by_cost(entries: List[Entry], epoch_seconds: Callable[[Entry], float], train_seconds: float) -> Entry:
    """The largest candidate that still trains MIN_PASSES epochs in the budget (else the smallest)."""
    ok = [e for e in entries if epoch_seconds(e) * MIN_PASSES <= train_seconds]
    return max(ok, key=lambda e: e.size) if ok else min(entries, key=lambda e: e.size)


def _reason(winner: Entry, entries: List[Entry], retain: float, teacher_val: float) -> str:
    last = winner.rounds[-1]
    target = retain * teacher_val
    if last["val_acc"] >= target:
        return (f"smallest of {len(entries)} candidates to reach {100 * retain:g}% of the teacher's validation accuracy "
                f"({100 * last['val_acc']:.2f}% >= {100 * target:.2f}% after {last['samples']} samples)")
    return (f"none reached {100 * target:.2f}% in the tournament; smallest within noise of the best "
            f"({100 * last['val_acc']:.2f}%, threshold {100 * last['threshold']:.2f}%)")


def _qat_fine_tune(model, tset: TrainingSet, alpha: float, temperature: float, batch_size: int, seed: int, clock: Budget,
                   convert_seconds: float, per_epoch: float, say):
    """A callable for convert_verified: a short quantization-aware fine-tune of ``model`` when the budget still holds
    one epoch of it (with conversion after), else None."""
    def run():
        from .distill.qat import quantize_student

        room = clock.remaining() - convert_seconds
        # Samples that fit the time left (quantization-aware steps cost about 1.5 float ones), up to QAT_EPOCHS passes.
        n = min(QAT_EPOCHS * len(tset.x), int(room / max(1e-9, 1.5 * per_epoch) * len(tset.x)))
        if n < min(len(tset.x), MIN_QAT_SAMPLES):
            return None
        say(f"int8 missed the parity bounds: quantization-aware fine-tune on {n:,} samples")
        try:
            qat_model = quantize_student(model)
        except EdgekdError as exc:
            say(f"warning: {exc}")
            return None
        idx = np.resize(np.random.default_rng(seed).permutation(len(tset.x)), n)
        distill(qat_model, tset.x[idx], tset.y[idx], tset.logits[idx], temperature=temperature, alpha=alpha, epochs=1, batch_size=batch_size,
                learning_rate=3e-4, progress=False, seed=seed, deadline=clock.deadline - convert_seconds)
        return qat_model

    return run


def _save_student(model, record: Dict[str, Any], folder: Path) -> None:
    """``folder/student/`` (tf_keras SavedModel) and ``folder/distill.json``, replaced atomically."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".edgekd-student-", dir=folder.parent))
    try:
        model.save(str(staging / "student"), save_format="tf")
        (staging / "distill.json").write_text(json.dumps(record, indent=2, default=_jsonable))
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

