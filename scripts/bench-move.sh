#!/usr/bin/env bash
# Tail-only moves: a partition of MIB MiB moves to another broker, once on a tiered topic
# (everything but a small local tail is in the bucket) and once on a plain topic of the same
# size. Reports the bytes the new replica copied (its reassignment_copied_bytes) against the
# leader's local bytes, and the seconds from the request until the move completed (the new
# replica in the ISR, the old one removed). Two `shale serve` brokers on a private etcd and
# a real S3-compatible server (moto) on 127.0.0.1, unthrottled moves.
#   scripts/bench-move.sh [DIR] [MIB]
# BUCKET=file uses a filesystem bucket shared by both brokers instead of moto.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/move}"
MIB="${2:-2048}"
scripts/ensure-protoc.sh
scripts/etcd.sh install
BUCKET="${BUCKET:-moto}"
[ "$BUCKET" = moto ] && scripts/s3.sh install >/dev/null
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
cargo build --release --quiet --bin shale --bin shale-bench
SHALE="$CARGO_TARGET_DIR/release/shale"
SHALE_BENCH="$CARGO_TARGET_DIR/release/shale-bench"
rm -rf "$DIR" && mkdir -p "$DIR"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
EC=$(free_port); EP=$(free_port); S3P=$(free_port)
ETCD_PID=$(scripts/etcd.sh start "$DIR/etcd" "$EC" "$EP")
S3_PID=""
[ "$BUCKET" = moto ] && S3_PID=$(scripts/s3.sh start "$DIR/s3" "$S3P" shale-bench)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "$S3_PID" ] && scripts/s3.sh stop "$S3_PID" >/dev/null 2>&1 || true
  scripts/etcd.sh stop "$ETCD_PID" >/dev/null 2>&1 || true
}
trap cleanup EXIT
if [ "$BUCKET" = moto ]; then
  URL="s3://shale-bench/move"
  TIER="s3_endpoint = \"http://127.0.0.1:$S3P\"
s3_region = \"us-east-1\"
s3_access_key_id = \"bench\"
s3_secret_access_key = \"bench\""
else
  URL="file://$DIR/bucket"
  TIER=""
fi
cat > "$DIR/shale.toml" <<EOF
[tier]
upload_interval_ms = 200
$TIER
[log]
retention_check_interval_ms = 1000
[replication]
move_throttle_bytes_per_sec = 0
lag_time_max_ms = 2000
EOF
ADDRS=(); ADMINS=()
for i in 1 2; do
  port=$(free_port); admin=$(free_port)
  SHALE_LOG=warn "$SHALE" serve --id $i --listen 127.0.0.1:$port --data-dir "$DIR/b$i" \
    --etcd "http://127.0.0.1:$EC" --cluster move --admin-listen 127.0.0.1:$admin \
    --object-store "$URL" --config "$DIR/shale.toml" > "$DIR/b$i.out" 2> "$DIR/b$i.err" &
  PIDS+=($!); ADDRS+=("127.0.0.1:$port"); ADMINS+=("127.0.0.1:$admin")
done
for a in "${ADMINS[@]}"; do
  for _ in $(seq 300); do curl -sf "http://$a/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
done
BROKER="${ADDRS[0]}"
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
describe() { "$SHALE" topic describe "$1" --broker "$2" --format json; }
copied() {
  curl -sf "http://${ADMINS[$(($1 - 1))]}/metrics" | \
    awk '$1 == "shale_reassignment_copied_bytes_total" { printf "%d\n", $2 }'
}
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; two brokers, etcd, bucket ($BUCKET) and client on one host"

# move TOPIC: moves partition 0 from its broker to the other; prints the figures.
move() {
  local topic=$1
  local from to before after start end
  from=$(describe "$topic" "$BROKER" | json 'd["partitions"][0]["leader"]')
  to=$((3 - from))
  local d
  d=$(describe "$topic" "${ADDRS[$((from - 1))]}")
  local local_bytes remote_bytes
  local_bytes=$(echo "$d" | json 'd["partitions"][0]["size_bytes"]')
  remote_bytes=$(echo "$d" | json 'd["partitions"][0]["remote_size_bytes"]')
  before=$(copied "$to")
  start=$(date +%s.%N)
  "$SHALE" partition reassign "$topic" 0 --replicas "$to" --broker "$BROKER" >/dev/null
  for _ in $(seq 6000); do
    r=$(describe "$topic" "$BROKER" | json 'd["partitions"][0]["replicas"]')
    [ "$r" = "[$to]" ] && break
    sleep 0.05
  done
  end=$(date +%s.%N)
  after=$(copied "$to")
  python3 - "$topic" "$local_bytes" "$remote_bytes" "$before" "$after" "$start" "$end" <<'EOF'
import sys
topic, local, remote, before, after, start, end = sys.argv[1:]
local, remote, c = int(local), int(remote), int(after) - int(before)
secs = float(end) - float(start)
print(f"{topic}: local {local / 2**20:.1f} MiB, in the bucket {remote / 2**20:.1f} MiB; "
      f"copied {c / 2**20:.1f} MiB ({c / max(local, 1):.2f}x the local tail) in {secs:.2f} s "
      f"from the request to the move completed")
EOF
}

RECORDS=$((MIB * 1024))
"$SHALE" topic create tiered --partitions 1 --replication-factor 1 --broker "$BROKER" \
  --config remote.storage.enable=true --config segment.bytes=16777216 \
  --config local.retention.bytes=33554432 >/dev/null
"$SHALE" topic create plain --partitions 1 --replication-factor 1 --broker "$BROKER" \
  --config segment.bytes=134217728 >/dev/null
for t in tiered plain; do
  echo "produce $MIB MiB to $t: $("$SHALE_BENCH" produce --broker "$BROKER" --topic "$t" \
    --records "$RECORDS" --record-size 1024 --acks all --format json)"
done
# Wait until the tiered partition's sealed segments are in the bucket and local retention ran.
leader=$(describe tiered "$BROKER" | json 'd["partitions"][0]["leader"]')
for _ in $(seq 2400); do
  d=$(describe tiered "${ADDRS[$((leader - 1))]}")
  lag=$(echo "$d" | json 'd["partitions"][0]["upload_lag_segments"]')
  size=$(echo "$d" | json 'd["partitions"][0]["size_bytes"]')
  [ "$lag" = 0 ] && [ "$size" -le $((64 << 20)) ] && break
  sleep 0.5
done
move tiered
move plain
