# test/t/002_restart.pl
#
# Crash recovery of the es_log table and the projections.
#
#  1. commands in many small transactions, a CHECKPOINT, more commands (so
#     recovery replays WAL on top of flushed pages), one big transaction,
#     and one transaction still open when the server crashes;
#     stop('immediate'), start: everything committed is there, byte for
#     byte, the open transaction left nothing, indexes agree with the heap,
#     the invariants hold and the ledger goes on (seq, versions, ids).
#  2. a crash in the middle of a pgbench run: every command a client saw
#     committed is in the log, nothing else is, and the invariants hold.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;
use IPC::Run;

my $nacc = 12;

my $node = es_node('restart', conf => qq{
max_connections = 40
checkpoint_timeout = '1h'
max_wal_size = '1GB'
});

sub sql { return $node->safe_psql('postgres', shift); }

sql(qq{
CREATE EXTENSION es_ledger;
SELECT es_open_account('hot', 'USD', 100000, 100000000);
SELECT es_deposit('hot', 1000000);
SELECT es_open_account('acct-' || i, CASE WHEN i % 4 = 0 THEN 'EUR' ELSE 'USD' END,
		CASE WHEN i % 3 = 0 THEN 5000 ELSE 0 END, CASE WHEN i % 5 = 0 THEN 80000 END)
  FROM generate_series(1, $nacc) i;
SELECT es_deposit('acct-' || i, 40000) FROM generate_series(1, $nacc) i;
SELECT es_open_account('eur-hot', 'EUR', 0, NULL);
SELECT es_deposit('eur-hot', 500000);

CREATE TABLE bench_log (
	n        bigserial PRIMARY KEY,
	kind     text NOT NULL,
	src      text,
	dst      text,
	amount   bigint NOT NULL,
	cmd_id   text,
	sqlstate text NOT NULL,
	message  text,
	seq      bigint
);

-- a random command; never raises; logs its outcome in the same transaction
CREATE FUNCTION bench_step(a int, amt bigint, mode int, tag text) RETURNS void
LANGUAGE plpgsql AS \$\$
DECLARE
	k text; s text; d text; r bigint; st text := 'ok'; msg text;
	hot text := CASE WHEN a % 4 = 0 THEN 'eur-hot' ELSE 'hot' END;
	id text := CASE WHEN mode > 8 THEN tag || '-' || txid_current() END;
BEGIN
	IF mode <= 4 THEN k := 'transfer'; s := hot; d := 'acct-' || a;
	ELSIF mode <= 8 THEN k := 'transfer'; s := 'acct-' || a; d := hot;
	ELSIF mode = 9 THEN k := 'deposit'; d := 'acct-' || a;
	ELSE k := 'withdraw'; s := 'acct-' || a;
	END IF;
	BEGIN
		IF k = 'transfer' THEN r := es_transfer(s, d, amt, id);
		ELSIF k = 'deposit' THEN r := es_deposit(d, amt, id);
		ELSE r := es_withdraw(s, amt, id);
		END IF;
	EXCEPTION WHEN OTHERS THEN
		st := SQLSTATE; msg := SQLERRM;
	END;
	INSERT INTO bench_log (kind, src, dst, amount, cmd_id, sqlstate, message, seq)
	VALUES (k, s, d, amt, id, st, msg, r);
END \$\$;
});

my $script = $node->basedir . '/steps.sql';
append_to_file($script, qq{
\\set a random(1, $nacc)
\\set amt random(1, 3000)
\\set mode random(1, 10)
SELECT bench_step(:a, :amt, :mode, 'b');
});

sub pgbench_cmd
{
	return ('pgbench', '--no-vacuum', '-h', $node->host, '-p', $node->port, '-f', $script, @_, 'postgres');
}

