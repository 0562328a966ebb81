/* report: human lines and JSON Lines for verdicts (see report.h). */
#include "config.h"

#include "out/report.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#include <openssl/x509_vfy.h>

#include "analysis/bundle.h"
#include "analysis/chain.h"
#include "analysis/remedy.h"
#include "out/json.h"
#include "wire/ja4.h"
#include "wire/preamble.h"
#include "wire/tls_msgs.h"

/* Text appended to a buffer of fixed size and cut where it ends, as
 * snprintf cuts: `want` counts what would have been written, so a caller
 * can tell a cut line (want >= size) as it could from snprintf. */
struct cut {
	char *buf;
	size_t size, want;
};

static void cut_init(struct cut *c, char *buf, size_t size)
{
	c->buf = buf;
	c->size = size;
	c->want = 0;
	if (size)
		buf[0] = '\0';
}

static void cut_put(struct cut *c, const char *s, size_t n)
{
	if (c->want + 1 < c->size) {
		size_t room = c->size - 1 - c->want, k = n < room ? n : room;

		memcpy(c->buf + c->want, s, k);
		c->buf[c->want + k] = '\0';
	}
	c->want += n;
}

static void cut_str(struct cut *c, const char *s)
{
	cut_put(c, s, strlen(s));
}

static void cut_uint(struct cut *c, unsigned v, unsigned digits)
{
	char num[10];
	size_t n = 0;

	do {
		num[sizeof(num) - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while ((v || n < digits) && n < sizeof(num));
	cut_put(c, num + sizeof(num) - n, n);
}

/* s into buf of len, cut as snprintf("%s") cuts. */
static void copy_cut(char *buf, size_t len, const char *s)
{
	struct cut c;

	cut_init(&c, buf, len);
	cut_str(&c, s);
}

void report_time(char *buf, size_t len, const struct timeval *tv, int digits)
{
	/* the date and time to the second, made once per second (records
	 * come in bursts within the same second): one per thread */
	static __thread time_t last = -1;
	static __thread char base[24];
	int usec = (int)(tv->tv_usec % 1000000);
	struct cut c;

	if (tv->tv_sec != last || last == -1) {
		struct tm tm;
		time_t t = tv->tv_sec;

		gmtime_r(&t, &tm);
		strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
		last = tv->tv_sec;
	}
	cut_init(&c, buf, len);
	cut_str(&c, base);
	if (usec < 0) {
		/* not a time a capture holds: as printf writes it */
		snprintf(buf, len, digits == 6 ? "%s.%06dZ" : "%s.%03dZ", base, digits == 6 ? usec : usec / 1000);
		return;
	}
	cut_put(&c, ".", 1);
	cut_uint(&c, (unsigned)(digits == 6 ? usec : usec / 1000), digits == 6 ? 6 : 3);
	cut_put(&c, "Z", 1);
}

static void endpoint_cut(struct cut *c, const char *host, uint16_t port)
{
	bool v6 = strchr(host, ':') != NULL;

	if (v6)
		cut_put(c, "[", 1);
	cut_str(c, host);
	cut_put(c, v6 ? "]:" : ":", v6 ? 2 : 1);
	cut_uint(c, port, 1);
}

void report_endpoint(char *buf, size_t len, const char *host, uint16_t port)
{
	struct cut c;

	cut_init(&c, buf, len);
	endpoint_cut(&c, host, port);
}

/* The one fact that best explains the verdict, for the human line (the
 * key log's own lines at the end are not candidates). */
static void headline(char *buf, size_t len, const struct conn_facts *f, const struct verdict *full)
{
	struct verdict_view {
		const char (*evidence)[VERDICT_EVIDENCE_LEN];
		size_t n_evidence;
		enum verdict_code code;
	} view = { full->evidence, full->n_evidence, full->code }, *v = &view;
	size_t i;

	if (full->middlebox_named && full->middlebox_line < full->n_evidence) {
		/* who terminated TLS is the finding */
		copy_cut(buf, len, full->evidence[full->middlebox_line]);
		return;
	}
	if (full->keylog_evidence >= 0 && (size_t)full->keylog_evidence < view.n_evidence)
		view.n_evidence = (size_t)full->keylog_evidence;
	buf[0] = '\0';
	switch (v->code) {
	case V_CLIENT_SENT_NO_CERT:
	case V_NO_CERT_ACCEPTED:
		if (!f->cr.seen) {
			/* TLS 1.3 without keys: the empty Certificate is the finding */
			for (i = 0; i < v->n_evidence; i++)
				if (strstr(v->evidence[i], "empty Certificate")) {
					copy_cut(buf, len, v->evidence[i]);
					return;
				}
		} else {
			struct cut c;

			cut_init(&c, buf, len);
			cut_str(&c, "server asked for CAs [");
			for (i = 0; i < f->cr.n_ca_names && c.want < len; i++) {
				if (i)
					cut_put(&c, "; ", 2);
				cut_str(&c, f->cr.ca_names[i]);
			}
			if (c.want < len)
				cut_put(&c, "]", 1);
			return;
		}
		break;
	case V_SERVER_REJECTED_CHAIN:
	case V_CLIENT_REJECTED_SERVER_CERT:
	case V_HANDSHAKE_FAILED:
		/* the last evidence lines carry the cause (chain finding or alert) */
		for (i = v->n_evidence; i-- > 0;) {
			if (strstr(v->evidence[i], "alert") || strstr(v->evidence[i], "certificate ") ||
			    strstr(v->evidence[i], "chain") || strstr(v->evidence[i], "issuer")) {
				copy_cut(buf, len, v->evidence[i]);
				return;
			}
		}
		break;
	case V_CERT_NOT_REQUESTED:
	case V_RESUMED:
		if (v->n_evidence) {
			copy_cut(buf, len, v->evidence[0]);
			return;
		}
		break;
	case V_CLIENT_CERT_ACCEPTED:
		if (f->client_chain.n) {
			struct cut c;

			cut_init(&c, buf, len);
			cut_str(&c, "client cert ");
			cut_str(&c, f->client_chain.certs[0].subject);
			cut_str(&c, " issued by ");
			cut_str(&c, f->client_chain.certs[0].issuer);
			return;
		}
		break;
	default:
		break;
	}
	if (v->n_evidence)
		copy_cut(buf, len, v->evidence[v->n_evidence - 1]);
}

void report_remedies(struct report_remedies *r, const struct conn_facts *f, const struct verdict *v)
{
	r->n = remedy_lines(f, v, r->lines, REMEDY_MAX);
}

/* The line, its remedy from r or (r NULL) worked out here. */
static void line_of(char *buf, size_t len, const struct conn_facts *f, const struct verdict *v,
		    const struct report_remedies *r)
{
	char ts[40], client[80], server[300], head[2 * VERDICT_EVIDENCE_LEN + 128], status[96] = "";
	char remedy[1][REMEDY_LEN];
	const char *first = NULL;
	const char *reason = reason_code_name(v->reason);
	struct cut c;

	/* each part cut to its own buffer first, as it always was */
	report_time(ts, sizeof(ts), &f->first_ts, 3);
	report_endpoint(client, sizeof(client), f->client.ip, f->client.port);
	report_endpoint(server, sizeof(server), f->ch.sni[0] ? f->ch.sni : f->server.ip, f->server.port);
	headline(head, sizeof(head), f, v);
	/* a refusal read in the HTTP answer says its status first */
	if (f->http_status >= 400 && (v->code == V_SERVER_REJECTED_CHAIN || v->code == V_CLIENT_SENT_NO_CERT) &&
	    !strstr(head, "HTTP "))
		snprintf(status, sizeof(status), "HTTP %d%s%s%s", f->http_status, f->http_reason[0] ? " " : "",
			 f->http_reason, head[0] ? "; " : "");
	/* "TS CLIENT -> SERVER TLS VERDICT[: REASON] (fault: F; B) [STATUS][HEAD]" */
	cut_init(&c, buf, len);
	cut_str(&c, ts);
	cut_put(&c, " ", 1);
	cut_str(&c, client);
	cut_put(&c, " -> ", 4);
	cut_str(&c, server);
	cut_put(&c, " ", 1);
	cut_str(&c, verdict_tls_label(f));
	cut_put(&c, " ", 1);
	cut_str(&c, verdict_code_text(v->code));
	if (reason) {
		cut_put(&c, ": ", 2);
		cut_str(&c, reason);
	}
	cut_put(&c, " (fault: ", 9);
	cut_str(&c, fault_name(v->fault));
	cut_put(&c, "; ", 2);
	cut_str(&c, basis_name(v->basis));
	cut_put(&c, ")", 1);
	if (status[0] || head[0])
		cut_put(&c, " ", 1);
	cut_str(&c, status);
	cut_str(&c, head);
	/* what to change, the first of the remedies */
	if (c.want < len && !v->evidence_omitted) {
		if (r)
			first = r->n ? r->lines[0] : NULL;
		else if (remedy_lines(f, v, remedy, 1) == 1)
			first = remedy[0];
	}
	if (first) {
		cut_put(&c, "; remedy: ", 10);
		cut_str(&c, first);
	}
}

void report_line(char *buf, size_t len, const struct conn_facts *f, const struct verdict *v)
{
	line_of(buf, len, f, v, NULL);
}

void report_line_remedied(char *buf, size_t len, const struct conn_facts *f, const struct verdict *v,
			  const struct report_remedies *r)
{
	line_of(buf, len, f, v, r);
}

/* ---- JSON ---- */

/* The "keylog" member: null when no key log was consulted. */
static const char *keylog_use_name(enum keylog_use k)
{
	switch (k) {
	case KEYLOG_UNUSED: return NULL;
	case KEYLOG_DECRYPTED: return "decrypted";
	case KEYLOG_NO_ENTRY: return "no_entry";
	case KEYLOG_MISSING_SECRET: return "missing_secret";
	case KEYLOG_BAD_KEY: return "does_not_decrypt";
	case KEYLOG_UNSUPPORTED: return "unsupported";
	}
	return NULL;
}

/* The helpers that take a member's name are inlined, so that a literal
 * name stays one the builder knows (json_known_name_). */
#define NAME_KEPT static inline __attribute__((always_inline))

NAME_KEPT void json_tristate(struct json *j, const char *key, enum tristate t)
{
	if (t == TRI_UNKNOWN)
		json_null(j, key);
	else
		json_bool(j, key, t == TRI_YES);
}

NAME_KEPT void json_endpoint(struct json *j, const char *key, const struct endpoint *e)
{
	json_object(j, key);
	json_string(j, "ip", e->ip);
	json_uint(j, "port", e->port);
	json_end(j);
}

static void json_cert(struct json *j, const struct cert_info *c)
{
	char eku[sizeof(c->eku)];
	char *tok, *save = NULL;
	size_t mark = json_mark(j);

	/* a certificate's object depends on its bytes alone: made once per
	 * fingerprint, then copied (lab and real traffic repeat chains) */
	if (c->sha256[0] && json_recall(j, c->sha256))
		return;
	json_object(j, NULL);
	if (c->parse_failed) {
		json_bool(j, "parse_error", true);
		json_string(j, "sha256", c->sha256);
		json_end(j);
		goto Remember;
	}
	json_string(j, "subject", c->subject);
	json_string(j, "issuer", c->issuer);
	json_string(j, "serial", c->serial);
	json_string(j, "not_before", c->not_before);
	json_string(j, "not_after", c->not_after);
	json_string(j, "sha256", c->sha256);
	json_string(j, "key", c->key);
	json_array(j, "eku");
	snprintf(eku, sizeof(eku), "%s", c->eku);
	for (tok = strtok_r(eku, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		json_string(j, NULL, tok);
	json_end(j);
	json_end(j);
Remember:
	if (c->sha256[0])
		json_remember(j, c->sha256, mark);
}

NAME_KEPT void json_chain(struct json *j, const char *key, const struct cert_chain *ch)
{
	json_array(j, key);
	for (size_t i = 0; i < ch->n; i++)
		json_cert(j, &ch->certs[i]);
	json_end(j);
}

/* The other leg of a terminating gateway: which leg it is, its endpoints,
 * SNI, first byte and verdict; null when there is none. */
static void json_partner(struct json *j, const struct verdict_partner *p)
{
	char ts[40];

	if (!p->set) {
		json_null(j, "partner");
		return;
	}
	json_object(j, "partner");
	json_string(j, "leg", p->server_leg ? "server" : "client");
	json_endpoint(j, "client", &p->client);
	json_endpoint(j, "server", &p->server);
	json_string(j, "sni", p->sni[0] ? p->sni : NULL);
	report_time(ts, sizeof(ts), &p->ts, 6);
	json_string(j, "ts", ts);
	json_string(j, "verdict", verdict_code_name(p->code));
	json_end(j);
}

static void json_alert(struct json *j, const struct alert *a)
{
	bool hidden = a->encrypted && !a->decrypted;

	json_object(j, NULL);
	json_string(j, "from", a->from == SIDE_CLIENT ? "client" : "server");
	json_string(j, "level", hidden ? NULL : a->level == 2 ? "fatal" : a->level == 1 ? "warning" : "unknown");
	json_string(j, "description", hidden ? NULL : tls_alert_name(a->description));
	json_bool(j, "encrypted", a->encrypted);
	if (a->decrypted)
		json_bool(j, "decrypted", true);
	json_end(j);
}

/* The verification of the client's chain (chain.h); null when none ran. */
static void json_chain_check(struct json *j, const struct conn_facts *f, const struct verdict *v)
{
	const struct chain_verify *cv = v->check;
	const char *who;
	char line[160], name[256];
	unsigned i, bit;

	if (cv == NULL || cv->trust == CHAIN_TRUST_NONE) {
		json_null(j, "chain_check");
		return;
	}
	json_object(j, "chain_check");
	json_string(j, "trust", cv->trust == CHAIN_TRUST_BUNDLE ? "ca-bundle" : "ca-names");
	json_bool(j, "verified", cv->ok);
	chain_verify_log_line(cv, v->server_kind, line, sizeof(line), &who);
	if (cv->ok) {
		json_null(j, "error");
		json_null(j, "error_text");
		json_null(j, "error_depth");
		json_null(j, "first_error");
		json_null(j, "first_error_text");
		json_null(j, "first_error_depth");
		json_null(j, "log");
	} else {
		json_int(j, "error", cv->error);
		json_string(j, "error_text", X509_verify_cert_error_string(cv->error));
		json_int(j, "error_depth", cv->error_depth);
		json_int(j, "first_error", cv->first_error);
		json_string(j, "first_error_text", X509_verify_cert_error_string(cv->first_error));
		json_int(j, "first_error_depth", cv->first_depth);
		json_string(j, "log", line);
	}
	json_string(j, "log_server", who);
	json_array(j, "chain");
	for (i = 0; i < cv->n_built; i++) {
		chain_verify_subject(cv, &f->client_chain, i, name, sizeof(name));
		json_string(j, NULL, name);
	}
	json_end(j);
	chain_verify_stop(cv, &f->client_chain, name, sizeof(name));
	json_string(j, "stops_at", name[0] ? name : NULL);
	if (cv->verify_depth >= 0)
		json_int(j, "verify_depth", cv->verify_depth);
	else
		json_null(j, "verify_depth");
	if (cv->needed_depth >= 0)
		json_int(j, "needed_depth", cv->needed_depth);
	else
		json_null(j, "needed_depth");
	json_bool(j, "depth_limited", cv->depth_limited);
	json_string(j, "purpose", chain_purpose_name(cv->purpose));
	json_bool(j, "crl", cv->crl);
	if (cv->trust == CHAIN_TRUST_BUNDLE && f->cr.n_ca_names > 0)
		json_bool(j, "cas_agree", !cv->names_disagree);
	else
		json_null(j, "cas_agree");
	json_array(j, "bundle_problems");
	for (bit = 1; bit < (1u << BUNDLE_PROBLEM_BITS); bit <<= 1)
		if (cv->bundle_problems & bit)
			json_string(j, NULL, bundle_problem_name(bit));
	json_end(j);
	json_string(j, "note", cv->note[0] ? cv->note : NULL);
	json_end(j);
}

static void json_server_kind(struct json *j, const struct verdict *v)
{
	if (v->server_kind == SK_UNKNOWN) {
		json_null(j, "server_kind");
		return;
	}
	json_object(j, "server_kind");
	json_string(j, "name", server_kind_name(v->server_kind));
	json_string(j, "from", server_kind_source_name(v->server_kind_source));
	json_end(j);
}

void report_json_kind(struct json *j, const char *type)
{
	json_string(j, "type", type);
	json_uint(j, "schema", REPORT_SCHEMA);
}

/* The members, the remedies from r or (r NULL) worked out here. */
static void members_of(struct json *j, const struct conn_facts *f, const struct verdict *v, const char *summary,
		       const struct report_remedies *r)
{
	struct report_remedies own;
	char ts[40], line[1024], ja4[JA4_LEN];
	size_t i;

	report_json_kind(j, "connection");
	report_time(ts, sizeof(ts), &f->first_ts, 6);
	json_string(j, "ts", ts);
	json_endpoint(j, "client", &f->client);
	json_endpoint(j, "server", &f->server);
	json_string(j, "sni", f->ch.sni[0] ? f->ch.sni : NULL);
	if (!f->ch.seen) {
		json_null(j, "alpn");
	} else {
		json_array(j, "alpn");
		for (i = 0; i < f->ch.n_alpn; i++)
			json_string(j, NULL, f->ch.alpn[i]);
		json_end(j);
	}
	json_string(j, "tls_version", f->sh.seen && !f->sh.hello_retry ? tls_version_name(f->sh.selected_version) : NULL);
	/* the JA4 fingerprint is made here, where it is written, from the
	 * ClientHello's fields the facts keep */
	ja4[0] = '\0';
	if (f->ch.seen)
		ja4_compute(&f->ch, 't', ja4);
	json_string(j, "ja4", ja4[0] ? ja4 : NULL);
	json_tristate(j, "cert_requested", v->cert_requested);
	json_array(j, "acceptable_cas");
	for (i = 0; i < f->cr.n_ca_names; i++)
		json_string(j, NULL, f->cr.ca_names[i]);
	json_end(j);
	json_tristate(j, "client_cert_sent", v->client_cert_sent);
	json_chain(j, "client_chain", &f->client_chain);
	json_chain(j, "server_chain", &f->server_chain);
	json_array(j, "alerts");
	for (i = 0; i < f->n_alerts; i++)
		json_alert(j, &f->alerts[i]);
	json_end(j);
	if (f->http_status)
		json_int(j, "http_status", f->http_status);
	else
		json_null(j, "http_status");
	json_string(j, "verdict", verdict_code_name(v->code));
	json_string(j, "reason", reason_code_name(v->reason));
	json_string(j, "fault", fault_name(v->fault));
	json_string(j, "basis", basis_name(v->basis));
	json_array(j, "evidence");
	for (i = 0; i < v->n_evidence; i++)
		json_string(j, NULL, v->evidence[i]);
	json_end(j);
	/* the summary is the human line, cut to line's size as it always was */
	if (summary)
		copy_cut(line, sizeof(line), summary);
	else
		report_line(line, sizeof(line), f, v);
	json_string(j, "summary", line);
	/* additions to the contract */
	json_string(j, "preamble", f->preamble ? preamble_kind_name(f->preamble) : NULL);
	json_string(j, "connect_target", f->connect_target[0] ? f->connect_target : NULL);
	json_object(j, "bytes");
	json_uint(j, "client", f->dir[SIDE_CLIENT].bytes);
	json_uint(j, "server", f->dir[SIDE_SERVER].bytes);
	json_end(j);
	json_bool(j, "truncated", f->truncated);
	json_string(j, "decode_error", f->decode_error[0] ? f->decode_error : NULL);
	json_string(j, "keylog", keylog_use_name(f->keylog));
	json_string(j, "http_request", f->http_request[0] ? f->http_request : NULL);
	json_string(j, "http_reason", f->http_status ? f->http_reason : NULL);
	json_string(j, "http_title", f->http_title[0] ? f->http_title : NULL);
	json_partner(j, &v->partner);
	json_chain_check(j, f, v);
	json_server_kind(j, v);
	if (!r) {
		report_remedies(&own, f, v);
		r = &own;
	}
	json_array(j, "remedies");
	for (i = 0; i < r->n; i++)
		json_string(j, NULL, r->lines[i]);
	json_end(j);
	if (f->source)
		json_string(j, "source", f->source);
}

void report_json_members(struct json *j, const struct conn_facts *f, const struct verdict *v,
			 const char *summary)
{
	members_of(j, f, v, summary, NULL);
}

int report_json_remedied(struct json *scratch, FILE *out, const struct conn_facts *f, const struct verdict *v,
			 const char *summary, const struct report_remedies *r)
{
	json_reset(scratch);
	json_object(scratch, NULL);
	members_of(scratch, f, v, summary, r);
	json_end(scratch);
	return json_write_line(scratch, out);
}

int report_json(struct json *scratch, FILE *out, const struct conn_facts *f, const struct verdict *v,
		const char *summary)
{
	return report_json_remedied(scratch, out, f, v, summary, NULL);
}

void report_tally_add(struct report_tally *t, const struct verdict *v)
{
	t->connections++;
	if ((unsigned)v->code < V_COUNT)
		t->by_verdict[v->code]++;
}

void report_summary_text(FILE *out, const struct report_tally *t)
{
	int i;
	bool first = true;

	fprintf(out, "%llu connection%s", (unsigned long long)t->connections, t->connections == 1 ? "" : "s");
	for (i = 0; i < V_COUNT; i++) {
		if (!t->by_verdict[i])
			continue;
		fprintf(out, "%s %llu %s", first ? ":" : ",", (unsigned long long)t->by_verdict[i],
			verdict_code_name((enum verdict_code)i));
		first = false;
	}
	fputc_unlocked('\n', out);
}

void report_summary_members(struct json *j, const struct report_tally *t)
{
	report_json_kind(j, "summary");
	json_uint(j, "connections", t->connections);
	json_object(j, "verdicts");
	for (int i = 0; i < V_COUNT; i++)
		if (t->by_verdict[i])
			json_uint(j, verdict_code_name((enum verdict_code)i), t->by_verdict[i]);
	json_end(j);
}
