"""Issue 16's ARM64 check: edgekd-runtime and the engines' aarch64 wheels in an emulated Debian 12 arm64 userland,
against the host on the same bundles and inputs.

    make arm64-check                                     # = .venv/bin/python benchmarks/arm64_check.py (as root)
    .venv/bin/python benchmarks/arm64_check.py --kind unpacked --bundle out/demo/android-midrange   # quicker rootfs

Bundles: the demo's (out/demo: phone int8, Jetson ONNX, the MCU's int8 TFLite run on LiteRT; made with `edgekd demo`
when missing, about 5 min) and a CIFAR-10 int8 student for raspberry-pi-4 (benchmarks/out/cifar10/builds from
cifar_build.py when there, else a small one built under a bounded budget, about 15 min: arm64_bundles.py).
For each bundle: `edgekd-runtime info`, `profile --json` and `run` inside the userland, then every artifact's scores
on the bundle's eval set on both machines (benchmarks/arm64_scores.py): top-1 agreement and max abs difference.
An artifact passes when ARM and host agree at least as well as the host's parity bound asks of the artifact against
the Keras student (int8 99%, float 99.9%) and ARM loses no more accuracy than the int8 bound allows.
Writes benchmarks/results/arm64_check.json and prints the README table. Latency under qemu is emulated, not a Pi's:
it stays out of the table and is stored marked as such.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import arm64_userland as userland  # noqa: E402
from arm64_bundles import cifar_bundle, demo_bundles  # noqa: E402
from arm64_userland import REPO, EmulatorMissing  # noqa: E402

BIN = Path(sys.executable).parent
RESULTS = HERE / "results" / "arm64_check.json"
# The engines this check runs; TFLite Micro has no aarch64 wheel on PyPI, so a tflm artifact runs on LiteRT
# (it is an ordinary int8 .tflite file) and the table says so.
ENGINE_FOR = {"litert": "litert", "onnxruntime": "onnxruntime", "tflm": "litert"}
NOTE = ("latency measured under qemu-user is emulation speed, not a Pi's or a Jetson's: it appears only in "
        "cli.profile_report.emulated_latency_not_device_latency and in the Pi demo's own output lines (pi_demo.stdout_head)")
THRESHOLDS = {"float": 0.999, "int8": 0.99}  # edgekd.convert.parity's bounds, restated: this script is runtime-side
MAX_INT8_DROP_POINTS = 0.5


def artifacts(bundle: Path) -> list:
    """(format, engine to run it on, kind, the manifest's engine, the host's verification) of each artifact this
    check can run on both machines."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    rows = []
    for art in manifest["artifacts"]:
        engine = ENGINE_FOR.get(art["engine"])
        if engine is None:
            continue  # TensorRT/CoreML cannot run on either machine here
        int8 = art["format"].endswith("int8") or art["format"] == "tflite-dynamic"
        rows.append((art["format"], engine, "int8" if int8 else "float", art["engine"], art.get("verification")))
    return rows


def scores_on_host(bundle: Path, specs, out: Path) -> dict:
    npz = out / ("host-%s.npz" % bundle.name)
    subprocess.run([str(BIN / "python"), str(HERE / "arm64_scores.py"), str(npz), str(bundle)] + specs, check=True)
    return _load(npz)


def _load(npz: Path) -> dict:
    with np.load(npz) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["describe"] = json.loads(npz.with_suffix(".json").read_text())
    return arrays


