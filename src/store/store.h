/*-------------------------------------------------------------------------
 *
 * store.h
 *	  Declarations of the store layer of es_ledger, grouped by the file
 *	  that defines them.
 *
 * src/store/: the extension's tables as C sees them: the row codec and
 * relation look-up by OID (es_row), the extension's own objects in the
 * catalogs (es_catalog), the write guard (es_guard), the per-transaction
 * account cache (es_cache), index scans (es_scan), executor-level appends
 * and projection writes (es_write; es_transfers' rows: es_transfer_write),
 * snapshots (es_snap) and the operator's shared counters (es_stats).
 * Built on model/.
 *
 * A file of src/store/ includes this header only; it may use what this
 * header and the headers below it declare (model/), never a folder above.
 * `make check-layers` checks includes and calls.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_STORE_H
#define ES_STORE_H

#include "nodes/execnodes.h"

#include "../model/model.h"

/* ------------------------------------------------------------------ es_row.c */

/* The newest 0.x.0 install script this library knows (EsRelDef.since). */
#define ES_NEWEST_MINOR			4

/*
 * The extension's relations, found by OID (EsRowRelid).  Tables first; the
 * codec knows the shape of each table.
 */
typedef enum EsRel
{
	ES_REL_EVENTS,				/* es_events, the log */
	ES_REL_ACCOUNTS,			/* es_accounts, the projection */
	ES_REL_COMMANDS,			/* es_commands, the idempotency register */
	ES_REL_TRANSFERS,			/* es_transfers, the transfers' projection
								 * (0.3.0; absent before ALTER EXTENSION
								 * UPDATE: EsRowHasTransfers) */
	ES_REL_SNAPSHOTS,			/* es_snapshots, derived (0.3.0 on) */
	ES_REL_EVENTS_SEQ_IDX,		/* es_events_pkey (seq) */
	ES_REL_EVENTS_VERSION_IDX,	/* es_events_account_version_key */
	ES_REL_EVENTS_OPENED_IDX,	/* es_events_opened_idx (data->>'account') */
	ES_REL_EVENTS_COMMAND_ID_IDX,	/* es_events_command_id_idx */
	ES_REL_ACCOUNTS_ID_IDX,		/* es_accounts_pkey (account_id) */
	ES_REL_ACCOUNTS_NAME_IDX,	/* es_accounts_account_key */
	ES_REL_COMMANDS_ID_IDX,		/* es_commands_pkey */
	ES_REL_EVENTS_TX_IDX,		/* es_events_tx_seq_idx (tx, seq), since
								 * 0.3.0: InvalidOid in an older ledger */
	ES_REL_TRANSFERS_SEQ_IDX,	/* es_transfers_pkey (seq) */
	ES_REL_TRANSFERS_EXPIRES_IDX,	/* es_transfers_expires_idx (pending) */
	ES_REL_TRANSFERS_FROM_IDX,	/* es_transfers_from_pending_idx */
	ES_REL_TRANSFERS_TO_IDX,	/* es_transfers_to_pending_idx */
	ES_REL_SNAPSHOTS_IDX,		/* es_snapshots_pkey (account_id, version) */
	ES_REL_COMMANDS_REVERSES_IDX,	/* es_commands_reverses_idx: the unique
									 * partial index on command->>'reverses'
									 * (0.4.0: InvalidOid before) */
	ES_REL_EVENTS_SEQ,			/* es_events_seq_seq */
	ES_REL_ACCOUNTS_SEQ,		/* es_accounts_account_id_seq */
	ES_REL_COUNT
} EsRel;

#define ES_REL_TABLE_COUNT (ES_REL_SNAPSHOTS + 1)

