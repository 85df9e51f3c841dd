"""The cost model against a hand-counted network and converted graphs; the search and its refusals."""
import numpy as np
import pytest

from conftest import run_cli
from edgekd.errors import EdgekdError, FitError
from edgekd.profiles import available_profiles, load_profile
from edgekd.sizing import candidates, converted_cost, fit_report, model_cost, size_student, student_cost
from edgekd.students import StudentSpec, build_student
from edgekd.students.nn import peak_live

# DS-CNN, 8 filters, one block, on a 10x4x1 input, 3 classes - counted by hand:
#   stem 10x4 conv, stride 2: out 5x2x8; kernel 10*4*1*8 = 320, BN 4*8 = 32; MACs 5*2*8 * 10*4*1 = 3200
#   depthwise 3x3:            out 5x2x8; kernel 9*8 = 72,       BN 32;      MACs 5*2*8 * 9 = 720
#   pointwise 1x1:            out 5x2x8; kernel 8*8 = 64,       BN 32;      MACs 5*2*8 * 8 = 640
#   mean -> 8; dense 8->3:    24 + 3 bias = 27;                             MACs 24
# params 579, MACs 4584. Live tensors: conv 40 in + 80 out; depthwise and pointwise 80 + 80 = 160 (the peak);
# mean 80 + 8; dense 8 + 3. Converted: kernels 320+72+64+24 = 480, biases (BN folded) 8+8+8+3 = 27.
TINY = StudentSpec("dscnn", width=0.125, depth=1)
TINY_SHAPE = (10, 4, 1)


def test_cost_of_a_hand_counted_network():
    cost = student_cost(TINY, TINY_SHAPE, 3)
    assert (cost.params, cost.macs, cost.peak_activation_elems) == (579, 4584, 160)
    assert (cost.weights, cost.biases, cost.ops) == (480, 27, 5)
    assert cost.activation_bytes("int8") == 160 and cost.activation_bytes("fp32") == 640
    keras_cost = model_cost(build_student(TINY, TINY_SHAPE, 3))
    assert (keras_cost.params, keras_cost.macs, keras_cost.peak_activation_elems) == (579, 4584, 160)


@pytest.fixture(scope="module")
def tiny_int8():
    from edgekd.convert.tflite import tflite_bytes

    model = build_student(TINY, TINY_SHAPE, 3)
    return tflite_bytes(model, "tflite-int8", np.random.default_rng(0).random((8, *TINY_SHAPE), dtype=np.float32))


def test_converted_graph_has_the_hand_counted_peak(tiny_int8):
    g = converted_cost(tiny_int8)
    assert g.peak_activation_bytes == 160  # int8: one byte per element
    assert g.op_names == ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MEAN")
    assert g.ops == 5


