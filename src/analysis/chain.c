/* chain: predicts whether a verifying server accepts a client's certificate
 * chain, from the certificates on the wire, the CertificateRequest's CA
 * names and, when given, the server's CA bundle.  Each finding is one
 * evidence line naming the certificate and the dates or names involved. */
#include "config.h"

#include "analysis/chain.h"

#include "analysis/bundle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "wire/x509info.h"
#include "wire/fnv.h"

/* Sent certificates looked at when walking up from the leaf; a Certificate
 * message holds a handful, and this bounds the work on hostile input.  A
 * longer chain is still checked, but where the walk stops short of its
 * end the issuer is not judged: the rest may hold it. */
#define CHAIN_SCAN_MAX 32

/* Order of the findings, most decisive first: what is wrong with the leaf
 * itself settles the question before which CA issued it does. */
enum rank {
	RANK_LEAF_TIME,
	RANK_CA_TIME,
	RANK_SELF_SIGNED,
	RANK_EKU,
	RANK_KEY_USAGE,
	RANK_ISSUER,
	RANK_SIGNATURE,
	RANK_BUNDLE,
};

struct ctx {
	struct chain_report *out;
	enum rank ranks[CHAIN_MAX_FINDINGS];
	time_t at;
	char at_str[32];          /* `at` as text, made for the first finding that names it */
	X509_NAME *const *ca_names;
	size_t n_ca;
	uint64_t ca_id;           /* names ca_names in this thread's cache, 0 if unknown */
};

static void add_finding(struct ctx *c, enum rank rank, enum reason_code reason,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Inserts after the findings of the same or a more decisive rank; when the
 * report is full the least decisive finding is the one dropped. */
static void add_finding(struct ctx *c, enum rank rank, enum reason_code reason,
			const char *fmt, ...)
{
	struct chain_report *out = c->out;
	char line[1024];
	size_t pos = 0, i;
	va_list ap;
	int len;

	while (pos < out->n && c->ranks[pos] <= rank)
		pos++;
	if (pos == CHAIN_MAX_FINDINGS)
		return;
	if (out->n == CHAIN_MAX_FINDINGS)
		out->n--;
	for (i = out->n; i > pos; i--) {
		out->findings[i] = out->findings[i - 1];
		c->ranks[i] = c->ranks[i - 1];
	}
	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (len < 0)
		line[0] = '\0';
	out->findings[pos].reason = reason;
	out->findings[pos].from_verify = false;
	x509info_copy_utf8(line, strlen(line), out->findings[pos].text,
			   sizeof(out->findings[pos].text));
	c->ranks[pos] = rank;
	out->n++;
}

static void label(const X509_NAME *n, char out[256])
{
	x509info_label(n, out, 256);
	if (out[0] == '\0')
		snprintf(out, 256, "(empty name)");
}

static bool name_is_named(const struct ctx *c, const X509_NAME *n)
{
	size_t i;

	for (i = 0; i < c->n_ca; i++)
		if (c->ca_names[i] != NULL && X509_NAME_cmp(c->ca_names[i], n) == 0)
			return true;
	return false;
}

/* "[CN=A, O=B; CN=C]" with as many whole names as fit in outlen. */
static void ca_list(const struct ctx *c, char *out, size_t outlen)
{
	char name[256], more[32];
	size_t i, o, shown = 0, len;

	snprintf(out, outlen, "[");
	for (i = 0; i < c->n_ca; i++) {
		if (c->ca_names[i] == NULL)
			continue;
		x509info_name(c->ca_names[i], name, sizeof(name));
		o = strlen(out);
		len = strlen(name);
		/* keep room for "; +NN more]" */
		if (o + 2 + len + sizeof(more) >= outlen)
			break;
		snprintf(out + o, outlen - o, "%s%s", shown ? "; " : "", name);
		shown++;
	}
	o = strlen(out);
	more[0] = '\0';
	if (i < c->n_ca)
		snprintf(more, sizeof(more), "%s+%zu more", shown ? "; " : "", c->n_ca - i);
	snprintf(out + o, outlen - o, "%s]", more);
}

/* Whether some O of `issuer` is the O of a named CA or of a certificate in
 * the bundle: then the issuer is probably an intermediate of a known PKI
 * that was not sent, rather than a foreign CA. */
static bool shares_org(const struct ctx *c, const X509_NAME *issuer, X509_STORE *bundle)
{
	STACK_OF(X509_OBJECT) *objs = NULL;
	int i = -1, j;
	bool found = false, locked = false;

	/* the bundle may be shared by threads whose lookups add to it */
	if (bundle != NULL && X509_STORE_lock(bundle)) {
		locked = true;
		objs = X509_STORE_get0_objects(bundle);
	}

	while (!found && (i = X509_NAME_get_index_by_NID(issuer, NID_organizationName, i)) >= 0) {
		const ASN1_STRING *org = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(issuer, i));
		size_t m, total = c->n_ca + (size_t)(objs ? sk_X509_OBJECT_num(objs) : 0);

		for (m = 0; !found && m < total; m++) {
			const X509_NAME *cand = NULL;

			if (m < c->n_ca) {
				cand = c->ca_names[m];
			} else {
				X509_OBJECT *o = sk_X509_OBJECT_value(objs, (int)(m - c->n_ca));
				X509 *x = X509_OBJECT_get_type(o) == X509_LU_X509 ? X509_OBJECT_get0_X509(o) : NULL;
				cand = x ? X509_get_subject_name(x) : NULL;
			}
			if (cand == NULL)
				continue;
			for (j = -1; !found && (j = X509_NAME_get_index_by_NID(cand, NID_organizationName, j)) >= 0;) {
				const ASN1_STRING *o2 = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(cand, j));
				unsigned char *a = NULL, *b = NULL;
				int la = ASN1_STRING_to_UTF8(&a, org), lb = ASN1_STRING_to_UTF8(&b, o2);

				found = la >= 0 && la == lb && memcmp(a, b, (size_t)la) == 0;
				OPENSSL_free(a);
				OPENSSL_free(b);
			}
		}
	}
	if (locked)
		X509_STORE_unlock(bundle);
	x509info_err_clear();
	return found;
}

