/*-------------------------------------------------------------------------
 *
 * es_apply.c
 *	  The write path: es_apply(jsonb) and its typed shorthands.
 *
 * One command goes down the layers once, all in the caller's transaction:
 *
 *	1. Shape (es_command.c): the JSON, or the shorthand's arguments, become
 *	   an EsCommand or are refused with ES009 / 22003 before the database is
 *	   touched.
 *	2. Role: each command type is for es_ledger_writer (money movements) or
 *	   es_ledger_admin (account administration); every command of the call
 *	   is checked before anything is written, 42501 otherwise.  es_reverse's
 *	   compensating command (cmd->reverses set) needs es_ledger_admin
 *	   whatever its type: a reversal is administration.
 *	3. Lock (es_write.c): the accounts the command names are locked (the row
 *	   lock FOR UPDATE takes, in ascending account_id order, so two transfers
 *	   in opposite directions cannot deadlock) and their states read; an
 *	   account the command opens has no row yet and is only looked up.
 *	   post_pending and void_pending name a pending transfer instead: its
 *	   two accounts are locked the same way, then the transfer is read again
 *	   with a fresh snapshot.  Every change of a transfer is made under the
 *	   locks of both its accounts, so that read is its latest state: of two
 *	   commands racing on one transfer, the second sees what the first did.
 *	4. Idempotency: a command with an id looks it up in es_commands
 *	   (es_write.c), after the lock, so a retry that waited for its original
 *	   sees it.  A known id with the same canonical command returns the seq
 *	   it returned the first time and writes nothing; with another command it
 *	   fails with ES008.
 *	   A compensating command of es_reverse (es_reverse.c) is then refused
 *	   if another command already reverses the same command.
 *	   Then the expired reservations of the accounts named are released
 *	   (ExpireTouched: TransferExpired on both accounts of each), so the
 *	   rules count live reservations only; the other account of such a
 *	   reservation is locked without waiting (it may sort before the locks
 *	   held), and skipped if busy.
 *	5. Decide (es_decide.c): the command type's handler checks its rules
 *	   against those states, and the time its events will be recorded at
 *	   (which decides expiry), and returns the events to append.
 *	6. Events: each is numbered (seq from the log's sequence, version from
 *	   the account), sealed (checksum and hash link, es_event.c) and folded
 *	   into its account's state (EsFoldEvent, the fold replay uses).  Then
 *	   es_write.c registers the id and inserts a new account's row, both
 *	   through their unique indexes the way INSERT ... ON CONFLICT does: a
 *	   concurrent command with the same id, or open of the same name, makes
 *	   one of the two wait for the other and then answer as if it had come
 *	   second (the idempotent result or ES008; ES004).  No advisory lock is
 *	   taken, so no other role can block a command by taking one.  Last, the
 *	   events are appended, each account's projection row written once, and
 *	   the transfer's es_transfers row inserted or updated (the transfer fold
 *	   of its debit-side event, WriteTransfer).  An account whose version
 *	   crossed a multiple of es_ledger.snapshot_interval gets a snapshot
 *	   (es_snap.c).
 *
 * es_expire_pending (es_expire.c) releases every reservation whose time
 * has run out the same way (EsApplyExpireTransfer).
 *
 * A command's rejection (a rule it breaks, ES008 for an id, ES004 for a
 * name, ES010, 42501) is a value, EsRejection, returned up the steps by
 * EsApplyCommand, which es_apply_each (es_each.c) shares; es_apply raises
 * it (EsRejectionRaise), with the SQLSTATE, message, detail and hint it
 * always had.  An error at any step raises, and the transaction (or the
 * caller's savepoint) undoes whatever was written: nothing is ever half
 * applied.  A
 * JSON array is a batch: its commands are applied in order by the same
 * steps, and it is atomic for the same reason.  A batch first takes the row
 * locks of every existing account it names, in ascending account_id order,
 * as a single command does.  (A caller's own transaction that calls
 * es_apply several times takes its locks command by command, and can
 * deadlock with another such transaction like any two transactions can;
 * so can two batches that open the same names, or use the same ids, in
 * opposite orders: one gets 40P01 and writes nothing.)  Batches and parsing check for interrupts between
 * commands, so statement_timeout and cancel stop a long batch.
 *
 * recorded_at is the transaction's start time, raised where needed to the
 * latest recorded_at of the accounts touched, so each account's events are
 * in recorded_at order and time travel by transaction time sees prefixes.
 *
 * Writes are done under the write guard (es_guard.c) at executor level
 * (es_write.c), which checks no table privileges: EXECUTE on es_apply and
 * the shorthands is the only gate.
 *
 * Inline user projections (es_handler.c) run last, for the events the call
 * appended, in seq order: after the write guard is closed and the writer
 * ended, as each projection's owner, still in the caller's transaction.  A
 * handler's error fails the call like any rejection, so nothing is half
 * applied.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "apply.h"

/* The recorded_at of a command's events (see the file header). */
TimestampTz
EsApplyRecordedAt(const EsAccountState *states, int n)
{
	TimestampTz ts = GetCurrentTransactionStartTimestamp();

	for (int i = 0; i < n; i++)
		if (states[i].status != ES_ACCOUNT_NONE && states[i].updated_at > ts)
			ts = states[i].updated_at;
	return ts;
}