def arm_side(root: Path, bundle: Path, specs, out: Path, runs: int) -> dict:
    """Copy the bundle into the rootfs, run the CLI and the scores script there; what came back. The CLI runs the
    bundle profile's engine, or the one standing in for it (TFLite Micro: LiteRT), named with --engine."""
    profile_engine = json.loads((bundle / "manifest.json").read_text())["profile"].get("engine")
    override = ["--engine", ENGINE_FOR[profile_engine]] if ENGINE_FOR.get(profile_engine, profile_engine) != profile_engine else []
    inside = Path("/tmp/edgekd-arm64-check") / bundle.name
    there = root / str(inside).lstrip("/")
    shutil.rmtree(there.parent, ignore_errors=True)
    shutil.copytree(bundle, there / "bundle")
    shutil.copyfile(HERE / "arm64_scores.py", there / "arm64_scores.py")
    with np.load(bundle / "eval.npz") as data:
        np.save(there / "sample.npy", data["x"][:2])
    b = str(inside / "bundle")
    result = {"commands": {}}
    for name, argv in (("info", ["edgekd-runtime", "info", b]),
                       ("profile", ["edgekd-runtime", "profile", b, "--runs", str(runs), "--warmup", "2", "--json", str(inside / "profile.json")] + override),
                       ("run", ["edgekd-runtime", "run", b, "--input", str(inside / "sample.npy")] + override)):
        start = time.monotonic()
        proc = userland.run_in(root, argv)
        result["commands"][name] = {"argv": " ".join(argv), "exit_code": proc.returncode, "seconds_emulated": round(time.monotonic() - start, 1),
                                    "stdout": proc.stdout.strip().splitlines(), "stderr_tail": proc.stderr.strip().splitlines()[-3:]}
    if (there / "profile.json").exists():
        result["profile"] = json.loads((there / "profile.json").read_text())
    proc = userland.run_in(root, [userland.VENV + "/bin/python", str(inside / "arm64_scores.py"), str(inside / "arm.npz"), b] + specs)
    if proc.returncode:
        raise SystemExit("arm64: the scores script failed in the rootfs on %s: %s" % (bundle, (proc.stderr.strip().splitlines() or ["?"])[-1]))
    shutil.copyfile(there / "arm.npz", out / ("arm-%s.npz" % bundle.name))
    shutil.copyfile(there / "arm.json", out / ("arm-%s.json" % bundle.name))
    result["scores"] = _load(out / ("arm-%s.npz" % bundle.name))
    shutil.rmtree(there.parent, ignore_errors=True)
    return result


PI_DEMO = REPO / "demos" / "raspberry_pi" / "classify.py"
PI_FRAMES = 8


