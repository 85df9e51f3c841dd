"""Scores of a bundle's artifacts on its own eval set, written to an .npz: run once on the host and once in the arm64
userland by benchmarks/arm64_check.py, so both sides run this same code through edgekd_runtime (numpy + engine only).

    python arm64_scores.py OUT.npz BUNDLE FORMAT[:ENGINE] ...

Each FORMAT:ENGINE names an artifact and the engine to run it on (the artifact's own when left out). OUT.npz gets
``x`` (the eval inputs), ``y`` when the bundle has labels, ``host_outputs`` when it stores them, and per artifact
``scores/FORMAT``; OUT.json the engine each one ran on (Model.describe()) and the machine.
"""
import json
import platform
import sys

import numpy as np

from edgekd_runtime import Bundle, Model


def main(argv):
    out, path, specs = argv[0], argv[1], argv[2:]
    arrays, described = {}, {}
    with Bundle.open(path) as bundle:
        x, y, host = bundle.load_eval()
        arrays["x"] = x
        if y is not None:
            arrays["y"] = y
        if host is not None:
            arrays["host_outputs"] = host
        for spec in specs:
            fmt, _, engine = spec.partition(":")
            # Machines are compared, not the artifact with its student: one that failed the host's parity check runs too.
            model = Model.from_bundle(bundle, artifact=fmt, engine=engine or None, allow_unverified=True)
            arrays["scores/" + fmt] = np.asarray(model.predict(x), dtype=np.float32)
            described[fmt] = model.describe()
    np.savez(out, **arrays)
    with open(out[: -len(".npz")] + ".json", "w") as handle:
        json.dump({"machine": platform.machine(), "python": platform.python_version(), "numpy": np.__version__, "artifacts": described}, handle, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
