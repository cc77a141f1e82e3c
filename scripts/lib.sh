# shellcheck shell=bash
# Shared helpers for the scripts in scripts/. Source it; do not run it.
#
# Defaults mirror the Makefile (which documents every variable) so that a script
# run by hand behaves like the make target. Keep the two in sync.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

: "${PALAVER_DATABASE_URL:=postgres://postgres@127.0.0.1:5432/palaver}"
: "${PALAVER_TEST_DATABASE_URL:=postgres://postgres@127.0.0.1:5432/palaver_test}"
: "${PALAVER_REDIS_URL:=redis://127.0.0.1:6379}"
: "${PALAVER_KAFKA_BROKERS:=127.0.0.1:9092}"
: "${KAFKA_VERSION:=4.4.0}"
: "${KAFKA_ROOT:=$HOME/.local/share/palaver/kafka-$KAFKA_VERSION}"
: "${KAFKA_HEAP_OPTS:=-Xms256m -Xmx512m}"
: "${KAFKA_CONTROLLER_PORT:=9093}"
: "${DEV_DIR:=$REPO_ROOT/.dev}"
: "${UP_TIMEOUT:=30}"
# The package pins of scripts/chart-tools.txt, without its comments; the venv is named after them.
chart_tools_pins() { grep '^[A-Za-z]' "$REPO_ROOT/scripts/chart-tools.txt"; }
: "${CHART_TOOLS_ROOT:=$HOME/.local/share/palaver/chart-tools-$(chart_tools_pins | sha256sum | cut -c1-12)}"
: "${KUBE_VERSION:=1.33.13}"
: "${ETCD_VERSION:=3.5.21}"
: "${KUBE_TOOLS_ROOT:=$HOME/.local/share/palaver/kube-$KUBE_VERSION}"
: "${CARGO:=cargo}"
export PALAVER_DATABASE_URL PALAVER_TEST_DATABASE_URL PALAVER_REDIS_URL PALAVER_KAFKA_BROKERS \
    KAFKA_VERSION KAFKA_ROOT KAFKA_HEAP_OPTS KAFKA_CONTROLLER_PORT DEV_DIR UP_TIMEOUT CHART_TOOLS_ROOT \
    KUBE_VERSION ETCD_VERSION KUBE_TOOLS_ROOT CARGO

# DEV_DIR must be absolute: the broker's config names its data directory inside it.
case "$DEV_DIR" in
    /*) ;;
    *) DEV_DIR="$REPO_ROOT/$DEV_DIR" ;;
esac
PID_DIR="$DEV_DIR/pids"

info() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Last lines of a log, to make a failure self-explanatory.
log_tail() {
    local file=$1
    [[ -n $file ]] || return 0
    if [[ -s $file ]]; then
        printf -- '--- last lines of %s ---\n' "$file" >&2
        tail -n 30 "$file" >&2
        printf -- '---\n' >&2
    else
        printf '(log %s is empty or missing)\n' "$file" >&2
    fi
}

# True when something accepts TCP connections on host:port (bash's /dev/tcp:
# no nc needed on a bare machine).
tcp_open() {
    # shellcheck disable=SC2016  # expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# wait_for DESC LOGFILE PID CMD... : poll CMD until it succeeds, at most UP_TIMEOUT
# seconds. PID (may be empty) is the process expected to serve; if it dies we stop
# waiting at once. Fails with the log tail.
wait_for() {
    local desc=$1 logfile=$2 pid=$3
    shift 3
    local deadline=$((SECONDS + UP_TIMEOUT))
    until "$@"; do
        if [[ -n $pid ]] && ! pid_alive "$pid"; then
            printf 'error: %s exited before it became ready\n' "$desc" >&2
            log_tail "$logfile"
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            printf 'error: %s not ready after %ss\n' "$desc" "$UP_TIMEOUT" >&2
            log_tail "$logfile"
            exit 1
        fi
        sleep 0.5
    done
}

# --- URLs -----------------------------------------------------------------

# host:port part of scheme://[user[:pass]@]host[:port][/path][?query]
url_authority() {
    local u=${1#*://}
    u=${u%%/*}
    u=${u%%\?*}
    printf '%s\n' "${u##*@}"
}

# url_host_port URL DEFAULT_PORT -> "host port" (IPv6 brackets removed)
url_host_port() {
    local a host port
    a=$(url_authority "$1")
    if [[ $a == \[* ]]; then
        host=${a%%]*}
        host=${host#[}
        port=${a##*]}
        port=${port#:}
    elif [[ $a == *:* ]]; then
        host=${a%:*}
        port=${a##*:}
    else
        host=$a
        port=
    fi
    printf '%s %s\n' "${host:-127.0.0.1}" "${port:-$2}"
}

# Database name of a postgres URL (path without query).
pg_url_dbname() {
    local u=${1#*://}
    u=${u%%\?*}
    [[ $u == */* ]] || return 0
    printf '%s\n' "${u#*/}"
}

# Same server, maintenance database "postgres": used to create the others.
pg_admin_url() {
    local base=${1%%\?*} query=
    [[ $1 == *\?* ]] && query="?${1#*\?}"
    printf '%s/postgres%s\n' "${base%/*}" "$query"
}

is_loopback() {
    [[ $1 == 127.* || $1 == localhost || $1 == ::1 ]]
}

# First broker of the comma-separated list, without an optional tcp:// prefix.
first_broker() {
    local b=${PALAVER_KAFKA_BROKERS%%,*}
    printf '%s\n' "${b#*://}"
}

# --- processes ------------------------------------------------------------

pid_file() { printf '%s/%s.pid\n' "$PID_DIR" "$1"; }

