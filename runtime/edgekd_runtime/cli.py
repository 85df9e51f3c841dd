"""`edgekd-runtime`: info, run, profile and monitor a bundle on this device, and send reports home.

argparse rather than a CLI framework: the device install stays numpy + one engine.
"""

import argparse
import os
import sys

import numpy as np

from .bundle import Bundle
from .drift import softmax
from .errors import BadInputError, RuntimeFailure
from .model import Model, as_batch
from .profiler import monitor, profile
from .report import deliver, flush_spool, make_report, spool_dir, spooled, write_report

TOKEN_ENV = "EDGEKD_REPORT_TOKEN"


def _open(args):
    return Bundle.open(args.bundle, public_key=args.public_key, require_signature=args.require_signature)


def _engine_options(args):
    options = {}
    for key in ("threads", "delegate", "providers"):
        value = getattr(args, key, None)
        if value is not None:
            options[key] = value
    if getattr(args, "allow_unverified", False):
        options["allow_unverified"] = True
    return options


def _cmd_info(args):
    with _open(args) as bundle:
        m = bundle.manifest
        print("bundle     %s (schema v%d, by %s, %s)" % (m.name, m.schema_version, m.producer, m.created))
        print("profile    %s (engine %s)" % (m.profile.get("name", "-"), m.profile.get("engine", "-")))
        print("teacher    %s" % m.teacher.get("fingerprint", "-"))
        print("input      shape %s, %s, preprocessing %s" % (m.input.shape, m.input.dtype, m.preprocessing.describe()))
        print("labels     %s" % ", ".join(m.labels))
        for art in m.artifacts:
            metrics = ", ".join("%s=%s" % (k, _fmt(v)) for k, v in sorted(art.host_metrics.items()))
            print("artifact   %-22s %-14s engine=%-12s %8d bytes  %s  [%s]" % (art.path, art.format, art.engine, art.bytes, metrics, art.verification))
        print("files      %d checked against their sha256" % len(m.files))
        print("signature  %s" % bundle.signature)
        print("drift ref  %s" % ("yes" if bundle.load_drift_reference() is not None else "no"))
    return 0


def _fmt(v):
    return ("%.4g" % v) if isinstance(v, float) else str(v)


def load_inputs(path, sample_shape=None):
    """Raw inputs from a .npy, a .npz (its ``x`` array, or its only one) or a folder of those (concatenated).

    In a folder each file may hold one sample or a batch, in any layout ``model.as_batch`` accepts for the
    model's ``sample_shape`` (e.g. (H, W) frames for an (H, W, 1) model); each becomes a batch before the files
    are joined, so a file that fits no layout is named in the error.
    """
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.endswith((".npy", ".npz")))
        if not names:
            raise BadInputError("%s holds no .npy or .npz files" % path)
        arrays = []
        for name in names:
            array = load_inputs(os.path.join(path, name))
            if sample_shape is not None:
                try:
                    array = as_batch(array, sample_shape)
                except BadInputError as exc:
                    raise BadInputError("%s: %s" % (os.path.join(path, name), exc))
            arrays.append(array)
        if sample_shape is None:
            sample_ndim = min(a.ndim for a in arrays)
            arrays = [a[None] if a.ndim == sample_ndim else a for a in arrays]
        try:
            return np.concatenate(arrays, axis=0)
        except ValueError as exc:
            raise BadInputError("the files in %s do not share one sample shape: %s" % (path, exc))
    if not os.path.isfile(path):
        raise BadInputError("input file not found: %s" % path)
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise BadInputError("%s is not a .npy or .npz array file: %s" % (path, exc))
    if isinstance(data, np.ndarray):
        return data
    with data:
        if "x" in data.files:
            return data["x"]
        if len(data.files) == 1:
            return data[data.files[0]]
        raise BadInputError("%s holds several arrays (%s) and none is named x" % (path, ", ".join(data.files)))


def _sample_shape(bundle):
    return tuple(bundle.manifest.input.shape[1:])


def _cmd_run(args):
    with _open(args) as bundle:
        x = load_inputs(args.input, _sample_shape(bundle))
        model = Model.from_bundle(bundle, artifact=args.artifact, engine=args.engine, **_engine_options(args))
        scores = model.predict(x)
        _say_unverified(model.artifact)
        labels = bundle.manifest.labels
    probs = softmax(scores)
    for i, row in enumerate(probs):
        top = np.argsort(-row)[: args.top]
        print("sample %d: %s" % (i, ", ".join("%s %.3f" % (labels[j] if j < len(labels) else j, row[j]) for j in top)))
    return 0


