/* Tests for the JA4 client fingerprint.
 *
 * Most vectors live in tests/data/ja4, one file per kind (format: scripts/ja4-from-tshark):
 *   foxio.ja4     published FoxIO vectors (spec example, tool test outputs)
 *   captures.ja4  curl / openssl s_client ClientHellos captured on loopback,
 *                 expected values computed by scripts/ja4-from-tshark
 *   grease.ja4    real field lists with GREASE added: fingerprint unchanged
 *   edge.ja4      empty lists, >99 ciphers, odd ALPN, versions, q/d */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/ja4.h"
#include "testutil.h"

/* ---- the .ja4 record reader ------------------------------------------- */

/* "1301,c02b" -> values; an empty string is an empty list. */
static size_t parse_list(const char *what, const char *s, uint16_t *out, size_t cap)
{
	size_t n = 0;

	while (*s) {
		unsigned v = 0;
		for (int i = 0; i < 4; i++) {
			int d = test_hexval(s[i]);
			cr_assert(d >= 0, "%s: bad hex list near \"%s\"", what, s);
			v = v << 4 | (unsigned)d;
		}
		s += 4;
		cr_assert(*s == ',' || *s == '\0', "%s: values must be 4 hex digits", what);
		if (*s == ',')
			s++;
		cr_assert(n < cap, "%s: more than %zu values", what, cap);
		out[n++] = (uint16_t)v;
	}
	return n;
}

/* Escaped text (\xHH for any byte) from s up to stop or the end, into out
 * (NUL-terminated); returns the position after the text. */
static const char *parse_text(const char *s, char stop, char *out, size_t cap)
{
	size_t n = 0;

	while (*s && *s != stop) {
		char c = *s++;
		if (c == '\\' && s[0] == 'x' && test_hexval(s[1]) >= 0 && test_hexval(s[2]) >= 0) {
			c = (char)(test_hexval(s[1]) << 4 | test_hexval(s[2]));
			s += 3;
		}
		cr_assert(n + 1 < cap, "text too long");
		out[n++] = c;
	}
	out[n] = '\0';
	return s;
}

/* What the decoder stores in max_supported: the newest version offered,
 * GREASE ignored (DTLS numbers count down, so there the lowest). */
static uint16_t newest_version(const uint16_t *v, size_t n)
{
	uint16_t best = 0;
	long bestk = -1;

	for (size_t i = 0; i < n; i++) {
		long k = v[i];
		if (ja4_is_grease(v[i]))
			continue;
		if (k >= 0xfe00)
			k = 0x20000 - k;
		if (k > bestk) {
			bestk = k;
			best = v[i];
		}
	}
	return best;
}

struct record {
	char name[128];
	char transport;
	char expect[64];
	struct client_hello ch;
};

static void record_reset(struct record *r, const char *name)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->transport = 't';
	r->ch.seen = true;
}

static void record_field(struct record *r, const char *key, const char *val)
{
	struct client_hello *ch = &r->ch;

	if (!strcmp(key, "transport")) {
		r->transport = val[0];
	} else if (!strcmp(key, "version")) {
		uint16_t v;
		cr_assert_eq(parse_list(r->name, val, &v, 1), 1, "%s: version", r->name);
		ch->legacy_version = v;
	} else if (!strcmp(key, "supported_versions")) {
		uint16_t v[32];
		size_t n = parse_list(r->name, val, v, 32);
		ch->max_supported = newest_version(v, n);
	} else if (!strcmp(key, "sslv2")) {
		ch->sslv2 = val[0] == '1';
	} else if (!strcmp(key, "sni")) {
		parse_text(val, '\0', ch->sni, sizeof(ch->sni));
	} else if (!strcmp(key, "alpn")) {
		const char *p = val;
		for (;;) {
			cr_assert(ch->n_alpn < FACTS_MAX_ALPN, "%s: too many ALPN names", r->name);
			p = parse_text(p, ',', ch->alpn[ch->n_alpn], sizeof(ch->alpn[0]));
			ch->n_alpn++;
			if (*p != ',')
				break;
			p++;
		}
	} else if (!strcmp(key, "ciphers")) {
		ch->n_ciphers = parse_list(r->name, val, ch->ciphers, FACTS_MAX_CIPHERS);
	} else if (!strcmp(key, "exts")) {
		ch->n_exts = parse_list(r->name, val, ch->exts, FACTS_MAX_EXTS);
	} else if (!strcmp(key, "sigalgs")) {
		ch->n_sigalgs = parse_list(r->name, val, ch->sigalgs, FACTS_MAX_SIGALGS);
	} else if (!strcmp(key, "expect")) {
		snprintf(r->expect, sizeof(r->expect), "%s", val);
	} else {
		cr_assert(!strcmp(key, "source"), "%s: unknown key \"%s\"", r->name, key);
	}
}

