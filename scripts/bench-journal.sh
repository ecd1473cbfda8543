#!/usr/bin/env bash
# fsync-before-ack at many partitions, with the journal (`log.journal=true`) and without it
# (each partition fsyncs its own segment file), alternated in one run on one machine, and
# beside them the mode `interval` (journal on, `flush.policy=interval`: acknowledged
# without waiting for any fsync, the floor the produce path itself sets at that shape):
# `shale-bench latency` over P partitions at R records/s in all (1 KiB, flush.policy=always,
# open loop), for each P:R of the matrix. Prints p50/p99/p999, the broker's CPU per record,
# the journal's rounds, and beside them fio's fdatasync latency at the same write rate
# (64 KiB writes, each followed by an fdatasync: the disk's own cost of the same bytes).
#   scripts/bench-journal.sh [DIR] [MATRIX] [MODES]
# e.g. scripts/bench-journal.sh /tmp/bj "1:50k 16:50k 100:50k 1000:20k 10000:10k" "on off interval"
# SHALE_BIN, SHALE_BENCH_BIN: other builds (an A/B); SECONDS_PER_RUN (default 10);
# LOG_SETTINGS: more `[log]` lines for both modes, e.g. LOG_SETTINGS='journal_bytes = 2147483648'.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/journal}"
MATRIX="${2:-1:50k 16:50k 100:50k 1000:20k 10000:10k}"
MODES="${3:-on off}"
RUN_SECONDS="${SECONDS_PER_RUN:-10}"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

# One run: mode (on/off/interval), partitions, rate. Prints one line.
run() {
  local mode=$1 partitions=$2 rate=$3 journal=true flush=always
  [ "$mode" = off ] && journal=false
  [ "$mode" = interval ] && flush=interval
  printf '[log]\njournal = %s\n%s\n' "$journal" "${LOG_SETTINGS:-}" > "$DIR/shale.toml"
  rm -rf "$DIR/shale"
  SHALE_CONFIG="$DIR/shale.toml" start_standalone --kafka-listen none --listen 127.0.0.1:0 \
    --admin-listen "127.0.0.1:$ADMIN" > /dev/null
  local addr
  addr=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$DIR/broker.out")
  "$SHALE" topic create "j$partitions" --partitions "$partitions" --config "flush.policy=$flush" \
    --broker "$addr" > /dev/null
  "$SHALE_BENCH" latency --broker "$addr" --topic "j$partitions" --partitions "$partitions" \
    --rates "$rate" --rounds 1 --seconds "$RUN_SECONDS" \
    --label "journal $mode, $partitions partitions" > "$DIR/bench.txt" 2>&1 &
  local bench=$!
  # The bench warms up for 2 s; the CPU is measured over the rest but the last second.
  sleep 2
  local b0 b1 c0 c1 span=$((RUN_SECONDS - 3))
  b0=$(cpu "$PID") c0=$(cpu "$bench")
  sleep "$span"
  b1=$(cpu "$PID") c1=$(cpu "$bench")
  wait "$bench"
  local n us cus
  n=$(records "$rate")
  us=$(echo "$b0 $b1 $span $n" | awk '{printf "%.1f", ($2 - $1) / $3 / $4 * 1e6}')
  cus=$(echo "$c0 $c1 $span $n" | awk '{printf "%.1f", ($2 - $1) / $3 / $4 * 1e6}')
  echo "$(tail -1 "$DIR/bench.txt") | broker ${us} us/record, client ${cus}"
  curl -s "http://127.0.0.1:$ADMIN/metrics" > "$DIR/metrics.txt"
  grep -E '^shale_log_journal_(rounds|round_partitions|sync_seconds|checkpoints|checkpoint_seconds|room_waits)(_total)? ' \
    "$DIR/metrics.txt" | tr '\n' ' ' | sed 's/^/    /; s/ $/\n/' || true
  kill "$PID" && wait "$PID" 2>/dev/null || true
}

ADMIN=$(free_port)
for entry in $MATRIX; do
  partitions=${entry%%:*}
  rate=${entry##*:}
  bytes=$(( $(records "$rate") * 1024 ))
  echo "== $partitions partitions, $rate records/s: fio fdatasync p50/p99/p999 ms $(fio_sync_ms "$bytes")"
  for mode in $MODES; do
    run "$mode" "$partitions" "$rate"
  done
done
