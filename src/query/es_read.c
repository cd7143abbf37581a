/*-------------------------------------------------------------------------
 *
 * es_read.c
 *	  Following the log: es_read returns the committed events after a
 *	  cursor, so that a consumer that saves the last cursor it processed
 *	  never misses an event and never sees one twice.
 *
 * Why not "seq > last seq": seq is drawn when an event is appended but the
 * event becomes visible when its transaction commits, so a transaction that
 * commits late shows a lower seq after higher ones were read.  Instead each
 * event carries the xid8 of the transaction that wrote it (es_events.tx,
 * written by the row codec), and es_read returns only events whose tx is
 * below its bound, in (tx, seq) order, walking the index
 * es_events_tx_seq_idx.  The bound is the least xid of the transactions of
 * this database (running or prepared) still running in the snapshot, or
 * the snapshot's xmax (LocalBound; its xmin on a hot standby).  Every
 * transaction below the bound either has finished in the snapshot (its
 * events all visible if it committed, never if it aborted) or belongs to
 * another database and has no events here.  Every transaction that can
 * still append has an xid at or above the bound.  So a transaction left
 * open in another database never delays the read; one of this database,
 * prepared or idle with an xid, does.
 * So the events with (tx, seq) up to any cursor es_read returned are a
 * set that no later transaction can add to, and the next call continues
 * strictly after it.  A transaction held open delays the events of every
 * later transaction (they wait behind its xid), never loses one.  The
 * caller's own transaction, if it has an xid, bounds the read too: its own
 * events are returned after it commits.
 *
 * Invariants relied on:
 *	- tx is the top-level transaction's full xid (es_row.c
 *	  EsRowEventToValues; a restore stamps its own, es_restore.c), so a
 *	  subtransaction's events are finished when its top transaction is;
 *	- xid8 never wraps, so (tx, seq) order is total and stable;
 *	- the snapshot that bounds the read is the one that reads the rows (the
 *	  active snapshot), so "below xmin" and "visible" agree.
 *
 * The cursor is opaque text, "es1:<tx>:<seq>:<crc>": format version 1, the
 * (tx, seq) of the last event returned, and a CRC-32C of the rest in eight
 * hex digits.  Parsing is strict: exactly the text es_read produces, or
 * 22023.  A cursor is checked against the log before use: the event seq
 * must be there with the same tx (its anchor).  It is not after a logical
 * restore (tx values are the restoring transaction's), or in another ledger,
 * or after a point-in-time recovery that lost the event: then 55000, and
 * the consumer starts again from NULL (see doc/reference.md).  If the
 * anchor's transaction is not finished in the reader's snapshot (a standby
 * behind the primary the cursor came from), nothing is returned yet.
 *
 * Filters (es_read's for_account and event_types, EsReadFilter): the walk
 * is the same, events that do not pass are dropped after they are read,
 * and the scan is bounded (ES_READ_SCAN_FACTOR * max_count events).  Every
 * event up to the last one scanned was either returned or filtered out, so
 * that event's position is a sound cursor: es_read returns it in a
 * checkpoint row (cursor only) when it is past the last event returned, and
 * a filtered follower never scans the same events twice.  Each row's
 * account name comes from the account's opening event (version 1: the
 * event itself when it is that one, else one probe of
 * es_events_account_version_key), cached by account id for the call.
 *
 * C API (for other modules, e.g. a projection worker): EsReadParseCursor,
 * EsReadFormatCursor, EsReadBatch and EsReadBatchFiltered (query.h).
 *
 * Locks: AccessShareLock on es_events and the indexes read; no row locks.
 * Reads the statement's snapshot, never waits for writers, works on a hot
 * standby.  EXECUTE on es_read is the only privilege checked.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/stratnum.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "access/twophase.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/xid8.h"

#include "query.h"

/* Columns of es_read's result. */
#define READ_NATTS	11

/* Longest cursor text es_read makes: "es1:" 20 ":" 19 ":" 8. */
#define CURSOR_MAX_LEN	(4 + 20 + 1 + 19 + 1 + 8)

