/*-------------------------------------------------------------------------
 *
 * query.h
 *	  Declarations of the query layer of es_ledger, grouped by the file
 *	  that defines them.
 *
 * src/query/: the read side, from the log alone: es_replay (es_replay),
 * es_history, es_balance_at and es_accounts_at (es_history), es_read
 * (es_read), es_verify (es_verify), es_digest, es_verify_digest and the
 * restore check (es_digest), es_stats_events (es_tally). Built on store/
 * and model/; nothing here writes the log.
 *
 * A file of src/query/ includes this header only; it may use what this
 * header and the headers below it declare (apply/, protect/, store/,
 * model/), never a folder above. `make check-layers` checks includes and
 * calls.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_QUERY_H
#define ES_QUERY_H

#include "../apply/apply.h"

/* ----------------------------------------------------------------- es_read.c */

/*
 * A position in the log as es_read orders it: the (tx, seq) of the last
 * event a follower processed.  Its text form ("es1:<tx>:<seq>:<crc>") is
 * opaque to users.
 */
typedef struct EsReadCursor
{
	FullTransactionId tx;		/* the writing transaction's full xid */
	int64		seq;
} EsReadCursor;

#define ES_READ_CURSOR_PREFIX	"es1"	/* cursor format version 1 */
#define ES_READ_MAX_COUNT		100000	/* most events per es_read call */

/*
 * Called by EsReadBatch with each event and the cursor after it; both are
 * valid during the call only.
 */
typedef void (*EsReadCallback) (const EsEvent *ev, const EsReadCursor *pos,
								void *arg);

/*
 * What EsReadBatchFiltered hands over: events of one account (account_id,
 * 0: any) and of some types (types, a bit per EsEventType by
 * ES_READ_TYPE_BIT; 0: any), scanning at most max_scan events (0: no
 * bound but max_count).
 */
typedef struct EsReadFilter
{
	int64		account_id;
	uint32		types;
	int64		max_scan;
} EsReadFilter;

#define ES_READ_TYPE_BIT(type)	((uint32) 1 << (type))
#define ES_READ_SCAN_FACTOR		10	/* a filtered es_read scans at most this
									 * many times max_count events */

extern void EsReadParseCursor(const char *text, EsReadCursor *cursor);
extern char *EsReadFormatCursor(const EsReadCursor *cursor);
extern int64 EsReadBatch(const EsReadCursor *after, int64 max_count,
						 EsReadCallback callback, void *arg);
extern int64 EsReadBatchFiltered(const EsReadCursor *after, int64 max_count,
								 const EsReadFilter *filter,
								 EsReadCallback callback, void *arg,
								 EsReadCursor *scanned);

/* ---------------------------------------------------------------- es_verify.c */

/* Defines es_ledger.verify_strategy (a developer setting). */
extern void EsVerifyInit(void);

/* ---------------------------------------------------------------- es_digest.c */

extern void EsDigestInit(void);

#endif							/* ES_QUERY_H */
