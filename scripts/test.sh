#!/usr/bin/env bash
# libbridge: run every test. Installs what the tests need (idempotently) first.
# Usage: scripts/test.sh            (from anywhere; CI calls this through .ci/run)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
golden=${BRIDGE_GOLDEN_DIR:-$root/../shared/golden}

echo "== unit and end-to-end tests"
BRIDGE_GOLDEN_DIR="$golden" cargo test --workspace --locked

echo "== golden replay (bridge replay)"
cargo run --quiet --locked -p bridge --bin bridge -- replay "$golden"/*.json