/* Attribute numbers of es_events ... */
typedef enum EsEventAttr
{
	ES_EV_ATT_SEQ = 1, ES_EV_ATT_ACCOUNT_ID, ES_EV_ATT_VERSION, ES_EV_ATT_TYPE,
	ES_EV_ATT_AMOUNT, ES_EV_ATT_DATA, ES_EV_ATT_COMMAND_ID,
	ES_EV_ATT_RECORDED_AT, ES_EV_ATT_EFFECTIVE_AT, ES_EV_ATT_CHECKSUM,
	ES_EV_ATT_HASH, ES_EV_ATT_FORMAT, ES_EV_ATT_TX,
	ES_EV_NATTS = ES_EV_ATT_TX
} EsEventAttr;

/* ... of es_accounts ... */
typedef enum EsAccountAttr
{
	ES_ACC_ATT_ACCOUNT_ID = 1, ES_ACC_ATT_ACCOUNT, ES_ACC_ATT_CURRENCY,
	ES_ACC_ATT_STATUS, ES_ACC_ATT_BALANCE, ES_ACC_ATT_PENDING_OUT,
	ES_ACC_ATT_PENDING_IN, ES_ACC_ATT_AVAILABLE, ES_ACC_ATT_OVERDRAFT_LIMIT,
	ES_ACC_ATT_MAX_BALANCE, ES_ACC_ATT_VERSION, ES_ACC_ATT_LAST_SEQ,
	ES_ACC_ATT_OPENED_AT, ES_ACC_ATT_UPDATED_AT, ES_ACC_ATT_LAST_HASH,
	ES_ACC_NATTS = ES_ACC_ATT_LAST_HASH
} EsAccountAttr;

/* ... and of es_commands. */
typedef enum EsCommandAttr
{
	ES_CMD_ATT_COMMAND_ID = 1, ES_CMD_ATT_COMMAND, ES_CMD_ATT_SEQ,
	ES_CMD_NATTS = ES_CMD_ATT_SEQ
} EsCommandAttr;

/* ... and of es_transfers. */
typedef enum EsTransferAttr
{
	ES_TR_ATT_TRANSFER_ID = 1, ES_TR_ATT_FROM_ACCOUNT, ES_TR_ATT_TO_ACCOUNT,
	ES_TR_ATT_AMOUNT, ES_TR_ATT_POSTED_AMOUNT, ES_TR_ATT_STATUS,
	ES_TR_ATT_CREATED_AT, ES_TR_ATT_EXPIRES_AT, ES_TR_ATT_UPDATED_AT,
	ES_TR_ATT_SEQ, ES_TR_ATT_FROM_ACCOUNT_ID, ES_TR_ATT_TO_ACCOUNT_ID,
	ES_TR_ATT_COMMAND_ID,
	ES_TR_NATTS = ES_TR_ATT_COMMAND_ID
} EsTransferAttr;

/*
 * ... and of es_snapshots: the columns of es_accounts first (the state
 * codec writes both), then what replay needs to choose and trust one.
 */
typedef enum EsSnapshotAttr
{
	ES_SNAP_ATT_MAX_RECORDED_AT = ES_ACC_NATTS + 1, ES_SNAP_ATT_MAX_EFFECTIVE_AT,
	ES_SNAP_ATT_FORMAT, ES_SNAP_ATT_MAGIC, ES_SNAP_ATT_CHECKSUM,
	ES_SNAP_NATTS = ES_SNAP_ATT_CHECKSUM
} EsSnapshotAttr;

/*
 * A snapshot: an account's state at its version (state.version), as the
 * fold of events 1 .. version left it; state.last_seq and state.updated_at
 * are the seq and recorded_at of the event at that version, state.last_hash
 * its hash.  A persisted structure of ours: it carries a magic number and a
 * format version, and a SHA-256 checksum over all of it (es_snap.c).
 */
#define ES_SNAP_MAGIC			0x4553534E	/* "ESSN" */
#define ES_SNAP_FORMAT_VERSION	1

typedef struct EsSnapshot
{
	EsAccountState state;
	TimestampTz max_recorded_at;	/* greatest recorded_at of events
									 * 1..version */
	TimestampTz max_effective_at;	/* greatest effective_at of events
									 * 1..version */
	int16		format;
	int32		magic;
	uint8		checksum[ES_HASH_LEN];
} EsSnapshot;

