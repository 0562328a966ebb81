/* cmd_probe: `mtlsdiag probe HOST:PORT`, the active front end: options,
 * client credentials, the inspection catalogue, and what is printed; the
 * connections themselves are probe.c.  Each probe's record is the
 * observer's (the same human line and JSON object as pcap and proxy) with
 * the probe's own findings added. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "front/cmds.h"
#include "analysis/codes.h"
#include "analysis/inspect.h"
#include "front/probe.h"
#include "front/proxy.h"
#include "out/detail.h"
#include "out/ecs.h"
#include "out/syslogout.h"
#include "out/report.h"
#include "wire/x509info.h"

#define MAX_CATALOGUES 16
#define WHO "mtlsdiag probe"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mtlsdiag probe [OPTIONS] HOST:PORT\n"
		"\n"
		"Connects to HOST:PORT (directly, or through an HTTP proxy), completes a TLS\n"
		"handshake in TLS 1.2 and in TLS 1.3, and reports whether the server asks for a\n"
		"client certificate, which CA names and signature algorithms it names, its\n"
		"chain and whether that chain was issued by a TLS-inspection CA; with a client\n"
		"certificate, whether the server accepted it.\n"
		"\n"
		"options:\n"
		"  --via HOST:PORT         through the HTTP proxy HOST:PORT (CONNECT)\n"
		"  --compare               with --via: probe directly and through the proxy and\n"
		"                          print what differs (is the proxy intercepting?)\n"
		"  --tls 1.2|1.3|both      the versions to try (default both)\n"
		"  --cert FILE --key FILE  a client certificate (PEM; FILE may hold the chain)\n"
		"  --p12 FILE              a client certificate and key as PKCS#12\n"
		"  --pass SPEC             the password of --p12 or --key: env:VAR, file:PATH or\n"
		"                          pass:TEXT (default: asked on the terminal, if any)\n"
		"  --sni NAME              ask for NAME (server name indication and the HTTP Host)\n"
		"                          instead of HOST: a virtual host behind an address\n"
		"  --no-http               the server does not speak HTTP: offer no ALPN and send\n"
		"                          no request (by default the probe offers ALPN http/1.1,\n"
		"                          sends GET / and reads the first answer, where nginx\n"
		"                          refuses a certificate with 400)\n"
		"  --http                  that default, said explicitly (--no-http's opposite)\n"
		"  --json FILE             also write JSON Lines to FILE (- for standard output;\n"
		"                          the human lines then go to standard error); created 0600\n"
		"  --json-format F         default, or ecs: the records with Elastic Common Schema\n"
		"                          names (tls.*, destination.*, ...; the rest under\n"
		"                          mtlsdiag.*)\n"
		"  --umask MASK            create output files with 0666 less MASK (022) instead\n"
		"  --inspection-cas FILE   more inspection-CA rules, added to the bundled\n"
		"                          catalogue (repeatable)\n"
		"  --timeout S             give up a probe after S seconds (default 10)\n"
		"  --at TIME               judge certificate validity at TIME instead of now\n"
		"  -q, --quiet             no human lines: the exit status (and --json) only\n"
		"  -v, --verbose           under each verdict line, the evidence and the remedies\n"
		"  --syslog[=SOCKET]       also send each verdict line to the system log\n"
		"                          (facility daemon; SOCKET: /dev/log)\n"
		"  --color WHEN            colour the verdict lines: auto (when they go to a\n"
		"                          terminal and NO_COLOR is not set), always or never\n"
		CMD_EVIDENCE_USAGE
		"  -h, --help              this help\n"
		"\n"
		"Exit status: 0 every handshake completed and the server accepted what was\n"
		"sent (a certificate, or none when it did not ask); 1 the probe ran and a\n"
		"handshake failed or the certificate (or its absence) was refused, or with\n"
		"--compare the two paths differ; 2 usage or input error, or the probe could\n"
		"not run (name not resolved, connection refused, proxy refused CONNECT,\n"
		"timeout before TLS); 3 the probe ran but could not tell whether the server\n"
		"accepted what was sent (undetermined: no HTTP answer, a server that speaks\n"
		"HTTP/2 only, TLS 1.3 with --no-http), and nothing was refused.\n");
}

/* ---- credentials ---- */

