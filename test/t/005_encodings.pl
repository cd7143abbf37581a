# test/t/004_encodings.pl
#
# Account names in databases whose encoding is not UTF8 (the pg_regress
# suite runs in a UTF8 one; see sql/input_limits.sql).
#
#  - LATIN1: the text is converted to UTF-8 for the character checks, so
#    LATIN1's no-break space (0xA0), soft hyphen (0xAD) and C1 control NEL
#    (0x85) are refused like U+00A0, U+00AD and U+0085; NFC is not required
#    (a legacy encoding may have no composed form for what it spells).
#  - SQL_ASCII: bytes above 0x7F stand for no known character and are let
#    through; the ASCII rules (controls, leading and trailing spaces) hold.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;

my $node = es_node('encodings');

# Outcome of one statement: "ok", or the SQLSTATE and message of its error.
sub outcome
{
	my ($db, $sql) = @_;
	my ($stdout, $stderr);
	$node->psql($db, "\\set VERBOSITY default\n$sql",
		stdout => \$stdout, stderr => \$stderr,
		extra_params => [ '-v', 'ON_ERROR_STOP=1' ]);
	return 'ok' if $stderr eq '';
	$stderr =~ s/^psql:[^ ]* //mg;
	return (split /\n/, $stderr)[0];
}

for my $enc ('LATIN1', 'SQL_ASCII')
{
	my $db = lc $enc;
	$node->safe_psql('postgres',
		"CREATE DATABASE $db ENCODING '$enc' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
	$node->safe_psql($db, 'CREATE EXTENSION es_ledger');
	is($node->safe_psql($db, 'SELECT getdatabaseencoding()'), $enc, "database $db is $enc");

	# chr(n) is the byte n in a single-byte encoding: chr(233) is e acute.
	is(outcome($db, "SELECT es_open_account('caf' || chr(233), 'EUR')"),
		'ok', "$enc: a name with a character above 0x7F is accepted");
	is(outcome($db, "SELECT es_deposit('caf' || chr(233), 5)"),
		'ok', "$enc: and can be used");
	like(outcome($db, "SELECT es_open_account(E'ca\\tfe', 'EUR')"),
		qr/ERROR:  invalid command: "account" contains a control character \(U\+0009\)/,
		"$enc: a tab is refused");
	like(outcome($db, "SELECT es_open_account(' cafe', 'EUR')"),
		qr/ERROR:  invalid command: "account" begins with white space \(U\+0020\)/,
		"$enc: a leading space is refused");
	like(outcome($db, "SELECT es_open_account(chr(233) || ' ', 'EUR')"),
		qr/ERROR:  invalid command: "account" ends with white space \(U\+0020\)/,
		"$enc: a trailing space after a character above 0x7F is refused");
	like(outcome($db, "SELECT es_open_account('cafe', 'EUR ')"),
		qr/ERROR:  invalid command: "currency" ends with white space \(U\+0020\)/,
		"$enc: a currency with a trailing space is refused");
	like(outcome($db, "SELECT es_deposit('cafe', 1, 'id' || chr(10))"),
		qr/ERROR:  invalid command: "id" contains a control character \(U\+000A\)/,
		"$enc: an id with a newline is refused");
}

# LATIN1: the bytes above 0x7F are characters, checked as such.
like(outcome('latin1', "SELECT es_open_account('cafe' || chr(160), 'EUR')"),
	qr/ERROR:  invalid command: "account" contains white space other than a plain space \(U\+00A0\)/,
	'LATIN1: a trailing no-break space (0xA0) is refused');
like(outcome('latin1', "SELECT es_open_account(chr(160) || 'cafe', 'EUR')"),
	qr/ERROR:  invalid command: "account" contains white space other than a plain space \(U\+00A0\)/,
	'LATIN1: a leading no-break space is refused');
like(outcome('latin1', "SELECT es_open_account('ca' || chr(173) || 'fe', 'EUR')"),
	qr/ERROR:  invalid command: "account" contains an invisible format character \(U\+00AD\)/,
	'LATIN1: a soft hyphen (0xAD) is refused');
like(outcome('latin1', "SELECT es_open_account('ca' || chr(133) || 'fe', 'EUR')"),
	qr/ERROR:  invalid command: "account" contains a control character \(U\+0085\)/,
	'LATIN1: a C1 control (0x85) is refused');
like(
	outcome('latin1',
		"SELECT es_apply(jsonb_build_object('type', 'open_account', 'account', 'ca' || chr(150) || 'fe', 'currency', 'EUR'))"),
	qr/ERROR:  invalid command: "account" contains a control character \(U\+0096\)/,
	'LATIN1: through es_apply too');

# SQL_ASCII: the same bytes mean nothing in particular and pass.
is(outcome('sql_ascii', "SELECT es_open_account('cafe' || chr(160), 'EUR')"),
	'ok', 'SQL_ASCII: a trailing byte 0xA0 is accepted');
is(outcome('sql_ascii', "SELECT es_open_account('ca' || chr(173) || 'fe', 'EUR')"),
	'ok', 'SQL_ASCII: a byte 0xAD is accepted');

# Nothing refused was written.
is($node->safe_psql('latin1', 'SELECT count(*) FROM es_accounts'), '1',
	'LATIN1: only the accepted account exists');
is($node->safe_psql('sql_ascii', 'SELECT count(*) FROM es_accounts'), '3',
	'SQL_ASCII: only the accepted accounts exist');

$node->stop;
done_testing();
