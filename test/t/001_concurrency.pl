# test/t/001_concurrency.pl
#
# Concurrent transfers under pgbench: a hot account and 20 others, 8 clients
# moving money mostly to and from the hot account (both directions, so lock
# ordering matters), some deposits/withdrawals on the hot account, and a pool
# of idempotency keys that several clients race on.  Every error is caught in
# SQL and recorded (pgbench 15 would abort the client), then the ledger is
# checked: only ES001/ES002, balances = events = replay, versions gap-free,
# money conserved, limits never passed, idempotency held, no deadlock.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('concurrency');
$node->init;
$node->append_conf('postgresql.conf', qq{
max_connections = 40
deadlock_timeout = 100ms
log_lock_waits = on
});
$node->start;

my $nacc = 20;

$node->safe_psql('postgres', qq{
CREATE EXTENSION es_ledger;

-- hot account: overdraft 20000, cap 400000, starts with 200000
SELECT es_open_account('hot', 'USD', 20000, 400000);
SELECT es_deposit('hot', 200000);

-- acct-1..5 capped at 60000, acct-6..10 may overdraw by 10000, the rest plain;
-- everyone starts with 50000
SELECT es_open_account('acct-' || i, 'USD',
		CASE WHEN i BETWEEN 6 AND 10 THEN 10000 ELSE 0 END,
		CASE WHEN i <= 5 THEN 60000 END)
  FROM generate_series(1, $nacc) i;
SELECT es_deposit('acct-' || i, 50000) FROM generate_series(1, $nacc) i;

CREATE TABLE bench_log (
	n        bigserial PRIMARY KEY,
	kind     text NOT NULL,
	src      text,
	dst      text,
	amount   bigint NOT NULL,
	cmd_id   text,
	sqlstate text NOT NULL,     -- 'ok' or the SQLSTATE
	message  text,
	seq      bigint
);

-- One step of the workload; never raises.
CREATE FUNCTION bench_step(a int, b int, amt bigint, mode int, race int) RETURNS void
LANGUAGE plpgsql AS \$\$
DECLARE
	k text;
	s text;
	d text;
	id text;
	r bigint;
	st text := 'ok';
	msg text;
BEGIN
	IF b = a THEN b := a % $nacc + 1; END IF;
	IF race > 0 THEN
		-- a key shared by all clients; the command is a function of the key
		id := 'race-' || race;
		k := 'transfer';
		IF race % 2 = 0 THEN s := 'acct-' || (race % $nacc + 1); d := 'hot';
		ELSE s := 'hot'; d := 'acct-' || (race % $nacc + 1); END IF;
		amt := race % 97 + 1;
	ELSIF mode <= 4 THEN k := 'transfer'; s := 'hot'; d := 'acct-' || a;
	ELSIF mode <= 8 THEN k := 'transfer'; s := 'acct-' || a; d := 'hot';
	ELSIF mode = 9 THEN k := 'transfer'; s := 'acct-' || a; d := 'acct-' || b;
	ELSIF amt % 2 = 0 THEN k := 'deposit'; d := 'hot';
	ELSE k := 'withdraw'; s := 'hot';
	END IF;
	BEGIN
		IF k = 'transfer' THEN r := es_transfer(s, d, amt, id);
		ELSIF k = 'deposit' THEN r := es_deposit(d, amt, id);
		ELSE r := es_withdraw(s, amt, id);
		END IF;
	EXCEPTION WHEN OTHERS THEN
		st := SQLSTATE;
		msg := SQLERRM;
	END;
	INSERT INTO bench_log (kind, src, dst, amount, cmd_id, sqlstate, message, seq)
	VALUES (k, s, d, amt, id, st, msg, r);
END \$\$;
});

my $initial = $node->safe_psql('postgres', 'SELECT sum(balance) FROM es_accounts');
is($initial, 200000 + 50000 * $nacc, 'set up: 21 accounts funded');