static int load_p12(const char *path, struct cmd_pass *pass, struct cmd_creds *c)
{
	FILE *f = fopen(path, "rb");
	PKCS12 *p12;
	const char *pw = NULL;
	int ret = 0;

	if (!f) {
		fprintf(stderr, "mtlsdiag probe: --p12 %s: %s\n", path, strerror(errno));
		return 0;
	}
	p12 = d2i_PKCS12_fp(f, NULL);
	fclose(f);
	if (!p12) {
		fprintf(stderr, "mtlsdiag probe: --p12 %s: not a PKCS#12 file (%s)\n", path, cmd_ossl_reason());
		return 0;
	}
	if (PKCS12_mac_present(p12)) {
		/* an empty password first (many exports have one), unless given */
		if (!pass->spec && (PKCS12_verify_mac(p12, "", 0) == 1 || PKCS12_verify_mac(p12, NULL, 0) == 1)) {
			pw = PKCS12_verify_mac(p12, "", 0) == 1 ? "" : NULL;
		} else {
			char what[300];

			snprintf(what, sizeof(what), "--p12 %s", path);
			if (!cmd_pass_get(pass, what))
				goto Exit;
			if (PKCS12_verify_mac(p12, pass->text, -1) != 1) {
				fprintf(stderr, "mtlsdiag probe: --p12 %s: wrong password (the MAC does not verify)\n", path);
				goto Exit;
			}
			pw = pass->text;
		}
	}
	if (PKCS12_parse(p12, pw, &c->key, &c->cert, &c->chain) != 1 || !c->cert || !c->key) {
		fprintf(stderr, "mtlsdiag probe: --p12 %s: %s\n", path,
			!c->cert || !c->key ? "no certificate with its key inside" : cmd_ossl_reason());
		goto Exit;
	}
	if (X509_check_private_key(c->cert, c->key) != 1) {
		fprintf(stderr, "mtlsdiag probe: --p12 %s: the key is not the certificate's\n", path);
		goto Exit;
	}
	ret = 1;
Exit:
	ERR_clear_error();
	PKCS12_free(p12);
	return ret;
}

/* ---- output ---- */

static const char *tls_name(int v)
{
	return v == TLS1_3_VERSION ? "1.3" : v == TLS1_2_VERSION ? "1.2" : v == TLS1_1_VERSION ? "1.1"
		: v == TLS1_VERSION ? "1.0" : NULL;
}

struct run {
	struct cmd_output out;
	const struct inspect_catalogue *cat;
	const char *host;
	uint16_t port;
	const char *via;         /* "host:port" or NULL */
	size_t n_rules;
	bool verbose;            /* -v: the evidence and remedies under the verdict line */
	bool ecs;                /* --json-format ecs */
	struct syslog_out *syslog;
	bool color;              /* the verdict lines are coloured */
	struct ticket *ticket;   /* --evidence DIR, or NULL */
};

static void list_text(char *buf, size_t len, const char (*items)[256], size_t n)
{
	size_t used = (size_t)snprintf(buf, len, "[");
	size_t i;

	for (i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "; " : "", items[i]);
	if (used < len)
		snprintf(buf + used, len - used, "]");
}

static const char *leg_name(const struct probe_options *o, char *buf, size_t len)
{
	char via[300];

	if (!o->via_host)
		return "direct";
	report_endpoint(via, sizeof(via), o->via_host, o->via_port);
	snprintf(buf, len, "via %s", via);
	return buf;
}

