/*-------------------------------------------------------------------------
 *
 * es_digest.c
 *	  Digests of the log: es_digest gives one, kept outside the database;
 *	  es_verify_digest proves later that the log up to its position is
 *	  unchanged.
 *
 * The digest.  es_digest() waits (without blocking new writers, as CREATE
 * INDEX CONCURRENTLY does) for every transaction that had drawn a seq when
 * it started, so that no event at or below the largest seq then drawn can
 * still appear or vanish; then, reading a fresh snapshot, it recomputes
 * each account's hash chain over its events with seq <= that position
 * (never trusting a stored hash) and hashes the heads:
 *
 *	  digest = "ESDG" | uint16 format 1 | int64 seq |
 *			   SHA-256("ESDG" | uint16 1 | int64 seq |
 *					   for each account, by account_id:
 *						 int64 account_id | int64 version | head hash[32])
 *
 * 46 bytes, integers big-endian.  es_verify_digest(seq, digest) recomputes
 * the same from the log as it is now: any event at or before seq that
 * changed, vanished or was inserted changes some head, and so the digest.
 *
 * The heads come from the (account_id, version) index; the rows at or
 * before the position are also counted in the table itself (CountUpTo), so
 * a row the index does not show changes the digest too.
 *
 * The restore check.  A dump's checksums and hash chains prove only that
 * its log is consistent: whoever edits the file can recompute them (leave
 * out an account's last withdrawal and fix its es_accounts row, and every
 * check of es_verify still passes).  Only a digest kept outside the dump
 * proves that the restored log is the one that was dumped.  So a
 * transaction that restores rows into es_events (es_ledger.restore on,
 * EsGuardRestoredLog) must, before it commits (XACT_EVENT_PRE_COMMIT or
 * PRE_PREPARE), have its log match es_ledger.restore_digest, the digest
 * es_digest() gave when the dump was made (hex, "\x" optional): the digest
 * is recomputed from the restored rows (SnapshotSelf: this transaction's
 * rows, the table being locked against other writers by the restore
 * grant) and the transaction fails with ES012 if they differ.  Events
 * restored after the digest's seq are checked for consistency only and
 * counted in a WARNING.  Without the setting the restore fails (55000); the
 * value 'none' restores without that proof, with a WARNING.
 *
 * Locks: AccessShareLock on es_events and its indexes; es_digest also waits
 * for the writers that had drawn a seq (WaitForLockers on the sequence).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "common/cryptohash.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

#include "query.h"

#define ES_DIGEST_MAGIC		"ESDG"
#define ES_DIGEST_FORMAT	1
#define ES_DIGEST_LEN		(4 + 2 + 8 + ES_HASH_LEN)

/* es_ledger.restore_digest: the digest a restore of the log must match. */
static char *EsRestoreDigest = NULL;

/* ------------------------------------------------------------------ digest */

/* Append a big-endian int64 to a SHA-256 computation. */
static void
HashInt64(pg_cryptohash_ctx *ctx, int64 v)
{
	uint64		n = pg_hton64((uint64) v);

	if (pg_cryptohash_update(ctx, (const uint8 *) &n, sizeof(n)) < 0)
		elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
}

/* Append bytes to a SHA-256 computation. */
static void
HashBytes(pg_cryptohash_ctx *ctx, const void *p, size_t len)
{
	if (pg_cryptohash_update(ctx, p, len) < 0)
		elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
}

/* The digest header: magic, format, position. */
static void
HashHeader(pg_cryptohash_ctx *ctx, int64 seq)
{
	uint16		format = pg_hton16(ES_DIGEST_FORMAT);

	HashBytes(ctx, ES_DIGEST_MAGIC, 4);
	HashBytes(ctx, &format, sizeof(format));
	HashInt64(ctx, seq);
}

/* Feed one account's recomputed head into the digest. */
static void
HashHead(pg_cryptohash_ctx *ctx, int64 account_id, int64 version,
		 const uint8 *head)
{
	HashInt64(ctx, account_id);
	HashInt64(ctx, version);
	HashBytes(ctx, head, ES_HASH_LEN);
}

