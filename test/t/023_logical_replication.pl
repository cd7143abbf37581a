# test/t/023_logical_replication.pl
#
# Logical replication to a reporting database (issue 15, section 4;
# doc/scale-out.md): a publisher publishes es_events and the projections
# es_accounts, es_transfers, es_commands; a subscriber with the extension
# installed accepts them through its apply and tablesync workers only.
# After deposits, transfers, a pending transfer posted and a reversal on the
# publisher (some before the subscription, some streamed after it), the
# subscriber's es_verify passes every check, its balances equal the
# publisher's, and a
# non-superuser there (even the database owner, who cannot set
# session_replication_role) cannot insert into es_events.
#
# The subscriber preloads the library: its projection worker leaves
# replicated reservations to the publisher (no expiry attempted, so no
# 25006 in its log), and a session that called es_apply before the
# subscription existed is refused after it (the per-backend cache of
# "not a subscriber" is invalidated by CREATE SUBSCRIPTION).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $pub = es_node('publisher', init => { allows_streaming => 'logical' }, ledger => 'postgres');
my $sub = es_node('subscriber', ledger => 'postgres', conf => q{
shared_preload_libraries = 'es_ledger'
es_ledger.projection_naptime = 200
});

# A session on the subscriber that used the ledger before the subscription:
# its command is refused for the missing account (ES003), so it has looked
# whether es_events is subscribed, and nothing is written.
my $early = $sub->background_psql('postgres', on_error_stop => 0);
$early->query(qq{\\set VERBOSITY verbose\nSELECT es_deposit('nobody', 1);});
like($early->{stderr}, qr/ES003/, 'before the subscription a command on the subscriber is decided there');
$early->{stderr} = '';

$pub->safe_psql('postgres', q{
SELECT es_open_account('a', 'USD'), es_open_account('b', 'USD'), es_open_account('c', 'USD');
SELECT es_deposit('a', 1000, 'dep-1');
SELECT es_transfer('a', 'b', 100, 'xfer-1');
CREATE PUBLICATION es_pub FOR TABLE es_events, es_accounts, es_transfers, es_commands;
});

my $connstr = $pub->connstr . ' dbname=postgres';
$sub->safe_psql('postgres', "CREATE SUBSCRIPTION es_sub CONNECTION '$connstr' PUBLICATION es_pub");
$sub->wait_for_subscription_sync($pub, 'es_sub');

$pub->safe_psql('postgres', q{
SELECT es_deposit('c', 500, 'dep-2');
SELECT es_transfer('b', 'c', 30, 'xfer-2');
SELECT es_apply('{"type": "transfer", "pending": true, "id": "pend-1", "from": "a", "to": "c", "amount": 200}');
SELECT es_apply('{"type": "post_pending", "pending_id": "pend-1", "amount": 150, "id": "post-1"}');
SELECT es_reverse('xfer-2', 'undo-2');
});
$pub->wait_for_catchup('es_sub');

my $all_ok = $sub->safe_psql('postgres',
	q{SELECT count(*) FILTER (WHERE NOT ok) || '/' || count(*) FROM es_verify()});
like($all_ok, qr{^0/[1-9]}, 'es_verify on the subscriber passes every check')
  or diag($sub->safe_psql('postgres', 'SELECT * FROM es_verify()'));
my $bal = q{SELECT string_agg(account_id || '=' || balance, ',' ORDER BY account_id) FROM es_accounts};
my $pbal = $pub->safe_psql('postgres', $bal);
is($sub->safe_psql('postgres', $bal), $pbal, 'balances on the subscriber equal the publisher\'s');
is($sub->safe_psql('postgres', q{SELECT count(*) FROM es_events}),
	$pub->safe_psql('postgres', q{SELECT count(*) FROM es_events}), 'all events replicated');
is($sub->safe_psql('postgres', q{SELECT count(*) FROM es_transfers WHERE status = 'posted'}),
	$pub->safe_psql('postgres', q{SELECT count(*) FROM es_transfers WHERE status = 'posted'}),
	'the posted pending transfer replicated');
# a database owner on the subscriber cannot write the log
$sub->safe_psql('postgres', q{
CREATE ROLE owner_r LOGIN;
CREATE DATABASE other OWNER owner_r;
GRANT ALL ON es_events TO owner_r;
});
my ($ret, $out, $err) = $sub->psql('postgres', q{SET ROLE owner_r;
INSERT INTO es_events SELECT * FROM es_events LIMIT 1});
like($err, qr/cannot insert into "es_events" directly/, 'a non-superuser cannot insert into es_events on the subscriber');
($ret, $out, $err) = $sub->psql('postgres', q{SET ROLE owner_r; SET session_replication_role = replica});
like($err, qr/permission denied to set parameter "session_replication_role"/,
	'session_replication_role is superuser-only');

# commands on the subscriber are refused (its log is the publisher's), as
# es_expire_pending is: 25006, as on a standby; nothing is written there
my $before = $sub->safe_psql('postgres', q{SELECT count(*) FROM es_events});
for my $cmd (q{SELECT es_deposit('a', 1)},
	q{SELECT es_apply('{"type":"open_account","account":"sub-only","currency":"EUR"}')},
	q{SELECT es_expire_pending()})
{
	($ret, $out, $err) = $sub->psql('postgres', "\\set VERBOSITY verbose\n$cmd");
	like($err, qr/25006: cannot write to the ledger of a logical subscriber/,
		"refused on the subscriber: $cmd");
}
$early->query(q{SELECT es_deposit('a', 1);});
like($early->{stderr}, qr/25006: cannot write to the ledger of a logical subscriber/,
	'a session that called es_apply before CREATE SUBSCRIPTION is refused after it');
