/*-------------------------------------------------------------------------
 *
 * es_shorthand.c
 *	  The typed shorthands of es_apply: es_open_account, es_deposit,
 *	  es_withdraw and es_transfer.  Each builds the EsCommand its arguments
 *	  name (es_command.c) and hands it to EsApplyShorthand, which checks it
 *	  as es_apply's parser checks a JSON command (ES009, 22003) and applies
 *	  it: the same pipeline, checks, locks and counting as es_apply
 *	  (es_apply.c).
 *
 * Scripts before 0.4.0 declare the shorthands without metadata and
 * effective_at; PG_NARGS tells which declaration called.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "apply.h"

/* Refuse a shorthand's SQL NULL argument for a required field. */
static void
ArgNotNull(FunctionCallInfo fcinfo, int argno, const char *field)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_ES_INVALID_COMMAND),
				 errmsg("invalid command: \"%s\" is null", field)));
}

/* Store a shorthand's required text argument as field. */
static void
ArgText(EsCommand *cmd, FunctionCallInfo fcinfo, int argno, const char *field)
{
	ArgNotNull(fcinfo, argno, field);
	EsCommandSetText(cmd, field, text_to_cstring(PG_GETARG_TEXT_PP(argno)));
}

/* Store a shorthand's required bigint argument as field. */
static void
ArgInt(EsCommand *cmd, FunctionCallInfo fcinfo, int argno, const char *field)
{
	ArgNotNull(fcinfo, argno, field);
	EsCommandSetInt(cmd, field, false, PG_GETARG_INT64(argno));
}

/* Store a shorthand's optional id argument. */
static void
ArgId(EsCommand *cmd, FunctionCallInfo fcinfo, int argno)
{
	if (!PG_ARGISNULL(argno))
		EsCommandSetText(cmd, "id", text_to_cstring(PG_GETARG_TEXT_PP(argno)));
}

/*
 * Store a shorthand's optional metadata (jsonb, argument argno) and
 * effective_at (timestamptz, argument argno + 1).  Scripts before 0.4.0
 * declare the shorthands without them: PG_NARGS tells.
 */
static void
ArgExtras(EsCommand *cmd, FunctionCallInfo fcinfo, int argno)
{
	if (PG_NARGS() > argno && !PG_ARGISNULL(argno))
		EsCommandSetMetadata(cmd, PG_GETARG_JSONB_P(argno));
	if (PG_NARGS() > argno + 1 && !PG_ARGISNULL(argno + 1))
		EsCommandSetEffectiveAt(cmd, PG_GETARG_TIMESTAMPTZ(argno + 1));
}

/* Check a shorthand's command like es_apply's and apply it. */
static Datum
ApplyShorthand(EsCommand *cmd)
{
	PG_RETURN_INT64(EsApplyShorthand(cmd));
}

/*
 * es_open_account(account text, currency text, overdraft_limit bigint
 *				   DEFAULT 0, max_balance bigint DEFAULT NULL,
 *				   id text DEFAULT NULL, metadata jsonb DEFAULT NULL,
 *				   effective_at timestamptz DEFAULT NULL) RETURNS bigint
 *
 * Same as es_apply of an open_account command, with the same checks and
 * locks.
 */
PG_FUNCTION_INFO_V1(es_open_account);
Datum
es_open_account(PG_FUNCTION_ARGS)
{
	EsCommand	cmd;

	EsCommandStart(&cmd, ES_CMD_OPEN_ACCOUNT, 0);
	ArgText(&cmd, fcinfo, 0, "account");
	ArgText(&cmd, fcinfo, 1, "currency");
	ArgInt(&cmd, fcinfo, 2, "overdraft_limit");
	EsCommandSetInt(&cmd, "max_balance", PG_ARGISNULL(3),
					PG_ARGISNULL(3) ? 0 : PG_GETARG_INT64(3));
	ArgId(&cmd, fcinfo, 4);
	ArgExtras(&cmd, fcinfo, 5);
	return ApplyShorthand(&cmd);
}

/*
 * es_deposit(account text, amount bigint, id text DEFAULT NULL,
 *			  metadata jsonb DEFAULT NULL, effective_at timestamptz DEFAULT NULL)
 *			  RETURNS bigint
 * es_withdraw(account text, amount bigint, id text DEFAULT NULL,
 *			   metadata jsonb DEFAULT NULL, effective_at timestamptz DEFAULT NULL)
 *			   RETURNS bigint
 *
 * Same as es_apply of a deposit or withdraw command, with the same checks
 * and locks.
 */
static Datum
DepositWithdraw(FunctionCallInfo fcinfo, EsCommandType type)
{
	EsCommand	cmd;

	EsCommandStart(&cmd, type, 0);
	ArgText(&cmd, fcinfo, 0, "account");
	ArgInt(&cmd, fcinfo, 1, "amount");
	ArgId(&cmd, fcinfo, 2);
	ArgExtras(&cmd, fcinfo, 3);
	return ApplyShorthand(&cmd);
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
 *			   id text DEFAULT NULL, metadata jsonb DEFAULT NULL,
 *			   effective_at timestamptz DEFAULT NULL) RETURNS bigint
 *
 * Same as es_apply of a transfer command, with the same checks and locks.
 */
PG_FUNCTION_INFO_V1(es_transfer);
Datum
es_transfer(PG_FUNCTION_ARGS)
{
	EsCommand	cmd;

	EsCommandStart(&cmd, ES_CMD_TRANSFER, 0);
	ArgText(&cmd, fcinfo, 0, "from");
	ArgText(&cmd, fcinfo, 1, "to");
	ArgInt(&cmd, fcinfo, 2, "amount");
	ArgId(&cmd, fcinfo, 3);
	ArgExtras(&cmd, fcinfo, 4);
	return ApplyShorthand(&cmd);
}
