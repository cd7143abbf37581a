/*-------------------------------------------------------------------------
 *
 * es_history.c
 *	  Time travel on the log: es_history (an account's events with the
 *	  balance after each), es_balance_at (an account's balance as the ledger
 *	  knew it at a time) and es_accounts_at (the whole ledger at a time).
 *
 * Like es_replay they read es_events and nothing else (never es_accounts),
 * through es_scan.c's iterator over es_events_account_version_key, so each
 * account's events come in version order (es_accounts_at: in physical
 * order, which is version order but in rare cases, see AccountsAtPhysical),
 * and fold them with EsFoldEvent,
 * the fold es_apply uses: es_accounts_at(NULL) is es_accounts, and
 * es_history's balance_after is the balance es_apply computed after each
 * event.
 *
 * "At a time" is transaction time: an event counts when its recorded_at is
 * at or before the time.  An account exists at a time when its
 * AccountOpened event was recorded by then.  es_apply keeps each account's
 * events in recorded_at order, so what counts is a prefix of the account's
 * history; in a log that does not keep it (restored from elsewhere: the
 * restore path checks the chain, not the times) an account opened after
 * the time still counts none of its events, rather than fold one without
 * its opening.
 *
 * es_balance_at starts from the newest usable snapshot of the account
 * (es_snap.c) and es_history, given since, from the newest one wholly
 * before it; es_accounts_at reads every event once and needs none.
 *
 * Memory stays flat however long the log: a row is decoded in the
 * iterator's row context, reset at every row, and folded there too, except
 * the opening event whose name and currency the state keeps, in a context
 * reset at every account.  Results go to a tuplestore, which spills to disk
 * past work_mem.
 *
 * Locks: AccessShareLock on es_events and the indexes read; no row locks.
 * They read the statement's snapshot, never wait for writers, and work on a
 * hot standby.  EXECUTE on the SQL function is the only privilege checked.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "common/hashfn.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "query.h"

/* Columns of es_history's result. */
#define HISTORY_NATTS	9

/*
 * Decode the next event of a walk into *ev, in the row's memory context;
 * false at the end.  A damaged row is ES012 (the codec's EsRowEventFromValues).
 */
static bool
NextEvent(EsScanIter *it, EsEvent *ev)
{
	MemoryContext old;

	if (!EsScanNext(it))
		return false;
	old = MemoryContextSwitchTo(it->rowcxt);
	EsRowEventFromValues(it->slot->tts_values, it->slot->tts_isnull, ev);
	MemoryContextSwitchTo(old);
	return true;
}

/*
 * Fold ev into *state with EsFoldEvent.  The opening event's allocations
 * (the name and currency the state points to) go to keepcxt, any other
 * event's to the row's context, freed at the next row.
 */
static void
Fold(EsScanIter *it, EsAccountState *state, const EsEvent *ev,
	 MemoryContext keepcxt)
{
	MemoryContext old;

	old = MemoryContextSwitchTo(ev->type == ES_EV_ACCOUNT_OPENED ?
								keepcxt : it->rowcxt);
	EsFoldEvent(state, ev);
	MemoryContextSwitchTo(old);
}

/*
 * Fold ev into *state if it was recorded at or before *as_of (as_of NULL:
 * always).  *unborn is set when the account's opening event (version 1) was
 * recorded after as_of: the account did not exist then, and none of its
 * later events counts (see the file header).  Start each account with
 * *unborn false.
 */
static void
FoldAsOf(EsScanIter *it, EsAccountState *state, const EsEvent *ev,
		 const TimestampTz *as_of, bool *unborn, MemoryContext keepcxt)
{
	if (*unborn)
		return;
	if (as_of && ev->recorded_at > *as_of)
	{
		if (ev->version == 1)
			*unborn = true;
		return;
	}
	Fold(it, state, ev, keepcxt);
}

/* The id of the account named by argument 0: ES009 if NULL, ES003 if unknown. */
static int64
AccountArg(FunctionCallInfo fcinfo)
{
	char	   *account;
	int64		account_id;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_ES_INVALID_COMMAND),
				 errmsg("account must not be null")));
	account = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!EsScanFindOpened(account, &account_id))
		ereport(ERROR,
				(errcode(ERRCODE_ES_ACCOUNT_NOT_FOUND),
				 errmsg("account \"%s\" not found", account),
				 errdetail("The log holds no AccountOpened event for it.")));
	return account_id;
}

