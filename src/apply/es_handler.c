/*-------------------------------------------------------------------------
 *
 * es_handler.c
 *	  User projections, the part es_apply needs: the registry of user
 *	  projections, calling a projection's handler as its owner, and the
 *	  inline projections run for the events each es_apply call appends.
 *
 * A user projection (doc/projections.md) is a name, a handler function
 * handler(es_events) written by the user, an owner (the role that
 * registered it) and a mode: inline projections are called inside
 * es_apply, in the same transaction, for each event the call appended;
 * async ones by a follower of es_read (es_projection.c, es_worker.c).
 * They are registered in es_projection_registry, a table of the extension
 * found by OID (a member of the extension in the schema of es_events) and
 * written only by es_projection.c, under the write guard.
 *
 * Handlers are user code, so they run (EsHandlerEnter .. EsHandlerLeave)
 * the way PostgreSQL runs index expressions and REFRESH MATERIALIZED VIEW:
 *	- as the projection's owner (SetUserIdAndSecContext with
 *	  SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION: no SET
 *	  ROLE, no temporary objects, no cursors left behind), never as the
 *	  extension's owner nor as the caller of es_apply;
 *	- with the search_path the owner had when registering it, pg_temp named
 *	  last (HandlerSearchPath), in a GUC nest level of its own, so neither a
 *	  caller's search_path nor its temporary tables can capture the
 *	  handler's unqualified names, and what the handler SETs is undone;
 *	- outside the write guard (es_guard.c): es_apply runs them after it has
 *	  closed its bracket (EsHandlerRunInline), and EsHandlerEnter refuses to
 *	  run one inside a bracket.  So a handler writes es_events, es_accounts
 *	  or the registry no more than its owner could with plain SQL: ES011.
 * Before each run the owner must still exist, hold the privileges of
 * es_ledger_admin (what it takes to own a projection), be able to SELECT
 * es_events and EXECUTE the handler (EsHandlerCheckAccess): 42501
 * otherwise.  An inline projection whose owner lost es_ledger_admin is not
 * called at all (a WARNING per call): a demoted role keeps no code in the
 * write path, and cannot make every writer's command fail.
 *
 * Exactly once: while an inline projection catches up (es_projection.c),
 * its handler may call es_apply; the events that appends are read by the
 * catch-up loop, so es_apply's inline run skips that projection
 * (EsHandlerSetCatchingUp).
 *
 * Session state: an inline handler runs in the caller's session.  The user,
 * security context and every setting are restored (EsHandlerLeave); the
 * security-restricted operation forbids temporary objects, cursors and
 * LISTEN.  Session-level advisory locks and lastval() cannot be restored
 * from here (doc/projections.md documents them).
 *
 * Inline projections are read from the registry once and cached per
 * backend; es_projection.c invalidates the cache (a relcache invalidation
 * of the registry, sent at commit) whenever it changes one.  It changes an
 * inline projection only under ShareLock on es_events, which waits for
 * every transaction that appends and keeps new ones out until it commits;
 * es_apply reads the cache after it holds RowExclusiveLock on es_events
 * (taking the lock processes pending invalidations).  So an appending
 * transaction either sees a registration, or committed before it.
 *
 * Locks: AccessShareLock on the registry while reading it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/typcache.h"
#include "utils/xid8.h"

#include "apply.h"

/* The registry's OID, valid while RegistryValid. */
static Oid	RegistryOid = InvalidOid;
static bool RegistryValid = false;

/* The running inline projections, valid while InlineValid. */
static MemoryContext InlineCxt = NULL;
static List *InlineList = NIL;	/* of EsHandlerProjection */
static bool InlineValid = false;
static bool CallbackRegistered = false;

/* The events the current es_apply call appends, if it collects them. */
typedef struct EsHandlerBatch
{
	MemoryContext cxt;
	List	   *projections;	/* copies of the inline projections */
	List	   *events;			/* EsEvent copies, in append order */
} EsHandlerBatch;

static EsHandlerBatch *Collecting = NULL;

