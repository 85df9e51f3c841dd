"""The compression comparison practitioners quote, measured instead of quoted.

Four rows, each a model run through ``edgekd_runtime`` on this machine on the same eval set:

- the original teacher (fp32 TFLite),
- the distilled student (fp32 TFLite),
- the teacher pruned with tensorflow-model-optimization (low-magnitude, ~80% sparsity, a short
  fine-tune, wrappers stripped; fp32 TFLite, whose file does not shrink, so its size is the gzip size),
- the teacher quantized after training (full int8 TFLite, calibrated on the training inputs),

plus the distilled student in int8, the combination a device actually ships. Every row gets the file
size, its gzip size, latency p50 on this machine, accuracy, the drop against the teacher and a best use
derived from those numbers.
"""
from __future__ import annotations

import gzip
import json
import math
import os
import platform
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from .errors import DataError, EdgekdError
from .tables import human_bytes

SPARSITY = 0.8
PRUNE_EPOCHS = 2
LATENCY_RUNS = 200
MCU_FLASH_BYTES = 1 << 20  # an int8 model under 1 MB fits the flash of a Cortex-M7 class MCU


@dataclass
class Row:
    name: str
    method: str
    format: str
    bytes: int
    gzip_bytes: int
    params: int
    sparsity: float
    latency_ms_p50: float
    latency_ms_p90: float
    accuracy: float
    accuracy_drop: float  # points below the teacher row
    best_use: str = ""
    gains: str = ""
    engine: str = "litert"

    @property
    def size_bytes(self) -> int:
        """The size the row is judged by: gzip bytes for the pruned model (zeros only shrink once
        compressed), the file itself for every other row."""
        return self.gzip_bytes if self.method == "pruning" else self.bytes


@dataclass
class CompareResult:
    rows: List[Row]
    config: Dict[str, Any] = field(default_factory=dict)
    files: Dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {"rows": [dict(asdict(r), size_bytes=r.size_bytes) for r in self.rows], "config": self.config, "files": self.files}


def prune_teacher(teacher, x, y, sparsity: float = SPARSITY, epochs: int = PRUNE_EPOCHS, batch_size: int = 128, learning_rate: float = 5e-4, from_logits: bool = True, progress: bool = True, seed: int = 0):
    """A copy of ``teacher`` pruned to ``sparsity`` by magnitude while fine-tuning on (x, y), wrappers stripped
    (the same pruning as ``edgekd distill --prune``: :mod:`edgekd.distill.pruning`).

    Sparsity ramps from 0 over the first 60% of the steps, so the remaining steps recover accuracy
    at the final sparsity.
    """
    import tf_keras as keras

    from .distill import pruning
    from .progress import ProgressBar

    if not 0.0 < sparsity < 1.0:
        raise EdgekdError(f"sparsity must be between 0 and 1 (got {sparsity})")
    if not isinstance(teacher, keras.Model):
        raise EdgekdError("pruning needs a tf_keras teacher (tensorflow-model-optimization works only with tf_keras)", "save the teacher with tf_keras")
    keras.utils.set_random_seed(seed)
    steps_per_epoch = int(math.ceil(len(x) / batch_size))
    steps = max(1, epochs * steps_per_epoch)
    pruned = pruning.prune_model(teacher, sparsity, steps, end_fraction=0.6, frequency=max(1, steps // 50))
    pruned.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")],
    )
    callbacks = [*pruning.callbacks(), ProgressBar(epochs, steps_per_epoch, desc=f"prune to {sparsity:.0%}", enabled=progress)]
    pruned.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=callbacks)
    return pruning.strip(pruned)


def gains(row: Row, teacher: Row) -> str:
    """How much smaller and faster than the teacher, from the measured numbers."""
    smaller = teacher.size_bytes / max(row.size_bytes, 1)
    faster = teacher.latency_ms_p50 / max(row.latency_ms_p50, 1e-9)
    return f"{smaller:.1f}x smaller, {faster:.1f}x faster"


def best_use(row: Row, teacher: Row) -> str:
    """Where a row earns its place, read off its measured size, speed and accuracy against the teacher's."""
    if row is teacher:
        return "servers, GPUs (the reference)"
    smaller = teacher.size_bytes / max(row.size_bytes, 1)
    faster = teacher.latency_ms_p50 / max(row.latency_ms_p50, 1e-9)
    if row.accuracy_drop > 3.0:
        return f"not as is: loses {row.accuracy_drop:.1f} pts"
    if faster < 1.25 and smaller >= 2.0:
        return "storage/download only (dense kernels: no speed-up)"
    if row.format.endswith("int8"):
        return "MCUs, NPUs, phones (int8, under 1 MB)" if row.bytes <= MCU_FLASH_BYTES else "phones, embedded CPUs/NPUs (int8)"
    if faster >= 2.0:
        return "phones, edge CPUs/GPUs (float)"
    return "little gain on this machine"


