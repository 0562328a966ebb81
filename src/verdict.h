/* verdict: the rules that turn a connection's facts into a verdict.
 * Pure functions over struct conn_facts; no I/O, no decoding. */
#ifndef MTLSDIAG_VERDICT_H
#define MTLSDIAG_VERDICT_H

#include <stdbool.h>
#include <stddef.h>

#include "codes.h"
#include "facts.h"

#define VERDICT_EVIDENCE_LEN 256

enum tristate { TRI_UNKNOWN = -1, TRI_NO = 0, TRI_YES = 1 };

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
	char evidence[FACTS_MAX_EVIDENCE][VERDICT_EVIDENCE_LEN];
};

struct chain_report;

/* Decides the verdict for a finished connection.  chain: the client chain
 * checks, or NULL when no client chain was seen. */
void verdict_decide(const struct conn_facts *f, const struct chain_report *chain,
		    struct verdict *out);

/* The same verdict, reason, fault, basis and tri-states, without writing
 * the evidence lines (n_evidence 0, evidence_omitted set): for a front end
 * that only counts verdicts. */
void verdict_decide_quiet(const struct conn_facts *f, const struct chain_report *chain,
			  struct verdict *out);

/* "TLS1.3", "TLS1.2", "SSL3" ... or "TLS?" when unknown. */
const char *verdict_tls_label(const struct conn_facts *f);

#endif
