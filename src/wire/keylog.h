/* keylog: NSS key log files (what SSLKEYLOGFILE makes curl, browsers,
 * Python and anything on OpenSSL write), the secrets kept by client random.
 *
 * A line is "LABEL <64 hex: ClientHello.random> <hex secret>".  The labels
 * used here: CLIENT_RANDOM (the TLS 1.2-and-older master secret, 48 bytes)
 * and, for TLS 1.3 (RFC 8446 7.1), CLIENT_HANDSHAKE_TRAFFIC_SECRET,
 * SERVER_HANDSHAKE_TRAFFIC_SECRET, CLIENT_TRAFFIC_SECRET_N and
 * SERVER_TRAFFIC_SECRET_N.  Other labels (EXPORTER_SECRET, early data, ECH)
 * are accepted and ignored; comments (#) and blank lines are skipped; a line
 * that is not of that shape is skipped with a warning naming the file and
 * line number.
 *
 * A file may be followed: the proxy looks secrets up while the client is
 * still writing them, so keylog_refresh reads what was appended since (a
 * last line without its end is kept until the rest arrives; a truncated or
 * replaced file is read again from the start).  Lookups copy the secret out
 * under a lock: one key log may serve several threads. */
#ifndef MTLSDIAG_KEYLOG_H
#define MTLSDIAG_KEYLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYLOG_MAX_SECRET 64
/* TLS 1.3 application traffic secrets kept per direction (_0 .. _3); later
 * generations are derived from the last one ("traffic upd", RFC 8446 7.2). */
#define KEYLOG_GENERATIONS 4

enum keylog_kind {
	KEYLOG_MASTER_SECRET,           /* CLIENT_RANDOM */
	KEYLOG_CLIENT_HANDSHAKE,        /* CLIENT_HANDSHAKE_TRAFFIC_SECRET */
	KEYLOG_SERVER_HANDSHAKE,        /* SERVER_HANDSHAKE_TRAFFIC_SECRET */
	KEYLOG_CLIENT_TRAFFIC,          /* CLIENT_TRAFFIC_SECRET_<gen> */
	KEYLOG_SERVER_TRAFFIC,          /* SERVER_TRAFFIC_SECRET_<gen> */
};

struct keylog;

/* Warnings (malformed lines) are handed to `warn` as one line without its
 * end, "FILE:LINE: ...". */
typedef void (*keylog_warn_fn)(void *ctx, const char *line);

struct keylog *keylog_new(keylog_warn_fn warn, void *warn_ctx) __attribute__((warn_unused_result));
void keylog_free(struct keylog *kl);

/* Reads a key log file.  follow: the file may still be growing (kept open
 * for keylog_refresh; an unfinished last line waits).  1 on success; 0 when
 * the file cannot be opened or read, with the reason in err. */
int keylog_add_file(struct keylog *kl, const char *path, bool follow, char *err, size_t errlen)
	__attribute__((nonnull(1, 2, 4), warn_unused_result));

/* Parses key log text from memory; `name` is used in warnings.  The last
 * line needs no line end.  Returns the number of secrets added. */
size_t keylog_add_text(struct keylog *kl, const char *name, const uint8_t *text, size_t len)
	__attribute__((nonnull(1, 2)));

/* Reads what was appended to the followed files; the number of secrets
 * added.  Cheap when nothing changed (one fstat per file). */
size_t keylog_refresh(struct keylog *kl) __attribute__((nonnull));

/* Whether any file is followed (secrets may still arrive). */
bool keylog_following(const struct keylog *kl) __attribute__((nonnull));

/* Copies the secret of that kind (and generation, for the traffic
 * secrets) for the connection with this client random into out
 * (KEYLOG_MAX_SECRET bytes).  1 if present. */
int keylog_secret(struct keylog *kl, const uint8_t client_random[32], enum keylog_kind kind,
		  unsigned gen, uint8_t *out, size_t *len) __attribute__((nonnull, warn_unused_result));

/* Whether the key log has any line for this client random. */
bool keylog_knows(struct keylog *kl, const uint8_t client_random[32]) __attribute__((nonnull));

/* Client randoms with at least one secret. */
size_t keylog_entries(struct keylog *kl) __attribute__((nonnull));

/* Malformed lines skipped so far. */
size_t keylog_malformed(struct keylog *kl) __attribute__((nonnull));

#endif
