#!/usr/bin/env bash
# The OpenMessaging-Benchmark shape on three brokers (issue 54): one topic of PARTITIONS
# partitions (default 100), replication factor 3, min.insync.replicas=2, flush.policy=always
# (fsync before ack), 1 KiB records at RATE records/s (default 50k: 50 MB/s), acks=all, open
# loop, through the Kafka listeners with librdkafka (`kafka-bench latency`, linger.ms=1,
# batch.size=1 MiB, idempotent) and through gRPC (`shale-bench latency`, ProduceMany). Three
# `shale serve` brokers and etcd on this machine, started afresh for each run. Each line:
#   - latency p50/p99/p999 from each record's due time, and records acknowledged per second;
#   - the three brokers' CPU per record acknowledged (user + system, every thread, summed
#     over the brokers, from /proc/PID/stat) and their context switches per record, over
#     the measured window; the load client's CPU per record.
# A leader's record costs it the produce and the fsync; each follower's copy costs it a
# fetch, an append and an fsync: compare with the one-broker figure of bench-cpu.sh.
#
#   scripts/bench-cpu-rf3.sh [DIR] [FRONT_ENDS] [RUNS]
# e.g. scripts/bench-cpu-rf3.sh /tmp/rf3 "kafka grpc" 2
# SHALE_BINS="A B": broker builds alternated run by run (labels are the binaries' names);
# SECONDS_PER_RUN (default 10, after a 2 s warm-up); PARTITIONS, RATE.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/cpu-rf3}"
FRONT_ENDS="${2:-kafka grpc}"
RUNS="${3:-1}"
RUN_SECONDS="${SECONDS_PER_RUN:-10}"
PARTITIONS="${PARTITIONS:-100}"
RATE="${RATE:-50k}"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
scripts/etcd.sh install
build_kafka_bench
BINS="${SHALE_BINS:-$SHALE}"

# Context switches of every live thread of a process.
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/{n += $2} END {print n + 0}'; }
# A sum of $1 (a function of one PID) over the brokers.
over_brokers() { local f=$1 p t=0; for p in "${PIDS[@]}"; do t=$(echo "$t $($f "$p")" | awk '{print $1 + $2}'); done; echo "$t"; }

EC=$(free_port); EP=$(free_port)
ETCD_PID=$(scripts/etcd.sh start "$DIR/etcd" "$EC" "$EP")
ETCD_URL="http://127.0.0.1:$EC"
PIDS=()
stop_brokers() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap 'stop_brokers; scripts/etcd.sh stop "$ETCD_PID" >/dev/null 2>&1 || true' EXIT

# Starts three brokers of build $1 in a fresh cluster and the topic. Sets PIDS, GRPCS
# (comma-separated gRPC addresses) and KAFKAS (the Kafka bootstrap list).
RUN=0
start_cluster() {
  local bin=$1 i grpc kafka admin cluster
  RUN=$((RUN + 1))
  cluster="cpu-rf3-$RUN"
  local g=() k=()
  rm -rf "$DIR/b1" "$DIR/b2" "$DIR/b3"
  for i in 1 2 3; do
    grpc=127.0.0.1:$(free_port) kafka=127.0.0.1:$(free_port) admin=127.0.0.1:$(free_port)
    SHALE_LOG=warn "$bin" serve --id "$i" --listen "$grpc" --kafka-listen "$kafka" \
      --data-dir "$DIR/b$i" --etcd "$ETCD_URL" --cluster "$cluster" --admin-listen "$admin" \
      > "$DIR/b$i.out" 2> "$DIR/b$i.err" &
    PIDS+=($!)
    g+=("$grpc") k+=("$kafka")
  done
  for _ in $(seq 600); do
    [ "$(grep -l listening "$DIR"/b?.out 2>/dev/null | wc -l)" = 3 ] && break
    sleep 0.1
  done
  [ "$(grep -l listening "$DIR"/b?.out 2>/dev/null | wc -l)" = 3 ] ||
    { echo "the brokers did not start: $(tail -3 "$DIR"/b?.err)" >&2; exit 1; }
  GRPCS=$(IFS=,; echo "${g[*]}") KAFKAS=$(IFS=,; echo "${k[*]}")
  "$bin" topic create omb --partitions "$PARTITIONS" --replication-factor 3 \
    --config min.insync.replicas=2 --config flush.policy=always --broker "$GRPCS" > /dev/null
}

# The load (front end $1) for $2 s after $3 s of warm-up; replaces the shell it runs in.
load() {
  case $1 in
    grpc) exec "$SHALE_BENCH" latency --broker "$GRPCS" --topic omb --partitions "$PARTITIONS" \
      --rates "$RATE" --rounds 1 --warmup "$3" --seconds "$2" --label "grpc rf3" ;;
    kafka) exec "$KAFKA_BENCH" latency --bootstrap "$KAFKAS" --topic omb \
      --partitions "$PARTITIONS" --rates "$RATE" --rounds 1 --warmup "$3" --seconds "$2" \
      --linger-ms 1 --batch-size 1048576 --label "kafka rf3" ;;
  esac
}

# One run: build $1, front end $2. Prints one line.
run() {
  local bin=$1 front=$2
  start_cluster "$bin"
  (load "$front" "$RUN_SECONDS" 2) > "$DIR/load.txt" 2>&1 &
  local client=$! span=$((RUN_SECONDS - 2))
  # The warm-up and the client's connecting first; the window ends a second before the run.
  sleep 3
  local b0 c0 x0 b1 c1 x1
  b0=$(over_brokers cpu) c0=$(cpu "$client") x0=$(over_brokers switches)
  sleep "$span"
  b1=$(over_brokers cpu) c1=$(cpu "$client") x1=$(over_brokers switches)
  [ -e "/proc/$client" ] || echo "  (the load client ended before the measured window did: its figures are void)"
  wait "$client" || echo "the load failed: $(tail -2 "$DIR/load.txt")" >&2
  local line acked
  line=$(grep -E 'round [0-9]' "$DIR/load.txt" | tail -1)
  acked=$(echo "$line" | sed -n 's/.*acked (\([0-9]*\)\/s).*/\1/p')
  [ -n "$acked" ] && [ "$acked" -gt 0 ] || acked=$(records "$RATE")
  echo "$line" | awk -v b="$(basename "$bin")" -v f="$front" -v n="$acked" -v s="$span" \
    -v db="$b0 $b1" -v dc="$c0 $c1" -v dx="$x0 $x1" '
    { split(db, B); split(dc, C); split(dx, X)
      for (i = 1; i <= NF; i++) {
        if ($i == "p50") p50 = $(i + 1); if ($i == "p99") p99 = $(i + 1); if ($i == "p999") p999 = $(i + 1) }
      printf "  %-14s %-5s p50/p99/p999 %s / %s / %s ms, %d/s acked | 3 brokers %.1f us/record, %.2f switches/record | client %.1f us/record\n",
        b, f, p50, p99, p999, n, (B[2] - B[1]) / s / n * 1e6, (X[2] - X[1]) / s / n, (C[2] - C[1]) / s / n * 1e6 }'
  stop_brokers
}

echo "== $PARTITIONS partitions, RF=3, $RATE records/s, 1 KiB: fio fdatasync p50/p99/p999 $(fio_sync_ms $(( $(records "$RATE") * 1024 )) | sed 's| | / |g') ms"
for _ in $(seq "$RUNS"); do
  for front in $FRONT_ENDS; do
    for bin in $BINS; do
      run "$bin" "$front"
    done
  done
done
