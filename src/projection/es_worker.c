/*-------------------------------------------------------------------------
 *
 * es_worker.c
 *	  The background workers that keep async user projections in step:
 *	  one launcher per server, one worker per database with the ledger.
 *
 * With es_ledger in shared_preload_libraries, _PG_init registers the
 * launcher (EsWorkerInit), which the postmaster starts once recovery is
 * over and restarts after a crash or a server restart (bgw_restart_time),
 * so async projections need no manual step after a restart.  Without it,
 * nothing runs in the background and async projections are applied by
 * es_projection_run() (a scheduler such as pg_cron can call it); the rest
 * of the ledger, inline projections included, works the same.
 *
 * The launcher connects to no database.  Every ES_LAUNCHER_NAPTIME_MS, and
 * when a worker it started stops, it lists the databases that accept
 * connections and are not templates (only those named in
 * es_ledger.projection_databases, when set) and starts a worker (a dynamic
 * background worker) in each that has none (neither one it started nor one
 * holding the database's worker lock), at most once per
 * ES_LAUNCHER_NAPTIME_MS per database.
 *
 * A worker connects to its database as the bootstrap superuser, takes a
 * session lock of its own (an advisory lock tag with field4 = 3, which the
 * SQL advisory lock functions cannot name, in the default lock method, so
 * that pg_advisory_unlock_all cannot release it), so there is one worker per
 * database, and exits at once if es_ledger 0.3.0 or later is not installed
 * there.  Otherwise, forever: one transaction lists the running async
 * projections; then each gets one step (es_projection.c: the registry row
 * locked, the next batch read with es_read and applied by its handler as
 * its owner, the cursor stored, all in one transaction).  If some
 * projection applied a full batch, it goes round again at once; else it
 * sleeps es_ledger.projection_naptime (a worker cannot LISTEN, so it polls;
 * each poll is one short read of the registry).  An error outside a
 * handler (a handler's error stops its projection only) is logged, its
 * transaction aborted, and the worker sleeps and tries again.
 *
 * A connected worker keeps DROP DATABASE from dropping its database unless
 * WITH (FORCE) (as a logical replication worker does).
 *
 * Locks: the worker's session lock; what a step takes (es_projection.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "projection.h"

/* How often the launcher looks for databases, in milliseconds. */
#define ES_LAUNCHER_NAPTIME_MS 10000
/* Longest wait before starting again a worker that exited (nothing to do). */
#define ES_LAUNCHER_MAX_BACKOFF_MS (320 * 1000)
/* A worker with no running async projection for this long exits. */
#define ES_WORKER_IDLE_EXIT_MS (60 * 1000)
/* Refused starts in a row for a database before the launcher warns. */
#define ES_LAUNCHER_WARN_FAILURES 3

/*
 * The launcher's wake-up call, in shared memory (only with the library
 * preloaded): es_projection_create/resume/rebuild name their database in
 * wake[] and set the launcher's latch, so that its next round starts at
 * once and forgets its back-off for those databases.  The latch alone is
 * not enough: it is also set by every start and stop of a worker the
 * launcher started (bgw_notify_pid), which must not start a round.
 * Protected by mutex.  nwake > ES_WAKE_MAX means "every database".
 */
#define ES_WAKE_MAX 16
typedef struct EsLauncherShared
{
	slock_t		mutex;
	Latch	   *latch;			/* the running launcher's, or NULL */
	int			nwake;			/* databases named in wake[] */
	Oid			wake[ES_WAKE_MAX];
} EsLauncherShared;

static EsLauncherShared *LauncherShared = NULL;
static shmem_request_hook_type PrevShmemRequest = NULL;
static shmem_startup_hook_type PrevShmemStartup = NULL;

/* GUC es_ledger.worker_expire_pending */
static bool EsWorkerExpire = true;

/* es_ledger.projection_naptime: a worker's sleep when idle, in ms. */
static int	EsWorkerNaptime = 200;

PGDLLEXPORT void es_projection_launcher_main(Datum arg);
PGDLLEXPORT void es_projection_worker_main(Datum arg);

