/* http2: the connection preface and the first response's status (http2.h). */
#include "config.h"

#include "wire/http2.h"

#include <stdint.h>
#include <string.h>

#define FRAME_HEADER_LEN 9
#define FRAME_HEADERS 0x1
#define FRAME_SETTINGS 0x4
#define FRAME_GOAWAY 0x7
#define FLAG_PADDED 0x8
#define FLAG_PRIORITY 0x20

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum http1_result http2_client_preface(const struct cursor *head)
{
	size_t n = sizeof(PREFACE) - 1;

	if (cursor_len(head) < n)
		return cursor_starts_with(head, PREFACE, cursor_len(head), 0) ? HTTP1_MORE : HTTP1_NOT_HTTP;
	return cursor_starts_with(head, PREFACE, n, 0) ? HTTP1_DONE : HTTP1_NOT_HTTP;
}

bool http2_server_preface(const struct cursor *head)
{
	struct cursor c = *head;
	uint32_t len, stream;
	uint8_t type, flags;

	if (!cursor_get_u24(&c, &len) || !cursor_get_u8(&c, &type) || !cursor_get_u8(&c, &flags) ||
	    !cursor_get_u32(&c, &stream) || (stream & 0x7fffffff) != 0 || len > 16384)
		return false;
	return (type == FRAME_SETTINGS && len % 6 == 0) || type == FRAME_GOAWAY;
}

/* An HPACK integer with an N-bit prefix (RFC 7541 5.1); `first` is the
 * byte that holds the prefix, already taken. */
static int hpack_int(struct cursor *c, uint8_t first, unsigned prefix_bits, uint32_t *out)
{
	uint32_t max = (1u << prefix_bits) - 1, v = first & max;
	unsigned shift = 0;
	uint8_t b;

	if (v < max) {
		*out = v;
		return 1;
	}
	do {
		if (shift > 21 || !cursor_get_u8(c, &b))
			return 0;
		v += (uint32_t)(b & 0x7f) << shift;
		shift += 7;
	} while (b & 0x80);
	*out = v;
	return 1;
}

/* Decodes a Huffman-coded string of digits (RFC 7541 Appendix B: '0'-'2'
 * are 5-bit codes 0-2, '3'-'9' 6-bit codes 0x19-0x1f; the padding is the
 * EOS code's leading ones).  0 for anything but digits. */
static int huffman_digits(struct cursor *s, char *out, size_t outlen)
{
	uint64_t bits = 0;
	unsigned nbits = 0;
	size_t n = 0;
	uint8_t b;

	while (cursor_len(s) || nbits) {
		while (nbits <= 56 && cursor_get_u8(s, &b)) {
			bits = (bits << 8) | b;
			nbits += 8;
		}
		if (nbits >= 5 && ((bits >> (nbits - 5)) & 0x1f) <= 2) {
			if (n + 1 >= outlen)
				return 0;
			out[n++] = (char)('0' + ((bits >> (nbits - 5)) & 0x1f));
			nbits -= 5;
		} else if (nbits >= 6 && ((bits >> (nbits - 6)) & 0x3f) >= 0x19 && ((bits >> (nbits - 6)) & 0x3f) <= 0x1f) {
			if (n + 1 >= outlen)
				return 0;
			out[n++] = (char)('0' + 3 + (((bits >> (nbits - 6)) & 0x3f) - 0x19));
			nbits -= 6;
		} else if (nbits < 8 && (bits & ((1u << nbits) - 1)) == (1u << nbits) - 1) {
			break;   /* padding */
		} else {
			return 0;
		}
		bits &= nbits ? (((uint64_t)1 << nbits) - 1) : 0;
	}
	out[n] = '\0';
	return 1;
}

/* A status from the static table (RFC 7541 Appendix A, entries 8-14). */
static int static_status(uint32_t index)
{
	static const int status[] = { 200, 204, 206, 304, 400, 404, 500 };

	return index >= 8 && index <= 14 ? status[index - 8] : 0;
}

/* The first field of a header block: `:status`, as a number (0: not one). */
static int first_status(struct cursor block)
{
	uint32_t index, len;
	uint8_t b;
	unsigned prefix;

	for (;;) {
		if (!cursor_get_u8(&block, &b))
			return 0;
		if ((b & 0xe0) != 0x20)
			break;
		if (!hpack_int(&block, b, 5, &index))   /* a dynamic table size update */
			return 0;
	}
	if (b & 0x80)
		return hpack_int(&block, b, 7, &index) ? static_status(index) : 0;
	prefix = (b & 0xc0) == 0x40 ? 6 : 4;    /* with incremental indexing, or without / never */
	if (!hpack_int(&block, b, prefix, &index) || (index != 0 && !static_status(index)))
		return 0;
	if (index == 0) {
		struct cursor name;

		if (!cursor_get_u8(&block, &b) || (b & 0x80) || !hpack_int(&block, b, 7, &len) ||
		    !cursor_get_bytes(&block, &name, len) || len != 7 || !cursor_starts_with(&name, ":status", 7, 0))
			return 0;
	}
	{
		struct cursor value;
		char digits[8];
		int status = 0;
		size_t i;

		if (!cursor_get_u8(&block, &b) || !hpack_int(&block, b, 7, &len) || len > 6 ||
		    !cursor_get_bytes(&block, &value, len))
			return 0;
		if (b & 0x80) {
			if (!huffman_digits(&value, digits, sizeof(digits)))
				return 0;
		} else {
			cursor_copy_printable(&value, digits, sizeof(digits));
		}
		if (strlen(digits) != 3)
			return 0;
		for (i = 0; i < 3; i++) {
			if (digits[i] < '0' || digits[i] > '9')
				return 0;
			status = status * 10 + (digits[i] - '0');
		}
		return status >= 100 ? status : 0;
	}
}

enum http1_result http2_response(const struct cursor *head, bool complete, struct http1_response *out)
{
	struct cursor c = *head;

	memset(out, 0, sizeof(*out));
	while (cursor_len(&c)) {
		struct cursor payload;
		uint32_t len, stream;
		uint8_t type, flags, pad = 0;
		int status;

		if (cursor_len(&c) < FRAME_HEADER_LEN)
			break;
		if (!cursor_get_u24(&c, &len) || !cursor_get_u8(&c, &type) || !cursor_get_u8(&c, &flags) ||
		    !cursor_get_u32(&c, &stream))
			return HTTP1_NOT_HTTP;
		if (!cursor_get_bytes(&c, &payload, len))
			break;  /* the frame goes on past what was kept */
		stream &= 0x7fffffff;
		if (type == FRAME_GOAWAY)
			return HTTP1_NOT_HTTP;   /* the connection ended before an answer */
		if (type != FRAME_HEADERS || stream == 0)
			continue;
		if ((flags & FLAG_PADDED) && !cursor_get_u8(&payload, &pad))
			return HTTP1_NOT_HTTP;
		if ((flags & FLAG_PRIORITY) && !cursor_skip(&payload, 5))
			return HTTP1_NOT_HTTP;
		if (pad > cursor_len(&payload))
			return HTTP1_NOT_HTTP;
		cursor_init(&payload, cursor_data(&payload), cursor_len(&payload) - pad);
		status = first_status(payload);
		if (status == 0)
			return HTTP1_NOT_HTTP;
		if (status < 200)
			continue;   /* an interim answer (100 Continue) */
		out->status = status;
		return HTTP1_DONE;
	}
	return complete ? HTTP1_NOT_HTTP : HTTP1_MORE;
}
