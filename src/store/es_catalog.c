/*-------------------------------------------------------------------------
 *
 * es_catalog.c
 *	  The extension's own objects as the catalogs know them: is a relation
 *	  or a type es_ledger's, is a table an es_log table, is a script of
 *	  es_ledger running; and the ES011 refusal of a change to one of its
 *	  objects.  Shared by the DDL guard (es_ddl.c) and the object-access
 *	  hooks (es_hooks.c).
 *
 * Objects are recognised by OID, as members of the extension
 * (getExtensionOfObject), never by name, so a look-alike in another schema
 * is never taken for ours.  The extension and the es_log access method are
 * looked up afresh at every call: either may be created or dropped in the
 * session.
 *
 * Locks: catalog look-ups only, under AccessShareLock on the catalog read
 * (pg_extension) or through the system caches; no lock on the objects
 * themselves.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_subscription_rel.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "store.h"

/* The OID of the es_log access method, or InvalidOid if not installed. */
Oid
EsCatalogLogAmOid(void)
{
	return get_table_am_oid("es_log", true);
}

/* The OID of the es_ledger extension, or InvalidOid if not installed. */
Oid
EsCatalogExtensionOid(void)
{
	return get_extension_oid("es_ledger", true);
}

/* Is a script of es_ledger itself (CREATE or ALTER EXTENSION) running? */
bool
EsCatalogInOurScript(Oid extoid)
{
	return creating_extension && OidIsValid(extoid) &&
		CurrentExtensionObject == extoid;
}

/*
 * The schema and owner of extension extoid (get_extension_schema is not
 * exported in PostgreSQL 15).  InvalidOid for both if it does not exist.
 */
void
EsCatalogExtensionSchemaOwner(Oid extoid, Oid *nspoid, Oid *owner)
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
bool
EsCatalogRelIsEsLog(Oid relid)
{
	HeapTuple	tup;
	Oid			relam;
	Oid			amoid = EsCatalogLogAmOid();

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
bool
EsCatalogRelIsOurs(Oid relid, Oid extoid)
{
	return OidIsValid(relid) && OidIsValid(extoid) &&
		getExtensionOfObject(RelationRelationId, relid) == extoid;
}

/*
 * Is typoid a type of extoid: a member type, the row type of a member
 * relation, or the array type of one of those?
 */
bool
EsCatalogTypeIsOurs(Oid typoid, Oid extoid)
{
	Oid			elem;

	if (!OidIsValid(typoid) || !OidIsValid(extoid))
		return false;
	if (getExtensionOfObject(TypeRelationId, typoid) == extoid)
		return true;
	if (EsCatalogRelIsOurs(get_typ_typrelid(typoid), extoid))
		return true;
	elem = get_element_type(typoid);
	return OidIsValid(elem) && elem != typoid && EsCatalogTypeIsOurs(elem, extoid);
}

/*
 * Refuse a change to an object of es_ledger (not a relation: es_ddl.c's
 * RefuseRel names those) with ES011.
 */
void
EsCatalogRefuseObject(const ObjectAddress *addr, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_ES_LOG_IMMUTABLE),
			 errmsg("cannot %s %s", what, getObjectDescription(addr, false)),
			 errdetail("%s", ES_DETAIL_SHAPE),
			 errhint("%s", ES_HINT_SCRIPTS)));
}

/* The owner of a relation (its pg_class row; elog if it has none). */
Oid
EsCatalogRelOwner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * The OID of a subscription of this database that replicates into the
 * relation (pg_subscription_rel), or InvalidOid.  The log of a logical
 * subscriber is the publisher's: nothing but the subscription's workers may
 * append to it (EsWriteBegin refuses es_apply there).  One index scan of a
 * small catalog, under AccessShareLock.
 */
Oid
EsCatalogSubscriptionOf(Oid relid)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			subid = InvalidOid;

	rel = table_open(SubscriptionRelRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_subscription_rel_srrelid,
				BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, SubscriptionRelSrrelidSrsubidIndexId, true,
							  NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
		subid = ((Form_pg_subscription_rel) GETSTRUCT(tup))->srsubid;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return subid;
}
