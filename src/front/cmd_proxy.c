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
#include <unistd.h>
#include <time.h>

#include <openssl/x509_vfy.h>

#include "analysis/chain.h"
#include "front/cmds.h"
#include "analysis/expect.h"
#include "analysis/inspect.h"
#include "wire/keylog.h"
#include "front/intercept.h"
#include "front/proxy.h"
#include "out/outfile.h"
#include "out/syslogout.h"

#define MAX_LISTENERS 32
#define MAX_ALLOW 256
#define MAX_KEYLOGS 16
#define MAX_CATALOGUES 16
#define WHO "mtlsdiag proxy"

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
		"  --intercept            with --upstream: terminate TLS as the server's stand-in\n"
		"                         (its keys, or --forge-ca) and see the client's\n"
		"                         certificate in every TLS version; see below\n"
		"\n"
		"intercept (the operator holds the server's keys):\n"
		"  --server-cert FILE     the certificate (and chain) clients are shown: the real\n"
		"  --server-key FILE      server's, and its key (mode 0600; --key-pass if encrypted)\n"
		"  --forge-ca FILE        or: a diagnostic CA that issues a certificate for each\n"
		"  --forge-ca-key FILE    name clients ask for (SNI), cached per name\n"
		"  --ca-bundle FILE       (required) the client CAs: named to clients, and the\n"
		"                         store their chains are verified against\n"
		"  --verify MODE          require (default: refuse a missing or bad certificate)\n"
		"                         or optional (record it, forward anyway)\n"
		"  --verify-depth N       as nginx's ssl_verify_depth (default: OpenSSL's, 100)\n"
		"  --refuse HOW           http (default: complete the handshake, log the verify\n"
		"                         error, answer 400 as nginx does) or alert (the alert\n"
		"                         OpenSSL sends)\n"
		"  --post-handshake-auth  TLS 1.3: ask for the certificate after the handshake,\n"
		"                         when the first request has arrived (a client that\n"
		"                         offers it; TLS 1.2 clients are asked in the handshake)\n"
		"  --resumption           let clients resume sessions (tickets, a session cache),\n"
		"                         as a server that allows it; by default none is: every\n"
		"                         connection shows its certificate\n"
		"  --upstream-cert FILE   a client identity the real server trusts, and its key;\n"
		"  --upstream-key FILE    without them no certificate is sent upstream\n"
		"  --upstream-ca FILE     the CAs the real server's chain must come from\n"
		"                         (default: the system's store)\n"
		"  --upstream-tls V       the proxy's own TLS version towards the server: 1.2,\n"
		"                         1.3, or auto (default: 1.2 when the server has it; its\n"
		"                         sessions are resumed, and a 1.2 resumption is cheapest)\n"
		"  --upstream-keepalive N idle connections to the server kept per worker for the\n"
		"                         next clients (default 16; 0: one per client); a request\n"
		"                         that finds its kept connection closed is sent again on\n"
		"                         a new one when it is idempotent\n"
		"  --upstream-keepalive-timeout S\n"
		"                         how long an idle one is kept (default 4 s)\n"
		"  --key-pass SPEC        passphrase of the keys: env:VAR, file:PATH or pass:TEXT\n"
		"  --forward-identity     add X-SSL-Client-Verify, X-SSL-Client-S-DN and\n"
		"                         X-SSL-Client-Cert to the first HTTP/1.1 request\n"
		"  --no-faithful          do not probe the real server at start for its CA names,\n"
		"                         signature algorithms and versions (use --ca-bundle's)\n"
		"\n"
		"options:\n"
		"  --listen ADDR:PORT     where clients connect (numeric address: 127.0.0.1:8443,\n"
		"                         [::1]:8443, 0.0.0.0:8443)\n"
		"  --json FILE            also write JSON Lines to FILE, appending (- for standard\n"
		"                         output)\n"
		"  --json-format F        default, or ecs: the records with Elastic Common Schema\n"
		"                         names (tls.*, source.*, ...; the rest under mtlsdiag.*)\n"
		"  --log FILE             human lines to FILE, appending (default: standard error)\n"
		"  -q, --quiet            no line per connection in the log (start, stop and\n"
		"                         warnings still)\n"
		"  -l, --line-buffered    write each line and record as it is made (a log on a\n"
		"                         terminal is); otherwise they leave in batches, at\n"
		"                         most 50 ms after they are made, and at the stop\n"
		"  -v, --verbose          under each connection's final line, the evidence and\n"
		"                         the remedies\n"
		"  --syslog[=SOCKET]      also send each connection's line to the system log\n"
		"                         (facility daemon; SOCKET: /dev/log)\n"
		"  --on-output-error continue|stop  when --json or --log loses a record (a full\n"
		"                         disk): go on, saying so (continue, the default), or\n"
		"                         stop as on SIGTERM (stop)\n"
		"  --umask MASK           create --json, --log and --pcap-out files with 0666 less\n"
		"                         MASK (022) instead of 0600\n"
		"  --pcap-out FILE        write the relayed connections to FILE as a capture, each\n"
		"                         up to its verdict (for Wireshark, `mtlsdiag pcap`, a ticket)\n"
		"  --pcap-full            with --pcap-out: whole connections\n"
		CMD_EVIDENCE_USAGE
		"  --ca-bundle FILE       the server's client-CA bundle (PEM, nginx's\n"
		"                         ssl_client_certificate): verify client chains as the\n"
		"                         server does; the error as nginx logs it\n"
		"  --verify-depth N       the server's verify depth (nginx's ssl_verify_depth)\n"
		"  --crl FILE             the server's CRLs (nginx's ssl_crl), with --ca-bundle\n"
		"  --purpose NAME         the purpose verified (default sslclient)\n"
		"  --server-kind KIND     nginx, apache, haproxy or envoy: for the log line and\n"
		"                         the remedies (default: told from each connection)\n"
		"  --at TIME              judge certificate validity at TIME instead of now\n"
		"  --keylog FILE          the clients' NSS key log (SSLKEYLOGFILE), read as they\n"
		"                         write it: decrypt TLS 1.3 and the HTTP answer; repeatable\n"
		"  --keep-query           keep the query string of a decrypted request line (by\n"
		"                         default written as '?\xe2\x80\xa6': it may hold tokens)\n"
		"  --inspection-cas FILE  more inspection-CA rules, added to the bundled\n"
		"                         catalogue (conf/inspection-cas.conf); repeatable\n"
		"  --expect-server-ca FILE  the CA (PEM) the real server's chain comes from: a\n"
		"                         server chain from another CA was made by a middlebox\n"
		"  --expect-server-spki SHA256  the real server's key (SHA-256 of its\n"
		"                         SubjectPublicKeyInfo, hex); repeatable\n"
		"  --workers N            event loops, one thread each (default 1)\n"
		"  --max-conns N          open connections before accepting pauses (default: as\n"
		"                         many as the descriptor limit allows)\n"
		"  --max-conns-per-source N  connections one client address may have open; more\n"
		"                         are reset at accept, counted, and reported at most every\n"
		"                         10 s per address (default 0: no limit)\n"
		"  --connect-timeout S    give up resolving and connecting to the server after S\n"
		"                         seconds (10)\n"
		"  --idle-timeout S       close a connection idle both ways for S seconds (300)\n"
		"  --handshake-timeout S  close a connection whose TLS handshake is not over S\n"
		"                         seconds after it was accepted (10); not TLS: no limit\n"
		"  --max-handshake-bytes N  handshake bytes held for one connection while its\n"
		"                         messages are reassembled (64K; K, M: KiB, MiB)\n"
		"  --max-handshake-total N  the same for all connections together (64M)\n"
		"  --over-budget splice|close  a connection past either: relayed on unobserved\n"
		"                         (splice, the default) or closed; its record says so\n"
		"  --metrics ADDR:PORT    serve Prometheus metrics at http://ADDR:PORT/metrics\n"
		"                         (connections by verdict and fault, handshake times,\n"
		"                         bytes relayed, open connections; doc/operations.md)\n"
		"  --user USER            run as USER once the listeners are bound\n"
		"  --color WHEN           colour the verdict lines: auto (when the log is a\n"
		"                         terminal and NO_COLOR is not set), always or never\n"
		"  -h, --help             this help\n"
		"\n"
		"SIGTERM or SIGINT closes the listeners at once (a client connecting then is\n"
		"refused); the proxy exits once the open connections end, closing those still\n"
		"open after 10 s, and says how many connections it saw, by verdict.  SIGHUP\n"
		"reopens the --log and --json files.\n"
		"Exit status: 0 after a normal stop, 2 usage error, bad address or port in use,\n"
		"a record lost by --json or --log, or (--intercept) a key or CA bundle refused\n"
		"at start.\n");
}

