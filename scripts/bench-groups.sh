#!/usr/bin/env bash
# Consumer-group commit load: MEMBERS members (default 100) each committing every second
# while a producer keeps every partition moving, against three brokers on a private etcd.
# Reports commit latency, the etcd write rate and the keys the group holds.
#   [RATE=records/s, default 1000] scripts/bench-groups.sh [DIR] [MEMBERS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/groups}"
MEMBERS="${2:-100}"
SECONDS_MEASURED="${3:-30}"
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
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; 3 brokers + etcd + the members on one host"
PARTITIONS=$((MEMBERS * 2))
"$SHALE" topic create bench-groups --partitions "$PARTITIONS" --replication-factor 3 --broker "$BROKERS" >/dev/null
SHALE_LOG=warn "$SHALE" bench groups --broker "$BROKERS" --members "$MEMBERS" --partitions "$PARTITIONS" \
  --commit-interval-ms 1000 --rate "${RATE:-1000}" --duration-secs "$SECONDS_MEASURED" \
  --etcd "http://127.0.0.1:$EC" --cluster bench
