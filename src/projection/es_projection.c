/*-------------------------------------------------------------------------
 *
 * es_projection.c
 *	  User projections: the SQL functions that register, pause, resume,
 *	  rebuild, drop and run them, and the step that applies the next batch
 *	  of events to an async projection by following es_read.
 *
 * The registry es_projection_registry (install script, "user projections")
 * is written here only, through SPI, as the extension's owner and under the
 * write guard (es_guard.c), whose trigger refuses every other write with
 * ES011.  Its statements name our relations schema-qualified, found by OID
 * (es_row.c, es_handler.c), and qualify their operators.  User code never
 * runs in those statements: handlers and reset functions run through
 * es_handler.c, as the projection's owner, outside the guard.
 *
 * Who may do what: EXECUTE on these functions is granted to
 * es_ledger_admin; creating a projection makes the caller its owner; the
 * other functions need the privileges of the owner (or superuser), 42501.
 * The owner must be able to SELECT es_events and EXECUTE the functions
 * (es_handler.c checks it at every run).
 *
 * Inline projections.  es_apply calls their handlers for the events it
 * appends (es_handler.c).  Creating, pausing, resuming, rebuilding or
 * dropping one takes ShareLock on es_events: it waits for every
 * transaction that appends and keeps new ones out until it commits.  Under
 * that lock the committed events are all the events there will ever be
 * below the sequence's current value, so a position is a plain seq:
 * catching up (at create, resume, rebuild) calls the handler for every
 * event above the projection's position, in seq order, in the caller's
 * transaction; a handler error fails the call.  The registry is changed
 * with a relcache invalidation so that every backend re-reads it.
 *
 * Async projections.  A step (EsProjectionStep: the background worker,
 * es_worker.c, or es_projection_run) locks the projection's registry row
 * (FOR UPDATE: one step at a time per projection), reads the next batch of
 * events with es_read's C API (EsReadBatch, es_read.c) from the cursor
 * stored in the row, with a snapshot taken after the lock, calls the handler
 * for each, in es_read's order, then stores the cursor of the last one,
 * all in one transaction: the handler's writes and the cursor commit
 * together or not at all, so a crash neither applies an event twice nor
 * skips one.  The handlers run in a subtransaction: if one fails, the
 * batch is rolled back, the projection is marked failed with the error and
 * the event's seq, and the step commits that; es_apply is never blocked.
 * es_projection_resume retries from the cursor.  A real cancel or shutdown
 * (57014, 57P01 raised by ProcessInterrupts) is not a handler failure: it
 * is raised; the same SQLSTATE raised by a handler is its failure
 * (IsInterrupt).  es_projection_run locks only the rows of projections the
 * caller may run (PeekOwner first).
 *
 * Locks: ShareLock on es_events for inline changes; the registry row's
 * FOR UPDATE lock; RowExclusiveLock on the registry when writing it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "projection.h"

/* es_ledger.projection_batch: events per step of an async projection. */
static int	EsProjectionBatch = 1000;

/* es_ledger.projection_autostart: start the database's worker on first use. */
static bool EsProjectionAutostart = true;

/* es_ledger.projection_databases: the databases workers follow; empty: all. */
static char *EsProjectionDatabases = NULL;

/* A registry row: the projection and its position. */
typedef struct EsProjectionRow
{
	EsHandlerProjection p;
	char	   *cursor;			/* NULL: from the start of the log */
	int64		last_seq;
	int64		high_seq;
} EsProjectionRow;

/* Longest projection name, in bytes. */
#define ES_PROJECTION_NAME_MAX 63

