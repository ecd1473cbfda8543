#!/usr/bin/env bash
# Failover benchmark: a 3-broker cluster on a private etcd at default settings, a
# one-partition RF=3 topic under acks=all load, and 20 rounds of a signal to its leader:
#   scripts/bench-failover.sh [kill|stop]
# kill (default): SIGKILL, then restart (SHALE_FAILOVER_KILLS rounds);
# stop: SIGSTOP, then SIGCONT once the next leader acknowledged (SHALE_FAILOVER_PAUSES).
# Prints p50/p99/max of signal -> first ack from the next leader, then the false failovers
# in SHALE_FAILOVER_QUIET_SECS (60) of load with two busy threads. Checks the data (lost,
# duplicated, acks at a stale epoch).
set -euo pipefail
cd "$(dirname "$0")/.."
SIGNAL="${1:-kill}"
scripts/ensure-protoc.sh
scripts/etcd.sh install
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
export SHALE_FAILOVER_KILLS="${SHALE_FAILOVER_KILLS:-20}" SHALE_FAILOVER_PAUSES="${SHALE_FAILOVER_PAUSES:-20}"
export SHALE_FAILOVER_QUIET_SECS="${SHALE_FAILOVER_QUIET_SECS:-60}"
case "$SIGNAL" in
  kill) exec cargo test --test replication leader_kills_at_default_settings -- --nocapture ;;
  stop) exec cargo test --test replication frozen_leaders_at_default_settings -- --nocapture ;;
  *) echo "usage: $0 [kill|stop]" >&2; exit 2 ;;
esac