/*
 * Report a malformed cursor, with 22023 and why.  A long one is shown cut
 * to CURSOR_MAX_LEN bytes on a character boundary (pg_mbcliplen), so the
 * message stays valid text in the server encoding.
 */
static void
pg_attribute_noreturn()
BadCursor(const char *text, const char *why)
{
	int			len = strlen(text);
	int			shown = len > CURSOR_MAX_LEN ?
	pg_mbcliplen(text, len, CURSOR_MAX_LEN) : len;

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid es_read cursor \"%.*s%s\"", shown, text,
					len > CURSOR_MAX_LEN ? "..." : ""),
			 errdetail("%s", why),
			 errhint("Pass NULL to read from the start, or a cursor es_read returned.")));
	pg_unreachable();
}

/* The event type names, comma separated (for an error's detail). */
static char *
ValidTypes(void)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = ES_EV_ACCOUNT_OPENED; i <= ES_EV_LAST; i++)
		appendStringInfo(&buf, "%s%s", i > ES_EV_ACCOUNT_OPENED ? ", " : "",
						 EsEventTypeName((EsEventType) i));
	return buf.data;
}

/* The CRC-32C of the first len bytes of a cursor's text. */
static pg_crc32c
CursorCrc(const char *text, int len)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, text, len);
	FIN_CRC32C(crc);
	return crc;
}

/* The text of a cursor, palloc'd: "es1:<tx>:<seq>:<crc>". */
char *
EsReadFormatCursor(const EsReadCursor *cursor)
{
	char		buf[CURSOR_MAX_LEN + 1];
	int			len;

	len = snprintf(buf, sizeof(buf), ES_READ_CURSOR_PREFIX ":" UINT64_FORMAT ":" INT64_FORMAT,
				   U64FromFullTransactionId(cursor->tx), cursor->seq);
	snprintf(buf + len, sizeof(buf) - len, ":%08x", CursorCrc(buf, len));
	return pstrdup(buf);
}

/*
 * Parse the unsigned decimal number of at most maxdigits digits at *p up to
 * the next ':' or the end; advance *p past it.  False if it is empty, has
 * another character, a leading zero or too many digits, or is above max.
 */
static bool
ParseNumber(const char **p, int maxdigits, uint64 max, uint64 *out)
{
	const char *s = *p;
	uint64		v = 0;
	int			n = 0;

	while (s[n] != '\0' && s[n] != ':')
	{
		if (s[n] < '0' || s[n] > '9' || n >= maxdigits)
			return false;
		if (v > (PG_UINT64_MAX - (s[n] - '0')) / 10)
			return false;
		v = v * 10 + (s[n] - '0');
		n++;
	}
	if (n == 0 || (n > 1 && s[0] == '0') || v > max)
		return false;
	*out = v;
	*p = s + n;
	return true;
}

/*
 * Parse a cursor's text into *cursor, strictly: exactly what
 * EsReadFormatCursor makes, or 22023 saying what is wrong.  Does not look
 * at the log (EsReadBatch checks the cursor's anchor).
 */