/* A byte count: a number, or one followed by K, M or G (KiB, MiB, GiB). */
static int parse_size(const char *opt, const char *s, size_t min, size_t max, size_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end && !end[1]) {
		switch (*end) {
		case 'k': case 'K': shift = 10; end++; break;
		case 'm': case 'M': shift = 20; end++; break;
		case 'g': case 'G': shift = 30; end++; break;
		default: break;
		}
	}
	if (errno || *end || end == s || s[0] == '-' || v > (max >> shift) || (v << shift) < min) {
		fprintf(stderr, "mtlsdiag proxy: %s: '%s' is not a size from %zu to %zu bytes (K, M, G: KiB, MiB, GiB)\n",
			opt, s, min, max);
		return 0;
	}
	*out = (size_t)(v << shift);
	return 1;
}

/* One of two words: 1 (the first) or 2 (the second), 0 after saying so. */
/* The listeners as the options describe them. */
struct listen_set {
	struct proxy_listen_config l[MAX_LISTENERS];
	bool mode_set[MAX_LISTENERS];
	bool connect_flag[MAX_LISTENERS];
	const char *allow[MAX_LISTENERS][MAX_ALLOW];
	size_t n;
	bool intercepting;              /* a listener has --intercept */
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
		if (l->intercept && l->mode != PROXY_STATIC) {
			fprintf(stderr, "mtlsdiag proxy: --listen %s: --intercept goes with --upstream HOST:PORT\n", l->listen);
			return 0;
		}
		ls->intercepting |= l->intercept;
		l->allow = ls->allow[i];
	}
	return 1;
}

