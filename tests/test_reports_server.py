"""The collector: validation (token, size, schema) with clear 4xx answers and never a 500, idempotent
storage, spooling and resending from the device, and nothing acknowledged lost when the server is
killed mid-run."""
import copy
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from conftest import run_cli

TOKEN = "t0ken-for-tests"


@pytest.fixture(scope="module")
def profile_body(tiny_bundle):
    from edgekd_runtime import profile

    return profile(tiny_bundle["path"], runs=5, warmup=1)


def new_report(body, device="dev-1", kind="profile"):
    from edgekd_runtime.report import make_report

    return make_report(copy.deepcopy(body), kind, device=device)


@pytest.fixture
def client(tmp_path):
    from fastapi.testclient import TestClient

    from edgekd.reports.server import create_app
    from edgekd.reports.databases import open_store

    store = open_store(str(tmp_path / "r.sqlite"))
    with TestClient(create_app(store, TOKEN, max_bytes=64 * 1024)) as c:
        c.store = store
        yield c
    store.close()


def post(client, payload, token=TOKEN, headers=None):
    data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    h = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
    h.update(headers or {})
    return client.post("/v1/reports", content=data, headers=h)


def test_stores_once_and_acknowledges_every_resend(client, profile_body):
    report = new_report(profile_body)
    first = post(client, report, headers={"Idempotency-Key": report["report_id"]})
    assert first.status_code == 201 and first.json()["stored"] is True and first.json()["duplicate"] is False
    again = post(client, report)
    assert again.status_code == 200 and again.json() == dict(first.json(), duplicate=True)
    assert client.store.count() == 1
    row = client.store.query(with_body=True)[0]
    assert row["body"] == report and row["p50_ms"] == report["latency"]["p50_ms"] and row["host_accuracy"] == report["host_expected"]["accuracy"]


def test_wrong_or_missing_token_is_401(client, profile_body):
    report = new_report(profile_body)
    assert post(client, report, token="nope").status_code == 401
    r = client.post("/v1/reports", content=json.dumps(report))
    assert r.status_code == 401 and r.json()["detail"] == "missing or wrong token"
    assert client.store.count() == 0


@pytest.fixture
def device_client(tmp_path):
    """A collector with per-device tokens only (no shared token)."""
    from fastapi.testclient import TestClient

    from edgekd.reports.server import create_app
    from edgekd.reports.databases import open_store

    store = open_store(str(tmp_path / "d.sqlite"))
    with TestClient(create_app(store)) as c:
        c.store = store
        yield c
    store.close()


def test_a_device_token_speaks_for_its_own_device_only_and_stops_when_revoked(device_client, profile_body, tmp_path):
    store = device_client.store
    cam1, cam2 = store.create_token("cam-1"), store.create_token("cam-2")
    assert post(device_client, new_report(profile_body, device="cam-1"), token=cam1["token"]).status_code == 201
    assert post(device_client, new_report(profile_body, device="cam-2"), token=cam2["token"]).status_code == 201
    r = post(device_client, new_report(profile_body, device="cam-2"), token=cam1["token"])
    assert r.status_code == 403, r.text
    assert r.json()["detail"] == "token %s belongs to device 'cam-1', not to 'cam-2' named in the report" % cam1["token_id"]
    # A token of the right shape that was never issued, and one of ours with its secret altered, are strangers.
    forged = cam1["token"][:-4] + ("AAAA" if not cam1["token"].endswith("AAAA") else "BBBB")
    for wrong in (forged, "ekd_000000000000_" + "A" * 43, TOKEN, ""):
        r = post(device_client, new_report(profile_body, device="cam-1"), token=wrong)
        assert r.status_code == 401 and r.json()["detail"] == "missing or wrong token", wrong

    assert store.revoke_tokens([cam1["token_id"]]) == [cam1["token_id"]]
    assert store.revoke_tokens([cam1["token"]]) == []  # by the whole token too; twice keeps the first time
    r = post(device_client, new_report(profile_body, device="cam-1"), token=cam1["token"])
    assert r.status_code == 401 and r.json()["detail"].startswith("token %s was revoked on " % cam1["token_id"])
    assert post(device_client, new_report(profile_body, device="cam-2"), token=cam2["token"]).status_code == 201
    assert store.count() == 3 and {r["device_id"] for r in store.query()} == {"cam-1", "cam-2"}

    listed = store.list_tokens()
    assert sorted((t["device_id"], t["token_id"], bool(t["revoked"])) for t in listed) == [("cam-1", cam1["token_id"], True), ("cam-2", cam2["token_id"], False)]
    assert all(set(t) == {"token_id", "device_id", "created", "revoked"} for t in listed)
    # Only a hash is stored: no secret anywhere in the database files.
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("d.sqlite"))
    for made in (cam1, cam2):
        secret = made["token"].rsplit("_", 1)[1].encode()
        assert made["token_id"].encode() in raw and secret not in raw


