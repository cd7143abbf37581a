# test/t/EsLedger.pm: what the Perl TAP suites of es_ledger share.
#
#   use FindBin;
#   use lib $FindBin::RealBin;
#   use EsLedger;
#   my $node = es_node('name', conf => "deadlock_timeout = 100ms\n");
#
# es_node makes, configures and starts a cluster of its own for a test file
# (PostgreSQL::Test::Cluster, under TESTDIR's tmp_check): init options in
# init => { allows_streaming => 1, ... }, postgresql.conf lines in conf,
# start => 0 to leave it stopped, ledger => DBNAME to create the extension
# there.  ES_TAP_CONF (environment) adds lines to every cluster's
# postgresql.conf, e.g. for a sanitizer or a debug run.
package EsLedger;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

our @EXPORT = qw(es_node);

sub es_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%{ $opt{init} || {} });
	$node->append_conf('postgresql.conf', $opt{conf}) if defined $opt{conf};
	$node->append_conf('postgresql.conf', $ENV{ES_TAP_CONF}) if $ENV{ES_TAP_CONF};
	$node->start unless exists $opt{start} && !$opt{start};
	$node->safe_psql($opt{ledger}, 'CREATE EXTENSION es_ledger') if $opt{ledger};
	return $node;
}

1;
