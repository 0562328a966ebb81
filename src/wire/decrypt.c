/* decrypt: a connection's record protection from a key log (see decrypt.h). */
#include "config.h"

#include "wire/decrypt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "wire/keylog.h"
#include "wire/tls.h"
#include "wire/tlscrypt.h"

enum side_state {
	DS_WAITING,     /* below 1.3: keys known, not yet in use (before CCS) */
	DS_ACTIVE,
	DS_NO_KEY,      /* the secret needed is not in the key log */
	DS_FAILED,      /* a record did not open */
	DS_STOPPED,     /* not followed any more: a capture gap, or new keys
			 * from a handshake that could not be read */
};

struct decrypt_side {
	struct tlscrypt_dir rec;
	enum side_state state;
	bool ccs;                       /* below 1.3: this epoch's ChangeCipherSpec seen */
	bool app;                       /* 1.3: application traffic secrets in use */
	unsigned gen;                   /* 1.3: application secret generation */
	uint8_t secret[KEYLOG_MAX_SECRET];
	size_t secret_len;
	enum keylog_kind want;          /* DS_NO_KEY: the secret missing */
	unsigned want_gen;
	uint64_t opened, missed;
	bool malformed;                 /* DS_FAILED because a record was malformed */
};

/* Below 1.3: one handshake's keys (RFC 5246 6.3).  Each side starts
 * using them at its ChangeCipherSpec; a renegotiation (RFC 5246 7.4.1.2,
 * RFC 5746) runs a new handshake under the current keys, and its key log
 * line is named by its own ClientHello.random. */
struct epoch12 {
	uint8_t client_random[32], server_random[32];
	const struct tlscrypt_suite *suite;  /* NULL: not one we decrypt */
	uint16_t version, cipher;
	bool etm;
	bool hello_done;                /* its ServerHello was read: randoms and suite known */
	bool have;                      /* key block derived */
	struct tlscrypt_keys k[2];
};

