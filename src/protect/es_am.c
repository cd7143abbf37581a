/*-------------------------------------------------------------------------
 *
 * es_am.c
 *	  The es_log table access method: heap storage that can be appended to
 *	  but never changed.
 *
 * es_log is heap with a few callbacks replaced, so pages, WAL, VACUUM
 * freezing, TOAST, btree indexes, row locks, logical decoding and
 * pg_basebackup all behave exactly as for heap.  What is replaced:
 *
 *	- tuple_update, tuple_delete (UPDATE, DELETE, MERGE, logical apply) and
 *	  relation_copy_for_cluster (VACUUM FULL, CLUSTER) always fail with ES011.
 *	- relation_set_new_filenode fails with ES011 for a relation that has
 *	  blocks and was not created in this transaction: in PostgreSQL 15 that
 *	  is TRUNCATE of a non-empty table.  TRUNCATE of an empty table stays
 *	  allowed, because pg_restore sends one before COPY.  A TRUNCATE of a
 *	  relation whose file is already new in this transaction takes
 *	  relation_nontransactional_truncate instead, which refuses the same way
 *	  (temporary tables aside: ON COMMIT DELETE ROWS must not fail a commit).
 *	- tuple_insert, tuple_insert_speculative and multi_insert refuse rows for
 *	  the extension's own log (es_events) unless es_apply holds the write
 *	  guard (es_guard.c), or the session restores a dump (es_ledger.restore
 *	  on) into a log that was empty (EsGuardRestoreTable) and every row
 *	  verifies (es_restore.c), or the inserting process is a logical
 *	  replication worker of a subscription (IsLogicalWorker; a reporting
 *	  subscriber, doc/scale-out.md).  Other es_log tables accept INSERT and COPY.
 *	- index_build_range_scan and index_validate_scan run heap's with
 *	  rd_tableam pointing at heap's routine for the duration of the call:
 *	  heap_getnext, which they use, insists on it.  The pointer is restored
 *	  in PG_FINALLY, so an error cannot leave the relcache entry changed.
 *	- relation_toast_am returns heap, so the TOAST table is a plain heap.
 *
 * Table rewrites by ALTER TABLE create a new relation and copy into it; the
 * table_rewrite event trigger (es_ddl.c) refuses those before they start.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "nodes/execnodes.h"
#include "replication/logicalworker.h"
#include "storage/bufmgr.h"
#include "utils/rel.h"

#include "protect.h"

static TableAmRoutine EsLogRoutine;
static bool EsLogRoutineReady = false;

/* Refuse a change to an immutable table with ES011. */
static void
RefuseChange(Relation rel, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_ES_LOG_IMMUTABLE),
			 errmsg("cannot %s \"%s\"", what, RelationGetRelationName(rel)),
			 errdetail("Tables using the es_log access method are append-only: events are facts and are never changed."),
			 errhint("Correct a mistake by applying a compensating command.")));
}

/*
 * Refuse an insert of the nslots rows in slots into the extension's own log
 * from outside es_apply, unless the session restores a dump
 * (es_ledger.restore) into a log that was empty (EsGuardRestoreTable: ES011
 * otherwise) and the rows verify (es_restore.c: ES012 if one does not).
 * Inserts into other es_log tables are allowed.
 */