void
EsReadParseCursor(const char *text, EsReadCursor *cursor)
{
	const char *p = text;
	const char *crcpos;
	uint64		tx;
	uint64		seq;
	uint64		crc;

	if (strlen(text) > CURSOR_MAX_LEN)
		BadCursor(text, "It is longer than any cursor es_read returns.");
	if (strncmp(text, "es", 2) != 0 || strchr(text, ':') == NULL)
		BadCursor(text, "It does not start with a cursor format version such as \"es1:\".");
	if (strncmp(text, ES_READ_CURSOR_PREFIX ":", strlen(ES_READ_CURSOR_PREFIX) + 1) != 0)
		BadCursor(text, psprintf("Its format version \"%.*s\" is not the version \"%s\" this library reads.",
								 (int) (strchr(text, ':') - text), text,
								 ES_READ_CURSOR_PREFIX));
	p += strlen(ES_READ_CURSOR_PREFIX) + 1;
	if (!ParseNumber(&p, 20, PG_UINT64_MAX, &tx) || *p != ':')
		BadCursor(text, "Its transaction id is not a decimal number in the range of xid8.");
	p++;
	if (!ParseNumber(&p, 19, PG_INT64_MAX, &seq) || *p != ':' || seq < 1)
		BadCursor(text, "Its seq is not a decimal number from 1 to 9223372036854775807.");
	crcpos = p;
	p++;
	if (strlen(p) != 8 || strspn(p, "0123456789abcdef") != 8)
		BadCursor(text, "It does not end with a checksum of eight lower-case hex digits.");
	crc = strtoul(p, NULL, 16);
	if (!TransactionIdIsNormal(XidFromFullTransactionId(FullTransactionIdFromU64(tx))) &&
		EpochFromFullTransactionId(FullTransactionIdFromU64(tx)) == 0)
		BadCursor(text, "Its transaction id is not one that can write events.");
	if ((pg_crc32c) crc != CursorCrc(text, crcpos - text))
		BadCursor(text, "Its checksum does not match its content.");
	cursor->tx = FullTransactionIdFromU64(tx);
	cursor->seq = (int64) seq;
}

/*
 * A 32-bit xid of the current snapshot's era as a full xid, relative to the
 * next full xid (as pg_current_snapshot() widens its xmin): the xid is at
 * most 2^31 behind it.
 */
static FullTransactionId
WidenXid(TransactionId xid)
{
	FullTransactionId next = ReadNextFullTransactionId();
	uint32		epoch = EpochFromFullTransactionId(next);

	if (!TransactionIdIsNormal(xid))
		return FullTransactionIdFromEpochAndXid(epoch, xid);
	if (xid > XidFromFullTransactionId(next) && epoch > 0)
		epoch--;
	return FullTransactionIdFromEpochAndXid(epoch, xid);
}

/* qsort/bsearch comparator of TransactionIds (plain order: a set test). */
static int
XidCmp(const void *a, const void *b)
{
	TransactionId x = *(const TransactionId *) a;
	TransactionId y = *(const TransactionId *) b;

	return (x > y) - (x < y);
}

/*
 * The least xid among the running transactions of snap (snap->xip) that
 * may have appended to this database's log, or snap->xmax if there is none:
 * the bound of a read on a primary.  A transaction of another database (a
 * backend connected to it, or a transaction prepared there) never writes
 * this database's es_events, so it does not hold the bound back, however
 * long it stays open.  The database of each xid is read from the process
 * array (backends and the dummy processes of prepared transactions) under
 * ProcArrayLock; an xid whose process no longer shows it (it finished
 * after the snapshot was taken) counts as this database's, since its rows,
 * if any, are not visible in snap.  An xid belongs to one transaction and
 * one database for ever, so a process's stale entry cannot mislead.
 */
static TransactionId
LocalBound(Snapshot snap)
{
	TransactionId bound = snap->xmax;
	TransactionId *foreign;
	int			nforeign = 0;
	int			nprocs = ProcGlobal->allProcCount;
	int			i;

	if (snap->xcnt == 0)
		return bound;
	foreign = palloc(sizeof(TransactionId) * (nprocs + max_prepared_xacts));
	LWLockAcquire(ProcArrayLock, LW_SHARED);
	for (i = 0; i < nprocs + max_prepared_xacts; i++)
	{
		PGPROC	   *proc = i < nprocs ? &ProcGlobal->allProcs[i]
		: &PreparedXactProcs[i - nprocs];
		TransactionId xid = proc->xid;

		if (TransactionIdIsNormal(xid) && proc->databaseId != MyDatabaseId)
			foreign[nforeign++] = xid;
	}
	LWLockRelease(ProcArrayLock);
	qsort(foreign, nforeign, sizeof(TransactionId), XidCmp);
	for (i = 0; i < snap->xcnt; i++)
	{
		TransactionId xid = snap->xip[i];

		if (!TransactionIdPrecedes(xid, bound))
			continue;
		if (nforeign > 0 &&
			bsearch(&xid, foreign, nforeign, sizeof(TransactionId), XidCmp))
			continue;
		bound = xid;
	}
	pfree(foreign);
	return bound;
}