/*
 * Step 3: lock the accounts a command names and read their states into
 * states[], with found[] telling which exist; returns how many it names,
 * or -1 with *rej set (ES010: no such pending transfer).
 * An account the command opens is not locked (it has no row yet): its name
 * is looked up with a fresh snapshot, and a concurrent open of the name is
 * caught when the row is inserted (AppendDecision).
 */
static int
LockCommandAccounts(const EsCommand *cmd, EsAccountState *states, bool *found,
					EsTransfer *transfer, EsRejection *rej)
{
	const char *names[ES_MAX_COMMAND_ACCOUNTS];
	int			n = 0;

	if (EsDecideHandler(cmd->type)->by_transfer)
	{
		/*
		 * post_pending, void_pending: the accounts are the transfer's.  Lock
		 * them, then read the transfer again with a fresh snapshot: every
		 * change of a transfer is made under the locks of both its accounts,
		 * so a post or void that ran meanwhile has committed (or rolled back)
		 * by now and this sees what it left, whatever the isolation level.
		 */
		if (!EsWriteFindTransfer(cmd->pending_id, transfer))
			return EsDecidePendingNotFound(cmd->pending_id, rej) ? 0 : -1;
		names[0] = transfer->from_account;
		names[1] = transfer->to_account;
		EsWriteLockAccounts(names, 2, states, found);
		if (!EsWriteFindTransfer(cmd->pending_id, transfer))
			return EsDecidePendingNotFound(cmd->pending_id, rej) ? 0 : -1;
		return 2;
	}
	names[n++] = cmd->account;
	if (cmd->to_account)
		names[n++] = cmd->to_account;
	if (EsDecideHandler(cmd->type)->opens)
	{
		int64		id;

		found[0] = EsWriteLookupAccountId(cmd->account, &id);
		EsFoldInit(&states[0], 0);
		states[0].account = cmd->account;
		states[0].account_id = found[0] ? id : 0;
	}
	else
		EsWriteLockAccounts(names, n, states, found);
	return n;
}

/*
 * The answer to a command whose id is registered already: the seq it
 * returned the first time, or 0 and ES008 in *rej if the id was used for
 * another command.
 */
