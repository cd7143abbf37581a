/*-------------------------------------------------------------------------
 *
 * es_command.c
 *	  A command's shape, checked and turned into an EsCommand: from the JSON
 *	  given to es_apply, or from a typed shorthand's arguments.
 *
 * Shape only: the type is known, every field is one that type takes (the
 * handler table, es_decide.c), has the right type and is in range, and the
 * type's required fields are there.  Whether the command is allowed
 * against the current state is es_decide.c's business.  Every shape error
 * is ES009, an integer out of range 22003; nothing here reads the database,
 * so a rejected command has written nothing.
 *
 * Both ways in meet in StoreField: es_apply's JSON fields are passed as
 * they are, a shorthand's arguments as the JSON they stand for (a text as a
 * string, an integer as a string of its digits, SQL NULL as JSON null), so
 * the shorthands are held to exactly the same checks (EsCommandStart,
 * EsCommandSetText/SetInt, EsCommandFinish) without building JSON.
 *
 * Parsing never recurses into nested values (metadata is kept whole, its
 * depth measured by iteration), so no input, however deep, can exhaust the
 * stack here.  Loops over a batch check for interrupts, so
 * statement_timeout and cancel stop a long one.
 *
 * Bounded input (GUCs, PGC_SUSET: only a superuser may change them; each
 * excess is ES009):
 *
 *	es_ledger.max_batch_commands (100000): the elements of a batch, counted
 *		from the array's header before any is read;
 *	es_ledger.max_metadata_bytes (8kB): a command's "metadata", in bytes of
 *		its jsonb form (VARSIZE of the object as a jsonb of its own, what
 *		pg_column_size reports for it; not its text form);
 *	es_ledger.max_metadata_depth (8): the nesting of "metadata", the object
 *		itself being level 1.
 *
 * Names (account, from, to, currency) must also be free of control and
 * format characters, not begin or end with white space and, in a UTF8
 * database, be in NFC; ids must be free of control characters (CheckName).
 *
 * Memory.  A batch's commands are all parsed before the first is applied
 * (es_apply.c locks the accounts of the whole batch first), so each parsed
 * command is kept for the whole batch: about 175 bytes for a deposit (the
 * EsCommand, 128 bytes, allocated 1024 at a time; its List cell; its
 * account name; plus its id, other names and metadata where given).
 * Everything else parsing allocates goes in a scratch context reset after
 * each command.  Measured on PostgreSQL 15.20 with a batch of 100,000
 * deposits over 100 accounts at the default limits, built beforehand as
 * CREATE TABLE memb AS SELECT jsonb_agg(jsonb_build_object('type',
 * 'deposit', 'account', 'm' || (i % 100 + 1), 'amount', 1)) AS j FROM
 * generate_series(1, 100000) i, and run as SELECT es_apply(j) FROM memb:
 *
 *	- at the batch's peak, when es_apply.c's LockBatch has every command
 *	  parsed and its lock arrays allocated (gdb -p <backend pid> -batch
 *	  -ex 'break EsWriteLockAccounts' -ex continue -ex 'call (void)
 *	  MemoryContextStats((MemoryContext) TopMemoryContext)'), es_apply's
 *	  ExprContext held 57.0 MB: the argument, detoasted (6.8 MB), the parsed
 *	  commands (17.6 MB, 176 bytes each; 51 MB, 510 bytes each, before the
 *	  scratch context) and LockBatch's arrays (32.6 MB: two EsAccountState
 *	  of 152 bytes per command);
 *	- sampled every 0.2 s from a second session with SELECT
 *	  pg_log_backend_memory_contexts(pid), the largest grand total logged
 *	  was 31.4 MB (the samples miss LockBatch's short peak);
 *	- sent as a SQL literal instead (5.2 MB of text), the statement's
 *	  MessageContext adds 110 MB for the text and jsonb's own input, which
 *	  runs before es_apply and no GUC of ours bounds.
 *
 * Parsing the 100,000 commands takes about 0.1 s; applying them about 20 s
 * over 100 accounts, 4 s over 1000.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/unicode_norm.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "apply.h"

/* Reject a command's shape with ES009 (see EsDecideInvalid). */
#define Invalid(ordinal, msg, detail) EsDecideInvalid((ordinal), (msg), (detail))

