#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the console's browser suite
# (pipelines/synchub-console/tests/console_browser.rs). Idempotent: installs
# Debian's chromium and chromium-driver when either is missing (root only),
# then prints the two paths and exits 0. Quick when both are installed.
set -euo pipefail
have() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }
if ! have; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "chromium or chromedriver is missing and this is not root: apt-get install -y chromium chromium-driver" >&2
    exit 1
  fi
  echo "installing chromium and chromium-driver"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null; }
fi
have || { echo "chromium or chromedriver still missing after apt-get" >&2; exit 1; }
echo "chromium: $(command -v chromium)"
echo "chromedriver: $(command -v chromedriver)"
