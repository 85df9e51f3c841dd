"""Shared fixtures: one small teacher and one phone bundle on digits, built once per test session."""
import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, cwd=None, env=None):
    """Run an installed console script, as a user would; returns CompletedProcess."""
    bindir = os.path.dirname(sys.executable)
    cmd = [os.path.join(bindir, args[0])] + list(args[1:])
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


@pytest.fixture(scope="session")
def digits_split():
    from edgekd.data import load_digits, split

    return split(load_digits(), 0.2, seed=0)


@pytest.fixture(scope="session")
def teacher_path(tmp_path_factory, digits_split):
    from edgekd.demo import train_teacher

    train, _ = digits_split
    model = train_teacher(train, epochs=15, progress=False)
    path = tmp_path_factory.mktemp("teacher") / "teacher.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def phone_build(tmp_path_factory, teacher_path, digits_split):
    from edgekd.pipeline import build

    train, test = digits_split
    out = tmp_path_factory.mktemp("bundles") / "phone"
    return build(teacher_path, train, test, "android-midrange", out, formats=["tflite-int8", "tflite-fp32"],
                 time_budget="400s", candidates=3, progress=False)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A digits bundle with LiteRT int8/fp32, ONNX and TFLite Micro artifacts, built in seconds (runtime tests)."""
    from test_runtime_bundles import build_tiny_bundle

    return build_tiny_bundle(str(tmp_path_factory.mktemp("tiny")))
