# 006_dump_restore.pl: pg_dump and pg_restore of a database holding a ledger.
#
# - pg_dump dumps the rows of es_events (in account_id, version order),
#   es_accounts, es_commands and es_transfers and the values of both
#   sequences.
# - A plain dump restored with psql, a custom dump restored with
#   pg_restore -j 2, an --inserts dump, and the log copied in seq order (so
#   that most rows find their predecessor earlier in the batch or by an index
#   probe, in two statements), all with es_ledger.restore on, give the
#   original rows of all four tables and the sequences (es_events.tx
#   aside: every restored event carries the restoring transaction's id, for
#   es_read); es_replay equals
#   es_accounts; a new command gets a seq above every old one; a retry of an
#   old id returns its original seq.
# - Without es_ledger.restore the restore fails with ES011 and loads nothing;
#   a dump with one event's amount changed (its hash kept), or with one event
#   left out (a version gap), is refused with ES012 naming the seq; a
#   non-superuser cannot set es_ledger.restore.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use EsLedger;

my $node = es_node('dump');
my $dir = PostgreSQL::Test::Utils::tempdir;
# set below, with the digest of the original: a restore of the log must match it
my $restore;

# Run a client program against the node, with extra environment (PGOPTIONS);
# returns its exit status, stdout and stderr.
sub run_client
{
	my ($env, @cmd) = @_;
	local %ENV = (%ENV, PGHOST => $node->host, PGPORT => $node->port, %$env);
	my ($stdout, $stderr) = ('', '');
	IPC::Run::run(\@cmd, '>', \$stdout, '2>', \$stderr);
	return ($? >> 8, $stdout, $stderr);
}

# ------------------------------------------------------------- the original
# Transfer number i (within a currency), with an id and metadata that COPY
# must escape; the retries below send it again.
my $transfer = q{es_apply(jsonb_build_object('type', 'transfer',
	'from', 'acct-' || f, 'to', 'acct-' || t, 'amount', i, 'id', 'tr ' || i || ' ü',
	'metadata', jsonb_build_object('n', i, 'note', E'tab\there "q" back\\\\slash ü\n')))};
my $transfers = q{generate_series(1, 500) i,
	LATERAL (SELECT (i * 7) % 24 + 1 AS f, (i * 11) % 24 + 1 AS t) p
	WHERE f <> t AND (f % 5 = 0) = (t % 5 = 0)};
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', qq{
	CREATE EXTENSION es_ledger;
	-- 24 accounts, every fifth in EUR; overdrafts, caps, some opened with ids
	SELECT count(es_open_account('acct-' || i, CASE WHEN i % 5 = 0 THEN 'EUR' ELSE 'USD' END,
			overdraft_limit => (i % 3) * 100,
			max_balance => CASE WHEN i % 7 = 0 THEN 10000000 END,
			id => CASE WHEN i % 2 = 0 THEN 'open-' || i END))
	  FROM generate_series(1, 24) i;
	-- deposits, a third with ids, a tenth with an effective_at
	SELECT count(es_apply(jsonb_build_object('type', 'deposit', 'account', 'acct-' || (i % 24 + 1),
			'amount', 1000 + i)
			|| CASE WHEN i % 3 = 0 THEN jsonb_build_object('id', 'dep-' || i) ELSE '{}' END
			|| CASE WHEN i % 10 = 0 THEN '{"effective_at": "2024-01-01T00:00:00Z"}'::jsonb ELSE '{}' END))
	  FROM generate_series(1, 300) i;
	SELECT count($transfer) FROM $transfers;
	SELECT es_apply('[{"type": "withdraw", "account": "acct-1", "amount": 50, "id": "w-1"},
					  {"type": "withdraw", "account": "acct-2", "amount": 60}]');
	SELECT es_apply('{"type": "set_limits", "account": "acct-3", "overdraft_limit": 500, "max_balance": null}');
	SELECT es_apply('{"type": "freeze_account", "account": "acct-4", "id": "fr-4"}');
	SELECT es_apply('{"type": "freeze_account", "account": "acct-6"}');
	SELECT es_apply('{"type": "unfreeze_account", "account": "acct-6"}');
	SELECT es_open_account('closing', 'USD', id => 'open-closing');
	SELECT es_deposit('closing', 500), es_transfer('closing', 'acct-1', 500, 'tr-close');
	SELECT es_apply('{"type": "close_account", "account": "closing", "id": "close-1"}');
	-- two-phase transfers: one still pending (with a timeout), one posted in part
	SELECT es_apply('{"type": "transfer", "from": "acct-1", "to": "acct-2", "amount": 40,
					  "pending": true, "id": "pend-1", "timeout": 86400}');
	SELECT es_apply('{"type": "transfer", "from": "acct-2", "to": "acct-3", "amount": 30,
					  "pending": true, "id": "pend-2"}');
	SELECT es_apply('{"type": "post_pending", "pending_id": "pend-2", "amount": 20, "id": "post-2"}');
});
# a rolled-back command leaves the sequences past the log's last seq
$node->safe_psql('src', q{
	BEGIN; SELECT es_open_account('gone', 'USD'); SELECT es_deposit('gone', 1); ROLLBACK;
});

