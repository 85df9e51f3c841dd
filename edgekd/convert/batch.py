"""Convert one trained student to several targets, check each against the student, write a bundle.

``edgekd convert`` calls :func:`convert_student`. The output folder is a bundle the runtime reads
(``edgekd-runtime profile DIR``), plus ``parity.json``: per artifact, the parity measured here or the
reason it could not be measured here.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from edgekd_runtime import Preprocessing, TensorSpec

from ..bundle_assembly import EVAL_SAMPLES, assemble_bundle, check_replaceable, profile_section, student_section
from ..errors import ConversionError, DataError, EdgekdError
from . import Converted, convert, resolve_target
from .parity import check as parity_check
from .parity import FAILURE_HINT, failure_reason
from .tflite import CALIBRATION_SAMPLES

PARITY_FILE = "parity.json"


@dataclass
class BatchResult:
    out: Path
    converted: List[Converted]
    keras_accuracy: Optional[float]
    parity: Dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> List[Converted]:
        return [c for c in self.converted if c.artifact.verification == "failed"]


RECORD_FILE = "distill.json"


def locate_student(path) -> Tuple[Path, Optional[Path]]:
    """(model path, its distill.json or None) for a student given as the folder `edgekd distill`/`build` wrote
    (``student/`` + ``distill.json``), as that folder's ``student/``, or as a model file or folder of its own."""
    path = Path(path)
    if path.is_dir() and (path / RECORD_FILE).is_file() and (path / "student").is_dir():
        return path / "student", path / RECORD_FILE
    if path.name == "student" and (path.parent / RECORD_FILE).is_file():
        return path, path.parent / RECORD_FILE
    return path, None


def load_student(path):
    """A tf_keras student from a .keras/.h5 file or SavedModel folder (or the folder holding ``student/`` and
    distill.json), including quantization-aware (tfmot) models; pruning wrappers are stripped, since a deployed
    model carries plain weights."""
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    path, _ = locate_student(path)
    if not path.exists():
        raise EdgekdError(f"student not found: {path}", "pass the .keras/.h5 file or SavedModel folder of a trained tf_keras student")
    _register_student_layers()

    try:
        with tfmot.quantization.keras.quantize_scope(), tfmot.sparsity.keras.prune_scope():
            model = keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # tf_keras raises many types for foreign or damaged files
        hint = "save it with model.save('student.keras'); quantization-aware models only reload from .h5 or a SavedModel folder"
        raise EdgekdError(f"cannot load student {path}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}", hint)
    if any(type(layer).__name__ == "PruneLowMagnitude" for layer in model.layers):
        model = tfmot.sparsity.keras.strip_pruning(model)
    from ..students.head import without_softmax

    return without_softmax(model, f"student {path}")


def _register_student_layers() -> None:
    """Import every student family module: importing registers their custom layers (e.g. HardSwish)."""
    import importlib
    import pkgutil

    from .. import students

    for info in pkgutil.iter_modules(students.__path__):
        importlib.import_module(f"{students.__name__}.{info.name}")


def _as_dataset(data, labeled: bool):
    from ..data import Dataset, load_dataset

    if data is None or isinstance(data, Dataset):
        return data
    if isinstance(data, np.ndarray):
        return Dataset(data, None, [], "array")
    return load_dataset(str(data), labeled=labeled)


def _check_shape(name: str, ds, expected) -> None:
    if ds.input_shape != expected:
        raise DataError(
            f"{name} has sample shape {ds.input_shape}, the student takes {expected}",
            f"pass samples shaped like the student's input ({', '.join(map(str, expected))})",
        )


