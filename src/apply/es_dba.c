/*-------------------------------------------------------------------------
 *
 * es_dba.c
 *	  Tools for the database administrator: es_rebuild_projections (the
 *	  projection es_accounts rebuilt in place from the log) and es_restore_to
 *	  (the projection as it stood at a time, written to a table of a new
 *	  schema).
 *
 * es_transfers is rebuilt and restored too, from the transfers the log
 * holds (EsScanTransfers, the transfer fold; RebuildTransfers,
 * RestoreTransfer).
 *
 * Both fold the log the way es_accounts_at does (es_history.c): one walk of
 * es_events_account_version_key, one account's state in memory at a time,
 * each event folded with EsFoldEvent, the fold es_apply uses.  The opening
 * event's allocations (the name and currency the state keeps) live in a
 * context reset at every account, the others in the iterator's row context.
 *
 * Progress: every ES_DBA_PROGRESS_EVENTS events, or every
 * ES_DBA_PROGRESS_MS milliseconds, whichever comes first, a NOTICE says how
 * many events were read, and pg_stat_activity.query of the session shows
 * it too (as es_verify does); the query text is put back at the end.
 *
 * Both are for the extension owner and superusers: the SQL script revokes
 * EXECUTE from PUBLIC and grants it to nobody.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "apply.h"

/* How often progress is shown: in events, and in milliseconds. */
#define ES_DBA_PROGRESS_EVENTS	100000
#define ES_DBA_PROGRESS_MS		5000

/* The table es_restore_to creates in its target schema. */
#define ES_DBA_RESTORE_TABLE	"accounts"
#define ES_DBA_RESTORE_TRANSFERS	"transfers"

/* Events read so far by one call, and when progress was last shown. */
typedef struct EsDbaProgress
{
	const char *what;			/* the function's name */
	int64		events;
	TimestampTz last;
} EsDbaProgress;

static void
ProgressStart(EsDbaProgress *p, const char *what)
{
	p->what = what;
	p->events = 0;
	p->last = GetCurrentTimestamp();
}

/* Count one event read; show progress when it is time. */
static void
ProgressTick(EsDbaProgress *p)
{
	TimestampTz now;
	char	   *msg;

	p->events++;
	if (p->events % ES_DBA_PROGRESS_EVENTS != 0)
	{
		/* The clock is read every 1024 events only. */
		if (p->events % 1024 != 0)
			return;
		now = GetCurrentTimestamp();
		if (!TimestampDifferenceExceeds(p->last, now, ES_DBA_PROGRESS_MS))
			return;
	}
	else
		now = GetCurrentTimestamp();
	p->last = now;
	msg = psprintf("es_ledger %s: " INT64_FORMAT " events read",
				   p->what, p->events);
	pgstat_report_activity(STATE_RUNNING, msg);
	ereport(NOTICE, (errmsg_internal("%s", msg)));
	pfree(msg);
}

/* Put the session's query text back in pg_stat_activity. */
static void
ProgressEnd(void)
{
	if (debug_query_string)
		pgstat_report_activity(STATE_RUNNING, debug_query_string);
}

/*
 * A walk folding every account of the log, in account_id order, counting
 * events recorded at or before *as_of (NULL: every event), as
 * es_accounts_at does (see es_history.c for "an account unborn at as_of").
 */
typedef struct EsDbaFold
{
	EsScanIter *it;
	MemoryContext keepcxt;		/* the state's name and currency */
	const TimestampTz *as_of;
	EsDbaProgress *progress;
	EsEvent		ev;				/* the next account's first event */
	bool		have_ev;		/* ev is read, not yet folded */
	bool		done;
} EsDbaFold;

static bool
FoldNextEvent(EsDbaFold *f)
{
	MemoryContext old;

	if (!EsScanNext(f->it))
		return false;
	old = MemoryContextSwitchTo(f->it->rowcxt);
	EsRowEventFromValues(f->it->slot->tts_values, f->it->slot->tts_isnull,
						 &f->ev);
	MemoryContextSwitchTo(old);
	ProgressTick(f->progress);
	return true;
}

static void
FoldBegin(EsDbaFold *f, Snapshot snapshot, const TimestampTz *as_of,
		  EsDbaProgress *progress)
{
	f->keepcxt = AllocSetContextCreate(CurrentMemoryContext, "es_dba account",
									   ALLOCSET_SMALL_SIZES);
	f->as_of = as_of;
	f->progress = progress;
	f->it = EsScanBegin(ES_REL_EVENTS, ES_REL_EVENTS_VERSION_IDX, false, 0,
						snapshot);
	f->have_ev = FoldNextEvent(f);
	f->done = !f->have_ev;
}

