#!/usr/bin/env bash
# Real single-node SLURM cluster (munged + mariadbd + slurmdbd + slurmctld +
# slurmd) for lstmgan's tests and CI, on Debian bookworm, run as root, no
# systemd. Every daemon is started by hand and tracked by a pidfile.
#
# Usage:  tests/slurm/local-cluster.sh install|start|stop|status|env
#
#   install  apt-get install the Debian packages (idempotent, quiet)
#   start    fresh cluster: write configs, start daemons, wait until the node
#            is idle and sacct answers; exits 0 if it is already running
#   stop     scancel all jobs, then kill exactly the recorded daemons
#   status   liveness of each daemon, plus sinfo
#   env      prints `export SLURM_CONF=...`; use: eval "$(... env)"
#
# Everything (configs, logs, spool, state, database, munge socket) lives under
# $LSTMGAN_SLURM_DIR (default /tmp/lstmgan-slurm); /etc/slurm is untouched.
# The client commands (sbatch, sacct, ...) and submitit find the cluster only
# through SLURM_CONF, so export it (see `env`) in the shell that uses them.
#
# Optional env: LSTMGAN_SLURM_DB_PORT (mariadb TCP port on 127.0.0.1, 16033),
# LSTMGAN_SLURM_TIMEOUT (seconds `start` waits for readiness, 60),
# LSTMGAN_SLURM_CRED_EXPIRE (AuthInfo cred_expire, 10; slurm's minimum is 5).
set -euo pipefail

STATE_DIR="${LSTMGAN_SLURM_DIR:-/tmp/lstmgan-slurm}"
DB_PORT="${LSTMGAN_SLURM_DB_PORT:-16033}"
TIMEOUT="${LSTMGAN_SLURM_TIMEOUT:-60}"
CRED_EXPIRE="${LSTMGAN_SLURM_CRED_EXPIRE:-10}"
CLUSTER=lstmgan
HOST="$(hostname -s)"
CONF="$STATE_DIR/etc/slurm.conf"
MARKER="$STATE_DIR/.lstmgan-slurm"   # proves the dir is ours before we wipe it
PIDS="$STATE_DIR/pids"
LOGS="$STATE_DIR/log"
MUNGE_SOCKET="$STATE_DIR/munge/munge.socket"
DB_SOCKET="$STATE_DIR/mysql/mysqld.sock"
# Start order; stop goes the other way.
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)
PACKAGES=(slurm-wlm munge slurmdbd mariadb-server)

export DEBIAN_FRONTEND=noninteractive
export SLURM_CONF="$CONF"

log() { echo "local-cluster: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# pid of a daemon if its pidfile names a live process that is that daemon
# (checking the name guards against a stale pidfile and a reused pid).
live_pid() {
  local f="$PIDS/$1.pid" pid stat
  [[ -f $f ]] || return 1
  pid="$(cat "$f")"
  [[ $pid =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$1" ]] || return 1
  # A killed daemon may linger as a zombie until init reaps it: not alive.
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ ${stat%% *} != Z ]] || return 1
  echo "$pid"
}

any_alive() {
  local d
  for d in "${DAEMONS[@]}"; do live_pid "$d" >/dev/null && return 0; done
  return 1
}

# Last lines of a daemon's log (and its captured stdout/stderr).
show_log() {
  local f
  for f in "$LOGS/$1.log" "$LOGS/$1.out"; do
    [[ -s $f ]] || continue
    echo "----- tail of $f -----" >&2
    tail -n 30 "$f" >&2
  done
}

# fail DAEMON MSG: print the daemon's log, stop whatever we started, exit 1.
fail() {
  log "ERROR: $2"
  show_log "$1"
  log "stopping the partial cluster; logs stay in $LOGS"
  do_stop >/dev/null 2>&1 || true
  exit 1
}

# spawn NAME CMD...: run a daemon in the foreground of its own session
# (setsid; so $! is the daemon itself and a Ctrl-C on the caller does not
# reach it), stdin closed, output to the log dir; record the pid.
spawn() {
  local name="$1" pid i; shift
  setsid "$@" </dev/null >>"$LOGS/$name.out" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDS/$name.pid"
  # Wait for the exec chain (setsid, setpriv) to become the daemon itself.
  for ((i = 0; i < 100; i++)); do
    live_pid "$name" >/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  fail "$name" "$name exited right after starting"
}

# wait_for NAME WHAT CMD...: poll CMD until it succeeds, with the shared timeout.
wait_for() {
  local name="$1" what="$2"; shift 2
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    live_pid "$name" >/dev/null || fail "$name" "$name died while waiting for $what"
    ((SECONDS < deadline)) || fail "$name" "timed out after ${TIMEOUT}s waiting for $what"
    sleep 0.5
  done
}

do_install() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || { log "packages already installed"; return 0; }
  log "installing ${missing[*]}"
  # Debian's postinst scripts try to start the services; with no systemd they
  # just fail to, which is harmless: we start our own instances.
  if ! apt-get install -y -qq -o Dpkg::Use-Pty=0 "${missing[@]}" >/tmp/lstmgan-slurm-apt.log 2>&1; then
    log "install failed, running apt-get update and retrying"
    apt-get update -qq >>/tmp/lstmgan-slurm-apt.log 2>&1
    apt-get install -y -qq -o Dpkg::Use-Pty=0 "${missing[@]}" >>/tmp/lstmgan-slurm-apt.log 2>&1 ||
      { tail -n 30 /tmp/lstmgan-slurm-apt.log >&2; die "apt-get install failed"; }
  fi
}

