#!/usr/bin/env bash
# bench/replay.sh: the cost of time travel.
#
#   a. es_replay(account) at now on one account of BENCH_HOT_EVENTS events
#      (default 100,000), with snapshots (es_ledger.snapshot_interval =
#      BENCH_INTERVAL, default 1000, written by es_apply as the account
#      grew) and without (es_drop_snapshots(), snapshot_interval = 0): mean
#      time per call over BENCH_CALLS calls (one statement), best of
#      BENCH_ROUNDS rounds, and the ratio.  Targets: >= 20x, < 5 ms.
#   b. es_accounts_at(now()) over a ledger of BENCH_EVENTS events in
#      BENCH_ACCOUNTS accounts (defaults 1,000,000 and 10,000), against the
#      plain-SQL floor SELECT account_id, sum(amount) FROM es_events WHERE
#      recorded_at <= now() GROUP BY 1, alternating, best of BENCH_ROUNDS.
#      Target: at most 2x the floor.
#
# Run as root on Debian 12 (after building; ES_PGBIN picks a PostgreSQL
# copy, see README, Contributing):
#
#     bash bench/replay.sh
#     BENCH_EVENTS=200000 bash bench/replay.sh
#     BENCH_SKIP_BUILD=1 bash bench/replay.sh
source "$(dirname "${BASH_SOURCE[0]}")/../.ci/lib.sh"

BENCH_HOT_EVENTS=${BENCH_HOT_EVENTS:-100000}
BENCH_INTERVAL=${BENCH_INTERVAL:-1000}
BENCH_CALLS=${BENCH_CALLS:-200}
BENCH_EVENTS=${BENCH_EVENTS:-1000000}
BENCH_ACCOUNTS=${BENCH_ACCOUNTS:-10000}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
	install_deps
	build_install
fi
start_cluster
bpsql() { as_pg psql -X -q -v ON_ERROR_STOP=1 "$@"; }
as_pg createdb es_rhot
as_pg createdb es_rwide

# ---------------------------------------------------------------- a. replay
log "one account of $BENCH_HOT_EVENTS events (snapshot_interval = $BENCH_INTERVAL)"
bpsql -d es_rhot <<SQL
CREATE EXTENSION es_ledger;
SELECT es_open_account('hot', 'USD') > 0;
SQL
remaining=$((BENCH_HOT_EVENTS - 1))
while [ $remaining -gt 0 ]; do
	n=$(( remaining < 10000 ? remaining : 10000 ))
	bpsql -d es_rhot -c "SET es_ledger.snapshot_interval = $BENCH_INTERVAL" \
		-c "SELECT es_apply(jsonb_agg(jsonb_build_object('type', 'deposit', 'account', 'hot', 'amount', 1))) > 0
	          FROM generate_series(1, $n) i" >/dev/null
	remaining=$((remaining - n))
done
bpsql -d es_rhot -c "VACUUM ANALYZE es_events" -c "VACUUM ANALYZE es_snapshots" >/dev/null
snaps=$(bpsql -d es_rhot -At -c "SELECT count(*) FROM es_snapshots")
equal=$(bpsql -d es_rhot -At -c "SELECT es_replay('hot') = a FROM es_accounts a WHERE account = 'hot'")
echo "  $snaps snapshots; es_replay('hot') = es_accounts row: $equal"

# mean ms per es_replay('hot') over $1 calls in one statement
replay_ms() {
	bpsql -d es_rhot -At <<SQL | tail -1
DO \$\$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
	FOR i IN 1 .. $1 LOOP PERFORM es_replay('hot'); END LOOP;
	RAISE NOTICE 'ms %', round((extract(epoch FROM clock_timestamp() - t0) * 1000 / $1)::numeric, 3);
END \$\$;
SQL
}
replay_ms_of() { replay_ms "$1" 2>&1 | sed -n 's/.*ms \([0-9.]*\).*/\1/p'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b + 0 < a + 0) print b; else print a }'; }

with_best=""
for r in $(seq 1 "$BENCH_ROUNDS"); do
	ms=$(replay_ms_of "$BENCH_CALLS")
	echo "  es_replay with snapshots, round $r: $ms ms per call"
	with_best=$(min "$with_best" "$ms")
done
dropped=$(bpsql -d es_rhot -At -c "SELECT es_drop_snapshots()")
echo "  es_drop_snapshots(): $dropped dropped"
without_calls=$(( BENCH_CALLS / 20 > 3 ? BENCH_CALLS / 20 : 3 ))
without_best=""
for r in $(seq 1 "$BENCH_ROUNDS"); do
	ms=$(replay_ms_of "$without_calls")
	echo "  es_replay without snapshots, round $r: $ms ms per call"
	without_best=$(min "$without_best" "$ms")
done
equal2=$(bpsql -d es_rhot -At -c "SELECT es_replay('hot') = a FROM es_accounts a WHERE account = 'hot'")

# ------------------------------------------------------- b. es_accounts_at
log "a ledger of $BENCH_EVENTS events in $BENCH_ACCOUNTS accounts"
bpsql -d es_rwide <<SQL
CREATE EXTENSION es_ledger;
SELECT count(es_open_account('acct-' || i, 'USD')) FROM generate_series(0, $BENCH_ACCOUNTS - 1) i;
SQL
remaining=$((BENCH_EVENTS - BENCH_ACCOUNTS))
while [ $remaining -gt 0 ]; do
	n=$(( remaining < 100000 ? remaining : 100000 ))
	bpsql -d es_rwide -c "SELECT es_apply(jsonb_agg(jsonb_build_object('type', 'deposit', 'account',
	            'acct-' || (i % $BENCH_ACCOUNTS), 'amount', 1))) > 0 FROM generate_series(1, $n) i" >/dev/null
	remaining=$((remaining - n))
done
bpsql -d es_rwide -c "VACUUM ANALYZE es_events" -c "VACUUM ANALYZE es_accounts" >/dev/null
same=$(bpsql -d es_rwide -At -c "SELECT count(*) = 0 FROM (SELECT * FROM es_accounts_at(now()) EXCEPT SELECT * FROM es_accounts) d")
echo "  es_accounts_at(now()) = es_accounts: $same"

timed() {
	bpsql -d es_rwide -At <<SQL | tail -1
\\set t0 \`date +%s%N\`
$1;
\\set t1 \`date +%s%N\`
SELECT (:t1 - :t0) / 1000000;
SQL
}
at_best=""; floor_best=""
for r in $(seq 1 "$BENCH_ROUNDS"); do
	at=$(timed "SELECT count(*) FROM es_accounts_at(now())")
	fl=$(timed "SELECT count(*) FROM (SELECT account_id, sum(amount) FROM es_events WHERE recorded_at <= now() GROUP BY 1) s")
	echo "  es_accounts_at round $r: ${at} ms; SQL floor: ${fl} ms"
	at_best=$(min "$at_best" "$at")
	floor_best=$(min "$floor_best" "$fl")
done

log "results"
echo "es_replay('hot'), $BENCH_HOT_EVENTS events: with snapshots (every $BENCH_INTERVAL) $with_best ms, without $without_best ms; $(awk "BEGIN{printf \"%.0f\", $without_best/($with_best>0?$with_best:0.001)}")x faster; replay = projection: $equal / $equal2"
echo "es_accounts_at(now()), $BENCH_EVENTS events / $BENCH_ACCOUNTS accounts: $at_best ms; SQL floor: $floor_best ms; ratio $(awk "BEGIN{printf \"%.2f\", $at_best/($floor_best>0?$floor_best:1)}"); = es_accounts: $same"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