def test_the_shared_token_still_works_beside_device_tokens(client, profile_body):
    made = client.store.create_token("cam-1")
    assert post(client, new_report(profile_body, device="anyone")).status_code == 201
    assert post(client, new_report(profile_body, device="cam-1"), token=made["token"]).status_code == 201
    assert post(client, new_report(profile_body, device="anyone"), token=made["token"]).status_code == 403


def _bad_payloads(body):
    def mutate(fn):
        r = new_report(body)
        fn(r)
        return r

    return [
        (b"", 400, "not JSON"),
        (b"{not json", 400, "not JSON"),
        (b"\xff\xfe garbage", 400, "not JSON"),
        (b"[" * 100000 + b"]" * 100000, 413, "limit"),
        (b"[" * 5000 + b"]" * 5000, 400, "nested"),
        (b'{"latency": NaN}', 400, "NaN"),
        (b"[1, 2, 3]", 422, "JSON object"),
        (b'"a string"', 422, "JSON object"),
        (b"{}", 422, "schema"),
        (mutate(lambda r: r.__setitem__("schema_version", 2)), 422, "schema version 2 is not supported"),
        (mutate(lambda r: r.__setitem__("schema", "other")), 422, "schema"),
        (mutate(lambda r: r.__setitem__("report_id", "../../etc")), 422, "report_id"),
        (mutate(lambda r: r.__setitem__("kind", "gossip")), 422, "kind"),
        (mutate(lambda r: r.__setitem__("created", "yesterday")), 422, "created"),
        (mutate(lambda r: r.pop("latency")), 422, "needs latency"),
        (mutate(lambda r: r["latency"].__setitem__("p50_ms", -1)), 422, "latency.p50_ms"),
        (mutate(lambda r: r["latency"].__setitem__("p50_ms", "fast")), 422, "latency.p50_ms"),
        (mutate(lambda r: r.__setitem__("accuracy", 1.5)), 422, "accuracy"),
        (mutate(lambda r: r.__setitem__("device_id", "x" * 500)), 422, "device_id"),
        (mutate(lambda r: r.__setitem__("latency", [])), 422, "latency"),
        (json.dumps(mutate(lambda r: r["runtime"].__setitem__("extra", 1e999))).encode().replace(b"Infinity", b"1e999"), 422, "NaN or infinite"),
        (mutate(lambda r: r.__setitem__("padding", "x" * 70000)), 413, "limit"),
    ]


def test_malformed_and_oversize_payloads_get_a_4xx_with_a_message_never_a_500(client, profile_body):
    for payload, status, needle in _bad_payloads(profile_body):
        r = post(client, payload)
        assert r.status_code == status, (payload[:80] if isinstance(payload, bytes) else payload.get("report_id"), r.status_code, r.text[:200])
        assert needle in r.json()["detail"], r.json()
    assert client.store.count() == 0


def test_size_limit_without_content_length(client):
    # A chunked upload declares no length: the limit is enforced while reading.
    def chunks():
        for _ in range(100):
            yield b"x" * 1024

    r = client.post("/v1/reports", content=chunks(), headers={"Authorization": "Bearer " + TOKEN})
    assert r.status_code == 413


