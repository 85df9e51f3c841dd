"""Each method's own loss term is alive: non-zero on a real batch, sending gradients into the student layers that feed
it, and moving the trained weights away from where kd alone (and the method with its weight at 0) leaves them.

test_distill_methods cannot see a dead term: kd alone takes a student past its accuracy bars, so a hint multiplied by
zero, a term cut off from the student, or a chain stage that learns from the wrong teacher still passes there.
Every run here is a few training steps on a few hundred digits: enough to move weights, not to learn.

The feature methods also train once under a MirroredStrategy over two logical CPUs (their terms create variables
inside train_step, in replica context), in a subprocess: logical devices must be set before TensorFlow initialises.
"""
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from typing import Any, List

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from edgekd.distill.run import run_distillation

STUDENT = "mobilenetv3:width=0.5,depth=2"
SAMPLES, VAL_SAMPLES, EPOCHS = 320, 64, 2
# Relative change of the trained weights that counts as "moved". CPU runs are bitwise reproducible (same seed, same
# weights; kd and every feature method at beta=0 end with identical weights, and so does a chain stage taught by the
# teacher instead of its assistant or previous generation). A multi-teacher mix that lost its second teacher differs
# from kd by 0.003% (probability vs logit targets), and a live term moved the weights by 0.9% (fitnet) to 5% (at) in
# these few steps: 0.1% is far from both.
MOVED = 1e-3


@pytest.fixture(scope="module")
def small(digits_split):
    train, test = digits_split
    return train.subset(np.arange(SAMPLES)), test.subset(np.arange(VAL_SAMPLES))


@dataclass
class Trained:
    weights: List[np.ndarray]  # the student's weights when training ended (the checks run it again afterwards)
    stages: List[Any]  # (Distiller, dataset) per training stage in order: the terms it trained, its batches
    run: Any


def _train(teachers, small, **kw) -> Trained:
    """A short seeded run of a method, keeping what each stage trained with."""
    from edgekd.distill.distiller import Distiller

    stages = []
    original = Distiller.fit

    def fit(self, ds, *args, **kwargs):
        stages.append((self, ds))
        return original(self, ds, *args, **kwargs)

    train, val = small
    kw.setdefault("student", STUDENT)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Distiller, "fit", fit)
        run = run_distillation(teachers, train, val=val, epochs=EPOCHS, cache=False, patience=None, time_budget=None, progress=False, **kw)
    return Trained([w.copy() for w in run.student.get_weights()], stages, run)


@pytest.fixture(scope="module")
def kd(teacher_path, small):
    return _train(teacher_path, small, method="kd")


def _moved(before, after) -> float:
    a = np.concatenate([w.ravel() for w in before])
    b = np.concatenate([w.ravel() for w in after])
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


def _kernels_feeding(student, tensors):
    """The student's kernels upstream of ``tensors`` (a model cut there holds exactly those layers' variables)."""
    import tf_keras as keras

    cut = keras.Model(student.inputs, tensors)
    return [v for v in cut.trainable_variables if "kernel" in v.name.rsplit("/", 1)[-1]]


def _term_gradients(distiller, batch, term):
    """``term(logits, features, targets, labels)`` on ``batch`` through the distiller's own forward pass: its value
    and the gradient norm it sends to each student variable (0.0 where none)."""
    x, (y, targets) = batch
    variables = distiller.student.trainable_variables
    with tf.GradientTape() as tape:
        logits, features = distiller._forward(x)
        value = term(tf.cast(logits, tf.float32), features, targets, y)
    grads = tape.gradient(value, variables)
    return float(value), {v.ref(): 0.0 if g is None else float(tf.norm(tf.convert_to_tensor(g))) for v, g in zip(variables, grads)}


def _check_feature_method(trained, kd, zero, count=None):
    """The feature terms of the run's last stage are non-zero, reach every student kernel that feeds them (and not
    the classifier, which they do not read), and moved the weights away from kd and from beta=0."""
    distiller, ds = trained.stages[-1]
    batch = next(iter(ds))
    x, (y, targets) = batch
    assert distiller.terms and (count is None or len(distiller.terms) == count)
    _, features = distiller._forward(x)
    values = [float(t.loss(targets, features, y)) for t in distiller.terms]
    assert all(np.isfinite(v) and v > 0 for v in values), values

    value, grads = _term_gradients(distiller, batch, lambda logits, feats, tg, yb: tf.add_n([t.loss(tg, feats, yb) for t in distiller.terms]))
    assert value > 0
    student = distiller.student
    feeding = _kernels_feeding(student, distiller.extractor.outputs[1:])
    assert feeding
    dead = [v.name for v in feeding if grads[v.ref()] == 0.0]
    assert not dead, f"no gradient from the term reaches {dead}"
    classifier = student.layers[-1].kernel
    assert grads[classifier.ref()] == 0.0  # the term alone is measured, not the KD loss beside it

    assert _moved(kd.weights, trained.weights) > MOVED, "the student ends where kd alone leaves it"
    assert _moved(zero.weights, trained.weights) > MOVED, "the student ends where beta=0 leaves it"
    assert trained.run.config["beta"] > 0 and zero.run.config["beta"] == 0.0


