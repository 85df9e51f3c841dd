"""Fuzz every reader of a file a user or a device hands the project: inputs mutated from valid ones are either
accepted or refused with the project's own error type (a one-line message and a documented exit code), never
another exception, which would reach the user as a traceback.

Readers: the runtime's manifest, zip bundles (through `edgekd-runtime info`), the drift reference, the report
spool, the collector's report schema, the host's device profile YAML, .npz data and image folders.

CI runs ``EDGEKD_FUZZ_EXAMPLES`` examples per reader (default 60, the whole file in well under a minute);
``benchmarks/fuzz_long.py`` runs thousands. No example database: a failure prints its reproducer blob instead
of leaving a folder in the working tree.
"""
import contextlib
import copy
import errno
import io
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edgekd.errors import DataError, ProfileError
from edgekd_runtime import cli as runtime_cli
from edgekd_runtime import report as runtime_report
from edgekd_runtime.bundle import Bundle, write_bundle
from edgekd_runtime.drift import DRIFT_NAME, drift_report, reference_json
from edgekd_runtime.errors import BundleFormatError, RuntimeFailure
from edgekd_runtime.manifest import Artifact, Manifest, Preprocessing, TensorSpec
from edgekd_runtime.model import select_artifact

EXAMPLES = int(os.environ.get("EDGEKD_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
# The codes edgekd-runtime documents: 0 success, 2 bad input, 3 integrity, 4 engine unavailable, 5 model.
RUNTIME_EXIT_CODES = {0, 2, 3, 4, 5}


# --- mutations --------------------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


def _retyped(value, draw):
    """The same content in another JSON type: what a hand-edited or foreign-written file most often gets wrong."""
    choices = [None, str(value), [value], {"value": value}, True, 0, -1, 1e308 * 10, float("nan"), ""]
    if isinstance(value, dict):
        choices += [list(value.items()), list(value.values()), list(value)]
    if isinstance(value, list):
        choices += [{str(i): v for i, v in enumerate(value)}, value[:0], value * 3]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        choices += [-value, value * 1e6, str(value), int(value) if math.isfinite(value) else 0]
    return draw(st.sampled_from(choices))


@st.composite
def mutated_json(draw, valid, max_ops=3):
    """``valid`` with 1..max_ops of: a field dropped, retyped, replaced by a random JSON value, or one added."""
    doc = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, max_ops))):
        path = draw(st.sampled_from(list(_paths(doc))))
        op = draw(st.sampled_from(["drop", "retype", "replace", "add"]))
        if not path:
            if op in ("retype", "replace"):
                doc = _retyped(doc, draw) if op == "retype" else draw(json_values)
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        if op == "drop":
            del parent[key]
        elif op == "retype":
            parent[key] = _retyped(parent[key], draw)
        elif op == "replace":
            parent[key] = draw(json_values)
        elif isinstance(parent[key], dict):
            parent[key][draw(st.text(max_size=8))] = draw(json_values)
        elif isinstance(parent[key], list):
            parent[key].append(draw(json_values))
    return doc


@st.composite
def mutated_bytes(draw, valid, max_ops=3):
    """``valid`` bytes truncated, bit-flipped, overwritten, extended or cut, 1..max_ops times."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(["truncate", "flip", "overwrite", "insert", "delete"]))
        n = len(data)
        if op == "truncate":
            data = data[: draw(st.integers(0, max(0, n - 1)))]
        elif op == "flip" and n:
            i = draw(st.integers(0, n - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "overwrite" and n:
            i = draw(st.integers(0, n - 1))
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[i : i + len(chunk)] = chunk
        elif op == "insert":
            i = draw(st.integers(0, n))
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete" and n:
            i = draw(st.integers(0, n - 1))
            del data[i : i + draw(st.integers(1, 16))]
    return bytes(data)


def dumps(doc):
    # allow_nan: a hand-edited or foreign file may hold NaN/Infinity, and Python's json reads them back.
    return json.dumps(doc, allow_nan=True).encode("utf-8")


def refused_with(exc, *types):
    """Re-raise ``exc`` unless it is one of the project's own error types (a bug that needs fixing)."""
    if not isinstance(exc, types):
        raise exc
    assert "\n" not in str(exc), "a refusal is one line: %r" % str(exc)
    return exc


