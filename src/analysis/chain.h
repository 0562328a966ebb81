/* chain: judges a client certificate chain the way a verifying server
 * would, from what is on the wire alone (optionally with the server's CA
 * bundle): validity at the connection's time, issuer against the CA names
 * of the CertificateRequest, missing intermediates, self-signed leaves,
 * extended key usage and key usage. */
#ifndef MTLSDIAG_CHAIN_H
#define MTLSDIAG_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "analysis/codes.h"
#include "analysis/verdict.h"

#define CHAIN_MAX_FINDINGS 8

struct chain_finding {
	enum reason_code reason;
	char text[VERDICT_EVIDENCE_LEN];  /* one evidence line */
};

struct chain_report {
	bool checked;          /* a leaf certificate could be parsed */
	bool issuer_named;     /* the chain reaches a CA the server named */
	bool bundle_verified;  /* a --ca-bundle verification ran and passed */
	struct chain_finding findings[CHAIN_MAX_FINDINGS];
	size_t n;              /* 0: nothing on the wire says the chain fails */
};

/* certs: the client's Certificate message, leaf first, as sent (NULL
 * entries for certificates that did not parse).  ca_names: the
 * CertificateRequest's CA names (n_ca 0: issuer checks are skipped).  at:
 * the time validity is judged at.  bundle: the server's client-CA bundle or
 * NULL; when given a full X509_verify_cert runs and its error is reported
 * as nginx logs it ("20:unable to get local issuer certificate").
 * Findings come most decisive first. */
void chain_check(X509 *const *certs, size_t n, X509_NAME *const *ca_names,
		 size_t n_ca, time_t at, X509_STORE *bundle,
		 struct chain_report *out);

/* Remembers, for recent chains, the checks that do not depend on the time
 * (the path, a self-signed leaf, usages, the issuer against the CA names,
 * signatures), so that a chain met on many connections is examined once.
 * Not thread-safe: one per thread, used with one certificate cache. */
struct chain_memo;

#define CHAIN_MEMO_CERTS 8

struct chain_memo *chain_memo_new(void) __attribute__((warn_unused_result));
void chain_memo_free(struct chain_memo *m);

/* chain_check, with the same report, through the memo: ids[i] names
 * certs[i] (cached_cert.id of the memo's cache; 0 for unknown) and ca_id
 * the CA names (ca_list.id, 0 when there are none).  Without a memo, with
 * a bundle, or for a longer chain, it is chain_check. */
void chain_check_memo(struct chain_memo *m, const uint64_t *ids, uint64_t ca_id,
		      X509 *const *certs, size_t n, X509_NAME *const *ca_names, size_t n_ca,
		      time_t at, X509_STORE *bundle, struct chain_report *out);

#endif
