#!/usr/bin/env bash
# Start the local stack — PostgreSQL, Redis, Apache Kafka, an S3 server (versitygw) — on
# loopback, reusing whatever already answers, and create the dev and test databases and the S3
# bucket. Idempotent.
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
S3_URL=${PALAVER_S3_ENDPOINT%/}
s3_default_port=80
[[ $S3_URL == https://* ]] && s3_default_port=443
read -r S3_HOST S3_PORT < <(url_host_port "$S3_URL" "$s3_default_port")

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2; }
redis_up() { [[ $(timeout 3 redis-cli -u "$PALAVER_REDIS_URL" ping 2>/dev/null) == PONG ]]; }
kafka_up() { tcp_open "$KAFKA_HOST" "$KAFKA_PORT"; }
# An S3 server answers any HTTP request, if only with 403 to an unsigned one.
s3_up() {
    local code
    code=$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$S3_URL/" 2>/dev/null) || true
    [[ $code =~ ^[1-5][0-9][0-9]$ ]]
}

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
for tool in psql pg_isready redis-cli curl; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
((${#missing[@]} == 0)) || die "missing: ${missing[*]}. Run 'make deps' first."
[[ $S3_URL == http://* || $S3_URL == https://* ]] ||
    die "PALAVER_S3_ENDPOINT must be an http:// or https:// URL, got '$PALAVER_S3_ENDPOINT'"
# S3's bucket naming rules (the name is also a path segment of every request).
[[ $PALAVER_S3_BUCKET =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] ||
    die "PALAVER_S3_BUCKET: '$PALAVER_S3_BUCKET' is not a valid S3 bucket name (3-63 of a-z 0-9 . -)"

# A service that `make up` started earlier but that does not answer yet may just be
# starting: give it the usual deadline rather than starting a second copy.
for svc in postgres redis kafka s3; do
    case $svc in
        postgres) check=pg_up log="$DEV_DIR/postgres.log" ;;
        redis) check=redis_up log="$DEV_DIR/redis.log" ;;
        kafka) check=kafka_up log="$DEV_DIR/kafka.log" ;;
        s3) check=s3_up log="$DEV_DIR/s3.log" ;;
    esac
    if ours_running "$svc" && ! "$check"; then
        info "$svc (pid $(read_pid "$svc"), started by make up) is not answering yet: waiting"
        wait_for "$svc" "$log" "$(read_pid "$svc")" "$check"
    fi
done

need_pg=false need_redis=false need_kafka=false need_s3=false
pg_up || need_pg=true
redis_up || need_redis=true
kafka_up || need_kafka=true
s3_up || need_s3=true

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
if $need_s3; then
    is_loopback "$S3_HOST" ||
        die "no S3 server answers at $S3_URL (PALAVER_S3_ENDPOINT), and make up only starts local ones"
    [[ $S3_URL == http://* ]] ||
        die "no S3 server answers at $S3_URL (PALAVER_S3_ENDPOINT), and make up starts only plain-HTTP ones (use http://)"
    versitygw_ok || missing+=("versitygw $VERSITYGW_VERSION (the S3 server) in $VERSITYGW_ROOT")
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

# --- S3 (versitygw) -------------------------------------------------------

start_s3() {
    local data="$DEV_DIR/s3/data" log="$DEV_DIR/s3.log" listen=$S3_HOST:$S3_PORT pid t0=$SECONDS
    [[ $S3_HOST != *:* ]] || listen="[$S3_HOST]:$S3_PORT"
    mkdir -p "$data"
    touch "$log"
    info "s3: starting versitygw $VERSITYGW_VERSION on $listen (region $PALAVER_S3_REGION, data $data, log $log)"
    # Every directory of $data is a bucket. The root account's keys go in its environment, not
    # its command line; single-account mode (no IAM). setsid, as for Kafka: Ctrl-C is the
    # cleanup's to handle. setsid execs the gateway: $! is the server.
    ROOT_ACCESS_KEY_ID=$PALAVER_S3_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY=$PALAVER_S3_SECRET_ACCESS_KEY \
        setsid "$VERSITYGW_ROOT/bin/versitygw" --port "$listen" --region "$PALAVER_S3_REGION" --quiet \
        posix "$data" >>"$log" 2>&1 </dev/null &
    pid=$!
    started s3 "$pid"
    wait_for "S3 (versitygw) on $listen" "$log" "$pid" s3_up
    pid_is "$pid" versitygw || {
        log_tail "$log"
        die "S3 answers but pid $pid is not versitygw"
    }
    info "s3: started (pid $pid, $((SECONDS - t0)) s)"
}

# s3_request CURL_ARGS...: curl signing with SigV4 as PALAVER_S3_ACCESS_KEY_ID; the keys reach
# curl on its stdin (-K -), never its command line.
s3_request() {
    local key=$PALAVER_S3_ACCESS_KEY_ID:$PALAVER_S3_SECRET_ACCESS_KEY
    key=${key//\\/\\\\}
    printf 'user = "%s"\n' "${key//\"/\\\"}" |
        curl -sS --max-time 10 -K - --aws-sigv4 "aws:amz:$PALAVER_S3_REGION:s3" \
            -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}

# s3_failed WHAT RESPONSE: dies with WHAT, the S3 error code and message of RESPONSE (an XML
# error body, then a line with the HTTP status), and what to do when it is the credentials.
s3_failed() {
    local what=$1 out=$2 status code msg hint=
    status=${out##*$'\n'}
    code=$(sed -n 's|.*<Code>\([^<]*\)</Code>.*|\1|p' <<<"$out")
    msg=$(sed -n 's|.*<Message>\([^<]*\)</Message>.*|\1|p' <<<"$out")
    msg=${msg%.}
    case $code in
        InvalidAccessKeyId | SignatureDoesNotMatch | AccessDenied | XAdminUserNotFound)
            hint=". PALAVER_S3_ACCESS_KEY_ID / PALAVER_S3_SECRET_ACCESS_KEY are not this server's; a versitygw that make up started with other keys: bash scripts/down.sh s3, then make up"
            ;;
    esac
    die "s3: $what: HTTP $status ${code:-(no S3 error code)}${msg:+: $msg}$hint"
}

# Creates PALAVER_S3_BUCKET unless it exists, on whichever S3 server answers (a bucket made
# with a request, not a mkdir, gets versitygw's owner and ACL).
ensure_bucket() {
    local bucket=$PALAVER_S3_BUCKET url="$S3_URL/$PALAVER_S3_BUCKET" code body=() out
    code=$(s3_request -o /dev/null -w '%{http_code}' -I "$url") || code=000
    case $code in
        200)
            info "s3: bucket $bucket exists"
            return 0
            ;;
        # 404 also when the server does not know the access key (versitygw): PUT says which.
        404) ;;
        403) die "s3: $S3_URL refuses PALAVER_S3_ACCESS_KEY_ID '$PALAVER_S3_ACCESS_KEY_ID' for bucket $bucket (HTTP 403): not its credentials, or another account owns the bucket. A versitygw that make up started with other keys: bash scripts/down.sh s3, then make up" ;;
        *) die "s3: HEAD $url answered HTTP $code (000: no answer; 400 or 301: a region other than PALAVER_S3_REGION=$PALAVER_S3_REGION?)" ;;
    esac
    # Outside us-east-1, S3 wants the region in the request body too.
    [[ $PALAVER_S3_REGION == us-east-1 ]] ||
        body=(--data-binary "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>$PALAVER_S3_REGION</LocationConstraint></CreateBucketConfiguration>")
    out=$(s3_request -X PUT "${body[@]}" -w '\n%{http_code}' "$url") || die "s3: PUT $url failed: $out"
    case ${out##*$'\n'} in
        200) info "s3: created bucket $bucket" ;;
        # Made meanwhile by someone else with these keys (another make up).
        409)
            [[ $out == *BucketAlreadyOwnedByYou* ]] || s3_failed "cannot create bucket $bucket at $S3_URL" "$out"
            info "s3: bucket $bucket exists"
            ;;
        *) s3_failed "cannot create bucket $bucket at $S3_URL" "$out" ;;
    esac
}

