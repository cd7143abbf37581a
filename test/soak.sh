#!/usr/bin/env bash
# test/soak.sh: the seeded pgTAP suites (randomised workloads against the
# independent models, with and without pending transfers, and the
# malformed-input fuzzer) under many seeds.  Not
# part of .ci/test; run as root on Debian 12:
#   bash test/soak.sh              # 20 seeds
#   SOAK_SEEDS=200 bash test/soak.sh
# Each seed is a value in [-1, 1] for setseed(), passed as es_test.seed.
source "$(dirname "${BASH_SOURCE[0]}")/../.ci/lib.sh"

SOAK_SEEDS=${SOAK_SEEDS:-20}
install_deps
build_install
start_cluster
as_pg createdb es_soak
as_pg psql -X -q -d es_soak -c "CREATE EXTENSION pgtap"
TREE=$ES_TMP/tree
mkdir -p "$TREE" && cp -a "$ES_ROOT"/test "$TREE"/ && chown -R postgres: "$TREE"

passed=0
failed=0
for i in $(seq 1 "$SOAK_SEEDS"); do
	seed=$(awk -v i="$i" 'BEGIN { srand(i); printf "%.6f", rand() * 2 - 1 }')
	if (cd "$TREE" && as_pg env PGOPTIONS="-c es_test.seed=$seed" \
			pg_prove -d es_soak test/pgtap/invariants.sql test/pgtap/fuzz.sql test/pgtap/pending.sql) \
			>"$ES_TMP/soak.log" 2>&1; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "seed $seed FAILED:"
		cat "$ES_TMP/soak.log"
	fi
	tail -n 1 "$ES_TMP/soak.log" | sed "s/^/seed $seed: /"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
