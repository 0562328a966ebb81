/* Tests for preamble: where TLS starts after a plaintext opening.
 *
 * The fixtures in tests/data/preamble/ are real captures (see each README
 * and scripts/make-preamble-fixtures): client.bin and server.bin are the
 * two directions, chunks the segment sizes in capture order.  Each is fed
 * three ways: whole (the side that spoke first, then the other, again until
 * settled), one byte at a time in capture order, and segment by segment in
 * capture order.  All three must agree. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/preamble.h"
#include "testutil.h"

#define MAX_CHUNKS 64

struct fixture {
	uint8_t *data[2];
	size_t len[2];
	enum side chunk_side[MAX_CHUNKS];
	size_t chunk_len[MAX_CHUNKS];
	size_t n_chunks;
};

/* What one way of feeding ended with. */
struct outcome {
	enum preamble_status status[2];
	size_t start[2];
	size_t fed[2];          /* bytes of the side given when it first settled */
	enum preamble_kind kind;
	char target[300];
};

static void load_fixture(const char *name, struct fixture *f)
{
	char rel[256], line[64], side;
	FILE *in;
	size_t n, total[2] = { 0, 0 };

	memset(f, 0, sizeof(*f));
	snprintf(rel, sizeof(rel), "tests/data/preamble/%s/client.bin", name);
	f->data[SIDE_CLIENT] = test_load(rel, &f->len[SIDE_CLIENT]);
	snprintf(rel, sizeof(rel), "tests/data/preamble/%s/server.bin", name);
	f->data[SIDE_SERVER] = test_load(rel, &f->len[SIDE_SERVER]);
	snprintf(rel, sizeof(rel), "tests/data/preamble/%s/chunks", name);
	in = fopen(test_path(rel), "r");
	cr_assert_not_null(in, "cannot read %s", test_path(rel));
	while (fgets(line, sizeof(line), in)) {
		cr_assert(sscanf(line, "%c %zu", &side, &n) == 2 && (side == 'c' || side == 's'),
			  "bad chunks line '%s'", line);
		cr_assert_lt(f->n_chunks, MAX_CHUNKS);
		f->chunk_side[f->n_chunks] = side == 'c' ? SIDE_CLIENT : SIDE_SERVER;
		f->chunk_len[f->n_chunks] = n;
		total[f->chunk_side[f->n_chunks]] += n;
		f->n_chunks++;
	}
	fclose(in);
	cr_assert_eq(total[SIDE_CLIENT], f->len[SIDE_CLIENT], "%s: chunks do not add up (client)", name);
	cr_assert_eq(total[SIDE_SERVER], f->len[SIDE_SERVER], "%s: chunks do not add up (server)", name);
}

static void free_fixture(struct fixture *f)
{
	free(f->data[0]);
	free(f->data[1]);
}

static void outcome_init(struct outcome *o)
{
	memset(o, 0, sizeof(*o));
	o->status[0] = o->status[1] = PREAMBLE_MORE;
}

/* One call; checks that a settled side never changes its answer. */
static void scan(struct preamble *p, struct outcome *o, const struct fixture *f, enum side s, size_t len)
{
	struct cursor c;
	size_t start = (size_t)-1;
	enum preamble_status st;

	cursor_init(&c, f->data[s], len);
	st = preamble_scan(p, s, &c, &start);
	if (st == PREAMBLE_TLS)
		cr_assert_leq(start, len, "TLS start %zu beyond the %zu bytes given", start, len);
	if (o->status[s] == PREAMBLE_TLS) {
		cr_assert_eq(st, PREAMBLE_TLS, "side %d went from TLS to %d", s, st);
		cr_assert_eq(start, o->start[s], "side %d moved its TLS start", s);
	}
	if (o->status[s] == PREAMBLE_NOT_TLS)
		cr_assert_eq(st, PREAMBLE_NOT_TLS, "side %d went from NOT_TLS to %d", s, st);
	if (o->status[s] == PREAMBLE_MORE && st != PREAMBLE_MORE)
		o->fed[s] = len;
	o->status[s] = st;
	if (st == PREAMBLE_TLS)
		o->start[s] = start;
	o->kind = p->kind;
	memcpy(o->target, p->target, sizeof(o->target));
}

