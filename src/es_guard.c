/*-------------------------------------------------------------------------
 *
 * es_guard.c
 *	  The write guard and the DDL guard: nothing but es_apply may write the
 *	  log or the projections, and nothing but the extension's own scripts
 *	  may change its objects, for any role, superusers included.
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
 * DDL guard.  es_guard_ddl() runs on ddl_command_start for every command
 * and refuses with ES011, on the extension's tables (members of es_ledger,
 * found with getExtensionOfObject, never by name):
 *	- ALTER TABLE, except storage parameters, statistics targets, attribute
 *	  options, SET STORAGE, SET COMPRESSION, CLUSTER ON, SET WITHOUT
 *	  CLUSTER, SET TABLESPACE, REPLICA IDENTITY and DISABLE / NO FORCE ROW
 *	  LEVEL SECURITY; so every [ENABLE|DISABLE] [REPLICA|ALWAYS] TRIGGER,
 *	  ADD/DROP COLUMN or CONSTRAINT, column changes, [NO] INHERIT, ATTACH or
 *	  DETACH PARTITION, SET [UN]LOGGED, OWNER TO, ENABLE/FORCE ROW LEVEL
 *	  SECURITY and SET ACCESS METHOD is refused;
 *	- CREATE TRIGGER, CREATE RULE, CREATE or ALTER POLICY;
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
 * Name reservation.  The extension is called and read with unqualified names
 * (es_apply(...), FROM es_accounts), often in schema public, which the
 * database owner owns.  A function named es_apply with other argument types
 * or a default argument, in any schema, or one in a schema earlier in
 * search_path, would capture such a call (and run with the caller's rights,
 * a superuser's say); a view named es_accounts earlier in search_path would
 * be read instead of the table.  So, for every role, the object_access_hook
 * refuses with ES011 to create, rename to or move to another schema (SET
 * SCHEMA) a function, procedure or aggregate named like a member function,
 * or a relation (table, view, materialized view, sequence, index, foreign
 * table, composite type) or type named like a member relation or type, in
 * any schema, unless a script of es_ledger is running
 * (GuardReservedName).  The names are those of the members at the time, so
 * what a later version adds is covered.  The hook sees every road to the
 * catalogs: CREATE TABLE AS, SELECT INTO, CREATE SCHEMA ... CREATE VIEW,
 * range types' constructor functions, other extensions' scripts.  A
 * look-alike made before (under 0.1.0, or with the DDL guard off) is left
 * alone: it can be renamed away or dropped, not replaced or moved.
 * pg_upgrade's restore (binary upgrade mode) is not checked.
 *
 * Drop guard.  An object_access_hook refuses, at OAT_DROP, the deletion of
 * an es_log table of the extension (es_events) that has any block, whatever
 * command or cascade leads there: DROP EXTENSION, DROP SCHEMA ... CASCADE,
 * DROP OWNED BY.  A superuser may allow it for the session with
 * SET es_ledger.allow_drop = on.  The hook is installed when the library is
 * loaded, which the ddl_command_start event trigger guarantees before any
 * DDL command runs.
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
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_event_trigger.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "commands/tablecmds.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "parser/parse_type.h"
#include "parser/parse_utilcmd.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/fmgrprotos.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "es_ledger.h"

/* How many es_apply write brackets are open in this backend. */
static int	EsWriteDepth = 0;

/* es_ledger.allow_drop: may a ledger holding events be dropped? */
static bool EsAllowDrop = false;

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

/* The object_access_hook we chain to. */
static object_access_hook_type PrevObjectAccessHook = NULL;

/* Details and hints of the DDL guard's refusals. */
#define DETAIL_IMMUTABLE \
	"The es_ledger event log is immutable and its projections are written only by es_apply."
#define DETAIL_USER_CODE \
	"It would run user code inside es_apply's writes to the ledger's tables."
#define DETAIL_SHAPE \
	"es_apply relies on the tables, indexes, sequences and functions of es_ledger exactly as its scripts created them."
#define HINT_SCRIPTS \
	"Only the scripts of es_ledger (CREATE EXTENSION, ALTER EXTENSION es_ledger UPDATE) may change its objects."
#define HINT_INDEX \
	"An index for your own queries is allowed if it is not unique and uses only built-in functions, operators and operator classes."
#define HINT_DROP \
	"If the ledger really is to be destroyed, a superuser must first run SET es_ledger.allow_drop = on."

