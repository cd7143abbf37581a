/*-------------------------------------------------------------------------
 *
 * es_ledger.h
 *	  Shared declarations of the es_ledger extension, grouped by the file
 *	  that defines them, bottom layer first.
 *
 * A file may use the files listed before it, never those after it.  Each
 * file exports functions with its own prefix, so a name says where it lives.
 *
 *	  es_event.c	EsEvent		an event's canonical encoding, checksum, hash link
 *	  es_fold.c		EsFold		the fold: one event applied to one account state
 *	  es_row.c		EsRow		the row codec: table shapes, relation look-up by
 *								OID, rows <-> C structs
 *	  es_catalog.c	EsCatalog	the extension's own objects in the catalogs
 *								(members, es_log tables, its script running)
 *								and the ES011 refusal of a change to one
 *	  es_guard.c	EsGuard		the write guard and the projection trigger
 *	  es_hooks.c	EsHooks		the object-access hooks: drop guard, owner
 *								guard, name reservation
 *	  es_ddl.c		(none)		the DDL guard: es_guard_ddl, the event
 *								trigger's statement checks
 *	  es_restore.c	EsRestore	the restore path: rows copied into the log,
 *								verified (version chain, checksum, hash)
 *	  es_am.c		(none)		the es_log table access method (immutable heap)
 *	  es_cache.c	EsCache		the per-transaction account cache
 *	  es_scan.c		EsScan		reading our tables by index scans (replay,
 *								verify, the writer's sequence check)
 *	  es_write.c	EsWrite		executor-level appends and projection writes
 *	  es_snap.c		EsSnap		snapshots: an account's state stored at a
 *								version, written every snapshot_interval
 *								events and read by replay
 *	  es_decide.c	EsDecide	the command handler table: each command type's
 *								fields, rules and the events it produces
 *	  es_name.c		EsName		the rules for account names, currencies and ids
 *	  es_command.c	EsCommand	a command's JSON (or a shorthand's arguments)
 *								checked into an EsCommand
 *	  es_handler.c	EsHandler	user projections' registry, handlers run as
 *								their owners, inline projections run for
 *								the events of an es_apply call
 *	  es_apply.c	EsApply		es_apply and the shorthands: parse, lock,
 *								decide, append; expiry of reservations
 *								(es_expire_pending)
 *	  es_each.c		(none)		es_apply_each: a batch applied command by
 *								command, a result row each, no
 *								subtransaction per command
 *	  es_reverse.c	(none)		es_reverse: an applied command undone by its
 *								compensating command
 *	  es_replay.c	(none)		es_replay: an account folded from the log alone
 *	  es_history.c	(none)		es_history, es_balance_at, es_accounts_at: the
 *								log read as of a time, from the log alone
 *	  es_read.c		EsRead		es_read: following the log with a cursor that
 *								never skips nor repeats an event
 *	  es_dba.c		(none)		es_rebuild_projections, es_restore_to: the
 *								projections rebuilt from the log, or restored
 *								as of a time into a schema of its own
 *	  es_verify.c	EsVerify	es_verify; es_ledger.verify_strategy
 *	  es_digest.c	(none)		es_digest, es_verify_digest
 *	  es_projection.c EsProjection	user projections: es_projection_create,
 *								pause, resume, rebuild, drop, run; async
 *								projections applied by following es_read
 *	  es_worker.c	EsWorker	the background workers applying async
 *								projections (launcher, one per database)
 *	  es_module.c	(none)		module magic and _PG_init
 *
 * The SQL interface these implement is documented in doc/reference.md; how
 * they fit together in doc/design.md.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_LEDGER_H
#define ES_LEDGER_H

#include "postgres.h"

#include "access/genam.h"
#include "access/transam.h"
#include "access/tupdesc.h"
#include "catalog/objectaddress.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "storage/lockdefs.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"

/*
 * SQLSTATEs of the ledger (doc/reference.md, "Errors").  Class "ES" is ours.
 */
