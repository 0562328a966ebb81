/* cmd_proxy: `mtlsdiag proxy`, the inline front end: options and output
 * files; the relay itself is proxy.c.
 *
 * Each --listen starts a listener; --upstream, --connect, --via, --allow
 * and --transparent describe the listener named last before them (given
 * before any --listen, the first one). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509_vfy.h>

#include "front/cmds.h"
#include "analysis/expect.h"
#include "analysis/inspect.h"
#include "wire/keylog.h"
#include "front/proxy.h"

#define MAX_LISTENERS 32
#define MAX_ALLOW 256
#define MAX_KEYLOGS 16
#define MAX_CATALOGUES 16

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mtlsdiag proxy --listen ADDR:PORT MODE [--listen ADDR:PORT MODE]... [OPTIONS]\n"
		"\n"
		"Relays TCP connections byte for byte and writes one verdict per connection:\n"
		"the moment it is known, and a final record at close (bytes each way, duration,\n"
		"who closed and how).\n"
		"\n"
		"modes (each applies to the --listen before it):\n"
		"  --upstream HOST:PORT   static: every connection goes to HOST:PORT (a name is\n"
		"                         resolved without blocking, for each connection)\n"
		"  --connect              an HTTP proxy: clients ask for 'CONNECT host:port'\n"
		"                         (curl -x http://ADDR:PORT, HTTPS_PROXY=...)\n"
		"  --via HOST:PORT        with --connect: pass each CONNECT on, as the client\n"
		"                         wrote it, to the HTTP proxy HOST:PORT (a web gateway)\n"
		"  --allow HOST:PORT      with --connect: a destination that may be asked for;\n"
		"                         * and ? wildcards, * for any port; repeat as needed.\n"
		"                         Without --allow only a loopback listener is accepted,\n"
		"                         and it relays anywhere\n"
		"  --transparent          connections redirected here by iptables/nftables\n"
		"                         REDIRECT go on to where they were headed\n"
		"\n"
		"options:\n"
		"  --listen ADDR:PORT     where clients connect (numeric address: 127.0.0.1:8443,\n"
		"                         [::1]:8443, 0.0.0.0:8443)\n"
		"  --json FILE            also write JSON Lines to FILE, appending (- for standard\n"
		"                         output)\n"
		"  --log FILE             human lines to FILE, appending (default: standard error)\n"
		"  --pcap-out FILE        write the relayed connections to FILE as a capture, each\n"
		"                         up to its verdict (for Wireshark, `mtlsdiag pcap`, a ticket)\n"
		"  --pcap-full            with --pcap-out: whole connections\n"
		"  --ca-bundle FILE       the server's client-CA bundle (PEM): verify client chains\n"
		"                         as the server would\n"
		"  --at TIME              judge certificate validity at TIME instead of now\n"
		"  --keylog FILE          the clients' NSS key log (SSLKEYLOGFILE), read as they\n"
		"                         write it: decrypt TLS 1.3 and the HTTP answer; repeatable\n"
		"  --inspection-cas FILE  more inspection-CA rules, added to the bundled\n"
		"                         catalogue (conf/inspection-cas.conf); repeatable\n"
		"  --expect-server-ca FILE  the CA (PEM) the real server's chain comes from: a\n"
		"                         server chain from another CA was made by a middlebox\n"
		"  --expect-server-spki SHA256  the real server's key (SHA-256 of its\n"
		"                         SubjectPublicKeyInfo, hex); repeatable\n"
		"  --workers N            event loops, one thread each (default 1)\n"
		"  --max-conns N          open connections before accepting pauses (default: as\n"
		"                         many as the descriptor limit allows)\n"
		"  --connect-timeout S    give up connecting to the server after S seconds (10)\n"
		"  --idle-timeout S       close a connection idle both ways for S seconds (300)\n"
		"  --user USER            run as USER once the listeners are bound\n"
		"  -h, --help             this help\n"
		"\n"
		"SIGTERM or SIGINT stops accepting; the proxy exits once the open connections\n"
		"end, closing those still open after 10 s.  SIGHUP reopens the --log and --json\n"
		"files.\n"
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

/* The listeners as the options describe them. */
struct listen_set {
	struct proxy_listen_config l[MAX_LISTENERS];
	bool mode_set[MAX_LISTENERS];
	bool connect_flag[MAX_LISTENERS];
	const char *allow[MAX_LISTENERS][MAX_ALLOW];
	size_t n;
};

/* The listener a mode option describes: the last --listen, or the first. */
static struct proxy_listen_config *current(struct listen_set *ls, size_t *idx)
{
	if (ls->n == 0) {   /* before any --listen: keep it for the first */
		ls->n = 1;
		ls->l[0].listen = NULL;
	}
	*idx = ls->n - 1;
	return &ls->l[*idx];
}

