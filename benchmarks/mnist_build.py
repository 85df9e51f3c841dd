"""Issue 12's MNIST target: `edgekd build` for every device profile, each within the default time budget.

    .venv/bin/python benchmarks/mnist_teacher.py     # once: trains the teacher (benchmarks/out/mnist_build/teacher.keras)
    .venv/bin/python benchmarks/mnist_build.py       # every profile, one after another (~1-2 h on 2 cores)
    .venv/bin/python benchmarks/mnist_build.py --profiles cortex-m4f,raspberry-pi-4 --time-budget 20m
    .venv/bin/python benchmarks/mnist_build.py --data-dir DIR   # MNIST from DIR (default $EDGEKD_DATA, else ../shared/data)

Each build runs as a user would run it (the `edgekd build` command, default budget unless --time-budget), then
`edgekd-runtime profile` measures the bundle's primary artifact on this machine's engine over the bundle's eval
samples. Writes benchmarks/out/mnist_build/builds.json (and copies it to benchmarks/results/mnist_build.json) and prints
the Markdown table: profile, chosen student, params, MACs, minutes, device-runtime accuracy, % of the teacher.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE / "out" / "mnist_build"
PROFILES = ("android-midrange", "iphone", "raspberry-pi-4", "jetson-nano", "linux-x86", "cortex-m7", "cortex-m4f")
BIN = Path(sys.executable).parent

from bench_data import MNIST, add_data_dir_argument, data_dir  # noqa: E402


def run_one(profile: str, budget: str | None, teacher: Path = OUT / "teacher.keras", train: Path | None = None,
            test: Path | None = None, out_root: Path = OUT, existing: bool = False) -> dict:
    """One `edgekd build` as a user runs it, then `edgekd-runtime profile` on the bundle; the row for the table.
    ``train``/``test`` default to MNIST in the data folder (--data-dir, $EDGEKD_DATA, ../shared/data)."""
    if train is None or test is None:
        data = data_dir(None, MNIST)
        train, test = train or data / MNIST[0], test or data / MNIST[1]
    out = out_root / "builds" / profile
    cmd = [str(BIN / "edgekd"), "build", "--teacher", str(teacher), "--data", str(train),
           "--eval", str(test), "--profile", profile, "--out", str(out), "--force"]
    if budget:
        cmd += ["--time-budget", budget]
    if existing:
        # The build already ran (its CLI failed after writing the bundle): read its record instead of building again.
        record = json.loads((Path(str(out) + ".student") / "distill.json").read_text())
        proc = subprocess.CompletedProcess(cmd, 0, "", "")
        minutes = record["seconds"]["total"] / 60
    else:
        load_before = os.getloadavg()[0]
        start = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        minutes = (time.monotonic() - start) / 60
    row = {"profile": profile, "command": " ".join(cmd), "exit_code": proc.returncode, "minutes": round(minutes, 2)}
    if not existing:
        # Other work on the machine slows training and so changes what a time budget buys: say how busy it was.
        row["load_average_1min"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    if existing:
        row["note"] = "read from an earlier run's bundle and distill.json; minutes from the build's own clock"
    if proc.returncode != 0:
        row["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return row
    report_path = out.parent / f"{profile}.report.json"
    prof = subprocess.run([str(BIN / "edgekd-runtime"), "profile", str(out), "--runs", "100", "--json", str(report_path)], capture_output=True, text=True)
    record = json.loads((Path(str(out) + ".student") / "distill.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    summary = record["summary"]
    row.update(
        student=record["student"]["spec"], params=record["student"]["params"], macs=record["student"]["macs"],
        primary=manifest["artifacts"][0]["format"], teacher_accuracy=summary["teacher_accuracy"], eval_samples=summary["eval_samples"],
        selection=record["selection"]["how"], reason=record["selection"]["reason"], alpha=record["selection"]["alpha"],
        temperature=record["selection"]["temperature"], epochs_run=record["config"].get("epochs_run"), stopped=record["config"].get("stopped"),
        seconds=record["seconds"], notes=summary["notes"],
    )
    if prof.returncode == 0:
        report = json.loads(report_path.read_text())
        row.update(runtime_accuracy=report["accuracy"], runtime_engine=report["runtime"]["engine"],
                   percent_of_teacher=100 * report["accuracy"] / summary["teacher_accuracy"])
    else:
        row["runtime_error"] = (prof.stderr.strip().splitlines() or ["?"])[-1]
    return row


def table(rows) -> str:
    lines = ["| profile | chosen student | params | MACs | minutes | accuracy (device runtime) | % of teacher | stopped |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["exit_code"] != 0:
            lines.append(f"| {r['profile']} | failed: {r.get('error', '')} | | | {r['minutes']:.1f} | | | |")
            continue
        acc = f"{100 * r['runtime_accuracy']:.2f}% ({r['primary']}, {r['runtime_engine']})" if "runtime_accuracy" in r else r.get("runtime_error", "-")
        pct = f"{r['percent_of_teacher']:.1f}%" if "percent_of_teacher" in r else "-"
        lines.append(f"| {r['profile']} | `{r['student']}` | {r['params']:,} | {r['macs']:,} | {r['minutes']:.1f} | {acc} | {pct} | "
                     f"{r['epochs_run']} epochs, {r['stopped']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--time-budget", default=None, help="default: edgekd build's own default")
    ap.add_argument("--results", default="mnist_build.json", help="file name under benchmarks/results/")
    add_data_dir_argument(ap)
    args = ap.parse_args(argv)
    data = data_dir(args.data_dir, MNIST)
    if not (OUT / "teacher.keras").exists():
        print("no teacher: run benchmarks/mnist_teacher.py first", file=sys.stderr)
        return 2
    teacher = json.loads((OUT / "teacher.json").read_text())
    rows = []
    results = OUT / "builds.json"
    for profile in args.profiles.split(","):
        print(f"== {profile}", flush=True)
        rows.append(run_one(profile, args.time_budget, train=data / MNIST[0], test=data / MNIST[1]))
        print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("command", "seconds")}), flush=True)
        doc = {"teacher": teacher, "time_budget": args.time_budget or "default", "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
               "date": time.strftime("%Y-%m-%d"), "rows": rows}
        results.write_text(json.dumps(doc, indent=2))
    (HERE / "results").mkdir(exist_ok=True)
    shutil.copyfile(results, HERE / "results" / args.results)
    print(table(rows))
    return 0 if all(r["exit_code"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
