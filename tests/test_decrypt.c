/* Tests for decryption with a key log: the TLS 1.3 key schedule and record
 * opening against RFC 8448's published trace (known answers), the trace
 * through the observer, real s_client/s_server connections for every
 * cipher family (tests/data/keylog), wrong and corrupted key logs, damaged
 * records, handshakes that take a detour (a HelloRetryRequest,
 * tests/data/hrr; an Apache renegotiation, tests/data/reneg) with and
 * without their key logs, and the HTTP reader. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/codes.h"
#include "wire/cursor.h"
#include "wire/http1.h"
#include "wire/keylog.h"
#include "labtruth.h"
#include "analysis/observer.h"
#include "pipeline.h"
#include "testutil.h"
#include "wire/tls.h"
#include "wire/tlscrypt.h"
#include "wire/x509info.h"

static uint8_t *rfc(const char *name, size_t *len)
{
	char rel[128];
	size_t n;
	uint8_t *text, *bytes;
	char *z;

	snprintf(rel, sizeof(rel), "tests/data/rfc8448/%s", name);
	text = test_load(rel, &n);
	z = malloc(n + 1);
	cr_assert_not_null(z);
	memcpy(z, text, n);
	z[n] = '\0';
	bytes = test_unhex(z, len);
	free(z);
	free(text);
	return bytes;
}

static void assert_hex(const uint8_t *got, size_t len, const char *want_hex, const char *what)
{
	size_t n;
	uint8_t *want = test_unhex(want_hex, &n);

	cr_assert_eq(len, n, "%s: %zu bytes, want %zu", what, len, n);
	cr_assert(memcmp(got, want, n) == 0, "%s differs from RFC 8448", what);
	free(want);
}

/* ---- RFC 8448 section 3: key schedule ---- */

static const struct {
	const char *what, *secret, *key, *iv;
} rfc8448_keys[] = {
	{ "server handshake",
	  "b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38",
	  "3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc", "5d 31 3e b2 67 12 76 ee 13 00 0b 30" },
	{ "client handshake",
	  "b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f 3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21",
	  "db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01", "5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f" },
	{ "server application",
	  "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43",
	  "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56", "cf 78 2b 88 dd 83 54 9a ad f1 e9 84" },
	{ "client application",
	  "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5",
	  "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51", "5b 78 92 3d ee 08 57 90 33 e5 23 d9" },
};

Test(rfc8448, traffic_secrets_give_the_published_keys_and_ivs)
{
	const struct tlscrypt_suite *s = tlscrypt_suite(0x1301);
	size_t i;

	cr_assert_not_null(s);
	cr_assert_str_eq(s->name, "TLS_AES_128_GCM_SHA256");
	for (i = 0; i < sizeof(rfc8448_keys) / sizeof(rfc8448_keys[0]); i++) {
		struct tlscrypt_keys k;
		size_t n;
		uint8_t *secret = test_unhex(rfc8448_keys[i].secret, &n);

		cr_assert(tlscrypt13_keys(s, secret, n, &k), "%s", rfc8448_keys[i].what);
		assert_hex(k.key, s->key_len, rfc8448_keys[i].key, rfc8448_keys[i].what);
		assert_hex(k.iv, s->fixed_iv_len, rfc8448_keys[i].iv, rfc8448_keys[i].what);
		free(secret);
	}
}

/* Opens a whole record (header included) with the keys of a secret at a
 * sequence number. */
static enum tlscrypt_result open_at(const char *secret_hex, const uint8_t *rec, size_t rec_len, uint64_t seq,
				    uint8_t *out, struct cursor *plain, uint8_t *inner)
{
	const struct tlscrypt_suite *s = tlscrypt_suite(0x1301);
	struct tlscrypt_keys k;
	struct tlscrypt_dir d;
	struct cursor c, body;
	uint8_t type = 0;
	uint16_t version = 0, len = 0;
	size_t n;
	uint8_t *secret = test_unhex(secret_hex, &n);
	enum tlscrypt_result r;

	cr_assert(tlscrypt13_keys(s, secret, n, &k));
	free(secret);
	tlscrypt_dir_init(&d);
	cr_assert(tlscrypt_dir_set(&d, s, TLS_V_1_3, false, &k));
	d.seq = seq;
	cursor_init(&c, rec, rec_len);
	cr_assert(cursor_get_u8(&c, &type) && cursor_get_u16(&c, &version) && cursor_get_u16(&c, &len));
	cr_assert(cursor_get_bytes(&c, &body, len));
	r = tlscrypt_open(&d, type, version, &body, out, TLS_MAX_RECORD, plain, inner);
	if (r == TC_OK)
		cr_assert_eq(d.seq, seq + 1, "the sequence number advances");
	tlscrypt_dir_clear(&d);
	return r;
}

Test(rfc8448, the_protected_records_open_to_the_published_plaintext)
{
	static uint8_t out[TLS_MAX_RECORD];
	uint8_t payload[50], inner = 0, *rec, *want;
	struct cursor plain;
	size_t n, wn, i;

	for (i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)i;

	/* the server's flight: EncryptedExtensions, Certificate,
	 * CertificateVerify and Finished in one handshake record */
	rec = rfc("server_flight_record.hex", &n);
	want = rfc("server_flight_plain.hex", &wn);
	cr_assert_eq(open_at(rfc8448_keys[0].secret, rec, n, 0, out, &plain, &inner), TC_OK);
	cr_assert_eq(inner, TLS_CT_HANDSHAKE);
	cr_assert_eq(cursor_len(&plain), wn);
	cr_assert(memcmp(cursor_data(&plain), want, wn) == 0);
	free(rec);
	free(want);

	rec = rfc("client_finished_record.hex", &n);
	want = rfc("client_finished_plain.hex", &wn);
	cr_assert_eq(open_at(rfc8448_keys[1].secret, rec, n, 0, out, &plain, &inner), TC_OK);
	cr_assert_eq(inner, TLS_CT_HANDSHAKE);
	cr_assert_eq(cursor_len(&plain), wn);
	cr_assert(memcmp(cursor_data(&plain), want, wn) == 0);
	free(rec);
	free(want);

	/* application data: the client's first record, the server's second
	 * (after its NewSessionTicket): the nonce is iv XOR 1 */
	rec = rfc("client_app_record.hex", &n);
	cr_assert_eq(open_at(rfc8448_keys[3].secret, rec, n, 0, out, &plain, &inner), TC_OK);
	cr_assert_eq(inner, TLS_CT_APPLICATION_DATA);
	cr_assert_eq(cursor_len(&plain), sizeof(payload));
	cr_assert(memcmp(cursor_data(&plain), payload, sizeof(payload)) == 0);
	free(rec);
	rec = rfc("server_app_record.hex", &n);
	cr_assert_eq(open_at(rfc8448_keys[2].secret, rec, n, 1, out, &plain, &inner), TC_OK);
	cr_assert_eq(inner, TLS_CT_APPLICATION_DATA);
	cr_assert(memcmp(cursor_data(&plain), payload, sizeof(payload)) == 0);
	free(rec);
}