enum {
	O_LISTEN = 256, O_UPSTREAM, O_CONNECT, O_VIA, O_ALLOW, O_TRANSPARENT, O_JSON, O_LOG,
	O_PCAP_OUT, O_PCAP_FULL, O_CA_BUNDLE, O_AT, O_WORKERS, O_MAX_CONNS, O_CONNECT_TIMEOUT,
	O_IDLE_TIMEOUT, O_USER, O_KEYLOG, O_INSPECTION_CAS, O_EXPECT_CA, O_EXPECT_SPKI, O_KEEP_QUERY, O_UMASK,
	O_MAX_HANDSHAKE_BYTES, O_MAX_HANDSHAKE_TOTAL, O_OVER_BUDGET, O_HANDSHAKE_TIMEOUT, O_MAX_CONNS_PER_SOURCE,
	O_ON_OUTPUT_ERROR,
	O_VERIFY_DEPTH, O_CRL, O_PURPOSE, O_SERVER_KIND, O_METRICS, O_JSON_FORMAT, O_SYSLOG, O_COLOR,
};

/* The options as given. */
struct proxy_opts {
	struct listen_set ls;
	struct proxy_config relay;      /* the relay's own options as given: numbers,
					 * --user, --pcap-out, --at, the --log and
					 * --json paths, the expectations */
	struct cmd_chain_opts chain;    /* --ca-bundle, --verify-depth, --crl, --purpose, --server-kind */
	const char *keylogs[MAX_KEYLOGS];
	size_t n_keylogs;
	const char *cas[MAX_CATALOGUES];
	size_t n_cas;
	struct server_expect expect;
	struct icpt_opts icpt;
	const char *syslog_path;        /* --syslog[=SOCKET], or NULL */
	struct intercept_config icpt_cfg; /* what the intercept options name, loaded */
};

