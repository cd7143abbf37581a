# 004_security.pl: the ledger's promises tested as the attacker, with
# several roles and sessions.
#
# - A database owner (not a superuser) who owns the extension's schema
#   cannot become superuser through the ledger: no function or relation
#   named like one of the extension's can be planted (ES011), so no overload
#   captures a superuser's es_apply('...'), and no view forges balances;
#   planted operators are not read; and the ledger cannot be dropped.
# - A role with no grants at all cannot delay es_apply by taking advisory
#   locks on the keys es_ledger 0.1.0 used (lock_timeout shows it).
# - Two commands with one id, or two opens of one name, queue behind each
#   other through the unique indexes: the second waits, then answers as if
#   it came second (same seq / ES008 / ES004), and an abort lets it through.
# - 100,000 commands with 100,000 ids and opens in one batch work under the
#   default max_locks_per_transaction.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;

my $node = es_node('security', conf => "deadlock_timeout = '100ms'");

# --------------------------------------------------------- the database owner
$node->safe_psql('postgres', q{
	CREATE ROLE owner LOGIN;
	CREATE ROLE mallory LOGIN;
	CREATE DATABASE victim OWNER owner;
});
# Installed as documented: in public, which the database owner owns.
$node->safe_psql('victim', q{
	CREATE EXTENSION es_ledger;
	CREATE ROLE reader LOGIN IN ROLE es_ledger_reader;
	CREATE ROLE writer LOGIN IN ROLE es_ledger_writer;
	SELECT es_open_account('a', 'USD'), es_deposit('a', 100);
});

my ($ret, $out, $err);

# 1. The 0.1.0 escalation: rename the schema away and plant look-alikes.
($ret, $out, $err) = $node->psql('victim',
	'ALTER SCHEMA public RENAME TO x', extra_params => [ '-U', 'owner' ]);
isnt($ret, 0, 'the database owner cannot rename the extension\'s schema');
like($err, qr/ES011|cannot/, '... refused by the guard');

