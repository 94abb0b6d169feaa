#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the console's browser suite
# (pipelines/synchub-console/tests/console_browser.rs), with Noto CJK so the
# screenshots show Chinese names rather than empty boxes. Idempotent:
# installs Debian's chromium, chromium-driver and fonts-noto-cjk when any is
# missing (root only), then prints the paths and exits 0. Quick when
# everything is installed.
set -euo pipefail
PKGS=(chromium chromium-driver fonts-noto-cjk)
have() {
  command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
    && dpkg-query -W -f='${Status}' fonts-noto-cjk 2>/dev/null | grep -q 'install ok installed'
}
if ! have; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "chromium, chromedriver or the CJK fonts are missing and this is not root: apt-get install -y ${PKGS[*]}" >&2
    exit 1
  fi
  echo "installing ${PKGS[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PKGS[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PKGS[@]}" >/dev/null; }
fi
have || { echo "chromium, chromedriver or fonts-noto-cjk still missing after apt-get" >&2; exit 1; }
echo "chromium: $(command -v chromium)"
echo "chromedriver: $(command -v chromedriver)"
