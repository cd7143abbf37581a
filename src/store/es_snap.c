/*-------------------------------------------------------------------------
 *
 * es_snap.c
 *	  Snapshots: an account's state stored at a version, so that replay
 *	  reads the newest usable one and only the events after it.
 *
 * A snapshot is a row of es_snapshots: the columns of es_accounts (written
 * by the same state codec, es_row.c), the state the fold of events
 * 1 .. version left, then what replay needs to choose and trust it: the
 * greatest recorded_at and effective_at of those events, a format version,
 * a magic number, and a SHA-256 checksum over all of it.  The state's
 * last_seq, updated_at and last_hash are the seq, recorded_at and hash of
 * the event at the snapshot's version, so the checksum binds the snapshot
 * to the log's hash chain there.
 *
 * Written by es_apply (EsSnapAfterAppend) when an account's version crosses
 * a multiple of es_ledger.snapshot_interval (so one write per interval
 * events), and on demand by es_snapshot(account).  Both fold the events
 * after the newest trustworthy snapshot (or from version 1) with
 * EsFoldEvent: a snapshot is replay's own answer at its version, never a
 * copy of the projection.
 *
 * Invariants a reader relies on:
 *	- a snapshot at version V equals the fold of events 1 .. V;
 *	- it is usable for as_of when max_recorded_at <= as_of, and for
 *	  effective_until when max_effective_at <= effective_until: then every
 *	  event up to V passes the filter, and replay folding the later events
 *	  with the same filter gives what a replay from version 1 gives (a
 *	  release, post, void or expiry, never takes effect before its
 *	  reservation, es_decide.c: so a filter by valid time that keeps a
 *	  release keeps its reservation, whether that is folded into the
 *	  snapshot or after it);
 *	- before use it is checked (EsSnapProblem): magic, format, checksum,
 *	  and that the log holds at V an event with the seq, recorded_at and
 *	  hash it records.  One that fails is never used: a WARNING with
 *	  SQLSTATE ES012 names it and replay goes on to an older snapshot or
 *	  the start of the stream, so the answer is still right.
 * The checksum catches damage and careless edits; it has no key, so one
 * who rewrites a row and its checksum evades it: es_verify's snapshots
 * check compares every snapshot with the replay at its version.
 *
 * Snapshots are derived data: es_drop_snapshots deletes them and replay is
 * only slower; pg_dump does not keep them.
 *
 * Locks: readers take AccessShareLock on es_snapshots and its index.
 * es_apply writes with RowExclusiveLock under the account's row lock, which
 * also serialises it with es_snapshot (which takes the same row lock);
 * es_snapshot and es_drop_snapshots also take ShareUpdateExclusiveLock on
 * es_snapshots, so they run one at a time without blocking es_apply.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "common/cryptohash.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "store.h"

/* es_ledger.snapshot_interval: events between automatic snapshots. */
int			EsSnapInterval = 1000;

/* Define es_ledger.snapshot_interval; from _PG_init, before EsCommandInit. */
void
EsSnapInit(void)
{
	DefineCustomIntVariable("es_ledger.snapshot_interval",
							"Events of an account between two automatic snapshots of its state.",
							"es_apply stores a snapshot when an account's version crosses a multiple of it; 0 turns automatic snapshots off.",
							&EsSnapInterval,
							1000, 0, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
}

/* Append a 64-bit integer to buf in network byte order. */
static void
AppendInt64(StringInfo buf, int64 v)
{
	uint64		be = pg_hton64((uint64) v);

	appendBinaryStringInfo(buf, (char *) &be, sizeof(be));
}

/*
 * The checksum of a snapshot: SHA-256 over every column but the checksum,
 * in table order, each as a presence byte then (integers and times) 8
 * bytes in network order or (text, bytea) its length and bytes.  It covers
 * the magic number and format, and last_hash, the log's hash at the
 * snapshot's version.  Columns are encoded by the codec's types, so state
 * columns added to es_accounts (and es_snapshots) are covered too.
 */
static void
SnapChecksum(const EsSnapshot *snap, uint8 *out)
{
	Datum		v[ES_SNAP_NATTS];
	bool		n[ES_SNAP_NATTS];
	StringInfoData buf;
	pg_cryptohash_ctx *ctx;

	EsRowSnapshotToValues(snap, v, n);
	initStringInfo(&buf);
	for (int i = 0; i < ES_SNAP_ATT_CHECKSUM - 1; i++)
	{
		Oid			type = EsRowColumnType(ES_REL_SNAPSHOTS, i + 1);

		appendStringInfoChar(&buf, n[i] ? 0 : 1);
		if (n[i])
			continue;
		switch (type)
		{
			case INT8OID:
			case TIMESTAMPTZOID:
				AppendInt64(&buf, DatumGetInt64(v[i]));
				break;
			case INT4OID:
				AppendInt64(&buf, DatumGetInt32(v[i]));
				break;
			case INT2OID:
				AppendInt64(&buf, DatumGetInt16(v[i]));
				break;
			case TEXTOID:
			case BYTEAOID:
				{
					struct varlena *p = PG_DETOAST_DATUM_PACKED(v[i]);

					AppendInt64(&buf, VARSIZE_ANY_EXHDR(p));
					appendBinaryStringInfo(&buf, VARDATA_ANY(p),
										   VARSIZE_ANY_EXHDR(p));
					break;
				}
			default:
				elog(ERROR, "es_snapshots column %d has a type the checksum cannot encode",
					 i + 1);
		}
	}
	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) buf.data, buf.len) < 0 ||
		pg_cryptohash_final(ctx, out, ES_HASH_LEN) < 0)
		elog(ERROR, "could not compute the SHA-256 of a snapshot: %s",
			 pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	pfree(buf.data);
}