static void print_text(const struct run *run, const struct probe_options *o, const struct probe_result *r)
{
	char line[2048], leg[340], list[4096];
	size_t i, used;
	FILE *out = run->out.text;

	if (r->verdict && run->syslog) {
		report_line(line, sizeof(line), obs_conn_facts(r->obs), r->verdict);
		(void)syslog_out_line(run->syslog, syslog_severity_of(r->verdict), line);   /* a loss is counted */
	}
	if (!out)
		return;
	if (r->verdict && run->verbose) {
		char detail[DETAIL_MAX];

		report_line(detail, sizeof(detail), obs_conn_facts(r->obs), r->verdict);
		detail_append(detail, sizeof(detail), obs_conn_facts(r->obs), r->verdict);
		fprintf(out, "%s\n", detail);
	} else if (r->verdict) {
		report_line(line, sizeof(line), obs_conn_facts(r->obs), r->verdict);
		term_line(out, line, run->color ? term_verdict_sgr(r->verdict->code, r->verdict->fault) : NULL);
	}
	if (!r->handshake_ok) {
		fprintf(out, "  probe %s TLS %s: handshake failed: %s\n", leg_name(o, leg, sizeof(leg)),
			tls_name(o->tls_version), r->handshake_error);
	} else {
		fprintf(out, "  probe %s TLS %s (%s%s%s): %s\n", leg_name(o, leg, sizeof(leg)), tls_name(r->tls_version),
			r->cipher, r->alpn[0] ? ", ALPN " : "", r->alpn,
			r->cert_requested ? "the server asked for a client certificate"
					  : "the server did not ask for a client certificate");
	}
	if (r->cert_requested) {
		list_text(list, sizeof(list), r->ca_names, r->n_ca_names);
		fprintf(out, "  acceptable CAs %s\n", r->n_ca_names ? list : "[] (none named: any CA)");
		used = (size_t)snprintf(list, sizeof(list), "[");
		for (i = 0; i < r->n_sigalgs && used < sizeof(list); i++)
			used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", r->sigalgs[i]);
		if (used < sizeof(list))
			snprintf(list + used, sizeof(list) - used, "]");
		fprintf(out, "  signature algorithms %s\n", list);
	}
	for (i = 0; i < r->n_chain; i++)
		fprintf(out, "  server chain[%zu] %s issued by %s (sha256 %s)\n", i, r->chain[i].subject,
			r->chain[i].issuer, r->chain[i].sha256);
	if (r->interception.rule) {
		inspect_describe(&r->interception, list, sizeof(list));
		fprintf(out, "  interception: %s\n", list);
	} else if (r->n_chain) {
		fprintf(out, "  interception: no sign (none of %zu catalogue rules matched the chain)\n", run->n_rules);
	}
	if (r->cert_requested || r->cert_offered || r->client_auth == PROBE_AUTH_REJECTED) {
		char name[300] = "none", why[sizeof(r->undetermined) + 8] = "";

		if (r->cert_offered && o->cert)
			x509info_name(X509_get_subject_name(o->cert), name, sizeof(name));
		if (r->alert_received >= 0)
			snprintf(why, sizeof(why), " (alert %s)", tls_alert_name(r->alert_received)
				 ? tls_alert_name(r->alert_received) : "unassigned");
		else if (r->http_nginx[0])
			snprintf(why, sizeof(why), " (nginx answered %d: %s)", r->http_status, r->http_nginx);
		else if (!r->handshake_ok && r->handshake_error[0])
			snprintf(why, sizeof(why), " (%s)", r->handshake_error);
		else if (r->client_auth == PROBE_AUTH_UNDETERMINED)
			snprintf(why, sizeof(why), " (%s)", r->undetermined);
		if (!r->cert_requested && r->client_auth == PROBE_AUTH_REJECTED)
			fprintf(out, "  client certificate %s: not sent, the server did not ask; rejected%s\n", name, why);
		else if (!r->cert_requested)
			fprintf(out, "  client certificate %s: not sent, the server did not ask\n", name);
		else
			fprintf(out, "  client certificate %s: %s; %s%s\n", name,
				r->cert_sent ? "sent" : "none sent", probe_client_auth_name(r->client_auth), why);
	}
	if (r->http_status_line[0] && r->http_title[0])
		fprintf(out, "  http: %s (title \"%s\")\n", r->http_status_line, r->http_title);
	else if (r->http_status_line[0])
		fprintf(out, "  http: %s\n", r->http_status_line);
	else if (r->http_error[0])
		fprintf(out, "  http: %s\n", r->http_error);
	else if (r->h2_only)
		fprintf(out, "  http: the server speaks HTTP/2 only; the probe reads HTTP/1.1 answers\n");
}

