# test/t/018_launcher.pl
#
# The launcher with the library preloaded and more databases than worker
# slots (issue 15, section 1): ten databases without a ledger and one with
# an async projection, the default max_worker_processes (8), workers
# started by the launcher only (es_ledger.projection_autostart off).
#
#  - the ledger's projection is applied within seconds;
#  - no "could not start the es_ledger projection worker" warning;
#  - at most one worker for the ledger's database, and the databases
#    without a ledger are not given a worker every round (their workers
#    exit and the launcher backs off): few workers run at any time;
#  - es_projection_create and es_projection_resume in a database the
#    launcher backs off from wake it: the projection is served at once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('launcher');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'es_ledger'
es_ledger.projection_autostart = off
es_ledger.projection_naptime = 100
});
$node->start;

$node->safe_psql('postgres', "CREATE DATABASE other$_") for 1 .. 10;
$node->safe_psql('postgres', 'CREATE DATABASE ledger');
sub q1 { return $node->safe_psql('ledger', shift); }
q1(q{CREATE EXTENSION es_ledger;
	SELECT es_open_account('l-1', 'USD');
	CREATE TABLE seen (seq bigint PRIMARY KEY);
	CREATE FUNCTION seen_apply(ev es_events) RETURNS void LANGUAGE sql
		AS $$ INSERT INTO seen VALUES (ev.seq) $$;
	SELECT es_projection_create('seen', 'seen_apply(es_events)', 'async');
	SELECT es_deposit('l-1', 5);});

my $workers = q{SELECT count(*) FROM pg_stat_activity
				 WHERE backend_type = 'es_ledger projection worker'};
my $start = time;
my $max = 0;
my $ledger_max = 0;
my $served;
while (time - $start < 60)
{
	my ($n, $l, $s) = split /\|/, $node->safe_psql('postgres', qq{
		SELECT ($workers),
			   (SELECT count(*) FROM pg_stat_activity
				 WHERE backend_type = 'es_ledger projection worker' AND datname = 'ledger'),
			   (SELECT 1)});
	$max = $n if $n > $max;
	$ledger_max = $l if $l > $ledger_max;
	if (!defined $served && q1('SELECT count(*) FROM seen') == 2)
	{
		$served = time - $start;
	}
	last if defined $served && time - $start > 35;
	select(undef, undef, undef, 0.2);
}
ok(defined $served && $served < 30,
	'the ledger\'s async projection is applied within seconds ('
	  . (defined $served ? sprintf('%.1f s', $served) : 'never') . ')');
is($ledger_max, 1, 'one worker for the ledger\'s database');
cmp_ok($max, '<=', 6, "few workers at any time (at most $max)");
q1(q{SELECT es_deposit('l-1', 6)});
$node->poll_query_until('ledger', 'SELECT count(*) = 3 FROM seen')
  or die 'the worker stopped applying';
pass('the ledger\'s worker keeps applying');
my $log = slurp_file($node->logfile);
unlike($log, qr/could not start the es_ledger projection worker/,
	'no worker start was refused for lack of a slot long enough to warn');

# A wake-up call: by now the launcher has started a worker in other1 a few
# times, seen it exit (no ledger) and backs off (20 s, then 40 s, ...).  An
# async projection created there is served within seconds all the same:
# es_projection_create wakes the launcher (autostart is off), which forgets
# the database's back-off.  The same for es_projection_resume.
$node->safe_psql('other1', q{CREATE EXTENSION es_ledger;
	SELECT es_open_account('o-1', 'USD');
	SELECT es_deposit('o-1', 5);
	CREATE TABLE seen (seq bigint PRIMARY KEY);
	CREATE FUNCTION seen_apply(ev es_events) RETURNS void LANGUAGE sql
		AS $$ INSERT INTO seen VALUES (ev.seq) $$;});
sub served_within
{
	my ($count) = @_;
	my $t0 = time;
	while (time - $t0 < 8)
	{
		return time - $t0
		  if $node->safe_psql('other1', 'SELECT count(*) FROM seen') == $count;
		select(undef, undef, undef, 0.1);
	}
	return undef;
}
$node->safe_psql('other1',
	q{SELECT es_projection_create('seen', 'seen_apply(es_events)', 'async')});
my $t = served_within(2);
ok(defined $t && $t < 5,
	'a projection created during the back-off is served at once ('
	  . (defined $t ? sprintf('%.1f s', $t) : 'not within 8 s') . ')');
$node->safe_psql('other1', q{SELECT es_projection_pause('seen')});
$node->safe_psql('other1',
	q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	   WHERE backend_type = 'es_ledger projection worker' AND datname = 'other1'});
$node->poll_query_until('other1', q{SELECT count(*) = 0 FROM pg_stat_activity
	WHERE backend_type = 'es_ledger projection worker' AND datname = 'other1'})
  or die 'the worker of other1 did not stop';
$node->safe_psql('other1', q{SELECT es_deposit('o-1', 6)});
$node->safe_psql('other1', q{SELECT es_projection_resume('seen')});
$t = served_within(3);
ok(defined $t && $t < 5,
	'a resumed projection is served at once ('
	  . (defined $t ? sprintf('%.1f s', $t) : 'not within 8 s') . ')');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'es_ledger projection worker' AND datname = 'other1'}),
	1, 'one worker for other1 after the wake-up calls');

$node->stop;
done_testing();
