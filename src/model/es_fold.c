/*-------------------------------------------------------------------------
 *
 * es_fold.c
 *	  The fold: S(n) = S(n-1) + e(n).  EsFoldEvent is the one function that
 *	  applies an event to an account state.  es_apply uses it to compute the
 *	  projection row it writes, es_replay uses it to rebuild an account from
 *	  the log, and comparing the two checks the projection: they cannot
 *	  disagree unless the data does.
 *
 * The fold is deterministic: it reads nothing but the state and the event
 * (no clock, no random numbers, no catalog or table look-ups).  It does not
 * judge business rules (overdraft, caps, status): those are checked on the
 * command before its events exist, and a logged event is a fact.  It does
 * check what no fact may break: versions increase (a replay filtered on valid
 * time skips events, so gaps are left to the unique (account_id, version)
 * index and to whoever checks the whole log), an account is
 * opened before anything else happens to it, and no sum wraps (22003).
 *
 * Two-phase transfers.  Reservations move no money (amount 0), so the fold
 * counts them from the type and data: each event of a two-phase transfer
 * names its side by carrying the counterparty, "to" on the debit side
 * (pending_out), "from" on the credit side (pending_in), and its
 * "transfer_id".  TransferReserved adds data "reserved" to the side's
 * pending amount; TransferPosted, TransferVoided and TransferExpired each
 * release the whole reservation ("released"), and TransferPosted also moves
 * its amount (at most what it releases; negative on the debit side,
 * positive on the credit side).  No pending amount ever goes below zero:
 * an event releasing more than its side holds cannot be folded.
 *
 * The transfer fold (EsFoldTransfer) is the same idea for a row of
 * es_transfers: the debit side's events of one transfer, folded in order
 * (TransferSent for an immediate transfer; TransferReserved then at most one
 * of TransferPosted, TransferVoided, TransferExpired for a pending one).
 * It checks what no transfer may break: one creating event, a finishing
 * event only while pending and releasing exactly the reservation, at most
 * the reserved amount posted, posting only before the expiry time and
 * expiring only at or after it, both times being recorded_at values of the
 * log (created_at + timeout), so replay decides as es_apply did.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/int.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"

#include "model.h"

static const char *const EsStatusNames[] = {
	[ES_ACCOUNT_NONE] = "none",
	[ES_ACCOUNT_OPEN] = "open",
	[ES_ACCOUNT_FROZEN] = "frozen",
	[ES_ACCOUNT_CLOSED] = "closed",
};

/* The text of a status, as stored in es_accounts.status. */
const char *
EsFoldStatusName(EsAccountStatus status)
{
	if ((int) status < 0 || status > ES_ACCOUNT_CLOSED)
		elog(ERROR, "invalid es_ledger account status %d", (int) status);
	return EsStatusNames[status];
}

/* The status named by text; ES_ACCOUNT_NONE for an unknown name. */
EsAccountStatus
EsFoldStatusFromName(const char *name)
{
	for (int i = ES_ACCOUNT_OPEN; i <= ES_ACCOUNT_CLOSED; i++)
		if (strcmp(EsStatusNames[i], name) == 0)
			return (EsAccountStatus) i;
	return ES_ACCOUNT_NONE;
}

/* S(0): the state of an account before its first event. */
void
EsFoldInit(EsAccountState *state, int64 account_id)
{
	memset(state, 0, sizeof(*state));
	state->account_id = account_id;
	state->status = ES_ACCOUNT_NONE;
	memcpy(state->last_hash, EsEventGenesisHash(), ES_HASH_LEN);
}

/* Report an event that cannot be folded: the log contradicts itself. */
static void
pg_attribute_noreturn()
BadEvent(const EsEvent *ev, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_ES_INTEGRITY),
			 errmsg("event %lld of account %lld cannot be folded: %s",
					(long long) ev->seq, (long long) ev->account_id, why),
			 errdetail("The log contradicts itself: it was changed behind es_apply's back.")));
	pg_unreachable();
}

