# test/t/013_follow.pl
#
# Following the log with es_read while it is written (doc/reference.md, es_read):
#
#  - 8 pgbench writers append for 15 s with random delays inside their
#    transactions, one in six rolling back after its appends; one session
#    holds a transaction open for 8 s after appending, another rolls one
#    back after 5 s;
#  - a follower (a procedure that reads a page with es_read, stores the
#    events and its cursor and commits, in a loop) runs meanwhile, and a
#    naive follower that bookmarks "seq > last seen" runs beside it;
#  - at the end the follower has seen exactly the committed events, each
#    once, in (tx, seq) order, including the held transaction's event after
#    events with higher seqs; the naive one missed that event;
#  - on a streaming hot standby es_read returns what the primary returns,
#    and an open transaction on the primary bounds what it returns;
#  - after pg_dump / pg_restore the old cursor is refused (55000) and the
#    restored log reads from NULL in seq order.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;
use IPC::Run;
use Time::HiRes qw(time);

my $node = es_node('follow', init => { allows_streaming => 1 }, conf => "max_connections = 40\n");

sub q1 { return $node->safe_psql('postgres', shift); }

q1(q{
	CREATE EXTENSION es_ledger;
	SELECT es_open_account('f-' || i, 'USD') FROM generate_series(1, 22) i;

	CREATE TABLE followed (n bigserial PRIMARY KEY, seq bigint NOT NULL, cursor text NOT NULL);
	CREATE TABLE follower_state (id int PRIMARY KEY, cursor text);
	INSERT INTO follower_state VALUES (1, NULL);
	-- set when every writer has finished: the followers then catch up and stop
	CREATE TABLE writers_done (done boolean NOT NULL);
	INSERT INTO writers_done VALUES (false);
	-- the follower: a page of events, stored with the cursor in one
	-- transaction, until the writers are done and it has caught up
	CREATE PROCEDURE follow(page int) LANGUAGE plpgsql AS $$
	DECLARE c text; r record; got int; stop boolean;
	BEGIN
		SELECT cursor INTO c FROM follower_state WHERE id = 1;
		LOOP
			got := 0;
			SELECT done INTO stop FROM writers_done;
			FOR r IN SELECT * FROM es_read(c, page) LOOP
				INSERT INTO followed (seq, cursor) VALUES (r.seq, r.cursor);
				c := r.cursor;
				got := got + 1;
			END LOOP;
			UPDATE follower_state SET cursor = c WHERE id = 1;
			COMMIT;
			EXIT WHEN got < page AND stop;
			IF got < page THEN PERFORM pg_sleep(0.005); END IF;
		END LOOP;
	END $$;

	-- the naive follower: "everything after the last seq seen"
	CREATE TABLE naive (seq bigint PRIMARY KEY);
	CREATE PROCEDURE follow_naive() LANGUAGE plpgsql AS $$
	DECLARE last bigint := 0; got int; stop boolean;
	BEGIN
		LOOP
			SELECT done INTO stop FROM writers_done;
			INSERT INTO naive SELECT seq FROM es_events WHERE seq > last ORDER BY seq LIMIT 50;
			GET DIAGNOSTICS got = ROW_COUNT;
			SELECT coalesce(max(seq), 0) INTO last FROM naive;
			COMMIT;
			EXIT WHEN got = 0 AND stop;
			IF got < 50 THEN PERFORM pg_sleep(0.005); END IF;
		END LOOP;
	END $$;
});

# The standby, from a backup taken now: it streams everything below.
$node->backup('bk');
my $standby = PostgreSQL::Test::Cluster->new('follow_standby');
$standby->init_from_backup($node, 'bk', has_streaming => 1);
$standby->start;

# ----------------------------------------------------------- the workload
my $script = $node->basedir . '/writer.sql';
open my $fh, '>', $script or die;
print $fh q{
\set acct random(1, 20)
\set amt random(1, 100)
\set abort random(1, 6)
\set d random(0, 15)
BEGIN;
SELECT es_deposit('f-' || :acct, :amt);
\sleep :d ms
SELECT es_apply(jsonb_build_array(
	jsonb_build_object('type', 'deposit', 'account', 'f-' || :acct, 'amount', 1),
	jsonb_build_object('type', 'withdraw', 'account', 'f-' || :acct, 'amount', 1)));
\if :abort = 1
ROLLBACK;
\else
COMMIT;
\endif
};
close $fh;

