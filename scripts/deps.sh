#!/usr/bin/env bash
# Install what running the local stack needs (`make deps`; make dev, test and bench run it),
# skipping what is present: PostgreSQL, Redis, Java >= 17, Maven, curl and a C toolchain (Debian
# packages), Apache Kafka $KAFKA_VERSION (its jars from Maven Central, into KAFKA_ROOT outside
# the repo so every clone on the machine shares one install), and the S3 server versitygw
# $VERSITYGW_VERSION (built with `go install` from its Go module, into VERSITYGW_ROOT, likewise
# shared; it needs Go). What only the tests need is scripts/deps-test.sh (`make deps-test`).
# Each step prints its time; a failed step says how to retry.
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
# make up creates the S3 bucket with a signed request (curl --aws-sigv4, curl >= 7.75).
if command -v curl >/dev/null; then
    info "deps: curl present"
else
    pkgs+=(curl)
fi
# ... and sets its CORS rule, whose request needs a Content-MD5 (openssl md5).
if command -v openssl >/dev/null; then
    info "deps: openssl present"
else
    pkgs+=(openssl)
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

# The dev and test stack's S3-compatible object storage (file attachments): the Versity S3
# Gateway, serving a directory. Built once per machine from its pinned Go module by
# go_tool_install (lib.sh): GOBIN in a temporary directory beside VERSITYGW_ROOT, moved into
# place with its palaver-complete marker when complete, under a lock. The -X sets the version
# `versitygw --version` prints, as its release build does.
step "versitygw $VERSITYGW_VERSION (S3 server)" "make deps"
if versitygw_ok; then
    info "deps: versitygw $VERSITYGW_VERSION present ($VERSITYGW_ROOT/bin/versitygw)"
else
    go=$(go_cmd)
    [[ -n $go ]] || die "go not found (on PATH or /usr/local/go/bin): versitygw $VERSITYGW_VERSION, the local S3 server, is built from its Go module. Install Go >= 1.25 (into /usr/local/go or on PATH; Debian 12's package golang is 1.19, too old), then retry"
    go_minor=$("$go" env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
    # Its go.mod asks for 1.25; GOTOOLCHAIN=local (go_tool_install) never fetches a newer Go.
    if [[ ! $go_minor =~ ^[0-9]+$ ]] || ((go_minor < 25)); then
        die "versitygw $VERSITYGW_VERSION needs Go >= 1.25, found $("$go" env GOVERSION) ($go): install a newer Go, then retry"
    fi
    go_tool_install versitygw "$VERSITYGW_ROOT" github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_VERSION" \
        -ldflags "-X=main.Version=$VERSITYGW_VERSION"
fi

# The clients' npm packages (the web app palaverd embeds, and the SDK): `npm ci` from the
# committed lockfile when node_modules does not match it (scripts/web.sh).
step_end
bash "$REPO_ROOT/scripts/web.sh" deps
