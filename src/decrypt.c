/* decrypt: a connection's record protection from a key log (see decrypt.h). */
#include "config.h"

#include "decrypt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "keylog.h"
#include "tls.h"
#include "tlscrypt.h"

enum side_state {
	DS_WAITING,     /* below 1.3: keys known, not yet in use (before CCS) */
	DS_ACTIVE,
	DS_NO_KEY,      /* the secret needed is not in the key log */
	DS_FAILED,      /* a record did not open */
	DS_STOPPED,     /* renegotiated: new keys from another handshake */
};

struct decrypt_side {
	struct tlscrypt_dir rec;
	enum side_state state;
	bool ccs;                       /* below 1.3: ChangeCipherSpec seen */
	bool app;                       /* 1.3: application traffic secrets in use */
	unsigned gen;                   /* 1.3: application secret generation */
	uint8_t secret[KEYLOG_MAX_SECRET];
	size_t secret_len;
	enum keylog_kind want;          /* DS_NO_KEY: the secret missing */
	unsigned want_gen;
	uint64_t opened, missed;
	bool malformed;                 /* DS_FAILED because a record was malformed */
};

struct decrypt {
	struct keylog *kl;
	const struct tlscrypt_suite *suite;
	uint16_t version, cipher;
	bool etm;
	uint8_t client_random[32], server_random[32];
	bool have12;
	struct tlscrypt_keys k12[2];
	struct decrypt_side side[2];    /* by role */
	uint8_t out[TLS_MAX_RECORD];
};

static const char *kind_label(enum keylog_kind k)
{
	switch (k) {
	case KEYLOG_MASTER_SECRET: return "CLIENT_RANDOM";
	case KEYLOG_CLIENT_HANDSHAKE: return "CLIENT_HANDSHAKE_TRAFFIC_SECRET";
	case KEYLOG_SERVER_HANDSHAKE: return "SERVER_HANDSHAKE_TRAFFIC_SECRET";
	case KEYLOG_CLIENT_TRAFFIC: return "CLIENT_TRAFFIC_SECRET_";
	case KEYLOG_SERVER_TRAFFIC: return "SERVER_TRAFFIC_SECRET_";
	}
	return "?";
}

/* 1.3: installs a traffic secret's keys on a side. */
static int install13(struct decrypt *d, struct decrypt_side *s, const uint8_t *secret, size_t len)
{
	struct tlscrypt_keys k;
	int ok;

	ok = tlscrypt13_keys(d->suite, secret, len, &k) &&
	     tlscrypt_dir_set(&s->rec, d->suite, d->version, false, &k);
	OPENSSL_cleanse(&k, sizeof(k));
	if (!ok) {
		s->state = DS_FAILED;
		return 0;
	}
	memcpy(s->secret, secret, len);
	s->secret_len = len;
	s->state = DS_ACTIVE;
	return 1;
}

/* 1.3: looks up the secret the side needs now and installs it, or leaves
 * the side waiting for it.  For a later application generation not in the
 * key log, the next secret is derived from the current one (7.2). */
static void want13(struct decrypt *d, enum side role, enum keylog_kind kind, unsigned gen)
{
	struct decrypt_side *s = &d->side[role];
	uint8_t secret[KEYLOG_MAX_SECRET];
	size_t len = 0;

	s->want = kind;
	s->want_gen = gen;
	if (keylog_secret(d->kl, d->client_random, kind, gen, secret, &len)) {
		install13(d, s, secret, len);
	} else if (gen > 0 && s->app && s->secret_len &&
		   tlscrypt13_next_secret(d->suite, s->secret, s->secret_len, secret)) {
		install13(d, s, secret, s->secret_len);
	} else {
		s->state = DS_NO_KEY;
	}
	OPENSSL_cleanse(secret, sizeof(secret));
}

