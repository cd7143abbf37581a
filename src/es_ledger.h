/*-------------------------------------------------------------------------
 *
 * es_ledger.h
 *	  Shared declarations of the es_ledger extension, grouped by the file
 *	  that defines them, bottom layer first.
 *
 * The layers, each of which may use only those above it in this header:
 *
 *	  es_event.c	an event's canonical encoding, checksum and hash link
 *	  es_fold.c		the fold: one event applied to one account state
 *	  es_guard.c	the write guard and the triggers that enforce it
 *	  es_am.c		the es_log table access method (immutable heap)
 *
 * (es_am.c has no functions of its own in this header: PostgreSQL reaches
 * it through es_log_handler.)
 *	  es_write.c	appending events, locking and writing account rows
 *	  es_store.c	reading the log for replay (SPI)
 *	  es_command.c	parsing and validating a command's JSON shape
 *	  es_apply.c	es_apply and the typed shorthands
 *	  es_replay.c	es_replay: an account folded from the log alone
 *	  es_ledger.c	module magic and _PG_init
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_LEDGER_H
#define ES_LEDGER_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

/*
 * SQLSTATEs of the contract (CONTRACT.md section 3).  Class "ES" is ours.
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
#define ES_HASH_LEN				32		/* SHA-256 */

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
	ES_EV_LIMITS_CHANGED
} EsEventType;

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
extern void EsEventSeal(EsEvent *ev, const uint8 *prev_hash);
extern const uint8 *EsGenesisHash(void);
extern Datum EsHashGetDatum(const uint8 *hash);
extern void EsHashFromDatum(Datum d, uint8 *out);

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

extern void EsStateInit(EsAccountState *state, int64 account_id);
extern void EsFoldEvent(EsAccountState *state, const EsEvent *ev);
extern const char *EsStatusName(EsAccountStatus status);
extern EsAccountStatus EsStatusFromName(const char *name);

/* ---------------------------------------------------------------- es_guard.c */

extern void EsGuardBeginWrite(void);
extern void EsGuardEndWrite(void);
extern bool EsGuardWriting(void);
extern void EsGuardInit(void);
extern Oid	EsLogAmOid(void);

/* ---------------------------------------------------------------- es_write.c */

extern void EsWriteInit(void);
extern void EsWriteBegin(void);
extern void EsWriteEnd(void);
extern void EsWriteNextCommand(void);
extern int64 EsStoreNextSeq(void);
extern int64 EsStoreNextAccountId(void);
extern bool EsStoreLookupAccountId(const char *account, int64 *account_id);
extern void EsStoreLockAccounts(const char *const *names, int n,
								EsAccountState *states, bool *found);
extern void EsStoreInsertAccount(const EsAccountState *state);
extern void EsStoreUpdateAccount(const EsAccountState *state);
extern void EsStoreInsertEvent(const EsEvent *ev);
extern bool EsStoreFindCommand(const char *id, Jsonb **command, int64 *seq);
extern void EsStoreInsertCommand(const char *id, Jsonb *command, int64 seq);
extern Datum EsStateToDatum(const EsAccountState *state, TupleDesc tupdesc);

/* ---------------------------------------------------------------- es_store.c */

extern void EsStoreConnect(void);
extern void EsStoreFinish(void);
extern bool EsStoreFindAccountInLog(const char *account, int64 *account_id);

typedef void (*EsEventCallback) (const EsEvent *ev, void *arg);
extern int64 EsStoreScanAccount(int64 account_id, TimestampTz *as_of,
								TimestampTz *effective_until,
								EsEventCallback callback, void *arg);

/* -------------------------------------------------------------- es_command.c */

typedef enum EsCommandType
{
	ES_CMD_OPEN_ACCOUNT,
	ES_CMD_DEPOSIT,
	ES_CMD_WITHDRAW,
	ES_CMD_TRANSFER,
	ES_CMD_FREEZE_ACCOUNT,
	ES_CMD_UNFREEZE_ACCOUNT,
	ES_CMD_CLOSE_ACCOUNT,
	ES_CMD_SET_LIMITS
} EsCommandType;

/* A command whose shape has been validated; the rules are checked later. */
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
	char	   *account;		/* account; "from" of a transfer */
	char	   *to_account;		/* "to" of a transfer */
	char	   *currency;
	int64		amount;
	bool		has_overdraft_limit;
	int64		overdraft_limit;
	bool		has_max_balance;	/* the field was given (maybe null) */
	bool		max_balance_null;
	int64		max_balance;
} EsCommand;

extern const char *EsCommandTypeName(EsCommandType type);
extern List *EsParseCommands(Jsonb *jb);
extern void EsParseCommand(Jsonb *jb, int ordinal, EsCommand *cmd);
extern void EsCheckName(const char *what, const char *value, int ordinal);
extern Jsonb *EsCommandCanonical(const EsCommand *cmd);

/* ---------------------------------------------------------------- es_apply.c */

extern int64 EsApplyCommand(EsCommand *cmd);

#endif							/* ES_LEDGER_H */
