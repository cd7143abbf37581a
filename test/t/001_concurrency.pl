# test/t/001_concurrency.pl
#
# Concurrent commands under pgbench (8 clients, 2 threads), a hot account
# and 20 others.  Every error is caught in SQL and recorded in bench_log
# (pgbench 15 would abort the client on an error), then the ledger is
# checked: only the expected SQLSTATEs, balances = sum of events = replay,
# versions gap-free, seq follows version, money conserved, limits never
# passed, idempotency held, no deadlock or crash in the server log.
#
#  phase 1 (15 s): transfers mostly to and from the hot account (both
#    directions, so lock ordering matters), deposits/withdrawals on it, and
#    300 idempotency keys all clients race on (same command per key).
#  phase 2 (10 s): the same while accounts are frozen, unfrozen and get new
#    limits; no money may move on a frozen account.
#  phase 3 (10 s): atomic batches of transfers in random account order,
#    concurrent opens of the same names (ES004), different commands racing
#    on one id (ES008).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;

my $node = es_node('concurrency', conf => qq{
max_connections = 40
deadlock_timeout = 100ms
log_lock_waits = on
});

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
is(sql(q{SELECT count(*) FROM bench_log b
	 LEFT JOIN (SELECT command_id, max(seq) m FROM es_events WHERE command_id IS NOT NULL GROUP BY 1) e
	   ON e.command_id = b.cmd_id
	 WHERE b.cmd_id IS NOT NULL AND b.sqlstate = 'ok' AND b.seq IS DISTINCT FROM e.m}), '0',
	'that seq is the last event of the command');
is(sql(q{SELECT count(*) FROM (SELECT DISTINCT cmd_id FROM bench_log WHERE cmd_id IS NOT NULL AND sqlstate = 'ok') b
	 WHERE NOT EXISTS (SELECT 1 FROM es_events e WHERE e.command_id = b.cmd_id)}), '0',
	'every applied key is in the log');
is(sql(q{SELECT count(*) FROM bench_log WHERE sqlstate = 'ok' AND cmd_id IS NULL}) * 1
	+ sql(q{SELECT count(DISTINCT cmd_id) FROM bench_log WHERE sqlstate = 'ok' AND cmd_id IS NOT NULL}),
	sql(q{SELECT count(*) FROM es_events WHERE type IN ('TransferSent', 'Deposited', 'Withdrawn')})
	- (1 + $nacc),
	'the log holds one command per success (retries wrote nothing)');

