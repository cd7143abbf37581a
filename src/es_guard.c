/*-------------------------------------------------------------------------
 *
 * es_guard.c
 *	  The write guard: nothing but es_apply may write the log or the
 *	  projections, for any role, superusers included.
 *
 * es_apply brackets its writes with EsGuardBeginWrite/EsGuardEndWrite.  The
 * es_log access method refuses inserts outside such a bracket, and the
 * statement triggers es_guard_projection() on the projection tables refuse
 * INSERT, UPDATE, DELETE and TRUNCATE outside one, all with ES011.  The
 * bracket is a backend-local counter, reset when a transaction ends, so an
 * error inside es_apply can never leave it open.
 *
 * The event trigger es_guard_ddl() closes the holes an access method cannot
 * see: ALTER TABLE that would drop or retype a column of an es_log table,
 * change its access method, or rewrite it, and ALTER TABLE that would
 * disable the guard triggers, add a column to or rename a table of the
 * extension, or rename its triggers, indexes or sequences (es_apply finds
 * them by name).  Scripts run by CREATE/ALTER EXTENSION are exempt from
 * es_guard_ddl, so upgrades can still change the schema.  es_guard_drop()
 * (sql_drop, plpgsql in the install script) refuses to drop a guard trigger
 * outside DROP EXTENSION; an upgrade script that must drop one disables that
 * event trigger around it.  A superuser can always get around software
 * (session_replication_role, ALTER EVENT TRIGGER ... DISABLE); the hash chain
 * is what makes tampering evident.
 *
 * No locks are taken here beyond the catalog look-ups of the relation that a
 * DDL command names.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "commands/defrem.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "es_ledger.h"

/* How many es_apply write brackets are open in this backend. */
static int	EsWriteDepth = 0;

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

/* Transaction callback: an aborted transaction leaves no bracket open. */
static void
EsGuardXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
		EsWriteDepth = 0;
}

/* Install the transaction callback; called once from _PG_init. */
void
EsGuardInit(void)
{
	RegisterXactCallback(EsGuardXactCallback, NULL);
}

/*
 * es_guard_projection() RETURNS trigger
 *
 * BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ... FOR EACH STATEMENT on
 * every projection table.  Refuses the statement with ES011 unless es_apply
 * (or another es_ledger operation) is writing.
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
			 errhint("Apply a command with es_apply().")));
	return PointerGetDatum(NULL);	/* not reached */
}

/* The OID of the es_log access method, or InvalidOid if not installed. */
Oid
EsGuardLogAmOid(void)
{
	return get_table_am_oid("es_log", true);
}

/* Is relid a table using the es_log access method? */
static bool
RelIsEsLog(Oid relid)
{
	HeapTuple	tup;
	Oid			relam;
	Oid			amoid = EsGuardLogAmOid();

	if (!OidIsValid(relid) || !OidIsValid(amoid))
		return false;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		return false;
	relam = ((Form_pg_class) GETSTRUCT(tup))->relam;
	ReleaseSysCache(tup);
	return relam == amoid;
}

/* Is relid a member of the es_ledger extension? */
static bool
RelIsOurs(Oid relid)
{
	Oid			extoid = get_extension_oid("es_ledger", true);

	return OidIsValid(relid) && OidIsValid(extoid) &&
		getExtensionOfObject(RelationRelationId, relid) == extoid;
}

/* Refuse a DDL command on an es_ledger table with ES011. */
static void
RefuseDdl(Oid relid, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_ES_LOG_IMMUTABLE),
			 errmsg("cannot %s \"%s\"", what, get_rel_name(relid)),
			 errdetail("The es_ledger event log is immutable and its projections are written only by es_apply.")));
}

/* Check each subcommand of an ALTER TABLE before it runs. */
static void
GuardAlterTable(AlterTableStmt *stmt)
{
	Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	bool		eslog = RelIsEsLog(relid);
	bool		ours = RelIsOurs(relid);
	ListCell   *lc;

	if (!eslog && !ours)
		return;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

		switch (cmd->subtype)
		{
			case AT_DropColumn:
				RefuseDdl(relid, "drop a column of");
				break;
			case AT_AlterColumnType:
				RefuseDdl(relid, "change a column type of");
				break;
			case AT_SetAccessMethod:
				RefuseDdl(relid, "change the access method of");
				break;
			case AT_AddColumn:
				if (ours)
					RefuseDdl(relid, "add a column to");
				break;
			case AT_DisableTrig:
			case AT_DisableTrigAll:
			case AT_DisableTrigUser:
			case AT_EnableReplicaTrig:
				if (ours)
					RefuseDdl(relid, "disable the guard triggers of");
				break;
			default:
				break;
		}
	}
}

/*
 * es_guard_ddl() RETURNS event_trigger
 *
 * On ddl_command_start (tag ALTER TABLE): refuses the subcommands listed in
 * the file header on es_log tables and on the extension's own tables.  On
 * table_rewrite: refuses to rewrite an es_log table.  Both with ES011.
 * Commands run by an extension script are let through.
 */
PG_FUNCTION_INFO_V1(es_guard_ddl);
Datum
es_guard_ddl(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = (EventTriggerData *) fcinfo->context;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("es_guard_ddl() must be called as an event trigger")));

	if (creating_extension)
		PG_RETURN_VOID();

	if (strcmp(trigdata->event, "table_rewrite") == 0)
	{
		Oid			relid;

		relid = DatumGetObjectId(DirectFunctionCall1(pg_event_trigger_table_rewrite_oid,
													 (Datum) 0));
		if (RelIsEsLog(relid))
			RefuseDdl(relid, "rewrite the es_log table");
	}
	else if (IsA(trigdata->parsetree, AlterTableStmt))
		GuardAlterTable((AlterTableStmt *) trigdata->parsetree);
	else if (IsA(trigdata->parsetree, RenameStmt))
	{
		RenameStmt *stmt = (RenameStmt *) trigdata->parsetree;

		if (stmt->relation != NULL)
		{
			Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);
			Oid			table = relid;

			/* An index belongs to the extension through its table. */
			if (OidIsValid(relid) && get_rel_relkind(relid) == RELKIND_INDEX)
				table = IndexGetRelation(relid, true);
			if (RelIsOurs(table))
				RefuseDdl(relid, "rename");
		}
	}
	PG_RETURN_VOID();
}
