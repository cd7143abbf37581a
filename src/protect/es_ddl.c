/*-------------------------------------------------------------------------
 *
 * es_ddl.c
 *	  The DDL guard: nothing but the extension's own scripts may change its
 *	  objects, for any role, superusers included.  The event trigger
 *	  function es_guard_ddl and the checks of each statement it sees.
 *
 * es_guard_ddl() runs on ddl_command_start for every command and refuses
 * with ES011, on the extension's tables (members of es_ledger, found with
 * getExtensionOfObject, never by name):
 *	- ALTER TABLE, except storage parameters, statistics targets, attribute
 *	  options, SET STORAGE, SET COMPRESSION, CLUSTER ON, SET WITHOUT
 *	  CLUSTER, SET TABLESPACE, REPLICA IDENTITY and DISABLE / NO FORCE ROW
 *	  LEVEL SECURITY; so every [ENABLE|DISABLE] [REPLICA|ALWAYS] TRIGGER,
 *	  ADD/DROP COLUMN or CONSTRAINT, column changes, [NO] INHERIT, ATTACH or
 *	  DETACH PARTITION, SET [UN]LOGGED, OWNER TO, ENABLE/FORCE ROW LEVEL
 *	  SECURITY and SET ACCESS METHOD is refused;
 *	- CREATE TRIGGER, CREATE RULE, CREATE or ALTER POLICY; except, on a
 *	  logical subscriber's tables, AFTER triggers of a superuser and their
 *	  ENABLE [ALWAYS|REPLICA] / DISABLE (SubscriberTriggersAllowed);
 *	- CREATE TABLE ... INHERITS or PARTITION OF one of them, and ALTER TABLE
 *	  of any table that would INHERIT, ATTACH or DETACH one of them;
 *	- CREATE INDEX that is unique, uses an access method or operator class
 *	  that is not built in, or whose key expressions or predicate call a
 *	  function or operator, or coerce to a domain, that is not built in
 *	  (OID >= FirstNormalObjectId): user code would run inside es_apply;
 *	- renaming, SET SCHEMA, OWNER TO, ALTER SEQUENCE and DROP of any member
 *	  (tables, sequences, functions, the access method, ...), ALTER FUNCTION
 *	  and CREATE OR REPLACE FUNCTION of a member function, DROP INDEX of
 *	  the extension's own indexes (marked with DEPENDS ON EXTENSION by the
 *	  scripts; users' extra indexes stay droppable), [NO] DEPENDS ON
 *	  EXTENSION es_ledger, ALTER EXTENSION es_ledger ADD or DROP, ALTER
 *	  SCHEMA RENAME or OWNER TO of the extension's schema, and REASSIGN
 *	  OWNED BY the extension's owner;
 *	- ALTER ... [NO] DEPENDS ON EXTENSION of any other extension, and ALTER
 *	  EXTENSION of any other extension ADD or DROP, naming a member, the
 *	  extension's schema, or a part of a member table that is not itself a
 *	  member (an index, also of its TOAST table; a trigger; its row type or
 *	  array type): DROP EXTENSION of the other extension would drop it.
 * On other es_log tables it refuses DROP COLUMN, ALTER COLUMN TYPE and SET
 * ACCESS METHOD, and on table_rewrite it refuses to rewrite any es_log
 * table.  Scripts of es_ledger itself (CREATE or ALTER EXTENSION) are
 * exempt from all of this, so upgrades can still change the schema.
 * es_guard_drop() (sql_drop, plpgsql in the install script) refuses to drop
 * a guard trigger outside DROP EXTENSION; it finds the extension's schema
 * by OID when it runs, so a renamed schema does not escape it.
 *
 * What the checks cannot see at ddl_command_start (a drop that cascades to
 * es_events, REASSIGN OWNED BY, a name taken by any road) is caught by the
 * object-access hooks (es_hooks.c).  The guard triggers and the event
 * triggers are ENABLE ALWAYS, so that session_replication_role = replica
 * does not silence them.
 *
 * What a superuser can still do (software cannot close it): ALTER EVENT
 * TRIGGER ... DISABLE and DROP EVENT TRIGGER (event triggers do not fire
 * for those commands), which switch the DDL guard off (and, in sessions
 * that have not loaded the library otherwise, the hooks); catalog updates;
 * writing the data files; setval() on the sequences.  The hash chain is
 * what makes tampering evident.
 *
 * Locks: catalog look-ups of the objects a command names, without locks,
 * except CREATE INDEX on an extension table, which takes the lock the
 * command itself takes (ShareLock, or ShareUpdateExclusiveLock when
 * CONCURRENTLY) to analyse the index expressions.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/event_trigger.h"
#include "commands/tablecmds.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "parser/parse_type.h"
#include "parser/parse_utilcmd.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "protect.h"

/* Details and hints of the DDL guard's refusals. */
#define DETAIL_IMMUTABLE \
	"The es_ledger event log is immutable and its projections are written only by es_apply."
