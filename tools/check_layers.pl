#!/usr/bin/perl
# tools/check_layers.pl: fail when an include or a call of es_ledger runs up
# the layers.  The folders of src/, bottom first, are the layers; a file may
# include its own folder's header and those of the folders below it, and
# call what files of its own folder or of folders below define.  src/*.c
# (es_module.c) sits on top.  Calls are read from the built objects (nm), so
# run it after `make`: `make check-layers` does both.
use strict;
use warnings;

# Usage: perl tools/check_layers.pl [TREE]  (TREE: a checkout, built; default .)
my @layers = qw(model store protect apply query projection);
if (@ARGV) { chdir($ARGV[0]) or die "$ARGV[0]: $!\n"; }
my %rank = map { $layers[$_] => $_ + 1 } 0 .. $#layers;
my $top = @layers + 1;
my $bad = 0;

# The layer of a path under src/: its folder, or the top for src/ itself.
sub layer_of
{
	my ($path) = @_;
	return $path =~ m{^src/([a-z_]+)/} ? $1 : 'src';
}
sub rank_of { my ($l) = @_; return $l eq 'src' ? $top : ($rank{$l} // die "unknown folder src/$l/\n"); }

my @files = (glob('src/*.c'), glob('src/*/*.c'), glob('src/*/*.h'));
die "no sources under src/\n" unless @files;
for my $f (glob('src/*/'))
{
	$f =~ s{/$}{};
	my ($l) = $f =~ m{^src/(.+)$};
	die "src/$l/ is not a layer: add it to \@layers in $0\n" unless exists $rank{$l};
}

# Includes of our own headers: "x.h" (same folder), "../d/d.h", "d/d.h".
my $includes = 0;
for my $f (@files)
{
	my $from = layer_of($f);
	open(my $fh, '<', $f) or die "$f: $!\n";
	while (my $line = <$fh>)
	{
		next unless $line =~ /^\s*#\s*include\s+"([^"]+)"/;
		my $inc = $1;
		my $to;
		# ours if it is a header under src/; PostgreSQL's otherwise
		if ($inc =~ m{^(?:\.\./)?([a-z_]+)/([^/]+\.h)$} && -f "src/$1/$2") { $to = $1; }
		elsif ($inc =~ m{^[^/]+\.h$} && $from ne 'src' && -f "src/$from/$inc") { $to = $from; }
		else { next; }
		$includes++;
		if (rank_of($to) > rank_of($from))
		{
			print "$f: includes $inc of layer $to/, above its own ($from/)\n";
			$bad++;
		}
	}
	close($fh);
}

# Calls: each object's undefined symbols that another object defines.
my (%def, %objlayer);
my @objs = map { (my $o = $_) =~ s/\.c$/.o/; $o } grep { /\.c$/ } @files;
for my $o (@objs)
{
	die "$o is missing: run make first\n" unless -f $o;
	$objlayer{$o} = layer_of($o);
	for (`nm -g --defined-only $o`)
	{
		my @w = split;
		$def{ $w[2] } = $o if @w == 3;
	}
}
my $calls = 0;
my %matrix;
for my $o (@objs)
{
	for (`nm -u $o`)
	{
		my @w = split;
		my $sym = $w[-1];
		next unless exists $def{$sym};
		$calls++;
		my $to = $objlayer{ $def{$sym} };
		$matrix{"$objlayer{$o} -> $to"}++;
		if (rank_of($to) > rank_of($objlayer{$o}))
		{
			print "$o: calls $sym of $def{$sym}, a layer above ($to/ over $objlayer{$o}/)\n";
			$bad++;
		}
	}
}
if ($ENV{LAYERS_MATRIX})
{
	print "calls between files, by folder (caller -> callee):\n";
	printf "  %-26s %d\n", $_, $matrix{$_} for sort keys %matrix;
}
printf "check-layers: %d files, %d includes, %d calls between files; %d upward\n",
	scalar(@files), $includes, $calls, $bad;
exit($bad ? 1 : 0);
