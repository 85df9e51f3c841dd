"""The model as firmware on an emulated Cortex-M4F and Cortex-M7 (QEMU mps2-an386 / mps2-an500): the compiled C
library runs every sample bit-exact against tflite-micro, instruction counts and stack use are measured, and the
run becomes a profile report the collector accepts and a latency fit can use. A hang is bounded; a missing
compiler is named with its package.

The emulator and arm-none-eabi-gcc come from `make mcu-tools`. Without them these tests fail naming the apt line;
EDGEKD_ALLOW_MISSING_TOOLS=1 turns that into a skip (for a machine that cannot install them)."""
import json
import os
import shutil
import sys

import numpy as np
import pytest

from conftest import run_cli

SAMPLES = 40


@pytest.fixture(scope="module")
def tools():
    from edgekd.firmware.toolchain import ToolMissingError, find_tools

    try:
        return find_tools()
    except ToolMissingError as exc:
        if os.environ.get("EDGEKD_ALLOW_MISSING_TOOLS") == "1":
            pytest.skip(str(exc))
        pytest.fail(f"{exc} -- the firmware tests need them (EDGEKD_ALLOW_MISSING_TOOLS=1 skips instead)")


@pytest.fixture(scope="module")
def student_bundle(digits_split, tmp_path_factory):
    """A small digits CNN (conv, depthwise conv, max pool, dense) trained for seconds, converted for the M4F to
    TFLite Micro and to C (the c-int8 artifact, whose library the firmware builds)."""
    import tf_keras as keras
    from tf_keras import layers

    from edgekd.convert.batch import convert_student
    from edgekd.data import preprocessing_for

    train, test = digits_split
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1), name="input"),
        layers.Conv2D(8, 3, padding="same", activation="relu"),
        layers.DepthwiseConv2D(3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(10, name="logits"),
    ])
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(preprocessing_for(train).apply(train.x), train.y, epochs=8, batch_size=32, verbose=0)
    out = tmp_path_factory.mktemp("firmware") / "bundle"
    convert_student(model, ["tflm-int8", "c-int8"], out, calibration=train, eval_data=test, profile="cortex-m4f")
    return out


