/*-------------------------------------------------------------------------
 *
 * es_store.c
 *	  Reading and writing the log (es_events), the account projection
 *	  (es_accounts) and the idempotency register (es_commands).
 *
 * Every statement is a plan prepared once per backend and kept (SPI_keepplan),
 * so the hot path parses nothing.  Table names are resolved through the
 * caller's search_path, which every es_ledger function pins to the
 * extension's schema.  Callers bracket their use with EsStoreConnect and
 * EsStoreFinish (SPI_connect / SPI_finish) and hold the write guard while
 * they write.
 *
 * Locks: EsStoreLockAccounts takes the row locks (FOR UPDATE) on the
 * projection rows of the accounts a command names, in one statement that
 * sorts them by account_id, so every command locks in ascending account_id
 * order.  Those row locks are what serialise commands on one account.
 * Reads take no row locks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "es_ledger.h"

/* The columns of es_accounts, in table order. */
#define ES_ACCOUNT_COLS \
	"account_id, account, currency, status, balance, pending_out, pending_in, " \
	"available, overdraft_limit, max_balance, version, last_seq, opened_at, " \
	"updated_at, last_hash"
#define ES_ACCOUNT_NCOLS 15

/* The columns of es_events that the fold and the hash cover. */
#define ES_EVENT_COLS \
	"seq, account_id, version, type, amount, data, command_id, recorded_at, " \
	"effective_at, checksum, hash"
#define ES_EVENT_NCOLS 11

/* ... and what is written with them: the encoding's format version. */
#define ES_EVENT_INSERT_COLS ES_EVENT_COLS ", format"
#define ES_EVENT_INSERT_NCOLS (ES_EVENT_NCOLS + 1)

typedef enum EsPlanId
{
	PLAN_LOOKUP_ACCOUNT,
	PLAN_LOCK_ACCOUNTS,
	PLAN_INSERT_ACCOUNT,
	PLAN_UPDATE_ACCOUNT,
	PLAN_INSERT_EVENT,
	PLAN_FIND_COMMAND,
	PLAN_INSERT_COMMAND,
	PLAN_SCAN_ACCOUNT,
	PLAN_FIND_OPENED,
	PLAN_COUNT
} EsPlanId;

typedef struct EsPlanDef
{
	const char *sql;
	int			nargs;
	Oid			argtypes[ES_ACCOUNT_NCOLS];	/* the most any plan takes */
} EsPlanDef;

