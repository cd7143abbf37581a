# test/t/009_crash_verify.pl
#
# A crash in the middle of a workload, checked against what the clients were
# told:
#
#  - four psql clients, each running its own script of numbered steps with
#    command ids: single transfers (autocommit), transactions of a transfer
#    and a deposit, batches (es_apply of an array), withdrawals.  After each
#    step has been acknowledged (its statement or its COMMIT returned), the
#    client prints "ack <id> <seq>" on its standard output; ON_ERROR_STOP
#    ends a client at its first error.
#  - es_digest taken while the clients run; more steps; then
#    $node->stop('immediate') while every client is mid-script; start.
#  - every acknowledged step is in the log with the seq its client was
#    given; each client's steps in the log are a prefix of its script (no
#    gap, nothing half-applied): the acknowledged ones and at most the one
#    that was in flight; es_verify() is all ok (and per account), its counts
#    match the log, the digest taken before the crash verifies, a retry of
#    an acknowledged id returns its seq, and the ledger goes on.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;
use IPC::Run;

my $nclients = 4;
my $nsteps = 8000;    # per client; far more than run before the crash
my $nacc = 8;

my $node = es_node('crash_verify', conf => qq{
checkpoint_timeout = '1h'
max_wal_size = '1GB'
});

sub sql { return $node->safe_psql('postgres', shift); }

# One currency, large balances and overdrafts: no step is ever refused, so
# any error a client meets is the crash.
sql(qq{
	CREATE EXTENSION es_ledger;
	SELECT es_open_account('acct-' || i, 'USD', 1000000000, NULL) FROM generate_series(1, $nacc) i;
	SELECT es_deposit('acct-' || i, 1000000) FROM generate_series(1, $nacc) i;
});
sql('CHECKPOINT');

# ------------------------------------------------------------ the clients
srand(7);
sub two_accounts
{
	my $a = 1 + int(rand($nacc));
	my $b = 1 + ($a + int(rand($nacc - 1))) % $nacc;
	return ("acct-$a", "acct-$b");
}

my @clients;
for my $c (1 .. $nclients)
{
	my $script = "\\set ON_ERROR_STOP 1\n";
	for my $k (1 .. $nsteps)
	{
		my $id = "c$c-$k";
		my ($from, $to) = two_accounts();
		my $amt = 1 + int(rand(500));
		if ($k % 5 == 0)
		{
			$script .= "BEGIN;\n"
			  . "SELECT es_transfer('$from', '$to', $amt, '$id') AS s1 \\gset\n"
			  . "SELECT es_deposit('$from', $amt, '$id/b') AS s2 \\gset\n"
			  . "COMMIT;\n"
			  . "\\echo ack $id :s1\n\\echo ack $id/b :s2\n";
		}
		elsif ($k % 7 == 0)
		{
			$script .= "SELECT es_apply('[{\"type\": \"transfer\", \"from\": \"$from\", \"to\": \"$to\", \"amount\": $amt, \"id\": \"$id\"},"
			  . " {\"type\": \"withdraw\", \"account\": \"$to\", \"amount\": $amt, \"id\": \"$id/b\"}]') AS s \\gset\n"
			  . "\\echo ack $id -\n\\echo ack $id/b :s\n";
		}
		elsif ($k % 11 == 0)
		{
			$script .= "SELECT es_withdraw('$from', $amt, '$id') AS s \\gset\n\\echo ack $id :s\n";
		}
		else
		{
			$script .= "SELECT es_transfer('$from', '$to', $amt, '$id') AS s \\gset\n\\echo ack $id :s\n";
		}
	}
	# Files, not pipes: nobody pumps pipes while the clients run.
	my %cl = map { ($_ => $node->basedir . "/client$c.$_") } qw(sql out err);
	append_to_file($cl{sql}, $script);
	$cl{h} = IPC::Run::start(
		[ 'psql', '-X', '-q', '-At', '-f', $cl{sql}, '-d', $node->connstr('postgres') ],
		'<', \undef, '>', $cl{out}, '2>', $cl{err});
	push @clients, \%cl;
}

$node->poll_query_until('postgres', q{SELECT count(*) > 3000 FROM es_events WHERE command_id IS NOT NULL})
  or die 'the clients do not run';
my ($dseq, $digest) = split /\|/, sql('SELECT seq, digest FROM es_digest()');
note("digest taken at seq $dseq while the clients run");
$node->poll_query_until('postgres', qq{SELECT count(*) > 1500 FROM es_events WHERE seq > $dseq})
  or die 'the clients stopped';

$node->stop('immediate');
for my $cl (@clients)
{
	$cl->{h}->finish;    # psql ends with an error: its server went away
}
$node->start;

# ------------------------------------------------------------ what was acknowledged
my (@acks, %last_step);
for my $c (1 .. $nclients)
{
	my $cl = $clients[ $c - 1 ];
	my @lines = split /\n/, slurp_file($cl->{out});
	my $err = slurp_file($cl->{err});
	my @bad = grep { !/^ack c$c-\d+(\/b)? (\d+|-)$/ } @lines;
	is(scalar(@bad), 0, "client $c printed only acknowledgements") or diag(join("\n", @bad[ 0 .. 4 ]));
	my $n = 0;
	for (@lines)
	{
		next unless /^ack (c$c-(\d+)(?:\/b)?) (\d+|-)$/;
		push @acks, [ $1, $3 ];
		$n = $2;
	}
	$last_step{$c} = $n;
	cmp_ok($n, '<', $nsteps, "client $c was stopped by the crash, after step $n of $nsteps");
	like($err, qr/server closed the connection|connection to server was lost|terminating connection/,
		"client $c ended because the server went away");
	unlike($err, qr/ERROR:/, "client $c met no error from the ledger");
}
note(sprintf("%d commands acknowledged before the crash", scalar @acks));

