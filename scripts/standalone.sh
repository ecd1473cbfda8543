#!/usr/bin/env bash
# The run command: build Shale and its load generator, shale-bench (installing protoc if
# needed), and run a standalone broker with embedded metadata and local storage. Extra
# arguments go to `shale standalone`,
# e.g. scripts/standalone.sh --data-dir /var/lib/shale --listen 0.0.0.0:9292
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-protoc.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
cargo build --release --quiet --bin shale --bin shale-bench
exec "$CARGO_TARGET_DIR/release/shale" standalone "$@"
