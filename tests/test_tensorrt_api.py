"""The TensorRT backend against stand-ins for TensorRT 8.2 (the original Jetson Nano's JetPack 4.6), 8.6 and 10,
each offering exactly the Python API its version documents, and for pycuda with and without a GPU.

TensorRT cannot run on the machines this project is developed on, so nothing here says an engine runs on a
Jetson: what is checked is that the backend picks the API the installed version has (bindings and
execute_async_v2 on 8.2; named tensors, set_tensor_address and execute_async_v3 on 8.5+ and 10), hands the
engine the device buffers it filled and reads back the one the engine wrote, builds as each version wants
(explicit-batch network and max_workspace_size on 8.2, set_memory_pool_limit on 8.3+), caches the engine
per ONNX + TensorRT version + GPU, and that pycuda without a GPU makes the runtime fall back instead of failing.
The stand-in engine computes with onnxruntime on the ONNX it was built from, so a wrong buffer gives wrong scores.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

# Written from the TensorRT Python API references (8.2: ICudaEngine.num_bindings / binding_is_input /
# get_binding_shape / get_binding_dtype, IExecutionContext.set_binding_shape / execute_async_v2(bindings,
# stream_handle), IBuilderConfig.max_workspace_size; 8.3 adds set_memory_pool_limit; 8.5 adds num_io_tensors /
# get_tensor_name / get_tensor_mode / get_tensor_shape, set_input_shape / set_tensor_address /
# execute_async_v3(stream_handle); 10 removes the binding API and max_workspace_size).
FAKE_TENSORRT = r'''
import json
import os

import numpy as np

__version__ = os.environ["FAKE_TRT_VERSION"]
_V = tuple(int(v) for v in __version__.split(".")[:2])
CALLS = []


def _log(*call):
    CALLS.append(call)


class Logger(object):
    WARNING = 2

    def __init__(self, min_severity=2):
        self.min_severity = min_severity


class NetworkDefinitionCreationFlag(object):
    EXPLICIT_BATCH = 0


class BuilderFlag(object):
    FP16, INT8 = 0, 1


class DataType(object):
    FLOAT, HALF, INT8, INT32 = "FLOAT", "HALF", "INT8", "INT32"


def nptype(dtype):
    return {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32}[dtype]


class IInt8EntropyCalibrator2(object):
    def __init__(self):
        pass


class _Tensor(object):
    def __init__(self, name, shape):
        self.name, self.shape = name, tuple(shape)


class INetworkDefinition(object):
    def __init__(self, flags):
        self.flags, self.inputs, self.outputs, self.onnx = flags, [], [], None

    @property
    def num_inputs(self):
        return len(self.inputs)

    def get_input(self, index):
        return self.inputs[index]


def _dims(value_info):
    return [d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim]


class OnnxParser(object):
    def __init__(self, network, logger):
        self.network, self.errors = network, []

    def parse(self, model):
        import onnx

        if _V < (10, 0) and not self.network.flags & (1 << NetworkDefinitionCreationFlag.EXPLICIT_BATCH):
            # TensorRT 8's ONNX parser refuses an implicit-batch network.
            self.errors.append("Network must have explicit batch dimension")
            return False
        proto = onnx.load_from_string(bytes(model))
        self.network.inputs = [_Tensor(v.name, _dims(v)) for v in proto.graph.input]
        self.network.outputs = [_Tensor(v.name, _dims(v)) for v in proto.graph.output]
        self.network.onnx = bytes(model)
        return True

    @property
    def num_errors(self):
        return len(self.errors)

    def get_error(self, index):
        return self.errors[index]


class IOptimizationProfile(object):
    def set_shape(self, name, min, opt, max):
        _log("profile.set_shape", name, tuple(min), tuple(opt), tuple(max))


class IBuilderConfig(object):
    def __init__(self):
        self.flags, self.int8_calibrator = [], None

    def set_flag(self, flag):
        self.flags.append(flag)

    def add_optimization_profile(self, profile):
        return 0

    def set_calibration_profile(self, profile):
        return True


if _V < (10, 0):
    def _get_workspace(self):
        return getattr(self, "_workspace", 0)

    def _set_workspace(self, value):
        _log("config.max_workspace_size", value)
        self._workspace = value

    IBuilderConfig.max_workspace_size = property(_get_workspace, _set_workspace)

if _V >= (8, 3):
    class MemoryPoolType(object):
        WORKSPACE = "WORKSPACE"

    def _set_memory_pool_limit(self, pool, pool_size):
        _log("config.set_memory_pool_limit", pool, pool_size)

    IBuilderConfig.set_memory_pool_limit = _set_memory_pool_limit

if _V >= (8, 5):
    class TensorIOMode(object):
        NONE, INPUT, OUTPUT = "NONE", "INPUT", "OUTPUT"


class Builder(object):
    def __init__(self, logger):
        pass

    def create_network(self, flags=0):
        _log("builder.create_network", flags)
        return INetworkDefinition(flags)

    def create_builder_config(self):
        return IBuilderConfig()

    def create_optimization_profile(self):
        return IOptimizationProfile()

    def build_serialized_network(self, network, config):
        _log("builder.build_serialized_network", __version__)
        header = {"version": __version__, "io": [[t.name, True, list(t.shape)] for t in network.inputs] + [[t.name, False, list(t.shape)] for t in network.outputs]}
        return b"FAKEENGINE" + json.dumps(header).encode() + b"\n" + network.onnx


class Runtime(object):
    def __init__(self, logger):
        pass

    def deserialize_cuda_engine(self, blob):
        if not blob.startswith(b"FAKEENGINE"):
            return None
        header, onnx_blob = blob[len(b"FAKEENGINE"):].split(b"\n", 1)
        header = json.loads(header.decode())
        if header["version"] != __version__:
            return None  # an engine from another TensorRT version does not deserialize
        return ICudaEngine(header["io"], onnx_blob)


class ICudaEngine(object):
    def __init__(self, io, onnx_blob):
        self.io, self.onnx = io, onnx_blob

    def create_execution_context(self):
        return IExecutionContext(self)

    def _index(self, name):
        return [n for n, _, _ in self.io].index(name)


class IExecutionContext(object):
    def __init__(self, engine):
        import onnxruntime

        self.engine = engine
        self.shapes = [list(s) for _, _, s in engine.io]
        self.addresses = [None] * len(engine.io)
        self.session = onnxruntime.InferenceSession(engine.onnx, providers=["CPUExecutionProvider"])

    def _set_shape(self, index, shape):
        self.shapes[index] = list(shape)
        # The output's batch follows the input's, as the ONNX graph says.
        for i, (_, is_input, s) in enumerate(self.engine.io):
            if not is_input:
                self.shapes[i] = [shape[0] if d < 0 else d for d in s]
        return True

    def _run(self, addresses, stream_handle):
        from pycuda.driver import MEMORY

        (name, _, _), = [t for t in self.engine.io if t[1]]
        i = self.engine._index(name)
        if any(a not in MEMORY for a in addresses):
            raise ValueError("an I/O address is not a device allocation: %r" % (addresses,))
        x = np.frombuffer(MEMORY[addresses[i]].tobytes(), np.float32).reshape(self.shapes[i])
        for j, (_, is_input, _) in enumerate(self.engine.io):
            if not is_input:
                y = self.session.run(None, {name: x})[0].astype(np.float32)
                MEMORY[addresses[j]][:] = np.frombuffer(y.tobytes(), np.uint8)
        return True


if _V < (10, 0):
    ICudaEngine.num_bindings = property(lambda self: len(self.io))
    ICudaEngine.get_binding_name = lambda self, index: self.io[index][0]
    ICudaEngine.binding_is_input = lambda self, index: self.io[index][1]
    ICudaEngine.get_binding_shape = lambda self, index: tuple(self.io[index][2])
    ICudaEngine.get_binding_dtype = lambda self, index: DataType.FLOAT

    def set_binding_shape(self, binding, shape):
        _log("context.set_binding_shape", binding, tuple(shape))
        return self._set_shape(binding, shape)

    def execute_async_v2(self, bindings, stream_handle, input_consumed=None):
        _log("context.execute_async_v2", list(bindings), stream_handle)
        return self._run(list(bindings), stream_handle)

    IExecutionContext.set_binding_shape = set_binding_shape
    IExecutionContext.get_binding_shape = lambda self, binding: tuple(self.shapes[binding])
    IExecutionContext.execute_async_v2 = execute_async_v2

if _V >= (8, 5):
    ICudaEngine.num_io_tensors = property(lambda self: len(self.io))
    ICudaEngine.get_tensor_name = lambda self, index: self.io[index][0]
    ICudaEngine.get_tensor_mode = lambda self, name: TensorIOMode.INPUT if self.io[self._index(name)][1] else TensorIOMode.OUTPUT
    ICudaEngine.get_tensor_shape = lambda self, name: tuple(self.io[self._index(name)][2])
    ICudaEngine.get_tensor_dtype = lambda self, name: DataType.FLOAT

    def set_input_shape(self, name, shape):
        _log("context.set_input_shape", name, tuple(shape))
        return self._set_shape(self.engine._index(name), shape)

    def set_tensor_address(self, name, memory):
        _log("context.set_tensor_address", name, memory)
        self.addresses[self.engine._index(name)] = memory
        return True

    def execute_async_v3(self, stream_handle):
        _log("context.execute_async_v3", stream_handle)
        return self._run(self.addresses, stream_handle)

    IExecutionContext.set_input_shape = set_input_shape
    IExecutionContext.get_tensor_shape = lambda self, name: tuple(self.shapes[self.engine._index(name)])
    IExecutionContext.set_tensor_address = set_tensor_address
    IExecutionContext.execute_async_v3 = execute_async_v3
'''

# pycuda's documented driver API as the backend uses it; device memory is a dict of byte arrays by address.
FAKE_PYCUDA = {
    "__init__.py": "",
    "_driver.py": "class Error(Exception):\n    pass\n\n\nclass RuntimeError(Error):\n    pass\n",
    "driver.py": r'''
import itertools
import os

import numpy as np

from ._driver import Error, RuntimeError  # noqa: F401

MEMORY = {}
ALLOCATIONS = []
_addresses = itertools.count(0x7F0000000000, 0x10000)


def init(flags=0):
    if os.environ.get("FAKE_CUDA") == "nogpu":
        raise RuntimeError("cuInit failed: no CUDA-capable device is detected")


class Device(object):
    def __init__(self, number):
        self.number = number

    @staticmethod
    def count():
        return 1

    def name(self):
        return os.environ.get("FAKE_GPU", "NVIDIA Tegra X1")

    def compute_capability(self):
        return (5, 3)

    def make_context(self, flags=0):
        return Context()


class Context(object):
    def pop(self):
        pass


class DeviceAllocation(object):
    def __init__(self, nbytes):
        self.address = next(_addresses)
        MEMORY[self.address] = np.zeros(nbytes, np.uint8)
        ALLOCATIONS.append(self)

    def __int__(self):
        return self.address


def mem_alloc(nbytes):
    return DeviceAllocation(nbytes)


def pagelocked_empty(shape, dtype):
    return np.empty(shape, dtype)


class Stream(object):
    def __init__(self, flags=0):
        self.handle = next(_addresses)

    def synchronize(self):
        pass


def memcpy_htod_async(dest, src, stream=None):
    MEMORY[int(dest)][:] = np.frombuffer(np.ascontiguousarray(src).tobytes(), np.uint8)


def memcpy_dtoh_async(dest, src, stream=None):
    dest[...] = np.frombuffer(MEMORY[int(src)].tobytes(), dest.dtype).reshape(dest.shape)


def memcpy_htod(dest, src):
    memcpy_htod_async(dest, src)
''',
    "autoinit.py": "import pycuda.driver as cuda\n\ncuda.init()\ndevice = cuda.Device(0)\ncontext = device.make_context()\n",
}

VERSIONS = [("8.2.1.8", "bindings"), ("8.6.1.6", "tensors"), ("10.3.0.26", "tensors")]


def _write_fakes(root):
    (root / "tensorrt").mkdir(parents=True)
    (root / "tensorrt" / "__init__.py").write_text(FAKE_TENSORRT)
    (root / "pycuda").mkdir()
    for name, text in FAKE_PYCUDA.items():
        (root / "pycuda" / name).write_text(text)
    return root


def _forget_fakes():
    for name in list(sys.modules):
        if name in ("tensorrt", "pycuda") or name.startswith("pycuda.") or name == "edgekd_runtime.backends.tensorrt":
            del sys.modules[name]


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """Put the stand-ins first on the path; ``fakes(version, gpu=True)`` selects what they pretend to be."""
    root = _write_fakes(tmp_path / "fakes")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("EDGEKD_ENGINE_CACHE", str(tmp_path / "engines"))

    def select(version, gpu=True, gpu_name="NVIDIA Tegra X1"):
        _forget_fakes()
        monkeypatch.setenv("FAKE_TRT_VERSION", version)
        monkeypatch.setenv("FAKE_CUDA", "gpu" if gpu else "nogpu")
        monkeypatch.setenv("FAKE_GPU", gpu_name)
        import pycuda.driver
        import tensorrt

        return tensorrt, pycuda.driver

    yield select
    _forget_fakes()


@pytest.fixture(scope="module")
def jetson_bundle(tmp_path_factory):
    """The ONNX digits bundle of the Python 3.6 tests, with a TensorRT entry for the same ONNX as a Jetson bundle has
    (not verified on the host) and the jetson-nano profile's engine."""
    from edgekd_runtime import Artifact, TensorSpec
    from test_runtime_bundles import rewrite_manifest
    from test_runtime_py36 import onnx_bundle

    b = onnx_bundle(str(tmp_path_factory.mktemp("jetson")), name="jetson")

    def add_tensorrt(m):
        m["profile"]["engine"] = "tensorrt"
        art = Artifact("model.onnx", "tensorrt", "tensorrt", TensorSpec([-1, 8, 8, 1], "float32"), TensorSpec([-1, 10], "float32"),
                       settings={"precision": "fp16", "workspace_mb": 64}, verification="not verified here")
        m["artifacts"].append(art.to_plain())

    import pathlib

    rewrite_manifest(pathlib.Path(b["path"]), add_tensorrt)
    return b


