"""The C engine (issue 17): edgekd.ccompile's library equals tflite-micro byte for byte on every digits sample for
each MCU student family and for a model holding the remaining ops; its arena is smaller than tflite-micro's; the
runtime's c engine runs it from a bundle and refuses edited sources; bad input gets one clear error."""
import ctypes
import json
import os
import subprocess

import numpy as np
import pytest

from edgekd.ccompile import compile_tflite
from edgekd.errors import ConversionError

# Not `mlp:width=0.25,depth=1`: tflite-micro segfaults on that digits student (a known tflite-micro bug).
FAMILIES = ["mobilenetv3:width=0.25,depth=2,mcu_safe=1", "mobilenetv3:width=0.25,depth=3", "dscnn:width=0.25,depth=2",
            "mlp:width=0.5,depth=2", "resnet:width=0.25,depth=2"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EDGEKD_CACHE", str(tmp_path_factory.getbasetemp() / "c-cache"))


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32)[..., None], d.target


def _int8(model, x):
    from edgekd.convert.tflite import tflite_bytes

    return tflite_bytes(model, "tflite-int8", x[:200], calibration_samples=200)


def _trained(model, x, y):
    import tf_keras as keras

    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def family_students(digits):
    from edgekd.students import StudentSpec, build_student

    x, y = digits
    return {spec: _trained(build_student(StudentSpec.parse(spec), (8, 8, 1), 10), x, y) for spec in FAMILIES}


@pytest.fixture(scope="module")
def family_models(family_students, digits):
    return {spec: _int8(model, digits[0]) for spec, model in family_students.items()}


@pytest.fixture(scope="module")
def op_model(digits):
    """One model for the ops no family emits on digits: PAD, AVERAGE_POOL_2D, CONCATENATION, RELU6, LOGISTIC, SOFTMAX."""
    import tf_keras as keras
    from tf_keras import layers

    x, y = digits
    inp = keras.Input((8, 8, 1))
    a = layers.ZeroPadding2D(((2, 0), (2, 0)))(inp)  # asymmetric: not foldable into the conv's SAME padding
    a = layers.Conv2D(8, 3, activation="relu6")(a)
    b = layers.Conv2D(4, 3, padding="same", activation="sigmoid")(inp)
    h = layers.Concatenate()([a, b])
    h = layers.AveragePooling2D(2)(h)
    h = layers.DepthwiseConv2D(3, padding="same", activation="relu")(h)
    h = layers.GlobalAveragePooling2D()(h)
    out = layers.Softmax()(layers.Dense(10)(h))
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    return _int8(model, x)


def _build(lib, tmp_path):
    so = tmp_path / "lib.so"
    proc = subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o", str(so)] + [str(p) for p in lib.sources],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return ctypes.CDLL(str(so))


def _tflm_outputs(blob, q):
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(blob, arena_size=1 << 20)
    outs = []
    for i in range(len(q)):
        it.set_input(q[i : i + 1], 0)
        it.invoke()
        outs.append(np.array(it.get_output(0)).reshape(-1))
    return np.stack(outs)


def _c_outputs(lib, so, q):
    out = np.zeros((len(q), lib.output_size), np.int8)
    for i in range(len(q)):
        sample = np.ascontiguousarray(q[i])
        assert so.edgekd_model_invoke(sample.ctypes.data_as(ctypes.c_void_p), out[i].ctypes.data_as(ctypes.c_void_p)) == 0
    return out


def _quantized(lib, x):
    return np.clip(np.round(x / np.float32(lib.input_scale)) + lib.input_zero_point, -128, 127).astype(np.int8)


def _bit_exact(blob, x, tmp_path):
    lib = compile_tflite(blob, tmp_path / "c")
    so = _build(lib, tmp_path)
    q = _quantized(lib, x)
    mine, ref = _c_outputs(lib, so, q), _tflm_outputs(blob, q)
    return lib, int(np.sum(np.all(mine == ref, axis=1))), len(q)


@pytest.mark.parametrize("spec", FAMILIES)
def test_each_mcu_family_is_bit_exact_with_tflite_micro_on_every_sample(family_models, digits, spec, tmp_path):
    lib, equal, n = _bit_exact(family_models[spec], digits[0], tmp_path)
    assert equal == n == 1797, f"{spec}: {equal}/{n} samples equal tflite-micro's output bytes"


def test_remaining_ops_are_bit_exact(op_model, digits, tmp_path):
    lib, equal, n = _bit_exact(op_model, digits[0], tmp_path)
    assert {"PAD", "AVERAGE_POOL_2D", "CONCATENATION", "LOGISTIC", "SOFTMAX", "DEPTHWISE_CONV_2D", "MEAN"} <= set(lib.ops)
    assert equal == n, f"{equal}/{n}"


