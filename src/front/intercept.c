/* intercept: the stand-in's TLS contexts (intercept.h), built once at start
 * and shared by the workers.
 *
 * Towards clients it is the server: the server's certificate (or one the
 * forge CA issues for the name asked), the client CAs named in the
 * CertificateRequest, verification against --ca-bundle at the configured
 * depth, no resumption unless --resumption (no tickets, no session cache:
 * every connection shows its certificate).  Its verify callback notes the first error, the
 * one `openssl verify` reports, and lets the handshake complete when the
 * refusal is to be an HTTP page; with --refuse alert it lets OpenSSL fail
 * the handshake with the alert it chooses.
 *
 * Towards the real server it is a client: the diagnostic identity if one
 * was given, the server's chain verified against --upstream-ca or the
 * system's store and its name checked, sessions resumed (the real
 * server's certificate request was answered on the first connection).
 *
 * Both hand their secrets to the leg's in-memory key log as OpenSSL
 * derives them, like the probe, so each leg's observer decrypts. */
#include "config.h"

#include "front/intercept_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "analysis/codes.h"
#include "wire/keylog.h"
#include "wire/x509info.h"

static int ex_leg = -1;

struct icpt_leg *icpt_leg_of(const SSL *ssl)
{
	return ex_leg >= 0 ? SSL_get_ex_data(ssl, ex_leg) : NULL;
}

/* The alerts each way, as OpenSSL sends and reads them (also the
 * encrypted ones of TLS 1.3). */
static void info_cb(const SSL *ssl, int where, int ret)
{
	struct icpt_leg *leg;

	if (!(leg = icpt_leg_of(ssl)))
		return;
	/* after the handshake, the client's Finished: the end of its answer
	 * to a certificate request sent then (RFC 8446 4.6.2; OpenSSL says
	 * no HANDSHAKE_DONE for it) */
	if ((where & SSL_CB_LOOP) && leg->id == ICPT_CLIENT_LEG && leg->tls_done &&
	    SSL_get_state(ssl) == TLS_ST_SR_FINISHED)
		icpt_pha_answered(leg);
	if (!(where & SSL_CB_ALERT) || (ret & 0xff) == SSL3_AD_CLOSE_NOTIFY)
		return;
	if ((where & SSL_CB_WRITE) && leg->alert_sent < 0)
		leg->alert_sent = ret & 0xff;
	else if ((where & SSL_CB_READ) && leg->alert_received < 0)
		leg->alert_received = ret & 0xff;
}

SSL *icpt_ssl_new(struct intercept *ic, struct icpt_leg *leg)
{
	SSL *ssl = SSL_new(leg->id == ICPT_CLIENT_LEG ? ic->server_ctx : ic->client_ctx);

	if (ssl && SSL_set_ex_data(ssl, ex_leg, leg) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	if (ssl)
		SSL_set_info_callback(ssl, info_cb);
	return ssl;
}

void icpt_ssl_adopt(SSL *ssl, struct icpt_leg *leg)
{
	SSL_set_ex_data(ssl, ex_leg, leg);
	SSL_set_info_callback(ssl, info_cb);
}

const char *icpt_alert_name(int description)
{
	static __thread char unnamed[16];
	const char *name = tls_alert_name(description);

	if (name)
		return name;
	snprintf(unnamed, sizeof(unnamed), "alert %d", description);
	return unnamed;
}

void icpt_ssl_forget(SSL *ssl)
{
	BIO *rbio = SSL_get_rbio(ssl), *wbio = SSL_get_wbio(ssl);

	SSL_set_ex_data(ssl, ex_leg, NULL);
	SSL_set_info_callback(ssl, NULL);
	if (rbio) {
		BIO_set_callback_ex(rbio, NULL);
		BIO_set_callback_arg(rbio, NULL);
	}
	if (wbio && wbio != rbio) {
		BIO_set_callback_ex(wbio, NULL);
		BIO_set_callback_arg(wbio, NULL);
	}
}

void icpt_verify_text(const struct icpt_verify_seen *v, char *out, size_t len)
{
	if (v->subject[0])
		snprintf(out, len, "verify error %d: %s at depth %d (%s)", v->err, X509_verify_cert_error_string(v->err),
			 v->depth, v->subject);
	else
		snprintf(out, len, "verify error %d: %s at depth %d", v->err, X509_verify_cert_error_string(v->err),
			 v->depth);
}

/* OpenSSL's key-log lines into the leg's key log, each as the secret is
 * derived; the observer opens what it held for want of it. */
static void keylog_line(const SSL *ssl, const char *line)
{
	struct icpt_leg *leg = icpt_leg_of(ssl);

	if (leg && leg->keys && keylog_add_text(leg->keys, "intercept", (const uint8_t *)line, strlen(line)) > 0 &&
	    leg->obs)
		obs_conn_retry_keys(leg->obs);
}

/* Called for each certificate of the peer's chain, leaf last.  The first
 * failure is kept; whether the handshake goes on is the leg's policy. */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct icpt_leg *leg = ssl ? icpt_leg_of(ssl) : NULL;
	const struct intercept_config *cfg;

	if (!leg)
		return ok;
	leg->verify.ran = true;
	if (!ok && leg->verify.err == X509_V_OK) {
		X509 *cur = X509_STORE_CTX_get_current_cert(x);

		leg->verify.err = X509_STORE_CTX_get_error(x);
		leg->verify.depth = X509_STORE_CTX_get_error_depth(x);
		if (cur)
			x509info_name(X509_get_subject_name(cur), leg->verify.subject, sizeof(leg->verify.subject));
	}
	if (leg->id == ICPT_UPSTREAM_LEG)
		return ok;
	cfg = leg->c->wl->l->icpt->cfg;
	/* diagnose before deciding: the handshake completes, the request is
	 * refused in HTTP (or, optional, forwarded) */
	return cfg->verify == ICPT_VERIFY_OPTIONAL || cfg->refuse == ICPT_REFUSE_HTTP ? 1 : ok;
}

