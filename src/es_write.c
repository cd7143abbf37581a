/*-------------------------------------------------------------------------
 *
 * es_write.c
 *	  The write side of storage: appending events, locking, reading and
 *	  writing account rows, and the idempotency register, at executor level.
 *
 * es_apply spends its time here, so this file talks to tables the way the
 * logical replication apply worker does rather than through SPI: one EState
 * per es_apply call with a ResultRelInfo per table and its indexes open,
 * unique-index probes with index_beginscan, row locks with
 * table_tuple_lock, and ExecSimpleRelationInsert / ExecSimpleRelationUpdate
 * for the writes (constraints, index entries, row triggers).  No statement
 * is planned or parsed on the hot path.
 *
 * Locks.  EsStoreLockAccounts locks the es_accounts rows of the accounts a
 * command names with LockTupleExclusive (what FOR UPDATE takes), in
 * ascending account_id order, following the update chain to the latest
 * version: a command always validates against the latest committed state,
 * whatever the isolation level.  Those row locks serialise commands on one
 * account.  Probes use a fresh snapshot (GetLatestSnapshot) so they see
 * what committed while we waited for a lock.
 *
 * The account cache.  A row this transaction has locked stays locked until
 * the transaction ends, and only es_apply writes es_accounts, so the state
 * and tuple id of every account this transaction has locked or written are
 * kept in a hash table in TopTransactionContext.  The next command on that
 * account reads neither the index nor the heap: it updates the row by its
 * tuple id.  That keeps a transaction that touches one account thousands of
 * times linear (an index probe would walk every version it left behind).
 * The cache is dropped when the transaction ends and when any
 * subtransaction aborts (a rolled-back update would leave it stale).
 *
 * Command ids.  EsWriteNextCommand does CommandCounterIncrement before each
 * command, as SPI does before each statement, so a command sees and may
 * update the rows written by the previous one, even within one SQL
 * statement that calls es_apply many times.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/xid8.h"

#include "es_ledger.h"

/* Attribute numbers of es_accounts, as created by the install script. */
enum
{
	ACC_ACCOUNT_ID = 1, ACC_ACCOUNT, ACC_CURRENCY, ACC_STATUS, ACC_BALANCE,
	ACC_PENDING_OUT, ACC_PENDING_IN, ACC_AVAILABLE, ACC_OVERDRAFT_LIMIT,
	ACC_MAX_BALANCE, ACC_VERSION, ACC_LAST_SEQ, ACC_OPENED_AT, ACC_UPDATED_AT,
	ACC_LAST_HASH, ACC_NATTS = ACC_LAST_HASH
};

/* ... of es_events ... */
enum
{
	EV_SEQ = 1, EV_ACCOUNT_ID, EV_VERSION, EV_TYPE, EV_AMOUNT, EV_DATA,
	EV_COMMAND_ID, EV_RECORDED_AT, EV_EFFECTIVE_AT, EV_CHECKSUM, EV_HASH,
	EV_FORMAT, EV_TX, EV_NATTS = EV_TX
};

/* ... and of es_commands. */
enum
{
	CMD_COMMAND_ID = 1, CMD_COMMAND, CMD_SEQ, CMD_NATTS = CMD_SEQ
};

/* The tables of one es_apply call. */
typedef struct EsWriter
{
	EState	   *estate;
	ResultRelInfo *events;
	ResultRelInfo *accounts;
	ResultRelInfo *commands;
	Relation	account_idx;	/* unique index on es_accounts.account */
	Relation	command_idx;	/* primary key of es_commands */
	Oid			seq_oid;		/* es_events_seq_seq */
	Oid			account_seq_oid;	/* es_accounts_account_id_seq */
	TupleTableSlot *acc_slot;	/* heap slot for reading es_accounts */
	TupleTableSlot *acc_new;	/* virtual slot for writing es_accounts */
	TupleTableSlot *ev_new;		/* virtual slot for es_events */
	TupleTableSlot *cmd_slot;	/* heap slot for reading es_commands */
	TupleTableSlot *cmd_new;	/* virtual slot for es_commands */
	EPQState	epqstate;
	SubTransactionId subid;		/* the subtransaction that began it */
	struct EsWriter *prev;		/* the caller's, if es_apply is nested */
} EsWriter;

