/*-------------------------------------------------------------------------
 *
 * es_decide.c
 *	  The decisions: for each command type, the fields it takes, the rules
 *	  it must pass against the current state and the events it produces.
 *
 * Everything that differs between command types is in the handler table
 * EsHandlers below, keyed by EsCommandType: the JSON "type" name, the role
 * that may send it (es_ledger_writer moves money, es_ledger_admin
 * administers accounts; es_apply.c checks it), the fields the type takes besides the common ones (id, effective_at,
 * expected_version, metadata), a check of its required fields (shape, run
 * by the parser in es_command.c) and its decide function.  Adding a command
 * type is one entry here, its decide function, and the fold case of each
 * new event type (es_fold.c).
 *
 * A decide function is pure: it gets the command and the states of the
 * accounts the command names (already locked by es_apply.c, found[i]
 * false for a name with no account) and either returns the rule the command
 * breaks as a value (EsDecision.rejection: SQLSTATE, message, detail, hint;
 * it raises nothing) or fills in an EsDecision: the events to append, each with its
 * account, type, signed amount and data.  It reads no table, clock or
 * setting, so the same command against the same state always decides the
 * same.  Numbering, sealing, folding and writing the events is es_apply.c's.
 *
 * Rules, in the order a command meets them: existence (ES003/ES004),
 * expected_version (ES007), status (ES005), currency (ES006), funds (ES001:
 * available - amount may not pass -overdraft_limit), cap (ES002: balance +
 * pending_in + amount may not pass max_balance), emptiness (ES014).  The
 * comparisons use 128-bit arithmetic, so none can wrap; a balance that
 * would leave bigint fails with 22003.
 *
 * Two-phase transfers.  A transfer with "pending": true passes the same
 * rules as an immediate one (the funds and cap rules count reservations:
 * available = balance - pending_out, and balance + pending_in) and writes
 * TransferReserved on both accounts, moving no money.  post_pending and
 * void_pending name the transfer ("pending_id"), not accounts: es_apply.c
 * finds it, locks both its accounts and hands its latest state to decide
 * (EsDecision.transfer), with the time its events will be recorded at
 * (EsDecision.now); expiry is decided by the wall clock at the decision
 * (EsDecideClock, for post, void and expiry alike): a reservation created
 * at c with timeout t is expired from c + t on.  Rules: the transfer is pending
 * (ES010; posting an expired one ES013), its time is not up (ES013 for a
 * post; a void then fails with ES010, the reservation being released by
 * expiry), it takes effect (its effective_at, or its recorded_at if it
 * gives none) no earlier than the reservation did (ES009; see
 * EsDecideEffectiveAt: so a fold by valid time never keeps a release
 * without its reservation), the amount posted is at most the reserved
 * amount (ES009), and a
 * post moves money, so both accounts must be open (ES005).  A post is not
 * checked against the funds and cap rules again: the reservation already
 * counted against them, and posting only lowers available's reservation
 * and moves pending_in into balance.  EsDecideExpire decides an expiry:
 * TransferExpired on both accounts, whatever their status.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "model.h"

/* ------------------------------------------------------------- ES009 */

/* "command 3 of the batch: " or "" for a single command. */
static const char *
Where(int ordinal)
{
	return ordinal > 0 ? psprintf("command %d of the batch: ", ordinal) : "";
}

/* ------------------------------------------------------- rejections */

/*
 * Make *rej the rejection sqlerrcode with message, detail and hint (NULL
 * for none), and return false, so a check can "return EsReject(...)".
 */
bool
EsReject(EsRejection *rej, int sqlerrcode, char *message, char *detail,
		 char *hint)
{
	rej->sqlerrcode = sqlerrcode;
	rej->message = message;
	rej->detail = detail;
	rej->hint = hint;
	rej->context = NULL;
	return false;
}

/* Raise a rejection as the error es_apply gives for it. */
void
EsRejectionRaise(const EsRejection *rej)
{
	ereport(ERROR,
			(errcode(rej->sqlerrcode),
			 errmsg_internal("%s", rej->message),
			 rej->detail ? errdetail_internal("%s", rej->detail) : 0,
			 rej->hint ? errhint("%s", rej->hint) : 0,
			 rej->context ? errcontext("%s", rej->context) : 0));
	pg_unreachable();
}

/*
 * The parser's rejections (ES009, 22003), found deep in pure code (es_command.c,
 * es_name.c, the handlers' check functions): under EsDecideTryParse they end
 * the parse at once and come back as its value, never entering elog.c; else
 * they are raised.  The trap is only for code that, from EsDecideTryParse
 * down to EsDecideReject, holds nothing a transaction abort would release:
 * it allocates memory, and that is all (a timestamp is parsed in a
 * subtransaction of its own, ended before its rejection is made).
 */
typedef struct EsParseTrap
{
	sigjmp_buf	jump;
	EsRejection *rej;
} EsParseTrap;

static EsParseTrap *ParseTrap = NULL;