/*
 * The inline projection whose catch-up (es_projection.c) is running in this
 * backend, or NULL.  Its handler may call es_apply; the events that call
 * appends are read by the catch-up loop, which goes on to the log's end, so
 * es_apply's inline run must not hand them to it too (exactly once).
 * Catch-ups do not nest: the functions that start one refuse to run inside
 * a handler.
 */
static char *CatchingUp = NULL;

/*
 * Relcache invalidation of the registry (es_projection.c sends one with
 * every change), or of everything: forget the inline cache and the OID.
 */
static void
HandlerRelcacheCallback(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == RegistryOid)
	{
		InlineValid = false;
		RegistryValid = false;
	}
}

/*
 * The OID of es_projection_registry: the relation of that name in the
 * schema of es_events, which must be a member of the extension.
 */
Oid
EsHandlerRegistryRelid(void)
{
	Oid			nspoid;
	Oid			relid;

	if (!CallbackRegistered)
	{
		CacheRegisterRelcacheCallback(HandlerRelcacheCallback, (Datum) 0);
		CallbackRegistered = true;
	}
	if (RegistryValid)
		return RegistryOid;
	nspoid = get_rel_namespace(EsRowRelid(ES_REL_EVENTS));
	relid = get_relname_relid("es_projection_registry", nspoid);
	if (!OidIsValid(relid) || get_rel_relkind(relid) != RELKIND_RELATION ||
		getExtensionOfObject(RelationRelationId, relid) !=
		get_extension_oid("es_ledger", false))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("es_ledger relation \"es_projection_registry\" is not usable"),
				 errdetail("The extension's schema holds no table of that name that is a member of the extension."),
				 errhint("Run ALTER EXTENSION es_ledger UPDATE.")));
	RegistryOid = relid;
	RegistryValid = true;
	return relid;
}

/*
 * Does the installed extension have a registry?  False for a ledger of an
 * older version not yet updated (es_apply must keep working there), also
 * when a relation of that name that is not the extension's sits in its
 * schema: before the update nothing reserves the name, and whoever may
 * create in the schema (the database owner owns public) must not be able
 * to make every es_apply fail with one.  Within one schema the name is
 * either the extension's registry or not, so a ledger that has its
 * registry always finds it.
 */
bool
EsHandlerHaveRegistry(void)
{
	Oid			nspoid;
	Oid			relid;

	if (RegistryValid)
		return true;
	nspoid = get_rel_namespace(EsRowRelid(ES_REL_EVENTS));
	relid = get_relname_relid("es_projection_registry", nspoid);
	if (!OidIsValid(relid) ||
		getExtensionOfObject(RelationRelationId, relid) !=
		get_extension_oid("es_ledger", false))
		return false;
	EsHandlerRegistryRelid();
	return true;
}

/*
 * Refuse a registry whose first columns are not the ones this library
 * reads by number (ES_PRJ_ATT_*): 55000, never garbage.
 */
void
EsHandlerCheckRegistryShape(TupleDesc desc)
{
	static const char *const names[ES_PRJ_NREAD] = {
		"name", "owner", "mode", "state", "handler", "reset", "search_path"
	};
	static const Oid types[ES_PRJ_NREAD] = {
		TEXTOID, OIDOID, TEXTOID, TEXTOID, OIDOID, OIDOID, TEXTOID
	};

	for (int i = 0; i < ES_PRJ_NREAD; i++)
	{
		Form_pg_attribute att = i < desc->natts ? TupleDescAttr(desc, i) : NULL;

		if (att == NULL || att->attisdropped || att->atttypid != types[i] ||
			strcmp(NameStr(att->attname), names[i]) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("\"es_projection_registry\" does not have the shape this library expects"),
					 errdetail("Column %d should be \"%s\" of type %s.", i + 1,
							   names[i], format_type_be(types[i])),
					 errhint("Install the es_ledger library that matches the extension's version, or run ALTER EXTENSION es_ledger UPDATE.")));
	}
}

/* A text column of a registry row, or NULL. */
static char *
RowText(Datum *values, bool *isnull, int attno)
{
	return isnull[attno - 1] ? NULL : TextDatumGetCString(values[attno - 1]);
}

