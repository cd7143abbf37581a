/*-------------------------------------------------------------------------
 *
 * es_apply.c
 *	  The write path: es_apply(jsonb) and its typed shorthands.
 *
 * A command goes through four steps, all in the caller's transaction:
 *
 *	1. Shape (es_command.c): the JSON is turned into an EsCommand or refused
 *	   with ES009 / 22003 before the database is touched.
 *	2. Idempotency: a command with an id takes a transaction advisory lock
 *	   on the id's hash, so two commands with one id are serialised, then
 *	   looks the id up in es_commands.  A known id with the same canonical
 *	   command returns the seq it returned the first time and writes
 *	   nothing; with another command it fails with ES008.
 *	3. Decision: the accounts the command touches are locked (the row lock
 *	   FOR UPDATE takes, on their es_accounts rows, in ascending account_id
 *	   order, es_write.c, so two
 *	   transfers in opposite directions cannot deadlock) and the command is
 *	   checked against their current state: existence (ES003/ES004),
 *	   expected_version (ES007), status (ES005), currency (ES006), funds
 *	   (ES001), cap (ES002), emptiness (ES014).  The checks use 128-bit
 *	   arithmetic, so no comparison can wrap.
 *	4. Events: each event is numbered (seq from the log's sequence, version
 *	   from the account), sealed (checksum and hash link, es_event.c),
 *	   folded into the account state (EsFoldEvent, the same fold replay
 *	   uses) and appended; then the folded state is written as the
 *	   account's projection row, once per account per command.
 *
 * An error at any step raises, and the transaction (or the caller's
 * savepoint) undoes whatever was written: nothing is ever half applied.  A
 * JSON array is a batch: its commands are applied in order by the same
 * steps, and it is atomic for the same reason.  A batch first takes the
 * advisory locks of all its ids, then those of the names it opens, then the
 * row locks of every existing account it names, each in ascending order, so
 * it locks in the same order as single commands do.  (A caller's own transaction that calls es_apply
 * several times takes its locks command by command, and can deadlock with
 * another such transaction like any two transactions can.)
 *
 * recorded_at is the transaction's start time, raised where needed to the
 * latest recorded_at of the accounts touched, so each account's events are
 * in recorded_at order and time travel by transaction time sees prefixes.
 *
 * Writes are done under the write guard (es_guard.c) at executor level
 * (es_write.c), which checks no table privileges: EXECUTE on es_apply and
 * the shorthands (SECURITY DEFINER, search_path pinned in the install
 * script) is the only gate.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "es_ledger.h"

/* First keys of the advisory locks on idempotency keys and account names. */
#define ES_ADVISORY_CLASS	0x45534c47	/* "ESLG" */
#define ES_ADVISORY_NAME_CLASS	0x45534c4e	/* "ESLN" */

/* Raise ES003 for an unknown account. */
static void
pg_attribute_noreturn()
NotFound(const char *account)
{
	ereport(ERROR,
			(errcode(ERRCODE_ES_ACCOUNT_NOT_FOUND),
			 errmsg("account \"%s\" not found", account),
			 errdetail("No account of that name has been opened.")));
}

/* The advisory lock key of a name or idempotency key. */
static int32
AdvisoryKey(const char *text)
{
	return (int32) hash_bytes((const unsigned char *) text, strlen(text));
}

/*
 * Take a transaction advisory lock: class ES_ADVISORY_CLASS serialises
 * commands with one idempotency key, ES_ADVISORY_NAME_CLASS opens of one
 * account name.  Taken again by the same transaction, it is a no-op in
 * effect.
 */
static void
AdvisoryLock(int32 class, int32 key)
{
	DirectFunctionCall2(pg_advisory_xact_lock_int4,
						Int32GetDatum(class), Int32GetDatum(key));
}

/* Lock an account by name and read its state; ES003 if there is none. */
static void
LockByName(const char *account, EsAccountState *state)
{
	bool		found;

	EsStoreLockAccounts(&account, 1, state, &found);
	if (!found)
		NotFound(account);
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
						EsStatusName(state->status)),
				 errdetail("Only an open account accepts debits and credits.")));
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