/*
 * The next account that existed at as_of, folded into *state (valid until
 * the next call); false at the end of the log.
 */
static bool
FoldNextAccount(EsDbaFold *f, EsAccountState *state)
{
	while (f->have_ev)
	{
		int64		account_id = f->ev.account_id;
		bool		unborn = false;

		MemoryContextReset(f->keepcxt);
		EsFoldInit(state, account_id);
		do
		{
			if (!unborn && f->as_of && f->ev.recorded_at > *f->as_of)
			{
				if (f->ev.version == 1)
					unborn = true;
			}
			else if (!unborn)
			{
				MemoryContext old;

				old = MemoryContextSwitchTo(f->ev.type == ES_EV_ACCOUNT_OPENED ?
											f->keepcxt : f->it->rowcxt);
				EsFoldEvent(state, &f->ev);
				MemoryContextSwitchTo(old);
			}
			f->have_ev = FoldNextEvent(f);
		} while (f->have_ev && f->ev.account_id == account_id);

		if (state->status != ES_ACCOUNT_NONE)
			return true;
	}
	return false;
}

static void
FoldEnd(EsDbaFold *f)
{
	EsScanEnd(f->it);
	MemoryContextDelete(f->keepcxt);
}

/* Is the projection row's state the folded state, field by field? */
static bool
StatesEqual(const EsAccountState *a, const EsAccountState *b)
{
	return a->account_id == b->account_id &&
		strcmp(a->account, b->account) == 0 &&
		strcmp(a->currency, b->currency) == 0 &&
		a->status == b->status &&
		a->balance == b->balance &&
		a->pending_out == b->pending_out &&
		a->pending_in == b->pending_in &&
		a->available == b->available &&
		a->overdraft_limit == b->overdraft_limit &&
		a->has_max_balance == b->has_max_balance &&
		(!a->has_max_balance || a->max_balance == b->max_balance) &&
		a->version == b->version &&
		a->last_seq == b->last_seq &&
		a->opened_at == b->opened_at &&
		a->updated_at == b->updated_at &&
		memcmp(a->last_hash, b->last_hash, ES_HASH_LEN) == 0;
}

/* The projection row the walk is on, and its account_id. */
static bool
NextProjection(EsScanIter *accts, int64 *account_id)
{
	if (!EsScanNext(accts))
		return false;
	*account_id = EsRowSlotInt64(accts->slot, ES_ACC_ATT_ACCOUNT_ID);
	return true;
}

/* ------------------------------------------------------------ transfers */

/* What a rebuild did. */
typedef struct EsRebuildCounts
{
	int64		rewritten;
	int64		inserted;
	int64		deleted;
} EsRebuildCounts;

/* The state of the rebuild of es_transfers. */
typedef struct EsRebuildTransfers
{
	EsScanIter *proj;			/* es_transfers by seq, probed per transfer */
	Tuplestorestate *todo;		/* the derived rows to insert */
	TupleDesc	desc;
	EsRebuildCounts *counts;
	int64		derived;
	int64		kept;
	HTAB	   *seqs;			/* pass 3 only: the derived transfers' seqs */
} EsRebuildTransfers;

/* Position the probe walk of es_transfers on the row of seq, if any. */
static bool
ProbeTransferRow(EsScanIter *proj, int64 seq)
{
	ScanKeyData skey;

	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   InvalidOid, F_INT8EQ, Int64GetDatum(seq));
	index_rescan(proj->scan, &skey, 1, NULL, 0);
	return EsScanNext(proj);
}

/*
 * Pass 1, per transfer derived from the log: a row equal to it is kept; a
 * row that differs is deleted; the transfer is queued for insertion unless
 * kept.
 */
static void
RebuildTransferDerived(const EsTransfer *t, void *arg)
{
	EsRebuildTransfers *r = arg;
	Datum		values[ES_TR_NATTS];
	bool		nulls[ES_TR_NATTS];

	r->derived++;
	if (ProbeTransferRow(r->proj, t->seq))
	{
		EsTransfer	row;
		const char *problem;
		MemoryContext old = MemoryContextSwitchTo(r->proj->rowcxt);

		problem = EsRowTransferDecode(r->proj->slot->tts_values,
									  r->proj->slot->tts_isnull, &row);
		MemoryContextSwitchTo(old);
		if (problem == NULL && EsFoldTransfersEqual(t, &row))
		{
			r->kept++;
			return;
		}
		EsWriteDeleteTransfer(&r->proj->slot->tts_tid);
		r->counts->rewritten++;
	}
	else
		r->counts->inserted++;
	EsRowTransferToValues(t, values, nulls);
	tuplestore_putvalues(r->todo, r->desc, values, nulls);
}

