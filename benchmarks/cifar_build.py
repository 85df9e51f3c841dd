"""Issue 12's CIFAR-10 target: `edgekd build --profile cortex-m4f` and `--profile raspberry-pi-4` with the benchmark
teacher, each in at most half the teacher's training time.

    .venv/bin/python benchmarks/cifar_build.py       # trains the teacher first if benchmarks/out/cifar10 has none (TEACHER_MINUTES, default 60)
    .venv/bin/python benchmarks/cifar_build.py --profiles cortex-m4f --results cifar_build_m4f.json   # one of them
    .venv/bin/python benchmarks/cifar_build.py --data-dir DIR   # CIFAR-10 archive from DIR (default $EDGEKD_DATA, else ../shared/data)

The budget of each build is half the teacher's recorded training minutes (teacher.json). Writes
benchmarks/out/cifar10/builds.json (copied to benchmarks/results/cifar_build.json) and prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

from cifar_common import OUT, TEACHER, TEACHER_INFO, add_data_dir_argument, cifar10, teacher
from mnist_build import HERE, run_one, table

PROFILES = ("cortex-m4f", "raspberry-pi-4")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--results", default="cifar_build.json", help="file name under benchmarks/results/")
    add_data_dir_argument(ap)
    args = ap.parse_args(argv)
    cifar10(args.data_dir)  # decodes the data folder's archive into OUT/cifar10_{train,test}.npz once
    teacher(float(os.environ.get("TEACHER_MINUTES", "60")), data=args.data_dir)  # trains it once and reuses it afterwards
    info = json.loads(TEACHER_INFO.read_text())
    budget = f"{int(info['minutes'] * 60 / 2)}s"
    rows = []
    for profile in args.profiles.split(","):
        print(f"== {profile} (time budget {budget})", flush=True)
        rows.append(run_one(profile, budget, TEACHER, OUT / "cifar10_train.npz", OUT / "cifar10_test.npz", OUT))
        print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("command", "seconds")}), flush=True)
    doc = {"teacher": info, "time_budget": budget, "date": time.strftime("%Y-%m-%d"), "rows": rows}
    (OUT / "builds.json").write_text(json.dumps(doc, indent=2))
    (HERE / "results").mkdir(exist_ok=True)
    shutil.copyfile(OUT / "builds.json", HERE / "results" / args.results)
    print(table(rows))
    return 0 if all(r["exit_code"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
