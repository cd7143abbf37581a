/*-------------------------------------------------------------------------
 *
 * es_store.c
 *	  The read side of storage: reading the log for replay, through SPI.
 *
 * Replay reads es_events only (never the projections, so that it can check
 * them).  Its statements are plans prepared once per backend as generic
 * plans and kept (SPI_keepplan), so no call plans or parses anything.
 * Table names are resolved through the caller's search_path, which every
 * es_ledger function pins to the extension's schema.  Callers bracket their
 * use with EsStoreConnect and EsStoreFinish (SPI_connect / SPI_finish).
 * The write side, at executor level, is es_write.c.
 *
 * Locks: AccessShareLock on es_events; no row locks.  Works on a hot
 * standby.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "es_ledger.h"

/* The columns of es_events that the fold and the hash cover. */
#define ES_EVENT_COLS \
	"seq, account_id, version, type, amount, data, command_id, recorded_at, " \
	"effective_at, checksum, hash"

typedef enum EsPlanId
{
	PLAN_SCAN_ACCOUNT,
	PLAN_FIND_OPENED,
	PLAN_COUNT
} EsPlanId;

typedef struct EsPlanDef
{
	const char *sql;
	int			nargs;
	Oid			argtypes[3];
} EsPlanDef;

static const EsPlanDef EsPlanDefs[PLAN_COUNT] = {
	[PLAN_SCAN_ACCOUNT] = {
		"SELECT " ES_EVENT_COLS " FROM es_events WHERE account_id = $1 "
		"AND ($2::timestamptz IS NULL OR recorded_at <= $2) "
		"AND ($3::timestamptz IS NULL OR effective_at <= $3 OR version = 1) "
		"ORDER BY version",
		3, {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID}
	},
	[PLAN_FIND_OPENED] = {
		"SELECT account_id FROM es_events "
		"WHERE type = 'AccountOpened' AND (data ->> 'account') = $1",
		1, {TEXTOID}
	},
};

static SPIPlanPtr EsPlans[PLAN_COUNT];

/* The kept plan of a statement, prepared on first use. */
static SPIPlanPtr
GetPlan(EsPlanId id)
{
	if (EsPlans[id] == NULL)
	{
		const EsPlanDef *def = &EsPlanDefs[id];
		SPIPlanPtr	plan;

		plan = SPI_prepare_cursor(def->sql, def->nargs, (Oid *) def->argtypes,
								  CURSOR_OPT_GENERIC_PLAN);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 def->sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		EsPlans[id] = plan;
	}
	return EsPlans[id];
}

/* Run a kept plan; nulls as SPI wants them (' ' or 'n'). */
static int
RunPlan(EsPlanId id, Datum *values, const char *nulls, bool read_only,
		int expected)
{
	int			rc;

	rc = SPI_execute_plan(GetPlan(id), values, nulls, read_only, 0);
	if (rc != expected)
		elog(ERROR, "es_ledger statement \"%s\" failed: %s",
			 EsPlanDefs[id].sql, SPI_result_code_string(rc));
	return rc;
}

/* SPI_connect, for a run of store calls. */
void
EsStoreConnect(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/* SPI_finish, at the end of a run of store calls. */
void
EsStoreFinish(void)
{
	SPI_finish();
}

/*
 * The id of the account named, read from its AccountOpened event in the log
 * (not from the projection).  False if none.
 */
bool
EsStoreFindAccountInLog(const char *account, int64 *account_id)
{
	Datum		arg = CStringGetTextDatum(account);
	bool		isnull;
	bool		found = false;

	RunPlan(PLAN_FIND_OPENED, &arg, NULL, true, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		*account_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 1,
												  &isnull));
		found = true;
	}
	SPI_freetuptable(SPI_tuptable);
	return found;
}

/* Copy a text column into a C string in the current memory context. */
static char *
GetText(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* Get an int8 column; 0 and false when NULL. */
static int64
GetInt64(HeapTuple tup, TupleDesc desc, int col, bool *present)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (present)
		*present = !isnull;
	return isnull ? 0 : DatumGetInt64(d);
}

/* Get a timestamptz column; 0 when NULL. */
static TimestampTz
GetTimestamp(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? 0 : DatumGetTimestampTz(d);
}

/* Copy a bytea column of ES_HASH_LEN bytes; zeroes when absent or short. */
static void
GetHash(HeapTuple tup, TupleDesc desc, int col, uint8 *out)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		memset(out, 0, ES_HASH_LEN);
	else
		EsHashFromDatum(d, out);
}

/*
 * Feed an account's events, in version order, to callback.  as_of bounds
 * recorded_at and effective_until bounds effective_at (the opening event is
 * always included); NULL means no bound.  Returns the number of events read.
 */
int64
EsStoreScanAccount(int64 account_id, TimestampTz *as_of,
				   TimestampTz *effective_until,
				   EsEventCallback callback, void *arg)
{
	Datum		args[3];
	char		nulls[3] = {' ', ' ', ' '};
	Portal		portal;
	int64		count = 0;

	args[0] = Int64GetDatum(account_id);
	args[1] = as_of ? TimestampTzGetDatum(*as_of) : (Datum) 0;
	nulls[1] = as_of ? ' ' : 'n';
	args[2] = effective_until ? TimestampTzGetDatum(*effective_until) : (Datum) 0;
	nulls[2] = effective_until ? ' ' : 'n';

	portal = SPI_cursor_open(NULL, GetPlan(PLAN_SCAN_ACCOUNT), args, nulls,
							 true);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			EsEvent		ev;
			bool		isnull;
			char	   *type;

			ev.seq = GetInt64(tup, desc, 1, NULL);
			ev.account_id = GetInt64(tup, desc, 2, NULL);
			ev.version = GetInt64(tup, desc, 3, NULL);
			type = GetText(tup, desc, 4);
			ev.type = type ? EsEventTypeFromName(type) : ES_EV_INVALID;
			ev.amount = GetInt64(tup, desc, 5, NULL);
			ev.data = DatumGetJsonbP(SPI_getbinval(tup, desc, 6, &isnull));
			ev.command_id = GetText(tup, desc, 7);
			ev.recorded_at = GetTimestamp(tup, desc, 8);
			ev.effective_at = GetTimestamp(tup, desc, 9);
			ev.checksum = (uint32) GetInt64(tup, desc, 10, NULL);
			GetHash(tup, desc, 11, ev.hash);
			callback(&ev, arg);
			count++;
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	return count;
}
