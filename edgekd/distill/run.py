"""One call from teachers + data + a method name to a trained student and its record (``edgekd distill``).

Methods: kd (Hinton), fitnet (hints), at (attention transfer), crd (contrastive), multi (several teachers),
progressive (through teacher assistants), self (born-again). ``qat`` and ``prune`` wrap the final student of any
method. Teacher targets are cached on disk by (teacher fingerprint, data fingerprint) unless the teacher must run
online: by default it does exactly when augmentation is on, because cached targets describe the un-augmented images;
``teacher_mode="cached"`` with augmentation caches the teacher's targets on ``views`` fixed augmented views instead.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from tqdm.auto import tqdm

from ..data import Dataset, load_dataset, preprocessing_for, split, validate
from ..errors import DataError, EdgekdError, TeacherError
from ..teachers import Teacher, check_teachers, data_fingerprint, fingerprint_weights, load_teacher, soft_labels
from ..teachers.cache import CACHE_DIR
from . import DistillResult, distill
from .augment import KINDS as AUGMENTATIONS
from .augment import fixed_views, online as online_augmenter
from .losses import UNLABELED

METHODS = ("kd", "fitnet", "at", "crd", "multi", "progressive", "self")
TEACHER_MODES = ("auto", "cached", "online")
FEATURE_CACHE_LIMIT = 512 << 20  # bytes of float16 feature targets kept in memory; above it the teacher runs online
VAL_FRACTION = 0.1  # held out of the training data when no validation set is given


@dataclass
class DistillRun:
    student: Any
    result: DistillResult
    config: Dict[str, Any]
    teachers: List[Dict[str, Any]]
    val_accuracy: Optional[float]
    extra: Dict[str, Any] = field(default_factory=dict)

    def record(self) -> Dict[str, Any]:
        return {
            "config": self.config,
            "teachers": self.teachers,
            "history": self.result.history,
            "val_accuracy": self.val_accuracy,
            "seconds_per_epoch": self.result.seconds_per_epoch,
            "teacher_inference_seconds": self.result.teacher_seconds,
            "student": {"params": int(self.student.count_params()), "name": self.student.name},
            **self.extra,
        }

    def save(self, out: Union[str, Path], force: bool = False) -> Path:
        """Write ``out/student/`` (a tf_keras SavedModel folder) and ``out/distill.json``, atomically."""
        from .. import __version__

        out = Path(out)
        if out.exists() and not force:
            raise DataError(f"{out} already exists", "choose another --out or pass --force to replace it")
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".edgekd-distill-", dir=out.parent))
        try:
            self.student.save(str(staging / "student"), save_format="tf")
            record = {**self.record(), "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "producer": f"edgekd {__version__}"}
            if self.config.get("qat"):
                record["load_with"] = "edgekd.distill.qat.load_qat_student(path) (tfmot's quantize wrappers need their scope)"
            (staging / "distill.json").write_text(json.dumps(record, indent=2, default=_jsonable))
            if out.exists():
                shutil.rmtree(out)
            os.replace(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return out


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


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
) -> DistillRun:
    """Distil ``teachers`` (paths, Keras models, callables or :class:`Teacher`; several for ``multi``) into a student.

    ``student``: a family spec (``"mobilenetv3:width=0.5"``), a Keras model file (its architecture, trained afresh)
    or a tf_keras model; or ``profile`` to size one for a device; ``self`` defaults to the teacher's architecture.
    ``data``/``val``/``unlabeled``: paths or :class:`Dataset`; without ``val``, 10% of ``data`` is held out.
    ``feature_layers``: (student layer, teacher layer) pairs for fitnet/at; default: matched by spatial size.
    ``epochs`` is a cap: training stops after ``patience`` epochs without a better validation accuracy (best weights
    kept; None trains every epoch) and before ``time_budget`` ("20m", seconds; None: no limit) runs out, counted
    from this call.

    >>> run = run_distillation("teacher.keras", "train.npz", student="mobilenetv3:width=0.5", method="at", epochs=10)  # doctest: +SKIP
    >>> run.save("out/at")
    """
    from ..budget import Budget, parse_duration
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
    if view_cache and method not in ("kd", "progressive", "self"):
        raise EdgekdError(f"{method} with --augment needs the teacher online: fixed views carry the teacher's logits only",
                          "use --teacher-mode online (the default with augmentation), or --augment none")
    if view_cache and views < 1:
        raise EdgekdError(f"--views must be at least 1 (got {views})", "e.g. --views 8: each image gets 8 labelled crops")
    if prune is not None and not 0.0 < prune < 1.0:
        raise EdgekdError(f"--prune is a target sparsity within (0, 1) (got {prune})", "e.g. --prune 0.5")
    teacher_list = list(teachers) if isinstance(teachers, (list, tuple)) else [teachers]
    if not teacher_list:
        raise TeacherError("no teacher given", "pass --teacher")
    if method == "multi" and len(teacher_list) < 2:
        raise TeacherError("multi-teacher distillation needs at least two teachers", "repeat --teacher, or use --method kd")
    if method != "multi" and len(teacher_list) > 1:
        raise TeacherError(f"{len(teacher_list)} teachers given but method {method} uses one", "use --method multi for several teachers")
    if method in ("progressive", "self", "multi") and online:
        raise EdgekdError(f"{method} trains from cached teacher targets", "turn augmentation off (--augment none) for this method")
    strategy = make_strategy(strategy) if isinstance(strategy, str) or strategy is None else strategy
    if strategy is not None and method == "crd":
        raise EdgekdError("CRD's memory banks are per-process state and do not run under tf.distribute", "drop --strategy for crd")

    # Data: raw arrays -> the student's [0, 1] range; unlabeled transfer data joins with UNLABELED labels.
    train, val_set = _train_and_val(data, val, seed)
    if val_set.input_shape != train.input_shape:
        raise DataError(f"validation samples are {val_set.input_shape} but training samples {train.input_shape}", "both sets must have the same sample shape")
    num_classes = max(train.num_classes, val_set.num_classes)
    pre = preprocessing_for(train)
    x = pre.apply(train.x).astype(np.float32)
    y = train.y.astype(np.int64)
    if unlabeled is not None:
        extra = _dataset(unlabeled, "unlabeled", labeled=False)
        if extra.input_shape != train.input_shape:
            raise DataError(f"unlabeled samples are {extra.input_shape} but training samples {train.input_shape}", "both sets must have the same sample shape")
        x = np.concatenate([x, pre.apply(extra.x).astype(np.float32)])
        y = np.concatenate([y, np.full(len(extra), UNLABELED, np.int64)])
    x_val = pre.apply(val_set.x).astype(np.float32)
    y_val = val_set.y
    data_fp = data_fingerprint(x)
    val_fp = data_fingerprint(x_val)

    # Teachers: loaded, probed, and checked against the data and each other before any training.
    classes = list(teacher_classes) if teacher_classes is not None else [None] * len(teacher_list)
    if len(classes) != len(teacher_list):
        raise TeacherError(f"{len(teacher_list)} teachers but {len(classes)} class lists", "give one class list per teacher (or none)")
    loaded = [load_teacher(t, classes=c) for t, c in zip(teacher_list, classes)]
    check_teachers(loaded, x, num_classes)
    if teacher_weights is not None and len(teacher_weights) != len(loaded):
        raise TeacherError(f"{len(loaded)} teachers but {len(teacher_weights)} weights", "give one weight per teacher")
    teacher = loaded[0]

    model = _student(student, profile, method, teacher, train.input_shape, num_classes, seed)
    common = dict(temperature=temperature, alpha=alpha, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                  val=(x_val, y_val), progress=progress, seed=seed, strategy=strategy, precision=precision,
                  patience=patience, deadline=clock.deadline if clock is not None else None)
    final = dict(wrap=_wrapper(qat, prune), augment=online_augmenter(augment, train.input_shape))
    config = {"method": method, "temperature": temperature, "alpha": alpha, "epochs": epochs, "batch_size": batch_size,
              "learning_rate": learning_rate, "qat": qat, "prune": prune, "augment": augment, "teacher_online": online, "views": views if view_cache else None,
              "strategy": type(strategy).__name__ if strategy is not None else None, "precision": precision or "float32",
              "num_classes": num_classes, "input_shape": list(train.input_shape), "preprocessing": {"scale": pre.scale, "offset": pre.offset},
              "train_samples": int(np.sum(y != UNLABELED)), "unlabeled_samples": int(np.sum(y == UNLABELED)), "val_samples": len(val_set),
              "data_fingerprint": data_fp, "seed": seed, "student": _describe_student(student, profile),
              "time_budget_seconds": clock.total if clock is not None else None, "patience": patience}
    extra: Dict[str, Any] = {}
    t_seconds = 0.0

    def logits_of(t: Teacher, xs, fp):
        nonlocal t_seconds
        start = time.perf_counter()
        out = soft_labels(t, xs, fp, cache=cache)
        t_seconds += time.perf_counter() - start
        return out

    logits_of.feature_seconds = 0.0

    def kd_from(t: Teacher, student_model, last: bool, desc: str):
        if alpha == 0.0 and last:
            # Labels only: the teacher term weighs nothing, so the teacher is not run at all.
            config["teacher_online"], config["views"] = False, None
            return distill(student_model, x, y, np.zeros((len(x), num_classes), np.float32), desc=f"{desc} labels only", **common, **final)
        if online and last:
            return distill(student_model, x, y, online_teacher=t.tf_logits, desc=desc, **common, **final)
        if view_cache and last:
            fixed = fixed_views(augment, len(x), train.input_shape, views, seed)
            labels = np.stack([logits_of(t, fixed.images(x, k), _view_fingerprint(data_fp, fixed.key(k)))
                               for k in tqdm(range(fixed.count), desc="teacher labels views", unit="view", disable=not progress, leave=False)])
            return distill(student_model, x, y, views=(fixed, labels), desc=f"{desc} {views} views", **common, wrap=final["wrap"])
        return distill(student_model, x, y, logits_of(t, x, data_fp), desc=desc, **common, **(final if last else {}))

    if method == "kd":
        result = kd_from(teacher, model, True, "kd")
    elif method in ("fitnet", "at"):
        result = _feature_method(method, teacher, model, x, y, data_fp, feature_layers, beta, online, cache, common, final, config, logits_of)
    elif method == "crd":
        result = _crd(teacher, model, x, y, data_fp, beta, online, cache, common, final, config, logits_of, crd_negatives, seed)
    elif method == "multi":
        val_logits = [logits_of(t, x_val, val_fp) for t in loaded]
        weights = list(teacher_weights) if teacher_weights is not None else _accuracy_weights(val_logits, y_val, loaded)
        from .multi_teacher import combine

        probs = combine([logits_of(t, x, data_fp) for t in loaded], weights, num_classes, temperature, [t.classes for t in loaded])
        config["teacher_weights"] = weights
        config["teacher_weights_from"] = "given" if teacher_weights is not None else "validation accuracy"
        result = distill(model, x, y, targets={"probs": probs}, desc="multi", **common, **final)
    elif method == "progressive":
        result = _progressive(teacher, model, student, train.input_shape, num_classes, max_gap, kd_from, extra, x_val, y_val, seed)
    else:  # self
        result = _born_again(teacher, model, generations, kd_from, extra, x_val, y_val, seed)
    config["feature_layers"] = config.get("feature_layers")
    student_model = result.student
    val_acc = float(np.mean(student_model.predict(x_val, batch_size=512, verbose=0).argmax(1) == y_val))
    if prune is not None:
        from .pruning import kernel_sparsity

        extra["kernel_sparsity"] = kernel_sparsity(student_model)
    result.teacher_seconds = t_seconds + logits_of.feature_seconds
    teachers_info = []
    for t in loaded:
        z = soft_labels(t, x_val, val_fp, cache=cache)
        pred = np.asarray(t.classes)[z.argmax(1)] if t.classes is not None else z.argmax(1)
        keep = np.isin(y_val, t.classes) if t.classes is not None else np.ones(len(y_val), bool)
        teachers_info.append({**t.describe(), "val_accuracy": float(np.mean(pred[keep] == y_val[keep])) if keep.any() else None,
                              "params": int(t.keras_model.count_params()) if t.keras_model is not None else None})
    return DistillRun(student_model, result, config, teachers_info, val_acc, extra)


def _view_fingerprint(data_fp: str, key: str) -> str:
    return hashlib.sha256(f"{data_fp}:{key}".encode()).hexdigest()


def _train_and_val(data, val, seed):
    """The training set and a validation set: ``val`` when given, else a stratified hold-out of ``data``."""
    train = _dataset(data, "data")
    if val is not None:
        return train, _dataset(val, "val")
    if len(train) < 20:
        raise DataError(f"{train.source}: {len(train)} samples are too few to hold out a validation split", "pass --val")
    return split(train, VAL_FRACTION, seed=seed)


def _dataset(source, what: str, labeled: bool = True) -> Dataset:
    if isinstance(source, Dataset):
        validate(source, labeled)
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(f"--{what} must be a path, 'digits' or a Dataset (got {type(source).__name__})")
    return load_dataset(str(source), labeled=labeled)


def _describe_student(student, profile):
    if student is None:
        return {"profile": profile} if profile else {"from": "teacher architecture"}
    if isinstance(student, (str, os.PathLike)):
        return {"spec": str(student)}
    return {"model": getattr(student, "name", type(student).__name__)}


def _student(student, profile, method, teacher: Teacher, input_shape, num_classes, seed):
    """The student to train: from a spec, a model file (architecture only), a model object, a profile, or the teacher."""
    import tf_keras as keras

    from ..students import StudentSpec, build_student

    if student is None and profile is None:
        if method == "self":
            from .self_distill import teacher_architecture

            return teacher_architecture(teacher.keras_model, seed=seed)
        raise EdgekdError("no student given", "pass --student SPEC (e.g. mobilenetv3:width=0.5) or --profile DEVICE")
    if student is None:
        from ..profiles import load_profile
        from ..sizing import size_student

        cap = int(teacher.keras_model.count_params() * 0.25) if teacher.keras_model is not None else None
        return build_student(size_student(load_profile(profile), input_shape, num_classes, max_params=cap).spec, input_shape, num_classes, seed=seed)
    if isinstance(student, keras.Model):
        return student
    if isinstance(student, StudentSpec):
        return build_student(student, input_shape, num_classes, seed=seed)
    text = str(student)
    if text.endswith((".keras", ".h5")) or os.path.isdir(text):
        if not os.path.exists(text):
            raise EdgekdError(f"student model file not found: {text}", "pass a family spec such as mobilenetv3:width=0.5, or an existing .keras/.h5 file")
        try:
            template = keras.models.load_model(text, compile=False)
        except Exception as exc:
            raise EdgekdError(f"cannot load student architecture from {text}: {type(exc).__name__}", "save it with tf_keras model.save()")
        keras.utils.set_random_seed(seed)
        model = keras.models.clone_model(template)  # same architecture, fresh weights
        if tuple(model.input_shape[1:]) != tuple(input_shape) or model.output_shape[-1] != num_classes:
            raise EdgekdError(f"student {text} maps {model.input_shape[1:]} -> {model.output_shape[-1]} classes but the data is {input_shape} with {num_classes}",
                              "build the student for this data's input and classes")
        return model
    return build_student(StudentSpec.parse(text), input_shape, num_classes, seed=seed)


def _wrapper(qat: bool, prune: Optional[float]):
    if qat and prune is not None:
        raise EdgekdError("--qat and --prune together are not supported", "distil with --prune, then run --qat on the result")
    if qat:
        from .qat import quantize_student

        return lambda student, steps: (quantize_student(student), [], None)
    if prune is not None:
        from . import pruning

        return lambda student, steps: (pruning.prune_student(student, prune, steps), pruning.callbacks(), pruning.strip)
    return None


def _find(student, name: str):
    """A layer by name, also inside tfmot's wrappers (quant_NAME, prune_low_magnitude_NAME)."""
    from .features import get_layer

    for candidate in (name, f"quant_{name}", f"prune_low_magnitude_{name}"):
        try:
            return student.get_layer(candidate)
        except ValueError:
            continue
    return get_layer(student, name, "the student")