/*
 * The first tx es_read may not return yet in the active snapshot: the
 * least running transaction of this database in it (LocalBound; snapshot
 * xmin on a hot standby, whose snapshots do not say which database a
 * transaction belongs to), or the caller's own transaction id if that is
 * lower.
 */
static FullTransactionId
ReadBound(void)
{
	Snapshot	snap = GetActiveSnapshot();
	FullTransactionId bound;
	FullTransactionId mine = GetTopFullTransactionIdIfAny();

	if (snap == NULL)
		elog(ERROR, "es_read needs an active snapshot");
	if (snap->takenDuringRecovery || snap->snapshot_type != SNAPSHOT_MVCC)
		bound = WidenXid(snap->xmin);
	else
		bound = WidenXid(LocalBound(snap));
	if (FullTransactionIdIsValid(mine) && FullTransactionIdPrecedes(mine, bound))
		bound = mine;
	return bound;
}

/* Refuse a well-formed cursor that does not belong to this log, with 55000. */
static void
pg_attribute_noreturn()
StaleCursor(const EsReadCursor *cursor, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("es_read cursor \"%s\" does not match this ledger's log",
					EsReadFormatCursor(cursor)),
			 errdetail("%s", why),
			 errhint("A cursor is valid only in the ledger that returned it; after a logical restore (pg_dump, pg_restore) start again from NULL and rebuild what was derived from the events.")));
	pg_unreachable();
}

/*
 * Whether the events after cursor may be read in this snapshot, whose
 * bound is bound: the cursor's anchor (its event seq, written by
 * transaction tx) must be in the log.  False (read nothing yet) when the
 * anchor's transaction is not finished in this snapshot: a standby behind
 * the primary the cursor came from.  55000 when the anchor is missing or
 * written by another transaction: the cursor is from another ledger, or
 * from before a restore.
 */
static bool
CheckAnchor(const EsReadCursor *cursor, FullTransactionId bound)
{
	EsScanIter *it;
	bool		found;
	FullTransactionId tx = InvalidFullTransactionId;

	if (!FullTransactionIdPrecedes(cursor->tx, bound))
	{
		/* On a primary no transaction at or past the next xid ever ran. */
		if (!RecoveryInProgress() &&
			!FullTransactionIdPrecedes(cursor->tx, ReadNextFullTransactionId()))
			StaleCursor(cursor, "Its transaction id is past any this cluster has assigned.");
		return false;
	}
	it = EsScanBegin(ES_REL_EVENTS, ES_REL_EVENTS_SEQ_IDX, true, cursor->seq,
					 GetActiveSnapshot());
	found = EsScanNext(it);
	if (found)
	{
		if (it->slot->tts_isnull[ES_EV_ATT_TX - 1])
			found = false;
		else
			tx = DatumGetFullTransactionId(it->slot->tts_values[ES_EV_ATT_TX - 1]);
	}
	EsScanEnd(it);
	if (!found)
		StaleCursor(cursor, psprintf("The log has no event seq " INT64_FORMAT ".",
									 cursor->seq));
	if (!FullTransactionIdEquals(tx, cursor->tx))
		StaleCursor(cursor, psprintf("Event seq " INT64_FORMAT " was written by transaction " UINT64_FORMAT ", not " UINT64_FORMAT ".",
									 cursor->seq, U64FromFullTransactionId(tx),
									 U64FromFullTransactionId(cursor->tx)));
	return true;
}

/* What one EsReadBatchFiltered call has scanned so far. */
typedef struct WalkState
{
	const EsReadFilter *filter; /* or NULL: every event */
	int64		left;			/* events the callback may still get */
	int64		scan_left;		/* events the scan may still read */
	EsReadCursor last;			/* the last event scanned */
	bool		scanned;		/* whether last is set */
} WalkState;

