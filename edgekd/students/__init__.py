"""Student architecture families, each built from a small spec.

>>> spec = StudentSpec.parse("mobilenetv3:width=0.5,depth=3")
>>> model = build_student(spec, input_shape=(8, 8, 1), num_classes=10)
>>> model.output_shape
(None, 10)
"""
from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, replace
from typing import Optional

from ..errors import EdgekdError


@dataclass(frozen=True)
class StudentSpec:
    family: str = "mobilenetv3"
    width: float = 1.0
    depth: int = 3
    resolution: Optional[int] = None  # None: the data's own resolution
    mcu_safe: bool = False  # only ops TFLite Micro supports (no squeeze-excite, no resize)

    @classmethod
    def parse(cls, text: str) -> "StudentSpec":
        """``family[:key=value,...]``, e.g. ``mobilenetv3:width=0.5,depth=4`` or ``mlp:width=2``."""
        family, _, rest = text.partition(":")
        kwargs = {}
        for item in filter(None, rest.split(",")):
            key, _, value = item.partition("=")
            key = key.strip()
            if key == "width":
                kwargs[key] = float(value)
            elif key in ("depth", "resolution"):
                kwargs[key] = int(value)
            elif key == "mcu_safe":
                kwargs[key] = value.lower() in ("1", "true", "yes")
            else:
                raise EdgekdError(f"unknown student option {key!r} in {text!r}", "options: width, depth, resolution, mcu_safe")
        spec = cls(family=family.strip(), **kwargs)
        spec.check()
        return spec

    def check(self) -> None:
        if self.family not in FAMILIES:
            raise EdgekdError(f"unknown student family {self.family!r}", f"families: {', '.join(sorted(FAMILIES))}")
        if self.width <= 0 or self.depth < 1:
            raise EdgekdError(f"student width must be > 0 and depth >= 1 (got width={self.width}, depth={self.depth})")

    def with_(self, **changes) -> "StudentSpec":
        return replace(self, **changes)

    def to_dict(self):
        return asdict(self)

    def __str__(self) -> str:
        text = f"{self.family}:width={self.width:g},depth={self.depth}"
        if self.resolution:
            text += f",resolution={self.resolution}"
        if self.mcu_safe:
            text += ",mcu_safe=1"
        return text


def build_student(spec: StudentSpec, input_shape, num_classes: int, seed: int = 0):
    """A fresh, untrained tf_keras model for ``spec`` that outputs logits."""
    spec.check()
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    return family_module(spec.family).build(spec, tuple(input_shape), int(num_classes))


def student_graph(spec: StudentSpec, input_shape, num_classes: int):
    """The activation graph and costs of ``spec`` in the TFLite converter's terms, without building a model."""
    from .nn import CostNN

    spec.check()
    return family_module(spec.family).network(CostNN(), spec, tuple(int(v) for v in input_shape), int(num_classes))


def family_module(family: str):
    """The module of a family: ``network(nn, spec, input_shape, num_classes)``, ``WIDTHS``, ``DEPTHS``, ``resolutions()``."""
    if family not in FAMILIES:
        raise EdgekdError(f"unknown student family {family!r}", f"families: {', '.join(sorted(FAMILIES))}")
    return importlib.import_module(f".{FAMILIES[family]}", __name__)


# family name -> module. mobilenetv3: images on phones and MCUs; resnet: images where dense convolutions
# run near peak (GPUs, desktop CPUs); dscnn: audio features and 1-D signals; mlp: tabular data.
FAMILIES = {"mobilenetv3": "mobilenetv3", "resnet": "resnet", "dscnn": "dscnn", "mlp": "mlp"}