#define ES_ERRCODE(n)	MAKE_SQLSTATE('E','S','0',(n)/10 + '0',(n)%10 + '0')
#define ERRCODE_ES_INSUFFICIENT_FUNDS		ES_ERRCODE(1)
#define ERRCODE_ES_BALANCE_LIMIT			ES_ERRCODE(2)
#define ERRCODE_ES_ACCOUNT_NOT_FOUND		ES_ERRCODE(3)
#define ERRCODE_ES_ACCOUNT_EXISTS			ES_ERRCODE(4)
#define ERRCODE_ES_ACCOUNT_NOT_OPEN			ES_ERRCODE(5)
#define ERRCODE_ES_CURRENCY_MISMATCH		ES_ERRCODE(6)
#define ERRCODE_ES_VERSION_CONFLICT			ES_ERRCODE(7)
#define ERRCODE_ES_IDEMPOTENCY_CONFLICT		ES_ERRCODE(8)
#define ERRCODE_ES_INVALID_COMMAND			ES_ERRCODE(9)
#define ERRCODE_ES_PENDING_NOT_FOUND		ES_ERRCODE(10)
#define ERRCODE_ES_LOG_IMMUTABLE			ES_ERRCODE(11)
#define ERRCODE_ES_INTEGRITY				ES_ERRCODE(12)
#define ERRCODE_ES_PENDING_EXPIRED			ES_ERRCODE(13)
#define ERRCODE_ES_ACCOUNT_NOT_EMPTY		ES_ERRCODE(14)

/* Longest account name, currency or command id, in characters. */
#define ES_MAX_NAME_CHARS	200

/* ---------------------------------------------------------------- es_event.c */

/*
 * The canonical encoding of an event is a structure of our own that is
 * persisted indirectly (its checksum and hash are stored), so it carries a
 * magic number and a format version like any on-disk structure.
 */
#define ES_EVENT_MAGIC			0x45534556	/* "ESEV" */
#define ES_EVENT_FORMAT_VERSION	1
#define ES_HASH_LEN				32	/* SHA-256 */

typedef enum EsEventType
{
	ES_EV_INVALID = 0,
	ES_EV_ACCOUNT_OPENED,
	ES_EV_DEPOSITED,
	ES_EV_WITHDRAWN,
	ES_EV_TRANSFER_SENT,
	ES_EV_TRANSFER_RECEIVED,
	ES_EV_ACCOUNT_FROZEN,
	ES_EV_ACCOUNT_UNFROZEN,
	ES_EV_ACCOUNT_CLOSED,
	ES_EV_LIMITS_CHANGED,
	ES_EV_TRANSFER_RESERVED,	/* two-phase transfers (es_fold.c) */
	ES_EV_TRANSFER_POSTED,
	ES_EV_TRANSFER_VOIDED,
	ES_EV_TRANSFER_EXPIRED
} EsEventType;

#define ES_EV_LAST ES_EV_TRANSFER_EXPIRED

/* One row of es_events, in memory. */
typedef struct EsEvent
{
	int64		seq;
	int64		account_id;
	int64		version;
	EsEventType type;
	int64		amount;			/* signed: + credit, - debit */
	Jsonb	   *data;			/* never NULL; {} when empty */
	char	   *command_id;		/* NULL when the command had no id */
	TimestampTz recorded_at;
	TimestampTz effective_at;
	uint32		checksum;		/* CRC-32C of the canonical encoding */
	uint8		hash[ES_HASH_LEN];	/* SHA-256(prev hash || encoding) */
} EsEvent;

extern const char *EsEventTypeName(EsEventType type);
extern EsEventType EsEventTypeFromName(const char *name);
extern void EsEventEncode(const EsEvent *ev, StringInfo buf);

/* A SHA-256 context and encoding buffer reused across events. */
typedef struct EsEventSealer
{
	struct pg_cryptohash_ctx *ctx;
	StringInfoData buf;
} EsEventSealer;

extern void EsEventSealerInit(EsEventSealer *sealer);
extern void EsEventSealerFree(EsEventSealer *sealer);
extern void EsEventComputeSeal(EsEventSealer *sealer, const EsEvent *ev,
							   const uint8 *prev_hash, uint32 *checksum,
							   uint8 *hash);
extern void EsEventSeal(EsEvent *ev, const uint8 *prev_hash);
extern const uint8 *EsEventGenesisHash(void);

/* ----------------------------------------------------------------- es_fold.c */

typedef enum EsAccountStatus
{
	ES_ACCOUNT_NONE = 0,		/* no AccountOpened folded yet */
	ES_ACCOUNT_OPEN,
	ES_ACCOUNT_FROZEN,
	ES_ACCOUNT_CLOSED
} EsAccountStatus;

/* One account's state: a row of es_accounts, in memory. */
typedef struct EsAccountState
{
	int64		account_id;
	char	   *account;		/* name */
	char	   *currency;
	EsAccountStatus status;
	int64		balance;
	int64		pending_out;
	int64		pending_in;
	int64		available;		/* balance - pending_out */
	int64		overdraft_limit;
	bool		has_max_balance;
	int64		max_balance;
	int64		version;
	int64		last_seq;
	TimestampTz opened_at;
	TimestampTz updated_at;
	uint8		last_hash[ES_HASH_LEN];
} EsAccountState;

