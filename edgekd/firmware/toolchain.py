"""The tools the firmware needs, found or installed: arm-none-eabi-gcc (Debian ``gcc-arm-none-eabi``), newlib's
memcpy/memset (``libnewlib-arm-none-eabi``) and the emulator (``qemu-system-arm``).

``python -m edgekd.firmware.toolchain --install`` is the set-up step (``make mcu-tools``): it installs what is
missing with apt-get when running as root and otherwise prints the apt line for the user to run. It is
idempotent: with everything present it installs nothing.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import List, Optional

from ..errors import EdgekdError

PACKAGES = ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm")
APT_LINE = "apt-get install -y " + " ".join(PACKAGES)


class ToolMissingError(EdgekdError):
    """A compiler, library or emulator the firmware needs is not installed; the message names the package."""

    exit_code = 3


@dataclass(frozen=True)
class Tools:
    gcc: str
    size: str
    qemu: Optional[str]  # None when only building was asked for

    def qemu_version(self) -> str:
        """'qemu-system-arm 7.2.22', from the emulator's own --version."""
        out = subprocess.run([self.qemu, "--version"], capture_output=True, text=True, timeout=30).stdout
        match = re.search(r"version (\d+\.\d+(?:\.\d+)?)", out)
        return "qemu-system-arm " + (match.group(1) if match else "unknown")


def _install_hint(packages: List[str]) -> str:
    line = "apt-get install -y " + " ".join(packages)
    return f"install it: {line} (as root; otherwise sudo {line}), or run `make mcu-tools`"


def _has_newlib(gcc: str) -> bool:
    # gcc prints the bare name back when the library is not on its search path.
    out = subprocess.run([gcc, "-print-file-name=libc_nano.a"], capture_output=True, text=True, timeout=30).stdout.strip()
    return os.path.isabs(out) and os.path.exists(out)


def missing_packages(need_qemu: bool = True, path: Optional[str] = None) -> List[str]:
    """The Debian packages whose tools are not found (on ``path``, default $PATH)."""
    missing = []
    gcc = shutil.which("arm-none-eabi-gcc", path=path)
    if gcc is None or shutil.which("arm-none-eabi-size", path=path) is None:
        missing.append("gcc-arm-none-eabi")
    if gcc is None or not _has_newlib(gcc):
        missing.append("libnewlib-arm-none-eabi")
    if need_qemu and shutil.which("qemu-system-arm", path=path) is None:
        missing.append("qemu-system-arm")
    return missing


def find_tools(need_qemu: bool = True, path: Optional[str] = None) -> Tools:
    """The tools, or ToolMissingError naming each missing package and the line that installs it."""
    missing = missing_packages(need_qemu, path)
    if missing:
        what = {"gcc-arm-none-eabi": "arm-none-eabi-gcc", "libnewlib-arm-none-eabi": "newlib for arm-none-eabi", "qemu-system-arm": "qemu-system-arm"}
        names = ", ".join(f"{what[p]} (Debian package {p})" for p in missing)
        raise ToolMissingError(f"the firmware needs {names}, which is not installed", _install_hint(missing))
    return Tools(
        gcc=shutil.which("arm-none-eabi-gcc", path=path),
        size=shutil.which("arm-none-eabi-size", path=path),
        qemu=shutil.which("qemu-system-arm", path=path) if need_qemu else None,
    )


def install(run=subprocess.run, out=sys.stdout) -> int:
    """Install the missing packages (root only); 0 when all are present afterwards, else 1 with the apt line printed."""
    missing = missing_packages()
    if not missing:
        print("mcu-tools: arm-none-eabi-gcc, newlib and qemu-system-arm are installed", file=out)
        return 0
    line = "apt-get install -y " + " ".join(missing)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"mcu-tools: missing {', '.join(missing)}; run as root: {line}", file=out)
        return 1
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"mcu-tools: {line}", file=out)
    if run(["apt-get", "install", "-y", "-q", *missing], env=env).returncode != 0:
        # A fresh image may have no package lists yet.
        run(["apt-get", "update", "-q"], env=env)
        run(["apt-get", "install", "-y", "-q", *missing], env=env)
    still = missing_packages()
    if still:
        print(f"mcu-tools: still missing {', '.join(still)} after apt-get", file=out)
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["--install"]:
        print("usage: python -m edgekd.firmware.toolchain --install", file=sys.stderr)
        sys.exit(2)
    sys.exit(install())
