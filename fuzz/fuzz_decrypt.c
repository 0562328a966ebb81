/* fuzz_decrypt: libFuzzer target for decryption with a key log: key log
 * parsing, the key schedules, record opening, the plaintext fed back to the
 * handshake path, the HTTP reader and the verdict rules on what was read.
 *
 * Input: one mode byte, a key log (u16 length, then its text; RFC 8448
 * section 3's secrets are always added to it), then chunks.
 *   mode bit 0 clear: chunks are [side][u16 length][bytes], fed as they are
 *     (both sides of one connection; the seeds are real connections with
 *     their key logs, so valid and damaged records both reach the opener);
 *   mode bit 0 set: RFC 8448's ClientHello and ServerHello are fed first,
 *     then chunks are [side][inner content type][u16 length][plaintext]
 *     that this harness seals as TLS 1.3 records with the trace's
 *     handshake keys (and its application keys after a handshake chunk
 *     that starts with a Finished), so arbitrary plaintext reaches what
 *     comes after a successful open.
 * mode bit 1: the key log counts as still being written (keylog_wait).
 * side bit 0: the server; side 0xff: a capture gap on the client side. */
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "wire/cursor.h"
#include "fuzzutil.h"
#include "wire/keylog.h"
#include "analysis/observer.h"
#include "wire/tls.h"
#include "wire/x509info.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RFC_RANDOM "cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7"

static const char rfc_keylog[] =
	"CLIENT_HANDSHAKE_TRAFFIC_SECRET " RFC_RANDOM " b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21\n"
	"SERVER_HANDSHAKE_TRAFFIC_SECRET " RFC_RANDOM " b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38\n"
	"CLIENT_TRAFFIC_SECRET_0 " RFC_RANDOM " 9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5\n"
	"SERVER_TRAFFIC_SECRET_0 " RFC_RANDOM " a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643\n";

/* RFC 8448 section 3's ClientHello and ServerHello records. */
static const uint8_t client_hello[] = {
	0x16, 0x03, 0x01, 0x00, 0xc4, 0x01, 0x00, 0x00, 0xc0, 0x03, 0x03, 0xcb, 0x34, 0xec, 0xb1, 0xe7, 0x81,
	0x63, 0xba, 0x1c, 0x38, 0xc6, 0xda, 0xcb, 0x19, 0x6a, 0x6d, 0xff, 0xa2, 0x1a, 0x8d, 0x99, 0x12, 0xec,
	0x18, 0xa2, 0xef, 0x62, 0x83, 0x02, 0x4d, 0xec, 0xe7, 0x00, 0x00, 0x06, 0x13, 0x01, 0x13, 0x03, 0x13,
	0x02, 0x01, 0x00, 0x00, 0x91, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x09, 0x00, 0x00, 0x06, 0x73, 0x65, 0x72,
	0x76, 0x65, 0x72, 0xff, 0x01, 0x00, 0x01, 0x00, 0x00, 0x0a, 0x00, 0x14, 0x00, 0x12, 0x00, 0x1d, 0x00,
	0x17, 0x00, 0x18, 0x00, 0x19, 0x01, 0x00, 0x01, 0x01, 0x01, 0x02, 0x01, 0x03, 0x01, 0x04, 0x00, 0x23,
	0x00, 0x00, 0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20, 0x99, 0x38, 0x1d, 0xe5, 0x60,
	0xe4, 0xbd, 0x43, 0xd2, 0x3d, 0x8e, 0x43, 0x5a, 0x7d, 0xba, 0xfe, 0xb3, 0xc0, 0x6e, 0x51, 0xc1, 0x3c,
	0xae, 0x4d, 0x54, 0x13, 0x69, 0x1e, 0x52, 0x9a, 0xaf, 0x2c, 0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04,
	0x00, 0x0d, 0x00, 0x20, 0x00, 0x1e, 0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x02, 0x03, 0x08, 0x04, 0x08,
	0x05, 0x08, 0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01, 0x02, 0x01, 0x04, 0x02, 0x05, 0x02, 0x06, 0x02,
	0x02, 0x02, 0x00, 0x2d, 0x00, 0x02, 0x01, 0x01, 0x00, 0x1c, 0x00, 0x02, 0x40, 0x01,
};
static const uint8_t server_hello[] = {
	0x16, 0x03, 0x03, 0x00, 0x5a, 0x02, 0x00, 0x00, 0x56, 0x03, 0x03, 0xa6, 0xaf, 0x06, 0xa4, 0x12, 0x18,
	0x60, 0xdc, 0x5e, 0x6e, 0x60, 0x24, 0x9c, 0xd3, 0x4c, 0x95, 0x93, 0x0c, 0x8a, 0xc5, 0xcb, 0x14, 0x34,
	0xda, 0xc1, 0x55, 0x77, 0x2e, 0xd3, 0xe2, 0x69, 0x28, 0x00, 0x13, 0x01, 0x00, 0x00, 0x2e, 0x00, 0x33,
	0x00, 0x24, 0x00, 0x1d, 0x00, 0x20, 0xc9, 0x82, 0x88, 0x76, 0x11, 0x20, 0x95, 0xfe, 0x66, 0x76, 0x2b,
	0xdb, 0xf7, 0xc6, 0x72, 0xe1, 0x56, 0xd6, 0xcc, 0x25, 0x3b, 0x83, 0x3d, 0xf1, 0xdd, 0x69, 0xb1, 0xb0,
	0x4e, 0x75, 0x1f, 0x0f, 0x00, 0x2b, 0x00, 0x02, 0x03, 0x04,
};
/* The trace's handshake record keys (RFC 8448: "derive write traffic keys
 * for handshake data"), client then server. */
