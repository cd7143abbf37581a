/*-------------------------------------------------------------------------
 *
 * es_cache.c
 *	  The per-transaction account cache: the state and row version of every
 *	  account this transaction has locked or written.
 *
 * A row this transaction has locked stays locked until the transaction
 * ends, and only es_apply writes es_accounts, so the next command on that
 * account needs neither an index probe nor a heap fetch: it updates the row
 * by its tuple id.  That keeps a transaction that touches one account
 * thousands of times linear (an index probe would walk every version it
 * left behind).
 *
 * Invariants: an entry's state is exactly the account's row at its tuple
 * id, or, when the entry is deferred (es_apply_each, EsWriteDeferUpdates),
 * the state the row will be given before the statement ends (the events
 * are written already; EsWriteFlushUpdates writes the row once); and the
 * row is locked by this transaction.  So the cache lives in
 * TopTransactionContext and is dropped at transaction end; when a
 * subtransaction aborts, the entries it (or a subtransaction inside it)
 * locked or wrote are removed, since their updates and locks are undone;
 * and it is dropped whenever es_accounts is no longer the same storage (a
 * new relation or relfilenode after TRUNCATE, CLUSTER or a rewrite), since
 * its tuple ids would point nowhere.  Deferred entries are flushed before
 * any subtransaction starts (es_each.c), so one that aborts never takes a
 * deferred state of its parent with it.
 *
 * Locks: none; the caller holds the row locks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "mb/pg_wchar.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "store.h"

#define ES_NAME_BYTES (ES_MAX_NAME_CHARS * MAX_MULTIBYTE_CHAR_LEN + 1)

/* One account this transaction holds the row lock of. */
typedef struct EsCachedAccount
{
	char		name[ES_NAME_BYTES];	/* key; state.account points here */
	char		currency[ES_NAME_BYTES];	/* state.currency points here */
	ItemPointerData tid;		/* its current row version */
	SubTransactionId subid;		/* the subtransaction that last locked or
								 * wrote it */
	bool		deferred;		/* state is newer than the row at tid */
	EsAccountState state;
} EsCachedAccount;

/* The cache, and the es_accounts storage it describes. */
static HTAB *AccountCache = NULL;
static Oid	AccountCacheRelid = InvalidOid;
static Oid	AccountCacheFilenode = InvalidOid;

/* How many entries are deferred (so that EsCacheDeferred can skip the walk). */
static int	DeferredCount = 0;

/* Forget the whole cache; destroy frees it (else it goes with its context). */
static void
ResetCache(bool destroy)
{
	if (destroy && AccountCache != NULL)
		hash_destroy(AccountCache);
	AccountCache = NULL;
	AccountCacheRelid = InvalidOid;
	AccountCacheFilenode = InvalidOid;
	DeferredCount = 0;
}

/* Transaction end: the cache in TopTransactionContext is gone with it. */
static void
EsCacheXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			ResetCache(false);
			break;
		default:
			break;
	}
}

/*
 * A subtransaction rolled back: forget the accounts it (or one inside it)
 * locked or wrote.  Accounts the parent holds are unchanged.
 */
static void
EsCacheSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	HASH_SEQ_STATUS status;
	EsCachedAccount *entry;

	if (event != SUBXACT_EVENT_ABORT_SUB || AccountCache == NULL)
		return;
	hash_seq_init(&status, AccountCache);
	while ((entry = hash_seq_search(&status)) != NULL)
		if (entry->subid >= mySubid)
		{
			if (entry->deferred)
				DeferredCount--;
			hash_search(AccountCache, entry->name, HASH_REMOVE, NULL);
		}
}

/* Install the callbacks; called once from _PG_init. */
void
EsCacheInit(void)
{
	RegisterXactCallback(EsCacheXactCallback, NULL);
	RegisterSubXactCallback(EsCacheSubXactCallback, NULL);
}

/* Is the cache about the storage of accounts (es_accounts, open)? */
static bool
CacheValid(Relation accounts)
{
	return AccountCache != NULL &&
		AccountCacheRelid == RelationGetRelid(accounts) &&
		AccountCacheFilenode == accounts->rd_node.relNode;
}