/* The JSON type of a value, for messages. */
static const char *
JsonTypeName(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ? "an array" : "an object";
		default:
			return "an array or object";
	}
}

/* ---------------------------------------------------------------- limits */

/* es_ledger.max_batch_commands: most commands in one es_apply batch. */
static int	es_max_batch_commands = 100000;

/* es_ledger.max_metadata_bytes: largest "metadata", jsonb bytes (VARSIZE). */
static int	es_max_metadata_bytes = 8192;

/* es_ledger.max_metadata_depth: most nested levels of "metadata". */
static int	es_max_metadata_depth = 8;

/*
 * Define the GUCs bounding a command's input.  PGC_SUSET: only a superuser
 * (or a role granted SET on the parameter) may change them, so a writer
 * cannot lift the bounds for itself.  Reserves the "es_ledger" prefix, so
 * call it after every other es_ledger GUC is defined (last in _PG_init).
 */
void
EsCommandInit(void)
{
	DefineCustomIntVariable("es_ledger.max_batch_commands",
							"Most commands in one es_apply batch.",
							"A longer batch is refused with ES009 before any of its commands is parsed.",
							&es_max_batch_commands,
							100000, 1, 10000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("es_ledger.max_metadata_bytes",
							"Largest \"metadata\" object of a command, in bytes of its jsonb form.",
							"The size is the object's jsonb binary size, as pg_column_size reports it for the object on its own.  A larger one is refused with ES009.",
							&es_max_metadata_bytes,
							8192, 0, (int) MaxAllocSize,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	DefineCustomIntVariable("es_ledger.max_metadata_depth",
							"Most nested levels of a command's \"metadata\" object.",
							"The object itself is level 1; each object or array inside it one more.  A deeper one is refused with ES009.",
							&es_max_metadata_depth,
							8, 1, 100,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("es_ledger");
}

/*
 * Check a "metadata" value (a jsonb object inside the command) against
 * es_ledger.max_metadata_bytes and es_ledger.max_metadata_depth.  The size
 * is that of the jsonb the object becomes on its own (VARSIZE: its binary
 * form plus the 4-byte header), known without reading it.  The depth is
 * measured by iterating over the tokens and counting the containers that
 * are open, never by recursion, and the walk stops as soon as the limit is
 * passed, so no input, however deep, costs stack or more than the limit's
 * worth of iterator state.
 */
static void
CheckMetadata(JsonbValue *v, int ordinal)
{
	int64		size = (int64) VARHDRSZ + v->val.binary.len;
	JsonbIterator *it;
	JsonbValue	tmp;
	JsonbIteratorToken tok;
	int			depth = 0;

	if (size > es_max_metadata_bytes)
		Invalid(ordinal,
				psprintf("\"metadata\" has " INT64_FORMAT " bytes, more than es_ledger.max_metadata_bytes (%d)",
						 size, es_max_metadata_bytes),
				"The size is that of the object's jsonb form (pg_column_size of the object on its own).");

	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &tmp, false)) != WJB_DONE)
	{
		CHECK_FOR_INTERRUPTS();
		if (tok == WJB_BEGIN_ARRAY || tok == WJB_BEGIN_OBJECT)
		{
			if (++depth > es_max_metadata_depth)
				Invalid(ordinal,
						psprintf("\"metadata\" is nested more than es_ledger.max_metadata_depth (%d) levels deep",
								 es_max_metadata_depth),
						"The object itself is level 1; each object or array inside it is one level more.");
		}
		else if (tok == WJB_END_ARRAY || tok == WJB_END_OBJECT)
			depth--;
	}
}