static int64
KnownCommand(const EsCommand *cmd, Jsonb *canonical, Jsonb *known, int64 seq,
			 EsRejection *rej)
{
	if (compareJsonbContainers(&known->root, &canonical->root) != 0)
		return EsReject(rej, ERRCODE_ES_IDEMPOTENCY_CONFLICT,
						psprintf("command id \"%s\" was already used for another command",
								 cmd->id),
						pstrdup("A retry must repeat the original command exactly; a new command needs a new id."),
						NULL) ? seq : 0;
	return seq;
}

/*
 * The es_transfers row of a transfer event: an immediate or pending
 * transfer's debit-side event creates the row, a post, void or expiry
 * changes the row of decision->transfer; each is the transfer fold of the
 * event (EsFoldTransfer).  Credit-side and other events change no row, nor
 * does anything in a ledger not yet updated to 0.3.0 (no es_transfers;
 * two-phase transfers are refused there).
 */
static void
WriteTransfer(const EsEvent *ev, const EsDecision *decision,
			  const EsAccountState *states)
{
	bool		debit;
	EsTransfer	t;

	if (!EsFoldEventIsTransfer(ev, &debit) || !debit)
		return;
	if (ev->type == ES_EV_TRANSFER_SENT || ev->type == ES_EV_TRANSFER_RESERVED)
	{
		if (ev->type == ES_EV_TRANSFER_SENT && !EsRowHasTransfers())
			return;
		memset(&t, 0, sizeof(t));
		EsFoldTransfer(&t, ev, states[0].account);
		EsWriteInsertTransfer(&t);
	}
	else
	{
		t = *decision->transfer;
		EsFoldTransfer(&t, ev, states[0].account);
		EsWriteUpdateTransfer(&t);
	}
}

/*
 * Step 6: number, seal and fold the events decided into the states, then
 * register the id, insert new accounts, append the events and write the
 * projection rows.  Returns the seq of the last event, or the answer for an
 * id a concurrent command registered first (its seq, or 0 and ES008 in
 * *rej), or 0 and ES004 in *rej when a concurrent open took the name: with
 * an id, that comes after the id's register row was written (the caller
 * runs such a command isolated, see EsApplyCommand).  rej may be NULL for
 * an expiry, which is never rejected.
 */
static int64
AppendDecision(const EsCommand *cmd, const EsDecision *decision,
			   EsAccountState *states, int nstates, Jsonb *canonical,
			   EsRejection *rej)
{
	EsEvent		events[ES_MAX_COMMAND_EVENTS];
	bool		opened[ES_MAX_COMMAND_ACCOUNTS] = {false};
	bool		touched[ES_MAX_COMMAND_ACCOUNTS] = {false};
	TimestampTz recorded_at = decision->now;
	const char *command_id = cmd ? cmd->id : NULL;
	int64		prev_version[ES_MAX_COMMAND_ACCOUNTS];
	int64		seq = 0;

	for (int a = 0; a < nstates; a++)
		prev_version[a] = states[a].status == ES_ACCOUNT_NONE ? 0 :
			states[a].version;

	for (int i = 0; i < decision->nevents; i++)
	{
		int			a = decision->events[i].account;
		EsAccountState *state = &states[a];
		EsEvent    *ev = &events[i];

		if (state->status == ES_ACCOUNT_NONE && !opened[a])
		{
			/* A new account: its id, and its state before the first event. */
			EsFoldInit(state, EsHealNextAccountId());
			opened[a] = true;
		}
		touched[a] = true;
		ev->seq = EsHealNextSeq();
		ev->account_id = state->account_id;
		ev->version = state->version + 1;
		ev->type = decision->events[i].type;
		ev->amount = decision->events[i].amount;
		ev->data = decision->events[i].data;
		ev->command_id = (char *) command_id;
		ev->recorded_at = recorded_at;
		ev->effective_at = EsDecideEffectiveAt(cmd, decision);
		EsEventSeal(ev, state->last_hash);
		EsFoldEvent(state, ev);
		seq = ev->seq;
	}

	if (command_id && !EsWriteInsertCommand(cmd->id, canonical, seq))
	{
		/* A concurrent command with this id committed first. */
		Jsonb	   *known;
		int64		known_seq;

		if (!EsWriteFindCommand(cmd->id, &known, &known_seq))
			elog(ERROR, "command id \"%s\" is registered but cannot be read",
				 cmd->id);
		return KnownCommand(cmd, canonical, known, known_seq, rej);
	}
	for (int a = 0; a < nstates; a++)
		if (opened[a] && !EsWriteInsertAccount(&states[a]))
			return EsDecideAccountExists(states[a].account, rej) ? seq : 0;
	for (int i = 0; i < decision->nevents; i++)
	{
		EsWriteInsertEvent(&events[i]);
		EsHandlerCollect(&events[i]);	/* for inline projections */
	}
	for (int a = 0; a < nstates; a++)
		if (touched[a] && !opened[a])
			EsWriteUpdateAccount(&states[a]);
	for (int i = 0; i < decision->nevents; i++)
		WriteTransfer(&events[i], decision, states);
	/* Every es_ledger.snapshot_interval events, a snapshot (es_snap.c). */
	for (int a = 0; a < nstates; a++)
		if (touched[a])
			EsSnapAfterAppend(&states[a], prev_version[a]);
	return seq;
}

