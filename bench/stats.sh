#!/usr/bin/env bash
# bench/stats.sh: the cost of the operator's view es_stats (issue 18, item
# 4): how long one read of it takes on a ledger of BENCH_EVENTS events, and
# what a poller reading it every second costs a write workload.  Run as
# root on Debian 12:
#
#     bash bench/stats.sh                   # BENCH_SECONDS=10, 3 rounds
#     ES_PGBIN=/opt/es/x/lib/postgresql/15/bin BENCH_SKIP_BUILD=1 bash bench/stats.sh
#
# The cluster of .ci/lib.sh (fsync off) with shared_preload_libraries =
# 'es_ledger' (so the counters are on) and synchronous_commit = off.  The
# ledger: BENCH_ACCOUNTS accounts, BENCH_EVENTS events in all (deposits in
# batches), a snapshot of one account in ten, 20 open pending transfers and
# one paused async projection, then VACUUM ANALYZE.
#
# 1. One read: the first `SELECT * FROM es_stats` of a session (it counts
#    the whole log by type: es_stats_events), then the same run 30 times in
#    one session after a warm-up, each timed by psql (\timing); prints the
#    median and the slowest, and the same for the events section alone and
#    for the counters alone.
# 2. The workload: one es_transfer per transaction between two random
#    distinct accounts, pgbench -n -M prepared -c 4 -j 2 -T secs; each round
#    runs it without and with a poller (psql reading es_stats every second,
#    \watch 1), the order alternating by round.  Prints every run's tps,
#    the medians and the ratio; failed transactions must be 0.
#
# Settings (environment):
#   BENCH_SECONDS     pgbench seconds per run (10)
#   BENCH_ROUNDS      rounds (3)
#   BENCH_ACCOUNTS    accounts (1000)
#   BENCH_EVENTS      events in the ledger before the runs (100000)
#   BENCH_SKIP_BUILD  1: use the installed extension (0)
source "$(dirname "${BASH_SOURCE[0]}")/../.ci/lib.sh"

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_ACCOUNTS=${BENCH_ACCOUNTS:-1000}
BENCH_EVENTS=${BENCH_EVENTS:-100000}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
DB=es_bench