/* Define es_ledger.projection_batch; called once from _PG_init. */
void
EsProjectionInit(void)
{
	DefineCustomIntVariable("es_ledger.projection_batch",
							"Events an async projection applies per transaction.",
							"The background worker and es_projection_run commit an async "
							"projection's cursor after each batch of this many events.",
							&EsProjectionBatch,
							1000, 1, 100000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("es_ledger.projection_autostart",
							 "Starts the database's projection worker when an async projection is created, resumed or rebuilt.",
							 "Without es_ledger in shared_preload_libraries, or before the launcher has "
							 "found the database, es_projection_create, es_projection_resume and "
							 "es_projection_rebuild of an async projection start the worker of the "
							 "database if none runs.  Off: only the launcher starts workers, and "
							 "es_projection_run applies async projections.",
							 &EsProjectionAutostart,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("es_ledger.projection_databases",
							   "Databases whose async projections the background workers apply.",
							   "A comma-separated list of database names; empty (the default) "
							   "means every database that accepts connections and has es_ledger.",
							   &EsProjectionDatabases,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   NULL, NULL, NULL);
}

/* ---------------------------------------------------------------- workers */

/* Is dbname one of es_ledger.projection_databases (or is the list empty)? */
bool
EsProjectionDatabaseWanted(const char *dbname)
{
	char	   *raw;
	List	   *names;
	ListCell   *lc;
	bool		found = false;

	if (EsProjectionDatabases == NULL || EsProjectionDatabases[0] == '\0')
		return true;
	raw = pstrdup(EsProjectionDatabases);
	if (!SplitIdentifierString(raw, ',', &names))
	{
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid list syntax in es_ledger.projection_databases")));
		return false;
	}
	foreach(lc, names)
	{
		if (strcmp((const char *) lfirst(lc), dbname) == 0)
			found = true;
	}
	list_free(names);
	pfree(raw);
	return found;
}

/*
 * The session lock a database's worker holds (es_worker.c): an advisory
 * lock tag with field4 = 3, which the SQL advisory lock functions (1 and
 * 2) cannot name, so no role can take it, in the default lock method, not
 * the advisory one, so that no SQL can release it either (a handler's
 * pg_advisory_unlock_all releases the session locks of the advisory lock
 * method only).  A top-level abort releases it (ProcReleaseLocks): the
 * worker takes it again after one.
 */
void
EsProjectionWorkerLockTag(LOCKTAG *tag, Oid dboid)
{
	SET_LOCKTAG_ADVISORY(*tag, dboid, ES_WORKER_LOCK_KEY1, ES_WORKER_LOCK_KEY2, 3);
	tag->locktag_lockmethodid = DEFAULT_LOCKMETHOD;
}

/* Describe the worker of database dboid, for RegisterDynamicBackgroundWorker. */
void
EsProjectionWorkerSpec(BackgroundWorker *worker, Oid dboid, const char *dbname)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher does */
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "es_ledger");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "es_projection_worker_main");
	snprintf(worker->bgw_name, BGW_MAXLEN,
			 "es_ledger projection worker for database %s", dbname);
	snprintf(worker->bgw_type, BGW_MAXLEN, "es_ledger projection worker");
	worker->bgw_main_arg = ObjectIdGetDatum(dboid);
}

/*
 * An async projection was created, resumed or rebuilt: start this
 * database's worker if none runs (its session lock is free) and
 * es_ledger.projection_autostart allows it (else wake the launcher, with
 * the library preloaded, which starts it at once).  So async projections are
 * applied without shared_preload_libraries too, until the server stops.
 * A worker that cannot be started (max_worker_processes) is a NOTICE: the
 * projection waits for the launcher or es_projection_run.
 */
static void
StartWorker(void)
{
	LOCKTAG		tag;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	char	   *dbname = get_database_name(MyDatabaseId);

	if (RecoveryInProgress() || dbname == NULL ||
		!EsProjectionDatabaseWanted(dbname))
		return;
	if (!EsProjectionAutostart)
	{
		EsWorkerWakeLauncher(MyDatabaseId);	/* if preloaded: starts it now */
		return;
	}
	EsProjectionWorkerLockTag(&tag, MyDatabaseId);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return;					/* a worker runs */
	LockRelease(&tag, ExclusiveLock, false);
	EsProjectionWorkerSpec(&worker, MyDatabaseId, dbname);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		ereport(NOTICE,
				(errmsg("could not start the projection worker of database \"%s\"", dbname),
				 errhint("Raise max_worker_processes, or apply async projections with es_projection_run().")));
}


/* ------------------------------------------------------------ the registry */

/* The registry's name, schema-qualified, for SPI statements. */
static char *
QualifiedName(const char *relname)
{
	Oid			nspoid = get_rel_namespace(EsRowRelid(ES_REL_EVENTS));

	return quote_qualified_identifier(get_namespace_name(nspoid), relname);
}

/* The registry's owner: the extension's owner. */
static Oid
RegistryOwner(void)
{
	return EsCatalogRelOwner(EsHandlerRegistryRelid());
}

/*
 * Run one SPI statement on the registry as its owner, under the write
 * guard when it writes.  Returns SPI_processed.  Only statements of this
 * file with parameters for every value; no user code runs in them.
 */