my %q = (
	accounts => q{SELECT count(*) || E'\n' || string_agg(a::text, E'\n' ORDER BY account_id) FROM es_accounts a},
	# tx aside: a restore stamps the restoring transaction's id (es_read)
	events => q{SELECT count(*) || ' ' || md5(string_agg((to_jsonb(e) - 'tx')::text, E'\n' ORDER BY seq)) FROM es_events e},
	commands => q{SELECT count(*) || ' ' || md5(string_agg(c::text, E'\n' ORDER BY command_id)) FROM es_commands c},
	transfers => q{SELECT count(*) || ' ' || md5(string_agg(t::text, E'\n' ORDER BY seq)) FROM es_transfers t},
	sequences => q{SELECT (SELECT last_value || ' ' || is_called FROM es_events_seq_seq) || ', '
				   || (SELECT last_value || ' ' || is_called FROM es_accounts_account_id_seq)},);
my %orig = map { $_ => $node->safe_psql('src', $q{$_}) } keys %q;
my $orig_tx = $node->safe_psql('src', q{SELECT string_agg(DISTINCT tx::text, ',') FROM es_events});
my ($nevents) = split / /, $orig{events};
cmp_ok($nevents, '>', 700, "the original ledger holds $nevents events");
my $max_seq = $node->safe_psql('src', 'SELECT max(seq) FROM es_events');
my $max_account = $node->safe_psql('src', 'SELECT max(account_id) FROM es_accounts');
my $dep3_seq = $node->safe_psql('src', q{SELECT seq FROM es_commands WHERE command_id = 'dep-3'});
my $tr7_seq = $node->safe_psql('src', q{SELECT seq FROM es_commands WHERE command_id = 'tr 7 ü'});
my ($digest_seq, $digest) = split /\|/, $node->safe_psql('src', 'SELECT seq, digest FROM es_digest()');
(my $digest_hex = $digest) =~ s/^\\x//;
$restore = "-c es_ledger.restore=on -c es_ledger.restore_digest=$digest_hex";
is($node->safe_psql('src', q{SELECT bool_and(ok) FROM es_verify()}), 't', 'the original ledger verifies');
# snapshots are derived data: the original has some, a dump does not keep them
is($node->safe_psql('src', q{SELECT count(es_snapshot(account)) > 0 FROM es_accounts}), 't',
	'the original ledger has snapshots (es_snapshot of every account)');

