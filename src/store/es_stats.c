/*-------------------------------------------------------------------------
 *
 * es_stats.c
 *	  The operator's counters: commands applied by type and rejections by
 *	  SQLSTATE, per database, since es_stats_reset, in shared memory.
 *
 * The counters live in a block of shared memory requested at startup, so
 * they exist only when es_ledger is in shared_preload_libraries; otherwise
 * counting does nothing and es_stats_counters says so in its one row
 * ('counters', 'preloaded', 0), which the view es_stats shows.
 *
 * The block holds ES_STATS_DATABASES slots, one per database, claimed by
 * the first backend of that database that counts (a compare-and-swap of
 * the slot's database OID from 0); a backend finds its slot once and keeps
 * a pointer to it (MyDatabaseId never changes in a backend).  A slot is
 * never given back: a dropped database's slot stays taken until the server
 * restarts, and past ES_STATS_DATABASES databases a database counts
 * nothing (its counts are added to EsStatsShared.unslotted instead).  In a
 * slot, each SQLSTATE gets one of ES_STATS_CODES code slots the same way;
 * past them a rejection counts in other.
 *
 * Invariants and locks: counting takes no lock and never waits or fails:
 * only atomic reads, compare-and-swaps and fetch-adds on the block (no
 * LWLock on the hot path); the block is found once under
 * AddinShmemInitLock at startup.  es_stats_reset zeroes a slot's counts
 * with atomic writes (not as one atomic step: a count made during the
 * reset may be kept or lost) and never frees a code slot, so a concurrent
 * count never lands on a code slot taken over by another SQLSTATE.  The
 * counts are server-lifetime, never persisted (a restart zeroes them).
 * The block starts with a magic number and a format version.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "store.h"

#define ES_STATS_MAGIC		0x45535354	/* "ESST" */
#define ES_STATS_FORMAT		1
#define ES_STATS_DATABASES	64	/* databases counted at once */
#define ES_STATS_CODES		32	/* SQLSTATEs counted per database */

/* One database's counters. */
typedef struct EsStatsDb
{
	pg_atomic_uint32 dboid;		/* 0: free */
	pg_atomic_uint64 reset_at;	/* TimestampTz of the last reset or claim */
	pg_atomic_uint64 applied[ES_CMD_COUNT]; /* commands applied, by type */
	pg_atomic_uint32 code[ES_STATS_CODES];	/* a packed SQLSTATE; 0: free */
	pg_atomic_uint64 rejected[ES_STATS_CODES];	/* rejections of code[i] */
	pg_atomic_uint64 other;		/* rejections whose code found no slot */
} EsStatsDb;

/* The shared block. */
typedef struct EsStatsShared
{
	uint32		magic;			/* ES_STATS_MAGIC */
	uint32		format;			/* ES_STATS_FORMAT */
	pg_atomic_uint64 unslotted; /* counts of databases that found no slot */
	EsStatsDb	db[ES_STATS_DATABASES];
} EsStatsShared;

static EsStatsShared *Shared = NULL;
static EsStatsDb *MyStats = NULL;	/* this backend's database's slot */
static bool MyStatsSearched = false;

static shmem_request_hook_type PrevShmemRequest = NULL;
static shmem_startup_hook_type PrevShmemStartup = NULL;

/* shmem_request_hook: reserve the counters' block. */
static void
StatsShmemRequest(void)
{
	if (PrevShmemRequest)
		PrevShmemRequest();
	RequestAddinShmemSpace(MAXALIGN(sizeof(EsStatsShared)));
}

/* shmem_startup_hook: find or make the counters' block. */
static void
StatsShmemStartup(void)
{
	bool		found;

	if (PrevShmemStartup)
		PrevShmemStartup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	Shared = ShmemInitStruct("es_ledger stats", sizeof(EsStatsShared), &found);
	if (!found)
	{
		memset(Shared, 0, sizeof(EsStatsShared));
		Shared->magic = ES_STATS_MAGIC;
		Shared->format = ES_STATS_FORMAT;
		pg_atomic_init_u64(&Shared->unslotted, 0);
		for (int i = 0; i < ES_STATS_DATABASES; i++)
		{
			EsStatsDb  *db = &Shared->db[i];

			pg_atomic_init_u32(&db->dboid, 0);
			pg_atomic_init_u64(&db->reset_at, 0);
			for (int t = 0; t < ES_CMD_COUNT; t++)
				pg_atomic_init_u64(&db->applied[t], 0);
			for (int c = 0; c < ES_STATS_CODES; c++)
			{
				pg_atomic_init_u32(&db->code[c], 0);
				pg_atomic_init_u64(&db->rejected[c], 0);
			}
			pg_atomic_init_u64(&db->other, 0);
		}
	}
	else if (Shared->magic != ES_STATS_MAGIC || Shared->format != ES_STATS_FORMAT)
		Shared = NULL;			/* another library's block: count nothing */
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Reserve the counters' block when loaded by shared_preload_libraries;
 * otherwise nothing is counted.  Called once from _PG_init.
 */
void
EsStatsInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	PrevShmemRequest = shmem_request_hook;
	shmem_request_hook = StatsShmemRequest;
	PrevShmemStartup = shmem_startup_hook;
	shmem_startup_hook = StatsShmemStartup;
}

