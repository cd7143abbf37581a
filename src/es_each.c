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
 * So this file validates each command before anything of it is written and
 * catches the rejections where that is safe without one.
 *
 * A rejection is an error with SQLSTATE ES001-ES010, ES013, ES014, 22003
 * or 42501 (IsRejection): the command breaks a rule of the ledger, is
 * malformed, or is not the caller's to send.  It becomes the command's row
 * (seq NULL, sqlstate, message) and the next command runs.  Every other
 * error (57014 cancel or statement_timeout, 53200 out of memory, 40P01
 * deadlock, 40001 serialization failure, 55P03 lock_timeout, 25006
 * read-only, ES011, ES012, XX000, ...) aborts the whole call like any
 * error of a statement: those are the transaction's troubles, not the
 * command's, and the call can be retried as a whole (ids make that safe).
 *
 * How each step of a command is guarded (doc/design.md, "es_apply_each"):
 *
 *	1. Parse and role (first pass over the array, EachParse): pure code.
 *	   Caught by Soft, without a subtransaction.
 *	2. The whole call's write bracket, writer and LockBatch, as es_apply
 *	   opens a batch: not guarded (any error aborts the call).
 *	3. Lock and read the command's accounts, look its id up: index probes
 *	   and row locks, which hold buffer pins and may wait.  Not guarded:
 *	   they raise no rejection, only the whole-call errors above.
 *	4. A registered id's answer (EsApplyKnownCommand: compare, ES008) and
 *	   the decision (the handler's decide function): pure code.  Soft.
 *	5. Append (EsApplyAppendDecision): Soft, with one more condition: the
 *	   rejection must have come before the command wrote anything.  The
 *	   only rejections raised there are 22003 from EsFoldEvent (before any
 *	   write), ES008 when a concurrent command registered the id first (the
 *	   register row is the command's first write, and nothing was inserted)
 *	   and ES004 when a concurrent open took the name (the account row is
 *	   the first write of an open without an id).  Soft checks it: after a
 *	   rejection it calls CommandCounterIncrement, which moves the command
 *	   id on only if a row was written (or locked for update) with it; if
 *	   it moved, the rejection is raised again and aborts the call.
 *	6. Commands for which step 5 can reject after a write, and command
 *	   types this file does not know step by step (EachNeedsSubxact): an
 *	   open_account with an id (its register row is written before its
 *	   account row, whose insertion may lose a race for the name), and any
 *	   type added later until it is listed: the whole command (steps 3-6 of
 *	   es_apply.c, EsApplyCommand) runs in an internal subtransaction
 *	   (InSubxact), rolled back on any error, as plpgsql's exception blocks
 *	   do.
 *
 * Why Soft is safe where it is used: PG_TRY/PG_CATCH without a
 * subtransaction is safe only if, at every place inside the guarded code
 * that raises an error Soft keeps, nothing is held that only a
 * (sub)transaction abort would release: no buffer pin or content lock, no
 * LWLock, no relation, catalog cache or snapshot reference, no open scan,
 * no half-made change.  The guarded code is either pure (parsing, the role
 * check's answer, comparing two jsonb values, the decide functions: memory
 * allocation only) or, in step 5, raises its rejections only where its
 * scans, slots and speculative insertion lock are released; whatever they
 * allocated is in the command's memory context, reset after the command.
 * Soft keeps only rejections raised by es_ledger's own files
 * (IsSoftRejection): the same SQLSTATEs raised by PostgreSQL inside a step
 * (a setval out of bounds raises 22003 with a buffer locked) are not
 * covered by this reasoning and abort the call.
 * errfinish zeroes the interrupt holdoff counts before it jumps: Soft puts
 * back the values it found.  Any other error is rethrown at once
 * (PG_RE_THROW), and the transaction's abort cleans up as for any error.
 * This is the reasoning of PostgreSQL's soft errors and of jsonpath's
 * silent mode, except that those avoid the throw altogether.
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

#include "es_ledger.h"

/* One element of the array, after the first pass. */
typedef struct EsEachItem
{
	EsCommand  *cmd;			/* parsed and authorised, or NULL */
	int			sqlerrcode;		/* the rejection, when cmd is NULL */
	char	   *message;
} EsEachItem;

/* A step guarded by Soft or InSubxact. */
typedef void (*EsEachStep) (void *arg);

/*
 * Is an error a command's rejection (see the file header)?  ES011 (the log
 * is immutable) and ES012 (integrity) are not: they say the ledger itself
 * is in trouble.
 */
static bool
IsRejection(int sqlerrcode)
{
	if (sqlerrcode == ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE ||
		sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE)
		return true;
	return ERRCODE_TO_CATEGORY(sqlerrcode) ==
		ERRCODE_TO_CATEGORY(ERRCODE_ES_INVALID_COMMAND) &&
		sqlerrcode != ERRCODE_ES_LOG_IMMUTABLE &&
		sqlerrcode != ERRCODE_ES_INTEGRITY;
}

/*
 * May Soft keep this error without a subtransaction?  Only a rejection
 * raised by es_ledger's own code (a source file es_*.c), whose rejections
 * are raised where nothing is held (see the file header).  PostgreSQL
 * raises 22003 and 42501 too, and not always where it holds nothing: a
 * setval out of the sequence's bounds (es_write.c HealKey) raises 22003
 * holding the sequence's buffer locked.  Those go on up, and the abort
 * releases what they held.
 */
static bool
IsSoftRejection(const ErrorData *edata)
{
	return IsRejection(edata->sqlerrcode) && edata->filename != NULL &&
		strncmp(edata->filename, "es_", 3) == 0;
}

/*
 * Run step(arg) and return NULL, or the rejection it raised, copied into
 * errcxt.  No subtransaction: only for steps that raise their rejections
 * where they hold nothing (see the file header); any other error goes on
 * up at once.  With check_written, a rejection after the step wrote a row
 * goes on up too (step 5 of the file header).
 */
static ErrorData *
Soft(EsEachStep step, void *arg, MemoryContext errcxt, bool check_written)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	uint32		holdoff = InterruptHoldoffCount;
	uint32		cancel_holdoff = QueryCancelHoldoffCount;
	CommandId	cid = GetCurrentCommandId(false);
	ErrorData  *volatile edata = NULL;

	PG_TRY();
	{
		step(arg);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(errcxt);
		edata = CopyErrorData();
		if (!IsSoftRejection(edata))
			PG_RE_THROW();
		FlushErrorState();
		InterruptHoldoffCount = holdoff;
		QueryCancelHoldoffCount = cancel_holdoff;
		MemoryContextSwitchTo(oldcontext);
	}
	PG_END_TRY();

	if (edata != NULL && check_written)
	{
		/* Moves the command id on only if the step used it to write. */
		CommandCounterIncrement();
		if (GetCurrentCommandId(false) != cid)
			ReThrowError(edata);
	}
	return edata;
}

/*
 * Run step(arg) in an internal subtransaction and return NULL, or the
 * rejection it raised, copied into errcxt, after rolling the
 * subtransaction back.  Any other error is raised again after the
 * rollback.  As plpgsql's exception blocks (exec_stmt_block) do.
 */
static ErrorData *
InSubxact(EsEachStep step, void *arg, MemoryContext errcxt)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		step(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(errcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		if (!IsRejection(edata->sqlerrcode))
			ReThrowError(edata);
	}
	PG_END_TRY();
	return edata;
}

/* ------------------------------------------------------- first pass */

/* Step 1 of one element: parse it, keep it, check the caller's role. */
typedef struct EsEachParse
{
	JsonbValue *value;			/* the element */
	MemoryContext keep;			/* where the command is kept */
	MemoryContext scratch;		/* parsing's garbage, reset by the caller */
	bool	   *allowed;		/* per EsCommandRole: already authorised */
	EsCommand  *cmd;			/* in: where to parse; kept on success */
} EsEachParse;

static void
ParseStep(void *arg)
{
	EsEachParse *p = arg;
	EsCommandRole role;

	MemoryContextSwitchTo(p->scratch);
	/* Ordinal 0: the row's ord says which command; messages need not. */
	EsCommandParseElement(p->value, 0, p->cmd);
	MemoryContextSwitchTo(p->keep);
	EsCommandKeep(p->cmd);

	role = EsDecideCommandRole(p->cmd);
	if (!p->allowed[role])
	{
		EsApplyAuthorize(list_make1(p->cmd));	/* 42501, or passes */
		p->allowed[role] = true;
	}
}

/* ------------------------------------------------------ second pass */

/* The state of one command between its steps (steps 3 to 5). */
typedef struct EsEachCommand
{
	const EsCommand *cmd;
	EsAccountState states[ES_MAX_COMMAND_ACCOUNTS];
	bool		found[ES_MAX_COMMAND_ACCOUNTS];
	int			nstates;
	EsDecision	decision;
	Jsonb	   *canonical;
	Jsonb	   *known;			/* the registered command with the id */
	int64		seq;			/* the result */
} EsEachCommand;

/* Step 4: the answer to a registered id (its seq, or ES008). */
static void
KnownStep(void *arg)
{
	EsEachCommand *c = arg;

	c->seq = EsApplyKnownCommand(c->cmd, c->canonical, c->known, c->seq);
}

/* Step 4: the decision (the handler's rules). */
static void
DecideStep(void *arg)
{
	EsEachCommand *c = arg;

	EsDecideHandler(c->cmd->type)->decide(c->cmd, c->states, c->found,
										  &c->decision);
}

/* Step 5: number, seal, fold and write the events. */
static void
AppendStep(void *arg)
{
	EsEachCommand *c = arg;

	c->seq = EsApplyAppendDecision(c->cmd, &c->decision, c->states,
								   c->nstates, c->canonical);
}

/* Step 6: the whole command, as es_apply applies it (in a subtransaction). */
static void
WholeStep(void *arg)
{
	EsEachCommand *c = arg;

	c->seq = EsApplyCommand(c->cmd);
}

/*
 * Must this command run in a subtransaction (step 6 of the file header)?
 * The command types whose steps this file guards one by one are listed;
 * any other (a type added later) runs in one until it is.
 */
static bool
EachNeedsSubxact(const EsCommand *cmd)
{
	if (cmd->reverses)
		return true;			/* es_reverse's, never from JSON */
	switch (cmd->type)
	{
		case ES_CMD_OPEN_ACCOUNT:
			return cmd->id != NULL;
		case ES_CMD_DEPOSIT:
		case ES_CMD_WITHDRAW:
		case ES_CMD_TRANSFER:
		case ES_CMD_FREEZE_ACCOUNT:
		case ES_CMD_UNFREEZE_ACCOUNT:
		case ES_CMD_CLOSE_ACCOUNT:
		case ES_CMD_SET_LIMITS:
			return false;
		case ES_CMD_POST_PENDING:	/* reads and locks its transfer first */
		case ES_CMD_VOID_PENDING:
		default:
			return true;
	}
}

/*
 * Apply one command of the call (steps 3 to 6 of the file header, in the
 * order of es_apply.c's ApplyCommand); NULL and the seq in c->seq, or its
 * rejection.
 */
static ErrorData *
EachCommand(EsEachCommand *c, MemoryContext errcxt)
{
	const EsCommand *cmd = c->cmd;
	ErrorData  *edata;

	if (EachNeedsSubxact(cmd))
	{
		/*
		 * What the writer opens on first use must outlive the subxact, and
		 * the deferred account rows must be written before it begins.
		 */
		EsWriteOpenAll();
		EsWriteFlushUpdates();
		return InSubxact(WholeStep, c, errcxt);
	}

	/* Lock first, then look the id up (see ApplyCommand). */
	c->nstates = EsApplyLockAccounts(cmd, c->states, c->found);
	if (EsApplyAnyPending(c->states, c->found, c->nstates))
	{
		/*
		 * An account with reservations: the command may first expire some
		 * (events written before its decision), so a rejection would come
		 * after a write.  The whole command in a subtransaction; the locks
		 * just taken are the transaction's and stay.
		 */
		EsWriteOpenAll();
		EsWriteFlushUpdates();
		return InSubxact(WholeStep, c, errcxt);
	}
	if (cmd->id)
	{
		c->canonical = EsCommandCanonical(cmd);
		if (EsWriteFindCommand(cmd->id, &c->known, &c->seq))
			return Soft(KnownStep, c, errcxt, false);
	}
	c->decision.now = EsApplyRecordedAt(c->states, c->nstates);
	c->decision.transfer = NULL;
	edata = Soft(DecideStep, c, errcxt, false);
	if (edata == NULL)
		edata = Soft(AppendStep, c, errcxt, true);
	return edata;
}

/* Add a result row. */
static void
PutRow(ReturnSetInfo *rsinfo, int ord, int64 seq, const ErrorData *edata,
	   int sqlerrcode, const char *message)
{
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (edata)
	{
		sqlerrcode = edata->sqlerrcode;
		message = edata->message;
	}
	values[0] = Int32GetDatum(ord);
	if (sqlerrcode == 0)
	{
		values[1] = Int64GetDatum(seq);
		nulls[2] = nulls[3] = true;
	}
	else
	{
		nulls[1] = true;
		values[2] = CStringGetTextDatum(unpack_sql_state(sqlerrcode));
		values[3] = CStringGetTextDatum(message ? message : "");
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
	MemoryContext errcxt;		/* a rejection's error data */
} EsEachPass;

/*
 * The second pass (steps 2 to 6): lock the batch's accounts, apply each
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
		EsEachCommand *c;
		ErrorData  *edata;
		int			mark;

		CHECK_FOR_INTERRUPTS();
		if (item->cmd == NULL)
		{
			PutRow(pass->rsinfo, i + 1, 0, NULL, item->sqlerrcode,
				   item->message);
			continue;
		}
		EsWriteNextCommand();
		MemoryContextSwitchTo(pass->cmdcxt);
		c = palloc0(sizeof(EsEachCommand));
		c->cmd = item->cmd;
		mark = EsHandlerCollectMark();
		edata = EachCommand(c, pass->errcxt);
		if (edata)
			EsHandlerCollectForget(mark);	/* rolled back: no handler */
		MemoryContextSwitchTo(pass->callcxt);
		PutRow(pass->rsinfo, i + 1, c->seq, edata, 0, NULL);
		MemoryContextReset(pass->cmdcxt);
		MemoryContextReset(pass->errcxt);
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
	MemoryContext errcxt;
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
	errcxt = AllocSetContextCreate(callcxt, "es_apply_each rejection",
								   ALLOCSET_SMALL_SIZES);
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
			ErrorData  *edata;

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
			p.allowed = allowed;
			p.cmd = block;
			edata = Soft(ParseStep, &p, errcxt, false);
			MemoryContextSwitchTo(callcxt);
			MemoryContextReset(scratch);
			if (edata)
			{
				items[i].sqlerrcode = edata->sqlerrcode;
				items[i].message = pstrdup(edata->message ? edata->message : "");
				MemoryContextReset(errcxt);
			}
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
	 * Second pass: apply the commands in order (steps 2 to 6), in the write
	 * bracket.  Inline user projections then get the accepted commands'
	 * events in seq order; a handler's error is not a command's rejection:
	 * it fails the whole call, as it fails es_apply.
	 */
	{
		EsEachPass pass = {rsinfo, items, n, cmds, callcxt, cmdcxt, errcxt};

		EsApplyInBracket(ApplyPass, &pass);
	}

	MemoryContextDelete(scratch);
	MemoryContextDelete(cmdcxt);
	MemoryContextDelete(errcxt);
	return (Datum) 0;
}
