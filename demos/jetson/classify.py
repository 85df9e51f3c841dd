#!/usr/bin/env python3
"""Jetson classifier: the Raspberry Pi demo's loop on TensorRT when it can run here (engine built on the device from
the bundle's ONNX at first use, cached by ONNX hash + TensorRT version + GPU), else ONNX Runtime's CUDA provider,
else its CPU provider; the provider actually used is in every report.

    python3 classify.py --bundle /opt/edgekd/bundle --report-to http://HOST:8765 --token T      # CSI camera, else /dev/video0
    python3 classify.py --bundle BUNDLE --source images:/path/to/pictures --frames 50
    python3 classify.py --bundle BUNDLE --source "gst:nvarguscamerasrc ! ... ! appsink"          # your own pipeline

Runs on JetPack 4.6 (Python 3.6, TensorRT 8.2: binding API) and JetPack 6 (Python 3.10, TensorRT 8.6/10: tensor API).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # demos/: the shared loop

import numpy as np  # noqa: E402

import classifier_loop  # noqa: E402
from edgekd_runtime import Model, RuntimeFailure  # noqa: E402
from edgekd_runtime.backends import engine_unavailable  # noqa: E402
from edgekd_runtime.errors import EngineUnavailableError  # noqa: E402

SOURCES = ("csi", "v4l2:0")
ORT_PROVIDERS = "CUDAExecutionProvider,CPUExecutionProvider"


def extend(ap):
    ap.add_argument("--engine", default="auto", choices=("auto", "tensorrt", "onnxruntime"),
                    help="auto: TensorRT when it runs here, else ONNX Runtime (CUDA, then CPU)")
    ap.add_argument("--min-agreement", type=float, default=0.98,
                    help="TensorRT is used only if its top-1 agrees with the host's outputs on at least this share of the "
                         "bundle's eval set (the host cannot run TensorRT, so the device checks it)")


def agreement_with_host(model, bundle, limit=200):
    """Top-1 agreement of ``model`` with the host's stored outputs on the bundle's eval set, or None without them."""
    x, _, host = bundle.load_eval()
    if host is None:
        return None
    x, host = x[:limit], host[:limit]
    return float(np.mean(model.predict(x).argmax(axis=1) == np.asarray(host).argmax(axis=1)))


def load_model(bundle, args):
    notes = []
    if args.engine in ("auto", "tensorrt"):
        why = engine_unavailable("tensorrt")
        if why is not None:
            if args.engine == "tensorrt":
                raise EngineUnavailableError("TensorRT is %s" % why, "install JetPack's python3-libnvinfer and pycuda, or use --engine onnxruntime")
            notes.append("TensorRT is %s" % why)
        else:
            try:
                # The bundle's TensorRT entry is "not verified here" (no host here runs TensorRT): checked below instead.
                model = Model.from_bundle(bundle, engine="tensorrt", allow_unverified=True)
                agree = agreement_with_host(model, bundle)
                if agree is None or agree >= args.min_agreement:
                    checked = "no host outputs in the bundle to check against" if agree is None else "top-1 agrees with the host on %.1f%% of the eval set" % (100 * agree)
                    options = {"engine": "tensorrt", "artifact": model.artifact.format, "allow_unverified": True}
                    return model, options, "TensorRT: %s" % checked
                notes.append("TensorRT's top-1 agrees with the host on only %.1f%% of the eval set (--min-agreement %.1f%%)" % (100 * agree, 100 * args.min_agreement))
            except RuntimeFailure as exc:
                if args.engine == "tensorrt":
                    raise
                notes.append("TensorRT failed here: %s" % exc)
            if args.engine == "tensorrt":
                raise EngineUnavailableError(notes[-1], "use --engine onnxruntime")
    options = {"engine": "onnxruntime", "providers": ORT_PROVIDERS, "allow_unverified": args.allow_unverified}
    model = Model.from_bundle(bundle, **options)
    options["artifact"] = model.artifact.format
    notes.append("ONNX Runtime on %s" % model.describe()["provider"])
    return model, options, "; ".join(notes)


if __name__ == "__main__":
    sys.exit(classifier_loop.main(None, __doc__.splitlines()[0], SOURCES, load_model, extend))
