"""Teachers: anything that maps inputs to logits, its fingerprint, and the soft-label cache.

Formats: tf_keras ``.h5``/``.keras``, Keras 3 ``.keras``, a TensorFlow SavedModel folder, ONNX (onnxruntime),
TFLite (ai_edge_litert), a Keras model object or any Python callable. A teacher sees the same preprocessed inputs
as the student (raw * scale + offset). Teachers that end in a softmax are detected; their log-probabilities are
used as logits: they differ from the true logits by a per-sample constant c, and softmax((z + c) / T) equals
softmax(z / T) at every temperature T, so softened targets are exactly the teacher's.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from ..errors import TeacherError

CACHE_DIR = Path(os.environ.get("EDGEKD_CACHE", ".edgekd-cache"))
SUFFIXES = (".keras", ".h5", ".onnx", ".tflite")


def fingerprint_path(path) -> str:
    """sha256 of a file's bytes (what ``sha256sum`` prints), or over every file of a folder (relative names and
    contents, in sorted order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def fingerprint_weights(model) -> str:
    """sha256 over a Keras model's architecture name and weights: the fingerprint of an in-memory teacher."""
    digest = hashlib.sha256(type(model).__name__.encode())
    for w in model.get_weights():
        digest.update(str(w.shape).encode())
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


def fingerprint_callable(fn) -> str:
    """sha256 over a callable's qualified name and bytecode. It cannot see state the code closes over:
    pass ``fingerprint=`` to :func:`load_teacher` to pin such a teacher to a version."""
    code = getattr(fn, "__code__", None) or getattr(getattr(fn, "__call__", None), "__code__", None)
    digest = hashlib.sha256(f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}".encode())
    if code is not None:
        digest.update(code.co_code)
        digest.update(repr(code.co_consts).encode())
    return digest.hexdigest()


class Teacher:
    """Wraps a callable ``inputs -> scores`` with a fingerprint and softmax detection.

    ``classes`` maps a specialist's outputs to global class indices (output j scores class ``classes[j]``);
    None means output j is class j. ``tf_fn``, when set, computes the same scores inside a TensorFlow graph,
    which lets the teacher run online in every training step.

    >>> t = Teacher(lambda x: np.eye(3)[np.asarray(x).reshape(len(x), -1).sum(1).astype(int) % 3], "toy")
    >>> t.logits(np.zeros((2, 1))).shape
    (2, 3)
    """

    def __init__(self, fn: Callable, fingerprint: str, name: str = "teacher", batch_size: int = 256, keras_model=None,
                 kind: str = "callable", input_shape: Optional[tuple] = None, tf_fn: Optional[Callable] = None,
                 classes: Optional[Sequence[int]] = None):
        self.fn = fn
        self.fingerprint = fingerprint
        self.name = name
        self.batch_size = batch_size
        self.keras_model = keras_model
        self.kind = kind
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.tf_fn = tf_fn
        self.classes = list(classes) if classes is not None else None
        self.outputs_probabilities: Optional[bool] = None
        self.inference_seconds = 0.0

    def scores(self, x) -> np.ndarray:
        start = time.perf_counter()
        outs = [np.asarray(self.fn(x[i : i + self.batch_size]), dtype=np.float32) for i in range(0, len(x), self.batch_size)]
        self.inference_seconds += time.perf_counter() - start
        return np.concatenate(outs, axis=0)

    def logits(self, x) -> np.ndarray:
        s = self.scores(x)
        if s.ndim != 2:
            raise TeacherError(f"teacher {self.name} returned shape {s.shape}; expected (batch, classes)", "the teacher must output one score per class")
        if self.outputs_probabilities is None:
            self.outputs_probabilities = looks_like_probabilities(s)
        if self.outputs_probabilities:
            return np.log(np.clip(s, 1e-7, 1.0))
        return s

    def tf_logits(self, x):
        """The logits inside a TensorFlow graph (for the online teacher). Call :meth:`logits` on a sample
        first so softmax detection has run."""
        import tensorflow as tf

        if self.tf_fn is not None:
            s = tf.cast(self.tf_fn(x), tf.float32)
        else:  # ONNX, TFLite and plain callables: leave the graph for numpy (not under tf.distribute)
            s = tf.numpy_function(lambda a: np.asarray(self.fn(a), np.float32), [x], tf.float32, stateful=False)
            s.set_shape([None, self.num_outputs])
        if self.outputs_probabilities:
            s = tf.math.log(tf.clip_by_value(s, 1e-7, 1.0))
        return s

    def num_classes(self, sample) -> int:
        return int(self.logits(sample[:1]).shape[1])

    @property
    def num_outputs(self) -> Optional[int]:
        return getattr(self, "_num_outputs", None)

    def probe(self, sample) -> int:
        """Run the teacher on a few samples: detects a final softmax and returns the number of outputs."""
        if len(sample) == 0:
            raise TeacherError("cannot probe a teacher on an empty data set")
        s = self.logits(sample[: min(len(sample), 64)])
        self._num_outputs = int(s.shape[1])
        return self._num_outputs

    def describe(self):
        return {"name": self.name, "kind": self.kind, "fingerprint": self.fingerprint, "outputs_probabilities": self.outputs_probabilities,
                **({"classes": self.classes} if self.classes is not None else {})}


