/* cmd_pcap: `mtlsdiag pcap`, the capture-file front end: drives the
 * observer from capture.c's reassembled streams and prints one verdict per
 * connection. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "wire/capture.h"
#include "analysis/chain.h"
#include "front/cmds.h"
#include "analysis/expect.h"
#include "analysis/inspect.h"
#include "wire/keylog.h"
#include "analysis/legpair.h"
#include "analysis/observer.h"
#include "out/report.h"
#include "wire/x509info.h"

struct pcap_run {
	struct observer_config cfg;
	FILE *text;             /* human lines, or NULL */
	FILE *json;             /* JSON Lines, or NULL */
	bool streaming;         /* the input is a pipe or a FIFO: records are flushed one by one */
	struct report_tally tally;
	bool quiet;
	struct legpair *pairs;  /* holds possible gateway legs until paired */
};

/* Legs are held at most this long (capture time) after they ended, and at
 * most this many at once. */
#define PAIR_HOLD_S 10
#define PAIR_MAX_HELD 512

/* Print and free one decided connection (through the leg pairing). */
static void emit(void *ctx, void *flow, const struct conn_facts *f, const struct verdict *v)
{
	struct pcap_run *run = ctx;

	report_tally_add(&run->tally, v);
	if (run->text && !run->quiet) {
		char line[2048];

		report_line(line, sizeof(line), f, v);
		fprintf(run->text, "%s\n", line);
	}
	if (run->json)
		report_json(run->json, f, v);
	/* a capture being written as it is read: each verdict as it comes */
	if (run->streaming) {
		if (run->text)
			fflush(run->text);
		if (run->json)
			fflush(run->json);
	}
	obs_conn_free(flow);
}

/* The one teardown of a capture flow: decide, then pair or print. */
static void finished(void *ctx, struct obs_conn *flow, bool truncated, const struct timeval *ts)
{
	struct pcap_run *run = ctx;
	(void)obs_conn_finish(flow, truncated, ts);
	legpair_offer(run->pairs, flow, obs_conn_facts(flow), obs_conn_verdict_for_update(flow));
}

/* Standard input or a path that is not a regular file (a pipe, a FIFO). */
static bool input_streams(const char *path)
{
	struct stat st;

	if (strcmp(path, "-") == 0)
		return fstat(STDIN_FILENO, &st) != 0 || !S_ISREG(st.st_mode);
	return stat(path, &st) == 0 && !S_ISREG(st.st_mode);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mtlsdiag pcap [OPTIONS] FILE...\n"
		"\n"
		"Analyses capture files (pcap or pcapng; - reads standard input) and prints one\n"
		"verdict per TCP connection: did the client send its certificate, did the server\n"
		"refuse it, and who must act.\n"
		"\n"
		"options:\n"
		"  --json FILE       also write JSON Lines to FILE (- for standard output; the\n"
		"                    human lines then go to standard error)\n"
		"  --at TIME         judge certificate validity at TIME (2026-11-23T12:00:00Z,\n"
		"                    2026-11-23, or @EPOCH) instead of the capture's timestamps\n"
		"  --ca-bundle FILE  the server's client-CA bundle (PEM): verify client chains\n"
		"                    fully, as the server would\n"
		"  --keylog FILE     an NSS key log (what SSLKEYLOGFILE makes curl, browsers and\n"
		"                    Python write): decrypt TLS 1.3 handshakes and the HTTP\n"
		"                    answer; repeatable\n"
		"  --inspection-cas FILE  more inspection-CA rules, added to the bundled\n"
		"                    catalogue (conf/inspection-cas.conf); repeatable\n"
		"  --expect-server-ca FILE  the CA (PEM) the real server's chain comes from: a\n"
		"                    server chain from another CA was made by a middlebox\n"
		"  --expect-server-spki SHA256  the real server's key (SHA-256 of its\n"
		"                    SubjectPublicKeyInfo, hex); repeatable\n"
		"  -f, --filter EXPR only packets matching this BPF expression ('port 443')\n"
		"  -q, --quiet       print only the closing summary\n"
		"  -h, --help        this help\n"
		"\n"
		"A capture with both legs of a TLS-terminating gateway (taken on the gateway,\n"
		"or two taps merged with mergecap) pairs them: a client leg never asked for a\n"
		"certificate and a server leg that answered the server's request empty, for the\n"
		"same name at the same time, both get fault middlebox and name each other.\n"
		"\n"
		"Exit status: 0 analysed, 2 usage or input error.\n");
}


