/* tlscrypt: TLS key schedules and record decryption, through OpenSSL's EVP
 * interfaces only (no cryptography of our own).
 *
 * TLS 1.3 (RFC 8446 7.1-7.3, 5.2): traffic secrets from a key log become a
 * record key and IV with HKDF-Expand-Label (EVP_KDF "HKDF", expand only);
 * "traffic upd" gives the next secret after a KeyUpdate; a record is opened
 * with the per-record nonce (IV XOR sequence number) and the 5-byte record
 * header as additional data, and its padding and inner content type are
 * stripped.
 *
 * TLS 1.0-1.2 (RFC 5246 6.3, 6.2.3): the key block comes from the master
 * secret with the TLS PRF (EVP_KDF "TLS1-PRF"); AEAD suites (AES-GCM RFC
 * 5288, AES-CCM RFC 6655, ChaCha20-Poly1305 RFC 7905) and CBC suites with an
 * HMAC (MAC-then-encrypt, or encrypt-then-MAC when RFC 7366 was negotiated;
 * chained IVs in TLS 1.0, explicit from TLS 1.1). */
#ifndef MTLSDIAG_TLSCRYPT_H
#define MTLSDIAG_TLSCRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/cursor.h"

struct evp_cipher_ctx_st;
struct evp_mac_ctx_st;

enum tlscrypt_cipher {
	TC_AES_128_GCM,
	TC_AES_256_GCM,
	TC_CHACHA20_POLY1305,
	TC_AES_128_CCM,
	TC_AES_256_CCM,
	TC_AES_128_CBC,
	TC_AES_256_CBC,
};

struct tlscrypt_suite {
	uint16_t id;
	const char *name;
	bool tls13;
	enum tlscrypt_cipher cipher;
	size_t key_len;
	size_t fixed_iv_len;    /* AEAD: implicit part of the nonce; CBC: the block size */
	size_t tag_len;         /* AEAD tag; 0 for CBC */
	const char *mac_md;     /* CBC: the HMAC's digest ("SHA1", ...); NULL for AEAD */
	size_t mac_len;
	const char *hash;       /* 1.3 HKDF hash; 1.2 PRF hash ("SHA256"/"SHA384") */
};

/* The suite, or NULL when it is not one we can decrypt. */
const struct tlscrypt_suite *tlscrypt_suite(uint16_t id);

#define TLSCRYPT_MAX_KEY 32
#define TLSCRYPT_MAX_IV 16
#define TLSCRYPT_MAX_MAC 48
#define TLSCRYPT_MAX_SECRET 64

struct tlscrypt_keys {
	uint8_t key[TLSCRYPT_MAX_KEY];
	uint8_t iv[TLSCRYPT_MAX_IV];
	uint8_t mac[TLSCRYPT_MAX_MAC];
};

/* HKDF-Expand-Label(secret, label, context, out_len) of RFC 8446 7.1
 * (label without the "tls13 " prefix).  1 on success. */
int tlscrypt_hkdf_expand_label(const char *hash, const uint8_t *secret, size_t secret_len,
			       const char *label, const uint8_t *context, size_t context_len,
			       uint8_t *out, size_t out_len) __attribute__((warn_unused_result));

/* A TLS 1.3 traffic secret's record key and IV (RFC 8446 7.3). */
int tlscrypt13_keys(const struct tlscrypt_suite *s, const uint8_t *secret, size_t secret_len,
		    struct tlscrypt_keys *out) __attribute__((nonnull, warn_unused_result));

/* application_traffic_secret_N+1 from _N (RFC 8446 7.2); out has secret_len bytes. */
int tlscrypt13_next_secret(const struct tlscrypt_suite *s, const uint8_t *secret, size_t secret_len,
			   uint8_t *out) __attribute__((nonnull, warn_unused_result));

/* The TLS 1.0-1.2 key block split into each side's keys (RFC 5246 6.3). */
int tlscrypt12_keys(const struct tlscrypt_suite *s, uint16_t version, const uint8_t master[48],
		    const uint8_t client_random[32], const uint8_t server_random[32],
		    struct tlscrypt_keys *client, struct tlscrypt_keys *server)
	__attribute__((nonnull, warn_unused_result));

/* One direction's record protection. */
struct tlscrypt_dir {
	const struct tlscrypt_suite *suite;
	uint16_t version;
	bool etm;                       /* encrypt_then_mac (CBC suites, RFC 7366) */
	struct tlscrypt_keys k;
	uint8_t chain_iv[TLSCRYPT_MAX_IV]; /* TLS 1.0 CBC: last ciphertext block */
	uint64_t seq;
	struct evp_cipher_ctx_st *ctx;
	struct evp_mac_ctx_st *mac;
};

enum tlscrypt_result {
	TC_OK,
	TC_MALFORMED,           /* too short for the suite, or no content type */
	TC_BAD_AUTH,            /* the tag or MAC does not verify: wrong key */
	TC_FAILED,              /* OpenSSL could not run the cipher */
};

void tlscrypt_dir_init(struct tlscrypt_dir *d) __attribute__((nonnull));
/* Installs keys; the sequence number starts at 0.  1 on success. */
int tlscrypt_dir_set(struct tlscrypt_dir *d, const struct tlscrypt_suite *s, uint16_t version,
		     bool etm, const struct tlscrypt_keys *k) __attribute__((nonnull, warn_unused_result));
void tlscrypt_dir_clear(struct tlscrypt_dir *d) __attribute__((nonnull));

/* Opens one record: `type` and `version` as in its header, `body` the
 * bytes after it.  The plaintext is written to out (out_cap bytes, at
 * least the body's length) and *plain set over it; *inner is the real
 * content type (1.3: from TLSInnerPlaintext).  The sequence number
 * advances when the record opens. */
enum tlscrypt_result tlscrypt_open(struct tlscrypt_dir *d, uint8_t type, uint16_t version,
				   const struct cursor *body, uint8_t *out, size_t out_cap,
				   struct cursor *plain, uint8_t *inner)
	__attribute__((nonnull, warn_unused_result));

#endif