/* A name-like text field; is_id for the idempotency key (see EsNameCheck, es_name.c). */
static char *
ParseName(JsonbValue *v, const char *what, int ordinal, bool is_id)
{
	char	   *s;

	if (v->type != jbvString)
		Invalid(ordinal, psprintf("\"%s\" must be a string, not %s", what,
								  JsonTypeName(v)), NULL);
	s = pnstrdup(v->val.string.val, v->val.string.len);
	EsNameCheck(what, s, ordinal, is_id);
	return s;
}

/*
 * A non-negative integer field: a JSON number without a fraction or a string
 * of digits.  Zero only when allow_zero; past 2^63-1 fails with 22003.
 */
static int64
ParseInteger(JsonbValue *v, const char *what, bool allow_zero, int ordinal)
{
	const char *s;
	int			len;
	uint64		n = 0;

	if (v->type == jbvNumeric)
	{
		s = DatumGetCString(DirectFunctionCall1(numeric_out,
												NumericGetDatum(v->val.numeric)));
		len = strlen(s);
	}
	else if (v->type == jbvString)
	{
		s = v->val.string.val;
		len = v->val.string.len;
	}
	else
		Invalid(ordinal, psprintf("\"%s\" must be an integer, not %s", what,
								  JsonTypeName(v)), NULL);

	if (len == 0)
		Invalid(ordinal, psprintf("\"%s\" must be %s integer", what,
								  allow_zero ? "a non-negative" : "a positive"),
				"An integer is a JSON number without a fraction or a string of digits.");
	for (int i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			Invalid(ordinal, psprintf("\"%s\" must be %s integer", what,
									  allow_zero ? "a non-negative" : "a positive"),
					"An integer is a JSON number without a fraction or a string of digits.");
		if (n > (uint64) PG_INT64_MAX / 10 ||
			n * 10 + (s[i] - '0') > (uint64) PG_INT64_MAX)
			EsDecideReject(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
						   psprintf("%s\"%s\" is out of range",
									ordinal > 0 ? psprintf("command %d of the batch: ", ordinal) : "",
									what),
						   pstrdup("Amounts, limits and versions are at most 9223372036854775807."));
		n = n * 10 + (s[i] - '0');
	}
	if (n == 0 && !allow_zero)
		Invalid(ordinal, psprintf("\"%s\" must be a positive integer", what),
				"Amounts are in minor units and greater than zero.");
	return (int64) n;
}

/*
 * A timestamptz given as text.  Any data exception of the input function
 * (bad syntax, unknown time zone, out of range) becomes ES009; other errors
 * (cancel, out of memory) pass through.  The input function runs in a
 * subtransaction so that its error can be caught safely.
 */
static TimestampTz
ParseTimestamp(JsonbValue *v, const char *what, int ordinal)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	char	   *s;
	volatile TimestampTz ts = 0;	/* set in PG_TRY, read after it */
	ErrorData  *volatile edata = NULL;	/* set in PG_CATCH, likewise */

	if (v->type != jbvString)
		Invalid(ordinal, psprintf("\"%s\" must be a timestamp string, not %s",
								  what, JsonTypeName(v)), NULL);
	s = pnstrdup(v->val.string.val, v->val.string.len);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		ts = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
													 CStringGetDatum(s),
													 ObjectIdGetDatum(InvalidOid),
													 Int32GetDatum(-1)));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION &&
			edata->sqlerrcode != ERRCODE_INVALID_PARAMETER_VALUE)
			ReThrowError(edata);
	}
	PG_END_TRY();

	if (edata != NULL)
		Invalid(ordinal, psprintf("\"%s\" is not a valid timestamp", what),
				edata->message);
	if (TIMESTAMP_NOT_FINITE(ts))
		Invalid(ordinal, psprintf("\"%s\" must be a finite timestamp", what),
				NULL);
	return ts;
}

/* Is key one of the fields a command of this type takes? */
static bool
FieldAllowed(EsCommandType type, const char *key)
{
	const EsCommandHandler *h = EsDecideHandler(type);

	for (int i = 0; i < lengthof(h->fields); i++)
		if (h->fields[i] && strcmp(h->fields[i], key) == 0)
			return true;
	return false;
}

