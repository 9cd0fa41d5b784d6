#!/usr/bin/env bash
# A private Docker engine for CI and for trying the image by hand, on a Debian/Ubuntu host as root.
#
#   docker/ci/engine.sh install   apt-get install docker.io (skipped when dockerd is already there)
#   docker/ci/engine.sh start     install, start dockerd in the background, wait until it answers;
#                                 prints `export DOCKER_HOST=...` on stdout, so: eval "$(docker/ci/engine.sh start)"
#   docker/ci/engine.sh env       prints the same export line
#   docker/ci/engine.sh status    running or not (exit 0 / 1)
#   docker/ci/engine.sh stop      stop dockerd by its PID and wait until it has exited
#
# Everything (images, containers, socket, PID file, log) lives under the state dir, default /tmp/lstmgan-docker
# (override: LSTMGAN_DOCKER_STATE=/path). The engine never touches a system Docker: its own socket, data-root
# and exec-root. Images survive stop/start (cache); `rm -rf` the state dir after `stop` to drop them.
#
# Networking: LSTMGAN_DOCKER_NETWORK=none (the default) starts dockerd with --iptables=false --bridge=none,
# which works in sandboxes without iptables or a bridge module; then build with `--network host` and run
# with `--network none` (or host). LSTMGAN_DOCKER_NETWORK=bridge keeps Docker's default networking.
set -euo pipefail

STATE=${LSTMGAN_DOCKER_STATE:-/tmp/lstmgan-docker}
NETWORK=${LSTMGAN_DOCKER_NETWORK:-none}
START_TIMEOUT=${LSTMGAN_DOCKER_START_TIMEOUT:-60}
SOCK=$STATE/docker.sock
PIDFILE=$STATE/dockerd.pid
LOG=$STATE/dockerd.log
export DOCKER_HOST=unix://$SOCK

say() { echo "engine.sh: $*" >&2; }

running() {
    [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

answers() {
    docker info --format '{{.ServerVersion}}' >/dev/null 2>&1
}

install() {
    if command -v dockerd >/dev/null 2>&1; then
        return 0
    fi
    say "installing docker.io (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends docker.io >&2 ||
        { apt-get update >&2 && apt-get install -y --no-install-recommends docker.io >&2; }
    # Debian's package starts nothing here (no systemd), but be sure no service engine competes with ours.
    command -v docker >/dev/null 2>&1 || { say "no docker client on PATH after installing docker.io"; exit 1; }
}

start() {
    install
    if running && answers; then
        say "already running (pid $(cat "$PIDFILE"))"
        echo "export DOCKER_HOST=$DOCKER_HOST"
        return 0
    fi
    mkdir -p "$STATE/data" "$STATE/exec"
    local net=()
    if [[ $NETWORK == none ]]; then
        net=(--iptables=false --ip6tables=false --bridge=none)
    fi
    say "starting dockerd (state $STATE, network: $NETWORK)"
    local t0=$SECONDS
    # setsid: its own session, so the caller's Ctrl-C or job control does not reach it; stop() ends it by PID.
    setsid dockerd \
        --data-root "$STATE/data" \
        --exec-root "$STATE/exec" \
        --pidfile "$PIDFILE" \
        --host "$DOCKER_HOST" \
        --storage-driver overlay2 \
        "${net[@]}" \
        >"$LOG" 2>&1 </dev/null &
    local pid=$!
    until answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "dockerd exited while starting; last lines of $LOG:"
            tail -n 20 "$LOG" >&2
            exit 1
        fi
        if ((SECONDS - t0 > START_TIMEOUT)); then
            say "dockerd did not answer within ${START_TIMEOUT}s; see $LOG"
            exit 1
        fi
        sleep 0.5
    done
    say "dockerd $(docker info --format '{{.ServerVersion}}') up in $((SECONDS - t0))s (pid $(cat "$PIDFILE")), client $(docker version --format '{{.Client.Version}}')"
    echo "export DOCKER_HOST=$DOCKER_HOST"
}

stop() {
    if ! [[ -f $PIDFILE ]]; then
        say "not running (no $PIDFILE)"
        return 0
    fi
    local pid
    pid=$(cat "$PIDFILE")
    if kill -0 "$pid" 2>/dev/null; then
        say "stopping dockerd (pid $pid)"
        kill -TERM "$pid"
        local i
        for ((i = 0; i < 60; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "dockerd still running after 30s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 1
        fi
    fi
    # dockerd removes its PID file on a clean exit; a SIGKILLed one leaves it (and its containerd) behind.
    if [[ -f $STATE/exec/containerd/containerd.pid ]]; then
        local cpid
        cpid=$(cat "$STATE/exec/containerd/containerd.pid")
        kill -0 "$cpid" 2>/dev/null && kill -TERM "$cpid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    say "stopped"
}

status() {
    if running && answers; then
        say "running (pid $(cat "$PIDFILE")), DOCKER_HOST=$DOCKER_HOST"
        return 0
    fi
    say "not running"
    return 1
}

case ${1:-} in
install) install ;;
start) start ;;
stop) stop ;;
status) status ;;
env) echo "export DOCKER_HOST=$DOCKER_HOST" ;;
*)
    echo "usage: $0 install|start|stop|status|env" >&2
    exit 2
    ;;
esac
