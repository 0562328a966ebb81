/* cursor: the one bounds-checked view over untrusted bytes.
 *
 * Every decoder in mtlsdiag (capture headers, IP/TCP, TLS records and
 * handshake messages, plaintext preambles) reads through this type and does
 * no pointer arithmetic of its own.  A cursor owns nothing.  Each getter
 * returns 1 on success and 0 on failure and moves the cursor only on
 * success; a length-prefixed field is read into a sub-cursor so nested TLS
 * vectors are parsed inside their own bounds. */
#ifndef MTLSDIAG_CURSOR_H
#define MTLSDIAG_CURSOR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct cursor {
	const uint8_t *data;
	size_t len;
};

#define CURSOR_WUR __attribute__((warn_unused_result))

static inline void cursor_init(struct cursor *c, const uint8_t *data, size_t len)
{
	c->data = data;
	c->len = len;
}

static inline size_t cursor_len(const struct cursor *c) { return c->len; }
static inline const uint8_t *cursor_data(const struct cursor *c) { return c->data; }

/* The getters are small and on every hot path: defined here to be inlined. */
static inline CURSOR_WUR int cursor_skip(struct cursor *c, size_t n)
{
	if (c->len < n)
		return 0;
	c->data += n;
	c->len -= n;
	return 1;
}

static inline CURSOR_WUR int cursor_get_u8(struct cursor *c, uint8_t *out)
{
	if (c->len < 1)
		return 0;
	*out = c->data[0];
	return cursor_skip(c, 1);
}

static inline CURSOR_WUR int cursor_get_u16(struct cursor *c, uint16_t *out)
{
	if (c->len < 2)
		return 0;
	*out = (uint16_t)((c->data[0] << 8) | c->data[1]);
	return cursor_skip(c, 2);
}

static inline CURSOR_WUR int cursor_get_u24(struct cursor *c, uint32_t *out)
{
	if (c->len < 3)
		return 0;
	*out = ((uint32_t)c->data[0] << 16) | ((uint32_t)c->data[1] << 8) | c->data[2];
	return cursor_skip(c, 3);
}

static inline CURSOR_WUR int cursor_get_u32(struct cursor *c, uint32_t *out)
{
	if (c->len < 4)
		return 0;
	*out = ((uint32_t)c->data[0] << 24) | ((uint32_t)c->data[1] << 16) |
	       ((uint32_t)c->data[2] << 8) | c->data[3];
	return cursor_skip(c, 4);
}

/* Splits the next n bytes off into *out. */
static inline CURSOR_WUR int cursor_get_bytes(struct cursor *c, struct cursor *out, size_t n)
{
	if (c->len < n)
		return 0;
	cursor_init(out, c->data, n);
	return cursor_skip(c, n);
}

static inline CURSOR_WUR int cursor_copy_bytes(struct cursor *c, uint8_t *out, size_t n)
{
	if (c->len < n)
		return 0;
	if (n)
		memcpy(out, c->data, n);
	return cursor_skip(c, n);
}

/* Length-prefixed vectors (TLS "opaque x<a..2^k-1>"): the cursor does not
 * move when the prefix or the vector is short. */
static inline CURSOR_WUR int cursor_get_u8_prefixed(struct cursor *c, struct cursor *out)
{
	if (c->len < 1 || c->len - 1 < c->data[0])
		return 0;
	cursor_init(out, c->data + 1, c->data[0]);
	return cursor_skip(c, 1 + (size_t)c->data[0]);
}

static inline CURSOR_WUR int cursor_get_u16_prefixed(struct cursor *c, struct cursor *out)
{
	size_t n;

	if (c->len < 2)
		return 0;
	n = ((size_t)c->data[0] << 8) | c->data[1];
	if (c->len - 2 < n)
		return 0;
	cursor_init(out, c->data + 2, n);
	return cursor_skip(c, 2 + n);
}

static inline CURSOR_WUR int cursor_get_u24_prefixed(struct cursor *c, struct cursor *out)
{
	size_t n;

	if (c->len < 3)
		return 0;
	n = ((size_t)c->data[0] << 16) | ((size_t)c->data[1] << 8) | c->data[2];
	if (c->len - 3 < n)
		return 0;
	cursor_init(out, c->data + 3, n);
	return cursor_skip(c, 3 + n);
}

/* Looks without consuming. */
static inline CURSOR_WUR int cursor_peek_u8(const struct cursor *c, size_t at, uint8_t *out)
{
	if (at >= c->len)
		return 0;
	*out = c->data[at];
	return 1;
}

static inline CURSOR_WUR int cursor_peek_u16(const struct cursor *c, size_t at, uint16_t *out)
{
	if (at >= c->len || c->len - at < 2)
		return 0;
	*out = (uint16_t)((c->data[at] << 8) | c->data[at + 1]);
	return 1;
}

int cursor_get_u16le(struct cursor *c, uint16_t *out) CURSOR_WUR;
int cursor_get_u32le(struct cursor *c, uint32_t *out) CURSOR_WUR;
/* Finds the first occurrence of needle; sets *at to its offset. */
int cursor_find(const struct cursor *c, const void *needle, size_t needle_len, size_t *at) CURSOR_WUR;
/* 1 if the cursor starts with the given bytes (compared case-insensitively
 * for ASCII letters when nocase is set). */
int cursor_starts_with(const struct cursor *c, const void *prefix, size_t n, int nocase);
/* Copies the cursor's bytes into out as a NUL-terminated string for
 * printing (wire strings: SNI, ALPN, HTTP lines), non-printable bytes as
 * '?', cut to fit outlen (which must be at least 1). */
void cursor_copy_printable(const struct cursor *c, char *out, size_t outlen);

#endif