static void feed_whole(const struct fixture *f, struct outcome *o)
{
	struct preamble p;
	enum side first = f->chunk_side[0];
	int round;

	outcome_init(o);
	preamble_init(&p);
	for (round = 0; round < 4; round++) {
		scan(&p, o, f, first, f->len[first]);
		scan(&p, o, f, !first, f->len[!first]);
	}
}

static void feed_chunks(const struct fixture *f, struct outcome *o, int bytewise)
{
	struct preamble p;
	size_t i, b, sent[2] = { 0, 0 };
	enum side s;

	outcome_init(o);
	preamble_init(&p);
	for (i = 0; i < f->n_chunks; i++) {
		s = f->chunk_side[i];
		if (bytewise) {
			for (b = 0; b < f->chunk_len[i]; b++)
				scan(&p, o, f, s, ++sent[s]);
		} else {
			sent[s] += f->chunk_len[i];
			scan(&p, o, f, s, sent[s]);
		}
	}
}

/* Offset of the first TLS handshake record carrying message `hs_type`. */
static size_t first_record(const struct fixture *f, enum side s, uint8_t hs_type)
{
	const uint8_t *d = f->data[s];
	size_t i;

	for (i = 0; i + 6 <= f->len[s]; i++)
		if (d[i] == 0x16 && d[i + 1] == 0x03 && d[i + 2] <= 0x04 && d[i + 5] == hs_type)
			return i;
	return (size_t)-1;
}

static void check_tls_fixture(const char *name, enum preamble_kind kind, const char *target)
{
	struct fixture f;
	struct outcome o[3];
	static const char *const how[3] = { "whole", "byte by byte", "by segment" };
	size_t expect[2];
	int m, s;

	load_fixture(name, &f);
	expect[SIDE_CLIENT] = first_record(&f, SIDE_CLIENT, 1);
	expect[SIDE_SERVER] = first_record(&f, SIDE_SERVER, 2);
	cr_assert_neq(expect[SIDE_CLIENT], (size_t)-1, "%s: no ClientHello in client.bin", name);
	cr_assert_neq(expect[SIDE_SERVER], (size_t)-1, "%s: no ServerHello in server.bin", name);
	feed_whole(&f, &o[0]);
	feed_chunks(&f, &o[1], 1);
	feed_chunks(&f, &o[2], 0);
	for (m = 0; m < 3; m++) {
		for (s = 0; s < 2; s++) {
			cr_assert_eq(o[m].status[s], PREAMBLE_TLS, "%s fed %s: %s side ended %d", name, how[m],
				     s == SIDE_CLIENT ? "client" : "server", o[m].status[s]);
			cr_assert_eq(o[m].start[s], expect[s], "%s fed %s: %s TLS at %zu, want %zu", name, how[m],
				     s == SIDE_CLIENT ? "client" : "server", o[m].start[s], expect[s]);
		}
		cr_assert_eq(o[m].kind, kind, "%s fed %s: kind %d, want %d", name, how[m], o[m].kind, kind);
		cr_assert_str_eq(o[m].target, target, "%s fed %s: target", name, how[m]);
	}
	free_fixture(&f);
}

/* A real session that stays in plaintext: neither side may ever be TLS, and
 * the byte-by-byte run must say NOT_TLS once the client has sent `client_at`
 * bytes or the server `server_at` (0: not checked). */
static void check_plain_fixture(const char *name, size_t client_at, size_t server_at)
{
	struct fixture f;
	struct outcome o[3];
	int m, s;

	load_fixture(name, &f);
	feed_whole(&f, &o[0]);
	feed_chunks(&f, &o[1], 1);
	feed_chunks(&f, &o[2], 0);
	for (m = 0; m < 3; m++) {
		for (s = 0; s < 2; s++)
			cr_assert_neq(o[m].status[s], PREAMBLE_TLS, "%s: side %d said TLS", name, s);
		cr_assert(o[m].status[0] == PREAMBLE_NOT_TLS || o[m].status[1] == PREAMBLE_NOT_TLS,
			  "%s (mode %d): never said NOT_TLS", name, m);
	}
	if (client_at)
		cr_assert_eq(o[1].fed[SIDE_CLIENT], client_at, "%s: client NOT_TLS after %zu bytes, want %zu",
			     name, o[1].fed[SIDE_CLIENT], client_at);
	if (server_at)
		cr_assert_eq(o[1].fed[SIDE_SERVER], server_at, "%s: server NOT_TLS after %zu bytes, want %zu",
			     name, o[1].fed[SIDE_SERVER], server_at);
	free_fixture(&f);
}

