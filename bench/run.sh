#!/usr/bin/env bash
# bench/run.sh: es_ledger (C) against bench/reference.sql (plpgsql on heap
# tables), side by side in one scratch cluster.  Run as root on Debian 12:
#
#     bash bench/run.sh                      # BENCH_SECONDS=20 by default
#     BENCH_SECONDS=10 bash bench/run.sh
#
# Measures, alternating es, ref, es, ref (BENCH_ROUNDS rounds):
#   a. one transfer per transaction: pgbench -n -M prepared -c 2 -j 2 -T secs,
#      two random distinct funded accounts per transfer; tps.
#   b. BENCH_DEPOSITS deposits in one transaction (one SELECT over
#      generate_series, psql \timing, commit included); rows/s.
# and prints the best round of each side and the ratio es/ref (>1: es faster).
#
# Settings (environment):
#   BENCH_SECONDS    pgbench duration of each run (20)
#   BENCH_ROUNDS     rounds of es, ref (2)
#   BENCH_CLIENTS    pgbench clients and threads (2)
#   BENCH_ACCOUNTS   funded accounts, named acct-0 .. acct-N-1 (1000)
#   BENCH_DEPOSITS   deposits in the one-transaction test (100000)
#   BENCH_WARMUP     seconds of unrecorded pgbench per side first (3)
#   BENCH_DIAG       1: also one round of each test under
#                    plan_cache_mode=force_generic_plan, as a diagnostic (0)
#   BENCH_SKIP_BUILD 1: use the installed extension, skip install_deps and
#                    build_install (0)
# The cluster is lib.sh's (fsync=off) plus synchronous_commit=off, a large
# max_wal_size and a long checkpoint_timeout; it is removed on exit.
source "$(dirname "${BASH_SOURCE[0]}")/../.ci/lib.sh"

BENCH_SECONDS=${BENCH_SECONDS:-20}
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
BENCH_CLIENTS=${BENCH_CLIENTS:-2}
BENCH_ACCOUNTS=${BENCH_ACCOUNTS:-1000}
BENCH_DEPOSITS=${BENCH_DEPOSITS:-100000}
BENCH_WARMUP=${BENCH_WARMUP:-3}
BENCH_DIAG=${BENCH_DIAG:-0}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
FUND=1000000000			# initial deposit per account; transfers move 1..100
DB=es_bench
START_TIME=$(date +%s)

