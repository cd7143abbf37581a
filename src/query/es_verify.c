/*-------------------------------------------------------------------------
 *
 * es_verify.c
 *	  The verifier: es_verify re-derives everything the ledger promises from
 *	  the log and says where it does not hold.
 *
 * es_verify of the whole ledger reads es_events once in physical order
 * (VerifyPhysical), which is each account's version order but in rare
 * cases, keeping each account's running state in a hash table, then
 * es_accounts once; an account met out of order is walked again by index.
 * Ledgers of more than ES_VERIFY_WALK_MAX_ACCOUNTS accounts, and
 * es_verify(account), walk es_events_account_version_key instead, so each
 * account's events come in version order, account after account, merged
 * with es_accounts' primary key by account_id: memory stays flat.  Per event it
 * decodes the row without trusting it (EsRowEventDecode), recomputes the
 * canonical encoding's checksum and the hash link from the previous event's
 * stored hash (EsEventComputeSeal), checks the version follows, and folds
 * it with the one fold (EsFoldProblem first, so a bad event is reported,
 * not raised).  Per account it compares the fold with the projection row;
 * per currency, the projection's balances with deposits minus withdrawals.
 * Then es_transfers: every transfer derived from the log by the transfer
 * fold (EsScanTransfers) is compared with its row, found by seq, and the
 * rows are counted (VerifyTransfers), as part of the projection check.
 * Every failure is counted; each check reports how many items it checked,
 * how many failed, and the smallest failing seq with its reason.
 *
 * Locks: AccessShareLock on the tables and indexes read; no row locks, so
 * writers are never blocked.  It reads one MVCC snapshot, the statement's,
 * so it sees one consistent ledger and works on a hot standby.  Progress is
 * shown in pg_stat_activity.query of the verifying session.
 *
 * The digests (es_digest, es_verify_digest) are es_digest.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/xlog.h"
#include "common/cryptohash.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/pg_bswap.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "query.h"

/* How often progress is shown, in events. */
#define ES_VERIFY_PROGRESS	ES_SCAN_PROGRESS_EVENTS

/* The checks, in the order of es_verify's rows. */
typedef enum EsCheckId
{
	CHECK_CHECKSUM,
	CHECK_HASH_CHAIN,
	CHECK_VERSIONS,
	CHECK_EVENTS,
	CHECK_PROJECTION,
	CHECK_CONSERVATION,
	CHECK_COMMANDS,
	CHECK_SNAPSHOTS,
	CHECK_COUNT
} EsCheckId;

static const char *const EsCheckNames[CHECK_COUNT] = {
	"checksum", "hash_chain", "versions", "events", "projection", "conservation",
	"commands", "snapshots",
};

/* What one check found. */
typedef struct EsCheck
{
	int64		checked;
	int64		bad;
	bool		has_first;		/* first_seq/first_why describe a failure */
	int64		first_seq;		/* the smallest failing seq */
	char	   *first_why;
	char	   *unplaced_why;	/* a failure with no seq (conservation) */
} EsCheck;

/* Per currency: projection balances and money from outside the ledger. */
typedef struct EsCurrencySums
{
	char		currency[NAMEDATALEN * 4];	/* key */
	int128		balances;
	int128		external;
	int64		accounts;
} EsCurrencySums;

/* The state of one run of es_verify. */
typedef struct EsVerify
{
	EsCheck		checks[CHECK_COUNT];
	HTAB	   *currencies;
	int64		events;
	int64		walked_by_index;	/* accounts met out of physical order */
	int64		events_with_id; /* events that carry a command id */
	bool		has_transfers;	/* es_transfers checked too */
	MemoryContext accountcxt;	/* the current account's allocations */
} EsVerify;

/*
 * Above this many accounts, es_verify() walks the index (flat memory),
 * unless es_ledger.verify_strategy says which walk to take.
 */
#define ES_VERIFY_WALK_MAX_ACCOUNTS	1000000

/* es_ledger.verify_strategy: a developer's setting (superuser). */
typedef enum EsVerifyStrategyKind
{
	ES_VERIFY_AUTO,
	ES_VERIFY_PHYSICAL,
	ES_VERIFY_INDEX
} EsVerifyStrategyKind;

static const struct config_enum_entry EsVerifyStrategies[] = {
	{"auto", ES_VERIFY_AUTO, false},
	{"physical", ES_VERIFY_PHYSICAL, false},
	{"index", ES_VERIFY_INDEX, false},
	{NULL, 0, false}
};

static int	EsVerifyStrategy = ES_VERIFY_AUTO;

/*
 * Define es_ledger.verify_strategy: which walk es_verify() of the whole
 * ledger takes (auto: physical up to ES_VERIFY_WALK_MAX_ACCOUNTS accounts,
 * else index), so tests can run both on a small ledger.
 */
void
EsVerifyInit(void)
{
	DefineCustomEnumVariable("es_ledger.verify_strategy",
							 "Which walk es_verify() of the whole ledger takes: auto, physical or index.",
							 "A developer setting: auto walks es_events in physical order up to 1,000,000 accounts and by index above.",
							 &EsVerifyStrategy, ES_VERIFY_AUTO,
							 EsVerifyStrategies, PGC_SUSET, 0,
							 NULL, NULL, NULL);
}

/* The decimal text of a 128-bit sum. */
static char *
Int128Text(int128 v)
{
	char		buf[48];
	int			i = sizeof(buf) - 1;
	bool		neg = v < 0;
	uint128		u = neg ? -(uint128) v : (uint128) v;

	buf[i] = '\0';
	do
	{
		buf[--i] = '0' + (int) (u % 10);
		u /= 10;
	} while (u > 0);
	if (neg)
		buf[--i] = '-';
	return pstrdup(buf + i);
}

