"""Loading a teacher: from a model file or folder, a Keras model object or any Python callable.

Formats: tf_keras ``.h5``/``.keras``, Keras 3 ``.keras``, a TensorFlow SavedModel folder, ONNX (onnxruntime),
TFLite (ai_edge_litert). A teacher sees the same preprocessed inputs as the student (raw * scale + offset).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import TeacherError
from .fingerprint import fingerprint_callable, fingerprint_model, fingerprint_path, fingerprint_weights
from .teacher import Teacher

SUFFIXES = (".keras", ".h5", ".onnx", ".tflite")


def load_teacher(source, classes: Optional[Sequence[int]] = None, fingerprint: Optional[str] = None, name: Optional[str] = None) -> Teacher:
    """A :class:`Teacher` from a model file or folder, a Keras model object or a Python callable.

    Files: ``.keras``/``.h5`` (tf_keras, then Keras 3), ``.onnx``, ``.tflite``, or a SavedModel folder.
    ``classes`` marks a specialist whose outputs score only those global classes. ``fingerprint`` replaces the
    computed one; for a callable or a subclassed Keras model it is what lets the soft-label cache keep its outputs
    (change it whenever what the teacher computes changes).
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
    # Only a fingerprint that pins what the object computes may key the soft-label cache: the caller's, or a
    # Sequential/functional model's architecture and weights. Anything else is recorded but never cached.
    if _is_keras_model(obj):
        fp = fingerprint or fingerprint_model(obj)
        teacher = _keras_teacher(obj, fp or fingerprint_weights(obj), name or obj.name, kind=_keras_kind(obj))
        teacher.cacheable = fp is not None
        return teacher
    if callable(obj):
        return Teacher(obj, fingerprint or fingerprint_callable(obj), name=name or getattr(obj, "__name__", type(obj).__name__), kind="callable",
                       cacheable=bool(fingerprint))
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

    return Teacher(run, fp, name=path.name, kind="onnx", input_shape=shape, output_step=_onnx_output_step(path, session.get_outputs()[0].name))


def _onnx_output_step(path: Path, output: str) -> float:
    """The quantization step of an ONNX model's output when a DequantizeLinear with one scale produces it (a QDQ
    int8 model: its values are multiples of that scale), else 0."""
    try:
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # without the onnx package (or a graph it cannot parse) the output reads as float
        return 0.0
    node = next((n for n in graph.node if output in n.output), None)
    if node is None or node.op_type != "DequantizeLinear" or len(node.input) < 2:
        return 0.0
    init = next((i for i in graph.initializer if i.name == node.input[1]), None)
    scale = numpy_helper.to_array(init) if init is not None else None
    return float(scale) if scale is not None and scale.size == 1 else 0.0


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

    o_scale = float(out["quantization"][0] or 0.0)
    return Teacher(run, fp, name=path.name, kind="tflite", input_shape=shape, output_step=o_scale if np.issubdtype(out["dtype"], np.integer) else 0.0)


def _int_range(dtype):
    info = np.iinfo(dtype)
    return info.min, info.max
