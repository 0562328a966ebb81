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
	bool from_verify;      /* the verification's own line: verdict.c writes it for the server's kind */
	char text[VERDICT_EVIDENCE_LEN];  /* one evidence line */
};

struct bundle_summary;

/* How the server verifies client chains, from the options: --ca-bundle
 * (nginx's ssl_client_certificate), --verify-depth (ssl_verify_depth),
 * --crl (ssl_crl), --purpose, --server-kind.  Made and owned by a front
 * end; shared read-only by every thread. */
struct chain_policy {
	X509_STORE *bundle;          /* the CAs, and with crl the CRLs; NULL: the CA names stand in */
	X509 *const *bundle_certs;   /* the bundle's certificates as in its file, for its own checks */
	size_t n_bundle_certs;
	const struct bundle_summary *bundle_summary; /* of bundle_certs (bundle.h), or NULL */
	int verify_depth;            /* -1: not given (OpenSSL's default, 100) */
	bool crl;                    /* check every certificate against a CRL (nginx's ssl_crl) */
	int purpose;                 /* X509_PURPOSE_SSL_CLIENT, unless --purpose */
	enum server_kind server_kind; /* --server-kind; SK_UNKNOWN: told from the connection */
};

/* A policy with no bundle: depth unlimited, purpose sslclient. */
void chain_policy_init(struct chain_policy *p) __attribute__((nonnull));

/* Where the verification's trust came from. */
enum chain_trust {
	CHAIN_TRUST_NONE,       /* no verification ran */
	CHAIN_TRUST_BUNDLE,     /* --ca-bundle */
	CHAIN_TRUST_CA_NAMES,   /* the CertificateRequest's CA names stood in for the CAs */
};

#define CHAIN_BUILT_MAX 16

/* An element of the chain as built, by where it came from: a sent
 * certificate (its index in the Certificate message), a certificate of the
 * bundle (CHAIN_BUILT_BUNDLE + its index), or a stand-in for a CA name
 * (whose name is the issuer of the element before it).  Kept as codes,
 * not text: a connection holds its verification while it is open. */
#define CHAIN_BUILT_BUNDLE 1000u
#define CHAIN_BUILT_ANCHOR 65534u
#define CHAIN_BUILT_UNKNOWN 65535u

/* X509_verify_cert run as a server runs it (chainverify.c). */
struct chain_verify {
	enum chain_trust trust;
	bool ok;                     /* no error at all */
	bool depth_limited;          /* fails with the verify depth, passes without it */
	bool names_disagree;         /* the bundle is not what the server's CA names list */
	bool crl;
	int purpose;                 /* X509_PURPOSE_* id */
	int verify_depth;            /* as configured; -1: OpenSSL's default */
	int needed_depth;            /* the smallest verify depth this chain passes with; -1 unknown */
	int error, error_depth;      /* the last error: what nginx logs (it lets verification go on) */
	int first_error, first_depth; /* the first: what `openssl verify` and Apache say */
	bool cause_in_bundle;        /* the first error is about a certificate of the bundle, or the
				      * chain stops at one: the server's bundle is what must change */
	unsigned bundle_problems;    /* bundle_problem bits at the connection's time */
	bool stops;                  /* the chain stops short of its top's issuer (chain_verify_stop) */
	unsigned n_built;            /* certificates in the chain as built, leaf first */
	uint16_t built[CHAIN_BUILT_MAX];  /* where each came from (CHAIN_BUILT_*) */
	X509 *const *bundle_certs;   /* the policy's, for CHAIN_BUILT_BUNDLE elements */
	size_t n_bundle_certs;
	char note[VERDICT_EVIDENCE_LEN]; /* the bundle against the CA names, or its own mistake; "" */
};

/* The purpose's short name ("sslclient"), as `openssl verify -purpose`
 * takes it. */
const char *chain_purpose_name(int purpose);

