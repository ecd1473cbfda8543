#!/usr/bin/env bash
# Produce throughput and latency of RF=3 (acks=all, min.insync.replicas=2) against RF=1 on
# three brokers on this machine, in one run.
#   scripts/bench-replication.sh [DIR] [RECORDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/replication}"
RECORDS="${2:-500000}"
CLUSTER=bench
# shellcheck source=scripts/bench-cluster-lib.sh
source scripts/bench-cluster-lib.sh
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; 3 brokers + etcd on one disk"
"$SHALE" topic create rf1 --partitions 3 --replication-factor 1 --broker "$BROKERS" >/dev/null
"$SHALE" topic create rf3 --partitions 3 --replication-factor 3 --config min.insync.replicas=2 --broker "$BROKERS" >/dev/null
for t in rf1 rf3; do
  echo "$t acks=all: $("$SHALE_BENCH" produce --broker "$BROKERS" --topic $t --records "$RECORDS" \
    --record-size 1024 --acks all --format json)"
done
for t in rf1 rf3; do
  echo "$t acks=all at 40000 records/s: $("$SHALE_BENCH" produce --broker "$BROKERS" --topic $t \
    --records 400000 --record-size 1024 --acks all --rate 40000 --format json)"
done