int cmd_pcap(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", required_argument, NULL, 'j' },
		{ "at", required_argument, NULL, 'a' },
		{ "ca-bundle", required_argument, NULL, 'b' },
		{ "keylog", required_argument, NULL, 'k' },
		{ "inspection-cas", required_argument, NULL, 'i' },
		{ "expect-server-ca", required_argument, NULL, 'e' },
		{ "expect-server-spki", required_argument, NULL, 'p' },
		{ "filter", required_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pcap_run run = { .text = stdout };
	struct capture_opts copts = { 0 };
	const char *json_path = NULL, *bundle_path = NULL;
	const char **keylogs = NULL;
	const char *cas[16];
	struct inspect_catalogue *cat = NULL;
	struct server_expect *expect = NULL;
	size_t n_keylogs = 0, n_cas = 0;
	bool json_owned = false, any_truncated = false;
	int ret = 2, opt, i;

	while ((opt = getopt_long(argc, argv, "+f:qh", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json_path = optarg; break;
		case 'a':
			if (!cmd_parse_time(optarg, &run.cfg.at)) {
				fprintf(stderr, "mtlsdiag pcap: --at: cannot read time '%s' (use 2026-11-23T12:00:00Z, 2026-11-23 or @EPOCH)\n", optarg);
				goto Exit;
			}
			run.cfg.at_set = true;
			break;
		case 'b': bundle_path = optarg; break;
		case 'k': {
			const char **grown = realloc(keylogs, (n_keylogs + 1) * sizeof(*keylogs));

			if (!grown) {
				fprintf(stderr, "mtlsdiag pcap: out of memory\n");
				goto Exit;
			}
			keylogs = grown;
			keylogs[n_keylogs++] = optarg;
			break;
		}
		case 'i':
			if (!cmd_add_file("mtlsdiag pcap", "--inspection-cas", cas, &n_cas, sizeof(cas) / sizeof(cas[0]), optarg))
				goto Exit;
			break;
		case 'e':
		case 'p':
			if (!expect && !(expect = calloc(1, sizeof(*expect)))) {
				fprintf(stderr, "mtlsdiag pcap: out of memory\n");
				goto Exit;
			}
			if (!cmd_add_expect("mtlsdiag pcap", expect, opt == 'e', optarg))
				goto Exit;
			break;
		case 'f': copts.filter = optarg; break;
		case 'q': run.quiet = true; break;
		case 'h': usage(stdout); ret = 0; goto Exit;
		default: usage(stderr); goto Exit;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "mtlsdiag pcap: no capture file given (try 'mtlsdiag pcap --help')\n");
		goto Exit;
	}
	if (bundle_path && !(run.cfg.ca_bundle = cmd_load_bundle(bundle_path)))
		goto Exit;
	if (!(cat = cmd_load_inspection("mtlsdiag pcap", cas, n_cas)))
		goto Exit;
	run.cfg.inspection = cat;
	run.cfg.expect = expect;
	if (!cmd_load_keylogs("mtlsdiag pcap", keylogs, n_keylogs, false, &run.cfg.keylog))
		goto Exit;
	if (run.cfg.keylog && keylog_entries(run.cfg.keylog) == 0)
		fprintf(stderr, "mtlsdiag pcap: warning: the key log has no usable secrets\n");
	if (json_path) {
		if (strcmp(json_path, "-") == 0) {
			run.json = stdout;
			run.text = stderr;
		} else if (!(run.json = fopen(json_path, "w"))) {
			fprintf(stderr, "mtlsdiag pcap: --json %s: %s\n", json_path, strerror(errno));
			goto Exit;
		} else {
			json_owned = true;
		}
	}
	/* -q without --json prints only the counts: nothing reads the evidence */
	run.cfg.no_evidence = run.quiet && !run.json;
	run.cfg.certs = cert_cache_new(4096);
	run.cfg.chains = chain_memo_new();
	run.cfg.pool = obs_pool_new();
	run.pairs = legpair_new(PAIR_MAX_HELD, PAIR_HOLD_S, emit, &run);
	if (!run.cfg.certs || !run.cfg.chains || !run.cfg.pool || !run.pairs) {
		fprintf(stderr, "mtlsdiag pcap: out of memory\n");
		goto Exit;
	}
	ret = 0;
	for (i = optind; i < argc; i++) {
		struct obs_sink os = { .cfg = &run.cfg, .finished = finished, .ctx = &run };
		struct flow_sink sink;
		struct capture_stats stats = { 0 };
		char err[512] = "";

		obs_sink_init(&os, &sink);
		run.streaming = input_streams(argv[i]);
		if (capture_read_file(argv[i], &copts, &sink, &stats, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s\n", err[0] ? err : "mtlsdiag pcap: cannot read capture");
			ret = 2;
			continue;
		}
		if (stats.file_truncated) {
			fprintf(stderr, "mtlsdiag pcap: %s: warning: the file is truncated (cut inside a packet record); analysed the %llu packets before the cut\n",
				argv[i], (unsigned long long)stats.packets);
			any_truncated = true;
		}
		if (stats.truncated)
			fprintf(stderr, "mtlsdiag pcap: %s: warning: %llu packet%s cut short by the capture's snap length\n",
				argv[i], (unsigned long long)stats.truncated, stats.truncated == 1 ? " was" : "s were");
	}
	legpair_flush(run.pairs);
	if (run.text)
		report_summary_text(run.text, &run.tally);
	if (run.json) {
		struct json j;

		json_init(&j);
		json_object(&j, NULL);
		report_summary_members(&j, &run.tally);
		if (any_truncated)
			json_bool(&j, "file_truncated", true);
		json_end(&j);
		(void)json_write_line(&j, run.json);
		json_free(&j);
	}
	if (any_truncated && ret == 0)
		ret = 2;
Exit:
	legpair_free(run.pairs);
	if (json_owned && run.json && fclose(run.json) != 0) {
		fprintf(stderr, "mtlsdiag pcap: --json %s: %s\n", json_path, strerror(errno));
		ret = 2;
	}
	obs_pool_free(run.cfg.pool);
	chain_memo_free(run.cfg.chains);
	cert_cache_free(run.cfg.certs);
	X509_STORE_free(run.cfg.ca_bundle);
	keylog_free(run.cfg.keylog);
	free(keylogs);
	inspect_free(cat);
	free(expect);
	return ret;
}
