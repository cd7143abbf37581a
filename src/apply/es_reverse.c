/*-------------------------------------------------------------------------
 *
 * es_reverse.c
 *	  es_reverse(command_id, id): an applied command undone by compensation.
 *
 * The log is never changed: a command is undone by appending the events of
 * its compensating command, an ordinary command built here the way the
 * shorthands build theirs (EsCommandStart, EsCommandSetText/SetInt,
 * EsCommandFinish) and applied by EsApplyCommands, so it is checked against
 * today's rules like any command (ES001, ES002, ES005, ...):
 *
 *	deposit			withdraw of the same amount from the same account
 *	withdraw		deposit of the same amount to the same account
 *	transfer		transfer of the same amount from "to" back to "from"
 *	freeze_account	unfreeze_account;  unfreeze_account: freeze_account
 *	set_limits		set_limits back to the limits the account had just
 *					before (only those the command set), folded from the log
 *	open_account, close_account: not reversible (ES009).
 *	a pending transfer, post_pending, void_pending: not reversible (ES009):
 *					a reservation is released with void_pending, and a
 *					posted one is undone by an ordinary transfer back.
 *
 * The command reversed is found by its idempotency id in es_commands (its
 * canonical form and the seq of its last event): a command applied without
 * an id cannot be reversed.  The compensating command carries the caller's
 * id as its own idempotency id and cmd->reverses = command_id, which its
 * canonical form in es_commands and its events' data keep as a top-level
 * "reverses" (es_command.c, es_decide.c; es_history shows it).  No command
 * a writer sends can carry that key (parsing refuses it; the writer's
 * metadata stays under "metadata"), so a writer can neither block a
 * reversal nor plant a link.  So a retry returns the seq of the first time
 * and writes nothing, and the id used for another command is ES008, as for
 * any command.  A command is reversed at most once: es_apply.c refuses,
 * with ES008, the compensating command of a command that another command
 * already reverses, found by the unique partial index
 * es_commands_reverses_idx (es_scan.c), which also refuses a second link
 * should two reversals ever race past that check.
 *
 * Role: es_reverse is for es_ledger_admin (EXECUTE is granted to it only),
 * and the compensating command is applied with that authority whatever its
 * type: es_apply.c checks es_ledger_admin, not the type's role, for a
 * command whose "reverses" is set, which only this file sets.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "apply.h"

/* The command reversed, as es_commands holds it. */
typedef struct EsReversed
{
	EsCommandType type;
	Jsonb	   *command;		/* canonical form */
	int64		seq;			/* its last event */
} EsReversed;

/* Read the command applied under id from es_commands: ES009 if none. */
static void
FindCommand(const char *id, EsReversed *orig)
{
	Relation	commands = EsRowOpenTable(ES_REL_COMMANDS, AccessShareLock);
	Relation	idx = index_open(EsRowRelid(ES_REL_COMMANDS_ID_IDX),
								 AccessShareLock);
	TupleTableSlot *slot = table_slot_create(commands, NULL);
	JsonbValue *type;
	char	   *name;

	if (!EsScanProbeText(commands, idx, id, GetLatestSnapshot(), slot))
		ereport(ERROR,
				(errcode(ERRCODE_ES_INVALID_COMMAND),
				 errmsg("invalid command: unknown command id \"%s\"", id),
				 errdetail("Only a command applied with an id can be reversed.")));
	slot_getallattrs(slot);
	EsRowCommandFromValues(slot->tts_values, slot->tts_isnull, &orig->command,
						   &orig->seq);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(commands, AccessShareLock);

	type = getKeyJsonValueFromContainer(&orig->command->root, "type", 4, NULL);
	if (type == NULL || type->type != jbvString)
		elog(ERROR, "es_commands row \"%s\" has no command type", id);
	name = pnstrdup(type->val.string.val, type->val.string.len);
	if (!EsDecideTypeFromName(name, &orig->type))
		elog(ERROR, "es_commands row \"%s\" has unknown command type \"%s\"",
			 id, name);
}

/* A field of the command reversed, as JSON (NULL if absent). */
static JsonbValue *
Field(const EsReversed *orig, const char *key)
{
	return getKeyJsonValueFromContainer(&orig->command->root, key,
										strlen(key), NULL);
}

