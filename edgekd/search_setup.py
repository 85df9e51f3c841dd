"""What the build's student choice and ``edgekd size --data`` set up alike before ranking students on accuracy:
the validation split held out of the training data, and the student families searched for a device profile."""
from __future__ import annotations

import math
from typing import List

from .data import Dataset, split
from .errors import DataError
from .profiles import DeviceProfile
from .selection import MIN_VAL_SAMPLES
from .sizing import default_family

VAL_FRACTION = 0.1
MAX_VAL_FRACTION = 0.25  # a validation split never takes more than this of the training data


def student_families(profile: DeviceProfile, input_shape) -> List[str]:
    """Image students on int8 phones, Pis and Jetsons come from both image families: plain ReLU convolutions (resnet)
    quantize more reliably than hard-swish and squeeze-excite; MCUs keep the MCU-safe mobilenetv3."""
    family = default_family(input_shape)
    if family == "mobilenetv3" and profile.device_class != "mcu" and profile.primary_precision == "int8":
        return ["mobilenetv3", "resnet"]
    return [family]


def validation_split(train: Dataset, num_classes: int, seed: int):
    """(train, val, warning): a stratified hold-out of 10% of the data, at least MIN_VAL_SAMPLES when the data allows.
    The warning (else None) says the split is too small to rank students on accuracy."""
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