# The invariants, as a list of [name, query returning 0 when fine].
my @invariants = (
	[ 'balance = sum(amount), version = count = max(version), last_seq = max(seq)',
	  q{SELECT count(*) FROM es_accounts a LEFT JOIN (
		SELECT account_id, sum(amount) s, count(*) c, max(version) v, max(seq) m FROM es_events GROUP BY account_id) e
		USING (account_id)
	 WHERE a.balance IS DISTINCT FROM e.s::bigint OR a.version IS DISTINCT FROM e.c
	    OR a.version IS DISTINCT FROM e.v OR a.last_seq IS DISTINCT FROM e.m} ],
	[ 'versions 1..n without gaps',
	  q{SELECT count(*) FROM (SELECT account_id FROM es_events GROUP BY account_id
		HAVING min(version) <> 1 OR max(version) <> count(*) OR count(DISTINCT version) <> count(*)) s} ],
	[ 'seq unique', q{SELECT count(*) - count(DISTINCT seq) FROM es_events} ],
	[ 'seq increases with version within an account',
	  q{SELECT count(*) FROM (SELECT seq, lag(seq) OVER (PARTITION BY account_id ORDER BY version) p FROM es_events) s
	 WHERE seq <= p} ],
	[ 'es_replay = es_accounts',
	  q{SELECT count(*) FROM es_accounts a WHERE row(a.*) IS DISTINCT FROM es_replay(a.account)} ],
	[ 'money conserved per currency',
	  q{SELECT count(*) FROM (
		SELECT a.currency, sum(e.amount) FILTER (WHERE e.type IN ('TransferSent', 'TransferReceived')) t,
		       sum(e.amount) FILTER (WHERE e.type IN ('Deposited', 'Withdrawn')) dw, sum(e.amount) total
		  FROM es_events e JOIN es_accounts a USING (account_id) GROUP BY a.currency) s
	 WHERE coalesce(t, 0) <> 0 OR total <> dw
	    OR total <> (SELECT sum(balance) FROM es_accounts x WHERE x.currency = s.currency)} ],
	[ 'limits never passed',
	  q{SELECT count(*) FROM (
		SELECT e.amount, sum(e.amount) OVER (PARTITION BY e.account_id ORDER BY e.version) bal,
		       a.overdraft_limit, a.max_balance
		  FROM es_events e JOIN es_accounts a USING (account_id)) s
	 WHERE (amount < 0 AND bal < -overdraft_limit) OR (amount > 0 AND bal > max_balance)} ],
	[ 'every command the clients saw committed is in the log with its seq',
	  q{SELECT count(*) FROM bench_log b WHERE sqlstate = 'ok'
	 AND NOT EXISTS (SELECT 1 FROM es_events e WHERE e.seq = b.seq)} ],
	[ 'no SQLSTATE other than ES001/ES002 recorded',
	  q{SELECT count(*) FROM bench_log WHERE sqlstate NOT IN ('ok', 'ES001', 'ES002')} ],
);
# money moves (deposits, withdrawals, transfers) issued outside pgbench, so
# far: the funding of the accounts
my $extra = 2 + $nacc;

sub check_invariants
{
	my $when = shift;
	for my $inv (@invariants)
	{
		is(sql($inv->[1]), '0', "$when: $inv->[0]");
	}
	is(sql(q{SELECT (SELECT count(*) FROM es_events WHERE type IN ('TransferSent', 'Deposited', 'Withdrawn'))
	              - (SELECT count(*) FROM bench_log WHERE sqlstate = 'ok')}), $extra,
		"$when: the log holds one money movement per command seen committed, nothing else");
}

# Everything about the log and the projection, for byte-for-byte comparison.
my $fingerprint_sql = q{
	SELECT (SELECT count(*) FROM es_events) || ' ' || (SELECT max(seq) FROM es_events) || ' ' ||
	       (SELECT md5(string_agg(e::text, E'\n' ORDER BY seq)) FROM es_events e) || ' ' ||
	       (SELECT md5(string_agg(a::text, E'\n' ORDER BY account_id)) FROM es_accounts a)};

# Indexes and heap must agree after recovery.
sub check_indexes
{
	my $when = shift;
	my $q = q{SELECT count(*), sum(seq), sum(version), count(command_id) FROM es_events
	           WHERE seq > 0 AND account_id > 0 AND (command_id IS NULL OR command_id > '')};
	my $heap = $node->safe_psql('postgres', "SET enable_indexscan = off; SET enable_bitmapscan = off; $q");
	my $idx = $node->safe_psql('postgres', "SET enable_seqscan = off; SET enable_bitmapscan = off; $q");
	is($idx, $heap, "$when: index scans of es_events agree with a sequential scan");
	my $probe = sql(q{SELECT count(*) FROM es_events e
		WHERE NOT EXISTS (SELECT 1 FROM es_events x WHERE x.account_id = e.account_id AND x.version = e.version AND x.seq = e.seq)});
	is($probe, '0', "$when: every event is found through the (account_id, version) lookup");
	my $acc = $node->safe_psql('postgres', q{SET enable_seqscan = off; SELECT count(*) FROM es_accounts a
		WHERE NOT EXISTS (SELECT 1 FROM es_accounts b WHERE b.account = a.account AND b.account_id = a.account_id)});
	is($acc, '0', "$when: es_accounts indexes agree with its heap");
}

# ---------------------------------------------------------------- part 1
my ($o1, $e1, $o2, $e2);
IPC::Run::run([ pgbench_cmd('--client=4', '--jobs=2', '--transactions=300') ], '>', \$o1, '2>', \$e1)
  or die "pgbench failed: $e1";
sql(q{SELECT es_deposit('hot', 7, 'setup-1')});
$extra += 1;
sql('CHECKPOINT');
IPC::Run::run([ pgbench_cmd('--client=4', '--jobs=2', '--transactions=300') ], '>', \$o2, '2>', \$e2)
  or die "pgbench failed: $e2";

