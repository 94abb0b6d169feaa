#!/usr/bin/env bash
# deploy/bench.sh [NAME…] — builds in release mode and runs the named
# benchmarks (all when none is named). Each prints `BENCH name=… records=…
# seconds=… rate=… peak_rss_mb=… [key=value …]` lines. Never part of test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/services.sh
ensure_postgres >/dev/null

declare -A BENCHES=(
  [ingest]="synchub-engine ingest"
  [rate_limits]="synchub-shopify rate_limits"
  [rate_limits_runtime]="synchub-http rate_limits"
  [dedupe]="synchub-identity dedupe"
  [shopify_sync]="synchub-shopify shopify_sync"
  [migrate]="synchub migrate"
  [shopify_full_sync]="synchub-shopify shopify_full_sync"
  [shared_budget]="synchub-store shared_budget"
  [console]="synchub-console console"
  [odoo]="synchub odoo"
  [imap]="synchub imap"
  [invoice_qbo]="synchub-quickbooks invoice_qbo"
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(ingest rate_limits dedupe shopify_sync shopify_full_sync migrate)
for name in "${names[@]}"; do
  spec=${BENCHES[$name]:-}
  [ -n "$spec" ] || { echo "unknown benchmark $name (have: ${!BENCHES[*]})" >&2; exit 2; }
  set -- $spec
  echo "==> $name ($1)" >&2
  cargo bench -q -p "$1" --all-features --bench "$2" 2>&1 | grep -E '^BENCH ' || { echo "benchmark $name failed" >&2; exit 1; }
done
