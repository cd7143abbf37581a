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
# Each run is timed from the client (commit included), and by the CPU time
# the backend spent (/proc/self/stat, read before and after by the same
# session: other load on a shared machine disturbs it less), and checked:
# exactly the non-rejected commands registered, the others not.  Reported:
# the best round of each side, commands/s and commands per backend CPU
# second, and the ratios each/loop and each/psql.
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
bench_settings 4GB
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
-- CPU time (user + system, clock ticks) of this backend so far.
CREATE FUNCTION bench_cpu() RETURNS bigint LANGUAGE sql AS \$\$
	SELECT f[12]::bigint + f[13]::bigint
	  FROM (SELECT string_to_array(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' ') AS f) s
\$\$;
VACUUM ANALYZE;
SQL

EXPECT_OK=$((BENCH_COMMANDS - BENCH_COMMANDS / BENCH_REJECT))
EXPECT_REJ=$((BENCH_COMMANDS / BENCH_REJECT))

settle() {
	bpsql -c "VACUUM (ANALYZE) es_accounts" -c "CHECKPOINT" >/dev/null
}

# Make the commands of a run and the psql script that applies them: the
# side's statements between two readings of the backend's CPU time.
prepare() {
	local tag=$1 side=$2
	bpsql -c "INSERT INTO bench_runs SELECT '$tag', bench_commands('$tag')"
	{
		echo 'SELECT bench_cpu() AS cpu0 \gset'
		case $side in
		each)
			echo "SELECT count(r.seq) FROM bench_runs b, es_apply_each(b.cmds) r WHERE b.tag = '$tag';"
			;;
		loop)
			echo "SELECT count(r.seq) FROM bench_runs b, bench_loop(b.cmds) r WHERE b.tag = '$tag';"
			;;
		psql)
			echo '\set ON_ERROR_ROLLBACK on'
			echo 'BEGIN;'
			bpsql -At -c "SELECT format('SELECT es_apply(%L);', value) FROM bench_runs, jsonb_array_elements(cmds) WHERE tag = '$tag'"
			echo 'COMMIT;'
			;;
		esac
		echo 'SELECT bench_cpu() - :cpu0 AS ticks \gset'
		echo '\echo ticks :ticks'
	} >"$ES_TMP/$tag.sql"
	chown postgres: "$ES_TMP/$tag.sql"
}

# The commands applied and rejected since the run began, from the register.
check_run() {
	local tag=$1 side=$2 got
	got=$(bpsql -At -F ' ' -c "SELECT count(c.command_id), count(*) - count(c.command_id)
		FROM bench_runs r CROSS JOIN jsonb_array_elements(r.cmds) e
		LEFT JOIN es_commands c ON c.command_id = e->>'id' WHERE r.tag = '$tag'")
	if [ "$got" != "$EXPECT_OK $EXPECT_REJ" ]; then
		echo "run $tag ($side): applied/rejected $got, expected $EXPECT_OK $EXPECT_REJ" >&2
		exit 1
	fi
}

# One run of a side: "commands/s by the clock, commands per CPU second of
# the backend".  The clock is read by this script around psql (connection
# and commit included); the CPU time from /proc/self/stat of the backend.
run_side() {
	local side=$1 round=$2 tag="$1-$2" t0 t1 out ticks
	prepare "$tag" "$side"
	settle
	t0=$(date +%s.%N)
	out=$(as_pg psql -X -q -At -d "$DB" -f "$ES_TMP/$tag.sql" 2>"$ES_TMP/$tag.err")
	t1=$(date +%s.%N)
	check_run "$tag" "$side"
	ticks=$(awk '/^ticks / {print $2}' <<<"$out")
	awk -v n="$BENCH_COMMANDS" -v a="$t0" -v b="$t1" -v t="$ticks" -v hz="$(getconf CLK_TCK)" \
		'BEGIN {printf "%.0f %.0f\n", n / (b - a), n / (t / hz)}'
}

SIDES="each loop psql"
[ "$BENCH_SKIP_PSQL" = 1 ] && SIDES="each loop"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A RATE CPU
log "$BENCH_COMMANDS transfers per run, 1 in $BENCH_REJECT rejected, $BENCH_ROUNDS rounds"
for round in $(seq 1 "$BENCH_ROUNDS"); do
	for side in $SIDES; do
		read -r rate cpu <<<"$(run_side "$side" "$round")"
		RATE[$side]="${RATE[$side]:-} $rate"
		CPU[$side]="${CPU[$side]:-} $cpu"
		printf '  round %d %-4s %7s commands/s, %7s commands per backend CPU second\n' "$round" "$side" "$rate" "$cpu"
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
row() {
	local side=$1 label=$2 r c
	r=$(best "${RATE[$side]}")
	c=$(best "${CPU[$side]}")
	if [ "$side" = each ]; then
		printf '| %-60s | %10s |             | %10s |             |\n' "$label" "$r" "$c"
	else
		printf '| %-60s | %10s | %11s | %10s | %11s |\n' "$label" "$r" "$(ratio "$(best "${RATE[each]}")" "$r")" \
			"$c" "$(ratio "$(best "${CPU[each]}")" "$c")"
	fi
}
cat <<REPORT
es_apply_each vs es_apply per statement, PostgreSQL $PGVERSION, $(nproc) CPUs, best of $BENCH_ROUNDS rounds
build:    $BUILD
settings: $SETTINGS
load:     $LOAD_BEFORE before, $LOAD_AFTER after
checks:   all passed: $CHECKS_OK
commands: $BENCH_COMMANDS transfers with ids over $BENCH_ACCOUNTS accounts, 1 in $BENCH_REJECT rejected (ES001)

| side                                                         | commands/s | each / side | per CPU s  | each / side |
|--------------------------------------------------------------|------------|-------------|------------|-------------|
$(row each "each: es_apply_each(array), one statement")
$(row loop "loop: plpgsql, es_apply in an exception block per command")
$([ "$BENCH_SKIP_PSQL" = 1 ] || row psql "psql: SELECT es_apply(...) per statement, ON_ERROR_ROLLBACK")

commands/s: by the clock, around psql (commit included); per CPU s: per second of the
backend's CPU time (user + system, /proc/self/stat), which other load on the machine
disturbs less.
all rounds, commands/s: each:${RATE[each]}; loop:${RATE[loop]}${RATE[psql]:+; psql:${RATE[psql]}}
all rounds, per CPU s:  each:${CPU[each]}; loop:${CPU[loop]}${CPU[psql]:+; psql:${CPU[psql]}}
commands (as postgres, database $DB; each run's array in bench_runs.cmds, tag SIDE-ROUND):
  each: SELECT count(r.seq) FROM bench_runs b, es_apply_each(b.cmds) r WHERE b.tag = 'each-1';
  loop: SELECT count(r.seq) FROM bench_runs b, bench_loop(b.cmds) r WHERE b.tag = 'loop-1';
  psql: \\set ON_ERROR_ROLLBACK on; BEGIN; SELECT es_apply('{...}'); (one per command) COMMIT;
  each by psql -X -q -At -d $DB -f SIDE-ROUND.sql, preceded by VACUUM (ANALYZE) es_accounts; CHECKPOINT
  run as: BENCH_ROUNDS=$BENCH_ROUNDS BENCH_COMMANDS=$BENCH_COMMANDS BENCH_ACCOUNTS=$BENCH_ACCOUNTS BENCH_REJECT=$BENCH_REJECT bash bench/apply_each.sh
  total time: $(($(date +%s) - START_TIME))s
REPORT
[ "$CHECKS_OK" = yes ]
