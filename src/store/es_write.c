/*-------------------------------------------------------------------------
 *
 * es_write.c
 *	  The write side of storage: the writer of an es_apply call, appending
 *	  events, locking, reading and writing account rows, and the
 *	  idempotency register, at executor level (es_transfers' rows:
 *	  es_transfer_write.c).
 *
 * es_apply spends its time here, so this file talks to tables the way the
 * logical replication apply worker does rather than through SPI: one EState
 * per es_apply call with a ResultRelInfo per table and its indexes open,
 * unique-index probes with index_beginscan, row locks with
 * table_tuple_lock, and ExecSimpleRelationInsert / ExecSimpleRelationUpdate
 * for the writes (constraints, index entries, row triggers); an account
 * row's update follows ExecSimpleRelationUpdate's steps itself
 * (UpdateAccountRow), to leave out a unique check it does not need.  No statement
 * is planned or parsed on the hot path.  Tables are found by OID and rows
 * built by the row codec (es_row.c); no table privilege is checked: EXECUTE
 * on es_apply is the gate.
 *
 * Locks.  EsWriteLockAccounts locks the es_accounts rows of the accounts a
 * command names with LockTupleExclusive (what FOR UPDATE takes), in
 * ascending account_id order, following the update chain to the latest
 * version: a command always validates against the latest committed state,
 * whatever the isolation level.  Those row locks serialise commands on one
 * account.  Probes use a fresh snapshot (GetLatestSnapshot) so they see
 * what committed while we waited for a lock.  Accounts this transaction
 * already locked come from the account cache (es_cache.c).
 *
 * Unique names and ids.  A new account's row and an idempotency key's
 * register row are inserted the way INSERT ... ON CONFLICT DO NOTHING does
 * (InsertUnique): a pre-check of the unique index that waits for any
 * transaction inserting the same key, then a speculative insertion that is
 * undone if a concurrent one got there first.  So concurrent opens of one
 * name, or uses of one id, queue behind each other without advisory locks
 * (which any role could take to block them) and without one lock-table
 * entry per key; the loser learns that the key is taken and es_apply.c
 * answers ES004, or the idempotent result / ES008.
 *
 * Sequences.  seq and account ids are drawn by es_heal.c, which heals a
 * sequence set back (HealKey).
 *
 * es_transfers.  Opened on first use (EsWriteOpenTransfers), like
 * es_commands, with the posted-row fast path's relations
 * (EsWriteTransferFastPath); its rows are read and written by
 * es_transfer_write.c through this writer (EsWriteCurrent; the struct is
 * in store.h).  EsWriteTryLockAccount locks an account row without
 * waiting, for the other account of a reservation being expired.
 *
 * Command ids.  EsWriteNextCommand does CommandCounterIncrement before each
 * command, as SPI does before each statement, so a command sees and may
 * update the rows written by the previous one, even within one SQL
 * statement that calls es_apply many times.
 *
 * Notification.  Each appended event is noted for the commit's NOTIFY
 * es_events (es_notify.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "catalog/pg_subscription.h"
#include "commands/async.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/xid8.h"

#include "store.h"


static EsWriter *Writer = NULL;

/*
 * Transaction end: any writer is gone with the transaction.
 */
static void
EsWriteXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			Writer = NULL;
			break;
		default:
			break;
	}
}

/*
 * A subtransaction rolled back: writers begun in it (or later) are gone.
 */
static void
EsWriteSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	while (Writer != NULL && Writer->subid >= mySubid)
		Writer = Writer->prev;
}

/*
 * Install the callbacks and define the notification GUCs (EsNotifyInit);
 * called once from _PG_init, before EsCommandInit reserves the prefix.
 */
void
EsWriteInit(void)
{
	EsNotifyInit();
	RegisterXactCallback(EsWriteXactCallback, NULL);
	RegisterSubXactCallback(EsWriteSubXactCallback, NULL);
}

/*
 * IndexInfo per index of our tables, built once per backend.  Every
 * es_apply call opens the indexes of the tables it writes; building their
 * IndexInfo each time (ExecOpenIndices: BuildIndexInfo copies the
 * expressions and predicates of es_events' partial and expression indexes
 * out of the relcache, BuildSpeculativeIndexInfo looks up operators) is a
 * few percent of a command.  Entries live in IndexInfoCxt and are all
 * dropped on any relcache invalidation of a cached index or of any
 * relation at all (IndexInfoRelcacheCallback), so a changed index
 * definition is rebuilt; the index list itself is read from the relcache
 * on every call.  Callers get a shallow copy with the per-query parts
 * (expression states, AM cache, memory context) reset, except the
 * expression states of es_events' own partial indexes, prepared once.
 */
#define ES_INDEXINFO_CACHE 32
typedef struct EsIndexInfoEntry
{
	Oid			indexoid;
	bool		speculative;	/* with BuildSpeculativeIndexInfo */
	bool		prepared;		/* info's expression states are shared */
	IndexInfo  *info;
} EsIndexInfoEntry;

static MemoryContext IndexInfoCxt = NULL;
static MemoryContext IndexInfoRetired = NULL;	/* old IndexInfoCxts */
static EsIndexInfoEntry IndexInfoCache[ES_INDEXINFO_CACHE];
static int	IndexInfoCount = 0;

