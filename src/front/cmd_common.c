/* cmd_common: what the subcommands share: option parsing, the files their
 * options name, and their output files. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "analysis/bundle.h"
#include "analysis/chain.h"
#include "front/cmds.h"
#include "out/ticket.h"
#include "analysis/expect.h"
#include "analysis/inspect.h"
#include "out/outfile.h"
#include "out/syslogout.h"
#include "wire/keylog.h"

static int parse_time(const char *s, time_t *out)
{
	static const char *const formats[] = {
		"%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d",
	};
	struct tm tm;
	size_t i;

	if (s[0] == '@') {
		char *end;
		long long v;

		errno = 0;
		v = strtoll(s + 1, &end, 10);
		if (errno || *end || end == s + 1)
			return 0;
		*out = (time_t)v;
		return 1;
	}
	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		const char *end;

		memset(&tm, 0, sizeof(tm));
		end = strptime(s, formats[i], &tm);
		if (end && *end == '\0') {
			*out = timegm(&tm);
			return 1;
		}
	}
	return 0;
}

int cmd_parse_time(const char *who, const char *s, time_t *out)
{
	if (parse_time(s, out))
		return 1;
	fprintf(stderr, "%s: --at: cannot read time '%s' (use 2026-11-23T12:00:00Z, 2026-11-23 or @EPOCH)\n", who, s);
	return 0;
}

struct x509_store_st *cmd_load_bundle(const char *path)
{
	X509_STORE *store = X509_STORE_new();

	if (!store)
		return NULL;
	if (X509_STORE_load_file(store, path) != 1) {
		unsigned long e = ERR_peek_last_error();

		fprintf(stderr, "mtlsdiag: %s: cannot load CA bundle: %s\n", path,
			e ? ERR_reason_error_string(e) : "no certificates");
		X509_STORE_free(store);
		return NULL;
	}
	return store;
}

void cmd_chain_opts_init(struct cmd_chain_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->verify_depth = -1;
}

int cmd_parse_uint(const char *who, const char *opt, const char *arg, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || *end || end == arg || arg[0] == '-' || v < min || v > max) {
		fprintf(stderr, "%s: %s: '%s' is not a number from %u to %u\n", who, opt, arg, min, max);
		return 0;
	}
	*out = (unsigned)v;
	return 1;
}

int cmd_parse_verify_depth(const char *who, const char *arg, int *out)
{
	unsigned v;

	if (!cmd_parse_uint(who, "--verify-depth", arg, 0, 100, &v))
		return 0;
	*out = (int)v;
	return 1;
}

int cmd_parse_purpose(const char *who, const char *arg, int *out)
{
	if ((*out = chain_purpose_parse(arg)) != 0)
		return 1;
	fprintf(stderr, "%s: --purpose: unknown purpose '%s' (sslclient, sslserver, any, ...: as openssl verify -purpose)\n",
		who, arg);
	return 0;
}

int cmd_parse_server_kind(const char *who, const char *arg, enum server_kind *out)
{
	if (server_kind_parse(arg, out))
		return 1;
	fprintf(stderr, "%s: --server-kind: '%s' is not one of nginx, apache, haproxy, envoy, unknown\n", who, arg);
	return 0;
}

STACK_OF(X509) *cmd_read_pem(const char *who, const char *what, const char *path, STACK_OF(X509_CRL) *crls)
{
	STACK_OF(X509_INFO) *infos = NULL;
	STACK_OF(X509) *certs = NULL;
	BIO *bio = BIO_new_file(path, "r");
	unsigned long e;
	int i;

	if (bio == NULL) {
		fprintf(stderr, "%s: %s %s: %s\n", who, what, path, strerror(errno ? errno : ENOENT));
		goto Exit;
	}
	infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
	if (infos == NULL || !(certs = sk_X509_new_null())) {
		e = ERR_peek_last_error();
		fprintf(stderr, "%s: %s %s: not PEM: %s\n", who, what, path, e ? ERR_reason_error_string(e) : "unreadable");
		goto Exit;
	}
	for (i = 0; i < sk_X509_INFO_num(infos); i++) {
		X509_INFO *info = sk_X509_INFO_value(infos, i);

		if (info->x509 && sk_X509_push(certs, info->x509))
			info->x509 = NULL;   /* the stack owns it now */
		if (crls && info->crl && sk_X509_CRL_push(crls, info->crl))
			info->crl = NULL;
	}