/* The recorded_at of a command's events (see the file header). */
static TimestampTz
RecordedAt(const EsAccountState *a, const EsAccountState *b)
{
	TimestampTz ts = GetCurrentTransactionStartTimestamp();

	if (a && a->updated_at > ts)
		ts = a->updated_at;
	if (b && b->updated_at > ts)
		ts = b->updated_at;
	return ts;
}

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

/*
 * Make an account's next event: number it, seal it and fold it into the
 * state.  The caller appends it with EsStoreInsertEvent.
 */
static void
MakeEvent(const EsCommand *cmd, EsAccountState *state, EsEventType type,
		  int64 amount, Jsonb *data, TimestampTz recorded_at, EsEvent *ev)
{
	ev->seq = EsStoreNextSeq();
	ev->account_id = state->account_id;
	ev->version = state->version + 1;
	ev->type = type;
	ev->amount = amount;
	ev->data = data;
	ev->command_id = cmd->id;
	ev->recorded_at = recorded_at;
	ev->effective_at = cmd->has_effective_at ? cmd->effective_at : recorded_at;
	EsEventSeal(ev, state->last_hash);
	EsFoldEvent(state, ev);
}

/* Make an account's next event and append it to the log; its seq. */
static int64
Emit(const EsCommand *cmd, EsAccountState *state, EsEventType type,
	 int64 amount, Jsonb *data, TimestampTz recorded_at)
{
	EsEvent		ev;

	MakeEvent(cmd, state, type, amount, data, recorded_at, &ev);
	EsStoreInsertEvent(&ev);
	return ev.seq;
}

/* Emit an event whose data is only the command's metadata. */
static int64
EmitPlain(const EsCommand *cmd, EsAccountState *state, EsEventType type,
		  int64 amount)
{
	EsData		d;

	DataStart(&d);
	return Emit(cmd, state, type, amount, DataFinish(&d, cmd),
				RecordedAt(state, NULL));
}

/* open_account: AccountOpened on a new account. */
static int64
ApplyOpenAccount(const EsCommand *cmd)
{
	EsAccountState state;
	EsData		d;
	EsEvent		ev;
	int64		id;

	/* Serialise opens of one name, then look with a fresh snapshot. */
	AdvisoryLock(ES_ADVISORY_NAME_CLASS, AdvisoryKey(cmd->account));
	if (EsStoreLookupAccountId(cmd->account, &id))
		ereport(ERROR,
				(errcode(ERRCODE_ES_ACCOUNT_EXISTS),
				 errmsg("account \"%s\" already exists", cmd->account),
				 errdetail("Account names are unique ledger-wide, closed accounts included.")));
	if (cmd->has_expected_version && cmd->expected_version != 0)
		ereport(ERROR,
				(errcode(ERRCODE_ES_VERSION_CONFLICT),
				 errmsg("version conflict on account \"%s\"", cmd->account),
				 errdetail("The command expected version %lld; a new account is at version 0.",
						   (long long) cmd->expected_version)));

	EsStateInit(&state, EsStoreNextAccountId());
	DataStart(&d);
	DataText(&d, "account", cmd->account);
	DataText(&d, "currency", cmd->currency);
	DataInt(&d, "overdraft_limit", true, cmd->overdraft_limit);
	DataInt(&d, "max_balance", cmd->has_max_balance && !cmd->max_balance_null,
			cmd->max_balance);
	MakeEvent(cmd, &state, ES_EV_ACCOUNT_OPENED, 0, DataFinish(&d, cmd),
			  RecordedAt(NULL, NULL), &ev);

	EsStoreInsertAccount(&state);
	EsStoreInsertEvent(&ev);
	return ev.seq;
}