/*
 * Forget every cached IndexInfo when a cached index (or everything)
 * changes.  This may run in the middle of an es_apply call (on any lock
 * taken), whose IndexInfo copies still point into the cache, so the old
 * context is only set aside (under IndexInfoRetired) and deleted by the
 * next outermost EsWriteBegin (RetireIndexInfos).
 */
static void
IndexInfoRelcacheCallback(Datum arg, Oid relid)
{
	bool		hit = !OidIsValid(relid);

	for (int i = 0; i < IndexInfoCount && !hit; i++)
		hit = IndexInfoCache[i].indexoid == relid;
	if (hit && IndexInfoCount > 0)
	{
		IndexInfoCount = 0;
		MemoryContextSetParent(IndexInfoCxt, IndexInfoRetired);
		IndexInfoCxt = NULL;
	}
}

/* Delete the cache contexts set aside; only when no es_apply call is open. */
static void
RetireIndexInfos(void)
{
	if (IndexInfoRetired != NULL && Writer == NULL)
		MemoryContextDeleteChildren(IndexInfoRetired);
}

/* A fresh IndexInfo of an open index, from the cache where possible. */
static IndexInfo *
CachedIndexInfo(Relation index, bool speculative)
{
	Oid			indexoid = RelationGetRelid(index);
	EsIndexInfoEntry *e = NULL;
	IndexInfo  *ii;

	for (int i = 0; i < IndexInfoCount; i++)
		if (IndexInfoCache[i].indexoid == indexoid &&
			IndexInfoCache[i].speculative == speculative)
		{
			e = &IndexInfoCache[i];
			break;
		}
	if (e == NULL)
	{
		MemoryContext old;

		if (IndexInfoRetired == NULL)
		{
			IndexInfoRetired = AllocSetContextCreate(CacheMemoryContext,
													 "es_ledger retired IndexInfo caches",
													 ALLOCSET_SMALL_SIZES);
			CacheRegisterRelcacheCallback(IndexInfoRelcacheCallback, (Datum) 0);
		}
		if (IndexInfoCount == ES_INDEXINFO_CACHE && IndexInfoCxt != NULL)
		{
			IndexInfoCount = 0;
			MemoryContextSetParent(IndexInfoCxt, IndexInfoRetired);
			IndexInfoCxt = NULL;
		}
		if (IndexInfoCxt == NULL)
			IndexInfoCxt = AllocSetContextCreate(CacheMemoryContext,
												 "es_ledger IndexInfo cache",
												 ALLOCSET_SMALL_SIZES);
		old = MemoryContextSwitchTo(IndexInfoCxt);
		ii = BuildIndexInfo(index);
		if (speculative && ii->ii_Unique)
			BuildSpeculativeIndexInfo(index, ii);
		e = &IndexInfoCache[IndexInfoCount];
		e->prepared = false;
		if (indexoid == EsRowRelid(ES_REL_EVENTS_OPENED_IDX) ||
			indexoid == EsRowRelid(ES_REL_EVENTS_COMMAND_ID_IDX))
		{
			/*
			 * Our own partial indexes of es_events: their predicate and
			 * expression call built-in functions only (text =, jsonb ->>, IS
			 * NOT NULL), which keep nothing between calls and never reach
			 * es_apply again, so their states are prepared once
			 * (ExecPrepareQual / ExecPrepareExpr do the same per EState) and
			 * shared by every call: no JIT (no parent plan), evaluated in the
			 * caller's per-tuple context.
			 */
			ListCell   *lc;

			if (ii->ii_Predicate != NIL)
				ii->ii_PredicateState =
					ExecInitQual((List *) expression_planner((Expr *) ii->ii_Predicate),
								 NULL);
			foreach(lc, ii->ii_Expressions)
				ii->ii_ExpressionsState =
				lappend(ii->ii_ExpressionsState,
						ExecInitExpr(expression_planner((Expr *) lfirst(lc)),
									 NULL));
			e->prepared = true;
		}
		MemoryContextSwitchTo(old);
		IndexInfoCount++;
		e->indexoid = indexoid;
		e->speculative = speculative;
		e->info = ii;
	}
	ii = makeNode(IndexInfo);
	memcpy(ii, e->info, sizeof(IndexInfo));
	if (!e->prepared)
	{
		ii->ii_ExpressionsState = NIL;
		ii->ii_PredicateState = NULL;
	}
	ii->ii_AmCache = NULL;
	ii->ii_Context = CurrentMemoryContext;
	return ii;
}

/*
 * ExecOpenIndices with the IndexInfo cache: open the indexes of rri's
 * relation (RowExclusiveLock, closed by ExecCloseIndices) and give each its
 * IndexInfo, with the speculative-insertion fields for unique ones when
 * speculative.
 */
