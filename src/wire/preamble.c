/* preamble: finds where TLS starts on each side of a connection that may
 * begin in plaintext (see preamble.h).
 *
 * The model is a dialogue: the client sends requests (SMTP and FTP
 * commands, IMAP and POP3 commands, CONNECT requests, PostgreSQL
 * SSLRequests), the server answers them in order, and one request asks for
 * TLS.  Each side is parsed as far as its own bytes allow and the parser
 * remembers where it stopped (pos), so feeding a side byte by byte costs no
 * more than feeding it whole.  The server's parser waits before an answer
 * whose request it has not seen yet; the client's parser waits after the
 * request asking for TLS until the server has answered it.  The result is
 * therefore the same whatever the order of the calls, as long as the side
 * that spoke first is examined first (that is how the protocol is told).
 *
 * A client that goes on in plaintext (logs in, sends mail, quits) ends the
 * search: the connection is not TLS.  A refused upgrade does not, since
 * clients retry (curl asks FTP servers for AUTH SSL, then AUTH TLS; an HTTP
 * client answers 407 with credentials). */
#include "config.h"

#include "wire/preamble.h"

#include <string.h>

enum proto {
	P_UNKNOWN = 0,
	P_NOT_TLS,
	P_DIRECT,
	P_CONNECT,
	P_LINE220,     /* "220" greeting: SMTP or FTP, told by the client's commands */
	P_SMTP,
	P_FTP,
	P_IMAP,
	P_POP3,
	P_XMPP,
	P_POSTGRES,
	P_MYSQL,
};

enum match { M_NO, M_PARTIAL, M_YES };

/* Longest plaintext line or markup tag followed (HTTP headers carrying
 * Kerberos tokens are the long ones). */
#define LINE_MAX_LEN 8192
/* Requests before the one asking for TLS (one bit each in `flags`). */
#define MAX_REQUESTS 64

#define PG_SSL_REQUEST 80877103u
#define PG_GSSENC_REQUEST 80877104u
#define MYSQL_CLIENT_SSL 0x0800u

static const char XMPP_TLS_NS[] = "urn:ietf:params:xml:ns:xmpp-tls";

void preamble_init(struct preamble *p)
{
	memset(p, 0, sizeof(*p));
	p->kind = PREAMBLE_NONE;
	p->state = P_UNKNOWN;
}

const char *preamble_kind_name(enum preamble_kind k)
{
	switch (k) {
	case PREAMBLE_HTTP_CONNECT: return "HTTP CONNECT";
	case PREAMBLE_SMTP: return "SMTP STARTTLS";
	case PREAMBLE_IMAP: return "IMAP STARTTLS";
	case PREAMBLE_POP3: return "POP3 STLS";
	case PREAMBLE_FTP: return "FTP AUTH TLS";
	case PREAMBLE_XMPP: return "XMPP STARTTLS";
	case PREAMBLE_POSTGRES: return "PostgreSQL SSLRequest";
	case PREAMBLE_MYSQL: return "MySQL SSL";
	case PREAMBLE_LDAP: return "LDAP StartTLS";
	case PREAMBLE_NONE: break;
	}
	return NULL;
}

static void set_proto(struct preamble *p, enum proto proto)
{
	static const enum preamble_kind kinds[] = {
		[P_CONNECT] = PREAMBLE_HTTP_CONNECT, [P_SMTP] = PREAMBLE_SMTP,
		[P_FTP] = PREAMBLE_FTP, [P_IMAP] = PREAMBLE_IMAP,
		[P_POP3] = PREAMBLE_POP3, [P_XMPP] = PREAMBLE_XMPP,
		[P_POSTGRES] = PREAMBLE_POSTGRES, [P_MYSQL] = PREAMBLE_MYSQL,
	};

	p->state = proto;
	if (kinds[proto] != PREAMBLE_NONE)
		p->kind = kinds[proto];
}

static void fail(struct preamble *p)
{
	p->state = P_NOT_TLS;
}

/* Marks everything before the cursor's position as parsed. */
static void consumed(struct preamble *p, enum side s, const struct cursor *in, size_t total)
{
	p->pos[s] = total - cursor_len(in);
}

static void start_tls(struct preamble *p, enum side s, size_t at)
{
	p->started[s] = 1;
	p->start[s] = at;
}

/* The server agreed, its TLS starting at server_at: the client's starts
 * right after the request that asked. */
static void accept_upgrade(struct preamble *p, size_t server_at)
{
	p->accepted = 1;
	p->waiting = 0;
	start_tls(p, SIDE_SERVER, server_at);
	start_tls(p, SIDE_CLIENT, p->upgrade_end);
}

/* Records a request of the client; asks_tls makes the client wait for its
 * answer. */
static void add_request(struct preamble *p, int asks_tls, int flag)
{
	unsigned idx = p->units[SIDE_CLIENT]++;

	if (flag)
		p->flags |= 1ull << idx;
	if (asks_tls) {
		p->waiting = 1;
		p->upgrade = idx;
		p->upgrade_end = p->pos[SIDE_CLIENT];
	}
}

