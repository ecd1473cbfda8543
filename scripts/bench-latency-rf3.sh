#!/usr/bin/env bash
# Produce latency of RF=3 (acks=all, min.insync.replicas=2, fsync before ack) on three
# brokers and etcd on this machine, at fixed offered rates, open loop and coordinated-
# omission corrected (`shale-bench latency`), with the same rates at RF=1 in the same run.
#   scripts/bench-latency-rf3.sh [DIR] [RATES] [ROUNDS] [SECONDS]
# e.g. scripts/bench-latency-rf3.sh /tmp/lat-rf3 51200 2 10   (51,200 records/s = 50 MiB/s)
# TOPICS=rf3 runs the RF=3 topic only. Ends with each broker's produce stage means.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/latency-rf3}"
RATES="${2:-51200}"
ROUNDS="${3:-2}"
SECONDS_PER_ROUND="${4:-10}"
CLUSTER=bench
# shellcheck source=scripts/bench-cluster-lib.sh
source scripts/bench-cluster-lib.sh
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; 3 brokers + etcd on one disk"
echo "rates $RATES records/s of 1 KiB over 3 partitions, $ROUNDS rounds, ${SECONDS_PER_ROUND} s each"
"$SHALE" topic create rf3 --partitions 3 --replication-factor 3 --config min.insync.replicas=2 \
  --broker "$BROKERS" >/dev/null
"$SHALE" topic create rf1 --partitions 3 --replication-factor 1 --broker "$BROKERS" >/dev/null
for t in ${TOPICS:-rf3 rf1}; do
  "$SHALE_BENCH" latency --broker "$BROKERS" --topic $t --partitions 3 --rates "$RATES" \
    --rounds "$ROUNDS" --seconds "$SECONDS_PER_ROUND" --label "shale $t acks=all"
done
# Each broker's produce stages over both topics (means), kept in $DIR/bN.metrics.
for i in "${!ADMINS[@]}"; do
  curl -s "http://${ADMINS[$i]}/metrics" > "$DIR/b$((i + 1)).metrics"
  grep '^shale_produce_stage_seconds_\(sum\|count\)' "$DIR/b$((i + 1)).metrics" | paste - - |
    awk -v b=$((i + 1)) '{split($1, a, "\""); if ($4 > 0) printf "  broker %d stage %-14s mean %.3f ms over %d\n", b, a[2], 1000 * $2 / $4, $4}'
done