/* How many rows of es_events, read in the table itself, have seq <= seq. */
static int64
CountUpTo(int64 seq, Snapshot snapshot)
{
	Relation	heap = EsRowOpenTable(ES_REL_EVENTS, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	TableScanDesc scan = table_beginscan(heap, snapshot, 0, NULL);
	int64		n = 0;

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d;

		CHECK_FOR_INTERRUPTS();
		d = slot_getattr(slot, ES_EV_ATT_SEQ, &isnull);
		if (!isnull && DatumGetInt64(d) <= seq)
			n++;
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(heap, AccessShareLock);
	return n;
}

/*
 * The digest of the log at position seq, recomputed from the events with
 * seq <= the position read with snapshot (never from stored hashes).
 * Returns false, with *why, if a row at or before the position cannot be
 * read or has an unknown type; out gets ES_DIGEST_LEN bytes otherwise, and
 * *later (if not NULL) the number of events after the position.
 */
static bool
ComputeDigest(int64 seq, Snapshot snapshot, uint8 *out, const char **why,
			  int64 *later)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	EsEventSealer sealer;
	EsScanIter *it;
	int64		account_id = 0;
	int64		version = 0;
	uint8		head[ES_HASH_LEN];
	int64		events = 0;
	bool		ok = true;
	uint16		format = pg_hton16(ES_DIGEST_FORMAT);
	uint64		nseq = pg_hton64((uint64) seq);
	int64		indexed = 0;
	int64		after = 0;

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0)
		elog(ERROR, "could not start SHA-256");
	HashHeader(ctx, seq);
	EsEventSealerInit(&sealer);
	it = EsScanBegin(ES_REL_EVENTS, ES_REL_EVENTS_VERSION_IDX, false, 0,
					 snapshot);
	while (EsScanNext(it))
	{
		EsEvent		ev;
		const char *problem = EsScanDecodeEvent(it, &ev);
		uint32		checksum;

		if (++events % ES_SCAN_PROGRESS_EVENTS == 0)
			EsScanReportProgress("digest", events);
		if (problem || ev.type == ES_EV_INVALID)
		{
			if (ev.seq <= seq)
			{
				*why = psprintf("event seq %lld cannot be read: %s",
								(long long) ev.seq,
								problem ? problem : "its type is unknown");
				ok = false;
				break;
			}
			continue;
		}
		if (ev.seq > seq)
		{
			after++;
			continue;
		}
		indexed++;
		if (ev.account_id != account_id)
		{
			if (version > 0)
				HashHead(ctx, account_id, version, head);
			account_id = ev.account_id;
			version = 0;
			memcpy(head, EsEventGenesisHash(), ES_HASH_LEN);
		}
		EsEventComputeSeal(&sealer, &ev, head, &checksum, head);
		version = ev.version;
	}
	EsScanEnd(it);
	EsEventSealerFree(&sealer);

	/*
	 * The heads come from the (account_id, version) index; a row the index
	 * does not show (a catalog trick) must change the digest too, so the rows
	 * at or before the position are also counted in the table itself.
	 */
	if (ok)
	{
		int64		physical = CountUpTo(seq, snapshot);

		if (physical != indexed)
		{
			*why = psprintf("the table holds %lld events at or before seq %lld, its (account_id, version) index %lld",
							(long long) physical, (long long) seq,
							(long long) indexed);
			ok = false;
		}
	}
	if (ok)
	{
		if (version > 0)
			HashHead(ctx, account_id, version, head);
		memcpy(out, ES_DIGEST_MAGIC, 4);
		memcpy(out + 4, &format, 2);
		memcpy(out + 6, &nseq, 8);
		if (pg_cryptohash_final(ctx, out + 14, ES_HASH_LEN) < 0)
			elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
	}
	pg_cryptohash_free(ctx);
	if (later)
		*later = after;
	return ok;
}

/*
 * es_digest() RETURNS TABLE(seq bigint, digest bytea)
 *
 * A digest of the whole log at the largest seq drawn so far (46 bytes; see
 * the file header), to be kept outside the database.  Waits, without
 * blocking new writers, for the transactions that had drawn a seq to end,
 * so that the log at and below that seq is final; so it cannot run in a
 * transaction that has written (25001) nor during recovery (55000: run it
 * on the primary; es_verify_digest works on a standby).  ES012 if a row at
 * or before the position cannot be read.
 */
