/* attribute: who terminated TLS.  Middlebox attribution on one leg (an
 * inspection CA, a server chain that is not the real server's, the real
 * server's words on a session that never asked) and the pairing of a
 * gateway's two legs, over what the rules (verdict.c) decided. */
#include "config.h"

#include "analysis/verdict.h"

#include <stdio.h>
#include <string.h>

#include "analysis/evidence.h"
#include "analysis/expect.h"
#include "analysis/inspect.h"

/* ---- middlebox attribution (after verdict_decide) ---- */

static void name_middlebox(struct verdict *v, size_t line)
{
	if (!v->middlebox_named) {
		v->middlebox_named = true;
		v->middlebox_line = line;
	}
}

/* The strongest single-leg signal that this leg's TLS ended at a middlebox. */
struct mb_signal {
	enum inspect_strength strength;     /* INSPECT_NONE: no signal */
	bool expect_mismatch;
	bool upstream_words;                /* the real server's refusal came through */
	struct inspect_match match;
	char expect_why[VERDICT_EVIDENCE_LEN];
};

void verdict_attribute(const struct conn_facts *f, const struct inspect_catalogue *cat,
		       const struct server_expect *expect, struct verdict *v)
{
	struct mb_signal sig;
	enum expect_outcome ex = EXPECT_UNCHECKED;
	bool single_leg_code = v->code == V_CERT_NOT_REQUESTED || v->code == V_CLIENT_REJECTED_SERVER_CERT;
	char issuer[VERDICT_EVIDENCE_LEN + 512];
	size_t line;

	if (!single_leg_code && !expect_configured(expect))
		return;   /* the fast path: nothing to attribute */
	memset(&sig.match, 0, sizeof(sig.match));
	sig.strength = INSPECT_NONE;
	sig.expect_mismatch = sig.upstream_words = false;
	sig.expect_why[0] = '\0';
	if (expect_configured(expect)) {
		ex = expect_check(expect, &f->server_chain, sig.expect_why, sizeof(sig.expect_why));
		if (ex == EXPECT_MATCH) {
			/* the real server's chain: whatever the names say, no middlebox */
			verdict_line(v, "%s", sig.expect_why);
			return;
		}
		if (ex == EXPECT_MISMATCH) {
			sig.expect_mismatch = true;
			sig.strength = INSPECT_STRONG;
		} else if (v->code != V_RESUMED && f->sh.seen && f->sh.selected_version == TLS_V_1_3) {
			verdict_line(v, "the server chain is not readable (TLS 1.3 without a key log): the expected server CA or key could not be checked");
		}
	}
	if (!single_leg_code && !sig.expect_mismatch)
		return;
	if (cat && f->server_chain.n && inspect_match_chain(cat, &f->server_chain, &sig.match) &&
	    sig.match.rule->strength > sig.strength)
		sig.strength = sig.match.rule->strength;
	if (v->code == V_CERT_NOT_REQUESTED && verdict_nginx_no_cert(f)) {
		sig.upstream_words = true;
		sig.strength = INSPECT_STRONG;
	}
	if (sig.strength == INSPECT_NONE)
		return;
	if (sig.match.rule && (sig.match.rule->strength == INSPECT_STRONG || !sig.expect_mismatch))
		snprintf(issuer, sizeof(issuer), "%s (rule '%s' (%s) in %s:%u)", sig.match.name,
			 sig.match.rule->name, inspect_strength_name(sig.match.rule->strength),
			 sig.match.rule->file, sig.match.rule->line);
	else if (f->server_chain.n)
		snprintf(issuer, sizeof(issuer), "%s", f->server_chain.certs[0].issuer);
	else
		snprintf(issuer, sizeof(issuer), "a middlebox");

	if (sig.strength == INSPECT_WEAK) {
		/* a name that only looks like an inspection CA: said, not concluded */
		line = verdict_line_kept(v, "possibly a TLS-inspecting gateway: the server chain is issued by %s", issuer);
		name_middlebox(v, line);
		verdict_line_kept(v, "that issuer only looks like an inspection CA by its name: the weaker signal, not proof; confirm with mtlsdiag probe HOST:PORT --compare --via GATEWAY, or --expect-server-ca");
		if (v->code == V_CERT_NOT_REQUESTED && v->fault == F_NONE)
			v->fault = F_UNKNOWN;
		return;
	}
	if (v->code == V_CERT_NOT_REQUESTED) {
		v->reason = R_NOT_REQUESTED_UPSTREAM;
		v->fault = F_MIDDLEBOX;
		if (sig.expect_mismatch || (sig.match.rule && sig.match.rule->strength == INSPECT_STRONG)) {
			line = verdict_line_kept(v, "the client was never asked for a certificate: TLS was terminated by %s", issuer);
			if (sig.upstream_words)
				verdict_line_kept(v, "the answer is the real server's \"No required SSL certificate was sent\": the middlebox's own connection to it sent no certificate");
		} else {
			/* the real server's words on a session that never asked */
			line = verdict_line_kept(v, "the client was never asked for a certificate, yet the answer is the server's \"No required SSL certificate was sent\": TLS was terminated before that server, by a middlebox that sent none");
			if (sig.match.rule)
				verdict_line_kept(v, "the middlebox is likely %s; the name alone is the weaker signal", issuer);
		}
		name_middlebox(v, line);
	} else if (v->code == V_CLIENT_REJECTED_SERVER_CERT) {
		v->fault = F_MIDDLEBOX;
		line = verdict_line_kept(v, "the client refused a server chain made by a TLS-inspecting middlebox: %s; the client does not trust the middlebox's CA (or the site needs a bypass)",
				     issuer);
		name_middlebox(v, line);
	} else if (v->code == V_HANDSHAKE_FAILED) {
		v->fault = F_MIDDLEBOX;
		line = verdict_line_kept(v, "the server chain was made by a middlebox, not the real server: %s", issuer);
		name_middlebox(v, line);
	} else {
		/* the session is with the middlebox; what happened is still what the verdict says */
		verdict_line_kept(v, "this TLS session ends at a middlebox, not the real server: %s", issuer);
	}
	if (sig.expect_mismatch)
		verdict_line_kept(v, "%s", sig.expect_why);
}