/*
 * The cached state of the account named, and its row's tuple id into *tid,
 * or NULL when this transaction holds no lock on it.  The state is the
 * cache's: copy it before changing it.
 */
const EsAccountState *
EsCacheLookup(Relation accounts, const char *name, ItemPointer tid)
{
	EsCachedAccount *entry;

	if (!CacheValid(accounts))
		return NULL;
	entry = hash_search(AccountCache, name, HASH_FIND, NULL);
	if (entry == NULL)
		return NULL;
	if (tid)
		*tid = entry->tid;
	return &entry->state;
}

/*
 * Remember an account's state and the tuple id of its row, which this
 * transaction has just locked or written.
 */
void
EsCacheStore(Relation accounts, const EsAccountState *state, ItemPointer tid)
{
	EsCachedAccount *entry;
	bool		found;

	if (!CacheValid(accounts))
	{
		HASHCTL		ctl;

		ResetCache(true);
		ctl.keysize = ES_NAME_BYTES;
		ctl.entrysize = sizeof(EsCachedAccount);
		ctl.hcxt = TopTransactionContext;
		AccountCache = hash_create("es_ledger accounts", 64, &ctl,
								   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		AccountCacheRelid = RelationGetRelid(accounts);
		AccountCacheFilenode = accounts->rd_node.relNode;
	}
	if (strlen(state->account) >= ES_NAME_BYTES ||
		strlen(state->currency) >= ES_NAME_BYTES)
		elog(ERROR, "account name or currency too long to cache");
	entry = hash_search(AccountCache, state->account, HASH_ENTER, &found);
	if (found && entry->deferred)
		DeferredCount--;
	entry->state = *state;
	strlcpy(entry->currency, state->currency, ES_NAME_BYTES);
	entry->state.account = entry->name;
	entry->state.currency = entry->currency;
	entry->tid = *tid;
	entry->subid = GetCurrentSubTransactionId();
	entry->deferred = false;
}

/*
 * Give a cached account a new state whose row is not written yet (a
 * deferred update, see the file header).  The account must be cached.
 */
void
EsCacheStoreDeferred(Relation accounts, const EsAccountState *state)
{
	EsCachedAccount *entry = NULL;

	if (CacheValid(accounts))
		entry = hash_search(AccountCache, state->account, HASH_FIND, NULL);
	if (entry == NULL)
		elog(ERROR, "account %lld was not locked before its update",
			 (long long) state->account_id);
	entry->state = *state;
	entry->state.account = entry->name;
	entry->state.currency = entry->currency;
	entry->subid = GetCurrentSubTransactionId();
	if (!entry->deferred)
		DeferredCount++;
	entry->deferred = true;
}

/*
 * The states of the accounts whose rows are behind their cached state,
 * copied into the current memory context (*n of them, NULL if none); the
 * caller writes each row (which stores the entry again, not deferred).
 */
EsAccountState *
EsCacheDeferred(Relation accounts, int *n)
{
	HASH_SEQ_STATUS status;
	EsCachedAccount *entry;
	EsAccountState *states = NULL;
	int			count = 0;
	int			size = 0;

	*n = 0;
	if (DeferredCount == 0 || !CacheValid(accounts))
		return NULL;
	hash_seq_init(&status, AccountCache);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (!entry->deferred)
			continue;
		if (count == size)
		{
			size = Max(64, size * 2);
			states = states ? repalloc(states, sizeof(EsAccountState) * size) :
				palloc(sizeof(EsAccountState) * size);
		}
		states[count] = entry->state;
		states[count].account = pstrdup(entry->name);
		states[count].currency = pstrdup(entry->currency);
		count++;
	}
	*n = count;
	return states;
}

/*
 * Forget every account: es_rebuild_projections rewrites es_accounts rows
 * under names and tuple ids the cache may hold.  Forgetting is always safe:
 * the next command probes the index and locks the row again.
 */
void
EsCacheReset(void)
{
	ResetCache(true);
}