/*
 * Why snapshot snap of account account_id cannot be trusted, as snapshot
 * sees the log, or NULL if it can: its magic number and format, its
 * checksum, and the event the log holds at its version (seq, recorded_at,
 * hash, and times within the snapshot's bounds).
 */
static const char *
SnapProblem(const EsSnapshot *snap, int64 account_id, Snapshot snapshot)
{
	uint8		sum[ES_HASH_LEN];
	EsEvent		ev;

	if (snap->magic != ES_SNAP_MAGIC)
		return "its magic number is wrong";
	if (snap->format != ES_SNAP_FORMAT_VERSION)
		return psprintf("its format version %d is not one this library reads",
						(int) snap->format);
	if (snap->state.account_id != account_id)
		return "it belongs to another account";
	SnapChecksum(snap, sum);
	if (memcmp(sum, snap->checksum, ES_HASH_LEN) != 0)
		return "its checksum does not match its content";
	if (!EsScanEventAt(account_id, snap->state.version, snapshot, &ev))
		return "the log holds no event at its version";
	if (ev.seq != snap->state.last_seq ||
		ev.recorded_at != snap->state.updated_at ||
		memcmp(ev.hash, snap->state.last_hash, ES_HASH_LEN) != 0)
		return "the log's event at its version has another seq, recorded_at or hash";
	if (snap->max_recorded_at < ev.recorded_at ||
		snap->max_effective_at < ev.effective_at)
		return "its time bounds are below the times of the log's event at its version";
	return NULL;
}

/* Copy what a state points to into the current memory context. */
static void
CopyStateStrings(EsAccountState *state)
{
	if (state->account)
		state->account = pstrdup(state->account);
	if (state->currency)
		state->currency = pstrdup(state->currency);
}

static bool SnapFindIn(int64 account_id, const char *account,
					   const TimestampTz *as_of,
					   const TimestampTz *effective_until, Snapshot snapshot,
					   EsSnapshot *snap);

/*
 * Find the newest snapshot of an account that replay may start from: one
 * whose events all pass the filters (max_recorded_at <= *as_of, and
 * max_effective_at <= *effective_until; NULL: no bound) and that passes
 * SnapProblem, as the active snapshot sees the log.  A snapshot that fails
 * is reported with a WARNING (ES012) naming the account (account, its
 * name) and the version, and passed over.  On success *snap
 * holds it, its texts in the current memory context.  False if none (or
 * no es_snapshots: a ledger not yet updated to 0.3.0).
 */
bool
EsSnapFind(int64 account_id, const char *account, const TimestampTz *as_of,
		   const TimestampTz *effective_until, EsSnapshot *snap)
{
	return SnapFindIn(account_id, account, as_of, effective_until,
					  GetActiveSnapshot(), snap);
}

