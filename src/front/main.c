/* main: dispatches mtlsdiag's subcommands. */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "front/cmds.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mtlsdiag COMMAND [OPTIONS]\n"
		"\n"
		"Diagnoses mutual-TLS client-certificate failures, one verdict per connection.\n"
		"\n"
		"commands:\n"
		"  pcap FILE...      analyse capture files (pcap or pcapng; - for standard input)\n"
		"  capture -i IFACE  capture live on an interface and analyse as packets arrive\n"
		"  proxy             relay connections to a server and analyse them inline\n"
		"  probe HOST:PORT   connect to a server (directly or through a proxy) and report\n"
		"                    its client-certificate request, chain and interception\n"
		"  check-bundle FILE check a CA bundle (and a client certificate against it)\n"
		"                    before a server is given it\n"
		"\n"
		"'mtlsdiag COMMAND --help' shows a command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("mtlsdiag %s\n", PACKAGE_VERSION);
		return 0;
	}
	opterr = 0;   /* the commands say what is wrong with an option themselves */
	/* a file size limit is a full disk: the write fails and is counted,
	 * the process goes on */
	signal(SIGXFSZ, SIG_IGN);
	if (strcmp(argv[1], "pcap") == 0)
		return cmd_pcap(argc - 1, argv + 1);
	if (strcmp(argv[1], "capture") == 0)
		return cmd_capture(argc - 1, argv + 1);
	if (strcmp(argv[1], "proxy") == 0)
		return cmd_proxy(argc - 1, argv + 1);
	if (strcmp(argv[1], "probe") == 0)
		return cmd_probe(argc - 1, argv + 1);
	if (strcmp(argv[1], "check-bundle") == 0)
		return cmd_check_bundle(argc - 1, argv + 1);
	fprintf(stderr, "mtlsdiag: unknown command '%s' (try 'mtlsdiag --help')\n", argv[1]);
	return 2;
}
