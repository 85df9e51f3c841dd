"""TensorRT engine with pycuda buffers (Jetson and other NVIDIA devices).

Engines are tied to the GPU and the TensorRT version that built them, so the bundle carries the ONNX
model and build settings; the engine is built on first use and cached under a key of
(model sha256, GPU name, compute capability, TensorRT version, precision).

Written against the TensorRT 10 Python API (named I/O tensors, execute_async_v3). Not executed on the
machines this project is developed on (no TensorRT, no CUDA driver): see the README.

Public API (the host builds its optional engine and chooses the int8 calibration inputs with these, so
that a host-built engine is made exactly as the device makes it): ``build_engine``, ``calibration_sample``,
``calibration_batches`` and ``CALIBRATION_SAMPLES``.
"""

import hashlib
import os

import numpy as np

from ..errors import EngineUnavailableError, ModelError

__all__ = ["CALIBRATION_SAMPLES", "Backend", "build_engine", "calibration_batches", "calibration_sample"]

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
            "on a Jetson use the JetPack python3-libnvinfer package; elsewhere pip install tensorrt",
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
    """A serialized batch-1 engine from an ONNX file (TensorRT 10 API); the host and the device both build with this.

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
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as handle:
        if not parser.parse(handle.read()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelError("TensorRT could not parse %s: %s" % (onnx_path, errors[:300]), "try another ONNX opset, or replace the layer TensorRT lacks")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
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
        key = cache_key(model_path, device.name(), device.compute_capability(), trt.__version__, self.precision)
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
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT][0]
        self.output_name = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT][0]
        in_shape = [1 if d < 0 else d for d in self.engine.get_tensor_shape(self.input_name)]
        self.context.set_input_shape(self.input_name, in_shape)
        self._in_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        self.host_in = cuda.pagelocked_empty(tuple(in_shape), self._in_dtype)
        self.host_out = cuda.pagelocked_empty(out_shape, out_dtype)
        self.dev_in = cuda.mem_alloc(self.host_in.nbytes)
        self.dev_out = cuda.mem_alloc(self.host_out.nbytes)
        self.context.set_tensor_address(self.input_name, int(self.dev_in))
        self.context.set_tensor_address(self.output_name, int(self.dev_out))

    def invoke(self, x):
        x = np.asarray(x)
        outs = []
        for i in range(x.shape[0]):
            np.copyto(self.host_in, x[i : i + 1].astype(self._in_dtype))
            self.cuda.memcpy_htod_async(self.dev_in, self.host_in, self.stream)
            self.context.execute_async_v3(self.stream.handle)
            self.cuda.memcpy_dtoh_async(self.host_out, self.dev_out, self.stream)
            self.stream.synchronize()
            outs.append(np.array(self.host_out))
        return np.concatenate(outs, axis=0)

    def describe(self):
        return {"engine": self.name, "precision": self.precision, "engine_file": self.engine_path, "built_now": self.built_now}
