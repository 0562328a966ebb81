/* ecs: connection records with Elastic Common Schema names (ecs.h). */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/codes.h"
#include "out/ecs.h"
#include "out/report.h"
#include "wire/tls_msgs.h"
#include "wire/tlscrypt.h"

static void common_head(struct json *j, const struct timeval *ts, const char *kind, const char *type)
{
	char when[40], dataset[64];

	report_time(when, sizeof(when), ts, 6);
	json_string(j, "@timestamp", when);
	json_object(j, "ecs");
	json_string(j, "version", ECS_VERSION);
	json_end(j);
	snprintf(dataset, sizeof(dataset), "mtlsdiag.%s", type);
	json_object(j, "event");
	json_string(j, "kind", kind);
	json_string(j, "module", "mtlsdiag");
	json_string(j, "dataset", dataset);
}

void ecs_record_begin(struct json *j, const char *type, const struct timeval *ts)
{
	json_object(j, NULL);
	common_head(j, ts, strcmp(type, "summary") == 0 ? "metric" : "event", type);
	json_end(j);
	json_object(j, "mtlsdiag");
}

void ecs_end(struct json *j)
{
	json_end(j);   /* mtlsdiag */
	json_end(j);   /* the record */
}

void ecs_record_open(struct json *j, bool ecs, const char *type, const struct timeval *ts,
		     const struct conn_facts *f, const struct verdict *v, const char *summary)
{
	if (f && v && ecs) {
		ecs_connection_begin(j, f, v, summary);
		return;
	}
	if (ecs)
		ecs_record_begin(j, type, ts);
	else
		json_object(j, NULL);
	if (f && v)
		report_json_members(j, f, v, summary);
	else
		report_json_kind(j, type);
}

void ecs_record_close(struct json *j, bool ecs)
{
	if (ecs)
		ecs_end(j);
	else
		json_end(j);
}

/* event.outcome: the server took the connection (no one must act), it
 * did not, or it cannot be told. */
static const char *outcome(const struct verdict *v)
{
	switch (v->fault) {
	case F_NONE: return "success";
	case F_CLIENT:
	case F_SERVER:
	case F_MIDDLEBOX: return "failure";
	default: break;
	}
	return "unknown";
}

/* tls.established: the handshake ended with the server taking the
 * connection on (a refusal after the handshake, as nginx's 400, is not). */
static bool established(const struct verdict *v)
{
	switch (v->code) {
	case V_CLIENT_CERT_ACCEPTED:
	case V_NO_CERT_ACCEPTED:
	case V_CERT_NOT_REQUESTED:
	case V_RESUMED:
		return true;
	default:
		return false;
	}
}

static int64_t ns_between(const struct timeval *a, const struct timeval *b)
{
	int64_t us = ((int64_t)b->tv_sec - a->tv_sec) * 1000000 + (b->tv_usec - a->tv_usec);

	return us > 0 ? us * 1000 : 0;
}

/* The common names of an RFC 2253 name as x509info_name writes it ("CN=a,
 * O=b"; a comma inside a value is escaped "\,"), unescaped. */
static void common_names(struct json *j, const char *dn)
{
	const char *p = dn;

	json_array(j, "common_name");
	while (*p) {
		if (strncmp(p, "CN=", 3) == 0) {
			char cn[256];
			size_t n = 0;

			for (p += 3; *p && *p != ','; p++) {
				if (*p == '\\' && p[1])
					p++;
				if (n + 1 < sizeof(cn))
					cn[n++] = *p;
			}
			cn[n] = '\0';
			json_string(j, NULL, cn);
		}
		/* the next RDN: past an unescaped ", " */
		while (*p && *p != ',') {
			if (*p == '\\' && p[1])
				p++;
			p++;
		}
		while (*p == ',' || *p == ' ')
			p++;
	}
	json_end(j);
}

static void x509_name(struct json *j, const char *key, const char *dn)
{
	json_object(j, key);
	json_string(j, "distinguished_name", dn);
	common_names(j, dn);
	json_end(j);
}

/* x509.* and the leaf's hash and dates, for tls.client or tls.server;
 * nothing when no certificate was seen. */
