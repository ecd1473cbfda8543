# Sourced by the cluster benchmarks: builds the release binaries, starts a private etcd and
# three `shale serve` brokers on 127.0.0.1 with data under $DIR, and stops them on exit.
# Needs DIR and CLUSTER set; sets SHALE and SHALE_BENCH (the binaries), BROKERS
# (comma-separated addresses), ADMINS (the brokers' admin HTTP addresses) and ETCD_URL.
# SHALE_BIN runs another `shale` binary for the brokers (an A/B of two builds).
# shellcheck shell=bash
scripts/ensure-protoc.sh
scripts/etcd.sh install
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
cargo build --release --quiet --bin shale --bin shale-bench
SHALE="${SHALE_BIN:-$CARGO_TARGET_DIR/release/shale}"
SHALE_BENCH="$CARGO_TARGET_DIR/release/shale-bench"
rm -rf "$DIR" && mkdir -p "$DIR"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
EC=$(free_port); EP=$(free_port)
ETCD_PID=$(scripts/etcd.sh start "$DIR/etcd" "$EC" "$EP")
ETCD_URL="http://127.0.0.1:$EC"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; scripts/etcd.sh stop "$ETCD_PID" >/dev/null 2>&1 || true; }
trap cleanup EXIT
ADDRS=()
ADMINS=()
for i in 1 2 3; do
  port=$(free_port)
  admin=$(free_port)
  SHALE_LOG="${BROKER_LOG:-warn}" "$SHALE" serve --id $i --listen 127.0.0.1:$port --data-dir "$DIR/b$i" \
    --etcd "$ETCD_URL" --cluster "$CLUSTER" --admin-listen 127.0.0.1:$admin \
    > "$DIR/b$i.out" 2> "$DIR/b$i.err" &
  PIDS+=($!)
  ADDRS+=("127.0.0.1:$port")
  ADMINS+=("127.0.0.1:$admin")
done
for _ in $(seq 100); do
  n=$(grep -l listening "$DIR"/b*.out 2>/dev/null | wc -l); [ "$n" = 3 ] && break; sleep 0.1
done
BROKERS=$(IFS=,; echo "${ADDRS[*]}")
