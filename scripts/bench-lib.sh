# Sourced by the single-broker benchmarks: the release build, free ports, the machine's
# line, fio's fdatasync ceiling, and one standalone broker stopped on exit.
# Needs DIR set; sets SHALE and SHALE_BENCH (the binaries; SHALE_BIN and SHALE_BENCH_BIN
# run other builds, for an A/B).
# shellcheck shell=bash
command -v fio >/dev/null || { apt-get update -qq && apt-get install -y -qq fio >/dev/null; }
scripts/ensure-protoc.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}"
cargo build --release --quiet --bin shale --bin shale-bench
SHALE="${SHALE_BIN:-$CARGO_TARGET_DIR/release/shale}"
SHALE_BENCH="${SHALE_BENCH_BIN:-$CARGO_TARGET_DIR/release/shale-bench}"
rm -rf "$DIR" && mkdir -p "$DIR"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), disk $(df -h "$DIR" | awk 'NR==2{print $1}')"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# fio's sequential write of 1 GiB with an fdatasync after every $1-byte block, in $DIR: MiB/s.
fio_fdatasync_mib() {
  local bw
  bw=$(fio --name=seq --rw=write --bs="$1" --size=1G --fdatasync=1 --ioengine=sync \
    --directory="$DIR" --output-format=terse | awk -F';' '{print $48}')
  rm -f "$DIR"/seq*
  echo "scale=1; $bw / 1024" | bc
}

# System + user CPU of writing 512 MiB into the page cache with `dd`, in µs per KiB: first
# into the pages the kernel hands out (on a VM whose balloon reports free memory to its
# host — this one's — pages the host took back, each faulted in again), then at once into
# the pages that write just freed. "FRESH REUSED". A broker writes each record once into
# new segment pages: the first figure is part of its CPU per record (docs/benchmarks.md).
page_cache_us_per_kib() {
  python3 - "$DIR" <<'PY'
import os, resource, subprocess, sys
path, mib = os.path.join(sys.argv[1], "page-cache"), 512
def write():
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["dd", "if=/dev/zero", "of=" + path, "bs=1M", "count=%d" % mib, "status=none"],
                   check=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.remove(path)
    cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    return cpu * 1e6 / (mib * 1024)
print("%.2f %.2f" % (write(), write()))
PY
}

# Builds `kafka-bench` (librdkafka, built from the sources the rdkafka crate bundles: make
# and a C compiler) and sets KAFKA_BENCH.
build_kafka_bench() {
  cargo build --release --quiet --manifest-path tools/kafka-bench/Cargo.toml
  KAFKA_BENCH="$CARGO_TARGET_DIR/release/kafka-bench"
}

# CPU seconds (user + system) of a process, all its threads (0 once it has ended: a load
# client that stopped early, whose line then says so).
cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# A rate like 50k as records/s.
records() { echo "$1" | sed 's/k$/000/'; }

# fio: sequential 64 KiB writes with an fdatasync after each, at $1 bytes/s for
# $RUN_SECONDS, in $DIR: "p50 p99 p999" of the fdatasync latency in ms.
fio_sync_ms() {
  fio --name=sync --rw=write --bs=64k --size=2G --fdatasync=1 --ioengine=sync \
    --rate="$1" --runtime="$RUN_SECONDS" --time_based --directory="$DIR" \
    --output-format=json 2>/dev/null |
    python3 -c 'import json,sys
p = json.load(sys.stdin)["jobs"][0]["sync"]["lat_ns"]["percentile"]
print(" ".join("%.2f" % (p[k] / 1e6) for k in ("50.000000", "99.000000", "99.900000")))'
  rm -f "$DIR"/sync*
}

# Starts `shale standalone` with data in $DIR/shale and the arguments given, waits until it
# listens, and stops it (awaiting its exit) when the script ends. Sets PID.
start_standalone() {
  "$SHALE" standalone --data-dir "$DIR/shale" "$@" > "$DIR/broker.out" 2> "$DIR/broker.err" &
  PID=$!
  # The broker's exit is awaited: a next run must not overlap its shutdown.
  trap 'kill $PID 2>/dev/null && wait $PID 2>/dev/null || true' EXIT
  for _ in $(seq 100); do grep -q listening "$DIR/broker.out" && break; sleep 0.1; done
  grep -q listening "$DIR/broker.out" || { echo "the broker did not start: $(tail -3 "$DIR/broker.err")" >&2; exit 1; }
  echo "broker: $(head -1 "$DIR/broker.out")"
}