/* EsSnapFind, reading es_snapshots and the log with snapshot. */
static bool
SnapFindIn(int64 account_id, const char *account, const TimestampTz *as_of,
		   const TimestampTz *effective_until, Snapshot snapshot,
		   EsSnapshot *snap)
{
	EsScanIter *it;
	bool		found = false;

	if (!EsRowRelExists(ES_REL_SNAPSHOTS))
		return false;
	it = EsScanBegin(ES_REL_SNAPSHOTS, ES_REL_SNAPSHOTS_IDX, true, account_id,
					 snapshot);
	it->direction = BackwardScanDirection;	/* newest first */
	while (EsScanNext(it))
	{
		MemoryContext old = MemoryContextSwitchTo(it->rowcxt);
		const char *problem = EsRowSnapshotDecode(it->slot->tts_values,
												  it->slot->tts_isnull, snap);

		if (problem == NULL &&
			((as_of && snap->max_recorded_at > *as_of) ||
			 (effective_until && snap->max_effective_at > *effective_until)))
		{
			MemoryContextSwitchTo(old);
			continue;			/* newer than the time asked for */
		}
		if (problem == NULL)
			problem = SnapProblem(snap, account_id, snapshot);
		MemoryContextSwitchTo(old);
		if (problem)
		{
			ereport(WARNING,
					(errcode(ERRCODE_ES_INTEGRITY),
					 errmsg("snapshot of account \"%s\" at version %lld is not used: %s",
							account,
							(long long) DatumGetInt64(it->slot->tts_values[ES_ACC_ATT_VERSION - 1]),
							problem),
					 errdetail("Replay starts from an older snapshot or from the account's first event instead."),
					 errhint("es_drop_snapshots and es_snapshot replace damaged snapshots.")));
			continue;
		}
		CopyStateStrings(&snap->state);
		found = true;
		break;
	}
	EsScanEnd(it);
	return found;
}

/*
 * Fold an account's events after snap's version (snap as EsSnapFind left
 * it, or S(0) with zero bounds), as snapshot sees the log, into snap: its
 * state, time bounds and checksum become those of the snapshot at the last
 * version folded.  Allocations go to the current memory context; a row's
 * in the walk's.  Never raises for a damaged log: returns NULL, or why an
 * event could not be read or folded (then snap is not to be stored), so
 * that a damaged old event cannot make es_apply fail.
 */
static const char *
SnapFold(EsSnapshot *snap, int64 account_id, Snapshot snapshot)
{
	EsScanIter *it = EsScanBeginAccount(account_id, snap->state.version,
										snapshot);
	MemoryContext keep = CurrentMemoryContext;
	const char *problem = NULL;
	int64		n = 0;

	while (problem == NULL && EsScanNext(it))
	{
		EsEvent		ev;
		MemoryContext old = MemoryContextSwitchTo(it->rowcxt);

		problem = EsRowEventDecode(it->slot->tts_values, it->slot->tts_isnull,
								   &ev);
		if (problem == NULL)
			problem = EsFoldProblem(&snap->state, &ev);
		if (problem)
		{
			problem = MemoryContextStrdup(keep,
										  psprintf("event %lld: %s",
												   (long long) ev.seq, problem));
			MemoryContextSwitchTo(old);
			break;
		}
		/* The opening event's texts are kept by the state. */
		if (ev.type == ES_EV_ACCOUNT_OPENED)
			MemoryContextSwitchTo(keep);
		EsFoldEvent(&snap->state, &ev);
		MemoryContextSwitchTo(old);
		if (n == 0 && snap->state.version == 1)
		{
			snap->max_recorded_at = ev.recorded_at;
			snap->max_effective_at = ev.effective_at;
		}
		snap->max_recorded_at = Max(snap->max_recorded_at, ev.recorded_at);
		snap->max_effective_at = Max(snap->max_effective_at, ev.effective_at);
		n++;
	}
	EsScanEnd(it);
	snap->format = ES_SNAP_FORMAT_VERSION;
	snap->magic = ES_SNAP_MAGIC;
	SnapChecksum(snap, snap->checksum);
	return problem;
}

/*
 * The snapshot of an account at the last version snapshot sees: from the
 * newest trustworthy snapshot (as snapshot sees es_snapshots: SnapshotSelf
 * sees those this transaction wrote, so a batch that crosses several
 * multiples of the interval folds each interval once), or from S(0),
 * folding the events after it.  *base_version is the version it started
 * from (0: the stream's start).  NULL, or why the log could not be folded
 * (SnapFold).
 */
static const char *
SnapMake(int64 account_id, const char *account, Snapshot snapshot,
		 EsSnapshot *snap, int64 *base_version)
{
	if (!SnapFindIn(account_id, account, NULL, NULL, snapshot, snap))
	{
		memset(snap, 0, sizeof(*snap));
		EsFoldInit(&snap->state, account_id);
	}
	*base_version = snap->state.version;
	return SnapFold(snap, account_id, snapshot);
}

