/*-------------------------------------------------------------------------
 *
 * es_restore.c
 *	  The restore path into the log: the rows a restore copies into
 *	  es_events, each verified before it is stored.
 *
 * pg_dump dumps the extension's tables (the scripts mark them with
 * pg_extension_config_dump), es_events in (account_id, version) order.  A
 * restore copies them back with COPY (or INSERT, for pg_dump --inserts).
 * Outside es_apply the es_log access method refuses every row of es_events
 * (ES011); in a session where a superuser has set es_ledger.restore = on
 * it lets a transaction fill the log only if the log was empty when the
 * transaction began to (EsGuardRestoreTable, es_guard.c: ES011 otherwise,
 * so a restore never adds to a ledger in use), and hands the rows to
 * EsRestoreCheckEvents, which accepts a row only if it chains:
 *
 *	- it decodes (es_row.c: no NULL where a value is due, a 32-byte hash, a
 *	  checksum in 0..2^32-1, data an object), its type is an event type and
 *	  its format is the one this library encodes;
 *	- it is the next event of its account: version 1, linking to the
 *	  genesis hash, or version n + 1 of an account whose version n is
 *	  already in the log (restored earlier in this transaction) or earlier
 *	  in the same batch of rows, with a smaller seq;
 *	- its checksum and hash are those EsEventSeal computes from its columns
 *	  and that previous event's hash.
 *
 * Otherwise ES012 naming the row's seq, and the statement (the whole COPY)
 * fails.  Events of one account must therefore arrive in version order;
 * accounts may interleave.  A row that would duplicate an event already
 * there is refused by the unique indexes after the heap insert.
 *
 * Memory and cost: rows arriving in (account_id, version) order, as
 * pg_dump writes them, are checked against the row before them, so only
 * that row's key and hash are kept; the first row of each batch (COPY
 * hands rows over in batches of up to 1000) and any row out of that order
 * find their predecessor earlier in the batch (searched backwards) or by
 * one probe of es_events_account_version_key.  Each row is decoded in a
 * memory context reset before the next.
 *
 * The restored rows' tx (the writing transaction's xid8, which es_read
 * orders and bounds by) is replaced by the restoring transaction's: the
 * dump's values are transaction ids of another cluster, which may lie
 * ahead of this one's (es_read would not return the events until this
 * cluster's ids passed them) or behind them (new events would sort before
 * the restored ones).  tx is not part of the checksum or hash.  After a
 * restore, the log reads as one transaction in seq order, and a cursor
 * taken before the dump no longer matches its anchor event (es_read.c
 * refuses it).
 *
 * What this does not see: an account's last events left out of a dump
 * (nothing follows them to break), and the content of es_accounts and
 * es_commands, which a restore copies unchecked.  Comparing the projection
 * with the log after the restore finds both.
 *
 * Locks: the caller's on es_events (and EsGuardRestoreTable's
 * ShareRowExclusiveLock); AccessShareLock on its version index for a probe.
 * The probe reads with SnapshotSelf: committed rows and those of this
 * transaction, including this statement's earlier batches.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/tuptable.h"
#include "utils/xid8.h"
#include "miscadmin.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "protect.h"

/* What a row's successor needs of it: its key, seq and hash. */
typedef struct EsRestoreLink
{
	int64		seq;
	int64		account_id;
	int64		version;
	uint8		hash[ES_HASH_LEN];
} EsRestoreLink;

/* Refuse restored event ev, with ES012 and why. */
static void
pg_attribute_noreturn()
Refuse(const EsEvent *ev, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_ES_INTEGRITY),
			 errmsg("restored event seq " INT64_FORMAT " does not verify",
					ev->seq),
			 errdetail("Event seq " INT64_FORMAT " (account_id " INT64_FORMAT ", version " INT64_FORMAT "): %s",
					   ev->seq, ev->account_id, ev->version, why),
			 errhint("The dump was changed, damaged or cut; restore an intact dump.")));
	pg_unreachable();
}

/*
 * Replace the tx of a restored row in slot by the restoring transaction's
 * (see the file header); the slot then holds a tuple of its own.
 */
static void
StampTx(Relation events, TupleTableSlot *slot)
{
	TupleDesc	desc = RelationGetDescr(events);
	Datum	   *values = palloc(sizeof(Datum) * desc->natts);
	bool	   *isnull = palloc(sizeof(bool) * desc->natts);
	HeapTuple	tuple;
	MemoryContext old = MemoryContextSwitchTo(slot->tts_mcxt);

	slot_getallattrs(slot);
	memcpy(values, slot->tts_values, sizeof(Datum) * desc->natts);
	memcpy(isnull, slot->tts_isnull, sizeof(bool) * desc->natts);
	values[ES_EV_ATT_TX - 1] =
		FullTransactionIdGetDatum(GetTopFullTransactionId());
	isnull[ES_EV_ATT_TX - 1] = false;
	tuple = heap_form_tuple(desc, values, isnull);
	MemoryContextSwitchTo(old);
	ExecForceStoreHeapTuple(tuple, slot, true);
	pfree(values);
	pfree(isnull);
}