def _check_logit_term(distiller, batch, term):
    """A term on the student's logits is non-zero and reaches every kernel of the student."""
    value, grads = _term_gradients(distiller, batch, term)
    assert np.isfinite(value) and value > 0
    kernels = _kernels_feeding(distiller.student, distiller.student.outputs)
    dead = [v.name for v in kernels if grads[v.ref()] == 0.0]
    assert kernels and not dead, f"no gradient from the term reaches {dead}"


def _soft_term(distiller):
    from edgekd.distill.losses import soft_target_loss

    return lambda logits, feats, targets, y: tf.reduce_mean(soft_target_loss(targets["logits"], logits, distiller.temperature))


def test_attention_transfer_term_is_alive(teacher_path, small, kd):
    trained = _train(teacher_path, small, method="at")
    _check_feature_method(trained, kd, _train(teacher_path, small, method="at", beta=0.0), count=len(trained.run.config["feature_layers"]))


def test_fitnet_hint_is_alive(teacher_path, small, kd):
    trained = _train(teacher_path, small, method="fitnet")
    _check_feature_method(trained, kd, _train(teacher_path, small, method="fitnet", beta=0.0), count=1)
    # The student's layers are trained by the hint, and so is its regressor (dropped after training).
    (hint,) = trained.stages[-1][0].terms
    assert hint.adapter.trainable_variables and hint.adapter.built


def test_crd_contrastive_term_is_alive(teacher_path, small, kd):
    trained = _train(teacher_path, small, method="crd")
    _check_feature_method(trained, kd, _train(teacher_path, small, method="crd", beta=0.0), count=1)
    (crd,) = trained.stages[-1][0].terms
    # The memory banks moved off their random initialisation: the batches' slots hold normalised embeddings.
    norms = np.linalg.norm(crd.student_bank.numpy(), axis=1)
    assert np.sum(np.isclose(norms, 1.0, atol=1e-4)) >= SAMPLES // 2


def test_multi_teacher_mixed_target_is_alive(teacher_path, small, kd):
    import tf_keras as keras

    model = keras.models.load_model(teacher_path, compile=False)
    softer = lambda x: model(x, training=False).numpy() / 4.0  # noqa: E731  a second, less confident teacher
    trained = _train([teacher_path, softer], small, method="multi", teacher_weights=[0.5, 0.5])
    distiller, ds = trained.stages[-1]
    batch = next(iter(ds))
    x, (y, targets) = batch
    t = distiller.temperature
    first = tf.nn.softmax(model(x, training=False) / t).numpy()
    second = tf.nn.softmax(model(x, training=False) / 4.0 / t).numpy()
    # The target is the mix of both teachers (cached logits are rounded through float16), not the first alone.
    np.testing.assert_allclose(targets["probs"], 0.5 * first + 0.5 * second, atol=2e-3)
    assert np.abs(targets["probs"].numpy() - first).max() > 0.05
    from edgekd.distill.losses import soft_probs_loss

    _check_logit_term(distiller, batch, lambda logits, feats, tg, yb: tf.reduce_mean(soft_probs_loss(tg["probs"], logits, t)))
    # kd from the first teacher is what a mix that lost the second teacher would train.
    assert _moved(kd.weights, trained.weights) > MOVED, "the student ends where kd from the first teacher leaves it"


def test_progressive_student_learns_from_its_assistant(teacher_path, small, kd):
    import tf_keras as keras

    trained = _train(teacher_path, small, method="progressive", max_gap=50.0)
    (a_distiller, a_ds), (distiller, ds) = trained.stages  # the assistant's stage, then the student's
    teacher = keras.models.load_model(teacher_path, compile=False)
    xa, (_, a_targets) = next(iter(a_ds))
    np.testing.assert_allclose(a_targets["logits"], teacher(xa, training=False), atol=0.05, rtol=1e-2)
    batch = next(iter(ds))
    x, (_, targets) = batch
    # The student's targets are the trained assistant's logits, not the teacher's.
    np.testing.assert_allclose(targets["logits"], a_distiller.student(x, training=False), atol=0.05, rtol=1e-2)
    assert np.abs(targets["logits"].numpy() - teacher(x, training=False).numpy()).max() > 1.0
    _check_logit_term(distiller, batch, _soft_term(distiller))
    # Same student, seed and data: a chain whose student learnt from the teacher would end exactly where kd does.
    assert _moved(kd.weights, trained.weights) > MOVED, "the student ends where kd from the teacher leaves it"


