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

#include "es_ledger.h"

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

/* ------------------------------------------------------------------ names */

/*
 * Code points refused in names, by Unicode general category (Unicode 15.0,
 * DerivedGeneralCategory.txt).  PostgreSQL 15 exports no category table to
 * C (common/unicode_category.h came in 17), hence this one.  Ascending.
 *
 *	Cc	control characters: C0, DEL, C1.  Refused in ids too.
 *	Cf	format characters: invisible, or changing how the text around them
 *		is shown (soft hyphen, zero-width space and joiners, bidirectional
 *		marks, embeddings, overrides and isolates, word joiner, byte order
 *		mark, tags, ...).
 *	Zl	line separator U+2028;	Zp	paragraph separator U+2029.
 *	DI	the rest of Default_Ignorable_Code_Point (DerivedCoreProperties.txt):
 *		characters drawn as nothing, though not Cf: combining grapheme
 *		joiner, Hangul fillers, Mongolian free variation selectors,
 *		variation selectors, Khmer inherent vowels, reserved ranges.
 */
typedef struct EsCodeRange
{
	pg_wchar	first;
	pg_wchar	last;
	char		category;		/* 'c' Cc, 'f' Cf, 'z' Zl/Zp, 'i' DI */
} EsCodeRange;

static const EsCodeRange refused_chars[] = {
	{0x0000, 0x001F, 'c'},		/* Cc: C0 controls (tab, newline, ...) */
	{0x007F, 0x009F, 'c'},		/* Cc: DEL, C1 controls */
	{0x00AD, 0x00AD, 'f'},		/* Cf: soft hyphen */
	{0x034F, 0x034F, 'i'},		/* DI: combining grapheme joiner */
	{0x0600, 0x0605, 'f'},		/* Cf: Arabic number signs */
	{0x061C, 0x061C, 'f'},		/* Cf: Arabic letter mark */
	{0x06DD, 0x06DD, 'f'},		/* Cf: Arabic end of ayah */
	{0x070F, 0x070F, 'f'},		/* Cf: Syriac abbreviation mark */
	{0x0890, 0x0891, 'f'},		/* Cf: Arabic pound and piastre marks */
	{0x08E2, 0x08E2, 'f'},		/* Cf: Arabic disputed end of ayah */
	{0x115F, 0x1160, 'i'},		/* DI: Hangul choseong and jungseong fillers */
	{0x17B4, 0x17B5, 'i'},		/* DI: Khmer inherent vowels */
	{0x180B, 0x180F, 'f'},		/* DI: Mongolian variation selectors; Cf:
								 * vowel separator */
	{0x200B, 0x200F, 'f'},		/* Cf: zero-width space, ZWNJ, ZWJ, LRM, RLM */
	{0x2028, 0x2028, 'z'},		/* Zl: line separator */
	{0x2029, 0x2029, 'z'},		/* Zp: paragraph separator */
	{0x202A, 0x202E, 'f'},		/* Cf: bidi embeddings and overrides */
	{0x2060, 0x206F, 'f'},		/* Cf: word joiner, invisible operators, bidi
								 * isolates, deprecated formats; DI: U+2065 */
	{0x3164, 0x3164, 'i'},		/* DI: Hangul filler */
	{0xFE00, 0xFE0F, 'i'},		/* DI: variation selectors */
	{0xFEFF, 0xFEFF, 'f'},		/* Cf: zero-width no-break space (BOM) */
	{0xFFA0, 0xFFA0, 'i'},		/* DI: halfwidth Hangul filler */
	{0xFFF0, 0xFFF8, 'i'},		/* DI: reserved */
	{0xFFF9, 0xFFFB, 'f'},		/* Cf: interlinear annotation */
	{0x110BD, 0x110BD, 'f'},	/* Cf: Kaithi number sign */
	{0x110CD, 0x110CD, 'f'},	/* Cf: Kaithi number sign above */
	{0x13430, 0x1343F, 'f'},	/* Cf: Egyptian hieroglyph format controls */
	{0x16FE4, 0x16FE4, 'i'},	/* DI: Khitan small script filler */
	{0x1BCA0, 0x1BCA3, 'f'},	/* Cf: shorthand format controls */
	{0x1D173, 0x1D17A, 'f'},	/* Cf: musical symbol beam and phrase */
	{0xE0000, 0xE0000, 'i'},	/* DI: reserved */
	{0xE0001, 0xE0001, 'f'},	/* Cf: language tag */
	{0xE0002, 0xE001F, 'i'},	/* DI: reserved */
	{0xE0020, 0xE007F, 'f'},	/* Cf: tag characters */
	{0xE0080, 0xE0FFF, 'i'},	/* DI: variation selectors supplement,
								 * reserved */
};