static EsWriter *Writer = NULL;

#define ES_NAME_BYTES (ES_MAX_NAME_CHARS * MAX_MULTIBYTE_CHAR_LEN + 1)

/* One account this transaction holds the row lock of. */
typedef struct EsCachedAccount
{
	char		name[ES_NAME_BYTES];	/* key; state.account points here */
	char		currency[ES_NAME_BYTES];	/* state.currency points here */
	ItemPointerData tid;		/* its current row version */
	SubTransactionId subid;		/* the subtransaction that last locked or
								 * wrote it */
	EsAccountState state;
} EsCachedAccount;

/*
 * The cache, and the es_accounts storage it describes: a new relation or
 * a new relfilenode (a rewrite, CLUSTER, TRUNCATE) makes every tuple id in
 * it meaningless.
 */
static HTAB *AccountCache = NULL;
static Oid	AccountCacheRelid = InvalidOid;
static Oid	AccountCacheFilenode = InvalidOid;

/* Forget the whole account cache. */
static void
ResetCache(bool destroy)
{
	if (destroy && AccountCache != NULL)
		hash_destroy(AccountCache);
	AccountCache = NULL;
	AccountCacheRelid = InvalidOid;
	AccountCacheFilenode = InvalidOid;
}

/*
 * Transaction end: the cache (in TopTransactionContext) and any writer are
 * gone with the transaction.
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
			ResetCache(false);
			Writer = NULL;
			break;
		default:
			break;
	}
}

/*
 * A subtransaction rolled back: the accounts it (or a subtransaction inside
 * it) locked or wrote are back as they were, and their locks taken there
 * are released; forget those.  Accounts the parent holds are unchanged.
 */
static void
EsWriteSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	if (AccountCache != NULL)
	{
		HASH_SEQ_STATUS status;
		EsCachedAccount *entry;

		hash_seq_init(&status, AccountCache);
		while ((entry = hash_seq_search(&status)) != NULL)
			if (entry->subid >= mySubid)
				hash_search(AccountCache, entry->name, HASH_REMOVE, NULL);
	}
	/* Writers begun in the aborted subtransaction (or later) are gone. */
	while (Writer != NULL && Writer->subid >= mySubid)
		Writer = Writer->prev;
}

/* Install the callbacks; called once from _PG_init. */
void
EsWriteInit(void)
{
	RegisterXactCallback(EsWriteXactCallback, NULL);
	RegisterSubXactCallback(EsWriteSubXactCallback, NULL);
}

/* Is the cache about the es_accounts storage the writer has open? */
static bool
CacheValid(void)
{
	Relation	rel = Writer->accounts->ri_RelationDesc;

	return AccountCache != NULL &&
		AccountCacheRelid == RelationGetRelid(rel) &&
		AccountCacheFilenode == rel->rd_node.relNode;
}

/* The cache entry of an account, or NULL. */
static EsCachedAccount *
CacheLookup(const char *name)
{
	if (!CacheValid())
		return NULL;
	return hash_search(AccountCache, name, HASH_FIND, NULL);
}

