"""The C engine (edgekd.ccompile) as firmware on the emulated Cortex-M4F and Cortex-M7: bit-exactness against
tflite-micro, RAM against tflite-micro's arena, flash against the int8 weights + 32 KB, instructions per inference
and per MAC. Instructions, not cycles: QEMU -icount counts executed instructions, and nothing models pipelines,
caches or flash wait states.

    .venv/bin/python benchmarks/mcu_engine.py [--data-dir DIR] [--samples N]

Models: the digits demo's MCU student (out/demo/cortex-m7, made by `make demo` when missing), a CIFAR-10 int8
student and a DS-CNN on 49x10x1 MFCCs of the Free Spoken Digit Dataset, both sized by edgekd for the cortex-m4f
profile and trained for a few minutes here (their accuracy is not the point of this benchmark; the bundles are
cached under benchmarks/out/mcu_engine). Raw results: benchmarks/results/mcu_engine.json; the table is printed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import add_data_dir_argument, data_dir  # noqa: E402

CORES = ("cortex-m4f", "cortex-m7")
NOT_CYCLES = "instructions, not cycles"


def mfcc_49x10(audio: np.ndarray, lengths: np.ndarray, rate: int = 8000) -> np.ndarray:
    """49 frames x 10 MFCCs over the first second (40 ms windows, 20 ms hop, 40 mel bands), as in keyword spotting."""
    n, win, hop, nfft, bands = rate, int(0.04 * rate), int(0.02 * rate), 512, 40
    clip = np.zeros((len(audio), n), np.float32)
    for i, (a, length) in enumerate(zip(audio, lengths)):
        a = a[: min(length, n)].astype(np.float32) / 32768.0
        start = (n - len(a)) // 2
        clip[i, start:start + len(a)] = a
    frames = np.stack([clip[:, k * hop: k * hop + win] for k in range(49)], axis=1) * np.hamming(win).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, nfft, axis=-1)) ** 2
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    edges = 700.0 * (10 ** (np.linspace(mel(20.0), mel(rate / 2), bands + 2) / 2595.0) - 1.0)
    bins = np.floor((nfft + 1) * edges / rate).astype(int)
    fb = np.zeros((bands, nfft // 2 + 1), np.float32)
    for b in range(bands):
        lo, mid, hi = bins[b], bins[b + 1], max(bins[b + 2], bins[b + 1] + 1)
        fb[b, lo:mid] = (np.arange(lo, mid) - lo) / max(mid - lo, 1)
        fb[b, mid:hi] = (hi - np.arange(mid, hi)) / max(hi - mid, 1)
    logmel = np.log(power @ fb.T + 1e-6)
    k = np.arange(bands)
    dct = np.cos(np.pi / bands * (k[None, :] + 0.5) * np.arange(10)[:, None]).astype(np.float32)
    return (logmel @ dct.T)[..., None].astype(np.float32)  # (N, 49, 10, 1)


def _train_and_convert(name, family, train, test, out: Path, epochs: int, train_seconds: float):
    import tf_keras as keras

    from edgekd.convert import parity
    from edgekd.convert.batch import convert_student
    from edgekd.data import preprocessing_for
    from edgekd.profiles import load_profile
    from edgekd.sizing import size_student
    from edgekd.students import build_student

    fit = size_student(load_profile("cortex-m4f"), train.x.shape[1:], 10, family=family, verify=False)
    model = build_student(fit.spec, train.x.shape[1:], 10)
    # The families' batch norms average with momentum 0.99, which a few hundred steps leave far from the data's
    # statistics (the DS-CNN then scored chance on test clips while fitting the training ones); 0.9 settles in time.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    model.compile(keras.optimizers.Adam(2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    deadline = time.time() + train_seconds

    class Deadline(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if time.time() > deadline:
                self.model.stop_training = True

    start = time.time()
    model.fit(preprocessing_for(train).apply(train.x), train.y, epochs=epochs, batch_size=64, verbose=0, callbacks=[Deadline()])
    trained = time.time() - start
    # A student trained for minutes has near-ties that flip under int8; the C engine is checked against tflite-micro
    # on the same int8 model, which this threshold does not touch.
    parity.THRESHOLDS["int8"] = 0.9
    convert_student(model, "tflm-int8", out, calibration=train, eval_data=test, profile="cortex-m4f", force=True)
    (out.parent / "student.json").write_text(json.dumps({"spec": str(fit.spec), "train_seconds": trained, "epochs_asked": epochs, "int8_parity_threshold": 0.9, "batchnorm_momentum": 0.9}))
    print(f"{name}: {fit.spec} trained {trained:.0f} s, bundle {out}", flush=True)


def cifar_bundle(args, out: Path) -> Path:
    from edgekd.data import Dataset

    bundle = out / "cifar10" / "bundle"
    if not (bundle / "manifest.json").is_file():
        folder = ROOT / "benchmarks" / "out" / "cifar10"
        if not (folder / "cifar10_train.npz").is_file():
            src = data_dir(args.data_dir, ("cifar10_jpeg.npz", "prepare_cifar10.py"))
            subprocess.run([sys.executable, str(src / "prepare_cifar10.py"), str(folder), "--source", str(src / "cifar10_jpeg.npz")], check=True)
        tr, te = np.load(folder / "cifar10_train.npz"), np.load(folder / "cifar10_test.npz")
        rng = np.random.default_rng(0)
        idx = rng.permutation(len(tr["y"]))[: args.train_samples]
        train = Dataset(tr["x"][idx], tr["y"][idx].astype(np.int64), [str(i) for i in range(10)], "cifar10 train")
        test = Dataset(te["x"][: args.eval_samples], te["y"][: args.eval_samples].astype(np.int64), [str(i) for i in range(10)], "cifar10 test")
        _train_and_convert("cifar10", "mobilenetv3", train, test, bundle, args.epochs, args.train_seconds)
    return bundle


def dscnn_bundle(args, out: Path) -> Path:
    from edgekd.data import Dataset

    bundle = out / "dscnn" / "bundle"
    if not (bundle / "manifest.json").is_file():
        src = data_dir(args.data_dir, ("fsdd_train.npz", "fsdd_test.npz"))
        tr, te = np.load(src / "fsdd_train.npz"), np.load(src / "fsdd_test.npz")
        xt, xe = mfcc_49x10(tr["x"], tr["lengths"]), mfcc_49x10(te["x"], te["lengths"])
        # Per coefficient, from the training clips: the energy term spans hundreds while the others span a few, and
        # one min-max scale for all (the bundle's preprocessing) would flatten the others to nothing.
        mean, std = xt.mean(axis=(0, 1), keepdims=True), xt.std(axis=(0, 1), keepdims=True) + 1e-6
        xt, xe = (xt - mean) / std, (xe - mean) / std
        train = Dataset(xt, tr["y"].astype(np.int64), [str(i) for i in range(10)], "fsdd train mfcc")
        test = Dataset(xe, te["y"].astype(np.int64), [str(i) for i in range(10)], "fsdd test mfcc")
        _train_and_convert("dscnn", "dscnn", train, test, bundle, args.epochs * 10, args.train_seconds)
    return bundle


def digits_bundle(args) -> Path:
    bundle = Path(args.digits_bundle)
    if not (bundle / "manifest.json").is_file():
        subprocess.run([str(ROOT / ".venv" / "bin" / "edgekd"), "demo", "--out", str(bundle.parent)], check=True)
    return bundle


def measure(name: str, bundle: Path, args) -> dict:
    from edgekd.ccompile import compile_tflite
    from edgekd.firmware.run import firmware
    from edgekd_runtime import Bundle

    with Bundle.open(str(bundle)) as b:
        art = next(a for a in b.manifest.artifacts if a.format in ("tflm-int8", "tflite-int8"))
        blob = Path(b.path(art.path)).read_bytes()
        student = dict(b.manifest.student)
        eval_n = len(b.load_eval()[0])
    with tempfile.TemporaryDirectory() as tmp:
        lib = compile_tflite(blob, Path(tmp))
    macs_by_kernel = kernel_macs(blob)
    trained = bundle.parent / "student.json"
    if trained.is_file():  # the students trained here: their spec and training, which the bundle does not record
        student = {**json.loads(trained.read_text()), **student}
    row = {"model": name, "bundle": str(bundle.relative_to(ROOT) if bundle.is_relative_to(ROOT) else bundle), "spec": student.get("spec"),
           "training": {k: student[k] for k in ("train_seconds", "epochs_asked", "int8_parity_threshold", "batchnorm_momentum") if k in student},
           "macs": student.get("macs"), "params": student.get("params"), "eval_samples_in_bundle": eval_n,
           "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "weight_bytes": lib.weight_bytes, "c_arena_bytes": lib.arena_bytes, "ops": list(lib.ops), "cores": {}}
    for core in CORES:
        start = time.time()
        rep = firmware(bundle, core=core, samples=args.samples, timeout_s=args.timeout, by_kernel=True).report
        ins, mem = rep["instructions"], rep["memory"]
        kernels = {k: dict(v, macs=macs_by_kernel.get(k), instructions_per_mac=v["instructions"] / macs_by_kernel[k] if macs_by_kernel.get(k) else None)
                   for k, v in (ins["by_kernel"] or {}).items()}
        row["tflm_arena_bytes"] = mem["tflm_arena_bytes"]
        row["cores"][core] = {
            "bit_exact": f"{rep['bit_exact']['equal']}/{rep['bit_exact']['samples']}",
            "instructions_per_inference": ins["per_inference_mean"], "instructions_per_mac": ins["per_mac"], "by_kernel": kernels,
            "latency_ms_at_profile_clock": rep["latency"]["p50_ms"], "profile_latency_estimate_ms": rep["host_expected"]["latency_ms_estimate"],
            "flash_bytes": mem["flash_bytes"], "flash_goal_bytes": lib.weight_bytes + 32 * 1024,
            "ram_bytes": mem["ram_bytes"], "arena_bytes": mem["static_ram_bytes"], "stack_bytes": mem["stack_high_water_bytes"],
            "io_bytes": mem["input_output_bytes"], "ram_over_tflm_arena": mem["ram_vs_tflm_arena"],
            "accuracy": rep.get("accuracy"), "agreement_with_host": rep.get("agreement_with_host"),
            "emulator": rep["device"]["emulator"], "compiler": rep["runtime"]["compiler"], "wall_seconds": time.time() - start,
            "note": NOT_CYCLES,
        }
        print(f"{name} {core}: {json.dumps(row['cores'][core])}", flush=True)
    return row


def kernel_macs(blob: bytes) -> dict:
    """MACs per kernel of the C engine, from the TFLite graph: CONV_2D (1x1 included), DEPTHWISE_CONV_2D, FULLY_CONNECTED."""
    from edgekd.ccompile.graph import read_graph

    graph = read_graph(blob)
    macs = {"edgekd_conv2d_s8": 0, "edgekd_dwconv2d_s8": 0, "edgekd_fc_s8": 0}
    for op in graph.ops:
        out, weights = graph.t(op.outputs[0]).shape, graph.t(op.inputs[1]).shape if len(op.inputs) > 1 else None
        if op.name == "CONV_2D":  # out (1, H, W, Cout), filter (Cout, kh, kw, Cin)
            macs["edgekd_conv2d_s8"] += int(np.prod(out)) * int(np.prod(weights[1:]))
        elif op.name == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, C): kh*kw per output element
            macs["edgekd_dwconv2d_s8"] += int(np.prod(out)) * int(weights[1] * weights[2])
        elif op.name == "FULLY_CONNECTED":  # filter (out, in)
            macs["edgekd_fc_s8"] += int(np.prod(out)) * int(weights[-1])
    return macs


def table(rows) -> str:
    lines = ["| model | MACs | core | bit-exact | RAM (arena + stack + caller's buffers) | tflite-micro arena | RAM / TFLM | flash | int8 weights + 32 KB | instructions / inference (not cycles) | instructions / MAC (not cycles) | at profile clock (est.) | profile estimate |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for core, c in r["cores"].items():
            lines.append(
                f"| {r['model']} | {r['macs'] / 1e6:.2f} M | {core} | {c['bit_exact']} | {c['ram_bytes']:,} B ({c['arena_bytes']:,} + {c['stack_bytes']:,} + {c['io_bytes']:,}) | "
                f"{r['tflm_arena_bytes']:,} B | {c['ram_over_tflm_arena']:.2f}x | {c['flash_bytes']:,} B | {c['flash_goal_bytes']:,} B | "
                f"{c['instructions_per_inference']:,.0f} | {c['instructions_per_mac']:.2f} | {c['latency_ms_at_profile_clock']:.1f} ms | {c['profile_latency_estimate_ms']:.1f} ms |")
    lines += ["", "| model | core | CONV_2D instructions / MAC | DEPTHWISE_CONV_2D | FULLY_CONNECTED | share of instructions in CONV_2D + DEPTHWISE (not cycles) |", "|---|---|---|---|---|---|"]
    for r in rows:
        for core, c in r["cores"].items():
            k = c.get("by_kernel") or {}
            per = lambda name: f"{k[name]['instructions_per_mac']:.2f}" if k.get(name, {}).get("instructions_per_mac") else "-"  # noqa: E731
            conv = sum(k.get(n, {}).get("instructions", 0) for n in ("edgekd_conv2d_s8", "edgekd_dwconv2d_s8"))
            lines.append(f"| {r['model']} | {core} | {per('edgekd_conv2d_s8')} | {per('edgekd_dwconv2d_s8')} | {per('edgekd_fc_s8')} | {100 * conv / c['instructions_per_inference']:.0f}% |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_dir_argument(parser)
    parser.add_argument("--samples", type=int, default=0, help="eval samples per model and core (default 0: every one the bundle holds)")
    parser.add_argument("--models", default="digits,cifar10,dscnn")
    parser.add_argument("--digits-bundle", default=str(ROOT / "out" / "demo" / "cortex-m7"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "mcu_engine")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "mcu_engine.json")
    parser.add_argument("--epochs", type=int, default=4, help="CIFAR-10 epochs (the DS-CNN trains 10x as many on its 2,700 clips)")
    parser.add_argument("--train-seconds", type=float, default=360.0, help="cap on each model's training")
    parser.add_argument("--train-samples", type=int, default=20000)
    parser.add_argument("--eval-samples", type=int, default=300, help="CIFAR-10 test images in its bundle")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one emulator run may take")
    args = parser.parse_args()
    args.samples = args.samples or None
    makers = {"digits": lambda: digits_bundle(args), "cifar10": lambda: cifar_bundle(args, args.out), "dscnn": lambda: dscnn_bundle(args, args.out)}
    wanted = [m for m in args.models.split(",") if m]
    unknown = [m for m in wanted if m not in makers]
    if unknown:
        print(f"error: unknown model {unknown[0]!r} (models: {', '.join(makers)})", file=sys.stderr)
        return 2
    start = time.time()
    rows = [measure(m, makers[m](), args) for m in wanted]
    doc = {"command": " ".join(["benchmarks/mcu_engine.py", *sys.argv[1:]]), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)", "seconds": time.time() - start, "note": NOT_CYCLES + "; latency = instructions / the profile's clock", "models": rows}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    if args.results.is_file():  # a run of some models keeps the others' rows (each row says when it was measured)
        kept = [r for r in json.loads(args.results.read_text()).get("models", []) if r["model"] not in wanted]
        doc["models"] = sorted(kept + rows, key=lambda r: list(makers).index(r["model"]))
    args.results.write_text(json.dumps(doc, indent=2))
    print(table(doc["models"]))
    print(f"results: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