/* The target and the proxy it went through ("via", null when direct). */
static void json_target(struct json *j, const struct probe_options *o)
{
	char target[300], via[300];

	report_endpoint(target, sizeof(target), o->host, o->port);
	json_string(j, "target", target);
	if (o->via_host)
		report_endpoint(via, sizeof(via), o->via_host, o->via_port);
	json_string(j, "via", o->via_host ? via : NULL);
}

static void json_interception(struct json *j, const struct inspect_match *m)
{
	char ev[1024];

	if (!m->rule) {
		json_null(j, "interception");
		return;
	}
	inspect_describe(m, ev, sizeof(ev));
	json_object(j, "interception");
	json_string(j, "rule", m->rule->name);
	json_string(j, "strength", inspect_strength_name(m->rule->strength));
	json_string(j, "file", m->rule->file);
	json_uint(j, "line", m->rule->line);
	json_string(j, "where", m->where == INSPECT_ISSUER ? "issuer" : "subject");
	json_uint(j, "cert_index", m->cert_index);
	json_string(j, "name", m->name);
	json_string(j, "evidence", ev);
	json_end(j);
}

/* The "probe" member: what the probe itself did and saw. */
static void json_probe(struct json *j, const struct probe_options *o, const struct probe_result *r)
{
	size_t i;

	json_object(j, "probe");
	json_string(j, "tls_requested", tls_name(o->tls_version));
	json_string(j, "handshake", r->handshake_ok ? "ok" : "failed");
	json_string(j, "error", r->handshake_ok && !r->handshake_error[0] ? NULL : r->handshake_error);
	json_string(j, "tls_version", tls_name(r->tls_version));
	json_string(j, "cipher", r->cipher[0] ? r->cipher : NULL);
	json_bool(j, "cert_requested", r->cert_requested);
	json_array(j, "ca_names");
	for (i = 0; i < r->n_ca_names; i++)
		json_string(j, NULL, r->ca_names[i]);
	json_end(j);
	json_array(j, "sigalgs");
	for (i = 0; i < r->n_sigalgs; i++)
		json_string(j, NULL, r->sigalgs[i]);
	json_end(j);
	json_array(j, "server_chain");
	for (i = 0; i < r->n_chain; i++) {
		json_object(j, NULL);
		json_string(j, "subject", r->chain[i].subject);
		json_string(j, "issuer", r->chain[i].issuer);
		json_string(j, "sha256", r->chain[i].sha256);
		json_end(j);
	}
	json_end(j);
	json_interception(j, &r->interception);
	json_bool(j, "client_cert_offered", r->cert_offered);
	json_bool(j, "client_cert_sent", r->cert_sent);
	json_string(j, "client_auth", probe_client_auth_name(r->client_auth));
	json_string(j, "alert", r->alert_received >= 0 ? tls_alert_name(r->alert_received) : NULL);
	if (r->http_status)
		json_int(j, "http_status", r->http_status);
	else
		json_null(j, "http_status");
	json_string(j, "http_status_line", r->http_status_line[0] ? r->http_status_line : NULL);
	json_string(j, "http_nginx", r->http_nginx[0] ? r->http_nginx : NULL);
	json_string(j, "http_title", r->http_title[0] ? r->http_title : NULL);
	json_string(j, "http_error", r->http_error[0] ? r->http_error : NULL);
	json_string(j, "alpn", r->alpn[0] ? r->alpn : NULL);
	json_bool(j, "http_sent", r->http_sent);
	json_bool(j, "h2_only", r->h2_only);
	json_string(j, "undetermined", r->client_auth == PROBE_AUTH_UNDETERMINED ? r->undetermined : NULL);
	json_end(j);
}

/* One finished builder to the JSON output, flushed: a probe's records are
 * few and someone may be watching (a lost record is counted and said by
 * the output itself). */
static void write_record(const struct run *run, struct json *j)
{
	(void)json_write_line(j, run->out.json);
	fflush(run->out.json);
	json_free(j);
}

/* The connection record (report.c's members, or ECS's with --json-format
 * ecs) with the probe's own, into j. */
