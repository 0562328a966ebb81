/* Tests for x509info (summaries, names, the certificate cache) and chain
 * (client-chain checks), against the lab PKI in tests/data/lab/pki made by
 * `scripts/lab pki`, plus a few certificates built here for the cases the
 * lab PKI does not have (Ed25519, anyExtendedKeyUsage, key usage without
 * digitalSignature, a forged signature). */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "analysis/bundle.h"
#include "analysis/chain.h"
#include "testutil.h"
#include "wire/x509info.h"

#define PKI "tests/data/lab/pki/"
#define MAX_CHAIN 8

static time_t utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
			 .tm_hour = h, .tm_min = mi, .tm_sec = s };
	return timegm(&tm);
}

/* The connection time of the examples in doc/verdicts.md. */
static time_t at_2026(void) { return utc(2026, 11, 23, 12, 14, 2); }

/* Reads every certificate of a PEM file of the lab PKI, in order. */
static size_t load_pem(const char *name, X509 **out, size_t max)
{
	char rel[256];
	BIO *bio;
	size_t n = 0;
	X509 *x;

	snprintf(rel, sizeof(rel), PKI "%s", name);
	bio = BIO_new_file(test_path(rel), "r");
	cr_assert_not_null(bio, "cannot open %s (run scripts/lab pki %s)", test_path(rel), PKI);
	while (n < max && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		out[n++] = x;
	BIO_free(bio);
	cr_assert_gt(n, 0, "no certificate in %s", rel);
	return n;
}

static X509 *load_one(const char *name)
{
	X509 *x[MAX_CHAIN];
	size_t n = load_pem(name, x, MAX_CHAIN), i;

	for (i = 1; i < n; i++)
		X509_free(x[i]);
	return x[0];
}

static void free_certs(X509 **x, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		X509_free(x[i]);
}

static uint8_t *der_of(X509 *x, size_t *len)
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);

	cr_assert_gt(n, 0);
	*len = (size_t)n;
	return der;
}

/* The first line a shell command prints, without the newline. */
static void shell_line(const char *cmd, char *out, size_t outlen)
{
	FILE *p = popen(cmd, "r");

	cr_assert_not_null(p, "cannot run %s", cmd);
	out[0] = '\0';
	if (fgets(out, (int)outlen, p) == NULL)
		out[0] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	cr_assert_eq(pclose(p), 0, "command failed: %s", cmd);
}

/* ---- x509info_summarize -------------------------------------------- */

Test(x509info, summarizes_the_good_client_certificate)
{
	X509 *x = load_one("good.pem");
	struct cert_info ci;
	char cmd[1024], want[256];

	x509info_summarize(x, &ci);
	cr_assert_str_eq(ci.subject, "CN=good-client, O=mtlsdiag Lab");
	cr_assert_str_eq(ci.issuer, "CN=Lab Issuing CA, O=mtlsdiag Lab");
	cr_assert_str_eq(ci.not_before, "2020-01-01T00:00:00Z");
	cr_assert_str_eq(ci.not_after, "2080-01-01T00:00:00Z");
	cr_assert_eq(ci.not_before_t, utc(2020, 1, 1, 0, 0, 0));
	cr_assert_eq(ci.not_after_t, utc(2080, 1, 1, 0, 0, 0));
	cr_assert_str_eq(ci.key, "RSA-2048");
	cr_assert_str_eq(ci.eku, "clientAuth");
	cr_assert(ci.has_eku && ci.eku_client_auth);
	cr_assert(ci.has_key_usage && ci.ku_digital_signature);
	cr_assert_not(ci.is_ca);
	cr_assert_not(ci.self_issued);
	cr_assert_not(ci.self_signed);
	cr_assert_not(ci.parse_failed);

	snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s' -outform der | sha256sum | cut -d' ' -f1",
		 test_path(PKI "good.pem"));
	shell_line(cmd, want, sizeof(want));
	cr_assert_str_eq(ci.sha256, want);

	snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s' -noout -serial | sed 's/^serial=//'",
		 test_path(PKI "good.pem"));
	shell_line(cmd, want, sizeof(want));
	cr_assert_str_eq(ci.serial, want);
	X509_free(x);
}

Test(x509info, summarizes_an_ec_root_and_a_foreign_leaf)
{
	X509 *root = load_one("foreign-root.pem"), *leaf = load_one("foreign.pem");
	struct cert_info ci;

	x509info_summarize(root, &ci);
	cr_assert_str_eq(ci.subject, "CN=Elsewhere Root CA, O=Elsewhere Inc");
	cr_assert_str_eq(ci.key, "EC-P-256");
	cr_assert(ci.is_ca);
	cr_assert(ci.self_issued && ci.self_signed);
	cr_assert_not(ci.has_eku);
	cr_assert_str_eq(ci.eku, "");
	cr_assert(ci.has_key_usage);
	cr_assert_not(ci.ku_digital_signature, "keyCertSign, cRLSign only");

	x509info_summarize(leaf, &ci);
	cr_assert_str_eq(ci.issuer, "CN=Elsewhere Root CA, O=Elsewhere Inc");
	cr_assert_str_eq(ci.key, "EC-P-256");
	cr_assert_not(ci.is_ca);
	X509_free(root);
	X509_free(leaf);
}

Test(x509info, summarizes_eku_and_self_signed_leaves)
{
	X509 *bad = load_one("badeku.pem"), *self = load_one("selfsigned.pem");
	X509 *srv = load_one("server.pem"), *root = load_one("client-root.pem");
	struct cert_info ci;

	x509info_summarize(bad, &ci);
	cr_assert_str_eq(ci.eku, "serverAuth");
	cr_assert(ci.has_eku);
	cr_assert_not(ci.eku_client_auth);

	x509info_summarize(self, &ci);
	cr_assert_str_eq(ci.subject, "CN=selfsigned-client, O=mtlsdiag Lab");
	cr_assert_str_eq(ci.subject, ci.issuer);
	cr_assert(ci.self_issued && ci.self_signed);
	cr_assert_not(ci.is_ca);
	cr_assert(ci.eku_client_auth);

	x509info_summarize(srv, &ci);
	cr_assert_str_eq(ci.subject, "CN=localhost, O=mtlsdiag Lab");
	cr_assert_str_eq(ci.eku, "serverAuth");
	cr_assert(ci.ku_digital_signature);

	x509info_summarize(root, &ci);
	cr_assert_str_eq(ci.subject, "CN=Lab Client Root CA, O=mtlsdiag Lab");
	cr_assert(ci.is_ca && ci.self_signed);
	cr_assert_str_eq(ci.not_after, "2100-01-01T00:00:00Z");
	X509_free(bad);
	X509_free(self);
	X509_free(srv);
	X509_free(root);
}

/* ---- certificates made here, for what the lab PKI lacks ------------- */

static EVP_PKEY *keygen(const char *type)
{
	EVP_PKEY *k = strcmp(type, "EC") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384")
		: EVP_PKEY_Q_keygen(NULL, NULL, type);

	cr_assert_not_null(k);
	return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
	cr_assert_not_null(ext, "extension %d=%s", nid, value);
	cr_assert(X509_add_ext(x, ext, -1));
	X509_EXTENSION_free(ext);
}

