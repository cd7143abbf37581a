/*-------------------------------------------------------------------------
 *
 * es_row.c
 *	  The row codec: the one place that knows the extension's relations and
 *	  the shape of its tables, and converts rows of es_events, es_accounts,
 *	  es_commands, es_transfers and es_snapshots to and from the C structs
 *	  (EsEvent, EsAccountState, EsTransfer, EsSnapshot).  es_snapshots begins
 *	  with the columns of es_accounts, so the state codec writes both.
 *
 * Everything that reads or writes those tables (the writer, the log scans
 * of replay, and later verify) goes through here, so a column is named,
 * numbered and typed in exactly two places: the install script and the
 * tables below.  EsRowCheckShape compares a table's descriptor with them
 * and refuses a mismatch (a table altered behind our back, or a library of
 * another version than the installed SQL objects) with SQLSTATE 55000
 * before a single value is read by number, so a mismatch is an error and
 * never garbage.
 *
 * Relations are found by OID, never through search_path: the extension's
 * OID and schema OID come from pg_extension, each relation is looked up by
 * name in that schema only, and it must be a member of the extension (an
 * index: an index of the member table it belongs to, marked DEPENDS ON
 * EXTENSION es_ledger by the scripts) of the expected kind.
 * Renaming the schema, or planting a look-alike in another schema, changes
 * nothing.  The OIDs are cached per backend and forgotten on any relcache
 * invalidation of one of them (DROP EXTENSION, a rename, ...).
 *
 * es_transfers and its indexes came with 0.3.0: in a ledger still at 0.1.0
 * or 0.2.0 they are left unresolved (InvalidOid), EsRowHasTransfers says
 * so, and the callers do without (EsRowRequireTransfers refuses what needs
 * them with 55000).
 *
 * Decoding is defensive: a NULL where the log promises a value, a hash of
 * the wrong length or a checksum out of range is reported as ES012 (the
 * log contradicts itself), not read as zeros.
 *
 * Locks: none taken here, except by EsRowOpenTable (the caller's mode).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "store.h"

/* A column of one of our tables. */
typedef struct EsColumnDef
{
	const char *name;
	Oid			type;
} EsColumnDef;

/* The columns of es_events, in table order (EsEventAttr). */
static const EsColumnDef EsEventColumns[ES_EV_NATTS] = {
	{"seq", INT8OID}, {"account_id", INT8OID}, {"version", INT8OID},
	{"type", TEXTOID}, {"amount", INT8OID}, {"data", JSONBOID},
	{"command_id", TEXTOID}, {"recorded_at", TIMESTAMPTZOID},
	{"effective_at", TIMESTAMPTZOID}, {"checksum", INT8OID},
	{"hash", BYTEAOID}, {"format", INT2OID}, {"tx", XID8OID},
};

/* ... of es_accounts (EsAccountAttr) ... */
static const EsColumnDef EsAccountColumns[ES_ACC_NATTS] = {
	{"account_id", INT8OID}, {"account", TEXTOID}, {"currency", TEXTOID},
	{"status", TEXTOID}, {"balance", INT8OID}, {"pending_out", INT8OID},
	{"pending_in", INT8OID}, {"available", INT8OID},
	{"overdraft_limit", INT8OID}, {"max_balance", INT8OID},
	{"version", INT8OID}, {"last_seq", INT8OID},
	{"opened_at", TIMESTAMPTZOID}, {"updated_at", TIMESTAMPTZOID},
	{"last_hash", BYTEAOID},
};

/* ... and of es_commands (EsCommandAttr). */
static const EsColumnDef EsCommandColumns[ES_CMD_NATTS] = {
	{"command_id", TEXTOID}, {"command", JSONBOID}, {"seq", INT8OID},
};

/* ... and of es_transfers (EsTransferAttr). */
static const EsColumnDef EsTransferColumns[ES_TR_NATTS] = {
	{"transfer_id", TEXTOID}, {"from_account", TEXTOID},
	{"to_account", TEXTOID}, {"amount", INT8OID}, {"posted_amount", INT8OID},
	{"status", TEXTOID}, {"created_at", TIMESTAMPTZOID},
	{"expires_at", TIMESTAMPTZOID}, {"updated_at", TIMESTAMPTZOID},
	{"seq", INT8OID}, {"from_account_id", INT8OID},
	{"to_account_id", INT8OID}, {"command_id", TEXTOID},
};

/*
 * ... and of es_snapshots (EsSnapshotAttr): those of es_accounts, in the
 * same order, then its own.  Keep the first ES_ACC_NATTS equal to
 * EsAccountColumns: the state codec writes both tables.
 */
static const EsColumnDef EsSnapshotColumns[ES_SNAP_NATTS] = {
	{"account_id", INT8OID}, {"account", TEXTOID}, {"currency", TEXTOID},
	{"status", TEXTOID}, {"balance", INT8OID}, {"pending_out", INT8OID},
	{"pending_in", INT8OID}, {"available", INT8OID},
	{"overdraft_limit", INT8OID}, {"max_balance", INT8OID},
	{"version", INT8OID}, {"last_seq", INT8OID},
	{"opened_at", TIMESTAMPTZOID}, {"updated_at", TIMESTAMPTZOID},
	{"last_hash", BYTEAOID},
	{"max_recorded_at", TIMESTAMPTZOID}, {"max_effective_at", TIMESTAMPTZOID},
	{"format", INT2OID}, {"magic", INT4OID}, {"checksum", BYTEAOID},
};