def _expected(b, x):
    return (x.reshape(len(x), -1) / 16.0) @ b["w"] + b["b"]


@pytest.mark.parametrize("version,api", VERSIONS)
def test_each_version_runs_through_its_own_api_with_the_right_buffers(fakes, jetson_bundle, version, api):
    from edgekd_runtime import Bundle, Model

    trt, cuda = fakes(version)
    with Bundle.open(jetson_bundle["path"]) as bundle:
        model = Model.from_bundle(bundle, engine="tensorrt", allow_unverified=True)
    backend = model.backend
    x = jetson_bundle["x"][:5]
    np.testing.assert_allclose(model.predict(x), _expected(jetson_bundle, x), atol=1e-4)
    calls = [c[0] for c in trt.CALLS]
    info = model.describe()
    assert info["io_api"] == api and info["provider"] == "TensorRT %s (NVIDIA Tegra X1)" % version and info["built_now"]
    # Building: an explicit-batch network on 8.x (its ONNX parser needs it), the default on 10; workspace by each version's call.
    flags = [c[1] for c in trt.CALLS if c[0] == "builder.create_network"]
    assert flags == ([1] if version.startswith("8.") else [0])
    workspace = [c for c in trt.CALLS if c[0] in ("config.max_workspace_size", "config.set_memory_pool_limit")]
    assert workspace == ([("config.max_workspace_size", 64 << 20)] if version == "8.2.1.8" else [("config.set_memory_pool_limit", "WORKSPACE", 64 << 20)])
    # The dynamic batch pinned to 1 in the optimization profile and in the context.
    assert ("profile.set_shape", "input", (1, 8, 8, 1), (1, 8, 8, 1), (1, 8, 8, 1)) in trt.CALLS
    dev_in, dev_out = int(backend.dev_in), int(backend.dev_out)
    assert dev_in != dev_out and {dev_in, dev_out} <= {int(a) for a in cuda.ALLOCATIONS}
    stream = backend.stream.handle
    if api == "bindings":
        assert ("context.set_binding_shape", 0, (1, 8, 8, 1)) in trt.CALLS
        runs = [c for c in trt.CALLS if c[0] == "context.execute_async_v2"]
        assert runs == [("context.execute_async_v2", [dev_in, dev_out], stream)] * 5
        assert not hasattr(backend.context, "execute_async_v3")
    else:
        assert ("context.set_input_shape", "input", (1, 8, 8, 1)) in trt.CALLS
        assert ("context.set_tensor_address", "input", dev_in) in trt.CALLS and ("context.set_tensor_address", "logits", dev_out) in trt.CALLS
        assert [c for c in trt.CALLS if c[0] == "context.execute_async_v3"] == [("context.execute_async_v3", stream)] * 5
        # 8.6 still has the binding API (deprecated): the tensor API must win, and nothing run through bindings.
        assert "context.execute_async_v2" not in calls
        assert hasattr(backend.context, "execute_async_v2") == version.startswith("8.")