/* --listen and what describes a listener.  0 after printing why (or the
 * usage, for an unknown option). */
static int listener_option(struct listen_set *ls, int opt, const char *arg)
{
	struct proxy_listen_config *l;
	char err[200];
	size_t i;

	switch (opt) {
	case O_LISTEN: return add_listen(ls, arg);
	case O_CONNECT: return set_mode(ls, "--connect", PROXY_CONNECT);
	case O_TRANSPARENT: return set_mode(ls, "--transparent", PROXY_TRANSPARENT);
	case O_ICPT_INTERCEPT:
		current(ls, &i)->intercept = true;
		return 1;
	case O_UPSTREAM:
		if (!set_mode(ls, "--upstream", PROXY_STATIC))
			return 0;
		current(ls, &i)->upstream = arg;
		return 1;
	case O_VIA:
		if (!set_mode(ls, "--via", PROXY_CONNECT))
			return 0;
		current(ls, &i)->via = arg;
		return 1;
	case O_ALLOW:
		l = current(ls, &i);
		if (!proxy_allow_valid(arg, err, sizeof(err))) {
			fprintf(stderr, WHO ": --allow '%s': %s\n", arg, err);
			return 0;
		}
		if (l->n_allow == MAX_ALLOW) {
			fprintf(stderr, WHO ": at most %d --allow per listener\n", MAX_ALLOW);
			return 0;
		}
		ls->allow[i][l->n_allow++] = arg;
		return 1;
	default:
		usage(stderr);
		return 0;
	}
}

/* One option into o.  0 after printing why it is unusable. */
static int proxy_option(void *opts, int opt, const char *arg)
{
	struct proxy_opts *o = opts;

	struct proxy_config *c = &o->relay;
	int r;

	switch (opt) {
	case O_JSON: c->json_path = arg; return 1;
	case O_JSON_FORMAT: return cmd_parse_json_format(WHO, arg, &c->json_ecs);
	case O_UMASK: return cmd_parse_umask(WHO, arg, &c->file_mode);
	case O_LOG: c->log_path = arg; return 1;
	case O_PCAP_OUT: c->pcap_out = arg; return 1;
	case O_PCAP_FULL: c->pcap_full = true; return 1;
	case O_KEEP_QUERY: c->keep_query = true; return 1;
	case O_COLOR: return cmd_parse_color(WHO, arg, &c->color);
	case O_CA_BUNDLE: o->chain.bundle_path = arg; return 1;
	case O_CRL: o->chain.crl_path = arg; return 1;
	case O_VERIFY_DEPTH: return cmd_parse_verify_depth(WHO, arg, &o->chain.verify_depth);
	case O_PURPOSE: return cmd_parse_purpose(WHO, arg, &o->chain.purpose);
	case O_SERVER_KIND: return cmd_parse_server_kind(WHO, arg, &o->chain.server_kind);
	case O_USER: c->user = arg; return 1;
	case O_METRICS: c->metrics_listen = arg; return 1;
	case 'q': c->quiet = true; return 1;
	case 'l': c->line_buffered = true; return 1;
	case 'v': c->verbose = true; return 1;
	case O_SYSLOG:
		o->syslog_path = arg ? arg : SYSLOG_DEFAULT_SOCKET;
		return 1;
	case O_AT:
		c->at_set = true;
		return cmd_parse_time(WHO, arg, &c->at);
	case O_WORKERS: return cmd_parse_uint(WHO, "--workers", arg, 1, 256, &c->workers);
	case O_MAX_CONNS: return cmd_parse_uint(WHO, "--max-conns", arg, 1, 1000000, &c->max_conns);
	case O_MAX_CONNS_PER_SOURCE:
		return cmd_parse_uint(WHO, "--max-conns-per-source", arg, 0, 1000000, &c->max_conns_per_source);
	case O_CONNECT_TIMEOUT: return cmd_parse_uint(WHO, "--connect-timeout", arg, 1, 3600, &c->connect_timeout_s);
	case O_IDLE_TIMEOUT: return cmd_parse_uint(WHO, "--idle-timeout", arg, 1, 7 * 86400, &c->idle_timeout_s);
	case O_HANDSHAKE_TIMEOUT:
		return cmd_parse_uint(WHO, "--handshake-timeout", arg, 1, 3600, &c->handshake_timeout_s);
	case O_MAX_HANDSHAKE_BYTES:
		return parse_size("--max-handshake-bytes", arg, 1024, (size_t)16 << 20, &c->max_handshake_bytes);
	case O_MAX_HANDSHAKE_TOTAL:
		return parse_size("--max-handshake-total", arg, 65536, (size_t)64 << 30, &c->max_handshake_total);
	case O_OVER_BUDGET: {
		int which = cmd_choice(WHO, "--over-budget", arg, (const char *const[]){ "splice", "close", NULL }, NULL);

		c->over_budget_close = which == 1;
		return which >= 0;
	}
	case O_ON_OUTPUT_ERROR: {
		int which = cmd_choice(WHO, "--on-output-error", arg, (const char *const[]){ "continue", "stop", NULL },
				       NULL);

		c->stop_on_output_error = which == 1;
		return which >= 0;
	}
	case O_KEYLOG: return cmd_add_file(WHO, "--keylog", o->keylogs, &o->n_keylogs, MAX_KEYLOGS, arg);
	case O_INSPECTION_CAS:
		return cmd_add_file(WHO, "--inspection-cas", o->cas, &o->n_cas, MAX_CATALOGUES, arg);
	case O_EXPECT_CA:
	case O_EXPECT_SPKI:
		c->expect = &o->expect;
		return cmd_add_expect(WHO, &o->expect, opt == O_EXPECT_CA, arg);
	default:
		if ((r = icpt_option(&o->icpt, opt, arg)) >= 0)
			return r;
		if ((r = cmd_evidence_option(WHO, &c->evidence, opt, arg)) >= 0)
			return r;
		return listener_option(&o->ls, opt, arg);
	}
}

