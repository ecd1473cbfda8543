#!/usr/bin/env bash
# Many partitions on one broker (issue 19): create TOPICS topics of PER partitions each,
# produce one record to every partition, restart the broker, and read every partition
# back, checking each holds exactly its record. Reports each step's time, the restart
# time (start to serving every partition), and the broker's peak RSS and open files,
# sampled every 0.2 s from /proc.
#   scripts/bench-partitions.sh [DIR] [TOPICS] [PER] [FD_CACHE] [NOFILE]
# e.g. scripts/bench-partitions.sh /tmp/parts 10 10000 1024
# NOFILE (default: the shell's) sets the broker's `ulimit -n`; set it below what the
# broker needs to see the TOO_MANY_OPEN_FILES answer instead.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/partitions}"
TOPICS="${2:-10}"
PER="${3:-10000}"
FD_CACHE="${4:-1024}"
NOFILE="${5:-$(ulimit -n)}"
scripts/ensure-protoc.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
cargo build --release --quiet --bin shale --bin shale-bench
SHALE="$CARGO_TARGET_DIR/release/shale"
SHALE_BENCH="$CARGO_TARGET_DIR/release/shale-bench"
rm -rf "$DIR" && mkdir -p "$DIR"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
ADMIN=$(free_port)
printf '[log]\nfd_cache_capacity = %s\n' "$FD_CACHE" > "$DIR/shale.toml"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), disk $(df -h "$DIR" | awk 'NR==2{print $1}')"
echo "$TOPICS topics x $PER partitions; log.fd_cache_capacity $FD_CACHE; ulimit -n $NOFILE"

# Peak RSS (MiB) and open files of process $1, written to $2 when it exits.
sample() {
  local pid=$1 out=$2 rss=0 fds=0 r f
  while kill -0 "$pid" 2>/dev/null; do
    r=$(awk '/VmRSS/{print int($2/1024)}' "/proc/$pid/status" 2>/dev/null || echo 0)
    f=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    (( r > rss )) && rss=$r
    (( f > fds )) && fds=$f
    echo "$rss $fds" > "$out"
    sleep 0.2
  done
}
start() {
  (ulimit -n "$NOFILE"; exec "$SHALE" standalone --kafka-listen none --data-dir "$DIR/data" --listen 127.0.0.1:$PORT \
    --admin-listen 127.0.0.1:$ADMIN --config "$DIR/shale.toml" > "$DIR/broker-$1.out" \
    2> "$DIR/broker-$1.err") &
  BROKER=$!; PIDS+=($BROKER)
  sample "$BROKER" "$DIR/peak-$1" & PIDS+=($!)
  for _ in $(seq 600); do grep -q listening "$DIR/broker-$1.out" && return; sleep 0.1; done
  echo "shale did not start: $(tail -3 "$DIR/broker-$1.err")" >&2; exit 1
}
stop() { kill "$1"; while kill -0 "$1" 2>/dev/null; do sleep 0.1; done; }
# The partition logs' own count of their open files (the hard bound log.fd_cache_capacity).
log_files() {
  curl -s "http://127.0.0.1:$ADMIN/metrics" | awk '/^shale_log_open_files_peak /{p=$2} \
    /^shale_log_open_files_limit /{l=$2} END{print "log files open at most " p " (bound " l ")"}'
}
bench() { "$SHALE_BENCH" partitions --broker 127.0.0.1:$PORT --topics "$TOPICS" --partitions "$PER" "$@"; }

start first
bench --steps create,produce
echo "before the restart: $(log_files)"
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
t=$(date +%s%N); stop "$BROKER"
echo "shutdown: $(ms "$t") ms; peak RSS and open files before the restart: $(cat "$DIR/peak-first" | awk '{print $1" MiB, "$2" files"}')"
t=$(date +%s%N)
start second
bench --steps verify
echo "restart to every partition read back: $(ms "$t") ms"
echo "after the restart: $(log_files)"
stop "$BROKER"; sleep 0.3
echo "peak RSS and open files after the restart: $(cat "$DIR/peak-second" | awk '{print $1" MiB, "$2" files"}')"
echo "data dir: $(du -sh "$DIR/data" | cut -f1), $(find "$DIR/data" -type f | wc -l) files"