/* Whether ev passes filter (NULL: every event does). */
static bool
Passes(const EsReadFilter *filter, const EsEvent *ev)
{
	if (filter == NULL)
		return true;
	if (filter->account_id != 0 && ev->account_id != filter->account_id)
		return false;
	if (filter->types != 0 &&
		(ev->type <= ES_EV_INVALID || ev->type > ES_EV_LAST ||
		 (filter->types & ES_READ_TYPE_BIT(ev->type)) == 0))
		return false;
	return true;
}

/*
 * Walk es_events_tx_seq_idx over the rows matching keys, handing each event
 * that passes the filter to callback, until the callback has had w->left
 * events or the scan has read w->scan_left.  w->last is set to each
 * scanned event's position.  Returns the number of events handed over.
 */
static int64
Walk(int nkeys, ScanKey keys, WalkState *w, EsReadCallback callback,
	 void *arg)
{
	EsScanIter *it = EsScanBeginKeys(ES_REL_EVENTS, ES_REL_EVENTS_TX_IDX,
									 nkeys, keys, GetActiveSnapshot());
	int64		n = 0;

	while (w->left > 0 && w->scan_left > 0 && EsScanNext(it))
	{
		EsEvent		ev;
		const char *problem = EsScanDecodeEvent(it, &ev);
		MemoryContext old;

		if (problem)
			ereport(ERROR,
					(errcode(ERRCODE_ES_INTEGRITY),
					 errmsg("es_events row seq " INT64_FORMAT " is damaged: %s",
							ev.seq, problem),
					 errdetail("The row was changed behind es_apply's back.")));
		w->last.tx = DatumGetFullTransactionId(it->slot->tts_values[ES_EV_ATT_TX - 1]);
		w->last.seq = ev.seq;
		w->scanned = true;
		w->scan_left--;
		if (!Passes(w->filter, &ev))
			continue;
		old = MemoryContextSwitchTo(it->rowcxt);
		callback(&ev, &w->last, arg);
		MemoryContextSwitchTo(old);
		n++;
		w->left--;
	}
	EsScanEnd(it);
	return n;
}

/*
 * Hand the next at most max_count finished events after cursor after (NULL:
 * from the start of the log) to callback, in (tx, seq) order, with each
 * event's own cursor; returns how many.  The event and the cursor passed
 * are valid during the call only (callback runs in a memory context reset
 * at every row).  Reads the active snapshot, which the caller must have
 * pushed (a background worker: PushActiveSnapshot(GetTransactionSnapshot())).
 *
 * Errors: 55000 if the cursor does not match this log (StaleCursor) or the
 * ledger predates es_read (ALTER EXTENSION es_ledger UPDATE); ES012 for a
 * damaged row.
 */
int64
EsReadBatch(const EsReadCursor *after, int64 max_count,
			EsReadCallback callback, void *arg)
{
	return EsReadBatchFiltered(after, max_count, NULL, callback, arg, NULL);
}

/*
 * EsReadBatch with a filter (NULL: none): the events scanned in (tx, seq)
 * order after after are handed to callback only if they pass the filter,
 * and the scan stops after max_count handed over or filter->max_scan
 * scanned, whichever comes first.  *scanned (if not NULL) is set to the
 * position of the last event scanned, passed or not (tx invalid if none
 * was): a cursor the next call may continue from, since every event up to
 * it has been either handed over or filtered out.
 */
