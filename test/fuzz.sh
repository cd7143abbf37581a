#!/usr/bin/env bash
# test/fuzz.sh: the parser fuzzer.  Sends mutated inputs through every
# parser of es_ledger (commands as JSON objects and batches, es_apply_each,
# account names and currencies, es_read cursors and max_count, digests,
# timestamps for replay and history, es_reverse ids, projection names) and
# accepts only success or a documented SQLSTATE (test/fuzz/setup.sql,
# fz.allowed): never a crash, an XX000 or an assertion (with a
# --enable-cassert server).  Prints the outcomes per parser.
#
#   bash test/fuzz.sh                      # 200,000 inputs (about 10 min on 2 cores)
#   FUZZ_N=20000 bash test/fuzz.sh         # the short run of .ci/test
#   FUZZ_SEED=0.42 FUZZ_N=... bash test/fuzz.sh   # another sequence
#
# As root on Debian 12 (a scratch cluster, like .ci/test), or with
# FUZZ_CONNECTED=1 against the cluster PGHOST/PGPORT already point at (as
# .ci/test calls it).  Inputs go in chunks of FUZZ_CHUNK (5000) per
# transaction, each with its own seed, so a crash names a reproducible chunk.
set -euo pipefail
FUZZ_N=${FUZZ_N:-200000}
FUZZ_CHUNK=${FUZZ_CHUNK:-5000}
FUZZ_SEED=${FUZZ_SEED:-0.5}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../.ci/lib.sh"
if [ -z "${FUZZ_CONNECTED:-}" ]; then
	install_deps
	build_install
	start_cluster
fi
FUZZ_DIR=$(mktemp -d /tmp/es_fuzz.XXXXXX)
cp "$HERE"/fuzz/*.sql "$FUZZ_DIR"/
chmod -R a+rX "$FUZZ_DIR"
trap 'rm -rf "$FUZZ_DIR"; if [ -z "${FUZZ_CONNECTED:-}" ]; then stop_cluster; fi' EXIT

as_pg psql -X -q -d postgres -c "DROP DATABASE IF EXISTS es_fuzz WITH (FORCE)" -c "CREATE DATABASE es_fuzz" >/dev/null
as_pg psql -X -q -d es_fuzz -f "$FUZZ_DIR/setup.sql" >/dev/null
status=0
done_n=0
chunk=0
start=$(date +%s)
while [ "$done_n" -lt "$FUZZ_N" ]; do
	n=$(( FUZZ_N - done_n < FUZZ_CHUNK ? FUZZ_N - done_n : FUZZ_CHUNK ))
	seed=$(awk -v s="$FUZZ_SEED" -v c="$chunk" 'BEGIN { srand(c * 7919 + s * 1000003); printf "%.6f", rand() * 2 - 1 }')
	if ! as_pg psql -X -q -d es_fuzz -v n="$n" -v seed="$seed" -f "$FUZZ_DIR/run.sql" >"$FUZZ_DIR/chunk.log" 2>&1; then
		echo "fuzz: chunk $chunk (n=$n, seed=$seed) FAILED (crash or error outside an input):"
		cat "$FUZZ_DIR/chunk.log"
		status=1
		break
	fi
	done_n=$(( done_n + n ))
	chunk=$(( chunk + 1 ))
done
as_pg psql -X -q -d es_fuzz -c "SELECT target, sqlstate, n FROM fz.results ORDER BY 1, 2" || status=1
known=$(as_pg psql -X -q -At -d es_fuzz -c "SELECT coalesce(sum(n), 0) FROM fz.results WHERE sqlstate LIKE 'known:%'")
if [ "$known" != "0" ]; then
	echo "fuzz: $known outcomes of known findings (fz.known, not failing the run):"
	as_pg psql -X -q -d es_fuzz -c "SELECT target, sqlstate, why FROM fz.known"
fi
bad=$(as_pg psql -X -q -At -d es_fuzz -c "SELECT count(*) FROM fz.bad")
if [ "$bad" != "0" ]; then
	echo "fuzz: outcomes outside the documented SQLSTATEs:"
	as_pg psql -X -q -d es_fuzz -c "SELECT target, sqlstate, message, left(input, 300) AS input FROM fz.bad LIMIT 30"
	status=1
fi
# the ledger is still sound after it all
as_pg psql -X -q -At -d es_fuzz -c "SELECT check_name FROM es_verify() WHERE NOT ok" >"$FUZZ_DIR/verify.log" || status=1
if [ -s "$FUZZ_DIR/verify.log" ]; then
	echo "fuzz: es_verify fails after the run: $(cat "$FUZZ_DIR/verify.log")"
	status=1
fi
as_pg psql -X -q -d postgres -c "DROP DATABASE IF EXISTS es_fuzz WITH (FORCE)" >/dev/null || true
echo "fuzz: $done_n inputs in $(( $(date +%s) - start )) s, $bad outside the documented SQLSTATEs$( [ $status -eq 0 ] && echo ', ok' || echo ', FAILED')"
exit $status