static const uint8_t hs_key[2][16] = {
	{ 0xdb, 0xfa, 0xa6, 0x93, 0xd1, 0x76, 0x2c, 0x5b, 0x66, 0x6a, 0xf5, 0xd9, 0x50, 0x25, 0x8d, 0x01 },
	{ 0x3f, 0xce, 0x51, 0x60, 0x09, 0xc2, 0x17, 0x27, 0xd0, 0xf2, 0xe4, 0xe8, 0x6e, 0xe4, 0x03, 0xbc },
};
static const uint8_t hs_iv[2][12] = {
	{ 0x5b, 0xd3, 0xc7, 0x1b, 0x83, 0x6e, 0x0b, 0x76, 0xbb, 0x73, 0x26, 0x5f },
	{ 0x5d, 0x31, 0x3e, 0xb2, 0x67, 0x12, 0x76, 0xee, 0x13, 0x00, 0x0b, 0x30 },
};

static const uint8_t app_key[2][16] = {
	{ 0x17, 0x42, 0x2d, 0xda, 0x59, 0x6e, 0xd5, 0xd9, 0xac, 0xd8, 0x90, 0xe3, 0xc6, 0x3f, 0x50, 0x51 },
	{ 0x9f, 0x02, 0x28, 0x3b, 0x6c, 0x9c, 0x07, 0xef, 0xc2, 0x6b, 0xb9, 0xf2, 0xac, 0x92, 0xe3, 0x56 },
};
static const uint8_t app_iv[2][12] = {
	{ 0x5b, 0x78, 0x92, 0x3d, 0xee, 0x08, 0x57, 0x90, 0x33, 0xe5, 0x23, 0xd9 },
	{ 0xcf, 0x78, 0x2b, 0x88, 0xdd, 0x83, 0x54, 0x9a, 0xad, 0xf1, 0xe9, 0x84 },
};

/* Seals plaintext + type as a TLS 1.3 AES-128-GCM record (RFC 8446 5.2);
 * the record's length in out, 0 on failure. */
static size_t seal(int side, bool app, uint64_t seq, uint8_t type, const struct cursor *plain, uint8_t *out,
		   size_t cap)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	size_t n = cursor_len(plain) + 1, total = 5 + n + 16, ret = 0, i;
	uint8_t nonce[12];
	int len = 0;
	struct cursor c = *plain;

	if (!ctx || total > cap || n + 16 > TLS_MAX_RECORD)
		goto Exit;
	memcpy(nonce, app ? app_iv[side] : hs_iv[side], 12);
	for (i = 0; i < 8; i++)
		nonce[4 + i] ^= (uint8_t)(seq >> (56 - 8 * i));
	out[0] = TLS_CT_APPLICATION_DATA;
	out[1] = 3;
	out[2] = 3;
	out[3] = (uint8_t)((n + 16) >> 8);
	out[4] = (uint8_t)(n + 16);
	if (!cursor_copy_bytes(&c, &out[5], cursor_len(plain)))
		goto Exit;
	out[5 + n - 1] = type;
	if (!EVP_EncryptInit_ex2(ctx, EVP_aes_128_gcm(), app ? app_key[side] : hs_key[side], nonce, NULL) ||
	    !EVP_EncryptUpdate(ctx, NULL, &len, out, 5) ||
	    !EVP_EncryptUpdate(ctx, &out[5], &len, &out[5], (int)n) ||
	    !EVP_EncryptFinal_ex(ctx, &out[5 + n], &len) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, &out[5 + n]))
		goto Exit;
	ret = total;