/* Pass 3's first half: remember a derived transfer's seq. */
static void
RememberTransferSeq(const EsTransfer *t, void *arg)
{
	EsRebuildTransfers *r = arg;

	hash_search(r->seqs, &t->seq, HASH_ENTER, NULL);
}

/*
 * Rebuild es_transfers from the log, as es_accounts (see
 * es_rebuild_projections): pass 1 derives every transfer (EsScanTransfers)
 * and keeps, or deletes and queues, its row; pass 2 counts the rows left
 * and, only if more are left than were kept (rows with no transfer in the
 * log), pass 3 derives the transfers' seqs again into a hash and deletes
 * the rows whose seq is not one; last the queued rows are inserted, once
 * no command id can collide.  The writer and the guard are open.
 */
static void
RebuildTransfers(EsRebuildCounts *counts)
{
	EsRebuildTransfers r;
	Relation	rel;
	TupleTableSlot *slot;
	EsScanIter *rows;
	int64		left = 0;

	memset(&r, 0, sizeof(r));
	r.counts = counts;
	rel = EsRowOpenTable(ES_REL_TRANSFERS, AccessShareLock);
	r.desc = CreateTupleDescCopy(RelationGetDescr(rel));
	table_close(rel, AccessShareLock);
	r.todo = tuplestore_begin_heap(false, false, work_mem);

	EsWriteNextCommand();
	r.proj = EsScanBegin(ES_REL_TRANSFERS, ES_REL_TRANSFERS_SEQ_IDX, true, 0,
						 GetLatestSnapshot());
	EsScanTransfers(false, 0, NULL, GetActiveSnapshot(),
					RebuildTransferDerived, NULL, &r);
	EsScanEnd(r.proj);

	EsWriteNextCommand();
	rows = EsScanBegin(ES_REL_TRANSFERS, ES_REL_TRANSFERS_SEQ_IDX, false, 0,
					   GetLatestSnapshot());
	while (EsScanNext(rows))
		left++;
	EsScanEnd(rows);
	if (left > r.kept)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(int64);
		ctl.hcxt = CurrentMemoryContext;
		r.seqs = hash_create("es_rebuild_projections transfers", 1024, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		EsScanTransfers(false, 0, NULL, GetActiveSnapshot(),
						RememberTransferSeq, NULL, &r);
		rows = EsScanBegin(ES_REL_TRANSFERS, ES_REL_TRANSFERS_SEQ_IDX, false, 0,
						   GetLatestSnapshot());
		while (EsScanNext(rows))
		{
			bool		isnull;
			Datum		d = slot_getattr(rows->slot, ES_TR_ATT_SEQ, &isnull);
			int64		seq = isnull ? 0 : DatumGetInt64(d);

			if (isnull || hash_search(r.seqs, &seq, HASH_FIND, NULL) == NULL)
			{
				EsWriteDeleteTransfer(&rows->slot->tts_tid);
				counts->deleted++;
			}
		}
		EsScanEnd(rows);
		hash_destroy(r.seqs);
	}

	EsWriteNextCommand();
	slot = MakeSingleTupleTableSlot(r.desc, &TTSOpsMinimalTuple);
	while (tuplestore_gettupleslot(r.todo, true, false, slot))
	{
		EsTransfer	t;

		CHECK_FOR_INTERRUPTS();
		slot_getallattrs(slot);
		EsRowTransferFromValues(slot->tts_values, slot->tts_isnull, &t);
		EsWriteInsertTransfer(&t);
	}
	ExecDropSingleTupleTableSlot(slot);
	tuplestore_end(r.todo);
}

/* es_restore_to's transfers: each derived transfer is a row of the table. */
typedef struct EsRestoreTransfers
{
	Relation	rel;
	TupleTableSlot *slot;
	BulkInsertState bistate;
	CommandId	cid;
	int64		rows;
} EsRestoreTransfers;

