#!/usr/bin/env bash
# Real Odoo 11 for the synchub-odoo tests: http://127.0.0.1:18069, database `odoo`, admin/admin,
# private PostgreSQL 15 cluster on 127.0.0.1:18433. Idempotent: does nothing when Odoo answers;
# otherwise installs what is missing (venv from the Python registry, first run ~70 s) and starts it.
# State lives in $SYNCHUB_PEERS_DIR/odoo (default /var/tmp/synchub-peers/odoo), reused between runs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${SYNCHUB_PEERS_DIR:-/var/tmp/synchub-peers}/odoo
HTTP=18069; PGP=18433
answers() {
  curl -sf -m 5 -o /dev/null -X POST -H 'Content-Type: application/json' \
    -d '{"jsonrpc":"2.0","method":"call","id":0,"params":{"service":"common","method":"version","args":[]}}' \
    "http://127.0.0.1:$HTTP/jsonrpc"
}
if answers; then echo "odoo already up on 127.0.0.1:$HTTP"; exit 0; fi
if [ "$(id -u)" = 0 ]; then
  command -v python3 >/dev/null || { apt-get update -q && apt-get install -y -q python3 python3-venv; }
  python3 -c 'import venv, ensurepip' 2>/dev/null || { apt-get update -q && apt-get install -y -q python3-venv; }
  [ -x /usr/lib/postgresql/15/bin/initdb ] || { apt-get update -q && apt-get install -y -q postgresql-15; }
fi
[ -x /usr/lib/postgresql/15/bin/initdb ] || { echo "deploy/peers/odoo.sh: PostgreSQL 15 binaries missing (/usr/lib/postgresql/15/bin); run as root to install" >&2; exit 1; }
bash "$HERE/odoo/odoo11-up.sh" "$DIR" "$HTTP" "$PGP"
for _ in $(seq 1 300); do answers && { echo "odoo answers on 127.0.0.1:$HTTP"; exit 0; }; sleep 0.2; done
echo "deploy/peers/odoo.sh: odoo did not answer on 127.0.0.1:$HTTP; see $DIR/odoo.log" >&2
exit 1
