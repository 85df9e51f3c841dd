"""FitNets (Romero et al., 2015): a student layer regresses a teacher layer's activations through a learned
adapter (the loss and the adapter: :mod:`edgekd.distill.fitnet`)."""
from __future__ import annotations

from ..loop import DistillResult
from . import Traits

TRAITS = Traits()


def run(ctx, student) -> DistillResult:
    from ..features import distill_pairs, match_by_spatial_size, teacher_model_of
    from ..fitnet import DEFAULT_BETA, HintTerm

    tm = teacher_model_of(ctx.teacher, "fitnet")
    if ctx.feature_layers:
        pairs = [tuple(p) for p in ctx.feature_layers]
    else:
        matched = match_by_spatial_size(student, tm)
        pairs = [matched[len(matched) // 2]]  # one hint in the middle of the network, as in FitNets

    def hint(i, feature, t_name, beta):
        return HintTerm(i, f"t{i}", int(tm.get_layer(t_name).output.shape[-1]), beta=beta, name=f"hint{i}")

    return distill_pairs(ctx, student, "fitnet", pairs, DEFAULT_BETA, None, hint)
