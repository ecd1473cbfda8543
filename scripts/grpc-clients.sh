#!/usr/bin/env bash
# The thin gRPC clients the examples use and the suite runs (tests/thin_clients.rs); none of
# them is written here.
#
#   scripts/grpc-clients.sh install    installs whatever is missing, prints a summary
#   scripts/grpc-clients.sh python     prints the venv's python (grpcio, grpcio-tools)
#   scripts/grpc-clients.sh node-dir   prints the directory whose node_modules holds
#                                      @grpc/grpc-js, @grpc/proto-loader and typescript
#
# - PyPI: grpcio and grpcio-tools (grpc.protos_and_services loads the .proto files at run
#   time) in a venv at ${SHALE_GRPC_VENV:-$HOME/.cache/shale-grpc-venv}.
# - npm: examples/typescript's package.json and package-lock.json, `npm ci` into
#   ${SHALE_GRPC_NODE_DIR:-$HOME/.cache/shale-grpc-node} with --ignore-scripts (all plain
#   JavaScript: nothing is compiled).
# Versions are pinned here and in examples/typescript/package-lock.json; changing either
# reinstalls.
set -euo pipefail
# shellcheck source=scripts/venv-lib.sh
source "$(dirname "$0")/venv-lib.sh"

usage() {
  sed -n '2,/^[^#]/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2
  exit 2
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${SHALE_GRPC_VENV:-$HOME/.cache/shale-grpc-venv}
NODE_DIR=${SHALE_GRPC_NODE_DIR:-$HOME/.cache/shale-grpc-node}
PY_PACKAGES=(
  "grpcio==1.85.3"
  "grpcio-tools==1.85.1"
  "protobuf==7.36.2"
)
PY_PIN=$(printf '%s\n' "${PY_PACKAGES[@]}")
NODE_PIN=$(cat "$ROOT/examples/typescript/package.json" "$ROOT/examples/typescript/package-lock.json" | sha256sum | cut -d' ' -f1)

python_ok() {
  venv_ok "$VENV" "$PY_PIN"
}

node_ok() {
  [ -f "$NODE_DIR/node_modules/@grpc/grpc-js/package.json" ] \
    && [ "$(cat "$NODE_DIR/.shale-pins" 2>/dev/null)" = "$NODE_PIN" ]
}

install_python() {
  install_venv "$VENV" "grpcio" "${PY_PACKAGES[@]}"
}

install_node() {
  node_ok && return 0
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || {
    echo "error: node and npm are needed (on Debian: apt-get install npm)" >&2
    exit 1
  }
  echo "installing @grpc/grpc-js, @grpc/proto-loader and typescript into $NODE_DIR" >&2
  mkdir -p "$NODE_DIR"
  # The directory is this script's: refuse one that holds some other npm project.
  if [ -f "$NODE_DIR/package.json" ] \
      && ! grep -qE '"name" *: *"shale-grpc-quickstart"' "$NODE_DIR/package.json"; then
    echo "error: $NODE_DIR/package.json is not the quickstart's: point SHALE_GRPC_NODE_DIR elsewhere" >&2
    exit 1
  fi
  rm -f "$NODE_DIR/.shale-pins"
  cp "$ROOT/examples/typescript/package.json" "$ROOT/examples/typescript/package-lock.json" "$NODE_DIR/"
  (cd "$NODE_DIR" && npm ci --silent --no-audit --no-fund --ignore-scripts >&2) || {
    echo "error: npm ci in $NODE_DIR failed" >&2
    exit 1
  }
  echo "$NODE_PIN" > "$NODE_DIR/.shale-pins"
}

case "${1:-}" in
  install)
    [ $# -eq 1 ] || usage
    install_python
    install_node
    echo "grpc clients: $VENV/bin/python, $NODE_DIR/node_modules/@grpc/grpc-js" >&2
    ;;
  python)
    python_ok || { echo "error: run scripts/grpc-clients.sh install first" >&2; exit 1; }
    echo "$VENV/bin/python"
    ;;
  node-dir)
    node_ok || { echo "error: run scripts/grpc-clients.sh install first" >&2; exit 1; }
    echo "$NODE_DIR"
    ;;
  *) usage ;;
esac
