#!/usr/bin/env bash
# bench/memory.sh: a session's backend memory stays flat as commands go by
# (issue 17 item 4: after 1,000,000 commands it equals what it was after
# 10,000).  Run as root on Debian 12:
#
#     bash bench/memory.sh                    # MEM_COMMANDS=1000000
#     MEM_COMMANDS=100000 bash bench/memory.sh   # quicker
#
# One psql session applies MEM_COMMANDS commands in statements of 1,000,
# each statement its own transaction, mixing the entry points: es_transfer
# (shorthand), es_apply with an array of 1,000 transfers, and es_apply_each
# of 1,000 (every tenth rejected, ES001).  After the first 10,000 commands
# (caches warm) and again at the end, the same session reads
# pg_backend_memory_contexts: the total of all its contexts, and every
# context (by name and level) whose size changed.  The script fails
# (status 1) when the total grew by more than MEM_TOLERANCE_KB (256) or any
# check fails (money conserved, es_verify).
#
# Settings (environment):
#   MEM_COMMANDS      commands in all (1000000; a multiple of 3000 is used)
#   MEM_TOLERANCE_KB  allowed growth of the total (256)
#   BENCH_SKIP_BUILD  1: use the installed extension (0)
# The cluster is lib.sh's (fsync=off) plus synchronous_commit=off; it is
# removed on exit.
source "$(dirname "${BASH_SOURCE[0]}")/../.ci/lib.sh"

MEM_COMMANDS=${MEM_COMMANDS:-1000000}
MEM_TOLERANCE_KB=${MEM_TOLERANCE_KB:-256}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
ACCOUNTS=1000
FUND=1000000000
DB=es_mem
ROUNDS=$(((MEM_COMMANDS + 2999) / 3000))
WARM=4					# rounds before the first reading (12,000 commands)
[ "$ROUNDS" -gt "$WARM" ] || ROUNDS=$((WARM + 1))

bpsql() { as_pg psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

if [ "$BENCH_SKIP_BUILD" != 1 ]; then
	install_deps
	build_install
fi
start_cluster
as_pg psql -X -q -d postgres -c "ALTER SYSTEM SET synchronous_commit = off" -c "SELECT pg_reload_conf()" >/dev/null
as_pg createdb "$DB"
bpsql >/dev/null <<SQL
CREATE EXTENSION es_ledger;
SELECT count(es_open_account('acct-' || i, 'USD')) FROM generate_series(0, $ACCOUNTS - 1) i;
SELECT count(es_deposit('acct-' || i, $FUND)) FROM generate_series(0, $ACCOUNTS - 1) i;
CREATE TABLE mem_readings (at_commands bigint, level int, name text, total bigint);
-- 1,000 transfers as a JSON array (ids from tag; every tenth too large
-- when reject), for es_apply (reject false) and es_apply_each.
CREATE FUNCTION mem_commands(tag text, reject bool) RETURNS jsonb LANGUAGE sql AS \$\$
	SELECT jsonb_agg(jsonb_build_object('type', 'transfer', 'id', tag || '-' || i,
			'from', 'acct-' || (i % $ACCOUNTS), 'to', 'acct-' || ((i * 7 + 1) % $ACCOUNTS),
			'amount', CASE WHEN reject AND i % 10 = 0 THEN $FUND::bigint * 1000 ELSE 1 END)
		ORDER BY i)
	  FROM generate_series(1, 1000) i
	 WHERE i % $ACCOUNTS <> (i * 7 + 1) % $ACCOUNTS
\$\$;
CREATE FUNCTION mem_read(at_commands bigint) RETURNS void LANGUAGE sql AS \$\$
	INSERT INTO mem_readings
	SELECT at_commands, level, name, sum(total_bytes)
	  FROM pg_backend_memory_contexts GROUP BY level, name
\$\$;
SQL

log "applying $((ROUNDS * 3000)) commands in one session (first reading after $((WARM * 3000)))"
START=$(date +%s)
{
	for r in $(seq 1 "$ROUNDS"); do
		echo "SELECT count(es_transfer('acct-' || (i % $ACCOUNTS), 'acct-' || ((i + $r) % $ACCOUNTS), 1)) FROM generate_series(1, 1000) i;"
		echo "SELECT es_apply(mem_commands('a$r', false)) IS NOT NULL;"
		echo "SELECT count(*) FROM es_apply_each(mem_commands('e$r', true));"
		if [ "$r" = "$WARM" ] || [ "$r" = "$ROUNDS" ]; then
			echo "SELECT mem_read($r * 3000);"
		fi
	done
} | bpsql >/dev/null
SECS=$(($(date +%s) - START))

log "backend memory contexts that changed between the readings"
bpsql -c "
SELECT coalesce(a.level, b.level) AS level, coalesce(a.name, b.name) AS context,
	   a.total AS bytes_first, b.total AS bytes_last,
	   coalesce(b.total, 0) - coalesce(a.total, 0) AS growth
  FROM (SELECT * FROM mem_readings WHERE at_commands = $WARM * 3000) a
  FULL JOIN (SELECT * FROM mem_readings WHERE at_commands = $ROUNDS * 3000) b USING (level, name)
 WHERE a.total IS DISTINCT FROM b.total
 ORDER BY abs(coalesce(b.total, 0) - coalesce(a.total, 0)) DESC LIMIT 20"
read -r FIRST LAST < <(bpsql -At -F' ' -c "
SELECT (sum(total) FILTER (WHERE at_commands = $WARM * 3000))::bigint / 1024,
	   (sum(total) FILTER (WHERE at_commands = $ROUNDS * 3000))::bigint / 1024 FROM mem_readings")

log "checks"
CHECK=$(bpsql -At -c "
SELECT (SELECT sum(balance) FROM es_accounts) = $ACCOUNTS::numeric * $FUND
   AND (SELECT bool_and(ok) FROM es_verify())")
echo "money conserved and es_verify: $CHECK"

GROWTH=$((LAST - FIRST))
printf '\nbackend memory (sum of pg_backend_memory_contexts): %s kB after %s commands, %s kB after %s (growth %s kB, tolerance %s kB); %s s\n' \
	"$FIRST" "$((WARM * 3000))" "$LAST" "$((ROUNDS * 3000))" "$GROWTH" "$MEM_TOLERANCE_KB" "$SECS"
if [ "$CHECK" != t ] || [ "$GROWTH" -gt "$MEM_TOLERANCE_KB" ]; then
	echo "FAILED"
	exit 1
fi
echo "flat: yes"
