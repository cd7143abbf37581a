/*-------------------------------------------------------------------------
 *
 * es_event.c
 *	  The bottom layer: an event's type names, its canonical encoding, its
 *	  checksum and its link in the account's hash chain.
 *
 * The canonical encoding is what the checksum and the hash cover.  It must
 * be a pure function of the event's stored columns so that a verifier can
 * recompute it from es_events alone, on any machine, at any time:
 *
 *	  uint32 magic "ESEV" | uint16 format version
 *	  int64 seq | int64 account_id | int64 version
 *	  text type | int64 amount | text data (jsonb's canonical text)
 *	  uint8 has_command_id [text command_id]
 *	  int64 recorded_at | int64 effective_at
 *
 * Integers are big-endian, texts are a uint32 byte length and the bytes.
 * jsonb's text output is canonical (keys in jsonb's order: by length, then
 * bytewise; one space after each ':' and ','), so equal data always encodes
 * equally.
 *
 *	  checksum = CRC-32C(encoding)
 *	  hash	   = SHA-256(previous hash of the account || encoding)
 *
 * The first event of an account links to the genesis hash, 32 zero bytes.
 * Each event stores the format version it was sealed with (es_events.format).
 * There is one version so far and EsEventEncode writes it; a new
 * ES_EVENT_FORMAT_VERSION will come with an encoder for the old one, chosen
 * by that column, so old events never need re-sealing.
 *
 * Nothing here touches the database: no locks, no catalog access.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "port/pg_bswap.h"
#include "port/pg_crc32c.h"

#include "model.h"

/* Event type names, indexed by EsEventType; PascalCase past tense. */
static const char *const EsEventTypeNames[] = {
	[ES_EV_INVALID] = NULL,
	[ES_EV_ACCOUNT_OPENED] = "AccountOpened",
	[ES_EV_DEPOSITED] = "Deposited",
	[ES_EV_WITHDRAWN] = "Withdrawn",
	[ES_EV_TRANSFER_SENT] = "TransferSent",
	[ES_EV_TRANSFER_RECEIVED] = "TransferReceived",
	[ES_EV_ACCOUNT_FROZEN] = "AccountFrozen",
	[ES_EV_ACCOUNT_UNFROZEN] = "AccountUnfrozen",
	[ES_EV_ACCOUNT_CLOSED] = "AccountClosed",
	[ES_EV_LIMITS_CHANGED] = "LimitsChanged",
	[ES_EV_TRANSFER_RESERVED] = "TransferReserved",
	[ES_EV_TRANSFER_POSTED] = "TransferPosted",
	[ES_EV_TRANSFER_VOIDED] = "TransferVoided",
	[ES_EV_TRANSFER_EXPIRED] = "TransferExpired",
};

static const uint8 EsGenesis[ES_HASH_LEN] = {0};

/* The text name of an event type. */
const char *
EsEventTypeName(EsEventType type)
{
	if (type <= ES_EV_INVALID || type > ES_EV_LAST)
		elog(ERROR, "invalid es_ledger event type %d", (int) type);
	return EsEventTypeNames[type];
}

/* The event type of a name, or ES_EV_INVALID when it is none of ours. */
EsEventType
EsEventTypeFromName(const char *name)
{
	for (int i = ES_EV_ACCOUNT_OPENED; i <= ES_EV_LAST; i++)
		if (strcmp(EsEventTypeNames[i], name) == 0)
			return (EsEventType) i;
	return ES_EV_INVALID;
}

/* The hash an account's first event links to. */
const uint8 *
EsEventGenesisHash(void)
{
	return EsGenesis;
}

/* Append a big-endian int64. */
static void
AppendInt64(StringInfo buf, int64 v)
{
	uint64		n = pg_hton64((uint64) v);

	appendBinaryStringInfo(buf, (const char *) &n, sizeof(n));
}

/* Append a length-prefixed byte string. */
static void
AppendText(StringInfo buf, const char *s, size_t len)
{
	uint32		n = pg_hton32((uint32) len);

	appendBinaryStringInfo(buf, (const char *) &n, sizeof(n));
	appendBinaryStringInfo(buf, s, len);
}

