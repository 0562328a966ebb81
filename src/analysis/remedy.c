/* remedy: the remedies, as data (see remedy.h).
 *
 * The facts they rest on: nginx verifies client certificates against the
 * CAs in the file of ssl_client_certificate, and with ssl_verify_depth N
 * accepts at most N CA certificates between the leaf and the trusted root
 * (OpenSSL 3 counts neither; nginx's default is 1); Apache's SSLVerifyDepth
 * counts the root as well.  A client sends the chain in the file it is
 * given: curl --cert takes the leaf followed by its intermediates in one
 * PEM file; a browser takes a PKCS#12 bundle (openssl pkcs12 -export,
 * -certfile for the intermediates), imported into its store, and sees it
 * after a restart.  ssl_verify_client optional (SSLVerifyClient optional,
 * HAProxy's verify optional) lets connections without a certificate in. */
#include "config.h"

#include "analysis/remedy.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "analysis/bundle.h"
#include "analysis/chain.h"

#include <openssl/x509_vfy.h>

/* Conditions on a row besides verdict, reason and kind (bits). */
enum when {
	W_IN_BUNDLE = 1u << 0,      /* the verification blames the server's own bundle */
	W_NOT_IN_BUNDLE = 1u << 1,  /* ... or does not */
	W_BUNDLE_LEAF = 1u << 2,    /* the bundle holds a leaf certificate */
	W_CRL_MISSING = 1u << 3,    /* the verification lacked a CRL (ssl_crl incomplete) */
	W_NOT_CRL_MISSING = 1u << 4,
	W_NO_BUNDLE = 1u << 5,      /* no verification against --ca-bundle ran */
	W_MIDDLEBOX = 1u << 6,      /* fault: middlebox */
	W_NOT_MIDDLEBOX = 1u << 7,
	W_FALLBACK = 1u << 8,       /* only when no other row gave a line */
};

#define ANY_REASON R_COUNT
#define ANY_KIND SK_COUNT

struct row {
	enum verdict_code verdict;
	enum reason_code reason;    /* ANY_REASON, or this reason (R_NONE: none) */
	enum server_kind kind;      /* ANY_KIND, or this kind (SK_UNKNOWN: not told) */
	unsigned when;
	unsigned group;             /* rows of one nonzero group: the first that applies, alone */
	/* {leaf} the client's certificate, {stop} the CA its chain stops short
	 * of, {cas} the CA names the server sent, {depth} the verify depth the
	 * chain needs (nginx), {apache_depth} the same counting the root, {n}
	 * the chain's length, {expired} the expired certificate sent,
	 * {server_issuer} the issuer of the server's certificate, {host} the
	 * server's name.  A row whose placeholder has no value is left out. */
	const char *text;
};