static uint64
RegistryExec(const char *sql, bool write, int nargs, Oid *types,
			 Datum *values, const char *nulls)
{
	Oid			saved_user;
	int			saved_sec;
	volatile int ret = 0;

	GetUserIdAndSecContext(&saved_user, &saved_sec);
	SetUserIdAndSecContext(RegistryOwner(),
						   saved_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (write)
		EsGuardBeginWrite();
	PG_TRY();
	{
		ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
	}
	PG_FINALLY();
	{
		if (write)
			EsGuardEndWrite();
		SetUserIdAndSecContext(saved_user, saved_sec);
	}
	PG_END_TRY();
	if (ret < 0)
		elog(ERROR, "SPI_execute_with_args failed on the projection registry: %s",
			 SPI_result_code_string(ret));
	return SPI_processed;
}

/* A nullable text column of SPI_tuptable's row i, copied, or NULL. */
static char *
SpiText(uint64 i, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
								  col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* A bigint column of SPI_tuptable's row i; 0 if NULL. */
static int64
SpiInt64(uint64 i, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
								  col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

/*
 * Read the projection's registry row and lock it FOR UPDATE, into row
 * (allocated in the current memory context).  skip_locked: return false
 * if another transaction holds it.  42704 if there is no such projection.
 */
static bool
LockProjection(const char *name, bool skip_locked, EsProjectionRow *row)
{
	char	   *sql;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	Datum		v[ES_PRJ_NREAD];
	bool		n[ES_PRJ_NREAD];
	MemoryContext cxt = CurrentMemoryContext;
	MemoryContext old;

	sql = psprintf("SELECT name, owner, mode, state, handler, reset, search_path, "
				   "cursor, last_seq, high_seq FROM %s "
				   "WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE%s",
				   QualifiedName("es_projection_registry"),
				   skip_locked ? " SKIP LOCKED" : "");
	values[0] = CStringGetTextDatum(name);
	if (RegistryExec(sql, false, 1, types, values, NULL) == 0)
	{
		if (skip_locked)
			return false;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("projection \"%s\" does not exist", name)));
	}
	EsHandlerCheckRegistryShape(SPI_tuptable->tupdesc);
	for (int i = 0; i < ES_PRJ_NREAD; i++)
		v[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
							 i + 1, &n[i]);
	old = MemoryContextSwitchTo(cxt);
	EsHandlerFromValues(v, n, &row->p);
	row->cursor = SpiText(0, 8);
	row->last_seq = SpiInt64(0, 9);
	row->high_seq = SpiInt64(0, 10);
	MemoryContextSwitchTo(old);
	return true;
}

/*
 * The owner of projection name, read without a lock (InvalidOid if there is
 * no such projection): es_projection_run checks that the caller may run a
 * projection before it locks its row, so that it never holds, even for a
 * moment or inside a savepoint, the row of a projection it may not run.
 */
static Oid
PeekOwner(const char *name)
{
	char	   *sql;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	Datum		d;

	sql = psprintf("SELECT owner FROM %s WHERE name OPERATOR(pg_catalog.=) $1",
				   QualifiedName("es_projection_registry"));
	values[0] = CStringGetTextDatum(name);
	if (RegistryExec(sql, false, 1, types, values, NULL) == 0)
		return InvalidOid;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? InvalidOid : DatumGetObjectId(d);
}

/* Every backend re-reads the inline projections (es_handler.c). */
static void
InvalidateRegistry(void)
{
	CacheInvalidateRelcacheByRelid(EsHandlerRegistryRelid());
}

/*
 * Set a projection's state and position.  cursor NULL: from the start;
 * clear_error: forget the last error.  applied_delta < 0 resets the count.
 */
static void
UpdatePosition(const char *name, const char *state, const char *cursor,
			   int64 last_seq, int64 high_seq, int64 applied_delta,
			   bool clear_error)
{
	char	   *sql;
	Oid			types[6] = {TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID};
	Datum		values[6];
	char		nulls[6] = "      ";

	sql = psprintf("UPDATE %s SET state = $2, cursor = $3, last_seq = $4, high_seq = $5, "
				   "applied = CASE WHEN $6 OPERATOR(pg_catalog.<) 0 THEN 0 "
				   "ELSE applied OPERATOR(pg_catalog.+) $6 END, "
				   "applied_at = CASE WHEN $6 OPERATOR(pg_catalog.>) 0 THEN pg_catalog.now() "
				   "WHEN $6 OPERATOR(pg_catalog.<) 0 THEN NULL ELSE applied_at END%s "
				   "WHERE name OPERATOR(pg_catalog.=) $1",
				   QualifiedName("es_projection_registry"),
				   clear_error ? ", last_error = NULL, error_seq = NULL, error_at = NULL" : "");
	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(state);
	if (cursor)
		values[2] = CStringGetTextDatum(cursor);
	else
		nulls[2] = 'n';
	values[3] = Int64GetDatum(last_seq);
	values[4] = Int64GetDatum(high_seq);
	values[5] = Int64GetDatum(applied_delta);
	if (RegistryExec(sql, true, 6, types, values, nulls) != 1)
		elog(ERROR, "projection \"%s\" vanished from the registry", name);
}

/* Mark an async projection failed with the error of its handler. */
static void
MarkFailed(const char *name, ErrorData *edata, int64 seq)
{
	char	   *sql;
	Oid			types[3] = {TEXTOID, TEXTOID, INT8OID};
	Datum		values[3];
	char		nulls[3] = "   ";
	StringInfoData msg;

	initStringInfo(&msg);
	appendStringInfo(&msg, "%s: %s", unpack_sql_state(edata->sqlerrcode),
					 edata->message ? edata->message : "(no message)");
	if (edata->context)
	{
		appendStringInfoString(&msg, " (");
		for (const char *c = edata->context; *c; c++)
		{
			if (*c == '\n')
				appendStringInfoString(&msg, "; ");
			else
				appendStringInfoChar(&msg, *c);
		}
		appendStringInfoChar(&msg, ')');
	}
	sql = psprintf("UPDATE %s SET state = 'failed', last_error = $2, error_seq = $3, "
				   "error_at = pg_catalog.now() WHERE name OPERATOR(pg_catalog.=) $1",
				   QualifiedName("es_projection_registry"));
	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(msg.data);
	values[2] = Int64GetDatum(seq);
	if (seq <= 0)
		nulls[2] = 'n';
	RegistryExec(sql, true, 3, types, values, nulls);
}

/* ------------------------------------------------------------------ checks */

/* Refuse a NULL argument: 22004. */
static void
NotNull(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("projection %s must not be null", what)));
}

