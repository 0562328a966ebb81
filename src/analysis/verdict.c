/* verdict: the rules from a connection's facts to its verdict, fault,
 * basis and evidence (doc/verdicts.md).  Pure: no I/O, no decoding. */
#include "config.h"

#include "analysis/verdict.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "analysis/chain.h"
#include "analysis/conversation.h"
#include "analysis/evidence.h"
#include "wire/tls.h"
#include "wire/tls_msgs.h"

/* How the server answered the client's flight. */
enum answer {
	ANS_UNSEEN,     /* the capture has nothing after the client's flight */
	ANS_ALERT,      /* a fatal alert (plaintext, or an encrypted alert-sized record) */
	ANS_CLOSED,     /* closed or reset without finishing the handshake */
	ANS_CONTINUED,  /* finished the handshake / went on sending */
};

struct server_answer {
	enum answer kind;
	const struct alert *alert;   /* plaintext alert, when kind is ANS_ALERT */
	bool encrypted;
	uint32_t after;              /* event position of the client's flight */
};

/* An evidence line; for a verdict decided for counting only, not even its
 * arguments (alert and CA list labels) are computed. */
#define EVIDENCE(v, ...)                                 \
	do {                                             \
		if (!(v)->evidence_omitted)              \
			verdict_line((v), __VA_ARGS__);      \
	} while (0)

static void set(struct verdict *v, enum verdict_code code, enum reason_code reason,
		enum fault fault, enum basis basis)
{
	v->code = code;
	v->reason = reason;
	v->fault = fault;
	v->basis = basis;
}

const char *verdict_tls_label(const struct conn_facts *f)
{
	uint16_t ver = f->sh.seen ? f->sh.selected_version : 0;

	switch (ver) {
	case TLS_V_SSL3: return "SSL3";
	case TLS_V_1_0: return "TLS1.0";
	case TLS_V_1_1: return "TLS1.1";
	case TLS_V_1_2: return "TLS1.2";
	case TLS_V_1_3: return "TLS1.3";
	}
	return "TLS?";
}

static const char *alert_label(const struct alert *a, char *buf, size_t len)
{
	const char *name = tls_alert_name(a->description);

	if (a->encrypted && !a->decrypted)
		evidence_snprintf(buf, len, "an encrypted alert");
	else if (name)
		evidence_snprintf(buf, len, "%s alert %s (%d)%s", a->level == 2 ? "fatal" : "warning", name, a->description,
			          a->decrypted ? ", decrypted" : "");
	else
		evidence_snprintf(buf, len, "alert %d%s", a->description, a->decrypted ? ", decrypted" : "");
	return buf;
}

static const struct alert *first_fatal(const struct conn_facts *f, enum side from, uint32_t after)
{
	size_t i;

	for (i = 0; i < f->n_alerts; i++) {
		const struct alert *a = &f->alerts[i];

		if (a->from != from || a->seq <= after)
			continue;
		if (a->level == 1 && f->dir[from].first_app_seq && f->dir[from].first_app_seq < a->seq)
			continue;   /* a warning after its sender's data ends a session (Java's user_canceled), not a handshake */
		if ((a->encrypted && !a->decrypted) || a->level == 2)
			return a;
		if (a->description != TLS_ALERT_CLOSE_NOTIFY && a->description != TLS_ALERT_NO_CERTIFICATE &&
		    a->description != TLS_ALERT_NO_RENEGOTIATION)
			return a;   /* a warning that still ends the handshake */
	}
	return NULL;
}

/* The reason a server's alert stands for (OpenSSL's verify-error mapping). */
static enum reason_code alert_reason(int description)
{
	switch (description) {
	case TLS_ALERT_CERTIFICATE_EXPIRED: return R_EXPIRED;
	case TLS_ALERT_UNKNOWN_CA: return R_UNKNOWN_ISSUER;
	case TLS_ALERT_UNSUPPORTED_CERTIFICATE: return R_BAD_EKU;
	case TLS_ALERT_CERTIFICATE_REVOKED: return R_REVOKED;
	case TLS_ALERT_DECRYPT_ERROR: return R_BAD_SIGNATURE;
	}
	return R_UNKNOWN;
}

static enum fault reason_fault(enum reason_code r)
{
	switch (r) {
	case R_DEPTH_EXCEEDED: return F_SERVER;
	case R_UNKNOWN: case R_NONE: return F_UNKNOWN;
	default: return F_CLIENT;
	}
}

static const char *close_label(enum close_kind k)
{
	switch (k) {
	case CLOSE_FIN: return "closed the connection (FIN)";
	case CLOSE_RST: return "reset the connection (RST)";
	case CLOSE_TIMEOUT: return "went idle";
	default: break;
	}
	return "stopped";
}

/* How the session went on after the client's flight (event `after`), read
 * as a conversation; `alert_len` is the TLS 1.3 alert-record size (0 below
 * 1.3, where alerts show as such).  The pattern in words goes to `words`,
 * unless v's evidence is omitted (a decision for counting, made on every
 * read of a proxied connection until it settles). */
static enum conv_outcome read_on(const struct conn_facts *f, uint32_t after, size_t alert_len,
				 const struct verdict *v, struct conversation *cv, char *words, size_t wordslen)
{
	/* per record: TLS 1.3 inner type and tag; below, an AEAD's explicit
	 * nonce and tag (CBC's padding varies: the size is approximate) */
	conversation_read(f, after, alert_len, alert_len ? alert_len - 2 : 24, cv);
	if (!v->evidence_omitted)
		conversation_describe(cv, words, wordslen);
	return conversation_outcome(cv);
}

/* What would tell a hidden outcome: a key log, unless the analyser is the
 * client itself and read what there was (the probe). */
static const char *what_tells(const struct conn_facts *f)
{
	return f->endpoint ? "the answer read does not tell" : "a second exchange, or a key log, tells";
}

/* With a key log: the server's data after event `after` was read, and it
 * is not HTTP (HTTP answers decide by their status). */
static bool decrypted_data_after(const struct conn_facts *f, uint32_t after)
{
	return f->dir[SIDE_SERVER].first_app_seq > after;
}

/* ---- TLS 1.3 without keys: reasoning from record sizes ---- */

