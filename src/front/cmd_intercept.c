/* cmd_intercept: the options of `mtlsdiag proxy --intercept` and what they
 * name, read once at start: the certificate and key clients are shown (or
 * the diagnostic CA that issues them), the client CAs, the identity shown
 * to the real server and the CAs its chain must come from.  Bad input is
 * one line and exit status 2: a key that is not the certificate's, an
 * encrypted key without --key-pass, a key file others can read (with the
 * chmod to run), a CA bundle without a CA in it. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "front/cmds.h"
#include "front/intercept.h"

#define WHO "mtlsdiag proxy"

int icpt_option(struct icpt_opts *o, int opt, const char *arg)
{
	switch (opt) {
	case O_ICPT_SERVER_CERT: o->server_cert = arg; return 1;
	case O_ICPT_SERVER_KEY: o->server_key = arg; return 1;
	case O_ICPT_FORGE_CA: o->forge_ca = arg; return 1;
	case O_ICPT_FORGE_CA_KEY: o->forge_ca_key = arg; return 1;
	case O_ICPT_UPSTREAM_CERT: o->upstream_cert = arg; return 1;
	case O_ICPT_UPSTREAM_KEY: o->upstream_key = arg; return 1;
	case O_ICPT_UPSTREAM_CA: o->upstream_ca = arg; return 1;
	case O_ICPT_KEY_PASS: o->key_pass = arg; return cmd_pass_valid(WHO, "--key-pass", arg);
	case O_ICPT_FORWARD_IDENTITY: o->forward_identity = true; return 1;
	case O_ICPT_NO_FAITHFUL: o->no_faithful = true; return 1;
	case O_ICPT_POST_HANDSHAKE_AUTH: o->post_handshake_auth = true; return 1;
	case O_ICPT_RESUMPTION: o->resumption = true; return 1;
	case O_ICPT_UPSTREAM_KEEPALIVE:
		o->keepalive_given = arg;
		return cmd_parse_uint(WHO, "--upstream-keepalive", arg, 0, 4096, &o->keepalive);
	case O_ICPT_UPSTREAM_KEEPALIVE_TIMEOUT:
		o->keepalive_timeout_given = arg;
		return cmd_parse_uint(WHO, "--upstream-keepalive-timeout", arg, 1, 3600, &o->keepalive_timeout_s);
	case O_ICPT_UPSTREAM_TLS:
		o->upstream_tls = arg;
		return cmd_choice(WHO, "--upstream-tls", arg, (const char *const[]){ "1.2", "1.3", "auto", NULL }, NULL) >= 0;
	case O_ICPT_VERIFY:
		o->verify = arg;
		return cmd_choice(WHO, "--verify", arg, (const char *const[]){ "require", "optional", NULL }, NULL) >= 0;
	case O_ICPT_REFUSE:
		o->refuse = arg;
		return cmd_choice(WHO, "--refuse", arg, (const char *const[]){ "http", "alert", NULL },
				  "http: an HTTP 400 page, as nginx; alert: as OpenSSL") >= 0;
	default:
		return -1;
	}
}

/* The options that go together, before any file is read.  0 after one line. */
int icpt_check(const struct icpt_opts *o, bool intercepting, const char *ca_bundle)
{
	const char *stray = o->server_cert ? "--server-cert" : o->server_key ? "--server-key"
			    : o->forge_ca ? "--forge-ca" : o->forge_ca_key ? "--forge-ca-key"
			    : o->upstream_cert ? "--upstream-cert" : o->upstream_key ? "--upstream-key"
			    : o->upstream_ca ? "--upstream-ca" : o->key_pass ? "--key-pass"
			    : o->upstream_tls ? "--upstream-tls"
			    : o->verify ? "--verify" : o->refuse ? "--refuse"
			    : o->forward_identity ? "--forward-identity"
			    : o->no_faithful ? "--no-faithful"
			    : o->post_handshake_auth ? "--post-handshake-auth"
			    : o->resumption ? "--resumption"
			    : o->keepalive_given ? "--upstream-keepalive"
			    : o->keepalive_timeout_given ? "--upstream-keepalive-timeout" : NULL;

	if (!intercepting) {
		if (stray)
			fprintf(stderr, WHO ": %s goes with --intercept\n", stray);
		return !stray;
	}
	if (!!o->server_cert + !!o->forge_ca != 1) {
		fprintf(stderr, WHO ": --intercept needs the certificate clients are shown: --server-cert FILE --server-key FILE (the real server's), or --forge-ca FILE --forge-ca-key FILE (issued per name)\n");
		return 0;
	}
	if (!!o->server_cert != !!o->server_key || !!o->forge_ca != !!o->forge_ca_key) {
		fprintf(stderr, WHO ": %s\n", o->server_cert ? "--server-cert needs --server-key FILE"
					     : o->server_key ? "--server-key needs --server-cert FILE"
					     : o->forge_ca ? "--forge-ca needs --forge-ca-key FILE"
					     : "--forge-ca-key needs --forge-ca FILE");
		return 0;
	}
	if (!!o->upstream_cert != !!o->upstream_key) {
		fprintf(stderr, WHO ": %s\n", o->upstream_cert ? "--upstream-cert needs --upstream-key FILE"
							: "--upstream-key needs --upstream-cert FILE");
		return 0;
	}
	if (!ca_bundle) {
		fprintf(stderr, WHO ": --intercept needs --ca-bundle FILE: the client CAs the server trusts (nginx's ssl_client_certificate), named to clients and used to verify them\n");
		return 0;
	}
	return 1;
}

