/* x509info: certificate summaries (struct cert_info) and distinguished-name
 * formatting, all through OpenSSL; a bounded cache so that a certificate
 * met on many connections is parsed and summarised once. */
#include "config.h"

#include "wire/x509info.h"
#include "wire/fnv.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

/* RFC 2253 order and escaping, but UTF-8 left as is (no \XX for bytes
 * >= 0x80) and ", " between RDNs so the line reads like nginx's
 * $ssl_client_s_dn.  Control characters stay escaped: a name is always one
 * line of evidence. */
#define NAME_FLAGS ((XN_FLAG_RFC2253 & ~XN_FLAG_SEP_MASK & ~ASN1_STRFLGS_ESC_MSB) | XN_FLAG_SEP_CPLUS_SPC)

/* Length of the longest prefix of s[0..len) that does not end inside a
 * UTF-8 sequence. */
static size_t utf8_boundary(const char *s, size_t len)
{
	size_t i = len, start, need;
	unsigned char c;

	/* walk back over at most 3 continuation bytes to the lead byte */
	while (i > 0 && len - i < 4 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0)
		return len;
	start = i - 1;
	c = (unsigned char)s[start];
	if (c < 0x80)
		return len;
	if ((c & 0xe0) == 0xc0)
		need = 2;
	else if ((c & 0xf0) == 0xe0)
		need = 3;
	else if ((c & 0xf8) == 0xf0)
		need = 4;
	else
		return len;  /* not UTF-8: leave the bytes alone */
	return len - start >= need ? len : start;
}

void x509info_copy_utf8(const char *src, size_t srclen, char *out, size_t outlen)
{
	size_t n;

	if (outlen == 0)
		return;
	n = srclen < outlen - 1 ? srclen : outlen - 1;
	if (n < srclen)
		n = utf8_boundary(src, n);
	memcpy(out, src, n);
	out[n] = '\0';
}

/* Formatting a name goes through a BIO and costs more than the rest of a
 * connection's analysis; the same few names (issuers, CA names) recur on
 * every connection, so each thread remembers its recent ones by their DER. */
#define NAME_MEMO_SLOTS 256
#define NAME_MEMO_DER 512

struct name_memo {
	size_t len;                     /* 0: empty slot */
	bool label;
	unsigned char der[NAME_MEMO_DER];
	char text[256];
};

static _Thread_local struct name_memo name_memo[NAME_MEMO_SLOTS];

static struct name_memo *memo_slot(const X509_NAME *n, bool label, const unsigned char **der, size_t *len)
{
	if (X509_NAME_get0_der(n, der, len) != 1 || *len == 0 || *len > NAME_MEMO_DER)
		return NULL;
	return &name_memo[(fnv64(*der, *len) ^ label) % NAME_MEMO_SLOTS];
}

static bool memo_find(struct name_memo *m, bool label, const unsigned char *der, size_t len,
		      char *out, size_t outlen)
{
	if (m == NULL || m->len != len || m->label != label || memcmp(m->der, der, len) != 0)
		return false;
	x509info_copy_utf8(m->text, strlen(m->text), out, outlen);
	return true;
}

static void memo_store(struct name_memo *m, bool label, const unsigned char *der, size_t len,
		       const char *text)
{
	if (m == NULL)
		return;
	memcpy(m->der, der, len);
	m->len = len;
	m->label = label;
	x509info_copy_utf8(text, strlen(text), m->text, sizeof(m->text));
}

static void name_format(const X509_NAME *n, char *out, size_t outlen);
static void label_format(const X509_NAME *n, char *out, size_t outlen);

/* x509info_name and x509info_label: formatted once per thread and name. */
static void memo_format(const X509_NAME *n, bool label, char *out, size_t outlen)
{
	const unsigned char *der = NULL;
	size_t len = 0;
	struct name_memo *m;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (n == NULL)
		return;
	m = memo_slot(n, label, &der, &len);
	if (memo_find(m, label, der, len, out, outlen))
		return;
	if (label)
		label_format(n, out, outlen);
	else
		name_format(n, out, outlen);
	if (outlen >= sizeof(m->text))
		memo_store(m, label, der, len, out);
}