/* deposit and withdraw: one credit or debit from outside the ledger. */
static int64
ApplyDepositWithdraw(const EsCommand *cmd)
{
	EsAccountState state;
	int64		seq;

	LockByName(cmd->account, &state);
	CheckVersion(cmd, &state);
	CheckOpen(&state);
	if (cmd->type == ES_CMD_DEPOSIT)
	{
		CheckCredit(&state, cmd->amount);
		seq = EmitPlain(cmd, &state, ES_EV_DEPOSITED, cmd->amount);
	}
	else
	{
		CheckDebit(&state, cmd->amount);
		seq = EmitPlain(cmd, &state, ES_EV_WITHDRAWN, -cmd->amount);
	}
	EsStoreUpdateAccount(&state);
	return seq;
}

/* transfer: TransferSent on "from", then TransferReceived on "to". */
static int64
ApplyTransfer(const EsCommand *cmd)
{
	const char *names[2] = {cmd->account, cmd->to_account};
	EsAccountState states[2];
	bool		found[2];
	EsAccountState from;
	EsAccountState to;
	TimestampTz recorded_at;
	EsData		d;
	int64		seq;

	/* One call locks both, in ascending account_id order. */
	EsStoreLockAccounts(names, 2, states, found);
	if (!found[0])
		NotFound(cmd->account);
	if (!found[1])
		NotFound(cmd->to_account);
	from = states[0];
	to = states[1];
	CheckOpen(&from);
	CheckOpen(&to);
	if (strcmp(from.currency, to.currency) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_ES_CURRENCY_MISMATCH),
				 errmsg("currency mismatch between account \"%s\" (%s) and account \"%s\" (%s)",
						from.account, from.currency, to.account, to.currency),
				 errdetail("A transfer moves money between accounts of one currency.")));
	CheckDebit(&from, cmd->amount);
	CheckCredit(&to, cmd->amount);

	recorded_at = RecordedAt(&from, &to);
	DataStart(&d);
	DataText(&d, "to", to.account);
	DataInt(&d, "to_account_id", true, to.account_id);
	if (cmd->id)
		DataText(&d, "transfer_id", cmd->id);
	Emit(cmd, &from, ES_EV_TRANSFER_SENT, -cmd->amount, DataFinish(&d, cmd),
		 recorded_at);
	DataStart(&d);
	DataText(&d, "from", from.account);
	DataInt(&d, "from_account_id", true, from.account_id);
	if (cmd->id)
		DataText(&d, "transfer_id", cmd->id);
	seq = Emit(cmd, &to, ES_EV_TRANSFER_RECEIVED, cmd->amount,
			   DataFinish(&d, cmd), recorded_at);
	EsStoreUpdateAccount(&from);
	EsStoreUpdateAccount(&to);
	return seq;
}

/* freeze_account, unfreeze_account, close_account, set_limits. */
static int64
ApplyAccountChange(const EsCommand *cmd)
{
	EsAccountState state;
	int64		seq;

	LockByName(cmd->account, &state);
	CheckVersion(cmd, &state);
	switch (cmd->type)
	{
		case ES_CMD_FREEZE_ACCOUNT:
			CheckOpen(&state);
			seq = EmitPlain(cmd, &state, ES_EV_ACCOUNT_FROZEN, 0);
			break;
		case ES_CMD_UNFREEZE_ACCOUNT:
			if (state.status != ES_ACCOUNT_FROZEN)
				ereport(ERROR,
						(errcode(ERRCODE_ES_ACCOUNT_NOT_OPEN),
						 errmsg("account \"%s\" is %s, not frozen", state.account,
								EsStatusName(state.status)),
						 errdetail("Only a frozen account can be unfrozen.")));
			seq = EmitPlain(cmd, &state, ES_EV_ACCOUNT_UNFROZEN, 0);
			break;
		case ES_CMD_CLOSE_ACCOUNT:
			if (state.status == ES_ACCOUNT_CLOSED)
				CheckOpen(&state);
			if (state.balance != 0 || state.pending_in != 0 || state.pending_out != 0)
				ereport(ERROR,
						(errcode(ERRCODE_ES_ACCOUNT_NOT_EMPTY),
						 errmsg("account \"%s\" is not empty", state.account),
						 errdetail("Balance %lld, pending out %lld, pending in %lld; an account closes only at zero.",
								   (long long) state.balance,
								   (long long) state.pending_out,
								   (long long) state.pending_in)));
			seq = EmitPlain(cmd, &state, ES_EV_ACCOUNT_CLOSED, 0);
			break;
		case ES_CMD_SET_LIMITS:
			{
				EsData		d;

				if (state.status == ES_ACCOUNT_CLOSED)
					CheckOpen(&state);
				DataStart(&d);
				if (cmd->has_overdraft_limit)
					DataInt(&d, "overdraft_limit", true, cmd->overdraft_limit);
				if (cmd->has_max_balance)
					DataInt(&d, "max_balance", !cmd->max_balance_null,
							cmd->max_balance);
				seq = Emit(cmd, &state, ES_EV_LIMITS_CHANGED, 0,
						   DataFinish(&d, cmd), RecordedAt(&state, NULL));
				break;
			}
		default:
			elog(ERROR, "unexpected command type %d", (int) cmd->type);
	}
	EsStoreUpdateAccount(&state);
	return seq;
}