def _cmd_profile(args):
    with _open(args) as bundle:
        inputs = load_inputs(args.inputs, _sample_shape(bundle)) if args.inputs else None
        body = profile(bundle, runs=args.runs, warmup=args.warmup, artifact=args.artifact, engine=args.engine, inputs=inputs, **_engine_options(args))
    report = make_report(body, "profile", device=args.device_id)
    lat, rt = report["latency"], report["runtime"]
    ran_on = rt["engine"] + "".join(", %s %s" % (k, rt[k]) for k in ("provider", "delegate", "threads", "arena_used") if rt.get(k) is not None)
    print("%s (%s) on %s" % (report["artifact"], report["format"], ran_on))
    print("verified  %s" % _verification_line(rt.get("verification")))
    for key in ("engine_note", "fallback"):
        if key in rt:
            print("note      %s" % rt[key])
    print("latency   p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  mean %.3f ms  stdev %.3f ms  (%d runs)" % (lat["p50_ms"], lat["p90_ms"], lat["p99_ms"], lat["mean_ms"], lat["stdev_ms"], lat["runs"]))
    print("throughput %.1f inferences/s (one stream, batch 1)" % lat["throughput_per_s"])
    print("load      first %.3f s  warm %.3f s" % (report["load_seconds"]["first"], report["load_seconds"]["warm"]))
    if report.get("peak_memory_mb") is not None:
        print("memory    peak RSS %.1f MB" % report["peak_memory_mb"])
    if "accuracy" in report:
        expected = report["host_expected"].get("accuracy")
        host = "" if expected is None else "  (host: %.2f%%)" % (100 * expected)
        print("accuracy  %.2f%% on %d eval samples%s" % (100 * report["accuracy"], report["eval_samples"], host))
    if "agreement_with_host" in report:
        print("agreement %.2f%% top-1 with the host's outputs" % (100 * report["agreement_with_host"]))
    if "drift" in report:
        _print_drift(report["drift"])
    return _emit(report, args)


def _verification_line(status):
    if status == "passed":
        return "passed the host's parity check against the trained student"
    if status == "failed":
        return "FAILED the host's parity check (running only because of --allow-unverified)"
    return "%s: the host did not check this artifact's outputs (running only because of --allow-unverified)" % status


def _say_unverified(art):
    if art.verification != "passed":
        sys.stderr.write("edgekd-runtime: warning: %s (%s): %s\n" % (art.path, art.format, _verification_line(art.verification)))


def _print_drift(drift):
    s = drift["summary"]
    print("drift     %s: input PSI mean %.3f (max %.3f, %d features over 0.25), confidence PSI %.3f, class PSI %.3f on %d samples"
          % (s["status"], s["input_psi_mean"], s["input_psi_max"], s["features_shifted"], s["confidence_psi"], s["class_psi"], drift["samples"]))
    print("          confidence mean %.3f (reference %.3f)" % (s["confidence_mean"], s["reference_confidence_mean"]))
    for row in drift["top_features"][:3]:
        print("          %-16s PSI %.3f  mean %.4g (reference %.4g, shift %+.2f sd)" % (row["name"], row["psi"], row["mean"], row["reference_mean"], row["mean_shift_sd"]))
    if "note" in drift:
        print("          note: %s" % drift["note"])


def _cmd_monitor(args):
    with _open(args) as bundle:
        body = monitor(bundle, load_inputs(args.inputs, _sample_shape(bundle)), artifact=args.artifact, engine=args.engine, **_engine_options(args))
    report = make_report(body, "monitor", device=args.device_id)
    _print_drift(report["drift"])
    return _emit(report, args)


def _token(args):
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        raise BadInputError("--report-to needs a token", "pass --token or set %s" % TOKEN_ENV)
    return token


def _emit(report, args):
    if args.json:
        write_report(report, args.json)
        print("report    %s" % args.json)
    if args.report_to:
        result = deliver(report, args.report_to, _token(args), args.spool, timeout=args.timeout)
        _print_delivery(result, args)
    return 0