/* A projection name: 1 to 63 lower-case letters, digits or _, a letter first. */
static void
CheckName(const char *name)
{
	size_t		len = strlen(name);
	bool		ok;

	ok = len >= 1 && len <= ES_PROJECTION_NAME_MAX &&
		name[0] >= 'a' && name[0] <= 'z';

	for (size_t i = 0; ok && i < len; i++)
		ok = (name[i] >= 'a' && name[i] <= 'z') ||
			(name[i] >= '0' && name[i] <= '9') || name[i] == '_';
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid projection name \"%s\"", name),
				 errdetail("A projection name is 1 to %d lower-case letters, digits or underscores, starting with a letter.",
						   ES_PROJECTION_NAME_MAX)));
}

/* The caller must have the privileges of the projection's owner: 42501. */
static void
CheckManage(const EsHandlerProjection *p)
{
	if (superuser() || has_privs_of_role(GetUserId(), p->owner))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("must be owner of projection \"%s\"", p->name),
			 errdetail("Only its owner (the role that created it, or a member of that role) or a superuser may manage a projection.")));
}

/* --------------------------------------------------------- running handlers */

/*
 * Call the projection's reset function, if it has one, as its owner, in
 * the caller's transaction.
 */
static void
RunReset(const EsHandlerProjection *p)
{
	EsHandlerContext ctx;
	ErrorContextCallback errcb;
	EsHandlerErrorArg arg = {p->name, 0};

	if (!OidIsValid(p->reset))
		return;
	errcb.callback = EsHandlerErrorContext;
	errcb.arg = &arg;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	EsHandlerEnter(p, &ctx, true);
	EsHandlerInvoke(&ctx, (Datum) 0, 0);
	EsHandlerLeave(&ctx);
	error_context_stack = errcb.previous;
}

/*
 * An inline projection catches up: its handler is called for every event
 * above after_seq, in seq order, as its owner.  The caller holds ShareLock
 * on es_events (see the file header).  Returns the number of events and
 * the last seq in *last.
 */
static int64
CatchUpInline(const EsHandlerProjection *p, int64 after_seq, int64 *last)
{
	char	   *sql = psprintf("SELECT e.seq, e FROM %s e WHERE e.seq OPERATOR(pg_catalog.>) $1 "
							   "ORDER BY e.seq LIMIT 1000",
							   QualifiedName("es_events"));
	SPIPlanPtr	plan;
	Oid			types[1] = {INT8OID};
	EsHandlerContext ctx;
	ErrorContextCallback errcb;
	EsHandlerErrorArg arg = {p->name, 0};
	volatile int64 count = 0;

	*last = after_seq;
	EsHandlerCheckAccess(p);
	EsHandlerEnter(p, &ctx, false);
	plan = SPI_prepare(sql, 1, types);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	errcb.callback = EsHandlerErrorContext;
	errcb.arg = &arg;
	errcb.previous = error_context_stack;
	/* Events the handler's own es_apply appends are read below, once. */
	EsHandlerSetCatchingUp(p->name);
	PG_TRY();
	{
		for (;;)
		{
			Datum		values[1] = {Int64GetDatum(*last)};
			SPITupleTable *tuptable;
			uint64		n;
			int			ret;

			CHECK_FOR_INTERRUPTS();
			ret = SPI_execute_plan(plan, values, NULL, false, 0);
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
			tuptable = SPI_tuptable;
			n = SPI_processed;
			if (n == 0)
				break;
			for (uint64 i = 0; i < n; i++)
			{
				bool		isnull;
				Datum		ev;

				arg.seq = DatumGetInt64(SPI_getbinval(tuptable->vals[i],
													  tuptable->tupdesc, 1, &isnull));
				ev = SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, 2, &isnull);
				error_context_stack = &errcb;
				EsHandlerInvoke(&ctx, ev, 1);
				error_context_stack = errcb.previous;
				*last = arg.seq;
				count++;
			}
			SPI_freetuptable(tuptable);
		}
	}
	PG_FINALLY();
	{
		EsHandlerSetCatchingUp(NULL);
	}
	PG_END_TRY();
	SPI_freeplan(plan);
	EsHandlerLeave(&ctx);
	return count;
}

/* The largest seq in the log, 0 if empty. */
static int64
LogHead(void)
{
	char	   *sql = psprintf("SELECT pg_catalog.max(seq) FROM %s",
							   QualifiedName("es_events"));

	/* Not read-only: a snapshot taken now, after LockLog's wait. */
	if (SPI_execute(sql, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the head of the log");
	return SpiInt64(0, 1);
}

/*
 * Wait for every appending transaction, and keep new ones out (see the file
 * header).  The reads that follow take their snapshots after the wait, so
 * they see every committed event: READ COMMITTED only, since a transaction
 * snapshot taken before the wait would miss events (a catch-up would skip
 * them, a pause would record a position too low and apply them twice).
 */
static void
LockLog(void)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("an inline projection can be changed only in a READ COMMITTED transaction"),
				 errdetail("Creating, pausing, resuming, rebuilding or dropping an inline projection reads the log after waiting for every appending transaction; a transaction snapshot taken earlier would miss events.")));
	LockRelationOid(EsRowRelid(ES_REL_EVENTS), ShareLock);
}