/* Checks every record of a vector file; returns how many there were. */
static size_t check_file(const char *rel)
{
	size_t len, n = 0;
	uint8_t *raw = test_load(rel, &len);
	char *text = malloc(len + 1), *line, *save = NULL;
	struct record *r = calloc(1, sizeof(*r));
	bool open = false;

	cr_assert(text && r);
	memcpy(text, raw, len);
	text[len] = '\0';
	free(raw);

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *val = strchr(line, ' ');
		size_t l = strlen(line);

		if (l && line[l - 1] == '\r')
			line[--l] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (val)
			*val++ = '\0';
		else
			val = line + l;
		if (!strcmp(line, "case")) {
			cr_assert(!open, "%s: record %s has no end", rel, r->name);
			record_reset(r, val);
			open = true;
		} else if (!strcmp(line, "end")) {
			char out[JA4_LEN];
			cr_assert(open, "%s: end without case", rel);
			cr_assert(r->expect[0], "%s: %s has no expect", rel, r->name);
			memset(out, 'X', sizeof(out));
			ja4_compute(&r->ch, r->transport, out);
			cr_expect_str_eq(out, r->expect, "%s: %s", rel, r->name);
			open = false;
			n++;
		} else {
			cr_assert(open, "%s: \"%s\" outside a record", rel, line);
			record_field(r, line, val);
		}
	}
	cr_assert(!open, "%s: last record has no end", rel);
	free(r);
	free(text);
	return n;
}

Test(ja4, foxio_published_vectors)
{
	cr_assert_geq(check_file("tests/data/ja4/foxio.ja4"), 10);
}

Test(ja4, captured_clienthellos)
{
	cr_assert_geq(check_file("tests/data/ja4/captures.ja4"), 11);
}

Test(ja4, grease_leaves_fingerprint_unchanged)
{
	cr_assert_geq(check_file("tests/data/ja4/grease.ja4"), 4);
}

Test(ja4, edge_cases)
{
	cr_assert_geq(check_file("tests/data/ja4/edge.ja4"), 18);
}

/* ---- direct checks ---------------------------------------------------- */

/* The worked example of FoxIO technical_details/JA4.md. */
static void spec_example(struct client_hello *ch)
{
	static const uint16_t ciphers[] = { 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030,
					    0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f,
					    0x0035 };
	static const uint16_t exts[] = { 0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017,
					 0x002d, 0x000d, 0x0005, 0x0023, 0x0012, 0x002b,
					 0xff01, 0x000b, 0x000a, 0x0015 };
	static const uint16_t sigalgs[] = { 0x0403, 0x0804, 0x0401, 0x0503,
					    0x0805, 0x0501, 0x0806, 0x0601 };

	memset(ch, 0, sizeof(*ch));
	ch->seen = true;
	ch->legacy_version = TLS_V_1_2;
	ch->max_supported = TLS_V_1_3;
	strcpy(ch->sni, "example.com");
	strcpy(ch->alpn[0], "h2");
	strcpy(ch->alpn[1], "http/1.1");
	ch->n_alpn = 2;
	memcpy(ch->ciphers, ciphers, sizeof(ciphers));
	ch->n_ciphers = sizeof(ciphers) / sizeof(ciphers[0]);
	memcpy(ch->exts, exts, sizeof(exts));
	ch->n_exts = sizeof(exts) / sizeof(exts[0]);
	memcpy(ch->sigalgs, sigalgs, sizeof(sigalgs));
	ch->n_sigalgs = sizeof(sigalgs) / sizeof(sigalgs[0]);
}

Test(ja4, spec_worked_example)
{
	struct client_hello ch;
	char out[JA4_LEN];

	spec_example(&ch);
	ja4_compute(&ch, 't', out);
	cr_assert_str_eq(out, "t13d1516h2_8daaf6152771_e5627efa2ab1");
	ch.n_sigalgs = 0;
	ja4_compute(&ch, 't', out);
	cr_assert_str_eq(out, "t13d1516h2_8daaf6152771_6d807ffa2a79",
			 "no signature algorithms: no underscore before hashing");
}

Test(ja4, grease_code_points)
{
	int n = 0;

	for (unsigned v = 0; v <= 0xffff; v++)
		if (ja4_is_grease((uint16_t)v)) {
			cr_assert_eq(v & 0x0f0f, 0x0a0a);
			cr_assert_eq(v >> 8, v & 0xff);
			n++;
		}
	cr_assert_eq(n, 16);
	cr_assert(ja4_is_grease(0x0a0a));
	cr_assert(ja4_is_grease(0xfafa));
	cr_assert_not(ja4_is_grease(0x0a1a));
	cr_assert_not(ja4_is_grease(0xaaab));
	cr_assert_not(ja4_is_grease(0xca34), "0xca34 (seen in Chrome) is not GREASE");
}

