#!/bin/sh
# Install the Raspberry Pi demo as a service (Raspberry Pi OS 64-bit, Pi 4 or 5): LiteRT through
# pip install 'edgekd-runtime[litert]', picamera2/OpenCV from apt (sudo apt install python3-picamera2 python3-opencv).
#   sudo demos/raspberry_pi/install.sh /path/to/bundle [http://collector:8765 TOKEN]
exec "$(dirname "$0")/../install_demo.sh" raspberry_pi litert "$@"
