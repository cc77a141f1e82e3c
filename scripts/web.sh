#!/usr/bin/env bash
# The clients (clients/: the SDK @palaver/client and the web app), as timed steps:
#   web.sh deps   `npm ci` in clients/ when node_modules does not match the lockfile (make deps)
#   web.sh build  the SDK and the web app into clients/*/dist when a source is newer than the
#                 last build (make build and make dev run it before cargo, which embeds
#                 clients/web/dist into palaverd: dataplane/src/gateway/web.rs)
#   web.sh test   the SDK's unit tests (make test)
# Without Node >= 20.19, deps and build warn and skip: palaverd then serves a page saying the web
# client was not built, and everything else works. The tests need Node.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_node() {
    node_ok && return 0
    local found
    found=$(node --version 2>/dev/null || echo none)
    if [[ $1 == required ]]; then
        die "Node.js >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR with npm is needed (found: $found): install it, then retry"
    fi
    warn "Node.js >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR with npm not found (found: $found): the web client is not built; palaverd serves a page saying so"
    return 1
}

deps() {
    step "web client dependencies (npm ci in clients/)" "make deps"
    need_node "${1:-optional}" || return 0
    if clients_deps_ok; then
        info "deps: clients/node_modules matches clients/package-lock.json"
        return 0
    fi
    # npm ci installs exactly the lockfile; nothing is fetched after this step.
    (cd "$CLIENTS_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    clients_lock_sum >"$CLIENTS_DIR/node_modules/.palaver-lock-sum"
}

build() {
    step "web client (npm run build in clients/)" "bash scripts/web.sh build"
    need_node "${1:-optional}" || return 0
    clients_deps_ok || deps "${1:-optional}"
    if ! web_build_stale; then
        info "web: clients/web/dist is up to date"
        return 0
    fi
    (cd "$CLIENTS_DIR" && npm run build --silent)
    [[ -r $CLIENTS_DIR/web/dist/index.html ]] || die "npm run build finished but clients/web/dist/index.html is missing"
}

case ${1:-} in
    deps) deps "${2:-optional}" ;;
    build) build "${2:-optional}" ;;
    test)
        build required
        step "SDK unit tests (npm test in clients/sdk-js)" "bash scripts/web.sh test"
        (cd "$CLIENTS_DIR" && npm test --workspace sdk-js --silent)
        ;;
    *) die "usage: web.sh deps|build|test [required]" ;;
esac