/* A GREASE value inserted anywhere in any list changes nothing. */
Test(ja4, grease_anywhere_is_ignored)
{
	struct client_hello base, ch;
	char want[JA4_LEN], got[JA4_LEN];

	spec_example(&base);
	ja4_compute(&base, 't', want);
	for (unsigned g = 0; g < 16; g++) {
		uint16_t grease = (uint16_t)(g << 12 | 0x0a00 | g << 4 | 0x0a);
		for (size_t at = 0; at <= base.n_ciphers; at++) {
			ch = base;
			memmove(&ch.ciphers[at + 1], &ch.ciphers[at], (ch.n_ciphers - at) * sizeof(uint16_t));
			ch.ciphers[at] = grease;
			ch.n_ciphers++;
			ja4_compute(&ch, 't', got);
			cr_assert_str_eq(got, want, "cipher GREASE %04x at %zu", grease, at);
		}
		for (size_t at = 0; at <= base.n_exts; at++) {
			ch = base;
			memmove(&ch.exts[at + 1], &ch.exts[at], (ch.n_exts - at) * sizeof(uint16_t));
			ch.exts[at] = grease;
			ch.n_exts++;
			ja4_compute(&ch, 't', got);
			cr_assert_str_eq(got, want, "extension GREASE %04x at %zu", grease, at);
		}
		for (size_t at = 0; at <= base.n_sigalgs; at++) {
			ch = base;
			memmove(&ch.sigalgs[at + 1], &ch.sigalgs[at], (ch.n_sigalgs - at) * sizeof(uint16_t));
			ch.sigalgs[at] = grease;
			ch.n_sigalgs++;
			ja4_compute(&ch, 't', got);
			cr_assert_str_eq(got, want, "sigalg GREASE %04x at %zu", grease, at);
		}
	}
}

static void alpn_of(const char *first, const char *want)
{
	struct client_hello ch;
	char out[JA4_LEN];

	spec_example(&ch);
	if (first) {
		snprintf(ch.alpn[0], sizeof(ch.alpn[0]), "%s", first);
		ch.n_alpn = 1;
	} else {
		ch.n_alpn = 0;
	}
	ja4_compute(&ch, 't', out);
	cr_assert_eq(strlen(out), 36);
	cr_assert(out[8] == want[0] && out[9] == want[1], "ALPN \"%s\": got %.2s, want %s",
		  first ? first : "(none)", out + 8, want);
}

Test(ja4, alpn_characters)
{
	alpn_of("h2", "h2");
	alpn_of("http/1.1", "h1");
	alpn_of("h3-29", "h9");
	alpn_of("a", "aa");
	alpn_of("", "00");
	alpn_of(NULL, "00");
	/* the hex examples of technical_details/JA4.md */
	alpn_of("\xab", "ab");
	alpn_of("\xab\xcd", "ad");
	alpn_of("0\xab", "3b");
	alpn_of("01\xab\xcd", "3d");
	alpn_of("0\xab\xcd" "1", "01");
	/* ASCII but not alphanumeric ends */
	alpn_of("x-custom/9!", "71");
	alpn_of("-h2", "22");
	alpn_of(" ", "20");
	/* UTF-8 letters are not ASCII alphanumerics */
	alpn_of("\xc3\xa9t\xc3\xa9", "c9");
}

Test(ja4, grease_alpn_identifier_is_skipped)
{
	struct client_hello ch;
	char out[JA4_LEN];

	spec_example(&ch);
	strcpy(ch.alpn[0], "\x5a\x5a");
	strcpy(ch.alpn[1], "h2");
	ch.n_alpn = 2;
	ja4_compute(&ch, 't', out);
	cr_assert_str_eq(out, "t13d1516h2_8daaf6152771_e5627efa2ab1");
	ch.n_alpn = 1; /* only GREASE */
	ja4_compute(&ch, 't', out);
	cr_assert_str_eq(out, "t13d151600_8daaf6152771_e5627efa2ab1");
	strcpy(ch.alpn[0], "\x0a\x1a"); /* unequal bytes: a real (odd) name */
	ja4_compute(&ch, 't', out);
	cr_assert_str_eq(out, "t13d15160a_8daaf6152771_e5627efa2ab1");
}

static void version_of(uint16_t legacy, uint16_t max_supported, bool sslv2, const char *want)
{
	struct client_hello ch;
	char out[JA4_LEN];

	spec_example(&ch);
	ch.legacy_version = legacy;
	ch.max_supported = max_supported;
	ch.sslv2 = sslv2;
	ja4_compute(&ch, 't', out);
	cr_assert(out[1] == want[0] && out[2] == want[1],
		  "legacy %04x supported %04x: got %.2s, want %s", legacy, max_supported, out + 1, want);
}