#define DETAIL_USER_CODE \
	"It would run user code inside es_apply's writes to the ledger's tables."
#define HINT_INDEX \
	"An index for your own queries is allowed if it is not unique and uses only built-in functions, operators and operator classes."

/*
 * The table a TOAST table belongs to (the one it has an internal dependency
 * on), or InvalidOid.
 */
static Oid
ToastOwner(Oid toastid)
{
	Relation	rel;
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	rel = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_depend_classid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(RelationRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_objid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(toastid));
	scan = systable_beginscan(rel, DependDependerIndexId, true, NULL, 2, key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tup);

		if (dep->deptype == DEPENDENCY_INTERNAL &&
			dep->refclassid == RelationRelationId)
		{
			owner = dep->refobjid;
			break;
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return owner;
}

/*
 * Is relid a member relation of extoid, or a part of one that is not itself
 * a member: its TOAST table, or an index of it or of its TOAST table?
 */
static bool
RelOrPartIsOurs(Oid relid, Oid extoid)
{
	char		relkind;

	if (!OidIsValid(relid) || !OidIsValid(extoid))
		return false;
	relkind = get_rel_relkind(relid);
	if (relkind == RELKIND_INDEX || relkind == RELKIND_PARTITIONED_INDEX)
	{
		relid = IndexGetRelation(relid, true);
		relkind = get_rel_relkind(relid);
	}
	if (relkind == RELKIND_TOASTVALUE)
		relid = ToastOwner(relid);
	return EsCatalogRelIsOurs(relid, extoid);
}

/* The relation a qualified name designates, without locking; or InvalidOid. */
static Oid
RelidOfRangeVar(RangeVar *rv)
{
	if (rv == NULL)
		return InvalidOid;
	return RangeVarGetRelid(rv, NoLock, true);
}

/*
 * Is indexid one of the extension's own indexes, that is an index on one of
 * its tables that the scripts marked with DEPENDS ON EXTENSION es_ledger?
 */
static bool
IndexIsOurs(Oid indexid, Oid extoid)
{
	Oid			table;

	if (!OidIsValid(indexid) || get_rel_relkind(indexid) != RELKIND_INDEX)
		return false;
	table = IndexGetRelation(indexid, true);
	if (!EsCatalogRelIsOurs(table, extoid))
		return false;
	return list_member_oid(getAutoExtensionsOfObject(RelationRelationId, indexid),
						   extoid);
}

/* Refuse a DDL command on an es_ledger relation with ES011. */
static void
RefuseRel(Oid relid, const char *what, const char *detail, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_ES_LOG_IMMUTABLE),
			 errmsg("cannot %s \"%s\"", what, get_rel_name(relid)),
			 errdetail("%s", detail),
			 errhint("%s", hint)));
}

/*
 * The TypeName of a type as a command names it: a TypeName (DROP, ALTER
 * EXTENSION, COMMENT) or a qualified name list (RENAME, SET SCHEMA, OWNER
 * TO).
 */
static TypeName *
TypeNameOf(Node *object)
{
	if (IsA(object, List))
		return makeTypeNameFromNameList((List *) object);
	return castNode(TypeName, object);
}

/*
 * The OID and catalog of a non-relation object named (type, object), looked
 * up without locks, for the kinds of object an extension's members can be;
 * InvalidOid if it does not exist or is of another kind.  Relations and the
 * objects that belong to a relation (triggers, rules, policies, constraints,
 * columns) are checked by the callers through their relation.
 */
static Oid
LookupObject(ObjectType type, Node *object, Oid *classId)
{
	switch (type)
	{
		case OBJECT_FUNCTION:
		case OBJECT_PROCEDURE:
		case OBJECT_ROUTINE:
		case OBJECT_AGGREGATE:
			*classId = ProcedureRelationId;
			return LookupFuncWithArgs(type, castNode(ObjectWithArgs, object), true);
		case OBJECT_TYPE:
		case OBJECT_DOMAIN:
			*classId = TypeRelationId;
			return LookupTypeNameOid(NULL, TypeNameOf(object), true);
		case OBJECT_ACCESS_METHOD:
			*classId = AccessMethodRelationId;
			return get_am_oid(strVal(object), true);
		default:
			return InvalidOid;
	}
}

/* If the object named (type, object) is a member of extoid, refuse "what". */
static void
RefuseIfMember(ObjectType type, Node *object, Oid extoid, const char *what)
{
	ObjectAddress addr;
	Oid			classId = InvalidOid;
	Oid			objectId = LookupObject(type, object, &classId);

	if (OidIsValid(objectId) && getExtensionOfObject(classId, objectId) == extoid)
	{
		ObjectAddressSet(addr, classId, objectId);
		EsCatalogRefuseObject(&addr, what);
	}
}