/* A signature check costs ~45 us (RSA-2048, OpenSSL 3.0) and the capture
 * analyser meets the same few chains on every connection, so outcomes are
 * remembered per thread.  The key is both certificates' SHA-1 over their
 * whole DER (signature included), which OpenSSL keeps in the X509: the
 * outcome is a function of those bytes alone, and colliding a certificate
 * already signed by someone else would take a second preimage. */
#define SIG_MEMO_SLOTS 64
#define SIG_MEMO_SIG 512

/* Whether x's signature verifies with issuer's key, remembered per thread.
 * The key is x's signature value and the issuer's public key (both
 * compared whole): a signature value belongs to one certificate. */
struct sig_memo {
	size_t sig_len, key_len;
	unsigned char sig[SIG_MEMO_SIG];
	unsigned char key[SIG_MEMO_SIG];
	unsigned char state;
};

enum { SIG_UNKNOWN, SIG_GOOD, SIG_BAD };

static _Thread_local struct sig_memo sig_memo[SIG_MEMO_SLOTS];

static bool signed_by(X509 *x, X509 *issuer)
{
	const ASN1_BIT_STRING *sig = NULL;
	const ASN1_BIT_STRING *pubkey = X509_get0_pubkey_bitstr(issuer);
	struct sig_memo *slot = NULL;
	EVP_PKEY *pk;
	bool ok;

	X509_get0_signature(&sig, NULL, x);
	if (sig && pubkey) {
		const unsigned char *sb = ASN1_STRING_get0_data(sig), *kb = ASN1_STRING_get0_data(pubkey);
		size_t sl = (size_t)ASN1_STRING_length(sig), kl = (size_t)ASN1_STRING_length(pubkey);

		if (sb && kb && sl > 0 && kl > 0 && sl <= SIG_MEMO_SIG && kl <= SIG_MEMO_SIG) {
			uint32_t idx = FNV32_BASIS;

			for (size_t i = 0; i < 16 && i < sl; i++)   /* the signature's last bytes */
				idx = fnv32_step(idx, sb[sl - 1 - i]);
			slot = &sig_memo[idx % SIG_MEMO_SLOTS];
			if (slot->state != SIG_UNKNOWN && slot->sig_len == sl && slot->key_len == kl &&
			    memcmp(slot->sig, sb, sl) == 0 && memcmp(slot->key, kb, kl) == 0)
				return slot->state == SIG_GOOD;
			pk = X509_get0_pubkey(issuer);
			ok = pk != NULL && X509_verify(x, pk) == 1;
			x509info_err_clear();
			memcpy(slot->sig, sb, sl);
			memcpy(slot->key, kb, kl);
			slot->sig_len = sl;
			slot->key_len = kl;
			slot->state = ok ? SIG_GOOD : SIG_BAD;
			return ok;
		}
	}
	pk = X509_get0_pubkey(issuer);
	ok = pk != NULL && X509_verify(x, pk) == 1;
	x509info_err_clear();
	return ok;
}