# Every check of a restored database against the original.
sub check_restored
{
	my ($db, $how) = @_;
	for my $what (sort keys %q)
	{
		is($node->safe_psql($db, $q{$what}), $orig{$what}, "$how: $what as in the original");
	}
	is( $node->safe_psql(
			$db, qq{SELECT count(DISTINCT tx) || ' ' || bool_and(tx::text <> ALL (string_to_array('$orig_tx', ',')))
					FROM es_events}),
		'1 true', "$how: every event carries the restoring transaction's tx, none an original one");
	is( $node->safe_psql(
			$db, q{SELECT count(*) FILTER (WHERE r IS DISTINCT FROM a) || '/' || count(*)
					FROM es_accounts a, LATERAL es_replay(a.account) r}),
		'0/25', "$how: es_replay equals es_accounts for every account");
	is($node->safe_psql($db, q{SELECT count(*) FROM es_snapshots}), '0',
		"$how: no snapshot was restored (derived data, not dumped)");
	# an old id retried: its original seq, even on the account frozen since
	is($node->safe_psql($db, q{SELECT string_agg(check_name || '=' || ok, ',') FROM es_verify()}),
		'checksum=true,hash_chain=true,versions=true,events=true,projection=true,conservation=true,commands=true,snapshots=true',
		"$how: es_verify passes every check");
	is($node->safe_psql($db, "SELECT es_verify_digest($digest_seq, '$digest')"), 't',
		"$how: the original's digest holds");
	is($node->safe_psql($db, q{SELECT es_deposit('acct-4', 1003, 'dep-3')}),
		$dep3_seq, "$how: a retry of an old id returns its original seq");
	is( $node->safe_psql(
			$db, "SELECT $transfer FROM (SELECT 7 AS i) s, LATERAL (SELECT (i * 7) % 24 + 1 AS f, (i * 11) % 24 + 1 AS t) p"),
		$tr7_seq, "$how: ... also a transfer with metadata");
	my ($ret, $out, $err) = $node->psql($db, qq{
		SELECT es_deposit('acct-1', 7, 'after-restore') > $max_seq,
			   es_open_account('new-' || current_database(), 'USD') > $max_seq;
		SELECT account_id > $max_account FROM es_accounts WHERE account = 'new-' || current_database();});
	is($out, "t|t\nt", "$how: new commands get a seq and account_id above every old one");
	is($err, '', "$how: ... with no sequence to heal (no WARNING)");
	is($node->safe_psql($db, q{SELECT es_apply('{"type": "post_pending", "pending_id": "pend-1", "amount": 25}') > 0;
			SELECT status || ' ' || posted_amount FROM es_transfers WHERE transfer_id = 'pend-1';
			SELECT pending_out FROM es_accounts WHERE account = 'acct-1'}),
		"t\nposted 25\n0", "$how: the reservation restored pending is posted");
	is( $node->safe_psql(
			$db, q{SELECT count(*) FILTER (WHERE r IS DISTINCT FROM a) || '/' || count(*)
					FROM es_accounts a, LATERAL es_replay(a.account) r}),
		'0/26', "$how: es_replay equals es_accounts after the new commands");
	is($node->safe_psql($db, q{SELECT bool_and(ok) FROM es_verify()}), 't',
		"$how: es_verify passes after the new commands");
	return;
}