static void probe_record(struct json *j, const struct run *run, const struct probe_options *o,
			 const struct probe_result *r)
{
	json_init(j);
	ecs_record_open(j, run->ecs, "connection", &obs_conn_facts(r->obs)->first_ts, obs_conn_facts(r->obs), r->verdict,
			NULL);
	json_string(j, "mode", "probe");
	json_target(j, o);
	json_probe(j, o, r);
	ecs_record_close(j, run->ecs);
}

static void print_json(const struct run *run, const struct probe_options *o, const struct probe_result *r)
{
	struct json j;

	if (!run->out.json || !r->verdict)
		return;
	probe_record(&j, run, o, r);
	write_record(run, &j);
}

/* --evidence: the probe's connection in the folder, its record as --json
 * writes it, its keys the session's own. */
static void add_evidence(const struct run *run, const struct probe_options *o, const struct probe_result *r,
			 const struct observer_config *ocfg)
{
	const struct conn_facts *f;
	struct json j;
	char line[2048];

	if (!run->ticket || !r->verdict)
		return;
	f = obs_conn_facts(r->obs);
	report_line(line, sizeof(line), f, r->verdict);
	probe_record(&j, run, o, r);
	ticket_add(run->ticket, &(struct ticket_conn){ .f = f, .v = r->verdict, .line = line, .tap = r->tap,
						       .certs = ocfg->certs, .keylog = r->keylog,
						       .record = j.failed ? NULL : json_text(&j) });
	json_free(&j);
}

/* A probe that could not run: {"type":"probe_error", ...}. */
static void print_json_error(const struct run *run, const struct probe_options *o, const struct probe_result *r)
{
	struct json j;
	struct timeval now;

	if (!run->out.json)
		return;
	gettimeofday(&now, NULL);
	json_init(&j);
	ecs_record_open(&j, run->ecs, "probe_error", &now, NULL, NULL, NULL);
	json_string(&j, "mode", "probe");
	json_target(&j, o);
	json_string(&j, "tls_requested", tls_name(o->tls_version));
	json_string(&j, "proxy_status", r->proxy_status[0] ? r->proxy_status : NULL);
	json_string(&j, "error", r->error);
	ecs_record_close(&j, run->ecs);
	write_record(run, &j);
}

/* ---- exit status ---- */

/* 2 (could not run) over 1 (failed or refused) over 3 (undetermined)
 * over 0: a definite finding outweighs a probe that could not tell. */
static int worse_status(int a, int b)
{
	static const int rank[4] = { 0, 2, 3, 1 };

	return rank[b] > rank[a] ? b : a;
}

static int probe_status(const struct probe_result *r)
{
	if (!r->ran)
		return 2;
	if (!r->handshake_ok || r->client_auth == PROBE_AUTH_REJECTED)
		return 1;
	if (r->client_auth == PROBE_AUTH_UNDETERMINED)
		return 3;
	return 0;
}

/* ---- --compare ---- */

static void compare(const struct run *run, int version, const struct probe_result *a, const struct probe_result *b,
		    int *status)
{
	struct probe_diff d;
	char x[300];
	size_t i;

	if (!probe_compare(a, b, &d))
		return;
	report_endpoint(x, sizeof(x), run->host, run->port);
	if (run->out.text) {
		if (d.n == 0)
			fprintf(run->out.text, "compare TLS %s direct vs via %s: the same (server chain, client-certificate request, CA names): the proxy passes %s through\n",
				tls_name(version), run->via, x);
		else
			fprintf(run->out.text, "compare TLS %s direct vs via %s: %zu difference%s%s\n", tls_name(version), run->via,
				d.n, d.n == 1 ? "" : "s",
				d.intercepted ? ": the proxy terminates TLS (its server certificate is not the server's)" : "");
		for (i = 0; i < d.n; i++)
			fprintf(run->out.text, "  %s\n", d.lines[i]);
	}
	if (run->out.json) {
		struct json j;
		struct timeval now;

		gettimeofday(&now, NULL);
		json_init(&j);
		ecs_record_open(&j, run->ecs, "compare", &now, NULL, NULL, NULL);
		json_string(&j, "tls_requested", tls_name(version));
		json_string(&j, "target", x);
		json_string(&j, "via", run->via);
		json_bool(&j, "intercepted", d.intercepted);
		json_array(&j, "differences");
		for (i = 0; i < d.n; i++)
			json_string(&j, NULL, d.lines[i]);
		json_end(&j);
		ecs_record_close(&j, run->ecs);
		write_record(run, &j);
	}
	if (d.n)
		*status = worse_status(*status, 1);
}