PG_FUNCTION_INFO_V1(es_digest);
Datum
es_digest(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LOCKTAG		tag;
	int64		seq;
	uint8		digest[ES_DIGEST_LEN];
	const char *why = NULL;
	bytea	   *b;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	Snapshot	snapshot;

	InitMaterializedSRF(fcinfo, 0);
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("es_digest cannot run during recovery"),
				 errdetail("It must wait for the primary's writers, which a standby cannot see."),
				 errhint("Run es_digest on the primary; es_verify_digest works on a standby.")));
	if (TransactionIdIsValid(GetTopTransactionIdIfAny()))
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("es_digest cannot run in a transaction that has written"),
				 errdetail("It waits for every writer to finish, this transaction included."),
				 errhint("Run es_digest in a transaction of its own.")));

	/* Every seq drawn so far is at most this; wait for their transactions. */
	seq = EsScanMaxKey(ES_REL_EVENTS, ES_REL_EVENTS_SEQ_IDX, ES_EV_ATT_SEQ);
	SET_LOCKTAG_RELATION(tag, MyDatabaseId, EsRowRelid(ES_REL_EVENTS_SEQ));
	WaitForLockers(tag, ShareLock, false);

	snapshot = RegisterSnapshot(GetLatestSnapshot());
	if (!ComputeDigest(seq, snapshot, digest, &why, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_ES_INTEGRITY),
				 errmsg("cannot digest the log: %s", why),
				 errhint("Run es_verify() to see what is damaged.")));
	UnregisterSnapshot(snapshot);

	b = palloc(VARHDRSZ + ES_DIGEST_LEN);
	SET_VARSIZE(b, VARHDRSZ + ES_DIGEST_LEN);
	memcpy(VARDATA(b), digest, ES_DIGEST_LEN);
	values[0] = Int64GetDatum(seq);
	values[1] = PointerGetDatum(b);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/*
 * es_verify_digest(seq bigint, digest bytea) RETURNS boolean
 *
 * True if the log up to seq is what it was when es_digest gave digest:
 * recomputes the digest from the events with seq <= the position as the
 * statement's snapshot sees them, never trusting a stored hash; false if
 * any of them changed, vanished or was inserted, or cannot be read.
 * 22023 for a digest that is not one of es_digest's, or of another seq.
 * Reads with AccessShareLock only; works on a hot standby.
 */
PG_FUNCTION_INFO_V1(es_verify_digest);
Datum
es_verify_digest(PG_FUNCTION_ARGS)
{
	int64		seq = PG_GETARG_INT64(0);
	bytea	   *given = PG_GETARG_BYTEA_PP(1);
	uint8		digest[ES_DIGEST_LEN];
	const char *why = NULL;
	uint64		nseq;

	if (VARSIZE_ANY_EXHDR(given) != ES_DIGEST_LEN ||
		memcmp(VARDATA_ANY(given), ES_DIGEST_MAGIC, 4) != 0 ||
		pg_ntoh16(*(uint16 *) (VARDATA_ANY(given) + 4)) != ES_DIGEST_FORMAT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("not an es_ledger digest"),
				 errdetail("A digest of es_digest is %d bytes beginning with \"ESDG\" and format 1.",
						   ES_DIGEST_LEN)));
	memcpy(&nseq, VARDATA_ANY(given) + 6, 8);
	if ((int64) pg_ntoh64(nseq) != seq)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the digest is of seq %lld, not %lld",
						(long long) (int64) pg_ntoh64(nseq), (long long) seq),
				 errdetail("Pass the seq es_digest returned with the digest.")));
	if (!ComputeDigest(seq, GetActiveSnapshot(), digest, &why, NULL))
	{
		ereport(NOTICE,
				(errmsg("the log up to seq %lld cannot be digested: %s",
						(long long) seq, why)));
		PG_RETURN_BOOL(false);
	}
	PG_RETURN_BOOL(memcmp(digest, VARDATA_ANY(given), ES_DIGEST_LEN) == 0);
}

/* ---------------------------------------------------------- restore check */

/*
 * Decode a digest given as text (hex, with or without a leading "\x")
 * into out; false if it is not one of es_digest's (length, magic, format).
 */
static bool
ParseDigestText(const char *hex, uint8 *out)
{
	size_t		len;

	if (hex[0] == '\\' && hex[1] == 'x')
		hex += 2;
	len = strlen(hex);
	if (len != 2 * ES_DIGEST_LEN)
		return false;
	for (int i = 0; i < ES_DIGEST_LEN; i++)
	{
		int			v = 0;

		for (int j = 0; j < 2; j++)
		{
			char		c = hex[2 * i + j];

			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= c - '0';
			else if (c >= 'a' && c <= 'f')
				v |= c - 'a' + 10;
			else if (c >= 'A' && c <= 'F')
				v |= c - 'A' + 10;
			else
				return false;
		}
		out[i] = (uint8) v;
	}
	return memcmp(out, ES_DIGEST_MAGIC, 4) == 0 &&
		pg_ntoh16(*(uint16 *) (out + 4)) == ES_DIGEST_FORMAT;
}