Test(preamble_fixture, postgres) { check_tls_fixture("postgres", PREAMBLE_POSTGRES, ""); }
Test(preamble_fixture, mysql) { check_tls_fixture("mysql", PREAMBLE_MYSQL, ""); }
Test(preamble_fixture, smtp) { check_tls_fixture("smtp", PREAMBLE_SMTP, ""); }
Test(preamble_fixture, imap) { check_tls_fixture("imap", PREAMBLE_IMAP, ""); }
Test(preamble_fixture, pop3) { check_tls_fixture("pop3", PREAMBLE_POP3, ""); }
Test(preamble_fixture, ftp_auth_ssl) { check_tls_fixture("ftp", PREAMBLE_FTP, ""); }
Test(preamble_fixture, ftp_auth_tls) { check_tls_fixture("ftp-s-client", PREAMBLE_FTP, ""); }
Test(preamble_fixture, xmpp_c2s) { check_tls_fixture("xmpp", PREAMBLE_XMPP, ""); }
Test(preamble_fixture, xmpp_s2s) { check_tls_fixture("xmpp-s2s", PREAMBLE_XMPP, ""); }
Test(preamble_fixture, http_connect) { check_tls_fixture("connect", PREAMBLE_HTTP_CONNECT, "127.0.0.1:54433"); }
/* squid: 407 with keep-alive, then the CONNECT again with credentials. */
Test(preamble_fixture, http_connect_407_retry)
{
	check_tls_fixture("connect-auth", PREAMBLE_HTTP_CONNECT, "127.0.0.1:54433");
}

/* psql with sslmode=prefer against ssl = off: SSLRequest answered 'N'. */
Test(preamble_fixture, postgres_answered_n) { check_plain_fixture("postgres-no-ssl", 0, 1); }

/* mariadb --skip-ssl: the first client packet is a plaintext login. */
Test(preamble_fixture, mysql_without_ssl) { check_plain_fixture("mysql-no-ssl", 191, 0); }

/* swaks without --tls: EHLO, then MAIL FROM is the first sign. */
Test(preamble_fixture, smtp_without_starttls)
{
	static const char mail[] = "EHLO vm\r\nMAIL FROM:<root@localhost>\r\n";

	check_plain_fixture("smtp-plain", strlen(mail), 0);
}

/* tinyproxy with BasicAuth answers 407 with Connection: close (curl then
 * retries on a new connection). */
Test(preamble_fixture, http_connect_407_close) { check_plain_fixture("connect-407-close", 0, 0); }

/* ---- hand-made streams for what the captures do not show ---- */

struct dialogue {
	struct preamble p;
	uint8_t buf[2][PREAMBLE_MAX + 16];
	size_t len[2];
	enum preamble_status last[2];
	size_t start[2];
};

static void dlg_init(struct dialogue *d)
{
	memset(d, 0, sizeof(*d));
	preamble_init(&d->p);
}

/* Appends bytes to one side and scans it. */
static enum preamble_status say_bytes(struct dialogue *d, enum side s, const void *bytes, size_t n)
{
	struct cursor c;

	cr_assert_leq(d->len[s] + n, sizeof(d->buf[s]));
	memcpy(d->buf[s] + d->len[s], bytes, n);
	d->len[s] += n;
	cursor_init(&c, d->buf[s], d->len[s]);
	d->last[s] = preamble_scan(&d->p, s, &c, &d->start[s]);
	return d->last[s];
}

static enum preamble_status say(struct dialogue *d, enum side s, const char *text)
{
	return say_bytes(d, s, text, strlen(text));
}

static const uint8_t fake_hello[] = { 0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00 };