/* 1 when the answer the server is about to give is to a request already
 * seen. */
static int request_known(const struct preamble *p)
{
	return p->units[SIDE_SERVER] < p->units[SIDE_CLIENT];
}

static int request_flag(const struct preamble *p, unsigned idx)
{
	return (p->flags >> idx) & 1;
}

/* ---- small readers over the cursor ---- */

static enum match match_prefix(const struct cursor *c, const char *lit, int nocase)
{
	size_t n = strlen(lit);

	if (cursor_len(c) >= n)
		return cursor_starts_with(c, lit, n, nocase) ? M_YES : M_NO;
	return cursor_starts_with(c, lit, cursor_len(c), nocase) ? M_PARTIAL : M_NO;
}

/* Takes one line off the front of *in; *line is its text without the CRLF
 * (or bare LF).  0 while the line is incomplete. */
static int take_line(struct cursor *in, struct cursor *line)
{
	struct cursor whole, text;
	size_t at;
	uint8_t last;

	if (!cursor_find(in, "\n", 1, &at) || !cursor_get_bytes(in, &whole, at + 1) ||
	    !cursor_get_bytes(&whole, &text, at))
		return 0;
	*line = text;
	if (at > 0 && cursor_peek_u8(&text, at - 1, &last) && last == '\r')
		return cursor_get_bytes(&text, line, at - 1);
	return 1;
}

/* An incomplete line (or tag) longer than any we follow is not a preamble. */
static void check_pending(struct preamble *p, const struct cursor *in)
{
	if (cursor_len(in) > LINE_MAX_LEN)
		fail(p);
}

static void skip_blanks(struct cursor *c)
{
	uint8_t b;

	while (cursor_peek_u8(c, 0, &b) && (b == ' ' || b == '\t'))
		if (!cursor_skip(c, 1))
			break;
}

/* Splits the next blank-delimited word off *line. */
static int take_word(struct cursor *line, struct cursor *word)
{
	size_t n = 0;
	uint8_t b;

	skip_blanks(line);
	while (cursor_peek_u8(line, n, &b) && b != ' ' && b != '\t')
		n++;
	return n > 0 && cursor_get_bytes(line, word, n);
}

static int word_is(const struct cursor *w, const char *s)
{
	size_t n = strlen(s);

	return cursor_len(w) == n && cursor_starts_with(w, s, n, 1);
}

/* 1 if the text contains `s`, ASCII case ignored. */
static int contains_nocase(const struct cursor *text, const char *s)
{
	struct cursor c = *text;
	size_t n = strlen(s);

	while (cursor_len(&c) >= n) {
		if (cursor_starts_with(&c, s, n, 1))
			return 1;
		if (!cursor_skip(&c, 1))
			break;
	}
	return 0;
}

static int take_digits(struct cursor *c, size_t max_digits, size_t *value)
{
	size_t n = 0, v = 0;
	uint8_t b;

	while (n < max_digits && cursor_peek_u8(c, 0, &b) && b >= '0' && b <= '9') {
		v = v * 10 + (size_t)(b - '0');
		n++;
		if (!cursor_skip(c, 1))
			return 0;
	}
	*value = v;
	return n > 0;
}

/* ---- telling the protocol from the first bytes ---- */

/* Direct TLS: a handshake record header, or an SSLv2-format ClientHello
 * (RFC 5246 appendix E.2: two-byte length with the high bit set, message
 * type 1, then the version). */
static enum match match_tls_record(const struct cursor *c)
{
	uint8_t b[5];
	struct cursor look = *c;
	size_t n = cursor_len(c) < 5 ? cursor_len(c) : 5;
	uint16_t len;

	if (!cursor_copy_bytes(&look, b, n))
		return M_NO;
	if (n > 0 && b[0] == 0x16) {
		if ((n > 1 && b[1] != 0x03) || (n > 2 && b[2] > 0x04))
			return M_NO;
		if (n < 5)
			return M_PARTIAL;
		len = (uint16_t)(b[3] << 8 | b[4]);
		return len > 0 && len <= 16384 + 2048 ? M_YES : M_NO;
	}
	if (n > 0 && (b[0] & 0x80)) {
		if (n > 2 && b[2] != 0x01)
			return M_NO;
		if (n > 3 && b[3] != 0x00 && b[3] != 0x03)
			return M_NO;
		if (n > 4 && ((b[3] == 0x00 && b[4] != 0x02) || (b[3] == 0x03 && b[4] > 0x04)))
			return M_NO;
		return n < 5 ? M_PARTIAL : M_YES;
	}
	return n == 0 ? M_PARTIAL : M_NO;
}

/* PostgreSQL: int32 length 8, int32 request code (protocol section 55.2.10). */
static enum match match_pg_request(const struct cursor *c, uint32_t *code)
{
	static const uint8_t head[6] = { 0, 0, 0, 8, 0x04, 0xd2 };
	struct cursor look = *c;
	size_t n = cursor_len(c) < sizeof(head) ? cursor_len(c) : sizeof(head);