/* Store a snapshot SnapFold made; the caller holds the write guard. */
static void
SnapInsert(const EsSnapshot *snap)
{
	Datum		v[ES_SNAP_NATTS];
	bool		n[ES_SNAP_NATTS];

	EsRowSnapshotToValues(snap, v, n);
	EsWriteInsertRow(ES_REL_SNAPSHOTS, v, n);
}

/*
 * es_apply's hook, after it appended a command's events: if an account's
 * version went from prev_version to state->version across a multiple of
 * es_ledger.snapshot_interval, store its snapshot at state->version.  The
 * caller holds the account's row lock and the write guard.  The snapshot is
 * folded from the log (SnapshotSelf: the events this transaction appended
 * too) from the newest snapshot before it, so this costs one read of the
 * interval's events every interval events; it must end where es_apply's
 * own fold did (version and hash), and a damaged log makes no error here:
 * else nothing is stored and a WARNING says so (es_verify tells what
 * differs).
 */
void
EsSnapAfterAppend(const EsAccountState *state, int64 prev_version)
{
	int64		interval = EsSnapInterval;
	EsSnapshot	snap;
	int64		base;
	const char *problem;
	MemoryContext cxt;
	MemoryContext old;

	if (interval <= 0 || state->version / interval == prev_version / interval)
		return;
	if (!EsRowRelExists(ES_REL_SNAPSHOTS))
		return;
	cxt = AllocSetContextCreate(CurrentMemoryContext, "es_ledger snapshot",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	problem = SnapMake(state->account_id, state->account, SnapshotSelf, &snap,
					   &base);
	if (problem == NULL &&
		(snap.state.version != state->version ||
		 memcmp(snap.state.last_hash, state->last_hash, ES_HASH_LEN) != 0))
		problem = psprintf("the log's fold ends at version %lld with another hash than es_apply's",
						   (long long) snap.state.version);
	if (problem)
		ereport(WARNING,
				(errcode(ERRCODE_ES_INTEGRITY),
				 errmsg("no snapshot of account \"%s\" stored at version %lld",
						state->account,
						(long long) state->version),
				 errdetail("The log cannot be folded up to it: %s.", problem),
				 errhint("es_verify tells what is wrong with the log.")));
	else if (base != snap.state.version)
		SnapInsert(&snap);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/* Delete the es_snapshots row a walk is on (the caller holds the guard). */
static void
SnapDeleteCurrent(EsScanIter *it)
{
	simple_table_tuple_delete(it->heap, &it->slot->tts_tid, GetActiveSnapshot());
}

/*
 * Delete the snapshots of an account (all accounts: one false), or only its
 * one at version (version 0: all of them); returns how many.  The caller
 * holds the write guard and ShareUpdateExclusiveLock on es_snapshots.
 */
static int64
SnapDelete(bool one, int64 account_id, int64 version)
{
	EsScanIter *it;
	int64		n = 0;

	it = EsScanBegin(ES_REL_SNAPSHOTS, ES_REL_SNAPSHOTS_IDX, one, account_id,
					 GetActiveSnapshot());
	/* The walk's table was opened with AccessShareLock; deletes need more. */
	LockRelationOid(EsRowRelid(ES_REL_SNAPSHOTS), RowExclusiveLock);
	while (EsScanNext(it))
	{
		if (version != 0 &&
			(it->slot->tts_isnull[ES_ACC_ATT_VERSION - 1] ||
			 DatumGetInt64(it->slot->tts_values[ES_ACC_ATT_VERSION - 1]) != version))
			continue;
		SnapDeleteCurrent(it);
		n++;
	}
	EsScanEnd(it);
	return n;
}

/* The account named by argument 0: ES009 if NULL, ES003 if the log has none. */
static int64
AccountArg(FunctionCallInfo fcinfo, char **name)
{
	int64		account_id;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_ES_INVALID_COMMAND),
				 errmsg("account must not be null")));
	*name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!EsScanFindOpened(*name, &account_id))
		ereport(ERROR,
				(errcode(ERRCODE_ES_ACCOUNT_NOT_FOUND),
				 errmsg("account \"%s\" not found", *name),
				 errdetail("The log holds no AccountOpened event for it.")));
	return account_id;
}

/* 55000 unless es_snapshots exists (a ledger updated to 0.3.0). */
static void
RequireSnapshots(void)
{
	if (!EsRowRelExists(ES_REL_SNAPSHOTS))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("es_snapshots does not exist"),
				 errhint("Run ALTER EXTENSION es_ledger UPDATE.")));
}

