"""How many field samples the drift verdict needs before it can say "stable" (issue 13).

PSI on a small sample is biased upwards: every bin a sample of 30 leaves empty adds about e*ln(e/1e-4) (0.69 for
a tenth of the reference), so 30 samples drawn from the reference's own distribution read as "shift". This script
measures, with ``edgekd_runtime.drift.drift_report`` itself (its sample-size rule switched off with
``min_samples=0``), how often same-distribution samples of n come out "stable" and how often a real shift comes
out "shift", for growing n:

- digits: scikit-learn's 8x8 digits (64 pixel features + mean/std, 'values' mode) and a logistic regression's
  scores (10 classes, trained on 300 other digits); the reference is 900 digits (digits-ref400: 400, about a
  bundle's eval set), field samples are drawn without replacement from the remaining ones. Shifts: the washed-out image of the tests (x*0.5+6) and a
  20% darker one (x*0.8).
- camera-C: synthetic 12x12x3 frames whose brightness and contrast vary per sample ('channels' mode), and scores
  over C classes (C = 2, 10, 30, 100) with a 1,000-sample reference (the most a bundle's eval set holds);
  camera-100-ref3000 has a 3,000-sample one. Field samples come from the same generator. Shift: 20% darker frames
  with the same scores (an input-only shift).

Per scenario: the smallest n from which every larger n of its grid keeps the stable rate at 95% or more, and a
check with more trials at exactly ``required_samples(reference)``, the runtime's rule (MIN_SAMPLES, or
MIN_SAMPLES_PER_CLASS per class when the reference is large enough for its class mix to be judged).
Run from the repository root (about 20 minutes on 2 shared cores):

    .venv/bin/python benchmarks/drift_min_samples.py [--trials 100] [--check-trials 400] [--out benchmarks/results/drift_min_samples.json]
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "runtime"))

from edgekd_runtime.drift import MIN_SAMPLES, MIN_SAMPLES_PER_CLASS, drift_report, judges_class_mix, reference_statistics, required_samples  # noqa: E402

GRID = [30, 50, 100, 150, 200, 250, 300, 350, 400, 600, 800]
TARGET = 0.95


def digits_scenario(rng, reference_size=900):
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    d = load_digits()
    x = d.images.astype(np.float32)[..., None]
    perm = rng.permutation(len(x))
    # The model is trained on digits of its own: scored on its training data, the reference would be more
    # confident than any field sample, a difference that is no drift (a bundle's reference is its eval set).
    train_i, ref_i, pool_i = perm[:300], perm[300:300 + reference_size], perm[300 + reference_size:]
    clf = LogisticRegression(max_iter=500).fit(x[train_i].reshape(len(train_i), -1) / 16.0, d.target[train_i])

    def score(a):
        return clf.decision_function(a.reshape(len(a), -1) / 16.0)

    pool = x[pool_i]

    def draw(n):
        a = pool[rng.choice(len(pool), n, replace=False)]
        return a, score(a)

    def washed(a, _):
        a = np.clip(a * 0.5 + 6.0, 0, 16).astype(np.float32)
        return a, score(a)

    def darker(a, _):
        a = (a * 0.8).astype(np.float32)
        return a, score(a)

    return {"reference": reference_statistics(x[ref_i], score(x[ref_i])), "draw": draw, "max_n": len(pool),
            "shifts": {"washed (x*0.5+6)": washed, "darker (x*0.8)": darker}}


def camera_scenario(rng, classes, reference_size=1000):
    """Frames and scores from one generator: the class drives the logits, brightness and contrast the pixels."""

    def draw(n):
        bright = rng.normal(0.5, 0.08, (n, 1, 1, 1))
        contrast = rng.uniform(0.08, 0.2, (n, 1, 1, 1))
        tint = rng.normal(0.0, 0.02, (n, 1, 1, 3))
        x = np.clip(bright + tint + contrast * rng.standard_normal((n, 12, 12, 3)), 0.0, 1.0).astype(np.float32)
        logits = rng.normal(0.0, 1.0, (n, classes))
        logits[np.arange(n), rng.integers(0, classes, n)] += 3.0
        return x, logits

    def darker(x, logits):
        # An input-only shift: the same outputs, so only the input features can see it.
        return x * np.float32(0.8), logits

    ref_x, ref_scores = draw(reference_size)
    return {"reference": reference_statistics(ref_x, ref_scores), "draw": draw, "max_n": None, "shifts": {"darker (x*0.8)": darker}}


def verdicts(scenario, n, trials):
    """Fractions of trials whose verdict (PSI only, the sample-size rule switched off) is each status."""
    same = {"stable": 0, "moderate": 0, "shift": 0}
    shifted = {name: {"stable": 0, "moderate": 0, "shift": 0} for name in scenario["shifts"]}
    parts = []
    for _ in range(trials):
        x, scores = scenario["draw"](n)
        s = drift_report(scenario["reference"], x, scores, min_samples=0)["summary"]
        same[s["status"]] += 1
        parts.append((s["input_psi_mean"], s["confidence_psi"], s["class_psi"]))
        for name, shift in scenario["shifts"].items():
            xs, ss = shift(x, scores)
            shifted[name][drift_report(scenario["reference"], xs, ss, min_samples=0)["summary"]["status"]] += 1
    return {
        "n": n,
        "stable_rate": same["stable"] / float(trials),
        "moderate_rate": same["moderate"] / float(trials),
        "false_shift_rate": same["shift"] / float(trials),
        # Which term holds the verdict back: the 95th percentile of each PSI on same-distribution samples.
        "psi_p95": dict(zip(("input_mean", "confidence", "class_mix"), [round(float(v), 4) for v in np.percentile(np.array(parts), 95, axis=0)])),
        "shift_detected": {name: counts["shift"] / float(trials) for name, counts in shifted.items()},
        "shift_not_stable": {name: 1.0 - counts["stable"] / float(trials) for name, counts in shifted.items()},
    }


def first_stable(rows):
    """Smallest n from which every larger n on the grid keeps the stable rate at TARGET or more (None: never)."""
    ok = None
    for row in reversed(rows):
        if row["stable_rate"] < TARGET:
            break
        ok = row["n"]
    return ok


def _print_row(name, row):
    print("%-18s n=%5d  stable %5.1f%%  moderate %5.1f%%  shift %5.1f%%  PSI p95 %s  shift found %s"
          % (name, row["n"], 100 * row["stable_rate"], 100 * row["moderate_rate"], 100 * row["false_shift_rate"],
             " ".join("%s %.3f" % kv for kv in row["psi_p95"].items()),
             ", ".join("%s %.0f%%" % (k, 100 * v) for k, v in row["shift_detected"].items())), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100, help="trials per n of the grid")
    ap.add_argument("--check-trials", type=int, default=400, help="trials at the runtime's required sample count")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join("benchmarks", "results", "drift_min_samples.json"))
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    started = time.time()
    scenarios = {"digits": (digits_scenario(rng), GRID), "digits-ref400": (digits_scenario(rng, 400), GRID)}
    for classes in (2, 10, 30, 100):
        scenarios["camera-%d" % classes] = (camera_scenario(rng, classes), GRID + ([900, 1200] if classes == 30 else []))
    scenarios["camera-100-ref3000"] = (camera_scenario(rng, 100, reference_size=3000), [300, 1000, 2000, 3000])
    results = {}
    for name, (scenario, grid) in scenarios.items():
        reference = scenario["reference"]
        rows = []
        for n in grid:
            if scenario["max_n"] is not None and n > scenario["max_n"]:
                continue
            rows.append(verdicts(scenario, n, args.trials))
            _print_row(name, rows[-1])
        needed = required_samples(reference)
        check = verdicts(scenario, needed, args.check_trials) if scenario["max_n"] is None or needed <= scenario["max_n"] else None
        if check is not None:
            _print_row(name + " (check)", check)
        results[name] = {
            "classes": len(reference["classes"]), "reference_samples": reference["samples"], "feature_mode": reference["feature_mode"],
            "class_mix_judged": judges_class_mix(reference), "min_stable_n": first_stable(rows), "rows": rows,
            "required_samples": needed, "at_required_samples": check,
        }
    out = {
        "what": "drift verdict of edgekd_runtime.drift.drift_report on same-distribution and shifted samples of n (sample-size rule off)",
        "rule": {"MIN_SAMPLES": MIN_SAMPLES, "MIN_SAMPLES_PER_CLASS": MIN_SAMPLES_PER_CLASS},
        "trials_per_n": args.trials,
        "check_trials": args.check_trials,
        "seed": args.seed,
        "target_stable_rate": TARGET,
        "scenarios": results,
        "seconds": round(time.time() - started, 1),
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(out, handle, indent=1, sort_keys=True)
    for name, res in results.items():
        at = res["at_required_samples"]
        print("%-18s %3d classes, reference %4d: stable >= %.0f%% from n = %s on the grid; at the rule's n = %d: %s"
              % (name, res["classes"], res["reference_samples"], 100 * TARGET, res["min_stable_n"], res["required_samples"],
                 "stable %.1f%%, shift found %s" % (100 * at["stable_rate"], ", ".join("%.0f%%" % (100 * v) for v in at["shift_detected"].values())) if at else "-"))
    print("wrote %s in %.0f s" % (args.out, time.time() - started))


if __name__ == "__main__":
    main()
