#!/usr/bin/env bash
# Broker-side schema ID validation (issue 52): produce throughput and the broker's CPU per
# record (user + system, from /proc) to a topic with confluent.value.schema.validation=true
# and to one without, in the same run on one standalone broker, alternated ROUNDS times
# (the order flipped each round): the cost of validation per record, as a difference of
# CPU time, which drifts less than throughput on a noisy machine. Records are 1 KiB
# values in the registry's wire format (the ID of a schema registered under the
# validating topic's subject), sent by `shale-bench produce` over gRPC, acks=all.
#
#   scripts/bench-validation.sh DIR [RECORDS] [ROUNDS] [COMPRESSION]
#   scripts/bench-validation.sh /tmp/bench-validation 500000 4 zstd
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:?usage: scripts/bench-validation.sh DIR [RECORDS] [ROUNDS] [COMPRESSION]}
RECORDS=${2:-200000}
ROUNDS=${3:-3}
COMPRESSION=${4:-none}
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
PORT=$(free_port)
REG=$(free_port)
start_standalone --listen "127.0.0.1:$PORT" --kafka-listen none --schema-registry-listen "127.0.0.1:$REG"
ID=$(python3 - "127.0.0.1:$REG" <<'PY'
import http.client, json, sys
c = http.client.HTTPConnection(*sys.argv[1].split(":"))
c.request("POST", "/subjects/validated-value/versions", json.dumps({"schema": '"bytes"'}),
          {"Content-Type": "application/vnd.schemaregistry.v1+json"})
r = c.getresponse(); body = r.read()
assert r.status == 200, body
print(json.loads(body)["id"])
PY
)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
TICK=$(getconf CLK_TCK)
run() { # topic, validation on or off
  local before after out
  before=$(cpu_ticks)
  out=$("$SHALE_BENCH" produce --broker "127.0.0.1:$PORT" --topic "$1" --records "$RECORDS" \
    --record-size 1024 --acks all --schema-id "$ID" --compression "$COMPRESSION" \
    --config "confluent.value.schema.validation=$2" --format json)
  after=$(cpu_ticks)
  python3 - "$1" "$out" "$before" "$after" "$TICK" "$RECORDS" <<'PY'
import json, sys
topic, out, before, after, tick, records = sys.argv[1], json.loads(sys.argv[2]), *map(int, sys.argv[3:])
assert out["errors"] == 0, out
cpu_us = (after - before) / tick / records * 1e6
print(f"{topic:>11}: {out['records_per_sec']:>9,.0f} records/s, {out['mib_per_sec']:6.1f} MiB/s, "
      f"p99 {out['latency_ms']['p99']:.2f} ms; broker CPU {cpu_us:5.1f} us/record")
PY
}
echo "records: $RECORDS x 1 KiB per run, gRPC, acks=all, compression $COMPRESSION; schema ID $ID"
run warmup false > /dev/null # the first run pays the broker's warm-up: not reported
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then run unvalidated false; run validated true
  else run validated true; run unvalidated false; fi
done