static void EsGuardObjectAccess(ObjectAccessType access, Oid classId,
								Oid objectId, int subId, void *arg);

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
 * Install the transaction callback, the drop guard's object_access_hook and
 * the GUCs es_ledger.allow_drop and es_ledger.restore; called once from
 * _PG_init.  A value a superuser SET before the library was loaded (a
 * placeholder, or PGOPTIONS='-c es_ledger.restore=on') is taken over by
 * DefineCustomBoolVariable; one a non-superuser SET is refused then.
 */
void
EsGuardInit(void)
{
	RegisterXactCallback(EsGuardXactCallback, NULL);
	RegisterSubXactCallback(EsGuardSubXactCallback, NULL);

	DefineCustomBoolVariable("es_ledger.allow_drop",
							 "Allows dropping an es_ledger event log that holds events.",
							 "DROP EXTENSION es_ledger, DROP SCHEMA ... CASCADE, DROP OWNED BY and any "
							 "other command that would drop es_events while it holds events fail "
							 "unless this is on.",
							 &EsAllowDrop,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

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

	PrevObjectAccessHook = object_access_hook;
	object_access_hook = EsGuardObjectAccess;
}

/*
 * es_guard_projection() RETURNS trigger
 *
 * BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ... FOR EACH STATEMENT on
 * every projection table (ENABLE ALWAYS).  Refuses the statement with ES011
 * unless es_apply (or another es_ledger operation) is writing, or the
 * statement is an INSERT (or COPY) in a session restoring a dump
 * (es_ledger.restore) into a table that was empty (EsGuardRestoreTable,
 * which locks it).  No locks otherwise.
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

/* The OID of the es_log access method, or InvalidOid if not installed. */
Oid
EsGuardLogAmOid(void)
{
	return get_table_am_oid("es_log", true);
}

/* The OID of the es_ledger extension, or InvalidOid if not installed. */
static Oid
EsExtensionOid(void)
{
	return get_extension_oid("es_ledger", true);
}

/* Is a script of es_ledger itself (CREATE or ALTER EXTENSION) running? */
static bool
InOurScript(Oid extoid)
{
	return creating_extension && OidIsValid(extoid) &&
		CurrentExtensionObject == extoid;
}

/*
 * The schema and owner of extension extoid (get_extension_schema is not
 * exported in PostgreSQL 15).  InvalidOid for both if it does not exist.
 */
static void
GetExtensionSchemaOwner(Oid extoid, Oid *nspoid, Oid *owner)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	*nspoid = InvalidOid;
	*owner = InvalidOid;
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		Form_pg_extension ext = (Form_pg_extension) GETSTRUCT(tup);

		*nspoid = ext->extnamespace;
		*owner = ext->extowner;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
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

/* Is relid a member (table, sequence, ...) of extension extoid? */
static bool
RelIsOurs(Oid relid, Oid extoid)
{
	return OidIsValid(relid) && OidIsValid(extoid) &&
		getExtensionOfObject(RelationRelationId, relid) == extoid;
}

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
	return RelIsOurs(relid, extoid);
}

/*
 * Is typoid a type of extoid: a member type, the row type of a member
 * relation, or the array type of one of those?
 */
