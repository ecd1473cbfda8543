#!/usr/bin/env bash
# Log compaction on one standalone broker, in one run:
#   1. the disk's ceiling: fio's sequential write (1 MiB blocks, fsync at the end) and its
#      direct sequential read, MiB/s;
#   2. the cleaner's throughput: RECORDS keyed 1 KiB records over KEYS keys written with
#      the cleaner off, then one cleaner thread cleans them: MiB it read per second of
#      cleaning (map and rewrite), against fio;
#      The page cache is dropped first: the cleaner reads the segments from the disk.
#   3. produce latency (acks=all, fsync before ack, 64 KiB batches, open loop) at half of
#      the peak rate of the same producer (acks=all, 64 KiB batches), on a compacted topic
#      of 8 MiB segments: with the cleaner off, then with it cleaning as the records arrive
#      (Kafka's default min.cleanable.dirty.ratio, 0.5), ROUNDS rounds each; p50, p99,
#      p999 per round and the ratio of the median p99s.
#   scripts/bench-compaction.sh [DIR] [RECORDS] [KEYS] [SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/compaction}"
RECORDS="${2:-1000000}"
KEYS="${3:-10000}"
SECONDS_PER_ROUND="${4:-20}"
ROUNDS="${5:-3}"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

fio --name=w --rw=write --bs=1M --size=2G --end_fsync=1 --ioengine=sync --directory="$DIR" \
  --output-format=terse > "$DIR/fio-write.txt"
fio --name=w --rw=read --bs=1M --size=2G --direct=1 --ioengine=sync --directory="$DIR" \
  --output-format=terse > "$DIR/fio-read.txt"
rm -f "$DIR"/w.*
fio_write=$(awk -F';' '{printf "%.1f", $48 / 1024}' "$DIR/fio-write.txt")
fio_read=$(awk -F';' '{printf "%.1f", $7 / 1024}' "$DIR/fio-read.txt")
echo "fio: sequential write $fio_write MiB/s (fsync at the end), direct sequential read $fio_read MiB/s"

printf '[log]\ncleaner_threads = 0\n' > "$DIR/off.toml"
printf '[log]\ncleaner_threads = 1\ncleaner_backoff_ms = 200\nretention_check_interval_ms = 1000\n' \
  > "$DIR/on.toml"
restart() {
  if [ -n "${PID:-}" ]; then kill "$PID"; wait "$PID" 2>/dev/null || true; fi
  start_standalone --kafka-listen none --listen 127.0.0.1:0 --config "$1"
  ADDR=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$DIR/broker.out")
}
# The broker's log lines (stdout and stderr) of its cleans.
clean_lines() { cat "$DIR/broker.out" "$DIR/broker.err" | grep "cleaned a compacted log" || true; }
cleans() { clean_lines | grep -c . || true; }
compacted=(--keys "$KEYS" --config cleanup.policy=compact)

# 2. The cleaner's throughput.
restart "$DIR/off.toml"
peak=$("$SHALE_BENCH" produce --broker "$ADDR" --topic dirty --records "$RECORDS" \
  --record-size 1024 --acks 1 --format json "${compacted[@]}" --config segment.bytes=67108864 \
  --config segment.ms=1000)
echo "peak, compacted topic, cleaner off: $peak"
sleep 2 # segment.ms: the last segment rolls at the next retention pass
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
sync; echo 3 > /proc/sys/vm/drop_caches
restart "$DIR/on.toml"
before=$("$SHALE" topic describe dirty --broker "$ADDR" --format json | python3 -c \
  'import json,sys; print(json.load(sys.stdin)["partitions"][0]["size_bytes"])')
for _ in $(seq 600); do
  due=$("$SHALE" topic describe dirty --broker "$ADDR" --format json | python3 -c \
    'import json,sys; c=json.load(sys.stdin)["partitions"][0]["cleaning"]; print(c["due"] if c else True)')
  [ "$(cleans)" -gt 0 ] && [ "$due" = "False" ] && break
  sleep 1
done
clean_lines | python3 -c '
import re, sys
read = ms = before = after = n = 0
for line in sys.stdin:
    f = dict(re.findall(r"(\w+)=(\d+)", line))
    read += int(f["bytes_read"]); ms += int(f["millis"])
    before += int(f["bytes_before"]); after += int(f["bytes_after"]); n += 1
mib = read / 2**20
print(f"cleaner: {n} cleans read {mib:.0f} MiB in {ms / 1000:.1f} s: {mib / (ms / 1000):.1f} MiB/s; "
      f"segments cleaned {before / 2**20:.0f} MiB -> {after / 2**20:.1f} MiB")
' | tee "$DIR/cleaner.txt"
cleaner_mib=$(sed 's/.*: \([0-9.]*\) MiB\/s.*/\1/' "$DIR/cleaner.txt")
echo "partition before cleaning: $before bytes"
echo "ratio cleaner/fio read: $(echo "scale=3; $cleaner_mib / $fio_read" | bc)," \
  "cleaner/fio write: $(echo "scale=3; $cleaner_mib / $fio_write" | bc)"

# 3. Produce latency at half of the peak, without and with the cleaner, each on a broker
# whose earlier topics were deleted and synced away (so that neither run measures the
# writeback or the cleaning of another's bytes). RATE=N overrides the rate.
restart "$DIR/off.toml"
peak_all=$("$SHALE_BENCH" produce --broker "$ADDR" --topic peak-all --records "$RECORDS" \
  --record-size 1024 --acks all --batch-size 65536 --format json --keys "$KEYS")
echo "peak, acks=all, 64 KiB batches (a topic the cleaner leaves alone): $peak_all"
rate=$(echo "$peak_all" | sed 's/.*"records_per_sec":\([0-9.]*\).*/\1/' | awk '{printf "%d", $1/2}')
rate="${RATE:-$rate}"
latency() {
  "$SHALE_BENCH" latency --broker "$ADDR" --topic "$1" --rates "$rate" --rounds "$ROUNDS" \
    --seconds "$SECONDS_PER_ROUND" --record-size 1024 --batch-size 65536 --format json \
    --label "$1" "${compacted[@]}" --config segment.bytes=8388608
}
fresh() {
  for t in $("$SHALE" topic list --broker "$ADDR" | awk 'NR > 0 {print $1}'); do
    "$SHALE" topic delete "$t" --broker "$ADDR" >/dev/null 2>&1 || true
  done
  sync
  restart "$1"
}
fresh "$DIR/off.toml"
without=$(latency without-cleaner)
echo "$without"
fresh "$DIR/on.toml"
with=$(latency with-cleaner)
echo "$with (cleans during the run: $(cleans))"
p99() { echo "$1" | sed 's/.*"p99_ms":\([0-9.]*\).*/\1/' | sort -n | awk '{v[NR] = $1} END {printf "%.3f", v[int((NR + 1) / 2)]}'; }
echo "median p99 without the cleaner $(p99 "$without") ms, with $(p99 "$with") ms, at $rate records/s:" \
  "ratio $(echo "scale=3; $(p99 "$with") / $(p99 "$without")" | bc)"
