#!/usr/bin/env bash
# Serve this machine's local wheel indexes to `docker build`, for CI (and by hand where the same holds).
#
# Why: on a base image without torch (the CI stand-in, unless LSTMGAN_STAND_IN_TORCH gave it one), pip in
# the build installs torch and its CUDA libraries, about 2.8 GB of wheels; on any base, it installs the rest.
# This machine keeps wheels on disk in PEP 503 "simple" indexes that the host's pip config names as file://
# URLs (extra-index-url). A build container cannot read host paths, so this serves their parent folders over
# http://127.0.0.1 (the build runs with --network host) and `build-args` prints the docker build flags that
# point pip at them, plus the project's constraints.txt so the build resolves the same versions as the tested
# venv (torch 2.14.1 here, present on disk).
# PyPI stays pip's main index for whatever the local indexes lack; for the same file pip prefers the
# extra (local) index. Nothing of this is in the default build: without these flags the Dockerfile uses PyPI.
#
#   docker/ci/pip-mirror.sh start        start the server (idempotent)
#   docker/ci/pip-mirror.sh build-args   print: --network host --build-arg PIP_EXTRA_INDEX_URL=... ...
#   docker/ci/pip-mirror.sh stop         stop it by PID
#
# Env: LSTMGAN_PIP_MIRROR_INDEXES (space-separated file:// or /path index URLs; default: the file:// URLs
# in `pip config` index-url/extra-index-url and in PIP_INDEX_URL/PIP_EXTRA_INDEX_URL),
# LSTMGAN_PIP_MIRROR_PORT (default 47419, else a free one), LSTMGAN_DOCKER_STATE (default /tmp/lstmgan-docker).
set -euo pipefail

STATE=${LSTMGAN_DOCKER_STATE:-/tmp/lstmgan-docker}
DIR=$STATE/pip-mirror
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PYTHON=${PYTHON:-python3}

say() { echo "pip-mirror.sh: $*" >&2; }

running() {
    [[ -f $DIR/server.pid ]] && kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null
}

local_indexes() {
    if [[ -n ${LSTMGAN_PIP_MIRROR_INDEXES:-} ]]; then
        echo "$LSTMGAN_PIP_MIRROR_INDEXES"
        return
    fi
    {
        "$PYTHON" -m pip config get global.index-url 2>/dev/null || true
        "$PYTHON" -m pip config get global.extra-index-url 2>/dev/null || true
        echo "${PIP_INDEX_URL:-} ${PIP_EXTRA_INDEX_URL:-}"
    } | tr ' ' '\n' | grep -E '^(file://)?/' | awk '!seen[$0]++' | tr '\n' ' '
}

start() {
    if running; then
        say "already serving on port $(cat "$DIR/port")"
        return 0
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR/www"
    local n=0 url path urls=()
    for url in $(local_indexes); do
        path=${url#file://}
        path=${path%/}
        [[ -d $path ]] || { say "skipping $url (no such folder)"; continue; }
        # Serve the index's parent: its pages link to wheels with relative URLs (../../files/x.whl).
        ln -s "$(dirname "$path")" "$DIR/www/$n"
        urls+=("$n/$(basename "$path")")
        n=$((n + 1))
    done
    if ((n == 0)); then
        say "no local file:// pip index found; builds will use PyPI only"
    fi
    cp "$ROOT/constraints.txt" "$DIR/www/constraints.txt"
    # A fixed port keeps the build args, and so docker's build cache keys, the same from run to run.
    local port=${LSTMGAN_PIP_MIRROR_PORT:-47419}
    if ! "$PYTHON" -c "import socket, sys; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1])))" "$port" 2>/dev/null; then
        say "port $port is taken; using a free one (the dependency layer will not come from the build cache)"
        port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    fi
    echo "$port" >"$DIR/port"
    printf '%s\n' "${urls[@]}" >"$DIR/indexes"
    setsid "$PYTHON" -m http.server --bind 127.0.0.1 --directory "$DIR/www" "$port" \
        >"$DIR/server.log" 2>&1 </dev/null &
    echo $! >"$DIR/server.pid"
    local i
    for ((i = 0; i < 50; i++)); do
        "$PYTHON" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/constraints.txt', timeout=2)" \
            2>/dev/null && break
        sleep 0.2
    done
    running || { say "server did not start; see $DIR/server.log"; exit 1; }
    say "serving ${urls[*]:-nothing} and constraints.txt on http://127.0.0.1:$port (pid $(cat "$DIR/server.pid"))"
}

build_args() {
    running || { say "not running; start it first: $0 start"; exit 1; }
    local port base extra="" u
    port=$(cat "$DIR/port")
    base=http://127.0.0.1:$port
    while read -r u; do
        [[ -n $u ]] && extra+="${extra:+ }$base/$u"
    done <"$DIR/indexes"
    # Quoted for a shell (make's recipe line, or eval): the extra index list holds spaces.
    printf -- '--network host'
    [[ -n $extra ]] && printf -- " --build-arg 'PIP_EXTRA_INDEX_URL=%s'" "$extra"
    printf -- ' --build-arg PIP_CONSTRAINT=%s/constraints.txt\n' "$base"
}

stop() {
    if running; then
        local pid
        pid=$(cat "$DIR/server.pid")
        kill -TERM "$pid"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
        say "stopped"
    fi
    rm -f "$DIR/server.pid"
}

case ${1:-} in
start) start ;;
build-args) build_args ;;
stop) stop ;;
*)
    echo "usage: $0 start|build-args|stop" >&2
    exit 2
    ;;
esac
