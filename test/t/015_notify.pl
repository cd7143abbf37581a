# test/t/015_notify.pl
#
# NOTIFY es_events is a hint that never fails a payment and never makes a
# commit wait (issue 15, section 3):
#
#  - a listener that sits idle in a transaction keeps the notification
#    queue from draining; once the queue is at es_ledger.notify_queue_limit
#    ledger commands keep committing and send no notification (below it
#    they do), where a full queue would fail their commit;
#  - with the queue drained again, the hint is sent again.
# (A ledger commit that finds the global notify lock taken skips the hint
# instead of waiting; NotifyMayWait in es_write.c.  Not tested here: no SQL
# can hold that lock through a commit without a standby.)
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('notify');
$node->init;
$node->start;

sub q1 { return $node->safe_psql('postgres', shift); }

q1(q{CREATE EXTENSION es_ledger;
	SELECT es_open_account('n-' || i, 'USD') FROM generate_series(1, 2) i;});

# ---------------------------------------------- a listener that never reads
my $l = $node->background_psql('postgres');
$l->query_safe('LISTEN es_events');
$l->query_safe('LISTEN filler');
my $first = q1(q{SELECT es_deposit('n-1', 1)});	# below the limit: notified
# psql shows a notification after the next command it runs: keep it all
my $seen = $l->query_safe('BEGIN');
$seen .= $l->query_safe('SELECT 1');		# idle in transaction from now on: reads nothing
# fill some pages of the queue that the idle listener holds
q1(q{SELECT pg_notify('filler', i || repeat('p', 7000)) FROM generate_series(1, 40) i});
cmp_ok(q1('SELECT pg_notification_queue_usage()'), '>', 0.00001,
	'the idle listener keeps the queue from draining');
q1(q{LOAD 'es_ledger'; ALTER SYSTEM SET es_ledger.notify_queue_limit = 0.00001; SELECT pg_reload_conf();});
$node->poll_query_until('postgres', q{SELECT current_setting('es_ledger.notify_queue_limit')::float8 < 0.001})
  or die 'the limit was not reloaded';

my $before = q1('SELECT count(*) FROM es_events');
my $ok = 0;
for my $i (1 .. 50)
{
	my ($rc, $out, $err) = $node->psql('postgres',
		"SELECT es_deposit('n-2', 1)", on_error_stop => 1);
	$ok++ if $rc == 0;
}
is($ok, 50, 'with the queue at the limit, every ledger command commits');
is(q1('SELECT count(*) FROM es_events') - $before, 50,
	'... and its events are in the log');

$seen .= $l->query_safe('COMMIT');
$seen .= $l->query_safe('SELECT 1');
my @payloads = $seen =~ /Asynchronous notification "es_events" with payload "(\d+)"/g;
is_deeply(\@payloads, [$first],
	'the listener got the notification sent below the limit and none above it');
$l->quit;
q1(q{LOAD 'es_ledger'; ALTER SYSTEM RESET es_ledger.notify_queue_limit; SELECT pg_reload_conf();});

# with the lock free and the queue drained, the hint is sent again
my $l2 = $node->background_psql('postgres');
$l2->query_safe('LISTEN es_events');
my $last = q1(q{SELECT es_deposit('n-1', 1)});
my $got = $l2->query_safe('SELECT 1');
@payloads = $got =~ /Asynchronous notification "es_events" with payload "(\d+)"/g;
is_deeply(\@payloads, [$last], 'with the queue below the limit the hint is sent again');
$l2->quit;

$node->stop;
done_testing();