static const EsPlanDef EsPlanDefs[PLAN_COUNT] = {
	[PLAN_LOOKUP_ACCOUNT] = {
		"SELECT account_id FROM es_accounts WHERE account = $1",
		1, {TEXTOID}
	},
	[PLAN_LOCK_ACCOUNTS] = {
		"SELECT " ES_ACCOUNT_COLS " FROM es_accounts WHERE account = ANY ($1) "
		"ORDER BY account_id FOR UPDATE",
		1, {TEXTARRAYOID}
	},
	[PLAN_INSERT_ACCOUNT] = {
		"INSERT INTO es_accounts (" ES_ACCOUNT_COLS ") VALUES "
		"($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) "
		"ON CONFLICT (account) DO NOTHING",
		ES_ACCOUNT_NCOLS,
		{INT8OID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID,
		INT8OID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, BYTEAOID}
	},
	[PLAN_UPDATE_ACCOUNT] = {
		"UPDATE es_accounts SET status = $4, balance = $5, pending_out = $6, "
		"pending_in = $7, available = $8, overdraft_limit = $9, max_balance = $10, "
		"version = $11, last_seq = $12, updated_at = $14, last_hash = $15 "
		"WHERE account_id = $1",
		ES_ACCOUNT_NCOLS,
		{INT8OID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID,
		INT8OID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, BYTEAOID}
	},
	[PLAN_INSERT_EVENT] = {
		"INSERT INTO es_events (" ES_EVENT_INSERT_COLS ") VALUES "
		"($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
		ES_EVENT_INSERT_NCOLS,
		{INT8OID, INT8OID, INT8OID, TEXTOID, INT8OID, JSONBOID, TEXTOID,
		TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID, BYTEAOID, INT2OID}
	},
	[PLAN_FIND_COMMAND] = {
		"SELECT command, seq FROM es_commands WHERE command_id = $1",
		1, {TEXTOID}
	},
	[PLAN_INSERT_COMMAND] = {
		"INSERT INTO es_commands (command_id, command, seq) VALUES ($1, $2, $3)",
		3, {TEXTOID, JSONBOID, INT8OID}
	},
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

		plan = SPI_prepare(def->sql, def->nargs, (Oid *) def->argtypes);
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

/* nextval of one of the extension's sequences, without permission checks. */
static int64
NextVal(const char *seqname)
{
	Oid			seqoid = RelnameGetRelid(seqname);

	if (!OidIsValid(seqoid))
		elog(ERROR, "sequence \"%s\" of es_ledger not found", seqname);
	return nextval_internal(seqoid, false);
}

/* The next global position in the log. */
int64
EsStoreNextSeq(void)
{
	return NextVal("es_events_seq_seq");
}

/* A new account id. */
int64
EsStoreNextAccountId(void)
{
	return NextVal("es_accounts_account_id_seq");
}

/* The id of the account named, without locking it.  False if none. */
bool
EsStoreLookupAccountId(const char *account, int64 *account_id)
{
	Datum		arg = CStringGetTextDatum(account);
	bool		isnull;
	bool		found = false;

	RunPlan(PLAN_LOOKUP_ACCOUNT, &arg, NULL, false, SPI_OK_SELECT);
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

	memset(out, 0, ES_HASH_LEN);
	if (!isnull)
	{
		bytea	   *b = DatumGetByteaPP(d);

		if (VARSIZE_ANY_EXHDR(b) == ES_HASH_LEN)
			memcpy(out, VARDATA_ANY(b), ES_HASH_LEN);
	}
}

/* A bytea Datum holding a hash. */
static Datum
HashDatum(const uint8 *hash)
{
	bytea	   *b = palloc(VARHDRSZ + ES_HASH_LEN);

	SET_VARSIZE(b, VARHDRSZ + ES_HASH_LEN);
	memcpy(VARDATA(b), hash, ES_HASH_LEN);
	return PointerGetDatum(b);
}

/* Read an es_accounts row (ES_ACCOUNT_COLS) into a state. */
static void
RowToState(HeapTuple tup, TupleDesc desc, EsAccountState *state)
{
	EsStateInit(state, GetInt64(tup, desc, 1, NULL));
	state->account = GetText(tup, desc, 2);
	state->currency = GetText(tup, desc, 3);
	state->status = EsStatusFromName(GetText(tup, desc, 4));
	state->balance = GetInt64(tup, desc, 5, NULL);
	state->pending_out = GetInt64(tup, desc, 6, NULL);
	state->pending_in = GetInt64(tup, desc, 7, NULL);
	state->available = GetInt64(tup, desc, 8, NULL);
	state->overdraft_limit = GetInt64(tup, desc, 9, NULL);
	state->max_balance = GetInt64(tup, desc, 10, &state->has_max_balance);
	state->version = GetInt64(tup, desc, 11, NULL);
	state->last_seq = GetInt64(tup, desc, 12, NULL);
	state->opened_at = GetTimestamp(tup, desc, 13);
	state->updated_at = GetTimestamp(tup, desc, 14);
	GetHash(tup, desc, 15, state->last_hash);
}

/*
 * Lock the projection rows of the accounts named (FOR UPDATE, in ascending
 * account_id order, in one statement) and read their states.  states[i]
 * receives names[i]'s state and found[i] whether it exists; names may
 * repeat.  Returns the number of distinct accounts locked.
 */
int
EsStoreLockAccounts(const char *const *names, int n, EsAccountState *states,
					bool *found)
{
	Datum	   *elems = palloc(sizeof(Datum) * n);
	Datum		arg;
	uint64		nrows;

	for (int i = 0; i < n; i++)
	{
		elems[i] = CStringGetTextDatum(names[i]);
		found[i] = false;
	}
	arg = PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false,
										  TYPALIGN_INT));
	RunPlan(PLAN_LOCK_ACCOUNTS, &arg, NULL, false, SPI_OK_SELECT);
	nrows = SPI_processed;
	for (uint64 r = 0; r < nrows; r++)
	{
		EsAccountState state;

		RowToState(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, &state);
		for (int i = 0; i < n; i++)
			if (!found[i] && strcmp(names[i], state.account) == 0)
			{
				states[i] = state;
				found[i] = true;
			}
	}
	SPI_freetuptable(SPI_tuptable);
	pfree(elems);
	return (int) nrows;
}

