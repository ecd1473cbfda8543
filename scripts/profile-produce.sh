#!/usr/bin/env bash
# CPU profile of a broker (and optionally the load client) under open-loop produce load:
# `perf record` with DWARF call graphs, folded stacks and a flame graph (inferno), and a
# summary of where the broker's samples fall.
#   scripts/profile-produce.sh [DIR] [RATE] [SECONDS] [BATCH_SIZE] [PARTITIONS]
# e.g. scripts/profile-produce.sh /tmp/prof 100k 5   → /tmp/prof/broker.svg
#      scripts/profile-produce.sh /tmp/prof 20k 5 262144 1000   (1,000 partitions)
# More `shale-bench latency` flags go in BENCH_ARGS, e.g. BENCH_ARGS="--config flush.policy=interval".
# PROFILE=client profiles the load client instead of the broker (same file names).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/profile}"
RATE="${2:-100k}"
SECS="${3:-5}"
BATCH="${4:-262144}"
PARTITIONS="${5:-1}"
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null; }
command -v inferno-flamegraph >/dev/null || cargo install --quiet --locked inferno
scripts/ensure-protoc.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
# The profiling profile: release code with line tables for perf's call graphs.
cargo build --profile profiling --quiet --bin shale --bin shale-bench
SHALE="$CARGO_TARGET_DIR/profiling/shale"
SHALE_BENCH="$CARGO_TARGET_DIR/profiling/shale-bench"
rm -rf "$DIR" && mkdir -p "$DIR"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SHALE" standalone --kafka-listen none --data-dir "$DIR/data" --listen 127.0.0.1:$PORT > "$DIR/broker.out" 2> "$DIR/broker.err" &
BROKER=$!
# The broker's exit is awaited: a next run must not overlap its shutdown.
trap 'kill $BROKER 2>/dev/null && wait $BROKER 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$DIR/broker.out" && break; sleep 0.1; done
"$SHALE_BENCH" latency --broker 127.0.0.1:$PORT --rates "$RATE" --warmup 1 --seconds $((SECS + 3)) \
  --batch-size "$BATCH" --partitions "$PARTITIONS" ${BENCH_ARGS:-} > "$DIR/bench.txt" &
BENCH=$!
sleep $((2 + PARTITIONS / 250))  # the topic created and the warmup past
TARGET=$BROKER
[ "${PROFILE:-broker}" = client ] && TARGET=$BENCH
# A client that finishes first ends the recording early; that is not a failure.
perf record -F 997 --call-graph dwarf,16384 -p "$TARGET" -o "$DIR/broker.perf" -- sleep "$SECS" \
  2> "$DIR/perf.err" || [ "$TARGET" = "$BENCH" ]
wait $BENCH
cat "$DIR/bench.txt"
perf script -i "$DIR/broker.perf" 2>/dev/null | inferno-collapse-perf > "$DIR/broker.folded"
inferno-flamegraph --title "shale broker at $RATE records/s" < "$DIR/broker.folded" > "$DIR/broker.svg"
python3 - "$DIR/broker.folded" "${PROFILE:-broker}" <<'PY'
import collections, sys
keys = ['pwrite', 'fdatasync', 'validate_batches', 'crc32c', 'h2::', 'hyper::', 'tonic::',
        'prost::', 'spawn_blocking', 'futex', 'epoll_wait', 'sendmsg', 'recvfrom',
        'finish_task_switch', 'malloc', 'free']
total, hits = 0, collections.Counter()
for line in open(sys.argv[1]):
    stack, n = line.rsplit(' ', 1)
    total += int(n)
    for k in keys:
        if k in stack:
            hits[k] += int(n)
print(f"{sys.argv[2]} samples containing (a sample can count under several):")
for k, v in hits.most_common():
    print(f"  {k:20} {100 * v / total:5.1f}%")
PY
echo "flame graph: $DIR/broker.svg"
