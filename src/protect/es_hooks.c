/*-------------------------------------------------------------------------
 *
 * es_hooks.c
 *	  The object-access hooks: the checks that must see every road to the
 *	  catalogs, whatever command or cascade leads there and whether or not
 *	  an event trigger fires: the drop guard, the owner guard and the name
 *	  reservation.
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
 * Owner guard.  At OAT_POST_ALTER the hook refuses a change of owner of the
 * extension, of its schema or of one of its members (GuardOwnerChange);
 * this catches REASSIGN OWNED BY, which fires no event trigger.
 *
 * The hooks hold whether or not the event triggers of es_ddl.c are
 * enabled, in every session that has loaded the library.  Scripts of
 * es_ledger itself are exempt.
 *
 * Locks: catalog look-ups only (AccessShareLock on the catalog read); the
 * drop guard counts the blocks of a relation that the drop already holds
 * AccessExclusiveLock on.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/objectaccess.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_event_trigger.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "protect.h"

/* es_ledger.allow_drop: may a ledger holding events be dropped? */
static bool EsAllowDrop = false;

/* The object_access_hook we chain to. */
static object_access_hook_type PrevObjectAccessHook = NULL;

/* The hint of the drop guard's refusal. */
#define HINT_DROP \
	"If the ledger really is to be destroyed, a superuser must first run SET es_ledger.allow_drop = on."

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
		!EsCatalogRelIsEsLog(relid))
		return;
	extoid = EsCatalogExtensionOid();
	if (!EsCatalogRelIsOurs(relid, extoid) || EsCatalogInOurScript(extoid))
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
	extoid = EsCatalogExtensionOid();
	if (!OidIsValid(extoid) || EsCatalogInOurScript(extoid))
		return;
	if (classId == ExtensionRelationId)
		ours = objectId == extoid;
	else if (classId == NamespaceRelationId)
	{
		EsCatalogExtensionSchemaOwner(extoid, &nspoid, &extowner);
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
		EsCatalogRefuseObject(&addr, "change the owner of");
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
	extoid = EsCatalogExtensionOid();
	if (!OidIsValid(extoid) || EsCatalogInOurScript(extoid))
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
		(classId == TypeRelationId && EsCatalogTypeIsOurs(objectId, extoid)))
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
EsHooksObjectAccess(ObjectAccessType access, Oid classId, Oid objectId,
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

/*
 * Install the object_access_hook and the GUC es_ledger.allow_drop; called
 * once from _PG_init.  A value a superuser SET before the library was
 * loaded (a placeholder) is taken over by DefineCustomBoolVariable; one a
 * non-superuser SET is refused then.
 */
void
EsHooksInit(void)
{
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

	PrevObjectAccessHook = object_access_hook;
	object_access_hook = EsHooksObjectAccess;
}