void x509info_name(const X509_NAME *n, char *out, size_t outlen)
{
	memo_format(n, false, out, outlen);
}

static void name_format(const X509_NAME *n, char *out, size_t outlen)
{
	BIO *bio = NULL;
	char *data;
	long len;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (n == NULL)
		goto Exit;
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL)
		goto Exit;
	if (X509_NAME_print_ex(bio, n, 0, NAME_FLAGS) < 0)
		goto Exit;
	len = BIO_get_mem_data(bio, &data);
	if (len > 0)
		x509info_copy_utf8(data, (size_t)len, out, outlen);
Exit:
	BIO_free(bio);
	x509info_err_clear();
}

void x509info_label(const X509_NAME *n, char *out, size_t outlen)
{
	memo_format(n, true, out, outlen);
}

static void label_format(const X509_NAME *n, char *out, size_t outlen)
{
	X509_NAME *cn_only = NULL;
	int i, last = -1;

	/* the last CN in DER order is the most specific one */
	for (i = -1; (i = X509_NAME_get_index_by_NID(n, NID_commonName, i)) >= 0;)
		last = i;
	if (last < 0)
		goto Whole;
	cn_only = X509_NAME_new();
	if (cn_only == NULL ||
	    !X509_NAME_add_entry(cn_only, X509_NAME_get_entry(n, last), -1, 0))
		goto Whole;
	x509info_name(cn_only, out, outlen);
	X509_NAME_free(cn_only);
	return;
Whole:
	X509_NAME_free(cn_only);
	x509info_err_clear();
	x509info_name(n, out, outlen);
}

X509_NAME *x509info_parse_name(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509_NAME *name;

	if (der == NULL || len == 0 || len > LONG_MAX)
		return NULL;
	name = d2i_X509_NAME(NULL, &p, (long)len);
	if (name != NULL && p != der + len) {
		/* a DistinguishedName followed by junk is not a DistinguishedName */
		X509_NAME_free(name);
		name = NULL;
	}
	x509info_err_clear();
	return name;
}

/* The same validity dates recur on every connection: each thread keeps the
 * recent conversions (keyed by the time's text, confirmed by comparing it). */
#define TIME_MEMO_SLOTS 64

struct time_memo {
	int type;                      /* V_ASN1_UTCTIME or V_ASN1_GENERALIZEDTIME; 0 empty */
	unsigned char text[24];
	int len;
	time_t when;
};

static _Thread_local struct time_memo time_memo[TIME_MEMO_SLOTS];

int x509info_asn1_time(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;
	struct time_memo *m = NULL;
	const unsigned char *text;
	int len;

	/* ASN1_TIME_to_tm(NULL) would mean "now": never what we want */
	if (t == NULL)
		return 0;
	text = ASN1_STRING_get0_data(t);
	len = ASN1_STRING_length(t);
	if (text && len > 0 && len <= (int)sizeof(m->text)) {
		m = &time_memo[fnv64(text, (size_t)len) % TIME_MEMO_SLOTS];
		if (m->type == ASN1_STRING_type(t) && m->len == len && memcmp(m->text, text, (size_t)len) == 0) {
			*out = m->when;
			return 1;
		}
	}
	memset(&tm, 0, sizeof(tm));
	if (!ASN1_TIME_to_tm(t, &tm))
		return 0;
	*out = timegm(&tm);
	if (m) {
		m->type = ASN1_STRING_type(t);
		m->len = len;
		memcpy(m->text, text, (size_t)len);
		m->when = *out;
	}
	return 1;
}

void x509info_time_str(time_t t, char *out, size_t outlen)
{
	static _Thread_local struct { time_t t; char s[24]; bool set; } memo[16];
	size_t slot = (size_t)((uint64_t)t % 16);
	struct tm tm;

	if (outlen == 0)
		return;
	if (memo[slot].set && memo[slot].t == t) {
		x509info_copy_utf8(memo[slot].s, strlen(memo[slot].s), out, outlen);
		return;
	}
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		out[0] = '\0';
		return;
	}
	if (strlen(out) < sizeof(memo[slot].s)) {
		memcpy(memo[slot].s, out, strlen(out) + 1);
		memo[slot].t = t;
		memo[slot].set = true;
	}
}