/* One validity finding: "expired <date>" or "is not valid until <date>",
 * for the leaf or for certificate idx+1 of the n sent. */
static void time_finding(struct ctx *c, X509 *x, size_t idx, size_t n, enum reason_code reason,
			 const char *verb, time_t t)
{
	char who[256], when[32];

	label(X509_get_subject_name(x), who);
	x509info_time_str(t, when, sizeof(when));
	if (!c->at_str[0])
		x509info_time_str(c->at, c->at_str, sizeof(c->at_str));
	if (idx == 0)
		add_finding(c, RANK_LEAF_TIME, reason, "client certificate %s %s %s (the connection was at %s)",
			    who, verb, when, c->at_str);
	else
		add_finding(c, RANK_CA_TIME, reason,
			    "issuing certificate %s (certificate %zu of %zu sent) %s %s (the connection was at %s)",
			    who, idx + 1, n, verb, when, c->at_str);
}

/* A certificate's validity period as it decodes. */
struct validity {
	bool nb_ok, na_ok;
	time_t nb, na;
};

static void validity_of(X509 *x, struct validity *v)
{
	v->nb_ok = x509info_asn1_time(X509_get0_notBefore(x), &v->nb);
	v->na_ok = x509info_asn1_time(X509_get0_notAfter(x), &v->na);
}

static void check_time(struct ctx *c, X509 *x, size_t idx, size_t n, const struct validity *v)
{
	/* as OpenSSL's x509_check_cert_time: valid while notBefore <= at < notAfter */
	if (v->na_ok && v->na <= c->at)
		time_finding(c, x, idx, n, R_EXPIRED, "expired", v->na);
	if (v->nb_ok && v->nb > c->at)
		time_finding(c, x, idx, n, R_NOT_YET_VALID, "is not valid until", v->nb);
}

static void ku_names(uint32_t ku, char *out, size_t outlen)
{
	static const struct { uint32_t bit; const char *name; } kus[] = {
		{ KU_DIGITAL_SIGNATURE, "digitalSignature" },
		{ KU_NON_REPUDIATION, "nonRepudiation" },
		{ KU_KEY_ENCIPHERMENT, "keyEncipherment" },
		{ KU_DATA_ENCIPHERMENT, "dataEncipherment" },
		{ KU_KEY_AGREEMENT, "keyAgreement" },
		{ KU_KEY_CERT_SIGN, "keyCertSign" },
		{ KU_CRL_SIGN, "cRLSign" },
		{ KU_ENCIPHER_ONLY, "encipherOnly" },
		{ KU_DECIPHER_ONLY, "decipherOnly" },
	};
	size_t i, o = 0;

	out[0] = '\0';
	for (i = 0; i < sizeof(kus) / sizeof(kus[0]); i++) {
		if (!(ku & kus[i].bit) || o >= outlen)
			continue;
		o += (size_t)snprintf(out + o, outlen - o, "%s%s", o ? "," : "", kus[i].name);
	}
	if (out[0] == '\0')
		snprintf(out, outlen, "(none)");
}

static void check_leaf_usage(struct ctx *c, X509 *leaf)
{
	char who[256], eku[128], ku[160];
	bool client_auth;
	uint32_t flags = X509_get_extension_flags(leaf);
	/* OpenSSL's ssl_client purpose wants clientAuth itself: an EKU of
	 * anyExtendedKeyUsage alone fails with 26:unsuitable certificate
	 * purpose in nginx, HAProxy and Apache, whatever RFC 5280 allows */
	bool eku_refused = (flags & EXFLAG_XKUSAGE)
		? !(X509_get_extended_key_usage(leaf) & XKU_SSL_CLIENT)
		: X509_get_ext_by_NID(leaf, NID_ext_key_usage, -1) >= 0;  /* present, undecodable */

	if (eku_refused) {
		label(X509_get_subject_name(leaf), who);
		x509info_eku(leaf, eku, sizeof(eku), &client_auth);
		if (client_auth)
			add_finding(c, RANK_EKU, R_BAD_EKU,
				    "client certificate %s has extended key usage %s without clientAuth; OpenSSL-based servers (nginx, HAProxy, Apache) refuse anyExtendedKeyUsage alone for client authentication",
				    who, eku);
		else
			add_finding(c, RANK_EKU, R_BAD_EKU,
				    "client certificate %s has extended key usage %s without clientAuth, so a verifying server refuses it for client authentication",
				    who, eku[0] ? eku : "(unreadable)");
	}
	if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE)) {
		label(X509_get_subject_name(leaf), who);
		ku_names(X509_get_key_usage(leaf), ku, sizeof(ku));
		add_finding(c, RANK_KEY_USAGE, R_BAD_KEY_USAGE,
			    "client certificate %s has key usage %s without digitalSignature, so it may not sign the handshake (CertificateVerify)",
			    who, ku);
	}
	x509info_err_clear();
}

