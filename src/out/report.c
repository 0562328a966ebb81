/* report: human lines and JSON Lines for verdicts (see report.h). */
#include "config.h"

#include "out/report.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "wire/preamble.h"
#include "wire/tls_msgs.h"

void report_time(char *buf, size_t len, const struct timeval *tv, int digits)
{
	struct tm tm;
	time_t t = tv->tv_sec;
	char base[24];

	gmtime_r(&t, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	if (digits == 6)
		snprintf(buf, len, "%s.%06dZ", base, (int)(tv->tv_usec % 1000000));
	else
		snprintf(buf, len, "%s.%03dZ", base, (int)(tv->tv_usec % 1000000) / 1000);
}

void report_endpoint(char *buf, size_t len, const char *host, uint16_t port)
{
	if (strchr(host, ':'))
		snprintf(buf, len, "[%s]:%u", host, port);
	else
		snprintf(buf, len, "%s:%u", host, port);
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
		snprintf(buf, len, "%s", full->evidence[full->middlebox_line]);
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
					snprintf(buf, len, "%s", v->evidence[i]);
					return;
				}
		} else {
			size_t used = (size_t)snprintf(buf, len, "server asked for CAs [");
			for (i = 0; i < f->cr.n_ca_names && used < len; i++)
				used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "; " : "", f->cr.ca_names[i]);
			if (used < len)
				snprintf(buf + used, len - used, "]");
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
				snprintf(buf, len, "%s", v->evidence[i]);
				return;
			}
		}
		break;
	case V_CERT_NOT_REQUESTED:
	case V_RESUMED:
		if (v->n_evidence) {
			snprintf(buf, len, "%s", v->evidence[0]);
			return;
		}
		break;
	case V_CLIENT_CERT_ACCEPTED:
		if (f->client_chain.n) {
			snprintf(buf, len, "client cert %s issued by %s", f->client_chain.certs[0].subject,
				 f->client_chain.certs[0].issuer);
			return;
		}
		break;
	default:
		break;
	}
	if (v->n_evidence)
		snprintf(buf, len, "%s", v->evidence[v->n_evidence - 1]);
}