static const struct row rows[] = {
	/* ---- the server refused the chain ---- */
	{ V_SERVER_REJECTED_CHAIN, R_MISSING_INTERMEDIATE, ANY_KIND, W_NOT_IN_BUNDLE, 1,
	  "client: send the intermediate CA certificates with the leaf (the chain stops short of {stop}): curl --cert FILE takes the leaf followed by its intermediates in that one PEM file" },
	{ V_SERVER_REJECTED_CHAIN, R_MISSING_INTERMEDIATE, ANY_KIND, W_NOT_IN_BUNDLE, 1,
	  "client: send the intermediate CA certificates with the leaf: curl --cert FILE takes the leaf followed by its intermediates in that one PEM file" },
	{ V_SERVER_REJECTED_CHAIN, R_MISSING_INTERMEDIATE, ANY_KIND, W_NOT_IN_BUNDLE, 0,
	  "browser: import a PKCS#12 bundle that holds the intermediates (openssl pkcs12 -export -in leaf.pem -inkey leaf.key -certfile intermediates.pem -out client.p12), then restart the browser" },
	{ V_SERVER_REJECTED_CHAIN, R_MISSING_INTERMEDIATE, SK_NGINX, W_NOT_IN_BUNDLE, 0,
	  "nginx: or add {stop} to the file of ssl_client_certificate, then nginx -s reload" },
	{ V_SERVER_REJECTED_CHAIN, R_MISSING_INTERMEDIATE, SK_APACHE, W_NOT_IN_BUNDLE, 0,
	  "Apache: or add {stop} to SSLCACertificateFile, then apachectl graceful" },
	{ V_SERVER_REJECTED_CHAIN, R_MISSING_INTERMEDIATE, SK_HAPROXY, W_NOT_IN_BUNDLE, 0,
	  "HAProxy: or add {stop} to the ca-file of the bind line, then reload HAProxy" },
	{ V_SERVER_REJECTED_CHAIN, R_MISSING_INTERMEDIATE, SK_ENVOY, W_NOT_IN_BUNDLE, 0,
	  "Envoy: or add {stop} to trusted_ca in the validation context" },
	{ V_SERVER_REJECTED_CHAIN, R_MISSING_INTERMEDIATE, SK_UNKNOWN, W_NOT_IN_BUNDLE, 0,
	  "server: or add {stop} to the CA bundle it verifies client certificates with (nginx: ssl_client_certificate)" },

	/* the server's bundle lacks the CAs above its own certificates */
	{ V_SERVER_REJECTED_CHAIN, ANY_REASON, SK_NGINX, W_IN_BUNDLE, 2,
	  "nginx: the file of ssl_client_certificate must hold the CA certificates up to the root: add {stop}, then nginx -s reload" },
	{ V_SERVER_REJECTED_CHAIN, ANY_REASON, SK_APACHE, W_IN_BUNDLE, 2,
	  "Apache: SSLCACertificateFile must hold the CA certificates up to the root: add {stop}, then apachectl graceful" },
	{ V_SERVER_REJECTED_CHAIN, ANY_REASON, ANY_KIND, W_IN_BUNDLE, 2,
	  "server: its CA bundle must hold the CA certificates up to the root: add {stop}" },
	{ V_SERVER_REJECTED_CHAIN, R_EXPIRED, SK_NGINX, W_IN_BUNDLE, 2,
	  "nginx: replace the expired CA certificate in the file of ssl_client_certificate with its renewal, then nginx -s reload" },
	{ V_SERVER_REJECTED_CHAIN, R_EXPIRED, ANY_KIND, W_IN_BUNDLE, 2,
	  "server: replace the expired CA certificate in its CA bundle with its renewal" },
	{ V_SERVER_REJECTED_CHAIN, ANY_REASON, SK_NGINX, W_BUNDLE_LEAF, 12,
	  "nginx: take the leaf certificate out of the file of ssl_client_certificate: it holds CA certificates, not client certificates" },
	{ V_SERVER_REJECTED_CHAIN, ANY_REASON, ANY_KIND, W_BUNDLE_LEAF, 12,
	  "server: take the leaf certificate out of its CA bundle: it holds CA certificates, not client certificates" },

	{ V_SERVER_REJECTED_CHAIN, R_UNKNOWN_ISSUER, ANY_KIND, 0, 3,
	  "client: use a certificate issued by one of the CAs the server named: {cas}" },
	{ V_SERVER_REJECTED_CHAIN, R_UNKNOWN_ISSUER, ANY_KIND, 0, 3,
	  "client: use a certificate issued by a CA the server trusts" },
	{ V_SERVER_REJECTED_CHAIN, R_UNKNOWN_ISSUER, SK_NGINX, W_NOT_IN_BUNDLE, 0,
	  "nginx: or, if the server is to trust {stop}, add it to the file of ssl_client_certificate, then nginx -s reload" },
	{ V_SERVER_REJECTED_CHAIN, R_UNKNOWN_ISSUER, SK_APACHE, W_NOT_IN_BUNDLE, 0,
	  "Apache: or, if the server is to trust {stop}, add it to SSLCACertificateFile, then apachectl graceful" },
	{ V_SERVER_REJECTED_CHAIN, R_UNKNOWN_ISSUER, SK_UNKNOWN, W_NOT_IN_BUNDLE, 0,
	  "server: or, if it is to trust {stop}, add that CA to the bundle it verifies client certificates with (nginx: ssl_client_certificate)" },

	{ V_SERVER_REJECTED_CHAIN, R_DEPTH_EXCEEDED, SK_NGINX, 0, 4,
	  "nginx: set ssl_verify_depth {depth} (the chain has {n} certificates; OpenSSL counts neither the leaf nor the trusted root), then nginx -s reload" },
	{ V_SERVER_REJECTED_CHAIN, R_DEPTH_EXCEEDED, SK_NGINX, 0, 4,
	  "nginx: raise ssl_verify_depth to the number of CA certificates between the leaf and the trusted root (the default is 1), then nginx -s reload" },
	{ V_SERVER_REJECTED_CHAIN, R_DEPTH_EXCEEDED, SK_APACHE, 0, 4,
	  "Apache: set SSLVerifyDepth {apache_depth} (the chain has {n} certificates, the root included), then apachectl graceful" },
	{ V_SERVER_REJECTED_CHAIN, R_DEPTH_EXCEEDED, ANY_KIND, 0, 4,
	  "server: raise its verify depth: the chain has {n} certificates (nginx: ssl_verify_depth {depth}; Apache: SSLVerifyDepth {apache_depth})" },
	{ V_SERVER_REJECTED_CHAIN, R_DEPTH_EXCEEDED, ANY_KIND, 0, 4,
	  "server: raise its verify depth to the length of the client's chain (nginx: ssl_verify_depth, default 1; Apache: SSLVerifyDepth)" },

	{ V_SERVER_REJECTED_CHAIN, R_BAD_EKU, ANY_KIND, 0, 5,
	  "client: reissue {leaf} with extendedKeyUsage clientAuth: an OpenSSL-based server refuses a client certificate without it" },
	{ V_SERVER_REJECTED_CHAIN, R_BAD_EKU, ANY_KIND, 0, 5,
	  "client: reissue the certificate with extendedKeyUsage clientAuth: an OpenSSL-based server refuses a client certificate without it" },
	{ V_SERVER_REJECTED_CHAIN, R_BAD_KEY_USAGE, ANY_KIND, 0, 6,
	  "client: reissue {leaf} with keyUsage digitalSignature: a TLS client signs the handshake (CertificateVerify) with its key" },
	{ V_SERVER_REJECTED_CHAIN, R_BAD_KEY_USAGE, ANY_KIND, 0, 6,
	  "client: reissue the certificate with keyUsage digitalSignature: a TLS client signs the handshake (CertificateVerify) with its key" },
	{ V_SERVER_REJECTED_CHAIN, R_REVOKED, ANY_KIND, 0, 7,
	  "client: {leaf} is revoked by its CA: issue the client a new certificate and key, and install them where it reads them" },
	{ V_SERVER_REJECTED_CHAIN, R_REVOKED, ANY_KIND, 0, 7,
	  "client: the certificate is revoked by its CA: issue the client a new certificate and key, and install them where it reads them" },
	{ V_SERVER_REJECTED_CHAIN, R_EXPIRED, ANY_KIND, W_NOT_IN_BUNDLE, 8,
	  "client: renew {expired}, which has expired, and install the new certificate where the client reads it (curl --cert, the browser's store)" },
	{ V_SERVER_REJECTED_CHAIN, R_EXPIRED, ANY_KIND, W_NOT_IN_BUNDLE, 8,
	  "client: renew the expired certificate and install the new one where the client reads it (curl --cert, the browser's store)" },
	{ V_SERVER_REJECTED_CHAIN, R_NOT_YET_VALID, ANY_KIND, W_NOT_IN_BUNDLE, 0,
	  "client: a certificate of the chain is not valid yet: check the client's and the server's clocks, or use the previous certificate until then" },
	{ V_SERVER_REJECTED_CHAIN, R_SELF_SIGNED, ANY_KIND, 0, 9,
	  "client: use a certificate issued by one of the CAs the server named ({cas}) instead of a self-signed one" },
	{ V_SERVER_REJECTED_CHAIN, R_SELF_SIGNED, ANY_KIND, 0, 9,
	  "client: use a certificate issued by a CA the server trusts instead of a self-signed one" },
	{ V_SERVER_REJECTED_CHAIN, R_SELF_SIGNED, SK_NGINX, 0, 0,
	  "nginx: or, to trust this very certificate, add it to the file of ssl_client_certificate, then nginx -s reload" },
	{ V_SERVER_REJECTED_CHAIN, R_BAD_SIGNATURE, ANY_KIND, 0, 0,
	  "client: the chain's signatures do not verify: install the certificate and its intermediates exactly as the CA issued them" },
	{ V_SERVER_REJECTED_CHAIN, ANY_REASON, SK_NGINX, W_CRL_MISSING, 13,
	  "nginx: the file of ssl_crl must hold a current CRL from every CA of the chain, the root's included (nginx checks each certificate): add the missing CRL, then nginx -s reload" },
	{ V_SERVER_REJECTED_CHAIN, ANY_REASON, ANY_KIND, W_CRL_MISSING, 13,
	  "server: its CRL file must hold a current CRL from every CA of the chain: add the missing CRL" },
	{ V_SERVER_REJECTED_CHAIN, R_UNKNOWN, ANY_KIND, W_NO_BUNDLE | W_NOT_CRL_MISSING, 0,
	  "run mtlsdiag again with --ca-bundle set to the server's client CA file (nginx: ssl_client_certificate) and --verify-depth to its verify depth, to see the error the server logs (nginx logs it at error_log level info)" },

	{ V_SERVER_REJECTED_CHAIN, ANY_REASON, SK_NGINX, W_FALLBACK, 14,
	  "nginx: compare its ssl_client_certificate, ssl_verify_depth and ssl_crl with what this verification was given; nginx names the error in its error_log at level info" },
	{ V_SERVER_REJECTED_CHAIN, ANY_REASON, ANY_KIND, W_FALLBACK, 14,
	  "server: compare its client CA bundle, verify depth and CRLs with what this verification was given; its log names the error" },

	/* ---- no certificate ---- */
	{ V_CLIENT_SENT_NO_CERT, ANY_REASON, ANY_KIND, W_MIDDLEBOX, 0,
	  "gateway: exempt {host} from TLS inspection, so that the client's own TLS, and its certificate, reach the server" },
	{ V_CLIENT_SENT_NO_CERT, ANY_REASON, ANY_KIND, W_NOT_MIDDLEBOX, 0,
	  "client: send the certificate: curl --cert client.pem --key client.key (client.pem: the leaf, then its intermediates)" },
	{ V_CLIENT_SENT_NO_CERT, ANY_REASON, ANY_KIND, W_NOT_MIDDLEBOX, 0,
	  "browser: import the certificate and key as a PKCS#12 bundle (openssl pkcs12 -export -in client.pem -inkey client.key -certfile intermediates.pem -out client.p12), then restart the browser" },
	{ V_CLIENT_SENT_NO_CERT, ANY_REASON, ANY_KIND, W_NOT_MIDDLEBOX, 0,
	  "the certificate must come from one of the CAs the server named: {cas}; a browser offers only such certificates" },

	/* ---- optional client authentication: a security note ---- */
	{ V_NO_CERT_ACCEPTED, ANY_REASON, SK_NGINX, 0, 10,
	  "nginx: ssl_verify_client optional let this connection in without a certificate, a security hole unless the application checks $ssl_client_verify: set ssl_verify_client on" },
	{ V_NO_CERT_ACCEPTED, ANY_REASON, SK_APACHE, 0, 10,
	  "Apache: SSLVerifyClient optional let this connection in without a certificate, a security hole unless the application checks SSL_CLIENT_VERIFY: set SSLVerifyClient require" },
	{ V_NO_CERT_ACCEPTED, ANY_REASON, SK_HAPROXY, 0, 10,
	  "HAProxy: verify optional let this connection in without a certificate, a security hole unless a rule checks ssl_c_used: set verify required on the bind line" },
	{ V_NO_CERT_ACCEPTED, ANY_REASON, SK_ENVOY, 0, 10,
	  "Envoy: require_client_certificate is off and this connection had no certificate: set it to true" },
	{ V_NO_CERT_ACCEPTED, ANY_REASON, ANY_KIND, 0, 10,
	  "server: client authentication is optional and this connection had no certificate, a security hole unless the application checks the verification itself: require the certificate (nginx: ssl_verify_client on; Apache: SSLVerifyClient require; HAProxy: verify required)" },

	/* ---- others ---- */
	{ V_CERT_NOT_REQUESTED, R_NOT_REQUESTED_UPSTREAM, ANY_KIND, 0, 0,
	  "gateway: exempt {host} from TLS inspection, so that the server's request for a certificate reaches the client" },
	{ V_CLIENT_REJECTED_SERVER_CERT, ANY_REASON, ANY_KIND, W_MIDDLEBOX, 0,
	  "gateway: exempt {host} from TLS inspection, or make the client trust the gateway's CA" },
	{ V_CLIENT_REJECTED_SERVER_CERT, ANY_REASON, ANY_KIND, W_NOT_MIDDLEBOX, 11,
	  "client: trust the CA that issued the server's certificate ({server_issuer}): curl --cacert FILE; or give the server a certificate from a CA the client trusts" },
	{ V_CLIENT_REJECTED_SERVER_CERT, ANY_REASON, ANY_KIND, W_NOT_MIDDLEBOX, 11,
	  "client: trust the CA that issued the server's certificate (curl --cacert FILE), or give the server a certificate from a CA the client trusts" },
	{ V_HANDSHAKE_FAILED, ANY_REASON, ANY_KIND, 0, 0,
	  "compare what each side offers (TLS versions, cipher suites, groups, signature algorithms): mtlsdiag probe {host} shows the server's side" },
	{ V_UNDETERMINED, ANY_REASON, ANY_KIND, 0, 0,
	  "capture again with the client's key log (SSLKEYLOGFILE=FILE for curl, browsers, Python), then mtlsdiag pcap --keylog FILE reads the server's answer" },
};