/* Walks up from the leaf through the sent certificates (in any order, as
 * servers do); path[0] is the leaf.  Returns the path length; *whole says
 * whether the path ends where the sent chain does (at a root, or where no
 * sent certificate issued the last), rather than where the scan stopped. */
static size_t walk(X509 *const *certs, size_t n, size_t path[CHAIN_SCAN_MAX], bool *whole)
{
	bool used[CHAIN_SCAN_MAX] = { false };
	size_t np = 1, j, scan = n < CHAIN_SCAN_MAX ? n : CHAIN_SCAN_MAX;
	X509 *x;

	path[0] = 0;
	used[0] = true;
	*whole = n <= CHAIN_SCAN_MAX;
	while (np < CHAIN_SCAN_MAX) {
		x = certs[path[np - 1]];
		if (X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0) {
			*whole = true;  /* a root: nothing above it */
			break;
		}
		for (j = 1; j < scan; j++) {
			int rc;

			if (used[j] || certs[j] == NULL)
				continue;
			rc = X509_check_issued(certs[j], x);
			/* names (and key identifiers) match; an issuer lacking
			 * keyCertSign is still the one that was meant */
			if (rc == X509_V_OK || rc == X509_V_ERR_KEYUSAGE_NO_CERTSIGN)
				break;
		}
		if (j == scan)
			break;
		used[j] = true;
		path[np++] = j;
	}
	x509info_err_clear();
	return np;
}

static void check_issuer(struct ctx *c, X509 *const *certs, const size_t *path, size_t np,
			 bool whole, bool leaf_self_signed_reported)
{
	X509 *top = certs[path[np - 1]];
	const X509_NAME *top_issuer = X509_get_issuer_name(top);
	char who[256], iss[256], cas[VERDICT_EVIDENCE_LEN], lead[512];
	size_t k, room;

	for (k = 0; k < np; k++) {
		X509 *x = certs[path[k]];
		if (name_is_named(c, X509_get_subject_name(x)) || name_is_named(c, X509_get_issuer_name(x))) {
			c->out->issuer_named = true;
			return;
		}
	}
	/* the walk stopped inside the sent chain: its end is unknown */
	if (!whole)
		return;
	/* a self-signed leaf is already reported, and it is its own "chain end" */
	if (leaf_self_signed_reported && np == 1)
		return;
	label(top_issuer, iss);
	if (X509_NAME_cmp(X509_get_subject_name(top), top_issuer) != 0 &&
	    shares_org(c, top_issuer, NULL)) {
		if (np == 1) {
			add_finding(c, RANK_ISSUER, R_MISSING_INTERMEDIATE,
				    "the leaf's issuer %s is neither sent nor among the CAs the server named; an intermediate is probably missing",
				    iss);
		} else {
			label(X509_get_subject_name(top), who);
			add_finding(c, RANK_ISSUER, R_MISSING_INTERMEDIATE,
				    "the issuer of %s (last of the sent chain), %s, is neither sent nor among the CAs the server named; an intermediate is probably missing",
				    who, iss);
		}
		return;
	}
	/* the list gets the room the rest of the line leaves, so it is cut
	 * between names and keeps its "]" */
	snprintf(lead, sizeof(lead), "the chain ends at %s, which is not among the CAs the server named: ", iss);
	room = strlen(lead) + 48 < VERDICT_EVIDENCE_LEN ? VERDICT_EVIDENCE_LEN - strlen(lead) : 48;
	ca_list(c, cas, room < sizeof(cas) ? room : sizeof(cas));
	add_finding(c, RANK_ISSUER, R_UNKNOWN_ISSUER, "%s%s", lead, cas);
}

static void check_signatures(struct ctx *c, X509 *const *certs, const size_t *path, size_t np)
{
	char who[256], iss[256];
	size_t k;

	for (k = 0; k + 1 < np; k++) {
		X509 *x = certs[path[k]], *issuer = certs[path[k + 1]];

		if (signed_by(x, issuer))
			continue;
		label(X509_get_subject_name(x), who);
		label(X509_get_subject_name(issuer), iss);
		add_finding(c, RANK_SIGNATURE, R_BAD_SIGNATURE,
			    "the signature of %s does not verify with the key of its issuer %s (certificate %zu sent)",
			    who, iss, path[k + 1] + 1);
	}
	x509info_err_clear();
}

