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
 *	  (account_id, 1), or from after a snapshot's version
 *	  (EsScanBeginAccount): the account's events in version order.
 *	  EsScanEventAt reads the one event at a version (to check a snapshot).
 *	- EsScanBegin/EsScanNext/EsScanEnd walk any of our tables through one
 *	  of its indexes, all rows or those of one key, for the verifier; the
 *	  caller decodes each row with the codec, so that a damaged row can be
 *	  reported rather than raised.
 *	- EsScanFindReversal probes es_commands_reverses_idx for the command
 *	  that reverses a given one (es_reverse).
 *	- EsScanTransfers derives every transfer of the log (the rows
 *	  es_transfers should hold) by the transfer fold, for es_verify,
 *	  es_rebuild_projections and es_restore_to.
 *	- EsScanMaxKey reads the largest key of a table's unique index over
 *	  every row version (SnapshotAny), for the writer's sequence check and
 *	  for digests.
 *
 * They read with the caller's active snapshot (the iterator with the one it
 * is given), as a query in the calling
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
#include "access/xlog.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/backend_status.h"
#include "utils/timestamp.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "store.h"

/*
 * Fetch into slot the row of heap whose unique index idx, on one text
 * column or expression, equals key, as snapshot sees it.  False if none.
 * The writer probes es_accounts and es_commands with it (with a fresh
 * snapshot), replay the log's opening events.
 */
bool
EsScanProbeText(Relation heap, Relation idx, const char *key,
				Snapshot snapshot, TupleTableSlot *slot)
{
	ScanKeyData skey;
	IndexScanDesc scan;
	bool		found;

	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_TEXTEQ,
						   CStringGetTextDatum(key));
	scan = index_beginscan(heap, idx, snapshot, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	return found;
}

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
	bool		found = EsScanProbeText(events, idx, account, GetActiveSnapshot(),
										slot);

	if (found)
	{
		EsEvent		ev;

		slot_getallattrs(slot);
		EsRowEventFromValues(slot->tts_values, slot->tts_isnull, &ev);
		*account_id = ev.account_id;
	}
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(events, AccessShareLock);
	return found;
}

/*
 * Feed an account's events after version after_version (0: all), in
 * version order, to callback.  as_of bounds recorded_at and effective_until
 * bounds effective_at (the opening event is always included); NULL means
 * no bound.  Filtering by effective_at in version order is sound because a
 * release (post, void, expiry) never takes effect before its reservation
 * (es_decide.c, EsDecideEffectiveAt): an event kept never lacks the
 * reservation it releases.  Returns the number of events fed.  Replay starts after the
 * version of the snapshot it begins from (es_snap.c).
 *
 * Each row is decoded in a memory context reset before the next one, so the
 * scan's memory stays flat however long the stream; the callback runs in
 * the caller's context and must copy what it keeps of the event.
 */
int64
EsScanAccount(int64 account_id, int64 after_version, const TimestampTz *as_of,
			  const TimestampTz *effective_until,
			  EsScanCallback callback, void *arg)
{
	EsScanIter *it = EsScanBeginAccount(account_id, after_version,
										GetActiveSnapshot());
	int64		count = 0;

	while (EsScanNext(it))
	{
		EsEvent		ev;
		const char *problem = EsScanDecodeEvent(it, &ev);

		if (problem)
			ereport(ERROR,
					(errcode(ERRCODE_ES_INTEGRITY),
					 errmsg("es_events row seq %lld of account %lld is damaged: %s",
							(long long) ev.seq, (long long) account_id, problem),
					 errdetail("The row was changed behind es_apply's back.")));
		if (as_of && ev.recorded_at > *as_of)
			continue;
		if (effective_until && ev.effective_at > *effective_until &&
			ev.version != 1)
			continue;
		callback(&ev, arg);
		count++;
	}
	EsScanEnd(it);
	return count;
}

/*
 * Open a walk of table through index with nkeys scan keys (ScanKeys on the
 * index's columns, as btree takes them; none for the whole index), reading
 * with snapshot.  Rows come as EsScanBegin's.
 */
