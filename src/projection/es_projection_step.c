/*-------------------------------------------------------------------------
 *
 * es_projection_step.c
 *	  Running a user projection over new events: an inline projection's
 *	  catch-up, and the step that applies the next batch of events to an
 *	  async projection by following es_read.
 *
 * Inline projections.  es_apply calls their handlers for the events it
 * appends (es_handler.c).  Creating, resuming or rebuilding one catches it
 * up here (EsProjectionCatchUpInline): the handler is called for every
 * event above the projection's position, in seq order, in the caller's
 * transaction, under the ShareLock on es_events the caller took
 * (es_projection.c), so the committed events are all the events there will
 * ever be below the sequence's current value; a handler error fails the
 * call.  EsProjectionRunReset calls a projection's reset function.
 *
 * Async projections.  A step (EsProjectionStep: the background worker,
 * es_worker.c, or es_projection_run through EsProjectionStepAsync) locks
 * the projection's registry row (FOR UPDATE: one step at a time per
 * projection), reads the next batch of events with es_read's C API
 * (EsReadBatch, es_read.c) from the cursor stored in the row, with a
 * snapshot taken after the lock, calls the handler for each, in es_read's
 * order, then stores the cursor of the last one, all in one transaction:
 * the handler's writes and the cursor commit together or not at all, so a
 * crash neither applies an event twice nor skips one.  The handlers run in
 * a subtransaction: if one fails, the batch is rolled back, the projection
 * is marked failed with the error and the event's seq, and the step
 * commits that; es_apply is never blocked.  es_projection_resume retries
 * from the cursor.  A real cancel or shutdown (57014, 57P01 raised by
 * ProcessInterrupts) is not a handler failure: it is raised; the same
 * SQLSTATE raised by a handler is its failure (IsInterrupt).
 *
 * Handlers and reset functions run as the projection's owner
 * (EsHandlerEnter, es_handler.c), never inside the write guard.  Callers
 * are connected to SPI.
 *
 * Locks: the registry row's FOR UPDATE lock (es_projection_registry.c);
 * whatever the handlers take.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "projection.h"

/* es_ledger.projection_batch: events per step of an async projection. */
int			EsProjectionBatch = 1000;

/*
 * Call the projection's reset function, if it has one, as its owner, in
 * the caller's transaction.
 */
void
EsProjectionRunReset(const EsHandlerProjection *p)
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
int64
EsProjectionCatchUpInline(const EsHandlerProjection *p, int64 after_seq, int64 *last)
{
	char	   *sql = psprintf("SELECT e.seq, e FROM %s e WHERE e.seq OPERATOR(pg_catalog.>) $1 "
							   "ORDER BY e.seq LIMIT 1000",
							   EsProjectionQualifiedName("es_events"));
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
			EsProjectionUpdatePosition(p->name, "running", cursor, last_seq, high_seq,
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
int64
EsProjectionStepAsync(EsProjectionRow *row, int64 max, bool *failed)
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
	EsProjectionMarkFailed(row->p.name, edata, failed_seq);
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
	if (!EsProjectionLock(name, true, &row) || row.p.inline_mode ||
		strcmp(row.p.state, "running") != 0)
		return 0;
	n = EsProjectionStepAsync(&row, EsProjectionBatch, &failed);
	*more = !failed && n >= EsProjectionBatch;
	return n;
}
