/* h1frame: the HTTP/1.x message framer (see h1frame.h).  Message bodies
 * follow RFC 9112 6.3: a request has a body only by Content-Length or
 * chunked; a response to HEAD, a 1xx, 204 or 304 has none, then chunked
 * (Transfer-Encoding's last coding), then Content-Length, else the body
 * ends at the close, which no framer can see coming (lost). */
#include "config.h"

#include "wire/h1frame.h"

#include <string.h>

#include "wire/cursor.h"

enum {
	ST_START,       /* the request or status line, or empty lines before it */
	ST_FIELDS,      /* header field lines up to the empty line */
	ST_BODY,        /* Content-Length bytes still to pass */
	ST_CHUNK_SIZE,  /* a chunk-size line */
	ST_CHUNK_DATA,  /* a chunk's bytes */
	ST_CHUNK_END,   /* the empty line after a chunk's bytes */
	ST_TRAILERS,    /* trailer field lines up to the empty line */
};

/* what the head of the message in hand said */
enum {
	HAS_V11 = 1 << 0,           /* HTTP/1.1 (or a later 1.x) */
	HAS_CLOSE = 1 << 1,         /* Connection: close */
	HAS_KEEPALIVE = 1 << 2,     /* Connection: keep-alive */
	HAS_UPGRADE = 1 << 3,       /* an Upgrade field */
	HAS_LENGTH = 1 << 4,        /* Content-Length (its value in remaining) */
	HAS_TE = 1 << 5,            /* Transfer-Encoding */
	HAS_CHUNKED_LAST = 1 << 6,  /* ... whose last coding so far is chunked */
	HAS_CHUNKED = 1 << 7,       /* ... and which named chunked */
	HAS_INTERIM = 1 << 8,       /* responses: a 1xx came, the final one has not */
};

/* a request's method, as the response framer needs it */
enum { METHOD_OTHER, METHOD_HEAD, METHOD_CONNECT };
#define METHOD_KIND 3
#define METHOD_IDEMPOTENT 4

/* the longest method a request line may start with */
#define METHOD_MAX 32
/* the longest Content-Length or chunk size: 2^60 and more is no real body */
#define SIZE_DIGITS_DEC 18
#define SIZE_DIGITS_HEX 15

static void lose(struct h1f *f, const char *why)
{
	if (f->lost)
		return;
	f->lost = true;
	f->persistent = false;
	strncpy(f->why, why, sizeof(f->why) - 1);
	f->why[sizeof(f->why) - 1] = '\0';
}

void h1f_init(struct h1f *f, enum h1f_dir dir)
{
	memset(f, 0, sizeof(*f));
	f->dir = (uint8_t)dir;
	f->persistent = true;
	f->idempotent = true;
}

void h1f_pair(struct h1f *responses, struct h1f *requests)
{
	responses->peer = requests;
	requests->peer = responses;
}

bool h1f_between(const struct h1f *f)
{
	return !f->lost && f->state == ST_START && f->line_len == 0 && !(f->has & HAS_INTERIM);
}

bool h1f_idempotent(const struct h1f *f)
{
	return f->idempotent;
}

/* RFC 9110 5.6.2 */
static bool is_tchar(uint8_t b)
{
	return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
	       (b && strchr("!#$%&'*+-.^_`|~", b) != NULL);
}

static bool is_ows(uint8_t b)
{
	return b == ' ' || b == '\t';
}

static void trim_ows(struct cursor *c)
{
	uint8_t b;

	while (cursor_peek_u8(c, 0, &b) && is_ows(b))
		if (!cursor_skip(c, 1))
			return;
	while (cursor_peek_u8(c, cursor_len(c) - 1, &b) && is_ows(b))
		cursor_init(c, cursor_data(c), cursor_len(c) - 1);
}

/* Splits the next element of a comma list off `list` (RFC 9110 5.6.1),
 * without its surrounding whitespace; 0 when the list is used up. */
static int next_element(struct cursor *list, struct cursor *element)
{
	size_t at;

	if (!cursor_len(list))
		return 0;
	if (!cursor_find(list, ",", 1, &at))
		at = cursor_len(list);
	if (!cursor_get_bytes(list, element, at))
		return 0;
	if (cursor_len(list) && !cursor_skip(list, 1))
		return 0;
	trim_ows(element);
	return 1;
}