/*
 * Decode the registry row in values into p, allocated in the current memory
 * context.
 */
void
EsHandlerFromValues(Datum *values, bool *isnull, EsHandlerProjection *p)
{
	char	   *mode = RowText(values, isnull, ES_PRJ_ATT_MODE);
	char	   *state = RowText(values, isnull, ES_PRJ_ATT_STATE);

	memset(p, 0, sizeof(*p));
	p->name = RowText(values, isnull, ES_PRJ_ATT_NAME);
	p->owner = DatumGetObjectId(values[ES_PRJ_ATT_OWNER - 1]);
	p->inline_mode = mode && strcmp(mode, "inline") == 0;
	p->state = state;
	p->handler = DatumGetObjectId(values[ES_PRJ_ATT_HANDLER - 1]);
	p->reset = isnull[ES_PRJ_ATT_RESET - 1] ? InvalidOid :
		DatumGetObjectId(values[ES_PRJ_ATT_RESET - 1]);
	p->search_path = RowText(values, isnull, ES_PRJ_ATT_SEARCH_PATH);
	if (p->name == NULL || p->state == NULL || p->search_path == NULL ||
		isnull[ES_PRJ_ATT_OWNER - 1] || isnull[ES_PRJ_ATT_HANDLER - 1])
		elog(ERROR, "es_projection_registry holds a row with a NULL column");
}

/* Read the running inline projections into the cache. */
static void
LoadInline(void)
{
	Relation	rel;
	Snapshot	snapshot;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext old;
	Datum	   *values;
	bool	   *isnull;

	if (InlineCxt == NULL)
		InlineCxt = AllocSetContextCreate(TopMemoryContext,
										  "es_ledger inline projections",
										  ALLOCSET_SMALL_SIZES);
	MemoryContextReset(InlineCxt);
	InlineList = NIL;
	InlineValid = false;

	rel = table_open(EsHandlerRegistryRelid(), AccessShareLock);
	EsHandlerCheckRegistryShape(RelationGetDescr(rel));
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snapshot, 0, NULL);
	values = palloc(sizeof(Datum) * RelationGetDescr(rel)->natts);
	isnull = palloc(sizeof(bool) * RelationGetDescr(rel)->natts);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		EsHandlerProjection *p;

		heap_deform_tuple(tup, RelationGetDescr(rel), values, isnull);
		old = MemoryContextSwitchTo(InlineCxt);
		p = palloc(sizeof(EsHandlerProjection));
		EsHandlerFromValues(values, isnull, p);
		if (p->inline_mode && strcmp(p->state, "running") == 0)
			InlineList = lappend(InlineList, p);
		MemoryContextSwitchTo(old);
	}
	pfree(values);
	pfree(isnull);
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	InlineValid = true;
}

/*
 * Start collecting the events of an es_apply call, if inline projections
 * run: called inside the write bracket, after es_events is locked
 * (EsWriteBegin).  Returns the previous collector, for EsHandlerCollectEnd.
 */
void *
EsHandlerCollectBegin(MemoryContext cxt)
{
	EsHandlerBatch *prev = Collecting;
	EsHandlerBatch *batch;
	MemoryContext old;
	ListCell   *lc;

	if (!EsHandlerHaveRegistry())
	{
		Collecting = NULL;
		return prev;
	}
	if (!InlineValid)
		LoadInline();
	if (InlineList == NIL)
	{
		Collecting = NULL;
		return prev;
	}
	/* A copy: a handler may change the registry, and so the cache. */
	old = MemoryContextSwitchTo(cxt);
	batch = palloc0(sizeof(EsHandlerBatch));
	batch->cxt = cxt;
	foreach(lc, InlineList)
	{
		EsHandlerProjection *src = lfirst(lc);
		EsHandlerProjection *p = palloc(sizeof(EsHandlerProjection));

		*p = *src;
		p->name = pstrdup(src->name);
		p->state = pstrdup(src->state);
		p->search_path = pstrdup(src->search_path);
		batch->projections = lappend(batch->projections, p);
	}
	MemoryContextSwitchTo(old);
	Collecting = batch;
	return prev;
}