	if (!cursor_starts_with(c, head, n, 0))
		return M_NO;
	if (n < sizeof(head) || cursor_len(c) < 8)
		return M_PARTIAL;
	if (!cursor_skip(&look, 4) || !cursor_get_u32(&look, code))
		return M_NO;
	return *code == PG_SSL_REQUEST || *code == PG_GSSENC_REQUEST ? M_YES : M_NO;
}

/* MySQL initial handshake: 3-byte little-endian length, sequence 0,
 * protocol version 10. */
static enum match match_mysql_greeting(const struct cursor *c)
{
	uint8_t b[5];
	struct cursor look = *c;
	size_t n = cursor_len(c) < 5 ? cursor_len(c) : 5;
	size_t len;

	if (!cursor_copy_bytes(&look, b, n))
		return M_NO;
	if ((n > 1 && b[1] > 0x04) || (n > 2 && b[2] != 0) || (n > 3 && b[3] != 0) ||
	    (n > 4 && b[4] != 10))
		return M_NO;
	if (n < 5)
		return M_PARTIAL;
	len = (size_t)b[0] | (size_t)b[1] << 8;
	return len >= 16 && len <= 1024 ? M_YES : M_NO;
}

/* SMTP and FTP replies: three digits, then ' ', '-' or end of line. */
static enum match match_reply_line(const struct cursor *c)
{
	size_t i;
	uint8_t b;

	for (i = 0; i < 4; i++) {
		if (!cursor_peek_u8(c, i, &b))
			return M_PARTIAL;
		if (i < 3 ? (b < '0' || b > '9') : (b != ' ' && b != '-' && b != '\r'))
			return M_NO;
	}
	return M_YES;
}

static void classify(struct preamble *p, enum side from, const struct cursor *stream)
{
	enum match m[6];
	uint32_t pg_code = 0;
	size_t i;
	int partial = 0;

	if (from == SIDE_CLIENT) {
		m[0] = match_tls_record(stream);
		m[1] = match_prefix(stream, "CONNECT ", 0);
		m[2] = match_pg_request(stream, &pg_code);
		m[3] = match_prefix(stream, "<?xml", 0);
		m[4] = match_prefix(stream, "<stream:stream", 0);
		m[5] = M_NO;
		if (m[0] == M_YES) {
			p->state = P_DIRECT;
			start_tls(p, SIDE_CLIENT, 0);
			start_tls(p, SIDE_SERVER, 0);
			return;
		}
		if (m[1] == M_YES)
			set_proto(p, P_CONNECT);
		else if (m[2] == M_YES)
			set_proto(p, P_POSTGRES);
		else if (m[3] == M_YES || m[4] == M_YES)
			set_proto(p, P_XMPP);
	} else {
		m[0] = match_reply_line(stream);
		m[1] = match_prefix(stream, "* ", 0);
		m[2] = match_prefix(stream, "+OK", 0);
		m[3] = match_mysql_greeting(stream);
		m[4] = m[5] = M_NO;
		if (m[0] == M_YES)
			p->state = P_LINE220;
		else if (m[1] == M_YES)
			set_proto(p, P_IMAP);
		else if (m[2] == M_YES)
			set_proto(p, P_POP3);
		else if (m[3] == M_YES)
			set_proto(p, P_MYSQL);
	}
	if (p->state != P_UNKNOWN)
		return;
	for (i = 0; i < 6; i++)
		partial |= m[i] == M_PARTIAL;
	if (!partial)
		fail(p);
}

/* ---- SMTP and FTP (RFC 5321 4.2, RFC 959 4.2, RFC 3207, RFC 4217) ---- */

static void line220_client(struct preamble *p, struct cursor *in, size_t total)
{
	struct cursor look, line, verb, arg;
	int asks_tls;

	while (!p->waiting && p->state != P_NOT_TLS) {
		look = *in;
		if (!take_line(&look, &line)) {
			check_pending(p, in);
			return;
		}
		if (p->units[SIDE_CLIENT] >= MAX_REQUESTS) {
			fail(p);
			return;
		}
		asks_tls = 0;
		if (!take_word(&line, &verb)) {
			/* an empty line is answered like any bad command */
		} else if (word_is(&verb, "EHLO") || word_is(&verb, "HELO") || word_is(&verb, "LHLO")) {
			if (p->state == P_LINE220)
				set_proto(p, P_SMTP);
		} else if (word_is(&verb, "STARTTLS") && p->state != P_FTP) {
			set_proto(p, P_SMTP);
			asks_tls = 1;
		} else if (word_is(&verb, "AUTH")) {
			/* FTP's AUTH TLS / AUTH SSL (and TLS-C, TLS-P); in SMTP,
			 * AUTH is a plaintext SASL login */
			if (p->state == P_SMTP || !take_word(&line, &arg) ||
			    (!cursor_starts_with(&arg, "TLS", 3, 1) && !cursor_starts_with(&arg, "SSL", 3, 1))) {
				fail(p);
				return;
			}
			set_proto(p, P_FTP);
			asks_tls = 1;
		} else if (word_is(&verb, "FEAT") || word_is(&verb, "SYST") || word_is(&verb, "OPTS")) {
			if (p->state == P_LINE220)
				set_proto(p, P_FTP);
		} else if (word_is(&verb, "MAIL") || word_is(&verb, "RCPT") || word_is(&verb, "DATA") ||
			   word_is(&verb, "BDAT") || word_is(&verb, "QUIT") || word_is(&verb, "USER") ||
			   word_is(&verb, "PASS") || word_is(&verb, "ACCT")) {
			fail(p);
			return;
		}
		*in = look;
		consumed(p, SIDE_CLIENT, in, total);
		add_request(p, asks_tls, 0);
	}
}

