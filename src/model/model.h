/*-------------------------------------------------------------------------
 *
 * model.h
 *	  Declarations of the model layer of es_ledger, grouped by the file
 *	  that defines them.
 *
 * src/model/: the domain, no database access: an event's canonical
 * encoding, checksum and hash link (es_event), the fold of an event into
 * an account state and of a transfer's events (es_fold), the command
 * handler table with each command type's rules and the events it decides
 * (es_decide), and the rules for names, currencies and ids (es_name).
 * Nothing here reads or writes a table; replay, verify and es_apply all
 * fold through es_fold.c, so they cannot disagree.
 *
 * A file of src/model/ includes this header only; it may use what this
 * header and the headers below it declare (none: this is the bottom
 * layer), never a folder above. `make check-layers` checks includes and
 * calls.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_MODEL_H
#define ES_MODEL_H


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
	TimestampTz effective_at;	/* effective_at of its creating event: not a
								 * column of es_transfers; set by the fold and
								 * by the writer's reads of a transfer */
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
extern TimestampTz EsDecideEffectiveAt(const EsCommand *cmd,
									   const EsDecision *decision);

/* ----------------------------------------------------------------- es_name.c */

extern void EsNameCheck(const char *what, const char *value, int ordinal,
						bool is_id);

#endif							/* ES_MODEL_H */