extern void EsFoldInit(EsAccountState *state, int64 account_id);
extern const char *EsFoldProblem(const EsAccountState *state, const EsEvent *ev);
extern void EsFoldEvent(EsAccountState *state, const EsEvent *ev);
extern bool EsFoldNeedsData(EsEventType type);
extern const char *EsFoldStatusName(EsAccountStatus status);
extern EsAccountStatus EsFoldStatusFromName(const char *name);

/*
 * Two-phase transfers.  A transfer's row of es_transfers is the fold of the
 * events of its debit side ("from"): TransferSent (an immediate transfer,
 * posted at once) or TransferReserved (pending), then at most one of
 * TransferPosted, TransferVoided, TransferExpired.
 */
typedef enum EsTransferStatus
{
	ES_TRANSFER_NONE = 0,		/* no creating event folded yet */
	ES_TRANSFER_POSTED,
	ES_TRANSFER_PENDING,
	ES_TRANSFER_VOIDED,
	ES_TRANSFER_EXPIRED
} EsTransferStatus;

/* One transfer: a row of es_transfers, in memory. */
typedef struct EsTransfer
{
	char	   *transfer_id;	/* command id, or "#" and seq */
	char	   *from_account;
	char	   *to_account;
	int64		amount;			/* reserved (pending) or moved (immediate) */
	int64		posted_amount;
	EsTransferStatus status;
	TimestampTz created_at;
	bool		has_expires_at;
	TimestampTz expires_at;
	TimestampTz updated_at;
	int64		seq;			/* seq of its first event (debit side) */
	int64		from_account_id;
	int64		to_account_id;
	char	   *command_id;		/* id of the creating command, or NULL */
} EsTransfer;

/* The longest timeout of a pending transfer, in seconds (about 68 years). */
#define ES_MAX_TIMEOUT_SECONDS	PG_INT32_MAX

extern bool EsFoldEventIsTransfer(const EsEvent *ev, bool *debit_side);
extern char *EsFoldEventTransferId(const EsEvent *ev);
extern const char *EsFoldTransferProblem(const EsTransfer *t, const EsEvent *ev);
extern void EsFoldTransfer(EsTransfer *t, const EsEvent *ev,
						   const char *from_account);
extern const char *EsFoldTransferStatusName(EsTransferStatus status);
extern EsTransferStatus EsFoldTransferStatusFromName(const char *name);
extern bool EsFoldTransfersEqual(const EsTransfer *a, const EsTransfer *b);

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
	TimestampTz max_recorded_at;	/* greatest recorded_at of events 1..version */
	TimestampTz max_effective_at;	/* greatest effective_at of events 1..version */
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

/* ---------------------------------------------------------------- es_guard.c */

extern void EsGuardBeginWrite(void);
extern void EsGuardEndWrite(void);
extern bool EsGuardWriting(void);
extern bool EsGuardRestoring(void);
extern void EsGuardRestoreTable(Relation rel);
extern bool EsGuardRestoredLog(void);
extern void EsGuardInit(void);

/* ---------------------------------------------------------------- es_hooks.c */

extern void EsHooksInit(void);

/* -------------------------------------------------------------- es_restore.c */

extern void EsRestoreCheckEvents(Relation events, TupleTableSlot **slots,
								 int nslots);

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

extern void EsWriteInit(void);
extern void EsWriteBegin(void);
extern void EsWriteEnd(void);
extern void EsWriteNextCommand(void);
extern int64 EsWriteNextSeq(void);
extern int64 EsWriteNextAccountId(void);
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
extern bool EsWriteFindTransfer(const char *command_id, EsTransfer *t);
extern void EsWriteInsertTransfer(const EsTransfer *t);
extern void EsWriteUpdateTransfer(const EsTransfer *t);
extern void EsWriteDeleteTransfer(ItemPointer tid);
extern List *EsWriteExpiredTransfers(EsRel index, int64 account_id,
									 TimestampTz now, int max);
extern void EsWriteInsertRow(EsRel rel, Datum *values, bool *isnull);

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

/* --------------------------------------------------------------- es_decide.c */

