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
# Object storage (S3 API) of file attachments; the credentials are dev-only values.
: "${PALAVER_S3_ENDPOINT:=http://127.0.0.1:7070}"
: "${PALAVER_S3_BUCKET:=palaver}"
: "${PALAVER_S3_REGION:=us-east-1}"
: "${PALAVER_S3_ACCESS_KEY_ID:=palaver-dev}"
: "${PALAVER_S3_SECRET_ACCESS_KEY:=palaver-dev-secret-key}"
: "${VERSITYGW_VERSION:=v1.8.0}"
: "${VERSITYGW_ROOT:=$HOME/.local/share/palaver/versitygw-$VERSITYGW_VERSION}"
: "${DEV_DIR:=$REPO_ROOT/.dev}"
: "${UP_TIMEOUT:=60}"
# The package pins of scripts/chart-tools.txt, without its comments; the venv is named after them.
chart_tools_pins() { grep '^[A-Za-z]' "$REPO_ROOT/scripts/chart-tools.txt"; }
: "${CHART_TOOLS_ROOT:=$HOME/.local/share/palaver/chart-tools-$(chart_tools_pins | sha256sum | cut -c1-12)}"
: "${KUBE_VERSION:=1.33.13}"
: "${ETCD_VERSION:=3.5.21}"
: "${KUBE_TOOLS_ROOT:=$HOME/.local/share/palaver/kube-$KUBE_VERSION}"
: "${CARGO:=cargo}"
# Test-only tools (make deps-test), each built once per machine from its pinned Go module.
: "${HELM_VERSION:=v3.22.0}"
: "${HELM_ROOT:=$HOME/.local/share/palaver/helm-$HELM_VERSION}"
: "${PROMTOOL_VERSION:=v0.316.0}"
: "${PROMTOOL_ROOT:=$HOME/.local/share/palaver/promtool-$PROMTOOL_VERSION}"
: "${GATEWAY_API_VERSION:=v1.6.3}"
: "${GATEWAY_API_ROOT:=$HOME/.local/share/palaver/gateway-api-$GATEWAY_API_VERSION}"
export PALAVER_DATABASE_URL PALAVER_TEST_DATABASE_URL PALAVER_REDIS_URL PALAVER_KAFKA_BROKERS \
    KAFKA_VERSION KAFKA_ROOT KAFKA_HEAP_OPTS KAFKA_CONTROLLER_PORT DEV_DIR UP_TIMEOUT CHART_TOOLS_ROOT CARGO \
    HELM_VERSION HELM_ROOT PROMTOOL_VERSION PROMTOOL_ROOT KUBE_VERSION ETCD_VERSION KUBE_TOOLS_ROOT \
    GATEWAY_API_VERSION GATEWAY_API_ROOT PALAVER_S3_ENDPOINT PALAVER_S3_BUCKET PALAVER_S3_REGION \
    PALAVER_S3_ACCESS_KEY_ID PALAVER_S3_SECRET_ACCESS_KEY VERSITYGW_VERSION VERSITYGW_ROOT

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

# --- steps: progress, a time for each step, and on failure which step failed and how to retry --
#
# A script names its steps with `step NAME RETRY` (RETRY: the command that redoes that step);
# each step ends where the next begins or where the script ends. The EXIT trap below prints the
# time of the whole script, or which step failed, after how long, and RETRY.

SCRIPT_NAME=${SCRIPT_NAME:-$(basename "${BASH_SOURCE[1]:-$0}" .sh)}
SCRIPT_T0=${EPOCHREALTIME/[.,]/}
STEP_NAME='' STEP_RETRY='' STEP_T0=''
STEP_TIMES=()
EXIT_HOOKS=()

# Microseconds since the epoch (bash 5's EPOCHREALTIME, no fork).
now_us() { printf '%s\n' "${EPOCHREALTIME/[.,]/}"; }

# A duration given in microseconds, as 0.4s, 12.3s or 4m05s.
fmt_us() {
    local us=$1 s
    s=$((us / 1000000))
    if ((s >= 60)); then
        printf '%dm%02ds\n' $((s / 60)) $((s % 60))
    else
        printf '%d.%ds\n' "$s" $((us % 1000000 / 100000))
    fi
}

since() { fmt_us $(($(now_us) - $1)); }