# A fresh, empty state dir; only ever wipe a dir that we created.
fresh_state_dir() {
  if [[ -e $STATE_DIR ]]; then
    if [[ -f $MARKER ]]; then
      rm -rf "$STATE_DIR"
    elif [[ -n "$(ls -A "$STATE_DIR")" ]]; then
      die "$STATE_DIR exists, is not empty and was not made by this script; refusing to use it"
    fi
  fi
  mkdir -p "$STATE_DIR"/{etc,spool/slurmd,spool/slurmctld,munge,mysql} "$PIDS" "$LOGS"
  touch "$MARKER"
  # Dropped-privilege daemons (munge, mysql) must traverse the path.
  chmod 755 "$STATE_DIR"
}

write_slurm_conf() {
  local cpus mem_avail_mb real_mem def_mem
  cpus="$(nproc)"
  mem_avail_mb=$(($(awk '/^MemAvailable:/ {print $2}' /proc/meminfo) / 1024))
  # Below what slurmd detects, so the node is not drained for "Low RealMemory".
  real_mem=$((mem_avail_mb * 9 / 10))
  # A job with no --mem gets this per CPU; without it a job would take the
  # whole node's memory and jobs could never share the node.
  def_mem=$((real_mem / cpus < 1024 ? real_mem / cpus : 1024))

  cat >"$CONF" <<EOF
# Written by tests/slurm/local-cluster.sh; regenerated on every start.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# Short credential lifetime: a requeued job may only restart once the old
# credential expired (default 120 s: a requeue then takes ~2 min, with 10 it
# takes ~12 s); plus our own munged socket.
AuthInfo=cred_expire=$CRED_EXPIRE,socket=$MUNGE_SOCKET

StateSaveLocation=$STATE_DIR/spool/slurmctld
SlurmdSpoolDir=$STATE_DIR/spool/slurmd
SlurmctldPidFile=$STATE_DIR/spool/slurmctld.pid
SlurmdPidFile=$STATE_DIR/spool/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups: plain process tracking, no task binding or accounting gather.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
MpiDefault=none

# sacct needs real accounting: with accounting_storage/none it exits 1 and
# submitit reports UNKNOWN states (and result() of a cancelled job hangs).
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
# Connections to slurmdbd take their munge socket from here, not AuthInfo.
AccountingStoragePass=$MUNGE_SOCKET
JobCompType=jobcomp/none

SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$def_mem
# Reject impossible requests at submit time instead of pending forever.
EnforcePartLimits=ALL
# Schedule every 2 s, so a requeued job restarts quickly.
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
JobRequeue=1
MaxArraySize=1001
# Timeouts/cancels take effect fast.
KillWait=5
OverTimeLimit=0
InactiveLimit=0
MinJobAge=300
ReturnToService=2
SlurmdTimeout=300

NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

  # slurmdbd reads slurmdbd.conf from SLURM_CONF's directory; it must be
  # private to SlurmUser because it holds the DB password.
  cat >"$STATE_DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
LogFile=$LOGS/slurmdbd.log
PidFile=$STATE_DIR/spool/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$STATE_DIR/etc/slurmdbd.conf"
}