struct decrypt {
	struct keylog *kl;
	const struct tlscrypt_suite *suite;
	uint16_t version, cipher;
	uint8_t client_random[32];      /* the first handshake's: the connection's key log entry */
	struct epoch12 e12;             /* below 1.3: the keys each side's next CCS applies */
	unsigned renegotiations;        /* renegotiation ClientHellos read */
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

/* Below 1.3: installs the epoch's keys on a side at its ChangeCipherSpec. */
static void switch12(struct decrypt *d, struct decrypt_side *s, enum side role)
{
	struct epoch12 *e = &d->e12;

	s->want = KEYLOG_MASTER_SECRET;
	if (!e->hello_done || !e->suite) {
		/* a renegotiation whose ServerHello was not read, or whose
		 * cipher suite we cannot decrypt */
		s->state = DS_STOPPED;
	} else if (!e->have) {
		s->state = DS_NO_KEY;
	} else if (tlscrypt_dir_set(&s->rec, e->suite, e->version, e->etm, &e->k[role])) {
		s->state = DS_ACTIVE;
	} else {
		s->state = DS_FAILED;
	}
}

/* Below 1.3: the epoch's key block from its master secret, and the sides
 * that were waiting for it. */
static void want12(struct decrypt *d)
{
	struct epoch12 *e = &d->e12;
	uint8_t master[KEYLOG_MAX_SECRET];
	size_t len = 0;
	int i;

	if (!e->have && e->hello_done && e->suite &&
	    keylog_secret(d->kl, e->client_random, KEYLOG_MASTER_SECRET, 0, master, &len) && len == 48 &&
	    tlscrypt12_keys(e->suite, e->version, master, e->client_random, e->server_random,
			    &e->k[SIDE_CLIENT], &e->k[SIDE_SERVER]))
		e->have = true;
	OPENSSL_cleanse(master, sizeof(master));
	for (i = 0; i < 2; i++) {
		struct decrypt_side *s = &d->side[i];

		if (s->state != DS_NO_KEY && s->state != DS_WAITING)
			continue;
		s->want = KEYLOG_MASTER_SECRET;
		if (s->ccs)
			switch12(d, s, (enum side)i);
		else
			s->state = e->have ? DS_WAITING : DS_NO_KEY;
	}
}

/* Below 1.3: the epoch a ServerHello starts. */
static void epoch12_hello(struct epoch12 *e, const struct server_hello *sh)
{
	e->suite = tlscrypt_suite(sh->cipher);
	e->version = sh->selected_version;
	if (e->suite && (e->suite->tls13 || e->version < TLS_V_1_0 || e->version > TLS_V_1_2))
		e->suite = NULL;
	e->cipher = sh->cipher;
	e->etm = sh->encrypt_then_mac;
	memcpy(e->server_random, sh->random, 32);
	e->hello_done = true;
	e->have = false;
	OPENSSL_cleanse(e->k, sizeof(e->k));
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
	memcpy(d->client_random, client_random, 32);
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
		memcpy(d->e12.client_random, client_random, 32);
		epoch12_hello(&d->e12, sh);
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
	OPENSSL_cleanse(&d->e12, sizeof(d->e12));
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

	if (!d->suite || d->version == TLS_V_1_3 || s->state == DS_FAILED || s->state == DS_STOPPED)
		return;
	if (s->ccs) {
		/* a second ChangeCipherSpec in one epoch: a renegotiation whose
		 * ClientHello was not read, so its master secret is unknown */
		s->state = DS_STOPPED;
		return;
	}
	s->ccs = true;
	switch12(d, s, role);
}

void decrypt_renegotiation_hello(struct decrypt *d, const struct client_hello *ch)
{
	int i;

	if (!d->suite || d->version == TLS_V_1_3)
		return;
	d->renegotiations++;
	OPENSSL_cleanse(&d->e12, sizeof(d->e12));
	memcpy(d->e12.client_random, ch->random, 32);
	/* each side's next ChangeCipherSpec applies the new keys; until
	 * then it goes on with the current ones */
	for (i = 0; i < 2; i++)
		d->side[i].ccs = false;
}

void decrypt_renegotiation_server_hello(struct decrypt *d, const struct server_hello *sh)
{
	if (!d->suite || d->version == TLS_V_1_3 || !d->renegotiations || d->e12.hello_done)
		return;
	epoch12_hello(&d->e12, sh);
	want12(d);
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

/* A side needed a secret the key log lacks: a record waited for it, or
 * below 1.3 its ChangeCipherSpec put the missing keys in force (the
 * records after it are then not even handed over). */
static bool lacks_key(const struct decrypt *d, const struct decrypt_side *s)
{
	return s->state == DS_NO_KEY && (s->missed || (d->version != TLS_V_1_3 && s->ccs));
}

enum keylog_use decrypt_outcome(const struct decrypt *d, char *note, size_t notelen)
{
	const struct decrypt_side *c = &d->side[SIDE_CLIENT], *s = &d->side[SIDE_SERVER];
	const struct decrypt_side *bad = c->state == DS_FAILED ? c : s->state == DS_FAILED ? s : NULL;
	const struct decrypt_side *missing = lacks_key(d, c) ? c : lacks_key(d, s) ? s : NULL;
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
	if (missing && d->version != TLS_V_1_3 && d->renegotiations) {
		for (i = 0; i < 8; i++)
			snprintf(&hex[2 * i], 3, "%02x", d->e12.client_random[i]);
		snprintf(note, notelen, "the key log has no CLIENT_RANDOM for the renegotiation (client random %s...): the records after it stay encrypted",
			 hex);
		return KEYLOG_MISSING_SECRET;
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
	if (d->renegotiations && d->e12.hello_done && !d->e12.suite)
		snprintf(note, notelen, "the renegotiation chose cipher suite 0x%04x, which mtlsdiag does not decrypt: the records after it stay encrypted",
			 d->e12.cipher);
	return c->opened + s->opened ? KEYLOG_DECRYPTED : KEYLOG_UNUSED;
}
