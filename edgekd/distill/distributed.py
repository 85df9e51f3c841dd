"""tf.distribute strategies for distillation, by name.

"mirrored": every local GPU (or the CPU alone). "multiworker": several processes or machines, described by the
TF_CONFIG environment variable ({"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}});
every worker runs the same command, and each ends with the same weights.
"""
from __future__ import annotations

import json
import os
from typing import Optional

from ..errors import EdgekdError

STRATEGIES = ("none", "mirrored", "multiworker")


def make_strategy(name: Optional[str]):
    """A tf.distribute.Strategy for ``name`` (None or "none": no strategy)."""
    if name is None or name == "none" or not isinstance(name, str):
        return name if name not in (None, "none") else None
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        raw = os.environ.get("TF_CONFIG")
        if not raw:
            raise EdgekdError("multiworker needs TF_CONFIG describing the cluster and this worker's index",
                              'export TF_CONFIG=\'{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}\'')
        try:
            workers = json.loads(raw)["cluster"]["worker"]
        except (ValueError, KeyError, TypeError):
            raise EdgekdError("TF_CONFIG is not JSON with cluster.worker", "see the TF_CONFIG example in `edgekd distill --help`")
        if not workers:
            raise EdgekdError("TF_CONFIG lists no workers")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise EdgekdError(f"unknown strategy {name!r}", f"choose one of {', '.join(STRATEGIES)}")


def is_chief() -> bool:
    """Worker 0 (or no cluster): the process that writes outputs."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return True
    try:
        task = json.loads(raw).get("task", {})
    except ValueError:
        return True
    return task.get("type", "worker") in ("chief", "worker") and int(task.get("index", 0)) == 0