/*
 * Stop collecting; returns what was collected (NULL if nothing is to run)
 * and makes prev (EsHandlerCollectBegin's result) the collector again.
 */
void *
EsHandlerCollectEnd(void *prev)
{
	EsHandlerBatch *batch = Collecting;

	Collecting = (EsHandlerBatch *) prev;
	return batch;
}

/* Note an event just appended, if the current es_apply call collects. */
void
EsHandlerCollect(const EsEvent *ev)
{
	MemoryContext old;
	EsEvent    *copy;

	if (Collecting == NULL)
		return;
	old = MemoryContextSwitchTo(Collecting->cxt);
	copy = palloc(sizeof(EsEvent));
	*copy = *ev;
	copy->data = (Jsonb *) PG_DETOAST_DATUM_COPY(JsonbPGetDatum(ev->data));
	copy->command_id = ev->command_id ? pstrdup(ev->command_id) : NULL;
	Collecting->events = lappend(Collecting->events, copy);
	MemoryContextSwitchTo(old);
}

/*
 * How many events the current collector holds: a mark for
 * EsHandlerCollectForget.  0 when nothing collects.
 */
int
EsHandlerCollectMark(void)
{
	return Collecting ? list_length(Collecting->events) : 0;
}

/*
 * Forget the events collected after mark: es_apply_each calls it for a
 * command it rejected, whose events (if a subtransaction appended any
 * before failing) were rolled back and must reach no handler.
 */
void
EsHandlerCollectForget(int mark)
{
	if (Collecting && list_length(Collecting->events) > mark)
		Collecting->events = list_truncate(Collecting->events, mark);
}

/* The function's name and argument types, for messages. */
static char *
FunctionName(Oid funcid)
{
	char	   *s = format_procedure_qualified(funcid);

	return s ? s : psprintf("%u", funcid);
}

/*
 * Check a handler (nargs 1) or reset function (nargs 0): a plain function
 * (not a procedure, aggregate or set-returning function) taking es_events
 * or nothing.  42883 if it does not exist, 42P13 if it does not fit.
 */
void
EsHandlerCheckFunction(Oid funcid, bool is_handler)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	Form_pg_proc proc;
	Oid			evtype = get_rel_type_id(EsRowRelid(ES_REL_EVENTS));
	const char *what = is_handler ? "handler" : "reset function";

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("projection %s %u does not exist", what, funcid),
				 errhint("Drop the projection, or pause it, and register it again with an existing function.")));
	proc = (Form_pg_proc) GETSTRUCT(tup);
	if (proc->prokind != PROKIND_FUNCTION || proc->proretset ||
		proc->pronargs != (is_handler ? 1 : 0) ||
		(is_handler && proc->proargtypes.values[0] != evtype))
	{
		ReleaseSysCache(tup);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("function %s cannot be a projection %s",
						FunctionName(funcid), what),
				 is_handler ?
				 errdetail("A handler is a function (not a procedure, aggregate or set-returning function) taking one argument of type es_events.") :
				 errdetail("A reset function is a function (not a procedure, aggregate or set-returning function) taking no argument.")));
	}
	ReleaseSysCache(tup);
}

/*
 * Does the projection's owner still hold what it takes to own a projection
 * (the privileges of es_ledger_admin, or superuser)?  A role demoted after
 * it created a projection (REVOKE es_ledger_admin FROM x) keeps the
 * projection's row and its handler function, which it may still replace:
 * its code must no longer run, above all not inline in every writer's
 * es_apply.
 */
static bool
OwnerMayOwn(const EsHandlerProjection *p)
{
	Oid			admin = get_role_oid("es_ledger_admin", true);

	if (superuser_arg(p->owner))
		return true;
	return OidIsValid(admin) && has_privs_of_role(p->owner, admin);
}

/*
 * Before a run: the owner must exist, hold es_ledger_admin, may SELECT
 * es_events and EXECUTE the handler and reset function (42501), which must
 * still fit (42883, 42P13).
 */