# ------------------------------------------------------------------ phase 2
# The same, while accounts are frozen, unfrozen and get new limits
# concurrently: ES005 is now expected too; no money may move on a frozen
# account; the limits in force at each event hold.
sql(qq{
CREATE FUNCTION bench_step2(a int, b int, amt bigint, mode int) RETURNS void
LANGUAGE plpgsql AS \$\$
DECLARE
	k text; s text; d text; r bigint; st text := 'ok'; msg text; c jsonb;
BEGIN
	IF b = a THEN b := a % $nacc + 1; END IF;
	IF mode <= 3 THEN k := 'transfer'; s := 'hot'; d := 'acct-' || a;
	ELSIF mode <= 6 THEN k := 'transfer'; s := 'acct-' || a; d := 'hot';
	ELSIF mode = 7 THEN k := 'transfer'; s := 'acct-' || a; d := 'acct-' || b;
	ELSIF mode = 8 THEN k := 'freeze'; c := jsonb_build_object('type', 'freeze_account', 'account', 'acct-' || a);
	ELSIF mode = 9 THEN k := 'unfreeze'; c := jsonb_build_object('type', 'unfreeze_account', 'account', 'acct-' || a);
	ELSE
		k := 'set_limits';
		c := jsonb_build_object('type', 'set_limits', 'account', CASE WHEN amt % 4 = 0 THEN 'hot' ELSE 'acct-' || a END);
		IF amt % 3 <> 0 THEN c := c || jsonb_build_object('overdraft_limit', (amt * 7) % 20000); END IF;
		IF amt % 3 <> 1 THEN
			c := c || jsonb_build_object('max_balance',
				CASE WHEN amt % 5 = 0 THEN NULL WHEN amt % 4 = 0 THEN 300000 + amt * 20 ELSE 40000 + amt * 16 END);
		END IF;
	END IF;
	BEGIN
		IF k = 'transfer' THEN r := es_transfer(s, d, amt);
		ELSE r := es_apply(c);
		END IF;
	EXCEPTION WHEN OTHERS THEN
		st := SQLSTATE; msg := SQLERRM;
	END;
	INSERT INTO bench_log (kind, src, dst, amount, cmd_id, sqlstate, message, seq)
	VALUES ('p2-' || k, s, coalesce(d, c::text), amt, NULL, st, msg, r);
END \$\$;

-- fold an account's events with the limits in force at each one
CREATE FUNCTION limit_violations() RETURNS SETOF text LANGUAGE plpgsql AS \$\$
DECLARE
	a record; e record; bal numeric; od numeric; mx numeric;
BEGIN
	FOR a IN SELECT account_id, account FROM es_accounts LOOP
		bal := 0; od := 0; mx := NULL;
		FOR e IN SELECT * FROM es_events WHERE account_id = a.account_id ORDER BY version LOOP
			IF e.type = 'AccountOpened' THEN
				od := coalesce((e.data->>'overdraft_limit')::numeric, 0);
				mx := (e.data->>'max_balance')::numeric;
			ELSIF e.type = 'LimitsChanged' THEN
				IF e.data ? 'overdraft_limit' THEN od := (e.data->>'overdraft_limit')::numeric; END IF;
				IF e.data ? 'max_balance' THEN mx := (e.data->>'max_balance')::numeric; END IF;
			END IF;
			bal := bal + e.amount;
			IF e.amount < 0 AND bal < -od THEN
				RETURN NEXT format('%s seq %s: balance %s below -%s', a.account, e.seq, bal, od);
			END IF;
			IF e.amount > 0 AND bal > mx THEN
				RETURN NEXT format('%s seq %s: balance %s above %s', a.account, e.seq, bal, mx);
			END IF;
		END LOOP;
	END LOOP;
END \$\$;
});

my $n_before2 = sql('SELECT max(n) FROM bench_log');
$node->pgbench(
	'--no-vacuum --client=8 --jobs=2 --time=10',
	0,
	[qr{processed: [1-9]}],
	[qr{^(?!.*aborted)}s],
	'pgbench phase 2: transfers while accounts are frozen, unfrozen and get new limits',
	{
		'es_phase2' => qq{
\\set a random(1, $nacc)
\\set b random(1, $nacc)
\\set amt random(1, 5000)
\\set mode random(1, 10)
SELECT bench_step2(:a, :b, :amt, :mode);
}
	});

note('phase 2 outcomes: ' . sql(qq{SELECT string_agg(kind || ' ' || sqlstate || '=' || c, ', ' ORDER BY kind, sqlstate)
                        FROM (SELECT kind, sqlstate, count(*) c FROM bench_log WHERE n > $n_before2 GROUP BY 1, 2) s}));
is(sql(qq{SELECT string_agg(DISTINCT sqlstate || ': ' || message, E'\\n')
            FROM bench_log WHERE n > $n_before2 AND sqlstate NOT IN ('ok', 'ES001', 'ES002', 'ES005')}), '',
	'phase 2: no SQLSTATE other than ES001 / ES002 / ES005');
cmp_ok(sql(qq{SELECT count(*) FROM bench_log WHERE n > $n_before2 AND sqlstate = 'ok' AND kind = 'p2-transfer'}), '>', 500,
	'phase 2: many transfers succeeded');
is(sql(qq{SELECT count(DISTINCT kind) FROM bench_log WHERE n > $n_before2 AND sqlstate = 'ok'}), '4',
	'phase 2: transfers, freezes, unfreezes and limit changes succeeded');
