"""The classifier loop of the device demos (demos/raspberry_pi, demos/jetson): frames in, top-1 and latency out,
profile and drift reports to the collector through the runtime's spool.

Each demo only says how it loads its model (``load_model``) and which sources it tries first; everything else is
here, once. Frames are fitted to the bundle's raw input (resized, channels converted: frames.fit_frame) and
the runtime applies the manifest's preprocessing itself (Model.predict), as on the host. Every
``--report-every`` frames, and when the loop ends, a profile report (the runtime's own ``profile``, plus
this loop's figures under "loop") and a drift report over the last ``--drift-window`` frames go to
``--report-to``, or wait in the spool when the host cannot be reached. A full disk never stops the loop:
the oldest spooled reports are dropped to make room, each drop counted and said.

Needs numpy, one engine and edgekd-runtime; valid Python 3.6 (the Jetson Nano's JetPack 4.6).
"""
import argparse
import collections
import errno
import os
import sys
import time

import numpy as np

import frames
from edgekd_runtime import Bundle, RuntimeFailure, latency_stats, profile
from edgekd_runtime.drift import softmax
from edgekd_runtime.errors import BadInputError
from edgekd_runtime.profiler import monitor
from edgekd_runtime.report import deliver, make_report, spool_dir, spool_report, spooled

TOKEN_ENV = "EDGEKD_REPORT_TOKEN"
# Spool errors that free space can cure; any other (a read-only or missing folder) drops only the new report.
_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def say(line):
    print(line)
    sys.stdout.flush()


def warn(line):
    sys.stderr.write("warning: %s\n" % line)
    sys.stderr.flush()


class ReportSender(object):
    """Delivers reports, or spools them; on a full disk drops the oldest spooled reports first (counted in ``dropped``)."""

    MAX_DROPS_PER_REPORT = 5

    def __init__(self, url, token, spool, device_id):
        self.url, self.token, self.spool, self.device_id, self.dropped = url, token, spool_dir(spool), device_id, 0

    def send(self, body, kind):
        report = make_report(body, kind=kind, device=self.device_id)
        for _ in range(self.MAX_DROPS_PER_REPORT + 1):
            try:
                if self.url:
                    result = deliver(report, self.url, self.token, self.spool)
                    return "delivered" if result["delivered"] else "spooled in %s (%s)" % (self.spool, result["error"] or "refused")
                spool_report(report, self.spool)
                return "spooled in %s" % self.spool
            except OSError as exc:
                error = exc
                if not self._make_room(exc):
                    break
        # Nothing left to drop, an error that room cannot cure, or still no room after dropping several.
        self.dropped += 1
        warn("spool %s: %s: report %s not kept (%d report(s) dropped so far)" % (self.spool, error.strerror or error, report["report_id"], self.dropped))
        return "dropped"

    def _make_room(self, exc):
        waiting = spooled(self.spool) if exc.errno in _FULL else []
        if not waiting:
            return False
        try:
            os.remove(waiting[0])
        except OSError:
            return False
        self.dropped += 1
        warn("spool %s is full (%s): dropped the oldest report %s (%d report(s) dropped so far)"
             % (self.spool, exc.strerror or exc, os.path.basename(waiting[0]), self.dropped))
        return True


def add_arguments(ap, default_sources):
    ap.add_argument("--bundle", required=True, help="bundle folder or .zip made by edgekd build")
    ap.add_argument("--source", default=",".join(default_sources),
                    help="frame sources tried in order, comma-separated: picamera2, v4l2[:N], csi, gst:PIPELINE, video:PATH, "
                         "images:DIR (default: %(default)s)")
    ap.add_argument("--frames", type=int, default=0, help="stop after this many frames (default: until the source ends)")
    ap.add_argument("--loop", action="store_true", help="replay a video file or an image folder from the start when it ends")
    ap.add_argument("--report-every", type=int, default=1000, help="frames between profile + drift reports (0: only at the end)")
    ap.add_argument("--profile-runs", type=int, default=100, help="timed engine calls in each profile report")
    ap.add_argument("--drift-window", type=int, default=1000, help="last frames the drift report compares with the bundle's reference")
    ap.add_argument("--report-to", help="collector URL (edgekd reports serve), e.g. http://host:8765")
    ap.add_argument("--token", default=os.environ.get(TOKEN_ENV), help="collector token (default: $%s)" % TOKEN_ENV)
    ap.add_argument("--spool", help="where reports wait for the collector (default: $EDGEKD_SPOOL or ~/.cache/edgekd/spool)")
    ap.add_argument("--device-id", help="this device's name in reports (default: $EDGEKD_DEVICE_ID or the host name)")
    ap.add_argument("--public-key", help="refuse the bundle unless it is signed by this ed25519 key (PEM)")
    ap.add_argument("--allow-unverified", action="store_true", help="run an artifact the host did not verify")
    ap.add_argument("--quiet", action="store_true", help="print reports only, not every frame")


