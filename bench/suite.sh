#!/usr/bin/env bash
# bench/suite.sh: the benchmark suite.  One command, run as root on Debian 12
# from the repository root:
#
#     bash bench/suite.sh                 # SCALE=1: a few minutes
#     SCALE=0.2 bash bench/suite.sh       # a quick look
#
# It builds and installs the extension (BENCH_SKIP_BUILD=1 to skip), starts
# its own scratch cluster (.ci/lib.sh: fsync=off; here also
# synchronous_commit=off), loads es_ledger and bench/reference.sql (the
# plain-SQL ledger with the same guarantees, hash chain included) into one
# database, and measures side by side in the same run:
#
#   T2, T8   one transfer per transaction, pgbench -M prepared -c 2 / -c 8 (tps)
#   F2, F8   the floor: a transaction appending two rows of the log's shape in
#            one INSERT into a heap with the log's indexes, -c 2 / -c 8 (tps)
#   B        100,000 transfers in one transaction, es as 100 es_apply calls of
#            an array of 1,000 transfers, ref as 100 statements of 1,000
#            ref.transfer calls (transfers/s)
#   B0       B again with es_ledger.snapshot_interval = 0: what automatic
#            snapshots cost a batch in this run.  An account's snapshot is
#            folded from the log when its version crosses a multiple of the
#            interval (1000), about one event read per event appended on
#            average; the accounts here move in step, so a B run pays for
#            none of them or for most at once (its 200 events an account
#            cross a multiple or not), and B0 tells which it was.
#   C        the same 100,000 in one transaction, one es_transfer call per
#            command (100 statements of 1,000 calls) (transfers/s)
#   H1       hot account: one deposit per transaction, pgbench -c 1 (tps)
#   Hn       hot account: n deposits to one account in one transaction, es as
#            one es_apply of an array of n, ref as one statement of n
#            ref.deposit calls, n = 1,000 / 10,000 / 100,000 (deposits/s)
#   E        es_apply_each of 100,000 transfers (one in ten rejected), ref a
#            plpgsql loop with a subtransaction per command: commands/s and
#            peak backend memory (RssAnon of the backend, sampled; the
#            input array built and stored before the measured statement)
#   floors   the 200,000 event rows written by B copied (INSERT ... SELECT)
#            into a heap of the log's shape without and with its indexes
#            (rows/s, bytes/row)
#   bytes    bytes per event on disk: es_events with its indexes plus
#            es_transfers; ref.events with its indexes
#
# and prints one table (es_ledger, reference, ratio, es as a fraction of the
# floor) followed by the issue 17 targets, met or not.  With gnuplot (installed
# if missing) it also draws the chart to BENCH_CHART (doc/performance.png).
#
# Settings (environment):
#   SCALE            multiplies every count and duration (1); counts are
#                    rounded to whole batches of 1,000 (at least one)
#   BENCH_SECONDS    pgbench seconds per run at SCALE=1 (10)
#   BENCH_ACCOUNTS   funded accounts (1000)
#   BENCH_CHART      where the PNG goes (doc/performance.png); "" for none
#   BENCH_TABLE      where the table is also written (doc/performance.md
#                    when BENCH_CHART is the default); "" for none
#   BENCH_REF_TIMEOUT seconds a reference hot-account batch may take (300);
#                    past it the table shows an upper bound (<n/s)
#   BENCH_ROUNDS     rounds of the pgbench workloads (T2, T8, H1), the sides
#                    alternating, best round of each side kept (2)
#   BENCH_SKIP_BUILD 1: use the installed extension (0)
#   ES_PGBIN         the PostgreSQL 15 bin directory (Debian's by default)
# The numbers are wall-clock: the machine's load is printed with them, and
# only ratios measured side by side in this run should be compared.
source "$(dirname "${BASH_SOURCE[0]}")/../.ci/lib.sh"

SCALE=${SCALE:-1}
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_ACCOUNTS=${BENCH_ACCOUNTS:-1000}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
BENCH_REF_TIMEOUT=${BENCH_REF_TIMEOUT:-300}
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
BENCH_CHART=${BENCH_CHART-$ES_ROOT/doc/performance.png}
if [ "$BENCH_CHART" = "$ES_ROOT/doc/performance.png" ]; then
	BENCH_TABLE=${BENCH_TABLE-$ES_ROOT/doc/performance.md}
