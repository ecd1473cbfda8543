#!/usr/bin/env bash
# Failover benchmark: a 3-broker cluster on a private etcd at default settings, a
# one-partition RF=3 topic under acks=all load, SHALE_FAILOVER_KILLS (20) SIGKILLs of its
# leader; prints p50/p99/max of kill -> first ack from the next leader, then the false
# failovers in SHALE_FAILOVER_QUIET_SECS (60) of load with two busy threads. Checks the data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-protoc.sh
scripts/etcd.sh install
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
export SHALE_FAILOVER_KILLS="${SHALE_FAILOVER_KILLS:-20}" SHALE_FAILOVER_QUIET_SECS="${SHALE_FAILOVER_QUIET_SECS:-60}"
exec cargo test --test replication leader_kills_at_default_settings -- --nocapture