/*
 * A compensating command of es_reverse (cmd->reverses set) is refused with
 * ES008 (false, *rej set) when another command already reverses the same
 * command (one probe of es_commands_reverses_idx, es_scan.c; the index's
 * uniqueness backs it).  It runs
 * after the accounts are locked, and they are the accounts of the command
 * reversed, so of every reversal of it: a concurrent reversal has committed
 * (or rolled back) by then, and the fresh snapshot of the scan sees it.
 */
static bool
CheckNotReversed(const EsCommand *cmd, EsRejection *rej)
{
	char	   *other;

	if (EsScanFindReversal(cmd->reverses, cmd->id, &other))
		return EsReject(rej, ERRCODE_ES_IDEMPOTENCY_CONFLICT,
						psprintf("command \"%s\" was already reversed by command \"%s\"",
								 cmd->reverses, other),
						pstrdup("A command is reversed at most once; retry the reversal with its own id to get its seq."),
						NULL);
	return true;
}

/*
 * Expire pending transfer t (read after the lock of at least one of its
 * accounts was taken, so current), whose expiry time is at or before
 * now_hint: lock both its accounts without waiting (they may come in any
 * order relative to the locks held; waiting could deadlock) and append its
 * TransferExpired events, recorded at now_hint or later (the accounts'
 * last recorded_at).  False, with nothing written, if an account is locked
 * by another transaction: a later command, or es_expire_pending, expires
 * it.  The caller starts a new command id (EsWriteNextCommand) before the
 * next write.  Also es_expire_pending's (es_expire.c).
 */
bool
EsApplyExpireTransfer(const EsTransfer *t, TimestampTz now_hint)
{
	EsAccountState states[2];
	EsDecision	decision = {0};

	if (!EsWriteTryLockAccount(t->from_account, &states[0]) ||
		!EsWriteTryLockAccount(t->to_account, &states[1]))
		return false;
	decision.now = Max(now_hint, EsApplyRecordedAt(states, 2));
	decision.transfer = t;
	EsDecideExpire(t, states, &decision);
	AppendDecision(NULL, &decision, states, 2, NULL, NULL);
	return true;
}

/*
 * A command touches the accounts it names: before it is decided, release
 * the reservations of those accounts whose time ran out at now (the
 * recorded_at its events get), found through the partial indexes on
 * pending transfers, so that its rules count live reservations only (and
 * close_account finds an account whose reservations all expired empty).
 * Only accounts with a pending amount are looked at, so the common command
 * pays two comparisons.  Returns whether anything was expired (the caller
 * then reads the states again).  If the command is then refused, its
 * error undoes the expiry too, like everything else it wrote.
 */