static bool equals_nocase(const struct cursor *c, const char *word)
{
	size_t n = strlen(word);

	return cursor_len(c) == n && cursor_starts_with(c, word, n, 1);
}

/* Appends a piece of the line being read: its first H1F_LINE bytes are
 * kept in line, its last ones in tail. */
static void line_add(struct h1f *f, const struct cursor *piece)
{
	struct cursor c = *piece;
	size_t n = cursor_len(piece);
	size_t room = f->line_len < H1F_LINE ? H1F_LINE - f->line_len : 0;

	if (room && !cursor_copy_bytes(&c, f->line + f->line_len, n < room ? n : room))
		return;
	c = *piece;
	if (n >= sizeof(f->tail)) {
		if (!cursor_skip(&c, n - sizeof(f->tail)) || !cursor_copy_bytes(&c, f->tail, sizeof(f->tail)))
			return;
	} else if (n) {
		memmove(f->tail, f->tail + n, sizeof(f->tail) - n);
		if (!cursor_copy_bytes(&c, f->tail + sizeof(f->tail) - n, n))
			return;
	}
	f->line_len = n > UINT32_MAX - f->line_len ? UINT32_MAX : f->line_len + (uint32_t)n;
}

/* While the start line is still coming: whether what came already cannot
 * begin an HTTP/1.x message (a stream that never sends a LF is found out). */
static bool start_is_foreign(const struct h1f *f)
{
	static const char version[] = "HTTP/1.";
	size_t have = f->line_len < H1F_LINE ? f->line_len : H1F_LINE;
	size_t i;

	if (have == 1 && f->line[0] == '\r')
		return false;
	if (f->dir == H1F_RESPONSES) {
		for (i = 0; i < have && i < 9; i++)
			if ((i < 7 && f->line[i] != (uint8_t)version[i]) ||
			    (i == 7 && (f->line[i] < '0' || f->line[i] > '9')) || (i == 8 && f->line[i] != ' '))
				return true;
		return false;
	}
	for (i = 0; i < have && f->line[i] != ' '; i++)
		if (!is_tchar(f->line[i]) || i >= METHOD_MAX)
			return true;
	return false;
}

static void message_done(struct h1f *f)
{
	bool persistent = !(f->has & HAS_CLOSE) && (f->has & (HAS_V11 | HAS_KEEPALIVE));
	bool upgrade = f->dir == H1F_REQUESTS && (f->has & HAS_UPGRADE);
	bool connect = f->dir == H1F_REQUESTS && (f->method & METHOD_KIND) == METHOD_CONNECT;

	f->messages++;
	f->persistent = f->persistent && persistent;
	f->state = ST_START;
	f->has = 0;
	f->remaining = 0;
	if (connect)
		lose(f, "a CONNECT request: a tunnel may follow it");
	else if (upgrade)
		lose(f, "an Upgrade request: what follows it may not be HTTP/1.x");
}

/* "HTTP/1.x" at the start of c: sets HAS_V11 for 1.1 and later 1.x. */
static int read_version(struct h1f *f, struct cursor *c)
{
	uint8_t minor;

	if (!cursor_starts_with(c, "HTTP/1.", 7, 0) || !cursor_skip(c, 7) || !cursor_get_u8(c, &minor) ||
	    minor < '0' || minor > '9')
		return 0;
	if (minor != '0')
		f->has |= HAS_V11;
	return 1;
}

/* RFC 9112 3: method SP request-target SP HTTP-version.  The method is in
 * the line's first bytes, the version in its last ones (a long target is
 * passed over). */