/*
 * A relation of the extension: its name, kind and, for an index, table;
 * since: the minor version whose script creates it (a ledger not yet
 * updated lacks it).
 */
typedef struct EsRelDef
{
	const char *name;
	char		relkind;
	EsRel		table;			/* the table an index belongs to */
	const EsColumnDef *columns; /* tables only */
	int			ncolumns;
	int			since;			/* the minor version of 0.x.0 whose script
								 * creates it (0: every version) */
} EsRelDef;

static const EsRelDef EsRelDefs[ES_REL_COUNT] = {
	[ES_REL_EVENTS] = {"es_events", RELKIND_RELATION, ES_REL_EVENTS,
	EsEventColumns, ES_EV_NATTS},
	[ES_REL_ACCOUNTS] = {"es_accounts", RELKIND_RELATION, ES_REL_ACCOUNTS,
	EsAccountColumns, ES_ACC_NATTS},
	[ES_REL_COMMANDS] = {"es_commands", RELKIND_RELATION, ES_REL_COMMANDS,
	EsCommandColumns, ES_CMD_NATTS},
	[ES_REL_TRANSFERS] = {"es_transfers", RELKIND_RELATION, ES_REL_TRANSFERS,
	EsTransferColumns, ES_TR_NATTS, 3},
	[ES_REL_SNAPSHOTS] = {"es_snapshots", RELKIND_RELATION, ES_REL_SNAPSHOTS,
	EsSnapshotColumns, ES_SNAP_NATTS, 3},
	[ES_REL_EVENTS_SEQ_IDX] = {"es_events_pkey", RELKIND_INDEX, ES_REL_EVENTS},
	[ES_REL_EVENTS_VERSION_IDX] = {"es_events_account_version_key",
	RELKIND_INDEX, ES_REL_EVENTS},
	[ES_REL_EVENTS_OPENED_IDX] = {"es_events_opened_idx", RELKIND_INDEX,
	ES_REL_EVENTS},
	[ES_REL_EVENTS_COMMAND_ID_IDX] = {"es_events_command_id_idx", RELKIND_INDEX,
	ES_REL_EVENTS},
	[ES_REL_ACCOUNTS_ID_IDX] = {"es_accounts_pkey", RELKIND_INDEX,
	ES_REL_ACCOUNTS},
	[ES_REL_ACCOUNTS_NAME_IDX] = {"es_accounts_account_key", RELKIND_INDEX,
	ES_REL_ACCOUNTS},
	[ES_REL_COMMANDS_ID_IDX] = {"es_commands_pkey", RELKIND_INDEX,
	ES_REL_COMMANDS},
	[ES_REL_EVENTS_TX_IDX] = {"es_events_tx_seq_idx", RELKIND_INDEX,
	ES_REL_EVENTS, NULL, 0, 3},
	[ES_REL_TRANSFERS_SEQ_IDX] = {"es_transfers_pkey", RELKIND_INDEX,
	ES_REL_TRANSFERS, NULL, 0, 3},
	[ES_REL_TRANSFERS_EXPIRES_IDX] = {"es_transfers_expires_idx", RELKIND_INDEX,
	ES_REL_TRANSFERS, NULL, 0, 3},
	[ES_REL_TRANSFERS_FROM_IDX] = {"es_transfers_from_pending_idx",
	RELKIND_INDEX, ES_REL_TRANSFERS, NULL, 0, 3},
	[ES_REL_TRANSFERS_TO_IDX] = {"es_transfers_to_pending_idx",
	RELKIND_INDEX, ES_REL_TRANSFERS, NULL, 0, 3},
	[ES_REL_SNAPSHOTS_IDX] = {"es_snapshots_pkey", RELKIND_INDEX,
	ES_REL_SNAPSHOTS, NULL, 0, 3},
	[ES_REL_COMMANDS_REVERSES_IDX] = {"es_commands_reverses_idx",
	RELKIND_INDEX, ES_REL_COMMANDS, NULL, 0, 4},
	[ES_REL_EVENTS_SEQ] = {"es_events_seq_seq", RELKIND_SEQUENCE,
	ES_REL_EVENTS_SEQ},
	[ES_REL_ACCOUNTS_SEQ] = {"es_accounts_account_id_seq", RELKIND_SEQUENCE,
	ES_REL_ACCOUNTS_SEQ},
};

/* The resolved OIDs, valid while EsRelsValid. */
static Oid	EsRelOids[ES_REL_COUNT];
static bool EsRelsValid = false;
static bool EsRelCallbackRegistered = false;

/* Relcache invalidation: forget the OIDs if one of ours (or all) changed. */
static void
EsRowRelcacheCallback(Datum arg, Oid relid)
{
	if (!EsRelsValid)
		return;
	if (!OidIsValid(relid))
	{
		EsRelsValid = false;
		return;
	}
	for (int i = 0; i < ES_REL_COUNT; i++)
		if (EsRelOids[i] == relid)
		{
			EsRelsValid = false;
			return;
		}
}

/* Report a relation of the extension that is missing or not ours. */
static void
pg_attribute_noreturn()
NotOurs(const char *name, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("es_ledger relation \"%s\" is not usable", name),
			 errdetail("%s", why),
			 errhint("Is the extension es_ledger installed in this database?")));
	pg_unreachable();
}

