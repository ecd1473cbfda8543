#!/usr/bin/env bash
# A private etcd for tests and local clusters.
#
#   scripts/etcd.sh install                         installs Debian's etcd-server if `etcd` is missing
#   scripts/etcd.sh start DIR CLIENT_PORT PEER_PORT starts one member on 127.0.0.1, prints its PID
#   scripts/etcd.sh stop PID                        stops it (SIGTERM, then SIGKILL after 10 s)
#
# `start` keeps the member's data in DIR and its log in DIR/etcd.log, and waits (at most
# $ETCD_START_TIMEOUT seconds, default 30) until the member answers /health.
set -euo pipefail
# shellcheck source=scripts/service-lib.sh
source "$(dirname "$0")/service-lib.sh"

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# Debian's package puts etcd in /usr/bin; some installs keep it elsewhere.
find_etcd() {
  if [ -n "${ETCD_BIN:-}" ] && [ -x "${ETCD_BIN}" ]; then echo "${ETCD_BIN}"; return 0; fi
  command -v etcd 2>/dev/null && return 0
  for p in /usr/bin/etcd /usr/local/bin/etcd /usr/sbin/etcd; do
    if [ -x "$p" ]; then echo "$p"; return 0; fi
  done
  return 1
}

install() {
  if find_etcd >/dev/null; then exit 0; fi
  echo "etcd not found; installing Debian's etcd-server" >&2
  local sudo=""
  if [ "$(id -u)" != "0" ]; then sudo="sudo"; fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: no etcd and no apt-get; install etcd 3.4+ and put it on PATH (or set ETCD_BIN)" >&2
    exit 1
  fi
  $sudo apt-get update -qq >/dev/null
  # policy-rc.d exit 101 keeps the package from starting its own etcd on 2379 during the
  # install; tests start private members on their own ports instead.
  local policy=/usr/sbin/policy-rc.d created_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    created_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq etcd-server >/dev/null || {
    if [ -n "$created_policy" ]; then $sudo rm -f "$policy"; fi
    echo "error: apt-get install etcd-server failed" >&2
    exit 1
  }
  if [ -n "$created_policy" ]; then $sudo rm -f "$policy"; fi
  # If a service manager started it anyway, stop it so 2379/2380 stay free.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
  find_etcd >/dev/null || { echo "error: etcd-server installed but no etcd binary found" >&2; exit 1; }
}

start() {
  [ $# -eq 3 ] || usage
  local dir=$1 client_port=$2 peer_port=$3
  local bin
  bin=$(find_etcd) || {
    echo "error: etcd not found; run scripts/etcd.sh install (or set ETCD_BIN)" >&2
    exit 1
  }
  mkdir -p "$dir"
  local client="http://127.0.0.1:${client_port}" peer="http://127.0.0.1:${peer_port}"
  # Short heartbeat and election timeouts bring a single member up in well under a second.
  # ETCD_UNSUPPORTED_ARCH lets etcd 3.4 start on arm64 as well.
  ETCD_UNSUPPORTED_ARCH="${ETCD_UNSUPPORTED_ARCH:-$(uname -m | sed 's/x86_64//;s/aarch64/arm64/')}" \
  nohup "$bin" \
    --name shale-test \
    --data-dir "$dir/data" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "shale-test=$peer" --initial-cluster-state new \
    --heartbeat-interval=10 --election-timeout=50 \
    >>"$dir/etcd.log" 2>&1 </dev/null &
  local pid=$!
  wait_ready etcd "$pid" "$dir/etcd.log" "${ETCD_START_TIMEOUT:-30}" healthy "$client_port"
  echo "$pid"
}

# One GET /health; true when etcd reports itself healthy (it has a leader).
healthy() {
  [[ $(http_reply "$1" 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n') == *'"health":"true"'* ]]
}

stop() {
  [ $# -eq 1 ] || usage
  stop_pid "$1"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  install) install "$@" ;;
  start) start "$@" ;;
  stop) stop "$@" ;;
  *) usage ;;
esac