$early->quit;
is($sub->safe_psql('postgres', q{SELECT count(*) FROM es_events}), $before,
	'nothing written on the subscriber');

# A replicated reservation that falls due is the publisher's to expire
# (the publisher runs no worker here): the subscriber's worker, running,
# leaves it pending and tries nothing (no 25006 in the subscriber's log).
$pub->safe_psql('postgres', q{SELECT es_apply('{"type":"transfer","pending":true,"id":"hold-sub","from":"a","to":"b","amount":10,"timeout":1}')});
$pub->wait_for_catchup('es_sub');
ok($sub->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'es_ledger projection worker' AND datname = 'postgres'}),
	'the subscriber runs a projection worker in the ledger\'s database');
my $log_at = -s $sub->logfile;
sleep 3;
is($sub->safe_psql('postgres', q{SELECT status FROM es_transfers WHERE transfer_id = 'hold-sub'}),
	'pending', 'the subscriber\'s worker leaves a due replicated reservation pending');
unlike(slurp_file($sub->logfile, $log_at), qr/cannot write to the ledger of a logical subscriber/,
	'... without trying to expire it');
$pub->safe_psql('postgres', q{SELECT es_expire_pending()});
$pub->wait_for_catchup('es_sub');
is($sub->safe_psql('postgres', q{SELECT status FROM es_transfers WHERE transfer_id = 'hold-sub'}),
	'expired', 'its expiry comes from the publisher');
# and the subscription keeps streaming afterwards
$pub->safe_psql('postgres', q{SELECT es_deposit('a', 5)});
$pub->wait_for_catchup('es_sub');
is($sub->safe_psql('postgres', $bal), $pub->safe_psql('postgres', $bal),
	'the subscription still streams after the refused commands');

# a read model built by a trigger on the subscriber: a superuser may add an
# AFTER trigger to the replicated log and make the apply worker fire it
$sub->safe_psql('postgres', q{
CREATE TABLE audit(seq bigint PRIMARY KEY, type text);
CREATE FUNCTION audit_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.audit VALUES (NEW.seq, NEW.type); RETURN NULL; END $$;
CREATE TRIGGER es_audit AFTER INSERT ON es_events FOR EACH ROW EXECUTE FUNCTION audit_event();
ALTER TABLE es_events ENABLE ALWAYS TRIGGER es_audit;
});
$pub->safe_psql('postgres', q{SELECT es_transfer('a', 'b', 7); SELECT es_deposit('c', 3)});
$pub->wait_for_catchup('es_sub');
is($sub->safe_psql('postgres', q{SELECT string_agg(type, ',' ORDER BY seq) FROM audit}),
	'TransferSent,TransferReceived,Deposited', 'the subscriber\'s AFTER trigger fired for the replicated events');
is($sub->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE NOT ok) FROM es_verify()}), '0',
	'es_verify still passes on the subscriber');
# what stays refused: BEFORE triggers, the guard triggers, non-superusers,
# and any trigger on a ledger that is not a subscriber
for my $case (
	[ $sub, q{CREATE TRIGGER b BEFORE INSERT ON es_events FOR EACH ROW EXECUTE FUNCTION audit_event()}, 'a BEFORE trigger on the subscriber' ],
	[ $sub, q{CREATE OR REPLACE TRIGGER es_guard AFTER INSERT ON es_accounts FOR EACH ROW EXECUTE FUNCTION audit_event()}, 'replacing a guard trigger on the subscriber' ],
	[ $sub, q{ALTER TABLE es_accounts ENABLE REPLICA TRIGGER es_guard}, 'ENABLE REPLICA of a guard trigger on the subscriber' ],
	[ $sub, q{ALTER TABLE es_accounts DISABLE TRIGGER es_guard}, 'DISABLE of a guard trigger on the subscriber' ],
	[ $sub, q{SET ROLE owner_r; CREATE TRIGGER n AFTER INSERT ON es_events FOR EACH ROW EXECUTE FUNCTION audit_event()}, 'a non-superuser\'s trigger on the subscriber' ],
	[ $pub, q{CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$; CREATE TRIGGER p AFTER INSERT ON es_events FOR EACH ROW EXECUTE FUNCTION f()}, 'an AFTER trigger on the publisher' ])
{
	($ret, $out, $err) = $case->[0]->psql('postgres', "\\set VERBOSITY verbose\n$case->[1]");
	like($err, qr/ES011: cannot/, "refused: $case->[2]");
}
# the user's trigger can be switched off and on again
$sub->safe_psql('postgres', q{ALTER TABLE es_events DISABLE TRIGGER es_audit});
$pub->safe_psql('postgres', q{SELECT es_deposit('c', 4)});
$pub->wait_for_catchup('es_sub');
is($sub->safe_psql('postgres', q{SELECT count(*) FROM audit}), '3', 'a disabled trigger does not fire');

$sub->stop;
$pub->stop;
done_testing();
