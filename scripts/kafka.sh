#!/usr/bin/env bash
# Run one single-node Apache Kafka broker (KRaft, combined broker + controller) in the
# foreground, from the classpath `make deps` installed in KAFKA_ROOT:
#
#   kafka.sh DIR PORT CONTROLLER_PORT
#
# DIR holds the broker's config (written on every start) and its data (DIR/data, formatted
# on the first start only, so a restart keeps the topics). The client listener is
# 127.0.0.1:PORT, the controller 127.0.0.1:CONTROLLER_PORT; keep both for the life of DIR
# (the controller's address is recorded in its metadata when DIR is formatted). Logs go to
# stdout/stderr. The script ends by exec'ing the JVM, so its PID is the broker's: kill it to
# stop the broker (SIGTERM: clean shutdown). Used by scripts/up.sh and by the tests' private
# brokers (e2e/src/procs.rs).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 3)) || die "usage: kafka.sh DIR PORT CONTROLLER_PORT"
dir=$1 port=$2 controller_port=$3
[[ $port =~ ^[0-9]+$ && $controller_port =~ ^[0-9]+$ ]] || die "kafka.sh: ports must be numbers, got '$port' '$controller_port'"
kafka_ok || die "Apache Kafka $KAFKA_VERSION is not installed in $KAFKA_ROOT: run 'make deps'"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# Single node: every internal topic has one replica. Topics are created only by the
# provisioner (auto-creation off, as in production: a producer to a missing topic fails
# visibly instead of creating a 1-partition topic). No initial rebalance delay: consumer
# groups (tests start many) form at once.
cat >"$dir/server.properties" <<EOF
# Written by scripts/kafka.sh on every start; edits are lost.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.retention.check.interval.ms=60000
EOF

read -ra heap <<<"$KAFKA_HEAP_OPTS"
java_cmd=(java "${heap[@]}" -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$REPO_ROOT/scripts/kafka/log4j2.yaml"
    -cp "$KAFKA_ROOT/lib/*")

if [[ ! -e $dir/data/meta.properties ]]; then
    rm -rf "$dir/data"
    # A cluster id as kafka-storage random-uuid makes one (16 random bytes, URL-safe base64
    # without padding, not starting with '-'), without a JVM start of its own.
    cluster_id=-
    while [[ $cluster_id == -* ]]; do
        cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    done
    printf '=== %s: formatting %s/data (cluster %s)\n' "$(date -Is)" "$dir" "$cluster_id"
    "${java_cmd[@]}" kafka.tools.StorageTool format --standalone --ignore-formatted \
        --cluster-id "$cluster_id" --config "$dir/server.properties" >/dev/null
fi
printf '=== %s: starting Apache Kafka %s on 127.0.0.1:%s (controller 127.0.0.1:%s, data %s/data)\n' \
    "$(date -Is)" "$KAFKA_VERSION" "$port" "$controller_port" "$dir"
exec "${java_cmd[@]}" kafka.Kafka "$dir/server.properties"