start_munged() {
  # munged refuses a socket dir that others cannot traverse and a key that
  # others can read; it runs as user munge with its own key for this cluster.
  chown munge:munge "$STATE_DIR/munge"
  # The log dir is root's; hand munged its own log file.
  install -o munge -g munge -m 640 /dev/null "$LOGS/munged.log"
  setpriv --reuid=munge --regid=munge --init-groups \
    mungekey --create --keyfile="$STATE_DIR/munge/munge.key" >>"$LOGS/munged.out" 2>&1 ||
    fail munged "mungekey could not create a key"
  spawn munged setpriv --reuid=munge --regid=munge --init-groups \
    munged --foreground --socket="$MUNGE_SOCKET" \
    --key-file="$STATE_DIR/munge/munge.key" --log-file="$LOGS/munged.log" \
    --pid-file="$STATE_DIR/munge/munged.pid" --seed-file="$STATE_DIR/munge/munged.seed"
  wait_for munged "munge to answer" \
    bash -c "munge -S '$MUNGE_SOCKET' -n | unmunge -S '$MUNGE_SOCKET'"
}

start_mariadbd() {
  local sql=(mariadb --no-defaults --socket="$DB_SOCKET" -u root)
  chown mysql:mysql "$STATE_DIR/mysql"
  install -o mysql -g mysql -m 640 /dev/null "$LOGS/mariadbd.log"
  # --no-defaults everywhere: ignore /etc/mysql, whose datadir/socket/port are
  # the system instance's.
  mariadb-install-db --no-defaults --user=mysql --datadir="$STATE_DIR/mysql/data" \
    --skip-test-db --auth-root-authentication-method=socket \
    >"$LOGS/mariadb-install.log" 2>&1 || fail mariadb-install "mariadb-install-db failed"
  # lock wait 900: slurmdbd logs an error for anything lower.
  spawn mariadbd mariadbd --no-defaults --user=mysql --datadir="$STATE_DIR/mysql/data" \
    --socket="$DB_SOCKET" --pid-file="$STATE_DIR/mysql/mariadbd.pid" \
    --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve \
    --log-error="$LOGS/mariadbd.log" --innodb-lock-wait-timeout=900
  wait_for mariadbd "mariadb to accept connections" \
    mariadb-admin --no-defaults --socket="$DB_SOCKET" -u root ping
  # slurmdbd connects over TCP to 127.0.0.1 (skip-name-resolve: no 'localhost').
  "${sql[@]}" -e "
    CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
    FLUSH PRIVILEGES;" >>"$LOGS/mariadbd.out" 2>&1 ||
    fail mariadbd "could not create the slurm_acct_db database/user"
}

start_slurm() {
  spawn slurmdbd slurmdbd -D
  # slurmdbd creates its tables on first start; sacctmgr answers once done.
  wait_for slurmdbd "slurmdbd to answer sacctmgr" sacctmgr -n -i list cluster
  # Register the cluster up front (slurmctld would also do it on start), so
  # accounting has it before the first job.
  if [[ -z "$(sacctmgr -n -P list cluster where name=$CLUSTER format=cluster 2>/dev/null)" ]]; then
    sacctmgr -i add cluster "$CLUSTER" >>"$LOGS/slurmdbd.out" 2>&1 ||
      fail slurmdbd "sacctmgr could not add cluster $CLUSTER"
  fi

  # -c: no saved state (fresh job ids from 1); -i: ignore state errors.
  spawn slurmctld slurmctld -D -c -i
  wait_for slurmctld "slurmctld to answer" scontrol ping

  spawn slurmd slurmd -D -N "$HOST"
  wait_for slurmd "node $HOST to become idle" \
    bash -c "sinfo -h -n '$HOST' -o %t | grep -qx idle"
  wait_for slurmdbd "sacct to work" sacct -n -X -a
}

