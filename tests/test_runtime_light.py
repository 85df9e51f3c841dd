"""The runtime stays light and portable: valid Python 3.8, no TensorFlow, no host package, cryptography
only when verifying a signature."""
import ast
import os
import subprocess
import sys

import pytest

from conftest import ROOT

RUNTIME = os.path.join(ROOT, "runtime", "edgekd_runtime")
VERMIN = os.path.join(os.path.dirname(sys.executable), "vermin")
HEAVY = ("tensorflow", "tf_keras", "keras", "edgekd")


def _vermin(path):
    return subprocess.run([VERMIN, "-t=3.8-", "--no-tips", "--violations", path], capture_output=True, text=True, timeout=120)


def test_runtime_is_valid_python_38():
    proc = _vermin(RUNTIME)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_vermin_would_catch_newer_syntax(tmp_path):
    # The check above is only worth something if the tool really flags 3.9+ code.
    bad = tmp_path / "bad.py"
    bad.write_text("def f(a: dict, b: dict):\n    return (a | b, 'x'.removeprefix('y'))\n")
    assert _vermin(str(bad)).returncode != 0


def _module_level_imports(path):
    tree = ast.parse(open(path).read(), path)
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_no_module_level_import_of_heavy_packages():
    for folder, _, files in os.walk(RUNTIME):
        for name in files:
            if name.endswith(".py"):
                for mod in _module_level_imports(os.path.join(folder, name)):
                    assert mod.split(".")[0] not in HEAVY + ("cryptography",), (name, mod)


def test_profile_and_report_import_neither_tensorflow_nor_cryptography(tiny_bundle):
    code = (
        "import sys, edgekd_runtime.cli\n"
        "from edgekd_runtime import profile\n"
        "from edgekd_runtime.report import make_report\n"
        "for fmt in ('tflite-int8', 'onnx', 'tflm-int8'):\n"
        "    make_report(profile(sys.argv[1], runs=3, warmup=1, artifact=fmt))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'tf_keras', 'keras', 'edgekd', 'cryptography'}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, tiny_bundle["path"]], capture_output=True, text=True, timeout=120, cwd=str(os.path.dirname(ROOT)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