EsScanIter *
EsScanBeginKeys(EsRel table, EsRel index, int nkeys, ScanKey key,
				Snapshot snapshot)
{
	EsScanIter *it = palloc0(sizeof(EsScanIter));

	it->heap = EsRowOpenTable(table, AccessShareLock);
	it->index = index_open(EsRowRelid(index), AccessShareLock);
	it->slot = table_slot_create(it->heap, NULL);
	/* A keeper block large enough that a row never mallocs another. */
	it->rowcxt = AllocSetContextCreate(CurrentMemoryContext, "es_ledger scan row",
									   0, 64 * 1024, ALLOCSET_DEFAULT_MAXSIZE);
	it->scan = index_beginscan(it->heap, it->index, snapshot, nkeys, 0);
	index_rescan(it->scan, key, nkeys, NULL, 0);
	it->direction = ForwardScanDirection;
	return it;
}

/*
 * Start walking table through its index: every row in index order
 * (by_key false), or those whose first index column equals key (an int8).
 * Rows are read with snapshot.  Each row's values are in it->slot after
 * EsScanNext; the EsScanDecode functions run in a memory context reset at
 * every row.
 */
EsScanIter *
EsScanBegin(EsRel table, EsRel index, bool by_key, int64 key,
			Snapshot snapshot)
{
	ScanKeyData skey;
	Relation	idx = index_open(EsRowRelid(index), AccessShareLock);

	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_INT8EQ,
						   Int64GetDatum(key));
	index_close(idx, NoLock);
	return EsScanBeginKeys(table, index, by_key ? 1 : 0, by_key ? &skey : NULL,
						   snapshot);
}

/*
 * Start walking table through its index over the rows whose first index
 * column equals a text key (es_events_command_id_idx: a command's events).
 */
EsScanIter *
EsScanBeginText(EsRel table, EsRel index, const char *key, Snapshot snapshot)
{
	ScanKeyData skey;
	Relation	idx = index_open(EsRowRelid(index), AccessShareLock);

	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_TEXTEQ,
						   CStringGetTextDatum(key));
	index_close(idx, NoLock);
	return EsScanBeginKeys(table, index, 1, &skey, snapshot);
}


/*
 * Start walking an account's events in version order, those after version
 * after_version (0: all), through es_events_account_version_key, reading
 * with snapshot.
 */