/* A certificate for `key`, named CN=cn, issued under issuer_cn and signed
 * with signer; eku/ku NULL to leave the extension out. */
static X509 *mkcert(const char *cn, const char *issuer_cn, EVP_PKEY *key, EVP_PKEY *signer,
		    const char *basic, const char *eku, const char *ku)
{
	X509 *x = X509_new();
	X509_NAME *subj = X509_NAME_new(), *iss = X509_NAME_new();

	cr_assert(x && subj && iss);
	cr_assert(X509_set_version(x, X509_VERSION_3));
	cr_assert(ASN1_INTEGER_set(X509_get_serialNumber(x), 0x1234));
	cr_assert(X509_NAME_add_entry_by_txt(subj, "O", MBSTRING_UTF8, (const unsigned char *)"mtlsdiag Test", -1, -1, 0));
	cr_assert(X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0));
	cr_assert(X509_NAME_add_entry_by_txt(iss, "O", MBSTRING_UTF8, (const unsigned char *)"mtlsdiag Test", -1, -1, 0));
	cr_assert(X509_NAME_add_entry_by_txt(iss, "CN", MBSTRING_UTF8, (const unsigned char *)issuer_cn, -1, -1, 0));
	cr_assert(X509_set_subject_name(x, subj));
	cr_assert(X509_set_issuer_name(x, iss));
	cr_assert(ASN1_TIME_set(X509_getm_notBefore(x), utc(2020, 1, 1, 0, 0, 0)));
	cr_assert(ASN1_TIME_set(X509_getm_notAfter(x), utc(2040, 1, 1, 0, 0, 0)));
	cr_assert(X509_set_pubkey(x, key));
	if (basic)
		add_ext(x, NULL, NID_basic_constraints, basic);
	if (eku)
		add_ext(x, NULL, NID_ext_key_usage, eku);
	if (ku)
		add_ext(x, NULL, NID_key_usage, ku);
	cr_assert_gt(X509_sign(x, signer, EVP_PKEY_get_base_id(signer) == EVP_PKEY_ED25519 ? NULL : EVP_sha256()), 0);
	X509_NAME_free(subj);
	X509_NAME_free(iss);
	return x;
}

Test(x509info, key_names_for_ed25519_and_other_curves)
{
	EVP_PKEY *ed = keygen("ED25519"), *ec = keygen("EC");
	X509 *a = mkcert("ed", "ed", ed, ed, NULL, "anyExtendedKeyUsage", NULL);
	X509 *b = mkcert("ec", "ec", ec, ec, "critical,CA:TRUE", NULL, "critical,keyCertSign");
	struct cert_info ci;

	x509info_summarize(a, &ci);
	cr_assert_str_eq(ci.key, "Ed25519");
	cr_assert_str_eq(ci.eku, "anyExtendedKeyUsage");
	cr_assert(ci.has_eku && ci.eku_client_auth, "anyExtendedKeyUsage allows client auth");
	cr_assert_not(ci.has_key_usage);
	cr_assert_not(ci.is_ca);
	cr_assert(ci.self_signed);
	cr_assert_str_eq(ci.serial, "1234");
	cr_assert_str_eq(ci.not_after, "2040-01-01T00:00:00Z");

	x509info_summarize(b, &ci);
	cr_assert_str_eq(ci.key, "EC-P-384");
	cr_assert(ci.is_ca);
	X509_free(a);
	X509_free(b);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(ec);
}

Test(x509info, self_issued_but_not_self_signed)
{
	EVP_PKEY *k1 = keygen("ED25519"), *k2 = keygen("ED25519");
	X509 *x = mkcert("same", "same", k1, k2, NULL, NULL, NULL);
	struct cert_info ci;

	x509info_summarize(x, &ci);
	cr_assert(ci.self_issued);
	cr_assert_not(ci.self_signed, "its own key does not verify the signature");
	X509_free(x);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
}

/* ---- names ----------------------------------------------------------- */

static X509_NAME *mkname(const char *cn, const char *o)
{
	X509_NAME *n = X509_NAME_new();

	cr_assert_not_null(n);
	if (o)
		cr_assert(X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)o, -1, -1, 0));
	if (cn)
		cr_assert(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0));
	return n;
}

Test(names, rfc2253_order_with_spaced_separator_and_utf8_kept)
{
	X509_NAME *n = mkname("Zürich Client", "mtlsdiag Lab");
	X509_NAME *special = mkname("a,b+c", NULL);
	X509_NAME *empty = X509_NAME_new();
	char buf[256];

	x509info_name(n, buf, sizeof(buf));
	cr_assert_str_eq(buf, "CN=Zürich Client, O=mtlsdiag Lab");
	x509info_name(special, buf, sizeof(buf));
	cr_assert_str_eq(buf, "CN=a\\,b\\+c");
	x509info_name(empty, buf, sizeof(buf));
	cr_assert_str_eq(buf, "");
	x509info_label(n, buf, sizeof(buf));
	cr_assert_str_eq(buf, "CN=Zürich Client");
	X509_NAME_free(n);
	X509_NAME_free(special);
	X509_NAME_free(empty);
}

Test(names, label_without_cn_is_the_whole_name)
{
	X509_NAME *n = mkname(NULL, "Only Org");
	char buf[64];

	x509info_label(n, buf, sizeof(buf));
	cr_assert_str_eq(buf, "O=Only Org");
	X509_NAME_free(n);
}

Test(names, control_characters_stay_escaped)
{
	X509_NAME *n = mkname("evil\ninjected", NULL);
	char buf[64];

	x509info_name(n, buf, sizeof(buf));
	cr_assert_null(strchr(buf, '\n'), "a name is one line: %s", buf);
	X509_NAME_free(n);
}

Test(names, truncation_never_splits_a_utf8_character)
{
	X509_NAME *n = mkname("Zürich", NULL);
	char buf[6];  /* "CN=Z" + the first byte of ü would fit: must not */
	char big[8];

	memset(buf, 'x', sizeof(buf));
	x509info_name(n, buf, sizeof(buf));
	cr_assert_str_eq(buf, "CN=Z");
	x509info_name(n, big, sizeof(big));
	cr_assert_str_eq(big, "CN=Zür");
	x509info_name(n, buf, 1);
	cr_assert_str_eq(buf, "");
	X509_NAME_free(n);
}

