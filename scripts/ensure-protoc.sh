#!/usr/bin/env bash
# Makes sure a protoc is available for the build (tonic's code generator needs one).
# Uses $PROTOC or protoc on PATH; otherwise installs Debian's protobuf-compiler.
set -euo pipefail
if [ -n "${PROTOC:-}" ] && [ -x "${PROTOC}" ]; then exit 0; fi
if command -v protoc >/dev/null 2>&1; then exit 0; fi
echo "protoc not found; installing Debian's protobuf-compiler" >&2
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
if command -v apt-get >/dev/null 2>&1; then
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq protobuf-compiler >/dev/null
else
  echo "error: no protoc and no apt-get; install protoc 3.x and/or set PROTOC" >&2
  exit 1
fi
command -v protoc >/dev/null