void
EsHandlerCheckAccess(const EsHandlerProjection *p)
{
	Oid			events = EsRowRelid(ES_REL_EVENTS);
	char	   *owner;

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(p->owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the owner of projection \"%s\" no longer exists", p->name),
				 errhint("Drop the projection and register it again.")));
	owner = GetUserNameFromId(p->owner, false);
	if (!OwnerMayOwn(p))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\", owner of projection \"%s\", no longer has the privileges of es_ledger_admin",
						owner, p->name),
				 errdetail("A projection's code runs only while its owner may own a projection."),
				 errhint("Grant es_ledger_admin to the owner again, or drop the projection.")));
	if (pg_class_aclcheck(events, p->owner, ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\", owner of projection \"%s\", may not read es_events",
						owner, p->name),
				 errdetail("A projection's handler runs as its owner, who must be able to SELECT es_events (es_ledger_reader).")));
	EsHandlerCheckFunction(p->handler, true);
	if (pg_proc_aclcheck(p->handler, p->owner, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\", owner of projection \"%s\", may not execute function %s",
						owner, p->name, FunctionName(p->handler))));
	if (OidIsValid(p->reset))
	{
		EsHandlerCheckFunction(p->reset, false);
		if (pg_proc_aclcheck(p->reset, p->owner, ACL_EXECUTE) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("role \"%s\", owner of projection \"%s\", may not execute function %s",
							owner, p->name, FunctionName(p->reset))));
	}
}

/*
 * The search_path a handler runs with: its owner's at registration, with
 * pg_temp named last.  A search_path that does not name pg_temp searches
 * the session's temporary schema first for tables and types, and inline
 * handlers run in the session of whoever calls es_apply: a writer's
 * temporary table would capture the handler's unqualified names (as for
 * SECURITY DEFINER functions, doc/projections.md).  Naming pg_temp last
 * keeps it after the owner's schemas; where the owner named it, that place
 * stands (a later repetition is ignored).  Functions and operators are
 * never looked up in pg_temp unless qualified.
 */
static char *
HandlerSearchPath(const char *search_path)
{
	if (search_path[0] == '\0')
		return pstrdup("pg_temp");
	return psprintf("%s, pg_temp", search_path);
}

/*
 * Become the projection's owner to run its code (see the file header);
 * undone by EsHandlerLeave, or by the (sub)transaction's abort on error.
 * The function to call is looked up into ctx->flinfo (the handler, or the
 * reset function if reset).
 */
void
EsHandlerEnter(const EsHandlerProjection *p, EsHandlerContext *ctx, bool reset)
{
	if (EsGuardWriting())
		elog(ERROR, "projection handler called inside the write guard");
	check_stack_depth();
	GetUserIdAndSecContext(&ctx->saved_user, &ctx->saved_sec);
	fmgr_info(reset ? p->reset : p->handler, &ctx->flinfo);
	SetUserIdAndSecContext(p->owner, ctx->saved_sec |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	ctx->nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", HandlerSearchPath(p->search_path),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true,
							 0, false);
}

/* Back to the caller's user, security context and settings. */
void
EsHandlerLeave(EsHandlerContext *ctx)
{
	AtEOXact_GUC(false, ctx->nestlevel);
	SetUserIdAndSecContext(ctx->saved_user, ctx->saved_sec);
}

/*
 * Call the function EsHandlerEnter looked up, with arg (an es_events row)
 * or with no argument if nargs is 0.  Its result is ignored.
 */
void
EsHandlerInvoke(EsHandlerContext *ctx, Datum arg, int nargs)
{
	LOCAL_FCINFO(fcinfo, 1);

	InitFunctionCallInfoData(*fcinfo, &ctx->flinfo, nargs, InvalidOid,
							 NULL, NULL);
	if (nargs > 0)
	{
		fcinfo->args[0].value = arg;
		fcinfo->args[0].isnull = false;
	}
	(void) FunctionCallInvoke(fcinfo);
}