struct flight13 {
	size_t tag, fin, empty, alert;  /* expected record lengths for this suite */
	enum { CF_UNKNOWN, CF_FINISHED_ONLY, CF_EMPTY_CERT, CF_CHAIN, CF_ALERT } kind;
	size_t first, last;             /* indexes into the client's enc[] */
	uint32_t last_seq;
	size_t chain_record_len;
};

static void suite_sizes(uint16_t cipher, struct flight13 *fl)
{
	size_t hash = cipher == 0x1302 ? 48 : 32;   /* TLS_AES_256_GCM_SHA384 */

	fl->tag = cipher == 0x1305 ? 8 : 16;         /* TLS_AES_128_CCM_8_SHA256 */
	fl->fin = 4 + hash + 1 + fl->tag;            /* Finished + inner type + tag */
	fl->empty = 4 + 1 + 3 + 1 + fl->tag;         /* empty 1.3 Certificate */
	fl->alert = 2 + 1 + fl->tag;
}

void verdict_tls13_sizes(uint16_t cipher, size_t *finished, size_t *alert, size_t *empty_cert)
{
	struct flight13 fl;

	suite_sizes(cipher, &fl);
	*finished = fl.fin;
	*alert = fl.alert;
	*empty_cert = fl.empty;
}

static void classify_client_flight(const struct conn_facts *f, struct flight13 *fl)
{
	const struct direction_facts *d = &f->dir[SIDE_CLIENT];
	size_t i = 0, n;

	suite_sizes(f->sh.cipher, fl);
	fl->kind = CF_UNKNOWN;
	/* records sent before the ServerHello are 0-RTT data, not the flight */
	while (i < d->n_enc && d->enc[i].seq < f->sh.seq)
		i++;
	n = d->n_enc - i;
	fl->first = i;
	if (n == 0)
		return;
	if (d->enc[i].len == fl->alert) {
		fl->kind = CF_ALERT;
		fl->last = i;
	} else if (d->enc[i].len == fl->fin) {
		fl->kind = CF_FINISHED_ONLY;
		fl->last = i;
	} else if (d->enc[i].len == fl->empty && n >= 2 && d->enc[i + 1].len == fl->fin) {
		fl->kind = CF_EMPTY_CERT;
		fl->last = i + 1;
	} else if (d->enc[i].len == fl->empty + fl->fin - 1 - fl->tag) {
		fl->kind = CF_EMPTY_CERT;   /* Certificate and Finished coalesced in one record */
		fl->last = i;
	} else if (d->enc[i].len > fl->fin + 100 && n >= 3 && d->enc[i + 2].len == fl->fin) {
		fl->kind = CF_CHAIN;        /* Certificate, CertificateVerify, Finished */
		fl->last = i + 2;
		fl->chain_record_len = d->enc[i].len;
	}
	if (fl->kind != CF_UNKNOWN)
		fl->last_seq = d->enc[fl->last].seq;
}

static void answer13(const struct conn_facts *f, const struct flight13 *fl, struct server_answer *ans)
{
	const struct direction_facts *s = &f->dir[SIDE_SERVER];
	size_t i, after = 0, first = s->n_enc;

	memset(ans, 0, sizeof(*ans));
	ans->after = fl->last_seq;
	for (i = 0; i < s->n_enc; i++) {
		if (s->enc[i].seq > fl->last_seq) {
			if (first == s->n_enc)
				first = i;
			after++;
		}
	}
	if (after >= 1 && after <= 2 && s->enc[first].len == fl->alert &&
	    s->enc[s->n_enc - 1].len == fl->alert &&
	    (s->closed != CLOSE_NONE || s->n_enc_total == s->n_enc)) {
		ans->kind = ANS_ALERT;
		ans->encrypted = true;
		return;
	}
	if (after > 0) {
		ans->kind = ANS_CONTINUED;
		return;
	}
	if (s->closed != CLOSE_NONE && s->close_seq > fl->last_seq)
		ans->kind = ANS_CLOSED;
}

/* ---- TLS 1.2 and older: the handshake is plaintext ---- */

static void answer12(const struct conn_facts *f, uint32_t after, struct server_answer *ans)
{
	const struct direction_facts *s = &f->dir[SIDE_SERVER];

	memset(ans, 0, sizeof(*ans));
	ans->after = after;
	ans->alert = first_fatal(f, SIDE_SERVER, after);
	if (s->ccs_seen && s->ccs_seq > after && (!ans->alert || ans->alert->seq > s->ccs_seq)) {
		ans->alert = NULL;   /* alerts after the server's Finished end the session, not the handshake */
		ans->kind = ANS_CONTINUED;
		return;
	}
	if (ans->alert) {
		ans->kind = ANS_ALERT;
		ans->encrypted = ans->alert->encrypted;
		return;
	}
	if (s->closed != CLOSE_NONE && s->close_seq > after)
		ans->kind = ANS_CLOSED;
}

/* ---- shared conclusions ---- */

static void describe_answer(const struct conn_facts *f, const struct server_answer *ans, struct verdict *v)
{
	char buf[96];

	switch (ans->kind) {
	case ANS_ALERT:
		if (ans->alert)
			EVIDENCE(v, "the server answered with %s", alert_label(ans->alert, buf, sizeof(buf)));
		else
			EVIDENCE(v, "the server answered with one alert-sized encrypted record and %s",
				 close_label(f->dir[SIDE_SERVER].closed));
		break;
	case ANS_CLOSED:
		EVIDENCE(v, "the server %s without finishing the handshake",
			 close_label(f->dir[SIDE_SERVER].closed));
		break;
	case ANS_CONTINUED:
		EVIDENCE(v, "the server completed the handshake");
		break;
	case ANS_UNSEEN:
		EVIDENCE(v, "the server's answer is not in the capture");
		break;
	}
}

/* What the decrypted HTTP answer says about the client certificate. */
enum http_answer {
	HA_NONE,        /* no HTTP answer read */
	HA_SERVED,      /* the request was served (below 400) */
	HA_NO_CERT,     /* nginx: 400 "No required SSL certificate was sent" */
	HA_CERT_ERROR,  /* nginx: 400 "The SSL certificate error" */
	HA_REFUSED,     /* 400, 401 or 403 otherwise: a refusal, reason not named */
	HA_OTHER,       /* another error (404, 500, ...): not about the certificate */
};