static void
OpenIndices(ResultRelInfo *rri, bool speculative)
{
	Relation	rel = rri->ri_RelationDesc;
	List	   *oids;
	ListCell   *lc;
	int			i = 0;

	rri->ri_NumIndices = 0;
	if (!RelationGetForm(rel)->relhasindex)
		return;
	oids = RelationGetIndexList(rel);
	if (oids == NIL)
		return;
	rri->ri_IndexRelationDescs = palloc(list_length(oids) * sizeof(Relation));
	rri->ri_IndexRelationInfo = palloc(list_length(oids) * sizeof(IndexInfo *));
	foreach(lc, oids)
	{
		Relation	index = index_open(lfirst_oid(lc), RowExclusiveLock);

		rri->ri_IndexRelationDescs[i] = index;
		rri->ri_IndexRelationInfo[i] = CachedIndexInfo(index, speculative);
		i++;
	}
	rri->ri_NumIndices = i;
	list_free(oids);
}

/* Open a table of ours as a result relation with its indexes. */
static ResultRelInfo *
OpenResultRel(EState *estate, EsRel which, Index rti)
{
	Relation	rel = EsRowOpenTable(which, RowExclusiveLock);
	ResultRelInfo *rri = makeNode(ResultRelInfo);

	InitResultRelInfo(rri, rel, rti, NULL, 0);
	/* Speculative: InsertUnique checks unique indexes before inserting. */
	OpenIndices(rri, which != ES_REL_EVENTS);
	/* So that AFTER triggers find it, and ExecCloseResultRelations closes it. */
	estate->es_opened_result_relations =
		lappend(estate->es_opened_result_relations, rri);
	return rri;
}

/* The range table entry of a table written by es_apply. */
static RangeTblEntry *
MakeRte(EsRel which)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);

	rte->rtekind = RTE_RELATION;
	rte->relid = EsRowRelid(which);
	rte->relkind = RELKIND_RELATION;
	rte->rellockmode = RowExclusiveLock;
	return rte;
}

/*
 * Refuse to write on a logical subscriber of the ledger: its log is the
 * publisher's, appended by the subscription's apply worker only; an event
 * written here would fork it (the next replicated row would then collide
 * on its seq and stop the subscription).  25006, as on a standby: send the
 * command to the publisher.  The answer is cached per backend and looked
 * up again after any change of pg_subscription_rel (a syscache callback).
 */
static Oid	SubscribedRelid = InvalidOid;	/* es_events when last looked */
static Oid	SubscribedSubid = InvalidOid;	/* its subscription, or none */
static bool SubscribedCallback = false;

/* pg_subscription_rel changed (any backend): look again next time. */
static void
SubscribedInvalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	SubscribedRelid = InvalidOid;
}

static void
RefuseOnSubscriber(void)
{
	Oid			relid = EsRowRelid(ES_REL_EVENTS);
	Oid			subid;

	/* Cached per backend until pg_subscription_rel changes. */
	if (!SubscribedCallback)
	{
		CacheRegisterSyscacheCallback(SUBSCRIPTIONRELMAP, SubscribedInvalidate,
									  (Datum) 0);
		SubscribedCallback = true;
	}
	if (relid != SubscribedRelid)
	{
		SubscribedSubid = EsCatalogSubscriptionOf(relid);
		SubscribedRelid = relid;
	}
	subid = SubscribedSubid;

	if (OidIsValid(subid))
	{
		char	   *name = get_subscription_name(subid, true);

		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot write to the ledger of a logical subscriber"),
				 errdetail("es_events is replicated here by subscription \"%s\"; its events come from the publisher only.",
						   name ? name : "?"),
				 errhint("Send commands to the publisher.")));
	}
}

/*
 * Open the tables for one es_apply call.  The caller holds the write guard
 * and calls EsWriteEnd when done (not on error: the transaction's abort
 * releases everything).
 */
void
EsWriteBegin(void)
{
	EState	   *estate;
	EsWriter   *w;
	List	   *rtable = NIL;
	MemoryContext old;

	/* What the executor checks for INSERT and UPDATE statements. */
	PreventCommandIfReadOnly("es_apply()");
	PreventCommandIfParallelMode("es_apply()");
	RefuseOnSubscriber();
	RetireIndexInfos();

	estate = CreateExecutorState();
	old = MemoryContextSwitchTo(estate->es_query_cxt);
	w = palloc0(sizeof(EsWriter));
	w->estate = estate;
	rtable = lappend(rtable, MakeRte(ES_REL_EVENTS));
	rtable = lappend(rtable, MakeRte(ES_REL_ACCOUNTS));
	rtable = lappend(rtable, MakeRte(ES_REL_COMMANDS));
	if (EsRowHasTransfers())
		rtable = lappend(rtable, MakeRte(ES_REL_TRANSFERS));
	ExecInitRangeTable(estate, rtable);
	w->events = OpenResultRel(estate, ES_REL_EVENTS, 1);
	w->accounts = OpenResultRel(estate, ES_REL_ACCOUNTS, 2);
	w->account_idx = index_open(EsRowRelid(ES_REL_ACCOUNTS_NAME_IDX),
								RowExclusiveLock);
	w->acc_slot = table_slot_create(w->accounts->ri_RelationDesc,
									&estate->es_tupleTable);
	w->acc_new = ExecInitExtraTupleSlot(estate,
										RelationGetDescr(w->accounts->ri_RelationDesc),
										&TTSOpsVirtual);
	w->ev_new = ExecInitExtraTupleSlot(estate,
									   RelationGetDescr(w->events->ri_RelationDesc),
									   &TTSOpsVirtual);
	estate->es_snapshot = GetActiveSnapshot();
	EvalPlanQualInit(&w->epqstate, estate, NULL, NIL, -1);
	MemoryContextSwitchTo(old);
	AfterTriggerBeginQuery();
	w->subid = GetCurrentSubTransactionId();
	w->prev = Writer;
	Writer = w;
}

