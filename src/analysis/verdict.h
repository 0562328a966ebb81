/* verdict: the rules that turn a connection's facts into a verdict.
 * Pure functions over struct conn_facts; no I/O, no decoding. */
#ifndef MTLSDIAG_VERDICT_H
#define MTLSDIAG_VERDICT_H

#include <stdbool.h>
#include <stddef.h>

#include "analysis/codes.h"
#include "wire/facts.h"

#define VERDICT_EVIDENCE_LEN 256

enum tristate { TRI_UNKNOWN = -1, TRI_NO = 0, TRI_YES = 1 };

/* The other leg of a connection relayed by a TLS-terminating gateway, when
 * a capture holds both (verdict_pair_legs). */
struct verdict_partner {
	bool set;
	bool server_leg;                /* the partner is the gateway's leg to the server */
	struct endpoint client, server;
	struct timeval ts;              /* its first byte */
	char sni[256];                  /* its SNI, "" if none */
	enum verdict_code code;
};

struct verdict {
	enum verdict_code code;
	enum reason_code reason;
	enum fault fault;
	enum basis basis;
	enum tristate cert_requested;
	enum tristate client_cert_sent;
	bool evidence_omitted;    /* decided for counting only: no evidence lines */
	size_t n_evidence;
	int keylog_evidence;      /* index of the key log's line in evidence, -1 if none */
	bool settled;             /* no later event can change it: the session went on past the handshake */
	bool middlebox_named;     /* evidence[middlebox_line] names the middlebox */
	size_t middlebox_line;
	struct verdict_partner partner;
	/* Which server software answered (its directives name the remedies),
	 * and how that was told. */
	enum server_kind server_kind;
	enum server_kind_source server_kind_source;
	/* The verification of the client's chain (chain.h), or NULL: it
	 * lives as long as the chain report the verdict was decided from. */
	const struct chain_verify *check;
	char evidence[FACTS_MAX_EVIDENCE][VERDICT_EVIDENCE_LEN];
};

struct chain_report;

/* Decides the verdict for a finished connection.  chain: the client chain
 * checks, or NULL when no client chain was seen.  told: the server's kind
 * as the user named it (--server-kind), SK_UNKNOWN to tell it from the
 * connection. */
void verdict_decide(const struct conn_facts *f, const struct chain_report *chain, enum server_kind told,
		    struct verdict *out);

/* The same verdict, reason, fault, basis and tri-states, without writing
 * the evidence lines (n_evidence 0, evidence_omitted set): for a front end
 * that only counts verdicts. */
void verdict_decide_quiet(const struct conn_facts *f, const struct chain_report *chain, enum server_kind told,
			  struct verdict *out);
/* The first HTTP answer after a client-certificate handshake refuses the
 * certificate: nginx's 400 pages (and its codes 495, 496), 400, 401, 403. */
bool verdict_http_refusal(int status, const char *title) __attribute__((nonnull));

/* nginx's "No required SSL certificate was sent" page was read. */
bool verdict_nginx_no_cert(const struct conn_facts *f) __attribute__((nonnull));

/* A front end that knows more than the wire (the probe, the client
 * itself, found no answer to read) replaces the decision: the code, no
 * reason, fault and basis, and `why` as the last evidence line. */
void verdict_overrule(struct verdict *v, enum verdict_code code, enum fault fault, enum basis basis,
		      const char *why) __attribute__((nonnull));

/* A fact a front end knows beyond the wire (the intercepting proxy's own
 * OpenSSL verification), as one more evidence line, before the key log's. */
void verdict_add_evidence(struct verdict *v, const char *line) __attribute__((nonnull));

struct inspect_catalogue;
struct server_expect;

/* Middlebox attribution on one leg, after verdict_decide: a server chain
 * issued by a catalogued inspection CA (cat, may be NULL), one that is not
 * what the real server uses (expect, may be NULL), or an answer that only
 * the real server can have given on a session that never asked for a
 * certificate.  See README "Is the web gateway the culprit?". */
void verdict_attribute(const struct conn_facts *f, const struct inspect_catalogue *cat,
		       const struct server_expect *expect, struct verdict *v)
	__attribute__((nonnull(1, 4)));

/* Which leg of a terminating gateway a decided connection may be: a
 * client leg that was never asked for a certificate (or, through an
 * explicit proxy, one with a server chain to compare), or a server leg
 * that was asked and answered with an empty Certificate. */
enum leg_role { LEG_NONE, LEG_CLIENT, LEG_SERVER };

enum leg_role verdict_leg_role(const struct conn_facts *f, const struct verdict *v)
	__attribute__((nonnull));

/* A client leg and a server leg of the same request (legpair.c matched
 * them by name and time): when the legs show the gateway terminated TLS
 * (the client was not asked, or saw another server chain, while the
 * server asked and got nothing), both get fault middlebox, evidence and
 * each other as partner.  false (verdicts untouched) when they do not. */
bool verdict_pair_legs(const struct conn_facts *cf, struct verdict *cv,
		       const struct conn_facts *sf, struct verdict *sv) __attribute__((nonnull));

/* TLS 1.3 record lengths under a cipher suite: the Finished message's
 * record, an alert's and an empty Certificate's (inner type and tag
 * included), what the rules without keys tell records by. */
void verdict_tls13_sizes(uint16_t cipher, size_t *finished, size_t *alert, size_t *empty_cert)
	__attribute__((nonnull));

/* "TLS1.3", "TLS1.2", "SSL3" ... or "TLS?" when unknown. */
const char *verdict_tls_label(const struct conn_facts *f);

#endif