static bool
ExpireTouched(const EsAccountState *states, const bool *found, int n,
			  TimestampTz now)
{
	List	   *seen = NIL;
	bool		any = false;

	for (int a = 0; a < n; a++)
	{
		for (int side = 0; side < 2; side++)
		{
			List	   *expired;
			ListCell   *lc;

			if (!found[a] || states[a].status == ES_ACCOUNT_NONE ||
				(side == 0 ? states[a].pending_out : states[a].pending_in) == 0)
				continue;
			expired = EsWriteExpiredTransfers(side == 0 ?
											  ES_REL_TRANSFERS_FROM_IDX :
											  ES_REL_TRANSFERS_TO_IDX,
											  states[a].account_id, now, 0);
			foreach(lc, expired)
			{
				EsTransfer *t = lfirst(lc);
				bool		dup = false;
				ListCell   *lc2;

				foreach(lc2, seen)
				{
					if (*(int64 *) lfirst(lc2) == t->seq)
						dup = true;
				}
				if (dup)
					continue;
				seen = lappend(seen, &t->seq);
				EsWriteNextCommand();
				if (EsApplyExpireTransfer(t, now))
					any = true;
			}
		}
	}
	if (any)
		EsWriteNextCommand();
	return any;
}

/* Does any of the states hold a reservation? */
static bool
AnyPending(const EsAccountState *states, const bool *found, int n)
{
	for (int a = 0; a < n; a++)
		if (found[a] && (states[a].pending_out != 0 || states[a].pending_in != 0))
			return true;
	return false;
}

/*
 * Apply one parsed command (steps 3 to 6 of the file header) and return the
 * seq of its last event, or of the original application's for a repeated
 * idempotent command; or 0 and its rejection in *rej.  The caller holds the
 * writer (EsWriteBegin) and the write guard.
 *
 * A rejection is a value, made where the rule is found: the decision
 * (es_decide.c), the idempotency check (ES008, here or when a concurrent
 * command registered the id first), a concurrent open of the name (ES004),
 * a pending_id that names nothing (ES010).  Each is made before the
 * command wrote anything, except in two cases: expiring an account's
 * reservations (a write) before deciding, and an open_account with an id,
 * whose register row is written before its account row may lose the race
 * for the name.  Without isolated, such a command writes nothing and
 * returns ES_APPLY_ISOLATE: the caller runs it again isolated (es_apply:
 * always, its statement is atomic; es_apply_each: in a subtransaction,
 * rolled back on a rejection).  Either way the row locks taken stay.
 */
int64
EsApplyCommand(const EsCommand *cmd, EsRejection *rej, bool isolated)
{
	const EsCommandHandler *handler = EsDecideHandler(cmd->type);
	EsAccountState states[ES_MAX_COMMAND_ACCOUNTS];
	bool		found[ES_MAX_COMMAND_ACCOUNTS] = {false};
	EsDecision	decision = {0};
	EsTransfer	transfer;
	Jsonb	   *canonical = NULL;
	int			n;

	rej->sqlerrcode = 0;

	/*
	 * Lock first, then look the id up: a retry that waited for its original
	 * on the account's row lock finds it registered, and answers with its seq
	 * rather than with the rules against the state it left.
	 */
	n = LockCommandAccounts(cmd, states, found, &transfer, rej);
	if (n < 0)
		return 0;
	if (cmd->id)
	{
		Jsonb	   *known;
		int64		seq;

		canonical = EsCommandCanonical(cmd);
		if (EsWriteFindCommand(cmd->id, &known, &seq))
			return KnownCommand(cmd, canonical, known, seq, rej);
	}
	if (cmd->reverses && !CheckNotReversed(cmd, rej))
		return 0;
	if (!handler->opens && AnyPending(states, found, n))
	{
		if (!isolated)
			return ES_APPLY_ISOLATE;
		if (ExpireTouched(states, found, n, EsDecideClock(EsApplyRecordedAt(states, n))))
		{
			n = LockCommandAccounts(cmd, states, found, &transfer, rej);
			if (n < 0)
				return 0;
		}
	}
	decision.now = EsApplyRecordedAt(states, n);
	decision.transfer = handler->by_transfer ? &transfer : NULL;
	handler->decide(cmd, states, found, &decision);
	if (decision.rejection.sqlerrcode != 0)
	{
		*rej = decision.rejection;
		return 0;
	}
	if (!isolated && cmd->id && handler->opens)
		return ES_APPLY_ISOLATE;
	return AppendDecision(cmd, &decision, states, n, canonical, rej);
}

