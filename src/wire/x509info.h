/* x509info: certificate summaries through OpenSSL (certificates are never
 * parsed by hand), and a cache so a certificate seen on many connections
 * is parsed once. */
#ifndef MTLSDIAG_X509INFO_H
#define MTLSDIAG_X509INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "wire/cursor.h"
#include "wire/facts.h"

/* Clears OpenSSL's error queue when there is something in it: clearing an
 * empty queue is what costs (it walks every slot). */
static inline void x509info_err_clear(void)
{
	if (ERR_peek_error() != 0)
		ERR_clear_error();
}

/* Fills *out from a parsed certificate. */
void x509info_summarize(X509 *x, struct cert_info *out);

/* Formats a distinguished name most-specific first, "CN=..., O=..."
 * (RFC 2253 order, UTF-8 kept, ", " between RDNs). Always NUL-terminates. */
void x509info_name(const X509_NAME *n, char *out, size_t outlen);

/* Parses one DER DistinguishedName (a CertificateRequest CA name); NULL if
 * it is not one. Caller frees with X509_NAME_free. */
X509_NAME *x509info_parse_name(const uint8_t *der, size_t len);

/* How evidence lines name a certificate: "CN=good-client" (the most specific
 * CN alone), or the whole name when it has no CN.  Always NUL-terminates. */
void x509info_label(const X509_NAME *n, char *out, size_t outlen);

/* An ASN1 UTCTime/GeneralizedTime as time_t (UTC); 1 on success, 0 if it
 * does not parse. */
int x509info_asn1_time(const ASN1_TIME *t, time_t *out);

/* RFC 3339 UTC, "2021-01-01T00:00:00Z"; out needs 21 bytes (32 is safe). */
void x509info_time_str(time_t t, char *out, size_t outlen);

/* Extended key usage: 1 if the extension is present, 0 if not.  out gets
 * the short names comma-separated ("clientAuth,serverAuth", whole names
 * only, empty when absent); *client_auth whether clientAuth or
 * anyExtendedKeyUsage is among them. */
int x509info_eku(X509 *x, char *out, size_t outlen, bool *client_auth);

/* 1 if the certificate is self-signed: subject equals issuer
 * (*self_issued) and its own key verifies its signature. */
int x509info_self_signed(X509 *x, bool *self_issued);

/* Copies at most outlen - 1 bytes of src[0..srclen), never ending inside a
 * UTF-8 sequence; always NUL-terminates (outlen > 0). */
void x509info_copy_utf8(const char *src, size_t srclen, char *out, size_t outlen);

/* A bounded cache of parsed certificates keyed by their DER bytes.  Not
 * thread-safe: one cache per thread. */
struct cert_cache;

struct cached_cert {
	X509 *x509;              /* NULL when the bytes are not a certificate */
	struct cert_info info;   /* parse_failed set when x509 is NULL; sha256 always set */
	uint64_t id;             /* names these bytes: never reused by the cache that made it */
};

struct cert_cache *cert_cache_new(size_t max_entries);
void cert_cache_free(struct cert_cache *cache);
/* Returns the cache's entry for these DER bytes, parsing them (d2i_X509) on
 * first sight.  The entry stays valid until the next cert_cache_get call
 * that evicts it; take X509_up_ref to keep the X509 longer.  Never NULL
 * except on allocation failure. */
const struct cached_cert *cert_cache_get(struct cert_cache *cache,
					 const uint8_t *der, size_t len);

/* The DER bytes the cache holds for the certificate whose SHA-256 is
 * `sha256` (lowercase hex, as cert_info.sha256), or NULL when it holds them
 * no more (evicted).  A linear search: for the few certificates of a
 * connection written out as evidence, not for every connection.  Valid
 * until the next cert_cache_get. */
const uint8_t *cert_cache_der(const struct cert_cache *cache, const char *sha256, size_t *len)
	__attribute__((nonnull));

/* The summaries of a chain's certificates (a cert_chain's `certs`),
 * shared by the connections that sent the same certificates: a server
 * sends its chain on every connection, a client its own on every
 * reconnection, and a summary is over a kilobyte.  ids are the
 * certificates' cached_cert ids, all non-zero.  cert_cache_chain_find:
 * the summaries remembered for ids, with a reference for the caller, or
 * NULL.  cert_cache_chain_new: n zeroed summaries for the caller to fill
 * before its next call on the cache, remembered for ids (unless ids is
 * NULL or n is over CERT_CHAIN_SHARED); NULL out of memory.  The caller
 * lets go with cert_chain_release (NULL is allowed), on the cache's
 * thread. */
#define CERT_CHAIN_SHARED 8
const struct cert_info *cert_cache_chain_find(struct cert_cache *cache, const uint64_t *ids, size_t n)
	__attribute__((nonnull));
struct cert_info *cert_cache_chain_new(struct cert_cache *cache, const uint64_t *ids, size_t n)
	__attribute__((nonnull(1)));
void cert_chain_release(const struct cert_info *certs);

/* The CA names of a CertificateRequest, parsed and formatted once per
 * distinct list (a server sends the same list on every connection) and
 * shared, reference counted, by the connections that saw it. */
struct ca_list {
	unsigned refs;
	uint64_t id;                            /* as cached_cert.id (0 when made without a cache) */
	size_t n;
	X509_NAME *names[FACTS_MAX_CA_NAMES];   /* NULL where a name did not parse */
	char text[FACTS_MAX_CA_NAMES][256];     /* x509info_name, or "(malformed name)" */
};

/* `vector` is the whole certificate_authorities vector (the cache key),
 * `dns` its first n DistinguishedNames.  Returns a reference for the caller
 * to release, or NULL on allocation failure. */
struct ca_list *cert_cache_ca_list(struct cert_cache *cache, const uint8_t *vector,
				   size_t vector_len, const struct cursor *dns, size_t n);
void ca_list_release(struct ca_list *list);

#endif
