# test/t/008_standby.pl
#
# The ledger on a streaming hot standby:
#
#  - a primary with a ledger, a base backup, a standby streaming from it;
#    a workload on the primary after the backup (opens, deposits,
#    transfers, withdrawals, batches, ids, a freeze and a close; a
#    concurrent pgbench run), then catch-up;
#  - on the standby: es_events and es_accounts equal the primary's, es_replay
#    of every account equals the primary's, es_verify() is all ok with the
#    same rows (check_name, ok, checked) as on the primary, per account too;
#    a digest taken on the primary verifies on the standby (and a wrong one
#    does not); es_history, es_balance_at and es_accounts_at give the
#    primary's rows, and es_accounts_at(NULL) equals es_accounts;
#  - es_digest on the standby fails with 55000 (it runs on the primary
#    only), es_apply and the shorthands fail with 25006 (read-only).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;
use IPC::Run;

my $primary = es_node('primary', init => { allows_streaming => 1 });

sub pr { return $primary->safe_psql('postgres', shift); }

pr(q{
	CREATE EXTENSION es_ledger;
	SELECT es_open_account('acct-' || i, CASE WHEN i % 3 = 0 THEN 'EUR' ELSE 'USD' END, 1000, NULL)
	  FROM generate_series(1, 9) i;
	SELECT es_deposit('acct-' || i, 50000) FROM generate_series(1, 9) i;
});

$primary->backup('bk');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bk', has_streaming => 1);
$standby->start;

sub sb { return $standby->safe_psql('postgres', shift); }

# --------------------------------------------------- workload on the primary
pr(q{
	SELECT es_open_account('late-' || i, 'USD', 0, 100000, 'open-late-' || i) FROM generate_series(1, 3) i;
	DO $$
	BEGIN
		FOR i IN 1 .. 300 LOOP
			-- USD accounts: 1, 2, 4, 5, 7, 8; EUR: 3, 6, 9
			PERFORM es_transfer('acct-' || (ARRAY[1, 2, 4, 5, 7, 8])[i % 6 + 1],
			                    'acct-' || (ARRAY[1, 2, 4, 5, 7, 8])[(i + 2) % 6 + 1], i % 90 + 1, 't-' || i);
			PERFORM es_transfer('acct-' || (i % 3 + 1) * 3, 'acct-' || ((i + 1) % 3 + 1) * 3, i % 40 + 1);
			IF i % 7 = 0 THEN
				PERFORM es_deposit('late-' || (i % 3 + 1), 100 + i, 'd-' || i);
				PERFORM es_withdraw('acct-' || (ARRAY[1, 2, 4, 5, 7, 8])[i % 6 + 1], 5);
			END IF;
		END LOOP;
	END $$;
	SELECT es_apply('[{"type": "transfer", "from": "late-1", "to": "acct-1", "amount": 50},
	                  {"type": "set_limits", "account": "late-2", "max_balance": null},
	                  {"type": "freeze_account", "account": "late-3"}]');
	SELECT es_open_account('empty', 'EUR');
	SELECT es_apply('{"type": "close_account", "account": "empty", "metadata": {"why": "test"}}');
});

# and concurrent writers
my $script = $primary->basedir . '/steps.sql';
append_to_file($script, q{
\set a random(1, 8)
\set b random(1, 8)
\set amt random(1, 500)
SELECT es_transfer('acct-' || (ARRAY[1, 2, 4, 5, 7, 8])[(:a - 1) % 6 + 1],
                   'acct-' || (ARRAY[1, 2, 4, 5, 7, 8])[(:a + :b % 5) % 6 + 1], :amt);
});
my ($out, $err) = ('', '');
IPC::Run::run([ 'pgbench', '--no-vacuum', '-h', $primary->host, '-p', $primary->port,
		'-f', $script, '--client=4', '--jobs=2', '--transactions=150', 'postgres' ],
	'>', \$out, '2>', \$err)
  or die "pgbench failed: $err";

my ($dseq, $digest) = split /\|/, pr('SELECT seq, digest FROM es_digest()');
# snapshots of every account, then a few more events after the digest (so
# replay on the standby starts from a snapshot and folds what follows)
pr(q{SELECT count(es_snapshot(account)) FROM es_accounts});
pr(q{SELECT es_deposit('acct-1', 1), es_deposit('acct-3', 1)});

$primary->wait_for_catchup($standby);