static void leaf(struct json *j, const struct cert_chain *chain)
{
	const struct cert_info *c;
	char alg[32];
	size_t n;

	if (chain->n == 0 || chain->certs[0].parse_failed)
		return;
	c = &chain->certs[0];
	json_string(j, "subject", c->subject);
	json_string(j, "issuer", c->issuer);
	json_string(j, "not_before", c->not_before);
	json_string(j, "not_after", c->not_after);
	json_object(j, "hash");
	json_string(j, "sha256", c->sha256);
	json_end(j);
	json_object(j, "x509");
	x509_name(j, "subject", c->subject);
	x509_name(j, "issuer", c->issuer);
	json_string(j, "serial_number", c->serial);
	json_string(j, "not_before", c->not_before);
	json_string(j, "not_after", c->not_after);
	/* x509info's "RSA-2048", "EC-P-256", "RSA-PSS-3072", "ED25519" */
	n = strcspn(c->key, "-");
	if (strncmp(c->key, "RSA-PSS-", 8) == 0)
		n = 7;
	snprintf(alg, sizeof(alg), "%.*s", (int)n, c->key);
	json_string(j, "public_key_algorithm", alg);
	if (c->key[n] == '-' && c->key[n + 1] >= '0' && c->key[n + 1] <= '9')
		json_uint(j, "public_key_size", strtoull(c->key + n + 1, NULL, 10));
	else if (c->key[n] == '-')
		json_string(j, "public_key_curve", c->key + n + 1);
	json_end(j);
}

static void endpoint(struct json *j, const char *key, const struct endpoint *e, uint64_t bytes, const char *domain)
{
	json_object(j, key);
	json_string(j, "ip", e->ip);
	json_uint(j, "port", e->port);
	if (domain)
		json_string(j, "domain", domain);
	json_uint(j, "bytes", bytes);
	json_end(j);
}

static void tls_fields(struct json *j, const struct conn_facts *f, const struct verdict *v)
{
	const struct tlscrypt_suite *suite;

	json_object(j, "tls");
	if (f->sh.seen && !f->sh.hello_retry) {
		json_string(j, "version", tls_version_name(f->sh.selected_version));
		json_string(j, "version_protocol", f->sh.selected_version <= TLS_V_SSL3 ? "ssl" : "tls");
	}
	if (f->sh.seen && !f->sh.hello_retry && (suite = tlscrypt_suite(f->sh.cipher)))
		json_string(j, "cipher", suite->name);   /* the IANA name, as ECS has it */
	json_bool(j, "established", established(v));
	json_bool(j, "resumed", v->code == V_RESUMED);
	if (f->sh.alpn[0])
		json_string(j, "next_protocol", f->sh.alpn);
	json_object(j, "client");
	if (f->ch.sni[0])
		json_string(j, "server_name", f->ch.sni);
	leaf(j, &f->client_chain);
	json_end(j);
	json_object(j, "server");
	leaf(j, &f->server_chain);
	json_end(j);
	json_end(j);
}

void ecs_connection_begin(struct json *j, const struct conn_facts *f, const struct verdict *v, const char *summary)
{
	char line[1024];

	if (!summary) {
		report_line(line, sizeof(line), f, v);
		summary = line;
	}
	json_object(j, NULL);
	common_head(j, &f->first_ts, v->fault == F_NONE ? "event" : "alert", "connection");
	json_array(j, "category");
	json_string(j, NULL, "network");
	json_end(j);
	json_array(j, "type");
	json_string(j, NULL, "connection");
	json_string(j, NULL, outcome(v)[0] == 'f' ? "denied" : "allowed");
	json_end(j);
	json_string(j, "action", verdict_code_name(v->code));
	json_string(j, "outcome", outcome(v));
	json_string(j, "reason", verdict_code_text(v->code));
	{
		char when[40];

		report_time(when, sizeof(when), &f->first_ts, 6);
		json_string(j, "start", when);
		report_time(when, sizeof(when), &f->last_ts, 6);
		json_string(j, "end", when);
	}
	json_int(j, "duration", ns_between(&f->first_ts, &f->last_ts));
	json_end(j);
	json_string(j, "message", summary);
	endpoint(j, "source", &f->client, f->dir[SIDE_CLIENT].bytes, NULL);
	endpoint(j, "destination", &f->server, f->dir[SIDE_SERVER].bytes, f->ch.sni[0] ? f->ch.sni : NULL);
	json_object(j, "network");
	json_string(j, "transport", "tcp");
	json_string(j, "type", strchr(f->client.ip, ':') ? "ipv6" : "ipv4");
	if (f->is_tls)
		json_string(j, "protocol", "tls");
	json_uint(j, "bytes", f->dir[SIDE_CLIENT].bytes + f->dir[SIDE_SERVER].bytes);
	json_end(j);
	if (f->is_tls)
		tls_fields(j, f, v);
	json_object(j, "mtlsdiag");
	report_json_members(j, f, v, summary);
}
