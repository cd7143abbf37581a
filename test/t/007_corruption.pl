# test/t/007_corruption.pl
#
# es_verify and the digests against real corruption of the data file, the
# kind PostgreSQL itself does not notice (data checksums are off):
#
#  1. a ledger of a few accounts and some hundred deposits and transfers; a
#     digest taken in the middle (before the victim event) and one at the
#     end;
#  2. the server stopped, one byte of the amount of one TransferReceived
#     event in the middle of the log changed in the es_events file (the
#     tuple found through the page's line pointer, the amount's offset
#     computed from the tuple header and checked against the value), the
#     server started;
#  3. es_verify() reports checksum and hash_chain not ok with
#     first_bad_seq = that event (one bad event each), the projection and
#     es_replay disagree; es_verify of an untouched account (the transfer's
#     sender) is all ok; the digest taken after the event no longer
#     verifies, the one taken before it still does.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;

my $node = es_node('corruption');

sub sql { return $node->safe_psql('postgres', shift); }

is(sql('SHOW data_checksums'), 'off', 'data checksums are off: PostgreSQL will not notice');

# ------------------------------------------------------------ the ledger
sql(q{
	CREATE EXTENSION es_ledger;
	SELECT es_open_account('acct-' || i, CASE WHEN i = 5 THEN 'EUR' ELSE 'USD' END)
	  FROM generate_series(1, 5) i;
	SELECT es_deposit('acct-' || i, 100000) FROM generate_series(1, 5) i;
	SELECT es_open_account('eur-2', 'EUR');
	SELECT es_deposit('eur-2', 5000);
});
# Amounts are at least 2 and their low byte never 0xff, so that changing
# the low byte keeps the event a credit of another amount.
my $round = q{
	DO $$
	BEGIN
		FOR i IN 1 .. 60 LOOP
			PERFORM es_transfer('acct-' || (i % 4 + 1), 'acct-' || ((i + 1) % 4 + 1), 2 + (i * 37) % 200);
			PERFORM es_deposit('acct-' || (i % 4 + 1), 10 + i);
			IF i % 10 = 0 THEN
				PERFORM es_withdraw('acct-' || (i % 4 + 1), 7);
				PERFORM es_transfer('acct-5', 'eur-2', 3 + i);
			END IF;
		END LOOP;
	END $$};
sql($round);
my ($early_seq, $early_digest) = split /\|/, sql('SELECT seq, digest FROM es_digest()');
sql($round);
sql($round);
my ($late_seq, $late_digest) = split /\|/, sql('SELECT seq, digest FROM es_digest()');
cmp_ok(sql('SELECT count(*) FROM es_events'), '>', 400, 'the ledger holds some hundred events');
is(sql(q{SELECT bool_and(ok) FROM es_verify()}), 't', 'before the corruption: es_verify() is all ok');
is(sql(qq{SELECT es_verify_digest($late_seq, '$late_digest')}), 't', 'before the corruption: the digest verifies');

# The victim: a TransferReceived in the middle of the log, after the early
# digest, with an amount that appears in no other event of its page.
my $victim = sql(qq{
	SELECT e.seq FROM es_events e
	 WHERE e.type = 'TransferReceived' AND e.seq > $early_seq AND e.seq < $late_seq
	   AND e.account_id = (SELECT account_id FROM es_accounts WHERE account = 'acct-3')
	   AND NOT EXISTS (SELECT 1 FROM es_events o WHERE o.amount = e.amount AND o.seq <> e.seq
	                      AND (o.ctid::text::point)[0] = (e.ctid::text::point)[0])
	 ORDER BY abs(e.seq - ($early_seq + $late_seq) / 2) LIMIT 1});
ok($victim ne '', "the victim event: seq $victim");
my ($ctid, $amount, $receiver) = split /\|/, sql(qq{
	SELECT e.ctid, e.amount, a.account
	  FROM es_events e JOIN es_accounts a USING (account_id) WHERE e.seq = $victim});
my $sender = sql(qq{SELECT a.account FROM es_events e JOIN es_accounts a USING (account_id)
	WHERE e.seq = $victim - 1 AND e.type = 'TransferSent'});
is($receiver, 'acct-3', 'the victim belongs to acct-3');
ok($sender ne '' && $sender ne 'acct-3', "its transfer's sender: $sender");
my ($block, $lineno) = $ctid =~ /^\((\d+),(\d+)\)$/ or die "bad ctid $ctid";
my $relpath = $node->data_dir . '/' . sql(q{SELECT pg_relation_filepath('es_events')});
my $block_size = sql('SHOW block_size');

# Everything else, to show afterwards that only the amount changed.
my $others_sql = qq{SELECT md5(string_agg(e::text, E'\\n' ORDER BY seq)) FROM es_events e WHERE seq <> $victim};
my $victim_sql = qq{SELECT row(seq, account_id, version, type, data, command_id, recorded_at, effective_at,
	checksum, hash, format, tx)::text FROM es_events WHERE seq = $victim};
my $others_before = sql($others_sql);
my $victim_before = sql($victim_sql);
my $accounts_before = sql(q{SELECT md5(string_agg(a::text, E'\n' ORDER BY account_id)) FROM es_accounts a});

# ------------------------------------------------------------ the damage
$node->stop;

open(my $fh, '+<:raw', $relpath) or die "cannot open $relpath: $!";
my $page_off = $block * $block_size;    # the first segment holds the whole table
sysseek($fh, $page_off, 0) or die "seek: $!";
sysread($fh, my $page, $block_size) == $block_size or die "short read of block $block";

