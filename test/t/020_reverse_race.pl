# test/t/020_reverse_race.pl
#
# Reversals under concurrency (security issue 14, Medium 1): 8 pgbench
# clients reverse the same 30 commands at once, each attempt with an id of
# its own, while writers send commands whose metadata names those commands
# ("reverses": a forged link).  Checked: every command is reversed exactly
# once (one winner, the losers get ES008 "already reversed"), no forged
# metadata blocked a reversal, the register holds one link per command and
# es_verify is all ok.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('reverse_race');
$node->init;
$node->append_conf('postgresql.conf', qq{
max_connections = 40
deadlock_timeout = 100ms
});
$node->start;

my $n = 30;

sub sql { return $node->safe_psql('postgres', shift); }

sql(qq{
CREATE EXTENSION es_ledger;
SELECT es_open_account('acc-' || i, 'USD') FROM generate_series(1, 3) i;
SELECT es_deposit('acc-' || (i % 3 + 1), 1000 + i, 'pay-' || i) FROM generate_series(1, $n) i;

CREATE TABLE race_log (
	n        bigserial PRIMARY KEY,
	i        int NOT NULL,
	op       int NOT NULL,      -- 1 reverse, 2 forged metadata
	sqlstate text NOT NULL,
	message  text
);

CREATE FUNCTION race_step(i int, op int, attempt int) RETURNS void
LANGUAGE plpgsql AS \$\$
DECLARE st text := 'ok'; msg text;
BEGIN
	BEGIN
		IF op = 1 THEN
			PERFORM es_reverse('pay-' || i, 'undo-' || i || '-' || attempt);
		ELSE
			PERFORM es_apply(jsonb_build_object('type', 'deposit',
				'account', 'acc-' || (i % 3 + 1), 'amount', 1,
				'metadata', jsonb_build_object('reverses', 'pay-' || i)));
		END IF;
	EXCEPTION WHEN OTHERS THEN
		st := SQLSTATE;
		msg := SQLERRM;
	END;
	INSERT INTO race_log (i, op, sqlstate, message) VALUES (i, op, st, msg);
END \$\$;
});

$node->pgbench(
	'--no-vacuum --client=8 --jobs=2 --transactions=60',
	0,
	[qr{processed: [1-9]}],
	[qr{^(?!.*aborted)}s],
	'pgbench: 8 clients reverse 30 commands at once beside forged links',
	{
		'es_reverse_race' => qq{
\\set i random(1, $n)
\\set op random(1, 3)
\\set attempt random(1, 1000000000)
SELECT race_step(:i, CASE WHEN :op = 1 THEN 2 ELSE 1 END, :attempt);
}
	});

note('outcomes: ' . sql(q{SELECT string_agg(op || ':' || sqlstate || '=' || c, ' ' ORDER BY op, sqlstate)
                        FROM (SELECT op, sqlstate, count(*) c FROM race_log GROUP BY 1, 2) s}));

is(sql(q{SELECT count(*) FROM race_log WHERE sqlstate NOT IN ('ok', 'ES008')}),
	'0', 'no outcome but success or ES008');
is(sql(q{SELECT count(*) FROM race_log WHERE op = 2 AND sqlstate <> 'ok'}),
	'0', 'forged metadata is accepted as metadata');
is(sql(q{SELECT count(*) FROM race_log WHERE sqlstate = 'ES008'
          AND message NOT LIKE 'command "pay-%" was already reversed by command "undo-%"'}),
	'0', 'every loser is told which reversal won');
is(sql(q{SELECT count(*) FROM (SELECT i FROM race_log WHERE op = 1 AND sqlstate = 'ok'
                                GROUP BY i HAVING count(*) > 1) s}),
	'0', 'no command reversed twice');
is(sql(q{SELECT count(DISTINCT i) FROM race_log WHERE op = 1}),
	sql(q{SELECT count(DISTINCT i) FROM race_log WHERE op = 1 AND sqlstate = 'ok'}),
	'every command someone tried to reverse was reversed (no forged link blocked one)');
is(sql(q{SELECT count(*) FROM es_commands WHERE command ? 'reverses'}),
	sql(q{SELECT count(*) FROM race_log WHERE op = 1 AND sqlstate = 'ok'}),
	'the register holds exactly the winners\' links');
is(sql(q{SELECT count(*) FROM (SELECT command->>'reverses' FROM es_commands
                                WHERE command ? 'reverses' GROUP BY 1 HAVING count(*) > 1) s}),
	'0', 'one link per command reversed');
is(sql(q{SELECT count(*) FROM es_events WHERE data ? 'reverses'}),
	sql(q{SELECT count(*) FROM es_commands WHERE command ? 'reverses'}),
	'each reversal event carries its link');
is(sql(q{SELECT bool_and(ok) FROM es_verify()}), 't', 'es_verify all ok');

$node->stop;
done_testing();
