#!/usr/bin/env bash
# Transactions against idempotent production, through the Kafka listener with librdkafka
# (tools/kafka-bench), on one standalone broker (flush.policy=always), in one run:
#   - throughput: RECORDS records of 1 KiB, acks=all, 256 KiB batches, linger 5 ms, into a
#     fresh topic of 3 partitions each round: the idempotent producer, then transactions
#     committed every 100 ms and every 10 ms, the order rotated every round; the broker's
#     CPU seconds per million records from /proc (user + system);
#   - end-to-end latency (send to read) at RATE records/s for SECONDS s with a transactional
#     producer committing every 100 ms: a read_committed reader against a read_uncommitted
#     one, alternated, and a read_uncommitted reader of the idempotent producer.
# Prints every figure, then the medians and the ratios to the idempotent producer.
# BENCH_TXN_CLIENT sets librdkafka settings of every throughput run (idempotent and
# transactional alike); by default the queue is bounded at 8 MiB, as an application that
# commits every 100 ms bounds it (each commit waits for everything queued: with the
# tool's 2 GiB each commit drained a deep queue, 0.74 of the idempotent throughput).
#   scripts/bench-txn.sh [DIR] [RECORDS] [ROUNDS] [RATE] [SECONDS]
# e.g. scripts/bench-txn.sh /tmp/btx 500000 3 5000 10
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/txn}"
RECORDS="${2:-500000}"
ROUNDS="${3:-3}"
RATE="${4:-5000}"
SECONDS_PER_RUN="${5:-10}"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
build_kafka_bench

GRPC=127.0.0.1:$(free_port)
KAFKA=127.0.0.1:$(free_port)
start_standalone --listen "$GRPC" --kafka-listen "$KAFKA"
topic() { "$SHALE" topic create "$1" --partitions 3 --broker "$GRPC" > /dev/null; }
drop() { "$SHALE" topic delete "$1" --broker "$GRPC" > /dev/null; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
TICK=$(getconf CLK_TCK)

: > "$DIR/results.jsonl"
emit() { echo "{\"what\":\"$1\",\"path\":\"$2\",\"result\":$3}" | tee -a "$DIR/results.jsonl"; }
# $1 label, $2 topic, then kafka-bench produce's extra flags.
produce() {
  local label=$1 t=$2 before after out
  shift 2
  topic "$t"
  before=$(cpu_ticks)
  out=$("$KAFKA_BENCH" produce --bootstrap "$KAFKA" --topic "$t" --records "$RECORDS" \
    --record-size 1024 --acks all --batch-size 262144 --linger-ms 5 ${BENCH_TXN_CLIENT---set queue.buffering.max.kbytes=8192} "$@")
  after=$(cpu_ticks)
  out=$(echo "$out" | python3 -c "import json,sys; r=json.load(sys.stdin); \
r['broker_cpu_s_per_m']=($after-$before)/$TICK/r['records']*1e6; print(json.dumps(r))")
  emit produce "$label" "$out"
  drop "$t"
  sync
}
idem() { produce idempotent "i$1"; }
txn100() { produce txn-100ms "t$1" --transactional-id "bench-100-$1" --commit-interval-ms 100; }
txn10() { produce txn-10ms "u$1" --transactional-id "bench-10-$1" --commit-interval-ms 10; }
for r in $(seq 1 "$ROUNDS"); do
  case $((r % 3)) in
    1) order="idem txn100 txn10" ;;
    2) order="txn100 txn10 idem" ;;
    0) order="txn10 idem txn100" ;;
  esac
  for run in $order; do $run "$r"; done
done

e2e() {
  local label=$1 t=$2
  shift 2
  topic "$t"
  emit e2e "$label" "$("$KAFKA_BENCH" e2e --bootstrap "$KAFKA" --topic "$t" --rate "$RATE" \
    --seconds "$SECONDS_PER_RUN" --acks all --linger-ms 5 "$@")"
  drop "$t"
}
for r in $(seq 1 "$ROUNDS"); do
  committed() { e2e read_committed "ec$r" --isolation read_committed --transactional-id "e2e-c-$r"; }
  uncommitted() { e2e read_uncommitted "eu$r" --isolation read_uncommitted --transactional-id "e2e-u-$r"; }
  if [ $((r % 2)) -eq 1 ]; then committed; uncommitted; else uncommitted; committed; fi
  e2e idempotent "ei$r" --isolation read_uncommitted
done

python3 - "$DIR/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def series(what, path, key):
    out = []
    for r in rows:
        if r["what"] == what and r["path"] == path:
            v = r["result"]
            for k in key.split("."):
                v = v[k]
            out.append(v)
    return out
print()
print("medians over the rounds:")
base = series("produce", "idempotent", "mib_per_sec")
base_cpu = series("produce", "idempotent", "broker_cpu_s_per_m")
for path in ("idempotent", "txn-100ms", "txn-10ms"):
    mib = series("produce", path, "mib_per_sec")
    cpu = series("produce", path, "broker_cpu_s_per_m")
    commits = series("produce", path, "transactions.commits") if path != "idempotent" else []
    ratio = statistics.median(b / a for a, b in zip(base, mib))
    print(f"  produce {path:12} {statistics.median(mib):7.1f} MiB/s  ratio to idempotent {ratio:.3f} "
          f"(per round: {', '.join(f'{b / a:.2f}' for a, b in zip(base, mib))})  broker CPU "
          f"{statistics.median(cpu):.2f} s per million records ({statistics.median(cpu) / statistics.median(base_cpu):.2f}x)"
          + (f"  commits {statistics.median(commits):.0f}" if commits else ""))
for path in ("read_committed", "read_uncommitted", "idempotent"):
    for q in ("p50", "p99", "p999"):
        v = series("e2e", path, f"e2e_ms.{q}")
        print(f"  e2e {path:16} {q:4} {statistics.median(v):8.1f} ms  (per round: {', '.join(f'{x:.1f}' for x in v)})")
PY
