#!/usr/bin/env bash
# Decoded fetch against raw fetch, in the same run (issue 40): one standalone broker, a
# topic of RECORDS records written with CODEC, read from the beginning pass by pass in each
# form by `shale-bench fetch-format`: raw batches (decoded by the bench, as the Rust client
# does) and records decoded by the broker. Reports record MiB/s and the broker's CPU
# milliseconds per MiB of each (from /proc), and their ratios.
#
#   scripts/bench-decoded-fetch.sh DIR [RECORDS] [RECORD_SIZE] [CODEC] [PASSES]
#   scripts/bench-decoded-fetch.sh /tmp/bench-decoded 1000000 1024 zstd 3
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:?usage: scripts/bench-decoded-fetch.sh DIR [RECORDS] [RECORD_SIZE] [CODEC] [PASSES]}
RECORDS=${2:-1000000}
SIZE=${3:-1024}
CODEC=${4:-zstd}
PASSES=${5:-3}
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
PORT=$(free_port)
start_standalone --listen "127.0.0.1:$PORT" --kafka-listen none
B="--broker 127.0.0.1:$PORT"
# shellcheck disable=SC2086
"$SHALE_BENCH" produce $B --topic bench --partitions 1 --records "$RECORDS" \
  --record-size "$SIZE" --compression "$CODEC" --format json > "$DIR/produce.json"
echo "produced: $(cat "$DIR/produce.json")"
# shellcheck disable=SC2086
"$SHALE_BENCH" fetch-format $B --topic bench --passes "$PASSES" --broker-pid "$PID" \
  --format json > "$DIR/fetch.json"
python3 - "$DIR/fetch.json" "$CODEC" <<'PY'
import json, sys
rows = {r["format"]: r for r in json.load(open(sys.argv[1]))}
raw, dec = rows["batches"], rows["records"]
print(f"records of {sys.argv[2]} batches, {raw['records_per_pass']} per pass ({raw['mib_per_pass']:.1f} MiB of keys and values):")
for name, r in (("raw batches (client decodes)", raw), ("decoded by the broker", dec)):
    print(f"  {name:30} median {r['mib_per_sec_median']:7.1f} MiB/s  passes {[round(x, 1) for x in r['mib_per_sec_all']]}  broker CPU {r['broker_cpu_ms_per_mib']:.2f} ms/MiB")
print(f"  decoded : raw throughput {dec['mib_per_sec_median'] / raw['mib_per_sec_median']:.2f}x, "
      f"broker CPU per MiB {dec['broker_cpu_ms_per_mib'] / raw['broker_cpu_ms_per_mib']:.1f}x")
PY
