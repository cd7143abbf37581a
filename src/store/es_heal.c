/*-------------------------------------------------------------------------
 *
 * es_heal.c
 *	  Drawing seqs and account ids from their sequences, and healing a
 *	  sequence that was set back.
 *
 * The first seq and account id drawn in a transaction are compared with
 * the largest in the table's primary key, and every draw with the
 * backend's previous one; a sequence set back (setval by a superuser) is
 * set forward past the table (HealKey) under ShareRowExclusiveLock on the
 * sequence, which conflicts with the RowExclusiveLock nextval holds to the
 * end of a transaction, so nobody draws meanwhile.  So a sequence set back
 * cannot make later appends fail on a duplicate key or spin.  Invariant:
 * a key returned here is greater than every key in the table's primary
 * key that this transaction could see when it first drew.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/sequence.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "store.h"

/*
 * A sequence that was set back: with every other transaction that drew from
 * it finished (ShareRowExclusiveLock conflicts with the RowExclusiveLock
 * nextval holds to the end of a transaction, so none can draw meanwhile),
 * set it forward to the table's largest key, as the sequence's owner (no
 * user code runs there), and draw again.  Setting it forward while others
 * could draw might move it back past their draws; under the lock it cannot.
 * A false alarm (the extension re-created, a draw of an aborted
 * transaction) finds the sequence ahead and only draws.
 */
static int64
HealKey(Oid seqoid, EsRel seq, EsRel rel, EsRel idx, int attno)
{
	int64		max;
	int64		v;

	LockRelationOid(seqoid, ShareRowExclusiveLock);
	max = EsScanMaxKey(rel, idx, attno);
	v = nextval_internal(seqoid, false);
	if (v <= max)
	{
		Oid			saved_user;
		int			saved_sec;

		ereport(WARNING,
				(errmsg("sequence \"%s\" was behind its table; moving it past %lld",
						EsRowRelName(seq), (long long) max),
				 errdetail("Someone set the sequence back; es_ledger never reuses a key.")));
		GetUserIdAndSecContext(&saved_user, &saved_sec);
		SetUserIdAndSecContext(EsCatalogRelOwner(seqoid),
							   saved_sec | SECURITY_LOCAL_USERID_CHANGE);
		DirectFunctionCall2(setval_oid, ObjectIdGetDatum(seqoid),
							Int64GetDatum(max));
		SetUserIdAndSecContext(saved_user, saved_sec);
		v = nextval_internal(seqoid, false);
	}
	return v;
}

/*
 * nextval of one of our sequences, never a key the table holds.  Every key
 * in the table was drawn before the table's largest key is read, and a
 * sequence only moves forward, so a draw that is not above that key (read
 * at the first draw of each transaction), or not above this backend's
 * previous draw, means the sequence was set back (setval by a superuser):
 * HealKey sets it forward.
 */
static int64
NextKey(EsRel seq, EsRel rel, EsRel idx, int attno, LocalTransactionId *checked,
		int64 *last)
{
	Oid			seqoid = EsRowRelid(seq);
	bool		check = *checked != MyProc->lxid;
	int64		max = 0;
	int64		v;

	if (check)
		max = EsScanMaxKey(rel, idx, attno);
	v = nextval_internal(seqoid, false);
	if ((check && v <= max) || v <= *last)
		v = HealKey(seqoid, seq, rel, idx, attno);
	*checked = MyProc->lxid;
	*last = v;
	return v;
}

/* The next global position in the log. */
int64
EsHealNextSeq(void)
{
	static LocalTransactionId checked = InvalidLocalTransactionId;
	static int64 last = 0;

	return NextKey(ES_REL_EVENTS_SEQ, ES_REL_EVENTS, ES_REL_EVENTS_SEQ_IDX,
				   ES_EV_ATT_SEQ, &checked, &last);
}

/* A new account id. */
int64
EsHealNextAccountId(void)
{
	static LocalTransactionId checked = InvalidLocalTransactionId;
	static int64 last = 0;

	return NextKey(ES_REL_ACCOUNTS_SEQ, ES_REL_ACCOUNTS, ES_REL_ACCOUNTS_ID_IDX,
				   ES_ACC_ATT_ACCOUNT_ID, &checked, &last);
}