static int set_mode(struct listen_set *ls, const char *opt, enum proxy_mode mode)
{
	size_t i;
	struct proxy_listen_config *l = current(ls, &i);

	if (ls->mode_set[i] && l->mode != mode) {
		fprintf(stderr, "mtlsdiag proxy: %s: listener %s already has a mode (one of --upstream, --connect, --transparent per --listen)\n",
			opt, l->listen ? l->listen : "(the first)");
		return 0;
	}
	ls->mode_set[i] = true;
	l->mode = mode;
	return 1;
}

static int add_listen(struct listen_set *ls, const char *addr)
{
	/* mode options given before the first --listen belong to it */
	if (ls->n == 1 && !ls->l[0].listen) {
		ls->l[0].listen = addr;
		return 1;
	}
	if (ls->n == MAX_LISTENERS) {
		fprintf(stderr, "mtlsdiag proxy: at most %d --listen\n", MAX_LISTENERS);
		return 0;
	}
	ls->l[ls->n++].listen = addr;
	return 1;
}

static int check_listeners(struct listen_set *ls)
{
	size_t i;

	if (ls->n == 0 || !ls->l[0].listen) {
		fprintf(stderr, "mtlsdiag proxy: --listen is required (try 'mtlsdiag proxy --help')\n");
		return 0;
	}
	for (i = 0; i < ls->n; i++) {
		struct proxy_listen_config *l = &ls->l[i];

		if (!ls->mode_set[i]) {
			fprintf(stderr, "mtlsdiag proxy: --listen %s: give it a mode: --upstream HOST:PORT, --connect or --transparent\n",
				l->listen);
			return 0;
		}
		if (l->mode != PROXY_CONNECT && (l->via || l->n_allow)) {
			fprintf(stderr, "mtlsdiag proxy: --listen %s: --via and --allow go with --connect\n", l->listen);
			return 0;
		}
		l->allow = ls->allow[i];
	}
	return 1;
}