EsScanIter *
EsScanBeginAccount(int64 account_id, int64 after_version, Snapshot snapshot)
{
	ScanKeyData skey[2];
	Relation	idx = index_open(EsRowRelid(ES_REL_EVENTS_VERSION_IDX),
								 AccessShareLock);

	ScanKeyEntryInitialize(&skey[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_INT8EQ,
						   Int64GetDatum(account_id));
	ScanKeyEntryInitialize(&skey[1], 0, 2, BTGreaterStrategyNumber, InvalidOid,
						   idx->rd_indcollation[1], F_INT8GT,
						   Int64GetDatum(after_version));
	index_close(idx, NoLock);
	return EsScanBeginKeys(ES_REL_EVENTS, ES_REL_EVENTS_VERSION_IDX, 2, skey,
						   snapshot);
}

/*
 * The event of an account at a version, as snapshot sees the log, decoded
 * into *ev (its data is not kept: ev->data is NULL); false if there is
 * none.  ES012 for a damaged row.
 */
bool
EsScanEventAt(int64 account_id, int64 version, Snapshot snapshot, EsEvent *ev)
{
	EsScanIter *it = EsScanBeginAccount(account_id, version - 1, snapshot);
	bool		found = false;

	if (EsScanNext(it))
	{
		EsRowEventFromValues(it->slot->tts_values, it->slot->tts_isnull, ev);
		ev->data = NULL;		/* it may point into the slot's tuple */
		found = ev->version == version;
	}
	EsScanEnd(it);
	return found;
}

/* The next row, its values deformed into it->slot; false at the end. */
bool
EsScanNext(EsScanIter *it)
{
	CHECK_FOR_INTERRUPTS();
	MemoryContextReset(it->rowcxt);
	if (!index_getnext_slot(it->scan, it->direction, it->slot))
		return false;
	slot_getallattrs(it->slot);
	return true;
}

/*
 * Decode the current es_events row (EsRowEventDecode) in the row's memory
 * context; NULL or why the row is damaged.
 */
const char *
EsScanDecodeEvent(EsScanIter *it, EsEvent *ev)
{
	MemoryContext old = MemoryContextSwitchTo(it->rowcxt);
	const char *problem = EsRowEventDecode(it->slot->tts_values,
										   it->slot->tts_isnull, ev);

	MemoryContextSwitchTo(old);
	return problem;
}

/*
 * Decode the current es_accounts row (EsRowStateDecode) in the row's memory
 * context; NULL or why the row is damaged.
 */
const char *
EsScanDecodeState(EsScanIter *it, EsAccountState *state)
{
	MemoryContext old = MemoryContextSwitchTo(it->rowcxt);
	const char *problem = EsRowStateDecode(it->slot->tts_values,
										   it->slot->tts_isnull, state);

	MemoryContextSwitchTo(old);
	return problem;
}

/* Finish a walk and release what it holds (locks stay to transaction end). */
void
EsScanEnd(EsScanIter *it)
{
	index_endscan(it->scan);
	ExecDropSingleTupleTableSlot(it->slot);
	MemoryContextDelete(it->rowcxt);
	index_close(it->index, AccessShareLock);
	table_close(it->heap, AccessShareLock);
	pfree(it);
}

/*
 * The largest bigint key attno of table rel in its unique index idx, over
 * the rows committed or being inserted (a dirty snapshot: a row of an
 * aborted transaction does not count), or 0 for an empty table.
 */
int64
EsScanMaxKey(EsRel rel, EsRel idx, int attno)
{
	Relation	heap = table_open(EsRowRelid(rel), AccessShareLock);
	Relation	index = index_open(EsRowRelid(idx), AccessShareLock);
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	SnapshotData dirty;
	IndexScanDesc scan;
	int64		max = 0;

	/* Committed and in-progress rows; not those of aborted transactions. */
	InitDirtySnapshot(dirty);
	scan = index_beginscan(heap, index, &dirty, 0, 0);

	index_rescan(scan, NULL, 0, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
		max = EsRowSlotInt64(slot, attno);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	return max;
}

/*
 * Whether es_commands, as a fresh snapshot sees it, holds a command other
 * than except_id (NULL: none excepted) whose canonical form has, at the top
 * level, "reverses": command_id (written by es_reverse only; es_reverse.c);
 * if so, *reversal_id is set to its id.  One probe of the unique partial
 * index es_commands_reverses_idx (0.4.0).  A ledger not yet updated from
 * 0.3.0 has no such index: there every row of es_commands is read, and the
 * link of 0.3.0 (metadata.reverses, which a writer could forge) still
 * counts, as it did, until the update.
 */
bool
EsScanFindReversal(const char *command_id, const char *except_id,
				   char **reversal_id)
{
	EsScanIter *it;
	bool		found = false;

	if (OidIsValid(EsRowRelid(ES_REL_COMMANDS_REVERSES_IDX)))
	{
		Relation	commands = EsRowOpenTable(ES_REL_COMMANDS, AccessShareLock);
		Relation	idx = index_open(EsRowRelid(ES_REL_COMMANDS_REVERSES_IDX),
									 AccessShareLock);
		TupleTableSlot *slot = table_slot_create(commands, NULL);
		Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());

		if (EsScanProbeText(commands, idx, command_id, snap, slot))
		{
			char	   *id;

			slot_getallattrs(slot);
			id = TextDatumGetCString(slot->tts_values[ES_CMD_ATT_COMMAND_ID - 1]);
			if (except_id == NULL || strcmp(id, except_id) != 0)
			{
				*reversal_id = id;
				found = true;
			}
		}
		UnregisterSnapshot(snap);
		ExecDropSingleTupleTableSlot(slot);
		index_close(idx, AccessShareLock);
		table_close(commands, AccessShareLock);
		return found;
	}
	it = EsScanBegin(ES_REL_COMMANDS, ES_REL_COMMANDS_ID_IDX, false, 0,
					 GetLatestSnapshot());

	while (!found && EsScanNext(it))
	{
		MemoryContext old = MemoryContextSwitchTo(it->rowcxt);
		Jsonb	   *command;
		int64		seq;
		JsonbValue *meta;
		JsonbValue *rev;
		char	   *id;

		EsRowCommandFromValues(it->slot->tts_values, it->slot->tts_isnull,
							   &command, &seq);
		rev = getKeyJsonValueFromContainer(&command->root, "reverses", 8, NULL);
		meta = getKeyJsonValueFromContainer(&command->root, "metadata", 8, NULL);
		if (rev == NULL)
			rev = (meta && meta->type == jbvBinary &&
				   JsonContainerIsObject(meta->val.binary.data)) ?
				getKeyJsonValueFromContainer(meta->val.binary.data, "reverses", 8,
											 NULL) : NULL;
		MemoryContextSwitchTo(old);
		if (rev == NULL || rev->type != jbvString ||
			rev->val.string.len != strlen(command_id) ||
			memcmp(rev->val.string.val, command_id, rev->val.string.len) != 0)
			continue;
		id = TextDatumGetCString(it->slot->tts_values[ES_CMD_ATT_COMMAND_ID - 1]);
		if (except_id && strcmp(id, except_id) == 0)
			continue;
		*reversal_id = id;
		found = true;
	}
	EsScanEnd(it);
	return found;
}

/*
 * Flag a point-in-time answer that may still change.  An event's
 * recorded_at is the start of the transaction that appends it (raised to
 * its accounts' latest), and that transaction commits later: so while a
 * transaction that began at or before as_of is still open, it may yet
 * append events recorded at or before as_of, and an answer "as of as_of"
 * could change after it was given.  The horizon is the start of the oldest
 * transaction open in this database in another client session (any of them
 * may still write; pg_stat_activity's view of them; autovacuum and other
 * background processes append no events); answers for an as_of
 * before it are final.  At or past it, a WARNING (01000) says so; the
 * answer is still given.  On a hot standby the primary's transactions are
 * not visible: no warning is given there.
 */
void
EsScanWarnIfNotFinal(TimestampTz as_of)
{
	TimestampTz horizon = DT_NOEND;
	int			n;

	if (RecoveryInProgress())
		return;
	n = pgstat_fetch_stat_numbackends();
	for (int i = 1; i <= n; i++)
	{
		PgBackendStatus *be = pgstat_fetch_stat_beentry(i);

		if (be == NULL || be->st_procpid == MyProcPid ||
			be->st_backendType != B_BACKEND ||
			be->st_databaseid != MyDatabaseId ||
			be->st_xact_start_timestamp == 0)
			continue;
		if (be->st_xact_start_timestamp < horizon)
			horizon = be->st_xact_start_timestamp;
	}
	/* An infinite as_of: no "transaction that began at infinity". */
	if (as_of >= horizon && TIMESTAMP_NOT_FINITE(as_of))
		ereport(WARNING,
				(errmsg("the answer as of %s may still change",
						timestamptz_to_str(as_of)),
				 horizon == DT_NOEND ?
				 errdetail("The answer as of infinity includes every event yet to be appended.") :
				 errdetail("A transaction that began at %s is still open; events it appends will be recorded at or after that time.",
						   timestamptz_to_str(horizon)),
				 errhint("Answers for a finite time before the oldest open transaction began are final.")));
	else if (as_of >= horizon)
		ereport(WARNING,
				(errmsg("the answer as of %s may still change",
						timestamptz_to_str(as_of)),
				 errdetail("A transaction that began at %s is still open; events it appends will be recorded at or after that time.",
						   timestamptz_to_str(horizon)),
				 errhint("Answers for a time before the oldest open transaction began are final.")));
}

/* Show a long scan's progress in pg_stat_activity.query of this session. */
void
EsScanReportProgress(const char *what, int64 events)
{
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("es_ledger %s: " INT64_FORMAT " events read",
									what, events));
}

