# Sourced by the client installers (kafka-clients.sh, grpc-clients.sh): a Python venv
# holding pinned packages, reinstalled when the pins change.
# shellcheck shell=bash

# Whether the venv at $1 holds exactly the packages pinned in $2 (one per line).
venv_ok() {
  [ -x "$1/bin/python" ] && [ "$(cat "$1/.shale-pins" 2>/dev/null)" = "$2" ]
}

# Installs the packages after $2 into the venv at $1 unless it holds them already; $2
# names them in the progress line.
install_venv() {
  local venv=$1 what=$2
  shift 2
  local pin
  pin=$(printf '%s\n' "$@")
  venv_ok "$venv" "$pin" && return 0
  echo "installing $what into $venv" >&2
  command -v python3 >/dev/null 2>&1 || { echo "error: python3 not found" >&2; exit 1; }
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >/dev/null || {
    echo "error: python3 -m venv $venv failed (on Debian: apt-get install python3-venv)" >&2
    rm -rf "$venv"
    exit 1
  }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2 || {
    echo "error: pip install $* into $venv failed" >&2
    exit 1
  }
  echo "$pin" > "$venv/.shale-pins"
}
