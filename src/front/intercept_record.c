/* intercept_record: what an intercepted connection leaves behind, once,
 * at its teardown: one human line and one JSON record for both legs.  The
 * record is the client leg's connection record (the contract's members,
 * from its observer: the stand-in is its server) with the proxy's members
 * and two objects, client_leg (what the stand-in decided and why) and
 * upstream_leg (the proxy's own connection to the real server, with that
 * connection's record inside).  doc/verdicts.md has every member. */
#include "config.h"

#include <stdarg.h>
#include <string.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "front/intercept_int.h"
#include "out/json.h"
#include "out/report.h"
#include "wire/x509info.h"

static const char *outcome_name(enum icpt_outcome o)
{
	switch (o) {
	case IO_FORWARDED: return "forwarded";
	case IO_REFUSED_HTTP: return "refused_http";
	case IO_REFUSED_ALERT: return "refused_alert";
	case IO_HANDSHAKE_FAILED: return "handshake_failed";
	case IO_UPSTREAM_FAILED: return "upstream_failed";
	default: break;
	}
	return "none";
}

static const char *pha_name(enum icpt_pha p)
{
	switch (p) {
	case PHA_IN_HANDSHAKE: return "in_handshake";
	case PHA_WAITING: return "not_asked";
	case PHA_ASKED: return "asked";
	case PHA_ANSWERED: return "answered";
	case PHA_NOT_OFFERED: return "not_offered";
	case PHA_UNANSWERED: return "unanswered";
	case PHA_NO_REQUEST: return "no_request";
	default: break;
	}
	return "none";
}

/* Whether the upstream leg failed: it could not be reached, or its
 * handshake or the certificate exchange went wrong. */
bool icpt_upstream_failed(const struct icpt_conn *c, const struct verdict *uv)
{
	if (c->leg[ICPT_UPSTREAM_LEG].error[0])
		return true;
	if (!uv)
		return false;
	/* a refusal in HTTP (a resumed session shows no certificate) */
	if (verdict_http_refusal(obs_conn_facts(c->leg[ICPT_UPSTREAM_LEG].obs)->http_status,
				 obs_conn_facts(c->leg[ICPT_UPSTREAM_LEG].obs)->http_title))
		return true;
	switch (uv->code) {
	case V_CLIENT_SENT_NO_CERT:
	case V_SERVER_REJECTED_CHAIN:
	case V_CLIENT_REJECTED_SERVER_CERT:
	case V_HANDSHAKE_FAILED:
		return true;
	default:
		return false;
	}
}

