"""Assemble a bundle on the host: the converted artifacts and everything a device needs beside them, written
through the runtime's ``write_bundle`` under the runtime's manifest schema (``edgekd_runtime.manifest``).

``edgekd build`` and ``edgekd convert`` both end here, so a bundle from either carries the same parts: the
artifacts with their parity, ``eval.npz`` (raw eval inputs, labels when known, the host's outputs), the
reference outputs in the manifest, the drift reference ``edgekd-runtime monitor`` compares field data with,
the student's MACs and activation elements ``edgekd profiles fit-latency`` fits latency with, the device
profile when one is known, preprocessing and labels.
"""
from __future__ import annotations

import datetime
import io
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Union

import numpy as np

from edgekd_runtime import Manifest, Preprocessing, TensorSpec, write_bundle
from edgekd_runtime.drift import DRIFT_NAME, reference_json
from edgekd_runtime.errors import RuntimeFailure
from edgekd_runtime.manifest import EVAL_NAME, MANIFEST_NAME

from . import __version__
from .errors import DataError

if TYPE_CHECKING:
    from .convert import Converted
    from .profiles import DeviceProfile
    from .sizing import Cost, FitReport

EVAL_SAMPLES = 1000  # eval samples carried in a bundle: enough for a stable accuracy, small enough for an MCU's host
REFERENCE_SAMPLES = 8  # host outputs written into the manifest itself


# Written into a bundle after its manifest (edgekd_runtime.signing), so never listed in its ``files``.
SIGNATURE_NAME = "signature.json"
# What `edgekd build` and `edgekd distill` put in a student folder, and nothing else.
STUDENT_ENTRIES = ("distill.json", "student")


def check_replaceable(path: Union[str, Path], kind: str = "bundle") -> None:
    """Refuse, before anything is deleted, to let ``--force`` replace ``path`` unless it is absent, an empty folder,
    or what edgekd writes there: a bundle (folder or .zip) whose manifest the runtime reads and that holds no file
    its manifest does not list, or (``kind="student"``) a folder of distill.json and student/ alone.

    A mistyped ``--out`` (a home folder, a data set) must cost an error line, never the user's files; a file dropped
    into a bundle by hand is the user's too.
    """
    path = Path(path)
    found = _student_folder_problem(path) if kind == "student" else _bundle_problem(path)
    if found:
        what = "a student folder (distill.json and student/)" if kind == "student" else "an edgekd bundle"
        raise DataError(f"--force replaces only {what} or an empty folder, but {path} {found}; nothing was deleted",
                        "move those files away or choose another --out")