/*
 * The schema of extension extoid, from its pg_extension row (PostgreSQL 15
 * does not export get_extension_schema), and the minor version of its
 * installed 0.x.0 script (*minor: 1 for 0.1.0, 2 for 0.2.0, 3 for 0.3.0,
 * 4 for 0.4.0; a version this library cannot read counts as the newest it
 * knows).  0.1.0's script did not mark the extension's indexes DEPENDS ON
 * EXTENSION (such a ledger is read until ALTER EXTENSION es_ledger UPDATE);
 * relations a later script creates are missing before the update.
 */
static Oid
ExtensionSchema(Oid extoid, int *minor)
{
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			nspoid = InvalidOid;

	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	*minor = ES_NEWEST_MINOR;
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		version;

		nspoid = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
		version = heap_getattr(tup, Anum_pg_extension_extversion,
							   RelationGetDescr(rel), &isnull);
		if (!isnull)
		{
			char	   *v = TextDatumGetCString(version);
			int			m;
			char		rest;

			if (sscanf(v, "0.%d.0%c", &m, &rest) == 1 &&
				m >= 1 && m <= ES_NEWEST_MINOR)
				*minor = m;
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nspoid;
}

/* Look every relation of the extension up by OID, and remember them. */
static void
ResolveRels(void)
{
	Oid			extoid = get_extension_oid("es_ledger", true);
	Oid			nspoid;
	int			minor;
	bool		marks_indexes;

	if (!EsRelCallbackRegistered)
	{
		CacheRegisterRelcacheCallback(EsRowRelcacheCallback, (Datum) 0);
		EsRelCallbackRegistered = true;
	}
	if (!OidIsValid(extoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension es_ledger is not installed in this database"),
				 errhint("Run CREATE EXTENSION es_ledger.")));
	nspoid = ExtensionSchema(extoid, &minor);
	marks_indexes = minor >= 2;

	for (int i = 0; i < ES_REL_COUNT; i++)
	{
		const EsRelDef *def = &EsRelDefs[i];
		Oid			relid;

		/* Not there before the update that creates it: InvalidOid. */
		if (def->since > minor)
		{
			EsRelOids[i] = InvalidOid;
			continue;
		}
		relid = get_relname_relid(def->name, nspoid);

		if (!OidIsValid(relid))
			NotOurs(def->name, "The extension's schema holds no relation of that name.");
		if (get_rel_relkind(relid) != def->relkind)
			NotOurs(def->name, "The relation of that name is not of the kind the extension created.");
		if (def->relkind == RELKIND_INDEX)
		{
			/* Tables are resolved first (EsRel order). */
			if (IndexGetRelation(relid, false) != EsRelOids[def->table])
				NotOurs(def->name, "The index does not belong to the extension's table.");
			/* The scripts mark the extension's own indexes. */
			if (marks_indexes &&
				!list_member_oid(getAutoExtensionsOfObject(RelationRelationId, relid),
								 extoid))
				NotOurs(def->name, "The index is not marked as depending on the extension; it is not the one the extension created.");
		}
		else if (getExtensionOfObject(RelationRelationId, relid) != extoid)
			NotOurs(def->name, "The relation is not a member of the extension.");
		EsRelOids[i] = relid;
	}
	EsRelsValid = true;
}

/*
 * The OID of one of the extension's relations (see the file header);
 * InvalidOid for a relation the installed version's scripts have not
 * created yet (EsRelDef.since: es_events_tx_seq_idx before 0.3.0).
 */
Oid
EsRowRelid(EsRel rel)
{
	/* A relation missing before ALTER EXTENSION UPDATE may exist now. */
	if (!EsRelsValid ||
		(!OidIsValid(EsRelOids[rel]) && EsRelDefs[rel].since > 0))
		ResolveRels();
	return EsRelOids[rel];
}

/*
 * Does the ledger have es_transfers?  A ledger installed as 0.1.0 or 0.2.0
 * has none until ALTER EXTENSION es_ledger UPDATE; es_apply then writes no
 * transfer rows and refuses two-phase transfers (EsRowRequireTransfers).
 */
bool
EsRowHasTransfers(void)
{
	return OidIsValid(EsRowRelid(ES_REL_TRANSFERS));
}

/* Refuse with 55000 what needs es_transfers in a ledger without it. */
void
EsRowRequireTransfers(void)
{
	if (!EsRowHasTransfers())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this ledger has no es_transfers"),
				 errdetail("Two-phase transfers came with es_ledger 0.3.0; the extension installed is older."),
				 errhint("Run ALTER EXTENSION es_ledger UPDATE.")));
}

/*
 * Whether one of the extension's relations exists: those 0.3.0 added are
 * missing from a ledger installed at an older version and not yet updated.
 */
bool
EsRowRelExists(EsRel rel)
{
	return OidIsValid(EsRowRelid(rel));
}

/* The type of column attno (1-based) of table rel, as the codec knows it. */
Oid
EsRowColumnType(EsRel rel, int attno)
{
	const EsRelDef *def = &EsRelDefs[rel];

	if (def->columns == NULL || attno < 1 || attno > def->ncolumns)
		elog(ERROR, "es_ledger relation \"%s\" has no column %d", def->name,
			 attno);
	return def->columns[attno - 1].type;
}

/* The name of one of the extension's relations, for messages. */
const char *
EsRowRelName(EsRel rel)
{
	return EsRelDefs[rel].name;
}

/* Open one of the extension's tables and check its shape. */
Relation
EsRowOpenTable(EsRel rel, LOCKMODE lockmode)
{
	Relation	r;

	if (!EsRowRelExists(rel))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("es_ledger relation \"%s\" does not exist yet",
						EsRelDefs[rel].name),
				 errhint("Run ALTER EXTENSION es_ledger UPDATE.")));
	r = table_open(EsRowRelid(rel), lockmode);

	EsRowCheckShape(RelationGetDescr(r), rel, EsRelDefs[rel].name);
	return r;
}

