/*-------------------------------------------------------------------------
 *
 * es_guard.c
 *	  The write guard: nothing but es_apply (and the other es_ledger
 *	  operations that write through it) may write the log or the
 *	  projections, for any role, superusers included.  That the tables,
 *	  their triggers and the extension's other objects stay as the scripts
 *	  made them is kept by the DDL guard (es_ddl.c) and the object-access
 *	  hooks (es_hooks.c).
 *
 * Write guard.  es_apply brackets its writes with EsGuardBeginWrite and
 * EsGuardEndWrite.  The es_log access method refuses inserts outside such a
 * bracket, and the statement triggers es_guard_projection() on the
 * projection tables refuse INSERT, UPDATE, DELETE and TRUNCATE outside one,
 * all with ES011.  The bracket is a backend-local counter, reset when a
 * transaction ends, so an error inside es_apply can never leave it open.
 * The guard triggers and the event triggers are ENABLE ALWAYS, so that
 * session_replication_role = replica does not silence them.
 *
 * Restore.  In a session where a superuser has set es_ledger.restore = on
 * (PGC_SUSET, defined here so that both the access method and the trigger
 * can read it), the access method hands rows for es_events to
 * es_restore.c, which stores only those that chain, and the guard triggers
 * let INSERT (and COPY) into the projections through; UPDATE, DELETE and
 * TRUNCATE stay refused.  Either way, only into a table that was empty when
 * the transaction began to fill it (EsGuardRestoreTable): a restore loads an
 * empty ledger and never adds to one in use.
 *
 * Locks: none, but for EsGuardRestoreTable, which takes
 * ShareRowExclusiveLock on a table the first time a transaction fills it
 * as a restore, and keeps it until the transaction (or the subtransaction
 * that took it) ends.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tableam.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "storage/lmgr.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "replication/logicalworker.h"
#include "store.h"

/* How many es_apply write brackets are open in this backend. */
static int	EsWriteDepth = 0;

/* es_ledger.restore: is this session restoring a dump (es_restore.c)? */
static bool EsRestore = false;

/*
 * The ledger tables this transaction may fill as a restore
 * (EsGuardRestoreTable), each with the subtransaction that was granted it.
 */
#define ES_RESTORE_MAX_TABLES 8
typedef struct EsRestoreGrant
{
	Oid			relid;
	SubTransactionId subid;
} EsRestoreGrant;
static EsRestoreGrant EsRestoreGrants[ES_RESTORE_MAX_TABLES];
static int	EsRestoreGrantCount = 0;

/* Open a write bracket: the log and projections accept writes. */
void
EsGuardBeginWrite(void)
{
	EsWriteDepth++;
}

/* Close the innermost write bracket. */
void
EsGuardEndWrite(void)
{
	if (EsWriteDepth > 0)
		EsWriteDepth--;
}

/* Is a write bracket open? */
bool
EsGuardWriting(void)
{
	return EsWriteDepth > 0;
}

/*
 * Is this session restoring a dump (es_ledger.restore on)?  Then the log
 * accepts rows that verify (es_restore.c) and the projections INSERT.
 */
bool
EsGuardRestoring(void)
{
	return EsRestore;
}

/*
 * Let this transaction fill rel, a table of the ledger, as a restore (the
 * caller has checked es_ledger.restore): allowed if the table held no row
 * when the transaction first asked, ES011 otherwise.  A restore loads a
 * ledger into an empty one; it never adds to a ledger in use.  The first
 * time, this takes ShareRowExclusiveLock on rel, which waits for every
 * transaction writing it and keeps others (es_apply, other restores) from
 * writing it until this one ends, then looks for a row with a fresh
 * snapshot.  The grant lasts until the transaction ends, or the
 * subtransaction that took it aborts (and releases the lock).
 */
void
EsGuardRestoreTable(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	Snapshot	snapshot;
	TableScanDesc scan;
	TupleTableSlot *slot;
	bool		found;

	for (int i = 0; i < EsRestoreGrantCount; i++)
		if (EsRestoreGrants[i].relid == relid)
			return;
	if (EsRestoreGrantCount == ES_RESTORE_MAX_TABLES)
		elog(ERROR, "too many es_ledger tables restored in one transaction");

	LockRelationOid(relid, ShareRowExclusiveLock);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snapshot, 0, NULL);
	slot = table_slot_create(rel, NULL);
	found = table_scan_getnextslot(scan, ForwardScanDirection, slot);
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	if (found)
		ereport(ERROR,
				(errcode(ERRCODE_ES_LOG_IMMUTABLE),
				 errmsg("cannot restore into \"%s\": it already holds rows",
						RelationGetRelationName(rel)),
				 errdetail("es_ledger.restore loads a dump into an empty ledger only: each of its tables must be empty when a transaction starts filling it."),
				 errhint("Restore into a new database, each table in one transaction (a dump made with --inserts needs --single-transaction).")));

	EsRestoreGrants[EsRestoreGrantCount].relid = relid;
	EsRestoreGrants[EsRestoreGrantCount].subid = GetCurrentSubTransactionId();
	EsRestoreGrantCount++;
}

