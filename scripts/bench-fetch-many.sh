#!/usr/bin/env bash
# A consumer of many partitions: one FetchMany stream per broker against one Fetch stream
# per partition, on one standalone broker (release build), reading PARTITIONS partitions of
# RECORDS records of 1 KiB each from the beginning to the end, three runs of each mode
# alternated. Reports MiB/s, the streams the consumer opened, its peak RSS and the broker's
# RSS after each run.
#   scripts/bench-fetch-many.sh [DIR] [PARTITIONS] [RECORDS_PER_PARTITION]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/fetch-many}"
PARTITIONS="${2:-1000}"
PER="${3:-200}"
scripts/ensure-protoc.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
cargo build --release --quiet --bin shale --bin shale-bench
SHALE="$CARGO_TARGET_DIR/release/shale"
SHALE_BENCH="$CARGO_TARGET_DIR/release/shale-bench"
rm -rf "$DIR" && mkdir -p "$DIR"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port); ADMIN=$(free_port)
BROKER="127.0.0.1:$PORT"
SHALE_LOG=warn "$SHALE" standalone --kafka-listen none --data-dir "$DIR/broker" --listen "$BROKER" \
  --admin-listen "127.0.0.1:$ADMIN" > "$DIR/broker.out" 2> "$DIR/broker.err" &
BROKER_PID=$!
trap 'kill "$BROKER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; broker and client on one host"
"$SHALE" topic create many --partitions "$PARTITIONS" --broker "$BROKER" >/dev/null
echo "produce: $("$SHALE_BENCH" produce --broker "$BROKER" --topic many \
  --records $((PARTITIONS * PER)) --record-size 1024 --acks 1 --format json)"
rss() { awk '/VmRSS/ {print $2 / 1024}' "/proc/$BROKER_PID/status"; }
for run in 1 2 3; do
  for mode in per-broker per-partition; do
    flag=""
    [ "$mode" = per-partition ] && flag="--stream-per-partition"
    out=$("$SHALE_BENCH" consume --broker "$BROKER" --topic many --from-beginning $flag --format json)
    echo "run $run, one stream $mode: $out; broker RSS $(rss) MiB"
  done
done
