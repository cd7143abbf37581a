# test/t/011_two_ledgers.pl
#
# Transfers between two ledgers (doc/two_ledgers.md): the coordinator
# doc/two_ledgers.sh pays from "alice" on ledger A (one cluster) to "bob" on
# ledger B (another cluster), whose balance is capped at 20000 (200.00), by
# reserving on A (pending transfer alice -> clearing-B), crediting on B
# (clearing-A -> bob, same id) and posting or voiding on A.
#
# Every transfer, accepted by B or refused (ES002), is run with the
# coordinator crashing (CRASH_AFTER=1, 2, 3) and then resumed, and once more
# after it finished.  After each step the test checks both ledgers: the
# balances, money neither created nor lost (each ledger's total is what was
# deposited minus withdrawn; clearing-B on A + clearing-A on B = 0 once a
# transfer is finished), no reservation left open (pending_out, pending_in,
# es_transfers), es_verify() all ok and es_replay = es_accounts on both, and
# that a crashed-and-resumed transfer wrote exactly the events of one
# uninterrupted run.  Also: B refuses, the coordinator crashes, B has room
# when it resumes (paid); A voided, the coordinator crashes, B has room when
# it resumes (still refused: B is not asked again); A refuses (ES001: nothing
# written anywhere); the payee does not exist on B (ES003: voided).
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;

my $coordinator = "$ENV{TESTDIR}/doc/two_ledgers.sh";
ok(-f $coordinator, 'the coordinator doc/two_ledgers.sh is shipped');

my $la = es_node('ledger_a');
my $lb = es_node('ledger_b');

# Ledger A: alice has 100000; clearing-B holds what A owes B.
$la->safe_psql('postgres', q{
CREATE EXTENSION es_ledger;
SELECT es_open_account('alice', 'USD');
SELECT es_deposit('alice', 100000);
SELECT es_open_account('clearing-B', 'USD');
});
# Ledger B: bob's wallet is capped at 20000 and holds 5000; clearing-A pays
# out on A's behalf and may go negative.
$lb->safe_psql('postgres', q{
CREATE EXTENSION es_ledger;
SELECT es_open_account('clearing-A', 'USD', 1000000000);
SELECT es_open_account('bob', 'USD', 0, 20000);
SELECT es_deposit('bob', 5000);
});

# What the test expects: alice's and bob's balances, and what was deposited
# minus withdrawn on each ledger.
my %want = (alice => 100000, bob => 5000, a_ext => 100000, b_ext => 5000);

# The payee transfer() pays.
our $PAYEE = 'bob';

# Run the coordinator; returns (exit status, stdout, stderr).
sub coordinate
{
	my ($id, $amount, %opt) = @_;
	local %ENV = (
		%ENV,
		LEDGER_A => 'host=' . $la->host . ' port=' . $la->port . ' dbname=postgres',
		LEDGER_B => 'host=' . $lb->host . ' port=' . $lb->port . ' dbname=postgres',
		CRASH_AFTER => $opt{crash} // 0);
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'bash', $coordinator, $id, $opt{payer} // 'alice', $opt{payee} // 'bob', $amount ],
		'>', \$out, '2>', \$err);
	chomp $out;
	chomp $err;
	return ($? >> 8, $out, $err);
}

sub qa { return $la->safe_psql('postgres', shift); }
sub qb { return $lb->safe_psql('postgres', shift); }

# Everything the checks need from both ledgers, in one query per ledger.
sub ledger_state
{
	my @a = split /\|/, qa(q{SELECT concat_ws('|',
		(SELECT balance || ' ' || pending_out || ' ' || available FROM es_accounts WHERE account = 'alice'),
		(SELECT balance || ' ' || pending_in FROM es_accounts WHERE account = 'clearing-B'),
		(SELECT balance FROM es_accounts WHERE account = 'clearing-B'),
		(SELECT sum(balance) FROM es_accounts),
		(SELECT coalesce(sum(amount), 0) || ' ' || count(*) FROM es_transfers WHERE status = 'pending'),
		(SELECT sum(pending_out) || ' ' || sum(pending_in) FROM es_accounts),
		(SELECT coalesce(string_agg(check_name || ': ' || coalesce(detail, ''), '; '), 'all ok') FROM es_verify() WHERE NOT ok),
		(SELECT count(*) FROM es_accounts a WHERE row(a.*) IS DISTINCT FROM es_replay(a.account)),
		(SELECT count(*) FROM es_events))});
	my @b = split /\|/, qb(q{SELECT concat_ws('|',
		(SELECT balance || ' ' || pending_in || ' ' || pending_out FROM es_accounts WHERE account = 'bob'),
		(SELECT balance FROM es_accounts WHERE account = 'clearing-A'),
		(SELECT sum(balance) FROM es_accounts),
		(SELECT count(*) FROM es_accounts WHERE pending_out <> 0 OR pending_in <> 0),
		(SELECT coalesce(string_agg(check_name || ': ' || coalesce(detail, ''), '; '), 'all ok') FROM es_verify() WHERE NOT ok),
		(SELECT count(*) FROM es_accounts a WHERE row(a.*) IS DISTINCT FROM es_replay(a.account)),
		(SELECT count(*) FROM es_events))});
	my %st;
	@st{qw(alice clearing_b clearing_b_bal a_sum a_open a_pending a_verify a_replay a_events)} = @a;
	@st{qw(bob clearing_a_bal b_sum b_pending b_verify b_replay b_events)} = @b;
	return \%st;
}

