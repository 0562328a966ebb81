/* chainverify: X509_verify_cert run on a client's chain the way a server
 * runs it, to say what the server says.
 *
 * nginx's verify callback (ngx_ssl_verify_callback) returns 1 whatever it
 * is told, so OpenSSL goes on past every error and the connection's verify
 * result (SSL_get_verify_result) is the LAST error met; nginx logs that one
 * ("client SSL certificate verify error: (21:unable to verify the first
 * certificate)") and answers 400.  `openssl verify`, Apache and HAProxy
 * stop at the FIRST error.  Both are kept.  ssl_verify_depth is
 * X509_VERIFY_PARAM_set_depth (OpenSSL 3 counts the CAs between the leaf
 * and the trust anchor); ssl_crl adds CRLs and checks every certificate of
 * the chain (X509_V_FLAG_CRL_CHECK_ALL); the purpose is ssl_client.
 *
 * Without the server's bundle the CertificateRequest's CA names stand in:
 * each becomes a self-signed stand-in anchor with that name and a key of
 * ours, so the path, the depth, the validity and the purposes are judged
 * as the server would; only the signature of the certificate the anchor
 * issued cannot be, and its failure is not counted. */
#include "config.h"

#include "analysis/chain.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "analysis/bundle.h"
#include "analysis/evidence.h"
#include "wire/x509info.h"

void chain_policy_init(struct chain_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->verify_depth = -1;
	p->purpose = X509_PURPOSE_SSL_CLIENT;
}

const char *chain_purpose_name(int purpose)
{
	int idx = X509_PURPOSE_get_by_id(purpose);
	X509_PURPOSE *p = idx >= 0 ? X509_PURPOSE_get0(idx) : NULL;

	return p ? X509_PURPOSE_get0_sname(p) : "sslclient";
}

int chain_purpose_parse(const char *name)
{
	int idx = X509_PURPOSE_get_by_sname(name);
	X509_PURPOSE *p = idx >= 0 ? X509_PURPOSE_get0(idx) : NULL;

	return p ? X509_PURPOSE_get_id(p) : 0;
}

/* The subject (or the issuer) of element i, into out. */
static void element_name(const struct chain_verify *cv, const struct cert_chain *sent, unsigned i, bool issuer,
			 char *out, size_t outlen)
{
	unsigned code = i < cv->n_built ? cv->built[i] : CHAIN_BUILT_UNKNOWN;
	X509 *x;

	out[0] = '\0';
	if (code == CHAIN_BUILT_ANCHOR) {
		/* a stand-in is named as the CA its child names as issuer */
		if (issuer)
			element_name(cv, sent, i, false, out, outlen);
		else if (i > 0)
			element_name(cv, sent, i - 1, true, out, outlen);
		return;
	}
	if (code >= CHAIN_BUILT_BUNDLE && code < CHAIN_BUILT_ANCHOR) {
		code -= CHAIN_BUILT_BUNDLE;
		if (cv->bundle_certs == NULL || code >= cv->n_bundle_certs || !(x = cv->bundle_certs[code]))
			return;
		x509info_name(issuer ? X509_get_issuer_name(x) : X509_get_subject_name(x), out, outlen);
		return;
	}
	if (code < sent->n && !sent->certs[code].parse_failed)
		evidence_snprintf(out, outlen, "%s", issuer ? sent->certs[code].issuer : sent->certs[code].subject);
}

void chain_verify_subject(const struct chain_verify *cv, const struct cert_chain *sent, unsigned i, char *out,
			  size_t outlen)
{
	element_name(cv, sent, i, false, out, outlen);
}

void chain_verify_stop(const struct chain_verify *cv, const struct cert_chain *sent, char *out, size_t outlen)
{
	out[0] = '\0';
	if (cv->stops && cv->n_built > 0)
		element_name(cv, sent, cv->n_built - 1, true, out, outlen);
}