static void
CheckInsert(Relation rel, TupleTableSlot **slots, int nslots)
{
	Oid			extoid;

	if (EsGuardWriting())
		return;

	/*
	 * A logical replication apply or tablesync worker of a subscription
	 * copies the publisher's log (doc/scale-out.md): those rows were checked
	 * by the publisher's es_apply.  Only such a background worker passes
	 * here; no SQL session can become one, and session_replication_role,
	 * which it sets, is not what is tested (and is superuser-only anyway).
	 */
	if (IsLogicalWorker())
		return;
	extoid = get_extension_oid("es_ledger", true);
	if (!OidIsValid(extoid) ||
		getExtensionOfObject(RelationRelationId, RelationGetRelid(rel)) != extoid)
		return;
	if (EsGuardRestoring() &&
		RelationGetRelid(rel) == EsRowRelid(ES_REL_EVENTS))
	{
		EsGuardRestoreTable(rel);
		EsRestoreCheckEvents(rel, slots, nslots);
		return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_ES_LOG_IMMUTABLE),
			 errmsg("cannot insert into \"%s\" directly",
					RelationGetRelationName(rel)),
			 errdetail("Events reach the ledger's log only through es_apply, which validates them and keeps the projections and hash chain in step."),
			 errhint("Use es_apply() or one of its shorthands.  To restore a dump, a superuser sets es_ledger.restore = on.")));
}

/* INSERT: heap's, after the guard (or the restore's check). */
static void
EsLogTupleInsert(Relation rel, TupleTableSlot *slot, CommandId cid,
				 int options, BulkInsertState bistate)
{
	CheckInsert(rel, &slot, 1);
	GetHeapamTableAmRoutine()->tuple_insert(rel, slot, cid, options, bistate);
}

/* INSERT ... ON CONFLICT: heap's, after the guard (or the restore's check). */
static void
EsLogTupleInsertSpeculative(Relation rel, TupleTableSlot *slot, CommandId cid,
							int options, BulkInsertState bistate,
							uint32 specToken)
{
	CheckInsert(rel, &slot, 1);
	GetHeapamTableAmRoutine()->tuple_insert_speculative(rel, slot, cid, options,
														bistate, specToken);
}

/* COPY FROM: heap's, after the guard (or the restore's check). */
static void
EsLogMultiInsert(Relation rel, TupleTableSlot **slots, int ntuples,
				 CommandId cid, int options, BulkInsertState bistate)
{
	CheckInsert(rel, slots, ntuples);
	GetHeapamTableAmRoutine()->multi_insert(rel, slots, ntuples, cid, options,
											bistate);
}

/* DELETE: never. */
static TM_Result
EsLogTupleDelete(Relation rel, ItemPointer tid, CommandId cid,
				 Snapshot snapshot, Snapshot crosscheck, bool wait,
				 TM_FailureData *tmfd, bool changingPart)
{
	RefuseChange(rel, "delete from");
	return TM_Invisible;		/* not reached */
}

/* UPDATE: never. */
static TM_Result
EsLogTupleUpdate(Relation rel, ItemPointer otid, TupleTableSlot *slot,
				 CommandId cid, Snapshot snapshot, Snapshot crosscheck,
				 bool wait, TM_FailureData *tmfd, LockTupleMode *lockmode,
				 bool *update_indexes)
{
	RefuseChange(rel, "update");
	return TM_Invisible;		/* not reached */
}

/* TRUNCATE: only while the table is empty or new in this transaction. */
static void
EsLogSetNewFilenode(Relation rel, const RelFileNode *newrnode,
					char persistence, TransactionId *freezeXid,
					MultiXactId *minmulti)
{
	if (rel->rd_createSubid == InvalidSubTransactionId &&
		RelationGetNumberOfBlocks(rel) > 0)
		RefuseChange(rel, "truncate");
	GetHeapamTableAmRoutine()->relation_set_new_filenode(rel, newrnode,
														 persistence,
														 freezeXid, minmulti);
}

/*
 * TRUNCATE of a relation whose file was created in this transaction (a
 * second TRUNCATE, or CREATE then TRUNCATE): only while the table is empty,
 * was created in this transaction, or is temporary (ON COMMIT DELETE ROWS).
 */
static void
EsLogNontransactionalTruncate(Relation rel)
{
	if (rel->rd_createSubid == InvalidSubTransactionId &&
		rel->rd_rel->relpersistence != RELPERSISTENCE_TEMP &&
		RelationGetNumberOfBlocks(rel) > 0)
		RefuseChange(rel, "truncate");
	GetHeapamTableAmRoutine()->relation_nontransactional_truncate(rel);
}

