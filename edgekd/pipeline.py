"""``build()``: teacher + data + device profile -> a verified bundle. The CLI and the demo call it."""
from __future__ import annotations

import datetime
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from edgekd_runtime import Manifest, TensorSpec, write_bundle
from edgekd_runtime.drift import DRIFT_NAME, reference_json

from . import __version__
from .convert import Converted, convert
from .convert.parity import check as parity_check
from .convert.parity import FAILURE_HINT, failure_reason
from .data import Dataset, load_dataset, preprocessing_for
from .distill import DistillResult, distill
from .errors import ConversionError, DataError, TeacherError
from .profiles import DeviceProfile, load_profile
from .sizing import FitReport, fit_report, model_cost, size_student
from .students import StudentSpec, build_student
from .teachers import Teacher, load_teacher, soft_labels

EVAL_SAMPLES = 1000  # eval samples carried in a bundle: enough for a stable accuracy, small enough for an MCU's host
REFERENCE_SAMPLES = 8  # host outputs written into the manifest itself


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


def build(
    teacher: Union[str, Path, Teacher],
    data: Union[str, Path, Dataset],
    eval: Union[str, Path, Dataset],
    profile: Union[str, DeviceProfile],
    out: Union[str, Path],
    *,
    student: Optional[Union[str, StudentSpec]] = None,
    formats: Optional[List[str]] = None,
    temperature: float = 4.0,
    alpha: float = 0.7,
    epochs: int = 30,
    batch_size: int = 64,
    max_student_ratio: float = 0.5,
    make_zip: bool = False,
    force: bool = False,
    progress: bool = True,
    seed: int = 0,
    name: Optional[str] = None,
    sign_key: Optional[Union[str, Path]] = None,
) -> BuildResult:
    """Distil a student sized for ``profile``, convert it to the profile's formats, verify every artifact
    with the runtime and write the bundle to ``out`` (signed with the ed25519 ``sign_key`` when given).

    >>> from edgekd import build                                   # doctest: +SKIP
    >>> result = build("teacher.keras", "train.npz", "test.npz", "cortex-m7", "out/mcu")
    >>> result.primary.host_metrics["accuracy"]
    """
    prof = load_profile(profile)
    if sign_key is not None:
        # A bad key must fail before the minutes of training, not after.
        from edgekd_runtime.signing import load_private_key

        load_private_key(str(sign_key))
    train = data if isinstance(data, Dataset) else load_dataset(str(data))
    test = eval if isinstance(eval, Dataset) else load_dataset(str(eval))
    if train.input_shape != test.input_shape:
        raise DataError(f"train samples are {train.input_shape} but eval samples are {test.input_shape}", "both sets must have the same sample shape")
    out = Path(out)
    if out.exists() and not force:
        raise DataError(f"{out} already exists", "choose another --out or pass --force to replace it")
    num_classes = max(train.num_classes, test.num_classes)

    pre = preprocessing_for(train)
    x_train, x_test = pre.apply(train.x), pre.apply(test.x)
    teacher = load_teacher(teacher)
    t_train = soft_labels(teacher, x_train, train.fingerprint() + f"{pre.scale}{pre.offset}")
    if t_train.shape[1] != num_classes:
        raise TeacherError(f"teacher {teacher.name} outputs {t_train.shape[1]} classes but the data has {num_classes}", "pass the teacher trained for these labels")
    teacher_acc = float(np.mean(teacher.logits(x_test).argmax(1) == test.y))

    if student is None:
        teacher_params = teacher.keras_model.count_params() if teacher.keras_model is not None else None
        cap = int(teacher_params * max_student_ratio) if teacher_params else None
        fit = size_student(prof, train.input_shape, num_classes, max_params=cap)
        spec = fit.spec
        model = build_student(spec, train.input_shape, num_classes, seed=seed)
    else:
        spec = StudentSpec.parse(student) if isinstance(student, str) else student
        model = build_student(spec, train.input_shape, num_classes, seed=seed)
        fit = fit_report(prof, spec, model_cost(model))

    result = distill(
        model, x_train, train.y, t_train, temperature=temperature, alpha=alpha, epochs=epochs,
        batch_size=batch_size, val=(x_test, test.y), progress=progress, teacher_seconds=teacher.inference_seconds, seed=seed,
    )
    n_eval = min(len(test), EVAL_SAMPLES)
    keras_logits = model.predict(x_test[:n_eval], verbose=0, batch_size=256)
    student_acc = float(np.mean(model.predict(x_test, verbose=0, batch_size=256).argmax(1) == test.y))

    staging = Path(tempfile.mkdtemp(prefix="edgekd-build-"))
    try:
        converted: Dict[str, Converted] = {}
        for fmt in formats or prof.formats:
            # labels and the teacher's fingerprint go into the CoreML metadata; other converters ignore them.
            labels = test.class_names or train.class_names or [str(i) for i in range(num_classes)]
            conv = convert(model, fmt, staging, calibration=x_train, op_limits=prof.op_limits, previous=converted, labels=labels, teacher_fingerprint=teacher.fingerprint)
            if conv.artifact.verification != "not verified here":
                parity_check(conv, pre, test.x[:n_eval], test.y[:n_eval], keras_logits, staging)
                if conv.artifact.verification == "failed":
                    raise ConversionError(f"{failure_reason(conv.artifact)}", FAILURE_HINT)
            converted[fmt] = conv
        files: Dict[str, Any] = {}
        for conv in converted.values():
            files.update({k: str(v) for k, v in conv.files.items()})
        eval_path = staging / "eval.npz"
        np.savez_compressed(eval_path, x=test.x[:n_eval], y=test.y[:n_eval], host_outputs=keras_logits.astype(np.float32))
        files["eval.npz"] = str(eval_path)
        # Drift reference for the device (edgekd-runtime monitor): raw eval inputs and the student's outputs.
        files[DRIFT_NAME] = reference_json(test.x[:n_eval], keras_logits)
        manifest = Manifest(
            name=name or f"{out.name}",
            labels=test.class_names or train.class_names or [str(i) for i in range(num_classes)],
            input=TensorSpec([1, *train.input_shape], str(train.x.dtype)),
            preprocessing=pre,
            artifacts=[c.artifact for c in converted.values()],
            files={},
            profile={"name": prof.name, "device_class": prof.device_class, "engine": prof.engine, "fit": fit.to_dict()},
            teacher={**teacher.describe(), "accuracy": teacher_acc},
            student={"spec": str(spec), "params": fit.cost.params, "macs": fit.cost.macs, "activation_elems": fit.cost.activation_traffic_elems, "keras_accuracy": student_acc, "distillation": result.config},
            reference={"indices": list(range(min(REFERENCE_SAMPLES, n_eval))), "outputs": keras_logits[:REFERENCE_SAMPLES].round(5).tolist()},
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            producer=f"edgekd {__version__}",
        )
        bundle_path = write_bundle(str(out), manifest, files, make_zip=make_zip, force=force)
        if sign_key is not None:
            from edgekd_runtime.signing import sign_bundle

            sign_bundle(bundle_path, str(sign_key))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BuildResult(Path(bundle_path), prof, spec, fit, list(converted.values()), teacher_acc, student_acc, result)