Test(rfc8448, wrong_keys_sequence_numbers_and_bytes_do_not_open)
{
	static uint8_t out[TLS_MAX_RECORD];
	uint8_t inner, *rec;
	struct cursor plain;
	size_t n;

	rec = rfc("client_app_record.hex", &n);
	cr_assert_eq(open_at(rfc8448_keys[3].secret, rec, n, 1, out, &plain, &inner), TC_BAD_AUTH, "wrong sequence");
	cr_assert_eq(open_at(rfc8448_keys[2].secret, rec, n, 0, out, &plain, &inner), TC_BAD_AUTH, "the other side's key");
	rec[n - 1] ^= 1;
	cr_assert_eq(open_at(rfc8448_keys[3].secret, rec, n, 0, out, &plain, &inner), TC_BAD_AUTH, "a tag bit");
	rec[n - 1] ^= 1;
	rec[10] ^= 0x80;
	cr_assert_eq(open_at(rfc8448_keys[3].secret, rec, n, 0, out, &plain, &inner), TC_BAD_AUTH, "a ciphertext bit");
	rec[10] ^= 0x80;
	rec[4] = 0x10;   /* a 16-byte body: a tag and no content type */
	cr_assert_eq(open_at(rfc8448_keys[3].secret, rec, 5 + 16, 0, out, &plain, &inner), TC_MALFORMED);
	rec[4] = 0x00;
	cr_assert_eq(open_at(rfc8448_keys[3].secret, rec, 5, 0, out, &plain, &inner), TC_MALFORMED, "empty");
	free(rec);
}

Test(rfc8448, key_update_derives_the_next_generation_with_traffic_upd)
{
	/* RFC 8446 7.2: _N+1 = HKDF-Expand-Label(_N, "traffic upd", "", Hash.length) */
	const struct tlscrypt_suite *s = tlscrypt_suite(0x1301);
	uint8_t next[32], again[32], *secret;
	size_t n;

	secret = test_unhex(rfc8448_keys[3].secret, &n);
	cr_assert(tlscrypt13_next_secret(s, secret, n, next));
	cr_assert(tlscrypt_hkdf_expand_label("SHA256", secret, n, "traffic upd", NULL, 0, again, sizeof(again)));
	cr_assert(memcmp(next, again, sizeof(next)) == 0);
	cr_assert(memcmp(next, secret, sizeof(next)) != 0);
	cr_assert_not(tlscrypt13_next_secret(s, secret, 48, next), "a secret of the wrong length");
	free(secret);
}

/* ---- RFC 8448 through the observer ---- */

struct trace {
	uint8_t *client, *server;       /* each side's stream */
	size_t client_len, server_len;
};

static void add_record(uint8_t **buf, size_t *len, uint8_t type, const uint8_t *body, size_t n)
{
	uint8_t hdr[5] = { type, 3, type == TLS_CT_HANDSHAKE ? 1 : 3, (uint8_t)(n >> 8), (uint8_t)n };
	size_t cap = *len + 5 + n;

	*buf = realloc(*buf, cap);
	cr_assert_not_null(*buf);
	memcpy(*buf + *len, hdr, 5);
	memcpy(*buf + *len + 5, body, n);
	*len += 5 + n;
}

static void add_raw(uint8_t **buf, size_t *len, const uint8_t *bytes, size_t n)
{
	*buf = realloc(*buf, *len + n);
	cr_assert_not_null(*buf);
	memcpy(*buf + *len, bytes, n);
	*len += n;
}

static void build_trace(struct trace *t)
{
	static const uint8_t ccs = 1;
	uint8_t *b;
	size_t n;

	memset(t, 0, sizeof(*t));
	b = rfc("client_hello.hex", &n);
	add_record(&t->client, &t->client_len, TLS_CT_HANDSHAKE, b, n);
	free(b);
	b = rfc("server_hello.hex", &n);
	add_record(&t->server, &t->server_len, TLS_CT_HANDSHAKE, b, n);
	free(b);
	b = rfc("server_flight_record.hex", &n);
	add_raw(&t->server, &t->server_len, b, n);
	free(b);
	add_record(&t->client, &t->client_len, TLS_CT_CHANGE_CIPHER_SPEC, &ccs, 1);
	b = rfc("client_finished_record.hex", &n);
	add_raw(&t->client, &t->client_len, b, n);
	free(b);
	b = rfc("client_app_record.hex", &n);
	add_raw(&t->client, &t->client_len, b, n);
	free(b);
}

struct run {
	struct cert_cache *certs;
	struct obs_conn *c;
	const struct verdict *v;
	const struct conn_facts *f;
};

/* Feeds the trace, `chunk` bytes at a time (0: whole), then closes. */
static void run_trace(struct run *r, struct keylog *kl, const struct trace *t, size_t chunk)
{
	struct observer_config cfg = { 0 };
	struct endpoint a = { "192.0.2.1", 50000 }, b = { "192.0.2.2", 443 };
	struct timeval ts = { 1700000000, 0 };
	size_t off;

	r->certs = cert_cache_new(16);
	cfg.certs = r->certs;
	cfg.keylog = kl;
	r->c = obs_conn_new(&cfg, &a, &b, &ts, true);
	cr_assert_not_null(r->c);
	if (!chunk)
		chunk = 1 << 20;
	/* the client's hello, the server's flight, the client's answer */
	obs_conn_feed(r->c, SIDE_CLIENT, t->client, 5 + 196, &ts);
	for (off = 0; off < t->server_len; off += chunk)
		obs_conn_feed(r->c, SIDE_SERVER, t->server + off,
			      t->server_len - off < chunk ? t->server_len - off : chunk, &ts);
	for (off = 5 + 196; off < t->client_len; off += chunk)
		obs_conn_feed(r->c, SIDE_CLIENT, t->client + off,
			      t->client_len - off < chunk ? t->client_len - off : chunk, &ts);
	obs_conn_close(r->c, SIDE_CLIENT, CLOSE_FIN, &ts);
	r->v = obs_conn_finish(r->c, false, &ts);
	r->f = obs_conn_facts(r->c);
}

static void run_free(struct run *r)
{
	obs_conn_free(r->c);
	cert_cache_free(r->certs);
}

