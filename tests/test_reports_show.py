"""`edgekd reports show`: host-expected vs device-measured, gaps flagged, HTML with plots; the same store
on PostgreSQL when a server can be started here."""
import copy
import datetime
import os
import shutil
import subprocess
import time

import pytest

from conftest import run_cli


def _report(device, accuracy, p50, kind="profile", psi=None, when=0):
    from edgekd_runtime.report import make_report

    body = {
        "bundle": "tiny", "format": "tflite-int8", "manifest_sha256": "a" * 64,
        "runtime": {"engine": "litert", "threads": 1},
        "device": {"machine": "aarch64"},
    }
    if kind == "profile":
        body.update({
            "latency": {"p50_ms": p50, "p90_ms": p50 * 1.1, "p99_ms": p50 * 1.5, "mean_ms": p50, "runs": 100},
            "accuracy": accuracy, "agreement_with_host": 0.99,
            "host_expected": {"profile": "android-midrange", "accuracy": 0.96, "latency_ms_estimate": 0.5},
            "student": {"macs": 1097632},
        })
    if psi is not None:
        body["drift"] = {"samples": 500, "summary": {"input_psi_mean": psi, "confidence_psi": psi / 2, "status": "shift" if psi > 0.25 else "stable"}}
    report = make_report(body, kind, device=device)
    report["created"] = (datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(hours=when)).isoformat()
    return report


def _fill(store):
    from edgekd.reports.schema import validate_report

    reports = [
        _report("pi-good", 0.958, 0.40, when=0),
        _report("pi-good", 0.957, 0.45, when=1),
        _report("pi-slow", 0.940, 2.0, when=2),  # 2 pts under the host and 4x the estimate
        _report("pi-slow", None, None, kind="monitor", psi=0.02, when=3),
        _report("pi-slow", None, None, kind="monitor", psi=0.6, when=4),
    ]
    for r in reports:
        if r.get("accuracy") is None:
            r.pop("accuracy", None)
        store.add(validate_report(r))
    return reports


def _check_comparisons(store):
    from edgekd.reports.analysis import host_vs_device, latency_factors

    by_device = {c.device_id: c for c in host_vs_device(store)}
    good, slow = by_device["pi-good"], by_device["pi-slow"]
    assert good.flags == [] and good.reports == 2 and good.device_p50_ms == pytest.approx(0.425)
    assert good.accuracy_gap_pts == pytest.approx(-0.3)
    assert slow.accuracy_gap_pts == pytest.approx(-2.0)
    assert slow.flags == ["accuracy 2.0 pts under the host", "latency 4.0x the profile's estimate", "input drift: shift"]
    assert [c.device_id for c in host_vs_device(store, device="pi-good")] == ["pi-good"]
    cal = latency_factors(store)["android-midrange"]
    assert cal["reports"] == 3 and cal["factor"] == pytest.approx(0.9)


def test_show_flags_gaps_and_writes_html_with_plots(tmp_path):
    from edgekd.reports.databases import open_store

    db = tmp_path / "r.sqlite"
    store = open_store("sqlite:///" + str(db))
    _fill(store)
    _check_comparisons(store)
    store.close()
    html = tmp_path / "page.html"
    proc = run_cli("edgekd", "reports", "show", "--db", str(db), "--html", str(html), "--json", str(tmp_path / "c.json"))
    assert proc.returncode == 0, proc.stderr
    assert "accuracy 2.0 pts under the host" in proc.stdout and "latency factor android-midrange" in proc.stdout
    page = html.read_text()
    assert page.count('src="data:image/png;base64,') == 3
    assert "Latency per device" in page and "Accuracy per device" in page and "Drift over time" in page
    assert '<tr class="flag">' in page
    proc = run_cli("edgekd", "reports", "show", "--db", str(db), "--device", "nobody")
    assert proc.returncode == 2 and "no reports match" in proc.stderr


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_latency_fit_reads_the_store(tmp_path):
    from edgekd.profiles import load_profile
    from edgekd.reports.analysis import fit_latency_from_store
    from edgekd.reports.databases import open_store

    db = tmp_path / "r.sqlite"
    store = open_store(str(db))
    _fill(store)
    cal = fit_latency_from_store(store, "android-midrange", device="pi-good")
    store.close()
    # The two pi-good reports (0.40 and 0.45 ms) are slower than the profile's 0.27 ms estimate: lower efficiency.
    assert [p["p50_ms"] for p in cal.points] == [0.40, 0.45]
    assert cal.efficiency_after < cal.efficiency_before
    assert min(p["estimate_after_ms"] for p in cal.points) < 0.45 < max(p["estimate_after_ms"] for p in cal.points) + 0.05
    out = tmp_path / "cal.yaml"
    proc = run_cli("edgekd", "reports", "fit-latency", "android-midrange", "--db", str(db), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "(3 reports)" in proc.stdout
    assert load_profile(str(out)).compute.efficiency < load_profile("android-midrange").compute.efficiency
    proc = run_cli("edgekd", "reports", "fit-latency", "jetson-nano", "--db", str(db))
    assert proc.returncode == 2 and "no stored profile reports" in proc.stderr


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL server on a Unix socket, run as the postgres user when we are root (it refuses root)."""
    import tempfile

    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL binaries not installed here")
    pytest.importorskip("psycopg")
    as_postgres = []
    # Outside pytest's tmp folders: those are private to root and the postgres user could not enter them.
    folder = tempfile.mkdtemp(prefix="edgekd-pg-")
    if os.geteuid() == 0:
        if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
            pytest.skip("running as root and there is no postgres user")
        shutil.chown(folder, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(folder, "data")
    port = _free_port()
    try:
        subprocess.run(as_postgres + [initdb, "-D", data, "-A", "trust", "-U", "postgres"], check=True, capture_output=True, timeout=120)
        subprocess.run(as_postgres + [pg_ctl, "-D", data, "-l", os.path.join(folder, "log"), "-w", "-o", "-k %s -c listen_addresses='' -p %d" % (folder, port), "start"], check=True, capture_output=True, timeout=120)
        try:
            yield "postgresql://postgres@/postgres?host=%s&port=%d" % (folder, port)
        finally:
            subprocess.run(as_postgres + [pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True, timeout=60)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_postgres_store_keeps_the_same_promises(postgres):
    from edgekd.reports.databases import PostgresStore, open_store
    from edgekd.reports.store import DuplicateMismatch

    store = open_store(postgres)
    assert isinstance(store, PostgresStore)
    reports = _fill(store)
    assert store.add(copy.deepcopy(reports[0]))[1] is True  # a resend is a duplicate, not a new row
    with pytest.raises(DuplicateMismatch):
        store.add(dict(reports[0], device_id="other"))
    assert store.count() == 5
    _check_comparisons(store)
    # Per-device tokens live in the same database: the same SQL must hold on PostgreSQL.
    made = store.create_token("pi-good")
    assert store.find_token(made["token"])["device_id"] == "pi-good" and store.find_token(made["token"] + "x") is None
    assert store.active_tokens() == 1 and store.revoke_tokens(device="pi-good") == [made["token_id"]]
    assert store.find_token(made["token"])["revoked"] and store.revoke_tokens([made["token_id"]]) == []
    assert [t["token_id"] for t in store.list_tokens(device="pi-good")] == [made["token_id"]]
    store.close()