# -------------------------------------------------- plain dump, psql restore
my $plain = "$dir/plain.sql";
my $t0 = time;
$node->command_ok([ 'pg_dump', '-d', 'src', '-f', $plain ], 'pg_dump (plain)');
my $plain_text = slurp_file($plain);
like($plain_text, qr/^COPY public\.es_events \(seq, account_id, version,/m,
	'the plain dump holds the log');
like($plain_text, qr/^SELECT pg_catalog\.setval\('public\.es_events_seq_seq', \d+, true\);/m,
	'... and the sequences\' values');

$node->safe_psql('postgres', 'CREATE DATABASE r_plain');
my ($ret, $out, $err) = run_client({ PGOPTIONS => $restore },
	'psql', '-X', '-q', '-1', '-v', 'ON_ERROR_STOP=1', '-d', 'r_plain', '-f', $plain);
is($ret, 0, 'plain dump restored with psql -1 and es_ledger.restore on');
is($err, '', '... without an error or warning');
check_restored('r_plain', 'plain');

# ------------------------------------------- custom dump, pg_restore -j 2
my $custom = "$dir/custom.dump";
$node->command_ok([ 'pg_dump', '-Fc', '-d', 'src', '-f', $custom ], 'pg_dump -Fc');
$node->safe_psql('postgres', 'CREATE DATABASE r_custom');
($ret, $out, $err) = run_client({ PGOPTIONS => $restore },
	'pg_restore', '-j', '2', '--exit-on-error', '-d', 'r_custom', $custom);
is($ret, 0, 'custom dump restored with pg_restore -j 2 and es_ledger.restore on');
is($err, '', '... without an error or warning');
check_restored('r_custom', 'custom');

# ------------------------------------------------ INSERT statements instead
my $inserts = "$dir/inserts.sql";
$node->command_ok([ 'pg_dump', '--inserts', '-d', 'src', '-f', $inserts ],
	'pg_dump --inserts');
$node->safe_psql('postgres', 'CREATE DATABASE r_inserts');
($ret, $out, $err) = run_client({ PGOPTIONS => $restore },
	'psql', '-X', '-q', '-1', '-v', 'ON_ERROR_STOP=1', '-d', 'r_inserts', '-f', $inserts);
is($ret, 0, 'an --inserts dump restored with es_ledger.restore on');
check_restored('r_inserts', 'inserts');

# ---------- the log in seq order, in two statements of one transaction:
# predecessors found in the batch and by index probes, also of rows the
# first statement stored
$node->safe_psql('src', qq{
	COPY (SELECT * FROM es_events WHERE version <= 3 ORDER BY seq) TO '$dir/ev1.tsv';
	COPY (SELECT * FROM es_events WHERE version > 3 ORDER BY seq) TO '$dir/ev2.tsv';
	COPY es_accounts TO '$dir/acc.tsv';
	COPY es_commands TO '$dir/cmd.tsv';
	COPY es_transfers TO '$dir/tr.tsv';
});
my $seqs = $node->safe_psql('src', q{
	SELECT format('SELECT setval(%L, %s, %L), setval(%L, %s, %L);',
				  'es_events_seq_seq', e.last_value, e.is_called,
				  'es_accounts_account_id_seq', a.last_value, a.is_called)
	  FROM es_events_seq_seq e, es_accounts_account_id_seq a});
$node->safe_psql('postgres', 'CREATE DATABASE r_seq');
$node->safe_psql('r_seq', 'CREATE EXTENSION es_ledger');
($ret, $out, $err) = run_client({ PGOPTIONS => $restore },
	'psql', '-X', '-q', '-1', '-v', 'ON_ERROR_STOP=1', '-d', 'r_seq',
	'-c', "COPY es_events FROM '$dir/ev1.tsv'", '-c', "COPY es_events FROM '$dir/ev2.tsv'",
	'-c', "COPY es_accounts FROM '$dir/acc.tsv'", '-c', "COPY es_commands FROM '$dir/cmd.tsv'",
	'-c', "COPY es_transfers FROM '$dir/tr.tsv'", '-c', $seqs);
is($ret, 0, 'seq order: the log copied in seq order, in two statements') or diag($err);
check_restored('r_seq', 'seq order');
note('the four good restores and their checks took ' . (time - $t0) . ' s');

# ------------------- what es_ledger.restore opens, and what it keeps shut
# In a restored ledger, with es_ledger.restore on, changes stay refused
# (ES011).
my $before = $node->safe_psql('r_plain', $q{events});
for my $case (
	[ 'UPDATE es_accounts SET balance = 0', qr/ES011: cannot update projection "es_accounts"/ ],
	[ 'DELETE FROM es_commands', qr/ES011: cannot delete from projection "es_commands"/ ],
	[ 'TRUNCATE es_accounts', qr/ES011: cannot truncate projection "es_accounts"/ ],
	[ 'UPDATE es_events SET amount = 0', qr/ES011: cannot update "es_events"/ ],
	[ 'TRUNCATE es_events', qr/ES011: cannot truncate "es_events"/ ])
{
	my ($sql, $expect) = @$case;
	($ret, $out, $err) = run_client({ PGOPTIONS => $restore },
		'psql', '-X', '-q', '-v', 'VERBOSITY=verbose', '-d', 'r_plain', '-c', $sql);
	like($err, $expect, "restore mode: $sql");
}
is($node->safe_psql('r_plain', $q{events}), $before, 'restore mode: ... and the log is unchanged');

# Events that do not chain, after the first three versions of every
# account restored in the same transaction: ES012.
$node->safe_psql('postgres', 'CREATE DATABASE r_bad');
$node->safe_psql('r_bad', 'CREATE EXTENSION es_ledger');
my $last = '(SELECT max(seq) FROM es_events WHERE account_id = 1)';
my $cols = 'account_id, type, amount, data, command_id, recorded_at, effective_at, checksum, hash';
for my $case (
	[ 'a copy of an event as the next version',
		"SELECT seq + 100000, version + 1, format, $cols FROM es_events WHERE seq = $last",
		qr/ES012: restored event seq \d+ does not verify\nDETAIL:  .*: its checksum does not match/ ],
	[ 'a seq below the previous version\'s',
		"SELECT 0, version + 1, format, $cols FROM es_events WHERE seq = $last",
		qr/ES012: restored event seq 0 does not verify\nDETAIL:  .*: its seq is not above the seq \d+ of version 3/ ],
	[ 'format 2',
		"SELECT seq + 100000, version + 1, 2, $cols FROM es_events WHERE seq = $last",
		qr/ES012: es_events row seq \d+ is damaged: its format version 2 is not one this library knows/ ],
	[ 'an unknown type',
		"SELECT seq + 100000, version + 1, format, account_id, 'Stolen', amount, data, command_id,
				recorded_at, effective_at, checksum, hash FROM es_events WHERE seq = $last",
		qr/ES012: .*\nDETAIL:  .*: its type is not an event type/ ],
	[ 'version 0',
		"SELECT seq + 100000, 0, format, $cols FROM es_events WHERE seq = $last",
		qr/ES012: .*\nDETAIL:  .*: versions start at 1/ ],
	[ 'a gap',
		"SELECT seq + 100000, version + 2, format, $cols FROM es_events WHERE seq = $last",
		qr/ES012: .*\nDETAIL:  .*: version 4 of its account is neither in the log nor restored before it/ ],
	[ 'another account\'s first event',
		"SELECT seq + 100000, 1, format, 999, type, amount, data, command_id,
				recorded_at, effective_at, checksum, hash FROM es_events WHERE seq = 1",
		qr/ES012: .*\nDETAIL:  .*account_id 999, version 1\): its checksum does not match/ ])
{
	my ($name, $select, $expect) = @$case;
	($ret, $out, $err) = run_client({ PGOPTIONS => $restore },
		'psql', '-X', '-q', '-1', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-d', 'r_bad',
		'-c', "COPY es_events FROM '$dir/ev1.tsv'",
		'-c', "INSERT INTO es_events (seq, version, format, $cols) $select");
	like($err, $expect, "restore mode: $name refused");
}
is($node->safe_psql('r_bad', 'SELECT count(*) FROM es_events'), '0',
	'restore mode: ... and nothing stored');