/* HTTP/1.1 when the client offers it: the plaintext is relayed as it is,
 * so both legs must speak the same protocol, and HTTP/1.1 is the one the
 * proxy itself can answer (a refusal, a 502) and add headers to. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
		       unsigned int inlen, void *arg)
{
	static const unsigned char h11[] = "\x08http/1.1";

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto((unsigned char **)out, outlen, h11, sizeof(h11) - 1, in, inlen) ==
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_OK;
	return SSL_TLSEXT_ERR_NOACK;
}

/* The client's hello is read: with --forge-ca, the certificate for the
 * name it asked for (or for the upstream's name when it sent none); and
 * the connection to the real server begins. */
static int servername(SSL *ssl, int *alert, void *arg)
{
	struct intercept *ic = arg;
	struct icpt_leg *leg = icpt_leg_of(ssl);
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	if (!leg)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	if (!ic->forge) {
		icpt_client_hello(leg);
		return SSL_TLSEXT_ERR_OK;
	}
	if (!name || !*name)
		name = leg->c->wl->l->up_host;
	snprintf(leg->c->shown_for, sizeof(leg->c->shown_for), "%s", name);
	if (!icpt_forge_use(ic->forge, ssl, name)) {
		*alert = SSL_AD_UNRECOGNIZED_NAME;
		snprintf(leg->error, sizeof(leg->error), "no certificate could be issued for the name '%.200s'", name);
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	leg->c->forged = true;
	icpt_client_hello(leg);
	return SSL_TLSEXT_ERR_OK;
}

/* TLS 1.3 tickets arrive after the handshake: the newest is kept per
 * listener and worker, and the next connection to the real server
 * resumes it. */
static int new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct icpt_leg *leg = icpt_leg_of(ssl);
	struct wlistener *wl;

	if (!leg || leg->id != ICPT_UPSTREAM_LEG)
		return 0;
	wl = leg->c->wl;
	SSL_SESSION_free(wl->up_session);
	wl->up_session = sess;
	return 1;   /* the reference is ours */
}

static int use_identity(SSL_CTX *ctx, X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain)
{
	int i;

	if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1)
		return 0;
	for (i = 0; chain && i < sk_X509_num(chain); i++)
		if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i)) != 1)
			return 0;
	return 1;
}

/* A context that could not be set up: freed, and why in err (OpenSSL's
 * reason, or out of memory when it gave none). */
static SSL_CTX *ctx_failed(SSL_CTX *ctx, const char *towards, char *err, size_t errlen)
{
	unsigned long e = ERR_peek_last_error();

	snprintf(err, errlen, "cannot set up TLS towards %s: %s", towards, e ? ERR_reason_error_string(e) : "out of memory");
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

static SSL_CTX *server_ctx(struct intercept *ic, char *err, size_t errlen)
{
	const struct intercept_config *cfg = ic->cfg;
	const struct icpt_server_profile *prof = &ic->profile;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	STACK_OF(X509_NAME) *names;
	int mode = SSL_VERIFY_PEER;

	if (!ctx)
		goto Fail;
	if (cfg->resumption) {
		/* as a server that allows it: a resumed session keeps the
		 * certificate and verify result of its first connection */
		if (SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"mtlsdiag intercept", 18) != 1)
			goto Fail;
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	} else {
		/* no resumption: every connection shows its certificate */
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, 0);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	}
	if (cfg->server_cert && !use_identity(ctx, cfg->server_cert, cfg->server_key, cfg->server_chain))
		goto Fail;
	SSL_CTX_set_tlsext_servername_callback(ctx, servername);
	SSL_CTX_set_tlsext_servername_arg(ctx, ic);
	/* what the real server names and asks for, when it was learnt */
	names = SSL_dup_CA_list(prof->learnt && prof->cert_requested && prof->ca_names ? prof->ca_names : cfg->ca_names);
	if (!names)
		goto Fail;
	SSL_CTX_set_client_CA_list(ctx, names);
	if (prof->learnt && prof->sigalgs[0] && SSL_CTX_set1_client_sigalgs_list(ctx, prof->sigalgs) != 1)
		ERR_clear_error();   /* a list OpenSSL cannot take: its own */
	if (prof->learnt) {
		SSL_CTX_set_min_proto_version(ctx, prof->min_version);
		SSL_CTX_set_max_proto_version(ctx, prof->max_version);
	}
	if (cfg->verify == ICPT_VERIFY_REQUIRE && cfg->refuse == ICPT_REFUSE_ALERT)
		mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	/* TLS 1.3 asks after the handshake, when told (intercept_conn.c);
	 * OpenSSL asks a TLS 1.2 client in the handshake all the same */
	if (cfg->post_handshake_auth)
		mode |= SSL_VERIFY_POST_HANDSHAKE;
	SSL_CTX_set_verify(ctx, mode, verify_cb);
	if (cfg->verify_depth >= 0)
		SSL_CTX_set_verify_depth(ctx, cfg->verify_depth);
	if (cfg->ca_store && SSL_CTX_set1_verify_cert_store(ctx, cfg->ca_store) != 1)
		goto Fail;
	SSL_CTX_set_keylog_callback(ctx, keylog_line);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	return ctx;