Test(names, parse_name_round_trips_and_rejects_trailing_bytes)
{
	X509 *root = load_one("client-root.pem");
	unsigned char *der = NULL;
	uint8_t *longer;
	int len = i2d_X509_NAME(X509_get_subject_name(root), &der);
	X509_NAME *n;
	char buf[256];
	static const uint8_t junk[] = { 0x30, 0x03, 0x02, 0x01, 0x00 };

	cr_assert_gt(len, 0);
	n = x509info_parse_name(der, (size_t)len);
	cr_assert_not_null(n);
	cr_assert_eq(X509_NAME_cmp(n, X509_get_subject_name(root)), 0);
	x509info_name(n, buf, sizeof(buf));
	cr_assert_str_eq(buf, "CN=Lab Client Root CA, O=mtlsdiag Lab");
	X509_NAME_free(n);

	longer = malloc((size_t)len + 1);
	cr_assert_not_null(longer);
	memcpy(longer, der, (size_t)len);
	longer[len] = 0;
	cr_assert_null(x509info_parse_name(longer, (size_t)len + 1));
	cr_assert_null(x509info_parse_name(der, (size_t)len - 1));
	cr_assert_null(x509info_parse_name(junk, sizeof(junk)));
	cr_assert_null(x509info_parse_name(der, 0));
	free(longer);
	OPENSSL_free(der);
	X509_free(root);
}

Test(names, time_strings_are_rfc3339_utc)
{
	char buf[32];

	x509info_time_str(utc(2026, 11, 23, 12, 14, 2), buf, sizeof(buf));
	cr_assert_str_eq(buf, "2026-11-23T12:14:02Z");
}

/* ---- cert_cache ------------------------------------------------------- */

Test(cert_cache, a_hit_returns_the_same_entry)
{
	X509 *x = load_one("good.pem");
	struct cert_cache *cache = cert_cache_new(16);
	struct cert_info direct;
	const struct cached_cert *a, *b;
	size_t len;
	uint8_t *der = der_of(x, &len);
	uint8_t *copy = malloc(len);

	cr_assert_not_null(cache);
	cr_assert_not_null(copy);
	memcpy(copy, der, len);
	a = cert_cache_get(cache, der, len);
	b = cert_cache_get(cache, copy, len);  /* same bytes, other buffer */
	cr_assert_not_null(a);
	cr_assert_eq(a, b);
	cr_assert_not_null(a->x509);
	cr_assert_not(a->info.parse_failed);
	x509info_summarize(x, &direct);
	cr_assert_str_eq(a->info.subject, direct.subject);
	cr_assert_str_eq(a->info.sha256, direct.sha256);
	cr_assert_eq(X509_cmp(a->x509, x), 0);
	free(copy);
	OPENSSL_free(der);
	cert_cache_free(cache);
	X509_free(x);
}

Test(cert_cache, garbage_bytes_are_kept_as_parse_failed)
{
	static const uint8_t junk[] = "this is not a certificate";
	struct cert_cache *cache = cert_cache_new(4);
	const struct cached_cert *a, *b;
	unsigned char md[32];
	char want[65];
	size_t i;

	cr_assert_not_null(cache);
	a = cert_cache_get(cache, junk, sizeof(junk) - 1);
	cr_assert_not_null(a);
	cr_assert_null(a->x509);
	cr_assert(a->info.parse_failed);
	cr_assert(EVP_Digest(junk, sizeof(junk) - 1, md, NULL, EVP_sha256(), NULL));
	for (i = 0; i < 32; i++)
		snprintf(want + 2 * i, 3, "%02x", md[i]);
	cr_assert_str_eq(a->info.sha256, want);
	b = cert_cache_get(cache, junk, sizeof(junk) - 1);
	cr_assert_eq(a, b, "a failed parse is cached too");
	a = cert_cache_get(cache, junk, 0);
	cr_assert_not_null(a);
	cr_assert(a->info.parse_failed);
	cert_cache_free(cache);
}

Test(cert_cache, a_certificate_with_trailing_bytes_is_not_a_certificate)
{
	X509 *x = load_one("good.pem");
	struct cert_cache *cache = cert_cache_new(4);
	size_t len;
	uint8_t *der = der_of(x, &len), *longer = malloc(len + 1);
	const struct cached_cert *a;

	cr_assert_not_null(longer);
	memcpy(longer, der, len);
	longer[len] = 0;
	a = cert_cache_get(cache, longer, len + 1);
	cr_assert_null(a->x509);
	cr_assert(a->info.parse_failed);
	free(longer);
	OPENSSL_free(der);
	cert_cache_free(cache);
	X509_free(x);
}

Test(cert_cache, evicts_when_full_and_stays_correct)
{
	static const char *const names[] = { "good.pem", "expired.pem", "notyet.pem",
		"badeku.pem", "foreign.pem", "selfsigned.pem", "client-root.pem" };
	enum { N = sizeof(names) / sizeof(names[0]) };
	struct cert_cache *cache = cert_cache_new(3);
	uint8_t *der[N];
	size_t len[N], i, round;
	char subj[N][256];

	cr_assert_not_null(cache);
	for (i = 0; i < N; i++) {
		X509 *x = load_one(names[i]);
		struct cert_info ci;

		der[i] = der_of(x, &len[i]);
		x509info_summarize(x, &ci);
		strcpy(subj[i], ci.subject);
		X509_free(x);
	}
	for (round = 0; round < 5; round++) {
		for (i = 0; i < N; i++) {
			size_t j = (i * 3 + round) % N;
			const struct cached_cert *e = cert_cache_get(cache, der[j], len[j]);

			cr_assert_not_null(e);
			cr_assert_not_null(e->x509);
			cr_assert_str_eq(e->info.subject, subj[j]);
		}
	}
	/* the three certificates of one chain, fetched in turn, all stay */
	{
		const struct cached_cert *a = cert_cache_get(cache, der[0], len[0]);
		const struct cached_cert *b = cert_cache_get(cache, der[1], len[1]);
		const struct cached_cert *c = cert_cache_get(cache, der[2], len[2]);

		cr_assert_str_eq(a->info.subject, subj[0]);
		cr_assert_str_eq(b->info.subject, subj[1]);
		cr_assert_str_eq(c->info.subject, subj[2]);
	}
	for (i = 0; i < N; i++)
		OPENSSL_free(der[i]);
	cert_cache_free(cache);
}

Test(cert_cache, hits_are_cheap)
{
	static const char *const names[] = { "good.pem", "client-inter.pem", "foreign.pem" };
	struct cert_cache *cache = cert_cache_new(64);
	uint8_t *der[3];
	size_t len[3], i;
	struct timespec t0, t1;
	double secs;

	for (i = 0; i < 3; i++) {
		X509 *x = load_one(names[i]);
		der[i] = der_of(x, &len[i]);
		X509_free(x);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 300000; i++)
		cr_assert_not_null(cert_cache_get(cache, der[i % 3], len[i % 3]));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	/* 100,000 connections of three certificates: parsed three times */
	cr_assert_lt(secs, 2.0, "300000 lookups took %.3f s", secs);
	for (i = 0; i < 3; i++)
		OPENSSL_free(der[i]);
	cert_cache_free(cache);
}

/* ---- chain_check against the lab PKI ---------------------------------- */

struct lab {
	X509_NAME *client_root_name;
	X509_STORE *bundle;  /* client-root.pem, as the lab servers' ssl_client_certificate */
};