cmp_ok(sql(qq{SELECT count(*) FROM bench_log WHERE n > $n_before2 AND sqlstate = 'ES005' AND kind = 'p2-transfer'}), '>', 0,
	'phase 2: transfers met frozen accounts (ES005)');
is(sql(q{SELECT count(*) FROM es_accounts a LEFT JOIN (
		SELECT account_id, sum(amount) s, count(*) c, max(version) v, max(seq) m FROM es_events GROUP BY account_id) e
		USING (account_id)
	 WHERE a.balance IS DISTINCT FROM e.s::bigint OR a.version IS DISTINCT FROM e.c
	    OR a.version IS DISTINCT FROM e.v OR a.last_seq IS DISTINCT FROM e.m}), '0',
	'phase 2: balance = sum(amount), version = count = max(version), last_seq = max(seq)');
is(sql(q{SELECT count(*) FROM (SELECT account_id FROM es_events GROUP BY account_id
		HAVING min(version) <> 1 OR max(version) <> count(*) OR count(DISTINCT version) <> count(*)) s}), '0',
	'phase 2: versions are 1..n without gaps');
is(sql(q{SELECT count(*) FROM (SELECT seq, lag(seq) OVER (PARTITION BY account_id ORDER BY version) p FROM es_events) s
	 WHERE seq <= p}), '0', 'phase 2: within an account, seq increases with version');
is(sql(q{SELECT count(*) FROM es_accounts a WHERE row(a.*) IS DISTINCT FROM es_replay(a.account)}), '0',
	'phase 2: es_replay(account) equals es_accounts for every account');
is(sql('SELECT sum(balance) FROM es_accounts'),
	$initial + sql(q{SELECT coalesce(sum(CASE kind WHEN 'deposit' THEN amount ELSE -amount END), 0)
	                 FROM bench_log WHERE sqlstate = 'ok' AND kind IN ('deposit', 'withdraw') AND cmd_id IS NULL}),
	'phase 2: money conserved');
my $viol = sql(q{SELECT string_agg(v, E'\n') FROM (SELECT v FROM limit_violations() v LIMIT 10) s});
is($viol, '', 'phase 2: no debit below the overdraft limit, no credit above max_balance in force at the time');
is(sql(q{SELECT count(*) FROM (
		SELECT type, amount, sum(CASE type WHEN 'AccountFrozen' THEN 1 WHEN 'AccountUnfrozen' THEN -1 ELSE 0 END)
		         OVER (PARTITION BY account_id ORDER BY version) frozen
		  FROM es_events) s
	 WHERE frozen NOT IN (0, 1) OR (frozen = 1 AND amount <> 0)}), '0',
	'phase 2: no money moved on a frozen account; freezes and unfreezes alternate');
is(sql(q{SELECT count(*) FROM es_accounts a JOIN (
		SELECT account_id, sum(CASE type WHEN 'AccountFrozen' THEN 1 WHEN 'AccountUnfrozen' THEN -1 ELSE 0 END) f
		  FROM es_events GROUP BY account_id) e USING (account_id)
	 WHERE (a.status = 'frozen') <> (e.f = 1)}), '0',
	'phase 2: es_accounts.status agrees with the log');

# ------------------------------------------------------------------ phase 3
# Atomic batches of transfers in random account order, concurrent opens of
# the same names, and different commands racing on the same id: ES004 and
# ES008 are now expected too, never a deadlock or a unique violation.
sql(q{SELECT es_apply(jsonb_build_object('type', 'unfreeze_account', 'account', account))
        FROM es_accounts WHERE status = 'frozen'});
