#!/usr/bin/env bash
# Queue throughput with slow work: a share group (KIP-932) of 1, 4 and 16 Java
# KafkaShareConsumers on ONE partition, against a classic consumer group of 16
# KafkaConsumers on 16 partitions (a classic group cannot have more busy members than
# partitions). Every consumer works WORK_MS (default 10) per record (a sleep) and
# acknowledges (share: ACCEPT, commitSync after each poll) or commits (classic: commitSync
# after each poll); MAX_POLL (default 50) records a poll. One standalone broker (release
# build); the modes alternate, ROUNDS times (default 2); each measures WINDOW_S (default
# 10) after a 3 s warm-up. The ideal is consumers * 1000 / WORK_MS records/s. The broker's
# CPU seconds per mode are read from /proc.
#   [WORK_MS=10] [MAX_POLL=50] [WINDOW_S=10] [ROUNDS=2] scripts/bench-share.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/share}"
WORK_MS="${WORK_MS:-10}"
MAX_POLL="${MAX_POLL:-50}"
SECONDS_EACH="${WINDOW_S:-10}"
ROUNDS="${ROUNDS:-2}"
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
JARS=$(scripts/kafka-clients.sh java-jars)
grpc=$(free_port); kafka=$(free_port)
start_standalone --listen "127.0.0.1:$grpc" --kafka-listen "127.0.0.1:$kafka" \
  --schema-registry-listen none
"$SHALE" topic create queue --partitions 1 --broker "127.0.0.1:$grpc" >/dev/null
"$SHALE" topic create spread --partitions 16 --broker "127.0.0.1:$grpc" >/dev/null
# A backlog no group drains (each new group starts at the log start): twice what 16
# consumers process in a warm-up and a window.
backlog=$(( 16 * 1000 / WORK_MS * (SECONDS_EACH + 3) * 2 ))
"$SHALE_BENCH" produce --topic queue --records "$backlog" --record-size 100 \
  --broker "127.0.0.1:$grpc" >/dev/null
# The classic group's partitions get equal shares: an empty partition would idle its member.
value=$(head -c 100 /dev/zero | tr '\0' x)
for p in $(seq 0 15); do
  awk -v n=$(( backlog / 16 )) -v v="$value" 'BEGIN { for (i = 0; i < n; i++) print v }' \
    | "$SHALE" produce --topic spread --partition "$p" --broker "127.0.0.1:$grpc" >/dev/null 2>&1
done
echo "work ${WORK_MS} ms/record, ${MAX_POLL} records a poll, ${SECONDS_EACH} s windows, backlog $backlog records a topic"
cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
tick=$(getconf CLK_TCK)
for round in $(seq "$ROUNDS"); do
  for mode in share:1:queue share:4:queue share:16:queue classic:16:spread; do
    IFS=: read -r kind n topic <<< "$mode"
    before=$(cpu)
    line=$(java -cp "$JARS/*" scripts/bench-share/ShareBench.java "127.0.0.1:$kafka" "$kind" "$n" \
      "$topic" "bench-$kind-$n-$round" "$SECONDS_EACH" "$WORK_MS" "$MAX_POLL" 2>"$DIR/java.err")
    used=$(echo "scale=2; ($(cpu) - $before) / $tick" | bc)
    echo "round $round: $line broker_cpu_s=$used"
  done
done