def _c_library(folder, body, in_size=64, out_size=10, arena=0):
    """A hand-written model library (the interface edgekd.ccompile writes), for the emulator's failure paths."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "edgekd_model.h").write_text(
        "#include <stdint.h>\n"
        f"#define EDGEKD_MODEL_INPUT_SIZE {in_size}\n#define EDGEKD_MODEL_OUTPUT_SIZE {out_size}\n"
        f"#define EDGEKD_MODEL_ARENA_BYTES {arena}\nint edgekd_model_invoke(const int8_t *input, int8_t *output);\n")
    (folder / "edgekd_model.c").write_text('#include "edgekd_model.h"\n' + body)
    return folder


@pytest.mark.parametrize("core", ["cortex-m4f", "cortex-m7"])
def test_firmware_is_bit_exact_and_measured(student_bundle, tools, core, tmp_path):
    from edgekd.firmware.report import NOT_CYCLES
    from edgekd.firmware.run import firmware
    from edgekd.reports.schema import validate_report
    from edgekd_runtime import Bundle

    result = firmware(student_bundle, core=core, samples=SAMPLES, report_out=str(tmp_path / "report.json"), tools=tools)
    assert result.library_dir.name == "model_c"  # the bundle's own C library, not a fresh compile
    assert result.kept_in is None and not result.image.elf.exists()  # no --out: nothing left behind, and it says so
    assert result.mismatched == 0 and result.run.outputs.shape == (SAMPLES, 10)
    assert np.array_equal(result.run.outputs, result.reference)
    report = json.loads((tmp_path / "report.json").read_text())
    validate_report(report)  # what `edgekd reports serve` stores
    assert report["bit_exact"] == {"samples": SAMPLES, "equal": SAMPLES, "reference": "tflite-micro interpreter on the same int8 inputs"}
    with Bundle.open(str(student_bundle)) as b:
        macs = b.manifest.student["macs"]
        weights = os.path.getsize(b.path(b.manifest.artifact("tflm-int8").path))
    ins = report["instructions"]
    # Fewer than half an instruction per MAC is impossible even with dual-MAC SIMD; over 50 means a scalar crawl
    # or a timer read wrong.
    assert 0.5 * macs < ins["per_inference_mean"] < 50 * macs, ins
    assert NOT_CYCLES in ins["note"] and NOT_CYCLES in report["latency"]["note"]
    assert report["latency"]["p50_ms"] == pytest.approx(ins["per_inference_p50"] / report["device"]["clock_hz"] * 1000)
    mem = report["memory"]
    assert 0 < mem["stack_high_water_bytes"] < 16384
    assert mem["ram_bytes"] == mem["static_ram_bytes"] + mem["stack_high_water_bytes"] + mem["input_output_bytes"]
    assert mem["input_output_bytes"] == (10 if result.image.input_in_arena else 64 + 10)
    assert mem["static_ram_bytes"] >= mem["arena_bytes"] > 0
    assert 0 < mem["flash_bytes"] < weights + 32 * 1024
    assert report["device"]["kind"] == "emulated-mcu" and report["device"]["emulator"].startswith("qemu-system-arm 7.")
    assert report["format"] == "c-int8" and report["runtime"]["engine"] == "c"
    assert report["agreement_with_host"] > 0.9


def test_a_report_fits_the_profiles_latency(student_bundle, tools, tmp_path):
    from edgekd.firmware.run import firmware
    from edgekd.sizing import fit_latency

    report = firmware(student_bundle, core="cortex-m4f", samples=4, tools=tools).report
    fit = fit_latency("cortex-m4f", [report])
    assert fit.points[0]["p50_ms"] == report["latency"]["p50_ms"]
    assert fit.points[0]["estimate_after_ms"] == pytest.approx(report["latency"]["p50_ms"], rel=0.01)


def test_cli_runs_the_firmware_and_a_wrong_library_is_a_failure(student_bundle, tools, tmp_path):
    from edgekd.ccompile import compile_tflite
    from edgekd_runtime import Bundle

    proc = run_cli("edgekd", "firmware", str(student_bundle), "--core", "cortex-m7", "--samples", "8", "--out", str(tmp_path / "fw"),
                   "--report-out", str(tmp_path / "report.json"), "--by-kernel")
    assert proc.returncode == 0, proc.stderr
    assert "bit-exact on 8/8 samples" in proc.stdout and "instructions, not cycles" in proc.stdout
    ins = json.loads((tmp_path / "report.json").read_text())["instructions"]
    kernels = ins["by_kernel"]
    assert {"edgekd_conv2d_s8", "edgekd_dwconv2d_s8", "edgekd_fc_s8", "edgekd_maxpool_s8"} <= set(kernels)
    assert kernels["edgekd_conv2d_s8"]["calls"] == 1 and kernels["edgekd_fc_s8"]["calls"] == 1
    # The kernels are nearly all of an inference: what is left is invoke's own calls and the timer reads.
    assert 0.9 * ins["per_inference_mean"] < sum(k["instructions"] for k in kernels.values()) <= ins["per_inference_mean"] + 40 * 8
    assert (tmp_path / "fw" / "cortex-m7" / "firmware-cortex-m7.elf").is_file()
    assert f"firmware images kept in {tmp_path / 'fw'}" in proc.stdout  # the library is the bundle's own, not copied there
    # The same library with output byte 0 off by one (a kernel bug): the command fails and writes no report.
    with Bundle.open(str(student_bundle)) as b:
        blob = open(b.path(b.manifest.artifact("tflm-int8").path), "rb").read()
    lib = compile_tflite(blob, tmp_path / "c")
    edited = tmp_path / "edited"
    shutil.copytree(lib.dir, edited)
    _break_first_output(edited)
    proc = run_cli("edgekd", "firmware", str(edited), "--bundle", str(student_bundle), "--samples", "4", "--report-out", str(tmp_path / "bad.json"))
    assert proc.returncode == 7, proc.stderr
    assert "differ from tflite-micro's on 4 of 4 samples" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "bad.json").exists()


def _break_first_output(lib_dir):
    """Wrap the library's invoke so that output byte 0 is off by one: a kernel bug as the check must see it."""
    model_c = lib_dir / "edgekd_model.c"
    model_c.write_text(model_c.read_text().replace("edgekd_model_invoke(", "edgekd_model_invoke_inner("))
    (lib_dir / "broken.c").write_text(
        '#include "edgekd_model.h"\nint edgekd_model_invoke_inner(const int8_t *input, int8_t *output);\n'
        "int edgekd_model_invoke(const int8_t *input, int8_t *output)\n"
        "{ int rc = edgekd_model_invoke_inner(input, output); output[0] = (int8_t)(output[0] + 1); return rc; }\n")