# ---------------------------------------------------------- on the standby
is(sb('SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
cmp_ok(sb('SELECT count(*) FROM es_events'), '>', 1000, 'the standby holds the workload\'s events');

my $events_sql = q{SELECT count(*) || ' ' || md5(string_agg(e::text, E'\n' ORDER BY seq)) FROM es_events e};
my $accounts_sql = q{SELECT md5(string_agg(a::text, E'\n' ORDER BY account_id)) FROM es_accounts a};
is(sb($events_sql), pr($events_sql), 'es_events on the standby equals the primary\'s');
is(sb($accounts_sql), pr($accounts_sql), 'es_accounts on the standby equals the primary\'s');

my $replay_sql = q{SELECT string_agg(row(r.*)::text, E'\n' ORDER BY a.account_id)
	FROM es_accounts a, LATERAL es_replay(a.account) r};
my $replay_standby = sb($replay_sql);
is($replay_standby, pr($replay_sql), 'es_replay of every account on the standby equals the primary\'s');
my $snaps_sql = q{SELECT count(*) || ' ' || md5(string_agg(s::text, E'\n' ORDER BY account_id, version)) FROM es_snapshots s};
cmp_ok(sb('SELECT count(*) FROM es_snapshots'), '>', 10, 'the standby holds snapshots');
is(sb($snaps_sql), pr($snaps_sql), 'es_snapshots on the standby equals the primary\'s (replay reads them there)');
is(sb(q{SELECT count(*) FROM es_accounts a WHERE row(a.*) IS DISTINCT FROM es_replay(a.account)}), '0',
	'on the standby es_replay of every account equals its es_accounts row');

my $verify_sql = q{SELECT string_agg(check_name || ' ' || ok || ' ' || checked, E'\n' ORDER BY check_name) FROM es_verify()};
my $verify_standby = sb($verify_sql);
note("es_verify() on the standby:\n$verify_standby");
is(sb(q{SELECT bool_and(ok) AND count(*) = 8 AND bool_and(first_bad_seq IS NULL) FROM es_verify()}), 't',
	'es_verify() on the standby is all ok');
is($verify_standby, pr($verify_sql), 'es_verify() on the standby gives the primary\'s rows (check_name, ok, checked)');
my $verify_each_sql = q{SELECT string_agg(a.account || ' ' || v.check_name || ' ' || v.ok || ' ' || v.checked, E'\n'
	ORDER BY a.account_id, v.check_name) FROM es_accounts a, LATERAL es_verify(a.account) v};
my $each_standby = sb($verify_each_sql);
unlike($each_standby, qr/ false /, 'es_verify(account) on the standby is all ok for every account');
is($each_standby, pr($verify_each_sql), '... and equals the primary\'s');

is(sb(qq{SELECT es_verify_digest($dseq, '$digest')}), 't',
	"a digest taken on the primary at seq $dseq verifies on the standby");
my $bad = substr($digest, 0, -2) . (substr($digest, -2) eq '00' ? '01' : '00');
is(sb(qq{SELECT es_verify_digest($dseq, '$bad')}), 'f', '... and a digest with one byte changed does not');

# time travel on the standby, now and at a time in the middle of the workload
my $mid = pr(q{SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY recorded_at) FROM es_events});
is(sb(q{SELECT count(*) FROM ((SELECT * FROM es_accounts_at(NULL) EXCEPT SELECT * FROM es_accounts)
	UNION ALL (SELECT * FROM es_accounts EXCEPT SELECT * FROM es_accounts_at(NULL))) x}), '0',
	'es_accounts_at(NULL) on the standby equals es_accounts');
my $at_sql = qq{SELECT count(*) || ' ' || md5(string_agg(a::text, E'\\n' ORDER BY account_id))
	FROM es_accounts_at('$mid') a};
is(sb($at_sql), pr($at_sql), 'es_accounts_at(a past time) on the standby equals the primary\'s');
my $balance_at_sql = qq{SELECT string_agg(account || '=' || coalesce(es_balance_at(account, '$mid')::text, 'null'),
	',' ORDER BY account_id) FROM es_accounts};
is(sb($balance_at_sql), pr($balance_at_sql), 'es_balance_at on the standby equals the primary\'s');
my $history_sql = q{SELECT count(*) || ' ' || md5(string_agg(h::text, E'\n' ORDER BY a.account_id, h.version))
	FROM es_accounts a, LATERAL es_history(a.account) h};
is(sb($history_sql), pr($history_sql), 'es_history of every account on the standby equals the primary\'s');

my ($ret, $sout, $serr);
($ret, $sout, $serr) = $standby->psql('postgres', 'SELECT * FROM es_digest()',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($ret, 0, 'es_digest fails on the standby');
like($serr, qr/ERROR:  55000: es_digest cannot run during recovery/, '... with 55000');

for my $cmd (q{SELECT es_apply('{"type": "deposit", "account": "acct-1", "amount": 5}')},
	q{SELECT es_deposit('acct-1', 5)},
	q{SELECT es_transfer('acct-1', 'acct-2', 5, 'on-standby')},
	q{SELECT es_open_account('new-on-standby', 'USD')})
{
	($ret, $sout, $serr) = $standby->psql('postgres', $cmd, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	isnt($ret, 0, "on the standby: $cmd fails");
	like($serr, qr/ERROR:  25006:/, '... with 25006 (read-only)');
}
is(sb($events_sql), pr($events_sql), 'nothing was written by the attempts on the standby');

# the primary goes on and the standby follows
pr(q{SELECT es_transfer('acct-2', 'acct-1', 7, 'after')});
$primary->wait_for_catchup($standby);
is(sb(q{SELECT count(*) FROM es_events WHERE command_id = 'after'}), '2', 'a later transfer reaches the standby');
is(sb(q{SELECT bool_and(ok) FROM es_verify()}), 't', 'es_verify() on the standby is still all ok');
is(sb(qq{SELECT es_verify_digest($dseq, '$digest')}), 't', 'the digest still verifies on the standby');

$standby->stop;
$primary->stop;
done_testing();
