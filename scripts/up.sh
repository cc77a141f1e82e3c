#!/usr/bin/env bash
# Start the local stack — PostgreSQL, Redis, Apache Kafka — on loopback, reusing whatever
# already answers, and create the dev and test databases. Idempotent.
#
# What this run starts is recorded in $DEV_DIR/pids/<name>.pid (for `make down`)
# and, when UP_STARTED_FILE is set, its name is appended there, so a caller
# (dev.sh, test.sh, bench.sh) can stop exactly what it started.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$DEV_DIR" "$PID_DIR"
export PGCONNECT_TIMEOUT=5

read -r PG_HOST PG_PORT < <(url_host_port "$PALAVER_DATABASE_URL" 5432)
read -r REDIS_HOST REDIS_PORT < <(url_host_port "$PALAVER_REDIS_URL" 6379)
read -r KAFKA_HOST KAFKA_PORT < <(url_host_port "tcp://$(first_broker)" 9092)

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2; }
redis_up() { [[ $(timeout 3 redis-cli -u "$PALAVER_REDIS_URL" ping 2>/dev/null) == PONG ]]; }
kafka_up() { tcp_open "$KAFKA_HOST" "$KAFKA_PORT"; }

started() {
    local name=$1 pid=$2
    printf '%s\n' "$pid" >"$(pid_file "$name")"
    if [[ -n ${UP_STARTED_FILE:-} ]]; then
        printf '%s\n' "$name" >>"$UP_STARTED_FILE"
    fi
}

step preflight "make up"
# --- preflight: decide what to start and check its tools before starting anything,
# so a missing tool does not leave a half-started stack behind.
missing=()
for tool in psql pg_isready redis-cli; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
((${#missing[@]} == 0)) || die "missing: ${missing[*]}. Run 'make deps' first."

# A service that `make up` started earlier but that does not answer yet may just be
# starting: give it the usual deadline rather than starting a second copy.
for svc in postgres redis kafka; do
    case $svc in
        postgres) check=pg_up log="$DEV_DIR/postgres.log" ;;
        redis) check=redis_up log="$DEV_DIR/redis.log" ;;
        kafka) check=kafka_up log="$DEV_DIR/kafka.log" ;;
    esac
    if ours_running "$svc" && ! "$check"; then
        info "$svc (pid $(read_pid "$svc"), started by make up) is not answering yet: waiting"
        wait_for "$svc" "$log" "$(read_pid "$svc")" "$check"
    fi
done

need_pg=false need_redis=false need_kafka=false
pg_up || need_pg=true
redis_up || need_redis=true
kafka_up || need_kafka=true

if $need_pg; then
    is_loopback "$PG_HOST" ||
        die "PostgreSQL at $PG_HOST:$PG_PORT (PALAVER_DATABASE_URL) does not answer, and make up only starts local servers"
    PG_BIN=$(pg_bin_dir)
    [[ -n $PG_BIN ]] || missing+=("PostgreSQL server (initdb, pg_ctl)")
    if ((EUID == 0)) && ! id postgres >/dev/null 2>&1; then
        missing+=("system user postgres (created by Debian's postgresql package)")
    fi
fi
if $need_redis; then
    is_loopback "$REDIS_HOST" ||
        die "Redis at $REDIS_HOST:$REDIS_PORT (PALAVER_REDIS_URL) does not answer, and make up only starts local servers"
    command -v redis-server >/dev/null || missing+=("redis-server")
fi
if $need_kafka; then
    is_loopback "$KAFKA_HOST" ||
        die "no broker answers at $KAFKA_HOST:$KAFKA_PORT (PALAVER_KAFKA_BROKERS), and make up only starts local ones"
    kafka_ok || missing+=("Apache Kafka $KAFKA_VERSION in $KAFKA_ROOT, with java >= 17 (found java: '$(java_major)')")
