#!/usr/bin/env bash
# The one test command: makes sure the services the tests need are up, then
# runs rustfmt --check, clippy with warnings as errors, and every test.
# Works on a fresh machine of our kind (installs what is missing when root)
# and fails loudly, naming the missing piece, where it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/services.sh

# A clean checkout gains nothing from incremental caches; they only take disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n==> %s\n' "$*"; }

step "services"
ensure_postgres
ensure_mariadb
# Real peers a connector's tests need (Dovecot, Odoo, Tryton): each script in
# deploy/peers/ installs what is missing, starts its server on loopback if it
# is not up, and waits until it answers. They start in the background while
# the code is checked and built, and are waited for before the tests.
# One after another (they may each call apt-get), together in the background.
PEER_LOG="$(mktemp)"
(
  for peer in deploy/peers/*.sh; do
    [ -e "$peer" ] || continue
    echo "--> $peer"
    bash "$peer" || { echo "$peer failed: the tests that need it cannot run"; exit 1; }
  done
) >"$PEER_LOG" 2>&1 &
PEERS_PID=$!
wait_for_peers() {
  step "peers (deploy/peers/*.sh)"
  if wait "$PEERS_PID"; then
    grep -E '^-->|answers|up on|listening' "$PEER_LOG" || true
  else
    cat "$PEER_LOG"
    return 1
  fi
}

step "rustfmt --check"
cargo fmt --all -- --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "build the tests"
cargo build --workspace --all-targets --all-features --quiet

wait_for_peers

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --no-fail-fast
  cargo test --workspace --all-features --doc
else
  cargo test --workspace --all-features --no-fail-fast
fi
