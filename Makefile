# Two entry points: `make demo` and `make test`. Each creates .venv and installs both packages when needed.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Defined before the rules that name it: make expands a rule's prerequisites when it reads the rule.
WEBSTAMP := web/node_modules/.installed

.PHONY: demo test install clean py36 mcu-tools arm64-tools arm64-check browser-tools

$(STAMP): pyproject.toml runtime/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e './runtime[litert,onnx,tflm]' -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) $(WEBSTAMP)

demo: $(STAMP)
	$(BIN)/edgekd demo --out out/demo

test: $(STAMP) $(WEBSTAMP) py36 mcu-tools arm64-tools browser-tools
	$(BIN)/python -m pytest -n 2 tests

# LiteRT.js for the phone app (edgekd app), from the pinned web/package-lock.json; redone when the lock changes.
$(WEBSTAMP): web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $(WEBSTAMP)

# Debian's chromium for tests/test_phone_app.py: apt-get installs it when missing and run as root; otherwise the
# apt line is printed, and those tests fail naming it.
browser-tools:
	@test -x /usr/bin/chromium || { if [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
	  || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; \
	  else echo "make: no /usr/bin/chromium; as root: apt-get install -y chromium (tests/test_phone_app.py fails without it)"; fi; } || true

# arm-none-eabi-gcc, newlib and qemu-system-arm for tests/test_firmware.py: apt-get installs what is missing when
# run as root; otherwise the apt line is printed, and those tests fail naming it.
mcu-tools: $(STAMP)
	-$(BIN)/python -m edgekd.firmware.toolchain --install

# debootstrap, qemu-user-static and binfmt-support for tests/test_arm64.py (an emulated Debian 12 arm64 userland):
# apt-get installs what is missing when run as root and qemu-aarch64 is registered with binfmt_misc; otherwise the
# reason is printed, and that test fails naming it.
arm64-tools: $(STAMP)
	-$(BIN)/python benchmarks/arm64_userland.py --install

# Issue 16's full ARM64 check, as root: benchmarks/results/arm64_check.json and the table in benchmarks/README.md.
# First run about an hour on 2 busy cores (debootstrap 32 min, venv 4, a small CIFAR-10 bundle 15, the check 9);
# cached in .cache/arm64 after that, a rerun is the check alone (4-9 min).
arm64-check: $(STAMP) arm64-tools
	$(BIN)/python benchmarks/arm64_check.py

# The runtime on Python 3.6 (the Jetson Nano's JetPack 4.6): pyenv's 3.6.15 with the last numpy and onnxruntime
# made for it, the runtime installed by 3.6's own pip and setuptools. Remade when the runtime changes. A failure
# does not stop `make test`: its reason goes to .venv36/FAILED and tests/test_runtime_py36.py fails showing it.
PY36    ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)/versions/3.6.15/bin/python3.6
VENV36  := .venv36
STAMP36 := $(VENV36)/.installed

$(STAMP36): $(shell find runtime/edgekd_runtime -name '*.py') runtime/setup.cfg
	@test -x "$(PY36)" || { echo "no Python 3.6 at $(PY36): pyenv install 3.6.15, or make PY36=/path/to/python3.6"; exit 1; }
	test -x $(VENV36)/bin/python || $(PY36) -m venv $(VENV36)
	$(VENV36)/bin/python -m pip install --quiet 'pip==21.3.1' 'setuptools==59.6.0' 'wheel==0.37.1'
	$(VENV36)/bin/python -m pip install --quiet 'numpy==1.19.5' 'onnxruntime==1.10.0'
	$(VENV36)/bin/python -m pip install --quiet --no-deps --no-build-isolation --force-reinstall ./runtime
	touch $(STAMP36)

py36:
	@mkdir -p $(VENV36) && rm -f $(VENV36)/FAILED
	@$(MAKE) --no-print-directory $(STAMP36) > $(VENV36)/make.log 2>&1 || { tail -n 5 $(VENV36)/make.log > $(VENV36)/FAILED; \
	  echo "make: the Python 3.6 venv was not made (see $(VENV36)/FAILED); tests/test_runtime_py36.py will fail"; }

clean:
	rm -rf out .edgekd-cache .pytest_cache