/*
 * This database's slot, claimed if it has none; NULL without the block,
 * outside a database, or when every slot is taken.  Found once per backend.
 */
static EsStatsDb *
MySlot(void)
{
	if (MyStatsSearched)
		return MyStats;
	if (Shared == NULL || !OidIsValid(MyDatabaseId))
		return NULL;
	MyStatsSearched = true;
	for (int i = 0; i < ES_STATS_DATABASES; i++)
	{
		EsStatsDb  *db = &Shared->db[i];
		uint32		owner = pg_atomic_read_u32(&db->dboid);

		if (owner == 0)
		{
			uint32		expected = 0;

			if (pg_atomic_compare_exchange_u32(&db->dboid, &expected,
											   (uint32) MyDatabaseId))
			{
				pg_atomic_write_u64(&db->reset_at,
									(uint64) GetCurrentTimestamp());
				MyStats = db;
				break;
			}
			owner = expected;
		}
		if (owner == (uint32) MyDatabaseId)
		{
			MyStats = db;
			break;
		}
	}
	return MyStats;
}

/* Whether this backend counts (the block exists and its database has a slot). */
bool
EsStatsEnabled(void)
{
	return MySlot() != NULL;
}

/* Count one command of type applied in this database.  Never fails. */
void
EsStatsCountApplied(EsCommandType type)
{
	EsStatsDb  *db = MySlot();

	if (Shared == NULL)
		return;
	if (db == NULL)
		pg_atomic_fetch_add_u64(&Shared->unslotted, 1);
	else if (type >= 0 && type < ES_CMD_COUNT)
		pg_atomic_fetch_add_u64(&db->applied[type], 1);
}

/*
 * Count one rejection with SQLSTATE sqlerrcode (packed, as
 * ErrorData.sqlerrcode) in this database.  Never fails.
 */
void
EsStatsCountRejected(int sqlerrcode)
{
	EsStatsDb  *db = MySlot();

	if (Shared == NULL)
		return;
	if (db == NULL)
	{
		pg_atomic_fetch_add_u64(&Shared->unslotted, 1);
		return;
	}
	for (int c = 0; c < ES_STATS_CODES; c++)
	{
		uint32		code = pg_atomic_read_u32(&db->code[c]);

		if (code == 0)
		{
			uint32		expected = 0;

			if (pg_atomic_compare_exchange_u32(&db->code[c], &expected,
											   (uint32) sqlerrcode))
				code = (uint32) sqlerrcode;
			else
				code = expected;
		}
		if (code == (uint32) sqlerrcode)
		{
			pg_atomic_fetch_add_u64(&db->rejected[c], 1);
			return;
		}
	}
	pg_atomic_fetch_add_u64(&db->other, 1);
}

/* What an SQLSTATE of the ledger's rejections means (doc/reference.md, 11 "Errors"), or NULL. */
static const char *
CodeMeaning(const char *code)
{
	static const char *const meanings[][2] = {
		{"ES001", "insufficient funds"},
		{"ES002", "balance limit exceeded"},
		{"ES003", "account not found"},
		{"ES004", "account already exists"},
		{"ES005", "account not open"},
		{"ES006", "currency mismatch"},
		{"ES007", "version conflict"},
		{"ES008", "idempotency conflict"},
		{"ES009", "invalid command"},
		{"ES010", "pending transfer not found or no longer pending"},
		{"ES011", "the log is immutable"},
		{"ES012", "integrity violation"},
		{"ES013", "pending transfer expired"},
		{"ES014", "account not empty"},
		{"22003", "numeric value out of range"},
		{"40001", "serialization failure"},
		{"40P01", "deadlock detected"},
		{"42501", "insufficient privilege"},
		{"55P03", "lock not available"},
		{"57014", "query canceled"},
	};

	for (int i = 0; i < lengthof(meanings); i++)
		if (strcmp(meanings[i][0], code) == 0)
			return meanings[i][1];
	return NULL;
}

