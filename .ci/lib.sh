# .ci/lib.sh: shared steps of .ci/demo and .ci/test (sourced, not run).
# Everything runs as root on Debian 12; PostgreSQL itself runs as the
# "postgres" user in a temporary directory on a free port.
set -euo pipefail

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# ES_PGBIN lets a developer point the scripts at a private copy of the
# PostgreSQL 15 tree (so that two checkouts can install and test side by side).
PGBIN=${ES_PGBIN:-/usr/lib/postgresql/15/bin}
ES_PACKAGES="build-essential postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
	libtap-parser-sourcehandler-pgtap-perl libipc-run-perl pg-bsd-indent python3-psycopg2"

log() { printf '\n==> %s\n' "$*"; }

# Install the Debian packages that are missing (nothing if all are there).
install_deps() {
	local missing=()
	for p in $ES_PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
}

# Build and install the extension into PostgreSQL 15.
build_install() {
	log "building and installing es_ledger"
	make -C "$ES_ROOT" -s clean >/dev/null
	# -Werror in CI only (the Makefile users build with leaves it out);
	# ES_WERROR= (empty) turns it off, e.g. for tools/sanitize.sh
	make -C "$ES_ROOT" -s PG_CONFIG=$PGBIN/pg_config COPT="${ES_WERROR--Werror} ${ES_COPT:-}"
	make -C "$ES_ROOT" -s PG_CONFIG=$PGBIN/pg_config install >/dev/null
}

# A free TCP port on the loopback interface.
free_port() {
	local port
	for port in $(seq 55432 55532); do
		if ! (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	echo "no free port" >&2
	return 1
}

# Run a command as the postgres user, keeping the environment we set.
as_pg() {
	runuser -u postgres -- env PATH="$PGBIN:$PATH" PGHOST="${PGHOST:-}" PGPORT="${PGPORT:-}" \
		PGUSER="${PGUSER:-postgres}" PGDATABASE="${PGDATABASE:-postgres}" "$@"
}

# The benchmarks' settings of a started cluster: synchronous_commit off, a
# large max_wal_size ($1, 4GB by default), a long checkpoint_timeout; reloaded.
bench_settings() {
	as_pg psql -X -q -v ON_ERROR_STOP=1 -d postgres >/dev/null <<SQL
ALTER SYSTEM SET synchronous_commit = off;
ALTER SYSTEM SET max_wal_size = '${1:-4GB}';
ALTER SYSTEM SET checkpoint_timeout = '30min';
SELECT pg_reload_conf();
SQL
	sleep 0.5
}

# Start a scratch cluster; sets ES_TMP, PGHOST, PGPORT.  stop_cluster on exit.
start_cluster() {
	ES_TMP=$(mktemp -d /tmp/es_ledger.XXXXXX)
	chmod 755 "$ES_TMP"
	chown postgres: "$ES_TMP"
	PGPORT=$(free_port)
	PGHOST=$ES_TMP
	export PGHOST PGPORT
	log "starting a scratch cluster in $ES_TMP on port $PGPORT"
	as_pg initdb -D "$ES_TMP/data" -A trust -U postgres --no-sync >/dev/null
	cat >>"$ES_TMP/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$ES_TMP'
fsync = off
max_connections = 40
CONF
	# ES_SERVER_ENV: extra environment for the server only (tools/sanitize.sh
	# preloads the sanitizers' runtime with it)
	as_pg env ${ES_SERVER_ENV:-} pg_ctl -D "$ES_TMP/data" -l "$ES_TMP/server.log" -w start >/dev/null
	trap stop_cluster EXIT
}

stop_cluster() {
	if [ -n "${ES_TMP:-}" ] && [ -d "$ES_TMP/data" ]; then
		as_pg pg_ctl -D "$ES_TMP/data" -m immediate stop >/dev/null 2>&1 || true
		if [ -z "${ES_KEEP_TMP:-}" ]; then rm -rf "$ES_TMP"; fi
	fi
}