/*
 * Refuse a descriptor that is not the shape of table rel: the same number
 * of columns, each with the name and type the codec expects, in order.
 * relname names the relation for the message.
 */
void
EsRowCheckShape(TupleDesc desc, EsRel rel, const char *relname)
{
	const EsRelDef *def = &EsRelDefs[rel];

	if (def->columns == NULL)
		elog(ERROR, "es_ledger relation \"%s\" is not a table", def->name);
	if (desc->natts != def->ncolumns)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("\"%s\" does not have the shape of %s", relname,
						def->name),
				 errdetail("It has %d columns; this version of es_ledger expects %d.",
						   desc->natts, def->ncolumns),
				 errhint("Install the es_ledger library that matches the extension's version, or run ALTER EXTENSION es_ledger UPDATE.")));
	for (int i = 0; i < def->ncolumns; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const EsColumnDef *col = &def->columns[i];

		if (att->attisdropped || att->atttypid != col->type ||
			strcmp(NameStr(att->attname), col->name) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("\"%s\" does not have the shape of %s", relname,
							def->name),
					 errdetail("Column %d is \"%s\" of type %s; this version of es_ledger expects \"%s\" of type %s.",
							   i + 1,
							   att->attisdropped ? "(dropped)" : NameStr(att->attname),
							   att->attisdropped ? "none" : format_type_be(att->atttypid),
							   col->name, format_type_be(col->type)),
					 errhint("Install the es_ledger library that matches the extension's version, or run ALTER EXTENSION es_ledger UPDATE.")));
	}
}

/* ------------------------------------------------------------------ hashes */

/* A bytea Datum holding a hash, palloc'd. */
static Datum
HashGetDatum(const uint8 *hash)
{
	bytea	   *b = palloc(VARHDRSZ + ES_HASH_LEN);

	SET_VARSIZE(b, VARHDRSZ + ES_HASH_LEN);
	memcpy(VARDATA(b), hash, ES_HASH_LEN);
	return PointerGetDatum(b);
}

/* Copy a bytea Datum holding a hash; false if it is not ES_HASH_LEN long. */
static bool
HashFromDatum(Datum d, uint8 *out)
{
	bytea	   *b = DatumGetByteaPP(d);

	if (VARSIZE_ANY_EXHDR(b) != ES_HASH_LEN)
		return false;
	memcpy(out, VARDATA_ANY(b), ES_HASH_LEN);
	return true;
}

/* Report a stored row that breaks what the log promises, with ES012. */
static void
pg_attribute_noreturn()
BadRow(const char *table, const char *key, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_ES_INTEGRITY),
			 errmsg("%s row %s is damaged: %s", table, key, why),
			 errdetail("The row was changed behind es_apply's back.")));
	pg_unreachable();
}

/* ----------------------------------------------------------------- events */

/* An es_events row of a sealed event, as Datums in table order. */
void
EsRowEventToValues(const EsEvent *ev, Datum *v, bool *n)
{
	memset(n, 0, sizeof(bool) * ES_EV_NATTS);
	v[ES_EV_ATT_SEQ - 1] = Int64GetDatum(ev->seq);
	v[ES_EV_ATT_ACCOUNT_ID - 1] = Int64GetDatum(ev->account_id);
	v[ES_EV_ATT_VERSION - 1] = Int64GetDatum(ev->version);
	v[ES_EV_ATT_TYPE - 1] = CStringGetTextDatum(EsEventTypeName(ev->type));
	v[ES_EV_ATT_AMOUNT - 1] = Int64GetDatum(ev->amount);
	v[ES_EV_ATT_DATA - 1] = JsonbPGetDatum(ev->data);
	if (ev->command_id)
		v[ES_EV_ATT_COMMAND_ID - 1] = CStringGetTextDatum(ev->command_id);
	else
		n[ES_EV_ATT_COMMAND_ID - 1] = true;
	v[ES_EV_ATT_RECORDED_AT - 1] = TimestampTzGetDatum(ev->recorded_at);
	v[ES_EV_ATT_EFFECTIVE_AT - 1] = TimestampTzGetDatum(ev->effective_at);
	v[ES_EV_ATT_CHECKSUM - 1] = Int64GetDatum((int64) ev->checksum);
	v[ES_EV_ATT_HASH - 1] = HashGetDatum(ev->hash);
	v[ES_EV_ATT_FORMAT - 1] = Int16GetDatum(ES_EVENT_FORMAT_VERSION);
	v[ES_EV_ATT_TX - 1] = FullTransactionIdGetDatum(GetTopFullTransactionId());
}

/*
 * Decode an event from an es_events row (Datums in table order) into ev,
 * values copied or detoasted into the current memory context.  Returns
 * NULL, or why the row breaks the log's promises (a NULL where a value is
 * due, data that is not an object, a checksum out of range, a hash that is
 * not 32 bytes, a format this library cannot encode) without raising, so a
 * verifier can report it and go on.  An unknown type decodes as
 * ES_EV_INVALID, which the fold refuses.
 */