# ------------------------------------------------------- refused restores
# Into a ledger that holds rows: refused, table by table (ES011).
my $counts = q{SELECT (SELECT count(*) FROM es_events) || ' ' || (SELECT count(*) FROM es_accounts)
					  || ' ' || (SELECT count(*) FROM es_commands)};
my $counts_before = $node->safe_psql('r_seq', $counts);
for my $case ([ 'es_events', 'ev2.tsv' ], [ 'es_accounts', 'acc.tsv' ], [ 'es_commands', 'cmd.tsv' ])
{
	my ($table, $file) = @$case;
	($ret, $out, $err) = run_client({ PGOPTIONS => $restore },
		'psql', '-X', '-q', '-v', 'VERBOSITY=verbose', '-d', 'r_seq',
		'-c', "COPY $table FROM '$dir/$file'");
	like($err, qr/ES011: cannot restore into "$table": it already holds rows/,
		"a restore into a ledger in use is refused: $table");
}
is($node->safe_psql('r_seq', $counts), $counts_before, '... and adds nothing');

# Without es_ledger.restore: ES011, and with -1 nothing at all is left.
$node->safe_psql('postgres', 'CREATE DATABASE r_noguc');
($ret, $out, $err) = run_client({},
	'psql', '-X', '-q', '-1', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
	'-d', 'r_noguc', '-f', $plain);