def looks_like_probabilities(s: np.ndarray) -> bool:
    return bool(np.all(s >= 0) and np.allclose(s.sum(axis=1), 1.0, atol=1e-3))


def load_teacher(source, raw_inputs: bool = False, classes: Optional[Sequence[int]] = None, fingerprint: Optional[str] = None, name: Optional[str] = None) -> Teacher:
    """A :class:`Teacher` from a model file or folder, a Keras model object or a Python callable.

    Files: ``.keras``/``.h5`` (tf_keras, then Keras 3), ``.onnx``, ``.tflite``, or a SavedModel folder.
    ``classes`` marks a specialist whose outputs score only those global classes.
    """
    if isinstance(source, Teacher):
        if classes is not None:
            source.classes = list(classes)
        return source
    if not isinstance(source, (str, os.PathLike)):
        teacher = _from_object(source, fingerprint, name)
    else:
        teacher = _from_path(Path(source))
        if fingerprint:
            teacher.fingerprint = fingerprint
    if classes is not None:
        teacher.classes = [int(c) for c in classes]
    if name:
        teacher.name = name
    return teacher


def _from_object(obj, fingerprint, name) -> Teacher:
    if _is_keras_model(obj):
        return _keras_teacher(obj, fingerprint or fingerprint_weights(obj), name or obj.name, kind=_keras_kind(obj))
    if callable(obj):
        return Teacher(obj, fingerprint or fingerprint_callable(obj), name=name or getattr(obj, "__name__", type(obj).__name__), kind="callable")
    raise TeacherError(f"cannot use {type(obj).__name__} as a teacher", "pass a model file, a SavedModel folder, a Keras model or a callable x -> logits")


def _from_path(path: Path) -> Teacher:
    if not path.exists():
        raise TeacherError(f"teacher not found: {path}", "pass a .keras/.h5/.onnx/.tflite model file or a SavedModel folder")
    fp = fingerprint_path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise TeacherError(f"{path} is a folder without saved_model.pb", "pass a SavedModel folder or a model file")
        return _saved_model_teacher(path, fp)
    if suffix == ".onnx":
        return _onnx_teacher(path, fp)
    if suffix == ".tflite":
        return _tflite_teacher(path, fp)
    if suffix in (".keras", ".h5"):
        model = _load_keras(path)
        return _keras_teacher(model, fp, path.name, kind=_keras_kind(model))
    raise TeacherError(f"unsupported teacher file {path.name}", f"teachers are {', '.join(SUFFIXES)} files or SavedModel folders")


def _is_keras_model(obj) -> bool:
    mod = type(obj).__module__
    return hasattr(obj, "count_params") and hasattr(obj, "layers") and (mod.startswith("tf_keras") or mod.startswith("keras"))


def _keras_kind(model) -> str:
    import tf_keras as keras

    return "tf_keras" if isinstance(model, keras.Model) else "keras3"