static enum http_answer http_answer_of(int status, const char *title)
{
	if (!status)
		return HA_NONE;
	/* nginx's own codes 496 and 495 become these 400 pages on the wire */
	if (strstr(title, "No required SSL certificate") || status == 496)
		return HA_NO_CERT;
	if (strstr(title, "SSL certificate error") || status == 495)
		return HA_CERT_ERROR;
	if (status < 400)
		return HA_SERVED;
	/* the first answer after a client-certificate handshake: 401 and 403
	 * are the application's refusal (Node.js answering 401 when
	 * req.socket.authorized is false) */
	if (status == 400 || status == 401 || status == 403)
		return HA_REFUSED;
	return HA_OTHER;
}

static enum http_answer http_answer(const struct conn_facts *f)
{
	return http_answer_of(f->http_status, f->http_title);
}

bool verdict_http_refusal(int status, const char *title)
{
	enum http_answer a = http_answer_of(status, title);

	return a == HA_NO_CERT || a == HA_CERT_ERROR || a == HA_REFUSED;
}

static void http_evidence(const struct conn_facts *f, struct verdict *v)
{
	char title[sizeof(f->http_title) + 8] = "", request[sizeof(f->http_request) + 8] = "";

	if (f->http_title[0])
		snprintf(title, sizeof(title), " (\"%s\")", f->http_title);
	if (f->http_request[0])
		snprintf(request, sizeof(request), " to %s", f->http_request);
	EVIDENCE(v, "the server answered HTTP %d%s%s%s%s (decrypted)", f->http_status,
		 f->http_reason[0] ? " " : "", f->http_reason, title, request);
}

/* nginx refuses a client certificate inside the HTTP stream (a 400 page
 * after a completed handshake) where Apache, HAProxy and Envoy send an
 * alert: a refusal read that way tells nginx. */
static void told_by_refusal(struct verdict *v)
{
	if (v->server_kind != SK_UNKNOWN)
		return;
	v->server_kind = SK_NGINX;
	v->server_kind_source = SKS_REFUSAL;
}

/* The server asked and the client sent no certificate. */
static void conclude_no_cert(const struct conn_facts *f, const struct server_answer *ans,
			     enum basis basis, size_t alert_len, struct verdict *v)
{
	char words[VERDICT_EVIDENCE_LEN];
	struct conversation cv;

	describe_answer(f, ans, v);
	if (ans->kind != ANS_CONTINUED) {
		set(v, V_CLIENT_SENT_NO_CERT, R_NONE, F_CLIENT, basis);
		return;
	}
	switch (http_answer(f)) {
	case HA_NO_CERT:
	case HA_CERT_ERROR:
	case HA_REFUSED:
		set(v, V_CLIENT_SENT_NO_CERT, R_NONE, F_CLIENT, B_DECRYPTED);
		http_evidence(f, v);
		return;
	case HA_SERVED:
	case HA_OTHER:
		set(v, V_NO_CERT_ACCEPTED, R_NONE, F_NONE, B_DECRYPTED);
		http_evidence(f, v);
		EVIDENCE(v, "the server served the request without a client certificate (optional client authentication)");
		return;
	case HA_NONE:
		break;
	}
	if (decrypted_data_after(f, ans->after)) {
		set(v, V_NO_CERT_ACCEPTED, R_NONE, F_NONE, B_DECRYPTED);
		EVIDENCE(v, "the server sent application data after the client's flight (decrypted, not HTTP): the session went on without a client certificate");
		return;
	}
	switch (read_on(f, ans->after, alert_len, v, &cv, words, sizeof(words))) {
	case CONV_WENT_ON:
	case CONV_SERVED_CLOSE:
		set(v, V_NO_CERT_ACCEPTED, R_NONE, F_NONE, B_INFERRED);
		v->settled = true;
		EVIDENCE(v, "%s", words);
		EVIDENCE(v, "the server went on without a client certificate: it does not require one (optional client authentication)");
		return;
	case CONV_REFUSED:
		set(v, V_CLIENT_SENT_NO_CERT, R_NONE, F_CLIENT, B_INFERRED);
		told_by_refusal(v);
		EVIDENCE(v, "%s: the way nginx refuses a missing certificate (HTTP 400 \"No required SSL certificate was sent\")", words);
		return;
	case CONV_UNKNOWN:
		break;
	}
	if (conversation_error_page(&cv)) {
		/* a server that asked and got nothing answered with a page of
		 * an error page's size: nginx's 400, its close crossing the
		 * client's */
		set(v, V_CLIENT_SENT_NO_CERT, R_NONE, F_CLIENT, B_INFERRED);
		told_by_refusal(v);
		EVIDENCE(v, "%s; the answer is an error page's size: the way nginx refuses a missing certificate (HTTP 400 \"No required SSL certificate was sent\")",
			 words);
		return;
	}
	/* nginx with ssl_verify_client on answers 400 inside the encrypted
	 * stream and closes; with optional it serves and keeps the connection:
	 * until one of them shows, the empty Certificate is all that is known */
	set(v, V_UNDETERMINED, R_NONE, F_UNKNOWN, B_INFERRED);
	EVIDENCE(v, "%s", words);
	EVIDENCE(v, "no certificate and no alert: nginx refuses inside the encrypted stream (400, then it closes), a server with optional client auth serves; %s",
		 what_tells(f));
}

/* The verification's line, as the server's kind logs it. */
static void verify_evidence(const struct chain_verify *cv, struct verdict *v)
{
	const char *who;
	char line[160];

	chain_verify_log_line(cv, v->server_kind, line, sizeof(line), &who);
	if (cv->trust == CHAIN_TRUST_BUNDLE)
		EVIDENCE(v, "%s would log \"%s\" (verified against --ca-bundle)", who, line);
	else
		EVIDENCE(v, "%s would log \"%s\" (verified against stand-ins for the CA names the server sent)", who,
			 line);
}

static void chain_evidence(const struct chain_report *chain, struct verdict *v)
{
	size_t i;

	for (i = 0; chain && i < chain->n; i++) {
		if (chain->findings[i].from_verify && chain->verify.trust != CHAIN_TRUST_NONE)
			verify_evidence(&chain->verify, v);
		else
			EVIDENCE(v, "%s", chain->findings[i].text);
	}
}