static void request_line(struct h1f *f, const struct cursor *head, const struct cursor *tail, size_t len)
{
	static const char *const idempotent[] = { "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE" };
	struct cursor c = *head, method, version = *tail;
	size_t at, i;
	uint8_t sp;

	if (!cursor_find(&c, " ", 1, &at) || at == 0 || at > METHOD_MAX || !cursor_get_bytes(&c, &method, at) ||
	    len < at + 2 + 9 || cursor_len(&version) < 9 || !cursor_skip(&version, cursor_len(&version) - 9) ||
	    !cursor_get_u8(&version, &sp) || sp != ' ' || !read_version(f, &version))
		goto Foreign;
	for (i = 0; i < at; i++)
		if (!is_tchar(cursor_data(&method)[i]))
			goto Foreign;
	f->method = METHOD_OTHER;
	if (cursor_len(&method) == 4 && cursor_starts_with(&method, "HEAD", 4, 0))
		f->method = METHOD_HEAD;
	else if (cursor_len(&method) == 7 && cursor_starts_with(&method, "CONNECT", 7, 0))
		f->method = METHOD_CONNECT;
	for (i = 0; i < sizeof(idempotent) / sizeof(idempotent[0]); i++)
		if (cursor_len(&method) == strlen(idempotent[i]) &&
		    cursor_starts_with(&method, idempotent[i], strlen(idempotent[i]), 0))
			f->method |= METHOD_IDEMPOTENT;
	if (!(f->method & METHOD_IDEMPOTENT))
		f->idempotent = false;
	if (f->peer && f->started - f->peer->messages >= H1F_PENDING) {
		lose(f, "more pipelined requests than the framer can pair with their responses");
		return;
	}
	f->methods = (f->methods << 2) | (f->method & METHOD_KIND);
	f->started++;
	f->state = ST_FIELDS;
	return;
Foreign:
	lose(f, "the requests are not HTTP/1.x");
}