/*
 * es_history(account text, since timestamptz DEFAULT NULL,
 *			  until timestamptz DEFAULT NULL, after_version bigint DEFAULT NULL,
 *			  max_count int DEFAULT NULL)
 *	   RETURNS TABLE(seq bigint, version bigint, type text, amount bigint,
 *					 balance_after bigint, recorded_at timestamptz,
 *					 effective_at timestamptz, command_id text, data jsonb)
 *
 * The account's events in version order, each with the balance after it:
 * the explanation of a balance, event by event.  Every event is folded from
 * version 1 on (or from the newest usable snapshot recorded wholly before
 * since, es_snap.c: the same fold, stored), so balance_after is the fold's
 * balance whatever the window;
 * only events recorded within [since, until] (inclusive; NULL: unbounded)
 * are returned.  effective_at is shown, never filtered on.  Paging: only
 * events after version after_version, at most max_count of them (NULL: no
 * bound); the next page starts after the last version returned.  The
 * events before a page are still folded (balance_after stays the fold's).
 * Scripts before 0.4.0 declare three arguments: PG_NARGS tells.
 *
 * 22023 for a max_count below 1.
 * Errors: ES009 for a NULL account, ES003 for an account the log holds no
 * AccountOpened event for, ES012 for a damaged row or an event that cannot
 * be folded, 22003 for a balance out of the bigint range.
 *
 * Locks: AccessShareLock on es_events, es_events_opened_idx and
 * es_events_account_version_key; reads the statement's snapshot; works on a
 * hot standby.
 */
