/* fuzz_http: libFuzzer target for the decrypted-HTTP readers (http1.c and
 * http2.c) and the HTTP/1.x framer (h1frame.c).  The input is read as the
 * server's first bytes and as the client's, whole and cut at every length
 * up to 64 bytes: each reader must decide or ask for more without reading
 * past its input, and a status it reports is a three-digit number.  The
 * framer is fed the input as requests and as responses, whole, in two
 * pieces at a cut the input's first bytes choose, and (short inputs) one
 * byte at a time: every way must end the same, its count of messages never
 * goes down, lost stays lost with the same reason, and the reason is a
 * terminated string. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/http1.h"
#include "wire/http2.h"
#include "wire/h1frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_all(const uint8_t *data, size_t size, bool complete)
{
	struct http1_response resp;
	struct cursor c;
	char line[256];

	cursor_init(&c, data, size);
	(void)http2_client_preface(&c);
	(void)http2_server_preface(&c);
	(void)http1_request_line(&c, line, sizeof(line));
	if (http2_response(&c, complete, &resp) == HTTP1_DONE && (resp.status < 100 || resp.status > 999))
		abort();
	if (http1_response(&c, complete, &resp) == HTTP1_DONE && (resp.status < 100 || resp.status > 999))
		abort();
	/* the Server header's value: printable and terminated */
	if (strnlen(resp.server, sizeof(resp.server)) == sizeof(resp.server))
		abort();
	for (const char *p = resp.server; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			abort();
}

/* Requests for the response framer to pair with: a HEAD among them, and a
 * CONNECT at the end. */
static const char requests[] = "GET / HTTP/1.1\r\n\r\nHEAD / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n"
                               "GET / HTTP/1.1\r\n\r\nHEAD / HTTP/1.1\r\n\r\nCONNECT a:1 HTTP/1.1\r\n\r\n";

static void frame_start(struct h1f *f, struct h1f *req, enum h1f_dir dir)
{
	h1f_init(f, dir);
	if (dir == H1F_REQUESTS)
		return;
	h1f_init(req, H1F_REQUESTS);
	h1f_pair(f, req);
	h1f_feed(req, (const uint8_t *)requests, sizeof(requests) - 1);
}

/* One more piece: what was true stays true. */
static void frame_feed(struct h1f *f, const uint8_t *p, size_t n)
{
	uint64_t messages = f->messages;
	bool lost = f->lost;
	char why[sizeof(f->why)];

	memcpy(why, f->why, sizeof(why));
	h1f_feed(f, p, n);
	if (f->messages < messages || (lost && (!f->lost || memcmp(why, f->why, sizeof(why)) != 0)))
		abort();
	if (strnlen(f->why, sizeof(f->why)) == sizeof(f->why) || f->lost != (f->why[0] != '\0') ||
	    (f->lost && (f->persistent || h1f_between(f))))
		abort();
}

static bool frame_same(const struct h1f *a, const struct h1f *b)
{
	return a->messages == b->messages && a->persistent == b->persistent && a->lost == b->lost &&
	       strcmp(a->why, b->why) == 0 && h1f_between(a) == h1f_between(b) &&
	       h1f_idempotent(a) == h1f_idempotent(b);
}

static void frame_all(const uint8_t *data, size_t size, enum h1f_dir dir)
{
	struct h1f whole, split, req_whole, req_split;
	size_t cut = size >= 2 ? ((size_t)data[0] << 8 | data[1]) % (size + 1) : 0;
	size_t i;

	frame_start(&whole, &req_whole, dir);
	frame_feed(&whole, data, size);
	frame_start(&split, &req_split, dir);
	frame_feed(&split, data, cut);
	frame_feed(&split, data + cut, size - cut);
	if (!frame_same(&whole, &split))
		abort();
	if (size > 512)
		return;
	frame_start(&split, &req_split, dir);
	for (i = 0; i < size; i++)
		frame_feed(&split, data + i, 1);
	if (!frame_same(&whole, &split))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cut;

	frame_all(data, size, H1F_REQUESTS);
	frame_all(data, size, H1F_RESPONSES);

	read_all(data, size, true);
	for (cut = 0; cut < size && cut <= 64; cut++)
		read_all(data, cut, false);
	return 0;
}
