"""The long fuzz run: every fuzz test of tests/test_fuzz.py with thousands of examples per reader (CI runs 60).

Each test runs in its own pytest process with EDGEKD_FUZZ_EXAMPLES set, and Hypothesis's statistics give the
number of examples actually run (fewer than asked when a strategy's space is exhausted, or when an expected
failure stops an xfail test at its first example). Writes benchmarks/results/fuzz_long.json:

    .venv/bin/python benchmarks/fuzz_long.py --examples 3000 [--tests fuzz_manifest,fuzz_npz] [--budget-s 600]

A test that fails prints Hypothesis's reproducer (``@reproduce_failure``) in the "tail" field of its entry.
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_FILE = os.path.join("tests", "test_fuzz.py")
OUT = os.path.join(ROOT, "benchmarks", "results", "fuzz_long.json")


def fuzz_tests():
    """The names of the property-based tests in tests/test_fuzz.py (the others are named cases run by CI anyway)."""
    with open(os.path.join(ROOT, TEST_FILE)) as handle:
        return re.findall(r"^def (test_fuzz_\w+)\(", handle.read(), re.M)


def run_one(name, examples, timeout):
    env = dict(os.environ, EDGEKD_FUZZ_EXAMPLES=str(examples), TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", "-rxX",
           "--hypothesis-show-statistics", "%s::%s" % (TEST_FILE, name)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        output, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = (exc.stdout or b"").decode("utf-8", "replace") if isinstance(exc.stdout, bytes) else (exc.stdout or ""), None
    seconds = time.perf_counter() - start
    passing = sum(int(n) for n in re.findall(r"(\d+) passing examples?", output))
    failing = sum(int(n) for n in re.findall(r"(\d+) failing examples?", output))
    invalid = sum(int(n) for n in re.findall(r"(\d+) invalid examples?", output))
    if code is None:
        outcome = "cut by the time budget"
    elif re.search(r"\b1 xfailed\b", output):
        outcome = "xfailed (open finding, see the test's reason)"
    elif code == 0:
        outcome = "passed"
    else:
        outcome = "failed"
    entry = {
        "test": name,
        "examples_asked": examples,
        "examples_run": passing + failing,
        "failing_examples": failing,
        "invalid_examples": invalid,
        "seconds": round(seconds, 1),
        "outcome": outcome,
    }
    if outcome not in ("passed",):
        entry["tail"] = output[-3000:]
    return entry


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000, help="examples per fuzz test")
    parser.add_argument("--tests", help="comma-separated subset of the fuzz tests (default: all)")
    parser.add_argument("--budget-s", type=float, default=600.0, help="stop starting new tests past this many seconds")
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--merge", action="store_true",
                        help="keep the entries of --out for tests not run now (a later run completes an earlier, budget-cut one)")
    args = parser.parse_args(argv)
    names = names_all = fuzz_tests()
    if args.tests:
        wanted = set(args.tests.split(","))
        names = [n for n in names if n in wanted or n[len("test_"):] in wanted]
    results, start = [], time.perf_counter()
    for name in names:
        left = args.budget_s - (time.perf_counter() - start)
        if left <= 5:
            results.append({"test": name, "outcome": "not run (budget spent)"})
            continue
        entry = run_one(name, args.examples, timeout=left)
        results.append(entry)
        print("%-36s %-8s %6s examples in %6.1f s" % (name, entry["outcome"].split()[0], entry.get("examples_run"), entry["seconds"]), flush=True)
    runs = [{"examples_per_test": args.examples, "seconds": round(time.perf_counter() - start, 1), "tests": [r["test"] for r in results if "seconds" in r]}]
    if args.merge and os.path.exists(args.out):
        with open(args.out) as handle:
            earlier = json.load(handle)
        ran_now = set(runs[0]["tests"])
        kept = [r for r in earlier.get("tests", []) if r["test"] not in ran_now and "seconds" in r]
        results = sorted(kept + [r for r in results if "seconds" in r], key=lambda r: names_all.index(r["test"]) if r["test"] in names_all else 99)
        before = earlier.get("runs") or [{"examples_per_test": earlier.get("examples_per_test"), "seconds": earlier.get("seconds_total"),
                                          "tests": [r["test"] for r in earlier.get("tests", []) if "seconds" in r]}]
        runs = before + runs
    summary = {
        "command": " then ".join("benchmarks/fuzz_long.py --examples %d" % r["examples_per_test"] for r in runs),
        "runs": runs,
        "examples_run_total": sum(r.get("examples_run", 0) for r in results),
        "seconds_total": round(sum(r["seconds"] for r in runs), 1),
        "failed": [r["test"] for r in results if r["outcome"] == "failed"],
        "machine": "%s, %d CPUs, Python %s" % (platform.platform(), os.cpu_count() or 0, platform.python_version()),
        "tests": results,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(summary, handle, indent=2)
        handle.write("\n")
    print("wrote %s: %d examples in %.0f s, failed: %s" % (args.out, summary["examples_run_total"], summary["seconds_total"], ", ".join(summary["failed"]) or "none"))
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
