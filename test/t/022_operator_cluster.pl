# test/t/022_operator_cluster.pl
#
# Issue 15's acceptance at small scale: an operator's cluster with the
# library preloaded, ten databases, the default max_worker_processes (8),
# an idle-in-transaction session holding an xid in another database, a
# listener that never reads (and a notification queue above
# es_ledger.notify_queue_limit), an async projection in the ledger's
# database.  Then:
#  - the ledger's commands all commit;
#  - its follower (es_read from the start) and its async projection keep up:
#    every committed event, none held back by the other database's xid;
#  - another database's parallel query gets its workers;
#  - at most one es_ledger worker per database at any time, and once the
#    launcher has looked at every database, only the launcher and the
#    ledger's worker run; no "could not start" warning.
# The logical subscriber of the acceptance is test 023 (another topic).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = es_node('operator', conf => qq{
shared_preload_libraries = 'es_ledger'
es_ledger.projection_naptime = 100
});
is($node->safe_psql('postgres', 'SHOW max_worker_processes'), '8',
	'the default worker limit');

$node->safe_psql('postgres', "CREATE DATABASE db$_") for 1 .. 9;
$node->safe_psql('postgres', 'CREATE DATABASE ledger');
sub q1 { return $node->safe_psql('ledger', shift); }

# sample the es_ledger processes: (launchers, max workers in one database,
# workers in all)
my $max_per_db = 0;
my $max_launchers = 0;
sub sample
{
	my ($l, $per, $all) = split /\|/, $node->safe_psql('postgres', q{
		SELECT (SELECT count(*) FROM pg_stat_activity
				 WHERE backend_type = 'es_ledger projection launcher'),
			   (SELECT coalesce(max(n), 0) FROM
				 (SELECT count(*) n FROM pg_stat_activity
				   WHERE backend_type = 'es_ledger projection worker'
				   GROUP BY datid) w),
			   (SELECT count(*) FROM pg_stat_activity
				 WHERE backend_type = 'es_ledger projection worker')});
	$max_per_db = $per if $per > $max_per_db;
	$max_launchers = $l if $l > $max_launchers;
	return ($l, $per, $all);
}

# ------------------------------------------------------------ the setting
q1(q{CREATE EXTENSION es_ledger;
	SELECT es_open_account('op-' || i, 'USD') FROM generate_series(1, 4) i;
	SELECT es_deposit('op-' || i, 1000000) FROM generate_series(1, 4) i;
	CREATE TABLE seen (seq bigint PRIMARY KEY);
	CREATE FUNCTION seen_apply(ev es_events) RETURNS void LANGUAGE sql
		AS $$ INSERT INTO seen VALUES (ev.seq) $$;
	SELECT es_projection_create('seen', 'seen_apply(es_events)', 'async');});

# an idle-in-transaction session holding an xid in another database
my $idle = $node->background_psql('db1');
$idle->query_safe('BEGIN');
my $idle_xid = $idle->query_safe('SELECT txid_current()');

# a listener that never reads, and a queue it keeps from draining, above
# the limit from which the ledger skips its NOTIFY
my $listener = $node->background_psql('ledger');
$listener->query_safe('LISTEN es_events');
$listener->query_safe('LISTEN filler');
$listener->query_safe('BEGIN');
$listener->query_safe('SELECT 1');
q1(q{SELECT pg_notify('filler', i || repeat('p', 7000)) FROM generate_series(1, 40) i});
$node->safe_psql('postgres',
	q{ALTER SYSTEM SET es_ledger.notify_queue_limit = 0.00001; SELECT pg_reload_conf()});
$node->poll_query_until('ledger',
	q{SELECT current_setting('es_ledger.notify_queue_limit')::float8 < 0.001})
  or die 'the limit was not reloaded';
cmp_ok(q1('SELECT pg_notification_queue_usage()'), '>', 0.00001,
	'the queue is held above the limit by the listener');

# ----------------------------------------------------- the ledger's commands
my $before = q1('SELECT count(*) FROM es_events');
my $ok = 0;
for my $i (1 .. 40)
{
	my $a = 1 + $i % 4;
	my $b = 1 + ($i + 1) % 4;
	my ($rc) = $node->psql('ledger',
		"SELECT es_transfer('op-$a', 'op-$b', $i); SELECT es_deposit('op-$a', 1)",
		on_error_stop => 1);
	$ok++ if $rc == 0;
	sample() if $i % 5 == 0;
}
is($ok, 40, 'every ledger command commits (80 commands, 40 sessions)');
my $total = q1('SELECT count(*) FROM es_events');
cmp_ok($total - $before, '>=', 80, 'their events are in the log');

# ------------------------------------------------- the follower keeps up
my $read = q1('SELECT count(*), max(seq) FROM es_read(NULL, 100000)');
is($read, q1('SELECT count(*), max(seq) FROM es_events'),
	'es_read returns every committed event despite the idle xid in db1');
is(q1("SELECT txid_status($idle_xid)"), 'in progress',
	'... while the idle transaction of db1 still holds its xid');

# --------------------------------------------- the async projection too
my $t0 = time;
my $caught;
while (time - $t0 < 20)
{
	sample();
	if (q1('SELECT count(*) FROM seen') == $total)
	{
		$caught = time - $t0;
		last;
	}
	select(undef, undef, undef, 0.2);
}
ok(defined $caught,
	'the async projection applies every event ('
	  . (defined $caught ? sprintf('%.1f s after the last command', $caught) : 'not within 20 s')
	  . ')');

# ---------------------------------- another database's parallel query
$node->safe_psql('db2',
	q{CREATE TABLE big AS SELECT i FROM generate_series(1, 100000) i; ANALYZE big});
my $launched = 0;
$t0 = time;
while (time - $t0 < 15)
{
	my $plan = $node->safe_psql('db2', q{
		SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
		SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;
		EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM big});
	($launched) = $plan =~ /Workers Launched: (\d+)/;
	$launched //= 0;
	last if $launched > 0;
	sample();
	select(undef, undef, undef, 0.5);
}
cmp_ok($launched, '>', 0, "db2's parallel query gets its workers ($launched launched)");

# ------------------------------------------------ the es_ledger processes
# Once the launcher has tried every database (those without a ledger exit
# at once and are backed off), the launcher and the ledger's worker remain.
my ($l, $per, $all);
$t0 = time;
while (time - $t0 < 15)
{
	($l, $per, $all) = sample();
	last if $l == 1 && $all == 1;
	select(undef, undef, undef, 0.3);
}
is("$l|$all", '1|1', 'the launcher and one worker (the ledger\'s) remain');
is($node->safe_psql('postgres', q{SELECT datname FROM pg_stat_activity
	WHERE backend_type = 'es_ledger projection worker'}), 'ledger',
	'... in the database with the async projection');
is($max_per_db, 1, 'never more than one es_ledger worker in a database');
is($max_launchers, 1, 'one launcher');
unlike(slurp_file($node->logfile), qr/could not start the es_ledger projection worker/,
	'no worker start refused long enough to warn');

$idle->quit;
$listener->quit;
$node->stop;
done_testing();