def test_idempotency_key_must_match_and_ids_are_not_reused(client, profile_body):
    report = new_report(profile_body)
    r = post(client, report, headers={"Idempotency-Key": "somethingelse"})
    assert r.status_code == 400 and "Idempotency-Key" in r.json()["detail"]
    assert post(client, report).status_code == 201
    changed = dict(report, device_id="someone-else")
    r = post(client, changed)
    assert r.status_code == 409 and "different contents" in r.json()["detail"]
    assert client.store.count() == 1


def test_store_failure_is_503_and_nothing_is_acknowledged(profile_body):
    from fastapi.testclient import TestClient

    from edgekd.reports.server import create_app
    from edgekd.reports.store import Store, StoreError

    class Broken(Store):
        def _insert(self, row):
            raise StoreError("disk full")

    with TestClient(create_app(Broken(), TOKEN)) as c:
        r = post(c, new_report(profile_body))
    assert r.status_code == 503 and "not stored" in r.json()["detail"] and "stored" not in r.json()


# --- a real server process --------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_collector(db, port, token=TOKEN, extra=(), cafile=None):
    bindir = os.path.dirname(sys.executable)
    proc = subprocess.Popen(
        [os.path.join(bindir, "edgekd"), "reports", "serve", "--db", str(db), "--port", str(port)] + (["--token", token] if token else []) + list(extra),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    url = "%s://127.0.0.1:%d" % ("https" if cafile else "http", port)
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("collector exited: " + proc.stderr.read().decode())
        try:
            with urllib.request.urlopen(url + "/v1/health", timeout=1, context=context) as r:
                if json.loads(r.read())["ok"]:
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("collector did not start")


def stop(proc, sig=signal.SIGTERM):
    if proc.poll() is None:
        os.kill(proc.pid, sig)
    proc.wait(timeout=30)


@pytest.fixture
def collector(tmp_path):
    procs = []

    def start(db=None, port=None, **options):
        port = port or free_port()
        proc, url = start_collector(db or tmp_path / "reports.sqlite", port, **options)
        procs.append(proc)
        return proc, url, port

    yield start
    for proc in procs:
        stop(proc, signal.SIGKILL)


def test_profile_spools_when_the_host_is_down_and_a_later_run_sends_it_once(tiny_bundle, tmp_path, collector):
    from edgekd.reports.databases import open_store

    spool = tmp_path / "spool"
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    args = ["edgekd-runtime", "profile", tiny_bundle["path"], "--runs", "3", "--report-to", url, "--token", TOKEN, "--spool", str(spool), "--device-id", "cam-7", "--timeout", "2"]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "kept in" in proc.stderr and "unreachable" in proc.stderr
    waiting = sorted(os.listdir(spool))
    assert len(waiting) == 1
    saved = (spool / waiting[0]).read_bytes()

    collector(tmp_path / "db.sqlite", port)
    proc = run_cli(*args)  # the next run sends the spooled report first, then its own
    assert proc.returncode == 0, proc.stderr
    assert "sent      1 spooled report(s) from earlier runs" in proc.stdout
    assert [n for n in os.listdir(spool) if n.endswith(".json")] == []
    # A resend of the first report (say the acknowledgement was lost) is acknowledged and not counted again.
    (spool / waiting[0]).write_bytes(saved)
    proc = run_cli("edgekd-runtime", "send", "--report-to", url, "--token", TOKEN, "--spool", str(spool))
    assert proc.returncode == 0 and "sent      1 of 1" in proc.stdout, proc.stderr
    store = open_store(str(tmp_path / "db.sqlite"))
    rows = store.query()
    store.close()
    assert len(rows) == 2 and {r["device_id"] for r in rows} == {"cam-7"}


def test_send_with_a_wrong_token_keeps_the_report(tiny_bundle, tmp_path, collector, profile_body):
    from edgekd_runtime.report import deliver

    _, url, _ = collector()
    result = deliver(new_report(profile_body), url, "wrong", str(tmp_path / "spool"))
    assert result["delivered"] is False and "401" in result["error"]
    assert len(os.listdir(tmp_path / "spool")) == 1
    result = deliver(new_report(profile_body), url, TOKEN, str(tmp_path / "spool"))
    assert result["delivered"] and len(result["sent"]) == 2


def test_server_killed_mid_run_loses_nothing_it_acknowledged(tmp_path, collector, profile_body):
    from edgekd.reports.databases import open_store
    from edgekd_runtime.report import deliver, flush_spool

    db = tmp_path / "kill.sqlite"
    proc, url, port = collector(db)
    senders, per_sender = 4, 40
    acked, made = set(), set()
    lock = threading.Lock()
    killed = threading.Event()

    def sender(i):
        spool = str(tmp_path / ("spool%d" % i))
        for _ in range(per_sender):
            report = new_report(profile_body, device="dev-%d" % i)
            with lock:
                made.add(report["report_id"])
            result = deliver(report, url, TOKEN, spool, timeout=5)
            with lock:
                acked.update(result["sent"])
            if killed.is_set():
                time.sleep(0.01)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(senders)]
    for t in threads:
        t.start()
    while len(acked) < 40:
        time.sleep(0.01)
    stop(proc, signal.SIGKILL)  # no graceful shutdown: whatever was acknowledged must already be on disk
    killed.set()
    with lock:
        acked_before_kill = set(acked)
    time.sleep(0.5)
    collector(db, port)
    for t in threads:
        t.join(timeout=120)
    for i in range(senders):
        result = flush_spool(url, TOKEN, str(tmp_path / ("spool%d" % i)))
        assert result["error"] is None
        acked.update(result["sent"])
    store = open_store(str(db))
    ids = [r["report_id"] for r in store.query()]
    store.close()
    assert 40 <= len(acked_before_kill) < senders * per_sender  # the kill really came mid-run
    assert acked_before_kill <= set(ids)
    assert len(ids) == len(set(ids)) == senders * per_sender
    assert set(ids) == made == acked


