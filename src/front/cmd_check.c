/* cmd_check: `mtlsdiag check-bundle FILE`, a CA bundle checked before a
 * server is given it (in CI, before `nginx -s reload`): its certificates
 * with their validity, the mistakes in it (bundle.h), and a client
 * certificate verified against it the way the server will. */
#include "config.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "analysis/bundle.h"
#include "analysis/chain.h"
#include "front/cmds.h"
#include "wire/x509info.h"

#define WHO "mtlsdiag check-bundle"

/* The options as given. */
struct check_opts {
	struct cmd_chain_opts chain;    /* the bundle is chain.bundle_path */
	const char *client_cert;        /* --client-cert FILE: the leaf, then what the client sends with it */
	int warn_days;                  /* --warn-days N */
	bool at_set;
	time_t at;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mtlsdiag check-bundle FILE [OPTIONS]\n"
		"\n"
		"Checks a CA bundle (PEM: what nginx's ssl_client_certificate, Apache's\n"
		"SSLCACertificateFile or HAProxy's ca-file name) before a server is given it:\n"
		"lists its certificates with their validity, finds leaf certificates put in it\n"
		"by mistake, CAs expired or not yet valid, names under two keys (a rotation\n"
		"half done) and CAs about to expire, and verifies a client certificate against\n"
		"it as the server will.\n"
		"\n"
		"options:\n"
		"  --client-cert FILE  a client certificate (PEM: the leaf, then the\n"
		"                    intermediates the client sends): verify it\n"
		"  --warn-days N     warn about certificates expiring within N days (30)\n"
		"  --verify-depth N  the server's verify depth (nginx's ssl_verify_depth)\n"
		"  --crl FILE        the server's CRLs (nginx's ssl_crl)\n"
		"  --purpose NAME    the purpose verified (default sslclient)\n"
		"  --server-kind KIND  whose log line to write: nginx (default), apache,\n"
		"                    haproxy, envoy\n"
		"  --at TIME         judge validity at TIME instead of now\n"
		"  -h, --help        this help\n"
		"\n"
		"Exit status: 0 the bundle is usable (and the client certificate verifies);\n"
		"1 it is not: the certificate is refused, or the bundle holds a leaf or a CA\n"
		"expired or not yet valid; 2 usage or input error.  Warnings (a CA expiring\n"
		"soon, a name under two keys) leave the status 0.\n");
}

static int parse_warn_days(const char *arg, int *out)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (end == arg || *end || v < 0 || v > 100000) {
		fprintf(stderr, WHO ": --warn-days: '%s' is not a number of days\n", arg);
		return 0;
	}
	*out = (int)v;
	return 1;
}

static int check_option(void *opts, int opt, const char *arg)
{
	struct check_opts *o = opts;

	switch (opt) {
	case 'c': o->client_cert = arg; return 1;
	case 'w': return parse_warn_days(arg, &o->warn_days);
	case 'C': o->chain.crl_path = arg; return 1;
	case 'D': return cmd_parse_verify_depth(WHO, arg, &o->chain.verify_depth);
	case 'P': return cmd_parse_purpose(WHO, arg, &o->chain.purpose);
	case 'S': return cmd_parse_server_kind(WHO, arg, &o->chain.server_kind);
	case 'a':
		if (!cmd_parse_time(WHO, arg, &o->at))
			return 0;
		o->at_set = true;
		return 1;
	default:
		usage(stderr);
		return 0;
	}
}