static void
RestoreTransfer(const EsTransfer *t, void *arg)
{
	EsRestoreTransfers *r = arg;

	CHECK_FOR_INTERRUPTS();
	ExecClearTuple(r->slot);
	EsRowTransferToValues(t, r->slot->tts_values, r->slot->tts_isnull);
	ExecStoreVirtualTuple(r->slot);
	table_tuple_insert(r->rel, r->slot, r->cid, 0, r->bistate);
	r->rows++;
}

/*
 * es_rebuild_projections() RETURNS bigint
 *
 * Rebuilds the projection es_accounts from the log, in place, and returns
 * the number of events read.  Afterwards every account the log holds has
 * exactly its folded row (what es_accounts_at(NULL) returns) and no other
 * row is left, so es_verify's projection check passes.  A row equal to its
 * fold is left alone; only the rows that differ are rewritten.
 *
 * How: with es_accounts locked (below) and a fresh snapshot, which then
 * sees every committed write, the fold walk and a walk of es_accounts_pkey
 * go side by side in account_id order.  A row with no account in the log,
 * a row that differs from its fold, or a row the codec cannot read, is
 * deleted; then, once every such row is gone (so no name can collide in
 * es_accounts_account_key), the folds of the accounts whose row was deleted
 * or missing are inserted, kept meanwhile in a tuplestore (which spills to
 * disk past work_mem).  Rows are deleted and inserted rather than updated
 * in place because a damaged row may carry another account's name.  The
 * writes go through the writer of es_write.c (EsWriteBegin,
 * EsWriteDeleteAccount, EsWriteInsertAccount) inside the write guard, so
 * constraints, index entries and row triggers are those of es_apply's
 * writes, and the guard's triggers let them through.  The account cache of
 * this transaction is reset first, since rows it may point at are deleted;
 * the rows inserted are cached as es_apply's are.  A NOTICE then says how
 * many rows were rewritten, inserted and deleted.
 *
 * Locks: ShareRowExclusiveLock on es_accounts (what LOCK TABLE es_accounts
 * IN SHARE ROW EXCLUSIVE MODE takes) until the transaction ends.  It
 * conflicts with the RowExclusiveLock every es_apply takes on es_accounts,
 * so the rebuild first waits for the writers running, and keeps new writers
 * waiting until its transaction commits or rolls back; readers (ACCESS
 * SHARE) are never blocked.  Also RowExclusiveLock on es_events and its
 * indexes (the writer opens them), AccessShareLock on what is read.
 *
 * Errors: ES012 for a damaged event or one that cannot be folded, or an
 * account whose name two accounts of the log share; 22003 for a balance
 * out of the bigint range; 25006 in a read-only transaction or on a hot
 * standby; 42501 for a role without EXECUTE (only the extension owner and
 * superusers have it).
 */
PG_FUNCTION_INFO_V1(es_rebuild_projections);


/*
 * The rebuild's two passes, with the writer open and the guard open (see
 * es_rebuild_projections).
 */
static void
Rebuild(EsDbaProgress *progress, EsRebuildCounts *counts)
{
	EsDbaFold	fold;
	EsScanIter *accts;
	Tuplestorestate *todo;
	TupleDesc	desc;
	TupleTableSlot *slot;
	EsAccountState state;
	bool		have_state;
	bool		have_proj;
	int64		proj_id = 0;

	FoldBegin(&fold, GetActiveSnapshot(), NULL, progress);
	accts = EsScanBegin(ES_REL_ACCOUNTS, ES_REL_ACCOUNTS_ID_IDX, false, 0,
						GetActiveSnapshot());
	desc = CreateTupleDescCopy(RelationGetDescr(accts->heap));
	todo = tuplestore_begin_heap(false, false, work_mem);

	/* Pass 1: delete what is wrong, remember what to insert. */
	have_state = FoldNextAccount(&fold, &state);
	have_proj = NextProjection(accts, &proj_id);
	while (have_state || have_proj)
	{
		CHECK_FOR_INTERRUPTS();
		if (have_proj && (!have_state || proj_id < state.account_id))
		{
			/* A row with no account in the log. */
			EsWriteDeleteAccount(&accts->slot->tts_tid);
			counts->deleted++;
			have_proj = NextProjection(accts, &proj_id);
			continue;
		}
		if (have_proj && proj_id == state.account_id)
		{
			EsAccountState proj;

			if (EsScanDecodeState(accts, &proj) == NULL &&
				StatesEqual(&state, &proj))
			{
				/* Right already. */
				have_proj = NextProjection(accts, &proj_id);
				have_state = FoldNextAccount(&fold, &state);
				continue;
			}
			EsWriteDeleteAccount(&accts->slot->tts_tid);
			counts->rewritten++;
			have_proj = NextProjection(accts, &proj_id);
		}
		else
			counts->inserted++;

		{
			Datum		values[ES_ACC_NATTS];
			bool		nulls[ES_ACC_NATTS];
			MemoryContext old = MemoryContextSwitchTo(fold.it->rowcxt);

			EsRowStateToValues(&state, values, nulls);
			tuplestore_putvalues(todo, desc, values, nulls);
			MemoryContextSwitchTo(old);
		}
		have_state = FoldNextAccount(&fold, &state);
	}
	EsScanEnd(accts);
	FoldEnd(&fold);

	/* Pass 2: the missing rows, now that no name is taken twice. */
	EsWriteNextCommand();
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	while (tuplestore_gettupleslot(todo, true, false, slot))
	{
		CHECK_FOR_INTERRUPTS();
		slot_getallattrs(slot);
		EsRowStateFromValues(slot->tts_values, slot->tts_isnull, &state);
		if (!EsWriteInsertAccount(&state))
			ereport(ERROR,
					(errcode(ERRCODE_ES_INTEGRITY),
					 errmsg("account name \"%s\" belongs to two accounts of the log",
							state.account)));
	}
	ExecDropSingleTupleTableSlot(slot);
	tuplestore_end(todo);
}