# mode 1-4: hot -> x, 5-8: x -> hot, 9: x -> y, 10: deposit/withdraw on hot;
# one step in five uses one of 300 shared idempotency keys
$node->pgbench(
	'--no-vacuum --client=8 --jobs=2 --time=15',
	0,
	[qr{processed: [1-9]}],
	[qr{^(?!.*aborted)}s],
	'pgbench: 8 clients, 15 s of concurrent transfers, no client aborted',
	{
		'es_transfers' => qq{
\\set a random(1, $nacc)
\\set b random(1, $nacc)
\\set amt random(1, 5000)
\\set mode random(1, 10)
\\set r random(1, 5)
\\set key random(1, 300)
SELECT bench_step(:a, :b, :amt, :mode, CASE WHEN :r = 1 THEN :key ELSE 0 END);
}
	});

sub sql { return $node->safe_psql('postgres', shift); }

note('outcomes: ' . sql(q{SELECT string_agg(sqlstate || '=' || c, ' ' ORDER BY sqlstate)
                        FROM (SELECT sqlstate, count(*) c FROM bench_log GROUP BY 1) s}));

my $other = sql(q{SELECT string_agg(DISTINCT sqlstate || ': ' || message, E'\n')
                FROM bench_log WHERE sqlstate NOT IN ('ok', 'ES001', 'ES002')});
is($other, '', 'no SQLSTATE other than ES001 / ES002 was recorded');

my $okcount = sql(q{SELECT count(*) FROM bench_log WHERE sqlstate = 'ok'});
cmp_ok($okcount, '>', 1000, "many commands succeeded ($okcount)");
cmp_ok(sql(q{SELECT count(*) FROM bench_log WHERE sqlstate = 'ok' AND kind = 'transfer'
             AND 'hot' IN (src, dst)}), '>', 500, 'many transfers to and from the hot account succeeded');
cmp_ok(sql(q{SELECT count(*) FROM bench_log WHERE sqlstate IN ('ES001', 'ES002')}), '>', 0,
	'the limits were reached (some ES001 / ES002)');

is(sql(q{SELECT count(*) FROM bench_log WHERE sqlstate = 'ok' AND seq IS NULL}), '0',
	'every successful command returned a seq');

# the log and the projection
is(sql(q{SELECT count(*) FROM es_accounts a LEFT JOIN (
		SELECT account_id, sum(amount) s, count(*) c, max(version) v, max(seq) m FROM es_events GROUP BY account_id) e
		USING (account_id)
	 WHERE a.balance IS DISTINCT FROM e.s::bigint OR a.version IS DISTINCT FROM e.c
	    OR a.version IS DISTINCT FROM e.v OR a.last_seq IS DISTINCT FROM e.m}), '0',
	'balance = sum(amount), version = count = max(version), last_seq = max(seq) for every account');
is(sql(q{SELECT count(*) FROM (SELECT account_id FROM es_events GROUP BY account_id
		HAVING min(version) <> 1 OR max(version) <> count(*) OR count(DISTINCT version) <> count(*)) s}), '0',
	'versions are 1..n without gaps');
is(sql(q{SELECT count(*) - count(DISTINCT seq) FROM es_events}), '0', 'seq is unique');
is(sql(q{SELECT count(*) FROM (SELECT seq, lag(seq) OVER (PARTITION BY account_id ORDER BY version) p FROM es_events) s
	 WHERE seq <= p}), '0', 'within an account, seq increases with version (insertion order)');
is(sql(q{SELECT count(*) FROM es_accounts a WHERE row(a.*) IS DISTINCT FROM es_replay(a.account)}), '0',
	'es_replay(account) equals the es_accounts row for every account');
is(sql(q{SELECT count(*) FROM es_accounts WHERE pending_in <> 0 OR pending_out <> 0 OR available <> balance}), '0',
	'nothing pending, available = balance');

# money
my $flow = sql(q{SELECT coalesce(sum(CASE kind WHEN 'deposit' THEN amount ELSE -amount END), 0)
                FROM bench_log WHERE sqlstate = 'ok' AND kind IN ('deposit', 'withdraw') AND cmd_id IS NULL});