/* Record a failure of a check at seq (seq < 0: none) with its reason. */
static void
Fail(EsVerify *v, EsCheckId id, int64 seq, const char *why)
{
	EsCheck    *c = &v->checks[id];

	c->bad++;
	if (seq < 0)
	{
		if (c->unplaced_why == NULL)
			c->unplaced_why = MemoryContextStrdup(TopTransactionContext, why);
		return;
	}
	if (!c->has_first || seq < c->first_seq)
	{
		c->has_first = true;
		c->first_seq = seq;
		c->first_why = MemoryContextStrdup(TopTransactionContext, why);
	}
}

/* The sums of a currency, created at zero. */
static EsCurrencySums *
Currency(EsVerify *v, const char *currency)
{
	char		key[NAMEDATALEN * 4] = {0};
	bool		found;
	EsCurrencySums *sums;

	strlcpy(key, currency, sizeof(key));
	sums = hash_search(v->currencies, key, HASH_ENTER, &found);
	if (!found)
	{
		sums->balances = 0;
		sums->external = 0;
		sums->accounts = 0;
	}
	return sums;
}

/* Compare an account's fold with its projection row; fail on differences. */
static void
CompareProjection(EsVerify *v, const EsAccountState *fold,
				  const EsAccountState *proj)
{
	const char *diff = NULL;

	if (strcmp(fold->account, proj->account) != 0)
		diff = "name";
	else if (strcmp(fold->currency, proj->currency) != 0)
		diff = "currency";
	else if (fold->status != proj->status)
		diff = "status";
	else if (fold->balance != proj->balance)
		diff = psprintf("balance (%lld in the projection, %lld replayed)",
						(long long) proj->balance, (long long) fold->balance);
	else if (fold->pending_out != proj->pending_out ||
			 fold->pending_in != proj->pending_in)
		diff = "pending amounts";
	else if (fold->available != proj->available)
		diff = "available";
	else if (fold->overdraft_limit != proj->overdraft_limit ||
			 fold->has_max_balance != proj->has_max_balance ||
			 (fold->has_max_balance && fold->max_balance != proj->max_balance))
		diff = "limits";
	else if (fold->version != proj->version)
		diff = psprintf("version (%lld in the projection, %lld replayed)",
						(long long) proj->version, (long long) fold->version);
	else if (fold->last_seq != proj->last_seq)
		diff = "last_seq";
	else if (fold->opened_at != proj->opened_at ||
			 fold->updated_at != proj->updated_at)
		diff = "times";
	else if (memcmp(fold->last_hash, proj->last_hash, ES_HASH_LEN) != 0)
		diff = "last_hash (the head of the hash chain)";
	if (diff)
		Fail(v, CHECK_PROJECTION, fold->last_seq,
			 psprintf("account \"%s\": the projection's %s differs from the replay of the log",
					  fold->account, diff));
}

/*
 * Advance the projection walk up to account_id and check what it passes:
 * rows of accounts with no event fail; the row of account_id (if any) is
 * decoded into *proj.  Returns whether account_id has a row.
 */
static bool
ProjectionUpTo(EsVerify *v, EsScanIter *accts, bool *pending, int64 account_id,
			   EsAccountState *proj)
{
	for (;;)
	{
		const char *problem;

		if (!*pending)
		{
			if (!EsScanNext(accts))
				return false;
			*pending = true;
		}
		problem = EsScanDecodeState(accts, proj);
		if (account_id != 0 && proj->account_id > account_id && problem == NULL)
			return false;		/* a later account's row: keep it */
		*pending = false;
		v->checks[CHECK_PROJECTION].checked++;
		if (problem)
		{
			Fail(v, CHECK_PROJECTION, -1,
				 psprintf("es_accounts row of account_id %lld is damaged: %s",
						  (long long) proj->account_id, problem));
			if (proj->account_id == account_id)
				return false;
			continue;
		}
		Currency(v, proj->currency)->balances += proj->balance;
		if (proj->account_id == account_id)
			return true;
		Fail(v, CHECK_PROJECTION, proj->last_seq,
			 psprintf("account \"%s\" has a projection row but no event in the log",
					  proj->account));
	}
}

/* ---------------------------------------------- the physical-order walk */

/*
 * The order-dependent checks of one account, kept apart until the account
 * is final, because an account found out of physical order is checked
 * again by an index walk and its partial results are then dropped.
 */
typedef struct EsLocalCheck
{
	int64		bad;
	int64		first_seq;
	const char *first_why;
} EsLocalCheck;

#define LOCAL_HASH_CHAIN	0
#define LOCAL_VERSIONS		1
#define LOCAL_EVENTS		2
#define LOCAL_COUNT			3

static const EsCheckId EsLocalToCheck[LOCAL_COUNT] = {
	CHECK_HASH_CHAIN, CHECK_VERSIONS, CHECK_EVENTS,
};

/* One account during the physical-order walk. */
typedef struct EsWalkAccount
{
	int64		account_id;		/* hash key */
	EsAccountState fold;
	uint8		prev_hash[ES_HASH_LEN];
	int64		expected_version;
	int64		events;
	int64		physical;		/* its rows met by the physical walk */
	int128		external;		/* deposits and withdrawals folded */
	int128		amounts;		/* every amount folded */
	bool		deferred;		/* out of physical order: walk by index */
	bool		finished;
	EsLocalCheck local[LOCAL_COUNT];
} EsWalkAccount;

/* Record a failure of an account's order-dependent check. */
static void
LocalFail(EsWalkAccount *a, int which, int64 seq, const char *why)
{
	EsLocalCheck *c = &a->local[which];

	c->bad++;
	if (c->bad == 1 || seq < c->first_seq)
	{
		c->first_seq = seq;
		c->first_why = MemoryContextStrdup(TopTransactionContext, why);
	}
}

