#!/usr/bin/env bash
# The broker's CPU per record on the produce path, by measures that do not drift with this
# machine's noise (issue 54). For each PARTITIONS:RATE of the matrix and each front end —
# gRPC (`shale-bench latency`, Shale's Rust client, ProduceMany) and the Kafka listener
# (`kafka-bench latency`: librdkafka as Kafka users run it, linger.ms=1, batch.size=1 MiB,
# acks=all, idempotent) — one `shale standalone` (journal on) and a topic at
# `flush.policy=always` (fsync before ack), 1 KiB records round-robin over its partitions,
# open loop. Each line gives:
#   - latency p50/p99/p999 from each record's due time, and records acknowledged per second;
#   - the broker's CPU per record (user + system, every thread, from /proc/PID/stat) and
#     context switches per record (voluntary + involuntary of every thread, from
#     /proc/PID/task/*/status) over the measured window, and the load client's CPU;
#   - the journal's rounds per second (one write and fdatasync each), and the records a
#     batch (records acknowledged over the topic's produce requests, one a partition's
#     batch: the load's shape, which sets the broker's cost a record as much as the build);
#   - on a second line, the switches per record by thread name (the runtime's workers
#     `shale`, the journal's writer, its checkpoints, its notifier...), voluntary (the
#     thread slept: a futex, I/O) + involuntary (preempted).
#   - on a third, the CPU per record by thread name (the checkpoints' thread writes the
#     segment buffers into the page cache: on this VM, mostly pages its host took back,
#     see the page-cache line printed first).
# Beside each matrix entry, fio's fdatasync p50/p99/p999 at the same byte rate.
#
# With CALLGRIND=1 each entry is also run with the broker under
# `valgrind --tool=callgrind` at a low fixed rate (CALLGRIND_RATE, default 400/s, for
# CALLGRIND_SECONDS, default 10): instructions the broker executed per record, the same
# window's count with no load subtracted (timers, housekeeping). Repeatable to about a
# percent whatever else the machine does; not the same shape as the timed runs (fewer
# records per request), so compare it between builds, not with them.
#
#   scripts/bench-cpu.sh [DIR] [MATRIX] [FRONT_ENDS]
# e.g. scripts/bench-cpu.sh /tmp/bc "1:50k 100:50k 1000:20k 10000:10k" "grpc kafka"
# SHALE_BINS="A B": broker builds alternated entry by entry (an A/B in one run; labels are
# the binaries' names); SECONDS_PER_RUN (default 10, after a 2 s warm-up). CONSUME=1 runs
# a consumer at the tail beside the load (`shale-bench consume`, one FetchMany stream), as
# the OpenMessaging Benchmark does: the broker's figures then include the fetches.
# BROKER_CPUS confines the broker to those CPUs (`--cpus`, e.g. 0) and LOAD_CPUS runs the
# load under `taskset -c` (e.g. 1): the broker on a core of its own, its clients elsewhere,
# as on separate hosts (see "A core of its own" in docs/benchmarks.md).
# Front end `raw`: gRPC with `shale-bench latency --raw`, each record a request of its
# own on one ProduceMany stream, without the client's producer. The build `floor` (in
# SHALE_BINS) is `shale-bench grpc-floor`, which answers ProduceMany with no broker behind
# it: what tonic, HTTP/2 and protobuf cost the same load, measured as a broker is (it takes
# the `raw` front end only). It answers on ticks FLOOR_ANSWER_US apart (default 1000, as
# the broker's journal rounds are paced; 0: each message at once), so that the client
# packs its messages as it does for a broker.
# E.g. SHALE_BINS="floor $SHALE" scripts/bench-cpu.sh DIR "100:50k 1000:20k" raw.
# GRPC_LINGER_MS sets the Rust client's linger on gRPC (default: the client's, 0 ms, so
# every record is a batch of its own at these rates; the Kafka runs use librdkafka at
# linger.ms=1, whose batches its five requests in flight fill to about 11 records at 100
# partitions).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/cpu}"
MATRIX="${2:-1:50k 100:50k 1000:20k 10000:10k}"
FRONT_ENDS="${3:-grpc kafka}"
RUN_SECONDS="${SECONDS_PER_RUN:-10}"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
build_kafka_bench
BINS="${SHALE_BINS:-$SHALE}"
if [ "${CALLGRIND:-0}" = 1 ]; then
  command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
