/* expect: the real server's chain as the user describes it (expect.h). */
#include "config.h"

#include "analysis/expect.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/pem.h>

#include "wire/x509info.h"

int expect_add_ca_file(struct server_expect *e, const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "r");
	X509 *x;
	size_t before = e->n_cas;
	int ret = 0;

	if (!fp) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return 0;
	}
	while ((x = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL) {
		struct cert_info ci;

		if (e->n_cas >= EXPECT_MAX_CAS) {
			X509_free(x);
			snprintf(err, errlen, "%s: more than %d certificates", path, EXPECT_MAX_CAS);
			goto Exit;
		}
		x509info_summarize(x, &ci);
		X509_free(x);
		snprintf(e->cas[e->n_cas].subject, sizeof(e->cas[0].subject), "%s", ci.subject);
		snprintf(e->cas[e->n_cas].ski, sizeof(e->cas[0].ski), "%s", ci.ski);
		snprintf(e->cas[e->n_cas].sha256, sizeof(e->cas[0].sha256), "%s", ci.sha256);
		snprintf(e->cas[e->n_cas].spki_sha256, sizeof(e->cas[0].spki_sha256), "%s", ci.spki_sha256);
		e->n_cas++;
	}
	x509info_err_clear();
	if (e->n_cas == before) {
		snprintf(err, errlen, "%s: no PEM certificate in it", path);
		goto Exit;
	}
	if (!e->ca_file[0])
		snprintf(e->ca_file, sizeof(e->ca_file), "%s", path);
	ret = 1;
Exit:
	fclose(fp);
	return ret;
}

int expect_add_spki(struct server_expect *e, const char *hex, char *err, size_t errlen)
{
	char pin[65];
	size_t n = 0;
	const char *p;

	for (p = hex; *p; p++) {
		if (*p == ':' && n % 2 == 0 && n > 0 && p[1])
			continue;
		if (!isxdigit((unsigned char)*p) || n >= 64)
			goto Bad;
		pin[n++] = (char)tolower((unsigned char)*p);
	}
	if (n != 64)
		goto Bad;
	pin[n] = '\0';
	if (e->n_pins >= EXPECT_MAX_PINS) {
		snprintf(err, errlen, "at most %d --expect-server-spki", EXPECT_MAX_PINS);
		return 0;
	}
	memcpy(e->pins[e->n_pins++], pin, sizeof(pin));
	return 1;
Bad:
	snprintf(err, errlen, "'%s' is not a SHA-256 in hex: give the 64 hex digits of the SHA-256 of the server's SubjectPublicKeyInfo (openssl x509 -in CERT -noout -pubkey | openssl pkey -pubin -outform der | sha256sum)",
		 hex);
	return 0;
}

bool expect_configured(const struct server_expect *e)
{
	return e && (e->n_cas || e->n_pins);
}

static bool ca_matches(const struct expect_ca *ca, const struct cert_info *c)
{
	if (strcmp(c->sha256, ca->sha256) == 0 || strcmp(c->spki_sha256, ca->spki_sha256) == 0)
		return true;
	if (strcmp(c->issuer, ca->subject) != 0)
		return false;
	return !c->aki[0] || !ca->ski[0] || strcmp(c->aki, ca->ski) == 0;
}

/* What was expected, for the mismatch line. */
static void expected_text(const struct server_expect *e, char *buf, size_t len)
{
	size_t used = 0, i;

	buf[0] = '\0';
	if (e->n_cas) {
		used += (size_t)snprintf(buf, len, "a chain from %s", e->cas[0].subject);
		if (e->n_cas > 1 && used < len)
			used += (size_t)snprintf(buf + used, len - used, " (or %zu more CAs)", e->n_cas - 1);
		if (used < len)
			used += (size_t)snprintf(buf + used, len - used, " (--expect-server-ca %s)", e->ca_file);
	}
	for (i = 0; i < e->n_pins && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s key %.16s... (--expect-server-spki)",
					 used ? " or a" : "a", e->pins[i]);
}

enum expect_outcome expect_check(const struct server_expect *e, const struct cert_chain *chain,
				 char *why, size_t whylen)
{
	char want[512];
	size_t i, k;

	why[0] = '\0';
	if (!expect_configured(e) || chain->n == 0)
		return EXPECT_UNCHECKED;
	for (i = 0; i < chain->n; i++) {
		const struct cert_info *c = &chain->certs[i];

		if (c->parse_failed)
			continue;
		for (k = 0; k < e->n_cas; k++) {
			if (ca_matches(&e->cas[k], c)) {
				snprintf(why, whylen, "the server chain matches what the real server uses: %s comes from %s (--expect-server-ca %s)",
					 i == 0 ? "its leaf" : "a certificate", e->cas[k].subject, e->ca_file);
				return EXPECT_MATCH;
			}
		}
		for (k = 0; k < e->n_pins; k++) {
			if (strcmp(c->spki_sha256, e->pins[k]) == 0) {
				snprintf(why, whylen, "the server chain matches what the real server uses: %s %s has the pinned key %.16s... (--expect-server-spki)",
					 i == 0 ? "its leaf" : "certificate", c->subject, e->pins[k]);
				return EXPECT_MATCH;
			}
		}
	}
	expected_text(e, want, sizeof(want));
	snprintf(why, whylen, "the server chain is not the real server's: issued by %s, expected %s",
		 chain->certs[0].issuer, want);
	return EXPECT_MISMATCH;
}
