#!/usr/bin/perl
# Free loopback ports for the mtlsdiag lab (scripts/lab, scripts/demo), and
# whose socket listens on one.
#
#   perl ports.pl free N [TAKEN...]
#       N distinct TCP ports, one a line, that nothing has bound a moment
#       ago (neither on 127.0.0.1 nor on any other address), none of them
#       in TAKEN. They are drawn at random below the kernel's ephemeral
#       range (ip_local_port_range), where no client connection takes its
#       source port; where that range leaves too little room below it, the
#       kernel picks (bind to port 0). Another program can still bind one
#       before the caller does: the caller checks with `owner`.
#
#   perl ports.pl owner PID PORT
#       who listens on TCP port PORT (any address, IPv4 or IPv6), by exit
#       status: 0 only process PID (one or more sockets, all held by it),
#       1 nobody, 2 only others, 3 PID and another (two sockets on one port:
#       SO_REUSEPORT). Reads /proc/net/tcp{,6} and /proc/PID/fd.
use strict;
use warnings;
use Socket qw(AF_INET AF_INET6 SOCK_STREAM INADDR_ANY IN6ADDR_ANY
	pack_sockaddr_in pack_sockaddr_in6 unpack_sockaddr_in);

my $LOWEST = 20000;    # below: the well-known services of a test machine

sub usage { die "usage: ports.pl free N [TAKEN...] | ports.pl owner PID PORT\n" }

# bound_by_nobody PORT: true when PORT can be bound on every address (the
# IPv6 wildcard also covers IPv4 unless the system has no IPv6 at all).
sub bound_by_nobody {
	my ($port) = @_;
	my $s;
	if (socket($s, AF_INET6, SOCK_STREAM, 0)) {
		my $ok = bind($s, pack_sockaddr_in6($port, IN6ADDR_ANY));
		close($s);
		return 0 unless $ok;
	}
	socket($s, AF_INET, SOCK_STREAM, 0) or die "ports.pl: socket: $!\n";
	my $ok = bind($s, pack_sockaddr_in($port, INADDR_ANY));
	close($s);
	return $ok ? 1 : 0;
}

sub kernel_port {
	socket(my $s, AF_INET, SOCK_STREAM, 0) or die "ports.pl: socket: $!\n";
	bind($s, pack_sockaddr_in(0, INADDR_ANY)) or die "ports.pl: bind: $!\n";
	my ($port) = unpack_sockaddr_in(getsockname($s));
	close($s);
	return $port;
}

sub free {
	my ($n, @taken) = @_;
	usage() unless defined $n && $n =~ /^[1-9][0-9]*$/;
	my %taken = map { $_ => 1 } @taken;
	my $highest = 32767;
	if (open(my $r, '<', '/proc/sys/net/ipv4/ip_local_port_range')) {
		my ($low) = split(' ', scalar <$r> // '');
		$highest = $low - 1 if defined $low && $low =~ /^[0-9]+$/;
		close($r);
	}
	my $kernel = $highest - $LOWEST < 1000;
	my @out;
	for (my $tries = 0; @out < $n; $tries++) {
		die "ports.pl: no free port found\n" if $tries > 1000 + 10 * $n;
		my $port = $kernel ? kernel_port() : $LOWEST + int(rand($highest - $LOWEST + 1));
		next if $taken{$port} || !bound_by_nobody($port);
		$taken{$port} = 1;
		push @out, $port;
	}
	print "$_\n" for @out;
	return 0;
}

# listening_inodes PORT: the socket inodes listening on PORT.
sub listening_inodes {
	my ($port) = @_;
	my @inodes;
	for my $file ('/proc/net/tcp', '/proc/net/tcp6') {
		open(my $f, '<', $file) or next;
		<$f>;    # the header
		while (my $line = <$f>) {
			my @col = split(' ', $line);
			# local_address is ADDR:PORT in hex; state 0A is LISTEN
			next unless @col > 9 && $col[3] eq '0A';
			my ($lport) = $col[1] =~ /:([0-9A-Fa-f]+)$/ or next;
			push @inodes, $col[9] if hex($lport) == $port;
		}
		close($f);
	}
	return @inodes;
}

sub owner {
	my ($pid, $port) = @_;
	usage() unless defined $port && $pid =~ /^[0-9]+$/ && $port =~ /^[0-9]+$/;
	my @inodes = listening_inodes($port);
	return 1 unless @inodes;
	my %held;
	if (opendir(my $d, "/proc/$pid/fd")) {
		for my $fd (readdir($d)) {
			my $target = readlink("/proc/$pid/fd/$fd") // next;
			$held{$1} = 1 if $target =~ /^socket:\[([0-9]+)\]$/;
		}
		closedir($d);
	}
	my $ours = grep { $held{$_} } @inodes;
	return 0 if $ours == @inodes;
	return $ours ? 3 : 2;
}

my $cmd = shift // usage();
exit(free(@ARGV)) if $cmd eq 'free';
exit(owner(@ARGV)) if $cmd eq 'owner';
usage();
