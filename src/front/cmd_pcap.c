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
#include <sys/time.h>
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
#include "out/detail.h"
#include "out/ecs.h"
#include "out/syslogout.h"
#include "out/report.h"
#include "wire/x509info.h"

#define WHO "mtlsdiag pcap"
#define MAX_CATALOGUES 16

/* The options as given. */
struct pcap_opts {
	const char *json_path;
	struct cmd_chain_opts chain;    /* --ca-bundle, --verify-depth, --crl, --purpose, --server-kind */
	mode_t file_mode;               /* of the --json file: 0600, or by --umask */
	const char **keylogs;           /* --keylog FILE... (allocated: any number) */
	size_t n_keylogs;
	const char *cas[MAX_CATALOGUES];
	size_t n_cas;
	struct server_expect *expect;   /* allocated at the first --expect-server-*, or NULL */
	bool at_set, quiet, keep_query, line_buffered;
	bool ecs;                       /* --json-format ecs */
	bool verbose;                   /* -v */
	const char *syslog_path;        /* --syslog[=SOCKET], or NULL */
	time_t at;
	struct capture_opts capture;    /* --filter */
	char *const *files;
	size_t n_files;
};

struct pcap_run {
	struct observer_config cfg;
	struct chain_policy *policy;    /* cfg.chain_policy, owned */
	struct inspect_catalogue *cat;  /* cfg.inspection, owned */
	struct cmd_output out;
	bool streaming;         /* the input is a pipe or a FIFO: records are flushed one by one */
	struct json json;       /* the builder every record of the run is made in */
	const char *source;     /* the file being read, as named on the command line ("-": standard input) */
	struct report_tally tally;
	bool quiet;
	bool ecs;               /* --json-format ecs */
	bool verbose;           /* -v: the evidence and remedies under each line */
	struct syslog_out *syslog;
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

	bool text = run->out.text && !run->quiet;
	char line[2048];

	report_tally_add(&run->tally, v);
	/* the human line is made once: printed, and the record's summary */
	if (text || run->out.json || run->syslog)
		report_line(line, sizeof(line), f, v);
	if (text && run->verbose) {
		char detail[DETAIL_MAX];

		snprintf(detail, sizeof(detail), "%s", line);
		detail_append(detail, sizeof(detail), f, v);
		fprintf(run->out.text, "%s\n", detail);
	} else if (text) {
		flockfile(run->out.text);
		fputs_unlocked(line, run->out.text);
		putc_unlocked('\n', run->out.text);
		funlockfile(run->out.text);
	}
	if (run->syslog)
		(void)syslog_out_line(run->syslog, syslog_severity_of(v), line);   /* a loss is counted */
	if (run->out.json && run->ecs) {
		json_reset(&run->json);
		ecs_connection_begin(&run->json, f, v, line);
		ecs_end(&run->json);
		(void)json_write_line(&run->json, run->out.json);   /* a loss is counted by the output */
	} else if (run->out.json) {
		(void)report_json(&run->json, run->out.json, f, v, line);
	}
	/* a capture being written as it is read: each verdict as it comes */
	if (run->streaming) {
		if (run->out.text)
			fflush(run->out.text);
		if (run->out.json)
			fflush(run->out.json);
	}
	obs_conn_free(flow);
}

