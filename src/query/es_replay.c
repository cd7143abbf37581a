/*-------------------------------------------------------------------------
 *
 * es_replay.c
 *	  es_replay: an account's state folded from the log alone.
 *
 * Replay reads es_events and nothing else (the account's id comes from its
 * AccountOpened event, not from es_accounts), through es_scan.c, folds the
 * events in version order with EsFoldEvent, the fold es_apply uses, and
 * returns the state as an es_accounts row (es_row.c).  Comparing the two is
 * how projections are checked.  It starts from the newest snapshot of the
 * account that holds only events the filters let through and passes its
 * checks (es_snap.c), and folds the events after it: the same state, in
 * time bounded by the snapshot interval rather than the stream's length.
 *
 * Locks: none beyond the AccessShareLock of reading es_events and
 * es_snapshots; it runs on a hot standby.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "query.h"

/* Fold one event into the state being replayed (an EsScanCallback). */
static void
ReplayOne(const EsEvent *ev, void *arg)
{
	EsFoldEvent((EsAccountState *) arg, ev);
}

/*
 * es_replay(account text, as_of timestamptz DEFAULT NULL,
 *			 effective_until timestamptz DEFAULT NULL) RETURNS es_accounts
 *
 * The account's state folded from the log: all of it, or only the events
 * recorded by as_of (transaction time) and/or effective by effective_until
 * (valid time).  ES003 if the account was never opened, or not yet opened
 * at as_of.  Starts from the newest usable snapshot (es_snap.c); one that
 * fails its checks is passed over with a WARNING (ES012).
 */
PG_FUNCTION_INFO_V1(es_replay);
Datum
es_replay(PG_FUNCTION_ARGS)
{
	char	   *account;
	TimestampTz as_of = PG_ARGISNULL(1) ? 0 : PG_GETARG_TIMESTAMPTZ(1);
	TimestampTz until = PG_ARGISNULL(2) ? 0 : PG_GETARG_TIMESTAMPTZ(2);
	TupleDesc	tupdesc;
	EsAccountState state;
	EsSnapshot	snap;
	int64		account_id;
	int64		n;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_ES_INVALID_COMMAND),
				 errmsg("account must not be null")));
	account = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "es_replay must return a composite type");

	if (!EsScanFindOpened(account, &account_id))
		ereport(ERROR,
				(errcode(ERRCODE_ES_ACCOUNT_NOT_FOUND),
				 errmsg("account \"%s\" not found", account),
				 errdetail("The log holds no AccountOpened event for it.")));
	if (!PG_ARGISNULL(1))
		EsScanWarnIfNotFinal(as_of);
	/* From the newest usable snapshot, or from the first event. */
	if (EsSnapFind(account_id, account, PG_ARGISNULL(1) ? NULL : &as_of,
				   PG_ARGISNULL(2) ? NULL : &until, &snap))
	{
		state = snap.state;
		n = 1;
	}
	else
	{
		EsFoldInit(&state, account_id);
		n = 0;
	}
	n += EsScanAccount(account_id, state.version,
					   PG_ARGISNULL(1) ? NULL : &as_of,
					   PG_ARGISNULL(2) ? NULL : &until, ReplayOne, &state);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_ES_ACCOUNT_NOT_FOUND),
				 errmsg("account \"%s\" not found at that time", account),
				 errdetail("Its AccountOpened event was recorded after the time asked for.")));
	PG_RETURN_DATUM(EsRowStateToDatum(&state, tupdesc));
}