# The web app's browsers PUT uploads to and GET files from the bucket with presigned URLs, from
# the pods' origins (http://127.0.0.1:8081, and random ports in the tests): the bucket needs a
# CORS rule for them. Any origin may: a presigned URL carries its own authorization, and this is
# the dev stack's own bucket (only set on the versitygw make up runs; a real bucket lists its
# app's origins, docs/operator.md).
ensure_bucket_cors() {
    local url="$S3_URL/$PALAVER_S3_BUCKET?cors=" rules out md5
    rules='<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PUT</AllowedMethod><AllowedMethod>GET</AllowedMethod><AllowedMethod>HEAD</AllowedMethod><AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3600</MaxAgeSeconds></CORSRule></CORSConfiguration>'
    # S3 requires Content-MD5 on PutBucketCors.
    md5=$(printf '%s' "$rules" | openssl md5 -binary | base64)
    out=$(s3_request -X PUT -H "Content-MD5: $md5" -H 'content-type: application/xml' --data-binary "$rules" -w '\n%{http_code}' "$url") ||
        die "s3: PUT $url failed: $out"
    [[ ${out##*$'\n'} == 200 ]] || s3_failed "cannot set the CORS rule of bucket $PALAVER_S3_BUCKET" "$out"
    info "s3: bucket $PALAVER_S3_BUCKET accepts browser uploads and downloads (CORS, any origin)"
}

step "S3 (versitygw)" "make up"
if $need_s3; then
    start_s3
elif ours_running s3; then
    info "s3: already running (pid $(read_pid s3), started by make up)"
else
    info "s3: reusing the S3 server answering at $S3_URL"
fi
ensure_bucket
if ours_running s3; then
    ensure_bucket_cors
fi

step_end
info "stack ready: postgres $PG_HOST:$PG_PORT, redis $REDIS_HOST:$REDIS_PORT, kafka $KAFKA_HOST:$KAFKA_PORT, s3 $S3_URL (bucket $PALAVER_S3_BUCKET)"
