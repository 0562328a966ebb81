/* cmd_proxy: `mtlsdiag proxy`, the inline front end: options and output
 * files; the relay itself is proxy.c. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "proxy.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mtlsdiag proxy --listen ADDR:PORT --upstream HOST:PORT [OPTIONS]\n"
		"\n"
		"Relays TCP connections from ADDR:PORT to HOST:PORT byte for byte and writes one\n"
		"verdict per connection: the moment it is known, and a final record at close\n"
		"(bytes each way, duration, who closed and how).\n"
		"\n"
		"options:\n"
		"  --listen ADDR:PORT     where clients connect (numeric address: 127.0.0.1:8443,\n"
		"                         [::1]:8443, 0.0.0.0:8443)\n"
		"  --upstream HOST:PORT   the real server (a name is resolved without blocking)\n"
		"  --json FILE            also write JSON Lines to FILE, appending (- for standard\n"
		"                         output)\n"
		"  --log FILE             human lines to FILE, appending (default: standard error)\n"
		"  --workers N            event loops, one thread each (default 1)\n"
		"  --connect-timeout S    give up connecting to the upstream after S seconds (10)\n"
		"  --idle-timeout S       close a connection idle both ways for S seconds (300)\n"
		"  -h, --help             this help\n"
		"\n"
		"SIGTERM or SIGINT stops accepting; the proxy exits once the open connections\n"
		"end, closing those still open after 10 s.\n"
		"Exit status: 0 after a normal stop, 2 usage error, bad address or port in use.\n");
}

static int parse_uint(const char *opt, const char *s, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "mtlsdiag proxy: %s: '%s' is not a number from %u to %u\n", opt, s, min, max);
		return 0;
	}
	*out = (unsigned)v;
	return 1;
}

static FILE *open_out(const char *opt, const char *path)
{
	FILE *f;

	if (strcmp(path, "-") == 0)
		return stdout;
	f = fopen(path, "a");
	if (!f)
		fprintf(stderr, "mtlsdiag proxy: %s %s: %s\n", opt, path, strerror(errno));
	return f;
}

int cmd_proxy(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "upstream", required_argument, NULL, 'u' },
		{ "json", required_argument, NULL, 'j' },
		{ "log", required_argument, NULL, 'L' },
		{ "workers", required_argument, NULL, 'w' },
		{ "connect-timeout", required_argument, NULL, 'c' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct proxy_config cfg = { .log = stderr };
	const char *json_path = NULL, *log_path = NULL;
	int ret = 2, opt;

	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (opt) {
		case 'l': cfg.listen = optarg; break;
		case 'u': cfg.upstream = optarg; break;
		case 'j': json_path = optarg; break;
		case 'L': log_path = optarg; break;
		case 'w':
			if (!parse_uint("--workers", optarg, 1, 256, &cfg.workers))
				return 2;
			break;
		case 'c':
			if (!parse_uint("--connect-timeout", optarg, 1, 3600, &cfg.connect_timeout_s))
				return 2;
			break;
		case 'i':
			if (!parse_uint("--idle-timeout", optarg, 1, 7 * 86400, &cfg.idle_timeout_s))
				return 2;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mtlsdiag proxy: unexpected argument '%s' (try 'mtlsdiag proxy --help')\n", argv[optind]);
		return 2;
	}
	if (!cfg.listen || !cfg.upstream) {
		fprintf(stderr, "mtlsdiag proxy: --listen and --upstream are required (try 'mtlsdiag proxy --help')\n");
		return 2;
	}
	if (log_path && !(cfg.log = open_out("--log", log_path)))
		goto Exit;
	if (json_path && !(cfg.json = open_out("--json", json_path)))
		goto Exit;
	ret = proxy_run(&cfg);
Exit:
	if (cfg.json && cfg.json != stdout && fclose(cfg.json) != 0) {
		fprintf(stderr, "mtlsdiag proxy: --json %s: %s\n", json_path, strerror(errno));
		ret = 2;
	}
	if (cfg.log && cfg.log != stderr && cfg.log != stdout)
		fclose(cfg.log);
	return ret;
}
