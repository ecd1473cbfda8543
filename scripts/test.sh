#!/usr/bin/env bash
# The test command: installs what the tests need, then runs the whole suite.
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
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
# Two cores: the crash and many-partition tests spawn brokers; keep parallelism modest.
exec cargo test --workspace --lib --bins --tests --quiet -- --test-threads "${SHALE_TEST_THREADS:-4}" "$@"