/* The client's leaf is issued by a CA that is not among the certificates it
 * sent (and does not sign itself). */
static bool leaf_issuer_not_sent(const struct cert_chain *ch)
{
	size_t i;

	if (ch->n == 0 || ch->certs[0].self_issued || ch->certs[0].parse_failed)
		return false;
	for (i = 1; i < ch->n; i++)
		if (strcmp(ch->certs[i].subject, ch->certs[0].issuer) == 0)
			return false;
	return ch->n == ch->n_on_wire;   /* a cut chain may hold it */
}

/* The client sent a chain; the server answered `ans`. */
static void conclude_chain(const struct conn_facts *f, const struct chain_report *chain,
			   const struct server_answer *ans, enum basis basis, size_t alert_len,
			   struct verdict *v)
{
	enum reason_code predicted = chain && chain->n ? chain->findings[0].reason : R_NONE;
	enum reason_code reason;
	char words[VERDICT_EVIDENCE_LEN];
	struct conversation cv;

	describe_answer(f, ans, v);
	switch (ans->kind) {
	case ANS_ALERT:
	case ANS_CLOSED:
		reason = predicted != R_NONE ? predicted
			 : ans->alert ? alert_reason(ans->alert->description) : R_UNKNOWN;
		if (predicted == R_NONE && reason == R_UNKNOWN_ISSUER && chain && chain->issuer_named) {
			/* unknown_ca for a complete, valid chain that reaches a CA the
			 * server itself named: the server gave up building the path */
			reason = R_DEPTH_EXCEEDED;
			EVIDENCE(v, "the %zu-certificate chain reaches a CA the server named and passes every check, yet the server answered unknown_ca: its verify depth is too small for this chain",
				 f->client_chain.n_on_wire);
		}
		if (predicted == R_NONE && reason == R_UNKNOWN_ISSUER && f->cr.seen && f->cr.n_ca_names_on_wire == 0 &&
		    leaf_issuer_not_sent(&f->client_chain)) {
			/* wolfSSL names no CA: a leaf sent without its
			 * intermediate and a leaf from a CA the server does not
			 * trust look alike (wolfSSL logs num=20 for both) */
			reason = R_UNKNOWN;
			EVIDENCE(v, "the leaf's issuer %s was not sent and the server named no CAs: an intermediate is missing, or that issuer is not one the server trusts; --ca-bundle with the server's bundle tells",
				 f->client_chain.certs[0].issuer);
		}
		set(v, V_SERVER_REJECTED_CHAIN, reason, reason_fault(reason), basis);
		chain_evidence(chain, v);
		if (predicted == R_NONE && reason != R_DEPTH_EXCEEDED && chain && chain->checked)
			EVIDENCE(v, "nothing on the wire explains the refusal: check the server's CA bundle and verify depth");
		return;
	case ANS_CONTINUED:
		switch (http_answer(f)) {
		case HA_CERT_ERROR:
		case HA_REFUSED:
		case HA_NO_CERT:
			reason = predicted != R_NONE ? predicted : R_UNKNOWN;
			if (predicted == R_NONE && chain && chain->issuer_named && chain->checked &&
			    http_answer(f) == HA_CERT_ERROR) {
				/* nginx refuses a chain that passes every check and reaches
				 * a CA it named: ssl_verify_depth is too small for it */
				reason = R_DEPTH_EXCEEDED;
				EVIDENCE(v, "the %zu-certificate chain reaches a CA the server named and passes every check, yet the server answered \"The SSL certificate error\": its verify depth is too small for this chain",
					 f->client_chain.n_on_wire);
			}
			set(v, V_SERVER_REJECTED_CHAIN, reason, reason_fault(reason), B_DECRYPTED);
			http_evidence(f, v);
			chain_evidence(chain, v);
			return;
		case HA_SERVED:
		case HA_OTHER:
			set(v, V_CLIENT_CERT_ACCEPTED, R_NONE, F_NONE, B_DECRYPTED);
			http_evidence(f, v);
			if (predicted != R_NONE)
				EVIDENCE(v, "the server accepted the chain although a standard check would not: %s",
					 chain->findings[0].text);
			return;
		case HA_NONE:
			break;
		}
		if (predicted == R_SELF_SIGNED && f->cr.n_ca_names == 0) {
			/* a server that names no CA and took a self-signed
			 * certificate trusts it directly (a pinned certificate) */
			set(v, V_CLIENT_CERT_ACCEPTED, R_NONE, F_NONE, basis);
			EVIDENCE(v, "the server accepted the chain although a standard check would not: it trusts it directly (%s)",
				 chain->findings[0].text);
			return;
		}
		if (decrypted_data_after(f, ans->after)) {
			set(v, V_CLIENT_CERT_ACCEPTED, R_NONE, F_NONE, B_DECRYPTED);
			EVIDENCE(v, "the server sent application data after the client's flight (decrypted, not HTTP): the session went on");
			return;
		}
		switch (read_on(f, ans->after, alert_len, v, &cv, words, sizeof(words))) {
		case CONV_WENT_ON:
		case CONV_SERVED_CLOSE:
			set(v, V_CLIENT_CERT_ACCEPTED, R_NONE, F_NONE, B_INFERRED);
			v->settled = true;
			EVIDENCE(v, "%s", words);
			if (predicted != R_NONE)
				EVIDENCE(v, "the server went on with a chain a standard check refuses (%s): it does not verify client certificates, or trusts this one directly: a security note, not a failure",
					 chain->findings[0].text);
			return;
		case CONV_REFUSED:
			reason = predicted != R_NONE ? predicted : R_UNKNOWN;
			set(v, V_SERVER_REJECTED_CHAIN, reason, reason_fault(reason), B_INFERRED);
			told_by_refusal(v);
			EVIDENCE(v, "%s: the way nginx refuses a certificate (HTTP 400 \"The SSL certificate error\")", words);
			chain_evidence(chain, v);
			if (predicted == R_NONE && chain && chain->checked)
				EVIDENCE(v, "nothing on the wire explains the refusal: check the server's CA bundle and verify depth");
			return;
		case CONV_UNKNOWN:
			break;
		}
		if (predicted != R_NONE && conversation_error_page(&cv)) {
			/* the answer is an error page's size: the predicted
			 * refusal (nginx's 400), though its close crossed the
			 * client's */
			set(v, V_SERVER_REJECTED_CHAIN, predicted, reason_fault(predicted), B_INFERRED);
			told_by_refusal(v);
			EVIDENCE(v, "a verifying server must refuse this chain, and the answer is an error page's size (nginx completes the handshake and answers HTTP 400)");
			chain_evidence(chain, v);
			EVIDENCE(v, "%s", words);
			return;
		}
		set(v, V_UNDETERMINED, R_NONE, F_UNKNOWN, B_INFERRED);
		EVIDENCE(v, "%s", words);
		if (predicted != R_NONE) {
			/* a server in optional mode (lighttpd without enforce)
			 * serves a chain that fails the checks */
			chain_evidence(chain, v);
			EVIDENCE(v, "a verifying server refuses this chain, one that does not verify (optional mode) serves it; %s",
				 what_tells(f));
			return;
		}
		EVIDENCE(v, "no alert: a server that refuses with one (HAProxy, Apache, OpenSSL, GnuTLS) accepted the certificate, but nginx refuses inside the encrypted stream; %s",
			 what_tells(f));
		return;
	case ANS_UNSEEN:
		if (predicted != R_NONE && !(predicted == R_SELF_SIGNED && f->cr.n_ca_names == 0)) {
			set(v, V_SERVER_REJECTED_CHAIN, predicted, reason_fault(predicted), B_INFERRED);
			EVIDENCE(v, "a verifying server must refuse this chain");
			chain_evidence(chain, v);
			return;
		}
		set(v, V_INCOMPLETE, R_NONE, F_UNKNOWN, basis);
		return;
	}
}