/*
 * Apply one parsed command (steps 2 to 4 of the file header) and return the
 * seq of its last event, or of the original application's for a repeated
 * idempotent command.  The caller holds the writer (EsWriteBegin) and the write
 * guard.
 */
int64
EsApplyCommand(EsCommand *cmd)
{
	Jsonb	   *canonical = NULL;
	int64		seq;

	if (cmd->id)
	{
		Jsonb	   *known;

		AdvisoryLock(ES_ADVISORY_CLASS, AdvisoryKey(cmd->id));
		canonical = EsCommandCanonical(cmd);
		if (EsStoreFindCommand(cmd->id, &known, &seq))
		{
			if (compareJsonbContainers(&known->root, &canonical->root) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_ES_IDEMPOTENCY_CONFLICT),
						 errmsg("command id \"%s\" was already used for another command",
								cmd->id),
						 errdetail("A retry must repeat the original command exactly; a new command needs a new id.")));
			return seq;
		}
	}

	switch (cmd->type)
	{
		case ES_CMD_OPEN_ACCOUNT:
			seq = ApplyOpenAccount(cmd);
			break;
		case ES_CMD_DEPOSIT:
		case ES_CMD_WITHDRAW:
			seq = ApplyDepositWithdraw(cmd);
			break;
		case ES_CMD_TRANSFER:
			seq = ApplyTransfer(cmd);
			break;
		default:
			seq = ApplyAccountChange(cmd);
			break;
	}

	if (cmd->id)
		EsStoreInsertCommand(cmd->id, canonical, seq);
	return seq;
}

/* int32 comparator for qsort. */
static int
CompareInt32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a;
	int32		y = *(const int32 *) b;

	return (x > y) - (x < y);
}