static enum reason_code map_verify_error(const struct ctx *c, int err, X509 *cur, X509_STORE *bundle)
{
	uint32_t flags;

	switch (err) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return R_EXPIRED;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return R_NOT_YET_VALID;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return cur != NULL && shares_org(c, X509_get_issuer_name(cur), bundle)
			? R_MISSING_INTERMEDIATE : R_UNKNOWN_ISSUER;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
		return R_SELF_SIGNED;
	case X509_V_ERR_CERT_UNTRUSTED:
		return R_UNKNOWN_ISSUER;
	case X509_V_ERR_CERT_CHAIN_TOO_LONG:
	case X509_V_ERR_PATH_LENGTH_EXCEEDED:
		return R_DEPTH_EXCEEDED;
	case X509_V_ERR_INVALID_PURPOSE:
		/* the ssl_client purpose refuses a wrong EKU, and a key usage
		 * with neither digitalSignature nor keyAgreement */
		if (cur == NULL)
			return R_BAD_EKU;
		flags = X509_get_extension_flags(cur);
		if (!((flags & EXFLAG_XKUSAGE) && !(X509_get_extended_key_usage(cur) & XKU_SSL_CLIENT)) &&
		    (flags & EXFLAG_KUSAGE) &&
		    !(X509_get_key_usage(cur) & (KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT)))
			return R_BAD_KEY_USAGE;
		return R_BAD_EKU;
	case X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE:
		return R_BAD_KEY_USAGE;
	case X509_V_ERR_CERT_REVOKED:
		return R_REVOKED;
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		return R_BAD_SIGNATURE;
	default:
		return R_UNKNOWN;
	}
}

static bool in_bundle(const struct chain_policy *pol, const X509 *x)
{
	size_t i;

	for (i = 0; x != NULL && pol->bundle_certs != NULL && i < pol->n_bundle_certs; i++)
		if (pol->bundle_certs[i] == x)
			return true;
	return false;
}

/* The reason the verification's errors stand for: a depth that alone
 * refuses the chain, a revocation wherever it shows, otherwise the first
 * error (where `openssl verify` stops). */
static enum reason_code verify_reason(const struct ctx *c, const struct chain_verify *cv,
				      const struct chain_verify_errors *errs, X509_STORE *bundle)
{
	size_t i;

	if (cv->depth_limited)
		return R_DEPTH_EXCEEDED;
	for (i = 0; i < errs->n; i++)
		if (errs->e[i].code == X509_V_ERR_CERT_REVOKED)
			return R_REVOKED;
	return map_verify_error(c, errs->e[0].code, errs->e[0].cert, bundle);
}

/* X509_verify_cert as the server runs it (chainverify.c), against the
 * bundle or, without one, the CA names, into c->out->verify.  The reason
 * its errors stand for; R_NONE when it passed or could not run. */
static enum reason_code run_verify(struct ctx *c, X509 *const *certs, size_t n, time_t at,
				   const struct chain_policy *pol)
{
	struct chain_verify *cv = &c->out->verify;
	struct chain_verify_errors errs;

	chain_verify_run(certs, n, c->ca_names, c->n_ca, c->ca_id, at, pol, cv, &errs);
	if (cv->trust == CHAIN_TRUST_NONE)
		return pol->bundle != NULL ? R_UNKNOWN : R_NONE;
	if (cv->trust == CHAIN_TRUST_BUNDLE && cv->ok)
		c->out->bundle_verified = true;
	if (cv->ok || errs.n == 0)
		return R_NONE;
	cv->cause_in_bundle = in_bundle(pol, errs.e[0].cert) || (cv->stops && in_bundle(pol, errs.top));
	return verify_reason(c, cv, &errs, pol->bundle);
}

/* The verification's finding.  Its text is nginx's log line; verdict.c
 * writes it again for the server's kind once that is known. */
static void verify_finding(struct ctx *c, enum reason_code reason)
{
	const struct chain_verify *cv = &c->out->verify;
	const char *who;
	char line[160];
	size_t i;

	if (reason == R_NONE)
		return;
	if (cv->trust == CHAIN_TRUST_NONE) {
		add_finding(c, RANK_BUNDLE, R_UNKNOWN, "verification against the CA bundle could not run (OpenSSL error)");
		return;
	}
	chain_verify_log_line(cv, SK_NGINX, line, sizeof(line), &who);
	add_finding(c, RANK_BUNDLE, reason, "%s would log \"%s\"", who, line);
	for (i = 0; i < c->out->n; i++)
		if (c->ranks[i] == RANK_BUNDLE)
			c->out->findings[i].from_verify = true;
}

