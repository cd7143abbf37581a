# 003_locks.pl: deterministic interleavings of two sessions.
#
# - Readers never wait for a writer: while one transaction holds an account
#   row, SELECT on es_accounts and es_replay return the last committed state.
# - A second writer on that account waits for the first (lock_timeout shows
#   it), so no update is lost.
# - Transfers in opposite directions do not deadlock: both lock their two
#   accounts in ascending account_id order, so the second simply waits.
# - A transaction that started before an account was opened writes to it
#   with the opening's recorded_at: es_balance_at and es_accounts_at as of
#   its start say the account did not exist yet.
# - es_rebuild_projections waits for a running writer, and a writer waits
#   for a running rebuild until its transaction ends (ShareRowExclusiveLock
#   on es_accounts); a reader waits for neither.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;

my $node = es_node('locks', conf => "deadlock_timeout = '100ms'");
$node->safe_psql('postgres', q{
	CREATE EXTENSION es_ledger;
	SELECT es_open_account('x', 'USD'), es_open_account('y', 'USD');
	SELECT es_deposit('x', 1000), es_deposit('y', 1000);
});

my $a = $node->background_psql('postgres');
my $b = $node->background_psql('postgres', on_error_stop => 0);

# A takes both rows and keeps its transaction open.
$a->query_safe("BEGIN; SELECT es_transfer('x', 'y', 100);");

is( $b->query_safe(
		"SET statement_timeout = '5s'; SELECT balance FROM es_accounts WHERE account = 'x';"),
	'1000',
	'a reader sees the committed balance while a writer holds the row');
is($b->query_safe("SELECT (es_replay('y')).balance;"),
	'1000', 'es_replay does not wait for the writer either');

$b->query("SET lock_timeout = '300ms'; SELECT es_deposit('x', 1);");
like($b->{stderr}, qr/lock timeout/,
	'a second writer on the same account waits for the first');
$b->{stderr} = '';
$b->query_safe("RESET lock_timeout;");

# B transfers the other way round; it queues behind A's locks.
$b->query_until(qr/started/, "\\echo started\nSELECT es_transfer('y', 'x', 50);\n");
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity
		  WHERE wait_event_type = 'Lock' AND query LIKE '%es_transfer(''y''%'"),
	'the opposite transfer waits for the first transaction');

# A, still holding both rows, also transfers y -> x, then commits.
$a->query_safe("SELECT es_transfer('y', 'x', 30); COMMIT;");
$b->query_safe("SELECT 1;");
is($b->{stderr}, '', 'the waiting transfer went through without an error');

is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(account || '=' || balance, ',' ORDER BY account) FROM es_accounts"),
	'x=980,y=1020',
	'every transfer was applied once');
is( $node->safe_psql(
		'postgres',
		"SELECT bool_and((a.balance, a.version, a.last_hash) = (r.balance, r.version, r.last_hash))
		   FROM es_accounts a, LATERAL es_replay(a.account) r"),
	't', 'the projection equals the replay of the log');

# recorded_at is the start of the writing transaction, raised to the
# account's last recorded_at: A starts, B opens an account and commits, A
# deposits into it.  The deposit is recorded with the opening's time, not
# before it; as of A's start the account did not exist, and the
# time-travel functions say so.
$a->query_safe("BEGIN; SELECT 1;");
my $t_a = $a->query_safe("SELECT now();");
$node->safe_psql('postgres', "SELECT es_open_account('z', 'USD');");
$a->query_safe("SELECT es_deposit('z', 5); COMMIT;");
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(version || ' ' || type || ' ' || balance_after, ',' ORDER BY version)
		   || ' ' || (count(DISTINCT recorded_at) = 1 AND min(recorded_at) > '$t_a')
		   FROM es_history('z')"),
	'1 AccountOpened 0,2 Deposited 5 true',
	'es_history: the deposit is recorded at the opening\'s time, after A started');
