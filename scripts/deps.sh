#!/usr/bin/env bash
# Install what running the local stack needs (`make deps`; make dev, test and bench run it),
# skipping what is present: PostgreSQL, Redis, Java >= 17, Maven and a C toolchain (Debian
# packages), and Apache Kafka $KAFKA_VERSION (its jars from Maven Central, into KAFKA_ROOT
# outside the repo so every clone on the machine shares one install). What only the tests
# need is scripts/deps-test.sh (`make deps-test`). Each step prints its time; a failed step
# says how to retry.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v "$CARGO" >/dev/null || die "$CARGO not found: install the Rust toolchain (rustup) first"

step "Debian packages" "make deps"
pkgs=()
if command -v psql >/dev/null && command -v pg_isready >/dev/null && [[ -n $(pg_bin_dir) ]]; then
    info "deps: postgresql present ($(pg_bin_dir))"
else
    pkgs+=(postgresql)
fi
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
    info "deps: redis present ($(redis-server --version | cut -d' ' -f3))"
else
    pkgs+=(redis-server)
fi
# The Kafka broker runs on Java 17 or newer; Maven fetches its jars.
if java_ok; then
    info "deps: java $(java_major) present"
else
    pkgs+=(default-jre-headless)
fi
if command -v mvn >/dev/null; then
    info "deps: maven present"
else
    pkgs+=(maven)
fi
# The project's -sys crates (librdkafka) compile C.
if command -v cc >/dev/null && command -v make >/dev/null; then
    info "deps: C toolchain present"
else
    pkgs+=(build-essential pkg-config)
fi
# setsid, runuser and flock come from util-linux, which Debian always has.
for tool in setsid runuser flock timeout; do
    command -v "$tool" >/dev/null || die "$tool not found (Debian packages util-linux / coreutils)"
done

if ((${#pkgs[@]})); then
    apt_install "${pkgs[@]}"

    # Where no policy-rc.d forbids it, the package starts its own cluster on 5432,
    # whose pg_hba asks for a password over TCP; our URLs have none. A cluster this
    # install just created holds nothing: stop it and keep it from starting on its
    # own, so `make up` runs the project-local trust-auth server on 5432 instead.
    if [[ " ${pkgs[*]} " == *" postgresql "* ]] && command -v pg_lsclusters >/dev/null; then
        while read -r ver cluster _port status _; do
            [[ $ver =~ ^[0-9]+$ ]] || continue
            info "deps: the new Debian cluster $ver/$cluster ($status) is set to start manually only"
            echo manual | "${SUDO[@]}" tee "/etc/postgresql/$ver/$cluster/start.conf" >/dev/null
            if [[ $status == online* ]]; then
                info "deps: stopping the new Debian cluster $ver/$cluster"
                "${SUDO[@]}" pg_ctlcluster "$ver" "$cluster" stop || warn "could not stop cluster $ver/$cluster"
            fi
        done < <(pg_lsclusters --no-header 2>/dev/null)
    fi
fi

step "Apache Kafka $KAFKA_VERSION" "make deps"

# The broker as a classpath: the jars of org.apache.kafka:kafka_2.13 (broker, controller,
# storage formatter) and a log4j 2 binding, resolved by Maven from scripts/kafka/pom.xml.
# Assembled in a temporary directory beside KAFKA_ROOT and moved into place only when
# complete, so an interrupted install is never taken for a finished one.
if kafka_ok; then
    info "deps: Apache Kafka $KAFKA_VERSION present ($KAFKA_ROOT)"
else
    java_ok || die "java >= 17 is needed for Kafka $KAFKA_VERSION (found: '$(java_major)')"
    command -v mvn >/dev/null || die "mvn not found (Debian package maven)"
    install_lock "$KAFKA_ROOT.lock" "Apache Kafka $KAFKA_VERSION"
    if kafka_ok; then
        info "deps: Apache Kafka $KAFKA_VERSION present ($KAFKA_ROOT)"
    else
        info "deps: installing Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_ROOT"
        tmp="$KAFKA_ROOT.tmp"
        rm -rf "$tmp"
        mkdir -p "$tmp/lib"
        cp "$REPO_ROOT/scripts/kafka/pom.xml" "$tmp/pom.xml"
        mvn -B -q -f "$tmp/pom.xml" "-Dkafka.version=$KAFKA_VERSION" \
            dependency:copy-dependencies -DincludeScope=runtime "-DoutputDirectory=$tmp/lib" ||
            die "mvn could not fetch Apache Kafka $KAFKA_VERSION (see its output above)"
        [[ -r $tmp/lib/kafka_2.13-$KAFKA_VERSION.jar ]] || die "mvn ran but $tmp/lib has no kafka_2.13-$KAFKA_VERSION.jar"
        printf '%s\n' "$KAFKA_VERSION" >"$tmp/palaver-complete"
        rm -rf "$KAFKA_ROOT"
        mv "$tmp" "$KAFKA_ROOT"
        kafka_ok || die "Apache Kafka was installed but $KAFKA_ROOT does not check out"
        info "deps: Apache Kafka $KAFKA_VERSION installed ($(find "$KAFKA_ROOT/lib" -name '*.jar' | wc -l) jars in $KAFKA_ROOT/lib)"
    fi
    exec 9>&-
fi

