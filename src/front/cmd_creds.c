/* cmd_creds: credentials named on a command line: a certificate with its
 * chain and private key from PEM files, and the password of an encrypted
 * key from env:VAR, file:PATH or pass:TEXT (or asked on the terminal,
 * where a command allows it).  The probe's --cert/--key/--pass and the
 * proxy's intercept keys (--server-key, --forge-ca-key, --upstream-key
 * with --key-pass) are read here, once, at start. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ui.h>
#include <openssl/x509.h>

#include "front/cmds.h"

/* The password from the spec, or asked on the terminal.  1 with it in
 * p->text; 0 after printing why (each reason said once). */
static int pass_from_spec(struct cmd_pass *p)
{
	if (strncmp(p->spec, "env:", 4) == 0) {
		const char *v = getenv(p->spec + 4);

		if (!v) {
			fprintf(stderr, "%s: %s %s: the variable is not set\n", p->who, p->opt, p->spec);
			return 0;
		}
		snprintf(p->text, sizeof(p->text), "%s", v);
	} else if (strncmp(p->spec, "file:", 5) == 0) {
		FILE *f = fopen(p->spec + 5, "r");

		if (!f) {
			fprintf(stderr, "%s: %s %s: %s\n", p->who, p->opt, p->spec, strerror(errno));
			return 0;
		}
		if (!fgets(p->text, sizeof(p->text), f))
			p->text[0] = '\0';
		fclose(f);
		p->text[strcspn(p->text, "\r\n")] = '\0';
	} else if (strncmp(p->spec, "pass:", 5) == 0) {
		snprintf(p->text, sizeof(p->text), "%s", p->spec + 5);
	} else {
		fprintf(stderr, "%s: %s: '%s' is not env:VAR, file:PATH or pass:TEXT\n", p->who, p->opt, p->spec);
		return 0;
	}
	return 1;
}

int cmd_pass_valid(const char *who, const char *opt, const char *spec)
{
	if (strncmp(spec, "env:", 4) == 0 || strncmp(spec, "file:", 5) == 0 || strncmp(spec, "pass:", 5) == 0)
		return 1;
	fprintf(stderr, "%s: %s: '%s' is not env:VAR, file:PATH or pass:TEXT\n", who, opt, spec);
	return 0;
}

int cmd_pass_get(struct cmd_pass *p, const char *what)
{
	char prompt[300];

	p->asked = true;
	if (p->have)
		return 1;
	if (p->failed)
		return 0;
	p->failed = true;   /* until a password is had */
	if (p->spec) {
		if (!pass_from_spec(p))
			return 0;
	} else if (p->no_prompt) {
		fprintf(stderr, "%s: %s is encrypted and no passphrase was given: give %s env:VAR, file:PATH or pass:TEXT\n",
			p->who, what, p->opt);
		return 0;
	} else if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "%s: %s needs a password and there is no terminal to ask on: give %s env:VAR, file:PATH or pass:TEXT\n",
			p->who, what, p->opt);
		return 0;
	} else {
		snprintf(prompt, sizeof(prompt), "Password for %s: ", what);
		if (EVP_read_pw_string(p->text, sizeof(p->text), prompt, 0) != 0) {
			fprintf(stderr, "%s: %s: no password read\n", p->who, what);
			return 0;
		}
		p->prompted = true;
	}
	p->have = true;
	p->failed = false;
	return 1;
}

void cmd_pass_clear(struct cmd_pass *p)
{
	OPENSSL_cleanse(p->text, sizeof(p->text));
	p->have = false;
}

static int pem_pass_cb(char *buf, int size, int rwflag, void *u)
{
	struct cmd_pass *p = u;
	int n;

	(void)rwflag;
	if (!cmd_pass_get(p, p->label))
		return -1;
	n = (int)strlen(p->text);
	if (n >= size)
		n = size - 1;
	memcpy(buf, p->text, (size_t)n);
	return n;
}

void cmd_creds_free(struct cmd_creds *c)
{
	X509_free(c->cert);
	EVP_PKEY_free(c->key);
	sk_X509_pop_free(c->chain, X509_free);
	memset(c, 0, sizeof(*c));
}

const char *cmd_ossl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r ? r : "not recognised";
}

/* A private key file that others can read is refused: the key would be
 * as good as published.  Checked on the open file, not the name. */
static int key_file_private(const char *who, const char *opt, const char *path, FILE *f)
{
	struct stat st;

	if (fstat(fileno(f), &st) != 0) {
		fprintf(stderr, "%s: %s %s: %s\n", who, opt, path, strerror(errno));
		return 0;
	}
	if (st.st_mode & (S_IRGRP | S_IROTH)) {
		fprintf(stderr, "%s: %s %s is readable by others (mode %04o): run chmod 600 '%s' first\n", who, opt,
			path, (unsigned)(st.st_mode & 07777), path);
		return 0;
	}
	return 1;
}

int cmd_load_key(const struct cmd_key_source *src, struct cmd_pass *pass, struct evp_pkey_st **out)
{
	FILE *f = fopen(src->path, "r");

	*out = NULL;
	if (!f) {
		fprintf(stderr, "%s: %s %s: %s\n", pass->who, src->opt, src->path, strerror(errno));
		return 0;
	}
	if (src->private_file && !key_file_private(pass->who, src->opt, src->path, f)) {
		fclose(f);
		return 0;
	}
	snprintf(pass->label, sizeof(pass->label), "%s %s", src->opt, src->path);
	pass->asked = false;
	*out = PEM_read_PrivateKey(f, NULL, pem_pass_cb, pass);
	fclose(f);
	if (!*out) {
		if (pass->failed)
			;   /* cmd_pass_get has said why */
		else if (pass->asked && pass->have)
			fprintf(stderr, "%s: %s %s: wrong password (the key does not decrypt)\n", pass->who, src->opt,
				src->path);
		else
			fprintf(stderr, "%s: %s %s: not a PEM private key (%s)\n", pass->who, src->opt, src->path,
				cmd_ossl_reason());
		ERR_clear_error();
		return 0;
	}
	return 1;
}

int cmd_load_pem_creds(const char *cert_opt, const char *cert_path, const struct cmd_key_source *key,
		       struct cmd_pass *pass, struct cmd_creds *c)
{
	FILE *f = fopen(cert_path, "r");
	X509 *x;

	if (!f) {
		fprintf(stderr, "%s: %s %s: %s\n", pass->who, cert_opt, cert_path, strerror(errno));
		return 0;
	}
	c->cert = PEM_read_X509(f, NULL, NULL, NULL);
	if (!c->cert) {
		fprintf(stderr, "%s: %s %s: not a PEM certificate (%s)\n", pass->who, cert_opt, cert_path,
			cmd_ossl_reason());
		fclose(f);
		return 0;
	}
	c->chain = sk_X509_new_null();
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)))
		if (!c->chain || !sk_X509_push(c->chain, x))
			X509_free(x);
	ERR_clear_error();
	fclose(f);
	if (!cmd_load_key(key, pass, &c->key))
		return 0;
	if (X509_check_private_key(c->cert, c->key) != 1) {
		fprintf(stderr, "%s: %s %s is not the key of the certificate in %s %s\n", pass->who, key->opt,
			key->path, cert_opt, cert_path);
		ERR_clear_error();
		return 0;
	}
	return 1;
}
