#!/usr/bin/env bash
# `make build`: debug build of every binary of the workspace, as a timed step. With arguments,
# only those binaries (`make dev` builds the two it runs: palaver-bench and the tests' crates
# would add minutes to a first run). The web app is built first (scripts/web.sh): palaverd
# embeds it.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$REPO_ROOT"
bash scripts/web.sh build
if (($#)); then
    args=()
    for b in "$@"; do
        args+=(--bin "$b")
    done
    step "cargo build ${args[*]}" "bash scripts/build.sh $*"
    "$CARGO" build "${args[@]}"
else
    step "cargo build --workspace --bins" "make build"
    "$CARGO" build --workspace --bins
fi