static void time_field(const ASN1_TIME *t, char *out, size_t outlen, time_t *when)
{
	*when = 0;
	out[0] = '\0';
	if (x509info_asn1_time(t, when))
		x509info_time_str(*when, out, outlen);
}

static void hex_lower(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

/* The serial as `openssl x509 -serial` shows it: uppercase hex, whole
 * octets, no colons; "-" for the (invalid but seen) negative serials. */
static void serial_field(X509 *x, char *out, size_t outlen)
{
	static const char digits[] = "0123456789ABCDEF";
	const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
	const unsigned char *b;
	size_t i, n, o = 0;

	out[0] = '\0';
	if (sn == NULL)
		return;
	b = ASN1_STRING_get0_data(sn);
	n = (size_t)ASN1_STRING_length(sn);
	if (ASN1_STRING_type(sn) == V_ASN1_NEG_INTEGER && o + 2 < outlen)
		out[o++] = '-';
	if (n == 0 && o + 3 <= outlen) {
		out[o++] = '0';
		out[o++] = '0';
	}
	for (i = 0; i < n && o + 3 <= outlen; i++) {
		out[o++] = digits[b[i] >> 4];
		out[o++] = digits[b[i] & 0x0f];
	}
	out[o] = '\0';
}

static void key_field(X509 *x, char *out, size_t outlen)
{
	EVP_PKEY *pk = X509_get0_pubkey(x);
	char group[64];
	const char *nist;
	ASN1_OBJECT *alg = NULL;
	size_t glen = 0;

	out[0] = '\0';
	if (pk == NULL) {
		/* an algorithm OpenSSL cannot decode: name its OID */
		if (X509_PUBKEY_get0_param(&alg, NULL, NULL, NULL, X509_get_X509_PUBKEY(x)) && alg)
			OBJ_obj2txt(out, (int)outlen, alg, 0);
		x509info_err_clear();
		if (out[0] == '\0')
			snprintf(out, outlen, "unknown");
		return;
	}
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
		snprintf(out, outlen, "RSA-%d", EVP_PKEY_get_bits(pk));
		break;
	case EVP_PKEY_RSA_PSS:
		snprintf(out, outlen, "RSA-PSS-%d", EVP_PKEY_get_bits(pk));
		break;
	case EVP_PKEY_DSA:
		snprintf(out, outlen, "DSA-%d", EVP_PKEY_get_bits(pk));
		break;
	case EVP_PKEY_EC:
		if (!EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen)) {
			snprintf(out, outlen, "EC-%d", EVP_PKEY_get_bits(pk));
			break;
		}
		nist = EC_curve_nid2nist(OBJ_txt2nid(group));
		snprintf(out, outlen, "EC-%.28s", nist ? nist : group);   /* names are short: P-256, brainpoolP512r1 */
		break;
	case EVP_PKEY_ED25519:
		snprintf(out, outlen, "Ed25519");
		break;
	case EVP_PKEY_ED448:
		snprintf(out, outlen, "Ed448");
		break;
	default: {
		const char *t = EVP_PKEY_get0_type_name(pk);
		snprintf(out, outlen, "%s", t ? t : "unknown");
		break;
	}
	}
	x509info_err_clear();
}