/*
 * The inner part of EsDecideTryParse, in a frame of its own, so that its
 * sigsetjmp does not share a frame with PG_TRY's (whose locals, such as
 * PG_TRY's own _do_rethrow, a siglongjmp to the trap could otherwise
 * clobber: gcc -Wclobbered): run parse(arg) with trap set; true if it
 * returned, false if it made a rejection, after restoring the error stack,
 * error context and memory context it started with.
 */
static pg_noinline bool
RunTrapped(EsParseTrap *trap, EsDecideParser parse, void *arg,
		   MemoryContext cxt)
{
	sigjmp_buf *volatile stack = PG_exception_stack;
	ErrorContextCallback *volatile context = error_context_stack;

	if (sigsetjmp(trap->jump, 0) == 0)
	{
		ParseTrap = trap;
		parse(arg);
		return true;
	}
	PG_exception_stack = stack;
	error_context_stack = context;
	MemoryContextSwitchTo(cxt);
	return false;
}

/*
 * Run parse(arg); true if it returned, false with *rej set if it made a
 * rejection (EsDecideReject).  Any other error goes on up as ever.
 */
bool
EsDecideTryParse(EsDecideParser parse, void *arg, EsRejection *rej)
{
	EsParseTrap trap;
	EsParseTrap *volatile outer = ParseTrap;
	MemoryContext volatile cxt = CurrentMemoryContext;
	volatile bool done = false;

	trap.rej = rej;
	PG_TRY();
	{
		done = RunTrapped(&trap, parse, arg, cxt);
	}
	PG_CATCH();
	{
		ParseTrap = outer;
		PG_RE_THROW();
	}
	PG_END_TRY();
	ParseTrap = outer;
	return done;
}

/*
 * A parser's rejection (see EsParseTrap): back to EsDecideTryParse as a
 * value, or raised.
 */
void
EsDecideReject(int sqlerrcode, char *message, char *detail)
{
	EsDecideRejectHint(sqlerrcode, message, detail, NULL);
}