def check_arguments(args):
    if args.frames < 0 or args.report_every < 0 or args.profile_runs < 1 or args.drift_window < 1:
        raise BadInputError("--frames and --report-every must be 0 or more, --profile-runs and --drift-window 1 or more")
    if args.report_to:
        if not args.report_to.lower().startswith(("http://", "https://")):
            raise BadInputError("--report-to %.80r is not an http:// or https:// URL" % args.report_to, "e.g. --report-to http://host:8765")
        if not args.token:
            raise BadInputError("--report-to needs a token", "pass --token or set %s" % TOKEN_ENV)


class Loop(object):
    """One run of the loop; ``load_model(bundle, args)`` returns (model, options for profile()/monitor(), note or None)."""

    def __init__(self, args, load_model):
        self.args, self.load_model = args, load_model
        self.sender = ReportSender(args.report_to, args.token, args.spool, args.device_id)
        self.times = collections.deque(maxlen=10000)
        self.window = collections.deque(maxlen=args.drift_window)
        self.count, self.resize_method, self.source = 0, "none", None

    def run(self):
        args = self.args
        bundle = Bundle.open(args.bundle, public_key=args.public_key, require_signature=bool(args.public_key))
        try:
            # The source first: a missing camera is said before the engine spends seconds loading (or building).
            self.source = frames.open_first([s.strip() for s in args.source.split(",") if s.strip()], loop=args.loop, say=say)
            say("frames    from %s" % self.source.name)
            model, self.options, note = self.load_model(bundle, args)
            self.model, self.bundle = model, bundle
            ran = model.describe()
            say("model     %s (%s) on %s%s" % (model.artifact.path, model.artifact.format, model.engine, _ran_on(ran)))
            for line in [note, ran.get("engine_note"), ran.get("fallback")]:
                if line:
                    say("note      %s" % line)
            try:
                self._classify(bundle.manifest)
            except KeyboardInterrupt:
                say("stopped after %d frames" % self.count)
            if not self.count:
                raise frames.SourceUnavailable("%s gave no frames" % self.source.name)
            self.report()
            return 0
        finally:
            if self.source is not None:
                self.source.close()
            bundle.close()

    def _classify(self, manifest):
        args, labels = self.args, manifest.labels
        sample_shape, raw_dtype = self.model.sample_shape, manifest.input.dtype
        while not args.frames or self.count < args.frames:
            frame = self.source.read()
            if frame is None:
                break
            start = time.perf_counter()
            x, method = frames.fit_frame(frame, sample_shape, raw_dtype)
            probs = softmax(self.model.predict(x[None]))[0]
            elapsed = time.perf_counter() - start
            if method != "none" and self.resize_method == "none":
                say("resize    frames of %s are resized to %s (%s)" % ("x".join(str(v) for v in np.shape(frame)[:2]), "x".join(str(v) for v in sample_shape[:2]), method))
            self.resize_method = method if method != "none" else self.resize_method
            self.count += 1
            self.times.append(elapsed)
            self.window.append(x)
            top = int(np.argmax(probs))
            if not args.quiet:
                say("frame %-6d %s %.3f  %.2f ms" % (self.count, labels[top] if top < len(labels) else top, probs[top], elapsed * 1000.0))
            if args.report_every and self.count % args.report_every == 0:
                self.report()

    def loop_figures(self):
        return {
            "frames": self.count,
            "source": self.source.name,
            "resize": self.resize_method,
            "latency": latency_stats(list(self.times)),  # per frame: fitting, preprocessing, engine, softmax
            "runtime": self.model.describe(),
            "spool_dropped": self.sender.dropped,
        }

    def report(self):
        figures = self.loop_figures()
        body = profile(self.bundle, runs=self.args.profile_runs, warmup=min(10, self.args.profile_runs), **self.options)
        body["loop"] = figures
        lat = figures["latency"]
        say("report    profile after %d frames (loop p50 %.2f ms, engine p50 %.3f ms on %s%s): %s"
            % (self.count, lat["p50_ms"], body["latency"]["p50_ms"], body["runtime"]["engine"], _ran_on(body["runtime"]), self.sender.send(body, "profile")))
        if self.bundle.load_drift_reference() is not None and self.window:
            body = monitor(self.bundle, np.stack(list(self.window)), **self.options)
            body["loop"] = figures
            say("report    drift %s over the last %d frames: %s" % (body["drift"]["summary"]["status"], len(self.window), self.sender.send(body, "monitor")))


def _ran_on(info):
    return "".join(", %s %s" % (k, info[k]) for k in ("provider", "delegate", "threads") if info.get(k) is not None)


def main(argv, description, default_sources, load_model, extend=None):
    """Parse, run, and turn every failure a user can fix into one line and an exit code (the runtime's codes)."""
    ap = argparse.ArgumentParser(description=description)
    add_arguments(ap, default_sources)
    if extend is not None:
        extend(ap)
    args = ap.parse_args(argv)
    name = os.path.basename(sys.argv[0]) or "classify"
    try:
        check_arguments(args)
        return Loop(args, load_model).run()
    except RuntimeFailure as exc:
        sys.stderr.write("%s: error: %s\n" % (name, exc))
        return exc.exit_code
    except (frames.SourceUnavailable, frames.FrameError) as exc:
        sys.stderr.write("%s: error: %s\n" % (name, exc))
        return 2
