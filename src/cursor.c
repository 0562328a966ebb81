/* cursor: bounds-checked reads over untrusted bytes (see cursor.h). */
#include "config.h"

#include "cursor.h"

#include <string.h>
#include <strings.h>

static int get_be(struct cursor *c, size_t n, uint32_t *out)
{
	uint32_t v = 0;
	size_t i;

	if (c->len < n)
		return 0;
	for (i = 0; i < n; i++)
		v = (v << 8) | c->data[i];
	*out = v;
	return cursor_skip(c, n);
}


int cursor_get_u16le(struct cursor *c, uint16_t *out)
{
	if (c->len < 2)
		return 0;
	*out = (uint16_t)(c->data[0] | (c->data[1] << 8));
	return cursor_skip(c, 2);
}

int cursor_get_u32le(struct cursor *c, uint32_t *out)
{
	if (c->len < 4)
		return 0;
	*out = (uint32_t)c->data[0] | ((uint32_t)c->data[1] << 8) |
	       ((uint32_t)c->data[2] << 16) | ((uint32_t)c->data[3] << 24);
	return cursor_skip(c, 4);
}

int cursor_copy_bytes(struct cursor *c, uint8_t *out, size_t n)
{
	if (c->len < n)
		return 0;
	if (n)
		memcpy(out, c->data, n);
	return cursor_skip(c, n);
}

static int get_prefixed(struct cursor *c, size_t width, struct cursor *out)
{
	struct cursor save = *c;
	uint32_t n;

	if (!get_be(c, width, &n) || !cursor_get_bytes(c, out, n)) {
		*c = save;
		return 0;
	}
	return 1;
}

int cursor_get_u8_prefixed(struct cursor *c, struct cursor *out) { return get_prefixed(c, 1, out); }
int cursor_get_u16_prefixed(struct cursor *c, struct cursor *out) { return get_prefixed(c, 2, out); }
int cursor_get_u24_prefixed(struct cursor *c, struct cursor *out) { return get_prefixed(c, 3, out); }

int cursor_peek_u8(const struct cursor *c, size_t at, uint8_t *out)
{
	if (at >= c->len)
		return 0;
	*out = c->data[at];
	return 1;
}

int cursor_peek_u16(const struct cursor *c, size_t at, uint16_t *out)
{
	if (at >= c->len || c->len - at < 2)
		return 0;
	*out = (uint16_t)((c->data[at] << 8) | c->data[at + 1]);
	return 1;
}

int cursor_find(const struct cursor *c, const void *needle, size_t needle_len, size_t *at)
{
	const uint8_t *hit;

	if (needle_len == 0 || c->len < needle_len)
		return 0;
	hit = memmem(c->data, c->len, needle, needle_len);
	if (!hit)
		return 0;
	*at = (size_t)(hit - c->data);
	return 1;
}

int cursor_starts_with(const struct cursor *c, const void *prefix, size_t n, int nocase)
{
	if (c->len < n)
		return 0;
	if (nocase)
		return strncasecmp((const char *)c->data, prefix, n) == 0;
	return memcmp(c->data, prefix, n) == 0;
}