my $t0 = time;
my $connstr = $node->connstr('postgres');
my ($fout, $ferr, $nout, $nerr, $hout, $herr, $aout, $aerr) = ('') x 8;
my $follower = IPC::Run::start(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $connstr,
	  '-c', "CALL follow(50)" ], '>', \$fout, '2>', \$ferr);
my $naive = IPC::Run::start(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $connstr,
	  '-c', "CALL follow_naive()" ], '>', \$nout, '2>', \$nerr);
# held: appends at about 2 s, commits 8 s later
my $held = IPC::Run::start(
	[ 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $connstr,
	  '-c', "SELECT pg_sleep(2);", '-c', "BEGIN;", '-c', "SELECT es_deposit('f-21', 777);", '-c', "SELECT pg_sleep(8);", '-c', "COMMIT;" ],
	'>', \$hout, '2>', \$herr);
# a long transaction that rolls back
my $aborted = IPC::Run::start(
	[ 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $connstr,
	  '-c', "SELECT pg_sleep(2);", '-c', "BEGIN;", '-c', "SELECT es_deposit('f-22', 555);", '-c', "SELECT pg_sleep(5);", '-c', "ROLLBACK;" ],
	'>', \$aout, '2>', \$aerr);

$node->command_ok(
	[ 'pgbench', '-n', '-c', '8', '-j', '2', '-T', '12', '-f', $script, 'postgres' ],
	'8 writers append for 12 s, some rolling back');
ok($held->finish, 'the held transaction committed') or diag($herr);
ok($aborted->finish, 'the long transaction rolled back') or diag($aerr);
q1('UPDATE writers_done SET done = true');
ok($follower->finish, 'the follower ran to the end') or diag($ferr);
ok($naive->finish, 'the naive follower ran to the end') or diag($nerr);
note(sprintf('workload and followers took %.1f s', time - $t0));

my ($held_seq) = grep { /^\d+$/ && $_ ne '' } split /\n/, $hout;
my ($aborted_seq) = grep { /^\d+$/ } split /\n/, $aout;
ok(defined $held_seq && defined $aborted_seq, 'the held and the rolled-back transactions appended')
	or diag("held: $hout / aborted: $aout");

# ------------------------------------------------------------- the checks
my $committed = q1('SELECT count(*) FROM es_events');
cmp_ok($committed, '>', 500, "a real workload: $committed committed events");
cmp_ok(q1('SELECT max(seq) - count(*) FROM es_events'), '>', 20,
	'rolled-back transactions left gaps in seq');
is(q1("SELECT count(*) FROM es_events WHERE seq = $aborted_seq"), '0',
	'the long rolled-back transaction left nothing');
is(q1('SELECT count(*) - count(DISTINCT seq) FROM followed'), '0',
	'the follower saw no event twice');
is(q1('SELECT count(*) FROM (SELECT seq FROM es_events EXCEPT SELECT seq FROM followed) x'), '0',
	'the follower missed no committed event');
is(q1('SELECT count(*) FROM (SELECT seq FROM followed EXCEPT SELECT seq FROM es_events) x'), '0',
	'the follower saw only committed events');
is( q1(q{SELECT count(*) FROM (SELECT n, row_number() OVER (ORDER BY n) AS i FROM followed) f
		JOIN (SELECT seq, row_number() OVER (ORDER BY tx, seq) AS i FROM es_events) e USING (i)
		JOIN followed x ON x.n = f.n AND x.seq <> e.seq}),
	'0', 'the follower saw the events in (tx, seq) order');
is(q1('SELECT cursor FROM follower_state'), q1('SELECT cursor FROM followed ORDER BY n DESC LIMIT 1'),
	'the saved cursor is the last event\'s');
cmp_ok(
	q1( "SELECT count(*) FROM followed WHERE seq > $held_seq AND n < "
		  . "(SELECT n FROM followed WHERE seq = $held_seq)"),
	'>', 0, 'the held transaction\'s event came after events with higher seqs');
is(q1("SELECT count(*) FROM naive WHERE seq = $held_seq"), '0',
	'a naive "seq > last" follower missed the held transaction\'s event');
is(q1("SELECT count(*) FROM es_read((SELECT cursor FROM follower_state))"), '0',
	'nothing left after the saved cursor');