/*
 * Close what EsWriteBegin opened; locks stay until the transaction ends.
 * Queued AFTER row triggers fire here, so callers call this once the write
 * guard is closed again.
 */
void
EsWriteEnd(void)
{
	EsWriter   *w = Writer;

	if (w == NULL)
		return;
	AfterTriggerEndQuery(w->estate);
	EvalPlanQualEnd(&w->epqstate);
	ExecResetTupleTable(w->estate->es_tupleTable, false);
	/* Indexes of our result relations, and relations triggers opened. */
	ExecCloseResultRelations(w->estate);
	index_close(w->account_idx, NoLock);
	table_close(w->events->ri_RelationDesc, NoLock);
	table_close(w->accounts->ri_RelationDesc, NoLock);
	if (w->commands)
	{
		index_close(w->command_idx, NoLock);
		table_close(w->commands->ri_RelationDesc, NoLock);
	}
	if (w->transfers)
		table_close(w->transfers->ri_RelationDesc, NoLock);
	if (w->tr_pkey)
		index_close(w->tr_pkey, NoLock);
	if (w->tr_rel)
		table_close(w->tr_rel, NoLock);
	Writer = w->prev;
	FreeExecutorState(w->estate);
}

/*
 * Start the next command: make what earlier commands wrote visible to it
 * and give its writes a new command id.
 */
void
EsWriteNextCommand(void)
{
	CommandCounterIncrement();
	ResetPerTupleExprContext(Writer->estate);
}

/*
 * The writer of the current es_apply call (the innermost, if nested), for
 * the writes of es_transfers (es_transfer_write.c); NULL outside one.
 */
EsWriter *
EsWriteCurrent(void)
{
	return Writer;
}

/* Probe a unique text index with a fresh snapshot (EsScanProbeText). */
static bool
ProbeText(Relation rel, Relation idx, const char *key, TupleTableSlot *slot)
{
	return EsScanProbeText(rel, idx, key, GetLatestSnapshot(), slot);
}

/* The id of the account named, without locking it.  False if none. */
bool
EsWriteLookupAccountId(const char *account, int64 *account_id)
{
	Relation	accounts = Writer->accounts->ri_RelationDesc;
	const EsAccountState *cached = EsCacheLookup(accounts, account, NULL);

	if (cached)
	{
		*account_id = cached->account_id;
		return true;
	}
	if (!ProbeText(accounts, Writer->account_idx, account, Writer->acc_slot))
		return false;
	*account_id = EsRowSlotInt64(Writer->acc_slot, ES_ACC_ATT_ACCOUNT_ID);
	ExecClearTuple(Writer->acc_slot);
	return true;
}

/* Read an es_accounts row into a state, through the codec. */
static void
SlotToState(TupleTableSlot *slot, EsAccountState *state)
{
	slot_getallattrs(slot);
	EsRowStateFromValues(slot->tts_values, slot->tts_isnull, state);
}

/* An account not yet locked by this transaction, while we lock it. */
typedef struct EsToLock
{
	int64		account_id;
	ItemPointerData tid;
	int			index;			/* into the caller's names */
} EsToLock;

/* Order EsToLock by account_id. */
static int
CompareToLock(const void *a, const void *b)
{
	int64		x = ((const EsToLock *) a)->account_id;
	int64		y = ((const EsToLock *) b)->account_id;

	return (x > y) - (x < y);
}

/*
 * Lock one es_accounts row, following updates; the latest version in slot.
 * With nowait, false instead of waiting for another transaction's lock.
 */
static bool
LockRowWait(ItemPointer tid, TupleTableSlot *slot, bool nowait)
{
	TM_FailureData tmfd;
	TM_Result	res;

	res = table_tuple_lock(Writer->accounts->ri_RelationDesc, tid,
						   GetLatestSnapshot(), slot,
						   GetCurrentCommandId(false), LockTupleExclusive,
						   nowait ? LockWaitSkip : LockWaitBlock,
						   TUPLE_LOCK_FLAG_FIND_LAST_VERSION, &tmfd);
	switch (res)
	{
		case TM_Ok:
			break;
		case TM_WouldBlock:
			return false;
		case TM_Deleted:
			elog(ERROR, "es_accounts row (%u,%u) was deleted",
				 ItemPointerGetBlockNumber(tid), ItemPointerGetOffsetNumber(tid));
			break;
		case TM_SelfModified:
		case TM_Invisible:
			elog(ERROR, "es_accounts row (%u,%u) was changed by this command",
				 ItemPointerGetBlockNumber(tid), ItemPointerGetOffsetNumber(tid));
			break;
		default:
			elog(ERROR, "could not lock es_accounts row (%u,%u): result %d",
				 ItemPointerGetBlockNumber(tid), ItemPointerGetOffsetNumber(tid),
				 (int) res);
	}
	return true;
}

