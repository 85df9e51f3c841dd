"""``build()``: teacher + data + device profile -> a verified bundle, within a time budget. The CLI and the demo call it.

Phases, planned in seconds before training (``build_plan``) and shown on one progress bar: the plan (data read,
teacher loaded, fitting students priced, a few training steps of each timed), teacher labels (cached), student
choice (``student_choice``: a tournament, then the teacher weight), training (early stopping on a held-out split,
stopped early enough to keep the time conversion needs, more when training ran slower than planned), the student's
save (beside the bundle, so a later failure never costs the training), conversion and verification (int8 failures get
a short QAT fine-tune, ``qat_fallback``, then a float primary), and the bundle (``bundle_assembly``).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from edgekd_runtime import Preprocessing, TensorSpec

from . import build_plan
from .budget import DEFAULT_BUDGET, Budget, JobProgress, Pace, closes_bars_on_error, format_seconds, keras_callback, parse_duration
from .bundle_assembly import assemble_bundle, check_replaceable, profile_section, student_section
from .convert import Converted
from .convert.verified import convert_verified
from .data import Dataset, load_dataset
from .distill import DistillResult, distill
from .distill.record import jsonable as _jsonable
from .distill.stopping import PATIENCE
from .errors import DataError, EdgekdError, FitError
from .preprocess import parse as parse_preprocess, record as preprocess_record
from .build_data import BuildData, check_teacher_on_eval, prepare_data, score_teacher
from .build_summary import build_summary, check_bundle_accuracy
from .profiles import DeviceProfile, load_profile
from .qat_fallback import qat_fine_tune
from .search_setup import student_families
from .selection import POOL_SIZE, RETAIN, Entry, TrainingSet, candidate_pool, probe_speed
from .sizing import MAX_STUDENT_RATIO, FitReport, fit_report, measure_student, student_cost
from .student_choice import choose_student
from .students import StudentSpec, build_student
from .teachers import Teacher, data_fingerprint, load_teacher, soft_labels

PLAN_SHARE = 0.1  # the bar's first guess for the plan phase, as a share of the budget


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
        elif message.startswith("warning:"):  # --quiet silences progress, not what the user must know
            print(message, file=sys.stderr)

    return say


@closes_bars_on_error
def build(
    teacher: Union[str, Path, Teacher],
    data: Union[str, Path, Dataset],
    eval_data: Union[str, Path, Dataset],
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
    patience: Optional[int] = PATIENCE,
    qat: bool = True,
    strict: bool = False,
    make_zip: bool = False,
    force: bool = False,
    progress: bool = True,
    seed: int = 0,
    name: Optional[str] = None,
    sign_key: Optional[Union[str, Path]] = None,
    preprocess: Optional[Union[str, Preprocessing]] = None,
) -> BuildResult:
    """Distil the smallest student that fits ``profile`` and keeps ``retain`` of the teacher's accuracy, convert it to
    the profile's formats (or ``formats``), verify every artifact with the runtime and write the bundle to ``out``
    (signed with the ed25519 ``sign_key`` when given), all within ``time_budget`` ("20m", "1h", seconds).

    ``candidates``: how many fitting students the tournament starts with. ``alpha``/``temperature`` None: chosen on the validation split (labels alone included). ``epochs`` is a cap:
    training stops early after ``patience`` epochs without a better validation accuracy (None: it runs them all). ``qat``: when int8 misses
    the parity bounds, fine-tune quantization-aware within the budget. ``strict``: raise when the bundle keeps less
    than ``retain`` of the teacher's accuracy on the same eval samples. ``preprocess``: how raw data map to the inputs
    of the teacher and the student ("auto", "none", "scale=S,offset=O", "mean=..,std=.." or an
    ``edgekd_runtime.Preprocessing``; see :mod:`edgekd.preprocess`), recorded in distill.json and the manifest; a
    teacher that scores near chance on the eval data under it stops the build before anything is trained.

    >>> from edgekd import build                                   # doctest: +SKIP
    >>> result = build("teacher.keras", "train.npz", "test.npz", "cortex-m7", "out/mcu", time_budget="10m")
    >>> result.primary.host_metrics["accuracy"]
    """
    clock = Budget(parse_duration(time_budget))
    say = _say(progress)
    _check_arguments(retain, max_student_ratio, candidates, alpha)
    parse_preprocess(preprocess)  # a bad --preprocess fails before the data are read
    prof = load_profile(profile)
    # Everything before the teacher's labels (reading the data, loading the teacher, pricing and timing the candidates)
    # is the "plan" phase, so that the phases in distill.json add up to the build's total.
    job = JobProgress(progress, desc=f"build {prof.name}")
    job.plan("plan", PLAN_SHARE * clock.total)  # a first guess for the bar; replaced by what it took once it ends
    job.begin("plan")
    if sign_key is not None:
        # A bad key must fail before the minutes of training, not after.
        from edgekd_runtime.signing import load_private_key

        load_private_key(str(sign_key))
    train_all = data if isinstance(data, Dataset) else load_dataset(str(data))
    test = eval_data if isinstance(eval_data, Dataset) else load_dataset(str(eval_data))
    if train_all.input_shape != test.input_shape:
        raise DataError(f"train samples are {train_all.input_shape} but eval samples are {test.input_shape}", "both sets must have the same sample shape")
    out = Path(out)
    student_dir = Path(str(out) + ".student")
    for path in (out, student_dir):
        if path.exists() and not force:
            raise DataError(f"{path} already exists", "choose another --out or pass --force to replace it")
    if force:  # before the minutes of training, not after
        check_replaceable(Path(str(out) + ".zip") if make_zip and out.suffix != ".zip" else out)
        check_replaceable(student_dir, kind="student")
    fmts = list(formats or prof.formats)
    say(f"edgekd build: profile {prof.name}, time budget {format_seconds(clock.total)} (--time-budget to change), "
        f"target >= {100 * retain:g}% of the teacher's accuracy")
    d = prepare_data(train_all, test, seed, say, preprocess)
    teacher = load_teacher(teacher)
    t_test = check_teacher_on_eval(teacher, d, say)

    # Plan: the teacher's labels timed on a few samples, the students that fit priced (near-budget ones converted and
    # measured) and a few training steps of each timed, then the budget shared out over the phases.
    label_seconds = build_plan.label_seconds(teacher, d.x_train, len(d.x_val))
    job.update(0.2, "pricing the students")
    pool, entries, trace = _price_candidates(prof, teacher, d, student, family, max_student_ratio, upscale, candidates, batch_size, seed, say)
    job.update(0.7, "timing a conversion")
    convert_seconds = build_plan.convert_seconds(entries, len(d.x_train), len(d.x_val), prof, d.input_shape, d.num_classes, d.x_train[:64], fmts)
    save_seconds = build_plan.save_seconds(trace)
    plan = build_plan.plan_phases(clock, entries, trace, n_train=len(d.x_train), n_val=len(d.x_val), label_seconds=label_seconds,
                                  convert_seconds=convert_seconds + save_seconds, int8_fine_tune=qat and any(f.endswith("int8") for f in fmts),
                                  student_given=student is not None, alpha_given=alpha is not None, val_note=d.val_note, say=say)
    job.end(settle=True)
    job.plan("teacher labels", label_seconds)
    job.plan("student choice", plan.tournament_seconds + plan.duel_seconds)
    job.plan("training", plan.train_seconds)
    job.plan("save student", save_seconds)
    job.plan("convert + verify", convert_seconds + plan.qat_seconds)
    smallest = min(entries, key=plan.epoch_seconds)
    say("plan: " + ", ".join(f"{n} {'' if n == 'plan' else '~'}{format_seconds(s)}" for n, s in job.planned())
        + f" (measured here: {format_seconds(trace)} to trace a student, {1e3 * smallest.seconds_per_sample:.3g} ms per sample for the smallest)")

    job.begin("teacher labels")
    t_train = soft_labels(teacher, d.x_train, data_fingerprint(d.x_train), on_progress=job.update)
    t_val = soft_labels(teacher, d.x_val, data_fingerprint(d.x_val))
    job.end()
    tset, teacher_acc, teacher_eval_acc = score_teacher(teacher, d, t_train, t_val, t_test)
    say(f"teacher {teacher.name}: {100 * tset.teacher_val_accuracy:.2f}% on the validation split, {100 * teacher_acc:.2f}% on the eval data")

    job.begin("student choice")
    winner, selection = choose_student(plan, tset, retain=retain, alpha=alpha, temperature=temperature, batch_size=batch_size, seed=seed,
                                       student_given=student is not None, val_note=d.val_note, update=job.update, say=say)
    spec = winner.report.spec
    job.update(1.0, f"measuring {spec} converted")
    fit = _measured_fit(prof, winner, d)
    fit.searched = len(pool)
    job.end()
    schedule = build_plan.training_schedule(clock, winner, plan, epochs, batch_size)
    job.plan("training", min(schedule.seconds, schedule.max_epochs * schedule.epoch_seconds + trace))
    say(f"student {spec}: {fit.cost.params:,} params, {fit.cost.macs:,} MACs, {selection.how} ({selection.reason}); "
        f"alpha={selection.alpha:g}, T={selection.temperature:g}; training up to {schedule.max_epochs} epochs, "
        f"~{format_seconds(min(schedule.seconds, schedule.max_epochs * schedule.epoch_seconds))} predicted")

    job.begin("training")
    model = build_student(spec, d.input_shape, d.num_classes, seed=seed)
    pace = Pace(winner.seconds_per_sample * batch_size)
    result = distill(model, d.x_train, d.train.y, t_train, temperature=selection.temperature, alpha=selection.alpha, epochs=schedule.max_epochs,
                     batch_size=batch_size, val=(d.x_val, d.val.y), progress=False, teacher_seconds=teacher.inference_seconds, seed=seed,
                     patience=patience, deadline=lambda: clock.deadline - plan.convert_seconds * pace.factor() - schedule.qat_seconds, steps_per_epoch=schedule.steps_per_epoch,
                     teacher_val_accuracy=tset.teacher_val_accuracy,
                     callbacks=[keras_callback(job, schedule.max_epochs, schedule.steps, job.phases["training"], pace)])
    student_acc = float(np.mean(model.predict(d.x_test, verbose=0, batch_size=256).argmax(1) == d.test.y))
    job.end()
    job.begin("save student")
    record = {"config": {**result.config, "preprocessing": preprocess_record(preprocess, d.pre)}, "history": result.history, "selection": selection.to_dict(), "fit": fit.to_dict(),
              "val_accuracy": result.val_accuracy, "teacher": {**teacher.describe(), "val_accuracy": tset.teacher_val_accuracy, "eval_accuracy": teacher_acc},
              "student": {"spec": str(spec), "params": fit.cost.params, "macs": fit.cost.macs, "eval_accuracy": student_acc},
              "time_budget_seconds": clock.total, "seconds": {**job.actual}}
    _save_student(model, record, student_dir)
    job.end()

    job.begin("convert + verify")
    labels = d.test.class_names or d.train_all.class_names or [str(i) for i in range(d.num_classes)]
    staging = Path(tempfile.mkdtemp(prefix="edgekd-build-"))
    try:
        fine_tune = (qat_fine_tune(model, tset, selection.alpha, selection.temperature, batch_size, seed, clock, (plan.convert_seconds - save_seconds) * pace.factor(),
                                   schedule.epoch_seconds, say) if qat else None)
        verified = convert_verified(model, fmts, staging, d.pre, d.test.x[:d.n_eval], d.test.y[:d.n_eval], d.x_train, fine_tune=fine_tune,
                                    on_format=lambda i, f: job.update(i / len(fmts), f"converting {f}"),
                                    op_limits=prof.op_limits, profile=prof, labels=labels, teacher_fingerprint=teacher.fingerprint)
        for note in verified.notes:
            say(f"warning: {note}")
        summary = build_summary(verified, d.n_eval, teacher_eval_acc)
        bundle_path = assemble_bundle(
            out, name=name or f"{out.name}", labels=labels, input_spec=TensorSpec([1, *d.input_shape], str(d.train.x.dtype)),
            preprocessing=d.pre, converted=verified.converted, eval_x=d.test.x[:d.n_eval], eval_y=d.test.y[:d.n_eval],
            host_outputs=verified.reference_logits,
            student=student_section(fit.cost, fit.cost.params, spec=str(spec), keras_accuracy=student_acc, distillation=result.config,
                                    selection=selection.to_dict(), summary=summary),
            teacher={**teacher.describe(), "accuracy": teacher_acc, "eval_accuracy": teacher_eval_acc},
            profile=profile_section(prof, fit), make_zip=make_zip, force=force, sign_key=sign_key)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        job.end()
        job.close()
    record["seconds"] = {**job.actual, "total": clock.elapsed()}
    record["summary"] = summary
    _write_record(record, student_dir)  # the student saved before conversion is unchanged (the int8 fine-tune trains a copy)
    say(f"done in {format_seconds(clock.elapsed())} of {format_seconds(clock.total)}: " + ", ".join(f"{k} {format_seconds(v)}" for k, v in job.actual.items()))
    built = BuildResult(Path(bundle_path), prof, spec, fit, verified.converted, teacher_acc, student_acc, result,
                        extra={"selection": selection, "summary": summary, "student_dir": student_dir, "seconds": record["seconds"],
                               "teacher_eval_accuracy": teacher_eval_acc})
    check_bundle_accuracy(summary["bundle_accuracy"], teacher_eval_acc, retain=retain, num_classes=d.num_classes, n_eval=d.n_eval,
                          strict=strict, bundle=bundle_path, say=say)
    return built


def _check_arguments(retain: float, max_student_ratio: float, candidates: int, alpha: Optional[float]) -> None:
    if not 0.0 < retain <= 1.0:
        raise EdgekdError(f"retain must be within (0, 1] (got {retain})", "e.g. --retain 0.97 keeps 97% of the teacher's accuracy")
    if not 0.0 < max_student_ratio <= 1.0:
        raise EdgekdError(f"max_student_ratio must be within (0, 1] (got {max_student_ratio})", "e.g. --max-student-ratio 0.25")
    if candidates < 1:
        raise EdgekdError(f"candidates must be at least 1 (got {candidates})", "e.g. --candidates 6")
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise EdgekdError(f"alpha must be within [0, 1] (got {alpha})", "alpha weighs the teacher term; 0 trains on labels only")


def _price_candidates(prof: DeviceProfile, teacher: Teacher, d: BuildData, student: Optional[Union[str, StudentSpec]], family: Optional[str],
                      max_student_ratio: float, upscale: bool, count: int, batch_size: int, seed: int,
                      say: Callable[[str], None]) -> Tuple[List[FitReport], List[Entry], float]:
    """(pool, entries with their training speed on this host, seconds to trace a student): the student given, or
    the ``count`` that fit the profile and the teacher's parameter cap."""
    teacher_params = teacher.keras_model.count_params() if teacher.keras_model is not None else None
    cap = int(teacher_params * max_student_ratio) if teacher_params else None
    # Speed probes need the data's shapes only: zeros stand in for the teacher's labels, not computed yet.
    stub = TrainingSet(d.x_train, d.train.y, np.zeros((len(d.x_train), d.num_classes), np.float32), d.x_val, d.val.y,
                       np.zeros((len(d.x_val), d.num_classes), np.float32), tuple(d.input_shape), d.num_classes)
    say("pricing the students that fit the profile, converting the near-budget ones, timing a few training steps...")
    if student is not None:
        spec = StudentSpec.parse(student) if isinstance(student, str) else student
        report = fit_report(prof, spec, student_cost(spec, d.input_shape, d.num_classes))
        _check_ops(prof, report)
        pool = [report]
    else:
        families = [family] if family else student_families(prof, d.input_shape)
        pool = candidate_pool(prof, d.input_shape, d.num_classes, families, max_params=cap, upscale=upscale, count=count, calibration=d.x_train[:64])
    speeds, trace = probe_speed(pool, stub, batch_size, seed)
    return pool, [Entry(r, s) for r, s in zip(pool, speeds)], trace


