/*-------------------------------------------------------------------------
 *
 * es_projection_registry.c
 *	  The catalog of user projections: the rows of es_projection_registry,
 *	  read, locked and written.
 *
 * The registry es_projection_registry (install script, "user projections")
 * is written here only, through SPI, as the extension's owner and under the
 * write guard (es_guard.c), whose trigger refuses every other write with
 * ES011 (EsProjectionRegistryExec).  Its statements name our relations
 * schema-qualified, found by OID (es_row.c, es_handler.c;
 * EsProjectionQualifiedName), and qualify their operators.  User code
 * never runs in those statements: handlers and reset functions run
 * through es_handler.c, as the projection's owner, outside the guard.
 *
 * A projection's row is read with its lock (EsProjectionLock: FOR UPDATE,
 * one step at a time per projection, or SKIP LOCKED for the worker), or
 * its owner without one (EsProjectionPeekOwner, so that es_projection_run
 * never locks, even for a moment, the row of a projection the caller may
 * not run).  A change of an inline projection's row is followed by a
 * relcache invalidation (EsProjectionInvalidateRegistry), so that every
 * backend re-reads the inline projections.  The callers are connected to
 * SPI.
 *
 * Locks: the registry row's FOR UPDATE lock; RowExclusiveLock on the
 * registry when writing it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "projection.h"

/* The registry's name, schema-qualified, for SPI statements. */
char *
EsProjectionQualifiedName(const char *relname)
{
	Oid			nspoid = get_rel_namespace(EsRowRelid(ES_REL_EVENTS));

	return quote_qualified_identifier(get_namespace_name(nspoid), relname);
}

/* The registry's owner: the extension's owner. */
static Oid
RegistryOwner(void)
{
	return EsCatalogRelOwner(EsHandlerRegistryRelid());
}

/*
 * Run one SPI statement on the registry as its owner, under the write
 * guard when it writes.  Returns SPI_processed.  Only statements of the
 * projection files (this one, es_projection_step.c, es_projection.c), with
 * parameters for every value; no user code runs in them.
 */