/* Lock one es_accounts row, waiting if need be (LockRowWait). */
static void
LockRow(ItemPointer tid, TupleTableSlot *slot)
{
	LockRowWait(tid, slot, false);
}

/*
 * Lock the es_accounts rows of the accounts named, in ascending account_id
 * order, and read their latest states.  states[i] receives names[i]'s
 * state and found[i] whether it exists; names may repeat.  Accounts this
 * transaction already holds come from the account cache.
 */
void
EsWriteLockAccounts(const char *const *names, int n, EsAccountState *states,
					bool *found)
{
	Relation	accounts = Writer->accounts->ri_RelationDesc;
	EsToLock   *todo = palloc(sizeof(EsToLock) * n);
	int			ntodo = 0;

	for (int i = 0; i < n; i++)
	{
		const EsAccountState *cached = EsCacheLookup(accounts, names[i], NULL);

		CHECK_FOR_INTERRUPTS();
		found[i] = cached != NULL;
		if (cached)
			states[i] = *cached;
		else if (ProbeText(accounts, Writer->account_idx, names[i],
						   Writer->acc_slot))
		{
			todo[ntodo].account_id = EsRowSlotInt64(Writer->acc_slot,
													ES_ACC_ATT_ACCOUNT_ID);
			todo[ntodo].tid = Writer->acc_slot->tts_tid;
			todo[ntodo].index = i;
			ntodo++;
		}
	}
	qsort(todo, ntodo, sizeof(EsToLock), CompareToLock);
	for (int t = 0; t < ntodo; t++)
	{
		int			i = todo[t].index;
		const EsAccountState *cached = EsCacheLookup(accounts, names[i], NULL);

		CHECK_FOR_INTERRUPTS();
		if (cached == NULL)		/* not a repeat of one locked just now */
		{
			LockRow(&todo[t].tid, Writer->acc_slot);
			SlotToState(Writer->acc_slot, &states[i]);
			EsCacheStore(accounts, &states[i], &Writer->acc_slot->tts_tid);
			cached = EsCacheLookup(accounts, names[i], NULL);
		}
		states[i] = *cached;
		found[i] = true;
	}
	ExecClearTuple(Writer->acc_slot);
	pfree(todo);
}

/* Fill the virtual slot for es_accounts with a state. */
static void
StateToSlot(const EsAccountState *state, TupleTableSlot *slot)
{
	ExecClearTuple(slot);
	EsRowStateToValues(state, slot->tts_values, slot->tts_isnull);
	ExecStoreVirtualTuple(slot);
}

/*
 * Insert slot into a result relation unless its unique index idx already
 * holds the key, the way INSERT ... ON CONFLICT DO NOTHING does (see
 * ExecInsert): a pre-check that waits for any transaction inserting the
 * same key, then a speculative insertion that is killed and retried if a
 * concurrent inserter got there first.  Row triggers and constraints run as
 * for ExecSimpleRelationInsert.  False if a committed (or our own) row
 * with the key exists; nothing is inserted then.
 */
static bool
InsertUnique(ResultRelInfo *rri, TupleTableSlot *slot, EsRel idx)
{
	EState	   *estate = Writer->estate;
	Relation	rel = rri->ri_RelationDesc;
	List	   *arbiters = list_make1_oid(EsRowRelid(idx));
	List	   *recheck = NIL;

	if (rri->ri_TrigDesc && rri->ri_TrigDesc->trig_insert_before_row &&
		!ExecBRInsertTriggers(estate, rri, slot))
		return true;			/* a trigger skipped it */
	if (rel->rd_att->constr)
		ExecConstraints(rri, slot, estate);

	for (;;)
	{
		ItemPointerData conflict;
		bool		specConflict = false;
		uint32		token;

		CHECK_FOR_INTERRUPTS();
		if (!ExecCheckIndexConstraints(rri, slot, estate, &conflict, arbiters))
			return false;
		token = SpeculativeInsertionLockAcquire(GetCurrentTransactionId());
		table_tuple_insert_speculative(rel, slot, GetCurrentCommandId(true), 0,
									   NULL, token);
		recheck = ExecInsertIndexTuples(rri, slot, estate, false, true,
										&specConflict, arbiters);
		table_tuple_complete_speculative(rel, slot, token, !specConflict);
		SpeculativeInsertionLockRelease(GetCurrentTransactionId());
		if (!specConflict)
			break;
		list_free(recheck);
	}
	ExecARInsertTriggers(estate, rri, slot, recheck, NULL);
	list_free(recheck);
	return true;
}

/*
 * Insert a new account's projection row, unless its name is taken: false
 * then, after waiting for a concurrent open of the name to finish.
 */
bool
EsWriteInsertAccount(const EsAccountState *state)
{
	StateToSlot(state, Writer->acc_new);
	if (!InsertUnique(Writer->accounts, Writer->acc_new,
					  ES_REL_ACCOUNTS_NAME_IDX))
		return false;
	EsCacheStore(Writer->accounts->ri_RelationDesc, state,
				 &Writer->acc_new->tts_tid);
	return true;
}

/*
 * Can UpdateAccountRow insert the index entries of a new row version
 * itself?  Only for plain btree-like indexes of columns (no expression, no
 * predicate, no exclusion constraint): the extension's own indexes of
 * es_accounts, and any such index a user added.  Otherwise the executor's
 * ExecInsertIndexTuples does it.
 */