def test_born_again_generation_learns_from_the_one_before(teacher_path, small):
    import tf_keras as keras

    from edgekd.distill.self_distill import teacher_architecture

    trained = _train(teacher_path, small, method="self", student=None, generations=2)
    (g1_distiller, _), (distiller, ds) = trained.stages
    teacher = keras.models.load_model(teacher_path, compile=False)
    batch = next(iter(ds))
    x, (_, targets) = batch
    np.testing.assert_allclose(targets["logits"], g1_distiller.student(x, training=False), atol=0.05, rtol=1e-2)
    assert np.abs(targets["logits"].numpy() - teacher(x, training=False).numpy()).max() > 1.0
    _check_logit_term(distiller, batch, _soft_term(distiller))
    # kd into the same architecture, same seed: where a second generation taught by the teacher would end.
    same = _train(teacher_path, small, method="kd", student=teacher_architecture(teacher, seed=0))
    assert _moved(same.weights, trained.weights) > MOVED, "the second generation ends where kd from the teacher leaves it"


MIRRORED = textwrap.dedent(
    """
    import json
    import sys
    import traceback

    import numpy as np
    import tensorflow as tf

    # Two logical CPUs, before anything initialises TensorFlow: two replicas without a GPU.
    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    from edgekd.data import load_digits, split
    from edgekd.distill.distiller import Distiller
    from edgekd.distill.run import run_distillation
    from edgekd.errors import EdgekdError
    from edgekd.students import StudentSpec, build_student

    teacher, out, student, samples, val_samples, epochs = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:7])
    train, test = split(load_digits(), 0.2, seed=0)
    train, test = train.subset(np.arange(samples)), test.subset(np.arange(val_samples))
    initial = build_student(StudentSpec.parse(student), train.input_shape, 10, seed=0).get_weights()

    def moved(a, b):
        a, b = (np.concatenate([w.ravel() for w in ws]) for ws in (a, b))
        return float(np.linalg.norm(a - b) / np.linalg.norm(a))

    def run(method, **kw):
        return run_distillation(teacher, train, val=test, method=method, student=student, epochs=epochs, strategy=strategy,
                                cache=False, patience=None, time_budget=None, progress=False, **kw)

    # Each run's Distiller, to read the terms' variables after training.
    distillers = []
    original_fit = Distiller.fit

    def fit(self, *args, **kwargs):
        distillers.append(self)
        return original_fit(self, *args, **kwargs)

    Distiller.fit = fit
    found = {}
    try:
        kd = run("kd").student.get_weights()  # beta=0 ends here too: runs are reproducible and the term weighs nothing
    except Exception:
        kd = None
        found["kd"] = {"error": traceback.format_exc()[-3000:]}
    for method in ("fitnet", "at") if kd is not None else ():
        try:
            r = run(method)
            variables = [v for t in distillers[-1].terms for v in t.trainable_variables]
            copies = [[c.numpy() for c in strategy.experimental_local_results(v)] for v in variables]
            found[method] = {"replicas": r.result.config["replicas"], "loss": [h["loss"] for h in r.result.history],
                             "moved": moved(initial, r.student.get_weights()), "vs_kd": moved(kd, r.student.get_weights()),
                             "term_variables": [v.name for v in variables], "copies": [len(c) for c in copies],
                             "copies_agree": all(all(np.array_equal(c[0], other) for other in c[1:]) for c in copies)}
        except Exception:
            found[method] = {"error": traceback.format_exc()[-3000:]}
    try:
        run("crd")
        found["crd"] = {"error": "crd trained under the strategy"}
    except EdgekdError as exc:
        found["crd"] = {"refused": str(exc)}
    except Exception:
        found["crd"] = {"error": traceback.format_exc()[-3000:]}
    with open(out, "w") as f:
        json.dump(found, f)
    """
)


@pytest.fixture(scope="module")
def mirrored(teacher_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mirrored")
    script, out = folder / "mirrored.py", folder / "found.json"
    script.write_text(MIRRORED)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, str(script), str(teacher_path), str(out), STUDENT, str(SAMPLES), str(VAL_SAMPLES), str(EPOCHS)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0 and out.exists(), proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("method", ["fitnet", "at"])
def test_feature_method_trains_under_a_mirrored_strategy(mirrored, method):
    assert "error" not in mirrored.get("kd", {}), mirrored["kd"]["error"]
    found = mirrored[method]
    assert "error" not in found, found.get("error")
    assert found["replicas"] == 2
    assert len(found["loss"]) == EPOCHS and all(np.isfinite(found["loss"]))
    assert found["moved"] > MOVED
    # The term still trains the student when each replica computes it on its share of the batch.
    assert found["vs_kd"] > MOVED, "under the strategy the student ends where kd alone leaves it"
    # Variables a term creates inside train_step are mirrored: one copy per replica, all equal after training.
    assert all(n == 2 for n in found["copies"]) and found["copies_agree"]
    if method == "fitnet":
        assert found["term_variables"] == ["hint0_adapter/kernel:0"]


def test_crd_refuses_a_strategy_before_training(mirrored):
    # CRD's memory banks are per-process state that replicas would update apart: the run says so instead of training.
    found = mirrored["crd"]
    assert "error" not in found, found.get("error")
    assert "memory banks" in found["refused"] and "tf.distribute" in found["refused"]
