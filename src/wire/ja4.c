/* ja4: the JA4 TLS client fingerprint, following FoxIO's
 * technical_details/JA4.md.  See ja4.h for the layout. */
#include "config.h"

#include "wire/ja4.h"
#include "wire/fnv.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXT_SERVER_NAME 0x0000
#define EXT_ALPN 0x0010

/* A hash part is 12 hex digits; the empty-list placeholder is all zeros. */
#define JA4_HASH_DIGITS 12
static const char ja4_zero_hash[] = "000000000000";

static const char hexdig[] = "0123456789abcdef";

bool ja4_is_grease(uint16_t v)
{
	return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

/* The two-character version: supported_versions' highest value when the
 * extension was present, else the ClientHello's protocol version. */
static const char *ja4_version(const struct client_hello *ch)
{
	uint16_t v = ch->max_supported;

	if (v == 0 || ja4_is_grease(v))
		v = ch->legacy_version;
	if (v == 0 && ch->sslv2)
		v = TLS_V_SSL2;
	switch (v) {
	case TLS_V_1_3: return "13";
	case TLS_V_1_2: return "12";
	case TLS_V_1_1: return "11";
	case TLS_V_1_0: return "10";
	case TLS_V_SSL3: return "s3";
	case TLS_V_SSL2: return "s2";
	case 0xfeff: return "d1"; /* DTLS 1.0 */
	case 0xfefd: return "d2"; /* DTLS 1.2 */
	case 0xfefc: return "d3"; /* DTLS 1.3 */
	default: return "00";
	}
}

static bool ja4_ascii_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* RFC 8701 section 3 reserves the two-byte ALPN identifiers {0x?A, 0x?A}. */
static bool ja4_alpn_is_grease(const unsigned char *p, size_t len)
{
	return len == 2 && p[0] == p[1] && (p[0] & 0x0f) == 0x0a;
}

/* First and last character of the first ALPN value; "00" when there is
 * none or it is empty.  When either end byte is not an ASCII letter or
 * digit, the first and last characters of the value's hex form instead. */
static void ja4_alpn(const struct client_hello *ch, char out[3])
{
	size_t n = ch->n_alpn < FACTS_MAX_ALPN ? ch->n_alpn : FACTS_MAX_ALPN;
	const unsigned char *p = NULL;
	size_t len = 0;

	out[0] = out[1] = '0';
	out[2] = '\0';
	for (size_t i = 0; i < n; i++) {
		p = (const unsigned char *)ch->alpn[i];
		len = strnlen(ch->alpn[i], sizeof(ch->alpn[i]));
		if (!ja4_alpn_is_grease(p, len))
			break;
		p = NULL;
	}
	if (!p || len == 0)
		return;
	if (ja4_ascii_alnum(p[0]) && ja4_ascii_alnum(p[len - 1])) {
		out[0] = (char)p[0];
		out[1] = (char)p[len - 1];
	} else {
		out[0] = hexdig[p[0] >> 4];
		out[1] = hexdig[p[len - 1] & 0x0f];
	}
}

/* Appends v as ",xxxx" (no comma when at the start) to buf of size cap. */
static size_t ja4_append_hex(char *buf, size_t cap, size_t pos, uint16_t v, bool first)
{
	if (pos + 6 > cap)
		return pos;
	if (!first)
		buf[pos++] = ',';
	buf[pos++] = hexdig[(v >> 12) & 0xf];
	buf[pos++] = hexdig[(v >> 8) & 0xf];
	buf[pos++] = hexdig[(v >> 4) & 0xf];
	buf[pos++] = hexdig[v & 0xf];
	buf[pos] = '\0';
	return pos;
}

/* OpenSSL 3 looks an implicit EVP_sha256() up again on every digest;
 * fetch it once for the process. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* A client sends the same lists on every connection: each thread keeps the
 * recent texts it hashed (confirmed by comparing the whole text). */
#define JA4_MEMO_SLOTS 64
#define JA4_MEMO_TEXT 1400

struct ja4_memo {
	size_t len;                     /* 0: empty */
	char text[JA4_MEMO_TEXT];
	char hash[JA4_HASH_DIGITS + 1];
};

static _Thread_local struct ja4_memo ja4_memo[JA4_MEMO_SLOTS];

static struct ja4_memo *ja4_memo_slot(const char *text, size_t len)
{
	return &ja4_memo[fnv64(text, len) % JA4_MEMO_SLOTS];
}

static bool ja4_hash12_uncached(const char *text, size_t len, char out[JA4_HASH_DIGITS + 1]);

/* First 12 lower-case hex digits of sha256(text). */
static bool ja4_hash12(const char *text, size_t len, char out[JA4_HASH_DIGITS + 1])
{
	struct ja4_memo *m = ja4_memo_slot(text, len);

	if (len < JA4_MEMO_TEXT && m->len == len && memcmp(m->text, text, len) == 0) {
		memcpy(out, m->hash, sizeof(m->hash));
		return true;
	}
	if (!ja4_hash12_uncached(text, len, out))
		return false;
	if (len > 0 && len < JA4_MEMO_TEXT) {
		memcpy(m->text, text, len);
		m->len = len;
		memcpy(m->hash, out, sizeof(m->hash));
	}
	return true;
}

static bool ja4_hash12_uncached(const char *text, size_t len, char out[JA4_HASH_DIGITS + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	pthread_once(&sha256_once, sha256_fetch);
	if (!sha256_md || !EVP_Digest(text, len, md, &mdlen, sha256_md, NULL) || mdlen < JA4_HASH_DIGITS / 2)
		return false;
	for (size_t i = 0; i < JA4_HASH_DIGITS / 2; i++) {
		out[2 * i] = hexdig[md[i] >> 4];
		out[2 * i + 1] = hexdig[md[i] & 0x0f];
	}
	out[JA4_HASH_DIGITS] = '\0';
	return true;
}

/* Insertion sort: the lists are a few dozen values, often nearly sorted. */
static void sort_u16(uint16_t *v, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		uint16_t x = v[i];
		size_t j = i;

		while (j > 0 && v[j - 1] > x) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
}

static void ja4_compute_uncached(const struct client_hello *ch, char transport, char out[JA4_LEN]);

/* Whole fingerprints, keyed by every input they depend on. */
#define JA4_FP_SLOTS 64
#define JA4_FP_KEY ((FACTS_MAX_CIPHERS + FACTS_MAX_EXTS + FACTS_MAX_SIGALGS + 8) * 2 + 80)

struct ja4_fp_memo {
	size_t len;
	unsigned char key[JA4_FP_KEY];
	char fp[JA4_LEN];
};

static _Thread_local struct ja4_fp_memo ja4_fp_memo[JA4_FP_SLOTS];

static size_t key_u16s(unsigned char *k, size_t at, const uint16_t *v, size_t n, size_t max)
{
	if (n > max)
		n = max;
	k[at++] = (unsigned char)(n >> 8);
	k[at++] = (unsigned char)n;
	memcpy(k + at, v, n * sizeof(*v));
	return at + n * sizeof(*v);
}

void ja4_compute(const struct client_hello *ch, char transport, char out[JA4_LEN])
{
	unsigned char key[JA4_FP_KEY];
	char alpn[3];
	size_t len = 0;
	uint64_t h = 0xcbf29ce484222325ULL;
	struct ja4_fp_memo *m;

	key[len++] = (unsigned char)transport;
	key[len++] = (unsigned char)(ch->legacy_version >> 8);
	key[len++] = (unsigned char)ch->legacy_version;
	key[len++] = (unsigned char)(ch->max_supported >> 8);
	key[len++] = (unsigned char)ch->max_supported;
	key[len++] = ch->sslv2;
	key[len++] = ch->sni[0] != '\0';
	ja4_alpn(ch, alpn);
	key[len++] = (unsigned char)alpn[0];
	key[len++] = (unsigned char)alpn[1];
	len = key_u16s(key, len, ch->ciphers, ch->n_ciphers, FACTS_MAX_CIPHERS);
	len = key_u16s(key, len, ch->exts, ch->n_exts, FACTS_MAX_EXTS);
	len = key_u16s(key, len, ch->sigalgs, ch->n_sigalgs, FACTS_MAX_SIGALGS);
	/* eight bytes a step (the slot only; a hit compares the whole key) */
	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = 0;

		if (len - i >= 8)
			memcpy(&w, key + i, 8);
		else
			memcpy(&w, key + i, len - i);
		h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	/* two ways: two clients whose keys share a slot do not evict each other */
	m = &ja4_fp_memo[(h % (JA4_FP_SLOTS / 2)) * 2];
	for (int way = 0; way < 2; way++) {
		if (m[way].len == len && memcmp(m[way].key, key, len) == 0) {
			memcpy(out, m[way].fp, JA4_LEN);
			return;
		}
	}
	if (m[0].len)
		m[1] = m[0];   /* the older entry moves to the second way */
	ja4_compute_uncached(ch, transport, out);
	if (out[0]) {
		memcpy(m->key, key, len);
		m->len = len;
		memcpy(m->fp, out, JA4_LEN);
	}
}

static void ja4_compute_uncached(const struct client_hello *ch, char transport, char out[JA4_LEN])
{
	uint16_t ciphers[FACTS_MAX_CIPHERS], exts[FACTS_MAX_EXTS];
	/* 5 bytes per value, the '_' and the terminator */
	char text[(FACTS_MAX_CIPHERS > FACTS_MAX_EXTS + FACTS_MAX_SIGALGS
			   ? FACTS_MAX_CIPHERS : FACTS_MAX_EXTS + FACTS_MAX_SIGALGS) * 5 + 2];
	char part_b[JA4_HASH_DIGITS + 1], part_c[JA4_HASH_DIGITS + 1], alpn[3];
	size_t n_total = ch->n_ciphers < FACTS_MAX_CIPHERS ? ch->n_ciphers : FACTS_MAX_CIPHERS;
	size_t n_ciphers = 0, n_exts = 0, n_hashed_exts = 0, pos;
	bool sni = ch->sni[0] != '\0';

	out[0] = '\0';
	if (transport != 'q' && transport != 'd')
		transport = 't';

	for (size_t i = 0; i < n_total; i++)
		if (!ja4_is_grease(ch->ciphers[i]))
			ciphers[n_ciphers++] = ch->ciphers[i];

	n_total = ch->n_exts < FACTS_MAX_EXTS ? ch->n_exts : FACTS_MAX_EXTS;
	for (size_t i = 0; i < n_total; i++) {
		uint16_t e = ch->exts[i];
		if (ja4_is_grease(e))
			continue;
		n_exts++;
		if (e == EXT_SERVER_NAME)
			sni = true;
		else if (e != EXT_ALPN)
			exts[n_hashed_exts++] = e;
	}

	ja4_alpn(ch, alpn);

	/* b: sorted ciphers */
	if (n_ciphers == 0) {
		memcpy(part_b, ja4_zero_hash, sizeof(part_b));
	} else {
		sort_u16(ciphers, n_ciphers);
		pos = 0;
		for (size_t i = 0; i < n_ciphers; i++)
			pos = ja4_append_hex(text, sizeof(text), pos, ciphers[i], i == 0);
		if (!ja4_hash12(text, pos, part_b))
			return;
	}

	/* c: sorted extensions without SNI and ALPN, then the signature
	 * algorithms in wire order after an underscore (if there are any) */
	if (n_hashed_exts == 0) {
		memcpy(part_c, ja4_zero_hash, sizeof(part_c));
	} else {
		size_t n_sig = ch->n_sigalgs < FACTS_MAX_SIGALGS ? ch->n_sigalgs : FACTS_MAX_SIGALGS;
		bool first_sig = true;

		sort_u16(exts, n_hashed_exts);
		pos = 0;
		for (size_t i = 0; i < n_hashed_exts; i++)
			pos = ja4_append_hex(text, sizeof(text), pos, exts[i], i == 0);
		for (size_t i = 0; i < n_sig; i++) {
			if (ja4_is_grease(ch->sigalgs[i]))
				continue;
			if (first_sig)
				text[pos++] = '_';
			pos = ja4_append_hex(text, sizeof(text), pos, ch->sigalgs[i], first_sig);
			first_sig = false;
		}
		if (!ja4_hash12(text, pos, part_c))
			return;
	}

	snprintf(out, JA4_LEN, "%c%s%c%02u%02u%s_%s_%s", transport, ja4_version(ch),
		 sni ? 'd' : 'i', (unsigned)(n_ciphers > 99 ? 99 : n_ciphers),
		 (unsigned)(n_exts > 99 ? 99 : n_exts), alpn, part_b, part_c);
}
