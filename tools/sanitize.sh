#!/usr/bin/env bash
# tools/sanitize.sh (also `make sanitize`): the test suites with es_ledger
# built under AddressSanitizer and UndefinedBehaviorSanitizer.  PostgreSQL
# stays as packaged; the extension is compiled and linked with
# -fsanitize=address,undefined and the server runs with the sanitizers'
# runtime preloaded (LD_PRELOAD), so every backend that loads the library is
# checked.  Runs the pg_regress suite, the pgTAP suite and a parser fuzzer
# run (FUZZ_N, default 20000); SANITIZE_TAP=1 adds the Perl TAP suite (its
# clusters get the same environment).  Fails if a suite fails or if the
# server log holds a sanitizer report.  Run before each release, as root on
# Debian 12, like .ci/test (ES_PGBIN for a private copy of PostgreSQL):
#   bash tools/sanitize.sh
# Rebuild normally afterwards (`make clean && make install`): the installed
# library needs the preloaded runtime.
source "$(dirname "$0")/../.ci/lib.sh"

# SANITIZERS: address,undefined (the default) or undefined alone.  UBSan's
# runtime comes in as a dependency of es_ledger.so; ASan's must be loaded
# first, so the server runs with it in LD_PRELOAD.
SANITIZERS=${SANITIZERS:-address,undefined}
export ES_COPT="-fsanitize=$SANITIZERS -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
# Without -Werror: the instrumented code makes gcc warn where it does not
# otherwise (-Wclobbered); the normal CI build keeps -Werror.
export ES_WERROR=
# PostgreSQL is not instrumented: no leak checking (its memory contexts are
# freed wholesale), reports to stderr (the server log), a report kills the
# backend so the test that caused it fails too.
SAN_OPTS="ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_odr_violation=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
case "$SANITIZERS" in
	*address*) export ES_SERVER_ENV="LD_PRELOAD=$(gcc -print-file-name=libasan.so) $SAN_OPTS" ;;
	*) export ES_SERVER_ENV="$SAN_OPTS" ;;
esac
# Debian 12's postgres deadlocks at start with ASan's runtime preloaded
# (bindtextdomain waits on glibc's _nl_state_lock); say so rather than hang.
if ! runuser -u postgres -- env $ES_SERVER_ENV timeout 30 "$PGBIN/postgres" -V >/dev/null 2>&1; then
	echo "postgres does not start with $ES_SERVER_ENV (ASan preloaded into a"
	echo "non-instrumented server hangs on Debian 12): use SANITIZERS=undefined, or a"
	echo "PostgreSQL built with -fsanitize=address (ES_PGBIN)"
	exit 1
fi

install_deps
build_install
start_cluster
TREE=$ES_TMP/tree
mkdir -p "$TREE"
cp -a "$ES_ROOT"/. "$TREE"/
rm -rf "$TREE/.git"
chown -R postgres: "$TREE"
status=0

log "pg_regress suite under ASan and UBSan"
as_pg make -C "$TREE" -s installcheck PG_CONFIG=$PGBIN/pg_config >"$ES_TMP/regress.log" 2>&1 || status=1
tail -n 5 "$ES_TMP/regress.log"

log "pgTAP suite under ASan and UBSan"
as_pg createdb es_tap
as_pg psql -X -q -d es_tap -c "CREATE EXTENSION pgtap"
(cd "$TREE" && as_pg pg_prove -d es_tap test/pgtap/*.sql) >"$ES_TMP/pgtap.log" 2>&1 || status=1
tail -n 3 "$ES_TMP/pgtap.log"

log "parser fuzzer under ASan and UBSan"
FUZZ_CONNECTED=1 FUZZ_N=${FUZZ_N:-20000} bash "$ES_ROOT/test/fuzz.sh" >"$ES_TMP/fuzz.log" 2>&1 || status=1
tail -n 1 "$ES_TMP/fuzz.log"

if [ -n "${SANITIZE_TAP:-}" ]; then
	log "Perl TAP suite under ASan and UBSan"
	(cd "$TREE" && as_pg env $ES_SERVER_ENV TESTDIR="$TREE" PG_REGRESS=$PGBIN/../lib/pgxs/src/test/regress/pg_regress \
			PERL5LIB=$PGBIN/../lib/pgxs/src/test/perl prove test/t/*.pl) >"$ES_TMP/tap.log" 2>&1 || status=1
	tail -n 3 "$ES_TMP/tap.log"
	cat "$TREE"/tmp_check/log/*.log >>"$ES_TMP/server.log" 2>/dev/null || true
fi

log "sanitizer reports"
if grep -E "ERROR: AddressSanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer" "$ES_TMP/server.log"; then
	status=1
	grep -E -A30 "ERROR: AddressSanitizer|runtime error:" "$ES_TMP/server.log" | head -120
else
	echo "none"
fi
# the library was really instrumented and loaded
# (nm's output read whole: grep -q would close the pipe under pipefail)
syms=$(nm -D "$(${PGBIN}/pg_config --pkglibdir)/es_ledger.so")
if ! grep -q "__asan_\|__ubsan_" <<<"$syms"; then
	echo "es_ledger.so is not instrumented"; status=1
fi
if [ $status -ne 0 ]; then
	echo "sanitize: FAILED"
else
	echo "sanitize ($SANITIZERS): clean (pg_regress, pgTAP, fuzzer${SANITIZE_TAP:+, Perl TAP})"
fi
exit $status
