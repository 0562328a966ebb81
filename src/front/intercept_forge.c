/* intercept_forge: --forge-ca, a diagnostic CA the clients trust that
 * issues a server certificate for each name they ask for (SNI), the way a
 * TLS-inspecting gateway does, so the stand-in needs no copy of the real
 * server's key.  One EC P-256 key serves every issued certificate (made
 * at start: issuing is then one signature); certificates are cached by
 * name, shared by the workers under a lock, and kept for their validity
 * (a week).  OpenSSL builds and signs them. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "front/intercept_int.h"
#include "wire/x509info.h"

#define FORGE_CACHE_MAX 1024
#define FORGE_VALID_S (7 * 86400)
#define FORGE_BACKDATE_S 3600   /* clocks a little behind still accept it */

struct forged {
	char name[256];
	X509 *cert;
	time_t not_after;
	unsigned long used;             /* for eviction: the least recently used goes */
};

struct icpt_forge {
	X509 *ca;                        /* borrowed: the configuration's */
	EVP_PKEY *ca_key;
	EVP_PKEY *leaf_key;
	pthread_mutex_t lock;
	struct forged cache[FORGE_CACHE_MAX];
	size_t n;
	unsigned long clock, issued;
};

struct icpt_forge *icpt_forge_new(X509 *ca, EVP_PKEY *ca_key, char *err, size_t errlen)
{
	struct icpt_forge *f = calloc(1, sizeof(*f));

	if (!f) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	f->ca = ca;
	f->ca_key = ca_key;
	f->leaf_key = EVP_EC_gen("P-256");
	if (!f->leaf_key) {
		snprintf(err, errlen, "cannot make the key of the issued certificates: %s",
			 ERR_reason_error_string(ERR_peek_last_error()));
		ERR_clear_error();
		free(f);
		return NULL;
	}
	pthread_mutex_init(&f->lock, NULL);
	return f;
}

void icpt_forge_free(struct icpt_forge *f)
{
	size_t i;

	if (!f)
		return;
	for (i = 0; i < f->n; i++)
		X509_free(f->cache[i].cert);
	EVP_PKEY_free(f->leaf_key);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

unsigned long icpt_forge_issued(struct icpt_forge *f)
{
	unsigned long n;

	pthread_mutex_lock(&f->lock);
	n = f->issued;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* A name a certificate may carry: a host name (letters, digits, '-', '_',
 * '.', a leading "*.") or an IP address; SNI is the client's text. */
static bool usable_name(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > 253)
		return false;
	for (i = 0; i < n; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '-' || ch == '.' || ch == '_' || ch == ':' || (ch == '*' && i == 0)))
			return false;
	}
	return true;
}

static int add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok = ext && X509_add_ext(cert, ext, -1);

	X509_EXTENSION_free(ext);
	return ok;
}

/* A server certificate for name, signed by the CA: CN and SAN the name,
 * serverAuth, a random serial, valid from an hour ago for a week (within
 * the CA's own validity). */
static X509 *issue(struct icpt_forge *f, const char *name, time_t now, time_t *not_after)
{
	X509 *x = X509_new();
	X509_NAME *subject = X509_NAME_new();
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	ASN1_INTEGER *sn = NULL;
	X509V3_CTX v3;
	char san[300];
	unsigned char addr[16];
	bool is_ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
	const ASN1_TIME *ca_end = X509_get0_notAfter(f->ca);
	time_t end = now + FORGE_VALID_S;
	int pk = EVP_PKEY_get_base_id(f->ca_key);
	const EVP_MD *md = pk == EVP_PKEY_ED25519 || pk == EVP_PKEY_ED448 ? NULL : EVP_sha256();
	int ok = 0;

	if (!x || !subject)
		goto Exit;
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto Exit;
	serial[0] &= 0x7f;   /* positive */
	serial[0] |= 0x40;   /* and of full length */
	if (!(bn = BN_bin2bn(serial, sizeof(serial), NULL)) || !(sn = BN_to_ASN1_INTEGER(bn, NULL)))
		goto Exit;
	if (ASN1_TIME_cmp_time_t(ca_end, end) < 0)
		end = ca_end && x509info_asn1_time(ca_end, &end) ? end : now + 3600;
	if (!X509_set_version(x, X509_VERSION_3) || !X509_set_serialNumber(x, sn) ||
	    !X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0) ||
	    !X509_set_subject_name(x, subject) || !X509_set_issuer_name(x, X509_get_subject_name(f->ca)) ||
	    !X509_time_adj_ex(X509_getm_notBefore(x), 0, -FORGE_BACKDATE_S, &now) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &end) || !X509_set_pubkey(x, f->leaf_key))
		goto Exit;
	X509V3_set_ctx(&v3, f->ca, x, NULL, NULL, 0);
	snprintf(san, sizeof(san), "%s:%s", is_ip ? "IP" : "DNS", name);
	if (!add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(x, &v3, NID_key_usage, "critical,digitalSignature") ||
	    !add_ext(x, &v3, NID_ext_key_usage, "serverAuth") ||
	    !add_ext(x, &v3, NID_subject_key_identifier, "hash") ||
	    !add_ext(x, &v3, NID_authority_key_identifier, "keyid") ||
	    !add_ext(x, &v3, NID_subject_alt_name, san) ||
	    X509_sign(x, f->ca_key, md) <= 0)
		goto Exit;
	*not_after = end;
	ok = 1;
Exit:
	ERR_clear_error();
	BN_free(bn);
	ASN1_INTEGER_free(sn);
	X509_NAME_free(subject);
	if (!ok) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

/* The cached certificate for name (a reference of the caller's), issuing
 * one on a miss; an expired one is issued again. */
static X509 *lookup(struct icpt_forge *f, const char *name)
{
	time_t now = time(NULL), not_after = 0;
	struct forged *slot = NULL;
	X509 *x = NULL;
	size_t i;

	pthread_mutex_lock(&f->lock);
	f->clock++;
	for (i = 0; i < f->n; i++) {
		if (strcasecmp(f->cache[i].name, name) == 0) {
			slot = &f->cache[i];
			break;
		}
	}
	if (slot && slot->not_after > now + 60) {
		slot->used = f->clock;
		X509_up_ref(slot->cert);
		x = slot->cert;
		goto Exit;
	}
	/* issued under the lock: the same name asked for twice at once is
	 * issued once */
	if (!(x = issue(f, name, now, &not_after)))
		goto Exit;
	f->issued++;
	if (!slot) {
		if (f->n < FORGE_CACHE_MAX) {
			slot = &f->cache[f->n++];
		} else {
			slot = &f->cache[0];
			for (i = 1; i < f->n; i++)
				if (f->cache[i].used < slot->used)
					slot = &f->cache[i];
		}
	}
	X509_free(slot->cert);
	snprintf(slot->name, sizeof(slot->name), "%s", name);
	slot->cert = x;
	slot->not_after = not_after;
	slot->used = f->clock;
	X509_up_ref(x);
Exit:
	pthread_mutex_unlock(&f->lock);
	return x;
}

int icpt_forge_use(struct icpt_forge *f, SSL *ssl, const char *name)
{
	X509 *x;
	int ok;

	if (!usable_name(name) || !(x = lookup(f, name)))
		return 0;
	ok = SSL_use_certificate(ssl, x) == 1 && SSL_use_PrivateKey(ssl, f->leaf_key) == 1 &&
	     SSL_add1_chain_cert(ssl, f->ca) == 1;
	X509_free(x);
	ERR_clear_error();
	return ok;
}
