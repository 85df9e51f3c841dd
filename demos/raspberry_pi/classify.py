#!/usr/bin/env python3
"""Raspberry Pi classifier: camera frames (picamera2, else OpenCV/V4L2) or a video file or image folder through an
edgekd bundle on LiteRT; top-1 and latency per frame on stdout, profile and drift reports to the collector.

    python3 classify.py --bundle /opt/edgekd/bundle --report-to http://HOST:8765 --token T
    python3 classify.py --bundle BUNDLE --source images:/path/to/pictures --frames 50
    python3 classify.py --bundle BUNDLE --source video:clip.mp4,v4l2:0 --report-every 500

The engine is the one the bundle's device profile names (LiteRT for raspberry-pi-4), or --engine.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # demos/: the shared loop

import classifier_loop  # noqa: E402
from edgekd_runtime import Model  # noqa: E402

SOURCES = ("picamera2", "v4l2:0")


def extend(ap):
    ap.add_argument("--engine", help="engine override (litert, onnxruntime, tflm); default: the bundle profile's engine")
    ap.add_argument("--threads", type=int, help="engine threads (default: the engine's choice; a Pi 4/5 has 4 cores)")


def load_model(bundle, args):
    options = {"allow_unverified": args.allow_unverified}
    if args.threads:
        options["threads"] = args.threads
    model = Model.from_bundle(bundle, engine=args.engine, **options)
    options.update(artifact=model.artifact.format, engine=model.engine)
    return model, options, None


if __name__ == "__main__":
    sys.exit(classifier_loop.main(None, __doc__.splitlines()[0], SOURCES, load_model, extend))
