/*-------------------------------------------------------------------------
 *
 * es_projection.c
 *	  User projections: the SQL functions that register, pause, resume,
 *	  rebuild, drop and run them; their settings, and the start of a
 *	  database's worker.
 *
 * The registry's rows are read and written by es_projection_registry.c
 * (through SPI, as the extension's owner, under the write guard); the
 * handlers are run by es_projection_step.c (catch-up of an inline
 * projection, the step of an async one).  This file checks the arguments
 * and the caller's rights, takes the locks and puts those together.
 *
 * Who may do what: EXECUTE on these functions is granted to
 * es_ledger_admin; creating a projection makes the caller its owner; the
 * other functions need the privileges of the owner (or superuser), 42501.
 * The owner must be able to SELECT es_events and EXECUTE the functions
 * (es_handler.c checks it at every run).  es_projection_run locks only the
 * rows of projections the caller may run (EsProjectionPeekOwner first).
 *
 * Inline projections.  Creating, pausing, resuming, rebuilding or dropping
 * one takes ShareLock on es_events (LockLog): it waits for every
 * transaction that appends and keeps new ones out until it commits.  Under
 * that lock the committed events are all the events there will ever be
 * below the sequence's current value, so a position is a plain seq.  The
 * registry is changed with a relcache invalidation so that every backend
 * re-reads it.
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

/* es_ledger.projection_autostart: start the database's worker on first use. */
static bool EsProjectionAutostart = true;

/* es_ledger.projection_databases: the databases workers follow; empty: all. */
static char *EsProjectionDatabases = NULL;

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
		EsWorkerWakeLauncher(MyDatabaseId); /* if preloaded: starts it now */
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

/* --------------------------------------------------------- inline changes */

/* The largest seq in the log, 0 if empty. */
static int64
LogHead(void)
{
	char	   *sql = psprintf("SELECT pg_catalog.max(seq) FROM %s",
							   EsProjectionQualifiedName("es_events"));

	/* Not read-only: a snapshot taken now, after LockLog's wait. */
	if (SPI_execute(sql, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the head of the log");
	return EsProjectionSpiInt64(0, 1);
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
				   EsProjectionQualifiedName("es_projection_registry"));
	values[0] = CStringGetTextDatum(p.name);
	values[1] = ObjectIdGetDatum(p.owner);
	values[2] = CStringGetTextDatum(mode);
	values[3] = ObjectIdGetDatum(p.handler);
	values[4] = ObjectIdGetDatum(p.reset);
	if (!OidIsValid(p.reset))
		nulls[4] = 'n';
	values[5] = CStringGetTextDatum(p.search_path);
	if (EsProjectionRegistryExec(sql, true, 6, types, values, nulls) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("projection \"%s\" already exists", p.name)));
	EsProjectionRunReset(&p);
	if (p.inline_mode)
	{
		count = EsProjectionCatchUpInline(&p, 0, &last);
		EsProjectionInvalidateRegistry();
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
	if (!EsProjectionLock(name, false, &row))
		elog(ERROR, "projection \"%s\" not found", name);
	CheckManage(&row.p);
	if (strcmp(row.p.state, "paused") != 0)
	{
		if (row.p.inline_mode)
		{
			int64		head;

			LockLog();
			head = strcmp(row.p.state, "running") == 0 ? LogHead() : row.high_seq;
			EsProjectionUpdatePosition(name, "paused", NULL, head, head, 0, false);
			EsProjectionInvalidateRegistry();
		}
		else
			EsProjectionUpdatePosition(name, "paused", row.cursor, row.last_seq,
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
	if (!EsProjectionLock(name, false, &row))
		elog(ERROR, "projection \"%s\" not found", name);
	CheckManage(&row.p);
	if (strcmp(row.p.state, "running") != 0)
	{
		if (row.p.inline_mode)
		{
			int64		last;

			LockLog();
			count = EsProjectionCatchUpInline(&row.p, row.high_seq, &last);
			EsProjectionUpdatePosition(name, "running", NULL, 0, 0, 0, true);
			EsProjectionInvalidateRegistry();
		}
		else
		{
			EsHandlerCheckAccess(&row.p);
			EsProjectionUpdatePosition(name, "running", row.cursor, row.last_seq,
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
	if (!EsProjectionLock(name, false, &row))
		elog(ERROR, "projection \"%s\" not found", name);
	CheckManage(&row.p);
	EsHandlerCheckAccess(&row.p);
	if (row.p.inline_mode)
		LockLog();
	EsProjectionRunReset(&row.p);
	if (row.p.inline_mode)
	{
		int64		last;

		count = EsProjectionCatchUpInline(&row.p, 0, &last);
		EsProjectionInvalidateRegistry();
	}
	EsProjectionUpdatePosition(name, "running", NULL, 0, 0, -1, true);
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
	if (!EsProjectionLock(name, false, &row))
		elog(ERROR, "projection \"%s\" not found", name);
	CheckManage(&row.p);
	if (row.p.inline_mode)
		LockLog();
	values[0] = CStringGetTextDatum(name);
	EsProjectionRegistryExec(psprintf("DELETE FROM %s WHERE name OPERATOR(pg_catalog.=) $1",
									  EsProjectionQualifiedName("es_projection_registry")),
							 true, 1, types, values, NULL);
	EsProjectionInvalidateRegistry();
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
		Oid			owner = EsProjectionPeekOwner(name);

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
		EsProjectionLock(name, false, &row);
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
			int64		n = EsProjectionStepAsync(&row, max - total, &failed);

			total += n;
			if (n == 0 || failed)
				break;
		}
	}
	SPI_finish();
	PG_RETURN_INT64(total);
}