/* ---- the placeholders ---- */

struct fill {
	const struct conn_facts *f;
	const struct verdict *v;
	const struct chain_verify *cv;
};

static bool cas_text(const struct conn_facts *f, char *out, size_t len)
{
	size_t i, used;

	if (f->cr.n_ca_names == 0)
		return false;
	used = (size_t)snprintf(out, len, "[");
	for (i = 0; i < f->cr.n_ca_names && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%s", i ? "; " : "", f->cr.ca_names[i]);
	if (used < len)
		snprintf(out + used, len - used, "]");
	return true;
}

/* The value of placeholder `name`; false when there is none. */
static bool value_of(const struct fill *x, const char *name, size_t nlen, char *out, size_t len)
{
	const struct conn_facts *f = x->f;
	const struct chain_verify *cv = x->cv;
	size_t i;

#define IS(s) (nlen == sizeof(s) - 1 && memcmp(name, s, nlen) == 0)
	if (IS("leaf")) {
		if (f->client_chain.n == 0 || f->client_chain.certs[0].parse_failed)
			return false;
		snprintf(out, len, "%s", f->client_chain.certs[0].subject);
		return true;
	}
	if (IS("stop")) {
		if (cv == NULL)
			return false;
		chain_verify_stop(cv, &f->client_chain, out, len);
		return out[0] != '\0';
	}
	if (IS("cas"))
		return cas_text(f, out, len);
	if (IS("depth") || IS("apache_depth") || IS("n")) {
		if (cv == NULL || cv->needed_depth < 0)
			return false;
		snprintf(out, len, "%d",
			 IS("depth") ? cv->needed_depth : IS("apache_depth") ? cv->needed_depth + 1 : cv->needed_depth + 2);
		return true;
	}
	if (IS("expired")) {
		for (i = 0; i < f->client_chain.n; i++) {
			const struct cert_info *c = &f->client_chain.certs[i];

			if (!c->parse_failed && c->not_after_t <= f->first_ts.tv_sec) {
				snprintf(out, len, "%s", c->subject);
				return true;
			}
		}
		return false;
	}
	if (IS("server_issuer")) {
		if (f->server_chain.n == 0 || f->server_chain.certs[0].parse_failed)
			return false;
		snprintf(out, len, "%s", f->server_chain.certs[0].issuer);
		return true;
	}
	if (IS("host")) {
		if (f->ch.sni[0])
			snprintf(out, len, "%s:%u", f->ch.sni, f->server.port);
		else if (strchr(f->server.ip, ':'))
			snprintf(out, len, "[%s]:%u", f->server.ip, f->server.port);
		else
			snprintf(out, len, "%s:%u", f->server.ip, f->server.port);
		return true;
	}
#undef IS
	return false;
}

/* The row's text with its placeholders filled; false when one has no value. */
static bool render(const struct fill *x, const char *text, char *out, size_t len)
{
	char value[REMEDY_LEN];
	size_t o = 0, vlen;
	const char *p = text, *end;

	while (*p && o + 1 < len) {
		if (*p != '{' || !(end = strchr(p, '}'))) {
			/* the text up to the next placeholder, at once */
			const char *brace = strchrnul(p + 1, '{');
			size_t run = (size_t)(brace - p);

			if (run > len - 1 - o)
				run = len - 1 - o;
			memcpy(out + o, p, run);
			o += run;
			p += run;
			continue;
		}
		if (!value_of(x, p + 1, (size_t)(end - p - 1), value, sizeof(value)))
			return false;
		vlen = strlen(value);
		if (o + vlen >= len)
			vlen = len - o - 1;
		memcpy(out + o, value, vlen);
		o += vlen;
		p = end + 1;
	}
	out[o] = '\0';
	return true;
}

static bool applies(const struct row *r, const struct fill *x)
{
	const struct verdict *v = x->v;
	const struct chain_verify *cv = x->cv;
	bool bundle, crl_missing;

	if (r->verdict != v->code)
		return false;
	if (r->reason != ANY_REASON && r->reason != v->reason)
		return false;
	if (r->kind != ANY_KIND && r->kind != v->server_kind)
		return false;
	bundle = cv != NULL && cv->trust == CHAIN_TRUST_BUNDLE;
	crl_missing = cv != NULL && !cv->ok &&
		      (cv->first_error == X509_V_ERR_UNABLE_TO_GET_CRL || cv->error == X509_V_ERR_UNABLE_TO_GET_CRL);
	if ((r->when & W_IN_BUNDLE) && !(bundle && cv->cause_in_bundle))
		return false;
	if ((r->when & W_NOT_IN_BUNDLE) && bundle && cv->cause_in_bundle)
		return false;
	if ((r->when & W_BUNDLE_LEAF) && !(bundle && (cv->bundle_problems & BUNDLE_LEAF)))
		return false;
	if ((r->when & W_CRL_MISSING) && !crl_missing)
		return false;
	if ((r->when & W_NOT_CRL_MISSING) && crl_missing)
		return false;
	if ((r->when & W_NO_BUNDLE) && bundle)
		return false;
	if ((r->when & W_MIDDLEBOX) && v->fault != F_MIDDLEBOX)
		return false;
	if ((r->when & W_NOT_MIDDLEBOX) && v->fault == F_MIDDLEBOX)
		return false;
	return true;
}

/* The rows of one pass (the fallbacks, or the others) into lines[n..]. */
static size_t pass(const struct fill *x, bool fallback, char (*lines)[REMEDY_LEN], size_t n, size_t max)
{
	unsigned done_groups[32];
	size_t n_done = 0, i, k;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]) && n < max; i++) {
		const struct row *r = &rows[i];
		bool done = false;

		/* most rows are another verdict's: passed over first */
		if (r->verdict != x->v->code || ((r->when & W_FALLBACK) != 0) != fallback)
			continue;
		for (k = 0; r->group && k < n_done; k++)
			done |= done_groups[k] == r->group;
		if (done || !applies(r, x) || !render(x, r->text, lines[n], REMEDY_LEN))
			continue;
		n++;
		if (r->group && n_done < sizeof(done_groups) / sizeof(done_groups[0]))
			done_groups[n_done++] = r->group;
	}
	return n;
}

size_t remedy_lines(const struct conn_facts *f, const struct verdict *v, char (*lines)[REMEDY_LEN], size_t max)
{
	struct fill x = { f, v, v->check };
	size_t n = pass(&x, false, lines, 0, max);

	return n ? n : pass(&x, true, lines, 0, max);
}