def test_c_code_edited_after_generation_is_refused(student_bundle, tools, tmp_path):
    from edgekd.firmware.run import firmware
    from edgekd_runtime import IntegrityError

    bundle = tmp_path / "bundle"
    shutil.copytree(student_bundle, bundle)
    with open(bundle / "model_c" / "edgekd_model.c", "a") as handle:
        handle.write("/* a local tweak */\n")
    with pytest.raises(IntegrityError, match=r"model_c/edgekd_model.c does not match its sha256"):
        firmware(bundle, samples=2, tools=tools)


def test_a_hanging_model_is_bounded_and_reported(tools, tmp_path):
    from edgekd.firmware.build import build_firmware
    from edgekd.firmware.emulate import EmulatorError, run_firmware

    lib = _c_library(tmp_path / "lib", "int edgekd_model_invoke(const int8_t *input, int8_t *output)\n{ for (;;) { __asm volatile(\"nop\"); } }\n")
    image = build_firmware(lib, np.zeros((2, 64), np.int8), "cortex-m4f", tmp_path / "fw", tools)
    with pytest.raises(EmulatorError, match=r"did not finish within 3 s .*killed; last line: 'CAL insns=2000000 ticks=\d+'"):
        run_firmware(tools, image, timeout_s=3)


def test_a_crashing_model_is_reported(tools, tmp_path):
    from edgekd.firmware.build import build_firmware
    from edgekd.firmware.emulate import EmulatorError, run_firmware

    # An undefined instruction: the harness's fault handler ends the run at once.
    lib = _c_library(tmp_path / "lib", "int edgekd_model_invoke(const int8_t *input, int8_t *output)\n{ __asm volatile(\"udf #0\"); return 0; }\n")
    image = build_firmware(lib, np.zeros((2, 64), np.int8), "cortex-m7", tmp_path / "fw", tools)
    with pytest.raises(EmulatorError, match="crashed with a hard fault after 0 samples"):
        run_firmware(tools, image, timeout_s=30)


def test_a_missing_compiler_names_its_package(tmp_path):
    from edgekd.firmware.toolchain import ToolMissingError, find_tools

    with pytest.raises(ToolMissingError, match=r"arm-none-eabi-gcc \(Debian package gcc-arm-none-eabi\).*apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"):
        find_tools(path=str(tmp_path))
    # Through the CLI: one line, the tools' exit code, no traceback.
    env = dict(os.environ, PATH=os.path.dirname(sys.executable))
    proc = run_cli("edgekd", "firmware", str(tmp_path), env=env)
    assert proc.returncode == 3, proc.stderr
    assert "gcc-arm-none-eabi" in proc.stderr and "qemu-system-arm" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_set_up_installs_only_what_is_missing_and_only_as_root(monkeypatch):
    import io

    from edgekd.firmware import toolchain

    calls = []

    def apt(cmd, **_):
        calls.append(cmd)
        return type("Done", (), {"returncode": 0})()

    state = {"missing": ["qemu-system-arm"]}
    monkeypatch.setattr(toolchain, "missing_packages", lambda *a, **k: list(state["missing"]))
    monkeypatch.setattr(toolchain.os, "geteuid", lambda: 1000)
    out = io.StringIO()
    assert toolchain.install(run=apt, out=out) == 1 and not calls
    assert "run as root: apt-get install -y qemu-system-arm" in out.getvalue()
    monkeypatch.setattr(toolchain.os, "geteuid", lambda: 0)
    monkeypatch.setattr(toolchain.shutil, "which", lambda name, path=None: "/usr/bin/" + name)

    def apt_then_present(cmd, **kw):
        state["missing"] = []
        return apt(cmd, **kw)

    assert toolchain.install(run=apt_then_present, out=io.StringIO()) == 0
    assert calls == [["apt-get", "install", "-y", "-q", "qemu-system-arm"]]
    calls.clear()
    assert toolchain.install(run=apt, out=io.StringIO()) == 0 and not calls  # idempotent: nothing missing, nothing run