void chain_verify_log_line(const struct chain_verify *cv, enum server_kind kind, char *out, size_t outlen,
			   const char **who)
{
	out[0] = '\0';
	switch (kind) {
	case SK_APACHE:
		*who = "apache";
		if (!cv->ok)
			evidence_snprintf(out, outlen, "Certificate Verification: Error (%d): %s", cv->first_error,
				          X509_verify_cert_error_string(cv->first_error));
		return;
	case SK_HAPROXY:
	case SK_ENVOY:
		*who = "openssl verify";
		if (!cv->ok)
			evidence_snprintf(out, outlen, "error %d at %d depth lookup: %s", cv->first_error, cv->first_depth,
				          X509_verify_cert_error_string(cv->first_error));
		return;
	case SK_NGINX:
	case SK_UNKNOWN:
	case SK_COUNT:
		break;
	}
	*who = "nginx";
	if (!cv->ok)
		evidence_snprintf(out, outlen, "client SSL certificate verify error: (%d:%s)", cv->error,
			          X509_verify_cert_error_string(cv->error));
}

/* ---- stand-in anchors for CA names ---- */

/* OpenSSL takes a certificate for the issuer of another only when its key
 * is of the kind the other's signature algorithm names: a stand-in gets a
 * key of the kind each sent certificate was signed with. */
enum standin_kind { KIND_RSA, KIND_EC, KIND_ED25519, KIND_ED448, N_KINDS };

static pthread_mutex_t standin_lock = PTHREAD_MUTEX_INITIALIZER;
static EVP_PKEY *standin_keys[N_KINDS];

static int kind_of(const X509 *x)
{
	int pkey_nid = NID_undef;

	if (!OBJ_find_sigid_algs(X509_get_signature_nid(x), NULL, &pkey_nid))
		return -1;
	switch (pkey_nid) {
	case NID_rsaEncryption:
	case NID_rsassaPss:
		return KIND_RSA;
	case NID_X9_62_id_ecPublicKey:
		return KIND_EC;
	case NID_ED25519:
		return KIND_ED25519;
	case NID_ED448:
		return KIND_ED448;
	}
	return -1;
}

/* The RSA stand-in's key (PKCS#8 DER, 1024 bits), fixed rather than made
 * at run time: making an RSA key costs 80 to 120 M instructions, more than
 * reading 10,000 connections, and what it signs is never judged. */