extern Oid	EsRowRelid(EsRel rel);
extern bool EsRowHasTransfers(void);
extern void EsRowRequireTransfers(void);
extern bool EsRowRelExists(EsRel rel);
extern Oid	EsRowColumnType(EsRel rel, int attno);
extern const char *EsRowRelName(EsRel rel);
extern Relation EsRowOpenTable(EsRel rel, LOCKMODE lockmode);
extern void EsRowCheckShape(TupleDesc desc, EsRel rel, const char *relname);
extern void EsRowEventToValues(const EsEvent *ev, Datum *values, bool *isnull);
extern const char *EsRowEventDecode(const Datum *values, const bool *isnull,
									EsEvent *ev);
extern void EsRowEventFromValues(const Datum *values, const bool *isnull,
								 EsEvent *ev);
extern const char *EsRowEventDecodeForFold(TupleTableSlot *slot, EsEvent *ev);
extern void EsRowStateToValues(const EsAccountState *state, Datum *values,
							   bool *isnull);
extern const char *EsRowStateDecode(const Datum *values, const bool *isnull,
									EsAccountState *state);
extern void EsRowStateFromValues(const Datum *values, const bool *isnull,
								 EsAccountState *state);
extern Datum EsRowStateToDatum(const EsAccountState *state, TupleDesc desc);
extern void EsRowSnapshotToValues(const EsSnapshot *snap, Datum *values,
								  bool *isnull);
extern const char *EsRowSnapshotDecode(const Datum *values, const bool *isnull,
									   EsSnapshot *snap);
extern void EsRowCommandToValues(const char *id, Jsonb *command, int64 seq,
								 Datum *values, bool *isnull);
extern void EsRowCommandFromValues(const Datum *values, const bool *isnull,
								   Jsonb **command, int64 *seq);
extern int64 EsRowSlotInt64(TupleTableSlot *slot, int attno);
extern void EsRowTransferToValues(const EsTransfer *t, Datum *values,
								  bool *isnull);
extern const char *EsRowTransferDecode(const Datum *values, const bool *isnull,
									   EsTransfer *t);
extern void EsRowTransferFromValues(const Datum *values, const bool *isnull,
									EsTransfer *t);

/* -------------------------------------------------------------- es_catalog.c */

/* The detail and hint of a refused change to an object of es_ledger. */
#define ES_DETAIL_SHAPE \
	"es_apply relies on the tables, indexes, sequences and functions of es_ledger exactly as its scripts created them."
#define ES_HINT_SCRIPTS \
	"Only the scripts of es_ledger (CREATE EXTENSION, ALTER EXTENSION es_ledger UPDATE) may change its objects."

extern Oid	EsCatalogLogAmOid(void);
extern Oid	EsCatalogExtensionOid(void);
extern bool EsCatalogInOurScript(Oid extoid);
extern void EsCatalogExtensionSchemaOwner(Oid extoid, Oid *nspoid, Oid *owner);
extern bool EsCatalogRelIsEsLog(Oid relid);
extern bool EsCatalogRelIsOurs(Oid relid, Oid extoid);
extern bool EsCatalogTypeIsOurs(Oid typoid, Oid extoid);
extern void EsCatalogRefuseObject(const ObjectAddress *addr, const char *what);
extern Oid	EsCatalogRelOwner(Oid relid);
extern Oid	EsCatalogSubscriptionOf(Oid relid);

/* ---------------------------------------------------------------- es_guard.c */

extern void EsGuardBeginWrite(void);
extern void EsGuardEndWrite(void);
extern bool EsGuardWriting(void);
extern bool EsGuardRestoring(void);
extern void EsGuardRestoreTable(Relation rel);
extern bool EsGuardRestoredLog(void);
extern void EsGuardInit(void);

/* ---------------------------------------------------------------- es_cache.c */