Test(preamble, direct_tls_from_real_client_hello)
{
	struct fixture f;
	static struct dialogue d;

	load_fixture("postgres", &f);
	dlg_init(&d);
	/* the ClientHello psql sent after its SSLRequest, as a direct TLS client */
	cr_assert_eq(say_bytes(&d, SIDE_CLIENT, f.data[SIDE_CLIENT] + 8, f.len[SIDE_CLIENT] - 8), PREAMBLE_TLS);
	cr_assert_eq(d.start[SIDE_CLIENT], 0);
	cr_assert_eq(say_bytes(&d, SIDE_SERVER, f.data[SIDE_SERVER] + 1, f.len[SIDE_SERVER] - 1), PREAMBLE_TLS);
	cr_assert_eq(d.start[SIDE_SERVER], 0);
	cr_assert_eq(d.p.kind, PREAMBLE_NONE);
	free_fixture(&f);
}

Test(preamble, direct_tls_needs_five_bytes)
{
	struct dialogue d;

	dlg_init(&d);
	cr_assert_eq(say_bytes(&d, SIDE_CLIENT, fake_hello, 4), PREAMBLE_MORE);
	cr_assert_eq(say_bytes(&d, SIDE_CLIENT, fake_hello + 4, 1), PREAMBLE_TLS);
	cr_assert_eq(d.start[SIDE_CLIENT], 0);
}

Test(preamble, sslv2_client_hello)
{
	/* SSLv2-format ClientHello: length 0x2e with the high bit, type 1,
	 * version 3.1, cipher spec, session id and challenge lengths ... */
	static const uint8_t v2[] = { 0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10 };
	struct dialogue d;

	dlg_init(&d);
	cr_assert_eq(say_bytes(&d, SIDE_CLIENT, v2, sizeof(v2)), PREAMBLE_TLS);
	cr_assert_eq(d.start[SIDE_CLIENT], 0);
	cr_assert_eq(say_bytes(&d, SIDE_SERVER, fake_hello, sizeof(fake_hello)), PREAMBLE_TLS);
	cr_assert_eq(d.start[SIDE_SERVER], 0);
}

Test(preamble, http_get_is_not_tls)
{
	struct dialogue d;

	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_CLIENT, "G"), PREAMBLE_NOT_TLS, "no TLS-capable protocol starts with 'G'");
	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_CLIENT, "GET / HTTP/1.1\r\nHost: example.test\r\n\r\n"), PREAMBLE_NOT_TLS);
	cr_assert_eq(say(&d, SIDE_SERVER, "HTTP/1.1 200 OK\r\n\r\n"), PREAMBLE_NOT_TLS);
}

Test(preamble, ssh_banner_is_not_tls)
{
	struct dialogue d;

	/* OpenSSH servers speak first */
	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_SERVER, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"), PREAMBLE_NOT_TLS);
	cr_assert_eq(say(&d, SIDE_CLIENT, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"), PREAMBLE_NOT_TLS);
	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_CLIENT, "SSH-2.0-OpenSSH_9.2p1\r\n"), PREAMBLE_NOT_TLS);
}

Test(preamble, random_bytes_are_not_tls)
{
	uint8_t junk[512];
	struct dialogue d;
	unsigned seed = 12345, i, trial;
	enum preamble_status st;

	for (trial = 0; trial < 200; trial++) {
		for (i = 0; i < sizeof(junk); i++) {
			seed = seed * 1103515245u + 12345u;
			junk[i] = (uint8_t)(seed >> 16);
		}
		junk[0] |= 0x01; /* keep 0x16 (a TLS record) out of the first byte */
		if ((junk[0] & 0x80) && junk[2] == 0x01)
			junk[2] = 0x02; /* nor an SSLv2 ClientHello */
		dlg_init(&d);
		st = say_bytes(&d, trial & 1 ? SIDE_SERVER : SIDE_CLIENT, junk, sizeof(junk));
		cr_assert_eq(st, PREAMBLE_NOT_TLS, "trial %u (first byte %02x)", trial, junk[0]);
	}
}