/* ---- main ---- */

static int parse_timeout(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || s[0] == '-' || v < 1 || v > 3600)
		return 0;
	*out = (unsigned)v;
	return 1;
}

/* The options as given, HOST:PORT, --via and --tls read.  (struct
 * probe_options is one probe's, made from these.) */
struct probe_cmd_opts {
	mode_t file_mode;               /* of the --json file: 0600, or by --umask */
	char host[256];
	uint16_t port;
	const char *via;                /* --via as given, or NULL */
	char via_host[256];
	uint16_t via_port;
	const char *tls;                /* --tls as given */
	int versions[2];
	size_t n_versions;
	bool compare, http, no_http;
	const char *sni;                /* --sni NAME, or NULL */
	const char *cert_path, *key_path, *p12_path, *pass_spec, *json_path;
	const char *cas[MAX_CATALOGUES];
	size_t n_cas;
	unsigned timeout_s;
	bool at_set;
	bool quiet, verbose;             /* -q, -v */
	bool ecs;                       /* --json-format ecs */
	const char *syslog_path;        /* --syslog[=SOCKET], or NULL */
	time_t at;
	enum term_color color;          /* --color */
	struct ticket_opts evidence;    /* --evidence DIR and its options */
};

/* One option into o.  0 after printing why it is unusable (or the usage,
 * for an unknown one). */
static int probe_option(void *opts, int opt, const char *arg)
{
	struct probe_cmd_opts *o = opts;

	switch (opt) {
	case 'Y': o->via = arg; return 1;
	case 'q': o->quiet = true; return 1;
	case 'F': return cmd_parse_json_format(WHO, arg, &o->ecs);
	case 'v': o->verbose = true; return 1;
	case 'L': o->syslog_path = arg ? arg : SYSLOG_DEFAULT_SOCKET; return 1;
	case 'c': o->compare = true; return 1;
	case 't': o->tls = arg; return 1;
	case 'C': o->cert_path = arg; return 1;
	case 'K': o->key_path = arg; return 1;
	case 'P': o->p12_path = arg; return 1;
	case 'p': o->pass_spec = arg; return 1;
	case 'H': o->http = true; return 1;
	case 'N': o->no_http = true; return 1;
	case 'S':
		if (!*arg || strlen(arg) > 253 || strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_*") != strlen(arg)) {
			fprintf(stderr, WHO ": --sni: '%s' is not a host name\n", arg);
			return 0;
		}
		o->sni = arg;
		return 1;
	case 'j': o->json_path = arg; return 1;
	case 'O': return cmd_parse_color(WHO, arg, &o->color);
	case 'U': return cmd_parse_umask(WHO, arg, &o->file_mode);
	case 'i': return cmd_add_file(WHO, "--inspection-cas", o->cas, &o->n_cas, MAX_CATALOGUES, arg);
	case 'T':
		if (parse_timeout(arg, &o->timeout_s))
			return 1;
		fprintf(stderr, WHO ": --timeout: '%s' is not a number of seconds from 1 to 3600\n", arg);
		return 0;
	case 'a':
		o->at_set = true;
		return cmd_parse_time(WHO, arg, &o->at);
	default: {
		int taken = cmd_evidence_option(WHO, &o->evidence, opt, arg);

		if (taken >= 0)
			return taken;
		usage(stderr);
		return 0;
	}
	}
}

/* --tls into the versions to try.  0 after printing why. */
static int read_tls(struct probe_cmd_opts *o)
{
	int which = cmd_choice(WHO, "--tls", o->tls, (const char *const[]){ "1.2", "1.3", "both", NULL }, NULL);

	if (which == 0 || which == 2)
		o->versions[o->n_versions++] = TLS1_2_VERSION;
	if (which == 1 || which == 2)
		o->versions[o->n_versions++] = TLS1_3_VERSION;
	return which >= 0;
}

