/* bundle: a CA bundle (nginx's ssl_client_certificate, Apache's
 * SSLCACertificateFile) looked at as a whole, for the mistakes that make a
 * server refuse good clients or trust too much: a leaf certificate put in
 * it, a CA expired or not yet valid, one name under two keys (a rotation
 * left half done).  Pure: the front end reads the file. */
#ifndef MTLSDIAG_BUNDLE_H
#define MTLSDIAG_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

/* What can be wrong with one certificate of a bundle (bits). */
enum bundle_problem {
	BUNDLE_LEAF = 1u << 0,           /* not a CA: a client or server certificate */
	BUNDLE_EXPIRED = 1u << 1,        /* expired at the time judged */
	BUNDLE_NOT_YET_VALID = 1u << 2,  /* not valid yet at the time judged */
	BUNDLE_ROTATION = 1u << 3,       /* another certificate has its name and another key */
	BUNDLE_EXPIRING = 1u << 4,       /* valid, but expires within the warning window */
};

#define BUNDLE_PROBLEM_BITS 5

/* The problems of certs[i] among the n of its bundle at time `at`;
 * warn_days (>= 0) sets the window of BUNDLE_EXPIRING, -1 leaves it out. */
unsigned bundle_problems(X509 *const *certs, size_t n, size_t i, time_t at, int warn_days)
	__attribute__((nonnull));

/* The problems of every certificate, or-ed. */
unsigned bundle_problems_all(X509 *const *certs, size_t n, time_t at, int warn_days);

/* "leaf", "expired", "not_yet_valid", "rotation", "expiring" for one bit. */
const char *bundle_problem_name(unsigned bit);

/* One line about one problem of certs[i]: "CN=Lab Retired CA, O=... expired
 * 2021-01-01T00:00:00Z". */
void bundle_problem_text(X509 *const *certs, size_t n, size_t i, unsigned bit, time_t at,
			 char *out, size_t outlen) __attribute__((nonnull));

/* What of a bundle does not change with the time, made once (a bundle of
 * a hundred certificates is judged on every connection). */
struct bundle_summary {
	size_t n;
	unsigned *fixed;            /* per certificate: BUNDLE_LEAF, BUNDLE_ROTATION */
	time_t *not_before, *not_after;
	bool *nb_ok, *na_ok;        /* the times could be read */
	time_t *edges;              /* every readable notBefore and notAfter, sorted */
	size_t n_edges;
};

struct bundle_summary *bundle_summarize(X509 *const *certs, size_t n) __attribute__((warn_unused_result));
void bundle_summary_free(struct bundle_summary *s);

/* bundle_problems from a summary: certificate i at `at`. */
unsigned bundle_summary_problems(const struct bundle_summary *s, size_t i, time_t at, int warn_days)
	__attribute__((nonnull));

/* Which stretch of time `at` is in, between two moments a certificate of
 * the bundle becomes valid or expires (the count of those at or before
 * it): within one stretch a verification against the bundle comes out
 * the same. */
size_t bundle_summary_epoch(const struct bundle_summary *s, time_t at) __attribute__((nonnull));

/* Whether every CA name the server sent is the subject of a bundle
 * certificate and every bundle certificate's subject was sent (nginx names
 * each certificate of ssl_client_certificate).  n_names 0: true. */
bool bundle_matches_names(X509 *const *certs, size_t n, X509_NAME *const *names, size_t n_names);

#endif
