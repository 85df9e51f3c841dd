"""The training loop every method shares: ``distill()`` trains a student against a teacher's targets.

A method (see :mod:`edgekd.distill.methods`) decides which targets and extra loss terms the student learns from;
this loop turns them into a tf.data pipeline, runs the :class:`~edgekd.distill.distiller.Distiller` under an
optional strategy and precision, and returns the trained student with its per-epoch record.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np

from ..errors import EdgekdError


@dataclass
class DistillResult:
    student: Any
    history: List[Dict[str, float]]
    val_accuracy: Optional[float]
    seconds_per_epoch: float
    teacher_seconds: float
    config: Dict[str, Any] = field(default_factory=dict)


def distill(
    student,
    x,
    y,
    teacher_logits=None,
    *,
    temperature: float = 4.0,
    alpha: float = 0.7,
    epochs: int = 30,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    val=None,
    progress: bool = True,
    teacher_seconds: float = 0.0,
    seed: int = 0,
    online_teacher: Optional[Callable] = None,
    targets: Optional[Dict[str, np.ndarray]] = None,
    terms: Optional[Callable] = None,
    wrap: Optional[Callable] = None,
    augment: Optional[Callable] = None,
    views=None,
    strategy=None,
    precision: Optional[str] = None,
    desc: Optional[str] = None,
    patience: Optional[int] = None,
    deadline: Union[None, float, Callable[[], float]] = None,
    callbacks: Optional[List] = None,
    steps_per_epoch: Optional[int] = None,
    teacher_val_accuracy: Optional[float] = None,
) -> DistillResult:
    """Train ``student`` (a tf_keras model emitting logits) on preprocessed ``x`` against labels ``y``
    (``UNLABELED`` where unknown) and the teacher's targets.

    Targets come cached — ``teacher_logits`` (N, classes) and/or ``targets`` (a dict of per-sample arrays:
    ``"logits"``, ``"probs"``, feature targets, ``"index"``) — or from ``online_teacher``, a callable run on
    every batch inside the graph (x -> logits or a dict), which ``augment`` (a tf function on a batch) requires:
    targets cached for the original images would be wrong for augmented ones. ``views`` is the cached alternative:
    ``(Views, logits)`` with the teacher's logits (K, N, classes) on K fixed views of every image (see
    :mod:`edgekd.distill.augment`); each epoch then trains every image on one of its views, drawn at random.

    ``terms(student) -> (terms, feature_outputs)`` adds feature losses; ``wrap(student, total_steps) ->
    (student, callbacks, finish)`` wraps the student for QAT or pruning; ``strategy`` is a tf.distribute
    strategy; ``precision`` a mixed-precision policy (see :mod:`edgekd.distill.precision`). With a strategy or a
    precision the student is rebuilt inside them: use ``result.student``. ``teacher_val_accuracy`` (the teacher's
    accuracy on ``val``): once the student is within noise of it, the rest of training is on labels alone
    (:func:`edgekd.distill.stopping.teacher_release`).

    >>> import tf_keras as keras, numpy as np                      # doctest: +SKIP
    >>> result = distill(student, x, y, teacher.logits(x), epochs=5)
    >>> result.student.predict(x).argmax(1)
    """
    import tensorflow as tf
    import tf_keras as keras

    from ..progress import ProgressBar
    from .distiller import Distiller
    from .precision import resolve
    from .stopping import stopper, teacher_release

    if not 0.0 <= alpha <= 1.0:
        raise EdgekdError(f"alpha must be within [0, 1] (got {alpha})", "alpha weighs the teacher term; 0 trains on labels only")
    if temperature <= 0:
        raise EdgekdError(f"temperature must be positive (got {temperature})")
    if epochs < 1:
        raise EdgekdError(f"epochs must be at least 1 (got {epochs})")
    if len(x) == 0:
        raise EdgekdError("the training data is empty", "pass at least one sample")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise EdgekdError(f"{int(np.sum(~np.isfinite(x).reshape(len(x), -1).all(axis=1)))} training samples contain NaN or Inf", "clean or drop them before distilling")
    static: Dict[str, np.ndarray] = dict(targets or {})
    if teacher_logits is not None:
        static["logits"] = teacher_logits
    outputs = {k: static[k] for k in ("logits", "probs") if k in static}  # the teacher's cached outputs, checked below
    if views is not None:
        if augment is not None or online_teacher is not None or outputs:
            raise EdgekdError("views bring their own augmentation and teacher logits", "pass views alone, without augment, online_teacher or teacher_logits")
        fixed, outputs["logits"] = views
        if outputs["logits"].shape[:2] != (fixed.count, len(x)):
            raise EdgekdError(f"view logits are {outputs['logits'].shape[:2]} but there are {fixed.count} views of {len(x)} samples", "label every view of every sample")
    if online_teacher is None and not outputs:
        raise EdgekdError("no teacher targets: pass teacher_logits, targets with 'logits' or 'probs', or online_teacher")
    if augment is not None and online_teacher is None and alpha > 0:
        raise EdgekdError("augmented inputs need the teacher online (cached soft labels describe the original images)",
                          "pass online_teacher, or turn augmentation off")
    n_out = student.output_shape[-1]
    for values in outputs.values():
        if values.shape[-1] != n_out:
            raise EdgekdError(f"teacher gives {values.shape[-1]} classes but the student {n_out}", "build the student for the teacher's classes")
        if not np.all(np.isfinite(values)):
            raise EdgekdError("the teacher's outputs contain NaN or Inf", "check the teacher on this data (and its preprocessing)")
    policy = resolve(precision)

    keras.utils.set_random_seed(seed)
    n = len(x)
    steps = int(np.ceil(n / batch_size)) if steps_per_epoch is None else int(steps_per_epoch)
    y32 = y.astype(np.int32)
    static32 = {k: (v.astype(np.int32) if k == "index" else v.astype(np.float32)) for k, v in static.items()}
    if views is not None:
        static32["view_index"] = np.arange(n, dtype=np.int32)
    ds = tf.data.Dataset.from_tensor_slices((x.astype(np.float32), (y32, static32) if static32 else y32))
    ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    if steps_per_epoch is not None:
        ds = ds.repeat()
    if views is not None:
        from .augment import picker

        choose = picker(*views)
        ds = ds.map(lambda xb, rest: _with_view(choose, xb, rest), num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        ds = ds.map(lambda xb, rest: (augment(xb), rest), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    val_ds = None
    if val is not None:
        val_ds = tf.data.Dataset.from_tensor_slices((val[0].astype(np.float32), val[1].astype(np.int32))).batch(max(batch_size, 256))
    if strategy is not None:
        opts = tf.data.Options()
        opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        ds = ds.with_options(opts)
        val_ds = val_ds.with_options(opts) if val_ds is not None else None

    previous_policy = keras.mixed_precision.global_policy()
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    extra_callbacks, finish = [], None
    try:
        if policy:
            keras.mixed_precision.set_global_policy(policy)
        with scope:
            if policy or strategy is not None:
                student = rebuild(student, policy)
            if wrap is not None:
                student, extra_callbacks, finish = wrap(student, epochs * steps)
            term_list, feature_outputs = terms(student) if terms is not None else ([], [])
            schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, epochs * steps))
            distiller = Distiller(student, teacher=online_teacher, temperature=temperature, alpha=alpha, terms=term_list, feature_outputs=feature_outputs)
            distiller.compile(optimizer=keras.optimizers.Adam(schedule))
        timer = _EpochTimer()
        stop = stopper(student, patience if val_ds is not None else None, deadline)
        # The teacher's accuracy on the same validation split: the student is released from it once it catches up.
        release = teacher_release(teacher_val_accuracy, len(val[1])) if teacher_val_accuracy is not None and val_ds is not None and alpha > 0 else None
        label = desc or f"distill T={temperature:g} a={alpha:g}"
        fit_callbacks = [timer, stop, *([release] if release else []), ProgressBar(epochs, steps, desc=label, enabled=progress), *extra_callbacks,
                         *(callbacks or [])]
        fit = distiller.fit(ds, epochs=epochs, validation_data=val_ds, callbacks=fit_callbacks, verbose=0, steps_per_epoch=steps_per_epoch)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    if finish is not None:
        student = finish(student)
    if policy or strategy is not None:
        # Ship a plain float32 model: converters and runtimes expect one, and saving mirrored variables
        # would need every worker's participation.
        student = rebuild(student, None)
    ran = len(timer.seconds)
    history = [{k: float(v[i]) for k, v in fit.history.items()} for i in range(ran)]
    for i, row in enumerate(history):
        row["epoch"] = i + 1
        row["seconds"] = timer.seconds[i]
    stopping = stop.record()
    val_acc = stopping["best_val_acc"] if stopping["best_val_acc"] is not None else (history[-1].get("val_acc") if history else None)
    # The first epoch carries graph tracing: report the steady-state cost.
    steady = timer.seconds[1:] or timer.seconds
    return DistillResult(
        student=student,
        history=history,
        val_accuracy=val_acc,
        seconds_per_epoch=float(np.median(steady)),
        teacher_seconds=teacher_seconds,
        config={"method": "kd", "temperature": temperature, "alpha": alpha, "epochs": epochs, **stopping,
                "teacher_released_after_epoch": release.released_after if release else None, "steps_per_epoch": steps, "batch_size": batch_size, "learning_rate": learning_rate,
                "seed": seed, "teacher_online": online_teacher is not None, "augment": augment is not None or views is not None,
                "views": views[0].count if views is not None else None, "precision": policy or "float32",
                "strategy": type(strategy).__name__ if strategy is not None else None,
                "replicas": int(strategy.num_replicas_in_sync) if strategy is not None else 1},
    )


def accuracy(model, x, y) -> float:
    """Top-1 accuracy of ``model`` on preprocessed ``x``: what every stage of a run is scored by."""
    return float(np.mean(model.predict(x, batch_size=512, verbose=0).argmax(1) == y))


def _with_view(choose, xb, rest):
    """One drawn view per sample, and in place of the sample's index the logits of that view."""
    yb, static = rest
    static = dict(static)
    view, logits = choose(xb, static.pop("view_index"))
    return view, (yb, {**static, "logits": logits})


def rebuild(model, policy: Optional[str]):
    """The same architecture and weights, built anew under the current strategy scope with dtype ``policy``
    (None: float32). Variables made outside a strategy's scope are not mirrored, hence the rebuild."""
    import tf_keras as keras

    def clone(layer):
        cfg = layer.get_config()
        cfg["dtype"] = policy or "float32"
        return layer.__class__.from_config(cfg)

    if any(type(layer).__name__.startswith("Quantize") for layer in model.layers):
        from .qat import custom_objects, quantize

        with quantize.quantize_scope(custom_objects(model)):
            new = keras.models.clone_model(model, clone_function=clone)
    else:
        new = keras.models.clone_model(model, clone_function=clone)
    new.set_weights(model.get_weights())
    return new


class _EpochTimer:
    """Wall time of each epoch (a tf_keras Callback built lazily to keep this module import-light)."""

    def __new__(cls):
        import tf_keras as keras

        class Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds = []

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._start)

        return Timer()