/* Does the current user have the privileges of the role named? */
static bool
MemberOf(const char *rolename)
{
	Oid			roleid = get_role_oid(rolename, true);

	return OidIsValid(roleid) && has_privs_of_role(GetUserId(), roleid);
}

/*
 * Step 2: refuse, with 42501 in *rej (false) and before anything is
 * written, a call that holds a command the current user may not send:
 * money movements need es_ledger_writer, account administration
 * es_ledger_admin (membership with inherited privileges; superusers have
 * both); opening an account without credit either.
 */
bool
EsApplyAuthorize(List *cmds, EsRejection *rej)
{
	bool		checked[ES_ROLE_COUNT] = {false};
	ListCell   *lc;

	foreach(lc, cmds)
	{
		const EsCommand *cmd = lfirst(lc);
		EsCommandRole role = EsDecideCommandRole(cmd);
		EsCommandRole need = role == ES_ROLE_OPENER ? ES_ROLE_ADMIN : role;
		const char *rolename = EsDecideRoleName(need);

		if (checked[role])
			continue;
		if (!superuser() && !MemberOf(rolename) &&
			!(role == ES_ROLE_OPENER && MemberOf(EsDecideRoleName(ES_ROLE_WRITER))))
		{
			EsReject(rej, ERRCODE_INSUFFICIENT_PRIVILEGE,
					 psprintf("permission denied for command type %s",
							  EsDecideHandler(cmd->type)->name),
					 cmd->reverses ?
					 psprintf("Only members of %s may reverse commands.",
							  rolename) :
					 role == ES_ROLE_OPENER ?
					 pstrdup("Only members of es_ledger_writer or es_ledger_admin may open accounts.") :
					 psprintf("Only members of %s may send %s commands.",
							  rolename,
							  role == ES_ROLE_ADMIN ? "account administration" :
							  "money movement"),
					 cmd->type == ES_CMD_OPEN_ACCOUNT && role == ES_ROLE_ADMIN ?
					 pstrdup("Members of es_ledger_writer may open an account without credit: overdraft_limit 0 and no max_balance.") : NULL);
			if (cmd->ordinal > 0)
				rej->context = psprintf("command %d of the batch", cmd->ordinal);
			return false;
		}
		checked[role] = true;
	}
	return true;
}

