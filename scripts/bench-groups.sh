#!/usr/bin/env bash
# Consumer-group commit load: MEMBERS members (default 100) each committing every second
# while a producer keeps every partition moving, against three brokers on a private etcd.
# Reports commit latency, the etcd write rate and the keys the group holds, then each
# broker's metadata resyncs per second and etcd's range requests per second.
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
# Metadata re-reads per broker and etcd range requests, before and after the run.
resyncs() { curl -s "http://$1/metrics" | awk '/^shale_metadata_resyncs_total/ {print $2}'; }
ranges() { curl -s "$ETCD_URL/metrics" | awk '/^grpc_server_handled_total\{.*grpc_method="Range"/ {s+=$2} END {print s+0}'; }
# The new topic's placement and ISR joins re-read the metadata; start once that settled.
total_resyncs() { for a in "${ADMINS[@]}"; do resyncs "$a"; done | paste -sd+ | bc; }
prev=-1
for _ in $(seq 60); do cur=$(total_resyncs); [ "$cur" = "$prev" ] && break; prev=$cur; sleep 2; done
before=(); for a in "${ADMINS[@]}"; do before+=("$(resyncs "$a")"); done
ranges_before=$(ranges); started=$(date +%s.%N)
SHALE_LOG=warn "$SHALE_BENCH" groups --broker "$BROKERS" --members "$MEMBERS" --partitions "$PARTITIONS" \
  --commit-interval-ms 1000 --rate "${RATE:-1000}" --duration-secs "$SECONDS_MEASURED" \
  --etcd "$ETCD_URL" --cluster bench
elapsed=$(echo "$(date +%s.%N) - $started" | bc)
for i in 0 1 2; do
  after=$(resyncs "${ADMINS[$i]}")
  echo "broker $((i + 1)): $(echo "scale=1; ($after - ${before[$i]}) / $elapsed" | bc) metadata resyncs/s"
done
echo "etcd: $(echo "scale=0; ($(ranges) - $ranges_before) / $elapsed" | bc) range requests/s"