Test(preamble, smtp_multiline_greeting_and_refusal)
{
	struct dialogue d;

	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_SERVER, "220-mx.example.test ESMTP\r\n220-second line\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, "220 ready\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "EHLO client\r\n"), PREAMBLE_MORE);
	cr_assert_eq(d.p.kind, PREAMBLE_SMTP);
	cr_assert_eq(say(&d, SIDE_SERVER, "250-mx\r\n250 STARTTLS\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "STARTTLS\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, "454 4.7.0 TLS not available due to local problem\r\n"), PREAMBLE_MORE);
	/* the client gives up on TLS */
	cr_assert_eq(say(&d, SIDE_CLIENT, "QUIT\r\n"), PREAMBLE_NOT_TLS);
	cr_assert_eq(say(&d, SIDE_SERVER, "221 bye\r\n"), PREAMBLE_NOT_TLS);
}

Test(preamble, smtp_refused_greeting)
{
	struct dialogue d;

	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_SERVER, "554 5.7.1 go away\r\n"), PREAMBLE_NOT_TLS);
}

Test(preamble, ftp_auth_ssl_refused_then_auth_tls)
{
	struct dialogue d;
	static const char before[] = "AUTH SSL\r\nAUTH TLS\r\n";
	static const char sbefore[] = "220 ftp\r\n504 unknown\r\n234 go\r\n";

	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_SERVER, "220 ftp\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "AUTH SSL\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, "504 unknown\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "AUTH TLS\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, "234 go\r\n"), PREAMBLE_TLS);
	cr_assert_eq(d.start[SIDE_SERVER], strlen(sbefore));
	cr_assert_eq(say_bytes(&d, SIDE_CLIENT, fake_hello, sizeof(fake_hello)), PREAMBLE_TLS);
	cr_assert_eq(d.start[SIDE_CLIENT], strlen(before));
	cr_assert_eq(d.p.kind, PREAMBLE_FTP);
}

Test(preamble, ftp_multiline_feat_and_preliminary_reply)
{
	struct dialogue d;

	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_SERVER, "120 wait\r\n220 ftp\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "FEAT\r\n"), PREAMBLE_MORE);
	cr_assert_eq(d.p.kind, PREAMBLE_FTP);
	cr_assert_eq(say(&d, SIDE_SERVER, "211-Features:\r\n AUTH TLS\r\n 234 not an end\r\n211 End\r\n"),
		     PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "AUTH TLS\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, "234 AUTH TLS OK.\r\n"), PREAMBLE_TLS);
	cr_assert_eq(say(&d, SIDE_CLIENT, ""), PREAMBLE_TLS);
	cr_assert_eq(d.start[SIDE_CLIENT], strlen("FEAT\r\nAUTH TLS\r\n"));
}

Test(preamble, ftp_login_in_plaintext)
{
	struct dialogue d;

	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_SERVER, "220 ftp\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "USER anonymous\r\n"), PREAMBLE_NOT_TLS);
}

Test(preamble, imap_preauth_and_refusal)
{
	struct dialogue d;

	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_SERVER, "* PREAUTH hello\r\n"), PREAMBLE_NOT_TLS);

	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_SERVER, "* OK ready\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "a1 STARTTLS\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, "a1 NO [UNAVAILABLE] no TLS here\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "a2 LOGIN user pass\r\n"), PREAMBLE_NOT_TLS);
}

Test(preamble, imap_distinct_tags_and_untagged_lines)
{
	struct dialogue d;
	static const char s1[] = "* OK ready\r\n* CAPABILITY IMAP4rev1 STARTTLS\r\nA001 OK done\r\n";

	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_SERVER, "* OK ready\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "A001 CAPABILITY\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, "* CAPABILITY IMAP4rev1 STARTTLS\r\nA001 OK done\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "A002 STARTTLS\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, "A002 OK Begin TLS negotiation now\r\n"), PREAMBLE_TLS);
	cr_assert_eq(d.start[SIDE_SERVER], strlen(s1) + strlen("A002 OK Begin TLS negotiation now\r\n"));
}

