#!/usr/bin/env bash
# bench/verify.sh: es_verify() over a ledger of BENCH_EVENTS events in
# BENCH_ACCOUNTS accounts (defaults 1,000,000 and 10,000), best of
# BENCH_ROUNDS runs, in events per second; es_verify runs in one backend,
# so this is per core.  Also times es_digest(), and es_accounts_at(now())
# against the plain-SQL floor SELECT account_id, sum(amount) FROM es_events
# WHERE recorded_at <= now() GROUP BY 1.
# Run as root on Debian 12 (after building; ES_PGBIN picks a PostgreSQL
# copy, see README, Contributing):
#
#     bash bench/verify.sh
#     BENCH_EVENTS=200000 bash bench/verify.sh
source "$(dirname "${BASH_SOURCE[0]}")/../.ci/lib.sh"

BENCH_EVENTS=${BENCH_EVENTS:-1000000}
BENCH_ACCOUNTS=${BENCH_ACCOUNTS:-10000}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
	install_deps
	build_install
fi
start_cluster
bpsql() { as_pg psql -X -q -v ON_ERROR_STOP=1 -d es_vbench "$@"; }
as_pg createdb es_vbench

log "building a ledger of $BENCH_EVENTS events in $BENCH_ACCOUNTS accounts"
bpsql <<SQL
CREATE EXTENSION es_ledger;
SELECT count(es_open_account('acct-' || i, 'USD')) FROM generate_series(0, $BENCH_ACCOUNTS - 1) i;
SQL
remaining=$((BENCH_EVENTS - BENCH_ACCOUNTS))
while [ $remaining -gt 0 ]; do
	n=$(( remaining < 100000 ? remaining : 100000 ))
	bpsql -c "SELECT es_apply(jsonb_agg(jsonb_build_object('type', 'deposit', 'account',
	            'acct-' || (i % $BENCH_ACCOUNTS), 'amount', 1))) > 0 FROM generate_series(1, $n) i" >/dev/null
	remaining=$((remaining - n))
done
bpsql -c "VACUUM ANALYZE es_events" -c "VACUUM ANALYZE es_accounts" >/dev/null

log "timing"
best=""
for r in $(seq 1 "$BENCH_ROUNDS"); do
	ms=$(bpsql -At <<'SQL' | tail -1
\set t0 `date +%s%N`
SELECT count(*) FROM es_verify() WHERE ok;
\set t1 `date +%s%N`
SELECT (:t1 - :t0) / 1000000;
SQL
)
	echo "  es_verify round $r: ${ms} ms"
	if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
done
ok=$(bpsql -At -c "SELECT count(*) FROM es_verify() WHERE ok")
events=$(bpsql -At -c "SELECT count(*) FROM es_events")
digest_ms=$(bpsql -At <<'SQL' | tail -1
\set t0 `date +%s%N`
SELECT seq AS s, digest AS d FROM es_digest() \gset
\set t1 `date +%s%N`
SELECT (:t1 - :t0) / 1000000;
SQL
)
# es_accounts_at against the plain-SQL floor of the same question
timed() {
	bpsql -At <<SQL | tail -1
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
	if [ -z "$at_best" ] || [ "$at" -lt "$at_best" ]; then at_best=$at; fi
	if [ -z "$floor_best" ] || [ "$fl" -lt "$floor_best" ]; then floor_best=$fl; fi
done

log "results"
echo "es_verify: $events events, $ok of 8 checks ok, best of $BENCH_ROUNDS: $best ms = $(( events * 1000 / (best > 0 ? best : 1) )) events/s"
echo "es_digest: $digest_ms ms"
echo "es_accounts_at(now()): $at_best ms; SQL floor (sum(amount) GROUP BY account_id): $floor_best ms; ratio $(awk "BEGIN{printf \"%.2f\", $at_best/($floor_best>0?$floor_best:1)}")"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