# Line pointer: 24-byte page header, then 4 bytes per item:
# lp_off:15, lp_flags:2, lp_len:15 (little-endian bit fields).
my $lp = unpack('V', substr($page, 24 + ($lineno - 1) * 4, 4));
my $lp_off = $lp & 0x7fff;
my $lp_flags = ($lp >> 15) & 3;
my $lp_len = $lp >> 17;
is($lp_flags, 1, 'the line pointer is LP_NORMAL');
# Tuple header: t_hoff at byte 22; the attributes start there:
# seq, account_id, version (int8), then type (text: a short varlena with a
# 1-byte header here), then amount (int8, aligned to 8).
my $t_hoff = unpack('C', substr($page, $lp_off + 22, 1));
my $data = $lp_off + $t_hoff;
is(unpack('q<', substr($page, $data, 8)), $victim, 'the tuple found through the line pointer has the victim\'s seq');
my $vl = unpack('C', substr($page, $data + 24, 1));
is($vl & 1, 1, 'type is stored with a 1-byte varlena header');
is(substr($page, $data + 25, ($vl >> 1) - 1), 'TransferReceived', 'type is TransferReceived');
my $amount_off = $data + 24 + ($vl >> 1);
$amount_off = ($amount_off - $data + 7) & ~7;
$amount_off += $data;
ok($amount_off + 8 <= $lp_off + $lp_len, 'the amount lies inside the tuple');
is(unpack('q<', substr($page, $amount_off, 8)), $amount, "the 8 bytes at the computed offset are the amount, $amount");

my $low = unpack('C', substr($page, $amount_off, 1));
my $new_amount = $amount - $low + ($low ^ 0x01);
substr($page, $amount_off, 1) = pack('C', $low ^ 0x01);
sysseek($fh, $page_off, 0) or die "seek: $!";
syswrite($fh, $page) == $block_size or die "short write of block $block";
close($fh) or die "close: $!";
note("changed the amount of seq $victim at block $block item $lineno (file offset "
	  . ($page_off + $amount_off) . ") from $amount to $new_amount");

$node->start;

# ------------------------------------------------------------ what shows
is(sql(qq{SELECT amount FROM es_events WHERE seq = $victim}), $new_amount, 'the victim\'s amount is changed');
is(sql($victim_sql), $victim_before, 'the victim\'s other columns are unchanged');
is(sql($others_sql), $others_before, 'every other event is unchanged');
is(sql(q{SELECT md5(string_agg(a::text, E'\n' ORDER BY account_id)) FROM es_accounts a}), $accounts_before,
	'the projection is unchanged');

my %v = map { my @f = split /\|/; ($f[0] => \@f) } split /\n/,
  sql(q{SELECT check_name, ok, checked, first_bad_seq, detail FROM es_verify()});
note(join("\n", map { join(' | ', @$_) } values %v));
is_deeply([ sort keys %v ], [ sort qw(checksum hash_chain versions events projection conservation commands snapshots) ],
	'es_verify() returns its eight checks');
for my $c (qw(checksum hash_chain))
{
	is($v{$c}[1], 'f', "es_verify(): $c is not ok");
	is($v{$c}[3], $victim, "es_verify(): $c first_bad_seq is the victim, $victim");
	like($v{$c}[4], qr/^1 of \d+ events bad; first: seq $victim: /, "es_verify(): $c finds exactly one bad event");
}
like($v{checksum}[4], qr/stored checksum differs/, 'checksum: the stored checksum differs from the content');
is($v{projection}[1], 'f', 'es_verify(): the projection no longer equals the replay of the log');
like($v{projection}[4], qr/account "acct-3".*balance/, '... on acct-3\'s balance');
is($v{projection}[3], sql(q{SELECT last_seq FROM es_accounts WHERE account = 'acct-3'}),
	'... placed at acct-3\'s last event');
is("$v{versions}[1]$v{events}[1]$v{conservation}[1]", 'ttt',
	'es_verify(): versions, events and conservation (deposits minus withdrawals) still hold');

isnt(sql(q{SELECT (es_replay('acct-3')).balance}), sql(q{SELECT balance FROM es_accounts WHERE account = 'acct-3'}),
	'es_replay of acct-3 now differs from its projection row');
is(sql(q{SELECT (es_replay('acct-3')).balance - balance FROM es_accounts WHERE account = 'acct-3'}),
	$new_amount - $amount, '... by the change of the amount');

is(sql(q{SELECT string_agg(check_name, ',' ORDER BY check_name) FROM es_verify('acct-3') WHERE NOT ok}),
	'checksum,conservation,hash_chain,projection',
	'es_verify(\'acct-3\'): checksum, hash_chain, projection and conservation fail');
is(sql(q{SELECT min(first_bad_seq) FROM es_verify('acct-3') WHERE check_name IN ('checksum', 'hash_chain')}), $victim,
	'... at the victim');
for my $acct ($sender, 'acct-1', 'eur-2')
{
	is(sql(qq{SELECT bool_and(ok) AND count(*) = 8 AND bool_and(first_bad_seq IS NULL) FROM es_verify('$acct')}), 't',
		"es_verify('$acct') of an untouched account is all ok");
}

is(sql(qq{SELECT es_verify_digest($late_seq, '$late_digest')}), 'f',
	"the digest at seq $late_seq, taken before the corruption, no longer verifies");
is(sql(qq{SELECT es_verify_digest($early_seq, '$early_digest')}), 't',
	"the digest at seq $early_seq, before the victim, still verifies");

my ($ret, $out, $err) = $node->psql('postgres', 'SELECT * FROM es_digest()');
is($ret, 0, 'es_digest still runs (the damaged event can be read and sealed)');

$node->stop;
done_testing();