int64
EsReadBatchFiltered(const EsReadCursor *after, int64 max_count,
					const EsReadFilter *filter, EsReadCallback callback,
					void *arg, EsReadCursor *scanned)
{
	FullTransactionId bound;
	ScanKeyData keys[2];
	Relation	idx;
	Oid			idxoid = EsRowRelid(ES_REL_EVENTS_TX_IDX);
	Oid			collation;
	int64		n = 0;
	WalkState	w;

	if (scanned)
		scanned->tx = InvalidFullTransactionId;
	if (!OidIsValid(idxoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("es_read needs es_ledger 0.3.0 or later"),
				 errdetail("The installed extension's scripts did not create the index es_events_tx_seq_idx that es_read walks."),
				 errhint("Run ALTER EXTENSION es_ledger UPDATE.")));
	idx = index_open(idxoid, AccessShareLock);
	collation = idx->rd_indcollation[0];
	index_close(idx, NoLock);

	bound = ReadBound();
	if (after != NULL && !CheckAnchor(after, bound))
		return 0;

	w.filter = filter;
	w.left = max_count;
	w.scan_left = (filter && filter->max_scan > 0) ? filter->max_scan : PG_INT64_MAX;
	w.scanned = false;
	/* The rest of the cursor's own transaction (tx = T, seq > S). */
	if (after != NULL)
	{
		ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
							   collation, F_XID8EQ,
							   FullTransactionIdGetDatum(after->tx));
		ScanKeyEntryInitialize(&keys[1], 0, 2, BTGreaterStrategyNumber, InvalidOid,
							   collation, F_INT8GT, Int64GetDatum(after->seq));
		n += Walk(2, keys, &w, callback, arg);
	}
	/* Then the later finished transactions (T < tx < bound). */
	if (w.left > 0 && w.scan_left > 0)
	{
		int			nkeys = 0;

		if (after != NULL)
			ScanKeyEntryInitialize(&keys[nkeys++], 0, 1, BTGreaterStrategyNumber,
								   InvalidOid, collation, F_XID8GT,
								   FullTransactionIdGetDatum(after->tx));
		ScanKeyEntryInitialize(&keys[nkeys++], 0, 1, BTLessStrategyNumber,
							   InvalidOid, collation, F_XID8LT,
							   FullTransactionIdGetDatum(bound));
		n += Walk(nkeys, keys, &w, callback, arg);
	}
	if (scanned && w.scanned)
		*scanned = w.last;
	return n;
}

/* An account's name, cached by account id for one es_read call. */
typedef struct NameEntry
{
	int64		account_id;		/* hash key */
	char	   *name;			/* in the call's memory context */
} NameEntry;

/* What es_read's callback needs. */
typedef struct ReadState
{
	ReturnSetInfo *rsinfo;
	bool		with_name;		/* the result has the account column (0.4.0) */
	HTAB	   *names;			/* NameEntry by account id, or NULL */
	MemoryContext callcxt;		/* where names live */
	EsReadCursor last;			/* the last event returned */
	bool		any;			/* whether last is set */
} ReadState;

/*
 * The name of the account account_id, from its opening event (version 1)
 * passed as ev when it is at hand, or else read by one probe of
 * es_events_account_version_key; cached in st->names for the rest of the
 * call.  NULL if the log has no opening event for it (cannot happen in a
 * ledger whose chains verify).
 */
