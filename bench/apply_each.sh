#!/usr/bin/env bash
# bench/apply_each.sh: es_apply_each against the same commands applied one
# es_apply per statement in one transaction, where a rejected command must
# be undone on its own (a savepoint per statement).  Run as root on Debian 12:
#
#     bash bench/apply_each.sh               # BENCH_ROUNDS=3 by default
#
# Each run applies BENCH_COMMANDS (10000) new transfers between random
# distinct accounts of BENCH_ACCOUNTS (1000) funded ones, every one with an
# id; every tenth asks for more than any account holds and is rejected
# (ES001).  Sides, alternating in each round:
#   each:  SELECT ... FROM es_apply_each(<the array>)      one statement
#   loop:  a plpgsql function looping over the array, es_apply in an
#          exception block per command (a subtransaction per command)
#   psql:  a psql script BEGIN; SELECT es_apply('{...}'); x N; COMMIT; with
#          \set ON_ERROR_ROLLBACK on (psql wraps every statement in a
#          SAVEPOINT and RELEASEs or rolls back to it: 3 round trips each)
# Each run is timed from the client (commit included) and checked: exactly
# the non-rejected commands applied, the others ES001.  Reported: commands/s
# of the best round of each side and the ratios each/loop and each/psql.
#
# Settings (environment):
#   BENCH_ROUNDS     rounds of each, loop, psql (3)
#   BENCH_COMMANDS   commands per run (10000)
#   BENCH_ACCOUNTS   funded accounts (1000)
#   BENCH_REJECT     one command in BENCH_REJECT is rejected (10)
#   BENCH_SKIP_PSQL  1: leave the psql side out (0)
#   BENCH_SKIP_BUILD 1: use the installed extension (0)
# The cluster is lib.sh's (fsync=off) plus synchronous_commit=off, as
# bench/run.sh's; it is removed on exit.
source "$(dirname "${BASH_SOURCE[0]}")/../.ci/lib.sh"

BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_COMMANDS=${BENCH_COMMANDS:-10000}
BENCH_ACCOUNTS=${BENCH_ACCOUNTS:-1000}
BENCH_REJECT=${BENCH_REJECT:-10}
BENCH_SKIP_PSQL=${BENCH_SKIP_PSQL:-0}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
FUND=1000000000			# initial deposit per account; transfers move 1..100
DB=es_bench
START_TIME=$(date +%s)