static enum cmd_parsed parse_check(int argc, char **argv, struct check_opts *o)
{
	static const struct option opts[] = {
		{ "client-cert", required_argument, NULL, 'c' },
		{ "warn-days", required_argument, NULL, 'w' },
		{ "verify-depth", required_argument, NULL, 'D' },
		{ "crl", required_argument, NULL, 'C' },
		{ "purpose", required_argument, NULL, 'P' },
		{ "server-kind", required_argument, NULL, 'S' },
		{ "at", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum cmd_parsed parsed;

	memset(o, 0, sizeof(*o));
	cmd_chain_opts_init(&o->chain);
	o->warn_days = 30;
	/* no '+': the bundle may come before the options */
	parsed = cmd_getopt(WHO, argc, argv, ":h", opts, usage, check_option, o);
	if (parsed != CMD_RUN)
		return parsed;
	if (optind != argc - 1) {
		fprintf(stderr, WHO ": %s (try 'mtlsdiag check-bundle --help')\n",
			optind >= argc ? "no bundle file given" : "one bundle file only");
		return CMD_USAGE_ERROR;
	}
	o->chain.bundle_path = argv[optind];
	return CMD_RUN;
}

/* One line per certificate of the bundle, then its problems; the count of
 * failures (a leaf, a CA expired or not yet valid). */
static int list_bundle(const struct check_opts *o, const struct chain_policy *pol, time_t at)
{
	X509 *const *certs = pol->bundle_certs;
	size_t n = pol->n_bundle_certs, i;
	char subject[256], issuer[256], from[32], to[32], line[512];
	unsigned bit, p;
	time_t t;
	int failures = 0;

	printf("CA bundle %s: %zu certificate%s\n", o->chain.bundle_path, n, n == 1 ? "" : "s");
	for (i = 0; i < n; i++) {
		bool self_issued = false;

		x509info_name(X509_get_subject_name(certs[i]), subject, sizeof(subject));
		x509info_name(X509_get_issuer_name(certs[i]), issuer, sizeof(issuer));
		(void)x509info_self_signed(certs[i], &self_issued);
		x509info_time_str(x509info_asn1_time(X509_get0_notBefore(certs[i]), &t) ? t : 0, from, sizeof(from));
		x509info_time_str(x509info_asn1_time(X509_get0_notAfter(certs[i]), &t) ? t : 0, to, sizeof(to));
		p = bundle_problems(certs, n, i, at, o->warn_days);
		printf("  [%zu] %s; %s; %s%s; valid %s to %s: %s\n", i + 1, subject,
		       X509_check_ca(certs[i]) ? "CA" : "not a CA", self_issued ? "self-issued" : "issued by ",
		       self_issued ? "" : issuer, from, to,
		       p & (BUNDLE_LEAF | BUNDLE_EXPIRED | BUNDLE_NOT_YET_VALID) ? "PROBLEM"
		       : p ? "warning" : "ok");
	}
	for (i = 0; i < n; i++) {
		p = bundle_problems(certs, n, i, at, o->warn_days);
		for (bit = 1; bit < (1u << BUNDLE_PROBLEM_BITS); bit <<= 1) {
			bool fails = bit & (BUNDLE_LEAF | BUNDLE_EXPIRED | BUNDLE_NOT_YET_VALID);

			if (!(p & bit))
				continue;
			bundle_problem_text(certs, n, i, bit, at, line, sizeof(line));
			printf("%s: [%zu] %s\n", fails ? "error" : "warning", i + 1, line);
			failures += fails;
		}
	}
	x509info_err_clear();
	return failures;
}

/* The client certificate verified against the bundle: 1 when refused. */
static int check_client(const struct check_opts *o, const struct chain_policy *pol, time_t at, int *input_error)
{
	STACK_OF(X509) *chain = cmd_read_pem(WHO, "--client-cert", o->client_cert, NULL);
	struct chain_report report;
	struct cert_info *infos = NULL;
	struct cert_chain sent = { NULL, 0, 0, 0 };
	X509 **certs = NULL;
	const char *who;
	char subject[256], line[256];
	size_t n, i;
	int refused = 0;

	if (chain == NULL || sk_X509_num(chain) == 0) {
		if (chain)
			fprintf(stderr, WHO ": --client-cert %s: no certificate in it\n", o->client_cert);
		*input_error = 1;
		goto Exit;
	}
	n = (size_t)sk_X509_num(chain);
	if (!(certs = calloc(n, sizeof(*certs))) || !(infos = calloc(n, sizeof(*infos)))) {
		*input_error = 1;
		goto Exit;
	}
	for (i = 0; i < n; i++) {
		certs[i] = sk_X509_value(chain, (int)i);
		x509info_summarize(certs[i], &infos[i]);
	}
	sent.certs = infos;
	sent.n = sent.n_on_wire = n;
	chain_check_policy(certs, n, NULL, 0, at, pol, false, &report);
	x509info_name(X509_get_subject_name(certs[0]), subject, sizeof(subject));
	if (n == 1)
		printf("client certificate %s: %s, sent alone\n", o->client_cert, subject);
	else
		printf("client certificate %s: %s, sent with %zu more certificate%s\n", o->client_cert, subject, n - 1,
		       n == 2 ? "" : "s");
	if (report.verify.ok) {
		printf("  verified: ");
		for (i = 0; i < report.verify.n_built; i++) {
			chain_verify_subject(&report.verify, &sent, (unsigned)i, subject, sizeof(subject));
			printf("%s%s", i ? " <- " : "", subject);
		}
		printf("\n");
	} else {
		refused = 1;
		chain_verify_log_line(&report.verify, pol->server_kind, line, sizeof(line), &who);
		printf("  refused: %s would log \"%s\"\n", who, line);
		chain_verify_log_line(&report.verify, SK_HAPROXY, line, sizeof(line), &who);
		printf("  %s: %s\n", who, line);
		chain_verify_stop(&report.verify, &sent, subject, sizeof(subject));
		if (subject[0])
			printf("  the chain stops short of %s\n", subject);
		if (report.verify.depth_limited)
			printf("  the verify depth alone refuses it: it needs %d (nginx's ssl_verify_depth)\n",
			       report.verify.needed_depth);
	}
	for (i = 0; i < report.n; i++)
		if (!report.findings[i].from_verify)
			printf("  %s: %s\n", reason_code_name(report.findings[i].reason), report.findings[i].text);
	for (i = 0; i < report.n; i++)
		if (report.findings[i].from_verify)
			printf("  reason: %s\n", reason_code_name(report.findings[i].reason));
	/* a chain a server verifies may still carry a finding (key usage) */
	if (report.n > 0)
		refused = 1;
Exit:
	free(infos);
	free(certs);
	sk_X509_pop_free(chain, X509_free);
	return refused;
}

static int run_check(const struct check_opts *o)
{
	time_t at = o->at_set ? o->at : time(NULL);
	struct chain_policy *pol;
	struct cmd_chain_opts chain = o->chain;
	int failures, refused = 0, input_error = 0;

	/* the problems are listed here, not as warnings */
	if (!(pol = cmd_load_policy(WHO, &chain, NULL)))
		return 2;
	failures = list_bundle(o, pol, at);
	if (o->client_cert)
		refused = check_client(o, pol, at, &input_error);
	cmd_policy_free(pol);
	if (input_error)
		return 2;
	printf("%s\n", failures || refused ? "result: not usable" : "result: ok");
	return failures || refused ? 1 : 0;
}

int cmd_check_bundle(int argc, char **argv)
{
	struct check_opts o;
	enum cmd_parsed parsed = parse_check(argc, argv, &o);

	return parsed == CMD_RUN ? run_check(&o) : parsed == CMD_HELP ? 0 : 2;
}