/* An open pending transfer of the account being walked, by transfer_id. */
typedef struct EsOpenTransfer
{
	char		key[ES_MAX_NAME_CHARS * MAX_MULTIBYTE_CHAR_LEN + 1];
	EsTransfer	t;
} EsOpenTransfer;

/* The state of one EsScanTransfers walk. */
typedef struct EsTransferWalk
{
	EsScanTransferCallback callback;
	EsScanProblemCallback problem;
	void	   *arg;
	MemoryContext acccxt;		/* the current account's open transfers */
	HTAB	   *open;
} EsTransferWalk;

/* Report an event the transfer fold refuses: to the caller, or ES012. */
static void
TransferProblem(EsTransferWalk *w, const EsEvent *ev, const char *why)
{
	if (w->problem)
		w->problem(ev, why, w->arg);
	else
		ereport(ERROR,
				(errcode(ERRCODE_ES_INTEGRITY),
				 errmsg("event %lld of account %lld cannot be folded into its transfer: %s",
						(long long) ev->seq, (long long) ev->account_id, why),
				 errdetail("The log contradicts itself: it was changed behind es_apply's back.")));
}

/*
 * Is the current row of an es_events walk one the transfer fold needs (an
 * account's opening, for its name, or a transfer event)?  Read from the
 * type column without decoding the row, so the walk decodes only those;
 * a row whose type is NULL is left to the caller's decoding (which skips
 * it).
 */
