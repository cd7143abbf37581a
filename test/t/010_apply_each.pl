# 010_apply_each.pl: es_apply_each when another session races it.
#
# A command of es_apply_each is validated before it writes, but a
# concurrent transaction can still take its id or its account name between
# the validation and the write.  These interleavings check that the loser
# gets its row (ES008, ES004) and writes nothing, that the other commands
# of the call go on, and that errors which are not a command's rejection
# (lock_timeout) abort the whole call:
#
# - an id taken by a concurrent command (different content) while the
#   call's command waits on the register's unique index: ES008 row, caught
#   without a subtransaction (nothing was written yet); if the other
#   transaction rolls back instead, the command is applied;
# - an account name opened concurrently, open_account without an id: ES004
#   row, without a subtransaction;
# - the same with an id: the register row is written before the account
#   row, so the command runs in a subtransaction, rolled back: ES004 row and
#   no register row;
# - a lock wait past lock_timeout: 55P03 for the whole call, nothing of it
#   written.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;

my $node = es_node('apply_each');
$node->safe_psql('postgres', q{
	CREATE EXTENSION es_ledger;
	SELECT es_open_account('x', 'USD'), es_open_account('y', 'USD');
	SELECT es_deposit('x', 1000), es_deposit('y', 1000);
});

my $a = $node->background_psql('postgres');
my $b = $node->background_psql('postgres', on_error_stop => 0);

# Start es_apply_each in B and wait until it waits for a lock.
sub start_waiting
{
	my ($sql, $what) = @_;
	$b->query_until(qr/started/, "\\echo started\n$sql\n");
	ok( $node->poll_query_until(
			'postgres',
			"SELECT count(*) = 1 FROM pg_stat_activity
			  WHERE wait_event_type = 'Lock' AND query LIKE '%es_apply_each%'"),
		"$what: es_apply_each waits for the other transaction");
}

# The rows of B's last es_apply_each, once it has finished.
sub rows_of_b
{
	my $out = $b->query_safe("SELECT string_agg(ord || ':' || coalesce(sqlstate, 'ok'), ',' ORDER BY ord) FROM each_rows;");
	return $out;
}

sub events { return $node->safe_psql('postgres', 'SELECT count(*) FROM es_events'); }

# 1. An id registered concurrently, for another command.
my $before = events();
$a->query_safe("BEGIN; SELECT es_deposit('x', 5, 'race-1');");
start_waiting(
	"CREATE TEMP TABLE each_rows AS SELECT * FROM es_apply_each('[
		{\"type\": \"deposit\", \"account\": \"y\", \"amount\": 1, \"id\": \"race-1\"},
		{\"type\": \"deposit\", \"account\": \"y\", \"amount\": 2}]');",
	'id race');
$a->query_safe("COMMIT;");
is(rows_of_b(), '1:ES008,2:ok', 'id race: the loser gets ES008, the next command is applied');
is($b->query_safe("SELECT message FROM each_rows WHERE ord = 1;"),
	'command id "race-1" was already used for another command', 'id race: the message');
is(events() - $before, 2, 'id race: only the winner and the second command wrote');
$b->query_safe("DROP TABLE each_rows;");

# ... and if the other transaction rolls back, the command is applied.
$before = events();
$a->query_safe("BEGIN; SELECT es_deposit('x', 5, 'race-2');");
start_waiting(
	"CREATE TEMP TABLE each_rows AS SELECT * FROM es_apply_each('[
		{\"type\": \"deposit\", \"account\": \"y\", \"amount\": 1, \"id\": \"race-2\"},
		{\"type\": \"deposit\", \"account\": \"y\", \"amount\": 2}]');",
	'id race, rolled back');
$a->query_safe("ROLLBACK;");
is(rows_of_b(), '1:ok,2:ok', 'id race, rolled back: both commands applied');
is(events() - $before, 2, 'id race, rolled back: two events');
$b->query_safe("DROP TABLE each_rows;");

# 2. A name opened concurrently, open_account without an id.
$before = events();
$a->query_safe("BEGIN; SELECT es_open_account('n1', 'USD');");
start_waiting(
	"CREATE TEMP TABLE each_rows AS SELECT * FROM es_apply_each('[
		{\"type\": \"open_account\", \"account\": \"n1\", \"currency\": \"EUR\"},
		{\"type\": \"deposit\", \"account\": \"y\", \"amount\": 3}]');",
	'name race');
$a->query_safe("COMMIT;");
is(rows_of_b(), '1:ES004,2:ok', 'name race: ES004, the next command is applied');
is(events() - $before, 2, 'name race: only the winner and the deposit wrote');
$b->query_safe("DROP TABLE each_rows;");

# 3. The same with an id: the register row was written first, so the
# subtransaction the command ran in is rolled back.
$before = events();
$a->query_safe("BEGIN; SELECT es_open_account('n2', 'USD');");
start_waiting(
	"CREATE TEMP TABLE each_rows AS SELECT * FROM es_apply_each('[
		{\"type\": \"open_account\", \"account\": \"n2\", \"currency\": \"EUR\", \"id\": \"open-n2\"},
		{\"type\": \"deposit\", \"account\": \"y\", \"amount\": 4}]');",
	'name race with an id');
$a->query_safe("COMMIT;");
is(rows_of_b(), '1:ES004,2:ok', 'name race with an id: ES004, the next command is applied');
is(events() - $before, 2, 'name race with an id: only the winner and the deposit wrote');
is($node->safe_psql('postgres', "SELECT count(*) FROM es_commands WHERE command_id = 'open-n2'"),
	'0', 'name race with an id: the id was not registered');
$b->query_safe("DROP TABLE each_rows;");

# 4. A lock wait past lock_timeout is not a command's rejection: the whole
# call fails and writes nothing (here in the batch's first locking, before
# any command ran).
$before = events();
$a->query_safe("BEGIN; SELECT es_deposit('x', 1);");
$b->query("SET lock_timeout = '300ms';
	SELECT count(*) FROM es_apply_each('[
		{\"type\": \"deposit\", \"account\": \"y\", \"amount\": 1},
		{\"type\": \"deposit\", \"account\": \"x\", \"amount\": 1}]');");
like($b->{stderr}, qr/lock timeout/, 'lock_timeout fails the whole call');
$b->{stderr} = '';
$b->query_safe("RESET lock_timeout;");
$a->query_safe("COMMIT;");
is(events() - $before, 1, 'lock_timeout: nothing of the call was written');

is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(account || '=' || balance, ',' ORDER BY account) FROM es_accounts"),
	'n1=0,n2=0,x=1006,y=1012',
	'balances: every accepted command once');
is($node->safe_psql('postgres', "SELECT bool_and(ok) FROM es_verify()"),
	't', 'es_verify passes');
is( $node->safe_psql(
		'postgres',
		"SELECT bool_and((r.*)::text = (a.*)::text) FROM es_accounts a, LATERAL es_replay(a.account) r"),
	't', 'the projection equals the replay of the log');

$a->quit;
$b->quit;
$node->stop;
done_testing();