static void lab_open(struct lab *lab)
{
	X509 *root = load_one("client-root.pem");

	lab->client_root_name = X509_NAME_dup(X509_get_subject_name(root));
	lab->bundle = X509_STORE_new();
	cr_assert(lab->client_root_name && lab->bundle);
	cr_assert(X509_STORE_add_cert(lab->bundle, root));
	X509_free(root);
}

static void lab_close(struct lab *lab)
{
	X509_NAME_free(lab->client_root_name);
	X509_STORE_free(lab->bundle);
}

/* Runs chain_check on a PEM file of the lab PKI sent as the client's chain. */
static void check_file(const char *file, const struct lab *lab, bool named, bool with_bundle,
		       time_t at, struct chain_report *r)
{
	X509 *certs[MAX_CHAIN];
	size_t n = load_pem(file, certs, MAX_CHAIN);
	X509_NAME *const names[1] = { lab->client_root_name };

	chain_check(certs, n, names, named ? 1 : 0, at, with_bundle ? lab->bundle : NULL, r);
	free_certs(certs, n);
}

static void dump(const char *file, const struct chain_report *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		cr_log_info("%s: %s: %s", file, reason_code_name(r->findings[i].reason), r->findings[i].text);
}

/* Every finding says the same reason: the one that decides the case. */
static void expect_single(const char *file, const struct chain_report *r, enum reason_code want)
{
	size_t i;

	dump(file, r);
	cr_assert(r->checked, "%s: not checked", file);
	cr_assert_gt(r->n, 0, "%s: no finding, expected %s", file, reason_code_name(want));
	for (i = 0; i < r->n; i++)
		cr_assert_eq(r->findings[i].reason, want, "%s: finding %zu is %s, expected %s (%s)",
			     file, i, reason_code_name(r->findings[i].reason),
			     reason_code_name(want), r->findings[i].text);
}

static const struct {
	const char *file;
	enum reason_code wire;      /* with the CA names, no bundle */
	enum reason_code unnamed;   /* no CA names, no bundle */
} lab_cases[] = {
	{ "good-chain.pem", R_NONE, R_NONE },
	{ "good.pem", R_MISSING_INTERMEDIATE, R_NONE },
	{ "foreign.pem", R_UNKNOWN_ISSUER, R_NONE },
	{ "selfsigned.pem", R_SELF_SIGNED, R_SELF_SIGNED },
	{ "expired-chain.pem", R_EXPIRED, R_EXPIRED },
	{ "notyet-chain.pem", R_NOT_YET_VALID, R_NOT_YET_VALID },
	{ "badeku-chain.pem", R_BAD_EKU, R_BAD_EKU },
};

Test(chain, lab_cases_with_ca_names)
{
	struct lab lab;
	struct chain_report r;
	size_t i;

	lab_open(&lab);
	for (i = 0; i < sizeof(lab_cases) / sizeof(lab_cases[0]); i++) {
		check_file(lab_cases[i].file, &lab, true, false, at_2026(), &r);
		cr_assert_not(r.bundle_verified);
		if (lab_cases[i].wire == R_NONE) {
			dump(lab_cases[i].file, &r);
			cr_assert_eq(r.n, 0, "%s", lab_cases[i].file);
			cr_assert(r.checked && r.issuer_named, "%s", lab_cases[i].file);
		} else {
			expect_single(lab_cases[i].file, &r, lab_cases[i].wire);
		}
	}
	lab_close(&lab);
}

Test(chain, lab_cases_with_the_bundle)
{
	struct lab lab;
	struct chain_report r;
	size_t i;

	lab_open(&lab);
	for (i = 0; i < sizeof(lab_cases) / sizeof(lab_cases[0]); i++) {
		check_file(lab_cases[i].file, &lab, true, true, at_2026(), &r);
		if (lab_cases[i].wire == R_NONE) {
			cr_assert_eq(r.n, 0, "%s", lab_cases[i].file);
			cr_assert(r.bundle_verified, "%s", lab_cases[i].file);
		} else {
			expect_single(lab_cases[i].file, &r, lab_cases[i].wire);
			cr_assert_not(r.bundle_verified);
			/* the wire finding and the bundle's nginx-style line */
			cr_assert_eq(r.n, 2, "%s", lab_cases[i].file);
		}
	}
	lab_close(&lab);
}

Test(chain, lab_cases_without_ca_names_skip_issuer_checks)
{
	struct lab lab;
	struct chain_report r;
	size_t i;

	lab_open(&lab);
	for (i = 0; i < sizeof(lab_cases) / sizeof(lab_cases[0]); i++) {
		check_file(lab_cases[i].file, &lab, false, false, at_2026(), &r);
		cr_assert_not(r.issuer_named);
		if (lab_cases[i].unnamed == R_NONE)
			cr_assert_eq(r.n, 0, "%s: %s", lab_cases[i].file, r.n ? r.findings[0].text : "");
		else
			expect_single(lab_cases[i].file, &r, lab_cases[i].unnamed);
	}
	lab_close(&lab);
}

Test(chain, bundle_without_ca_names_still_tells_missing_from_unknown)
{
	struct lab lab;
	struct chain_report r;

	lab_open(&lab);
	check_file("good.pem", &lab, false, true, at_2026(), &r);
	expect_single("good.pem", &r, R_MISSING_INTERMEDIATE);
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.findings[0].text,
			 "nginx would log \"client SSL certificate verify error: (21:unable to verify the first certificate)\"");
	check_file("foreign.pem", &lab, false, true, at_2026(), &r);
	expect_single("foreign.pem", &r, R_UNKNOWN_ISSUER);
	cr_assert(strstr(r.findings[0].text, "21:unable to verify the first certificate"));
	check_file("good-chain.pem", &lab, false, true, at_2026(), &r);
	cr_assert(r.bundle_verified);
	cr_assert_eq(r.n, 0);
	lab_close(&lab);
}

Test(chain, evidence_lines_name_certificates_and_dates)
{
	struct lab lab;
	struct chain_report r;

	lab_open(&lab);
	check_file("expired-chain.pem", &lab, true, false, at_2026(), &r);
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.findings[0].text,
			 "client certificate CN=expired-client expired 2021-01-01T00:00:00Z (the connection was at 2026-11-23T12:14:02Z)");
	cr_assert(r.issuer_named);

	check_file("notyet-chain.pem", &lab, true, false, at_2026(), &r);
	cr_assert_str_eq(r.findings[0].text,
			 "client certificate CN=notyet-client is not valid until 2090-01-01T00:00:00Z (the connection was at 2026-11-23T12:14:02Z)");

	check_file("good.pem", &lab, true, false, at_2026(), &r);
	cr_assert_str_eq(r.findings[0].text,
			 "the leaf's issuer CN=Lab Issuing CA is neither sent nor among the CAs the server named; an intermediate is probably missing");

	check_file("foreign.pem", &lab, true, false, at_2026(), &r);
	cr_assert_str_eq(r.findings[0].text,
			 "the chain ends at CN=Elsewhere Root CA, which is not among the CAs the server named: [CN=Lab Client Root CA, O=mtlsdiag Lab]");

	check_file("badeku-chain.pem", &lab, true, false, at_2026(), &r);
	cr_assert(strstr(r.findings[0].text, "CN=badeku-client has extended key usage serverAuth without clientAuth"),
		  "%s", r.findings[0].text);

	check_file("selfsigned.pem", &lab, true, false, at_2026(), &r);
	cr_assert(strstr(r.findings[0].text, "CN=selfsigned-client is self-signed"), "%s", r.findings[0].text);

	check_file("expired-chain.pem", &lab, true, true, at_2026(), &r);
	cr_assert_str_eq(r.findings[1].text,
			 "nginx would log \"client SSL certificate verify error: (10:certificate has expired)\"");
	check_file("badeku-chain.pem", &lab, true, true, at_2026(), &r);
	cr_assert(strstr(r.findings[1].text, "26:unsuitable certificate purpose"), "%s", r.findings[1].text);
	check_file("selfsigned.pem", &lab, true, true, at_2026(), &r);
	cr_assert(strstr(r.findings[1].text, "18:self-signed certificate"), "%s", r.findings[1].text);
	lab_close(&lab);
}