static bool
PlainIndexes(ResultRelInfo *rri)
{
	for (int i = 0; i < rri->ri_NumIndices; i++)
	{
		IndexInfo  *ii = rri->ri_IndexRelationInfo[i];

		if (ii->ii_Expressions != NIL || ii->ii_Predicate != NIL ||
			ii->ii_ExclusionOps != NULL)
			return false;
	}
	return true;
}

/*
 * ExecSimpleRelationUpdate for an es_accounts row (PostgreSQL 15's steps:
 * replica identity, BEFORE ROW triggers (the write guard's), constraints,
 * the heap update, index entries, AFTER ROW triggers), except that the
 * index entries of a version that is not HOT are inserted without the
 * unique check.  The check is redundant here: an account's row never
 * changes account_id or name (StateToSlot writes the ones it was read
 * with), and this transaction holds the row's lock, so the new entries
 * name the same key as the old version's, of the same row.  And it is what
 * makes a transaction that updates one account many times quadratic: every
 * non-HOT version's unique insertion visits every earlier version of the
 * key this transaction left, none of them prunable before it ends.
 * Another transaction's insert of the same key (an open_account racing for
 * the name) still checks against these entries, as before.
 */
static void
UpdateAccountRow(ResultRelInfo *rri, EState *estate, EPQState *epqstate,
				 ItemPointer tid, TupleTableSlot *slot)
{
	Relation	rel = rri->ri_RelationDesc;
	List	   *recheck = NIL;
	bool		update_indexes;

	CheckCmdReplicaIdentity(rel, CMD_UPDATE);
	if (rri->ri_TrigDesc && rri->ri_TrigDesc->trig_update_before_row &&
		!ExecBRUpdateTriggers(estate, epqstate, rri, tid, NULL, slot, NULL))
		return;					/* a trigger said "do nothing" */
	if (rel->rd_att->constr && rel->rd_att->constr->has_generated_stored)
		ExecComputeStoredGenerated(rri, estate, slot, CMD_UPDATE);
	if (rel->rd_att->constr)
		ExecConstraints(rri, slot, estate);
	simple_table_tuple_update(rel, tid, slot, estate->es_snapshot,
							  &update_indexes);
	if (update_indexes && rri->ri_NumIndices > 0)
	{
		if (!PlainIndexes(rri))
			recheck = ExecInsertIndexTuples(rri, slot, estate, true, false,
											NULL, NIL);
		else
		{
			Datum		values[INDEX_MAX_KEYS];
			bool		isnull[INDEX_MAX_KEYS];

			for (int i = 0; i < rri->ri_NumIndices; i++)
			{
				IndexInfo  *ii = rri->ri_IndexRelationInfo[i];

				if (!ii->ii_ReadyForInserts)
					continue;
				FormIndexDatum(ii, slot, estate, values, isnull);
				/* indexUnchanged: the keys are the old version's */
				(void) index_insert(rri->ri_IndexRelationDescs[i], values,
									isnull, &slot->tts_tid, rel,
									UNIQUE_CHECK_NO, true, ii);
			}
		}
	}
	ExecARUpdateTriggers(estate, rri, NULL, NULL, tid, NULL, slot, recheck,
						 NULL, false);
	list_free(recheck);
}

/*
 * Write an account's projection row; it must be locked (cached).  A writer
 * that defers its updates (EsWriteDeferUpdates) only gives the cache the
 * new state; EsWriteFlushUpdates writes the row.
 */
void
EsWriteUpdateAccount(const EsAccountState *state)
{
	Relation	accounts = Writer->accounts->ri_RelationDesc;
	ItemPointerData tid;

	if (Writer->defer)
	{
		EsCacheStoreDeferred(accounts, state);
		return;
	}
	if (EsCacheLookup(accounts, state->account, &tid) == NULL)
		elog(ERROR, "account %lld was not locked before its update",
			 (long long) state->account_id);
	ExecClearTuple(Writer->acc_slot);
	Writer->acc_slot->tts_tid = tid;
	StateToSlot(state, Writer->acc_new);
	UpdateAccountRow(Writer->accounts, Writer->estate, &Writer->epqstate,
					 &Writer->acc_slot->tts_tid, Writer->acc_new);
	EsCacheStore(accounts, state, &Writer->acc_new->tts_tid);
}

/*
 * Delete the es_accounts row at tid, through the executor (row triggers,
 * the write guard's among them).  Only es_rebuild_projections does this,
 * under a ShareRowExclusiveLock on es_accounts that keeps every writer out;
 * the caller resets the account cache (EsCacheReset), whose entries could
 * point at the row.
 */
void
EsWriteDeleteAccount(ItemPointer tid)
{
	ExecClearTuple(Writer->acc_slot);
	Writer->acc_slot->tts_tid = *tid;
	ExecSimpleRelationDelete(Writer->accounts, Writer->estate,
							 &Writer->epqstate, Writer->acc_slot);
}

/* Append one sealed event to the log. */
void
EsWriteInsertEvent(const EsEvent *ev)
{
	TupleTableSlot *slot = Writer->ev_new;

	ExecClearTuple(slot);
	EsRowEventToValues(ev, slot->tts_values, slot->tts_isnull);
	ExecStoreVirtualTuple(slot);
	ExecSimpleRelationInsert(Writer->events, Writer->estate, slot);
	EsNotifyAppended(ev->seq);
}

