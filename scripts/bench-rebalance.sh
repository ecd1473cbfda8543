#!/usr/bin/env bash
# Scale out and in with many partitions: three `shale serve` brokers on a private etcd hold
# a topic of PARTITIONS partitions (replication factor 2) with some data in each; a fourth
# broker joins and `shale cluster rebalance --execute` spreads replicas and leaders onto it;
# then `shale broker decommission 1 --wait` empties broker 1. Reports how long each took,
# the replicas and leaders per broker after each, and the etcd keys of the cluster per
# partition before, during (sampled every second) and after: moves add no keys.
#   scripts/bench-rebalance.sh [DIR] [PARTITIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/rebalance}"
PARTITIONS="${2:-1000}"
CLUSTER=rebalance
# shellcheck source=scripts/bench-cluster-lib.sh
source scripts/bench-cluster-lib.sh
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; etcd, brokers and client on one host"

# Keys under the cluster's prefix, by etcd's JSON gateway (count only).
keys() {
  python3 - "$ETCD_URL" "/shale/$CLUSTER/" <<'EOF'
import base64, json, sys, urllib.request
url, prefix = sys.argv[1], sys.argv[2]
end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
b64 = lambda s: base64.b64encode(s.encode()).decode()
req = urllib.request.Request(url + "/v3/kv/range", data=json.dumps(
    {"key": b64(prefix), "range_end": b64(end), "count_only": True}).encode())
print(json.load(urllib.request.urlopen(req)).get("count", 0))
EOF
}
per_partition() { python3 -c "print(f'{$1} keys, {$1 / $PARTITIONS:.3f} per partition')"; }
loads() { "$SHALE" cluster describe --broker "$1" | awk '/replicas .*leaders/ {print "  " $0}'; }
now() { date +%s.%N; }
since() { python3 -c "print(round($(now) - $1, 1))"; }

"$SHALE" topic create many --partitions "$PARTITIONS" --replication-factor 2 \
  --broker "${ADDRS[0]}" >/dev/null
# The load generator does not retry (it measures), and the other brokers may still be opening
# their partitions: try again until every record lands.
for attempt in 1 2 3 4 5; do
  "$SHALE_BENCH" produce --broker "$BROKERS" --topic many --records $((PARTITIONS * 100)) \
    --record-size 512 --acks all --format json >/dev/null 2>&1 && break
  [ "$attempt" = 5 ] && { echo "cannot fill the topic" >&2; exit 1; }
  sleep 2
done
echo "before: $(per_partition "$(keys)")"

port=$(free_port); admin=$(free_port)
SHALE_LOG="${BROKER_LOG:-warn}" "$SHALE" serve --id 4 --listen 127.0.0.1:$port \
  --data-dir "$DIR/b4" --etcd "$ETCD_URL" --cluster "$CLUSTER" \
  --admin-listen 127.0.0.1:$admin > "$DIR/b4.out" 2> "$DIR/b4.err" &
PIDS+=($!)
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

# watch_moves LABEL: samples the key count every second until no move is left.
watch_moves() {
  local start=$1 max=0 n
  while :; do
    n=$(keys); [ "$n" -gt "$max" ] && max=$n
    left=$("$SHALE" cluster rebalance --status --broker "${ADDRS[1]}" | grep -vc "no reassignment" || true)
    [ "$left" = 0 ] && break
    sleep 1
  done
  echo "  done in $(since "$start") s; most keys during it: $(per_partition "$max")"
}

start=$(now)
planned=$("$SHALE" cluster rebalance --execute --broker "${ADDRS[1]}" | tail -1)
echo "rebalance onto broker 4: $planned"
watch_moves "$start"
loads "${ADDRS[1]}"
echo "after the rebalance: $(per_partition "$(keys)")"

start=$(now)
"$SHALE" broker decommission 1 --broker "${ADDRS[1]}" | head -1
max=0
until "$SHALE" cluster describe --broker "${ADDRS[1]}" | grep -q " 0 replica(s) left"; do
  n=$(keys); [ "$n" -gt "$max" ] && max=$n
  sleep 1
done
echo "  broker 1 empty after $(since "$start") s; most keys during it: $(per_partition "$max")"
loads "${ADDRS[1]}"
start=$(now)
echo "rebalance of the three left: $("$SHALE" cluster rebalance --execute --broker "${ADDRS[1]}" | tail -1)"
watch_moves "$start"
loads "${ADDRS[1]}"
echo "after the decommission: $(per_partition "$(keys)")"