def convert_student(
    student,
    targets: Union[str, Sequence[str]],
    out,
    *,
    calibration=None,
    eval_data=None,
    preprocessing: Optional[Preprocessing] = None,
    preprocess: Optional[Union[str, Preprocessing]] = None,
    force: bool = False,
    labels: Optional[List[str]] = None,
    teacher_fingerprint: Optional[str] = None,
    io: Optional[str] = None,
    opset: Optional[int] = None,
    fixed_batch: bool = False,
    coreml_precision: str = "fp16",
    coreml_compress: Optional[str] = None,
    trt_precision: str = "fp16",
    op_limits: Optional[List[str]] = None,
    profile=None,
    eval_samples: int = EVAL_SAMPLES,
    calibration_samples: Optional[int] = None,
) -> BatchResult:
    """Convert ``student`` (a tf_keras model or its file) to every target, check parity on ``eval_data``
    (or, without it, on ``calibration``), and write the bundle to ``out``: an artifact that fails is listed after the
    others, marked failed; when every artifact fails, nothing is written and a ConversionError says why.

    Data are raw (as stored); the preprocessing that maps them to the student's input is the one recorded in the
    distill.json beside ``student`` (the folder `edgekd distill`/`build` wrote, or its ``student/``); without one,
    ``preprocess`` ("auto", "none", "scale=S,offset=O", "mean=..,std=.." or a Preprocessing; ``preprocessing`` is
    its older name), and for auto the map edgekd trains with (uint8 images /255, other data scaled to [0, 1] by
    the range of the calibration data). A ``preprocess`` that differs from the recorded one is an error.
    ``profile`` (a device profile or its name): recorded in the manifest, so the device runs its engine's
    artifact first; its op limits apply to tflm-int8 unless ``op_limits`` is given.

    >>> r = convert_student("student.keras", "tflite-int8,onnx,coreml", "out/conv", calibration="train.npz", eval_data="test.npz")  # doctest: +SKIP
    >>> [(c.artifact.format, c.artifact.verification) for c in r.converted]
    """
    from ..data import preprocessing_for
    from ..preprocess import check_channels, choose_for_student, option_text
    from ..profiles import load_profile

    device = load_profile(profile) if profile is not None else None
    if device is not None and op_limits is None:
        op_limits = device.op_limits
    names = targets.split(",") if isinstance(targets, str) else list(targets)
    formats = list(dict.fromkeys(resolve_target(t) for t in names if t.strip()))
    if not formats:
        raise ConversionError("no target given", "e.g. --to tflite-int8,onnx,coreml")
    out = Path(out)
    if out.exists() and not force:
        raise DataError(f"{out} already exists", "choose another --out or pass --force to replace it")
    if force:
        check_replaceable(out)  # now, not after minutes of conversion
    calib = _as_dataset(calibration, labeled=False)
    test = _as_dataset(eval_data, labeled=True)
    check_set = test if test is not None else calib
    if check_set is None:
        raise DataError("parity needs data: no --eval and no --calibration given", "pass --eval (labelled test data) or --calibration (training inputs)")
    if preprocess is not None and preprocessing is not None:
        raise EdgekdError("both preprocess= and preprocessing= given", "pass preprocess= only (preprocessing= is its older name)")
    asked = preprocess if preprocess is not None else preprocessing
    record_path = locate_student(student)[1] if isinstance(student, (str, Path)) else None
    fixed, source = choose_for_student(asked, record_path)
    model = load_student(student) if isinstance(student, (str, Path)) else student
    expected = tuple(int(v) for v in model.input_shape[1:])
    if calib is not None:
        _check_shape("representative (calibration) data", calib, expected)
    if test is not None:
        _check_shape("eval data", test, expected)
    if fixed is not None:
        check_channels(fixed, expected)
    pre = fixed if fixed is not None else preprocessing_for(calib if calib is not None else check_set)
    if fixed is None:
        source = "auto, derived from the %s data" % ("calibration" if calib is not None else "eval")
    x_calib = pre.apply(calib.x) if calib is not None else None
    n_eval = min(len(check_set), eval_samples)
    x_raw = check_set.x[:n_eval]
    y = check_set.y[:n_eval] if check_set.y is not None else None
    keras_logits = model.predict(pre.apply(x_raw), verbose=0, batch_size=256)
    keras_acc = float(np.mean(keras_logits.argmax(1) == y)) if y is not None else None
    num_classes = int(model.output_shape[-1])
    labels = labels or check_set.class_names or [str(i) for i in range(num_classes)]

    options = {
        "tflite-int8": {"io": io, "calibration_samples": calibration_samples or CALIBRATION_SAMPLES},
        "onnx": {"opset": opset, "fixed_batch": fixed_batch, "profile": device},
        "tensorrt": {"opset": opset, "fixed_batch": fixed_batch, "precision": trt_precision, "profile": device},
        "coreml": {"precision": coreml_precision, "compress": coreml_compress, "labels": labels, "teacher_fingerprint": teacher_fingerprint},
        "tflm-int8": {"op_limits": op_limits},
        "c-int8": {"preprocessing": pre, "profile": device},
    }
    staging = Path(tempfile.mkdtemp(prefix="edgekd-convert-"))
    try:
        converted: Dict[str, Converted] = {}
        for fmt in formats:
            conv = convert(model, fmt, staging, calibration=x_calib, previous=converted, **options.get(fmt, {}))
            if conv.artifact.verification != "not verified here":
                parity_check(conv, pre, x_raw, y, keras_logits, staging)
            converted[fmt] = conv
        parity = {
            "student": str(student) if isinstance(student, (str, Path)) else getattr(model, "name", "student"),
            "keras_accuracy": keras_acc,
            "eval_samples": int(n_eval),
            "eval_source": check_set.source,
            "preprocessing": {"option": option_text(pre), "source": source},
            "artifacts": {fmt: {"path": c.artifact.path, "bytes": c.artifact.bytes, "verification": c.artifact.verification, **c.artifact.host_metrics} for fmt, c in converted.items()},
        }
        # A refused artifact never leads the bundle (the manifest's first artifact is its primary), and a bundle
        # of refused artifacts alone is not written: --out, and what --force would have replaced, stay as they were.
        shipped = sorted(converted.values(), key=lambda c: c.artifact.verification == "failed")
        if shipped[0].artifact.verification == "failed":
            raise ConversionError(f"parity failed, nothing written to {out}: {_reasons(shipped)}", FAILURE_HINT)
        cost = _cost_or_none(model)
        assemble_bundle(
            out,
            name=out.name,
            labels=labels,
            input_spec=TensorSpec([1, *expected], str(check_set.x.dtype)),
            preprocessing=pre,
            converted=shipped,
            eval_x=x_raw,
            eval_y=y,
            host_outputs=keras_logits,
            student=student_section(cost, model.count_params(), name=getattr(model, "name", ""), keras_accuracy=keras_acc),
            teacher={"fingerprint": teacher_fingerprint} if teacher_fingerprint else {},
            profile=profile_section(device) if device is not None else None,
            extra_files={PARITY_FILE: json.dumps(parity, indent=2).encode()},
            force=force,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BatchResult(out, list(converted.values()), keras_acc, parity)


def _cost_or_none(model):
    """The student's cost read from its layers, for the MACs calibration needs; None when its layers cannot be
    read or hold no MACs the reader knows (a quantization-aware model wraps them): the bundle then goes without
    them rather than failing a conversion that succeeded."""
    from ..sizing import model_cost

    try:
        cost = model_cost(model)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None
    return cost if cost.macs > 0 else None


def raise_for_failures(result: BatchResult) -> None:
    """After the bundle is written (so the numbers can be read), refuse to call a failed artifact a success."""
    if result.failed:
        raise ConversionError(f"parity failed: {_reasons(result.failed)}; the bundle lists them marked failed, after the others",
                              f"see {result.out / PARITY_FILE}; {FAILURE_HINT}")


def _reasons(converted: List[Converted]) -> str:
    return "; ".join(failure_reason(c.artifact) for c in converted if c.artifact.verification == "failed")


__all__ = ["BatchResult", "convert_student", "load_student", "raise_for_failures"]