static const unsigned char standin_rsa_der[] = {
	0x30, 0x82, 0x02, 0x5d, 0x02, 0x01, 0x00, 0x02, 0x81, 0x81, 0x00, 0xae,
	0x28, 0x61, 0x4b, 0xea, 0xfc, 0x29, 0x50, 0x5a, 0xaf, 0x9f, 0xf8, 0x24,
	0xf1, 0x60, 0xe8, 0x71, 0x1d, 0x80, 0x15, 0x0b, 0x21, 0x3e, 0x39, 0xe2,
	0xa9, 0xb2, 0x23, 0x0e, 0x20, 0x2f, 0xcd, 0xa0, 0x93, 0x52, 0x31, 0x45,
	0x9c, 0xcc, 0xfb, 0x12, 0xcf, 0x4f, 0xc5, 0x84, 0x22, 0x1f, 0xfe, 0xa3,
	0xb7, 0x2b, 0xae, 0xa2, 0xa5, 0x74, 0x23, 0xca, 0x1f, 0x30, 0x9c, 0xdf,
	0x1a, 0x76, 0x6e, 0x04, 0x4b, 0x6e, 0x4c, 0xfb, 0x6b, 0x2a, 0xf3, 0x76,
	0xe2, 0xa8, 0x8b, 0xcf, 0x87, 0x99, 0xb6, 0x8a, 0x5f, 0xcc, 0xce, 0xbc,
	0x4c, 0x20, 0xf1, 0x48, 0x16, 0x80, 0xa8, 0x5e, 0x58, 0x43, 0xfb, 0x1c,
	0x88, 0x56, 0x94, 0x79, 0xa6, 0x35, 0xd5, 0xff, 0xbf, 0x5c, 0x9b, 0xc5,
	0xfe, 0xf4, 0xbc, 0x0c, 0x79, 0xa6, 0xcc, 0xc5, 0xdb, 0x9c, 0x59, 0x5d,
	0x30, 0xf1, 0xfa, 0x50, 0x92, 0xba, 0x8d, 0x02, 0x03, 0x01, 0x00, 0x01,
	0x02, 0x81, 0x80, 0x04, 0xe6, 0x75, 0xf6, 0x60, 0xe2, 0x3f, 0x77, 0x57,
	0x55, 0xe1, 0xb6, 0x65, 0xb3, 0xb4, 0xfa, 0x55, 0x54, 0x73, 0x2a, 0x24,
	0x6a, 0x07, 0x0a, 0x31, 0xea, 0x7c, 0x6c, 0xa8, 0x15, 0x17, 0xc3, 0x3d,
	0x65, 0x67, 0xc6, 0xa3, 0x22, 0xca, 0x51, 0xb6, 0x31, 0xc7, 0x18, 0xd3,
	0xa2, 0xf2, 0x2b, 0x84, 0x07, 0xbf, 0x5e, 0xe6, 0x8c, 0xa9, 0x3b, 0xe8,
	0x90, 0x00, 0x1a, 0x29, 0xdc, 0xe0, 0xc0, 0x23, 0xcf, 0xdd, 0xf6, 0x59,
	0x6f, 0xfa, 0x02, 0xcb, 0x22, 0x15, 0x74, 0x2f, 0xb9, 0x10, 0x87, 0xa4,
	0x94, 0xbf, 0xda, 0x28, 0x3e, 0x18, 0xe9, 0xe1, 0x4e, 0xf1, 0x3d, 0x44,
	0x78, 0x79, 0x9b, 0x1f, 0xf1, 0x3c, 0xd7, 0xc8, 0x21, 0x39, 0x3b, 0x2b,
	0x93, 0x31, 0x4d, 0x7f, 0x7a, 0x4d, 0x38, 0x83, 0x7c, 0xa6, 0xab, 0x17,
	0x50, 0x31, 0x87, 0x4f, 0x11, 0xc9, 0x3f, 0x0d, 0xac, 0xe7, 0x31, 0x02,
	0x41, 0x00, 0xdf, 0xab, 0x00, 0x5c, 0x93, 0x72, 0x84, 0x9f, 0x9a, 0xfc,
	0x08, 0x9a, 0x40, 0x1d, 0x68, 0x60, 0xcf, 0x46, 0x00, 0xe9, 0x25, 0x10,
	0xf3, 0xfd, 0xc6, 0xc0, 0xec, 0x09, 0x25, 0x6c, 0x1f, 0x9e, 0x49, 0x77,
	0xc5, 0xcf, 0xa0, 0x38, 0xce, 0x2d, 0x07, 0x23, 0x8e, 0xe9, 0x91, 0x3c,
	0x85, 0x13, 0x62, 0xa5, 0xd8, 0x2e, 0xe4, 0x3c, 0xc4, 0x83, 0x77, 0x0e,
	0xc4, 0xa3, 0x61, 0xd5, 0x2c, 0x5b, 0x02, 0x41, 0x00, 0xc7, 0x55, 0x37,
	0x35, 0xe7, 0x5e, 0xe7, 0x78, 0x59, 0xd5, 0xe2, 0x44, 0x23, 0x82, 0x97,
	0x6a, 0x1f, 0x8e, 0xe8, 0x5e, 0xa2, 0xdb, 0x80, 0x40, 0x62, 0xad, 0x85,
	0x99, 0x6e, 0x8b, 0xc8, 0xca, 0x8f, 0xd2, 0x42, 0xe2, 0x25, 0x5d, 0xaa,
	0xcc, 0x66, 0x3b, 0x9c, 0xbb, 0x89, 0xc0, 0x1e, 0x31, 0x2c, 0x2a, 0x23,
	0x0f, 0x72, 0x1a, 0x01, 0x8d, 0xa0, 0x03, 0x09, 0x20, 0xa9, 0x55, 0x09,
	0x37, 0x02, 0x40, 0x39, 0xaa, 0xbc, 0x18, 0x22, 0x47, 0xf7, 0x5b, 0xb3,
	0x38, 0xe1, 0xfa, 0xeb, 0x26, 0xe9, 0xdf, 0x73, 0xf1, 0x67, 0x90, 0xb4,
	0xe6, 0xcf, 0x11, 0x92, 0x29, 0xf1, 0x71, 0x56, 0x3d, 0xaf, 0x55, 0x3f,
	0x39, 0xeb, 0x3d, 0x61, 0xe0, 0xe3, 0x7f, 0x86, 0x84, 0xab, 0x77, 0x1a,
	0xe4, 0x10, 0xa7, 0x73, 0xda, 0xb0, 0x87, 0x3e, 0x7f, 0x50, 0x67, 0x58,
	0xcd, 0xec, 0xf2, 0xf6, 0xe9, 0x60, 0x5b, 0x02, 0x41, 0x00, 0xb7, 0x62,
	0x11, 0x92, 0x18, 0xd3, 0x39, 0xf6, 0x82, 0x07, 0x80, 0xcb, 0x99, 0x33,
	0xba, 0xa3, 0x5a, 0x77, 0x3a, 0x16, 0x5e, 0x93, 0xbc, 0x30, 0xff, 0xd7,
	0x8d, 0xf2, 0xb3, 0x3e, 0x0c, 0xb3, 0x36, 0x8f, 0x85, 0x12, 0xd2, 0xb7,
	0x92, 0xbb, 0xcb, 0x4e, 0x0a, 0x8a, 0x8a, 0x57, 0x62, 0x2f, 0x70, 0xe7,
	0x2f, 0x2c, 0x35, 0x97, 0xf1, 0x57, 0xdf, 0x1f, 0x0b, 0xd5, 0xad, 0x93,
	0x5b, 0x0f, 0x02, 0x41, 0x00, 0xca, 0x98, 0xff, 0x13, 0x27, 0x8a, 0x51,
	0x71, 0x4d, 0x4c, 0x71, 0xdd, 0xc8, 0x30, 0x47, 0x09, 0xe7, 0x7e, 0x52,
	0x86, 0xa3, 0x8c, 0x88, 0x26, 0xd6, 0xf6, 0x58, 0x96, 0xa6, 0x39, 0xd1,
	0x62, 0xde, 0x4f, 0xba, 0x4e, 0x7d, 0x0a, 0xaa, 0xc4, 0x49, 0xb8, 0x16,
	0xd2, 0x1c, 0x04, 0xaa, 0x1c, 0x1d, 0xea, 0xe4, 0x63, 0x4b, 0x0e, 0x87,
	0xf8, 0xcf, 0xa3, 0x22, 0xa6, 0x4e, 0x1c, 0x79, 0x19,
};

