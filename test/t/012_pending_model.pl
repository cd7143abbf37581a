# test/t/012_pending_model.pl
#
# Acceptance run for two-phase transfers (doc/reference.md, 4 "Commands"): a
# seeded random mix of immediate and pending transfers, posts (full and
# partial), voids, expiries, retries and rejected commands from 4 sessions
# at once, against a model of the rules written here in Perl, independently
# of the extension's code.  Every session owns its accounts, so its commands
# form a serial history the model can follow exactly, whatever the
# interleaving; the sessions share the server, the log and the expiry
# scheduler.  Meanwhile a fifth session plays the scheduler, calling
# es_expire_pending() every 0.25 s.  Then the 4 sessions race to post or void
# the same 20 reservations.
#
# Checked: the outcome (SQLSTATE or ok) of every command, single or inside
# es_apply_each; a retry returns the seq of the first call; every es_accounts
# row (balance, pending_out, pending_in, available, status) and every
# es_transfers row (from, to, amount, posted_amount, status) against the
# model; pending_out / pending_in = the open reservations in es_transfers;
# money conserved; es_replay = es_accounts; es_verify() all ok; no
# reservation past its timeout left open; in the race exactly one post or
# void wins each reservation, the others get ES010, and the money moved is
# what the winner posted.
#
# Reservations with a timeout of 1 second (on accounts s<k>-x -> s<k>-y of
# each session, with plenty of money and no cap, so that limits never depend
# on them) are posted or voided at once or after a pg_sleep: their outcome is
# judged from the recorded times (the post's transaction time against
# es_transfers.expires_at, 0.2 s either side of it undecided).  Readings of
# the contract as in test/pgtap/pending.sql: an over-post is ES009; posting an
# expired transfer gives ES010 or ES013, voiding one ES010; a void past the
# timeout may succeed (voided or expired) or fail with ES010 / ES013.
#
# The seed: ES_TEST_SEED (default 4242).
use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use List::Util qw(shuffle sum0);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;

my $seed = $ENV{ES_TEST_SEED} // 4242;
srand($seed);
note("seed $seed");
my $json = JSON::PP->new->canonical;

my $NS = 4;      # sessions
my $PER = 200;   # commands per session

my $node = es_node('pending_model', conf => "max_connections = 30\n");
my $dir = PostgreSQL::Test::Utils::tempdir;

sub sql { return $node->safe_psql('postgres', shift); }