/* Reads the code of a reply line; *sep is ' ', '-', or 0 at end of line. */
static int reply_code(const struct cursor *line, unsigned *code, uint8_t *sep)
{
	struct cursor c = *line;
	size_t v;

	if (match_reply_line(&c) == M_NO || !take_digits(&c, 3, &v) || cursor_len(line) - cursor_len(&c) != 3)
		return 0;
	*code = (unsigned)v;
	if (!cursor_peek_u8(&c, 0, sep))
		*sep = 0;
	return 1;
}

static void line220_server(struct preamble *p, struct cursor *in, size_t total)
{
	struct cursor look, line;
	unsigned code = 0, idx;
	uint8_t sep = 0;
	int ok;

	while (p->state != P_NOT_TLS) {
		look = *in;
		if (!take_line(&look, &line)) {
			check_pending(p, in);
			return;
		}
		ok = reply_code(&line, &code, &sep);
		if (p->code) {
			/* inside a multi-line reply: only "<same code> " ends it */
			if (!ok || code != p->code || sep == '-') {
				*in = look;
				consumed(p, SIDE_SERVER, in, total);
				continue;
			}
		} else if (!ok) {
			fail(p);
			return;
		} else if (sep == '-') {
			p->code = code;
			*in = look;
			consumed(p, SIDE_SERVER, in, total);
			continue;
		}
		/* the last line of a reply */
		if (code >= 200 && p->greeted && !request_known(p))
			return;
		p->code = 0;
		*in = look;
		consumed(p, SIDE_SERVER, in, total);
		if (code < 200)
			continue; /* preliminary reply: another follows */
		if (!p->greeted) {
			if (code != 220) {
				fail(p);
				return;
			}
			p->greeted = 1;
			continue;
		}
		idx = p->units[SIDE_SERVER]++;
		if (p->waiting && idx == p->upgrade) {
			if ((p->state == P_SMTP && code == 220) || (p->state == P_FTP && code == 234)) {
				accept_upgrade(p, p->pos[SIDE_SERVER]);
				return;
			}
			p->waiting = 0; /* refused: the client may try again */
		}
	}
}

/* ---- IMAP (RFC 9051 6.2.1) and POP3 (RFC 2595 4) ---- */

static void imap_pop3_client(struct preamble *p, struct cursor *in, size_t total)
{
	struct cursor look, line, tag, verb;
	int asks_tls, multi, imap = p->state == P_IMAP;

	while (!p->waiting && p->state != P_NOT_TLS) {
		look = *in;
		if (!take_line(&look, &line)) {
			check_pending(p, in);
			return;
		}
		if (p->units[SIDE_CLIENT] >= MAX_REQUESTS) {
			fail(p);
			return;
		}
		asks_tls = multi = 0;
		if (imap && !take_word(&line, &tag)) {
			/* no tag: the server answers BAD */
		} else if (!take_word(&line, &verb)) {
			/* likewise */
		} else if (imap ? word_is(&verb, "STARTTLS") : word_is(&verb, "STLS")) {
			asks_tls = 1;
		} else if (!imap && word_is(&verb, "CAPA")) {
			multi = 1;
		} else if (imap ? (word_is(&verb, "LOGIN") || word_is(&verb, "AUTHENTICATE") ||
				   word_is(&verb, "LOGOUT") || word_is(&verb, "SELECT") ||
				   word_is(&verb, "EXAMINE"))
			   : (word_is(&verb, "USER") || word_is(&verb, "PASS") || word_is(&verb, "APOP") ||
			      word_is(&verb, "AUTH") || word_is(&verb, "QUIT"))) {
			fail(p);
			return;
		}
		*in = look;
		consumed(p, SIDE_CLIENT, in, total);
		add_request(p, asks_tls, multi);
	}
}

/* IMAP: untagged ("* ") and continuation ("+") lines are not answers;
 * a tagged line completes the oldest command. */
static void imap_server(struct preamble *p, struct cursor *in, size_t total)
{
	struct cursor look, line, tag, status;
	unsigned idx;

	while (p->state != P_NOT_TLS) {
		look = *in;
		if (!take_line(&look, &line)) {
			check_pending(p, in);
			return;
		}
		if (!p->greeted) {
			/* "* PREAUTH" forbids STARTTLS, "* BYE" refuses service */
			if (!cursor_starts_with(&line, "* OK", 4, 1)) {
				fail(p);
				return;
			}
			p->greeted = 1;
		} else if (!cursor_starts_with(&line, "*", 1, 0) && !cursor_starts_with(&line, "+", 1, 0)) {
			if (!request_known(p))
				return;
			idx = p->units[SIDE_SERVER]++;
			if (p->waiting && idx == p->upgrade) {
				*in = look;
				consumed(p, SIDE_SERVER, in, total);
				if (take_word(&line, &tag) && take_word(&line, &status) && word_is(&status, "OK")) {
					accept_upgrade(p, p->pos[SIDE_SERVER]);
					return;
				}
				p->waiting = 0;
				continue;
			}
		}
		*in = look;
		consumed(p, SIDE_SERVER, in, total);
	}
}

