#!/usr/bin/env bash
# The test command: installs what the tests need, then runs the whole suite with
# cargo-nextest (.config/nextest.toml): every test runs, even after a failure, the run ends
# with the list of what failed and the slowest tests, and exits non-zero if any failed.
# Extra arguments go to `cargo nextest run` (a filter, say: scripts/test.sh -E 'binary(cluster)').
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-protoc.sh
# The etcd conformance and etcd store tests start private etcd members.
scripts/etcd.sh install
# Tests of tiered storage start private S3 servers (moto, in a venv under ~/.cache).
scripts/s3.sh install >/dev/null
# The Kafka listener's tests drive real Kafka clients (venv and npm dir under ~/.cache, kcat).
scripts/kafka-clients.sh install
scripts/grpc-clients.sh install
# The console's tests drive Debian's Chromium with Playwright (npm dir under ~/.cache).
scripts/browser.sh install
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest not found; installing it from crates.io (a few minutes)" >&2
  cargo install cargo-nextest --locked
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
report=target/nextest/default/junit.xml
rm -f "$report"
status=0
cargo nextest run --workspace --lib --bins --tests "$@" || status=$?
if [ -f "$report" ]; then
  python3 scripts/slowest-tests.py "$report" 15 || true
fi
exit "$status"
