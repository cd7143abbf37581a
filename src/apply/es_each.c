/*-------------------------------------------------------------------------
 *
 * es_each.c
 *	  es_apply_each(jsonb): the commands of an array applied one by one,
 *	  each accepted or rejected on its own, with a result row per command,
 *	  and no subtransaction per command in the common case.
 *
 * A subtransaction per command (what a plpgsql exception block, or psql's
 * ON_ERROR_ROLLBACK, pays) costs a subtransaction id for every command
 * that writes, a lock on it held to the end of the transaction, and
 * suboverflowed snapshots for everyone once a transaction has more than 64.
 * So this file uses one only where a command may be rejected after it
 * wrote something.
 *
 * A rejection is a value (EsRejection: SQLSTATE, message, detail), never a
 * caught error: the command breaks a rule of the ledger, is malformed, or
 * is not the caller's to send.  It becomes the command's row (seq NULL,
 * sqlstate, message, detail) and the next command runs.  Every error
 * (57014 cancel or statement_timeout, 53200 out of memory, 40P01 deadlock,
 * 40001 serialization failure, 55P03 lock_timeout, 25006 read-only, ES011,
 * ES012, XX000, ...) aborts the whole call like any error of a statement:
 * those are the transaction's troubles, not the command's, and the call can
 * be retried as a whole (ids make that safe).
 *
 * Each command goes through the one pipeline es_apply runs (es_apply.c):
 *
 *	1. Parse (first pass over the array): es_command.c's parser under
 *	   EsDecideTryParse, which returns its ES009 or 22003 as a value (the
 *	   parser is pure code; see es_decide.c).  Role: EsApplyAuthorize, whose
 *	   42501 is a value too, checked once per role.
 *	2. The whole call's write bracket, writer and EsApplyLockBatch, as
 *	   es_apply opens a batch: any error aborts the call.
 *	3. EsApplyCommand(cmd, &rejection, false): lock, idempotency (ES008),
 *	   decision (the handler's rules, 22003 included), append (ES004 or
 *	   ES008 when a concurrent command won the race to a unique index, at
 *	   the command's first write).  Each rejection comes back before the
 *	   command wrote anything.
 *	4. Except where it could not: a command on an account holding
 *	   reservations (it first expires those whose time ran out, a write)
 *	   and an open_account with an id (its register row is written before
 *	   its account row, which may lose the race for the name).  There
 *	   EsApplyCommand writes nothing and answers ES_APPLY_ISOLATE, and the
 *	   command runs again isolated in an internal subtransaction
 *	   (InSubxact), rolled back if it is rejected.
 *
 * Order and visibility: commands run in array order; each sees what the
 * accepted ones before it wrote (EsWriteNextCommand, the account cache),
 * so a deposit then a withdrawal of the same money works, and an id used
 * twice in one call answers the second time as a retry (its seq, or ES008
 * for other content).  A rejected command leaves nothing: no event, no
 * projection or register row, no cache entry; the row locks LockBatch took
 * on its accounts stay, like those of every account the call names.
 *
 * Locks: those of es_apply for a batch (es_apply.c): the row locks of
 * every existing account the valid commands name, in ascending account_id
 * order before the first command runs, held to the end of the transaction.
 *
 * Memory: the parsed commands (about 175 bytes each, es_command.c) and one
 * item per command for the call; each command runs in a context reset
 * after it, and its error data in another; result rows go to a tuplestore
 * (work_mem, then disk).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/tuplestore.h"

#include "apply.h"

/* One element of the array, after the first pass. */
typedef struct EsEachItem
{
	EsCommand  *cmd;			/* parsed and authorised, or NULL */
	EsRejection rejection;		/* when cmd is NULL */
} EsEachItem;

/*
 * Run the command isolated (EsApplyCommand with isolated) in an internal
 * subtransaction, rolled back if it is rejected (it may have written), as
 * plpgsql's exception blocks do (exec_stmt_block).  An error is raised
 * again after the rollback: it aborts the call.
 */
static int64
InSubxact(const EsCommand *cmd, EsRejection *rej)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile int64 seq = 0;

	/*
	 * What the writer opens on first use must outlive the subxact, and the
	 * deferred account rows must be written before it begins.
	 */
	EsWriteOpenAll();
	EsWriteFlushUpdates();
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		seq = EsApplyCommand(cmd, rej, true);
		if (rej->sqlerrcode == 0)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		ReThrowError(edata);
	}
	PG_END_TRY();
	return seq;
}