/*
 * Check one event of an account met in version order: its link, its
 * version, and fold it.  The checksum is the caller's.
 */
static void
WalkEvent(EsWalkAccount *a, const EsEvent *ev, const uint8 *hash,
		  MemoryContext foldcxt)
{
	const char *problem;
	MemoryContext old;

	a->events++;
	if (memcmp(hash, ev->hash, ES_HASH_LEN) != 0)
		LocalFail(a, LOCAL_HASH_CHAIN, ev->seq,
				  ev->version == 1 ?
				  "the stored hash is not SHA-256 of the genesis hash and its content" :
				  "the stored hash is not SHA-256 of the previous event's hash and its content");
	memcpy(a->prev_hash, ev->hash, ES_HASH_LEN);
	a->expected_version = ev->version + 1;
	problem = EsFoldProblem(&a->fold, ev);
	if (problem)
	{
		LocalFail(a, LOCAL_EVENTS, ev->seq,
				  psprintf("it cannot be folded: %s", problem));
		return;
	}
	old = MemoryContextSwitchTo(foldcxt);
	EsFoldEvent(&a->fold, ev);
	MemoryContextSwitchTo(old);
	if (ev->type == ES_EV_DEPOSITED || ev->type == ES_EV_WITHDRAWN)
		a->external += ev->amount;
	a->amounts += ev->amount;
}

/* Begin an account's checks: no event met yet. */
static void
AccountStart(EsWalkAccount *a, int64 account_id)
{
	memset(a, 0, sizeof(EsWalkAccount));
	a->account_id = account_id;
	EsFoldInit(&a->fold, account_id);
	memcpy(a->prev_hash, EsEventGenesisHash(), ES_HASH_LEN);
	a->expected_version = 1;
}

/*
 * The per-account checker, fed by either walk: one event of account a, met
 * in its version order, decoded (problem: why its row cannot be read, or
 * NULL).  Checks its version, seal (the checksum too, with checksums: the
 * physical walk checks those as it reads, WalkByIndex not again) and link,
 * and folds it.
 */
static void
AccountEvent(EsVerify *v, EsWalkAccount *a, EsEvent *ev, const char *problem,
			 EsEventSealer *sealer, bool checksums, MemoryContext foldcxt)
{
	uint32		checksum;
	uint8		hash[ES_HASH_LEN];

	if (problem || ev->type == ES_EV_INVALID)
	{
		if (checksums)
			Fail(v, CHECK_CHECKSUM, ev->seq,
				 problem ? psprintf("the row cannot be read: %s", problem) :
				 "its type is unknown, so it has no encoding");
		/* The chain breaks here. */
		LocalFail(a, LOCAL_HASH_CHAIN, ev->seq, "the row cannot be read");
		LocalFail(a, LOCAL_EVENTS, ev->seq, "the row cannot be read");
		a->expected_version = ev->version + 1;
		return;
	}
	if (ev->version != a->expected_version)
		LocalFail(a, LOCAL_VERSIONS, ev->seq,
				  psprintf("account %lld: version %lld where %lld was due",
						   (long long) ev->account_id, (long long) ev->version,
						   (long long) a->expected_version));
	EsEventComputeSeal(sealer, ev, a->prev_hash, &checksum, hash);
	if (checksums && checksum != ev->checksum)
		Fail(v, CHECK_CHECKSUM, ev->seq,
			 "the stored checksum differs from the one of its content");
	WalkEvent(a, ev, hash, foldcxt);
}

/*
 * An account of the walk is final: merge its checks, compare it with its
 * projection row (proj NULL: it has none), add its money to its currency.
 */
static void
WalkFinish(EsVerify *v, EsWalkAccount *a, const EsAccountState *proj)
{
	a->finished = true;
	v->checks[CHECK_VERSIONS].checked++;
	for (int i = 0; i < LOCAL_COUNT; i++)
	{
		EsLocalCheck *c = &a->local[i];
		EsCheck    *g = &v->checks[EsLocalToCheck[i]];

		if (c->bad == 0)
			continue;
		g->bad += c->bad - 1;
		Fail(v, EsLocalToCheck[i], c->first_seq, c->first_why);
	}
	if (a->fold.status == ES_ACCOUNT_NONE)
		return;					/* never opened: reported as events */
	Currency(v, a->fold.currency)->external += a->external;
	if (proj)
		CompareProjection(v, &a->fold, proj);
	else
		Fail(v, CHECK_PROJECTION, a->fold.last_seq,
			 psprintf("account \"%s\" has events but no projection row",
					  a->fold.account));
}

/*
 * Check one account by an index walk of its events (for an account the
 * physical walk met out of version order): everything but the checksums,
 * which the physical walk counted.
 */
static void
WalkByIndex(EsVerify *v, EsWalkAccount *a, EsEventSealer *sealer,
			MemoryContext foldcxt)
{
	EsScanIter *it = EsScanBegin(ES_REL_EVENTS, ES_REL_EVENTS_VERSION_IDX,
								 true, a->account_id, GetActiveSnapshot());
	EsScanIter *pit;
	EsAccountState proj;
	bool		has_proj = false;
	int64		indexed = 0;
	int64		physical = a->physical;

	AccountStart(a, a->account_id);
	a->physical = physical;
	a->deferred = true;
	while (EsScanNext(it))
	{
		EsEvent		ev;
		const char *problem = EsScanDecodeEvent(it, &ev);

		indexed++;
		/* The checksums were counted by the physical walk. */
		AccountEvent(v, a, &ev, problem, sealer, false, foldcxt);
	}
	EsScanEnd(it);
	if (indexed != a->physical)
		LocalFail(a, LOCAL_VERSIONS, a->fold.last_seq,
				  psprintf("account %lld: the table holds %lld of its events, its (account_id, version) index %lld",
						   (long long) a->account_id, (long long) a->physical,
						   (long long) indexed));
	pit = EsScanBegin(ES_REL_ACCOUNTS, ES_REL_ACCOUNTS_ID_IDX, true,
					  a->account_id, GetActiveSnapshot());
	if (EsScanNext(pit) && EsScanDecodeState(pit, &proj) == NULL)
		has_proj = true;
	WalkFinish(v, a, has_proj ? &proj : NULL);
	EsScanEnd(pit);
}

