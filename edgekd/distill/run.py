"""One call from teachers + data + a method name to a trained student and its record (``edgekd distill``).

Methods: kd (Hinton), fitnet (hints), at (attention transfer), crd (contrastive), multi (several teachers),
progressive (through teacher assistants), self (born-again), one module each in :mod:`edgekd.distill.methods`.
``qat`` and ``prune`` wrap the final student of any method. Teacher targets are cached on disk by (teacher
fingerprint, data fingerprint) unless the teacher must run online: by default it does exactly when augmentation is
on, because cached targets describe the un-augmented images; ``teacher_mode="cached"`` with augmentation caches the
teacher's targets on ``views`` fixed augmented views instead.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from ..budget import closes_bars_on_error
from ..errors import EdgekdError, TeacherError
from ..preprocess import parse as parse_preprocess
from ..preprocess import record as preprocess_record
from . import inputs
from .augment import KINDS as AUGMENTATIONS
from .augment import online as online_augmenter
from .context import Context
from .losses import UNLABELED
from .methods import METHODS, entry, traits
from .record import DistillRun
from .student import choose_for_profile as choose_student_for_profile, describe as describe_student, resolve as resolve_student

TEACHER_MODES = ("auto", "cached", "online")


@closes_bars_on_error
def run_distillation(
    teachers,
    data,
    *,
    student=None,
    profile: Optional[str] = None,
    method: str = "kd",
    val=None,
    unlabeled=None,
    temperature: float = 4.0,
    alpha: float = 0.7,
    epochs: int = 30,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    qat: bool = False,
    prune: Optional[float] = None,
    feature_layers: Optional[Sequence[Tuple[str, str]]] = None,
    beta: Optional[float] = None,
    teacher_weights: Optional[Sequence[float]] = None,
    teacher_classes: Optional[Sequence[Optional[Sequence[int]]]] = None,
    augment: str = "none",
    teacher_mode: str = "auto",
    views: int = 8,
    strategy=None,
    precision: Optional[str] = None,
    generations: int = 1,
    max_gap: float = 10.0,
    crd_negatives: int = 1024,
    cache: bool = True,
    progress: bool = True,
    seed: int = 0,
    time_budget="20m",
    patience: Optional[int] = 3,
    preprocess=None,
) -> DistillRun:
    """Distil ``teachers`` (paths, Keras models, callables or :class:`Teacher`; several for ``multi``) into a student.

    ``student``: a family spec (``"mobilenetv3:width=0.5"``), a Keras model file (its architecture, trained afresh)
    or a tf_keras model; or ``profile``: the smallest student that fits that device and keeps 97% of the teacher's
    validation accuracy, chosen by the build's tournament in a third of ``time_budget``; ``self`` defaults to the
    teacher's architecture.
    ``data``/``val``/``unlabeled``: paths or :class:`Dataset`; without ``val``, 10% of ``data`` is held out.
    ``preprocess``: how raw data map to the inputs of the teacher and the student ("auto", "none", "scale=S,offset=O",
    "mean=..,std=.." or an ``edgekd_runtime.Preprocessing``; see :mod:`edgekd.preprocess`), recorded in distill.json.
    A teacher that scores near chance on the validation data under it stops the run before training.
    ``feature_layers``: (student layer, teacher layer) pairs for fitnet/at; default: matched by spatial size.
    ``epochs`` is a cap: training stops after ``patience`` epochs without a better validation accuracy (best weights
    kept; None trains every epoch) and before ``time_budget`` ("20m", seconds; None: no limit) runs out, counted
    from this call.

    >>> run = run_distillation("teacher.keras", "train.npz", student="mobilenetv3:width=0.5", method="at", epochs=10)  # doctest: +SKIP
    >>> run.save("out/at")
    """
    from ..budget import Budget, parse_duration
    from ..teachers import data_fingerprint
    from .distributed import make_strategy

    clock = Budget(parse_duration(time_budget)) if time_budget is not None else None
    if method not in METHODS:
        raise EdgekdError(f"unknown method {method!r}", f"choose one of {', '.join(METHODS)}")
    if augment not in AUGMENTATIONS:
        raise EdgekdError(f"unknown augmentation {augment!r}", f"choose one of {', '.join(AUGMENTATIONS)}")
    if teacher_mode not in TEACHER_MODES:
        raise EdgekdError(f"unknown teacher mode {teacher_mode!r}", f"choose one of {', '.join(TEACHER_MODES)}")
    online = teacher_mode == "online" or (teacher_mode == "auto" and augment != "none")
    # Cached targets with augmentation: the teacher labels `views` fixed augmented copies of every image once.
    view_cache = teacher_mode == "cached" and augment != "none"
    can = traits(method)
    if view_cache and not can.fixed_views:
        raise EdgekdError(f"{method} with --augment needs the teacher online: fixed views carry the teacher's logits only",
                          "use --teacher-mode online (the default with augmentation), or --augment none")
    if view_cache and views < 1:
        raise EdgekdError(f"--views must be at least 1 (got {views})", "e.g. --views 8: each image gets 8 labelled crops")
    if prune is not None and not 0.0 < prune < 1.0:
        raise EdgekdError(f"--prune is a target sparsity within (0, 1) (got {prune})", "e.g. --prune 0.5")
    parse_preprocess(preprocess)  # a bad --preprocess fails before the data are read
    teacher_list = list(teachers) if isinstance(teachers, (list, tuple)) else [teachers]
    if not teacher_list:
        raise TeacherError("no teacher given", "pass --teacher")
    if can.several_teachers and len(teacher_list) < 2:
        raise TeacherError("multi-teacher distillation needs at least two teachers", "repeat --teacher, or use --method kd")
    if not can.several_teachers and len(teacher_list) > 1:
        raise TeacherError(f"{len(teacher_list)} teachers given but method {method} uses one", "use --method multi for several teachers")
    if not can.online_teacher and online:
        raise EdgekdError(f"{method} trains from cached teacher targets", "turn augmentation off (--augment none) for this method")

    strategy = make_strategy(strategy) if isinstance(strategy, str) or strategy is None else strategy
    if strategy is not None and can.no_strategy:
        raise EdgekdError(can.no_strategy, f"drop --strategy for {method}")

    d = inputs.prepare(data, val, unlabeled, seed, preprocess)
    data_fp, val_fp = data_fingerprint(d.x), data_fingerprint(d.x_val)
    loaded = inputs.load_teachers(teacher_list, d.x, d.num_classes, teacher_classes, teacher_weights)
    described = inputs.describe_teachers(loaded, d.x_val, d.y_val, val_fp, cache)
    inputs.check_teacher_accuracy(loaded, described, d, progress)
    choice = None
    if student is None and profile is not None:
        # Chosen for accuracy per cost, as `edgekd build` does. With several teachers the first that covers every
        # class ranks the students (a specialist's logits have only its own classes' columns).
        generalist = next((t for t in loaded if getattr(t, "classes", None) is None), None)
        student, choice = choose_student_for_profile(profile, generalist, d, clock, batch_size, seed, _say(progress), cache=cache)
    model = resolve_student(student, profile, method, loaded[0], d.input_shape, d.num_classes, seed)
    common = dict(temperature=temperature, alpha=alpha, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                  val=(d.x_val, d.y_val), progress=progress, seed=seed, strategy=strategy, precision=precision,
                  patience=patience, deadline=clock.deadline if clock is not None else None)
    final = dict(wrap=_wrapper(qat, prune), augment=online_augmenter(augment, d.input_shape))
    pre = d.preprocessing
    config = {"method": method, "temperature": temperature, "alpha": alpha, "epochs": epochs, "batch_size": batch_size,
              "learning_rate": learning_rate, "qat": qat, "prune": prune, "augment": augment, "teacher_online": online, "views": views if view_cache else None,
              "strategy": type(strategy).__name__ if strategy is not None else None, "precision": precision or "float32",
              "num_classes": d.num_classes, "input_shape": list(d.input_shape), "preprocessing": preprocess_record(preprocess, pre),
              "train_samples": int(np.sum(d.y != UNLABELED)), "unlabeled_samples": int(np.sum(d.y == UNLABELED)), "val_samples": d.val_samples,
              "data_fingerprint": data_fp, "seed": seed, "student": {**describe_student(student, profile), **({"profile": profile, "selection": choice} if choice else {})},
              "time_budget_seconds": clock.total if clock is not None else None, "patience": patience}
    ctx = Context(x=d.x, y=d.y, x_val=d.x_val, y_val=d.y_val, data_fp=data_fp, val_fp=val_fp, input_shape=d.input_shape,
                  num_classes=d.num_classes, teachers=loaded, common=common, final=final, config=config, extra={}, online=online,
                  augment=augment, views=views if view_cache else None, student=student, feature_layers=feature_layers, beta=beta,
                  teacher_weights=teacher_weights, generations=generations, max_gap=max_gap, crd_negatives=crd_negatives,
                  cache=cache, progress=progress, seed=seed)

    result = entry(method)(ctx, model)
    config["feature_layers"] = config.get("feature_layers")
    trained = result.student
    val_acc = ctx.val_accuracy(trained)
    if prune is not None:
        from .pruning import kernel_sparsity

        ctx.extra["kernel_sparsity"] = kernel_sparsity(trained)
    result.teacher_seconds = ctx.teacher_seconds
    return DistillRun(trained, result, config, described, val_acc, ctx.extra)


def _say(progress: bool):
    """Messages print with ``progress``; warnings print always (--quiet hides progress, not problems)."""
    return lambda message: print(message) if progress or message.startswith("warning") else None


def _wrapper(qat: bool, prune: Optional[float]):
    """The ``wrap`` argument of :func:`edgekd.distill.loop.distill` for QAT or pruning (None for neither)."""
    if qat and prune is not None:
        raise EdgekdError("--qat and --prune together are not supported", "distil with --prune, then run --qat on the result")
    if qat:
        from .qat import quantize_student

        return lambda student, steps: (quantize_student(student), [], None)
    if prune is not None:
        from . import pruning

        return lambda student, steps: (pruning.prune_model(student, prune, steps), pruning.callbacks(), pruning.strip)
    return None


def run_tuning(teacher, data, *, student=None, profile: Optional[str] = None, val=None, temperatures=None, alphas=None,
               epochs: int = 5, batch_size: int = 64, learning_rate: float = 3e-3, cache: bool = True, progress: bool = True, seed: int = 0,
               preprocess=None):
    """:func:`edgekd.distill.tuning.tune` from paths: load, check, cache the teacher's logits, search the grid.

    Without ``val``, 10% of ``data`` is held out, so the choice is never made on the data a report is scored on.
    ``preprocess`` as for :func:`run_distillation`; a teacher near chance under it stops the search before training."""
    from ..teachers import data_fingerprint, soft_labels
    from .tuning import DEFAULT_ALPHAS, DEFAULT_TEMPERATURES, tune

    d = inputs.prepare(data, val, seed=seed, preprocess=preprocess)
    (t,) = inputs.load_teachers([teacher], d.x, d.num_classes)
    inputs.check_teacher_accuracy([t], inputs.describe_teachers([t], d.x_val, d.y_val, data_fingerprint(d.x_val), cache), d, progress)
    logits = soft_labels(t, d.x, data_fingerprint(d.x), cache=cache)
    make = lambda: resolve_student(student, profile, "kd", t, d.input_shape, d.num_classes, seed)  # noqa: E731
    for name, grid in (("temperatures", temperatures), ("alphas", alphas)):
        if grid is not None and not len(grid):
            raise EdgekdError(f"the {name} grid is empty", "give at least one value")
    return tune(make, d.x, d.y, logits, d.x_val, d.y_val, temperatures=temperatures or DEFAULT_TEMPERATURES, alphas=alphas or DEFAULT_ALPHAS,
                epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed, progress=progress)