/* The one teardown of a capture flow: decide, then pair or print. */
static void finished(void *ctx, struct obs_conn *flow, bool truncated, const struct timeval *ts)
{
	struct pcap_run *run = ctx;

	obs_conn_set_source(flow, run->source);
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
		"                    human lines then go to standard error); created 0600\n"
		"  --json-format F   default, or ecs: the records with Elastic Common Schema\n"
		"                    names (tls.*, source.*, ...; the rest under mtlsdiag.*)\n"
		"  --umask MASK      create output files with 0666 less MASK (022) instead\n"
		"  --at TIME         judge certificate validity at TIME (2026-11-23T12:00:00Z,\n"
		"                    2026-11-23, or @EPOCH) instead of the capture's timestamps\n"
		"  --ca-bundle FILE  the server's client-CA bundle (PEM, nginx's\n"
		"                    ssl_client_certificate): verify client chains with OpenSSL\n"
		"                    as the server does, and say the error as nginx logs it\n"
		"  --verify-depth N  the server's verify depth (nginx's ssl_verify_depth)\n"
		"  --crl FILE        the server's CRLs (PEM, nginx's ssl_crl): every certificate\n"
		"                    of the chain is checked, as nginx does\n"
		"  --purpose NAME    the purpose verified (default sslclient, as a TLS server)\n"
		"  --server-kind KIND  nginx, apache, haproxy, envoy: the server's software, for\n"
		"                    its log line and the remedies (default: told from the\n"
		"                    connection)\n"
		"  --keylog FILE     an NSS key log (what SSLKEYLOGFILE makes curl, browsers and\n"
		"                    Python write): decrypt TLS 1.3 handshakes and the HTTP\n"
		"                    answer; repeatable\n"
		"  --keep-query      keep the query string of a decrypted request line (by\n"
		"                    default it is written as '?\xe2\x80\xa6': it may hold tokens)\n"
		"  --inspection-cas FILE  more inspection-CA rules, added to the bundled\n"
		"                    catalogue (conf/inspection-cas.conf); repeatable\n"
		"  --expect-server-ca FILE  the CA (PEM) the real server's chain comes from: a\n"
		"                    server chain from another CA was made by a middlebox\n"
		"  --expect-server-spki SHA256  the real server's key (SHA-256 of its\n"
		"                    SubjectPublicKeyInfo, hex); repeatable\n"
		"  -f, --filter EXPR only packets matching this BPF expression ('port 443')\n"
		"  -q, --quiet       print only the closing summary\n"
		"  -l, --line-buffered  write each line as soon as it is made (for a reader on\n"
		"                    a pipe); by default only a terminal, or a capture read\n"
		"                    from a pipe, gets that: other output leaves 64 KiB at a time\n"
		"  -v, --verbose     under each line, the evidence and the remedies\n"
		"  --syslog[=SOCKET] also send each connection's line to the system log\n"
		"                    (facility daemon; SOCKET: /dev/log)\n"
		"  -h, --help        this help\n"
		"\n"
		"A capture with both legs of a TLS-terminating gateway (taken on the gateway,\n"
		"or two taps merged with mergecap) pairs them: a client leg never asked for a\n"
		"certificate and a server leg that answered the server's request empty, for the\n"
		"same name at the same time, both get fault middlebox and name each other.\n"
		"\n"
		"Exit status: 0 analysed, 2 usage or input error.\n");
}

/* One option into o.  0 after printing why it is unusable (or the usage,
 * for an unknown one). */
static int pcap_option(void *opts, int opt, const char *arg)
{
	struct pcap_opts *o = opts;

	switch (opt) {
	case 'j': o->json_path = arg; return 1;
	case 'J': return cmd_parse_json_format(WHO, arg, &o->ecs);
	case 'U': return cmd_parse_umask(WHO, arg, &o->file_mode);
	case 'b': o->chain.bundle_path = arg; return 1;
	case 'C': o->chain.crl_path = arg; return 1;
	case 'D': return cmd_parse_verify_depth(WHO, arg, &o->chain.verify_depth);
	case 'P': return cmd_parse_purpose(WHO, arg, &o->chain.purpose);
	case 'S': return cmd_parse_server_kind(WHO, arg, &o->chain.server_kind);
	case 'f': o->capture.filter = arg; return 1;
	case 'q': o->quiet = true; return 1;
	case 'l': o->line_buffered = true; return 1;
	case 'v': o->verbose = true; return 1;
	case 'L': o->syslog_path = arg ? arg : SYSLOG_DEFAULT_SOCKET; return 1;
	case 'Q': o->keep_query = true; return 1;
	case 'a':
		if (!cmd_parse_time(WHO, arg, &o->at))
			return 0;
		o->at_set = true;
		return 1;
	case 'k': {
		const char **grown = realloc(o->keylogs, (o->n_keylogs + 1) * sizeof(*o->keylogs));

		if (!grown) {
			fprintf(stderr, WHO ": out of memory\n");
			return 0;
		}
		o->keylogs = grown;
		o->keylogs[o->n_keylogs++] = arg;
		return 1;
	}
	case 'i':
		return cmd_add_file(WHO, "--inspection-cas", o->cas, &o->n_cas, MAX_CATALOGUES, arg);
	case 'e':
	case 'p':
		if (!o->expect && !(o->expect = calloc(1, sizeof(*o->expect)))) {
			fprintf(stderr, WHO ": out of memory\n");
			return 0;
		}
		return cmd_add_expect(WHO, o->expect, opt == 'e', arg);
	default:
		usage(stderr);
		return 0;
	}
}