typedef enum EsCommandType
{
	ES_CMD_OPEN_ACCOUNT,
	ES_CMD_DEPOSIT,
	ES_CMD_WITHDRAW,
	ES_CMD_TRANSFER,
	ES_CMD_FREEZE_ACCOUNT,
	ES_CMD_UNFREEZE_ACCOUNT,
	ES_CMD_CLOSE_ACCOUNT,
	ES_CMD_SET_LIMITS,
	ES_CMD_POST_PENDING,
	ES_CMD_VOID_PENDING,
	ES_CMD_COUNT
} EsCommandType;

/* A command whose shape has been checked; the rules are checked later. */
typedef struct EsCommand
{
	EsCommandType type;
	int			ordinal;		/* 1-based position in a batch, 0 if single */
	char	   *id;				/* idempotency key or NULL */
	bool		has_effective_at;
	TimestampTz effective_at;
	bool		has_expected_version;
	int64		expected_version;
	Jsonb	   *metadata;		/* a JSON object or NULL */
	char	   *reverses;		/* set by es_reverse only: the command id this
								 * command compensates, or NULL */
	char	   *account;		/* account; "from" of a transfer */
	char	   *to_account;		/* "to" of a transfer */
	char	   *currency;
	bool		has_amount;
	int64		amount;
	bool		has_overdraft_limit;
	int64		overdraft_limit;
	bool		has_max_balance;	/* the field was given (maybe null) */
	bool		max_balance_null;
	int64		max_balance;
	bool		pending;		/* transfer: "pending": true */
	bool		has_pending;	/* the field was given (true or false) */
	bool		has_timeout;
	int64		timeout;		/* seconds */
	char	   *pending_id;		/* post_pending, void_pending */
} EsCommand;

/* The most events one command writes, and the most accounts it names. */
#define ES_MAX_COMMAND_EVENTS	2
#define ES_MAX_COMMAND_ACCOUNTS	2

/*
 * A command's rejection as a value: the error es_apply raises for it
 * (EsRejectionRaise) and es_apply_each records as the command's row.  Made
 * where the rule is found (EsReject), returned up the apply pipeline, never
 * thrown and caught.  sqlerrcode 0: no rejection.
 */
typedef struct EsRejection
{
	int			sqlerrcode;
	char	   *message;
	char	   *detail;			/* or NULL */
	char	   *hint;			/* or NULL */
	char	   *context;		/* or NULL */
} EsRejection;

/*
 * What a command decided: its events, each on one of the command's
 * accounts (0: "account"/"from", 1: "to"), not yet numbered or sealed.
 */
typedef struct EsDecision
{
	/* Given by the caller before decide(). */
	TimestampTz now;			/* the recorded_at its events will get */
	const EsTransfer *transfer; /* post_pending, void_pending: the transfer
								 * named (latest state, accounts locked) */
	/* Filled in by decide(): the events, or the rejection (no events). */
	EsRejection rejection;
	int			nevents;
	struct
	{
		int			account;	/* index into the command's accounts */
		EsEventType type;
		int64		amount;
		Jsonb	   *data;
	}			events[ES_MAX_COMMAND_EVENTS];
} EsDecision;

/*
 * A command type's handler: its shape (fields it takes and needs) and its
 * decision.  decide() gets the states of the accounts the command names
 * (found[i] false for a name with no account) and either returns the rule
 * the command breaks (out->rejection, EsReject) or fills in its events.  It
 * reads nothing else.
 */
/* Who may send a command type: a member of which of the extension's roles. */
typedef enum EsCommandRole
{
	ES_ROLE_WRITER,				/* es_ledger_writer: money movements */
	ES_ROLE_ADMIN,				/* es_ledger_admin: account administration */
	ES_ROLE_OPENER,				/* either: open_account without credit */
	ES_ROLE_COUNT
} EsCommandRole;

typedef struct EsCommandHandler
{
	const char *name;			/* the JSON "type" */
	EsCommandRole role;			/* who may send it */
	bool		opens;			/* creates its account (no row to lock) */
	const char *fields[5];		/* fields taken besides the common ones */
	void		(*check) (const EsCommand *cmd);	/* required fields */
	void		(*decide) (const EsCommand *cmd, const EsAccountState *states,
						   const bool *found, EsDecision *out);
	bool		by_transfer;	/* names a pending transfer ("pending_id"),
								 * whose accounts es_apply.c locks */
} EsCommandHandler;

extern const EsCommandHandler *EsDecideHandler(EsCommandType type);
extern bool EsDecideTypeFromName(const char *name, EsCommandType *type);
extern const char *EsDecideTypeNames(void);
extern const char *EsDecideRoleName(EsCommandRole role);
extern bool EsReject(EsRejection *rej, int sqlerrcode, char *message,
					 char *detail, char *hint);