Test(chain, decisive_findings_come_first)
{
	struct lab lab;
	struct chain_report r;

	lab_open(&lab);
	/* an expired leaf sent without its intermediate: both are true, the
	 * expiry decides */
	check_file("expired.pem", &lab, true, false, at_2026(), &r);
	dump("expired.pem", &r);
	cr_assert_eq(r.n, 2);
	cr_assert_eq(r.findings[0].reason, R_EXPIRED);
	cr_assert_eq(r.findings[1].reason, R_MISSING_INTERMEDIATE);
	check_file("badeku.pem", &lab, true, false, at_2026(), &r);
	cr_assert_eq(r.n, 2);
	cr_assert_eq(r.findings[0].reason, R_BAD_EKU);
	cr_assert_eq(r.findings[1].reason, R_MISSING_INTERMEDIATE);
	lab_close(&lab);
}

Test(chain, the_connection_time_decides_validity)
{
	struct lab lab;
	struct chain_report r;
	time_t in_2020 = utc(2020, 6, 1, 0, 0, 0), in_2091 = utc(2091, 6, 1, 0, 0, 0);

	lab_open(&lab);
	check_file("expired-chain.pem", &lab, true, false, in_2020, &r);
	cr_assert_eq(r.n, 0, "%s", r.n ? r.findings[0].text : "");
	cr_assert(r.issuer_named);
	check_file("expired-chain.pem", &lab, true, true, in_2020, &r);
	cr_assert_eq(r.n, 0);
	cr_assert(r.bundle_verified);

	check_file("notyet-chain.pem", &lab, true, true, in_2091, &r);
	cr_assert_eq(r.n, 0);
	cr_assert(r.bundle_verified);
	/* and the good client has expired by then... not before 2080 */
	check_file("good-chain.pem", &lab, true, false, in_2091, &r);
	expect_single("good-chain.pem in 2091", &r, R_EXPIRED);
	/* the very second notAfter is reached counts as expired, as in OpenSSL */
	check_file("expired-chain.pem", &lab, true, true, utc(2021, 1, 1, 0, 0, 0), &r);
	expect_single("expired-chain.pem at notAfter", &r, R_EXPIRED);
	check_file("expired-chain.pem", &lab, true, true, utc(2020, 12, 31, 23, 59, 59), &r);
	cr_assert_eq(r.n, 0);
	lab_close(&lab);
}

Test(chain, a_passing_bundle_settles_the_issuer_question)
{
	struct lab lab;
	struct chain_report r;
	X509 *certs[MAX_CHAIN], *foreign_root = load_one("foreign-root.pem");
	size_t n = load_pem("good-chain.pem", certs, MAX_CHAIN);
	X509_NAME *const names[1] = { X509_get_subject_name(foreign_root) };

	lab_open(&lab);
	/* the server names only Elsewhere Root CA, but trusts client-root too
	 * (nginx's ssl_trusted_certificate is not advertised) */
	chain_check(certs, n, names, 1, at_2026(), NULL, &r);
	expect_single("good-chain.pem", &r, R_UNKNOWN_ISSUER);
	cr_assert(strstr(r.findings[0].text, "the chain ends at CN=Lab Client Root CA"), "%s", r.findings[0].text);
	chain_check(certs, n, names, 1, at_2026(), lab.bundle, &r);
	cr_assert(r.bundle_verified);
	cr_assert_eq(r.n, 0);
	cr_assert_not(r.issuer_named);
	free_certs(certs, n);
	X509_free(foreign_root);
	lab_close(&lab);
}

Test(chain, a_named_self_signed_leaf_is_not_reported)
{
	X509 *self = load_one("selfsigned.pem");
	X509_NAME *const names[1] = { X509_get_subject_name(self) };
	struct chain_report r;

	chain_check(&self, 1, names, 1, at_2026(), NULL, &r);
	cr_assert_eq(r.n, 0, "%s", r.n ? r.findings[0].text : "");
	cr_assert(r.issuer_named);
	X509_free(self);
}

Test(chain, the_sent_order_does_not_matter)
{
	struct lab lab;
	struct chain_report r;
	X509 *certs[3];

	lab_open(&lab);
	/* leaf, then an unrelated certificate, then the intermediate */
	certs[0] = load_one("good.pem");
	certs[1] = load_one("server.pem");
	certs[2] = load_one("client-inter.pem");
	{
		X509_NAME *const names[1] = { lab.client_root_name };
		chain_check(certs, 3, names, 1, at_2026(), lab.bundle, &r);
	}
	cr_assert_eq(r.n, 0, "%s", r.n ? r.findings[0].text : "");
	cr_assert(r.issuer_named && r.bundle_verified);
	free_certs(certs, 3);
	lab_close(&lab);
}

Test(chain, nothing_to_check)
{
	struct chain_report r;
	X509 *none[1] = { NULL };

	chain_check(NULL, 0, NULL, 0, at_2026(), NULL, &r);
	cr_assert_not(r.checked);
	cr_assert_eq(r.n, 0);
	chain_check(none, 1, NULL, 0, at_2026(), NULL, &r);
	cr_assert_not(r.checked);
}

/* ---- chain_check on certificates made here ---------------------------- */

Test(chain, key_usage_without_digital_signature)
{
	EVP_PKEY *ca = keygen("ED25519"), *leaf = keygen("EC");
	X509 *root = mkcert("Test Root", "Test Root", ca, ca, "critical,CA:TRUE", NULL, "critical,keyCertSign");
	X509 *x = mkcert("kx-client", "Test Root", leaf, ca, "CA:FALSE", "clientAuth", "critical,keyEncipherment");
	X509 *certs[2] = { x, root };
	X509_NAME *const names[1] = { X509_get_subject_name(root) };
	struct chain_report r;

	chain_check(certs, 2, names, 1, at_2026(), NULL, &r);
	expect_single("kx-client", &r, R_BAD_KEY_USAGE);
	cr_assert_eq(r.n, 1);
	cr_assert(strstr(r.findings[0].text, "CN=kx-client has key usage keyEncipherment without digitalSignature"),
		  "%s", r.findings[0].text);
	cr_assert(r.issuer_named);
	X509_free(x);
	X509_free(root);
	EVP_PKEY_free(ca);
	EVP_PKEY_free(leaf);
}

