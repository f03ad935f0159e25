#!/usr/bin/env bash
# Installs Debian's Chromium for the browser end-to-end tests (tests/e2e/test_browser.py).
# Idempotent and quiet: does nothing when /usr/bin/chromium is already there. Playwright drives
# this system browser; `playwright install` (which downloads its own builds) is never used.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [[ -x "$CHROMIUM" ]]; then
    exit 0
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install_browser.sh: $CHROMIUM is missing; run this script as root (or install sudo)." >&2
        exit 1
    fi
    SUDO=(sudo)
fi

echo "install_browser.sh: installing Debian's chromium (needed by tests/e2e/test_browser.py)" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# apt's chatter goes to a log that is shown only when something fails.
if ! { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends chromium; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "install_browser.sh: installing chromium failed (output above)." >&2
    exit 1
fi

if [[ ! -x "$CHROMIUM" ]]; then
    echo "install_browser.sh: apt-get finished but $CHROMIUM is still missing." >&2
    exit 1
fi