# The acknowledgements, into a table.
sql(q{CREATE TABLE acks (id text PRIMARY KEY, seq bigint)});
my $values = join(",\n", map { "('$_->[0]', " . ($_->[1] eq '-' ? 'NULL' : $_->[1]) . ')' } @acks);
sql("INSERT INTO acks VALUES $values");

is(sql(q{SELECT count(*) FROM acks a WHERE NOT EXISTS (SELECT 1 FROM es_events e WHERE e.command_id = a.id)}), '0',
	'every acknowledged command is in the log');
is(sql(q{SELECT count(*) FROM acks a WHERE a.seq IS NOT NULL
	AND NOT EXISTS (SELECT 1 FROM es_events e WHERE e.command_id = a.id AND e.seq = a.seq)}), '0',
	'... with the seq its client was given');
is(sql(q{SELECT count(*) FROM acks a JOIN es_commands c ON c.command_id = a.id WHERE a.seq IS NOT NULL AND c.seq <> a.seq}), '0',
	'... and registered in es_commands with that seq');

# Per client, the steps in the log: 1..m without a gap, every command of a
# step (m = the last acknowledged step, or the one after it, in flight).
my $steps = sql(q{
	SELECT string_agg(c || ' ' || n || ' ' || mx || ' ' || cmds, ',' ORDER BY c)
	  FROM (SELECT c, count(DISTINCT k) n, max(k) mx, count(DISTINCT command_id) cmds
	          FROM (SELECT command_id, substring(command_id FROM '^c(\d+)-')::int c,
	                       substring(command_id FROM '^c\d+-(\d+)')::int k
	                  FROM es_events WHERE command_id LIKE 'c%') e
	         GROUP BY c) s});
my %inlog = map { my ($c, $n, $mx, $cmds) = split / /; ($c => [ $n, $mx, $cmds ]) } split /,/, $steps;
my $inflight = 0;
for my $c (1 .. $nclients)
{
	my ($n, $mx, $cmds) = @{ $inlog{$c} };
	is($n, $mx, "client $c: its steps in the log are 1..$mx, without a gap");
	my $expect = 0;
	$expect += ($_ % 5 == 0 || $_ % 7 == 0) ? 2 : 1 for 1 .. $mx;
	is($cmds, $expect, "client $c: every command of those steps is there (transactions and batches whole)");
	ok($mx == $last_step{$c} || $mx == $last_step{$c} + 1,
		"client $c: the log holds its $last_step{$c} acknowledged steps" . ($mx > $last_step{$c} ? ' and the one in flight' : ''));
	$inflight++ if $mx > $last_step{$c};
}
note("$inflight steps committed but not acknowledged (in flight at the crash)");

# ------------------------------------------------------------ es_verify
my $verify = sql(q{SELECT string_agg(check_name || ' ' || ok || ' ' || checked || ' ' || coalesce(first_bad_seq::text, '-'), E'\n') FROM es_verify()});
note("es_verify() after the crash:\n$verify");
is(sql(q{SELECT bool_and(ok) AND count(*) = 8 AND bool_and(first_bad_seq IS NULL) FROM es_verify()}), 't',
	'after the crash: es_verify() is all ok');
is(sql(q{SELECT string_agg(checked::text, ' ' ORDER BY check_name) FROM es_verify()
	WHERE check_name IN ('checksum', 'hash_chain', 'events')}),
	join(' ', (sql('SELECT count(*) FROM es_events')) x 3), '... and checked every event of the log');
is(sql(q{SELECT checked FROM es_verify() WHERE check_name = 'projection'}),
	sql(q{SELECT (SELECT count(*) FROM es_accounts) + (SELECT count(*) FROM es_transfers)}),
	'... and every account and transfer');
is(sql(q{SELECT count(*) FROM es_accounts}), $nacc, '... of the accounts there are');
is(sql(q{SELECT count(*) FROM es_accounts a, LATERAL es_verify(a.account) v WHERE NOT v.ok}), '0',
	'after the crash: es_verify(account) is all ok for every account');
is(sql(qq{SELECT es_verify_digest($dseq, '$digest')}), 't',
	"the digest taken at seq $dseq before the crash verifies");

# ------------------------------------------------------------ the ledger goes on
my ($id, $seq) = @{ (grep { $_->[1] ne '-' && $_->[0] !~ /\// && $_->[0] =~ /-(\d+)$/ && $1 % 5 && $1 % 7 && $1 % 11 } @acks)[-1] };
my $cmd = sql(qq{SELECT concat_ws(' ', command->>'from', command->>'to', command->>'amount') FROM es_commands WHERE command_id = '$id'});
my ($from, $to, $amt) = split / /, $cmd;
is(sql(qq{SELECT es_transfer('$from', '$to', $amt, '$id')}), $seq,
	"a retry of the last acknowledged transfer ($id) returns its seq");
my $max = sql('SELECT max(seq) FROM es_events');
cmp_ok(sql(q{SELECT es_transfer('acct-1', 'acct-2', 5, 'after-crash')}), '>', $max,
	'a new transfer gets a seq above every seq from before the crash');
is(sql(q{SELECT bool_and(ok) FROM es_verify()}), 't', 'es_verify() is still all ok');
my ($dseq2, $digest2) = split /\|/, sql('SELECT seq, digest FROM es_digest()');
is(sql(qq{SELECT es_verify_digest($dseq2, '$digest2') AND es_verify_digest($dseq, '$digest')}), 't',
	'a new digest verifies, and so does the old one');

my $log = slurp_file($node->logfile);
unlike($log, qr/PANIC|TRAP:|terminated by signal 11|could not read block|invalid page/,
	'no corruption or crash reported in the server log');

$node->stop;
done_testing();