/* RFC 9112 4: HTTP-version SP status-code SP [reason-phrase] */
static void status_line(struct h1f *f, const struct cursor *head)
{
	struct cursor c = *head;
	uint8_t sp, d[3];

	if (!read_version(f, &c) || !cursor_get_u8(&c, &sp) || sp != ' ' || !cursor_copy_bytes(&c, d, 3) ||
	    d[0] < '1' || d[0] > '9' || d[1] < '0' || d[1] > '9' || d[2] < '0' || d[2] > '9' ||
	    (cursor_peek_u8(&c, 0, &sp) && sp != ' ')) {
		lose(f, "the responses are not HTTP/1.x");
		return;
	}
	f->status = (uint16_t)((d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0'));
	f->state = ST_FIELDS;
}

/* RFC 9110 8.6: digits; a list of the same number is one number. */
static void content_length(struct h1f *f, struct cursor value)
{
	struct cursor element;
	uint64_t n;
	uint8_t b;
	int elements = 0;

	while (next_element(&value, &element)) {
		if (!cursor_len(&element) || cursor_len(&element) > SIZE_DIGITS_DEC)
			goto Invalid;
		for (n = 0; cursor_get_u8(&element, &b);) {
			if (b < '0' || b > '9')
				goto Invalid;
			n = n * 10 + (uint64_t)(b - '0');
		}
		if ((f->has & HAS_LENGTH) && n != f->remaining) {
			lose(f, "conflicting Content-Length values");
			return;
		}
		f->has |= HAS_LENGTH;
		f->remaining = n;
		elements++;
	}
	if (elements)
		return;
Invalid:
	lose(f, "an invalid Content-Length");
}

/* RFC 9112 6.1: codings, each perhaps with parameters; chunked at most once. */
static void transfer_encoding(struct h1f *f, struct cursor value)
{
	struct cursor element, name;
	size_t at;

	f->has |= HAS_TE;
	while (next_element(&value, &element)) {
		if (!cursor_len(&element))
			continue;
		name = element;
		if (cursor_find(&element, ";", 1, &at) && !cursor_get_bytes(&element, &name, at))
			return;
		trim_ows(&name);
		if (!equals_nocase(&name, "chunked")) {
			f->has &= (uint16_t)~HAS_CHUNKED_LAST;
			continue;
		}
		if (f->has & HAS_CHUNKED) {
			lose(f, "a Transfer-Encoding that names chunked twice");
			return;
		}
		f->has |= HAS_CHUNKED | HAS_CHUNKED_LAST;
	}
}

bool h1f_list_has(struct cursor list, const char *token)
{
	struct cursor element;

	while (next_element(&list, &element))
		if (equals_nocase(&element, token))
			return true;
	return false;
}

static void connection(struct h1f *f, struct cursor value)
{
	struct cursor option;

	while (next_element(&value, &option)) {
		if (equals_nocase(&option, "close"))
			f->has |= HAS_CLOSE;
		else if (equals_nocase(&option, "keep-alive"))
			f->has |= HAS_KEEPALIVE;
	}
}

/* RFC 9112 5: field-name ":" OWS field-value OWS; only the fields that
 * frame a message are read. */
static void field_line(struct h1f *f, const struct cursor *line, bool whole)
{
	struct cursor c = *line, name;
	size_t at, i;
	uint8_t b;

	if (cursor_peek_u8(&c, 0, &b) && is_ows(b)) {
		lose(f, "a folded header line (obs-fold)");
		return;
	}
	if (!cursor_find(&c, ":", 1, &at) || !cursor_get_bytes(&c, &name, at) || !cursor_skip(&c, 1)) {
		lose(f, "a header line without a colon in its first 256 bytes");
		return;
	}
	for (i = 0; i < at; i++)
		if (!is_tchar(cursor_data(&name)[i])) {
			lose(f, "a header field name with a space or a byte no name may have");
			return;
		}
	if (equals_nocase(&name, "upgrade")) {
		f->has |= HAS_UPGRADE;
		return;
	}
	if (!equals_nocase(&name, "content-length") && !equals_nocase(&name, "transfer-encoding") &&
	    !equals_nocase(&name, "connection"))
		return;
	if (!whole) {
		lose(f, "a Content-Length, Transfer-Encoding or Connection line longer than 256 bytes");
		return;
	}
	trim_ows(&c);
	if (equals_nocase(&name, "content-length"))
		content_length(f, c);
	else if (equals_nocase(&name, "transfer-encoding"))
		transfer_encoding(f, c);
	else
		connection(f, c);
}

/* The method of the request a response answers, from the requests' framer. */
static int answered_method(struct h1f *f, uint8_t *kind)
{
	const struct h1f *req = f->peer;
	uint64_t n = f->messages;

	*kind = METHOD_OTHER;
	if (!req)
		return 1;
	if (n >= req->started) {
		lose(f, "a response came before its request");
		return 0;
	}
	if (req->started - n > H1F_PENDING) {
		lose(f, "more pipelined requests than the framer can pair with their responses");
		return 0;
	}
	*kind = (uint8_t)((req->methods >> (2 * (req->started - 1 - n))) & METHOD_KIND);
	return 1;
}

/* The empty line after the fields: where the body starts, and how it ends. */
static void head_done(struct h1f *f)
{
	uint8_t kind = METHOD_OTHER;

	if (f->dir == H1F_RESPONSES) {
		if (f->status == 101) {
			lose(f, "101 Switching Protocols: the connection became a tunnel");
			return;
		}
		if (f->status < 200) {
			/* interim (RFC 9110 15.2): the final response follows */
			f->has = HAS_INTERIM;
			f->state = ST_START;
			return;
		}
		if (!answered_method(f, &kind))
			return;
		if (kind == METHOD_CONNECT && f->status < 300) {
			lose(f, "a 2xx answer to CONNECT: the connection became a tunnel");
			return;
		}
		if (kind == METHOD_HEAD || f->status == 204 || f->status == 304) {
			message_done(f);
			return;
		}
	}
	if (f->has & HAS_TE) {
		if (!(f->has & HAS_V11))
			lose(f, "a Transfer-Encoding in an HTTP/1.0 message");
		else if (f->has & HAS_LENGTH)
			lose(f, "both Transfer-Encoding and Content-Length");
		else if (!(f->has & HAS_CHUNKED_LAST))
			lose(f, f->dir == H1F_RESPONSES ? "the response's body ends at the close"
			                                : "a request whose Transfer-Encoding does not end in chunked");
		else
			f->state = ST_CHUNK_SIZE;
		return;
	}
	if (f->has & HAS_LENGTH) {
		if (f->remaining)
			f->state = ST_BODY;
		else
			message_done(f);
		return;
	}
	if (f->dir == H1F_RESPONSES)
		lose(f, "the response's body ends at the close");
	else
		message_done(f);
}

/* RFC 9112 7.1: chunk-size [chunk-ext], the size in hex. */
static void chunk_size(struct h1f *f, const struct cursor *line)
{
	struct cursor c = *line;
	uint64_t n = 0;
	size_t digits = 0;
	uint8_t b;

	while (cursor_peek_u8(&c, 0, &b) && ((b >= '0' && b <= '9') || ((b | 0x20) >= 'a' && (b | 0x20) <= 'f'))) {
		n = n * 16 + (uint64_t)(b <= '9' ? b - '0' : (b | 0x20) - 'a' + 10);
		if (++digits > SIZE_DIGITS_HEX || !cursor_skip(&c, 1))
			goto Bad;
	}
	trim_ows(&c);
	if (!digits || (cursor_len(&c) && !cursor_starts_with(&c, ";", 1, 0)))
		goto Bad;
	f->remaining = n;
	f->state = n ? ST_CHUNK_DATA : ST_TRAILERS;
	return;
Bad:
	lose(f, "a chunk-size line that is not a hex size");
}

/* A whole line has come (without its LF): `head` is its first bytes
 * (without a CR at its end), `whole` whether that is all of it. */
static void line_done(struct h1f *f)
{
	size_t have = f->line_len < H1F_LINE ? f->line_len : H1F_LINE;
	size_t keep = f->line_len < sizeof(f->tail) ? f->line_len : sizeof(f->tail);
	size_t len = f->line_len;
	bool whole = f->line_len <= H1F_LINE;
	bool cr = keep && f->tail[sizeof(f->tail) - 1] == '\r';
	struct cursor head, tail;

	if (cr) {
		len--;
		keep--;
		if (whole)
			have--;
	}
	cursor_init(&head, f->line, have);
	cursor_init(&tail, f->tail + sizeof(f->tail) - keep - cr, keep);
	f->line_len = 0;
	switch (f->state) {
	case ST_START:
		if (!len)
			return; /* RFC 9112 2.2: empty lines before a message are passed over */
		if (f->dir == H1F_REQUESTS)
			request_line(f, &head, &tail, len);
		else
			status_line(f, &head);
		return;
	case ST_FIELDS:
		if (!len)
			head_done(f);
		else
			field_line(f, &head, whole);
		return;
	case ST_CHUNK_SIZE:
		if (!whole)
			lose(f, "a chunk-size line longer than 256 bytes");
		else
			chunk_size(f, &head);
		return;
	case ST_CHUNK_END:
		if (len)
			lose(f, "a chunk's data not followed by its line end");
		else
			f->state = ST_CHUNK_SIZE;
		return;
	case ST_TRAILERS:
		if (!len)
			message_done(f);
		return;
	default:
		return;
	}
}

/* Body bytes: passed over without a look. */
static void pass(struct h1f *f, struct cursor *c)
{
	size_t n = cursor_len(c);

	if (n > f->remaining)
		n = (size_t)f->remaining;
	if (!cursor_skip(c, n))
		return;
	f->remaining -= n;
	if (f->remaining)
		return;
	if (f->state == ST_BODY)
		message_done(f);
	else
		f->state = ST_CHUNK_END;
}

void h1f_feed(struct h1f *f, const uint8_t *p, size_t n)
{
	struct cursor c, piece;
	size_t at;

	if (!p)
		return;
	cursor_init(&c, p, n);
	while (!f->lost && cursor_len(&c)) {
		if (f->state == ST_BODY || f->state == ST_CHUNK_DATA) {
			pass(f, &c);
			continue;
		}
		if (!cursor_find(&c, "\n", 1, &at)) {
			line_add(f, &c);
			if (f->state == ST_START && start_is_foreign(f))
				lose(f, f->dir == H1F_REQUESTS ? "the requests are not HTTP/1.x"
				                               : "the responses are not HTTP/1.x");
			return;
		}
		if (!cursor_get_bytes(&c, &piece, at) || !cursor_skip(&c, 1))
			return;
		line_add(f, &piece);
		line_done(f);
	}
}
