#!/usr/bin/env bash
# The runtime on an NVIDIA GPU machine: which engines and ONNX Runtime execution providers it finds there, and the
# demo's jetson-nano bundle profiled once per provider, each report saying which provider actually ran.
#
#   make demo                                   # here: builds out/demo/jetson-nano
#   bash benchmarks/gpu_check.sh [BUNDLE] [OUTDIR]   # there, from the repository root; needs numpy + onnxruntime
#
# OUTDIR defaults to benchmarks/results/gpu_check (or $OUT when set): commit its profile-PROVIDER.json files.
#
# Only the runtime's own folder is put on the path (no install), as on a device with a copied checkout.
set -u
bundle=${1:-out/demo/jetson-nano}
out=${2:-${OUT:-benchmarks/results/gpu_check}}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONPATH="$PWD/runtime${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi -L || echo "nvidia-smi: not found"
"$py" - <<'PY'
import importlib, platform
print("python", platform.python_version(), platform.machine())
for name in ("numpy", "onnxruntime", "tensorrt", "pycuda", "ai_edge_litert", "tflite_runtime"):
    try:
        m = importlib.import_module(name)
        print(name, getattr(m, "__version__", "?"))
    except Exception as e:
        print(name, "missing:", type(e).__name__, e)
try:
    import onnxruntime as ort
    print("onnxruntime providers:", ort.get_available_providers(), "device:", ort.get_device())
except Exception:
    pass
PY
status=0
for providers in TensorrtExecutionProvider CUDAExecutionProvider CPUExecutionProvider; do
  echo "== profile with --providers $providers"
  "$py" -m edgekd_runtime profile "$bundle" --engine onnxruntime --providers "$providers" --runs 300 --json "$out/profile-$providers.json" || status=1
done
exit $status