PG_FUNCTION_INFO_V1(es_history);
Datum
es_history(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		has_since = !PG_ARGISNULL(1);
	bool		has_until = !PG_ARGISNULL(2);
	TimestampTz since = has_since ? PG_GETARG_TIMESTAMPTZ(1) : 0;
	TimestampTz until = has_until ? PG_GETARG_TIMESTAMPTZ(2) : 0;
	bool		has_after = PG_NARGS() > 3 && !PG_ARGISNULL(3);
	int64		after_version = has_after ? PG_GETARG_INT64(3) : 0;
	bool		has_max = PG_NARGS() > 4 && !PG_ARGISNULL(4);
	int32		max_count = has_max ? PG_GETARG_INT32(4) : 0;
	int64		returned = 0;
	int64		account_id;
	MemoryContext keepcxt;
	EsScanIter *it;
	EsAccountState state;
	EsEvent		ev;

	InitMaterializedSRF(fcinfo, 0);
	if (rsinfo->setDesc->natts != HISTORY_NATTS)
		elog(ERROR, "es_history must return %d columns", HISTORY_NATTS);
	if (has_max && max_count < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_count must be at least 1, not %d", max_count)));
	account_id = AccountArg(fcinfo);

	keepcxt = AllocSetContextCreate(CurrentMemoryContext, "es_history account",
									ALLOCSET_SMALL_SIZES);
	EsFoldInit(&state, account_id);
	/* Events recorded before since are not shown: a snapshot folds them. */
	if (has_since && since > DT_NOBEGIN)
	{
		TimestampTz before = since - 1;
		EsSnapshot	snap;
		MemoryContext old = MemoryContextSwitchTo(keepcxt);

		if (EsSnapFind(account_id, text_to_cstring(PG_GETARG_TEXT_PP(0)),
					   &before, NULL, &snap))
			state = snap.state;
		MemoryContextSwitchTo(old);
	}
	it = EsScanBeginAccount(account_id, state.version, GetActiveSnapshot());
	while (NextEvent(it, &ev))
	{
		Datum		values[HISTORY_NATTS];
		bool		nulls[HISTORY_NATTS] = {false};
		MemoryContext old;

		Fold(it, &state, &ev, keepcxt);
		if ((has_since && ev.recorded_at < since) ||
			(has_until && ev.recorded_at > until) ||
			(has_after && ev.version <= after_version))
			continue;
		if (has_max && returned >= max_count)
			break;
		returned++;

		old = MemoryContextSwitchTo(it->rowcxt);
		values[0] = Int64GetDatum(ev.seq);
		values[1] = Int64GetDatum(ev.version);
		values[2] = CStringGetTextDatum(EsEventTypeName(ev.type));
		values[3] = Int64GetDatum(ev.amount);
		values[4] = Int64GetDatum(state.balance);
		values[5] = TimestampTzGetDatum(ev.recorded_at);
		values[6] = TimestampTzGetDatum(ev.effective_at);
		if (ev.command_id)
			values[7] = CStringGetTextDatum(ev.command_id);
		else
			nulls[7] = true;
		values[8] = JsonbPGetDatum(ev.data);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(old);
	}
	EsScanEnd(it);
	MemoryContextDelete(keepcxt);
	return (Datum) 0;
}

/*
 * es_balance_at(account text, as_of timestamptz) RETURNS bigint
 *
 * The account's balance as the ledger knew it at as_of (transaction time):
 * the fold of its events recorded at or before as_of.  NULL if the account
 * did not exist yet (its AccountOpened recorded after as_of); as_of NULL
 * means now (every event the statement's snapshot sees).  Starts from the
 * newest usable snapshot (es_snap.c), passing over with a WARNING (ES012)
 * one that fails its checks.
 *
 * Errors: ES009 for a NULL account, ES003 for an account the log never
 * knew, ES012 for a damaged row or an event that cannot be folded, 22003
 * for a balance out of the bigint range.
 *
 * Locks: AccessShareLock on es_events, es_events_opened_idx and
 * es_events_account_version_key; reads the statement's snapshot; works on a
 * hot standby.
 */
PG_FUNCTION_INFO_V1(es_balance_at);
Datum
es_balance_at(PG_FUNCTION_ARGS)
{
	TimestampTz as_of = PG_ARGISNULL(1) ? 0 : PG_GETARG_TIMESTAMPTZ(1);
	int64		account_id = AccountArg(fcinfo);
	MemoryContext keepcxt;
	EsScanIter *it;
	EsAccountState state;
	EsEvent		ev;
	bool		unborn = false;

	if (!PG_ARGISNULL(1))
		EsScanWarnIfNotFinal(as_of);
	keepcxt = AllocSetContextCreate(CurrentMemoryContext, "es_balance_at account",
									ALLOCSET_SMALL_SIZES);
	EsFoldInit(&state, account_id);
	{
		EsSnapshot	snap;
		MemoryContext old = MemoryContextSwitchTo(keepcxt);

		if (EsSnapFind(account_id, text_to_cstring(PG_GETARG_TEXT_PP(0)),
					   PG_ARGISNULL(1) ? NULL : &as_of, NULL, &snap))
			state = snap.state;
		MemoryContextSwitchTo(old);
	}
	it = EsScanBeginAccount(account_id, state.version, GetActiveSnapshot());
	while (NextEvent(it, &ev))
		FoldAsOf(it, &state, &ev, PG_ARGISNULL(1) ? NULL : &as_of, &unborn,
				 keepcxt);
	EsScanEnd(it);
	MemoryContextDelete(keepcxt);

	if (state.status == ES_ACCOUNT_NONE)
		PG_RETURN_NULL();
	PG_RETURN_INT64(state.balance);
}

/* Add an account's folded state to es_accounts_at's result. */
static void
EmitAccount(ReturnSetInfo *rsinfo, const EsAccountState *state,
			MemoryContext cxt)
{
	Datum		values[ES_ACC_NATTS];
	bool		nulls[ES_ACC_NATTS];
	MemoryContext old = MemoryContextSwitchTo(cxt);

	EsRowStateToValues(state, values, nulls);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	MemoryContextSwitchTo(old);
}

/* One account during es_accounts_at's physical-order walk. */
typedef struct AtState
{
	EsAccountState state;
	int64		next_version;	/* the version due next in physical order */
	bool		unborn;			/* opened after as_of (FoldAsOf) */
	bool		deferred;		/* met out of version order: walk by index */
} AtState;

/*
 * Its entry in the hash table: small, so that a probe touches one cache
 * line; the state lives apart.
 */
typedef struct AtAccount
{
	int64		account_id;		/* hash key */
	char		status;			/* simplehash's */
	AtState    *st;
} AtAccount;

/* A hash table of them keyed by account_id (lib/simplehash.h). */
#define SH_PREFIX		at
#define SH_ELEMENT_TYPE	AtAccount
#define SH_KEY_TYPE		int64
#define SH_KEY			account_id
#define SH_HASH_KEY(tb, key) murmurhash32((uint32) (key) ^ (uint32) ((uint64) (key) >> 32))
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE		static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* Above this many accounts, es_accounts_at walks the index (flat memory). */
#define ES_AT_PHYSICAL_MAX_ACCOUNTS	1000000

/* qsort comparator of AtState pointers by account_id. */
static int
CompareAtAccounts(const void *a, const void *b)
{
	int64		x = (*(AtState *const *) a)->state.account_id;
	int64		y = (*(AtState *const *) b)->state.account_id;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * Fold one account's events, in version order by its index, into *state
 * (initialised here), with FoldAsOf: for an account es_accounts_at's
 * physical walk met out of version order.
 */
static void
FoldAccountByIndex(int64 account_id, const TimestampTz *as_of,
				   EsAccountState *state, MemoryContext keepcxt)
{
	EsScanIter *it = EsScanBeginAccount(account_id, 0, GetActiveSnapshot());
	EsEvent		ev;
	bool		unborn = false;

	EsFoldInit(state, account_id);
	while (NextEvent(it, &ev))
		FoldAsOf(it, state, &ev, as_of, &unborn, keepcxt);
	EsScanEnd(it);
}

/*
 * es_accounts_at by one sequential pass over es_events in physical order,
 * which is each account's version order in all but rare cases (the writer
 * appends an account's events in version order under its row lock),
 * keeping each account's running state in a hash table; then the states
 * sorted by account_id.  An account met out of version order is folded
 * again by its index (FoldAccountByIndex).  Reading each page once, rather
 * than once per account on it as the index walk does, and decoding only
 * what the fold reads (EsRowEventDecodeForFold) is what makes it fast; the
 * price is memory per account, so it gives up (returns false, nothing
 * emitted) past ES_AT_PHYSICAL_MAX_ACCOUNTS accounts.
 */
static bool
AccountsAtPhysical(ReturnSetInfo *rsinfo, const TimestampTz *bound,
				   MemoryContext keepcxt)
{
	Relation	heap = EsRowOpenTable(ES_REL_EVENTS, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	TableScanDesc scan = table_beginscan(heap, GetActiveSnapshot(), 0, NULL);
	MemoryContext rowcxt = AllocSetContextCreate(CurrentMemoryContext,
												 "es_accounts_at row", 0,
												 64 * 1024,
												 ALLOCSET_DEFAULT_MAXSIZE);
	at_hash    *accounts = at_create(keepcxt, 1024, NULL);
	at_iterator iter;
	AtAccount  *e;
	AtState    *a = NULL;
	AtState   **sorted;
	int64		n = 0;
	int64		events = 0;
	bool		complete = true;

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		EsEvent		ev;
		const char *problem;
		MemoryContext old;
		bool		isnull;
		int64		account_id;
		int64		version;

		CHECK_FOR_INTERRUPTS();
		if (++events % ES_SCAN_PROGRESS_EVENTS == 0)
			EsScanReportProgress("es_accounts_at", events);
		account_id = DatumGetInt64(slot_getattr(slot, ES_EV_ATT_ACCOUNT_ID, &isnull));
		if (isnull)
			EsRowEventFromValues(slot->tts_values, slot->tts_isnull, &ev);	/* ES012 */
		if (a == NULL || a->state.account_id != account_id)
		{
			bool		found;

			e = at_insert(accounts, account_id, &found);
			if (!found)
			{
				if (accounts->members > ES_AT_PHYSICAL_MAX_ACCOUNTS)
				{
					complete = false;
					break;
				}
				e->st = MemoryContextAlloc(keepcxt, sizeof(AtState));
				EsFoldInit(&e->st->state, account_id);
				e->st->next_version = 1;
				e->st->unborn = false;
				e->st->deferred = false;
			}
			a = e->st;
		}
		if (a->deferred)
			continue;
		version = DatumGetInt64(slot_getattr(slot, ES_EV_ATT_VERSION, &isnull));
		if (isnull || version != a->next_version)
		{
			a->deferred = true;
			continue;
		}
		a->next_version++;
		if (a->unborn)
			continue;

		MemoryContextReset(rowcxt);
		old = MemoryContextSwitchTo(rowcxt);
		problem = EsRowEventDecodeForFold(slot, &ev);
		if (problem)
			EsRowEventFromValues(slot->tts_values, slot->tts_isnull, &ev);	/* ES012 */
		if (bound && ev.recorded_at > *bound)
		{
			if (ev.version == 1)
				a->unborn = true;
		}
		else
		{
			/* The opening event's texts are kept by the state. */
			if (ev.type == ES_EV_ACCOUNT_OPENED)
				MemoryContextSwitchTo(keepcxt);
			EsFoldEvent(&a->state, &ev);
		}
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(heap, AccessShareLock);
	MemoryContextDelete(rowcxt);
	if (!complete)
	{
		at_destroy(accounts);
		return false;
	}

	/* The accounts met out of order, by index; then all by account_id. */
	sorted = MemoryContextAlloc(keepcxt, sizeof(AtState *) *
								Max(accounts->members, 1));
	at_start_iterate(accounts, &iter);
	while ((e = at_iterate(accounts, &iter)) != NULL)
	{
		a = e->st;
		if (a->deferred)
			FoldAccountByIndex(e->account_id, bound, &a->state, keepcxt);
		if (a->state.status != ES_ACCOUNT_NONE)
			sorted[n++] = a;
	}
	qsort(sorted, n, sizeof(AtState *), CompareAtAccounts);
	for (int64 i = 0; i < n; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(keepcxt);
		Datum		values[ES_ACC_NATTS];
		bool		nulls[ES_ACC_NATTS];

		EsRowStateToValues(&sorted[i]->state, values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(old);
	}
	at_destroy(accounts);
	return true;
}

/*
 * es_accounts_at(as_of timestamptz) RETURNS SETOF es_accounts
 *
 * The whole ledger as it was known at as_of (transaction time): one row per
 * account whose AccountOpened was recorded at or before as_of, folded from
 * its events recorded at or before as_of (what es_replay(account, as_of)
 * returns for each), ordered by account_id.  as_of NULL means now: then the
 * rows are those of es_accounts, read from the log alone.
 *
 * One pass over es_events in physical order (AccountsAtPhysical), each
 * account's state in a hash table; past ES_AT_PHYSICAL_MAX_ACCOUNTS
 * accounts, one walk of es_events_account_version_key instead, one
 * account's state in memory at a time.  Both fold with EsFoldEvent.
 *
 * Errors: ES012 for a damaged row or an event that cannot be folded, 22003
 * for a balance out of the bigint range, 55000 if es_accounts does not have
 * the shape this library writes.
 *
 * Locks: AccessShareLock on es_events and es_events_account_version_key;
 * reads the statement's snapshot; works on a hot standby.
 */
PG_FUNCTION_INFO_V1(es_accounts_at);
Datum
es_accounts_at(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz as_of = PG_ARGISNULL(0) ? 0 : PG_GETARG_TIMESTAMPTZ(0);
	const TimestampTz *bound = PG_ARGISNULL(0) ? NULL : &as_of;
	MemoryContext keepcxt;
	EsScanIter *it;
	EsAccountState state;
	EsEvent		ev;
	bool		have_account = false;
	bool		unborn = false;

	InitMaterializedSRF(fcinfo, 0);
	EsRowCheckShape(rsinfo->setDesc, ES_REL_ACCOUNTS, "es_accounts_at");
	if (bound)
		EsScanWarnIfNotFinal(as_of);

	keepcxt = AllocSetContextCreate(CurrentMemoryContext, "es_accounts_at accounts",
									ALLOCSET_DEFAULT_SIZES);
	if (AccountsAtPhysical(rsinfo, bound, keepcxt))
	{
		MemoryContextDelete(keepcxt);
		return (Datum) 0;
	}
	MemoryContextReset(keepcxt);
	it = EsScanBegin(ES_REL_EVENTS, ES_REL_EVENTS_VERSION_IDX, false, 0,
					 GetActiveSnapshot());
	while (NextEvent(it, &ev))
	{
		if (!have_account || ev.account_id != state.account_id)
		{
			/* The next account's events begin. */
			if (have_account && state.status != ES_ACCOUNT_NONE)
				EmitAccount(rsinfo, &state, keepcxt);
			MemoryContextReset(keepcxt);
			EsFoldInit(&state, ev.account_id);
			have_account = true;
			unborn = false;
		}
		FoldAsOf(it, &state, &ev, bound, &unborn, keepcxt);
	}
	if (have_account && state.status != ES_ACCOUNT_NONE)
		EmitAccount(rsinfo, &state, keepcxt);
	EsScanEnd(it);
	MemoryContextDelete(keepcxt);
	return (Datum) 0;
}