/* C-string pointer comparator for qsort. */
static int
CompareNames(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * Before any command of a batch runs, lock every existing account it names,
 * in ascending account_id order, as single commands lock theirs.  So a
 * batch and the commands running beside it wait for each other but never
 * deadlock on accounts.
 */
void
EsApplyLockBatch(List *cmds)
{
	int			max = list_length(cmds) * 2;
	const char **names = palloc(sizeof(char *) * max);
	EsAccountState *states;
	bool	   *found;
	int			n = 0;
	ListCell   *lc;

	foreach(lc, cmds)
	{
		EsCommand  *cmd = lfirst(lc);

		CHECK_FOR_INTERRUPTS();
		if (EsDecideHandler(cmd->type)->opens)
			continue;			/* no row yet */
		if (EsDecideHandler(cmd->type)->by_transfer)
		{
			EsTransfer	t;

			/* A transfer created earlier in the batch has no row yet. */
			if (EsWriteFindTransfer(cmd->pending_id, &t))
			{
				names[n++] = t.from_account;
				names[n++] = t.to_account;
			}
			continue;
		}
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
	/* States only for the distinct accounts, not two per command. */
	states = palloc(sizeof(EsAccountState) * Max(n, 1));
	found = palloc(sizeof(bool) * Max(n, 1));
	EsWriteLockAccounts(names, n, states, found);
	pfree(names);
	pfree(states);
	pfree(found);
}

/*
 * Run body(arg) inside the write bracket, the one way every appending entry
 * point (es_apply, es_apply_each, es_expire_pending) opens and closes it:
 * the write guard, the executor-level writer, and the collector of the
 * events appended for inline user projections (begun after EsWriteBegin has
 * locked es_events, see es_handler.c).  On the way out, error or not, the
 * collector and the guard are closed; then, outside the guard, AFTER row
 * triggers (if anyone added some) run at EsWriteEnd, and the inline
 * projections' handlers run as their owners for the events collected.
 */
void
EsApplyInBracket(EsApplyBody body, void *arg)
{
	MemoryContext callcxt = CurrentMemoryContext;
	void	   *volatile prev_collector = NULL;
	void	   *volatile collected = NULL;

	EsGuardBeginWrite();
	PG_TRY();
	{
		EsWriteBegin();
		prev_collector = EsHandlerCollectBegin(callcxt);
		body(arg);
	}
	PG_FINALLY();
	{
		collected = EsHandlerCollectEnd(prev_collector);
		EsGuardEndWrite();
	}
	PG_END_TRY();
	EsWriteEnd();
	EsHandlerRunInline(collected);
}

/* What EsApplyCommands hands to ApplyBatch in the bracket. */
typedef struct EsApplyBatch
{
	List	   *cmds;
	MemoryContext cmdcxt;		/* per command of a batch, or NULL */
	int64		seq;			/* the result */
} EsApplyBatch;

/*
 * Lock a batch's accounts and apply its commands in order.  A batch writes
 * each account's projection row once, after its last command, as
 * es_apply_each does (EsWriteDeferUpdates): commands read the newest state
 * from the account cache meanwhile, so a hot account updated by 100,000
 * commands of one call leaves one row version, not 100,000 that each
 * update would walk.  No subtransaction runs inside a batch (its commands
 * run isolated), so no deferred state can outlive a rollback of its own.
 */
static void
ApplyBatch(void *arg)
{
	EsApplyBatch *b = arg;
	ListCell   *lc;

	if (list_length(b->cmds) > 1)
	{
		EsWriteNextCommand();
		EsApplyLockBatch(b->cmds);
		/* Each account's projection row once, at the end of the batch. */
		EsWriteDeferUpdates();
	}
	foreach(lc, b->cmds)
	{
		EsRejection rej;
		MemoryContext old = CurrentMemoryContext;

		CHECK_FOR_INTERRUPTS();
		EsWriteNextCommand();
		/* A batch frees each command's memory before the next. */
		if (b->cmdcxt)
			MemoryContextSwitchTo(b->cmdcxt);
		b->seq = EsApplyCommand((EsCommand *) lfirst(lc), &rej, true);
		/* The statement is atomic: its error undoes what the call wrote. */
		if (rej.sqlerrcode != 0)
			EsRejectionRaise(&rej);
		MemoryContextSwitchTo(old);
		if (b->cmdcxt)
			MemoryContextReset(b->cmdcxt);
	}
	/* A rejection raised above leaves nothing to write: the call fails. */
	if (list_length(b->cmds) > 1)
		EsWriteFlushUpdates();
}

/* Apply a list of parsed commands under the write guard; last seq. */
static int64
ApplyCommands(List *cmds)
{
	EsApplyBatch b = {cmds, NULL, 0};

	if (list_length(cmds) > 1)
		b.cmdcxt = AllocSetContextCreate(CurrentMemoryContext, "es_apply command",
										 ALLOCSET_DEFAULT_SIZES);
	{
		EsRejection rej;

		if (!EsApplyAuthorize(cmds, &rej))
			EsRejectionRaise(&rej);
	}
	EsApplyInBracket(ApplyBatch, &b);
	if (b.cmdcxt)
		MemoryContextDelete(b.cmdcxt);
	return b.seq;
}

/* ---- es_stats: counting (es_stats.c) ---- */

/* Nesting of counted calls: only the outermost one counts (a handler's). */
static int	CountDepth = 0;

/*
 * Run body(arg) counted for es_stats: an error that leaves the outermost
 * counted call is counted as a rejection by its SQLSTATE, then re-thrown.
 * Without the shared counters (no shared_preload_libraries) just body.
 * Counting takes no lock and cannot fail (es_stats.c).  Each SQL call
 * enters it once, its body doing the whole call (parse or check, then
 * apply), so a malformed command counts like a refused one.
 */
static int64
ApplyCounted(int64 (*body) (void *arg), void *arg)
{
	int64		result;

	if (!EsStatsEnabled())
		return body(arg);
	CountDepth++;
	PG_TRY();
	{
		result = body(arg);
	}
	PG_CATCH();
	{
		if (--CountDepth == 0)
			EsStatsCountRejected(geterrcode());
		PG_RE_THROW();
	}
	PG_END_TRY();
	CountDepth--;
	return result;
}

/* Apply parsed commands and count each applied one by its type. */
static int64
ApplyAndCount(List *cmds)
{
	int64		seq = ApplyCommands(cmds);
	ListCell   *lc;

	if (CountDepth == 1)
		foreach(lc, cmds)
			EsStatsCountApplied(((EsCommand *) lfirst(lc))->type);
	return seq;
}

/* ApplyCounted's body for EsApplyCommands. */
static int64
ApplyCommandsBody(void *arg)
{
	return ApplyAndCount((List *) arg);
}

/*
 * Apply a list of parsed and checked commands under the write guard; last
 * seq.  Counted for es_stats: each command applied by its type, an error by
 * its SQLSTATE.
 */
int64
EsApplyCommands(List *cmds)
{
	return ApplyCounted(ApplyCommandsBody, cmds);
}

/* ApplyCounted's body for a shorthand: check its command, apply it. */
static int64
ApplyShorthandBody(void *arg)
{
	EsCommand  *cmd = arg;

	EsCommandFinish(cmd);
	return ApplyAndCount(list_make1(cmd));
}

/*
 * Check a command a shorthand built (EsCommandFinish, as es_apply's parser
 * does) and apply it; last seq.  Counted as EsApplyCommands is.
 */
int64
EsApplyShorthand(EsCommand *cmd)
{
	return ApplyCounted(ApplyShorthandBody, cmd);
}

/* ApplyCounted's body for es_apply: parse its argument, apply it. */
static int64
ApplyArgumentBody(void *arg)
{
	return ApplyAndCount(EsCommandParseArgument((Jsonb *) arg));
}

/* ---- end of es_stats counting ---- */

/*
 * es_apply(command jsonb) RETURNS bigint
 *
 * Validates a command (or an array of commands: an atomic batch) against the
 * current state, appends its events to es_events, updates es_accounts and
 * returns the seq of the last event written.  Needs es_ledger_writer for
 * money movements and es_ledger_admin for account administration (42501).
 * Locks, all held to the end of the transaction: the row locks of FOR
 * UPDATE on the es_accounts rows of the accounts touched; RowExclusiveLock
 * on the tables written.  Waits (no lock kept) for a concurrent command
 * with the same id, or open of the same name, to finish.
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
	PG_RETURN_INT64(ApplyCounted(ApplyArgumentBody, PG_GETARG_JSONB_P(0)));
}