void report_line(char *buf, size_t len, const struct conn_facts *f, const struct verdict *v)
{
	char ts[40], client[80], server[300], head[2 * VERDICT_EVIDENCE_LEN + 128], status[96] = "";
	const char *reason = reason_code_name(v->reason);

	report_time(ts, sizeof(ts), &f->first_ts, 3);
	report_endpoint(client, sizeof(client), f->client.ip, f->client.port);
	report_endpoint(server, sizeof(server), f->ch.sni[0] ? f->ch.sni : f->server.ip, f->server.port);
	headline(head, sizeof(head), f, v);
	/* a refusal read in the HTTP answer says its status first */
	if (f->http_status >= 400 && (v->code == V_SERVER_REJECTED_CHAIN || v->code == V_CLIENT_SENT_NO_CERT) &&
	    !strstr(head, "HTTP "))
		snprintf(status, sizeof(status), "HTTP %d%s%s%s", f->http_status, f->http_reason[0] ? " " : "",
			 f->http_reason, head[0] ? "; " : "");
	snprintf(buf, len, "%s %s -> %s %s %s%s%s (fault: %s; %s)%s%s%s", ts, client, server,
		 verdict_tls_label(f), verdict_code_text(v->code), reason ? ": " : "", reason ? reason : "",
		 fault_name(v->fault), basis_name(v->basis), status[0] || head[0] ? " " : "", status, head);
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

/* Length of the valid UTF-8 sequence at p (2..4), or 0. */
static size_t utf8_len(const unsigned char *p)
{
	size_t n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

void report_json_string(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (!s) {
		fputs_unlocked("null", out);
		return;
	}
	putc_unlocked('"', out);
	for (; *p; p++) {
		const unsigned char *run = p;
		size_t u;

		/* printable ASCII needs no escape: written a run at a time */
		while (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
			p++;
		if (p > run)
			fwrite_unlocked(run, 1, (size_t)(p - run), out);
		if (!*p)
			break;
		u = *p >= 0x80 ? utf8_len(p) : 0;
		if (u) {
			fwrite_unlocked(p, 1, u, out);
			p += u - 1;
			continue;
		}
		switch (*p) {
		case '"': fputs_unlocked("\\\"", out); break;
		case '\\': fputs_unlocked("\\\\", out); break;
		case '\n': fputs_unlocked("\\n", out); break;
		case '\r': fputs_unlocked("\\r", out); break;
		case '\t': fputs_unlocked("\\t", out); break;
		default:
			if (*p < 0x20 || *p >= 0x7f)
				fprintf(out, "\\u%04x", *p);   /* a control byte, or not UTF-8 */
			else
				putc_unlocked(*p, out);
		}
	}
	putc_unlocked('"', out);
}

/* `lead` (punctuation and the member's name), then the value as a string. */
static void json_field(FILE *out, const char *lead, const char *value)
{
	fputs_unlocked(lead, out);
	report_json_string(out, value);
}

static void json_tristate(FILE *out, enum tristate t)
{
	fputs_unlocked(t == TRI_YES ? "true" : t == TRI_NO ? "false" : "null", out);
}

static void json_endpoint(FILE *out, const struct endpoint *e)
{
	json_field(out, "{\"ip\":", e->ip);
	fprintf(out, ",\"port\":%u}", e->port);
}

static void json_cert(FILE *out, const struct cert_info *c)
{
	char eku[sizeof(c->eku)];
	char *tok, *save = NULL;
	bool first = true;

	if (c->parse_failed) {
		fputs_unlocked("{\"parse_error\":true,\"sha256\":", out);
		report_json_string(out, c->sha256);
		putc_unlocked('}', out);
		return;
	}
	json_field(out, "{\"subject\":", c->subject);
	json_field(out, ",\"issuer\":", c->issuer);
	json_field(out, ",\"serial\":", c->serial);
	json_field(out, ",\"not_before\":", c->not_before);
	json_field(out, ",\"not_after\":", c->not_after);
	json_field(out, ",\"sha256\":", c->sha256);
	json_field(out, ",\"key\":", c->key);
	fputs_unlocked(",\"eku\":[", out);
	snprintf(eku, sizeof(eku), "%s", c->eku);
	for (tok = strtok_r(eku, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!first)
			putc_unlocked(',', out);
		report_json_string(out, tok);
		first = false;
	}
	fputs_unlocked("]}", out);
}

static void json_chain(FILE *out, const struct cert_chain *ch)
{
	size_t i;

	putc_unlocked('[', out);
	for (i = 0; i < ch->n; i++) {
		if (i)
			putc_unlocked(',', out);
		json_cert(out, &ch->certs[i]);
	}
	putc_unlocked(']', out);
}

/* The other leg of a terminating gateway: which leg it is, its endpoints,
 * SNI, first byte and verdict; null when there is none. */
static void json_partner(FILE *out, const struct verdict_partner *p)
{
	char ts[40];

	if (!p->set) {
		fputs_unlocked("null", out);
		return;
	}
	json_field(out, "{\"leg\":", p->server_leg ? "server" : "client");
	fputs_unlocked(",\"client\":", out);
	json_endpoint(out, &p->client);
	fputs_unlocked(",\"server\":", out);
	json_endpoint(out, &p->server);
	json_field(out, ",\"sni\":", p->sni[0] ? p->sni : NULL);
	report_time(ts, sizeof(ts), &p->ts, 6);
	json_field(out, ",\"ts\":", ts);
	json_field(out, ",\"verdict\":", verdict_code_name(p->code));
	putc_unlocked('}', out);
}

void report_json(FILE *out, const struct conn_facts *f, const struct verdict *v)
{
	char ts[40], line[1024];
	size_t i;

	/* one record is written by one thread: take the stream's lock once and
	 * use the unlocked writers inside */
	flockfile(out);

	report_time(ts, sizeof(ts), &f->first_ts, 6);
	json_field(out, "{\"type\":\"connection\",\"schema\":" REPORT_SCHEMA ",\"ts\":", ts);
	fputs_unlocked(",\"client\":", out);
	json_endpoint(out, &f->client);
	fputs_unlocked(",\"server\":", out);
	json_endpoint(out, &f->server);
	json_field(out, ",\"sni\":", f->ch.sni[0] ? f->ch.sni : NULL);
	fputs_unlocked(",\"alpn\":", out);
	if (!f->ch.seen) {
		fputs_unlocked("null", out);
	} else {
		putc_unlocked('[', out);
		for (i = 0; i < f->ch.n_alpn; i++) {
			if (i)
				putc_unlocked(',', out);
			report_json_string(out, f->ch.alpn[i]);
		}
		putc_unlocked(']', out);
	}
	json_field(out, ",\"tls_version\":", f->sh.seen && !f->sh.hello_retry ? tls_version_name(f->sh.selected_version) : NULL);
	json_field(out, ",\"ja4\":", f->ch.seen && f->ch.ja4[0] ? f->ch.ja4 : NULL);
	fputs_unlocked(",\"cert_requested\":", out);
	json_tristate(out, v->cert_requested);
	fputs_unlocked(",\"acceptable_cas\":[", out);
	for (i = 0; i < f->cr.n_ca_names; i++) {
		if (i)
			putc_unlocked(',', out);
		report_json_string(out, f->cr.ca_names[i]);
	}
	fputs_unlocked("],\"client_cert_sent\":", out);
	json_tristate(out, v->client_cert_sent);
	fputs_unlocked(",\"client_chain\":", out);
	json_chain(out, &f->client_chain);
	fputs_unlocked(",\"server_chain\":", out);
	json_chain(out, &f->server_chain);
	fputs_unlocked(",\"alerts\":[", out);
	for (i = 0; i < f->n_alerts; i++) {
		const struct alert *a = &f->alerts[i];

		fprintf(out, "%s{\"from\":\"%s\",\"level\":", i ? "," : "",
			a->from == SIDE_CLIENT ? "client" : "server");
		report_json_string(out, a->encrypted && !a->decrypted ? NULL
			 : a->level == 2 ? "fatal" : a->level == 1 ? "warning" : "unknown");
		fputs_unlocked(",\"description\":", out);
		report_json_string(out, a->encrypted && !a->decrypted ? NULL : tls_alert_name(a->description));
		fprintf(out, ",\"encrypted\":%s", a->encrypted ? "true" : "false");
		if (a->decrypted)
			fputs_unlocked(",\"decrypted\":true", out);
		putc_unlocked('}', out);
	}
	fputs_unlocked("],\"http_status\":", out);
	if (f->http_status)
		fprintf(out, "%d", f->http_status);
	else
		fputs_unlocked("null", out);
	json_field(out, ",\"verdict\":", verdict_code_name(v->code));
	json_field(out, ",\"reason\":", reason_code_name(v->reason));
	json_field(out, ",\"fault\":", fault_name(v->fault));
	json_field(out, ",\"basis\":", basis_name(v->basis));
	fputs_unlocked(",\"evidence\":[", out);
	for (i = 0; i < v->n_evidence; i++) {
		if (i)
			putc_unlocked(',', out);
		report_json_string(out, v->evidence[i]);
	}
	fputs_unlocked("],\"summary\":", out);
	report_line(line, sizeof(line), f, v);
	report_json_string(out, line);
	/* additions to the contract */
	json_field(out, ",\"preamble\":", f->preamble ? preamble_kind_name(f->preamble) : NULL);
	json_field(out, ",\"connect_target\":", f->connect_target[0] ? f->connect_target : NULL);
	fprintf(out, ",\"bytes\":{\"client\":%llu,\"server\":%llu}",
		(unsigned long long)f->dir[SIDE_CLIENT].bytes, (unsigned long long)f->dir[SIDE_SERVER].bytes);
	fprintf(out, ",\"truncated\":%s", f->truncated ? "true" : "false");
	json_field(out, ",\"decode_error\":", f->decode_error[0] ? f->decode_error : NULL);
	json_field(out, ",\"keylog\":", keylog_use_name(f->keylog));
	json_field(out, ",\"http_request\":", f->http_request[0] ? f->http_request : NULL);
	json_field(out, ",\"http_reason\":", f->http_status ? f->http_reason : NULL);
	json_field(out, ",\"http_title\":", f->http_title[0] ? f->http_title : NULL);
	fputs_unlocked(",\"partner\":", out);
	json_partner(out, &v->partner);
	fputs_unlocked("}\n", out);
	funlockfile(out);
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

void report_summary_json(FILE *out, const struct report_tally *t, const char *extra)
{
	int i;
	bool first = true;

	fprintf(out, "{\"type\":\"summary\",\"schema\":" REPORT_SCHEMA ",\"connections\":%llu,\"verdicts\":{",
		(unsigned long long)t->connections);
	for (i = 0; i < V_COUNT; i++) {
		if (!t->by_verdict[i])
			continue;
		fprintf(out, "%s\"%s\":%llu", first ? "" : ",", verdict_code_name((enum verdict_code)i),
			(unsigned long long)t->by_verdict[i]);
		first = false;
	}
	putc_unlocked('}', out);
	if (extra && *extra)
		fprintf(out, ",%s", extra);
	fputs_unlocked("}\n", out);
}
