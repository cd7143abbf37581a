# test/t/017_worker_singleton.pl
#
# One projection worker per database, whatever its handlers run (issue 15,
# section 1): the worker's "one per database" lock is a session lock SQL
# cannot release.  An async projection whose handler calls
# pg_advisory_unlock_all() (which released the old advisory lock) is
# resumed again and again while events are appended; at most one
# es_ledger projection worker ever runs for the database, and the
# projection applies every event once.  Reloading
# es_ledger.projection_databases without the database stops its worker.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('singleton');
$node->init;
$node->append_conf('postgresql.conf', qq{
max_worker_processes = 12
es_ledger.projection_naptime = 100
});
$node->start;

sub q1 { return $node->safe_psql('postgres', shift); }

q1(q{CREATE EXTENSION es_ledger;
	SELECT es_open_account('w-1', 'USD');
	CREATE TABLE seen (seq bigint PRIMARY KEY);
	CREATE FUNCTION unlocker(ev es_events) RETURNS void LANGUAGE sql AS $$
		SELECT pg_advisory_unlock_all();
		INSERT INTO seen VALUES (ev.seq);
	$$;
	SELECT es_projection_create('unlocker', 'unlocker(es_events)', 'async');});

my $workers = q{SELECT count(*) FROM pg_stat_activity
				 WHERE backend_type = 'es_ledger projection worker'};
$node->poll_query_until('postgres', 'SELECT count(*) = 1 FROM seen')
  or die 'the worker did not apply the projection';

my $max = 0;
for my $i (1 .. 8)
{
	q1(qq{SELECT es_deposit('w-1', $i)});
	q1(q{SELECT es_projection_pause('unlocker')});
	q1(q{SELECT es_projection_resume('unlocker')});
	# let a second worker, if one was started, get as far as its lock
	$node->poll_query_until('postgres', "SELECT count(*) = 1 + $i FROM seen")
	  or die "the worker did not apply event $i";
	my $n = q1($workers);
	$max = $n if $n > $max;
}
sleep 1;
my $n = q1($workers);
$max = $n if $n > $max;
is($max, 1, 'at most one projection worker for the database, whatever the handler unlocks');
is(q1(q{SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		 WHERE a.backend_type = 'es_ledger projection worker'
		   AND l.locktype = 'advisory' AND l.objsubid = 3 AND l.granted}),
	'1', 'the worker still holds its lock after its handler ran pg_advisory_unlock_all()');
is(q1('SELECT count(*) FROM seen'), q1('SELECT count(*) FROM es_events'),
	'the projection applied every event once');

# reloading es_ledger.projection_databases stops a worker no longer listed
q1(q{LOAD 'es_ledger'; ALTER SYSTEM SET es_ledger.projection_databases = 'elsewhere'; SELECT pg_reload_conf();});
ok($node->poll_query_until('postgres', "SELECT ($workers) = 0"),
	'a worker whose database is no longer listed leaves after a reload');

$node->stop;
done_testing();