static enum cmd_parsed parse_proxy(int argc, char **argv, struct proxy_opts *o)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "upstream", required_argument, NULL, O_UPSTREAM },
		{ "connect", no_argument, NULL, O_CONNECT },
		{ "via", required_argument, NULL, O_VIA },
		{ "allow", required_argument, NULL, O_ALLOW },
		{ "transparent", no_argument, NULL, O_TRANSPARENT },
		{ "json", required_argument, NULL, O_JSON },
		{ "json-format", required_argument, NULL, O_JSON_FORMAT },
		{ "umask", required_argument, NULL, O_UMASK },
		{ "log", required_argument, NULL, O_LOG },
		{ "pcap-out", required_argument, NULL, O_PCAP_OUT },
		{ "pcap-full", no_argument, NULL, O_PCAP_FULL },
		{ "keep-query", no_argument, NULL, O_KEEP_QUERY },
		{ "color", required_argument, NULL, O_COLOR },
		{ "ca-bundle", required_argument, NULL, O_CA_BUNDLE },
		{ "verify-depth", required_argument, NULL, O_VERIFY_DEPTH },
		{ "crl", required_argument, NULL, O_CRL },
		{ "purpose", required_argument, NULL, O_PURPOSE },
		{ "server-kind", required_argument, NULL, O_SERVER_KIND },
		{ "at", required_argument, NULL, O_AT },
		{ "workers", required_argument, NULL, O_WORKERS },
		{ "max-conns", required_argument, NULL, O_MAX_CONNS },
		{ "max-conns-per-source", required_argument, NULL, O_MAX_CONNS_PER_SOURCE },
		{ "connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT },
		{ "idle-timeout", required_argument, NULL, O_IDLE_TIMEOUT },
		{ "handshake-timeout", required_argument, NULL, O_HANDSHAKE_TIMEOUT },
		{ "max-handshake-bytes", required_argument, NULL, O_MAX_HANDSHAKE_BYTES },
		{ "max-handshake-total", required_argument, NULL, O_MAX_HANDSHAKE_TOTAL },
		{ "over-budget", required_argument, NULL, O_OVER_BUDGET },
		{ "on-output-error", required_argument, NULL, O_ON_OUTPUT_ERROR },
		{ "user", required_argument, NULL, O_USER },
		{ "metrics", required_argument, NULL, O_METRICS },
		{ "quiet", no_argument, NULL, 'q' },
		{ "line-buffered", no_argument, NULL, 'l' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "syslog", optional_argument, NULL, O_SYSLOG },
		{ "keylog", required_argument, NULL, O_KEYLOG },
		{ "inspection-cas", required_argument, NULL, O_INSPECTION_CAS },
		{ "expect-server-ca", required_argument, NULL, O_EXPECT_CA },
		{ "expect-server-spki", required_argument, NULL, O_EXPECT_SPKI },
		{ "intercept", no_argument, NULL, O_ICPT_INTERCEPT },
		{ "server-cert", required_argument, NULL, O_ICPT_SERVER_CERT },
		{ "server-key", required_argument, NULL, O_ICPT_SERVER_KEY },
		{ "forge-ca", required_argument, NULL, O_ICPT_FORGE_CA },
		{ "forge-ca-key", required_argument, NULL, O_ICPT_FORGE_CA_KEY },
		{ "upstream-cert", required_argument, NULL, O_ICPT_UPSTREAM_CERT },
		{ "upstream-key", required_argument, NULL, O_ICPT_UPSTREAM_KEY },
		{ "upstream-ca", required_argument, NULL, O_ICPT_UPSTREAM_CA },
		{ "key-pass", required_argument, NULL, O_ICPT_KEY_PASS },
		{ "verify", required_argument, NULL, O_ICPT_VERIFY },
		{ "refuse", required_argument, NULL, O_ICPT_REFUSE },
		{ "forward-identity", no_argument, NULL, O_ICPT_FORWARD_IDENTITY },
		{ "no-faithful", no_argument, NULL, O_ICPT_NO_FAITHFUL },
		{ "upstream-tls", required_argument, NULL, O_ICPT_UPSTREAM_TLS },
		{ "post-handshake-auth", no_argument, NULL, O_ICPT_POST_HANDSHAKE_AUTH },
		{ "resumption", no_argument, NULL, O_ICPT_RESUMPTION },
		{ "upstream-keepalive", required_argument, NULL, O_ICPT_UPSTREAM_KEEPALIVE },
		{ "upstream-keepalive-timeout", required_argument, NULL, O_ICPT_UPSTREAM_KEEPALIVE_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		CMD_EVIDENCE_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	enum cmd_parsed parsed;

	memset(o, 0, sizeof(*o));
	cmd_chain_opts_init(&o->chain);
	o->relay.file_mode = CMD_FILE_MODE;
	parsed = cmd_getopt(WHO, argc, argv, "+:hqlv", opts, usage, proxy_option, o);
	if (parsed != CMD_RUN)
		return parsed;
	if (optind < argc) {
		fprintf(stderr, WHO ": unexpected argument '%s' (try 'mtlsdiag proxy --help')\n", argv[optind]);
		return CMD_USAGE_ERROR;
	}
	if (!check_listeners(&o->ls))
		return CMD_USAGE_ERROR;
	if (!icpt_check(&o->icpt, o->ls.intercepting, o->chain.bundle_path))
		return CMD_USAGE_ERROR;
	if (o->relay.pcap_full && !o->relay.pcap_out) {
		fprintf(stderr, WHO ": --pcap-full goes with --pcap-out FILE\n");
		return CMD_USAGE_ERROR;
	}
	/* an intercepting listener holds its client sessions' keys itself */
	if (!cmd_evidence_check(WHO, &o->relay.evidence, o->n_keylogs > 0 || o->ls.intercepting))
		return CMD_USAGE_ERROR;
	o->relay.evidence.who = WHO;
	o->relay.evidence.file_mode = o->relay.file_mode;
	o->relay.evidence.argc = argc;
	o->relay.evidence.argv = argv;
	return CMD_RUN;
}

/* The relay's configuration from the options, its files opened: the
 * bundle, the catalogue, the key logs (followed: read again whenever a
 * connection needs a secret not yet there), --log and --json.  0 after
 * printing why; what was taken is in cfg, cat and out either way. */
static int build_config(struct proxy_opts *o, struct proxy_config *cfg, struct inspect_catalogue **cat,
			struct cmd_output *out)
{
	struct chain_policy *policy;
	time_t now = o->relay.at_set ? o->relay.at : time(NULL);

	*cfg = o->relay;
	cfg->listeners = o->ls.l;
	cfg->n_listeners = o->ls.n;
	cfg->log = stderr;
	/* the interception's refusal of a bundle comes before the bundle's warnings */
	if (o->ls.intercepting && !icpt_load(&o->icpt, o->chain.bundle_path, o->chain.verify_depth, &o->icpt_cfg))
		return 0;
	if (!(policy = cmd_load_policy(WHO, &o->chain, &now)))
		return 0;
	cfg->chain_policy = policy;
	cfg->ca_bundle = policy->bundle;
	if (o->ls.intercepting) {
		o->icpt_cfg.ca_store = cfg->ca_bundle;
		cfg->intercept = &o->icpt_cfg;
	}
	if (!(*cat = cmd_load_inspection(WHO, o->cas, o->n_cas)))
		return 0;
	cfg->inspection = *cat;
	if (!cmd_load_keylogs(WHO, o->keylogs, o->n_keylogs, true, &cfg->keylog))
		return 0;
	/* the log, standard error included, is an outfile: whole lines, in
	 * batches unless a terminal or --line-buffered wants each at once */
	if (cfg->log_path)
		cfg->log_file = cmd_open_file(WHO, "--log", cfg->log_path, true, cfg->file_mode);
	else if (!(cfg->log_file = outfile_fd(STDERR_FILENO, WHO ": standard error")))
		fprintf(stderr, WHO ": out of memory\n");
	if (!cfg->log_file)
		return 0;
	cfg->log = outfile_stream(cfg->log_file);
	if (cfg->line_buffered || outfile_is_tty(cfg->log_file))
		outfile_set_line_buffered(cfg->log_file);
	if (!cmd_open_outputs(WHO, cfg->json_path, true, cfg->file_mode, out))
		return 0;
	if (out->json_file && (cfg->line_buffered || outfile_is_tty(out->json_file)))
		outfile_set_line_buffered(out->json_file);
	if (o->syslog_path && !(cfg->syslog = cmd_open_syslog(WHO, o->syslog_path)))
		return 0;
	cfg->json = out->json;
	cfg->json_file = out->json_file;
	return 1;
}

static int run_proxy(struct proxy_opts *o)
{
	struct proxy_config cfg;
	struct inspect_catalogue *cat = NULL;
	struct cmd_output out = { 0 };
	int ret = 2;

	if (build_config(o, &cfg, &cat, &out))
		ret = proxy_run(&cfg);
	if (!cmd_close_outputs(WHO, &out))
		ret = 2;
	if (outfile_close(cfg.log_file) != 0)
		ret = 2;
	cmd_close_syslog(WHO, o->syslog_path, cfg.syslog);
	cmd_policy_free((struct chain_policy *)cfg.chain_policy);
	intercept_config_clear(&o->icpt_cfg);
	keylog_free(cfg.keylog);
	inspect_free(cat);
	return ret;
}

int cmd_proxy(int argc, char **argv)
{
	static struct proxy_opts o;   /* the listeners' --allow lists are large */
	enum cmd_parsed parsed = parse_proxy(argc, argv, &o);

	return parsed == CMD_RUN ? run_proxy(&o) : parsed == CMD_HELP ? 0 : 2;
}