/* The projection row of a state, as Datums in table order. */
static void
StateToValues(const EsAccountState *state, Datum *values, bool *isnull)
{
	memset(isnull, 0, sizeof(bool) * ES_ACCOUNT_NCOLS);
	values[0] = Int64GetDatum(state->account_id);
	values[1] = CStringGetTextDatum(state->account);
	values[2] = CStringGetTextDatum(state->currency);
	values[3] = CStringGetTextDatum(EsStatusName(state->status));
	values[4] = Int64GetDatum(state->balance);
	values[5] = Int64GetDatum(state->pending_out);
	values[6] = Int64GetDatum(state->pending_in);
	values[7] = Int64GetDatum(state->available);
	values[8] = Int64GetDatum(state->overdraft_limit);
	values[9] = Int64GetDatum(state->max_balance);
	isnull[9] = !state->has_max_balance;
	values[10] = Int64GetDatum(state->version);
	values[11] = Int64GetDatum(state->last_seq);
	values[12] = TimestampTzGetDatum(state->opened_at);
	values[13] = TimestampTzGetDatum(state->updated_at);
	values[14] = HashDatum(state->last_hash);
}

/* Run an account plan with a state's row as its parameters. */
static void
RunAccountPlan(EsPlanId id, const EsAccountState *state, int expected)
{
	Datum		values[ES_ACCOUNT_NCOLS];
	bool		isnull[ES_ACCOUNT_NCOLS];
	char		nulls[ES_ACCOUNT_NCOLS];

	StateToValues(state, values, isnull);
	for (int i = 0; i < ES_ACCOUNT_NCOLS; i++)
		nulls[i] = isnull[i] ? 'n' : ' ';
	RunPlan(id, values, nulls, false, expected);
}

/*
 * Insert a new account's projection row.  False, and nothing written, when
 * an account of that name exists (or is being created by a concurrent
 * transaction, which this waits for).
 */
bool
EsStoreInsertAccount(const EsAccountState *state)
{
	RunAccountPlan(PLAN_INSERT_ACCOUNT, state, SPI_OK_INSERT);
	return SPI_processed == 1;
}

/* Write an account's projection row. */
void
EsStoreUpdateAccount(const EsAccountState *state)
{
	RunAccountPlan(PLAN_UPDATE_ACCOUNT, state, SPI_OK_UPDATE);
	if (SPI_processed != 1)
		elog(ERROR, "projection row of account %lld vanished",
			 (long long) state->account_id);
}

/* Append one sealed event to the log. */
void
EsStoreInsertEvent(const EsEvent *ev)
{
	Datum		values[ES_EVENT_INSERT_NCOLS];
	char		nulls[ES_EVENT_INSERT_NCOLS];

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(ev->seq);
	values[1] = Int64GetDatum(ev->account_id);
	values[2] = Int64GetDatum(ev->version);
	values[3] = CStringGetTextDatum(EsEventTypeName(ev->type));
	values[4] = Int64GetDatum(ev->amount);
	values[5] = JsonbPGetDatum(ev->data);
	if (ev->command_id)
		values[6] = CStringGetTextDatum(ev->command_id);
	else
		nulls[6] = 'n';
	values[7] = TimestampTzGetDatum(ev->recorded_at);
	values[8] = TimestampTzGetDatum(ev->effective_at);
	values[9] = Int64GetDatum((int64) ev->checksum);
	values[10] = HashDatum(ev->hash);
	values[11] = Int16GetDatum(ES_EVENT_FORMAT_VERSION);
	RunPlan(PLAN_INSERT_EVENT, values, nulls, false, SPI_OK_INSERT);
}

/*
 * Look up an applied command by its idempotency key.  The command is copied
 * into the current memory context.
 */
bool
EsStoreFindCommand(const char *id, Jsonb **command, int64 *seq)
{
	Datum		arg = CStringGetTextDatum(id);
	bool		isnull;
	bool		found = false;

	RunPlan(PLAN_FIND_COMMAND, &arg, NULL, false, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		*command = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 1, &isnull));
		*seq = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		found = true;
	}
	SPI_freetuptable(SPI_tuptable);
	return found;
}

/* Register an applied command under its idempotency key. */
void
EsStoreInsertCommand(const char *id, Jsonb *command, int64 seq)
{
	Datum		values[3];

	values[0] = CStringGetTextDatum(id);
	values[1] = JsonbPGetDatum(command);
	values[2] = Int64GetDatum(seq);
	RunPlan(PLAN_INSERT_COMMAND, values, NULL, false, SPI_OK_INSERT);
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

/*
 * An account state as a Datum of the composite type es_accounts (tupdesc),
 * allocated in the current memory context.
 */
Datum
EsStateToDatum(const EsAccountState *state, TupleDesc tupdesc)
{
	Datum		values[ES_ACCOUNT_NCOLS];
	bool		isnull[ES_ACCOUNT_NCOLS];

	if (tupdesc->natts != ES_ACCOUNT_NCOLS)
		elog(ERROR, "es_accounts has %d columns, expected %d",
			 tupdesc->natts, ES_ACCOUNT_NCOLS);
	StateToValues(state, values, isnull);
	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values,
											 isnull));
}