/*
 * White space: property White_Space (Unicode 15.0, PropList.txt), minus
 * what refused_chars already refuses anywhere (Cc, Zl, Zp): space and the
 * other Zs characters, plus the Braille pattern blank U+2800, which is drawn
 * as a space.  A name may not begin or end with any of them, and holds no
 * white space but the plain space U+0020 (a no-break space between two
 * words looks like a space).
 */
static const EsCodeRange white_space[] = {
	{0x0020, 0x0020, 's'},		/* space */
	{0x00A0, 0x00A0, 's'},		/* no-break space */
	{0x1680, 0x1680, 's'},		/* Ogham space mark */
	{0x2000, 0x200A, 's'},		/* en quad ... hair space */
	{0x202F, 0x202F, 's'},		/* narrow no-break space */
	{0x205F, 0x205F, 's'},		/* medium mathematical space */
	{0x2800, 0x2800, 's'},		/* Braille pattern blank (So) */
	{0x3000, 0x3000, 's'},		/* ideographic space */
};

/* Past the last code point: a byte of SQL_ASCII above 0x7F. */
#define NOT_A_CHARACTER		0x110000

/* The range of table[0..n) holding c, or NULL (binary search). */
static const EsCodeRange *
FindRange(const EsCodeRange *table, int n, pg_wchar c)
{
	int			lo = 0;
	int			hi = n - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (c < table[mid].first)
			hi = mid - 1;
		else if (c > table[mid].last)
			lo = mid + 1;
		else
			return &table[mid];
	}
	return NULL;
}

/* Is a text, of len bytes, in Unicode NFC?  It must be UTF-8. */
static bool
IsNFC(const char *s, int len)
{
	pg_wchar   *input;
	pg_wchar   *output;
	UnicodeNormalizationQC qc;
	bool		ascii = true;
	int			i;

	for (i = 0; i < len; i++)
		if (IS_HIGHBIT_SET(s[i]))
			ascii = false;
	if (ascii)
		return true;			/* ASCII text is in every normalization form */

	input = palloc((len + 1) * sizeof(pg_wchar));
	pg_mb2wchar_with_len(s, input, len);	/* terminates it with 0 */
	qc = unicode_is_normalized_quickcheck(UNICODE_NFC, input);
	if (qc != UNICODE_NORM_QC_MAYBE)
		return qc == UNICODE_NORM_QC_YES;

	/* The quick check could not tell: normalize and compare. */
	output = unicode_normalize(UNICODE_NFC, input);
	for (i = 0; input[i] != 0 && output[i] == input[i]; i++)
		;
	return input[i] == 0 && output[i] == 0;
}

/*
 * Check a name-like text (account, from, to, currency; or id when is_id):
 * 1 to ES_MAX_NAME_CHARS characters, and no character that would let two
 * different texts look the same or disturb what is shown around them:
 *
 *	- no control character (Cc), anywhere; for an id, that is all;
 *	- no format character (Cf) or line or paragraph separator (Zl, Zp);
 *	- no white space (White_Space) at the start or the end;
 *	- in Unicode normalization form NFC, when the database encoding is
 *	  UTF8, so that e-acute as one character (U+00E9) and as "e" and a
 *	  combining accent (U+0301) are not two names.
 *
 * An id is an opaque key, compared byte for byte and never shown as a
 * name: it only has to be printable safely (in messages and logs), so it
 * is spared the other checks, and an id in use stays usable.
 *
 * In another server encoding the text is converted to UTF-8 first for the
 * character checks (LATIN1's 0xA0 is U+00A0); NFC is not required there,
 * as a legacy encoding may have no composed form for what it spells.  In
 * SQL_ASCII bytes above 0x7F mean nothing in particular: only the ASCII
 * characters are checked.
 */