/* A text field of the command reversed, which it must have. */
static char *
TextField(const EsReversed *orig, const char *key)
{
	JsonbValue *v = Field(orig, key);

	if (v == NULL || v->type != jbvString)
		elog(ERROR, "es_ledger command reversed has no text \"%s\"", key);
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* An integer field of the command reversed, which it must have. */
static int64
IntField(const EsReversed *orig, const char *key)
{
	JsonbValue *v = Field(orig, key);

	if (v == NULL || v->type != jbvNumeric)
		elog(ERROR, "es_ledger command reversed has no number \"%s\"", key);
	return DatumGetInt64(DirectFunctionCall1(numeric_int8,
											 NumericGetDatum(v->val.numeric)));
}

/* Fold the events of an account before a seq (EsScanAccount's callback). */
typedef struct EsBefore
{
	int64		seq;
	EsAccountState state;
} EsBefore;

static void
FoldBefore(const EsEvent *ev, void *arg)
{
	EsBefore   *before = arg;

	if (ev->seq < before->seq)
		EsFoldEvent(&before->state, ev);
}

/*
 * set_limits: set back the limits the command set to those the account
 * had just before its event, folded from the log.
 */
static void
RestoreLimits(EsCommand *cmd, const EsReversed *orig, const char *account)
{
	EsBefore	before;
	int64		account_id;

	if (!EsScanFindOpened(account, &account_id))
		elog(ERROR, "es_ledger account \"%s\" has no opening event", account);
	before.seq = orig->seq;
	EsFoldInit(&before.state, account_id);
	EsScanAccount(account_id, 0, NULL, NULL, FoldBefore, &before);
	if (Field(orig, "overdraft_limit"))
		EsCommandSetInt(cmd, "overdraft_limit", false,
						before.state.overdraft_limit);
	if (Field(orig, "max_balance"))
		EsCommandSetInt(cmd, "max_balance", !before.state.has_max_balance,
						before.state.max_balance);
}

/* Build the compensating command of orig, with id as its own id. */
static void
Compensate(EsCommand *cmd, const char *command_id, const EsReversed *orig,
		   const char *id)
{
	const char *name = EsDecideHandler(orig->type)->name;
	char	   *account;

	switch (orig->type)
	{
		case ES_CMD_DEPOSIT:
		case ES_CMD_WITHDRAW:
			EsCommandStart(cmd, orig->type == ES_CMD_DEPOSIT ?
						   ES_CMD_WITHDRAW : ES_CMD_DEPOSIT, 0);
			EsCommandSetText(cmd, "account", TextField(orig, "account"));
			EsCommandSetInt(cmd, "amount", false, IntField(orig, "amount"));
			break;
		case ES_CMD_TRANSFER:
			if (Field(orig, "pending") != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_ES_INVALID_COMMAND),
						 errmsg("invalid command: pending transfer \"%s\" cannot be reversed",
								command_id),
						 errdetail("A reservation is released with void_pending; a posted one is undone by a transfer back.")));
			EsCommandStart(cmd, ES_CMD_TRANSFER, 0);
			EsCommandSetText(cmd, "from", TextField(orig, "to"));
			EsCommandSetText(cmd, "to", TextField(orig, "from"));
			EsCommandSetInt(cmd, "amount", false, IntField(orig, "amount"));
			break;
		case ES_CMD_FREEZE_ACCOUNT:
		case ES_CMD_UNFREEZE_ACCOUNT:
			EsCommandStart(cmd, orig->type == ES_CMD_FREEZE_ACCOUNT ?
						   ES_CMD_UNFREEZE_ACCOUNT : ES_CMD_FREEZE_ACCOUNT, 0);
			EsCommandSetText(cmd, "account", TextField(orig, "account"));
			break;
		case ES_CMD_SET_LIMITS:
			account = TextField(orig, "account");
			EsCommandStart(cmd, ES_CMD_SET_LIMITS, 0);
			EsCommandSetText(cmd, "account", account);
			RestoreLimits(cmd, orig, account);
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_ES_INVALID_COMMAND),
					 errmsg("invalid command: command \"%s\" of type %s cannot be reversed",
							command_id, name),
					 errdetail("open_account, close_account, post_pending and void_pending have no compensating command.")));
	}
	EsCommandSetText(cmd, "id", id);
	cmd->metadata = NULL;
	cmd->reverses = pstrdup(command_id);
	EsCommandFinish(cmd);
}

/*
 * es_reverse(command_id text, id text) RETURNS bigint
 *
 * Appends the compensating command of the command applied under
 * command_id, with id as its idempotency id, and returns the seq of its
 * last event (see the file header).  Needs es_ledger_admin (42501).  ES009
 * for a NULL argument, an unknown command_id or a command type that cannot
 * be reversed; ES008 for a command reversed already or an id used for
 * another command; the compensating command's own rules otherwise.  Locks
 * as es_apply.
 */
PG_FUNCTION_INFO_V1(es_reverse);
Datum
es_reverse(PG_FUNCTION_ARGS)
{
	EsReversed	orig;
	EsCommand	cmd;
	char	   *command_id;
	char	   *id;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_ES_INVALID_COMMAND),
				 errmsg("invalid command: \"%s\" is null",
						PG_ARGISNULL(0) ? "command_id" : "id")));
	command_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	FindCommand(command_id, &orig);
	Compensate(&cmd, command_id, &orig, id);
	PG_RETURN_INT64(EsApplyCommands(list_make1(&cmd)));
}