/* A verification that passed settles the questions it asks itself: trust
 * anchor, issuers, signatures, validity, purpose.  Key usage stays: the
 * ssl_client purpose accepts keyAgreement where a TLS 1.3 client must sign. */
static void drop_settled(struct ctx *c)
{
	struct chain_report *out = c->out;
	size_t i, k = 0;

	for (i = 0; i < out->n; i++) {
		if (out->findings[i].reason != R_BAD_KEY_USAGE)
			continue;
		if (k != i) {
			out->findings[k] = out->findings[i];
			c->ranks[k] = c->ranks[i];
		}
		k++;
	}
	out->n = k;
}

/* The checks that do not depend on the time or on a bundle: the path up
 * from the leaf, a self-signed leaf, the leaf's usages, the issuer against
 * the CA names, the signatures along the path. */
static size_t static_checks(struct ctx *c, X509 *const *certs, size_t n, size_t path[CHAIN_SCAN_MAX])
{
	X509 *leaf = certs[0];
	bool self_issued, leaf_self_signed = false, whole;
	size_t np = walk(certs, n, path, &whole);

	self_issued = X509_NAME_cmp(X509_get_subject_name(leaf), X509_get_issuer_name(leaf)) == 0;
	if (self_issued && signed_by(leaf, leaf) && !name_is_named(c, X509_get_subject_name(leaf))) {
		char who[256];

		label(X509_get_subject_name(leaf), who);
		leaf_self_signed = true;
		if (c->n_ca > 0)
			add_finding(c, RANK_SELF_SIGNED, R_SELF_SIGNED,
				    "client certificate %s is self-signed and is not among the CAs the server named; only a server that trusts this very certificate accepts it",
				    who);
		else
			add_finding(c, RANK_SELF_SIGNED, R_SELF_SIGNED,
				    "client certificate %s is self-signed (issued by itself); only a server that trusts this very certificate accepts it",
				    who);
	}
	check_leaf_usage(c, leaf);
	if (c->n_ca > 0)
		check_issuer(c, certs, path, np, whole, leaf_self_signed);
	check_signatures(c, certs, path, np);
	return np;
}

static void ctx_init(struct ctx *c, struct chain_report *out, X509_NAME *const *ca_names,
		     size_t n_ca, time_t at)
{
	memset(c, 0, sizeof(*c));
	c->out = out;
	c->ca_names = ca_names;
	c->n_ca = ca_names != NULL ? n_ca : 0;
	c->at = at;
}

static const struct chain_policy *policy_or_default(const struct chain_policy *pol, struct chain_policy *tmp)
{
	if (pol != NULL)
		return pol;
	chain_policy_init(tmp);
	return tmp;
}

/* Findings are kept in rank order, so the time findings (the most decisive
 * ranks) may come after the others and still take their places first. */
static void check_policy(X509 *const *certs, size_t n, X509_NAME *const *ca_names, size_t n_ca, uint64_t ca_id,
			 time_t at, const struct chain_policy *policy, bool verify_names, struct chain_report *out)
{
	struct chain_policy tmp;
	const struct chain_policy *pol = policy_or_default(policy, &tmp);
	struct ctx c;
	struct validity v;
	enum reason_code reason;
	size_t path[CHAIN_SCAN_MAX], np, k;

	memset(out, 0, sizeof(*out));
	if (certs == NULL || n == 0 || certs[0] == NULL)
		return;
	out->checked = true;
	ctx_init(&c, out, ca_names, n_ca, at);
	c.ca_id = ca_id;
	np = static_checks(&c, certs, n, path);
	for (k = 0; k < np; k++) {
		validity_of(certs[path[k]], &v);
		check_time(&c, certs[path[k]], path[k], n, &v);
	}
	if (pol->bundle != NULL) {
		verify_finding(&c, run_verify(&c, certs, n, at, pol));
		if (out->bundle_verified)
			drop_settled(&c);
	} else if (verify_names && c.n_ca > 0) {
		/* the stand-ins for the CA names judge what the wire's checks
		 * did not: only a refusal they alone see is a finding */
		reason = run_verify(&c, certs, n, at, pol);
		if (out->n == 0)
			verify_finding(&c, reason);
	}
	x509info_err_clear();
}

