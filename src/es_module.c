/*-------------------------------------------------------------------------
 *
 * es_module.c
 *	  Module entry point of es_ledger: the module magic block and _PG_init.
 *
 * The library is loaded on first use of any es_ledger function or of a
 * table using the es_log access method; it needs no
 * shared_preload_libraries entry and keeps no shared memory.  Listed in
 * shared_preload_libraries, it also registers the background launcher of
 * the async projection workers (es_worker.c) and reserves the shared
 * counters of es_stats (es_stats.c); without it, async projections are
 * applied by es_projection_run() and no command or rejection is counted.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

#include "projection/projection.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* Called once when the library is loaded into a backend. */
void
_PG_init(void)
{
	EsGuardInit();
	EsHooksInit();
	EsCacheInit();
	EsWriteInit();
	EsProjectionInit();
	EsWorkerInit();
	EsSnapInit();
	EsVerifyInit();
	EsDigestInit();
	EsStatsInit();
	EsCommandInit();			/* last: reserves the es_ledger. GUC prefix */
}
