#!/usr/bin/env bash
# Start-up time of a standalone broker (issue 37): an empty one, and one hosting PER
# partitions (one topic, a record in each), each restarted RUNS times. Reports, per
# restart, the time from exec to the "listening" line and to /readyz answering 200, and the
# broker's own "broker opened in" line (start-up by phase; brokers older than issue 37 do
# not print it, and their /readyz said ready before leaderships were confirmed).
#   scripts/bench-startup.sh [DIR] [PER] [RUNS]
# SHALE_BIN=path/to/shale compares another build (default: this tree's release build).
# FILL_SECONDS=N adds a recovery run (issue 38): the broker produces to PER more partitions
# for N s at 20,000 records/s with checkpoints only at half the journal, is SIGKILLed with
# the journal's untrimmed bytes reported, and restarts, replaying them.
# LAZYFS=DIR (with FILL_SECONDS; DIR holds lazyfs-mount.sh, ../shared/tools/lazyfs/) runs
# that recovery on a LazyFS mount and cuts the power after the kill: every byte not
# fsynced is gone, so the restart writes what it replays (a SIGKILL alone leaves the
# page cache, and replay finds the segments already holding it).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/startup}"
PER="${2:-10000}"
RUNS="${3:-3}"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
echo "shale: $SHALE"
PORT=$(free_port)
ADMIN=$(free_port)
BROKER=
LAZY_MNT=
cleanup() {
  [ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null && while kill -0 "$BROKER" 2>/dev/null; do sleep 0.05; done
  [ -n "$LAZY_MNT" ] && "$LAZYFS/lazyfs-umount.sh" "$LAZY_MNT" > /dev/null 2>&1
  true
}
trap cleanup EXIT
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# Starts the broker on data dir $1 and reports its start-up as $2.
start() {
  local data=$1 name=$2 t0 listen= ready=
  t0=$(now_ms)
  SHALE_LOG=info "$SHALE" standalone --kafka-listen none --data-dir "$data" --listen 127.0.0.1:$PORT \
    --admin-listen 127.0.0.1:$ADMIN > "$DIR/$name.out" 2> "$DIR/$name.err" &
  BROKER=$!
  for _ in $(seq 12000); do
    [ -z "$listen" ] && grep -q listening "$DIR/$name.out" && listen=$(( $(now_ms) - t0 ))
    if [ -n "$listen" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN/readyz")" = 200 ]; then
      ready=$(( $(now_ms) - t0 )); break
    fi
    sleep 0.01
  done
  [ -n "$ready" ] || { echo "$name: not ready: $(tail -3 "$DIR/$name.err")" >&2; exit 1; }
  local phases
  phases=$(grep -o 'broker opened in.*' "$DIR/$name.err" | sed 's/\x1b\[[0-9;]*m//g; s/ broker=.*//' || true)
  echo "$name: listening after ${listen} ms, /readyz 200 after ${ready} ms; ${phases:-no phase line}"
}
stop() { kill "$BROKER"; while kill -0 "$BROKER" 2>/dev/null; do sleep 0.05; done; BROKER=; }

start "$DIR/empty" "empty-first"; stop
for i in $(seq "$RUNS"); do start "$DIR/empty" "empty-restart-$i"; stop; done

start "$DIR/many" "many-first"
"$SHALE_BENCH" partitions --broker 127.0.0.1:$PORT --topics 1 --partitions "$PER" --steps create,produce > "$DIR/create.out"
stop
for i in $(seq "$RUNS"); do start "$DIR/many" "$PER-partitions-restart-$i"; stop; done

[ "${FILL_SECONDS:-0}" -gt 0 ] || exit 0
printf '[log]\njournal_checkpoint_bytes = 134217728\n' > "$DIR/fill.toml"
export SHALE_CONFIG="$DIR/fill.toml"
FILL_DIR="$DIR/many"
if [ -n "${LAZYFS:-}" ]; then
  # LazyFS aborts in its truncate path when the cold-read cache opens its files there.
  printf '[tier]\ncache_disk_bytes = 0\n' >> "$DIR/fill.toml"
  LAZY_MNT="$DIR/lazy-mnt"
  LAZYFS_CACHE_SIZE="${LAZYFS_CACHE_SIZE:-3gb}" "$LAZYFS/lazyfs-mount.sh" "$DIR/lazy-root" \
    "$LAZY_MNT" "$DIR/lazy-fifo" > /dev/null
  FILL_DIR="$LAZY_MNT"
fi
start "$FILL_DIR" "fill-start"
"$SHALE_BENCH" latency --broker 127.0.0.1:$PORT --topic fill --partitions "$PER" \
  --config flush.policy=always --rates 20k --rounds 1 --seconds "$FILL_SECONDS" > "$DIR/fill.out" 2>&1
tail -1 "$DIR/fill.out"
echo "journal before the kill: $(curl -s "http://127.0.0.1:$ADMIN/metrics" |
  grep -E '^shale_log_journal_occupancy_bytes' | tr '\n' ' ')"
kill -9 "$BROKER"; while kill -0 "$BROKER" 2>/dev/null; do sleep 0.05; done; BROKER=
name=after-kill
if [ -n "$LAZY_MNT" ]; then
  "$LAZYFS/lazyfs-ctl.sh" "$LAZY_MNT" clear-cache > /dev/null
  echo "power cut: LazyFS dropped every byte not fsynced"
  name=after-power-cut
fi
start "$FILL_DIR" "$name"
grep -o 'journal replayed and open.*' "$DIR/$name.err" | sed 's/\x1b\[[0-9;]*m//g' || true
stop