/* HOST:PORT (args) and the options that go together.  0 after printing why. */
static int check_probe(struct probe_cmd_opts *o, int n_args, char **args)
{
	if (n_args == 0) {
		fprintf(stderr, WHO ": no HOST:PORT given (try 'mtlsdiag probe --help')\n");
		return 0;
	}
	if (n_args > 1) {
		fprintf(stderr, WHO ": one HOST:PORT at a time ('%s' is one too many)\n", args[1]);
		return 0;
	}
	if (!proxy_split_hostport(args[0], o->host, sizeof(o->host), &o->port)) {
		fprintf(stderr, WHO ": '%s' is not HOST:PORT (a name or address, and a port from 1 to 65535; [::1]:443 for IPv6)\n", args[0]);
		return 0;
	}
	if (o->via && !proxy_split_hostport(o->via, o->via_host, sizeof(o->via_host), &o->via_port)) {
		fprintf(stderr, WHO ": --via '%s' is not HOST:PORT\n", o->via);
		return 0;
	}
	if (o->http && o->no_http) {
		fprintf(stderr, WHO ": --http and --no-http contradict each other\n");
		return 0;
	}
	if (o->compare && !o->via) {
		fprintf(stderr, WHO ": --compare needs --via HOST:PORT (the proxy to compare with)\n");
		return 0;
	}
	if (!read_tls(o))
		return 0;
	if ((o->cert_path || o->key_path) && o->p12_path) {
		fprintf(stderr, WHO ": --p12 or --cert/--key, not both\n");
		return 0;
	}
	if (!!o->cert_path != !!o->key_path) {
		fprintf(stderr, WHO ": %s\n", o->cert_path ? "--cert needs --key FILE" : "--key needs --cert FILE");
		return 0;
	}
	return !o->pass_spec || cmd_pass_valid(WHO, "--pass", o->pass_spec);
}

