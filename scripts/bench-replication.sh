#!/usr/bin/env bash
# Produce throughput and latency of RF=3 (acks=all, min.insync.replicas=2) against RF=1 on
# three brokers on this machine, in one run.
#   scripts/bench-replication.sh [DIR] [RECORDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/replication}"
RECORDS="${2:-500000}"
scripts/ensure-protoc.sh
scripts/etcd.sh install
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
cargo build --release --quiet --bin shale
SHALE="$CARGO_TARGET_DIR/release/shale"
rm -rf "$DIR" && mkdir -p "$DIR"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
EC=$(free_port); EP=$(free_port)
ETCD_PID=$(scripts/etcd.sh start "$DIR/etcd" "$EC" "$EP")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; scripts/etcd.sh stop "$ETCD_PID" >/dev/null 2>&1 || true; }
trap cleanup EXIT
ADDRS=()
for i in 1 2 3; do
  port=$(free_port)
  SHALE_LOG=warn "$SHALE" serve --id $i --listen 127.0.0.1:$port --data-dir "$DIR/b$i" \
    --etcd "http://127.0.0.1:$EC" --cluster bench > "$DIR/b$i.out" 2> "$DIR/b$i.err" &
  PIDS+=($!)
  ADDRS+=("127.0.0.1:$port")
done
for _ in $(seq 100); do
  n=$(grep -l listening "$DIR"/b*.out 2>/dev/null | wc -l); [ "$n" = 3 ] && break; sleep 0.1
done
BROKERS=$(IFS=,; echo "${ADDRS[*]}")
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; 3 brokers + etcd on one disk"
"$SHALE" topic create rf1 --partitions 3 --replication-factor 1 --broker "$BROKERS" >/dev/null
"$SHALE" topic create rf3 --partitions 3 --replication-factor 3 --config min.insync.replicas=2 --broker "$BROKERS" >/dev/null
for t in rf1 rf3; do
  echo "$t acks=all: $("$SHALE" bench produce --broker "$BROKERS" --topic $t --records "$RECORDS" \
    --record-size 1024 --acks all --format json)"
done
for t in rf1 rf3; do
  echo "$t acks=all at 40000 records/s: $("$SHALE" bench produce --broker "$BROKERS" --topic $t \
    --records 400000 --record-size 1024 --acks all --rate 40000 --format json)"
done
