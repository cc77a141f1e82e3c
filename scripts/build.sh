#!/usr/bin/env bash
# `make build`: debug build of every binary of the workspace, as a timed step.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$REPO_ROOT"
step "cargo build --workspace --bins" "make build"
"$CARGO" build --workspace --bins
