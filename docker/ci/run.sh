#!/usr/bin/env bash
# The whole Docker CI stage, also fine by hand (as root, Debian/Ubuntu host):
#   lint the Dockerfile, start a private engine, build the stand-in base, serve the local wheels,
#   run `pytest -m docker` with LSTMGAN_REQUIRE_DOCKER=1 (build, run, checks), then stop what it started.
#
#   docker/ci/run.sh [extra pytest args]
#
# The engine and the pip mirror are stopped on exit; their state (images, build cache) stays under
# LSTMGAN_DOCKER_STATE (default /tmp/lstmgan-docker), so a second run reuses the base image and the
# dependency layer. Set LSTMGAN_DOCKER_KEEP=1 to leave the engine running afterwards.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CI=$ROOT/docker/ci
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
cd "$ROOT"

stamp() { echo "docker-ci: $* [$((SECONDS))s]" >&2; }

cleanup() {
    "$CI/pip-mirror.sh" stop || true
    [[ ${LSTMGAN_DOCKER_KEEP:-0} == 1 ]] || "$CI/engine.sh" stop || true
}
trap cleanup EXIT

"$CI/lint.sh"
stamp "lint done"
eval "$("$CI/engine.sh" start)"
stamp "engine up ($DOCKER_HOST)"
LSTMGAN_STAND_IN_TORCH=${LSTMGAN_STAND_IN_TORCH-$PYTHON} "$CI/stand-in-base.sh"
stamp "stand-in base ready"
"$CI/pip-mirror.sh" start
stamp "pip mirror up"

export LSTMGAN_REQUIRE_DOCKER=1
export LSTMGAN_DOCKER_BASE_IMAGE=${LSTMGAN_STAND_IN_TAG:-lstmgan-base:stand-in}
LSTMGAN_DOCKER_BUILD_ARGS=$("$CI/pip-mirror.sh" build-args)
export LSTMGAN_DOCKER_BUILD_ARGS
"$PYTHON" -m pytest -m docker -ra -p no:cacheprovider --durations=0 tests/test_docker.py "$@"
stamp "tests passed"
docker image ls lstmgan >&2