/* RFC 5280 lets anyExtendedKeyUsage stand for every purpose (so the
 * summary says eku_client_auth), but OpenSSL's ssl_client purpose wants
 * clientAuth itself: nginx logs 26:unsuitable certificate purpose. */
Test(chain, any_eku_alone_is_refused_by_openssl_servers)
{
	EVP_PKEY *ca = keygen("ED25519"), *leaf = keygen("ED25519");
	X509 *root = mkcert("Test Root", "Test Root", ca, ca, "critical,CA:TRUE", NULL, "critical,keyCertSign");
	X509 *any = mkcert("any-client", "Test Root", leaf, ca, NULL, "anyExtendedKeyUsage", "critical,digitalSignature");
	X509 *both = mkcert("both-client", "Test Root", leaf, ca, NULL, "clientAuth,anyExtendedKeyUsage", "critical,digitalSignature");
	X509_NAME *const names[1] = { X509_get_subject_name(root) };
	X509_STORE *store = X509_STORE_new();
	struct chain_report r;

	cr_assert(X509_STORE_add_cert(store, root));
	chain_check(&any, 1, names, 1, at_2026(), NULL, &r);
	expect_single("any-client", &r, R_BAD_EKU);
	cr_assert(strstr(r.findings[0].text, "anyExtendedKeyUsage without clientAuth"), "%s", r.findings[0].text);
	cr_assert(r.issuer_named);
	chain_check(&any, 1, names, 1, at_2026(), store, &r);
	expect_single("any-client", &r, R_BAD_EKU);
	cr_assert(strstr(r.findings[1].text, "26:unsuitable certificate purpose"), "%s", r.findings[1].text);

	chain_check(&both, 1, names, 1, at_2026(), store, &r);
	dump("both-client", &r);
	cr_assert_eq(r.n, 0);
	cr_assert(r.issuer_named && r.bundle_verified);
	X509_STORE_free(store);
	X509_free(any);
	X509_free(both);
	X509_free(root);
	EVP_PKEY_free(ca);
	EVP_PKEY_free(leaf);
}

Test(chain, an_expired_intermediate_is_named)
{
	EVP_PKEY *ca = keygen("ED25519"), *k1 = keygen("ED25519"), *leaf = keygen("ED25519");
	X509 *root = mkcert("Test Root", "Test Root", ca, ca, "critical,CA:TRUE", NULL, "critical,keyCertSign");
	X509 *inter = mkcert("Test Issuing", "Test Root", k1, ca, "critical,CA:TRUE", NULL, "critical,keyCertSign");
	X509 *x;
	X509 *certs[2];
	X509_NAME *const names[1] = { X509_get_subject_name(root) };
	struct chain_report r;

	/* the intermediate ran out in 2025; the leaf is still valid */
	cr_assert(ASN1_TIME_set(X509_getm_notAfter(inter), utc(2025, 1, 1, 0, 0, 0)));
	cr_assert_gt(X509_sign(inter, ca, NULL), 0);
	x = mkcert("late-client", "Test Issuing", leaf, k1, NULL, "clientAuth", "critical,digitalSignature");
	certs[0] = x;
	certs[1] = inter;
	chain_check(certs, 2, names, 1, at_2026(), NULL, &r);
	expect_single("late-client", &r, R_EXPIRED);
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.findings[0].text,
			 "issuing certificate CN=Test Issuing (certificate 2 of 2 sent) expired 2025-01-01T00:00:00Z (the connection was at 2026-11-23T12:14:02Z)");
	X509_free(x);
	X509_free(inter);
	X509_free(root);
	EVP_PKEY_free(ca);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(leaf);
}

Test(chain, a_forged_signature_is_found_on_the_wire_and_by_the_bundle)
{
	EVP_PKEY *ca = keygen("ED25519"), *impostor = keygen("ED25519"), *leaf = keygen("ED25519");
	X509 *root = mkcert("Test Root", "Test Root", ca, ca, "critical,CA:TRUE", NULL, "critical,keyCertSign");
	X509 *inter = mkcert("Test Issuing", "Test Root", impostor, ca, "critical,CA:TRUE", NULL, "critical,keyCertSign");
	/* claims Test Issuing as its issuer, but the impostor's key is not the
	 * one that signed it */
	X509 *x = mkcert("forged-client", "Test Issuing", leaf, leaf, NULL, "clientAuth", "critical,digitalSignature");
	X509 *certs[2] = { x, inter };
	X509_NAME *const names[1] = { X509_get_subject_name(root) };
	X509_STORE *store = X509_STORE_new();
	struct chain_report r;

	cr_assert(X509_STORE_add_cert(store, root));
	chain_check(certs, 2, names, 1, at_2026(), store, &r);
	expect_single("forged-client", &r, R_BAD_SIGNATURE);
	cr_assert(strstr(r.findings[0].text,
			 "the signature of CN=forged-client does not verify with the key of its issuer CN=Test Issuing"),
		  "%s", r.findings[0].text);
	cr_assert(strstr(r.findings[1].text, "7:certificate signature failure"), "%s", r.findings[1].text);
	cr_assert(r.issuer_named);
	X509_STORE_free(store);
	X509_free(x);
	X509_free(inter);
	X509_free(root);
	EVP_PKEY_free(ca);
	EVP_PKEY_free(impostor);
	EVP_PKEY_free(leaf);
}

Test(chain, a_missing_intermediate_higher_up)
{
	EVP_PKEY *ca = keygen("ED25519"), *k1 = keygen("ED25519"), *k2 = keygen("ED25519"), *leaf = keygen("ED25519");
	X509 *root = mkcert("Test Root", "Test Root", ca, ca, "critical,CA:TRUE", NULL, "critical,keyCertSign");
	X509 *policy = mkcert("Test Policy CA", "Test Root", k1, ca, "critical,CA:TRUE", NULL, "critical,keyCertSign");
	X509 *issuing = mkcert("Test Issuing", "Test Policy CA", k2, k1, "critical,CA:TRUE", NULL, "critical,keyCertSign");
	X509 *x = mkcert("deep-client", "Test Issuing", leaf, k2, NULL, "clientAuth", "critical,digitalSignature");
	X509 *certs[2] = { x, issuing };  /* Test Policy CA left out */
	X509_NAME *const names[1] = { X509_get_subject_name(root) };
	struct chain_report r;

	chain_check(certs, 2, names, 1, at_2026(), NULL, &r);
	expect_single("deep-client", &r, R_MISSING_INTERMEDIATE);
	cr_assert_str_eq(r.findings[0].text,
			 "the issuer of CN=Test Issuing (last of the sent chain), CN=Test Policy CA, is neither sent nor among the CAs the server named; an intermediate is probably missing");
	X509_free(x);
	X509_free(issuing);
	X509_free(policy);
	X509_free(root);
	EVP_PKEY_free(ca);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(leaf);
}