Exit:
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	BIO_free(bio);
	ERR_clear_error();
	return certs;
}

/* The policy and what it owns: the certificates, in file order. */
struct owned_policy {
	struct chain_policy p;      /* first: the pointer handed out */
	STACK_OF(X509) *certs;
	X509 **list;
	struct bundle_summary *summary;
};

void cmd_policy_free(struct chain_policy *p)
{
	struct owned_policy *o = (struct owned_policy *)p;

	if (!o)
		return;
	X509_STORE_free(o->p.bundle);
	sk_X509_pop_free(o->certs, X509_free);
	free(o->list);
	bundle_summary_free(o->summary);
	free(o);
}

/* Each mistake of the bundle as a warning (bundle.h). */
static void warn_bundle(const char *who, const char *path, X509 *const *list, size_t n, time_t at)
{
	char line[512];
	unsigned bit;
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned p = bundle_problems(list, n, i, at, -1);

		for (bit = 1; bit < (1u << BUNDLE_PROBLEM_BITS); bit <<= 1) {
			if (!(p & bit))
				continue;
			bundle_problem_text(list, n, i, bit, at, line, sizeof(line));
			fprintf(stderr, "%s: warning: --ca-bundle %s: %s\n", who, path, line);
		}
	}
}

struct chain_policy *cmd_load_policy(const char *who, const struct cmd_chain_opts *o, const time_t *warn_at)
{
	struct owned_policy *op = calloc(1, sizeof(*op));
	STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
	STACK_OF(X509) *crl_certs = NULL;
	int i, n_crls;

	if (!op || !crls) {
		fprintf(stderr, "%s: out of memory\n", who);
		goto Fail;
	}
	chain_policy_init(&op->p);
	op->p.verify_depth = o->verify_depth;
	if (o->purpose)
		op->p.purpose = o->purpose;
	op->p.server_kind = o->server_kind;
	if (o->crl_path && !o->bundle_path) {
		fprintf(stderr, "%s: --crl goes with --ca-bundle FILE (the CRLs' CAs)\n", who);
		goto Fail;
	}
	if (!o->bundle_path)
		goto Done;
	/* as nginx's ssl_client_certificate: the certificates and any CRLs in it */
	if (!(op->certs = cmd_read_pem(who, "--ca-bundle", o->bundle_path, crls)))
		goto Fail;
	if (sk_X509_num(op->certs) == 0) {
		fprintf(stderr, "%s: --ca-bundle %s: no certificate in it\n", who, o->bundle_path);
		goto Fail;
	}
	if (o->crl_path) {
		/* as ssl_crl: CRLs (and certificates) added to the same store */
		if (!(crl_certs = cmd_read_pem(who, "--crl", o->crl_path, crls)))
			goto Fail;
		while (sk_X509_num(crl_certs) > 0)
			if (!sk_X509_push(op->certs, sk_X509_value(crl_certs, 0)) || !sk_X509_shift(crl_certs))
				goto Fail;
		if (sk_X509_CRL_num(crls) == 0) {
			fprintf(stderr, "%s: --crl %s: no CRL in it\n", who, o->crl_path);
			goto Fail;
		}
		op->p.crl = true;
	}
	if (!(op->p.bundle = X509_STORE_new()) || !(op->list = calloc((size_t)sk_X509_num(op->certs), sizeof(X509 *)))) {
		fprintf(stderr, "%s: out of memory\n", who);
		goto Fail;
	}
	for (i = 0; i < sk_X509_num(op->certs); i++) {
		X509 *x = sk_X509_value(op->certs, i);

		op->list[i] = x;
		if (!X509_STORE_add_cert(op->p.bundle, x))
			ERR_clear_error();   /* a duplicate: nginx loads the file the same way */
	}
	n_crls = sk_X509_CRL_num(crls);
	for (i = 0; i < n_crls; i++)
		if (!X509_STORE_add_crl(op->p.bundle, sk_X509_CRL_value(crls, i)))
			ERR_clear_error();
	op->p.bundle_certs = op->list;
	op->p.n_bundle_certs = (size_t)sk_X509_num(op->certs);
	if (!(op->summary = bundle_summarize(op->list, op->p.n_bundle_certs))) {
		fprintf(stderr, "%s: out of memory\n", who);
		goto Fail;
	}
	op->p.bundle_summary = op->summary;
	if (warn_at)
		warn_bundle(who, o->bundle_path, op->list, op->p.n_bundle_certs, *warn_at);
Done:
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	sk_X509_pop_free(crl_certs, X509_free);
	return &op->p;
Fail:
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	sk_X509_pop_free(crl_certs, X509_free);
	cmd_policy_free(op ? &op->p : NULL);
	return NULL;
}

