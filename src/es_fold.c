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

/* A text field of an event's data, required. */
static char *
DataText(const EsEvent *ev, const char *key)
{
	JsonbValue *v = DataField(ev, key);

	if (v == NULL || v->type != jbvString)
		BadEvent(ev, "a text field is missing from its data");
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * An integer field of an event's data.  Returns false when the field is
 * absent or JSON null.
 */
static bool
DataInt64(const EsEvent *ev, const char *key, int64 *result)
{
	JsonbValue *v = DataField(ev, key);

	if (v == NULL || v->type == jbvNull)
		return false;
	if (v->type != jbvNumeric)
		BadEvent(ev, "a number field of its data is not a number");
	*result = DatumGetInt64(DirectFunctionCall1(numeric_int8,
												NumericGetDatum(v->val.numeric)));
	return true;
}

/* Read the limits an AccountOpened or LimitsChanged event sets. */
static void
FoldLimits(EsAccountState *state, const EsEvent *ev)
{
	int64		v;

	if (DataInt64(ev, "overdraft_limit", &v))
		state->overdraft_limit = v;
	if (DataField(ev, "max_balance") != NULL)
	{
		state->has_max_balance = DataInt64(ev, "max_balance", &v);
		state->max_balance = state->has_max_balance ? v : 0;
	}
}

/*
 * Apply one event to an account state, in place.
 *
 * Every event moves the balance by its signed amount (0 for events that move
 * no money) and advances version, last_seq, updated_at and the hash link;
 * the type decides what else changes.
 */
void
EsFoldEvent(EsAccountState *state, const EsEvent *ev)
{
	if (ev->account_id != state->account_id)
		BadEvent(ev, "it belongs to another account");
	if (ev->version <= state->version)
		BadEvent(ev, "its version does not follow the account's");
	if ((state->status == ES_ACCOUNT_NONE) != (ev->type == ES_EV_ACCOUNT_OPENED))
		BadEvent(ev, "an account is opened exactly once, by its first event");

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
		case ES_EV_DEPOSITED:
		case ES_EV_TRANSFER_RECEIVED:
			if (ev->amount <= 0)
				BadEvent(ev, "a credit must have a positive amount");
			break;
		case ES_EV_WITHDRAWN:
		case ES_EV_TRANSFER_SENT:
			if (ev->amount >= 0)
				BadEvent(ev, "a debit must have a negative amount");
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
			BadEvent(ev, "its type is unknown");
	}

	if (pg_add_s64_overflow(state->balance, ev->amount, &state->balance) ||
		pg_sub_s64_overflow(state->balance, state->pending_out,
							&state->available))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("balance of account %lld out of range",
						(long long) state->account_id),
				 errdetail("Folding event %lld would take the balance past the range of bigint.",
						   (long long) ev->seq)));

	state->version = ev->version;
	state->last_seq = ev->seq;
	state->updated_at = ev->recorded_at;
	memcpy(state->last_hash, ev->hash, ES_HASH_LEN);
}