Datum
es_rebuild_projections(PG_FUNCTION_ARGS)
{
	EsDbaProgress progress;
	EsRebuildCounts counts = {0, 0, 0};

	PreventCommandIfReadOnly("es_rebuild_projections()");
	LockRelationOid(EsRowRelid(ES_REL_ACCOUNTS), ShareRowExclusiveLock);
	/* Every writer has finished: a fresh snapshot sees all they wrote. */
	PushActiveSnapshot(GetLatestSnapshot());
	EsCacheReset();
	ProgressStart(&progress, "es_rebuild_projections");

	EsGuardBeginWrite();
	PG_TRY();
	{
		EsWriteBegin();
		Rebuild(&progress, &counts);
		if (EsRowHasTransfers())
			RebuildTransfers(&counts);
	}
	PG_FINALLY();
	{
		EsGuardEndWrite();
	}
	PG_END_TRY();
	/* AFTER row triggers, if anyone added some, run outside the guard. */
	EsWriteEnd();
	PopActiveSnapshot();
	ProgressEnd();

	ereport(NOTICE,
			(errmsg("es_rebuild_projections: %lld rows rewritten, %lld inserted, %lld deleted",
					(long long) counts.rewritten, (long long) counts.inserted,
					(long long) counts.deleted)));
	PG_RETURN_INT64(progress.events);
}

/*
 * es_restore_to(as_of timestamptz, target_schema text) RETURNS bigint
 *
 * Creates the schema target_schema, and in it the table accounts, with the
 * columns of es_accounts (CREATE TABLE ... (LIKE es_accounts): names, types
 * and NOT NULL, no index, constraint or trigger: a plain heap), holding the
 * projection as it stood at as_of (transaction time): the rows
 * es_accounts_at(as_of) returns, folded from the log alone; as_of NULL
 * means now.  Returns the number of rows written.  The table is called
 * accounts, not es_accounts, because the extension reserves the name
 * es_accounts in every schema (ES011).  Schema and table belong to the
 * caller, created as by the caller's own CREATE SCHEMA and CREATE TABLE.
 *
 * The log is read with the statement's snapshot, so the restore never
 * waits for writers, nor they for it.
 *
 * Errors: 22004 for a NULL target_schema; 42P06 if the schema exists
 * already; 42501 for a role without EXECUTE (only the extension owner and
 * superusers have it) or without CREATE on the database; ES012 for a
 * damaged event or one that cannot be folded; 22003 for a balance out of
 * the bigint range; 25006 in a read-only transaction.
 *
 * Locks: AccessShareLock on es_events and es_events_account_version_key;
 * the new table is the caller's (AccessExclusiveLock, from its creation).
 */