def _make_certificate(folder):
    # The README's one-liner: a self-signed certificate valid for 127.0.0.1 and localhost.
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                    "-subj", "/CN=edgekd-collector", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=120)
    return cert, key


def test_device_tokens_from_the_cli_over_tls(tiny_bundle, tmp_path, collector):
    db = tmp_path / "tls.sqlite"
    made = run_cli("edgekd", "reports", "token", "create", "cam-7", "--db", str(db))
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    token_id = token.split("_")[1]
    assert token.startswith("ekd_") and "shown once" in made.stderr and token_id in made.stderr
    other = run_cli("edgekd", "reports", "token", "create", "cam-8", "--db", str(db)).stdout.strip()
    listed = run_cli("edgekd", "reports", "token", "list", "--db", str(db))
    assert listed.returncode == 0 and token_id in listed.stdout and "cam-7" in listed.stdout and "cam-8" in listed.stdout
    assert token not in listed.stdout and token.rsplit("_", 1)[1] not in listed.stdout + listed.stderr

    cert, key = _make_certificate(tmp_path)
    _, url, _ = collector(db, token=None, extra=["--ssl-certfile", cert, "--ssl-keyfile", key], cafile=cert)
    assert url.startswith("https://")
    env = dict(os.environ, SSL_CERT_FILE=cert)  # how a device trusts a self-signed collector (README)
    spool = str(tmp_path / "spool")

    def profile(device, tok):
        return run_cli("edgekd-runtime", "profile", tiny_bundle["path"], "--runs", "2", "--report-to", url, "--token", tok,
                       "--spool", spool, "--device-id", device, "--timeout", "10", env=env)

    proc = profile("cam-7", token)
    assert proc.returncode == 0 and "kept in" not in proc.stderr, proc.stderr
    proc = profile("cam-8", token)  # cam-7's token cannot report for cam-8: refused, kept for a fixed token
    assert "403" in proc.stderr and "belongs to device 'cam-7'" in proc.stderr
    proc = run_cli("edgekd-runtime", "send", "--report-to", url, "--token", other, "--spool", spool, env=env)
    assert proc.returncode == 0 and "sent      1 of 1" in proc.stdout, proc.stderr

    revoked = run_cli("edgekd", "reports", "token", "revoke", token_id, "--db", str(db))
    assert revoked.returncode == 0 and ("revoked 1 token(s): " + token_id) in revoked.stdout
    listed = run_cli("edgekd", "reports", "token", "list", "--db", str(db), "--device", "cam-7")
    row = [line for line in listed.stdout.splitlines() if line.startswith(token_id)][0]
    assert row.split()[-1] != "-"  # a revocation time
    proc = profile("cam-7", token)
    assert "401" in proc.stderr and ("token %s was revoked" % token_id) in proc.stderr
    assert run_cli("edgekd", "reports", "token", "revoke", "nosuchtoken", "--db", str(db)).returncode == 2

    from edgekd.reports.databases import open_store

    store = open_store(str(db))
    rows = store.query()
    store.close()
    assert sorted(r["device_id"] for r in rows) == ["cam-7", "cam-8"]