else
	BENCH_TABLE=${BENCH_TABLE-}
fi
FUND=1000000000000		# initial deposit per account; transfers move 1
DB=es_bench
START_TIME=$(date +%s)

# n scaled by SCALE, rounded to whole thousands (at least 1000).
scaled() { awk -v n="$1" -v s="$SCALE" 'BEGIN {k = int(n * s / 1000 + 0.5); if (k < 1) k = 1; print k * 1000}'; }
SECS=$(awk -v n="$BENCH_SECONDS" -v s="$SCALE" 'BEGIN {k = int(n * s + 0.5); if (k < 3) k = 3; print k}')
NTRANS=$(scaled 100000)
HOT1=$(scaled 1000)
HOT2=$(scaled 10000)
HOT3=$(scaled 100000)
NEACH=$(scaled 100000)

bpsql() { as_pg psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN {printf "%.0f", n / (b - a)}'; }

if [ "$BENCH_SKIP_BUILD" != 1 ]; then
	install_deps
	build_install
fi
if [ -n "$BENCH_CHART" ] && ! command -v gnuplot >/dev/null; then
	log "installing gnuplot-nox"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null
fi
start_cluster

log "configuring the cluster"
bench_settings 8GB
SETTINGS=$(bpsql -d postgres -At -c "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name)
	FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', 'shared_buffers', 'max_wal_size')")
PGVERSION=$(bpsql -d postgres -At -c "SHOW server_version")
BUILD="$(git -C "$ES_ROOT" log -1 --format='%h %s' 2>/dev/null | cut -c1-70 || echo unknown)"
if [ -n "$(git -C "$ES_ROOT" status --porcelain -- src sql Makefile 2>/dev/null)" ]; then
	BUILD="$BUILD (+ uncommitted changes)"
fi
BUILD="$BUILD; es_ledger.so md5 $(md5sum "$($PGBIN/pg_config --pkglibdir)/es_ledger.so" | cut -c1-12)"

log "creating $DB: es_ledger, bench/reference.sql, $BENCH_ACCOUNTS funded accounts a side"
as_pg createdb "$DB"
bpsql -c "CREATE EXTENSION es_ledger"
bpsql <"$ES_ROOT/bench/reference.sql" >/dev/null
bpsql >/dev/null <<SQL
SELECT count(es_open_account('acct-' || i, 'USD')) FROM generate_series(0, $BENCH_ACCOUNTS - 1) i;
SELECT count(es_deposit('acct-' || i, $FUND)) FROM generate_series(0, $BENCH_ACCOUNTS - 1) i;
SELECT count(ref.open_account('acct-' || i, 'USD')) FROM generate_series(0, $BENCH_ACCOUNTS - 1) i;
SELECT count(ref.deposit('acct-' || i, $FUND)) FROM generate_series(0, $BENCH_ACCOUNTS - 1) i;
SELECT es_open_account('hot-' || h, 'USD'), ref.open_account('hot-' || h, 'USD')
  FROM unnest(ARRAY['1', 's1', 's2', 's3']) h;
-- The floor: a heap of the log's shape, with and without the log's indexes.
CREATE SCHEMA floor;
CREATE TABLE floor.bare (LIKE es_events INCLUDING DEFAULTS);
CREATE TABLE floor.log (LIKE es_events INCLUDING DEFAULTS);
ALTER TABLE floor.log ADD PRIMARY KEY (seq), ADD UNIQUE (account_id, version);
CREATE INDEX ON floor.log (command_id) WHERE command_id IS NOT NULL;
CREATE UNIQUE INDEX ON floor.log ((data ->> 'account')) WHERE type = 'AccountOpened';
CREATE INDEX ON floor.log (tx, seq);
CREATE TABLE floor.tps (LIKE floor.log INCLUDING ALL);
CREATE SEQUENCE floor.seq;
VACUUM ANALYZE;
SQL

# pgbench scripts: two distinct random accounts, an amount that never fails.
for side in es ref; do
	fn=es_transfer
	[ $side = ref ] && fn=ref.transfer
	cat >"$ES_TMP/transfer_$side.pgb" <<PGB
\\set a random(0, $BENCH_ACCOUNTS - 1)
\\set d random(1, $BENCH_ACCOUNTS - 1)
\\set b (:a + :d) % $BENCH_ACCOUNTS
SELECT $fn('acct-' || :a::text, 'acct-' || :b::text, 1);
PGB
	fn=es_deposit
	[ $side = ref ] && fn=ref.deposit
	echo "SELECT $fn('hot-1', 1);" >"$ES_TMP/hot_$side.pgb"
done

# tps of one pgbench run: script, clients, seconds.
pgb() {
	local out
	if ! out=$(as_pg pgbench -n -M prepared -c "$2" -j "$2" -T "$3" -f "$1" "$DB" 2>&1) ||
		! grep -q '^number of failed transactions: 0 ' <<<"$out"; then
		echo "$out" >&2
		echo "pgbench failed: $1" >&2
		exit 1
	fi
	awk '/^tps = / {printf "%.0f", $3}' <<<"$out"
}
settle() { bpsql -c "VACUUM (ANALYZE) es_accounts, ref.accounts" -c "CHECKPOINT" >/dev/null; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A R	# results: R[key.side], side es, ref or floor

log "warm-up (${SECS}s a side, not recorded)"
pgb "$ES_TMP/transfer_es.pgb" 2 "$SECS" >/dev/null
pgb "$ES_TMP/transfer_ref.pgb" 2 "$SECS" >/dev/null

# The floor's two-row transaction: the two events of a transfer, with the
# data a real transfer wrote, in one INSERT.
DATA_SENT=$(bpsql -At -c "SELECT data FROM es_events WHERE type = 'TransferSent' LIMIT 1")
DATA_RECV=$(bpsql -At -c "SELECT data FROM es_events WHERE type = 'TransferReceived' LIMIT 1")
HASH=$(bpsql -At -c "SELECT hash FROM es_events LIMIT 1")
cat >"$ES_TMP/transfer_floor.pgb" <<PGB
\\set a random(0, $BENCH_ACCOUNTS - 1)
\\set d random(1, $BENCH_ACCOUNTS - 1)
\\set b (:a + :d) % $BENCH_ACCOUNTS
INSERT INTO floor.tps (seq, account_id, version, type, amount, data, command_id, recorded_at, effective_at, checksum, hash, format)
  SELECT s, a, s, t, m, d::jsonb, NULL, now(), now(), 0, '$HASH'::bytea, 1
  FROM (VALUES (nextval('floor.seq'), :a::bigint, 'TransferSent', -1::bigint, '$DATA_SENT'),
               (nextval('floor.seq'), :b::bigint, 'TransferReceived', 1::bigint, '$DATA_RECV')) v(s, a, t, m, d);
PGB

# pgbench workloads run BENCH_ROUNDS rounds with the sides alternating
# (es, ref, floor, es, ref, floor, ...) and keep each side's best round, so
# that a change of the machine's load between two runs cannot decide a ratio.
best() { awk -v a="${1:-0}" -v b="$2" 'BEGIN {print (b > a ? b : a)}'; }
for c in 2 8; do
	log "T$c / F$c: one transfer per transaction, -c $c, ${SECS}s a run, $BENCH_ROUNDS rounds"
	for ((r = 1; r <= BENCH_ROUNDS; r++)); do
		for side in es ref floor; do
			settle
			v=$(pgb "$ES_TMP/transfer_$side.pgb" $c "$SECS")
			R[T$c.$side]=$(best "${R[T$c.$side]:-}" "$v")
			printf '  round %d %-5s %s tps\n' "$r" "$side" "$v"
		done
	done
done

log "H1: hot account, one deposit per transaction, -c 1, ${SECS}s a run, $BENCH_ROUNDS rounds"
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
	for side in es ref; do
		settle
		v=$(pgb "$ES_TMP/hot_$side.pgb" 1 "$SECS")
		R[H1.$side]=$(best "${R[H1.$side]:-}" "$v")
		printf '  round %d %-5s %s tps\n' "$r" "$side" "$v"
	done
done

# SQL of one batch of 1,000 transfers starting at i0: es as one es_apply of
# an array, es_call and ref as 1,000 calls in one statement.
pair() { echo "'acct-' || (i % $BENCH_ACCOUNTS), 'acct-' || ((i + 1 + (i / $BENCH_ACCOUNTS) % ($BENCH_ACCOUNTS - 1)) % $BENCH_ACCOUNTS)"; }
batch_sql() {
	local side=$1 i0=$2 i1=$(($2 + 999))
	case $side in
	es) echo "SELECT es_apply(jsonb_agg(jsonb_build_object('type', 'transfer', 'from', f, 'to', t, 'amount', 1) ORDER BY i)) FROM (SELECT i, $(pair | sed 's/,/ AS f,/') AS t FROM generate_series($i0, $i1) i) s;" ;;
	call) echo "SELECT count(es_transfer($(pair), 1)) FROM generate_series($i0, $i1) i;" ;;
	ref) echo "SELECT count(ref.transfer($(pair), 1)) FROM generate_series($i0, $i1) i;" ;;
	esac
}
# Seconds of one psql run of a file (client side, commit included).
timed_file() {
	local t0 t1
	t0=$(now)
	bpsql -f "$1" >/dev/null || return 1
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}'
}