/*
 * An event as a Datum of the es_events row type, for a handler.  tx: the
 * transaction that wrote it, or NULL for the current one (inline).
 */
Datum
EsHandlerEventDatum(const EsEvent *ev, const FullTransactionId *tx)
{
	TupleDesc	desc = lookup_rowtype_tupdesc(get_rel_type_id(EsRowRelid(ES_REL_EVENTS)), -1);
	Datum		values[ES_EV_NATTS];
	bool		isnull[ES_EV_NATTS];
	HeapTuple	tup;
	Datum		d;

	if (desc->natts != ES_EV_NATTS)
		elog(ERROR, "es_events has %d columns, expected %d", desc->natts,
			 ES_EV_NATTS);
	EsRowEventToValues(ev, values, isnull);
	if (tx)
		values[ES_EV_ATT_TX - 1] = FullTransactionIdGetDatum(*tx);
	tup = heap_form_tuple(desc, values, isnull);
	d = heap_copy_tuple_as_datum(tup, desc);
	heap_freetuple(tup);
	ReleaseTupleDesc(desc);
	return d;
}

/*
 * Run the inline projections for the events an es_apply call collected
 * (EsHandlerCollectEnd's result), each projection for each event in append
 * (seq) order.  Called after the write bracket is closed.  A handler's
 * error is raised as it is, with a context line naming the projection and
 * the event: it fails the command.
 */
void
EsHandlerRunInline(void *collected)
{
	EsHandlerBatch *batch = collected;
	ListCell   *lp;

	if (batch == NULL || batch->events == NIL)
		return;
	foreach(lp, batch->projections)
	{
		EsHandlerProjection *p = lfirst(lp);
		EsHandlerContext ctx;
		ListCell   *le;

		/* Its catch-up, running, reads these events itself. */
		if (CatchingUp != NULL && strcmp(CatchingUp, p->name) == 0)
			continue;

		/*
		 * An owner without es_ledger_admin keeps no code in the write path:
		 * the projection is not called (and falls behind; a rebuild by an
		 * admin catches it up), and every call says so.
		 */
		if (SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(p->owner)) &&
			!OwnerMayOwn(p))
		{
			ereport(WARNING,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("inline projection \"%s\" was not called: its owner no longer has the privileges of es_ledger_admin",
							p->name),
					 errdetail("The events of this call did not reach it; it stays behind until it is rebuilt."),
					 errhint("Grant es_ledger_admin to role \"%s\" again and run es_projection_rebuild('%s'), or drop the projection.",
							 GetUserNameFromId(p->owner, false), p->name)));
			continue;
		}
		EsHandlerCheckAccess(p);
		EsHandlerEnter(p, &ctx, false);
		foreach(le, batch->events)
		{
			EsEvent    *ev = lfirst(le);
			ErrorContextCallback errcb;
			EsHandlerErrorArg arg = {p->name, ev->seq};

			errcb.callback = EsHandlerErrorContext;
			errcb.arg = &arg;
			errcb.previous = error_context_stack;
			error_context_stack = &errcb;
			EsHandlerInvoke(&ctx, EsHandlerEventDatum(ev, NULL), 1);
			error_context_stack = errcb.previous;
		}
		EsHandlerLeave(&ctx);
	}
}

/*
 * Mark the catch-up of inline projection name as running in this backend
 * (NULL: none runs any more); see CatchingUp.  es_projection.c clears it in
 * PG_FINALLY, so an error cannot leave it set.
 */
void
EsHandlerSetCatchingUp(const char *name)
{
	if (CatchingUp != NULL)
	{
		pfree(CatchingUp);
		CatchingUp = NULL;
	}
	if (name != NULL)
		CatchingUp = MemoryContextStrdup(TopMemoryContext, name);
}

/* Error context: which projection's handler failed, on which event. */
void
EsHandlerErrorContext(void *arg)
{
	EsHandlerErrorArg *a = arg;

	if (a->seq > 0)
		errcontext("projection \"%s\", handler called for the event with seq %lld",
				   a->name, (long long) a->seq);
	else
		errcontext("projection \"%s\", reset function", a->name);
}
