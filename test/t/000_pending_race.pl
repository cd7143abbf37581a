# test/t/000_pending_race.pl
#
# Two-phase transfers under concurrency (pgbench, 8 clients, 2 threads):
# many sessions posting and voiding the same pending transfers at once.
# Every error is caught in SQL and recorded in race_log with the
# transaction's outcome, so what committed is known exactly.  Checked:
#
#  round 1: posts (full) and voids race on 40 reservations: exactly one
#    command wins each transfer, the losers get ES010, the row's status and
#    posted amount are the winner's;
#  round 2: partial posts of random amounts race on 40 reservations: one
#    wins each, and no transfer ever moves more than it reserved (the
#    balances moved equal the posted amounts, posted <= reserved);
#  round 3: posts, voids and es_expire_pending race on 40 reservations with
#    a one-second timeout while the clock passes it: each ends posted,
#    voided or expired exactly once, posts after the expiry time get ES013;
#
# then, with 20 reservations left open on purpose: es_verify is all ok,
# every account's pending_out / pending_in equals the sum of its open
# reservations, available = balance - pending_out, money is conserved, and
# the server log shows no deadlock.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;

my $node = es_node('pending_race', conf => qq{
max_connections = 40
deadlock_timeout = 100ms
log_lock_waits = on
});

my $n = 40;
my $reserved = 1000;

sub sql { return $node->safe_psql('postgres', shift); }

sql(qq{
CREATE EXTENSION es_ledger;
SELECT es_open_account('src-' || i, 'USD') FROM generate_series(1, 4) i;
SELECT es_open_account('dst-' || i, 'USD') FROM generate_series(1, 4) i;
SELECT es_deposit('src-' || i, 1000000) FROM generate_series(1, 4) i;

CREATE TABLE race_log (
	n        bigserial PRIMARY KEY,
	round    int NOT NULL,
	i        int NOT NULL,
	op       int NOT NULL,      -- 1 post all, 2 post part, 3 void, 4 expire
	amount   bigint,
	sqlstate text NOT NULL,     -- 'ok' or the SQLSTATE
	result   bigint             -- seq, or es_expire_pending's count
);

-- One step: a command on reservation r<round>-<i>; never raises.
CREATE FUNCTION race_step(rnd int, i int, op int, amt bigint) RETURNS void
LANGUAGE plpgsql AS \$\$
DECLARE
	id text := 'r' || rnd || '-' || i;
	r bigint;
BEGIN
	IF op = 1 THEN
		r := es_apply(jsonb_build_object('type', 'post_pending', 'pending_id', id));
	ELSIF op = 2 THEN
		r := es_apply(jsonb_build_object('type', 'post_pending', 'pending_id', id, 'amount', amt));
	ELSIF op = 3 THEN
		r := es_apply(jsonb_build_object('type', 'void_pending', 'pending_id', id));
	ELSE
		r := es_expire_pending();
	END IF;
	INSERT INTO race_log (round, i, op, amount, sqlstate, result)
	VALUES (rnd, i, op, CASE WHEN op = 2 THEN amt END, 'ok', r);
EXCEPTION WHEN OTHERS THEN
	INSERT INTO race_log (round, i, op, amount, sqlstate)
	VALUES (rnd, i, op, CASE WHEN op = 2 THEN amt END, SQLSTATE);
END \$\$;

-- The reservations of a round: r<round>-1 .. r<round>-$n, $reserved each,
-- from src-(i % 4 + 1) to dst-(i % 4 + 1).
CREATE FUNCTION reserve(rnd int, timeout int) RETURNS void LANGUAGE sql AS \$\$
	SELECT es_apply(jsonb_build_object('type', 'transfer', 'from', 'src-' || (i % 4 + 1),
			'to', 'dst-' || (i % 4 + 1), 'amount', $reserved, 'pending', true,
			'id', 'r' || rnd || '-' || i)
			|| CASE WHEN timeout > 0 THEN jsonb_build_object('timeout', timeout) ELSE '{}' END)
	  FROM generate_series(1, $n) i;
\$\$;
});

# Run one round's pgbench script for $secs seconds.
sub race
{
	my ($round, $secs, $ops, $what) = @_;
	$node->pgbench(
		"--no-vacuum --client=8 --jobs=2 --time=$secs",
		0,
		[qr{processed: [1-9]}],
		[qr{^(?!.*aborted)}s],
		"round $round: 8 clients race for $secs s ($what), no client aborted",
		{
			"es_race_$round" => qq{
\\set i random(1, $n)
\\set op random(1, $ops)
\\set amt random(1, $reserved)
SELECT race_step($round, :i, :op, :amt);
}
		});
}