/* ------------------------------------------------------- first pass */

/* Step 1 of one element: parse it and keep it (under EsDecideTryParse). */
typedef struct EsEachParse
{
	JsonbValue *value;			/* the element */
	MemoryContext keep;			/* where the command is kept */
	MemoryContext scratch;		/* parsing's garbage, reset by the caller */
	EsCommand  *cmd;			/* in: where to parse; kept on success */
} EsEachParse;

static void
ParseStep(void *arg)
{
	EsEachParse *p = arg;

	MemoryContextSwitchTo(p->scratch);
	/* Ordinal 0: the row's ord says which command; messages need not. */
	EsCommandParseElement(p->value, 0, p->cmd);
	MemoryContextSwitchTo(p->keep);
	EsCommandKeep(p->cmd);
}

/* ------------------------------------------------------ second pass */

/*
 * Apply one command of the call (steps 3 to 6 of es_apply.c, the same
 * EsApplyCommand es_apply runs); its seq, or 0 and its rejection.  A
 * command that could be rejected after a write runs again isolated in a
 * subtransaction (see the file header).
 */
static int64
EachCommand(const EsCommand *cmd, EsRejection *rej)
{
	int64		seq = EsApplyCommand(cmd, rej, false);

	if (seq == ES_APPLY_ISOLATE)
		seq = InSubxact(cmd, rej);
	return seq;
}

