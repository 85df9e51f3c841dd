"""A student given as a model file that ends in a softmax: the softmax is removed with a warning, or the file refused,
both where students are converted (``edgekd convert``) and where they are distilled (``--student FILE``)."""
import warnings

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from edgekd.errors import EdgekdError
from edgekd.students.head import SoftmaxRemovedWarning, without_softmax
from edgekd.teachers import looks_like_probabilities

X = np.random.default_rng(0).random((16, 6)).astype(np.float32)


def _students():
    """Students ending in each form of softmax a tf_keras file can hold, with the logits each should give."""
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu")(inp)
    logits = keras.layers.Dense(5)(hidden)
    plain = keras.Model(inp, logits)
    dense = keras.layers.Dense(5, activation="softmax")
    fused = keras.Model(inp, dense(hidden))
    fused_ref = keras.Model(inp, hidden)(X).numpy() @ dense.kernel.numpy() + dense.bias.numpy()
    ref = plain(X).numpy()
    return {
        "dense-activation": (fused, fused_ref),
        "softmax-layer": (keras.Model(inp, keras.layers.Softmax()(logits)), ref),
        "activation-layer": (keras.Model(inp, keras.layers.Activation("softmax")(logits)), ref),
        "tf.nn.softmax": (keras.Model(inp, tf.nn.softmax(logits)), ref),
    }, plain


def _saved(model, path):
    model.save(path)
    return path


def test_convert_removes_a_final_softmax_from_the_student(tmp_path):
    from edgekd.convert.batch import load_student

    students, plain = _students()
    for name, (model, ref) in students.items():
        path = _saved(model, tmp_path / f"{name}.keras")
        assert looks_like_probabilities(model(X).numpy())
        with pytest.warns(SoftmaxRemovedWarning, match="ends in a softmax"):
            loaded = load_student(path)
        out = loaded(X).numpy()
        assert not looks_like_probabilities(out), name
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5, err_msg=name)

    # A student that outputs logits loads untouched, silently.
    path = _saved(plain, tmp_path / "plain.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SoftmaxRemovedWarning)
        np.testing.assert_allclose(load_student(path)(X).numpy(), plain(X).numpy(), rtol=1e-6, atol=1e-6)


def test_convert_refuses_a_softmax_inside_a_quantization_wrapper(tmp_path):
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    from edgekd.convert.batch import load_student

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(5, activation="softmax")])
    qat = tfmot.quantization.keras.quantize_model(model)
    qat.save(tmp_path / "qat.h5")
    with pytest.raises(EdgekdError, match="softmax inside QuantizeWrapper"):
        load_student(tmp_path / "qat.h5")


def test_distill_trains_a_student_file_without_its_softmax(tmp_path):
    import tf_keras as keras

    from edgekd.distill.student import resolve

    students, _ = _students()
    for name, (model, _) in students.items():
        path = _saved(model, tmp_path / f"{name}.keras")
        with pytest.warns(SoftmaxRemovedWarning, match="ends in a softmax"):
            fresh = resolve(str(path), None, "kd", None, (6,), 5, seed=1)
        assert not looks_like_probabilities(fresh(X).numpy()), name  # the losses read logits
        assert not any(isinstance(layer, keras.layers.Softmax) or getattr(layer, "activation", None) is keras.activations.softmax
                       for layer in fresh.layers), name


def test_a_softmax_edgekd_cannot_see_is_refused_by_the_outputs():
    import tf_keras as keras

    class Probs(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(5)

        def call(self, x):
            return tf.nn.softmax(self.dense(x))

    model = Probs()
    model(X)
    with pytest.raises(EdgekdError, match="outputs probabilities"):
        without_softmax(model, "probs", input_shape=(6,))