/* The purpose id of a short name ("sslclient"); 0 when there is none. */
int chain_purpose_parse(const char *name) __attribute__((nonnull));

/* The subject of element i of the chain as built, into out; `sent`: the
 * summaries of the certificates the client sent. */
void chain_verify_subject(const struct chain_verify *cv, const struct cert_chain *sent, unsigned i, char *out,
			  size_t outlen) __attribute__((nonnull));

/* The issuer the chain stops short of (a CA neither sent nor trusted),
 * into out; "" when it does not stop short. */
void chain_verify_stop(const struct chain_verify *cv, const struct cert_chain *sent, char *out, size_t outlen)
	__attribute__((nonnull));

/* The error line as `kind` logs it: nginx (and unknown) "client SSL
 * certificate verify error: (21:unable to verify the first certificate)"
 * with the last error; Apache "Certificate Verification: Error (20):
 * unable to get local issuer certificate" with the first; otherwise
 * `openssl verify`'s "error 20 at 0 depth lookup: ...".  *who names the
 * server imitated ("nginx", "apache", "openssl verify").  "" when the
 * chain verified. */
void chain_verify_log_line(const struct chain_verify *cv, enum server_kind kind, char *out, size_t outlen,
			   const char **who) __attribute__((nonnull));

struct chain_report {
	bool checked;          /* a leaf certificate could be parsed */
	bool issuer_named;     /* the chain reaches a CA the server named */
	bool bundle_verified;  /* a --ca-bundle verification ran and passed */
	struct chain_finding findings[CHAIN_MAX_FINDINGS];   /* the first n (those after: undefined) */
	size_t n;              /* 0: nothing on the wire says the chain fails */
	struct chain_verify verify;  /* trust CHAIN_TRUST_NONE when none ran */
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

/* chain_check under a policy (NULL: the defaults).  The verification
 * (out->verify) runs against the bundle, or without one against the CA
 * names when verify_names. */
void chain_check_policy(X509 *const *certs, size_t n, X509_NAME *const *ca_names, size_t n_ca,
			time_t at, const struct chain_policy *policy, bool verify_names,
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
 * the CA names (ca_list.id, 0 when there are none).  A verification
 * against a bundle is remembered while no certificate of the chain or of
 * the bundle changes validity (the policy's bundle_summary says when).
 * Without a memo, with a bundle but no summary or with CRLs (whose own
 * times count), or for a longer chain, it is chain_check. */
void chain_check_memo(struct chain_memo *m, const uint64_t *ids, uint64_t ca_id,
		      X509 *const *certs, size_t n, X509_NAME *const *ca_names, size_t n_ca,
		      time_t at, const struct chain_policy *policy, bool verify_names,
		      struct chain_report *out);

/* ---- chainverify.c ---- */

#define CHAIN_VERIFY_ERRORS 16

/* Every error the verification met, in order (what a verify callback that
 * goes on, like nginx's, is told). */
struct chain_verify_errors {
	size_t n;
	struct {
		int code, depth;
		X509 *cert;          /* borrowed: a sent or a bundle certificate */
	} e[CHAIN_VERIFY_ERRORS];
	X509 *top;               /* the last certificate of the chain as built (borrowed), or NULL */
};

/* Verifies certs (leaf first, as sent) at `at` as the policy's server
 * would: against the bundle, or (no bundle) against stand-ins for the CA
 * names, whose own signatures cannot be checked.  Fills cv (trust NONE
 * when there is nothing to verify against) and errs.  ca_id names the CA
 * names (ca_list.id of this thread's cache, 0 when unknown): the bundle is
 * compared with them once per list. */
void chain_verify_run(X509 *const *certs, size_t n, X509_NAME *const *ca_names, size_t n_ca, uint64_t ca_id,
		      time_t at, const struct chain_policy *policy, struct chain_verify *cv,
		      struct chain_verify_errors *errs) __attribute__((nonnull(7, 8, 9)));

#endif