Test(chain, many_ca_names_keep_the_line_whole)
{
	X509 *leaf = load_one("foreign.pem");
	X509_NAME *names[FACTS_MAX_CA_NAMES];
	struct chain_report r;
	size_t i, len;
	char cn[64];

	for (i = 0; i < FACTS_MAX_CA_NAMES; i++) {
		snprintf(cn, sizeof(cn), "Some Internal CA number %zu", i);
		names[i] = mkname(cn, "Some Org");
	}
	chain_check(&leaf, 1, names, FACTS_MAX_CA_NAMES, at_2026(), NULL, &r);
	expect_single("foreign.pem", &r, R_UNKNOWN_ISSUER);
	len = strlen(r.findings[0].text);
	cr_assert_lt(len, VERDICT_EVIDENCE_LEN);
	cr_assert_eq(r.findings[0].text[len - 1], ']', "%s", r.findings[0].text);
	cr_assert(strstr(r.findings[0].text, " more]"), "%s", r.findings[0].text);
	for (i = 0; i < FACTS_MAX_CA_NAMES; i++)
		X509_NAME_free(names[i]);
	X509_free(leaf);
}

/* ---- chain_check_memo ---------------------------------------------------- */

static void same_report(const char *what, const struct chain_report *a, const struct chain_report *b)
{
	size_t i;

	cr_assert(a->checked == b->checked && a->issuer_named == b->issuer_named &&
		  a->bundle_verified == b->bundle_verified, "%s: flags differ", what);
	cr_assert_eq(a->n, b->n, "%s: %zu findings, remembered %zu", what, a->n, b->n);
	for (i = 0; i < a->n; i++) {
		cr_assert_eq(a->findings[i].reason, b->findings[i].reason, "%s: finding %zu", what, i);
		cr_assert_eq(a->findings[i].from_verify, b->findings[i].from_verify, "%s: finding %zu", what, i);
		cr_assert_str_eq(a->findings[i].text, b->findings[i].text, "%s: finding %zu", what, i);
	}
	cr_assert(a->verify.trust == b->verify.trust && a->verify.ok == b->verify.ok &&
		  a->verify.error == b->verify.error && a->verify.first_error == b->verify.first_error &&
		  a->verify.error_depth == b->verify.error_depth && a->verify.first_depth == b->verify.first_depth &&
		  a->verify.bundle_problems == b->verify.bundle_problems &&
		  a->verify.n_built == b->verify.n_built && a->verify.needed_depth == b->verify.needed_depth &&
		  memcmp(a->verify.built, b->verify.built, a->verify.n_built * sizeof(a->verify.built[0])) == 0 &&
		  a->verify.stops == b->verify.stops,
		  "%s: verifications differ (%d/%d, %d/%d)", what, a->verify.error, b->verify.error,
		  a->verify.first_error, b->verify.first_error);
}

/* The remembered checks give chain_check's report, whatever the time (each
 * certificate's own validity edges included), the CA names and the order
 * the chains come in. */
Test(chain, remembered_checks_give_the_same_report)
{
	static const char *const files[] = {
		"good-chain.pem", "good.pem", "foreign.pem", "selfsigned.pem", "expired-chain.pem",
		"notyet-chain.pem", "badeku-chain.pem", "expired.pem", "notyet.pem", "badeku.pem",
	};
	enum { N_FILES = sizeof(files) / sizeof(files[0]) };
	struct cert_cache *cache = cert_cache_new(64);
	struct chain_memo *memo = chain_memo_new();
	X509 *certs[N_FILES][MAX_CHAIN];
	uint64_t ids[N_FILES][MAX_CHAIN];
	size_t n[N_FILES], f, i, round, named;
	struct lab lab;
	struct chain_policy with_bundle;
	X509_NAME *other = mkname("Other CA", "Other Org");
	uint64_t other_id = 1u << 30;

	cr_assert(cache && memo);
	lab_open(&lab);
	chain_policy_init(&with_bundle);
	with_bundle.bundle = lab.bundle;
	for (f = 0; f < N_FILES; f++) {
		n[f] = load_pem(files[f], certs[f], MAX_CHAIN);
		for (i = 0; i < n[f]; i++) {
			size_t len;
			uint8_t *der = der_of(certs[f][i], &len);
			const struct cached_cert *cc = cert_cache_get(cache, der, len);

			cr_assert(cc && cc->id);
			ids[f][i] = cc->id;
			OPENSSL_free(der);
		}
	}
	for (round = 0; round < 2; round++) {
		for (f = 0; f < N_FILES; f++) {
			time_t times[2 + 4 * MAX_CHAIN];
			size_t nt = 0, t;

			times[nt++] = at_2026();
			times[nt++] = utc(2001, 1, 1, 0, 0, 0);
			for (i = 0; i < n[f]; i++) {
				time_t nb, na;

				cr_assert(x509info_asn1_time(X509_get0_notBefore(certs[f][i]), &nb));
				cr_assert(x509info_asn1_time(X509_get0_notAfter(certs[f][i]), &na));
				times[nt++] = nb - 1;
				times[nt++] = nb;
				times[nt++] = na - 1;
				times[nt++] = na;
			}
			for (named = 0; named < 3; named++) {
				/* no CA names, the lab's client root, a foreign CA */
				X509_NAME *const names[1] = { named == 2 ? other : lab.client_root_name };
				uint64_t ca_id = named == 0 ? 0 : named == 1 ? other_id + 1 : other_id;

				for (t = 0; t < nt; t++) {
					struct chain_report plain, remembered;
					char what[128];

					snprintf(what, sizeof(what), "%s, names %zu, time %zu, round %zu", files[f],
						 named, t, round);
					chain_check(certs[f], n[f], names, named ? 1 : 0, times[t], NULL, &plain);
					chain_check_memo(memo, ids[f], ca_id, certs[f], n[f], names, named ? 1 : 0,
							 times[t], NULL, true, &remembered);
					same_report(what, &plain, &remembered);
					/* with a bundle it is chain_check itself */
					chain_check(certs[f], n[f], names, named ? 1 : 0, times[t], lab.bundle, &plain);
					chain_check_memo(memo, ids[f], ca_id, certs[f], n[f], names, named ? 1 : 0,
							 times[t], &with_bundle, true, &remembered);
					same_report(what, &plain, &remembered);
				}
			}
		}
	}
	for (f = 0; f < N_FILES; f++)
		free_certs(certs[f], n[f]);
	X509_NAME_free(other);
	lab_close(&lab);
	chain_memo_free(memo);
	cert_cache_free(cache);
}

/* A verification against a bundle is remembered between the moments a
 * certificate of the chain or of the bundle changes validity: the same
 * report as chain_check_policy at each such edge, in either direction of
 * time.  The bundle holds the intermediate, so a leaf sent alone verifies
 * and its chain's validity changes when the CAs', not its own, do. */