/*
 * es_snapshot(account text) RETURNS bigint
 *
 * Stores a snapshot of the account at its current version, folded from the
 * log (from its newest trustworthy snapshot on), and returns that version.
 * Writes nothing if a trustworthy snapshot at that version exists already;
 * replaces one that fails its checks.  ES009 for a NULL account, ES003 for
 * an account the log does not know or that has no projection row, ES012
 * for a log that cannot be folded, 25006 in a read-only transaction.
 *
 * Locks: the account's es_accounts row lock (what FOR UPDATE takes), like a
 * command on it, so its version cannot move meanwhile; ShareUpdateExclusive
 * on es_snapshots (one es_snapshot or es_drop_snapshots at a time; es_apply
 * is not blocked); all held to the end of the transaction.
 */
PG_FUNCTION_INFO_V1(es_snapshot);
Datum
es_snapshot(PG_FUNCTION_ARGS)
{
	char	   *name;
	int64		account_id;
	volatile int64 version = 0;
	const char *names[1];

	RequireSnapshots();
	account_id = AccountArg(fcinfo, &name);
	names[0] = name;
	EsGuardBeginWrite();
	PG_TRY();
	{
		EsSnapshot	snap;
		int64		base;
		bool		found;
		EsAccountState locked;
		const char *problem;

		EsWriteBegin();
		EsWriteNextCommand();
		EsWriteLockAccounts(names, 1, &locked, &found);
		if (!found || locked.account_id != account_id)
			ereport(ERROR,
					(errcode(ERRCODE_ES_ACCOUNT_NOT_FOUND),
					 errmsg("account \"%s\" not found", name),
					 errdetail("es_accounts has no row for the account the log knows by that name.")));
		LockRelationOid(EsRowRelid(ES_REL_SNAPSHOTS), ShareUpdateExclusiveLock);
		/* What committed while we waited, and what this transaction wrote. */
		PushActiveSnapshot(GetLatestSnapshot());
		problem = SnapMake(account_id, name, SnapshotSelf, &snap, &base);
		if (problem)
			ereport(ERROR,
					(errcode(ERRCODE_ES_INTEGRITY),
					 errmsg("account \"%s\" cannot be replayed: %s", name,
							problem),
					 errdetail("The log contradicts itself; es_verify tells where.")));
		if (base != snap.state.version)
		{
			/* A snapshot at this version failed its checks: replace it. */
			SnapDelete(true, account_id, snap.state.version);
			CommandCounterIncrement();
			SnapInsert(&snap);
		}
		version = snap.state.version;
		PopActiveSnapshot();
	}
	PG_FINALLY();
	{
		EsGuardEndWrite();
	}
	PG_END_TRY();
	EsWriteEnd();
	PG_RETURN_INT64(version);
}

/*
 * es_drop_snapshots(account text DEFAULT NULL) RETURNS bigint
 *
 * Deletes the snapshots of the account (NULL: of every account) and returns
 * how many.  Replay reads the log from the start (or from snapshots written
 * later) and is only slower: snapshots are derived data.  ES003 for an
 * account the log does not know; 25006 in a read-only transaction.
 *
 * Locks: ShareUpdateExclusive on es_snapshots (one es_snapshot or
 * es_drop_snapshots at a time; es_apply is not blocked) and RowExclusive,
 * to the end of the transaction.
 */
PG_FUNCTION_INFO_V1(es_drop_snapshots);
Datum
es_drop_snapshots(PG_FUNCTION_ARGS)
{
	bool		one = !PG_ARGISNULL(0);
	volatile int64 account_id = 0;
	volatile int64 n = 0;
	char	   *name;

	RequireSnapshots();
	PreventCommandIfReadOnly("es_drop_snapshots()");
	if (one)
		account_id = AccountArg(fcinfo, &name);
	LockRelationOid(EsRowRelid(ES_REL_SNAPSHOTS), ShareUpdateExclusiveLock);
	EsGuardBeginWrite();
	PG_TRY();
	{
		PushActiveSnapshot(GetLatestSnapshot());
		n = SnapDelete(one, account_id, 0);
		PopActiveSnapshot();
	}
	PG_FINALLY();
	{
		EsGuardEndWrite();
	}
	PG_END_TRY();
	PG_RETURN_INT64(n);
}

