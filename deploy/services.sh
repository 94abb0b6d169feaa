# Service set-up shared by deploy/test.sh and deploy/bench.sh (sourced).
# Each ensure_* returns when the service answers on loopback, starting or
# installing it if needed, or exits non-zero naming what is missing.

die() { echo "deploy: $*" >&2; exit 1; }

apt_install() {
  [ "$(id -u)" = 0 ] || die "$1 is missing and we are not root: install it ($*) and re-run"
  echo "deploy: installing $*"
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq >/dev/null || die "apt-get update failed"; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

wait_for() { # wait_for NAME CMD...
  local name=$1; shift
  for _ in $(seq 1 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "$name did not come up on 127.0.0.1 within 30 s"
}

pg_ready() { pg_isready -h 127.0.0.1 -p 5432 -q; }
pg_trust() { psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; }

ensure_postgres() {
  if command -v pg_isready >/dev/null && pg_ready && pg_trust; then echo "postgres: up"; return; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then apt_install postgresql postgresql-client; fi
  local version; version=$(ls /etc/postgresql | sort -V | tail -1)
  if ! pg_ready; then
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || die "cannot start PostgreSQL $version (pg_ctlcluster)"
  fi
  wait_for PostgreSQL pg_ready
  if ! pg_trust; then
    # A fresh install asks for passwords on TCP; tests use trust auth on loopback.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    wait_for "PostgreSQL (trust auth)" pg_trust
  fi
  echo "postgres: up"
}

maria_ready() { mariadb-admin --no-defaults -h 127.0.0.1 -P 3306 -u root ping; }

ensure_mariadb() {
  if command -v mariadb-admin >/dev/null && maria_ready >/dev/null 2>&1; then echo "mariadb: up"; return; fi
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server mariadb-client
  if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null 2>&1 || die "mariadb-install-db failed"
  fi
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql \
    || die "cannot start MariaDB (/usr/sbin/mariadbd)"
  wait_for MariaDB maria_ready
  echo "mariadb: up"
}
