"""CoreML: an mlprogram (.mlpackage) in fp16 or fp32, optionally with int8 weights or palettized weights.

coremltools refuses tf_keras model objects but converts a concrete function with a fixed signature
(see ../shared/STACK.md). Compression runs on Linux (coremltools.optimize.coreml); prediction does not
(MLModel.predict is macOS-only), so on any other system the artifact is marked "not verified here" and
its parity is left to a Mac: ``edgekd-runtime profile BUNDLE --artifact coreml`` checks it there.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from edgekd_runtime import Artifact, TensorSpec

from ..errors import ConversionError

PRECISIONS = ("fp16", "fp32")
COMPRESSIONS = (None, "int8", "palettize2", "palettize4", "palettize6", "palettize8")
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


def _quiet_coremltools():
    """coremltools warns at import about untested TF/scikit-learn versions; those warnings are about its
    other frontends and would bury our own output."""
    import logging

    logging.getLogger("coremltools").setLevel(logging.ERROR)


def mlmodel(student, precision="fp16", compress=None, input_name=INPUT_NAME, output_name=OUTPUT_NAME):
    """The converted (and optionally compressed) ``coremltools.models.MLModel``."""
    _quiet_coremltools()
    import coremltools as ct

    from . import concrete_function, unsupported_ops

    if precision not in PRECISIONS:
        raise ConversionError(f"unknown CoreML precision {precision!r}", f"choose one of {', '.join(PRECISIONS)}")
    if compress not in COMPRESSIONS:
        raise ConversionError(f"unknown CoreML compression {compress!r}", "choose int8 or palettize2/4/6/8 (bits per weight)")
    shape = (1,) + tuple(int(v) for v in student.input_shape[1:])
    try:
        model = ct.convert(
            [concrete_function(student)],
            source="tensorflow",
            convert_to="mlprogram",
            inputs=[ct.TensorType(name="input", shape=shape)],
            compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
            minimum_deployment_target=ct.target.iOS16,
        )
    except NotImplementedError as exc:  # "Conversion for TF op 'X' not implemented."
        ops = re.findall(r"TF op '(\w+)' not implemented", str(exc))
        if ops:
            raise unsupported_ops("CoreML", ops, "replace the layer with standard ops, or ship the TFLite artifact to iOS")
        raise ConversionError(f"CoreML conversion failed: {str(exc).splitlines()[0][:300]}")
    except Exception as exc:
        raise ConversionError(f"CoreML conversion failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
    # The TF frontend names the tensors after the graph ("input", "Identity"); apps bind them by name.
    spec = model.get_spec()
    ct.utils.rename_feature(spec, spec.description.input[0].name, input_name)
    ct.utils.rename_feature(spec, spec.description.output[0].name, output_name)
    model = ct.models.MLModel(spec, weights_dir=model.weights_dir, skip_model_load=sys.platform != "darwin")
    if compress:
        model = _compress(model, compress)
    return model


def _compress(model, compress):
    import coremltools.optimize.coreml as cto

    # weight_threshold=0: small students have small layers, and the default (2048 elements) would skip most.
    if compress == "int8":
        config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", weight_threshold=0))
        return cto.linear_quantize_weights(model, config)
    bits = int(compress[len("palettize"):])
    config = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(mode="kmeans", nbits=bits, weight_threshold=0))
    return cto.palettize_weights(model, config)


def convert(
    student, fmt, out_dir: Path, calibration=None, name="model", precision="fp16", compress=None,
    labels=None, teacher_fingerprint=None, version=None, description=None, **_,
):
    from .. import __version__
    from . import Converted

    model = mlmodel(student, precision, compress)
    model.short_description = description or f"edgekd student {getattr(student, 'name', '')}: image -> logits".strip()
    model.author = f"edgekd {__version__}"
    model.version = str(version or __version__)
    meta = model.user_defined_metadata
    meta["labels"] = json.dumps(list(labels) if labels is not None else [str(i) for i in range(int(student.output_shape[-1]))])
    if teacher_fingerprint:
        meta["teacher_fingerprint"] = str(teacher_fingerprint)
    meta["precision"] = precision
    meta["compression"] = compress or "none"
    meta["producer"] = f"edgekd {__version__}"
    package = out_dir / f"{name}.mlpackage"
    if package.exists():
        shutil.rmtree(package)
    model.save(str(package))
    # A package is a folder: the bundle lists (and hashes) every file inside it.
    files = {f"{package.name}/{p.relative_to(package).as_posix()}": p for p in sorted(package.rglob("*")) if p.is_file()}
    shape = [1] + [int(v) for v in student.input_shape[1:]]
    settings = {
        "precision": precision,
        "compression": compress or "none",
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "minimum_deployment_target": "iOS16",
        "metadata": dict(meta),
    }
    art = Artifact(
        path=package.name, format="coreml", engine="coreml", input=TensorSpec(shape, "float32"),
        output=TensorSpec([1, int(student.output_shape[-1])], "float32"), bytes=sum(p.stat().st_size for p in files.values()),
        settings=settings,
    )
    if sys.platform != "darwin":
        art.verification = "not verified here"
        art.host_metrics = {"reason": "CoreML prediction runs only on macOS/iOS; profile the bundle on a Mac to verify it"}
    return Converted(art, files)