/*
 * Open es_commands, on the first command with an id: most commands have
 * none, and es_apply should not pay for the register then.
 */
static void
OpenCommands(void)
{
	EsWriter   *w = Writer;
	MemoryContext old;

	if (w->commands)
		return;
	old = MemoryContextSwitchTo(w->estate->es_query_cxt);
	w->commands = OpenResultRel(w->estate, ES_REL_COMMANDS, 3);
	w->command_idx = index_open(EsRowRelid(ES_REL_COMMANDS_ID_IDX),
								RowExclusiveLock);
	w->cmd_slot = table_slot_create(w->commands->ri_RelationDesc,
									&w->estate->es_tupleTable);
	w->cmd_new = ExecInitExtraTupleSlot(w->estate,
										RelationGetDescr(w->commands->ri_RelationDesc),
										&TTSOpsVirtual);
	MemoryContextSwitchTo(old);
}

/*
 * Look up an applied command by its idempotency key, as a fresh snapshot
 * sees es_commands.  The command is copied into the current memory context.
 */
bool
EsWriteFindCommand(const char *id, Jsonb **command, int64 *seq)
{
	TupleTableSlot *slot;

	OpenCommands();
	slot = Writer->cmd_slot;
	if (!ProbeText(Writer->commands->ri_RelationDesc, Writer->command_idx, id,
				   slot))
		return false;
	slot_getallattrs(slot);
	EsRowCommandFromValues(slot->tts_values, slot->tts_isnull, command, seq);
	ExecClearTuple(slot);
	return true;
}

/*
 * Register a command under its idempotency key, unless the key is taken:
 * false then, after waiting for a concurrent command with the key to
 * finish (the caller looks the key up again for the answer).
 */
bool
EsWriteInsertCommand(const char *id, Jsonb *command, int64 seq)
{
	TupleTableSlot *slot;

	OpenCommands();
	slot = Writer->cmd_new;
	ExecClearTuple(slot);
	EsRowCommandToValues(id, command, seq, slot->tts_values, slot->tts_isnull);
	ExecStoreVirtualTuple(slot);
	return InsertUnique(Writer->commands, slot, ES_REL_COMMANDS_ID_IDX);
}

/*
 * Open now whatever the writer would open on first use (es_commands,
 * es_transfers and its fast path's relations), so
 * that a subtransaction run inside the writer (es_apply_each's) opens
 * nothing the writer keeps: resources taken in a subtransaction go when it
 * ends, and the writer would be left pointing at them.  A table opened on
 * first use later needs its line here.
 */
void
EsWriteOpenAll(void)
{
	OpenCommands();
	if (EsRowHasTransfers())
	{
		EsWriteOpenTransfers();
		(void) EsWriteTransferFastPath();
	}
}

/*
 * From now on, write each account's projection row once, at
 * EsWriteFlushUpdates, however many commands of the call change it
 * (es_apply_each).  Within one transaction the rows of an account updated
 * by every command pile up as versions no one can prune, and each update
 * that cannot stay on its page walks all of them in the unique indexes.
 * The account cache holds the newest states meanwhile, and commands read
 * them from there.  The caller flushes before the statement ends and
 * before any subtransaction starts (see es_cache.c).
 */
void
EsWriteDeferUpdates(void)
{
	Writer->defer = true;
}

/* Write the projection rows of the accounts whose updates were deferred. */
void
EsWriteFlushUpdates(void)
{
	Relation	accounts = Writer->accounts->ri_RelationDesc;
	EsAccountState *states;
	bool		defer = Writer->defer;
	int			n;

	states = EsCacheDeferred(accounts, &n);
	Writer->defer = false;
	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		EsWriteUpdateAccount(&states[i]);
	}
	Writer->defer = defer;
	if (states)
		pfree(states);
}

/*
 * Lock the es_accounts row of the account named unless another transaction
 * holds a lock on it (no wait), and read its latest state.  True if this
 * transaction now holds it (or held it already: from the cache); false if
 * it would have had to wait, or the account does not exist.  Used for the
 * counterparty of a reservation being expired, which may come in any
 * order relative to the locks already held, so waiting could deadlock.
 */
bool
EsWriteTryLockAccount(const char *name, EsAccountState *state)
{
	Relation	accounts = Writer->accounts->ri_RelationDesc;
	const EsAccountState *cached = EsCacheLookup(accounts, name, NULL);
	bool		locked;

	if (cached)
	{
		*state = *cached;
		return true;
	}
	if (!ProbeText(accounts, Writer->account_idx, name, Writer->acc_slot))
		return false;
	locked = LockRowWait(&Writer->acc_slot->tts_tid, Writer->acc_slot, true);
	if (locked)
	{
		SlotToState(Writer->acc_slot, state);
		EsCacheStore(accounts, state, &Writer->acc_slot->tts_tid);
		*state = *EsCacheLookup(accounts, name, NULL);
	}
	ExecClearTuple(Writer->acc_slot);
	return locked;
}

/* ------------------------------------------------------------ es_transfers */