def _measure(name, method, model, fmt, workdir: Path, pre, x_eval, y_eval, calibration, params, sparsity):
    """Convert, load in the runtime, score the eval set: (Row without latency, the runtime Model)."""
    from edgekd_runtime import Model

    from .convert import convert

    folder = workdir / name.replace(" ", "_").replace(",", "")
    folder.mkdir(parents=True, exist_ok=True)
    conv = convert(model, fmt, folder, calibration=calibration)
    path = folder / conv.artifact.path
    blob = path.read_bytes()
    runtime_model = Model(str(path), conv.artifact, pre)
    scores = runtime_model.predict(x_eval)
    row = Row(
        name=name, method=method, format=fmt, bytes=len(blob), gzip_bytes=len(gzip.compress(blob, 9)), params=int(params),
        sparsity=float(sparsity), latency_ms_p50=0.0, latency_ms_p90=0.0, accuracy=float(np.mean(scores.argmax(1) == y_eval)),
        accuracy_drop=0.0, engine=runtime_model.describe().get("engine", "litert"),
    )
    return row, runtime_model


def time_interleaved(models, sample, runs: int, rounds: int = 10) -> List[Dict[str, float]]:
    """Latency stats per model, timed in ``rounds`` alternating slices of ``runs / rounds`` calls each, so
    that a burst of load from elsewhere on the machine falls on every model alike, not on whichever ran then."""
    from edgekd_runtime import latency_stats, time_invocations

    per_round = max(1, runs // rounds)
    times: List[List[float]] = [[] for _ in models]
    for _ in range(rounds):
        for i, m in enumerate(models):
            times[i] += time_invocations(m, sample, runs=per_round, warmup=3)
    return [latency_stats(t) for t in times]


def compare(
    teacher,
    student,
    data,
    eval_data,
    out: Optional[Union[str, Path]] = None,
    *,
    sparsity: float = SPARSITY,
    prune_epochs: int = PRUNE_EPOCHS,
    prune_samples: Optional[int] = None,
    runs: int = LATENCY_RUNS,
    eval_limit: Optional[int] = None,
    student_int8: bool = True,
    force: bool = False,
    progress: bool = True,
    title: str = "",
    preprocess=None,
) -> CompareResult:
    """Measure teacher, distilled student, pruned teacher and int8 teacher on ``eval_data``; write
    ``compare.json``, ``compare.md`` and ``compare.png`` to ``out`` when given.

    Both models see the raw data through one preprocessing: the one the student's distill.json recorded (``student``
    given as the folder `edgekd distill` wrote, or its ``student/``), else ``preprocess`` (see
    :mod:`edgekd.preprocess`; auto: derived from ``data``); a ``preprocess`` that differs from the recorded one is an error.

    >>> result = compare("teacher.keras", "student.keras", "train.npz", "test.npz", out="out/compare")  # doctest: +SKIP
    >>> [(r.name, r.accuracy_drop) for r in result.rows]
    """
    from .convert.batch import load_student, locate_student
    from .data import Dataset, load_dataset
    from .preprocess import choose_for_student, option_text, resolve
    from .distill.pruning import kernel_sparsity
    from .teachers import load_teacher, looks_like_probabilities

    if out is not None:
        out = Path(out)
        if out.exists() and any(out.iterdir()) and not force:
            raise DataError(f"{out} already exists", "choose another --out or pass --force to replace it")
    train = data if isinstance(data, Dataset) else load_dataset(str(data))
    test = eval_data if isinstance(eval_data, Dataset) else load_dataset(str(eval_data))
    if train.input_shape != test.input_shape:
        raise DataError(f"train samples are {train.input_shape} but eval samples are {test.input_shape}", "both sets must have the same sample shape")
    fixed, source = choose_for_student(preprocess, locate_student(student)[1] if isinstance(student, (str, Path)) else None)
    pre = resolve(fixed, train)
    t_model = load_teacher(teacher).keras_model if isinstance(teacher, (str, Path)) else teacher
    s_model = load_student(student) if isinstance(student, (str, Path)) else student
    for label, m in (("teacher", t_model), ("student", s_model)):
        if m is None:
            raise EdgekdError(f"the {label} is not a Keras model", "compare needs Keras models it can convert and prune")
        if tuple(int(v) for v in m.input_shape[1:]) != train.input_shape:
            raise DataError(f"the {label} takes {tuple(m.input_shape[1:])} but the data are {train.input_shape}")
    n_eval = min(len(test), eval_limit or len(test))
    x_eval, y_eval = test.x[:n_eval], test.y[:n_eval]
    x_train = pre.apply(train.x)
    probe = np.asarray(t_model(x_train[:16], training=False))
    from_logits = not looks_like_probabilities(probe)

    workdir = Path(tempfile.mkdtemp(prefix="edgekd-compare-"))
    try:
        t_params = t_model.count_params()
        measured = [_measure("original teacher", "none", t_model, "tflite-fp32", workdir, pre, x_eval, y_eval, None, t_params, kernel_sparsity(t_model))]
        measured.append(_measure("distilled student", "distillation", s_model, "tflite-fp32", workdir, pre, x_eval, y_eval, None, s_model.count_params(), kernel_sparsity(s_model)))
        idx = np.random.default_rng(0).permutation(len(train))[: prune_samples or len(train)]
        pruned = prune_teacher(t_model, x_train[idx], train.y[idx], sparsity, prune_epochs, from_logits=from_logits, progress=progress)
        measured.append(_measure("pruned teacher", "pruning", pruned, "tflite-fp32", workdir, pre, x_eval, y_eval, None, t_params, kernel_sparsity(pruned)))
        measured.append(_measure("quantized teacher", "int8 post-training quantization", t_model, "tflite-int8", workdir, pre, x_eval, y_eval, x_train, t_params, kernel_sparsity(t_model)))
        if student_int8:
            measured.append(_measure("distilled student, int8", "distillation + int8", s_model, "tflite-int8", workdir, pre, x_eval, y_eval, x_train, s_model.count_params(), kernel_sparsity(s_model)))
        rows = [row for row, _ in measured]
        for row, lat in zip(rows, time_interleaved([m for _, m in measured], x_eval[:1], runs)):
            row.latency_ms_p50, row.latency_ms_p90 = lat["p50_ms"], lat["p90_ms"]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for r in rows:
        r.accuracy_drop = 100.0 * (rows[0].accuracy - r.accuracy)
        r.best_use = best_use(r, rows[0])
        r.gains = "-" if r is rows[0] else gains(r, rows[0])
    config = {
        "teacher": str(teacher) if isinstance(teacher, (str, Path)) else getattr(t_model, "name", "teacher"),
        "student": str(student) if isinstance(student, (str, Path)) else getattr(s_model, "name", "student"),
        "data": train.source, "eval": test.source, "eval_samples": int(n_eval), "train_samples": int(len(train)),
        "preprocessing": {"option": option_text(pre), "source": source if fixed is not None else "auto, derived from the training data"},
        "sparsity_target": sparsity, "prune_epochs": prune_epochs, "prune_samples": int(len(idx)), "latency_runs": runs,
        "latency": "p50 of single-sample engine calls through edgekd_runtime (LiteRT, default threads) on this machine, models timed in alternating rounds",
        "machine": {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "title": title,
    }
    result = CompareResult(rows, config)
    if out is not None:
        result.files = write_outputs(result, out)
    return result


HEADER = ("model", "format", "size", "gzip size", "latency p50", "accuracy", "drop vs teacher", "vs teacher", "best use")


def _cells(r: Row) -> List[str]:
    size = human_bytes(r.bytes) + (f" ({100 * r.sparsity:.0f}% zeros)" if r.method == "pruning" else "")
    return [
        r.name, r.format, size, human_bytes(r.gzip_bytes), f"{r.latency_ms_p50:.3f} ms", f"{100 * r.accuracy:.2f}%",
        "baseline" if r.method == "none" else f"{r.accuracy_drop:+.2f} pts", r.gains, r.best_use,
    ]


def markdown(result: CompareResult) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in result.rows]
    return "\n".join(lines) + "\n"


def print_table(result: CompareResult) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=result.config.get("title") or "compression comparison, measured on this machine")
    for col in HEADER:
        table.add_column(col, justify="left" if col in ("model", "format", "vs teacher", "best use") else "right")
    for r in result.rows:
        table.add_row(*_cells(r))
    console = Console()
    console.width = max(console.width, 160)  # piped output defaults to 80 columns and wraps every cell
    console.print(table)


def chart(result: CompareResult, path: Path) -> None:
    """Accuracy against size (judged size, log scale) and against latency p50, one point per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in ((axes[0], "size", "size (KB; pruned: gzip)"), (axes[1], "latency", "latency p50 on this machine (ms)")):
        for r in result.rows:
            xv = r.size_bytes / 1024 if key == "size" else r.latency_ms_p50
            ax.scatter(xv, 100 * r.accuracy, s=60)
            ax.annotate(r.name, (xv, 100 * r.accuracy), textcoords="offset points", xytext=(6, 4), fontsize=8)
        ax.set_xscale("log")
        # Plain numbers on the log axis: matplotlib's default labels minor ticks as 2x10^2, 3x10^2... and they collide.
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy (%)")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(result.config.get("title") or "compression methods, measured")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(result: CompareResult, out: Path) -> Dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": str(out / "compare.json"), "markdown": str(out / "compare.md"), "chart": str(out / "compare.png")}
    result.files = files
    Path(files["json"]).write_text(json.dumps(result.to_dict(), indent=2))
    Path(files["markdown"]).write_text(markdown(result))
    chart(result, Path(files["chart"]))
    return files