static struct keylog *rfc_keylog(void)
{
	struct keylog *kl = keylog_new(NULL, NULL);
	char err[256];

	cr_assert(keylog_add_file(kl, test_path("tests/data/rfc8448/secrets.keylog"), false, err, sizeof(err)), "%s", err);
	cr_assert_eq(keylog_entries(kl), 1);
	return kl;
}

static bool evidence_has(const struct verdict *v, const char *needle)
{
	size_t i;

	for (i = 0; i < v->n_evidence; i++)
		if (strstr(v->evidence[i], needle))
			return true;
	return false;
}

Test(rfc8448, the_trace_decrypted_by_the_observer)
{
	struct keylog *kl = rfc_keylog();
	struct trace t;
	struct run r;
	size_t chunk;

	build_trace(&t);
	/* whole, and split at every record and message boundary the hard way */
	for (chunk = 0; chunk <= 7; chunk += 7) {
		run_trace(&r, kl, &t, chunk);
		cr_assert_eq(r.f->keylog, KEYLOG_DECRYPTED, "chunk %zu: %s", chunk, r.f->keylog_note);
		cr_assert_eq(r.f->dir[SIDE_SERVER].decrypted, 1);
		cr_assert_eq(r.f->dir[SIDE_CLIENT].decrypted, 2, "Finished and application data");
		cr_assert_eq(r.f->dir[SIDE_CLIENT].undecrypted + r.f->dir[SIDE_SERVER].undecrypted, 0);
		cr_assert(r.f->server_cert_seen, "the encrypted Certificate was read");
		cr_assert_eq(r.f->server_chain.n, 1);
		cr_assert_str_eq(r.f->server_chain.certs[0].subject, "CN=rsa");
		cr_assert(r.f->dir[SIDE_SERVER].finished_seen && r.f->dir[SIDE_CLIENT].finished_seen);
		cr_assert_not(r.f->cr.seen);
		cr_assert_gt(r.f->dir[SIDE_CLIENT].first_app_seq, 0);
		cr_assert_eq(r.v->code, V_CERT_NOT_REQUESTED);
		cr_assert_eq(r.v->basis, B_DECRYPTED);
		cr_assert(evidence_has(r.v, "has no CertificateRequest"));
		cr_assert(evidence_has(r.v, "decrypted with the key log: 2 client and 1 server records"));
		run_free(&r);
	}
	free(t.client);
	free(t.server);
	keylog_free(kl);
}

Test(rfc8448, without_keys_the_record_sizes_and_with_the_wrong_keys_the_same)
{
	static const char other[] =
		"CLIENT_HANDSHAKE_TRAFFIC_SECRET 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff "
		"b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21\n";
	static const char corrupt[] =
		"CLIENT_HANDSHAKE_TRAFFIC_SECRET cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7 "
		"b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a22\n"
		"SERVER_HANDSHAKE_TRAFFIC_SECRET cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7 "
		"b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad39\n";
	struct keylog *kl;
	struct trace t;
	struct run r;

	build_trace(&t);
	run_trace(&r, NULL, &t, 0);
	cr_assert_eq(r.f->keylog, KEYLOG_UNUSED);
	cr_assert_eq(r.v->code, V_CERT_NOT_REQUESTED);
	cr_assert_eq(r.v->basis, B_INFERRED, "a lone 53-byte Finished");
	cr_assert_not(r.f->server_cert_seen);
	run_free(&r);

	kl = keylog_new(NULL, NULL);
	keylog_add_text(kl, "other", (const uint8_t *)other, strlen(other));
	run_trace(&r, kl, &t, 0);
	cr_assert_eq(r.f->keylog, KEYLOG_NO_ENTRY);
	cr_assert_eq(r.v->code, V_CERT_NOT_REQUESTED);
	cr_assert_eq(r.v->basis, B_INFERRED, "the keyless rules");
	cr_assert(evidence_has(r.v, "key log has no entry for this client random (cb34ecb1e78163ba...)"));
	run_free(&r);
	keylog_free(kl);

	kl = keylog_new(NULL, NULL);
	keylog_add_text(kl, "corrupt", (const uint8_t *)corrupt, strlen(corrupt));
	run_trace(&r, kl, &t, 0);
	cr_assert_eq(r.f->keylog, KEYLOG_BAD_KEY);
	cr_assert_eq(r.v->code, V_CERT_NOT_REQUESTED);
	cr_assert_eq(r.v->basis, B_INFERRED, "the keyless rules");
	cr_assert(evidence_has(r.v, "the key does not decrypt"));
	cr_assert_not(r.f->server_cert_seen);
	run_free(&r);
	keylog_free(kl);
	free(t.client);
	free(t.server);
}

/* ---- real connections (tests/data/keylog) ---- */

struct fixture {
	const char *name;
	uint16_t version, cipher;
	const char *verdict, *reason;
	int http_status;
	int server_alert;               /* a decrypted alert description, or -1 */
};

static const struct fixture fixtures[] = {
	{ "tls13_chacha20_good", TLS_V_1_3, 0x1303, "client_cert_accepted", "", 200, -1 },
	{ "tls13_aes128gcm_notrequested", TLS_V_1_3, 0x1301, "cert_not_requested", "", 200, -1 },
	{ "tls13_aes128ccm_nocert", TLS_V_1_3, 0x1304, "client_sent_no_cert", "", 0, 116 },
	{ "tls13_aes128ccm8_expired", TLS_V_1_3, 0x1305, "server_rejected_chain", "expired", 0, 45 },
	{ "tls13_pha_keyupdate", TLS_V_1_3, 0x1302, "client_cert_accepted", "", 0, -1 },
	{ "tls12_chacha20_good", TLS_V_1_2, 0xcca8, "client_cert_accepted", "", 200, -1 },
	{ "tls12_aes128ccm_good", TLS_V_1_2, 0xc09c, "client_cert_accepted", "", 200, -1 },
	{ "tls12_aes128gcm_dhe_nocert", TLS_V_1_2, 0x009e, "no_cert_accepted", "", 200, -1 },
	{ "tls12_aes128sha_etm", TLS_V_1_2, 0x002f, "cert_not_requested", "", 200, -1 },
	{ "tls12_aes256sha384_mte", TLS_V_1_2, 0xc028, "client_cert_accepted", "", 200, -1 },
	{ "tls12_aes256sha256_expired", TLS_V_1_2, 0x003d, "client_cert_accepted", "", 200, -1 },
	{ "tls11_aes128sha", TLS_V_1_1, 0x002f, "cert_not_requested", "", 200, -1 },
	{ "tls10_aes256sha_mte", TLS_V_1_0, 0xc014, "cert_not_requested", "", 200, -1 },
};

