#!/usr/bin/env bash
# The run command: build Shale and its load generator, shale-bench (installing protoc if
# needed), and run a standalone broker with embedded metadata and local storage. Extra
# arguments go to `shale standalone`,
# e.g. scripts/standalone.sh --data-dir /var/lib/shale --listen 0.0.0.0:9292
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-protoc.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
if [ ! -x "$CARGO_TARGET_DIR/release/shale" ]; then
  echo "Building Shale for the first time (a release build: about 10 minutes on 2 cores," \
    "less on more); later runs start at once." >&2
fi
# Cargo's progress goes to the terminal; once built, this is a no-op check of a second.
cargo build --release --bin shale --bin shale-bench
exec "$CARGO_TARGET_DIR/release/shale" standalone "$@"