extern void EsCacheInit(void);
extern const EsAccountState *EsCacheLookup(Relation accounts, const char *name,
										   ItemPointer tid);
extern void EsCacheStore(Relation accounts, const EsAccountState *state,
						 ItemPointer tid);
extern void EsCacheReset(void);
extern void EsCacheStoreDeferred(Relation accounts, const EsAccountState *state);
extern EsAccountState *EsCacheDeferred(Relation accounts, int *n);

/* ----------------------------------------------------------------- es_scan.c */

typedef void (*EsScanCallback) (const EsEvent *ev, void *arg);

extern bool EsScanProbeText(Relation heap, Relation idx, const char *key,
							Snapshot snapshot, TupleTableSlot *slot);
extern bool EsScanFindOpened(const char *account, int64 *account_id);
extern int64 EsScanAccount(int64 account_id, int64 after_version,
						   const TimestampTz *as_of,
						   const TimestampTz *effective_until,
						   EsScanCallback callback, void *arg);

/* A walk over one of our tables through one of its indexes. */
typedef struct EsScanIter
{
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;		/* the current row, deformed */
	MemoryContext rowcxt;		/* reset at every row */
	ScanDirection direction;	/* forward unless set before the first row */
} EsScanIter;

extern EsScanIter *EsScanBegin(EsRel table, EsRel index, bool by_key,
							   int64 key, Snapshot snapshot);
extern EsScanIter *EsScanBeginKeys(EsRel table, EsRel index, int nkeys,
								   ScanKey key, Snapshot snapshot);
extern EsScanIter *EsScanBeginText(EsRel table, EsRel index, const char *key,
								   Snapshot snapshot);
extern EsScanIter *EsScanBeginAccount(int64 account_id, int64 after_version,
									  Snapshot snapshot);
extern bool EsScanEventAt(int64 account_id, int64 version, Snapshot snapshot,
						  EsEvent *ev);
extern bool EsScanNext(EsScanIter *it);
extern const char *EsScanDecodeEvent(EsScanIter *it, EsEvent *ev);
extern const char *EsScanDecodeState(EsScanIter *it, EsAccountState *state);
extern void EsScanEnd(EsScanIter *it);
extern int64 EsScanMaxKey(EsRel rel, EsRel idx, int attno);
extern void EsScanWarnIfNotFinal(TimestampTz as_of);

/* How often long scans show their progress, in events. */
#define ES_SCAN_PROGRESS_EVENTS 100000
extern void EsScanReportProgress(const char *what, int64 events);
extern bool EsScanFindReversal(const char *command_id, const char *except_id,
							   char **reversal_id);

/* The transfers of the log, derived by the transfer fold (EsScanTransfers). */
typedef void (*EsScanTransferCallback) (const EsTransfer *t, void *arg);
typedef void (*EsScanProblemCallback) (const EsEvent *ev, const char *why,
									   void *arg);
extern int64 EsScanTransfers(bool one, int64 account_id,
							 const TimestampTz *as_of, Snapshot snapshot,
							 EsScanTransferCallback callback,
							 EsScanProblemCallback problem, void *arg);

/* ---------------------------------------------------------------- es_write.c */

/*
 * The writer: the tables of one es_apply call, opened by EsWriteBegin.
 * Store-internal: only es_write.c (which owns it: begin, end, the
 * subtransaction that began it) and es_transfer_write.c (the rows of
 * es_transfers) use its members; nothing above store/ does.
 */