/* Where the bundled catalogue is: $MTLSDIAG_INSPECTION_CAS when set (the
 * test suites and scripts/demo point it at the source tree's conf/), else
 * what `make install` wrote, PKGDATADIR/inspection-cas.conf.  NULL when it
 * is not readable; `tried` lists the place looked at. */
static const char *bundled_catalogue(char *tried, size_t triedlen)
{
	static char found[PATH_MAX + 64];
	const char *env = getenv("MTLSDIAG_INSPECTION_CAS");

	if (env && *env)
		snprintf(found, sizeof(found), "%s", env);
	else
		snprintf(found, sizeof(found), "%s/inspection-cas.conf", PKGDATADIR);
	snprintf(tried, triedlen, "%s", found);
	return access(found, R_OK) == 0 ? found : NULL;
}

struct inspect_catalogue *cmd_load_inspection(const char *who, const char *const *files, size_t n)
{
	struct inspect_catalogue *cat = inspect_new();
	char tried[PATH_MAX + 64], err[1024];
	const char *bundled;
	size_t i;

	if (!cat) {
		fprintf(stderr, "%s: out of memory\n", who);
		return NULL;
	}
	bundled = bundled_catalogue(tried, sizeof(tried));
	if (!bundled) {
		fprintf(stderr, "%s: warning: the bundled inspection-CA catalogue is not installed (looked in %s)\n",
			who, tried);
	} else if (!inspect_load_file(cat, bundled, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", who, err);
		goto Fail;
	}
	for (i = 0; i < n; i++) {
		if (!inspect_load_file(cat, files[i], err, sizeof(err))) {
			fprintf(stderr, "%s: --inspection-cas %s\n", who, err);
			goto Fail;
		}
	}
	return cat;
Fail:
	inspect_free(cat);
	return NULL;
}

int cmd_add_file(const char *who, const char *opt, const char **list, size_t *n, size_t max, const char *arg)
{
	if (*n >= max) {
		fprintf(stderr, "%s: at most %zu %s files\n", who, max, opt);
		return 0;
	}
	list[(*n)++] = arg;
	return 1;
}

static void keylog_warning(void *who, const char *line)
{
	fprintf(stderr, "%s: warning: %s\n", (const char *)who, line);
}

int cmd_load_keylogs(const char *who, const char *const *files, size_t n, bool follow, struct keylog **out)
{
	char err[512];
	size_t i;

	*out = NULL;
	if (n == 0)
		return 1;
	if (!(*out = keylog_new(keylog_warning, (void *)who))) {
		fprintf(stderr, "%s: out of memory\n", who);
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (!keylog_add_file(*out, files[i], follow, err, sizeof(err))) {
			fprintf(stderr, "%s: --keylog %s\n", who, err);
			return 0;
		}
	}
	return 1;
}

int cmd_add_expect(const char *who, struct server_expect *e, bool is_ca, const char *arg)
{
	char err[1024];

	if (is_ca ? expect_add_ca_file(e, arg, err, sizeof(err)) : expect_add_spki(e, arg, err, sizeof(err)))
		return 1;
	fprintf(stderr, "%s: --expect-server-%s %s\n", who, is_ca ? "ca" : "spki", err);
	return 0;
}

int cmd_evidence_option(const char *who, struct ticket_opts *o, int opt, const char *arg)
{
	char *end;
	unsigned long n;

	switch (opt) {
	case O_EV_DIR: o->dir = arg; return 1;
	case O_EV_ALL: o->all = true; return 1;
	case O_EV_KEEP_DATA: o->keep_data = true; return 1;
	case O_EV_KEYS: o->keys = true; return 1;
	case O_EV_REDACT: o->redact = true; return 1;
	case O_EV_FORCE: o->force = true; return 1;
	case O_EV_MAX:
		errno = 0;
		n = strtoul(arg, &end, 10);
		if (errno || !*arg || *end || arg[0] == '-' || n == 0 || n > 1000000) {
			fprintf(stderr, "%s: --evidence-max: '%s' is not a count from 1 to 1000000\n", who, arg);
			return 0;
		}
		o->max_per_verdict = (unsigned)n;
		return 1;
	}
	return -1;
}

int cmd_evidence_check(const char *who, const struct ticket_opts *o, bool have_keylog)
{
	const char *needs = o->all ? "--evidence-all" : o->max_per_verdict ? "--evidence-max" :
			    o->keep_data ? "--evidence-keep-data" : o->keys ? "--evidence-keys" :
			    o->redact ? "--redact-hosts" : o->force ? "--force" : NULL;

	if (!o->dir && needs) {
		fprintf(stderr, "%s: %s needs --evidence DIR\n", who, needs);
		return 0;
	}
	if (o->keys && !have_keylog) {
		fprintf(stderr, "%s: --evidence-keys needs a key log (--keylog FILE)\n", who);
		return 0;
	}
	return 1;
}

int cmd_parse_umask(const char *who, const char *arg, mode_t *mode)
{
	char *end;
	unsigned long mask;

	errno = 0;
	mask = strtoul(arg, &end, 8);
	if (errno || !*arg || *end || mask > 0777) {
		fprintf(stderr, "%s: --umask: '%s' is not an octal mask (022, 077)\n", who, arg);
		return 0;
	}
	*mode = 0666 & ~(mode_t)mask;
	return 1;
}

struct outfile *cmd_open_file(const char *who, const char *opt, const char *path, bool append, mode_t mode)
{
	char label[PATH_MAX + 64], err[PATH_MAX + 128];
	struct outfile *o;