Test(preamble, pop3_capa_then_stls)
{
	struct dialogue d;
	static const char capa[] = "+OK\r\nTOP\r\nSTLS\r\n..dot-stuffed\r\n.\r\n";

	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_SERVER, "+OK POP3 ready\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "CAPA\r\n"), PREAMBLE_MORE);
	/* "+OK" inside the capability list must not count as an answer */
	cr_assert_eq(say(&d, SIDE_SERVER, capa), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "STLS\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, "+OK Begin TLS\r\n"), PREAMBLE_TLS);
	cr_assert_eq(say_bytes(&d, SIDE_CLIENT, fake_hello, sizeof(fake_hello)), PREAMBLE_TLS);
	cr_assert_eq(d.start[SIDE_CLIENT], strlen("CAPA\r\nSTLS\r\n"));
}

Test(preamble, pop3_user_is_plaintext)
{
	struct dialogue d;

	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_SERVER, "+OK POP3 ready\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "USER bob\r\n"), PREAMBLE_NOT_TLS);
}

Test(preamble, xmpp_failure_is_not_tls)
{
	struct dialogue d;

	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_CLIENT, "<?xml version='1.0'?><stream:stream to='example.test' version='1.0' "
					  "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"),
		     PREAMBLE_MORE);
	cr_assert_eq(d.p.kind, PREAMBLE_XMPP);
	cr_assert_eq(say(&d, SIDE_CLIENT, "<starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"></start"),
		     PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "tls>"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>"),
		     PREAMBLE_NOT_TLS);
}

Test(preamble, xmpp_sasl_in_plaintext)
{
	struct dialogue d;

	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_CLIENT, "<stream:stream to='example.test' version='1.0'>"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"),
		     PREAMBLE_NOT_TLS);
}

static const uint8_t pg_gssenc[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30 };
static const uint8_t pg_ssl[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };

Test(preamble, postgres_gssenc_refused_then_ssl)
{
	struct dialogue d;

	dlg_init(&d);
	cr_assert_eq(say_bytes(&d, SIDE_CLIENT, pg_gssenc, 8), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, "N"), PREAMBLE_MORE);
	cr_assert_eq(say_bytes(&d, SIDE_CLIENT, pg_ssl, 8), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, "S"), PREAMBLE_TLS);
	cr_assert_eq(d.start[SIDE_SERVER], 2);
	cr_assert_eq(say_bytes(&d, SIDE_CLIENT, fake_hello, sizeof(fake_hello)), PREAMBLE_TLS);
	cr_assert_eq(d.start[SIDE_CLIENT], 16);
	cr_assert_eq(d.p.kind, PREAMBLE_POSTGRES);
}

Test(preamble, postgres_answers_that_are_not_tls)
{
	struct dialogue d;

	dlg_init(&d);
	cr_assert_eq(say_bytes(&d, SIDE_CLIENT, pg_ssl, 8), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, "N"), PREAMBLE_NOT_TLS);
	dlg_init(&d);
	cr_assert_eq(say_bytes(&d, SIDE_CLIENT, pg_gssenc, 8), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, "G"), PREAMBLE_NOT_TLS, "GSSAPI encryption is not TLS");
	dlg_init(&d);
	cr_assert_eq(say_bytes(&d, SIDE_CLIENT, pg_ssl, 8), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, "E"), PREAMBLE_NOT_TLS);
}

Test(preamble, mysql_client_without_ssl)
{
	struct fixture f;
	struct dialogue d;
	uint8_t resp[4 + 40] = { 40, 0, 0, 1, 0x05, 0xa6, 0x0f, 0x00 }; /* no CLIENT_SSL */
	uint8_t greet_len[3];

	load_fixture("mysql", &f);
	memcpy(greet_len, f.data[SIDE_SERVER], 3);
	dlg_init(&d);
	cr_assert_eq(say_bytes(&d, SIDE_SERVER, f.data[SIDE_SERVER], 4 + (size_t)greet_len[0]), PREAMBLE_MORE);
	cr_assert_eq(d.p.kind, PREAMBLE_MYSQL);
	cr_assert_eq(say_bytes(&d, SIDE_CLIENT, resp, sizeof(resp)), PREAMBLE_NOT_TLS);
	free_fixture(&f);
}