log "B / C: $NTRANS transfers in one transaction, batches of 1,000"
for side in es call ref; do
	f="$ES_TMP/batch_$side.sql"
	{
		echo "BEGIN;"
		for ((k = 0; k < NTRANS / 1000; k++)); do batch_sql $side $((k * 1000)); done
		echo "COMMIT;"
	} >"$f"
done
SEQ_B0=$(bpsql -At -c "SELECT coalesce(max(seq), 0) FROM es_events")
settle
s=$(timed_file "$ES_TMP/batch_es.sql"); R[B.es]=$(awk -v n="$NTRANS" -v s="$s" 'BEGIN {printf "%.0f", n / s}')
SEQ_B1=$(bpsql -At -c "SELECT max(seq) FROM es_events")
settle
s=$(timed_file "$ES_TMP/batch_ref.sql"); R[B.ref]=$(awk -v n="$NTRANS" -v s="$s" 'BEGIN {printf "%.0f", n / s}')
R[C.ref]=${R[B.ref]}
settle
s=$(timed_file "$ES_TMP/batch_call.sql"); R[C.es]=$(awk -v n="$NTRANS" -v s="$s" 'BEGIN {printf "%.0f", n / s}')
# B again with automatic snapshots off: what they cost a batch.
sed '1i SET es_ledger.snapshot_interval = 0;' "$ES_TMP/batch_es.sql" >"$ES_TMP/batch_es0.sql"
settle
s=$(timed_file "$ES_TMP/batch_es0.sql"); R[B0.es]=$(awk -v n="$NTRANS" -v s="$s" 'BEGIN {printf "%.0f", n / s}')
printf '  es (arrays of 1,000) %s/s, es (calls) %s/s, ref %s/s; es arrays, snapshots off %s/s\n' \
	"${R[B.es]}" "${R[C.es]}" "${R[B.ref]}" "${R[B0.es]}"