# one big committed transaction
sql(q{DO $$
BEGIN
	FOR i IN 1 .. 2000 LOOP
		-- acct-1..3: USD, no cap
		PERFORM es_transfer('hot', 'acct-' || (i % 3 + 1), i % 50 + 1);
		PERFORM es_deposit('acct-' || (i % 3 + 1), 3, 'big-' || i);
	END LOOP;
END $$});
my $hot_seq = sql(q{SELECT es_withdraw('hot', 11, 'setup-2')});
$extra += 4000 + 1;

# one transaction still open at the crash
my $open = $node->background_psql('postgres');
$open->query_safe('BEGIN');
$open->query_safe(q{SELECT es_deposit('acct-1', 500, 'open-1')});
$open->query_safe(q{SELECT es_transfer('hot', 'acct-2', 999, 'open-2')});
$open->query_safe(q{SELECT es_open_account('ghost', 'USD', 0, NULL, 'open-3')});
$open->query_safe(q{SELECT count(*) FROM generate_series(1, 300) i, LATERAL es_deposit('acct-3', 1) d});

my $before = sql($fingerprint_sql);
my $hot_before = sql(q{SELECT balance || '/' || version FROM es_accounts WHERE account = 'hot'});
ok(sql(q{SELECT count(*) FROM es_events}) > 6000, 'part 1: more than 6000 events before the crash');

$node->stop('immediate');
eval { $open->quit; };
$node->start;

is(sql($fingerprint_sql), $before, 'after the crash: es_events and es_accounts are exactly as committed');
is(sql(q{SELECT balance || '/' || version FROM es_accounts WHERE account = 'hot'}), $hot_before,
	'after the crash: the hot account is as committed');
is(sql(q{SELECT count(*) FROM es_events WHERE command_id LIKE 'open-%'}), '0',
	'after the crash: the transaction open at the crash left no event');
is(sql(q{SELECT count(*) FROM es_accounts WHERE account = 'ghost'}), '0',
	'after the crash: the account opened by it does not exist');
is(sql(q{SELECT count(*) FROM es_events WHERE command_id LIKE 'big-%'}), '2000',
	'after the crash: the big transaction is complete');
check_indexes('after the crash');
check_invariants('after the crash');

# the ledger goes on
my $max_seq = sql('SELECT max(seq) FROM es_events');
my $v = sql(q{SELECT version FROM es_accounts WHERE account = 'acct-1'});
my $s1 = sql(q{SELECT es_deposit('acct-1', 500, 'open-1')});
$extra += 1;
cmp_ok($s1, '>', $max_seq, 'a new command gets a seq above every seq from before the crash');
is(sql(q{SELECT version FROM es_accounts WHERE account = 'acct-1'}), $v + 1, 'and the next version');
is(sql(q{SELECT command_id FROM es_events WHERE seq = } . $s1), 'open-1',
	'the id used by the lost transaction could be used again');
is(sql(q{SELECT es_withdraw('hot', 11, 'setup-2')}), $hot_seq, 'a retry of a command from before the crash returns its seq');
is(sql(q{SELECT count(*) FROM es_events WHERE command_id = 'setup-2'}), '1', 'and writes nothing');
my ($rc, $out, $err) = $node->psql('postgres', q{SELECT es_open_account('hot', 'USD')});
like($err, qr/ES004|already exists/, 'the unique account names survived the crash (ES004)');
sql(q{SELECT es_open_account('ghost', 'USD', 0, NULL, 'after-1')});
sql(q{SELECT es_deposit('ghost', 5, 'after-2')});
$extra += 1;
is(sql(q{SELECT balance || '/' || version FROM es_accounts WHERE account = 'ghost'}), '5/2', 'a new account works');
check_invariants('after new commands');

# ---------------------------------------------------------------- part 2
my ($o3, $e3) = ('', '');
my $n0 = sql(q{SELECT max(n) FROM bench_log});
my $bench = IPC::Run::start([ pgbench_cmd('--client=8', '--jobs=2', '--time=60') ], '>', \$o3, '2>', \$e3);
# let it run until a good number of commands are in
$node->poll_query_until('postgres', qq{SELECT count(*) > 2000 FROM bench_log WHERE n > $n0}) or die 'pgbench does not run';
sleep 2;
my $seen = sql(q{SELECT count(*) FROM bench_log});
$node->stop('immediate');
$bench->finish;    # pgbench ends with errors: its server went away
note("pgbench before the crash: at least $seen steps");
$node->start;

cmp_ok(sql(q{SELECT count(*) FROM bench_log}), '>=', $seen, 'after the crash under load: the committed steps survived');
check_indexes('after the crash under load');
check_invariants('after the crash under load');

my $s2 = sql(q{SELECT es_transfer('hot', 'acct-1', 1)});
$extra += 1;
cmp_ok($s2, '>', sql(q{SELECT max(seq) FROM es_events WHERE seq <> } . $s2), 'a transfer after the second crash gets the highest seq');
check_invariants('at the end');

my $log = slurp_file($node->logfile);
unlike($log, qr/PANIC|TRAP:|terminated by signal 11|could not read block|invalid page/, 'no corruption or crash reported in the server log');

$node->stop;
done_testing();