/* shmem_request_hook: reserve the launcher's shared state. */
static void
WorkerShmemRequest(void)
{
	if (PrevShmemRequest)
		PrevShmemRequest();
	RequestAddinShmemSpace(MAXALIGN(sizeof(EsLauncherShared)));
}

/* shmem_startup_hook: find or make the launcher's shared state. */
static void
WorkerShmemStartup(void)
{
	bool		found;

	if (PrevShmemStartup)
		PrevShmemStartup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	LauncherShared = ShmemInitStruct("es_ledger launcher", sizeof(EsLauncherShared),
									 &found);
	if (!found)
	{
		memset(LauncherShared, 0, sizeof(EsLauncherShared));
		SpinLockInit(&LauncherShared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Ask the launcher to start a worker in database dboid at once, whatever
 * its back-off (an async projection was created, resumed or rebuilt there).
 * Does nothing without the library preloaded or while no launcher runs.
 * The worker it starts waits ES_WORKER_IDLE_EXIT_MS for a running async
 * projection, so calling this before the creating transaction commits is
 * fine.
 */
void
EsWorkerWakeLauncher(Oid dboid)
{
	Latch	   *latch;
	bool		named = false;

	if (LauncherShared == NULL)
		return;
	SpinLockAcquire(&LauncherShared->mutex);
	for (int i = 0; i < Min(LauncherShared->nwake, ES_WAKE_MAX); i++)
		if (LauncherShared->wake[i] == dboid)
			named = true;
	if (!named && LauncherShared->nwake < ES_WAKE_MAX)
		LauncherShared->wake[LauncherShared->nwake++] = dboid;
	else if (!named)
		LauncherShared->nwake = ES_WAKE_MAX + 1;	/* full: every database */
	latch = LauncherShared->latch;
	SpinLockRelease(&LauncherShared->mutex);
	if (latch != NULL)
		SetLatch(latch);
}

/* before_shmem_exit callback of the launcher: no latch to set any more. */
static void
LauncherForget(int code, Datum arg)
{
	SpinLockAcquire(&LauncherShared->mutex);
	LauncherShared->latch = NULL;
	SpinLockRelease(&LauncherShared->mutex);
}

/* Whether a wake-up call waits for the launcher. */
static bool
LauncherWakeAsked(void)
{
	bool		asked;

	if (LauncherShared == NULL)
		return false;
	SpinLockAcquire(&LauncherShared->mutex);
	asked = LauncherShared->nwake > 0;
	SpinLockRelease(&LauncherShared->mutex);
	return asked;
}

/*
 * Define the workers' GUCs, and register the launcher when the library is
 * being preloaded; called once from _PG_init.
 */
void
EsWorkerInit(void)
{
	BackgroundWorker worker;

	DefineCustomBoolVariable("es_ledger.worker_expire_pending",
							 "Lets the projection worker of a database expire its due pending transfers.",
							 "At each round (es_ledger.projection_naptime) the worker calls "
							 "es_expire_pending(), and stays while pending transfers with an expiry "
							 "remain.  Off: they expire when a command touches an account, or when "
							 "es_expire_pending() is called.  A worker reads it when it connects "
							 "(ALTER DATABASE ... SET turns it off for one database).",
							 &EsWorkerExpire, true, PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("es_ledger.projection_naptime",
							"How long an idle projection worker sleeps between polls.",
							"The background worker of a database applies async projections, "
							"then sleeps this long when none had a full batch to apply.",
							&EsWorkerNaptime,
							200, 10, 60000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	PrevShmemRequest = shmem_request_hook;
	shmem_request_hook = WorkerShmemRequest;
	PrevShmemStartup = shmem_startup_hook;
	shmem_startup_hook = WorkerShmemStartup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "es_ledger");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "es_projection_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "es_ledger projection launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "es_ledger projection launcher");
	RegisterBackgroundWorker(&worker);
}

/* ---------------------------------------------------------------- launcher */

/* A database the launcher started a worker for. */
typedef struct EsLaunched
{
	Oid			dboid;
	BackgroundWorkerHandle *handle;
	TimestampTz started_at;		/* of the last start that succeeded */
	int			backoff_ms;		/* wait after it before the next start */
	int			failures;		/* starts refused in a row (no free slot) */
} EsLaunched;

static EsLaunched *Launched = NULL;
static int	NLaunched = 0;
static int	MaxLaunched = 0;

/* The launcher's record of dboid, made if new. */
static EsLaunched *
LaunchedFor(Oid dboid)
{
	for (int i = 0; i < NLaunched; i++)
		if (Launched[i].dboid == dboid)
			return &Launched[i];
	if (NLaunched == MaxLaunched)
	{
		MaxLaunched = Max(16, MaxLaunched * 2);
		Launched = Launched == NULL ?
			MemoryContextAllocZero(TopMemoryContext, sizeof(EsLaunched) * MaxLaunched) :
			repalloc(Launched, sizeof(EsLaunched) * MaxLaunched);
	}
	memset(&Launched[NLaunched], 0, sizeof(EsLaunched));
	Launched[NLaunched].dboid = dboid;
	return &Launched[NLaunched++];
}

/*
 * Start a worker in the database, unless one runs or started lately.
 * False if no background worker slot was free (the round stops there).
 */
static bool
LaunchFor(Oid dboid, const char *dbname)
{
	EsLaunched *l = LaunchedFor(dboid);
	LOCKTAG		tag;
	BackgroundWorker worker;
	pid_t		pid;
	MemoryContext old;

	if (l->handle != NULL)
	{
		BgwHandleStatus status = GetBackgroundWorkerPid(l->handle, &pid);

		if (status == BGWH_STARTED || status == BGWH_NOT_YET_STARTED)
		{
			l->backoff_ms = ES_LAUNCHER_NAPTIME_MS;
			return true;
		}

		/*
		 * It exited: the database has no ledger, or no running async
		 * projection for a while.  Back off (doubling, up to
		 * ES_LAUNCHER_MAX_BACKOFF_MS) rather than start it again every round;
		 * es_projection_create/resume/rebuild start a worker at once
		 * themselves (es_ledger.projection_autostart), or else wake the
		 * launcher, which then forgets the back-off of the database.
		 */
		pfree(l->handle);
		l->handle = NULL;
		l->backoff_ms = Min(Max(l->backoff_ms, ES_LAUNCHER_NAPTIME_MS) * 2,
							ES_LAUNCHER_MAX_BACKOFF_MS);
	}
	if (l->started_at != 0 &&
		!TimestampDifferenceExceeds(l->started_at, GetCurrentTimestamp(),
									Max(l->backoff_ms, ES_LAUNCHER_NAPTIME_MS)))
		return true;
	/* A worker started by someone else (autostart) holds the lock. */
	EsProjectionWorkerLockTag(&tag, dboid);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return true;
	LockRelease(&tag, ExclusiveLock, false);

	EsProjectionWorkerSpec(&worker, dboid, dbname);
	worker.bgw_notify_pid = MyProcPid;
	old = MemoryContextSwitchTo(TopMemoryContext);
	if (RegisterDynamicBackgroundWorker(&worker, &l->handle))
	{
		l->started_at = GetCurrentTimestamp();	/* recorded on success only */
		l->failures = 0;
	}
	else
	{
		/*
		 * No free slot: try again next round (started_at is not set).  A
		 * first round that finds many databases at once may run short while
		 * the workers of databases without a ledger exit; only a shortage
		 * that lasts (ES_LAUNCHER_WARN_FAILURES rounds) warns.
		 */
		l->handle = NULL;
		l->failures++;
		ereport(l->failures >= ES_LAUNCHER_WARN_FAILURES ? WARNING : DEBUG1,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the es_ledger projection worker for database \"%s\"",
						dbname),
				 errhint("Raise max_worker_processes.")));
		MemoryContextSwitchTo(old);
		return false;
	}
	MemoryContextSwitchTo(old);
	return true;
}

/* Start the workers the databases lack. */
static void
LaunchWorkers(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	/* Databases named by wake-up calls: forget their back-off. */
	if (LauncherShared != NULL)
	{
		Oid			wake[ES_WAKE_MAX];
		int			nwake;

		SpinLockAcquire(&LauncherShared->mutex);
		nwake = LauncherShared->nwake;
		memcpy(wake, LauncherShared->wake, sizeof(wake));
		LauncherShared->nwake = 0;
		SpinLockRelease(&LauncherShared->mutex);
		for (int i = 0; i < (nwake > ES_WAKE_MAX ? NLaunched : nwake); i++)
		{
			EsLaunched *l = nwake > ES_WAKE_MAX ? &Launched[i] : LaunchedFor(wake[i]);

			l->started_at = 0;
			l->backoff_ms = 0;
		}
	}

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (!db->datallowconn || db->datistemplate ||
			!EsProjectionDatabaseWanted(NameStr(db->datname)))
			continue;
		if (!LaunchFor(db->oid, NameStr(db->datname)))
			break;				/* no free slot: the next round goes on */
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
}

/*
 * The launcher's main function (bgw_function_name of the worker registered
 * by EsWorkerInit).
 */
void
es_projection_launcher_main(Datum arg)
{
	TimestampTz round_at;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	if (LauncherShared != NULL)
	{
		before_shmem_exit(LauncherForget, (Datum) 0);
		SpinLockAcquire(&LauncherShared->mutex);
		LauncherShared->latch = &MyProc->procLatch;
		SpinLockRelease(&LauncherShared->mutex);
	}

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		LaunchWorkers();

		/*
		 * One round per ES_LAUNCHER_NAPTIME_MS: the latch is also set each
		 * time a worker it started starts or stops (bgw_notify_pid), which
		 * must not start a new round (no retry storm); a wake-up call
		 * (EsWorkerWakeLauncher) does.
		 */
		round_at = GetCurrentTimestamp();
		for (;;)
		{
			long		left = ES_LAUNCHER_NAPTIME_MS -
			(GetCurrentTimestamp() - round_at) / 1000;

			if (left <= 0)
				break;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 left, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			/* a reload, or es_projection_create/resume/rebuild called */
			if (ConfigReloadPending || LauncherWakeAsked())
				break;
		}
	}
}

