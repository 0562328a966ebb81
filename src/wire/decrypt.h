/* decrypt: one connection's record protection from a key log: which secret
 * protects which record of each direction, and opening them.
 *
 * TLS 1.3 (RFC 8446 7.1, 4.6.3): after the ServerHello each side writes
 * with its handshake traffic secret, after its own Finished with its
 * application traffic secret _0, and after each KeyUpdate it sends with the
 * next one.  TLS 1.0-1.2 (RFC 5246 7.1): each side's keys (from the master
 * secret) apply from its ChangeCipherSpec.  Secrets are looked up lazily,
 * when a direction first needs them; a key log that is still being written
 * (the proxy) may not have them yet, and decrypt_retry looks again.  No I/O:
 * the caller refreshes the key log.
 *
 * Below 1.3 a renegotiation (RFC 5246 7.4.1.2) is a new handshake inside the
 * protected stream: its ClientHello, read once decrypted, starts a new
 * epoch whose master secret the key log names by that ClientHello's random,
 * and each side moves to the new keys at its next ChangeCipherSpec. */
#ifndef MTLSDIAG_DECRYPT_H
#define MTLSDIAG_DECRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/cursor.h"
#include "wire/facts.h"

struct keylog;
struct decrypt;

/* Starts at the ServerHello (not a HelloRetryRequest); client_random is
 * that of the ClientHello it answers (after a HelloRetryRequest, the
 * second).  NULL when out of memory. */
struct decrypt *decrypt_new(struct keylog *kl, const uint8_t client_random[32],
			    const struct server_hello *sh) __attribute__((nonnull, warn_unused_result));
void decrypt_free(struct decrypt *d);

enum decrypt_result {
	DR_OK,          /* opened: *plain, *inner */
	DR_NO_KEY,      /* no secret for this record (yet) */
	DR_BAD,         /* did not open (wrong key or a malformed record); the side stops */
	DR_OFF,         /* this side is not decrypted any more (a gap, an unread renegotiation, failed) */
};

/* Opens one protected record from `role`. */
enum decrypt_result decrypt_open(struct decrypt *d, enum side role, uint8_t type, uint16_t version,
				 const struct cursor *body, struct cursor *plain, uint8_t *inner)
	__attribute__((nonnull, warn_unused_result));

/* `role` sent ChangeCipherSpec (below 1.3: its keys apply from here). */
void decrypt_ccs(struct decrypt *d, enum side role) __attribute__((nonnull));

/* Below 1.3: the client's ClientHello of a renegotiation, read decrypted,
 * then the server's ServerHello answering it. */
void decrypt_renegotiation_hello(struct decrypt *d, const struct client_hello *ch) __attribute__((nonnull));
void decrypt_renegotiation_server_hello(struct decrypt *d, const struct server_hello *sh)
	__attribute__((nonnull));

/* `role` sent a (decrypted) handshake message: TLS 1.3 key changes at
 * Finished and KeyUpdate. */
void decrypt_handshake(struct decrypt *d, enum side role, uint8_t hs_type) __attribute__((nonnull));

/* Bytes of `role`'s stream were lost (capture gap): its record sequence
 * numbers are unknown from here, so it is not decrypted any more. */
void decrypt_stop(struct decrypt *d, enum side role) __attribute__((nonnull));

/* Looks again for the secrets that were missing; true if a side that had
 * no key has one now. */
bool decrypt_retry(struct decrypt *d) __attribute__((nonnull));

/* Whether `role` is waiting for a secret the key log does not have yet. */
bool decrypt_waiting(const struct decrypt *d, enum side role) __attribute__((nonnull));

/* Whether `role`'s records may still be opened (keys, or may get them). */
bool decrypt_live(const struct decrypt *d, enum side role) __attribute__((nonnull));

/* What the key log did, and a note for the evidence when it did not help
 * (at most notelen bytes). */
enum keylog_use decrypt_outcome(const struct decrypt *d, char *note, size_t notelen)
	__attribute__((nonnull));

#endif
