# test/t/021_reverse_restore.pl
#
# Reversal links through pg_dump and restore (security issue 14, Medium 1):
# the link lives in es_commands (top-level "reverses", es_reverse's only)
# and in the events' data, and es_commands_reverses_idx is rebuilt by the
# restore.  After a plain dump restored with es_ledger.restore on: a
# reversed command is still refused a second reversal (ES008) and its retry
# returns its seq, a writer's forged metadata still blocks nothing, and
# es_verify passes.  A dump whose es_commands carries a planted link is
# restored as it is (a restore copies es_commands unchecked) but es_verify's
# commands check finds it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('reverse_restore');
$node->init;
$node->start;
my $dir = PostgreSQL::Test::Utils::tempdir;

sub run_client
{
	my ($env, @cmd) = @_;
	local %ENV = (%ENV, PGHOST => $node->host, PGPORT => $node->port, %$env);
	my ($stdout, $stderr) = ('', '');
	IPC::Run::run(\@cmd, '>', \$stdout, '2>', \$stderr);
	return ($? >> 8, $stdout, $stderr);
}

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
CREATE EXTENSION es_ledger;
SELECT es_open_account('a', 'USD'), es_open_account('b', 'USD');
SELECT es_deposit('a', 100, 'pay-1'), es_deposit('a', 50, 'pay-2');
SELECT es_transfer('a', 'b', 30, 'xfer-1');
SELECT es_apply('{"type": "deposit", "account": "a", "amount": 1, "id": "forge", "metadata": {"reverses": "pay-2"}}');
SELECT es_reverse('pay-1', 'undo-1'), es_reverse('xfer-1', 'undo-x');
});
my $undo1 = $node->safe_psql('src', q{SELECT seq FROM es_commands WHERE command_id = 'undo-1'});

# the digest kept outside the dump, which the restore must match
my $restore = '-c es_ledger.restore=on -c es_ledger.restore_digest='
  . $node->safe_psql('src', q{SELECT encode(digest, 'hex') FROM es_digest()});
my $plain = "$dir/plain.sql";
$node->command_ok([ 'pg_dump', '-d', 'src', '-f', $plain ], 'pg_dump (plain)');
$node->safe_psql('postgres', 'CREATE DATABASE r1');
my ($ret, $out, $err) = run_client({ PGOPTIONS => $restore },
	'psql', '-X', '-q', '-1', '-v', 'ON_ERROR_STOP=1', '-d', 'r1', '-f', $plain);
is($ret, 0, 'plain dump restored') or diag($err);

is($node->safe_psql('r1', q{SELECT count(*) FROM es_commands WHERE command ? 'reverses'}), '2',
	'the restored register holds both links');
is($node->safe_psql('r1', q{SELECT indisvalid FROM pg_index WHERE indexrelid = 'es_commands_reverses_idx'::regclass}),
	't', 'es_commands_reverses_idx is there and valid');
($ret, $out, $err) = $node->psql('r1', q{SELECT es_reverse('pay-1', 'undo-1b')});
like($err, qr/command "pay-1" was already reversed by command "undo-1"/,
	'a reversed command is refused a second reversal after the restore (ES008)');
is($node->safe_psql('r1', q{SELECT es_reverse('pay-1', 'undo-1')}), $undo1,
	'... and the retry of its reversal returns its seq');
($ret, $out, $err) = $node->psql('r1', q{SELECT es_reverse('pay-2', 'undo-2') > 0});
is($out, 't', 'the forged metadata blocks nothing after the restore') or diag($err);
is($node->safe_psql('r1', q{SELECT bool_and(ok) FROM es_verify()}), 't', 'es_verify passes');

# A dump with a link planted in es_commands: restored as is, found by
# es_verify.  (A planted link that a writer's forged metadata in the events
# matches passes: a 0.3.0 reversal carried its link as metadata and cannot
# be told apart; doc/reference.md, es_reverse.)
my $text = slurp_file($plain);
my $planted = $text =~ s/^(pay-2\t\{[^\t\n]*)\}\t/$1, "reverses": "forge"}\t/mr;
isnt($planted, $text, 'a link from pay-2 to forge planted in the dump of es_commands');
open(my $fh, '>', "$dir/planted.sql") or die;
print $fh $planted;
close($fh);
$node->safe_psql('postgres', 'CREATE DATABASE r2');
($ret, $out, $err) = run_client({ PGOPTIONS => $restore },
	'psql', '-X', '-q', '-1', '-v', 'ON_ERROR_STOP=1', '-d', 'r2', '-f', "$dir/planted.sql");
is($ret, 0, 'the planted dump restores (es_commands is copied unchecked)') or diag($err);
like($node->safe_psql('r2', q{SELECT ok || ' ' || detail FROM es_verify() WHERE check_name = 'commands'}),
	qr/^false .*command id "pay-2" says it reverses "forge", which its events do not/,
	'es_verify finds the planted link');

$node->stop;
done_testing();