log "floors: the $((SEQ_B1 - SEQ_B0)) event rows of B into a heap of the log's shape"
bpsql -c "CREATE TABLE floor.src AS SELECT * FROM es_events WHERE seq > $SEQ_B0 AND seq <= $SEQ_B1" >/dev/null
NSRC=$(bpsql -At -c "SELECT count(*) FROM floor.src")
for t in bare log; do
	settle
	echo "INSERT INTO floor.$t SELECT * FROM floor.src;" >"$ES_TMP/floor_$t.sql"
	s=$(timed_file "$ES_TMP/floor_$t.sql")
	R[S$t.floor]=$(awk -v n="$NSRC" -v s="$s" 'BEGIN {printf "%.0f", n / s}')
	R[Y$t.floor]=$(bpsql -At -c "SELECT round(pg_total_relation_size('floor.$t')::numeric / count(*)) FROM floor.$t")
	printf '  %-4s %s rows/s, %s bytes/row\n' "$t" "${R[S$t.floor]}" "${R[Y$t.floor]}"
done

k=0
for n in "$HOT1" "$HOT2" "$HOT3"; do
	k=$((k + 1))
	log "H$n: $n deposits to one account (hot-s$k) in one transaction"
	echo "SELECT es_apply(jsonb_agg(jsonb_build_object('type', 'deposit', 'account', 'hot-s$k', 'amount', 1))) FROM generate_series(1, $n);" >"$ES_TMP/hot_es_$n.sql"
	echo "SELECT count(ref.deposit('hot-s$k', 1)) FROM generate_series(1, $n);" >"$ES_TMP/hot_ref_$n.sql"
	for side in es ref; do
		settle
		if [ $side = ref ]; then
			# The reference slows down as one row's versions pile up: bound it.
			sed -i "1i SET statement_timeout = '${BENCH_REF_TIMEOUT}s';" "$ES_TMP/hot_${side}_$n.sql"
			if ! s=$(timed_file "$ES_TMP/hot_${side}_$n.sql" 2>/dev/null); then
				R[H$n.$side]="<$(awk -v n="$n" -v s="$BENCH_REF_TIMEOUT" 'BEGIN {printf "%.0f", n / s}')"
				printf '  %-5s timed out after %ss: %s deposits/s\n' "$side" "$BENCH_REF_TIMEOUT" "${R[H$n.$side]}"
				continue
			fi
		else
			s=$(timed_file "$ES_TMP/hot_${side}_$n.sql")
		fi
		R[H$n.$side]=$(awk -v n="$n" -v s="$s" 'BEGIN {printf "%.0f", n / s}')
		printf '  %-5s %s deposits/s\n' "$side" "${R[H$n.$side]}"
	done