static void describe_chain_sent(const struct conn_facts *f, struct verdict *v)
{
	const struct cert_chain *ch = &f->client_chain;

	if (ch->n > 0)
		EVIDENCE(v, "the client sent %zu certificate%s: %s (issuer %s, valid %s to %s)",
			 ch->n_on_wire, ch->n_on_wire == 1 ? "" : "s", ch->certs[0].subject,
			 ch->certs[0].issuer, ch->certs[0].not_before, ch->certs[0].not_after);
}

/* The client's Certificate message was read (in the clear, or decrypted):
 * empty, or a chain; the server answered `ans`. */
static void conclude_certificate(const struct conn_facts *f, const struct chain_report *chain,
				 const struct server_answer *ans, enum basis basis, struct verdict *v)
{
	if (f->client_cert_empty) {
		v->client_cert_sent = TRI_NO;
		EVIDENCE(v, "the client's Certificate message was empty%s",
			 basis == B_DECRYPTED ? " (decrypted)" : "");
		conclude_no_cert(f, ans, basis, 0, v);
		return;
	}
	v->client_cert_sent = TRI_YES;
	describe_chain_sent(f, v);
	if (chain && chain->verify.note[0])
		EVIDENCE(v, "%s", chain->verify.note);
	conclude_chain(f, chain, ans, basis, 0, v);
}

/* Before the client's answer: a server alert failed the handshake, else
 * the capture simply stops early. */
static void failed_or_incomplete(const struct conn_facts *f, enum basis basis, const char *missing,
				 struct verdict *v)
{
	const struct alert *a = first_fatal(f, SIDE_SERVER, f->sh.seq);
	char buf[96];

	if (a) {
		set(v, V_HANDSHAKE_FAILED, R_NONE, F_UNKNOWN, B_OBSERVED);
		EVIDENCE(v, "the server sent %s before the client's answer", alert_label(a, buf, sizeof(buf)));
		return;
	}
	set(v, V_INCOMPLETE, R_NONE, F_UNKNOWN, basis);
	EVIDENCE(v, "%s", missing);
}

/* The client ended the handshake with an alert after the server's
 * certificate: a refusal of it (the certificate alerts, RFC 8446 6.2), or
 * a failure of some other kind. */
static void client_aborted(const struct conn_facts *f, const struct alert *a, enum basis basis,
			   struct verdict *v)
{
	char buf[96];

	set(v, V_CLIENT_REJECTED_SERVER_CERT, R_NONE, F_SERVER, basis);
	EVIDENCE(v, "the client aborted the handshake with %s after the server's certificate",
		 alert_label(a, buf, sizeof(buf)));
	if (f->server_chain.n)
		EVIDENCE(v, "server certificate %s issued by %s", f->server_chain.certs[0].subject,
			 f->server_chain.certs[0].issuer);
	switch (a->description) {
	case TLS_ALERT_BAD_CERTIFICATE:
	case TLS_ALERT_UNSUPPORTED_CERTIFICATE:
	case TLS_ALERT_CERTIFICATE_REVOKED:
	case TLS_ALERT_CERTIFICATE_EXPIRED:
	case TLS_ALERT_CERTIFICATE_UNKNOWN:
	case TLS_ALERT_UNKNOWN_CA:
	case TLS_ALERT_CERTIFICATE_REQUIRED:
		break;
	default:
		v->code = V_HANDSHAKE_FAILED;
		v->fault = F_UNKNOWN;
	}
}

