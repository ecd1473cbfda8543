#!/usr/bin/env bash
# The browser the console's tests drive; nothing of it is written here.
#
#   scripts/browser.sh install    installs whatever is missing, prints a summary
#   scripts/browser.sh node-dir   prints the directory whose node_modules holds Playwright
#   scripts/browser.sh chromium   prints the Chromium executable
#
# - Debian: chromium (headless; its own build, so no browser download at test time).
# - npm: playwright-core (drives Chromium over the DevTools protocol, no bundled browser)
#   and axe-core (Deque's accessibility rules, run inside the page) in
#   ${SHALE_BROWSER_DIR:-$HOME/.cache/shale-browser}, installed with --ignore-scripts.
# Versions are pinned below; bumping one reinstalls.
set -euo pipefail
# shellcheck source=scripts/venv-lib.sh
source "$(dirname "$0")/venv-lib.sh"

usage() {
  sed -n '2,/^[^#]/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2
  exit 2
}

NODE_DIR=${SHALE_BROWSER_DIR:-$HOME/.cache/shale-browser}
NODE_PACKAGES=(
  "playwright-core@1.65.1"
  "axe-core@4.14.1"
)
NODE_PIN=$(printf '%s\n' "${NODE_PACKAGES[@]}")
CHROMIUM=/usr/bin/chromium

node_ok() {
  [ -f "$NODE_DIR/node_modules/playwright-core/package.json" ] \
    && [ "$(cat "$NODE_DIR/.shale-pins" 2>/dev/null)" = "$NODE_PIN" ]
}

install_node() {
  node_ok && return 0
  install_npm "$NODE_DIR" shale-browser "$NODE_PIN" "${NODE_PACKAGES[@]}"
}

case "${1:-}" in
  install)
    [ $# -eq 1 ] || usage
    [ -x "$CHROMIUM" ] || install_debian chromium
    install_node
    echo "browser: $("$CHROMIUM" --version 2>/dev/null | head -1), $NODE_DIR/node_modules/playwright-core" >&2
    ;;
  node-dir)
    node_ok || { echo "error: run scripts/browser.sh install first" >&2; exit 1; }
    echo "$NODE_DIR"
    ;;
  chromium)
    [ -x "$CHROMIUM" ] || { echo "error: run scripts/browser.sh install first" >&2; exit 1; }
    echo "$CHROMIUM"
    ;;
  *) usage ;;
esac
