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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/int.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"

#include "es_ledger.h"

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
		default:
			return "its type is unknown";
	}
	if (pg_add_s64_overflow(state->balance, ev->amount, &sum) ||
		pg_sub_s64_overflow(sum, state->pending_out, &sum))
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
