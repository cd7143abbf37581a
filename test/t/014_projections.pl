# test/t/014_projections.pl
#
# Async user projections applied by the background worker (es_ledger in
# shared_preload_libraries):
#
#  1. a new role registers the two projections of doc/projections.md (daily
#     movements per account, totals per currency) and one that records every
#     event it sees under a primary key (a second application of an event
#     would fail it); the worker catches up with a concurrent workload, and
#     each table equals a plain SQL query over es_events;
#  2. a fourth projection's handler fails on one event: it stops, failed,
#     with the error and the event in es_projections, while es_apply goes on
#     and the other projections keep up;
#  3. the server is stopped with stop('immediate') while writers append and
#     the worker catches up a backlog in small batches; after start the worker is back on its
#     own, catches up, and the tables still equal the log: no event applied
#     twice, none skipped.  The failed projection is still failed.
#  4. without shared_preload_libraries, es_projection_create starts the
#     database's worker.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;
use Time::HiRes qw(usleep);

my $node = es_node('projections', conf => qq{
shared_preload_libraries = 'es_ledger'
es_ledger.projection_naptime = 50
es_ledger.projection_batch = 7
max_connections = 30
});

sub sql { return $node->safe_psql('postgres', shift); }

sql(q{
CREATE EXTENSION es_ledger;
CREATE ROLE analyst LOGIN IN ROLE es_ledger_admin;
CREATE ROLE teller LOGIN IN ROLE es_ledger_writer, es_ledger_admin;
CREATE SCHEMA app AUTHORIZATION analyst;
});

# The user's side, as doc/projections.md has it, run as the new role.
$node->safe_psql('postgres', q{
SET ROLE analyst;
SET search_path = app;
CREATE TABLE daily_movements (
	account_id bigint NOT NULL,
	day        date   NOT NULL,
	credits    bigint NOT NULL DEFAULT 0,
	debits     bigint NOT NULL DEFAULT 0,
	events     bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (account_id, day)
);
CREATE FUNCTION daily_apply(ev public.es_events) RETURNS void LANGUAGE sql AS $$
	INSERT INTO daily_movements AS d (account_id, day, credits, debits, events)
	VALUES (ev.account_id, (ev.effective_at AT TIME ZONE 'UTC')::date,
	        greatest(ev.amount, 0), greatest(-ev.amount, 0), 1)
	ON CONFLICT (account_id, day) DO UPDATE
	   SET credits = d.credits + excluded.credits,
	       debits  = d.debits + excluded.debits,
	       events  = d.events + 1;
$$;
CREATE FUNCTION daily_reset() RETURNS void LANGUAGE sql AS $$ DELETE FROM daily_movements $$;

CREATE TABLE currency_totals (
	currency text PRIMARY KEY,
	total    bigint NOT NULL,
	events   bigint NOT NULL
);
CREATE FUNCTION totals_apply(ev public.es_events) RETURNS void LANGUAGE sql AS $$
	INSERT INTO currency_totals AS t (currency, total, events)
	SELECT a.currency, ev.amount, 1 FROM public.es_accounts a WHERE a.account_id = ev.account_id
	ON CONFLICT (currency) DO UPDATE SET total = t.total + excluded.total, events = t.events + 1;
$$;
CREATE FUNCTION totals_reset() RETURNS void LANGUAGE sql AS $$ DELETE FROM currency_totals $$;

CREATE TABLE seen (seq bigint PRIMARY KEY, by_role name NOT NULL);
-- a slow one (1 ms an event), so that the crash finds it behind
CREATE FUNCTION seen_apply(ev public.es_events) RETURNS void LANGUAGE sql AS $$
	SELECT pg_sleep(0.001);
	INSERT INTO seen VALUES (ev.seq, current_user);
$$;

CREATE TABLE picky_seen (seq bigint PRIMARY KEY);
CREATE FUNCTION picky_apply(ev public.es_events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF ev.amount = 666 THEN
		RAISE EXCEPTION 'the beast is not welcome' USING ERRCODE = 'PX666';
	END IF;
	INSERT INTO picky_seen VALUES (ev.seq);
END $$;

SELECT public.es_projection_create('daily', 'daily_apply(public.es_events)', 'async', 'daily_reset()');
SELECT public.es_projection_create('totals', 'totals_apply(public.es_events)', 'async', 'totals_reset()');
SELECT public.es_projection_create('seen', 'seen_apply(public.es_events)');
SELECT public.es_projection_create('picky', 'picky_apply(public.es_events)');
});

is(sql(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'es_ledger projection launcher'}),
   '1', 'the launcher runs');
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'es_ledger projection worker' AND datname = 'postgres'}),
   'a worker follows the database');

