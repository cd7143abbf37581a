/*-------------------------------------------------------------------------
 *
 * es_notify.c
 *	  The commit notification: NOTIFY es_events with the greatest seq a
 *	  transaction appended.
 *
 * A transaction that appended events sends one
 * NOTIFY es_events with the greatest seq it wrote as payload, queued by the
 * pre-commit callback (XACT_EVENT_PRE_COMMIT runs before PreCommit_Notify):
 * one notification per transaction, however many es_apply calls it made,
 * and none if it aborts (NOTIFY is transactional).  The greatest seq is
 * kept per subtransaction level that wrote (NotifyStack), so a rolled-back
 * savepoint (es_apply_each's rejected commands) takes its seqs with it.  A
 * prepared transaction (PREPARE TRANSACTION) cannot NOTIFY and sends none.
 * The cost on the write path is a comparison per event and one
 * Async_Notify per transaction.  The notification is a hint, never a cause
 * of waiting or failure (NotifyMayWait): at commit PostgreSQL serialises
 * notifying transactions on a global lock and fails a commit whose
 * notification does not fit in the queue, so the hint is sent only when
 * that lock is free at once and the queue is below
 * es_ledger.notify_queue_limit; otherwise it is skipped and followers rely
 * on the next notification or their poll.  es_ledger.notify turns it off.
 *
 * Invariants.  NotifySeq is the greatest seq appended by this transaction
 * (0: none) and is reset at every transaction end; NotifyStack lives in
 * TopTransactionContext and holds, innermost first, one save per open
 * subtransaction that appended.  es_write.c calls EsNotifyAppended for
 * every event it inserts.  Locks: only the one NotifyMayWait tries.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/async.h"
#include "fmgr.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "store.h"

/*
 * The greatest seq this transaction appended (0: none), for the commit's
 * NOTIFY es_events; and, for each open subtransaction that appended, the
 * value before its first append, to restore if it rolls back.
 */
typedef struct EsNotifySave
{
	SubTransactionId subid;
	int64		seq;			/* NotifySeq before the subtransaction's first
								 * append */
	struct EsNotifySave *next;	/* the enclosing one's, or NULL */
} EsNotifySave;

static int64 NotifySeq = 0;
static bool EsNotifyOn = true;	/* GUC es_ledger.notify */
static double EsNotifyQueueLimit = 0.5; /* es_ledger.notify_queue_limit */
static EsNotifySave *NotifyStack = NULL;	/* in TopTransactionContext */

/* The channel of the commit notification (doc/reference.md, es_read). */
#define ES_NOTIFY_CHANNEL "es_events"

/*
 * Whether this committing transaction may send its hint without waiting
 * and without risk of failing.  PreCommit_Notify serialises notifying
 * commits on one heavyweight lock (the shared object lock on pg_database
 * with object id 0) held to the end of the commit, and fails the commit
 * when the notification queue is full.  So the lock is tried without
 * waiting: if another notifying transaction holds it, the hint is skipped
 * (that transaction's own notification wakes the followers, who read this
 * transaction's events too once it has committed, or on their next poll).
 * Once it is held (PreCommit_Notify then finds it already held), the queue
 * is checked: at or above es_ledger.notify_queue_limit of its capacity
 * (pg_notification_queue_usage, which a listener that never reads fills)
 * the hint is skipped and the lock released at once.  Never waits, never
 * raises the queue-full error: a payment cannot fail or queue for a hint.
 */
static bool
NotifyMayWait(void)
{
	LOCKTAG		tag;
	double		usage;

	SET_LOCKTAG_OBJECT(tag, InvalidOid, DatabaseRelationId, InvalidOid, 0);
	if (LockAcquire(&tag, AccessExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return false;
	usage = DatumGetFloat8(OidFunctionCall0Coll(F_PG_NOTIFICATION_QUEUE_USAGE,
												InvalidOid));
	if (usage >= EsNotifyQueueLimit)
	{
		LockRelease(&tag, AccessExclusiveLock, false);
		return false;
	}
	return true;
}

/* Remember that this transaction appended event seq. */
void
EsNotifyAppended(int64 seq)
{
	SubTransactionId subid = GetCurrentSubTransactionId();

	if (subid != TopSubTransactionId &&
		(NotifyStack == NULL || NotifyStack->subid != subid))
	{
		EsNotifySave *save = MemoryContextAlloc(TopTransactionContext,
												sizeof(EsNotifySave));

		save->subid = subid;
		save->seq = NotifySeq;
		save->next = NotifyStack;
		NotifyStack = save;
	}
	if (seq > NotifySeq)
		NotifySeq = seq;
}

/*
 * Transaction end: forget what was appended.  Before commit, queue the
 * notification of what the transaction appended.
 */
static void
EsNotifyXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (NotifySeq > 0 && EsNotifyOn && NotifyMayWait())
			{
				char		payload[32];

				snprintf(payload, sizeof(payload), INT64_FORMAT, NotifySeq);
				Async_Notify(ES_NOTIFY_CHANNEL, payload);
			}
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			NotifySeq = 0;
			NotifyStack = NULL;
			break;
		default:
			break;
	}
}

/*
 * A subtransaction rolled back: its appends are gone.  One committed: its
 * appends are its parent's.
 */
static void
EsNotifySubXactCallback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		if (NotifyStack != NULL && NotifyStack->subid == mySubid)
		{
			/* The parent's save, if it appended before, is the older one. */
			if (NotifyStack->next != NULL &&
				NotifyStack->next->subid == parentSubid)
				NotifyStack = NotifyStack->next;
			else if (parentSubid == TopSubTransactionId)
				NotifyStack = NotifyStack->next;
			else
				NotifyStack->subid = parentSubid;
		}
		return;
	}
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	while (NotifyStack != NULL && NotifyStack->subid >= mySubid)
	{
		NotifySeq = NotifyStack->seq;
		NotifyStack = NotifyStack->next;
	}
}

/*
 * Install the callbacks and define es_ledger.notify and
 * es_ledger.notify_queue_limit; called from EsWriteInit.
 */
void
EsNotifyInit(void)
{
	DefineCustomBoolVariable("es_ledger.notify",
							 "Sends NOTIFY es_events with the last seq when a transaction that appended events commits.",
							 "Turn off only where nobody listens: notifying transactions commit one at a time.",
							 &EsNotifyOn, true, PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomRealVariable("es_ledger.notify_queue_limit",
							 "Skips NOTIFY es_events while the notification queue is at least this full (a fraction of it).",
							 "A listener that never reads fills the queue; a full queue would fail the commit.",
							 &EsNotifyQueueLimit, 0.5, 0.0, 1.0, PGC_SUSET, 0,
							 NULL, NULL, NULL);
	RegisterXactCallback(EsNotifyXactCallback, NULL);
	RegisterSubXactCallback(EsNotifySubXactCallback, NULL);
}
