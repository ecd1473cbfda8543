#!/usr/bin/env bash
# Produce latency of RF=3 (acks=all, min.insync.replicas=2, fsync before ack) on three
# brokers and etcd on this machine, at fixed offered rates, open loop and coordinated-
# omission corrected (`shale-bench latency`), with the same rates at RF=1 in the same run.
#   scripts/bench-latency-rf3.sh [DIR] [RATES] [ROUNDS] [SECONDS]
# e.g. scripts/bench-latency-rf3.sh /tmp/lat-rf3 51200 2 10   (51,200 records/s = 50 MiB/s)
# TOPICS=rf3 runs the RF=3 topic only; TOPICS="rf3 rf3i" the RF=3 topic beside the same with
# flush.policy=interval; PARTITIONS (default 3) per topic. Ends with each broker's produce
# stage means. The OpenMessaging-Benchmark shape (1 topic, 100 partitions, 1 KiB, 50 MB/s):
#   PARTITIONS=100 TOPICS="rf3 rf3i" scripts/bench-latency-rf3.sh /tmp/omb 51200 1 10
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
P="${PARTITIONS:-3}"
echo "rates $RATES records/s of 1 KiB over $P partitions, $ROUNDS rounds, ${SECONDS_PER_ROUND} s each"
"$SHALE" topic create rf3 --partitions "$P" --replication-factor 3 --config min.insync.replicas=2 \
  --broker "$BROKERS" >/dev/null
"$SHALE" topic create rf3i --partitions "$P" --replication-factor 3 --config min.insync.replicas=2 \
  --config flush.policy=interval --broker "$BROKERS" >/dev/null
"$SHALE" topic create rf1 --partitions "$P" --replication-factor 1 --broker "$BROKERS" >/dev/null
for t in ${TOPICS:-rf3 rf1}; do
  "$SHALE_BENCH" latency --broker "$BROKERS" --topic $t --partitions "$P" --rates "$RATES" \
    --rounds "$ROUNDS" --seconds "$SECONDS_PER_ROUND" --label "shale $t acks=all"
done
# Each broker's produce stages over both topics (means), kept in $DIR/bN.metrics.
for i in "${!ADMINS[@]}"; do
  curl -s "http://${ADMINS[$i]}/metrics" > "$DIR/b$((i + 1)).metrics"
  grep '^shale_produce_stage_seconds_\(sum\|count\)' "$DIR/b$((i + 1)).metrics" | paste - - |
    awk -v b=$((i + 1)) '{split($1, a, "\""); if ($4 > 0) printf "  broker %d stage %-14s mean %.3f ms over %d\n", b, a[2], 1000 * $2 / $4, $4}'
done