def _measured_fit(prof: DeviceProfile, winner: Entry, d: BuildData) -> FitReport:
    """The chosen student's fit report, measured after conversion (sizing measured the near-budget ones already)."""
    spec = winner.report.spec
    fit = winner.report if winner.report.measured else fit_report(prof, spec, winner.report.cost, measure_student(prof, spec, d.input_shape, d.num_classes, d.x_train[:64]))
    if not fit.fits:
        raise FitError(f"student {spec} misses {prof.name}'s budgets once converted: " + "; ".join(fit.misses()), "relax the profile's budgets or pick a smaller family")
    return fit


def _check_ops(profile: DeviceProfile, report: FitReport) -> None:
    if profile.op_limits:
        missing = sorted(set(report.cost.op_kinds) - set(profile.op_limits))
        if missing:
            raise FitError(f"student {report.spec} uses op(s) {', '.join(missing)} that {profile.name}'s engine lacks",
                           "use an MCU-safe spec (mcu_safe=1) or another family, or leave --student out to size one")


def _write_record(record: Dict[str, Any], folder: Path) -> None:
    """``folder/distill.json`` replaced atomically."""
    staging = folder / "distill.json.tmp"
    staging.write_text(json.dumps(record, indent=2, default=_jsonable))
    os.replace(staging, folder / "distill.json")


def _save_student(model, record: Dict[str, Any], folder: Path) -> None:
    """``folder/student/`` (tf_keras SavedModel) and ``folder/distill.json``, replaced atomically."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".edgekd-student-", dir=folder.parent))
    try:
        model.save(str(staging / "student"), save_format="tf")
        (staging / "distill.json").write_text(json.dumps(record, indent=2, default=_jsonable))
        if folder.exists():
            check_replaceable(folder, kind="student")
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