isnt($ret, 0, 'without es_ledger.restore the plain restore fails');
like($err, qr/ERROR:  ES011: cannot insert into projection "es_accounts"/, '... with ES011');
like($err, qr/HINT:  .*es_ledger\.restore = on/, '... and a hint at es_ledger.restore');
is($node->safe_psql('r_noguc', q{SELECT count(*) FROM pg_extension WHERE extname = 'es_ledger'}),
	'0', '... and -1 left nothing behind');

# pg_restore without it: every table refused, none partly loaded
$node->safe_psql('postgres', 'CREATE DATABASE r_noguc2');
($ret, $out, $err) = run_client({}, 'pg_restore', '-d', 'r_noguc2', $custom);
isnt($ret, 0, 'without es_ledger.restore pg_restore fails');
like($err, qr/cannot insert into "es_events" directly/, '... on es_events');
like($err, qr/cannot insert into projection "es_accounts"/, '... on es_accounts');
like($err, qr/cannot insert into projection "es_commands"/, '... on es_commands');
is( $node->safe_psql(
		'r_noguc2', q{SELECT (SELECT count(*) FROM es_events) + (SELECT count(*) FROM es_accounts)
						   + (SELECT count(*) FROM es_commands)}),
	'0', '... and loaded no row');

# A restore of a changed dump, refused with ES012 naming the seq.
sub refused_restore
{
	my ($name, $text, $seq, $why) = @_;
	my $file = "$dir/$name.sql";
	open(my $fh, '>', $file) or die "could not write $file: $!";
	print $fh $text;
	close($fh);
	$node->safe_psql('postgres', "CREATE DATABASE $name");
	my ($ret, $out, $err) = run_client({ PGOPTIONS => $restore },
		'psql', '-X', '-q', '-1', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
		'-d', $name, '-f', $file);
	isnt($ret, 0, "$name: refused");
	like($err, qr/ERROR:  ES012: restored event seq $seq does not verify/,
		"$name: ES012 naming seq $seq");
	like($err, $why, "$name: ... saying why");
	is($node->safe_psql($name, q{SELECT count(*) FROM pg_extension WHERE extname = 'es_ledger'}),
		'0', "$name: nothing restored");
	return;
}

# One deposit's amount raised, its checksum and hash kept.
my $forged_seq = $node->safe_psql('src', q{
	SELECT seq FROM es_events WHERE type = 'Deposited' AND version > 2 ORDER BY seq OFFSET 40 LIMIT 1});
(my $forged = $plain_text) =~ s/^($forged_seq\t\d+\t\d+\tDeposited\t)(\d+)\t/$1 . ($2 + 1000000) . "\t"/me
  or die "event $forged_seq not found in the dump";
refused_restore('r_forged', $forged, $forged_seq, qr/checksum does not match/);

# The hash of that event replaced (its checksum, which does not cover the
# hash, still right): refused by the hash check.
(my $forged_hash = $plain_text) =~
  s/^($forged_seq\t(?:[^\t\n]*\t){9})\\\\x[0-9a-f]{64}\t/$1 . '\\\\x' . ('0' x 64) . "\t"/me
  or die "event $forged_seq not found in the dump";
refused_restore('r_forged_hash', $forged_hash, $forged_seq, qr/hash does not match/);

# One event in the middle of an account left out: the next one is refused.
my ($gap_seq, $next_seq) = split /\|/, $node->safe_psql('src', q{
	SELECT e.seq, n.seq FROM es_events e JOIN es_events n ON n.account_id = e.account_id
	   AND n.version = e.version + 1
	 WHERE e.version = 4 ORDER BY e.account_id OFFSET 5 LIMIT 1});
(my $gapped = $plain_text) =~ s/^$gap_seq\t\d+\t\d+\t[A-Za-z]+\t[^\n]*\n//m
  or die "event $gap_seq not found in the dump";
refused_restore('r_gap', $gapped, $next_seq, qr/version 4 of its account is neither in the log nor restored before it/);