int x509info_eku(X509 *x, char *out, size_t outlen, bool *client_auth)
{
	EXTENDED_KEY_USAGE *eku;
	int present, i, crit = -1;
	size_t o = 0;

	if (outlen > 0)
		out[0] = '\0';
	*client_auth = false;
	present = X509_get_ext_by_NID(x, NID_ext_key_usage, -1) >= 0;
	if (!present)
		return 0;
	/* present but undecodable: no usage can be shown, none is allowed */
	eku = X509_get_ext_d2i(x, NID_ext_key_usage, &crit, NULL);
	for (i = 0; eku != NULL && i < sk_ASN1_OBJECT_num(eku); i++) {
		ASN1_OBJECT *obj = sk_ASN1_OBJECT_value(eku, i);
		int nid = OBJ_obj2nid(obj);
		char name[80];
		size_t len;

		if (nid == NID_client_auth || nid == NID_anyExtendedKeyUsage)
			*client_auth = true;
		if (nid != NID_undef)
			snprintf(name, sizeof(name), "%s", OBJ_nid2sn(nid));
		else if (OBJ_obj2txt(name, sizeof(name), obj, 1) <= 0)
			snprintf(name, sizeof(name), "?");
		len = strlen(name);
		/* whole names only: a cut name would be a different usage */
		if (o + (o > 0) + len + 1 > outlen)
			continue;
		if (o > 0)
			out[o++] = ',';
		memcpy(out + o, name, len + 1);
		o += len;
	}
	EXTENDED_KEY_USAGE_free(eku);
	x509info_err_clear();
	return 1;
}

int x509info_self_signed(X509 *x, bool *self_issued)
{
	EVP_PKEY *pk;
	int ok;

	*self_issued = X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0;
	if (!*self_issued)
		return 0;
	pk = X509_get0_pubkey(x);
	ok = pk != NULL && X509_verify(x, pk) == 1;
	x509info_err_clear();
	return ok;
}

/* The key pin (SHA-256 of the DER SubjectPublicKeyInfo, what HPKP and
 * curl --pinnedpubkey hash) and the key identifiers, which tie a
 * certificate to its issuer's key without the issuer at hand. */
static void key_ids(X509 *x, struct cert_info *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	const ASN1_OCTET_STRING *id;

	unsigned char *der = NULL;
	int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);

	/* the whole DER SubjectPublicKeyInfo (X509_pubkey_digest hashes only
	 * the key's bits) */
	if (len > 0 && EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) && mdlen == 32)
		hex_lower(md, mdlen, out->spki_sha256);
	OPENSSL_free(der);
	id = X509_get0_subject_key_id(x);
	if (id && ASN1_STRING_length(id) > 0 && ASN1_STRING_length(id) <= 20)
		hex_lower(ASN1_STRING_get0_data(id), (size_t)ASN1_STRING_length(id), out->ski);
	id = X509_get0_authority_key_id(x);
	if (id && ASN1_STRING_length(id) > 0 && ASN1_STRING_length(id) <= 20)
		hex_lower(ASN1_STRING_get0_data(id), (size_t)ASN1_STRING_length(id), out->aki);
}

void x509info_summarize(X509 *x, struct cert_info *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	uint32_t flags;

	memset(out, 0, sizeof(*out));
	if (x == NULL) {
		out->parse_failed = true;
		return;
	}
	x509info_name(X509_get_subject_name(x), out->subject, sizeof(out->subject));
	x509info_name(X509_get_issuer_name(x), out->issuer, sizeof(out->issuer));
	serial_field(x, out->serial, sizeof(out->serial));
	time_field(X509_get0_notBefore(x), out->not_before, sizeof(out->not_before), &out->not_before_t);
	time_field(X509_get0_notAfter(x), out->not_after, sizeof(out->not_after), &out->not_after_t);
	if (X509_digest(x, EVP_sha256(), md, &mdlen) && mdlen == 32)
		hex_lower(md, mdlen, out->sha256);
	key_field(x, out->key, sizeof(out->key));
	key_ids(x, out);
	out->has_eku = x509info_eku(x, out->eku, sizeof(out->eku), &out->eku_client_auth);
	flags = X509_get_extension_flags(x);
	out->has_key_usage = (flags & EXFLAG_KUSAGE) != 0;
	out->ku_digital_signature = out->has_key_usage &&
		(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE) != 0;
	out->is_ca = (flags & EXFLAG_BCONS) && (flags & EXFLAG_CA);
	out->self_signed = x509info_self_signed(x, &out->self_issued);
	x509info_err_clear();
}

/* ---- cache ---------------------------------------------------------- */