const char *
EsRowEventDecode(const Datum *v, const bool *n, EsEvent *ev)
{
	int64		checksum;

	memset(ev, 0, sizeof(*ev));
	if (!n[ES_EV_ATT_SEQ - 1])
		ev->seq = DatumGetInt64(v[ES_EV_ATT_SEQ - 1]);
	if (!n[ES_EV_ATT_ACCOUNT_ID - 1])
		ev->account_id = DatumGetInt64(v[ES_EV_ATT_ACCOUNT_ID - 1]);
	for (int i = 0; i < ES_EV_NATTS; i++)
		if (n[i] && i + 1 != ES_EV_ATT_COMMAND_ID)
			return psprintf("column \"%s\" is null", EsEventColumns[i].name);
	ev->version = DatumGetInt64(v[ES_EV_ATT_VERSION - 1]);
	ev->type = EsEventTypeFromName(TextDatumGetCString(v[ES_EV_ATT_TYPE - 1]));
	ev->amount = DatumGetInt64(v[ES_EV_ATT_AMOUNT - 1]);
	ev->data = DatumGetJsonbP(v[ES_EV_ATT_DATA - 1]);
	if (!JB_ROOT_IS_OBJECT(ev->data) || JB_ROOT_IS_SCALAR(ev->data))
		return "data is not a JSON object";
	ev->command_id = n[ES_EV_ATT_COMMAND_ID - 1] ? NULL :
		TextDatumGetCString(v[ES_EV_ATT_COMMAND_ID - 1]);
	ev->recorded_at = DatumGetTimestampTz(v[ES_EV_ATT_RECORDED_AT - 1]);
	ev->effective_at = DatumGetTimestampTz(v[ES_EV_ATT_EFFECTIVE_AT - 1]);
	checksum = DatumGetInt64(v[ES_EV_ATT_CHECKSUM - 1]);
	if (checksum < 0 || checksum > (int64) PG_UINT32_MAX)
		return "its checksum is not a 32-bit value";
	ev->checksum = (uint32) checksum;
	if (!HashFromDatum(v[ES_EV_ATT_HASH - 1], ev->hash))
		return "its hash is not 32 bytes long";
	if (DatumGetInt16(v[ES_EV_ATT_FORMAT - 1]) != ES_EVENT_FORMAT_VERSION)
		return psprintf("its format version %d is not one this library knows",
						(int) DatumGetInt16(v[ES_EV_ATT_FORMAT - 1]));
	return NULL;
}

/*
 * An event from an es_events row (Datums in table order), as
 * EsRowEventDecode, raising ES012 for a row that breaks the log's promises.
 */
void
EsRowEventFromValues(const Datum *v, const bool *n, EsEvent *ev)
{
	const char *problem = EsRowEventDecode(v, n, ev);

	if (problem)
		BadRow("es_events",
			   n[ES_EV_ATT_SEQ - 1] ? "with a null seq" :
			   psprintf("seq " INT64_FORMAT, ev->seq),
			   problem);
}

/*
 * Decode from an es_events row in slot only what the fold reads (seq,
 * account_id, version, type, amount, recorded_at, effective_at, hash, and
 * the data of the types whose fold reads it, EsFoldNeedsData), deforming
 * the columns up to hash only: no copy of the type's text, command_id
 * NULL, checksum 0, the format not looked at.  For readers that fold many
 * events and trust the log's encoding to es_verify (es_accounts_at).
 * Returns NULL or why the row cannot be folded, as EsRowEventDecode.
 */
const char *
EsRowEventDecodeForFold(TupleTableSlot *slot, EsEvent *ev)
{
	Datum	   *v;
	bool	   *n;
	text	   *type;

	slot_getsomeattrs(slot, ES_EV_ATT_HASH);
	v = slot->tts_values;
	n = slot->tts_isnull;
	memset(ev, 0, sizeof(*ev));
	for (int i = 0; i < ES_EV_ATT_HASH; i++)
		if (n[i] && i + 1 != ES_EV_ATT_COMMAND_ID)
			return psprintf("column \"%s\" is null", EsEventColumns[i].name);
	ev->seq = DatumGetInt64(v[ES_EV_ATT_SEQ - 1]);
	ev->account_id = DatumGetInt64(v[ES_EV_ATT_ACCOUNT_ID - 1]);
	ev->version = DatumGetInt64(v[ES_EV_ATT_VERSION - 1]);
	type = (text *) DatumGetPointer(v[ES_EV_ATT_TYPE - 1]);
	ev->type = ES_EV_INVALID;
	if (!VARATT_IS_EXTENDED(type) || VARATT_IS_SHORT(type))
	{
		/* Compare the text in place: no copy per row. */
		const char *p = VARDATA_ANY(type);
		int			len = VARSIZE_ANY_EXHDR(type);

		static int	lens[ES_EV_LAST + 1];

		for (int t = ES_EV_ACCOUNT_OPENED; t <= ES_EV_LAST; t++)
		{
			const char *name = EsEventTypeName((EsEventType) t);

			if (lens[t] == 0)
				lens[t] = strlen(name);
			if (lens[t] == len && memcmp(name, p, len) == 0)
			{
				ev->type = (EsEventType) t;
				break;
			}
		}
	}
	else
		ev->type = EsEventTypeFromName(TextDatumGetCString(v[ES_EV_ATT_TYPE - 1]));
	ev->amount = DatumGetInt64(v[ES_EV_ATT_AMOUNT - 1]);
	if (EsFoldNeedsData(ev->type))
	{
		ev->data = DatumGetJsonbP(v[ES_EV_ATT_DATA - 1]);
		if (!JB_ROOT_IS_OBJECT(ev->data) || JB_ROOT_IS_SCALAR(ev->data))
			return "data is not a JSON object";
	}
	ev->recorded_at = DatumGetTimestampTz(v[ES_EV_ATT_RECORDED_AT - 1]);
	ev->effective_at = DatumGetTimestampTz(v[ES_EV_ATT_EFFECTIVE_AT - 1]);
	if (!HashFromDatum(v[ES_EV_ATT_HASH - 1], ev->hash))
		return "its hash is not 32 bytes long";
	return NULL;
}

