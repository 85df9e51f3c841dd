#!/bin/sh
# Install the Jetson demo as a service (JetPack 4.6 or 6): TensorRT from JetPack (python3-libnvinfer) with pycuda,
# ONNX Runtime as the fallback (NVIDIA's onnxruntime-gpu wheel when installed first, else PyPI's CPU one).
#   sudo demos/jetson/install.sh /path/to/bundle [http://collector:8765 TOKEN]
exec "$(dirname "$0")/../install_demo.sh" jetson onnx "$@"
