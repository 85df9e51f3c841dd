"""MultiWorkerMirroredStrategy through TF_CONFIG: two worker processes on 127.0.0.1 end with identical weights."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

WORKER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from edgekd.data import load_digits, preprocessing_for
    from edgekd.distill import distill
    from edgekd.distill.distributed import make_strategy
    from edgekd.students import StudentSpec, build_student

    strategy = make_strategy("multiworker")  # first, before any other TensorFlow op
    ds = load_digits()
    x = preprocessing_for(ds).apply(ds.x).astype(np.float32)[:512]
    y = ds.y[:512]
    teacher_logits = (np.eye(10)[y] * 4.0).astype(np.float32)  # a fixed stand-in teacher: the check is about weights
    student = build_student(StudentSpec.parse("mlp:width=0.5,depth=1"), x.shape[1:], 10, seed=0)
    result = distill(student, x, y, teacher_logits, epochs=2, batch_size=64, progress=False, strategy=strategy)
    np.savez(sys.argv[1], *result.student.get_weights(), replicas=result.config["replicas"])
    """
)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_workers_end_with_identical_weights(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for i in range(2):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3",
               "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}
        procs.append(subprocess.Popen([sys.executable, str(script), str(tmp_path / f"w{i}.npz")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        try:
            _, err = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("multi-worker distillation did not finish in 300 s")
        assert p.returncode == 0, err[-2000:]
    w0, w1 = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert int(w0["replicas"]) == 2
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key])
    # Training happened: the weights are not the shared initial ones.
    from edgekd.students import StudentSpec, build_student

    init = build_student(StudentSpec.parse("mlp:width=0.5,depth=1"), (8, 8, 1), 10, seed=0).get_weights()
    assert not np.allclose(init[0], w0["arr_0"])


def test_multiworker_without_tf_config_is_refused(monkeypatch):
    from edgekd.distill.distributed import make_strategy
    from edgekd.errors import EdgekdError

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(EdgekdError, match="TF_CONFIG"):
        make_strategy("multiworker")