Test(chain, a_bundle_verification_is_remembered_between_validity_edges)
{
	static const char *const files[] = { "good.pem", "good-chain.pem", "expired.pem", "foreign.pem" };
	enum { N_FILES = sizeof(files) / sizeof(files[0]) };
	struct cert_cache *cache = cert_cache_new(64);
	struct chain_memo *memo = chain_memo_new();
	X509 *root = load_one("client-root.pem"), *inter = load_one("client-inter.pem");
	X509 *const bundle_certs[2] = { root, inter };
	struct bundle_summary *summary = bundle_summarize(bundle_certs, 2);
	X509_STORE *store = X509_STORE_new();
	X509_NAME *const names[1] = { X509_get_subject_name(root) };
	struct chain_policy pol;
	X509 *certs[MAX_CHAIN];
	uint64_t ids[MAX_CHAIN];
	time_t times[12];
	size_t nt = 0, f, i, t, round;

	cr_assert(cache && memo && summary && store);
	cr_assert(X509_STORE_add_cert(store, root) && X509_STORE_add_cert(store, inter));
	chain_policy_init(&pol);
	pol.bundle = store;
	pol.bundle_certs = bundle_certs;
	pol.n_bundle_certs = 2;
	pol.bundle_summary = summary;
	times[nt++] = at_2026();
	for (i = 0; i < 2; i++) {
		time_t nb, na;

		cr_assert(x509info_asn1_time(X509_get0_notBefore(bundle_certs[i]), &nb));
		cr_assert(x509info_asn1_time(X509_get0_notAfter(bundle_certs[i]), &na));
		times[nt++] = nb - 1;
		times[nt++] = nb;
		times[nt++] = na - 1;
		times[nt++] = na;
		times[nt++] = at_2026();
	}
	for (f = 0; f < N_FILES; f++) {
		size_t n = load_pem(files[f], certs, MAX_CHAIN);

		for (i = 0; i < n; i++) {
			size_t len;
			uint8_t *der = der_of(certs[i], &len);
			const struct cached_cert *cc = cert_cache_get(cache, der, len);

			cr_assert(cc && cc->id);
			ids[i] = cc->id;
			OPENSSL_free(der);
		}
		for (round = 0; round < 2; round++) {
			for (t = 0; t < nt; t++) {
				/* forwards, then backwards */
				time_t at = times[round == 0 ? t : nt - 1 - t];
				struct chain_report plain, remembered;
				char what[128];

				snprintf(what, sizeof(what), "%s, time %zu, round %zu", files[f], t, round);
				chain_check_policy(certs, n, names, 1, at, &pol, true, &plain);
				chain_check_memo(memo, ids, 7, certs, n, names, 1, at, &pol, true, &remembered);
				same_report(what, &plain, &remembered);
				cr_assert_str_eq(plain.verify.note, remembered.verify.note, "%s", what);
			}
		}
		free_certs(certs, n);
	}
	X509_free(root);
	X509_free(inter);
	X509_STORE_free(store);
	bundle_summary_free(summary);
	chain_memo_free(memo);
	cert_cache_free(cache);
}

/* ---- a chain longer than eight certificates ----
 *
 * tests/data/longchain/client-chain.pem: the ten certificates curl sent to
 * nginx (scripts/make-long-chain-fixtures), leaf, 8 intermediates, root. */

#define LONG_CHAIN_LEN 10

static void load_long_chain(X509 *out[LONG_CHAIN_LEN])
{
	BIO *bio = BIO_new_file(test_path("tests/data/longchain/client-chain.pem"), "r");
	size_t n = 0;

	cr_assert_not_null(bio);
	while (n < LONG_CHAIN_LEN && (out[n] = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		n++;
	BIO_free(bio);
	cr_assert_eq(n, LONG_CHAIN_LEN);
}

static time_t long_chain_time(X509 *leaf)
{
	struct cert_info ci;

	x509info_summarize(leaf, &ci);
	return ci.not_before_t + 86400;
}

Test(chain, ten_certificates_reaching_the_named_root_pass)
{
	X509 *certs[LONG_CHAIN_LEN];
	X509_NAME *names[1];
	struct chain_report r;
	struct chain_memo *memo = chain_memo_new();
	uint64_t ids[LONG_CHAIN_LEN];
	size_t i;

	load_long_chain(certs);
	names[0] = X509_get_subject_name(certs[LONG_CHAIN_LEN - 1]);
	chain_check(certs, LONG_CHAIN_LEN, names, 1, long_chain_time(certs[0]), NULL, &r);
	dump("client-chain.pem", &r);
	cr_assert(r.checked);
	cr_assert(r.issuer_named, "the walk reaches the root the server named");
	cr_assert_eq(r.n, 0, "nothing on the wire is wrong with this chain");
	/* the same through the memo (longer than it remembers) */
	for (i = 0; i < LONG_CHAIN_LEN; i++)
		ids[i] = i + 1;
	cr_assert_not_null(memo);
	chain_check_memo(memo, ids, 1, certs, LONG_CHAIN_LEN, names, 1, long_chain_time(certs[0]), NULL, true, &r);
	cr_assert(r.issuer_named);
	cr_assert_eq(r.n, 0);
	chain_memo_free(memo);
	free_certs(certs, LONG_CHAIN_LEN);
}

/* Past the certificates the walk looks at, the chain's end is unknown: its
 * issuer is not judged.  The leaf, then 32 certificates that did not issue
 * it, then its real path: the walk stops after the leaf. */
Test(chain, issuer_beyond_the_scanned_certificates_is_not_judged)
{
	X509 *real[LONG_CHAIN_LEN], *sent[1 + 32 + LONG_CHAIN_LEN - 1];
	X509_NAME *names[1];
	struct chain_report r;
	size_t i, n = 0;

	load_long_chain(real);
	names[0] = X509_get_subject_name(real[LONG_CHAIN_LEN - 1]);
	sent[n++] = real[0];
	for (i = 0; i < 32; i++)
		sent[n++] = real[LONG_CHAIN_LEN - 2];   /* Intermediate 1: issued by the root only */
	for (i = 1; i < LONG_CHAIN_LEN; i++)
		sent[n++] = real[i];
	chain_check(sent, n, names, 1, long_chain_time(real[0]), NULL, &r);
	dump("client-chain.pem, reordered", &r);
	cr_assert(r.checked);
	for (i = 0; i < r.n; i++)
		cr_assert(r.findings[i].reason != R_UNKNOWN_ISSUER && r.findings[i].reason != R_MISSING_INTERMEDIATE,
			  "judged a chain it did not walk: %s", r.findings[i].text);
	/* the same certificates, the real path first: walked whole */
	n = 0;
	for (i = 0; i < LONG_CHAIN_LEN; i++)
		sent[n++] = real[i];
	for (i = 0; i < 32; i++)
		sent[n++] = real[LONG_CHAIN_LEN - 2];
	chain_check(sent, n, names, 1, long_chain_time(real[0]), NULL, &r);
	cr_assert(r.issuer_named);
	free_certs(real, LONG_CHAIN_LEN);
}
