/*-------------------------------------------------------------------------
 *
 * projection.h
 *	  Declarations of the projection layer of es_ledger, grouped by the file
 *	  that defines them.
 *
 * src/projection/: user projections: the registry, the step that applies
 * a projection's next events, the es_projection_* SQL functions
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
extern List *EsProjectionRunnable(void);
extern int64 EsProjectionStep(const char *name, bool *more);

/* ---------------------------------------------------------------- es_worker.c */

extern void EsWorkerInit(void);
extern void EsWorkerWakeLauncher(Oid dboid);

#endif							/* ES_PROJECTION_H */