struct cache_entry {
	struct cached_cert cc;      /* first member: what callers are handed */
	struct cache_entry *next;   /* bucket chain */
	uint8_t *der;
	size_t len;
	uint64_t hash;
	bool used;
	bool referenced;            /* CLOCK bit: hit since the hand last passed */
};

#define CA_SLOTS 64

struct ca_slot {
	struct ca_list *list;       /* the cache's own reference */
	uint8_t *der;
	size_t len;
	uint64_t hash;
};

/* Chains of summaries remembered, direct-mapped by their ids. */
#define CHAIN_SLOTS 64

/* Summaries of one chain, counted: the cache's slot holds a reference
 * while it remembers them. */
struct chain_block {
	unsigned refs;
	size_t n;
	uint64_t ids[CERT_CHAIN_SHARED];
	struct cert_info certs[];
};

struct cert_cache {
	struct chain_block *chains[CHAIN_SLOTS];
	struct cache_entry *entries;
	size_t max, n_used, hand;
	struct cache_entry **buckets;
	size_t mask;
	uint64_t seed;              /* random: chains cannot be lengthened on purpose */
	struct ca_slot ca[CA_SLOTS];  /* CertificateRequest CA lists, direct-mapped */
	uint64_t last_id;           /* of entries and CA lists, counting up */
};

static uint64_t mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* Eight bytes a step: a certificate is hashed in well under a microsecond,
 * and a hit is then confirmed with memcmp. */
static uint64_t der_hash(uint64_t seed, const uint8_t *p, size_t len)
{
	uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL), w;
	uint64_t lane[4] = { h, h ^ 0x243f6a8885a308d3ULL, h ^ 0x13198a2e03707344ULL, h ^ 0xa4093822299f31d0ULL };

	/* four independent lanes of 8 bytes: the multiplies overlap */
	while (len >= 32) {
		for (int i = 0; i < 4; i++) {
			memcpy(&w, p + 8 * i, 8);
			lane[i] = (lane[i] ^ w) * 0x9e3779b97f4a7c15ULL;
			lane[i] ^= lane[i] >> 29;
		}
		p += 32;
		len -= 32;
	}
	h = mix64(lane[0]) ^ mix64(lane[1] + 1) ^ mix64(lane[2] + 2) ^ mix64(lane[3] + 3);
	while (len >= 8) {
		memcpy(&w, p, 8);
		h = (h ^ mix64(w)) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
		p += 8;
		len -= 8;
	}
	w = 0;
	if (len > 0)
		memcpy(&w, p, len);
	return mix64(h ^ w);
}

/* The head and the tail of DER bytes: for a certificate the serial (within
 * its first 40 bytes) and the end of the signature, for a list of CA names
 * the first and the last name.  Every hit is confirmed by comparing the
 * whole DER, so crafted look-alikes only lengthen one bucket of a bounded
 * cache. */
#define SAMPLE 64

static uint64_t sampled_hash(uint64_t seed, const uint8_t *p, size_t len)
{
	if (len <= 2 * SAMPLE)
		return der_hash(seed, p, len);
	return der_hash(seed, p, SAMPLE) ^ mix64(der_hash(seed ^ len, p + len - SAMPLE, SAMPLE));
}

struct cert_cache *cert_cache_new(size_t max_entries)
{
	struct cert_cache *c;
	size_t nb = 1;