/* POP3: "+OK" or "-ERR" lines; a +OK to CAPA is followed by lines up to a
 * lone ".". */
static void pop3_server(struct preamble *p, struct cursor *in, size_t total)
{
	struct cursor look, line;
	unsigned idx;
	int ok;

	while (p->state != P_NOT_TLS) {
		look = *in;
		if (!take_line(&look, &line)) {
			check_pending(p, in);
			return;
		}
		if (p->code) {
			/* inside a multi-line answer */
			if (cursor_len(&line) == 1 && cursor_starts_with(&line, ".", 1, 0))
				p->code = 0;
		} else {
			ok = cursor_starts_with(&line, "+OK", 3, 0);
			if (!ok && !cursor_starts_with(&line, "-ERR", 4, 0)) {
				fail(p);
				return;
			}
			if (!p->greeted) {
				if (!ok) {
					fail(p);
					return;
				}
				p->greeted = 1;
			} else {
				if (!request_known(p))
					return;
				idx = p->units[SIDE_SERVER]++;
				if (ok && request_flag(p, idx))
					p->code = 1;
				if (p->waiting && idx == p->upgrade) {
					*in = look;
					consumed(p, SIDE_SERVER, in, total);
					if (ok) {
						accept_upgrade(p, p->pos[SIDE_SERVER]);
						return;
					}
					p->waiting = 0;
					continue;
				}
			}
		}
		*in = look;
		consumed(p, SIDE_SERVER, in, total);
	}
}

/* ---- HTTP CONNECT (RFC 9110 9.3.6) ---- */

/* "CONNECT host:port HTTP/1.x": the target, NUL-terminated, into target
 * (size 300).  0 when the line is not such a request. */
static int connect_request_line(struct cursor *line, char *target, size_t size)
{
	struct cursor method, t, version;
	size_t i;
	uint8_t b;

	if (!take_word(line, &method) || !cursor_starts_with(&method, "CONNECT", 7, 0) ||
	    cursor_len(&method) != 7 || !take_word(line, &t) || !take_word(line, &version) ||
	    !cursor_starts_with(&version, "HTTP/1.", 7, 0) || cursor_len(&t) >= size)
		return 0;
	for (i = 0; cursor_peek_u8(&t, i, &b); i++)
		if (b < 0x21 || b == 0x7f)
			return 0;
	memset(target, 0, size);
	return cursor_copy_bytes(&t, (uint8_t *)target, cursor_len(&t));
}

static void connect_client(struct preamble *p, struct cursor *in, size_t total)
{
	struct cursor look, line;

	while (!p->waiting && p->state != P_NOT_TLS) {
		look = *in;
		if (!take_line(&look, &line)) {
			check_pending(p, in);
			return;
		}
		if (p->in_message[SIDE_CLIENT]) {
			*in = look;
			consumed(p, SIDE_CLIENT, in, total);
			if (cursor_len(&line) == 0) {
				/* end of the request's header block */
				p->in_message[SIDE_CLIENT] = 0;
				add_request(p, 1, 0);
			}
			continue;
		}
		if (p->units[SIDE_CLIENT] >= MAX_REQUESTS ||
		    !connect_request_line(&line, p->target, sizeof(p->target))) {
			fail(p);
			return;
		}
		p->in_message[SIDE_CLIENT] = 1;
		*in = look;
		consumed(p, SIDE_CLIENT, in, total);
	}
}

enum connect_parse preamble_parse_connect(const struct cursor *in, struct connect_request *req)
{
	struct cursor look = *in, line;
	size_t start = cursor_len(in);

	memset(req, 0, sizeof(*req));
	if (!take_line(&look, &line)) {
		if (cursor_len(in) < CONNECT_HEAD_MAX)
			return CONNECT_MORE;
		req->error = "request line longer than 8192 bytes";
		return CONNECT_BAD;
	}
	if (!connect_request_line(&line, req->target, sizeof(req->target))) {
		req->error = "not a CONNECT request (expected 'CONNECT host:port HTTP/1.1')";
		return CONNECT_BAD;
	}
	for (;;) {
		if (!take_line(&look, &line)) {
			if (cursor_len(in) >= CONNECT_HEAD_MAX) {
				req->error = "request header block longer than 8192 bytes";
				return CONNECT_BAD;
			}
			return CONNECT_MORE;
		}
		if (cursor_len(&line) == 0)
			break;
	}
	req->head_len = start - cursor_len(&look);
	return CONNECT_OK;
}