static struct keylog *fixture_keylog(const char *name)
{
	struct keylog *kl = keylog_new(NULL, NULL);
	char rel[128], err[256];

	snprintf(rel, sizeof(rel), "tests/data/keylog/%s.keylog", name);
	cr_assert(keylog_add_file(kl, test_path(rel), false, err, sizeof(err)), "%s", err);
	return kl;
}

static const char *fixture_pcap(const char *name)
{
	static char rel[128];

	snprintf(rel, sizeof(rel), "tests/data/keylog/%s.pcap", name);
	return test_path(rel);
}

Test(fixtures, every_cipher_family_decrypts_to_the_right_answer)
{
	size_t i, k;

	for (i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		const struct fixture *x = &fixtures[i];
		struct keylog *kl = fixture_keylog(x->name);
		struct pipeline_result r;
		const struct conn_facts *f;
		const struct verdict *v;
		const char *reason;
		bool alert_found = x->server_alert < 0;

		pipeline_run_keylog(fixture_pcap(x->name), 0, kl, &r);
		cr_assert_eq(r.status, 0, "%s: %s", x->name, r.err);
		cr_assert_eq(r.n, 1, "%s", x->name);
		f = r.conns[0].facts;
		v = r.conns[0].verdict;
		reason = reason_code_name(v->reason);
		cr_assert_eq(f->sh.selected_version, x->version, "%s", x->name);
		cr_assert_eq(f->sh.cipher, x->cipher, "%s: cipher 0x%04x", x->name, f->sh.cipher);
		cr_assert_eq(f->keylog, KEYLOG_DECRYPTED, "%s: %s", x->name, f->keylog_note);
		cr_assert_eq(f->dir[SIDE_CLIENT].undecrypted + f->dir[SIDE_SERVER].undecrypted, 0,
			     "%s: every protected record opens", x->name);
		cr_assert_gt(f->dir[SIDE_CLIENT].decrypted, 0, "%s", x->name);
		cr_assert_gt(f->dir[SIDE_SERVER].decrypted, 0, "%s", x->name);
		cr_assert_str_eq(verdict_code_name(v->code), x->verdict, "%s", x->name);
		cr_assert_str_eq(reason ? reason : "", x->reason, "%s", x->name);
		cr_assert_eq(f->http_status, x->http_status, "%s: HTTP %d", x->name, f->http_status);
		if (x->http_status) {
			cr_assert_str_eq(f->http_request, "GET / HTTP/1.0", "%s", x->name);
			cr_assert_str_eq(f->http_reason, "ok", "%s: s_server -www says \"200 ok\"", x->name);
		}
		/* 1.3: everything was read decrypted; below, what the HTTP
		 * answer decided, while a plaintext ServerHelloDone without a
		 * request is observed */
		cr_assert_eq(v->basis, x->version == TLS_V_1_3 || v->code != V_CERT_NOT_REQUESTED ? B_DECRYPTED : B_OBSERVED,
			     "%s: basis %s", x->name, basis_name(v->basis));
		for (k = 0; k < f->n_alerts; k++) {
			const struct alert *a = &f->alerts[k];

			cr_assert(a->encrypted && a->decrypted, "%s: alert %zu was read", x->name, k);
			if (a->from == SIDE_SERVER && a->description == x->server_alert) {
				cr_assert_eq(a->level, 2, "%s", x->name);
				alert_found = true;
			}
		}
		cr_assert(alert_found, "%s: the server's alert %d", x->name, x->server_alert);
		pipeline_free(&r);
		keylog_free(kl);
	}
}

Test(fixtures, encrypt_then_mac_as_negotiated)
{
	struct pipeline_result r;
	struct keylog *kl = fixture_keylog("tls12_aes128sha_etm");

	pipeline_run_keylog(fixture_pcap("tls12_aes128sha_etm"), 0, kl, &r);
	cr_assert(r.conns[0].facts->sh.encrypt_then_mac);
	pipeline_free(&r);
	keylog_free(kl);
	kl = fixture_keylog("tls12_aes256sha384_mte");
	pipeline_run_keylog(fixture_pcap("tls12_aes256sha384_mte"), 0, kl, &r);
	cr_assert_not(r.conns[0].facts->sh.encrypt_then_mac);
	pipeline_free(&r);
	keylog_free(kl);
}

Test(fixtures, post_handshake_authentication_and_key_updates)
{
	struct keylog *kl = fixture_keylog("tls13_pha_keyupdate");
	struct pipeline_result r;
	const struct conn_facts *f;
	const struct verdict *v;

	pipeline_run_keylog(fixture_pcap("tls13_pha_keyupdate"), 0, kl, &r);
	f = r.conns[0].facts;
	v = r.conns[0].verdict;
	cr_assert(f->ch.post_handshake_auth);
	cr_assert(f->cr.seen && f->cr.post_handshake, "the request came after the handshake");
	cr_assert_gt(f->cr.seq, f->dir[SIDE_CLIENT].first_app_seq, "after the client's first data");
	cr_assert(f->client_cert_seen && !f->client_cert_empty);
	cr_assert_str_eq(f->client_chain.certs[0].subject, "CN=good-client, O=mtlsdiag Lab");
	cr_assert(f->client_cert_verify_seen);
	cr_assert_geq(f->dir[SIDE_CLIENT].key_updates, 1);
	cr_assert_geq(f->dir[SIDE_SERVER].key_updates, 2, "the one asked for and its own");
	cr_assert_eq(f->dir[SIDE_CLIENT].undecrypted + f->dir[SIDE_SERVER].undecrypted, 0,
		     "data under every generation opens");
	cr_assert_eq(v->code, V_CLIENT_CERT_ACCEPTED);
	cr_assert_eq(v->basis, B_DECRYPTED);
	cr_assert(evidence_has(v, "after the handshake"));
	pipeline_free(&r);
	keylog_free(kl);

	/* without the key log the post-handshake request is invisible */
	pipeline_run(fixture_pcap("tls13_pha_keyupdate"), 0, &r);
	cr_assert_not(r.conns[0].facts->cr.seen);
	cr_assert_eq(r.conns[0].verdict->code, V_CERT_NOT_REQUESTED);
	cr_assert(evidence_has(r.conns[0].verdict, "post-handshake authentication"));
	pipeline_free(&r);
}

