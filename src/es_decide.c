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
 * false for a name with no account) and either raises the rule the command
 * breaks or fills in an EsDecision: the events to append, each with its
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
 * (EsDecision.now), which decides expiry: a reservation created at c with
 * timeout t is expired from c + t on.  Rules: the transfer is pending
 * (ES010; posting an expired one ES013), its time is not up (ES013 for a
 * post; a void then fails with ES010, the reservation being released by
 * expiry), the amount posted is at most the reserved amount (ES009), and a
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
#include "utils/timestamp.h"

#include "es_ledger.h"

/* ------------------------------------------------------------- ES009 */

/* "command 3 of the batch: " or "" for a single command. */
static const char *
Where(int ordinal)
{
	return ordinal > 0 ? psprintf("command %d of the batch: ", ordinal) : "";
}

/*
 * Reject a command's shape with ES009.  ordinal is its 1-based position in
 * a batch, 0 for a single command.  Used by the parser too.
 */
void
EsDecideInvalid(int ordinal, const char *msg, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_ES_INVALID_COMMAND),
			 errmsg("invalid command: %s%s", Where(ordinal), msg),
			 detail ? errdetail("%s", detail) : 0));
	pg_unreachable();
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

/* Raise ES003 for an unknown account. */
static void
pg_attribute_noreturn()
NotFound(const char *account)
{
	ereport(ERROR,
			(errcode(ERRCODE_ES_ACCOUNT_NOT_FOUND),
			 errmsg("account \"%s\" not found", account),
			 errdetail("No account of that name has been opened.")));
	pg_unreachable();
}

/*
 * Raise ES004 for a name that is taken; also used by es_apply.c when a
 * concurrent open of the name wins the race to the unique index.
 */
void
EsDecideAccountExists(const char *account)
{
	ereport(ERROR,
			(errcode(ERRCODE_ES_ACCOUNT_EXISTS),
			 errmsg("account \"%s\" already exists", account),
			 errdetail("Account names are unique ledger-wide, closed accounts included.")));
	pg_unreachable();
}

/* ES007 unless the account is at the version the command expects. */
static void
CheckVersion(const EsCommand *cmd, const EsAccountState *state)
{
	if (cmd->has_expected_version && cmd->expected_version != state->version)
		ereport(ERROR,
				(errcode(ERRCODE_ES_VERSION_CONFLICT),
				 errmsg("version conflict on account \"%s\"", state->account),
				 errdetail("The command expected version %lld; the account is at version %lld.",
						   (long long) cmd->expected_version,
						   (long long) state->version),
				 errhint("Read the account again and retry.")));
}

/* ES005 unless the account is open. */
static void
CheckOpen(const EsAccountState *state)
{
	if (state->status != ES_ACCOUNT_OPEN)
		ereport(ERROR,
				(errcode(ERRCODE_ES_ACCOUNT_NOT_OPEN),
				 errmsg("account \"%s\" is %s", state->account,
						EsFoldStatusName(state->status)),
				 errdetail("Only an open account accepts debits and credits.")));
}

/* ES005 if the account is closed (frozen accounts may be administered). */
static void
CheckNotClosed(const EsAccountState *state)
{
	if (state->status == ES_ACCOUNT_CLOSED)
		CheckOpen(state);
}

/* ES001 if debiting amount would take available below -overdraft_limit. */
static void
CheckDebit(const EsAccountState *state, int64 amount)
{
	if ((int128) state->available - amount < -(int128) state->overdraft_limit)
		ereport(ERROR,
				(errcode(ERRCODE_ES_INSUFFICIENT_FUNDS),
				 errmsg("insufficient funds in account \"%s\"", state->account),
				 errdetail("Available %lld, overdraft limit %lld, debit %lld.",
						   (long long) state->available,
						   (long long) state->overdraft_limit,
						   (long long) amount)));
}

/*
 * ES002 if crediting amount would take balance + pending_in past
 * max_balance; 22003 if the balance would leave the range of bigint.
 */
static void
CheckCredit(const EsAccountState *state, int64 amount)
{
	int128		after = (int128) state->balance + state->pending_in + amount;

	if (state->has_max_balance && after > state->max_balance)
		ereport(ERROR,
				(errcode(ERRCODE_ES_BALANCE_LIMIT),
				 errmsg("balance limit exceeded in account \"%s\"",
						state->account),
				 errdetail("Balance %lld, pending in %lld, credit %lld, max_balance %lld.",
						   (long long) state->balance,
						   (long long) state->pending_in,
						   (long long) amount,
						   (long long) state->max_balance)));
	if ((int128) state->balance + amount > PG_INT64_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("balance of account \"%s\" out of range", state->account),
				 errdetail("Crediting %lld to %lld would pass 9223372036854775807.",
						   (long long) amount, (long long) state->balance)));
}