Exit:
	EVP_CIPHER_CTX_free(ctx);
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cert_cache *certs;
	static uint8_t sealed[5 + TLS_MAX_RECORD + 32];
	struct observer_config cfg = { 0 };
	struct endpoint a = { "192.0.2.1", 40000 }, b = { "192.0.2.2", 443 };
	struct timeval ts = { 1700000000, 0 };
	struct cursor in, text;
	struct obs_conn *c = NULL;
	struct keylog *kl = NULL;
	uint64_t seq[2] = { 0, 0 };
	bool app[2] = { false, false };
	uint8_t mode, side;
	uint16_t kl_len;

	if (!certs)
		certs = cert_cache_new(64);
	cursor_init(&in, data, size);
	if (!cursor_get_u8(&in, &mode) || !cursor_get_u16(&in, &kl_len) ||
	    !cursor_get_bytes(&in, &text, kl_len < cursor_len(&in) ? kl_len : cursor_len(&in)))
		return 0;
	kl = keylog_new(NULL, NULL);
	if (!kl)
		return 0;
	keylog_add_text(kl, "fuzz", cursor_data(&text), cursor_len(&text));
	keylog_add_text(kl, "rfc8448", (const uint8_t *)rfc_keylog, sizeof(rfc_keylog) - 1);
	cfg.certs = certs;
	cfg.keylog = kl;
	cfg.keylog_wait = (mode & 2) != 0;
	c = obs_conn_new(&cfg, &a, &b, &ts, true);
	if (!c)
		goto Exit;
	if (mode & 1) {
		obs_conn_feed(c, SIDE_CLIENT, client_hello, sizeof(client_hello), &ts);
		obs_conn_feed(c, SIDE_SERVER, server_hello, sizeof(server_hello), &ts);
	}
	while (cursor_get_u8(&in, &side)) {
		struct cursor chunk;
		uint8_t type = 0;
		uint16_t len;

		if ((mode & 1) && !cursor_get_u8(&in, &type))
			break;
		if (!cursor_get_u16(&in, &len))
			break;
		if (!cursor_get_bytes(&in, &chunk, len < cursor_len(&in) ? len : cursor_len(&in)))
			break;
		ts.tv_usec += 10;
		if (side == 0xff) {
			obs_conn_gap(c, SIDE_CLIENT, len, &ts);
		} else if (mode & 1) {
			int s = side & 1;
			size_t n = seal(s, app[s], seq[s]++, type, &chunk, sealed, sizeof(sealed));
			uint8_t first;

			if (n)
				obs_conn_feed(c, s ? SIDE_SERVER : SIDE_CLIENT, sealed, n, &ts);
			/* the sender's records after its Finished use the application keys */
			if (!app[s] && type == TLS_CT_HANDSHAKE && cursor_peek_u8(&chunk, 0, &first) &&
			    first == TLS_HS_FINISHED) {
				app[s] = true;
				seq[s] = 0;
			}
		} else {
			obs_conn_feed(c, (side & 1) ? SIDE_SERVER : SIDE_CLIENT, cursor_data(&chunk),
				      cursor_len(&chunk), &ts);
		}
		if (obs_conn_awaiting_keys(c)) {
			keylog_refresh(kl);
			obs_conn_retry_keys(c);
		}
	}
	obs_conn_close(c, SIDE_SERVER, CLOSE_FIN, &ts);
	fuzz_finish_and_report(c, &ts);
Exit:
	obs_conn_free(c);
	keylog_free(kl);
	return 0;
}
