"""An emulated Debian 12 arm64 userland with a venv holding edgekd-runtime and the engines' aarch64 wheels.

Used by benchmarks/arm64_check.py (the full ARM check) and tests/test_arm64.py (its short CI version).

    rootfs(kind="debootstrap")   # Debian 12 arm64 minbase, both debootstrap stages (dpkg configured under qemu)
    rootfs(kind="unpacked")      # the same packages, first stage only, the rest unpacked on the host: no
                                 # emulated dpkg, so minutes faster (what CI uses; the binaries are identical)
    venv(root, engines)          # /opt/edgekd in the rootfs: numpy + engines at the host's own versions
    run_in(root, argv)           # a command in the rootfs under qemu-aarch64 (binfmt_misc), via chroot

Everything is cached under .cache/arm64/ (gitignored), one folder per recipe hash, built under a temporary name
and renamed only when complete, so a half-built rootfs or venv is never reused. Needs root (chroot, binfmt_misc)
and the Debian packages debootstrap, qemu-user-static and binfmt-support.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("EDGEKD_ARM64_CACHE", REPO / ".cache" / "arm64"))
BINFMT = Path("/proc/sys/fs/binfmt_misc")
# Debian package -> the command it provides.
PACKAGES = {"debootstrap": "debootstrap", "qemu-user-static": "qemu-aarch64-static", "binfmt-support": "update-binfmts"}
# Debian 12 is what Raspberry Pi OS 64-bit (bookworm) is built on; Python 3.11 like the host.
RECIPE = {
    "suite": "bookworm",
    "arch": "arm64",
    "variant": "minbase",
    "include": ["python3", "python3-venv", "python3-pip"],
    "mirror": os.environ.get("EDGEKD_DEBIAN_MIRROR", "http://deb.debian.org/debian"),
}
KINDS = ("debootstrap", "unpacked")
# The engines at the host's versions, so host and ARM differ only in the machine.
ENGINES = {"litert": "ai-edge-litert", "onnxruntime": "onnxruntime"}
VENV = "/opt/edgekd"
MARK = ".edgekd-arm64.json"
# The newest glibc in Debian 12 is 2.36: every manylinux tag up to it runs there. pip does not expand a
# manylinux_2_X tag to the older ones, so they are listed.
PLATFORMS = ["manylinux_2_%d_aarch64" % v for v in range(36, 16, -1)] + ["manylinux2014_aarch64"]


class EmulatorMissing(RuntimeError):
    """The arm64 userland cannot run here; the message says why and what to do."""


def _key(doc) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]


def emulator_problem() -> str | None:
    """None when chroot into an arm64 rootfs can run here, else one line saying why not (after trying to fix it)."""
    if sys.platform != "linux":
        return "the arm64 userland needs Linux (binfmt_misc and chroot); this is %s" % sys.platform
    if os.geteuid() != 0:
        return "building and entering the arm64 rootfs needs root (debootstrap, chroot, binfmt_misc)"
    missing = [tool for tool in PACKAGES.values() if not shutil.which(tool)]
    if missing:
        return "%s not found: apt-get install %s (`make test` does it when run as root)" % (", ".join(missing), " ".join(PACKAGES))
    entry = BINFMT / "qemu-aarch64"
    if not entry.exists():
        if not (BINFMT / "register").exists():
            subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], capture_output=True)
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
    if not entry.exists():
        return ("qemu-aarch64 is not registered with binfmt_misc and could not be (mount -t binfmt_misc binfmt_misc %s; "
                "update-binfmts --enable qemu-aarch64)" % BINFMT)
    text = entry.read_text()
    if not text.startswith("enabled"):
        return "the qemu-aarch64 binfmt_misc entry is disabled: update-binfmts --enable qemu-aarch64"
    if "flags: " in text and "F" not in text.split("flags: ", 1)[1].split("\n", 1)[0]:
        # Without F the interpreter is looked up inside the chroot, where it is not.
        return "the qemu-aarch64 binfmt_misc entry lacks the F flag (Debian's qemu-user-static sets it): reinstall qemu-user-static"
    return None


def require_emulator() -> None:
    problem = emulator_problem()
    if problem:
        raise EmulatorMissing(problem)


@contextlib.contextmanager
def locked():
    """Held while building or using the cache: a check and a test running at once take turns."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def rootfs(kind: str = "debootstrap", log=print) -> Path:
    """The cached arm64 rootfs of ``kind`` (see the module doc), built now if missing; its path. Call it
    inside ``locked()``."""
    if kind not in KINDS:
        raise ValueError("kind must be one of %s, not %r" % (", ".join(KINDS), kind))
    require_emulator()
    recipe = dict(RECIPE, kind=kind)
    final = CACHE / ("rootfs-%s-%s" % (kind, _key(recipe)))
    if (final / MARK).exists():
        return final
    # Under the lock, a partial folder is what a killed build left: never reused, removed.
    for stale in CACHE.glob("*.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(str(final) + ".partial-%d" % os.getpid())
    debs = CACHE / "debs"
    debs.mkdir(exist_ok=True)
    cmd = ["debootstrap", "--arch=" + recipe["arch"], "--variant=" + recipe["variant"], "--include=" + ",".join(recipe["include"]),
           "--cache-dir=" + str(debs)]
    if kind == "unpacked":
        cmd.append("--foreign")
    cmd += [recipe["suite"], str(work), recipe["mirror"]]
    log("arm64: %s (a few minutes; cached in %s)" % (" ".join(cmd), final))
    _check(cmd, "debootstrap")
    if kind == "unpacked":
        _unpack_rest(work)
    (work / MARK).write_text(json.dumps(recipe, indent=2))
    os.rename(work, final)
    return final


def _unpack_rest(root: Path) -> None:
    """After debootstrap's first stage: unpack every downloaded package on the host (no maintainer scripts run)."""
    archives = sorted((root / "var" / "cache" / "apt" / "archives").glob("*.deb"))
    if not archives:
        raise EmulatorMissing("debootstrap --foreign left no packages in %s" % root)
    for deb in archives:
        # What the first stage unpacked stays, and so do its merged-/usr links (/lib -> usr/lib).
        with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as src:
            tar = subprocess.run(["tar", "--skip-old-files", "--keep-directory-symlink", "-xf", "-", "-C", str(root)],
                                 stdin=src.stdout, capture_output=True, text=True)
        if src.returncode or tar.returncode:
            raise EmulatorMissing("unpacking %s failed: %s" % (deb.name, tar.stderr.strip()[-200:]))
    # The first stage leaves /proc as a link to the host's path (for its fakechroot mode); the second would make it
    # a mount point, as here.
    proc = root / "proc"
    if proc.is_symlink():
        proc.unlink()
        proc.mkdir()
    # base-passwd's maintainer script would write these; Python's pwd module and pip read them.
    for name in ("passwd", "group"):
        target = root / "etc" / name
        if not target.exists():
            shutil.copyfile(root / "usr" / "share" / "base-passwd" / (name + ".master"), target)


def engine_requirements(engines) -> list:
    """``numpy==V`` and each engine's package pinned to the version installed on the host."""
    names = ["numpy"] + [ENGINES[e] for e in engines]
    return ["%s==%s" % (n, metadata.version(n)) for n in names]


def venv(root: Path, engines=("litert", "onnxruntime"), log=print) -> str:
    """The rootfs's venv with numpy and ``engines`` at the host's versions and edgekd-runtime from this checkout;
    its path inside the rootfs. Cached per requirement set; the runtime is reinstalled when its source changed."""
    reqs = engine_requirements(engines)
    home = root / VENV.lstrip("/")
    stamp = home / (".engines-" + _key({"reqs": reqs, "root": root.name}))
    runtime_stamp = home / ".runtime-source"
    wheel = _runtime_wheel(root)
    source = _runtime_source_key()
    if not stamp.exists():
        wheels = _engine_wheels(reqs, log)
        shutil.rmtree(home, ignore_errors=True)
        inbox = root / "opt" / "wheels"
        shutil.rmtree(inbox, ignore_errors=True)
        shutil.copytree(wheels, inbox)
        log("arm64: creating %s in the rootfs and installing %s and edgekd-runtime (under emulation)" % (VENV, ", ".join(reqs)))
        # Under emulation each pip run costs minutes, so there is one: the venv is made without ensurepip (itself
        # a pip run), Debian's own pip wheel installs everything, and nothing is byte-compiled ahead (Python
        # compiles what it imports, once).
        _check(chroot(root, ["python3", "-m", "venv", "--without-pip", VENV]), "python3 -m venv in the rootfs")
        _check(chroot(root, [VENV + "/bin/python3", _debian_pip(root), "install", "--quiet", "--no-compile", "--no-index",
                             "--find-links", "/opt/wheels", wheel] + reqs), "pip install in the rootfs")
        shutil.rmtree(inbox)
        stamp.write_text("\n".join(reqs) + "\n")
    elif not runtime_stamp.exists() or runtime_stamp.read_text() != source:
        log("arm64: reinstalling edgekd-runtime in the rootfs (its source changed)")
        _check(chroot(root, [VENV + "/bin/python3", _debian_pip(root), "install", "--quiet", "--no-compile", "--no-index",
                             "--no-deps", "--force-reinstall", wheel]), "pip install edgekd-runtime in the rootfs")
    runtime_stamp.write_text(source)
    return VENV


def _engine_wheels(reqs, log) -> Path:
    """The aarch64 wheels of ``reqs``, fetched by pip on the host (so the chroot needs no DNS or certificates);
    pip in the chroot installs them offline, the same files a Pi's pip would fetch from PyPI."""
    wheels = CACHE / ("wheels-" + _key(reqs))
    if not wheels.exists():
        part = Path(str(wheels) + ".partial-%d" % os.getpid())
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(part), "--only-binary=:all:",
               "--python-version", "3.11", "--implementation", "cp"]
        for platform in PLATFORMS:
            cmd += ["--platform", platform]
        log("arm64: downloading the aarch64 wheels of %s" % ", ".join(reqs))
        _check(cmd + reqs, "pip download")
        os.rename(part, wheels)
    return wheels


