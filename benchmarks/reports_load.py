"""Runtime and reports benchmark (issue 6), one command:

    .venv/bin/python benchmarks/reports_load.py            # needs the demo bundles: make demo

1. Load: 20 concurrent senders x 100 reports against `edgekd reports serve` (SQLite WAL; PostgreSQL too
   when its binaries are here): rows stored, none lost, none duplicated, reports/s, per-report latency.
2. Faults: the same load with the collector killed (SIGKILL) mid-run and restarted on the same store;
   every report acknowledged before the kill must be there, and every report exactly once in the end.
3. Profiler overhead: the profiler's median per call against a bare loop over the engine itself
   (LiteRT, ONNX Runtime, TFLite Micro), interleaved rounds, on the demo bundles.
4. Light: installed size of edgekd-runtime + ai-edge-litert in a fresh venv, and its import + bundle
   load time; and the runtime run on a real Python 3.8 (with ONNX Runtime, the engine that still ships
   3.8 wheels) when python3.8 is on the PATH.

Raw results go to benchmarks/out/reports_load.json (copied to benchmarks/results/reports_load.json, see --results); a
summary is printed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TOKEN = "bench-token"


# --- collector -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_collector(db: str, port: int):
    proc = subprocess.Popen([str(BIN / "edgekd"), "reports", "serve", "--db", db, "--port", str(port), "--token", TOKEN],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"collector exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/v1/health", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("collector did not start")


def kill(proc, sig=signal.SIGKILL):
    if proc.poll() is None:
        os.kill(proc.pid, sig)
    proc.wait(timeout=30)


def load_phase(body, db: str, work: Path, senders: int, per_sender: int, kill_after: int | None = None, outage_s: float = 1.0):
    """Run the senders; optionally kill -9 the collector once ``kill_after`` reports were acknowledged."""
    from edgekd.reports.databases import open_store
    from edgekd_runtime.report import deliver, flush_spool, make_report

    port = free_port()
    proc, url = start_collector(db, port)
    made, acked, duplicates, seconds = set(), set(), set(), []
    lock = threading.Lock()

    def sender(i):
        spool = str(work / f"spool{i}")
        for _ in range(per_sender):
            report = make_report(dict(body), "profile", device=f"bench-{i:02d}")
            with lock:
                made.add(report["report_id"])
            start = time.perf_counter()
            result = deliver(report, url, TOKEN, spool, timeout=10)
            elapsed = time.perf_counter() - start
            with lock:
                acked.update(result["sent"])
                duplicates.update(result["duplicates"])
                if result["delivered"] and len(result["sent"]) == 1:
                    seconds.append(elapsed)
            if not result["delivered"]:
                # A device whose host is down tries again on its next run, not in a tight loop: so the senders
                # are still running when the collector comes back, and resend their spools to it.
                time.sleep(0.25)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(senders)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    fault = {}
    if kill_after:
        while len(acked) < kill_after:
            time.sleep(0.005)
        kill(proc)
        with lock:
            fault["acked_before_kill"] = sorted(acked)
        fault["killed_at_s"] = time.perf_counter() - t0
        time.sleep(outage_s)
        t_restart = time.perf_counter()
        proc, _ = start_collector(db, port)
        fault["restart_s"] = time.perf_counter() - t_restart
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    leftover = 0
    for i in range(senders):
        result = flush_spool(url, TOKEN, str(work / f"spool{i}"))
        if result["error"]:
            raise SystemExit(f"final flush failed: {result['error']}")
        leftover += len(result["sent"])
        acked.update(result["sent"])
        duplicates.update(result["duplicates"])
    kill(proc, signal.SIGTERM)
    store = open_store(db)
    ids = [r["report_id"] for r in store.query()]
    store.close()
    out = {
        "senders": senders, "reports_per_sender": per_sender, "sent": len(made), "rows": len(ids), "distinct_rows": len(set(ids)),
        "lost": len(made - set(ids)), "duplicated_rows": len(ids) - len(set(ids)), "unknown_rows": len(set(ids) - made),
        "acknowledged": len(acked), "acks_of_already_stored_resends": len(duplicates), "sent_by_final_flush": leftover,
        "wall_s": wall, "reports_per_s": len(made) / wall,
        "deliver_ms": {"p50": 1000 * statistics.median(seconds), "p99": 1000 * sorted(seconds)[int(0.99 * (len(seconds) - 1))]} if seconds else None,
    }
    if kill_after:
        before = set(fault.pop("acked_before_kill"))
        out.update(fault)
        out["acked_before_kill"] = len(before)
        out["acked_before_kill_lost"] = len(before - set(ids))
    return out


def postgres_url(work: Path):
    """A throwaway PostgreSQL on a Unix socket (as the postgres user when root), or None if not installed."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        return None, None
    folder = tempfile.mkdtemp(prefix="edgekd-pg-")
    prefix = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(folder, "data"), free_port()
    subprocess.run(prefix + [initdb, "-D", data, "-A", "trust", "-U", "postgres"], check=True, capture_output=True)
    subprocess.run(prefix + [pg_ctl, "-D", data, "-l", os.path.join(folder, "log"), "-w", "-o", f"-k {folder} -c listen_addresses='' -p {port}", "start"], check=True, capture_output=True)

    def stop():
        subprocess.run(prefix + [pg_ctl, "-D", data, "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)

    return f"postgresql://postgres@/postgres?host={folder}&port={port}", stop


# --- profiler overhead -------------------------------------------------------------------------------

def bare_call(engine: str, model_path: str, q, settings):
    """The engine driven directly, without edgekd_runtime: set input, invoke, read output."""
    if engine == "litert":
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=model_path)
        it.allocate_tensors()
        i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

        def call():
            it.set_tensor(i, q)
            it.invoke()
            return it.get_tensor(o)

        return call
    if engine == "onnxruntime":
        import onnxruntime as ort

        sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
        name, out = sess.get_inputs()[0].name, [sess.get_outputs()[0].name]
        return lambda: sess.run(out, {name: q})
    if engine == "tflm":
        from tflite_micro.python.tflite_micro import runtime

        it = runtime.Interpreter.from_bytes(Path(model_path).read_bytes(), arena_size=int(settings.get("arena_size") or 256 * 1024))

        def call():
            it.set_input(q, 0)
            it.invoke()
            return it.get_output(0)

        return call
    raise ValueError(engine)


def bare_median(call, runs: int) -> float:
    """Median per-call seconds of the engine driven directly, each call between two clock reads.

    Per-call medians on both sides: on a shared machine a block mean would fold every preemption of the
    process into the figure, which a median is there to leave out.
    """
    clock = time.perf_counter
    per_call = [0.0] * runs
    for i in range(runs):
        start = clock()
        call()
        per_call[i] = clock() - start
    return statistics.median(per_call)


def bare_loop(call, runs: int) -> float:
    """Seconds per call of an untimed loop (total / runs): what the clock reads themselves cost shows here."""
    start = time.perf_counter()
    for _ in range(runs):
        call()
    return (time.perf_counter() - start) / runs


def overhead_phase(bundle_dir: Path, rounds: int, target_s: float):
    from edgekd_runtime import Bundle, Model
    from edgekd_runtime import time_invocations

    out = []
    for name in ("android-midrange", "jetson-nano", "cortex-m7"):
        path = bundle_dir / name
        if not path.exists():
            continue
        with Bundle.open(str(path)) as bundle:
            model = Model.from_bundle(bundle)
            x, _, _ = bundle.load_eval()
            q = model.prepare(x[:1])
            bare = bare_call(model.engine, bundle.path(model.artifact.path), q, model.artifact.settings)
            runs = max(200, int(target_s / bare_median(bare, 50)))
            bare_median(bare, runs)  # warm both before measuring
            time_invocations(model, x[:1], runs=runs, warmup=20)
            ratios, prof_ms, bare_ms, loop_prof, loop_bare = [], [], [], [], []
            for r in range(rounds):
                # Alternate which goes first, so a slow spell on the shared machine hits both alike.
                for which in ((0, 1) if r % 2 == 0 else (1, 0)):
                    if which == 0:
                        start = time.perf_counter()
                        p = statistics.median(time_invocations(model, x[:1], runs=runs, warmup=0))
                        loop_prof.append((time.perf_counter() - start) / runs)
                    else:
                        b = bare_median(bare, runs)
                        loop_bare.append(bare_loop(bare, runs))
                prof_ms.append(1000 * p)
                bare_ms.append(1000 * b)
                ratios.append(p / b)
        out.append({
            "bundle": name, "engine": model.engine, "format": model.artifact.format, "runs_per_round": runs, "rounds": rounds,
            "profiler_p50_ms": statistics.median(prof_ms), "bare_p50_ms": statistics.median(bare_ms),
            "overhead_pct": 100 * (statistics.median(ratios) - 1), "overhead_pct_per_round": [round(100 * (v - 1), 2) for v in ratios],
            # Fastest round of each whole loop (profiler with its clock reads vs untimed): the least disturbed.
            "loop_ms_per_call": {"profiler": 1000 * min(loop_prof), "bare_untimed": 1000 * min(loop_bare)},
            "loop_overhead_pct": 100 * (min(loop_prof) / min(loop_bare) - 1),
        })
    return out


# --- size and import time in a fresh venv -------------------------------------------------------------

def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


IMPORT_PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import edgekd_runtime
from edgekd_runtime import Bundle, Model
t1 = time.perf_counter()
bundle = Bundle.open(sys.argv[1])
t2 = time.perf_counter()
model = Model.from_bundle(bundle)
t3 = time.perf_counter()
x, y, _ = bundle.load_eval()
model.predict(x[:1])
t4 = time.perf_counter()
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras", "tf_keras", "edgekd"})
print(json.dumps({"import_s": t1 - t0, "open_verify_s": t2 - t1, "model_load_s": t3 - t2, "first_inference_s": t4 - t3, "total_s": t4 - t0, "heavy_modules": heavy, "engine": model.describe()}))
"""


def find_python(version: str):
    """An interpreter of ``version`` that really starts (a pyenv shim may be on the PATH for a version that
    is installed but not selected), or None."""
    import glob

    candidates = [shutil.which(f"python{version}")] + sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}")))
    for c in candidates:
        if c and subprocess.run([c, "--version"], capture_output=True).returncode == 0:
            return c
    return None


def venv_phase(work: Path, bundle_dir: Path, repeats: int = 5):
    python = find_python("3.11") or sys.executable
    venv = work / "venv-litert"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    empty = du(venv)
    t0 = time.perf_counter()
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(ROOT / "runtime") + "[litert]"], check=True, capture_output=True)
    install_s = time.perf_counter() - t0
    site = next((venv / "lib").glob("python3*/site-packages"))
    per_package = {}
    for entry in site.iterdir():
        if entry.is_dir() and not entry.name.endswith((".dist-info", "__pycache__")) and entry.name not in ("pip", "setuptools", "_distutils_hack", "pkg_resources"):
            per_package[entry.name] = du(entry)
    versions = subprocess.run([str(venv / "bin" / "pip"), "list", "--format=json"], capture_output=True, text=True, check=True).stdout
    bundle = bundle_dir / "android-midrange"
    probes = []
    for _ in range(repeats):
        res = subprocess.run([str(venv / "bin" / "python"), "-c", IMPORT_PROBE, str(bundle)], capture_output=True, text=True, check=True, cwd=str(work))
        probes.append(json.loads(res.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(p[k] for p in probes) for k in ("import_s", "open_verify_s", "model_load_s", "first_inference_s", "total_s")}
    return {
        "python": subprocess.run([str(venv / "bin" / "python"), "--version"], capture_output=True, text=True).stdout.strip(),
        "venv_bytes": du(venv), "empty_venv_bytes": empty, "added_bytes": du(venv) - empty, "install_s": install_s,
        "packages_bytes": dict(sorted(per_package.items(), key=lambda kv: -kv[1])),
        "versions": {p["name"]: p["version"] for p in json.loads(versions)},
        "import_and_load_median": med, "heavy_modules": probes[0]["heavy_modules"], "engine": probes[0]["engine"], "repeats": repeats,
    }


def py38_phase(work: Path, bundle_dir: Path):
    python = find_python("3.8")
    bundle = bundle_dir / "jetson-nano"
    if not python or not bundle.exists():
        return None
    venv = work / "venv-py38"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(ROOT / "runtime") + "[onnx]"], check=True, capture_output=True)
    report = work / "py38.json"
    proc = subprocess.run([str(venv / "bin" / "edgekd-runtime"), "profile", str(bundle), "--runs", "100", "--json", str(report)], capture_output=True, text=True, cwd=str(work))
    versions = subprocess.run([str(venv / "bin" / "pip"), "list", "--format=json"], capture_output=True, text=True).stdout
    out = {"returncode": proc.returncode, "stderr": proc.stderr[-500:],
           "python": subprocess.run([str(venv / "bin" / "python"), "--version"], capture_output=True, text=True).stdout.strip(),
           "versions": {p["name"]: p["version"] for p in json.loads(versions) if p["name"] in ("numpy", "onnxruntime", "edgekd-runtime")}}
    if proc.returncode == 0:
        r = json.loads(report.read_text())
        out.update({"p50_ms": r["latency"]["p50_ms"], "accuracy": r["accuracy"], "agreement_with_host": r["agreement_with_host"], "provider": r["runtime"]["provider"]})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundles", default=str(ROOT / "out" / "demo"), help="folder with the demo bundles (make demo)")
    ap.add_argument("--senders", type=int, default=20)
    ap.add_argument("--per-sender", type=int, default=100)
    ap.add_argument("--kill-after", type=int, default=600, help="acknowledged reports before the collector is killed")
    ap.add_argument("--rounds", type=int, default=9, help="interleaved rounds of profiler vs bare loop")
    ap.add_argument("--skip-venv", action="store_true", help="skip the fresh-venv size and Python 3.8 measurements")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "reports_load.json"))
    ap.add_argument("--results", default="reports_load.json", help="copy of --out under benchmarks/results/ (default %(default)s)")
    args = ap.parse_args()
    bundle_dir = Path(args.bundles)
    if not (bundle_dir / "android-midrange").exists():
        raise SystemExit(f"no demo bundles under {bundle_dir}: run `make demo` first")

    from edgekd_runtime import profile

    body = profile(str(bundle_dir / "android-midrange"), runs=50)
    results = {"machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()}, "report_bytes": len(json.dumps(body))}
    with tempfile.TemporaryDirectory(prefix="edgekd-bench-") as tmp:
        work = Path(tmp)
        print("load: %d senders x %d reports, SQLite WAL ..." % (args.senders, args.per_sender), flush=True)
        (work / "a").mkdir()
        results["load_sqlite"] = load_phase(body, str(work / "load.sqlite"), work / "a", args.senders, args.per_sender)
        print(json.dumps(results["load_sqlite"], indent=1), flush=True)
        print("faults: the same, collector killed after %d acknowledged ..." % args.kill_after, flush=True)
        (work / "b").mkdir()
        results["kill_restart_sqlite"] = load_phase(body, str(work / "kill.sqlite"), work / "b", args.senders, args.per_sender, kill_after=args.kill_after)
        print(json.dumps(results["kill_restart_sqlite"], indent=1), flush=True)
        url, stop = postgres_url(work)
        if url:
            try:
                print("load on PostgreSQL, then the same with the collector killed ...", flush=True)
                (work / "c").mkdir()
                results["load_postgres"] = load_phase(body, url, work / "c", args.senders, args.per_sender)
                print(json.dumps(results["load_postgres"], indent=1), flush=True)
                (work / "d").mkdir()
                import psycopg

                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("CREATE DATABASE kill")  # a fresh, empty store for the fault run
                results["kill_restart_postgres"] = load_phase(body, url.replace("/postgres?", "/kill?"), work / "d", args.senders, args.per_sender, kill_after=args.kill_after)
                print(json.dumps(results["kill_restart_postgres"], indent=1), flush=True)
            finally:
                stop()
        print("profiler overhead ...", flush=True)
        results["profiler_overhead"] = overhead_phase(bundle_dir, args.rounds, target_s=0.25)
        print(json.dumps(results["profiler_overhead"], indent=1), flush=True)
        if not args.skip_venv:
            print("fresh venv with edgekd-runtime[litert] ...", flush=True)
            results["light"] = venv_phase(work, bundle_dir)
            print(json.dumps(results["light"], indent=1), flush=True)
            print("Python 3.8 ...", flush=True)
            results["python38"] = py38_phase(work, bundle_dir)
            print(json.dumps(results["python38"], indent=1), flush=True)
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    shutil.copyfile(args.out, ROOT / "benchmarks" / "results" / args.results)
    ok = all(results[k]["lost"] == 0 and results[k]["duplicated_rows"] == 0 and results[k]["rows"] == args.senders * args.per_sender
             for k in ("load_sqlite", "kill_restart_sqlite", "load_postgres", "kill_restart_postgres") if k in results)
    ok = ok and all(results[k]["acked_before_kill_lost"] == 0 for k in ("kill_restart_sqlite", "kill_restart_postgres") if k in results)
    print(f"results: {args.out}; {'PASS' if ok else 'FAIL'}: every report stored exactly once")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
