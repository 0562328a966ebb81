/* testutil: fixture loading for the criterion suites. */
#include "config.h"

#include "testutil.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *test_path(const char *rel)
{
	static char buf[4096];
	const char *root = getenv("MTLSDIAG_SRCDIR");

	snprintf(buf, sizeof(buf), "%s/%s", root && *root ? root : ".", rel);
	return buf;
}

uint8_t *test_try_load(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (!f)
		return NULL;
	do {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			cr_assert_not_null(buf);
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	fclose(f);
	*len = n;
	return buf;
}

uint8_t *test_load(const char *rel, size_t *len)
{
	uint8_t *buf = test_try_load(test_path(rel), len);

	cr_assert_not_null(buf, "cannot read fixture %s", test_path(rel));
	return buf;
}

int test_hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

uint8_t *test_unhex(const char *hex, size_t *len)
{
	size_t cap = strlen(hex) / 2 + 1, n = 0;
	uint8_t *out = malloc(cap);
	int hi = -1;

	cr_assert_not_null(out);
	for (; *hex; hex++) {
		int v;
		if (isspace((unsigned char)*hex) || *hex == ':')
			continue;
		v = test_hexval(*hex);
		cr_assert(v >= 0, "bad hex character '%c'", *hex);
		if (hi < 0) {
			hi = v;
		} else {
			out[n++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	cr_assert(hi < 0, "odd number of hex digits");
	*len = n;
	return out;
}

void test_append(uint8_t **data, size_t *len, size_t *cap, const uint8_t *p, size_t n)
{
	if (*len + n > *cap) {
		*cap = (*len + n) * 2;
		*data = realloc(*data, *cap);
		cr_assert_not_null(*data);
	}
	if (n)
		memcpy(*data + *len, p, n);
	*len += n;
}