fi

# Of those, system (the kernel's, for the process).
sys_cpu() { awk '{printf "%.2f", $15 / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Context switches of every live thread of a process.
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/{n += $2} END {print n}'; }
# Every live thread of a process: id, name, voluntary and involuntary switches, CPU
# ticks (user + system).
thread_switches() {
  local t
  for t in /proc/"$1"/task/*; do
    printf '%s %s %s %s\n' "${t##*/}" "$(tr ' ' '_' < "$t/comm")" \
      "$(awk '/^voluntary_ctxt/{v = $2} /^nonvoluntary_ctxt/{n = $2} END {print v, n}' "$t/status")" \
      "$(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}')"
  done 2>/dev/null
}
# CPU µs per record by thread name between snapshots $1 and $2 (thread_switches) over $3
# records: largest first, those under 0.05 left out.
cpu_by_thread() {
  local hz
  hz=$(getconf CLK_TCK)
  awk -v n="$3" -v hz="$hz" 'NR == FNR {c0[$1] = $5; next}
    {C[$2] += $5 - c0[$1]}
    END {for (k in C) printf "%s %.2f\n", k, C[k] / hz / n * 1e6}' "$1" "$2" |
    sort -k2,2nr | awk '$2 >= 0.05 {printf "%s%s %.1f", (m++ ? ", " : ""), $1, $2} END {print ""}'
}
# Switches per record by thread name between snapshots $1 and $2 (thread_switches) over
# $3 records: voluntary+involuntary, largest first, those under 0.005 left out (a thread
# born in between counts from 0).
switches_by_thread() {
  awk -v n="$3" 'NR == FNR {v0[$1] = $3; i0[$1] = $4; next}
    {V[$2] += $3 - v0[$1]; I[$2] += $4 - i0[$1]}
    END {for (k in V) printf "%s %.3f %.3f\n", k, V[k] / n, I[k] / n}' "$1" "$2" |
    sort -k2,2nr -k3,3nr |
    awk '$2 + $3 >= 0.005 {printf "%s%s %.2f+%.2f", (m++ ? ", " : ""), $1, $2, $3} END {print ""}'
}
# A counter of the broker's metrics (nothing from the gRPC floor, which has none).
metric() { { curl -s "http://127.0.0.1:$ADMIN/metrics" || true; } | awk -v m="$1" '$1 == m {print $2}'; }


# Starts broker build $1 (under $2, a wrapper such as valgrind, if given) with both
# listeners and a topic of $3 partitions at flush.policy=always. Sets PID, GRPC, KAFKA.
start() {
  local bin=$1 wrapper=$2 partitions=$3
  rm -rf "$DIR/shale"
  GRPC=127.0.0.1:$(free_port) KAFKA=127.0.0.1:$(free_port)
  if [ "$bin" = floor ]; then
    # shellcheck disable=SC2086
    ${BROKER_CPUS:+taskset -c $BROKER_CPUS} $wrapper "$SHALE_BENCH" grpc-floor --listen "$GRPC" \
      --answer-every-us "${FLOOR_ANSWER_US:-1000}" > "$DIR/broker.out" 2> "$DIR/broker.err" &
    PID=$!
    trap 'kill $PID 2>/dev/null && wait $PID 2>/dev/null || true' EXIT
    for _ in $(seq 1200); do grep -q listening "$DIR/broker.out" && break; sleep 0.1; done
    grep -q listening "$DIR/broker.out" || { echo "the floor did not start: $(tail -3 "$DIR/broker.err")" >&2; exit 1; }
    return
  fi
  # shellcheck disable=SC2086
  env ${BROKER_CPUS:+SHALE_CPUS=$BROKER_CPUS} $wrapper "$bin" standalone --data-dir "$DIR/shale" --listen "$GRPC" --kafka-listen "$KAFKA" \
    --admin-listen "127.0.0.1:$ADMIN" > "$DIR/broker.out" 2> "$DIR/broker.err" &
  PID=$!
  trap 'kill $PID 2>/dev/null && wait $PID 2>/dev/null || true' EXIT
  for _ in $(seq 1200); do grep -q listening "$DIR/broker.out" && break; sleep 0.1; done
  grep -q listening "$DIR/broker.out" || { echo "the broker did not start: $(tail -3 "$DIR/broker.err")" >&2; exit 1; }
  "$bin" topic create "cpu$partitions" --partitions "$partitions" \
    --config flush.policy=always --broker "$GRPC" > /dev/null
}

