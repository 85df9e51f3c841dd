"""Reading and writing bundles: a folder (or a .zip of one) with manifest.json, model files and eval.npz.

Writing lives here too, so the host writes exactly the layout the device reads.
"""

import errno
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from typing import Dict, Optional, Union

from .errors import BadInputError, BundleFormatError, IntegrityError
from .manifest import EVAL_NAME, MANIFEST_NAME, Manifest, sha256_file

# An archive member larger than this is refused: a bundle for an edge device has no business being bigger.
MAX_MEMBER_BYTES = 2 << 30


class Bundle(object):
    """A verified bundle on disk.

    >>> bundle = Bundle.open("out/demo/phone")          # doctest: +SKIP
    >>> bundle.manifest.primary().format                 # doctest: +SKIP
    'tflite-int8'
    """

    def __init__(self, root: str, manifest: Manifest, _tmp: Optional[str] = None):
        self.root = root
        self.manifest = manifest
        self._tmp = _tmp
        # 'verified', 'unsigned' or 'signed, not checked' (see signing.verify_signature).
        self.signature = "unsigned"
        # Files hashed against the manifest by this object: checked_path hashes the others before handing them out.
        self._hashed = set()

    @classmethod
    def open(cls, path: str, verify: bool = True, public_key: Optional[str] = None, require_signature: bool = False) -> "Bundle":
        """Open and verify a bundle. With ``public_key`` its ed25519 signature is checked too (before the
        manifest is trusted); ``require_signature`` refuses an unsigned one."""
        if not os.path.exists(path):
            raise BadInputError("bundle not found: %s" % path, "pass the folder or .zip written by `edgekd build`")
        tmp = None
        root = path
        if os.path.isfile(path):
            if not zipfile.is_zipfile(path):
                raise BundleFormatError("%s is neither a bundle folder nor a .zip archive" % path)
            tmp = tempfile.mkdtemp(prefix="edgekd-bundle-")
            root = tmp
        try:
            if tmp:
                _extract(path, tmp)
            manifest_path = os.path.join(root, MANIFEST_NAME)
            if not os.path.isfile(manifest_path):
                raise BundleFormatError("%s has no %s" % (path, MANIFEST_NAME), "is this an edgekd bundle?")
            signature = "unsigned"
            if public_key or require_signature or os.path.isfile(os.path.join(root, "signature.json")):
                from .signing import verify_signature

                signature = verify_signature(root, public_key, require=require_signature)
            try:
                with open(manifest_path, "r") as handle:
                    data = json.load(handle)
            except ValueError as exc:
                raise BundleFormatError("%s is not valid JSON: %s" % (manifest_path, exc))
            bundle = cls(root, Manifest.from_dict(data), tmp)
            bundle.signature = signature
            if verify:
                bundle.verify()
            return bundle
        except BaseException:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
            raise

    def path(self, name: str) -> str:
        """Where ``name`` lies in the bundle, unchecked: for a file the runtime reads, use ``checked_path``."""
        return os.path.join(self.root, name)

    def verify(self) -> None:
        """Check every file against the manifest's sha256 and every artifact's files against the manifest's list.

        Raises BundleFormatError for a ``files`` entry that lies outside the bundle (``..``, an absolute path, a
        link pointing out) and IntegrityError naming the first file that is missing, differs, or that an artifact
        needs but ``files`` does not list.
        """
        for name in sorted(self.manifest.files):
            self._inside(name)
        for name in sorted(self.manifest.files):
            self._hash(name)
        for art in self.manifest.artifacts:
            for name in self.artifact_files(art):
                self._listed(name)

    def checked_path(self, name: str) -> str:
        """The path of bundle file ``name`` once it is proven to be the file the manifest lists: inside the
        bundle, listed in ``files``, and matching its sha256 (hashed here unless ``verify`` already did).
        A folder (a CoreML .mlpackage) is checked file by file, and every file in it must be listed."""
        full = self._inside(name)
        if os.path.isdir(full) and name not in self.manifest.files:
            members = self._folder_members(name)
            for member in members:
                self._listed(member)
                self._hash(member)
            return full
        self._listed(name)
        self._hash(name)
        return full

    def artifact_files(self, art) -> list:
        """The bundle files the runtime loads to run ``art``: its model (each file of a model folder) and, for
        TensorRT, its calibration data."""
        names = [art.path]
        full = self._inside(art.path)
        if art.path not in self.manifest.files and os.path.isdir(full):
            names = self._folder_members(art.path)
        calibration = (art.settings or {}).get("calibration_data")
        if calibration:
            names.append(os.path.join(os.path.dirname(art.path), str(calibration)).replace(os.sep, "/"))
        return names

    def _folder_members(self, name):
        full = self._inside(name)
        members = []
        for folder, dirs, files in os.walk(full):
            for entry in sorted(dirs + files):
                path = os.path.join(folder, entry)
                if os.path.islink(path) or os.path.isfile(path):
                    members.append(os.path.relpath(path, self.root).replace(os.sep, "/"))
        if not members:
            raise IntegrityError("artifact folder %s holds no files" % name, "copy the whole bundle folder again")
        return sorted(members)

    def _inside(self, name):
        """The real path of ``name``, refusing one that lies outside the bundle root."""
        parts = name.replace("\\", "/").split("/")
        if not name or os.path.isabs(name) or name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise BundleFormatError("manifest.json names %r, a path outside the bundle; refusing it" % name, "bundle files are plain relative names")
        root = os.path.realpath(self.root)
        full = os.path.realpath(os.path.join(root, name))
        if not full.startswith(root + os.sep):
            raise BundleFormatError("bundle file %r is a link to %s, outside the bundle; refusing it" % (name, full), "copy the bundle without links")
        return full

    def _listed(self, name):
        if name not in self.manifest.files:
            raise IntegrityError(
                "bundle file %s is not listed in manifest.json's files, so its sha256 cannot be checked; refusing it" % name,
                "rebuild the bundle with edgekd, which lists every file",
            )

    def _hash(self, name):
        if name in self._hashed:
            return
        full = self._inside(name)
        expected = str(self.manifest.files[name])
        if not os.path.isfile(full):
            raise IntegrityError("bundle file missing: %s" % name, "copy the whole bundle folder again")
        actual = sha256_file(full)
        if actual != expected:
            raise IntegrityError(
                "bundle file %s does not match its sha256 in manifest.json (expected %s..., found %s...)"
                % (name, expected[:12], actual[:12]),
                "the file was altered or damaged in transfer; copy the bundle again",
            )
        self._hashed.add(name)

    def load_eval(self):
        """The bundled eval set: (x, y, host_outputs or None)."""
        import numpy as np

        if EVAL_NAME not in self.manifest.files:
            raise BadInputError("the bundle has no eval set (%s)" % EVAL_NAME, "rebuild it with an --eval data set")
        full = self.checked_path(EVAL_NAME)
        try:
            with np.load(full, allow_pickle=False) as data:
                x = data["x"]
                y = data["y"] if "y" in data.files else None
                ref = data["host_outputs"] if "host_outputs" in data.files else None
        except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise BundleFormatError("%s is not a readable eval set: %s" % (EVAL_NAME, _first_line(exc)), "it needs an array x (and y, host_outputs)")
        return x, y, ref

    def load_drift_reference(self):
        """The host's reference statistics for drift checks (a dict), or None for a bundle made without them."""
        from .drift import DRIFT_NAME

        if DRIFT_NAME not in self.manifest.files:
            return None
        from .drift import check_reference

        full = self.checked_path(DRIFT_NAME)
        try:
            with open(full, "r") as handle:
                reference = json.load(handle)
        except ValueError as exc:
            raise BundleFormatError("%s is not valid JSON: %s" % (DRIFT_NAME, exc))
        return check_reference(reference)

    def close(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _safe_extract(archive: str, dest: str) -> None:
    real_dest = os.path.realpath(dest)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = os.path.realpath(os.path.join(dest, info.filename))
            if not (target == real_dest or target.startswith(real_dest + os.sep)):
                raise BundleFormatError("archive member %r points outside the bundle; refusing it" % info.filename)
            mode = (info.external_attr >> 16) & 0o170000
            if mode == 0o120000:
                raise BundleFormatError("archive member %r is a symbolic link; refusing it" % info.filename)
            if info.file_size > MAX_MEMBER_BYTES:
                raise BundleFormatError("archive member %r is %d bytes, over the limit" % (info.filename, info.file_size))
        zf.extractall(dest)


def _extract(archive, dest):
    """``_safe_extract``, with a damaged archive (a bad CRC, a truncated member, an unknown compression or an
    encrypted member) refused as a bundle format error rather than raised as zipfile's own exception."""
    try:
        _safe_extract(archive, dest)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise BundleFormatError("%s is a damaged or unreadable .zip: %s" % (archive, _first_line(exc)), "copy the bundle again")
    except OSError as exc:
        # A central directory whose offsets point before the file's start makes zipfile seek to a negative
        # position (EINVAL); any other OSError here is this machine's (a full disk), said as such.
        if exc.errno == errno.EINVAL:
            raise BundleFormatError("%s is a damaged or unreadable .zip: %s" % (archive, _first_line(exc)), "copy the bundle again")
        raise BadInputError("could not unpack %s into %s: %s" % (archive, dest, _first_line(exc)))


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def write_bundle(
    dest: str,
    manifest: Manifest,
    files: Dict[str, Union[str, bytes]],
    make_zip: bool = False,
    force: bool = False,
) -> str:
    """Write a bundle folder atomically (a temporary sibling renamed into place).

    ``files`` maps names inside the bundle to a source path or to bytes. The manifest's
    ``files`` table is filled in here, from what was actually written.
    Returns the folder path (or the .zip path when ``make_zip``).
    """
    dest = os.path.abspath(dest)
    final = dest + ".zip" if make_zip and not dest.endswith(".zip") else dest
    if os.path.exists(final) and not force:
        raise BadInputError("%s already exists" % final, "choose another --out or pass --force to replace it")
    parent = os.path.dirname(final) or "."
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".bundle-", dir=parent)
    try:
        hashes = {}
        for name, src in sorted(files.items()):
            if name == MANIFEST_NAME or os.path.isabs(name) or ".." in name.split("/"):
                raise BadInputError("invalid bundle member name: %r" % name)
            target = os.path.join(staging, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if isinstance(src, bytes):
                with open(target, "wb") as handle:
                    handle.write(src)
            else:
                shutil.copyfile(src, target)
            hashes[name] = sha256_file(target)
        manifest.files = hashes
        with open(os.path.join(staging, MANIFEST_NAME), "w") as handle:
            handle.write(manifest.to_json())
        if make_zip:
            tmp_zip = staging + ".zip"
            with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as zf:
                for name in sorted(os.listdir(staging)):
                    _zip_tree(zf, staging, name)
            shutil.rmtree(staging)
            staging = tmp_zip
        if os.path.exists(final):
            _remove(final)
        os.replace(staging, final)
        return final
    except BaseException:
        _remove(staging)
        raise


def _zip_tree(zf, root, name):
    full = os.path.join(root, name)
    if os.path.isdir(full):
        for child in sorted(os.listdir(full)):
            _zip_tree(zf, root, name + "/" + child)
    else:
        zf.write(full, name)


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)