static const char *
AccountName(ReadState *st, const EsEvent *ev)
{
	NameEntry  *entry;
	bool		found;
	MemoryContext old;

	if (st->names == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(NameEntry);
		ctl.hcxt = st->callcxt;
		st->names = hash_create("es_read account names", 64, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	entry = hash_search(st->names, &ev->account_id, HASH_ENTER, &found);
	if (found)
		return entry->name;
	entry->name = NULL;
	old = MemoryContextSwitchTo(st->callcxt);
	if (ev->type == ES_EV_ACCOUNT_OPENED)
	{
		EsAccountState state;

		EsFoldInit(&state, ev->account_id);
		EsFoldEvent(&state, ev);
		entry->name = pstrdup(state.account);
	}
	else
	{
		EsScanIter *it = EsScanBeginAccount(ev->account_id, 0,
											GetActiveSnapshot());

		if (EsScanNext(it))
		{
			EsEvent		opened;
			const char *problem = EsScanDecodeEvent(it, &opened);

			if (problem == NULL && opened.version == 1 &&
				opened.type == ES_EV_ACCOUNT_OPENED)
			{
				EsAccountState state;
				MemoryContext rowold = MemoryContextSwitchTo(it->rowcxt);

				EsFoldInit(&state, opened.account_id);
				EsFoldEvent(&state, &opened);
				MemoryContextSwitchTo(rowold);
				entry->name = pstrdup(state.account);
			}
		}
		EsScanEnd(it);
	}
	MemoryContextSwitchTo(old);
	return entry->name;
}

/* Add an event and its cursor to es_read's result. */
static void
EmitEvent(const EsEvent *ev, const EsReadCursor *pos, void *arg)
{
	ReadState  *st = arg;
	Datum		values[READ_NATTS];
	bool		nulls[READ_NATTS] = {0};
	int			c = 0;

	values[c++] = CStringGetTextDatum(EsReadFormatCursor(pos));
	values[c++] = Int64GetDatum(ev->seq);
	values[c++] = Int64GetDatum(ev->account_id);
	if (st->with_name)
	{
		const char *name = AccountName(st, ev);

		if (name)
			values[c] = CStringGetTextDatum(name);
		else
			nulls[c] = true;
		c++;
	}
	values[c++] = Int64GetDatum(ev->version);
	values[c++] = CStringGetTextDatum(EsEventTypeName(ev->type));
	values[c++] = Int64GetDatum(ev->amount);
	values[c++] = JsonbPGetDatum(ev->data);
	if (ev->command_id)
		values[c] = CStringGetTextDatum(ev->command_id);
	else
		nulls[c] = true;
	c++;
	values[c++] = TimestampTzGetDatum(ev->recorded_at);
	values[c++] = TimestampTzGetDatum(ev->effective_at);
	tuplestore_putvalues(st->rsinfo->setResult, st->rsinfo->setDesc, values,
						 nulls);
	st->last = *pos;
	st->any = true;
}

/*
 * Add es_read's checkpoint row: the cursor pos, every other column NULL.
 * It ends a filtered call whose scan went past the last event returned.
 */
static void
EmitCheckpoint(ReadState *st, const EsReadCursor *pos)
{
	Datum		values[READ_NATTS] = {0};
	bool		nulls[READ_NATTS];

	memset(nulls, true, sizeof(nulls));
	values[0] = CStringGetTextDatum(EsReadFormatCursor(pos));
	nulls[0] = false;
	tuplestore_putvalues(st->rsinfo->setResult, st->rsinfo->setDesc, values,
						 nulls);
}

/*
 * The bit set of event_types (argument argno, a text[]): 22023 for a NULL
 * element, an empty array or a name that is not an event type (errdetail
 * lists them).
 */
static uint32
TypesArg(FunctionCallInfo fcinfo, int argno)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(argno);
	Datum	   *elems;
	bool	   *enulls;
	int			nelems;
	uint32		types = 0;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("es_read event_types must be a one-dimensional array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &enulls,
					  &nelems);
	if (nelems == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("es_read event_types must not be empty"),
				 errdetail("Pass NULL for every type, or some of: %s.",
						   ValidTypes())));
	for (int i = 0; i < nelems; i++)
	{
		char	   *name;
		EsEventType type;

		if (enulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("es_read event_types must not hold a null")));
		name = TextDatumGetCString(elems[i]);
		type = EsEventTypeFromName(name);
		if (type == ES_EV_INVALID)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown event type \"%s\" in es_read event_types", name),
					 errdetail("The event types are: %s.", ValidTypes())));
		types |= ES_READ_TYPE_BIT(type);
	}
	return types;
}