static bool
TypeIsOurs(Oid typoid, Oid extoid)
{
	Oid			elem;

	if (!OidIsValid(typoid) || !OidIsValid(extoid))
		return false;
	if (getExtensionOfObject(TypeRelationId, typoid) == extoid)
		return true;
	if (RelIsOurs(get_typ_typrelid(typoid), extoid))
		return true;
	elem = get_element_type(typoid);
	return OidIsValid(elem) && elem != typoid && TypeIsOurs(elem, extoid);
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
	if (!RelIsOurs(table, extoid))
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

/* Refuse a DDL command on another object of es_ledger with ES011. */
static void
RefuseObject(const ObjectAddress *addr, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_ES_LOG_IMMUTABLE),
			 errmsg("cannot %s %s", what, getObjectDescription(addr, false)),
			 errdetail("%s", DETAIL_SHAPE),
			 errhint("%s", HINT_SCRIPTS)));
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
		RefuseObject(&addr, what);
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
	GetExtensionSchemaOwner(extoid, &nspoid, &owner);
	if (OidIsValid(nspoid) && get_namespace_oid(nspname, true) == nspoid)
		ereport(ERROR,
				(errcode(ERRCODE_ES_LOG_IMMUTABLE),
				 errmsg("cannot %s schema \"%s\"", what, nspname),
				 errdetail("Schema \"%s\" holds extension es_ledger, whose tables and functions it holds.",
						   nspname),
				 errhint("%s", HINT_SCRIPTS)));
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
			return DETAIL_SHAPE;
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
	bool		eslog = RelIsEsLog(relid);
	bool		ours = RelIsOurs(relid, extoid);
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
		Oid			other = InvalidOid;

		if (ours && !AlterTableAllowed(cmd->subtype))
			RefuseRel(relid, AlterTableVerb(cmd->subtype),
					  AlterTableDetail(cmd->subtype), HINT_SCRIPTS);

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
				if (RelIsOurs(other, extoid))
					RefuseRel(other, "inherit from", DETAIL_SHAPE, HINT_SCRIPTS);
				break;
			case AT_AttachPartition:
			case AT_DetachPartition:
			case AT_DetachPartitionFinalize:
				if (cmd->def != NULL && IsA(cmd->def, PartitionCmd))
					other = RelidOfRangeVar(((PartitionCmd *) cmd->def)->name);
				if (RelIsOurs(other, extoid))
					RefuseRel(other, "attach or detach the partition",
							  DETAIL_SHAPE, HINT_SCRIPTS);
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

		if (RelIsOurs(parent, extoid))
			RefuseRel(parent, stmt->partbound ? "create a partition of" : "inherit from",
					  DETAIL_SHAPE, HINT_SCRIPTS);
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

	if (!RelIsOurs(relid, extoid))
		return;
	if (stmt->unique || stmt->primary || stmt->isconstraint ||
		stmt->excludeOpNames != NIL)
		RefuseRel(relid, "create a unique index on", DETAIL_SHAPE, HINT_INDEX);

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
 * drop guard (EsGuardObjectAccess), which sees every deleted object.
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

			if (RelIsOurs(relid, extoid))
				RefuseRel(relid, "drop", DETAIL_SHAPE,
						  "The objects of es_ledger go only with the extension; to drop a ledger that holds events, a superuser must first run SET es_ledger.allow_drop = on.");
			if (IndexIsOurs(relid, extoid))
				RefuseRel(relid, "drop", DETAIL_SHAPE,
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
		if (RelIsOurs(table, extoid))
			RefuseRel(relid, "rename", DETAIL_SHAPE, HINT_SCRIPTS);
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
			RefuseObject(&addr, "replace");
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
			if (!TypeIsOurs(objectId, extoid))
				return false;
			ObjectAddressSet(*addr, TypeRelationId, objectId);
			return true;
		case OBJECT_SCHEMA:
			{
				Oid			nspoid;
				Oid			owner;

				GetExtensionSchemaOwner(extoid, &nspoid, &owner);
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
				 errdetail("%s", DETAIL_SHAPE),
				 errhint("%s", HINT_SCRIPTS)));
	if (NamedObjectIsOurs(stmt->objtype, stmt->object, NULL, extoid, &addr))
		ereport(ERROR,
				(errcode(ERRCODE_ES_LOG_IMMUTABLE),
				 errmsg("cannot %s extension \"%s\" %s of es_ledger",
						stmt->action > 0 ? "add to" : "drop from",
						stmt->extname, getObjectDescription(&addr, false)),
				 errdetail("DROP EXTENSION %s would drop it, and with it objects of es_ledger.",
						   stmt->extname),
				 errhint("%s", HINT_SCRIPTS)));
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
				 errhint("%s", HINT_SCRIPTS)));
	if (NamedObjectIsOurs(stmt->objectType, stmt->object, stmt->relation,
						  extoid, &addr))
		ereport(ERROR,
				(errcode(ERRCODE_ES_LOG_IMMUTABLE),
				 errmsg("cannot make %s%s %sdepend on extension \"%s\"",
						stmt->objectType == OBJECT_TRIGGER ? "a trigger on " : "",
						getObjectDescription(&addr, false),
						stmt->remove ? "no longer " : "", strVal(stmt->extname)),
				 errdetail("DROP EXTENSION %s would drop it.", strVal(stmt->extname)),
				 errhint("%s", HINT_SCRIPTS)));
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
				Oid			relid = RelidOfRangeVar(((CreateTrigStmt *) parsetree)->relation);

				if (RelIsOurs(relid, extoid))
					RefuseRel(relid, "create a trigger on", DETAIL_USER_CODE, HINT_SCRIPTS);
				break;
			}
		case T_RuleStmt:
			{
				Oid			relid = RelidOfRangeVar(((RuleStmt *) parsetree)->relation);

				if (RelIsOurs(relid, extoid))
					RefuseRel(relid, "create a rule on", DETAIL_USER_CODE, HINT_SCRIPTS);
				break;
			}
		case T_CreatePolicyStmt:
			{
				Oid			relid = RelidOfRangeVar(((CreatePolicyStmt *) parsetree)->table);

				if (RelIsOurs(relid, extoid))
					RefuseRel(relid, "create a policy on", DETAIL_USER_CODE, HINT_SCRIPTS);
				break;
			}
		case T_AlterPolicyStmt:
			{
				Oid			relid = RelidOfRangeVar(((AlterPolicyStmt *) parsetree)->table);

				if (RelIsOurs(relid, extoid))
					RefuseRel(relid, "alter a policy on", DETAIL_USER_CODE, HINT_SCRIPTS);
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

				if (RelIsOurs(relid, extoid))
					RefuseRel(relid, "alter sequence", DETAIL_SHAPE, HINT_SCRIPTS);
				break;
			}
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *stmt = (AlterObjectSchemaStmt *) parsetree;

				if (stmt->relation != NULL)
				{
					Oid			relid = RelidOfRangeVar(stmt->relation);

					if (RelIsOurs(relid, extoid))
						RefuseRel(relid, "change the schema of", DETAIL_SHAPE, HINT_SCRIPTS);
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

	extoid = EsExtensionOid();
	if (InOurScript(extoid))
		PG_RETURN_VOID();

	if (strcmp(trigdata->event, "table_rewrite") == 0)
	{
		Oid			relid;

		relid = DatumGetObjectId(DirectFunctionCall1(pg_event_trigger_table_rewrite_oid,
													 (Datum) 0));
		if (RelIsEsLog(relid))
			RefuseRel(relid, "rewrite the es_log table", DETAIL_IMMUTABLE,
					  "Tables using the es_log access method can never be rewritten.");
	}
	else if (OidIsValid(extoid) && strcmp(trigdata->event, "ddl_command_start") == 0)
		GuardCommandStart(trigdata->parsetree, extoid);
	PG_RETURN_VOID();
}