/* Record one field's value in cmd, checking it. */
static void
StoreField(EsCommand *cmd, const char *key, JsonbValue *v)
{
	int			o = cmd->ordinal;

	if (strcmp(key, "type") == 0)
		return;					/* done first */
	if (strcmp(key, "id") == 0)
		cmd->id = ParseName(v, "id", o, true);
	else if (strcmp(key, "effective_at") == 0)
	{
		cmd->has_effective_at = true;
		cmd->effective_at = ParseTimestamp(v, "effective_at", o);
	}
	else if (strcmp(key, "expected_version") == 0)
	{
		cmd->has_expected_version = true;
		cmd->expected_version = ParseInteger(v, "expected_version", true, o);
	}
	else if (strcmp(key, "metadata") == 0)
	{
		if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
			Invalid(o, psprintf("\"metadata\" must be an object, not %s",
								JsonTypeName(v)), NULL);
		CheckMetadata(v, o);
		cmd->metadata = JsonbValueToJsonb(v);
	}
	else if (!FieldAllowed(cmd->type, key))
		EsDecideRejectHint(ERRCODE_ES_INVALID_COMMAND,
						   psprintf("invalid command: %sunknown field \"%s\" for a command of type %s",
									o > 0 ? psprintf("command %d of the batch: ", o) : "",
									key, EsDecideHandler(cmd->type)->name),
						   NULL,
						   pstrdup("Put data of your own in \"metadata\", a JSON object kept with the events; a command takes type, id, effective_at, expected_version, metadata and its type's fields."));
	else if (strcmp(key, "account") == 0 || strcmp(key, "from") == 0)
		cmd->account = ParseName(v, key, o, false);
	else if (strcmp(key, "to") == 0)
		cmd->to_account = ParseName(v, key, o, false);
	else if (strcmp(key, "currency") == 0)
		cmd->currency = ParseName(v, key, o, false);
	else if (strcmp(key, "amount") == 0)
	{
		cmd->has_amount = true;
		cmd->amount = ParseInteger(v, key, false, o);
	}
	else if (strcmp(key, "overdraft_limit") == 0)
	{
		cmd->has_overdraft_limit = true;
		cmd->overdraft_limit = ParseInteger(v, key, true, o);
	}
	else if (strcmp(key, "max_balance") == 0)
	{
		cmd->has_max_balance = true;
		cmd->max_balance_null = v->type == jbvNull;
		if (!cmd->max_balance_null)
			cmd->max_balance = ParseInteger(v, key, true, o);
	}
	else if (strcmp(key, "pending") == 0)
	{
		if (v->type != jbvBool)
			Invalid(o, psprintf("\"pending\" must be a boolean, not %s",
								JsonTypeName(v)), NULL);
		cmd->has_pending = true;
		cmd->pending = v->val.boolean;
	}
	else if (strcmp(key, "timeout") == 0)
	{
		cmd->has_timeout = true;
		cmd->timeout = ParseInteger(v, key, false, o);
		if (cmd->timeout > ES_MAX_TIMEOUT_SECONDS)
			Invalid(o, psprintf("\"timeout\" must be at most %d seconds",
								ES_MAX_TIMEOUT_SECONDS), NULL);
	}
	else if (strcmp(key, "pending_id") == 0)
		cmd->pending_id = ParseName(v, key, o, true);
	else
		elog(ERROR, "es_ledger field \"%s\" has no parser", key);
}

/* Start a command of a type, before its fields are stored. */
void
EsCommandStart(EsCommand *cmd, EsCommandType type, int ordinal)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->type = type;
	cmd->ordinal = ordinal;
}

/* Store a text field given as a C string (a shorthand's argument). */
void
EsCommandSetText(EsCommand *cmd, const char *key, const char *value)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) value;
	v.val.string.len = strlen(value);
	StoreField(cmd, key, &v);
}

/*
 * Store an integer field given as an int64 (a shorthand's argument), as
 * the string of its digits would be; isnull stores JSON null.
 */