/* C-string pointer comparator for qsort. */
static int
CompareNames(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * Before any command of a batch runs, take what its commands would take one
 * by one, in the order single commands take them: first the advisory locks
 * of its idempotency keys, then those of the names it opens (each in
 * ascending key order), then the row locks of every existing account it
 * names (in ascending account_id order).  So a
 * batch and the commands running beside it wait for each other but never
 * deadlock.
 */
static void
LockBatch(List *cmds)
{
	int32	   *keys = palloc(sizeof(int32) * list_length(cmds));
	int			nkeys = 0;
	int			max = list_length(cmds) * 2;
	const char **names = palloc(sizeof(char *) * max);
	EsAccountState *states = palloc(sizeof(EsAccountState) * max);
	bool	   *found = palloc(sizeof(bool) * max);
	int			n = 0;
	ListCell   *lc;

	foreach(lc, cmds)
	{
		EsCommand  *cmd = lfirst(lc);

		if (cmd->id)
			keys[nkeys++] = AdvisoryKey(cmd->id);
	}
	qsort(keys, nkeys, sizeof(int32), CompareInt32);
	for (int i = 0; i < nkeys; i++)
		AdvisoryLock(ES_ADVISORY_CLASS, keys[i]);

	nkeys = 0;
	foreach(lc, cmds)
	{
		EsCommand  *cmd = lfirst(lc);

		if (cmd->type == ES_CMD_OPEN_ACCOUNT)
			keys[nkeys++] = AdvisoryKey(cmd->account);
	}
	qsort(keys, nkeys, sizeof(int32), CompareInt32);
	for (int i = 0; i < nkeys; i++)
		AdvisoryLock(ES_ADVISORY_NAME_CLASS, keys[i]);
	pfree(keys);

	foreach(lc, cmds)
	{
		EsCommand  *cmd = lfirst(lc);

		if (cmd->account)
			names[n++] = cmd->account;
		if (cmd->to_account)
			names[n++] = cmd->to_account;
	}
	/* Each account once: a batch often names one account many times. */
	qsort(names, n, sizeof(char *), CompareNames);
	if (n > 0)
	{
		int			u = 1;

		for (int i = 1; i < n; i++)
			if (strcmp(names[i], names[u - 1]) != 0)
				names[u++] = names[i];
		n = u;
	}
	EsStoreLockAccounts(names, n, states, found);
	pfree(names);
	pfree(states);
	pfree(found);
}

/* Apply a list of parsed commands under the write guard; last seq. */
static int64
ApplyCommands(List *cmds)
{
	volatile int64 seq = 0;
	MemoryContext volatile cmdcxt = NULL;

	if (list_length(cmds) > 1)
		cmdcxt = AllocSetContextCreate(CurrentMemoryContext, "es_apply command",
									   ALLOCSET_DEFAULT_SIZES);
	EsGuardBeginWrite();
	PG_TRY();
	{
		ListCell   *lc;

		EsWriteBegin();
		if (list_length(cmds) > 1)
		{
			EsWriteNextCommand();
			LockBatch(cmds);
		}
		foreach(lc, cmds)
		{
			EsWriteNextCommand();
			if (cmdcxt)
			{
				/* A batch frees each command's memory before the next. */
				MemoryContext old = MemoryContextSwitchTo(cmdcxt);

				seq = EsApplyCommand((EsCommand *) lfirst(lc));
				MemoryContextSwitchTo(old);
				MemoryContextReset(cmdcxt);
			}
			else
				seq = EsApplyCommand((EsCommand *) lfirst(lc));
		}
	}
	PG_FINALLY();
	{
		EsGuardEndWrite();
	}
	PG_END_TRY();
	/* AFTER row triggers, if anyone added some, run outside the guard. */
	EsWriteEnd();
	if (cmdcxt)
		MemoryContextDelete(cmdcxt);
	return seq;
}

/*
 * es_apply(command jsonb) RETURNS bigint
 *
 * Validates a command (or an array of commands: an atomic batch) against the
 * current state, appends its events to es_events, updates es_accounts and
 * returns the seq of the last event written.  Locks, all held to the end of
 * the transaction: the row locks of FOR UPDATE on the es_accounts rows of
 * the accounts touched; a transaction advisory lock per idempotency key and,
 * for open_account, one on the account name; RowExclusiveLock on the
 * tables written.
 */
PG_FUNCTION_INFO_V1(es_apply);
Datum
es_apply(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_ES_INVALID_COMMAND),
				 errmsg("invalid command: the command is null"),
				 errdetail("es_apply takes a JSON object, or an array of objects for a batch.")));
	PG_RETURN_INT64(ApplyCommands(EsParseCommands(PG_GETARG_JSONB_P(0))));
}

/* A required text argument of a shorthand, checked like the JSON field. */
static char *
ArgName(FunctionCallInfo fcinfo, int argno, const char *what)
{
	char	   *s;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_ES_INVALID_COMMAND),
				 errmsg("invalid command: \"%s\" is null", what)));
	s = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	EsCheckName(what, s, 0);
	return s;
}