extern void EsRejectionRaise(const EsRejection *rej) pg_attribute_noreturn();
typedef void (*EsDecideParser) (void *arg);
extern bool EsDecideTryParse(EsDecideParser parse, void *arg,
							 EsRejection *rej);
extern bool EsDecideAccountExists(const char *account, EsRejection *rej);
extern void EsDecideReject(int sqlerrcode, char *message, char *detail) pg_attribute_noreturn();
extern void EsDecideRejectHint(int sqlerrcode, char *message, char *detail,
							   char *hint) pg_attribute_noreturn();
extern EsCommandRole EsDecideCommandRole(const EsCommand *cmd);
extern void EsDecideInvalid(int ordinal, const char *msg, const char *detail) pg_attribute_noreturn();
extern bool EsDecidePendingNotFound(const char *pending_id, EsRejection *rej);
extern void EsDecideExpire(const EsTransfer *t, const EsAccountState *states,
						   EsDecision *out);
extern bool EsDecideExpired(const EsTransfer *t, TimestampTz now);
extern TimestampTz EsDecideClock(TimestampTz recorded_at);

/* ----------------------------------------------------------------- es_name.c */

extern void EsNameCheck(const char *what, const char *value, int ordinal,
						bool is_id);

/* -------------------------------------------------------------- es_command.c */

/*
 * EsCommandInit defines the GUCs bounding a command's input
 * (es_ledger.max_batch_commands, max_metadata_bytes, max_metadata_depth) and
 * reserves the "es_ledger" prefix: call it after every other es_ledger GUC.
 * EsCommandParseArgument's commands share allocations: free them with their
 * memory context, never one by one.
 */
extern void EsCommandInit(void);
extern List *EsCommandParseArgument(Jsonb *jb);
extern void EsCommandParse(Jsonb *jb, int ordinal, EsCommand *cmd);
extern void EsCommandStart(EsCommand *cmd, EsCommandType type, int ordinal);
extern void EsCommandSetText(EsCommand *cmd, const char *key, const char *value);
extern void EsCommandSetInt(EsCommand *cmd, const char *key, bool isnull,
							int64 value);
extern void EsCommandSetMetadata(EsCommand *cmd, Jsonb *metadata);
extern void EsCommandSetEffectiveAt(EsCommand *cmd, TimestampTz effective_at);
extern void EsCommandFinish(EsCommand *cmd);
extern Jsonb *EsCommandCanonical(const EsCommand *cmd);
extern void EsCommandKeep(EsCommand *cmd);
extern void EsCommandCheckBatchSize(int ncmds);
extern void EsCommandParseElement(JsonbValue *v, int ordinal, EsCommand *cmd);

/* -------------------------------------------------------------- es_handler.c */

/* The first columns of es_projection_registry, which es_handler.c reads. */
typedef enum EsProjectionAttr
{
	ES_PRJ_ATT_NAME = 1, ES_PRJ_ATT_OWNER, ES_PRJ_ATT_MODE, ES_PRJ_ATT_STATE,
	ES_PRJ_ATT_HANDLER, ES_PRJ_ATT_RESET, ES_PRJ_ATT_SEARCH_PATH,
	ES_PRJ_NREAD = ES_PRJ_ATT_SEARCH_PATH
} EsProjectionAttr;

/* A user projection, as registered. */
typedef struct EsHandlerProjection
{
	char	   *name;
	Oid			owner;			/* handlers run as this role */
	bool		inline_mode;	/* inline, else async */
	char	   *state;			/* running, paused or failed */
	Oid			handler;		/* function(es_events) */
	Oid			reset;			/* function() or InvalidOid */
	char	   *search_path;	/* the handlers' search_path */
} EsHandlerProjection;

/* While a projection's code runs as its owner (EsHandlerEnter). */
typedef struct EsHandlerContext
{
	Oid			saved_user;
	int			saved_sec;
	int			nestlevel;
	FmgrInfo	flinfo;
} EsHandlerContext;

/* The argument of EsHandlerErrorContext. */
typedef struct EsHandlerErrorArg
{
	const char *name;
	int64		seq;			/* 0 for the reset function */
} EsHandlerErrorArg;

extern Oid	EsHandlerRegistryRelid(void);
extern bool EsHandlerHaveRegistry(void);
extern void EsHandlerCheckRegistryShape(TupleDesc desc);
extern void EsHandlerFromValues(Datum *values, bool *isnull,
								EsHandlerProjection *p);