static void connect_header(struct preamble *p, struct cursor *line)
{
	struct cursor name, value;
	size_t at, len;

	if (!cursor_find(line, ":", 1, &at) || !cursor_get_bytes(line, &name, at) || !cursor_skip(line, 1))
		return;
	value = *line;
	skip_blanks(&value);
	if (word_is(&name, "Content-Length")) {
		if (take_digits(&value, 9, &len)) {
			p->http_length_known = 1;
			p->http_length = len;
		}
	} else if (word_is(&name, "Connection") || word_is(&name, "Proxy-Connection")) {
		if (contains_nocase(&value, "close"))
			p->http_close = 1;
	} else if (word_is(&name, "Transfer-Encoding")) {
		p->http_close = 1; /* a chunked refusal: not followed here */
	}
}

static void connect_server(struct preamble *p, struct cursor *in, size_t total)
{
	struct cursor look, line, version, status;
	size_t code, n;
	unsigned idx;

	while (p->state != P_NOT_TLS) {
		if (p->http_skip) {
			/* the body of a 407 before the client's next attempt */
			n = cursor_len(in) < p->http_skip ? cursor_len(in) : p->http_skip;
			if (!cursor_skip(in, n))
				return;
			p->http_skip -= n;
			consumed(p, SIDE_SERVER, in, total);
			if (p->http_skip)
				return;
		}
		look = *in;
		if (!take_line(&look, &line)) {
			check_pending(p, in);
			return;
		}
		if (!p->in_message[SIDE_SERVER]) {
			if (!take_word(&line, &version) || !cursor_starts_with(&version, "HTTP/1.", 7, 0) ||
			    cursor_len(&version) != 8 || !take_word(&line, &status) ||
			    !take_digits(&status, 3, &code) || cursor_len(&status) != 0 || code < 100) {
				fail(p);
				return;
			}
			p->in_message[SIDE_SERVER] = 1;
			p->http_status = (int)code;
			p->http_close = cursor_starts_with(&version, "HTTP/1.0", 8, 0);
			p->http_length_known = 0;
			p->http_length = 0;
		} else if (cursor_len(&line) != 0) {
			connect_header(p, &line);
		} else if (p->http_status < 200) {
			p->in_message[SIDE_SERVER] = 0; /* interim response */
		} else {
			if (!request_known(p))
				return;
			*in = look;
			consumed(p, SIDE_SERVER, in, total);
			p->in_message[SIDE_SERVER] = 0;
			idx = p->units[SIDE_SERVER]++;
			if (p->http_status < 300 && p->waiting && idx == p->upgrade) {
				accept_upgrade(p, p->pos[SIDE_SERVER]);
				return;
			}
			/* Only a 407 with a delimited body on a connection kept
			 * open leaves room for a second CONNECT. */
			if (p->http_status != 407 || p->http_close || !p->http_length_known ||
			    p->http_length > PREAMBLE_MAX) {
				fail(p);
				return;
			}
			p->http_skip = p->http_length;
			p->waiting = 0;
			continue;
		}
		*in = look;
		consumed(p, SIDE_SERVER, in, total);
	}
}

/* ---- XMPP (RFC 6120 5.4) ---- */

/* Length of the markup tag at the front of *in (which starts with '<'),
 * through its '>', quoted attribute values honoured.  0 while incomplete. */
static int tag_len(const struct cursor *in, size_t *n)
{
	uint8_t b, quote = 0;
	size_t i;

	for (i = 1; cursor_peek_u8(in, i, &b); i++) {
		if (quote) {
			if (b == quote)
				quote = 0;
		} else if (b == '"' || b == '\'') {
			quote = b;
		} else if (b == '>') {
			*n = i + 1;
			return 1;
		}
	}
	return 0;
}

struct xml_tag {
	struct cursor whole;  /* "<...>" */
	struct cursor name;   /* without '<' and the '/' of an end tag */
	int end_tag;          /* "</name>" */
	int empty;            /* "<name .../>" */
};

/* Takes the next tag off *in, skipping the text before it.  0 while the
 * tag is incomplete (*in then starts at its '<'). */
static int take_tag(struct cursor *in, struct xml_tag *t)
{
	struct cursor body;
	size_t at, n, i = 0;
	uint8_t b;

	if (!cursor_find(in, "<", 1, &at))
		at = cursor_len(in);
	if (!cursor_skip(in, at) || !tag_len(in, &n) || !cursor_get_bytes(in, &t->whole, n))
		return 0;
	body = t->whole;
	if (!cursor_skip(&body, 1))
		return 0;
	t->end_tag = cursor_starts_with(&body, "/", 1, 0);
	if (t->end_tag && !cursor_skip(&body, 1))
		return 0;
	t->empty = cursor_peek_u8(&t->whole, n - 2, &b) && b == '/';
	while (cursor_peek_u8(&body, i, &b) && b != ' ' && b != '\t' && b != '\r' && b != '\n' &&
	       b != '/' && b != '>')
		i++;
	return cursor_get_bytes(&body, &t->name, i);
}

static int tag_is(const struct xml_tag *t, const char *name)
{
	size_t n = strlen(name);

	return cursor_len(&t->name) == n && cursor_starts_with(&t->name, name, n, 0);
}