/* The link of the event decoded from a slot of es_events. */
static void
LinkFromSlot(TupleTableSlot *slot, EsRestoreLink *link)
{
	EsEvent		ev;

	slot_getallattrs(slot);
	EsRowEventFromValues(slot->tts_values, slot->tts_isnull, &ev);
	link->seq = ev.seq;
	link->account_id = ev.account_id;
	link->version = ev.version;
	memcpy(link->hash, ev.hash, ES_HASH_LEN);
}

/*
 * Find event (account_id, version) among the first n slots of the batch,
 * searching backwards; fill in its link.  False if it is not there.
 */
static bool
FindInBatch(TupleTableSlot **slots, int n, int64 account_id, int64 version,
			EsRestoreLink *link)
{
	for (int i = n - 1; i >= 0; i--)
	{
		bool		isnull1;
		bool		isnull2;
		Datum		a = slot_getattr(slots[i], ES_EV_ATT_ACCOUNT_ID, &isnull1);
		Datum		v = slot_getattr(slots[i], ES_EV_ATT_VERSION, &isnull2);

		if (!isnull1 && !isnull2 && DatumGetInt64(a) == account_id &&
			DatumGetInt64(v) == version)
		{
			LinkFromSlot(slots[i], link);
			return true;
		}
	}
	return false;
}

/*
 * Find event (account_id, version) in es_events by a probe of
 * es_events_account_version_key under SnapshotSelf (committed rows and this
 * transaction's, this statement's earlier batches included); fill in its
 * link.  False if it is not there.
 */
static bool
ProbeLog(Relation events, int64 account_id, int64 version,
		 EsRestoreLink *link)
{
	Relation	idx = index_open(EsRowRelid(ES_REL_EVENTS_VERSION_IDX),
								 AccessShareLock);
	TupleTableSlot *slot = table_slot_create(events, NULL);
	ScanKeyData skey[2];
	IndexScanDesc scan;
	bool		found;

	ScanKeyEntryInitialize(&skey[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_INT8EQ,
						   Int64GetDatum(account_id));
	ScanKeyEntryInitialize(&skey[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[1], F_INT8EQ,
						   Int64GetDatum(version));
	scan = index_beginscan(events, idx, SnapshotSelf, 2, 0);
	index_rescan(scan, skey, 2, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	if (found)
		LinkFromSlot(slot, link);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	return found;
}

/*
 * Verify the nslots rows a restore is about to insert into es_events
 * (events), in order, as the file header describes; ES012 for the first
 * that does not chain.  Called by the es_log access method, in a session
 * with es_ledger.restore on, before the rows are stored.
 */
void
EsRestoreCheckEvents(Relation events, TupleTableSlot **slots, int nslots)
{
	MemoryContext rowcxt;
	MemoryContext oldcxt;
	EsRestoreLink last;
	bool		have_last = false;

	EsRowCheckShape(RelationGetDescr(events), ES_REL_EVENTS,
					RelationGetRelationName(events));
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "es_ledger restore row",
								   ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(rowcxt);
	for (int i = 0; i < nslots; i++)
	{
		TupleTableSlot *slot = slots[i];
		EsEvent		ev;
		EsEvent		sealed;
		const uint8 *prev_hash;
		EsRestoreLink prev;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(rowcxt);
		slot_getallattrs(slot);
		EsRowEventFromValues(slot->tts_values, slot->tts_isnull, &ev);
		if (ev.type == ES_EV_INVALID)
			Refuse(&ev, "its type is not an event type of es_ledger.");
		if (DatumGetInt16(slot->tts_values[ES_EV_ATT_FORMAT - 1]) !=
			ES_EVENT_FORMAT_VERSION)
			Refuse(&ev, psprintf("its format %d is not the format %d this library encodes.",
								 (int) DatumGetInt16(slot->tts_values[ES_EV_ATT_FORMAT - 1]),
								 ES_EVENT_FORMAT_VERSION));
		if (ev.version < 1)
			Refuse(&ev, "versions start at 1.");

		if (ev.version == 1)
			prev_hash = EsEventGenesisHash();
		else
		{
			if (have_last && last.account_id == ev.account_id &&
				last.version == ev.version - 1)
				prev = last;
			else if (!FindInBatch(slots, i, ev.account_id, ev.version - 1, &prev) &&
					 !ProbeLog(events, ev.account_id, ev.version - 1, &prev))
				Refuse(&ev, psprintf("version " INT64_FORMAT " of its account is neither in the log nor restored before it; an account's events must be restored in version order, without gaps.",
									 ev.version - 1));
			if (prev.seq >= ev.seq)
				Refuse(&ev, psprintf("its seq is not above the seq " INT64_FORMAT " of version " INT64_FORMAT " of its account.",
									 prev.seq, prev.version));
			prev_hash = prev.hash;
		}

		sealed = ev;
		EsEventSeal(&sealed, prev_hash);
		if (sealed.checksum != ev.checksum)
			Refuse(&ev, "its checksum does not match its content.");
		if (memcmp(sealed.hash, ev.hash, ES_HASH_LEN) != 0)
			Refuse(&ev, "its hash does not match its content and the previous event of its account.");

		StampTx(events, slot);
		last.seq = ev.seq;
		last.account_id = ev.account_id;
		last.version = ev.version;
		memcpy(last.hash, ev.hash, ES_HASH_LEN);
		have_last = true;
	}
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(rowcxt);
}
