/*-------------------------------------------------------------------------
 *
 * es_scan.c
 *	  The read side of storage: reading the log, for replay (and later
 *	  verify), by index scans on es_events.
 *
 * Replay reads es_events only (never the projections, so that it can check
 * them).  It reads it directly through its indexes, found by OID
 * (es_row.c), rather than through SQL: no query text is parsed, so no
 * search_path, function or operator of anyone else's can change what is
 * read, and no plan is made per call.  Rows are decoded by the row codec.
 *
 *	- EsScanFindOpened probes es_events_opened_idx, the unique index on
 *	  (data->>'account') of AccountOpened events, for an account's id.
 *	- EsScanAccount walks es_events_account_version_key forwards from
 *	  (account_id, 1): the account's events in version order.
 *
 * Both read with the caller's active snapshot, as a query in the calling
 * statement would, and check no privilege: EXECUTE on the SQL function that
 * calls them is the gate.
 *
 * Locks: AccessShareLock on es_events and its indexes; no row locks.  Works
 * on a hot standby.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "es_ledger.h"

/*
 * The id of the account named, read from its AccountOpened event in the log
 * (not from the projection).  False if none.
 */
bool
EsScanFindOpened(const char *account, int64 *account_id)
{
	Relation	events = EsRowOpenTable(ES_REL_EVENTS, AccessShareLock);
	Relation	idx = index_open(EsRowRelid(ES_REL_EVENTS_OPENED_IDX),
								 AccessShareLock);
	TupleTableSlot *slot = table_slot_create(events, NULL);
	ScanKeyData skey;
	IndexScanDesc scan;
	bool		found;

	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_TEXTEQ,
						   CStringGetTextDatum(account));
	scan = index_beginscan(events, idx, GetActiveSnapshot(), 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	if (found)
	{
		EsEvent		ev;

		slot_getallattrs(slot);
		EsRowEventFromValues(slot->tts_values, slot->tts_isnull, &ev);
		*account_id = ev.account_id;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(events, AccessShareLock);
	return found;
}

/*
 * Feed an account's events, in version order, to callback.  as_of bounds
 * recorded_at and effective_until bounds effective_at (the opening event is
 * always included); NULL means no bound.  Returns the number of events fed.
 *
 * Each row is decoded in a memory context reset before the next one, so the
 * scan's memory stays flat however long the stream; the callback runs in
 * the caller's context and must copy what it keeps of the event.
 */
int64
EsScanAccount(int64 account_id, const TimestampTz *as_of,
			  const TimestampTz *effective_until,
			  EsScanCallback callback, void *arg)
{
	Relation	events = EsRowOpenTable(ES_REL_EVENTS, AccessShareLock);
	Relation	idx = index_open(EsRowRelid(ES_REL_EVENTS_VERSION_IDX),
								 AccessShareLock);
	TupleTableSlot *slot = table_slot_create(events, NULL);
	MemoryContext rowcxt = AllocSetContextCreate(CurrentMemoryContext,
												 "es_ledger scan row",
												 ALLOCSET_DEFAULT_SIZES);
	MemoryContext callercxt = CurrentMemoryContext;
	ScanKeyData skey;
	IndexScanDesc scan;
	int64		count = 0;

	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_INT8EQ,
						   Int64GetDatum(account_id));
	scan = index_beginscan(events, idx, GetActiveSnapshot(), 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		EsEvent		ev;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(rowcxt);
		MemoryContextSwitchTo(rowcxt);
		slot_getallattrs(slot);
		EsRowEventFromValues(slot->tts_values, slot->tts_isnull, &ev);
		MemoryContextSwitchTo(callercxt);
		if (as_of && ev.recorded_at > *as_of)
			continue;
		if (effective_until && ev.effective_at > *effective_until &&
			ev.version != 1)
			continue;
		callback(&ev, arg);
		count++;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	MemoryContextDelete(rowcxt);
	index_close(idx, AccessShareLock);
	table_close(events, AccessShareLock);
	return count;
}
