/* fuzz_identity: libFuzzer target for what proxy --intercept reads of a
 * client's first request (intercept_http.c): where its head ends, and the
 * head rewritten with --forward-identity's headers.  The input is the
 * client's bytes.  A rewritten head must end the head (a blank line), carry
 * one X-SSL-Client-Verify and one Connection line, the proxy's, and no
 * X-SSL-Client- header of the client's, whatever its line ends (nginx
 * ends a line at LF): every line of it ends CRLF, with no other CR.  And
 * the Connection: close line --upstream-keepalive leaves out: within the
 * head, a whole line (from a line's start to its LF), a Connection one. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <openssl/ssl.h>

#include "front/intercept_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Header lines of out (after the request line; a line ends at LF, as
 * nginx reads it) that start with prefix (case-insensitive). */
static size_t count_lines(const char *out, size_t len, const char *prefix)
{
	size_t n = 0, plen = strlen(prefix), at = 0;
	const char *first = memchr(out, '\n', len);

	at = first ? (size_t)(first - out) + 1 : len;

	while (at < len) {
		const char *eol = memchr(out + at, '\n', len - at);
		size_t line = eol ? (size_t)(eol - (out + at)) + 1 : len - at;

		if (line >= plen && strncasecmp(out + at, prefix, plen) == 0)
			n++;
		at += line;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static SSL_CTX *ctx;
	static SSL *ssl;   /* a server's, with no peer: the identity is NONE */
	struct icpt_verify_seen v = { .ran = false, .err = 0 };
	struct evbuffer *in, *out;
	char note[160];
	long head;

	if (!ctx) {
		ctx = SSL_CTX_new(TLS_server_method());
		ssl = ctx ? SSL_new(ctx) : NULL;
		if (!ssl)
			abort();
	}
	in = evbuffer_new();
	out = evbuffer_new();
	if (!in || !out)
		abort();
	evbuffer_add(in, data, size);
	head = icpt_http_head_len(in, 65536);
	if (head > 0 && (size_t)head > size)
		abort();
	if (icpt_http_add_identity(out, data, size, ssl, &v, note, sizeof(note))) {
		size_t len = evbuffer_get_length(out);
		const char *text = (const char *)evbuffer_pullup(out, -1);

		if (len < 4 || memcmp(text + len - 4, "\r\n\r\n", 4) != 0)
			abort();
		for (size_t i = 0; i < len; i++)   /* every line ended CRLF, no CR elsewhere */
			if ((text[i] == '\r') != (i + 1 < len && text[i + 1] == '\n'))
				abort();
		if (count_lines(text, len, "X-SSL-Client-Verify: NONE\r") != 1 ||
		    count_lines(text, len, "X-SSL-Client-") != 1 || count_lines(text, len, "Connection:") != 1)
			abort();
	} else if (strnlen(note, sizeof(note)) == 0 || strnlen(note, sizeof(note)) == sizeof(note)) {
		abort();   /* why it was not rewritten, in words */
	}
	if (head > 0) {
		size_t at, n;

		if (icpt_http_close_line(data, (size_t)head, &at, &n) &&
		    (n == 0 || at + n > (size_t)head || (at > 0 && data[at - 1] != '\n') || data[at + n - 1] != '\n' ||
		     n < 11 || strncasecmp((const char *)data + at, "connection:", 11) != 0))
			abort();
	}
	evbuffer_free(in);
	evbuffer_free(out);
	return 0;
}
