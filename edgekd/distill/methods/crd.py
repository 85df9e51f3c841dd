"""Contrastive representation distillation (Tian et al., 2020): the student's penultimate features learn to pick
out the teacher's features of the same sample among others (the loss and its memory banks: :mod:`edgekd.distill.crd`)."""
from __future__ import annotations

import numpy as np

from ...errors import EdgekdError
from ..loop import DistillResult
from . import Traits

TRAITS = Traits(no_strategy="CRD's memory banks are per-process state and do not run under tf.distribute")


def run(ctx, student) -> DistillResult:
    from .. import crd
    from ..features import penultimate_layer, teacher_model_of

    tm = teacher_model_of(ctx.teacher, "crd")
    beta = ctx.beta_or(crd.DEFAULT_BETA)
    embed = penultimate_layer(tm)
    if len(embed.shape) != 2:
        raise EdgekdError(f"the teacher's classifier reads a {len(embed.shape)}-D tensor", "CRD needs a (batch, features) input to the last Dense layer")
    targets, online_fn = ctx.feature_targets({"embed": (embed, None)}, "crd-embed")
    n, negatives = len(ctx.x), ctx.crd_negatives
    ctx.config["crd"] = {"negatives": int(min(negatives, n - 1)), "dim": 128, "tau": 0.07, "momentum": 0.5}

    def terms(model):
        return [crd.CRDTerm(0, "embed", num_data=n, negatives=negatives, beta=beta, seed=ctx.seed, name="crd")], [penultimate_layer(model)]

    # Each sample's index rides with the batch: CRD's memory banks are indexed by it.
    return ctx.fit(student, "crd", targets={**(targets or {}), "index": np.arange(n)}, online_teacher=online_fn, terms=terms)