void chain_check_policy(X509 *const *certs, size_t n, X509_NAME *const *ca_names, size_t n_ca,
			time_t at, const struct chain_policy *policy, bool verify_names,
			struct chain_report *out)
{
	check_policy(certs, n, ca_names, n_ca, 0, at, policy, verify_names, out);
}

void chain_check(X509 *const *certs, size_t n, X509_NAME *const *ca_names,
		 size_t n_ca, time_t at, X509_STORE *bundle,
		 struct chain_report *out)
{
	struct chain_policy pol;

	chain_policy_init(&pol);
	pol.bundle = bundle;
	chain_check_policy(certs, n, ca_names, n_ca, at, &pol, true, out);
}

/* ---- remembered checks ---- */

/* MEMO_SETS sets of MEMO_WAYS entries: a chain goes in its set's least
 * recently used entry, so a handful of chains that meet in one set do not
 * evict each other at every connection. */
#define MEMO_SETS 16
#define MEMO_WAYS 4

struct memo_entry {
	bool used;
	uint64_t last_use;                        /* the memo's clock at its last use */
	struct chain_policy pol;                  /* what of it a verification takes (same_policy) */
	size_t n, n_ca;
	uint64_t ids[CHAIN_MEMO_CERTS], ca_id;
	size_t path[CHAIN_MEMO_CERTS], np;
	struct validity valid[CHAIN_MEMO_CERTS];  /* of path[k] */
	struct validity sent[CHAIN_MEMO_CERTS];   /* of certs[i] */
	struct chain_report report;               /* the static checks' findings */
	enum rank ranks[CHAIN_MAX_FINDINGS];
	/* the verification against the CA names, for the validity of the
	 * sent certificates it was made with */
	bool verified;
	uint32_t verified_mask;
	size_t verified_epoch;                    /* the bundle's (bundle_summary_epoch) */
	enum reason_code verified_reason;
	struct chain_verify verify;
};

struct chain_memo {
	struct memo_entry slots[MEMO_SETS][MEMO_WAYS];
	uint64_t clock;
};

struct chain_memo *chain_memo_new(void)
{
	return calloc(1, sizeof(struct chain_memo));
}

void chain_memo_free(struct chain_memo *m)
{
	free(m);
}

/* The policy as a verification sees it (the observer may pass a copy). */
static bool same_policy(const struct chain_policy *a, const struct chain_policy *b)
{
	return a->bundle == b->bundle && a->bundle_certs == b->bundle_certs && a->verify_depth == b->verify_depth &&
	       a->crl == b->crl && a->purpose == b->purpose;
}

static bool memo_key_eq(const struct memo_entry *e, const struct chain_policy *pol, const uint64_t *ids, size_t n,
			uint64_t ca_id, size_t n_ca)
{
	return e->used && same_policy(&e->pol, pol) && e->n == n && e->ca_id == ca_id && e->n_ca == n_ca &&
	       memcmp(e->ids, ids, n * sizeof(*ids)) == 0;
}

/* The set's entry for the key (*found), or the one to make it in: an
 * unused one, or the least recently used. */
static struct memo_entry *memo_slot(struct memo_entry *set, const struct chain_policy *pol, const uint64_t *ids,
				    size_t n, uint64_t ca_id, size_t n_ca, bool *found)
{
	struct memo_entry *victim = &set[0];
	size_t w;

	*found = true;
	for (w = 0; w < MEMO_WAYS; w++) {
		if (memo_key_eq(&set[w], pol, ids, n, ca_id, n_ca))
			return &set[w];
		if (victim->used && (!set[w].used || set[w].last_use < victim->last_use))
			victim = &set[w];
	}
	*found = false;
	return victim;
}

/* A bundle verification can be remembered when what it takes from the
 * time is known: the validity of the chain's and the bundle's
 * certificates, not a CRL's updates. */
static bool memo_can_verify(const struct chain_policy *pol)
{
	return pol->bundle == NULL || (pol->bundle_summary != NULL && !pol->crl);
}

/* Which sent certificates are expired or not yet valid at `at`: all a
 * verification's outcome takes from the time, without a CRL. */
static uint32_t validity_mask(const struct memo_entry *e, time_t at)
{
	uint32_t mask = 0;
	size_t i;

	for (i = 0; i < e->n; i++) {
		if (e->sent[i].na_ok && e->sent[i].na <= at)
			mask |= 1u << (2 * i);
		if (e->sent[i].nb_ok && e->sent[i].nb > at)
			mask |= 2u << (2 * i);
	}
	return mask;
}