/* The events of one step, read by es_read before any handler runs. */
typedef struct StepEvent
{
	EsReadCursor pos;			/* the cursor after it */
	Datum		row;			/* es_events row for the handler */
} StepEvent;

typedef struct StepBatch
{
	MemoryContext cxt;
	List	   *events;			/* of StepEvent */
} StepBatch;

/* EsReadBatch's callback: keep the event and its cursor for the handler. */
static void
CollectEvent(const EsEvent *ev, const EsReadCursor *pos, void *arg)
{
	StepBatch  *b = arg;
	MemoryContext old = MemoryContextSwitchTo(b->cxt);
	StepEvent  *se = palloc(sizeof(StepEvent));

	se->pos = *pos;
	se->row = EsHandlerEventDatum(ev, &pos->tx);
	b->events = lappend(b->events, se);
	MemoryContextSwitchTo(old);
}

/*
 * Try to apply the next batch (at most max events) of an async projection
 * whose row the caller locked, in a subtransaction of the caller's
 * transaction: the events after its cursor, read by es_read's C API
 * (EsReadBatch) with a fresh snapshot, then its handler called for each in
 * that order, then the cursor of the last one stored in the row.  Returns
 * the number applied; or -1 if something failed, with nothing applied, the
 * error in *edata (in the caller's memory context), the seq of the event
 * the handler failed on in *failed_seq (0 if none) and the number of
 * events before it in *before.
 */
static int64
TryBatch(EsProjectionRow *row, int64 max, ErrorData **edata,
		 int64 *failed_seq, int64 *before)
{
	EsHandlerProjection *p = &row->p;
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	StepBatch	batch;
	volatile int64 count = 0;
	volatile int64 seq = 0;
	char	   *volatile cursor = row->cursor;
	volatile int64 last_seq = row->last_seq;
	volatile int64 high_seq = row->high_seq;

	batch.cxt = AllocSetContextCreate(oldcxt, "es_ledger projection step",
									  ALLOCSET_DEFAULT_SIZES);
	batch.events = NIL;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		EsHandlerContext ctx;
		ErrorContextCallback errcb;
		EsHandlerErrorArg arg = {p->name, 0};
		EsReadCursor after;
		ListCell   *lc;

		EsHandlerCheckAccess(p);
		if (cursor)
			EsReadParseCursor(cursor, &after);
		PushActiveSnapshot(GetTransactionSnapshot());
		EsReadBatch(cursor ? &after : NULL, Min(max, (int64) EsProjectionBatch),
					CollectEvent, &batch);
		PopActiveSnapshot();

		EsHandlerEnter(p, &ctx, false);
		errcb.callback = EsHandlerErrorContext;
		errcb.arg = &arg;
		errcb.previous = error_context_stack;
		foreach(lc, batch.events)
		{
			StepEvent  *se = lfirst(lc);

			CHECK_FOR_INTERRUPTS();
			seq = se->pos.seq;
			arg.seq = seq;
			error_context_stack = &errcb;
			EsHandlerInvoke(&ctx, se->row, 1);
			error_context_stack = errcb.previous;
			last_seq = seq;
			if (seq > high_seq)
				high_seq = seq;
			count++;
		}
		seq = 0;
		EsHandlerLeave(&ctx);
		if (count > 0)
		{
			StepEvent  *se = llast(batch.events);

			cursor = EsReadFormatCursor(&se->pos);
			UpdatePosition(p->name, "running", cursor, last_seq, high_seq,
						   count, false);
		}
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		*edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		MemoryContextDelete(batch.cxt);
		*failed_seq = seq;
		*before = count;
		return -1;
	}
	PG_END_TRY();

	MemoryContextDelete(batch.cxt);
	if (count > 0)
	{
		row->cursor = MemoryContextStrdup(oldcxt, cursor);
		row->last_seq = last_seq;
		row->high_seq = high_seq;
	}
	return count;
}

/*
 * Is edata a real cancel, statement timeout or shutdown, rather than a
 * handler's error that merely carries its SQLSTATE?  Those are raised by
 * ProcessInterrupts (postgres.c) only; a handler that raises 57014 or
 * 57P01 itself (RAISE ... USING ERRCODE = 'query_canceled') raises it from
 * elsewhere (PL/pgSQL's exec_stmt_raise), and is a handler failure: the
 * projection is marked failed instead of the worker's round aborting again
 * and again.  Only C code can pose as ProcessInterrupts, and only a
 * superuser can create C functions.
 */
static bool
IsInterrupt(const ErrorData *edata)
{
	if (edata->sqlerrcode != ERRCODE_QUERY_CANCELED &&
		edata->sqlerrcode != ERRCODE_ADMIN_SHUTDOWN)
		return false;
	return edata->funcname != NULL &&
		strcmp(edata->funcname, "ProcessInterrupts") == 0;
}