Test(ja4, version_strings)
{
	version_of(TLS_V_1_2, TLS_V_1_3, false, "13");
	version_of(TLS_V_1_2, 0, false, "12");
	version_of(TLS_V_1_1, 0, false, "11");
	version_of(TLS_V_1_0, 0, false, "10");
	version_of(TLS_V_SSL3, 0, false, "s3");
	version_of(TLS_V_SSL2, 0, false, "s2");
	version_of(0, 0, true, "s2");
	version_of(TLS_V_1_0, 0, true, "10"); /* SSLv2-format hello offering TLS 1.0 */
	version_of(0xfeff, 0, false, "d1");
	version_of(0xfefd, 0, false, "d2");
	version_of(0xfefd, 0xfefc, false, "d3");
	version_of(TLS_V_1_2, 0x0305, false, "00");
	version_of(0x0200, 0, false, "00");
	version_of(0, 0, false, "00");
	version_of(TLS_V_1_2, 0x7a7a, false, "12"); /* a GREASE max is no version */
	version_of(TLS_V_1_3, TLS_V_1_2, false, "12"); /* supported_versions wins */
}

Test(ja4, transport_letter)
{
	struct client_hello ch;
	char out[JA4_LEN];

	spec_example(&ch);
	ja4_compute(&ch, 'q', out);
	cr_assert_eq(out[0], 'q');
	ja4_compute(&ch, 'd', out);
	cr_assert_eq(out[0], 'd');
	ja4_compute(&ch, 't', out);
	cr_assert_eq(out[0], 't');
	ja4_compute(&ch, 'x', out);
	cr_assert_eq(out[0], 't', "unknown transport letters read as TCP");
	ja4_compute(&ch, '\0', out);
	cr_assert_eq(out[0], 't');
}

Test(ja4, sni_from_extension_or_name)
{
	struct client_hello ch;
	char out[JA4_LEN];

	spec_example(&ch);
	ch.sni[0] = '\0'; /* extension 0000 still listed */
	ja4_compute(&ch, 't', out);
	cr_assert_eq(out[3], 'd');
	ch.exts[1] = 0x0029; /* replace SNI: no extension, no name */
	ja4_compute(&ch, 't', out);
	cr_assert_eq(out[3], 'i');
	strcpy(ch.sni, "example.com");
	ja4_compute(&ch, 't', out);
	cr_assert_eq(out[3], 'd');
}

/* Full lists: the longest output, every count capped, nothing overrun. */
Test(ja4, full_lists_stay_in_bounds)
{
	struct client_hello ch;
	char out[JA4_LEN + 8];

	memset(&ch, 0, sizeof(ch));
	for (size_t i = 0; i < FACTS_MAX_CIPHERS; i++)
		ch.ciphers[i] = (uint16_t)(0x1000 + i);
	for (size_t i = 0; i < FACTS_MAX_EXTS; i++)
		ch.exts[i] = (uint16_t)(0xff00 - i); /* includes no 0000/0010 */
	for (size_t i = 0; i < FACTS_MAX_SIGALGS; i++)
		ch.sigalgs[i] = (uint16_t)(0x0400 + i);
	ch.n_ciphers = FACTS_MAX_CIPHERS;
	ch.n_exts = FACTS_MAX_EXTS;
	ch.n_sigalgs = FACTS_MAX_SIGALGS;
	ch.legacy_version = TLS_V_1_2;
	memset(ch.alpn[0], 'a', sizeof(ch.alpn[0])); /* not NUL-terminated */
	ch.n_alpn = 1;
	memset(out, '#', sizeof(out));
	ja4_compute(&ch, 't', out);
	cr_assert_eq(strlen(out), 36);
	cr_assert_eq(out[JA4_LEN], '#', "wrote past JA4_LEN");
	cr_assert(!strncmp(out, "t12i9996aa_", 11), "got %s", out);

	/* counts larger than the arrays are clamped, not trusted */
	ch.n_ciphers = 100000;
	ch.n_exts = 100000;
	ch.n_sigalgs = 100000;
	ch.n_alpn = 100000;
	ja4_compute(&ch, 't', out);
	cr_assert(!strncmp(out, "t12i9996aa_", 11), "got %s", out);
}

Test(ja4, empty_hello)
{
	struct client_hello ch;
	char out[JA4_LEN];

	memset(&ch, 0, sizeof(ch));
	ja4_compute(&ch, 't', out);
	cr_assert_str_eq(out, "t00i000000_000000000000_000000000000");
}