static void decide12(const struct conn_facts *f, const struct chain_report *chain, struct verdict *v)
{
	const struct alert *client_alert = first_fatal(f, SIDE_CLIENT, f->sh.seq);
	/* a renegotiation's request and answer are read with the key log */
	enum basis basis = f->cr.decrypted || f->client_cert_decrypted ? B_DECRYPTED : B_OBSERVED;
	struct server_answer ans;
	char buf[512];

	v->cert_requested = f->cr.seen ? TRI_YES : (f->server_hello_done ? TRI_NO : TRI_UNKNOWN);
	if (client_alert && (!f->client_cert_seen || client_alert->seq < f->client_cert_seq) &&
	    !f->dir[SIDE_CLIENT].ccs_seen) {
		client_aborted(f, client_alert, B_OBSERVED, v);
		return;
	}
	if (!f->cr.seen && f->client_cert_seen) {
		v->cert_requested = TRI_YES;
		EVIDENCE(v, "the CertificateRequest is not in the capture, but the client answered one");
	} else if (!f->cr.seen) {
		if (!f->server_hello_done && !f->dir[SIDE_CLIENT].ccs_seen) {
			failed_or_incomplete(f, B_OBSERVED, "the server's handshake flight is not complete in the capture", v);
			return;
		}
		if (f->dir[SIDE_SERVER].enc_handshake_after_done || f->dir[SIDE_CLIENT].enc_handshake_after_done) {
			set(v, V_UNDETERMINED, R_NONE, F_UNKNOWN, B_INFERRED);
			v->cert_requested = TRI_UNKNOWN;
			EVIDENCE(v, "no CertificateRequest in the initial handshake, but the connection renegotiated afterwards (encrypted): a request for a certificate may be inside");
			return;
		}
		set(v, V_CERT_NOT_REQUESTED, R_NONE, F_NONE, B_OBSERVED);
		EVIDENCE(v, "the server's flight ended (ServerHelloDone) without a CertificateRequest");
		return;
	}
	if (f->cr.seen)
		EVIDENCE(v, "the server asked for a client certificate from CAs %s%s", verdict_ca_list(f, buf, sizeof(buf)),
			 f->cr.decrypted ? " (in a renegotiation, decrypted)" : "");
	if (!f->client_cert_seen) {
		const struct alert *noc = NULL;
		size_t i;

		for (i = 0; i < f->n_alerts; i++)
			if (f->alerts[i].from == SIDE_CLIENT && f->alerts[i].description == TLS_ALERT_NO_CERTIFICATE)
				noc = &f->alerts[i];
		/* the client's ChangeCipherSpec after the request (a renegotiation
		 * follows an earlier one) */
		if (noc || (f->dir[SIDE_CLIENT].ccs_seen && f->dir[SIDE_CLIENT].ccs_seq > f->cr.seq)) {
			v->client_cert_sent = TRI_NO;
			EVIDENCE(v, noc ? "the client answered with a no_certificate alert (SSL 3.0)"
				       : "the client sent no Certificate message");
			answer12(f, noc ? noc->seq : f->dir[SIDE_CLIENT].ccs_seq, &ans);
			conclude_no_cert(f, &ans, basis, 0, v);
			return;
		}
		set(v, V_INCOMPLETE, R_NONE, F_UNKNOWN, basis);
		EVIDENCE(v, "the client's answer is not in the capture");
		return;
	}
	answer12(f, f->client_cert_seq, &ans);
	conclude_certificate(f, chain, &ans, basis, v);
}

/* ---- TLS 1.3 decrypted with a key log ---- */

/* The server's flight, and the client's answer if it sent one, were read. */
static bool decrypted13(const struct conn_facts *f)
{
	return f->dir[SIDE_SERVER].decrypted > 0 && f->dir[SIDE_SERVER].finished_seen &&
	       (f->dir[SIDE_CLIENT].decrypted > 0 || f->dir[SIDE_CLIENT].n_enc == 0);
}

/* How the server answered what the client sent up to event `after`: a
 * (decrypted) alert, or a NewSessionTicket or application data after it. */
static void answer13d(const struct conn_facts *f, uint32_t after, struct server_answer *ans)
{
	const struct direction_facts *s = &f->dir[SIDE_SERVER];

	memset(ans, 0, sizeof(*ans));
	ans->after = after;
	ans->alert = first_fatal(f, SIDE_SERVER, after);
	if (ans->alert) {
		ans->kind = ANS_ALERT;
		ans->encrypted = true;
		return;
	}
	if ((s->first_app_seq && s->first_app_seq > after) || (s->nst_seq && s->nst_seq > after)) {
		ans->kind = ANS_CONTINUED;
		return;
	}
	if (s->undecrypted) {
		/* the server's answer stayed encrypted: judge its records' sizes */
		struct flight13 fl;
		size_t i;

		memset(&fl, 0, sizeof(fl));
		suite_sizes(f->sh.cipher, &fl);
		fl.last_seq = after;
		answer13(f, &fl, ans);
		for (i = 0; i < s->n_enc && ans->kind == ANS_UNSEEN; i++)
			if (s->enc[i].seq > after)
				ans->kind = ANS_CONTINUED;
		return;
	}
	if (s->closed != CLOSE_NONE && s->close_seq > after)
		ans->kind = ANS_CLOSED;
}

static void decide13_decrypted(const struct conn_facts *f, const struct chain_report *chain, struct verdict *v)
{
	const struct direction_facts *c = &f->dir[SIDE_CLIENT];
	const struct alert *client_alert = first_fatal(f, SIDE_CLIENT, f->sh.seq);
	struct server_answer ans;
	uint32_t after;
	char buf[512];

	v->cert_requested = f->cr.seen ? TRI_YES : TRI_NO;
	if (client_alert && !f->client_cert_seen && (!c->finished_seen || client_alert->seq < c->finished_seq)) {
		client_aborted(f, client_alert, B_DECRYPTED, v);
		return;
	}
	if (!f->cr.seen && !f->client_cert_seen) {
		set(v, V_CERT_NOT_REQUESTED, R_NONE, F_NONE, B_DECRYPTED);
		EVIDENCE(v, "the server's encrypted flight (decrypted) has no CertificateRequest");
		if (f->ch.post_handshake_auth)
			EVIDENCE(v, "nor did the server ask after the handshake (post-handshake authentication was offered)");
		return;
	}
	if (f->cr.seen)
		EVIDENCE(v, "the server asked for a client certificate%s from CAs %s (decrypted)",
			 f->cr.post_handshake ? " after the handshake" : "", verdict_ca_list(f, buf, sizeof(buf)));
	else
		v->cert_requested = TRI_YES;
	if (!f->client_cert_seen) {
		/* RFC 8446 4.4.2: a client that was asked answers with a Certificate,
		 * empty if it has none; a Finished without one is no certificate */
		if (c->finished_seen && !f->cr.post_handshake) {
			v->client_cert_sent = TRI_NO;
			EVIDENCE(v, "the client sent no Certificate message");
			answer13d(f, c->finished_seq, &ans);
			conclude_no_cert(f, &ans, B_DECRYPTED, 0, v);
			return;
		}
		set(v, V_INCOMPLETE, R_NONE, F_UNKNOWN, B_DECRYPTED);
		EVIDENCE(v, "the client's answer is not in the capture");
		return;
	}
	/* the server answers after the client's whole flight (its Finished) */
	after = c->finished_seen && c->finished_seq > f->client_cert_seq ? c->finished_seq : f->client_cert_seq;
	answer13d(f, after, &ans);
	conclude_certificate(f, chain, &ans, B_DECRYPTED, v);
}