/* Raise ES010 for a pending_id that names no pending transfer. */
void
EsDecidePendingNotFound(const char *pending_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_ES_PENDING_NOT_FOUND),
			 errmsg("pending transfer \"%s\" not found", pending_id),
			 errdetail("No transfer with \"pending\": true was applied with that id.")));
	pg_unreachable();
}

/* Has transfer t's time run out at now?  (Never, without a timeout.) */
bool
EsDecideExpired(const EsTransfer *t, TimestampTz now)
{
	return t->status == ES_TRANSFER_PENDING && t->has_expires_at &&
		now >= t->expires_at;
}

/* ES013: posting transfer t, whose time ran out at its expires_at. */
static void
pg_attribute_noreturn()
Expired(const EsTransfer *t)
{
	ereport(ERROR,
			(errcode(ERRCODE_ES_PENDING_EXPIRED),
			 errmsg("pending transfer \"%s\" expired", t->transfer_id),
			 errdetail("Its timeout ran out at %s; an expired reservation is released, never posted.",
					   timestamptz_to_str(t->expires_at))));
	pg_unreachable();
}

/*
 * ES010 unless transfer t is still pending; for a post, ES013 when it
 * expired (released by expiry, or with its time run out at now).
 */
static void
CheckPending(const EsTransfer *t, TimestampTz now, bool post)
{
	if (post && (t->status == ES_TRANSFER_EXPIRED || EsDecideExpired(t, now)))
		Expired(t);
	if (t->status != ES_TRANSFER_PENDING)
		ereport(ERROR,
				(errcode(ERRCODE_ES_PENDING_NOT_FOUND),
				 errmsg("pending transfer \"%s\" is no longer pending", t->transfer_id),
				 errdetail("Its status is %s.", EsFoldTransferStatusName(t->status))));
	if (EsDecideExpired(t, now))
		ereport(ERROR,
				(errcode(ERRCODE_ES_PENDING_NOT_FOUND),
				 errmsg("pending transfer \"%s\" is no longer pending", t->transfer_id),
				 errdetail("Its timeout ran out at %s: it is released by expiry.",
						   timestamptz_to_str(t->expires_at))));
}

/* --------------------------------------------------------- event data */

/* An event's data under construction: a JSON object's text. */
typedef struct EsData
{
	StringInfoData buf;
} EsData;

/* Start an event's data. */
static void
DataStart(EsData *d)
{
	initStringInfo(&d->buf);
	appendStringInfoChar(&d->buf, '{');
}

/* Add "key": before a value. */
static void
DataKey(EsData *d, const char *key)
{
	if (d->buf.len > 1)
		appendStringInfoChar(&d->buf, ',');
	escape_json(&d->buf, key);
	appendStringInfoChar(&d->buf, ':');
}

/* Add a text field. */
static void
DataText(EsData *d, const char *key, const char *value)
{
	DataKey(d, key);
	escape_json(&d->buf, value);
}

/* Add an integer field, or null when !present. */
static void
DataInt(EsData *d, const char *key, bool present, int64 value)
{
	DataKey(d, key);
	if (present)
		appendStringInfo(&d->buf, INT64_FORMAT, value);
	else
		appendStringInfoString(&d->buf, "null");
}

/* Finish the data, adding the command's metadata, and make it jsonb. */
static Jsonb *
DataFinish(EsData *d, const EsCommand *cmd)
{
	if (cmd->metadata)
	{
		DataKey(d, "metadata");
		appendStringInfoString(&d->buf,
							   JsonbToCString(NULL, &cmd->metadata->root,
											  VARSIZE(cmd->metadata)));
	}
	appendStringInfoChar(&d->buf, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											  CStringGetDatum(d->buf.data)));
}

/* Finish data that carries no command's metadata (expiry). */
static Jsonb *
DataFinishPlain(EsData *d)
{
	appendStringInfoChar(&d->buf, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											  CStringGetDatum(d->buf.data)));
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
		EsDecideAccountExists(cmd->account);
	if (cmd->has_expected_version && cmd->expected_version != 0)
		ereport(ERROR,
				(errcode(ERRCODE_ES_VERSION_CONFLICT),
				 errmsg("version conflict on account \"%s\"", cmd->account),
				 errdetail("The command expected version %lld; a new account is at version 0.",
						   (long long) cmd->expected_version)));
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
		NotFound(cmd->account);
	CheckVersion(cmd, &states[0]);
	CheckOpen(&states[0]);
	CheckCredit(&states[0], cmd->amount);
	AddPlainEvent(out, cmd, ES_EV_DEPOSITED, cmd->amount);
}

