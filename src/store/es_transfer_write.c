/*-------------------------------------------------------------------------
 *
 * es_transfer_write.c
 *	  The rows of es_transfers, the transfers' projection, read and written
 *	  at executor level through the writer of the es_apply call.
 *
 * es_write.c owns the writer (EsWriter, store.h: one EState per es_apply
 * call) and opens es_transfers on first use (EsWriteOpenTransfers) and the
 * posted-row fast path's relations (EsWriteTransferFastPath); this file
 * only reads and writes rows through them, with the same means:
 * unique-index probes with index_beginscan and a fresh snapshot, and
 * ExecSimpleRelationInsert / Update / Delete, or for a posted transfer the
 * heap insert and primary key entry of the fast path.  Rows are built by
 * the row codec (es_row.c).  Its functions keep the EsWrite prefix of the
 * writer they belong to.
 *
 * Invariants and locks.  Rows are read with a fresh snapshot
 * (GetLatestSnapshot: what committed before now, and what this transaction
 * wrote before the current command) and written by tuple id.  The caller
 * holds the row locks of both accounts of a transfer it changes (what
 * es_write.c's EsWriteLockAccounts takes), which is what serialises changes
 * of one transfer, so a transfer read under them is its latest state.  The
 * partial indexes on pending rows find the reservations due to expire
 * (EsWriteExpiredTransfers).  RowExclusiveLock on es_transfers and its
 * indexes, AccessShareLock on an index only scanned, all kept to the end
 * of the transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/nbtree.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "store.h"

/* The writer of the current es_apply call (es_write.c owns it). */
#define Writer (EsWriteCurrent())

/*
 * Fetch into Writer->tr_slot the es_transfers row whose index idx (on one
 * column) has key, as a fresh snapshot sees it: what committed before now,
 * and what this transaction wrote before the current command.  False if
 * none.
 */
static bool
ProbeTransfer(EsRel idx, Datum key, RegProcedure eqproc)
{
	Relation	rel = Writer->transfers->ri_RelationDesc;
	Relation	index = index_open(EsRowRelid(idx), AccessShareLock);
	ScanKeyData skey;
	IndexScanDesc scan;
	bool		found;

	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[0], eqproc, key);
	scan = index_beginscan(rel, index, GetLatestSnapshot(), 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, Writer->tr_slot);
	index_endscan(scan);
	index_close(index, NoLock);
	return found;
}

/*
 * The transfer created by the command with id command_id, as a fresh
 * snapshot sees it (see ProbeTransfer; its creating event likewise),
 * copied into the current memory context.  False if none.  The caller that means to change it holds the
 * row locks of both its accounts: every change of a transfer's row is made
 * under them, so what it reads then is the latest state and stays so.
 */
bool
EsWriteFindTransfer(const char *command_id, EsTransfer *t)
{
	EsScanIter *it;
	int64		seq = 0;
	TimestampTz effective_at = 0;
	bool		found = false;

	/*
	 * The transfer's key is the seq of its debit-side event, one of the
	 * creating command's events (es_events_command_id_idx).
	 */
	EsWriteOpenTransfers();
	it = EsScanBeginText(ES_REL_EVENTS, ES_REL_EVENTS_COMMAND_ID_IDX,
						 command_id, GetLatestSnapshot());
	while (!found && EsScanNext(it))
	{
		EsEvent		ev;
		bool		debit;

		if (EsScanDecodeEvent(it, &ev) == NULL &&
			(ev.type == ES_EV_TRANSFER_SENT ||
			 ev.type == ES_EV_TRANSFER_RESERVED) &&
			EsFoldEventIsTransfer(&ev, &debit) && debit)
		{
			seq = ev.seq;
			effective_at = ev.effective_at;
			found = true;
		}
	}
	EsScanEnd(it);
	if (!found ||
		!ProbeTransfer(ES_REL_TRANSFERS_SEQ_IDX, Int64GetDatum(seq), F_INT8EQ))
		return false;
	slot_getallattrs(Writer->tr_slot);
	EsRowTransferFromValues(Writer->tr_slot->tts_values,
							Writer->tr_slot->tts_isnull, t);
	ExecClearTuple(Writer->tr_slot);
	t->effective_at = effective_at;
	return true;
}

/*
 * The effective_at of the event at seq (a transfer's creating event), as a
 * fresh snapshot sees the log; -infinity (no bound) if it cannot be read,
 * which es_verify reports.
 */
static TimestampTz
CreatingEffectiveAt(int64 seq)
{
	EsScanIter *it = EsScanBegin(ES_REL_EVENTS, ES_REL_EVENTS_SEQ_IDX, true,
								 seq, GetLatestSnapshot());
	TimestampTz at = DT_NOBEGIN;
	EsEvent		ev;

	if (EsScanNext(it) && EsScanDecodeEvent(it, &ev) == NULL)
		at = ev.effective_at;
	EsScanEnd(it);
	return at;
}

/* Fill the virtual slot for es_transfers with a transfer. */
static void
TransferToSlot(const EsTransfer *t, TupleTableSlot *slot)
{
	ExecClearTuple(slot);
	EsRowTransferToValues(t, slot->tts_values, slot->tts_isnull);
	ExecStoreVirtualTuple(slot);
}

