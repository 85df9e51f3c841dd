"""The input preprocessing a run uses: the one parser of ``--preprocess`` (and of ``preprocess=`` in Python), how a
choice is resolved against the data, recorded in distill.json and read back, and the check that the teacher agrees
with it.

The map is applied on the host (to the student's and the teacher's inputs) and on the device (from the manifest) by
the same :class:`edgekd_runtime.Preprocessing`, so a bundle computes what was trained. ``auto`` is edgekd's guess
(uint8 /255, else min-max of the training data); a teacher normalized otherwise needs the map given explicitly, and a
teacher that scores near chance under the chosen map stops the run before any training.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from edgekd_runtime import Preprocessing

from .errors import DataError, EdgekdError, TeacherError

AUTO = "auto"
NONE = "none"
FORMS = ("auto (uint8 /255, else min-max of the training data), none (raw values), scale=S,offset=O (x*S+O), "
         "mean=M,..,std=S,.. (per channel: (x-M)/S; after scale=/offset= when given, "
         "e.g. scale=1/255,mean=0.485,0.456,0.406,std=0.229,0.224,0.225)")
_KEYS = ("scale", "offset", "mean", "std")
_PER_CHANNEL = ("mean", "std")

PreprocessArg = Union[None, str, Preprocessing]


def parse(value: PreprocessArg, what: str = "--preprocess") -> Optional[Preprocessing]:
    """``value`` (None or "auto", "none", "scale=S,offset=O", "mean=..,std=..", or a Preprocessing) as a fixed map,
    or None for auto. A bad string is one EdgekdError naming the bad part and the accepted forms."""
    if value is None:
        return None
    if isinstance(value, Preprocessing):
        return _validated(value.scale, value.offset, value.mean, value.std, lambda problem: _bad(what, repr(value), problem))
    if not isinstance(value, str):
        raise EdgekdError(f"{what} must be a string or an edgekd_runtime.Preprocessing, not {type(value).__name__}", "accepted: " + FORMS)
    text = value.strip()
    if text.lower() == AUTO:
        return None
    if text.lower() == NONE:
        return Preprocessing()
    fail = lambda problem: _bad(what, value, problem)  # noqa: E731
    parts: Dict[str, list] = {}
    key = None
    # "mean=1,2,3,std=4,5,6": a part without '=' is one more value of the key before it.
    for token in (t.strip() for t in text.split(",")):
        if "=" in token:
            key, _, number = (s.strip() for s in token.partition("="))
            key = key.lower()
            if key not in _KEYS:
                fail(f"unknown key {key!r}")
            if key in parts:
                fail(f"{key} is given twice")
            parts[key] = []
        elif key is None:
            fail(f"{token!r} is not a form edgekd knows")
        elif key not in _PER_CHANNEL:
            fail(f"{key} takes one value (per-channel values go to mean= and std=)")
        else:
            number = token
        parts[key].append(_number(number, key, fail))
    scale, offset = (parts[k][0] if k in parts else d for k, d in (("scale", 1.0), ("offset", 0.0)))
    return _validated(scale, offset, parts.get("mean"), parts.get("std"), fail)


def option_text(pre: Optional[Preprocessing]) -> str:
    """The ``--preprocess`` string that gives ``pre`` back (exactly: floats as repr), or "auto" for None."""
    if pre is None:
        return AUTO
    parts = []
    if pre.scale != 1.0:
        parts.append(f"scale={pre.scale!r}")
    if pre.offset != 0.0:
        parts.append(f"offset={pre.offset!r}")
    for key in _PER_CHANNEL:
        values = getattr(pre, key)
        if values is not None:
            parts.append(f"{key}=" + ",".join(repr(float(v)) for v in values))
    return ",".join(parts) or NONE


def resolve(value: PreprocessArg, data, what: str = "--preprocess") -> Preprocessing:
    """The map for ``data`` (a Dataset: its raw training samples): the fixed one given, checked against the data's
    channels, or for auto the one edgekd derives from ``data``."""
    from .data import preprocessing_for

    pre = parse(value, what)
    if pre is None:
        return preprocessing_for(data)
    check_channels(pre, data.input_shape, what)
    return pre


def check_channels(pre: Preprocessing, input_shape: Sequence[int], what: str = "--preprocess") -> None:
    channels = int(input_shape[-1]) if len(input_shape) else 1
    for key in _PER_CHANNEL:
        values = getattr(pre, key)
        if values is not None and len(values) not in (1, channels):
            raise EdgekdError(f"{what}: {key} has {len(values)} values but the samples {tuple(input_shape)} have {channels} channel(s) on the last axis",
                              f"give one {key} value, or one per channel")


def same(a: Preprocessing, b: Preprocessing) -> bool:
    """Whether two maps give the same inputs (to float32 precision), e.g. mean=0,std=2 and scale=0.5."""
    probe = np.linspace(-1000.0, 1000.0, 17, dtype=np.float32)[:, None]
    width = max(len(p.mean or []) for p in (a, b)) or 1
    width = max(width, max(len(p.std or []) for p in (a, b)) or 1)
    x = np.repeat(probe, width, axis=1)
    ya, yb = a.apply(x), b.apply(x)
    return bool(np.allclose(ya, yb, rtol=1e-5, atol=1e-6 * max(1.0, float(np.max(np.abs(ya))))))


def record(value: PreprocessArg, pre: Preprocessing) -> Dict[str, Any]:
    """What distill.json keeps (under config.preprocessing): the option asked for and the map it resolved to."""
    option = AUTO if parse(value) is None else option_text(pre)
    return {"option": option, **pre.to_dict()}


def from_record(entry: Any, source: str) -> Preprocessing:
    """The map a distill.json recorded (also an older record holding scale and offset only)."""
    fail = lambda problem: _raise(DataError(f"{source}: config.preprocessing {problem}", "re-run the distillation, or correct config.preprocessing in it"))  # noqa: E731
    if not isinstance(entry, dict):
        fail(f"must be an object, not {type(entry).__name__}")
    unknown = sorted(str(k) for k in entry if k not in _KEYS + ("option",))
    if unknown:
        fail(f"has unknown field(s) {', '.join(unknown)}")

    def number(key, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(f"{key} must be a number, not {value!r}"[:160])
        return float(value)

    def numbers(key):
        value = entry.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            fail(f"{key} must be a list of numbers")
        return [number(key, v) for v in value]

    return _validated(number("scale", entry.get("scale", 1.0)), number("offset", entry.get("offset", 0.0)), numbers("mean"), numbers("std"), fail)


def recorded(record_path):
    """(map, option) a distill.json recorded, or (None, None) when it recorded none."""
    import json

    try:
        data = json.loads(open(record_path, encoding="utf-8").read())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"cannot read {record_path}: {exc}", "restore the distill.json written beside the student, or remove it and pass --preprocess")
    config = data.get("config") if isinstance(data, dict) else None
    entry = config.get("preprocessing") if isinstance(config, dict) else None
    if entry is None:
        return None, None
    option = entry.get("option") if isinstance(entry, dict) else None
    return from_record(entry, str(record_path)), option if isinstance(option, str) else None


def choose_for_student(value: PreprocessArg, record_path) -> Tuple[Optional[Preprocessing], str]:
    """(map, where it comes from) to convert (or compare) a student under: the map its distill.json at
    ``record_path`` (may be None) recorded, else ``value`` (None: auto, for the caller to derive from its data).
    Asking for a different map than the recorded one is an error: the student was trained under the recorded map,
    and a bundle made under another computes something else."""
    asked = parse(value)
    kept, option = recorded(record_path) if record_path is not None else (None, None)
    if kept is None:
        return asked, ("given" if asked is not None else AUTO)
    source = f"recorded in {record_path}"
    if value is None or (asked is None and option == AUTO) or (asked is not None and same(asked, kept)):
        return kept, source
    raise EdgekdError(f"--preprocess {option_text(asked)} differs from the preprocessing the student was trained with "
                      f"({option if option == AUTO else option_text(kept)}: {kept.describe()}, recorded in {record_path})",
                      "drop --preprocess: the recorded map is used")


# --- the teacher under the chosen map ---------------------------------------------------------------------------


def chance_threshold(num_classes: int) -> float:
    """Accuracy below which a teacher is taken as guessing: 1.5x chance, but at most 10 points above it, so a
    real binary or three-class teacher of modest accuracy is not refused."""
    chance = 1.0 / max(num_classes, 1)
    return min(1.5 * chance, chance + 0.1)


def label(value: PreprocessArg, pre: Preprocessing) -> str:
    """How messages name the map: "auto (x*0.0625+0)", or the option that gives it."""
    return f"{AUTO} ({pre.describe()})" if parse(value) is None else option_text(pre)


def check_teacher(name: str, accuracy: Optional[float], num_classes: int, samples: int, where: str, how: str) -> None:
    """Stop before training when the teacher, fed inputs preprocessed as ``how`` (:func:`label`), scores near
    chance on labelled data: its inputs are then almost surely not what it was trained on, and every soft label
    would teach noise."""
    if accuracy is None or num_classes < 2 or samples == 0 or accuracy >= chance_threshold(num_classes):
        return
    raise TeacherError(
        f"teacher {name} scores {100 * accuracy:.1f}% on {where} ({samples} samples) with inputs preprocessed as "
        f"{how}, near chance ({100 / num_classes:.1f}% for {num_classes} classes): its inputs are not what it was trained on",
        "pass --preprocess with the normalization the teacher was trained with, e.g. --preprocess none for raw values "
        "or --preprocess mean=..,std=.. (preprocess= in Python)",
    )


# --- helpers -----------------------------------------------------------------------------------------------------


def _raise(exc):
    raise exc


def _bad(what: str, value: str, problem: str):
    raise EdgekdError(f"{what} {value!r}: {problem}", "accepted: " + FORMS)


def _number(text: str, key: str, fail) -> float:
    try:
        if "/" in text:
            num, _, den = text.partition("/")
            number = float(num) / float(den)
        else:
            number = float(text)
    except (ValueError, ZeroDivisionError):
        fail(f"{key} value {text!r} is not a number")
    if not math.isfinite(number):
        fail(f"{key} value {text!r} is not finite")
    return number


def _validated(scale, offset, mean, std, fail) -> Preprocessing:
    for key, value in (("scale", scale), ("offset", offset)):
        if not math.isfinite(float(value)):
            fail(f"{key} must be finite")
    if float(scale) == 0.0:
        fail("scale=0 maps every input to the same value")
    mean = None if mean is None else [float(v) for v in mean]
    std = None if std is None else [float(v) for v in std]
    for key, values in (("mean", mean), ("std", std)):
        if values is not None and (not values or not all(math.isfinite(v) for v in values)):
            fail(f"{key} needs one or more finite values")
    if std is not None and any(v <= 0 for v in std):
        fail("std values must be positive")
    if mean is not None and std is not None and len(mean) != len(std) and 1 not in (len(mean), len(std)):
        fail(f"mean has {len(mean)} values and std {len(std)}: give one per channel for both (or one for either)")
    return Preprocessing(scale=float(scale), offset=float(offset), mean=mean, std=std)


__all__ = ["AUTO", "FORMS", "NONE", "check_channels", "check_teacher", "chance_threshold", "choose_for_student", "from_record",
           "label", "option_text", "parse", "record", "recorded", "resolve", "same"]
