"""A finished run and how it is kept: the record ``distill.json`` holds and the ``student/`` folder beside it."""
from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from ..bundle_assembly import check_replaceable
from ..errors import DataError
from .loop import DistillResult


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
        check_replaceable(out, kind="student")  # --force replaces a run's output, never a folder of the user's files
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".edgekd-distill-", dir=out.parent))
        try:
            self.student.save(str(staging / "student"), save_format="tf")
            record = {**self.record(), "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "producer": f"edgekd {__version__}"}
            if self.config.get("qat"):
                record["load_with"] = "edgekd.distill.qat.load_qat_student(path) (tfmot's quantize wrappers need their scope)"
            (staging / "distill.json").write_text(json.dumps(record, indent=2, default=jsonable))
            if out.exists():
                shutil.rmtree(out)
            os.replace(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return out


def jsonable(v):
    """JSON for the numpy scalars and arrays a record holds (``json.dumps(default=jsonable)``); text for anything else."""
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)