static enum cmd_parsed parse_pcap(int argc, char **argv, struct pcap_opts *o)
{
	static const struct option opts[] = {
		{ "json", required_argument, NULL, 'j' },
		{ "json-format", required_argument, NULL, 'J' },
		{ "umask", required_argument, NULL, 'U' },
		{ "at", required_argument, NULL, 'a' },
		{ "ca-bundle", required_argument, NULL, 'b' },
		{ "verify-depth", required_argument, NULL, 'D' },
		{ "crl", required_argument, NULL, 'C' },
		{ "purpose", required_argument, NULL, 'P' },
		{ "server-kind", required_argument, NULL, 'S' },
		{ "keylog", required_argument, NULL, 'k' },
		{ "inspection-cas", required_argument, NULL, 'i' },
		{ "expect-server-ca", required_argument, NULL, 'e' },
		{ "expect-server-spki", required_argument, NULL, 'p' },
		{ "filter", required_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "line-buffered", no_argument, NULL, 'l' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "syslog", optional_argument, NULL, 'L' },
		{ "keep-query", no_argument, NULL, 'Q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum cmd_parsed parsed;

	memset(o, 0, sizeof(*o));
	cmd_chain_opts_init(&o->chain);
	o->file_mode = CMD_FILE_MODE;
	parsed = cmd_getopt(WHO, argc, argv, "+:f:qlvh", opts, usage, pcap_option, o);
	if (parsed != CMD_RUN)
		return parsed;
	if (optind >= argc) {
		fprintf(stderr, WHO ": no capture file given (try 'mtlsdiag pcap --help')\n");
		return CMD_USAGE_ERROR;
	}
	o->files = argv + optind;
	o->n_files = (size_t)(argc - optind);
	return CMD_RUN;
}

/* The observer's inputs: how the server verifies (--ca-bundle, ...), the
 * inspection catalogue, --keylog and the expectations.  0 after printing
 * why. */
static int load_inputs(struct pcap_run *run, const struct pcap_opts *o)
{
	struct observer_config *cfg = &run->cfg;

	cfg->at = o->at;
	cfg->at_set = o->at_set;
	cfg->expect = o->expect;
	time_t now = o->at_set ? o->at : time(NULL);

	if (!(run->policy = cmd_load_policy(WHO, &o->chain, &now)))
		return 0;
	cfg->chain_policy = run->policy;
	cfg->ca_bundle = run->policy->bundle;
	if (!(run->cat = cmd_load_inspection(WHO, o->cas, o->n_cas)))
		return 0;
	cfg->inspection = run->cat;
	if (!cmd_load_keylogs(WHO, o->keylogs, o->n_keylogs, false, &cfg->keylog))
		return 0;
	if (cfg->keylog && keylog_entries(cfg->keylog) == 0)
		fprintf(stderr, WHO ": warning: the key log has no usable secrets\n");
	return 1;
}

/* One capture file through the observer.  0 when it could not be read;
 * *truncated when it was cut inside a packet record. */
static int read_capture(struct pcap_run *run, const struct pcap_opts *o, const char *path, bool *truncated)
{
	struct obs_sink os = { .cfg = &run->cfg, .finished = finished, .ctx = run };
	struct flow_sink sink;
	struct capture_stats stats = { 0 };
	char err[512] = "";
	int ok = 1;

	obs_sink_init(&os, &sink);
	run->streaming = input_streams(path);
	run->source = path;
	ok = capture_read_file(path, &o->capture, &sink, &stats, err, sizeof(err)) == 0;
	/* the lines so far before what is said of the file (both may be on
	 * standard error) */
	if (run->out.text)
		fflush(run->out.text);
	if (!ok) {
		fprintf(stderr, "%s\n", err[0] ? err : WHO ": cannot read capture");
		return 0;
	}
	ok = 1;
	if (stats.file_truncated) {
		fprintf(stderr, WHO ": %s: warning: the file is truncated (cut inside a packet record); analysed the %llu packets before the cut\n",
			path, (unsigned long long)stats.packets);
		*truncated = true;
	} else if (stats.stopped) {
		/* not a cut: the reader met something it cannot go past */
		fprintf(stderr, "%s; analysed the %llu packets before it\n", err, (unsigned long long)stats.packets);
		ok = 0;
	}
	if (stats.truncated)
		fprintf(stderr, WHO ": %s: warning: %llu packet%s cut short by the capture's snap length\n",
			path, (unsigned long long)stats.truncated, stats.truncated == 1 ? " was" : "s were");
	return ok;
}

static void print_summary(struct pcap_run *run, bool any_truncated)
{
	struct json j;

	if (run->out.text)
		report_summary_text(run->out.text, &run->tally);
	if (!run->out.json)
		return;
	json_init(&j);
	if (run->ecs) {
		struct timeval now;

		gettimeofday(&now, NULL);
		ecs_record_begin(&j, "summary", &now);
	} else {
		json_object(&j, NULL);
	}
	report_summary_members(&j, &run->tally);
	if (any_truncated)
		json_bool(&j, "file_truncated", true);
	if (run->ecs)
		ecs_end(&j);
	else
		json_end(&j);
	(void)json_write_line(&j, run->out.json);
	json_free(&j);
}

static int run_pcap(const struct pcap_opts *o)
{
	struct pcap_run run = { .quiet = o->quiet, .ecs = o->ecs, .verbose = o->verbose };
	bool any_truncated = false;
	size_t i;
	int ret = 2;

	if (!load_inputs(&run, o) || !cmd_open_outputs(WHO, o->json_path, false, o->file_mode, &run.out) ||
	    !cmd_open_text(WHO, &run.out, o->line_buffered))
		goto Exit;
	if (o->syslog_path && !(run.syslog = cmd_open_syslog(WHO, o->syslog_path)))
		goto Exit;
	/* -q without --json prints only the counts: nothing reads the evidence */
	run.cfg.no_evidence = run.quiet && !run.out.json && !run.syslog;
	run.cfg.keep_query = o->keep_query;
	run.cfg.certs = cert_cache_new(4096);
	run.cfg.chains = chain_memo_new();
	run.cfg.pool = obs_pool_new();
	run.pairs = legpair_new(PAIR_MAX_HELD, PAIR_HOLD_S, emit, &run);
	if (!run.cfg.certs || !run.cfg.chains || !run.cfg.pool || !run.pairs) {
		fprintf(stderr, WHO ": out of memory\n");
		goto Exit;
	}
	ret = 0;
	for (i = 0; i < o->n_files; i++) {
		if (!read_capture(&run, o, o->files[i], &any_truncated))
			ret = 2;
	}
	legpair_flush(run.pairs);
	print_summary(&run, any_truncated);
	if (any_truncated)
		ret = 2;
Exit:
	legpair_free(run.pairs);
	json_free(&run.json);
	cmd_close_syslog(WHO, o->syslog_path, run.syslog);
	if (!cmd_close_outputs(WHO, &run.out))
		ret = 2;
	obs_pool_free(run.cfg.pool);
	chain_memo_free(run.cfg.chains);
	cert_cache_free(run.cfg.certs);
	cmd_policy_free(run.policy);
	keylog_free(run.cfg.keylog);
	inspect_free(run.cat);
	return ret;
}

int cmd_pcap(int argc, char **argv)
{
	struct pcap_opts o;
	enum cmd_parsed parsed = parse_pcap(argc, argv, &o);
	int ret = parsed == CMD_RUN ? run_pcap(&o) : parsed == CMD_HELP ? 0 : 2;

	free(o.keylogs);
	free(o.expect);
	return ret;
}
