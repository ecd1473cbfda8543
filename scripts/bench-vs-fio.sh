#!/usr/bin/env bash
# Produce throughput of Shale (1 KiB records, acks=1, flush.policy=always) against fio's
# sequential write with an fdatasync after every block of the producer's batch size, on the
# same disk, in one run; then produce latency at half of Shale's peak.
#   scripts/bench-vs-fio.sh [DIR] [RECORDS]   (SHALE_BIN, SHALE_BENCH_BIN: another `shale`
#   or `shale-bench` binary, for an A/B)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data}"
RECORDS="${2:-1000000}"
BATCH=262144
command -v fio >/dev/null || { apt-get update -qq && apt-get install -y -qq fio >/dev/null; }
scripts/ensure-protoc.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
cargo build --release --quiet --bin shale --bin shale-bench
SHALE="${SHALE_BIN:-$CARGO_TARGET_DIR/release/shale}"
SHALE_BENCH="${SHALE_BENCH_BIN:-$CARGO_TARGET_DIR/release/shale-bench}"
rm -rf "$DIR" && mkdir -p "$DIR"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), disk $(df -h "$DIR" | awk 'NR==2{print $1}')"

fio_bw=$(fio --name=seq --rw=write --bs=$BATCH --size=1G --fdatasync=1 --ioengine=sync \
  --directory="$DIR" --output-format=terse | awk -F';' '{print $48}')
rm -f "$DIR"/seq*
fio_mib=$(echo "scale=1; $fio_bw / 1024" | bc)
echo "fio --rw=write --bs=$BATCH --fdatasync=1: $fio_mib MiB/s"

"$SHALE" standalone --kafka-listen none --data-dir "$DIR/shale" --listen 127.0.0.1:0 > "$DIR/broker.out" 2> "$DIR/broker.err" &
PID=$!
# The broker's exit is awaited: a next run must not overlap its shutdown.
trap 'kill $PID 2>/dev/null && wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$DIR/broker.out" && break; sleep 0.1; done
ADDR=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$DIR/broker.out")

peak=$("$SHALE_BENCH" produce --broker "$ADDR" --topic peak --records "$RECORDS" --record-size 1024 \
  --acks 1 --batch-size $BATCH --format json)
echo "shale peak: $peak"
shale_mib=$(echo "$peak" | sed 's/.*"mib_per_sec":\([0-9.]*\).*/\1/')
rate=$(echo "$peak" | sed 's/.*"records_per_sec":\([0-9.]*\).*/\1/' | awk '{printf "%d", $1/2}')
echo "ratio shale/fio: $(echo "scale=3; $shale_mib / $fio_mib" | bc)"
half=$("$SHALE_BENCH" produce --broker "$ADDR" --topic half --records "$RECORDS" --record-size 1024 \
  --acks 1 --batch-size $BATCH --rate "$rate" --format json)
echo "shale at half peak ($rate records/s): $half"
"$SHALE_BENCH" consume --broker "$ADDR" --topic peak
