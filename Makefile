# memwm: set up a virtual environment and run things in it. Every target is idempotent.
#   make run    set up, then train the embedded default (a short memory task run on the CPU)
#   make test   set up, then run the test suite
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.memwm-installed
# torch is installed before the project, so that the project's install keeps the build chosen here.
# The default takes whatever build pip finds first: the CPU build only where a local wheel house
# (pip's find-links) serves one, otherwise PyPI's, which on Linux is the multi-GB CUDA build (what a
# GPU machine wants). Without a GPU, take the CPU build from PyTorch's CPU index:
#   PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu make run TORCH_SPEC=torch==2.13.0+cpu
# Another CUDA version comes the same way from https://download.pytorch.org/whl/cu<version>.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?= -n 2

.PHONY: setup sysdeps run test lint bench peers-venv clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Headless MuJoCo rendering (dm_control, Memory Maze) needs EGL and GL libraries.
sysdeps:
	@if ldconfig -p | grep -q 'libEGL.so.1' && ldconfig -p | grep -q 'libGL.so.1'; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq libegl1 libgl1 >/dev/null; \
	else echo "memwm: dm_control rendering needs libegl1 and libgl1 (sudo apt-get install -y libegl1 libgl1)"; fi

run: setup
	$(VENV)/bin/memwm train

test: setup sysdeps lint
	MUJOCO_GL=egl $(PY) -m pytest $(PYTEST_ARGS)

# ruff: the linter's rules and the formatter's style are in pyproject.toml
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(PY) -m benchmarks.scan

# The peers of benchmarks.peers, each in its own virtual environment (they pin their own versions).
peers-venv: .venv-sb3/.installed .venv-sheeprl/.installed

.venv-sb3/.installed:
	test -x .venv-sb3/bin/python || python3 -m venv .venv-sb3
	.venv-sb3/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	.venv-sb3/bin/python -m pip install --quiet sb3-contrib tqdm rich
	touch $@

.venv-sheeprl/.installed:
	test -x .venv-sheeprl/bin/python || python3 -m venv .venv-sheeprl
	.venv-sheeprl/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	.venv-sheeprl/bin/python -m pip install --quiet sheeprl==0.8.4 tyro
	touch $@

clean:
	rm -rf $(VENV) .venv-sb3 .venv-sheeprl .pytest_cache .hypothesis
