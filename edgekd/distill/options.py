"""The ``edgekd distill`` / ``edgekd tune`` option strings that carry lists, parsed into what
:func:`edgekd.distill.run.run_distillation` takes."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from ..errors import EdgekdError


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