/* --------------------------------------------------------------- accounts */

/* An es_accounts row of a state, as Datums in table order. */
void
EsRowStateToValues(const EsAccountState *state, Datum *v, bool *n)
{
	memset(n, 0, sizeof(bool) * ES_ACC_NATTS);
	v[ES_ACC_ATT_ACCOUNT_ID - 1] = Int64GetDatum(state->account_id);
	v[ES_ACC_ATT_ACCOUNT - 1] = CStringGetTextDatum(state->account);
	v[ES_ACC_ATT_CURRENCY - 1] = CStringGetTextDatum(state->currency);
	v[ES_ACC_ATT_STATUS - 1] = CStringGetTextDatum(EsFoldStatusName(state->status));
	v[ES_ACC_ATT_BALANCE - 1] = Int64GetDatum(state->balance);
	v[ES_ACC_ATT_PENDING_OUT - 1] = Int64GetDatum(state->pending_out);
	v[ES_ACC_ATT_PENDING_IN - 1] = Int64GetDatum(state->pending_in);
	v[ES_ACC_ATT_AVAILABLE - 1] = Int64GetDatum(state->available);
	v[ES_ACC_ATT_OVERDRAFT_LIMIT - 1] = Int64GetDatum(state->overdraft_limit);
	v[ES_ACC_ATT_MAX_BALANCE - 1] = Int64GetDatum(state->max_balance);
	n[ES_ACC_ATT_MAX_BALANCE - 1] = !state->has_max_balance;
	v[ES_ACC_ATT_VERSION - 1] = Int64GetDatum(state->version);
	v[ES_ACC_ATT_LAST_SEQ - 1] = Int64GetDatum(state->last_seq);
	v[ES_ACC_ATT_OPENED_AT - 1] = TimestampTzGetDatum(state->opened_at);
	v[ES_ACC_ATT_UPDATED_AT - 1] = TimestampTzGetDatum(state->updated_at);
	v[ES_ACC_ATT_LAST_HASH - 1] = HashGetDatum(state->last_hash);
}

/*
 * Decode a state from an es_accounts row (Datums in table order), texts
 * copied into the current memory context.  Returns NULL, or why the row is
 * damaged (a NULL where a value is due, an unknown status, a last_hash not
 * 32 bytes), without raising.
 */
const char *
EsRowStateDecode(const Datum *v, const bool *n, EsAccountState *state)
{
	EsFoldInit(state, n[ES_ACC_ATT_ACCOUNT_ID - 1] ? 0 :
			   DatumGetInt64(v[ES_ACC_ATT_ACCOUNT_ID - 1]));
	for (int i = 0; i < ES_ACC_NATTS; i++)
		if (n[i] && i + 1 != ES_ACC_ATT_MAX_BALANCE)
			return psprintf("column \"%s\" is null", EsAccountColumns[i].name);
	state->account = TextDatumGetCString(v[ES_ACC_ATT_ACCOUNT - 1]);
	state->currency = TextDatumGetCString(v[ES_ACC_ATT_CURRENCY - 1]);
	state->status = EsFoldStatusFromName(TextDatumGetCString(v[ES_ACC_ATT_STATUS - 1]));
	if (state->status == ES_ACCOUNT_NONE)
		return "its status is unknown";
	state->balance = DatumGetInt64(v[ES_ACC_ATT_BALANCE - 1]);
	state->pending_out = DatumGetInt64(v[ES_ACC_ATT_PENDING_OUT - 1]);
	state->pending_in = DatumGetInt64(v[ES_ACC_ATT_PENDING_IN - 1]);
	state->available = DatumGetInt64(v[ES_ACC_ATT_AVAILABLE - 1]);
	state->overdraft_limit = DatumGetInt64(v[ES_ACC_ATT_OVERDRAFT_LIMIT - 1]);
	state->has_max_balance = !n[ES_ACC_ATT_MAX_BALANCE - 1];
	state->max_balance = state->has_max_balance ?
		DatumGetInt64(v[ES_ACC_ATT_MAX_BALANCE - 1]) : 0;
	state->version = DatumGetInt64(v[ES_ACC_ATT_VERSION - 1]);
	state->last_seq = DatumGetInt64(v[ES_ACC_ATT_LAST_SEQ - 1]);
	state->opened_at = DatumGetTimestampTz(v[ES_ACC_ATT_OPENED_AT - 1]);
	state->updated_at = DatumGetTimestampTz(v[ES_ACC_ATT_UPDATED_AT - 1]);
	if (!HashFromDatum(v[ES_ACC_ATT_LAST_HASH - 1], state->last_hash))
		return "its last_hash is not 32 bytes long";
	return NULL;
}

/*
 * A state from an es_accounts row, as EsRowStateDecode, raising ES012 for a
 * damaged row.
 */
void
EsRowStateFromValues(const Datum *v, const bool *n, EsAccountState *state)
{
	const char *problem = EsRowStateDecode(v, n, state);

	if (problem)
		BadRow("es_accounts",
			   psprintf("of account_id " INT64_FORMAT, state->account_id),
			   problem);
}