void
EsCommandSetInt(EsCommand *cmd, const char *key, bool isnull, int64 value)
{
	JsonbValue	v;

	if (isnull)
		v.type = jbvNull;
	else
	{
		v.type = jbvString;
		v.val.string.val = psprintf(INT64_FORMAT, value);
		v.val.string.len = strlen(v.val.string.val);
	}
	StoreField(cmd, key, &v);
}

/*
 * Store a shorthand's metadata argument, checked like es_apply's "metadata"
 * (a JSON object within es_ledger.max_metadata_bytes and _depth).
 */
void
EsCommandSetMetadata(EsCommand *cmd, Jsonb *metadata)
{
	JsonbValue	v;

	v.type = jbvBinary;
	v.val.binary.data = &metadata->root;
	v.val.binary.len = VARSIZE(metadata) - VARHDRSZ;
	StoreField(cmd, "metadata", &v);
}

/*
 * Store a shorthand's effective_at argument (valid time).  A timestamptz is
 * already checked, so it is stored as is; infinite values are refused like
 * es_apply refuses them in JSON.
 */
void
EsCommandSetEffectiveAt(EsCommand *cmd, TimestampTz effective_at)
{
	if (TIMESTAMP_NOT_FINITE(effective_at))
		Invalid(cmd->ordinal, "\"effective_at\" must be a finite timestamp",
				NULL);
	cmd->has_effective_at = true;
	cmd->effective_at = effective_at;
}

/* Check that the command has what its type requires. */
void
EsCommandFinish(EsCommand *cmd)
{
	EsDecideHandler(cmd->type)->check(cmd);
}

/*
 * Parse one command object, a JSON object container; ordinal is its
 * 1-based position in a batch, 0 for a single command.
 */
static void
ParseObject(JsonbContainer *jc, int ordinal, EsCommand *cmd)
{
	JsonbValue *typev;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *type;
	EsCommandType ctype;

	if (!JsonContainerIsObject(jc))
		Invalid(ordinal, "a command must be a JSON object",
				"es_apply takes an object, or an array of objects for a batch.");

	typev = getKeyJsonValueFromContainer(jc, "type", 4, NULL);
	if (typev == NULL)
		Invalid(ordinal, "\"type\" is missing", NULL);
	if (typev->type != jbvString)
		Invalid(ordinal, psprintf("\"type\" must be a string, not %s",
								  JsonTypeName(typev)), NULL);
	type = pnstrdup(typev->val.string.val, typev->val.string.len);
	if (!EsDecideTypeFromName(type, &ctype))
		Invalid(ordinal, psprintf("unknown command type \"%s\"", type),
				EsDecideTypeNames());
	EsCommandStart(cmd, ctype, ordinal);

	it = JsonbIteratorInit(jc);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			char	   *key = pnstrdup(v.val.string.val, v.val.string.len);

			tok = JsonbIteratorNext(&it, &v, true);
			Assert(tok == WJB_VALUE);
			StoreField(cmd, key, &v);
		}
	}
	EsCommandFinish(cmd);
}

/*
 * Parse one command object.  jb must be a JSON object; ordinal is its
 * 1-based position in a batch, 0 for a single command.
 */
void
EsCommandParse(Jsonb *jb, int ordinal, EsCommand *cmd)
{
	ParseObject(&jb->root, ordinal, cmd);
}

/* A copy of a C string, or NULL. */
static char *
CopyText(const char *s)
{
	return s ? pstrdup(s) : NULL;
}

/* A copy of a jsonb value in memory (not toasted). */
static Jsonb *
CopyJsonb(const Jsonb *jb)
{
	Jsonb	   *copy = palloc(VARSIZE(jb));

	memcpy(copy, jb, VARSIZE(jb));
	return copy;
}

/*
 * Copy what a parsed command points to (its texts and metadata) into the
 * current memory context, so that the context it was parsed in can be
 * reset.  A new pointer field of EsCommand needs its line here.
 */
