#!/usr/bin/env bash
# Time for a consumer group to settle after one member joins and after one leaves, by
# protocol: Kafka's classic protocol with an eager assignor (range) and a cooperative one
# (cooperative-sticky), against Kafka's consumer protocol (KIP-848, the broker assigns).
# MEMBERS librdkafka members (default 50) on a topic of PARTITIONS partitions (default
# 500), one standalone broker; the modes alternate, ROUNDS times (default 2). HEARTBEAT_MS
# (default 1000) is every member's heartbeat interval in both protocols, so the protocols
# are compared rather than their defaults (3 s classic, 5 s consumer in Kafka).
#   [HEARTBEAT_MS=1000] [ROUNDS=2] scripts/bench-group-settle.sh [DIR] [MEMBERS] [PARTITIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/group-settle}"
MEMBERS="${2:-50}"
PARTITIONS="${3:-500}"
HEARTBEAT_MS="${HEARTBEAT_MS:-1000}"
ROUNDS="${ROUNDS:-2}"
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
PYTHON=$(scripts/kafka-clients.sh python)
cat > "$DIR/settings.toml" <<EOF
[groups]
consumer_heartbeat_interval_ms = $HEARTBEAT_MS
EOF
grpc=$(free_port); kafka=$(free_port)
start_standalone --listen "127.0.0.1:$grpc" --kafka-listen "127.0.0.1:$kafka" \
  --schema-registry-listen none --config "$DIR/settings.toml"
"$SHALE" topic create settle --partitions "$PARTITIONS" --broker "127.0.0.1:$grpc" >/dev/null
echo "$MEMBERS members, $PARTITIONS partitions, heartbeat ${HEARTBEAT_MS} ms; librdkafka $("$PYTHON" -c 'import confluent_kafka; print(confluent_kafka.libversion()[0])')"
for round in $(seq "$ROUNDS"); do
  for mode in eager cooperative consumer; do
    echo "round $round: $("$PYTHON" scripts/bench-group-settle.py "127.0.0.1:$kafka" settle \
      "$PARTITIONS" "$MEMBERS" "$mode" "$HEARTBEAT_MS")"
  done
done