/*
 * A state as a Datum of the row type es_accounts, whose descriptor desc a
 * function gets from its result type; in the current memory context.
 */
Datum
EsRowStateToDatum(const EsAccountState *state, TupleDesc desc)
{
	Datum		values[ES_ACC_NATTS];
	bool		isnull[ES_ACC_NATTS];

	EsRowCheckShape(desc, ES_REL_ACCOUNTS, "es_accounts");
	EsRowStateToValues(state, values, isnull);
	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values,
											 isnull));
}

/* -------------------------------------------------------------- transfers */

/* An es_transfers row of a transfer, as Datums in table order. */
void
EsRowTransferToValues(const EsTransfer *t, Datum *v, bool *n)
{
	memset(n, 0, sizeof(bool) * ES_TR_NATTS);
	v[ES_TR_ATT_TRANSFER_ID - 1] = CStringGetTextDatum(t->transfer_id);
	v[ES_TR_ATT_FROM_ACCOUNT - 1] = CStringGetTextDatum(t->from_account);
	v[ES_TR_ATT_TO_ACCOUNT - 1] = CStringGetTextDatum(t->to_account);
	v[ES_TR_ATT_AMOUNT - 1] = Int64GetDatum(t->amount);
	v[ES_TR_ATT_POSTED_AMOUNT - 1] = Int64GetDatum(t->posted_amount);
	v[ES_TR_ATT_STATUS - 1] =
		CStringGetTextDatum(EsFoldTransferStatusName(t->status));
	v[ES_TR_ATT_CREATED_AT - 1] = TimestampTzGetDatum(t->created_at);
	v[ES_TR_ATT_EXPIRES_AT - 1] = TimestampTzGetDatum(t->expires_at);
	n[ES_TR_ATT_EXPIRES_AT - 1] = !t->has_expires_at;
	v[ES_TR_ATT_UPDATED_AT - 1] = TimestampTzGetDatum(t->updated_at);
	v[ES_TR_ATT_SEQ - 1] = Int64GetDatum(t->seq);
	v[ES_TR_ATT_FROM_ACCOUNT_ID - 1] = Int64GetDatum(t->from_account_id);
	v[ES_TR_ATT_TO_ACCOUNT_ID - 1] = Int64GetDatum(t->to_account_id);
	if (t->command_id)
		v[ES_TR_ATT_COMMAND_ID - 1] = CStringGetTextDatum(t->command_id);
	else
		n[ES_TR_ATT_COMMAND_ID - 1] = true;
}

/*
 * Decode a transfer from an es_transfers row (Datums in table order), texts
 * copied into the current memory context.  Returns NULL, or why the row is
 * damaged (a NULL where a value is due, an unknown status), without
 * raising.
 */
const char *
EsRowTransferDecode(const Datum *v, const bool *n, EsTransfer *t)
{
	memset(t, 0, sizeof(*t));
	if (!n[ES_TR_ATT_SEQ - 1])
		t->seq = DatumGetInt64(v[ES_TR_ATT_SEQ - 1]);
	for (int i = 0; i < ES_TR_NATTS; i++)
		if (n[i] && i + 1 != ES_TR_ATT_EXPIRES_AT &&
			i + 1 != ES_TR_ATT_COMMAND_ID)
			return psprintf("column \"%s\" is null", EsTransferColumns[i].name);
	t->transfer_id = TextDatumGetCString(v[ES_TR_ATT_TRANSFER_ID - 1]);
	t->from_account = TextDatumGetCString(v[ES_TR_ATT_FROM_ACCOUNT - 1]);
	t->to_account = TextDatumGetCString(v[ES_TR_ATT_TO_ACCOUNT - 1]);
	t->amount = DatumGetInt64(v[ES_TR_ATT_AMOUNT - 1]);
	t->posted_amount = DatumGetInt64(v[ES_TR_ATT_POSTED_AMOUNT - 1]);
	t->status = EsFoldTransferStatusFromName(TextDatumGetCString(v[ES_TR_ATT_STATUS - 1]));
	if (t->status == ES_TRANSFER_NONE)
		return "its status is unknown";
	t->created_at = DatumGetTimestampTz(v[ES_TR_ATT_CREATED_AT - 1]);
	t->has_expires_at = !n[ES_TR_ATT_EXPIRES_AT - 1];
	if (t->has_expires_at)
		t->expires_at = DatumGetTimestampTz(v[ES_TR_ATT_EXPIRES_AT - 1]);
	t->updated_at = DatumGetTimestampTz(v[ES_TR_ATT_UPDATED_AT - 1]);
	t->from_account_id = DatumGetInt64(v[ES_TR_ATT_FROM_ACCOUNT_ID - 1]);
	t->to_account_id = DatumGetInt64(v[ES_TR_ATT_TO_ACCOUNT_ID - 1]);
	t->command_id = n[ES_TR_ATT_COMMAND_ID - 1] ? NULL :
		TextDatumGetCString(v[ES_TR_ATT_COMMAND_ID - 1]);
	return NULL;
}

/*
 * A transfer from an es_transfers row, as EsRowTransferDecode, raising
 * ES012 for a damaged row.
 */
void
EsRowTransferFromValues(const Datum *v, const bool *n, EsTransfer *t)
{
	const char *problem = EsRowTransferDecode(v, n, t);

	if (problem)
		BadRow("es_transfers", psprintf("of seq " INT64_FORMAT, t->seq),
			   problem);
}