bpsql() { as_pg psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

if [ "$BENCH_SKIP_BUILD" != 1 ]; then
	install_deps
	build_install
fi
start_cluster

log "configuring the cluster"
bpsql -d postgres >/dev/null <<'SQL'
ALTER SYSTEM SET synchronous_commit = off;
ALTER SYSTEM SET max_wal_size = '4GB';
ALTER SYSTEM SET checkpoint_timeout = '30min';
SELECT pg_reload_conf();
SQL
sleep 0.5
SETTINGS=$(bpsql -d postgres -At -c "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name)
	FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', 'shared_buffers', 'max_wal_size', 'max_locks_per_transaction', 'max_connections')")
PGVERSION=$(bpsql -d postgres -At -c "SHOW server_version")
echo "$SETTINGS"

log "creating database $DB with $BENCH_ACCOUNTS funded accounts"
as_pg createdb "$DB"
bpsql >/dev/null <<SQL
CREATE EXTENSION es_ledger;
SELECT count(es_open_account('acct-' || i, 'USD')) FROM generate_series(0, $BENCH_ACCOUNTS - 1) i;
SELECT count(es_deposit('acct-' || i, $FUND)) FROM generate_series(0, $BENCH_ACCOUNTS - 1) i;
-- The commands of each run: new ids, random distinct accounts, every
-- BENCH_REJECT-th one more than any account holds (ES001).
CREATE FUNCTION bench_commands(tag text) RETURNS jsonb LANGUAGE sql AS \$\$
	SELECT jsonb_agg(jsonb_build_object('type', 'transfer', 'id', tag || '-' || i,
			'from', 'acct-' || a, 'to', 'acct-' || ((a + 1 + (random() * ($BENCH_ACCOUNTS - 2))::int) % $BENCH_ACCOUNTS),
			'amount', CASE WHEN i % $BENCH_REJECT = 0 THEN $FUND::bigint * 1000 ELSE 1 + (random() * 99)::int END)
		ORDER BY i)
	  FROM (SELECT i, (random() * ($BENCH_ACCOUNTS - 1))::int AS a
	          FROM generate_series(1, $BENCH_COMMANDS) i) s
\$\$;
-- The loop side: es_apply per command, each in an exception block.
CREATE FUNCTION bench_loop(cmds jsonb) RETURNS TABLE(ord int, seq bigint, state text)
LANGUAGE plpgsql AS \$\$
DECLARE c jsonb;
BEGIN
	ord := 0;
	FOR c IN SELECT value FROM jsonb_array_elements(cmds) LOOP
		ord := ord + 1;
		BEGIN
			seq := es_apply(c);
			state := NULL;
		EXCEPTION WHEN OTHERS THEN
			seq := NULL;
			state := SQLSTATE;
		END;
		RETURN NEXT;
	END LOOP;
END \$\$;
CREATE TABLE bench_runs(tag text PRIMARY KEY, cmds jsonb);
VACUUM ANALYZE;
SQL

EXPECT_OK=$((BENCH_COMMANDS - BENCH_COMMANDS / BENCH_REJECT))
EXPECT_REJ=$((BENCH_COMMANDS / BENCH_REJECT))

settle() {
	bpsql -c "VACUUM (ANALYZE) es_accounts" -c "CHECKPOINT" >/dev/null
}

# Make the commands of a run, and the psql script of the psql side.
prepare() {
	local tag=$1
	bpsql -c "INSERT INTO bench_runs SELECT '$tag', bench_commands('$tag')"
	if [ "${tag%%-*}" = psql ]; then
		{
			echo '\set ON_ERROR_ROLLBACK on'
			echo 'BEGIN;'
			bpsql -At -c "SELECT format('SELECT es_apply(%L);', value) FROM bench_runs, jsonb_array_elements(cmds) WHERE tag = '$tag'"
			echo 'COMMIT;'
		} >"$ES_TMP/$tag.sql"
		chown postgres: "$ES_TMP/$tag.sql"
	fi
}

# The commands applied and rejected (ES001) since the run began.
check_run() {
	local tag=$1 side=$2 got
	got=$(bpsql -At -F ' ' -c "SELECT count(*) FILTER (WHERE c.command_id IS NOT NULL),
		(SELECT count(*) FROM bench_runs, jsonb_array_elements(cmds) e WHERE tag = '$tag') - count(c.command_id)
		FROM bench_runs r, jsonb_array_elements(r.cmds) e LEFT JOIN es_commands c ON c.command_id = e->>'id'
		WHERE r.tag = '$tag'")
	if [ "$got" != "$EXPECT_OK $EXPECT_REJ" ]; then
		echo "run $tag ($side): applied/rejected $got, expected $EXPECT_OK $EXPECT_REJ" >&2
		exit 1
	fi
}

# Commands per second of one run of a side.
run_side() {
	local side=$1 round=$2 tag="$1-$2" t0 t1 out
	prepare "$tag"
	settle
	t0=$(date +%s.%N)
	case $side in
	each)
		out=$(bpsql -At -c "SELECT count(r.seq), count(*) FILTER (WHERE r.sqlstate = 'ES001')
			FROM bench_runs b, es_apply_each(b.cmds) r WHERE b.tag = '$tag'")
		;;
	loop)
		out=$(bpsql -At -c "SELECT count(r.seq), count(*) FILTER (WHERE r.state = 'ES001')
			FROM bench_runs b, bench_loop(b.cmds) r WHERE b.tag = '$tag'")
		;;
	psql)
		as_pg psql -X -q -d "$DB" -f "$ES_TMP/$tag.sql" >/dev/null 2>"$ES_TMP/$tag.err"
		out="$(grep -c '^psql.*ERROR:  insufficient funds' "$ES_TMP/$tag.err" || true)"
		;;
	esac
	t1=$(date +%s.%N)
	check_run "$tag" "$side"
	awk -v n="$BENCH_COMMANDS" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f\n", n / (b - a)}'
}

SIDES="each loop psql"
[ "$BENCH_SKIP_PSQL" = 1 ] && SIDES="each loop"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A RATE
log "$BENCH_COMMANDS transfers per run, 1 in $BENCH_REJECT rejected, $BENCH_ROUNDS rounds"
for round in $(seq 1 "$BENCH_ROUNDS"); do
	for side in $SIDES; do
		RATE[$side]="${RATE[$side]:-} $(run_side "$side" "$round")"
		printf '  round %d %-4s %s commands/s\n' "$round" "$side" "${RATE[$side]##* }"
	done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

log "checking the ledger after the runs"
CHECKS=$(bpsql -At -F ' ' <<SQL
SELECT 'total balance', sum(balance) = $BENCH_ACCOUNTS::bigint * $FUND, sum(balance) FROM es_accounts;
SELECT 'es_verify ' || check_name, ok, checked FROM es_verify();
SQL
)
echo "$CHECKS"
CHECKS_OK=yes
grep -q ' f ' <<<"$CHECKS" && CHECKS_OK=NO

best() { tr ' ' '\n' <<<"$1" | awk 'NF {if ($1 > m) m = $1} END {printf "%.0f", m}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }
BUILD="$(git -C "$ES_ROOT" log -1 --format='%h %s' 2>/dev/null || echo unknown)"

log "results"
cat <<REPORT
es_apply_each vs es_apply per statement, PostgreSQL $PGVERSION, $(nproc) CPUs, best of $BENCH_ROUNDS rounds
build:    $BUILD
settings: $SETTINGS
load:     $LOAD_BEFORE before, $LOAD_AFTER after
checks:   all passed: $CHECKS_OK
commands: $BENCH_COMMANDS transfers with ids over $BENCH_ACCOUNTS accounts, 1 in $BENCH_REJECT rejected (ES001)

| side                                                        | commands/s | each / side |
|-------------------------------------------------------------|------------|-------------|
$(printf '| each: es_apply_each(array), 1 statement                     | %10s |             |' "$(best "${RATE[each]}")")
$(printf '| loop: plpgsql, es_apply in an exception block per command   | %10s | %11s |' "$(best "${RATE[loop]}")" "$(ratio "$(best "${RATE[each]}")" "$(best "${RATE[loop]}")")")
REPORT
if [ "$BENCH_SKIP_PSQL" != 1 ]; then
	printf '| psql: SELECT es_apply(...) per statement, ON_ERROR_ROLLBACK | %10s | %11s |\n' \
		"$(best "${RATE[psql]}")" "$(ratio "$(best "${RATE[each]}")" "$(best "${RATE[psql]}")")"
fi
cat <<REPORT

all rounds (commands/s): each:${RATE[each]}; loop:${RATE[loop]}${RATE[psql]:+; psql:${RATE[psql]}}
commands (as postgres, database $DB; each run's array in bench_runs.cmds):
  each: SELECT count(r.seq), count(*) FILTER (WHERE r.sqlstate = 'ES001') FROM bench_runs b, es_apply_each(b.cmds) r WHERE b.tag = TAG
  loop: the same with bench_loop(b.cmds) (see this script)
  psql: psql -X -q -d $DB -f TAG.sql  (\\set ON_ERROR_ROLLBACK on; BEGIN; SELECT es_apply('{...}'); ...; COMMIT;)
  each run is preceded by VACUUM (ANALYZE) es_accounts; CHECKPOINT, and timed from the client
  run as: BENCH_ROUNDS=$BENCH_ROUNDS BENCH_COMMANDS=$BENCH_COMMANDS BENCH_ACCOUNTS=$BENCH_ACCOUNTS BENCH_REJECT=$BENCH_REJECT bash bench/apply_each.sh
  total time: $(($(date +%s) - START_TIME))s
REPORT
[ "$CHECKS_OK" = yes ]
