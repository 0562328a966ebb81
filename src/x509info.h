/* x509info: certificate summaries through OpenSSL (certificates are never
 * parsed by hand), and a cache so a certificate seen on many connections
 * is parsed once. */
#ifndef MTLSDIAG_X509INFO_H
#define MTLSDIAG_X509INFO_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "facts.h"

/* Fills *out from a parsed certificate. */
void x509info_summarize(X509 *x, struct cert_info *out);

/* Formats a distinguished name most-specific first, "CN=..., O=..."
 * (RFC 2253 order, UTF-8 kept, ", " between RDNs). Always NUL-terminates. */
void x509info_name(const X509_NAME *n, char *out, size_t outlen);

/* Parses one DER DistinguishedName (a CertificateRequest CA name); NULL if
 * it is not one. Caller frees with X509_NAME_free. */
X509_NAME *x509info_parse_name(const uint8_t *der, size_t len);

/* A bounded cache of parsed certificates keyed by their DER bytes.  Not
 * thread-safe: one cache per thread. */
struct cert_cache;

struct cached_cert {
	X509 *x509;              /* NULL when the bytes are not a certificate */
	struct cert_info info;   /* parse_failed set when x509 is NULL; sha256 always set */
};

struct cert_cache *cert_cache_new(size_t max_entries);
void cert_cache_free(struct cert_cache *cache);
/* Returns the cache's entry for these DER bytes, parsing them (d2i_X509) on
 * first sight.  The entry stays valid until the next cert_cache_get call
 * that evicts it; take X509_up_ref to keep the X509 longer.  Never NULL
 * except on allocation failure. */
const struct cached_cert *cert_cache_get(struct cert_cache *cache,
					 const uint8_t *der, size_t len);

#endif
