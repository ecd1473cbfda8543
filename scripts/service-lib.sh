# Shared by scripts/etcd.sh and scripts/s3.sh: waiting for a private service to come up,
# one HTTP request over bash's /dev/tcp, and stopping by PID. Sourced, not run.

# wait_ready NAME PID LOG TIMEOUT_SECS CHECK [ARGS...]
# Waits until `CHECK ARGS...` succeeds. Exits the script with the log's tail if the process
# dies first (also right after the check: whatever answered must be ours, not another
# server on the port) or kills it and exits after TIMEOUT_SECS.
wait_ready() {
  local name=$1 pid=$2 log=$3 timeout=$4
  shift 4
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "error: $name exited during start-up; last lines of $log:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "error: $name (pid $pid) was not ready within ${timeout}s; see $log" >&2
      kill -9 "$pid" 2>/dev/null || true
      exit 1
    fi
    sleep 0.05
  done
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "error: $name exited during start-up; last lines of $log:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
}

# http_reply PORT REQUEST: prints the whole reply to one HTTP/1.0 request on 127.0.0.1 (so
# checks need no curl). The subshell keeps the fd and the silenced stderr from leaking.
http_reply() {
  local port=$1 request=$2
  (
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    printf '%b' "$request" >&3
    timeout 2 cat <&3 || true
  ) 2>/dev/null
}

# stop_pid PID: SIGTERM, then SIGKILL after 10 s.
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
}