/*
 * es_verify of the whole ledger: one sequential pass over es_events in
 * physical order, which is each account's version order in all but rare
 * cases (a page with room left behind), keeping each account's running
 * state in a hash table; then one pass over es_accounts.  An account met
 * out of version order is checked again by an index walk.  Reading pages
 * in order, each once, is what makes this faster than walking the
 * (account_id, version) index, which visits a page once per account on it;
 * the price is memory per account (a few hundred bytes), so ledgers with
 * more than ES_VERIFY_WALK_MAX_ACCOUNTS accounts take the index walk.
 */
static void
VerifyPhysical(EsVerify *v)
{
	Relation	heap = EsRowOpenTable(ES_REL_EVENTS, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	TableScanDesc scan = table_beginscan(heap, GetActiveSnapshot(), 0, NULL);
	MemoryContext rowcxt = AllocSetContextCreate(CurrentMemoryContext,
												 "es_verify row", 0, 64 * 1024,
												 ALLOCSET_DEFAULT_MAXSIZE);
	MemoryContext foldcxt = AllocSetContextCreate(CurrentMemoryContext,
												  "es_verify accounts",
												  ALLOCSET_DEFAULT_SIZES);
	HASHCTL		ctl;
	HTAB	   *accounts;
	HASH_SEQ_STATUS status;
	EsWalkAccount *a;
	EsEventSealer sealer;
	EsScanIter *pit;
	MemoryContext old;

	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(EsWalkAccount);
	ctl.hcxt = foldcxt;
	accounts = hash_create("es_verify accounts", 1024, &ctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	EsEventSealerInit(&sealer);

	/* Everything of a row is allocated in rowcxt, reset at the next row. */
	old = MemoryContextSwitchTo(rowcxt);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		EsEvent		ev;
		const char *problem;
		uint32		checksum;
		uint8		hash[ES_HASH_LEN];
		bool		found;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(rowcxt);
		slot_getallattrs(slot);
		problem = EsRowEventDecode(slot->tts_values, slot->tts_isnull, &ev);

		v->events++;
		if (v->events % ES_VERIFY_PROGRESS == 0)
			EsScanReportProgress("es_verify", v->events);
		v->checks[CHECK_CHECKSUM].checked++;
		v->checks[CHECK_HASH_CHAIN].checked++;
		v->checks[CHECK_EVENTS].checked++;

		a = hash_search(accounts, &ev.account_id, HASH_ENTER, &found);
		if (!found)
		{
			memset(((char *) a) + sizeof(int64), 0,
				   sizeof(EsWalkAccount) - sizeof(int64));
			EsFoldInit(&a->fold, ev.account_id);
			memcpy(a->prev_hash, EsEventGenesisHash(), ES_HASH_LEN);
			a->expected_version = 1;
		}
		a->physical++;
		if (problem == NULL && ev.command_id != NULL)
			v->events_with_id++;
		if (problem || ev.type == ES_EV_INVALID)
		{
			Fail(v, CHECK_CHECKSUM, ev.seq,
				 problem ? psprintf("the row cannot be read: %s", problem) :
				 "its type is unknown, so it has no encoding");
			if (!a->deferred)
			{
				LocalFail(a, LOCAL_HASH_CHAIN, ev.seq, "the row cannot be read");
				LocalFail(a, LOCAL_EVENTS, ev.seq, "the row cannot be read");
				if (ev.version != a->expected_version)
					a->deferred = true;
				a->expected_version = ev.version + 1;
			}
			continue;
		}

		/* In version order: link and fold; else check it by index later. */
		if (!a->deferred && ev.version != a->expected_version)
			a->deferred = true;
		EsEventComputeSeal(&sealer, &ev,
						   a->deferred ? EsEventGenesisHash() : a->prev_hash,
						   &checksum, hash);
		if (checksum != ev.checksum)
			Fail(v, CHECK_CHECKSUM, ev.seq,
				 "the stored checksum differs from the one of its content");
		if (!a->deferred)
			WalkEvent(a, &ev, hash, foldcxt);
	}
	MemoryContextSwitchTo(old);
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(heap, AccessShareLock);
	MemoryContextDelete(rowcxt);

	/* The projection, row by row. */
	pit = EsScanBegin(ES_REL_ACCOUNTS, ES_REL_ACCOUNTS_ID_IDX, false, 0,
					  GetActiveSnapshot());
	while (EsScanNext(pit))
	{
		EsAccountState proj;
		const char *problem = EsScanDecodeState(pit, &proj);

		v->checks[CHECK_PROJECTION].checked++;
		if (problem)
		{
			Fail(v, CHECK_PROJECTION, -1,
				 psprintf("es_accounts row of account_id %lld is damaged: %s",
						  (long long) proj.account_id, problem));
			continue;
		}
		Currency(v, proj.currency)->balances += proj.balance;
		a = hash_search(accounts, &proj.account_id, HASH_FIND, NULL);
		if (a == NULL)
			Fail(v, CHECK_PROJECTION, proj.last_seq,
				 psprintf("account \"%s\" has a projection row but no event in the log",
						  proj.account));
		else if (!a->deferred)
			WalkFinish(v, a, &proj);
	}
	EsScanEnd(pit);

	/* Accounts with events and no projection row; then the deferred ones. */
	hash_seq_init(&status, accounts);
	while ((a = hash_seq_search(&status)) != NULL)
		if (!a->finished && !a->deferred)
			WalkFinish(v, a, NULL);
	hash_seq_init(&status, accounts);
	while ((a = hash_seq_search(&status)) != NULL)
		if (a->deferred)
		{
			v->walked_by_index++;
			WalkByIndex(v, a, &sealer, foldcxt);
		}
	EsEventSealerFree(&sealer);
	MemoryContextDelete(foldcxt);
}

/* ------------------------------------------------------ the index walk */

/*
 * The end of an account's events in the index walk: its projection row,
 * found by merging es_accounts' primary key (rows passed on the way have
 * no event), then WalkFinish as the physical walk does.
 */
static void
IndexFinish(EsVerify *v, EsScanIter *accts, bool *pending, EsWalkAccount *a)
{
	EsAccountState proj;
	bool		has_proj = false;

	if (a->fold.status != ES_ACCOUNT_NONE)
		has_proj = ProjectionUpTo(v, accts, pending, a->account_id, &proj);
	WalkFinish(v, a, has_proj ? &proj : NULL);
}

/*
 * The index walk: es_events_account_version_key, so each account's events
 * come in version order, account after account (with one, only
 * account_id's), each fed to the same per-account checker as the physical
 * walk (AccountEvent, WalkFinish), merged with es_accounts' primary key by
 * account_id: memory stays flat whatever the number of accounts.  *a is
 * left holding the last account walked; returns whether there was one.
 */
static bool
VerifyByIndex(EsVerify *v, bool one, int64 account_id, EsWalkAccount *a)
{
	EsEventSealer sealer;
	EsScanIter *events;
	EsScanIter *accts;
	EsAccountState proj;
	bool		pending = false;
	bool		have = false;

	EsEventSealerInit(&sealer);
	events = EsScanBegin(ES_REL_EVENTS, ES_REL_EVENTS_VERSION_IDX, one,
						 account_id, GetActiveSnapshot());
	accts = EsScanBegin(ES_REL_ACCOUNTS, ES_REL_ACCOUNTS_ID_IDX, one,
						account_id, GetActiveSnapshot());
	while (EsScanNext(events))
	{
		EsEvent		ev;
		const char *problem = EsScanDecodeEvent(events, &ev);

		CHECK_FOR_INTERRUPTS();
		v->events++;
		if (v->events % ES_VERIFY_PROGRESS == 0)
			EsScanReportProgress("es_verify", v->events);
		v->checks[CHECK_CHECKSUM].checked++;
		v->checks[CHECK_HASH_CHAIN].checked++;
		v->checks[CHECK_EVENTS].checked++;
		if (!one && problem == NULL && ev.command_id != NULL)
			v->events_with_id++;
		if (!have || ev.account_id != a->account_id)
		{
			/* The next account's events begin. */
			if (have)
				IndexFinish(v, accts, &pending, a);
			MemoryContextReset(v->accountcxt);
			AccountStart(a, ev.account_id);
			have = true;
		}
		AccountEvent(v, a, &ev, problem, &sealer, true, v->accountcxt);
	}
	if (have)
		IndexFinish(v, accts, &pending, a);
	/* Projection rows past the last account with events. */
	if (!one)
		ProjectionUpTo(v, accts, &pending, PG_INT64_MAX, &proj);
	else if (!have && ProjectionUpTo(v, accts, &pending, account_id, &proj))
		Fail(v, CHECK_PROJECTION, proj.last_seq,
			 "the account has a projection row but no event in the log");
	EsScanEnd(events);
	EsScanEnd(accts);
	EsEventSealerFree(&sealer);
	return have;
}

/*
 * The text value of key in the JSON object j (in its object under "metadata"
 * when in_metadata), or NULL.  TextKey(j, NULL) reads "reverses".
 */
static char *
TextKey(Jsonb *j, const char *in_metadata)
{
	JsonbContainer *c = &j->root;
	JsonbValue *v;

	if (!JB_ROOT_IS_OBJECT(j))
		return NULL;
	if (in_metadata)
	{
		v = getKeyJsonValueFromContainer(c, in_metadata, strlen(in_metadata),
										 NULL);
		if (v == NULL || v->type != jbvBinary ||
			!JsonContainerIsObject(v->val.binary.data))
			return NULL;
		c = v->val.binary.data;
	}
	v = getKeyJsonValueFromContainer(c, "reverses", 8, NULL);
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * Does an event's data carry the link to reversed: "reverses" at the top
 * level (0.4.0), or, for a reversal of 0.3.0 whose register row the update
 * moved to the top level, under "metadata"?
 */
static bool
SameLink(Jsonb *data, const char *reversed)
{
	char	   *link = TextKey(data, NULL);

	if (link == NULL)
		link = TextKey(data, "metadata");
	return link != NULL && strcmp(link, reversed) == 0;
}

/*
 * The commands check: every es_commands row points at an event of its
 * command (the seq it returned), a row linked to a command it reverses
 * (top-level "reverses", es_reverse's) has events that carry the same link
 * (a link planted in the register, by a restore that copies es_commands
 * unchecked, would block a reversal), and the events carrying a command id are
 * exactly those of registered commands (their count equals what the
 * physical walk counted).  A register row planted without its events
 * would make a retry return a seq and write nothing.
 */
static void
VerifyCommands(EsVerify *v)
{
	EsScanIter *reg = EsScanBegin(ES_REL_COMMANDS, ES_REL_COMMANDS_ID_IDX,
								  false, 0, GetActiveSnapshot());
	int64		registered_events = 0;

	while (EsScanNext(reg))
	{
		TupleTableSlot *r = reg->slot;
		char	   *id;
		int64		seq;
		bool		points = false;
		char	   *reverses;
		bool		linked;
		EsScanIter *evs;

		v->checks[CHECK_COMMANDS].checked++;
		if (r->tts_isnull[ES_CMD_ATT_COMMAND_ID - 1] ||
			r->tts_isnull[ES_CMD_ATT_SEQ - 1] ||
			r->tts_isnull[ES_CMD_ATT_COMMAND - 1])
		{
			Fail(v, CHECK_COMMANDS, -1, "an es_commands row has a null column");
			continue;
		}
		id = TextDatumGetCString(r->tts_values[ES_CMD_ATT_COMMAND_ID - 1]);
		seq = DatumGetInt64(r->tts_values[ES_CMD_ATT_SEQ - 1]);
		reverses = TextKey(DatumGetJsonbP(r->tts_values[ES_CMD_ATT_COMMAND - 1]),
						   NULL);
		linked = true;
		/* The events of the command, by es_events_command_id_idx. */
		evs = EsScanBeginText(ES_REL_EVENTS, ES_REL_EVENTS_COMMAND_ID_IDX, id,
							  GetActiveSnapshot());
		while (EsScanNext(evs))
		{
			TupleTableSlot *e = evs->slot;

			registered_events++;
			if (!e->tts_isnull[ES_EV_ATT_SEQ - 1] &&
				DatumGetInt64(e->tts_values[ES_EV_ATT_SEQ - 1]) == seq)
				points = true;
			if (reverses != NULL &&
				(e->tts_isnull[ES_EV_ATT_DATA - 1] ||
				 !SameLink(DatumGetJsonbP(e->tts_values[ES_EV_ATT_DATA - 1]),
						   reverses)))
				linked = false;
		}
		EsScanEnd(evs);
		if (!points)
			Fail(v, CHECK_COMMANDS, seq,
				 psprintf("the register row of command id \"%s\" gives seq %lld, which is not an event of that command",
						  id, (long long) seq));
		else if (!linked)
			Fail(v, CHECK_COMMANDS, seq,
				 psprintf("the register row of command id \"%s\" says it reverses \"%s\", which its events do not",
						  id, reverses));
	}
	EsScanEnd(reg);
	if (registered_events != v->events_with_id)
		Fail(v, CHECK_COMMANDS, -1,
			 psprintf("%lld events carry a command id, %lld of them belong to registered commands",
					  (long long) v->events_with_id, (long long) registered_events));
}

/* ------------------------------------------------------------ transfers */

/* The state of the transfers part of the projection check. */
typedef struct EsVerifyTransfers
{
	EsVerify   *v;
	EsScanIter *proj;			/* es_transfers by seq, probed per transfer */
	int64		derived;
	HTAB	   *reserved;		/* account_id -> its open reservations */
} EsVerifyTransfers;

/* What the open reservations of the log hold on one account. */
typedef struct EsReservedSums
{
	int64		account_id;		/* key */
	int128		out;
	int128		in;
} EsReservedSums;

/* Add an open reservation's amount to one side of an account's sums. */
static void
AddReserved(HTAB *reserved, int64 account_id, bool out, int64 amount)
{
	bool		found;
	EsReservedSums *r = hash_search(reserved, &account_id, HASH_ENTER, &found);

	if (!found)
		r->out = r->in = 0;
	if (out)
		r->out += amount;
	else
		r->in += amount;
}

/*
 * One transfer derived from the log (EsScanTransfers): its es_transfers
 * row, found by seq, must equal it.
 */
static void
VerifyTransferDerived(const EsTransfer *t, void *arg)
{
	EsVerifyTransfers *ctx = arg;
	ScanKeyData skey;
	EsTransfer	row;
	const char *problem;
	MemoryContext old;

	ctx->derived++;
	if (ctx->reserved && t->status == ES_TRANSFER_PENDING)
	{
		AddReserved(ctx->reserved, t->from_account_id, true, t->amount);
		AddReserved(ctx->reserved, t->to_account_id, false, t->amount);
	}
	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   InvalidOid, F_INT8EQ, Int64GetDatum(t->seq));
	index_rescan(ctx->proj->scan, &skey, 1, NULL, 0);
	if (!EsScanNext(ctx->proj))
	{
		Fail(ctx->v, CHECK_PROJECTION, t->seq,
			 psprintf("transfer \"%s\" has events but no es_transfers row",
					  t->transfer_id));
		return;
	}
	old = MemoryContextSwitchTo(ctx->proj->rowcxt);
	problem = EsRowTransferDecode(ctx->proj->slot->tts_values,
								  ctx->proj->slot->tts_isnull, &row);
	MemoryContextSwitchTo(old);
	if (problem)
		Fail(ctx->v, CHECK_PROJECTION, t->seq,
			 psprintf("es_transfers row of transfer \"%s\" is damaged: %s",
					  t->transfer_id, problem));
	else if (!EsFoldTransfersEqual(t, &row))
		Fail(ctx->v, CHECK_PROJECTION, t->seq,
			 psprintf("transfer \"%s\": the es_transfers row (%s, %lld of %lld posted) differs from the fold of its events (%s, %lld of %lld posted)",
					  t->transfer_id, EsFoldTransferStatusName(row.status),
					  (long long) row.posted_amount, (long long) row.amount,
					  EsFoldTransferStatusName(t->status),
					  (long long) t->posted_amount, (long long) t->amount));
}

/* An event the transfer fold refuses: a failure of the events check. */
static void
VerifyTransferProblem(const EsEvent *ev, const char *why, void *arg)
{
	EsVerifyTransfers *ctx = arg;

	Fail(ctx->v, CHECK_EVENTS, ev->seq,
		 psprintf("it cannot be folded into its transfer: %s", why));
}

/*
 * The transfers part of the projection check: every transfer of the log
 * (EsScanTransfers, the transfer fold of its debit account's events) has
 * its es_transfers row, equal field by field, and (whole ledger) es_transfers
 * holds no other row: as many rows as transfers, seq being its key.  Events
 * the transfer fold refuses (finishing an unknown transfer, posting more
 * than it reserved, posting after or expiring before its expiry time) fail
 * the events check.  Nothing to do in a ledger without es_transfers.
 */
static void
VerifyTransfers(EsVerify *v, bool one, int64 account_id)
{
	EsVerifyTransfers ctx;
	int64		rows = 0;

	if (!EsRowHasTransfers())
		return;
	v->has_transfers = true;
	ctx.v = v;
	ctx.derived = 0;
	ctx.reserved = NULL;
	if (!one)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(EsReservedSums);
		ctl.hcxt = CurrentMemoryContext;
		ctx.reserved = hash_create("es_verify reservations", 64, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	ctx.proj = EsScanBegin(ES_REL_TRANSFERS, ES_REL_TRANSFERS_SEQ_IDX, true, 0,
						   GetActiveSnapshot());
	EsScanTransfers(one, account_id, NULL, GetActiveSnapshot(),
					VerifyTransferDerived, VerifyTransferProblem, &ctx);
	EsScanEnd(ctx.proj);
	if (one)
	{
		v->checks[CHECK_PROJECTION].checked += ctx.derived;
		return;
	}
	ctx.proj = EsScanBegin(ES_REL_TRANSFERS, ES_REL_TRANSFERS_SEQ_IDX, false, 0,
						   GetActiveSnapshot());
	while (EsScanNext(ctx.proj))
	{
		EsTransfer	row;
		const char *problem;
		MemoryContext old = MemoryContextSwitchTo(ctx.proj->rowcxt);

		problem = EsRowTransferDecode(ctx.proj->slot->tts_values,
									  ctx.proj->slot->tts_isnull, &row);
		MemoryContextSwitchTo(old);
		rows++;
		if (problem)
			Fail(v, CHECK_PROJECTION, -1,
				 psprintf("es_transfers row of seq %lld is damaged: %s",
						  (long long) row.seq, problem));
	}
	EsScanEnd(ctx.proj);
	v->checks[CHECK_PROJECTION].checked += rows;
	if (rows != ctx.derived)
		Fail(v, CHECK_PROJECTION, -1,
			 psprintf("es_transfers holds %lld rows, the log %lld transfers",
					  (long long) rows, (long long) ctx.derived));

	/*
	 * Reservations are conserved: each account's pending_out and pending_in
	 * (its es_accounts row, which the projection check compares with its
	 * fold) are the sums of the log's open reservations from and to it. The
	 * account fold and the transfer fold read different events (both sides,
	 * the debit side), so this catches a side missing or changed.
	 */
	ctx.proj = EsScanBegin(ES_REL_ACCOUNTS, ES_REL_ACCOUNTS_ID_IDX, false, 0,
						   GetActiveSnapshot());
	while (EsScanNext(ctx.proj))
	{
		EsAccountState proj;
		EsReservedSums *r;
		int128		out = 0;
		int128		in = 0;

		if (EsScanDecodeState(ctx.proj, &proj) != NULL)
			continue;			/* reported by the projection check */
		r = hash_search(ctx.reserved, &proj.account_id, HASH_FIND, NULL);
		if (r)
		{
			out = r->out;
			in = r->in;
		}
		if (out != proj.pending_out || in != proj.pending_in)
			Fail(v, CHECK_CONSERVATION, proj.last_seq,
				 psprintf("account \"%s\": pending_out %lld and pending_in %lld, but its open reservations sum to %s out and %s in",
						  proj.account, (long long) proj.pending_out,
						  (long long) proj.pending_in, Int128Text(out),
						  Int128Text(in)));
	}
	EsScanEnd(ctx.proj);
	hash_destroy(ctx.reserved);
}

/* A failure of the snapshots check (an EsSnapFailCallback). */
static void
SnapshotFail(int64 seq, const char *why, void *arg)
{
	Fail((EsVerify *) arg, CHECK_SNAPSHOTS, seq, why);
}

/* The planner's estimate of the number of accounts (pg_class.reltuples). */
static double
AccountsEstimate(void)
{
	Relation	r = EsRowOpenTable(ES_REL_ACCOUNTS, AccessShareLock);
	double		n = r->rd_rel->reltuples;

	table_close(r, AccessShareLock);
	return n;
}

/* Fill the result row of one check. */
static void
EmitCheck(Tuplestorestate *store, TupleDesc desc, EsCheckId id,
		  const EsCheck *c, const char *unit)
{
	Datum		values[5];
	bool		nulls[5] = {false};
	char	   *detail;

	values[0] = CStringGetTextDatum(EsCheckNames[id]);
	values[1] = BoolGetDatum(c->bad == 0);
	values[2] = Int64GetDatum(c->checked);
	if (c->has_first)
		values[3] = Int64GetDatum(c->first_seq);
	else
		nulls[3] = true;
	if (c->bad == 0)
		detail = psprintf("%lld %s checked", (long long) c->checked, unit);
	else
		detail = psprintf("%lld of %lld %s bad; first: %s",
						  (long long) c->bad, (long long) c->checked, unit,
						  c->has_first ?
						  psprintf("seq %lld: %s", (long long) c->first_seq,
								   c->first_why) :
						  c->unplaced_why);
	values[4] = CStringGetTextDatum(detail);
	tuplestore_putvalues(store, desc, values, nulls);
}

/*
 * es_verify(account text DEFAULT NULL)
 *	   RETURNS TABLE(check_name text, ok boolean, checked bigint,
 *					 first_bad_seq bigint, detail text)
 *
 * One row per check, over the whole ledger or one account:
 *	checksum	  each event's CRC-32C recomputed from its canonical encoding
 *				  (also fails rows that cannot be read: NULLs, a hash not 32
 *				  bytes, an unknown format)
 *	hash_chain	  each event's hash = SHA-256(previous stored hash || encoding)
 *	versions	  each account's versions are 1, 2, 3, ... without a gap
 *	events		  each event can be folded (known type, amount sign, data)
 *	projection	  each es_accounts row equals the fold of its events, and
 *				  every account has exactly one row; each es_transfers row
 *				  equals the transfer fold of its debit account's events,
 *				  and every transfer has exactly one row
 *	conservation  per currency, the sum of balances equals deposits minus
 *				  withdrawals (for one account: its balance equals the sum of
 *				  its amounts); whole ledger: each account's pending_out and
 *				  pending_in equal the sums of its open reservations
 *	commands	  each es_commands row gives the seq of an event of its
 *				  command, and only registered commands' events carry an id
 *				  (whole ledger only)
 *	snapshots	  each es_snapshots row passes the checks replay makes before
 *				  using it (magic, format, checksum, the log's event at its
 *				  version) and equals the replay of the log at its version
 * ok is false and first_bad_seq the smallest failing seq when a check
 * fails; detail says how many failed and why the first did.  Reads one
 * snapshot with AccessShareLock only: writers are never blocked.  ES003
 * for an account the log does not know.
 */
PG_FUNCTION_INFO_V1(es_verify);
Datum
es_verify(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		one = !PG_ARGISNULL(0);
	int64		account_id = 0;
	EsVerify	v;
	HASHCTL		ctl;
	EsWalkAccount walk;
	const EsAccountState *fold = &walk.fold;
	bool		have_account = false;
	const char *saved_activity = debug_query_string;

	InitMaterializedSRF(fcinfo, 0);
	if (one)
	{
		char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));

		if (!EsScanFindOpened(name, &account_id))
			ereport(ERROR,
					(errcode(ERRCODE_ES_ACCOUNT_NOT_FOUND),
					 errmsg("account \"%s\" not found", name),
					 errdetail("The log holds no AccountOpened event for it.")));
	}

	memset(&v, 0, sizeof(v));
	ctl.keysize = NAMEDATALEN * 4;
	ctl.entrysize = sizeof(EsCurrencySums);
	ctl.hcxt = CurrentMemoryContext;
	v.currencies = hash_create("es_verify currencies", 16, &ctl,
							   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	v.accountcxt = AllocSetContextCreate(CurrentMemoryContext, "es_verify account",
										 ALLOCSET_DEFAULT_SIZES);
	AccountStart(&walk, 0);

	if (!one &&
		(EsVerifyStrategy == ES_VERIFY_PHYSICAL ||
		 (EsVerifyStrategy == ES_VERIFY_AUTO &&
		  AccountsEstimate() <= ES_VERIFY_WALK_MAX_ACCOUNTS)))
		VerifyPhysical(&v);

	else
		have_account = VerifyByIndex(&v, one, account_id, &walk);

	VerifyTransfers(&v, one, account_id);
	if (!one)
		VerifyCommands(&v);
	v.checks[CHECK_SNAPSHOTS].checked = EsSnapVerify(one, account_id,
													 SnapshotFail, &v);
	if (one)
	{
		v.checks[CHECK_CONSERVATION].checked = have_account ? 1 : 0;
		if (have_account && fold->status != ES_ACCOUNT_NONE &&
			Currency(&v, fold->currency)->balances != walk.amounts)
			Fail(&v, CHECK_CONSERVATION, fold->last_seq,
				 psprintf("account \"%s\": the balance %s is not the sum of its amounts, %s",
						  fold->account, Int128Text(Currency(&v, fold->currency)->balances),
						  Int128Text(walk.amounts)));
	}
	else
	{
		HASH_SEQ_STATUS status;
		EsCurrencySums *sums;

		hash_seq_init(&status, v.currencies);
		while ((sums = hash_seq_search(&status)) != NULL)
		{
			v.checks[CHECK_CONSERVATION].checked++;
			if (sums->balances != sums->external)
				Fail(&v, CHECK_CONSERVATION, -1,
					 psprintf("%s: the balances sum to %s, deposits minus withdrawals to %s",
							  sums->currency, Int128Text(sums->balances),
							  Int128Text(sums->external)));
		}
	}

	for (int i = 0; i < CHECK_COUNT; i++)
		EmitCheck(rsinfo->setResult, rsinfo->setDesc, (EsCheckId) i,
				  &v.checks[i],
				  i == CHECK_VERSIONS ?
				  (v.walked_by_index > 0 ?
				   psprintf("accounts (%lld met out of physical order, walked by index)",
							(long long) v.walked_by_index) : "accounts") :
				  i == CHECK_PROJECTION ?
				  (v.has_transfers ? "rows of es_accounts and es_transfers" :
				   "accounts") :
				  i == CHECK_COMMANDS ? "commands" :
				  i == CHECK_SNAPSHOTS ? "snapshots" :
				  i == CHECK_CONSERVATION ? (one ? "accounts" : "currencies") :
				  "events");
	if (saved_activity)
		pgstat_report_activity(STATE_RUNNING, saved_activity);
	return (Datum) 0;
}
