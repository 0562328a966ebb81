/* intercept_http: the little HTTP/1.x the stand-in speaks itself.  It
 * refuses a client as nginx does (an error page whose <title> is nginx's,
 * "400 The SSL certificate error" or "400 No required SSL certificate was
 * sent", so that the verdict rules read it as they read nginx), says in
 * plain words what OpenSSL found, and with --forward-identity puts the
 * client's certificate into the first request's headers as nginx's
 * $ssl_client_verify, $ssl_client_s_dn and $ssl_client_escaped_cert would.
 * The request is the client's bytes: read through the cursor. */
#include "config.h"

#include <string.h>

#include <event2/buffer.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "front/intercept_int.h"
#include "wire/cursor.h"
#include "wire/h1frame.h"

/* A line ends at LF, with or without CR before it, as nginx reads a
 * request (RFC 9112 2.2): the head ends at the first empty line. */
long icpt_http_head_len(struct evbuffer *buf, size_t max)
{
	struct evbuffer_ptr crlf = evbuffer_search(buf, "\n\r\n", 3, NULL);
	struct evbuffer_ptr lf = evbuffer_search(buf, "\n\n", 2, NULL);
	ev_ssize_t end = -1;

	if (crlf.pos >= 0)
		end = crlf.pos + 3;
	if (lf.pos >= 0 && (end < 0 || lf.pos + 2 < end))
		end = lf.pos + 2;
	if (end >= 0)
		return end <= (ev_ssize_t)max ? (long)end : -1;
	return evbuffer_get_length(buf) >= max ? -1 : 0;
}

/* The next line of all, without its LF and a CR before it; 0 when no
 * LF is left. */
static int next_line(struct cursor *all, struct cursor *line)
{
	size_t at;

	if (!cursor_find(all, "\n", 1, &at) || !cursor_get_bytes(all, line, at) || !cursor_skip(all, 1))
		return 0;
	if (cursor_len(line) > 0 && cursor_data(line)[cursor_len(line) - 1] == '\r')
		cursor_init(line, cursor_data(line), cursor_len(line) - 1);
	return 1;
}

/* A CR left inside a line: nginx refuses such a header line, and a
 * reader that took the CR for a line's end would see two. */
static bool has_cr(const struct cursor *line)
{
	size_t at;

	return cursor_find(line, "\r", 1, &at);
}

/* Text from the certificate or OpenSSL into HTML. */
static void add_escaped_html(struct evbuffer *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': evbuffer_add(out, "&lt;", 4); break;
		case '>': evbuffer_add(out, "&gt;", 4); break;
		case '&': evbuffer_add(out, "&amp;", 5); break;
		case '"': evbuffer_add(out, "&quot;", 6); break;
		default: evbuffer_add(out, s, 1); break;
		}
	}
}

void icpt_http_page(struct evbuffer *out, int status, const char *phrase, const char *title,
		    const char *detail)
{
	struct evbuffer *body = evbuffer_new();

	if (!body)
		return;
	/* nginx's error page, then the reason in words */
	evbuffer_add_printf(body, "<html>\r\n<head><title>%s</title></head>\r\n<body>\r\n"
			    "<center><h1>%d %s</h1></center>\r\n", title, status, phrase);
	if (strncmp(title, "400 ", 4) == 0)
		evbuffer_add_printf(body, "<center>%s</center>\r\n", title + 4);
	evbuffer_add_printf(body, "<p>");
	add_escaped_html(body, detail);
	evbuffer_add_printf(body, "</p>\r\n<hr><center>mtlsdiag (standing in for the server)</center>\r\n"
			    "</body>\r\n</html>\r\n");
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nServer: mtlsdiag\r\nContent-Type: text/html\r\n"
			    "Content-Length: %zu\r\nConnection: close\r\n\r\n", status, phrase,
			    evbuffer_get_length(body));
	evbuffer_add_buffer(out, body);
	evbuffer_free(body);
}

/* nginx's $ssl_client_escaped_cert: the PEM, URL-encoded. */
static void add_escaped_pem(struct evbuffer *out, X509 *cert)
{
	BIO *mem = BIO_new(BIO_s_mem());
	const char *pem;
	long n, i;

	if (!mem || PEM_write_bio_X509(mem, cert) != 1) {
		BIO_free(mem);
		return;
	}
	n = BIO_get_mem_data(mem, &pem);
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)pem[i];

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '.' || ch == '_' || ch == '~')
			evbuffer_add(out, &ch, 1);
		else
			evbuffer_add_printf(out, "%%%02X", ch);
	}
	BIO_free(mem);
}