# ----------------------------------- a consistent forgery, and the digest
# Whoever edits a dump can recompute its checksums and hash chains: here an
# account's last event, a withdrawal, is left out and its es_accounts row
# made to match.  Every check of the restore and of es_verify passes; only
# the digest kept outside the dump sees it, and the restore refuses it.
$node->safe_psql('postgres', 'CREATE DATABASE src2');
$node->safe_psql('src2', q{CREATE EXTENSION es_ledger;
	SELECT es_open_account('f-1', 'USD'), es_open_account('f-2', 'USD');
	SELECT es_deposit('f-1', 100), es_transfer('f-1', 'f-2', 10), es_withdraw('f-1', 30)});
my ($d2_seq, $d2) = split /\|/, $node->safe_psql('src2', 'SELECT seq, encode(digest, \'hex\') FROM es_digest()');
my $w_seq = $node->safe_psql('src2', q{SELECT seq FROM es_events WHERE type = 'Withdrawn'});
# the es_accounts row as it stood before the withdrawal, in COPY's text format
my $forged_row = $node->safe_psql('src2', q{
	COPY (SELECT a.account_id, a.account, a.currency, a.status, a.balance + 30, a.pending_out, a.pending_in,
				 a.available + 30, a.overdraft_limit, a.max_balance, a.version - 1, p.seq, a.opened_at,
				 p.recorded_at, p.hash
			FROM es_accounts a JOIN es_events p ON p.account_id = a.account_id AND p.version = a.version - 1
		   WHERE a.account = 'f-1') TO STDOUT});
$node->command_ok([ 'pg_dump', '-d', 'src2', '-f', "$dir/src2.sql" ], 'pg_dump of a second ledger');
my $src2_text = slurp_file("$dir/src2.sql");
(my $forged2 = $src2_text) =~ s/^$w_seq\t\d+\t\d+\tWithdrawn\t[^\n]*\n//m
  or die "event $w_seq not found in the dump";
$forged_row =~ /^(\d+)\t/ or die "no forged row";
my $f1_id = $1;
$forged2 =~ s/^$f1_id\tf-1\t[^\n]*$/$forged_row/m or die "account f-1 not found in the dump";
open(my $ffh, '>', "$dir/forged2.sql") or die "could not write: $!";
print $ffh $forged2;
close($ffh);

# restored with the digest taken before the dump: refused, nothing left
$node->safe_psql('postgres', 'CREATE DATABASE r_forged2');
($ret, $out, $err) = run_client({ PGOPTIONS => "-c es_ledger.restore=on -c es_ledger.restore_digest=$d2" },
	'psql', '-X', '-q', '-1', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-d', 'r_forged2',
	'-f', "$dir/forged2.sql");
isnt($ret, 0, 'a consistently forged dump is refused with the digest taken before the dump');
like($err, qr/ERROR:  ES012: the restored es_ledger log does not match es_ledger.restore_digest/,
	'... ES012: the log does not match the digest');
is($node->safe_psql('r_forged2', q{SELECT count(*) FROM pg_extension WHERE extname = 'es_ledger'}),
	'0', '... and nothing is restored');
# the honest dump with the same digest restores, without a warning
$node->safe_psql('postgres', 'CREATE DATABASE r_honest2');
($ret, $out, $err) = run_client({ PGOPTIONS => "-c es_ledger.restore=on -c es_ledger.restore_digest=\\\\x$d2" },
	'psql', '-X', '-q', '-1', '-v', 'ON_ERROR_STOP=1', '-d', 'r_honest2', '-f', "$dir/src2.sql");
is($ret, 0, 'the honest dump restores with the digest (given with its \\x)') or diag($err);
is($err, '', '... without an error or warning');
is($node->safe_psql('r_honest2', q{SELECT balance FROM es_accounts WHERE account = 'f-1'}), '60',
	'... and f-1 has its balance');
# without a digest the restore fails and says what to do
$node->safe_psql('postgres', 'CREATE DATABASE r_nodigest');
($ret, $out, $err) = run_client({ PGOPTIONS => '-c es_ledger.restore=on' },
	'psql', '-X', '-q', '-1', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-d', 'r_nodigest',
	'-f', "$dir/src2.sql");
