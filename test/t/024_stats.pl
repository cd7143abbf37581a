# test/t/024_stats.pl
#
# The operator's view es_stats under a running workload (issue 18, item 4),
# with es_ledger in shared_preload_libraries (the shared counters):
#
#  - pgbench runs deposits, withdrawals, transfers (some rejected: ES001 for
#    too much, ES003 for an unknown account, ES005 for a frozen one, ES009
#    for a transfer to its own account) and
#    es_apply_each batches (one row applied, one rejected), each call's
#    outcome logged by the client in the same database; meanwhile a poller
#    reads es_stats every 200 ms, each poll in a transaction of its own;
#  - every poll succeeded, and the counters it saw never went down;
#  - afterwards the commands counted by type equal the commands the clients
#    saw applied, and the rejections counted by SQLSTATE equal the
#    rejections they saw, exactly (counting never loses one, nor counts one
#    twice, nor counts what was not made);
#  - the events section equals the log, and the log grew by what the
#    applied commands write;
#  - es_stats_reset zeroes them; a second database counts on its own;
#  - a projection held back by a prepared transaction names it.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = es_node('stats',
	conf => "shared_preload_libraries = 'es_ledger'\nmax_connections = 30\nmax_prepared_transactions = 2\n",
	ledger => 'postgres');
sub q1 { return $node->safe_psql('postgres', shift); }

my $nacc = 8;
q1(qq{
SELECT es_open_account('acct-' || i, 'USD') FROM generate_series(1, $nacc) i;
SELECT es_deposit('acct-' || i, 1000) FROM generate_series(1, $nacc) i;
SELECT es_open_account('frozen', 'USD');
SELECT es_apply('{"type": "freeze_account", "account": "frozen"}');
CREATE TABLE outcomes (kind text NOT NULL, sqlstate text NOT NULL);
CREATE TABLE polls (n int NOT NULL, applied bigint, rejected bigint, events bigint, ok boolean NOT NULL);

-- One step of the workload: a command, its outcome logged; never raises.
CREATE FUNCTION stats_step(a int, b int, amt bigint, mode int) RETURNS void
LANGUAGE plpgsql AS \$\$
DECLARE k text; st text := 'ok'; r record;
BEGIN
	IF mode = 5 THEN
		-- a batch of two, applied one by one: a deposit and too much of a withdrawal
		FOR r IN SELECT * FROM es_apply_each(jsonb_build_array(
				jsonb_build_object('type', 'deposit', 'account', 'acct-' || a, 'amount', amt),
				jsonb_build_object('type', 'withdraw', 'account', 'acct-' || b, 'amount', 1000000000))) LOOP
			INSERT INTO outcomes VALUES (CASE r.ord WHEN 1 THEN 'deposit' ELSE 'withdraw' END,
										 coalesce(r.sqlstate, 'ok'));
		END LOOP;
		RETURN;
	END IF;
	BEGIN
		IF mode = 1 THEN k := 'deposit'; PERFORM es_deposit('acct-' || a, amt);
		ELSIF mode = 2 THEN k := 'withdraw'; PERFORM es_withdraw('acct-' || a, amt * 20);
		ELSIF mode = 3 THEN k := 'transfer'; PERFORM es_transfer('acct-' || a, 'acct-' || b, amt * 10);
		ELSIF mode = 4 THEN k := 'deposit'; PERFORM es_deposit('nobody-' || a, amt);
		ELSE k := 'deposit'; PERFORM es_deposit('frozen', amt);
		END IF;
	EXCEPTION WHEN OTHERS THEN
		st := SQLSTATE;
	END;
	INSERT INTO outcomes VALUES (k, st);
END \$\$;

-- The poller: reads es_stats every 200 ms, n times, one transaction each.
CREATE PROCEDURE poll(n int) LANGUAGE plpgsql AS \$\$
DECLARE ap bigint; rj bigint; ev bigint;
BEGIN
	FOR i IN 1..n LOOP
		BEGIN
			SELECT sum(value) FILTER (WHERE section = 'commands'),
				   sum(value) FILTER (WHERE section = 'rejections'),
				   sum(value) FILTER (WHERE section = 'events')
			  INTO ap, rj, ev FROM es_stats;
			INSERT INTO polls VALUES (i, ap, rj, ev, true);
		EXCEPTION WHEN OTHERS THEN
			INSERT INTO polls VALUES (i, NULL, NULL, NULL, false);
		END;
		COMMIT;
		PERFORM pg_sleep(0.2);
	END LOOP;
END \$\$;
});

my $events_before = q1('SELECT count(*) FROM es_events');
ok(q1('SELECT es_stats_reset() IS NOT NULL'), 'preloaded: es_stats_reset returns the time');
is(q1(q{SELECT count(*) FROM es_stats WHERE section = 'rejections' OR (section = 'commands' AND value > 0)}),
	'0', 'after the reset nothing is counted');

# the poller, in the background, while pgbench runs
my ($pout, $perr) = ('', '');
my $poller = IPC::Run::start(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
	  '-c', 'CALL poll(40)' ],
	'>', \$pout, '2>', \$perr);

