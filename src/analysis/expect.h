/* expect: what the real server's chain looks like (--expect-server-ca,
 * --expect-server-spki), and the check of an observed server chain
 * against it.  A chain that matches none of the expectations was made by
 * something else than the real server: a middlebox that terminated TLS. */
#ifndef MTLSDIAG_EXPECT_H
#define MTLSDIAG_EXPECT_H

#include <stdbool.h>
#include <stddef.h>

#include "wire/facts.h"

#define EXPECT_MAX_CAS 64
#define EXPECT_MAX_PINS 16

struct expect_ca {
	char subject[256];      /* as x509info_name formats it */
	char ski[41];           /* its subject key identifier, hex, or empty */
	char sha256[65];        /* the certificate's fingerprint */
	char spki_sha256[65];   /* its key */
};

struct server_expect {
	struct expect_ca cas[EXPECT_MAX_CAS];
	size_t n_cas;
	char ca_file[256];      /* the first --expect-server-ca, for evidence */
	char pins[EXPECT_MAX_PINS][65];
	size_t n_pins;
};

enum expect_outcome {
	EXPECT_UNCHECKED,       /* nothing expected, or no server chain seen */
	EXPECT_MATCH,
	EXPECT_MISMATCH,
};

/* Adds the certificates of a PEM file as CAs the real server's chain
 * comes from.  1 on success; 0 with one line in err. */
int expect_add_ca_file(struct server_expect *e, const char *path, char *err, size_t errlen)
	__attribute__((nonnull, warn_unused_result));

/* Adds a key pin: the SHA-256 of a SubjectPublicKeyInfo, 64 hex digits
 * (colons allowed between octets).  1 on success; 0 with one line in err. */
int expect_add_spki(struct server_expect *e, const char *hex, char *err, size_t errlen)
	__attribute__((nonnull, warn_unused_result));

bool expect_configured(const struct server_expect *e);

/* A chain matches when one of its certificates is an expected CA (same
 * fingerprint or same key), is issued by one (issuer name equal and, when
 * both carry one, the authority key identifier equal to the CA's subject
 * key identifier), or carries a pinned key.  `why` gets one evidence line
 * (both outcomes); `file` names the option's file in it. */
enum expect_outcome expect_check(const struct server_expect *e, const struct cert_chain *chain,
				 char *why, size_t whylen) __attribute__((nonnull(2, 3)));

#endif