	if (max_entries == 0)
		max_entries = 1;
	while (nb < max_entries) {
		if (nb > SIZE_MAX / 2)
			return NULL;
		nb *= 2;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->entries = calloc(max_entries, sizeof(*c->entries));
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (c->entries == NULL || c->buckets == NULL) {
		cert_cache_free(c);
		return NULL;
	}
	c->max = max_entries;
	c->mask = nb - 1;
	if (RAND_bytes((unsigned char *)&c->seed, sizeof(c->seed)) != 1) {
		x509info_err_clear();
		c->seed = (uint64_t)(uintptr_t)c ^ 0x2545f4914f6cdd1dULL;
	}
	return c;
}

static void entry_clear(struct cache_entry *e)
{
	X509_free(e->cc.x509);
	free(e->der);
	e->cc.x509 = NULL;
	e->der = NULL;
	e->len = 0;
	e->used = false;
}

static struct chain_block *block_of(const struct cert_info *certs)
{
	return (struct chain_block *)(void *)((char *)(uintptr_t)certs - offsetof(struct chain_block, certs));
}

void cert_chain_release(const struct cert_info *certs)
{
	struct chain_block *b;

	if (certs == NULL)
		return;
	b = block_of(certs);
	if (--b->refs == 0)
		free(b);
}

static size_t chain_slot(const uint64_t *ids, size_t n)
{
	uint64_t h = n;
	size_t i;

	for (i = 0; i < n; i++)
		h = mix64(h ^ ids[i]);
	return (size_t)(h % CHAIN_SLOTS);
}

const struct cert_info *cert_cache_chain_find(struct cert_cache *cache, const uint64_t *ids, size_t n)
{
	struct chain_block *b;

	if (n == 0 || n > CERT_CHAIN_SHARED)
		return NULL;
	b = cache->chains[chain_slot(ids, n)];
	if (b == NULL || b->n != n || memcmp(b->ids, ids, n * sizeof(*ids)) != 0)
		return NULL;
	b->refs++;
	return b->certs;
}

struct cert_info *cert_cache_chain_new(struct cert_cache *cache, const uint64_t *ids, size_t n)
{
	struct chain_block *b, **slot;
	size_t i;

