"""C engine: the bundle's generated C library (edgekd's own int8 kernels, no interpreter) built as a shared object
with the system C compiler and called through ctypes.

The artifact is a folder of C sources whose every file the manifest hashes, so an edited file is refused before it
is compiled. The shared object is cached under the user's cache folder, keyed by the sha256 of the sources, the
compiler and the flags, and moved into place with an atomic rename (two processes building at once both succeed).

Public API: ``find_compiler``, ``build_shared`` (the host verifies its C artifacts with them).
"""

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

import numpy as np

from ..errors import EngineUnavailableError, ModelError

__all__ = ["Backend", "build_shared", "find_compiler", "usable"]

FLAGS = ["-std=c99", "-O2", "-shared", "-fPIC"]
INSTALL_HINT = "install a C compiler: apt-get install gcc (Debian/Ubuntu: build-essential), or set CC"
DEFAULT_NAME = "edgekd_model"


def find_compiler():
    """The C compiler: $CC if set, else cc, gcc or clang on PATH; None when there is none."""
    env = os.environ.get("CC")
    if env:
        return shutil.which(env) or (env if os.path.isfile(env) else None)
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


def usable():
    """(ok, why): the engine needs a C compiler, not a Python package."""
    if find_compiler() is None:
        return False, "no C compiler (cc, gcc or clang) on PATH; " + INSTALL_HINT
    return True, ""


def cache_dir():
    base = os.environ.get("EDGEKD_CACHE") or os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "edgekd", "c-engine")


def _sources(folder):
    names = sorted(n for n in os.listdir(folder) if n.endswith(".c") or n.endswith(".h"))
    if not any(n.endswith(".c") for n in names):
        raise ModelError("no C sources in %s" % folder, "is this an edgekd C artifact (a folder of .c/.h files)?")
    return names


def build_shared(folder, compiler=None):
    """Compile every .c file of ``folder`` into a shared object (cached) and return its path.

    Raises EngineUnavailableError when there is no compiler, ModelError when the sources do not compile.
    """
    compiler = compiler or find_compiler()
    if compiler is None:
        raise EngineUnavailableError("the c engine needs a C compiler and found none on PATH", INSTALL_HINT)
    names = _sources(folder)
    digest = hashlib.sha256()
    digest.update(("%s\n%s\n" % (compiler, " ".join(FLAGS))).encode())
    for name in names:
        digest.update(name.encode() + b"\0")
        with open(os.path.join(folder, name), "rb") as handle:
            digest.update(hashlib.sha256(handle.read()).digest())
    target_dir = cache_dir()
    target = os.path.join(target_dir, digest.hexdigest()[:32] + ".so")
    if os.path.isfile(target):
        return target
    if not os.path.isdir(target_dir):
        try:
            os.makedirs(target_dir)
        except OSError:
            if not os.path.isdir(target_dir):
                raise
    fd, tmp = tempfile.mkstemp(suffix=".so.tmp", dir=target_dir)
    os.close(fd)
    try:
        cmd = [compiler] + FLAGS + ["-I", folder, "-o", tmp] + [os.path.join(folder, n) for n in names if n.endswith(".c")]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            text = proc.stderr.decode(errors="replace").strip().splitlines()
            raise ModelError("the C sources in %s do not compile: %s" % (folder, text[0][:300] if text else "exit %d" % proc.returncode),
                             "regenerate them with `edgekd convert STUDENT --to c`")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


class Backend(object):
    name = "c"

    def __init__(self, model_path, artifact=None, compiler=None, **_):
        if not os.path.isdir(model_path):
            raise ModelError("the c engine runs a folder of generated C sources, not %s" % model_path, "pass the bundle's C artifact (format c-int8)")
        settings = getattr(artifact, "settings", {}) or {}
        self.symbol = str(settings.get("name") or DEFAULT_NAME)
        self.settings = settings
        self.compiler = compiler or find_compiler()
        self.library_path = build_shared(model_path, self.compiler)
        try:
            self.lib = ctypes.CDLL(self.library_path)
            self._invoke = getattr(self.lib, self.symbol + "_invoke")
        except (OSError, AttributeError) as exc:
            raise ModelError("could not load the compiled C library %s: %s" % (self.library_path, exc), "delete it from %s and run again" % cache_dir())
        self._invoke.restype = ctypes.c_int
        self._invoke.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        out = getattr(artifact, "output", None)
        self.out_shape = tuple(int(v) for v in out.shape[1:]) if out is not None else None
        self.out_size = int(settings.get("output_size") or (int(np.prod(self.out_shape)) if self.out_shape else 0))
        self.in_size = int(settings.get("input_size") or 0)

    def _check(self, sample):
        if self.in_size and sample.size != self.in_size:
            raise ModelError("the C model takes %d int8 values per sample, got %d" % (self.in_size, sample.size))

    def invoke(self, x):
        x = np.ascontiguousarray(np.asarray(x), dtype=np.int8)
        out = np.zeros((x.shape[0], self.out_size), dtype=np.int8)
        for i in range(x.shape[0]):
            sample = np.ascontiguousarray(x[i])
            self._check(sample)
            rc = self._invoke(sample.ctypes.data, out[i].ctypes.data)
            if rc != 0:
                raise ModelError("the C model returned %d" % rc)
        return out.reshape((x.shape[0],) + self.out_shape) if self.out_shape else out

    def prepared_call(self, q):
        q = np.ascontiguousarray(np.asarray(q), dtype=np.int8)
        if q.shape[0] != 1:
            return lambda: self.invoke(q)
        self._check(q[0])
        out = np.zeros(self.out_size, dtype=np.int8)
        fn, src, dst = self._invoke, q.ctypes.data, out.ctypes.data
        return lambda: (fn(src, dst), out)[1]

    def describe(self):
        return {"engine": self.name, "compiler": os.path.basename(self.compiler or "?"), "flags": " ".join(FLAGS),
                "library": self.library_path, "arena_bytes": self.settings.get("arena_bytes"), "threads": 1}
