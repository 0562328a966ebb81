/* tlscrypt: key schedules and record decryption with OpenSSL EVP (see
 * tlscrypt.h). */
#include "config.h"

#include "wire/tlscrypt.h"

#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "wire/facts.h"

/* The suites we can open.  The IANA registry names them; the lengths are
 * RFC 5246 appendix C / RFC 8446 B.4. */
static const struct tlscrypt_suite suites[] = {
	/* TLS 1.3 */
	{ 0x1301, "TLS_AES_128_GCM_SHA256", true, TC_AES_128_GCM, 16, 12, 16, NULL, 0, "SHA256" },
	{ 0x1302, "TLS_AES_256_GCM_SHA384", true, TC_AES_256_GCM, 32, 12, 16, NULL, 0, "SHA384" },
	{ 0x1303, "TLS_CHACHA20_POLY1305_SHA256", true, TC_CHACHA20_POLY1305, 32, 12, 16, NULL, 0, "SHA256" },
	{ 0x1304, "TLS_AES_128_CCM_SHA256", true, TC_AES_128_CCM, 16, 12, 16, NULL, 0, "SHA256" },
	{ 0x1305, "TLS_AES_128_CCM_8_SHA256", true, TC_AES_128_CCM, 16, 12, 8, NULL, 0, "SHA256" },
	/* TLS 1.2 AES-GCM (RFC 5288, RFC 5289): 4-byte salt + 8-byte explicit nonce */
	{ 0x009c, "TLS_RSA_WITH_AES_128_GCM_SHA256", false, TC_AES_128_GCM, 16, 4, 16, NULL, 0, "SHA256" },
	{ 0x009d, "TLS_RSA_WITH_AES_256_GCM_SHA384", false, TC_AES_256_GCM, 32, 4, 16, NULL, 0, "SHA384" },
	{ 0x009e, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", false, TC_AES_128_GCM, 16, 4, 16, NULL, 0, "SHA256" },
	{ 0x009f, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", false, TC_AES_256_GCM, 32, 4, 16, NULL, 0, "SHA384" },
	{ 0xc02b, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", false, TC_AES_128_GCM, 16, 4, 16, NULL, 0, "SHA256" },
	{ 0xc02c, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", false, TC_AES_256_GCM, 32, 4, 16, NULL, 0, "SHA384" },
	{ 0xc02f, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", false, TC_AES_128_GCM, 16, 4, 16, NULL, 0, "SHA256" },
	{ 0xc030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", false, TC_AES_256_GCM, 32, 4, 16, NULL, 0, "SHA384" },
	/* TLS 1.2 ChaCha20-Poly1305 (RFC 7905): 12-byte IV, no explicit nonce */
	{ 0xcca8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", false, TC_CHACHA20_POLY1305, 32, 12, 16, NULL, 0, "SHA256" },
	{ 0xcca9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", false, TC_CHACHA20_POLY1305, 32, 12, 16, NULL, 0, "SHA256" },
	{ 0xccaa, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", false, TC_CHACHA20_POLY1305, 32, 12, 16, NULL, 0, "SHA256" },
	/* TLS 1.2 AES-CCM (RFC 6655, RFC 7251): as GCM, 16- or 8-byte tag */
	{ 0xc09c, "TLS_RSA_WITH_AES_128_CCM", false, TC_AES_128_CCM, 16, 4, 16, NULL, 0, "SHA256" },
	{ 0xc09d, "TLS_RSA_WITH_AES_256_CCM", false, TC_AES_256_CCM, 32, 4, 16, NULL, 0, "SHA256" },
	{ 0xc09e, "TLS_DHE_RSA_WITH_AES_128_CCM", false, TC_AES_128_CCM, 16, 4, 16, NULL, 0, "SHA256" },
	{ 0xc09f, "TLS_DHE_RSA_WITH_AES_256_CCM", false, TC_AES_256_CCM, 32, 4, 16, NULL, 0, "SHA256" },
	{ 0xc0a0, "TLS_RSA_WITH_AES_128_CCM_8", false, TC_AES_128_CCM, 16, 4, 8, NULL, 0, "SHA256" },
	{ 0xc0a1, "TLS_RSA_WITH_AES_256_CCM_8", false, TC_AES_256_CCM, 32, 4, 8, NULL, 0, "SHA256" },
	{ 0xc0ac, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", false, TC_AES_128_CCM, 16, 4, 16, NULL, 0, "SHA256" },
	{ 0xc0ad, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM", false, TC_AES_256_CCM, 32, 4, 16, NULL, 0, "SHA256" },
	{ 0xc0ae, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", false, TC_AES_128_CCM, 16, 4, 8, NULL, 0, "SHA256" },
	{ 0xc0af, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8", false, TC_AES_256_CCM, 32, 4, 8, NULL, 0, "SHA256" },
	/* CBC with HMAC (RFC 5246 6.2.3.2, RFC 4492, RFC 5289) */
	{ 0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA", false, TC_AES_128_CBC, 16, 16, 0, "SHA1", 20, "SHA256" },
	{ 0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", false, TC_AES_128_CBC, 16, 16, 0, "SHA1", 20, "SHA256" },
	{ 0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", false, TC_AES_256_CBC, 32, 16, 0, "SHA1", 20, "SHA256" },
	{ 0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", false, TC_AES_256_CBC, 32, 16, 0, "SHA1", 20, "SHA256" },
	{ 0x003c, "TLS_RSA_WITH_AES_128_CBC_SHA256", false, TC_AES_128_CBC, 16, 16, 0, "SHA256", 32, "SHA256" },
	{ 0x003d, "TLS_RSA_WITH_AES_256_CBC_SHA256", false, TC_AES_256_CBC, 32, 16, 0, "SHA256", 32, "SHA256" },
	{ 0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", false, TC_AES_128_CBC, 16, 16, 0, "SHA256", 32, "SHA256" },
	{ 0x006b, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", false, TC_AES_256_CBC, 32, 16, 0, "SHA256", 32, "SHA256" },
	{ 0xc009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", false, TC_AES_128_CBC, 16, 16, 0, "SHA1", 20, "SHA256" },
	{ 0xc00a, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", false, TC_AES_256_CBC, 32, 16, 0, "SHA1", 20, "SHA256" },
	{ 0xc013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", false, TC_AES_128_CBC, 16, 16, 0, "SHA1", 20, "SHA256" },
	{ 0xc014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", false, TC_AES_256_CBC, 32, 16, 0, "SHA1", 20, "SHA256" },
	{ 0xc023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", false, TC_AES_128_CBC, 16, 16, 0, "SHA256", 32, "SHA256" },
	{ 0xc024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", false, TC_AES_256_CBC, 32, 16, 0, "SHA384", 48, "SHA384" },
	{ 0xc027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", false, TC_AES_128_CBC, 16, 16, 0, "SHA256", 32, "SHA256" },
	{ 0xc028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", false, TC_AES_256_CBC, 32, 16, 0, "SHA384", 48, "SHA384" },
};

const struct tlscrypt_suite *tlscrypt_suite(uint16_t id)
{
	size_t i;

	for (i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
		if (suites[i].id == id)
			return &suites[i];
	return NULL;
}

static bool is_aead(const struct tlscrypt_suite *s)
{
	return s->tag_len > 0;
}

static bool is_ccm(const struct tlscrypt_suite *s)
{
	return s->cipher == TC_AES_128_CCM || s->cipher == TC_AES_256_CCM;
}

static const EVP_CIPHER *evp_cipher(enum tlscrypt_cipher c)
{
	switch (c) {
	case TC_AES_128_GCM: return EVP_aes_128_gcm();
	case TC_AES_256_GCM: return EVP_aes_256_gcm();
	case TC_CHACHA20_POLY1305: return EVP_chacha20_poly1305();
	case TC_AES_128_CCM: return EVP_aes_128_ccm();
	case TC_AES_256_CCM: return EVP_aes_256_ccm();
	case TC_AES_128_CBC: return EVP_aes_128_cbc();
	case TC_AES_256_CBC: return EVP_aes_256_cbc();
	}
	return NULL;
}

static size_t hash_len(const char *hash)
{
	return strcmp(hash, "SHA384") == 0 ? 48 : 32;
}

/* ---- key schedules ---- */

/* The KDFs, fetched once for the process: a fetch looks the name up in
 * OpenSSL's provider tables under a lock, which cost more than the
 * derivation itself, several times per connection. */
static EVP_KDF *kdf_hkdf, *kdf_prf;
static pthread_once_t kdf_once = PTHREAD_ONCE_INIT;

static void kdf_fetch(void)
{
	kdf_hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	kdf_prf = EVP_KDF_fetch(NULL, "TLS1-PRF", NULL);
}

static EVP_KDF *kdf_of(bool hkdf)
{
	(void)pthread_once(&kdf_once, kdf_fetch);
	return hkdf ? kdf_hkdf : kdf_prf;
}

int tlscrypt_hkdf_expand_label(const char *hash, const uint8_t *secret, size_t secret_len,
			       const char *label, const uint8_t *context, size_t context_len,
			       uint8_t *out, size_t out_len)
{
	/* struct { uint16 length; opaque label<7..255> = "tls13 " + Label;
	 *          opaque context<0..255>; } HkdfLabel;    (RFC 8446 7.1) */
	uint8_t info[2 + 1 + 255 + 1 + 255];
	size_t label_len = strlen(label), n = 0;
	EVP_KDF *kdf = kdf_of(true);
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[5];
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, ret = 0;

	if (out_len > 0xffff || 6 + label_len > 255 || context_len > 255 || secret_len == 0)
		return 0;
	info[n++] = (uint8_t)(out_len >> 8);
	info[n++] = (uint8_t)out_len;
	info[n++] = (uint8_t)(6 + label_len);
	memcpy(&info[n], "tls13 ", 6);
	n += 6;
	memcpy(&info[n], label, label_len);
	n += label_len;
	info[n++] = (uint8_t)context_len;
	if (context_len)
		memcpy(&info[n], context, context_len);
	n += context_len;

	if (!kdf || !(kctx = EVP_KDF_CTX_new(kdf)))
		goto Exit;
	params[0] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)hash, 0);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len);
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n);
	params[4] = OSSL_PARAM_construct_end();
	ret = EVP_KDF_derive(kctx, out, out_len, params) == 1;
Exit:
	EVP_KDF_CTX_free(kctx);
	return ret;
}

int tlscrypt13_keys(const struct tlscrypt_suite *s, const uint8_t *secret, size_t secret_len,
		    struct tlscrypt_keys *out)
{
	memset(out, 0, sizeof(*out));
	/* [sender]_write_key = HKDF-Expand-Label(Secret, "key", "", key_length),
	 * [sender]_write_iv  = HKDF-Expand-Label(Secret, "iv", "", iv_length)  (RFC 8446 7.3) */
	return s->tls13 &&
	       tlscrypt_hkdf_expand_label(s->hash, secret, secret_len, "key", NULL, 0, out->key, s->key_len) &&
	       tlscrypt_hkdf_expand_label(s->hash, secret, secret_len, "iv", NULL, 0, out->iv, s->fixed_iv_len);
}

int tlscrypt13_next_secret(const struct tlscrypt_suite *s, const uint8_t *secret, size_t secret_len,
			   uint8_t *out)
{
	/* application_traffic_secret_N+1 =
	 *     HKDF-Expand-Label(application_traffic_secret_N, "traffic upd", "", Hash.length) */
	return s->tls13 && secret_len == hash_len(s->hash) &&
	       tlscrypt_hkdf_expand_label(s->hash, secret, secret_len, "traffic upd", NULL, 0, out, secret_len);
}

int tlscrypt12_keys(const struct tlscrypt_suite *s, uint16_t version, const uint8_t master[48],
		    const uint8_t client_random[32], const uint8_t server_random[32],
		    struct tlscrypt_keys *client, struct tlscrypt_keys *server)
{
	/* key_block = PRF(master_secret, "key expansion", server_random + client_random),
	 * split into client and server MAC keys, keys, IVs (RFC 5246 6.3).
	 * TLS 1.0 and 1.1 use the MD5/SHA-1 PRF (RFC 2246 5). */
	uint8_t block[2 * (TLSCRYPT_MAX_MAC + TLSCRYPT_MAX_KEY + TLSCRYPT_MAX_IV)];
	size_t mac = s->mac_len, key = s->key_len, iv = s->fixed_iv_len, need = 2 * (mac + key + iv), n = 0;
	const char *md = version >= TLS_V_1_2 ? s->hash : "MD5-SHA1";
	EVP_KDF *kdf = kdf_of(false);
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[6];
	int ret = 0;

	if (s->tls13 || version < TLS_V_1_0 || version > TLS_V_1_2)
		return 0;
	memset(client, 0, sizeof(*client));
	memset(server, 0, sizeof(*server));
	if (!kdf || !(kctx = EVP_KDF_CTX_new(kdf)))
		goto Exit;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, (void *)master, 48);
	/* the seed parameters are concatenated: label, then the randoms */
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, (void *)"key expansion", 13);
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, (void *)server_random, 32);
	params[4] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, (void *)client_random, 32);
	params[5] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, block, need, params) != 1)
		goto Exit;
	memcpy(client->mac, &block[n], mac); n += mac;
	memcpy(server->mac, &block[n], mac); n += mac;
	memcpy(client->key, &block[n], key); n += key;
	memcpy(server->key, &block[n], key); n += key;
	memcpy(client->iv, &block[n], iv); n += iv;
	memcpy(server->iv, &block[n], iv);
	ret = 1;
Exit:
	OPENSSL_cleanse(block, sizeof(block));
	EVP_KDF_CTX_free(kctx);
	return ret;
}

/* ---- records ---- */

void tlscrypt_dir_init(struct tlscrypt_dir *d)
{
	memset(d, 0, sizeof(*d));
}

void tlscrypt_dir_clear(struct tlscrypt_dir *d)
{
	EVP_CIPHER_CTX_free(d->ctx);
	EVP_MAC_CTX_free(d->mac);
	OPENSSL_cleanse(d, sizeof(*d));
	tlscrypt_dir_init(d);
}

int tlscrypt_dir_set(struct tlscrypt_dir *d, const struct tlscrypt_suite *s, uint16_t version,
		     bool etm, const struct tlscrypt_keys *k)
{
	EVP_CIPHER_CTX *ctx = d->ctx;
	EVP_MAC_CTX *mac = d->mac;

	if (!ctx && !(ctx = EVP_CIPHER_CTX_new()))
		return 0;
	d->ctx = ctx;
	if (s->mac_md && !mac) {
		EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);

		mac = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
		EVP_MAC_free(hmac);
		if (!mac)
			return 0;
		d->mac = mac;
	}
	d->suite = s;
	d->version = version;
	d->etm = etm && !is_aead(s);
	d->k = *k;
	memcpy(d->chain_iv, k->iv, sizeof(d->chain_iv));
	d->seq = 0;
	return 1;
}

static void seq_bytes(uint64_t seq, uint8_t out[8])
{
	int i;

	for (i = 7; i >= 0; i--, seq >>= 8)
		out[i] = (uint8_t)seq;
}

/* Runs the AEAD over ct with the tag, nonce and aad; plaintext to out. */
static enum tlscrypt_result aead_open(struct tlscrypt_dir *d, const uint8_t nonce[12],
				      const uint8_t *aad, size_t aad_len, const struct cursor *ct,
				      const struct cursor *tag, uint8_t *out)
{
	const struct tlscrypt_suite *s = d->suite;
	EVP_CIPHER_CTX *ctx = d->ctx;
	uint8_t tagbuf[16];
	int len = 0, fin = 0;
	size_t n = cursor_len(ct);

	memcpy(tagbuf, cursor_data(tag), s->tag_len);
	if (!EVP_CIPHER_CTX_reset(ctx) ||
	    !EVP_DecryptInit_ex2(ctx, evp_cipher(s->cipher), NULL, NULL, NULL) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL))
		return TC_FAILED;
	if (is_ccm(s)) {
		/* CCM needs the tag before the key, and the length up front */
		if (!EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, (int)s->tag_len, tagbuf) ||
		    !EVP_DecryptInit_ex2(ctx, NULL, d->k.key, nonce, NULL) ||
		    !EVP_DecryptUpdate(ctx, NULL, &len, NULL, (int)n) ||
		    !EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aad_len))
			return TC_FAILED;
		/* the tag is checked by the one update over the ciphertext */
		return EVP_DecryptUpdate(ctx, out, &len, cursor_data(ct), (int)n) > 0 ? TC_OK : TC_BAD_AUTH;
	}
	if (!EVP_DecryptInit_ex2(ctx, NULL, d->k.key, nonce, NULL) ||
	    !EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aad_len) ||
	    (n && !EVP_DecryptUpdate(ctx, out, &len, cursor_data(ct), (int)n)) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, (int)s->tag_len, tagbuf))
		return TC_FAILED;
	return EVP_DecryptFinal_ex(ctx, &out[(size_t)len], &fin) > 0 ? TC_OK : TC_BAD_AUTH;
}

/* TLSInnerPlaintext: content, the content type, zero padding (RFC 8446 5.2). */
static enum tlscrypt_result strip13(const uint8_t *out, size_t n, struct cursor *plain, uint8_t *inner)
{
	struct cursor all;
	uint8_t b = 0;

	cursor_init(&all, out, n);
	while (n > 0 && cursor_peek_u8(&all, n - 1, &b) && b == 0)
		n--;
	if (n == 0)
		return TC_MALFORMED;    /* all padding: no content type */
	*inner = b;
	cursor_init(plain, out, n - 1);
	return TC_OK;
}

static enum tlscrypt_result open13(struct tlscrypt_dir *d, uint8_t type, uint16_t version,
				   const struct cursor *body, uint8_t *out, struct cursor *plain,
				   uint8_t *inner)
{
	const struct tlscrypt_suite *s = d->suite;
	struct cursor c = *body, ct, tag;
	uint8_t nonce[12], seq[8], aad[5];
	size_t n = cursor_len(body), i;
	enum tlscrypt_result r;

	if (n < s->tag_len + 1 || !cursor_get_bytes(&c, &ct, n - s->tag_len) ||
	    !cursor_get_bytes(&c, &tag, s->tag_len))
		return TC_MALFORMED;
	/* nonce = iv XOR the 64-bit sequence number, left-padded (5.3) */
	seq_bytes(d->seq, seq);
	memcpy(nonce, d->k.iv, 12);
	for (i = 0; i < 8; i++)
		nonce[4 + i] ^= seq[i];
	/* additional_data = the record header (5.2) */
	aad[0] = type;
	aad[1] = (uint8_t)(version >> 8);
	aad[2] = (uint8_t)version;
	aad[3] = (uint8_t)(n >> 8);
	aad[4] = (uint8_t)n;
	r = aead_open(d, nonce, aad, sizeof(aad), &ct, &tag, out);
	if (r != TC_OK)
		return r;
	d->seq++;
	return strip13(out, cursor_len(&ct), plain, inner);
}

/* seq_num + type + version + length, the MAC and AEAD input of RFC 5246
 * 6.2.3.1 and 6.2.3.3. */
static void header12(uint8_t out[13], uint64_t seq, uint8_t type, uint16_t version, size_t len)
{
	seq_bytes(seq, out);
	out[8] = type;
	out[9] = (uint8_t)(version >> 8);
	out[10] = (uint8_t)version;
	out[11] = (uint8_t)(len >> 8);
	out[12] = (uint8_t)len;
}

static enum tlscrypt_result open12_aead(struct tlscrypt_dir *d, uint8_t type, uint16_t version,
					const struct cursor *body, uint8_t *out, struct cursor *plain)
{
	const struct tlscrypt_suite *s = d->suite;
	struct cursor c = *body, ct, tag;
	uint8_t nonce[12], aad[13], seq[8];
	size_t explicit_len = s->cipher == TC_CHACHA20_POLY1305 ? 0 : 8, i, n;
	enum tlscrypt_result r;

	if (cursor_len(&c) < explicit_len + s->tag_len)
		return TC_MALFORMED;
	if (explicit_len) {
		/* GCM/CCM: salt from the key block, then the record's explicit 8 bytes */
		memcpy(nonce, d->k.iv, 4);
		if (!cursor_copy_bytes(&c, &nonce[4], 8))
			return TC_MALFORMED;
	} else {
		/* ChaCha20-Poly1305 (RFC 7905 2): iv XOR the padded sequence number */
		seq_bytes(d->seq, seq);
		memcpy(nonce, d->k.iv, 12);
		for (i = 0; i < 8; i++)
			nonce[4 + i] ^= seq[i];
	}
	n = cursor_len(&c) - s->tag_len;
	if (!cursor_get_bytes(&c, &ct, n) || !cursor_get_bytes(&c, &tag, s->tag_len))
		return TC_MALFORMED;
	header12(aad, d->seq, type, version, n);
	r = aead_open(d, nonce, aad, sizeof(aad), &ct, &tag, out);
	if (r != TC_OK)
		return r;
	d->seq++;
	cursor_init(plain, out, n);
	return TC_OK;
}

static enum tlscrypt_result hmac(struct tlscrypt_dir *d, const uint8_t hdr[13], const struct cursor *data,
				 uint8_t *out)
{
	const struct tlscrypt_suite *s = d->suite;
	OSSL_PARAM params[2];
	size_t len = 0;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)s->mac_md, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_init(d->mac, d->k.mac, s->mac_len, params) || !EVP_MAC_update(d->mac, hdr, 13) ||
	    !EVP_MAC_update(d->mac, cursor_data(data), cursor_len(data)) ||
	    !EVP_MAC_final(d->mac, out, &len, TLSCRYPT_MAX_MAC) || len != s->mac_len)
		return TC_FAILED;
	return TC_OK;
}

static enum tlscrypt_result cbc_decrypt(struct tlscrypt_dir *d, const uint8_t *iv, const struct cursor *ct,
					uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = d->ctx;
	int len = 0, fin = 0;

	if (!EVP_CIPHER_CTX_reset(ctx) ||
	    !EVP_DecryptInit_ex2(ctx, evp_cipher(d->suite->cipher), d->k.key, iv, NULL) ||
	    !EVP_CIPHER_CTX_set_padding(ctx, 0) ||
	    !EVP_DecryptUpdate(ctx, out, &len, cursor_data(ct), (int)cursor_len(ct)) ||
	    !EVP_DecryptFinal_ex(ctx, &out[len], &fin))
		return TC_FAILED;
	return TC_OK;
}

/* GenericBlockCipher (RFC 5246 6.2.3.2): IV (from TLS 1.1), then
 * content + MAC + padding + padding_length encrypted; with
 * encrypt_then_mac (RFC 7366 3) the MAC follows the ciphertext and covers
 * the IV and ciphertext instead. */
static enum tlscrypt_result open12_cbc(struct tlscrypt_dir *d, uint8_t type, uint16_t version,
				       const struct cursor *body, uint8_t *out, struct cursor *plain)
{
	const struct tlscrypt_suite *s = d->suite;
	size_t bs = s->fixed_iv_len, mac_len = s->mac_len, n, pad, content;
	bool explicit_iv = d->version >= TLS_V_1_1;
	struct cursor c = *body, ivc, ct, mac_wire, protected_part, decrypted;
	uint8_t padb, b, iv[TLSCRYPT_MAX_IV], hdr[13], want[TLSCRYPT_MAX_MAC], got[TLSCRYPT_MAX_MAC];
	enum tlscrypt_result r;
	size_t i;

	if (d->etm) {
		if (cursor_len(&c) < mac_len || !cursor_get_bytes(&c, &protected_part, cursor_len(&c) - mac_len) ||
		    !cursor_get_bytes(&c, &mac_wire, mac_len))
			return TC_MALFORMED;
		header12(hdr, d->seq, type, version, cursor_len(&protected_part));
		if ((r = hmac(d, hdr, &protected_part, want)) != TC_OK)
			return r;
		if (CRYPTO_memcmp(want, cursor_data(&mac_wire), mac_len) != 0)
			return TC_BAD_AUTH;
		c = protected_part;
	}
	if (explicit_iv) {
		if (!cursor_get_bytes(&c, &ivc, bs))
			return TC_MALFORMED;
		memcpy(iv, cursor_data(&ivc), bs);
	} else {
		memcpy(iv, d->chain_iv, bs);
	}
	n = cursor_len(&c);
	if (n == 0 || n % bs || (!d->etm && n < mac_len + 1))
		return TC_MALFORMED;
	ct = c;
	if ((r = cbc_decrypt(d, iv, &ct, out)) != TC_OK)
		return r;
	if (!explicit_iv) {
		/* TLS 1.0: the next record's IV is this one's last ciphertext block */
		struct cursor last = ct;

		if (!cursor_skip(&last, n - bs) || !cursor_copy_bytes(&last, d->chain_iv, bs))
			return TC_FAILED;
	}
	cursor_init(&decrypted, out, n);
	if (!cursor_peek_u8(&decrypted, n - 1, &padb))
		return TC_MALFORMED;
	pad = padb;
	if (pad + 1 + (d->etm ? 0 : mac_len) > n)
		return TC_BAD_AUTH;
	for (i = n - 1 - pad; i < n - 1; i++)
		if (!cursor_peek_u8(&decrypted, i, &b) || b != pad)
			return TC_BAD_AUTH;
	content = n - 1 - pad - (d->etm ? 0 : mac_len);
	cursor_init(plain, out, content);
	if (!d->etm) {
		header12(hdr, d->seq, type, version, content);
		if ((r = hmac(d, hdr, plain, want)) != TC_OK)
			return r;
		if (!cursor_skip(&decrypted, content) || !cursor_copy_bytes(&decrypted, got, mac_len) ||
		    CRYPTO_memcmp(want, got, mac_len) != 0)
			return TC_BAD_AUTH;
	}
	d->seq++;
	return TC_OK;
}

enum tlscrypt_result tlscrypt_open(struct tlscrypt_dir *d, uint8_t type, uint16_t version,
				   const struct cursor *body, uint8_t *out, size_t out_cap,
				   struct cursor *plain, uint8_t *inner)
{
	if (!d->suite || !d->ctx || cursor_len(body) > out_cap || cursor_len(body) > 0xffff)
		return TC_FAILED;
	if (d->suite->tls13)
		return open13(d, type, version, body, out, plain, inner);
	*inner = type;
	if (is_aead(d->suite))
		return open12_aead(d, type, version, body, out, plain);
	return open12_cbc(d, type, version, body, out, plain);
}
