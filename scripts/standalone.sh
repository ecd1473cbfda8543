#!/usr/bin/env bash
# The run command: build Shale (installing protoc if needed) and run a standalone broker
# with embedded metadata and local storage. Extra arguments go to `shale standalone`,
# e.g. scripts/standalone.sh --data-dir /var/lib/shale --listen 0.0.0.0:9292
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-protoc.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
exec cargo run --release --quiet --bin shale -- standalone "$@"
