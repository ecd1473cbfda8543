#!/usr/bin/env bash
# Produce latency at fixed offered rates, open loop and coordinated-omission corrected
# (each record timed from when it was due), side by side in one run:
#   - Shale, one partition, flush.policy=always (fsync before every ack), default client;
#   - Shale, one partition, flush.policy=interval (ack after the write, fsync every second);
#   - the same with flush.ms=120000: fsync every 2 min, NATS JetStream's default below;
#   - NATS JetStream 2.9 (Debian's nats-server, file storage; fsyncs every 2 min by
#     default, no per-write fsync), published by tools/nats-bench, which shares Shale's
#     pacing and measurement code;
#   - Shale, 1,000 partitions at RATE_MANY records/s in all (100 records/s each).
# Then fio's fdatasync latency for the disk's own floor, and Shale's per-stage breakdown.
#   scripts/bench-latency.sh [DIR] [RATES] [ROUNDS] [SECONDS]
# e.g. scripts/bench-latency.sh /tmp/lat 50k,100k 2 10
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/latency}"
RATES="${2:-50k,100k}"
ROUNDS="${3:-2}"
SECONDS_PER_ROUND="${4:-10}"
RATE_MANY="${RATE_MANY:-100k}"
command -v nats-server >/dev/null || { apt-get update -qq && apt-get install -y -qq nats-server >/dev/null; }
command -v fio >/dev/null || { apt-get update -qq && apt-get install -y -qq fio >/dev/null; }
scripts/ensure-protoc.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
cargo build --release --quiet --bin shale --bin shale-bench
cargo build --release --quiet --manifest-path tools/nats-bench/Cargo.toml
SHALE="$CARGO_TARGET_DIR/release/shale"
SHALE_BENCH="$CARGO_TARGET_DIR/release/shale-bench"
NATS_BENCH="$CARGO_TARGET_DIR/release/nats-bench"
rm -rf "$DIR" && mkdir -p "$DIR"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), disk $(df -h "$DIR" | awk 'NR==2{print $1}'); nats-server $(nats-server --version | awk '{print $2}')"
echo "rates $RATES records/s of 1 KiB, $ROUNDS rounds, ${SECONDS_PER_ROUND} s measured per round after 2 s of warm-up"

start_shale() {
  PORT=$(free_port); ADMIN=$(free_port)
  "$SHALE" standalone --kafka-listen none --data-dir "$DIR/shale" --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:$ADMIN \
    > "$DIR/shale.out" 2> "$DIR/shale.err" &
  SHALE_PID=$!; PIDS+=($SHALE_PID)
  for _ in $(seq 100); do grep -q listening "$DIR/shale.out" && return; sleep 0.1; done
  echo "shale did not start: $(tail -3 "$DIR/shale.err")" >&2; exit 1
}
stop() { kill "$1"; while kill -0 "$1" 2>/dev/null; do sleep 0.1; done; }
# Mean and bucket bounds of each produce stage between two scrapes of /metrics.
stages() {
  curl -s "http://127.0.0.1:$ADMIN/metrics" | grep '^shale_produce_stage_seconds_\(sum\|count\)' > "$1"
}
stage_report() {
  join <(sed 's/shale_produce_stage_seconds_\([a-z]*\){stage="\([a-z_]*\)"} \(.*\)/\2_\1 \3/' "$1" | sort) \
       <(sed 's/shale_produce_stage_seconds_\([a-z]*\){stage="\([a-z_]*\)"} \(.*\)/\2_\1 \3/' "$2" | sort) |
    awk '{d[$1]=$3-$2} END {for (k in d) if (k ~ /_count$/) {s=substr(k,1,length(k)-6);
      if (d[k] > 0) printf "  stage %-14s %8d requests, mean %.3f ms\n", s, d[k], 1000*d[s"_sum"]/d[k]}}' | sort
}

start_shale
stages "$DIR/s0"
"$SHALE_BENCH" latency --broker 127.0.0.1:$PORT --topic always --config flush.policy=always \
  --rates "$RATES" --rounds "$ROUNDS" --seconds "$SECONDS_PER_ROUND" --label "shale fsync-before-ack" \
  | tee "$DIR/always.txt"
stages "$DIR/s1"
echo "shale fsync-before-ack, inside the broker:"; stage_report "$DIR/s0" "$DIR/s1"
"$SHALE_BENCH" latency --broker 127.0.0.1:$PORT --topic interval --config flush.policy=interval \
  --rates "$RATES" --rounds "$ROUNDS" --seconds "$SECONDS_PER_ROUND" --label "shale flush.policy=interval" \
  | tee "$DIR/interval.txt"
"$SHALE_BENCH" latency --broker 127.0.0.1:$PORT --topic interval-2m --config flush.policy=interval \
  --config flush.ms=120000 --rates "$RATES" --rounds "$ROUNDS" --seconds "$SECONDS_PER_ROUND" \
  --label "shale interval, flush.ms=120000" | tee "$DIR/interval-2m.txt"
stop "$SHALE_PID"
# The last topic's gigabytes still in the page cache would be written back during NATS's
# rounds: written out first, so that each system's rounds see only its own writeback.
sync

NPORT=$(free_port)
nats-server -js -sd "$DIR/nats" -a 127.0.0.1 -p "$NPORT" > "$DIR/nats.out" 2>&1 &
NATS_PID=$!; PIDS+=($NATS_PID)
for _ in $(seq 100); do grep -q "Server is ready" "$DIR/nats.out" && break; sleep 0.1; done
"$NATS_BENCH" --server "nats://127.0.0.1:$NPORT" --rates "$RATES" --rounds "$ROUNDS" \
  --seconds "$SECONDS_PER_ROUND" --label "nats jetstream (no fsync)" | tee "$DIR/nats.txt"
stop "$NATS_PID"

rm -rf "$DIR/shale"
start_shale
"$SHALE_BENCH" latency --broker 127.0.0.1:$PORT --topic many --partitions 1000 \
  --config flush.policy=always --rates "$RATE_MANY" --rounds 1 --seconds "$SECONDS_PER_ROUND" \
  --label "shale 1000 partitions" | tee "$DIR/many.txt"
stop "$SHALE_PID"

fio --name=sync --rw=write --bs=16k --size=256M --fdatasync=1 --ioengine=sync \
  --directory="$DIR" --output-format=json > "$DIR/fio.json"
rm -f "$DIR"/sync*
python3 - "$DIR/fio.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))['jobs'][0]
p = j['sync']['lat_ns']['percentile']
print("fio 16 KiB appends, fdatasync after each: %.0f MiB/s; fdatasync p50 %.2f p99 %.2f p999 %.2f ms"
      % (j['write']['bw'] / 1024, p['50.000000'] / 1e6, p['99.000000'] / 1e6, p['99.900000'] / 1e6))
PY