static EVP_PKEY *standin_rsa(void)
{
	const unsigned char *p = standin_rsa_der;

	return d2i_AutoPrivateKey(NULL, &p, (long)sizeof(standin_rsa_der));
}

/* One key per kind for every stand-in, made once: its signatures are
 * never what is judged (a small RSA key: no security level applies). */
static EVP_PKEY *standin_key(int kind)
{
	EVP_PKEY *k;

	pthread_mutex_lock(&standin_lock);
	if (!standin_keys[kind]) {
		switch (kind) {
		case KIND_RSA: standin_keys[kind] = standin_rsa(); break;
		case KIND_EC: standin_keys[kind] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"); break;
		case KIND_ED25519: standin_keys[kind] = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"); break;
		case KIND_ED448: standin_keys[kind] = EVP_PKEY_Q_keygen(NULL, NULL, "ED448"); break;
		}
	}
	k = standin_keys[kind];
	pthread_mutex_unlock(&standin_lock);
	return k;
}

static bool add_ext(X509 *x, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, nid, value);
	bool ok = ext != NULL && X509_add_ext(x, ext, -1);

	X509_EXTENSION_free(ext);
	return ok;
}

/* A self-signed CA certificate named `name` with `key`, valid always. */
static X509 *standin(const X509_NAME *name, EVP_PKEY *key)
{
	X509 *x = X509_new();
	ASN1_TIME *from = ASN1_TIME_new(), *to = ASN1_TIME_new();
	bool ok;

	ok = x != NULL && from != NULL && to != NULL && key != NULL && X509_set_version(x, X509_VERSION_3) &&
	     ASN1_INTEGER_set(X509_get_serialNumber(x), 1) && X509_set_subject_name(x, name) &&
	     X509_set_issuer_name(x, name) && ASN1_TIME_set_string(from, "19700101000000Z") &&
	     ASN1_TIME_set_string(to, "99991231235959Z") && X509_set1_notBefore(x, from) &&
	     X509_set1_notAfter(x, to) && X509_set_pubkey(x, key) &&
	     add_ext(x, NID_basic_constraints, "critical,CA:TRUE") &&
	     add_ext(x, NID_key_usage, "critical,keyCertSign,cRLSign") &&
	     X509_sign(x, key, EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448") ? NULL : EVP_sha256()) > 0;
	ASN1_TIME_free(from);
	ASN1_TIME_free(to);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

#define MAX_STANDINS 64

/* The anchors standing in for the CA names, into a new store: a named
 * root the client sent itself is trusted as it is (the server holds that
 * very certificate); any other name gets stand-ins, one per kind of key
 * the sent certificates were signed with. */
static X509_STORE *names_store(X509 *const *certs, size_t n, X509_NAME *const *names, size_t n_names,
			       X509 **standins, size_t *n_standins)
{
	X509_STORE *store = X509_STORE_new();
	bool kinds[N_KINDS] = { false };
	size_t i, j;
	int k;

	*n_standins = 0;
	if (store == NULL)
		return NULL;
	for (j = 0; j < n; j++)
		if (certs[j] != NULL && (k = kind_of(certs[j])) >= 0)
			kinds[k] = true;
	for (i = 0; i < n_names; i++) {
		bool sent = false;

		if (names[i] == NULL)
			continue;
		for (j = 0; j < n && !sent; j++) {
			if (certs[j] != NULL && X509_NAME_cmp(X509_get_subject_name(certs[j]), names[i]) == 0 &&
			    X509_self_signed(certs[j], 1) == 1) {
				sent = X509_STORE_add_cert(store, certs[j]) == 1;
			}
		}
		for (k = 0; !sent && k < N_KINDS && *n_standins < MAX_STANDINS; k++) {
			X509 *x = kinds[k] ? standin(names[i], standin_key(k)) : NULL;

			if (x == NULL)
				continue;
			if (!X509_STORE_add_cert(store, x)) {
				X509_free(x);
				continue;
			}
			standins[(*n_standins)++] = x;
		}
	}
	x509info_err_clear();
	return store;
}

/* ---- one run of X509_verify_cert ---- */

struct run_state {
	struct chain_verify_errors *errs;
	X509 *const *standins;
	size_t n_standins;
	int last, last_depth;
};

static bool is_standin(const struct run_state *st, const X509 *x)
{
	size_t i;

	for (i = 0; i < st->n_standins; i++)
		if (st->standins[i] == x)
			return true;
	return false;
}

/* Goes on past every error, as nginx's callback does, and notes it. */
static int keep_going(int ok, X509_STORE_CTX *ctx)
{
	struct run_state *st = X509_STORE_CTX_get_app_data(ctx);
	STACK_OF(X509) *chain;
	X509 *cur, *issuer = NULL;
	int err, depth;
	size_t k;

	if (ok || st == NULL)
		return 1;
	err = X509_STORE_CTX_get_error(ctx);
	depth = X509_STORE_CTX_get_error_depth(ctx);
	cur = X509_STORE_CTX_get_current_cert(ctx);
	chain = X509_STORE_CTX_get0_chain(ctx);
	if (chain != NULL && depth >= 0 && depth + 1 < sk_X509_num(chain))
		issuer = sk_X509_value(chain, depth + 1);
	/* a stand-in's key signed nothing: what it is said to have signed
	 * is not judged, nor is the stand-in itself */
	if ((cur != NULL && is_standin(st, cur)) ||
	    (issuer != NULL && is_standin(st, issuer) &&
	     (err == X509_V_ERR_CERT_SIGNATURE_FAILURE || err == X509_V_ERR_CRL_SIGNATURE_FAILURE)))
		return 1;
	st->last = err;
	st->last_depth = depth;
	k = st->errs->n;
	if (k < CHAIN_VERIFY_ERRORS) {
		st->errs->e[k].code = err;
		st->errs->e[k].depth = depth;
		st->errs->e[k].cert = cur;
		st->errs->n++;
	}
	return 1;
}

/* Where a certificate of the chain as built came from. */
static uint16_t built_code(X509 *const *certs, size_t n, const struct chain_policy *pol, const struct run_state *st,
			   const X509 *x)
{
	size_t i;

	if (is_standin(st, x))
		return CHAIN_BUILT_ANCHOR;
	for (i = 0; i < n && i < CHAIN_BUILT_BUNDLE; i++)
		if (certs[i] == x)
			return (uint16_t)i;
	for (i = 0; pol->bundle_certs && i < pol->n_bundle_certs && i < CHAIN_BUILT_ANCHOR - CHAIN_BUILT_BUNDLE; i++)
		if (pol->bundle_certs[i] == x)
			return (uint16_t)(CHAIN_BUILT_BUNDLE + i);
	return CHAIN_BUILT_UNKNOWN;
}

/* Verifies once with `depth` (-1: OpenSSL's default).  1 when it ran. */
static int run_once(X509 *const *certs, size_t n, X509_STORE *store, time_t at, const struct chain_policy *pol,
		    bool crl, int depth, struct run_state *st, struct chain_verify *cv)
{
	X509_STORE_CTX *vctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null(), *chain;
	X509_VERIFY_PARAM *param;
	size_t i;
	int ret = 0, k;

	if (vctx == NULL || untrusted == NULL)
		goto Exit;
	for (i = 1; i < n; i++)
		if (certs[i] != NULL && !sk_X509_push(untrusted, certs[i]))
			goto Exit;
	if (!X509_STORE_CTX_init(vctx, store, certs[0], untrusted) ||
	    !X509_STORE_CTX_set_default(vctx, "ssl_client"))
		goto Exit;
	param = X509_STORE_CTX_get0_param(vctx);
	X509_VERIFY_PARAM_set_time(param, at);
	if (pol->purpose > 0 && pol->purpose != X509_PURPOSE_SSL_CLIENT)
		X509_VERIFY_PARAM_set_purpose(param, pol->purpose);
	if (depth >= 0)
		X509_VERIFY_PARAM_set_depth(param, depth);
	if (crl)
		X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	X509_STORE_CTX_set_verify_cb(vctx, keep_going);
	X509_STORE_CTX_set_app_data(vctx, st);
	st->last = X509_V_OK;
	st->last_depth = 0;
	/* with the callback going on, the return says little: the errors do */
	(void)X509_verify_cert(vctx);
	ret = 1;
	chain = X509_STORE_CTX_get0_chain(vctx);
	cv->n_built = 0;
	st->errs->top = NULL;
	for (k = 0; chain != NULL && k < sk_X509_num(chain) && cv->n_built < CHAIN_BUILT_MAX; k++) {
		X509 *x = sk_X509_value(chain, k);

		cv->built[cv->n_built++] = built_code(certs, n, pol, st, x);
		st->errs->top = is_standin(st, x) ? NULL : x;
	}
Exit:
	X509_STORE_CTX_free(vctx);
	sk_X509_free(untrusted);   /* borrowed certificates: the stack only */
	x509info_err_clear();
	return ret;
}

static void fill_result(struct chain_verify *cv, const struct chain_verify_errors *errs, const struct run_state *st)
{
	cv->ok = errs->n == 0;
	cv->error = st->last;
	cv->error_depth = st->last_depth;
	cv->first_error = errs->n ? errs->e[0].code : X509_V_OK;
	cv->first_depth = errs->n ? errs->e[0].depth : 0;
}

static int needed_for(unsigned n_built)
{
	/* neither the leaf nor the trust anchor counts */
	return n_built >= 2 ? (int)n_built - 2 : 0;
}

/* Whether the bundle is what the CA names list, remembered per thread for
 * the last list (ca_id) and policy: a server names the same CAs on every
 * connection, and a bundle of a hundred takes ten thousand comparisons. */
struct names_memo {
	const struct chain_policy *pol;
	uint64_t ca_id;
	bool agree;
};

static _Thread_local struct names_memo names_memo;

static bool names_agree(const struct chain_policy *pol, X509_NAME *const *names, size_t n_names, uint64_t ca_id)
{
	bool agree;

	if (ca_id != 0 && names_memo.pol == pol && names_memo.ca_id == ca_id)
		return names_memo.agree;
	agree = bundle_matches_names(pol->bundle_certs, pol->n_bundle_certs, names, n_names);
	if (ca_id != 0)
		names_memo = (struct names_memo){ pol, ca_id, agree };
	return agree;
}

/* The bundle against the CA names the server sent, and the bundle's own
 * mistakes at `at`, into cv->note. */
static void bundle_note(X509_NAME *const *names, size_t n_names, uint64_t ca_id, time_t at,
			const struct chain_policy *pol, struct chain_verify *cv)
{
	static const unsigned order[] = { BUNDLE_LEAF, BUNDLE_EXPIRED, BUNDLE_NOT_YET_VALID, BUNDLE_ROTATION };
	X509 *const *bc = pol->bundle_certs;
	struct bundle_summary *own = NULL;
	const struct bundle_summary *sum = pol->bundle_summary;
	char name[256], line[512];
	size_t i, j, k;

	if (bc == NULL || pol->n_bundle_certs == 0)
		return;
	if (sum == NULL && !(sum = own = bundle_summarize(bc, pol->n_bundle_certs)))
		return;
	for (j = 0; j < sum->n; j++)
		cv->bundle_problems |= bundle_summary_problems(sum, j, at, -1);
	if (n_names > 0 && !names_agree(pol, names, n_names, ca_id)) {
		cv->names_disagree = true;
		for (i = 0; i < n_names; i++) {
			for (j = 0; j < pol->n_bundle_certs; j++)
				if (names[i] && X509_NAME_cmp(names[i], X509_get_subject_name(bc[j])) == 0)
					break;
			if (names[i] && j == pol->n_bundle_certs) {
				x509info_name(names[i], name, sizeof(name));
				snprintf(line, sizeof(line),
					 "the server named CA %s, which --ca-bundle does not hold: the bundle given is not the one this server verifies with",
					 name);
				x509info_copy_utf8(line, strlen(line), cv->note, sizeof(cv->note));
				goto Exit;
			}
		}
		for (j = 0; j < pol->n_bundle_certs; j++) {
			for (i = 0; i < n_names; i++)
				if (names[i] && X509_NAME_cmp(names[i], X509_get_subject_name(bc[j])) == 0)
					break;
			if (i == n_names) {
				x509info_name(X509_get_subject_name(bc[j]), name, sizeof(name));
				snprintf(line, sizeof(line),
					 "--ca-bundle holds %s, which the server did not name: the bundle given is not the one this server verifies with",
					 name);
				x509info_copy_utf8(line, strlen(line), cv->note, sizeof(cv->note));
				goto Exit;
			}
		}
	}
	for (k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		if (!(cv->bundle_problems & order[k]))
			continue;
		for (j = 0; j < sum->n; j++) {
			if (bundle_summary_problems(sum, j, at, -1) & order[k]) {
				bundle_problem_text(bc, pol->n_bundle_certs, j, order[k], at, line, sizeof(line));
				x509info_copy_utf8(line, strlen(line), cv->note, sizeof(cv->note));
				goto Exit;
			}
		}
	}
Exit:
	bundle_summary_free(own);
}

void chain_verify_run(X509 *const *certs, size_t n, X509_NAME *const *ca_names, size_t n_ca, uint64_t ca_id,
		      time_t at, const struct chain_policy *pol, struct chain_verify *cv, struct chain_verify_errors *errs)
{
	X509_STORE *store = pol->bundle, *own = NULL;
	X509 *standins[MAX_STANDINS];
	struct run_state st;
	size_t n_standins = 0, i;
	bool crl = pol->crl && pol->bundle != NULL;

	/* the scalars; the arrays are written as far as they are used */
	memset(cv, 0, offsetof(struct chain_verify, note));
	cv->note[0] = '\0';
	errs->n = 0;
	errs->top = NULL;
	cv->bundle_certs = pol->bundle_certs;
	cv->n_bundle_certs = pol->n_bundle_certs;
	cv->verify_depth = pol->verify_depth;
	cv->needed_depth = -1;
	cv->purpose = pol->purpose > 0 ? pol->purpose : X509_PURPOSE_SSL_CLIENT;
	cv->crl = crl;
	if (n == 0 || certs == NULL || certs[0] == NULL)
		return;
	if (store == NULL) {
		if (n_ca == 0 || ca_names == NULL)
			return;
		if (!(own = names_store(certs, n, ca_names, n_ca, standins, &n_standins)))
			return;
		store = own;
	}
	st = (struct run_state){ .errs = errs, .standins = standins, .n_standins = n_standins };
	if (!run_once(certs, n, store, at, pol, crl, pol->verify_depth, &st, cv))
		goto Exit;
	cv->trust = own ? CHAIN_TRUST_CA_NAMES : CHAIN_TRUST_BUNDLE;
	fill_result(cv, errs, &st);
	if (errs->top != NULL && !cv->ok)
		cv->stops = X509_NAME_cmp(X509_get_subject_name(errs->top), X509_get_issuer_name(errs->top)) != 0;
	if (cv->ok) {
		cv->needed_depth = needed_for(cv->n_built);
	} else if (pol->verify_depth >= 0) {
		/* does the depth alone refuse it? */
		struct chain_verify_errors again;
		struct chain_verify wide;
		struct run_state st2 = { .errs = &again, .standins = standins, .n_standins = n_standins };

		again.n = 0;
		memset(&wide, 0, offsetof(struct chain_verify, note));
		if (run_once(certs, n, store, at, pol, crl, -1, &st2, &wide) && again.n == 0) {
			/* the depth cut the chain short: no CA is missing */
			cv->depth_limited = true;
			cv->needed_depth = needed_for(wide.n_built);
			cv->stops = false;
		}
	}
	if (!own)
		bundle_note(ca_names, n_ca, ca_id, at, pol, cv);
Exit:
	/* the store holds its own references to the stand-ins */
	for (i = 0; i < n_standins; i++)
		X509_free(standins[i]);
	X509_STORE_free(own);
	x509info_err_clear();
}