/*
 * Apply the next batch (at most max events) of an async projection whose
 * row the caller locked (see the file header and TryBatch).  If its
 * handler fails on an event, the events before it are applied (the batch
 * is tried again up to it), and the projection is marked failed on that
 * event, so that es_projection_resume retries exactly that event.  Returns
 * the number of events applied; *failed tells if the projection failed.
 */
static int64
StepAsync(EsProjectionRow *row, int64 max, bool *failed)
{
	ErrorData  *edata = NULL;
	ErrorData  *again = NULL;
	int64		failed_seq = 0;
	int64		before = 0;
	int64		ignored_seq;
	int64		ignored_before;
	int64		n;

	*failed = false;
	n = TryBatch(row, max, &edata, &failed_seq, &before);
	if (n >= 0)
		return n;
	/* A cancel or shutdown is not the handler's failure. */
	if (IsInterrupt(edata))
		ReThrowError(edata);
	n = 0;
	if (failed_seq > 0 && before > 0)
	{
		n = TryBatch(row, before, &again, &ignored_seq, &ignored_before);
		if (n < 0)
		{
			/* Not the same again (a handler that is not deterministic). */
			FreeErrorData(edata);
			edata = again;
			failed_seq = ignored_seq;
			n = 0;
		}
	}
	ereport(WARNING,
			(errcode(edata->sqlerrcode),
			 errmsg("projection \"%s\" failed and is stopped: %s", row->p.name,
					edata->message ? edata->message : "(no message)"),
			 failed_seq > 0 ?
			 errdetail("Its handler failed on the event with seq %lld; es_projection_resume('%s') retries from there.",
					   (long long) failed_seq, row->p.name) :
			 errdetail("es_projection_resume('%s') retries.", row->p.name)));
	MarkFailed(row->p.name, edata, failed_seq);
	FreeErrorData(edata);
	*failed = true;
	return n;
}

/*
 * One step of the async projection name, for the background worker, in
 * the caller's transaction with SPI connected: if it is async, running and
 * not locked by another step, apply its next batch.  Returns the number of
 * events applied; *more: a full batch was applied, so more may be waiting.
 */
int64
EsProjectionStep(const char *name, bool *more)
{
	EsProjectionRow row;
	int64		n;

	bool		failed;

	*more = false;
	if (!LockProjection(name, true, &row) || row.p.inline_mode ||
		strcmp(row.p.state, "running") != 0)
		return 0;
	n = StepAsync(&row, EsProjectionBatch, &failed);
	*more = !failed && n >= EsProjectionBatch;
	return n;
}

/*
 * The names of the running async projections, in the current memory
 * context, for the background worker (SPI connected); NIL if the ledger of
 * this database has no registry (an older version).
 */
List *
EsProjectionRunnable(void)
{
	char	   *sql;
	List	   *names = NIL;
	uint64		n;

	sql = psprintf("SELECT name FROM %s WHERE mode OPERATOR(pg_catalog.=) 'async' "
				   "AND state OPERATOR(pg_catalog.=) 'running' ORDER BY name",
				   QualifiedName("es_projection_registry"));
	n = RegistryExec(sql, false, 0, NULL, NULL, NULL);
	for (uint64 i = 0; i < n; i++)
		names = lappend(names, SpiText(i, 1));
	return names;
}

/* ------------------------------------------------------------ SQL functions */

/*
 * SPI_connect, or an error.  Every SQL function here starts with it, so it
 * also refuses to run inside a handler (a security-restricted operation,
 * es_handler.c): a handler that rebuilt, resumed or ran its own projection
 * in the middle of a batch would apply events twice.
 */