# step NAME RETRY: ends the current step (printing its time) and begins NAME.
step() {
    step_end
    STEP_NAME=$1 STEP_RETRY=$2 STEP_T0=$(now_us)
    printf '==> [%s] %s\n' "$SCRIPT_NAME" "$STEP_NAME"
}

step_end() {
    [[ -n $STEP_NAME ]] || return 0
    local took
    took=$(since "$STEP_T0")
    printf '==> [%s] %s: done in %s\n' "$SCRIPT_NAME" "$STEP_NAME" "$took"
    STEP_TIMES+=("$STEP_NAME $took")
    STEP_NAME=
}

# on_exit CMD: run CMD when the script exits; the last registered runs first (so what was
# started last is stopped first).
on_exit() { EXIT_HOOKS=("$1" "${EXIT_HOOKS[@]}"); }

# shellcheck disable=SC2317  # called by the EXIT trap
lib_exit() {
    local rc=$1 hook failed=$STEP_NAME retry=$STEP_RETRY t0=$STEP_T0
    # A second Ctrl-C (a terminal signals the whole process group; `timeout` forwards it once
    # more) must not cut the cleanup short: every hook is bounded (stop_pid).
    trap - EXIT
    trap '' INT TERM
    if ((rc == 0)); then
        step_end
    fi
    for hook in "${EXIT_HOOKS[@]}"; do
        "$hook" || true
    done
    if ((rc == 0)); then
        if ((${#STEP_TIMES[@]} > 1)); then
            local summary
            summary=$(printf '%s, ' "${STEP_TIMES[@]}")
            printf '==> [%s] finished in %s (%s)\n' "$SCRIPT_NAME" "$(since "$SCRIPT_T0")" "${summary%, }"
        fi
    elif [[ -n $failed ]]; then
        if ((rc == 130 || rc == 143)); then
            printf 'error: [%s] interrupted during step "%s" (after %s)\n' "$SCRIPT_NAME" "$failed" "$(since "$t0")" >&2
        else
            printf 'error: [%s] step "%s" failed after %s (exit status %s)\n' "$SCRIPT_NAME" "$failed" "$(since "$t0")" "$rc" >&2
        fi
        [[ -z $retry ]] || printf 'error: fix what the lines above say, then retry with: %s\n' "$retry" >&2
    fi
    exit "$rc"
}
trap 'lib_exit $?' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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

# http_ok HOST PORT PATH: true when GET PATH answers 200 (bash's /dev/tcp: no curl needed).
http_ok() {
    # shellcheck disable=SC2016  # expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "GET %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n" "$3" "$1" "$2" >&3
        IFS= read -r status <&3
        [[ $status == "HTTP/1."?" 200"* ]]' _ "$1" "$2" "$3" 2>/dev/null
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
        s3) echo versitygw ;;
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

# True when VERSITYGW_ROOT holds a complete build of VERSITYGW_VERSION (deps.sh, through
# go_tool_install, writes palaver-complete last).
versitygw_ok() { go_tool_ok versitygw "$VERSITYGW_ROOT" "$VERSITYGW_VERSION"; }

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

# python3 that can build a venv and run the chart tools (3.10 or newer).
python_ok() {
    command -v python3 >/dev/null &&
        python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null
}

# install_lock LOCKFILE WHAT: holds fd 9 locked on LOCKFILE, so one install of WHAT runs per
# machine at a time, even from several clones; says so when another holds it, then waits.
# Check again after it whether the install is still needed (the other one may have done it).
install_lock() {
    mkdir -p "$(dirname "$1")"
    exec 9>"$1"
    if ! flock -n 9; then
        info "another install of $2 is running; waiting for it"
        flock 9
    fi
}

# The go command (Go's official tarball puts it in /usr/local/go/bin, often not on PATH).
go_cmd() {
    if command -v go >/dev/null; then
        command -v go
    elif [[ -x /usr/local/go/bin/go ]]; then
        echo /usr/local/go/bin/go
    fi
}

# True when ROOT holds a complete build of NAME at VERSION: go_tool_install writes
# ROOT/palaver-complete (the version) only once the binary is in place.
go_tool_ok() {
    local name=$1 root=$2 version=$3
    [[ -x $root/bin/$name ]] && [[ $(cat "$root/palaver-complete" 2>/dev/null) == "$version" ]]
}

# go_tool_install NAME ROOT PACKAGE VERSION [GO_INSTALL_FLAGS...]: `go install PACKAGE@VERSION`
# into ROOT/bin, once per machine (skipped when present; a lock serialises concurrent clones).
# Built in ROOT.tmp and moved into place when complete, so an interrupted build is redone.
go_tool_install() {
    local name=$1 root=$2 pkg=$3 version=$4 go t0
    shift 4
    if go_tool_ok "$name" "$root" "$version"; then
        info "$name $version present ($root/bin/$name)"
        return 0
    fi
    go=$(go_cmd)
    [[ -n $go ]] || die "go not found (on PATH or /usr/local/go/bin): $name $version is built from its Go module"
    install_lock "$root.lock" "$name"
    if go_tool_ok "$name" "$root" "$version"; then
        info "$name $version present ($root/bin/$name)"
    else
        t0=$(now_us)
        info "building $name: go install $pkg@$version ($("$go" env GOVERSION); a few minutes the first time)"
        rm -rf "$root.tmp"
        mkdir -p "$root.tmp/bin"
        # GOTOOLCHAIN=local: use this Go, never download another one.
        GOBIN="$root.tmp/bin" GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
            nice "$go" install -trimpath "$@" "$pkg@$version" ||
            die "go install $pkg@$version failed (see above)"
        [[ -x $root.tmp/bin/$name ]] || die "go install ran but left no $root.tmp/bin/$name"
        printf '%s\n' "$version" >"$root.tmp/palaver-complete"
        rm -rf "$root"
        mv "$root.tmp" "$root"
        go_tool_ok "$name" "$root" "$version" || die "$name was built but $root does not check out"
        info "$name $version built in $(since "$t0") ($root/bin/$name)"
    fi
    exec 9>&-
}

# apt_install PKG...: apt-get install the Debian packages, as root or through sudo (SUDO, the
# prefix used, is left set for the caller's other root commands).
SUDO=()
apt_install() {
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need root (or sudo) to apt-get install: $*"
        SUDO=(sudo)
    fi
    info "apt-get install $*"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
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

# Registers the cleanup (run on exit, Ctrl-C and TERM), then runs `up` as a step, recording
# what it starts.
stack_run_begin() {
    RUN_STARTED_FILE=$(mktemp)
    on_exit run_cleanup
    step "up: start the missing services" "make up"
    UP_STARTED_FILE=$RUN_STARTED_FILE bash "$REPO_ROOT/scripts/up.sh"
}

# --- the clients (clients/: the TypeScript SDK and the web app, one npm workspace) ----------------

CLIENTS_DIR="$REPO_ROOT/clients"
# Vite 7 needs Node 20.19 or later (clients/package.json "engines").
NODE_MIN_MAJOR=20 NODE_MIN_MINOR=19

# Whether node and npm are there and new enough for the clients' build.
node_ok() {
    command -v node >/dev/null && command -v npm >/dev/null || return 1
    local v major minor
    v=$(node --version 2>/dev/null) || return 1
    [[ $v =~ ^v([0-9]+)\.([0-9]+) ]] || return 1
    major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
    ((major > NODE_MIN_MAJOR || (major == NODE_MIN_MAJOR && minor >= NODE_MIN_MINOR)))
}

# The lockfile's checksum, recorded in node_modules by the `npm ci` that installed it.
clients_lock_sum() { sha256sum "$CLIENTS_DIR/package-lock.json" | cut -d' ' -f1; }
clients_deps_ok() {
    [[ -r $CLIENTS_DIR/node_modules/.palaver-lock-sum && $(<"$CLIENTS_DIR/node_modules/.palaver-lock-sum") == "$(clients_lock_sum)" ]]
}

# Whether the web app's build (clients/web/dist) is older than any source of it or of the SDK.
web_build_stale() {
    local stamp="$CLIENTS_DIR/web/dist/index.html"
    [[ -r $stamp ]] || return 0
    # Build outputs (dist, the SDK tests' dist-test) and tests are no sources: counting them would
    # rebuild the app, and so palaverd, after every SDK test run.
    [[ -n $(find "$CLIENTS_DIR" \( -name node_modules -o -name dist -o -name dist-test -o -name test -o -name tests \) -prune \
        -o -type f -newer "$stamp" -print -quit) ]]
}