# PID recorded for NAME, or nothing.
read_pid() {
    local f
    f=$(pid_file "$1")
    [[ -r $f ]] || return 0
    head -n 1 "$f" | tr -dc '0-9'
}

# Name of the program a service NAME runs, to guard against PID reuse.
service_program() {
    case $1 in
        postgres) echo postgres ;;
        redis) echo redis-server ;;
        kafka) echo kafka.Kafka ;;
        *) echo "$1" ;;
    esac
}

# True when PID runs and is not a zombie (an orphan may wait for a reaper that
# never comes in a container, and kill -0 succeeds on zombies).
pid_alive() {
    local stat
    [[ -n $1 ]] || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# True when PID is alive and its command line mentions the expected program.
pid_is() {
    local pid=$1 program=$2 cmd
    pid_alive "$pid" || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *"$program"* ]]
}

# True when service NAME was started by `make up` and is still running.
ours_running() {
    pid_is "$(read_pid "$1")" "$(service_program "$1")"
}

# --- tools ----------------------------------------------------------------

# Directory with initdb/pg_ctl: Debian keeps them off PATH, newest major wins.
pg_bin_dir() {
    local d
    d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
    if [[ -n $d && -x $d/initdb ]]; then
        printf '%s\n' "$d"
    elif command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
    fi
}

# Major version of the java on PATH (17 for 'openjdk version "17.0.x"'), or nothing.
java_major() {
    command -v java >/dev/null || return 0
    java -version 2>&1 | sed -n 's/.* version "\([0-9][0-9]*\).*/\1/p' | head -n 1
}

# True when java 17 or newer is on PATH (Kafka 4.x brokers need 17).
java_ok() {
    local v
    v=$(java_major)
    [[ -n $v ]] && ((v >= 17))
}

# True when KAFKA_ROOT holds a complete install of KAFKA_VERSION: deps.sh writes
# palaver-complete (the version) as the last step, after every jar is in lib/.
kafka_ok() {
    java_ok &&
        [[ -r $KAFKA_ROOT/lib/kafka_2.13-$KAFKA_VERSION.jar ]] &&
        [[ $(cat "$KAFKA_ROOT/palaver-complete" 2>/dev/null) == "$KAFKA_VERSION" ]]
}

# True when the chart-check venv holds exactly those pins (deps.sh records them in it as the
# last step of an install).
chart_tools_ok() {
    [[ -x $CHART_TOOLS_ROOT/bin/python ]] && [[ $(chart_tools_pins) == "$(cat "$CHART_TOOLS_ROOT/palaver-pins.txt" 2>/dev/null)" ]]
}

# What an install of the Kubernetes tools was built from: the versions and the wrapper module
# (scripts/kube/go.mod, go.sum). A change to any of them makes the next `make deps-test` rebuild.
kube_tools_stamp() {
    printf 'kube %s etcd %s module %s\n' "$KUBE_VERSION" "$ETCD_VERSION" \
        "$(cat "$REPO_ROOT/scripts/kube/go.mod" "$REPO_ROOT/scripts/kube/go.sum" | sha256sum | cut -c1-16)"
}

# True when KUBE_TOOLS_ROOT holds a complete install (kube-tools.sh writes palaver-complete last).
kube_tools_ok() {
    local b
    for b in kube-apiserver kube-controller-manager kubectl etcd; do
        [[ -x $KUBE_TOOLS_ROOT/bin/$b ]] || return 1
    done
    [[ $(cat "$KUBE_TOOLS_ROOT/palaver-complete" 2>/dev/null) == "$(kube_tools_stamp)" ]]
}

# python3 that can build a venv and run the chart tools (3.10 or newer: helm-python-sdk).
python_ok() {
    command -v python3 >/dev/null &&
        python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null
}

# PostgreSQL refuses to run as root: run its server tools as user postgres then.
as_pg_user() {
    if ((EUID == 0)); then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# stop_pid NAME PID SIGNAL: signal PID, wait up to STOP_TIMEOUT (10 s) for it to go,
# then SIGKILL it.
stop_pid() {
    local name=$1 pid=$2 sig=$3 deadline
    pid_alive "$pid" || return 0
    kill -s "$sig" "$pid" 2>/dev/null || return 0
    deadline=$((SECONDS + ${STOP_TIMEOUT:-10}))
    while pid_alive "$pid"; do
        if ((SECONDS >= deadline)); then
            warn "$name (pid $pid) ignored SIG$sig for ${STOP_TIMEOUT:-10}s: killing it"
            kill -s KILL "$pid" 2>/dev/null || true
            sleep 0.5
            return 0
        fi
        sleep 0.2
    done
}

# --- Runs that start the stack and, on exit, stop only what they started ----------------

# Background pods of this run (the caller appends their PIDs); stopped first on exit.
RUN_POD_PIDS=()
RUN_STARTED_FILE=

# shellcheck disable=SC2317  # called by the EXIT trap
run_cleanup() {
    local pid names=()
    trap - INT TERM
    for pid in "${RUN_POD_PIDS[@]}"; do
        stop_pid palaverd "$pid" TERM
    done
    [[ -n $RUN_STARTED_FILE ]] || return 0
    mapfile -t names <"$RUN_STARTED_FILE"
    rm -f "$RUN_STARTED_FILE"
    if ((${#names[@]})); then
        info "stopping what this run started: ${names[*]}"
        bash "$REPO_ROOT/scripts/down.sh" "${names[@]}" || true
    fi
}

# Installs the exit/Ctrl-C/TERM cleanup, then runs `up`, recording what it starts.
stack_run_begin() {
    RUN_STARTED_FILE=$(mktemp)
    trap run_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    UP_STARTED_FILE=$RUN_STARTED_FILE bash "$REPO_ROOT/scripts/up.sh"
}
