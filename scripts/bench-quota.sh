#!/usr/bin/env bash
# Quota accuracy and isolation, in one run on one standalone broker:
#  1. bob alone at a fixed rate (RATE records/s of 1 KiB, acks=1): his latency;
#  2. alice, capped at QUOTA_MIB MiB/s of produce, flat out for RECORDS records: her
#     achieved MiB/s against the quota (the bucket adds at most one second of burst);
#  3. both at once: bob's latency beside an over-quota alice.
#   scripts/bench-quota.sh [DIR] [RECORDS]      (env QUOTA_MIB=5 RATE=2000)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data-quota}"
RECORDS="${2:-200000}"
QUOTA_MIB="${QUOTA_MIB:-5}"
RATE="${RATE:-2000}"
scripts/ensure-protoc.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
cargo build --release --quiet --bin shale --bin shale-bench
SHALE="$CARGO_TARGET_DIR/release/shale"
SHALE_BENCH="$CARGO_TARGET_DIR/release/shale-bench"
rm -rf "$DIR" && mkdir -p "$DIR"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
printf 'User:alice alice-0123456789abcdef\nUser:bob bob-0123456789abcdef\n' > "$DIR/tokens"
printf '[auth]\ntoken_file = "%s"\n' "$DIR/tokens" > "$DIR/shale.toml"

"$SHALE" standalone --kafka-listen none --config "$DIR/shale.toml" --data-dir "$DIR/shale" --listen 127.0.0.1:0 \
  > "$DIR/broker.out" 2> "$DIR/broker.err" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$DIR/broker.out" && break; sleep 0.1; done
ADDR=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$DIR/broker.out")
"$SHALE" quota set --broker "$ADDR" --principal User:alice \
  --produce-bytes-per-sec $((QUOTA_MIB * 1024 * 1024))
BOB_RECORDS=$((RATE * 20))
bob() {
  "$SHALE_BENCH" produce --broker "$ADDR" --token bob-0123456789abcdef --topic "$1" \
    --records "$BOB_RECORDS" --record-size 1024 --acks 1 --rate "$RATE" --format json
}
alice() {
  "$SHALE_BENCH" produce --broker "$ADDR" --token alice-0123456789abcdef --topic "$1" \
    --records "$RECORDS" --record-size 1024 --acks 1 --format json
}
echo "bob alone at $RATE records/s: $(bob bob-alone)"
a=$(alice alice-alone)
echo "alice alone under a $QUOTA_MIB MiB/s quota: $a"
mib=$(echo "$a" | sed 's/.*"mib_per_sec":\([0-9.]*\).*/\1/')
echo "alice's rate / quota: $(echo "scale=3; $mib / $QUOTA_MIB" | bc)"
alice alice-beside > "$DIR/alice-beside.json" &
APID=$!
echo "bob at $RATE records/s beside an over-quota alice: $(bob bob-beside)"
wait $APID
echo "alice beside bob: $(cat "$DIR/alice-beside.json")"