/* EsDecideReject with a hint (NULL for none). */
void
EsDecideRejectHint(int sqlerrcode, char *message, char *detail, char *hint)
{
	if (ParseTrap != NULL)
	{
		EsReject(ParseTrap->rej, sqlerrcode, message, detail, hint);
		siglongjmp(ParseTrap->jump, 1);
	}
	ereport(ERROR,
			(errcode(sqlerrcode),
			 errmsg_internal("%s", message),
			 detail ? errdetail_internal("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0));
	pg_unreachable();
}

/*
 * Reject a command's shape with ES009.  ordinal is its 1-based position in
 * a batch, 0 for a single command.  Used by the parser too.
 */
void
EsDecideInvalid(int ordinal, const char *msg, const char *detail)
{
	EsDecideReject(ERRCODE_ES_INVALID_COMMAND,
				   psprintf("invalid command: %s%s", Where(ordinal), msg),
				   detail ? pstrdup(detail) : NULL);
}

/* Fail with ES009 unless a required field was given. */
static void
Require(const EsCommand *cmd, bool given, const char *field)
{
	if (!given)
		EsDecideInvalid(cmd->ordinal,
						psprintf("a command of type %s needs \"%s\"",
								 EsDecideHandler(cmd->type)->name, field),
						NULL);
}

/* ------------------------------------------------------------- rules */

/*
 * Every check below returns true if the rule holds, else false with the
 * rejection in *rej (EsReject); the decide functions return at the first.
 */

/* ES003 for an unknown account. */
static bool
NotFound(const char *account, EsRejection *rej)
{
	return EsReject(rej, ERRCODE_ES_ACCOUNT_NOT_FOUND,
					psprintf("account \"%s\" not found", account),
					pstrdup("No account of that name has been opened."), NULL);
}

/*
 * ES004 for a name that is taken; also used by es_apply.c when a
 * concurrent open of the name wins the race to the unique index.
 */
bool
EsDecideAccountExists(const char *account, EsRejection *rej)
{
	return EsReject(rej, ERRCODE_ES_ACCOUNT_EXISTS,
					psprintf("account \"%s\" already exists", account),
					pstrdup("Account names are unique ledger-wide, closed accounts included."),
					NULL);
}

/* ES007 unless the account is at the version the command expects. */
static bool
CheckVersion(const EsCommand *cmd, const EsAccountState *state,
			 EsRejection *rej)
{
	if (cmd->has_expected_version && cmd->expected_version != state->version)
		return EsReject(rej, ERRCODE_ES_VERSION_CONFLICT,
						psprintf("version conflict on account \"%s\"", state->account),
						psprintf("The command expected version %lld; the account is at version %lld.",
								 (long long) cmd->expected_version,
								 (long long) state->version),
						pstrdup("Read the account again and retry."));
	return true;
}

/* ES005 unless the account is open. */
static bool
CheckOpen(const EsAccountState *state, EsRejection *rej)
{
	if (state->status != ES_ACCOUNT_OPEN)
		return EsReject(rej, ERRCODE_ES_ACCOUNT_NOT_OPEN,
						psprintf("account \"%s\" is %s", state->account,
								 EsFoldStatusName(state->status)),
						pstrdup("Only an open account accepts debits and credits."),
						NULL);
	return true;
}

/* ES005 if the account is closed (frozen accounts may be administered). */
static bool
CheckNotClosed(const EsAccountState *state, EsRejection *rej)
{
	if (state->status == ES_ACCOUNT_CLOSED)
		return CheckOpen(state, rej);
	return true;
}

/* ES001 if debiting amount would take available below -overdraft_limit. */
static bool
CheckDebit(const EsAccountState *state, int64 amount, EsRejection *rej)
{
	if ((int128) state->available - amount < -(int128) state->overdraft_limit)
		return EsReject(rej, ERRCODE_ES_INSUFFICIENT_FUNDS,
						psprintf("insufficient funds in account \"%s\"", state->account),
						psprintf("Available %lld, overdraft limit %lld, debit %lld.",
								 (long long) state->available,
								 (long long) state->overdraft_limit,
								 (long long) amount), NULL);
	return true;
}

/*
 * ES002 if crediting amount would take balance + pending_in past
 * max_balance; 22003 if the balance would leave the range of bigint.
 */
static bool
CheckCredit(const EsAccountState *state, int64 amount, EsRejection *rej)
{
	int128		after = (int128) state->balance + state->pending_in + amount;

	if (state->has_max_balance && after > state->max_balance)
		return EsReject(rej, ERRCODE_ES_BALANCE_LIMIT,
						psprintf("balance limit exceeded in account \"%s\"",
								 state->account),
						psprintf("Balance %lld, pending in %lld, credit %lld, max_balance %lld.",
								 (long long) state->balance,
								 (long long) state->pending_in,
								 (long long) amount,
								 (long long) state->max_balance), NULL);
	if ((int128) state->balance + amount > PG_INT64_MAX)
		return EsReject(rej, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
						psprintf("balance of account \"%s\" out of range", state->account),
						psprintf("Crediting %lld to %lld would pass 9223372036854775807.",
								 (long long) amount, (long long) state->balance),
						NULL);
	return true;
}

/* ES010 for a pending_id that names no pending transfer. */
bool
EsDecidePendingNotFound(const char *pending_id, EsRejection *rej)
{
	return EsReject(rej, ERRCODE_ES_PENDING_NOT_FOUND,
					psprintf("pending transfer \"%s\" not found", pending_id),
					pstrdup("No transfer with \"pending\": true was applied with that id."),
					NULL);
}

/* Has transfer t's time run out at now?  (Never, without a timeout.) */
bool
EsDecideExpired(const EsTransfer *t, TimestampTz now)
{
	return t->status == ES_TRANSFER_PENDING && t->has_expires_at &&
		now >= t->expires_at;
}

/*
 * The time that decides whether a reservation's time is up, for a command
 * whose events are recorded at recorded_at: the wall clock now, when the
 * command is decided under the locks of the transfer's accounts (never
 * before recorded_at).  So a post, a void and an expiry all go by the same
 * clock, and a transaction that began before the deadline cannot post
 * after it by holding its snapshot open: whichever of post, void and
 * expiry takes the accounts' locks first decides, by the clock at that
 * moment.  An expiry's events are recorded at that clock time (es_apply.c),
 * at or after expires_at; a post decided before the deadline is recorded
 * at its transaction's start, before it too.
 */
TimestampTz
EsDecideClock(TimestampTz recorded_at)
{
	TimestampTz clock = GetCurrentTimestamp();

	return Max(clock, recorded_at);
}

/*
 * The effective_at (valid time) the events of a decision get: the
 * command's, or its recorded_at (decision->now) when it gives none.  An
 * expiry (no command) takes effect at its recorded_at, but never before
 * its reservation took effect: a reservation dated in the future expires
 * at that date in valid time.  So a release (post, void or expiry) never
 * takes effect before its reservation, and a fold by valid time
 * (es_replay's effective_until, which keeps the events effective by then)
 * that keeps a release keeps its reservation too (CheckEffectiveAt
 * refuses a post or void dated earlier).
 */
TimestampTz
EsDecideEffectiveAt(const EsCommand *cmd, const EsDecision *decision)
{
	if (cmd && cmd->has_effective_at)
		return cmd->effective_at;
	if (cmd == NULL && decision->transfer)
		return Max(decision->now, decision->transfer->effective_at);
	return decision->now;
}

/*
 * ES009 unless post_pending or void_pending cmd takes effect (its
 * effective_at, or its recorded_at if it gives none) at or after its
 * transfer's reservation did: a release dated before its reservation would
 * leave a fold by valid time with a release and no reservation.
 */
static bool
CheckEffectiveAt(const EsCommand *cmd, const EsDecision *out,
				 EsRejection *rej)
{
	const EsTransfer *t = out->transfer;
	TimestampTz at = EsDecideEffectiveAt(cmd, out);
	char	   *reserved_at;

	if (at >= t->effective_at)
		return true;
	/* timestamptz_to_str answers in a static buffer: one call at a time */
	reserved_at = pstrdup(timestamptz_to_str(t->effective_at));
	return EsReject(rej, ERRCODE_ES_INVALID_COMMAND,
					psprintf("invalid command: %s%s of pending transfer \"%s\" takes effect before its reservation",
							 Where(cmd->ordinal),
							 EsDecideHandler(cmd->type)->name, t->transfer_id),
					psprintf("Its effective_at %s%s is earlier than the reservation's effective_at %s.",
							 pstrdup(timestamptz_to_str(at)),
							 cmd->has_effective_at ? "" :
							 " (its transaction time, as it gives none)",
							 reserved_at),
					pstrdup("A post or void takes effect at or after the reservation it releases: give an effective_at no earlier than the reservation's."));
}

/*
 * ES010 unless transfer t is still pending; for a post, ES013 when it
 * expired (released by expiry, or with its time run out at now).
 */
static bool
CheckPending(const EsTransfer *t, TimestampTz now, bool post,
			 EsRejection *rej)
{
	if (post && (t->status == ES_TRANSFER_EXPIRED || EsDecideExpired(t, now)))
		return EsReject(rej, ERRCODE_ES_PENDING_EXPIRED,
						psprintf("pending transfer \"%s\" expired", t->transfer_id),
						psprintf("Its timeout ran out at %s; an expired reservation is released, never posted.",
								 timestamptz_to_str(t->expires_at)), NULL);
	if (t->status != ES_TRANSFER_PENDING)
		return EsReject(rej, ERRCODE_ES_PENDING_NOT_FOUND,
						psprintf("pending transfer \"%s\" is no longer pending", t->transfer_id),
						psprintf("Its status is %s.", EsFoldTransferStatusName(t->status)),
						NULL);
	if (EsDecideExpired(t, now))
		return EsReject(rej, ERRCODE_ES_PENDING_NOT_FOUND,
						psprintf("pending transfer \"%s\" is no longer pending", t->transfer_id),
						psprintf("Its timeout ran out at %s: it is released by expiry.",
								 timestamptz_to_str(t->expires_at)), NULL);
	return true;
}

/* --------------------------------------------------------- event data */

/*
 * An event's data under construction: a jsonb object built value by value
 * (never printed as JSON text and parsed back).  jsonb sorts its keys and
 * stores numbers as numeric, so the result is the same jsonb jsonb_in would
 * make of the same object's text: the canonical encoding (es_event.c) and
 * with it every hash stay what they were.
 */
typedef struct EsData
{
	JsonbParseState *state;
} EsData;

/* Start an event's data. */
static void
DataStart(EsData *d)
{
	d->state = NULL;
	pushJsonbValue(&d->state, WJB_BEGIN_OBJECT, NULL);
}

/* Add a key before its value. */
static void
DataKey(EsData *d, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(&d->state, WJB_KEY, &k);
}

/* Add a text field. */
static void
DataText(EsData *d, const char *key, const char *value)
{
	JsonbValue	v;

	DataKey(d, key);
	v.type = jbvString;
	v.val.string.val = (char *) value;
	v.val.string.len = strlen(value);
	pushJsonbValue(&d->state, WJB_VALUE, &v);
}

/* Add an integer field, or null when !present. */
static void
DataInt(EsData *d, const char *key, bool present, int64 value)
{
	JsonbValue	v;

	DataKey(d, key);
	if (present)
	{
		v.type = jbvNumeric;
		v.val.numeric = int64_to_numeric(value);
	}
	else
		v.type = jbvNull;
	pushJsonbValue(&d->state, WJB_VALUE, &v);
}

/* Finish data that carries no command's metadata (expiry). */
static Jsonb *
DataFinishPlain(EsData *d)
{
	return JsonbValueToJsonb(pushJsonbValue(&d->state, WJB_END_OBJECT, NULL));
}

/*
 * Finish the data, adding the command's metadata (an object, checked by
 * es_command.c), and make it jsonb.  The events of a compensating command
 * (es_reverse) carry "reverses": the command id it reverses, at the top
 * level, beside the metadata: a writer's metadata cannot reach the top
 * level, so that link is es_reverse's only.
 */
static Jsonb *
DataFinish(EsData *d, const EsCommand *cmd)
{
	if (cmd->reverses)
		DataText(d, "reverses", cmd->reverses);
	if (cmd->metadata)
	{
		JsonbValue	v;

		DataKey(d, "metadata");
		v.type = jbvBinary;
		v.val.binary.data = &cmd->metadata->root;
		v.val.binary.len = VARSIZE(cmd->metadata) - VARHDRSZ;
		pushJsonbValue(&d->state, WJB_VALUE, &v);
	}
	return DataFinishPlain(d);
}

/* Add an event to a decision. */
static void
AddEvent(EsDecision *out, int account, EsEventType type, int64 amount,
		 Jsonb *data)
{
	int			i = out->nevents++;

	Assert(i < ES_MAX_COMMAND_EVENTS);
	out->events[i].account = account;
	out->events[i].type = type;
	out->events[i].amount = amount;
	out->events[i].data = data;
}

/* Add an event whose data is only the command's metadata. */
static void
AddPlainEvent(EsDecision *out, const EsCommand *cmd, EsEventType type,
			  int64 amount)
{
	EsData		d;

	DataStart(&d);
	AddEvent(out, 0, type, amount, DataFinish(&d, cmd));
}

/* ------------------------------------------------- required fields */

/* open_account needs account and currency. */
static void
CheckOpenAccount(const EsCommand *cmd)
{
	Require(cmd, cmd->account != NULL, "account");
	Require(cmd, cmd->currency != NULL, "currency");
}

/* deposit and withdraw need account and amount. */
static void
CheckAccountAmount(const EsCommand *cmd)
{
	Require(cmd, cmd->account != NULL, "account");
	Require(cmd, cmd->has_amount, "amount");
}

/* transfer needs two different accounts and an amount; no version. */
static void
CheckTransfer(const EsCommand *cmd)
{
	if (cmd->has_expected_version)
		EsDecideInvalid(cmd->ordinal,
						"\"expected_version\" is for single-account commands",
						"A transfer touches two accounts; their versions are not checked.");
	Require(cmd, cmd->account != NULL, "from");
	Require(cmd, cmd->to_account != NULL, "to");
	Require(cmd, cmd->has_amount, "amount");
	if (strcmp(cmd->account, cmd->to_account) == 0)
		EsDecideInvalid(cmd->ordinal,
						psprintf("transfer from account \"%s\" to itself",
								 cmd->account),
						"A transfer needs two different accounts.");
	if (cmd->pending && cmd->id == NULL)
		EsDecideInvalid(cmd->ordinal, "a pending transfer needs an \"id\"",
						"The id names the reservation for post_pending and void_pending.");
	if (cmd->has_timeout && !cmd->pending)
		EsDecideInvalid(cmd->ordinal,
						"\"timeout\" is for pending transfers only",
						"Add \"pending\": true, or leave the timeout out.");
}

/* post_pending and void_pending need the pending transfer's id; no version. */
static void
CheckPendingCommand(const EsCommand *cmd)
{
	if (cmd->has_expected_version)
		EsDecideInvalid(cmd->ordinal,
						"\"expected_version\" is for single-account commands",
						"A pending transfer touches two accounts; their versions are not checked.");
	Require(cmd, cmd->pending_id != NULL, "pending_id");
}

/* freeze, unfreeze and close need an account. */
static void
CheckAccount(const EsCommand *cmd)
{
	Require(cmd, cmd->account != NULL, "account");
}

/* set_limits needs an account and at least one limit. */
static void
CheckSetLimits(const EsCommand *cmd)
{
	Require(cmd, cmd->account != NULL, "account");
	if (!cmd->has_overdraft_limit && !cmd->has_max_balance)
		EsDecideInvalid(cmd->ordinal,
						"set_limits needs \"overdraft_limit\" or \"max_balance\"",
						NULL);
}

/* ------------------------------------------------------- decisions */

/* open_account: AccountOpened on a new account. */
static void
DecideOpenAccount(const EsCommand *cmd, const EsAccountState *states,
				  const bool *found, EsDecision *out)
{
	EsData		d;

	if (found[0])
	{
		EsDecideAccountExists(cmd->account, &out->rejection);
		return;
	}
	if (cmd->has_expected_version && cmd->expected_version != 0)
	{
		EsReject(&out->rejection, ERRCODE_ES_VERSION_CONFLICT,
				 psprintf("version conflict on account \"%s\"", cmd->account),
				 psprintf("The command expected version %lld; a new account is at version 0.",
						  (long long) cmd->expected_version), NULL);
		return;
	}
	DataStart(&d);
	DataText(&d, "account", cmd->account);
	DataText(&d, "currency", cmd->currency);
	DataInt(&d, "overdraft_limit", true, cmd->overdraft_limit);
	DataInt(&d, "max_balance", cmd->has_max_balance && !cmd->max_balance_null,
			cmd->max_balance);
	AddEvent(out, 0, ES_EV_ACCOUNT_OPENED, 0, DataFinish(&d, cmd));
}

/* deposit: Deposited, a credit from outside the ledger. */
static void
DecideDeposit(const EsCommand *cmd, const EsAccountState *states,
			  const bool *found, EsDecision *out)
{
	if (!found[0])
	{
		NotFound(cmd->account, &out->rejection);
		return;
	}
	if (!CheckVersion(cmd, &states[0], &out->rejection))
		return;
	if (!CheckOpen(&states[0], &out->rejection))
		return;
	if (!CheckCredit(&states[0], cmd->amount, &out->rejection))
		return;
	AddPlainEvent(out, cmd, ES_EV_DEPOSITED, cmd->amount);
}

/* withdraw: Withdrawn, a debit to outside the ledger. */
static void
DecideWithdraw(const EsCommand *cmd, const EsAccountState *states,
			   const bool *found, EsDecision *out)
{
	if (!found[0])
	{
		NotFound(cmd->account, &out->rejection);
		return;
	}
	if (!CheckVersion(cmd, &states[0], &out->rejection))
		return;
	if (!CheckOpen(&states[0], &out->rejection))
		return;
	if (!CheckDebit(&states[0], cmd->amount, &out->rejection))
		return;
	AddPlainEvent(out, cmd, ES_EV_WITHDRAWN, -cmd->amount);
}

static void DecideReserve(const EsCommand *cmd, const EsAccountState *from,
						  const EsAccountState *to, EsDecision *out);

/*
 * transfer: TransferSent on "from", then TransferReceived on "to"; or, with
 * "pending": true, TransferReserved on both (DecideReserve).
 */
static void
DecideTransfer(const EsCommand *cmd, const EsAccountState *states,
			   const bool *found, EsDecision *out)
{
	const EsAccountState *from = &states[0];
	const EsAccountState *to = &states[1];
	EsData		d;

	if (!found[0])
	{
		NotFound(cmd->account, &out->rejection);
		return;
	}
	if (!found[1])
	{
		NotFound(cmd->to_account, &out->rejection);
		return;
	}
	if (!CheckOpen(from, &out->rejection))
		return;
	if (!CheckOpen(to, &out->rejection))
		return;
	if (strcmp(from->currency, to->currency) != 0)
	{
		EsReject(&out->rejection, ERRCODE_ES_CURRENCY_MISMATCH,
				 psprintf("currency mismatch between account \"%s\" (%s) and account \"%s\" (%s)",
						  from->account, from->currency, to->account, to->currency),
				 pstrdup("A transfer moves money between accounts of one currency."),
				 NULL);
		return;
	}
	if (!CheckDebit(from, cmd->amount, &out->rejection))
		return;
	if (!CheckCredit(to, cmd->amount, &out->rejection))
		return;
	if (cmd->pending)
	{
		DecideReserve(cmd, from, to, out);
		return;
	}

	DataStart(&d);
	DataText(&d, "to", to->account);
	DataInt(&d, "to_account_id", true, to->account_id);
	if (cmd->id)
		DataText(&d, "transfer_id", cmd->id);
	AddEvent(out, 0, ES_EV_TRANSFER_SENT, -cmd->amount, DataFinish(&d, cmd));
	DataStart(&d);
	DataText(&d, "from", from->account);
	DataInt(&d, "from_account_id", true, from->account_id);
	if (cmd->id)
		DataText(&d, "transfer_id", cmd->id);
	AddEvent(out, 1, ES_EV_TRANSFER_RECEIVED, cmd->amount, DataFinish(&d, cmd));
}

/*
 * The data of a two-phase transfer event on one side: the counterparty
 * ("to" on the debit side, "from" on the credit side), the transfer's id
 * and one amount field (reserved or released).
 */
static void
DataPendingStart(EsData *d, bool debit, const EsAccountState *other,
				 const char *transfer_id, const char *field, int64 n)
{
	DataStart(d);
	DataText(d, debit ? "to" : "from", other->account);
	DataInt(d, debit ? "to_account_id" : "from_account_id", true,
			other->account_id);
	DataText(d, "transfer_id", transfer_id);
	DataInt(d, field, true, n);
}

/*
 * A pending transfer whose rules passed: TransferReserved on "from", then on
 * "to", each with the amount reserved and the timeout, if any.  22003 if a
 * pending amount would leave bigint.
 */
static void
DecideReserve(const EsCommand *cmd, const EsAccountState *from,
			  const EsAccountState *to, EsDecision *out)
{
	EsData		d;

	if ((int128) from->pending_out + cmd->amount > PG_INT64_MAX ||
		(int128) to->pending_in + cmd->amount > PG_INT64_MAX)
	{
		EsReject(&out->rejection, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
				 psprintf("pending amounts of account \"%s\" or \"%s\" out of range",
						  from->account, to->account),
				 psprintf("Reserving %lld would pass 9223372036854775807.",
						  (long long) cmd->amount), NULL);
		return;
	}
	for (int side = 0; side < 2; side++)
	{
		DataPendingStart(&d, side == 0, side == 0 ? to : from, cmd->id,
						 "reserved", cmd->amount);
		if (cmd->has_timeout)
			DataInt(&d, "timeout", true, cmd->timeout);
		AddEvent(out, side, ES_EV_TRANSFER_RESERVED, 0, DataFinish(&d, cmd));
	}
}

/*
 * The release events of transfer t on both sides ("from" is account 0,
 * "to" account 1): type, the amount posted (0 for a void or an expiry) and
 * the whole reservation released; metadata of cmd, if any.
 */
static void
AddRelease(EsDecision *out, const EsCommand *cmd, const EsTransfer *t,
		   const EsAccountState *states, EsEventType type, int64 posted)
{
	EsData		d;

	for (int side = 0; side < 2; side++)
	{
		DataPendingStart(&d, side == 0, &states[1 - side], t->transfer_id,
						 "released", t->amount);
		AddEvent(out, side, type, side == 0 ? -posted : posted,
				 cmd ? DataFinish(&d, cmd) : DataFinishPlain(&d));
	}
}

/* post_pending: TransferPosted on both accounts (see the file header). */
static void
DecidePost(const EsCommand *cmd, const EsAccountState *states,
		   const bool *found, EsDecision *out)
{
	const EsTransfer *t = out->transfer;
	int64		amount;

	if (!CheckPending(t, EsDecideClock(out->now), true, &out->rejection))
		return;
	if (!CheckEffectiveAt(cmd, out, &out->rejection))
		return;
	amount = cmd->has_amount ? cmd->amount : t->amount;
	if (amount > t->amount)
	{
		EsReject(&out->rejection, ERRCODE_ES_INVALID_COMMAND,
				 psprintf("invalid command: %spost_pending of %lld is more than the %lld pending transfer \"%s\" reserved",
						  Where(cmd->ordinal),
						  (long long) amount, (long long) t->amount,
						  t->transfer_id),
				 pstrdup("A post moves at most the amount reserved; the rest is released."),
				 NULL);
		return;
	}
	if (!CheckOpen(&states[0], &out->rejection))
		return;
	if (!CheckOpen(&states[1], &out->rejection))
		return;
	if ((int128) states[1].balance + amount > PG_INT64_MAX)
	{
		EsReject(&out->rejection, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
				 psprintf("balance of account \"%s\" out of range", states[1].account),
				 psprintf("Crediting %lld to %lld would pass 9223372036854775807.",
						  (long long) amount, (long long) states[1].balance), NULL);
		return;
	}
	AddRelease(out, cmd, t, states, ES_EV_TRANSFER_POSTED, amount);
}

/* void_pending: TransferVoided on both accounts, releasing everything. */
static void
DecideVoid(const EsCommand *cmd, const EsAccountState *states,
		   const bool *found, EsDecision *out)
{
	if (!CheckPending(out->transfer, EsDecideClock(out->now), false, &out->rejection))
		return;
	if (!CheckEffectiveAt(cmd, out, &out->rejection))
		return;
	AddRelease(out, cmd, out->transfer, states, ES_EV_TRANSFER_VOIDED, 0);
}

/*
 * The expiry of pending transfer t, whose time has run out at out->now:
 * TransferExpired on both accounts (states[0] "from", states[1] "to"),
 * releasing the reservation, whatever the accounts' status.  No command:
 * the events carry no metadata and no command id.
 */
void
EsDecideExpire(const EsTransfer *t, const EsAccountState *states,
			   EsDecision *out)
{
	if (!EsDecideExpired(t, out->now))
		elog(ERROR, "pending transfer \"%s\" has not expired", t->transfer_id);
	AddRelease(out, NULL, t, states, ES_EV_TRANSFER_EXPIRED, 0);
}

/* freeze_account: AccountFrozen on an open account. */
static void
DecideFreeze(const EsCommand *cmd, const EsAccountState *states,
			 const bool *found, EsDecision *out)
{
	if (!found[0])
	{
		NotFound(cmd->account, &out->rejection);
		return;
	}
	if (!CheckVersion(cmd, &states[0], &out->rejection))
		return;
	if (!CheckOpen(&states[0], &out->rejection))
		return;
	AddPlainEvent(out, cmd, ES_EV_ACCOUNT_FROZEN, 0);
}

/* unfreeze_account: AccountUnfrozen on a frozen account. */
static void
DecideUnfreeze(const EsCommand *cmd, const EsAccountState *states,
			   const bool *found, EsDecision *out)
{
	if (!found[0])
	{
		NotFound(cmd->account, &out->rejection);
		return;
	}
	if (!CheckVersion(cmd, &states[0], &out->rejection))
		return;
	if (states[0].status != ES_ACCOUNT_FROZEN)
	{
		EsReject(&out->rejection, ERRCODE_ES_ACCOUNT_NOT_OPEN,
				 psprintf("account \"%s\" is %s, not frozen", states[0].account,
						  EsFoldStatusName(states[0].status)),
				 pstrdup("Only a frozen account can be unfrozen."), NULL);
		return;
	}
	AddPlainEvent(out, cmd, ES_EV_ACCOUNT_UNFROZEN, 0);
}

/* close_account: AccountClosed on an empty account that is not closed. */
static void
DecideClose(const EsCommand *cmd, const EsAccountState *states,
			const bool *found, EsDecision *out)
{
	const EsAccountState *s = &states[0];

	if (!found[0])
	{
		NotFound(cmd->account, &out->rejection);
		return;
	}
	if (!CheckVersion(cmd, s, &out->rejection))
		return;
	if (!CheckNotClosed(s, &out->rejection))
		return;
	if (s->balance != 0 || s->pending_in != 0 || s->pending_out != 0)
	{
		EsReject(&out->rejection, ERRCODE_ES_ACCOUNT_NOT_EMPTY,
				 psprintf("account \"%s\" is not empty", s->account),
				 psprintf("Balance %lld, pending out %lld, pending in %lld; an account closes only at zero.",
						  (long long) s->balance,
						  (long long) s->pending_out,
						  (long long) s->pending_in), NULL);
		return;
	}
	AddPlainEvent(out, cmd, ES_EV_ACCOUNT_CLOSED, 0);
}

/* set_limits: LimitsChanged with the limits given. */
static void
DecideSetLimits(const EsCommand *cmd, const EsAccountState *states,
				const bool *found, EsDecision *out)
{
	EsData		d;

	if (!found[0])
	{
		NotFound(cmd->account, &out->rejection);
		return;
	}
	if (!CheckVersion(cmd, &states[0], &out->rejection))
		return;
	if (!CheckNotClosed(&states[0], &out->rejection))
		return;
	DataStart(&d);
	if (cmd->has_overdraft_limit)
		DataInt(&d, "overdraft_limit", true, cmd->overdraft_limit);
	if (cmd->has_max_balance)
		DataInt(&d, "max_balance", !cmd->max_balance_null, cmd->max_balance);
	AddEvent(out, 0, ES_EV_LIMITS_CHANGED, 0, DataFinish(&d, cmd));
}

/* ------------------------------------------------------ the table */

static const EsCommandHandler EsHandlers[ES_CMD_COUNT] = {
	[ES_CMD_OPEN_ACCOUNT] = {"open_account", ES_ROLE_ADMIN, true,
		{"account", "currency", "overdraft_limit", "max_balance"},
	CheckOpenAccount, DecideOpenAccount},
	[ES_CMD_DEPOSIT] = {"deposit", ES_ROLE_WRITER, false, {"account", "amount"},
	CheckAccountAmount, DecideDeposit},
	[ES_CMD_WITHDRAW] = {"withdraw", ES_ROLE_WRITER, false, {"account", "amount"},
	CheckAccountAmount, DecideWithdraw},
	[ES_CMD_TRANSFER] = {"transfer", ES_ROLE_WRITER, false,
		{"from", "to", "amount", "pending", "timeout"},
	CheckTransfer, DecideTransfer},
	[ES_CMD_FREEZE_ACCOUNT] = {"freeze_account", ES_ROLE_ADMIN, false, {"account"},
	CheckAccount, DecideFreeze},
	[ES_CMD_UNFREEZE_ACCOUNT] = {"unfreeze_account", ES_ROLE_ADMIN, false, {"account"},
	CheckAccount, DecideUnfreeze},
	[ES_CMD_CLOSE_ACCOUNT] = {"close_account", ES_ROLE_ADMIN, false, {"account"},
	CheckAccount, DecideClose},
	[ES_CMD_SET_LIMITS] = {"set_limits", ES_ROLE_ADMIN, false,
		{"account", "overdraft_limit", "max_balance"},
	CheckSetLimits, DecideSetLimits},
	[ES_CMD_POST_PENDING] = {"post_pending", ES_ROLE_WRITER, false,
		{"pending_id", "amount"},
	CheckPendingCommand, DecidePost, true},
	[ES_CMD_VOID_PENDING] = {"void_pending", ES_ROLE_WRITER, false,
		{"pending_id"},
	CheckPendingCommand, DecideVoid, true},
};

/* The handler of a command type. */
const EsCommandHandler *
EsDecideHandler(EsCommandType type)
{
	if ((int) type < 0 || type >= ES_CMD_COUNT)
		elog(ERROR, "invalid es_ledger command type %d", (int) type);
	return &EsHandlers[type];
}

/* The command type named by a JSON "type"; false if there is none. */
bool
EsDecideTypeFromName(const char *name, EsCommandType *type)
{
	for (int i = 0; i < ES_CMD_COUNT; i++)
		if (strcmp(name, EsHandlers[i].name) == 0)
		{
			*type = (EsCommandType) i;
			return true;
		}
	return false;
}

/* The SQL name of the role a command type needs. */
const char *
EsDecideRoleName(EsCommandRole role)
{
	return role == ES_ROLE_ADMIN ? "es_ledger_admin" : "es_ledger_writer";
}

/*
 * The role a command needs: its type's, except that es_ledger_writer may
 * open an account without credit (overdraft_limit 0 and max_balance absent
 * or null; doc/reference.md, 12 "Roles and privileges"), as es_ledger_admin may (ES_ROLE_OPENER:
 * a member of either), and a reversal always needs
 * es_ledger_admin.
 */
EsCommandRole
EsDecideCommandRole(const EsCommand *cmd)
{
	if (cmd->reverses)
		return ES_ROLE_ADMIN;
	if (cmd->type == ES_CMD_OPEN_ACCOUNT &&
		(!cmd->has_overdraft_limit || cmd->overdraft_limit == 0) &&
		(!cmd->has_max_balance || cmd->max_balance_null))
		return ES_ROLE_OPENER;
	return EsHandlers[cmd->type].role;
}

/* "Known types: open_account, deposit, ...", for messages. */
const char *
EsDecideTypeNames(void)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "Known types: ");
	for (int i = 0; i < ES_CMD_COUNT; i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "", EsHandlers[i].name);
	appendStringInfoChar(&buf, '.');
	return buf.data;
}