/*
 * The drop guard, at OAT_DROP of a relation: refuse to delete an es_log
 * table of the extension (es_events) that has any block, unless
 * es_ledger.allow_drop is on or a script of es_ledger is running.  The
 * relation is still in the catalogs and locked AccessExclusive by the drop.
 */
static void
GuardDropLog(Oid relid)
{
	Oid			extoid;
	Relation	rel;
	BlockNumber nblocks;

	if (EsAllowDrop || get_rel_relkind(relid) != RELKIND_RELATION ||
		!RelIsEsLog(relid))
		return;
	extoid = EsExtensionOid();
	if (!RelIsOurs(relid, extoid) || InOurScript(extoid))
		return;

	rel = RelationIdGetRelation(relid);
	if (!RelationIsValid(rel))
		return;
	nblocks = RelationGetNumberOfBlocks(rel);
	RelationClose(rel);
	if (nblocks > 0)
		ereport(ERROR,
				(errcode(ERRCODE_ES_LOG_IMMUTABLE),
				 errmsg("cannot drop \"%s\" while it holds events", get_rel_name(relid)),
				 errdetail("Dropping it would destroy the ledger's history."),
				 errhint("%s", HINT_DROP)));
}

/*
 * Read the owner, name and namespace of object objectId of catalog classId
 * as seen through snapshot (NULL: the catalog snapshot, which does not yet
 * see the current command's changes; SnapshotSelf sees them).  Any of the
 * outputs may be NULL; a column the catalog lacks reads as InvalidOid or an
 * empty name.  Returns false if the row is not found.
 */
