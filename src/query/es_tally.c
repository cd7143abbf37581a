/*-------------------------------------------------------------------------
 *
 * es_tally.c
 *	  The log's events counted by type for es_stats, kept up to date
 *	  incrementally per backend: each call reads only the events after the
 *	  last one it counted.
 *
 * A poller of es_stats would otherwise read the whole log at every poll.
 * Instead the backend keeps, in TopMemoryContext, the counts by type of the
 * events up to an es_read cursor and, at each call, adds the events after
 * it, read with es_read's C API (EsReadBatch, es_read.c): the log in
 * (tx, seq) order up to the horizon of finished transactions, never an
 * event skipped nor one counted twice (es_read's guarantee).  So the counts
 * are those of the events es_read has returned by now: an event of a
 * transaction still open, or of one younger than the oldest open one of
 * this database, is counted once that has finished, as a follower sees it.
 * The first call in a backend reads the whole log; the later ones what was
 * appended since.
 *
 * The tally belongs to one es_events relation (by OID) in one database: a
 * dropped and re-created extension (a restore) has a new relation, and the
 * tally starts again.  It is updated only when a call has read everything
 * without error, so an error or a cancel leaves it as it was.
 *
 * Locks: those of es_read (AccessShareLock on es_events and its indexes);
 * no shared state.  EXECUTE on es_stats_events is the only privilege
 * checked.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "query.h"

/* Events read per EsReadBatch call while catching up. */
#define TALLY_BATCH	100000

/* The backend's tally. */
typedef struct Tally
{
	Oid			events_relid;	/* es_events it counts; InvalidOid: none */
	bool		any;			/* whether cursor is set */
	EsReadCursor cursor;		/* the last event counted */
	int64		counts[ES_EV_LAST + 1]; /* by EsEventType */
} Tally;

static Tally MyTally = {InvalidOid};

/* What the callback adds to. */
typedef struct TallyStep
{
	int64		counts[ES_EV_LAST + 1];
	EsReadCursor last;
	int64		n;
} TallyStep;

/* EsReadCallback: count one event. */
static void
CountEvent(const EsEvent *ev, const EsReadCursor *pos, void *arg)
{
	TallyStep  *step = arg;

	if (ev->type > ES_EV_INVALID && ev->type <= ES_EV_LAST)
		step->counts[ev->type]++;
	step->last = *pos;
	step->n++;
}

/*
 * es_stats_events() RETURNS TABLE(type text, events bigint)
 *
 * The events of the log by type, as far as es_read has them (finished
 * transactions; see the file header): one row per type present.  Reads the
 * events appended since this backend's previous call only.
 *
 * Errors: those of es_read (55000 for a ledger not updated to 0.3.0, ES012
 * for a damaged row).
 *
 * Locks: AccessShareLock on es_events, es_events_tx_seq_idx and
 * es_events_pkey; reads the statement's snapshot; works on a hot standby.
 */
PG_FUNCTION_INFO_V1(es_stats_events);
Datum
es_stats_events(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			relid = EsRowRelid(ES_REL_EVENTS);
	TallyStep	step;
	Tally		next;

	InitMaterializedSRF(fcinfo, 0);
	if (MyTally.events_relid != relid)
	{
		memset(&MyTally, 0, sizeof(MyTally));
		MyTally.events_relid = relid;
	}
	next = MyTally;
	for (;;)
	{
		memset(&step, 0, sizeof(step));
		EsReadBatch(next.any ? &next.cursor : NULL, TALLY_BATCH, CountEvent,
					&step);
		for (int t = 0; t <= ES_EV_LAST; t++)
			next.counts[t] += step.counts[t];
		if (step.n > 0)
		{
			next.cursor = step.last;
			next.any = true;
		}
		if (step.n < TALLY_BATCH)
			break;
		CHECK_FOR_INTERRUPTS();
	}
	MyTally = next;				/* everything read: keep it */

	for (int t = ES_EV_ACCOUNT_OPENED; t <= ES_EV_LAST; t++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		if (MyTally.counts[t] == 0)
			continue;
		values[0] = CStringGetTextDatum(EsEventTypeName((EsEventType) t));
		values[1] = Int64GetDatum(MyTally.counts[t]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