/*
 * Insert a posted transfer's row by the fast path (EsWriteTransferFastPath): the
 * heap tuple, then its primary key entry, checked unique.  This is what
 * every immediate transfer writes, so it is on es_apply's hot path; going
 * through the executor would open all of es_transfers' indexes and
 * prepare the predicates of the three partial ones at every es_apply call
 * only to skip them.
 */
static void
InsertPostedTransfer(const EsTransfer *t)
{
	EsWriter   *w = Writer;
	Datum		key = Int64GetDatum(t->seq);
	bool		isnull = false;

	TransferToSlot(t, w->tr_fast_slot);
	table_tuple_insert(w->tr_rel, w->tr_fast_slot, GetCurrentCommandId(true),
					   0, NULL);
	index_insert(w->tr_pkey, &key, &isnull, &w->tr_fast_slot->tts_tid,
				 w->tr_rel, UNIQUE_CHECK_YES, false, w->tr_pkey_info);
}

/*
 * Insert a new transfer's es_transfers row: a posted one (an immediate
 * transfer) by the fast path when es_transfers qualifies, anything else
 * through the executor (ExecSimpleRelationInsert: every index, constraint
 * and row trigger).
 */
void
EsWriteInsertTransfer(const EsTransfer *t)
{
	if (t->status == ES_TRANSFER_POSTED && EsWriteTransferFastPath())
	{
		InsertPostedTransfer(t);
		return;
	}
	EsWriteOpenTransfers();
	TransferToSlot(t, Writer->tr_new);
	ExecSimpleRelationInsert(Writer->transfers, Writer->estate, Writer->tr_new);
}

/*
 * Write a transfer's es_transfers row, found by its seq.  The caller holds
 * the row locks of both its accounts (see EsWriteFindTransfer).
 */
void
EsWriteUpdateTransfer(const EsTransfer *t)
{
	EsWriteOpenTransfers();
	if (!ProbeTransfer(ES_REL_TRANSFERS_SEQ_IDX, Int64GetDatum(t->seq),
					   F_INT8EQ))
		elog(ERROR, "es_transfers has no row for the transfer of seq %lld",
			 (long long) t->seq);
	TransferToSlot(t, Writer->tr_new);
	ExecSimpleRelationUpdate(Writer->transfers, Writer->estate,
							 &Writer->epqstate, Writer->tr_slot,
							 Writer->tr_new);
	ExecClearTuple(Writer->tr_slot);
}

/*
 * Delete the es_transfers row at tid, through the executor; only
 * es_rebuild_projections does this, under the lock that keeps writers out.
 */
void
EsWriteDeleteTransfer(ItemPointer tid)
{
	EsWriteOpenTransfers();
	ExecClearTuple(Writer->tr_slot);
	Writer->tr_slot->tts_tid = *tid;
	ExecSimpleRelationDelete(Writer->transfers, Writer->estate,
							 &Writer->epqstate, Writer->tr_slot);
}

/*
 * The pending transfers whose expiry time is at or before now, as a fresh
 * snapshot sees them, found through one of the partial indexes on pending
 * transfers: es_transfers_expires_idx (expires_at) for every account
 * (account_id unused), or es_transfers_from_pending_idx /
 * es_transfers_to_pending_idx (account id, expires_at) for one account.
 * At most max of them (0: no bound), earliest first for the first index.
 * A List of EsTransfer pointers in the current memory context.
 */
List *
EsWriteExpiredTransfers(EsRel idx, int64 account_id, TimestampTz now, int max)
{
	Relation	rel;
	Relation	index;
	ScanKeyData skey[2];
	int			nkeys = 0;
	IndexScanDesc scan;
	List	   *result = NIL;
	ListCell   *lc;
	int			attno = 1;

	EsWriteOpenTransfers();
	rel = Writer->transfers->ri_RelationDesc;
	index = index_open(EsRowRelid(idx), AccessShareLock);
	if (idx != ES_REL_TRANSFERS_EXPIRES_IDX)
	{
		ScanKeyEntryInitialize(&skey[nkeys++], 0, attno++,
							   BTEqualStrategyNumber, InvalidOid,
							   InvalidOid, F_INT8EQ, Int64GetDatum(account_id));
	}
	ScanKeyEntryInitialize(&skey[nkeys++], 0, attno,
						   BTLessEqualStrategyNumber, InvalidOid, InvalidOid,
						   F_TIMESTAMPTZ_LE, TimestampTzGetDatum(now));
	scan = index_beginscan(rel, index, GetLatestSnapshot(), nkeys, 0);
	index_rescan(scan, skey, nkeys, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, Writer->tr_slot))
	{
		EsTransfer *t = palloc(sizeof(EsTransfer));

		CHECK_FOR_INTERRUPTS();
		slot_getallattrs(Writer->tr_slot);
		EsRowTransferFromValues(Writer->tr_slot->tts_values,
								Writer->tr_slot->tts_isnull, t);
		/* The index is partial on status = 'pending'; recheck anyway. */
		if (t->status == ES_TRANSFER_PENDING && t->has_expires_at &&
			t->expires_at <= now)
			result = lappend(result, t);
		if (max > 0 && list_length(result) >= max)
			break;
	}
	index_endscan(scan);
	index_close(index, NoLock);
	ExecClearTuple(Writer->tr_slot);
	/* An expiry takes effect no earlier than its reservation (es_decide.c). */
	foreach(lc, result)
	{
		EsTransfer *t = lfirst(lc);

		t->effective_at = CreatingEffectiveAt(t->seq);
	}
	return result;
}
