"""Benchmarks take their data from --data-dir or EDGEKD_DATA, and say how to get it when it is missing."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.parametrize("script", ["do_no_harm.py", "mnist_build.py", "mnist_teacher.py"])
def test_missing_benchmark_data_is_one_clear_error(script, tmp_path):
    env = {**os.environ, "EDGEKD_DATA": str(tmp_path / "from-env")}
    for args in (["--data-dir", str(tmp_path / "nowhere")], []):  # the option, then the environment variable
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=300)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and "mnist_train.npz" in proc.stderr and "--data-dir" in proc.stderr
        assert ("nowhere" if args else "from-env") in proc.stderr