/* ---- two legs of one gateway ---- */

enum leg_role verdict_leg_role(const struct conn_facts *f, const struct verdict *v)
{
	if (v->code == V_CLIENT_SENT_NO_CERT)
		return LEG_SERVER;
	if (v->code == V_CERT_NOT_REQUESTED)
		return LEG_CLIENT;
	/* through an explicit proxy: a session that saw a server chain may
	 * have seen the gateway's, to compare with the server leg's */
	if (f->preamble == PREAMBLE_HTTP_CONNECT && f->server_chain.n &&
	    (v->code == V_CLIENT_CERT_ACCEPTED || v->code == V_NO_CERT_ACCEPTED))
		return LEG_CLIENT;
	return LEG_NONE;
}


static void set_partner(struct verdict_partner *p, const struct conn_facts *f, const struct verdict *v,
			bool server_leg)
{
	p->set = true;
	p->server_leg = server_leg;
	p->client = f->client;
	p->server = f->server;
	p->ts = f->first_ts;
	snprintf(p->sni, sizeof(p->sni), "%s", f->ch.sni);
	p->code = v->code;
}

bool verdict_pair_legs(const struct conn_facts *cf, struct verdict *cv,
		       const struct conn_facts *sf, struct verdict *sv)
{
	bool not_asked = cv->code == V_CERT_NOT_REQUESTED;
	bool other_chain = false, differs;
	char cbuf[64], sbuf[64], cas[180], dt[32], lead[160];
	double gap;
	size_t line;

	if (verdict_leg_role(cf, cv) != LEG_CLIENT || verdict_leg_role(sf, sv) != LEG_SERVER)
		return false;
	if (cf->server_chain.n && sf->server_chain.n)
		other_chain = strcmp(cf->server_chain.certs[0].sha256, sf->server_chain.certs[0].sha256) != 0;
	if (!not_asked && !other_chain)
		return false;   /* the client leg saw the real server: not a terminating gateway */
	differs = cf->sh.selected_version != sf->sh.selected_version || cf->sh.cipher != sf->sh.cipher;
	gap = (double)(sf->first_ts.tv_sec - cf->first_ts.tv_sec) +
	      (double)(sf->first_ts.tv_usec - cf->first_ts.tv_usec) / 1e6;
	snprintf(dt, sizeof(dt), "%+.3f s", gap);

	/* the client's leg */
	cv->fault = F_MIDDLEBOX;
	if (not_asked)
		cv->reason = R_NOT_REQUESTED_UPSTREAM;
	snprintf(lead, sizeof(lead), "%s:%u -> %s:%u", sf->client.ip, sf->client.port, sf->server.ip, sf->server.port);
	if (sf->cr.seen)
		verdict_ca_list(sf, cas, sizeof(cas));
	else
		snprintf(cas, sizeof(cas), "(names encrypted)");
	line = verdict_line_kept(cv, "paired with the gateway's leg to the server %s (%s%s, %s): the server asked that leg for a certificate and got an empty one, while this client was %s",
			     lead, sf->ch.sni[0] ? "SNI " : "same target", sf->ch.sni, dt,
			     not_asked ? "never asked" : "shown another server chain");
	/* the pair is the stronger fact: it heads the human line */
	cv->middlebox_named = true;
	cv->middlebox_line = line;
	verdict_line_kept(cv, "on the gateway's leg the server asked for a certificate from CAs %s", cas);

	/* the gateway's leg */
	sv->fault = F_MIDDLEBOX;
	if (not_asked)
		sv->reason = R_NOT_REQUESTED_UPSTREAM;
	snprintf(lead, sizeof(lead), "%s:%u -> %s:%u", cf->client.ip, cf->client.port, cf->server.ip, cf->server.port);
	line = verdict_line_kept(sv, "paired with the client's leg %s (%s%s, %s): %s, so this empty Certificate is the gateway's, not the client's",
			     lead, cf->connect_target[0] ? "CONNECT " : "SNI ",
			     cf->connect_target[0] ? cf->connect_target : cf->ch.sni, dt,
			     not_asked ? "that client was never asked for a certificate (its TLS ended at the gateway)"
				       : "that client saw another server chain (its TLS ended at the gateway)");
	sv->middlebox_named = true;
	sv->middlebox_line = line;
	if (cf->server_chain.n)
		verdict_line_kept(sv, "the client's leg was served a chain issued by %s", cf->server_chain.certs[0].issuer);

	if (other_chain) {
		verdict_line_kept(cv, "the server chains differ: %s issued by %s here, %s issued by %s on the server leg",
			      cf->server_chain.certs[0].subject, cf->server_chain.certs[0].issuer,
			      sf->server_chain.certs[0].subject, sf->server_chain.certs[0].issuer);
	}
	if (differs) {
		snprintf(cbuf, sizeof(cbuf), "%s cipher 0x%04x", verdict_tls_label(cf), cf->sh.cipher);
		snprintf(sbuf, sizeof(sbuf), "%s cipher 0x%04x", verdict_tls_label(sf), sf->sh.cipher);
		verdict_line_kept(cv, "the legs negotiated different sessions (%s here, %s to the server): two TLS sessions, terminated in between", cbuf, sbuf);
		verdict_line_kept(sv, "the legs negotiated different sessions (%s to the client, %s here): two TLS sessions, terminated in between", cbuf, sbuf);
	}
	set_partner(&cv->partner, sf, sv, true);
	set_partner(&sv->partner, cf, cv, false);
	return true;
}