# A workload of teller's commands: accounts in two currencies, deposits,
# transfers, batches, rejected commands; one 666 for picky.
sub workload
{
	my ($tag, $n) = @_;
	return qq{
SET ROLE teller;
SELECT es_open_account('$tag-' || i, CASE WHEN i % 3 = 0 THEN 'EUR' ELSE 'USD' END)
  FROM generate_series(1, 6) i;
SELECT es_deposit('$tag-' || (i % 6 + 1), 100 + i) FROM generate_series(1, $n) i;
DO \$\$
BEGIN
	FOR i IN 1..$n LOOP
		BEGIN
			PERFORM es_transfer('$tag-' || (i % 6 + 1), '$tag-' || ((i + 3) % 6 + 1), 1 + i % 50);
		EXCEPTION WHEN OTHERS THEN NULL;
		END;
		COMMIT;
	END LOOP;
END \$\$;
SELECT es_apply(jsonb_build_array(
	jsonb_build_object('type', 'deposit', 'account', '$tag-1', 'amount', 7),
	jsonb_build_object('type', 'withdraw', 'account', '$tag-1', 'amount', 3)));
};
}

# What each projection must equal, as plain SQL over the log.
my $daily_ok = q{
SELECT NOT EXISTS (
	(SELECT account_id, (effective_at AT TIME ZONE 'UTC')::date, sum(greatest(amount, 0)),
	        sum(greatest(-amount, 0)), count(*)
	   FROM es_events GROUP BY 1, 2
	 EXCEPT SELECT account_id, day, credits, debits, events FROM app.daily_movements)
	UNION ALL
	(SELECT account_id, day, credits, debits, events FROM app.daily_movements
	 EXCEPT SELECT account_id, (effective_at AT TIME ZONE 'UTC')::date, sum(greatest(amount, 0)),
	        sum(greatest(-amount, 0)), count(*)
	   FROM es_events GROUP BY 1, 2))};
my $totals_ok = q{
SELECT NOT EXISTS (
	(SELECT a.currency, sum(e.amount), count(*) FROM es_events e JOIN es_accounts a USING (account_id) GROUP BY 1
	 EXCEPT SELECT currency, total, events FROM app.currency_totals)
	UNION ALL
	(SELECT currency, total, events FROM app.currency_totals
	 EXCEPT SELECT a.currency, sum(e.amount), count(*) FROM es_events e JOIN es_accounts a USING (account_id) GROUP BY 1))};
my $seen_ok = q{
SELECT (SELECT count(*) FROM app.seen) = (SELECT count(*) FROM es_events)
   AND NOT EXISTS (SELECT seq FROM es_events EXCEPT SELECT seq FROM app.seen)
   AND (SELECT bool_and(by_role = 'analyst') FROM app.seen)};
my $caught_up = q{
SELECT bool_and(lag_events = 0) FROM es_projections WHERE name IN ('daily', 'totals', 'seen')};

# 1. The worker catches up with writers running beside it.
my @writers;
for my $w (1 .. 3)
{
	push @writers, $node->background_psql('postgres', on_error_stop => 1);
	$writers[-1]->query_until(qr/started/, "\\echo started\n" . workload("w$w", 40) . "\\echo done\n");
}
$_->query_until(qr/done/, '') for @writers;
$_->quit for @writers;
sql(q{SET ROLE teller; SELECT es_deposit('w1-1', 666)});

ok($node->poll_query_until('postgres', $caught_up), 'the async projections catch up');
is(sql($daily_ok), 't', 'daily movements equal the log');
is(sql($totals_ok), 't', 'currency totals equal the log');
is(sql($seen_ok), 't', 'every event seen once, as the projection owner');

# 2. The failing handler stopped its projection only.
ok($node->poll_query_until('postgres',
	q{SELECT state = 'failed' FROM es_projections WHERE name = 'picky'}), 'picky failed');
like(sql(q{SELECT last_error FROM es_projections WHERE name = 'picky'}),
	 qr/^PX666: the beast is not welcome/, 'its error is in the view');
is(sql(q{SELECT error_seq = (SELECT seq FROM es_events WHERE amount = 666) FROM es_projections WHERE name = 'picky'}),
   't', 'with the event it failed on');
