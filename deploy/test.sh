#!/usr/bin/env bash
# The one test command: makes sure the services the tests need are up, then
# runs rustfmt --check, clippy with warnings as errors, and every test.
# Works on a fresh machine of our kind (installs what is missing when root)
# and fails loudly, naming the missing piece, where it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/services.sh

step() { printf '\n==> %s\n' "$*"; }

step "services"
ensure_postgres
ensure_mariadb

step "rustfmt --check"
cargo fmt --all -- --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --no-fail-fast
  cargo test --workspace --all-features --doc
else
  cargo test --workspace --all-features --no-fail-fast
fi