# --- a valid bundle, written by the runtime's own writer --------------------------------------------------

LABELS = ["zero", "one", "two"]


def valid_manifest():
    int8 = TensorSpec([1, 8, 8, 1], "int8", scale=0.0625, zero_point=-128)
    return Manifest(
        name="fuzz",
        labels=list(LABELS),
        input=TensorSpec([1, 8, 8, 1], "float32"),
        preprocessing=Preprocessing(scale=1.0 / 16, offset=0.0, mean=[0.5], std=[0.25]),
        artifacts=[
            Artifact("model_int8.tflite", "tflite-int8", "litert", int8, TensorSpec([1, 3], "int8", scale=0.1, zero_point=0),
                     bytes=64, settings={"ops": ["FULLY_CONNECTED"]}, host_metrics={"accuracy": 0.9}, verification="passed"),
            Artifact("model.onnx", "onnx", "onnxruntime", TensorSpec([1, 8, 8, 1], "float32"), TensorSpec([1, 3], "float32"), bytes=48,
                     verification="passed"),
        ],
        files={},
        profile={"name": "android-midrange", "engine": "litert"},
        teacher={"fingerprint": "0" * 64},
        student={"name": "tiny"},
        created="2026-11-30T00:00:00+00:00",
        producer="edgekd test",
    )


def eval_arrays():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, size=(40, 8, 8, 1)).astype(np.float32)
    scores = rng.normal(size=(40, 3)).astype(np.float32)
    return x, scores


def bundle_members():
    x, scores = eval_arrays()
    buf = io.BytesIO()
    np.savez(buf, x=x, y=scores.argmax(axis=1), host_outputs=scores)
    return {
        "model_int8.tflite": b"TFL3" + bytes(60),
        "model.onnx": b"\x08\x07" + bytes(46),
        "eval.npz": buf.getvalue(),
        DRIFT_NAME: reference_json(x, scores),
    }


@pytest.fixture(scope="module")
def valid_bundle(tmp_path_factory):
    """(folder, zip path, manifest dict with its files table filled in)."""
    root = tmp_path_factory.mktemp("valid")
    folder = write_bundle(str(root / "bundle"), valid_manifest(), bundle_members())
    archive = write_bundle(str(root / "bundle"), valid_manifest(), bundle_members(), make_zip=True)
    with open(os.path.join(folder, "manifest.json")) as handle:
        doc = json.load(handle)
    return folder, archive, doc