static bool
ReadObjectRow(Oid classId, Oid objectId, Snapshot snapshot, Oid *owner,
			  NameData *name, Oid *nspoid)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	if (owner)
		*owner = InvalidOid;
	if (name)
		NameStr(*name)[0] = '\0';
	if (nspoid)
		*nspoid = InvalidOid;
	rel = table_open(classId, AccessShareLock);
	ScanKeyInit(&key, get_object_attnum_oid(classId), BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(objectId));
	scan = systable_beginscan(rel, get_object_oid_index(classId), true,
							  snapshot, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		TupleDesc	desc = RelationGetDescr(rel);
		AttrNumber	attnum;
		bool		isnull;
		Datum		d;

		found = true;
		attnum = get_object_attnum_owner(classId);
		if (owner && attnum != InvalidAttrNumber)
		{
			d = heap_getattr(tup, attnum, desc, &isnull);
			if (!isnull)
				*owner = DatumGetObjectId(d);
		}
		attnum = get_object_attnum_name(classId);
		if (name && attnum != InvalidAttrNumber)
		{
			d = heap_getattr(tup, attnum, desc, &isnull);
			if (!isnull)
				namestrcpy(name, NameStr(*DatumGetName(d)));
		}
		attnum = get_object_attnum_namespace(classId);
		if (nspoid && attnum != InvalidAttrNumber)
		{
			d = heap_getattr(tup, attnum, desc, &isnull);
			if (!isnull)
				*nspoid = DatumGetObjectId(d);
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * The owner guard, at OAT_POST_ALTER: refuse a change of owner of the
 * extension, of its schema or of one of its members, unless a script of
 * es_ledger is running.  This covers REASSIGN OWNED BY, which fires no event
 * trigger; ALTER ... OWNER TO is refused earlier by es_guard_ddl.  The hook
 * runs after the catalog update but before the command counter moves on,
 * so the old owner is what the catalog snapshot sees and the new one what
 * SnapshotSelf sees.
 */
static void
GuardOwnerChange(Oid classId, Oid objectId)
{
	Oid			extoid;
	Oid			nspoid;
	Oid			extowner;
	Oid			before;
	Oid			after;
	bool		ours;

	if (classId != RelationRelationId && classId != ProcedureRelationId &&
		classId != ExtensionRelationId && classId != NamespaceRelationId &&
		classId != EventTriggerRelationId && classId != TypeRelationId)
		return;
	extoid = EsExtensionOid();
	if (!OidIsValid(extoid) || InOurScript(extoid))
		return;
	if (classId == ExtensionRelationId)
		ours = objectId == extoid;
	else if (classId == NamespaceRelationId)
	{
		GetExtensionSchemaOwner(extoid, &nspoid, &extowner);
		ours = objectId == nspoid;
	}
	else
		ours = getExtensionOfObject(classId, objectId) == extoid;
	if (!ours)
		return;

	ReadObjectRow(classId, objectId, NULL, &before, NULL, NULL);
	ReadObjectRow(classId, objectId, SnapshotSelf, &after, NULL, NULL);
	if (OidIsValid(before) && OidIsValid(after) && before != after)
	{
		ObjectAddress addr;

		ObjectAddressSet(addr, classId, objectId);
		RefuseObject(&addr, "change the owner of");
	}
}

/*
 * Is relation oid (classId pg_class) an index of one of extension extoid's
 * member tables?  Those indexes are named like the extension's and
 * reserved with its members' names, though they are not members.
 */
static bool
IndexOfMember(Oid classId, Oid oid, Oid extoid)
{
	Oid			table;

	if (classId != RelationRelationId || get_rel_relkind(oid) != RELKIND_INDEX)
		return false;
	table = IndexGetRelation(oid, true);
	return OidIsValid(table) &&
		getExtensionOfObject(RelationRelationId, table) == extoid;
}

/*
 * Is there a member of extension extoid, other than objectId, named name
 * in catalog classId (one of pg_proc, pg_class, pg_type), in any schema?
 * Searched through the name's catalog cache list.
 */
static bool
MemberNamed(int cacheId, Oid classId, const char *name, Oid objectId,
			Oid extoid)
{
	CatCList   *list;
	bool		found = false;
	int			i;

	list = SearchSysCacheList1(cacheId, CStringGetDatum(name));
	for (i = 0; i < list->n_members && !found; i++)
	{
		HeapTuple	tup = &list->members[i]->tuple;
		Oid			oid;

		if (classId == ProcedureRelationId)
			oid = ((Form_pg_proc) GETSTRUCT(tup))->oid;
		else if (classId == RelationRelationId)
			oid = ((Form_pg_class) GETSTRUCT(tup))->oid;
		else
			oid = ((Form_pg_type) GETSTRUCT(tup))->oid;
		found = oid != objectId &&
			(getExtensionOfObject(classId, oid) == extoid ||
			 IndexOfMember(classId, oid, extoid));
	}
	ReleaseSysCacheList(list);
	return found;
}

/*
 * The name reservation, at OAT_POST_CREATE and OAT_POST_ALTER of a function
 * (procedure, aggregate), a relation (table, view, materialized view,
 * sequence, index, foreign table, composite type) or a type: refuse, with
 * ES011, an object that is not es_ledger's own but bears, in any schema,
 * the name of one of its member functions (for a function) or of one of its
 * member relations, their indexes, or its types (for the others), unless a
 * script of es_ledger is running.  An index of a member table counts as
 * the extension's own (REINDEX CONCURRENTLY renames one to the old name).  Altering such an object is refused only when the command
 * gives it that name or moves it to another schema (RENAME, SET SCHEMA), so
 * that a look-alike made before the reservation can still be renamed away
 * or dropped.  The set of names is that of the extension's members as they
 * are, so functions and tables a later version adds are covered too.
 *
 * Why: es_ledger is called and read with unqualified names (es_apply(...),
 * FROM es_accounts) in a schema that is often public.  A function of the
 * same name with other argument types or a default argument, or one in a
 * schema earlier in search_path, captures such calls; a view of the same
 * name earlier in search_path is read instead of the table.
 *
 * The new row is seen through SnapshotSelf, the one before the command
 * through the catalog snapshot (see GuardOwnerChange).  A row type (its
 * relation is checked) and pg_upgrade's restore are not checked.
 */
static void
GuardReservedName(ObjectAccessType access, Oid classId, Oid objectId)
{
	Oid			extoid;
	NameData	name;
	Oid			nspoid;
	NameData	oldname;
	Oid			oldnspoid;
	bool		reserved;

	if (classId != ProcedureRelationId && classId != RelationRelationId &&
		classId != TypeRelationId)
		return;
	if (IsBinaryUpgrade)
		return;
	extoid = EsExtensionOid();
	if (!OidIsValid(extoid) || InOurScript(extoid))
		return;
	if (!ReadObjectRow(classId, objectId, SnapshotSelf, NULL, &name, &nspoid))
		return;
	if (classId == TypeRelationId && OidIsValid(get_typ_typrelid(objectId)))
		return;					/* a row type: its relation is checked */

	if (classId == ProcedureRelationId)
		reserved = MemberNamed(PROCNAMEARGSNSP, ProcedureRelationId,
							   NameStr(name), objectId, extoid);
	else
		reserved = MemberNamed(RELNAMENSP, RelationRelationId,
							   NameStr(name), objectId, extoid) ||
			MemberNamed(TYPENAMENSP, TypeRelationId,
						NameStr(name), objectId, extoid);
	if (!reserved)
		return;
	if (getExtensionOfObject(classId, objectId) == extoid ||
		IndexOfMember(classId, objectId, extoid) ||
		(classId == TypeRelationId && TypeIsOurs(objectId, extoid)))
		return;
	if (access == OAT_POST_ALTER &&
		ReadObjectRow(classId, objectId, NULL, NULL, &oldname, &oldnspoid) &&
		strcmp(NameStr(oldname), NameStr(name)) == 0 && oldnspoid == nspoid)
		return;					/* neither renamed nor moved */

	if (classId == ProcedureRelationId)
		ereport(ERROR,
				(errcode(ERRCODE_ES_LOG_IMMUTABLE),
				 errmsg("the name %s is reserved by extension es_ledger",
						quote_identifier(NameStr(name))),
				 errdetail("Calls of es_ledger's function %s name no schema, so another function of that name in any schema could capture them (through other argument types, a default argument or a schema earlier in search_path).",
						   quote_identifier(NameStr(name))),
				 errhint("Choose another name: es_ledger reserves the names of its functions, tables, sequences and types in every schema of the database.")));
	else
		ereport(ERROR,
				(errcode(ERRCODE_ES_LOG_IMMUTABLE),
				 errmsg("the name %s is reserved by extension es_ledger",
						quote_identifier(NameStr(name))),
				 errdetail("Queries name es_ledger's %s without a schema; a relation or type of that name in a schema earlier in search_path would be read in its place.",
						   quote_identifier(NameStr(name))),
				 errhint("Choose another name: es_ledger reserves the names of its functions, tables, sequences and types in every schema of the database.")));
}

/*
 * object_access_hook: the previous hook, then the drop guard, the owner
 * guard and the name reservation.
 */
static void
EsGuardObjectAccess(ObjectAccessType access, Oid classId, Oid objectId,
					int subId, void *arg)
{
	if (PrevObjectAccessHook)
		PrevObjectAccessHook(access, classId, objectId, subId, arg);
	if (subId != 0)
		return;
	if (access == OAT_DROP && classId == RelationRelationId)
		GuardDropLog(objectId);
	else if (access == OAT_POST_CREATE)
		GuardReservedName(access, classId, objectId);
	else if (access == OAT_POST_ALTER)
	{
		GuardOwnerChange(classId, objectId);
		GuardReservedName(access, classId, objectId);
	}
}
