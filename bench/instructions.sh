#!/usr/bin/env bash
# bench/instructions.sh: instructions per command of the write path, counted
# by valgrind's callgrind in a single-user backend, so the number does not
# depend on what else the machine is doing.  Runs the same script with N
# deposits + N transfers over 100 accounts and with none, and prints
# (difference) / (2 N).  Run as root on Debian 12, after `make install` into
# the PostgreSQL at ES_PGBIN (default: Debian's PostgreSQL 15):
#
#     bash bench/instructions.sh            # N=2000
#     N=5000 ES_PGBIN=/some/copy/lib/postgresql/15/bin bash bench/instructions.sh
#
# To compare two builds, install each into its own copy of the PostgreSQL
# tree (see README, Contributing) and run this once per copy.
set -euo pipefail
PGBIN=${ES_PGBIN:-/usr/lib/postgresql/15/bin}
N=${N:-2000}
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
WORK=$(mktemp -d /tmp/es_instr.XXXXXX)
chown postgres: "$WORK"
trap 'rm -rf "$WORK"' EXIT

# Instructions of one single-user run with n deposits and n transfers.
count() {
	local n=$1 d="$WORK/run$1"
	mkdir -p "$d" && chown postgres: "$d"
	runuser -u postgres -- "$PGBIN/initdb" -D "$d/data" -A trust -U postgres --no-sync >/dev/null
	cat >"$d/in.sql" <<SQL
CREATE EXTENSION es_ledger;
SELECT count(es_open_account('acct-' || i, 'USD')) FROM generate_series(0, 99) i;
SELECT count(es_deposit('acct-' || (i % 100), 1000)) FROM generate_series(1, $n) i;
SELECT count(es_transfer('acct-' || (i % 100), 'acct-' || ((i + 1) % 100), 1)) FROM generate_series(1, $n) i;
SQL
	(cd "$d" && runuser -u postgres -- valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" \
		"$PGBIN/postgres" --single -D "$d/data" -c fsync=off postgres <"$d/in.sql" >"$d/out.txt" 2>"$d/vg.txt")
	if grep -q ERROR "$d/out.txt"; then
		cat "$d/out.txt" >&2
		exit 1
	fi
	grep Collected "$d/vg.txt" | awk '{print $NF}'
}

base=$(count 0)
full=$(count "$N")
echo "build: $("$PGBIN/pg_config" --pkglibdir)/es_ledger.so md5 $(md5sum "$("$PGBIN/pg_config" --pkglibdir)/es_ledger.so" | cut -c1-12)"
echo "instructions: $base (setup only), $full (setup + $N deposits + $N transfers)"
echo "per command: $(( (full - base) / (2 * N) ))"
