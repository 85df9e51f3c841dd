"""Attention transfer (Zagoruyko & Komodakis, 2017): the student matches the teacher's spatial attention maps
at every spatial size both networks have (the maps and the loss: :mod:`edgekd.distill.attention`)."""
from __future__ import annotations

from ..loop import DistillResult
from . import Traits

TRAITS = Traits()


def run(ctx, student) -> DistillResult:
    from ..attention import DEFAULT_BETA, AttentionTerm, attention_map
    from ..features import distill_pairs, match_by_spatial_size, teacher_model_of

    tm = teacher_model_of(ctx.teacher, "at")
    pairs = [tuple(p) for p in ctx.feature_layers] if ctx.feature_layers else match_by_spatial_size(student, tm)

    def term(i, feature, t_name, beta):
        return AttentionTerm(i, f"t{i}", beta=beta, name=f"at{i}")

    return distill_pairs(ctx, student, "at", pairs, DEFAULT_BETA, attention_map, term)