/* Add a result row: the seq, or the rejection. */
static void
PutRow(ReturnSetInfo *rsinfo, int ord, int64 seq, const EsRejection *rej)
{
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	values[0] = Int32GetDatum(ord);
	if (rej->sqlerrcode == 0)
	{
		values[1] = Int64GetDatum(seq);
		nulls[2] = nulls[3] = nulls[4] = true;
	}
	else
	{
		nulls[1] = true;
		values[2] = CStringGetTextDatum(unpack_sql_state(rej->sqlerrcode));
		values[3] = CStringGetTextDatum(rej->message ? rej->message : "");
		if (rej->detail)
			values[4] = CStringGetTextDatum(rej->detail);
		else
			nulls[4] = true;
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* What es_apply_each hands to ApplyPass in the write bracket. */
typedef struct EsEachPass
{
	ReturnSetInfo *rsinfo;		/* where the rows go */
	EsEachItem *items;			/* the first pass's result, one per element */
	int			n;
	List	   *cmds;			/* the well-formed, authorised commands */
	MemoryContext callcxt;
	MemoryContext cmdcxt;		/* reset after each command */
} EsEachPass;

/*
 * The second pass (steps 2 to 4 of the file header): lock the batch's accounts, apply each
 * command on its own and put its row; each account's projection row is
 * written once, at the end (EsWriteDeferUpdates).
 */
static void
ApplyPass(void *arg)
{
	EsEachPass *pass = arg;

	EsWriteDeferUpdates();
	if (pass->cmds != NIL)
	{
		EsWriteNextCommand();
		EsApplyLockBatch(pass->cmds);
	}
	for (int i = 0; i < pass->n; i++)
	{
		EsEachItem *item = &pass->items[i];
		EsRejection rej;
		int64		seq;
		int			mark;

		CHECK_FOR_INTERRUPTS();
		if (item->cmd == NULL)
		{
			EsStatsCountRejected(item->rejection.sqlerrcode);	/* es_stats */
			PutRow(pass->rsinfo, i + 1, 0, &item->rejection);
			continue;
		}
		EsWriteNextCommand();
		MemoryContextSwitchTo(pass->cmdcxt);
		mark = EsHandlerCollectMark();
		seq = EachCommand(item->cmd, &rej);
		if (rej.sqlerrcode != 0)
			EsHandlerCollectForget(mark);	/* nothing kept: no handler */
		MemoryContextSwitchTo(pass->callcxt);
		if (rej.sqlerrcode != 0)	/* es_stats */
			EsStatsCountRejected(rej.sqlerrcode);
		else
			EsStatsCountApplied(item->cmd->type);
		PutRow(pass->rsinfo, i + 1, seq, &rej);
		MemoryContextReset(pass->cmdcxt);
	}
	/* Each account's projection row, once (see EsWriteDeferUpdates). */
	EsWriteFlushUpdates();
}

/*
 * es_apply_each(commands jsonb)
 *	   RETURNS TABLE(ord int, seq bigint, sqlstate text, message text)
 *
 * Applies each command of the array on its own, in order, in the caller's
 * transaction, and returns one row per command: ord (1-based position),
 * and either seq (the last event it wrote, or for a repeated id the seq
 * returned the first time) or sqlstate and message (its rejection: it
 * wrote nothing).  Commands see what the accepted ones before them wrote.
 * The argument must be a JSON array of at most es_ledger.max_batch_commands
 * elements (ES009 for the whole call otherwise, or for NULL); an empty
 * array gives no row.  Each command is checked against the caller's role
 * (42501 as its row).  Errors that are not a command's rejection abort the
 * whole call (see the file header).  Locks: those of an es_apply batch.
 */
PG_FUNCTION_INFO_V1(es_apply_each);
Datum
es_apply_each(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Jsonb	   *jb;
	int			n;
	EsEachItem *items;
	List	   *cmds = NIL;
	MemoryContext callcxt;
	MemoryContext scratch;
	MemoryContext cmdcxt;
	bool		allowed[ES_ROLE_COUNT] = {false};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_ES_INVALID_COMMAND),
				 errmsg("invalid command: the commands are null"),
				 errdetail("es_apply_each takes a JSON array of command objects.")));
	jb = PG_GETARG_JSONB_P(0);
	if (!JB_ROOT_IS_ARRAY(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_ES_INVALID_COMMAND),
				 errmsg("invalid command: es_apply_each takes an array of commands, not %s",
						JB_ROOT_IS_SCALAR(jb) ? "a scalar" : "an object"),
				 errdetail("Wrap a single command in [ ], or use es_apply.")));
	n = JB_ROOT_COUNT(jb);
	EsCommandCheckBatchSize(n);

	InitMaterializedSRF(fcinfo, 0);
	callcxt = CurrentMemoryContext;
	scratch = AllocSetContextCreate(callcxt, "es_apply_each parse",
									ALLOCSET_SMALL_SIZES);
	cmdcxt = AllocSetContextCreate(callcxt, "es_apply_each command",
								   ALLOCSET_DEFAULT_SIZES);
	items = palloc0(sizeof(EsEachItem) * Max(n, 1));

	/* First pass: parse and authorise every command (step 1). */
	{
		JsonbIterator *it = JsonbIteratorInit(&jb->root);
		JsonbValue	v;
		JsonbIteratorToken tok;
		EsCommand  *block = NULL;
		int			nfree = 0;
		int			i = 0;

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			EsEachParse p;
			EsRejection *rej = &items[i].rejection;
			bool		ok;

			CHECK_FOR_INTERRUPTS();
			if (tok != WJB_ELEM)
				continue;
			if (nfree == 0)
			{
				/*
				 * Commands are allocated 1024 at a time, as es_command.c
				 * does.
				 */
				nfree = Min(1024, n - i);
				block = palloc(sizeof(EsCommand) * nfree);
			}
			p.value = &v;
			p.keep = callcxt;
			p.scratch = scratch;
			p.cmd = block;
			ok = EsDecideTryParse(ParseStep, &p, rej);
			MemoryContextSwitchTo(callcxt);
			if (!ok)
			{
				/* The rejection outlives the parse's scratch memory. */
				rej->message = pstrdup(rej->message);
				rej->detail = rej->detail ? pstrdup(rej->detail) : NULL;
			}
			else
			{
				/* Each role once: 42501 is the command's row. */
				EsCommandRole role = EsDecideCommandRole(block);

				if (!allowed[role])
				{
					ok = EsApplyAuthorize(list_make1(block), rej);
					allowed[role] = ok;
				}
			}
			MemoryContextReset(scratch);
			if (!ok)
				;				/* the rejection is the item's row */
			else
			{
				items[i].cmd = block++;
				nfree--;
				cmds = lappend(cmds, items[i].cmd);
			}
			i++;
		}
		Assert(i == n);
	}

	/*
	 * Second pass: apply the commands in order (steps 2 to 4), in the write
	 * bracket.  Inline user projections then get the accepted commands'
	 * events in seq order; a handler's error is not a command's rejection: it
	 * fails the whole call, as it fails es_apply.
	 */
	{
		EsEachPass	pass = {rsinfo, items, n, cmds, callcxt, cmdcxt};

		EsApplyInBracket(ApplyPass, &pass);
	}

	MemoryContextDelete(scratch);
	MemoryContextDelete(cmdcxt);
	return (Datum) 0;
}
