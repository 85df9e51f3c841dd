"""TensorRT engine with pycuda buffers (Jetson and other NVIDIA devices).

Engines are tied to the GPU and the TensorRT version that built them, so the bundle carries the ONNX
model and build settings; the engine is built on first use and cached under a key of
(model sha256, GPU name, compute capability, TensorRT version, precision).

Two TensorRT Python APIs, chosen by what the installed one offers rather than by its version number:
named I/O tensors (``num_io_tensors``, ``set_tensor_address``, ``execute_async_v3``) on TensorRT 8.5+ and 10,
and binding indices (``num_bindings``, ``execute_async_v2``) on 8.0-8.4, which is what the original Jetson
Nano's JetPack 4.6 ships (TensorRT 8.2). Both with pycuda buffers. Not executed on the machines this project
is developed on (no TensorRT, no CUDA driver): tests/test_tensorrt_api.py checks the calls against stand-ins
written from each version's documented API; see the README.

Public API (the host builds its optional engine and chooses the int8 calibration inputs with these, so
that a host-built engine is made exactly as the device makes it): ``build_engine``, ``calibration_sample``,
``calibration_batches`` and ``CALIBRATION_SAMPLES``.
"""

import hashlib
import os

import numpy as np

from ..errors import EngineUnavailableError, ModelError

__all__ = ["CALIBRATION_SAMPLES", "Backend", "build_engine", "calibration_batches", "calibration_sample", "io_api", "usable"]

# At most this many representative inputs calibrate an int8 engine; they travel in the bundle
# (trt_calibration.npy), so the count bounds its size as well as the calibration time.
CALIBRATION_SAMPLES = 200