	if (n > (SIZE_MAX - sizeof(*b)) / sizeof(b->certs[0]) || !(b = calloc(1, sizeof(*b) + n * sizeof(b->certs[0]))))
		return NULL;
	b->refs = 1;
	b->n = n;
	for (i = 0; ids != NULL && i < n; i++)
		if (ids[i] == 0)
			ids = NULL;   /* a certificate the cache could not hold: not shared */
	if (ids != NULL && n > 0 && n <= CERT_CHAIN_SHARED) {
		memcpy(b->ids, ids, n * sizeof(*ids));
		slot = &cache->chains[chain_slot(ids, n)];
		if (*slot != NULL)
			cert_chain_release((*slot)->certs);
		*slot = b;
		b->refs++;
	}
	return b->certs;
}

void cert_cache_free(struct cert_cache *cache)
{
	size_t i;

	if (cache == NULL)
		return;
	for (i = 0; i < CHAIN_SLOTS; i++)
		if (cache->chains[i] != NULL)
			cert_chain_release(cache->chains[i]->certs);
	for (i = 0; i < CA_SLOTS; i++) {
		ca_list_release(cache->ca[i].list);
		free(cache->ca[i].der);
	}
	for (i = 0; cache->entries != NULL && i < cache->n_used; i++)
		entry_clear(&cache->entries[i]);
	free(cache->entries);
	free(cache->buckets);
	free(cache);
}

static void unlink_entry(struct cert_cache *c, struct cache_entry *e)
{
	struct cache_entry **pp = &c->buckets[e->hash & c->mask];

	for (; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
	e->next = NULL;
}

/* A free slot, or the CLOCK victim: the first entry not referenced since
 * the hand last passed it (referenced entries get a second chance). */
static struct cache_entry *take_slot(struct cert_cache *c)
{
	struct cache_entry *e;

	if (c->n_used < c->max)
		return &c->entries[c->n_used++];
	for (;;) {
		e = &c->entries[c->hand];
		c->hand = (c->hand + 1) % c->max;
		if (!e->used || !e->referenced)
			break;
		e->referenced = false;
	}
	if (e->used) {
		unlink_entry(c, e);
		entry_clear(e);
	}
	return e;
}

static void fill_entry(struct cache_entry *e)
{
	const unsigned char *p = e->der;
	unsigned char md[32];
	X509 *x = NULL;

	if (e->len > 0 && e->len <= LONG_MAX) {
		x = d2i_X509(NULL, &p, (long)e->len);
		/* OpenSSL servers refuse a certificate entry with trailing bytes
		 * ("cert length mismatch"): so do we */
		if (x != NULL && p != e->der + e->len) {
			X509_free(x);
			x = NULL;
		}
	}
	x509info_err_clear();
	e->cc.x509 = x;
	x509info_summarize(x, &e->cc.info);
	/* the fingerprint of the bytes as sent, parsed or not */
	if (x == NULL && EVP_Digest(e->der, e->len, md, NULL, EVP_sha256(), NULL))
		hex_lower(md, sizeof(md), e->cc.info.sha256);
	x509info_err_clear();
}

const struct cached_cert *cert_cache_get(struct cert_cache *cache,
					 const uint8_t *der, size_t len)
{
	uint64_t h;
	struct cache_entry *e;

	if (cache == NULL || (der == NULL && len > 0))
		return NULL;
	h = sampled_hash(cache->seed, der, len);
	for (e = cache->buckets[h & cache->mask]; e != NULL; e = e->next) {
		if (e->hash == h && e->len == len && (len == 0 || memcmp(e->der, der, len) == 0)) {
			e->referenced = true;
			return &e->cc;
		}
	}
	e = take_slot(cache);
	e->der = malloc(len > 0 ? len : 1);
	if (e->der == NULL)
		return NULL;  /* the slot stays free (used == false) */
	if (len > 0)
		memcpy(e->der, der, len);
	e->len = len;
	e->hash = h;
	fill_entry(e);
	e->cc.id = ++cache->last_id;
	e->used = true;
	/* referenced from the start, so the certificates of one chain, fetched
	 * one after another, do not evict each other */
	e->referenced = true;
	e->next = cache->buckets[h & cache->mask];
	cache->buckets[h & cache->mask] = e;
	return &e->cc;
}

const uint8_t *cert_cache_der(const struct cert_cache *cache, const char *sha256, size_t *len)
{
	for (size_t i = 0; i < cache->n_used; i++) {
		const struct cache_entry *e = &cache->entries[i];

		if (e->used && strcmp(e->cc.info.sha256, sha256) == 0) {
			*len = e->len;
			return e->der;
		}
	}
	return NULL;
}

/* ---- CertificateRequest CA lists ------------------------------------ */

void ca_list_release(struct ca_list *list)
{
	size_t i;

	if (list == NULL || --list->refs > 0)
		return;
	for (i = 0; i < list->n; i++)
		X509_NAME_free(list->names[i]);
	free(list);
}

static struct ca_list *ca_list_parse(const struct cursor *dns, size_t n)
{
	struct ca_list *list = calloc(1, sizeof(*list));
	size_t i;

	if (list == NULL)
		return NULL;
	list->refs = 1;
	for (i = 0; i < n && i < FACTS_MAX_CA_NAMES; i++) {
		list->names[i] = x509info_parse_name(cursor_data(&dns[i]), cursor_len(&dns[i]));
		if (list->names[i])
			x509info_name(list->names[i], list->text[i], sizeof(list->text[i]));
		else
			snprintf(list->text[i], sizeof(list->text[i]), "(malformed name)");
	}
	list->n = i;
	x509info_err_clear();
	return list;
}

struct ca_list *cert_cache_ca_list(struct cert_cache *cache, const uint8_t *vector,
				   size_t vector_len, const struct cursor *dns, size_t n)
{
	struct ca_slot *slot;
	struct ca_list *list;
	uint64_t h;

	if (cache == NULL)
		return ca_list_parse(dns, n);
	h = sampled_hash(cache->seed, vector, vector_len);
	slot = &cache->ca[h % CA_SLOTS];
	if (slot->list && slot->hash == h && slot->len == vector_len &&
	    (vector_len == 0 || memcmp(slot->der, vector, vector_len) == 0)) {
		slot->list->refs++;
		return slot->list;
	}
	list = ca_list_parse(dns, n);
	if (list == NULL)
		return NULL;
	list->id = ++cache->last_id;
	ca_list_release(slot->list);
	free(slot->der);
	slot->list = NULL;
	slot->der = malloc(vector_len ? vector_len : 1);
	if (slot->der == NULL)
		return list;   /* not cached, still usable */
	if (vector_len)
		memcpy(slot->der, vector, vector_len);
	slot->len = vector_len;
	slot->hash = h;
	slot->list = list;
	list->refs++;
	return list;
}
