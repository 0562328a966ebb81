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
		"usage: mtlsdiag [-c FILE] COMMAND [OPTIONS]\n"
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
		"'mtlsdiag COMMAND --help' shows a command's options.\n"
		"With -c FILE, before the command or among its options, the command first\n"
		"reads its options from FILE's [COMMAND] section; the installed file is\n"
		"%s/mtlsdiag/mtlsdiag.conf.\n",
		SYSCONFDIR);
}

/* The commands, in the order --help lists them; a configuration file's
 * sections are named after them. */
static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "pcap", cmd_pcap },
	{ "capture", cmd_capture },
	{ "proxy", cmd_proxy },
	{ "probe", cmd_probe },
	{ "check-bundle", cmd_check_bundle },
};

const char *cmd_name(size_t i)
{
	return i < sizeof(commands) / sizeof(*commands) ? commands[i].name : NULL;
}

/* "mtlsdiag -c FILE COMMAND ..." is "mtlsdiag COMMAND -c FILE ...": the
 * command's word is moved before the option, where the commands read it.
 * 0 when FILE or COMMAND is missing. */
static int config_first(int argc, char **argv)
{
	int words = strncmp(argv[1], "--config=", 9) == 0 ? 1 : 2;   /* the option's */
	char *cmd;

	if (argc < words + 2)
		return 0;
	cmd = argv[words + 1];
	memmove(argv + 2, argv + 1, (size_t)words * sizeof(*argv));
	argv[1] = cmd;
	return 1;
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
	if (strcmp(argv[1], "-c") == 0 || strcmp(argv[1], "--config") == 0 || strncmp(argv[1], "--config=", 9) == 0) {
		if (!config_first(argc, argv)) {
			fprintf(stderr, "mtlsdiag: -c FILE goes with a command: mtlsdiag -c FILE COMMAND [OPTIONS]\n");
			return 2;
		}
	}
	opterr = 0;   /* the commands say what is wrong with an option themselves */
	/* a file size limit is a full disk: the write fails and is counted,
	 * the process goes on */
	signal(SIGXFSZ, SIG_IGN);
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "mtlsdiag: unknown command '%s' (try 'mtlsdiag --help')\n", argv[1]);
	return 2;
}