def test_serve_refuses_to_start_when_no_device_could_authenticate(tmp_path):
    proc = run_cli("edgekd", "reports", "serve", "--db", str(tmp_path / "none.sqlite"), "--port", str(free_port()))
    assert proc.returncode == 2 and "token create" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "bad.pem").write_text("not a certificate")
    proc = run_cli("edgekd", "reports", "serve", "--db", str(tmp_path / "none.sqlite"), "--token", "x", "--ssl-certfile", str(tmp_path / "bad.pem"))
    assert proc.returncode == 2 and "cannot use the certificate" in proc.stderr and "Traceback" not in proc.stderr


# --- the device's spool ------------------------------------------------------------------------------

def test_the_spool_makes_every_rename_and_removal_durable(tmp_path, collector, profile_body, monkeypatch):
    """A power cut right after "sent" must neither resurrect the report nor lose one still waiting: every
    rename and removal in the spool is followed by an fsync of the folder that holds the name."""
    import stat

    from edgekd_runtime.report import deliver, spool_report

    _, url, _ = collector()
    spool = tmp_path / "spool"
    events = []
    real = {name: getattr(os, name) for name in ("fsync", "rename", "replace", "remove")}

    def folder_of(path):
        st = real_stat(os.path.dirname(os.path.abspath(path)))
        return (st.st_dev, st.st_ino)

    real_stat = os.stat

    def fsync(fd):
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            events.append(("fsync", (st.st_dev, st.st_ino)))
        return real["fsync"](fd)

    def moving(name):
        def op(src, dst, *a, **k):
            before = folder_of(src)
            out = real[name](src, dst, *a, **k)
            events.append(("changed", before))
            events.append(("changed", folder_of(dst)))
            return out
        return op

    def remove(path, *a, **k):
        where = folder_of(path)
        out = real["remove"](path, *a, **k)
        events.append(("changed", where))
        return out

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", moving("rename"))
    monkeypatch.setattr(os, "replace", moving("replace"))
    monkeypatch.setattr(os, "remove", remove)

    spool_report(new_report(profile_body), str(spool))
    (spool / "0000-garbage.json").write_bytes(b"{not json")  # goes to rejected/: a rename across two folders
    result = deliver(new_report(profile_body), url, TOKEN, str(spool))
    monkeypatch.undo()
    assert result["delivered"] and len(result["sent"]) == 2 and len(result["rejected"]) == 1, result
    assert sorted(os.listdir(spool)) == ["rejected"]

    changed = [(i, f) for i, (kind, f) in enumerate(events) if kind == "changed"]
    assert changed, "the spool moved no file"
    for i, folder in changed:
        assert ("fsync", folder) in events[i + 1:], "a change in the spool at step %d was never made durable: %s" % (i, events)


