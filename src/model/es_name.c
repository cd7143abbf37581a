/*-------------------------------------------------------------------------
 *
 * es_name.c
 *	  The rules for names: account names, currencies and command ids, as
 *	  es_command.c's parser checks them (EsNameCheck).
 *
 * A name is 1 to ES_MAX_NAME_CHARS characters.  Account names and
 * currencies also may not hold characters that would let two different
 * texts look the same or disturb what is shown around them (control and
 * format characters, other default-ignorable ones, line and paragraph
 * separators, white space but U+0020, a space at either end) and must be in
 * Unicode NFC in a UTF8 database; ids may only hold no control characters.
 * Pure functions of the text: no database access, no locks.  Every refusal
 * is ES009 (EsDecideInvalid).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/unicode_norm.h"
#include "mb/pg_wchar.h"

#include "model.h"

/* Reject a name with ES009 (see EsDecideInvalid). */
#define Invalid(ordinal, msg, detail) EsDecideInvalid((ordinal), (msg), (detail))

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
void
EsNameCheck(const char *what, const char *value, int ordinal, bool is_id)
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