# Look-alikes: the extension's functions, tables, sequences and types have
# names reserved in every schema, for the database owner as for anyone, so
# no overload or look-alike can capture an unqualified call or query.
$node->safe_psql('victim', q{
	CREATE SCHEMA evil AUTHORIZATION owner;
});
my @plants = (
	[ 'a text overload of es_apply in public (a superuser\'s untyped literal would pick it)',
		q{CREATE FUNCTION public.es_apply(text) RETURNS bigint LANGUAGE plpgsql AS $$
		  BEGIN
			EXECUTE 'ALTER ROLE owner SUPERUSER';
			RETURN public.es_apply($1::jsonb);
		  END $$;
		  GRANT EXECUTE ON FUNCTION public.es_apply(text) TO PUBLIC;} ],
	[ 'an integer overload of es_deposit (hijacks writers)',
		q{CREATE FUNCTION public.es_deposit(text, integer, text DEFAULT NULL) RETURNS bigint
		  LANGUAGE sql AS 'SELECT 0::bigint'} ],
	[ 'an integer overload of es_transfer',
		q{CREATE FUNCTION public.es_transfer(text, text, integer, text DEFAULT NULL) RETURNS bigint
		  LANGUAGE sql AS 'SELECT 0::bigint'} ],
	[ 'a one-argument es_replay (42725 for readers)',
		q{CREATE FUNCTION public.es_replay(text) RETURNS int LANGUAGE sql AS 'SELECT 0'} ],
	[ 'an es_apply with a default argument (42725 for everyone)',
		q{CREATE FUNCTION public.es_apply(jsonb, int DEFAULT 0) RETURNS bigint
		  LANGUAGE sql AS 'SELECT 0::bigint'} ],
	[ 'es_apply(jsonb) in a schema of the owner\'s',
		q{CREATE FUNCTION evil.es_apply(jsonb) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint'} ],
	[ 'a view evil.es_accounts with forged balances',
		q{CREATE VIEW evil.es_accounts AS SELECT account, balance + 1000000 AS balance FROM public.es_accounts} ],
	[ 'a view evil.es_events',
		q{CREATE VIEW evil.es_events AS SELECT * FROM public.es_events WHERE false} ],
	[ 'a table renamed to es_accounts',
		q{CREATE TABLE evil.t (account text, balance bigint); ALTER TABLE evil.t RENAME TO es_accounts} ],
);
foreach my $plant (@plants)
{
	my ($what, $sql) = @$plant;
	($ret, $out, $err) = $node->psql('victim', "\\set VERBOSITY verbose\nBEGIN;\n$sql;\nCOMMIT;",
		on_error_stop => 1, extra_params => [ '-U', 'owner' ]);
	isnt($ret, 0, "the database owner cannot plant $what");
	like($err, qr/ES011: the name es_\w+ is reserved by extension es_ledger/, '... refused with ES011');
}
is($node->safe_psql('victim', q{
	SELECT count(*) FROM pg_proc WHERE proname LIKE 'es\_%' AND pronamespace <> 'public'::regnamespace
	UNION ALL
	SELECT count(*) FROM pg_proc p WHERE proname LIKE 'es\_%'
	   AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
	UNION ALL
	SELECT count(*) FROM pg_class WHERE relname LIKE 'es\_%' AND relnamespace = 'evil'::regnamespace}),
	"0\n0\n0", 'no look-alike exists');

# Operators are not reserved, and nothing of es_ledger reads them: one that
# would break a ->> lookup, first in search_path.
$node->safe_psql('victim', q{
	CREATE FUNCTION evil.jtext(jsonb, jsonb) RETURNS text LANGUAGE sql AS 'SELECT (1/0)::text';
	CREATE FUNCTION evil.jtext(jsonb, text) RETURNS text LANGUAGE sql AS 'SELECT (1/0)::text';
	CREATE OPERATOR public.->> (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = evil.jtext);
	CREATE OPERATOR evil.->> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = evil.jtext);
	ALTER DATABASE victim SET search_path = evil, public;
}, extra_params => [ '-U', 'owner' ]);
$node->safe_psql('victim', q{
	ALTER ROLE reader SET search_path = evil, public;
	ALTER ROLE writer SET search_path = evil, public;
});

is($node->safe_psql('victim', "SELECT (es_replay('a')).balance",
		extra_params => [ '-U', 'reader' ]),
	'100', 'a reader whose search_path is the owner\'s still replays the real log');
is($node->safe_psql('victim', "SELECT es_deposit('a', 5) > 0",
		extra_params => [ '-U', 'writer' ]),
	't', 'a writer with that search_path still writes the real ledger');
is($node->safe_psql('victim', "SELECT balance FROM es_accounts WHERE account = 'a'",
		extra_params => [ '-U', 'reader' ]),
	'105', 'the projection was written, and a reader reads it, not a look-alike');
# The attacker's call: a superuser, with the database's search_path (evil
# first), passes an untyped literal.
is($node->safe_psql('victim', q{SELECT current_setting('search_path'), es_apply('{"type": "deposit", "account": "a", "amount": 5}') > 0}),
	'evil, public|t', 'a superuser\'s es_apply(\'...\') with an untyped literal runs es_ledger\'s es_apply');
is($node->safe_psql('victim', "SELECT balance FROM public.es_accounts WHERE account = 'a'"),
	'110', '... which wrote the ledger');
($ret, $out, $err) = $node->psql('victim', "SELECT (es_replay('a')).balance",
	extra_params => [ '-U', 'owner' ]);
isnt($ret, 0, 'the owner has no EXECUTE on es_replay');
is($node->safe_psql('victim', "SELECT rolsuper FROM pg_roles WHERE rolname = 'owner'"),
	'f', 'the database owner is still not a superuser');
$node->safe_psql('victim', 'ALTER DATABASE victim RESET search_path',
	extra_params => [ '-U', 'owner' ]);

# 2. The owner cannot drop the ledger with the schema.
($ret, $out, $err) = $node->psql('victim', 'DROP SCHEMA public CASCADE',
	extra_params => [ '-U', 'owner' ]);
isnt($ret, 0, 'the database owner cannot drop the ledger with DROP SCHEMA ... CASCADE');
is($node->safe_psql('victim', 'SELECT count(*) FROM public.es_events'),
	'4', 'every event is still there');

# --------------------------------------------- advisory locks of no one's
# mallory has no grant at all, yet may take any advisory lock.  The keys
# below are exactly the ones es_ledger 0.1.0 took for an id and a name.
my $m = $node->background_psql('victim', extra_params => [ '-U', 'mallory' ]);
$m->query_safe(q{
	SELECT pg_advisory_lock(x'45534c47'::int, hashtext('victim-id')),
	       pg_advisory_lock(x'45534c4e'::int, hashtext('victim-name')),
	       pg_advisory_lock(x'45534c4e'::int, hashtext('a'));
	SELECT count(pg_advisory_lock(x'45534c47'::int, i)) FROM generate_series(1, 1000) i;
});
is( $node->safe_psql(
		'victim', q{
	SET lock_timeout = '500ms';
	SELECT es_apply('[{"type": "open_account", "account": "victim-name", "currency": "USD", "id": "open-victim"},
	                  {"type": "deposit", "account": "victim-name", "amount": 7, "id": "victim-id"}]') > 0;
}),
	't',
	'es_apply does not wait for advisory locks a role without grants holds');
$m->quit;

# ------------------------------------------------- one id, two sessions
my $s1 = $node->background_psql('victim');
my $s2 = $node->background_psql('victim', on_error_stop => 0);
$node->safe_psql('victim', "SELECT es_open_account('b', 'USD')");

sub waits_for_lock
{
	my ($pattern) = @_;
	return $node->poll_query_until('victim',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '$pattern'");
}

# Same command, same id: the second returns the first's seq.
my $seq1 = $s1->query_safe(
	q{BEGIN; SELECT es_apply('{"type": "deposit", "account": "b", "amount": 10, "id": "same"}');});
$s2->query_until(qr/started/,
	qq{\\echo started\nSELECT es_apply('{"type": "deposit", "account": "b", "amount": 10, "id": "same"}');\n});
ok(waits_for_lock('%"id": "same"%'), 'a command with an id in flight makes its retry wait');
$s1->query_safe('COMMIT');
$s2->query_safe('SELECT 1');    # the retry has returned
is($node->safe_psql('victim', q{SELECT count(*) FROM es_events WHERE command_id = 'same'}),
	'1', 'the retry wrote nothing');
is($node->safe_psql('victim', q{SELECT es_apply('{"type": "deposit", "account": "b", "amount": 10, "id": "same"}')}),
	$seq1, 'and its answer is the first seq');

# Another command, same id, on another account: ES008 once the first commits.
$node->safe_psql('victim', "SELECT es_open_account('c', 'USD')");
$s1->query_safe(
	q{BEGIN; SELECT es_apply('{"type": "deposit", "account": "b", "amount": 1, "id": "clash"}');});
$s2->{stderr} = '';
$s2->query_until(qr/started/,
	qq{\\echo started\nSELECT es_apply('{"type": "deposit", "account": "c", "amount": 2, "id": "clash"}');\n});
ok(waits_for_lock('%"account": "c"%'), 'another command with the same id waits too');
$s1->query_safe('COMMIT');
$s2->query('SELECT 1');
like($s2->{stderr}, qr/already used for another command/, '... then fails with ES008');
is($node->safe_psql('victim', q{SELECT count(*) FROM es_events WHERE command_id = 'clash'}),
	'1', '... and wrote nothing');

# The first aborts: the second goes through.
$s1->query_safe(
	q{BEGIN; SELECT es_apply('{"type": "deposit", "account": "b", "amount": 3, "id": "abort"}');});
$s2->{stderr} = '';
$s2->query_until(qr/started/,
	qq{\\echo started\nSELECT es_apply('{"type": "deposit", "account": "c", "amount": 4, "id": "abort"}');\n});
ok(waits_for_lock('%"account": "c", "amount": 4%'), 'a command waits for an uncommitted one with its id');
$s1->query_safe('ROLLBACK');
$s2->query_safe('SELECT 1');
is($s2->{stderr}, '', '... and goes through when that one aborts');
is($node->safe_psql('victim', q{SELECT string_agg(a.account, ',') FROM es_events e JOIN es_accounts a USING (account_id) WHERE command_id = 'abort'}),
	'c', '... writing its own event');

# A retry racing its original on the same account: it waits on the row
# lock, then finds the id registered and answers with the seq, although the
# rules would now refuse the command (the account is frozen).
$node->safe_psql('victim', "SELECT es_open_account('f', 'USD')");
my $fseq = $s1->query_safe(
	q{BEGIN; SELECT es_apply('{"type": "freeze_account", "account": "f", "id": "freeze-f"}');});
$s2->{stderr} = '';
$s2->query_until(qr/started/,
	qq{\\echo started\nSELECT es_apply('{"type": "freeze_account", "account": "f", "id": "freeze-f"}') AS retried;\n});
ok(waits_for_lock('%freeze-f%'), 'a retry of a command in flight waits on the account');
$s1->query_safe('COMMIT');
$s2->query_safe('SELECT 1');
is($s2->{stderr}, '', 'a retry racing its original on the same account returns its seq, not ES005');
is($node->safe_psql('victim', q{SELECT count(*) FROM es_events WHERE command_id = 'freeze-f'}),
	'1', '... and writes nothing');

# Two opens of one name: the second waits, then ES004.
$s1->query_safe(q{BEGIN; SELECT es_open_account('twin', 'USD');});
$s2->{stderr} = '';
$s2->query_until(qr/started/, qq{\\echo started\nSELECT es_open_account('twin', 'EUR');\n});
ok(waits_for_lock(q{%es_open_account(''twin'', ''EUR'')%}), 'a second open of a name waits for the first');
$s1->query_safe('COMMIT');
$s2->query('SELECT 1');
like($s2->{stderr}, qr/already exists/, '... then fails with ES004');
is($node->safe_psql('victim', q{SELECT currency FROM es_accounts WHERE account = 'twin'}),
	'USD', '... and the first open stands');
$s1->quit;
$s2->quit;

# ------------------------------------------- 100,000 ids and opens at once
is( $node->safe_psql(
		'victim', q{
	SHOW max_locks_per_transaction;
	SELECT es_apply(jsonb_agg(jsonb_build_object('type', 'open_account', 'account', 'bulk-' || i,
	                                             'currency', 'USD', 'id', 'bulk-open-' || i))) > 0
	  FROM generate_series(1, 100000) i;
	SELECT count(*) FROM es_accounts WHERE account LIKE 'bulk-%';
}),
	"64\nt\n100000",
	'a batch of 100,000 opens with 100,000 ids works under the default lock table');

is( $node->safe_psql(
		'victim',
		"SELECT bool_and((a.balance, a.version, a.last_hash) = (r.balance, r.version, r.last_hash))
		   FROM es_accounts a, LATERAL es_replay(a.account) r WHERE a.account NOT LIKE 'bulk-%'"),
	't', 'the projection equals the replay of the log');
is($node->safe_psql('victim', "SELECT rolsuper FROM pg_roles WHERE rolname IN ('owner', 'mallory')"),
	"f\nf", 'no attacker became superuser');

$node->stop;
done_testing();
