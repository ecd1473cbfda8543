#!/usr/bin/env bash
# A private S3-compatible server (moto) for tests and local clusters.
#
#   scripts/s3.sh install                    installs moto if missing, prints moto_server's path
#   scripts/s3.sh start DIR PORT [BUCKET...] starts it on 127.0.0.1, adds BUCKETs, prints its PID
#   scripts/s3.sh stop PID                   stops it (SIGTERM, then SIGKILL after 10 s)
#
# moto lives in a venv at ${SHALE_S3_VENV:-$HOME/.cache/shale-moto-venv} ($MOTO_SERVER_BIN
# overrides it). `start` keeps the log in DIR/moto.log and waits (at most $S3_START_TIMEOUT
# seconds, default 30) until it answers HTTP. Moto checks no signatures, but object requests
# need an Authorization header (any credentials): unsigned ones are anonymous and get 403.
# Object bodies sent as application/x-www-form-urlencoded (curl -d's default) are lost.
set -euo pipefail
# shellcheck source=scripts/service-lib.sh
source "$(dirname "$0")/service-lib.sh"

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# The one moto this project tests against; bump it deliberately.
MOTO_VERSION=5.2.5
VENV=${SHALE_S3_VENV:-$HOME/.cache/shale-moto-venv}

# The venv's moto_server, or $MOTO_SERVER_BIN if set; only a venv whose moto is
# $MOTO_VERSION counts, so bumping the pin reinstalls.
find_moto() {
  if [ -n "${MOTO_SERVER_BIN:-}" ] && [ -x "${MOTO_SERVER_BIN}" ]; then
    echo "${MOTO_SERVER_BIN}"
    return 0
  fi
  local bin="$VENV/bin/moto_server"
  [ -x "$bin" ] || return 1
  [ "$(cat "$VENV/.shale-moto-version" 2>/dev/null)" = "$MOTO_VERSION" ] || return 1
  echo "$bin"
}

install() {
  [ $# -eq 0 ] || usage
  local bin
  if bin=$(find_moto); then echo "$bin"; exit 0; fi
  echo "moto_server not found; installing moto[server]==$MOTO_VERSION into $VENV" >&2
  command -v python3 >/dev/null 2>&1 || {
    echo "error: python3 not found; install Python 3.9+ (with its venv module) first" >&2
    exit 1
  }
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" >/dev/null || {
      echo "error: python3 -m venv $VENV failed (on Debian: apt-get install python3-venv)" >&2
      rm -rf "$VENV"
      exit 1
    }
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" >&2 || {
    echo "error: pip install moto[server]==$MOTO_VERSION into $VENV failed" >&2
    exit 1
  }
  [ -x "$VENV/bin/moto_server" ] || {
    echo "error: moto[server] installed but $VENV/bin/moto_server is missing" >&2
    exit 1
  }
  echo "$MOTO_VERSION" >"$VENV/.shale-moto-version"
  find_moto
}

start() {
  [ $# -ge 2 ] || usage
  local dir=$1 port=$2
  shift 2
  local bin
  bin=$(find_moto) || {
    echo "error: moto_server $MOTO_VERSION not found in $VENV;" \
      "run scripts/s3.sh install (or set MOTO_SERVER_BIN)" >&2
    exit 1
  }
  if [ $# -gt 0 ] && ! command -v curl >/dev/null 2>&1; then
    echo "error: curl not found; it is needed to create buckets (apt-get install curl)" >&2
    exit 1
  fi
  mkdir -p "$dir"
  local url="http://127.0.0.1:${port}"
  nohup "$bin" -H 127.0.0.1 -p "$port" >>"$dir/moto.log" 2>&1 </dev/null &
  local pid=$!
  wait_ready moto_server "$pid" "$dir/moto.log" "${S3_START_TIMEOUT:-30}" answers "$port"
  # Unsigned CreateBucket: moto lets anonymous requests create buckets (not read objects).
  local bucket code reply="$dir/create-bucket.reply"
  for bucket in "$@"; do
    code=$(curl -s --max-time 10 -o "$reply" -w '%{http_code}' -X PUT "$url/$bucket") || true
    if [ "$code" != "200" ]; then
      echo "error: creating bucket '$bucket' (PUT $url/$bucket) got HTTP ${code:-000}," \
        "not 200; moto_server (pid $pid) killed; its reply:" >&2
      cat "$reply" >&2 2>/dev/null || true
      echo >&2
      rm -f "$reply"
      kill -9 "$pid" 2>/dev/null || true
      exit 1
    fi
  done
  rm -f "$reply"
  echo "$pid"
}

# One GET / (ListBuckets); true once an S3 server lists its buckets, so another program
# that answers HTTP on the port does not count.
answers() {
  local reply
  reply=$(http_reply "$1" 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n')
  [[ $reply == 'HTTP/1.'?' 200 '* && $reply == *'<ListAllMyBucketsResult'* ]]
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
