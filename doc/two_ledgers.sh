#!/usr/bin/env bash
# doc/two_ledgers.sh: a coordinator for a payment from an account on ledger A
# to an account on ledger B (two databases, possibly on two servers), built on
# pending transfers.  See doc/two_ledgers.md for the pattern and why each step
# is safe to repeat.
#
#   LEDGER_A='host=a dbname=bank' LEDGER_B='host=b dbname=wallets' \
#       doc/two_ledgers.sh TRANSFER_ID PAYER PAYEE AMOUNT
#
# Accounts: PAYER on A pays into A_CLEARING (default "clearing-B"), the
# account on A that holds what A owes B; B_CLEARING (default "clearing-A") on
# B, which needs an overdraft limit, pays PAYEE.  AMOUNT in minor units.
#
# Steps, each idempotent by an id derived from TRANSFER_ID (T):
#   1. A: pending transfer PAYER -> A_CLEARING, id T (the reservation);
#      then read its status on A: posted or voided means an earlier run
#      finished the transfer, only pending goes on;
#   2. B: transfer B_CLEARING -> PAYEE, id T (the credit);
#   3. A: post_pending T (id T/post) when B accepted, void_pending T
#      (id T/void) when B refused for good (ES001-ES006).
# A run that stops anywhere (crash, lost connection) is resumed by running
# the same command again: every step is retried with the same ids.
#
# Exit status: 0 when the transfer is finished (prints "paid T" or
# "refused T: SQLSTATE message"); 1 when it could not finish now (a
# connection failure, an unexpected error; run it again later); 2 on bad
# usage.  CRASH_AFTER=N (1, 2 or 3) exits with status 3 right after step N,
# to test resuming.  PSQL names the psql program (default: psql on PATH).
set -u

if [ $# -ne 4 ]; then
	echo "usage: LEDGER_A=conninfo LEDGER_B=conninfo $0 TRANSFER_ID PAYER PAYEE AMOUNT" >&2
	exit 2
fi
T=$1 PAYER=$2 PAYEE=$3 AMOUNT=$4
: "${LEDGER_A:?LEDGER_A: connection string of the payer's ledger}"
: "${LEDGER_B:?LEDGER_B: connection string of the payee's ledger}"
A_CLEARING=${A_CLEARING:-clearing-B}
B_CLEARING=${B_CLEARING:-clearing-A}
PSQL=${PSQL:-psql}
CRASH_AFTER=${CRASH_AFTER:-0}

# One command on a ledger.  The SQL reads its values from psql variables
# (never spliced into the text).  Sets OUT (the result) and STATE ("ok", the
# SQLSTATE of an error, or "connection" when psql could not run it) and MSG.
run_sql()
{
	local conn=$1 sql=$2 err rc
	shift 2
	err=$(mktemp)
	OUT=$(printf '\\set VERBOSITY verbose\n%s\n' "$sql" |
		"$PSQL" -X -q -At -v ON_ERROR_STOP=1 "$@" -d "$conn" 2>"$err")
	rc=$?
	MSG=$(head -n 1 "$err")
	rm -f "$err"
	if [ $rc -eq 0 ]; then
		STATE=ok
	elif [[ $MSG =~ ERROR:\ +([0-9A-Z]{5}): ]]; then
		STATE=${BASH_REMATCH[1]}
	else
		STATE=connection
	fi
}

crash_point()
{
	if [ "$CRASH_AFTER" = "$1" ]; then
		echo "simulated crash after step $1 of $T" >&2
		exit 3
	fi
}

fail()
{
	echo "transfer $T not finished: $1 ($STATE: $MSG); run again to resume" >&2
	exit 1
}

# Step 1: reserve on A.  A retry with the same id returns the first seq.
run_sql "$LEDGER_A" "SELECT es_apply(jsonb_build_object('type', 'transfer', 'pending', true,
	'id', :'t', 'from', :'payer', 'to', :'clearing', 'amount', :'amount'::bigint))" \
	-v t="$T" -v payer="$PAYER" -v clearing="$A_CLEARING" -v amount="$AMOUNT"
case $STATE in
ok) ;;
ES001 | ES003 | ES005 | ES006)
	# A refused the reservation: nothing was written anywhere
	echo "refused $T: $STATE on A: $MSG"
	exit 0 ;;
*) fail "reserving on A" ;;
esac
crash_point 1

# Has an earlier run already finished this transfer?  Then B must not be
# asked again: after a void, B might accept now and be paid twice over.
run_sql "$LEDGER_A" "SELECT status FROM es_transfers WHERE transfer_id = :'t'" -v t="$T"
[ "$STATE" = ok ] || fail "reading the reservation on A"
case $OUT in
pending) ;;
posted) echo "paid $T"; exit 0 ;;
voided | expired) echo "refused $T: reservation $OUT on A"; exit 0 ;;
*) STATE=none MSG="status '$OUT'"; fail "reading the reservation on A" ;;
esac

# Step 2: credit on B with the same id.
run_sql "$LEDGER_B" "SELECT es_apply(jsonb_build_object('type', 'transfer',
	'id', :'t', 'from', :'clearing', 'to', :'payee', 'amount', :'amount'::bigint))" \
	-v t="$T" -v payee="$PAYEE" -v clearing="$B_CLEARING" -v amount="$AMOUNT"
case $STATE in
ok) decision=post ;;
ES001 | ES002 | ES003 | ES005 | ES006) decision=void refusal="$STATE on B: $MSG" ;;
*) fail "crediting on B" ;;
esac
crash_point 2

# Step 3: settle on A.
if [ $decision = post ]; then
	run_sql "$LEDGER_A" "SELECT es_apply(jsonb_build_object('type', 'post_pending',
		'id', :'t' || '/post', 'pending_id', :'t'))" -v t="$T"
	[ "$STATE" = ok ] || fail "posting on A"
	crash_point 3
	echo "paid $T"
else
	run_sql "$LEDGER_A" "SELECT es_apply(jsonb_build_object('type', 'void_pending',
		'id', :'t' || '/void', 'pending_id', :'t'))" -v t="$T"
	[ "$STATE" = ok ] || fail "voiding on A"
	crash_point 3
	echo "refused $T: $refusal"
fi
exit 0