/* nginx's $ssl_client_s_dn: RFC 2253. */
static void add_subject(struct evbuffer *out, X509 *cert)
{
	BIO *mem = BIO_new(BIO_s_mem());
	const char *text;
	long n, i;

	if (!mem || X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) {
		BIO_free(mem);
		return;
	}
	n = BIO_get_mem_data(mem, &text);
	for (i = 0; i < n; i++)   /* a header line holds no control byte */
		if ((unsigned char)text[i] >= 0x20 && text[i] != 0x7f)
			evbuffer_add(out, &text[i], 1);
	BIO_free(mem);
}

int icpt_http_close_line(const uint8_t *head, size_t len, size_t *at, size_t *n)
{
	struct cursor all, line, version;
	size_t first;

	cursor_init(&all, head, len);
	if (!next_line(&all, &line) || cursor_len(&line) < 9)
		return 0;
	version = line;
	if (!cursor_skip(&version, cursor_len(&line) - 9) || !cursor_starts_with(&version, " HTTP/1.1", 9, 0))
		return 0;
	for (;;) {
		struct cursor value;

		first = len - cursor_len(&all);
		if (!next_line(&all, &line) || cursor_len(&line) == 0)
			return 0;
		value = line;
		if (cursor_starts_with(&line, "connection:", 11, 1) && cursor_skip(&value, 11) &&
		    h1f_list_has(value, "close")) {
			*at = first;
			*n = len - cursor_len(&all) - first;
			return 1;
		}
	}
}

/* Whether a header line is one the proxy writes itself: what the client
 * says there is dropped, or it could claim another identity. */
static bool own_header(const struct cursor *line)
{
	return cursor_starts_with(line, "x-ssl-client-", 13, 1) || cursor_starts_with(line, "connection:", 11, 1);
}

int icpt_http_add_identity(struct evbuffer *out, const uint8_t *head, size_t len, SSL *client,
			   const struct icpt_verify_seen *v, char *note, size_t notelen)
{
	struct cursor all, line, version;
	size_t at, sp;
	X509 *cert = SSL_get1_peer_certificate(client);
	int ok = 0;

	cursor_init(&all, head, len);
	if (!next_line(&all, &line)) {
		snprintf(note, notelen, "the first request has no request line");
		goto Exit;
	}
	/* "METHOD TARGET HTTP/1.x" */
	version = line;
	at = cursor_len(&line);
	if (at < 9 || has_cr(&line) || !cursor_find(&line, " ", 1, &sp) || !cursor_skip(&version, at - 9) ||
	    !(cursor_starts_with(&version, " HTTP/1.1", 9, 0) || cursor_starts_with(&version, " HTTP/1.0", 9, 0))) {
		snprintf(note, notelen, "the first request is not HTTP/1.x: sent unchanged");
		goto Exit;
	}
	evbuffer_add(out, cursor_data(&line), cursor_len(&line));
	evbuffer_add(out, "\r\n", 2);
	evbuffer_add_printf(out, "X-SSL-Client-Verify: ");
	if (!cert) {
		evbuffer_add_printf(out, "NONE");
	} else if (v->err == X509_V_OK) {
		evbuffer_add_printf(out, "SUCCESS");
	} else {
		evbuffer_add_printf(out, "FAILED:%s", X509_verify_cert_error_string(v->err));
	}
	evbuffer_add(out, "\r\n", 2);
	if (cert) {
		evbuffer_add_printf(out, "X-SSL-Client-S-DN: ");
		add_subject(out, cert);
		evbuffer_add_printf(out, "\r\nX-SSL-Client-Cert: ");
		add_escaped_pem(out, cert);
		evbuffer_add(out, "\r\n", 2);
	}
	/* the headers hold for this request only: the connection ends with it */
	evbuffer_add_printf(out, "Connection: close\r\n");
	/* every line the client's up to the empty one, each ended CRLF; its
	 * own identity headers, and lines nginx would refuse, left out */
	while (next_line(&all, &line) && cursor_len(&line) > 0) {
		if (own_header(&line) || has_cr(&line))
			continue;
		evbuffer_add(out, cursor_data(&line), cursor_len(&line));
		evbuffer_add(out, "\r\n", 2);
	}
	evbuffer_add(out, "\r\n", 2);
	ok = 1;
Exit:
	X509_free(cert);
	return ok;
}