isnt($ret, 0, 'a restore of the log without es_ledger.restore_digest fails');
like($err, qr/ERROR:  55000: a restore of the es_ledger log needs es_ledger.restore_digest/,
	'... 55000, naming the setting');
like($err, qr/HINT:  Set es_ledger.restore_digest to the digest es_digest\(\) gave/, '... and a hint');
# an invalid digest is refused when it is set (the library loaded)
($ret, $out, $err) = $node->psql('src2', q{SELECT count(*) FROM es_events; SET es_ledger.restore_digest = '4553444700'},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  22023: invalid value for es_ledger.restore_digest/, 'a malformed digest: 22023');
# with none, the forged dump restores: every check passes; only the digest
# kept outside sees it (what README's Backup and restore says)
$node->safe_psql('postgres', 'CREATE DATABASE r_forged_none');
($ret, $out, $err) = run_client({ PGOPTIONS => '-c es_ledger.restore=on -c es_ledger.restore_digest=none' },
	'psql', '-X', '-q', '-1', '-v', 'ON_ERROR_STOP=1', '-d', 'r_forged_none', '-f', "$dir/forged2.sql");
is($ret, 0, 'with es_ledger.restore_digest = none the forged dump restores') or diag($err);
like($err, qr/WARNING:  the restored es_ledger log was not checked against a digest/, '... with a WARNING');
is($node->safe_psql('r_forged_none', q{SELECT string_agg(check_name || '=' || ok, ',') FROM es_verify()}),
	'checksum=true,hash_chain=true,versions=true,events=true,projection=true,conservation=true,commands=true,snapshots=true',
	'... every check of es_verify passes on the forgery');
is( $node->safe_psql(
		'r_forged_none', q{SELECT count(*) FROM es_accounts a, LATERAL es_replay(a.account) r
							WHERE r IS DISTINCT FROM a}),
	'0', '... and so does the post-restore query');
is($node->safe_psql('r_forged_none', "SELECT es_verify_digest($d2_seq, '\\x$d2')"), 'f',
	'... but es_verify_digest with the digest kept outside says false');
# a digest older than the dump: the events after it are counted in a WARNING
$node->safe_psql('src2', q{SELECT es_deposit('f-2', 5)});
$node->command_ok([ 'pg_dump', '-d', 'src2', '-f', "$dir/src2b.sql" ], 'pg_dump after one more command');
$node->safe_psql('postgres', 'CREATE DATABASE r_later');
($ret, $out, $err) = run_client({ PGOPTIONS => "-c es_ledger.restore=on -c es_ledger.restore_digest=$d2" },
	'psql', '-X', '-q', '-1', '-v', 'ON_ERROR_STOP=1', '-d', 'r_later', '-f', "$dir/src2b.sql");
is($ret, 0, 'a dump taken after the digest restores') or diag($err);
like($err, qr/WARNING:  1 restored events come after the digest's seq $d2_seq/,
	'... with a WARNING counting the events the digest does not cover');

# ---------------------------------------------------- who may set the GUC
$node->safe_psql('postgres', 'CREATE ROLE mallory LOGIN IN ROLE es_ledger_reader');
($ret, $out, $err) = $node->psql('src', q{
	\set VERBOSITY verbose
	SELECT count(*) > 0 FROM es_events;
	SET es_ledger.restore = on;},
	extra_params => [ '-U', 'mallory' ]);
like($err, qr/ERROR:  42501: permission denied to set parameter "es_ledger.restore"/,
	'a non-superuser cannot SET es_ledger.restore (42501)');
($ret, $out, $err) = run_client({ PGOPTIONS => $restore },
	'psql', '-X', '-A', '-t', '-U', 'mallory', '-d', 'src', '-c',
	'SELECT count(*) > 0 FROM es_events', '-c', 'SHOW es_ledger.restore');
like($err, qr/WARNING:  permission denied to set parameter "es_ledger.restore"/,
	'... nor through PGOPTIONS (WARNING when the library loads)');
like($out, qr/^t\noff$/, '... which leaves it off');

done_testing();