sql(qq{
CREATE FUNCTION bench_step3(a int, b int, amt bigint, mode int, k int) RETURNS void
LANGUAGE plpgsql AS \$\$
DECLARE
	kind text; c jsonb; r bigint; st text := 'ok'; msg text; id text; x int; y int;
BEGIN
	IF mode <= 4 THEN
		-- a batch of 2..4 transfers between random accounts (the hot one is 0)
		kind := 'p3-batch';
		id := 'bt-' || txid_current() || '-';
		c := '[]';
		FOR i IN 1 .. 2 + (k % 3) LOOP
			x := (a * 7 + i * 13 + k) % ($nacc + 1);
			y := (b * 11 + i * 5 + k * 3) % ($nacc + 1);
			IF x = y THEN y := (y + 1) % ($nacc + 1); END IF;
			c := c || jsonb_build_array(jsonb_build_object('type', 'transfer',
				'from', CASE WHEN x = 0 THEN 'hot' ELSE 'acct-' || x END,
				'to', CASE WHEN y = 0 THEN 'hot' ELSE 'acct-' || y END,
				'amount', 1 + (amt * i) % 3000, 'id', id || i));
		END LOOP;
	ELSIF mode <= 6 THEN
		kind := 'p3-open';
		c := jsonb_build_object('type', 'open_account', 'account', 'new-' || k, 'currency', 'USD');
	ELSIF mode <= 8 THEN
		-- different commands under one of 100 ids
		kind := 'p3-dup';
		id := 'dup-' || (k % 100);
		c := jsonb_build_object('type', 'transfer', 'from', 'acct-' || a, 'to', 'hot', 'amount', amt, 'id', id);
	ELSE
		kind := 'p3-transfer';
		c := jsonb_build_object('type', 'transfer', 'from', CASE WHEN mode = 9 THEN 'hot' ELSE 'acct-' || a END,
		                        'to', CASE WHEN mode = 9 THEN 'acct-' || a ELSE 'hot' END, 'amount', amt);
	END IF;
	BEGIN
		r := es_apply(c);
	EXCEPTION WHEN OTHERS THEN
		st := SQLSTATE; msg := SQLERRM;
	END;
	INSERT INTO bench_log (kind, src, dst, amount, cmd_id, sqlstate, message, seq)
	VALUES (kind, NULL, c::text, CASE WHEN kind = 'p3-batch' THEN jsonb_array_length(c) ELSE amt END, id, st, msg, r);
END \$\$;
});

my $n_before3 = sql('SELECT max(n) FROM bench_log');
$node->pgbench(
	'--no-vacuum --client=8 --jobs=2 --time=10',
	0,
	[qr{processed: [1-9]}],
	[qr{^(?!.*aborted)}s],
	'pgbench phase 3: batches, racing opens, racing ids',
	{
		'es_phase3' => qq{
\\set a random(1, $nacc)
\\set b random(1, $nacc)
\\set amt random(1, 3000)
\\set mode random(1, 10)
\\set k random(1, 400)
SELECT bench_step3(:a, :b, :amt, :mode, :k);
}
	});

note('phase 3 outcomes: ' . sql(qq{SELECT string_agg(kind || ' ' || sqlstate || '=' || c, ', ' ORDER BY kind, sqlstate)
                        FROM (SELECT kind, sqlstate, count(*) c FROM bench_log WHERE n > $n_before3 GROUP BY 1, 2) s}));
is(sql(qq{SELECT string_agg(DISTINCT sqlstate || ': ' || message, E'\\n')
            FROM bench_log WHERE n > $n_before3 AND sqlstate NOT IN ('ok', 'ES001', 'ES002', 'ES004', 'ES008')}), '',
	'phase 3: no SQLSTATE other than ES001 / ES002 / ES004 / ES008 (no deadlock, no unique violation)');
cmp_ok(sql(qq{SELECT count(*) FROM bench_log WHERE n > $n_before3 AND sqlstate = 'ok' AND kind = 'p3-batch'}), '>', 200,
	'phase 3: many batches succeeded');
is(sql(qq{SELECT count(*) FROM bench_log b
	 LEFT JOIN (SELECT regexp_replace(command_id, '[0-9]+\$', '') prefix, count(*) c
	              FROM es_events WHERE command_id LIKE 'bt-%' GROUP BY 1) e ON e.prefix = b.cmd_id
	 WHERE n > $n_before3 AND kind = 'p3-batch'
	   AND coalesce(e.c, 0) <> CASE WHEN sqlstate = 'ok' THEN 2 * amount ELSE 0 END}), '0',
	'phase 3: every batch wrote all of its transfers or none');