# one notification per committed appending transaction: a listener sees
# the payload of a transaction's last seq
my ($lout, $lerr) = ('', '');
my $listener = IPC::Run::start(
	[ 'psql', '-X', '-q', '-A', '-t', '-d', $connstr,
	  '-c', "LISTEN es_events;", '-c', "SELECT pg_sleep(3);", '-c', "SELECT 1;" ], '>', \$lout, '2>', \$lerr);
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(3)%'})
  or die 'the listener did not start';
my $nseq = q1(q{SELECT es_apply('[{"type": "deposit", "account": "f-3", "amount": 1},
                                 {"type": "deposit", "account": "f-4", "amount": 1}]')});
$listener->finish;
my @payloads = $lout =~ /Asynchronous notification "es_events" with payload "(\d+)"/g;
is_deeply(\@payloads, [$nseq], 'a listener got one notification with the batch\'s last seq');

# ------------------------------------------------------------ the standby
$node->wait_for_catchup($standby);
my $all = "SELECT string_agg(cursor || '/' || seq, ',') FROM es_read(NULL, 100000)";
is($standby->safe_psql('postgres', $all), q1($all), 'on the standby es_read returns what the primary returns');
my $last = q1(q{SELECT cursor FROM (SELECT cursor, row_number() OVER () AS r FROM es_read(NULL, 100000)) x
	ORDER BY r DESC LIMIT 1});
my ($hout2, $herr2) = ('', '');
my $held2 = IPC::Run::start(
	[ 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $connstr,
	  '-c', "BEGIN;", '-c', "SELECT es_deposit('f-21', 5);", '-c', "SELECT pg_sleep(4);", '-c', "COMMIT;" ],
	'>', \$hout2, '2>', \$herr2);
# wait until it has appended (it has an xid and sleeps)
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(4)%' AND backend_xid IS NOT NULL})
  or die 'the second held transaction did not start';
my $after_held = q1("SELECT es_deposit('f-22', 6)");
$node->wait_for_catchup($standby);
is($standby->safe_psql('postgres', "SELECT count(*) FROM es_read('$last')"), '0',
	'on the standby, a transaction open on the primary holds back the later committed one');
ok($held2->finish, 'the second held transaction committed') or diag($herr2);
$node->wait_for_catchup($standby);
my ($held2_seq) = grep { /^\d+$/ } split /\n/, $hout2;
is($standby->safe_psql('postgres', "SELECT string_agg(seq::text, ',') FROM es_read('$last')"),
	"$held2_seq,$after_held", 'after its commit, the standby returns both, the held one first');
$standby->stop;

# ------------------------------------------------ after a logical restore
my $saved = q1('SELECT cursor FROM follower_state');
my $dump = $node->basedir . '/follow.dump';
my $digest = q1(q{SELECT encode(digest, 'hex') FROM es_digest()});
$node->command_ok([ 'pg_dump', '-Fc', '-d', 'postgres', '-f', $dump ], 'pg_dump');
q1('CREATE DATABASE restored');
{
	local $ENV{PGOPTIONS} = "-c es_ledger.restore=on -c es_ledger.restore_digest=$digest";
	$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', 'restored', $dump ], 'pg_restore');
}
sub r1 { return $node->safe_psql('restored', shift); }
is(r1('SELECT count(DISTINCT tx) FROM es_events'), '1', 'restored events carry the restoring transaction\'s tx');
my ($ret, $out, $err) = $node->psql('restored', "SELECT count(*) FROM es_read('$saved')");
like($err, qr/does not match this ledger's log/, 'a cursor from before the restore is refused');
is( r1(q{SELECT count(*) = (SELECT count(*) FROM es_events)
		AND bool_and(seq > coalesce(prev, 0))
		FROM (SELECT seq, lag(seq) OVER () AS prev FROM es_read(NULL, 100000)) x}),
	't', 'the restored log reads from NULL, every event once, in seq order');
my $rlast = r1(q{SELECT cursor FROM (SELECT cursor, row_number() OVER () AS r FROM es_read(NULL, 100000)) x
	ORDER BY r DESC LIMIT 1});
my $rnew = r1("SELECT es_deposit('f-7', 7)");
is(r1("SELECT string_agg(seq::text, ',') FROM es_read('$rlast')"), $rnew,
	'a new event after the restore follows the restored ones');

note(sprintf('total %.1f s', time - $t0));
$node->stop;
done_testing();