/* Is the object type one of those whose name is a relation's (RangeVar)? */
static bool
IsRelationType(ObjectType type)
{
	return type == OBJECT_TABLE || type == OBJECT_SEQUENCE ||
		type == OBJECT_VIEW || type == OBJECT_MATVIEW ||
		type == OBJECT_FOREIGN_TABLE || type == OBJECT_INDEX;
}

/* Refuse if the schema nspname is the extension's schema. */
static void
RefuseIfOurSchema(const char *nspname, Oid extoid, const char *what)
{
	Oid			nspoid;
	Oid			owner;

	if (nspname == NULL)
		return;
	EsCatalogExtensionSchemaOwner(extoid, &nspoid, &owner);
	if (OidIsValid(nspoid) && get_namespace_oid(nspname, true) == nspoid)
		ereport(ERROR,
				(errcode(ERRCODE_ES_LOG_IMMUTABLE),
				 errmsg("cannot %s schema \"%s\"", what, nspname),
				 errdetail("Schema \"%s\" holds extension es_ledger, whose tables and functions it holds.",
						   nspname),
				 errhint("%s", ES_HINT_SCRIPTS)));
}

/* The verb for a refused ALTER TABLE subcommand on an extension table. */
static const char *
AlterTableVerb(AlterTableType subtype)
{
	switch (subtype)
	{
		case AT_DropColumn:
		case AT_DropColumnRecurse:
			return "drop a column of";
		case AT_AlterColumnType:
			return "change a column type of";
		case AT_SetAccessMethod:
			return "change the access method of";
		case AT_AddColumn:
		case AT_AddColumnRecurse:
			return "add a column to";
		case AT_DisableTrig:
		case AT_DisableTrigAll:
		case AT_DisableTrigUser:
		case AT_EnableReplicaTrig:
			return "disable the guard triggers of";
		case AT_EnableTrig:
		case AT_EnableAlwaysTrig:
		case AT_EnableTrigAll:
		case AT_EnableTrigUser:
			return "change how the triggers fire on";
		case AT_EnableRule:
		case AT_EnableAlwaysRule:
		case AT_EnableReplicaRule:
		case AT_DisableRule:
			return "change how the rules fire on";
		case AT_AddConstraint:
		case AT_AddConstraintRecurse:
		case AT_AddIndex:
		case AT_AddIndexConstraint:
			return "add a constraint to";
		case AT_DropConstraint:
		case AT_DropConstraintRecurse:
			return "drop a constraint of";
		case AT_AlterConstraint:
			return "change a constraint of";
		case AT_SetLogged:
		case AT_SetUnLogged:
			return "change the persistence of";
		case AT_AddInherit:
		case AT_DropInherit:
		case AT_AddOf:
		case AT_DropOf:
			return "change the inheritance of";
		case AT_AttachPartition:
		case AT_DetachPartition:
		case AT_DetachPartitionFinalize:
			return "attach or detach a partition of";
		case AT_ChangeOwner:
			return "change the owner of";
		case AT_EnableRowSecurity:
		case AT_ForceRowSecurity:
			return "enable row level security on";
		default:
			return "alter";
	}
}

/* May this ALTER TABLE subcommand run on an extension table? */
static bool
AlterTableAllowed(AlterTableType subtype)
{
	switch (subtype)
	{
		case AT_SetRelOptions:
		case AT_ResetRelOptions:
		case AT_ReplaceRelOptions:
		case AT_SetStatistics:
		case AT_SetOptions:
		case AT_ResetOptions:
		case AT_SetStorage:
		case AT_SetCompression:
		case AT_ClusterOn:
		case AT_DropCluster:
		case AT_SetTableSpace:
		case AT_ReplicaIdentity:
		case AT_DisableRowSecurity:
		case AT_NoForceRowSecurity:
			return true;
		default:
			return false;
	}
}

/* The detail of a refused ALTER TABLE subcommand on an extension table. */
static const char *
AlterTableDetail(AlterTableType subtype)
{
	switch (subtype)
	{
		case AT_AddConstraint:
		case AT_AddConstraintRecurse:
		case AT_EnableRowSecurity:
		case AT_ForceRowSecurity:
		case AT_EnableTrig:
		case AT_EnableAlwaysTrig:
		case AT_EnableTrigAll:
		case AT_EnableTrigUser:
		case AT_EnableRule:
		case AT_EnableAlwaysRule:
		case AT_EnableReplicaRule:
		case AT_ColumnDefault:
			return DETAIL_USER_CODE;
		case AT_DropColumn:
		case AT_DropColumnRecurse:
		case AT_AlterColumnType:
		case AT_SetAccessMethod:
		case AT_DisableTrig:
		case AT_DisableTrigAll:
		case AT_DisableTrigUser:
		case AT_EnableReplicaTrig:
			return DETAIL_IMMUTABLE;
		default:
			return ES_DETAIL_SHAPE;
	}
}

