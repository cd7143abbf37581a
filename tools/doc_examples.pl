#!/usr/bin/perl
# tools/doc_examples.pl: runs the fenced SQL examples of the documentation,
# as a new user would, and fails on an error nobody announced.
#
#   perl tools/doc_examples.pl [FILE.md ...]     (default: README.md doc/*.md)
#
# Each file gets a fresh database (doc_examples, dropped before and after),
# created by the connecting role (a superuser: the examples install the
# extension), and its ```sql blocks run in order in ONE psql session, so a
# SET in one block holds for the next, as when a reader types them.  Roles
# the examples create are dropped after the file, so every file starts from
# the same cluster.  Connection: the usual libpq variables (PGHOST, PGPORT,
# PGUSER); psql from PATH.
#
# Marks, in the documentation itself:
#   - a line "-- ERROR: ... (SQLSTATE XXXXX)" inside a block announces one
#     error (with that SQLSTATE when given): the block passes only if it
#     raises exactly as many errors as it announces;
#   - an HTML comment <!-- doc-example: skip --> on the line just before a
#     fence skips that block (placeholders, alternatives, what needs a
#     second server); a skipped block is counted and listed.
# Prints one line per block that fails (with psql's messages) and ends with
#   doc examples: N passed, M failed, K skipped
# Exit status 1 if any block failed.
use strict;
use warnings;
use File::Temp qw(tempfile);

my $root = $0 =~ m{^(.*)/tools/[^/]+$} ? $1 : '.';
my @files = @ARGV ? @ARGV : ("$root/README.md", sort glob("$root/doc/*.md"));
my $db = 'doc_examples';
my ($passed, $failed, $skipped) = (0, 0, 0);

sub psql_admin
{
	my ($sql) = @_;
	my $out = `psql -X -q -At -d postgres -c "$sql" 2>&1`;
	die "psql failed: $sql\n$out" if $?;
	return $out;
}

sub roles { return map { $_ => 1 } split /\n/, psql_admin('SELECT rolname FROM pg_roles'); }

for my $file (@files)
{
	open my $fh, '<', $file or die "$file: $!";
	my @lines = <$fh>;
	close $fh;
	(my $name = $file) =~ s{^\Q$root\E/}{};

	# the blocks: [start line, text, skip, expected errors, expected sqlstates]
	my @blocks;
	for (my $i = 0; $i < @lines; $i++)
	{
		next unless $lines[$i] =~ /^(\s*)```sql\s*$/;
		my $indent = $1;
		my $skip = ($i > 0 && $lines[$i - 1] =~ /<!--\s*doc-example:\s*skip\s*-->/);
		my ($start, $text) = ($i + 1, '');
		for ($i++; $i < @lines && $lines[$i] !~ /^\s*```\s*$/; $i++)
		{
			(my $l = $lines[$i]) =~ s/^\Q$indent\E//;
			$text .= $l;
		}
		my @states = ($text =~ /^\s*--\s*ERROR:.*?(?:SQLSTATE\s+(\w{5}))?\)?\s*$/mg);
		push @blocks, [$start, $text, $skip, scalar(@states), [grep { defined } @states]];
	}
	next unless @blocks;

	my %before = roles();
	psql_admin("DROP DATABASE IF EXISTS $db WITH (FORCE)");
	psql_admin("CREATE DATABASE $db");
	my ($sfh, $script) = tempfile('doc_examples_XXXXXX', TMPDIR => 1, SUFFIX => '.sql', UNLINK => 1);
	print $sfh "\\set VERBOSITY verbose\n\\set SHOW_CONTEXT never\n";
	for my $n (0 .. $#blocks)
	{
		next if $blocks[$n][2];
		# markers and errors both go to stderr, so they stay in order
		print $sfh "\\warn '\@\@block $n'\n$blocks[$n][1]\n;\n";
	}
	print $sfh "\\warn '\@\@end'\n";
	close $sfh;
	my $err = `psql -X -q -d $db -v ON_ERROR_STOP=0 -f $script 2>&1 >/dev/null`;
	my %msgs;
	my $cur;
	for my $l (split /\n/, $err)
	{
		if ($l =~ /^\@\@block (\d+)$/) { $cur = $1; $msgs{$cur} = []; next; }
		if ($l eq '@@end') { undef $cur; next; }
		push @{ $msgs{ defined $cur ? $cur : 'x' } }, $l;
	}
	for my $n (0 .. $#blocks)
	{
		my ($start, $text, $skip, $nexp, $states) = @{ $blocks[$n] };
		if ($skip) { $skipped++; print "skipped: $name:$start\n"; next; }
		my @m = @{ $msgs{$n} || ['(block did not run)'] };
		my @errors = grep { /ERROR:/ } @m;
		my $ok = @errors == $nexp && exists $msgs{$n};
		for my $s (@$states)
		{
			$ok = 0 unless grep { /ERROR:\s+\Q$s\E:|\(SQLSTATE \Q$s\E\)/ } @errors;
		}
		if ($ok) { $passed++; next; }
		$failed++;
		print "FAILED: $name:$start (expected $nexp error(s), got " . scalar(@errors) . ")\n";
		print "    $_\n" for @m;
	}
	psql_admin("DROP DATABASE IF EXISTS $db WITH (FORCE)");
	my @new = grep { !$before{$_} } keys %{ { roles() } };
	psql_admin(qq{DROP ROLE "$_"}) for sort @new;
}
print "doc examples: $passed passed, $failed failed, $skipped skipped\n";
exit($failed ? 1 : 0);