/* Remember an account's state and row version. */
static void
CacheStore(const EsAccountState *state, ItemPointer tid)
{
	EsCachedAccount *entry;

	if (!CacheValid())
	{
		Relation	rel = Writer->accounts->ri_RelationDesc;
		HASHCTL		ctl;

		ResetCache(true);
		ctl.keysize = ES_NAME_BYTES;
		ctl.entrysize = sizeof(EsCachedAccount);
		ctl.hcxt = TopTransactionContext;
		AccountCache = hash_create("es_ledger accounts", 64, &ctl,
								   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		AccountCacheRelid = RelationGetRelid(rel);
		AccountCacheFilenode = rel->rd_node.relNode;
	}
	if (strlen(state->account) >= ES_NAME_BYTES ||
		strlen(state->currency) >= ES_NAME_BYTES)
		elog(ERROR, "account name or currency too long to cache");
	entry = hash_search(AccountCache, state->account, HASH_ENTER, NULL);
	entry->state = *state;
	strlcpy(entry->currency, state->currency, ES_NAME_BYTES);
	entry->state.account = entry->name;
	entry->state.currency = entry->currency;
	entry->tid = *tid;
	entry->subid = GetCurrentSubTransactionId();
}

/* A relation of the extension, by name through the pinned search_path. */
static Oid
OurRelid(const char *name)
{
	Oid			relid = RelnameGetRelid(name);

	if (!OidIsValid(relid))
		elog(ERROR, "relation \"%s\" of es_ledger not found", name);
	return relid;
}

/* Open a table as a result relation with its indexes. */
static ResultRelInfo *
OpenResultRel(EState *estate, const char *name, Index rti, int natts)
{
	Relation	rel = table_open(OurRelid(name), RowExclusiveLock);
	ResultRelInfo *rri = makeNode(ResultRelInfo);

	if (RelationGetDescr(rel)->natts != natts)
		elog(ERROR, "table \"%s\" has %d columns, es_ledger expects %d",
			 name, RelationGetDescr(rel)->natts, natts);
	InitResultRelInfo(rri, rel, rti, NULL, 0);
	ExecOpenIndices(rri, false);
	/* So that AFTER triggers find it, and ExecCloseResultRelations closes it. */
	estate->es_opened_result_relations =
		lappend(estate->es_opened_result_relations, rri);
	return rri;
}

/* The range table entry of a table written by es_apply. */
static RangeTblEntry *
MakeRte(const char *name)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);

	rte->rtekind = RTE_RELATION;
	rte->relid = OurRelid(name);
	rte->relkind = RELKIND_RELATION;
	rte->rellockmode = RowExclusiveLock;
	return rte;
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

	estate = CreateExecutorState();
	old = MemoryContextSwitchTo(estate->es_query_cxt);
	w = palloc0(sizeof(EsWriter));
	w->estate = estate;
	rtable = lappend(rtable, MakeRte("es_events"));
	rtable = lappend(rtable, MakeRte("es_accounts"));
	rtable = lappend(rtable, MakeRte("es_commands"));
	ExecInitRangeTable(estate, rtable);
	w->events = OpenResultRel(estate, "es_events", 1, EV_NATTS);
	w->accounts = OpenResultRel(estate, "es_accounts", 2, ACC_NATTS);
	w->account_idx = index_open(OurRelid("es_accounts_account_key"),
								RowExclusiveLock);
	w->seq_oid = OurRelid("es_events_seq_seq");
	w->account_seq_oid = OurRelid("es_accounts_account_id_seq");
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

/* The next global position in the log. */
int64
EsStoreNextSeq(void)
{
	return nextval_internal(Writer->seq_oid, false);
}

/* A new account id. */
int64
EsStoreNextAccountId(void)
{
	return nextval_internal(Writer->account_seq_oid, false);
}

/*
 * Fetch into slot the row of rel whose unique single-text-column index idx
 * equals key, as a fresh snapshot sees it.  False if there is none.
 */
static bool
ProbeText(Relation rel, Relation idx, const char *key, TupleTableSlot *slot)
{
	ScanKeyData skey;
	IndexScanDesc scan;
	bool		found;

	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_TEXTEQ,
						   CStringGetTextDatum(key));
	scan = index_beginscan(rel, idx, GetLatestSnapshot(), 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	return found;
}