static void
CheckName(const char *what, const char *value, int ordinal, bool is_id)
{
	int			len = strlen(value);
	int			encoding = GetDatabaseEncoding();
	const char *utf8 = value;
	const unsigned char *p;
	const unsigned char *end;
	pg_wchar	first = 0;
	pg_wchar	last = 0;
	const char *kind;

	if (len == 0)
		Invalid(ordinal, psprintf("\"%s\" is empty", what),
				"Names and ids are texts of 1 to 200 characters.");
	if (len > ES_MAX_NAME_CHARS &&
		pg_mbstrlen_with_len(value, len) > ES_MAX_NAME_CHARS)
		Invalid(ordinal, psprintf("\"%s\" is longer than %d characters", what,
								  ES_MAX_NAME_CHARS),
				"Names and ids are texts of 1 to 200 characters.");

	if (encoding != PG_UTF8 && encoding != PG_SQL_ASCII)
	{
		utf8 = pg_server_to_any(value, len, PG_UTF8);
		len = strlen(utf8);
	}

	p = (const unsigned char *) utf8;
	end = p + len;
	while (p < end)
	{
		pg_wchar	c;
		const EsCodeRange *r;

		if (!IS_HIGHBIT_SET(*p))
			c = *p++;
		else if (encoding == PG_SQL_ASCII)
		{
			/* A byte of no known character: not white space, not refused. */
			first = first ? first : NOT_A_CHARACTER;
			last = NOT_A_CHARACTER;
			p++;
			continue;
		}
		else
		{
			c = utf8_to_unicode(p);
			p += pg_utf_mblen(p);
		}
		first = first ? first : c;
		last = c;

		r = FindRange(refused_chars, lengthof(refused_chars), c);
		if (r == NULL || (is_id && r->category != 'c'))
			continue;
		kind = r->category == 'c' ? "a control character" :
			r->category == 'f' ? "an invisible format character" :
			r->category == 'i' ? "an invisible character" :
			"a line or paragraph separator";
		Invalid(ordinal,
				psprintf("\"%s\" contains %s (U+%04X)", what, kind, (unsigned int) c),
				is_id ?
				"Ids may not contain control characters (Unicode category Cc)." :
				"Account names and currencies may not contain control or format characters (Unicode categories Cc and Cf: zero-width characters, bidirectional controls, soft hyphen, byte order mark, ...), other characters drawn as nothing (Default_Ignorable_Code_Point: combining grapheme joiner, variation selectors, Hangul fillers, ...) or line and paragraph separators, so that two different names cannot look the same.");
	}
	if (is_id)
		return;

	/* White space other than the plain space, anywhere. */
	for (p = (const unsigned char *) utf8; p < end;)
	{
		pg_wchar	c;

		if (!IS_HIGHBIT_SET(*p))
		{
			p++;
			continue;
		}
		if (encoding == PG_SQL_ASCII)
		{
			p++;
			continue;
		}
		c = utf8_to_unicode(p);
		p += pg_utf_mblen(p);
		if (FindRange(white_space, lengthof(white_space), c))
			Invalid(ordinal,
					psprintf("\"%s\" contains white space other than a plain space (U+%04X)",
							 what, (unsigned int) c),
					"Account names and currencies may hold no white space but U+0020, so that two different names cannot look the same.");
	}
	if (FindRange(white_space, lengthof(white_space), first))
		Invalid(ordinal,
				psprintf("\"%s\" begins with white space (U+%04X)", what,
						 (unsigned int) first),
				"Account names and currencies may not begin or end with white space, so that two different names cannot look the same.");
	if (FindRange(white_space, lengthof(white_space), last))
		Invalid(ordinal,
				psprintf("\"%s\" ends with white space (U+%04X)", what,
						 (unsigned int) last),
				"Account names and currencies may not begin or end with white space, so that two different names cannot look the same.");

	if (encoding == PG_UTF8 && !IsNFC(value, len))
		Invalid(ordinal,
				psprintf("\"%s\" is not in Unicode normalization form NFC", what),
				"Account names and currencies must be in NFC, so that one text spelt two ways (an accented letter as one character, or as a letter and a combining accent) cannot name two accounts; normalize(name, NFC) gives that form.");
}

/* A name-like text field; is_id for the idempotency key (see CheckName). */
static char *
ParseName(JsonbValue *v, const char *what, int ordinal, bool is_id)
{
	char	   *s;

	if (v->type != jbvString)
		Invalid(ordinal, psprintf("\"%s\" must be a string, not %s", what,
								  JsonTypeName(v)), NULL);
	s = pnstrdup(v->val.string.val, v->val.string.len);
	CheckName(what, s, ordinal, is_id);
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
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("%s\"%s\" is out of range",
							ordinal > 0 ? psprintf("command %d of the batch: ", ordinal) : "",
							what),
					 errdetail("Amounts, limits and versions are at most 9223372036854775807.")));
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
	TimestampTz ts = 0;
	ErrorData  *edata = NULL;

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
		Invalid(o, psprintf("unknown field \"%s\" for a command of type %s",
							key, EsDecideHandler(cmd->type)->name), NULL);
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
		if (ncmds > es_max_batch_commands)
			Invalid(0,
					psprintf("the batch has %d commands, more than es_ledger.max_batch_commands (%d)",
							 ncmds, es_max_batch_commands),
					"Split the batch into smaller ones (each is atomic on its own), or have a superuser raise es_ledger.max_batch_commands.");

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
			cmd->id = CopyText(cmd->id);
			cmd->account = CopyText(cmd->account);
			cmd->to_account = CopyText(cmd->to_account);
			cmd->currency = CopyText(cmd->currency);
			if (cmd->metadata)
				cmd->metadata = CopyJsonb(cmd->metadata);
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
	appendStringInfoChar(&buf, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}
