"""Convert a trained student to a profile's formats, check each artifact against the Keras model, and never end
without a shippable artifact.

When an int8 artifact misses the parity bounds, ``fine_tune`` (a short quantization-aware fine-tune, run by the
caller within its time budget) gives a QAT student whose int8 conversion is checked against that student's own
outputs. If it still misses, or there is no time, the int8 artifact stays in the bundle marked ``failed`` and a
float artifact (added when the profile lists none) becomes the primary. Only when no artifact passes at all is
it an error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from . import Converted, convert
from .parity import FAILURE_HINT, check, failure_reason, is_int8
from ..errors import ConversionError

FALLBACK_FORMAT = "tflite-fp32"


@dataclass
class VerifiedSet:
    converted: List[Converted]  # primary first
    notes: List[str] = field(default_factory=list)
    reference_logits: Optional[np.ndarray] = None  # outputs of the model the primary artifact was made from


def convert_verified(model, formats: List[str], staging: Path, preprocessing, x_raw, y, calibration,
                     fine_tune: Optional[Callable[[], Optional[object]]] = None, on_format: Optional[Callable[[int, str], None]] = None,
                     **options) -> VerifiedSet:
    """Convert ``model`` to every format of ``formats`` in ``staging``; return them primary first.

    ``x_raw``/``y``: raw eval inputs and labels for the parity check. ``fine_tune()`` returns a QAT student or
    None (no time left); it is called at most once, on the first int8 failure.
    """
    keras_logits = model.predict(preprocessing.apply(x_raw), verbose=0, batch_size=256)
    source, source_logits = model, keras_logits  # the QAT student once its int8 artifact passes: one model for all
    references: Dict[str, np.ndarray] = {}
    done: Dict[str, Converted] = {}
    notes: List[str] = []
    qat_model = None
    tried_qat = False
    for i, fmt in enumerate(formats):
        if on_format is not None:
            on_format(i, fmt)
        conv = convert(source, fmt, staging, calibration=calibration, previous=done, preprocessing=preprocessing, **options)
        reference = source_logits
        if conv.artifact.verification != "not verified here":
            check(conv, preprocessing, x_raw, y, source_logits, staging)
            if conv.artifact.verification == "failed" and is_int8(conv.artifact):
                first = failure_reason(conv.artifact)
                if not tried_qat and fine_tune is not None:
                    tried_qat = True
                    qat_model = fine_tune()
                if qat_model is not None:
                    qat_logits = qat_model.predict(preprocessing.apply(x_raw), verbose=0, batch_size=256)
                    retry = convert(qat_model, fmt, staging, calibration=calibration, previous=done, preprocessing=preprocessing, **options)
                    check(retry, preprocessing, x_raw, y, qat_logits, staging)
                    if retry.artifact.verification == "passed":
                        notes.append(f"{first}; after a quantization-aware fine-tune it passes")
                        retry.artifact.settings["quantization_aware_fine_tune"] = True
                        conv, reference = retry, qat_logits
                        source, source_logits = qat_model, qat_logits
                    else:
                        notes.append(f"{first}; still failing after a quantization-aware fine-tune: {failure_reason(retry.artifact)}")
                else:
                    notes.append(f"{first}; no quantization-aware fine-tune ({'no time left in the budget' if tried_qat else 'not enabled'})")
        done[fmt] = conv
        references[fmt] = reference
    if source is not model:
        _onto_fine_tuned(done, references, source, source_logits, staging, preprocessing, x_raw, y, calibration, notes, options)
    ordered = list(done.values())
    if ordered and ordered[0].artifact.verification == "failed":
        passing = [c for c in ordered if c.artifact.verification == "passed"]
        if not passing:
            fallback = convert(model, FALLBACK_FORMAT, staging, calibration=calibration, previous=done, preprocessing=preprocessing, **options)
            check(fallback, preprocessing, x_raw, y, keras_logits, staging)
            done[FALLBACK_FORMAT] = fallback
            references[FALLBACK_FORMAT] = keras_logits
            passing = [fallback] if fallback.artifact.verification == "passed" else []
        if not passing:
            raise ConversionError("no artifact passes parity: " + "; ".join(failure_reason(c.artifact) for c in done.values()), FAILURE_HINT)
        primary = passing[0]
        notes.append(f"{ordered[0].artifact.format} failed parity and ships marked failed; the primary artifact is {primary.artifact.format}")
        ordered = [primary] + [c for c in done.values() if c is not primary]
    primary_fmt = ordered[0].artifact.format
    return VerifiedSet(ordered, notes, references.get(primary_fmt, keras_logits))


def _onto_fine_tuned(done: Dict[str, Converted], references: Dict[str, np.ndarray], qat_model, qat_logits, staging: Path,
                     preprocessing, x_raw, y, calibration, notes: List[str], options) -> None:
    """Every artifact of a bundle computes one function: those converted from the student before its int8 artifact
    needed the quantization-aware fine-tune are converted again from the fine-tuned student (a float file of it
    keeps float inputs and outputs) and checked against its outputs; one that cannot be is checked against them as
    it is, and so ships marked failed when it disagrees."""
    for fmt, conv in list(done.items()):
        if references[fmt] is qat_logits or conv.artifact.verification == "not verified here":
            continue
        folder = staging / "fine-tuned"  # beside, not over, the first conversion's files: those may still ship
        try:
            redo = convert(qat_model, fmt, folder, calibration=calibration, previous=done, preprocessing=preprocessing, **options)
            check(redo, preprocessing, x_raw, y, qat_logits, folder)
        except Exception as exc:  # noqa: BLE001  (a converter that cannot take a QAT model: judged as it is, below)
            redo = None
            notes.append(f"{fmt}: not converted from the fine-tuned student ({type(exc).__name__}); checked against it as it is")
        if redo is not None and redo.artifact.verification == "passed":
            redo.artifact.settings["quantization_aware_fine_tune"] = True
            done[fmt], references[fmt] = redo, qat_logits
            continue
        check(conv, preprocessing, x_raw, y, qat_logits, staging)
        references[fmt] = qat_logits
        if conv.artifact.verification == "failed":
            notes.append(f"{failure_reason(conv.artifact)} (against the fine-tuned student the primary artifact was made from)")