# psql as postgres on the bench database, quiet, stopping at the first error.
bpsql() { as_pg psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

if [ "$BENCH_SKIP_BUILD" != 1 ]; then
	install_deps
	build_install
fi
start_cluster

log "configuring the cluster"
bench_settings 4GB
SETTINGS=$(bpsql -d postgres -At -c "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name)
	FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', 'shared_buffers', 'max_wal_size')")
PGVERSION=$(bpsql -d postgres -At -c "SHOW server_version")
echo "$SETTINGS"

log "creating database $DB: CREATE EXTENSION es_ledger and bench/reference.sql"
as_pg createdb "$DB"
bpsql -c "CREATE EXTENSION es_ledger"
bpsql <"$ES_ROOT/bench/reference.sql" >/dev/null
BUILD="$(git -C "$ES_ROOT" log -1 --format='%h %s' 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$ES_ROOT" status --porcelain -- src sql Makefile 2>/dev/null)" ]; then
	BUILD="$BUILD (+ uncommitted changes in src/, sql/ or Makefile)"
fi
SO_MD5=$(md5sum "$($PGBIN/pg_config --pkglibdir)/es_ledger.so" | cut -c1-12)

log "opening and funding $BENCH_ACCOUNTS accounts on each side"
bpsql >/dev/null <<SQL
SELECT count(es_open_account('acct-' || i, 'USD')) FROM generate_series(0, $BENCH_ACCOUNTS - 1) i;
SELECT count(es_deposit('acct-' || i, $FUND)) FROM generate_series(0, $BENCH_ACCOUNTS - 1) i;
SELECT count(ref.open_account('acct-' || i, 'USD')) FROM generate_series(0, $BENCH_ACCOUNTS - 1) i;
SELECT count(ref.deposit('acct-' || i, $FUND)) FROM generate_series(0, $BENCH_ACCOUNTS - 1) i;
VACUUM ANALYZE;
SQL

# The pgbench scripts: two distinct random accounts, an amount that never fails.
for side in es ref; do
	fn=es_transfer
	[ $side = ref ] && fn=ref.transfer
	cat >"$ES_TMP/transfer_$side.pgb" <<PGB
\\set a random(0, $BENCH_ACCOUNTS - 1)
\\set d random(1, $BENCH_ACCOUNTS - 1)
\\set b (:a + :d) % $BENCH_ACCOUNTS
\\set amount random(1, 100)
SELECT $fn('acct-' || :a::text, 'acct-' || :b::text, :amount);
PGB
done
fn_of() { if [ "$1" = es ]; then echo "es_$2"; else echo "ref.$2"; fi; }
pgbench_cmd() { echo "pgbench -n -M prepared -c $BENCH_CLIENTS -j $BENCH_CLIENTS -T $2 -f $ES_TMP/transfer_$1.pgb $DB"; }
deposit_sql() {
	echo "SELECT count($(fn_of "$1" deposit)('acct-' || (i % $BENCH_ACCOUNTS), 1)) FROM generate_series(1, $BENCH_DEPOSITS) i"
}

# The same starting point for every run: accounts vacuumed, a fresh checkpoint.
settle() {
	bpsql -c "VACUUM (ANALYZE) es_accounts, ref.accounts" -c "CHECKPOINT" >/dev/null
}

# a. tps of one run; extra environment (PGOPTIONS) may come first.
run_transfers() {
	local side=$1 secs=$2 out
	shift 2
	settle
	if ! out=$(as_pg env "$@" $(pgbench_cmd "$side" "$secs") 2>&1); then
		echo "$out" >&2
		echo "pgbench failed for $side" >&2
		exit 1
	fi
	if ! grep -q '^number of failed transactions: 0 ' <<<"$out"; then
		echo "$out" >&2
		echo "pgbench reported failed transactions for $side" >&2
		exit 1
	fi
	awk '/^tps = / {print $3}' <<<"$out"
}

# b. rows/s of one run of the deposits statement.
run_deposits() {
	local side=$1 out ms
	shift
	settle
	out=$(as_pg env "$@" psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -c '\timing on' -c "$(deposit_sql "$side")")
	ms=$(awk '/^Time: / {print $2}' <<<"$out")
	awk -v n="$BENCH_DEPOSITS" -v ms="$ms" 'BEGIN {printf "%.0f\n", n / (ms / 1000)}'
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

if [ "$BENCH_WARMUP" -gt 0 ]; then
	log "warm-up: ${BENCH_WARMUP}s of transfers per side (not recorded)"
	for side in es ref; do run_transfers $side "$BENCH_WARMUP" >/dev/null; done
fi

declare -A TPS DEP
log "a. one transfer per transaction, ${BENCH_SECONDS}s per run, $BENCH_ROUNDS rounds"
for round in $(seq 1 "$BENCH_ROUNDS"); do
	for side in es ref; do
		TPS[$side]="${TPS[$side]:-} $(run_transfers $side "$BENCH_SECONDS")"
		printf '  round %d %-3s %s tps\n' "$round" "$side" "${TPS[$side]##* }"
	done
done

log "b. $BENCH_DEPOSITS deposits in one transaction, $BENCH_ROUNDS rounds"
for round in $(seq 1 "$BENCH_ROUNDS"); do
	for side in es ref; do
		DEP[$side]="${DEP[$side]:-} $(run_deposits $side)"
		printf '  round %d %-3s %s rows/s\n' "$round" "$side" "${DEP[$side]##* }"
	done
done

if [ "$BENCH_DIAG" = 1 ]; then
	log "diagnostic: one round of each under plan_cache_mode=force_generic_plan"
	for side in es ref; do
		TPS[g$side]=$(run_transfers $side "$BENCH_SECONDS" PGOPTIONS="-c plan_cache_mode=force_generic_plan")
		printf '  %-3s %s tps\n' "$side" "${TPS[g$side]}"
	done
	for side in es ref; do
		DEP[g$side]=$(run_deposits $side PGOPTIONS="-c plan_cache_mode=force_generic_plan")
		printf '  %-3s %s rows/s\n' "$side" "${DEP[g$side]}"
	done
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

log "checking both sides after the runs"
# Same money moved in on both sides, so both totals must be this:
deposits_total=$((BENCH_ACCOUNTS * FUND + BENCH_DEPOSITS * (BENCH_ROUNDS + BENCH_DIAG)))
CHECKS=$(bpsql -At -F ' ' <<SQL
SELECT 'es  total balance', sum(balance) = $deposits_total, sum(balance) FROM es_accounts;
SELECT 'ref total balance', sum(balance) = $deposits_total, sum(balance) FROM ref.accounts;
SELECT 'es  conservation', (SELECT sum(balance) FROM es_accounts)
	= (SELECT sum(amount) FILTER (WHERE type IN ('Deposited', 'Withdrawn')) FROM es_events),
	(SELECT count(*) FROM es_events);
SELECT 'es  replay = projection (20 accounts)',
	bool_and(r.balance = a.balance AND r.version = a.version AND r.last_seq = a.last_seq
			 AND r.last_hash = a.last_hash), count(*)
FROM (SELECT * FROM es_accounts ORDER BY account_id LIMIT 20) a,
	LATERAL es_replay(a.account) r;
SELECT 'ref ' || check_name, ok, checked FROM ref.verify();
SQL
)
echo "$CHECKS"
CHECKS_OK=yes
grep -q ' f ' <<<"$CHECKS" && CHECKS_OK=NO

# best of the rounds, and the spread (max-min)/max in percent
best() { tr ' ' '\n' <<<"$1" | awk 'NF {if ($1 > m) m = $1} END {printf "%.0f", m}'; }
spread() { tr ' ' '\n' <<<"$1" | awk 'NF {if (n++ == 0 || $1 < lo) lo = $1; if ($1 > hi) hi = $1} END {printf "%.0f", hi ? 100 * (hi - lo) / hi : 0}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }

ta=$(best "${TPS[es]}"); tr_=$(best "${TPS[ref]}")
da=$(best "${DEP[es]}"); dr=$(best "${DEP[ref]}")
NOISY=""
for v in "${TPS[es]}" "${TPS[ref]}" "${DEP[es]}" "${DEP[ref]}"; do
	[ "$(spread "$v")" -gt 10 ] && NOISY="yes: rounds of one side differ by more than 10%"
done
[ -z "$NOISY" ] && NOISY="no (rounds of each side within 10%)"

log "results"
cat <<REPORT
es_ledger vs ref (plpgsql), PostgreSQL $PGVERSION, $(nproc) CPUs, best of $BENCH_ROUNDS rounds
build:    $BUILD, es_ledger.so md5 $SO_MD5
settings: $SETTINGS
load:     $LOAD_BEFORE before, $LOAD_AFTER after; noisy: $NOISY
checks:   all passed: $CHECKS_OK

| measurement                                    |   es_ledger |         ref | es/ref |
|------------------------------------------------|-------------|-------------|--------|
$(printf '| a. transfer, 1 per txn, %d clients (tps)        | %11s | %11s | %6s |' "$BENCH_CLIENTS" "$ta" "$tr_" "$(ratio "$ta" "$tr_")")
$(printf '| b. %-6s deposits in 1 txn (rows/s)          | %11s | %11s | %6s |' "$BENCH_DEPOSITS" "$da" "$dr" "$(ratio "$da" "$dr")")
REPORT
if [ "$BENCH_DIAG" = 1 ]; then
	printf '| a. with plan_cache_mode=force_generic_plan    | %11s | %11s | %6s |\n' \
		"${TPS[ges]%.*}" "${TPS[gref]%.*}" "$(ratio "${TPS[ges]}" "${TPS[gref]}")"
	printf '| b. with plan_cache_mode=force_generic_plan    | %11s | %11s | %6s |\n' \
		"${DEP[ges]}" "${DEP[gref]}" "$(ratio "${DEP[ges]}" "${DEP[gref]}")"
fi
cat <<REPORT

all rounds (es | ref):
  a. tps:    ${TPS[es]# } | ${TPS[ref]# }
  b. rows/s: ${DEP[es]# } | ${DEP[ref]# }

commands (as postgres, database $DB, alternating es, ref per round):
  a. $(pgbench_cmd es "$BENCH_SECONDS")
     $(pgbench_cmd ref "$BENCH_SECONDS")
     script ($ES_TMP/transfer_es.pgb; the ref one calls ref.transfer):
$(sed 's/^/       /' "$ES_TMP/transfer_es.pgb")
  b. psql -X -d $DB -c '\\timing on' -c "$(deposit_sql es)"
     psql -X -d $DB -c '\\timing on' -c "$(deposit_sql ref)"
  each run is preceded by VACUUM (ANALYZE) es_accounts, ref.accounts; CHECKPOINT
  run as: BENCH_SECONDS=$BENCH_SECONDS BENCH_ROUNDS=$BENCH_ROUNDS BENCH_CLIENTS=$BENCH_CLIENTS BENCH_ACCOUNTS=$BENCH_ACCOUNTS BENCH_DEPOSITS=$BENCH_DEPOSITS bash bench/run.sh
  total time: $(($(date +%s) - START_TIME))s
REPORT
[ "$CHECKS_OK" = yes ]
