/* The HTTP/2 reader (src/wire/http2.c): the client preface, the server's SETTINGS
 * preface, and the first response's :status, from HPACK as RFC 7541's
 * examples encode it (C.5: literals, C.6: Huffman) and as the static
 * table indexes it (nginx's 200 and 400). */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "wire/http2.h"

/* A frame: 9-byte header, then the payload. */
static size_t frame(uint8_t *out, uint8_t type, uint8_t flags, uint32_t stream, const uint8_t *p, size_t n)
{
	out[0] = (uint8_t)(n >> 16);
	out[1] = (uint8_t)(n >> 8);
	out[2] = (uint8_t)n;
	out[3] = type;
	out[4] = flags;
	out[5] = (uint8_t)(stream >> 24);
	out[6] = (uint8_t)(stream >> 16);
	out[7] = (uint8_t)(stream >> 8);
	out[8] = (uint8_t)stream;
	if (n)
		memcpy(out + 9, p, n);
	return 9 + n;
}

/* The server's preface (SETTINGS with two settings), a WINDOW_UPDATE, then
 * a HEADERS frame on stream 1 whose block is `block`. */
static size_t server_bytes(uint8_t *out, const uint8_t *block, size_t n, uint8_t flags)
{
	static const uint8_t settings[] = { 0, 3, 0, 0, 0, 128, 0, 4, 0, 1, 0, 0 };
	static const uint8_t window[] = { 0, 0x7f, 0xff, 0 };
	size_t used = 0;

	used += frame(out + used, 4, 0, 0, settings, sizeof(settings));
	used += frame(out + used, 8, 0, 0, window, sizeof(window));
	used += frame(out + used, 1, flags, 1, block, n);
	return used;
}

static int status_of(const uint8_t *block, size_t n, uint8_t flags)
{
	uint8_t buf[256];
	struct cursor c;
	struct http1_response r;
	size_t len = server_bytes(buf, block, n, flags);

	cursor_init(&c, buf, len);
	cr_assert(http2_server_preface(&c));
	if (http2_response(&c, true, &r) != HTTP1_DONE)
		return -1;
	return r.status;
}

Test(http2, client_preface)
{
	static const char pre[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	struct cursor c;

	cursor_init(&c, (const uint8_t *)pre, strlen(pre));
	cr_assert_eq(http2_client_preface(&c), HTTP1_DONE);
	cursor_init(&c, (const uint8_t *)pre, 10);
	cr_assert_eq(http2_client_preface(&c), HTTP1_MORE);
	cursor_init(&c, (const uint8_t *)"GET / HTTP/1.1\r\n", 16);
	cr_assert_eq(http2_client_preface(&c), HTTP1_NOT_HTTP);
}

Test(http2, an_http1_answer_is_no_server_preface)
{
	struct cursor c;

	cursor_init(&c, (const uint8_t *)"HTTP/1.1 200 OK\r\n", 17);
	cr_assert_not(http2_server_preface(&c));
}

Test(http2, indexed_statuses_of_the_static_table)
{
	static const uint8_t s200[] = { 0x88 }, s400[] = { 0x8c }, s404[] = { 0x8d }, s500[] = { 0x8e };

	cr_assert_eq(status_of(s200, 1, 0x4), 200);
	cr_assert_eq(status_of(s400, 1, 0x4), 400);
	cr_assert_eq(status_of(s404, 1, 0x5), 404);
	cr_assert_eq(status_of(s500, 1, 0x4), 500);
}

/* RFC 7541 C.5.1 and C.6.1: ":status: 302", literal and Huffman-coded. */
Test(http2, literal_statuses_plain_and_huffman)
{
	static const uint8_t plain[] = { 0x48, 0x03, 0x33, 0x30, 0x32 };
	static const uint8_t huffman[] = { 0x48, 0x82, 0x64, 0x02 };
	/* C.5.2 / C.6.2: 307 */
	static const uint8_t plain307[] = { 0x48, 0x03, 0x33, 0x30, 0x37 };
	static const uint8_t huffman307[] = { 0x48, 0x83, 0x64, 0x0e, 0xff };
	/* without indexing (0000): 401 */
	static const uint8_t plain401[] = { 0x08, 0x03, '4', '0', '1' };

	cr_assert_eq(status_of(plain, sizeof(plain), 0x4), 302);
	cr_assert_eq(status_of(huffman, sizeof(huffman), 0x4), 302);
	cr_assert_eq(status_of(plain307, sizeof(plain307), 0x4), 307);
	cr_assert_eq(status_of(huffman307, sizeof(huffman307), 0x4), 307);
	cr_assert_eq(status_of(plain401, sizeof(plain401), 0x4), 401);
}

Test(http2, padding_and_priority_are_skipped)
{
	/* PADDED (2 bytes of padding) and PRIORITY (5 bytes) before the block */
	static const uint8_t block[] = { 2, 0, 0, 0, 0, 16, 0x8c, 0, 0 };

	cr_assert_eq(status_of(block, sizeof(block), 0x4 | 0x8 | 0x20), 400);
}

Test(http2, interim_answers_are_skipped)
{
	uint8_t buf[128];
	static const uint8_t s100[] = { 0x08, 0x03, '1', '0', '0' }, s200[] = { 0x88 };
	struct cursor c;
	struct http1_response r;
	size_t n = 0;

	n += frame(buf + n, 4, 0, 0, NULL, 0);
	n += frame(buf + n, 1, 0x4, 1, s100, sizeof(s100));
	n += frame(buf + n, 1, 0x4, 1, s200, sizeof(s200));
	cursor_init(&c, buf, n);
	cr_assert_eq(http2_response(&c, false, &r), HTTP1_DONE);
	cr_assert_eq(r.status, 200);
}

Test(http2, more_until_the_headers_frame_is_whole)
{
	uint8_t buf[128];
	static const uint8_t s400[] = { 0x8c };
	struct cursor c;
	struct http1_response r;
	size_t n = server_bytes(buf, s400, 1, 0x4);

	cursor_init(&c, buf, n - 1);
	cr_assert_eq(http2_response(&c, false, &r), HTTP1_MORE);
	cr_assert_eq(http2_response(&c, true, &r), HTTP1_NOT_HTTP);
}

Test(http2, garbage_and_goaway_are_no_status)
{
	uint8_t buf[128];
	static const uint8_t bad[] = { 0x48, 0x82, 0xff, 0xff };   /* Huffman, not digits */
	static const uint8_t notstatus[] = { 0x82 };                /* :method GET first */
	static const uint8_t goaway[] = { 0, 0, 0, 0, 0, 0, 0, 1 };
	struct cursor c;
	struct http1_response r;
	size_t n = 0;

	cr_assert_eq(status_of(bad, sizeof(bad), 0x4), -1);
	cr_assert_eq(status_of(notstatus, sizeof(notstatus), 0x4), -1);
	n += frame(buf + n, 4, 0, 0, NULL, 0);
	n += frame(buf + n, 7, 0, 0, goaway, sizeof(goaway));
	cursor_init(&c, buf, n);
	cr_assert_eq(http2_response(&c, false, &r), HTTP1_NOT_HTTP);
}