/*
 * On a logical subscriber, the ledger's tables are written by the
 * subscription's apply worker only (commands are refused there, 25006), and
 * a read model may be built by triggers of the user's own that fire for the
 * rows it applies.  A superuser (the apply worker runs triggers as the
 * subscription's owner, so only a superuser may choose the code it runs)
 * may create AFTER triggers on a member table that a subscription of this
 * database replicates into, and enable or disable them (ENABLE ALWAYS or
 * REPLICA so that the apply worker fires them).  Never BEFORE or INSTEAD OF
 * triggers, which could change or skip the rows, nor the guard triggers.
 */
static bool
SubscriberTriggersAllowed(Oid relid)
{
	return superuser() && OidIsValid(EsCatalogSubscriptionOf(relid));
}

/*
 * Is the trigger named on relid one of the user's (its function is not a
 * member of the extension, as the guard triggers' functions are)?  False
 * if there is no such trigger.
 */
static bool
TriggerIsUsers(Oid relid, const char *name, Oid extoid)
{
	Oid			trigoid = get_trigger_oid(relid, name, true);
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		users = false;

	if (!OidIsValid(trigoid))
		return false;
	rel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(trigoid));
	scan = systable_beginscan(rel, TriggerOidIndexId, true, NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tup);

		users = !trig->tgisinternal &&
			getExtensionOfObject(ProcedureRelationId, trig->tgfoid) != extoid;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return users;
}

/*
 * May this ALTER TABLE subcommand on a member table change how a trigger
 * of the user's fires (a logical subscriber, see SubscriberTriggersAllowed)?
 */
static bool
SubscriberTriggerCommand(Oid relid, AlterTableCmd *cmd, Oid extoid)
{
	switch (cmd->subtype)
	{
		case AT_EnableTrig:
		case AT_EnableAlwaysTrig:
		case AT_EnableReplicaTrig:
		case AT_DisableTrig:
			return cmd->name != NULL && SubscriberTriggersAllowed(relid) &&
				TriggerIsUsers(relid, cmd->name, extoid);
		default:
			return false;
	}
}

/*
 * Check each subcommand of an ALTER TABLE before it runs: the allowed list
 * on the extension's tables, the old column and access-method checks on
 * other es_log tables, and INHERIT / ATTACH / DETACH naming an extension
 * table from any table.
 */
static void
GuardAlterTable(AlterTableStmt *stmt, Oid extoid)
{
	Oid			relid = RelidOfRangeVar(stmt->relation);
	bool		eslog = EsCatalogRelIsEsLog(relid);
	bool		ours = EsCatalogRelIsOurs(relid, extoid);
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
		Oid			other = InvalidOid;

		if (ours && !AlterTableAllowed(cmd->subtype) &&
			!SubscriberTriggerCommand(relid, cmd, extoid))
			RefuseRel(relid, AlterTableVerb(cmd->subtype),
					  AlterTableDetail(cmd->subtype), ES_HINT_SCRIPTS);

		switch (cmd->subtype)
		{
			case AT_DropColumn:
			case AT_DropColumnRecurse:
			case AT_AlterColumnType:
			case AT_SetAccessMethod:
				if (eslog)
					RefuseRel(relid, AlterTableVerb(cmd->subtype),
							  DETAIL_IMMUTABLE,
							  "Tables using the es_log access method keep their columns and access method.");
				break;
			case AT_AddInherit:
			case AT_DropInherit:
				if (cmd->def != NULL && IsA(cmd->def, RangeVar))
					other = RelidOfRangeVar((RangeVar *) cmd->def);
				if (EsCatalogRelIsOurs(other, extoid))
					RefuseRel(other, "inherit from", ES_DETAIL_SHAPE, ES_HINT_SCRIPTS);
				break;
			case AT_AttachPartition:
			case AT_DetachPartition:
			case AT_DetachPartitionFinalize:
				if (cmd->def != NULL && IsA(cmd->def, PartitionCmd))
					other = RelidOfRangeVar(((PartitionCmd *) cmd->def)->name);
				if (EsCatalogRelIsOurs(other, extoid))
					RefuseRel(other, "attach or detach the partition",
							  ES_DETAIL_SHAPE, ES_HINT_SCRIPTS);
				break;
			default:
				break;
		}
	}
}

/* CREATE TABLE: refuse INHERITS or PARTITION OF an extension table. */
static void
GuardCreateTable(CreateStmt *stmt, Oid extoid)
{
	ListCell   *lc;

	foreach(lc, stmt->inhRelations)
	{
		Oid			parent = RelidOfRangeVar(lfirst_node(RangeVar, lc));

		if (EsCatalogRelIsOurs(parent, extoid))
			RefuseRel(parent, stmt->partbound ? "create a partition of" : "inherit from",
					  ES_DETAIL_SHAPE, ES_HINT_SCRIPTS);
	}
}