$node->pgbench(
	'--no-vacuum --client=4 --jobs=2 --time=6',
	0,
	[qr{processed: [1-9]}],
	[qr{^(?!.*aborted)}s],
	'pgbench: 4 clients, 6 s of commands, some rejected, while es_stats is polled',
	{
		'024_stats' => qq{
\\set a random(1, $nacc)
\\set b random(1, $nacc)
\\set amt random(1, 100)
\\set mode random(1, 6)
SELECT stats_step(:a, :b, :amt, :mode);
}
	});
$poller->finish;
is($?, 0, 'the poller ran to its end') or diag($perr);

my $polls = q1('SELECT count(*), count(*) FILTER (WHERE ok) FROM polls');
is($polls, '40|40', 'every poll of es_stats succeeded');
is(q1(q{SELECT count(*) FROM (SELECT applied < lag(applied) OVER w OR rejected < lag(rejected) OVER w
                                     OR events < lag(events) OVER w AS down
                                FROM polls WINDOW w AS (ORDER BY n)) x WHERE down}),
	'0', 'the counters a poll saw never went down');
ok(q1(q{SELECT count(DISTINCT applied) > 1 FROM polls}), 'the polls saw the counts grow');

# the counters against what the clients saw
my $made = q1(q{SELECT string_agg(kind || '=' || n, ',' ORDER BY kind)
                  FROM (SELECT kind, count(*) AS n FROM outcomes WHERE sqlstate = 'ok' GROUP BY kind) x});
my $counted = q1(q{SELECT string_agg(key || '=' || value, ',' ORDER BY key)
                     FROM es_stats WHERE section = 'commands' AND value > 0});
is($counted, $made, "commands counted by type = commands applied ($made)");
my $rejected = q1(q{SELECT string_agg(sqlstate || '=' || n, ',' ORDER BY sqlstate)
                      FROM (SELECT sqlstate, count(*) AS n FROM outcomes WHERE sqlstate <> 'ok' GROUP BY sqlstate) x});
my $rcounted = q1(q{SELECT string_agg(key || '=' || value, ',' ORDER BY key)
                      FROM es_stats WHERE section = 'rejections'});
is($rcounted, $rejected, "rejections counted by SQLSTATE = rejections made ($rejected)");
like($rejected, qr/ES001=\d+.*ES003=\d+.*ES005=\d+/, 'the workload made ES001, ES003 and ES005 rejections');

# the events section is the log, and the log grew by what was applied
is(q1(q{SELECT string_agg(key || '=' || value, ',' ORDER BY key) FROM es_stats WHERE section = 'events'}),
	q1(q{SELECT string_agg(type || '=' || n, ',' ORDER BY type) FROM (SELECT type, count(*) AS n FROM es_events GROUP BY type) x}),
	'events by type = the log');
is(q1('SELECT count(*) FROM es_events') - $events_before,
	q1(q{SELECT coalesce(sum(CASE kind WHEN 'transfer' THEN 2 ELSE 1 END), 0) FROM outcomes WHERE sqlstate = 'ok'}),
	'the log grew by the events of the commands counted');

# a second database counts on its own; a reset zeroes one database only
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', q{CREATE EXTENSION es_ledger; SELECT es_stats_reset(); SELECT es_open_account('o', 'USD')});
$node->psql('other', q{SELECT es_deposit('nobody', 1)});
is($node->safe_psql('other', q{SELECT string_agg(section || ':' || key || '=' || value, ',' ORDER BY section, key)
                                 FROM es_stats WHERE section IN ('commands', 'rejections') AND value > 0}),
	'commands:open_account=1,rejections:ES003=1', 'another database counts its own commands only');
is(q1(q{SELECT string_agg(key || '=' || value, ',' ORDER BY key) FROM es_stats WHERE section = 'commands' AND value > 0}),
	$made, 'the first database\'s counts are unchanged by the other\'s');
q1('SELECT es_stats_reset()');
is(q1(q{SELECT count(*) FROM es_stats WHERE section = 'rejections' OR (section = 'commands' AND value > 0)}),
	'0', 'es_stats_reset zeroes the counters');
isnt($node->safe_psql('other', q{SELECT count(*) FROM es_stats WHERE section = 'rejections'}),
	'0', 'but not another database\'s');

# a projection held back by a prepared transaction: es_stats says which
$node->safe_psql('postgres', q{
	CREATE FUNCTION st_handler(ev es_events) RETURNS void LANGUAGE plpgsql AS $$ BEGIN END $$;
	SELECT es_projection_create('st_proj', 'st_handler(es_events)', 'async');
	SELECT es_projection_pause('st_proj');
	BEGIN; SELECT es_deposit('acct-1', 1); PREPARE TRANSACTION 'st_held';});
like(q1(q{SELECT detail FROM es_stats WHERE section = 'projections' AND key = 'st_proj'}),
	qr/^async paused, lag .*, waiting for prepared transaction 'st_held' \(xid \d+, prepared at /,
	'a lagging projection shows the prepared transaction that holds it back');
q1(q{COMMIT PREPARED 'st_held'});
unlike(q1(q{SELECT detail FROM es_stats WHERE section = 'projections' AND key = 'st_proj'}),
	qr/waiting for/, 'and no longer once it is committed');

$node->stop;
done_testing();
