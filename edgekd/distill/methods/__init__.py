"""The distillation methods, one module each, each with one entry point ``run(ctx, student) -> DistillResult``.

``ctx`` is a :class:`edgekd.distill.context.Context`: data, teachers, settings and the run's record. A method
picks the teacher's targets and any feature terms, and trains through ``ctx.fit`` (the loop in
:mod:`edgekd.distill.loop`); multi-stage methods (progressive, self) train their stages with :func:`.kd.train`.
Each module also says what it can take (``TRAITS``), which the run checks before loading anything.
A new method: copy ``kd.py`` (or ``crd.py`` for one with a feature term), and name it here.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, Optional

# Method name (as the CLI takes it) -> module. "self" is no name for a module.
MODULES = {"kd": "kd", "fitnet": "fitnet", "at": "at", "crd": "crd", "multi": "multi", "progressive": "progressive", "self": "born_again"}
METHODS = tuple(MODULES)


@dataclass(frozen=True)
class Traits:
    several_teachers: bool = False  # mixes two or more teachers (every other method takes exactly one)
    online_teacher: bool = True  # can learn from the teacher run on every (augmented) batch
    fixed_views: bool = False  # can learn from fixed augmented views the teacher labelled ahead: logits only
    no_strategy: Optional[str] = None  # why the method cannot train under a tf.distribute strategy, when it cannot


def module(method: str) -> ModuleType:
    """The module of ``method``; its TensorFlow imports wait inside ``run``."""
    return importlib.import_module(f".{MODULES[method]}", __name__)


def entry(method: str) -> Callable:
    """The ``run`` function of ``method``."""
    return module(method).run


def traits(method: str) -> Traits:
    return module(method).TRAITS
