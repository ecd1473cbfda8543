#!/usr/bin/env bash
# Tiered storage on this machine, against a real S3-compatible server (moto) on 127.0.0.1:
#   1. upload:  MIB MiB into a tiered topic (64 MiB segments); object-store requests per GiB;
#   2. cold read: a consumer catching up from offset 0 vs a plain ranged-GET loop over the
#      same objects on the same server (1 and 3 GETs in flight: 3 = one read + 2 read ahead);
#   3. first-record latency of fetches at random cold offsets: right after the upload (the
#      leader cached the remote indexes as it uploaded, no chunks cached), after a restart
#      (cold caches), and of local ones for comparison;
#   4. 50 partitions read cold at once over one stream, against the GET loop over their
#      objects, and the serving ceilings of this host: an untiered topic read back, and
#      loopback TCP alone;
#   5. produce p99 at half of peak, alone and with a cold reader running.
#   scripts/bench-tiering.sh [DIR] [MIB]
# Environment: BUCKET=file uses the embedded filesystem bucket instead of moto, and
# GET_LATENCY_MS=N delays every GET of the broker and of the GET loop by N ms (the
# first-byte latency of a distant bucket; SHALE_OBJECT_STORE_FAULTS=get_latency_ms=N).
# PHASES="upload1g cold many latency produce" (the default: all) picks what runs after the
# first upload, which always runs (every phase reads its topic): for example PHASES=produce.
# TIER_CONFIG="key = value; key = value" adds settings to the broker's [tier] section, for
# example TIER_CONFIG="multipart_part_bytes = 67108864" (how the part size was chosen).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/tiering}"
MIB="${2:-1024}"
scripts/ensure-protoc.sh
BUCKET="${BUCKET:-moto}"
[ "$BUCKET" = moto ] && scripts/s3.sh install >/dev/null
if [ "${GET_LATENCY_MS:-0}" != 0 ]; then
  export SHALE_OBJECT_STORE_FAULTS="get_latency_ms=$GET_LATENCY_MS"
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
cargo build --release --quiet --bin shale --bin shale-bench --example object_store_bench \
  --example loopback_bench