/* Add a row (kind, key, value, detail) to a materialized result. */
static void
PutCounter(ReturnSetInfo *rsinfo, const char *kind, const char *key,
		   int64 value, const char *detail)
{
	Datum		values[4];
	bool		nulls[4] = {false, false, false, detail == NULL};

	values[0] = CStringGetTextDatum(kind);
	values[1] = CStringGetTextDatum(key);
	values[2] = Int64GetDatum(value);
	values[3] = detail ? CStringGetTextDatum(detail) : (Datum) 0;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * es_stats_counters()
 *	   RETURNS TABLE(kind text, key text, value bigint, detail text)
 *
 * This database's counters since the last es_stats_reset (or since the
 * server started, or since the database first counted).  Always the row
 * ('counters', 'preloaded', 1 or 0, a note when 0); then, when counting:
 * ('counters', 'since', seconds since then, the time), one ('commands',
 * type, applied) row per command type, one ('rejections', SQLSTATE,
 * count, its meaning) row per SQLSTATE counted, ('rejections', 'other',
 * ...) for those past the code slots; or, when the database found no slot,
 * ('counters', 'unslotted', counts lost, why).  Reads atomics only: never
 * waits.
 */
PG_FUNCTION_INFO_V1(es_stats_counters);
Datum
es_stats_counters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	EsStatsDb  *db;

	InitMaterializedSRF(fcinfo, 0);
	if (Shared == NULL)
	{
		PutCounter(rsinfo, "counters", "preloaded", 0,
				   "es_ledger is not in shared_preload_libraries: commands and rejections are not counted");
		return (Datum) 0;
	}
	PutCounter(rsinfo, "counters", "preloaded", 1, NULL);
	db = MySlot();
	if (db == NULL)
	{
		PutCounter(rsinfo, "counters", "unslotted",
				   (int64) pg_atomic_read_u64(&Shared->unslotted),
				   psprintf("every one of the %d database slots is taken: this database counts nothing",
							ES_STATS_DATABASES));
		return (Datum) 0;
	}
	{
		TimestampTz reset_at = (TimestampTz) pg_atomic_read_u64(&db->reset_at);
		long		secs;
		int			usecs;

		TimestampDifference(reset_at, GetCurrentTimestamp(), &secs, &usecs);
		PutCounter(rsinfo, "counters", "since", (int64) secs,
				   timestamptz_to_str(reset_at));
	}
	for (int t = 0; t < ES_CMD_COUNT; t++)
		PutCounter(rsinfo, "commands", EsDecideHandler((EsCommandType) t)->name,
				   (int64) pg_atomic_read_u64(&db->applied[t]), NULL);
	for (int c = 0; c < ES_STATS_CODES; c++)
	{
		uint32		code = pg_atomic_read_u32(&db->code[c]);
		uint64		n = pg_atomic_read_u64(&db->rejected[c]);
		const char *name;

		if (code == 0 || n == 0)
			continue;
		name = unpack_sql_state((int) code);
		PutCounter(rsinfo, "rejections", name, (int64) n, CodeMeaning(name));
	}
	if (pg_atomic_read_u64(&db->other) > 0)
		PutCounter(rsinfo, "rejections", "other",
				   (int64) pg_atomic_read_u64(&db->other),
				   "SQLSTATEs past the code slots");
	return (Datum) 0;
}

/*
 * es_stats_reset() RETURNS timestamptz
 *
 * Zeroes this database's counters (commands and rejections) and returns
 * the time they count from; NULL without es_ledger in
 * shared_preload_libraries (nothing is counted then).  Atomic writes, no
 * lock: a count made during the reset may be kept or lost.
 * EXECUTE is granted to es_ledger_admin only.
 */
PG_FUNCTION_INFO_V1(es_stats_reset);
Datum
es_stats_reset(PG_FUNCTION_ARGS)
{
	EsStatsDb  *db = MySlot();
	TimestampTz now = GetCurrentTimestamp();

	if (db == NULL)
		PG_RETURN_NULL();
	for (int t = 0; t < ES_CMD_COUNT; t++)
		pg_atomic_write_u64(&db->applied[t], 0);
	for (int c = 0; c < ES_STATS_CODES; c++)
		pg_atomic_write_u64(&db->rejected[c], 0);
	pg_atomic_write_u64(&db->other, 0);
	pg_atomic_write_u64(&db->reset_at, (uint64) now);
	PG_RETURN_TIMESTAMPTZ(now);
}