def test_engine_is_built_once_per_onnx_tensorrt_version_and_gpu(fakes, jetson_bundle, tmp_path):
    from edgekd_runtime import Bundle, Model

    def load(version, gpu_name="NVIDIA Tegra X1"):
        trt, _ = fakes(version, gpu_name=gpu_name)
        with Bundle.open(jetson_bundle["path"]) as bundle:
            model = Model.from_bundle(bundle, engine="tensorrt", allow_unverified=True)
        builds = [c for c in trt.CALLS if c[0] == "builder.build_serialized_network"]
        return model.describe(), len(builds)

    first, built = load("8.2.1.8")
    assert first["built_now"] and built == 1
    again, built = load("8.2.1.8")
    assert not again["built_now"] and built == 0 and again["engine_file"] == first["engine_file"]
    other_version, built = load("10.3.0.26")
    other_gpu, built_gpu = load("8.2.1.8", gpu_name="Orin (nvgpu)")
    assert built == built_gpu == 1
    files = {first["engine_file"], other_version["engine_file"], other_gpu["engine_file"]}
    assert len(files) == 3 and all(os.path.dirname(f) == str(tmp_path / "engines") for f in files)
    assert "trt8.2.1.8" in os.path.basename(first["engine_file"]) and "NVIDIA_Tegra_X1" in os.path.basename(first["engine_file"])