/* -------------------------------------------------------------- snapshots */

/*
 * An es_snapshots row of a snapshot, as Datums in table order: the state's
 * columns by the state codec, then the snapshot's own.
 */
void
EsRowSnapshotToValues(const EsSnapshot *snap, Datum *v, bool *n)
{
	EsRowStateToValues(&snap->state, v, n);
	n[ES_SNAP_ATT_MAX_RECORDED_AT - 1] = false;
	n[ES_SNAP_ATT_MAX_EFFECTIVE_AT - 1] = false;
	n[ES_SNAP_ATT_FORMAT - 1] = false;
	n[ES_SNAP_ATT_MAGIC - 1] = false;
	n[ES_SNAP_ATT_CHECKSUM - 1] = false;
	v[ES_SNAP_ATT_MAX_RECORDED_AT - 1] = TimestampTzGetDatum(snap->max_recorded_at);
	v[ES_SNAP_ATT_MAX_EFFECTIVE_AT - 1] = TimestampTzGetDatum(snap->max_effective_at);
	v[ES_SNAP_ATT_FORMAT - 1] = Int16GetDatum(snap->format);
	v[ES_SNAP_ATT_MAGIC - 1] = Int32GetDatum(snap->magic);
	v[ES_SNAP_ATT_CHECKSUM - 1] = HashGetDatum(snap->checksum);
}

/*
 * Decode a snapshot from an es_snapshots row (Datums in table order), texts
 * copied into the current memory context.  Returns NULL, or why the row is
 * damaged, without raising.  Its format, magic number and checksum are
 * es_snap.c's to check.
 */
const char *
EsRowSnapshotDecode(const Datum *v, const bool *n, EsSnapshot *snap)
{
	const char *problem;

	memset(snap, 0, sizeof(*snap));
	problem = EsRowStateDecode(v, n, &snap->state);
	if (problem)
		return problem;
	for (int i = ES_ACC_NATTS; i < ES_SNAP_NATTS; i++)
		if (n[i])
			return psprintf("column \"%s\" is null", EsSnapshotColumns[i].name);
	snap->max_recorded_at = DatumGetTimestampTz(v[ES_SNAP_ATT_MAX_RECORDED_AT - 1]);
	snap->max_effective_at = DatumGetTimestampTz(v[ES_SNAP_ATT_MAX_EFFECTIVE_AT - 1]);
	snap->format = DatumGetInt16(v[ES_SNAP_ATT_FORMAT - 1]);
	snap->magic = DatumGetInt32(v[ES_SNAP_ATT_MAGIC - 1]);
	if (!HashFromDatum(v[ES_SNAP_ATT_CHECKSUM - 1], snap->checksum))
		return "its checksum is not 32 bytes long";
	return NULL;
}

/* --------------------------------------------------------------- commands */

/* An es_commands row, as Datums in table order. */
void
EsRowCommandToValues(const char *id, Jsonb *command, int64 seq, Datum *v,
					 bool *n)
{
	memset(n, 0, sizeof(bool) * ES_CMD_NATTS);
	v[ES_CMD_ATT_COMMAND_ID - 1] = CStringGetTextDatum(id);
	v[ES_CMD_ATT_COMMAND - 1] = JsonbPGetDatum(command);
	v[ES_CMD_ATT_SEQ - 1] = Int64GetDatum(seq);
}

/* The canonical command and seq of an es_commands row, command copied. */
void
EsRowCommandFromValues(const Datum *v, const bool *n, Jsonb **command,
					   int64 *seq)
{
	if (n[ES_CMD_ATT_COMMAND - 1] || n[ES_CMD_ATT_SEQ - 1])
		BadRow("es_commands", "of a command id", "a column is null");
	*command = DatumGetJsonbPCopy(v[ES_CMD_ATT_COMMAND - 1]);
	*seq = DatumGetInt64(v[ES_CMD_ATT_SEQ - 1]);
}

/* A non-null bigint attribute of a slot (a key column read after a probe). */
int64
EsRowSlotInt64(TupleTableSlot *slot, int attno)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, attno, &isnull);

	if (isnull)
		elog(ERROR, "es_ledger key column %d is null", attno);
	return DatumGetInt64(d);
}

/*
 * es_check_shape(rel regclass, shape regclass) RETURNS boolean
 *
 * Checks that table rel has the columns (names and types, in order) that
 * this library expects of the extension's table shape (es_events,
 * es_accounts, es_commands or es_transfers) and returns true, or fails
 * with 55000 saying which column differs.  The same check guards every read and write of the
 * extension's tables; this exposes it for diagnosis and tests.  Takes
 * AccessShareLock on rel.
 */
PG_FUNCTION_INFO_V1(es_check_shape);
Datum
es_check_shape(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Oid			shape = PG_GETARG_OID(1);
	Relation	r;
	int			i;

	for (i = 0; i < ES_REL_TABLE_COUNT; i++)
		if (EsRowRelExists((EsRel) i) && EsRowRelid((EsRel) i) == shape)
			break;
	if (i == ES_REL_TABLE_COUNT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a table of es_ledger", get_rel_name(shape)),
				 errdetail("The shapes known are es_events, es_accounts, es_commands, es_transfers and es_snapshots.")));
	r = relation_open(relid, AccessShareLock);
	EsRowCheckShape(RelationGetDescr(r), (EsRel) i, RelationGetRelationName(r));
	relation_close(r, AccessShareLock);
	PG_RETURN_BOOL(true);
}
