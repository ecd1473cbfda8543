# Sourced by the client installers (kafka-clients.sh, grpc-clients.sh, browser.sh): a
# Python venv or an npm directory holding pinned packages, reinstalled when the pins
# change; a Debian package.
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

# Installs the npm packages after $3 into the directory $1, as the private project named
# $2 (refusing a directory that holds another project; starting over so that nothing an
# older pin list installed stays), and records the pins $3 (one per line) in .shale-pins.
install_npm() {
  local dir=$1 name=$2 pin=$3
  shift 3
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || install_debian npm
  echo "installing $* into $dir" >&2
  mkdir -p "$dir"
  if [ -f "$dir/package.json" ] && ! grep -q "\"name\" *: *\"$name\"" "$dir/package.json"; then
    echo "error: $dir/package.json is not $name's: point the script elsewhere" >&2
    exit 1
  fi
  rm -rf "$dir/node_modules" "$dir/package-lock.json" "$dir/.shale-pins"
  printf '{\n  "name": "%s",\n  "private": true\n}\n' "$name" > "$dir/package.json"
  (cd "$dir" && npm install --silent --no-audit --no-fund --save-exact --ignore-scripts "$@" >&2) || {
    echo "error: npm install $* in $dir failed" >&2
    exit 1
  }
  echo "$pin" > "$dir/.shale-pins"
}

# Installs Debian's package $1 (as root, else with sudo).
install_debian() {
  echo "installing Debian's $1" >&2
  local sudo=""
  [ "$(id -u)" = "0" ] || sudo="sudo"
  command -v apt-get >/dev/null 2>&1 || { echo "error: $1 missing and no apt-get" >&2; exit 1; }
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$1" >/dev/null
}