def test_resnet_cost_matches_its_converted_graph():
    # Batch norm and ReLU fold into CONV_2D, as the cost model assumes.
    from edgekd.convert.tflite import tflite_bytes

    spec, shape = StudentSpec("resnet", width=0.5, depth=3), (16, 16, 3)
    cost = student_cost(spec, shape, 10)
    blob = tflite_bytes(build_student(spec, shape, 10), "tflite-int8", np.random.default_rng(0).random((8, *shape), dtype=np.float32))
    g = converted_cost(blob)
    assert set(g.op_names) == set(cost.op_kinds) == {"ADD", "CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "MEAN"}
    assert g.ops == cost.ops
    assert g.peak_activation_bytes == cost.activation_bytes("int8")


def test_tflm_arena_estimate_within_10_percent_of_tflite_micro():
    # A keyword-spotting-sized DS-CNN (49x10 MFCCs, 12 words). Not TINY: below ~2 KB of activations
    # tflite-micro needs more arena while planning than it keeps afterwards, which the estimate ignores.
    from edgekd.convert.tflite import tflite_bytes
    from edgekd.convert.tflm import measure_arena

    spec, shape = StudentSpec("dscnn", width=0.25, depth=6), (49, 10, 1)
    blob = tflite_bytes(build_student(spec, shape, 12), "tflite-int8", np.random.default_rng(0).random((8, *shape), dtype=np.float32))
    measured = measure_arena(blob, np.zeros((1, *shape), np.int8))["arena_size"]
    cost = student_cost(spec, shape, 12)
    assert converted_cost(blob).peak_activation_bytes == cost.activation_bytes("int8")
    assert abs(cost.tflm_arena_bytes() - measured) <= 0.10 * measured, (cost.tflm_arena_bytes(), measured)


def test_peak_live_keeps_a_skip_connection_alive():
    # a -> op0 -> b -> op1 -> c -> op2(a, c) -> d : ``a`` stays alive until op2 reads it.
    sizes = {0: 10, 1: 5, 2: 5, 3: 1}
    ops = [((0,), (1,)), ((1,), (2,)), ((0, 2), (3,))]
    assert peak_live(sizes, ops, [0], [3]) == 20  # at op1: a 10 (still needed) + b 5 + c 5
    assert peak_live(sizes, [((0,), (1,)), ((1,), (2,)), ((2,), (3,))], [0], [3]) == 15  # no skip: a dies after op0 (a + b)


@pytest.mark.parametrize(
    "spec, shape",
    [
        (StudentSpec(width=0.75, depth=4), (32, 32, 3)),
        (StudentSpec(width=0.5, depth=3, resolution=16, mcu_safe=True), (32, 32, 1)),
        (StudentSpec("dscnn", width=0.5, depth=2, resolution=32), (64, 3)),
        (StudentSpec("mlp", width=1.0, depth=2), (8, 8, 1)),
        (StudentSpec("resnet", width=0.625, depth=3), (32, 32, 3)),
        (StudentSpec("resnet", width=0.5, depth=2, resolution=16, mcu_safe=True), (32, 32, 1)),
    ],
)
def test_architecture_cost_matches_the_keras_model(spec, shape):
    cost = student_cost(spec, shape, 10)
    model = build_student(spec, shape, 10)
    assert cost.params == model.count_params()
    assert cost.macs == model_cost(model).macs
    assert model.output_shape == (None, 10)


def test_search_picks_the_largest_fitting_candidate_for_every_profile():
    for name in available_profiles():
        profile = load_profile(name)
        shape = (96, 96, 1) if profile.device_class == "mcu" else (32, 32, 3)
        native = size_student(profile, shape, 10, verify=False)
        assert native.spec.resolution is None or native.spec.resolution < shape[0]  # never upscaled unless asked
        report = size_student(profile, shape, 10, verify=False, upscale=True)
        assert report.fits and report.searched > 50
        assert report.spec.mcu_safe == (profile.device_class == "mcu")
        fitting = [fit_report(profile, s, student_cost(s, shape, 10)) for s in candidates(profile, shape, upscale=True)]
        fitting = [r for r in fitting if r.fits and (not profile.op_limits or set(r.cost.op_kinds) <= set(profile.op_limits))]
        top = max(r.cost.macs for r in fitting)
        assert report.cost.macs >= 0.9 * top  # near the most compute the device affords...
        assert report.cost.params == max(r.cost.params for r in fitting if r.cost.macs >= 0.9 * top)  # ...with the most capacity
        wider = report.spec.with_(width=report.spec.width * 1.5)
        assert not fit_report(profile, wider, student_cost(wider, shape, 10)).fits


def test_mcu_search_avoids_ops_tflite_micro_lacks():
    report = size_student(load_profile("cortex-m7"), (64, 64, 3), 10, verify=False)
    assert set(report.cost.op_kinds) <= set(load_profile("cortex-m7").op_limits)
    assert "RESIZE_BILINEAR" not in report.cost.op_kinds


def test_max_params_caps_the_student():
    report = size_student(load_profile("android-midrange"), (8, 8, 1), 10, max_params=20000, verify=False)
    assert report.cost.params <= 20000


def test_nothing_fits_says_which_budget_and_by_how_much(tmp_path):
    import yaml

    from edgekd.profiles import PROFILE_DIR

    data = yaml.safe_load((PROFILE_DIR / "cortex-m4f.yaml").read_text())
    data["budgets"]["memory_bytes"] = 2048
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(FitError) as err:
        size_student(load_profile(str(path)), (96, 96, 1), 10, verify=False)
    text = str(err.value)
    assert "memory_bytes: needs" in text and "budget 2048" in text and "% over" in text
    assert "model_bytes" not in text  # only the budgets it misses


def test_verified_mcu_choice_fits_by_measurement():
    profile = load_profile("cortex-m4f")
    report = size_student(profile, (49, 10, 1), 12, family="dscnn")
    mem = report.usage["memory_bytes"]
    assert report.fits and report.measured["format"] == "tflm-int8"
    assert mem["source"] == "measured" and mem["used"] == report.measured["memory_bytes"]
    assert abs(mem["estimate"] - mem["used"]) <= 0.10 * mem["used"]
    assert report.usage["model_bytes"]["used"] == report.measured["model_bytes"]
    assert report.usage[report.tightest]["percent"] >= 60.0


def test_bad_family_and_resolution_are_refused():
    with pytest.raises(EdgekdError, match="unknown student family"):
        size_student(load_profile("linux-x86"), (32, 32, 3), 10, family="vgg", verify=False)
    with pytest.raises(EdgekdError, match="whole factors"):
        student_cost(StudentSpec(width=1, depth=2, resolution=20, mcu_safe=True), (32, 32, 1), 10)
    with pytest.raises(EdgekdError, match="at most 3 stages"):
        student_cost(StudentSpec("resnet", width=1, depth=4), (32, 32, 3), 10)


def test_cli_size_prints_each_budget_and_refuses_bad_input():
    proc = run_cli("edgekd", "size", "--profile", "cortex-m4f", "--input-shape", "49,10,1", "--classes", "12", "--family", "dscnn", "--no-verify")
    assert proc.returncode == 0, proc.stderr
    for key in ("model_bytes", "memory_bytes", "latency_ms"):
        assert key in proc.stdout
    bad = run_cli("edgekd", "size", "--profile", "cortex-m4f", "--input-shape", "49,x", "--classes", "12")
    assert bad.returncode == 2 and "comma-separated" in bad.stderr