/* The certificates of a PEM bundle: the CAs among them become the
 * CertificateRequest's names.  A bundle without a CA would make every
 * client fail for a reason of the proxy's own: refused.  0 after one line. */
static int load_ca_names(const char *path, struct intercept_config *c)
{
	FILE *f = fopen(path, "r");
	X509 *x;
	int certs = 0;

	if (!f) {
		fprintf(stderr, WHO ": --ca-bundle %s: %s\n", path, strerror(errno));
		return 0;
	}
	if (!(c->ca_names = sk_X509_NAME_new_null())) {
		fclose(f);
		fprintf(stderr, WHO ": out of memory\n");
		return 0;
	}
	while ((x = PEM_read_X509(f, NULL, NULL, NULL))) {
		X509_NAME *name;

		certs++;
		if (X509_check_ca(x) > 0 && (name = X509_NAME_dup(X509_get_subject_name(x))) &&
		    !sk_X509_NAME_push(c->ca_names, name))
			X509_NAME_free(name);
		X509_free(x);
	}
	ERR_clear_error();
	fclose(f);
	if (sk_X509_NAME_num(c->ca_names) == 0) {
		fprintf(stderr, WHO ": --ca-bundle %s: no CA certificate in it (%d certificate%s, none a CA): clients could never be verified\n",
			path, certs, certs == 1 ? "" : "s");
		return 0;
	}
	return 1;
}

/* --forge-ca: the CA certificate must be a CA, its key the certificate's. */
static int load_forge_ca(const struct icpt_opts *o, struct cmd_pass *pass, struct intercept_config *c)
{
	struct cmd_key_source key = { .opt = "--forge-ca-key", .path = o->forge_ca_key, .private_file = true };
	struct cmd_creds creds = { 0 };
	int ok = cmd_load_pem_creds("--forge-ca", o->forge_ca, &key, pass, &creds);

	if (ok && X509_check_ca(creds.cert) <= 0) {
		fprintf(stderr, WHO ": --forge-ca %s is not a CA certificate (no basicConstraints CA:TRUE): it cannot issue\n",
			o->forge_ca);
		ok = 0;
	}
	if (ok) {
		c->forge_ca = creds.cert;
		c->forge_ca_key = creds.key;
		creds.cert = NULL;
		creds.key = NULL;
	}
	cmd_creds_free(&creds);
	return ok;
}

static int load_pair(const char *cert_opt, const char *cert_path, const char *key_opt, const char *key_path,
		     struct cmd_pass *pass, X509 **cert, EVP_PKEY **pkey, STACK_OF(X509) **chain)
{
	struct cmd_key_source key = { .opt = key_opt, .path = key_path, .private_file = true };
	struct cmd_creds creds = { 0 };
	int ok = cmd_load_pem_creds(cert_opt, cert_path, &key, pass, &creds);

	if (ok) {
		*cert = creds.cert;
		*pkey = creds.key;
		*chain = creds.chain;
		memset(&creds, 0, sizeof(creds));
	}
	cmd_creds_free(&creds);
	return ok;
}

int icpt_load(const struct icpt_opts *o, const char *ca_bundle, int verify_depth, struct intercept_config *c)
{
	struct cmd_pass pass = { .who = WHO, .opt = "--key-pass", .spec = o->key_pass, .no_prompt = true };
	int ok = 0;

	memset(c, 0, sizeof(*c));
	c->verify = o->verify && strcmp(o->verify, "optional") == 0 ? ICPT_VERIFY_OPTIONAL : ICPT_VERIFY_REQUIRE;
	c->refuse = o->refuse && strcmp(o->refuse, "alert") == 0 ? ICPT_REFUSE_ALERT : ICPT_REFUSE_HTTP;
	c->verify_depth = verify_depth;
	c->forward_identity = o->forward_identity;
	c->faithful = !o->no_faithful;
	c->post_handshake_auth = o->post_handshake_auth;
	c->resumption = o->resumption;
	c->upstream_keepalive = o->keepalive_given ? o->keepalive : ICPT_KEEPALIVE_DEFAULT;
	c->upstream_keepalive_timeout_s = o->keepalive_timeout_given ? o->keepalive_timeout_s
								     : ICPT_KEEPALIVE_TIMEOUT_DEFAULT_S;
	c->upstream_tls = !o->upstream_tls || strcmp(o->upstream_tls, "auto") == 0 ? 0
			  : strcmp(o->upstream_tls, "1.2") == 0 ? TLS1_2_VERSION : TLS1_3_VERSION;
	if (o->server_cert &&
	    !load_pair("--server-cert", o->server_cert, "--server-key", o->server_key, &pass, &c->server_cert,
		       &c->server_key, &c->server_chain))
		goto Exit;
	if (o->forge_ca && !load_forge_ca(o, &pass, c))
		goto Exit;
	if (o->upstream_cert &&
	    !load_pair("--upstream-cert", o->upstream_cert, "--upstream-key", o->upstream_key, &pass,
		       &c->upstream_cert, &c->upstream_key, &c->upstream_chain))
		goto Exit;
	if (!load_ca_names(ca_bundle, c))
		goto Exit;
	if (o->upstream_ca && !(c->upstream_ca = cmd_load_bundle(o->upstream_ca)))
		goto Exit;
	ok = 1;
Exit:
	cmd_pass_clear(&pass);
	ERR_clear_error();
	return ok;
}