Fail:
	return ctx_failed(ctx, "the clients", err, errlen);
}

static SSL_CTX *client_ctx(struct intercept *ic, char *err, size_t errlen)
{
	const struct intercept_config *cfg = ic->cfg;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		goto Fail;
	if (cfg->upstream_cert && !use_identity(ctx, cfg->upstream_cert, cfg->upstream_key, cfg->upstream_chain))
		goto Fail;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
	if (cfg->upstream_ca) {
		if (SSL_CTX_set1_verify_cert_store(ctx, cfg->upstream_ca) != 1)
			goto Fail;
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		goto Fail;
	}
	if (cfg->upstream_tls) {
		SSL_CTX_set_min_proto_version(ctx, cfg->upstream_tls);
		SSL_CTX_set_max_proto_version(ctx, cfg->upstream_tls);
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, new_session);
	/* no read-ahead: libevent reads the socket only when it is readable,
	 * and bytes OpenSSL had read ahead would wait there unseen */
	SSL_CTX_set_keylog_callback(ctx, keylog_line);
	return ctx;
Fail:
	return ctx_failed(ctx, "the server", err, errlen);
}

struct intercept *intercept_new(const struct intercept_config *cfg, const char *host, uint16_t port, char *err,
				size_t errlen)
{
	struct intercept *ic = calloc(1, sizeof(*ic));

	if (!ic) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ic->cfg = cfg;
	ic->up_host = host;
	ic->up_port = port;
	if (ex_leg < 0)
		ex_leg = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (!(ic->client_ctx = client_ctx(ic, err, errlen)))
		goto Fail;
	if (cfg->faithful)
		icpt_learn(ic);
	/* The proxy's own connections are resumed; a TLS 1.2 resumption is an
	 * abbreviated handshake (no key exchange, no signature), half the
	 * work of a TLS 1.3 one for both ends: used when the server has 1.2. */
	if (!cfg->upstream_tls && ic->profile.learnt && ic->profile.min_version == TLS1_2_VERSION) {
		size_t used = strlen(ic->description);

		SSL_CTX_set_max_proto_version(ic->client_ctx, TLS1_2_VERSION);
		snprintf(ic->description + used, sizeof(ic->description) - used,
			 "; the proxy's own connections to it use TLS 1.2, resumed (--upstream-tls 1.3 for 1.3)");
	}
	else
		snprintf(ic->description, sizeof(ic->description),
			 "clients are asked for a certificate from the CAs of --ca-bundle (--no-faithful)");
	if (cfg->forge_ca && !(ic->forge = icpt_forge_new(cfg->forge_ca, cfg->forge_ca_key, err, errlen)))
		goto Fail;
	if (!(ic->server_ctx = server_ctx(ic, err, errlen)))
		goto Fail;
	return ic;
Fail:
	intercept_free(ic);
	return NULL;
}

void intercept_free(struct intercept *ic)
{
	if (!ic)
		return;
	SSL_CTX_free(ic->server_ctx);
	SSL_CTX_free(ic->client_ctx);
	icpt_forge_free(ic->forge);
	sk_X509_NAME_pop_free(ic->profile.ca_names, X509_NAME_free);
	free(ic);
}

const char *intercept_describe(const struct intercept *ic)
{
	return ic->description;
}

void intercept_config_clear(struct intercept_config *c)
{
	X509_free(c->server_cert);
	EVP_PKEY_free(c->server_key);
	sk_X509_pop_free(c->server_chain, X509_free);
	X509_free(c->forge_ca);
	EVP_PKEY_free(c->forge_ca_key);
	sk_X509_NAME_pop_free(c->ca_names, X509_NAME_free);
	X509_free(c->upstream_cert);
	EVP_PKEY_free(c->upstream_key);
	sk_X509_pop_free(c->upstream_chain, X509_free);
	X509_STORE_free(c->upstream_ca);
	/* ca_store is the proxy's --ca-bundle, freed with it */
	memset(c, 0, sizeof(*c));
}