def _some(names: List[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _bundle_problem(path: Path) -> Optional[str]:
    if not os.path.lexists(path):
        return None
    if path.is_symlink():
        return "is a symbolic link"
    try:
        if path.is_dir():
            names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if not p.is_dir())
            if not names:
                return None
            read = (path / MANIFEST_NAME).read_bytes if MANIFEST_NAME in names else None
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = sorted(n for n in zf.namelist() if not n.endswith("/"))
                data = zf.read(MANIFEST_NAME) if MANIFEST_NAME in names else None
            read = (lambda: data) if data is not None else None
        else:
            return "is a file, not an edgekd bundle"
        if read is None:
            return f"holds {_some(names)} and no {MANIFEST_NAME}"
        manifest = Manifest.from_dict(json.loads(read()))
    except (OSError, ValueError, RecursionError, zipfile.BadZipFile, zlib.error, RuntimeFailure) as exc:
        return f"holds a {MANIFEST_NAME} the runtime does not read ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})"
    extra = [n for n in names if n not in manifest.files and n not in (MANIFEST_NAME, SIGNATURE_NAME)]
    return f"holds {_some(extra)}, which its manifest does not list" if extra else None


def _student_folder_problem(path: Path) -> Optional[str]:
    if not os.path.lexists(path):
        return None
    if path.is_symlink() or not path.is_dir():
        return "is not a folder"
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return None
    if (path / "distill.json").is_file() and (path / "student").is_dir():
        extra = [e for e in entries if e not in STUDENT_ENTRIES]
        return f"holds {_some(extra)} beside distill.json and student/" if extra else None
    return f"holds {_some(entries)}"


def profile_section(profile: "DeviceProfile", fit: Optional["FitReport"] = None) -> Dict[str, Any]:
    """The manifest's ``profile``: the runtime prefers the artifact of its engine, and reports the fit's latency
    estimate beside what it measures."""
    section: Dict[str, Any] = {"name": profile.name, "device_class": profile.device_class, "engine": profile.engine}
    if fit is not None:
        section["fit"] = fit.to_dict()
    return section


def student_section(cost: Optional["Cost"], params: int, **details: Any) -> Dict[str, Any]:
    """The manifest's ``student``: its size and, when its cost is known, the MACs and activation elements a
    profile's latency model is fitted with."""
    section: Dict[str, Any] = {"params": int(params)}
    if cost is not None:
        section.update(macs=cost.macs, activation_elems=cost.activation_traffic_elems)
    section.update(details)
    return section


def assemble_bundle(
    out: Union[str, Path],
    *,
    name: str,
    labels: List[str],
    input_spec: TensorSpec,
    preprocessing: Preprocessing,
    converted: Sequence["Converted"],
    eval_x: np.ndarray,
    eval_y: Optional[np.ndarray],
    host_outputs: np.ndarray,
    student: Dict[str, Any],
    teacher: Optional[Dict[str, Any]] = None,
    profile: Optional[Dict[str, Any]] = None,
    extra_files: Optional[Dict[str, Union[str, bytes]]] = None,
    make_zip: bool = False,
    force: bool = False,
    sign_key: Optional[Union[str, Path]] = None,
) -> str:
    """Write the bundle of ``converted`` (primary first) to ``out`` and return its path (signed with the ed25519
    ``sign_key`` when given).

    ``eval_x`` are raw eval inputs as the device receives them, ``eval_y`` their labels (None when only unlabelled
    data were given), ``host_outputs`` the outputs, on them, of the model the primary artifact was made from.
    ``student`` comes from :func:`student_section`, ``profile`` from :func:`profile_section`. The files the
    converters wrote must still exist: they are copied in here.
    """
    host_outputs = np.asarray(host_outputs, dtype=np.float32)
    from .convert.c import c_artifacts, check_bit_exact

    for conv in c_artifacts(converted):  # the C library must equal tflite-micro on every eval sample, before anything is written
        check_bit_exact(conv, converted, preprocessing, eval_x)
    files: Dict[str, Union[str, bytes]] = dict(extra_files or {})
    for conv in converted:
        files.update({k: str(v) for k, v in conv.files.items()})
    arrays = {"x": eval_x, "host_outputs": host_outputs}
    if eval_y is not None:
        arrays["y"] = eval_y
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    files[EVAL_NAME] = buffer.getvalue()
    files[DRIFT_NAME] = reference_json(eval_x, host_outputs)
    n_ref = min(REFERENCE_SAMPLES, len(host_outputs))
    manifest = Manifest(
        name=name,
        labels=list(labels),
        input=input_spec,
        preprocessing=preprocessing,
        artifacts=[c.artifact for c in converted],
        files={},
        profile=dict(profile or {}),
        teacher=dict(teacher or {}),
        student=student,
        reference={"indices": list(range(n_ref)), "outputs": host_outputs[:n_ref].round(5).tolist()},
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        producer=f"edgekd {__version__}",
    )
    final = str(out) + ".zip" if make_zip and not str(out).endswith(".zip") else str(out)
    if force:
        check_replaceable(final)
    path = write_bundle(str(out), manifest, files, make_zip=make_zip, force=force)
    if sign_key is not None:
        from edgekd_runtime.signing import sign_bundle

        sign_bundle(path, str(sign_key))
    return path