stop() { kill "$PID" && wait "$PID" 2>/dev/null || true; }

# The load: front end $1, $2 partitions, $3 records/s, $4 s measured after $5 s of warm-up.
# It replaces the shell it runs in (run it in a subshell or in the background): $! is
# then the load client's PID.
load() {
  local front=$1 partitions=$2 rate=$3 seconds=$4 warmup=$5 on=()
  [ -z "${LOAD_CPUS:-}" ] || on=(taskset -c "$LOAD_CPUS")
  case $front in
    grpc) exec "${on[@]}" "$SHALE_BENCH" latency --broker "$GRPC" --topic "cpu$partitions" \
      --partitions "$partitions" --rates "$rate" --rounds 1 --warmup "$warmup" \
      --seconds "$seconds" ${GRPC_LINGER_MS:+--linger-ms "$GRPC_LINGER_MS"} \
      --label "grpc $partitions" ;;
    raw) exec "${on[@]}" "$SHALE_BENCH" latency --raw --broker "$GRPC" --topic "cpu$partitions" \
      --partitions "$partitions" --rates "$rate" --rounds 1 --warmup "$warmup" \
      --seconds "$seconds" --label "raw $partitions" ;;
    kafka) exec "${on[@]}" "$KAFKA_BENCH" latency --bootstrap "$KAFKA" --topic "cpu$partitions" \
      --partitions "$partitions" --rates "$rate" --rounds 1 --warmup "$warmup" \
      --seconds "$seconds" --linger-ms 1 --batch-size 1048576 --label "kafka $partitions" ;;
  esac
}

# One timed run: build $1, front end $2, $3 partitions at $4 records/s. Prints one line.
run() {
  local bin=$1 front=$2 partitions=$3 rate=$4
  start "$bin" "" "$partitions"
  local consumer=""
  if [ "${CONSUME:-0}" = 1 ]; then
    "$SHALE_BENCH" consume --broker "$GRPC" --topic "cpu$partitions" --follow --records 1000000000 \
      > "$DIR/consume.txt" 2>&1 &
    consumer=$!
  fi
  load "$front" "$partitions" "$rate" "$RUN_SECONDS" 2 > "$DIR/load.txt" 2>&1 &
  local client=$! span=$((RUN_SECONDS - 2))
  # The warm-up and the client's connecting first; the window ends a second before the run.
  sleep 3
  local b0 c0 x0 r0 k0 q0 b1 c1 x1 r1 k1 q1 requests="shale_produce_requests_total{topic=\"cpu$partitions\"}"
  b0=$(cpu "$PID") c0=$(cpu "$client") x0=$(switches "$PID") r0=$(metric shale_log_journal_rounds_total) k0=$(sys_cpu "$PID") q0=$(metric "$requests")
  thread_switches "$PID" > "$DIR/threads.0"
  sleep "$span"
  b1=$(cpu "$PID") c1=$(cpu "$client") x1=$(switches "$PID") r1=$(metric shale_log_journal_rounds_total) k1=$(sys_cpu "$PID") q1=$(metric "$requests")
  thread_switches "$PID" > "$DIR/threads.1"
  [ -e "/proc/$client" ] || echo "  (the load client ended before the measured window did: its figures are void)"
  wait "$client" || { echo "the load failed: $(tail -2 "$DIR/load.txt")" >&2; }
  if [ -n "$consumer" ]; then
    [ -e "/proc/$consumer" ] || echo "  (the consumer ended early: $(tail -1 "$DIR/consume.txt"))"
    kill "$consumer" 2>/dev/null; wait "$consumer" 2>/dev/null || true
  fi
  local line acked
  line=$(grep -E 'round [0-9]' "$DIR/load.txt" | tail -1)
  # Records acknowledged per second in the load's window (the offered rate if it kept up).
  acked=$(echo "$line" | sed -n 's/.*acked (\([0-9]*\)\/s).*/\1/p')
  [ -n "$acked" ] && [ "$acked" -gt 0 ] || acked=$(records "$rate")
  echo "$line" | awk -v b="$(basename "$bin")" -v f="$front" -v n="$acked" -v s="$span" \
    -v db="$b0 $b1" -v dc="$c0 $c1" -v dx="$x0 $x1" -v dr="${r0:-0} ${r1:-0}" -v dk="$k0 $k1" -v dq="${q0:-0} ${q1:-0}" '
    { split(db, B); split(dc, C); split(dx, X); split(dr, R); split(dk, K); split(dq, Q)
      for (i = 1; i <= NF; i++) {
        if ($i == "p50") p50 = $(i + 1); if ($i == "p99") p99 = $(i + 1); if ($i == "p999") p999 = $(i + 1) }
      printf "  %-14s %-5s p50/p99/p999 %s / %s / %s ms, %d/s acked | broker %.1f us/record (system %.1f), %.2f switches/record | client %.1f us/record | %.0f rounds/s, %.1f records a batch\n",
        b, f, p50, p99, p999, n, (B[2] - B[1]) / s / n * 1e6, (K[2] - K[1]) / s / n * 1e6, (X[2] - X[1]) / s / n,
        (C[2] - C[1]) / s / n * 1e6, (R[2] - R[1]) / s, (Q[2] > Q[1] ? n * s / (Q[2] - Q[1]) : 0) }'
  echo "      switches/record by thread (voluntary+involuntary): $(switches_by_thread "$DIR/threads.0" "$DIR/threads.1" $((acked * span)))"
  echo "      CPU us/record by thread: $(cpu_by_thread "$DIR/threads.0" "$DIR/threads.1" $((acked * span)))"
  stop
}