is(sql(q{SELECT count(*) FROM es_accounts WHERE account LIKE 'new-%'}),
	sql(qq{SELECT count(*) FROM bench_log WHERE n > $n_before3 AND kind = 'p3-open' AND sqlstate = 'ok'}),
	'phase 3: one successful open per new account');
is(sql(q{SELECT count(*) - count(DISTINCT data->>'account') FROM es_events WHERE type = 'AccountOpened'}), '0',
	'phase 3: no account was opened twice');
cmp_ok(sql(qq{SELECT count(*) FROM bench_log WHERE n > $n_before3 AND kind = 'p3-open' AND sqlstate = 'ES004'}), '>', 0,
	'phase 3: racing opens were refused with ES004');
is(sql(q{SELECT count(*) FROM (SELECT command_id FROM es_events WHERE command_id LIKE 'dup-%'
	 GROUP BY command_id HAVING count(*) <> 2) s}), '0', 'phase 3: each racing id wrote exactly one transfer');
is(sql(qq{SELECT count(*) FROM (SELECT cmd_id FROM bench_log WHERE n > $n_before3 AND kind = 'p3-dup' AND sqlstate = 'ok'
	 GROUP BY cmd_id HAVING count(DISTINCT seq) <> 1) s}), '0', 'phase 3: successes under one id returned one seq');
cmp_ok(sql(qq{SELECT count(*) FROM bench_log WHERE n > $n_before3 AND kind = 'p3-dup' AND sqlstate = 'ES008'}), '>', 0,
	'phase 3: different commands under a used id were refused with ES008');
is(sql(q{SELECT count(*) FROM es_accounts a LEFT JOIN (
		SELECT account_id, sum(amount) s, count(*) c, max(version) v, max(seq) m FROM es_events GROUP BY account_id) e
		USING (account_id)
	 WHERE a.balance IS DISTINCT FROM e.s::bigint OR a.version IS DISTINCT FROM e.c
	    OR a.version IS DISTINCT FROM e.v OR a.last_seq IS DISTINCT FROM e.m}), '0',
	'phase 3: balance = sum(amount), version = count = max(version), last_seq = max(seq)');
is(sql(q{SELECT count(*) FROM (SELECT account_id FROM es_events GROUP BY account_id
		HAVING min(version) <> 1 OR max(version) <> count(*) OR count(DISTINCT version) <> count(*)) s}), '0',
	'phase 3: versions are 1..n without gaps');
is(sql(q{SELECT count(*) FROM (SELECT seq, lag(seq) OVER (PARTITION BY account_id ORDER BY version) p FROM es_events) s
	 WHERE seq <= p}), '0', 'phase 3: within an account, seq increases with version');
is(sql(q{SELECT count(*) FROM es_accounts a WHERE row(a.*) IS DISTINCT FROM es_replay(a.account)}), '0',
	'phase 3: es_replay(account) equals es_accounts for every account');
is(sql('SELECT sum(balance) FROM es_accounts'),
	$initial + sql(q{SELECT coalesce(sum(CASE kind WHEN 'deposit' THEN amount ELSE -amount END), 0)
	                 FROM bench_log WHERE sqlstate = 'ok' AND kind IN ('deposit', 'withdraw') AND cmd_id IS NULL}),
	'phase 3: money conserved');
is(sql(q{SELECT string_agg(v, E'\n') FROM (SELECT v FROM limit_violations() v LIMIT 10) s}), '',
	'phase 3: no debit below the overdraft limit, no credit above max_balance in force at the time');

# the server
my $log = slurp_file($node->logfile);
unlike($log, qr/deadlock detected/, 'no deadlock in the server log');
unlike($log, qr/PANIC|TRAP:|terminated by signal|server process .* exited/, 'no crash in the server log');

$node->stop;
done_testing();
