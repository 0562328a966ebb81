/* http1: the first bytes of a decrypted HTTP/1.x exchange: the request line,
 * the response's status code and reason, its Server header (which server
 * software answered, for the remedies) and an error page's <title> (nginx
 * says why it refused a client certificate only there: "400 No required
 * SSL certificate was sent", "400 The SSL certificate error").  Nothing
 * else of the headers or the body is kept. */
#ifndef MTLSDIAG_HTTP1_H
#define MTLSDIAG_HTTP1_H

#include <stdbool.h>
#include <stddef.h>

#include "wire/cursor.h"

enum http1_result {
	HTTP1_MORE,             /* not enough bytes yet to decide */
	HTTP1_DONE,             /* read (the output is filled) */
	HTTP1_NOT_HTTP,         /* the bytes are not HTTP/1.x */
};

/* The request line of `head` (the first bytes the client sent), e.g.
 * "GET / HTTP/1.1", into line (printable ASCII, cut to linelen). */
enum http1_result http1_request_line(const struct cursor *head, char *line, size_t linelen)
	__attribute__((nonnull));

/* A request line with its query string replaced by "?…" (U+2026): method,
 * path and version stay, a token or a password in the query does not.
 * A line without a query is left as it is; `size` is line's buffer. */
void http1_redact_query(char *line, size_t size) __attribute__((nonnull));

struct http1_response {
	int status;
	char reason[64];
	char title[128];        /* error pages (status >= 400) only; "" if none */
	char server[64];        /* the Server header's value (printable ASCII), "" if none */
};

/* The first final (non-1xx) response in `head`, the first bytes the server
 * sent.  `complete`: no more bytes will come, decide on what is there. */
enum http1_result http1_response(const struct cursor *head, bool complete, struct http1_response *out)
	__attribute__((nonnull));

#endif