static int tag_in_tls_ns(const struct xml_tag *t)
{
	size_t at;

	return cursor_find(&t->whole, XMPP_TLS_NS, sizeof(XMPP_TLS_NS) - 1, &at);
}

/* Passes the rest of an element whose start tag was just taken: nothing
 * for "<x/>", up to "</x>" otherwise.  0 while incomplete. */
static int take_element_rest(struct cursor *in, const struct xml_tag *t, const char *close_tag)
{
	size_t at, n = strlen(close_tag);

	if (t->empty)
		return 1;
	return cursor_find(in, close_tag, n, &at) && cursor_skip(in, at + n);
}

static void xmpp_client(struct preamble *p, struct cursor *in, size_t total)
{
	struct cursor look;
	struct xml_tag t;

	while (!p->waiting && !p->started[SIDE_CLIENT] && p->state != P_NOT_TLS) {
		look = *in;
		if (!take_tag(&look, &t)) {
			*in = look; /* the text before an incomplete tag */
			consumed(p, SIDE_CLIENT, in, total);
			check_pending(p, in);
			return;
		}
		if (!t.end_tag && (tag_is(&t, "?xml") || tag_is(&t, "stream:stream"))) {
			*in = look;
			consumed(p, SIDE_CLIENT, in, total);
			continue;
		}
		/* Anything but <starttls/> before TLS (SASL <auth>, stanzas,
		 * dialback, closing the stream) is a plaintext session. */
		if (t.end_tag || !tag_is(&t, "starttls") || !tag_in_tls_ns(&t)) {
			fail(p);
			return;
		}
		if (!take_element_rest(&look, &t, "</starttls>")) {
			check_pending(p, in);
			return;
		}
		*in = look;
		consumed(p, SIDE_CLIENT, in, total);
		add_request(p, 1, 0);
		if (p->accepted)
			start_tls(p, SIDE_CLIENT, p->upgrade_end);
	}
}

static void xmpp_server(struct preamble *p, struct cursor *in, size_t total)
{
	struct cursor look;
	struct xml_tag t;

	while (!p->started[SIDE_SERVER] && p->state != P_NOT_TLS) {
		look = *in;
		if (!take_tag(&look, &t)) {
			*in = look;
			consumed(p, SIDE_SERVER, in, total);
			check_pending(p, in);
			return;
		}
		if ((t.end_tag && tag_is(&t, "stream:stream")) || tag_is(&t, "stream:error") ||
		    (tag_is(&t, "failure") && tag_in_tls_ns(&t)) || tag_is(&t, "success")) {
			fail(p);
			return;
		}
		if (!t.end_tag && tag_is(&t, "proceed") && tag_in_tls_ns(&t)) {
			if (!take_element_rest(&look, &t, "</proceed>")) {
				check_pending(p, in);
				return;
			}
			*in = look;
			consumed(p, SIDE_SERVER, in, total);
			p->accepted = 1;
			start_tls(p, SIDE_SERVER, p->pos[SIDE_SERVER]);
			if (p->waiting) {
				p->waiting = 0;
				start_tls(p, SIDE_CLIENT, p->upgrade_end);
			}
			return;
		}
		*in = look;
		consumed(p, SIDE_SERVER, in, total);
	}
}

/* ---- PostgreSQL (protocol 55.2.10, 55.2.11) ---- */

static void pg_client(struct preamble *p, struct cursor *in, size_t total)
{
	uint32_t code = 0;

	while (!p->waiting && p->state != P_NOT_TLS) {
		switch (match_pg_request(in, &code)) {
		case M_PARTIAL:
			return;
		case M_NO:
			/* a StartupMessage or CancelRequest: plaintext */
			fail(p);
			return;
		case M_YES:
			break;
		}
		if (p->units[SIDE_CLIENT] >= MAX_REQUESTS || !cursor_skip(in, 8)) {
			fail(p);
			return;
		}
		consumed(p, SIDE_CLIENT, in, total);
		add_request(p, 1, code == PG_GSSENC_REQUEST);
	}
}

/* The server answers each request with one byte: 'S' (TLS follows), 'G'
 * (GSSAPI encryption follows), 'N' (no), or an ErrorResponse. */
static void pg_server(struct preamble *p, struct cursor *in, size_t total)
{
	unsigned idx;
	uint8_t b;

	while (p->state != P_NOT_TLS && request_known(p) && cursor_get_u8(in, &b)) {
		consumed(p, SIDE_SERVER, in, total);
		idx = p->units[SIDE_SERVER]++;
		if (request_flag(p, idx) && b == 'N') {
			p->waiting = 0; /* GSSENCRequest refused: an SSLRequest may follow */
		} else if (!request_flag(p, idx) && b == 'S') {
			accept_upgrade(p, p->pos[SIDE_SERVER]);
			return;
		} else {
			fail(p);
			return;
		}
	}
}

/* ---- MySQL / MariaDB (Protocol::Handshake, Protocol::SSLRequest) ---- */