/*
 * es_read(after text DEFAULT NULL, max_count int DEFAULT 1000,
 *		   for_account text DEFAULT NULL, event_types text[] DEFAULT NULL)
 *	   RETURNS TABLE(cursor text, seq bigint, account_id bigint, account text,
 *					 version bigint, type text, amount bigint, data jsonb,
 *					 command_id text, recorded_at timestamptz,
 *					 effective_at timestamptz)
 *
 * The next at most max_count (1 to ES_READ_MAX_COUNT) committed events
 * after cursor after (NULL: from the start), in the order a follower must
 * process them ((tx, seq): by writing transaction, then seq), each with the
 * cursor that continues after it and its account's name (one probe of the
 * account's opening event per account and call).  A consumer that
 * processes the rows and saves the last row's cursor never misses an event
 * and never sees one twice (see the file header).  Fewer rows than
 * max_count means the reader has caught up with the finished transactions;
 * an event of a transaction still open, or younger than the oldest one
 * still open, comes later.
 *
 * Filters: for_account (only that account's events) and event_types (only
 * those types).  A filtered call scans at most ES_READ_SCAN_FACTOR *
 * max_count events; when its scan went past the last event it returns
 * (events filtered out), it ends with a checkpoint row: the cursor of the
 * last event scanned, every other column NULL.  So a follower that saves
 * the last row's cursor, whatever the row, never reads a filtered-out event
 * again, and a call that filters everything out still advances.  A
 * filtered follower has caught up when a call returns no row.
 *
 * Scripts before 0.4.0 declare two arguments and no account column:
 * PG_NARGS and the result's width tell.
 *
 * Errors: 22023 for a malformed cursor, max_count out of range, or an
 * empty event_types, one with a NULL or an unknown type (the detail lists
 * the types); ES003 for a for_account the log holds no AccountOpened event
 * for; 55000 for a cursor from another ledger or from before a logical
 * restore, or a ledger not updated to 0.3.0; ES012 for a damaged row.
 *
 * Locks: AccessShareLock on es_events, es_events_tx_seq_idx,
 * es_events_pkey, es_events_account_version_key and (for_account)
 * es_events_opened_idx; reads the statement's snapshot; works on a hot
 * standby.
 */
PG_FUNCTION_INFO_V1(es_read);
Datum
es_read(PG_FUNCTION_ARGS)
{
	ReadState	st = {0};
	EsReadCursor after;
	EsReadCursor scanned;
	EsReadFilter filter = {0};
	bool		filtered = false;
	int32		max_count;
	int			natts;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("es_read max_count must not be null"),
				 errdetail("It is the most events one call returns, from 1 to %d.",
						   ES_READ_MAX_COUNT)));
	max_count = PG_GETARG_INT32(1);
	if (max_count < 1 || max_count > ES_READ_MAX_COUNT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("es_read max_count %d is out of range", max_count),
				 errdetail("It is the most events one call returns, from 1 to %d.",
						   ES_READ_MAX_COUNT)));
	if (!PG_ARGISNULL(0))
		EsReadParseCursor(text_to_cstring(PG_GETARG_TEXT_PP(0)), &after);
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		filter.types = TypesArg(fcinfo, 3);
		filtered = true;
	}
	if (PG_NARGS() > 2 && !PG_ARGISNULL(2))
	{
		char	   *account = text_to_cstring(PG_GETARG_TEXT_PP(2));

		if (!EsScanFindOpened(account, &filter.account_id))
			ereport(ERROR,
					(errcode(ERRCODE_ES_ACCOUNT_NOT_FOUND),
					 errmsg("account \"%s\" not found", account),
					 errdetail("The log holds no AccountOpened event for it.")));
		filtered = true;
	}
	filter.max_scan = (int64) max_count * ES_READ_SCAN_FACTOR;

	InitMaterializedSRF(fcinfo, 0);
	st.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	st.callcxt = CurrentMemoryContext;
	natts = st.rsinfo->setDesc->natts;
	if (natts != READ_NATTS && natts != READ_NATTS - 1)
		elog(ERROR, "es_read's result type has %d columns, not %d",
			 natts, READ_NATTS);
	st.with_name = natts == READ_NATTS;
	EsReadBatchFiltered(PG_ARGISNULL(0) ? NULL : &after, max_count,
						filtered ? &filter : NULL, EmitEvent, &st, &scanned);
	if (filtered && FullTransactionIdIsValid(scanned.tx) &&
		!(st.any && FullTransactionIdEquals(st.last.tx, scanned.tx) &&
		  st.last.seq == scanned.seq))
		EmitCheckpoint(&st, &scanned);
	return (Datum) 0;
}