/* The id of the account named, without locking it.  False if none. */
bool
EsStoreLookupAccountId(const char *account, int64 *account_id)
{
	EsCachedAccount *entry = CacheLookup(account);
	bool		isnull;

	if (entry)
	{
		*account_id = entry->state.account_id;
		return true;
	}
	if (!ProbeText(Writer->accounts->ri_RelationDesc, Writer->account_idx,
				   account, Writer->acc_slot))
		return false;
	*account_id = DatumGetInt64(slot_getattr(Writer->acc_slot, ACC_ACCOUNT_ID,
											 &isnull));
	ExecClearTuple(Writer->acc_slot);
	return true;
}

/* A text attribute of a slot as a C string; NULL for SQL NULL. */
static char *
SlotText(TupleTableSlot *slot, int attno)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, attno, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* An int8 attribute of a slot; 0 and !*present for SQL NULL. */
static int64
SlotInt64(TupleTableSlot *slot, int attno, bool *present)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, attno, &isnull);

	if (present)
		*present = !isnull;
	return isnull ? 0 : DatumGetInt64(d);
}

/* Read an es_accounts row into a state. */
static void
SlotToState(TupleTableSlot *slot, EsAccountState *state)
{
	bool		isnull;
	Datum		d;

	EsStateInit(state, SlotInt64(slot, ACC_ACCOUNT_ID, NULL));
	state->account = SlotText(slot, ACC_ACCOUNT);
	state->currency = SlotText(slot, ACC_CURRENCY);
	state->status = EsStatusFromName(SlotText(slot, ACC_STATUS));
	state->balance = SlotInt64(slot, ACC_BALANCE, NULL);
	state->pending_out = SlotInt64(slot, ACC_PENDING_OUT, NULL);
	state->pending_in = SlotInt64(slot, ACC_PENDING_IN, NULL);
	state->available = SlotInt64(slot, ACC_AVAILABLE, NULL);
	state->overdraft_limit = SlotInt64(slot, ACC_OVERDRAFT_LIMIT, NULL);
	state->max_balance = SlotInt64(slot, ACC_MAX_BALANCE, &state->has_max_balance);
	state->version = SlotInt64(slot, ACC_VERSION, NULL);
	state->last_seq = SlotInt64(slot, ACC_LAST_SEQ, NULL);
	state->opened_at = DatumGetTimestampTz(slot_getattr(slot, ACC_OPENED_AT, &isnull));
	state->updated_at = DatumGetTimestampTz(slot_getattr(slot, ACC_UPDATED_AT, &isnull));
	d = slot_getattr(slot, ACC_LAST_HASH, &isnull);
	if (!isnull)
		EsHashFromDatum(d, state->last_hash);
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

/* Lock one es_accounts row, following updates; the latest version in slot. */
static void
LockRow(ItemPointer tid, TupleTableSlot *slot)
{
	TM_FailureData tmfd;
	TM_Result	res;

	res = table_tuple_lock(Writer->accounts->ri_RelationDesc, tid,
						   GetLatestSnapshot(), slot,
						   GetCurrentCommandId(false), LockTupleExclusive,
						   LockWaitBlock, TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
						   &tmfd);
	switch (res)
	{
		case TM_Ok:
			break;
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
}

/*
 * Lock the es_accounts rows of the accounts named, in ascending account_id
 * order, and read their latest states.  states[i] receives names[i]'s
 * state and found[i] whether it exists; names may repeat.  Accounts this
 * transaction already holds come from the account cache.
 */
void
EsStoreLockAccounts(const char *const *names, int n, EsAccountState *states,
					bool *found)
{
	EsToLock   *todo = palloc(sizeof(EsToLock) * n);
	int			ntodo = 0;
	bool		isnull;

	for (int i = 0; i < n; i++)
	{
		EsCachedAccount *entry = CacheLookup(names[i]);

		found[i] = entry != NULL;
		if (entry)
			states[i] = entry->state;
		else if (ProbeText(Writer->accounts->ri_RelationDesc,
						   Writer->account_idx, names[i], Writer->acc_slot))
		{
			todo[ntodo].account_id =
				DatumGetInt64(slot_getattr(Writer->acc_slot, ACC_ACCOUNT_ID, &isnull));
			todo[ntodo].tid = Writer->acc_slot->tts_tid;
			todo[ntodo].index = i;
			ntodo++;
		}
	}
	qsort(todo, ntodo, sizeof(EsToLock), CompareToLock);
	for (int t = 0; t < ntodo; t++)
	{
		int			i = todo[t].index;
		EsCachedAccount *entry = CacheLookup(names[i]);

		if (entry == NULL)		/* not a repeat of one locked just now */
		{
			LockRow(&todo[t].tid, Writer->acc_slot);
			SlotToState(Writer->acc_slot, &states[i]);
			CacheStore(&states[i], &Writer->acc_slot->tts_tid);
			entry = CacheLookup(names[i]);
		}
		states[i] = entry->state;
		found[i] = true;
	}
	ExecClearTuple(Writer->acc_slot);
	pfree(todo);
}

/* An es_accounts row of a state, as Datums in table order. */
static void
StateToValues(const EsAccountState *state, Datum *v, bool *n)
{
	memset(n, 0, sizeof(bool) * ACC_NATTS);
	v[ACC_ACCOUNT_ID - 1] = Int64GetDatum(state->account_id);
	v[ACC_ACCOUNT - 1] = CStringGetTextDatum(state->account);
	v[ACC_CURRENCY - 1] = CStringGetTextDatum(state->currency);
	v[ACC_STATUS - 1] = CStringGetTextDatum(EsStatusName(state->status));
	v[ACC_BALANCE - 1] = Int64GetDatum(state->balance);
	v[ACC_PENDING_OUT - 1] = Int64GetDatum(state->pending_out);
	v[ACC_PENDING_IN - 1] = Int64GetDatum(state->pending_in);
	v[ACC_AVAILABLE - 1] = Int64GetDatum(state->available);
	v[ACC_OVERDRAFT_LIMIT - 1] = Int64GetDatum(state->overdraft_limit);
	v[ACC_MAX_BALANCE - 1] = Int64GetDatum(state->max_balance);
	n[ACC_MAX_BALANCE - 1] = !state->has_max_balance;
	v[ACC_VERSION - 1] = Int64GetDatum(state->version);
	v[ACC_LAST_SEQ - 1] = Int64GetDatum(state->last_seq);
	v[ACC_OPENED_AT - 1] = TimestampTzGetDatum(state->opened_at);
	v[ACC_UPDATED_AT - 1] = TimestampTzGetDatum(state->updated_at);
	v[ACC_LAST_HASH - 1] = EsHashGetDatum(state->last_hash);
}

/* Fill the virtual slot for es_accounts with a state. */
static void
StateToSlot(const EsAccountState *state, TupleTableSlot *slot)
{
	ExecClearTuple(slot);
	StateToValues(state, slot->tts_values, slot->tts_isnull);
	ExecStoreVirtualTuple(slot);
}

/*
 * An account state as a Datum of the row type es_accounts (tupdesc, which
 * es_replay gets from its result type), in the current memory context.
 */
Datum
EsStateToDatum(const EsAccountState *state, TupleDesc tupdesc)
{
	Datum		values[ACC_NATTS];
	bool		isnull[ACC_NATTS];

	if (tupdesc->natts != ACC_NATTS)
		elog(ERROR, "es_accounts has %d columns, es_ledger expects %d",
			 tupdesc->natts, ACC_NATTS);
	StateToValues(state, values, isnull);
	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values,
											 isnull));
}