def _keras_teacher(model, fp, name, kind) -> Teacher:
    shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    return Teacher(lambda x: model(x, training=False), fp, name=name, keras_model=model, kind=kind, input_shape=shape,
                   tf_fn=lambda x: model(x, training=False))


def _load_keras(path: Path):
    import tf_keras as keras

    errors = []
    try:
        return keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # tf_keras raises a variety of types for foreign files
        errors.append(f"tf_keras: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
    if path.is_file():
        try:
            import keras as keras3

            return keras3.saving.load_model(str(path), compile=False)
        except Exception as exc:
            errors.append(f"keras 3: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
    raise TeacherError(f"cannot load teacher {path} ({'; '.join(errors)})", "is the file complete? re-export it with model.save()")


def _saved_model_teacher(path: Path, fp: str) -> Teacher:
    import tensorflow as tf

    # A SavedModel written by tf_keras reloads as a Keras model (its layers stay reachable for feature
    # methods); any other SavedModel is used through its serving signature.
    try:
        import tf_keras as keras

        model = keras.models.load_model(str(path), compile=False)
        if isinstance(model, keras.Model) and model.inputs:
            return _keras_teacher(model, fp, path.name, kind="savedmodel")
    except Exception:
        pass
    loaded = tf.saved_model.load(str(path))
    if "serving_default" not in loaded.signatures:
        raise TeacherError(f"SavedModel {path} has no serving_default signature", "export it with tf.saved_model.save(module, path, signatures=...)")
    sig = loaded.signatures["serving_default"]
    specs = sig.structured_input_signature[1]
    if len(specs) != 1:
        raise TeacherError(f"SavedModel {path} takes {len(specs)} inputs ({', '.join(specs)})", "a teacher takes one image tensor")
    (arg, spec), = specs.items()
    outputs = list(sig.structured_outputs)
    if len(outputs) != 1:
        raise TeacherError(f"SavedModel {path} has {len(outputs)} outputs ({', '.join(outputs)})", "a teacher returns one logits tensor")
    out_name = outputs[0]

    def tf_fn(x):
        return sig(**{arg: tf.cast(x, spec.dtype)})[out_name]

    shape = tuple(spec.shape[1:]) if spec.shape.rank and None not in spec.shape[1:] else None
    teacher = Teacher(lambda x: tf_fn(tf.constant(x)).numpy(), fp, name=path.name, kind="savedmodel", input_shape=shape, tf_fn=tf_fn)
    teacher._loaded = loaded  # keeps the SavedModel's variables alive with the signature
    return teacher


def _onnx_teacher(path: Path, fp: str) -> Teacher:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise TeacherError(f"onnxruntime cannot load {path.name}: {str(exc).splitlines()[0][:200]}", "re-export the model (opset 13-21)")
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise TeacherError(f"{path.name} takes {len(inputs)} inputs", "a teacher takes one image tensor")
    name, dims = inputs[0].name, inputs[0].shape
    fixed_batch = dims[0] if isinstance(dims[0], int) else None
    shape = tuple(dims[1:]) if all(isinstance(d, int) for d in dims[1:]) else None

    def run(x):
        x = np.asarray(x, np.float32)
        if fixed_batch is None or fixed_batch == len(x):
            return session.run(None, {name: x})[0]
        # A model exported with a fixed batch (often 1): feed it in slices of that size.
        return np.concatenate([session.run(None, {name: x[i : i + fixed_batch]})[0] for i in range(0, len(x), fixed_batch)])

    return Teacher(run, fp, name=path.name, kind="onnx", input_shape=shape)


def _tflite_teacher(path: Path, fp: str) -> Teacher:
    from ai_edge_litert.interpreter import Interpreter

    try:
        interp = Interpreter(model_path=str(path), num_threads=os.cpu_count())
    except Exception as exc:
        raise TeacherError(f"LiteRT cannot load {path.name}: {str(exc).splitlines()[0][:200]}", "is it a complete .tflite file?")
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    shape = tuple(int(d) for d in inp["shape"][1:])
    state = {"batch": None}

    def run(x):
        x = np.asarray(x, np.float32)
        if state["batch"] != len(x):
            interp.resize_tensor_input(inp["index"], [len(x), *shape])
            interp.allocate_tensors()
            state["batch"] = len(x)
        scale, zero = inp["quantization"]
        feed = x if not scale else np.clip(np.round(x / scale + zero), *_int_range(inp["dtype"])).astype(inp["dtype"])
        interp.set_tensor(inp["index"], feed.astype(inp["dtype"], copy=False))
        interp.invoke()
        y = interp.get_tensor(out["index"])
        o_scale, o_zero = out["quantization"]
        return (y.astype(np.float32) - o_zero) * o_scale if o_scale else y.astype(np.float32)

    return Teacher(run, fp, name=path.name, kind="tflite", input_shape=shape)


def _int_range(dtype):
    info = np.iinfo(dtype)
    return info.min, info.max


def check_teachers(teachers: List[Teacher], x: np.ndarray, num_classes: int) -> None:
    """Refuse, before any training, teachers that disagree with the data or with each other."""
    if len(x) == 0:
        raise TeacherError("the data set is empty", "pass training data with at least one sample")
    sample_shape = tuple(int(v) for v in x.shape[1:])
    for t in teachers:
        if t.input_shape is not None and tuple(t.input_shape) != sample_shape:
            others = [u for u in teachers if u is not t and u.input_shape is not None and tuple(u.input_shape) != tuple(t.input_shape)]
            if others:
                raise TeacherError(f"teachers disagree on input shape: {t.name} takes {t.input_shape}, {others[0].name} takes {others[0].input_shape}",
                                   "all teachers must take the same inputs as the student")
            raise TeacherError(f"teacher {t.name} takes inputs of shape {t.input_shape} but the data's samples are {sample_shape}",
                               "resize the data to the teacher's input, or pass the matching teacher")
        try:
            outputs = t.probe(x)
        except TeacherError:
            raise
        except Exception as exc:
            raise TeacherError(f"teacher {t.name} fails on the data: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
                               "check the teacher's expected input shape and preprocessing")
        expected = len(t.classes) if t.classes is not None else num_classes
        if outputs != expected:
            what = f"its {len(t.classes)} classes" if t.classes is not None else f"the data's {num_classes} classes"
            raise TeacherError(f"teacher {t.name} outputs {outputs} scores but {what} need {expected}",
                               "pass the teacher trained for these labels (or --classes for a specialist)")
        if t.classes is not None and (min(t.classes) < 0 or max(t.classes) >= num_classes):
            raise TeacherError(f"specialist {t.name} names classes outside 0..{num_classes - 1}: {t.classes}")


def soft_labels(teacher: Teacher, x: np.ndarray, data_fingerprint: str, cache: bool = True, on_progress=None) -> np.ndarray:
    """Teacher logits for ``x``, computed once per (teacher, data) and kept on disk as float16.
    ``on_progress(fraction)`` is called as chunks are labelled."""
    path = CACHE_DIR / "soft_labels" / f"{teacher.fingerprint[:16]}-{data_fingerprint[:16]}.npy"
    if cache and path.is_file():
        logits = np.load(path).astype(np.float32)
        if logits.shape[0] == len(x):
            return logits
    chunk = max(teacher.batch_size, 2048)
    parts = []
    for i in range(0, len(x), chunk):
        parts.append(teacher.logits(x[i : i + chunk]))
        if on_progress is not None:
            on_progress(min(1.0, (i + chunk) / len(x)))
    # Round through float16 on every path so a cached run trains exactly like the first one.
    logits = (np.concatenate(parts) if parts else teacher.logits(x)).astype(np.float16).astype(np.float32)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, logits.astype(np.float16))
        os.replace(tmp, path)
    return logits


def data_fingerprint(x: np.ndarray) -> str:
    """sha256 over preprocessed inputs (shape, dtype, bytes): the cache key's data half."""
    digest = hashlib.sha256(str((x.shape, str(x.dtype))).encode())
    digest.update(np.ascontiguousarray(x).tobytes())
    return digest.hexdigest()