/* check_functions_in_node callback: is the function not built in? */
static bool
IsUserFunction(Oid funcid, void *context)
{
	return funcid >= FirstNormalObjectId;
}

/*
 * Expression walker: does the expression call a function or operator that
 * is not built in, or coerce to a domain that is not (its CHECK constraints
 * would run)?
 */
static bool
CallsUserCode(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, IsUserFunction, context))
		return true;
	switch (nodeTag(node))
	{
		case T_OpExpr:
		case T_DistinctExpr:
		case T_NullIfExpr:
			if (((OpExpr *) node)->opno >= FirstNormalObjectId)
				return true;
			break;
		case T_ScalarArrayOpExpr:
			if (((ScalarArrayOpExpr *) node)->opno >= FirstNormalObjectId)
				return true;
			break;
		case T_RowCompareExpr:
			{
				ListCell   *lc;

				foreach(lc, ((RowCompareExpr *) node)->opnos)
				{
					if (lfirst_oid(lc) >= FirstNormalObjectId)
						return true;
				}
				break;
			}
		case T_CoerceToDomain:
			if (((CoerceToDomain *) node)->resulttype >= FirstNormalObjectId)
				return true;
			break;
		default:
			break;
	}
	return expression_tree_walker(node, CallsUserCode, context);
}

/*
 * CREATE INDEX on an extension table: refuse a unique index, and one that
 * would run user code on every insert (an access method, operator class,
 * function, operator or domain that is not built in).  The statement is
 * analysed as DefineIndex will see it, after taking the lock the command
 * takes anyway.
 */
static void
GuardCreateIndex(IndexStmt *stmt, Oid extoid)
{
	Oid			relid = RelidOfRangeVar(stmt->relation);
	Oid			amoid;
	LOCKMODE	lockmode;
	IndexStmt  *xstmt;
	ListCell   *lc;

	if (!EsCatalogRelIsOurs(relid, extoid))
		return;
	if (stmt->unique || stmt->primary || stmt->isconstraint ||
		stmt->excludeOpNames != NIL)
		RefuseRel(relid, "create a unique index on", ES_DETAIL_SHAPE, HINT_INDEX);

	amoid = get_index_am_oid(stmt->accessMethod, true);
	if (!OidIsValid(amoid))
		return;					/* DefineIndex reports it */
	if (amoid >= FirstNormalObjectId)
		RefuseRel(relid, "create an index of a user-defined access method on",
				  DETAIL_USER_CODE, HINT_INDEX);

	lockmode = stmt->concurrent ? ShareUpdateExclusiveLock : ShareLock;
	relid = RangeVarGetRelidExtended(stmt->relation, lockmode, 0,
									 RangeVarCallbackOwnsRelation, NULL);
	/* transformIndexStmt may scribble on its argument: give it a copy */
	xstmt = transformIndexStmt(relid, copyObject(stmt), NULL);

	if (CallsUserCode(xstmt->whereClause, NULL))
		RefuseRel(relid, "create an index calling user-defined code on",
				  DETAIL_USER_CODE, HINT_INDEX);
	foreach(lc, xstmt->indexParams)
	{
		IndexElem  *elem = lfirst_node(IndexElem, lc);
		Oid			atttype;
		Oid			opclass;

		if (elem->expr != NULL)
		{
			if (CallsUserCode(elem->expr, NULL))
				RefuseRel(relid, "create an index calling user-defined code on",
						  DETAIL_USER_CODE, HINT_INDEX);
			atttype = exprType(elem->expr);
		}
		else
		{
			AttrNumber	attnum = get_attnum(relid, elem->name);

			if (attnum == InvalidAttrNumber)
				return;			/* DefineIndex reports it */
			atttype = get_atttype(relid, attnum);
		}
		opclass = ResolveOpClass(elem->opclass, atttype, stmt->accessMethod, amoid);
		if (opclass >= FirstNormalObjectId)
			RefuseRel(relid, "create an index of a user-defined operator class on",
					  DETAIL_USER_CODE, HINT_INDEX);
	}
}

/*
 * DROP: refuse to drop a member of the extension, or one of its own
 * indexes, by name.  Drops that reach es_events by cascade are left to the
 * drop guard (EsHooksObjectAccess), which sees every deleted object.
 */
static void
GuardDrop(DropStmt *stmt, Oid extoid)
{
	ListCell   *lc;

	foreach(lc, stmt->objects)
	{
		Node	   *object = lfirst(lc);

		if (IsRelationType(stmt->removeType))
		{
			RangeVar   *rv = makeRangeVarFromNameList(castNode(List, object));
			Oid			relid = RelidOfRangeVar(rv);

			if (EsCatalogRelIsOurs(relid, extoid))
				RefuseRel(relid, "drop", ES_DETAIL_SHAPE,
						  "The objects of es_ledger go only with the extension; to drop a ledger that holds events, a superuser must first run SET es_ledger.allow_drop = on.");
			if (IndexIsOurs(relid, extoid))
				RefuseRel(relid, "drop", ES_DETAIL_SHAPE,
						  "Only indexes added for your own queries may be dropped.");
		}
		else
			RefuseIfMember(stmt->removeType, object, extoid, "drop");
	}
}