/* A bigint argument of a shorthand; positive, or non-negative if allowed. */
static int64
ArgInt(FunctionCallInfo fcinfo, int argno, const char *what, bool allow_zero)
{
	int64		v;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_ES_INVALID_COMMAND),
				 errmsg("invalid command: \"%s\" is null", what)));
	v = PG_GETARG_INT64(argno);
	if (v < 0 || (v == 0 && !allow_zero))
		ereport(ERROR,
				(errcode(ERRCODE_ES_INVALID_COMMAND),
				 errmsg("invalid command: \"%s\" must be a %s integer", what,
						allow_zero ? "non-negative" : "positive"),
				 errdetail("Got %lld.", (long long) v)));
	return v;
}

/* The optional id argument of a shorthand. */
static char *
ArgId(FunctionCallInfo fcinfo, int argno)
{
	return PG_ARGISNULL(argno) ? NULL : ArgName(fcinfo, argno, "id");
}

/*
 * es_open_account(account text, currency text, overdraft_limit bigint
 *				   DEFAULT 0, max_balance bigint DEFAULT NULL,
 *				   id text DEFAULT NULL) RETURNS bigint
 *
 * Same as es_apply of an open_account command.
 */
PG_FUNCTION_INFO_V1(es_open_account);
Datum
es_open_account(PG_FUNCTION_ARGS)
{
	EsCommand	cmd = {0};

	cmd.type = ES_CMD_OPEN_ACCOUNT;
	cmd.account = ArgName(fcinfo, 0, "account");
	cmd.currency = ArgName(fcinfo, 1, "currency");
	cmd.has_overdraft_limit = true;
	cmd.overdraft_limit = ArgInt(fcinfo, 2, "overdraft_limit", true);
	cmd.has_max_balance = true;
	cmd.max_balance_null = PG_ARGISNULL(3);
	if (!cmd.max_balance_null)
		cmd.max_balance = ArgInt(fcinfo, 3, "max_balance", true);
	cmd.id = ArgId(fcinfo, 4);
	PG_RETURN_INT64(ApplyCommands(list_make1(&cmd)));
}

/*
 * es_deposit(account text, amount bigint, id text DEFAULT NULL) RETURNS bigint
 * es_withdraw(account text, amount bigint, id text DEFAULT NULL) RETURNS bigint
 *
 * Same as es_apply of a deposit or withdraw command.
 */
static Datum
DepositWithdraw(FunctionCallInfo fcinfo, EsCommandType type)
{
	EsCommand	cmd = {0};

	cmd.type = type;
	cmd.account = ArgName(fcinfo, 0, "account");
	cmd.amount = ArgInt(fcinfo, 1, "amount", false);
	cmd.id = ArgId(fcinfo, 2);
	PG_RETURN_INT64(ApplyCommands(list_make1(&cmd)));
}

PG_FUNCTION_INFO_V1(es_deposit);
Datum
es_deposit(PG_FUNCTION_ARGS)
{
	return DepositWithdraw(fcinfo, ES_CMD_DEPOSIT);
}

PG_FUNCTION_INFO_V1(es_withdraw);
Datum
es_withdraw(PG_FUNCTION_ARGS)
{
	return DepositWithdraw(fcinfo, ES_CMD_WITHDRAW);
}

/*
 * es_transfer(from_account text, to_account text, amount bigint,
 *			   id text DEFAULT NULL) RETURNS bigint
 *
 * Same as es_apply of a transfer command.
 */
PG_FUNCTION_INFO_V1(es_transfer);
Datum
es_transfer(PG_FUNCTION_ARGS)
{
	EsCommand	cmd = {0};

	cmd.type = ES_CMD_TRANSFER;
	cmd.account = ArgName(fcinfo, 0, "from");
	cmd.to_account = ArgName(fcinfo, 1, "to");
	cmd.amount = ArgInt(fcinfo, 2, "amount", false);
	cmd.id = ArgId(fcinfo, 3);
	if (strcmp(cmd.account, cmd.to_account) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_ES_INVALID_COMMAND),
				 errmsg("invalid command: transfer from account \"%s\" to itself",
						cmd.account),
				 errdetail("A transfer needs two different accounts.")));
	PG_RETURN_INT64(ApplyCommands(list_make1(&cmd)));
}
