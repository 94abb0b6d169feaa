#!/usr/bin/env bash
# Real Dovecot IMAP peer for connectors/synchub-imap tests: 127.0.0.1:10143.
# Idempotent: installs dovecot-imapd when missing (root only), starts the
# server if nothing answers on the port, waits until it does, exits 0.
# Test users (password = "secret-" + name): alice bob carol dave erin frank grace heidi ivan judy.
# Each test owns one user and resets its mailboxes over IMAP, so tests never share state.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=10143
DIR=${SYNCHUB_DOVECOT_DIR:-/tmp/synchub-dovecot-$PORT}

up() { (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; }

if up; then
  echo "dovecot already up on 127.0.0.1:$PORT"
  exit 0
fi
if ! command -v dovecot >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "dovecot is missing and this is not root: apt-get install -y dovecot-imapd" >&2
    exit 1
  fi
  echo "installing dovecot-imapd"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd >/dev/null; }
fi
USERS=()
for u in alice bob carol dave erin frank grace heidi ivan judy; do USERS+=("$u" "secret-$u"); done
bash "$HERE/dovecot/dovecot-up.sh" "$DIR" "$PORT" "${USERS[@]}"