def test_concurrent_flushers_send_each_report_once_and_raise_nothing(tmp_path, collector, profile_body):
    """Two flushers and two delivering runs in threads, and two `edgekd-runtime send` processes, all on one
    spool at the same time: every report reaches the collector once, sent by exactly one of them."""
    from edgekd.reports.databases import open_store
    from edgekd_runtime.report import deliver, flush_spool, spool_report

    db = tmp_path / "many.sqlite"
    _, url, _ = collector(db)
    spool = str(tmp_path / "spool")
    waiting = [new_report(profile_body, device="dev-%d" % (i % 3)) for i in range(150)]
    for report in waiting:
        spool_report(report, spool)
    fresh = [[new_report(profile_body, device="new-%d" % t) for _ in range(10)] for t in range(2)]
    results, errors = [], []
    start = threading.Barrier(4)

    def flusher():
        start.wait()
        results.append(flush_spool(url, TOKEN, spool, timeout=30))

    def delivering(reports):
        start.wait()
        for report in reports:
            results.append(deliver(report, url, TOKEN, spool, timeout=30))

    def guarded(fn, *args):
        def run():
            try:
                fn(*args)
            except BaseException as exc:  # the point of the test: nothing may escape a flusher
                errors.append(repr(exc))
        return run

    bindir = os.path.dirname(sys.executable)
    senders = [subprocess.Popen([os.path.join(bindir, "edgekd-runtime"), "send", "--report-to", url, "--token", TOKEN, "--spool", spool, "--timeout", "30"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    threads = [threading.Thread(target=guarded(flusher)) for _ in range(2)]
    threads += [threading.Thread(target=guarded(delivering, reports)) for reports in fresh]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    sent_by_processes = 0
    for proc in senders:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and "Traceback" not in err, err
        sent_by_processes += int(out.split("sent      ", 1)[1].split(" of ", 1)[0])

    assert errors == []
    assert all(r["error"] is None and r["rejected"] == [] for r in results), [r["error"] for r in results]
    assert all(r["delivered"] for r in results if "delivered" in r)  # each run sent its own report itself
    made = {r["report_id"] for r in waiting} | {r["report_id"] for batch in fresh for r in batch}
    sent_here = [rid for r in results for rid in r["sent"]]
    assert len(sent_here) == len(set(sent_here))
    assert len(sent_here) + sent_by_processes == len(made)  # one send per report, whoever sent it
    assert [rid for r in results for rid in r["duplicates"]] == []
    assert sorted(os.listdir(spool)) == []
    store = open_store(str(db))
    ids = [r["report_id"] for r in store.query()]
    store.close()
    assert len(ids) == len(set(ids)) and set(ids) == made


def test_a_report_claimed_by_a_flusher_that_died_is_sent_by_the_next(tmp_path, collector, profile_body):
    from edgekd_runtime.report import flush_spool, spool_report

    _, url, _ = collector()
    spool = tmp_path / "spool"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        orphan = spool_report(new_report(profile_body), str(spool))
        os.rename(orphan, "%s.%d-0123456789ab.sending" % (orphan, dead.pid))
        busy = new_report(profile_body)
        held = spool_report(busy, str(spool))
        os.rename(held, "%s.%d-0123456789ab.sending" % (held, alive.pid))
        result = flush_spool(url, TOKEN, str(spool))
        assert result["error"] is None and len(result["sent"]) == 1 and busy["report_id"] not in result["sent"]
        # The live process's claim is left alone: it may be sending that report right now.
        assert [n for n in os.listdir(spool)] == [os.path.basename(held) + ".%d-0123456789ab.sending" % alive.pid]
    finally:
        alive.kill()
        alive.wait()
    result = flush_spool(url, TOKEN, str(spool))
    assert result["sent"] == [busy["report_id"]] and os.listdir(spool) == []


def test_a_monitor_report_with_too_few_samples_for_a_verdict_is_accepted(tiny_bundle):
    """The runtime answers "insufficient data" below the sample size its drift verdict needs; the collector must take
    that report like any other, not refuse it with a 422."""
    import numpy as np

    from edgekd.reports import validate_report
    from edgekd_runtime.profiler import monitor

    with np.load(os.path.join(tiny_bundle["path"], "eval.npz")) as ev:
        x = ev["x"][:20]
    body = monitor(tiny_bundle["path"], x)
    assert body["drift"]["summary"]["status"] == "insufficient data"
    validate_report(new_report(body, kind="monitor"))
