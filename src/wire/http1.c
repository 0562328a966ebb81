/* http1: request line, status and error-page title of HTTP/1.x (see http1.h). */
#include "config.h"

#include "wire/http1.h"

#include <string.h>

/* Splits the first line (without CRLF or LF) off `c`. */
static enum http1_result take_line(struct cursor *c, struct cursor *line)
{
	struct cursor probe = *c;
	size_t at;
	uint8_t b;

	if (!cursor_find(&probe, "\n", 1, &at))
		return HTTP1_MORE;
	if (!cursor_get_bytes(c, line, at) || !cursor_skip(c, 1))
		return HTTP1_NOT_HTTP;
	if (cursor_len(line) && cursor_peek_u8(line, cursor_len(line) - 1, &b) && b == '\r')
		cursor_init(line, cursor_data(line), cursor_len(line) - 1);
	return HTTP1_DONE;
}

static bool is_token_char(uint8_t b)
{
	return b > 0x20 && b < 0x7f;
}

enum http1_result http1_request_line(const struct cursor *head, char *line, size_t linelen)
{
	struct cursor c = *head, l, probe;
	enum http1_result r;
	size_t n = 0, at;
	uint8_t b;

	/* a method (RFC 9112 3: token SP request-target SP HTTP-version) */
	while (cursor_peek_u8(&c, n, &b) && b != ' ') {
		if (!is_token_char(b) || n > 20)
			return HTTP1_NOT_HTTP;
		n++;
	}
	if (!cursor_peek_u8(&c, n, &b))
		return HTTP1_MORE;
	if (n == 0)
		return HTTP1_NOT_HTTP;
	r = take_line(&c, &l);
	if (r == HTTP1_MORE)
		return cursor_len(head) > 8192 ? HTTP1_NOT_HTTP : HTTP1_MORE;
	if (r != HTTP1_DONE)
		return r;
	probe = l;
	if (!cursor_find(&probe, " HTTP/1.", 8, &at))
		return HTTP1_NOT_HTTP;
	cursor_copy_printable(&l, line, linelen);
	return HTTP1_DONE;
}

void http1_redact_query(char *line, size_t size)
{
	static const char ellipsis[] = "?\xe2\x80\xa6";
	const size_t elen = sizeof(ellipsis) - 1;
	char *target = strchr(line, ' '), *version = strrchr(line, ' '), *query;
	size_t tail, len = strlen(line);

	if (!target || version == target)
		return;
	query = memchr(target, '?', (size_t)(version - target));
	if (!query)
		return;
	tail = strlen(version) + 1;
	if (len - (size_t)(version - query) + elen >= size) {
		/* no room for the ellipsis: the query goes, its '?' stays */
		memmove(query + 1, version, tail);
		return;
	}
	memmove(query + elen, version, tail);
	memcpy(query, ellipsis, elen);
}

/* "HTTP/1.x SSS reason" */
static int status_line(const struct cursor *line, struct http1_response *out)
{
	struct cursor c = *line, digits;
	int status = 0;
	uint8_t b, sp;

	if (!cursor_starts_with(&c, "HTTP/1.", 7, 0) || !cursor_skip(&c, 7) || !cursor_get_u8(&c, &b) ||
	    b < '0' || b > '9' || !cursor_get_u8(&c, &sp) || sp != ' ' || !cursor_get_bytes(&c, &digits, 3))
		return 0;
	while (cursor_get_u8(&digits, &b)) {
		if (b < '0' || b > '9')
			return 0;
		status = status * 10 + (b - '0');
	}
	if (status < 100)
		return 0;
	out->status = status;
	if (cursor_get_u8(&c, &sp) && sp == ' ')
		cursor_copy_printable(&c, out->reason, sizeof(out->reason));
	return 1;
}

/* The text between <title> and </title> of an error page, if there. */
static enum http1_result find_title(const struct cursor *body, bool complete, char *title, size_t len)
{
	static const char *const open_tags[] = { "<title>", "<TITLE>", "<Title>" };
	static const char *const close_tags[] = { "</title>", "</TITLE>", "</Title>" };
	struct cursor c = *body, text;
	size_t i, at, end;

	for (i = 0; i < 3; i++) {
		c = *body;
		if (cursor_find(&c, open_tags[i], 7, &at) && cursor_skip(&c, at + 7))
			break;
	}
	if (i == 3)
		return complete ? HTTP1_DONE : HTTP1_MORE;
	if (!cursor_find(&c, close_tags[i], 8, &end))
		return complete ? HTTP1_DONE : HTTP1_MORE;
	if (!cursor_get_bytes(&c, &text, end))
		return HTTP1_DONE;
	cursor_copy_printable(&text, title, len);
	return HTTP1_DONE;
}

/* "Server: nginx/1.22.1" (RFC 9110 10.2.4), leading blanks skipped. */
static void server_header(const struct cursor *line, struct http1_response *out)
{
	struct cursor c = *line;
	uint8_t b;

	if (!cursor_starts_with(&c, "server:", 7, 1) || !cursor_skip(&c, 7))
		return;
	while (cursor_peek_u8(&c, 0, &b) && (b == ' ' || b == '\t'))
		if (!cursor_skip(&c, 1))
			return;
	cursor_copy_printable(&c, out->server, sizeof(out->server));
}

enum http1_result http1_response(const struct cursor *head, bool complete, struct http1_response *out)
{
	struct cursor c = *head, line;
	enum http1_result r;

	memset(out, 0, sizeof(*out));
	for (;;) {
		bool in_headers = true;

		/* what has arrived must start like a status line */
		if (!cursor_starts_with(&c, "HTTP/1.", cursor_len(&c) < 7 ? cursor_len(&c) : 7, 0))
			return HTTP1_NOT_HTTP;
		r = take_line(&c, &line);
		if (r == HTTP1_MORE)
			return complete ? HTTP1_NOT_HTTP : HTTP1_MORE;
		if (r != HTTP1_DONE || !status_line(&line, out))
			return HTTP1_NOT_HTTP;
		/* the headers end at an empty line */
		while (in_headers) {
			r = take_line(&c, &line);
			if (r == HTTP1_MORE) {
				/* the status is known; an error page's title is still to come */
				if (complete)
					return HTTP1_DONE;
				return out->status >= 200 && out->status < 400 ? HTTP1_DONE : HTTP1_MORE;
			}
			if (r != HTTP1_DONE)
				return HTTP1_NOT_HTTP;
			in_headers = cursor_len(&line) > 0;
			server_header(&line, out);
		}
		if (out->status >= 200)
			break;
		/* 1xx interim responses (RFC 9110 15.2): the final one follows */
		memset(out, 0, sizeof(*out));
		if (cursor_len(&c) == 0)
			return complete ? HTTP1_NOT_HTTP : HTTP1_MORE;
	}
	if (out->status < 400)
		return HTTP1_DONE;
	return find_title(&c, complete, out->title, sizeof(out->title));
}