Test(fixtures, a_key_log_missing_the_application_secrets)
{
	/* only the handshake secrets: the handshake is read, the answer stays
	 * encrypted and the evidence says which secret is missing */
	struct keylog *kl = keylog_new(NULL, NULL);
	size_t n, i;
	uint8_t *text = test_load("tests/data/keylog/tls13_chacha20_good.keylog", &n);
	char *lines = malloc(n + 1), *line, *save = NULL;
	struct pipeline_result r;
	const struct conn_facts *f;

	memcpy(lines, text, n);
	lines[n] = '\0';
	for (line = strtok_r(lines, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (strstr(line, "HANDSHAKE_TRAFFIC_SECRET"))
			keylog_add_text(kl, "hs", (const uint8_t *)line, strlen(line));
	pipeline_run_keylog(fixture_pcap("tls13_chacha20_good"), 0, kl, &r);
	f = r.conns[0].facts;
	cr_assert_eq(f->keylog, KEYLOG_MISSING_SECRET);
	cr_assert(strstr(f->keylog_note, "TRAFFIC_SECRET_0"), "%s", f->keylog_note);
	cr_assert(f->client_cert_seen, "the handshake was read");
	cr_assert_eq(f->http_status, 0);
	cr_assert_eq(r.conns[0].verdict->code, V_CLIENT_CERT_ACCEPTED);
	for (i = 0; i < r.conns[0].verdict->n_evidence; i++)
		if (strstr(r.conns[0].verdict->evidence[i], "TRAFFIC_SECRET_0"))
			break;
	cr_assert_lt(i, r.conns[0].verdict->n_evidence, "the evidence names the missing secret");
	pipeline_free(&r);
	keylog_free(kl);
	free(lines);
	free(text);
}

/* Damaged bytes with the right key log: records that do not open are
 * reported, nothing crashes or hangs.  A bit is flipped every few hundred
 * bytes of the capture, at eight different phases. */
Test(fixtures, damaged_records_never_crash, .timeout = 120)
{
	size_t i;

	for (i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		struct keylog *kl = fixture_keylog(fixtures[i].name);
		char rel[128];
		size_t k, pos, len;
		uint8_t *orig;

		snprintf(rel, sizeof(rel), "tests/data/keylog/%s.pcap", fixtures[i].name);
		orig = test_load(rel, &len);
		for (k = 0; k < 8; k++) {
			struct pipeline_result r;
			char path[] = "/tmp/mtlsdiag-damaged-XXXXXX";
			uint8_t *cap = malloc(len);
			int fd = mkstemp(path);

			cr_assert(fd >= 0 && cap);
			memcpy(cap, orig, len);
			/* past the file header and the first packets' headers */
			for (pos = 24 + 200 + k * 97; pos < len; pos += 331)
				cap[pos] ^= (uint8_t)(1u << (k % 8));
			cr_assert_eq(write(fd, cap, len), (ssize_t)len);
			close(fd);
			pipeline_run_keylog(path, 0, kl, &r);
			unlink(path);
			cr_assert_eq(r.status, 0, "%s", r.err);
			pipeline_free(&r);
			free(cap);
		}
		free(orig);
		keylog_free(kl);
	}
}

/* ---- a HelloRetryRequest (tests/data/hrr) ---- */

/* openssl s_server -groups P-384 asked curl for a second ClientHello; the
 * lab's openssl_CASE_tls13 is the same server and client case without the
 * detour. */
static const struct {
	const char *client_case;
	const char *keyed, *keyed_reason;  /* with the key log */
	const char *keyless;               /* without: what the lab capture gets */
	int server_alert;
} hrr_cases[] = {
	{ "none", "client_sent_no_cert", "", "client_sent_no_cert", 116 },
	{ "good", "client_cert_accepted", "", "client_cert_accepted", -1 },
	{ "expired", "server_rejected_chain", "expired", "server_rejected_chain", 45 },
};

static struct keylog *keylog_of(const char *dir, const char *name)
{
	struct keylog *kl = keylog_new(NULL, NULL);
	char rel[128], err[256];

	snprintf(rel, sizeof(rel), "tests/data/%s/%s.keylog", dir, name);
	cr_assert(keylog_add_file(kl, test_path(rel), false, err, sizeof(err)), "%s", err);
	return kl;
}

static const char *pcap_of(const char *dir, const char *name)
{
	static char rel[128];

	snprintf(rel, sizeof(rel), "tests/data/%s/%s.pcap", dir, name);
	return test_path(rel);
}

static void got_of(const struct verdict *v, struct lab_got *got)
{
	const char *reason = reason_code_name(v->reason);

	got->verdict = verdict_code_name(v->code);
	got->reason = reason ? reason : "";
	got->fault = fault_name(v->fault);
	got->basis = basis_name(v->basis);
}

/* The second hellos are read in plaintext (the ChangeCipherSpec each side
 * sent around the HelloRetryRequest is the 1.3 dummy), the ServerHello that
 * counts is the second. */
static void assert_hrr_facts(const char *name, const struct conn_facts *f)
{
	cr_assert(f->sh.seen, "%s", name);
	cr_assert_not(f->sh.hello_retry, "%s: the last ServerHello is the real one", name);
	cr_assert_eq(f->sh.n_hrr, 1, "%s", name);
	cr_assert_eq(f->sh.selected_version, TLS_V_1_3, "%s", name);
	cr_assert_eq(f->n_client_hellos, 2, "%s", name);
	cr_assert_str_empty(f->decode_error, "%s: %s", name, f->decode_error);
	cr_assert_not(f->dir[SIDE_CLIENT].desync || f->dir[SIDE_SERVER].desync, "%s", name);
	cr_assert_gt(f->dir[SIDE_CLIENT].n_enc, 0, "%s", name);
	cr_assert_gt(f->dir[SIDE_SERVER].n_enc, 0, "%s", name);
	cr_assert_gt(f->dir[SIDE_CLIENT].enc[0].seq, f->sh.seq, "%s: the second ClientHello is not an encrypted record", name);
}

Test(hrr, with_the_key_log_the_same_verdict_as_without_the_retry)
{
	struct lab_truth truth;
	char err[256];
	size_t i, k;

	cr_assert(lab_truth_load(&truth, lab_truth_path("truth.tsv"), err, sizeof(err)), "%s", err);
	for (i = 0; i < sizeof(hrr_cases) / sizeof(hrr_cases[0]); i++) {
		char name[64], lab[64];
		struct keylog *kl;
		struct pipeline_result r;
		const struct conn_facts *f;
		const struct verdict *v;
		const struct lab_case *row;
		struct lab_got got;
		bool alert_found = hrr_cases[i].server_alert < 0;

		snprintf(name, sizeof(name), "openssl_%s_tls13_hrr", hrr_cases[i].client_case);
		snprintf(lab, sizeof(lab), "openssl_%s_tls13", hrr_cases[i].client_case);
		kl = keylog_of("hrr", name);
		pipeline_run_keylog(pcap_of("hrr", name), 0, kl, &r);
		cr_assert_eq(r.status, 0, "%s: %s", name, r.err);
		cr_assert_eq(r.n, 1, "%s", name);
		f = r.conns[0].facts;
		v = r.conns[0].verdict;
		assert_hrr_facts(name, f);
		cr_assert_eq(f->keylog, KEYLOG_DECRYPTED, "%s: %s", name, f->keylog_note);
		cr_assert_eq(f->dir[SIDE_CLIENT].undecrypted + f->dir[SIDE_SERVER].undecrypted, 0,
			     "%s: every protected record opens", name);
		cr_assert(f->cr.seen && f->cr.decrypted, "%s: the CertificateRequest was read", name);
		got_of(v, &got);
		cr_assert_str_eq(got.verdict, hrr_cases[i].keyed, "%s", name);
		cr_assert_str_eq(got.reason, hrr_cases[i].keyed_reason, "%s", name);
		cr_assert_eq(v->basis, B_DECRYPTED, "%s", name);
		cr_assert(evidence_has(v, "HelloRetryRequest"), "%s", name);
		/* the truth of the same server and client case without the retry */
		row = lab_truth_find(&truth, lab);
		cr_assert_not_null(row, "%s: no truth row", lab);
		cr_assert_str_eq(got.verdict, row->verdict, "%s: the truth of %s", name, lab);
		cr_assert_str_eq(got.reason, row->reason, "%s: the truth of %s", name, lab);
		cr_assert_str_eq(got.fault, row->fault, "%s: the truth of %s", name, lab);
		if (!strcmp(hrr_cases[i].client_case, "good")) {
			cr_assert_eq(f->http_status, 200, "%s", name);
			cr_assert_str_eq(f->client_chain.certs[0].subject, "CN=good-client, O=mtlsdiag Lab");
		}
		for (k = 0; k < f->n_alerts; k++)
			if (f->alerts[k].from == SIDE_SERVER && f->alerts[k].decrypted &&
			    f->alerts[k].description == hrr_cases[i].server_alert)
				alert_found = true;
		cr_assert(alert_found, "%s: the server's alert %d", name, hrr_cases[i].server_alert);
		pipeline_free(&r);
		keylog_free(kl);
	}
	lab_truth_free(&truth);
}

Test(hrr, without_the_key_log_the_same_verdict_as_the_lab_capture)
{
	size_t i;

	for (i = 0; i < sizeof(hrr_cases) / sizeof(hrr_cases[0]); i++) {
		char name[64], rel[128];
		struct pipeline_result r, lab;
		const struct verdict *v, *lv;

		snprintf(name, sizeof(name), "openssl_%s_tls13_hrr", hrr_cases[i].client_case);
		snprintf(rel, sizeof(rel), "captures/openssl_%s_tls13.pcap", hrr_cases[i].client_case);
		pipeline_run(pcap_of("hrr", name), 0, &r);
		pipeline_run(lab_truth_path(rel), 0, &lab);
		cr_assert_eq(r.status, 0, "%s: %s", name, r.err);
		cr_assert_eq(lab.status, 0, "%s: %s", rel, lab.err);
		cr_assert_eq(r.n, 1, "%s", name);
		cr_assert_eq(lab.n, 1, "%s", rel);
		assert_hrr_facts(name, r.conns[0].facts);
		v = r.conns[0].verdict;
		lv = lab.conns[0].verdict;
		cr_assert_str_eq(verdict_code_name(v->code), hrr_cases[i].keyless, "%s", name);
		cr_assert_eq(v->code, lv->code, "%s: %s, the lab's %s", name, verdict_code_name(v->code),
			     verdict_code_name(lv->code));
		cr_assert_eq(v->reason, lv->reason, "%s", name);
		cr_assert_eq(v->fault, lv->fault, "%s", name);
		cr_assert_eq(v->basis, lv->basis, "%s", name);
		cr_assert(evidence_has(v, "HelloRetryRequest"), "%s", name);
		pipeline_free(&r);
		pipeline_free(&lab);
	}
}

/* Writes the first n packets of a capture (little-endian pcap) to a
 * temporary file, whose path is left in path. */
static void capture_head(const char *rel, size_t n, char *path)
{
	size_t len;
	uint8_t *cap = test_load(rel, &len);
	struct cursor c, rec;
	uint32_t caplen;
	size_t kept = 0;
	int fd;

	cursor_init(&c, cap, len);
	cr_assert(cursor_skip(&c, 24), "%s: no file header", rel);
	while (kept < n && cursor_len(&c)) {
		struct cursor hdr = c;

		cr_assert(cursor_skip(&hdr, 8) && cursor_get_u32le(&hdr, &caplen), "%s", rel);
		cr_assert(cursor_get_bytes(&c, &rec, 16 + (size_t)caplen), "%s: a packet is cut", rel);
		kept++;
	}
	fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, cap, len - cursor_len(&c)), (ssize_t)(len - cursor_len(&c)));
	close(fd);
	free(cap);
}

