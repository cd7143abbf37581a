#!/usr/bin/env bash
# bench/notify.sh: the cost of NOTIFY es_events (issue 15 section 3), with
# es_ledger.notify = on against off in the same run, interleaved.  Run as
# root on Debian 12:
#
#     bash bench/notify.sh                  # BENCH_SECONDS=10, 3 rounds
#     ES_PGBIN=/opt/es/x/lib/postgresql/15/bin BENCH_SKIP_BUILD=1 bash bench/notify.sh
#
# Workload: one es_transfer per transaction between two random distinct
# funded accounts (BENCH_ACCOUNTS of them), pgbench -n -M prepared -c C -j C
# -T secs, synchronous_commit = off (the cluster of .ci/lib.sh: fsync off).
# Each round runs, for C = 8 and C = 2, notify on and off (the order
# alternates by round) with nobody listening, then notify on with a
# listener that LISTENs es_events and sits idle in a transaction (it never
# reads: the queue cannot be trimmed past it and fills).  The setting is
# passed per pgbench session (PGOPTIONS=-c es_ledger.notify=...).  Prints
# every run's tps, the median per case, the ratio on/off, failed
# transactions (must be 0), and the queue usage the listener left.
#
# Settings (environment):
#   BENCH_SECONDS     pgbench seconds per run (10)
#   BENCH_ROUNDS      rounds (3)
#   BENCH_ACCOUNTS    funded accounts (1000)
#   BENCH_SKIP_BUILD  1: use the installed extension (0)
source "$(dirname "${BASH_SOURCE[0]}")/../.ci/lib.sh"

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_ACCOUNTS=${BENCH_ACCOUNTS:-1000}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
FUND=1000000000
DB=es_bench

bpsql() { as_pg psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

if [ "$BENCH_SKIP_BUILD" != 1 ]; then
	install_deps
	build_install
fi
start_cluster
LISTENER_PID=
cleanup() {
	[ -n "$LISTENER_PID" ] && kill "$LISTENER_PID" 2>/dev/null || true
	stop_cluster
}
trap cleanup EXIT

bench_settings 4GB
as_pg createdb "$DB"
bpsql -c "CREATE EXTENSION es_ledger"
bpsql >/dev/null <<SQL
SELECT count(es_open_account('acct-' || i, 'USD')) FROM generate_series(0, $BENCH_ACCOUNTS - 1) i;
SELECT count(es_deposit('acct-' || i, $FUND)) FROM generate_series(0, $BENCH_ACCOUNTS - 1) i;
VACUUM ANALYZE;
SQL
cat >"$ES_TMP/transfer.pgb" <<PGB
\\set a random(0, $BENCH_ACCOUNTS - 1)
\\set d random(1, $BENCH_ACCOUNTS - 1)
\\set b (:a + :d) % $BENCH_ACCOUNTS
SELECT es_transfer('acct-' || :a::text, 'acct-' || :b::text, 1);
PGB
chown postgres: "$ES_TMP/transfer.pgb"

# tps of one run: clients, notify setting; failed transactions must be 0.
pgb() {
	local out
	if ! out=$(as_pg env PGOPTIONS="-c es_ledger.notify=$2" pgbench -n -M prepared \
		-c "$1" -j "$1" -T "$BENCH_SECONDS" -f "$ES_TMP/transfer.pgb" "$DB" 2>&1) ||
		! grep -q '^number of failed transactions: 0 ' <<<"$out"; then
		echo "$out" >&2
		echo "pgbench failed (c=$1 notify=$2)" >&2
		exit 1
	fi
	awk '/^tps = / {printf "%.0f", $3}' <<<"$out"
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

declare -A R
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
as_pg pgbench -n -M prepared -c 2 -j 2 -T 3 -f "$ES_TMP/transfer.pgb" "$DB" >/dev/null 2>&1	# warm-up
for round in $(seq 1 "$BENCH_ROUNDS"); do
	for c in 8 2; do
		if [ $((round % 2)) = 1 ]; then order="on off"; else order="off on"; fi
		for n in $order; do
			t=$(pgb "$c" "$n")
			R[$c.$n]="${R[$c.$n]:-} $t"
			printf 'round %d  -c %d  notify=%-3s  %6d tps\n' "$round" "$c" "$n" "$t"
		done
		# a listener that never reads: LISTEN, then idle in a transaction
		# (psql ends when its input does, shortly after the pgbench run)
		{ echo "LISTEN es_events; BEGIN; SELECT txid_current();"; sleep $((BENCH_SECONDS + 5)); } |
			as_pg psql -X -q -d "$DB" >/dev/null &
		LISTENER_PID=$!
		sleep 1
		t=$(pgb "$c" on)
		R[$c.stuck]="${R[$c.stuck]:-} $t"
		U=$(bpsql -At -c "SELECT round(pg_notification_queue_usage()::numeric, 6)")
		printf 'round %d  -c %d  notify=on, idle listener  %6d tps  (queue usage %s)\n' "$round" "$c" "$t" "$U"
		wait "$LISTENER_PID" 2>/dev/null || true
		LISTENER_PID=
		bpsql -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state LIKE 'idle in%' AND pid <> pg_backend_pid()" >/dev/null
	done
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "PostgreSQL $(bpsql -At -c 'SHOW server_version'), $(nproc) CPUs, $(uname -m); load average before $LOAD0, after $LOAD1"
echo "build $(git -C "$ES_ROOT" log -1 --format='%h' 2>/dev/null || echo unknown); $BENCH_ROUNDS rounds of $BENCH_SECONDS s; medians (tps):"
printf '%-4s %10s %10s %8s %22s\n' clients "notify=off" "notify=on" "on/off" "on + idle listener"
for c in 8 2; do
	off=$(median <<<"${R[$c.off]}")
	on=$(median <<<"${R[$c.on]}")
	st=$(median <<<"${R[$c.stuck]}")
	printf '%-7s %10d %10d %8s %22d\n' "-c $c" "$off" "$on" "$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.3f", a / b}')" "$st"
done
echo "failed transactions: 0 in every run (pgbench checked)"
