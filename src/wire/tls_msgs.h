/* tls_msgs: parsers for the handshake messages mtlsdiag reads, each filling
 * a plain struct of facts.h from one message body.  Every parser returns 1
 * on success and 0 on a malformed message, and rejects trailing bytes. */
#ifndef MTLSDIAG_TLS_MSGS_H
#define MTLSDIAG_TLS_MSGS_H

#include <stdbool.h>
#include <stddef.h>

#include "wire/cursor.h"
#include "wire/facts.h"

#define TLS_EXT_SERVER_NAME 0
#define TLS_EXT_SUPPORTED_GROUPS 10
#define TLS_EXT_SIGNATURE_ALGORITHMS 13
#define TLS_EXT_ALPN 16
#define TLS_EXT_ENCRYPT_THEN_MAC 22
#define TLS_EXT_SESSION_TICKET 35
#define TLS_EXT_PRE_SHARED_KEY 41
#define TLS_EXT_EARLY_DATA 42
#define TLS_EXT_SUPPORTED_VERSIONS 43
#define TLS_EXT_CERTIFICATE_AUTHORITIES 47
#define TLS_EXT_POST_HANDSHAKE_AUTH 49
#define TLS_EXT_SIGNATURE_ALGORITHMS_CERT 50

/* RFC 8701: 0x0a0a, 0x1a1a, ... 0xfafa */
static inline bool tls_is_grease(uint16_t v)
{
	return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

int tls_parse_client_hello(const struct cursor *body, struct client_hello *out)
	__attribute__((warn_unused_result));
/* body starts at the version field of an SSLv2-format CLIENT-HELLO. */
int tls_parse_sslv2_client_hello(const struct cursor *body, struct client_hello *out)
	__attribute__((warn_unused_result));
/* Detects HelloRetryRequest (RFC 8446 4.1.3) and resumption against `ch`. */
/* TLS 1.3 EncryptedExtensions (read decrypted): the selected ALPN into
 * sh->alpn.  1 on success, 0 if malformed. */
int tls_parse_encrypted_extensions(const struct cursor *body, struct server_hello *sh)
	__attribute__((nonnull, warn_unused_result));

int tls_parse_server_hello(const struct cursor *body, const struct client_hello *ch,
			   struct server_hello *out) __attribute__((warn_unused_result));

/* Certificate (RFC 5246 7.4.2 / RFC 8446 4.4.2).  Checks the whole
 * message and counts its certificates, however many: the handshake size
 * limit bounds them, at four bytes an entry at least (an entry is never
 * empty).  tls_cert_list_next then hands them out in order. */
struct cert_list {
	struct cursor certs;    /* the certificate_list: start tls_cert_list_next here */
	bool tls13;             /* entries carry extensions (RFC 8446 4.4.2) */
	size_t n_total;         /* certificates in the message */
	size_t list_len;        /* certificate_list length in bytes */
	size_t context_len;     /* 1.3 certificate_request_context length */
};
int tls_parse_certificate(const struct cursor *body, bool tls13, struct cert_list *out)
	__attribute__((warn_unused_result));
/* Takes the next certificate's DER (pointing into the message) from `it`,
 * a copy of list->certs of a message tls_parse_certificate accepted;
 * 0 when there is none left. */
int tls_cert_list_next(const struct cert_list *list, struct cursor *it, struct cursor *der)
	__attribute__((warn_unused_result, nonnull));

/* CertificateRequest (RFC 5246 7.4.4 / RFC 8446 4.3.2); CA names are left
 * as DER cursors into body for the caller to turn into X509_NAMEs. */
struct cert_request_wire {
	struct cursor ca_vector;   /* the whole certificate_authorities vector */
	struct cursor ca_der[FACTS_MAX_CA_NAMES];
	size_t n_ca;            /* kept */
	size_t n_ca_total;
	size_t context_len;
};
int tls_parse_cert_request(const struct cursor *body, uint16_t version,
			   struct cert_request *out, struct cert_request_wire *names)
	__attribute__((warn_unused_result));

/* "1.2", "1.3", "SSL3", ... for a wire version; "?" if unknown. */
const char *tls_version_name(uint16_t v);

#endif