/* A leg's line from its VERSION on: "TIME CLIENT -> SERVER " left out. */
static const char *after_endpoints(const char *line)
{
	const char *p = line;
	int fields;

	for (fields = 0; fields < 4 && p; fields++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return p ? p : line;
}

static void __attribute__((format(printf, 3, 4))) append(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	if (used < len)
		vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

static void human_line(struct icpt_conn *c, const struct verdict *cv, const struct verdict *uv, uint64_t ms,
		       char *line, size_t len)
{
	const struct icpt_leg *cl = &c->leg[ICPT_CLIENT_LEG], *up = &c->leg[ICPT_UPSTREAM_LEG];
	char upline[2048];

	report_line(line, len, obs_conn_facts(cl->obs), cv);
	switch (c->outcome) {
	case IO_REFUSED_HTTP:   /* the reason once: the headline may have said it */
		append(line, len, " [client leg refused: %s%sanswered HTTP 400]", strstr(line, c->refusal) ? "" : c->refusal,
		       strstr(line, c->refusal) ? "" : "; ");
		break;
	case IO_REFUSED_ALERT:
		append(line, len, " [client leg refused: %s]", c->refusal);
		break;
	case IO_HANDSHAKE_FAILED:
		append(line, len, " [client leg failed: %s]", cl->error[0] ? cl->error : "handshake failed");
		break;
	default:
		break;
	}
	if (up->obs && uv) {
		report_line(upline, sizeof(upline), obs_conn_facts(up->obs), uv);
		if (up->error[0])
			append(line, len, " [upstream leg failed: %s; %s]", up->error, after_endpoints(upline));
		else
			append(line, len, " [upstream leg%s: %s]", icpt_upstream_failed(c, uv) ? " failed" : "",
			       after_endpoints(upline));
	} else if (up->error[0]) {
		append(line, len, " [upstream leg failed: %s]", up->error);
	} else if (up->reused) {
		append(line, len, " [upstream leg: a kept connection, its client %u, no handshake of its own]", up->served + 1);
	} else if (c->outcome != IO_FORWARDED) {
		append(line, len, " [upstream leg: not opened]");
	}
	if (c->retried)
		append(line, len, " [the kept connection to the server was closed before it answered: the request went again on a new one]");
	append(line, len, " [closed by %s: %s; %llu ms; client sent %llu B, server sent %llu B]",
	       closer_name(c->closed_by), end_name(c->end), (unsigned long long)ms, (unsigned long long)cl->bytes,
	       (unsigned long long)up->bytes);
}

static void json_verify(struct json *j, const char *key, const struct icpt_leg *leg)
{
	if (!leg->verify.ran || leg->verify.err == X509_V_OK) {
		json_null(j, key);
		return;
	}
	json_object(j, key);
	json_int(j, "code", leg->verify.err);
	json_string(j, "text", X509_verify_cert_error_string(leg->verify.err));
	json_int(j, "depth", leg->verify.depth);
	json_string(j, "subject", leg->verify.subject);
	json_end(j);
}

static void json_alert(struct json *j, const char *key, int alert)
{
	if (alert < 0)
		json_null(j, key);
	else
		json_string(j, key, icpt_alert_name(alert));
}

static void json_opt(struct json *j, const char *key, const char *s)
{
	if (s && *s)
		json_string(j, key, s);
	else
		json_null(j, key);
}

static void json_client_leg(struct json *j, const struct icpt_conn *c)
{
	const struct icpt_leg *cl = &c->leg[ICPT_CLIENT_LEG];
	const struct intercept_config *cfg = c->wl->l->icpt->cfg;

	json_object(j, "client_leg");
	json_string(j, "certificate", cfg->forge_ca ? "forged" : "server");
	json_opt(j, "forged_for", c->forged ? c->shown_for : NULL);
	json_string(j, "verify", cfg->verify == ICPT_VERIFY_OPTIONAL ? "optional" : "require");
	json_bool(j, "client_cert", cl->peer_cert);
	if (cl->peer_cert && cl->verify.err == X509_V_OK && cl->tls_done)
		json_string(j, "verify_result", "ok");
	else if (cl->peer_cert || cl->verify.err != X509_V_OK)
		json_string(j, "verify_result", "failed");
	else
		json_string(j, "verify_result", cl->tls_done ? "no_certificate" : "none");
	json_verify(j, "verify_error", cl);
	json_string(j, "outcome", outcome_name(c->outcome));
	json_opt(j, "refusal", c->outcome == IO_REFUSED_HTTP || c->outcome == IO_REFUSED_ALERT ? c->refusal : NULL);
	json_alert(j, "alert_sent", cl->alert_sent);
	json_opt(j, "error", cl->error);
	if (cfg->post_handshake_auth)
		json_string(j, "post_handshake_auth", pha_name(c->pha));
	if (cfg->resumption)
		json_bool(j, "resumed", cl->ssl && cl->tls_done && SSL_session_reused(cl->ssl));
	if (cfg->forward_identity) {
		json_bool(j, "identity_forwarded", c->identity_added);
		json_opt(j, "identity_note", c->identity_note);
	}
	json_end(j);
}

static void json_upstream_leg(struct json *j, const struct icpt_conn *c, const struct verdict *uv)
{
	const struct icpt_leg *up = &c->leg[ICPT_UPSTREAM_LEG];
	const struct intercept_config *cfg = c->wl->l->icpt->cfg;
	char subject[256] = "";

	json_object(j, "upstream_leg");
	json_bool(j, "opened", up->obs != NULL || up->reused);
	json_bool(j, "failed", icpt_upstream_failed(c, uv));
	json_opt(j, "error", up->error);
	if (cfg->upstream_cert)
		x509info_name(X509_get_subject_name(cfg->upstream_cert), subject, sizeof(subject));
	json_opt(j, "identity", subject);
	json_bool(j, "resumed", up->ssl && up->tls_done && SSL_session_reused(up->ssl));
	json_verify(j, "verify_error", up);
	json_alert(j, "alert_sent", up->alert_sent);
	json_alert(j, "alert_received", up->alert_received);
	if (up->obs && uv) {
		json_object(j, "connection");
		report_json_members(j, obs_conn_facts(up->obs), uv, NULL);
		json_end(j);
	} else {
		json_null(j, "connection");
	}
	json_bool(j, "reused", up->reused);
	if (up->reused)
		json_uint(j, "earlier_clients", up->served);
	else
		json_null(j, "earlier_clients");
	json_bool(j, "resent", c->retried);
	json_end(j);
}

void icpt_record(struct icpt_conn *c, const struct verdict *cv, const struct verdict *uv, uint64_t ms)
{
	const struct proxy *px = c->w->px;
	const struct icpt_leg *cl = &c->leg[ICPT_CLIENT_LEG];
	char line[4096], up[300];
	struct json *j = &c->w->record;   /* this worker's: certificates made once */

	if (!cl->obs || !cv)
		return;
	human_line(c, cv, uv, ms, line, sizeof(line));
	emit_verdict(px, line, obs_conn_facts(cl->obs), cv, true);
	if (!px->cfg->json && !px->ticket)
		return;
	report_endpoint(up, sizeof(up), c->wl->l->up_host, c->wl->l->up_port);
	json_reset(j);
	record_begin(px, j, "connection", &c->start, obs_conn_facts(cl->obs), cv, NULL);
	json_string(j, "mode", "intercept");
	json_string(j, "upstream", up);
	json_string(j, "closed_by", closer_name(c->closed_by));
	json_string(j, "close", end_name(c->end));
	json_uint(j, "duration_ms", ms);
	json_object(j, "relayed");
	json_uint(j, "client", cl->bytes);
	json_uint(j, "server", c->leg[ICPT_UPSTREAM_LEG].bytes);
	json_end(j);
	json_bool(j, "spliced", false);
	json_client_leg(j, c);
	json_upstream_leg(j, c, uv);
	record_end(px, j);
	/* the client's leg in the evidence folder, with its own keys (the
	 * proxy is that session's server) */
	if (px->ticket)
		ticket_add(px->ticket, &(struct ticket_conn){ .f = obs_conn_facts(cl->obs), .v = cv, .line = line,
							      .tap = cl->tap, .certs = c->w->ocfg.certs,
							      .keylog = cl->keys, .record = j->failed ? NULL : json_text(j) });
	if (px->cfg->json)
		write_record(px, j);
}
