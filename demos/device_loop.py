#!/usr/bin/env python3
"""A device-side loop for a Raspberry Pi or a Jetson: the shape of a real deployment with edgekd_runtime.

1. Open the bundle (every file checked against its sha256; a signature too, when a public key is given).
2. Profile it once on this device and report the result to the host.
3. Classify each .npy that lands in --inbox (a camera or sensor process drops them there), moving it to
   done/ after reading; every --every inputs, compare the inputs seen against the bundle's drift
   reference and report that too. Reports that cannot reach the host wait in the spool and go out
   with a later report; the collector counts each once.

Needs only numpy, one engine and edgekd-runtime (Python 3.6+):

    python3 device_loop.py BUNDLE --inbox /var/lib/camera/out --report-to http://HOST:8765 --token T
    python3 device_loop.py BUNDLE --inbox DIR --once       # profile, drain the inbox, report, exit
"""
import argparse
import os
import shutil
import sys
import time

import numpy as np

from edgekd_runtime import Bundle, Model, RuntimeFailure, profile
from edgekd_runtime.profiler import monitor
from edgekd_runtime.report import deliver, make_report, spool_report


def send(body, kind, args):
    report = make_report(body, kind=kind)
    if not args.report_to:
        spool_report(report, args.spool)  # sent later by `edgekd-runtime send --report-to URL`
        return "spooled"
    result = deliver(report, args.report_to, args.token, args.spool)
    return "delivered" if result["delivered"] else "spooled (host unreachable)"


def drain(inbox, model, labels, seen):
    done = os.path.join(inbox, "done")
    os.makedirs(done, exist_ok=True)
    for name in sorted(os.listdir(inbox)):
        if not name.endswith(".npy"):
            continue
        path = os.path.join(inbox, name)
        x = np.load(path, allow_pickle=False)
        scores = model.predict(x)
        for row in scores.argmax(axis=1):
            print("%s: %s" % (name, labels[row] if row < len(labels) else row), flush=True)
        seen.append(model.check_input(x))
        shutil.move(path, os.path.join(done, name))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--inbox", required=True, help="folder where .npy inputs arrive")
    ap.add_argument("--report-to", help="collector URL (edgekd reports serve)")
    ap.add_argument("--token", default=os.environ.get("EDGEKD_TOKEN"))
    ap.add_argument("--spool", help="folder for reports not yet delivered")
    ap.add_argument("--public-key", help="refuse the bundle unless signed by this ed25519 key")
    ap.add_argument("--every", type=int, default=500, help="inputs between drift reports")
    ap.add_argument("--once", action="store_true", help="drain the inbox once and exit")
    args = ap.parse_args(argv)
    try:
        bundle = Bundle.open(args.bundle, public_key=args.public_key, require_signature=bool(args.public_key))
        print("profile report:", send(profile(bundle, runs=200), "profile", args), flush=True)
        model = Model.from_bundle(bundle)
        reference = bundle.load_drift_reference()
        seen = []
        while True:
            drain(args.inbox, model, bundle.manifest.labels, seen)
            count = sum(len(x) for x in seen)
            if reference is not None and seen and (count >= args.every or args.once):
                body = monitor(bundle, np.concatenate(seen))
                print("drift %s over %d inputs: %s" % (body["drift"]["summary"]["status"], count, send(body, "monitor", args)), flush=True)
                seen = []
            if args.once:
                return 0
            time.sleep(1.0)
    except RuntimeFailure as exc:
        sys.stderr.write("device_loop: error: %s\n" % exc)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