void
EsCommandKeep(EsCommand *cmd)
{
	cmd->id = CopyText(cmd->id);
	cmd->account = CopyText(cmd->account);
	cmd->to_account = CopyText(cmd->to_account);
	cmd->currency = CopyText(cmd->currency);
	cmd->pending_id = CopyText(cmd->pending_id);
	if (cmd->metadata)
		cmd->metadata = CopyJsonb(cmd->metadata);
}

/*
 * Refuse, with ES009, a batch of more than es_ledger.max_batch_commands
 * commands (es_apply's and es_apply_each's), counted from its array header.
 */
void
EsCommandCheckBatchSize(int ncmds)
{
	if (ncmds > es_max_batch_commands)
		Invalid(0,
				psprintf("the batch has %d commands, more than es_ledger.max_batch_commands (%d)",
						 ncmds, es_max_batch_commands),
				"Split the batch into smaller ones (each is atomic on its own), or have a superuser raise es_ledger.max_batch_commands.");
}

/*
 * Parse one element of a batch's array (es_apply_each): ES009 unless it is
 * a JSON object.  ordinal as for EsCommandParse.  Allocates in the current
 * memory context; EsCommandKeep keeps the command from a scratch context.
 */
void
EsCommandParseElement(JsonbValue *v, int ordinal, EsCommand *cmd)
{
	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		Invalid(ordinal, psprintf("a command must be a JSON object, not %s",
								  JsonTypeName(v)), NULL);
	ParseObject(v->val.binary.data, ordinal, cmd);
}

/* Commands of a batch allocated at a time (see EsCommandParseArgument). */
#define ES_COMMAND_BLOCK	1024

/*
 * Parse es_apply's argument: one command object, or a non-empty array of
 * them (a batch).  Returns a List of EsCommand pointers, allocated in the
 * current memory context.
 *
 * A batch longer than es_ledger.max_batch_commands is refused from the
 * array's header, before any element is read.  Every command of a batch is
 * kept until the batch is applied, so each keeps only what it needs: the
 * EsCommand (allocated ES_COMMAND_BLOCK at a time, so they cannot be
 * pfree'd one by one: free them with their context), its texts and its
 * metadata.  Everything else parsing allocates (the element's keys, type,
 * iterators, numbers' digits) goes in a scratch context reset after each
 * command.  See the measurement at the top of this file.
 */
List *
EsCommandParseArgument(Jsonb *jb)
{
	List	   *cmds = NIL;

	if (JB_ROOT_IS_SCALAR(jb))
		Invalid(0, "a command must be a JSON object",
				"es_apply takes an object, or an array of objects for a batch.");
	if (JB_ROOT_IS_ARRAY(jb))
	{
		int			ncmds = JB_ROOT_COUNT(jb);
		MemoryContext keep = CurrentMemoryContext;
		MemoryContext scratch;
		JsonbIterator *it;
		JsonbValue	v;
		JsonbIteratorToken tok;
		int			ordinal = 0;
		EsCommand  *block = NULL;
		int			nfree = 0;

		if (ncmds == 0)
			Invalid(0, "the batch is empty", "A batch is a non-empty array of commands.");
		EsCommandCheckBatchSize(ncmds);

		scratch = AllocSetContextCreate(keep, "es_ledger command parse",
										ALLOCSET_SMALL_SIZES);
		it = JsonbIteratorInit(&jb->root);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			EsCommand  *cmd;

			CHECK_FOR_INTERRUPTS();
			if (tok != WJB_ELEM)
				continue;
			ordinal++;
			if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
				Invalid(ordinal, psprintf("a command must be a JSON object, not %s",
										  JsonTypeName(&v)), NULL);
			if (nfree == 0)
			{
				nfree = Min(ES_COMMAND_BLOCK, ncmds - ordinal + 1);
				block = palloc(sizeof(EsCommand) * nfree);
			}
			cmd = block++;
			nfree--;

			MemoryContextSwitchTo(scratch);
			ParseObject(v.val.binary.data, ordinal, cmd);
			MemoryContextSwitchTo(keep);

			/* Keep what the command needs; drop the rest. */
			EsCommandKeep(cmd);
			MemoryContextReset(scratch);
			cmds = lappend(cmds, cmd);
		}
		MemoryContextDelete(scratch);
	}
	else
	{
		EsCommand  *cmd = palloc(sizeof(EsCommand));

		ParseObject(&jb->root, 0, cmd);
		cmds = list_make1(cmd);
	}
	return cmds;
}