static void decide13(const struct conn_facts *f, const struct chain_report *chain, struct verdict *v)
{
	struct flight13 fl;
	struct server_answer ans;

	if (decrypted13(f)) {
		decide13_decrypted(f, chain, v);
		return;
	}
	/* without keys (or with a key log that did not open both sides): the
	 * record sizes */
	classify_client_flight(f, &fl);
	switch (fl.kind) {
	case CF_UNKNOWN:
		if (f->dir[SIDE_CLIENT].n_enc == 0) {
			failed_or_incomplete(f, B_INFERRED, "the client's encrypted flight is not in the capture", v);
			return;
		}
		set(v, V_UNDETERMINED, R_NONE, F_UNKNOWN, B_INFERRED);
		EVIDENCE(v, "TLS 1.3 without a key log: the client's first encrypted record is %u bytes, which matches no unpadded flight (Finished %zu, empty Certificate %zu)",
			 f->dir[SIDE_CLIENT].enc[fl.first].len, fl.fin, fl.empty);
		return;
	case CF_ALERT:
		set(v, V_CLIENT_REJECTED_SERVER_CERT, R_NONE, F_SERVER, B_INFERRED);
		EVIDENCE(v, "the client answered the server's flight with an alert-sized encrypted record (%zu bytes) instead of its Finished",
			 fl.alert);
		if (f->server_chain.n)
			EVIDENCE(v, "server certificate %s issued by %s", f->server_chain.certs[0].subject,
				 f->server_chain.certs[0].issuer);
		return;
	case CF_FINISHED_ONLY:
		v->cert_requested = TRI_NO;
		answer13(f, &fl, &ans);
		if (ans.kind == ANS_ALERT) {
			set(v, V_HANDSHAKE_FAILED, R_NONE, F_UNKNOWN, B_INFERRED);
			EVIDENCE(v, "the client sent only its Finished (%zu bytes) and the server answered with an alert-sized record", fl.fin);
			return;
		}
		set(v, V_CERT_NOT_REQUESTED, R_NONE, F_NONE, B_INFERRED);
		EVIDENCE(v, "the client's encrypted flight is a lone Finished (%zu-byte record): it was not asked for a certificate", fl.fin);
		if (f->ch.post_handshake_auth)
			EVIDENCE(v, "the client offered post-handshake authentication: a later request would be encrypted");
		if (f->preamble == PREAMBLE_HTTP_CONNECT && f->server_chain.n == 0) {
			/* the chain that would show who answered is encrypted */
			v->fault = F_UNKNOWN;
			EVIDENCE(v, "through an explicit proxy (CONNECT %s) the server chain is encrypted: whether the proxy answered in the server's place shows with mtlsdiag probe HOST:PORT --via PROXY --compare",
				 f->connect_target[0] ? f->connect_target : "?");
		}
		return;
	case CF_EMPTY_CERT:
		v->cert_requested = TRI_YES;
		v->client_cert_sent = TRI_NO;
		EVIDENCE(v, "the server asked for a client certificate (the client answered with a Certificate message)");
		EVIDENCE(v, "the client's encrypted flight is an empty Certificate (%zu-byte record) and Finished (%zu): no certificate sent",
			 fl.empty, fl.fin);
		answer13(f, &fl, &ans);
		conclude_no_cert(f, &ans, B_INFERRED, fl.alert, v);
		return;
	case CF_CHAIN:
		v->cert_requested = TRI_YES;
		v->client_cert_sent = TRI_YES;
		EVIDENCE(v, "the server asked for a client certificate; the client sent one (a %zu-byte Certificate record, a CertificateVerify and Finished)",
			 fl.chain_record_len);
		answer13(f, &fl, &ans);
		conclude_chain(f, chain, &ans, B_INFERRED, fl.alert, v);
		return;
	}
}

/* What the key log did, as the connection's last evidence line. */
static void keylog_evidence(const struct conn_facts *f, struct verdict *v)
{
	size_t before = v->n_evidence;

	if (f->keylog == KEYLOG_DECRYPTED)
		EVIDENCE(v, "decrypted with the key log: %llu client and %llu server records",
			 (unsigned long long)f->dir[SIDE_CLIENT].decrypted,
			 (unsigned long long)f->dir[SIDE_SERVER].decrypted);
	if (f->keylog_note[0])
		EVIDENCE(v, "%s", f->keylog_note);
	if (v->n_evidence > before)
		v->keylog_evidence = (int)before;
}

/* The server's kind before the rules run: as the user named it, from the
 * decrypted answer's Server header, or from one of nginx's own pages. */
static void kind_told(const struct conn_facts *f, enum server_kind told, struct verdict *v)
{
	static const struct { const char *product; enum server_kind kind; } products[] = {
		{ "nginx", SK_NGINX }, { "openresty", SK_NGINX }, { "apache", SK_APACHE },
		{ "haproxy", SK_HAPROXY }, { "envoy", SK_ENVOY }, { "istio-envoy", SK_ENVOY },
	};
	size_t i, len;

	if (told != SK_UNKNOWN) {
		v->server_kind = told;
		v->server_kind_source = SKS_OPTION;
		return;
	}
	for (i = 0; f->http_server[0] && i < sizeof(products) / sizeof(products[0]); i++) {
		len = strlen(products[i].product);
		/* the product token, before its "/version" or a comment */
		if (strncasecmp(f->http_server, products[i].product, len) == 0 &&
		    (f->http_server[len] == '\0' || f->http_server[len] == '/' || f->http_server[len] == ' ')) {
			v->server_kind = products[i].kind;
			v->server_kind_source = SKS_SERVER_HEADER;
			return;
		}
	}
	if (strstr(f->http_title, "No required SSL certificate") || strstr(f->http_title, "The SSL certificate error")) {
		v->server_kind = SK_NGINX;
		v->server_kind_source = SKS_ERROR_PAGE;
	}
}