/*
 * Insert a new account's projection row.  The caller has made sure the
 * name is free (under the name's advisory lock); a duplicate would fail on
 * the unique index.
 */
void
EsStoreInsertAccount(const EsAccountState *state)
{
	StateToSlot(state, Writer->acc_new);
	ExecSimpleRelationInsert(Writer->accounts, Writer->estate, Writer->acc_new);
	CacheStore(state, &Writer->acc_new->tts_tid);
}

/* Write an account's projection row; it must be locked (cached). */
void
EsStoreUpdateAccount(const EsAccountState *state)
{
	EsCachedAccount *entry = CacheLookup(state->account);

	if (entry == NULL)
		elog(ERROR, "account %lld was not locked before its update",
			 (long long) state->account_id);
	ExecClearTuple(Writer->acc_slot);
	Writer->acc_slot->tts_tid = entry->tid;
	StateToSlot(state, Writer->acc_new);
	ExecSimpleRelationUpdate(Writer->accounts, Writer->estate,
							 &Writer->epqstate, Writer->acc_slot,
							 Writer->acc_new);
	CacheStore(state, &Writer->acc_new->tts_tid);
}

/* Append one sealed event to the log. */
void
EsStoreInsertEvent(const EsEvent *ev)
{
	TupleTableSlot *slot = Writer->ev_new;
	Datum	   *v = slot->tts_values;
	bool	   *n = slot->tts_isnull;

	ExecClearTuple(slot);
	memset(n, 0, sizeof(bool) * EV_NATTS);
	v[EV_SEQ - 1] = Int64GetDatum(ev->seq);
	v[EV_ACCOUNT_ID - 1] = Int64GetDatum(ev->account_id);
	v[EV_VERSION - 1] = Int64GetDatum(ev->version);
	v[EV_TYPE - 1] = CStringGetTextDatum(EsEventTypeName(ev->type));
	v[EV_AMOUNT - 1] = Int64GetDatum(ev->amount);
	v[EV_DATA - 1] = JsonbPGetDatum(ev->data);
	if (ev->command_id)
		v[EV_COMMAND_ID - 1] = CStringGetTextDatum(ev->command_id);
	else
		n[EV_COMMAND_ID - 1] = true;
	v[EV_RECORDED_AT - 1] = TimestampTzGetDatum(ev->recorded_at);
	v[EV_EFFECTIVE_AT - 1] = TimestampTzGetDatum(ev->effective_at);
	v[EV_CHECKSUM - 1] = Int64GetDatum((int64) ev->checksum);
	v[EV_HASH - 1] = EsHashGetDatum(ev->hash);
	v[EV_FORMAT - 1] = Int16GetDatum(ES_EVENT_FORMAT_VERSION);
	v[EV_TX - 1] = FullTransactionIdGetDatum(GetTopFullTransactionId());
	ExecStoreVirtualTuple(slot);
	ExecSimpleRelationInsert(Writer->events, Writer->estate, slot);
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
	w->commands = OpenResultRel(w->estate, "es_commands", 3, CMD_NATTS);
	w->command_idx = index_open(OurRelid("es_commands_pkey"), RowExclusiveLock);
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
EsStoreFindCommand(const char *id, Jsonb **command, int64 *seq)
{
	TupleTableSlot *slot;
	bool		isnull;

	OpenCommands();
	slot = Writer->cmd_slot;
	if (!ProbeText(Writer->commands->ri_RelationDesc, Writer->command_idx, id,
				   slot))
		return false;
	*command = DatumGetJsonbPCopy(slot_getattr(slot, CMD_COMMAND, &isnull));
	*seq = DatumGetInt64(slot_getattr(slot, CMD_SEQ, &isnull));
	ExecClearTuple(slot);
	return true;
}

/* Register an applied command under its idempotency key. */
void
EsStoreInsertCommand(const char *id, Jsonb *command, int64 seq)
{
	TupleTableSlot *slot;

	OpenCommands();
	slot = Writer->cmd_new;
	ExecClearTuple(slot);
	memset(slot->tts_isnull, 0, sizeof(bool) * CMD_NATTS);
	slot->tts_values[CMD_COMMAND_ID - 1] = CStringGetTextDatum(id);
	slot->tts_values[CMD_COMMAND - 1] = JsonbPGetDatum(command);
	slot->tts_values[CMD_SEQ - 1] = Int64GetDatum(seq);
	ExecStoreVirtualTuple(slot);
	ExecSimpleRelationInsert(Writer->commands, Writer->estate, slot);
}
