#!/usr/bin/perl
# Writes a small GeoIP2-City-shaped MaxMind DB for the tests, with MaxMind's own writer
# (Debian: libmaxmind-db-writer-perl), so Canopy's reader is checked against an independent
# implementation of the format. Usage: make-test-mmdb.pl OUT.mmdb
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my %types = (
    country      => 'map',
    subdivisions => [ 'array', 'map' ],
    city         => 'map',
    iso_code     => 'utf8_string',
    names        => 'map',
    en           => 'utf8_string',
);

my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version               => 6,
    record_size              => 24,
    database_type            => 'GeoIP2-City',
    languages                => ['en'],
    description              => { en => 'Canopy test GeoIP database' },
    remove_reserved_networks => 0,
    map_key_type_callback    => sub { $types{ $_[0] } },
);

sub place {
    my ( $country, $region_code, $region, $city ) = @_;
    return {
        country      => { iso_code => $country, names => { en => $country } },
        subdivisions => [ { iso_code => $region_code, names => { en => $region } } ],
        city         => { names => { en => $city } },
    };
}

# TEST-NET ranges (RFC 5737, RFC 3849): never real users.
$tree->insert_network( '203.0.113.0/24',  place( 'US', 'CA', 'California', 'San Francisco' ) );
$tree->insert_network( '198.51.100.0/24', place( 'IN', 'KA', 'Karnataka',  'Bengaluru' ) );
$tree->insert_network( '192.0.2.0/24',    place( 'US', 'TX', 'Texas',      'Austin' ) );
$tree->insert_network( '2001:db8::/32',   place( 'DE', 'BE', 'Berlin',     'Berlin' ) );

open my $fh, '>:raw', $ARGV[0] or die "cannot write $ARGV[0]: $!";
$tree->write_tree($fh);
close $fh or die "cannot close $ARGV[0]: $!";