Test(preamble, connect_407_then_retry_on_same_connection)
{
	struct dialogue d;
	static const char req1[] = "CONNECT mtls.example.test:443 HTTP/1.1\r\nHost: mtls.example.test:443\r\n\r\n";
	static const char resp1[] = "HTTP/1.1 407 Proxy Authentication Required\r\n"
				    "Proxy-Authenticate: Basic realm=\"proxy\"\r\n"
				    "Content-Length: 12\r\n\r\n<html></html";
	static const char req2[] = "CONNECT mtls.example.test:443 HTTP/1.1\r\nHost: mtls.example.test:443\r\n"
				   "Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=\r\n\r\n";
	static const char resp2[] = "HTTP/1.1 200 Connection established\r\n\r\n";

	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_CLIENT, req1), PREAMBLE_MORE);
	cr_assert_eq(d.p.kind, PREAMBLE_HTTP_CONNECT);
	cr_assert_str_eq(d.p.target, "mtls.example.test:443");
	cr_assert_eq(say(&d, SIDE_SERVER, resp1), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, req2), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, resp2), PREAMBLE_TLS);
	cr_assert_eq(d.start[SIDE_SERVER], strlen(resp1) + strlen(resp2));
	cr_assert_eq(say_bytes(&d, SIDE_CLIENT, fake_hello, sizeof(fake_hello)), PREAMBLE_TLS);
	cr_assert_eq(d.start[SIDE_CLIENT], strlen(req1) + strlen(req2));
}

Test(preamble, connect_refused)
{
	struct dialogue d;

	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_CLIENT, "CONNECT blocked.example.test:443 HTTP/1.1\r\n\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"), PREAMBLE_NOT_TLS);
	cr_assert_eq(say_bytes(&d, SIDE_CLIENT, fake_hello, sizeof(fake_hello)), PREAMBLE_NOT_TLS);
}

Test(preamble, connect_then_other_method)
{
	struct dialogue d;

	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_CLIENT, "CONNECT a.example.test:443 HTTP/1.1\r\n\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_SERVER, "HTTP/1.1 407 Auth\r\nContent-Length: 0\r\n\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "GET http://a.example.test/ HTTP/1.1\r\n\r\n"), PREAMBLE_NOT_TLS);
}

Test(preamble, long_line_and_full_buffer)
{
	static struct dialogue d;
	static uint8_t junk[PREAMBLE_MAX + 1];

	/* a greeting that never ends its line */
	dlg_init(&d);
	memset(junk, 'x', sizeof(junk));
	cr_assert_eq(say(&d, SIDE_SERVER, "220 "), PREAMBLE_MORE);
	cr_assert_eq(say_bytes(&d, SIDE_SERVER, junk, 9000), PREAMBLE_NOT_TLS);

	/* harmless commands until the buffer is full */
	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_SERVER, "220 ok\r\n"), PREAMBLE_MORE);
	cr_assert_eq(say(&d, SIDE_CLIENT, "NOOP\r\n"), PREAMBLE_MORE);
	for (int i = 0; i < 70 && d.last[SIDE_CLIENT] == PREAMBLE_MORE; i++)
		say(&d, SIDE_CLIENT, "NOOP\r\n");
	cr_assert_eq(d.last[SIDE_CLIENT], PREAMBLE_NOT_TLS, "too many commands before STARTTLS");

	/* more than PREAMBLE_MAX bytes at once */
	dlg_init(&d);
	cr_assert_eq(say(&d, SIDE_CLIENT, "<?xml version='1.0'?>"), PREAMBLE_MORE);
	memset(junk, ' ', sizeof(junk));
	cr_assert_eq(say_bytes(&d, SIDE_CLIENT, junk, sizeof(junk) - 10), PREAMBLE_NOT_TLS);
}

/* A run's answer is one of the three, and a TLS start lies inside what
 * the side sent. */
static void expect_answer(const char *name, const struct fixture *f, const struct outcome *o, size_t *refused)
{
	size_t s;

	for (s = 0; s < 2; s++) {
		cr_assert(o->status[s] == PREAMBLE_MORE || o->status[s] == PREAMBLE_TLS || o->status[s] == PREAMBLE_NOT_TLS,
			  "%s: side %zu answered %d", name, s, (int)o->status[s]);
		if (o->status[s] == PREAMBLE_TLS)
			cr_assert_leq(o->start[s], f->len[s], "%s: side %zu starts TLS past its bytes", name, s);
		*refused += o->status[s] == PREAMBLE_NOT_TLS;
	}
}