sql(q{
CREATE EXTENSION es_ledger;
CREATE TABLE t_log (
	s    int NOT NULL,       -- session
	n    int NOT NULL,       -- command number in the session
	k    int NOT NULL,       -- 0, or the element of an es_apply_each array (1..)
	cmd  jsonb NOT NULL,
	got  text NOT NULL,      -- 'ok' or the SQLSTATE
	msg  text,
	seq  bigint,
	at   timestamptz NOT NULL,   -- the transaction time of the command
	PRIMARY KEY (s, n, k)
);
CREATE TABLE t_sched (at timestamptz NOT NULL, expired bigint NOT NULL);

-- One command through es_apply; never raises.
CREATE FUNCTION t_apply(s int, n int, c jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	r bigint;
	g text := 'ok';
	m text;
BEGIN
	BEGIN
		r := es_apply(c);
	EXCEPTION WHEN OTHERS THEN
		g := SQLSTATE;
		m := SQLERRM;
	END;
	INSERT INTO t_log VALUES (s, n, 0, c, g, m, r, now());
END $$;

-- An array through es_apply_each, one row per element; never raises.
CREATE FUNCTION t_apply_each(s int, n int, c jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO t_log
	SELECT s, n, i, c->(i - 1), CASE WHEN st IS NULL OR st = '00000' THEN 'ok' ELSE st END, m, q, now()
	  FROM (SELECT row_number() OVER (ORDER BY e.o)::int i, e.st, e.m, e.q
	          FROM es_apply_each(c) AS e(o, q, st, m)) x;
EXCEPTION WHEN OTHERS THEN
	INSERT INTO t_log SELECT s, n, i, c->(i - 1), 'each:' || SQLSTATE, SQLERRM, NULL, now()
	  FROM generate_series(1, jsonb_array_length(c)) i;
END $$;

CREATE FUNCTION t_expire() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO t_sched SELECT now(), es_expire_pending();
END $$;
});

# ------------------------------------------------------------------ model
my %acc;      # name => { cur, bal, pout, pin, od, max, status }
my %tr;       # id => { from, to, amount, pending, status, posted, exp }
my %anon;     # "from to amount" => count of immediate transfers without an id
my %ids;      # id => canonical command, for commands the model accepted
my %flow = (dep => 0, wd => 0);
my %expect;   # "s n k" => { acc => [codes] } or { retry => id } or { exp => ... }

my @setup;    # the opens and deposits, sent in one go
sub open_acc
{
	my ($name, $cur, $od, $max, $dep) = @_;
	push @setup, "SELECT es_open_account('$name', '$cur', $od, " . ($max // 'NULL') . ');';
	$acc{$name} = { cur => $cur, bal => 0, pout => 0, pin => 0, od => $od, max => $max, status => 'open' };
	if ($dep)
	{
		push @setup, "SELECT es_deposit('$name', $dep);";
		$acc{$name}{bal} = $dep;
		$flow{dep} += $dep if $cur eq 'USD';
	}
}

# Every rule command $c breaks; ('retry') for a retry of an accepted command.
sub check
{
	my ($c) = @_;
	my @r;
	if (defined $c->{id} && exists $ids{ $c->{id} })
	{
		return ('retry') if $ids{ $c->{id} } eq $json->encode($c);
		push @r, 'ES008';
	}
	my $t = $c->{type};
	my $amt = $c->{amount};
	if ($t eq 'transfer')
	{
		push @r, 'ES009' if $c->{from} eq $c->{to};
		push @r, 'ES009' if $c->{pending} && !defined $c->{id};
		my ($f, $g) = ($acc{ $c->{from} }, $acc{ $c->{to} });
		return (@r, 'ES003') if !$f || !$g;
		return @r if $f == $g;
		push @r, 'ES006' if $f->{cur} ne $g->{cur};
		push @r, 'ES005' if $f->{status} ne 'open' || $g->{status} ne 'open';
		push @r, 'ES001' if $f->{bal} - $f->{pout} - $amt < -$f->{od};
		push @r, 'ES002' if defined $g->{max} && $g->{bal} + $g->{pin} + $amt > $g->{max};
	}
	elsif ($t eq 'deposit' || $t eq 'withdraw' || $t eq 'close_account')
	{
		my $a = $acc{ $c->{account} };
		return (@r, 'ES003') if !$a;
		push @r, 'ES005' if $a->{status} ne 'open';
		push @r, 'ES002' if $t eq 'deposit' && defined $a->{max} && $a->{bal} + $a->{pin} + $amt > $a->{max};
		push @r, 'ES001' if $t eq 'withdraw' && $a->{bal} - $a->{pout} - $amt < -$a->{od};
		push @r, 'ES014' if $t eq 'close_account' && ($a->{bal} || $a->{pout} || $a->{pin});
	}
	else    # post_pending, void_pending
	{
		my $p = $tr{ $c->{pending_id} };
		push @r, 'ES010' if !$p || !$p->{pending} || $p->{status} ne 'pending';
		push @r, 'ES009' if $t eq 'post_pending' && defined $amt && ($amt <= 0 || ($p && $amt > $p->{amount}));
	}
	return @r;
}

# Apply an accepted command to the model.
sub mutate
{
	my ($c) = @_;
	my $t = $c->{type};
	my $amt = $c->{amount};
	$ids{ $c->{id} } = $json->encode($c) if defined $c->{id};
	if ($t eq 'transfer')
	{
		my ($f, $g) = ($acc{ $c->{from} }, $acc{ $c->{to} });
		if ($c->{pending})
		{
			$f->{pout} += $amt;
			$g->{pin} += $amt;
			$tr{ $c->{id} } = { from => $c->{from}, to => $c->{to}, amount => $amt, pending => 1,
				status => 'pending', posted => 0, exp => exists $c->{timeout} && $c->{timeout} == 1 };
			return;
		}
		$f->{bal} -= $amt;
		$g->{bal} += $amt;
		if (defined $c->{id})
		{
			$tr{ $c->{id} } = { from => $c->{from}, to => $c->{to}, amount => $amt, pending => 0,
				status => 'posted', posted => $amt };
		}
		else
		{
			$anon{"$c->{from} $c->{to} $amt"}++;
		}
	}
	elsif ($t eq 'deposit') { $acc{ $c->{account} }{bal} += $amt; $flow{dep} += $amt; }
	elsif ($t eq 'withdraw') { $acc{ $c->{account} }{bal} -= $amt; $flow{wd} += $amt; }
	elsif ($t eq 'close_account') { $acc{ $c->{account} }{status} = 'closed'; }
	else
	{
		my $p = $tr{ $c->{pending_id} };
		my ($f, $g) = ($acc{ $p->{from} }, $acc{ $p->{to} });
		$f->{pout} -= $p->{amount};
		$g->{pin} -= $p->{amount};
		if ($t eq 'post_pending')
		{
			my $a = $amt // $p->{amount};
			$f->{bal} -= $a;
			$g->{bal} += $a;
			$p->{status} = 'posted';
			$p->{posted} = $a;
		}
		else
		{
			$p->{status} = 'voided';
		}
	}
}

# The model's verdict on command $c (s, n, k); updates the model if accepted.
sub decide
{
	my ($s, $n, $k, $c) = @_;
	my @codes = check($c);
	if (@codes && $codes[0] eq 'retry')
	{
		$expect{"$s $n $k"} = { retry => $c->{id} };
	}
	elsif (@codes)
	{
		$expect{"$s $n $k"} = { acc => [ sort @codes ] };
	}
	else
	{
		$expect{"$s $n $k"} = { acc => ['ok'] };
		mutate($c);
	}
}

sub rnd { my ($lo, $hi) = @_; return $lo + int(rand($hi - $lo + 1)); }
sub pick { my @a = @_; return $a[ int(rand(@a)) ]; }

# ------------------------------------------------------------- accounts
# Per session k: sK-1 .. sK-5 (sK-4 capped at 20000, sK-5 may overdraw by
# 3000), sK-e in EUR, sK-x (10,000,000) -> sK-y for the 1-second
# reservations.  Shared: r-1 and r-2 for the race.
for my $s (1 .. $NS)
{
	for my $i (1 .. 5)
	{
		open_acc("s$s-$i", 'USD', $i == 5 ? 3000 : 0, $i == 4 ? 20000 : undef, rnd(5000, 12000));
	}
	open_acc("s$s-e", 'EUR', 0, undef, 0);
	open_acc("s$s-x", 'USD', 0, undef, 10000000);
	open_acc("s$s-y", 'USD', 0, undef, 0);
}
open_acc('r-1', 'USD', 0, undef, 1000000);
open_acc('r-2', 'USD', 0, undef, 0);
sql(join("\n", @setup));

# ------------------------------------------------------------ workload
my %exp_settle;   # "s n" => 1: a settle of a 1-second reservation, judged by time

sub gen_pending_id
{
	my ($s, $open) = @_;
	my @mine = grep { /^s$s-/ && $tr{$_}{pending} && !$tr{$_}{exp} } keys %tr;
	my @o = sort grep { $tr{$_}{status} eq 'pending' } @mine;
	my @f = sort grep { $tr{$_}{status} ne 'pending' } @mine;
	my $p = rand();
	return pick(@o) if $p < $open && @o;
	return pick(@f) if $p < 0.9 && @f;
	return "s$s-nope-" . rnd(1, 1000);
}

# A random single command of session $s; the model decides later.  Ids
# are made unique by a counter.
my $uid = 0;
sub gen
{
	my ($s) = @_;
	my $n = ++$uid;
	my @mine = map { "s$s-$_" } (1 .. 5);
	my $p = rand();
	my @ok_ids = sort grep { /^s$s-/ && $ids{$_} !~ /"timeout":1\b/ } keys %ids;
	if ($p < 0.04 && @ok_ids)
	{
		return $json->decode($ids{ pick(@ok_ids) });    # a retry
	}
	if ($p < 0.06 && @ok_ids)
	{
		return { type => 'deposit', account => "s$s-1", amount => rnd(1, 50), id => pick(@ok_ids) };   # ES008
	}
	$p = rand();
	my $other = rand() < 0.05 ? "s$s-e" : rand() < 0.03 ? 'ghost' : pick(@mine);
	if ($p < 0.27)
	{
		my $c = { type => 'transfer', pending => JSON::PP::true, id => "s$s-p$n", from => pick(@mine),
			to => $other, amount => rnd(1, 3500) };
		$c->{timeout} = 3600 if rand() < 0.5;
		delete $c->{id} if rand() < 0.02;
		return $c;
	}
	if ($p < 0.42)
	{
		my $pid = gen_pending_id($s, 0.75);
		my $c = { type => 'post_pending', pending_id => $pid };
		my $pamt = $tr{$pid} ? $tr{$pid}{amount} : 1000;
		my $q = rand();
		$c->{amount} = rnd(1, $pamt) if $q < 0.4;
		$c->{amount} = $pamt + rnd(1, 20) if $q >= 0.4 && $q < 0.44;
		$c->{id} = "s$s-post$n" if rand() < 0.7;
		return $c;
	}
	if ($p < 0.52)
	{
		my $c = { type => 'void_pending', pending_id => gen_pending_id($s, 0.75) };
		$c->{id} = "s$s-void$n" if rand() < 0.7;
		return $c;
	}
	if ($p < 0.75)
	{
		my $c = { type => 'transfer', from => pick(@mine), to => $other, amount => rnd(1, 3000) };
		$c->{id} = "s$s-t$n" if rand() < 0.5;
		return $c;
	}
	if ($p < 0.85)
	{
		my $c = { type => 'deposit', account => pick(@mine), amount => rnd(1, 4000) };
		$c->{id} = "s$s-d$n" if rand() < 0.3;
		return $c;
	}
	if ($p < 0.97)
	{
		return { type => 'withdraw', account => pick(@mine), amount => rnd(1, 3000) };
	}
	return { type => 'close_account', account => "s$s-3" };
}

sub sql_lit { my $t = shift; $t =~ s/'/''/g; return "'$t'"; }

my (@scripts, %exp_log);
for my $s (1 .. $NS)
{
	my @lines = ("SET client_min_messages = warning;");
	my @late;    # 1-second reservations settled after a pause
	my $n = 0;
	my $emit = sub { my ($c) = @_; $n++; push @lines, "SELECT t_apply($s, $n, " . sql_lit($json->encode($c)) . ');'; return $n; };
	for my $j (1 .. $PER)
	{
		my $p = rand();
		if ($p < 0.08)
		{
			# a 1-second reservation, settled at once or after a pause
			my $id = "s$s-x$j";
			my $c = { type => 'transfer', pending => JSON::PP::true, id => $id, from => "s$s-x", to => "s$s-y",
				amount => rnd(1, 100), timeout => 1 };
			my $cn = $emit->($c);
			$expect{"$s $cn 0"} = { acc => ['ok'] };
			mutate($c);
			my $settle = { type => rand() < 0.7 ? 'post_pending' : 'void_pending', pending_id => $id, id => "$id-settle" };
			$settle->{amount} = rnd(1, $c->{amount}) if $settle->{type} eq 'post_pending' && rand() < 0.3;
			if (rand() < 0.4)
			{
				$exp_log{"$s " . $emit->($settle)} = $settle;
			}
			elsif (rand() < 0.7)
			{
				push @late, $settle;
			}
			# else: left to expire
		}
		elsif ($p < 0.11)
		{
			# an array through es_apply_each, each element judged on its own
			my @cs = map { gen($s) } (1 .. rnd(2, 4));
			$n++;
			push @lines, "SELECT t_apply_each($s, $n, " . sql_lit($json->encode(\@cs)) . ');';
			my $k = 0;
			decide($s, $n, ++$k, $_) for @cs;
		}
		else
		{
			my $c = gen($s);
			my $cn = $emit->($c);
			decide($s, $cn, 0, $c);
		}
		if ($j % 70 == 0)
		{
			push @lines, 'SELECT pg_sleep(1.2);';
			$exp_log{"$s " . $emit->($_)} = $_ for @late;
			@late = ();
		}
	}
	my $file = "$dir/session$s.sql";
	open my $fh, '>', $file or die "$file: $!";
	print $fh join("\n", @lines), "\n";
	close $fh;
	push @scripts, $file;
}
my $sched = "$dir/scheduler.sql";
open my $fh, '>', $sched or die "$sched: $!";
print $fh "SELECT t_expire(); SELECT pg_sleep(0.25);\n" x 40;
close $fh;

# Run the sessions and the scheduler at once.
sub run_scripts
{
	my @files = @_;
	my (@h, @err);
	for my $i (0 .. $#files)
	{
		$err[$i] = '';
		push @h, IPC::Run::start([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-o', '/dev/null',
				'-d', $node->connstr('postgres'), '-f', $files[$i] ], '>', \my $out, '2>', \$err[$i]);
	}
	my @rc;
	for my $i (0 .. $#h)
	{
		$h[$i]->finish;
		push @rc, $h[$i]->result(0);
		diag("$files[$i]: $err[$i]") if $err[$i] ne '';
	}
	return @rc;
}
my @rc = run_scripts(@scripts, $sched);
is(join(' ', @rc), join(' ', (0) x ($NS + 1)), "$NS sessions and the scheduler ran to the end");

# ------------------------------------------------------------ judging
my %log;
for my $row (split /\n/, sql(q{SELECT s || '|' || n || '|' || k || '|' || got || '|' || coalesce(seq::text, '')
		|| '|' || extract(epoch FROM at) || '|' || coalesce(cmd->>'id', '') || '|' || coalesce(msg, '') FROM t_log}))
{
	my ($s, $n, $k, $got, $seq, $at, $id, $msg) = split /\|/, $row, 8;
	$log{"$s $n $k"} = { got => $got, seq => $seq, at => $at, id => $id, msg => $msg };
}
is(scalar(keys %log), scalar(keys %expect) + scalar(keys %exp_log), 'every command left one row in the log');

# the first seq of every id
my %first;
for my $key (sort { $log{$a}{at} <=> $log{$b}{at} } keys %log)
{
	my $l = $log{$key};
	$first{ $l->{id} } //= $l->{seq} if $l->{id} ne '' && $l->{got} eq 'ok' && $l->{seq} ne '';
}

my (@bad, $retries);
for my $key (sort keys %expect)
{
	my $e = $expect{$key};
	my $l = $log{$key} or next;
	if ($e->{retry})
	{
		$retries++;
		push @bad, "$key: retry of $e->{retry}: got $l->{got} seq $l->{seq}, first seq " . ($first{ $e->{retry} } // '?')
		  if $l->{got} ne 'ok' || $l->{seq} ne ($first{ $e->{retry} } // '');
	}
	elsif (!grep { $_ eq $l->{got} } @{ $e->{acc} })
	{
		push @bad, "$key: expected @{$e->{acc}}, got $l->{got} ($l->{msg})";
	}
}
my %outcomes;
$outcomes{ $_->{got} }++ for values %log;
note('outcomes: ' . join(' ', map { "$_=$outcomes{$_}" } sort keys %outcomes));
diag($_) for @bad[ 0 .. ($#bad < 20 ? $#bad : 19) ];
is(scalar(@bad), 0, 'every command (single or in es_apply_each) got the outcome the model says; retries the first seq');
cmp_ok($retries // 0, '>=', 10, 'the workload retried at least 10 commands');
is(join(' ', grep { !$outcomes{$_} } qw(ok ES001 ES002 ES003 ES006 ES008 ES009 ES010 ES014)), '',
	'the workload exercised ok, ES001-ES003, ES006, ES008-ES010, ES014');

# 1-second reservations: judged by the recorded times
my %expires;
for my $row (split /\n/, sql(q{SELECT transfer_id || '|' || coalesce(extract(epoch FROM expires_at)::text, '')
		FROM es_transfers WHERE transfer_id ~ '^s[0-9]+-x[0-9]+$'}))
{
	my ($id, $e) = split /\|/, $row;
	$expires{$id} = $e;
}
my @xbad;
my %xstat = (early => 0, late => 0);
for my $key (sort keys %exp_log)
{
	my $c = $exp_log{$key};
	my $l = $log{"$key 0"};
	my $p = $tr{ $c->{pending_id} };
	my $ex = $expires{ $c->{pending_id} };
	if (!$l || !defined $ex || $ex eq '')
	{
		push @xbad, "$key: no log row or no expires_at for $c->{pending_id}";
		next;
	}
	my @acc;
	if ($l->{at} < $ex - 0.2)
	{
		@acc = ('ok');
		$xstat{early}++;
	}
	elsif ($l->{at} > $ex + 0.2)
	{
		@acc = $c->{type} eq 'post_pending' ? qw(ES010 ES013) : qw(ok ES010 ES013);
		$xstat{late}++;
	}
	else
	{
		@acc = qw(ok ES010 ES013);
	}
	push @xbad, "$key: $c->{type} of $c->{pending_id} at $l->{at} (expires $ex): expected @acc, got $l->{got} ($l->{msg})"
	  unless grep { $_ eq $l->{got} } @acc;
	if ($l->{got} eq 'ok')
	{
		$acc{ $p->{from} }{pout} -= $p->{amount};
		$acc{ $p->{to} }{pin} -= $p->{amount};
		if ($c->{type} eq 'post_pending')
		{
			my $a = $c->{amount} // $p->{amount};
			$acc{ $p->{from} }{bal} -= $a;
			$acc{ $p->{to} }{bal} += $a;
			@$p{qw(status posted)} = ('posted', $a);
		}
		else
		{
			$p->{status} = $l->{at} > $ex + 0.2 ? 'voided|expired' : 'voided';
		}
	}
}
diag($_) for @xbad[ 0 .. ($#xbad < 20 ? $#xbad : 19) ];
is(scalar(@xbad), 0, 'posts and voids of 1-second reservations: ok before the timeout, ES013 / ES010 after');
cmp_ok($xstat{early}, '>=', 5, "at least 5 settled before their timeout ($xstat{early})");
cmp_ok($xstat{late}, '>=', 5, "at least 5 settled after their timeout ($xstat{late})");

# the scheduler ran while the sessions worked; one more call after the last timeout
sleep(2);
sql('SELECT t_expire()');
for my $p (values %tr)
{
	next unless $p->{exp} && $p->{status} eq 'pending';
	$acc{ $p->{from} }{pout} -= $p->{amount};
	$acc{ $p->{to} }{pin} -= $p->{amount};
	$p->{status} = 'expired';
}
my $nexpired = scalar(grep { $_->{status} eq 'expired' } values %tr);
cmp_ok($nexpired, '>=', 5, "at least 5 reservations expired ($nexpired)");
cmp_ok(sql('SELECT sum(expired) FROM t_sched'), '<=', sql(q{SELECT count(*) FROM es_transfers WHERE status = 'expired'}),
	'es_expire_pending() calls returned at most the number of expired transfers');
is(sql(q{SELECT count(*) FROM es_transfers WHERE status = 'pending' AND expires_at < now()}), '0',
	'no reservation past its timeout is left open');

# ---------------------------------------------------------------- the race
# 20 reservations r-1 -> r-2 of 1000; 4 sessions each post (part of) or void
# every one of them, in their own order.
sql(join("\n", map { "SELECT es_apply('{\"type\": \"transfer\", \"pending\": true, \"id\": \"race-$_\", \"from\": \"r-1\", \"to\": \"r-2\", \"amount\": 1000}');" } 1 .. 20));
my %race;    # "race-i" => { "s" => command }
my @rfiles;
for my $s (1 .. $NS)
{
	my @lines;
	my $n = 1000;
	for my $i (shuffle(1 .. 20))
	{
		my $c = rand() < 0.6
		  ? { type => 'post_pending', pending_id => "race-$i", id => "race-$i-s$s-post", amount => rnd(1, 1000) }
		  : { type => 'void_pending', pending_id => "race-$i", id => "race-$i-s$s-void" };
		delete $c->{amount} if $c->{amount} && rand() < 0.3;
		$n++;
		$race{"race-$i"}{"$s $n"} = $c;
		push @lines, "SELECT t_apply($s, $n, " . sql_lit($json->encode($c)) . ');';
	}
	my $file = "$dir/race$s.sql";
	open my $rf, '>', $file or die "$file: $!";
	print $rf join("\n", @lines), "\n";
	close $rf;
	push @rfiles, $file;
}
@rc = run_scripts(@rfiles);
is(join(' ', @rc), join(' ', (0) x $NS), "$NS sessions raced on 20 reservations");
my (@rbad, $moved);
my %rgot = map { split /\|/ } split /\n/, sql(q{SELECT s || ' ' || n || '|' || got FROM t_log WHERE n > 1000 AND k = 0});
for my $r (sort keys %race)
{
	my @ok;
	for my $sn (sort keys %{ $race{$r} })
	{
		my $got = $rgot{$sn} // 'missing';
		if ($got eq 'ok') { push @ok, $sn; }
		elsif ($got ne 'ES010') { push @rbad, "$r: $sn got $got"; }
	}
	if (@ok != 1)
	{
		push @rbad, "$r: " . scalar(@ok) . ' winners';
		next;
	}
	my $c = $race{$r}{ $ok[0] };
	my $want = $c->{type} eq 'void_pending' ? 'voided/0' : 'posted/' . ($c->{amount} // 1000);
	$moved += $c->{type} eq 'void_pending' ? 0 : ($c->{amount} // 1000);
	my $have = sql("SELECT status || '/' || coalesce(posted_amount, 0) FROM es_transfers WHERE transfer_id = '$r'");
	push @rbad, "$r: es_transfers $have, winner $ok[0] wants $want" if $have ne $want;
}
diag($_) for @rbad;
is(scalar(@rbad), 0, 'each raced reservation: exactly one post or void won, the others got ES010; es_transfers shows the winner');
$acc{'r-1'}{bal} -= $moved // 0;
$acc{'r-2'}{bal} += $moved // 0;

# ------------------------------------------------------------ the ledger
my @abad;
my %rows = map { my @f = split /\|/; ($f[0] => [ @f[ 1 .. 5 ] ]) }
  split /\n/, sql(q{SELECT account || '|' || balance || '|' || pending_out || '|' || pending_in || '|' || available || '|' || status FROM es_accounts});
for my $name (sort keys %acc)
{
	my $a = $acc{$name};
	my $want = join ' ', $a->{bal}, $a->{pout}, $a->{pin}, $a->{bal} - $a->{pout}, $a->{status};
	my $have = join ' ', @{ $rows{$name} // [] };
	push @abad, "$name: model $want, es_accounts $have" if $want ne $have;
}
diag($_) for @abad;
is(scalar(@abad), 0, 'every es_accounts row (balance, pending_out, pending_in, available, status) equals the model');

my %trows = map { my @f = split /\|/; ($f[0] => join(' ', @f[ 1 .. 5 ])) }
  split /\n/, sql(q{SELECT t.transfer_id || '|' || coalesce(f.account, t.from_account::text) || '|' || coalesce(g.account, t.to_account::text)
	|| '|' || t.amount || '|' || coalesce(t.posted_amount, 0) || '|' || t.status
	FROM es_transfers t
	LEFT JOIN es_accounts f ON t.from_account::text IN (f.account, f.account_id::text)
	LEFT JOIN es_accounts g ON t.to_account::text IN (g.account, g.account_id::text)});
my @tbad;
for my $id (sort keys %tr)
{
	my $p = $tr{$id};
	my $have = delete $trows{$id} // 'missing';
	my $ok = 0;
	for my $st (split /\|/, $p->{status})
	{
		$ok = 1 if $have eq join(' ', $p->{from}, $p->{to}, $p->{amount}, $p->{posted}, $st);
	}
	push @tbad, "$id: model $p->{from} $p->{to} $p->{amount} $p->{posted} $p->{status}, es_transfers $have" unless $ok;
}
for my $id (grep { !/^race-/ } keys %trows)
{
	my ($f, $t, $amt, $posted, $st) = split / /, $trows{$id};
	if ($st eq 'posted' && $posted == $amt && $anon{"$f $t $amt"})
	{
		$anon{"$f $t $amt"}--;
	}
	else
	{
		push @tbad, "$id: in es_transfers ($trows{$id}) but not in the model";
	}
}
push @tbad, "immediate transfer $_ without an id missing from es_transfers" for grep { $anon{$_} } keys %anon;
diag($_) for @tbad[ 0 .. ($#tbad < 20 ? $#tbad : 19) ];
is(scalar(@tbad), 0, 'every es_transfers row equals the model (pending, posted in full or in part, voided, expired, immediate)');

is(sql(q{SELECT count(*) FROM es_accounts a
	WHERE a.pending_out <> (SELECT coalesce(sum(amount), 0) FROM es_transfers t
	                         WHERE t.status = 'pending' AND t.from_account::text IN (a.account, a.account_id::text))
	   OR a.pending_in <> (SELECT coalesce(sum(amount), 0) FROM es_transfers t
	                        WHERE t.status = 'pending' AND t.to_account::text IN (a.account, a.account_id::text))}),
	'0', 'pending_out / pending_in of every account = its open reservations in es_transfers');
is(sql(q{SELECT sum(balance) FROM es_accounts WHERE currency = 'USD'}), $flow{dep} - $flow{wd},
	'money is conserved: sum of balances = deposits - withdrawals');
is(sql('SELECT count(*) FROM es_accounts a WHERE row(a.*) IS DISTINCT FROM es_replay(a.account)'), '0',
	'es_replay = es_accounts for every account');
is(sql(q{SELECT coalesce(string_agg(check_name || ': ' || coalesce(detail, ''), '; '), 'all ok') FROM es_verify() WHERE NOT ok}),
	'all ok', 'es_verify() all ok');
unlike(slurp_file($node->logfile), qr/TRAP|server process .* was terminated|PANIC/, 'no crash in the server log');

$node->stop;
done_testing();