def test_generated_folder_compiles_standalone_and_lists_its_hashes(family_models, tmp_path):
    lib = compile_tflite(family_models[FAMILIES[0]], tmp_path / "c")
    proc = subprocess.run("cc -std=c99 -O2 -Wall -pedantic -Werror -c *.c", shell=True, cwd=lib.dir, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    header = lib.header.read_text()
    for macro in ("EDGEKD_MODEL_INPUT_SIZE 64", "EDGEKD_MODEL_OUTPUT_SIZE 10", f"EDGEKD_MODEL_ARENA_BYTES {lib.arena_bytes}"):
        assert macro in header
    assert "int edgekd_model_invoke(const int8_t *input, int8_t *output);" in header
    assert set(lib.sha256) == {p.name for p in lib.dir.iterdir() if p.suffix in (".c", ".h")}
    code = "".join(p.read_text() for p in lib.sources)
    for banned in ("malloc", "printf", "<math.h>", "TfLite", "flatbuffer"):
        assert banned not in code


def test_arena_is_smaller_than_tflite_micros(family_models):
    from tflite_micro.python.tflite_micro import runtime

    from edgekd_runtime.backends.tflm import arena_used

    for spec in ("mobilenetv3:width=0.25,depth=2,mcu_safe=1", "dscnn:width=0.25,depth=2", "resnet:width=0.25,depth=2"):
        blob = family_models[spec]
        lib = compile_tflite(blob, __import__("tempfile").mkdtemp())
        tflm = arena_used(runtime.Interpreter.from_bytes(blob, arena_size=1 << 20))
        # Our arena holds the input's slot, as tflite-micro's does; the output goes to the caller's buffer: count it.
        ours = lib.arena_bytes + lib.output_size
        assert ours <= 0.6 * tflm, f"{spec}: {ours} bytes against tflite-micro's {tflm}"
        assert lib.arena_bytes < lib.unshared_arena_bytes


def test_float_wrapper_computes_what_the_runtime_computes(family_models, digits, tmp_path):
    from edgekd_runtime import Artifact, Model, Preprocessing, TensorSpec

    blob = family_models[FAMILIES[0]]
    pre = Preprocessing(scale=1 / 16.0)  # raw digits are 0..16
    lib = compile_tflite(blob, tmp_path / "c", preprocessing=pre)
    so = _build(lib, tmp_path)
    raw = (digits[0][:200] * 16.0).astype(np.float32)
    art = Artifact(path="c", format="c-int8", engine="c", input=TensorSpec([1, 8, 8, 1], "int8", lib.input_scale, lib.input_zero_point),
                   output=TensorSpec([1, 10], "int8", lib.output_scale, lib.output_zero_point), settings={"input_size": 64, "output_size": 10})
    expected = Model(str(lib.dir), art, pre, engine="c").predict(raw)
    got = np.zeros((len(raw), 10), np.float32)
    for i in range(len(raw)):
        sample = np.ascontiguousarray(raw[i])
        assert so.edgekd_model_invoke_float(sample.ctypes.data_as(ctypes.c_void_p), got[i].ctypes.data_as(ctypes.c_void_p)) == 0
    np.testing.assert_array_equal(got, expected)


def test_unsupported_op_float_model_and_garbage_are_refused(digits):
    import tf_keras as keras
    from tf_keras import layers

    from edgekd.convert.tflite import tflite_bytes

    x, _ = digits
    inp = keras.Input((8, 8, 1))
    model = keras.Model(inp, layers.Dense(10)(layers.Activation("tanh")(layers.Flatten()(inp))))
    with pytest.raises(ConversionError, match=r"no kernel for op TANH.*(mcu_safe|tflm-int8)"):
        compile_tflite(_int8(model, x), "/tmp/never-written-c")
    assert not os.path.exists("/tmp/never-written-c")
    with pytest.raises(ConversionError, match="float32.*int8"):
        compile_tflite(tflite_bytes(model, "tflite-fp32"), "/tmp/never-written-c")
    with pytest.raises(ConversionError, match="not a readable TFLite model"):
        compile_tflite(b"\0" * 64, "/tmp/never-written-c")


def test_too_large_for_the_profile_says_by_how_much(family_models, tmp_path):
    from edgekd.convert.c import check_fits
    from edgekd.profiles import load_profile

    lib = compile_tflite(family_models[FAMILIES[0]], tmp_path / "c")
    m4 = load_profile("cortex-m4f")
    tiny = m4.model_copy(update={"budgets": m4.budgets.model_copy(update={"memory_bytes": 2048})})
    with pytest.raises(ConversionError, match=r"RAM ~[\d,]+ bytes .* is [\d,]+ bytes over the 2,048 of cortex-m4f"):
        check_fits(lib, tiny)


@pytest.fixture(scope="module")
def c_bundle(digits, tmp_path_factory):
    """`edgekd convert --to tflm,c` on a small trained student: the bundle with both artifacts. (Not the dscnn of
    FAMILIES: tflite-micro segfaults while the TFLM converter probes that model's arena, another tflite-micro bug.)"""
    from edgekd.convert.batch import convert_student
    from edgekd.students import StudentSpec, build_student

    x, y = digits
    model = _trained(build_student(StudentSpec.parse("dscnn:width=0.25,depth=1"), (8, 8, 1), 10), x, y)
    out = tmp_path_factory.mktemp("cb") / "bundle"
    raw = (x * 16).round().astype(np.uint8)
    from edgekd.data import Dataset

    result = convert_student(model, "tflm-int8,c", out, calibration=Dataset(raw[:1400], None, [], "train"),
                             eval_data=Dataset(raw[1400:], y[1400:], [], "test"), profile="cortex-m4f", calibration_samples=300,
                             preprocess="scale=0.0625")  # raw digits are 0..16; the student trained on 0..1
    return result


def test_convert_to_c_writes_a_verified_bit_exact_artifact_that_the_runtime_runs(c_bundle, digits):
    from edgekd_runtime import Bundle, Model

    manifest = json.loads((c_bundle.out / "manifest.json").read_text())
    arts = {a["format"]: a for a in manifest["artifacts"]}
    c = arts["c-int8"]
    assert c["engine"] == "c" and c["verification"] == "passed"
    assert c["settings"]["bit_exact"] == {"reference": "tflite-micro", "samples": 397, "equal": 397}
    assert c["settings"]["arena_bytes"] > 0 and c["settings"]["weight_bytes"] > 0
    for name, digest in c["settings"]["sha256"].items():
        assert manifest["files"][f"{c['path']}/{name}"] == digest
    bundle = Bundle.open(str(c_bundle.out))
    raw = np.load(bundle.checked_path("eval.npz"))["x"]
    on_c = Model.from_bundle(bundle, engine="c").predict(raw)
    on_tflm = Model.from_bundle(bundle, engine="tflm").predict(raw)
    np.testing.assert_array_equal(on_c, on_tflm)


def test_edited_c_file_is_refused(c_bundle, tmp_path):
    import shutil

    from edgekd_runtime import Bundle, Model
    from edgekd_runtime.errors import IntegrityError

    copy = tmp_path / "b"
    shutil.copytree(c_bundle.out, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    c = [a for a in manifest["artifacts"] if a["format"] == "c-int8"][0]
    target = copy / c["path"] / "edgekd_model.c"
    target.write_text(target.read_text().replace("return 0;", "return 0; /* tweaked */"))
    with pytest.raises(IntegrityError, match="edgekd_model.c"):
        Model.from_bundle(Bundle.open(str(copy)), engine="c")


def test_missing_compiler_names_the_package(c_bundle, tmp_path, monkeypatch):
    from edgekd_runtime import Bundle, Model
    from edgekd_runtime.errors import EngineUnavailableError

    bundle = Bundle.open(str(c_bundle.out))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(EngineUnavailableError, match="apt-get install gcc"):
        Model.from_bundle(bundle, engine="c")
    from edgekd.convert.c import convert

    with pytest.raises(ConversionError, match="apt-get install gcc"):
        convert(None, "c-int8", tmp_path)


def test_hard_swish_table_equals_the_fixed_point_kernel(tmp_path):
    """The generator tabulates HARD_SWISH in Python; the C kernel computes it on the device: equal for every input
    byte, over scales and zero points spanning both exponent signs of the reluish multiplier."""
    from edgekd.ccompile import KERNEL_DIR, quant

    so = tmp_path / "hs.so"
    proc = subprocess.run(["cc", "-std=c99", "-O2", "-shared", "-fPIC", "-o", str(so), str(KERNEL_DIR / "edgekd_elementwise.c")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lib = ctypes.CDLL(str(so))
    rng = np.random.default_rng(0)
    inputs = np.arange(-128, 128, dtype=np.int8)
    for in_scale, out_scale in [(0.02, 0.01), (0.1, 0.05), (0.003, 0.004), (0.5, 0.3), *rng.uniform(0.001, 0.6, (20, 2))]:
        in_zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-128, 0))
        rm, re, om, oe = quant.hard_swish_params(float(np.float32(in_scale)), float(np.float32(out_scale)))
        if oe > 0:
            continue
        params = (ctypes.c_int32 * 7)(256, in_zp, out_zp, rm, re, om, oe)
        out = np.zeros(256, np.int8)
        lib.edgekd_hard_swish_s8(inputs.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p), params)
        table = quant.hard_swish_table(float(np.float32(in_scale)), in_zp, float(np.float32(out_scale)), out_zp)
        assert out.tolist() == [table[int(q) & 0xFF] for q in inputs], (in_scale, out_scale, in_zp, out_zp)