def test_pycuda_without_a_gpu_falls_back_to_the_next_artifact(fakes, jetson_bundle):
    from edgekd_runtime import Bundle, Model, profile
    from edgekd_runtime.backends import engine_available, engine_unavailable

    fakes("8.2.1.8", gpu=False)
    assert not engine_available("tensorrt")
    assert "no CUDA-capable device" in engine_unavailable("tensorrt")
    with Bundle.open(jetson_bundle["path"]) as bundle:
        model = Model.from_bundle(bundle, allow_unverified=True)
        report = profile(bundle, runs=3, warmup=1, allow_unverified=True)
    assert model.engine == "onnxruntime"
    note = model.describe()["engine_note"]
    assert "tensorrt is installed but not usable here" in note and "cuInit failed" in note and "ran the onnx artifact on onnxruntime" in note
    assert report["runtime"]["engine"] == "onnxruntime" and report["runtime"]["provider"] == "CPUExecutionProvider"
    assert report["runtime"]["engine_note"] == note


def test_a_usable_gpu_makes_tensorrt_the_profile_engine(fakes, jetson_bundle):
    from edgekd_runtime import Bundle, Model

    fakes("10.3.0.26")
    with Bundle.open(jetson_bundle["path"]) as bundle:
        model = Model.from_bundle(bundle, allow_unverified=True)
    assert model.engine == "tensorrt" and model.artifact.format == "tensorrt" and "engine_note" not in model.describe()


def test_asking_for_tensorrt_without_a_gpu_is_one_line_exit_4(tmp_path, jetson_bundle):
    root = _write_fakes(tmp_path / "fakes")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.path.join(ROOT, "runtime")]), FAKE_TRT_VERSION="8.2.1.8",
               FAKE_CUDA="nogpu", EDGEKD_ENGINE_CACHE=str(tmp_path / "engines"))
    proc = subprocess.run([sys.executable, "-m", "edgekd_runtime", "profile", jetson_bundle["path"], "--engine", "tensorrt", "--allow-unverified", "--runs", "2"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 4
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("edgekd-runtime: error: pycuda is installed but found no usable CUDA GPU")
    assert "cuInit failed" in proc.stderr and "--engine" in proc.stderr
