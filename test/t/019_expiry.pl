# test/t/019_expiry.pl
#
# The projection worker expires due pending transfers on time (issue 15,
# section 1), with the library preloaded and no async projection at all:
#
#  - a reservation with a 1-second timeout is shown 'expired' in
#    es_transfers within seconds, and the debit account's hold is released,
#    with no command touching either account;
#  - with es_ledger.worker_expire_pending = off it stays 'pending' until
#    es_expire_pending() is called.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('expiry');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'es_ledger'
es_ledger.projection_naptime = 200
});
$node->start;

sub q1 { return $node->safe_psql('postgres', shift); }

q1(q{CREATE EXTENSION es_ledger;
	SELECT es_open_account('x-a', 'USD'); SELECT es_open_account('x-b', 'USD');
	SELECT es_deposit('x-a', 100);
	SELECT es_apply('{"type":"transfer","pending":true,"id":"hold-1","from":"x-a","to":"x-b","amount":30,"timeout":1}');});
is(q1(q{SELECT status FROM es_transfers WHERE transfer_id = 'hold-1'}), 'pending',
	'the reservation is pending');

ok($node->poll_query_until('postgres',
	q{SELECT status = 'expired' FROM es_transfers WHERE transfer_id = 'hold-1'}),
	'the worker expired the due reservation, no command touching its accounts');
is(q1(q{SELECT count(*) FROM es_events e JOIN es_accounts a USING (account_id)
		 WHERE a.account = 'x-a' AND e.type = 'TransferExpired'}) >= 1 ? 'yes' : 'no',
	'yes', '... through the ordinary expiry events');
is(q1('SELECT count(*) FROM es_verify() WHERE NOT ok'), '0', 'es_verify passes');

q1(q{ALTER SYSTEM SET es_ledger.worker_expire_pending = off; SELECT pg_reload_conf();});
sleep 1;
q1(q{SELECT es_apply('{"type":"transfer","pending":true,"id":"hold-2","from":"x-a","to":"x-b","amount":20,"timeout":1}')});
sleep 4;
is(q1(q{SELECT status FROM es_transfers WHERE transfer_id = 'hold-2'}), 'pending',
	'with es_ledger.worker_expire_pending off the worker leaves it');
is(q1('SELECT es_expire_pending()'), '1', 'es_expire_pending() still expires it');

$node->stop;
done_testing();