/* A remembered report into a connection's: all of it but the finding
 * slots past n (a connection's copy was 2.5 KB, mostly empty slots). */
static void report_copy(struct chain_report *out, const struct chain_report *in)
{
	_Static_assert(offsetof(struct chain_report, n) <
		       offsetof(struct chain_report, findings) + sizeof(in->findings) + _Alignof(size_t),
		       "report_copy copies what comes before the findings, and from n on");
	memcpy(out, in, offsetof(struct chain_report, findings));
	memcpy(out->findings, in->findings, in->n * sizeof(in->findings[0]));
	memcpy(&out->n, &in->n, sizeof(*in) - offsetof(struct chain_report, n));
}

void chain_check_memo(struct chain_memo *m, const uint64_t *ids, uint64_t ca_id,
		      X509 *const *certs, size_t n, X509_NAME *const *ca_names, size_t n_ca,
		      time_t at, const struct chain_policy *policy, bool verify_names,
		      struct chain_report *out)
{
	struct chain_policy tmp;
	const struct chain_policy *pol = policy_or_default(policy, &tmp);
	struct memo_entry *e;
	struct ctx c;
	uint64_t h = ca_id * 0x9e3779b97f4a7c15ULL;
	size_t path[CHAIN_SCAN_MAX], i, k, epoch;
	uint32_t mask;
	bool found;

	if (ca_names == NULL)
		n_ca = 0;
	if (m == NULL || !memo_can_verify(pol) || n == 0 || n > CHAIN_MEMO_CERTS || certs == NULL ||
	    certs[0] == NULL || (n_ca > 0 && ca_id == 0)) {
		check_policy(certs, n, ca_names, n_ca, m ? ca_id : 0, at, pol, verify_names, out);
		return;
	}
	for (i = 0; i < n; i++) {
		if (ids[i] == 0) {
			check_policy(certs, n, ca_names, n_ca, ca_id, at, pol, verify_names, out);
			return;
		}
		h = (h ^ ids[i]) * 0x9e3779b97f4a7c15ULL;
	}
	e = memo_slot(m->slots[(h >> 32) % MEMO_SETS], pol, ids, n, ca_id, n_ca, &found);
	if (!found) {
		memset(e, 0, sizeof(*e));
		e->report.checked = true;
		ctx_init(&c, &e->report, ca_names, n_ca, at);
		e->np = static_checks(&c, certs, n, path);   /* np <= n */
		for (k = 0; k < e->np; k++) {
			e->path[k] = path[k];
			validity_of(certs[path[k]], &e->valid[k]);
		}
		for (i = 0; i < n; i++)
			if (certs[i] != NULL)
				validity_of(certs[i], &e->sent[i]);
		memcpy(e->ranks, c.ranks, sizeof(e->ranks));
		memcpy(e->ids, ids, n * sizeof(*ids));
		e->pol = *pol;
		e->n = n;
		e->ca_id = ca_id;
		e->n_ca = n_ca;
		e->used = true;
		x509info_err_clear();
	}
	e->last_use = ++m->clock;
	report_copy(out, &e->report);
	ctx_init(&c, out, ca_names, n_ca, at);
	c.ca_id = ca_id;
	memcpy(c.ranks, e->ranks, sizeof(c.ranks));
	for (k = 0; k < e->np; k++)
		check_time(&c, certs[e->path[k]], e->path[k], n, &e->valid[k]);
	if (pol->bundle == NULL && (!verify_names || c.n_ca == 0))
		return;
	mask = validity_mask(e, at);
	epoch = pol->bundle != NULL ? bundle_summary_epoch(pol->bundle_summary, at) : 0;
	if (!e->verified || e->verified_mask != mask || e->verified_epoch != epoch) {
		e->verified_reason = run_verify(&c, certs, n, at, pol);
		e->verify = out->verify;
		e->verified_mask = mask;
		e->verified_epoch = epoch;
		e->verified = true;
	} else {
		out->verify = e->verify;
		out->bundle_verified = e->verify.trust == CHAIN_TRUST_BUNDLE && e->verify.ok;
	}
	/* as check_policy: a bundle's verification is a finding whatever
	 * the wire's checks found, and settles what it passed */
	if (pol->bundle != NULL) {
		verify_finding(&c, e->verified_reason);
		if (out->bundle_verified)
			drop_settled(&c);
	} else if (out->n == 0) {
		verify_finding(&c, e->verified_reason);
	}
}
