# test/t/016_horizon.pl
#
# es_read's horizon is this database's (issue 15, section 2): only the
# transactions that can still append to this database's log hold a
# follower back.
#
#  - an idle transaction holding an xid in another database, and a
#    transaction prepared there (and forgotten), do not delay es_read in the
#    ledger's database: events appended after they began are returned;
#  - a transaction prepared in the ledger's database that appended an event
#    holds es_read back (nothing after the cursor, although later events
#    committed), and once it is committed es_read returns its event and the
#    later ones, each once, in (tx, seq) order: nothing skipped, nothing
#    twice;
#  - so does one prepared there without appending (it could have), until it
#    is rolled back;
#  - an async projection follows the same way, and es_projections.waiting_for
#    names the prepared transaction its lag waits for.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('horizon');
$node->init;
$node->append_conf('postgresql.conf', "max_prepared_transactions = 5\n");
$node->start;

sub q1 { return $node->safe_psql('ledger', shift); }

$node->safe_psql('postgres', 'CREATE DATABASE ledger; CREATE DATABASE other;');
q1(q{CREATE EXTENSION es_ledger;
	SELECT es_open_account('h-' || i, 'USD') FROM generate_series(1, 2) i;});

# read everything there is; returns (number of rows, last cursor, seqs)
sub read_all
{
	my ($after) = @_;
	my $arg = defined $after ? "'$after'" : 'NULL';
	my $out = q1("SELECT seq, cursor FROM es_read($arg, 100000)");
	my @seqs;
	my $cursor = $after;
	for my $line (split /\n/, $out)
	{
		my ($seq, $c) = split /\|/, $line;
		push @seqs, $seq;
		$cursor = $c;
	}
	return ($cursor, @seqs);
}

my ($cursor, @seqs) = read_all(undef);
is(scalar @seqs, 2, 'the two openings are read');

# ------------------------------------------ transactions of another database
my $idle = $node->background_psql('other');
$idle->query_safe('BEGIN');
my $idle_xid = $idle->query_safe('SELECT txid_current()');
$node->safe_psql('other',
	q{BEGIN; SELECT txid_current(); PREPARE TRANSACTION 'forgotten_other';});

my @dep = map { q1("SELECT es_deposit('h-1', $_)") } 1 .. 3;
my $readxmin = q1('SELECT pg_snapshot_xmin(pg_current_snapshot())');
cmp_ok($readxmin, '<=', $idle_xid,
	'the snapshot xmin is held back by the other database');
q1(q{CREATE TABLE seen (seq bigint PRIMARY KEY);
	CREATE FUNCTION seen_apply(ev es_events) RETURNS void LANGUAGE sql
		AS $$ INSERT INTO seen VALUES (ev.seq) $$;
	SELECT es_projection_create('seen', 'seen_apply(es_events)', 'async');});
$node->poll_query_until('ledger', 'SELECT count(*) = 5 FROM seen')
  or die 'the async projection did not catch up';
is(q1('SELECT count(*) FROM seen'), '5',
	'an async projection catches up past the other database\'s transactions');
($cursor, @seqs) = read_all($cursor);
is_deeply(\@seqs, \@dep,
	'an idle xid and a prepared transaction in another database do not delay es_read');

# ------------------------------------- a prepared transaction of this database
$node->safe_psql('ledger',
	q{BEGIN; SELECT es_deposit('h-2', 7); PREPARE TRANSACTION 'held_here';});
my @later = map { q1("SELECT es_deposit('h-1', $_)") } 4 .. 5;
my ($c2, @none) = read_all($cursor);
is_deeply(\@none, [], 'a prepared transaction of the ledger\'s database holds es_read back');
like(q1(q{SELECT waiting_for FROM es_projections WHERE name = 'seen'}),
	qr/^prepared transaction 'held_here' \(xid \d+, prepared at /,
	'es_projections shows the prepared transaction the lag waits for');

$node->safe_psql('ledger', q{COMMIT PREPARED 'held_here'});
my $held_seq = q1(q{SELECT seq FROM es_events WHERE amount = 7});
($cursor, @seqs) = read_all($cursor);
is_deeply(\@seqs, [ $held_seq, @later ],
	'once committed, its event and the later ones are read once each, in (tx, seq) order');
cmp_ok($held_seq, '<', $later[0], '... its event has the lower seq (it was not skipped)');
$node->poll_query_until('ledger', 'SELECT count(*) = 8 FROM seen')
  or die 'the async projection did not catch up';
is(q1(q{SELECT waiting_for IS NULL FROM es_projections WHERE name = 'seen'}), 't',
	'... and nothing once it is committed');

# a prepared transaction of this database that did not append still holds it
$node->safe_psql('ledger',
	q{BEGIN; SELECT txid_current(); PREPARE TRANSACTION 'empty_here';});
my @more = map { q1("SELECT es_deposit('h-2', $_)") } 8 .. 9;
($c2, @none) = read_all($cursor);
is_deeply(\@none, [], 'a prepared transaction that may append holds es_read back');
$node->safe_psql('ledger', q{ROLLBACK PREPARED 'empty_here'});
($cursor, @seqs) = read_all($cursor);
is_deeply(\@seqs, \@more, '... until it ends');

# the whole log was read exactly once
my ($c0, @all) = read_all(undef);
is(join(',', @all),
	q1(q{SELECT string_agg(seq::text, ',' ORDER BY tx, seq) FROM es_events}),
	'a read from the start returns every event once, in (tx, seq) order');

$idle->query_safe('COMMIT');
$idle->quit;
$node->safe_psql('other', q{ROLLBACK PREPARED 'forgotten_other'});
$node->stop;
done_testing();