def _runtime_source_key() -> str:
    """A hash of the runtime's source: what decides whether the rootfs's copy is current."""
    digest = hashlib.sha256()
    base = REPO / "runtime"
    for path in sorted(base.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and not any(p.endswith(".egg-info") or p == "build" for p in path.relative_to(base).parts):
            digest.update(str(path.relative_to(base)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _debian_pip(root: Path) -> str:
    """Path inside the rootfs of Debian's pip wheel (python3-pip-whl), which runs as ``python pip.whl/pip``."""
    found = sorted((root / "usr" / "share" / "python-wheels").glob("pip-*.whl"))
    if not found:
        raise EmulatorMissing("no pip wheel in %s/usr/share/python-wheels: the rootfs lacks python3-pip-whl" % root)
    return "/usr/share/python-wheels/%s/pip" % found[-1].name


def _runtime_wheel(root: Path) -> str:
    """edgekd-runtime built as a wheel from this checkout on the host (pure Python), dropped into the rootfs;
    its path there."""
    drop = root / "opt" / "edgekd-runtime-wheel"
    shutil.rmtree(drop, ignore_errors=True)
    drop.mkdir(parents=True)
    _check([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(drop),
            str(REPO / "runtime")], "building the edgekd-runtime wheel")
    return "/opt/edgekd-runtime-wheel/" + next(drop.glob("edgekd_runtime-*.whl")).name


_NAMESPACE = []


def _private_mounts() -> bool:
    """Whether /proc can be mounted for the chroot in a private mount namespace (so it vanishes with the process
    and a cache clean-up can never walk into it)."""
    if not _NAMESPACE:
        ok = shutil.which("unshare") is not None and subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0
        _NAMESPACE.append(ok)
    return _NAMESPACE[0]


def chroot(root: Path, argv) -> list:
    """The command line that runs ``argv`` inside ``root``, environment reset to a plain login's, with /proc
    mounted when a private mount namespace is possible.

    Not /sys: under qemu-user the host's x86 CPU topology there, next to the x86 /proc/cpuinfo qemu 7.2 passes
    through, makes onnxruntime 1.32's cpuinfo crash (SIGSEGV while importing onnxruntime). Without /sys it logs
    "Error in cpuinfo" and carries on, as it does in a container without /sys; a real ARM board has neither issue."""
    env = ["HOME=/root", "PATH=%s/bin:/usr/local/bin:/usr/bin:/bin" % VENV, "LANG=C.UTF-8"]
    inner = ["chroot", str(root), "/usr/bin/env", "-i"] + env + list(argv)
    if not _private_mounts():
        return inner
    script = 'mount -t proc proc "$1/proc" && shift && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(root)] + inner


def run_in(root: Path, argv, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``argv`` in the rootfs under emulation; returns the CompletedProcess (text)."""
    return subprocess.run(chroot(root, argv), capture_output=True, text=True, timeout=timeout)


def machine(root: Path) -> str:
    """What the rootfs's Python reports as its machine (aarch64 when emulation works)."""
    proc = run_in(root, ["python3", "-c", "import platform; print(platform.machine())"], timeout=300)
    if proc.returncode:
        raise EmulatorMissing("python3 does not start in the arm64 rootfs: %s" % (proc.stderr.strip().splitlines() or ["?"])[-1])
    return proc.stdout.strip()


def _check(cmd, what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
        raise EmulatorMissing("%s failed (exit %d): %s" % (what, proc.returncode, " | ".join(tail)))


def install_tools(log=print) -> int:
    """`make test`'s set-up: apt-get installs the missing Debian packages when run as root, and binfmt_misc is
    registered; otherwise the reason is printed (tests/test_arm64.py then fails naming it). Exit status."""
    missing = [pkg for pkg, tool in PACKAGES.items() if not shutil.which(tool)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing
        if subprocess.run(install, env=env, capture_output=True).returncode:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
    problem = emulator_problem()
    if problem:
        log("arm64-tools: %s; tests/test_arm64.py will fail (EDGEKD_ALLOW_MISSING_TOOLS=1 skips it)" % problem)
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["--install"]:
        sys.exit("usage: python benchmarks/arm64_userland.py --install   (installs debootstrap, qemu-user-static, binfmt-support)")
    sys.exit(install_tools())