def _print_delivery(result, args):
    earlier = [r for r in result["sent"] if r != result.get("report_id")]
    if earlier and result.get("report_id"):
        print("sent      %d spooled report(s) from earlier runs" % len(earlier))
    if result.get("delivered"):
        print("sent      report %s to %s" % (result["report_id"], args.report_to))
    elif result.get("report_id"):
        sys.stderr.write("edgekd-runtime: warning: report %s kept in %s: %s\n" % (result["report_id"], spool_dir(args.spool), result["error"] or "refused"))
    for item in result["rejected"]:
        sys.stderr.write("edgekd-runtime: warning: the host refused report %s; moved to %s\n" % (item, os.path.join(spool_dir(args.spool), "rejected")))


def _cmd_send(args):
    waiting = len(spooled(args.spool))
    result = flush_spool(args.report_to, _token(args), args.spool, timeout=args.timeout)
    print("sent      %d of %d spooled report(s)" % (len(result["sent"]), waiting))
    _print_delivery(result, args)
    if result["error"]:
        sys.stderr.write("edgekd-runtime: error: %s; %d report(s) still spooled\n" % (result["error"], result["waiting"]))
        return 6
    return 0


def _add_bundle_options(p):
    p.add_argument("bundle", help="bundle folder or .zip")
    p.add_argument("--public-key", help="ed25519 public key (PEM) to check the bundle's signature with")
    p.add_argument("--require-signature", action="store_true", help="refuse a bundle that is unsigned or whose signature does not verify")


def _add_engine_options(p):
    p.add_argument("--artifact", help="artifact format to use (default: the one for the profile's engine)")
    p.add_argument("--engine", help="engine override: litert, onnxruntime, tflm, c, tensorrt, coreml")
    p.add_argument("--threads", type=int, help="engine threads (LiteRT, ONNX Runtime)")
    p.add_argument("--delegate", help="LiteRT: xnnpack (default), none (builtin kernels only) or the path of a delegate .so")
    p.add_argument("--providers", help="ONNX Runtime execution providers in order of preference, comma-separated")
    p.add_argument("--allow-unverified", action="store_true", help="run an artifact the host did not verify, or whose verification failed")


def _add_report_options(p):
    p.add_argument("--json", help="write the report JSON here")
    p.add_argument("--report-to", help="collector URL (edgekd reports serve), e.g. http://host:8765")
    p.add_argument("--token", help="collector token (or set %s)" % TOKEN_ENV)
    p.add_argument("--spool", help="where unsent reports wait (default: $EDGEKD_SPOOL or ~/.cache/edgekd/spool)")
    p.add_argument("--device-id", help="name of this device in reports (default: $EDGEKD_DEVICE_ID or the host name)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the collector")


def build_parser():
    parser = argparse.ArgumentParser(prog="edgekd-runtime", description="Load, verify, run, profile and monitor edgekd bundles.")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("info", help="show a bundle's manifest after verifying its files")
    _add_bundle_options(p)
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("run", help="run the model on inputs from a .npy/.npz file or a folder of them")
    _add_bundle_options(p)
    _add_engine_options(p)
    p.add_argument("--input", required=True, help=".npy/.npz of raw inputs (one sample or a batch), or a folder of them")
    p.add_argument("--top", type=int, default=3)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("profile", help="measure latency, memory, accuracy and drift on this device")
    _add_bundle_options(p)
    _add_engine_options(p)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--inputs", help="field data to check for drift (.npy/.npz or a folder of them)")
    _add_report_options(p)
    p.set_defaults(func=_cmd_profile)

    p = sub.add_parser("monitor", help="drift of field inputs and output confidence against the bundle's reference")
    _add_bundle_options(p)
    _add_engine_options(p)
    p.add_argument("--inputs", required=True, help="raw field inputs: .npy/.npz or a folder of them")
    _add_report_options(p)
    p.set_defaults(func=_cmd_monitor)

    p = sub.add_parser("send", help="send the reports waiting in the spool")
    p.add_argument("--report-to", required=True, help="collector URL")
    p.add_argument("--token", help="collector token (or set %s)" % TOKEN_ENV)
    p.add_argument("--spool", help="spool folder (default: $EDGEKD_SPOOL or ~/.cache/edgekd/spool)")
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(func=_cmd_send)
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