static void
Connect(void)
{
	if (InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot manage projections within a security-restricted operation"),
				 errdetail("Projection handlers run as security-restricted operations; they cannot create, pause, resume, rebuild, drop or run projections.")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/*
 * es_projection_create(name text, handler regprocedure,
 *						mode text DEFAULT 'async',
 *						reset regprocedure DEFAULT NULL) RETURNS bigint
 *
 * Registers a user projection owned by the caller: handler(es_events) is
 * called with each event of the log, in order, as the caller, with the
 * caller's current search_path.  mode 'inline': in es_apply's transaction
 * for each event it appends; 'async': by the background worker (or
 * es_projection_run), which follows es_read.  reset(), if given, is called
 * first (it should empty the projection's tables; rebuild calls it too).
 * An inline projection catches up with the whole log now, in this
 * transaction, and returns the number of events applied; an async one
 * returns 0 and is caught up by the worker.  Errors: 22004 (null), 22023
 * (bad name or mode), 42710 (name taken), 42P13 (not a handler), 42501
 * (the caller may not SELECT es_events or EXECUTE the functions).  Locks:
 * ShareLock on es_events for an inline projection (waits for appending
 * transactions, blocks new ones until commit).
 */
PG_FUNCTION_INFO_V1(es_projection_create);
Datum
es_projection_create(PG_FUNCTION_ARGS)
{
	EsHandlerProjection p = {0};
	char	   *mode;
	char	   *sql;
	Oid			types[6] = {TEXTOID, OIDOID, TEXTOID, OIDOID, OIDOID, TEXTOID};
	Datum		values[6];
	char		nulls[6] = "      ";
	int64		count = 0;
	int64		last = 0;

	NotNull(fcinfo, 0, "name");
	NotNull(fcinfo, 1, "handler");
	NotNull(fcinfo, 2, "mode");
	p.name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	p.handler = PG_GETARG_OID(1);
	mode = text_to_cstring(PG_GETARG_TEXT_PP(2));
	p.reset = PG_ARGISNULL(3) ? InvalidOid : PG_GETARG_OID(3);
	p.owner = GetUserId();
	p.state = "running";
	p.search_path = GetConfigOptionByName("search_path", NULL, false);
	CheckName(p.name);
	if (strcmp(mode, "inline") != 0 && strcmp(mode, "async") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid projection mode \"%s\"", mode),
				 errdetail("The mode is \"inline\" (in es_apply's transaction) or \"async\" (by the background worker).")));
	p.inline_mode = strcmp(mode, "inline") == 0;
	PreventCommandIfReadOnly("es_projection_create()");
	EsHandlerCheckAccess(&p);

	Connect();
	if (p.inline_mode)
		LockLog();
	sql = psprintf("INSERT INTO %s (name, owner, mode, state, handler, reset, search_path, "
				   "cursor, last_seq, high_seq, applied, created_at) "
				   "VALUES ($1, $2, $3, 'running', $4, $5, $6, NULL, 0, 0, 0, pg_catalog.now()) "
				   "ON CONFLICT (name) DO NOTHING",
				   QualifiedName("es_projection_registry"));
	values[0] = CStringGetTextDatum(p.name);
	values[1] = ObjectIdGetDatum(p.owner);
	values[2] = CStringGetTextDatum(mode);
	values[3] = ObjectIdGetDatum(p.handler);
	values[4] = ObjectIdGetDatum(p.reset);
	if (!OidIsValid(p.reset))
		nulls[4] = 'n';
	values[5] = CStringGetTextDatum(p.search_path);
	if (RegistryExec(sql, true, 6, types, values, nulls) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("projection \"%s\" already exists", p.name)));
	RunReset(&p);
	if (p.inline_mode)
	{
		count = CatchUpInline(&p, 0, &last);
		InvalidateRegistry();
	}
	SPI_finish();
	if (!p.inline_mode)
		StartWorker();
	PG_RETURN_INT64(count);
}

/*
 * es_projection_pause(name text) RETURNS void
 *
 * Stops applying events to the projection until es_projection_resume.  An
 * inline projection's handler is no longer called by es_apply; its
 * position is the head of the log at the pause.  An async projection
 * keeps its cursor.  Pausing a paused projection changes nothing.  Needs
 * the owner's privileges (42501); 42704 if there is no such projection.
 * Locks: the registry row; ShareLock on es_events for an inline one.
 */