# Instructions (callgrind's Ir) of the broker since its last dump.
dump_ir() {
  callgrind_control -d "$PID" > /dev/null
  local f
  f=$(ls -t "$DIR"/callgrind.out.* | head -1)
  awk '/^(summary|totals):/{print $2; exit}' "$f"
}

# One callgrind run: build $1, front end $2, $3 partitions. Prints one line.
callgrind_run() {
  local bin=$1 front=$2 partitions=$3 rate=${CALLGRIND_RATE:-400} seconds=${CALLGRIND_SECONDS:-10}
  rm -f "$DIR"/callgrind.out.*
  start "$bin" "valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$DIR/callgrind.out.%p" "$partitions"
  callgrind_control -i on "$PID" > /dev/null
  dump_ir > /dev/null
  sleep "$seconds"
  local idle busy line
  idle=$(dump_ir)
  (load "$front" "$partitions" "$rate" "$seconds" 0) > "$DIR/load.txt" 2>&1 || true
  busy=$(dump_ir)
  line=$(grep -E 'round [0-9]' "$DIR/load.txt" | tail -1)
  local acked
  acked=$(echo "$line" | awk '{for (i = 1; i <= NF; i++) if ($i == "offered") print $(i + 1)}')
  echo "  $(basename "$bin") $front under callgrind, $rate records/s for $seconds s: $acked acked; $(
    echo "$busy $idle $acked" | awk '{printf "%.0f instructions/record (%.2e with load, %.2e idle)", ($1 - $2) / $3, $1, $2}')"
  stop
}

read -r fresh reused < <(page_cache_us_per_kib)
echo "page cache writes (dd, 512 MiB): $fresh us/KiB into the pages the kernel hands out, $reused into pages just freed"
ADMIN=$(free_port)
for entry in $MATRIX; do
  partitions=${entry%%:*}
  rate=${entry##*:}
  echo "== $partitions partitions, $rate records/s, 1 KiB: fio fdatasync p50/p99/p999 $(fio_sync_ms $(( $(records "$rate") * 1024 )) | sed 's| | / |g') ms"
  for front in $FRONT_ENDS; do
    for bin in $BINS; do
      [ "$bin" != floor ] || [ "$front" = raw ] || continue
      run "$bin" "$front" "$partitions" "$rate"
    done
    if [ "${CALLGRIND:-0}" = 1 ]; then
      for bin in $BINS; do
        [ "$bin" != floor ] || [ "$front" = raw ] || continue
        callgrind_run "$bin" "$front" "$partitions"
      done
    fi
  done
done