static bool
TransferWalkWants(EsScanIter *it)
{
	static const char *const wanted[] = {
		"AccountOpened", "TransferSent", "TransferReserved", "TransferPosted",
		"TransferVoided", "TransferExpired",
	};
	text	   *type;
	int			len;

	if (it->slot->tts_isnull[ES_EV_ATT_TYPE - 1])
		return true;
	type = DatumGetTextPP(it->slot->tts_values[ES_EV_ATT_TYPE - 1]);
	len = VARSIZE_ANY_EXHDR(type);
	for (int i = 0; i < lengthof(wanted); i++)
		if (len == strlen(wanted[i]) &&
			memcmp(VARDATA_ANY(type), wanted[i], len) == 0)
			return true;
	return false;
}

/* The end of an account's events: its transfers still pending are final. */
static void
TransferWalkFlush(EsTransferWalk *w)
{
	HASH_SEQ_STATUS status;
	EsOpenTransfer *o;

	if (w->open == NULL)
		return;
	hash_seq_init(&status, w->open);
	while ((o = hash_seq_search(&status)) != NULL)
		w->callback(&o->t, w->arg);
	w->open = NULL;
	MemoryContextReset(w->acccxt);
}

/*
 * Derive the transfers of the log: walk es_events_account_version_key (all
 * accounts, or the one account_id when one), folding each debit-side
 * transfer event into its transfer with EsFoldTransfer, and hand each
 * transfer to callback once it is final: an immediate one at once, a
 * pending one when it is posted, voided or expired, or at the end of its
 * account's events (still pending).  All of a transfer's folded events are
 * on its debit account, in version order, so one account's open transfers
 * are all the walk keeps.  as_of (NULL: none) stops each account at its
 * first event recorded after it, as es_accounts_at does.  An event the
 * transfer fold refuses goes to problem (NULL: ES012); rows that cannot be
 * decoded are skipped (the account fold reports them).  Returns the number
 * of events read.  The callback gets a transfer valid during the call.
 */