static enum cmd_parsed parse_probe(int argc, char **argv, struct probe_cmd_opts *o)
{
	static const struct option opts[] = {
		{ "via", required_argument, NULL, 'Y' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "json-format", required_argument, NULL, 'F' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "syslog", optional_argument, NULL, 'L' },
		{ "compare", no_argument, NULL, 'c' },
		{ "tls", required_argument, NULL, 't' },
		{ "cert", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'K' },
		{ "p12", required_argument, NULL, 'P' },
		{ "pass", required_argument, NULL, 'p' },
		{ "http", no_argument, NULL, 'H' },
		{ "no-http", no_argument, NULL, 'N' },
		{ "json", required_argument, NULL, 'j' },
		{ "sni", required_argument, NULL, 'S' },
		{ "umask", required_argument, NULL, 'U' },
		{ "inspection-cas", required_argument, NULL, 'i' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "at", required_argument, NULL, 'a' },
		{ "color", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		CMD_EVIDENCE_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	enum cmd_parsed parsed;

	memset(o, 0, sizeof(*o));
	o->file_mode = CMD_FILE_MODE;
	o->tls = "both";
	o->timeout_s = 10;
	parsed = cmd_getopt(WHO, argc, argv, ":hqv", opts, usage, probe_option, o);
	if (parsed != CMD_RUN)
		return parsed;
	/* the probe is the client: it holds its sessions' keys itself */
	if (!cmd_evidence_check(WHO, &o->evidence, true))
		return CMD_USAGE_ERROR;
	o->evidence.who = WHO;
	o->evidence.file_mode = o->file_mode;
	o->evidence.argc = argc;
	o->evidence.argv = argv;
	return check_probe(o, argc - optind, argv + optind) ? CMD_RUN : CMD_USAGE_ERROR;
}

/* Every leg of one TLS version: direct or through --via, or with
 * --compare both and what differs.  *status is made worse. */
static void probe_version(const struct run *run, const struct probe_cmd_opts *po, const struct cmd_creds *creds,
			  const struct observer_config *ocfg, int version, int *status)
{
	const struct probe_options o = {
		.host = po->host, .port = po->port, .tls_version = version, .timeout_ms = po->timeout_s * 1000,
		.no_http = po->no_http, .sni = po->sni, .cert = creds->cert, .key = creds->key, .chain = creds->chain,
		.cat = run->cat, .ocfg = ocfg, .keep_bytes = run->ticket != NULL,
	};
	struct probe_result res[2];
	int legs = po->compare ? 2 : 1, l;

	for (l = 0; l < legs; l++) {
		struct probe_options lo = o;

		if (l == 1 || (po->via && !po->compare)) {
			lo.via_host = po->via_host;
			lo.via_port = po->via_port;
		}
		probe_run(&lo, &res[l]);
		if (!res[l].ran) {
			fprintf(stderr, WHO ": %s\n", res[l].error);
			print_json_error(run, &lo, &res[l]);
		} else {
			print_text(run, &lo, &res[l]);
			print_json(run, &lo, &res[l]);
			add_evidence(run, &lo, &res[l], ocfg);
		}
		*status = worse_status(*status, probe_status(&res[l]));
		if (*status == 2) {
			legs = l + 1;
			break;
		}
	}
	if (po->compare && legs == 2)
		compare(run, version, &res[0], &res[1], status);
	for (l = 0; l < legs; l++)
		probe_result_clear(&res[l]);
}

static int run_probe(const struct probe_cmd_opts *o)
{
	struct cmd_pass pass = { .who = WHO, .opt = "--pass", .spec = o->pass_spec };
	struct cmd_key_source key = { .opt = "--key", .path = o->key_path };
	struct cmd_creds creds = { 0 };
	struct observer_config ocfg = { .at = o->at, .at_set = o->at_set };
	struct inspect_catalogue *cat = NULL;
	struct run run = { .host = o->host, .port = o->port, .via = o->via, .verbose = o->verbose, .ecs = o->ecs };
	size_t i;
	int status = 2;

	if (o->cert_path && !cmd_load_pem_creds("--cert", o->cert_path, &key, &pass, &creds))
		goto Exit;
	if (o->p12_path && !load_p12(o->p12_path, &pass, &creds))
		goto Exit;
	if (!(cat = cmd_load_inspection(WHO, o->cas, o->n_cas)))
		goto Exit;
	run.cat = cat;
	ocfg.inspection = cat;   /* the verdict line names the middlebox too */
	run.n_rules = inspect_count(cat);
	if (!cmd_open_outputs(WHO, o->json_path, false, o->file_mode, &run.out))
		goto Exit;
	if (o->quiet)
		run.out.text = NULL;   /* the JSON records and the exit status only */
	if (o->syslog_path && !(run.syslog = cmd_open_syslog(WHO, o->syslog_path)))
		goto Exit;
	run.color = run.out.text && term_colors(o->color, isatty(fileno(run.out.text)) == 1);
	if (!(ocfg.certs = cert_cache_new(64))) {
		fprintf(stderr, WHO ": out of memory\n");
		goto Exit;
	}
	if (o->evidence.dir && !(run.ticket = ticket_open(&o->evidence)))
		goto Exit;
	status = 0;
	for (i = 0; i < o->n_versions && status != 2; i++)
		probe_version(&run, o, &creds, &ocfg, o->versions[i], &status);
	if (run.out.text)
		fflush(run.out.text);
Exit:
	/* a failed write was said when it happened: the probe's answer stands */
	(void)ticket_close(run.ticket);
	cmd_close_syslog(WHO, o->syslog_path, run.syslog);
	if (!cmd_close_outputs(WHO, &run.out))
		status = 2;
	cmd_pass_clear(&pass);
	cert_cache_free(ocfg.certs);
	inspect_free(cat);
	cmd_creds_free(&creds);
	return status;
}

int cmd_probe(int argc, char **argv)
{
	struct probe_cmd_opts o;
	enum cmd_parsed parsed = parse_probe(argc, argv, &o);

	return parsed == CMD_RUN ? run_probe(&o) : parsed == CMD_HELP ? 0 : 2;
}