# Checks shared by the rounds: one winner per transfer, the row says what
# the winner did, and only the expected SQLSTATEs.
sub check_round
{
	my ($round, $states) = @_;
	is(sql(qq{SELECT count(*) FROM es_transfers
	           WHERE transfer_id LIKE 'r$round-%' AND status <> 'pending'}),
		$n, "round $round: every reservation is finished");
	is(sql(qq{SELECT count(*) FROM (
	            SELECT t.transfer_id, count(l.n) AS wins
	              FROM es_transfers t
	              LEFT JOIN race_log l ON l.round = $round AND l.op <> 4
	                   AND l.sqlstate = 'ok' AND t.transfer_id = 'r$round-' || l.i
	             WHERE t.transfer_id LIKE 'r$round-%'
	             GROUP BY t.transfer_id) w
	           WHERE wins <> CASE WHEN (SELECT status FROM es_transfers x
	                                     WHERE x.transfer_id = w.transfer_id) = 'expired'
	                              THEN 0 ELSE 1 END}),
		0, "round $round: exactly one post or void won each transfer (none for an expired one)");
	is(sql(qq{SELECT count(*) FROM es_transfers t
	            JOIN race_log l ON l.round = $round AND l.op <> 4 AND l.sqlstate = 'ok'
	                 AND t.transfer_id = 'r$round-' || l.i
	           WHERE t.status <> CASE l.op WHEN 3 THEN 'voided' ELSE 'posted' END
	              OR t.posted_amount <> CASE l.op WHEN 1 THEN t.amount WHEN 2 THEN l.amount ELSE 0 END}),
		0, "round $round: each row's status and posted amount are its winner's");
	is(sql(qq{SELECT string_agg(DISTINCT sqlstate, ',') FROM race_log
	           WHERE round = $round AND sqlstate NOT IN ('ok', $states)}),
		'', "round $round: no SQLSTATE but $states (no deadlock, no unique violation)");
}

# round 1: full posts and voids
sql('SELECT reserve(1, 0)');
race(1, 4, 3, 'full posts and voids');
check_round(1, "'ES010'");
cmp_ok(sql(q{SELECT count(*) FROM race_log WHERE round = 1 AND sqlstate = 'ES010'}), '>', 0,
	'round 1: losers were turned away with ES010');

# round 2: partial posts only
sql('SELECT reserve(2, 0)');
race(2, 4, 2, 'partial posts');
check_round(2, "'ES010'");
is(sql(q{SELECT count(*) FROM es_transfers WHERE transfer_id LIKE 'r2-%'
          AND (posted_amount > amount OR posted_amount < 0)}),
	0, 'round 2: no transfer posted more than it reserved');

# round 3: posts, voids and es_expire_pending while the timeout runs out
sql('SELECT reserve(3, 1)');
race(3, 3, 4, 'posts, voids and expiry across the timeout');
check_round(3, "'ES010', 'ES013'");
is(sql(q{SELECT count(*) FROM es_transfers t JOIN race_log l ON l.round = 3
            AND l.sqlstate = 'ok' AND l.op <> 4 AND t.transfer_id = 'r3-' || l.i
          WHERE l.op IN (1, 2) AND t.status <> 'posted'}),
	0, 'round 3: no post succeeded on a transfer that expired');
cmp_ok(sql(q{SELECT coalesce(sum(result), 0) FROM race_log WHERE round = 3 AND op = 4 AND sqlstate = 'ok'}),
	'<=', sql(q{SELECT count(*) FROM es_transfers WHERE transfer_id LIKE 'r3-%' AND status = 'expired'}),
	'round 3: es_expire_pending expired no more than the transfers that expired (commands touching an account expire the others)');
is(sql(q{SELECT count(*) FROM es_events WHERE type = 'TransferExpired'}),
	2 * sql(q{SELECT count(*) FROM es_transfers WHERE status = 'expired'}),
	'round 3: each expiry wrote its two events once');

# 20 reservations left open, then the invariants
sql(q{SELECT es_apply(jsonb_build_object('type', 'transfer', 'from', 'src-' || (i % 4 + 1),
		'to', 'dst-' || ((i + 1) % 4 + 1), 'amount', i, 'pending', true, 'id', 'open-' || i))
	  FROM generate_series(1, 20) i});
is(sql(q{SELECT string_agg(check_name, ',') FROM es_verify() WHERE NOT ok}), '',
	'es_verify: every check ok');
is(sql(q{SELECT count(*) FROM es_accounts a
          WHERE a.pending_out <> coalesce((SELECT sum(amount) FROM es_transfers t
                                            WHERE t.from_account = a.account AND t.status = 'pending'), 0)
             OR a.pending_in <> coalesce((SELECT sum(amount) FROM es_transfers t
                                           WHERE t.to_account = a.account AND t.status = 'pending'), 0)
             OR a.available <> a.balance - a.pending_out}),
	0, 'pending_out and pending_in are the sums of the open reservations');
is(sql(q{SELECT sum(pending_out) FROM es_accounts}), 210, 'the 20 open reservations are all that is reserved');
is(sql(q{SELECT sum(balance) FROM es_accounts}), 4000000, 'money is conserved');
is(sql(q{SELECT sum(balance) FROM es_accounts WHERE account LIKE 'dst-%'}),
	sql(q{SELECT sum(posted_amount) FROM es_transfers}),
	'the destinations received exactly the posted amounts');
is(sql(q{SELECT count(*) FROM es_accounts a, LATERAL es_replay(a.account) r
          WHERE (a.balance, a.pending_out, a.pending_in, a.version)
             <> (r.balance, r.pending_out, r.pending_in, r.version)}),
	0, 'every account equals its replay');

my $log = slurp_file($node->logfile);
unlike($log, qr/deadlock detected/, 'no deadlock in the server log');
unlike($log, qr/TRAP|server process .* was terminated/, 'no crash');

$node->stop;
done_testing();
