"""`edgekd-runtime`: info, run and profile a bundle on this device.

argparse rather than a CLI framework: the device install stays numpy + one engine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from .bundle import Bundle
from .errors import BadInputError, RuntimeFailure
from .model import Model
from .profiler import profile


def _cmd_info(args):
    with Bundle.open(args.bundle) as bundle:
        m = bundle.manifest
        print("bundle     %s (schema v%d, by %s, %s)" % (m.name, m.schema_version, m.producer, m.created))
        print("profile    %s" % m.profile.get("name", "-"))
        print("teacher    %s" % m.teacher.get("fingerprint", "-"))
        print("input      shape %s, %s, preprocessing x*%g%+g" % (m.input.shape, m.input.dtype, m.preprocessing.scale, m.preprocessing.offset))
        print("labels     %s" % ", ".join(m.labels))
        for art in m.artifacts:
            metrics = ", ".join("%s=%s" % (k, _fmt(v)) for k, v in sorted(art.host_metrics.items()))
            print("artifact   %-22s %-14s engine=%-12s %8d bytes  %s  [%s]" % (art.path, art.format, art.engine, art.bytes, metrics, art.verification))
        print("files      %d verified (sha256)" % len(m.files))
    return 0


def _fmt(v):
    return ("%.4g" % v) if isinstance(v, float) else str(v)


def _cmd_run(args):
    if not os.path.isfile(args.input):
        raise BadInputError("input file not found: %s" % args.input)
    try:
        x = np.load(args.input, allow_pickle=False)
    except ValueError as exc:
        raise BadInputError("%s is not a .npy array: %s" % (args.input, exc))
    with Bundle.open(args.bundle) as bundle:
        model = Model.from_bundle(bundle, artifact=args.artifact, engine=args.engine)
        scores = model.predict(x)
        labels = bundle.manifest.labels
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs = exp / exp.sum(axis=1, keepdims=True)
    for i, row in enumerate(probs):
        top = np.argsort(-row)[: args.top]
        print("sample %d: %s" % (i, ", ".join("%s %.3f" % (labels[j] if j < len(labels) else j, row[j]) for j in top)))
    return 0


def _cmd_profile(args):
    report = profile(args.bundle, runs=args.runs, warmup=args.warmup, artifact=args.artifact, engine=args.engine, threads=args.threads)
    lat = report["latency"]
    print("%s on %s (%s)" % (report["artifact"], report["runtime"]["engine"], report["format"]))
    print("latency   p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  mean %.3f ms  (%d runs)" % (lat["p50_ms"], lat["p90_ms"], lat["p99_ms"], lat["mean_ms"], lat["runs"]))
    print("load      first %.3f s  warm %.3f s" % (report["load_seconds"]["first"], report["load_seconds"]["warm"]))
    if "accuracy" in report:
        print("accuracy  %.2f%% on %d eval samples" % (100 * report["accuracy"], report["eval_samples"]))
    if "agreement_with_host" in report:
        print("agreement %.2f%% top-1 with the host's outputs" % (100 * report["agreement_with_host"]))
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(report, handle, indent=2, sort_keys=True)
        os.replace(tmp, args.json)
        print("report    %s" % args.json)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="edgekd-runtime", description="Load, verify, run and profile edgekd bundles.")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("info", help="show a bundle's manifest after verifying its files")
    p.add_argument("bundle")
    p.set_defaults(func=_cmd_info)
    for name, func, helptext in (("run", _cmd_run, "run the model on inputs from a .npy file"), ("profile", _cmd_profile, "measure latency and accuracy on this device")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("bundle")
        p.add_argument("--artifact", help="artifact format to use (default: the bundle's first)")
        p.add_argument("--engine", help="engine override: litert, onnxruntime, tflm, tensorrt, coreml")
        p.set_defaults(func=func)
        if name == "run":
            p.add_argument("--input", required=True, help=".npy array of raw inputs, one sample or a batch")
            p.add_argument("--top", type=int, default=3)
        else:
            p.add_argument("--runs", type=int, default=100)
            p.add_argument("--warmup", type=int, default=10)
            p.add_argument("--threads", type=int, default=None)
            p.add_argument("--json", help="write the report JSON here")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except RuntimeFailure as exc:
        sys.stderr.write("edgekd-runtime: error: %s\n" % exc)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