/* A field of an event's data, or NULL. */
static JsonbValue *
DataField(const EsEvent *ev, const char *key)
{
	return getKeyJsonValueFromContainer(&ev->data->root, key, strlen(key),
										NULL);
}

/* Is a text field of an event's data there? */
static bool
DataTextOk(const EsEvent *ev, const char *key)
{
	JsonbValue *v = DataField(ev, key);

	return v != NULL && v->type == jbvString;
}

/* A text field of an event's data, checked by EsFoldProblem. */
static char *
DataText(const EsEvent *ev, const char *key)
{
	JsonbValue *v = DataField(ev, key);

	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * An integer field of an event's data: false when the field is absent or
 * JSON null; *ok false when it is there but not an integer in range.
 */
static bool
DataInt64(const EsEvent *ev, const char *key, int64 *result, bool *ok)
{
	JsonbValue *v = DataField(ev, key);
	bool		have_error = false;

	*ok = true;
	if (v == NULL || v->type == jbvNull)
		return false;
	if (v->type != jbvNumeric)
	{
		*ok = false;
		return false;
	}
	{
		/* The integer's text, as es_apply wrote it: digits, maybe a sign. */
		char	   *text = DatumGetCString(DirectFunctionCall1(numeric_out,
															   NumericGetDatum(v->val.numeric)));
		char	   *end;

		errno = 0;
		*result = strtoi64(text, &end, 10);
		have_error = errno != 0 || end == text ||*end != '\0';

		pfree(text);
	}
	if (have_error)
		*ok = false;
	return !have_error;
}

/* Are the limit fields an AccountOpened or LimitsChanged event sets sound? */
static bool
LimitsOk(const EsEvent *ev)
{
	int64		v;
	bool		ok1;
	bool		ok2;

	DataInt64(ev, "overdraft_limit", &v, &ok1);
	DataInt64(ev, "max_balance", &v, &ok2);
	return ok1 && ok2;
}

/* Read the limits an AccountOpened or LimitsChanged event sets. */
static void
FoldLimits(EsAccountState *state, const EsEvent *ev)
{
	int64		v;
	bool		ok;

	if (DataInt64(ev, "overdraft_limit", &v, &ok))
		state->overdraft_limit = v;
	if (DataField(ev, "max_balance") != NULL)
	{
		state->has_max_balance = DataInt64(ev, "max_balance", &v, &ok);
		state->max_balance = state->has_max_balance ? v : 0;
	}
}

static const char EsFoldOverflow[] = "the balance would leave the range of bigint";

/* ------------------------------------------------- two-phase transfers */

/*
 * The side of a two-phase transfer event: true for the debit side (its data
 * names "to"), false for the credit side ("from"); *ok false if it names
 * both or neither.
 */
static bool
PendingSide(const EsEvent *ev, bool *ok)
{
	bool		to = DataTextOk(ev, "to");
	bool		from = DataTextOk(ev, "from");

	*ok = to != from;
	return to;
}

/*
 * Why a two-phase transfer event cannot be folded into state, or NULL; sets
 * *pending_out to the account's pending_out after it.  See the file header.
 */
static const char *
PendingProblem(const EsAccountState *state, const EsEvent *ev,
			   int64 *pending_out)
{
	bool		ok;
	bool		debit = PendingSide(ev, &ok);
	int64		pending = debit ? state->pending_out : state->pending_in;
	int64		n;
	int64		after;

	if (!ok)
		return "a two-phase transfer event names exactly one of \"to\" and \"from\"";
	if (!DataTextOk(ev, "transfer_id"))
		return "a text field is missing from its data";
	if (ev->type == ES_EV_TRANSFER_RESERVED)
	{
		int64		timeout;

		if (!DataInt64(ev, "reserved", &n, &ok) || n <= 0)
			return "a reservation must reserve a positive amount";
		if (ev->amount != 0)
			return "an event of a type that moves no money has an amount";
		if (DataField(ev, "timeout") != NULL &&
			(!DataInt64(ev, "timeout", &timeout, &ok) || timeout <= 0 ||
			 timeout > ES_MAX_TIMEOUT_SECONDS))
			return "a reservation's timeout must be a positive number of seconds";
		if (pg_add_s64_overflow(pending, n, &after))
			return EsFoldOverflow;
	}
	else
	{
		if (!DataInt64(ev, "released", &n, &ok) || n <= 0)
			return "a release must release a positive amount";
		if (n > pending)
			return debit ? "it releases more than the account's pending_out" :
				"it releases more than the account's pending_in";
		after = pending - n;
		if (ev->type == ES_EV_TRANSFER_POSTED)
		{
			if (debit ? ev->amount >= 0 : ev->amount <= 0)
				return debit ? "a debit must have a negative amount" :
					"a credit must have a positive amount";
			if ((debit ? -ev->amount : ev->amount) > n)
				return "it posts more than it releases";
		}
		else if (ev->amount != 0)
			return "an event of a type that moves no money has an amount";
	}
	*pending_out = debit ? after : state->pending_out;
	return NULL;
}

/* Fold a two-phase transfer event's reservation or release into state. */
static void
FoldPending(EsAccountState *state, const EsEvent *ev)
{
	bool		ok;
	bool		debit = PendingSide(ev, &ok);
	int64	   *pending = debit ? &state->pending_out : &state->pending_in;
	int64		n;

	if (ev->type == ES_EV_TRANSFER_RESERVED)
	{
		DataInt64(ev, "reserved", &n, &ok);
		*pending += n;
	}
	else
	{
		DataInt64(ev, "released", &n, &ok);
		*pending -= n;
	}
}

static const char *const EsTransferStatusNames[] = {
	[ES_TRANSFER_NONE] = "none",
	[ES_TRANSFER_POSTED] = "posted",
	[ES_TRANSFER_PENDING] = "pending",
	[ES_TRANSFER_VOIDED] = "voided",
	[ES_TRANSFER_EXPIRED] = "expired",
};

/* The text of a transfer's status, as stored in es_transfers.status. */
const char *
EsFoldTransferStatusName(EsTransferStatus status)
{
	if ((int) status < 0 || status > ES_TRANSFER_EXPIRED)
		elog(ERROR, "invalid es_ledger transfer status %d", (int) status);
	return EsTransferStatusNames[status];
}

/* The transfer status named by text; ES_TRANSFER_NONE for an unknown name. */
EsTransferStatus
EsFoldTransferStatusFromName(const char *name)
{
	for (int i = ES_TRANSFER_POSTED; i <= ES_TRANSFER_EXPIRED; i++)
		if (strcmp(EsTransferStatusNames[i], name) == 0)
			return (EsTransferStatus) i;
	return ES_TRANSFER_NONE;
}

/*
 * Is ev an event of a transfer (immediate or two-phase)?  *debit_side says
 * which side it is on.  Only the debit side's events fold into the
 * transfer's es_transfers row.
 */
bool
EsFoldEventIsTransfer(const EsEvent *ev, bool *debit_side)
{
	bool		ok;

	switch (ev->type)
	{
		case ES_EV_TRANSFER_SENT:
			*debit_side = true;
			return true;
		case ES_EV_TRANSFER_RECEIVED:
			*debit_side = false;
			return true;
		case ES_EV_TRANSFER_RESERVED:
		case ES_EV_TRANSFER_POSTED:
		case ES_EV_TRANSFER_VOIDED:
		case ES_EV_TRANSFER_EXPIRED:
			*debit_side = PendingSide(ev, &ok);
			return ok;
		default:
			return false;
	}
}

/* The "transfer_id" of a transfer event's data, or NULL. */
char *
EsFoldEventTransferId(const EsEvent *ev)
{
	return DataTextOk(ev, "transfer_id") ? DataText(ev, "transfer_id") : NULL;
}

/* Is the created_at + timeout of a reservation event in range? */
static bool
ExpiresAt(const EsEvent *ev, bool *has, TimestampTz *expires_at)
{
	int64		timeout;
	bool		ok;

	*has = DataInt64(ev, "timeout", &timeout, &ok);
	if (!*has)
		return ok;
	return timeout > 0 && timeout <= ES_MAX_TIMEOUT_SECONDS &&
		!pg_add_s64_overflow(ev->recorded_at, timeout * USECS_PER_SEC,
							 expires_at);
}

/*
 * Why the debit-side event ev cannot be folded into transfer t (see the
 * file header), or NULL.  Never raises.
 */
const char *
EsFoldTransferProblem(const EsTransfer *t, const EsEvent *ev)
{
	bool		debit;
	char	   *id;
	int64		n;
	bool		ok;

	if (!EsFoldEventIsTransfer(ev, &debit) || !debit)
		return "it is not the debit side of a transfer";
	if (ev->type == ES_EV_TRANSFER_SENT || ev->type == ES_EV_TRANSFER_RESERVED)
	{
		bool		has;
		TimestampTz at;

		if (t->status != ES_TRANSFER_NONE)
			return "a transfer is created by one event";
		if (!DataTextOk(ev, "to") || !DataInt64(ev, "to_account_id", &n, &ok))
			return "the transfer's credit account is missing from its data";
		if (ev->type == ES_EV_TRANSFER_SENT && ev->amount >= 0)
			return "a debit must have a negative amount";
		if (ev->type == ES_EV_TRANSFER_RESERVED &&
			(!DataTextOk(ev, "transfer_id") || !ExpiresAt(ev, &has, &at) ||
			 !DataInt64(ev, "reserved", &n, &ok) || n <= 0))
			return "a reservation needs a transfer_id, a positive amount and a sound timeout";
		return NULL;
	}
	if (t->status == ES_TRANSFER_NONE)
		return "it finishes a transfer that was never created";
	if (t->status != ES_TRANSFER_PENDING)
		return "it finishes a transfer that is no longer pending";
	id = EsFoldEventTransferId(ev);
	if (id == NULL || strcmp(id, t->transfer_id) != 0 ||
		ev->account_id != t->from_account_id)
		return "it finishes another transfer";
	if (!DataInt64(ev, "released", &n, &ok) || n != t->amount)
		return "it does not release exactly the transfer's reservation";
	if (ev->type == ES_EV_TRANSFER_POSTED)
	{
		if (ev->amount >= 0 || -ev->amount > t->amount)
			return "it posts more than the transfer reserved";
		if (t->has_expires_at && ev->recorded_at >= t->expires_at)
			return "it posts the transfer after its expiry";
	}
	if (ev->type == ES_EV_TRANSFER_EXPIRED &&
		(!t->has_expires_at || ev->recorded_at < t->expires_at))
		return "it expires the transfer before its expiry";
	return NULL;
}

/*
 * Apply the debit-side event ev to transfer t, in place (ES012 if
 * EsFoldTransferProblem finds it cannot be folded).  from_account is the
 * name of the debit account (the event carries only its id), needed by the
 * creating event.  A transfer created without an id gets the transfer_id
 * "#" followed by the seq of its creating event.
 */
void
EsFoldTransfer(EsTransfer *t, const EsEvent *ev, const char *from_account)
{
	const char *problem = EsFoldTransferProblem(t, ev);
	int64		n;
	bool		ok;

	if (problem)
		BadEvent(ev, problem);
	switch (ev->type)
	{
		case ES_EV_TRANSFER_SENT:
		case ES_EV_TRANSFER_RESERVED:
			memset(t, 0, sizeof(*t));
			t->seq = ev->seq;
			t->command_id = EsFoldEventTransferId(ev);
			t->transfer_id = t->command_id ? t->command_id :
				psprintf("#" INT64_FORMAT, ev->seq);
			t->from_account = pstrdup(from_account);
			t->to_account = DataText(ev, "to");
			t->from_account_id = ev->account_id;
			DataInt64(ev, "to_account_id", &t->to_account_id, &ok);
			t->created_at = ev->recorded_at;
			t->effective_at = ev->effective_at;
			if (ev->type == ES_EV_TRANSFER_SENT)
			{
				t->status = ES_TRANSFER_POSTED;
				t->amount = t->posted_amount = -ev->amount;
			}
			else
			{
				t->status = ES_TRANSFER_PENDING;
				DataInt64(ev, "reserved", &n, &ok);
				t->amount = n;
				ExpiresAt(ev, &t->has_expires_at, &t->expires_at);
			}
			break;
		case ES_EV_TRANSFER_POSTED:
			t->status = ES_TRANSFER_POSTED;
			t->posted_amount = -ev->amount;
			break;
		case ES_EV_TRANSFER_VOIDED:
			t->status = ES_TRANSFER_VOIDED;
			break;
		case ES_EV_TRANSFER_EXPIRED:
			t->status = ES_TRANSFER_EXPIRED;
			break;
		default:
			elog(ERROR, "event %lld is not a transfer event", (long long) ev->seq);
	}
	t->updated_at = ev->recorded_at;
}

/* Are two transfers (a projection row and a fold) equal, field by field? */
bool
EsFoldTransfersEqual(const EsTransfer *a, const EsTransfer *b)
{
	return strcmp(a->transfer_id, b->transfer_id) == 0 &&
		strcmp(a->from_account, b->from_account) == 0 &&
		strcmp(a->to_account, b->to_account) == 0 &&
		a->amount == b->amount &&
		a->posted_amount == b->posted_amount &&
		a->status == b->status &&
		a->created_at == b->created_at &&
		a->has_expires_at == b->has_expires_at &&
		(!a->has_expires_at || a->expires_at == b->expires_at) &&
		a->updated_at == b->updated_at &&
		a->seq == b->seq &&
		a->from_account_id == b->from_account_id &&
		a->to_account_id == b->to_account_id &&
		(a->command_id == NULL) == (b->command_id == NULL) &&
		(a->command_id == NULL || strcmp(a->command_id, b->command_id) == 0);
}

/*
 * Why ev cannot be folded into state, or NULL if it can.  Never raises: a
 * verifier calls it to report every bad event and go on.  What no fact may
 * break: the event is the account's, its version follows the account's,
 * an account is opened by its first event and only then, the type is
 * known, a credit is positive, a debit negative and an event of any other
 * type moves no money, the data the type needs is there, and no sum wraps.
 */
const char *
EsFoldProblem(const EsAccountState *state, const EsEvent *ev)
{
	int64		sum;
	int64		pending_out = state->pending_out;

	if (ev->account_id != state->account_id)
		return "it belongs to another account";
	if (ev->version <= state->version)
		return "its version does not follow the account's";
	if ((state->status == ES_ACCOUNT_NONE) != (ev->type == ES_EV_ACCOUNT_OPENED))
		return "an account is opened exactly once, by its first event";
	switch (ev->type)
	{
		case ES_EV_ACCOUNT_OPENED:
			if (!DataTextOk(ev, "account") || !DataTextOk(ev, "currency"))
				return "a text field is missing from its data";
			if (!LimitsOk(ev))
				return "a limit in its data is not an integer";
			if (ev->amount != 0)
				return "an event of a type that moves no money has an amount";
			break;
		case ES_EV_DEPOSITED:
		case ES_EV_TRANSFER_RECEIVED:
			if (ev->amount <= 0)
				return "a credit must have a positive amount";
			break;
		case ES_EV_WITHDRAWN:
		case ES_EV_TRANSFER_SENT:
			if (ev->amount >= 0)
				return "a debit must have a negative amount";
			break;
		case ES_EV_LIMITS_CHANGED:
			if (!LimitsOk(ev))
				return "a limit in its data is not an integer";
			/* fall through */
		case ES_EV_ACCOUNT_FROZEN:
		case ES_EV_ACCOUNT_UNFROZEN:
		case ES_EV_ACCOUNT_CLOSED:
			if (ev->amount != 0)
				return "an event of a type that moves no money has an amount";
			break;
		case ES_EV_TRANSFER_RESERVED:
		case ES_EV_TRANSFER_POSTED:
		case ES_EV_TRANSFER_VOIDED:
		case ES_EV_TRANSFER_EXPIRED:
			{
				const char *problem = PendingProblem(state, ev, &pending_out);

				if (problem)
					return problem;
				break;
			}
		default:
			return "its type is unknown";
	}
	if (pg_add_s64_overflow(state->balance, ev->amount, &sum) ||
		pg_sub_s64_overflow(sum, pending_out, &sum))
		return EsFoldOverflow;
	return NULL;
}

/*
 * Whether folding an event of this type reads its data (EsFoldProblem and
 * EsFoldEvent below): a reader that decodes only what the fold needs
 * (EsRowEventDecodeForFold) skips the data of the others.  Types not named
 * here, such as ones added later, read it.
 */
bool
EsFoldNeedsData(EsEventType type)
{
	switch (type)
	{
		case ES_EV_DEPOSITED:
		case ES_EV_WITHDRAWN:
		case ES_EV_TRANSFER_SENT:
		case ES_EV_TRANSFER_RECEIVED:
		case ES_EV_ACCOUNT_FROZEN:
		case ES_EV_ACCOUNT_UNFROZEN:
		case ES_EV_ACCOUNT_CLOSED:
			return false;
		default:
			return true;
	}
}

/*
 * Apply one event to an account state, in place: ES012 (22003 for a sum
 * that would wrap) if EsFoldProblem finds it cannot be folded.
 *
 * Every event moves the balance by its signed amount (0 for events that move
 * no money) and advances version, last_seq, updated_at and the hash link;
 * the type decides what else changes.
 */
void
EsFoldEvent(EsAccountState *state, const EsEvent *ev)
{
	const char *problem = EsFoldProblem(state, ev);

	if (problem == EsFoldOverflow)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("balance of account %lld out of range",
						(long long) state->account_id),
				 errdetail("Folding event %lld would take the balance past the range of bigint.",
						   (long long) ev->seq)));
	if (problem)
		BadEvent(ev, problem);

	switch (ev->type)
	{
		case ES_EV_ACCOUNT_OPENED:
			state->account = DataText(ev, "account");
			state->currency = DataText(ev, "currency");
			state->status = ES_ACCOUNT_OPEN;
			state->opened_at = ev->recorded_at;
			state->overdraft_limit = 0;
			state->has_max_balance = false;
			FoldLimits(state, ev);
			break;
		case ES_EV_ACCOUNT_FROZEN:
			state->status = ES_ACCOUNT_FROZEN;
			break;
		case ES_EV_ACCOUNT_UNFROZEN:
			state->status = ES_ACCOUNT_OPEN;
			break;
		case ES_EV_ACCOUNT_CLOSED:
			state->status = ES_ACCOUNT_CLOSED;
			break;
		case ES_EV_LIMITS_CHANGED:
			FoldLimits(state, ev);
			break;
		case ES_EV_TRANSFER_RESERVED:
		case ES_EV_TRANSFER_POSTED:
		case ES_EV_TRANSFER_VOIDED:
		case ES_EV_TRANSFER_EXPIRED:
			FoldPending(state, ev);
			break;
		default:
			break;				/* money moves by amount alone */
	}

	state->balance += ev->amount;
	state->available = state->balance - state->pending_out;
	state->version = ev->version;
	state->last_seq = ev->seq;
	state->updated_at = ev->recorded_at;
	memcpy(state->last_hash, ev->hash, ES_HASH_LEN);
}