fi
if ((${#missing[@]})); then
    printf 'error: cannot start the local stack, missing:\n' >&2
    printf '  - %s\n' "${missing[@]}" >&2
    printf "Run 'make deps' first.\n" >&2
    exit 1
fi

# --- PostgreSQL -----------------------------------------------------------

start_postgres() {
    local base="$DEV_DIR/pg" data="$DEV_DIR/pg/data" log="$DEV_DIR/postgres.log" pid
    mkdir -p "$base"
    touch "$log"
    if ((EUID == 0)); then
        chown postgres: "$base" "$log"
        [[ ! -d $data ]] || chown -R postgres: "$data"
        { as_pg_user test -w "$base" && as_pg_user test -w "$log"; } ||
            die "user postgres cannot write $base (a parent directory is not searchable by it); set DEV_DIR to a directory it can reach"
    fi
    if [[ ! -s $data/PG_VERSION ]]; then
        info "postgres: initdb $data (trust auth, superuser postgres)"
        as_pg_user "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C >>"$log" 2>&1 || {
            log_tail "$log"
            die "initdb failed"
        }
        # Loopback only; no unix socket (its Debian default dir may not exist or be
        # another server's). Durability is not needed for throwaway dev data and
        # fsync=off makes the test suite's many small transactions cheap.
        cat >>"$data/postgresql.conf" <<'EOF'

# --- palaver dev instance (scripts/up.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    fi
    info "postgres: starting project-local server on 127.0.0.1:$PG_PORT (log $log)"
    as_pg_user "$PG_BIN/pg_ctl" -D "$data" -l "$log" -o "-p $PG_PORT" -w -t "$UP_TIMEOUT" start >/dev/null || {
        log_tail "$log"
        die "PostgreSQL did not start"
    }
    pid=$(head -n 1 "$data/postmaster.pid")
    started postgres "$pid"
    wait_for "PostgreSQL on 127.0.0.1:$PG_PORT" "$log" "$pid" pg_up
    info "postgres: started (pid $pid)"
}

step "PostgreSQL" "make up"
if $need_pg; then
    start_postgres
elif ours_running postgres; then
    info "postgres: already running (pid $(read_pid postgres), started by make up)"
else
    info "postgres: reusing the server answering on $PG_HOST:$PG_PORT"
fi

# The test database may live on another server; make up starts only one.
read -r TEST_PG_HOST TEST_PG_PORT < <(url_host_port "$PALAVER_TEST_DATABASE_URL" 5432)
pg_isready -q -h "$TEST_PG_HOST" -p "$TEST_PG_PORT" -t 2 ||
    die "PostgreSQL at $TEST_PG_HOST:$TEST_PG_PORT (PALAVER_TEST_DATABASE_URL) does not answer"

ensure_database() {
    local var=$1 url=$2 db admin exists
    db=$(pg_url_dbname "$url")
    [[ $db =~ ^[A-Za-z0-9_]+$ ]] || die "$var: expected a plain database name in the URL, got '$db'"
    admin=$(pg_admin_url "$url")
    exists=$(psql "$admin" -XAtq -v ON_ERROR_STOP=1 -c "SELECT 1 FROM pg_database WHERE datname = '$db'") ||
        die "$var: cannot query the server as the URL's user (authentication? see pg_hba.conf); make up needs it to create '$db'"
    if [[ $exists == 1 ]]; then
        info "postgres: database $db exists"
    else
        psql "$admin" -Xq -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db\"" || die "$var: CREATE DATABASE $db failed"
        info "postgres: created database $db"
    fi
}
step databases "make up"
ensure_database PALAVER_DATABASE_URL "$PALAVER_DATABASE_URL"
ensure_database PALAVER_TEST_DATABASE_URL "$PALAVER_TEST_DATABASE_URL"

# --- Redis ----------------------------------------------------------------

start_redis() {
    local dir="$DEV_DIR/redis" log="$DEV_DIR/redis.log" pidf pid
    pidf=$(pid_file redis)
    mkdir -p "$dir"
    rm -f "$pidf"
    info "redis: starting project-local server on 127.0.0.1:$REDIS_PORT (log $log)"
    # No persistence: the data is a cache/presence store, rebuilt by the services.
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --daemonize yes --pidfile "$pidf" --logfile "$log" --dir "$dir" || {
        log_tail "$log"
        die "redis-server did not start"
    }
    wait_for "Redis on 127.0.0.1:$REDIS_PORT" "$log" "" redis_up
    # The daemon writes its own pid file; only the name needs recording here.
    wait_for "Redis pid file $pidf" "$log" "" test -s "$pidf"
    pid=$(read_pid redis)
    started redis "$pid"
    info "redis: started (pid $pid)"
}

step Redis "make up"
if $need_redis; then
    start_redis
elif ours_running redis; then
    info "redis: already running (pid $(read_pid redis), started by make up)"
else
    info "redis: reusing the server answering on $REDIS_HOST:$REDIS_PORT"
fi

# --- Apache Kafka ---------------------------------------------------------

# The broker logs "Kafka Server started" once it serves clients (scripts/kafka/log4j2.yaml);
# the port alone answers a little earlier.
kafka_started_since() {
    local log=$1 offset=$2
    tail -c "+$((offset + 1))" "$log" 2>/dev/null | grep -q 'Kafka Server started'
}

start_kafka() {
    local dir="$DEV_DIR/kafka" log="$DEV_DIR/kafka.log" offset pid t0=$SECONDS
    mkdir -p "$dir"
    touch "$log"
    offset=$(stat -c %s "$log")
    info "kafka: starting Apache Kafka $KAFKA_VERSION on $KAFKA_HOST:$KAFKA_PORT (controller :$KAFKA_CONTROLLER_PORT, data $dir/data, log $log)"
    # setsid: its own session, so a Ctrl-C meant for `make dev` does not reach it before
    # the cleanup trap stops it in order. kafka.sh execs the JVM: $! is the broker.
    setsid bash "$REPO_ROOT/scripts/kafka.sh" "$dir" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" >>"$log" 2>&1 </dev/null &
    pid=$!
    started kafka "$pid"
    wait_for "Kafka on $KAFKA_HOST:$KAFKA_PORT" "$log" "$pid" kafka_up
    wait_for "Kafka on $KAFKA_HOST:$KAFKA_PORT to finish starting" "$log" "$pid" kafka_started_since "$log" "$offset"
    pid_is "$pid" kafka.Kafka || {
        log_tail "$log"
        die "Kafka answers but pid $pid is not the broker"
    }
    info "kafka: started (pid $pid, $((SECONDS - t0)) s)"
}

step "Apache Kafka" "make up"
if $need_kafka; then
    start_kafka
elif ours_running kafka; then
    info "kafka: already running (pid $(read_pid kafka), started by make up)"
else
    info "kafka: reusing the broker answering on $KAFKA_HOST:$KAFKA_PORT"
fi

step_end
info "stack ready: postgres $PG_HOST:$PG_PORT, redis $REDIS_HOST:$REDIS_PORT, kafka $KAFKA_HOST:$KAFKA_PORT"