/* Append ,"key": to a JSON object under construction. */
static void
AppendKey(StringInfo buf, const char *key)
{
	if (buf->len > 1)
		appendStringInfoChar(buf, ',');
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
}

/*
 * The canonical form of a command, the one its idempotency key is recorded
 * with: its type and fields as parsed (integers as numbers, effective_at as
 * microseconds since 2000-01-01 UTC, open_account's defaults filled in), so
 * that the same command compares equal however it was spelt: through
 * es_apply or a shorthand, with "100" or 100, keys in any order.
 */
Jsonb *
EsCommandCanonical(const EsCommand *cmd)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	AppendKey(&buf, "type");
	escape_json(&buf, EsDecideHandler(cmd->type)->name);
	if (cmd->id)
	{
		AppendKey(&buf, "id");
		escape_json(&buf, cmd->id);
	}
	if (cmd->account)
	{
		AppendKey(&buf, cmd->type == ES_CMD_TRANSFER ? "from" : "account");
		escape_json(&buf, cmd->account);
	}
	if (cmd->to_account)
	{
		AppendKey(&buf, "to");
		escape_json(&buf, cmd->to_account);
	}
	if (cmd->currency)
	{
		AppendKey(&buf, "currency");
		escape_json(&buf, cmd->currency);
	}
	if (cmd->has_amount)
	{
		AppendKey(&buf, "amount");
		appendStringInfo(&buf, INT64_FORMAT, cmd->amount);
	}
	if (cmd->has_overdraft_limit || cmd->type == ES_CMD_OPEN_ACCOUNT)
	{
		AppendKey(&buf, "overdraft_limit");
		appendStringInfo(&buf, INT64_FORMAT, cmd->overdraft_limit);
	}
	if (cmd->has_max_balance || cmd->type == ES_CMD_OPEN_ACCOUNT)
	{
		AppendKey(&buf, "max_balance");
		if (!cmd->has_max_balance || cmd->max_balance_null)
			appendStringInfoString(&buf, "null");
		else
			appendStringInfo(&buf, INT64_FORMAT, cmd->max_balance);
	}
	if (cmd->pending)
	{
		/* "pending": false is the default, so it is left out. */
		AppendKey(&buf, "pending");
		appendStringInfoString(&buf, "true");
	}
	if (cmd->has_timeout)
	{
		AppendKey(&buf, "timeout");
		appendStringInfo(&buf, INT64_FORMAT, cmd->timeout);
	}
	if (cmd->pending_id)
	{
		AppendKey(&buf, "pending_id");
		escape_json(&buf, cmd->pending_id);
	}
	if (cmd->has_effective_at)
	{
		AppendKey(&buf, "effective_at");
		appendStringInfo(&buf, INT64_FORMAT, (int64) cmd->effective_at);
	}
	if (cmd->has_expected_version)
	{
		AppendKey(&buf, "expected_version");
		appendStringInfo(&buf, INT64_FORMAT, cmd->expected_version);
	}
	if (cmd->metadata)
	{
		AppendKey(&buf, "metadata");
		appendStringInfoString(&buf, JsonbToCString(NULL, &cmd->metadata->root,
													VARSIZE(cmd->metadata)));
	}
	if (cmd->reverses)
	{
		/*
		 * The link of a compensating command to the command it reverses, at
		 * the top level, where only es_reverse writes it (parsing refuses the
		 * key): es_commands_reverses_idx finds it.
		 */
		AppendKey(&buf, "reverses");
		escape_json(&buf, cmd->reverses);
	}
	appendStringInfoChar(&buf, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}
