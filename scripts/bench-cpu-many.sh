#!/usr/bin/env bash
# CPU per record with many partitions: one `shale standalone` and `shale-bench latency`
# over PARTITIONS partitions at RATE records/s in all (1 KiB), open loop. Prints the CPU
# the broker and the load client used (cores, from /proc over 8 s in the middle of the
# run), the latency line, and the broker's produce stages.
#   scripts/bench-cpu-many.sh [DIR] [POLICY] [RATE] [PARTITIONS]
# e.g. scripts/bench-cpu-many.sh /tmp/cpu interval 20k 1000
# SHALE_BENCH_BIN runs another load client binary (an A/B of two builds), SHALE_BIN another
# broker binary (with both set nothing is built); BENCH_ARGS adds `shale-bench latency`
# flags, e.g. BENCH_ARGS="--max-in-flight 1".
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/cpu-many}"
POLICY="${2:-interval}"
RATE="${3:-20k}"
PARTITIONS="${4:-1000}"
scripts/ensure-protoc.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
[ -n "${SHALE_BIN:-}" ] && [ -n "${SHALE_BENCH_BIN:-}" ] ||
  cargo build --release --quiet --bin shale --bin shale-bench
SHALE="${SHALE_BIN:-$CARGO_TARGET_DIR/release/shale}"
SHALE_BENCH="${SHALE_BENCH_BIN:-$CARGO_TARGET_DIR/release/shale-bench}"
rm -rf "$DIR" && mkdir -p "$DIR"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
ADMIN=$(free_port)
"$SHALE" standalone --kafka-listen none --data-dir "$DIR/data" --listen "127.0.0.1:$PORT" \
  --admin-listen "127.0.0.1:$ADMIN" > "$DIR/broker.out" 2> "$DIR/broker.err" &
BROKER=$!
# The broker's exit is awaited: a next run must not overlap its shutdown.
trap 'kill $BROKER 2>/dev/null && wait $BROKER 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$DIR/broker.out" && break; sleep 0.1; done
"$SHALE_BENCH" latency --broker "127.0.0.1:$PORT" --topic "cpu-$POLICY" --partitions "$PARTITIONS" \
  --config "flush.policy=$POLICY" --rates "$RATE" --rounds 1 --seconds 10 \
  --label "$POLICY, $PARTITIONS partitions" ${BENCH_ARGS:-} > "$DIR/bench.txt" 2>&1 &
BENCH=$!
# CPU seconds (user + system) of a process.
cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
# CPU seconds the whole machine was busy (all but idle, iowait and steal): kernel
# writeback threads work for the broker outside its own process.
busy() { awk '/^cpu /{printf "%.2f", ($2 + $3 + $4 + $7 + $8) / 100}' /proc/stat; }
# CPU seconds the hypervisor took from this machine's vCPUs (steal).
steal() { awk '/^cpu /{printf "%.2f", $9 / 100}' /proc/stat; }
# Topic creation and the 2 s warm-up come first; 8 s of the 10 s round are measured.
sleep 4
b0=$(cpu "$BROKER"); c0=$(cpu "$BENCH"); m0=$(busy); s0=$(steal)
sleep 8
b1=$(cpu "$BROKER"); c1=$(cpu "$BENCH"); m1=$(busy); s1=$(steal)
wait "$BENCH"
echo "broker $(echo "$b0 $b1" | awk '{printf "%.2f", ($2 - $1) / 8}') cores, load client $(echo "$c0 $c1" | awk '{printf "%.2f", ($2 - $1) / 8}') cores, machine busy $(echo "$m0 $m1" | awk '{printf "%.2f", ($2 - $1) / 8}') of $(nproc) cores, stolen $(echo "$s0 $s1" | awk '{printf "%.2f", ($2 - $1) / 8}')"
tail -1 "$DIR/bench.txt"
curl -s "http://127.0.0.1:$ADMIN/metrics" > "$DIR/metrics.txt"
grep '^shale_produce_stage_seconds_\(sum\|count\)' "$DIR/metrics.txt" | paste - - |
  awk '{split($1, a, "\""); if ($4 > 0) printf "  stage %-14s mean %.3f ms over %d\n", a[2], 1000 * $2 / $4, $4}'
grep '^shale_log_shared_fsync' "$DIR/metrics.txt" | tr '\n' ' ' | sed 's/^/  /; s/ $/\n/'