CACHE_DIR = os.environ.get("EDGEKD_ENGINE_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "edgekd", "engines"))


_NO_GPU_HINT = "run it on a machine with an NVIDIA GPU and its driver, or choose another engine with --engine (e.g. onnxruntime)"


def _first_line(exc):
    text = str(exc).strip()
    return "%s: %s" % (type(exc).__name__, text.splitlines()[0]) if text else type(exc).__name__


def _tensorrt():
    try:
        import tensorrt as trt
    except (ImportError, OSError) as exc:  # OSError: the package is there but libnvinfer is not
        raise EngineUnavailableError(
            "TensorRT is not importable (%s)" % _first_line(exc),
            "on a Jetson use the JetPack python3-libnvinfer package; elsewhere pip install 'edgekd-runtime[tensorrt]'",
        )
    return trt


def _imports():
    trt = _tensorrt()
    try:
        import pycuda.autoinit  # noqa: F401  (creates the CUDA context)
        import pycuda.driver as cuda
    except ImportError as exc:
        raise EngineUnavailableError(
            "pycuda is not importable (%s)" % _first_line(exc),
            "on a Jetson use the JetPack python3-libnvinfer package and pip install pycuda",
        )
    except Exception as exc:
        # pycuda.autoinit initialises the driver as it is imported: without a GPU or a driver it raises pycuda's own
        # error types (pycuda._driver.RuntimeError "cuInit failed: no CUDA-capable device is detected", LogicError)
        # or a plain RuntimeError from make_default_context, none of which is an ImportError.
        raise EngineUnavailableError("pycuda is installed but found no usable CUDA GPU here (%s)" % _first_line(exc), _NO_GPU_HINT)
    return trt, cuda


_usable = []  # the one answer of usable(), once asked: a CUDA context is made once per process anyway


def usable():
    """(True, None) when TensorRT imports and pycuda makes a CUDA context on this machine's GPU; else (False, why).

    The engine selection asks this before choosing TensorRT, so that pycuda installed on a machine without a
    usable GPU (a CI runner, a Jetson image on a PC) makes the runtime run the bundle's next artifact instead
    of failing; the context made here is the one the backend then uses (pycuda.autoinit keeps it).
    """
    if not _usable:
        try:
            _imports()
            _usable.append((True, None))
        except EngineUnavailableError as exc:
            _usable.append((False, str(exc)))
    return _usable[0]


def io_api(engine, context):
    """Which I/O API this TensorRT offers: "tensors" (8.5+, 10) or "bindings" (8.0-8.4), by feature, not version."""
    if all(hasattr(engine, a) for a in ("num_io_tensors", "get_tensor_name", "get_tensor_mode")) and all(
        hasattr(context, a) for a in ("set_tensor_address", "execute_async_v3")
    ):
        return "tensors"
    if hasattr(engine, "num_bindings") and hasattr(context, "execute_async_v2"):
        return "bindings"
    raise EngineUnavailableError(
        "this TensorRT offers neither named I/O tensors (execute_async_v3) nor bindings (execute_async_v2)",
        "use TensorRT 8.0 or newer (JetPack 4.6 or later on a Jetson)",
    )


def cache_key(model_path, gpu_name, capability, trt_version, precision):
    digest = hashlib.sha256()
    with open(model_path, "rb") as handle:
        digest.update(handle.read())
    parts = [digest.hexdigest()[:16], gpu_name.replace(" ", "_"), "sm%d%d" % capability, "trt" + trt_version, precision]
    return "-".join(parts) + ".engine"


def calibration_sample(inputs, limit=CALIBRATION_SAMPLES):
    """The representative inputs the int8 calibrator sees: a fixed random choice of at most ``limit`` of
    ``inputs``, as one contiguous float32 array (the same inputs give the same sample on every machine)."""
    x = np.asarray(inputs, dtype=np.float32)
    return np.ascontiguousarray(x[np.random.default_rng(0).permutation(len(x))[:limit]])


def calibration_batches(samples, batch_size=1):
    """Contiguous float32 batches of the representative inputs, in their order, for the int8 calibrator."""
    x = np.ascontiguousarray(np.asarray(samples, dtype=np.float32))
    return [np.ascontiguousarray(x[i : i + batch_size]) for i in range(0, len(x) - batch_size + 1, batch_size)]


def make_calibrator(trt, cuda, batches, cache_path):
    """An entropy calibrator that feeds ``batches`` through a device buffer; its cache is kept beside the engine."""

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = iter(batches)
            self.device = cuda.mem_alloc(batches[0].nbytes)

        def get_batch_size(self):
            return int(batches[0].shape[0])

        def get_batch(self, names):
            batch = next(self.batches, None)
            if batch is None:
                return None
            cuda.memcpy_htod(self.device, batch)
            return [int(self.device)]

        def read_calibration_cache(self):
            if cache_path and os.path.exists(cache_path):
                with open(cache_path, "rb") as handle:
                    return handle.read()
            return None

        def write_calibration_cache(self, cache):
            if cache_path:
                with open(cache_path, "wb") as handle:
                    handle.write(bytes(cache))

    return Calibrator()


def build_engine(onnx_path, precision="fp16", workspace_mb=256, calibration=None, cache_path=None):
    """A serialized batch-1 engine from an ONNX file (TensorRT 8.x or 10); the host and the device both build with this.

    ``precision`` is "fp32", "fp16" or "int8". For int8, ``calibration`` holds representative float inputs
    (more than ``CALIBRATION_SAMPLES`` are cut down with ``calibration_sample``; a sample already chosen
    is used as given, in its order) and ``cache_path`` where the calibrator keeps its cache; layers
    without an int8 kernel run in fp16. Raises EngineUnavailableError when TensorRT (or, for int8,
    pycuda) is not importable, ModelError when the ONNX does not parse or the build fails.
    """
    trt = _tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    try:
        builder = trt.Builder(logger)
    except Exception as exc:
        # Without a usable GPU TensorRT's bindings fail here (pybind11 "factory function returned nullptr", a TypeError).
        raise EngineUnavailableError("TensorRT cannot create a builder: no usable CUDA GPU here (%s)" % _first_line(exc), _NO_GPU_HINT)
    # TensorRT 8's ONNX parser needs an explicit-batch network; 10 has only those (the flag is deprecated there).
    major = int(str(trt.__version__).split(".")[0])
    network = builder.create_network(0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as handle:
        if not parser.parse(handle.read()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelError("TensorRT could not parse %s: %s" % (onnx_path, errors[:300]), "try another ONNX opset, or replace the layer TensorRT lacks")
    config = builder.create_builder_config()
    if hasattr(config, "set_memory_pool_limit"):  # TensorRT 8.3+; 10 removed max_workspace_size
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    else:
        config.max_workspace_size = int(workspace_mb) << 20
    # ONNX from tf2onnx has a dynamic batch: pin it to 1 for the device.
    inp = network.get_input(0)
    shape = [1 if d < 0 else d for d in inp.shape]
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, shape, shape, shape)
    config.add_optimization_profile(profile)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        if calibration is None or len(calibration) == 0:
            raise ModelError("TensorRT int8 needs representative inputs for its calibrator", "rebuild the bundle with calibration data, or use fp16")
        cuda = _imports()[1]
        if len(calibration) > CALIBRATION_SAMPLES:
            calibration = calibration_sample(calibration)
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = make_calibrator(trt, cuda, calibration_batches(calibration), cache_path)
        config.set_calibration_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError("TensorRT failed to build an engine from %s (see its log above)" % onnx_path)
    return bytes(serialized)


class Backend(object):
    name = "tensorrt"

    def __init__(self, model_path, artifact=None, precision=None, **_):
        trt, cuda = _imports()
        self.cuda = cuda
        settings = getattr(artifact, "settings", {}) or {}
        self.precision = precision or settings.get("precision", "fp16")
        device = cuda.Device(0)
        self.gpu, self.trt_version = device.name(), str(trt.__version__)
        key = cache_key(model_path, self.gpu, device.compute_capability(), self.trt_version, self.precision)
        os.makedirs(CACHE_DIR, exist_ok=True)
        self.engine_path = os.path.join(CACHE_DIR, key)
        self.built_now = not os.path.exists(self.engine_path)
        if self.built_now:
            calibration = None
            if self.precision == "int8" and settings.get("calibration_data"):
                # The representative inputs travel in the bundle: a calibration cache from another
                # TensorRT version would not be reusable, so the device calibrates its own engine.
                calibration = np.load(os.path.join(os.path.dirname(model_path), settings["calibration_data"]), allow_pickle=False)
            blob = build_engine(model_path, self.precision, settings.get("workspace_mb", 256), calibration, self.engine_path + ".calib")
            tmp = self.engine_path + ".tmp"
            with open(tmp, "wb") as handle:
                handle.write(blob)
            os.replace(tmp, self.engine_path)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        with open(self.engine_path, "rb") as handle:
            self.engine = runtime.deserialize_cuda_engine(handle.read())
        if self.engine is None:
            raise ModelError("cached engine %s does not deserialize; delete it to rebuild" % self.engine_path)
        self.context = self.engine.create_execution_context()
        self.stream = cuda.Stream()
        self.api = io_api(self.engine, self.context)
        ios = self._tensor_ios(trt) if self.api == "tensors" else self._binding_ios(trt)
        # Every input and output gets a device buffer (an engine runs only with all of them bound); the first
        # input takes the model's input, the first output gives the scores.
        self.buffers = []
        for key, is_input, shape, dtype in ios:
            host = cuda.pagelocked_empty(tuple(shape), dtype)
            self.buffers.append((key, is_input, host, cuda.mem_alloc(host.nbytes)))
        self.host_in, self.dev_in = [(h, d) for _, i, h, d in self.buffers if i][0]
        self.host_out, self.dev_out = [(h, d) for _, i, h, d in self.buffers if not i][0]
        self._in_dtype = self.host_in.dtype
        if self.api == "tensors":
            for key, _, _, device in self.buffers:
                self.context.set_tensor_address(key, int(device))
        else:
            self.bindings = [0] * self.engine.num_bindings
            for key, _, _, device in self.buffers:
                self.bindings[key] = int(device)

    def _tensor_ios(self, trt):
        """(name, is_input, shape, dtype) per I/O tensor, TensorRT 8.5+/10; a dynamic batch is pinned to 1."""
        engine, ios = self.engine, []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.context.set_input_shape(name, [1 if d < 0 else d for d in engine.get_tensor_shape(name)])
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            ios.append((name, is_input, tuple(self.context.get_tensor_shape(name)), np.dtype(trt.nptype(engine.get_tensor_dtype(name)))))
        return ios

    def _binding_ios(self, trt):
        """(binding index, is_input, shape, dtype) per binding, TensorRT 8.0-8.4; a dynamic batch is pinned to 1."""
        engine, ios = self.engine, []
        for i in range(engine.num_bindings):
            if engine.binding_is_input(i):
                shape = [1 if d < 0 else d for d in engine.get_binding_shape(i)]
                if list(engine.get_binding_shape(i)) != shape:
                    self.context.set_binding_shape(i, shape)
        for i in range(engine.num_bindings):
            ios.append((i, engine.binding_is_input(i), tuple(self.context.get_binding_shape(i)), np.dtype(trt.nptype(engine.get_binding_dtype(i)))))
        return ios

    def invoke(self, x):
        x = np.asarray(x)
        outs = []
        for i in range(x.shape[0]):
            np.copyto(self.host_in, x[i : i + 1].astype(self._in_dtype))
            self.cuda.memcpy_htod_async(self.dev_in, self.host_in, self.stream)
            if self.api == "tensors":
                ok = self.context.execute_async_v3(stream_handle=self.stream.handle)
            else:
                ok = self.context.execute_async_v2(bindings=self.bindings, stream_handle=self.stream.handle)
            if not ok:
                raise ModelError("TensorRT failed to run the engine %s (see its log above)" % self.engine_path)
            self.cuda.memcpy_dtoh_async(self.host_out, self.dev_out, self.stream)
            self.stream.synchronize()
            outs.append(np.array(self.host_out))
        return np.concatenate(outs, axis=0)

    def describe(self):
        return {"engine": self.name, "provider": "TensorRT %s (%s)" % (self.trt_version, self.gpu), "io_api": self.api,
                "precision": self.precision, "engine_file": self.engine_path, "built_now": self.built_now}
