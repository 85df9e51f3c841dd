"""Trust: bundles signed on the host with ed25519, verified by the runtime; --require-signature refuses
unsigned and altered ones."""
import json
import os
import shutil
import zipfile

import pytest

from conftest import run_cli
from test_runtime_bundles import copy_bundle


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    proc = run_cli("edgekd", "bundle", "keygen", str(folder / "host.key"))
    assert proc.returncode == 0, proc.stderr
    assert oct(os.stat(folder / "host.key").st_mode & 0o777) == "0o600"
    from edgekd_runtime.signing import generate_keypair

    generate_keypair(str(folder / "other.key"))
    return folder


def test_signed_bundle_verifies_and_runs(tiny_bundle, tmp_path, keys):
    b = copy_bundle(tiny_bundle, tmp_path)
    proc = run_cli("edgekd", "bundle", "sign", str(b), "--key", str(keys / "host.key"))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((b / "signature.json").read_text())
    assert doc["algorithm"] == "ed25519" and len(doc["key_id"]) == 16
    proc = run_cli("edgekd-runtime", "profile", str(b), "--runs", "3", "--public-key", str(keys / "host.key.pub"), "--require-signature", "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "r.json").read_text())["signature"] == "verified"
    proc = run_cli("edgekd-runtime", "info", str(b))
    assert "signature  signed, not checked" in proc.stdout


def test_unsigned_bundle_is_refused_when_a_signature_is_required(tiny_bundle, keys):
    proc = run_cli("edgekd-runtime", "info", tiny_bundle["path"], "--public-key", str(keys / "host.key.pub"), "--require-signature")
    assert proc.returncode == 3 and "not signed" in proc.stderr
    proc = run_cli("edgekd-runtime", "info", tiny_bundle["path"], "--require-signature")
    assert proc.returncode == 2 and "needs --public-key" in proc.stderr
    # Without the requirement an unsigned bundle still runs, and says so.
    proc = run_cli("edgekd-runtime", "info", tiny_bundle["path"], "--public-key", str(keys / "host.key.pub"))
    assert proc.returncode == 0 and "signature  unsigned" in proc.stdout


def test_altered_manifest_or_wrong_key_is_refused(tiny_bundle, tmp_path, keys):
    from edgekd_runtime import Bundle
    from edgekd_runtime.errors import IntegrityError
    from edgekd_runtime.signing import sign_bundle

    b = copy_bundle(tiny_bundle, tmp_path)
    sign_bundle(str(b), str(keys / "host.key"))
    with pytest.raises(IntegrityError, match="signed by key"):
        Bundle.open(str(b), public_key=str(keys / "other.key.pub"), require_signature=True)
    # Re-hashing a swapped model into the manifest passes the sha256 check but not the signature.
    from edgekd_runtime.manifest import sha256_file
    from test_runtime_bundles import rewrite_manifest

    shutil.copyfile(b / "model_int8.tflite", b / "model_fp32.tflite")
    rewrite_manifest(b, lambda m: m["files"].__setitem__("model_fp32.tflite", sha256_file(str(b / "model_fp32.tflite"))))
    assert Bundle.open(str(b)).manifest.name == "tiny"  # consistent without the key: only the signature can tell
    proc = run_cli("edgekd-runtime", "info", str(b), "--public-key", str(keys / "host.key.pub"), "--require-signature")
    assert proc.returncode == 3 and "does not match its manifest.json" in proc.stderr
    (b / "signature.json").write_text("{}")
    proc = run_cli("edgekd-runtime", "info", str(b), "--public-key", str(keys / "host.key.pub"))
    assert proc.returncode == 3 and "malformed" in proc.stderr


def test_zip_bundle_signed_in_place(tiny_bundle, tmp_path, keys):
    from edgekd_runtime import Bundle
    from edgekd_runtime.signing import sign_bundle

    path = tmp_path / "tiny.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name in sorted(os.listdir(tiny_bundle["path"])):
            zf.write(os.path.join(tiny_bundle["path"], name), name)
    sign_bundle(str(path), str(keys / "other.key"))
    sign_bundle(str(path), str(keys / "host.key"))  # re-signing replaces, never duplicates, the signature
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist().count("signature.json") == 1
    with Bundle.open(str(path), public_key=str(keys / "host.key.pub"), require_signature=True) as bundle:
        assert bundle.signature == "verified"


def test_keygen_refuses_to_overwrite(keys):
    proc = run_cli("edgekd", "bundle", "keygen", str(keys / "host.key"))
    assert proc.returncode == 2 and "already exists" in proc.stderr