/* GUC check hook of es_ledger.restore_digest: empty, "none" or a digest. */
static bool
CheckRestoreDigest(char **newval, void **extra, GucSource source)
{
	uint8		digest[ES_DIGEST_LEN];

	if (*newval == NULL || (*newval)[0] == '\0' ||
		pg_strcasecmp(*newval, "none") == 0 || ParseDigestText(*newval, digest))
		return true;
	GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
	GUC_check_errmsg("invalid value for es_ledger.restore_digest");
	GUC_check_errdetail("Give the digest es_digest() returned (%d bytes in hex, beginning 4553444700), or none.",
						ES_DIGEST_LEN);
	return false;
}

/*
 * The restore check (see the file header): the log this transaction
 * restored must match es_ledger.restore_digest.  ES012 if it does not, or
 * cannot be digested; 55000 if no digest was given.
 */
static void
CheckRestoredLog(void)
{
	uint8		given[ES_DIGEST_LEN];
	uint8		digest[ES_DIGEST_LEN];
	uint64		nseq;
	int64		seq;
	int64		later = 0;
	const char *why = NULL;

	if (EsRestoreDigest == NULL || EsRestoreDigest[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("a restore of the es_ledger log needs es_ledger.restore_digest"),
				 errdetail("Only a digest kept outside the dump proves that the restored events are those that were dumped: whoever edits a dump can recompute its checksums and hash chains."),
				 errhint("Set es_ledger.restore_digest to the digest es_digest() gave when the dump was made, or to none to restore without that proof.")));
	if (pg_strcasecmp(EsRestoreDigest, "none") == 0)
	{
		ereport(WARNING,
				(errmsg("the restored es_ledger log was not checked against a digest"),
				 errdetail("es_ledger.restore_digest is none: the restore proved the log consistent, not unedited."),
				 errhint("Check it now with es_verify_digest(seq, digest) and a digest kept outside the dump.")));
		return;
	}
	/* The GUC's check hook refused anything else. */
	if (!ParseDigestText(EsRestoreDigest, given))
		elog(ERROR, "es_ledger.restore_digest holds no digest");
	memcpy(&nseq, given + 6, 8);
	seq = (int64) pg_ntoh64(nseq);

	if (!ComputeDigest(seq, SnapshotSelf, digest, &why, &later))
		ereport(ERROR,
				(errcode(ERRCODE_ES_INTEGRITY),
				 errmsg("the restored es_ledger log cannot be digested: %s", why),
				 errdetail("The restore is undone.")));
	if (memcmp(digest, given, ES_DIGEST_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_ES_INTEGRITY),
				 errmsg("the restored es_ledger log does not match es_ledger.restore_digest"),
				 errdetail("The events up to seq %lld recomputed from the restored rows give another digest: the dump was changed after the digest was taken, lacks events, or is of another ledger; the restore is undone.",
						   (long long) seq),
				 errhint("Restore an unaltered dump, with the digest taken when it was made.")));
	if (later > 0)
		ereport(WARNING,
				(errmsg("%lld restored events come after the digest's seq %lld",
						(long long) later, (long long) seq),
				 errdetail("Those events were checked for consistency only: the digest proves the log up to seq %lld.",
						   (long long) seq),
				 errhint("Take the digest right before the dump, with no command in between.")));
}

/*
 * Transaction callback: a transaction that restored rows into the log runs
 * the restore check before it commits or is prepared.
 */
static void
EsDigestXactCallback(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_PRE_COMMIT && event != XACT_EVENT_PRE_PREPARE)
		return;
	if (!EsGuardRestoring() || !EsGuardRestoredLog())
		return;
	CheckRestoredLog();
}

/*
 * Define es_ledger.restore_digest and install the restore check; called once
 * from _PG_init.  A value set before the library was loaded
 * (PGOPTIONS='-c es_ledger.restore_digest=...') is taken over.
 */
void
EsDigestInit(void)
{
	DefineCustomStringVariable("es_ledger.restore_digest",
							   "The digest a restore of the log must match.",
							   "A transaction that restores es_events with es_ledger.restore on fails "
							   "unless its log matches this digest of es_digest() (hex), taken when the "
							   "dump was made; none restores without that proof.",
							   &EsRestoreDigest,
							   "",
							   PGC_SUSET,
							   0,
							   CheckRestoreDigest, NULL, NULL);
	RegisterXactCallback(EsDigestXactCallback, NULL);
}