/* Every one-byte corruption of every fixture's first 400 bytes ends in an
 * answer without reading out of bounds (the sanitizer build checks the
 * reads), and corruptions of the plaintext exchange are noticed: some end
 * in not TLS. */
Test(preamble, corrupted_fixtures_terminate)
{
	static const char *const names[] = {
		"postgres", "postgres-no-ssl", "mysql", "mysql-no-ssl", "smtp", "smtp-plain", "imap", "pop3",
		"ftp", "ftp-s-client", "xmpp", "xmpp-s2s", "connect", "connect-407-close", "connect-auth",
	};
	struct fixture f;
	struct outcome o;
	size_t n, i, s, refused;
	uint8_t keep;

	for (n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
		load_fixture(names[n], &f);
		refused = 0;
		for (s = 0; s < 2; s++) {
			for (i = 0; i < f.len[s] && i < 400; i++) {
				keep = f.data[s][i];
				f.data[s][i] ^= (uint8_t)(0x5a + i);
				feed_chunks(&f, &o, 0);
				expect_answer(names[n], &f, &o, &refused);
				feed_whole(&f, &o);
				expect_answer(names[n], &f, &o, &refused);
				f.data[s][i] = keep;
			}
		}
		cr_expect_gt(refused, 0, "%s: no corruption was noticed", names[n]);
		free_fixture(&f);
	}
}

Test(preamble, kind_names)
{
	cr_assert_null(preamble_kind_name(PREAMBLE_NONE));
	cr_assert_str_eq(preamble_kind_name(PREAMBLE_HTTP_CONNECT), "HTTP CONNECT");
	cr_assert_str_eq(preamble_kind_name(PREAMBLE_SMTP), "SMTP STARTTLS");
	cr_assert_not_null(preamble_kind_name(PREAMBLE_MYSQL));
}

/* The proxy's own reading of a CONNECT request (--connect). */
static enum connect_parse parse_connect(const char *text, struct connect_request *req)
{
	struct cursor c;

	cursor_init(&c, (const uint8_t *)text, strlen(text));
	return preamble_parse_connect(&c, req);
}

Test(preamble, connect_request_as_a_proxy_reads_it)
{
	static const char full[] = "CONNECT server.example:443 HTTP/1.1\r\nHost: server.example:443\r\n"
				   "Proxy-Authorization: Basic dTpw\r\n\r\n\x16\x03\x01";
	struct connect_request req;
	char big[CONNECT_HEAD_MAX + 64];
	size_t i;

	cr_assert_eq(parse_connect(full, &req), CONNECT_OK);
	cr_assert_str_eq(req.target, "server.example:443");
	cr_assert_eq(req.head_len, strlen(full) - 3, "the tunnel starts after the blank line");
	/* a bare LF ends lines too */
	cr_assert_eq(parse_connect("CONNECT [2001:db8::1]:8443 HTTP/1.0\n\n", &req), CONNECT_OK);
	cr_assert_str_eq(req.target, "[2001:db8::1]:8443");
	/* every proper prefix wants more */
	for (i = 0; i < strlen(full) - 3; i++) {
		char part[sizeof(full)];

		memcpy(part, full, i);
		part[i] = '\0';
		cr_assert_eq(parse_connect(part, &req), CONNECT_MORE, "prefix of %zu bytes", i);
	}
	cr_assert_eq(parse_connect("GET / HTTP/1.1\r\n\r\n", &req), CONNECT_BAD);
	cr_assert_not_null(strstr(req.error, "not a CONNECT request"));
	cr_assert_eq(parse_connect("CONNECT host:443\r\n\r\n", &req), CONNECT_BAD, "no HTTP version");
	cr_assert_eq(parse_connect("CONNECT ho\x01st:443 HTTP/1.1\r\n\r\n", &req), CONNECT_BAD, "control byte");
	/* a request line or header block that never ends is refused at 8 KiB */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(parse_connect(big, &req), CONNECT_BAD);
	cr_assert_not_null(strstr(req.error, "8192"));
	memcpy(big, "CONNECT h:1 HTTP/1.1\r\nX: ", 25);
	cr_assert_eq(parse_connect(big, &req), CONNECT_BAD);
	cr_assert_not_null(strstr(req.error, "8192"));
}
