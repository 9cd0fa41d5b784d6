# One entry point for set-up, the main job, tests, images and benchmarks.
# `make run` and `make test` create .venv and install everything they need first.
PYTHON   ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
VERSION  := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
REVISION := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

# Docker image: any CUDA PyTorch runtime whose torch/torchvision satisfy pyproject.toml
# (pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime ships torch 2.9.1 and torchvision 0.24.1; pip keeps them).
# Keep in sync with ARG BASE_IMAGE in docker/Dockerfile.
BASE_IMAGE ?= pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime
IMAGE      ?= lstmgan
TAG        ?= $(VERSION)
LATEST_TAG ?= latest
# Extra `docker build` flags, e.g. --network host, or CI's local pip mirror (docker/ci/pip-mirror.sh build-args).
DOCKER_BUILD_ARGS ?=
DOCKER     ?= docker
SIF        ?= lstmgan.sif

.PHONY: install run test test-fast lint bench bench-gpu docker-requirements docker-build apptainer-build clean

# PyTorch's wheels for another CUDA, e.g. a driver older than the pinned torch's CUDA 13 build:
# make clean install TORCH_INDEX=https://download.pytorch.org/whl/cu126 (CUDA 12 wheels, any CUDA 12 driver)
TORCH_INDEX ?=

$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/pip install --quiet -c constraints.txt --index-url $(TORCH_INDEX) torch torchvision)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

install: $(BIN)/.installed

# The main job: the palindrome sweep (RNN and LSTM at lengths 5, 10, 15, 20), locally, W&B offline.
run: install
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/lstmgan sweep --config jobs/palindrome-sweep.yaml

# The whole suite. SLURM and Docker tests run when their services are up (see .ci/run), else skip.
# One pytest-xdist worker per usable core (nproc: the affinity mask), a test file per worker at a time, so a
# file's shared fixtures (a trained reference run, the Docker image) are made once. TEST_WORKERS=0: serial.
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
PYTEST       := $(BIN)/python -m pytest -ra -n $(TEST_WORKERS) --dist loadfile
test: install
	$(PYTEST) --durations=15

test-fast: install
	$(PYTEST) -m "not slurm and not docker and not slow"

lint: install
	$(BIN)/pip install --quiet ruff==0.17.5
	$(BIN)/ruff check lstmgan tests benchmarks

bench: install
	$(BIN)/python benchmarks/palindrome.py
	$(BIN)/python benchmarks/gan.py
	$(BIN)/python benchmarks/cli_help.py

# GAN ms/step eager vs graphed, a measured whole epoch, 200 epochs projected, the default sweep: CUDA when
# present; it refuses to measure a CPU when an NVIDIA GPU is there (or LSTMGAN_REQUIRE_CUDA=1) but unusable.
# On a CPU-only machine (CI): make bench-gpu BENCH_GPU_ARGS="--device cpu --quick"
BENCH_GPU_ARGS ?=
bench-gpu: install
	$(BIN)/python benchmarks/gpu.py $(BENCH_GPU_ARGS) --json bench-gpu.json

# The W&B key is never a build argument: give it at run time (docker run -e WANDB_API_KEY ...).
# docker/requirements.txt: pyproject.toml's dependencies for the image's dependency layer (a test checks it).
docker-requirements:
	{ sed -n '1,3p' docker/requirements.txt; $(PYTHON) docker/requirements-from-pyproject.py pyproject.toml; } \
		> docker/requirements.txt.new && mv docker/requirements.txt.new docker/requirements.txt

docker-build:
	$(DOCKER) build -f docker/Dockerfile \
		--build-arg BASE_IMAGE=$(BASE_IMAGE) \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
		$(DOCKER_BUILD_ARGS) -t $(IMAGE):$(TAG) $(if $(LATEST_TAG),-t $(IMAGE):$(LATEST_TAG)) .

# For clusters without Docker: convert the local Docker image into a SIF file (run `make docker-build` first;
# copy $(SIF) to the cluster). A SIF runs read-only as the calling user: `apptainer run --nv $(SIF) ...`.
apptainer-build:
	apptainer build --force $(SIF) docker-daemon://$(IMAGE):$(TAG)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