def zip_with(members, path):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def folder_members(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as handle:
            out[name] = handle.read()
    return out


def runtime_cli_code(*argv):
    """Run ``edgekd-runtime`` in-process: its exit code, with stdout/stderr swallowed; any uncaught exception
    is what a user would see as a traceback, so it propagates and fails the test."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = runtime_cli.main(list(argv))
    if code:
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("edgekd-runtime: error: "), lines
    return code


def check_usable(m):
    """What every consumer of an accepted manifest relies on (the CLI's info, engine selection, the writer)."""
    assert isinstance(m.name, str) and isinstance(m.labels, list) and all(isinstance(v, str) for v in m.labels)
    specs = [m.input] + [a.input for a in m.artifacts] + [a.output for a in m.artifacts]
    for spec in specs:
        assert spec.shape and all(type(v) is int and v >= -1 for v in spec.shape), spec
        assert isinstance(spec.dtype, str)
        assert spec.scale is None or (type(spec.scale) is float and math.isfinite(spec.scale) and spec.scale > 0)
        assert spec.zero_point is None or type(spec.zero_point) is int
    assert m.artifacts, "an accepted manifest has at least one artifact"
    for art in m.artifacts:
        assert all(isinstance(getattr(art, f), str) for f in ("path", "format", "engine", "verification"))
        assert type(art.bytes) is int and isinstance(art.settings, dict) and isinstance(art.host_metrics, dict)
        assert all(isinstance(c, str) for c in art.companions)
    assert all(type(getattr(m.preprocessing, f)) is float and math.isfinite(getattr(m.preprocessing, f)) for f in ("scale", "offset"))
    for f in ("mean", "std"):
        values = getattr(m.preprocessing, f, None)
        assert values is None or (values and all(type(v) is float and math.isfinite(v) for v in values)), (f, values)
    assert isinstance(m.files, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in m.files.items())
    for table in (m.profile, m.teacher, m.student, m.reference):
        assert isinstance(table, dict)
    select_artifact(m)
    # What the host writes, the device reads back.
    Manifest.from_dict(json.loads(m.to_json()))


# --- the runtime's manifest ---------------------------------------------------------------------------------


def _files_as_list(doc):
    doc = copy.deepcopy(doc)
    doc["files"] = sorted(doc["files"])
    return doc


def _no_artifacts(doc):
    doc = copy.deepcopy(doc)
    doc["artifacts"] = []
    return doc


@pytest.fixture(scope="module")
def manifest_doc(valid_bundle):
    return valid_bundle[2]


def test_manifest_named_bad_inputs(manifest_doc):
    with pytest.raises(BundleFormatError, match="'files' must be an object"):
        Manifest.from_dict(_files_as_list(manifest_doc))
    with pytest.raises(BundleFormatError, match="no artifacts"):
        Manifest.from_dict(_no_artifacts(manifest_doc))
    doc = copy.deepcopy(manifest_doc)
    doc["artifacts"][0]["input"]["shape"] = [1, float("inf"), 8, 1]
    with pytest.raises(BundleFormatError, match=r"artifacts\[0\].input.shape"):
        Manifest.from_dict(doc)
    doc = copy.deepcopy(manifest_doc)
    doc["preprocessing"]["scale"] = "0.0625"
    with pytest.raises(BundleFormatError, match="preprocessing.scale"):
        Manifest.from_dict(doc)
    check_usable(Manifest.from_dict(manifest_doc))


@FUZZ
@given(data=st.data())
def test_fuzz_manifest(manifest_doc, data):
    doc = data.draw(mutated_json(manifest_doc))
    try:
        manifest = Manifest.from_dict(doc)
    except Exception as exc:
        refused_with(exc, BundleFormatError)
        return
    check_usable(manifest)


# --- zip bundles, through `edgekd-runtime info` ----------------------------------------------------------


def _bad_crc_zip(members, path):
    """A zip whose manifest.json member was altered after its CRC was recorded (stored, so the bytes stay readable)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    raw = bytearray(open(path, "rb").read())
    at = raw.find(b'"producer"')  # a key only manifest.json holds
    raw[at + 1] ^= 0x20
    with open(path, "wb") as handle:
        handle.write(raw)
    return path


def test_zip_bundle_with_a_bad_crc_member_is_refused(valid_bundle, tmp_path):
    path = _bad_crc_zip(folder_members(valid_bundle[0]), str(tmp_path / "crc.zip"))
    with pytest.raises(RuntimeFailure) as info:
        Bundle.open(path).close()
    assert info.value.exit_code == 2 and "CRC" in str(info.value) and "manifest.json" in str(info.value)


@FUZZ
@given(data=st.data())
@example(data=None)
def test_fuzz_zip_bundle_manifest(valid_bundle, tmp_path_factory, data):
    folder, _, doc = valid_bundle
    members = folder_members(folder)
    if data is None:
        members["manifest.json"] = dumps(_files_as_list(doc))
    else:
        members["manifest.json"] = dumps(data.draw(mutated_json(doc)))
    path = zip_with(members, str(tmp_path_factory.mktemp("zm") / "b.zip"))
    assert runtime_cli_code("info", path) in RUNTIME_EXIT_CODES


@FUZZ
@given(data=st.data())
def test_fuzz_zip_bundle_bytes(valid_bundle, tmp_path_factory, data):
    with open(valid_bundle[1], "rb") as handle:
        raw = data.draw(mutated_bytes(handle.read()))
    path = str(tmp_path_factory.mktemp("zb") / "b.zip")
    with open(path, "wb") as handle:
        handle.write(raw)
    assert runtime_cli_code("info", path) in RUNTIME_EXIT_CODES


def _wrong_directory_offset(archive):
    """A zip whose end record says the central directory starts 1 MiB later than it does."""
    import struct

    raw = bytearray(open(archive, "rb").read())
    end = raw.rfind(b"PK\x05\x06")
    (offset,) = struct.unpack("<I", raw[end + 16 : end + 20])
    raw[end + 16 : end + 20] = struct.pack("<I", offset + (1 << 20))
    return bytes(raw)


def test_zip_bundle_with_a_wrong_directory_offset_is_refused(valid_bundle, tmp_path):
    path = _write(tmp_path / "offset.zip", _wrong_directory_offset(valid_bundle[1]))
    assert runtime_cli_code("info", path) == 2


# --- signatures: a signed bundle's signature.json, and signing a damaged zip ------------------------------------


@pytest.fixture(scope="module")
def signed_bundle(tmp_path_factory, valid_bundle):
    from edgekd_runtime.signing import generate_keypair, sign_bundle

    root = tmp_path_factory.mktemp("signed")
    private, public = generate_keypair(str(root / "host.key"))
    folder = str(root / "bundle")
    shutil.copytree(valid_bundle[0], folder)
    sign_bundle(folder, private)
    with open(os.path.join(folder, "signature.json"), "rb") as handle:
        return folder, private, public, handle.read()


@FUZZ
@given(data=st.data())
def test_fuzz_signature(tmp_path_factory, signed_bundle, data):
    folder, _, public, good = signed_bundle
    doc = json.loads(good)
    raw = dumps(data.draw(mutated_json(doc))) if data.draw(st.booleans()) else data.draw(mutated_bytes(good))
    copy_ = str(tmp_path_factory.mktemp("s") / "b")
    shutil.copytree(folder, copy_)
    _write(os.path.join(copy_, "signature.json"), raw)
    try:
        Bundle.open(copy_, public_key=public, require_signature=True).close()
    except Exception as exc:
        refused_with(exc, RuntimeFailure)
        assert exc.exit_code == 3, exc
        return
    # Accepted only if the signature itself still verifies the unchanged manifest.
    assert json.loads(raw)["signature"] == doc["signature"]


@FUZZ
@given(data=st.data())
def test_fuzz_sign_a_damaged_zip(tmp_path_factory, signed_bundle, valid_bundle, data):
    from edgekd_runtime.signing import sign_bundle

    with open(valid_bundle[1], "rb") as handle:
        raw = data.draw(mutated_bytes(handle.read()))
    path = _write(tmp_path_factory.mktemp("sz") / "b.zip", raw)
    try:
        sign_bundle(path, signed_bundle[1])
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno == errno.EINVAL:
            raise AssertionError("signing.py lets zipfile's EINVAL through") from exc
        refused_with(exc, RuntimeFailure)


def test_signing_a_zip_with_a_bad_crc_is_refused(signed_bundle, valid_bundle, tmp_path):
    from edgekd_runtime.errors import BadInputError
    from edgekd_runtime.signing import sign_bundle

    path = _bad_crc_zip(folder_members(valid_bundle[0]), str(tmp_path / "crc.zip"))
    with pytest.raises(BadInputError, match="damaged or unreadable .zip: Bad CRC-32"):
        sign_bundle(path, signed_bundle[1])


# --- the drift reference -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drift_doc():
    return json.loads(reference_json(*eval_arrays()))


def drift_check(folder_root, doc_bytes):
    """What `edgekd-runtime monitor` does with a bundle's reference: read it, then compare field data with it."""
    members = bundle_members()
    members[DRIFT_NAME] = doc_bytes
    shutil.rmtree(folder_root, ignore_errors=True)
    folder = write_bundle(folder_root, valid_manifest(), members)
    x, scores = eval_arrays()
    with Bundle.open(folder) as bundle:
        reference = bundle.load_drift_reference()
        return drift_report(reference, x, scores)


def test_bad_drift_reference_is_refused(tmp_path, drift_doc):
    bad = copy.deepcopy(drift_doc)
    del bad["features"][0]["edges"]
    with pytest.raises(RuntimeFailure) as info:
        drift_check(str(tmp_path / "b"), dumps(bad))
    assert info.value.exit_code == 2 and DRIFT_NAME in str(info.value)


@FUZZ
@given(data=st.data())
def test_fuzz_drift_reference(tmp_path_factory, drift_doc, data):
    raw = dumps(data.draw(mutated_json(drift_doc))) if data.draw(st.booleans()) else data.draw(mutated_bytes(dumps(drift_doc)))
    try:
        result = drift_check(str(tmp_path_factory.mktemp("d") / "b"), raw)
    except Exception as exc:
        refused_with(exc, RuntimeFailure)
        return
    assert result["summary"]["status"] in ("stable", "moderate", "shift", "insufficient data")


# --- the report spool, sent to a collector that validates with the host's schema -----------------------------


class _Collector(BaseHTTPRequestHandler):
    def do_POST(self):
        from edgekd.reports.schema import ReportError, parse_report

        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            report = parse_report(body)
        except ReportError as exc:
            status, answer = exc.status, {"detail": str(exc)}
        else:
            status, answer = 201, {"stored": True, "report_id": report["report_id"]}
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def collector():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def valid_report():
    body = {
        "bundle": "fuzz",
        "artifact": "model_int8.tflite",
        "format": "tflite-int8",
        "runtime": {"engine": "litert", "threads": 2},
        "latency": {"p50_ms": 1.0, "p90_ms": 1.2, "p99_ms": 1.5, "mean_ms": 1.1, "stdev_ms": 0.1, "runs": 10, "throughput_per_s": 900.0},
        "accuracy": 0.9,
        "host_expected": {"profile": "android-midrange", "accuracy": 0.91, "latency_ms_estimate": 1.3},
    }
    report = runtime_report.make_report(body, "profile", device="cam-07")
    report["report_id"] = "0123456789abcdef0123456789abcdef"
    return report


def test_spool_refuses_a_report_that_is_not_an_object(tmp_path, collector):
    spool = str(tmp_path / "spool")
    os.makedirs(spool)
    for i, raw in enumerate([b"[1, 2]", b'{"report_id": "a\\nb", "schema": "edgekd.report"}', b'{"x": NaN}', b"\xff\xfe"]):
        with open(os.path.join(spool, "%017.6f-x%d.json" % (i, i)), "wb") as handle:
            handle.write(raw)
    result = runtime_report.flush_spool(collector, "t", spool, timeout=5)
    assert result["sent"] == [] and result["error"] is None and len(result["rejected"]) == 4
    assert len(os.listdir(os.path.join(spool, "rejected"))) == 4
    assert [n for n in os.listdir(spool) if n.endswith(".json")] == []
    with pytest.raises(RuntimeFailure, match="not a JSON object"):
        runtime_report.read_report(_write(tmp_path / "r.json", b"[1]"))


def _write(path, data):
    with open(str(path), "wb") as handle:
        handle.write(data)
    return str(path)


@FUZZ
@given(data=st.data())
def test_fuzz_spool(tmp_path_factory, collector, data):
    good = valid_report()
    raw = dumps(data.draw(mutated_json(good))) if data.draw(st.booleans()) else data.draw(mutated_bytes(dumps(good)))
    spool = str(tmp_path_factory.mktemp("spool"))
    with open(os.path.join(spool, "%017.6f-fuzz.json" % 1.0), "wb") as handle:
        handle.write(raw)
    result = runtime_report.flush_spool(collector, "t", spool, timeout=5)
    assert result["error"] is None, result
    assert len(result["sent"]) + len(result["rejected"]) == 1, result
    assert [n for n in os.listdir(spool) if n.endswith(".json")] == []


# --- the collector's report schema ----------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_fuzz_collector_schema(data):
    from edgekd.reports.schema import ReportError, parse_report

    good = valid_report()
    raw = dumps(data.draw(mutated_json(good))) if data.draw(st.booleans()) else data.draw(mutated_bytes(dumps(good)))
    try:
        report = parse_report(raw)
    except Exception as exc:
        refused_with(exc, ReportError)
        assert exc.status in (400, 413, 422)
        return
    assert isinstance(report, dict) and report["kind"] in ("profile", "monitor")
    # What the collector stored must go back out as JSON (the store and `reports show` serialise it).
    json.dumps(report, allow_nan=False)


# --- the host's device profile YAML ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def profile_doc():
    from edgekd.profiles import PROFILE_DIR

    with open(str(PROFILE_DIR / "raspberry-pi-4.yaml")) as handle:
        return yaml.safe_load(handle)


def _yaml_text(doc):
    # A mutated document may hold NaN/inf or odd keys; YAML writes them all.
    return yaml.safe_dump(doc, sort_keys=False).encode("utf-8")


@FUZZ
@given(data=st.data())
def test_fuzz_profile_yaml(tmp_path_factory, profile_doc, data):
    from edgekd.profiles import load_profile

    raw = _yaml_text(data.draw(mutated_json(profile_doc))) if data.draw(st.booleans()) else data.draw(mutated_bytes(_yaml_text(profile_doc)))
    path = tmp_path_factory.mktemp("p") / "device.yaml"
    path.write_bytes(raw)
    try:
        profile = load_profile(str(path))
    except Exception as exc:
        refused_with(exc, ProfileError)
        return
    latency = profile.estimate_latency_ms(1e6, activation_elems=1e4)
    assert math.isfinite(latency) and latency >= 0


def test_profile_that_is_not_utf8_is_refused(tmp_path):
    from edgekd.profiles import load_profile

    path = tmp_path / "bad.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ProfileError, match="not UTF-8"):
        load_profile(str(path))


# --- the host's .npz reader -------------------------------------------------------------------------------------


def _npz_bytes(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _valid_npz():
    x, scores = eval_arrays()
    return {"x": x.astype(np.uint8), "y": scores.argmax(axis=1), "class_names": np.array(LABELS)}


odd_arrays = st.sampled_from([
    np.zeros((0,), np.float32), np.zeros((4,), np.float32), np.array(3.0), np.array("text"), np.array([b"\x00"]),
    np.zeros((40, 8, 8), np.complex64), np.zeros((40, 8, 8, 1), np.bool_), np.full((40, 8, 8, 1), np.nan, np.float32),
    np.array([1.5] * 40), np.array([-1] * 40), np.array([7] * 40), np.zeros((40, 2)), np.array(["a", "b"]),
    np.array([["a"]]), np.zeros((40, 0), np.float32), np.arange(40, dtype=np.uint64) * (2**62), np.array(LABELS[:1]),
    np.array([np.datetime64("2026-01-01")] * 40), np.zeros((40, 8, 8, 1), np.float16),
])


@st.composite
def npz_files(draw):
    arrays = _valid_npz()
    if draw(st.booleans()):
        for _ in range(draw(st.integers(1, 3))):
            key = draw(st.sampled_from(["x", "y", "class_names", "extra"]))
            if draw(st.integers(0, 3)) == 0:
                arrays.pop(key, None)
            else:
                arrays[key] = draw(odd_arrays)
        return _npz_bytes(arrays)
    return draw(mutated_bytes(_npz_bytes(arrays)))


def check_dataset(ds, labeled=True):
    assert ds.x.ndim >= 2 and ds.x.dtype.kind in "fiu" and len(ds) > 0
    if labeled:
        assert ds.y.dtype == np.int64 and ds.y.shape == (len(ds),) and ds.y.min() >= 0
        if ds.class_names:
            assert ds.y.max() < len(ds.class_names)
    assert ds.num_classes >= 0
    ds.fingerprint()


@FUZZ
@given(raw=npz_files(), labeled=st.booleans())
def test_fuzz_npz(tmp_path_factory, raw, labeled):
    from edgekd.data import load_dataset

    path = tmp_path_factory.mktemp("n") / "data.npz"
    path.write_bytes(raw)
    try:
        ds = load_dataset(str(path), labeled=labeled)
    except Exception as exc:
        refused_with(exc, DataError)
        return
    check_dataset(ds, labeled)


_X = np.zeros((6, 8, 8, 1), np.uint8)
_Y = np.array([0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("arrays,needle", [
    ({"x": _X, "y": np.eye(3)[_Y]}, "like one-hot rows"),
    ({"x": _X, "y": _Y + 0.5}, "fractional values"),
    ({"x": _X, "y": _Y - 1}, "not class indices 0..C-1"),
    ({"x": _X, "y": _Y.astype(str)}, "not class indices"),
    ({"x": _X, "y": _Y, "class_names": np.array(["a", "b"])}, "label 2 has no name"),
    ({"x": _X, "y": _Y, "class_names": np.array("abc")}, "class_names is a"),
    ({"x": _X.astype(str), "y": _Y}, "not numbers"),
    ({"x": np.zeros(6, np.float32), "y": _Y}, "without a sample axis"),
    ({"x": np.zeros((6, 0), np.float32), "y": _Y}, "each sample is empty"),
])
def test_npz_named_bad_inputs(tmp_path, arrays, needle):
    from edgekd.data import load_dataset

    path = tmp_path / "d.npz"
    path.write_bytes(_npz_bytes(arrays))
    with pytest.raises(DataError, match=needle):
        load_dataset(str(path))


def test_npz_that_holds_one_bare_array_is_refused(tmp_path):
    from edgekd.data import load_dataset

    path = tmp_path / "d.npz"
    with open(str(path), "wb") as handle:
        np.save(handle, _X)
    with pytest.raises(DataError, match="a single array"):
        load_dataset(str(path))


def test_npz_with_a_bad_crc_member_is_refused(tmp_path):
    from edgekd.data import load_dataset

    path = tmp_path / "crc.npz"
    with zipfile.ZipFile(str(path), "w", zipfile.ZIP_STORED) as zf:
        for name, array in _valid_npz().items():
            buf = io.BytesIO()
            np.save(buf, array)
            zf.writestr(name + ".npy", buf.getvalue())
    raw = bytearray(path.read_bytes())
    raw[raw.find(b"NUMPY") + 200] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="crc.npz"):
        load_dataset(str(path))


# --- the host's image-folder reader -------------------------------------------------------------------------------


def _png(mode, size, seed):
    from PIL import Image

    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4, "1": 1, "P": 1, "I;16": 1, "I": 1, "F": 1}[mode]
    arr = rng.integers(0, 255, size=(size[1], size[0], channels)).astype(np.uint8)
    img = Image.fromarray(arr[..., 0] if channels == 1 else arr, "L" if channels == 1 else ("RGB" if channels == 3 else "RGBA"))
    if mode not in ("L", "RGB", "RGBA"):
        img = img.convert(mode)
    buf = io.BytesIO()
    # PNG cannot hold 32-bit integer or float pixels; a TIFF under a .png name is what a camera export might leave.
    img.save(buf, format="TIFF" if mode in ("I", "F") else "PNG")
    return buf.getvalue()


@st.composite
def image_folders(draw):
    """{relative path: bytes or None (a folder)} for a two-class folder, mutated."""
    files = {}
    for c in ("cat", "dog"):
        files[c] = None
        for i in range(2):
            files["%s/%d.png" % (c, i)] = _png("L", (8, 8), hash((c, i)) & 0xFFFF)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["bytes", "mode", "size", "empty-class", "stray", "drop"]))
        images = sorted(k for k, v in files.items() if v is not None)
        if op == "bytes" and images:
            key = draw(st.sampled_from(images))
            files[key] = draw(mutated_bytes(files[key]))
        elif op == "mode" and images:
            files[draw(st.sampled_from(images))] = _png(draw(st.sampled_from(["RGB", "RGBA", "1", "P", "I;16", "I", "F"])), (8, 8), 1)
        elif op == "size" and images:
            files[draw(st.sampled_from(images))] = _png("L", (draw(st.integers(1, 12)), draw(st.integers(1, 12))), 2)
        elif op == "empty-class":
            files["bird"] = None
        elif op == "stray":
            files[draw(st.sampled_from(["notes.txt", "cat/readme.png", "dog/x.jpg", "cat/sub.png/"]))] = draw(st.binary(max_size=32))
        elif op == "drop" and images:
            del files[draw(st.sampled_from(images))]
    return files


@FUZZ
@given(files=image_folders())
def test_fuzz_image_folder(tmp_path_factory, files):
    from edgekd.data import load_dataset

    root = tmp_path_factory.mktemp("img") / "data"
    root.mkdir()
    for name, raw in sorted(files.items()):
        target = root / name.rstrip("/")
        if raw is None or name.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(raw)
    try:
        ds = load_dataset(str(root))
    except Exception as exc:
        refused_with(exc, DataError)
        return
    check_dataset(ds)


# --- pycuda installed on a machine without a GPU -------------------------------------------------------------------

_FAKE_PYCUDA = {
    "__init__.py": "",
    "_driver.py": "class Error(Exception):\n    pass\n\n\nclass RuntimeError(Error):\n    pass\n",
    # What the real pycuda.autoinit does first: cuda.init(), which raises when the driver finds no device.
    "driver.py": "from ._driver import *  # noqa\n\n\ndef init():\n    raise RuntimeError('cuInit failed: no CUDA-capable device is detected')\n",
    "autoinit.py": "import pycuda.driver as cuda\n\ncuda.init()\n",
}


@pytest.fixture
def pycuda_without_gpu(tmp_path, monkeypatch):
    """A pycuda whose autoinit raises as the real one does on a machine without a GPU, and a TensorRT that imports."""
    import types

    package = tmp_path / "fake" / "pycuda"
    package.mkdir(parents=True)
    for name, text in _FAKE_PYCUDA.items():
        (package / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path / "fake"))
    tensorrt = types.ModuleType("tensorrt")
    tensorrt.__version__ = "10.0.0"
    monkeypatch.setitem(sys.modules, "tensorrt", tensorrt)
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name == "pycuda" or name.startswith("pycuda."):
            del sys.modules[name]


def test_pycuda_without_a_gpu_is_engine_unavailable(pycuda_without_gpu, valid_bundle, tmp_path):
    from edgekd_runtime.backends import load_backend
    from edgekd_runtime.errors import EngineUnavailableError

    folder = valid_bundle[0]
    art = Manifest.from_dict(valid_bundle[2]).artifact("onnx")
    with pytest.raises(EngineUnavailableError, match="no usable CUDA GPU.*cuInit failed") as info:
        load_backend("tensorrt", os.path.join(folder, "model.onnx"), art)
    assert info.value.exit_code == 4 and "--engine" in str(info.value)
    x = tmp_path / "x.npy"
    np.save(str(x), np.zeros((2, 8, 8, 1), np.float32))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = runtime_cli.main(["run", folder, "--input", str(x), "--engine", "tensorrt"])
    assert code == 4, err.getvalue()
    assert err.getvalue().count("\n") == 1 and "no usable CUDA GPU" in err.getvalue()