extern void *EsHandlerCollectBegin(MemoryContext cxt);
extern void *EsHandlerCollectEnd(void *prev);
extern void EsHandlerCollect(const EsEvent *ev);
extern int	EsHandlerCollectMark(void);
extern void EsHandlerCollectForget(int mark);
extern void EsHandlerCheckFunction(Oid funcid, bool is_handler);
extern void EsHandlerCheckAccess(const EsHandlerProjection *p);
extern void EsHandlerEnter(const EsHandlerProjection *p, EsHandlerContext *ctx,
						   bool reset);
extern void EsHandlerLeave(EsHandlerContext *ctx);
extern void EsHandlerInvoke(EsHandlerContext *ctx, Datum arg, int nargs);
extern Datum EsHandlerEventDatum(const EsEvent *ev, const FullTransactionId *tx);
extern void EsHandlerRunInline(void *collected);
extern void EsHandlerSetCatchingUp(const char *name);
extern void EsHandlerErrorContext(void *arg);

/* ---------------------------------------------------------------- es_apply.c */

extern int64 EsApplyCommands(List *cmds);

/* The body of a write bracket (EsApplyInBracket). */
typedef void (*EsApplyBody) (void *arg);
extern void EsApplyInBracket(EsApplyBody body, void *arg);

/*
 * One command, the one pipeline es_apply and es_apply_each share: the role
 * check, the batch's locks, and EsApplyCommand, which returns the seq or a
 * rejection (rej->sqlerrcode set, nothing written).  Without isolated, a
 * command that could be rejected after writing writes nothing and says so
 * (ES_APPLY_ISOLATE): the caller runs it again isolated, in a
 * subtransaction.
 */
#define ES_APPLY_ISOLATE	(-1)
extern bool EsApplyAuthorize(List *cmds, EsRejection *rej);
extern void EsApplyLockBatch(List *cmds);
extern int64 EsApplyCommand(const EsCommand *cmd, EsRejection *rej,
							bool isolated);

/* ----------------------------------------------------------------- es_each.c */

/* (none: es_apply_each is SQL-callable only) */

/* ----------------------------------------------------------------- es_read.c */

/*
 * A position in the log as es_read orders it: the (tx, seq) of the last
 * event a follower processed.  Its text form ("es1:<tx>:<seq>:<crc>") is
 * opaque to users.
 */
typedef struct EsReadCursor
{
	FullTransactionId tx;		/* the writing transaction's full xid */
	int64		seq;
} EsReadCursor;

#define ES_READ_CURSOR_PREFIX	"es1"	/* cursor format version 1 */
#define ES_READ_MAX_COUNT		100000	/* most events per es_read call */

/*
 * Called by EsReadBatch with each event and the cursor after it; both are
 * valid during the call only.
 */
typedef void (*EsReadCallback) (const EsEvent *ev, const EsReadCursor *pos,
								void *arg);

extern void EsReadParseCursor(const char *text, EsReadCursor *cursor);
extern char *EsReadFormatCursor(const EsReadCursor *cursor);
extern int64 EsReadBatch(const EsReadCursor *after, int64 max_count,
						 EsReadCallback callback, void *arg);

/* ---------------------------------------------------------------- es_verify.c */

/* Defines es_ledger.verify_strategy (a developer setting). */
extern void EsVerifyInit(void);

/* ---------------------------------------------------------------- es_digest.c */

extern void EsDigestInit(void);

/* ----------------------------------------------------------- es_projection.c */

/* The advisory lock tag keys of a database's worker (field4 = 3). */
#define ES_WORKER_LOCK_KEY1 0x45534C47	/* "ESLG" */
#define ES_WORKER_LOCK_KEY2 0x50524A57	/* "PRJW" */

struct BackgroundWorker;
struct LOCKTAG;

extern void EsProjectionInit(void);
extern bool EsProjectionDatabaseWanted(const char *dbname);
extern void EsProjectionWorkerLockTag(struct LOCKTAG *tag, Oid dboid);
extern void EsProjectionWorkerSpec(struct BackgroundWorker *worker, Oid dboid,
								   const char *dbname);
extern List *EsProjectionRunnable(void);
extern int64 EsProjectionStep(const char *name, bool *more);

/* ---------------------------------------------------------------- es_worker.c */

extern void EsWorkerInit(void);

#endif							/* ES_LEDGER_H */