/* Write the canonical encoding of ev (see the file header) into buf. */
void
EsEventEncode(const EsEvent *ev, StringInfo buf)
{
	uint32		magic = pg_hton32(ES_EVENT_MAGIC);
	uint16		version = pg_hton16(ES_EVENT_FORMAT_VERSION);
	const char *type = EsEventTypeName(ev->type);
	uint32		datalen = 0;
	int			lenpos;
	uint8		has_id = ev->command_id != NULL;

	appendBinaryStringInfo(buf, (const char *) &magic, sizeof(magic));
	appendBinaryStringInfo(buf, (const char *) &version, sizeof(version));
	AppendInt64(buf, ev->seq);
	AppendInt64(buf, ev->account_id);
	AppendInt64(buf, ev->version);
	AppendText(buf, type, strlen(type));
	AppendInt64(buf, ev->amount);
	/* jsonb's text, written in place after a length filled in afterwards. */
	lenpos = buf->len;
	appendBinaryStringInfo(buf, (const char *) &datalen, sizeof(datalen));
	JsonbToCString(buf, &ev->data->root, VARSIZE(ev->data));
	datalen = pg_hton32((uint32) (buf->len - lenpos - sizeof(datalen)));
	memcpy(buf->data + lenpos, &datalen, sizeof(datalen));
	appendBinaryStringInfo(buf, (const char *) &has_id, 1);
	if (has_id)
		AppendText(buf, ev->command_id, strlen(ev->command_id));
	AppendInt64(buf, ev->recorded_at);
	AppendInt64(buf, ev->effective_at);
}

/*
 * Start a sealer: a SHA-256 context and an encoding buffer reused from event
 * to event, for a caller that seals or checks many (the verifier); creating
 * them per event costs more than hashing a small event.
 */
void
EsEventSealerInit(EsEventSealer *sealer)
{
	sealer->ctx = pg_cryptohash_create(PG_SHA256);
	if (sealer->ctx == NULL)
		elog(ERROR, "could not create a SHA-256 context");
	initStringInfo(&sealer->buf);
}

/* Release what a sealer holds. */
void
EsEventSealerFree(EsEventSealer *sealer)
{
	pg_cryptohash_free(sealer->ctx);
	pfree(sealer->buf.data);
}

/*
 * The checksum and hash link ev would be sealed with after prev_hash (the
 * previous hash of its account, EsEventGenesisHash() for its first event),
 * without changing ev: what the verifier recomputes.  hash may be
 * prev_hash.  sealer may be NULL (one is made for this event).
 */
void
EsEventComputeSeal(EsEventSealer *sealer, const EsEvent *ev,
				   const uint8 *prev_hash, uint32 *checksum, uint8 *hash)
{
	EsEventSealer own;
	pg_crc32c	crc;

	if (sealer == NULL)
	{
		EsEventSealerInit(&own);
		sealer = &own;
	}
	resetStringInfo(&sealer->buf);
	EsEventEncode(ev, &sealer->buf);

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, sealer->buf.data, sealer->buf.len);
	FIN_CRC32C(crc);
	*checksum = crc;

	if (pg_cryptohash_init(sealer->ctx) < 0 ||
		pg_cryptohash_update(sealer->ctx, prev_hash, ES_HASH_LEN) < 0 ||
		pg_cryptohash_update(sealer->ctx, (const uint8 *) sealer->buf.data,
							 sealer->buf.len) < 0 ||
		pg_cryptohash_final(sealer->ctx, hash, ES_HASH_LEN) < 0)
		elog(ERROR, "could not compute SHA-256 of event %lld: %s",
			 (long long) ev->seq, pg_cryptohash_error(sealer->ctx));
	if (sealer == &own)
		EsEventSealerFree(&own);
}

/*
 * Compute ev's checksum and its hash link from the previous hash of its
 * account (EsEventGenesisHash() for an account's first event).
 */
void
EsEventSeal(EsEvent *ev, const uint8 *prev_hash)
{
#ifdef ES_BENCH_NO_CHAIN
	/* Benchmark builds only (bench/instructions.sh): what sealing costs. */
	ev->checksum = 0;
	memcpy(ev->hash, prev_hash, ES_HASH_LEN);
#else
	EsEventComputeSeal(NULL, ev, prev_hash, &ev->checksum, ev->hash);
#endif
}