SHALE="$CARGO_TARGET_DIR/release/shale"
SHALE_BENCH="$CARGO_TARGET_DIR/release/shale-bench"
# The ranged-GET baseline opens the bucket as a broker does, so it is an example of the
# root package (it needs the storage crate), not a shale-bench command.
GET_LOOP="$CARGO_TARGET_DIR/release/examples/object_store_bench"
# The transport's ceiling on this host: loopback TCP with nothing done to the bytes.
LOOPBACK="$CARGO_TARGET_DIR/release/examples/loopback_bench"
rm -rf "$DIR" && mkdir -p "$DIR"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
S3P=$(free_port); PORT=$(free_port); ADMIN=$(free_port)
S3_PID=""
[ "$BUCKET" = moto ] && S3_PID=$(scripts/s3.sh start "$DIR/s3" "$S3P" shale-bench)
BROKER_PID=""
READER_PID=""
cleanup() {
  [ -n "$READER_PID" ] && kill "$READER_PID" 2>/dev/null || true
  [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null || true
  [ -n "$S3_PID" ] && scripts/s3.sh stop "$S3_PID" >/dev/null 2>&1 || true
}
trap cleanup EXIT
if [ "$BUCKET" = moto ]; then
  cat > "$DIR/shale.toml" <<EOF
[tier]
s3_endpoint = "http://127.0.0.1:$S3P"
s3_region = "us-east-1"
s3_access_key_id = "bench"
s3_secret_access_key = "bench"
upload_interval_ms = 200
$(echo "${TIER_CONFIG:-}" | tr ';' '\n' | sed 's/^ *//')
[log]
retention_check_interval_ms = 1000
EOF
  URL="s3://shale-bench/bench"
else
  printf '[tier]\nupload_interval_ms = 200\n%s\n[log]\nretention_check_interval_ms = 1000\n' \
    "$(echo "${TIER_CONFIG:-}" | tr ';' '\n' | sed 's/^ *//')" > "$DIR/shale.toml"
  URL="file://$DIR/bucket"
fi
BROKER="127.0.0.1:$PORT"

start_broker() {
  SHALE_LOG=warn "$SHALE" standalone --kafka-listen none --data-dir "$DIR/broker" --listen "$BROKER" \
    --admin-listen "127.0.0.1:$ADMIN" --object-store "$URL" --config "$DIR/shale.toml" \
    >> "$DIR/broker.out" 2>> "$DIR/broker.err" &
  BROKER_PID=$!
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "broker not ready after 30 s; see $DIR/broker.err" >&2
  exit 1
}
stop_broker() {
  kill "$BROKER_PID"
  wait "$BROKER_PID" 2>/dev/null || true
  BROKER_PID=""
}
# metric NAME[{labels}] from the admin listener
metric() {
  curl -sf "http://127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}
store_counts() {
  local out=""
  for op in put put_multipart get delete list; do
    out="$out $(metric "shale_object_store_requests_total{op=\"$op\"}") $(metric "shale_object_store_bytes_total{op=\"$op\"}")"
  done
  echo "$out"
}
phase() { [[ " ${PHASES:-upload1g cold many latency produce} " == *" $1 "* ]]; }
METRICS="http://127.0.0.1:$ADMIN/metrics"
describe() { "$SHALE" topic describe "$1" --broker "$BROKER" --format json; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

start_broker
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; broker, bucket ($BUCKET) and clients on one host; GET latency added: ${GET_LATENCY_MS:-0} ms"
RECORDS=$((MIB * 1024))
"$SHALE" topic create cold --partitions 1 --broker "$BROKER" \
  --config remote.storage.enable=true --config segment.bytes=67108864 \
  --config local.retention.bytes=67108864 >/dev/null
# The produce-latency topic keeps 256 MiB per partition: its runs write gigabytes.
"$SHALE" topic create hot --partitions 3 --broker "$BROKER" --config segment.bytes=67108864 \
  --config retention.bytes=268435456 >/dev/null

read -r -a S0 <<< "$(store_counts)"
echo "produce $MIB MiB to the tiered topic: $("$SHALE_BENCH" produce --broker "$BROKER" --topic cold \
  --records "$RECORDS" --record-size 1024 --acks all --format json)"
# Wait until every sealed segment is in the bucket and local retention has run.
UPLOAD_START=$(date +%s.%N)
for _ in $(seq 1200); do
  d=$(describe cold)
  lag=$(echo "$d" | json 'd["partitions"][0]["upload_lag_segments"]')
  local_start=$(echo "$d" | json 'd["partitions"][0]["local_log_start_offset"]')
  [ "$lag" = 0 ] && [ "$local_start" -gt 0 ] && break
  sleep 0.5
done
read -r -a S1 <<< "$(store_counts)"
echo "uploads finished $(python3 -c "import time; print(round(time.time() - $UPLOAD_START, 1))") s after the last ack"
echo "after upload: $(describe cold | json 'd["partitions"][0]')"
python3 - "${S0[@]}" "${S1[@]}" <<'EOF'
import sys
v = list(map(float, sys.argv[1:])); a, b = v[:10], v[10:]
d = [y - x for x, y in zip(a, b)]
put_req, put_bytes, mp_req, mp_bytes = d[0], d[1], d[2], d[3]
gib = (put_bytes + mp_bytes) / 2**30
print(f"upload, 64 MiB segments: {gib:.3f} GiB in {put_req:.0f} PUT + {mp_req:.0f} multipart "
      f"requests, {d[6]:.0f} DELETE, {d[4]:.0f} GET: "
      f"{(put_req + mp_req + d[6] + d[4] + d[8]) / gib:.0f} requests per GiB uploaded")
EOF

# The same at the default segment size (1 GiB): one sealed segment, in parts.
if phase upload1g; then
"$SHALE" topic create upload --partitions 1 --broker "$BROKER" \
  --config remote.storage.enable=true --config local.retention.bytes=67108864 >/dev/null
read -r -a S0 <<< "$(store_counts)"
# The broker's peak RSS from here on (Linux: 5 resets it).
echo 5 > "/proc/$BROKER_PID/clear_refs" 2>/dev/null || true
"$SHALE_BENCH" produce --broker "$BROKER" --topic upload --records $((1100 * 1024)) \
  --record-size 1024 --acks all --format json >/dev/null
UPLOAD_START=$(date +%s.%N)
for _ in $(seq 1200); do
  d=$(describe upload)
  [ "$(echo "$d" | json 'd["partitions"][0]["remote_segments"]')" -ge 1 ] && \
    [ "$(echo "$d" | json 'd["partitions"][0]["upload_lag_segments"]')" = 0 ] && break
  sleep 0.5
done
read -r -a S1 <<< "$(store_counts)"
echo "1 GiB segment in the bucket $(python3 -c "import time; print(round(time.time() - $UPLOAD_START, 1))") s after the last ack; broker peak RSS meanwhile $(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$BROKER_PID/status") MiB"
python3 - "${S0[@]}" "${S1[@]}" <<'EOF'
import sys
v = list(map(float, sys.argv[1:])); a, b = v[:10], v[10:]
d = [y - x for x, y in zip(a, b)]
gib = (d[1] + d[3]) / 2**30
print(f"upload at the default segment size (1 GiB): {gib:.3f} GiB in {d[0]:.0f} PUT + "
      f"{d[2]:.0f} multipart requests, {d[6]:.0f} DELETE, {d[4]:.0f} GET: "
      f"{(d[0] + d[2] + d[6] + d[4] + d[8]) / gib:.1f} requests per GiB uploaded")
EOF
"$SHALE" topic delete upload --broker "$BROKER" >/dev/null
fi

if phase latency; then
# Chunks are not cached yet, the remote indexes are (the leader cached each on upload).
echo "first record, random remote offsets (indexes cached on upload, no chunks): \
$("$SHALE_BENCH" fetch-latency --broker "$BROKER" --topic cold --range remote --samples 100 \
  --format json)"
fi
if phase cold; then
# The consumer below starts with every cache cold (memory, and the disk tier emptied), as
# one after a leader change to a broker that never read this data would.
stop_broker
rm -rf "$DIR/broker/cold-cache"
start_broker
read -r -a S1 <<< "$(store_counts)"

REMOTE_END=$(describe cold | json 'd["partitions"][0]["remote_log_end_offset"]')

echo "cold read, consumer from offset 0 (remote records: $REMOTE_END): $("$SHALE_BENCH" consume \
  --broker "$BROKER" --topic cold --from-beginning --records "$REMOTE_END" --metrics "$METRICS" \
  --format json)"
read -r -a S2 <<< "$(store_counts)"
python3 - "${S1[@]}" "${S2[@]}" <<'EOF'
import sys
v = list(map(float, sys.argv[1:])); a, b = v[:10], v[10:]
d = [y - x for x, y in zip(a, b)]
gib = d[5] / 2**30
print(f"cold read: {gib:.3f} GiB in {d[4]:.0f} GET requests: {d[4] / gib:.0f} requests per GiB read")
EOF
echo "second reader of the same range: $("$SHALE_BENCH" consume --broker "$BROKER" --topic cold \
  --from-beginning --records "$REMOTE_END" --metrics "$METRICS" --format json)"
# The bucket's speed for the same bytes in flight: GETs of tier.get_max_bytes (16 MiB), as
# the broker's sequential read-ahead sends them, 1 to 8 at once.
for c in 1 2 4 8; do
  echo "ranged-GET loop, 16 MiB GETs, $c in flight: $("$GET_LOOP" --chunk-bytes 16777216 \
    --object-store "$URL" --config "$DIR/shale.toml" --concurrency "$c" --format json)"
done

fi

if phase many; then
# 50 partitions read cold at once: one consumer of a 50-partition tiered topic (one
# FetchMany stream) from a broker whose chunk cache was emptied, against the GET loop over
# the same objects with as many GETs in flight as the broker allows.
"$SHALE" topic create cold50 --partitions 50 --broker "$BROKER" \
  --config remote.storage.enable=true --config segment.bytes=8388608 \
  --config local.retention.bytes=1 >/dev/null
"$SHALE_BENCH" produce --broker "$BROKER" --topic cold50 --records "$RECORDS" \
  --record-size 1024 --acks all --format json >/dev/null
# Until every sealed segment is in the bucket and local retention (1 byte: everything
# tiered) removed the local copies, so what is read below the local log start comes from
# the bucket. A partition the producer gave too little to seal a segment has nothing tiered.
for _ in $(seq 1200); do
  ready=$(describe cold50 | json 'all(p["upload_lag_segments"] == 0 and (p["remote_segments"] == 0 or p["local_log_start_offset"] >= p["remote_log_end_offset"]) for p in d["partitions"])')
  [ "$ready" = True ] && break
  sleep 0.5
done
echo "cold50 after upload: $(describe cold50 | json 'sum(max(p["remote_log_end_offset"], 0) for p in d["partitions"])') remote records, $(describe cold50 | json 'sum(p["local_log_start_offset"] for p in d["partitions"])') records below the local log starts"
stop_broker
rm -rf "$DIR/broker/cold-cache"
start_broker
REMOTE50=$(describe cold50 | json 'sum(max(p["remote_log_end_offset"], 0) for p in d["partitions"])')
echo "50 partitions read cold at once ($REMOTE50 remote records): $("$SHALE_BENCH" consume \
  --broker "$BROKER" --topic cold50 --from-beginning --records "$REMOTE50" \
  --metrics "$METRICS" --format json)"
# The same again: what is cached is served without the bucket, which shows the ceiling of
# the serving path (broker, gRPC, client) on this machine.
echo "50 partitions read again: $("$SHALE_BENCH" consume --broker "$BROKER" --topic cold50 \
  --from-beginning --records "$REMOTE50" --metrics "$METRICS" --format json)"
CONCURRENCY=$(python3 -c "import tomllib; print(tomllib.load(open('$DIR/shale.toml','rb')).get('tier',{}).get('remote_read_concurrency', 16))")
echo "ranged-GET loop over the 50 partitions' objects, 16 MiB GETs, $CONCURRENCY in flight: \
$("$GET_LOOP" --chunk-bytes 16777216 --contains /cold50- --object-store "$URL" \
  --config "$DIR/shale.toml" --concurrency "$CONCURRENCY" --format json)"
# What serving costs here, without the bucket: 1 GiB of an untiered topic (page cache)
# through the same broker, gRPC and client; and loopback TCP on its own, the bytes' path
# from broker to client (one connection: a consumer's FetchMany stream is one).
"$SHALE" topic create local --partitions 1 --broker "$BROKER" >/dev/null
"$SHALE_BENCH" produce --broker "$BROKER" --topic local --records "$RECORDS" \
  --record-size 1024 --acks all --format json >/dev/null
echo "serving ceiling, 1 partition of an untiered topic read back: $("$SHALE_BENCH" consume \
  --broker "$BROKER" --topic local --from-beginning --records "$RECORDS" --format json)"
"$SHALE" topic delete local --broker "$BROKER" >/dev/null
for c in 1 2; do
  echo "loopback TCP, $c connection(s): $("$LOOPBACK" --connections "$c" --format json)"
done
fi

if phase latency; then
stop_broker
start_broker
echo "first record, random remote offsets (cold cache): $("$SHALE_BENCH" fetch-latency \
  --broker "$BROKER" --topic cold --range remote --samples 100 --format json)"
echo "first record, random local offsets: $("$SHALE_BENCH" fetch-latency \
  --broker "$BROKER" --topic cold --range local --samples 100 --format json)"
fi

phase produce || exit 0
# Produce latency beside a cold reader, at half of the peak measured here (acks=all): two
# rounds of alone / with a reader catching up on the tiered topic (the reading client at
# nice 19: in production it runs elsewhere), each on a fresh broker with the chunk cache
# emptied, so the reader really reads the bucket.
PEAK=$("$SHALE_BENCH" produce --broker "$BROKER" --topic hot --records 1000000 \
  --record-size 1024 --acks all --format json)
echo "peak produce: $PEAK"
RATE=$(echo "$PEAK" | json 'int(d["records_per_sec"] / 2)')
produce_phase() {
  stop_broker
  rm -rf "$DIR/broker/cold-cache"
  start_broker
  if [ "$1" = reader ]; then
    nice -n 19 "$SHALE_BENCH" consume --broker "$BROKER" --topic cold --passes 40 \
      --format json > "$DIR/reader.json" &
    READER_PID=$!
    for _ in $(seq 100); do
      [ "$(metric shale_tier_read_bytes_total)" != "0" ] && break
      sleep 0.1
    done
  fi
  echo "produce at $RATE records/s (half of peak), $2: $("$SHALE_BENCH" produce \
    --broker "$BROKER" --topic hot --records $((RATE * 20)) --record-size 1024 --acks all \
    --rate "$RATE" --format json)"
  if [ -n "$READER_PID" ]; then
    echo "  cold reader meanwhile: $(metric shale_tier_read_bytes_total) bytes from the bucket," \
      "$(metric shale_tier_read_gets_total) GETs, $(metric shale_tier_read_chunk_misses_total) chunk misses"
    kill "$READER_PID" 2>/dev/null || true
    wait "$READER_PID" 2>/dev/null || true
    READER_PID=""
  fi
}
[ -n "$S3_PID" ] && renice -n 19 -p "$S3_PID" >/dev/null
for round in 1 2; do
  produce_phase none "alone (round $round)"
  produce_phase reader "with a cold reader (round $round)"
done