def _teacher_targets(teacher: Teacher, outputs: Dict[str, Any], x, data_fp, tag, online, cache, logits_of):
    """Targets from the teacher's intermediate layers: cached arrays, or an online function returning them with the logits.

    ``outputs`` maps a target key to (keras tensor of the teacher, transform applied in TF)."""
    import tensorflow as tf

    from .features import estimate_bytes, submodel

    keys = list(outputs)
    tm = teacher.keras_model
    # The teacher's own output rides along, so an online step runs the teacher once for logits and features.
    extractor = submodel(tm, [tm.outputs[0], *[outputs[k][0] for k in keys]])
    transforms = [outputs[k][1] for k in keys]

    def compute(xb, with_logits=False):
        outs = list(extractor(xb, training=False))
        found = {k: (f(o) if f is not None else tf.cast(o, tf.float32)) for k, o, f in zip(keys, outs[1:], transforms)}
        if with_logits:
            z = tf.cast(outs[0], tf.float32)
            found["logits"] = tf.math.log(tf.clip_by_value(z, 1e-7, 1.0)) if teacher.outputs_probabilities else z
        return found

    too_big = estimate_bytes([tuple(compute(tf.constant(x[:1]))[k].shape) for k in keys], len(x)) > FEATURE_CACHE_LIMIT
    if online or too_big:
        return None, lambda xb: compute(xb, with_logits=True), ("online: targets would take more than 512 MB" if too_big and not online else "online")
    path = CACHE_DIR / "features" / f"{teacher.fingerprint[:16]}-{data_fp[:16]}-{tag}.npz"
    if cache and path.is_file():
        with np.load(path) as stored:
            if all(k in stored.files and len(stored[k]) == len(x) for k in keys):
                return {**{k: stored[k].astype(np.float32) for k in keys}, "logits": logits_of(teacher, x, data_fp)}, None, "cached"
    start = time.perf_counter()
    chunks = [compute(tf.constant(x[i : i + 256])) for i in range(0, len(x), 256)]
    elapsed = time.perf_counter() - start
    teacher.inference_seconds += elapsed
    logits_of.feature_seconds += elapsed  # reported with the soft labels' time as the run's teacher inference
    arrays = {k: np.concatenate([c[k].numpy() for c in chunks]).astype(np.float16) for k in keys}
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    return {**{k: v.astype(np.float32) for k, v in arrays.items()}, "logits": logits_of(teacher, x, data_fp)}, None, "cached"