def pi_demo(root: Path, bundle: Path) -> dict:
    """demos/raspberry_pi on an image folder of the bundle's first eval inputs, in the userland and on the host:
    its exit status, the spooled reports, and whether every frame's top-1 is the same on both machines."""
    inside = Path("/tmp/edgekd-arm64-pi")
    there = root / str(inside).lstrip("/")
    shutil.rmtree(there, ignore_errors=True)
    shutil.copytree(REPO / "demos", there / "demos", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(bundle, there / "bundle")
    with np.load(bundle / "eval.npz") as data:
        x = data["x"][:PI_FRAMES]
    (there / "images").mkdir()
    for i, sample in enumerate(x):
        np.save(there / "images" / ("frame_%03d.npy" % i), sample)
    args = "--bundle {0}/bundle --source images:{0}/images --frames %d --spool {0}/spool --profile-runs 3" % PI_FRAMES

    def argv(base: Path, python: str) -> list:
        return [python, str(base / "demos" / "raspberry_pi" / "classify.py")] + args.format(base).split()

    arm = userland.run_in(root, argv(inside, userland.VENV + "/bin/python3"))
    spooled = sorted(p.name for p in (there / "spool").rglob("*.json")) if (there / "spool").exists() else []
    host = subprocess.run(argv(there, str(BIN / "python")), capture_output=True, text=True, timeout=600)
    shutil.rmtree(there / "spool", ignore_errors=True)

    def tops(out: str) -> list:
        return [line.split()[2] for line in out.splitlines() if line.startswith("frame ")]

    result = {"command": "python3 demos/raspberry_pi/classify.py " + args.format("DIR"), "exit_code": arm.returncode, "host_exit_code": host.returncode,
              "frames": len(tops(arm.stdout)), "top1_arm": tops(arm.stdout), "top1_host": tops(host.stdout), "spooled_reports": len(spooled),
              "stdout_head": [line for line in arm.stdout.splitlines() if not line.startswith("frame ")][:6],
              "stderr_tail": [line for line in arm.stderr.strip().splitlines() if "cpuinfo" not in line][-3:]}
    result["passed"] = bool(arm.returncode == 0 and host.returncode == 0 and result["frames"] == len(x) and result["top1_arm"] == result["top1_host"] and len(spooled) >= 2)
    shutil.rmtree(there, ignore_errors=True)
    return result


def compare(fmt: str, kind: str, host: dict, arm: dict, output_scale=None) -> dict:
    """ARM against host on one artifact's eval scores, and both against the bundle's stored host outputs.
    ``output_scale``: the int8 output's step, to say differences in steps."""
    h, a = host["scores/" + fmt], arm["scores/" + fmt]
    hp, ap = h.argmax(1), a.argmax(1)
    row = {"samples": int(len(h)), "agreement": float(np.mean(hp == ap)), "disagreements": int(np.sum(hp != ap)),
           "max_abs_diff": float(np.max(np.abs(h - a))), "identical": bool(np.array_equal(h, a)), "threshold": THRESHOLDS[kind],
           "outputs_differing": float(np.mean(h != a))}
    if output_scale:
        row["max_diff_output_steps"] = float(np.round(row["max_abs_diff"] / output_scale, 3))
        # A changed top-1 whose two best host scores were within one output step apart is a near tie:
        # one step of rounding is enough to swap them.
        top2 = np.sort(h, axis=1)[:, -2:]
        near = (top2[:, 1] - top2[:, 0]) <= output_scale * 1.0001
        row["disagreements_near_ties"] = int(np.sum((hp != ap) & near))
    if "host_outputs" in host:
        stored = host["host_outputs"].argmax(1)
        row["host_vs_stored_agreement"] = float(np.mean(hp == stored))
        row["arm_vs_stored_agreement"] = float(np.mean(ap == stored))
    passed = row["agreement"] >= row["threshold"]
    if "y" in host:
        y = host["y"]
        row["accuracy_host"], row["accuracy_arm"] = float(np.mean(hp == y)), float(np.mean(ap == y))
        row["accuracy_drop_points"] = 100.0 * (row["accuracy_host"] - row["accuracy_arm"])
        if kind == "int8":
            row["max_drop_points"] = max(MAX_INT8_DROP_POINTS, 200.0 / len(y))
            passed = passed and row["accuracy_drop_points"] <= row["max_drop_points"] + 1e-9
    row["passed"] = bool(passed)
    return row


def check(bundles, kind: str, runs: int, log=print) -> dict:
    """The whole check on ``bundles`` in the ``kind`` rootfs: the document written to the results JSON."""
    with userland.locked():
        return _check(bundles, kind, runs, log)


def _check(bundles, kind, runs, log):
    timings = {}
    start = time.monotonic()
    root = userland.rootfs(kind, log=log)
    timings["rootfs_s"] = round(time.monotonic() - start, 1)
    start = time.monotonic()
    userland.venv(root, log=log)
    timings["venv_s"] = round(time.monotonic() - start, 1)
    arm_machine = userland.machine(root)
    if arm_machine != "aarch64":
        raise EmulatorMissing("the rootfs's Python reports machine %r, not aarch64" % arm_machine)
    debian = (root / "etc" / "debian_version").read_text().strip()
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgekd-arm64-") as tmp:
        out = Path(tmp)
        for bundle in bundles:
            specs_kinds = artifacts(bundle)
            specs = ["%s:%s" % (fmt, eng) for fmt, eng, _, _, _ in specs_kinds]
            log("arm64: %s (%s)" % (bundle.relative_to(REPO) if bundle.is_relative_to(REPO) else bundle, ", ".join(specs)))
            start = time.monotonic()
            host = scores_on_host(bundle, specs, out)
            arm = arm_side(root, bundle, specs, out, runs)
            manifest = json.loads((bundle / "manifest.json").read_text())
            profile = arm.get("profile", {})
            for fmt, engine, akind, engine_manifest, verification in specs_kinds:
                row = {"bundle": str(bundle.relative_to(REPO)) if bundle.is_relative_to(REPO) else str(bundle), "profile": manifest["profile"].get("name"),
                       "format": fmt, "engine": engine, "engine_manifest": engine_manifest, "kind": akind, "host_verification": verification,
                       "engine_arm": arm["scores"]["describe"]["artifacts"][fmt], "engine_host": host["describe"]["artifacts"][fmt]}
                art = next(x for x in manifest["artifacts"] if x["format"] == fmt)
                row.update(compare(fmt, akind, host, arm["scores"], (art.get("output") or {}).get("scale") if akind == "int8" else None))
                rows.append(row)
            primary = rows[-len(specs_kinds)] if specs_kinds else None
            if primary is not None:
                student = manifest.get("student") or {}
                primary["bundle_info"] = {"student": student.get("spec"), "params": student.get("params"),
                                          "teacher_accuracy": (manifest.get("teacher") or {}).get("accuracy")}
                primary["cli"] = {k: {"exit_code": v["exit_code"], "argv": v["argv"], "stdout": v["stdout"][:12], "stderr_tail": v["stderr_tail"]} for k, v in arm["commands"].items()}
                if profile:
                    primary["cli"]["profile_report"] = {
                        "artifact": profile.get("artifact"), "device": profile.get("device"), "runtime": profile.get("runtime"),
                        "accuracy": profile.get("accuracy"), "agreement_with_host": profile.get("agreement_with_host"),
                        "emulated_latency_not_device_latency": profile.get("latency"),
                    }
            if PI_DEMO.exists() and primary is not None and manifest["profile"].get("engine") == "litert":
                primary["pi_demo"] = pi_demo(root, bundle)
            log("arm64:   done in %.0f s" % (time.monotonic() - start))
    return {
        "issue": 16, "date": time.strftime("%Y-%m-%d"), "commit": _commit(),
        "command": "make arm64-check  # .venv/bin/python benchmarks/arm64_check.py --kind %s" % kind,
        "host": {"machine": platform.machine(), "python": platform.python_version()},
        "arm": {"machine": arm_machine, "rootfs": kind, "debian": debian, "recipe": userland.RECIPE, "requirements": userland.engine_requirements(("litert", "onnxruntime")),
                "emulator": _qemu_version()},
        "seconds": timings,
        "note": NOTE,
        "rows": rows,
        "passed": all(r["passed"] for r in rows) and all(c["exit_code"] == 0 for r in rows for k, c in r.get("cli", {}).items() if k != "profile_report")
        and all(r["pi_demo"]["passed"] for r in rows if "pi_demo" in r),
    }


def _commit() -> str:
    proc = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() or "?"


def _qemu_version() -> str:
    proc = subprocess.run(["qemu-aarch64-static", "--version"], capture_output=True, text=True)
    return (proc.stdout.splitlines() or ["?"])[0]


def table(doc: dict) -> str:
    lines = ["| bundle | artifact | engine | eval samples | top-1 agreement ARM vs host | max abs diff | accuracy host / ARM | `edgekd-runtime` info/profile/run | Pi demo | within bound |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        cli = r.get("cli")
        cli_text = "/".join("ok" if cli[k]["exit_code"] == 0 else "exit %d" % cli[k]["exit_code"] for k in ("info", "profile", "run")) if cli else "as above"
        demo = r.get("pi_demo")
        demo_text = "-" if demo is None else ("%d frames, same top-1" % demo["frames"] if demo["passed"] else "**failed** (exit %d)" % demo["exit_code"])
        acc = "%.2f%% / %.2f%%" % (100 * r["accuracy_host"], 100 * r["accuracy_arm"]) if "accuracy_host" in r else "-"
        engine = r["engine"] + (" (artifact for %s)" % r["engine_manifest"] if r.get("engine_manifest") not in (None, r["engine"]) else "")
        lines.append("| %s | %s | %s | %d | %.2f%% (%d differ) | %s | %s | %s | %s | %s |" % (
            r["bundle"].split("/")[-1], r["format"] + ("" if r.get("host_verification") == "passed" else " (host parity: %s)" % r.get("host_verification")), engine, r["samples"], 100 * r["agreement"], r["disagreements"],
            _diff(r), acc, cli_text, demo_text, "yes" if r["passed"] else "**no**"))
    return "\n".join(lines)


def _diff(r: dict) -> str:
    if r["identical"]:
        return "0 (identical)"
    if "max_diff_output_steps" not in r:
        return "%.3g" % r["max_abs_diff"]
    steps = r["max_diff_output_steps"]
    return "%.3g = %g int8 step%s, on %.1f%% of outputs" % (r["max_abs_diff"], steps, "" if steps == 1 else "s", 100 * r["outputs_differing"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=userland.KINDS, default="debootstrap", help="rootfs recipe (default: both debootstrap stages)")
    ap.add_argument("--bundle", action="append", type=Path, help="check only these bundles (repeatable)")
    ap.add_argument("--no-cifar", action="store_true", help="skip the CIFAR-10 bundle when none exists instead of building a small one")
    ap.add_argument("--runs", type=int, default=20, help="profile runs inside the userland (emulated: slow)")
    ap.add_argument("--json", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    try:
        userland.require_emulator()
        if args.bundle:
            bundles = [b.resolve() for b in args.bundle]
            for b in bundles:
                if not (b / "manifest.json").exists():
                    raise SystemExit("arm64-check: %s is not a bundle folder (no manifest.json)" % b)
        else:
            bundles = demo_bundles()
            cifar = cifar_bundle(build=not args.no_cifar)
            bundles += [cifar] if cifar else []
        doc = check(bundles, args.kind, args.runs)
    except EmulatorMissing as exc:
        print("arm64-check: error: %s" % exc, file=sys.stderr)
        return 3
    except subprocess.CalledProcessError as exc:
        # The command's own output (edgekd's one-line error, a traceback of the scores script) is above.
        print("arm64-check: error: %s exited with %d" % (" ".join(str(a) for a in exc.cmd[:3]), exc.returncode), file=sys.stderr)
        return 1
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2, default=str))
    print(table(doc))
    print("wrote %s; %s" % (args.json, "all within bounds" if doc["passed"] else "SOME ARTIFACTS OR COMMANDS FAILED"))
    return 0 if doc["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
