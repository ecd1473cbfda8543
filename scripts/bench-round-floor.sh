#!/usr/bin/env bash
# The floor under the broker's CPU per record (issue 54): `tools/round-floor`, a server
# that only receives 1 KiB records over TCP (one connection, records due every 500 µs sent
# together), writes each journal round with one write and one fdatasync (paced as the
# journal paces: `--interval-us`), and answers once the round is synced. No partitions, no
# segment files, no validation, no protocol. Per line, over 5 s in the middle of an 8 s
# open-loop run: the server's CPU per record (user + system, every thread, /proc/PID/stat),
# its context switches per record (every thread, /proc/PID/task/*/status), its rounds per
# second, and the records' latency from their due time.
#   scripts/bench-round-floor.sh [DIR] [RATES] [VARIANTS]
# e.g. scripts/bench-round-floor.sh /tmp/floor "20000 50000" "thread/1000/2 uring/1000/2"
# A variant is MODE/INTERVAL_US/WORKERS: MODE `thread` (a writer thread with a blocking
# write and fdatasync, as the journal today) or `uring` (the round submitted to io_uring
# from a task of the runtime; the runtime's timer ticks by the millisecond, so 1000 µs
# paces at about 2 ms); WORKERS the runtime's worker threads. Variants alternate within
# each rate.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/round-floor}"
RATES="${2:-1000 20000 50000}"
VARIANTS="${3:-thread/1000/2 thread/1000/1 thread/2000/2 uring/1000/2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
cargo build --release --quiet --manifest-path tools/round-floor/Cargo.toml
FLOOR="$CARGO_TARGET_DIR/release/round-floor"
rm -rf "$DIR" && mkdir -p "$DIR"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), disk $(df -h "$DIR" | awk 'NR==2{print $1}')"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/{n += $2} END {print n}'; }
rounds() { grep '^rounds' "$1" | tail -1 | awk '{print $2}'; }

SERVER=""
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; true' EXIT
for rate in $RATES; do
  for variant in $VARIANTS; do
    IFS=/ read -r mode interval workers <<< "$variant"
    addr=127.0.0.1:$(free_port)
    TOKIO_WORKER_THREADS=$workers "$FLOOR" server --mode "$mode" --listen "$addr" \
      --file "$DIR/journal" --interval-us "$interval" > "$DIR/server.out" 2> "$DIR/server.err" &
    SERVER=$!
    for _ in $(seq 600); do grep -q listening "$DIR/server.out" && break; sleep 0.1; done
    grep -q listening "$DIR/server.out" || { echo "round-floor did not start: $(tail -3 "$DIR/server.err")" >&2; exit 1; }
    "$FLOOR" client --connect "$addr" --rate "$rate" --seconds 8 > "$DIR/client.out" &
    client=$!
    sleep 1.5
    c0=$(cpu_ticks "$SERVER") s0=$(switches "$SERVER") r0=$(rounds "$DIR/server.err")
    sleep 5
    c1=$(cpu_ticks "$SERVER") s1=$(switches "$SERVER") r1=$(rounds "$DIR/server.err")
    wait "$client"
    kill "$SERVER" && wait "$SERVER" 2>/dev/null || true
    SERVER=""
    # Rounds are printed every second: the count over the window is good to a second's.
    awk -v c=$((c1 - c0)) -v s=$((s1 - s0)) -v r=$((r1 - r0)) -v rate="$rate" -v v="$variant" \
      -v lat="$(cat "$DIR/client.out")" 'BEGIN {
        n = rate * 5
        printf "%6d records/s  %-15s %6.2f us/record  %.3f switches/record  %4.0f rounds/s  %.1f switches/round | %s\n",
          rate, v, c * 10000 / n, s / n, r / 5, s / (r > 0 ? r : 1), lat
      }'
  done
done
