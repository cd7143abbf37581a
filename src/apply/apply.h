/*-------------------------------------------------------------------------
 *
 * apply.h
 *	  Declarations of the apply layer of es_ledger, grouped by the file
 *	  that defines them.
 *
 * src/apply/: the write side: a command's JSON checked into an EsCommand
 * (es_command), user projections' handlers run for the events of a call
 * (es_handler), es_apply and the shorthands (es_apply), es_expire_pending
 * (es_expire), es_apply_each (es_each), es_reverse (es_reverse) and the
 * DBA operations that rebuild or restore projections (es_dba). Built on
 * protect/, store/ and model/.
 *
 * A file of src/apply/ includes this header only; it may use what this
 * header and the headers below it declare (protect/, store/, model/),
 * never a folder above. `make check-layers` checks includes and calls.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_APPLY_H
#define ES_APPLY_H

#include "../protect/protect.h"

/* -------------------------------------------------------------- es_command.c */

/*
 * EsCommandInit defines the GUCs bounding a command's input
 * (es_ledger.max_batch_commands, max_metadata_bytes, max_metadata_depth) and
 * reserves the "es_ledger" prefix: call it after every other es_ledger GUC.
 * EsCommandParseArgument's commands share allocations: free them with their
 * memory context, never one by one.
 */
extern void EsCommandInit(void);
extern List *EsCommandParseArgument(Jsonb *jb);
extern void EsCommandParse(Jsonb *jb, int ordinal, EsCommand *cmd);
extern void EsCommandStart(EsCommand *cmd, EsCommandType type, int ordinal);
extern void EsCommandSetText(EsCommand *cmd, const char *key, const char *value);
extern void EsCommandSetInt(EsCommand *cmd, const char *key, bool isnull,
							int64 value);
extern void EsCommandSetMetadata(EsCommand *cmd, Jsonb *metadata);
extern void EsCommandSetEffectiveAt(EsCommand *cmd, TimestampTz effective_at);
extern void EsCommandFinish(EsCommand *cmd);
extern Jsonb *EsCommandCanonical(const EsCommand *cmd);
extern void EsCommandKeep(EsCommand *cmd);
extern void EsCommandCheckBatchSize(int ncmds);
extern void EsCommandParseElement(JsonbValue *v, int ordinal, EsCommand *cmd);

/* -------------------------------------------------------------- es_handler.c */

/* The first columns of es_projection_registry, which es_handler.c reads. */
typedef enum EsProjectionAttr
{
	ES_PRJ_ATT_NAME = 1, ES_PRJ_ATT_OWNER, ES_PRJ_ATT_MODE, ES_PRJ_ATT_STATE,
	ES_PRJ_ATT_HANDLER, ES_PRJ_ATT_RESET, ES_PRJ_ATT_SEARCH_PATH,
	ES_PRJ_NREAD = ES_PRJ_ATT_SEARCH_PATH
} EsProjectionAttr;

/* A user projection, as registered. */
typedef struct EsHandlerProjection
{
	char	   *name;
	Oid			owner;			/* handlers run as this role */
	bool		inline_mode;	/* inline, else async */
	char	   *state;			/* running, paused or failed */
	Oid			handler;		/* function(es_events) */
	Oid			reset;			/* function() or InvalidOid */
	char	   *search_path;	/* the handlers' search_path */
} EsHandlerProjection;

/* While a projection's code runs as its owner (EsHandlerEnter). */
typedef struct EsHandlerContext
{
	Oid			saved_user;
	int			saved_sec;
	int			nestlevel;
	FmgrInfo	flinfo;
} EsHandlerContext;

/* The argument of EsHandlerErrorContext. */
typedef struct EsHandlerErrorArg
{
	const char *name;
	int64		seq;			/* 0 for the reset function */
} EsHandlerErrorArg;

extern Oid	EsHandlerRegistryRelid(void);
extern bool EsHandlerHaveRegistry(void);
extern void EsHandlerCheckRegistryShape(TupleDesc desc);
extern void EsHandlerFromValues(Datum *values, bool *isnull,
								EsHandlerProjection *p);
extern void *EsHandlerCollectBegin(MemoryContext cxt);
extern void *EsHandlerCollectEnd(void *prev);
extern void EsHandlerCollect(const EsEvent *ev);
extern int	EsHandlerCollectMark(void);
extern void EsHandlerCollectForget(int mark);
extern void EsHandlerCheckFunction(Oid funcid, bool is_handler);
extern void EsHandlerCheckAccess(const EsHandlerProjection *p);
extern void EsHandlerEnter(const EsHandlerProjection *p, EsHandlerContext *ctx,
						   bool reset);
extern void EsHandlerLeave(EsHandlerContext *ctx);
extern void EsHandlerInvoke(EsHandlerContext *ctx, Datum arg, int nargs);
extern Datum EsHandlerEventDatum(const EsEvent *ev, const FullTransactionId *tx);
extern void EsHandlerRunInline(void *collected);
extern void EsHandlerSetCatchingUp(const char *name);
extern void EsHandlerErrorContext(void *arg);

/* ---------------------------------------------------------------- es_apply.c */

extern int64 EsApplyCommands(List *cmds);
extern int64 EsApplyShorthand(EsCommand *cmd);

/* The body of a write bracket (EsApplyInBracket). */
typedef void (*EsApplyBody) (void *arg);
extern void EsApplyInBracket(EsApplyBody body, void *arg);

/*
 * One command, the one pipeline es_apply and es_apply_each share: the role
 * check, the batch's locks, and EsApplyCommand, which returns the seq or a
 * rejection (rej->sqlerrcode set, nothing written).  Without isolated, a
 * command that could be rejected after writing writes nothing and says so
 * (ES_APPLY_ISOLATE): the caller runs it again isolated, in a
 * subtransaction.
 */
#define ES_APPLY_ISOLATE	(-1)
extern bool EsApplyAuthorize(List *cmds, EsRejection *rej);
extern void EsApplyLockBatch(List *cmds);
extern int64 EsApplyCommand(const EsCommand *cmd, EsRejection *rej,
							bool isolated);

/* For es_expire.c: a command's recorded_at, and one transfer's expiry. */
extern TimestampTz EsApplyRecordedAt(const EsAccountState *states, int n);
extern bool EsApplyExpireTransfer(const EsTransfer *t, TimestampTz now_hint);

/* --------------------------------------------------------------- es_expire.c */

/* (none: es_expire_pending is SQL-callable only) */

/* ----------------------------------------------------------------- es_each.c */

/* (none: es_apply_each is SQL-callable only) */

#endif							/* ES_APPLY_H */