/*
 * The rows of es_transfers are read and written by es_transfer_write.c,
 * through this writer: here only what opens its relations.
 */

/* Open es_transfers on first use, as OpenCommands opens es_commands. */
void
EsWriteOpenTransfers(void)
{
	EsWriter   *w = Writer;
	MemoryContext old;

	if (w->transfers)
		return;
	EsRowRequireTransfers();
	old = MemoryContextSwitchTo(w->estate->es_query_cxt);
	w->transfers = OpenResultRel(w->estate, ES_REL_TRANSFERS, 4);
	w->tr_slot = table_slot_create(w->transfers->ri_RelationDesc,
								   &w->estate->es_tupleTable);
	w->tr_new = ExecInitExtraTupleSlot(w->estate,
									   RelationGetDescr(w->transfers->ri_RelationDesc),
									   &TTSOpsVirtual);
	MemoryContextSwitchTo(old);
}

/*
 * May a posted transfer's row be inserted by the fast path?  Only if
 * es_transfers has no index but the extension's own (its primary key, and
 * the partial indexes on pending rows, which a posted row does not enter),
 * no row trigger and no CHECK constraint: then the executor's insert would
 * do nothing more than the heap insert and the primary key's entry.  Any
 * other index (a user may add plain ones), trigger or constraint sends
 * every insert through ExecSimpleRelationInsert.  Decided once per writer;
 * the relation stays locked (RowExclusiveLock) meanwhile, so its indexes
 * cannot change under it (CREATE INDEX needs ShareLock).
 */
bool
EsWriteTransferFastPath(void)
{
	EsWriter   *w = Writer;
	MemoryContext old;
	List	   *indexes;
	ListCell   *lc;
	bool		fast = true;

	if (w->tr_fast_checked)
		return w->tr_fast;
	EsRowRequireTransfers();
	old = MemoryContextSwitchTo(w->estate->es_query_cxt);
	w->tr_rel = EsRowOpenTable(ES_REL_TRANSFERS, RowExclusiveLock);
	if (w->tr_rel->trigdesc &&
		(w->tr_rel->trigdesc->trig_insert_before_row ||
		 w->tr_rel->trigdesc->trig_insert_after_row ||
		 w->tr_rel->trigdesc->trig_insert_instead_row))
		fast = false;
	if (w->tr_rel->rd_att->constr && w->tr_rel->rd_att->constr->num_check > 0)
		fast = false;
	indexes = RelationGetIndexList(w->tr_rel);
	foreach(lc, indexes)
	{
		Oid			idx = lfirst_oid(lc);

		if (idx != EsRowRelid(ES_REL_TRANSFERS_SEQ_IDX) &&
			idx != EsRowRelid(ES_REL_TRANSFERS_EXPIRES_IDX) &&
			idx != EsRowRelid(ES_REL_TRANSFERS_FROM_IDX) &&
			idx != EsRowRelid(ES_REL_TRANSFERS_TO_IDX))
			fast = false;
	}
	list_free(indexes);
	if (fast)
	{
		w->tr_pkey = index_open(EsRowRelid(ES_REL_TRANSFERS_SEQ_IDX),
								RowExclusiveLock);
		w->tr_pkey_info = CachedIndexInfo(w->tr_pkey, false);
		w->tr_fast_slot = ExecInitExtraTupleSlot(w->estate,
												 RelationGetDescr(w->tr_rel),
												 &TTSOpsVirtual);
	}
	MemoryContextSwitchTo(old);
	w->tr_fast = fast;
	w->tr_fast_checked = true;
	return fast;
}

/*
 * Insert one row into table rel through the executor (constraints, index
 * entries), in an executor state of its own: for rare writes outside
 * es_apply's tables, the snapshots of es_snap.c.  The caller holds the
 * write guard; RowExclusiveLock on rel is kept to the transaction's end.
 */
void
EsWriteInsertRow(EsRel rel, Datum *values, bool *isnull)
{
	EState	   *estate = CreateExecutorState();
	MemoryContext old = MemoryContextSwitchTo(estate->es_query_cxt);
	ResultRelInfo *rri;
	TupleTableSlot *slot;

	PreventCommandIfReadOnly("es_ledger snapshot");
	ExecInitRangeTable(estate, list_make1(MakeRte(rel)));
	rri = OpenResultRel(estate, rel, 1);
	estate->es_snapshot = GetActiveSnapshot();
	slot = ExecInitExtraTupleSlot(estate, RelationGetDescr(rri->ri_RelationDesc),
								  &TTSOpsVirtual);
	ExecClearTuple(slot);
	memcpy(slot->tts_values, values,
		   sizeof(Datum) * RelationGetDescr(rri->ri_RelationDesc)->natts);
	memcpy(slot->tts_isnull, isnull,
		   sizeof(bool) * RelationGetDescr(rri->ri_RelationDesc)->natts);
	ExecStoreVirtualTuple(slot);
	ExecSimpleRelationInsert(rri, estate, slot);
	ExecResetTupleTable(estate->es_tupleTable, false);
	ExecCloseResultRelations(estate);
	table_close(rri->ri_RelationDesc, NoLock);
	MemoryContextSwitchTo(old);
	FreeExecutorState(estate);
}