/* ------------------------------------------------------------------ worker */

/* Start a transaction of the worker, with a snapshot and SPI. */
static void
BeginStep(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/* Commit what BeginStep started. */
static void
EndStep(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
}

/*
 * Expire the due pending transfers of this database's ledger, in a
 * transaction of its own (es_expire_pending, found in the extension's
 * schema; a ledger before 0.4.0 without it, or a logical subscriber's, is
 * left alone).  True if
 * pending transfers with an expiry remain, so the worker stays to expire
 * them on time.  Errors propagate to the worker's loop (logged, retried).
 */
static bool
ExpireDue(void)
{
	Oid			extoid;
	Oid			nsp;
	Oid			owner;
	Oid			fn;
	bool		remain = false;

	BeginStep();
	extoid = get_extension_oid("es_ledger", true);
	EsCatalogExtensionSchemaOwner(extoid, &nsp, &owner);
	fn = OidIsValid(nsp) ?
		LookupFuncName(list_make2(makeString(get_namespace_name(nsp)),
								  makeString("es_expire_pending")),
					   0, NULL, true) : InvalidOid;
	/* A logical subscriber's reservations expire on the publisher. */
	if (OidIsValid(fn) &&
		OidIsValid(EsCatalogSubscriptionOf(EsRowRelid(ES_REL_EVENTS))))
		fn = InvalidOid;
	if (OidIsValid(fn))
	{
		char	   *q;

		pgstat_report_activity(STATE_RUNNING, "es_ledger expire pending");
		(void) OidFunctionCall0(fn);
		q = psprintf("SELECT 1 FROM %s.es_transfers WHERE status OPERATOR(pg_catalog.=) 'pending'"
					 " AND expires_at IS NOT NULL LIMIT 1",
					 quote_identifier(get_namespace_name(nsp)));
		if (SPI_execute(q, true, 1) == SPI_OK_SELECT)
			remain = SPI_processed > 0;
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	EndStep();
	return remain;
}

/*
 * One round: the running async projections, then a step of each.  False
 * if the ledger is not installed (or too old to have projections); *busy:
 * some projection applied a full batch.
 */
static bool
WorkOnce(bool *busy, bool *any, MemoryContext cxt)
{
	List	   *names = NIL;
	bool		installed;
	ListCell   *lc;

	*busy = false;
	BeginStep();
	installed = OidIsValid(get_extension_oid("es_ledger", true)) &&
		EsHandlerHaveRegistry();
	if (installed)
	{
		MemoryContext old;
		List	   *found = EsProjectionRunnable();

		old = MemoryContextSwitchTo(cxt);
		foreach(lc, found)
			names = lappend(names, pstrdup(lfirst(lc)));
		MemoryContextSwitchTo(old);
	}
	EndStep();
	*any = (names != NIL);
	if (installed && EsWorkerExpire && ExpireDue())
		*any = true;

	foreach(lc, names)
	{
		bool		more;

		CHECK_FOR_INTERRUPTS();
		BeginStep();
		pgstat_report_activity(STATE_RUNNING, "es_ledger projection step");
		(void) EsProjectionStep((const char *) lfirst(lc), &more);
		EndStep();
		pgstat_report_activity(STATE_IDLE, NULL);
		*busy |= more;
	}
	return installed;
}

/* Whether this worker holds its database's worker lock (session level). */
static bool WorkerLockHeld = false;

/*
 * before_shmem_exit callback of a worker: release its worker lock, a
 * session lock of the default lock method, which no exit path of a backend
 * outside a transaction releases by itself.
 */
static void
ReleaseWorkerLock(int code, Datum arg)
{
	LOCKTAG		tag;

	if (!WorkerLockHeld)
		return;
	EsProjectionWorkerLockTag(&tag, MyDatabaseId);
	LockRelease(&tag, ExclusiveLock, true);
	WorkerLockHeld = false;
}

/*
 * A database's worker's main function; arg is the database's OID (started
 * by the launcher).
 */
void
es_projection_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	MemoryContext cxt;
	LOCKTAG		tag;
	volatile TimestampTz idle_since = 0;
	char	   *dbname;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("es_ledger projection worker");

	EsProjectionWorkerLockTag(&tag, MyDatabaseId);
	if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		proc_exit(0);			/* another worker follows this database */
	WorkerLockHeld = true;
	before_shmem_exit(ReleaseWorkerLock, PointerGetDatum(NULL));

	StartTransactionCommand();
	dbname = get_database_name(MyDatabaseId);
	dbname = dbname ? MemoryContextStrdup(TopMemoryContext, dbname) : NULL;
	CommitTransactionCommand();
	if (dbname == NULL)
		proc_exit(0);			/* dropped meanwhile */

	cxt = AllocSetContextCreate(TopMemoryContext, "es_ledger projection worker",
								ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		bool		busy = false;
		bool		any = true;
		bool		installed = true;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* no longer listed in es_ledger.projection_databases: leave */
			if (!EsProjectionDatabaseWanted(dbname))
				proc_exit(0);
		}
		MemoryContextReset(cxt);
		PG_TRY();
		{
			installed = WorkOnce(&busy, &any, cxt);
		}
		PG_CATCH();
		{
			/* Log it, abort, and try again after a nap. */
			HOLD_INTERRUPTS();
			MemoryContextSwitchTo(TopMemoryContext);
			EmitErrorReport();
			AbortCurrentTransaction();
			FlushErrorState();
			RESUME_INTERRUPTS();
			busy = false;
			/* the abort released every session lock of the default method */
			WorkerLockHeld = false;
		}
		PG_END_TRY();
		if (!WorkerLockHeld)
		{
			if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
				proc_exit(0);	/* another worker took over meanwhile */
			WorkerLockHeld = true;
		}
		if (!installed)
			proc_exit(0);

		/*
		 * No running async projection for ES_WORKER_IDLE_EXIT_MS: leave the
		 * slot to others (parallel queries, other databases).  Creating,
		 * resuming or rebuilding one starts a worker again (autostart, or the
		 * launcher after its back-off).
		 */
		if (any)
			idle_since = 0;
		else if (idle_since == 0)
			idle_since = GetCurrentTimestamp();
		else if (TimestampDifferenceExceeds(idle_since, GetCurrentTimestamp(),
											ES_WORKER_IDLE_EXIT_MS))
			proc_exit(0);
		if (!busy)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 EsWorkerNaptime, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}