def _feature_method(method, teacher, model, x, y, data_fp, feature_layers, beta, online, cache, common, final, config, logits_of):
    from . import attention, fitnet
    from .features import check_pairs, match_by_spatial_size, teacher_model_of

    tm = teacher_model_of(teacher, method)
    pairs = [tuple(p) for p in feature_layers] if feature_layers else match_by_spatial_size(model, tm)
    if method == "fitnet" and not feature_layers:
        pairs = [pairs[len(pairs) // 2]]  # one hint in the middle of the network, as in FitNets
    check_pairs(model, tm, pairs, need_same_size=True)
    config["feature_layers"] = [list(p) for p in pairs]
    beta = float(beta) if beta is not None else (fitnet.DEFAULT_BETA if method == "fitnet" else attention.DEFAULT_BETA)
    config["beta"] = beta
    outputs = {f"t{i}": (tm.get_layer(t_name).output, attention.attention_map if method == "at" else None) for i, (_, t_name) in enumerate(pairs)}
    targets, online_fn, mode = _teacher_targets(teacher, outputs, x, data_fp, f"{method}-{'-'.join(p[1] for p in pairs)}", online, cache, logits_of)
    config["teacher_targets"] = mode

    def terms(student):
        feats, term_list = [], []
        for i, (s_name, t_name) in enumerate(pairs):
            feats.append(_find(student, s_name).output)
            if method == "fitnet":
                term_list.append(fitnet.HintTerm(i, f"t{i}", int(feats[-1].shape[-1]), int(tm.get_layer(t_name).output.shape[-1]), beta=beta, name=f"hint{i}"))
            else:
                term_list.append(attention.AttentionTerm(i, f"t{i}", beta=beta, name=f"at{i}"))
        return term_list, feats

    if targets is None:
        return distill(model, x, y, online_teacher=online_fn, terms=terms, desc=method, **common, **final)
    return distill(model, x, y, targets=targets, terms=terms, desc=method, **common, **{k: v for k, v in final.items() if k != "augment"})


def _crd(teacher, model, x, y, data_fp, beta, online, cache, common, final, config, logits_of, negatives, seed):
    from . import crd
    from .features import penultimate_layer, teacher_model_of

    tm = teacher_model_of(teacher, "crd")
    beta = float(beta) if beta is not None else crd.DEFAULT_BETA
    config["beta"] = beta
    embed = penultimate_layer(tm)
    if len(embed.shape) != 2:
        raise EdgekdError(f"the teacher's classifier reads a {len(embed.shape)}-D tensor", "CRD needs a (batch, features) input to the last Dense layer")
    targets, online_fn, mode = _teacher_targets(teacher, {"embed": (embed, None)}, x, data_fp, "crd-embed", online, cache, logits_of)
    config["teacher_targets"] = mode
    index = np.arange(len(x))
    config["crd"] = {"negatives": int(min(negatives, len(x) - 1)), "dim": 128, "tau": 0.07, "momentum": 0.5}

    def terms(student):
        feat = penultimate_layer(student)
        return [crd.CRDTerm(0, "embed", num_data=len(x), negatives=negatives, beta=beta, seed=seed, name="crd")], [feat]

    if targets is None:
        return distill(model, x, y, targets={"index": index}, online_teacher=online_fn, terms=terms, desc="crd", **common, **final)
    return distill(model, x, y, targets={**targets, "index": index}, terms=terms, desc="crd", **common, **{k: v for k, v in final.items() if k != "augment"})


def _accuracy_weights(val_logits, y_val, teachers):
    from .multi_teacher import accuracy_weights

    return accuracy_weights(val_logits, y_val, [t.classes for t in teachers])


def _progressive(teacher, model, student_arg, input_shape, num_classes, max_gap, kd_from, extra, x_val, y_val, seed):
    from ..students import StudentSpec
    from .progressive import assistant_params, build_assistant

    if teacher.keras_model is None:
        raise TeacherError(f"progressive distillation sizes assistants from the teacher's parameter count, unknown for a {teacher.kind} teacher",
                           "pass a Keras teacher, or use --method kd")
    spec = student_arg if isinstance(student_arg, StudentSpec) else None
    if spec is None and isinstance(student_arg, str) and not student_arg.endswith((".keras", ".h5")) and not os.path.isdir(student_arg):
        spec = StudentSpec.parse(student_arg)
    spec = spec or StudentSpec("mobilenetv3", width=1.0, depth=3)
    sizes = assistant_params(teacher.keras_model.count_params(), model.count_params(), max_gap)
    current = teacher
    chain = []
    for i, target in enumerate(sizes):
        a_spec, assistant = build_assistant(spec, input_shape, num_classes, target, seed=seed)
        res = kd_from(current, assistant, False, f"assistant {i + 1}/{len(sizes)}")
        acc = float(np.mean(res.student.predict(x_val, batch_size=512, verbose=0).argmax(1) == y_val))
        chain.append({"spec": str(a_spec), "params": int(res.student.count_params()), "val_accuracy": acc, "seconds_per_epoch": res.seconds_per_epoch})
        current = load_teacher(res.student, name=f"assistant{i + 1}")
    extra["assistants"] = chain
    extra["max_gap"] = max_gap
    return kd_from(current, model, True, "student")


def _born_again(teacher, model, generations, kd_from, extra, x_val, y_val, seed):
    from .self_distill import teacher_architecture

    if generations < 1:
        raise EdgekdError(f"generations must be at least 1 (got {generations})")
    current = teacher
    history = []
    for g in range(generations):
        last = g == generations - 1
        student_model = model if last else teacher_architecture(model, seed=seed + g + 1)
        res = kd_from(current, student_model, last, f"generation {g + 1}/{generations}")
        acc = float(np.mean(res.student.predict(x_val, batch_size=512, verbose=0).argmax(1) == y_val))
        history.append({"generation": g + 1, "val_accuracy": acc})
        if not last:
            current = load_teacher(res.student, name=f"generation{g + 1}")
    extra["generations"] = history
    return res


def run_tuning(teacher, data, *, student=None, profile: Optional[str] = None, val=None, temperatures=None, alphas=None,
               epochs: int = 5, batch_size: int = 64, learning_rate: float = 3e-3, cache: bool = True, progress: bool = True, seed: int = 0):
    """:func:`edgekd.distill.tuning.tune` from paths: load, check, cache the teacher's logits, search the grid.

    Without ``val``, 10% of ``data`` is held out, so the choice is never made on the data a report is scored on."""
    from .tuning import DEFAULT_ALPHAS, DEFAULT_TEMPERATURES, tune

    train, val_set = _train_and_val(data, val, seed)
    num_classes = max(train.num_classes, val_set.num_classes)
    pre = preprocessing_for(train)
    x, x_val = pre.apply(train.x).astype(np.float32), pre.apply(val_set.x).astype(np.float32)
    t = load_teacher(teacher)
    check_teachers([t], x, num_classes)
    logits = soft_labels(t, x, data_fingerprint(x), cache=cache)
    make = lambda: _student(student, profile, "kd", t, train.input_shape, num_classes, seed)  # noqa: E731
    for name, grid in (("temperatures", temperatures), ("alphas", alphas)):
        if grid is not None and not len(grid):
            raise EdgekdError(f"the {name} grid is empty", "give at least one value")
    return tune(make, x, train.y, logits, x_val, val_set.y, temperatures=temperatures or DEFAULT_TEMPERATURES, alphas=alphas or DEFAULT_ALPHAS,
                epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed, progress=progress)


def parse_floats(text: Optional[str], what: str) -> Optional[List[float]]:
    """``"2,3,4"`` -> [2.0, 3.0, 4.0]."""
    if text is None or text == "":
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise EdgekdError(f"{what} {text!r} is not a comma-separated list of numbers", f"e.g. {what} 0.6,0.4")


def parse_pairs(text: Optional[str]) -> Optional[List[Tuple[str, str]]]:
    """``"block2_add:conv2d_2,block1_add:conv2d_1"`` -> [(student layer, teacher layer), ...]."""
    if not text:
        return None
    pairs = []
    for item in text.split(","):
        s, sep, t = item.strip().partition(":")
        if not sep or not s or not t:
            raise EdgekdError(f"--feature-layers item {item!r} is not student_layer:teacher_layer", "e.g. --feature-layers block2_add:conv2d_2")
        pairs.append((s, t))
    return pairs


def parse_classes(items: Optional[Sequence[str]], n_teachers: int) -> Optional[List[Optional[List[int]]]]:
    """One ``--teacher-classes`` per teacher: ``"all"`` or class indices such as ``"0,1,2"`` or ``"0-4"``."""
    if not items:
        return None
    if len(items) != n_teachers:
        raise EdgekdError(f"{n_teachers} teachers but {len(items)} --teacher-classes", "give one per teacher, 'all' for a generalist")
    out: List[Optional[List[int]]] = []
    for text in items:
        if text.strip() == "all":
            out.append(None)
            continue
        classes: List[int] = []
        try:
            for part in text.split(","):
                lo, sep, hi = part.strip().partition("-")
                classes.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
        except ValueError:
            raise EdgekdError(f"--teacher-classes {text!r} is not a list of class indices", "e.g. 0-4 or 0,2,4 or all")
        out.append(classes)
    return out