/* withdraw: Withdrawn, a debit to outside the ledger. */
static void
DecideWithdraw(const EsCommand *cmd, const EsAccountState *states,
			   const bool *found, EsDecision *out)
{
	if (!found[0])
		NotFound(cmd->account);
	CheckVersion(cmd, &states[0]);
	CheckOpen(&states[0]);
	CheckDebit(&states[0], cmd->amount);
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
		NotFound(cmd->account);
	if (!found[1])
		NotFound(cmd->to_account);
	CheckOpen(from);
	CheckOpen(to);
	if (strcmp(from->currency, to->currency) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_ES_CURRENCY_MISMATCH),
				 errmsg("currency mismatch between account \"%s\" (%s) and account \"%s\" (%s)",
						from->account, from->currency, to->account, to->currency),
				 errdetail("A transfer moves money between accounts of one currency.")));
	CheckDebit(from, cmd->amount);
	CheckCredit(to, cmd->amount);
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
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("pending amounts of account \"%s\" or \"%s\" out of range",
						from->account, to->account),
				 errdetail("Reserving %lld would pass 9223372036854775807.",
						   (long long) cmd->amount)));
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

	CheckPending(t, out->now, true);
	amount = cmd->has_amount ? cmd->amount : t->amount;
	if (amount > t->amount)
		EsDecideInvalid(cmd->ordinal,
						psprintf("post_pending of %lld is more than the %lld pending transfer \"%s\" reserved",
								 (long long) amount, (long long) t->amount,
								 t->transfer_id),
						"A post moves at most the amount reserved; the rest is released.");
	CheckOpen(&states[0]);
	CheckOpen(&states[1]);
	if ((int128) states[1].balance + amount > PG_INT64_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("balance of account \"%s\" out of range", states[1].account),
				 errdetail("Crediting %lld to %lld would pass 9223372036854775807.",
						   (long long) amount, (long long) states[1].balance)));
	AddRelease(out, cmd, t, states, ES_EV_TRANSFER_POSTED, amount);
}

/* void_pending: TransferVoided on both accounts, releasing everything. */
static void
DecideVoid(const EsCommand *cmd, const EsAccountState *states,
		   const bool *found, EsDecision *out)
{
	CheckPending(out->transfer, out->now, false);
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
		NotFound(cmd->account);
	CheckVersion(cmd, &states[0]);
	CheckOpen(&states[0]);
	AddPlainEvent(out, cmd, ES_EV_ACCOUNT_FROZEN, 0);
}

/* unfreeze_account: AccountUnfrozen on a frozen account. */
static void
DecideUnfreeze(const EsCommand *cmd, const EsAccountState *states,
			   const bool *found, EsDecision *out)
{
	if (!found[0])
		NotFound(cmd->account);
	CheckVersion(cmd, &states[0]);
	if (states[0].status != ES_ACCOUNT_FROZEN)
		ereport(ERROR,
				(errcode(ERRCODE_ES_ACCOUNT_NOT_OPEN),
				 errmsg("account \"%s\" is %s, not frozen", states[0].account,
						EsFoldStatusName(states[0].status)),
				 errdetail("Only a frozen account can be unfrozen.")));
	AddPlainEvent(out, cmd, ES_EV_ACCOUNT_UNFROZEN, 0);
}

/* close_account: AccountClosed on an empty account that is not closed. */
static void
DecideClose(const EsCommand *cmd, const EsAccountState *states,
			const bool *found, EsDecision *out)
{
	const EsAccountState *s = &states[0];

	if (!found[0])
		NotFound(cmd->account);
	CheckVersion(cmd, s);
	CheckNotClosed(s);
	if (s->balance != 0 || s->pending_in != 0 || s->pending_out != 0)
		ereport(ERROR,
				(errcode(ERRCODE_ES_ACCOUNT_NOT_EMPTY),
				 errmsg("account \"%s\" is not empty", s->account),
				 errdetail("Balance %lld, pending out %lld, pending in %lld; an account closes only at zero.",
						   (long long) s->balance,
						   (long long) s->pending_out,
						   (long long) s->pending_in)));
	AddPlainEvent(out, cmd, ES_EV_ACCOUNT_CLOSED, 0);
}

/* set_limits: LimitsChanged with the limits given. */
static void
DecideSetLimits(const EsCommand *cmd, const EsAccountState *states,
				const bool *found, EsDecision *out)
{
	EsData		d;

	if (!found[0])
		NotFound(cmd->account);
	CheckVersion(cmd, &states[0]);
	CheckNotClosed(&states[0]);
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
 * or null, CONTRACT.md section 9), as es_ledger_admin may (ES_ROLE_OPENER:
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
