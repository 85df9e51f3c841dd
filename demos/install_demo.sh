#!/bin/sh
# Install a device demo as a service, from a checkout of edgekd (demos/raspberry_pi/install.sh and
# demos/jetson/install.sh call this with their name and the runtime's pip extra):
#
#   sudo demos/install_demo.sh raspberry_pi litert /path/to/bundle [http://collector:8765 TOKEN]
#
# A venv in /opt/edgekd-demo that also sees the system's packages (picamera2, OpenCV with GStreamer, and on a
# Jetson TensorRT's python3-libnvinfer come from apt/JetPack), the runtime with its engine in it
# (pip install 'edgekd-runtime[EXTRA]', from this checkout), the demo, the bundle, and the systemd unit.
# PREFIX=... and SKIP_SYSTEMD=1 install elsewhere without the service (as a normal user, for a try).
set -eu
DEMO=${1:?usage: install_demo.sh DEMO EXTRA BUNDLE [COLLECTOR_URL TOKEN]}
EXTRA=${2:?usage: install_demo.sh DEMO EXTRA BUNDLE [COLLECTOR_URL TOKEN]}
shift 2
REPO=$(cd "$(dirname "$0")/.." && pwd)
HERE=$REPO/demos/$DEMO
PREFIX=${PREFIX:-/opt/edgekd-demo}
BUNDLE=${1:?usage: install.sh BUNDLE [COLLECTOR_URL TOKEN]}
[ -e "$BUNDLE" ] || { echo "install.sh: no bundle at $BUNDLE" >&2; exit 2; }
[ -f "$HERE/classify.py" ] || { echo "install.sh: no demo named $DEMO" >&2; exit 2; }

python3 -m venv --system-site-packages "$PREFIX/venv"
PY=$PREFIX/venv/bin/python
# pip 21.3.1 is the last for Python 3.6 (JetPack 4.6); older ones cannot read the runtime's wheels' tags.
"$PY" -m pip install --quiet --upgrade 'pip>=21.3.1' || "$PY" -m pip install --quiet 'pip==21.3.1'
if [ "$EXTRA" = onnx ] && "$PY" -c "import onnxruntime" 2> /dev/null; then
    EXTRA=""  # a Jetson's onnxruntime-gpu (NVIDIA's wheel for its JetPack) is already there: keep it, CUDA and all
fi
SPEC="${EXTRA:+[$EXTRA]}"
if [ -f "$REPO/runtime/setup.cfg" ]; then
    "$PY" -m pip install --quiet "$REPO/runtime$SPEC"
else
    "$PY" -m pip install --quiet "edgekd-runtime$SPEC"
fi
if "$PY" -c "import tensorrt" 2> /dev/null && ! "$PY" -c "import pycuda" 2> /dev/null; then
    "$PY" -m pip install --quiet pycuda  # TensorRT's buffers; builds against the JetPack CUDA headers
fi
mkdir -p "$PREFIX/demos/$DEMO"
cp "$REPO/demos/frames.py" "$REPO/demos/classifier_loop.py" "$PREFIX/demos/"
cp "$HERE/classify.py" "$PREFIX/demos/$DEMO/"
rm -rf "$PREFIX/bundle"
cp -r "$BUNDLE" "$PREFIX/bundle"
# The bundle must open (every file against its sha256) with the engine installed, before a service depends on it.
"$PREFIX/venv/bin/edgekd-runtime" info "$PREFIX/bundle" > /dev/null

if [ "${SKIP_SYSTEMD:-0}" = 1 ]; then
    echo "installed in $PREFIX; run: $PREFIX/venv/bin/python $PREFIX/demos/$DEMO/classify.py --bundle $PREFIX/bundle"
    exit 0
fi
id edgekd > /dev/null 2>&1 || useradd --system --home-dir /var/lib/edgekd --shell /usr/sbin/nologin edgekd
if [ ! -f /etc/default/edgekd-classifier ]; then
    {
        echo "# edgekd classifier settings (read by the systemd unit)"
        if [ $# -ge 3 ]; then echo "EDGEKD_ARGS=\"--report-to $2\""; echo "EDGEKD_REPORT_TOKEN=$3"; else echo "EDGEKD_ARGS="; fi
    } > /etc/default/edgekd-classifier
    chmod 600 /etc/default/edgekd-classifier
fi
cp "$HERE/edgekd-classifier.service" /etc/systemd/system/edgekd-classifier.service
systemctl daemon-reload
systemctl enable --now edgekd-classifier.service
echo "running: journalctl -u edgekd-classifier -f"