done

# es_apply_each of NEACH transfers (every tenth rejected: ES001), and the
# reference: a plpgsql loop, ref.transfer in an exception block per command.
# Peak memory: the backend's RssAnon (private memory), sampled every 20 ms,
# of the statement that applies the commands (its input built before).
log "E: es_apply_each of $NEACH commands, one in ten rejected"
bpsql >/dev/null <<SQL
CREATE FUNCTION bench_commands(n int) RETURNS jsonb LANGUAGE sql AS \$\$
	SELECT jsonb_agg(jsonb_build_object('type', 'transfer',
			'from', 'acct-' || (i % $BENCH_ACCOUNTS),
			'to', 'acct-' || ((i + 1 + (i / $BENCH_ACCOUNTS) % ($BENCH_ACCOUNTS - 1)) % $BENCH_ACCOUNTS),
			'amount', CASE WHEN i % 10 = 0 THEN $FUND * 1000 ELSE 1 END) ORDER BY i)
	  FROM generate_series(1, n) i
\$\$;
CREATE FUNCTION bench_ref_each(cmds jsonb) RETURNS TABLE(ord int, seq bigint, state text)
LANGUAGE plpgsql AS \$\$
DECLARE
	c jsonb;
BEGIN
	ord := 0;
	FOR c IN SELECT value FROM jsonb_array_elements(cmds) LOOP
		ord := ord + 1;
		BEGIN
			seq := ref.transfer(c ->> 'from', c ->> 'to', (c ->> 'amount')::bigint);
			state := NULL;
		EXCEPTION WHEN OTHERS THEN
			seq := NULL;
			state := SQLSTATE;
		END;
		RETURN NEXT;
	END LOOP;
END
\$\$;
SQL
# Run one statement in a fresh session while sampling its backend's RssAnon;
# prints "seconds peak_kB baseline_kB" (baseline: RssAnon just before).
each_run() {
	local sql=$1 pidf="$ES_TMP/each.pid" base peak=0 v t0 t1 out
	rm -f "$pidf"
	cat >"$ES_TMP/each.sql" <<SQL
\\pset tuples_only on
\\pset format unaligned
\\o $pidf.tmp
SELECT pg_backend_pid();
\\o
\\! mv $pidf.tmp $pidf; sleep 0.2
$sql
SQL
	t0=$(now)
	bpsql -f "$ES_TMP/each.sql" >"$ES_TMP/each.out" &
	local job=$!
	while [ ! -s "$pidf" ]; do sleep 0.01; done
	local pid
	pid=$(cat "$pidf")
	base=$(awk '/^RssAnon:/ {print $2}' /proc/"$pid"/status)
	while kill -0 "$job" 2>/dev/null; do
		v=$(awk '/^RssAnon:/ {print $2}' /proc/"$pid"/status 2>/dev/null || echo 0)
		[ -n "$v" ] && [ "$v" -gt "$peak" ] && peak=$v
		sleep 0.02
	done
	wait "$job"
	t1=$(now)
	awk -v a="$t0" -v b="$t1" -v p="$peak" -v q="$base" 'BEGIN {printf "%.3f %d %d\n", b - a - 0.2, p, q}'
}
# The input is built once, before, and stored (as an application sends it
# as a parameter): building a 100,000-element array with jsonb_agg in the
# measured statement itself peaks at about 120 MB, more than either side.
bpsql >/dev/null <<SQL
CREATE TABLE bench_each_input AS SELECT bench_commands($NEACH) AS cmds;
SQL
settle
read -r s peak base < <(each_run "SELECT count(*) FILTER (WHERE sqlstate IS NULL) AS applied FROM es_apply_each((SELECT cmds FROM bench_each_input));")
R[E.es]=$(awk -v n="$NEACH" -v s="$s" 'BEGIN {printf "%.0f", n / s}')
R[M.es]=$(( peak / 1024 ))
R[M0.es]=$(( base / 1024 ))
settle
read -r s peak base < <(each_run "SELECT count(*) FILTER (WHERE state IS NULL) AS applied FROM bench_ref_each((SELECT cmds FROM bench_each_input));")
R[E.ref]=$(awk -v n="$NEACH" -v s="$s" 'BEGIN {printf "%.0f", n / s}')
R[M.ref]=$(( peak / 1024 ))
R[M0.ref]=$(( base / 1024 ))
printf '  es  %s commands/s, peak RssAnon %s MB (%s MB before)\n' "${R[E.es]}" "${R[M.es]}" "${R[M0.es]}"
printf '  ref %s commands/s, peak RssAnon %s MB (%s MB before)\n' "${R[E.ref]}" "${R[M.ref]}" "${R[M0.ref]}"

