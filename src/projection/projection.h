/*-------------------------------------------------------------------------
 *
 * projection.h
 *	  Declarations of the projection layer of es_ledger, grouped by the file
 *	  that defines them.
 *
 * src/projection/: user projections: the registry
 * (es_projection_registry), the step that applies a projection's next
 * events (es_projection_step), the es_projection_* SQL functions
 * (es_projection), and the background launcher and workers that run async
 * projections (es_worker). Built on every folder below.
 *
 * A file of src/projection/ includes this header only; it may use what
 * this header and the headers below it declare (query/, apply/, protect/,
 * store/, model/), never a folder above. `make check-layers` checks
 * includes and calls.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_PROJECTION_H
#define ES_PROJECTION_H

#include "../query/query.h"

/* -------------------------------------------------- es_projection_registry.c */

/* A registry row: the projection and its position. */
typedef struct EsProjectionRow
{
	EsHandlerProjection p;
	char	   *cursor;			/* NULL: from the start of the log */
	int64		last_seq;
	int64		high_seq;
} EsProjectionRow;

extern char *EsProjectionQualifiedName(const char *relname);
extern uint64 EsProjectionRegistryExec(const char *sql, bool write, int nargs,
									   Oid *types, Datum *values,
									   const char *nulls);
extern char *EsProjectionSpiText(uint64 i, int col);
extern int64 EsProjectionSpiInt64(uint64 i, int col);
extern bool EsProjectionLock(const char *name, bool skip_locked,
							 EsProjectionRow *row);
extern Oid	EsProjectionPeekOwner(const char *name);
extern void EsProjectionInvalidateRegistry(void);
extern void EsProjectionUpdatePosition(const char *name, const char *state,
									   const char *cursor, int64 last_seq,
									   int64 high_seq, int64 applied_delta,
									   bool clear_error);
extern void EsProjectionMarkFailed(const char *name, ErrorData *edata,
								   int64 seq);
extern List *EsProjectionRunnable(void);

/* ------------------------------------------------------ es_projection_step.c */

extern int	EsProjectionBatch;

extern void EsProjectionRunReset(const EsHandlerProjection *p);
extern int64 EsProjectionCatchUpInline(const EsHandlerProjection *p,
									   int64 after_seq, int64 *last);
extern int64 EsProjectionStepAsync(EsProjectionRow *row, int64 max,
								   bool *failed);
extern int64 EsProjectionStep(const char *name, bool *more);

/* ----------------------------------------------------------- es_projection.c */

/* The advisory lock tag keys of a database's worker (field4 = 3). */
#define ES_WORKER_LOCK_KEY1 0x45534C47	/* "ESLG" */
#define ES_WORKER_LOCK_KEY2 0x50524A57	/* "PRJW" */

struct BackgroundWorker;
struct LOCKTAG;

extern void EsProjectionInit(void);
extern bool EsProjectionDatabaseWanted(const char *dbname);
extern void EsProjectionWorkerLockTag(struct LOCKTAG *tag, Oid dboid);
extern void EsProjectionWorkerSpec(struct BackgroundWorker *worker, Oid dboid,
								   const char *dbname);

/* ---------------------------------------------------------------- es_worker.c */

extern void EsWorkerInit(void);
extern void EsWorkerWakeLauncher(Oid dboid);

#endif							/* ES_PROJECTION_H */
