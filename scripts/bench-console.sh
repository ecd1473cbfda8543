#!/usr/bin/env bash
# How fast the console renders its largest pages (issue 55): a topic list of TOPICS
# topics (default 10,000, one partition each) and a topic of PARTITIONS partitions
# (default 1,000), on a standalone release broker. The list shows 200 topics a page and
# searches all of them; a topic shows 200 partitions a page. Each page (the list's first
# and last, a search, the wide topic) is loaded RUNS times (default 7) in headless
# Chromium, timed from navigation start to the first frame drawn after the load event
# (server render, transfer, parse, style, layout, script and paint), and fetched RUNS
# times with curl (the server's part: time to the last byte). Reports p50 and max of
# each, and the page sizes.
#   scripts/bench-console.sh [DIR] [TOPICS] [PARTITIONS] [RUNS]
# KEEP_DATA=1 starts from DIR's data of an earlier run (creating 10,000 topics takes this
# machine about 4 minutes; topics that exist are skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/console}"
TOPICS="${2:-10000}"
PARTITIONS="${3:-1000}"
RUNS="${4:-7}"
scripts/ensure-protoc.sh
scripts/browser.sh install
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
cargo build --release --quiet --bin shale --bin shale-bench
SHALE="$CARGO_TARGET_DIR/release/shale"
SHALE_BENCH="$CARGO_TARGET_DIR/release/shale-bench"
if [ "${KEEP_DATA:-0}" != 1 ]; then rm -rf "$DIR"; fi
mkdir -p "$DIR"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
CONSOLE=$(free_port)
BROKER=""
cleanup() { [ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null || true; }
trap cleanup EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); $(/usr/bin/chromium --version | head -1)"
"$SHALE" standalone --data-dir "$DIR/data" --listen 127.0.0.1:$PORT --kafka-listen none \
  --schema-registry-listen none --console-listen 127.0.0.1:$CONSOLE > "$DIR/broker.out" 2> "$DIR/broker.err" &
BROKER=$!
for _ in $(seq 3000); do grep -q listening "$DIR/broker.out" && break; sleep 0.1; done
grep -q listening "$DIR/broker.out" || { echo "shale did not start: $(tail -3 "$DIR/broker.err")" >&2; exit 1; }
"$SHALE_BENCH" partitions --broker 127.0.0.1:$PORT --prefix t --topics "$TOPICS" --partitions 1 --steps create | tail -1
"$SHALE_BENCH" partitions --broker 127.0.0.1:$PORT --prefix wide --topics 1 --partitions "$PARTITIONS" --steps create | tail -1
BASE="http://127.0.0.1:$CONSOLE"
# The list's first and last pages, a search over every topic, and the wide topic.
LIST="$BASE/topics"
LAST="$BASE/topics?page=$(( (TOPICS + 1 + 199) / 200 ))"
SEARCH="$BASE/topics?q=t-99"
WIDE="$BASE/topics/wide-0"
for url in "$LIST" "$LAST" "$SEARCH" "$WIDE"; do
  curl -s -o /dev/null -c "$DIR/cookies" -b "$DIR/cookies" "$url"
  times=$(for _ in $(seq "$RUNS"); do curl -s -o /dev/null -b "$DIR/cookies" -w '%{time_total}\n' "$url"; done | sort -n)
  size=$(curl -s -b "$DIR/cookies" "$url" | wc -c)
  echo "server $url: $(( size / 1024 )) KiB; p50 $(echo "$times" | awk -v n="$RUNS" 'NR==int(n/2)+1{printf "%.0f ms", $1*1000}'), max $(echo "$times" | tail -1 | awk '{printf "%.0f ms", $1*1000}')"
done
SHALE_BROWSER_DIR=$(scripts/browser.sh node-dir) SHALE_CHROMIUM=$(scripts/browser.sh chromium) \
  node scripts/bench-console/render.mjs "$RUNS" "$LIST" "$LAST" "$SEARCH" "$WIDE"
echo "broker CPU: $(ps -o times= -p "$BROKER") s; RSS $(awk '/VmRSS/{print int($2/1024)}' /proc/$BROKER/status) MiB"