log "bytes per event"
R[Y.es]=$(bpsql -At -c "SELECT round((pg_total_relation_size('es_events') + pg_total_relation_size('es_transfers'))::numeric / count(*)) FROM es_events")
R[Yl.es]=$(bpsql -At -c "SELECT round(pg_total_relation_size('es_events')::numeric / count(*)) FROM es_events")
R[Y.ref]=$(bpsql -At -c "SELECT round(pg_total_relation_size('ref.events')::numeric / count(*)) FROM ref.events")
R[Yd.es]=$(bpsql -At -c "SELECT string_agg(c.relname || ' ' || round(pg_relation_size(c.oid)::numeric / (SELECT count(*) FROM es_events)), ', ' ORDER BY c.relname) FROM pg_class c WHERE c.relname LIKE 'es\_events%' AND c.relkind IN ('r', 'i') OR c.relname = 'es_transfers'")
echo "  es ${R[Y.es]} (log ${R[Yl.es]}; ${R[Yd.es]}), ref ${R[Y.ref]}"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

log "checking both sides"
CHECKS=$(bpsql -At -F ' ' <<SQL
SELECT 'es  conservation', (SELECT sum(balance) FROM es_accounts)
	= (SELECT sum(amount) FILTER (WHERE type IN ('Deposited', 'Withdrawn')) FROM es_events), (SELECT count(*) FROM es_events);
SELECT 'es  replay = projection (hot and 20 accounts)',
	bool_and(r.balance = a.balance AND r.version = a.version AND r.last_hash = a.last_hash), count(*)
FROM (SELECT * FROM es_accounts WHERE account LIKE 'hot-%' UNION ALL
	  (SELECT * FROM es_accounts WHERE account LIKE 'acct-%' ORDER BY account_id LIMIT 20)) a,
	LATERAL es_replay(a.account) r;
SELECT 'es  hot balances', bool_and(a.balance = v.n), count(*)
FROM es_accounts a JOIN (VALUES ('hot-s1', $HOT1), ('hot-s2', $HOT2), ('hot-s3', $HOT3)) v(account, n) USING (account);
SELECT 'ref ' || check_name, ok, checked FROM ref.verify();
SQL
)
echo "$CHECKS"
CHECKS_OK=yes
grep -q ' f ' <<<"$CHECKS" && CHECKS_OK=NO