/* VACUUM FULL, CLUSTER: never; they would rewrite the log. */
static void
EsLogCopyForCluster(Relation OldTable, Relation NewTable, Relation OldIndex,
					bool use_sort, TransactionId OldestXmin,
					TransactionId *xid_cutoff, MultiXactId *multi_cutoff,
					double *num_tuples, double *tups_vacuumed,
					double *tups_recently_dead)
{
	RefuseChange(OldTable, "rewrite (VACUUM FULL or CLUSTER)");
}

/*
 * Index builds: heap's scan, seen by heap_getnext as a heap relation.
 */
static double
EsLogIndexBuildRangeScan(Relation table_rel, Relation index_rel,
						 IndexInfo *index_info, bool allow_sync,
						 bool anyvisible, bool progress,
						 BlockNumber start_blockno, BlockNumber numblocks,
						 IndexBuildCallback callback, void *callback_state,
						 TableScanDesc scan)
{
	const TableAmRoutine *saved = table_rel->rd_tableam;
	volatile double result = 0; /* set in PG_TRY, read after it */

	table_rel->rd_tableam = GetHeapamTableAmRoutine();
	PG_TRY();
	{
		result = GetHeapamTableAmRoutine()->index_build_range_scan(table_rel,
																   index_rel,
																   index_info,
																   allow_sync,
																   anyvisible,
																   progress,
																   start_blockno,
																   numblocks,
																   callback,
																   callback_state,
																   scan);
	}
	PG_FINALLY();
	{
		table_rel->rd_tableam = saved;
	}
	PG_END_TRY();
	return result;
}

/* CREATE INDEX CONCURRENTLY's validation pass, likewise. */
static void
EsLogIndexValidateScan(Relation table_rel, Relation index_rel,
					   IndexInfo *index_info, Snapshot snapshot,
					   ValidateIndexState *state)
{
	const TableAmRoutine *saved = table_rel->rd_tableam;

	table_rel->rd_tableam = GetHeapamTableAmRoutine();
	PG_TRY();
	{
		GetHeapamTableAmRoutine()->index_validate_scan(table_rel, index_rel,
													   index_info, snapshot,
													   state);
	}
	PG_FINALLY();
	{
		table_rel->rd_tableam = saved;
	}
	PG_END_TRY();
}

/* TOAST tables of es_log tables are plain heap. */
static Oid
EsLogToastAm(Relation rel)
{
	return HEAP_TABLE_AM_OID;
}

/*
 * es_log_handler(internal) RETURNS table_am_handler
 *
 * The handler of the es_log table access method: heap's routine with the
 * callbacks of the file header replaced.
 */
PG_FUNCTION_INFO_V1(es_log_handler);
Datum
es_log_handler(PG_FUNCTION_ARGS)
{
	if (!EsLogRoutineReady)
	{
		EsLogRoutine = *GetHeapamTableAmRoutine();
		EsLogRoutine.tuple_insert = EsLogTupleInsert;
		EsLogRoutine.tuple_insert_speculative = EsLogTupleInsertSpeculative;
		EsLogRoutine.multi_insert = EsLogMultiInsert;
		EsLogRoutine.tuple_delete = EsLogTupleDelete;
		EsLogRoutine.tuple_update = EsLogTupleUpdate;
		EsLogRoutine.relation_set_new_filenode = EsLogSetNewFilenode;
		EsLogRoutine.relation_nontransactional_truncate = EsLogNontransactionalTruncate;
		EsLogRoutine.relation_copy_for_cluster = EsLogCopyForCluster;
		EsLogRoutine.index_build_range_scan = EsLogIndexBuildRangeScan;
		EsLogRoutine.index_validate_scan = EsLogIndexValidateScan;
		EsLogRoutine.relation_toast_am = EsLogToastAm;
		EsLogRoutineReady = true;
	}
	PG_RETURN_POINTER(&EsLogRoutine);
}
