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
CLUSTER=bench
# shellcheck source=scripts/bench-cluster-lib.sh
source scripts/bench-cluster-lib.sh
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; 3 brokers + etcd + the members on one host"
PARTITIONS=$((MEMBERS * 2))
"$SHALE" topic create bench-groups --partitions "$PARTITIONS" --replication-factor 3 --broker "$BROKERS" >/dev/null
SHALE_LOG=warn "$SHALE" bench groups --broker "$BROKERS" --members "$MEMBERS" --partitions "$PARTITIONS" \
  --commit-interval-ms 1000 --rate "${RATE:-1000}" --duration-secs "$SECONDS_MEASURED" \
  --etcd "$ETCD_URL" --cluster bench