/* A refusal the verification explains by the server's own bundle (an
 * expired CA in it, a chain that stops at one of its certificates): the
 * server must act. */
static void bundle_fault(const struct chain_report *chain, struct verdict *v)
{
	if (v->code != V_SERVER_REJECTED_CHAIN || chain == NULL || chain->n == 0 || !chain->findings[0].from_verify ||
	    chain->verify.trust != CHAIN_TRUST_BUNDLE || !chain->verify.cause_in_bundle ||
	    v->reason != chain->findings[0].reason)
		return;
	v->fault = F_SERVER;
}

static void decide(const struct conn_facts *f, const struct chain_report *chain, enum server_kind told,
		   bool with_evidence, struct verdict *v)
{
	char buf[96];

	/* the lines themselves are written on demand, each NUL-terminated */
	memset(v, 0, offsetof(struct verdict, evidence));
	v->evidence_omitted = !with_evidence;
	v->keylog_evidence = -1;
	v->cert_requested = TRI_UNKNOWN;
	v->client_cert_sent = TRI_UNKNOWN;
	v->check = chain && chain->verify.trust != CHAIN_TRUST_NONE ? &chain->verify : NULL;
	kind_told(f, told, v);
	if (f->not_tls) {
		set(v, V_NOT_TLS, R_NONE, F_NONE, B_OBSERVED);
		EVIDENCE(v, f->preamble ? "the plaintext exchange never switched to TLS"
					: "the bytes are not TLS records");
		return;
	}
	if (!f->is_tls) {
		set(v, V_INCOMPLETE, R_NONE, F_UNKNOWN, B_OBSERVED);
		EVIDENCE(v, f->dir[0].bytes + f->dir[1].bytes ? "no TLS record could be framed"
							      : "the connection carried no payload");
		return;
	}
	if (!f->ch.seen) {
		set(v, V_INCOMPLETE, R_NONE, F_UNKNOWN, B_OBSERVED);
		EVIDENCE(v, f->saw_syn ? "no ClientHello in the capture"
				       : "the capture started mid-connection: the handshake is not in it");
		return;
	}
	if (!f->sh.seen || f->sh.hello_retry) {
		const struct alert *a = first_fatal(f, SIDE_SERVER, 0);

		if (a) {
			set(v, V_HANDSHAKE_FAILED, R_NONE, F_UNKNOWN, B_OBSERVED);
			EVIDENCE(v, "the server refused the ClientHello with %s", alert_label(a, buf, sizeof(buf)));
			return;
		}
		set(v, V_INCOMPLETE, R_NONE, F_UNKNOWN, B_OBSERVED);
		EVIDENCE(v, f->sh.hello_retry ? "the server sent a HelloRetryRequest; no ServerHello answered the client's second ClientHello in the capture"
					       : "no ServerHello in the capture");
		if (f->client_cert_seen) {
			/* one side of the connection only (asymmetric routing, a
			 * tap on one direction): what the client sent still shows */
			v->cert_requested = TRI_YES;
			v->client_cert_sent = f->client_cert_empty ? TRI_NO : TRI_YES;
			if (f->client_cert_empty)
				EVIDENCE(v, "the client answered a certificate request with an empty Certificate");
			else
				describe_chain_sent(f, v);
			if (f->dir[SIDE_SERVER].bytes == 0)
				EVIDENCE(v, "the capture holds no byte from the server: one direction only (asymmetric routing?)");
		}
		return;
	}
	if (f->sh.n_hrr)
		EVIDENCE(v, "the server sent a HelloRetryRequest; the client's second ClientHello was answered");
	if (f->sh.selected_version == TLS_V_1_3) {
		if (f->sh.psk_selected) {
			set(v, V_RESUMED, R_NONE, F_NONE, B_OBSERVED);
			EVIDENCE(v, "the server accepted a pre-shared key: resumption, no certificates exchanged");
			return;
		}
		decide13(f, chain, v);
	} else {
		if (f->sh.session_id_echoed ||
		    (!f->server_cert_seen && !f->server_hello_done && f->dir[SIDE_SERVER].ccs_seen)) {
			set(v, V_RESUMED, R_NONE, F_NONE, B_OBSERVED);
			EVIDENCE(v, "abbreviated handshake: the server resumed a session, no certificates exchanged");
			return;
		}
		decide12(f, chain, v);
	}
	if (f->truncated && v->code == V_INCOMPLETE)
		EVIDENCE(v, "the capture ended before the connection did");
	bundle_fault(chain, v);
	keylog_evidence(f, v);
}

void verdict_decide(const struct conn_facts *f, const struct chain_report *chain, enum server_kind told,
		    struct verdict *v)
{
	decide(f, chain, told, true, v);
}

void verdict_decide_quiet(const struct conn_facts *f, const struct chain_report *chain, enum server_kind told,
			  struct verdict *v)
{
	decide(f, chain, told, false, v);
}

void verdict_add_evidence(struct verdict *v, const char *line)
{
	if (v->evidence_omitted)
		return;
	if (v->keylog_evidence >= 0 && (size_t)v->keylog_evidence < v->n_evidence) {
		/* before what the key log did, which stays the last word */
		size_t at = (size_t)v->keylog_evidence, last = v->n_evidence;

		if (last == FACTS_MAX_EVIDENCE)
			last--;   /* the list is full: its last line gives way */
		memmove(v->evidence[at + 1], v->evidence[at], (last - at) * sizeof(v->evidence[0]));
		snprintf(v->evidence[at], VERDICT_EVIDENCE_LEN, "%s", line);
		v->n_evidence = last + 1;
		v->keylog_evidence++;
		if (v->middlebox_named && v->middlebox_line >= at)
			v->middlebox_line++;
		return;
	}
	(void)verdict_line_kept(v, "%s", line);
}

void verdict_overrule(struct verdict *v, enum verdict_code code, enum fault fault, enum basis basis, const char *why)
{
	v->code = code;
	v->reason = R_NONE;
	v->fault = fault;
	v->basis = basis;
	v->settled = false;
	verdict_add_evidence(v, why);
}

bool verdict_nginx_no_cert(const struct conn_facts *f)
{
	return http_answer(f) == HA_NO_CERT;
}
