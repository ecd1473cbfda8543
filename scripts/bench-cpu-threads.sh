#!/usr/bin/env bash
# Where the broker's context switches and CPU go, by thread name (issue 54): one
# `shale standalone` (journal on), a topic of PARTITIONS partitions at flush.policy=always,
# 1 KiB records at RATE records/s, open loop through FRONT (grpc: `shale-bench latency`;
# kafka: `kafka-bench latency`, librdkafka), and over 5 s in the middle of the run each
# thread's switches (voluntary + involuntary) and CPU from /proc/PID/task/*, summed by
# thread name (the runtime's workers and blocking threads are all `shale`).
#   scripts/bench-cpu-threads.sh [DIR] [FRONT] [PARTITIONS] [RATE]
# e.g. scripts/bench-cpu-threads.sh /tmp/threads grpc 100 50k
# SHALE_BIN runs another build; EXTRA_ENV="NAME=VALUE ..." is set for the broker only.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/cpu-threads}"
FRONT="${2:-grpc}"
PARTITIONS="${3:-100}"
RATE="${4:-50k}"
RUN_SECONDS=10
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
build_kafka_bench
GRPC=127.0.0.1:$(free_port) KAFKA=127.0.0.1:$(free_port)
# shellcheck disable=SC2086
env ${EXTRA_ENV:-} "$SHALE" standalone --data-dir "$DIR/shale" --listen "$GRPC" \
  --kafka-listen "$KAFKA" > "$DIR/broker.out" 2> "$DIR/broker.err" &
PID=$!
trap 'kill $PID 2>/dev/null && wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 300); do grep -q listening "$DIR/broker.out" && break; sleep 0.1; done
grep -q listening "$DIR/broker.out" || { echo "the broker did not start: $(tail -3 "$DIR/broker.err")" >&2; exit 1; }
"$SHALE" topic create t --partitions "$PARTITIONS" --config flush.policy=always \
  --broker "$GRPC" > /dev/null
case $FRONT in
  grpc) "$SHALE_BENCH" latency --broker "$GRPC" --topic t --partitions "$PARTITIONS" \
    --rates "$RATE" --rounds 1 --warmup 2 --seconds 8 > "$DIR/load.txt" 2>&1 & ;;
  kafka) "$KAFKA_BENCH" latency --bootstrap "$KAFKA" --topic t --partitions "$PARTITIONS" \
    --rates "$RATE" --rounds 1 --warmup 2 --seconds 8 --linger-ms 1 --batch-size 1048576 \
    > "$DIR/load.txt" 2>&1 & ;;
  *) echo "FRONT is grpc or kafka, not $FRONT" >&2; exit 2 ;;
esac
LOAD=$!
# Thread id, name, switches, CPU ticks.
snap() {
  local t
  for t in /proc/"$PID"/task/*; do
    echo "$(basename "$t") $(tr ' ' _ < "$t/comm") $(awk '/ctxt_switches/{n += $2} END {print n}' "$t/status") $(awk '{print $14 + $15}' "$t/stat")"
  done 2>/dev/null
}
sleep 4
snap > "$DIR/s0"
sleep 5
snap > "$DIR/s1"
wait "$LOAD" || echo "the load failed: $(tail -2 "$DIR/load.txt")" >&2
grep -E 'round [0-9]' "$DIR/load.txt" | tail -1
awk 'NR == FNR {c0[$1] = $3; t0[$1] = $4; next}
  {n[$2]++; c[$2] += $3 - c0[$1]; t[$2] += $4 - t0[$1]}
  END {for (k in n) if (c[k] > 0) printf "%-16s threads %3d  switches/s %8.0f  cpu%% %6.1f\n", k, n[k], c[k] / 5, t[k] / 5}' \
  "$DIR/s0" "$DIR/s1" | sort -k5 -nr