/* RENAME: refuse on members, their columns, constraints, triggers and
 * indexes, and on the extension's schema (renaming them would break the ledger's own scripts and tools). */
static void
GuardRename(RenameStmt *stmt, Oid extoid)
{
	if (stmt->relation != NULL)
	{
		Oid			relid = RelidOfRangeVar(stmt->relation);
		Oid			table = relid;

		/* An index belongs to the extension through its table. */
		if (OidIsValid(relid) && get_rel_relkind(relid) == RELKIND_INDEX)
			table = IndexGetRelation(relid, true);
		if (EsCatalogRelIsOurs(table, extoid))
			RefuseRel(relid, "rename", ES_DETAIL_SHAPE, ES_HINT_SCRIPTS);
	}
	else if (stmt->renameType == OBJECT_SCHEMA)
		RefuseIfOurSchema(stmt->subname, extoid, "rename");
	else
		RefuseIfMember(stmt->renameType, stmt->object, extoid, "rename");
}

/*
 * CREATE OR REPLACE FUNCTION or PROCEDURE: refuse to replace a member
 * function (es_guard_ddl, es_guard_projection, es_apply, ...).  The function
 * is looked up exactly as CreateFunction will: in its creation namespace,
 * by name and input argument types.
 */
static void
GuardReplaceFunction(CreateFunctionStmt *stmt, Oid extoid)
{
	char	   *name;
	Oid			nspoid;
	Oid		   *argtypes;
	int			nargs = 0;
	ListCell   *lc;
	HeapTuple	tup;

	if (!stmt->replace)
		return;
	nspoid = QualifiedNameGetCreationNamespace(stmt->funcname, &name);
	argtypes = palloc(sizeof(Oid) * (list_length(stmt->parameters) + 1));
	foreach(lc, stmt->parameters)
	{
		FunctionParameter *p = lfirst_node(FunctionParameter, lc);

		if (p->mode == FUNC_PARAM_OUT || p->mode == FUNC_PARAM_TABLE)
			continue;
		argtypes[nargs] = LookupTypeNameOid(NULL, p->argType, true);
		if (!OidIsValid(argtypes[nargs]))
			return;				/* no such type: no such function of ours */
		nargs++;
	}
	tup = SearchSysCache3(PROCNAMEARGSNSP, CStringGetDatum(name),
						  PointerGetDatum(buildoidvector(argtypes, nargs)),
						  ObjectIdGetDatum(nspoid));
	if (HeapTupleIsValid(tup))
	{
		ObjectAddress addr;

		ObjectAddressSet(addr, ProcedureRelationId,
						 ((Form_pg_proc) GETSTRUCT(tup))->oid);
		ReleaseSysCache(tup);
		if (getExtensionOfObject(addr.classId, addr.objectId) == extoid)
			EsCatalogRefuseObject(&addr, "replace");
	}
}

/*
 * The object of es_ledger that a command names as (type, object, relation),
 * if it is one: a member, a part of a member relation (index, TOAST table,
 * trigger, row type or array type), or the extension's schema.  Sets *addr
 * and returns true if so.  Looked up without locks.
 */
static bool
NamedObjectIsOurs(ObjectType type, Node *object, RangeVar *relation,
				  Oid extoid, ObjectAddress *addr)
{
	Oid			relid;
	Oid			classId = InvalidOid;
	Oid			objectId;

	switch (type)
	{
		case OBJECT_TRIGGER:
		case OBJECT_RULE:
		case OBJECT_POLICY:
			/* ALTER TRIGGER name ON table: the table is in relation */
			relid = RelidOfRangeVar(relation);
			if (!RelOrPartIsOurs(relid, extoid))
				return false;
			ObjectAddressSet(*addr, RelationRelationId, relid);
			return true;
		case OBJECT_TABLE:
		case OBJECT_SEQUENCE:
		case OBJECT_VIEW:
		case OBJECT_MATVIEW:
		case OBJECT_FOREIGN_TABLE:
		case OBJECT_INDEX:
			if (relation == NULL && object != NULL)
				relation = makeRangeVarFromNameList(castNode(List, object));
			relid = RelidOfRangeVar(relation);
			if (!RelOrPartIsOurs(relid, extoid))
				return false;
			ObjectAddressSet(*addr, RelationRelationId, relid);
			return true;
		case OBJECT_TYPE:
		case OBJECT_DOMAIN:
			objectId = LookupTypeNameOid(NULL, TypeNameOf(object), true);
			if (!EsCatalogTypeIsOurs(objectId, extoid))
				return false;
			ObjectAddressSet(*addr, TypeRelationId, objectId);
			return true;
		case OBJECT_SCHEMA:
			{
				Oid			nspoid;
				Oid			owner;

				EsCatalogExtensionSchemaOwner(extoid, &nspoid, &owner);
				if (!OidIsValid(nspoid) ||
					get_namespace_oid(strVal(object), true) != nspoid)
					return false;
				ObjectAddressSet(*addr, NamespaceRelationId, nspoid);
				return true;
			}
		default:
			objectId = LookupObject(type, object, &classId);
			if (!OidIsValid(objectId) ||
				getExtensionOfObject(classId, objectId) != extoid)
				return false;
			ObjectAddressSet(*addr, classId, objectId);
			return true;
	}
}

