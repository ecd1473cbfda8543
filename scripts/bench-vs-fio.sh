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
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
fio_mib=$(fio_fdatasync_mib $BATCH)
echo "fio --rw=write --bs=$BATCH --fdatasync=1: $fio_mib MiB/s"

start_standalone --kafka-listen none --listen 127.0.0.1:0
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
