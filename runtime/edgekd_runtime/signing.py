"""ed25519 signatures over a bundle's manifest.

manifest.json lists every other file with its sha256 and the runtime checks them all, so signing the
manifest's exact bytes signs the whole bundle. The signature travels beside it as ``signature.json``
(not listed in the manifest: it is made after the manifest is final).

The host signs (``edgekd bundle sign``); the device verifies when given a public key, and with
``require=True`` refuses unsigned bundles. Both sides live here because the signature is part of the
bundle format, which is defined once, in the runtime. ``cryptography`` is imported only inside these
functions: a device that does not verify signatures never needs it.
"""

import base64
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from typing import Dict, Optional, Tuple

from .errors import BadInputError, EngineUnavailableError, IntegrityError
from .manifest import MANIFEST_NAME

SIGNATURE_NAME = "signature.json"
ALGORITHM = "ed25519"


def _crypto():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise EngineUnavailableError("the cryptography package is needed to sign or verify bundles", "pip install cryptography")
    return serialization, ed25519, InvalidSignature


def _unsupported():
    # A PEM of a key type this cryptography build cannot load (e.g. a DSA or X448 key) raises this, not ValueError.
    from cryptography.exceptions import UnsupportedAlgorithm

    return UnsupportedAlgorithm


def _read_key(path: str) -> bytes:
    if not os.path.isfile(path):
        raise BadInputError("key file not found: %s" % path)
    with open(path, "rb") as handle:
        return handle.read()


def load_private_key(path: str):
    serialization, ed25519, _ = _crypto()
    try:
        key = serialization.load_pem_private_key(_read_key(path), password=None)
    except (ValueError, TypeError, _unsupported()) as exc:
        raise BadInputError("%s is not an unencrypted PEM private key: %s" % (path, _first_line(exc)), "make one with `edgekd bundle keygen`")
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise BadInputError("%s is not an ed25519 key" % path, "make one with `edgekd bundle keygen`")
    return key


def load_public_key(path: str):
    serialization, ed25519, _ = _crypto()
    try:
        key = serialization.load_pem_public_key(_read_key(path))
    except (ValueError, TypeError, _unsupported()) as exc:
        raise BadInputError("%s is not a PEM public key: %s" % (path, _first_line(exc)), "pass the .pub file written by `edgekd bundle keygen`")
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise BadInputError("%s is not an ed25519 public key" % path)
    return key