ratio() {	# a / b; b "<x" (a bound: the reference timed out) gives ">a/x"
	local p=""
	case $2 in "<"*) p=">" ;; esac
	awk -v a="$1" -v b="${2#<}" -v p="$p" 'BEGIN {if (b > 0) printf "%s%.2fx", p, a / b; else print "-"}'
}
pct() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.0f%%", 100 * a / b; else print "-"}'; }
row() {	# label es ref floor_value floor_label
	printf '| %-50s | %9s | %9s | %6s | %9s | %-24s |\n' "$1" "$2" "$3" "$(ratio "$2" "$3")" "${4:+$(pct "$2" "$4")}" "$5"
}
EV=$((2 * ${R[B.es]}))	# events/s of B
TABLE=$(
	cat <<HEAD
es_ledger vs the plain-SQL reference (bench/reference.sql), side by side in one run
PostgreSQL $PGVERSION, $(nproc) CPUs, SCALE=$SCALE ($SECS s pgbench runs), $BENCH_ACCOUNTS accounts
build:    $BUILD
settings: $SETTINGS
load:     $LOAD_BEFORE before, $LOAD_AFTER after (1/5/15-min load average; CPUs: $(nproc))
checks:   all passed: $CHECKS_OK

| workload                                           | es_ledger | reference |  ratio | of floor  | floor                    |
|----------------------------------------------------|-----------|-----------|--------|-----------|--------------------------|
HEAD
	row "T2 transfer, 1 per txn, -c 2 (tps)" "${R[T2.es]}" "${R[T2.ref]}" "${R[T2.floor]}" "2-row txn ${R[T2.floor]} tps"
	row "T8 transfer, 1 per txn, -c 8 (tps)" "${R[T8.es]}" "${R[T8.ref]}" "${R[T8.floor]}" "2-row txn ${R[T8.floor]} tps"
	row "B  $NTRANS transfers in 1 txn, arrays of 1,000 (/s)" "${R[B.es]}" "${R[B.ref]}" "$((${R[Slog.floor]} / 2))" "indexed ${R[Slog.floor]} rows/s"
	row "B0 the same, automatic snapshots off (/s)" "${R[B0.es]}" "${R[B.ref]}" "$((${R[Slog.floor]} / 2))" "indexed ${R[Slog.floor]} rows/s"
	row "C  $NTRANS transfers in 1 txn, 1 call each (/s)" "${R[C.es]}" "${R[C.ref]}" "$((${R[Slog.floor]} / 2))" "indexed ${R[Slog.floor]} rows/s"
	row "H1 hot account, 1 deposit per txn, -c 1 (tps)" "${R[H1.es]}" "${R[H1.ref]}" "" ""
	for n in "$HOT1" "$HOT2" "$HOT3"; do
		row "H  hot account, $n deposits in 1 txn (/s)" "${R[H$n.es]}" "${R[H$n.ref]}" "${R[Slog.floor]}" "indexed ${R[Slog.floor]} rows/s"
	done
	row "E  es_apply_each of $NEACH (commands/s)" "${R[E.es]}" "${R[E.ref]}" "" ""
	row "E  es_apply_each of $NEACH (peak RssAnon MB)" "${R[M.es]}" "${R[M.ref]}" "" "before: ${R[M0.es]} / ${R[M0.ref]} MB"
	row "S  heap of the log's shape, no indexes (rows/s)" "" "" "" "${R[Sbare.floor]} rows/s, ${R[Ybare.floor]} B/row"
	row "S  heap of the log's shape, its indexes (rows/s)" "" "" "" "${R[Slog.floor]} rows/s, ${R[Ylog.floor]} B/row"
	row "Y  bytes per event (log + indexes + transfers)" "${R[Y.es]}" "${R[Y.ref]}" "" "heap+indexes ${R[Ylog.floor]} B/row"
	cat <<NOTE

ratio: es_ledger / reference (for bytes and memory, lower is better).  "of floor":
es_ledger as a fraction of the floor measured in this run (B, C: events/s
against the indexed heap's rows/s, two events a transfer).
es bytes per event, by relation: ${R[Yd.es]}.
NOTE
)

tgt() { printf '  %-4s %-70s %s\n' "$(awk "BEGIN {print ($2) ? \"met\" : \"NOT\"}")" "$1" "$3"; }
# What bounds a target, measured in this run (printed under it).
bound() { printf '       bound: %s\n' "$1"; }
TARGETS=$(
	echo "issue 17 targets:"
	tgt "T2 >= 2.5x reference" "${R[T2.es]} >= 2.5 * ${R[T2.ref]}" "($(ratio "${R[T2.es]}" "${R[T2.ref]}"))"
	need=$(awk -v r="${R[T2.ref]}" 'BEGIN {printf "%.0f", 2.5 * r}')
	bound "2.5x the reference is $need tps, $(pct "$need" "${R[T2.floor]}") of the two-row floor (a transaction that only appends a transfer's two event rows)"
	tgt "T2 >= 40% of the two-row floor transaction" "${R[T2.es]} >= 0.4 * ${R[T2.floor]}" "($(pct "${R[T2.es]}" "${R[T2.floor]}"))"
	tgt "T8 >= T2" "${R[T8.es]} >= ${R[T2.es]}" "(${R[T8.es]} vs ${R[T2.es]} tps)"
	tgt "B >= 5x reference" "${R[B.es]} >= 5 * ${R[B.ref]}" "($(ratio "${R[B.es]}" "${R[B.ref]}"))"
	tgt "B >= 40% of the indexed floor's event rate" "$EV >= 0.4 * ${R[Slog.floor]}" "($(pct "$EV" "${R[Slog.floor]}"): $EV events/s)"
	tgt "hot: $HOT3 in one batch >= 70% of the rate of $HOT2" "${R[H$HOT3.es]} >= 0.7 * ${R[H$HOT2.es]}" "($(pct "${R[H$HOT3.es]}" "${R[H$HOT2.es]}"))"
	tgt "hot: $HOT3 in one batch >= 10x one per transaction" "${R[H$HOT3.es]} >= 10 * ${R[H1.es]}" "($(ratio "${R[H$HOT3.es]}" "${R[H1.es]}"))"
	need=$((10 * ${R[H1.es]}))
	bound "10x one per transaction is $need deposits/s, $(pct "$need" "${R[Slog.floor]}") of the indexed floor's rate (the events alone, copied into a heap of the log's shape with its indexes)"
	tgt "<= 200 bytes per event (log, indexes, transfers)" "${R[Y.es]} <= 200" "(${R[Y.es]})"
	bound "the event rows alone in a heap of the log's shape with its indexes take ${R[Ylog.floor]} B/row (${R[Ybare.floor]} without indexes)"
	tgt "es_apply_each of $NEACH under 64 MB peak" "${R[M.es]} < 64" "(${R[M.es]} MB)"
)

log "results"
echo "$TABLE"
echo
echo "$TARGETS"
echo
echo "total time: $(($(date +%s) - START_TIME))s; run as: SCALE=$SCALE BENCH_SECONDS=$BENCH_SECONDS BENCH_ACCOUNTS=$BENCH_ACCOUNTS BENCH_ROUNDS=$BENCH_ROUNDS bash bench/suite.sh"

if [ -n "$BENCH_TABLE" ]; then
	{
		echo '```'
		echo "$TABLE"
		echo
		echo "$TARGETS"
		echo '```'
	} >"$BENCH_TABLE"
	echo "table written to $BENCH_TABLE"
fi

if [ -n "$BENCH_CHART" ]; then
	dat="$ES_TMP/chart.dat"
	{
		echo "\"T2 transfer/txn -c2\" ${R[T2.es]} ${R[T2.ref]} ${R[T2.floor]}"
		echo "\"T8 transfer/txn -c8\" ${R[T8.es]} ${R[T8.ref]} ${R[T8.floor]}"
		echo "\"B transfers, arrays\" ${R[B.es]} ${R[B.ref]} $((${R[Slog.floor]} / 2))"
		echo "\"C transfers, calls\" ${R[C.es]} ${R[C.ref]} $((${R[Slog.floor]} / 2))"
		echo "\"hot 1/txn\" ${R[H1.es]} ${R[H1.ref]} NaN"
		for n in "$HOT1" "$HOT2" "$HOT3"; do
			echo "\"hot batch $n\" ${R[H$n.es]} ${R[H$n.ref]#<} ${R[Slog.floor]}"
		done
		echo "\"apply_each $NEACH\" ${R[E.es]} ${R[E.ref]} NaN"
	} >"$dat"
	gnuplot <<GP
set terminal pngcairo size 1100,560 font "sans,10" noenhanced
set output "$BENCH_CHART"
set title "es_ledger vs plain-SQL reference vs storage floor (PostgreSQL $PGVERSION, $(nproc) CPUs, load $LOAD_BEFORE, SCALE=$SCALE)" noenhanced
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [100:*]
set ylabel "per second (tps, transfers, deposits or commands), log scale"
set xtics rotate by -25
set grid ytics
set key top right
plot "$dat" using 2:xtic(1) title "es_ledger" lc rgb "#1f77b4", \
     "" using 3 title "reference (plpgsql)" lc rgb "#ff7f0e", \
     "" using 4 title "floor (heap of the log's shape)" lc rgb "#7f7f7f"
GP
	echo "chart written to $BENCH_CHART"
fi
[ "$CHECKS_OK" = yes ]