/*
 * Has this transaction restored rows into the log (a restore grant on
 * es_events)?  es_digest.c checks such a transaction's log against the
 * DBA's digest before it commits.
 */
bool
EsGuardRestoredLog(void)
{
	Oid			events;

	if (EsRestoreGrantCount == 0)
		return false;
	events = EsRowRelid(ES_REL_EVENTS);
	for (int i = 0; i < EsRestoreGrantCount; i++)
		if (EsRestoreGrants[i].relid == events)
			return true;
	return false;
}

/*
 * Transaction callback: a transaction that ends leaves no bracket open and
 * no restore grant.
 */
static void
EsGuardXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PREPARE)
	{
		EsWriteDepth = 0;
		EsRestoreGrantCount = 0;
	}
}

/*
 * Subtransaction callback: the restore grants of a subtransaction that
 * aborts go with it (so does the lock they rest on); those of one that
 * commits pass to its parent.
 */
static void
EsGuardSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	int			kept = 0;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	for (int i = 0; i < EsRestoreGrantCount; i++)
	{
		if (EsRestoreGrants[i].subid == mySubid)
		{
			if (event == SUBXACT_EVENT_ABORT_SUB)
				continue;
			EsRestoreGrants[i].subid = parentSubid;
		}
		EsRestoreGrants[kept++] = EsRestoreGrants[i];
	}
	EsRestoreGrantCount = kept;
}

/*
 * Install the transaction callbacks and the GUC es_ledger.restore; called
 * once from _PG_init.  A value a superuser SET before the library was loaded (a
 * placeholder, or PGOPTIONS='-c es_ledger.restore=on') is taken over by
 * DefineCustomBoolVariable; one a non-superuser SET is refused then.
 */
void
EsGuardInit(void)
{
	RegisterXactCallback(EsGuardXactCallback, NULL);
	RegisterSubXactCallback(EsGuardSubXactCallback, NULL);

	DefineCustomBoolVariable("es_ledger.restore",
							 "Lets this session restore a dump of an es_ledger database.",
							 "Rows copied or inserted into es_events are accepted if each chains to "
							 "its account's previous event (version, checksum, hash) and refused "
							 "otherwise; es_accounts and es_commands accept INSERT and COPY.",
							 &EsRestore,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
}

/*
 * es_guard_projection() RETURNS trigger
 *
 * BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ... FOR EACH STATEMENT on
 * every projection table (ENABLE ALWAYS).  Refuses the statement with ES011
 * unless es_apply (or another es_ledger operation) is writing, or the
 * statement is an INSERT (or COPY) in a session restoring a dump
 * (es_ledger.restore) into a table that was empty (EsGuardRestoreTable,
 * which locks it), or the statement (not a TRUNCATE) runs in a logical
 * replication worker of a subscription (doc/scale-out.md).  No locks
 * otherwise.
 */
PG_FUNCTION_INFO_V1(es_guard_projection);
Datum
es_guard_projection(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *op;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("es_guard_projection() must be called as a trigger")));

	if (EsGuardWriting())
		return PointerGetDatum(NULL);
	if (EsRestore && TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		EsGuardRestoreTable(trigdata->tg_relation);
		return PointerGetDatum(NULL);
	}
	/* a subscription's tablesync worker copying a published projection */
	if (IsLogicalWorker() && !TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		return PointerGetDatum(NULL);

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		op = "insert into";
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		op = "update";
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		op = "delete from";
	else
		op = "truncate";

	ereport(ERROR,
			(errcode(ERRCODE_ES_LOG_IMMUTABLE),
			 errmsg("cannot %s projection \"%s\"", op,
					RelationGetRelationName(trigdata->tg_relation)),
			 errdetail("Projections are written only by es_apply, in step with the event log."),
			 errhint("Apply a command with es_apply().  To restore a dump, a superuser sets es_ledger.restore = on.")));
	return PointerGetDatum(NULL);	/* not reached */
}