Test(hrr, a_capture_that_ends_after_the_retry_says_so)
{
	char path[] = "/tmp/mtlsdiag-hrr-XXXXXX";
	struct pipeline_result r;
	const struct conn_facts *f;

	/* the TCP handshake, the ClientHello, the HelloRetryRequest and the
	 * second ClientHello: no ServerHello answered it */
	capture_head("tests/data/hrr/openssl_none_tls13_hrr.pcap", 8, path);
	pipeline_run(path, 0, &r);
	unlink(path);
	cr_assert_eq(r.n, 1);
	f = r.conns[0].facts;
	cr_assert(f->sh.hello_retry);
	cr_assert_eq(f->n_client_hellos, 2);
	cr_assert_eq(f->dir[SIDE_CLIENT].n_enc, 0, "the second ClientHello was read as a hello");
	cr_assert_str_empty(f->decode_error, "%s", f->decode_error);
	cr_assert_eq(r.conns[0].verdict->code, V_INCOMPLETE);
	cr_assert(evidence_has(r.conns[0].verdict, "HelloRetryRequest"));
	pipeline_free(&r);
}

/* ---- a TLS 1.2 renegotiation (tests/data/reneg) ---- */

/* Apache with SSLVerifyClient require for /secure only: it reads the
 * request, then renegotiates inside the protected stream to ask for a
 * certificate.  The renegotiation's master secret is the key log's second
 * CLIENT_RANDOM line, named by the second ClientHello.random. */