/* Below 1.3: the key block from the master secret. */
static void want12(struct decrypt *d)
{
	uint8_t master[KEYLOG_MAX_SECRET];
	size_t len = 0;
	int i;

	if (keylog_secret(d->kl, d->client_random, KEYLOG_MASTER_SECRET, 0, master, &len) && len == 48 &&
	    tlscrypt12_keys(d->suite, d->version, master, d->client_random, d->server_random,
			    &d->k12[SIDE_CLIENT], &d->k12[SIDE_SERVER]))
		d->have12 = true;
	OPENSSL_cleanse(master, sizeof(master));
	for (i = 0; i < 2; i++) {
		struct decrypt_side *s = &d->side[i];

		if (s->state != DS_NO_KEY && s->state != DS_WAITING)
			continue;
		s->want = KEYLOG_MASTER_SECRET;
		if (!d->have12) {
			s->state = DS_NO_KEY;
		} else if (!s->ccs) {
			s->state = DS_WAITING;
		} else if (tlscrypt_dir_set(&s->rec, d->suite, d->version, d->etm, &d->k12[i])) {
			s->state = DS_ACTIVE;
		} else {
			s->state = DS_FAILED;
		}
	}
}

struct decrypt *decrypt_new(struct keylog *kl, const uint8_t client_random[32], const struct server_hello *sh)
{
	struct decrypt *d = calloc(1, sizeof(*d));
	int i;

	if (!d)
		return NULL;
	d->kl = kl;
	d->version = sh->selected_version;
	d->cipher = sh->cipher;
	d->etm = sh->encrypt_then_mac;
	memcpy(d->client_random, client_random, 32);
	memcpy(d->server_random, sh->random, 32);
	for (i = 0; i < 2; i++) {
		tlscrypt_dir_init(&d->side[i].rec);
		d->side[i].state = DS_NO_KEY;
	}
	d->suite = tlscrypt_suite(sh->cipher);
	if (!d->suite || d->suite->tls13 != (d->version == TLS_V_1_3) || d->version < TLS_V_1_0 ||
	    d->version > TLS_V_1_3) {
		d->suite = NULL;
		return d;
	}
	if (d->version == TLS_V_1_3) {
		/* everything after the ServerHello is under the handshake secrets */
		want13(d, SIDE_CLIENT, KEYLOG_CLIENT_HANDSHAKE, 0);
		want13(d, SIDE_SERVER, KEYLOG_SERVER_HANDSHAKE, 0);
	} else {
		want12(d);
	}
	return d;
}

void decrypt_free(struct decrypt *d)
{
	if (!d)
		return;
	tlscrypt_dir_clear(&d->side[0].rec);
	tlscrypt_dir_clear(&d->side[1].rec);
	OPENSSL_cleanse(d->k12, sizeof(d->k12));
	OPENSSL_cleanse(d->side, sizeof(d->side));
	free(d);
}

enum decrypt_result decrypt_open(struct decrypt *d, enum side role, uint8_t type, uint16_t version,
				 const struct cursor *body, struct cursor *plain, uint8_t *inner)
{
	struct decrypt_side *s = &d->side[role];

	if (!d->suite || s->state == DS_FAILED || s->state == DS_STOPPED)
		return DR_OFF;
	if (s->state != DS_ACTIVE) {
		s->missed++;
		return DR_NO_KEY;
	}
	switch (tlscrypt_open(&s->rec, type, version, body, d->out, sizeof(d->out), plain, inner)) {
	case TC_OK:
		s->opened++;
		return DR_OK;
	case TC_MALFORMED:
		s->malformed = true;
		break;
	case TC_BAD_AUTH:
	case TC_FAILED:
		break;
	}
	/* the sequence numbers are lost with this record: stop this side */
	s->state = DS_FAILED;
	s->missed++;
	return DR_BAD;
}

void decrypt_ccs(struct decrypt *d, enum side role)
{
	struct decrypt_side *s = &d->side[role];

	if (!d->suite || d->version == TLS_V_1_3)
		return;
	if (s->ccs) {
		/* a second ChangeCipherSpec: renegotiation, whose master secret
		 * belongs to another ClientHello.random */
		if (s->state == DS_ACTIVE || s->state == DS_WAITING)
			s->state = DS_STOPPED;
		return;
	}
	s->ccs = true;
	if (s->state == DS_WAITING) {
		if (tlscrypt_dir_set(&s->rec, d->suite, d->version, d->etm, &d->k12[role]))
			s->state = DS_ACTIVE;
		else
			s->state = DS_FAILED;
	}
}