is( $node->safe_psql(
		'postgres',
		"SELECT es_balance_at('z', '$t_a') IS NULL,
		        (SELECT count(*) FROM es_accounts_at('$t_a') WHERE account = 'z'),
		        es_balance_at('z', NULL)"),
	't|0|5',
	'as of A\'s start the account did not exist yet; now it holds the deposit');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM ((SELECT * FROM es_accounts_at(NULL) EXCEPT SELECT * FROM es_accounts)
		   UNION ALL (SELECT * FROM es_accounts EXCEPT SELECT * FROM es_accounts_at(NULL))) x"),
	'0', 'es_accounts_at(NULL) equals es_accounts');

# es_rebuild_projections against writers.
$a->query_safe("BEGIN; SELECT es_deposit('x', 1);");
$b->query("SET lock_timeout = '300ms'; SELECT es_rebuild_projections();");
like($b->{stderr}, qr/lock timeout/,
	'es_rebuild_projections waits for a running writer');
$b->{stderr} = '';
$b->query_safe("RESET lock_timeout;");
$a->query_safe("COMMIT;");
$a->query_safe("SET client_min_messages = warning; BEGIN; SELECT es_rebuild_projections();");
$b->query("SET lock_timeout = '300ms'; SELECT es_deposit('y', 1);");
like($b->{stderr}, qr/lock timeout/,
	'a writer waits for a running es_rebuild_projections');
$b->{stderr} = '';
$b->query_safe("RESET lock_timeout;");
is($b->query_safe("SET lock_timeout = '300ms'; SELECT count(*) > 0 FROM es_accounts;"),
	't', 'a reader does not wait for es_rebuild_projections');
$b->query_safe("RESET lock_timeout;");
$a->query_safe("COMMIT;");
is($b->query_safe("SELECT es_deposit('y', 1) > 0;"),
	't', 'the writer goes through once the rebuild committed');
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(check_name || '=' || ok, ',' ORDER BY check_name)
		   FROM es_verify() WHERE check_name IN ('projection', 'conservation')"),
	'conservation=true,projection=true',
	'es_verify passes after the rebuild');

# Stable answers.  A writer transaction held open across a point-in-time
# query: its events will be recorded at its start, before the time asked
# for, so the answer as of a time after that start is flagged (WARNING) and
# does change when it commits; the answer as of a time before it began is
# final and does not.
$node->safe_psql('postgres', "SELECT es_open_account('w', 'USD'), es_deposit('w', 100)");
my $t_before = $node->safe_psql('postgres', "SELECT clock_timestamp()");
$a->query_safe("BEGIN; SELECT 1;");
my $t_after = $node->safe_psql('postgres', "SELECT clock_timestamp()");
my ($ret, $out, $err) = $node->psql('postgres', "SELECT es_balance_at('w', '$t_after')");
is($out, '100', 'as of a time after an open transaction began: the balance so far');
like($err, qr/WARNING:  the answer as of .* may still change/, '... flagged as not final');
($ret, $out, $err) = $node->psql('postgres', "SELECT es_balance_at('w', '$t_before')");
is($out, '100', 'as of a time before it began: the same balance');
is($err, '', '... and not flagged');
($ret, $out, $err) = $node->psql('postgres', "SELECT balance FROM es_replay('w', '$t_after')");
like($err, qr/may still change/, 'es_replay flags it too');
$a->query_safe("SELECT es_deposit('w', 50); COMMIT;");
is($node->safe_psql('postgres', "SELECT es_balance_at('w', '$t_after')"), '150',
	'the flagged answer changed when the open transaction committed');
is($node->safe_psql('postgres', "SELECT es_balance_at('w', '$t_before')"), '100',
	'the unflagged one did not');
($ret, $out, $err) = $node->psql('postgres', "SELECT es_balance_at('w', '$t_after')");
is($err, '', 'with no transaction open, nothing is flagged');

$a->quit;
$b->quit;
$node->stop;
my $log = slurp_file($node->logfile);
unlike($log, qr/deadlock detected/, 'no deadlock was detected');

done_testing();