sub nevents { return (qa('SELECT count(*) FROM es_events'), qb('SELECT count(*) FROM es_events')); }

# Everything that must hold on both ledgers; $open: the amount of the one
# transfer that is still half way (reserved on A), 0 when none is; $credited:
# whether B has already paid it.
sub check_ledgers
{
	my ($label, $open, $credited) = @_;
	$open //= 0;
	$credited //= 0;
	my $b_extra = $credited ? $open : 0;
	my $st = ledger_state();
	is($st->{alice}, "$want{alice} $open " . ($want{alice} - $open),
		"$label: alice's balance, pending_out, available on A");
	is($st->{clearing_b}, ($want{a_ext} - $want{alice}) . " $open",
		"$label: clearing-B on A holds what alice paid (pending_in: what is reserved)");
	is($st->{bob}, ($want{bob} + $b_extra) . ' 0 0', "$label: bob's balance on B");
	is($st->{a_sum}, $want{a_ext},
		"$label: no money created or lost on A (sum of balances = deposits - withdrawals)");
	is($st->{b_sum}, $want{b_ext},
		"$label: no money created or lost on B (sum of balances = deposits - withdrawals)");
	is(($st->{clearing_b_bal} // 0) + ($st->{clearing_a_bal} // 0), $credited ? -$open : 0,
		"$label: clearing-B on A + clearing-A on B = 0 (B paid out what A owes it)");
	is($st->{a_open}, $open ? "$open 1" : '0 0', "$label: open reservations in es_transfers on A");
	is($st->{a_pending}, "$open $open", "$label: pending_out and pending_in on A");
	is($st->{b_pending}, '0', "$label: nothing pending on B");
	is($st->{a_verify} . ' / ' . $st->{b_verify}, 'all ok / all ok', "$label: es_verify() all ok on A and B");
	is($st->{a_replay} . ' ' . $st->{b_replay}, '0 0', "$label: es_replay = es_accounts on A and B");
}

check_ledgers('set up');

# The events one uninterrupted run writes on A and B, per outcome.
my %delta;

# One transfer: crash after each step in @crashes (in turn), then resume,
# then run again once finished.  $outcome: 'paid' or 'refused'.
sub transfer
{
	my ($id, $amount, $outcome, @crashes) = @_;
	my ($a0, $b0) = nevents();
	my $credited = 0;
	for my $c (@crashes)
	{
		my ($rc, $out, $err) = coordinate($id, $amount, crash => $c, payee => $PAYEE);
		is($rc, 3, "$id: the coordinator crashed after step $c") or diag("stdout: $out\nstderr: $err");
		# B credits in step 2 when it accepts; a later resume does not credit again
		$credited = 1 if $c >= 2 && $outcome eq 'paid';
		if ($c < 3)
		{
			check_ledgers("$id, crashed after step $c", $amount, $credited);
		}
	}
	my ($rc, $out, $err) = coordinate($id, $amount, payee => $PAYEE);
	is($rc, 0, "$id: the coordinator finished") or diag("stderr: $err");
	like($out, qr/^\Q$outcome $id\E\b/, "$id: $outcome");
	if ($outcome eq 'paid')
	{
		$want{alice} -= $amount;
		$want{bob} += $amount;
	}
	check_ledgers("$id, finished");
	my ($a1, $b1) = nevents();
	my $d = ($a1 - $a0) . ' ' . ($b1 - $b0);
	if (defined $delta{$outcome})
	{
		is($d, $delta{$outcome}, "$id: wrote the events of one uninterrupted run (A, B: $d)");
	}
	else
	{
		$delta{$outcome} = $d;
		note("one uninterrupted $outcome transfer writes $d events on A, B");
	}

	# run again once finished: the same answer, nothing written
	($rc, $out, $err) = coordinate($id, $amount, payee => $PAYEE);
	is($rc, 0, "$id: run again, the coordinator finishes") or diag("stderr: $err");
	like($out, qr/^\Q$outcome $id\E\b/, "$id: run again: $outcome");
	is(join(' ', nevents()), "$a1 $b1", "$id: run again: nothing written on A or B");
}

# B accepts: bob 5000 -> 17000
transfer('pay-1', 3000, 'paid');
transfer('pay-crash-1', 3000, 'paid', 1);
transfer('pay-crash-2', 3000, 'paid', 2);
transfer('pay-crash-3', 3000, 'paid', 3);
# crashes after every step, twice after the first two, then resumed: 18000
transfer('pay-crash-all', 1000, 'paid', 1, 1, 2, 2, 3);

# B refuses (18000 + 10000 > 20000): ES002, the reservation is voided
transfer('refuse-1', 10000, 'refused');
transfer('refuse-crash-1', 10000, 'refused', 1);
transfer('refuse-crash-2', 10000, 'refused', 2);
transfer('refuse-crash-3', 10000, 'refused', 3);
transfer('refuse-crash-all', 2001, 'refused', 1, 1, 2, 2, 3);
my ($rc, $out, $err) = coordinate('refuse-msg', 2001);
like($out, qr/^refused refuse-msg: ES002/, 'the refusal names ES002 (balance limit exceeded on B)');
check_ledgers('refuse-msg');

# B refused, the coordinator crashed before voiding, bob spent some: when
# the coordinator resumes, B accepts and A posts (A and B agree).
($rc, $out, $err) = coordinate('room-later', 10000, crash => 2);
is($rc, 3, 'room-later: crashed after B refused');
check_ledgers('room-later, B refused, not yet voided', 10000, 0);
qb(q{SELECT es_withdraw('bob', 9000)});
$want{bob} -= 9000;
$want{b_ext} -= 9000;
($rc, $out, $err) = coordinate('room-later', 10000);
is($rc, 0, 'room-later: resumed');
like($out, qr/^paid room-later\b/, 'room-later: B accepts on resume, A posts');
$want{alice} -= 10000;
$want{bob} += 10000;    # 19000
check_ledgers('room-later, paid');

# A voided after B refused, the coordinator crashed; bob spends: the resumed
# coordinator must not ask B again (the reservation is gone).
($rc, $out, $err) = coordinate('no-second-chance', 5000, crash => 3);
is($rc, 3, 'no-second-chance: crashed after voiding');
like($err, qr/crash after step 3/, 'no-second-chance: the crash came after step 3');
check_ledgers('no-second-chance, voided');
qb(q{SELECT es_withdraw('bob', 15000)});
$want{bob} -= 15000;    # 4000: room for 5000 now
$want{b_ext} -= 15000;
my ($a0, $b0) = nevents();
($rc, $out, $err) = coordinate('no-second-chance', 5000);
is($rc, 0, 'no-second-chance: resumed');
like($out, qr/^refused no-second-chance\b/, 'no-second-chance: still refused');
is(join(' ', nevents()), "$a0 $b0", 'no-second-chance: nothing written on A or B');
check_ledgers('no-second-chance, resumed');

# A refuses: alice cannot pay 1000000; nothing is written anywhere
($a0, $b0) = nevents();
($rc, $out, $err) = coordinate('too-much', 1000000);
is($rc, 0, 'too-much: the coordinator finishes');
like($out, qr/^refused too-much: ES001 on A/, 'too-much: A refuses with ES001');
is(join(' ', nevents()), "$a0 $b0", 'too-much: nothing written on A or B');
is(qa(q{SELECT count(*) FROM es_transfers WHERE transfer_id = 'too-much'}), '0',
	'too-much: no row in es_transfers');
check_ledgers('too-much');

# The payee does not exist on B: ES003, voided
{
	local $PAYEE = 'nobody';
	transfer('ghost', 700, 'refused', 2);
}
($rc, $out, $err) = coordinate('ghost-2', 700, payee => 'nobody');
like($out, qr/^refused ghost-2: ES003/, 'a payee unknown on B: refused with ES003');
check_ledgers('ghost-2');

# The statuses A recorded
is(qa(q{SELECT string_agg(transfer_id || '=' || status || '/' || coalesce(posted_amount, 0), ' ' ORDER BY transfer_id)
        FROM es_transfers WHERE transfer_id LIKE 'pay-crash-%' OR transfer_id LIKE 'refuse-crash-%'}),
	join(' ', map { "pay-crash-$_=posted/" . ($_ eq 'all' ? 1000 : 3000) } qw(1 2 3 all)) . ' '
	  . join(' ', map { "refuse-crash-$_=voided/0" } qw(1 2 3)) . ' refuse-crash-all=voided/0',
	'es_transfers on A: the paid transfers posted in full, the refused ones voided');
is(qb(q{SELECT count(*) FROM es_events WHERE command_id LIKE 'refuse%' OR command_id = 'no-second-chance'}), '0',
	'B has no trace of the refused transfers');
is(qb(q{SELECT count(DISTINCT command_id) FROM es_events WHERE command_id LIKE 'pay-%' OR command_id = 'room-later'}),
	'6', 'B has one credit per paid transfer');

$la->stop;
$lb->stop;
done_testing();