PG_FUNCTION_INFO_V1(es_projection_pause);
Datum
es_projection_pause(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	EsProjectionRow row;

	PreventCommandIfReadOnly("es_projection_pause()");
	Connect();
	if (!LockProjection(name, false, &row))
		elog(ERROR, "projection \"%s\" not found", name);
	CheckManage(&row.p);
	if (strcmp(row.p.state, "paused") != 0)
	{
		if (row.p.inline_mode)
		{
			int64		head;

			LockLog();
			head = strcmp(row.p.state, "running") == 0 ? LogHead() : row.high_seq;
			UpdatePosition(name, "paused", NULL, head, head, 0, false);
			InvalidateRegistry();
		}
		else
			UpdatePosition(name, "paused", row.cursor, row.last_seq,
						   row.high_seq, 0, false);
	}
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * es_projection_resume(name text) RETURNS bigint
 *
 * Applies events to a paused or failed projection again, from where it
 * stopped, and forgets its last error.  An inline projection catches up
 * now, in this transaction (its handler is called for every event appended
 * since the pause), and returns how many; an async one returns 0 and is
 * caught up by the worker (or es_projection_run).  Resuming a running
 * projection changes nothing.  Needs the owner's privileges (42501); 42704
 * if there is no such projection.  Locks: as es_projection_pause.
 */
PG_FUNCTION_INFO_V1(es_projection_resume);
Datum
es_projection_resume(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	EsProjectionRow row;
	int64		count = 0;

	PreventCommandIfReadOnly("es_projection_resume()");
	Connect();
	if (!LockProjection(name, false, &row))
		elog(ERROR, "projection \"%s\" not found", name);
	CheckManage(&row.p);
	if (strcmp(row.p.state, "running") != 0)
	{
		if (row.p.inline_mode)
		{
			int64		last;

			LockLog();
			count = CatchUpInline(&row.p, row.high_seq, &last);
			UpdatePosition(name, "running", NULL, 0, 0, 0, true);
			InvalidateRegistry();
		}
		else
		{
			EsHandlerCheckAccess(&row.p);
			UpdatePosition(name, "running", row.cursor, row.last_seq,
						   row.high_seq, 0, true);
		}
	}
	SPI_finish();
	if (!row.p.inline_mode)
		StartWorker();
	PG_RETURN_INT64(count);
}

/*
 * es_projection_rebuild(name text) RETURNS bigint
 *
 * Starts the projection again from the first event of the log: calls its
 * reset function (if it has none, the caller empties the projection's
 * tables first, in the same transaction), forgets its position and last
 * error, and sets it running.  An inline projection is rebuilt now, in
 * this transaction, and the number of events applied is returned; an
 * async one returns 0 and is rebuilt by the worker (or
 * es_projection_run).  Needs the owner's privileges (42501); 42704 if
 * there is no such projection.  Locks: as es_projection_pause.
 */
PG_FUNCTION_INFO_V1(es_projection_rebuild);
Datum
es_projection_rebuild(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	EsProjectionRow row;
	int64		count = 0;

	PreventCommandIfReadOnly("es_projection_rebuild()");
	Connect();
	if (!LockProjection(name, false, &row))
		elog(ERROR, "projection \"%s\" not found", name);
	CheckManage(&row.p);
	EsHandlerCheckAccess(&row.p);
	if (row.p.inline_mode)
		LockLog();
	RunReset(&row.p);
	if (row.p.inline_mode)
	{
		int64		last;

		count = CatchUpInline(&row.p, 0, &last);
		InvalidateRegistry();
	}
	UpdatePosition(name, "running", NULL, 0, 0, -1, true);
	SPI_finish();
	if (!row.p.inline_mode)
		StartWorker();
	PG_RETURN_INT64(count);
}

/*
 * es_projection_drop(name text) RETURNS void
 *
 * Unregisters the projection; its handler is called no more.  The tables
 * it filled are the owner's and stay.  Needs the owner's privileges
 * (42501); 42704 if there is no such projection.  Locks: as
 * es_projection_pause.
 */
PG_FUNCTION_INFO_V1(es_projection_drop);
Datum
es_projection_drop(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	EsProjectionRow row;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	PreventCommandIfReadOnly("es_projection_drop()");
	Connect();
	if (!LockProjection(name, false, &row))
		elog(ERROR, "projection \"%s\" not found", name);
	CheckManage(&row.p);
	if (row.p.inline_mode)
		LockLog();
	values[0] = CStringGetTextDatum(name);
	RegistryExec(psprintf("DELETE FROM %s WHERE name OPERATOR(pg_catalog.=) $1",
						  QualifiedName("es_projection_registry")),
				 true, 1, types, values, NULL);
	InvalidateRegistry();
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * es_projection_run(name text DEFAULT NULL, max_events bigint DEFAULT NULL)
 *		RETURNS bigint
 *
 * Applies the events an async projection has not yet seen, in batches of
 * es_ledger.projection_batch, in the caller's transaction, until es_read
 * has nothing more for it (or max_events were applied): what the
 * background worker does, for a server without es_ledger in
 * shared_preload_libraries (call it from a scheduler such as pg_cron), or
 * for a test.  NULL name: every running async projection the caller may
 * manage.  Returns the number of events applied.  A projection whose
 * handler fails is marked failed (WARNING) and the others go on.  A paused
 * or failed projection is skipped.  42704 if there is no such projection,
 * 22023 if it is inline, 42501 if the caller may not manage it.  Locks:
 * the registry rows FOR UPDATE (waits for the worker's step).
 */
PG_FUNCTION_INFO_V1(es_projection_run);
Datum
es_projection_run(PG_FUNCTION_ARGS)
{
	int64		max = PG_ARGISNULL(1) ? PG_INT64_MAX : PG_GETARG_INT64(1);
	List	   *names = NIL;
	int64		total = 0;
	ListCell   *lc;

	if (max < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_events must not be negative")));
	PreventCommandIfReadOnly("es_projection_run()");
	Connect();
	if (PG_ARGISNULL(0))
		names = EsProjectionRunnable();
	else
		names = list_make1(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	foreach(lc, names)
	{
		const char *name = lfirst(lc);
		EsProjectionRow row;
		Oid			owner = PeekOwner(name);

		/*
		 * Only the rows the caller may run are locked (a projection's owner
		 * never changes): another owner's is skipped, or 42501 if named.
		 */
		if (OidIsValid(owner) && !superuser() &&
			!has_privs_of_role(GetUserId(), owner))
		{
			EsHandlerProjection other = {0};

			if (PG_ARGISNULL(0))
				continue;
			other.name = (char *) name;
			other.owner = owner;
			CheckManage(&other);
		}
		LockProjection(name, false, &row);
		if (!PG_ARGISNULL(0))
		{
			CheckManage(&row.p);
			if (row.p.inline_mode)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("projection \"%s\" is inline", name),
						 errdetail("An inline projection is applied by es_apply itself; es_projection_run applies async ones.")));
		}
		else if (!superuser() && !has_privs_of_role(GetUserId(), row.p.owner))
			continue;
		if (row.p.inline_mode || strcmp(row.p.state, "running") != 0)
			continue;
		while (total < max)
		{
			bool		failed;
			int64		n = StepAsync(&row, max - total, &failed);

			total += n;
			if (n == 0 || failed)
				break;
		}
	}
	SPI_finish();
	PG_RETURN_INT64(total);
}