uint64
EsProjectionRegistryExec(const char *sql, bool write, int nargs, Oid *types,
						 Datum *values, const char *nulls)
{
	Oid			saved_user;
	int			saved_sec;
	volatile int ret = 0;

	GetUserIdAndSecContext(&saved_user, &saved_sec);
	SetUserIdAndSecContext(RegistryOwner(),
						   saved_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (write)
		EsGuardBeginWrite();
	PG_TRY();
	{
		ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
	}
	PG_FINALLY();
	{
		if (write)
			EsGuardEndWrite();
		SetUserIdAndSecContext(saved_user, saved_sec);
	}
	PG_END_TRY();
	if (ret < 0)
		elog(ERROR, "SPI_execute_with_args failed on the projection registry: %s",
			 SPI_result_code_string(ret));
	return SPI_processed;
}

/* A nullable text column of SPI_tuptable's row i, copied, or NULL. */
char *
EsProjectionSpiText(uint64 i, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
								  col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* A bigint column of SPI_tuptable's row i; 0 if NULL. */
int64
EsProjectionSpiInt64(uint64 i, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
								  col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

/*
 * Read the projection's registry row and lock it FOR UPDATE, into row
 * (allocated in the current memory context).  skip_locked: return false
 * if another transaction holds it.  42704 if there is no such projection.
 */
bool
EsProjectionLock(const char *name, bool skip_locked, EsProjectionRow *row)
{
	char	   *sql;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	Datum		v[ES_PRJ_NREAD];
	bool		n[ES_PRJ_NREAD];
	MemoryContext cxt = CurrentMemoryContext;
	MemoryContext old;

	sql = psprintf("SELECT name, owner, mode, state, handler, reset, search_path, "
				   "cursor, last_seq, high_seq FROM %s "
				   "WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE%s",
				   EsProjectionQualifiedName("es_projection_registry"),
				   skip_locked ? " SKIP LOCKED" : "");
	values[0] = CStringGetTextDatum(name);
	if (EsProjectionRegistryExec(sql, false, 1, types, values, NULL) == 0)
	{
		if (skip_locked)
			return false;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("projection \"%s\" does not exist", name)));
	}
	EsHandlerCheckRegistryShape(SPI_tuptable->tupdesc);
	for (int i = 0; i < ES_PRJ_NREAD; i++)
		v[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
							 i + 1, &n[i]);
	old = MemoryContextSwitchTo(cxt);
	EsHandlerFromValues(v, n, &row->p);
	row->cursor = EsProjectionSpiText(0, 8);
	row->last_seq = EsProjectionSpiInt64(0, 9);
	row->high_seq = EsProjectionSpiInt64(0, 10);
	MemoryContextSwitchTo(old);
	return true;
}

/*
 * The owner of projection name, read without a lock (InvalidOid if there is
 * no such projection): es_projection_run checks that the caller may run a
 * projection before it locks its row, so that it never holds, even for a
 * moment or inside a savepoint, the row of a projection it may not run.
 */
Oid
EsProjectionPeekOwner(const char *name)
{
	char	   *sql;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	Datum		d;

	sql = psprintf("SELECT owner FROM %s WHERE name OPERATOR(pg_catalog.=) $1",
				   EsProjectionQualifiedName("es_projection_registry"));
	values[0] = CStringGetTextDatum(name);
	if (EsProjectionRegistryExec(sql, false, 1, types, values, NULL) == 0)
		return InvalidOid;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? InvalidOid : DatumGetObjectId(d);
}

/* Every backend re-reads the inline projections (es_handler.c). */
void
EsProjectionInvalidateRegistry(void)
{
	CacheInvalidateRelcacheByRelid(EsHandlerRegistryRelid());
}

/*
 * Set a projection's state and position.  cursor NULL: from the start;
 * clear_error: forget the last error.  applied_delta < 0 resets the count.
 */
void
EsProjectionUpdatePosition(const char *name, const char *state, const char *cursor,
						   int64 last_seq, int64 high_seq, int64 applied_delta,
						   bool clear_error)
{
	char	   *sql;
	Oid			types[6] = {TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID};
	Datum		values[6];
	char		nulls[6] = "      ";

	sql = psprintf("UPDATE %s SET state = $2, cursor = $3, last_seq = $4, high_seq = $5, "
				   "applied = CASE WHEN $6 OPERATOR(pg_catalog.<) 0 THEN 0 "
				   "ELSE applied OPERATOR(pg_catalog.+) $6 END, "
				   "applied_at = CASE WHEN $6 OPERATOR(pg_catalog.>) 0 THEN pg_catalog.now() "
				   "WHEN $6 OPERATOR(pg_catalog.<) 0 THEN NULL ELSE applied_at END%s "
				   "WHERE name OPERATOR(pg_catalog.=) $1",
				   EsProjectionQualifiedName("es_projection_registry"),
				   clear_error ? ", last_error = NULL, error_seq = NULL, error_at = NULL" : "");
	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(state);
	if (cursor)
		values[2] = CStringGetTextDatum(cursor);
	else
		nulls[2] = 'n';
	values[3] = Int64GetDatum(last_seq);
	values[4] = Int64GetDatum(high_seq);
	values[5] = Int64GetDatum(applied_delta);
	if (EsProjectionRegistryExec(sql, true, 6, types, values, nulls) != 1)
		elog(ERROR, "projection \"%s\" vanished from the registry", name);
}

/* Mark an async projection failed with the error of its handler. */
void
EsProjectionMarkFailed(const char *name, ErrorData *edata, int64 seq)
{
	char	   *sql;
	Oid			types[3] = {TEXTOID, TEXTOID, INT8OID};
	Datum		values[3];
	char		nulls[3] = "   ";
	StringInfoData msg;

	initStringInfo(&msg);
	appendStringInfo(&msg, "%s: %s", unpack_sql_state(edata->sqlerrcode),
					 edata->message ? edata->message : "(no message)");
	if (edata->context)
	{
		appendStringInfoString(&msg, " (");
		for (const char *c = edata->context; *c; c++)
		{
			if (*c == '\n')
				appendStringInfoString(&msg, "; ");
			else
				appendStringInfoChar(&msg, *c);
		}
		appendStringInfoChar(&msg, ')');
	}
	sql = psprintf("UPDATE %s SET state = 'failed', last_error = $2, error_seq = $3, "
				   "error_at = pg_catalog.now() WHERE name OPERATOR(pg_catalog.=) $1",
				   EsProjectionQualifiedName("es_projection_registry"));
	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(msg.data);
	values[2] = Int64GetDatum(seq);
	if (seq <= 0)
		nulls[2] = 'n';
	EsProjectionRegistryExec(sql, true, 3, types, values, nulls);
}

/*
 * The names of the running async projections, in the current memory
 * context, for the background worker (SPI connected); NIL if the ledger of
 * this database has no registry (an older version).
 */
List *
EsProjectionRunnable(void)
{
	char	   *sql;
	List	   *names = NIL;
	uint64		n;

	sql = psprintf("SELECT name FROM %s WHERE mode OPERATOR(pg_catalog.=) 'async' "
				   "AND state OPERATOR(pg_catalog.=) 'running' ORDER BY name",
				   EsProjectionQualifiedName("es_projection_registry"));
	n = EsProjectionRegistryExec(sql, false, 0, NULL, NULL, NULL);
	for (uint64 i = 0; i < n; i++)
		names = lappend(names, EsProjectionSpiText(i, 1));
	return names;
}
