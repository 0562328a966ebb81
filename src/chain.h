/* chain: judges a client certificate chain the way a verifying server
 * would, from what is on the wire alone (optionally with the server's CA
 * bundle): validity at the connection's time, issuer against the CA names
 * of the CertificateRequest, missing intermediates, self-signed leaves,
 * extended key usage and key usage. */
#ifndef MTLSDIAG_CHAIN_H
#define MTLSDIAG_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "codes.h"
#include "verdict.h"

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

#endif
