#!/usr/bin/env bash
# The Kafka listener against Shale's own gRPC path: one standalone broker, the same load
# through each, alternated, in one run.
#   - fio's sequential write with an fdatasync per 256 KiB block, on the same disk: the
#     ceiling a produce path with fsync before ack works under;
#   - produce throughput: 1 KiB records, acks=all, 256 KiB batches, linger 0, 5 batches in
#     flight, not idempotent, uncompressed, one partition, flush.policy=always; shale-bench
#     produce (Shale's Rust client over gRPC) and kafka-bench produce (librdkafka over the
#     Kafka listener), each into a fresh topic, the order swapped every round; then once
#     more each with idempotence on (librdkafka keeps one request in flight per partition
#     when idempotent, whatever max.in.flight says: confluentinc/librdkafka#4989);
#   - consume throughput: the gRPC round's topic read from the beginning through each;
#   - produce latency at fixed offered rates, open loop (each record timed from when it
#     was due), through each, with the same producer settings (not idempotent, 5 in flight).
# Both clients set TCP_NODELAY (librdkafka's socket.nagle.disable, which kafka-bench sets).
# Prints every figure, then the medians and the ratios Kafka / gRPC.
#   scripts/bench-kafka.sh [DIR] [RECORDS] [ROUNDS] [RATES] [SECONDS]
# e.g. scripts/bench-kafka.sh /tmp/bk 1000000 3 10k,50k 10
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/kafka}"
RECORDS="${2:-1000000}"
ROUNDS="${3:-3}"
RATES="${4:-10k,50k}"
SECONDS_PER_ROUND="${5:-10}"
BATCH=262144
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
build_kafka_bench
FIO_MIB=$(fio_fdatasync_mib $BATCH)
echo "fio --rw=write --bs=$BATCH --fdatasync=1: $FIO_MIB MiB/s"

GRPC=127.0.0.1:$(free_port)
KAFKA=127.0.0.1:$(free_port)
start_standalone --listen "$GRPC" --kafka-listen "$KAFKA"
topic() { "$SHALE" topic create "$1" --partitions 1 --broker "$GRPC" > /dev/null; }
drop() { "$SHALE" topic delete "$1" --broker "$GRPC" > /dev/null; }

# $2: idempotence (true|false).
grpc_produce() {
  "$SHALE_BENCH" produce --broker "$GRPC" --topic "$1" --records "$RECORDS" --record-size 1024 \
    --acks all --batch-size $BATCH --linger-ms 0 --max-in-flight 5 --idempotence "$2" --format json
}
kafka_produce() {
  "$KAFKA_BENCH" produce --bootstrap "$KAFKA" --topic "$1" --records "$RECORDS" --record-size 1024 \
    --acks all --batch-size $BATCH --linger-ms 0 --max-in-flight 5 --idempotence "$2"
}
grpc_consume() { "$SHALE_BENCH" consume --broker "$GRPC" --topic "$1" --format json; }
kafka_consume() { "$KAFKA_BENCH" consume --bootstrap "$KAFKA" --topic "$1"; }

: > "$DIR/results.jsonl"
emit() { echo "{\"what\":\"$1\",\"path\":\"$2\",\"result\":$3}" | tee -a "$DIR/results.jsonl"; }
# Each figure is captured before it is emitted, so that a failed run stops the script.
run() {
  local what=$1 path=$2 out
  shift 2
  out=$("$@")
  emit "$what" "$path" "$out"
}
for r in $(seq 1 "$ROUNDS"); do
  topic "g$r"; topic "k$r"
  if [ $((r % 2)) -eq 1 ]; then
    run produce grpc grpc_produce "g$r" false; run produce kafka kafka_produce "k$r" false
    run consume grpc grpc_consume "g$r"; run consume kafka kafka_consume "g$r"
  else
    run produce kafka kafka_produce "k$r" false; run produce grpc grpc_produce "g$r" false
    run consume kafka kafka_consume "g$r"; run consume grpc grpc_consume "g$r"
  fi
  drop "g$r"; drop "k$r"
  sync
done
topic gi; topic ki
run produce-idempotent grpc grpc_produce gi true
run produce-idempotent kafka kafka_produce ki true
drop gi; drop ki

topic lat-grpc; topic lat-kafka
for r in $(seq 1 "$ROUNDS"); do
  grpc_lat() {
    "$SHALE_BENCH" latency --broker "$GRPC" --topic lat-grpc --rates "$RATES" --seconds "$SECONDS_PER_ROUND" \
      --acks all --batch-size $BATCH --linger-ms 0 --max-in-flight 5 --idempotence false --label grpc --format json
  }
  kafka_lat() {
    "$KAFKA_BENCH" latency --bootstrap "$KAFKA" --topic lat-kafka --rates "$RATES" --seconds "$SECONDS_PER_ROUND" \
      --acks all --batch-size $BATCH --linger-ms 0 --max-in-flight 5 --idempotence false --label kafka --json
  }
  if [ $((r % 2)) -eq 1 ]; then runs="grpc_lat kafka_lat"; else runs="kafka_lat grpc_lat"; fi
  for run in $runs; do
    path=${run%_lat}
    $run | while read -r line; do emit latency "$path" "$line"; done
  done
done

python3 - "$DIR/results.jsonl" "$FIO_MIB" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
fio = float(sys.argv[2])
def series(what, path, key, rate=None):
    """The figure `key` of each run of `what` through `path`, in run order."""
    vals = []
    for r in rows:
        res = r["result"]
        if r["what"] != what or r["path"] != path or (rate is not None and res.get("rate") != rate):
            continue
        for k in key.split("."):
            res = res[k]
        vals.append(res)
    return vals
def line(label, what, key, unit, rate=None):
    g, k = series(what, "grpc", key, rate), series(what, "kafka", key, rate)
    if not g or not k:
        return None
    # Each round ran both paths back to back: its ratio is free of the disk's slower and
    # faster spells between rounds, which medians of each path alone are not.
    paired = statistics.median(b / a for a, b in zip(g, k))
    gm, km = statistics.median(g), statistics.median(k)
    f = ".1f" if unit == "MiB/s" else ".3f"
    print(f"  {label:26} gRPC {gm:8{f}} {unit}  Kafka {km:8{f}} {unit}  "
          f"ratio {paired:.3f} (per round: {', '.join(f'{b / a:.2f}' for a, b in zip(g, k))})")
    return gm, km
print()
print("medians over the rounds; ratio Kafka listener / gRPC path, median of the rounds' own:")
for what in ("produce", "consume", "produce-idempotent"):
    m = line(what, what, "mib_per_sec", "MiB/s")
    if what == "produce" and m:
        # (The peak runs' own latency figures are left out: librdkafka times a record from
        # its enqueue, all of them at once, shale-bench a batch from its send.)
        print(f"  {'':26} fio ceiling {fio:.1f} MiB/s: gRPC {m[0] / fio:.3f}, Kafka {m[1] / fio:.3f} of it")
rates = sorted({r["result"]["rate"] for r in rows if r["what"] == "latency"})
for rate in rates:
    for q in ("p50_ms", "p99_ms", "p999_ms"):
        line(f"latency {rate}/s {q[:-3]}", "latency", q, "ms", rate)
PY