	snprintf(label, sizeof(label), "%s: %s %s", who, opt, path);
	if (strcmp(path, "-") == 0)
		o = outfile_fd(STDOUT_FILENO, label);
	else
		o = outfile_open(path, append, mode, label, err, sizeof(err));
	if (!o)
		fprintf(stderr, "%s\n", strcmp(path, "-") == 0 ? label : err);
	return o;
}

int cmd_open_outputs(const char *who, const char *json_path, bool append, mode_t mode, struct cmd_output *out)
{
	*out = (struct cmd_output){ .text = stdout, .json_path = json_path };
	if (!json_path)
		return 1;
	if (!(out->json_file = cmd_open_file(who, "--json", json_path, append, mode)))
		return 0;
	out->json = outfile_stream(out->json_file);
	if (strcmp(json_path, "-") == 0)
		out->text = stderr;
	return 1;
}

int cmd_open_text(const char *who, struct cmd_output *out, bool line_buffered)
{
	bool on_stderr = out->text == stderr;
	char label[128];

	snprintf(label, sizeof(label), "%s: %s", who, on_stderr ? "standard error" : "standard output");
	if (!(out->text_file = outfile_fd(on_stderr ? STDERR_FILENO : STDOUT_FILENO, label))) {
		fprintf(stderr, "%s: out of memory\n", who);
		return 0;
	}
	out->text = outfile_stream(out->text_file);
	if (line_buffered || outfile_is_tty(out->text_file))
		outfile_set_line_buffered(out->text_file);
	if (out->json_file && (line_buffered || outfile_is_tty(out->json_file)))
		outfile_set_line_buffered(out->json_file);
	return 1;
}

int cmd_close_outputs(const char *who, struct cmd_output *out)
{
	int closed = 1;

	(void)who;
	/* the lines first: what the JSON output says of its losses follows them */
	if (out->text_file) {
		closed = outfile_close(out->text_file) == 0;
		out->text_file = NULL;
		out->text = NULL;
	}
	if (!out->json_file)
		return closed;
	closed &= outfile_close(out->json_file) == 0;
	out->json_file = NULL;
	out->json = NULL;
	return closed;
}

int cmd_parse_color(const char *who, const char *arg, enum term_color *out)
{
	int i = cmd_choice(who, "--color", arg, (const char *const[]){ "auto", "always", "never", NULL }, NULL);

	if (i < 0)
		return 0;
	*out = i == 0 ? TERM_COLOR_AUTO : i == 1 ? TERM_COLOR_ALWAYS : TERM_COLOR_NEVER;
	return 1;
}

int cmd_choice(const char *who, const char *opt, const char *arg, const char *const *words, const char *hint)
{
	size_t i, n;

	for (n = 0; words[n]; n++)
		if (strcmp(arg, words[n]) == 0)
			return (int)n;
	fprintf(stderr, "%s: %s '%s': use ", who, opt, arg);
	for (i = 0; i < n; i++)
		fprintf(stderr, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", words[i]);
	if (hint)
		fprintf(stderr, " (%s)", hint);
	fputc('\n', stderr);
	return -1;
}

struct syslog_out *cmd_open_syslog(const char *who, const char *path)
{
	char err[300];
	struct syslog_out *s = syslog_out_open(path, "mtlsdiag", err, sizeof(err));

	if (!s)
		fprintf(stderr, "%s: --syslog %s: %s\n", who, path, err);
	return s;
}

void cmd_close_syslog(const char *who, const char *path, struct syslog_out *s)
{
	uint64_t lost;

	if (!s)
		return;
	if ((lost = syslog_out_lost(s)) > 0)
		fprintf(stderr, "%s: warning: --syslog %s: %llu line%s lost (the socket was full or gone)\n", who, path,
			(unsigned long long)lost, lost == 1 ? "" : "s");
	syslog_out_close(s);
}

int cmd_parse_json_format(const char *who, const char *arg, bool *ecs)
{
	int which = cmd_choice(who, "--json-format", arg, (const char *const[]){ "default", "ecs", NULL },
			       "ecs: Elastic Common Schema names, doc/ecs.md");

	*ecs = which == 1;
	return which >= 0;
}

void cmd_bad_option(const char *who, int opt, char *const *argv)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";
	int len = (int)strcspn(arg, "=");

	if (opt == ':')
		fprintf(stderr, "%s: %.*s needs an argument (try '%s --help')\n", who, len, arg, who);
	else if (optopt > 0 && optopt < 128 && arg[0] == '-' && arg[1] != '-')
		fprintf(stderr, "%s: unknown option '-%c' (try '%s --help')\n", who, optopt, who);
	else
		fprintf(stderr, "%s: unknown option '%.*s' (try '%s --help')\n", who, len, arg, who);
}