Test(reneg, the_certificate_asked_for_in_a_renegotiation_accepted)
{
	struct keylog *kl = keylog_of("reneg", "apache_good_tls12_reneg");
	struct pipeline_result r;
	const struct conn_facts *f;
	const struct verdict *v;
	size_t k;

	cr_assert_eq(keylog_entries(kl), 2);
	pipeline_run_keylog(pcap_of("reneg", "apache_good_tls12_reneg"), 0, kl, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(r.n, 1);
	f = r.conns[0].facts;
	v = r.conns[0].verdict;
	cr_assert_eq(f->sh.selected_version, TLS_V_1_2);
	cr_assert_eq(f->renegotiations, 1);
	cr_assert_eq(f->n_client_hellos, 2);
	cr_assert_eq(f->keylog, KEYLOG_DECRYPTED, "%s", f->keylog_note);
	cr_assert_eq(f->dir[SIDE_CLIENT].undecrypted + f->dir[SIDE_SERVER].undecrypted, 0,
		     "the records of both epochs open");
	cr_assert(f->cr.seen && f->cr.decrypted, "the request is inside the renegotiation");
	cr_assert_eq(f->cr.n_ca_names, 1);
	cr_assert(f->client_cert_seen && f->client_cert_decrypted && !f->client_cert_empty);
	cr_assert_str_eq(f->client_chain.certs[0].subject, "CN=good-client, O=mtlsdiag Lab");
	cr_assert_str_eq(f->http_request, "GET /secure/x HTTP/1.1");
	cr_assert_eq(f->http_status, 200, "the answer after the renegotiation, under its keys");
	for (k = 0; k < f->n_alerts; k++)
		cr_assert(f->alerts[k].decrypted && f->alerts[k].description == 0,
			  "alert %zu: close_notify under the new keys", k);
	cr_assert_eq(v->code, V_CLIENT_CERT_ACCEPTED, "%s", verdict_code_name(v->code));
	cr_assert_eq(v->fault, F_NONE);
	cr_assert_eq(v->basis, B_DECRYPTED);
	cr_assert(evidence_has(v, "renegotiation"));
	pipeline_free(&r);
	keylog_free(kl);
}

Test(reneg, no_certificate_in_the_renegotiation)
{
	struct keylog *kl = keylog_of("reneg", "apache_none_tls12_reneg");
	struct pipeline_result r;
	const struct conn_facts *f;
	const struct verdict *v;
	size_t k;
	bool alert_found = false;

	pipeline_run_keylog(pcap_of("reneg", "apache_none_tls12_reneg"), 0, kl, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	f = r.conns[0].facts;
	v = r.conns[0].verdict;
	cr_assert_eq(f->renegotiations, 1);
	cr_assert_eq(f->keylog, KEYLOG_DECRYPTED, "%s", f->keylog_note);
	cr_assert_eq(f->dir[SIDE_CLIENT].undecrypted + f->dir[SIDE_SERVER].undecrypted, 0);
	cr_assert(f->cr.seen && f->cr.decrypted);
	cr_assert(f->client_cert_seen && f->client_cert_empty && f->client_cert_decrypted);
	/* Apache logs 403 for the request but sends no HTTP answer: a fatal
	 * handshake_failure, under the first handshake's keys (it never sent
	 * the renegotiation's ChangeCipherSpec), and the close */
	cr_assert_eq(f->http_status, 0);
	for (k = 0; k < f->n_alerts; k++)
		if (f->alerts[k].from == SIDE_SERVER && f->alerts[k].decrypted &&
		    f->alerts[k].level == 2 && f->alerts[k].description == 40)
			alert_found = true;
	cr_assert(alert_found, "the server's handshake_failure");
	cr_assert_eq(v->code, V_CLIENT_SENT_NO_CERT, "%s", verdict_code_name(v->code));
	cr_assert_eq(v->fault, F_CLIENT);
	cr_assert_eq(v->basis, B_DECRYPTED);
	pipeline_free(&r);
	keylog_free(kl);
}

Test(reneg, without_the_key_log_neither_acceptance_nor_refusal)
{
	static const char *names[] = { "apache_good_tls12_reneg", "apache_none_tls12_reneg" };
	size_t i;

	for (i = 0; i < 2; i++) {
		struct pipeline_result r;
		const struct conn_facts *f;
		const struct verdict *v;

		pipeline_run(pcap_of("reneg", names[i]), 0, &r);
		cr_assert_eq(r.n, 1, "%s", names[i]);
		f = r.conns[0].facts;
		v = r.conns[0].verdict;
		cr_assert_not(f->cr.seen, "%s: the request is encrypted", names[i]);
		cr_assert_not(f->client_cert_seen, "%s", names[i]);
		cr_assert_eq(f->renegotiations, 0, "%s", names[i]);
		cr_assert_gt(f->dir[SIDE_SERVER].enc_handshake_after_done, 0, "%s", names[i]);
		cr_assert_eq(v->code, V_UNDETERMINED, "%s: %s", names[i], verdict_code_name(v->code));
		cr_assert_eq(v->fault, F_UNKNOWN, "%s", names[i]);
		cr_assert_eq(v->cert_requested, TRI_UNKNOWN, "%s: a request may be inside", names[i]);
		cr_assert(evidence_has(v, "renegotiated"), "%s", names[i]);
		pipeline_free(&r);
	}
}

/* A key log with the first handshake's line only: the renegotiation is
 * read up to each side's ChangeCipherSpec, and the evidence names the line
 * that is missing. */
Test(reneg, a_key_log_without_the_renegotiation_line)
{
	struct keylog *kl = keylog_new(NULL, NULL);
	size_t n;
	uint8_t *text = test_load("tests/data/reneg/apache_good_tls12_reneg.keylog", &n);
	const uint8_t *nl = memchr(text, '\n', n);
	struct pipeline_result r;
	const struct conn_facts *f;
	const struct verdict *v;

	cr_assert_not_null(nl);
	keylog_add_text(kl, "first", text, (size_t)(nl - text) + 1);
	cr_assert_eq(keylog_entries(kl), 1);
	pipeline_run_keylog(pcap_of("reneg", "apache_good_tls12_reneg"), 0, kl, &r);
	f = r.conns[0].facts;
	v = r.conns[0].verdict;
	cr_assert_eq(f->renegotiations, 1);
	cr_assert(f->cr.seen && f->client_cert_seen, "read under the first handshake's keys");
	cr_assert_eq(f->http_status, 0, "the answer is under the renegotiation's keys");
	cr_assert_eq(f->keylog, KEYLOG_MISSING_SECRET);
	cr_assert(strstr(f->keylog_note, "renegotiation"), "%s", f->keylog_note);
	cr_assert(evidence_has(v, "no CLIENT_RANDOM for the renegotiation"));
	/* the server's ChangeCipherSpec and Finished followed the chain, which
	 * a server that refuses with an alert (Apache) does only when it
	 * accepts; nginx would too and refuse in the answer, which stays
	 * under the renegotiation's keys: nothing is claimed */
	cr_assert_eq(v->code, V_UNDETERMINED, "%s", verdict_code_name(v->code));
	cr_assert(evidence_has(v, "nginx refuses inside the encrypted stream"));
	pipeline_free(&r);
	keylog_free(kl);
	free(text);
}

/* ---- the HTTP reader ---- */

static enum http1_result response(const char *text, bool complete, struct http1_response *out)
{
	struct cursor c;

	cursor_init(&c, (const uint8_t *)text, strlen(text));
	return http1_response(&c, complete, out);
}

Test(http1, nginx_error_pages)
{
	static const char page[] =
		"HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\n"
		"Content-Length: 237\r\nConnection: close\r\n\r\n"
		"<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n<body>\r\n";
	struct http1_response r;
	char cut[200];

	cr_assert_eq(response(page, false, &r), HTTP1_DONE);
	cr_assert_eq(r.status, 400);
	cr_assert_str_eq(r.reason, "Bad Request");
	cr_assert_str_eq(r.title, "400 No required SSL certificate was sent");
	/* the title still to come */
	snprintf(cut, sizeof(cut), "%.*s", 150, page);
	cr_assert_eq(response(cut, false, &r), HTTP1_MORE);
	cr_assert_eq(response(cut, true, &r), HTTP1_DONE);
	cr_assert_eq(r.status, 400);
	cr_assert_str_eq(r.title, "");
}

/* The Server header names the software for the remedies: its value,
 * whatever the header's case and the blanks before it; only a final
 * response's; binary bytes made printable. */
Test(http1, the_server_header)
{
	struct http1_response r;

	cr_assert_eq(response("HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\n\r\n<title>x</title>", false, &r),
		     HTTP1_DONE);
	cr_assert_str_eq(r.server, "nginx/1.22.1");
	cr_assert_eq(response("HTTP/1.1 200 OK\r\nSERVER:\t  Apache/2.4.57 (Debian)\r\n\r\n", false, &r), HTTP1_DONE);
	cr_assert_str_eq(r.server, "Apache/2.4.57 (Debian)");
	cr_assert_eq(response("HTTP/1.1 103 Early Hints\r\nServer: early\r\n\r\nHTTP/1.1 200 OK\r\nX-Server: no\r\n\r\n",
			      false, &r), HTTP1_DONE);
	cr_assert_str_eq(r.server, "");
	cr_assert_eq(response("HTTP/1.1 200 OK\r\nServer: a\x01" "b\r\n\r\n", false, &r), HTTP1_DONE);
	cr_assert_str_eq(r.server, "a?b");
	cr_assert_eq(response("HTTP/1.1 200 OK\r\nServer:\r\n\r\n", false, &r), HTTP1_DONE);
	cr_assert_str_eq(r.server, "");
}

Test(http1, statuses_interim_and_not_http)
{
	struct http1_response r;
	struct cursor c;
	char line[64];

	cr_assert_eq(response("HTTP/1.0 200 ok\r\nContent-type: text/html\r\n", false, &r), HTTP1_DONE,
		     "a success needs no body");
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.reason, "ok");
	cr_assert_eq(response("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\n<TITLE>no</TITLE>", false, &r),
		     HTTP1_DONE);
	cr_assert_eq(r.status, 403);
	cr_assert_str_eq(r.title, "no");
	cr_assert_eq(response("HTTP/1.1 20", false, &r), HTTP1_MORE);
	cursor_init(&c, (const uint8_t *)"\x00\x00\x12\x04\x00\x00\x00\x00\x00", 9);
	cr_assert_eq(http1_response(&c, false, &r), HTTP1_NOT_HTTP, "an HTTP/2 SETTINGS frame");
	cr_assert_eq(response("HTTP/1.1 2x0 OK\r\n", false, &r), HTTP1_NOT_HTTP);
	cr_assert_eq(response("SSH-2.0-OpenSSH\r\n", false, &r), HTTP1_NOT_HTTP);

	cursor_init(&c, (const uint8_t *)"GET /x?y HTTP/1.1\r\nHost: h\r\n", 28);
	cr_assert_eq(http1_request_line(&c, line, sizeof(line)), HTTP1_DONE);
	cr_assert_str_eq(line, "GET /x?y HTTP/1.1");
	cursor_init(&c, (const uint8_t *)"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
	cr_assert_eq(http1_request_line(&c, line, sizeof(line)), HTTP1_NOT_HTTP);
	cursor_init(&c, (const uint8_t *)"GET / HT", 8);
	cr_assert_eq(http1_request_line(&c, line, sizeof(line)), HTTP1_MORE);
	cursor_init(&c, (const uint8_t *)"hello from the client\n", 22);
	cr_assert_eq(http1_request_line(&c, line, sizeof(line)), HTTP1_NOT_HTTP);
}

static void redacted(const char *in, size_t size, const char *want)
{
	char line[256];

	cr_assert(size <= sizeof(line));
	snprintf(line, sizeof(line), "%s", in);
	http1_redact_query(line, size);
	cr_assert_str_eq(line, want, "in: %s (size %zu)", in, size);
}

Test(http1, the_query_string_is_redacted_from_the_request_line)
{
	redacted("GET /reset?token=abc&password=hunter2 HTTP/1.1", 256, "GET /reset?\xe2\x80\xa6 HTTP/1.1");
	redacted("GET /x?y HTTP/1.1", 256, "GET /x?\xe2\x80\xa6 HTTP/1.1");
	redacted("GET /x? HTTP/1.1", 256, "GET /x?\xe2\x80\xa6 HTTP/1.1");
	/* only the request target is looked at, not the version */
	redacted("GET /a/b HTTP/1.1", 256, "GET /a/b HTTP/1.1");
	redacted("OPTIONS * HTTP/1.1", 256, "OPTIONS * HTTP/1.1");
	/* twice is the same as once */
	redacted("GET /x?\xe2\x80\xa6 HTTP/1.1", 256, "GET /x?\xe2\x80\xa6 HTTP/1.1");
	/* a full buffer with a short query: the query goes, '?' stays */
	redacted("GET /x?y HTTP/1.1", 18, "GET /x? HTTP/1.1");
	/* not a request line */
	redacted("garbage", 256, "garbage");
	redacted("", 256, "");
}