/*
 * ALTER EXTENSION ... ADD or DROP: refuse it for es_ledger itself, and, for
 * any other extension, on an object of es_ledger (its row types, indexes,
 * schema...): DROP EXTENSION of the other one would then drop it, and with
 * it, through its internal dependencies, the ledger's tables.
 */
static void
GuardExtensionContents(AlterExtensionContentsStmt *stmt, Oid extoid)
{
	ObjectAddress addr;

	if (strcmp(stmt->extname, "es_ledger") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_ES_LOG_IMMUTABLE),
				 errmsg("cannot %s extension es_ledger",
						stmt->action > 0 ? "add an object to" : "drop an object from"),
				 errdetail("%s", ES_DETAIL_SHAPE),
				 errhint("%s", ES_HINT_SCRIPTS)));
	if (NamedObjectIsOurs(stmt->objtype, stmt->object, NULL, extoid, &addr))
		ereport(ERROR,
				(errcode(ERRCODE_ES_LOG_IMMUTABLE),
				 errmsg("cannot %s extension \"%s\" %s of es_ledger",
						stmt->action > 0 ? "add to" : "drop from",
						stmt->extname, getObjectDescription(&addr, false)),
				 errdetail("DROP EXTENSION %s would drop it, and with it objects of es_ledger.",
						   stmt->extname),
				 errhint("%s", ES_HINT_SCRIPTS)));
}

/*
 * ALTER ... [NO] DEPENDS ON EXTENSION: refuse it for es_ledger (the mark
 * tells the extension's own indexes from those users add) and, for any
 * extension, on an object of es_ledger or an index, TOAST table or trigger
 * of one of its tables: DROP EXTENSION of that extension would drop it.
 */
static void
GuardDependsOnExtension(AlterObjectDependsStmt *stmt, Oid extoid)
{
	ObjectAddress addr;

	if (strcmp(strVal(stmt->extname), "es_ledger") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_ES_LOG_IMMUTABLE),
				 errmsg("cannot change which objects depend on extension es_ledger"),
				 errdetail("The mark tells the extension's own indexes from those users add."),
				 errhint("%s", ES_HINT_SCRIPTS)));
	if (NamedObjectIsOurs(stmt->objectType, stmt->object, stmt->relation,
						  extoid, &addr))
		ereport(ERROR,
				(errcode(ERRCODE_ES_LOG_IMMUTABLE),
				 errmsg("cannot make %s%s %sdepend on extension \"%s\"",
						stmt->objectType == OBJECT_TRIGGER ? "a trigger on " : "",
						getObjectDescription(&addr, false),
						stmt->remove ? "no longer " : "", strVal(stmt->extname)),
				 errdetail("DROP EXTENSION %s would drop it.", strVal(stmt->extname)),
				 errhint("%s", ES_HINT_SCRIPTS)));
}