void decrypt_handshake(struct decrypt *d, enum side role, uint8_t hs_type)
{
	struct decrypt_side *s = &d->side[role];
	enum keylog_kind app = role == SIDE_CLIENT ? KEYLOG_CLIENT_TRAFFIC : KEYLOG_SERVER_TRAFFIC;

	if (!d->suite || d->version != TLS_V_1_3 || s->state != DS_ACTIVE)
		return;
	if (hs_type == TLS_HS_FINISHED && !s->app) {
		/* the records after a side's Finished use application_traffic_secret_0 */
		s->app = true;
		s->gen = 0;
		want13(d, role, app, 0);
	} else if (hs_type == TLS_HS_KEY_UPDATE && s->app) {
		/* RFC 8446 4.6.3: the sender's next records use the next generation */
		s->gen++;
		want13(d, role, app, s->gen);
	}
}

void decrypt_stop(struct decrypt *d, enum side role)
{
	if (d->side[role].state != DS_FAILED)
		d->side[role].state = DS_STOPPED;
}

bool decrypt_retry(struct decrypt *d)
{
	bool any = false;
	int i;

	if (!d->suite)
		return false;
	if (d->version != TLS_V_1_3) {
		bool before = d->side[0].state == DS_NO_KEY || d->side[1].state == DS_NO_KEY;

		if (!before)
			return false;
		want12(d);
		return d->side[0].state == DS_ACTIVE || d->side[1].state == DS_ACTIVE ||
		       d->side[0].state == DS_WAITING || d->side[1].state == DS_WAITING;
	}
	for (i = 0; i < 2; i++) {
		struct decrypt_side *s = &d->side[i];

		if (s->state != DS_NO_KEY)
			continue;
		want13(d, (enum side)i, s->want, s->want_gen);
		any |= s->state == DS_ACTIVE;
	}
	return any;
}

bool decrypt_waiting(const struct decrypt *d, enum side role)
{
	return d->suite && d->side[role].state == DS_NO_KEY;
}

bool decrypt_live(const struct decrypt *d, enum side role)
{
	enum side_state st = d->side[role].state;

	return d->suite && st != DS_FAILED && st != DS_STOPPED;
}

enum keylog_use decrypt_outcome(const struct decrypt *d, char *note, size_t notelen)
{
	const struct decrypt_side *c = &d->side[SIDE_CLIENT], *s = &d->side[SIDE_SERVER];
	const struct decrypt_side *bad = c->state == DS_FAILED ? c : s->state == DS_FAILED ? s : NULL;
	const struct decrypt_side *missing = c->missed && c->state == DS_NO_KEY ? c
					   : s->missed && s->state == DS_NO_KEY ? s : NULL;
	char hex[17];
	int i;

	note[0] = '\0';
	for (i = 0; i < 8; i++)
		snprintf(&hex[2 * i], 3, "%02x", d->client_random[i]);
	if (!d->suite) {
		snprintf(note, notelen, "the key log cannot help: cipher suite 0x%04x is not one mtlsdiag decrypts",
			 d->cipher);
		return KEYLOG_UNSUPPORTED;
	}
	if (!keylog_knows(d->kl, d->client_random)) {
		snprintf(note, notelen, "key log has no entry for this client random (%s...)", hex);
		return KEYLOG_NO_ENTRY;
	}
	if (bad) {
		snprintf(note, notelen, "%s",
			 bad->malformed ? "a protected record is malformed for its cipher suite: decryption stopped there"
					: "the key does not decrypt: the key log's secrets for this client random fail to authenticate the records (a wrong or corrupted key log?)");
		return KEYLOG_BAD_KEY;
	}
	if (missing) {
		if (missing->want == KEYLOG_CLIENT_TRAFFIC || missing->want == KEYLOG_SERVER_TRAFFIC)
			snprintf(note, notelen, "the key log has this client random but no %s%u: %s records after the handshake stay encrypted",
				 kind_label(missing->want), missing->want_gen,
				 missing == c ? "the client's" : "the server's");
		else
			snprintf(note, notelen, "the key log has this client random but no %s",
				 kind_label(missing->want));
		return KEYLOG_MISSING_SECRET;
	}
	return c->opened + s->opened ? KEYLOG_DECRYPTED : KEYLOG_UNUSED;
}
