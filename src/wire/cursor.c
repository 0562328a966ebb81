/* cursor: bounds-checked reads over untrusted bytes (see cursor.h). */
#include "config.h"

#include "wire/cursor.h"

#include <string.h>
#include <strings.h>

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

void cursor_copy_printable(const struct cursor *src, char *out, size_t outlen)
{
	struct cursor c = *src;
	size_t n = 0;
	uint8_t b;

	while (n + 1 < outlen && cursor_get_u8(&c, &b))
		out[n++] = (b >= 0x20 && b < 0x7f) ? (char)b : '?';
	out[n] = '\0';
}
