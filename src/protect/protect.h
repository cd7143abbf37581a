/*-------------------------------------------------------------------------
 *
 * protect.h
 *	  Declarations of the protect layer of es_ledger, grouped by the file
 *	  that defines them.
 *
 * src/protect/: what keeps the log immutable whoever asks: the es_log
 * table access method (es_am), the verified restore path (es_restore),
 * the object-access hooks (es_hooks: drop guard, owner guard, name
 * reservation) and the DDL guard event trigger (es_ddl). Built on store/
 * and model/.
 *
 * A file of src/protect/ includes this header only; it may use what this
 * header and the headers below it declare (store/, model/), never a
 * folder above. `make check-layers` checks includes and calls.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_PROTECT_H
#define ES_PROTECT_H

#include "../store/store.h"

/* ---------------------------------------------------------------- es_hooks.c */

extern void EsHooksInit(void);

/* -------------------------------------------------------------- es_restore.c */

extern void EsRestoreCheckEvents(Relation events, TupleTableSlot **slots,
								 int nslots);

#endif							/* ES_PROTECT_H */