bpsql() { as_pg psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

if [ "$BENCH_SKIP_BUILD" != 1 ]; then
	install_deps
	build_install
fi
start_cluster
POLLER_PID=
cleanup() {
	[ -n "$POLLER_PID" ] && kill "$POLLER_PID" 2>/dev/null || true
	stop_cluster
}
trap cleanup EXIT

echo "shared_preload_libraries = 'es_ledger'" >>"$ES_TMP/data/postgresql.conf"
bench_settings 4GB
as_pg pg_ctl -D "$ES_TMP/data" -l "$ES_TMP/server.log" -w restart >/dev/null
as_pg createdb "$DB"
bpsql -c "CREATE EXTENSION es_ledger"
log "building a ledger of $BENCH_EVENTS events over $BENCH_ACCOUNTS accounts"
bpsql >/dev/null <<SQL
SELECT count(es_open_account('acct-' || i, 'USD')) FROM generate_series(0, $BENCH_ACCOUNTS - 1) i;
-- deposits in batches of 100 commands (one es_apply call each)
DO \$\$
DECLARE remaining bigint := $BENCH_EVENTS - $BENCH_ACCOUNTS - 40; k bigint := 0; n int;
BEGIN
	WHILE remaining > 0 LOOP
		n := least(100, remaining);
		PERFORM es_apply(jsonb_agg(jsonb_build_object('type', 'deposit',
				'account', 'acct-' || ((k + i) % $BENCH_ACCOUNTS), 'amount', 1000000)))
		  FROM generate_series(1, n) i;
		k := k + n; remaining := remaining - n;
	END LOOP;
END \$\$;
SELECT count(es_snapshot('acct-' || i)) FROM generate_series(0, $BENCH_ACCOUNTS - 1, 10) i;
SELECT count(es_apply(jsonb_build_object('type', 'transfer', 'from', 'acct-' || i, 'to', 'acct-' || (i + 1),
		'amount', 1000 + i, 'pending', true, 'id', 'hold-' || i))) FROM generate_series(0, 19) i;
CREATE FUNCTION bench_handler(ev es_events) RETURNS void LANGUAGE plpgsql AS \$\$ BEGIN END \$\$;
SELECT es_projection_create('bench_proj', 'bench_handler(es_events)', 'async');
SELECT es_projection_pause('bench_proj');
VACUUM ANALYZE;
SQL
EVENTS=$(bpsql -At -c "SELECT count(*) FROM es_events")

# 1. one read of es_stats: median and slowest of 30, in ms
timed() {
	{
		echo '\timing on'
		for _ in $(seq 1 5); do echo "$1"; done		# warm-up
		echo '\o /dev/null'
		echo "\\echo ---"
		for _ in $(seq 1 30); do echo "$1"; done
	} | bpsql 2>&1 | sed -n '/^---$/,$p' | awk '/^Time: / {print $2}' | sort -n |
		awk '{a[NR]=$1} END {printf "%.2f ms median, %.2f ms slowest (%d reads)", a[int((NR+1)/2)], a[NR], NR}'
}
log "one read of es_stats"
# the first read in a session counts the whole log (es_stats_events)
T_FIRST=$(printf '\\timing on\nSELECT * FROM es_stats;\n' | bpsql 2>&1 | awk '/^Time: / {printf "%.2f ms", $2}')
T_ALL=$(timed "SELECT * FROM es_stats;")
T_EVENTS=$(timed "SELECT * FROM es_stats WHERE section = 'events';")
T_COUNTERS=$(timed "SELECT * FROM es_stats WHERE section IN ('counters', 'commands', 'rejections');")
echo "first read in a session: $T_FIRST"
echo "all sections:  $T_ALL"
echo "events only:   $T_EVENTS"
echo "counters only: $T_COUNTERS"

# 2. tps with and without a poller
cat >"$ES_TMP/transfer.pgb" <<PGB
\\set a random(0, $BENCH_ACCOUNTS - 1)
\\set d random(1, $BENCH_ACCOUNTS - 1)
\\set b (:a + :d) % $BENCH_ACCOUNTS
SELECT es_transfer('acct-' || :a::text, 'acct-' || :b::text, 1);
PGB
chown postgres: "$ES_TMP/transfer.pgb"

pgb() {
	local out
	if ! out=$(as_pg pgbench -n -M prepared -c 4 -j 2 -T "$BENCH_SECONDS" -f "$ES_TMP/transfer.pgb" "$DB" 2>&1) ||
		! grep -q '^number of failed transactions: 0 ' <<<"$out"; then
		echo "$out" >&2
		echo "pgbench failed" >&2
		exit 1
	fi
	awk '/^tps = / {printf "%.0f", $3}' <<<"$out"
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

declare -A R
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
as_pg pgbench -n -M prepared -c 2 -j 2 -T 3 -f "$ES_TMP/transfer.pgb" "$DB" >/dev/null 2>&1	# warm-up
for round in $(seq 1 "$BENCH_ROUNDS"); do
	if [ $((round % 2)) = 1 ]; then order="none poller"; else order="poller none"; fi
	for p in $order; do
		if [ "$p" = poller ]; then
			{ echo "SELECT * FROM es_stats \\watch 1"; sleep $((BENCH_SECONDS + 3)); } |
				as_pg psql -X -q -d "$DB" >/dev/null 2>&1 &
			POLLER_PID=$!
			sleep 0.5
		fi
		t=$(pgb)
		if [ -n "$POLLER_PID" ]; then
			bpsql -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%FROM es_stats%' AND pid <> pg_backend_pid()" >/dev/null
			wait "$POLLER_PID" 2>/dev/null || true
			POLLER_PID=
		fi
		R[$p]="${R[$p]:-} $t"
		printf 'round %d  %-6s  %6d tps\n' "$round" "$p" "$t"
	done
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
COUNTED=$(bpsql -At -c "SELECT value FROM es_stats WHERE section = 'commands' AND key = 'transfer'")

echo
echo "PostgreSQL $(bpsql -At -c 'SHOW server_version'), $(nproc) CPUs, $(uname -m); load average before $LOAD0, after $LOAD1"
echo "build $(git -C "$ES_ROOT" log -1 --format='%h' 2>/dev/null || echo unknown); ledger of $EVENTS events before the runs, $BENCH_ACCOUNTS accounts"
echo "one read of es_stats: first in a session $T_FIRST; then all sections $T_ALL; events only $T_EVENTS; counters only $T_COUNTERS"
none=$(median <<<"${R[none]}")
poll=$(median <<<"${R[poller]}")
echo "es_transfer, pgbench -c 4 -j 2, $BENCH_ROUNDS rounds of $BENCH_SECONDS s, medians: no poller $none tps, es_stats every second $poll tps, ratio $(awk -v a="$poll" -v b="$none" 'BEGIN {printf "%.3f", a / b}')"
echo "transfers counted by es_stats during the runs: $COUNTED; failed transactions: 0 in every run (pgbench checked)"