static int mysql_packet(struct cursor *in, struct cursor *payload, uint8_t *seq)
{
	struct cursor look = *in;
	uint16_t lo;
	uint8_t hi;

	if (!cursor_get_u16le(&look, &lo) || !cursor_get_u8(&look, &hi) || !cursor_get_u8(&look, seq) ||
	    !cursor_get_bytes(&look, payload, (size_t)hi << 16 | lo))
		return 0;
	*in = look;
	return 1;
}

static void mysql_server(struct preamble *p, struct cursor *in, size_t total)
{
	struct cursor payload;
	uint8_t seq, proto, filler;
	uint16_t caps;
	uint32_t thread;
	size_t at;

	if (p->greeted)
		return;
	if (!mysql_packet(in, &payload, &seq)) {
		check_pending(p, in);
		return;
	}
	/* protocol 10, NUL-terminated server version, thread id, 8 bytes of
	 * scramble, a filler, the low capability flags */
	if (seq != 0 || !cursor_get_u8(&payload, &proto) || proto != 10 ||
	    !cursor_find(&payload, "", 1, &at) || !cursor_skip(&payload, at + 1) ||
	    !cursor_get_u32le(&payload, &thread) || !cursor_skip(&payload, 8) ||
	    !cursor_get_u8(&payload, &filler) || !cursor_get_u16le(&payload, &caps) ||
	    !(caps & MYSQL_CLIENT_SSL)) {
		fail(p);
		return;
	}
	consumed(p, SIDE_SERVER, in, total);
	p->greeted = 1;
	if (p->accepted)
		start_tls(p, SIDE_SERVER, p->pos[SIDE_SERVER]);
}

/* The client's first packet is either an SSLRequest (32 bytes: capability
 * flags with CLIENT_SSL, max packet size, character set, filler) or a full
 * HandshakeResponse in plaintext. */
static void mysql_client(struct preamble *p, struct cursor *in, size_t total)
{
	struct cursor payload;
	uint32_t caps;
	uint8_t seq;

	if (!mysql_packet(in, &payload, &seq)) {
		check_pending(p, in);
		return;
	}
	if (seq != 1 || cursor_len(&payload) != 32 || !cursor_get_u32le(&payload, &caps) ||
	    !(caps & MYSQL_CLIENT_SSL)) {
		fail(p);
		return;
	}
	consumed(p, SIDE_CLIENT, in, total);
	p->accepted = 1;
	start_tls(p, SIDE_CLIENT, p->pos[SIDE_CLIENT]);
	if (p->greeted)
		start_tls(p, SIDE_SERVER, p->pos[SIDE_SERVER]);
}

/* ---- entry point ---- */

enum preamble_status preamble_scan(struct preamble *p, enum side from,
				   const struct cursor *stream, size_t *tls_start)
{
	struct cursor rest = *stream, window = *stream, in;
	size_t total = cursor_len(stream) < PREAMBLE_MAX ? cursor_len(stream) : PREAMBLE_MAX;
	int client = from == SIDE_CLIENT;

	/* A side's answer never changes once given.  Should the other side
	 * then make no sense (a client whose STARTTLS was garbled but whose
	 * server proceeded), only that side is NOT_TLS. */
	if (p->started[from]) {
		*tls_start = p->start[from];
		return PREAMBLE_TLS;
	}
	if (p->state == P_NOT_TLS)
		return PREAMBLE_NOT_TLS;
	/* Only the first PREAMBLE_MAX bytes decide.  A longer stream is no
	 * reason to give up: one loopback or TSO/GRO segment may carry a
	 * whole flight (a ClientHello and 0-RTT records, 64 KB at once),
	 * and the first record header is what tells TLS. */
	if (!cursor_get_bytes(&rest, &window, total))
		fail(p);   /* cannot happen: total is at most the stream's length */
	in = window;
	if (p->state == P_NOT_TLS || !cursor_skip(&in, p->pos[from]))
		fail(p);
	else if (p->state == P_UNKNOWN)
		classify(p, from, &window);
	if (p->state != P_NOT_TLS && !p->started[from]) {
		switch (p->state) {
		case P_LINE220:
		case P_SMTP:
		case P_FTP:
			(client ? line220_client : line220_server)(p, &in, total);
			break;
		case P_IMAP:
			(client ? imap_pop3_client : imap_server)(p, &in, total);
			break;
		case P_POP3:
			(client ? imap_pop3_client : pop3_server)(p, &in, total);
			break;
		case P_CONNECT:
			(client ? connect_client : connect_server)(p, &in, total);
			break;
		case P_XMPP:
			(client ? xmpp_client : xmpp_server)(p, &in, total);
			break;
		case P_POSTGRES:
			(client ? pg_client : pg_server)(p, &in, total);
			break;
		case P_MYSQL:
			(client ? mysql_client : mysql_server)(p, &in, total);
			break;
		default:
			break;
		}
	}
	if (p->started[from]) {
		*tls_start = p->start[from];
		return PREAMBLE_TLS;
	}
	if (p->state != P_NOT_TLS && total >= PREAMBLE_MAX)
		fail(p); /* a full buffer and still no TLS */
	return p->state == P_NOT_TLS ? PREAMBLE_NOT_TLS : PREAMBLE_MORE;
}