int64
EsScanTransfers(bool one, int64 account_id, const TimestampTz *as_of,
				Snapshot snapshot, EsScanTransferCallback callback,
				EsScanProblemCallback problem, void *arg)
{
	EsScanIter *it = EsScanBegin(ES_REL_EVENTS, ES_REL_EVENTS_VERSION_IDX,
								 one, account_id, snapshot);
	EsTransferWalk w;
	int64		current = 0;
	bool		have_current = false;
	bool		stopped = false;
	char	   *name = NULL;
	int64		events = 0;

	w.callback = callback;
	w.problem = problem;
	w.arg = arg;
	w.open = NULL;
	w.acccxt = AllocSetContextCreate(CurrentMemoryContext,
									 "es_ledger transfers of an account",
									 ALLOCSET_DEFAULT_SIZES);
	while (EsScanNext(it))
	{
		EsEvent		ev;
		bool		debit;
		MemoryContext old;

		events++;
		if (!TransferWalkWants(it) || EsScanDecodeEvent(it, &ev) != NULL)
			continue;
		if (!have_current || ev.account_id != current)
		{
			TransferWalkFlush(&w);
			current = ev.account_id;
			have_current = true;
			stopped = false;
			name = NULL;
		}
		if (stopped || (as_of && ev.recorded_at > *as_of))
		{
			stopped = true;
			continue;
		}
		if (ev.type == ES_EV_ACCOUNT_OPENED)
		{
			JsonbValue *v = getKeyJsonValueFromContainer(&ev.data->root,
														 "account", 7, NULL);

			if (v && v->type == jbvString)
				name = MemoryContextStrdup(w.acccxt,
										   pnstrdup(v->val.string.val,
													v->val.string.len));
			continue;
		}
		if (!EsFoldEventIsTransfer(&ev, &debit) || !debit)
			continue;
		if (name == NULL)
		{
			TransferProblem(&w, &ev, "its account was never opened");
			continue;
		}
		if (ev.type == ES_EV_TRANSFER_SENT || ev.type == ES_EV_TRANSFER_RESERVED)
		{
			EsTransfer	t;
			const char *why;

			memset(&t, 0, sizeof(t));
			if ((why = EsFoldTransferProblem(&t, &ev)) != NULL)
			{
				TransferProblem(&w, &ev, why);
				continue;
			}
			if (ev.type == ES_EV_TRANSFER_SENT)
			{
				/* Final at once; allocated in the row's context. */
				old = MemoryContextSwitchTo(it->rowcxt);
				EsFoldTransfer(&t, &ev, name);
				MemoryContextSwitchTo(old);
				callback(&t, arg);
			}
			else
			{
				EsOpenTransfer *o;
				char	   *id = EsFoldEventTransferId(&ev);
				bool		found;

				if (w.open == NULL)
				{
					HASHCTL		ctl;

					ctl.keysize = sizeof(o->key);
					ctl.entrysize = sizeof(EsOpenTransfer);
					ctl.hcxt = w.acccxt;
					w.open = hash_create("es_ledger open transfers", 16, &ctl,
										 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
				}
				if (strlen(id) >= sizeof(o->key))
				{
					TransferProblem(&w, &ev, "its transfer_id is too long");
					continue;
				}
				o = hash_search(w.open, id, HASH_ENTER, &found);
				if (found)
				{
					TransferProblem(&w, &ev, "a transfer is created by one event");
					continue;
				}
				old = MemoryContextSwitchTo(w.acccxt);
				memset(&o->t, 0, sizeof(o->t));
				EsFoldTransfer(&o->t, &ev, name);
				MemoryContextSwitchTo(old);
			}
		}
		else
		{
			char	   *id = EsFoldEventTransferId(&ev);
			EsOpenTransfer *o = NULL;
			const char *why;

			if (id && w.open && strlen(id) < sizeof(o->key))
				o = hash_search(w.open, id, HASH_FIND, NULL);
			if (o == NULL)
			{
				TransferProblem(&w, &ev, "it finishes no pending transfer of its account");
				continue;
			}
			if ((why = EsFoldTransferProblem(&o->t, &ev)) != NULL)
			{
				TransferProblem(&w, &ev, why);
				continue;
			}
			old = MemoryContextSwitchTo(w.acccxt);
			EsFoldTransfer(&o->t, &ev, name);
			MemoryContextSwitchTo(old);
			callback(&o->t, arg);
			hash_search(w.open, id, HASH_REMOVE, NULL);
		}
	}
	TransferWalkFlush(&w);
	EsScanEnd(it);
	MemoryContextDelete(w.acccxt);
	return events;
}