/*
 * es_verify's snapshots check: every snapshot (of one account, or of all)
 * passes SnapProblem and equals the replay at its version, as the active
 * snapshot sees the log: the fold of events 1 .. version, its time bounds
 * and so its checksum.  Walks es_snapshots in (account_id, version) order
 * and, per account, its events once, folding up to each snapshot's version:
 * memory stays flat.  Each failure goes to fail with the snapshot's
 * last_seq; returns the number of snapshots checked.
 */
int64
EsSnapVerify(bool one, int64 account_id, EsSnapFailCallback fail, void *arg)
{
	EsScanIter *snaps;
	EsScanIter *evs = NULL;
	MemoryContext acccxt;
	EsSnapshot	fold;
	bool		broken = false; /* the account's log cannot be folded */
	int64		checked = 0;

	if (!EsRowRelExists(ES_REL_SNAPSHOTS))
		return 0;
	acccxt = AllocSetContextCreate(CurrentMemoryContext, "es_verify snapshots",
								   ALLOCSET_DEFAULT_SIZES);
	memset(&fold, 0, sizeof(fold));
	snaps = EsScanBegin(ES_REL_SNAPSHOTS, ES_REL_SNAPSHOTS_IDX, one,
						account_id, GetActiveSnapshot());
	while (EsScanNext(snaps))
	{
		EsSnapshot	snap;
		const char *problem;
		MemoryContext old = MemoryContextSwitchTo(snaps->rowcxt);

		checked++;
		problem = EsRowSnapshotDecode(snaps->slot->tts_values,
									  snaps->slot->tts_isnull, &snap);
		if (problem == NULL)
			problem = SnapProblem(&snap, snap.state.account_id,
								  GetActiveSnapshot());
		MemoryContextSwitchTo(old);
		if (problem)
		{
			fail(snap.state.last_seq,
				 psprintf("snapshot of account %s at version %lld: %s",
						  snap.state.account ?
						  psprintf("\"%s\"", snap.state.account) :
						  psprintf("%lld", (long long) snap.state.account_id),
						  (long long) snap.state.version, problem), arg);
			continue;
		}

		/* The replay of its account up to its version. */
		if (evs == NULL || snap.state.account_id != fold.state.account_id)
		{
			if (evs)
				EsScanEnd(evs);
			MemoryContextReset(acccxt);
			memset(&fold, 0, sizeof(fold));
			EsFoldInit(&fold.state, snap.state.account_id);
			evs = EsScanBeginAccount(snap.state.account_id, 0,
									 GetActiveSnapshot());
			broken = false;
		}
		while (!broken && fold.state.version < snap.state.version)
		{
			EsEvent		ev;

			if (!EsScanNext(evs))
				break;
			old = MemoryContextSwitchTo(evs->rowcxt);
			if (EsRowEventDecode(evs->slot->tts_values, evs->slot->tts_isnull,
								 &ev) != NULL ||
				EsFoldProblem(&fold.state, &ev) != NULL)
				broken = true;	/* reported by the log's own checks */
			else
			{
				if (ev.type == ES_EV_ACCOUNT_OPENED)
					MemoryContextSwitchTo(acccxt);
				EsFoldEvent(&fold.state, &ev);
				if (ev.version == 1)
				{
					fold.max_recorded_at = ev.recorded_at;
					fold.max_effective_at = ev.effective_at;
				}
				fold.max_recorded_at = Max(fold.max_recorded_at, ev.recorded_at);
				fold.max_effective_at = Max(fold.max_effective_at, ev.effective_at);
			}
			MemoryContextSwitchTo(old);
		}
		if (broken || fold.state.version != snap.state.version)
		{
			fail(snap.state.last_seq,
				 psprintf("snapshot of account \"%s\" at version %lld: the log cannot be replayed up to its version",
						  snap.state.account,
						  (long long) snap.state.version), arg);
			continue;
		}
		fold.format = ES_SNAP_FORMAT_VERSION;
		fold.magic = ES_SNAP_MAGIC;
		old = MemoryContextSwitchTo(snaps->rowcxt);
		SnapChecksum(&fold, fold.checksum);
		MemoryContextSwitchTo(old);
		if (memcmp(fold.checksum, snap.checksum, ES_HASH_LEN) != 0)
			fail(snap.state.last_seq,
				 psprintf("snapshot of account \"%s\" at version %lld differs from the replay of the log at its version",
						  snap.state.account,
						  (long long) snap.state.version), arg);
	}
	if (evs)
		EsScanEnd(evs);
	EsScanEnd(snaps);
	MemoryContextDelete(acccxt);
	return checked;
}
