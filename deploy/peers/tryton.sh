#!/usr/bin/env bash
# Real Tryton 8.2 for the synchub-tryton tests: http://127.0.0.1:18000, database `synchub`,
# admin / admin-pass, SQLite. Idempotent: does nothing when trytond answers; otherwise installs
# what is missing (venv from the Python registry, first run ~35 s) and starts it.
# State lives in $SYNCHUB_PEERS_DIR/tryton (default /var/tmp/synchub-peers/tryton).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${SYNCHUB_PEERS_DIR:-/var/tmp/synchub-peers}/tryton
PORT=18000
answers() {
  curl -sf -m 5 -o /dev/null -X POST -H 'Content-Type: application/json' \
    -d '{"id":0,"method":"common.server.version","params":[]}' "http://127.0.0.1:$PORT/rpc/"
}
setup() { "$DIR/venv/bin/python" "$HERE/tryton/setup.py" "http://127.0.0.1:$PORT" synchub admin admin-pass; }
if answers; then echo "tryton already up on 127.0.0.1:$PORT"; setup; exit 0; fi
if [ "$(id -u)" = 0 ]; then
  python3 -c 'import venv, ensurepip' 2>/dev/null || { apt-get update -q && apt-get install -y -q python3 python3-venv; }
fi
bash "$HERE/tryton/tryton-up.sh" "$DIR" "$PORT"
for _ in $(seq 1 100); do answers && { echo "tryton answers on 127.0.0.1:$PORT"; setup; exit 0; }; sleep 0.2; done
echo "deploy/peers/tryton.sh: trytond did not answer on 127.0.0.1:$PORT; see $DIR/trytond.log" >&2
exit 1