def key_id(public_key) -> str:
    """First 16 hex digits of the sha256 of the raw public key: names the key without revealing anything."""
    serialization, _, _ = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keypair(private_path: str) -> Tuple[str, str]:
    """Write a new ed25519 private key (PEM, mode 0600) and its public key beside it as ``<path>.pub``."""
    serialization, ed25519, _ = _crypto()
    public_path = private_path + ".pub"
    for path in (private_path, public_path):
        if os.path.exists(path):
            raise BadInputError("%s already exists" % path, "refusing to overwrite a key; choose another path")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    parent = os.path.dirname(os.path.abspath(private_path))
    os.makedirs(parent, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    with open(public_path, "wb") as handle:
        handle.write(public_pem)
    return private_path, public_path


def signature_document(manifest_bytes: bytes, private_key) -> Dict[str, str]:
    return {
        "algorithm": ALGORITHM,
        "signed_file": MANIFEST_NAME,
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "key_id": key_id(private_key.public_key()),
        "signature": base64.b64encode(private_key.sign(manifest_bytes)).decode("ascii"),
    }


def sign_bundle(path: str, private_key_path: str) -> Dict[str, str]:
    """Sign a bundle folder or .zip in place (replacing an earlier signature); returns the signature document."""
    key = load_private_key(private_key_path)
    if os.path.isdir(path):
        manifest = os.path.join(path, MANIFEST_NAME)
        if not os.path.isfile(manifest):
            raise BadInputError("%s has no %s" % (path, MANIFEST_NAME), "is this an edgekd bundle?")
        with open(manifest, "rb") as handle:
            doc = signature_document(handle.read(), key)
        tmp = os.path.join(path, "." + SIGNATURE_NAME + ".tmp")
        with open(tmp, "w") as handle:
            json.dump(doc, handle, indent=2, sort_keys=True)
        os.replace(tmp, os.path.join(path, SIGNATURE_NAME))
        return doc
    if not (os.path.isfile(path) and zipfile.is_zipfile(path)):
        raise BadInputError("bundle not found: %s" % path, "pass the folder or .zip written by `edgekd build`")
    try:
        with zipfile.ZipFile(path) as zf:
            if MANIFEST_NAME not in zf.namelist():
                raise BadInputError("%s has no %s" % (path, MANIFEST_NAME), "is this an edgekd bundle?")
            doc = signature_document(zf.read(MANIFEST_NAME), key)
            # Rewrite rather than append: a zip cannot drop a member, and a stale signature must not linger.
            fd, tmp = tempfile.mkstemp(prefix=".signed-", suffix=".zip", dir=os.path.dirname(os.path.abspath(path)))
            os.close(fd)
            try:
                with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
                    for info in zf.infolist():
                        if info.filename != SIGNATURE_NAME:
                            out.writestr(info, zf.read(info.filename))
                    out.writestr(SIGNATURE_NAME, json.dumps(doc, indent=2, sort_keys=True))
            except BaseException:
                os.remove(tmp)
                raise
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        # What zipfile raises for a bad CRC, a truncated member, an unknown compression or an "encrypted" flag:
        # signing a damaged archive would vouch for damage.
        raise BadInputError("%s is a damaged or unreadable .zip: %s" % (path, _first_line(exc)), "copy the bundle again, or rebuild it")
    except OSError as exc:
        # zipfile seeks to the offsets the archive records: a damaged directory gives EINVAL; a read-only folder, EACCES.
        raise BadInputError("cannot read or rewrite %s: %s" % (path, _first_line(exc)), "check that it is an intact bundle .zip in a writable folder")
    shutil.move(tmp, path)
    return doc


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def verify_signature(root: str, public_key_path: Optional[str], require: bool = False) -> str:
    """Check ``root``'s signature; returns 'verified', 'unsigned' or 'signed, not checked'.

    Raises IntegrityError for a bad signature, and for an unsigned bundle when ``require``.
    """
    sig_path = os.path.join(root, SIGNATURE_NAME)
    if require and not public_key_path:
        raise BadInputError("--require-signature needs --public-key", "pass the .pub file of the key that signed the bundle")
    if not os.path.isfile(sig_path):
        if require:
            raise IntegrityError("the bundle is not signed and a signature is required", "sign it on the host with `edgekd bundle sign`")
        return "unsigned"
    if not public_key_path:
        return "signed, not checked"
    _, _, InvalidSignature = _crypto()
    key = load_public_key(public_key_path)
    try:
        with open(sig_path, "r") as handle:
            doc = json.load(handle)
        signature = base64.b64decode(doc["signature"], validate=True)
        algorithm = doc.get("algorithm")
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError("%s is malformed: %s" % (SIGNATURE_NAME, _first_line(exc)), "sign the bundle again with `edgekd bundle sign`")
    except RecursionError:
        raise IntegrityError("%s is malformed: nested too deeply" % SIGNATURE_NAME, "sign the bundle again with `edgekd bundle sign`")
    if algorithm != ALGORITHM:
        raise IntegrityError("signature algorithm %r is not %s" % (algorithm, ALGORITHM))
    with open(os.path.join(root, MANIFEST_NAME), "rb") as handle:
        manifest_bytes = handle.read()
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature:
        if doc.get("key_id") and doc.get("key_id") != key_id(key):
            raise IntegrityError("the bundle was signed by key %s, not by the given public key %s" % (doc.get("key_id"), key_id(key)))
        raise IntegrityError("the bundle's signature does not match its manifest.json", "the bundle was altered after signing")
    return "verified"
