/*-------------------------------------------------------------------------
 *
 * es_expire.c
 *	  es_expire_pending(): every pending transfer whose time has run out
 *	  released, for a scheduler.
 *
 * It sits above es_apply.c and writes through it: inside the write bracket
 * (EsApplyInBracket), each due transfer is expired exactly as a command
 * touching one of its accounts expires it (EsApplyExpireTransfer:
 * TransferExpired on both accounts, status 'expired' in es_transfers), so
 * inline user projections get the events too.
 *
 * Invariants: a transfer is expired only under the row locks of both its
 * accounts, read again after they are taken (every change of a transfer is
 * made under them, so that read is its latest state), and only if its time
 * is up by the clock of the decision (EsDecideClock, the same rule post and
 * void follow).
 *
 * Locks: the es_accounts row locks (FOR UPDATE) of both accounts of each
 * transfer expired, taken without waiting (a transfer with an account
 * locked by another transaction is skipped), and RowExclusiveLock on the
 * tables written, all to the end of the transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/timestamp.h"

#include "apply.h"

/*
 * es_expire_pending() RETURNS bigint
 *
 * Releases every pending transfer whose timeout has run out (its
 * created_at + timeout at or before the transaction's start time): for
 * each, TransferExpired on both accounts and status 'expired' in
 * es_transfers, exactly as a command touching one of its accounts would.
 * Returns how many it expired.  Cheap enough to call every second from a
 * scheduler (pg_cron): it walks only the partial index
 * es_transfers_expires_idx (expires_at) WHERE status = 'pending', from its
 * start up to now, so with nothing due it reads one index page.
 *
 * Locks: RowExclusiveLock on the tables written, and the es_accounts row
 * locks (FOR UPDATE) of both accounts of each transfer expired, until the
 * transaction ends.  It never waits for a row lock: a transfer with an
 * account locked by another transaction is skipped (a later call, or the
 * next command on the account, expires it), so it cannot deadlock with
 * commands, nor two concurrent calls with each other.  For
 * es_ledger_writer and es_ledger_admin (EXECUTE).  25006 in a read-only
 * transaction.
 */
/* What es_expire_pending hands to ExpireDue in the bracket. */
typedef struct EsExpireRun
{
	TimestampTz now;
	int64		expired;		/* the result */
} EsExpireRun;

/* Expire every pending transfer due at run->now whose accounts are free. */
static void
ExpireDue(void *arg)
{
	EsExpireRun *run = arg;
	List	   *due;
	ListCell   *lc;

	EsWriteNextCommand();
	due = EsWriteExpiredTransfers(ES_REL_TRANSFERS_EXPIRES_IDX, 0, run->now, 0);
	foreach(lc, due)
	{
		EsTransfer *t = lfirst(lc);
		EsAccountState states[2];
		EsTransfer	latest;

		CHECK_FOR_INTERRUPTS();
		EsWriteNextCommand();
		/* Both locks, then the transfer as it is now (see EsApplyCommand). */
		if (!EsWriteTryLockAccount(t->from_account, &states[0]) ||
			!EsWriteTryLockAccount(t->to_account, &states[1]))
			continue;
		if (t->command_id == NULL ||
			!EsWriteFindTransfer(t->command_id, &latest) ||
			!EsDecideExpired(&latest, Max(run->now, EsApplyRecordedAt(states, 2))))
			continue;
		if (EsApplyExpireTransfer(&latest, run->now))
			run->expired++;
	}
}

PG_FUNCTION_INFO_V1(es_expire_pending);
Datum
es_expire_pending(PG_FUNCTION_ARGS)
{
	/* The clock, as for post and void (EsDecideClock). */
	EsExpireRun run = {EsDecideClock(GetCurrentTransactionStartTimestamp()), 0};

	EsRowRequireTransfers();
	/* Expiries are events: inline user projections get them too. */
	EsApplyInBracket(ExpireDue, &run);
	PG_RETURN_INT64(run.expired);
}