/* The tables of one es_apply call. */
typedef struct EsWriter
{
	EState	   *estate;
	ResultRelInfo *events;
	ResultRelInfo *accounts;
	ResultRelInfo *commands;
	Relation	account_idx;	/* unique index on es_accounts.account */
	Relation	command_idx;	/* primary key of es_commands */
	TupleTableSlot *acc_slot;	/* heap slot for reading es_accounts */
	TupleTableSlot *acc_new;	/* virtual slot for writing es_accounts */
	TupleTableSlot *ev_new;		/* virtual slot for es_events */
	TupleTableSlot *cmd_slot;	/* heap slot for reading es_commands */
	TupleTableSlot *cmd_new;	/* virtual slot for es_commands */
	ResultRelInfo *transfers;	/* es_transfers, opened on first use */
	TupleTableSlot *tr_slot;	/* heap slot for reading es_transfers */
	TupleTableSlot *tr_new;		/* virtual slot for writing es_transfers */
	/* The posted-row fast path (InsertPostedTransfer), opened on first use. */
	bool		tr_fast_checked;
	bool		tr_fast;		/* es_transfers qualifies for it */
	Relation	tr_rel;
	Relation	tr_pkey;
	IndexInfo  *tr_pkey_info;
	TupleTableSlot *tr_fast_slot;
	EPQState	epqstate;
	SubTransactionId subid;		/* the subtransaction that began it */
	bool		defer;			/* account rows written at the end only */
	struct EsWriter *prev;		/* the caller's, if es_apply is nested */
} EsWriter;

extern void EsWriteInit(void);
extern void EsWriteBegin(void);
extern void EsWriteEnd(void);
extern void EsWriteNextCommand(void);
extern bool EsWriteLookupAccountId(const char *account, int64 *account_id);
extern void EsWriteLockAccounts(const char *const *names, int n,
								EsAccountState *states, bool *found);
extern bool EsWriteInsertAccount(const EsAccountState *state);
extern void EsWriteUpdateAccount(const EsAccountState *state);
extern void EsWriteDeleteAccount(ItemPointer tid);
extern void EsWriteInsertEvent(const EsEvent *ev);
extern bool EsWriteFindCommand(const char *id, Jsonb **command, int64 *seq);
extern bool EsWriteInsertCommand(const char *id, Jsonb *command, int64 seq);
extern void EsWriteOpenAll(void);
extern void EsWriteDeferUpdates(void);
extern void EsWriteFlushUpdates(void);
extern bool EsWriteTryLockAccount(const char *name, EsAccountState *state);
extern EsWriter *EsWriteCurrent(void);
extern void EsWriteOpenTransfers(void);
extern bool EsWriteTransferFastPath(void);
extern void EsWriteInsertRow(EsRel rel, Datum *values, bool *isnull);

/* ------------------------------------------------------- es_transfer_write.c */

extern bool EsWriteFindTransfer(const char *command_id, EsTransfer *t);
extern void EsWriteInsertTransfer(const EsTransfer *t);
extern void EsWriteUpdateTransfer(const EsTransfer *t);
extern void EsWriteDeleteTransfer(ItemPointer tid);
extern List *EsWriteExpiredTransfers(EsRel index, int64 account_id,
									 TimestampTz now, int max);

/* ----------------------------------------------------------------- es_heal.c */

extern int64 EsHealNextSeq(void);
extern int64 EsHealNextAccountId(void);

/* --------------------------------------------------------------- es_notify.c */

extern void EsNotifyInit(void);
extern void EsNotifyAppended(int64 seq);

/* ----------------------------------------------------------------- es_snap.c */

extern int	EsSnapInterval;

/* Called with each failure es_verify's snapshots check finds. */
typedef void (*EsSnapFailCallback) (int64 seq, const char *why, void *arg);

extern void EsSnapInit(void);
extern bool EsSnapFind(int64 account_id, const char *account,
					   const TimestampTz *as_of,
					   const TimestampTz *effective_until, EsSnapshot *snap);
extern void EsSnapAfterAppend(const EsAccountState *state, int64 prev_version);
extern int64 EsSnapVerify(bool one, int64 account_id, EsSnapFailCallback fail,
						  void *arg);

/* ---------------------------------------------------------------- es_stats.c */

extern void EsStatsInit(void);
extern bool EsStatsEnabled(void);
extern void EsStatsCountApplied(EsCommandType type);
extern void EsStatsCountRejected(int sqlerrcode);

#endif							/* ES_STORE_H */