/* Dispatch a ddl_command_start event to the check for its statement. */
static void
GuardCommandStart(Node *parsetree, Oid extoid)
{
	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			GuardAlterTable((AlterTableStmt *) parsetree, extoid);
			break;
		case T_RenameStmt:
			GuardRename((RenameStmt *) parsetree, extoid);
			break;
		case T_CreateTrigStmt:
			{
				CreateTrigStmt *trig = (CreateTrigStmt *) parsetree;
				Oid			relid = RelidOfRangeVar(trig->relation);

				/* An AFTER trigger of a superuser on a subscriber's table. */
				if (EsCatalogRelIsOurs(relid, extoid) &&
					!(trig->timing == TRIGGER_TYPE_AFTER && !trig->isconstraint &&
					  !trig->replace && SubscriberTriggersAllowed(relid)))
					RefuseRel(relid, "create a trigger on", DETAIL_USER_CODE, ES_HINT_SCRIPTS);
				break;
			}
		case T_RuleStmt:
			{
				Oid			relid = RelidOfRangeVar(((RuleStmt *) parsetree)->relation);

				if (EsCatalogRelIsOurs(relid, extoid))
					RefuseRel(relid, "create a rule on", DETAIL_USER_CODE, ES_HINT_SCRIPTS);
				break;
			}
		case T_CreatePolicyStmt:
			{
				Oid			relid = RelidOfRangeVar(((CreatePolicyStmt *) parsetree)->table);

				if (EsCatalogRelIsOurs(relid, extoid))
					RefuseRel(relid, "create a policy on", DETAIL_USER_CODE, ES_HINT_SCRIPTS);
				break;
			}
		case T_AlterPolicyStmt:
			{
				Oid			relid = RelidOfRangeVar(((AlterPolicyStmt *) parsetree)->table);

				if (EsCatalogRelIsOurs(relid, extoid))
					RefuseRel(relid, "alter a policy on", DETAIL_USER_CODE, ES_HINT_SCRIPTS);
				break;
			}
		case T_CreateStmt:
			GuardCreateTable((CreateStmt *) parsetree, extoid);
			break;
		case T_CreateForeignTableStmt:
			GuardCreateTable(&((CreateForeignTableStmt *) parsetree)->base, extoid);
			break;
		case T_IndexStmt:
			GuardCreateIndex((IndexStmt *) parsetree, extoid);
			break;
		case T_DropStmt:
			GuardDrop((DropStmt *) parsetree, extoid);
			break;
		case T_AlterSeqStmt:
			{
				Oid			relid = RelidOfRangeVar(((AlterSeqStmt *) parsetree)->sequence);

				if (EsCatalogRelIsOurs(relid, extoid))
					RefuseRel(relid, "alter sequence", ES_DETAIL_SHAPE, ES_HINT_SCRIPTS);
				break;
			}
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *stmt = (AlterObjectSchemaStmt *) parsetree;

				if (stmt->relation != NULL)
				{
					Oid			relid = RelidOfRangeVar(stmt->relation);

					if (EsCatalogRelIsOurs(relid, extoid))
						RefuseRel(relid, "change the schema of", ES_DETAIL_SHAPE, ES_HINT_SCRIPTS);
				}
				else
					RefuseIfMember(stmt->objectType, stmt->object, extoid,
								   "change the schema of");
				break;
			}
		case T_AlterOwnerStmt:
			{
				AlterOwnerStmt *stmt = (AlterOwnerStmt *) parsetree;

				if (stmt->objectType == OBJECT_SCHEMA)
					RefuseIfOurSchema(strVal(stmt->object), extoid, "change the owner of");
				else
					RefuseIfMember(stmt->objectType, stmt->object, extoid,
								   "change the owner of");
				break;
			}
		case T_AlterFunctionStmt:
			{
				AlterFunctionStmt *stmt = (AlterFunctionStmt *) parsetree;

				RefuseIfMember(stmt->objtype, (Node *) stmt->func, extoid, "alter");
				break;
			}
		case T_CreateFunctionStmt:
			GuardReplaceFunction((CreateFunctionStmt *) parsetree, extoid);
			break;
		case T_AlterExtensionContentsStmt:
			GuardExtensionContents((AlterExtensionContentsStmt *) parsetree, extoid);
			break;
		case T_AlterObjectDependsStmt:
			GuardDependsOnExtension((AlterObjectDependsStmt *) parsetree, extoid);
			break;
		case T_AlterExtensionStmt:
			break;				/* ALTER EXTENSION UPDATE runs our own script */
		default:
			break;
	}
}

/*
 * es_guard_ddl() RETURNS event_trigger
 *
 * On ddl_command_start (every command; event trigger es_guard_ddl, ENABLE
 * ALWAYS): refuses with ES011 the commands listed in the file header on the
 * extension's objects and, for a few, on other es_log tables.  On
 * table_rewrite (event trigger es_guard_rewrite): refuses with ES011 to
 * rewrite an es_log table.  Scripts of es_ledger itself are let through.
 * Takes no locks but for CREATE INDEX on an extension table (see
 * GuardCreateIndex).  Being in the library, it also makes sure the drop
 * guard's hook is installed before any DDL command runs.
 */
PG_FUNCTION_INFO_V1(es_guard_ddl);
Datum
es_guard_ddl(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = (EventTriggerData *) fcinfo->context;
	Oid			extoid;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("es_guard_ddl() must be called as an event trigger")));

	extoid = EsCatalogExtensionOid();
	if (EsCatalogInOurScript(extoid))
		PG_RETURN_VOID();

	if (strcmp(trigdata->event, "table_rewrite") == 0)
	{
		Oid			relid;

		relid = DatumGetObjectId(DirectFunctionCall1(pg_event_trigger_table_rewrite_oid,
													 (Datum) 0));
		if (EsCatalogRelIsEsLog(relid))
			RefuseRel(relid, "rewrite the es_log table", DETAIL_IMMUTABLE,
					  "Tables using the es_log access method can never be rewritten.");
	}
	else if (OidIsValid(extoid) && strcmp(trigdata->event, "ddl_command_start") == 0)
		GuardCommandStart(trigdata->parsetree, extoid);
	PG_RETURN_VOID();
}