int cmd_proxy(int argc, char **argv)
{
	enum { O_LISTEN = 256, O_UPSTREAM, O_CONNECT, O_VIA, O_ALLOW, O_TRANSPARENT, O_JSON, O_LOG,
	       O_PCAP_OUT, O_PCAP_FULL, O_CA_BUNDLE, O_AT, O_WORKERS, O_MAX_CONNS, O_CONNECT_TIMEOUT,
	       O_IDLE_TIMEOUT, O_USER, O_KEYLOG, O_INSPECTION_CAS, O_EXPECT_CA, O_EXPECT_SPKI };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "upstream", required_argument, NULL, O_UPSTREAM },
		{ "connect", no_argument, NULL, O_CONNECT },
		{ "via", required_argument, NULL, O_VIA },
		{ "allow", required_argument, NULL, O_ALLOW },
		{ "transparent", no_argument, NULL, O_TRANSPARENT },
		{ "json", required_argument, NULL, O_JSON },
		{ "log", required_argument, NULL, O_LOG },
		{ "pcap-out", required_argument, NULL, O_PCAP_OUT },
		{ "pcap-full", no_argument, NULL, O_PCAP_FULL },
		{ "ca-bundle", required_argument, NULL, O_CA_BUNDLE },
		{ "at", required_argument, NULL, O_AT },
		{ "workers", required_argument, NULL, O_WORKERS },
		{ "max-conns", required_argument, NULL, O_MAX_CONNS },
		{ "connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT },
		{ "idle-timeout", required_argument, NULL, O_IDLE_TIMEOUT },
		{ "user", required_argument, NULL, O_USER },
		{ "keylog", required_argument, NULL, O_KEYLOG },
		{ "inspection-cas", required_argument, NULL, O_INSPECTION_CAS },
		{ "expect-server-ca", required_argument, NULL, O_EXPECT_CA },
		{ "expect-server-spki", required_argument, NULL, O_EXPECT_SPKI },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct listen_set ls;
	struct proxy_config cfg = { .log = stderr };
	const char *bundle_path = NULL;
	const char *keylogs[MAX_KEYLOGS];
	size_t n_keylogs = 0;
	const char *cas[MAX_CATALOGUES];
	size_t n_cas = 0;
	struct inspect_catalogue *cat = NULL;
	static struct server_expect expect;
	struct proxy_listen_config *l;
	char err[200];
	size_t i;
	int ret = 2, opt;

	memset(&ls, 0, sizeof(ls));
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (opt) {
		case O_LISTEN:
			if (!add_listen(&ls, optarg))
				return 2;
			break;
		case O_UPSTREAM:
			if (!set_mode(&ls, "--upstream", PROXY_STATIC))
				return 2;
			current(&ls, &i)->upstream = optarg;
			break;
		case O_CONNECT:
			if (!set_mode(&ls, "--connect", PROXY_CONNECT))
				return 2;
			break;
		case O_VIA:
			if (!set_mode(&ls, "--via", PROXY_CONNECT))
				return 2;
			current(&ls, &i)->via = optarg;
			break;
		case O_ALLOW:
			l = current(&ls, &i);
			if (!proxy_allow_valid(optarg, err, sizeof(err))) {
				fprintf(stderr, "mtlsdiag proxy: --allow '%s': %s\n", optarg, err);
				return 2;
			}
			if (l->n_allow == MAX_ALLOW) {
				fprintf(stderr, "mtlsdiag proxy: at most %d --allow per listener\n", MAX_ALLOW);
				return 2;
			}
			ls.allow[i][l->n_allow++] = optarg;
			break;
		case O_TRANSPARENT:
			if (!set_mode(&ls, "--transparent", PROXY_TRANSPARENT))
				return 2;
			break;
		case O_INSPECTION_CAS:
			if (!cmd_add_file("mtlsdiag proxy", "--inspection-cas", cas, &n_cas, MAX_CATALOGUES, optarg))
				return 2;
			break;
		case O_EXPECT_CA:
		case O_EXPECT_SPKI:
			if (!cmd_add_expect("mtlsdiag proxy", &expect, opt == O_EXPECT_CA, optarg))
				return 2;
			cfg.expect = &expect;
			break;
		case O_JSON: cfg.json_path = optarg; break;
		case O_LOG: cfg.log_path = optarg; break;
		case O_PCAP_OUT: cfg.pcap_out = optarg; break;
		case O_PCAP_FULL: cfg.pcap_full = true; break;
		case O_CA_BUNDLE: bundle_path = optarg; break;
		case O_AT:
			if (!cmd_parse_time(optarg, &cfg.at)) {
				fprintf(stderr, "mtlsdiag proxy: --at: cannot read time '%s' (use 2026-11-23T12:00:00Z, 2026-11-23 or @EPOCH)\n", optarg);
				return 2;
			}
			cfg.at_set = true;
			break;
		case O_WORKERS:
			if (!parse_uint("--workers", optarg, 1, 256, &cfg.workers))
				return 2;
			break;
		case O_MAX_CONNS:
			if (!parse_uint("--max-conns", optarg, 1, 1000000, &cfg.max_conns))
				return 2;
			break;
		case O_CONNECT_TIMEOUT:
			if (!parse_uint("--connect-timeout", optarg, 1, 3600, &cfg.connect_timeout_s))
				return 2;
			break;
		case O_IDLE_TIMEOUT:
			if (!parse_uint("--idle-timeout", optarg, 1, 7 * 86400, &cfg.idle_timeout_s))
				return 2;
			break;
		case O_USER: cfg.user = optarg; break;
		case O_KEYLOG:
			if (!cmd_add_file("mtlsdiag proxy", "--keylog", keylogs, &n_keylogs, MAX_KEYLOGS, optarg))
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
	if (!check_listeners(&ls))
		return 2;
	if (cfg.pcap_full && !cfg.pcap_out) {
		fprintf(stderr, "mtlsdiag proxy: --pcap-full goes with --pcap-out FILE\n");
		return 2;
	}
	cfg.listeners = ls.l;
	cfg.n_listeners = ls.n;
	if (bundle_path && !(cfg.ca_bundle = cmd_load_bundle(bundle_path)))
		return 2;
	if (!(cat = cmd_load_inspection("mtlsdiag proxy", cas, n_cas)))
		goto Exit;
	cfg.inspection = cat;
	/* followed: read again whenever a connection needs a secret not yet there */
	if (!cmd_load_keylogs("mtlsdiag proxy", keylogs, n_keylogs, true, &cfg.keylog))
		goto Exit;
	if (cfg.log_path && !(cfg.log = open_out("--log", cfg.log_path)))
		goto Exit;
	if (cfg.json_path && !(cfg.json = open_out("--json", cfg.json_path)))
		goto Exit;
	if (cfg.log == stdout)
		cfg.log_path = NULL;   /* nothing to reopen */
	if (cfg.json == stdout)
		cfg.json_path = NULL;
	ret = proxy_run(&cfg);
Exit:
	if (cfg.json && cfg.json != stdout && fclose(cfg.json) != 0) {
		fprintf(stderr, "mtlsdiag proxy: --json %s: %s\n", cfg.json_path, strerror(errno));
		ret = 2;
	}
	if (cfg.log && cfg.log != stderr && cfg.log != stdout)
		fclose(cfg.log);
	X509_STORE_free(cfg.ca_bundle);
	keylog_free(cfg.keylog);
	inspect_free(cat);
	return ret;
}
