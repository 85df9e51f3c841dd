"""The phone app in headless Chromium (issue 15), one command:

    .venv/bin/python benchmarks/phone_app.py out/demo/android-midrange benchmarks/out/mnist_build/builds/android-midrange

For each bundle: `edgekd app` writes the app, it is served on 127.0.0.1 and opened in Debian's chromium (Playwright,
phone viewport, a fresh profile each time, wasm backend: no GPU here), and measured: the app's size, the first
load (navigation to a loaded model, cold caches), the latency of the model call on one eval sample (--runs timed
after 10 untimed), and the top-1 agreement and max abs difference with the host's outputs over the app's eval slice.
Beside it, the same artifact in LiteRT on Python on this machine (edgekd_runtime.profile, one thread and default).
Raw results: benchmarks/results/phone_app.json (--results).

    --cifar-student 120   # also a CIFAR-10 student: mobilenetv3:width=0.5 trained from labels for about 120 s
                          # (no CIFAR-10 teacher exists in these sessions) and converted by edgekd's converter to
                          # tflite-fp16 and tflite-fp32 for the android-midrange profile, then measured like the others
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgekd.app import write_app  # noqa: E402
from edgekd.app.serve import make_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHONE = {"viewport": {"width": 412, "height": 915}, "device_scale_factor": 2.625, "is_mobile": True, "has_touch": True,
         "user_agent": "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36"}
TIMED = """async (n) => {
  const a = await window.edgekdApp;
  const buffer = await (await fetch('eval.bin')).arrayBuffer();
  const size = a.config.model.input.shape.slice(1).reduce((x, y) => x * y, 1);
  const raw = a.config.eval.raw_dtype === 'uint8' ? new Uint8Array(buffer, 0, size) : new Float32Array(buffer, 0, size);
  for (let i = 0; i < 10; i++) await a.engine.classify(raw);
  const start = a.engine.latencies.length;
  for (let i = 0; i < n; i++) await a.engine.classify(raw);
  return a.engine.latencies.slice(start);
}"""


def measure(bundle: str, runs: int, work: Path) -> dict:
    from playwright.sync_api import sync_playwright

    from edgekd_runtime import profile

    out = work / f"app-{Path(bundle).parent.name}-{Path(bundle).name}"
    app = write_app(bundle, out, force=True)
    server = make_server(out, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with sync_playwright() as p, tempfile.TemporaryDirectory() as profile_dir:
            context = p.chromium.launch_persistent_context(profile_dir, executable_path=CHROMIUM, headless=True, args=ARGS, **PHONE)
            page = context.new_page()
            page.goto(url)
            ready = page.evaluate("window.edgekdApp.then(a => ({ready_ms: a.ready_ms, load_s: a.engine.loadSeconds, backend: a.engine.describe()}))")
            evaluation = page.evaluate("window.edgekdApp.then(a => a.runEval()).then(e => ({...e, top1: undefined}))")
            browser_ms = np.array(page.evaluate(TIMED, runs))
            context.close()
    finally:
        server.shutdown()
        server.server_close()
    python = {}
    for threads in (1, None):
        options = {"threads": threads} if threads else {}
        report = profile(bundle, runs=runs, warmup=10, artifact=app.artifact.format, **options)
        python["threads_1" if threads else "threads_default"] = {"p50_ms": report["latency"]["p50_ms"], "p90_ms": report["latency"]["p90_ms"],
                                                                 "mean_ms": report["latency"]["mean_ms"],
                                                                 "runtime": report["runtime"], "agreement_with_host": report["agreement_with_host"]}
    return {
        "bundle": bundle, "artifact": app.artifact.format, "model_bytes": app.artifact.bytes, "app_bytes": app.bytes,
        "first_load_ms": ready["ready_ms"], "model_load_s": ready["load_s"], "backend": ready["backend"],
        # Chrome rounds performance.now() to 0.1 ms without cross-origin isolation: the mean over many runs is finer.
        "browser": {"p50_ms": float(np.percentile(browser_ms, 50)), "p90_ms": float(np.percentile(browser_ms, 90)),
                    "mean_ms": float(browser_ms.mean()), "runs": int(browser_ms.size)},
        "eval": evaluation, "python_litert": python,
    }


def cifar_student_bundle(work: Path, seconds: float) -> str:
    """A 32x32x3 phone bundle: the browser's camera-shaped (RGB) case. Trained from labels only, briefly: the figure
    is about the browser against Python on a model of that size, not about its accuracy."""
    import tf_keras as keras

    from edgekd.convert.batch import convert_student
    from edgekd.students import StudentSpec, build_student
    from edgekd_runtime import Preprocessing

    data = ROOT / "benchmarks" / "out" / "cifar10"
    train, test = np.load(data / "cifar10_train.npz"), np.load(data / "cifar10_test.npz")
    x, y = train["x"], train["y"]
    pre = Preprocessing(scale=1.0 / 255.0)
    model = build_student(StudentSpec.parse("mobilenetv3:width=0.5"), (32, 32, 3), 10)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    deadline = time.time() + seconds
    rng = np.random.default_rng(0)
    while time.time() < deadline:
        idx = rng.permutation(len(x))[:5000]
        model.fit(pre.apply(x[idx]), y[idx], batch_size=64, epochs=1, verbose=0)
    np.savez(work / "cifar_eval.npz", x=test["x"][:1000], y=test["y"][:1000])
    np.savez(work / "cifar_calib.npz", x=x[:1000], y=y[:1000])
    out = work / "cifar10-phone"
    convert_student(model, ["tflite-fp16", "tflite-fp32"], out, calibration=str(work / "cifar_calib.npz"), eval_data=str(work / "cifar_eval.npz"),
                    preprocessing=pre, labels=[str(n) for n in test["class_names"]], profile="android-midrange")
    return str(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="*")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "phone_app.json"))
    parser.add_argument("--cifar-student", type=float, default=0, help="seconds to train a CIFAR-10 student (0: none)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        bundles = list(args.bundles)
        if args.cifar_student:
            bundles.append(cifar_student_bundle(Path(work), args.cifar_student))
        for bundle in bundles:
            row = measure(bundle, args.runs, Path(work))
            rows.append(row)
            print(f"{bundle}: {row['artifact']} {row['model_bytes']} B, first load {row['first_load_ms']:.0f} ms, browser p50 {row['browser']['p50_ms']:.3f} ms, "
                  f"mean {row['browser']['mean_ms']:.3f} ms, Python LiteRT p50 {row['python_litert']['threads_1']['p50_ms']:.3f} ms (1 thread), agreement {row['eval']['agreement_with_host']:.4f}, "
                  f"max abs diff {row['eval']['max_abs_diff']:.3g}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    doc = {"command": " ".join(["benchmarks/phone_app.py"] + sys.argv[1:]), "commit": commit, "chromium": chromium,
           "machine": platform.machine(), "cpus": __import__("os").cpu_count(), "rows": rows}
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(doc, indent=2))
    print(f"results: {args.results}")


if __name__ == "__main__":
    main()
