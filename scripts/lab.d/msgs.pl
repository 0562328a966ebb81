#!/usr/bin/perl
# Helpers for `scripts/lab fixtures` (perl-base only).
#
#   msgs.pl smsg FILE            parse `openssl s_client -msg` output: one line
#                                per handshake message or alert:
#                                DIR <tab> KIND <tab> NAME <tab> HEX
#                                (DIR: out = sent by s_client, in = received)
#   msgs.pl follow FILE OUTDIR   split `tshark -q -z follow,tcp,raw,N` output
#                                into OUTDIR/client.bin and OUTDIR/server.bin
#   msgs.pl stream FILE          list the plaintext handshake messages and
#                                alerts in one direction's raw TCP bytes (up to
#                                that side's ChangeCipherSpec), same line format
#                                with DIR "-"
#   msgs.pl grease FILE          exit 0 when the ClientHello in FILE has a
#                                GREASE cipher suite (0x?A?A)
#   msgs.pl hex2bin HEX OUT      write bytes
use strict;
use warnings;

my $cmd = shift @ARGV // '';

sub slurp {
	my ($f) = @_;
	open(my $fh, '<:raw', $f) or die "msgs.pl: $f: $!\n";
	local $/;
	my $d = <$fh>;
	close $fh;
	return $d // '';
}

sub spew {
	my ($f, $d) = @_;
	open(my $fh, '>:raw', $f) or die "msgs.pl: $f: $!\n";
	print $fh $d;
	close $fh or die "msgs.pl: $f: $!\n";
}

my %hs_name = (
	1 => 'ClientHello', 2 => 'ServerHello', 4 => 'NewSessionTicket',
	8 => 'EncryptedExtensions', 11 => 'Certificate', 12 => 'ServerKeyExchange',
	13 => 'CertificateRequest', 14 => 'ServerHelloDone', 15 => 'CertificateVerify',
	16 => 'ClientKeyExchange', 20 => 'Finished',
);

if ($cmd eq 'smsg') {
	my $text = slurp($ARGV[0]);
	my ($dir, $kind, $name, $hex);
	my $flush = sub {
		if (defined $kind) {
			print join("\t", $dir, $kind, $name, $hex), "\n";
		}
		undef $kind;
	};
	for my $line (split /\n/, $text) {
		if ($line =~ /^(>>>|<<<) [^,]*, (Handshake|Alert) \[length [0-9a-fA-F]+\](?:, (.*))?$/) {
			$flush->();
			($dir, $kind, $name, $hex) = ($1 eq '>>>' ? 'out' : 'in', $2, $3 // '', '');
			$name =~ s/\s+/_/g;
		} elsif (defined $kind && $line =~ /^\s+((?:[0-9a-f]{2} ?)+)\s*$/) {
			(my $h = $1) =~ s/\s//g;
			$hex .= $h;
		} else {
			$flush->();
		}
	}
	$flush->();
} elsif ($cmd eq 'follow') {
	my ($in, $outdir) = @ARGV;
	my ($c, $s) = ('', '');
	my $body = 0;
	for my $line (split /\n/, slurp($in)) {
		if ($line =~ /^Node 1: /) { $body = 1; next; }
		next unless $body;
		last if $line =~ /^=+$/;
		if ($line =~ /^\t([0-9a-f]+)$/) { $s .= pack('H*', $1); }
		elsif ($line =~ /^([0-9a-f]+)$/) { $c .= pack('H*', $1); }
	}
	spew("$outdir/client.bin", $c);
	spew("$outdir/server.bin", $s);
} elsif ($cmd eq 'stream') {
	my $d = slurp($ARGV[0]);
	my ($off, $hs) = (0, '');
	while ($off + 5 <= length $d) {
		my ($type, $ver, $len) = unpack('C n n', substr($d, $off, 5));
		last if $off + 5 + $len > length $d;
		my $frag = substr($d, $off + 5, $len);
		$off += 5 + $len;
		last if $type == 20;    # ChangeCipherSpec: the rest is encrypted
		if ($type == 21 && $len == 2) {
			print join("\t", '-', 'Alert', 'alert', unpack('H*', $frag)), "\n";
		} elsif ($type == 22) {
			$hs .= $frag;
			while (length $hs >= 4) {
				my ($t, $l) = (ord(substr($hs, 0, 1)), unpack('N', "\0" . substr($hs, 1, 3)));
				last if length $hs < 4 + $l;
				print join("\t", '-', 'Handshake', $hs_name{$t} // "type$t",
					unpack('H*', substr($hs, 0, 4 + $l))), "\n";
				$hs = substr($hs, 4 + $l);
			}
		} elsif ($type == 23) {
			last;
		}
	}
} elsif ($cmd eq q{grease}) {
	# exit 0 when a ClientHello (FILE) has a GREASE value (0x?A?A) in its
	# cipher suites; prints the cipher suites
	my $d = slurp($ARGV[0]);
	die "msgs.pl: not a ClientHello\n" unless length $d > 40 && ord($d) == 1;
	my $o = 4 + 2 + 32;
	$o += 1 + ord(substr($d, $o, 1));
	my $n = unpack(q{n}, substr($d, $o, 2));
	my @cs = unpack(q{n*}, substr($d, $o + 2, $n));
	printf "%04x\n", $_ for @cs;
	exit((grep { ($_ & 0x0f0f) == 0x0a0a && ($_ >> 8) == ($_ & 0xff) } @cs) ? 0 : 1);
} elsif ($cmd eq q{hex2bin}) {
	spew($ARGV[1], pack('H*', $ARGV[0]));
} else {
	die "usage: msgs.pl smsg FILE | follow FILE OUTDIR | stream FILE | grease FILE | hex2bin HEX OUT\n";
}