is(sql('SELECT sum(balance) FROM es_accounts'), $initial + $flow,
	'money conserved: sum of balances = initial funding + deposits - withdrawals recorded by the clients');
is(sql(q{SELECT sum(amount) FILTER (WHERE type IN ('TransferSent', 'TransferReceived')) = 0
              AND sum(amount) = sum(amount) FILTER (WHERE type IN ('Deposited', 'Withdrawn'))
              AND sum(amount) = (SELECT sum(balance) FROM es_accounts)
         FROM es_events}), 't', 'money conserved in the log: transfers sum to 0');
is(sql(q{SELECT count(*) FROM (SELECT 1 FROM es_events WHERE type IN ('TransferSent', 'TransferReceived')
	 GROUP BY type) s}), '2', 'transfers were logged');
is(sql(q{SELECT count(*) FILTER (WHERE type = 'TransferSent') - count(*) FILTER (WHERE type = 'TransferReceived')
         FROM es_events}), '0', 'every TransferSent has its TransferReceived');

# limits: no limit changes in this test, so the opening limits hold at every event
is(sql(q{SELECT count(*) FROM (
		SELECT e.amount, sum(e.amount) OVER (PARTITION BY e.account_id ORDER BY e.version) bal,
		       a.overdraft_limit, a.max_balance
		  FROM es_events e JOIN es_accounts a USING (account_id)) s
	 WHERE (amount < 0 AND bal < -overdraft_limit) OR (amount > 0 AND bal > max_balance)}), '0',
	'no debit went below -overdraft_limit, no credit above max_balance, at any point');
is(sql(q{SELECT count(*) FROM es_accounts WHERE available < -overdraft_limit OR balance > max_balance}), '0',
	'final balances within limits');

# idempotency under races: one application per key, every success returns its seq
my $raced = sql(q{SELECT count(DISTINCT cmd_id) FROM bench_log WHERE cmd_id IS NOT NULL AND sqlstate = 'ok'});
cmp_ok($raced, '>', 50, "shared keys were applied ($raced)");
is(sql(q{SELECT count(*) FROM (SELECT command_id FROM es_events WHERE command_id IS NOT NULL
	 GROUP BY command_id HAVING count(*) <> 2) s}), '0', 'each shared key wrote exactly one transfer (two events)');
is(sql(q{SELECT count(*) FROM (SELECT cmd_id FROM bench_log WHERE cmd_id IS NOT NULL AND sqlstate = 'ok'
	 GROUP BY cmd_id HAVING count(DISTINCT seq) <> 1) s}), '0', 'every success with a shared key returned the same seq');
is(sql(q{SELECT count(*) FROM bench_log b WHERE cmd_id IS NOT NULL AND sqlstate = 'ok'
	 AND seq IS DISTINCT FROM (SELECT max(seq) FROM es_events e WHERE e.command_id = b.cmd_id)}), '0',
	'that seq is the last event of the command');
is(sql(q{SELECT count(*) FROM (SELECT DISTINCT cmd_id FROM bench_log WHERE cmd_id IS NOT NULL AND sqlstate = 'ok') b
	 WHERE NOT EXISTS (SELECT 1 FROM es_events e WHERE e.command_id = b.cmd_id)}), '0',
	'every applied key is in the log');
is(sql(q{SELECT count(*) FROM bench_log WHERE sqlstate = 'ok' AND cmd_id IS NULL}) * 1
	+ sql(q{SELECT count(DISTINCT cmd_id) FROM bench_log WHERE sqlstate = 'ok' AND cmd_id IS NOT NULL}),
	sql(q{SELECT count(*) FROM es_events WHERE type IN ('TransferSent', 'Deposited', 'Withdrawn')})
	- (1 + $nacc),
	'the log holds one command per success (retries wrote nothing)');

# the server
my $log = slurp_file($node->logfile);
unlike($log, qr/deadlock detected/, 'no deadlock in the server log');
unlike($log, qr/PANIC|TRAP:|terminated by signal|server process .* exited/, 'no crash in the server log');

$node->stop;
done_testing();