PG_FUNCTION_INFO_V1(es_restore_to);
Datum
es_restore_to(PG_FUNCTION_ARGS)
{
	TimestampTz as_of = PG_ARGISNULL(0) ? 0 : PG_GETARG_TIMESTAMPTZ(0);
	const TimestampTz *bound = PG_ARGISNULL(0) ? NULL : &as_of;
	char	   *schema;
	const char *ext_schema;
	Oid			nspid;
	Oid			relid;
	Relation	rel;
	TupleTableSlot *slot;
	BulkInsertState bistate;
	CommandId	cid;
	EsDbaProgress progress;
	EsDbaFold	fold;
	EsAccountState state;
	int64		rows = 0;
	int			rc;

	if (bound)
		EsScanWarnIfNotFinal(as_of);

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target_schema must not be null")));
	schema = text_to_cstring(PG_GETARG_TEXT_PP(1));
	PreventCommandIfReadOnly("es_restore_to()");
	ext_schema = get_namespace_name(get_rel_namespace(EsRowRelid(ES_REL_ACCOUNTS)));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* CREATE SCHEMA raises 42P06 itself if the schema exists. */
	rc = SPI_execute(psprintf("CREATE SCHEMA %s", quote_identifier(schema)),
					 false, 0);
	if (rc != SPI_OK_UTILITY)
		elog(ERROR, "CREATE SCHEMA failed: %s", SPI_result_code_string(rc));
	rc = SPI_execute(psprintf("CREATE TABLE %s.%s (LIKE %s.%s)",
							  quote_identifier(schema),
							  quote_identifier(ES_DBA_RESTORE_TABLE),
							  quote_identifier(ext_schema),
							  quote_identifier(EsRowRelName(ES_REL_ACCOUNTS))),
					 false, 0);
	if (rc != SPI_OK_UTILITY)
		elog(ERROR, "CREATE TABLE failed: %s", SPI_result_code_string(rc));
	if (EsRowHasTransfers())
	{
		rc = SPI_execute(psprintf("CREATE TABLE %s.%s (LIKE %s.%s)",
								  quote_identifier(schema),
								  quote_identifier(ES_DBA_RESTORE_TRANSFERS),
								  quote_identifier(ext_schema),
								  quote_identifier(EsRowRelName(ES_REL_TRANSFERS))),
						 false, 0);
		if (rc != SPI_OK_UTILITY)
			elog(ERROR, "CREATE TABLE failed: %s", SPI_result_code_string(rc));
	}
	SPI_finish();
	CommandCounterIncrement();

	nspid = get_namespace_oid(schema, false);
	relid = get_relname_relid(ES_DBA_RESTORE_TABLE, nspid);
	if (!OidIsValid(relid))
		elog(ERROR, "table %s.%s was not created", schema, ES_DBA_RESTORE_TABLE);
	rel = table_open(relid, RowExclusiveLock);
	EsRowCheckShape(RelationGetDescr(rel), ES_REL_ACCOUNTS, "es_restore_to");
	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsVirtual);
	bistate = GetBulkInsertState();
	cid = GetCurrentCommandId(true);

	ProgressStart(&progress, "es_restore_to");
	FoldBegin(&fold, GetActiveSnapshot(), bound, &progress);
	while (FoldNextAccount(&fold, &state))
	{
		MemoryContext old = MemoryContextSwitchTo(fold.it->rowcxt);

		CHECK_FOR_INTERRUPTS();
		ExecClearTuple(slot);
		EsRowStateToValues(&state, slot->tts_values, slot->tts_isnull);
		ExecStoreVirtualTuple(slot);
		table_tuple_insert(rel, slot, cid, 0, bistate);
		MemoryContextSwitchTo(old);
		rows++;
	}
	FoldEnd(&fold);
	FreeBulkInsertState(bistate);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);

	if (EsRowHasTransfers())
	{
		EsRestoreTransfers rt;

		relid = get_relname_relid(ES_DBA_RESTORE_TRANSFERS, nspid);
		if (!OidIsValid(relid))
			elog(ERROR, "table %s.%s was not created", schema,
				 ES_DBA_RESTORE_TRANSFERS);
		rt.rel = table_open(relid, RowExclusiveLock);
		EsRowCheckShape(RelationGetDescr(rt.rel), ES_REL_TRANSFERS,
						"es_restore_to");
		rt.slot = MakeSingleTupleTableSlot(RelationGetDescr(rt.rel),
										   &TTSOpsVirtual);
		rt.bistate = GetBulkInsertState();
		rt.cid = cid;
		rt.rows = 0;
		EsScanTransfers(false, 0, bound, GetActiveSnapshot(), RestoreTransfer,
						NULL, &rt);
		FreeBulkInsertState(rt.bistate);
		ExecDropSingleTupleTableSlot(rt.slot);
		table_close(rt.rel, NoLock);
		rows += rt.rows;
	}
	ProgressEnd();
	PG_RETURN_INT64(rows);
}