is(sql(q{SELECT count(*) FROM app.picky_seen WHERE seq = (SELECT seq FROM es_events WHERE amount = 666)}),
   '0', 'which it did not apply');
is(sql(q{SELECT state FROM es_projections WHERE name IN ('daily', 'totals', 'seen') GROUP BY state}),
   'running', 'the others run');

# 3. A crash while writers append and the worker catches up a backlog in
#    batches of 7: the projections are paused while the writers build one,
#    then resumed, and the server is stopped a moment later.
$node->safe_psql('postgres', q{
SET ROLE analyst;
SELECT es_projection_pause('daily'), es_projection_pause('totals'), es_projection_pause('seen');
});
my @crash_writers;
for my $w (4 .. 5)
{
	push @crash_writers, $node->background_psql('postgres', on_error_stop => 0);
	$crash_writers[-1]->query_until(qr/started/, "\\echo started\n" . workload("w$w", 300));
}
$node->poll_query_until('postgres',
	q{SELECT count(*) > 600 FROM es_events WHERE account_id IN (SELECT account_id FROM es_accounts WHERE account ~ '^w[45]-')});
$node->safe_psql('postgres', q{
SET ROLE analyst;
SELECT es_projection_resume('daily'), es_projection_resume('totals'), es_projection_resume('seen');
});
usleep(300_000);
my $before = sql(q{SELECT count(*) FROM app.seen});
my $lag = sql(q{SELECT sum(lag_events) FROM es_projections WHERE name IN ('daily', 'totals', 'seen')});
cmp_ok($lag, '>', 0, "the worker was catching up when the server stopped ($lag events behind)");
$node->stop('immediate');
eval { $_->quit } for @crash_writers;
$node->start;
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'es_ledger projection worker' AND datname = 'postgres'}),
   'the worker is back after the restart');
sql(q{SET ROLE teller; SELECT es_deposit('w1-2', 5)});
ok($node->poll_query_until('postgres', $caught_up), 'and catches up');
is(sql($daily_ok), 't', 'daily movements equal the log after the crash');
is(sql($totals_ok), 't', 'currency totals equal the log after the crash');
is(sql($seen_ok), 't', 'every event seen exactly once after the crash');
cmp_ok(sql(q{SELECT count(*) FROM app.seen}), '>', $before, 'events were applied after the restart');
is(sql(q{SELECT state FROM es_projections WHERE name = 'picky'}), 'failed', 'picky is still failed');
is(sql(q{SELECT applied FROM es_projections WHERE name = 'seen'}), sql(q{SELECT count(*) FROM es_events}),
   'the applied count is the number of events');

# The owner fixes picky and resumes it: it catches up from the failed event.
$node->safe_psql('postgres', q{
SET ROLE analyst;
CREATE OR REPLACE FUNCTION app.picky_apply(ev public.es_events) RETURNS void LANGUAGE sql AS $$
	INSERT INTO app.picky_seen VALUES (ev.seq);
$$;
SELECT es_projection_resume('picky');
});
ok($node->poll_query_until('postgres',
	q{SELECT lag_events = 0 AND state = 'running' FROM es_projections WHERE name = 'picky'}), 'picky resumed');
is(sql(q{SELECT (SELECT count(*) FROM app.picky_seen) = (SELECT count(*) FROM es_events)}), 't',
   'picky saw every event once');
is(sql(q{SELECT count(*) FROM es_verify() WHERE NOT ok}), '0', 'es_verify passes');

$node->stop;

# 4. Without shared_preload_libraries there is no launcher, and creating an
#    async projection starts the database's worker (projection_autostart).
my $plain = es_node('no_preload', conf => "es_ledger.projection_naptime = 50\n");
$plain->safe_psql('postgres', q{
CREATE EXTENSION es_ledger;
SELECT es_open_account('a', 'USD'), es_deposit('a', 5);
CREATE TABLE s (seq bigint PRIMARY KEY);
CREATE FUNCTION s_apply(ev es_events) RETURNS void LANGUAGE sql AS $$ INSERT INTO s VALUES (ev.seq) $$;
SELECT es_projection_create('s', 's_apply(es_events)');
SELECT es_deposit('a', 6);
});
ok($plain->poll_query_until('postgres', q{SELECT (SELECT count(*) FROM s) = (SELECT count(*) FROM es_events)}),
   'without preloading, the worker started by es_projection_create applies the projection');
is($plain->safe_psql('postgres',
	q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'es_ledger projection launcher'}),
   '0', 'and there is no launcher');
$plain->stop;
done_testing();