do_start() {
  if any_alive; then
    local d missing=()
    for d in "${DAEMONS[@]}"; do live_pid "$d" >/dev/null || missing+=("$d"); done
    if ((${#missing[@]} == 0)); then
      log "already running (state dir $STATE_DIR)"
      return 0
    fi
    die "partly running (${missing[*]} not alive); run '$0 stop' first"
  fi
  for b in munged mungekey mariadbd mariadb-install-db slurmdbd slurmctld slurmd sacctmgr; do
    command -v "$b" >/dev/null || die "$b not found; run '$0 install' first"
  done
  local t0=$SECONDS
  fresh_state_dir
  write_slurm_conf
  start_munged
  start_mariadbd
  start_slurm
  log "cluster '$CLUSTER' up in $((SECONDS - t0))s; state in $STATE_DIR"
  log "use it with: eval \"\$($0 env)\""
}

# Wait up to $2 seconds for pid $1 to exit.
wait_gone() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

# cluster_leftovers SID...: pids of leftovers that belong to this cluster
# only: everything in the given sessions (those of the daemons we just
# stopped), or in the session of a slurmstepd that holds a file open under our
# state dir (it inherits slurmd's log; each slurmstepd and its job's tasks
# share a session of their own, so they outlive a dead slurmd).
cluster_leftovers() {
  local sids=("$@") pid sid fd
  for pid in $(ps -C slurmstepd -o pid= || true); do
    for fd in /proc/"$pid"/fd/*; do
      if [[ "$(readlink "$fd" 2>/dev/null)" == "$STATE_DIR"/* ]]; then
        sids+=("$(ps -o sid= -p "$pid" | tr -d ' ')"); break
      fi
    done
  done
  ((${#sids[@]})) || return 0
  while read -r pid sid; do
    [[ " ${sids[*]} " == *" $sid "* ]] && echo "$pid"
  done < <(ps -e -o pid=,sid=)
  return 0
}

do_stop() {
  [[ -d $PIDS ]] || { log "not running (no $PIDS)"; return 0; }
  # Cancel jobs while slurm is still up, so slurmstepd cleans its own tasks.
  if live_pid slurmctld >/dev/null && live_pid slurmd >/dev/null; then
    local jobs
    jobs="$(squeue -h -o %A 2>/dev/null || true)"
    if [[ -n $jobs ]]; then
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      local deadline=$((SECONDS + 15))
      while [[ -n "$(squeue -h -o %A 2>/dev/null || true)" ]] && ((SECONDS < deadline)); do sleep 0.5; done
    fi
  fi
  local i d pid sids=()
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    d="${DAEMONS[i]}"
    pid="$(live_pid "$d")" || continue
    sids+=("$pid")   # each daemon leads its own session (setsid)
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 20; then
      log "$d (pid $pid) ignored SIGTERM for 20s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 5 || log "WARNING: $d (pid $pid) is still alive"
    fi
    log "stopped $d (pid $pid)"
  done
  local left
  left="$(cluster_leftovers "${sids[@]}" | tr '\n' ' ')"
  if [[ -n ${left// /} ]]; then
    log "killing leftover processes of this cluster: $left"
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
  fi
  rm -f "$PIDS"/*.pid
}

do_status() {
  local d pid rc=0
  for d in "${DAEMONS[@]}"; do
    if pid="$(live_pid "$d")"; then
      echo "$d: running (pid $pid)"
    else
      echo "$d: not running"; rc=1
    fi
  done
  if live_pid slurmctld >/dev/null; then sinfo || true; fi
  return $rc
}

do_env() {
  echo "export SLURM_CONF=$CONF"
}

case "${1:-}" in
  install) do_install ;;
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  env) do_env ;;
  *) echo "usage: $0 install|start|stop|status|env" >&2; exit 2 ;;
esac
